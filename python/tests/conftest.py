"""Fixtures: the library (loaded once, as the legacy host does) and the models.

The tests run the package from this checkout (python/ first on sys.path) against
the checkout's release build (`make build`), or the library $C_EMBED_RUNTIME_LIBRARY
names. $C_EMBED_RUNTIME_LIBRARY is set for the whole test process, so that every load,
explicit or default, gets that one library: a bundled copy left in
python/c_embed_runtime/lib/ is never what gets tested, and never a second copy of
the library (with a second ONNX Runtime) in the same process. Tests of the default
search run in subprocesses without it (test_package.py)."""

from __future__ import annotations

import os
import re
import sys
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "python"))

import c_embed_runtime  # noqa: E402

BUILT_LIBRARY = REPO / "target" / "release" / "libc_embed_runtime.so"
TEST_MODELS = REPO / "models" / "test"
REAL_MODEL_DIR = REPO / "models" / "all-MiniLM-L6-v2"
PARAPHRASE_MODEL = REPO / "models" / "paraphrase-MiniLM-L3-v2" / "model.onnx"
os.environ.setdefault(c_embed_runtime.LIBRARY_ENV, str(BUILT_LIBRARY))


def cargo_version() -> str:
    """The package version in Cargo.toml."""
    text = (REPO / "Cargo.toml").read_text()
    try:
        import tomllib
    except ModuleNotFoundError:  # Python < 3.11: the [package] table's version line
        package = re.search(r"^\[package\]\s*$(.*?)(?=^\[|\Z)", text, re.M | re.S).group(1)
        return re.search(r'^version\s*=\s*"([^"]+)"', package, re.M).group(1)
    return tomllib.loads(text)["package"]["version"]


def _contract_errors() -> dict[str, str]:
    """The contract's fixed error strings by name, whole: c_tests/contract_errors.h,
    which build.rs generates from src/error_strings.rs (their one source)."""
    header = (REPO / "c_tests" / "contract_errors.h").read_text()
    return dict(re.findall(r'^#define (\w+) "([^"]*)"$', header, re.M))


#: e.g. ``ERRORS["INVALID_ROWS"] == "std_error:invalid_rows"``.
ERRORS = _contract_errors()


def header_prototypes() -> dict[str, tuple[str, list[str]]]:
    """Each function include/c_embed_runtime.h declares (generated from the code):
    name -> (return type, parameter types), C spelling with single spaces."""
    header = re.sub(r"/\*.*?\*/|//[^\n]*", "", (REPO / "include" / "c_embed_runtime.h").read_text(), flags=re.S)
    found = {}
    for returns, name, params in re.findall(r"([A-Za-z_][\w \*]*?)\s*\b(c_embed_runtime_\w+)\(([^)]*)\);", header):
        types = []
        for param in params.split(","):
            param = " ".join(param.split())
            if param and param != "void":
                types.append(re.sub(r"\s*\w+$", "", param).replace(" *", "*").replace("*", " *").strip())
        found[name] = (" ".join(returns.replace("*", " *").split()), types)
    return found


def run_in_threads(worker, count: int) -> None:
    """Runs worker(0) .. worker(count - 1) on their own threads at once and waits."""
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.fail(f"{path} is missing: run `make setup` and `make build`")
    return path


@pytest.fixture(scope="session")
def lib():
    return c_embed_runtime.load(_require(Path(os.environ[c_embed_runtime.LIBRARY_ENV])))


@pytest.fixture(scope="session")
def test_model():
    return lambda name: _require(TEST_MODELS / f"{name}.onnx")


@pytest.fixture(scope="session")
def real_model():
    return _require(REAL_MODEL_DIR / "model.onnx")


@pytest.fixture(scope="session")
def paraphrase_model():
    """paraphrase-MiniLM-L3-v2 (fp32; its vocabulary is all-MiniLM-L6-v2's tokenizer's)."""
    return _require(PARAPHRASE_MODEL)


@pytest.fixture(scope="session")
def tokenizer_json():
    return _require(REAL_MODEL_DIR / "tokenizer.json")
