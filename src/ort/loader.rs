//! Loading ONNX Runtime and building the one process-wide `ort` environment.
//!
//! The library is found at the first `create`: each of the candidates
//! [`crate::ort::search`] lists, in order, is checked by [`probe`] and the
//! first that passes is handed to `ort`.
//!
//! A failure is not remembered, so a later `create` tries again (for example
//! after the host set `ORT_DYLIB_PATH`). Success is kept for the life of the
//! process: `ort`'s environment cannot be rebuilt once dropped. [`in_use`]
//! tells which file and version it is.

use std::ffi::{CStr, CString};

use once_cell::sync::OnceCell;
use ort::environment::Environment;
use ort::logging::LogLevel;

use crate::error::CreateError;
use crate::error_strings::COULD_NOT_LOAD_ONNX_RUNTIME;
use crate::ort::logging;
use crate::ort::probe::probe;
use crate::ort::search::{candidates, Search};

/// The loaded ONNX Runtime and the environment over it.
struct Runtime {
    environment: Environment,
    /// The file as the dynamic loader mapped it, and its version string.
    path: CString,
    version: CString,
}

static RUNTIME: OnceCell<Runtime> = OnceCell::new();

/// The process-wide environment, loading ONNX Runtime on first use.
pub fn environment() -> Result<&'static Environment, CreateError> {
    RUNTIME
        .get_or_try_init(load)
        .map(|runtime| &runtime.environment)
}

/// The file and version of the ONNX Runtime in use; `None` before the first
/// successful load.
pub(crate) fn in_use() -> Option<(&'static CStr, &'static CStr)> {
    RUNTIME
        .get()
        .map(|runtime| (runtime.path.as_c_str(), runtime.version.as_c_str()))
}

fn load() -> Result<Runtime, CreateError> {
    let candidates = candidates(&Search::of_this_process());
    let mut tried = Vec::new();
    for candidate in &candidates {
        let loaded = probe(&candidate.path).and_then(|found| {
            let builder = ort::init_from(&candidate.path).map_err(|e| e.to_string())?;
            Ok((found, builder))
        });
        match loaded {
            Ok(((path, version), builder)) => {
                let environment = builder
                    .with_name("c_embed_runtime")
                    .with_telemetry(false)
                    .with_logger(logging::environment_logger())
                    .build()
                    .map_err(CreateError::onnx_runtime)?;
                // The custom logger is created at verbose level; warnings are what it keeps.
                environment.set_log_level(LogLevel::Warning);
                return Ok(Runtime {
                    environment,
                    path,
                    version,
                });
            }
            Err(reason) => tried.push(format!(
                "{} ({}): {reason}",
                candidate.path.display(),
                candidate.source
            )),
        }
    }
    let message = match tried.as_slice() {
        [only] => format!("{COULD_NOT_LOAD_ONNX_RUNTIME} from {only}"),
        _ => format!("{COULD_NOT_LOAD_ONNX_RUNTIME}; tried {}", tried.join("; ")),
    };
    Err(CreateError::library(message))
}
