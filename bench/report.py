"""Merges the benchmark results of `make bench` and checks the targets.

usage: report.py BUILD_DIR RESULTS_DIR

Reads BUILD_DIR/{library,bare,python_padded}.json (and loadavg.txt, the load
before the runs), writes RESULTS_DIR/latest.json and
RESULTS_DIR/latency_by_length.png, rewrites the figures of docs/performance.md
from latest.json (bench/perf_doc.py), and prints a markdown table, the thread
comparison and the target checks. "Per embed" in a batch row is the batch's
figure divided by its rows.
"""

import datetime
import json
import os
import platform
import sys

import perf_doc  # bench/perf_doc.py, beside this file

SOURCES = (
    ("library", "library.json"),
    ("bare", "bare.json"),
    ("python_padded", "python_padded.json"),
    ("python_trimmed", "python_trimmed.json"),
)
SOURCE_LABELS = {
    "library": "library",
    "bare": "bare ORT",
    "python_padded": "Python padded",
    "python_trimmed": "Python trimmed",
}
# The sources the latency-by-length chart draws (one value per length class).
CHART_SOURCES = ("library", "bare", "python_padded")
CLASSES = ("short", "medium", "long")
# Above this 1-minute load average before the runs, other work shared the cores.
BUSY_LOAD = 0.5


def python_objects(build_dir):
    """bench/python_objects.py's figures, if that step ran."""
    path = os.path.join(build_dir, "python_objects.json")
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def python_objects_table(figures):
    lines = [
        "| Python caller, per embed | gc-tracked objects | bytes kept | heap allocations |",
        "| --- | ---: | ---: | ---: |",
    ]
    for mode, r in figures["modes"].items():
        allocs = r.get("heap_allocations")
        lines.append(
            f"| {mode} | {r['tracked_objects']:.2f} | {r['traced_bytes']:.0f} "
            f"| {'n/a' if allocs is None else f'{allocs:.1f}'} |"
        )
    return "\n".join(lines)


def load_results(build_dir):
    results = {}
    for source, name in SOURCES:
        path = os.path.join(build_dir, name)
        if source == "python_trimmed" and not os.path.exists(path):
            results[source] = {"records": [], "meta": {}}
            continue
        with open(path, encoding="utf-8") as f:
            results[source] = json.load(f)
    return results


def find(results, source, scenario, threads=1, callers=1):
    for record in results[source]["records"]:
        if (
            record["scenario"] == scenario
            and record["threads"] == threads
            and record["callers"] == callers
        ):
            return record
    return None


def cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def read_load(build_dir):
    try:
        with open(os.path.join(build_dir, "loadavg.txt"), encoding="ascii") as f:
            return [float(x) for x in f.read().split()[:3]]
    except (OSError, ValueError):
        return None


def onnxruntime_version():
    try:
        import onnxruntime

        return onnxruntime.__version__
    except ImportError:
        return "unknown"


def rss_growth_kib(record):
    if record.get("rss_before_kib") is None:
        return None
    return int(record["rss_after_kib"] - record["rss_before_kib"])


def fmt(value, digits=2):
    return "n/a" if value is None else f"{value:.{digits}f}"


def label(source, record):
    parts = [SOURCE_LABELS[source], record["scenario"]]
    if record["positions"] == "padded" and source == "library":
        parts[1] = "padded (mask NULL: all 128 positions)"
    parts.append(f"threads {record['threads']}")
    if record["batch"] > 1:
        parts.append(f"batch {record['batch']}")
    elif record["batch"] == 0:
        parts.append("batches of 1-32")
    if record["callers"] > 1:
        parts.append(f"{record['callers']} callers on one handle")
    if record["scenario"] == "rss":
        parts.append(f"{record['embeds']} calls")
    return " · ".join(parts)


def table(results):
    lines = [
        "| scenario | median ms | p99 ms | embeds/s | allocs/embed process | allocs/embed Rust | RSS growth |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for source, _ in SOURCES:
        for r in results[source]["records"]:
            growth = rss_growth_kib(r)
            lines.append(
                f"| {label(source, r)} | {r['median_ms']:.2f} | {r['p99_ms']:.2f} "
                f"| {r['embeds_per_s']:.1f} | {fmt(r['process_allocs_per_embed'])} "
                f"| {fmt(r['rust_allocs_per_embed'])} "
                f"| {'' if growth is None else f'{growth:+d} KiB'} |"
            )
    return "\n".join(lines)


def openvino_comparison(build_dir, results):
    """The OpenVINO provider on its CPU device next to ONNX Runtime's CPU
    provider (library_openvino_cpu.json, when `make bench` wrote it)."""
    path = os.path.join(build_dir, "library_openvino_cpu.json")
    if not os.path.exists(path):
        return None, None
    with open(path, encoding="utf-8") as f:
        openvino = json.load(f)
    lines = [
        "| threads 1 | CPU provider embeds/s | OPENVINO_CPU embeds/s | CPU median ms | OPENVINO_CPU median ms |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for record in openvino["records"]:
        cpu = find(results, "library", record["scenario"], 1)
        if cpu is None:
            continue
        lines.append(
            f"| {record['scenario']} | {cpu['embeds_per_s']:.1f} | {record['embeds_per_s']:.1f} "
            f"| {cpu['median_ms']:.2f} | {record['median_ms']:.2f} |"
        )
    return "\n".join(lines), openvino


def longer_text(build_dir):
    """Batches against single calls on the longer-text corpus (library_long.json,
    bench/long_sentences.txt at its own seq_len): the table, the records with each
    one's speed over single calls at threads 1, and the checks."""
    path = os.path.join(build_dir, "library_long.json")
    if not os.path.exists(path):
        return None, None, []
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    records = data["records"]
    single = next((r for r in records if r["scenario"] == "mix" and r["threads"] == 1), None)
    if single is None:
        return None, None, []
    lines = [
        f"| longer text (seq_len {data['meta'].get('seq_len')}) | threads | rows per call "
        "| embeds/s | x single calls, threads 1 | median ms per call |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in records:
        r["x_single_threads1"] = round(r["embeds_per_s"] / single["embeds_per_s"], 3)
        lines.append(
            f"| {r['scenario']} | {r['threads']} | {r['batch']} | {r['embeds_per_s']:.1f} "
            f"| {r['x_single_threads1']:.2f} | {r['median_ms']:.2f} |"
        )
    best = lambda threads: max(  # noqa: E731
        (r for r in records if r["threads"] == threads and r["batch"] > 1),
        key=lambda r: r["embeds_per_s"],
    )
    checks = []
    for threads, target in ((1, 1.35), (2, 2.3)):
        r = best(threads)
        checks.append({
            "target": f"longer text: embed_batch at threads {threads} >= {target}x single calls at threads 1",
            "pass": r["x_single_threads1"] >= target,
            "detail": f"{r['scenario']}: {r['x_single_threads1']:.2f}x",
        })
    slowest = min((r for r in records if r["batch"] > 1 and r["threads"] == 1),
                  key=lambda r: r["embeds_per_s"])
    checks.append({
        "target": "longer text: no batch at threads 1 slower than single calls",
        "pass": slowest["x_single_threads1"] >= 1.0,
        "detail": f"slowest {slowest['scenario']}: {slowest['x_single_threads1']:.2f}x",
    })
    return "\n".join(lines), {"seq_len": data["meta"].get("seq_len"), "records": records}, checks


def thread_comparison(results):
    rows = [
        ("1 caller, handle threads=1", find(results, "library", "mix", 1)),
        ("1 caller, handle threads=2", find(results, "library", "mix", 2)),
        ("2 callers, one handle threads=1 (one session)", find(results, "library", "2callers", 1, 2)),
        ("2 callers, one handle threads=2 (one session)", find(results, "library", "2callers", 2, 2)),
        ("2 callers, a handle each, threads=1", find(results, "library", "2handles", 1, 2)),
        ("2 callers, a handle each, threads=2", find(results, "library", "2handles", 2, 2)),
    ]
    lines = ["| library, sentence mix | embeds/s | median ms | p99 ms |", "| --- | ---: | ---: | ---: |"]
    for name, r in rows:
        if r is not None:
            lines.append(f"| {name} | {r['embeds_per_s']:.1f} | {r['median_ms']:.2f} | {r['p99_ms']:.2f} |")
    return "\n".join(lines), {name: (r and r["embeds_per_s"]) for name, r in rows}


def checks(results):
    """The targets on the sentence mix at seq_len 128, threads 1, one embed per call.
    Speed compares mean time per embed (1 / embeds per second) over the same calls."""
    lib = find(results, "library", "mix")
    bare = find(results, "bare", "mix")
    padded = find(results, "python_padded", "mix")
    rss = find(results, "library", "rss")
    out = []

    speedup = lib["embeds_per_s"] / padded["embeds_per_s"]
    out.append(
        {
            "target": "speed-up vs padded Python baseline >= 5x",
            "value": round(speedup, 2),
            "detail": f"{speedup:.2f}x mean time per embed "
            f"(median {padded['median_ms'] / lib['median_ms']:.2f}x)",
            "pass": speedup >= 5.0,
        }
    )
    overhead = bare["embeds_per_s"] / lib["embeds_per_s"] - 1.0
    per_class = []
    for c in CLASSES:
        lc, bc = find(results, "library", c), find(results, "bare", c)
        if lc and bc:
            per_class.append(f"{c} {100 * (bc['embeds_per_s'] / lc['embeds_per_s'] - 1):+.1f}%")
    out.append(
        {
            "target": "library within 5% of the bare ONNX Runtime run",
            "value": round(100 * overhead, 2),
            "detail": f"{100 * overhead:+.1f}% time per embed "
            f"(median {100 * (lib['median_ms'] / bare['median_ms'] - 1):+.1f}%; "
            f"per class: {', '.join(per_class)})",
            "pass": overhead <= 0.05,
        }
    )
    lp, bp = lib["process_allocs_per_embed"], bare["process_allocs_per_embed"]
    if lp is None or bp is None:
        out.append(
            {
                "target": "library adds no heap allocation per call over the bare run",
                "value": None,
                "detail": "n/a: the LD_PRELOAD counter was not loaded",
                "pass": False,
            }
        )
    else:
        extra = lp - bp
        out.append(
            {
                "target": "library adds no heap allocation per call over the bare run",
                "value": round(extra, 2),
                "detail": f"{extra:+.2f} allocations per embed (library {lp:.2f}, bare {bp:.2f}, "
                f"of which the library's Rust side {fmt(lib['rust_allocs_per_embed'])})",
                "pass": extra <= 0,
            }
        )
    growth = rss_growth_kib(rss)
    out.append(
        {
            "target": "RSS flat: < 1 MiB growth over the memory run after warm-up",
            "value": growth,
            "detail": f"{growth:+d} KiB over {rss['embeds']} calls "
            f"({rss['rss_before_kib']} -> {rss['rss_after_kib']} KiB)",
            "pass": growth < 1024,
        }
    )
    return out


def draw_chart(results, tokens_path, png_path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no chart (pip install -r bench/requirements.txt)")
        return False
    lengths = class_lengths(tokens_path)
    names = [f"{c}\n(~{lengths.get(c, 0):.0f} tokens)" for c in CLASSES]
    width = 0.27
    fig, ax = plt.subplots(figsize=(8, 4.8), dpi=120)
    for i, source in enumerate(CHART_SOURCES):
        medians = [find(results, source, c)["median_ms"] for c in CLASSES]
        xs = [k + (i - 1) * width for k in range(len(CLASSES))]
        bars = ax.bar(xs, medians, width, label=SOURCE_LABELS[source])
        ax.bar_label(bars, fmt="%.1f", fontsize=8, padding=2)
    ax.set_xticks(range(len(CLASSES)), names)
    ax.set_ylabel("median latency per embed (ms)")
    ax.set_title("all-MiniLM-L6-v2 int8, seq_len 128, 1 thread, one sentence per call")
    ax.legend()
    ax.margins(y=0.12)
    fig.tight_layout()
    fig.savefig(png_path)
    plt.close(fig)
    return True


def class_lengths(tokens_path):
    """Mean real token count per length class."""
    sums = {}
    try:
        with open(tokens_path, encoding="ascii") as f:
            next(f)
            for line in f:
                fields = line.split(maxsplit=2)
                if len(fields) >= 2:
                    total, count = sums.get(fields[0], (0, 0))
                    sums[fields[0]] = (total + int(fields[1]), count + 1)
    except OSError:
        return {}
    return {c: total / count for c, (total, count) in sums.items()}


def per_sentence_ms(record):
    """Mean time per sentence (1 / embeds per second), in ms."""
    return None if record is None else 1e3 / record["embeds_per_s"]


def batch_checks(results):
    """Issue 11's targets: batches, threads, new shapes, memory (speed compares
    the mean time per sentence over the same corpus)."""
    single = find(results, "library", "mix", 1)
    out = []

    def speed_check(target, record, minimum, what):
        if record is None or single is None:
            out.append({"target": target, "value": None, "detail": "n/a: not run", "pass": False})
            return
        ratio = record["embeds_per_s"] / single["embeds_per_s"]
        out.append(
            {
                "target": target,
                "value": round(ratio, 2),
                "detail": f"{ratio:.2f}x ({what} {per_sentence_ms(record):.2f} ms per sentence, "
                f"single calls threads 1 {per_sentence_ms(single):.2f} ms)",
                "pass": ratio >= minimum,
            }
        )

    speed_check(
        "embed_batch, threads 1, batches of 32 in the caller's order: >= 1.3x single calls",
        find(results, "library", "batch32", 1),
        1.3,
        "batch",
    )
    speed_check(
        "embed_batch, threads 2, batches of 32: >= 2.2x single calls on a threads-1 handle",
        find(results, "library", "batch32", 2),
        2.2,
        "batch",
    )
    serial = find(results, "library", "batch32_serial", 2)
    parallel = find(results, "library", "batch32", 2)
    if serial and parallel:
        gain = parallel["embeds_per_s"] / serial["embeds_per_s"]
        out.append(
            {
                "target": "threads 2: groups run in parallel (one per core) beat groups run one after another",
                "value": round(gain, 2),
                "detail": f"{gain:.2f}x ({per_sentence_ms(parallel):.2f} vs {per_sentence_ms(serial):.2f} ms "
                "per sentence; if missed, C_EMBED_RUNTIME_SERIAL_BATCHES=1 is the better default)",
                "pass": gain >= 1.0,
            }
        )
    speed_check(
        "two callers on one threads-1 handle: about twice one caller (>= 1.8x)",
        find(results, "library", "2callers", 1, 2),
        1.8,
        "both callers",
    )
    cold = find(results, "library", "shapes_cold")
    steady = find(results, "library", "shapes_steady")
    if cold and steady:
        extra = per_sentence_ms(cold) / per_sentence_ms(steady) - 1
        out.append(
            {
                "target": "new run shapes (random batches 1-32, fresh handle): per row within 10% of steady",
                "value": round(100 * extra, 1),
                "detail": f"{100 * extra:+.1f}% ({per_sentence_ms(cold):.2f} vs "
                f"{per_sentence_ms(steady):.2f} ms per row)",
                "pass": extra <= 0.10,
            }
        )
    memory = results["library"]["meta"].get("memory")
    python = results["python_trimmed"]["meta"].get("memory")
    if memory and python:
        lib_mib = (memory["rss_first_kib"] - memory["rss_start_kib"]) / 1024
        py_mib = (python["rss_first_kib"] - python["rss_start_kib"]) / 1024
        out.append(
            {
                "target": "first handle's RSS <= 0.9x Python onnxruntime's (same model, same corpus)",
                "value": round(lib_mib / py_mib, 2),
                "detail": f"{lib_mib:.1f} MiB vs {py_mib:.1f} MiB ({lib_mib / py_mib:.2f}x); create "
                f"{memory['create_ms']:.0f} ms vs {python['create_ms']:.0f} ms",
                "pass": lib_mib <= 0.9 * py_mib,
            }
        )
    if memory:
        second = (memory["rss_second_kib"] - memory["rss_first_kib"]) / 1024
        out.append(
            {
                "target": "a second concurrent caller adds <= 25 MiB RSS",
                "value": round(second, 1),
                "detail": f"{second:+.1f} MiB",
                "pass": second <= 25,
            }
        )
    return out


def memory_table(results):
    rows = [("library", results["library"]["meta"].get("memory")),
            ("Python onnxruntime", results["python_trimmed"]["meta"].get("memory"))]
    lines = [
        "| first handle | create ms | RSS after create | after one caller | second concurrent caller |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, m in rows:
        if not m:
            continue
        second = m.get("rss_second_kib")
        second = "" if second is None else f"{(second - m['rss_first_kib']) / 1024:+.1f} MiB"
        lines.append(
            f"| {name} | {m['create_ms']:.0f} | {(m['rss_created_kib'] - m['rss_start_kib']) / 1024:+.1f} MiB "
            f"| {(m['rss_first_kib'] - m['rss_start_kib']) / 1024:+.1f} MiB | {second} |"
        )
    return "\n".join(lines)


# Bars of the throughput chart: (label, source, scenario, threads, callers).
THROUGHPUT_BARS = (
    ("single\nt1", "library", "mix", 1, 1),
    ("batch 8\nt1", "library", "batch8", 1, 1),
    ("batch 32\nt1", "library", "batch32", 1, 1),
    ("random\nt1", "library", "random", 1, 1),
    ("single\nt2", "library", "mix", 2, 1),
    ("batch 32\nt2", "library", "batch32", 2, 1),
    ("batch 32 t2\nserial groups", "library", "batch32_serial", 2, 1),
    ("random\nt2", "library", "random", 2, 1),
    ("2 callers\nt1", "library", "2callers", 1, 2),
    ("bare ORT\nt1", "bare", "mix", 1, 1),
    ("Python\ntrimmed t1", "python_trimmed", "mix", 1, 1),
    ("Python\npadded t1", "python_padded", "mix", 1, 1),
)


def draw_throughput(results, png_path):
    """Sentences per second of each way to embed the corpus."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    bars = [(name, find(results, source, scenario, threads, callers))
            for name, source, scenario, threads, callers in THROUGHPUT_BARS]
    bars = [(name, r["embeds_per_s"]) for name, r in bars if r is not None]
    fig, ax = plt.subplots(figsize=(10, 4.8), dpi=120)
    drawn = ax.bar(range(len(bars)), [v for _, v in bars], color="tab:blue")
    ax.bar_label(drawn, fmt="%.0f", fontsize=8, padding=2)
    ax.set_xticks(range(len(bars)), [n for n, _ in bars], fontsize=8)
    ax.set_ylabel("sentences per second")
    ax.set_title("all-MiniLM-L6-v2 int8, the corpus, seq_len 128: throughput")
    ax.margins(y=0.12)
    fig.tight_layout()
    fig.savefig(png_path)
    plt.close(fig)
    return True


def main(argv):
    if len(argv) != 3:
        raise SystemExit(__doc__)
    build_dir, results_dir = argv[1:]
    os.makedirs(results_dir, exist_ok=True)
    results = load_results(build_dir)
    load = read_load(build_dir)
    target_checks = checks(results)
    threads_table, threads_values = thread_comparison(results)
    png_path = os.path.join(results_dir, "latency_by_length.png")
    chart = draw_chart(results, os.path.join(build_dir, "tokens.txt"), png_path)
    issue11_checks = batch_checks(results)
    throughput_png = os.path.join(results_dir, "throughput.png")
    throughput_chart = draw_throughput(results, throughput_png)
    openvino_table, openvino = openvino_comparison(build_dir, results)
    long_table, long_figures, long_checks = longer_text(build_dir)

    merged = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "load_before_runs": load,
        },
        "onnxruntime": onnxruntime_version(),
        "library_version": results["library"]["meta"].get("library_version"),
        "model": "all-MiniLM-L6-v2 (int8 ONNX), seq_len 128, out_dim 384",
        "settings": {
            name: os.environ.get(name) or default
            for name, default in (
                ("BENCH_CALLS", "240"),
                ("BENCH_PADDED_CALLS", "40"),
                ("BENCH_RSS_CALLS", "20000"),
                ("BENCH_RSS_WARMUP", "500"),
            )
        },
        "handle_lookup_ns": results["library"]["meta"].get("handle_lookup_ns"),
        "python_objects": python_objects(build_dir),
        "checks": target_checks + issue11_checks + long_checks,
        "threads": threads_values,
        "sources": results,
        "openvino_cpu": openvino,
        "longer_text": long_figures,
    }
    latest = os.path.join(results_dir, "latest.json")
    with open(latest, "w", encoding="utf-8") as f:
        json.dump(merged, f, indent=2)
        f.write("\n")

    print()
    print(
        f"## make bench: {merged['machine']['cpu']}, {merged['machine']['cores']} cores, "
        f"ONNX Runtime {merged['onnxruntime']}, library {merged['library_version']}"
    )
    print()
    print(table(results))
    print()
    print(threads_table)
    print()
    if openvino_table is not None:
        print("OpenVINO provider on its CPU device (onnxruntime-openvino 1.22.0) and ONNX Runtime's CPU provider:")
        print(openvino_table)
        print()
    if long_table is not None:
        print("Longer text (bench/long_sentences.txt), batches against single calls:")
        print(long_table)
        print()
    lookup = merged["handle_lookup_ns"]
    if lookup is not None:
        print(f"Handle check (registry lookup) on every call: {lookup:.1f} ns per getter call")
        print()
    if merged["python_objects"] is not None:
        print(python_objects_table(merged["python_objects"]))
        print()
    print(memory_table(results))
    print()
    print("Targets (sentence mix, seq_len 128, threads 1, one sentence per call):")
    for c in target_checks:
        print(f"  {'PASS' if c['pass'] else 'MISS'}  {c['target']}: {c['detail']}")
    print("Targets (batches, threads, new shapes, memory; per sentence over the corpus):")
    for c in issue11_checks + long_checks:
        print(f"  {'PASS' if c['pass'] else 'MISS'}  {c['target']}: {c['detail']}")
    if load is not None and load[0] > BUSY_LOAD:
        print(
            f"  note: load average {load[0]:.2f} before the runs: other work shared the "
            f"{merged['machine']['cores']} cores, timings are noisy"
        )
    print()
    charts = [p for p, drawn in ((png_path, chart), (throughput_png, throughput_chart)) if drawn]
    print(f"wrote {latest}" + "".join(f" and {p}" for p in charts))
    # The figures of docs/performance.md come from the committed results file, just written.
    if os.path.exists(perf_doc.RESULTS) and os.path.samefile(latest, perf_doc.RESULTS):
        perf_doc.update(latest, perf_doc.DOC)
        print(f"wrote the figures of {os.path.relpath(perf_doc.DOC)}")


if __name__ == "__main__":
    main(sys.argv)
