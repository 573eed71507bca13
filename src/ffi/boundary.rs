//! The panic boundary and the pointer helpers every exported function uses.

use std::ffi::{c_char, c_int, CStr};

/// Runs `body`, turning a panic into `on_panic` so that no unwind crosses the C
/// ABI and nothing is printed (`crate::panics`).
///
/// Thread cancellation is disabled for the duration: a `pthread_cancel` acting
/// inside the library (on a wait of ONNX Runtime or of a lock) would unwind
/// through frames that cannot be unwound and abort the process. A pending
/// cancellation takes effect at the caller's next cancellation point of its
/// own after the call returns (restoring the state is not one).
pub fn catch_panic<R>(on_panic: R, body: impl FnOnce() -> R) -> R {
    let _no_cancel = CancelDisabled::new();
    crate::panics::quietly(body).unwrap_or(on_panic)
}

// POSIX, not in the `libc` crate for Linux; the values are those of glibc and musl.
const PTHREAD_CANCEL_ENABLE: c_int = 0;
const PTHREAD_CANCEL_DISABLE: c_int = 1;

extern "C" {
    fn pthread_setcancelstate(state: c_int, old_state: *mut c_int) -> c_int;
}

/// Disables thread cancellation until dropped, then restores the previous state.
struct CancelDisabled {
    previous: c_int,
}

impl CancelDisabled {
    fn new() -> Self {
        let mut previous = PTHREAD_CANCEL_ENABLE;
        // SAFETY: `pthread_setcancelstate` only changes the calling thread's
        // state and writes the old one to a valid local.
        unsafe { pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &mut previous) };
        Self { previous }
    }
}

impl Drop for CancelDisabled {
    fn drop(&mut self) {
        let mut ignored = 0;
        // SAFETY: as in `new`; restores the state the caller had.
        unsafe { pthread_setcancelstate(self.previous, &mut ignored) };
    }
}

/// A caller's optional C string.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string that stays valid and
/// unchanged for `'a`.
pub unsafe fn optional_c_str<'a>(ptr: *const c_char) -> Option<&'a CStr> {
    // SAFETY: non-NULL pointers are NUL-terminated strings (the caller's contract).
    (!ptr.is_null()).then(|| unsafe { CStr::from_ptr(ptr) })
}

/// A caller's array of `len` values, or `None` when `ptr` is NULL or misaligned
/// (a misaligned slice would be undefined behaviour in Rust).
///
/// # Safety
/// A non-NULL `ptr` points to at least `len` readable values that stay valid and
/// are not written by anyone else for `'a`.
pub unsafe fn optional_slice<'a, T>(ptr: *const T, len: usize) -> Option<&'a [T]> {
    if ptr.is_null() || !ptr.is_aligned() {
        return None;
    }
    // SAFETY: non-NULL and aligned here; length and lifetime are the caller's contract.
    Some(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Like [`optional_slice`], for an output array.
///
/// # Safety
/// A non-NULL `ptr` points to at least `len` writable values that nobody else
/// reads or writes for `'a`.
pub unsafe fn optional_slice_mut<'a, T>(ptr: *mut T, len: usize) -> Option<&'a mut [T]> {
    if ptr.is_null() || !ptr.is_aligned() {
        return None;
    }
    // SAFETY: non-NULL and aligned here; length, exclusivity and lifetime are the caller's contract.
    Some(unsafe { std::slice::from_raw_parts_mut(ptr, len) })
}
