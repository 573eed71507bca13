"""The wheel (tools/build_wheel.py) installed as a user would: into a fresh venv
outside the checkout, used from another directory with no environment variable.

Run by `make test-wheel` (not by `make test-python`: it installs packages). pip
takes numpy and onnxruntime at the versions of the project's .venv, so its cache
usually serves them."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
import textwrap
import venv
import zipfile
from pathlib import Path

import numpy as np
import pytest

from c_embed_runtime import LIBRARY_ENV, OLD_LIBRARY_ENV, EmbedRuntime
from conftest import BUILT_LIBRARY, REPO, cargo_version

SENTENCE = "A man is playing a guitar."
# Anything that would pick a library, a runtime or a package path for the venv.
DROPPED_ENVIRONMENT = {LIBRARY_ENV, OLD_LIBRARY_ENV, "ORT_DYLIB_PATH", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}

EMBED = """
    import importlib.util, json, c_embed_runtime
    with c_embed_runtime.EmbedRuntime({model!r}, device="CPU") as runtime:
        vector = runtime.embed({sentence!r})
        maps = open("/proc/self/maps").read().split()
        print(json.dumps({{
            "library": str(runtime.library_path),
            "onnxruntime": sorted({{p for p in maps if "/libonnxruntime.so" in p}}),
            "onnxruntime_package": importlib.util.find_spec("onnxruntime") is not None,
            "vector": vector.tolist(),
        }}))
"""

def _environment(**added: str) -> dict:
    return {**{k: v for k, v in os.environ.items() if k not in DROPPED_ENVIRONMENT}, **added}


def _run(command: list[str], cwd: Path, timeout: int = 600, **environment: str) -> str:
    done = subprocess.run(
        command, cwd=cwd, env=_environment(**environment), capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout}{done.stderr}"
    return done.stdout


def _python(interpreter: Path, script: str, cwd: Path, **environment: str) -> dict:
    out = _run([str(interpreter), "-c", textwrap.dedent(script)], cwd, **environment)
    return json.loads(out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    if not BUILT_LIBRARY.exists():
        pytest.fail(f"{BUILT_LIBRARY} is missing: run `make build`")
    out = tmp_path_factory.mktemp("wheel")
    built = _run([sys.executable, str(REPO / "tools" / "build_wheel.py"), "--out", str(out)], REPO)
    return Path(built.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory) -> Path:
    """A new venv under the temporary directory, with pip and nothing else."""
    where = tmp_path_factory.mktemp("venv")
    venv.EnvBuilder(with_pip=True, clear=True).create(where)
    return where / "bin" / "python"


@pytest.fixture(scope="module")
def elsewhere(tmp_path_factory) -> Path:
    """A working directory outside the checkout."""
    return tmp_path_factory.mktemp("elsewhere")


def _pip_install(interpreter: Path, *requirements: str, cwd: Path) -> None:
    # The .venv's numpy and onnxruntime versions, so pip's cache can serve them.
    pins = [f"{name}=={importlib.metadata.version(name)}" for name in ("numpy", "onnxruntime")]
    constraints = cwd / "constraints.txt"
    constraints.write_text("\n".join(pins) + "\n")
    _run([str(interpreter), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
          "-c", str(constraints), *requirements], cwd)  # fmt: skip


def _onnxruntime_version() -> str:
    """The .venv's onnxruntime: what `make build` put beside the library, and so what the wheel bundles."""
    return importlib.metadata.version("onnxruntime")


def _site(interpreter: Path, cwd: Path) -> Path:
    out = _run([str(interpreter), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd)
    return Path(out.strip()).resolve()


def _glibc_floor(tag: str) -> tuple[int, int]:
    major, minor = re.search(r"manylinux_(\d+)_(\d+)_", tag).groups()
    return int(major), int(minor)


def test_the_wheel_holds_the_library_and_the_cpu_onnx_runtime(wheel):
    assert wheel.name.startswith(f"c_embed_runtime-{cargo_version()}-py3-none-manylinux_2_")
    archive = zipfile.ZipFile(wheel)
    names = archive.namelist()
    assert "c_embed_runtime/__main__.py" in names and "c_embed_runtime/_onnxruntime.py" in names
    assert sorted(name for name in names if "/lib/" in name) == [
        "c_embed_runtime/lib/libc_embed_runtime.so",
        f"c_embed_runtime/lib/libonnxruntime.so.{_onnxruntime_version()}",
        "c_embed_runtime/lib/libonnxruntime_providers_shared.so",
    ]
    # The tag promises no older glibc than the bundled ONNX Runtime's own wheel does.
    ort_wheel = importlib.metadata.distribution("onnxruntime").read_text("WHEEL")
    ort_tag = re.search(r"^Tag: .*$", ort_wheel, re.M).group(0)
    assert _glibc_floor(wheel.name) >= _glibc_floor(ort_tag)
    metadata = archive.read(f"c_embed_runtime-{cargo_version()}.dist-info/METADATA").decode()
    requirements = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    # numpy is the only plain dependency; the gpu and openvino flavours are extras.
    assert [r for r in requirements if "extra ==" not in r] == ["Requires-Dist: numpy"]
    for extra, distribution in {"gpu": "onnxruntime-gpu", "openvino": "onnxruntime-openvino"}.items():
        assert f'Requires-Dist: {distribution}>=1.24; extra == "{extra}"' in requirements


def test_a_plain_install_embeds_text_with_the_bundled_runtime(wheel, fresh_venv, elsewhere, real_model, lib):
    _pip_install(fresh_venv, str(wheel), cwd=elsewhere)
    bundled = _site(fresh_venv, elsewhere) / "c_embed_runtime" / "lib"
    found = _python(fresh_venv, EMBED.format(model=str(real_model), sentence=SENTENCE), elsewhere)
    assert found["onnxruntime_package"] is False
    assert found["library"] == str(bundled / "libc_embed_runtime.so")
    assert found["onnxruntime"] == [str(bundled / f"libonnxruntime.so.{_onnxruntime_version()}")]
    # The same vector as the checkout's build gives.
    with EmbedRuntime(real_model, "CPU", library=lib) as runtime:
        np.testing.assert_allclose(np.float32(found["vector"]), runtime.embed(SENTENCE), rtol=0, atol=1e-6)


def test_python_m_embeds_the_command_line_text(fresh_venv, elsewhere, real_model):
    # After the previous test's plain install.
    out = _run([str(fresh_venv), "-m", "c_embed_runtime", "--model", str(real_model), "some text"], elsewhere)
    rows = [json.loads(line) for line in out.splitlines()]
    assert [row["text"] for row in rows] == ["some text"]
    vector = np.float32(rows[0]["vector"])
    assert vector.shape == (384,) and abs(float(np.linalg.norm(vector)) - 1) < 1e-4


def test_python_m_host_source_prints_the_drop_in_source_for_the_wheels_library(fresh_venv, elsewhere, tmp_path):
    # After the plain install.
    source = _run([str(fresh_venv), "-m", "c_embed_runtime", "host-source"], elsewhere)
    bundled = _site(fresh_venv, elsewhere) / "c_embed_runtime" / "lib" / "libc_embed_runtime.so"
    assert f'#define CER_DEFAULT_LIBRARY "{bundled}"' in source
    # Built as the host builds it, it opens that library.
    (tmp_path / "c_embed_runtime.cpp").write_text(source)
    _run(["g++", "-O3", "-fPIC", "-shared", "-std=c++17", "c_embed_runtime.cpp", "-o", "host.so"], tmp_path)
    opened = _run([str(fresh_venv), "-c", "import ctypes, sys; lib = ctypes.CDLL(sys.argv[1], mode=ctypes.RTLD_GLOBAL); "
                   "lib.c_embed_runtime_version.restype = ctypes.c_char_p; print(lib.c_embed_runtime_version().decode()); "
                   "print(open('/proc/self/maps').read())", str(tmp_path / "host.so")], elsewhere)
    assert opened.splitlines()[0] == cargo_version()
    assert str(bundled) in opened


def test_an_installed_onnxruntime_package_wins_over_the_bundled_copy(fresh_venv, elsewhere, real_model):
    # After the plain install: the flavour a gpu or openvino user would have, here the CPU one.
    _pip_install(fresh_venv, f"onnxruntime=={_onnxruntime_version()}", cwd=elsewhere)
    site = _site(fresh_venv, elsewhere)
    script = EMBED.format(model=str(real_model), sentence=SENTENCE)
    found = _python(fresh_venv, script, elsewhere)
    assert found["onnxruntime_package"] is True
    assert found["onnxruntime"] == [str(site / "onnxruntime" / "capi" / f"libonnxruntime.so.{_onnxruntime_version()}")]
    # ORT_DYLIB_PATH set by the user wins over both.
    bundled = site / "c_embed_runtime" / "lib" / f"libonnxruntime.so.{_onnxruntime_version()}"
    found = _python(fresh_venv, script, elsewhere, ORT_DYLIB_PATH=str(bundled))
    assert found["onnxruntime"] == [str(bundled)]
