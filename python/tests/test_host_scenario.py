"""The hosts' own scenario, driven exactly as the host drives the library.

The host (abi.md, "How callers use it") loads the library with ctypes and
RTLD_GLOBAL, declares the contract's argtypes itself, and for each candidate
device of its profile (NPU, then GPU, then CPU) creates a handle, probes one
embed, checks cpu_fallback_detected and destroys the handle if it does not like
the result; then it embeds its texts. Its model is BERT-shaped with hidden 768
(host_bert_h768 stands in), seq_len 128 (configurable up to 8192), out_dim 32,
threads 1, strict 1. Each run is a fresh process, with the pinned ONNX Runtime
or one of the matrix's builds (the hosts pin the onnxruntime-openvino 1.22.0
wheel for NPU/CPU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from c_embed_runtime import LIBRARY_ENV, Tokenizer
from c_embed_runtime.demo import SENTENCES
from conftest import ERRORS
from ort_builds import build_library
from reference import ReferenceEmbedder

OUT_DIM = 32
# The library against the independent reference (Python onnxruntime + numpy).
TOLERANCE = 1e-5
# What create says for NPU and GPU where ONNX Runtime has neither provider (and
# the OpenVINO-GPU gate is off).
NPU_UNAVAILABLE = ERRORS["STD_CREATE_ERROR"] + ERRORS["OPENVINO_UNAVAILABLE"]
GPU_UNAVAILABLE = (
    ERRORS["STD_CREATE_ERROR"]
    + ERRORS["CUDA_UNAVAILABLE"]
    + ERRORS["DEVICE_REASON_SEPARATOR"]
    + ERRORS["OPENVINO_GPU_FALLBACK_DISABLED"]
)

# The host's side, written as the host writes it (no package of this repository).
# It loads each of its profiles' libraries in turn (one, or the default and gpu
# profiles' builds in one process), runs its device loop on each, then embeds its
# rows with every profile's handle; it reports what the process mapped.
HOST = textwrap.dedent(
    """
    import ctypes, json, sys
    from ctypes import POINTER, c_char_p, c_float, c_int32, c_int64, c_void_p
    job = json.load(sys.stdin)
    n, dim = job["seq_len"], job["out_dim"]

    I64, F32 = POINTER(c_int64), POINTER(c_float)
    # The ten functions the host calls, as it declares them.
    DECLARED = {
        "create": (c_void_p, [c_char_p, c_char_p, c_int64, c_int32, c_int32, c_int32]),
        "last_create_error": (c_char_p, []),
        "embed": (c_int32, [c_void_p, I64, I64, I64, F32]),
        "last_error": (c_char_p, [c_void_p]),
        "selected_device": (c_char_p, [c_void_p]),
        "cpu_fallback_detected": (c_int32, [c_void_p]),
        "cpu_fallback_detail": (c_char_p, [c_void_p]),
        "output_dim": (c_int32, [c_void_p]),
        "seq_len": (c_int64, [c_void_p]),
        "destroy": (None, [c_void_p]),
    }

    def declare(lib):
        for name, (restype, argtypes) in DECLARED.items():
            function = getattr(lib, "c_embed_runtime_" + name)
            function.restype, function.argtypes = restype, argtypes
        return lib

    def embed(lib, handle, ids, mask, types):
        arrays = [(c_int64 * n)(*values) for values in (ids, mask, types)]
        out = (c_float * dim)()
        if not lib.c_embed_runtime_embed(handle, *arrays, out):
            return None
        return list(out)

    def device_loop(lib):
        skipped, handle = {}, None
        for device in job["candidates"]:
            candidate = lib.c_embed_runtime_create(job["model"].encode(), device.encode(), n, dim, 1, 1)
            if not candidate:
                skipped[device] = lib.c_embed_runtime_last_create_error().decode()
                continue
            if embed(lib, candidate, *job["probe"]) is None:
                skipped[device] = lib.c_embed_runtime_last_error(candidate).decode()
            elif lib.c_embed_runtime_cpu_fallback_detected(candidate):
                skipped[device] = lib.c_embed_runtime_cpu_fallback_detail(candidate).decode()
            else:
                handle = candidate
                break
            lib.c_embed_runtime_destroy(candidate)
        result = {"skipped": skipped, "vectors": []}
        if handle:
            result["selected"] = lib.c_embed_runtime_selected_device(handle).decode()
            result["seq_len"] = lib.c_embed_runtime_seq_len(handle)
            result["out_dim"] = lib.c_embed_runtime_output_dim(handle)
        return result, handle

    profiles = []
    for path in job["libraries"]:
        lib = declare(ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL))
        profiles.append((lib, *device_loop(lib)))
    for lib, result, handle in profiles:
        if handle:
            result["vectors"] = [embed(lib, handle, *row) for row in job["rows"]]
            lib.c_embed_runtime_destroy(handle)
    with open("/proc/self/maps") as maps:
        mapped = sorted({line.split()[-1] for line in maps if "/" in line})
    print(json.dumps({"profiles": [result for _, result, _ in profiles], "mapped": mapped}))
    """
)


def run_host(model, seq_len: int, rows, ort_library=None, libraries=None, out_dim=OUT_DIM,
             **env) -> tuple[dict, str]:
    """Runs the host in a child process on ``libraries`` (default: the library under
    test), without $ORT_DYLIB_PATH unless ``ort_library`` is given. Returns the first
    profile's result (with ``profiles`` and ``mapped`` too) and the child's stderr."""
    environment = {k: v for k, v in os.environ.items() if k != "ORT_DYLIB_PATH"} | env
    if ort_library is not None:
        environment["ORT_DYLIB_PATH"] = str(ort_library)
    as_lists = [[list(map(int, a)) for a in row] for row in rows]
    job = {
        "libraries": [str(p) for p in libraries or [os.environ[LIBRARY_ENV]]],
        "model": str(model),
        "candidates": ["NPU", "GPU", "CPU"],
        "seq_len": seq_len,
        "out_dim": out_dim,
        "probe": as_lists[0],
        "rows": as_lists,
    }
    done = subprocess.run([sys.executable, "-c", HOST], input=json.dumps(job), env=environment,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    return report["profiles"][0] | report, done.stderr


@pytest.fixture(scope="module")
def host_model(test_model):
    return test_model("host_bert_h768")


def host_rows(tokenizer_json, seq_len):
    tokenize = Tokenizer(tokenizer_json, seq_len)
    return [tokenize(sentence) for sentence in ["probe", *SENTENCES[:5], " ".join(SENTENCES * 3)]]


def assert_matches_reference(result, model, seq_len, rows, out_dim=OUT_DIM):
    reference = ReferenceEmbedder(model, seq_len, out_dim)
    expected = np.array([reference.embed(ids, mask, types, trimmed=True) for ids, mask, types in rows])
    got = np.array(result["vectors"])
    diff = float(np.abs(got - expected).max())
    print(f"host scenario seq_len {seq_len}: max diff to the reference {diff:.3g}")
    assert diff <= TOLERANCE


@pytest.mark.parametrize("seq_len", [128, 8192])
def test_the_host_loop_ends_on_a_working_handle(host_model, tokenizer_json, seq_len):
    rows = host_rows(tokenizer_json, seq_len)
    result, stderr = run_host(host_model, seq_len, rows)
    assert (result["selected"], result["seq_len"], result["out_dim"]) == ("CPU", seq_len, OUT_DIM)
    # This machine's pinned build has neither provider: each skip says so.
    assert result["skipped"] == {
        "NPU": NPU_UNAVAILABLE,
        "GPU": GPU_UNAVAILABLE,
    }
    assert_matches_reference(result, host_model, seq_len, rows)
    assert stderr == ""


@pytest.mark.parametrize("gpu_gate", ["0", "1"])
def test_the_host_loop_on_the_openvino_1_22_wheel(host_model, tokenizer_json, gpu_gate):
    seq_len = 128
    rows = host_rows(tokenizer_json, seq_len)
    result, stderr = run_host(host_model, seq_len, rows, build_library("onnxruntime-openvino-1.22.0"),
                              CDB_EMBED_GPU_ALLOW_OPENVINO_FALLBACK=gpu_gate)
    print(json.dumps(result["skipped"], indent=1))
    assert result["selected"] == "CPU"
    # No NPU or GPU here: OpenVINO's own reason, not only "Failed to load provider".
    no_device = ("[OpenVINO] You have selected wrong configuration value for the key 'device_type'")
    assert result["skipped"]["NPU"].startswith(ERRORS["ORT_CREATE_ERROR"] + "Failed to load provider OpenVINO (onnxruntime: ")
    assert no_device in result["skipped"]["NPU"]
    gpu = result["skipped"]["GPU"]
    if gpu_gate == "1":
        assert gpu.startswith(
            ERRORS["ORT_CREATE_ERROR"] + ERRORS["CUDA_UNAVAILABLE"] + ERRORS["DEVICE_REASON_SEPARATOR"]
            + "Failed to load provider OpenVINO"
        )
        assert no_device in gpu
    else:
        assert gpu == GPU_UNAVAILABLE
    assert_matches_reference(result, host_model, seq_len, rows)
    assert stderr == ""
