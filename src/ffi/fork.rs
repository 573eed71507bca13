//! `fork()`: a child gets a copy of the parent's handles but none of its
//! threads, so a session's locks, ONNX Runtime's thread pools or a batch's
//! helper threads may be held or waited on by threads that do not exist there.
//! Each handle remembers the process generation it was made in; the child
//! handler of `pthread_atfork` starts a new one, and a call on an older
//! handle fails with [`CREATED_BEFORE_FORK`] without touching its sessions or locks.
//! Destroying such a handle in the child forgets it (its memory is leaked: its
//! teardown would wait for the parent's threads).
//!
//! The library's own short-held locks (the handle registry, the watchdog, the
//! create error) are taken around the fork, so the child never inherits them
//! locked.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{MutexGuard, Once};

use super::registry::RegistryGuard;
use super::{messages, Handle, HANDLES};
#[cfg(doc)]
use crate::error_strings::CREATED_BEFORE_FORK;
use crate::ort::watchdog::{self, ForkLock};

/// The process generation: 0 in the process that loaded the library, one more
/// in each child of a `fork()`.
static GENERATION: AtomicU64 = AtomicU64::new(0);

pub fn generation() -> u64 {
    GENERATION.load(Ordering::Acquire)
}

/// Installs the fork handlers (once per library instance; a `dlclose`
/// removes them with the library).
pub fn install_handlers() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // SAFETY: the handlers are `extern "C"` functions of this library that
        // live as long as it is loaded (glibc drops them when it is unloaded).
        unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
    });
}

/// The locks held across a fork.
struct HeldLocks {
    _handles: RegistryGuard<'static, Handle>,
    watchdog: ForkLock,
    _create_error: MutexGuard<'static, String>,
}

thread_local! {
    /// Set by `prepare` in the forking thread, taken by `parent` and `child`.
    static HELD: RefCell<Option<HeldLocks>> = const { RefCell::new(None) };
}

extern "C" fn prepare() {
    let _ = crate::panics::quietly(|| {
        let held = HeldLocks {
            _handles: HANDLES.hold(),
            watchdog: watchdog::lock_for_fork(),
            _create_error: messages::hold_create_error(),
        };
        let _ = HELD.try_with(|slot| *slot.borrow_mut() = Some(held));
    });
}

extern "C" fn parent() {
    let _ = crate::panics::quietly(|| {
        let _ = HELD.try_with(|slot| slot.borrow_mut().take());
    });
}

extern "C" fn child() {
    GENERATION.fetch_add(1, Ordering::AcqRel);
    let _ = crate::panics::quietly(|| {
        let _ = HELD.try_with(|slot| {
            if let Some(held) = slot.borrow_mut().take() {
                held.watchdog.reset_in_child();
            }
        });
    });
}
