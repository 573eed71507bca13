"""The library's vectors against an independent reference (Python onnxruntime +
numpy doing the contract's pooling and fold): within 1e-6 on the real models and on
the generated models, for several out_dims, NULL masks, masks with gaps, all-zero
and all-ones masks, and 2 threads.

For models that respect the mask the reference runs the full seq_len and the
library only up to the last valid token, so these tests also hold that
length-aware execution changes nothing. For every model, whatever its class, the
library's vector is the reference's run of the row alone at its own length
(`trimmed=True`), in singles and in batches; with C_EMBED_RUNTIME_PADDED=1 it is
the reference's padded run (the legacy library's vectors)."""

from __future__ import annotations

import numpy as np
import pytest

from c_embed_runtime import EmbedRuntime, EmbedRuntimeError, Tokenizer
from c_embed_runtime.demo import SENTENCES
from conftest import ERRORS
from reference import ReferenceEmbedder
from test_batch import synthetic_batch

TOLERANCE = 1e-6
SEQ_LEN = 32


def synthetic_inputs(seq_len: int, vocab: int = 100):
    """Masks with trailing padding, with gaps, all zeros, all ones."""
    rng = np.random.default_rng(7)
    cases = []
    for mask in (
        np.r_[np.ones(5), np.zeros(seq_len - 5)],
        np.r_[np.ones(3), 0, 1, 0, 0, 1, np.zeros(seq_len - 8)],
        np.zeros(seq_len),
        np.ones(seq_len),
    ):
        ids = rng.integers(0, vocab, seq_len)
        types = rng.integers(0, 2, seq_len)
        cases.append((ids.astype(np.int64), mask.astype(np.int64), types.astype(np.int64)))
    return cases


def real_mask_variants(mask):
    """Masks derived from a tokenized sentence's mask (n valid tokens, n >= 5):
    gaps inside the sentence, its last token masked out (a shorter run), gaps
    reaching the last position, all zeros and all ones (padding included)."""
    n = int(np.count_nonzero(mask))
    gaps = mask.copy()
    gaps[[2, 4]] = 0
    last_dropped = mask.copy()
    last_dropped[n - 1] = 0
    to_the_end = mask.copy()
    to_the_end[1:-1] = 0
    to_the_end[-1] = 1
    return {
        "tokenized": mask,
        "gaps": gaps,
        "last token masked": last_dropped,
        "first and last position": to_the_end,
        "all zeros": np.zeros_like(mask),
        "all ones": np.ones_like(mask),
    }


def assert_matches(library: EmbedRuntime, reference: ReferenceEmbedder, ids, mask, types):
    got = library.embed_ids(ids, mask, types)
    want = reference.embed(ids, mask, types)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=TOLERANCE)


GENERATED = [
    "tiny_bert",
    "tiny_bert_no_types",
    "tiny_bert_position_ids",
    "tiny_bert_extra_inputs",
    "tiny_rank2",
    "tiny_int64_first",
    "tiny_bert_h48",
]


@pytest.mark.parametrize("out_dim", [24, 384, 40, 1])
@pytest.mark.parametrize("model", GENERATED)
def test_generated_models_match_the_reference(lib, test_model, model, out_dim):
    reference = ReferenceEmbedder(test_model(model), SEQ_LEN, out_dim)
    with EmbedRuntime(test_model(model), "CPU", SEQ_LEN, out_dim, library=lib) as library:
        for ids, mask, types in synthetic_inputs(SEQ_LEN):
            assert_matches(library, reference, ids, mask, types)
            assert_matches(library, reference, ids, None, None)


def test_static_shape_model_matches_the_reference(lib, test_model):
    reference = ReferenceEmbedder(test_model("tiny_static16"), 16, 24)
    with EmbedRuntime(test_model("tiny_static16"), "CPU", 16, 24, library=lib) as library:
        for ids, mask, types in synthetic_inputs(16):
            assert_matches(library, reference, ids, mask, types)


@pytest.mark.parametrize("out_dim,threads", [(24, 1), (384, 1), (500, 1), (384, 2)])
def test_real_model_matches_the_reference(lib, real_model, tokenizer_json, out_dim, threads):
    seq_len = 128
    tokenize = Tokenizer(tokenizer_json, seq_len)
    reference = ReferenceEmbedder(real_model, seq_len, out_dim, threads)
    with EmbedRuntime(real_model, "CPU", seq_len, out_dim, threads, library=lib) as library:
        for sentence in SENTENCES[:3]:
            ids, mask, types = tokenize(sentence)
            assert_matches(library, reference, ids, mask, types)
        ids, _, _ = tokenize(SENTENCES[3])
        assert_matches(library, reference, ids, None, None)
        ids, mask, types = tokenize(SENTENCES[4])
        for name, variant in real_mask_variants(mask).items():
            try:
                assert_matches(library, reference, ids, variant, types)
            except AssertionError as failure:
                raise AssertionError(f"mask variant {name!r}: {failure}") from None
        # A text longer than seq_len: truncated, every position valid.
        ids, mask, types = tokenize(" ".join(SENTENCES * 4))
        assert mask.all()
        assert_matches(library, reference, ids, mask, types)


def test_seq_len_below_8_is_clamped_like_the_reference(lib, test_model):
    reference = ReferenceEmbedder(test_model("tiny_bert"), 3, 24)
    with EmbedRuntime(test_model("tiny_bert"), "CPU", 3, 24, library=lib) as library:
        assert library.seq_len == 8
        ids, mask, types = synthetic_inputs(8)[1]
        assert_matches(library, reference, ids, mask, types)


@pytest.mark.parametrize("model", ["tiny_bert", "all-MiniLM-L6-v2"])
def test_negative_mask_values_after_the_last_valid_token(lib, test_model, real_model, tokenizer_json, model):
    # The model is fed the caller's mask: a negative value is an odd mask, yet the
    # contract's full-length run gives a defined vector that the library must match
    # (so a run may only cut positions whose mask is 0).
    if model == "tiny_bert":
        path, seq_len = test_model("tiny_bert"), 16
        ids, mask, types = np.arange(1, 17, dtype=np.int64), np.r_[1, 1, 1, -1, np.zeros(12)], None
    else:
        path, seq_len = real_model, 128
        ids, mask, types = Tokenizer(tokenizer_json, seq_len)(SENTENCES[0])
        mask[int(mask.sum()) + 3] = -1
    reference = ReferenceEmbedder(path, seq_len, 32)
    with EmbedRuntime(path, "CPU", seq_len, 32, library=lib) as library:
        assert_matches(library, reference, ids, mask.astype(np.int64), types)


# Models of each execution class and output kind (tools/gen_test_models.py):
# name -> (time-major output, padding changes its vectors).
CLASS_MODELS = {
    "tiny_int8_dynamic": (False, True),  # class (c): one int8 scale per run
    "tiny_mask_ignoring": (False, True),  # class (b): the mean over every position
    "tiny_time_major": (True, False),
    "tiny_nonzero_output": (False, False),  # output shape follows the mask values
    "tiny_fp16_output": (False, False),
    "tiny_bf16_output": (False, False),
}


def valid_rows(model, ids, mask, types):
    """tiny_nonzero_output has no output for a row without a valid token
    (empty_output, in the reference too): give those rows one."""
    if model == "tiny_nonzero_output":
        mask = mask.copy()
        mask[mask.sum(axis=1) == 0, 0] = 1
    return ids, mask, types


@pytest.mark.parametrize("seq_len", [16, 64])
@pytest.mark.parametrize("model", CLASS_MODELS)
def test_every_class_gives_the_row_alone_at_its_own_length(lib, test_model, model, seq_len):
    time_major, padding_matters = CLASS_MODELS[model]
    reference = ReferenceEmbedder(test_model(model), seq_len, 24, time_major=time_major)
    ids, mask, types = valid_rows(model, *synthetic_batch(21, seq_len))
    with EmbedRuntime(test_model(model), "CPU", seq_len, 24, library=lib) as library:
        batch = library.embed_batch_ids(ids, mask, types)
        padded_diff = 0.0
        for row in range(len(ids)):
            want = reference.embed(ids[row], mask[row], types[row], trimmed=True)
            single = library.embed_ids(ids[row], mask[row], types[row])
            np.testing.assert_allclose(single, want, rtol=0, atol=TOLERANCE, err_msg=f"row {row}")
            np.testing.assert_allclose(batch[row], want, rtol=0, atol=TOLERANCE, err_msg=f"batch row {row}")
            padded = reference.embed(ids[row], mask[row], types[row])
            padded_diff = max(padded_diff, float(np.abs(padded - want).max()))
        # The classes are real: padding moves these models' vectors (by 0.02 to 0.3).
        assert (padded_diff > 1e-3) == padding_matters, padded_diff


@pytest.mark.parametrize("model", ["tiny_int8_dynamic", "tiny_mask_ignoring", "tiny_bert"])
def test_padded_mode_gives_the_legacy_padded_vectors(lib, test_model, model, monkeypatch):
    seq_len = 64  # above the self-check's padded probe (32 positions)
    reference = ReferenceEmbedder(test_model(model), seq_len, 24)
    ids, mask, types = synthetic_batch(14, seq_len)
    monkeypatch.setenv("C_EMBED_RUNTIME_PADDED", "1")
    with EmbedRuntime(test_model(model), "CPU", seq_len, 24, library=lib) as padded:
        monkeypatch.delenv("C_EMBED_RUNTIME_PADDED")  # read at create: the handle keeps it
        batch = padded.embed_batch_ids(ids, mask, types)
        singles = np.stack([padded.embed_ids(i, m, t) for i, m, t in zip(ids, mask, types)])
    with EmbedRuntime(test_model(model), "CPU", seq_len, 24, library=lib) as default:
        trimmed = default.embed_batch_ids(ids, mask, types)
    want = np.stack([reference.embed(i, m, t) for i, m, t in zip(ids, mask, types)])
    np.testing.assert_array_equal(batch, singles)  # each row runs alone, padded
    np.testing.assert_allclose(singles, want, rtol=0, atol=TOLERANCE)
    default_vs_padded = float(np.abs(trimmed - singles).max())
    if model == "tiny_bert":
        assert default_vs_padded <= TOLERANCE
    else:
        assert default_vs_padded > 1e-3


def test_non_finite_vectors_fail_the_call(lib, test_model):
    seq_len = 16
    reference = ReferenceEmbedder(test_model("tiny_nan_output"), seq_len, 24)
    ids, mask = np.r_[np.arange(1, 9), np.zeros(8)].astype(np.int64), np.r_[np.ones(8), np.zeros(8)].astype(np.int64)
    with EmbedRuntime(test_model("tiny_nan_output"), "CPU", seq_len, 24, library=lib) as library:
        # id 0 (log 0 = -inf) only at masked positions: a finite vector, the reference's.
        np.testing.assert_allclose(library.embed_ids(ids, mask), reference.embed(ids, mask), rtol=0, atol=TOLERANCE)
        bad = ids.copy()
        bad[4] = 0
        with np.errstate(invalid="ignore"):
            assert not np.isfinite(reference.embed(bad, mask)).all()
        with pytest.raises(EmbedRuntimeError, match=f"^{ERRORS['NON_FINITE_OUTPUT']}$"):
            library.embed_ids(bad, mask)
        with pytest.raises(EmbedRuntimeError, match=f"^{ERRORS['NON_FINITE_OUTPUT']}$"):
            library.embed_batch_ids(np.stack([ids, bad]), np.stack([mask, mask]))
        library.embed_ids(ids, mask)
        assert library.last_error == ""


@pytest.mark.parametrize("out_dim", [384, 24])
def test_paraphrase_model_matches_the_reference(lib, paraphrase_model, tokenizer_json, out_dim):
    # paraphrase-MiniLM-L3-v2: no token_type_ids, four outputs, output 0 int64 (the
    # first float output is read); the vocabulary is all-MiniLM-L6-v2's tokenizer's.
    seq_len = 128
    tokenize = Tokenizer(tokenizer_json, seq_len)
    reference = ReferenceEmbedder(paraphrase_model, seq_len, out_dim)
    ids, mask, types = (np.stack(arrays) for arrays in zip(*(tokenize(s) for s in SENTENCES)))
    with EmbedRuntime(paraphrase_model, "CPU", seq_len, out_dim, library=lib) as library:
        assert library.hidden_size == 384
        batch = library.embed_batch_ids(ids, mask, types)
        for row in range(len(ids)):
            want = reference.embed(ids[row], mask[row], types[row])
            np.testing.assert_allclose(library.embed_ids(ids[row], mask[row], types[row]), want, rtol=0, atol=TOLERANCE)
            np.testing.assert_allclose(batch[row], want, rtol=0, atol=TOLERANCE)
        for name, variant in real_mask_variants(mask[4]).items():
            try:
                assert_matches(library, reference, ids[4], variant, types[4])
            except AssertionError as failure:
                raise AssertionError(f"mask variant {name!r}: {failure}") from None
        if out_dim == 384:  # paraphrases score above unrelated pairs
            similarity = batch @ batch.T
            assert similarity[0, 1] > similarity[0, 2]
