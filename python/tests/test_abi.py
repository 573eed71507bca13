"""The ABI as the legacy Python host uses it: ctypes prototypes, create, a probe
embed, the fallback check, errors and the NULL-handle getters."""

from __future__ import annotations

import ctypes
import threading

import numpy as np
import pytest

from c_embed_runtime import PROTOTYPES, EmbedRuntime, EmbedRuntimeError, Tokenizer
from conftest import ERRORS, GPU_UNAVAILABLE, NPU_UNAVAILABLE, header_prototypes


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


@pytest.mark.parametrize(
    "device,message",
    [
        ("NPU", NPU_UNAVAILABLE),
        ("intel_npu", NPU_UNAVAILABLE),
        ("GPU", GPU_UNAVAILABLE),
        ("tpu", ERRORS["UNSUPPORTED_DEVICE"]),
    ],
)
def test_unavailable_devices_fail_with_the_contract_message(lib, test_model, device, message, monkeypatch):
    monkeypatch.delenv("CDB_EMBED_GPU_ALLOW_OPENVINO_FALLBACK", raising=False)
    with pytest.raises(EmbedRuntimeError) as failure:
        EmbedRuntime(test_model("tiny_bert"), device, 128, 24, library=lib)
    assert str(failure.value) == message


@pytest.mark.parametrize("device", [None, "", "auto", "Cpu", "HOST"])
def test_auto_and_cpu_spellings_end_on_the_cpu(lib, test_model, device):
    with EmbedRuntime(test_model("tiny_bert"), device, 128, 24, library=lib) as runtime:
        assert runtime.selected_device == "CPU"
    assert lib.c_embed_runtime_last_create_error() == b""


def test_embed_errors_keep_the_handle_usable(lib, test_model):
    with EmbedRuntime(test_model("tiny_bert"), "CPU", 16, 24, library=lib) as runtime:
        good = np.arange(16) % 50
        with pytest.raises(EmbedRuntimeError, match="^" + ERRORS["ORT_ERROR"]):
            runtime.embed_ids(np.full(16, 10_000))
        assert runtime.last_error.startswith(ERRORS["ORT_ERROR"])
        runtime.embed_ids(good)
        assert runtime.last_error == ""


@pytest.mark.parametrize(
    "model,error",
    [
        ("bad_rank1_output", ERRORS["UNSUPPORTED_OUTPUT_RANK"]),
        ("bad_rank0_output", ERRORS["EMPTY_OUTPUT"]),
        ("bad_empty_output", ERRORS["EMPTY_OUTPUT"]),
        ("bad_wide_hidden", ERRORS["INVALID_HIDDEN_DIM"]),
    ],
)
def test_unusable_outputs_fail_each_embed(lib, test_model, model, error):
    with EmbedRuntime(test_model(model), "CPU", 8, 24, library=lib) as runtime:
        for _ in range(2):
            with pytest.raises(EmbedRuntimeError) as failure:
                runtime.embed_ids(np.ones(8))
            assert str(failure.value) == error


def test_null_handle_getters(lib):
    assert lib.c_embed_runtime_last_error(None).decode() == ERRORS["INVALID_HANDLE"]
    assert lib.c_embed_runtime_selected_device(None).decode() == ERRORS["INVALID_DEVICE"]
    assert lib.c_embed_runtime_cpu_fallback_detected(None) == 0
    assert lib.c_embed_runtime_cpu_fallback_detail(None).decode() == ERRORS["INVALID_HANDLE"]
    assert lib.c_embed_runtime_output_dim(None) == 0
    assert lib.c_embed_runtime_seq_len(None) == 0
    assert lib.c_embed_runtime_hidden_size(None) == 0
    out = (ctypes.c_float * 4)()
    ids = (ctypes.c_int64 * 8)()
    assert lib.c_embed_runtime_embed(None, ids, None, None, out) == 0
    assert lib.c_embed_runtime_embed_batch(None, 1, ids, None, None, out) == 0
    assert list(out) == [0.0] * 4
    lib.c_embed_runtime_destroy(None)


def test_two_threads_on_one_handle_get_their_own_results(lib, test_model):
    inputs = [np.arange(i, i + 32) % 100 for i in range(4)]
    with EmbedRuntime(test_model("tiny_bert"), "CPU", 32, 24, library=lib) as runtime:
        expected = [runtime.embed_ids(ids) for ids in inputs]
        failures = []

        def worker(index):
            # Each thread uses its own buffers: the raw ABI, not the shared EmbedRuntime.
            ids = np.ascontiguousarray(inputs[index], dtype=np.int64)
            out = np.zeros(24, np.float32)
            for _ in range(50):
                ok = lib.c_embed_runtime_embed(
                    runtime.handle,
                    ids.ctypes.data_as(ctypes.POINTER(ctypes.c_int64)),
                    None,
                    None,
                    out.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
                )
                if not ok or not np.array_equal(out, expected[index]):
                    failures.append(index)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert failures == []
