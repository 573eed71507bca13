"""The installable package: `pip install ./python` with the library bundled,
where the library is loaded from (argument, $C_EMBED_RUNTIME_LIBRARY, bundled, source
checkout, system), and the version check at load.

The install works on a temporary copy of python/ (the bundled libraries are
copied into the copy), so the source tree stays clean."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import c_embed_runtime
from c_embed_runtime import EmbedRuntime, EmbedRuntimeError
from conftest import BUILT_LIBRARY, REPO, cargo_version

SENTENCE = "A man is playing a guitar."


def _environment(**extra) -> dict:
    """This environment without anything that picks a library or a package path."""
    drop = {c_embed_runtime.LIBRARY_ENV, c_embed_runtime.OLD_LIBRARY_ENV, "ORT_DYLIB_PATH", "PYTHONPATH", "PYTHONHOME"}
    return {k: v for k, v in os.environ.items() if k not in drop} | extra


def _run(script: str, cwd: Path, **env) -> dict:
    """Runs ``script`` in a fresh interpreter from ``cwd``; it prints one JSON line."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        cwd=cwd,
        env=_environment(**env),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _can_build_offline() -> bool:
    """Whether the venv's setuptools is what pyproject.toml's build-system asks
    for (>= 77), so pip can build without fetching it into an isolated environment."""
    if importlib.util.find_spec("setuptools") is None:
        return False
    import setuptools

    return int(setuptools.__version__.split(".")[0]) >= 77


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """`pip install --no-deps --target T` of a copy of python/ with the library and
    its ONNX Runtime bundled; returns T."""
    if not BUILT_LIBRARY.exists():
        pytest.fail(f"{BUILT_LIBRARY} is missing: run `make build`")
    work = tmp_path_factory.mktemp("package")
    source = work / "python"
    shutil.copytree(
        REPO / "python",
        source,
        ignore=shutil.ignore_patterns("tests", "__pycache__", "*.egg-info", "build", "lib"),
    )
    bundle = source / "c_embed_runtime" / "lib"
    bundle.mkdir()
    shutil.copy2(BUILT_LIBRARY, bundle)
    for runtime in BUILT_LIBRARY.parent.glob("libonnxruntime*.so*"):
        shutil.copy2(runtime, bundle)
    target = work / "site"
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(source)]
    if _can_build_offline():
        command.insert(4, "--no-build-isolation")
    done = subprocess.run(command, env=_environment(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return target


IMPORT_AND_EMBED = """
    import json, c_embed_runtime
    from c_embed_runtime import EmbedRuntime
    with EmbedRuntime({model!r}, device="CPU") as runtime:
        vector = runtime.embed({sentence!r})
        print(json.dumps({{
            "file": c_embed_runtime.__file__,
            "version": c_embed_runtime.__version__,
            "library": str(runtime.library_path),
            "default_library": str(c_embed_runtime.library_path()),
            "device": runtime.selected_device,
            "shape": list(vector.shape),
            "dtype": str(vector.dtype),
            "vector": vector.tolist(),
        }}))
"""


def test_the_package_version_is_the_crate_version():
    assert c_embed_runtime.__version__ == cargo_version()


def test_installed_package_loads_its_bundled_library_and_embeds(installed, real_model, lib, tmp_path):
    found = _run(IMPORT_AND_EMBED.format(model=str(real_model), sentence=SENTENCE), tmp_path, PYTHONPATH=str(installed))
    package = installed / "c_embed_runtime"
    assert Path(found["file"]).resolve() == (package / "__init__.py").resolve()
    assert found["version"] == cargo_version()
    bundled = (package / "lib" / "libc_embed_runtime.so").resolve()
    assert Path(found["library"]) == bundled and Path(found["default_library"]) == bundled
    assert found["device"] == "CPU" and found["shape"] == [384] and found["dtype"] == "float32"
    # The same vector as the checkout's build gives.
    with EmbedRuntime(real_model, "CPU", library=lib) as runtime:
        np.testing.assert_allclose(np.float32(found["vector"]), runtime.embed(SENTENCE), rtol=0, atol=1e-6)
    metadata = next(installed.glob("c_embed_runtime-*.dist-info")) / "METADATA"
    assert f"Version: {cargo_version()}\n" in metadata.read_text()


@pytest.mark.parametrize("variable", [c_embed_runtime.LIBRARY_ENV, c_embed_runtime.OLD_LIBRARY_ENV])
def test_environment_override_wins_over_the_bundled_library(installed, test_model, tmp_path, variable):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for library in [BUILT_LIBRARY, *BUILT_LIBRARY.parent.glob("libonnxruntime*.so*")]:
        shutil.copy2(library, elsewhere)
    script = f"""
        import json, c_embed_runtime
        runtime = c_embed_runtime.EmbedRuntime({str(test_model("tiny_bert"))!r}, "CPU", 16, 24)
        print(json.dumps({{"library": str(runtime.library_path), "n": len(runtime.embed_ids(list(range(16))))}}))
    """
    override = elsewhere / "libc_embed_runtime.so"
    found = _run(script, tmp_path, PYTHONPATH=str(installed), **{variable: str(override)})
    assert found == {"library": str(override.resolve()), "n": 24}


def test_an_unloadable_override_is_an_error_and_nothing_else_is_tried(installed, tmp_path):
    script = """
        import json, c_embed_runtime
        try:
            c_embed_runtime.load()
        except c_embed_runtime.EmbedRuntimeError as failure:
            print(json.dumps({"error": str(failure)}))
    """
    missing = "/nonexistent/libc_embed_runtime.so"
    found = _run(script, tmp_path, PYTHONPATH=str(installed), **{c_embed_runtime.LIBRARY_ENV: missing})
    assert found["error"].startswith(f"{missing} ({c_embed_runtime.LIBRARY_ENV}): ")


def test_a_source_checkout_uses_its_release_build(tmp_path):
    # A checkout's layout (Cargo.toml, python/c_embed_runtime without a bundled
    # library, target/release/): the package falls back to target/release.
    checkout = tmp_path / "checkout"
    shutil.copytree(
        REPO / "python" / "c_embed_runtime",
        checkout / "python" / "c_embed_runtime",
        ignore=shutil.ignore_patterns("lib", "__pycache__"),
    )
    (checkout / "Cargo.toml").write_text('[package]\nname = "c_embed_runtime"\n')
    release = checkout / "target" / "release"
    release.mkdir(parents=True)
    shutil.copy2(BUILT_LIBRARY, release)
    for runtime in BUILT_LIBRARY.parent.glob("libonnxruntime*.so*"):
        (release / runtime.name).symlink_to(runtime)
    script = """
        import json, c_embed_runtime
        print(json.dumps({"library": str(c_embed_runtime.library_path()),
                          "candidates": c_embed_runtime.library_candidates()}))
    """
    found = _run(script, tmp_path, PYTHONPATH=str(checkout / "python"))
    built = release / "libc_embed_runtime.so"
    assert found["library"] == str(built.resolve())
    assert found["candidates"] == [
        ["bundled", str((checkout / "python" / "c_embed_runtime" / "lib" / "libc_embed_runtime.so").resolve())],
        ["source checkout", str(built.resolve())],
        ["system", "libc_embed_runtime.so.0"],
    ]


def test_without_any_library_the_error_lists_every_place_tried(tmp_path):
    # A copy of the package outside any checkout and without a bundled library.
    shutil.copytree(REPO / "python" / "c_embed_runtime", tmp_path / "c_embed_runtime", ignore=shutil.ignore_patterns("lib"))
    script = """
        import json, c_embed_runtime
        try:
            print(json.dumps({"library": str(c_embed_runtime.library_path())}))
        except c_embed_runtime.EmbedRuntimeError as failure:
            print(json.dumps({"error": str(failure)}))
    """
    found = _run(script, tmp_path, PYTHONPATH=str(tmp_path))
    if "library" in found:  # `make install` put one on this machine: the system's, found last
        assert not found["library"].startswith(str(tmp_path)) and not found["library"].startswith(str(REPO))
        return
    bundled = tmp_path / "c_embed_runtime" / "lib" / "libc_embed_runtime.so"
    assert found["error"].startswith(f"could not load libc_embed_runtime.so; tried {bundled} (bundled): not found; ")
    assert "libc_embed_runtime.so.0 (system): " in found["error"]
    assert "source checkout" not in found["error"]
    assert found["error"].endswith(f"(set {c_embed_runtime.LIBRARY_ENV} to its path)")


@pytest.mark.parametrize("expected", ["0.3.0", "1.2.0", "0.1.9"])
def test_a_library_of_another_major_minor_is_refused(monkeypatch, expected):
    monkeypatch.setattr(c_embed_runtime, "__version__", expected)
    library_version = cargo_version()
    with pytest.raises(EmbedRuntimeError) as failure:
        c_embed_runtime.load(BUILT_LIBRARY)
    message = str(failure.value)
    assert library_version in message and expected in message
    assert message == (
        f"{BUILT_LIBRARY} is libc_embed_runtime {library_version}, but the Python package "
        f"c_embed_runtime {expected} needs {'.'.join(expected.split('.')[:2])}.x"
    )
    with pytest.raises(EmbedRuntimeError, match="needs"):
        EmbedRuntime(REPO / "models" / "test" / "tiny_bert.onnx", library=BUILT_LIBRARY)


def test_another_patch_version_is_accepted(monkeypatch):
    major, minor, patch = cargo_version().split(".")
    monkeypatch.setattr(c_embed_runtime, "__version__", f"{major}.{minor}.{int(patch) + 7}")
    assert c_embed_runtime.load(BUILT_LIBRARY).c_embed_runtime_version().decode() == cargo_version()


def test_a_library_without_the_functions_is_refused():
    # The C math library loads fine but is not this library.
    with pytest.raises(EmbedRuntimeError, match=r"has no c_embed_runtime_create: not a c_embed_runtime \d+\.\d+ library"):
        c_embed_runtime.load("libm.so.6")
