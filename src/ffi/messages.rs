//! Storage for the error strings the ABI hands out as `const char*`.
//!
//! The rule (documented in the header): a returned string stays valid until the
//! same thread's next call on the same handle (for `last_create_error`: the same
//! thread's next `last_create_error` call). Other threads never invalidate it.

use std::cell::RefCell;
use std::ffi::c_char;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::thread::{self, ThreadId};

const EMPTY: *const c_char = c"".as_ptr();

/// Writes `message` NUL-terminated into `buffer`, reusing its capacity.
fn store(buffer: &mut Vec<u8>, message: &str) {
    buffer.clear();
    buffer.extend(message.bytes().filter(|&b| b != 0));
    buffer.push(0);
}

/// Each thread's last embed error on one handle.
///
/// Per thread, so that two threads sharing a handle each read the result of their
/// own call; a slot's buffer is only touched by its own thread, so a pointer
/// returned to one thread survives other threads' calls.
#[derive(Default)]
pub struct ThreadMessages {
    slots: Mutex<Vec<(ThreadId, Vec<u8>)>>,
    /// Whether any slot exists: until a first failure, a success touches no lock.
    any_slot: AtomicBool,
}

impl ThreadMessages {
    /// Records this thread's last result: `""` after a success. Clearing reuses
    /// the slot's buffer, so the success path allocates nothing.
    pub fn set(&self, message: &str) {
        if message.is_empty() && !self.any_slot.load(Ordering::Acquire) {
            return;
        }
        let id = thread::current().id();
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        match slots.iter_mut().find(|(owner, _)| *owner == id) {
            Some((_, buffer)) => store(buffer, message),
            None if message.is_empty() => {}
            None => {
                let mut buffer = Vec::new();
                store(&mut buffer, message);
                slots.push((id, buffer));
                self.any_slot.store(true, Ordering::Release);
            }
        }
    }

    /// This thread's last message ("" if none).
    pub fn get(&self) -> *const c_char {
        if !self.any_slot.load(Ordering::Acquire) {
            return EMPTY;
        }
        let id = thread::current().id();
        let slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        slots
            .iter()
            .find(|(owner, _)| *owner == id)
            .map_or(EMPTY, |(_, buffer)| buffer.as_ptr().cast())
    }
}

/// The process-global last `create` error.
static LAST_CREATE_ERROR: Mutex<String> = Mutex::new(String::new());

thread_local! {
    /// This thread's copy of the create error it last read.
    static CREATE_ERROR_COPY: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
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
            store(&mut copy, &last);
            copy.as_ptr().cast()
        })
        .unwrap_or(c"unknown_create_error".as_ptr())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

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
    fn interior_nuls_are_dropped() {
        let messages = ThreadMessages::default();
        messages.set("a\0b");
        assert_eq!(read(messages.get()), "ab");
    }
}
