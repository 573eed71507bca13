"""Where the library finds ONNX Runtime, and what `create` says when it cannot.

Each case runs in a fresh process: ONNX Runtime is loaded once per process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from conftest import BUILT_LIBRARY, ERRORS, REPO
from ort_builds import build_library, fake_ort

SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {python!r})
    import c_embed_runtime
    lib = c_embed_runtime.load({library!r})
    for directory in {directories!r}:
        assert lib.c_embed_runtime_register_onnxruntime_dir(directory.encode()) == 1
    handle = lib.c_embed_runtime_create({model!r}, b"CPU", 16, 8, 1, 1)
    print("handle" if handle else "null")
    print(lib.c_embed_runtime_last_create_error().decode())
    print(lib.c_embed_runtime_onnxruntime_path().decode())
    """
)


def create_in_fresh_process(library, model, directories=(), **env):
    """(status, create error, ONNX Runtime in use) of a create in a new process,
    which first registers ``directories`` for the ONNX Runtime search."""
    script = SCRIPT.format(python=str(REPO / "python"), library=str(library), model=bytes(model),
                           directories=[str(d) for d in directories])
    environment = {k: v for k, v in os.environ.items() if k != "ORT_DYLIB_PATH"} | env
    done = subprocess.run([sys.executable, "-c", script], env=environment, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    status, message, onnxruntime = done.stdout.split("\n")[:3]
    return status, message, onnxruntime


def test_the_runtime_beside_the_library_is_found_without_environment(test_model):
    status, message, _ = create_in_fresh_process(BUILT_LIBRARY, bytes(test_model("tiny_bert")))
    assert (status, message) == ("handle", "")


def test_an_unloadable_override_fails_create_and_says_what_was_tried(test_model):
    status, message, _ = create_in_fresh_process(
        BUILT_LIBRARY, bytes(test_model("tiny_bert")), ORT_DYLIB_PATH="/nonexistent/libonnxruntime.so.1"
    )
    assert status == "null"
    # The loader's own reason (dlerror) follows the path.
    assert message == (
        ERRORS["COULD_NOT_LOAD_ONNX_RUNTIME"] + " from /nonexistent/libonnxruntime.so.1 (ORT_DYLIB_PATH): "
        "/nonexistent/libonnxruntime.so.1: cannot open shared object file: No such file or directory"
    )


@pytest.fixture
def lonely(tmp_path):
    """A copy of the library with no ONNX Runtime beside it."""
    copy = tmp_path / "lonely" / "libc_embed_runtime.so"
    copy.parent.mkdir()
    shutil.copyfile(BUILT_LIBRARY, copy)
    return copy


def test_no_runtime_anywhere_lists_every_place_tried(test_model, lonely, tmp_path):
    status, message, _ = create_in_fresh_process(lonely, bytes(test_model("tiny_bert")), [tmp_path])
    assert status == "null"
    assert ERRORS["COULD_NOT_LOAD_ONNX_RUNTIME"] in message
    assert "libonnxruntime.so (system)" in message and "libonnxruntime.so.1 (system)" in message


def test_a_registered_directory_is_searched_newest_first(test_model, lonely, tmp_path):
    # Two ONNX Runtimes in a registered folder: the library's rule takes the newer one.
    capi = tmp_path / "capi"
    capi.mkdir()
    for build in ("onnxruntime-1.20.1", "onnxruntime-1.24.4"):
        library = build_library(build)
        (capi / library.name).symlink_to(library)
    status, message, onnxruntime = create_in_fresh_process(lonely, bytes(test_model("tiny_bert")), [tmp_path, capi])
    assert (status, message) == ("handle", "")
    assert onnxruntime == str(capi / build_library("onnxruntime-1.24.4").name)


def test_an_unusable_registered_runtime_fails_create_rather_than_giving_way(test_model, tmp_path):
    # The library has an ONNX Runtime beside it; the registered folder's is the host's choice.
    fake = tmp_path / "libonnxruntime.so.1.19.2"
    fake_ort(fake, version="1.19.2", api=True)
    status, message, _ = create_in_fresh_process(BUILT_LIBRARY, bytes(test_model("tiny_bert")), [tmp_path])
    assert status == "null"
    assert message == (
        ERRORS["COULD_NOT_LOAD_ONNX_RUNTIME"] + f" from {fake} (registered with c_embed_runtime_register_onnxruntime_dir): "
        'ONNX Runtime "1.19.2" is not supported (supported: 1.20 or newer 1.x)'
    )
