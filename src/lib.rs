//! c_embed_runtime: a drop-in Rust replacement for the C++ `libc_embed_runtime.so`
//! text-embedding library, over ONNX Runtime. The layers, top down (each names
//! only those below it; `tests/source_rules.rs` checks):
//!
//! - [`ffi`]: the exported C ABI (thin: pointers, panics, error strings).
//! - `text` (feature `text`, on by default): `tokenizer.json` tokenizers and text in.
//! - [`run`]: one handle's runtime, its model runner (the embed hot path), each
//!   caller's workspace and the grouping of batches.
//! - [`ort`]: ONNX Runtime: loading it, sessions on devices, logging, CPU-fallback
//!   signals, the run-time limit, its values.
//! - [`model`]: the model file, its input plan and output, its execution class.
//! - below them all: `tokens` (the caller's token rows, as every layer sees
//!   them), `postprocess` (output validation, mean pooling, folding and
//!   normalisation), [`env`](mod@env) (every environment variable, in one
//!   place), `panics` (panics caught without a word to stderr), [`error`] and [`error_strings`] (errors and the contract's fixed
//!   strings, also written for the C and Python tests), and `alloc_counter`
//!   (feature `alloc-counter`, benchmark builds only: counts Rust heap
//!   allocations).
//!
//! Only the C ABI and what the integration tests need is public.

#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

#[cfg(feature = "alloc-counter")]
mod alloc_counter;
pub mod env;
pub mod error;
pub mod error_strings;
pub mod ffi;
pub mod model;
pub mod ort;
mod panics;
mod postprocess;
pub mod run;
#[cfg(feature = "text")]
mod text;
mod tokens;
