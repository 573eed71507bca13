//! The getters: a handle's last error and settings, the library's version.

use std::ffi::{c_char, c_void, CStr};

use super::any_handle_ref;
use super::boundary::catch_panic;
use crate::error_strings;

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

/// The crate version as a C string.
const VERSION: &CStr =
    match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
        Ok(version) => version,
        Err(_) => panic!("the crate version has no NUL"),
    };
