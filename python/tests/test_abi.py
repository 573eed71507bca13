"""The ABI as the legacy Python host uses it: the package's ctypes prototypes
against the header, the host's flow on the real model (create, a probe embed,
the fallback check) and an embed error raised with the library's message. (What
the ABI answers for each device, model, invalid handle and thread is
c_tests/test_abi.c's and misuse.c's.)"""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

from c_embed_runtime import PROTOTYPES, EmbedRuntime, EmbedRuntimeError, Tokenizer
from conftest import ERRORS, header_prototypes


# The header's C types as ctypes spells them (the legacy host's declarations).
CTYPES = {
    "void": None,
    "void *": ctypes.c_void_p,
    "const char *": ctypes.c_char_p,
    "int32_t": ctypes.c_int32,
    "int64_t": ctypes.c_int64,
    "const int64_t *": ctypes.POINTER(ctypes.c_int64),
    "int64_t *": ctypes.POINTER(ctypes.c_int64),
    "float *": ctypes.POINTER(ctypes.c_float),
    "const char *const *": ctypes.POINTER(ctypes.c_char_p),
}


def test_every_prototype_matches_the_header():
    # One prototype for each function the generated header declares (the list
    # `make test-symbols` checks the exported symbols against), with its C types.
    header = header_prototypes()
    assert set(PROTOTYPES) == set(header)
    for name, (returns, params) in header.items():
        assert PROTOTYPES[name] == (CTYPES[returns], [CTYPES[p] for p in params]), name


def test_legacy_host_flow_on_the_real_model(lib, real_model, tokenizer_json):
    # Defaults of the legacy host: seq_len 128, out_dim 24, threads 1, strict 1;
    # after create it probes one embed and checks the fallback flag.
    tokenize = Tokenizer(tokenizer_json, 128)
    with EmbedRuntime(real_model, "CPU", 128, 24, 1, True, library=lib) as runtime:
        vector = runtime.embed_ids(*tokenize("probe"))
        assert vector.shape == (24,) and vector.dtype == np.float32
        assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-5
        assert runtime.selected_device == "CPU"
        assert runtime.cpu_fallback_detected is False
        assert runtime.cpu_fallback_detail == ""
        assert runtime.last_error == ""


def test_embed_errors_keep_the_handle_usable(lib, test_model):
    with EmbedRuntime(test_model("tiny_bert"), "CPU", 16, 24, library=lib) as runtime:
        good = np.arange(16) % 50
        with pytest.raises(EmbedRuntimeError, match="^" + ERRORS["ORT_ERROR"]):
            runtime.embed_ids(np.full(16, 10_000))
        assert runtime.last_error.startswith(ERRORS["ORT_ERROR"])
        runtime.embed_ids(good)
        assert runtime.last_error == ""
