//! ONNX Runtime plumbing: finding and loading it once per process, opening a
//! session on a device, where its log messages go, CPU-fallback signals, and
//! the run-time limit. Nothing here knows about embeddings.

pub(crate) mod device;
pub(crate) mod dynamic_loader;
pub(crate) mod fallback;
pub(crate) mod host_build;
pub(crate) mod loader;
pub(crate) mod logging;
pub(crate) mod session;
pub(crate) mod values;
pub(crate) mod watchdog;

pub use device::{Device, TEST_OPENVINO_OPTIONS_ENV};
pub use loader::{environment, ORT_PATH_ENV};
pub use watchdog::{RunControl, RunGate, Watch, RUN_TIMEOUT_ENV};
