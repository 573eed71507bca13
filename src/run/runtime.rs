//! The embedding runtime behind one handle: device selection at create, the
//! handle's session, and the calls that embed through it.
//!
//! **Threads.** A handle opens one session, whatever the number of callers:
//! ONNX Runtime documents concurrent `Run` calls on one session as safe, so
//! concurrent callers share one copy of the model. Each caller takes its own
//! pooled buffers ([`EmbedBuffers`]) from the handle's [`BufferPool`], which
//! grows on contention up to [`MAX_CALLERS`] (callers beyond that wait for a
//! free one). The session has `threads` intra-op threads.
//!
//! **Batches on `threads` N > 1** run up to N groups at once: the caller's
//! thread and N - 1 helper threads of the handle ([`Crew`], started on the
//! first batch that has two groups; persistent, so steady-state batches create
//! no thread). The caller loads each helper's buffers and pools its results,
//! so a helper only runs the session. One batch at a time uses the crew; a
//! second concurrent batch runs its groups on its own thread.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, TryLockError};
use std::thread::JoinHandle;

use once_cell::sync::OnceCell;
use ort::session::builder::PrepackedWeights;

use crate::env::SERIAL_BATCHES_ENV;
use crate::error::{CreateError, EmbedError};
use crate::model::execution_class::SelfCheck;
use crate::model::file::ModelFile;
use crate::ort::device::{gate_is_on, Device};
use crate::ort::fallback::FallbackMonitor;
use crate::ort::loader;
use crate::ort::logging;
use crate::ort::session::{self, SessionSettings};
use crate::ort::watchdog::RunGate;
use crate::run::batching::Grouper;
use crate::run::runner::{group_len, pool_rows, EmbedBuffers, ExecutionPlan, Helpers, ModelRunner};
pub use crate::run::runner::{TokenInput, TokenRows};

/// `seq_len` is clamped to at least this.
pub const MIN_SEQ_LEN: i64 = 8;

/// Largest accepted `seq_len`: a million tokens, far beyond any text model, and
/// small enough that every buffer sized from it is an ordinary allocation.
pub const MAX_SEQ_LEN: i64 = 1 << 20;

/// `threads` is clamped to `1..=MAX_THREADS`.
pub const MAX_THREADS: i32 = 64;

/// Most callers served at once by one handle (each with its own buffers);
/// more wait for a free one. More concurrent runs than cores gain nothing.
pub const MAX_CALLERS: usize = 16;

/// When CPU-fallback signals count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FallbackSignals {
    /// As the contract says: on every device but the CPU.
    #[default]
    ByDevice,
    /// On every device, the CPU included. For tests and diagnostics: it is how a
    /// CPU-only machine exercises the per-handle log path and strict mode.
    Always,
}

/// What `create` is asked for (values as the caller gave them; clamped here).
#[derive(Clone, Debug)]
pub struct CreateOptions<'a> {
    pub model_path: &'a Path,
    /// Devices to try in order (see `ort::device::plan`).
    pub devices: &'a [Device],
    pub seq_len: i64,
    pub out_dim: i32,
    pub threads: i32,
    pub strict: bool,
    pub fallback_signals: FallbackSignals,
}

/// One handle's runtime.
pub struct EmbedRuntime {
    seq_len: usize,
    out_dim: usize,
    device: Device,
    strict: bool,
    fallback: Arc<FallbackMonitor>,
    runner: Arc<ModelRunner>,
    buffers: BufferPool,
    /// Helper threads for batches (`threads` - 1 of them; none when 1).
    crew: Option<Mutex<Crew>>,
    /// What the self-check at create found (the class is in the runner's plan).
    self_check: SelfCheck,
}

impl EmbedRuntime {
    /// Loads ONNX Runtime if needed, then opens the model on the first device of
    /// `options.devices` that works.
    pub fn create(options: &CreateOptions<'_>) -> Result<Self, CreateError> {
        if options.seq_len > MAX_SEQ_LEN {
            return Err(CreateError::library(format!(
                "seq_len {} is above the maximum {MAX_SEQ_LEN}",
                options.seq_len
            )));
        }
        let seq_len = options.seq_len.max(MIN_SEQ_LEN) as usize;
        let out_dim = options.out_dim.max(1) as usize;
        let intra_threads = options.threads.clamp(1, MAX_THREADS) as usize;
        if options.model_path.as_os_str().is_empty() {
            return Err(CreateError::library(crate::error_strings::MODEL_PATH_EMPTY));
        }
        let model = ModelFile::read(options.model_path)?;

        let environment = loader::environment()?;
        let log_id = next_log_id();
        let prepacked = PrepackedWeights::new();
        let settings = SessionSettings {
            model: &model,
            intra_threads,
            log_id: &log_id,
            prepacked: &prepacked,
        };
        let mut failures = Vec::new();
        for &device in options.devices {
            let counts_signals =
                options.fallback_signals == FallbackSignals::Always || device != Device::Cpu;
            let monitor = Arc::new(FallbackMonitor::new(counts_signals));
            let (opened, messages) = logging::capture(&monitor, || {
                session::open(environment, device, &settings, Arc::clone(&monitor))
            });
            match opened {
                Ok(opened) => {
                    let gate = RunGate::from_env();
                    let (runner, first, self_check) = logging::attribute(&monitor, || {
                        ModelRunner::new(opened.session, seq_len, opened.static_shapes, gate)
                    })?;
                    session::release_freed_memory();
                    let serial = gate_is_on(std::env::var(SERIAL_BATCHES_ENV).ok().as_deref());
                    let helpers = match device {
                        Device::Cpu if !serial => intra_threads - 1,
                        _ => 0,
                    };
                    let runner = Arc::new(runner);
                    let crew =
                        (helpers > 0).then(|| Mutex::new(Crew::new(helpers, Arc::clone(&runner))));
                    return Ok(Self {
                        seq_len,
                        out_dim,
                        device,
                        strict: options.strict,
                        fallback: monitor,
                        runner,
                        buffers: BufferPool::new(first),
                        crew,
                        self_check,
                    });
                }
                Err(failure) => failures.push(failure.with_log(&messages)),
            }
        }
        Err(CreateError::join(failures))
    }

    /// Stops the runs in flight on this handle (their callers get an error)
    /// and refuses new ones: the handle is being destroyed.
    pub fn close(&self) {
        self.runner.close();
    }

    /// Embeds one sequence into `out` (`out_dim` values).
    pub fn embed(&self, tokens: &TokenInput<'_>, out: &mut [f32]) -> Result<(), EmbedError> {
        self.embed_rows(&TokenRows::single(tokens), out)
    }

    /// Embeds every row of `rows` into `out` (`out_dim` values per row).
    pub fn embed_rows(&self, rows: &TokenRows<'_>, out: &mut [f32]) -> Result<(), EmbedError> {
        debug_assert_eq!(rows.seq_len, self.seq_len);
        debug_assert_eq!(out.len(), rows.count() * self.out_dim);
        self.check_strict()?;
        let mut buffers = self.buffers.acquire(&self.runner)?;
        let after_run = || self.check_strict();
        // The crew serves one batch at a time; a batch that finds it busy runs alone.
        let mut crew = match (&self.crew, rows.count() > 1) {
            (Some(crew), true) => match crew.try_lock() {
                Ok(crew) => Some(crew),
                Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
                Err(TryLockError::WouldBlock) => None,
            },
            _ => None,
        };
        let helpers = crew.as_deref_mut().map(|crew| crew as &mut dyn Helpers);
        logging::attribute(&self.fallback, || {
            self.runner
                .embed_rows_with(&mut buffers, rows, out, self.out_dim, &after_run, helpers)
        })
    }

    pub fn seq_len(&self) -> usize {
        self.seq_len
    }

    pub fn out_dim(&self) -> usize {
        self.out_dim
    }

    /// The model's hidden size (last output dimension), 0 when its output is
    /// unusable (then every embed says why).
    pub fn hidden(&self) -> usize {
        self.runner.hidden()
    }

    pub fn device(&self) -> Device {
        self.device
    }

    /// How this handle runs rows (the self-check's class and the output layout).
    pub fn plan(&self) -> ExecutionPlan {
        self.runner.plan()
    }

    /// The self-check's measurements at create.
    pub fn self_check(&self) -> &SelfCheck {
        &self.self_check
    }

    pub fn fallback(&self) -> &FallbackMonitor {
        &self.fallback
    }

    /// Callers' buffers this handle holds (grown on contention).
    pub fn open_buffers(&self) -> usize {
        self.buffers.open()
    }

    /// Whether ONNX Runtime allocates each output (its shape could not be predicted).
    pub fn ort_allocates_outputs(&self) -> bool {
        self.runner.ort_allocates()
    }

    /// Bytes held by the pooled buffers of every caller and helper.
    pub fn pool_bytes(&self) -> usize {
        let crew = self.crew.as_ref().map_or(0, |c| {
            c.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .sum(EmbedBuffers::pool_bytes)
        });
        self.buffers.sum(EmbedBuffers::pool_bytes) + crew
    }

    /// ONNX Runtime runs made on this handle (create's warm-up runs included).
    pub fn runs(&self) -> usize {
        let crew = self.crew.as_ref().map_or(0, |c| {
            c.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .sum(EmbedBuffers::runs)
        });
        self.buffers.sum(EmbedBuffers::runs) + crew
    }

    /// Run shapes whose tensors the callers' buffers keep.
    pub fn cached_shapes(&self) -> usize {
        self.buffers.sum(EmbedBuffers::cached_shapes)
    }

    /// Strict mode: a CPU-fallback signal seen on this handle fails the call.
    /// (On the CPU device the monitor counts no signal, so strict has no effect.)
    fn check_strict(&self) -> Result<(), EmbedError> {
        if !self.strict || !self.fallback.detected() {
            return Ok(());
        }
        let detail = self.fallback.detail().to_string_lossy();
        Err(if detail.is_empty() {
            EmbedError::library(crate::error_strings::NPU_CPU_FALLBACK_DETECTED)
        } else {
            EmbedError::library_owned(format!(
                "{}:{detail}",
                crate::error_strings::NPU_CPU_FALLBACK_DETECTED
            ))
        })
    }
}

/// The callers' pooled buffers of one handle, made on demand (see the module docs).
struct BufferPool {
    /// Filled in order; slot 0 at create.
    slots: Box<[OnceCell<Mutex<EmbedBuffers>>]>,
    /// Spreads waiting callers over the buffers when all are busy.
    next: AtomicU64,
}

impl BufferPool {
    fn new(first: EmbedBuffers) -> Self {
        let slots: Box<[_]> = (0..MAX_CALLERS).map(|_| OnceCell::new()).collect();
        let _ = slots[0].set(Mutex::new(first));
        Self {
            slots,
            next: AtomicU64::new(0),
        }
    }

    fn open(&self) -> usize {
        self.slots.iter().take_while(|s| s.get().is_some()).count()
    }

    fn sum(&self, f: impl Fn(&EmbedBuffers) -> usize) -> usize {
        self.slots
            .iter()
            .map_while(OnceCell::get)
            .map(|m| f(&m.lock().unwrap_or_else(PoisonError::into_inner)))
            .sum()
    }

    /// Free buffers: the first idle ones, else new ones in the first empty
    /// slot, else the next ones in turn (waiting for them).
    fn acquire(&self, runner: &ModelRunner) -> Result<MutexGuard<'_, EmbedBuffers>, EmbedError> {
        for slot in &self.slots[..] {
            let buffers = match slot.get() {
                Some(buffers) => buffers,
                None => slot.get_or_try_init(|| runner.new_buffers().map(Mutex::new))?,
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

/// The helper threads of one handle (see the module docs).
struct Crew {
    helpers: Vec<Arc<Helper>>,
    threads: Vec<JoinHandle<()>>,
    /// Which group each helper is running, in the current window.
    pending: Vec<Option<usize>>,
    wanted: usize,
    runner: Arc<ModelRunner>,
}

/// One helper thread's mailbox and buffers.
struct Helper {
    state: Mutex<HelperState>,
    wake: Condvar,
}

struct HelperState {
    buffers: Option<EmbedBuffers>,
    /// A loaded run (rows, length) to do; `None` when idle.
    job: Option<(usize, usize)>,
    result: Result<(), EmbedError>,
    exit: bool,
}

impl Crew {
    fn new(wanted: usize, runner: Arc<ModelRunner>) -> Self {
        Self {
            helpers: Vec::new(),
            threads: Vec::new(),
            pending: Vec::new(),
            wanted,
            runner,
        }
    }

    fn sum(&self, f: impl Fn(&EmbedBuffers) -> usize) -> usize {
        self.helpers
            .iter()
            .map(|h| {
                let state = h.state.lock().unwrap_or_else(PoisonError::into_inner);
                state.buffers.as_ref().map_or(0, &f)
            })
            .sum()
    }

    /// Starts the helper threads on first use (the only allocations of the crew).
    fn start(&mut self) -> Result<(), EmbedError> {
        let runner = &self.runner;
        while self.helpers.len() < self.wanted {
            let helper = Arc::new(Helper {
                state: Mutex::new(HelperState {
                    buffers: Some(runner.new_buffers()?),
                    job: None,
                    result: Ok(()),
                    exit: false,
                }),
                wake: Condvar::new(),
            });
            let mine = Arc::clone(&helper);
            let runner = Arc::clone(runner);
            let thread = std::thread::Builder::new()
                .name("c_embed_helper".into())
                .spawn(move || mine.serve(&runner))
                .map_err(|_| EmbedError::library("cannot_start_thread"))?;
            self.helpers.push(helper);
            self.threads.push(thread);
            self.pending.push(None);
        }
        Ok(())
    }

    /// Collects helper `h`'s finished group into `out`; `wait`: waits for it.
    #[allow(clippy::too_many_arguments)]
    fn collect(
        &mut self,
        h: usize,
        wait: bool,
        runner: &ModelRunner,
        grouper: &Grouper,
        pooled: &mut Vec<f32>,
        window: &TokenRows<'_>,
        out: &mut [f32],
        out_dim: usize,
    ) -> Result<bool, EmbedError> {
        let Some(group) = self.pending[h] else {
            return Ok(true);
        };
        let helper = &self.helpers[h];
        let state = if wait {
            helper.state.lock().unwrap_or_else(PoisonError::into_inner)
        } else {
            match helper.state.try_lock() {
                Ok(state) => state,
                Err(TryLockError::Poisoned(p)) => p.into_inner(),
                Err(TryLockError::WouldBlock) => return Ok(false),
            }
        };
        let state = if wait {
            helper
                .wake
                .wait_while(state, |s| s.job.is_some())
                .unwrap_or_else(PoisonError::into_inner)
        } else if state.job.is_some() {
            return Ok(false);
        } else {
            state
        };
        self.pending[h] = None;
        let mut state = state;
        std::mem::replace(&mut state.result, Ok(()))?;
        let buffers = state
            .buffers
            .as_ref()
            .ok_or(EmbedError::library(crate::error_strings::HELPER_LOST))?;
        let (shape, data) = buffers.workspace.last_output();
        let group = grouper.group(group);
        let layout = runner.layout(shape, group.len())?;
        pool_rows(data, layout, window, group, pooled, out, out_dim)?;
        Ok(true)
    }
}

impl Helper {
    /// The helper thread: runs each loaded job until told to exit.
    fn serve(&self, runner: &ModelRunner) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            state = self
                .wake
                .wait_while(state, |s| s.job.is_none() && !s.exit)
                .unwrap_or_else(PoisonError::into_inner);
            if state.exit {
                return;
            }
            if let Some((rows, len)) = state.job {
                let result = match state.buffers.as_mut() {
                    Some(buffers) => {
                        let run = std::panic::AssertUnwindSafe(|| {
                            runner.run_loaded(&mut buffers.workspace, rows, len)
                        });
                        std::panic::catch_unwind(run).unwrap_or(Err(EmbedError::unknown()))
                    }
                    None => Err(EmbedError::library(crate::error_strings::HELPER_LOST)),
                };
                state.result = result;
                state.job = None;
                self.wake.notify_all();
            }
        }
    }
}

impl Helpers for Crew {
    fn run_window(
        &mut self,
        runner: &ModelRunner,
        buffers: &mut EmbedBuffers,
        window: &TokenRows<'_>,
        out: &mut [f32],
        out_dim: usize,
        after_run: &dyn Fn() -> Result<(), EmbedError>,
    ) -> Result<(), EmbedError> {
        self.start()?;
        let EmbedBuffers {
            workspace,
            grouper,
            lens,
            pooled,
        } = buffers;
        let groups = grouper.group_count();
        let mut next = 0;
        let mut failure = None;
        // Largest groups first would balance better; the plan is sorted by
        // length, so take them from the end.
        let take = |next: &mut usize| {
            *next += 1;
            groups - *next
        };
        while next < groups && failure.is_none() {
            for h in 0..self.helpers.len() {
                match self.collect(h, false, runner, grouper, pooled, window, out, out_dim) {
                    Ok(true) if next < groups => {
                        let g = take(&mut next);
                        let group = grouper.group(g);
                        let len = group_len(lens, group);
                        let helper = Arc::clone(&self.helpers[h]);
                        let mut state = helper.state.lock().unwrap_or_else(PoisonError::into_inner);
                        let loaded = match state.buffers.as_mut() {
                            Some(b) => runner.load(&mut b.workspace, window, group, lens, len),
                            None => Err(EmbedError::library(crate::error_strings::HELPER_LOST)),
                        };
                        if let Err(e) = loaded {
                            failure = Some(e);
                            break;
                        }
                        state.job = Some((group.len(), len));
                        helper.wake.notify_all();
                        self.pending[h] = Some(g);
                    }
                    Ok(_) => {}
                    Err(e) => failure = Some(e),
                }
            }
            if next < groups && failure.is_none() {
                let g = take(&mut next);
                let group = grouper.group(g);
                let len = group_len(lens, group);
                let ran = runner
                    .run_and_pool(workspace, pooled, window, group, lens, len, out, out_dim)
                    .and_then(|()| after_run());
                if let Err(e) = ran {
                    failure = Some(e);
                }
            }
        }
        // Every helper finishes before the call returns (their results are pooled).
        for h in 0..self.helpers.len() {
            if let Err(e) = self.collect(h, true, runner, grouper, pooled, window, out, out_dim) {
                failure.get_or_insert(e);
            }
        }
        match failure {
            Some(e) => Err(e),
            None => after_run(),
        }
    }
}

impl Drop for Crew {
    fn drop(&mut self) {
        for helper in &self.helpers {
            let mut state = helper.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.exit = true;
            helper.wake.notify_all();
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// A path for an error message, cut to a readable length (a caller may pass
/// a path of any size).
pub fn shown(path: &Path) -> String {
    const MAX_CHARS: usize = 240;
    let full = path.display().to_string();
    match full.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("{}... ({} bytes)", &full[..cut], path.as_os_str().len()),
        None => full,
    }
}

/// A unique tag per handle for ONNX Runtime's log lines.
fn next_log_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("c_embed_runtime#{}", NEXT.fetch_add(1, Ordering::Relaxed))
}
