"""Python objects allocated per embed: the package's EmbedRuntime against the
legacy caller's pattern, on the real model (seq_len 128, out_dim 384) and the
real sentences of bench/sentences.txt.

Modes (each embeds the sentences in turn, CALLS times):
  raw_call      the floor: only the library call, on ctypes pointers to arrays
                filled beforehand (one set per sentence), nothing returned.
  embed_ids     EmbedRuntime.embed_ids on ids/mask/types tokenized beforehand
                (int64 arrays): buffers and ctypes pointers made at create.
  embed_text    EmbedRuntime.embed(text): the tokenizer's work included.
  legacy        the legacy caller: ctypes arrays built per call from Python lists
                ((c_int64 * seq_len)(*ids), ...), the output turned into a list
                of floats (c_embed_runtime._churn.legacy_embed, which
                python/tests/test_no_churn.py compares against too).
  naive_ctypes  for reference, a binding that converts numpy buffers to ctypes
                pointers on every call (arr.ctypes.data_as): the pitfall the
                package avoids.

Measures, per call:
  tracked_objects      gc-tracked objects still alive after the call, every
                       result kept (len(gc.get_objects()) delta, collector off)
  gc_count             the collector's generation-0 count delta (same pass)
  traced_bytes/blocks  tracemalloc: memory still allocated, every result kept
                       (for embed_ids: the returned array and nothing else)
  peak_transient_bytes tracemalloc peak during the call above what was allocated
                       before it (result dropped afterwards): temporaries included
  heap_allocations     malloc-family calls in the whole process (Python, numpy,
                       the library, ONNX Runtime), only with --alloc-counter
                       (re-runs under LD_PRELOAD and PYTHONMALLOC=malloc);
                       python_heap_allocations: the same less raw_call's (ONNX
                       Runtime's own), i.e. what the Python side adds
  us_median            wall time, median (dominated by the model; the machine's
                       load shows in it)

The measurement is c_embed_runtime._churn.measure, the tests' own.

Writes build/bench/python_objects.json (or --out) and prints a table.

usage: python bench/python_objects.py [--calls N] [--model M] [--library L]
                                      [--alloc-counter liballoc_counter.so] [--out F]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import statistics
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "python"))

import c_embed_runtime  # noqa: E402
from c_embed_runtime import EmbedRuntime, _churn  # noqa: E402

SEQ_LEN = 128
OUT_DIM = 384
DEFAULT_MODEL = REPO / "models" / "all-MiniLM-L6-v2" / "model.onnx"
SENTENCES = REPO / "bench" / "sentences.txt"
DEFAULT_OUT = REPO / "build" / "bench" / "python_objects.json"
WARMUP = 10


def read_sentences(path: Path) -> list[str]:
    texts = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            texts.append(line)
    return texts


def alloc_counter():
    """The preloaded allocation counter's reader, or None."""
    try:
        count = ctypes.CDLL(None).alloc_counter_count
    except AttributeError:
        return None
    count.restype = ctypes.c_uint64
    count.argtypes = []
    return count


def measure(call, calls: int, count_allocations) -> dict:
    """``call(i)`` embeds input ``i``; the metrics of the module docstring."""
    found = _churn.measure(call, calls, WARMUP, count_allocations)
    sample = found["sample"]
    result_bytes = 0 if sample is None else sys.getsizeof(sample)
    if isinstance(sample, list):
        result_bytes += sum(sys.getsizeof(x) for x in sample)
    allocations = found["heap_allocations"]
    return {
        "tracked_objects": found["tracked_objects"] / calls,
        "gc_count": found["gc_count"] / calls,
        "traced_bytes": found["traced_bytes"] / calls,
        "traced_blocks": found["traced_blocks"] / calls,
        "peak_transient_bytes": float(np.median(found["peaks"])),
        "result_bytes": result_bytes,
        "heap_allocations": None if allocations is None else allocations / calls,
        "us_median": statistics.median(found["times"]) * 1e6,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--library", help="libc_embed_runtime.so to use (default: as c_embed_runtime.load)")
    parser.add_argument("--alloc-counter", type=Path, help="bench/alloc_counter.c built as a shared library")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()

    if args.alloc_counter and alloc_counter() is None:
        # Re-run with the counter preloaded and Python's allocations going to malloc.
        env = dict(os.environ, LD_PRELOAD=str(args.alloc_counter.resolve()), PYTHONMALLOC="malloc")
        os.execve(sys.executable, [sys.executable, *sys.argv], env)
    count_allocations = alloc_counter()

    texts = read_sentences(SENTENCES)
    runtime = EmbedRuntime(args.model, "CPU", SEQ_LEN, OUT_DIM, threads=1, library=args.library)
    tokenize = runtime.tokenizer
    if tokenize is None:
        raise SystemExit(f"no tokenizer.json beside {args.model}")
    lib, handle = runtime.library, runtime.handle
    n = len(texts)
    # Tokenized once, outside the measurement: int64 arrays for embed_ids, the
    # tokenizer's Python lists for the legacy caller (what its tokenizer gave it).
    arrays = [tokenize(text) for text in texts]
    lists = [tuple(array.tolist() for array in triple) for triple in arrays]

    def embed_ids(i):
        ids, mask, types = arrays[i % n]
        return runtime.embed_ids(ids, mask, types)

    def embed_text(i):
        return runtime.embed(texts[i % n])

    def legacy(i):
        return _churn.legacy_embed(lib, handle, SEQ_LEN, OUT_DIM, *lists[i % n])

    buffers = [np.zeros(SEQ_LEN, np.int64) for _ in range(3)]
    out_buffer = np.zeros(OUT_DIM, np.float32)
    as_i64, as_f32 = ctypes.POINTER(ctypes.c_int64), ctypes.POINTER(ctypes.c_float)

    def naive_ctypes(i):
        for buffer, values in zip(buffers, arrays[i % n]):
            buffer[:] = values
        ok = lib.c_embed_runtime_embed(
            handle, *(b.ctypes.data_as(as_i64) for b in buffers), out_buffer.ctypes.data_as(as_f32)
        )
        if not ok:
            raise RuntimeError(lib.c_embed_runtime_last_error(handle).decode())
        return out_buffer.copy()

    # The modes compute the same vectors.
    for i in range(n):
        reference = embed_ids(i)
        np.testing.assert_array_equal(embed_text(i), reference)
        np.testing.assert_array_equal(np.float32(legacy(i)), reference)
        np.testing.assert_array_equal(naive_ctypes(i), reference)

    # One set of filled arrays and pointers per sentence, made up front.
    raw_inputs = [
        tuple(np.ascontiguousarray(a, dtype=np.int64).ctypes.data_as(as_i64) for a in triple) for triple in arrays
    ]
    raw_out = out_buffer.ctypes.data_as(as_f32)
    embed_fn = lib.c_embed_runtime_embed

    def raw_call(i):
        ids, mask, types = raw_inputs[i % n]
        if not embed_fn(handle, ids, mask, types, raw_out):
            raise RuntimeError(lib.c_embed_runtime_last_error(handle).decode())

    modes = {"raw_call": raw_call, "embed_ids": embed_ids, "embed_text": embed_text, "legacy": legacy, "naive_ctypes": naive_ctypes}
    results = {}
    for name, call in modes.items():
        results[name] = measure(call, args.calls, count_allocations)
    for found in results.values():
        floor = results["raw_call"]["heap_allocations"]
        found["python_heap_allocations"] = None if floor is None else found["heap_allocations"] - floor

    report = {
        "model": str(args.model),
        "library": str(runtime.library_path),
        "seq_len": runtime.seq_len,
        "out_dim": runtime.out_dim,
        "sentences": n,
        "calls": args.calls,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "package": c_embed_runtime.__version__,
        "alloc_counter": count_allocations is not None,
        "modes": results,
    }
    runtime.close()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")

    print(
        f"Python objects per embed: {args.model.name}, seq_len {report['seq_len']}, out_dim {report['out_dim']}, "
        f"{args.calls} calls per mode over {n} sentences (Python {report['python']}, numpy {report['numpy']})"
    )
    columns = [
        ("tracked_objects", "tracked obj", "{:.2f}"),
        ("gc_count", "gc count", "{:.2f}"),
        ("traced_bytes", "kept bytes", "{:.0f}"),
        ("traced_blocks", "kept blocks", "{:.2f}"),
        ("result_bytes", "result bytes", "{:.0f}"),
        ("peak_transient_bytes", "peak bytes", "{:.0f}"),
        ("heap_allocations", "mallocs", "{:.1f}"),
        ("python_heap_allocations", "py mallocs", "{:.1f}"),
        ("us_median", "us/call", "{:.0f}"),
    ]
    print(f"{'mode':<14}" + "".join(f"{title:>14}" for _, title, _ in columns))
    for name, found in results.items():
        cells = ["n/a" if found[key] is None else fmt.format(found[key]) for key, _, fmt in columns]
        print(f"{name:<14}" + "".join(f"{cell:>14}" for cell in cells))
    ours, old = results["embed_ids"], results["legacy"]
    print(
        f"\nper embed: embed_ids leaves {ours['tracked_objects']:.2f} tracked objects and "
        f"{ours['traced_blocks']:.2f} blocks ({ours['traced_bytes']:.0f} B: the returned array); "
        f"the legacy pattern {old['tracked_objects']:.2f} and {old['traced_blocks']:.2f} ({old['traced_bytes']:.0f} B), "
        f"peak during a call {ours['peak_transient_bytes']:.0f} B vs {old['peak_transient_bytes']:.0f} B"
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
