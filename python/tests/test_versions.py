"""The version matrix: every cached ONNX Runtime build (tools/ort_versions.py),
through ORT_DYLIB_PATH, creates, embeds the real model with the vectors of the
pinned onnxruntime (.venv's, what the other tests use) and passes the misuse
suite (c_tests/misuse.c)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from c_embed_runtime import LIBRARY_ENV, Tokenizer
from c_embed_runtime.demo import SENTENCES
from conftest import ERRORS, REPO
from ort_builds import BUILDS, build_library, embed_with, fake_ort

SEQ_LEN = 128
OUT_DIM = 384
# Largest component difference to the pinned version's vectors (L2-normalised,
# 384-d) that still counts as the same result; ten times the largest measured
# (the README gives the figures).
TOLERANCE = 2.5e-6
MISUSE = REPO / "build" / "c" / "misuse"


@pytest.fixture(scope="module")
def rows(tokenizer_json):
    tokenize = Tokenizer(tokenizer_json, SEQ_LEN)
    return [tokenize(sentence) for sentence in SENTENCES[:6]]


@pytest.fixture(scope="module")
def pinned(real_model, rows):
    """The vectors with the pinned onnxruntime (the one beside the built library)."""
    result, _ = embed_with(None, real_model, "CPU", SEQ_LEN, OUT_DIM, rows)
    assert result["create_error"] == ""
    return np.array(result["vectors"])


@pytest.mark.parametrize("build", sorted(BUILDS))
def test_each_build_embeds_like_the_pinned_version(build, real_model, rows, pinned):
    result, stderr = embed_with(build_library(build), real_model, "CPU", SEQ_LEN, OUT_DIM, rows)
    assert result["create_error"] == "" and result["selected"] == "CPU"
    assert "embed_error" not in result
    diff = float(np.abs(np.array(result["vectors"]) - pinned).max())
    print(f"{build}: max diff to the pinned version {diff:.3g}")
    assert diff <= TOLERANCE
    assert stderr == ""


@pytest.mark.parametrize("build", sorted(b for b, (_, _, flavour) in BUILDS.items() if flavour == "openvino"))
def test_openvino_builds_run_openvino_cpu_like_the_cpu_provider(build, real_model, rows, pinned):
    result, stderr = embed_with(build_library(build), real_model, "OPENVINO_CPU", SEQ_LEN, OUT_DIM, rows)
    assert result["create_error"] == "" and result["selected"] == "OPENVINO_CPU"
    assert "embed_error" not in result and result["fallback"] == 0
    diff = float(np.abs(np.array(result["vectors"]) - pinned).max())
    print(f"{build} OPENVINO_CPU: max diff to the pinned CPU provider {diff:.3g}")
    assert 0 < diff <= TOLERANCE
    assert stderr == ""


@pytest.mark.parametrize("build", sorted(BUILDS))
def test_each_build_passes_the_misuse_suite(build, test_model, real_model):
    if not MISUSE.exists():
        pytest.fail(f"{MISUSE} is missing: run `make test-versions` (builds it)")
    environment = os.environ | {"ORT_DYLIB_PATH": str(build_library(build))}
    done = subprocess.run(
        [str(MISUSE), str(test_model("tiny_bert").parent), str(real_model)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    summary = done.stdout.strip().splitlines()[-1]
    print(f"{build}: misuse {summary}")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert summary.endswith(" cases, 0 failed")


@pytest.mark.parametrize(
    "version,api,why",
    [
        # below the supported range: refused by its version (c_tests/fake_ort.c)
        ("1.19.2", True, 'ONNX Runtime "1.19.2" is not supported'),
        # says 1.22.0 but its GetApi returns NULL: no panic, no stderr
        ("1.22.0", False, "ONNX Runtime 1.22.0 has no C API level 20"),
    ],
)
def test_a_build_the_library_cannot_run_is_refused_saying_why(tmp_path, real_model, version, api, why):
    fake = tmp_path / f"libonnxruntime.so.{version}"
    fake_ort(fake, version=version, api=api)
    result, stderr = embed_with(fake, real_model, "CPU", SEQ_LEN, OUT_DIM, [])
    assert result["create_error"] == (
        ERRORS["COULD_NOT_LOAD_ONNX_RUNTIME"] + f" from {fake} (ORT_DYLIB_PATH): {why} (supported: 1.20 or newer 1.x)"
    )
    assert stderr == ""


def test_onnx_runtime_messages_reach_stderr_only_when_asked(real_model, rows):
    """NPU on the openvino 1.22.0 build: OpenVINO logs why; the create error says it
    either way, stderr shows it only with C_EMBED_RUNTIME_ORT_LOG=stderr."""
    openvino = build_library("onnxruntime-openvino-1.22.0")
    quiet, quiet_stderr = embed_with(openvino, real_model, "NPU", SEQ_LEN, OUT_DIM, rows[:1])
    asked, asked_stderr = embed_with(openvino, real_model, "NPU", SEQ_LEN, OUT_DIM, rows[:1],
                                     C_EMBED_RUNTIME_ORT_LOG="stderr")
    reason = "[OpenVINO] You have selected wrong configuration value for the key 'device_type'"
    assert reason in quiet["create_error"] and reason in asked["create_error"]
    assert quiet_stderr == ""
    assert asked_stderr.startswith("onnxruntime Error [c_embed_runtime] ") and reason in asked_stderr


RETRY = """
import os, sys
sys.path.insert(0, {python!r})
import c_embed_runtime
lib = c_embed_runtime.load({library!r})
for ort in ({fake!r}, {real!r}):
    os.environ["ORT_DYLIB_PATH"] = ort
    handle = lib.c_embed_runtime_create({model!r}, b"CPU", 16, 8, 1, 1)
    print(bool(handle), lib.c_embed_runtime_last_create_error().decode())
"""


def test_a_refused_build_is_not_remembered(tmp_path, test_model):
    """After a create refused the fake, the next create in the same process loads
    the real ONNX Runtime the host points it at."""
    fake = tmp_path / "libonnxruntime.so.1.22.0"
    fake_ort(fake, version="1.22.0", api=False)
    script = RETRY.format(python=str(REPO / "python"), library=os.environ[LIBRARY_ENV], fake=str(fake),
                          real=str(build_library("onnxruntime-1.22.0")), model=bytes(test_model("tiny_bert")))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    first, second = done.stdout.splitlines()
    assert first.startswith("False " + ERRORS["COULD_NOT_LOAD_ONNX_RUNTIME"] + " from ")
    assert second == "True "
