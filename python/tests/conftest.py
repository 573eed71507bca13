"""Fixtures: the library (loaded once, as the legacy host does) and the models."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "python"))

import c_embed_runtime  # noqa: E402

TEST_MODELS = REPO / "models" / "test"
REAL_MODEL_DIR = REPO / "models" / "all-MiniLM-L6-v2"


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.fail(f"{path} is missing: run `make setup`")
    return path


@pytest.fixture(scope="session")
def lib():
    return c_embed_runtime.load()


@pytest.fixture(scope="session")
def test_model():
    return lambda name: _require(TEST_MODELS / f"{name}.onnx")


@pytest.fixture(scope="session")
def real_model():
    return _require(REAL_MODEL_DIR / "model.onnx")


@pytest.fixture(scope="session")
def tokenizer_json():
    return _require(REAL_MODEL_DIR / "tokenizer.json")
