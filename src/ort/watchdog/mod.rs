//! The run-time limit and stopping runs: one process-wide thread (started on
//! the first run with a limit) that stops, through ONNX Runtime's run
//! termination, every run older than its handle's limit, and
//! [`RunGate::close`], with which a destroy stops the runs still in flight on
//! its handle.
//!
//! ONNX Runtime checks the termination flag between the nodes it executes
//! (a `Loop` body's nodes included), so a run stops within one node's time.
//!
//! **No process-wide lock per run.** Each workspace's run options are a
//! [`RunSlot`], registered with the watchdog once, when the workspace is
//! made. A run only writes its own slot: its deadline, then its state, a
//! word of (generation, state) changed by compare-and-swap, so a stop meant
//! for one run never reaches the next. The watchdog thread scans the slots
//! when the earliest deadline it knows of comes, and at least once per
//! shortest limit of the registered slots: a run it did not see yet started
//! after the scan, so its deadline is no earlier than the next scan.
//!
//! The thread ends (joined) when the last handle goes, so that no thread of
//! the library outlives its handles (a host may `dlclose` it then).

mod thread;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use ort::session::RunOptions;

use crate::env::RUN_TIMEOUT_ENV;
use crate::error::EmbedError;
use crate::error_strings::{HANDLE_DESTROYED, RUN_TIME_LIMIT};
use thread::WatchThread;

/// The limit when [`RUN_TIMEOUT_ENV`] is not set (or not a number): far above
/// any run of a text model of the contract's sizes, short enough that a hung
/// model frees its thread and core.
pub const DEFAULT_RUN_TIMEOUT_MS: u64 = 60_000;

/// One handle's runs: their limit, and whether the handle is being destroyed.
#[derive(Debug)]
pub struct RunGate {
    id: u64,
    limit: Option<Duration>,
    closing: AtomicBool,
    /// During create a timed-out run fails every later one at once (the
    /// self-check would otherwise wait for the limit on each of its runs).
    creating: AtomicBool,
    timed_out: AtomicBool,
}

impl RunGate {
    /// A gate with the limit of [`RUN_TIMEOUT_ENV`], in its create phase.
    pub fn from_env() -> Arc<Self> {
        let millis = std::env::var(RUN_TIMEOUT_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(DEFAULT_RUN_TIMEOUT_MS);
        Self::new((millis > 0).then(|| Duration::from_millis(millis)))
    }

    pub fn new(limit: Option<Duration>) -> Arc<Self> {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        lock().gates += 1;
        Arc::new(Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            limit,
            closing: AtomicBool::new(false),
            creating: AtomicBool::new(true),
            timed_out: AtomicBool::new(false),
        })
    }

    /// Ends the create phase.
    pub fn created(&self) {
        self.creating.store(false, Ordering::Release);
    }

    /// Whether a run of this handle was stopped by the limit.
    pub fn timed_out(&self) -> bool {
        self.timed_out.load(Ordering::Acquire)
    }

    /// The error of a run stopped by the limit.
    pub fn limit_error(&self) -> EmbedError {
        let millis = self.limit.map_or(0, |l| l.as_millis());
        EmbedError::library_owned(format!(
            "{RUN_TIME_LIMIT}: the run was stopped after {millis} ms (the limit is set by \
             {RUN_TIMEOUT_ENV}, in milliseconds; 0 means no limit)"
        ))
    }

    /// Stops the runs in flight on this handle (their callers get
    /// [`HANDLE_DESTROYED`]) and refuses new ones.
    pub fn close(&self) {
        // SeqCst, as a run's start: either it sees `closing`, or this sees it running.
        self.closing.store(true, Ordering::SeqCst);
        let state = lock();
        for slot in state.slots.iter().filter(|s| s.gate_id == self.id) {
            slot.stop(Stopped::Closed);
        }
    }
}

impl Drop for RunGate {
    /// The last gate ends the watchdog thread.
    fn drop(&mut self) {
        let mut state = lock();
        state.gates = state.gates.saturating_sub(1);
        if state.gates > 0 {
            return;
        }
        let Some(thread) = state.thread.take() else {
            return;
        };
        WATCHDOG.thread_started.store(false, Ordering::Release);
        state.epoch += 1;
        drop(state);
        WATCHDOG.wake.notify_all();
        thread.join();
    }
}

/// A slot's states (the low bits of its word; the generation is above them).
const IDLE: u64 = 0;
const RUNNING: u64 = 1;
/// Being stopped: the stopper is terminating the run and then sets the reason.
const STOPPING: u64 = 2;
const TIMED_OUT: u64 = 3;
const CLOSED: u64 = 4;
const STATE_BITS: u32 = 3;
const STATE_MASK: u64 = (1 << STATE_BITS) - 1;

/// Why a run is stopped.
#[derive(Clone, Copy)]
enum Stopped {
    TimedOut,
    Closed,
}

/// One workspace's run options, as the watchdog sees them (see the module docs).
struct RunSlot {
    options: RunOptions,
    gate_id: u64,
    limit: Option<Duration>,
    /// (generation << STATE_BITS) | state.
    word: AtomicU64,
    /// The current run's deadline in nanoseconds since [`epoch_start`]
    /// (`u64::MAX`: none), written before the run's state says `RUNNING`.
    deadline: AtomicU64,
}

impl RunSlot {
    /// Stops the run in the slot if one is running (and still the one seen).
    fn stop(&self, why: Stopped) {
        let word = self.word.load(Ordering::SeqCst);
        self.stop_if(word, why);
    }

    fn stop_if(&self, word: u64, why: Stopped) {
        if word & STATE_MASK != RUNNING {
            return;
        }
        let generation = word & !STATE_MASK;
        if self
            .word
            .compare_exchange(
                word,
                generation | STOPPING,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_err()
        {
            return; // finished, or stopped by someone else, meanwhile
        }
        // A failure leaves the run going: nothing better can be done.
        let _ = self.options.terminate();
        let reason = match why {
            Stopped::TimedOut => TIMED_OUT,
            Stopped::Closed => CLOSED,
        };
        self.word.store(generation | reason, Ordering::Release);
    }
}

/// The process-wide watchdog: the registered slots and its thread.
struct WatchState {
    slots: Vec<Arc<RunSlot>>,
    thread: Option<WatchThread>,
    /// The thread of this epoch runs; a thread of an older one ends.
    epoch: u64,
    /// Live gates (handles, and creates under way).
    gates: usize,
}

struct Watchdog {
    state: Mutex<WatchState>,
    wake: Condvar,
    /// Whether this epoch's thread was started (read by runs without the lock).
    thread_started: AtomicBool,
}

static WATCHDOG: Watchdog = Watchdog {
    state: Mutex::new(WatchState {
        slots: Vec::new(),
        thread: None,
        epoch: 0,
        gates: 0,
    }),
    wake: Condvar::new(),
    thread_started: AtomicBool::new(false),
};

fn lock() -> MutexGuard<'static, WatchState> {
    WATCHDOG
        .state
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

/// The instant deadlines count from.
fn epoch_start() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

fn nanos_since_start(at: Instant) -> u64 {
    u64::try_from(at.saturating_duration_since(epoch_start()).as_nanos()).unwrap_or(u64::MAX - 1)
}

/// What one caller's runs share with the watchdog: the run options through
/// which a run is stopped, registered once (so that a run takes no
/// process-wide lock and allocates nothing). Unregistered when dropped.
pub struct RunControl {
    slot: Arc<RunSlot>,
}

impl RunControl {
    /// Run options for the runs of `gate`'s handle, registered with the watchdog.
    pub fn new(gate: &RunGate) -> Result<Self, EmbedError> {
        let slot = Arc::new(RunSlot {
            options: RunOptions::new().map_err(EmbedError::onnx_runtime)?,
            gate_id: gate.id,
            limit: gate.limit,
            word: AtomicU64::new(IDLE),
            deadline: AtomicU64::new(u64::MAX),
        });
        lock().slots.push(Arc::clone(&slot));
        // A shorter limit than the thread knows of shortens its sleep.
        WATCHDOG.wake.notify_all();
        Ok(Self { slot })
    }

    /// The run options to pass to ONNX Runtime's `Run`.
    pub fn options(&self) -> &RunOptions {
        &self.slot.options
    }
}

impl Drop for RunControl {
    fn drop(&mut self) {
        lock().slots.retain(|s| !Arc::ptr_eq(s, &self.slot));
    }
}

/// A run in flight; [`Watch::finish`] ends it.
pub struct Watch<'a> {
    slot: &'a RunSlot,
    /// The run's word while it runs.
    running: u64,
}

impl<'a> Watch<'a> {
    /// Starts a run of `gate`'s handle made with `control` (no other run uses
    /// it meanwhile). Fails when the handle is closing, or in the create phase
    /// once a run timed out.
    pub fn start(gate: &RunGate, control: &'a RunControl) -> Result<Self, EmbedError> {
        let slot = &*control.slot;
        let word = slot.word.load(Ordering::Acquire);
        // Only a run stopped earlier left a reason (a stop sets it before
        // `finish` returns, and a finished run can no longer be stopped).
        if word & STATE_MASK != IDLE {
            slot.options
                .unterminate()
                .map_err(EmbedError::onnx_runtime)?;
        }
        let deadline = gate
            .limit
            .map_or(u64::MAX, |limit| nanos_since_start(Instant::now() + limit));
        slot.deadline.store(deadline, Ordering::Relaxed);
        let running = (word & !STATE_MASK).wrapping_add(1 << STATE_BITS) | RUNNING;
        // SeqCst, as `close`: either this sees `closing`, or `close` sees the run.
        slot.word.store(running, Ordering::SeqCst);
        let watch = Self { slot, running };
        if gate.closing.load(Ordering::SeqCst) {
            let _ = watch.finish(gate);
            return Err(EmbedError::library(HANDLE_DESTROYED));
        }
        if gate.creating.load(Ordering::Acquire) && gate.timed_out() {
            let _ = watch.finish(gate);
            return Err(gate.limit_error());
        }
        if gate.limit.is_some() && !WATCHDOG.thread_started.load(Ordering::Acquire) {
            start_thread();
        }
        Ok(watch)
    }

    /// Ends the run; the error that stopped it, if it was stopped.
    pub fn finish(self, gate: &RunGate) -> Result<(), EmbedError> {
        let generation = self.running & !STATE_MASK;
        let mut word = match self.slot.word.compare_exchange(
            self.running,
            generation | IDLE,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => return Ok(()),
            Err(word) => word,
        };
        // A stopper is terminating the run: wait until it set the reason, so
        // that its terminate can never reach this slot's next run.
        while word & STATE_MASK == STOPPING {
            std::thread::yield_now();
            word = self.slot.word.load(Ordering::Acquire);
        }
        match word & STATE_MASK {
            TIMED_OUT => {
                gate.timed_out.store(true, Ordering::Release);
                Err(gate.limit_error())
            }
            _ => Err(EmbedError::library(HANDLE_DESTROYED)),
        }
    }
}

/// Starts the watchdog thread of the current epoch if it is not running.
fn start_thread() {
    let mut state = lock();
    if state.thread.is_none() {
        // Without the thread the limit is not enforced; destroy still stops runs.
        state.thread = WatchThread::spawn(state.epoch);
        let started = state.thread.is_some();
        WATCHDOG.thread_started.store(started, Ordering::Release);
    }
}

/// The watchdog thread of `epoch`: stops the runs past their deadline, then
/// sleeps until the next deadline or one shortest limit (see the module
/// docs); ends when the epoch is over.
fn watch_runs(epoch: u64) {
    let mut state = lock();
    loop {
        if state.epoch != epoch {
            return;
        }
        let scanned = Instant::now();
        let now = nanos_since_start(scanned);
        let mut next = u64::MAX;
        for slot in &state.slots {
            let word = slot.word.load(Ordering::Acquire);
            if word & STATE_MASK != RUNNING {
                continue;
            }
            let deadline = slot.deadline.load(Ordering::Relaxed);
            if deadline <= now {
                slot.stop_if(word, Stopped::TimedOut);
            } else {
                next = next.min(deadline);
            }
        }
        let shortest = state.slots.iter().filter_map(|s| s.limit).min();
        let wait = match (next, shortest) {
            (u64::MAX, None) => None,
            _ => {
                let until_next = Duration::from_nanos(next.saturating_sub(now));
                Some(shortest.map_or(until_next, |s| s.min(until_next)))
            }
        };
        state = match wait {
            Some(wait) => {
                WATCHDOG
                    .wake
                    .wait_timeout(state, wait)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0
            }
            None => WATCHDOG
                .wake
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner),
        };
    }
}

/// The watchdog's lock, held across `fork()` so that the child does not inherit
/// it locked by a thread it does not have.
pub struct ForkLock(MutexGuard<'static, WatchState>);

pub fn lock_for_fork() -> ForkLock {
    ForkLock(lock())
}

impl ForkLock {
    /// In the child: the parent's runs and thread do not exist there.
    pub fn reset_in_child(mut self) {
        let slots = std::mem::take(&mut self.0.slots);
        // Their options belong to handles the child never runs nor frees.
        std::mem::forget(slots);
        // The thread is the parent's: never to be joined here.
        self.0.thread = None;
        WATCHDOG.thread_started.store(false, Ordering::Release);
        self.0.gates = 0;
    }
}
