"""The ONNX Runtime builds of the version matrix, fetched once into a cache.

    python tools/ort_versions.py fetch      download what is missing, keep the libraries
    python tools/ort_versions.py list       one line per build: name and its libonnxruntime.so

Each build is a wheel fetched by package name (`pip download <pkg>==<ver>
--no-deps`), of which only `onnxruntime/capi/*.so*` is kept (ONNX Runtime, its
provider libraries and, in the OpenVINO wheels, the OpenVINO libraries and
plugins the provider loads beside it), in <cache>/<pkg>-<ver>/. The cache is
.cache/ort in the checkout, or $C_EMBED_RUNTIME_ORT_CACHE (git-ignored).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CACHE_ENV = "C_EMBED_RUNTIME_ORT_CACHE"

# (package, version, flavour): the oldest supported, the hosts' 1.22.0, the
# newest of 1.24, and the newest release when this list was written; the
# OpenVINO flavour at the hosts' 1.22.0 and its newest.
BUILDS = [
    ("onnxruntime", "1.20.1", "cpu"),
    ("onnxruntime", "1.22.0", "cpu"),
    ("onnxruntime", "1.24.4", "cpu"),
    ("onnxruntime", "1.32.0", "cpu"),
    ("onnxruntime-openvino", "1.22.0", "openvino"),
    ("onnxruntime-openvino", "1.24.1", "openvino"),
]

# The Python extension module is the only shared object the library never loads.
SKIP_PREFIX = "onnxruntime_pybind11_state"


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or REPO / ".cache" / "ort")


def build_dir(package: str, version: str) -> Path:
    return cache_dir() / f"{package}-{version}"


def library(package: str, version: str) -> Path:
    """The build's libonnxruntime.so.<version>."""
    return build_dir(package, version) / f"libonnxruntime.so.{version}"


def fetch_one(package: str, version: str) -> None:
    target = build_dir(package, version)
    if library(package, version).exists():
        return
    with tempfile.TemporaryDirectory() as download:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
             "--no-deps", "--only-binary=:all:", "-d", download, f"{package}=={version}"],
            check=True,
        )
        (wheel,) = Path(download).glob("*.whl")
        partial = target.with_name(target.name + ".partial")
        partial.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheel) as archive:
            for member in archive.namelist():
                path = Path(member)
                if path.parent.as_posix() != "onnxruntime/capi" or ".so" not in path.name:
                    continue
                if path.name.startswith(SKIP_PREFIX):
                    continue
                (partial / path.name).write_bytes(archive.read(member))
        partial.rename(target)
    print(f"fetched {package} {version} into {target}")


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "list"
    if command == "fetch":
        for package, version, _ in BUILDS:
            fetch_one(package, version)
    elif command == "list":
        for package, version, flavour in BUILDS:
            print(f"{package}-{version}\t{flavour}\t{library(package, version)}")
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
