#!/usr/bin/env python3
"""Builds the platform wheel of the Python package, with the library and a CPU ONNX Runtime inside.

    tools/build_wheel.py [--library target/release/libc_embed_runtime.so] [--out build/wheel]

Writes ``c_embed_runtime-<version>-py3-none-manylinux_2_<N>_<arch>.whl`` and prints
its path. The wheel holds python/c_embed_runtime/*.py and c_embed_runtime.cpp.in, the library as
``c_embed_runtime/lib/libc_embed_runtime.so`` and, beside it, the ONNX Runtime the
library was built and tested with: the ``libonnxruntime.so.1.*`` and
``libonnxruntime_providers_shared.so`` that ``make build`` put beside the library
(the .venv's onnxruntime package's). The package prefers an installed onnxruntime
package of any flavour to that copy: see c_embed_runtime/_onnxruntime.py.

Where each fact comes from: the version from Cargo.toml; name, summary, licence,
Python floor, dependencies and extras from python/pyproject.toml; the platform tag
from the shared libraries themselves: the newest ``GLIBC_2.N`` symbol version any
of them needs (``objdump -T``), after checking that each needs no shared library
beyond those a manylinux system provides and the wheel's own. (The C++ runtime
versions the bundled ONNX Runtime needs are those of its own manylinux wheel, whose
glibc floor is not above the tag's.) The tag is ``py3-none``: the package loads the
library with ctypes and has no Python extension module.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import platform
import re
import subprocess
import sys
import zipfile
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    sys.exit("tools/build_wheel.py needs Python 3.11 or newer (tomllib, to read Cargo.toml and pyproject.toml)")

REPO = Path(__file__).resolve().parents[1]
PACKAGE_DIR = REPO / "python" / "c_embed_runtime"
PYPROJECT = REPO / "python" / "pyproject.toml"
LIBRARY_NAME = "libc_embed_runtime.so"
# The ONNX Runtime files `make build` puts beside the library: the versioned
# library (the wheel's only copy: a wheel holds no symlinks) and the provider bridge.
ONNXRUNTIME_PATTERNS = ("libonnxruntime.so.1.*", "libonnxruntime_providers_shared.so")

# The libraries a manylinux wheel may take from the system (PEP 600 / PEP 599).
SYSTEM_LIBRARIES = {
    "libc.so.6", "libm.so.6", "libdl.so.2", "libpthread.so.0", "librt.so.1",
    "libgcc_s.so.1", "libstdc++.so.6", "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1",
}  # fmt: skip
# A function the library exports only when built with the `text` feature.
TEXT_SYMBOL = "c_embed_runtime_embed_text"
# Fixed entry times, so the same inputs make the same wheel.
ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def package_files() -> list[Path]:
    """The package's modules and the drop-in source's template (_host_source.py reads it)."""
    return sorted([*PACKAGE_DIR.glob("*.py"), PACKAGE_DIR / "c_embed_runtime.cpp.in"])


def crate_version() -> str:
    return tomllib.loads((REPO / "Cargo.toml").read_text())["package"]["version"]


def _objdump(flag: str, library: Path) -> str:
    return subprocess.run(["objdump", flag, str(library)], check=True, capture_output=True, text=True).stdout


def bundled_onnxruntime(library: Path) -> list[Path]:
    """The ONNX Runtime files beside ``library``, one per pattern of ONNXRUNTIME_PATTERNS."""
    found = []
    for pattern in ONNXRUNTIME_PATTERNS:
        matches = sorted(path for path in library.parent.glob(pattern) if path.is_file() and not path.is_symlink())
        if len(matches) != 1:
            sys.exit(f"{library.parent} holds {len(matches)} files {pattern} (expected one): run `make build`")
        found += matches
    return found


def platform_tag(libraries: list[Path]) -> str:
    """``manylinux_2_N_<arch>`` for the newest glibc symbol version ``libraries`` need,
    after checking that they need no library beyond the system's and each other."""
    headers = {library: _objdump("-p", library) for library in libraries}
    provided = SYSTEM_LIBRARIES | {library.name for library in libraries}
    provided |= {soname for text in headers.values() for soname in re.findall(r"^\s*SONAME\s+(\S+)", text, re.M)}
    newest = (0, 0)
    for library, text in headers.items():
        foreign = sorted(set(re.findall(r"^\s*NEEDED\s+(\S+)", text, re.M)) - provided)
        if foreign:
            sys.exit(f"{library} needs {', '.join(foreign)}, which neither a manylinux system nor the wheel provides")
        versions = [tuple(map(int, v)) for v in re.findall(r"\bGLIBC_(\d+)\.(\d+)(?:\.\d+)?\b", _objdump("-T", library))]
        if not versions:
            sys.exit(f"{library} lists no GLIBC_ symbol versions: not a glibc library")
        newest = max(newest, *versions)
    major, minor = newest
    return f"manylinux_{major}_{minor}_{platform.machine()}"


def metadata(version: str) -> str:
    """The METADATA file (core metadata 2.4), from pyproject.toml's [project]."""
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    lines = [
        "Metadata-Version: 2.4",
        f"Name: {project['name']}",
        f"Version: {version}",
        f"Summary: {project['description']}",
        f"License-Expression: {project['license']}",
        f"Requires-Python: {project['requires-python']}",
    ]
    lines += [f"Requires-Dist: {requirement}" for requirement in project.get("dependencies", [])]
    for extra, requirements in project.get("optional-dependencies", {}).items():
        lines.append(f"Provides-Extra: {extra}")
        lines += [f'Requires-Dist: {requirement}; extra == "{extra}"' for requirement in requirements]
    return "\n".join(lines) + "\n"


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def build(library: Path, out_dir: Path) -> Path:
    if TEXT_SYMBOL not in _objdump("-T", library):
        sys.exit(f"{library} has no {TEXT_SYMBOL}: build it with the text feature (the default)")
    version = crate_version()
    onnxruntime = bundled_onnxruntime(library)
    tag = f"py3-none-{platform_tag([library, *onnxruntime])}"
    dist_info = f"c_embed_runtime-{version}.dist-info"
    files = [(f"c_embed_runtime/{source.name}", source.read_bytes(), 0o644) for source in package_files()]
    files.append((f"c_embed_runtime/lib/{LIBRARY_NAME}", library.read_bytes(), 0o755))
    files += [(f"c_embed_runtime/lib/{path.name}", path.read_bytes(), 0o755) for path in onnxruntime]
    wheel_file = f"Wheel-Version: 1.0\nGenerator: tools/build_wheel.py\nRoot-Is-Purelib: false\nTag: {tag}\n"
    files.append((f"{dist_info}/METADATA", metadata(version).encode(), 0o644))
    files.append((f"{dist_info}/WHEEL", wheel_file.encode(), 0o644))
    record = "".join(_record_line(name, data) + "\n" for name, data, _ in files) + f"{dist_info}/RECORD,,\n"
    files.append((f"{dist_info}/RECORD", record.encode(), 0o644))

    out_dir.mkdir(parents=True, exist_ok=True)
    wheel = out_dir / f"c_embed_runtime-{version}-{tag}.whl"
    partial = wheel.with_suffix(".partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data, mode in files:
            entry = zipfile.ZipInfo(name, date_time=ZIP_TIME)
            entry.external_attr = (0o100000 | mode) << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, data)
    partial.replace(wheel)
    return wheel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--library", type=Path, default=REPO / "target" / "release" / LIBRARY_NAME)
    parser.add_argument("--out", type=Path, default=REPO / "build" / "wheel")
    args = parser.parse_args()
    if not args.library.is_file():
        sys.exit(f"{args.library} is missing: run `make build`")
    print(build(args.library, args.out))


if __name__ == "__main__":
    main()
