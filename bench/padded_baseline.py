"""The padded Python baseline of `make bench`: onnxruntime + numpy as the legacy
Python host embedded, every call running all seq_len positions.

usage: padded_baseline.py MODEL TOKENS_TXT OUT_JSON

Per call: one InferenceSession.run on the [rows, seq_len] padded arrays, then
mean pooling over the mask and L2 normalisation with numpy. The arrays are
built once per batch before timing, so the baseline is not charged for
converting token lists (a conservative choice: the real host also paid that).

Same sentences, cycles, warm-up and record fields as bench/embed_bench.c.
Process allocations come from the LD_PRELOAD counter (bench/alloc_counter.c)
when it is loaded; they count malloc calls (numpy's arrays, ONNX Runtime's
buffers), not Python objects served from the interpreter's own arenas.
Warm-up: two cycles of single embeds, one cycle of batches (a padded batch of
32 takes seconds, and every batch has the same shape anyway).

Environment: BENCH_PADDED_CALLS (40) timed embeds per scenario.
"""

import ctypes
import json
import math
import os
import sys
import time

import numpy as np
import onnxruntime as ort

CLASSES = ("short", "medium", "long")


def read_sentences(path):
    with open(path, encoding="ascii") as f:
        header = f.readline().split()
        seq_len = int(header[1])
        sentences = []
        for line in f:
            fields = line.split()
            if not fields:
                continue
            values = np.array(fields[2:], dtype=np.int64)
            sentences.append(
                {
                    "class": fields[0],
                    "ids": values[:seq_len],
                    "mask": values[seq_len : 2 * seq_len],
                    "types": values[2 * seq_len :],
                }
            )
    return seq_len, sentences


def make_runs(sentences, length_class, rows):
    """Run k, row r is sentence selected[(k * rows + r) % n] (embed_bench.c's rule)."""
    selected = [s for s in sentences if length_class is None or s["class"] == length_class]
    n = len(selected)
    distinct = n // math.gcd(n, rows)
    runs = []
    for k in range(distinct):
        rows_of_run = [selected[(k * rows + r) % n] for r in range(rows)]
        runs.append(
            {key: np.stack([s[key] for s in rows_of_run]) for key in ("ids", "mask", "types")}
        )
    return runs


def whole_cycles(embeds, rows, distinct):
    """Runs for at least `embeds` embeds, in whole cycles of the distinct runs."""
    runs = -(-embeds // rows)
    return -(-runs // distinct) * distinct


def process_counter():
    try:
        counter = ctypes.CDLL(None).alloc_counter_count
    except AttributeError:
        return None
    counter.restype = ctypes.c_uint64
    counter.argtypes = []
    return counter


def open_session(model, threads):
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def embed(session, output_name, feed_names, run):
    """The legacy host's path: full-length run, mean pooling, normalisation."""
    feed = {name: run[key] for name, key in feed_names}
    hidden = session.run([output_name], feed)[0]
    mask = run["mask"][:, :, None].astype(np.float32)
    pooled = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1.0)
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    return pooled / np.maximum(norms, 1e-12)


def measure(session, runs, embeds, counter):
    output_name = session.get_outputs()[0].name
    keys = {"input_ids": "ids", "attention_mask": "mask", "token_type_ids": "types"}
    feed_names = [(i.name, keys[i.name]) for i in session.get_inputs()]
    rows = runs[0]["ids"].shape[0]
    timed = whole_cycles(embeds, rows, len(runs))
    warm_up = 2 * len(runs) if rows == 1 else len(runs)
    for i in range(warm_up):
        embed(session, output_name, feed_names, runs[i % len(runs)])
    latencies = []
    process_before = counter() if counter else None
    start = time.perf_counter()
    for i in range(timed):
        call = time.perf_counter()
        embed(session, output_name, feed_names, runs[i % len(runs)])
        latencies.append((time.perf_counter() - call) * 1e3 / rows)
    wall = time.perf_counter() - start
    process = (counter() - process_before) if counter else None
    return latencies, wall, process


def record_of(scenario, sentences, positions, threads, rows, latencies, wall, process):
    """A record in embed_bench.c's format from per-embed latencies (ms), the
    timed loop's wall time (s) and its process allocations (None: no counter)."""
    embeds = len(latencies) * rows
    return {
        "scenario": scenario,
        "sentences": sentences,
        "positions": positions,
        "threads": threads,
        "batch": rows,
        "callers": 1,
        "embeds": embeds,
        "median_ms": float(np.percentile(latencies, 50)),
        "p99_ms": float(np.percentile(latencies, 99)),
        "embeds_per_s": embeds / wall,
        "process_allocs_per_embed": None if process is None else process / embeds,
        "rust_allocs_per_embed": None,
        "rss_before_kib": None,
        "rss_after_kib": None,
    }


def print_record(record):
    allocs = record["process_allocs_per_embed"]
    print(
        f"  {record['scenario']:<10} {record['sentences']:<7} t{record['threads']} "
        f"b{record['batch']:<2} {record['embeds']:>6} embeds"
        f"  median {record['median_ms']:8.3f} ms  p99 {record['p99_ms']:8.3f} ms"
        f"  {record['embeds_per_s']:8.1f} embeds/s  allocs/embed process "
        f"{'n/a' if allocs is None else f'{allocs:.2f}'}",
        flush=True,
    )


def main(argv):
    if len(argv) != 4:
        raise SystemExit(__doc__)
    model, tokens, out_json = argv[1:]
    calls = int(os.environ.get("BENCH_PADDED_CALLS") or 40)
    counter = process_counter()
    seq_len, sentences = read_sentences(tokens)
    print(
        f"padded Python baseline (onnxruntime {ort.__version__}, numpy {np.__version__}), "
        f"{len(sentences)} sentences, seq_len {seq_len}, "
        f"process counter {'on' if counter else 'n/a'}"
    )
    records = []
    for threads in (1, 2):
        session = open_session(model, threads)
        scenarios = [("mix", None, 1)]
        if threads == 1:
            scenarios += [(c, c, 1) for c in CLASSES]
        scenarios += [("batch8", None, 8), ("batch32", None, 32)]
        for scenario, length_class, rows in scenarios:
            runs = make_runs(sentences, length_class, rows)
            latencies, wall, process = measure(session, runs, calls, counter)
            record = record_of(
                scenario, length_class or "mix", "padded", threads, rows, latencies, wall, process
            )
            print_record(record)
            records.append(record)
    meta = {
        "onnxruntime": ort.__version__,
        "numpy": np.__version__,
        "seq_len": seq_len,
        "process_counter": counter is not None,
    }
    with open(out_json, "w", encoding="utf-8") as f:
        json.dump({"source": "python_padded", "meta": meta, "records": records}, f, indent=2)
    print(f"wrote {out_json}")


if __name__ == "__main__":
    main(sys.argv)
