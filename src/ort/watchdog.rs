//! The run-time limit and stopping runs: one process-wide thread (started on
//! the first run) that stops, through ONNX Runtime's run termination, every
//! run older than its handle's limit, and [`RunGate::close`], with which a
//! destroy stops the runs still in flight on its handle.
//!
//! ONNX Runtime checks the termination flag between the nodes it executes
//! (a `Loop` body's nodes included), so a run stops within one node's time.
//!
//! The thread ends (joined) when the last handle goes, so that no thread of
//! the library outlives its handles (a host may `dlclose` it then).

use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use ort::session::RunOptions;

use crate::env::RUN_TIMEOUT_ENV;
use crate::error::EmbedError;
use crate::error_strings::{HANDLE_DESTROYED, RUN_TIME_LIMIT};

/// The limit when [`RUN_TIMEOUT_ENV`] is not set (or not a number): far above
/// any run of a text model of the contract's sizes, short enough that a hung
/// model frees its thread and core.
pub const DEFAULT_RUN_TIMEOUT_MS: u64 = 60_000;

/// Why a run was stopped.
const RUNNING: u8 = 0;
const TIMED_OUT: u8 = 1;
const CLOSED: u8 = 2;

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
        lock(&WATCHDOG.state).gates += 1;
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
        self.closing.store(true, Ordering::SeqCst);
        let state = lock(&WATCHDOG.state);
        for run in state.runs.iter().filter(|r| r.gate_id == self.id) {
            run.stop(CLOSED);
        }
    }
}

impl Drop for RunGate {
    /// The last gate ends the watchdog thread.
    fn drop(&mut self) {
        let mut state = lock(&WATCHDOG.state);
        state.gates = state.gates.saturating_sub(1);
        if state.gates > 0 {
            return;
        }
        let Some(thread) = state.thread.take() else {
            return;
        };
        state.epoch += 1;
        drop(state);
        WATCHDOG.wake.notify_all();
        thread.join();
    }
}

/// A run in flight.
struct WatchedRun {
    serial: u64,
    gate_id: u64,
    deadline: Option<Instant>,
    options: Arc<RunOptions>,
    stopped: Arc<AtomicU8>,
}

impl WatchedRun {
    fn stop(&self, reason: u8) {
        if self
            .stopped
            .compare_exchange(RUNNING, reason, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            // A failure leaves the run going: nothing better can be done.
            let _ = self.options.terminate();
        }
    }
}

struct WatchState {
    runs: Vec<WatchedRun>,
    next_serial: u64,
    thread: Option<WatchThread>,
    /// The thread of this epoch runs; a thread of an older one ends.
    epoch: u64,
    /// Live gates (handles, and creates under way).
    gates: usize,
    /// Until when the watchdog thread sleeps (`None`: until woken): a run
    /// with a later deadline need not wake it.
    sleeps_until: Option<Instant>,
}

struct Watchdog {
    state: Mutex<WatchState>,
    wake: Condvar,
}

static WATCHDOG: Watchdog = Watchdog {
    state: Mutex::new(WatchState {
        runs: Vec::new(),
        next_serial: 0,
        thread: None,
        epoch: 0,
        gates: 0,
        sleeps_until: None,
    }),
    wake: Condvar::new(),
};

fn lock(state: &Mutex<WatchState>) -> MutexGuard<'_, WatchState> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What one caller's runs share with the watchdog: the run options through
/// which a run is stopped, and why it was. Made once per caller's buffers, so
/// that a run allocates nothing.
#[derive(Clone)]
pub struct RunControl {
    options: Arc<RunOptions>,
    stopped: Arc<AtomicU8>,
}

impl RunControl {
    pub fn new() -> Result<Self, EmbedError> {
        Ok(Self {
            options: Arc::new(RunOptions::new().map_err(EmbedError::onnx_runtime)?),
            stopped: Arc::new(AtomicU8::new(RUNNING)),
        })
    }

    /// The run options to pass to ONNX Runtime's `Run`.
    pub fn options(&self) -> &RunOptions {
        &self.options
    }
}

/// A registered run; [`Watch::finish`] unregisters it.
pub struct Watch {
    serial: u64,
    stopped: Arc<AtomicU8>,
}

impl Watch {
    /// Registers a run of `gate`'s handle made with `control` (no other run
    /// uses it meanwhile). Fails when the handle is closing, or in the create
    /// phase once a run timed out.
    pub fn start(gate: &RunGate, control: &RunControl) -> Result<Self, EmbedError> {
        // Only a run stopped earlier left the flag set (`stop` marks `stopped`
        // before it terminates, and a finished run can no longer be stopped).
        if control.stopped.load(Ordering::Acquire) != RUNNING {
            control
                .options
                .unterminate()
                .map_err(EmbedError::onnx_runtime)?;
            control.stopped.store(RUNNING, Ordering::Release);
        }
        let (options, stopped) = (&control.options, Arc::clone(&control.stopped));
        let mut state = lock(&WATCHDOG.state);
        // Checked under the lock `close` takes: a run either sees the close or is stopped by it.
        if gate.closing.load(Ordering::SeqCst) {
            return Err(EmbedError::library(HANDLE_DESTROYED));
        }
        if gate.creating.load(Ordering::Acquire) && gate.timed_out() {
            return Err(gate.limit_error());
        }
        state.next_serial += 1;
        let serial = state.next_serial;
        let deadline = gate.limit.map(|limit| Instant::now() + limit);
        state.runs.push(WatchedRun {
            serial,
            gate_id: gate.id,
            deadline,
            options: Arc::clone(options),
            stopped: Arc::clone(&stopped),
        });
        if let Some(deadline) = deadline {
            if state.thread.is_none() {
                // Without the thread the limit is not enforced; destroy still stops runs.
                state.thread = WatchThread::spawn(state.epoch);
            }
            if state.sleeps_until.is_none_or(|until| deadline < until) {
                state.sleeps_until = Some(deadline);
                WATCHDOG.wake.notify_all();
            }
        }
        Ok(Self { serial, stopped })
    }

    /// Unregisters the run; the error that stopped it, if it was stopped.
    pub fn finish(self, gate: &RunGate) -> Result<(), EmbedError> {
        lock(&WATCHDOG.state)
            .runs
            .retain(|run| run.serial != self.serial);
        match self.stopped.load(Ordering::Acquire) {
            RUNNING => Ok(()),
            TIMED_OUT => {
                gate.timed_out.store(true, Ordering::Release);
                Err(gate.limit_error())
            }
            _ => Err(EmbedError::library(HANDLE_DESTROYED)),
        }
    }
}

/// The watchdog thread, made with `pthread_create` rather than
/// `std::thread::spawn`: std registers a thread-local destructor in the
/// spawning thread (the caller's), which keeps the library loaded after a
/// `dlclose` for as long as that thread lives.
struct WatchThread(libc::pthread_t);

impl WatchThread {
    /// Starts the thread of `epoch`; `None` if the system refuses a thread.
    fn spawn(epoch: u64) -> Option<Self> {
        extern "C" fn run(epoch: *mut c_void) -> *mut c_void {
            // A panic cannot leave a thread started by pthread_create.
            let _ = std::panic::catch_unwind(|| watch_runs(epoch as usize as u64));
            std::ptr::null_mut()
        }
        let mut thread: libc::pthread_t = 0;
        // SAFETY: `run` is an `extern "C"` function that catches every panic;
        // its argument is a number, not a pointer; default attributes (NULL).
        let created = unsafe {
            libc::pthread_create(
                &mut thread,
                std::ptr::null(),
                run,
                epoch as usize as *mut c_void,
            )
        };
        (created == 0).then_some(Self(thread))
    }

    /// Waits for the thread to end (it was told to: its epoch is over).
    fn join(self) {
        // SAFETY: a thread this library started, joined once (`self` is consumed),
        // never detached; the result pointer may be NULL.
        unsafe { libc::pthread_join(self.0, std::ptr::null_mut()) };
    }
}

// SAFETY: a `pthread_t` may be joined from any thread.
unsafe impl Send for WatchThread {}

/// The watchdog thread of `epoch`: sleeps until the next deadline, stops the
/// runs past it, ends when the epoch is over.
fn watch_runs(epoch: u64) {
    let mut state = lock(&WATCHDOG.state);
    loop {
        if state.epoch != epoch {
            return;
        }
        let now = Instant::now();
        for run in state
            .runs
            .iter()
            .filter(|r| r.deadline.is_some_and(|d| d <= now))
        {
            run.stop(TIMED_OUT);
        }
        let next = state
            .runs
            .iter()
            .filter(|r| r.stopped.load(Ordering::Acquire) == RUNNING)
            .filter_map(|r| r.deadline)
            .min();
        state.sleeps_until = next;
        state = match next {
            Some(deadline) => {
                let wait = deadline.saturating_duration_since(Instant::now());
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
    ForkLock(lock(&WATCHDOG.state))
}

impl ForkLock {
    /// In the child: the parent's runs and thread do not exist there.
    pub fn reset_in_child(mut self) {
        let runs = std::mem::take(&mut self.0.runs);
        // Their options belong to handles the child never runs nor frees.
        std::mem::forget(runs);
        // The thread is the parent's: never to be joined here.
        self.0.thread = None;
        self.0.gates = 0;
        self.0.sleeps_until = None;
    }
}
