"""EmbedRuntime's text API and life cycle: embed and embed_batch against embed_ids,
the default tokenizer, errors, closing, and threads sharing one runtime."""

from __future__ import annotations

import re

import numpy as np
import pytest

from c_embed_runtime import EmbedRuntime, EmbedRuntimeError, Tokenizer
from c_embed_runtime.demo import SENTENCES
from conftest import ERRORS, run_in_threads


@pytest.fixture(scope="module")
def real_runtime(lib, real_model):
    with EmbedRuntime(real_model, "CPU", library=lib) as runtime:
        yield runtime


def test_defaults_and_properties(real_runtime, real_model, tokenizer_json):
    runtime = real_runtime
    assert (runtime.seq_len, runtime.out_dim, runtime.hidden_size) == (128, 384, 384)
    assert runtime.selected_device == "CPU"
    assert runtime.cpu_fallback_detected is False and runtime.cpu_fallback_detail == ""
    # The tokenizer.json beside the model is the default.
    assert runtime.tokenizer.path == tokenizer_json and runtime.tokenizer.seq_len == 128
    assert "device='CPU'" in repr(runtime)


def test_embed_is_embed_ids_of_the_tokenized_text(real_runtime, tokenizer_json):
    tokenize = Tokenizer(tokenizer_json, 128)
    for sentence in SENTENCES:
        vector = real_runtime.embed(sentence)
        assert vector.shape == (384,) and vector.dtype == np.float32
        np.testing.assert_array_equal(vector, real_runtime.embed_ids(*tokenize(sentence)))
        assert real_runtime.last_error == ""


def test_embed_batch_rows_are_single_embeds(real_runtime):
    texts = SENTENCES + [" ".join(SENTENCES * 4), ""]
    batch = real_runtime.embed_batch(texts)
    assert batch.shape == (len(texts), 384) and batch.dtype == np.float32
    for row, text in enumerate(texts):
        np.testing.assert_allclose(batch[row], real_runtime.embed(text), rtol=0, atol=1e-6)
    assert real_runtime.embed_batch(iter(SENTENCES[:2])).shape == (2, 384)
    empty = real_runtime.embed_batch([])
    assert empty.shape == (0, 384) and empty.dtype == np.float32
    with pytest.raises(TypeError):
        real_runtime.embed_batch("one string is not a batch")


def test_explicit_tokenizer_path_and_instance(lib, real_model, tokenizer_json, real_runtime):
    expected = real_runtime.embed(SENTENCES[0])
    with EmbedRuntime(real_model, "CPU", 128, 384, tokenizer=tokenizer_json, library=lib) as runtime:
        np.testing.assert_array_equal(runtime.embed(SENTENCES[0]), expected)
    tokenizer = Tokenizer(tokenizer_json, 128)
    with EmbedRuntime(real_model, "CPU", tokenizer=tokenizer, library=lib) as runtime:
        # The library loads the Tokenizer's file and tokenizes: no Python tokenizer runs.
        assert runtime.tokenizer.path == tokenizer.path
        np.testing.assert_array_equal(runtime.embed(SENTENCES[0]), expected)
    with pytest.raises(EmbedRuntimeError, match="pads to 64 tokens, the runtime takes 128"):
        EmbedRuntime(real_model, "CPU", tokenizer=Tokenizer(tokenizer_json, 64), library=lib)
    with pytest.raises(EmbedRuntimeError, match="^" + re.escape(ERRORS["CANNOT_LOAD_TOKENIZER"] + " /nonexistent/tokenizer.json: ")):
        EmbedRuntime(real_model, "CPU", tokenizer="/nonexistent/tokenizer.json", library=lib)


def test_without_a_tokenizer_text_fails_and_ids_work(lib, test_model):
    model = test_model("tiny_bert")
    with EmbedRuntime(model, "CPU", 16, 24, library=lib) as runtime:
        assert runtime.tokenizer is None
        for call in (lambda: runtime.embed("text"), lambda: runtime.embed_batch(["text"])):
            with pytest.raises(EmbedRuntimeError) as failure:
                call()
            message = str(failure.value)
            assert message.startswith("no tokenizer: pass tokenizer= (there is no ")
            assert str(model.parent / "tokenizer.json") in message
        assert runtime.embed_ids(np.arange(16)).shape == (24,)


def test_embed_ids_checks_lengths(lib, test_model):
    with EmbedRuntime(test_model("tiny_bert"), "CPU", 16, 24, library=lib) as runtime:
        good = np.arange(16)
        for bad in (np.arange(15), np.arange(17), [1], np.ones((1, 16))):
            with pytest.raises(ValueError, match="expected seq_len = 16"):
                runtime.embed_ids(bad)
        with pytest.raises(ValueError, match="mask has 8 values"):
            runtime.embed_ids(good, np.ones(8))
        with pytest.raises(ValueError, match="token_types has 20 values"):
            runtime.embed_ids(good, None, np.zeros(20))
        with pytest.raises(TypeError):
            runtime.embed_ids(3)
        # Any integer layout: lists, int32, non-contiguous views.
        expected = runtime.embed_ids(good)
        np.testing.assert_array_equal(runtime.embed_ids(good.tolist()), expected)
        np.testing.assert_array_equal(runtime.embed_ids(good.astype(np.int32)), expected)
        np.testing.assert_array_equal(runtime.embed_ids(np.repeat(good, 2)[::2]), expected)


def test_close_is_idempotent_and_later_embeds_fail(lib, test_model):
    runtime = EmbedRuntime(test_model("tiny_bert"), "CPU", 16, 24, library=lib)
    with runtime as entered:
        assert entered is runtime and runtime.handle
    assert runtime.handle is None and repr(runtime) == "EmbedRuntime(closed)"
    runtime.close()
    assert runtime.selected_device == ERRORS["INVALID_DEVICE"] and runtime.last_error == ERRORS["INVALID_HANDLE"]
    for call in (lambda: runtime.embed_ids(np.arange(16)), lambda: runtime.embed_batch_ids(np.ones((1, 16)))):
        with pytest.raises(EmbedRuntimeError, match="EmbedRuntime is closed"):
            call()


def test_a_failed_create_raises_the_library_message(lib, test_model):
    with pytest.raises(EmbedRuntimeError) as failure:
        EmbedRuntime(test_model("tiny_bert").parent / "missing.onnx", "CPU", library=lib)
    # Exactly the library's message.
    assert str(failure.value) == lib.c_embed_runtime_last_create_error().decode()
    assert str(failure.value).startswith(ERRORS["STD_CREATE_ERROR"] + "cannot read model file ")
    with pytest.raises(EmbedRuntimeError, match=f"^{re.escape(ERRORS['MODEL_PATH_EMPTY'])}$"):
        EmbedRuntime("", "CPU", library=lib)


def test_threads_sharing_one_runtime_get_their_own_results(lib, test_model):
    inputs = [np.arange(i, i + 16) % 100 for i in range(6)]
    with EmbedRuntime(test_model("tiny_bert"), "CPU", 16, 24, threads=1, library=lib) as runtime:
        expected = [runtime.embed_ids(ids) for ids in inputs]
        failures = []

        def worker(index):
            for _ in range(100):
                if not np.array_equal(runtime.embed_ids(inputs[index]), expected[index]):
                    failures.append(index)

        run_in_threads(worker, len(inputs))
        assert failures == []
