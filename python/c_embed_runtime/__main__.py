"""Embeds text with libc_embed_runtime: ``python -m c_embed_runtime --model M [TEXT ...]``.

``python -m c_embed_runtime host-source [--library PATH] [-o FILE]`` prints the
drop-in ``c_embed_runtime.cpp`` instead (see ``_host_source``).

The texts are the arguments, or else the lines of standard input (each line one
text, blank lines included, as UTF-8). The library tokenizes them with the
model's ``tokenizer.json`` (``--tokenizer``, default: the one beside the model).

Output (standard output, or ``--output FILE``):

* ``--format jsonl`` (default): one JSON object per text, in input order,
  ``{"text": "...", "vector": [...]}``;
* ``--format npy``: one float32 array of shape ``(texts, out_dim)`` in NumPy's
  ``.npy`` format.

Exit status: 0 on success, 1 when the library fails (its message goes to
standard error), 2 on bad usage or input that is not UTF-8.
"""

from __future__ import annotations

import argparse
import json
import sys
from itertools import islice

import numpy as np

from . import EmbedRuntime, EmbedRuntimeError

#: Texts per library call when reading standard input.
CHUNK = 32


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m c_embed_runtime",
        description=__doc__.split("\n\n", 1)[1].replace("``", ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Example: echo 'hello world' | python -m c_embed_runtime --model /path/to/model.onnx",
    )
    parser.add_argument("texts", nargs="*", metavar="TEXT", help="texts to embed (default: the lines of stdin)")
    parser.add_argument("--model", required=True, help="path of the ONNX model")
    parser.add_argument("--tokenizer", help="tokenizer.json (default: the one beside the model)")
    parser.add_argument("--device", default="CPU", help="AUTO, CPU, GPU, NPU, ... (default CPU)")
    parser.add_argument("--seq-len", type=int, default=128, help="tokens per text, longer texts are cut (default 128)")
    parser.add_argument("--out-dim", type=int, help="length of each vector (default: the model's hidden size)")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads (default 1)")
    parser.add_argument("--format", choices=("jsonl", "npy"), default="jsonl", help="output format (default jsonl)")
    parser.add_argument("--output", "-o", help="write here instead of standard output")
    return parser.parse_args(argv)


def open_runtime(args) -> EmbedRuntime:
    """The runtime, with ``--out-dim`` or else the model's hidden size."""
    options = dict(device=args.device, seq_len=args.seq_len, threads=args.threads, tokenizer=args.tokenizer)
    if args.out_dim is not None:
        return EmbedRuntime(args.model, out_dim=args.out_dim, **options)
    with EmbedRuntime(args.model, out_dim=1, **options) as probe:
        hidden = probe.hidden_size
    if hidden <= 0:
        raise EmbedRuntimeError(f"{args.model}: no usable output; pass --out-dim to see why")
    return EmbedRuntime(args.model, out_dim=hidden, **options)


def stdin_texts():
    """The lines of standard input as text, without their line ends."""
    for number, line in enumerate(sys.stdin.buffer, 1):
        try:
            yield line.rstrip(b"\r\n").decode("utf-8")
        except UnicodeDecodeError as failure:
            raise InputError(f"standard input, line {number}: not UTF-8 ({failure.reason})") from None


class InputError(Exception):
    """Input the tool cannot embed (exit status 2)."""


def chunks(texts, size):
    texts = iter(texts)
    while chunk := list(islice(texts, size)):
        yield chunk


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["host-source"]:
        from . import _host_source

        return _host_source.main(argv[1:])
    args = parse_args(argv)
    texts = args.texts if args.texts else stdin_texts()
    out = open(args.output, "wb") if args.output else sys.stdout.buffer
    try:
        with open_runtime(args) as runtime:
            if args.format == "npy":
                vectors = [runtime.embed_batch(chunk) for chunk in chunks(texts, CHUNK)]
                matrix = np.concatenate(vectors) if vectors else np.zeros((0, runtime.out_dim), np.float32)
                np.save(out, matrix)
            else:
                for chunk in chunks(texts, CHUNK):
                    for text, vector in zip(chunk, runtime.embed_batch(chunk)):
                        line = json.dumps({"text": text, "vector": vector.tolist()}, ensure_ascii=False)
                        out.write(line.encode("utf-8") + b"\n")
        out.flush()
    except EmbedRuntimeError as failure:
        print(f"c_embed_runtime: {failure}", file=sys.stderr)
        return 1
    except (InputError, ValueError) as failure:
        print(f"c_embed_runtime: {failure}", file=sys.stderr)
        return 2
    finally:
        if out is not sys.stdout.buffer:
            out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
