//! ONNX Runtime plumbing: finding and loading it once per process, opening a
//! session on a device, where its log messages go, CPU-fallback signals, and
//! the run-time limit. Nothing here knows about embeddings.
//!
//! Loading, by concept: `search` lists where to look (the search order),
//! `directory` orders the ONNX Runtime files of one directory (the one rule),
//! `probe` checks that a file is an ONNX Runtime of a supported version,
//! `loader` keeps the first that passes and the environment over it;
//! `dynamic_loader` asks the dynamic loader about the process,
//! `host_build` remembers the drop-in source's builds and `registered_dirs`
//! the directories a host named.

pub(crate) mod device;
pub(crate) mod directory;
pub(crate) mod dynamic_loader;
pub(crate) mod fallback;
pub(crate) mod host_build;
pub(crate) mod loader;
pub(crate) mod logging;
pub(crate) mod probe;
pub(crate) mod registered_dirs;
pub(crate) mod search;
pub(crate) mod session;
pub(crate) mod values;
pub(crate) mod watchdog;

pub use device::Device;
pub use loader::environment;
pub use watchdog::{RunControl, RunGate, Watch};
