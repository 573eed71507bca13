//! Panics inside the library stay quiet: the default panic hook would print
//! a panic's message to the host's stderr (a dependency's, such as one inside
//! `tokenizers`, included) before the library turns it into an error.
//! [`quietly`] runs code with the hook silenced on this thread; panics
//! elsewhere (a Rust host's own) still reach the hook that was set before.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    /// How many [`quietly`] calls this thread is inside.
    static QUIET: Cell<u32> = const { Cell::new(0) };
}

/// Puts the quiet hook in front of the one set before (once per process).
fn install() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if QUIET.try_with(Cell::get).unwrap_or(0) == 0 {
                previous(info);
            }
        }));
    });
}

/// Runs `body`, catching a panic (`Err`) without printing anything.
pub(crate) fn quietly<R>(body: impl FnOnce() -> R) -> std::thread::Result<R> {
    install();
    let _ = QUIET.try_with(|q| q.set(q.get() + 1));
    let result = catch_unwind(AssertUnwindSafe(body));
    let _ = QUIET.try_with(|q| q.set(q.get().saturating_sub(1)));
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_an_error() {
        assert!(quietly(|| panic!("inside")).is_err());
        assert_eq!(quietly(|| 7).ok(), Some(7));
        assert_eq!(QUIET.with(Cell::get), 0, "the count is restored");
    }
}
