//! Opening one ONNX Runtime session on one device, with its own log callback.

use std::sync::Arc;

use ort::environment::Environment;
use ort::ep;
use ort::logging::LogLevel;
use ort::session::builder::{GraphOptimizationLevel, PrepackedWeights};
use ort::session::Session;

use crate::error::CreateError;
use crate::model::file::ModelFile;
use crate::ort::device::{self, Device};
use crate::ort::fallback::FallbackMonitor;
use crate::ort::logging;

/// How every session of this library is configured.
pub struct SessionSettings<'a> {
    /// The model, read once at create (see [`crate::model::file`]).
    pub model: &'a ModelFile,
    /// ONNX Runtime intra-op threads (already clamped).
    pub intra_threads: usize,
    /// Tags this session's log messages (shown in ONNX Runtime's own log lines).
    pub log_id: &'a str,
    /// Shared by the sessions of one handle, so weights are prepacked once.
    pub prepacked: &'a PrepackedWeights,
}

/// A session and how it was compiled.
pub struct OpenedSession {
    pub session: Session,
    /// See [`device::DeviceSetup::static_shapes`].
    pub static_shapes: bool,
}

/// Opens `settings.model` on `device`. Warning-level and higher messages of
/// this session (and only this session) go to `monitor` (see [`logging`]).
pub fn open(
    environment: &Environment,
    device: Device,
    settings: &SessionSettings<'_>,
    monitor: Arc<FallbackMonitor>,
) -> Result<OpenedSession, CreateError> {
    let setup = device::setup(device)?;
    let logger = logging::session_logger(monitor);
    let mut builder = Session::builder(environment).map_err(ort_error)?;
    builder = builder
        .with_optimization_level(GraphOptimizationLevel::All)
        .map_err(ort_error)?;
    builder = builder
        .with_intra_threads(settings.intra_threads)
        .map_err(ort_error)?;
    builder = builder.with_log_id(settings.log_id).map_err(ort_error)?;
    builder = builder
        .with_log_level(LogLevel::Warning)
        .map_err(ort_error)?;
    builder = builder.with_logger(logger).map_err(ort_error)?;
    builder = builder
        .with_prepacked_weights(settings.prepacked)
        .map_err(ort_error)?;
    // Memory (see "The memory settings" below): no CPU arena, no memory patterns.
    builder = builder.with_memory_pattern(false).map_err(ort_error)?;
    if settings.intra_threads > 1 {
        // The intra-op pool is shared by concurrent runs (callers, a batch's
        // helper threads): idle pool threads sleep instead of spinning, which
        // would take the cores the other runs need (`make bench`, threads 2).
        builder = builder.with_intra_op_spinning(false).map_err(ort_error)?;
    }
    let cpu = ep::CPU::default().with_arena_allocator(false).build();
    let providers = match setup.provider {
        Some(provider) => vec![provider, cpu],
        None => vec![cpu],
    };
    builder = builder
        .with_execution_providers(providers)
        .map_err(ort_error)?;
    // From memory, ONNX Runtime reads external data from this folder (and, as
    // for a model opened from a file, never outside it). The option is a
    // UTF-8 string: a model in another directory is opened from its path.
    // ONNX Runtime before 1.22 ignores the option (1.20 looks for external
    // data in the current directory): a model that fails from memory is
    // opened from its path, which also gives the error of a bad model as a
    // model opened from a file has it.
    let session = match settings.model.directory.to_str() {
        Some(folder) => {
            builder = builder
                .with_config_entry(EXTERNAL_DATA_FOLDER, folder)
                .map_err(ort_error)?;
            builder
                .commit_from_memory(&settings.model.bytes)
                .or_else(|_| builder.commit_from_file(&settings.model.path))
        }
        None => builder.commit_from_file(&settings.model.path),
    }
    .map_err(ort_error)?;
    Ok(OpenedSession {
        session,
        static_shapes: setup.static_shapes,
    })
}

/// ONNX Runtime's session option for the folder of a model opened from memory.
const EXTERNAL_DATA_FOLDER: &str = "session.model_external_initializers_file_folder_path";

// The memory settings of every session, chosen from measurement (`make
// bench`'s RSS run; the figures are in docs/performance.md):
//
// - **CPU memory arena off.** With the arena, ONNX Runtime keeps the largest
//   intermediate buffers a run ever needed for the life of the session, and
//   glibc keeps the pages of the rest; without it, a run's intermediates are
//   freed when it ends (less RSS per handle, no measurable latency cost: the
//   buffers of one run are a few large allocations, which glibc serves from
//   `mmap` or its free lists).
// - **Intra-op spinning off** when a session has more than one intra-op thread
//   (see `open`).
// - **Memory patterns off.** A pattern is recorded per input shape; with a
//   length per sentence and batch sizes that vary, they are rarely reused and
//   only add memory.
// - **Freed memory returned after create** (`release_freed_memory`).

/// Gives the C heap's free pages back to the system. ONNX Runtime frees the
/// model's protobuf and its temporary buffers when a session is initialised,
/// but glibc keeps those pages (a large part of what a new session adds).
pub fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` takes no pointer and is thread-safe (it locks each
    // arena in turn); 0 keeps no padding at the top of the heap.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// ONNX Runtime's errors (of any payload type) as a create error.
fn ort_error(error: impl std::fmt::Display) -> CreateError {
    CreateError::onnx_runtime(error)
}
