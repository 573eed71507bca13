//! The callers' pooled state of one handle ([`Callers`]): a handle serves up
//! to [`MAX_CALLERS`] callers at once, each with its own [`Caller`] (made on
//! first contention, then kept); more wait for a free one.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};

use once_cell::sync::OnceCell;

use crate::error::EmbedError;
use crate::run::group::Caller;
use crate::run::runner::ModelRunner;

/// Most callers served at once by one handle (each with its own buffers);
/// more wait for a free one. More concurrent runs than cores gain nothing.
pub const MAX_CALLERS: usize = 16;

/// The callers' pooled state of one handle, made on demand (see the module docs).
pub(crate) struct Callers {
    /// Filled in order; slot 0 at create.
    slots: Box<[OnceCell<Mutex<Caller>>]>,
    /// Spreads waiting callers over the buffers when all are busy.
    next: AtomicU64,
}

impl Callers {
    pub(crate) fn new(first: Caller) -> Self {
        let slots: Box<[_]> = (0..MAX_CALLERS).map(|_| OnceCell::new()).collect();
        let _ = slots[0].set(Mutex::new(first));
        Self {
            slots,
            next: AtomicU64::new(0),
        }
    }

    pub(crate) fn open(&self) -> usize {
        self.slots.iter().take_while(|s| s.get().is_some()).count()
    }

    pub(crate) fn sum(&self, f: impl Fn(&Caller) -> usize) -> usize {
        self.slots
            .iter()
            .map_while(OnceCell::get)
            .map(|m| f(&m.lock().unwrap_or_else(PoisonError::into_inner)))
            .sum()
    }

    /// A free caller's state: the first idle one, else a new one in the first
    /// empty slot, else the next one in turn (waiting for it).
    pub(crate) fn acquire(
        &self,
        runner: &ModelRunner,
    ) -> Result<MutexGuard<'_, Caller>, EmbedError> {
        for slot in &self.slots[..] {
            let buffers = match slot.get() {
                Some(buffers) => buffers,
                None => slot.get_or_try_init(|| runner.new_caller().map(Mutex::new))?,
            };
            match buffers.try_lock() {
                Ok(buffers) => return Ok(buffers),
                Err(TryLockError::Poisoned(p)) => return Ok(p.into_inner()),
                Err(TryLockError::WouldBlock) => {}
            }
        }
        let index = self.next.fetch_add(1, Ordering::Relaxed) as usize % self.slots.len();
        let slot = self.slots[index]
            .get()
            .expect("every slot was filled above");
        Ok(slot.lock().unwrap_or_else(PoisonError::into_inner))
    }
}
