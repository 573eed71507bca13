"""Text in: the library's tokenizer (c_embed_runtime_tokenize, _embed_text,
_embed_text_batch) against the Python `tokenizers` package, on real sentences,
and `python -m c_embed_runtime`."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys

import numpy as np
import pytest
from conftest import ERRORS, REPO, run_in_threads
from tokenizers import Tokenizer as HfTokenizer

from c_embed_runtime import EmbedRuntime, EmbedRuntimeError, Tokenizer
from c_embed_runtime.demo import SENTENCES as DEMO_SENTENCES

# Texts that exercise the normalizer and pre-tokenizer beyond plain English.
TRICKY = [
    "",
    " ",
    "Héllo, Wörld! Ça va? Ñandú.",
    "naïve café résumé coöperate",
    "東京は日本の首都です。北京是中国的首都。",
    "Emoji 🙂🚀 and symbols ±∞ ≤ ≥ € £ ¥",
    "tabs\tand\nnewlines\r\nand  double  spaces",
    "don't won't it's e-mail U.S.A. 3.14159 1,000,000",
    "unbelievably antidisestablishmentarianism hyperparameterization",
    "ALL CAPS SHOUTING and MiXeD cAsE",
    "zero\u200bwidth and soft\u00adhyphen and control\x07char",
    "Ελληνικά и русский текст, עברית, العربية",
]


def corpus() -> list[str]:
    """bench/sentences.txt, the demo's sentences, the tricky texts, a long text, and
    every line of the READMEs (prose, code, tables and punctuation: several hundred)."""
    lines = (REPO / "bench" / "sentences.txt").read_text(encoding="utf-8").splitlines()
    bench = [line for line in lines if line.strip() and not line.startswith("#")]
    readmes = [REPO / "README.md", REPO / "examples" / "README.md", REPO / "bench" / "README.md"]
    prose = [line for path in readmes for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return bench + list(DEMO_SENTENCES) + TRICKY + [" ".join(bench)] + prose


CORPUS = corpus()
#: The texts whose vectors are compared (the model runs are the slow part).
SENTENCES = CORPUS[: CORPUS.index(TRICKY[-1]) + 2]


def python_tokens(tokenizer_json, seq_len: int):
    """What the Python package gives: truncated to seq_len with specials kept, unpadded."""
    tokenizer = HfTokenizer.from_file(str(tokenizer_json))
    tokenizer.no_padding()
    tokenizer.enable_truncation(seq_len)
    return tokenizer


def assert_same_tokens(runtime: EmbedRuntime, reference: HfTokenizer, texts) -> int:
    """Every text's library row equals the Python encoding, padded with 0; returns the count."""
    n = runtime.seq_len
    for text in texts:
        count, ids, mask, types = runtime.tokenizer.tokenize(text)
        want = reference.encode(text)
        assert count == len(want.ids), text
        pad = [0] * (n - count)
        assert ids.tolist() == want.ids + pad, text
        assert mask.tolist() == want.attention_mask + pad, text
        assert types.tolist() == want.type_ids + pad, text
    return len(texts)


@pytest.fixture(scope="module", params=[128, 16], ids=["seq128", "seq16"])
def text_runtime(request, lib, real_model, tokenizer_json):
    with EmbedRuntime(real_model, "CPU", request.param, 384, tokenizer=tokenizer_json, library=lib) as runtime:
        yield runtime


def test_tokens_equal_the_python_tokenizers_package(text_runtime, tokenizer_json):
    # `pytest -s -k tokens_equal python/tests/test_text.py` prints the counts.
    reference = python_tokens(tokenizer_json, text_runtime.seq_len)
    assert assert_same_tokens(text_runtime, reference, CORPUS) == len(CORPUS) > 400
    truncated = sum(len(reference.encode(t, add_special_tokens=False).ids) + 2 > text_runtime.seq_len for t in CORPUS)
    print(f"\nseq_len {text_runtime.seq_len}: tokens equal for {len(CORPUS)} of {len(CORPUS)} texts, {truncated} truncated")
    if text_runtime.seq_len == 16:  # the short seq_len really truncates
        assert truncated > 100


def test_vectors_equal_the_ids_path(text_runtime, tokenizer_json):
    # `pytest -s -k vectors_equal python/tests/test_text.py` prints the differences.
    tokenize = Tokenizer(tokenizer_json, text_runtime.seq_len)
    single = np.stack([text_runtime.embed(text) for text in SENTENCES])
    from_ids = np.stack([text_runtime.embed_ids(*tokenize(text)) for text in SENTENCES])
    np.testing.assert_array_equal(single, from_ids)
    batch = text_runtime.embed_batch(SENTENCES)
    batch_ids = text_runtime.embed_batch_ids(*tokenize.batch(SENTENCES))
    np.testing.assert_allclose(batch, batch_ids, rtol=0, atol=1e-6)
    print(
        f"\nseq_len {text_runtime.seq_len}, {len(SENTENCES)} texts: max |embed - embed_ids| "
        f"{np.abs(single - from_ids).max():.3g}, max |embed_batch - embed_batch_ids| "
        f"{np.abs(batch - batch_ids).max():.3g}, max |embed_batch - embed| {np.abs(batch - single).max():.3g}"
    )


def test_threads_sharing_a_handle_get_their_own_vectors(lib, real_model, tokenizer_json):
    # Batches of 40 texts (more than one run of 32, more than the pooled rows keep)
    # and single texts, from four threads on one handle at once.
    texts = SENTENCES + SENTENCES[:9]
    with EmbedRuntime(real_model, "CPU", 64, 384, tokenizer=tokenizer_json, library=lib) as runtime:
        want = np.stack([runtime.embed(text) for text in texts])
        results = [None] * 4

        def worker(i):
            if i % 2:
                results[i] = runtime.embed_batch(texts)
            else:
                results[i] = np.stack([runtime.embed(text) for text in texts])

        run_in_threads(worker, 4)
        for got in results:
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


def test_truncation_keeps_sep_unlike_the_legacy_host(lib, real_model, tokenizer_json):
    long_text = " ".join(CORPUS[:14])
    legacy = HfTokenizer.from_file(str(tokenizer_json))
    legacy.no_truncation()
    legacy_ids = legacy.encode(long_text).ids[:16]  # the legacy host: cut after [CLS]/[SEP] were added
    with EmbedRuntime(real_model, "CPU", 16, 384, tokenizer=tokenizer_json, library=lib) as runtime:
        count, ids, _, _ = runtime.tokenizer.tokenize(long_text)
        assert count == 16 and ids[0] == 101 and ids[-1] == 102  # [CLS] ... [SEP]
        assert legacy_ids[-1] != 102 and ids[:15].tolist() == legacy_ids[:15]


@pytest.mark.parametrize("kind", ["bpe", "unigram"])
def test_trained_bpe_and_unigram_tokenizers_match(kind, lib, test_model, tmp_path):
    # Byte-level BPE (GPT-2's regex pre-tokenizer) and Metaspace Unigram (SentencePiece
    # style), trained here on the corpus, as the Python package loads them.
    from tokenizers import models, pre_tokenizers, processors, trainers

    if kind == "bpe":
        tokenizer = HfTokenizer(models.BPE(unk_token="<unk>"))
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<pad>", "<unk>", "<s>", "</s>"],
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    else:
        tokenizer = HfTokenizer(models.Unigram())
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
        trainer = trainers.UnigramTrainer(vocab_size=300, special_tokens=["<pad>", "<unk>", "<s>", "</s>"],
                                          unk_token="<unk>")
    tokenizer.train_from_iterator(CORPUS * 3, trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 2), ("</s>", 3)]
    )
    path = tmp_path / f"{kind}.json"
    tokenizer.save(str(path))
    for seq_len in (128, 16):
        with EmbedRuntime(test_model("tiny_bert"), "CPU", seq_len, 24, tokenizer=path, library=lib) as runtime:
            assert assert_same_tokens(runtime, python_tokens(path, seq_len), CORPUS) == len(CORPUS)


def test_text_errors(lib, real_model, tokenizer_json, test_model, tmp_path):
    with EmbedRuntime(real_model, "CPU", tokenizer=tokenizer_json, library=lib) as runtime:
        with pytest.raises(ValueError, match="NUL"):
            runtime.embed("a\0b")
        with pytest.raises(ValueError, match="NUL"):
            runtime.embed_batch(["fine", "a\0b"])
        with pytest.raises(TypeError):
            runtime.embed(b"bytes")
        with pytest.raises(UnicodeEncodeError):
            runtime.embed("lone surrogate \ud800")
    bad = tmp_path / "tokenizer.json"
    bad.write_text('{"model": "not a tokenizer"}')
    with pytest.raises(EmbedRuntimeError, match="^" + re.escape(ERRORS["CANNOT_LOAD_TOKENIZER"]) + r" .*tokenizer\.json: "):
        EmbedRuntime(test_model("tiny_bert"), "CPU", tokenizer=bad, library=lib)


# ---- python -m c_embed_runtime ---------------------------------------------------


def run_cli(*args, stdin: bytes = b"", cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "c_embed_runtime", *map(str, args)],
        input=stdin,
        capture_output=True,
        cwd=cwd or REPO / "python",
        timeout=300,
    )


def test_cli_help():
    done = run_cli("--help")
    assert done.returncode == 0
    for option in ("--model", "--tokenizer", "--device", "--seq-len", "--out-dim", "--format"):
        assert option.encode() in done.stdout


def test_cli_jsonl_from_arguments_and_stdin(real_model, lib, tokenizer_json):
    texts = ["A man is playing a guitar.", "Ça va? 🙂"]
    from_args = run_cli("--model", real_model, *texts)
    assert from_args.returncode == 0, from_args.stderr
    from_stdin = run_cli("--model", real_model, "--tokenizer", tokenizer_json,
                         stdin="\n".join(texts + [""]).encode())
    assert from_stdin.returncode == 0, from_stdin.stderr
    with EmbedRuntime(real_model, "CPU", library=lib) as runtime:
        for output in (from_args.stdout, from_stdin.stdout):
            rows = [json.loads(line) for line in output.decode().splitlines()]
            assert [row["text"] for row in rows] == texts
            for row, text in zip(rows, texts):
                np.testing.assert_allclose(np.float32(row["vector"]), runtime.embed(text), rtol=0, atol=1e-6)


def test_cli_npy_to_stdout_and_file(real_model, tmp_path):
    done = run_cli("--model", real_model, "--format", "npy", "--out-dim", 8, stdin=b"one\ntwo\n\nthree\n")
    assert done.returncode == 0, done.stderr
    matrix = np.load(io.BytesIO(done.stdout))
    assert matrix.shape == (4, 8) and matrix.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(matrix, axis=1), 1, atol=1e-5)
    target = tmp_path / "vectors.npy"
    done = run_cli("--model", real_model, "--format", "npy", "-o", target, "one", "two", "three")
    assert done.returncode == 0, done.stderr
    assert np.load(target).shape == (3, 384)


def test_cli_errors(real_model, test_model):
    missing = run_cli("--model", real_model, "--tokenizer", "/nonexistent/tokenizer.json", "hi")
    assert missing.returncode == 1
    assert f"{ERRORS['CANNOT_LOAD_TOKENIZER']} /nonexistent/tokenizer.json".encode() in missing.stderr
    no_tokenizer = run_cli("--model", test_model("tiny_bert"), "hi")
    assert no_tokenizer.returncode == 1 and b"no tokenizer" in no_tokenizer.stderr
    not_utf8 = run_cli("--model", real_model, stdin=b"fine\n\xff\n")
    assert not_utf8.returncode == 2 and b"line 2: not UTF-8" in not_utf8.stderr
    usage = run_cli("hi")
    assert usage.returncode == 2 and b"--model" in usage.stderr
