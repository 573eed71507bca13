"""Which ONNX Runtime the library bundled in the package (the wheel's) loads.

The library chooses (its search order and its one rule for choosing among several
``libonnxruntime.so*`` files are in src/ort/search.rs): ``$ORT_DYLIB_PATH`` when
the user set it; an ONNX Runtime already loaded in the process; then the
directories registered with it. :func:`register_installed_runtime` registers the
``capi/`` folder of an installed ``onnxruntime`` import package, whichever flavour
installed it (``onnxruntime``, ``onnxruntime-gpu``, ``onnxruntime-openvino``: they
all install ``onnxruntime/capi/``), so a gpu or openvino user installs only their
flavour and it is used (one the library cannot run fails ``create`` rather than
giving way to the CPU copy); else the library finds the CPU ONNX Runtime bundled
beside it (``lib/``). Registering changes this process alone: no environment variable is
set, so the processes it starts choose for themselves. The flavours overwrite each
other's files, so the wheel depends on none of them; its extras
(``c_embed_runtime[gpu]``, ``[openvino]``: python/pyproject.toml) install one.
"""

from __future__ import annotations

import ctypes
import importlib.util
from pathlib import Path


def installed_runtime_dirs() -> list[Path]:
    """The ``capi/`` folders of the installed ``onnxruntime`` import package, found
    without importing it; empty if there is none."""
    try:
        spec = importlib.util.find_spec("onnxruntime")  # a top-level spec imports nothing
    except (ImportError, ValueError):
        return []
    if spec is None or not spec.submodule_search_locations:
        return []
    capis = (Path(location) / "capi" for location in spec.submodule_search_locations)
    return [capi for capi in capis if capi.is_dir()]


def register_installed_runtime(lib: ctypes.CDLL) -> None:
    """Registers :func:`installed_runtime_dirs` with the library, where it looks
    before its bundled copy (and after ``$ORT_DYLIB_PATH``)."""
    for capi in installed_runtime_dirs():
        lib.c_embed_runtime_register_onnxruntime_dir(str(capi).encode())
