"""Prints what each execution class costs (docs/models.md, "Which models run how").

Usage: .venv/bin/python bench/execution_classes.py   (after make setup && make build)

For paraphrase-MiniLM-L3-v2 fp32 (class a) and the same model quantised by
onnxruntime.quantization.quantize_dynamic (made here, in a temporary directory;
class c), on the sentences of bench/sentences.txt at seq_len 128, one thread:
the create time (the self-check included), the time per sentence embedded one
per call and as one batch of 12, in the default mode and with
C_EMBED_RUNTIME_PADDED=1, and how far the default vectors are from the padded
ones and batch rows from single rows (max absolute difference).
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "python"))

import c_embed_runtime  # noqa: E402
from c_embed_runtime import EmbedRuntime, Tokenizer  # noqa: E402

SEQ_LEN, ROUNDS = 128, 5


def timed(fn, rounds=ROUNDS):
    fn()  # warm-up: every run shape
    start = time.perf_counter()
    for _ in range(rounds):
        result = fn()
    return (time.perf_counter() - start) / rounds, result


def measure(lib, model, ids, mask, padded):
    os.environ.pop("C_EMBED_RUNTIME_PADDED", None)
    if padded:
        os.environ["C_EMBED_RUNTIME_PADDED"] = "1"
    start = time.perf_counter()
    runtime = EmbedRuntime(model, "CPU", SEQ_LEN, 384, 1, library=lib)
    create = time.perf_counter() - start
    os.environ.pop("C_EMBED_RUNTIME_PADDED", None)
    with runtime:
        single, singles = timed(lambda: np.stack([runtime.embed_ids(i, m) for i, m in zip(ids, mask)]))
        batch, batched = timed(lambda: runtime.embed_batch_ids(ids, mask))
    return create, single / len(ids), batch / len(ids), singles, batched


def main():
    lib = c_embed_runtime.load(REPO / "target" / "release" / "libc_embed_runtime.so")
    tokenize = Tokenizer(REPO / "models" / "all-MiniLM-L6-v2" / "tokenizer.json", SEQ_LEN)
    lines = (REPO / "bench" / "sentences.txt").read_text().splitlines()
    sentences = [s for s in lines if s.strip() and not s.startswith("#")]
    ids, mask, _ = (np.stack(a) for a in zip(*(tokenize(s) for s in sentences)))
    fp32 = REPO / "models" / "paraphrase-MiniLM-L3-v2" / "model.onnx"
    with tempfile.TemporaryDirectory() as tmp:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        logging.getLogger().setLevel(logging.ERROR)
        int8 = Path(tmp) / "model_quantized.onnx"
        quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)
        print(f"{len(ids)} sentences, seq_len {SEQ_LEN}, 1 thread, times per sentence")
        print("| model | mode | create (ms) | one per call (ms) | one batch (ms) | batch rows vs singles | default vs padded |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for name, model in (("paraphrase-MiniLM-L3-v2 fp32", fp32), ("same, quantize_dynamic int8", int8)):
            default = measure(lib, model, ids, mask, padded=False)
            padded = measure(lib, model, ids, mask, padded=True)
            for mode, (create, single, batch, singles, batched) in (("default", default), ("padded", padded)):
                rows_diff = float(np.abs(batched - singles).max())
                vs_padded = float(np.abs(default[3] - padded[3]).max())
                print(f"| {name} | {mode} | {create * 1e3:.0f} | {single * 1e3:.2f} | {batch * 1e3:.2f} "
                      f"| {rows_diff:.1e} | {vs_padded:.1e} |")


if __name__ == "__main__":
    main()
