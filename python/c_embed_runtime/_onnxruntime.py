"""Where the library bundled in the package (the wheel's) takes ONNX Runtime from.

The wheel ships no ONNX Runtime: it uses the one of the ``onnxruntime`` import
package installed beside it, whichever flavour installed it (``onnxruntime``,
``onnxruntime-gpu``, ``onnxruntime-openvino``: they all install
``onnxruntime/capi/libonnxruntime.so.1.*``). The flavours overwrite each other's
files, so the wheel depends on none of them; its extras pick one
(``c_embed_runtime[cpu]``, ``[gpu]``, ``[openvino]``: python/pyproject.toml).

Order: ``$ORT_DYLIB_PATH`` when the user set it, then the installed package's
library, which :func:`prefer_installed_runtime` hands to the library through
``$ORT_DYLIB_PATH`` of this process (read at the first create; child processes
inherit it). Without either, the library searches as a C host's would (beside
itself, then the system's), and a failed create says what to install.
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

#: Read by the library at its first create (src/loader.rs).
ORT_PATH_ENV = "ORT_DYLIB_PATH"

#: Appended to a create error that says ONNX Runtime could not be loaded.
MISSING_RUNTIME_HINT = (
    "no onnxruntime package is installed: pip install 'c_embed_runtime[cpu]' "
    "(or [gpu] for onnxruntime-gpu, [openvino] for onnxruntime-openvino), or set ORT_DYLIB_PATH"
)

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


def prefer_installed_runtime() -> str:
    """Points ``$ORT_DYLIB_PATH`` at :func:`installed_runtime` unless the user set
    it. Returns the hint for a failed load: ``""`` when a runtime was chosen."""
    if os.environ.get(ORT_PATH_ENV):
        return ""
    runtime = installed_runtime()
    if runtime is None:
        return MISSING_RUNTIME_HINT
    os.environ[ORT_PATH_ENV] = str(runtime)
    return ""
