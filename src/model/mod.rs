//! What a model is and asks for: its file read once at create, the inputs it
//! takes and the output that is read (`plan`), and the create-time self-check
//! that decides how its rows may share a run (`execution_class`).

pub(crate) mod execution_class;
pub(crate) mod file;
pub(crate) mod plan;

pub use execution_class::{ExecutionClass, PROBE_TOLERANCE};
