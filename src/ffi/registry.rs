//! The live handles. A handle given to the caller is a token, not an address:
//! every call looks it up here and never dereferences what the caller passed, so
//! a destroyed handle, a second destroy, a pointer to someone else's memory or a
//! wild value is simply not found.
//!
//! **Unique per library instance.** A token is this instance's create count
//! mapped through a bijection with a random offset drawn when the library is
//! loaded: tokens are never reused after destroy, and another copy of the
//! library (loaded from another path) or a reload after `dlclose` makes
//! tokens that this instance does not know (two instances' tokens meet
//! after about 2^52 creates).
//!
//! A lookup is a read lock (one atomic operation when uncontended), a hash
//! lookup and a reference count, so a destroy while other threads are inside a
//! call on the handle only unregisters it: the last of those calls frees it.
//! The handles are spread over [`SHARDS`] locks, each on its own cache line
//! (consecutive tokens fall in different shards), so that calls on different
//! handles share no lock.

use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, RwLock, RwLockWriteGuard};

/// Tokens carry this high tag, an address no user-space allocation has on
/// x86-64 and AArch64 Linux, so a real pointer never equals a token.
#[cfg(target_pointer_width = "64")]
const TAG: usize = 0xCE00_0000_0000_0000;
#[cfg(not(target_pointer_width = "64"))]
const TAG: usize = 0xC000_0000;

/// The bits that vary between tokens: below the tag, above 4 low zero bits.
const VARYING_BITS: u32 = TAG.trailing_zeros() - 4;

/// Odd, so multiplying by it is a bijection modulo any power of two.
const SPREAD: u64 = 0x9E37_79B9_7F4A_7C15;

/// Locks the live values are spread over.
const SHARDS: usize = 16;

type Live<T> = Option<HashMap<usize, Arc<T>>>;

/// One lock's share of the live values, alone on its cache line.
#[repr(align(64))]
struct Shard<T>(RwLock<Live<T>>);

/// The registry's write locks, all held (see [`Registry::hold`]).
pub type RegistryGuard<'a, T> = [RwLockWriteGuard<'a, Live<T>>; SHARDS];

/// Live values by token. Tokens are never reused.
pub struct Registry<T> {
    live: [Shard<T>; SHARDS],
    next: AtomicU64,
    /// Drawn on first use: this instance's offset (see the module docs).
    offset: OnceLock<u64>,
}

impl<T> Registry<T> {
    pub const fn new() -> Self {
        Self {
            live: [const { Shard(RwLock::new(None)) }; SHARDS],
            next: AtomicU64::new(1),
            offset: OnceLock::new(),
        }
    }

    /// The `count`-th token of this instance.
    fn token(&self, count: u64) -> usize {
        let offset = *self.offset.get_or_init(instance_seed);
        let mask = (1u64 << VARYING_BITS) - 1;
        let spread = count.wrapping_mul(SPREAD).wrapping_add(offset) & mask;
        TAG | ((spread as usize) << 4)
    }

    /// Registers `value` and returns its token (never NULL).
    pub fn insert(&self, value: T) -> *mut c_void {
        // Shifted so tokens look aligned; the counter would need 2^53 creates to wrap.
        let token = self.token(self.next.fetch_add(1, Ordering::Relaxed));
        let mut live = self.write(token);
        live.get_or_insert_with(HashMap::new)
            .insert(token, Arc::new(value));
        token as *mut c_void
    }

    /// The shard of `token`.
    fn shard(&self, token: usize) -> &RwLock<Live<T>> {
        &self.live[(token >> 4) % SHARDS].0
    }

    fn write(&self, token: usize) -> RwLockWriteGuard<'_, Live<T>> {
        self.shard(token)
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The live value behind `token`, or `None` for anything else.
    pub fn get(&self, token: *mut c_void) -> Option<Arc<T>> {
        let token = token as usize;
        let live = self
            .shard(token)
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        live.as_ref()?.get(&token).cloned()
    }

    /// Holds the registry locked (around a `fork()`), every shard in order.
    pub fn hold(&self) -> RegistryGuard<'_, T> {
        std::array::from_fn(|i| {
            self.live[i]
                .0
                .write()
                .unwrap_or_else(PoisonError::into_inner)
        })
    }

    /// Unregisters `token`; its value is freed once no call holds it.
    pub fn remove(&self, token: *mut c_void) -> Option<Arc<T>> {
        let token = token as usize;
        self.write(token).as_mut()?.remove(&token)
    }
}

/// A random number for this library instance: from the kernel, else from the
/// time, the process id and where this instance is loaded.
fn instance_seed() -> u64 {
    let mut seed = 0u64;
    // SAFETY: writes at most 8 bytes into `seed`, a valid local of that size.
    let got = unsafe { libc::getrandom(std::ptr::addr_of_mut!(seed).cast(), 8, 0) };
    if got == 8 {
        return seed;
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let here = instance_seed as fn() -> u64 as usize as u64;
    (nanos ^ here.rotate_left(17) ^ u64::from(std::process::id()).rotate_left(40))
        .wrapping_mul(SPREAD)
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
    fn consecutive_tokens_fall_in_different_shards() {
        let registry = Registry::new();
        let shards: std::collections::HashSet<usize> = (0..SHARDS)
            .map(|_| registry.insert(0) as usize)
            .map(|token| (token >> 4) % SHARDS)
            .collect();
        assert_eq!(shards.len(), SHARDS);
    }

    #[test]
    fn instances_make_different_tokens() {
        let (a, b) = (Registry::new(), Registry::new());
        assert_ne!(a.insert(1), b.insert(1));
        assert_ne!(a.token(1), a.token(2));
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
