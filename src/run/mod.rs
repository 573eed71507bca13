//! Running a handle's model, top down: the handle's runtime (`runtime`: device
//! selection, its session, the calls), its callers' pooled state (`callers`),
//! the model runner and the embed hot path (`runner`), the groups of a call
//! and the helper threads that run some of them (`crew`), how a batch's rows
//! are grouped (`batching`), the shapes of a run (`shapes`), what create
//! learns from runs (`calibrate`), and one thread's storage and the tensors
//! over it (`workspace`).

pub(crate) mod batching;
pub(crate) mod calibrate;
pub(crate) mod callers;
pub(crate) mod crew;
pub(crate) mod group;
pub(crate) mod runner;
pub(crate) mod runtime;
pub(crate) mod shapes;
pub(crate) mod storage;
pub(crate) mod tensors;
pub(crate) mod workspace;

pub use crate::tokens::{TokenInput, TokenRows};
pub use runtime::{CreateOptions, EmbedRuntime, FallbackSignals};
pub use workspace::{KEEP_BYTES, MAX_CACHED_SHAPES};
