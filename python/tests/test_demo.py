"""The demo's promise: on the real model, paraphrases score above unrelated sentences."""

from c_embed_runtime.demo import embed_all, paraphrase_margin


def test_paraphrases_score_above_unrelated_sentences(real_model, tokenizer_json):
    vectors, device = embed_all(real_model, tokenizer_json)
    assert device == "CPU"
    assert paraphrase_margin(vectors @ vectors.T) > 0.2
