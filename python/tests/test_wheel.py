"""The wheel (tools/build_wheel.py) installed as a user would: into a fresh venv
outside the checkout, used from another directory with no environment variable.

Run by `make test-wheel` (not by `make test-python`: it installs packages). pip
takes numpy and onnxruntime at the versions of the project's .venv, so its cache
usually serves them."""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import textwrap
import venv
import zipfile
from pathlib import Path

import numpy as np
import pytest

from c_embed_runtime import EmbedRuntime
from conftest import BUILT_LIBRARY, REPO, cargo_version

SENTENCE = "A man is playing a guitar."
# Anything that would pick a library, a runtime or a package path for the venv.
DROPPED_ENVIRONMENT = {"C_EMBED_RUNTIME_LIB", "ORT_DYLIB_PATH", "PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}

EMBED = """
    import json, c_embed_runtime
    with c_embed_runtime.EmbedRuntime({model!r}, device="CPU") as runtime:
        vector = runtime.embed({sentence!r})
        maps = open("/proc/self/maps").read().split()
        print(json.dumps({{
            "library": str(runtime.library_path),
            "onnxruntime": sorted({{p for p in maps if "/libonnxruntime.so" in p}}),
            "vector": vector.tolist(),
        }}))
"""

NO_RUNTIME = """
    import importlib.util, json, c_embed_runtime
    try:
        c_embed_runtime.EmbedRuntime({model!r}, device="CPU")
        print(json.dumps({{"error": None, "onnxruntime": importlib.util.find_spec("onnxruntime") is not None}}))
    except c_embed_runtime.EmbedRuntimeError as failure:
        print(json.dumps({{"error": str(failure), "onnxruntime": importlib.util.find_spec("onnxruntime") is not None}}))
"""


def _environment() -> dict:
    return {k: v for k, v in os.environ.items() if k not in DROPPED_ENVIRONMENT}


def _run(command: list[str], cwd: Path, timeout: int = 600) -> str:
    done = subprocess.run(command, cwd=cwd, env=_environment(), capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout}{done.stderr}"
    return done.stdout


def _python(interpreter: Path, script: str, cwd: Path) -> dict:
    return json.loads(_run([str(interpreter), "-c", textwrap.dedent(script)], cwd).strip().splitlines()[-1])


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


def test_the_wheel_holds_the_library_and_no_onnx_runtime(wheel):
    assert wheel.name.startswith(f"c_embed_runtime-{cargo_version()}-py3-none-manylinux_2_")
    names = zipfile.ZipFile(wheel).namelist()
    assert "c_embed_runtime/lib/libc_embed_runtime.so" in names
    assert "c_embed_runtime/__main__.py" in names and "c_embed_runtime/_onnxruntime.py" in names
    assert not [name for name in names if "libonnxruntime" in name]
    metadata = zipfile.ZipFile(wheel).read(f"c_embed_runtime-{cargo_version()}.dist-info/METADATA").decode()
    requirements = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    # numpy is the only plain dependency; each ONNX Runtime flavour is an extra.
    assert [r for r in requirements if "extra ==" not in r] == ["Requires-Dist: numpy"]
    for extra, distribution in {"cpu": "onnxruntime", "gpu": "onnxruntime-gpu", "openvino": "onnxruntime-openvino"}.items():
        assert f'Requires-Dist: {distribution}>=1.24; extra == "{extra}"' in requirements


def test_without_onnx_runtime_the_error_names_what_to_install(wheel, fresh_venv, elsewhere, real_model):
    _pip_install(fresh_venv, str(wheel), cwd=elsewhere)
    found = _python(fresh_venv, NO_RUNTIME.format(model=str(real_model)), elsewhere)
    assert found["onnxruntime"] is False
    if found["error"] is None:
        pytest.skip("this machine has a system ONNX Runtime, which the library found")
    assert found["error"].startswith("std_create_error:could not load ONNX Runtime")
    assert "pip install 'c_embed_runtime[cpu]'" in found["error"] and "[gpu]" in found["error"]


def test_the_cpu_extra_embeds_text_from_another_directory(wheel, fresh_venv, elsewhere, real_model, lib):
    _pip_install(fresh_venv, f"{wheel}[cpu]", cwd=elsewhere)
    site = Path(_run([str(fresh_venv), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], elsewhere).strip())
    found = _python(fresh_venv, EMBED.format(model=str(real_model), sentence=SENTENCE), elsewhere)
    assert found["library"] == str((site / "c_embed_runtime" / "lib" / "libc_embed_runtime.so").resolve())
    assert [Path(p).parent for p in found["onnxruntime"]] == [(site / "onnxruntime" / "capi").resolve()]
    # The same vector as the checkout's build gives.
    with EmbedRuntime(real_model, "CPU", library=lib) as runtime:
        np.testing.assert_allclose(np.float32(found["vector"]), runtime.embed(SENTENCE), rtol=0, atol=1e-6)


def test_python_m_embeds_the_command_line_text(fresh_venv, elsewhere, real_model):
    # After the previous test installed the cpu extra.
    out = _run([str(fresh_venv), "-m", "c_embed_runtime", "--model", str(real_model), "some text"], elsewhere)
    rows = [json.loads(line) for line in out.splitlines()]
    assert [row["text"] for row in rows] == ["some text"]
    vector = np.float32(rows[0]["vector"])
    assert vector.shape == (384,) and abs(float(np.linalg.norm(vector)) - 1) < 1e-4
