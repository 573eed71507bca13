//! c_embed_runtime: a drop-in Rust replacement for the C++ `libc_embed_runtime.so`
//! text-embedding library, over ONNX Runtime.
//!
//! - [`ffi`]: the exported C ABI (thin: pointers, panics, error strings).
//! - [`runtime`]: one handle's runtime: its session, callers' buffers and helper threads.
//! - [`buffers`]: the handle's model runner, each caller's buffers and the embed hot path.
//! - [`workspace`]: one caller's storage, the tensors over it and the ONNX Runtime `Run` call.
//! - [`batching`]: ordering and grouping a batch's rows by a measured cost model.
//! - [`session`]: opening an ONNX Runtime session on a device.
//! - [`device`]: requested-device strings and execution providers.
//! - [`execution`]: the create-time self-check and how rows may share a run.
//! - [`model`]: model checks, input filling and output selection.
//! - [`model_file`]: reading the model file once at create.
//! - [`watchdog`]: the run-time limit, and stopping runs at destroy.
//! - [`pooling`]: mean pooling, folding and normalisation.
//! - [`fallback`]: CPU-fallback signal detection.
//! - [`error_strings`]: the contract's fixed error strings (also written for the C and Python tests).
//! - [`loader`]: finding and loading the ONNX Runtime library.
//! - `host_build`: the hosts' builds of the drop-in source, and the ONNX Runtime they link.
//! - `dynamic_loader`: the loaded objects and an object's own run path.
//! - [`logging`]: where ONNX Runtime's log messages go (never stderr unless asked).
//! - [`text`] (feature `text`, on by default): `tokenizer.json` tokenizers and text in.
//! - `alloc_counter` (feature `alloc-counter`, benchmark builds only): counts Rust heap allocations.

#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

#[cfg(feature = "alloc-counter")]
pub mod alloc_counter;
pub mod batching;
pub mod buffers;
pub mod device;
mod dynamic_loader;
pub mod error;
pub mod error_strings;
pub mod execution;
pub mod fallback;
pub mod ffi;
mod host_build;
pub mod loader;
pub mod logging;
pub mod model;
pub mod model_file;
pub mod pooling;
pub mod runtime;
pub mod session;
#[cfg(feature = "text")]
pub mod text;
pub mod watchdog;
pub mod workspace;
