"""The library's vectors against an independent reference (Python onnxruntime +
numpy doing the contract's pooling and fold): within 1e-6 on the real model and on
the generated models, for several out_dims, NULL masks, masks with gaps, all-zero
and all-ones masks, and 2 threads.

The reference always runs the full seq_len; the library runs only up to the last
valid token, so these tests also hold that length-aware execution changes nothing."""

from __future__ import annotations

import numpy as np
import pytest

from c_embed_runtime import EmbedRuntime, Tokenizer
from c_embed_runtime.demo import SENTENCES
from reference import ReferenceEmbedder

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
