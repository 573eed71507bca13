"""An embed call creates no Python objects beyond the returned array.

`EmbedRuntime.embed_ids` copies the caller's values into numpy buffers made at
create and passes ctypes pointers made at create. Over 1,000 calls on tiny_bert
(seq_len 16, out_dim 32), with every returned value kept alive and the cyclic
collector off, this measures:

- gc-tracked objects left per call (``len(gc.get_objects())`` and
  ``gc.get_count()[0]`` deltas). The returned ndarray is not gc-tracked (numpy
  arrays hold no references to other Python objects), so the expected count is 0;
  the bound allows 5 over the 1,000 calls for interpreter bookkeeping.
- tracemalloc: bytes and blocks still allocated per call. Expected: exactly the
  returned array (its ``sys.getsizeof``: object plus data; at most 3 blocks:
  object, shape/strides, data).

The same measurement of the legacy caller's pattern (ctypes arrays built from
Python lists on every call, the output turned into a list of floats) must be far
larger, so the measurement can fail: it keeps 1 tracked list and ``out_dim + 1``
blocks per call. The legacy pattern and the measurement are those of
bench/python_objects.py (c_embed_runtime._churn).
"""

from __future__ import annotations

import gc
import sys

import numpy as np
import pytest

from c_embed_runtime import EmbedRuntime, _churn

CALLS = 1_000
SEQ_LEN = 16
OUT_DIM = 32
#: gc-tracked objects allowed over all CALLS (expected: 0).
TRACKED_BOUND = 5


def measure(call, calls: int = CALLS) -> dict:
    """Objects and memory left per call by ``calls`` calls whose results are kept."""
    # 20 warm-up calls: lazy caches of ctypes, numpy and the library.
    found = _churn.measure(lambda _: call(), calls, warmup=20)
    return {
        "tracked_objects": found["tracked_objects"],
        "gc_count": found["gc_count"],
        "bytes_per_call": found["traced_bytes"] / calls,
        "blocks_per_call": found["traced_blocks"] / calls,
        "sample": found["sample"],
    }


@pytest.fixture(scope="module")
def runtime(lib, test_model):
    with EmbedRuntime(test_model("tiny_bert"), "CPU", SEQ_LEN, OUT_DIM, library=lib) as runtime:
        yield runtime


def inputs():
    ids = np.arange(3, 3 + SEQ_LEN, dtype=np.int64) % 50
    mask = np.r_[np.ones(10), np.zeros(SEQ_LEN - 10)].astype(np.int64)
    types = np.zeros(SEQ_LEN, dtype=np.int64)
    return ids, mask, types


def assert_no_churn(found: dict):
    result = found["sample"]
    assert isinstance(result, np.ndarray) and not gc.is_tracked(result)
    assert found["tracked_objects"] <= TRACKED_BOUND, found
    assert found["gc_count"] <= TRACKED_BOUND, found
    # What stays allocated is the returned array: object, shape/strides and data.
    assert found["bytes_per_call"] <= sys.getsizeof(result) + 16, found
    assert found["blocks_per_call"] <= 3.01, found


@pytest.mark.parametrize("with_mask_and_types", [True, False])
def test_embed_ids_creates_nothing_but_the_returned_array(runtime, with_mask_and_types):
    ids, mask, types = inputs()
    if with_mask_and_types:
        found = measure(lambda: runtime.embed_ids(ids, mask, types))
    else:
        found = measure(lambda: runtime.embed_ids(ids))
    assert_no_churn(found)
    assert found["sample"].shape == (OUT_DIM,) and found["sample"].dtype == np.float32


def test_embed_ids_from_python_lists_keeps_nothing_either(runtime):
    # Lists are converted into the same buffers; the temporary arrays are freed.
    ids, mask, types = (values.tolist() for values in inputs())
    assert_no_churn(measure(lambda: runtime.embed_ids(ids, mask, types)))


def test_the_legacy_pattern_leaves_far_more(runtime, lib):
    ids, mask, types = inputs()
    ours = measure(lambda: runtime.embed_ids(ids, mask, types))
    id_list, mask_list, type_list = ids.tolist(), mask.tolist(), types.tolist()
    legacy = measure(lambda: _churn.legacy_embed(lib, runtime.handle, SEQ_LEN, OUT_DIM, id_list, mask_list, type_list))
    # Same numbers, so the comparison is of like with like.
    np.testing.assert_allclose(legacy["sample"], ours["sample"], rtol=0, atol=0)
    # A tracked list per call (ours: none at all), and an object per value.
    assert_no_churn(ours)
    assert legacy["tracked_objects"] >= CALLS and legacy["gc_count"] >= CALLS, legacy
    assert legacy["blocks_per_call"] >= OUT_DIM + 1 > 10 * ours["blocks_per_call"], (legacy, ours)
    assert legacy["bytes_per_call"] > 4 * ours["bytes_per_call"], (legacy, ours)


def test_results_are_independent_copies(runtime):
    ids, mask, types = inputs()
    first = runtime.embed_ids(ids, mask, types)
    second = runtime.embed_ids(np.roll(ids, 1), mask, types)
    assert not np.shares_memory(first, second)
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(runtime.embed_ids(ids, mask, types), first)
