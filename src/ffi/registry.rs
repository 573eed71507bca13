//! The live handles. A handle given to the caller is a token, not an address:
//! every call looks it up here and never dereferences what the caller passed, so
//! a destroyed handle, a second destroy, a pointer to someone else's memory or a
//! wild value is simply not found.
//!
//! A lookup is a read lock (one atomic operation when uncontended), a hash
//! lookup and a reference count, so a destroy while other threads are inside a
//! call on the handle only unregisters it: the last of those calls frees it.

use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

/// Tokens carry this high tag, an address no user-space allocation has on
/// x86-64 and AArch64 Linux, so a real pointer never equals a token.
#[cfg(target_pointer_width = "64")]
const TAG: usize = 0xCE00_0000_0000_0000;
#[cfg(not(target_pointer_width = "64"))]
const TAG: usize = 0xC000_0000;

/// Live values by token. Tokens are never reused.
pub struct Registry<T> {
    live: RwLock<Option<HashMap<usize, Arc<T>>>>,
    next: AtomicUsize,
}

impl<T> Registry<T> {
    pub const fn new() -> Self {
        Self {
            live: RwLock::new(None),
            next: AtomicUsize::new(1),
        }
    }

    /// Registers `value` and returns its token (never NULL).
    pub fn insert(&self, value: T) -> *mut c_void {
        // Shifted so tokens look aligned; the counter would need 2^58 creates to wrap.
        let token = TAG | (self.next.fetch_add(1, Ordering::Relaxed) << 4);
        let mut live = self.live.write().unwrap_or_else(PoisonError::into_inner);
        live.get_or_insert_with(HashMap::new)
            .insert(token, Arc::new(value));
        token as *mut c_void
    }

    /// The live value behind `token`, or `None` for anything else.
    pub fn get(&self, token: *mut c_void) -> Option<Arc<T>> {
        let live = self.live.read().unwrap_or_else(PoisonError::into_inner);
        live.as_ref()?.get(&(token as usize)).cloned()
    }

    /// Unregisters `token`; its value is freed once no call holds it.
    pub fn remove(&self, token: *mut c_void) -> Option<Arc<T>> {
        let mut live = self.live.write().unwrap_or_else(PoisonError::into_inner);
        live.as_mut()?.remove(&(token as usize))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_live_tokens_are_found() {
        let registry = Registry::new();
        let a = registry.insert(1);
        let b = registry.insert(2);
        assert_ne!(a, b);
        assert_eq!(registry.get(a).as_deref(), Some(&1));
        let on_stack = 5u64;
        assert!(registry
            .get(std::ptr::addr_of!(on_stack).cast_mut().cast())
            .is_none());
        assert!(registry.get(std::ptr::null_mut()).is_none());
        assert!(registry.get(0xdead_beef as *mut c_void).is_none());
        assert!(registry.remove(a).is_some());
        assert!(registry.get(a).is_none(), "destroyed");
        assert!(registry.remove(a).is_none(), "destroyed twice");
        assert_eq!(registry.get(b).as_deref(), Some(&2));
    }

    #[test]
    fn a_removed_value_lives_until_its_last_user_is_done() {
        let registry = Registry::new();
        let token = registry.insert(String::from("in use"));
        let held = registry.get(token).unwrap();
        drop(registry.remove(token));
        assert_eq!(*held, "in use");
        assert!(registry.get(token).is_none());
    }
}
