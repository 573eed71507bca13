"""Python onnxruntime as a careful host would use it, for `make bench`: each
sentence run at its own length (trimmed), and what a session costs in memory
and create time.

usage: python_ort.py MODEL TOKENS_TXT OUT_JSON

Memory: the resident set size before `import onnxruntime` (numpy is already
loaded: both hosts need it or its like; the corpus is read after), after the InferenceSession is created
(the create time is measured around it), and after one pass of trimmed single
runs over the corpus. The library's figures (bench/embed_bench.c, "memory")
are taken the same way: from before its first create (ONNX Runtime not yet
loaded) to after one caller embedded the corpus. Session options as the padded
baseline's (ONNX Runtime's defaults, CPU memory arena on, one intra-op thread).

Timed: one sentence per call at its real length (`mix`, threads 1 and 2),
BENCH_CALLS (240) embeds rounded up to whole cycles over the corpus after one
warm-up cycle; pooling and normalisation in numpy, as the padded baseline.
"""

import json
import os
import sys
import time

import numpy as np


def rss_kib():
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)


# Before onnxruntime is imported (padded_baseline imports it).
RSS_START_KIB = rss_kib()

import onnxruntime as ort  # noqa: E402

from padded_baseline import (  # noqa: E402
    embed,
    open_session,
    print_record,
    process_counter,
    read_sentences,
    record_of,
    whole_cycles,
)


def trimmed_runs(sentences):
    """One run per sentence, cut to its last valid position."""
    runs = []
    for s in sentences:
        valid = np.flatnonzero(s["mask"])
        length = int(valid[-1]) + 1 if valid.size else len(s["mask"])
        runs.append({key: s[key][None, :length] for key in ("ids", "mask", "types")})
    return runs


def main(argv):
    if len(argv) != 4:
        raise SystemExit(__doc__)
    model, tokens, out_json = argv[1:]
    calls = int(os.environ.get("BENCH_CALLS") or 240)
    counter = process_counter()
    seq_len, sentences = read_sentences(tokens)
    runs = trimmed_runs(sentences)

    rss_start = RSS_START_KIB

    start = time.perf_counter()
    session = open_session(model, 1)
    create_ms = (time.perf_counter() - start) * 1e3
    rss_created = rss_kib()
    output_name = session.get_outputs()[0].name
    keys = {"input_ids": "ids", "attention_mask": "mask", "token_type_ids": "types"}
    feed_names = [(i.name, keys[i.name]) for i in session.get_inputs()]
    for run in runs:
        embed(session, output_name, feed_names, run)
    rss_first = rss_kib()
    memory = {
        "create_ms": create_ms,
        "rss_start_kib": rss_start,
        "rss_created_kib": rss_created,
        "rss_first_kib": rss_first,
    }
    print(
        f"Python onnxruntime {ort.__version__}, {len(sentences)} sentences trimmed: create "
        f"{create_ms:.1f} ms; RSS {rss_created - rss_start:+d} KiB after import and create, "
        f"{rss_first - rss_start:+d} KiB after one pass"
    )

    records = []
    for threads in (1, 2):
        if threads != 1:
            session = open_session(model, threads)
        timed = whole_cycles(calls, 1, len(runs))
        for run in runs:
            embed(session, output_name, feed_names, run)
        latencies = []
        process_before = counter() if counter else None
        start = time.perf_counter()
        for i in range(timed):
            call = time.perf_counter()
            embed(session, output_name, feed_names, runs[i % len(runs)])
            latencies.append((time.perf_counter() - call) * 1e3)
        wall = time.perf_counter() - start
        process = (counter() - process_before) if counter else None
        record = record_of("mix", "mix", "trimmed", threads, 1, latencies, wall, process)
        print_record(record)
        records.append(record)
    meta = {"onnxruntime": ort.__version__, "seq_len": seq_len, "memory": memory}
    with open(out_json, "w", encoding="utf-8") as f:
        json.dump({"source": "python_trimmed", "meta": meta, "records": records}, f, indent=2)
    print(f"wrote {out_json}")


if __name__ == "__main__":
    main(sys.argv)
