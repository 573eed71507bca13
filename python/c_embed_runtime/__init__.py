"""Python binding of ``libc_embed_runtime.so`` through ctypes.

The one Python binding of the project: the demo, the tests and the benchmarks use
it. :func:`load` declares every function exactly as the legacy Python host does
(``argtypes``/``restype`` as in the ABI spec), and :class:`Embedder` keeps its
ctypes/numpy buffers for the life of the handle, so an embed call builds no
arrays of its own.
"""

from __future__ import annotations

import ctypes
import os
from ctypes import POINTER, c_char_p, c_float, c_int32, c_int64, c_void_p
from pathlib import Path

import numpy as np

#: Environment variable naming the library to load (overrides the default path).
LIBRARY_ENV = "C_EMBED_RUNTIME_LIB"
_REPO_ROOT = Path(__file__).resolve().parents[2]

# name: (restype, argtypes), as the legacy host declared them.
PROTOTYPES = {
    "c_embed_runtime_create": (c_void_p, [c_char_p, c_char_p, c_int64, c_int32, c_int32, c_int32]),
    "c_embed_runtime_last_create_error": (c_char_p, []),
    "c_embed_runtime_embed": (
        c_int32,
        [c_void_p, POINTER(c_int64), POINTER(c_int64), POINTER(c_int64), POINTER(c_float)],
    ),
    "c_embed_runtime_last_error": (c_char_p, [c_void_p]),
    "c_embed_runtime_selected_device": (c_char_p, [c_void_p]),
    "c_embed_runtime_cpu_fallback_detected": (c_int32, [c_void_p]),
    "c_embed_runtime_cpu_fallback_detail": (c_char_p, [c_void_p]),
    "c_embed_runtime_output_dim": (c_int32, [c_void_p]),
    "c_embed_runtime_seq_len": (c_int64, [c_void_p]),
    "c_embed_runtime_destroy": (None, [c_void_p]),
}


class EmbedRuntimeError(RuntimeError):
    """A failed create or embed; the message is the library's error string."""


def default_library_path() -> Path:
    """``$C_EMBED_RUNTIME_LIB``, else the release build of this checkout."""
    override = os.environ.get(LIBRARY_ENV)
    if override:
        return Path(override)
    return _REPO_ROOT / "target" / "release" / "libc_embed_runtime.so"


def load(path: str | os.PathLike | None = None) -> ctypes.CDLL:
    """Loads the library (``RTLD_GLOBAL``, as legacy hosts do) and declares every function."""
    lib = ctypes.CDLL(str(path or default_library_path()), mode=ctypes.RTLD_GLOBAL)
    for name, (restype, argtypes) in PROTOTYPES.items():
        function = getattr(lib, name)
        function.restype = restype
        function.argtypes = argtypes
    return lib


def _text(value: bytes | None) -> str:
    return (value or b"").decode("utf-8", "replace")


class Embedder:
    """One handle. Use as a context manager, or call :meth:`close`."""

    def __init__(
        self,
        lib: ctypes.CDLL,
        model_path: str | os.PathLike,
        device: str | None = "CPU",
        seq_len: int = 128,
        out_dim: int = 24,
        threads: int = 1,
        strict: int = 1,
    ):
        self._lib = lib
        encoded_device = None if device is None else device.encode()
        self._handle = lib.c_embed_runtime_create(
            os.fsencode(model_path), encoded_device, seq_len, out_dim, threads, strict
        )
        if not self._handle:
            raise EmbedRuntimeError(_text(lib.c_embed_runtime_last_create_error()))
        self.seq_len = lib.c_embed_runtime_seq_len(self._handle)
        self.out_dim = lib.c_embed_runtime_output_dim(self._handle)
        # The buffers every call reuses, and their pointers, made once.
        self._ids = np.zeros(self.seq_len, dtype=np.int64)
        self._mask = np.zeros(self.seq_len, dtype=np.int64)
        self._types = np.zeros(self.seq_len, dtype=np.int64)
        self._out = np.zeros(self.out_dim, dtype=np.float32)
        as_i64 = POINTER(c_int64)
        self._ids_ptr = self._ids.ctypes.data_as(as_i64)
        self._mask_ptr = self._mask.ctypes.data_as(as_i64)
        self._types_ptr = self._types.ctypes.data_as(as_i64)
        self._out_ptr = self._out.ctypes.data_as(POINTER(c_float))

    @property
    def handle(self) -> int:
        return self._handle

    @property
    def selected_device(self) -> str:
        return _text(self._lib.c_embed_runtime_selected_device(self._handle))

    @property
    def cpu_fallback_detected(self) -> bool:
        return bool(self._lib.c_embed_runtime_cpu_fallback_detected(self._handle))

    @property
    def cpu_fallback_detail(self) -> str:
        return _text(self._lib.c_embed_runtime_cpu_fallback_detail(self._handle))

    @property
    def last_error(self) -> str:
        return _text(self._lib.c_embed_runtime_last_error(self._handle))

    def embed_ids(self, ids, mask=None, token_types=None) -> np.ndarray:
        """Embeds ``seq_len`` token ids (mask/types: ``seq_len`` values or None)."""
        self._ids[:] = ids
        mask_ptr = types_ptr = None
        if mask is not None:
            self._mask[:] = mask
            mask_ptr = self._mask_ptr
        if token_types is not None:
            self._types[:] = token_types
            types_ptr = self._types_ptr
        if not self._lib.c_embed_runtime_embed(self._handle, self._ids_ptr, mask_ptr, types_ptr, self._out_ptr):
            raise EmbedRuntimeError(self.last_error)
        return self._out.copy()

    def close(self) -> None:
        if self._handle:
            self._lib.c_embed_runtime_destroy(self._handle)
            self._handle = None

    def __enter__(self) -> "Embedder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()


class Tokenizer:
    """A ``tokenizer.json`` tokenizer that yields what the ABI takes: ids, mask and
    token types truncated to ``seq_len`` and padded with 0, as the legacy host does."""

    def __init__(self, tokenizer_json: str | os.PathLike, seq_len: int):
        from tokenizers import Tokenizer as HfTokenizer

        self.seq_len = seq_len
        self._tokenizer = HfTokenizer.from_file(str(tokenizer_json))
        self._tokenizer.enable_truncation(seq_len)
        self._tokenizer.enable_padding(length=seq_len, pad_id=0, pad_type_id=0)

    def __call__(self, text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        encoding = self._tokenizer.encode(text)
        as_array = lambda values: np.asarray(values, dtype=np.int64)  # noqa: E731
        return as_array(encoding.ids), as_array(encoding.attention_mask), as_array(encoding.type_ids)
