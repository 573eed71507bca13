//! The panic boundary and the pointer helpers every exported function uses.

use std::ffi::{c_char, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs `body`, turning a panic into `on_panic` so that no unwind crosses the C ABI.
pub fn catch_panic<R>(on_panic: R, body: impl FnOnce() -> R) -> R {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(on_panic)
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
