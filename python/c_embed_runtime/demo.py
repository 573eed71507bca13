"""The demo: embed a few sentences with the real model through the C ABI, as the
legacy Python host does, and show that paraphrases score above unrelated pairs.

Run with `make demo` (or `python -m c_embed_runtime.demo --model M --tokenizer T`).
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np

from . import EmbedRuntime

#: Three pairs of paraphrases; sentences of different pairs are unrelated.
SENTENCES = [
    "A man is playing a guitar.",
    "Someone is strumming a guitar.",
    "The stock market fell sharply today.",
    "Share prices dropped steeply this afternoon.",
    "A cat is sleeping on the sofa.",
    "The kitten naps on the couch.",
]


def is_paraphrase(i: int, j: int) -> bool:
    return i // 2 == j // 2


def embed_all(model, tokenizer_json, device="CPU", seq_len=128, out_dim=384, threads=1):
    """Vectors of SENTENCES (one per row) and the device that computed them."""
    with EmbedRuntime(model, device, seq_len, out_dim, threads, strict=True, tokenizer=tokenizer_json) as runtime:
        vectors = np.stack([runtime.embed(s) for s in SENTENCES])
        return vectors, runtime.selected_device


def paraphrase_margin(similarity: np.ndarray) -> float:
    """Lowest paraphrase score minus highest unrelated score (> 0: all ranked right)."""
    pairs = list(itertools.combinations(range(len(SENTENCES)), 2))
    paraphrases = [similarity[i, j] for i, j in pairs if is_paraphrase(i, j)]
    unrelated = [similarity[i, j] for i, j in pairs if not is_paraphrase(i, j)]
    return float(min(paraphrases) - max(unrelated))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True)
    parser.add_argument("--tokenizer", help="tokenizer.json (default: the one beside the model)")
    parser.add_argument("--device", default="CPU")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--out-dim", type=int, default=384)
    args = parser.parse_args()

    vectors, device = embed_all(args.model, args.tokenizer, args.device, args.seq_len, args.out_dim)
    print(f"device: {device}; seq_len {args.seq_len}; out_dim {vectors.shape[1]}\n")
    for i, (sentence, vector) in enumerate(zip(SENTENCES, vectors)):
        head = " ".join(f"{x:+.4f}" for x in vector[:5])
        print(f"[{i}] {head} ...  {sentence}")
    similarity = vectors @ vectors.T  # unit vectors: dot product = cosine
    print("\ncosine similarity")
    print("     " + " ".join(f"  [{j}]" for j in range(len(SENTENCES))))
    for i, row in enumerate(similarity):
        print(f"[{i}]  " + " ".join(f"{x:5.2f}" for x in row))
    margin = paraphrase_margin(similarity)
    verdict = "yes" if margin > 0 else "NO"
    print(f"\nevery paraphrase pair scores above every unrelated pair: {verdict} (margin {margin:+.3f})")
    return 0 if margin > 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
