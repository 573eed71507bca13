//! Opening one ONNX Runtime session on one device, with its own log callback.

use std::path::Path;
use std::sync::Arc;

use ort::environment::Environment;
use ort::logging::{LogLevel, LoggerFunction};
use ort::session::builder::{GraphOptimizationLevel, PrepackedWeights};
use ort::session::Session;

use crate::device::{self, Device};
use crate::error::CreateError;
use crate::fallback::FallbackMonitor;

/// How every session of this library is configured.
pub struct SessionSettings<'a> {
    pub model_path: &'a Path,
    /// ONNX Runtime intra-op threads (already clamped).
    pub intra_threads: usize,
    /// Tags this session's log messages (shown in ONNX Runtime's own log lines).
    pub log_id: &'a str,
    /// Shared by the sessions of one handle, so weights are prepacked once.
    pub prepacked: &'a PrepackedWeights,
}

/// Opens `settings.model_path` on `device`. Warning-level and higher messages of
/// this session (and only this session) go to `monitor`.
pub fn open(
    environment: &Environment,
    device: Device,
    settings: &SessionSettings<'_>,
    monitor: Arc<FallbackMonitor>,
) -> Result<Session, CreateError> {
    let provider = device::execution_provider(device)?;
    let logger: LoggerFunction = Arc::new(move |level, _category, _id, _location, message| {
        if level >= LogLevel::Warning {
            monitor.observe(message);
        }
    });
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
    if let Some(provider) = provider {
        builder = builder
            .with_execution_providers([provider])
            .map_err(ort_error)?;
    }
    builder
        .commit_from_file(settings.model_path)
        .map_err(ort_error)
}

/// ONNX Runtime's errors (of any payload type) as a create error.
fn ort_error(error: impl std::fmt::Display) -> CreateError {
    CreateError::onnx_runtime(error)
}
