//! The calls: create, its error, embed, a batch, destroy.

use std::ffi::{c_char, c_void};
use std::sync::Arc;

use super::boundary::{catch_panic, optional_c_str, optional_slice, optional_slice_mut};
use super::{
    batch_sizes, create_handle, finish_create, finish_embed, fork, handle_ref, messages, required,
    Handle, HANDLES,
};
use crate::error_strings;
use crate::tokens::TokenRows;

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
/// one row at a time at its own length (see docs/models.md). With the environment
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
/// - `rows`: number of sequences, at least 1. A run holds at most 32 rows
///   (fewer when they are long: docs/performance.md, "Longer text").
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
