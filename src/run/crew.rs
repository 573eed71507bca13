//! The groups of one call, and the helper threads that run some of them.
//!
//! A [`Batch`] is a call's groups and the one job that embeds a group
//! (`ModelRunner::embed_group`). Whoever works on it, the caller's thread
//! alone or with a handle's [`Crew`], runs its share of the groups, dealt by
//! cost (`Grouper::deal`), until done or one failed anywhere. A fixed deal
//! (rather than taking the next free group) lets each worker meet the same
//! run shapes on every call of the same batch, so its cached tensors serve it:
//! no allocation in steady state.
//!
//! **Crew.** A handle with `threads` N > 1 on the CPU has N - 1 helper
//! threads, started on its first batch of two groups or more and persistent,
//! so a steady-state batch creates no thread and allocates nothing. One batch
//! at a time uses the crew; a second concurrent batch runs its groups on its
//! own thread. A helper works on the batch with its own [`Worker`] (workspace
//! and pooling scratch), exactly as the caller does.
//!
//! **Why the one `unsafe` holds.** A helper reads the batch, which borrows the
//! caller's rows and output, through a pointer whose lifetime is erased. The
//! caller does not return, nor unwind, before every helper it gave the batch
//! to has let go of it: [`Crew::run`] waits for each, and so does the drop of
//! [`Posted`] if the caller's own work panics.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use crate::error::EmbedError;
use crate::error_strings::HELPER_LOST;
use crate::run::group::Worker;
use crate::run::runner::ModelRunner;

/// The job that embeds group `g` of a batch with a worker.
pub(crate) type GroupJob<'a> = dyn Fn(&mut Worker, usize) -> Result<(), EmbedError> + Sync + 'a;

/// The groups of one call (see the module docs).
pub(crate) struct Batch<'a> {
    job: &'a GroupJob<'a>,
    /// Which worker runs each group (0: the caller).
    owners: &'a [u8],
    failed: AtomicBool,
}

impl<'a> Batch<'a> {
    pub(crate) fn new(owners: &'a [u8], job: &'a GroupJob<'a>) -> Self {
        Self {
            job,
            owners,
            failed: AtomicBool::new(false),
        }
    }

    /// Runs the groups of worker `place` (0: the caller) with `worker`, the
    /// last planned (the longest) first, until done or a group failed anywhere.
    pub(crate) fn work(&self, place: usize, worker: &mut Worker) -> Result<(), EmbedError> {
        for (g, &owner) in self.owners.iter().enumerate().rev() {
            if usize::from(owner) != place {
                continue;
            }
            if self.failed.load(Ordering::Relaxed) {
                break;
            }
            if let Err(error) = (self.job)(worker, g) {
                self.failed.store(true, Ordering::Relaxed);
                return Err(error);
            }
        }
        Ok(())
    }
}

/// A batch handed to a helper, its lifetime erased (see the module docs).
#[derive(Clone, Copy)]
struct BatchRef {
    batch: NonNull<Batch<'static>>,
    /// The helper's place in the deal.
    place: usize,
}

// SAFETY: a `Batch` is `Sync` (its job is `Sync`, the rest atomics), and the
// caller keeps it alive until the helper has dropped this reference.
unsafe impl Send for BatchRef {}

/// The helper threads of one handle (see the module docs).
pub(crate) struct Crew {
    helpers: Vec<Arc<Helper>>,
    threads: Vec<JoinHandle<()>>,
    wanted: usize,
    runner: Arc<ModelRunner>,
}

/// One helper thread's mailbox and worker.
struct Helper {
    state: Mutex<HelperState>,
    wake: Condvar,
}

struct HelperState {
    worker: Option<Worker>,
    /// The batch to work on; `None` when idle.
    batch: Option<BatchRef>,
    result: Result<(), EmbedError>,
    exit: bool,
}

impl Helper {
    fn lock(&self) -> MutexGuard<'_, HelperState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until the helper has let go of its batch; its result.
    fn finish(&self) -> Result<(), EmbedError> {
        let mut state = self
            .wake
            .wait_while(self.lock(), |s| s.batch.is_some())
            .unwrap_or_else(PoisonError::into_inner);
        std::mem::replace(&mut state.result, Ok(()))
    }

    /// The helper thread: works on each batch it is given until told to exit.
    fn serve(&self) {
        let mut state = self.lock();
        loop {
            state = self
                .wake
                .wait_while(state, |s| s.batch.is_none() && !s.exit)
                .unwrap_or_else(PoisonError::into_inner);
            if state.exit {
                return;
            }
            let Some(BatchRef { batch, place }) = state.batch else {
                continue;
            };
            // SAFETY: the caller that posted the batch keeps it alive until
            // `batch` is `None` again (see the module docs), which only this
            // thread sets, below.
            let batch = unsafe { batch.as_ref() };
            let state_now = &mut *state;
            state_now.result = match state_now.worker.as_mut() {
                Some(worker) => crate::panics::quietly(|| batch.work(place, worker))
                    .unwrap_or(Err(EmbedError::unknown())),
                None => Err(EmbedError::library(HELPER_LOST)),
            };
            state.batch = None;
            self.wake.notify_all();
        }
    }
}

/// The helpers a batch was posted to; waits for them when dropped.
struct Posted<'c> {
    helpers: &'c [Arc<Helper>],
}

impl Posted<'_> {
    /// Waits for every helper; the first error, if any.
    fn finish(mut self) -> Result<(), EmbedError> {
        let helpers = std::mem::take(&mut self.helpers);
        let mut first = Ok(());
        // Every helper is waited for, whatever an earlier one returned.
        for helper in helpers {
            let result = helper.finish();
            first = first.and(result);
        }
        first
    }
}

impl Drop for Posted<'_> {
    fn drop(&mut self) {
        for helper in self.helpers {
            let _ = helper.finish();
        }
    }
}

impl Crew {
    pub(crate) fn new(wanted: usize, runner: Arc<ModelRunner>) -> Self {
        Self {
            helpers: Vec::new(),
            threads: Vec::new(),
            wanted,
            runner,
        }
    }

    /// Sums `f` over the helpers' workers.
    pub(crate) fn sum(&self, f: impl Fn(&Worker) -> usize) -> usize {
        self.helpers
            .iter()
            .map(|h| h.lock().worker.as_ref().map_or(0, &f))
            .sum()
    }

    /// Starts the helper threads on first use (the only allocations of the crew).
    fn start(&mut self) -> Result<(), EmbedError> {
        while self.helpers.len() < self.wanted {
            let helper = Arc::new(Helper {
                state: Mutex::new(HelperState {
                    worker: Some(self.runner.new_worker()?),
                    batch: None,
                    result: Ok(()),
                    exit: false,
                }),
                wake: Condvar::new(),
            });
            let mine = Arc::clone(&helper);
            let thread = std::thread::Builder::new()
                .name("c_embed_helper".into())
                .spawn(move || mine.serve())
                .map_err(|_| EmbedError::library("cannot_start_thread"))?;
            self.helpers.push(helper);
            self.threads.push(thread);
        }
        Ok(())
    }

    /// The workers a window of `groups` groups is dealt to: the caller and up
    /// to one helper a group more.
    pub(crate) fn workers(&self, groups: usize) -> usize {
        1 + self.wanted.min(groups.saturating_sub(1))
    }

    /// Works on `batch` (dealt to [`Self::workers`] workers) with the caller's
    /// `worker` and the helpers, returning once all are done: the first error,
    /// if any.
    pub(crate) fn run(&mut self, batch: &Batch<'_>, worker: &mut Worker) -> Result<(), EmbedError> {
        self.start()?;
        let wanted = self.workers(batch.owners.len()) - 1;
        let mut posted = Posted { helpers: &[] };
        for (index, helper) in self.helpers[..wanted].iter().enumerate() {
            let batch = NonNull::from(batch).cast();
            helper.lock().batch = Some(BatchRef {
                batch,
                place: index + 1,
            });
            helper.wake.notify_all();
            posted.helpers = &self.helpers[..=index];
        }
        let mine = batch.work(0, worker);
        let theirs = posted.finish();
        mine.and(theirs)
    }
}

impl Drop for Crew {
    fn drop(&mut self) {
        for helper in &self.helpers {
            helper.lock().exit = true;
            helper.wake.notify_all();
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}
