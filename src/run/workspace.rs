//! One caller's pooled buffers ([`Workspace`]): the storage every run reads and
//! writes, the ONNX Runtime tensors that view it, the run options, and the one
//! call into ONNX Runtime's `Run`.
//!
//! **Why one type.** The tensors of a run shape are views of the storage
//! vectors: they must never outlive them nor see them move. Every `unsafe`
//! that relies on that lives here, and the storage is only grown, moved or
//! freed by the methods of this type, which drop the views first. Nothing
//! outside can reach the storage mutably.
//!
//! **Shapes.** Each input and the output have one storage vector; the tensors
//! of every run shape seen are views of their prefix. A new shape costs a few
//! small ONNX Runtime objects (about 2 KiB) and at most [`MAX_CACHED_SHAPES`]
//! are kept. Storage grows by doubling.
//!
//! **Memory follows the work.** After a call, a workspace holding more than
//! [`KEEP_BYTES`] gives all its storage back ([`Workspace::trim`]). Batches
//! never group more rows than fit in it, so only a run that needs more on its
//! own (one very long row, e.g. a mask-NULL call at a huge `seq_len`) pays for
//! its memory on each call, and no rare call keeps its peak for the life of the
//! handle.

use std::ffi::{c_char, CString};
use std::ptr::NonNull;
use std::sync::Arc;

use ort::memory::Allocator;
use ort::session::Session;
use ort::value::{DynValue, TensorElementType, ValueType};
use ort::AsPointer;

use crate::error::EmbedError;
use crate::error_strings::UNSUPPORTED_INPUT_TYPE;
use crate::model::plan::OutputType;
use crate::ort::watchdog::{RunControl, RunGate, Watch};
use crate::postprocess::{Bf16, F16};

/// Run shapes (rows, length) whose tensors are kept. A caller mixing more
/// shapes than this recreates the least recently used one (a few allocations).
/// 256 covers every length of the common `seq_len` 128 and 256.
pub const MAX_CACHED_SHAPES: usize = 256;

/// Storage a workspace keeps between calls (inputs and output together).
/// 16 MiB holds 32 rows of 128 tokens of a 1024-wide model.
pub const KEEP_BYTES: usize = 16 << 20;

/// The element type of one input's storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Element {
    I64,
    F32,
}

/// Where a run's output goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputMode {
    /// Into the workspace's output storage, at a shape predicted before the run.
    Preallocated,
    /// ONNX Runtime allocates it; the values are copied into the output storage.
    OrtAllocated,
}

/// The C strings a run passes to ONNX Runtime: input names, then the read output.
/// Immutable once made, shared by every workspace of a handle.
pub struct RunNames {
    _owned: Vec<CString>,
    inputs: Vec<*const c_char>,
    output: *const c_char,
}

// SAFETY: the pointers point into the heap buffers of `_owned`'s CStrings, which
// never change nor move while the `RunNames` lives, and are only read.
unsafe impl Send for RunNames {}
// SAFETY: as above: shared access only reads.
unsafe impl Sync for RunNames {}

impl RunNames {
    pub fn new<'a>(
        inputs: impl IntoIterator<Item = &'a str>,
        output: &str,
    ) -> Result<Self, EmbedError> {
        let c = |s: &str| CString::new(s).map_err(|_| EmbedError::library("name_with_nul"));
        let mut owned = inputs.into_iter().map(c).collect::<Result<Vec<_>, _>>()?;
        owned.push(c(output)?);
        let mut pointers: Vec<*const c_char> = owned.iter().map(|s| s.as_ptr()).collect();
        let output = pointers.pop().unwrap_or(std::ptr::null());
        Ok(Self {
            _owned: owned,
            inputs: pointers,
            output,
        })
    }
}

enum Storage {
    I64(Vec<i64>),
    F32(Vec<f32>),
}

impl Storage {
    fn len(&self) -> usize {
        match self {
            Self::I64(v) => v.len(),
            Self::F32(v) => v.len(),
        }
    }

    fn bytes(&self) -> usize {
        match self {
            Self::I64(v) => v.len() * 8,
            Self::F32(v) => v.len() * 4,
        }
    }

    fn grow_to(&mut self, elements: usize) -> Result<(), EmbedError> {
        match self {
            Self::I64(v) => grow(v, elements),
            Self::F32(v) => grow(v, elements),
        }
    }

    fn release(&mut self) {
        *self = match self {
            Self::I64(_) => Self::I64(Vec::new()),
            Self::F32(_) => Self::F32(Vec::new()),
        };
    }
}

/// The read output's storage, in its element type.
enum OutputStorage {
    F32(Vec<f32>),
    F16(Vec<F16>),
    Bf16(Vec<Bf16>),
}

impl OutputStorage {
    fn new(ty: OutputType) -> Self {
        match ty {
            OutputType::F32 => Self::F32(Vec::new()),
            OutputType::F16 => Self::F16(Vec::new()),
            OutputType::Bf16 => Self::Bf16(Vec::new()),
        }
    }

    fn len(&self) -> usize {
        match self {
            Self::F32(v) => v.len(),
            Self::F16(v) => v.len(),
            Self::Bf16(v) => v.len(),
        }
    }

    fn bytes(&self) -> usize {
        match self {
            Self::F32(v) => v.len() * 4,
            Self::F16(v) => v.len() * 2,
            Self::Bf16(v) => v.len() * 2,
        }
    }

    fn grow(&mut self, elements: usize) -> Result<(), EmbedError> {
        match self {
            Self::F32(v) => grow(v, elements),
            Self::F16(v) => grow(v, elements),
            Self::Bf16(v) => grow(v, elements),
        }
    }

    /// Gives the memory back (same element type).
    fn release(&mut self) {
        *self = match self {
            Self::F32(_) => Self::F32(Vec::new()),
            Self::F16(_) => Self::F16(Vec::new()),
            Self::Bf16(_) => Self::Bf16(Vec::new()),
        };
    }

    /// A tensor of `shape` over this storage.
    ///
    /// # Safety
    /// As [`tensor_over`].
    unsafe fn tensor(&mut self, shape: &[i64]) -> Result<DynValue, ort::Error> {
        // SAFETY: forwarded under this function's contract.
        unsafe {
            match self {
                Self::F32(v) => tensor_over(v, shape, TensorElementType::Float32),
                Self::F16(v) => tensor_over(v, shape, TensorElementType::Float16),
                Self::Bf16(v) => tensor_over(v, shape, TensorElementType::Bfloat16),
            }
        }
    }

    /// Copies `data` (of this storage's type) to the start of the storage.
    fn copy_from(&mut self, data: &OutputData<'_>) -> Result<(), EmbedError> {
        match (self, data) {
            (Self::F32(v), OutputData::F32(d)) => v[..d.len()].copy_from_slice(d),
            (Self::F16(v), OutputData::F16(d)) => v[..d.len()].copy_from_slice(d),
            (Self::Bf16(v), OutputData::Bf16(d)) => v[..d.len()].copy_from_slice(d),
            _ => return Err(EmbedError::library("output_not_float")),
        }
        Ok(())
    }

    /// The first `elements` values.
    fn data(&self, elements: usize) -> OutputData<'_> {
        match self {
            Self::F32(v) => OutputData::F32(&v[..elements]),
            Self::F16(v) => OutputData::F16(&v[..elements]),
            Self::Bf16(v) => OutputData::Bf16(&v[..elements]),
        }
    }
}

/// Output values to pool, in their element type.
#[derive(Clone, Copy)]
pub enum OutputData<'a> {
    F32(&'a [f32]),
    F16(&'a [F16]),
    Bf16(&'a [Bf16]),
}

impl OutputData<'_> {
    pub fn len(&self) -> usize {
        match self {
            Self::F32(d) => d.len(),
            Self::F16(d) => d.len(),
            Self::Bf16(d) => d.len(),
        }
    }
}

/// The input tensors' pointers of one shaped run, in model order.
struct ValuePointers(Vec<*const ort::sys::OrtValue>);

// SAFETY: the pointers are those of the `DynValue`s held by the same
// `ShapedRun` (ONNX Runtime heap objects that do not move when the run moves);
// they are passed to ONNX Runtime only while the run is borrowed.
unsafe impl Send for ValuePointers {}

/// The ONNX Runtime tensors of one run shape: views of the storages.
struct ShapedRun {
    rows: usize,
    len: usize,
    last_used: u64,
    _inputs: Vec<DynValue>,
    input_pointers: ValuePointers,
    /// A view of the output storage (`OutputMode::Preallocated` only).
    output: Option<DynValue>,
    output_shape: Vec<i64>,
}

/// One caller's pooled buffers (see the module docs).
pub struct Workspace {
    runs: Vec<ShapedRun>,
    inputs: Vec<Storage>,
    output: OutputStorage,
    /// Shape and element count of the values in `output` after the last run.
    output_shape: Vec<i64>,
    output_elements: usize,
    /// The run options, shared with the watchdog, which may stop a run through them.
    run_control: RunControl,
    /// The handle's run limit and destroy flag.
    gate: Arc<RunGate>,
    /// Whether the last run was stopped (by the limit or a destroy).
    stopped: bool,
    /// Counts runs, to find the least recently used shape.
    clock: u64,
}

impl Drop for Workspace {
    fn drop(&mut self) {
        // The views go before the storage they point into, whatever the field order.
        self.runs.clear();
    }
}

impl Workspace {
    /// A workspace for a model whose inputs have these element types and whose
    /// read output has type `output`.
    pub fn new(
        inputs: &[Element],
        output: OutputType,
        gate: Arc<RunGate>,
    ) -> Result<Self, EmbedError> {
        Ok(Self {
            runs: Vec::new(),
            inputs: inputs
                .iter()
                .map(|element| match element {
                    Element::I64 => Storage::I64(Vec::new()),
                    Element::F32 => Storage::F32(Vec::new()),
                })
                .collect(),
            output: OutputStorage::new(output),
            output_shape: Vec::new(),
            output_elements: 0,
            run_control: RunControl::new()?,
            gate,
            stopped: false,
            clock: 0,
        })
    }

    /// Bytes held by the storages (not ONNX Runtime's).
    pub fn pool_bytes(&self) -> usize {
        let inputs: usize = self.inputs.iter().map(Storage::bytes).sum();
        inputs + self.output.bytes()
    }

    /// Run shapes whose tensors are kept.
    pub fn cached_shapes(&self) -> usize {
        self.runs.len()
    }

    /// Runs made through this workspace.
    pub fn runs(&self) -> u64 {
        self.clock
    }

    /// Makes input `index` hold at least `elements` values and returns them for
    /// writing (int64 inputs).
    pub fn input_i64(&mut self, index: usize, elements: usize) -> Result<&mut [i64], EmbedError> {
        self.reserve_input(index, elements)?;
        match &mut self.inputs[index] {
            Storage::I64(v) => Ok(&mut v[..elements]),
            Storage::F32(_) => Err(EmbedError::library(UNSUPPORTED_INPUT_TYPE)),
        }
    }

    /// As [`Self::input_i64`], for float inputs.
    pub fn input_f32(&mut self, index: usize, elements: usize) -> Result<&mut [f32], EmbedError> {
        self.reserve_input(index, elements)?;
        match &mut self.inputs[index] {
            Storage::F32(v) => Ok(&mut v[..elements]),
            Storage::I64(_) => Err(EmbedError::library(UNSUPPORTED_INPUT_TYPE)),
        }
    }

    fn reserve_input(&mut self, index: usize, elements: usize) -> Result<(), EmbedError> {
        if self.inputs[index].len() < elements {
            // The kept tensors view the storage about to move.
            self.runs.clear();
            self.inputs[index].grow_to(elements)?;
        }
        Ok(())
    }

    fn reserve_output(&mut self, elements: usize) -> Result<(), EmbedError> {
        if self.output.len() < elements {
            self.runs.clear();
            self.output.grow(elements)?;
        }
        Ok(())
    }

    /// Gives every storage back when the workspace holds more than `keep_bytes`.
    pub fn trim(&mut self, keep_bytes: usize) {
        if self.pool_bytes() > keep_bytes {
            self.runs.clear();
            self.inputs.iter_mut().for_each(Storage::release);
            self.output.release();
            self.output_shape = Vec::new();
            self.output_elements = 0;
        }
    }

    /// Whether the last run was stopped by the run-time limit or a destroy
    /// (running it again would only wait again).
    pub fn last_run_stopped(&self) -> bool {
        self.stopped
    }

    /// The output's shape and values after the last successful run.
    pub fn last_output(&self) -> (&[i64], OutputData<'_>) {
        (&self.output_shape, self.output.data(self.output_elements))
    }

    /// Drops the tensors of the run shapes made for another output mode.
    pub fn keep_runs_of(&mut self, mode: OutputMode) {
        let preallocated = mode == OutputMode::Preallocated;
        self.runs.retain(|r| r.output.is_some() == preallocated);
    }

    /// Drops the tensors of every run shape (they are made again on use).
    pub fn clear_runs(&mut self) {
        self.runs.clear();
    }

    /// Runs `session` on run shape (`rows`, `len`), whose input values must
    /// already be written (through [`Self::input_i64`] / [`Self::input_f32`]);
    /// the output is then [`Self::last_output`].
    ///
    /// `shapes` gives each input's shape for this run and, in
    /// [`OutputMode::Preallocated`] mode, the output's predicted shape; it is
    /// called only for a shape not seen before.
    pub fn run(
        &mut self,
        session: &Session,
        names: &RunNames,
        (rows, len): (usize, usize),
        mode: OutputMode,
        shapes: &dyn Fn() -> (Vec<Vec<i64>>, Vec<i64>),
    ) -> Result<(), EmbedError> {
        self.output_elements = 0;
        self.stopped = false;
        let preallocated = mode == OutputMode::Preallocated;
        let index = match self
            .runs
            .iter()
            .position(|r| r.rows == rows && r.len == len && r.output.is_some() == preallocated)
        {
            Some(index) => index,
            None => self.add_run(rows, len, mode, shapes)?,
        };
        self.clock += 1;
        let run = &mut self.runs[index];
        run.last_used = self.clock;
        let mut output = match &mut run.output {
            Some(view) => view.ptr_mut(),
            None => std::ptr::null_mut(),
        };
        let watch = Watch::start(&self.gate, &self.run_control)?;
        let api = ort::api();
        // SAFETY: ONNX Runtime documents `Run` as safe to call concurrently on
        // one session (its threading documentation: "multiple threads can invoke
        // the Run() method on the same inference session object"); each caller
        // passes its own run options, input tensors and output tensor (this
        // workspace's). The session outlives the call (borrowed); the name
        // pointers are valid C strings (`RunNames`), one per input value; the
        // input pointers are live tensors over storage that holds their shapes
        // (`add_run`); `output` is null or a live tensor over the output
        // storage, whose shape ONNX Runtime checks before writing into it.
        let status = unsafe {
            (api.Run)(
                session.ptr().cast_mut(),
                self.run_control.options().ptr(),
                names.inputs.as_ptr(),
                run.input_pointers.0.as_ptr(),
                run.input_pointers.0.len(),
                &names.output,
                1,
                &mut output,
            )
        };
        // SAFETY: `status` was just returned by the API and is consumed once.
        let ran = unsafe { ort::Error::result_from_status(status) };
        let stopped = watch.finish(&self.gate);
        self.stopped = stopped.is_err();
        if let Err(error) = ran {
            // A run the watchdog or a destroy stopped says why, not ONNX Runtime's words.
            stopped?;
            return Err(EmbedError::onnx_runtime(error));
        }
        if run.output.is_some() {
            self.output_elements = run_elements(&run.output_shape)?;
            self.output_shape.clone_from(&run.output_shape);
            return Ok(());
        }
        let output = NonNull::new(output).ok_or(EmbedError::library("no_output"))?;
        // SAFETY: a value ONNX Runtime's `Run` just returned for us to own and
        // release, allocated on the CPU (outputs are returned in CPU memory).
        let value = unsafe { DynValue::from_ptr(output, Some(&Allocator::default())) };
        let (shape, data) = output_data(&value)?;
        self.output_shape.clear();
        self.output_shape.extend_from_slice(shape);
        self.reserve_output(data.len())?;
        self.output.copy_from(&data)?;
        self.output_elements = data.len();
        Ok(())
    }

    /// Creates the tensors of run shape (`rows`, `len`), evicting the least
    /// recently used shape when the cache is full.
    fn add_run(
        &mut self,
        rows: usize,
        len: usize,
        mode: OutputMode,
        shapes: &dyn Fn() -> (Vec<Vec<i64>>, Vec<i64>),
    ) -> Result<usize, EmbedError> {
        if self.runs.len() >= MAX_CACHED_SHAPES {
            if let Some(oldest) = (0..self.runs.len()).min_by_key(|&i| self.runs[i].last_used) {
                self.runs.swap_remove(oldest);
            }
        }
        let (input_shapes, mut output_shape) = shapes();
        if mode == OutputMode::OrtAllocated {
            output_shape.clear();
        }
        // Every storage is grown first: growing drops the views made so far.
        for (index, shape) in input_shapes.iter().enumerate() {
            self.reserve_input(index, run_elements(shape)?)?;
        }
        if mode == OutputMode::Preallocated {
            self.reserve_output(run_elements(&output_shape)?)?;
        }
        let mut values = Vec::with_capacity(input_shapes.len());
        for (storage, shape) in self.inputs.iter_mut().zip(&input_shapes) {
            // SAFETY: the storage holds the shape's elements (reserved above);
            // the view is kept in `self.runs`, which is cleared before any
            // storage moves (`reserve_input`, `reserve_output`, `trim`) and on drop.
            let view = unsafe {
                match storage {
                    Storage::I64(v) => tensor_over(v, shape, TensorElementType::Int64),
                    Storage::F32(v) => tensor_over(v, shape, TensorElementType::Float32),
                }
            };
            values.push(view.map_err(EmbedError::onnx_runtime)?);
        }
        let output = match mode {
            // SAFETY: as for the inputs; the output storage holds the shape's elements.
            OutputMode::Preallocated => Some(
                unsafe { self.output.tensor(&output_shape) }.map_err(EmbedError::onnx_runtime)?,
            ),
            OutputMode::OrtAllocated => None,
        };
        let input_pointers = ValuePointers(values.iter().map(|v| v.ptr()).collect());
        self.runs.push(ShapedRun {
            rows,
            len,
            last_used: self.clock,
            _inputs: values,
            input_pointers,
            output,
            output_shape,
        });
        Ok(self.runs.len() - 1)
    }
}

/// The element count of a shape, or an error for a negative or overflowing one.
pub fn run_elements(shape: &[i64]) -> Result<usize, EmbedError> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(usize::try_from(d).ok()?))
        .ok_or_else(|| EmbedError::library("run_too_large"))
}

/// Grows `storage` to at least `elements` (doubling, but never past twice what
/// is asked), reporting a failed allocation as an error instead of aborting.
fn grow<T: Copy + Default>(storage: &mut Vec<T>, elements: usize) -> Result<(), EmbedError> {
    let target = elements.max(
        storage
            .len()
            .saturating_mul(2)
            .min(elements.saturating_mul(2)),
    );
    storage
        .try_reserve_exact(target - storage.len())
        .map_err(|_| EmbedError::library("out_of_memory"))?;
    storage.resize(target, T::default());
    Ok(())
}

/// An ONNX Runtime tensor of `shape` over the first elements of `storage`,
/// owned as a value (so it can be a preallocated output) but not owning the
/// memory.
///
/// # Safety
/// `storage` holds at least the shape's element count, and the returned value
/// is dropped before `storage` is resized, moved or dropped.
/// `element` is the ONNX type of `T`'s values (`T` has its size and layout).
unsafe fn tensor_over<T: Copy>(
    storage: &mut [T],
    shape: &[i64],
    element: TensorElementType,
) -> Result<DynValue, ort::Error> {
    let allocator = Allocator::default();
    let bytes = std::mem::size_of_val(storage);
    let mut value = std::ptr::null_mut();
    let api = ort::api();
    // SAFETY: the memory info is the CPU allocator's, the data pointer and byte
    // count describe `storage`, and `shape` outlives the call; ONNX Runtime only
    // records the pointer (the caller keeps it valid, per this function's contract).
    let status = unsafe {
        (api.CreateTensorWithDataAsOrtValue)(
            allocator.memory_info().ptr(),
            storage.as_mut_ptr().cast(),
            bytes,
            shape.as_ptr(),
            shape.len(),
            element.into(),
            &mut value,
        )
    };
    // SAFETY: `status` was just returned by the API and is consumed once.
    unsafe { ort::Error::result_from_status(status) }?;
    let value = NonNull::new(value).ok_or_else(|| ort::Error::new("no tensor was created"))?;
    // SAFETY: `value` is a tensor just created on the CPU allocator's memory info;
    // releasing it does not free `storage` (ONNX Runtime does not own user data).
    Ok(unsafe { DynValue::from_ptr(value, Some(&allocator)) })
}

/// The read output's shape and values (f32, f16 or bf16), or the contract's
/// error for it.
fn output_data(output: &DynValue) -> Result<(&[i64], OutputData<'_>), EmbedError> {
    let ValueType::Tensor { ty, shape, .. } = output.dtype() else {
        return Err(EmbedError::library(crate::error_strings::OUTPUT_NOT_TENSOR));
    };
    let data = match OutputType::of(*ty) {
        Some(OutputType::F32) => {
            let (_, data) = output
                .try_extract_tensor::<f32>()
                .map_err(EmbedError::onnx_runtime)?;
            OutputData::F32(data)
        }
        // SAFETY: the tensor holds 16-bit values of that type; F16 and Bf16 are
        // `repr(transparent)` over u16.
        Some(OutputType::F16) => OutputData::F16(unsafe { raw_values(output, shape)? }),
        // SAFETY: as above.
        Some(OutputType::Bf16) => OutputData::Bf16(unsafe { raw_values(output, shape)? }),
        None => return Err(EmbedError::library("output_not_float")),
    };
    Ok((shape, data))
}

/// The values of a CPU tensor of `shape` as `T`.
///
/// # Safety
/// `output` is a tensor whose elements have the size and layout of `T`.
unsafe fn raw_values<'a, T>(output: &'a DynValue, shape: &[i64]) -> Result<&'a [T], EmbedError> {
    let count = run_elements(shape)?;
    if count == 0 {
        return Ok(&[]);
    }
    let api = ort::api();
    let mut data = std::ptr::null_mut();
    // SAFETY: `output` is a live tensor value; the call only writes `data`.
    let status = unsafe { (api.GetTensorMutableData)(output.ptr().cast_mut(), &mut data) };
    // SAFETY: `status` was just returned by the API and is consumed once.
    unsafe { ort::Error::result_from_status(status) }.map_err(EmbedError::onnx_runtime)?;
    if data.is_null() || data.align_offset(std::mem::align_of::<T>()) != 0 {
        return Err(EmbedError::library("output_not_float"));
    }
    // SAFETY: ONNX Runtime's CPU tensor of `count` elements of `T`'s layout (this
    // function's contract) lives as long as `output`, which the slice borrows.
    Ok(unsafe { std::slice::from_raw_parts(data.cast::<T>(), count) })
}
