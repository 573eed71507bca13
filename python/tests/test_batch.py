"""Batched embedding, hidden size and version through the Python binding: each row
of ``embed_batch_ids`` is the single ``embed_ids`` of that row within 1e-6 on the
real model (with every mask shape), ``embed_batch_ids`` takes any integer layout
and refuses wrong shapes, a failed batch raises and the handle recovers, and the
getters report the model and the crate. (Batches on the generated models are
c_tests/test_abi.c's; bad row counts and NULL arrays c_tests/misuse.c's.)"""

from __future__ import annotations

import re

import numpy as np
import pytest

from c_embed_runtime import EmbedRuntime, EmbedRuntimeError, Tokenizer, version
from c_embed_runtime.demo import SENTENCES
from conftest import ERRORS, cargo_version

TOLERANCE = 1e-6


def synthetic_batch(rows: int, seq_len: int, vocab: int = 100, seed: int = 11):
    """``rows`` rows of ids, masks and types; the masks cycle through full, trailing
    padding (several lengths), gaps, all zeros and gaps reaching the last position."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, vocab, (rows, seq_len)).astype(np.int64)
    types = rng.integers(0, 2, (rows, seq_len)).astype(np.int64)
    shapes = [
        np.ones(seq_len),
        np.r_[np.ones(seq_len // 2), np.zeros(seq_len - seq_len // 2)],
        np.r_[np.ones(3), np.zeros(seq_len - 3)],
        np.r_[1, np.zeros(seq_len - 1)],
        np.r_[np.ones(3), 0, 1, 0, 0, 1, np.zeros(seq_len - 8)],
        np.zeros(seq_len),
        np.r_[1, np.zeros(seq_len - 2), 1],
    ]
    mask = np.stack([shapes[r % len(shapes)] for r in range(rows)]).astype(np.int64)
    return ids, mask, types


def assert_rows_match_single(runtime: EmbedRuntime, ids, mask=None, types=None):
    batch = runtime.embed_batch_ids(ids, mask, types)
    assert batch.shape == (len(ids), runtime.out_dim) and batch.dtype == np.float32
    assert runtime.last_error == ""
    for row in range(len(ids)):
        single = runtime.embed_ids(
            ids[row], None if mask is None else mask[row], None if types is None else types[row]
        )
        np.testing.assert_allclose(batch[row], single, rtol=0, atol=TOLERANCE, err_msg=f"row {row}")
    return batch


@pytest.mark.parametrize("out_dim", [384, 24])
def test_real_model_batch_matches_single_embeds(lib, real_model, tokenizer_json, out_dim):
    tokenize = Tokenizer(tokenizer_json, 128)
    ids, mask, types = (np.stack(arrays) for arrays in zip(*(tokenize(s) for s in SENTENCES)))
    with EmbedRuntime(real_model, "CPU", 128, out_dim, library=lib) as runtime:
        batch = assert_rows_match_single(runtime, ids, mask, types)
        assert_rows_match_single(runtime, ids)  # NULL mask and types
        # The rows are really different sentences: paraphrases score above unrelated pairs.
        similarity = batch @ batch.T
        assert similarity[0, 1] > similarity[0, 2]


def test_real_model_batch_with_mask_variants(lib, real_model, tokenizer_json):
    tokenize = Tokenizer(tokenizer_json, 128)
    ids, mask, types = tokenize(SENTENCES[0])
    n = int(mask.sum())
    gaps, last_dropped, to_the_end = mask.copy(), mask.copy(), mask.copy()
    gaps[[2, 4]] = 0
    last_dropped[n - 1] = 0
    to_the_end[-1] = 1
    variants = [mask, gaps, last_dropped, to_the_end, np.zeros_like(mask), np.ones_like(mask)]
    long_ids, long_mask, long_types = tokenize(" ".join(SENTENCES * 4))
    with EmbedRuntime(real_model, "CPU", 128, 384, library=lib) as runtime:
        assert_rows_match_single(
            runtime,
            np.stack([ids] * len(variants) + [long_ids]),
            np.stack(variants + [long_mask]),
            np.stack([types] * len(variants) + [long_types]),
        )
        # Only short rows: the run is cut to the longest of them.
        assert_rows_match_single(runtime, np.stack([ids] * 3), np.stack([mask, gaps, last_dropped]))


def test_embed_batch_ids_takes_any_integer_layout(lib, test_model):
    ids, mask, types = synthetic_batch(5, 16)
    with EmbedRuntime(test_model("tiny_bert"), "CPU", 16, 24, library=lib) as runtime:
        expected = runtime.embed_batch_ids(ids, mask, types)
        fortran = np.asfortranarray(ids.astype(np.int32))
        sliced = np.repeat(mask, 2, axis=1)[:, ::2]  # the same values, not contiguous
        assert not sliced.flags.c_contiguous and np.array_equal(sliced, mask)
        np.testing.assert_array_equal(runtime.embed_batch_ids(fortran, sliced, types.tolist()), expected)
        empty = runtime.embed_batch_ids(np.zeros((0, 16), np.int64))
        assert empty.shape == (0, 24) and empty.dtype == np.float32


@pytest.mark.parametrize(
    "ids_shape,mask_shape",
    [((16,), None), ((2, 15), None), ((2, 17), None), ((2, 4, 4), None), ((2, 16), (3, 16)), ((2, 16), (2, 8))],
)
def test_embed_batch_ids_rejects_wrong_shapes(lib, test_model, ids_shape, mask_shape):
    with EmbedRuntime(test_model("tiny_bert"), "CPU", 16, 24, library=lib) as runtime:
        mask = None if mask_shape is None else np.ones(mask_shape, np.int64)
        with pytest.raises(ValueError):
            runtime.embed_batch_ids(np.ones(ids_shape, np.int64), mask)
        with pytest.raises(ValueError):
            runtime.embed_batch_ids(np.ones((2, 16), np.int64), None, np.zeros((1, 16), np.int64))


def test_out_of_vocabulary_id_fails_the_batch_and_the_handle_recovers(lib, test_model):
    ids, mask, types = synthetic_batch(40, 16)
    mask[:] = 1
    with EmbedRuntime(test_model("tiny_bert"), "CPU", 16, 24, library=lib) as runtime:
        expected = runtime.embed_batch_ids(ids, mask, types)
        for row in (0, 2, 39):
            bad = ids.copy()
            bad[row, 5] = 1_000_000
            with pytest.raises(EmbedRuntimeError, match="^" + ERRORS["ORT_ERROR"]):
                runtime.embed_batch_ids(bad, mask, types)
            assert runtime.last_error.startswith(ERRORS["ORT_ERROR"])
            np.testing.assert_array_equal(runtime.embed_batch_ids(ids, mask, types), expected)
            assert runtime.last_error == ""


def test_hidden_size_of_the_real_model(lib, real_model):
    for out_dim in (24, 384, 500):
        with EmbedRuntime(real_model, "CPU", 128, out_dim, library=lib) as runtime:
            assert runtime.hidden_size == 384


def test_version_is_the_cargo_package_version(lib):
    assert re.fullmatch(r"\d+\.\d+\.\d+", version(lib))
    assert version(lib) == cargo_version()
