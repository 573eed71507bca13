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
//! `pthread_cancel` stays pending until the thread's first cancellation point
//! of its own after the call returns (no library call is one), so a thread
//! that only calls the library is cancelled only if it calls
//! `pthread_testcancel()` between calls. In the child of a `fork()`, handles made before the fork
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
mod calls;
mod fork;
mod getters;
mod messages;
mod onnxruntime;
mod registry;
#[cfg(feature = "text")]
mod text;

pub use calls::*;
pub use getters::*;
#[cfg(feature = "text")]
pub use text::*;

use std::ffi::{c_void, CStr, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr;
use std::sync::Arc;

use self::boundary::catch_panic;
use self::messages::ThreadMessages;
use self::registry::Registry;
use crate::error::{CreateError, EmbedError, UNKNOWN_CREATE_ERROR, UNKNOWN_EMBED_ERROR};
use crate::error_strings;
use crate::ort::device;
use crate::run::runtime::{CreateOptions, EmbedRuntime, FallbackSignals};
pub use onnxruntime::*;

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
