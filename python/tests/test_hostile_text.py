"""Text in under hostile input (issue 18): tokenizer files that are not files,
too large, or load but cannot encode; batch errors that name their text; a
batch far larger than the memory its rows may use. Each case runs in a child
process with a timeout (a hang or an abort fails the case, not the suite) and
must print nothing to stderr."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import ERRORS, REPO, TEST_MODELS

from c_embed_runtime import library_path

TINY_TOKENIZER = TEST_MODELS / "tiny_tokenizer.json"

TIMEOUT = 60


def child(code: str, *, env: dict | None = None, address_space: int | None = None):
    """Runs `code` in a fresh Python with the package importable; its stdout
    lines, after checking it exited 0 within TIMEOUT and printed no stderr."""
    preexec = None
    if address_space is not None:
        import resource

        def preexec():
            resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))

    run = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO / "python",
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        preexec_fn=preexec,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stderr == "", run.stderr[-2000:]
    return run.stdout.splitlines()


def create_error(lib, model, tokenizer, env=None) -> str:
    """The create error of `model` with `tokenizer`, in a child process."""
    out = child(
        f"""
        from c_embed_runtime import EmbedRuntime, EmbedRuntimeError
        try:
            EmbedRuntime({str(model)!r}, "CPU", 64, 24, tokenizer={str(tokenizer)!r},
                         library={str(library_path(lib))!r})
            print("created")
        except EmbedRuntimeError as e:
            print(e)
        """,
        env=env,
    )
    return out[-1]


@pytest.fixture()
def tiny_tokenizer() -> dict:
    return json.loads(TINY_TOKENIZER.read_text())


def write(tmp_path: Path, name: str, tokenizer: dict) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(tokenizer))
    return path


def test_tokenizer_paths_that_are_not_regular_files_fail_at_once(lib, test_model, tmp_path):
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    prefix = ERRORS["CANNOT_LOAD_TOKENIZER"]
    for path, kind in ((fifo, "a FIFO"), ("/dev/zero", "a device"), ("/dev/urandom", "a device"),
                       (tmp_path, "a directory")):
        error = create_error(lib, test_model("tiny_bert"), path)
        assert error.startswith(prefix) and f"it is {kind}, not a tokenizer.json file" in error, error


def test_a_tokenizer_above_the_size_limit_is_refused(lib, test_model):
    path = TINY_TOKENIZER
    size = path.stat().st_size
    error = create_error(lib, test_model("tiny_bert"), path,
                         env={"C_EMBED_RUNTIME_MAX_TOKENIZER_BYTES": str(size - 1)})
    assert f"it holds {size} bytes, above the limit of {size - 1}" in error, error
    assert "C_EMBED_RUNTIME_MAX_TOKENIZER_BYTES" in error
    assert create_error(lib, test_model("tiny_bert"), path,
                        env={"C_EMBED_RUNTIME_MAX_TOKENIZER_BYTES": str(size)}) == "created"


def test_a_tokenizer_that_panics_is_refused_at_create_quietly(lib, test_model, tiny_tokenizer, tmp_path):
    # Its template names a special token it does not define: `tokenizers` panics
    # on every encode ("no entry found for key") rather than returning an error.
    del tiny_tokenizer["post_processor"]["special_tokens"]["[SEP]"]
    path = write(tmp_path, "missing_special.json", tiny_tokenizer)
    error = create_error(lib, test_model("tiny_bert"), path)
    assert error.startswith(ERRORS["CANNOT_LOAD_TOKENIZER"]), error
    assert "cannot encode the probe text" in error and "panicked while encoding" in error, error


def test_batch_errors_name_the_text(lib, test_model, tiny_tokenizer, tmp_path):
    # A WordPiece model without its unknown token fails on a word it does not know.
    vocab = tiny_tokenizer["model"]["vocab"]
    tiny_tokenizer["model"]["unk_token"] = "[NOWHERE]"
    known = [word for word in vocab if word.isalpha()][:2]
    path = write(tmp_path, "no_unk.json", tiny_tokenizer)
    out = child(
        f"""
        from c_embed_runtime import EmbedRuntime, EmbedRuntimeError
        with EmbedRuntime({str(test_model("tiny_bert"))!r}, "CPU", 64, 24, tokenizer={str(path)!r},
                          library={str(library_path(lib))!r}) as rt:
            print(rt.embed_batch({known!r}).shape)
            try:
                rt.embed_batch({known!r} + ["qqqqzzzz"])
            except EmbedRuntimeError as e:
                print(e)
        """
    )
    assert out[0] == "(2, 24)"
    assert out[1].startswith(ERRORS["STD_ERROR"]) and "texts[2]: tokenizer: " in out[1], out


def test_a_batch_larger_than_its_row_memory_runs_in_windows(lib, test_model):
    # 20,000 texts at seq_len 8192: rows of every text at once would be 3.9 GB,
    # above the child's 3 GiB of address space; windows of rows hold a few MB.
    out = child(
        f"""
        import numpy as np
        from c_embed_runtime import EmbedRuntime
        with EmbedRuntime({str(test_model("tiny_bert"))!r}, "CPU", 8192, 24,
                          tokenizer={str(TINY_TOKENIZER)!r},
                          library={str(library_path(lib))!r}) as rt:
            texts = ["hello world", "the cat sat"] * 10_000
            vectors = rt.embed_batch(texts)
            singles = np.stack([rt.embed(t) for t in texts[:2]])
            print(vectors.shape, float(np.abs(vectors[-2:] - singles).max()))
        """,
        address_space=3 << 30,
    )
    shape, diff = out[-1].rsplit(" ", 1)
    assert shape == "(20000, 24)"
    assert float(diff) <= 1e-6


def test_long_texts_give_the_full_texts_first_tokens(lib, real_model, tokenizer_json):
    # Texts of 1 MB and more: the library reads a bounded prefix; its tokens are
    # the full text's first seq_len, as the `tokenizers` package gives them.
    from tokenizers import Tokenizer as HfTokenizer

    from c_embed_runtime import EmbedRuntime

    sentences = [line.strip() for line in (REPO / "bench" / "long_sentences.txt").read_text().splitlines()
                 if line.strip() and not line.startswith("#")]
    texts = [" ".join(sentences[i:] + sentences[:i]) * 40 for i in (0, 7, 99)]
    texts.append("naïve café " * 120_000)
    assert all(len(t.encode()) >= 1 << 20 for t in texts)
    for seq_len in (128, 16):
        reference = HfTokenizer.from_file(str(tokenizer_json))
        reference.no_padding()
        reference.enable_truncation(seq_len)
        with EmbedRuntime(real_model, "CPU", seq_len, tokenizer=tokenizer_json, library=lib) as rt:
            for text in texts:
                count, ids, _, _ = rt.tokenizer.tokenize(text)
                assert list(ids[:count]) == reference.encode(text).ids


def test_a_tokenizer_setting_cannot_make_a_call_take_minutes(lib, test_model, tiny_tokenizer, tmp_path):
    # WordPiece matching is quadratic in a word's length; a tokenizer.json that
    # raises max_input_chars_per_word is held to the library's cap.
    tiny_tokenizer["model"]["max_input_chars_per_word"] = 1_000_000_000
    path = write(tmp_path, "long_words.json", tiny_tokenizer)
    out = child(
        f"""
        import time
        from c_embed_runtime import EmbedRuntime
        with EmbedRuntime({str(test_model("tiny_bert"))!r}, "CPU", 128, 24, tokenizer={str(path)!r},
                          library={str(library_path(lib))!r}) as rt:
            start = time.monotonic()
            rt.embed("a" * 50_000)
            rt.embed_batch(["ab" * 30_000, "hello " + "x" * 100_000])
            print(time.monotonic() - start)
        """
    )
    assert float(out[-1]) < 5.0, out



def test_a_huge_text_takes_the_memory_of_seq_len_tokens(lib, test_model):
    # 50 MB of text: tokenizing all of it would take gigabytes (about 70 bytes
    # per input byte), above the child's 3 GiB; the library reads a prefix.
    out = child(
        f"""
        import time
        from c_embed_runtime import EmbedRuntime
        with EmbedRuntime({str(test_model("tiny_bert"))!r}, "CPU", 128, 24,
                          tokenizer={str(TINY_TOKENIZER)!r}, library={str(library_path(lib))!r}) as rt:
            text = "hello world " * 4_200_000
            start = time.monotonic()
            rt.embed(text)
            print(len(text), time.monotonic() - start)
        """,
        address_space=3 << 30,
    )
    size, seconds = out[-1].split()
    assert int(size) > 50_000_000
    assert float(seconds) < 2.0
