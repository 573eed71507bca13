//! One workspace's storage and the ONNX Runtime tensors that view it
//! ([`TensorStore`]): every `unsafe` that relies on the views lives here.
//!
//! **The invariant, kept by the type.** A tensor of a run shape is a view of
//! a storage vector: it must never outlive it nor see it move. The storage is
//! private to [`TensorStore`], and the only code that can grow, move or free
//! it, `grow` and `release` of `crate::run::storage`, is `unsafe fn`, called
//! only by the methods of [`TensorStore`] right after they drop every view. Writing values into the storage through [`TensorStore::input_i64`]
//! and the like moves nothing.
//!
//! **Shapes.** Each input and the output have one storage vector; the tensors
//! of every run shape seen are views of their prefix, found by a hash lookup
//! on (rows, length, output mode). A new shape costs a few small ONNX Runtime
//! objects (about 2 KiB) and at most [`MAX_CACHED_SHAPES`] are kept (the
//! least recently used goes). Storage grows by doubling.

use std::collections::HashMap;

use ort::value::{DynValue, TensorElementType};
use ort::AsPointer;

use crate::error::EmbedError;
use crate::error_strings::UNSUPPORTED_INPUT_TYPE;
use crate::model::plan::OutputType;
use crate::ort::values::{self, tensor_over, OutputData};
use crate::run::storage::{OutputStorage, Storage};

/// Run shapes (rows, length) whose tensors are kept. A caller mixing more
/// shapes than this recreates the least recently used one (a few allocations).
/// 256 covers every length of the common `seq_len` 128 and 256.
pub const MAX_CACHED_SHAPES: usize = 256;

/// The element type of one input's storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Element {
    I64,
    F32,
}

/// Where a run's output goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OutputMode {
    /// Into the workspace's output storage, at a shape predicted before the run.
    Preallocated,
    /// ONNX Runtime allocates it; the values are copied into the output storage.
    OrtAllocated,
}

/// The input tensors' pointers of one shaped run, in model order.
pub(crate) struct ValuePointers(Vec<*const ort::sys::OrtValue>);

// SAFETY: the pointers are those of the `DynValue`s held by the same
// `ShapedRun` (ONNX Runtime heap objects that do not move when the run moves);
// they are passed to ONNX Runtime only while the run is borrowed.
unsafe impl Send for ValuePointers {}

impl ValuePointers {
    pub(crate) fn as_slice(&self) -> &[*const ort::sys::OrtValue] {
        &self.0
    }
}

/// The ONNX Runtime tensors of one run shape: views of the storages.
pub(crate) struct ShapedRun {
    key: ShapeKey,
    last_used: u64,
    _inputs: Vec<DynValue>,
    pub(crate) input_pointers: ValuePointers,
    /// A view of the output storage (`OutputMode::Preallocated` only).
    pub(crate) output: Option<DynValue>,
    pub(crate) output_shape: Vec<i64>,
}

/// What identifies a run shape's tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct ShapeKey {
    rows: usize,
    len: usize,
    mode: OutputMode,
}

/// The storage of one workspace and the tensors over it (see the module docs).
pub(crate) struct TensorStore {
    inputs: Vec<Storage>,
    output: OutputStorage,
    /// The views; dropped before any storage grows, moves or is freed.
    runs: Vec<ShapedRun>,
    /// Where each key's run is in `runs`.
    index: HashMap<ShapeKey, usize>,
}

impl Drop for TensorStore {
    fn drop(&mut self) {
        // The views go before the storage they point into, whatever the field order.
        self.clear_views();
    }
}

impl TensorStore {
    pub(crate) fn new(inputs: &[Element], output: OutputType) -> Self {
        Self {
            inputs: inputs
                .iter()
                .map(|element| match element {
                    Element::I64 => Storage::I64(Vec::new()),
                    Element::F32 => Storage::F32(Vec::new()),
                })
                .collect(),
            output: OutputStorage::new(output),
            runs: Vec::new(),
            index: HashMap::new(),
        }
    }

    /// Bytes held by the storages (not ONNX Runtime's).
    pub(crate) fn bytes(&self) -> usize {
        let inputs: usize = self.inputs.iter().map(Storage::bytes).sum();
        inputs + self.output.bytes()
    }

    /// Run shapes whose tensors are kept.
    pub(crate) fn cached_shapes(&self) -> usize {
        self.runs.len()
    }

    /// Drops the tensors of every run shape (they are made again on use).
    pub(crate) fn clear_views(&mut self) {
        self.runs.clear();
        self.index.clear();
    }

    /// Drops the tensors of the run shapes made for another output mode.
    pub(crate) fn keep_views_of(&mut self, mode: OutputMode) {
        self.runs.retain(|r| r.key.mode == mode);
        self.index.clear();
        for (at, run) in self.runs.iter().enumerate() {
            self.index.insert(run.key, at);
        }
    }

    /// Makes input `index` hold at least `elements` values and returns them for
    /// writing (int64 inputs).
    pub(crate) fn input_i64(
        &mut self,
        index: usize,
        elements: usize,
    ) -> Result<&mut [i64], EmbedError> {
        self.reserve_input(index, elements)?;
        match &mut self.inputs[index] {
            Storage::I64(v) => Ok(&mut v[..elements]),
            Storage::F32(_) => Err(EmbedError::library(UNSUPPORTED_INPUT_TYPE)),
        }
    }

    /// As [`Self::input_i64`], for float inputs.
    pub(crate) fn input_f32(
        &mut self,
        index: usize,
        elements: usize,
    ) -> Result<&mut [f32], EmbedError> {
        self.reserve_input(index, elements)?;
        match &mut self.inputs[index] {
            Storage::F32(v) => Ok(&mut v[..elements]),
            Storage::I64(_) => Err(EmbedError::library(UNSUPPORTED_INPUT_TYPE)),
        }
    }

    fn reserve_input(&mut self, index: usize, elements: usize) -> Result<(), EmbedError> {
        if self.inputs[index].len() < elements {
            self.clear_views();
            // SAFETY: no view is left (cleared just above).
            unsafe { self.inputs[index].grow(elements) }?;
        }
        Ok(())
    }

    fn reserve_output(&mut self, elements: usize) -> Result<(), EmbedError> {
        if self.output.len() < elements {
            self.clear_views();
            // SAFETY: no view is left (cleared just above).
            unsafe { self.output.grow(elements) }?;
        }
        Ok(())
    }

    /// Gives every storage back.
    pub(crate) fn release(&mut self) {
        self.clear_views();
        for storage in &mut self.inputs {
            // SAFETY: no view is left (cleared just above).
            unsafe { storage.release() };
        }
        // SAFETY: as above.
        unsafe { self.output.release() };
    }

    /// Copies an output ONNX Runtime allocated into the output storage.
    pub(crate) fn copy_output(&mut self, data: &OutputData<'_>) -> Result<(), EmbedError> {
        self.reserve_output(data.len())?;
        self.output.copy_from(data)
    }

    /// The first `elements` values of the output storage.
    pub(crate) fn output(&self, elements: usize) -> OutputData<'_> {
        self.output.data(elements)
    }

    /// The tensors of run shape (`rows`, `len`) in `mode`, made on first use
    /// from `shapes` (each input's shape and, when preallocated, the output's),
    /// stamped as used at `now`.
    pub(crate) fn run(
        &mut self,
        (rows, len): (usize, usize),
        mode: OutputMode,
        now: u64,
        shapes: &dyn Fn() -> (Vec<Vec<i64>>, Vec<i64>),
    ) -> Result<&mut ShapedRun, EmbedError> {
        let key = ShapeKey { rows, len, mode };
        let at = match self.index.get(&key) {
            Some(&at) => at,
            None => self.add_run(key, now, shapes)?,
        };
        let run = &mut self.runs[at];
        run.last_used = now;
        Ok(run)
    }

    /// Creates the tensors of `key`, evicting the least recently used shape
    /// when the cache is full.
    fn add_run(
        &mut self,
        key: ShapeKey,
        now: u64,
        shapes: &dyn Fn() -> (Vec<Vec<i64>>, Vec<i64>),
    ) -> Result<usize, EmbedError> {
        if self.runs.len() >= MAX_CACHED_SHAPES {
            self.evict_oldest();
        }
        let (input_shapes, mut output_shape) = shapes();
        if key.mode == OutputMode::OrtAllocated {
            output_shape.clear();
        }
        // Every storage is grown first: growing drops the views made so far.
        for (index, shape) in input_shapes.iter().enumerate() {
            self.reserve_input(index, values::elements(shape)?)?;
        }
        if key.mode == OutputMode::Preallocated {
            self.reserve_output(values::elements(&output_shape)?)?;
        }
        let mut inputs = Vec::with_capacity(input_shapes.len());
        for (storage, shape) in self.inputs.iter_mut().zip(&input_shapes) {
            // SAFETY: the storage holds the shape's elements (reserved above);
            // the view is kept in `self.runs`, which is cleared before any
            // storage grows or is released (`reserve_*`, `release`) and on drop.
            let view = unsafe {
                match storage {
                    Storage::I64(v) => tensor_over(v, shape, TensorElementType::Int64),
                    Storage::F32(v) => tensor_over(v, shape, TensorElementType::Float32),
                }
            };
            inputs.push(view.map_err(EmbedError::onnx_runtime)?);
        }
        let output = match key.mode {
            // SAFETY: as for the inputs; the output storage holds the shape's elements.
            OutputMode::Preallocated => Some(
                unsafe { self.output.tensor(&output_shape) }.map_err(EmbedError::onnx_runtime)?,
            ),
            OutputMode::OrtAllocated => None,
        };
        let input_pointers = ValuePointers(inputs.iter().map(|v| v.ptr()).collect());
        self.runs.push(ShapedRun {
            key,
            last_used: now,
            _inputs: inputs,
            input_pointers,
            output,
            output_shape,
        });
        let at = self.runs.len() - 1;
        self.index.insert(key, at);
        Ok(at)
    }

    fn evict_oldest(&mut self) {
        let Some(oldest) = (0..self.runs.len()).min_by_key(|&i| self.runs[i].last_used) else {
            return;
        };
        let gone = self.runs.swap_remove(oldest);
        self.index.remove(&gone.key);
        if let Some(moved) = self.runs.get(oldest) {
            self.index.insert(moved.key, oldest);
        }
    }
}
