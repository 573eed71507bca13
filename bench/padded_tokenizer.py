"""A tokenizer.json that pads to a fixed length, with a host that sets the mask
to 1 on every id it gets (docs/hosts.md, "Hosts that build the old library from source").

usage: padded_tokenizer.py MODEL TOKENIZER_JSON [SEQ_LEN]

Embeds bench/sentences.txt one text per call through the library, as the host
does: ids from the `tokenizers` package, truncated to seq_len and padded with 0.
Prints ms per call and the vectors' difference for two masks:
- as the host builds it: 1 on every id, so the tokenizer's [PAD] ids count as
  tokens and every call runs all seq_len positions;
- the fix: the encoding's own attention mask (0 on the [PAD] ids).

Environment: C_EMBED_RUNTIME_LIBRARY (default: the checkout's release build).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "python"))
os.environ.setdefault("C_EMBED_RUNTIME_LIBRARY", str(REPO / "target" / "release" / "libc_embed_runtime.so"))
from c_embed_runtime import EmbedRuntime  # noqa: E402


def rows(tokenizer: Tokenizer, texts: list[str], seq_len: int, fixed: bool):
    for encoding in tokenizer.encode_batch(texts):
        ids = encoding.ids[:seq_len]
        mask = encoding.attention_mask[:seq_len] if fixed else [1] * len(ids)  # the one-line fix
        pad = [0] * (seq_len - len(ids))
        yield (np.array(ids + pad, np.int64), np.array(mask + pad, np.int64),
               np.array(encoding.type_ids[:seq_len] + pad, np.int64))


def per_call(runtime: EmbedRuntime, token_rows) -> tuple[float, np.ndarray]:
    for ids, mask, types in token_rows[:5]:  # warm-up
        runtime.embed_ids(ids, mask, types)
    start = time.perf_counter()
    vectors = np.array([runtime.embed_ids(ids, mask, types) for ids, mask, types in token_rows])
    return (time.perf_counter() - start) * 1e3 / len(token_rows), vectors


def main(argv: list[str]) -> int:
    model, tokenizer_json = argv[1], argv[2]
    seq_len = int(argv[3]) if len(argv) > 3 else 128
    texts = [line for line in (REPO / "bench" / "sentences.txt").read_text().splitlines() if line]
    tokenizer = Tokenizer.from_file(tokenizer_json)
    print(f"{len(texts)} texts, seq_len {seq_len}, padding of {tokenizer_json}: {tokenizer.padding}")
    with EmbedRuntime(model, "CPU", seq_len=seq_len, out_dim=384, threads=1) as runtime:
        as_is_ms, as_is = per_call(runtime, list(rows(tokenizer, texts, seq_len, fixed=False)))
        fixed_ms, fixed = per_call(runtime, list(rows(tokenizer, texts, seq_len, fixed=True)))
    cosine = np.sum(as_is * fixed, axis=1)
    print(f"mask 1 on every id (the host as it is): {as_is_ms:.2f} ms per call")
    print(f"the encoding's attention mask (fixed):  {fixed_ms:.2f} ms per call ({as_is_ms / fixed_ms:.1f}x faster)")
    print(f"vectors as-is vs fixed: cosine min {cosine.min():.4f}, median {np.median(cosine):.4f}; "
          f"max abs difference {np.abs(as_is - fixed).max():.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
