//! The C ABI: the exported functions of `abi.md`, exactly as the legacy library
//! declared them. This layer only converts pointers, catches panics and turns
//! results into the ABI's return values and error strings; the work is done in
//! [`crate::run`].
//!
//! **Handles** are tokens of a registry, not addresses: every function checks
//! the value it is given, so NULL, a destroyed handle, a handle destroyed twice,
//! or any other pointer or number is an *invalid handle*: embed returns 0 and
//! the getters return their invalid-handle values, with nothing read from the
//! memory the value might point to.
//!
//! **Threads, fork.** Thread cancellation is disabled during every call: a
//! `pthread_cancel` takes effect at the thread's first cancellation point after
//! the call returns. In the child of a `fork()`, handles made before the fork
//! fail every embed with "handle was created before fork(); create a new
//! handle in the child" (the getters still answer); handles made in the child
//! work. A handle value is valid only in the copy of the library that made it,
//! and never again after its destroy, even after a `dlclose` and a new `dlopen`.
//!
//! **Strings** returned by the library are never NULL. Static ones (device
//! names, the version, the invalid-handle strings) live for the whole process.
//! `last_error` belongs to the calling thread and the handle: it stays valid
//! until that thread's next call on that handle or the handle's destroy, however
//! other threads use the handle meanwhile. `last_create_error` belongs to the
//! calling thread until its next call of that function. `cpu_fallback_detail`
//! never changes once set and lives until destroy.

mod boundary;
mod fork;
mod messages;
mod onnxruntime_dir;
mod registry;
#[cfg(feature = "text")]
mod text;

use std::ffi::{c_char, c_void, CStr, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr;
use std::sync::Arc;

use self::boundary::{catch_panic, optional_c_str, optional_slice, optional_slice_mut};
use self::messages::ThreadMessages;
pub use self::onnxruntime_dir::c_embed_runtime_register_onnxruntime_dir;
use self::registry::Registry;
use crate::error::{CreateError, EmbedError, UNKNOWN_CREATE_ERROR, UNKNOWN_EMBED_ERROR};
use crate::error_strings;
use crate::ort::device;
use crate::run::runtime::{CreateOptions, EmbedRuntime, FallbackSignals, TokenRows};

/// What a handle points to.
struct Handle {
    runtime: EmbedRuntime,
    errors: ThreadMessages,
    /// The process generation it was made in (see [`fork`]).
    generation: u64,
    /// Set by `c_embed_runtime_create_with_tokenizer` (text in).
    #[cfg(feature = "text")]
    tokenizer: Option<crate::text::TextTokenizer>,
}

/// Every live handle; callers hold tokens of this registry.
static HANDLES: Registry<Handle> = Registry::new();

/// The live handle behind a caller's value; `None` for NULL, destroyed or
/// foreign values (nothing the caller passed is dereferenced), and for a
/// handle made before a `fork()` (after recording
/// [`error_strings::CREATED_BEFORE_FORK`] as this thread's error on it).
fn handle_ref(handle: *mut c_void) -> Option<Arc<Handle>> {
    let handle = HANDLES.get(handle)?;
    if handle.generation != fork::generation() {
        handle.errors.set(error_strings::whole::CREATED_BEFORE_FORK);
        return None;
    }
    Some(handle)
}

/// The handle behind a caller's value, made before a `fork()` or not: for the
/// getters, which only read what never changes (or this thread's own error).
fn any_handle_ref(handle: *mut c_void) -> Option<Arc<Handle>> {
    HANDLES.get(handle)
}

fn create_handle(
    model_path: Option<&CStr>,
    requested_device: Option<&CStr>,
    seq_len: i64,
    out_dim: i32,
    threads: i32,
    strict: i32,
) -> Result<Handle, CreateError> {
    let model_path = model_path
        .map(|p| Path::new(OsStr::from_bytes(p.to_bytes())))
        .filter(|p| !p.as_os_str().is_empty())
        .ok_or_else(|| CreateError::library(error_strings::MODEL_PATH_EMPTY))?;
    let devices = device::plan(requested_device.map(CStr::to_bytes))?;
    fork::install_handlers();
    let generation = fork::generation();
    let runtime = EmbedRuntime::create(&CreateOptions {
        model_path,
        devices,
        seq_len,
        out_dim,
        threads,
        strict: strict != 0,
        fallback_signals: FallbackSignals::ByDevice,
    })?;
    Ok(Handle {
        runtime,
        errors: ThreadMessages::default(),
        generation,
        #[cfg(feature = "text")]
        tokenizer: None,
    })
}

/// A created handle for the caller, or NULL after recording why the create failed
/// (`None`: a caught panic).
fn finish_create(created: Result<Handle, Option<CreateError>>) -> *mut c_void {
    // In the panic boundary too: registering may make a system call that is a
    // cancellation point.
    catch_panic(ptr::null_mut(), || match created {
        Ok(handle) => {
            messages::set_create_error("");
            HANDLES.insert(handle)
        }
        Err(error) => {
            let message = error.map_or_else(|| UNKNOWN_CREATE_ERROR.to_owned(), |e| e.to_string());
            messages::set_create_error(&message);
            ptr::null_mut()
        }
    })
}

/// Creates an embedding handle: loads ONNX Runtime (first call only), opens the
/// model on the first device that works, and allocates the handle's pooled buffers.
///
/// - `model_path`: path of an ONNX model (NUL-terminated, any bytes but NUL).
///   NULL or "" fails with "model path is empty".
/// - `requested_device`: AUTO (NPU, then CUDA, then OpenVINO-GPU, then CPU),
///   NPU | INTEL_NPU, GPU | CUDA | NVIDIA | NVIDIA_GPU (CUDA, then OpenVINO-GPU),
///   CPU | HOST, OPENVINO_CPU (the OpenVINO provider on its CPU device);
///   case-insensitive; NULL or "" means AUTO.
/// - `seq_len`: tokens per call, clamped to at least 8. `embed` reads exactly
///   this many values from each array, even if the caller asked for fewer than 8.
///   Above 1,048,576 the create fails.
/// - `out_dim`: length of the output vector, clamped to at least 1.
/// - `threads`: ONNX Runtime intra-op threads per session, clamped to 1..=64.
///   The handle has one session; threads that embed on it at once share it,
///   each in its own pooled buffers.
/// - `strict`: non-zero makes `embed` fail once a CPU-fallback signal was seen on
///   a non-CPU device.
///
/// Create runs a short self-check of the model (a few runs of a probe row) that
/// decides how rows run, so that a row's vector depends only on its own tokens:
/// trimmed and batched freely, batched only with rows of the same length, or
/// one row at a time at its own length (see the README). With the environment
/// variable `C_EMBED_RUNTIME_PADDED` set to 1/true/yes/on at create, every call
/// of the handle runs as the legacy library did: one row at a time, all
/// `seq_len` positions, the mask as given (to reproduce stored vectors).
/// Models whose inputs the contract can never fill fail here
/// (`std_create_error:unsupported_input_type: input '<name>' is <type> [<shape>], ...`,
/// `input_length_mismatch`, `input_too_large`).
///
/// The model file is read once, here: the handle keeps this model whatever
/// happens to the file later (external data is read from the model file's
/// directory, at create too). A path that is not a regular file (a FIFO, a
/// directory, a device) fails at once. Every run of the model, here and in
/// each embed, is stopped after the limit set by the environment variable
/// `C_EMBED_RUNTIME_RUN_TIMEOUT_MS` (milliseconds, read at create; default
/// 60000; 0: no limit): a create whose self-check is stopped fails with
/// `std_create_error:run_time_limit: ...`.
///
/// Returns a handle owned by the caller (free it with `c_embed_runtime_destroy`),
/// or NULL on failure; then `c_embed_runtime_last_create_error` says why.
/// The strings are only read during the call.
///
/// # Safety
/// `model_path` and `requested_device` are NULL or NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn c_embed_runtime_create(
    model_path: *const c_char,
    requested_device: *const c_char,
    seq_len: i64,
    out_dim: i32,
    threads: i32,
    strict: i32,
) -> *mut c_void {
    // SAFETY: both are NULL or NUL-terminated strings (this function's contract).
    let (model_path, requested_device) =
        unsafe { (optional_c_str(model_path), optional_c_str(requested_device)) };
    let created = catch_panic(Err(None), || {
        create_handle(
            model_path,
            requested_device,
            seq_len,
            out_dim,
            threads,
            strict,
        )
        .map_err(Some)
    });
    finish_create(created)
}

/// Why the last `c_embed_runtime_create` in this process failed ("" after a
/// success), prefixed `ort_create_error:` (ONNX Runtime), `std_create_error:`
/// (this library's checks) or `unknown_create_error`.
///
/// The string is owned by the library and stays valid until this thread's next
/// call of this function. Never NULL.
#[no_mangle]
pub extern "C" fn c_embed_runtime_last_create_error() -> *const c_char {
    catch_panic(
        error_strings::c_whole::UNKNOWN_CREATE_ERROR.as_ptr(),
        messages::create_error,
    )
}

/// Embeds one sequence of `seq_len` tokens into `out_vec` (`out_dim` floats):
/// mean-pools the model's output over the tokens whose mask is > 0, keeps the
/// first `out_dim` values (zero-padded) and L2-normalises them.
///
/// The model runs only up to the last position whose mask is not 0 (all
/// `seq_len` positions for a NULL or all-zero mask, for static-shape models, and
/// in padded mode): the vector is that of the row alone at its own length, so
/// trailing padding costs nothing and `seq_len` does not change the vector
/// (for models that respect the mask, it is also the full-length run's vector
/// within float rounding); ids past the last non-zero mask value are not
/// checked. The model's output may be float, float16 or bfloat16 (pooled in
/// f32); a vector that would hold NaN or infinity fails with
/// `std_error:non_finite_output`.
///
/// - `input_ids`: `seq_len` token ids; must not be NULL.
/// - `attention_mask`: `seq_len` values, or NULL for all ones.
/// - `token_type_ids`: `seq_len` values, or NULL for all zeros.
/// - `out_vec`: room for `out_dim` floats; must not be NULL. Written only on success.
///
/// Returns 1 on success (then `c_embed_runtime_last_error` is ""), 0 on failure
/// (`handle`, `input_ids` or `out_vec` NULL, or an error `c_embed_runtime_last_error`
/// describes). Several threads may call this on one handle at once; each gets the
/// result it would get alone. The arrays are only used during the call.
///
/// A run that takes longer than the handle's limit (`C_EMBED_RUNTIME_RUN_TIMEOUT_MS`
/// at create) is stopped: `std_error:run_time_limit: ...`; a run stopped by a
/// destroy of the handle: `std_error:handle_destroyed: ...`.
///
/// # Safety
/// `handle` may be any value (see the module docs); each non-NULL array holds at least
/// `seq_len` (`out_vec`: `out_dim`) elements.
#[no_mangle]
pub unsafe extern "C" fn c_embed_runtime_embed(
    handle: *mut c_void,
    input_ids: *const i64,
    attention_mask: *const i64,
    token_type_ids: *const i64,
    out_vec: *mut f32,
) -> i32 {
    // SAFETY: forwarded under this function's contract (one row).
    unsafe {
        embed_rows(
            handle,
            1,
            input_ids,
            attention_mask,
            token_type_ids,
            out_vec,
        )
    }
}

/// Embeds `rows` sequences of `seq_len` tokens, writing `rows * out_dim` floats
/// to `out_vecs`, row after row. Rows share runs (padded to the longest row) as
/// far as the model allows without changing their vectors (create's self-check):
/// each row's vector is the one `c_embed_runtime_embed` gives for that row (within
/// 1e-6: a shared run differs only in float rounding).
///
/// - `rows`: number of sequences, at least 1. Batches larger than 32 rows are
///   split into runs of 32.
/// - `input_ids`: `rows * seq_len` token ids, row after row; must not be NULL.
/// - `attention_mask`: `rows * seq_len` values, or NULL for all ones.
/// - `token_type_ids`: `rows * seq_len` values, or NULL for all zeros.
/// - `out_vecs`: room for `rows * out_dim` floats; must not be NULL.
///
/// Returns 1 when every row succeeded (then `c_embed_runtime_last_error` is ""),
/// else 0 and `c_embed_runtime_last_error` says why; after a failure `out_vecs`
/// may be partly written and no row's value is meaningful. Thread rules and
/// array lifetime as for `c_embed_runtime_embed`.
///
/// # Safety
/// `handle` may be any value (see the module docs); each non-NULL array holds at least
/// `rows * seq_len` (`out_vecs`: `rows * out_dim`) elements.
#[no_mangle]
pub unsafe extern "C" fn c_embed_runtime_embed_batch(
    handle: *mut c_void,
    rows: i64,
    input_ids: *const i64,
    attention_mask: *const i64,
    token_type_ids: *const i64,
    out_vecs: *mut f32,
) -> i32 {
    // SAFETY: forwarded under this function's contract.
    unsafe {
        embed_rows(
            handle,
            rows,
            input_ids,
            attention_mask,
            token_type_ids,
            out_vecs,
        )
    }
}

/// `c_embed_runtime_embed` for `rows` rows: checks the arguments, runs, and
/// records the result in the handle's error string.
///
/// # Safety
/// As `c_embed_runtime_embed_batch`.
unsafe fn embed_rows(
    handle: *mut c_void,
    rows: i64,
    input_ids: *const i64,
    attention_mask: *const i64,
    token_type_ids: *const i64,
    out_vecs: *mut f32,
) -> i32 {
    catch_panic(0, || {
        let Some(handle) = handle_ref(handle) else {
            return 0;
        };
        let runtime = &handle.runtime;
        let Some((rows, token_count, out_count)) = batch_sizes(&handle, rows) else {
            return 0;
        };
        // SAFETY: each non-NULL array holds rows * seq_len (out: rows * out_dim)
        // elements that the caller does not touch during the call (the caller's contract).
        let (ids, mask, token_types, out) = unsafe {
            (
                optional_slice(input_ids, token_count),
                optional_slice(attention_mask, token_count),
                optional_slice(token_type_ids, token_count),
                optional_slice_mut(out_vecs, out_count),
            )
        };
        let Some((ids, out)) = required(&handle, (ids, out), error_strings::whole::NULL_ARRAYS)
        else {
            return 0;
        };
        // NULL means "default"; a misaligned optional array is a caller's bug.
        if (mask.is_none() && !attention_mask.is_null())
            || (token_types.is_none() && !token_type_ids.is_null())
        {
            handle
                .errors
                .set(error_strings::whole::MISALIGNED_OPTIONAL_ARRAYS);
            return 0;
        }
        let tokens = TokenRows {
            seq_len: runtime.seq_len(),
            ids,
            mask,
            token_types,
        };
        debug_assert_eq!(tokens.count(), rows);
        finish_embed(&handle, || runtime.embed_rows(&tokens, out))
    })
}

/// `(rows, rows * seq_len, rows * out_dim)` for a caller's row count on `handle`,
/// or `None` after recording `std_error:invalid_rows` when it is below 1 or its
/// arrays could not exist (over `isize::MAX` bytes).
fn batch_sizes(handle: &Handle, rows: i64) -> Option<(usize, usize, usize)> {
    let (seq_len, out_dim) = (handle.runtime.seq_len(), handle.runtime.out_dim());
    let fits = |count: usize, size: usize| {
        count
            .checked_mul(size)
            .filter(|&bytes| bytes <= isize::MAX as usize)
            .map(|_| count)
    };
    let sizes = usize::try_from(rows).ok().filter(|&n| n > 0).and_then(|n| {
        let tokens = fits(n.checked_mul(seq_len)?, size_of::<i64>())?;
        let outs = fits(n.checked_mul(out_dim)?, size_of::<f32>())?;
        Some((n, tokens, outs))
    });
    if sizes.is_none() {
        handle.errors.set(error_strings::whole::INVALID_ROWS);
    }
    sizes
}

/// Both of a call's required arrays, or `None` after recording `message`.
fn required<A, B>(
    handle: &Handle,
    arrays: (Option<A>, Option<B>),
    message: &str,
) -> Option<(A, B)> {
    match arrays {
        (Some(a), Some(b)) => Some((a, b)),
        _ => {
            handle.errors.set(message);
            None
        }
    }
}

/// Runs an embed and records its result in the handle's error string ("" after a
/// success, `unknown_error` for a panic); returns the ABI's 1 or 0.
fn finish_embed(handle: &Handle, embed: impl FnOnce() -> Result<(), EmbedError>) -> i32 {
    match catch_panic(None, || Some(embed())) {
        Some(Ok(())) => {
            handle.errors.set("");
            1
        }
        Some(Err(error)) => {
            handle.errors.set(&error.to_string());
            0
        }
        None => {
            handle.errors.set(UNKNOWN_EMBED_ERROR);
            0
        }
    }
}

/// The last embed error of this handle on the calling thread: "" after a success,
/// else prefixed `ort_error:` (ONNX Runtime), `std_error:` (this library) or
/// `unknown_error`. Invalid handle: "invalid_handle".
///
/// The string is owned by the calling thread and stays valid until this
/// thread's next call on the same handle (other threads' calls do not affect
/// it), and never past `c_embed_runtime_destroy`; it is freed when the thread
/// exits. Never NULL. In the child of a `fork()`, embed on a handle made
/// before the fork fails and this says to create a new handle.
///
#[no_mangle]
pub extern "C" fn c_embed_runtime_last_error(handle: *mut c_void) -> *const c_char {
    catch_panic(
        error_strings::c_whole::UNKNOWN_EMBED_ERROR.as_ptr(),
        || match any_handle_ref(handle) {
            Some(handle) => handle.errors.get(),
            None => error_strings::c_whole::INVALID_HANDLE.as_ptr(),
        },
    )
}

/// The device the handle runs on: "NPU", "CUDA", "GPU" (OpenVINO GPU),
/// "OPENVINO_CPU" or "CPU";
/// "invalid" for an invalid handle. A static string: valid for the life of the process.
///
#[no_mangle]
pub extern "C" fn c_embed_runtime_selected_device(handle: *mut c_void) -> *const c_char {
    catch_panic(
        error_strings::c_whole::INVALID_DEVICE.as_ptr(),
        || match any_handle_ref(handle) {
            Some(handle) => handle.runtime.device().name().as_ptr(),
            None => error_strings::c_whole::INVALID_DEVICE.as_ptr(),
        },
    )
}

/// 1 if this handle's session logged a CPU-fallback signal (never on the CPU
/// device), else 0; 0 for an invalid handle. Once set, it stays set.
///
#[no_mangle]
pub extern "C" fn c_embed_runtime_cpu_fallback_detected(handle: *mut c_void) -> i32 {
    catch_panic(0, || {
        any_handle_ref(handle).map_or(0, |h| i32::from(h.runtime.fallback().detected()))
    })
}

/// The first CPU-fallback message of this handle (at most 640 bytes), "" if none;
/// "invalid_handle" for an invalid handle.
///
/// The string is owned by the handle and, once set, never changes: it stays valid
/// until `c_embed_runtime_destroy`. Never NULL.
///
#[no_mangle]
pub extern "C" fn c_embed_runtime_cpu_fallback_detail(handle: *mut c_void) -> *const c_char {
    catch_panic(
        error_strings::c_whole::INVALID_HANDLE.as_ptr(),
        || match any_handle_ref(handle) {
            Some(handle) => handle.runtime.fallback().detail().as_ptr(),
            None => error_strings::c_whole::INVALID_HANDLE.as_ptr(),
        },
    )
}

/// The effective (clamped) `out_dim`; 0 for an invalid handle.
///
#[no_mangle]
pub extern "C" fn c_embed_runtime_output_dim(handle: *mut c_void) -> i32 {
    catch_panic(0, || {
        any_handle_ref(handle).map_or(0, |h| h.runtime.out_dim() as i32)
    })
}

/// The effective (clamped) `seq_len`; 0 for an invalid handle.
///
#[no_mangle]
pub extern "C" fn c_embed_runtime_seq_len(handle: *mut c_void) -> i64 {
    catch_panic(0, || {
        any_handle_ref(handle).map_or(0, |h| h.runtime.seq_len() as i64)
    })
}

/// The model's hidden size: the last dimension of the output that is pooled
/// (384 for all-MiniLM-L6-v2). 0 for an invalid handle, and for a model that
/// cannot be run as the contract says (its inputs cannot be fed or its output
/// cannot be pooled: then every embed says why).
///
#[no_mangle]
pub extern "C" fn c_embed_runtime_hidden_size(handle: *mut c_void) -> i32 {
    catch_panic(0, || {
        any_handle_ref(handle).map_or(0, |h| h.runtime.hidden() as i32)
    })
}

/// This library's version, "MAJOR.MINOR.PATCH". A static string: valid for the
/// life of the process. Needs no handle and no ONNX Runtime.
#[no_mangle]
pub extern "C" fn c_embed_runtime_version() -> *const c_char {
    VERSION.as_ptr()
}

/// The file of the ONNX Runtime this process's handles run on, as the dynamic
/// loader mapped it (e.g. `/host/site-packages/onnxruntime/capi/libonnxruntime.so.1.22.0`);
/// "" before the first successful create (ONNX Runtime is loaded then, once per
/// process). A string valid for the life of the process, for a host to log.
/// The order in which it was looked for is in the README ("Which ONNX Runtime").
#[no_mangle]
pub extern "C" fn c_embed_runtime_onnxruntime_path() -> *const c_char {
    catch_panic(c"".as_ptr(), || {
        crate::ort::loader::in_use().map_or(c"".as_ptr(), |(path, _)| path.as_ptr())
    })
}

/// The version of the ONNX Runtime in use (e.g. "1.22.0"); "" before the first
/// successful create. A string valid for the life of the process.
#[no_mangle]
pub extern "C" fn c_embed_runtime_onnxruntime_version() -> *const c_char {
    catch_panic(c"".as_ptr(), || {
        crate::ort::loader::in_use().map_or(c"".as_ptr(), |(_, version)| version.as_ptr())
    })
}

/// Called by the drop-in source (`c_embed_runtime.cpp`, which a host compiles
/// in place of the legacy library's source) with the file it was loaded from,
/// before it forwards its first call. When ONNX Runtime is not loaded yet and
/// `ORT_DYLIB_PATH` is not set, the first create then looks in the directories
/// of that file's `-Wl,-rpath` (the `capi/` folder the host links against),
/// after any ONNX Runtime already loaded in the process and before the
/// library's own places. Returns 1 when `object_path` names an object loaded in
/// this process (a repeated call changes nothing), 0 otherwise (NULL included).
/// Hosts that do not build the drop-in source have no need of it.
///
/// # Safety
/// `object_path` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn c_embed_runtime_register_host_build(object_path: *const c_char) -> i32 {
    // SAFETY: NULL or NUL-terminated (this function's contract).
    let object_path = unsafe { optional_c_str(object_path) };
    catch_panic(0, || {
        object_path.map_or(0, |path| {
            i32::from(crate::ort::host_build::register(Path::new(
                OsStr::from_bytes(path.to_bytes()),
            )))
        })
    })
}

/// The crate version as a C string.
const VERSION: &CStr =
    match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
        Ok(version) => version,
        Err(_) => panic!("the crate version has no NUL"),
    };

/// Frees a handle: its sessions, buffers and strings. NULL, a handle already
/// destroyed and any value that is not a live handle are ignored. Runs other
/// threads have in flight on the handle are stopped and those calls fail
/// (`std_error:handle_destroyed: ...`); destroy returns once they have left
/// the handle, and then frees it. Every later call with this handle gets the
/// invalid-handle result, and every string it returned is invalid.
///
/// In the child of a `fork()`, a handle made before the fork is only forgotten
/// (its memory is not freed: its teardown would wait for threads of the parent).
#[no_mangle]
pub extern "C" fn c_embed_runtime_destroy(handle: *mut c_void) {
    catch_panic((), || {
        let Some(handle) = HANDLES.remove(handle) else {
            return;
        };
        if handle.generation != fork::generation() {
            std::mem::forget(handle);
            return;
        }
        handle.runtime.close();
        wait_for_last_user(handle);
    });
}

/// Waits until `handle` has no other user (the calls in flight on it have
/// returned), then frees it here.
fn wait_for_last_user(mut handle: Arc<Handle>) {
    let mut pause = std::time::Duration::from_micros(50);
    loop {
        match Arc::try_unwrap(handle) {
            Ok(last) => return drop(last),
            Err(shared) => handle = shared,
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(std::time::Duration::from_millis(5));
    }
}
