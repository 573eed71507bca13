"""Where the library finds ONNX Runtime, and what `create` says when it cannot.

Each case runs in a fresh process: ONNX Runtime is loaded once per process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap

from conftest import ERRORS, REPO

SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {python!r})
    import c_embed_runtime
    lib = c_embed_runtime.load({library!r})
    handle = lib.c_embed_runtime_create({model!r}, b"CPU", 16, 8, 1, 1)
    print("handle" if handle else "null")
    print(lib.c_embed_runtime_last_create_error().decode())
    """
)


def create_in_fresh_process(library, model, **env):
    script = SCRIPT.format(python=str(REPO / "python"), library=str(library), model=bytes(model))
    environment = {k: v for k, v in os.environ.items() if k != "ORT_DYLIB_PATH"} | env
    done = subprocess.run([sys.executable, "-c", script], env=environment, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    status, message = done.stdout.split("\n")[:2]
    return status, message


def test_the_runtime_beside_the_library_is_found_without_environment(test_model):
    library = REPO / "target" / "release" / "libc_embed_runtime.so"
    status, message = create_in_fresh_process(library, bytes(test_model("tiny_bert")))
    assert (status, message) == ("handle", "")


def test_an_unloadable_override_fails_create_and_says_what_was_tried(test_model):
    library = REPO / "target" / "release" / "libc_embed_runtime.so"
    status, message = create_in_fresh_process(
        library, bytes(test_model("tiny_bert")), ORT_DYLIB_PATH="/nonexistent/libonnxruntime.so.1"
    )
    assert status == "null"
    # The loader's own reason (dlerror) follows the path.
    assert message == (
        ERRORS["COULD_NOT_LOAD_ONNX_RUNTIME"] + " from /nonexistent/libonnxruntime.so.1 (ORT_DYLIB_PATH): "
        "/nonexistent/libonnxruntime.so.1: cannot open shared object file: No such file or directory"
    )


def test_no_runtime_anywhere_lists_every_place_tried(test_model, tmp_path):
    lonely = tmp_path / "libc_embed_runtime.so"
    shutil.copyfile(REPO / "target" / "release" / "libc_embed_runtime.so", lonely)
    status, message = create_in_fresh_process(lonely, bytes(test_model("tiny_bert")))
    assert status == "null"
    assert ERRORS["COULD_NOT_LOAD_ONNX_RUNTIME"] in message
    assert "libonnxruntime.so (system)" in message and "libonnxruntime.so.1 (system)" in message
