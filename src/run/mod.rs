//! Running a handle's model: the handle's runtime (`runtime`: its session, the
//! callers' buffers, the batch helpers), the model runner and the embed hot path
//! (`runner`), one caller's storage and the tensors over it (`workspace`), and
//! how a batch's rows are grouped (`batching`).

pub(crate) mod batching;
pub(crate) mod runner;
pub(crate) mod runtime;
pub(crate) mod workspace;

pub use runner::MAX_CACHED_SHAPES;
pub use runtime::{CreateOptions, EmbedRuntime, FallbackSignals, TokenInput, TokenRows};
pub use workspace::KEEP_BYTES;
