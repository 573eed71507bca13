//! Storage for the error strings the ABI hands out as `const char*`.
//!
//! The rule (documented in the header): a returned string stays valid until the
//! same thread's next call on the same handle (for `last_create_error`: the same
//! thread's next `last_create_error` call). Other threads never invalidate it.

use std::cell::RefCell;
use std::ffi::c_char;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

const EMPTY: *const c_char = c"".as_ptr();

/// Writes `message` NUL-terminated into `buffer`, reusing its capacity.
fn store_text(buffer: &mut Vec<u8>, message: &str) {
    buffer.clear();
    buffer.extend(message.bytes().filter(|&b| b != 0));
    buffer.push(0);
}

/// Each thread's last embed error on one handle.
///
/// Per thread, so that two threads sharing a handle each read the result of their
/// own call. The strings live in the calling thread's own storage, keyed by the
/// handle: freed when the thread exits, or when the thread records a message
/// after the handle was destroyed, and a call never searches other threads'
/// messages (no lock, no cost that grows with the threads that ever failed).
pub struct ThreadMessages {
    /// Tells this handle's entries apart in each thread's storage.
    key: u64,
    /// Dropped with the handle: threads' entries for it become dead.
    alive: Arc<()>,
}

impl Default for ThreadMessages {
    fn default() -> Self {
        static NEXT_KEY: AtomicU64 = AtomicU64::new(1);
        Self {
            key: NEXT_KEY.fetch_add(1, Ordering::Relaxed),
            alive: Arc::new(()),
        }
    }
}

/// One thread's messages: the handle's key, whether the handle lives, the text.
#[derive(Default)]
struct ThreadStore {
    entries: Vec<(u64, Weak<()>, Vec<u8>)>,
    /// Dead entries are dropped when the store grows past this.
    prune_at: usize,
}

thread_local! {
    static MESSAGES: RefCell<ThreadStore> = RefCell::new(ThreadStore::default());
}

/// Fewest entries a thread keeps before it looks for dead ones.
const PRUNE_MIN: usize = 16;

impl ThreadMessages {
    /// Records this thread's last result: `""` after a success. A success on a
    /// thread with no message stored touches nothing but a thread-local.
    pub fn set(&self, message: &str) {
        let _ = MESSAGES.try_with(|store| {
            let mut store = store.borrow_mut();
            let position = store.entries.iter().position(|(key, ..)| *key == self.key);
            match position {
                Some(i) if message.is_empty() => {
                    store.entries.swap_remove(i);
                }
                Some(i) => store_text(&mut store.entries[i].2, message),
                None if message.is_empty() => {}
                None => {
                    if store.entries.len() >= store.prune_at.max(PRUNE_MIN) {
                        store
                            .entries
                            .retain(|(_, alive, _)| alive.strong_count() > 0);
                        store.prune_at = store.entries.len() * 2;
                    }
                    let mut text = Vec::new();
                    store_text(&mut text, message);
                    store
                        .entries
                        .push((self.key, Arc::downgrade(&self.alive), text));
                }
            }
        });
    }

    /// This thread's last message ("" if none). Valid until this thread's next
    /// `set` on this handle (the text's heap buffer does not move meanwhile).
    pub fn get(&self) -> *const c_char {
        MESSAGES
            .try_with(|store| {
                let store = store.borrow();
                store
                    .entries
                    .iter()
                    .find(|(key, ..)| *key == self.key)
                    .map_or(EMPTY, |(_, _, text)| text.as_ptr().cast())
            })
            .unwrap_or(EMPTY)
    }
}

/// The process-global last `create` error.
static LAST_CREATE_ERROR: Mutex<String> = Mutex::new(String::new());

thread_local! {
    /// This thread's copy of the create error it last read.
    static CREATE_ERROR_COPY: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Holds the create error locked (around a `fork()`).
pub fn hold_create_error() -> std::sync::MutexGuard<'static, String> {
    LAST_CREATE_ERROR
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

pub fn set_create_error(message: &str) {
    let mut last = LAST_CREATE_ERROR
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    last.clear();
    last.push_str(message);
}

/// The last create error, copied for this thread so that another thread's
/// `create` cannot free it under the caller.
pub fn create_error() -> *const c_char {
    let last = LAST_CREATE_ERROR
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if last.is_empty() {
        return EMPTY;
    }
    CREATE_ERROR_COPY
        .try_with(|copy| {
            let mut copy = copy.borrow_mut();
            store_text(&mut copy, &last);
            copy.as_ptr().cast()
        })
        .unwrap_or(crate::error_strings::c_whole::UNKNOWN_CREATE_ERROR.as_ptr())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;
    use std::thread;

    fn read(ptr: *const c_char) -> String {
        // SAFETY: the pointers under test are valid C strings at this point.
        unsafe { CStr::from_ptr(ptr) }.to_str().unwrap().to_owned()
    }

    #[test]
    fn each_thread_reads_its_own_message() {
        let messages = ThreadMessages::default();
        assert_eq!(read(messages.get()), "");
        messages.set("std_error:mine");
        let mine = messages.get();
        thread::scope(|s| {
            s.spawn(|| {
                assert_eq!(read(messages.get()), "");
                messages.set("ort_error:theirs");
                assert_eq!(read(messages.get()), "ort_error:theirs");
            });
        });
        assert_eq!(
            read(mine),
            "std_error:mine",
            "another thread's call left it intact"
        );
        messages.set("");
        assert_eq!(read(messages.get()), "");
    }

    #[test]
    fn a_destroyed_handles_messages_are_dropped_as_the_thread_fails_on_others() {
        for _ in 0..1000 {
            ThreadMessages::default().set("std_error:gone");
        }
        let count = MESSAGES.with(|store| store.borrow().entries.len());
        assert!(count <= 2 * PRUNE_MIN, "{count} entries kept");
    }

    #[test]
    fn interior_nuls_are_dropped() {
        let messages = ThreadMessages::default();
        messages.set("a\0b");
        assert_eq!(read(messages.get()), "ab");
    }
}
