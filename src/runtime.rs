//! The embedding runtime behind one handle: device selection at create, the
//! handle's sessions, and the calls that embed through them.
//!
//! **Threads.** A handle holds a small pool of sessions on its device, each
//! with its own pooled buffers ([`EmbedBuffers`]): a call takes a free session,
//! and opens another (up to [`SessionPool`]'s size) when all are busy, so two
//! threads embedding on one handle both make progress. Measured on the 2-core
//! machine of this project (all-MiniLM-L6-v2 int8, real sentences), two
//! sessions with 1 intra-op thread each served two caller threads about 13%
//! faster than one session with 2 intra-op threads shared by both (85 vs 75
//! embeds/s), while one caller alone is served best by `threads` intra-op
//! threads in one session. So the pool grows only on contention, sessions
//! share their prepacked weights, and its size is the number of cores divided
//! by `threads` (at least 1, at most 4), on the CPU only: an accelerator runs
//! one model at a time anyway, and a second copy would cost device memory.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};

use once_cell::sync::OnceCell;
use ort::session::builder::PrepackedWeights;

use crate::buffers::{EmbedBuffers, ExecutionPlan};
pub use crate::buffers::{TokenInput, TokenRows};
use crate::device::Device;
use crate::error::{CreateError, EmbedError};
use crate::execution::SelfCheck;
use crate::fallback::FallbackMonitor;
use crate::loader;
use crate::session::{self, SessionSettings};

/// `seq_len` is clamped to at least this.
pub const MIN_SEQ_LEN: i64 = 8;

/// Largest accepted `seq_len`: a million tokens, far beyond any text model, and
/// small enough that every buffer sized from it is an ordinary allocation.
pub const MAX_SEQ_LEN: i64 = 1 << 20;

/// `threads` is clamped to `1..=MAX_THREADS`.
pub const MAX_THREADS: i32 = 64;

/// Most sessions one handle opens.
pub const MAX_SESSIONS: usize = 4;

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
    /// Devices to try in order (see [`crate::device::plan`]).
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
    hidden: usize,
    device: Device,
    strict: bool,
    fallback: Arc<FallbackMonitor>,
    sessions: SessionPool,
    /// What the self-check at create found (the class is in `sessions`' plan).
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
        check_model_path(options.model_path)?;

        let environment = loader::environment()?;
        let log_id = next_log_id();
        let prepacked = PrepackedWeights::new();
        let settings = SessionSettings {
            model_path: options.model_path,
            intra_threads,
            log_id: &log_id,
            prepacked: &prepacked,
        };
        let mut failures = Vec::new();
        for &device in options.devices {
            let counts_signals =
                options.fallback_signals == FallbackSignals::Always || device != Device::Cpu;
            let monitor = Arc::new(FallbackMonitor::new(counts_signals));
            match session::open(environment, device, &settings, Arc::clone(&monitor)) {
                Ok(session) => {
                    let (buffers, self_check) = EmbedBuffers::new(session, seq_len)?;
                    let hidden = buffers.hidden().unwrap_or(0);
                    let plan = buffers.plan();
                    let recipe = SessionRecipe {
                        model_path: options.model_path.to_path_buf(),
                        device,
                        intra_threads,
                        log_id,
                        prepacked,
                        monitor: Arc::clone(&monitor),
                        seq_len,
                        plan,
                    };
                    return Ok(Self {
                        seq_len,
                        out_dim,
                        hidden,
                        device,
                        strict: options.strict,
                        fallback: monitor,
                        sessions: SessionPool::new(buffers, recipe),
                        self_check,
                    });
                }
                Err(failure) => failures.push(failure),
            }
        }
        Err(CreateError::join(failures))
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
        let mut buffers = self.sessions.acquire();
        buffers.embed_rows(rows, out, self.out_dim, &|| self.check_strict())
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
        self.hidden
    }

    pub fn device(&self) -> Device {
        self.device
    }

    /// How this handle runs rows (the self-check's class and the output layout).
    pub fn plan(&self) -> ExecutionPlan {
        self.sessions.recipe.plan
    }

    /// The self-check's measurements at create.
    pub fn self_check(&self) -> &SelfCheck {
        &self.self_check
    }

    pub fn fallback(&self) -> &FallbackMonitor {
        &self.fallback
    }

    /// Sessions open on this handle.
    pub fn open_sessions(&self) -> usize {
        self.sessions.open()
    }

    /// Bytes held by the pooled buffers of every session.
    pub fn pool_bytes(&self) -> usize {
        self.sessions.sum(|b| b.pool_bytes())
    }

    /// Run shapes whose tensors the sessions keep.
    pub fn cached_shapes(&self) -> usize {
        self.sessions.sum(|b| b.cached_shapes())
    }

    /// Strict mode: a CPU-fallback signal seen on this handle fails the call.
    /// (On the CPU device the monitor counts no signal, so strict has no effect.)
    fn check_strict(&self) -> Result<(), EmbedError> {
        if !self.strict || !self.fallback.detected() {
            return Ok(());
        }
        let detail = self.fallback.detail().to_string_lossy();
        Err(if detail.is_empty() {
            EmbedError::library("npu_cpu_fallback_detected")
        } else {
            EmbedError::library_owned(format!("npu_cpu_fallback_detected:{detail}"))
        })
    }
}

/// What opening one more session of a handle takes.
struct SessionRecipe {
    model_path: PathBuf,
    device: Device,
    intra_threads: usize,
    log_id: String,
    prepacked: PrepackedWeights,
    monitor: Arc<FallbackMonitor>,
    seq_len: usize,
    /// Found by the first session's self-check; later sessions run the same way.
    plan: ExecutionPlan,
}

/// The sessions of one handle, opened on demand (see the module docs).
struct SessionPool {
    /// Filled in order; slot 0 at create.
    slots: Box<[OnceCell<Mutex<EmbedBuffers>>]>,
    /// Spreads waiting callers over the sessions when all are busy.
    next: AtomicUsize,
    recipe: SessionRecipe,
    /// One thread opens a session at a time.
    opening: Mutex<()>,
    /// A session failed to open: stop trying, wait for the open ones.
    cannot_grow: AtomicBool,
}

impl SessionPool {
    fn new(first: EmbedBuffers, recipe: SessionRecipe) -> Self {
        let size = match recipe.device {
            Device::Cpu => std::thread::available_parallelism()
                .map_or(1, |n| n.get() / recipe.intra_threads)
                .clamp(1, MAX_SESSIONS),
            _ => 1,
        };
        let slots: Box<[_]> = (0..size).map(|_| OnceCell::new()).collect();
        let _ = slots[0].set(Mutex::new(first));
        Self {
            slots,
            next: AtomicUsize::new(0),
            recipe,
            opening: Mutex::new(()),
            cannot_grow: AtomicBool::new(false),
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

    /// A free session's buffers: the first idle one, else a newly opened one,
    /// else the next one in turn (waiting for it).
    fn acquire(&self) -> MutexGuard<'_, EmbedBuffers> {
        for slot in self.slots.iter().map_while(OnceCell::get) {
            match slot.try_lock() {
                Ok(buffers) => return buffers,
                Err(TryLockError::Poisoned(p)) => return p.into_inner(),
                Err(TryLockError::WouldBlock) => {}
            }
        }
        if let Some(buffers) = self.grow() {
            return buffers;
        }
        let open = self.open();
        let index = self.next.fetch_add(1, Ordering::Relaxed) % open;
        let slot = self.slots[index].get().expect("slots fill in order");
        slot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Opens the next session if the pool has room and none is being opened.
    fn grow(&self) -> Option<MutexGuard<'_, EmbedBuffers>> {
        if self.cannot_grow.load(Ordering::Relaxed) {
            return None;
        }
        let slot = self.slots.iter().find(|s| s.get().is_none())?;
        let _opening = self.opening.try_lock().ok()?;
        let slot = slot.get_or_try_init(|| self.open_session()).ok();
        if slot.is_none() {
            self.cannot_grow.store(true, Ordering::Relaxed);
        }
        Some(slot?.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn open_session(&self) -> Result<Mutex<EmbedBuffers>, CreateError> {
        let recipe = &self.recipe;
        let settings = SessionSettings {
            model_path: &recipe.model_path,
            intra_threads: recipe.intra_threads,
            log_id: &recipe.log_id,
            prepacked: &recipe.prepacked,
        };
        let environment = loader::environment()?;
        let session = session::open(
            environment,
            recipe.device,
            &settings,
            Arc::clone(&recipe.monitor),
        )?;
        Ok(Mutex::new(EmbedBuffers::with_plan(
            session,
            recipe.seq_len,
            &recipe.plan,
        )?))
    }
}

fn check_model_path(path: &Path) -> Result<(), CreateError> {
    if path.as_os_str().is_empty() {
        return Err(CreateError::library("model path is empty"));
    }
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => Err(CreateError::library(format!(
            "model path is a directory: {}",
            shown(path)
        ))),
        Ok(_) => Ok(()),
        Err(e) => Err(CreateError::library(format!(
            "cannot read model file {}: {e}",
            shown(path)
        ))),
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
