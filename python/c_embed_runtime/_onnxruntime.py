"""Which ONNX Runtime the library bundled in the package (the wheel's) loads.

Order: ``$ORT_DYLIB_PATH`` when the user set it; else the ``libonnxruntime.so.1.*``
of an installed ``onnxruntime`` import package, whichever flavour installed it
(``onnxruntime``, ``onnxruntime-gpu``, ``onnxruntime-openvino``: they all install
``onnxruntime/capi/``), so a gpu or openvino user installs only their flavour and
it is used; else the CPU ONNX Runtime bundled beside the library (``lib/``), which
the library finds by itself (src/ort/loader.rs). :func:`prefer_installed_runtime`
hands the installed package's to the library through ``$ORT_DYLIB_PATH`` of this
process (read at the first create; child processes inherit it). The flavours
overwrite each other's files, so the wheel depends on none of them; its extras
(``c_embed_runtime[gpu]``, ``[openvino]``: python/pyproject.toml) install one.
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

#: Read by the library at its first create (src/ort/loader.rs).
ORT_PATH_ENV = "ORT_DYLIB_PATH"

_VERSIONED_NAME = re.compile(r"libonnxruntime\.so\.(\d+(?:\.\d+)*)$")


def installed_runtime() -> Path | None:
    """``libonnxruntime.so.1.*`` of the installed ``onnxruntime`` import package
    (the newest, if several), found without importing it; None if there is none."""
    try:
        spec = importlib.util.find_spec("onnxruntime")  # a top-level spec imports nothing
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    found = []
    for location in spec.submodule_search_locations:
        capi = Path(location) / "capi"
        if not capi.is_dir():
            continue
        for candidate in capi.iterdir():
            match = _VERSIONED_NAME.match(candidate.name)
            if match and candidate.is_file():
                found.append((tuple(int(part) for part in match.group(1).split(".")), candidate))
    return max(found)[1] if found else None


def prefer_installed_runtime() -> None:
    """Points ``$ORT_DYLIB_PATH`` at :func:`installed_runtime` unless the user set
    it or there is none (then the library loads its bundled copy)."""
    if os.environ.get(ORT_PATH_ENV):
        return
    runtime = installed_runtime()
    if runtime is not None:
        os.environ[ORT_PATH_ENV] = str(runtime)
