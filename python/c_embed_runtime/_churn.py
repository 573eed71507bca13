"""The legacy host's per-call calling pattern and the measurement of what a call
leaves behind. Private: not part of the package's API.

Kept in one place so that python/tests/test_no_churn.py and
bench/python_objects.py compare `EmbedRuntime` against the same legacy pattern,
measured the same way.

- `legacy_embed`: the legacy caller: ctypes arrays built per call from Python
  lists (``(c_int64 * seq_len)(*ids)``, ...), the output turned into a list of
  floats.
- `measure`: runs ``call(i)`` for ``i`` in ``range(calls)`` twice, every result
  kept alive and the cyclic collector off: once counting gc-tracked objects
  (``len(gc.get_objects())`` and ``gc.get_count()[0]`` deltas), wall time and,
  when given a counter, heap allocations; once under tracemalloc for the memory
  still allocated and each call's transient peak.
"""

from __future__ import annotations

import ctypes
import gc
import time
import tracemalloc

import numpy as np


def legacy_embed(lib, handle, seq_len: int, out_dim: int, ids, mask, types) -> list:
    """The legacy caller's pattern: ctypes arrays built per call, a list out."""
    ids_array = (ctypes.c_int64 * seq_len)(*ids)
    mask_array = (ctypes.c_int64 * seq_len)(*mask)
    types_array = (ctypes.c_int64 * seq_len)(*types)
    out = (ctypes.c_float * out_dim)()
    if not lib.c_embed_runtime_embed(handle, ids_array, mask_array, types_array, out):
        raise RuntimeError(lib.c_embed_runtime_last_error(handle).decode())
    return list(out)


def measure(call, calls: int, warmup: int, count_allocations=None) -> dict:
    """What ``calls`` calls of ``call(i)`` leave behind, their results kept.

    ``warmup`` calls first fill the lazy caches of ctypes, numpy and the library.
    ``count_allocations``, if given, returns the process's malloc-family calls so far.

    Returns totals over the calls: ``tracked_objects``, ``gc_count``,
    ``traced_bytes``, ``traced_blocks`` and ``heap_allocations`` (None without a
    counter); per call: ``times`` (seconds) and ``peaks`` (tracemalloc peak during
    the call above what was allocated before it); and ``sample``, the first result.
    """
    for i in range(warmup):
        call(i)
    kept = [None] * calls  # preallocated: storing a result allocates nothing

    # gc-tracked objects left, every result kept; wall time and (when given a
    # counter) the process's heap allocations over the same calls.
    times = np.zeros(calls, dtype=np.float64)
    allocations = None
    gc.collect()
    gc.disable()
    try:
        objects_before = len(gc.get_objects())
        count_before = gc.get_count()[0]
        allocations_before = count_allocations() if count_allocations else 0
        for i in range(calls):
            start = time.perf_counter()
            kept[i] = call(i)
            times[i] = time.perf_counter() - start
        if count_allocations:
            allocations = count_allocations() - allocations_before
        count_after = gc.get_count()[0]
        objects_after = len(gc.get_objects())
    finally:
        gc.enable()
    sample = kept[0]

    # tracemalloc: what stays (results kept) and the transient peak of each call.
    kept = [None] * calls
    peaks = np.zeros(calls, dtype=np.int64)
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__)]
    gc.collect()
    gc.disable()
    tracemalloc.start()
    try:
        tracemalloc.take_snapshot().filter_traces(ignore)  # warms the filter's caches
        snapshot_before = tracemalloc.take_snapshot().filter_traces(ignore)
        bytes_before = tracemalloc.get_traced_memory()[0]
        for i in range(calls):
            current = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            kept[i] = call(i)
            peaks[i] = tracemalloc.get_traced_memory()[1] - current
        bytes_after = tracemalloc.get_traced_memory()[0]
        snapshot_after = tracemalloc.take_snapshot().filter_traces(ignore)
    finally:
        tracemalloc.stop()
        gc.enable()
    blocks = sum(stat.count_diff for stat in snapshot_after.compare_to(snapshot_before, "filename"))
    del kept

    return {
        "tracked_objects": objects_after - objects_before,
        "gc_count": count_after - count_before,
        "traced_bytes": bytes_after - bytes_before,
        "traced_blocks": blocks,
        "heap_allocations": allocations,
        "times": times,
        "peaks": peaks,
        "sample": sample,
    }
