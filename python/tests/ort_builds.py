"""The ONNX Runtime builds of the version matrix (tools/ort_versions.py, cached by
`make setup`) and a child process that embeds through the library with one of
them: ONNX Runtime is loaded once per process, so each build gets its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from c_embed_runtime import LIBRARY_ENV
from conftest import REPO

sys.path.insert(0, str(REPO / "tools"))
import ort_versions  # noqa: E402

BUILDS = {f"{package}-{version}": (package, version, flavour) for package, version, flavour in ort_versions.BUILDS}


def build_library(name: str):
    package, version, _ = BUILDS[name]
    path = ort_versions.library(package, version)
    if not path.exists():
        pytest.fail(f"{path} is missing: run `make setup` (tools/ort_versions.py fetch)")
    return path


def fake_ort(path, version: str, api: bool) -> None:
    """Builds at ``path`` a library that says it is ONNX Runtime ``version``
    (c_tests/fake_ort.c); its GetApi returns NULL unless ``api``."""
    subprocess.run(
        [os.environ.get("CC", "cc"), "-std=c11", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-shared", "-fPIC",
         f'-DFAKE_VERSION="{version}"', f"-DFAKE_HAS_API={int(api)}",
         str(REPO / "c_tests" / "fake_ort.c"), "-o", str(path)],
        check=True,
    )


CHILD = textwrap.dedent(
    """
    import ctypes, json, sys
    sys.path.insert(0, {python!r})
    import c_embed_runtime
    job = json.load(sys.stdin)
    lib = c_embed_runtime.load(job["library"])
    n = job["seq_len"]
    handle = lib.c_embed_runtime_create(job["model"].encode(), job["device"].encode(), n, job["out_dim"], 1, 1)
    result = {{"create_error": lib.c_embed_runtime_last_create_error().decode(), "vectors": []}}
    if handle:
        result["selected"] = lib.c_embed_runtime_selected_device(handle).decode()
        dim = lib.c_embed_runtime_output_dim(handle)
        for ids, mask, types in job["rows"]:
            out = (ctypes.c_float * dim)()
            arrays = [(ctypes.c_int64 * n)(*values) for values in (ids, mask, types)]
            if not lib.c_embed_runtime_embed(handle, *arrays, out):
                result["embed_error"] = lib.c_embed_runtime_last_error(handle).decode()
                break
            result["vectors"].append(list(out))
        result["fallback"] = lib.c_embed_runtime_cpu_fallback_detected(handle)
        lib.c_embed_runtime_destroy(handle)
    print(json.dumps(result))
    """
)


def embed_with(ort_library, model, device: str, seq_len: int, out_dim: int, rows, **env) -> tuple[dict, str]:
    """Creates and embeds `rows` ((ids, mask, types) lists) in a fresh process
    that loads `ort_library` (None: the library's own search); returns the
    child's result and its stderr."""
    environment = {k: v for k, v in os.environ.items() if k != "ORT_DYLIB_PATH"} | env
    if ort_library is not None:
        environment["ORT_DYLIB_PATH"] = str(ort_library)
    job = {
        "library": os.environ[LIBRARY_ENV],
        "model": str(model),
        "device": device,
        "seq_len": seq_len,
        "out_dim": out_dim,
        "rows": [[list(map(int, a)) for a in row] for row in rows],
    }
    done = subprocess.run(
        [sys.executable, "-c", CHILD.format(python=str(REPO / "python"))],
        input=json.dumps(job),
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), done.stderr
