//! The embedding runtime behind one handle: device selection at create, the
//! handle's session, and the calls that embed through it.
//!
//! **Threads.** A handle opens one session, whatever the number of callers:
//! ONNX Runtime documents concurrent `Run` calls on one session as safe, so
//! concurrent callers share one copy of the model. Each caller takes its own
//! pooled state from the handle's [`Callers`]. The session has `threads`
//! intra-op threads.
//!
//! **Batches on `threads` N > 1** on the CPU run up to N groups at once: the
//! caller's thread and N - 1 helper threads of the handle ([`Crew`]).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, TryLockError};

use ort::session::builder::PrepackedWeights;

use crate::env;
use crate::env::SERIAL_BATCHES_ENV;
use crate::error::{CreateError, EmbedError};
use crate::model::execution_class::SelfCheck;
use crate::model::file::ModelFile;
use crate::ort::device::Device;
use crate::ort::fallback::FallbackMonitor;
use crate::ort::loader;
use crate::ort::logging;
use crate::ort::session::{self, SessionSettings};
use crate::ort::watchdog::RunGate;
use crate::run::callers::Callers;
use crate::run::crew::Crew;
use crate::run::group::{Caller, Worker};
use crate::run::runner::{ExecutionPlan, ModelRunner};
use crate::tokens::{TokenInput, TokenRows};

/// `seq_len` is clamped to at least this.
pub const MIN_SEQ_LEN: i64 = 8;

/// Largest accepted `seq_len`: a million tokens, far beyond any text model, and
/// small enough that every buffer sized from it is an ordinary allocation.
pub const MAX_SEQ_LEN: i64 = 1 << 20;

/// `threads` is clamped to `1..=MAX_THREADS`.
pub const MAX_THREADS: i32 = 64;

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
    callers: Callers,
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
                    let serial = env::is_on(SERIAL_BATCHES_ENV);
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
                        callers: Callers::new(first),
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
        let mut caller = self.callers.acquire(&self.runner)?;
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
        logging::attribute(&self.fallback, || {
            self.runner.embed_rows(
                &mut caller,
                rows,
                out,
                self.out_dim,
                &after_run,
                crew.as_deref_mut(),
            )
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
        self.callers.open()
    }

    /// Whether ONNX Runtime allocates each output (its shape could not be predicted).
    pub fn ort_allocates_outputs(&self) -> bool {
        self.runner.ort_allocates()
    }

    /// Bytes held by the pooled buffers of every caller and helper.
    pub fn pool_bytes(&self) -> usize {
        self.sum_workers(Worker::pool_bytes)
    }

    /// ONNX Runtime runs made on this handle (create's warm-up runs included).
    pub fn runs(&self) -> usize {
        self.sum_workers(Worker::runs)
    }

    /// `f` summed over the workers of every caller and helper.
    fn sum_workers(&self, f: fn(&Worker) -> usize) -> usize {
        let crew = self.crew.as_ref().map_or(0, |c| {
            c.lock().unwrap_or_else(PoisonError::into_inner).sum(f)
        });
        self.callers.sum(|c| f(&c.worker)) + crew
    }

    /// Run shapes whose tensors the callers' buffers keep.
    pub fn cached_shapes(&self) -> usize {
        self.callers.sum(Caller::cached_shapes)
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

/// A unique tag per handle for ONNX Runtime's log lines.
fn next_log_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("c_embed_runtime#{}", NEXT.fetch_add(1, Ordering::Relaxed))
}
