"""Python binding of ``libc_embed_runtime.so`` through ctypes.

The one Python binding of the project: the demo, the tests and the benchmarks use
it.

* :func:`load` finds the library, declares every exported function
  (:data:`PROTOTYPES`: ``argtypes``/``restype`` as the legacy Python host declared
  them, plus the newer batch, hidden-size and version functions) and checks that
  the library's major.minor version is the package's.
* :class:`EmbedRuntime` owns one handle::

      with EmbedRuntime("/path/to/all-MiniLM-L6-v2/model.onnx", device="CPU") as rt:
          vector = rt.embed("A man is playing a guitar.")      # float32, (384,)
          matrix = rt.embed_batch(["one", "two"])              # float32, (2, 384)

  Text is tokenized by the library (its ``text`` feature) with the
  ``tokenizer.json`` beside the model or the one passed as ``tokenizer=``: no
  Python tokenizer is needed. It keeps its ctypes pointers and numpy buffers for
  the life of the handle: :meth:`EmbedRuntime.embed_ids` copies the caller's
  values into them and creates no Python object that outlives the call beyond
  the returned array.
* :class:`Tokenizer` turns text into the ids, mask and token types the ABI takes
  in Python, as the legacy host did (needs ``tokenizers``: the ``text`` extra);
  for hosts that feed :meth:`EmbedRuntime.embed_ids` themselves.
* ``python -m c_embed_runtime --help``: embeds text from the command line.

Every failure (loading, create, embed) raises :class:`EmbedRuntimeError`; when the
library failed, its message is the library's error string.
"""

from __future__ import annotations

import ctypes
import os
import threading
import warnings
from ctypes import POINTER, c_char_p, c_float, c_int32, c_int64, c_void_p
from pathlib import Path

import numpy as np

from . import _onnxruntime
from ._version import __version__

__all__ = [
    "EmbedRuntime",
    "EmbedRuntimeError",
    "LIBRARY_ENV",
    "LibraryTokenizer",
    "PROTOTYPES",
    "TEXT_FUNCTIONS",
    "Tokenizer",
    "__version__",
    "has_text",
    "library_candidates",
    "library_path",
    "load",
    "version",
]

#: Environment variable naming the library file to load (tried before any default);
#: the drop-in source reads it too (src/env.rs: ``LIBRARY_ENV``).
LIBRARY_ENV = "C_EMBED_RUNTIME_LIBRARY"
#: Its older name, still read when :data:`LIBRARY_ENV` is not set (deprecated).
OLD_LIBRARY_ENV = "C_EMBED_RUNTIME_LIB"
LIBRARY_NAME = "libc_embed_runtime.so"

_PACKAGE_DIR = Path(__file__).resolve().parent
#: Where ``pip install ./python`` puts the library (and the ONNX Runtime it loads).
BUNDLED_LIBRARY = _PACKAGE_DIR / "lib" / LIBRARY_NAME

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
    # Not in the legacy library.
    "c_embed_runtime_embed_batch": (
        c_int32,
        [c_void_p, c_int64, POINTER(c_int64), POINTER(c_int64), POINTER(c_int64), POINTER(c_float)],
    ),
    "c_embed_runtime_hidden_size": (c_int32, [c_void_p]),
    "c_embed_runtime_version": (c_char_p, []),
    "c_embed_runtime_onnxruntime_path": (c_char_p, []),
    "c_embed_runtime_onnxruntime_version": (c_char_p, []),
    "c_embed_runtime_register_host_build": (c_int32, [c_char_p]),
    "c_embed_runtime_register_onnxruntime_dir": (c_int32, [c_char_p]),
    # Text in (the library's `text` feature, on by default).
    "c_embed_runtime_create_with_tokenizer": (
        c_void_p,
        [c_char_p, c_char_p, c_char_p, c_int64, c_int32, c_int32, c_int32],
    ),
    "c_embed_runtime_embed_text": (c_int32, [c_void_p, c_char_p, POINTER(c_float)]),
    "c_embed_runtime_embed_text_batch": (c_int32, [c_void_p, POINTER(c_char_p), c_int64, POINTER(c_float)]),
    "c_embed_runtime_tokenize": (
        c_int64,
        [c_void_p, c_char_p, POINTER(c_int64), POINTER(c_int64), POINTER(c_int64)],
    ),
}

#: The functions of :data:`PROTOTYPES` that an ids-only build of the library
#: (``cargo build --no-default-features``) lacks; see :func:`has_text`.
TEXT_FUNCTIONS = frozenset(
    {
        "c_embed_runtime_create_with_tokenizer",
        "c_embed_runtime_embed_text",
        "c_embed_runtime_embed_text_batch",
        "c_embed_runtime_tokenize",
    }
)

_I64_PTR = POINTER(c_int64)
_F32_PTR = POINTER(c_float)


class EmbedRuntimeError(RuntimeError):
    """A failure of this package: the library could not be loaded or is the wrong
    version, or a create or embed failed (then the message is the library's error
    string, e.g. ``"ort_error:..."`` or ``"std_create_error:..."``)."""


# ---- loading the library ---------------------------------------------------------


def _system_library_name() -> str:
    """The soname ``make install`` installs: ``libc_embed_runtime.so.<major>``."""
    return f"{LIBRARY_NAME}.{__version__.split('.')[0]}"


def _checkout_library() -> Path | None:
    """``target/release/libc_embed_runtime.so`` of the source checkout this package
    was imported from (``python/c_embed_runtime`` of a checkout), else None."""
    root = _PACKAGE_DIR.parent.parent
    if (root / "Cargo.toml").is_file():
        return root / "target" / "release" / LIBRARY_NAME
    return None


def library_candidates() -> list[tuple[str, str]]:
    """Where :func:`load` looks when it is given no library, in order, as
    ``(where, path or name)``: ``$C_EMBED_RUNTIME_LIBRARY`` (if set: nothing else is
    tried; the deprecated ``$C_EMBED_RUNTIME_LIB`` is read when it is not), the
    library bundled in the package, the source checkout's release build (when
    imported from a checkout), then the system's ``libc_embed_runtime.so.0``
    (by the dynamic loader's search, as ``make install`` installs it)."""
    for name in (LIBRARY_ENV, OLD_LIBRARY_ENV):
        override = os.environ.get(name)
        if override:
            if name == OLD_LIBRARY_ENV:
                warnings.warn(f"${OLD_LIBRARY_ENV} is deprecated: set ${LIBRARY_ENV}", DeprecationWarning, stacklevel=3)
            return [(name, override)]
    found = [("bundled", str(BUNDLED_LIBRARY))]
    checkout = _checkout_library()
    if checkout is not None:
        found.append(("source checkout", str(checkout)))
    found.append(("system", _system_library_name()))
    return found


# Loaded libraries by the path they were loaded from, so that loading the same
# file again returns the same CDLL (whose functions are already declared).
_LOADED: dict[str, ctypes.CDLL] = {}
_LOAD_LOCK = threading.Lock()


def load(library: str | os.PathLike | ctypes.CDLL | None = None) -> ctypes.CDLL:
    """Loads the library (``RTLD_GLOBAL``, as legacy hosts do), declares every
    function of :data:`PROTOTYPES` and checks its version.

    ``library``: a path, an already loaded ``CDLL`` (declared and checked here), or
    None for the first of :func:`library_candidates` that loads (the bundled one
    is told of an installed ``onnxruntime`` package of any flavour, whose ONNX
    Runtime it then prefers to its bundled copy; ``$ORT_DYLIB_PATH`` still comes
    first: see ``_onnxruntime``). Raises
    :class:`EmbedRuntimeError` when nothing loads (saying what was tried), when the
    library lacks a function, or when its major.minor version is not the package's.
    """
    if isinstance(library, ctypes.CDLL):
        return _prepare(library, library._name)
    if library is not None:
        return _prepare(_dlopen(os.fspath(library), "library argument"), os.fspath(library))
    candidates = library_candidates()
    tried = []
    for where, path in candidates:
        is_file = os.sep in path
        explicit = where in (LIBRARY_ENV, OLD_LIBRARY_ENV)
        if is_file and not explicit and not os.path.exists(path):
            tried.append(f"{path} ({where}): not found")
            continue
        try:
            lib = _dlopen(path, where)
        except EmbedRuntimeError as failure:
            if explicit:  # an explicit choice: no fallback
                raise
            tried.append(str(failure))
            continue
        lib = _prepare(lib, path)
        if where == "bundled":
            _onnxruntime.register_installed_runtime(lib)
        return lib
    raise EmbedRuntimeError(
        f"could not load {LIBRARY_NAME}; tried " + "; ".join(tried) + f" (set {LIBRARY_ENV} to its path)"
    )


def _dlopen(path: str, where: str) -> ctypes.CDLL:
    key = os.path.realpath(path) if os.sep in path else path
    with _LOAD_LOCK:
        lib = _LOADED.get(key)
        if lib is None:
            try:
                lib = ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
            except OSError as failure:
                raise EmbedRuntimeError(f"{path} ({where}): {failure}") from None
            _LOADED[key] = lib
        return lib


def _prepare(lib: ctypes.CDLL, name: str) -> ctypes.CDLL:
    """Declares every function on ``lib`` and checks its version."""
    for function_name, (restype, argtypes) in PROTOTYPES.items():
        try:
            function = getattr(lib, function_name)
        except AttributeError:
            if function_name in TEXT_FUNCTIONS:  # an ids-only build
                continue
            raise EmbedRuntimeError(
                f"{name} has no {function_name}: not a c_embed_runtime {_major_minor(__version__)} library"
            ) from None
        function.restype = restype
        function.argtypes = argtypes
    found = version(lib)
    if _major_minor(found) != _major_minor(__version__):
        raise EmbedRuntimeError(
            f"{name} is libc_embed_runtime {found}, but the Python package c_embed_runtime {__version__} "
            f"needs {_major_minor(__version__)}.x"
        )
    return lib


def has_text(lib: ctypes.CDLL | None = None) -> bool:
    """Whether ``lib`` (default: :func:`load`'s library) takes text: it was built
    with the ``text`` feature (the default) and exports :data:`TEXT_FUNCTIONS`."""
    lib = lib if lib is not None else load()
    return all(hasattr(lib, name) for name in TEXT_FUNCTIONS)


def _major_minor(text: str) -> str:
    return ".".join(text.split(".")[:2])


def _text(value: bytes | None) -> str:
    return (value or b"").decode("utf-8", "replace")


def version(lib: ctypes.CDLL | None = None) -> str:
    """The library's version, ``"MAJOR.MINOR.PATCH"`` (needs no handle); ``lib``
    defaults to :func:`load`'s."""
    return _text((lib if lib is not None else load()).c_embed_runtime_version())


class _DlInfo(ctypes.Structure):
    _fields_ = [("dli_fname", c_char_p), ("dli_fbase", c_void_p), ("dli_sname", c_char_p), ("dli_saddr", c_void_p)]


def library_path(lib: ctypes.CDLL | None = None) -> Path:
    """The file ``lib`` (default: :func:`load`'s library) was loaded from, as the
    dynamic loader reports it (so also for the system soname)."""
    lib = lib if lib is not None else load()
    try:
        dladdr = ctypes.CDLL(None).dladdr
        dladdr.argtypes = [c_void_p, POINTER(_DlInfo)]
        dladdr.restype = ctypes.c_int
        info = _DlInfo()
        address = ctypes.cast(lib.c_embed_runtime_version, c_void_p).value
        if dladdr(address, ctypes.byref(info)) and info.dli_fname:
            return Path(os.fsdecode(info.dli_fname)).resolve()
    except (AttributeError, OSError):
        pass
    return Path(lib._name).resolve()


# ---- tokenizer ---------------------------------------------------------------------


class Tokenizer:
    """A ``tokenizer.json`` tokenizer that yields what the ABI takes: ids, mask and
    token types truncated to ``seq_len`` and padded with 0, as the legacy host does.
    Needs the ``tokenizers`` package (``pip install c_embed_runtime[text]``)."""

    def __init__(self, tokenizer_json: str | os.PathLike, seq_len: int):
        try:
            from tokenizers import Tokenizer as HfTokenizer
        except ImportError as missing:
            raise EmbedRuntimeError(
                "tokenizing text needs the tokenizers package (pip install 'c_embed_runtime[text]')"
            ) from missing

        self.path = Path(tokenizer_json)
        self.seq_len = seq_len
        try:
            self._tokenizer = HfTokenizer.from_file(str(tokenizer_json))
        except Exception as failure:  # tokenizers raises its own Exception types
            raise EmbedRuntimeError(f"cannot read tokenizer {tokenizer_json}: {failure}") from None
        # The shipped tokenizer.json may pad and truncate to its own length.
        self._tokenizer.enable_truncation(seq_len)
        self._tokenizer.enable_padding(length=seq_len, pad_id=0, pad_type_id=0)

    def encode(self, text: str):
        """The ``tokenizers`` encoding of ``text``: ``.ids``, ``.attention_mask`` and
        ``.type_ids`` hold ``seq_len`` values each."""
        return self._tokenizer.encode(text)

    def __call__(self, text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(ids, mask, types)`` of ``text``: int64 arrays of ``seq_len`` values."""
        encoding = self._tokenizer.encode(text)
        as_array = lambda values: np.asarray(values, dtype=np.int64)  # noqa: E731
        return as_array(encoding.ids), as_array(encoding.attention_mask), as_array(encoding.type_ids)

    def batch(self, texts) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(ids, mask, types)`` of every text: int64 arrays of shape ``(len(texts), seq_len)``."""
        encodings = self._tokenizer.encode_batch(list(texts))
        rows = len(encodings)
        ids, mask, types = (np.empty((rows, self.seq_len), dtype=np.int64) for _ in range(3))
        for row, encoding in enumerate(encodings):
            ids[row] = encoding.ids
            mask[row] = encoding.attention_mask
            types[row] = encoding.type_ids
        return ids, mask, types


class LibraryTokenizer:
    """The tokenizer of an :class:`EmbedRuntime` handle: the ``tokenizer.json`` the
    library loaded, tokenizing in the library (``c_embed_runtime_tokenize``). Same
    calls as :class:`Tokenizer`, without the ``tokenizers`` package; truncation keeps
    the special tokens (as :class:`Tokenizer` does)."""

    def __init__(self, runtime: "EmbedRuntime", path: Path):
        self._runtime = runtime
        self.path = path
        self.seq_len = runtime.seq_len

    def __call__(self, text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(ids, mask, types)`` of ``text``: int64 arrays of ``seq_len`` values,
        the text's tokens then zeros."""
        return self.tokenize(text)[1:]

    def tokenize(self, text: str) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
        """``(count, ids, mask, types)``: the number of tokens after truncation and
        the arrays of :meth:`__call__`."""
        arrays = [np.zeros(self.seq_len, dtype=np.int64) for _ in range(3)]
        count = self._runtime._lib.c_embed_runtime_tokenize(
            self._runtime._open_handle(), _encode_text(text), *(a.ctypes.data_as(_I64_PTR) for a in arrays)
        )
        if count < 0:
            raise EmbedRuntimeError(self._runtime.last_error)
        return (int(count), *arrays)

    def batch(self, texts) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(ids, mask, types)`` of every text: int64 arrays of shape ``(len(texts), seq_len)``."""
        rows = [self(text) for text in texts]
        if not rows:
            return tuple(np.zeros((0, self.seq_len), dtype=np.int64) for _ in range(3))
        return tuple(np.stack(column) for column in zip(*rows))

    def __repr__(self) -> str:
        return f"LibraryTokenizer({str(self.path)!r}, seq_len={self.seq_len})"


def _encode_text(text: str) -> bytes:
    """``text`` as the NUL-terminated UTF-8 the library takes."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, not {type(text).__name__}")
    encoded = text.encode("utf-8")  # a lone surrogate raises UnicodeEncodeError
    if b"\0" in encoded:
        raise ValueError("text contains a NUL character, which C strings cannot hold")
    return encoded


# ---- the runtime -------------------------------------------------------------------


class EmbedRuntime:
    """One embedding handle of the library: a model opened on a device.

    - ``model``: path of an ONNX model.
    - ``device``: ``"AUTO"`` (NPU, CUDA, OpenVINO-GPU, then CPU), ``"NPU"``,
      ``"GPU"``/``"CUDA"``, ``"CPU"``, any case; None or ``""`` mean AUTO.
    - ``seq_len``: tokens per sequence (the library clamps it to at least 8);
      ``out_dim``: length of each vector; ``threads``: ONNX Runtime intra-op threads.
    - ``strict``: embeds fail once a CPU fallback was seen on a non-CPU device.
    - ``tokenizer``: a ``tokenizer.json`` path (or a :class:`Tokenizer`, for its
      path) that the library loads for :meth:`embed` and :meth:`embed_batch`.
      Default: ``tokenizer.json`` beside the model, if there is one. Text is
      truncated to ``seq_len`` tokens with the special tokens kept.
    - ``library``: a library path or loaded ``CDLL``; default as :func:`load`.

    Raises :class:`EmbedRuntimeError` with the library's message when the create
    fails. Use as a context manager, or call :meth:`close`.

    Thread safety: the library lets several threads embed with one handle at once.
    :meth:`embed_ids` and :meth:`embed` share this object's buffers and so take a
    lock; :meth:`embed_batch_ids` and :meth:`embed_batch` do not.
    """

    def __init__(
        self,
        model: str | os.PathLike,
        device: str | None = "AUTO",
        seq_len: int = 128,
        out_dim: int = 384,
        threads: int = 1,
        strict: bool = False,
        tokenizer: str | os.PathLike | Tokenizer | None = None,
        library: str | os.PathLike | ctypes.CDLL | None = None,
    ):
        self._handle = None  # close() and __del__ work whatever fails below
        lib = load(library)
        self._lib = lib
        tokenizer_path, self._no_tokenizer = self._tokenizer_path(lib, model, tokenizer)
        arguments = (None if device is None else device.encode(), seq_len, out_dim, threads, 1 if strict else 0)
        if tokenizer_path is None:
            handle = lib.c_embed_runtime_create(os.fsencode(model), *arguments)
        else:
            handle = lib.c_embed_runtime_create_with_tokenizer(
                os.fsencode(model), os.fsencode(tokenizer_path), *arguments
            )
        if not handle:
            message = _text(lib.c_embed_runtime_last_create_error())
            raise EmbedRuntimeError(message)
        self._handle = handle
        try:
            self._seq_len = int(lib.c_embed_runtime_seq_len(handle))
            self._out_dim = int(lib.c_embed_runtime_output_dim(handle))
            if isinstance(tokenizer, Tokenizer) and tokenizer.seq_len != self._seq_len:
                raise EmbedRuntimeError(
                    f"the tokenizer pads to {tokenizer.seq_len} tokens, the runtime takes {self._seq_len}"
                )
        except BaseException:
            self.close()
            raise
        self._tokenizer = None if tokenizer_path is None else LibraryTokenizer(self, Path(tokenizer_path))
        # The buffers every embed_ids call reuses, and the ctypes pointers to them:
        # made once, so a call converts nothing.
        self._ids = np.zeros(self._seq_len, dtype=np.int64)
        self._mask = np.zeros(self._seq_len, dtype=np.int64)
        self._types = np.zeros(self._seq_len, dtype=np.int64)
        self._out = np.zeros(self._out_dim, dtype=np.float32)
        self._ids_ptr = self._ids.ctypes.data_as(_I64_PTR)
        self._mask_ptr = self._mask.ctypes.data_as(_I64_PTR)
        self._types_ptr = self._types.ctypes.data_as(_I64_PTR)
        self._out_ptr = self._out.ctypes.data_as(_F32_PTR)
        self._embed_fn = lib.c_embed_runtime_embed
        self._embed_text_fn = getattr(lib, "c_embed_runtime_embed_text", None)
        self._lock = threading.Lock()

    @staticmethod
    def _tokenizer_path(lib, model, tokenizer) -> tuple[str | os.PathLike | None, str]:
        """The tokenizer.json for the library to load, or None and why there is none
        (the library reports an unreadable or invalid file at create)."""
        if isinstance(tokenizer, Tokenizer):
            tokenizer = tokenizer.path
        default = tokenizer is None
        if default:
            beside = Path(os.fsdecode(model)).parent / "tokenizer.json"
            if not beside.is_file():
                return None, f"no tokenizer: pass tokenizer= (there is no {beside})"
            tokenizer = beside
        if not has_text(lib):
            why = f"no tokenizer: {library_path(lib)} was built without the text feature"
            if default:  # embed_ids still works
                return None, why
            raise EmbedRuntimeError(why)
        return tokenizer, ""

    # ---- properties

    @property
    def handle(self) -> int | None:
        """The library handle (None once closed)."""
        return self._handle

    @property
    def library(self) -> ctypes.CDLL:
        """The loaded library."""
        return self._lib

    @property
    def library_path(self) -> Path:
        """The file the library was loaded from."""
        return library_path(self._lib)

    @property
    def tokenizer(self) -> LibraryTokenizer | None:
        """The library's tokenizer of this handle (``.path``: its tokenizer.json), or None."""
        return self._tokenizer

    @property
    def seq_len(self) -> int:
        """The effective (clamped) tokens per sequence."""
        return self._seq_len

    @property
    def out_dim(self) -> int:
        """The effective (clamped) length of each vector."""
        return self._out_dim

    @property
    def selected_device(self) -> str:
        """``"NPU"``, ``"CUDA"``, ``"GPU"`` (OpenVINO GPU) or ``"CPU"``; ``"invalid"`` once closed."""
        return _text(self._lib.c_embed_runtime_selected_device(self._handle))

    @property
    def cpu_fallback_detected(self) -> bool:
        return bool(self._lib.c_embed_runtime_cpu_fallback_detected(self._handle))

    @property
    def cpu_fallback_detail(self) -> str:
        return _text(self._lib.c_embed_runtime_cpu_fallback_detail(self._handle))

    @property
    def last_error(self) -> str:
        """This thread's last embed error on the handle, ``""`` after a success."""
        return _text(self._lib.c_embed_runtime_last_error(self._handle))

    @property
    def hidden_size(self) -> int:
        """The model's hidden size (0 if its output cannot be pooled)."""
        return self._lib.c_embed_runtime_hidden_size(self._handle)

    # ---- embedding

    def embed(self, text: str) -> np.ndarray:
        """The vector of ``text``: float32, ``(out_dim,)``, tokenized by the library
        (``c_embed_runtime_embed_text``: truncated to ``seq_len`` tokens, special
        tokens kept). Raises ``ValueError`` for a text with a NUL character."""
        encoded = _encode_text(text)
        handle = self._open_handle()
        self._require_tokenizer()
        with self._lock:
            if not self._embed_text_fn(handle, encoded, self._out_ptr):
                raise EmbedRuntimeError(self.last_error)
            return self._out.copy()

    def embed_batch(self, texts) -> np.ndarray:
        """The vectors of ``texts`` (an iterable of strings) in one library call
        (``c_embed_runtime_embed_text_batch``): float32, ``(len(texts), out_dim)``;
        row ``i`` is :meth:`embed` of ``texts[i]`` (within 1e-6)."""
        if isinstance(texts, (str, bytes)):
            raise TypeError("embed_batch takes a sequence of strings; use embed for one")
        encoded = [_encode_text(text) for text in texts]
        handle = self._open_handle()
        self._require_tokenizer()
        out = np.empty((len(encoded), self._out_dim), dtype=np.float32)
        if not encoded:
            return out
        pointers = (c_char_p * len(encoded))(*encoded)
        if not self._lib.c_embed_runtime_embed_text_batch(handle, pointers, len(encoded), out.ctypes.data_as(_F32_PTR)):
            raise EmbedRuntimeError(self.last_error)
        return out

    def embed_ids(self, ids, mask=None, token_types=None) -> np.ndarray:
        """The vector of ``seq_len`` token ids (``mask``/``token_types``: ``seq_len``
        values, or None for all ones/all zeros): float32, ``(out_dim,)``.

        Any integer sequence works; int64 numpy arrays are copied without conversion.
        The values go into buffers made at create and the library gets pointers made
        at create, so the call creates no Python object that outlives it but the
        returned array (python/tests/test_no_churn.py)."""
        handle = self._handle
        if not handle:
            raise EmbedRuntimeError("EmbedRuntime is closed")
        n = self._seq_len
        if len(ids) != n:
            raise ValueError(f"ids has {len(ids)} values, expected seq_len = {n}")
        mask_ptr = types_ptr = None
        lock = self._lock
        lock.acquire()
        try:
            np.copyto(self._ids, ids, casting="unsafe")
            if mask is not None:
                if len(mask) != n:
                    raise ValueError(f"mask has {len(mask)} values, expected seq_len = {n}")
                np.copyto(self._mask, mask, casting="unsafe")
                mask_ptr = self._mask_ptr
            if token_types is not None:
                if len(token_types) != n:
                    raise ValueError(f"token_types has {len(token_types)} values, expected seq_len = {n}")
                np.copyto(self._types, token_types, casting="unsafe")
                types_ptr = self._types_ptr
            if not self._embed_fn(handle, self._ids_ptr, mask_ptr, types_ptr, self._out_ptr):
                raise EmbedRuntimeError(self.last_error)
            return self._out.copy()
        finally:
            lock.release()

    def embed_batch_ids(self, ids, mask=None, token_types=None) -> np.ndarray:
        """Embeds a batch in one call: ``ids`` (and mask/types, if given) are 2-D,
        ``(rows, seq_len)``; returns a new ``(rows, out_dim)`` float32 array whose
        row ``i`` is what :meth:`embed_ids` gives for row ``i`` (within 1e-6).
        Zero rows give an empty result without calling the library. Inputs that are
        C-contiguous int64 arrays are passed as they are, others are copied."""
        if not self._handle:
            raise EmbedRuntimeError("EmbedRuntime is closed")
        ids = self._batch_array(ids, "ids")
        rows = ids.shape[0]
        mask_ptr = types_ptr = None
        if mask is not None:
            mask = self._batch_array(mask, "mask", rows)
            mask_ptr = mask.ctypes.data_as(_I64_PTR)
        if token_types is not None:
            token_types = self._batch_array(token_types, "token_types", rows)
            types_ptr = token_types.ctypes.data_as(_I64_PTR)
        out = np.empty((rows, self._out_dim), dtype=np.float32)
        if rows == 0:
            return out
        ok = self._lib.c_embed_runtime_embed_batch(
            self._handle, rows, ids.ctypes.data_as(_I64_PTR), mask_ptr, types_ptr, out.ctypes.data_as(_F32_PTR)
        )
        if not ok:
            raise EmbedRuntimeError(self.last_error)
        return out

    def _batch_array(self, values, name: str, rows: int | None = None) -> np.ndarray:
        """``values`` as a C-contiguous int64 ``(rows, seq_len)`` array (no copy if it
        already is one): the library reads exactly ``rows * seq_len`` values."""
        array = np.ascontiguousarray(values, dtype=np.int64)
        if array.ndim != 2 or array.shape[1] != self._seq_len or (rows is not None and array.shape[0] != rows):
            want = f"({'rows' if rows is None else rows}, {self._seq_len})"
            raise ValueError(f"{name} has shape {array.shape}, expected {want}")
        return array

    def _require_tokenizer(self) -> LibraryTokenizer:
        if self._tokenizer is None:
            raise EmbedRuntimeError(f"{self._no_tokenizer}; embed_ids takes token ids without one")
        return self._tokenizer

    def _open_handle(self) -> int:
        if not self._handle:
            raise EmbedRuntimeError("EmbedRuntime is closed")
        return self._handle

    # ---- life cycle

    def close(self) -> None:
        """Destroys the handle (idempotent). Later embeds raise EmbedRuntimeError."""
        handle, self._handle = self._handle, None
        if handle:
            self._lib.c_embed_runtime_destroy(handle)

    def __enter__(self) -> "EmbedRuntime":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_handle", None):
            self.close()

    def __repr__(self) -> str:
        if not getattr(self, "_handle", None):
            return "EmbedRuntime(closed)"
        return f"EmbedRuntime(device={self.selected_device!r}, seq_len={self._seq_len}, out_dim={self._out_dim})"
