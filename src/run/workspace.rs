//! One thread's pooled run state ([`Workspace`]): the storage every run reads
//! and writes with the tensors over it (a [`TensorStore`], which keeps the
//! views' invariant), the run options, and the one call into ONNX Runtime's
//! `Run`.
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
use ort::value::DynValue;
use ort::AsPointer;

use crate::error::EmbedError;
use crate::model::plan::OutputType;
use crate::ort::values;
pub(crate) use crate::ort::values::OutputData;
use crate::ort::watchdog::{RunControl, RunGate, Watch};
use crate::run::tensors::TensorStore;
pub use crate::run::tensors::{Element, OutputMode, MAX_CACHED_SHAPES};

/// Storage a workspace keeps between calls (inputs and output together).
/// Batches group no more rows than fit in half of it (storage grows up to
/// twice what a run needs): 15 rows of 128 tokens of a 1024-wide model, 32
/// (the most a run holds) of a 384-wide one.
pub const KEEP_BYTES: usize = 16 << 20;

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

/// One thread's pooled run state (see the module docs).
pub struct Workspace {
    tensors: TensorStore,
    /// Shape and element count of the output's values after the last run.
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

impl Workspace {
    /// A workspace for a model whose inputs have these element types and whose
    /// read output has type `output`.
    pub fn new(
        inputs: &[Element],
        output: OutputType,
        gate: Arc<RunGate>,
    ) -> Result<Self, EmbedError> {
        Ok(Self {
            tensors: TensorStore::new(inputs, output),
            output_shape: Vec::new(),
            output_elements: 0,
            run_control: RunControl::new(&gate)?,
            gate,
            stopped: false,
            clock: 0,
        })
    }

    /// Bytes held by the storages (not ONNX Runtime's).
    pub fn pool_bytes(&self) -> usize {
        self.tensors.bytes()
    }

    /// Run shapes whose tensors are kept.
    pub fn cached_shapes(&self) -> usize {
        self.tensors.cached_shapes()
    }

    /// Runs made through this workspace.
    pub fn runs(&self) -> u64 {
        self.clock
    }

    /// Makes input `index` hold at least `elements` values and returns them for
    /// writing (int64 inputs).
    pub fn input_i64(&mut self, index: usize, elements: usize) -> Result<&mut [i64], EmbedError> {
        self.tensors.input_i64(index, elements)
    }

    /// As [`Self::input_i64`], for float inputs.
    pub fn input_f32(&mut self, index: usize, elements: usize) -> Result<&mut [f32], EmbedError> {
        self.tensors.input_f32(index, elements)
    }

    /// Gives every storage back when the workspace holds more than `keep_bytes`.
    pub fn trim(&mut self, keep_bytes: usize) {
        if self.pool_bytes() > keep_bytes {
            self.tensors.release();
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
        (
            &self.output_shape,
            self.tensors.output(self.output_elements),
        )
    }

    /// Drops the tensors of the run shapes made for another output mode.
    pub fn keep_runs_of(&mut self, mode: OutputMode) {
        self.tensors.keep_views_of(mode);
    }

    /// Drops the tensors of every run shape (they are made again on use).
    pub fn clear_runs(&mut self) {
        self.tensors.clear_views();
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
        shape: (usize, usize),
        mode: OutputMode,
        shapes: &dyn Fn() -> (Vec<Vec<i64>>, Vec<i64>),
    ) -> Result<(), EmbedError> {
        self.output_elements = 0;
        self.stopped = false;
        self.clock += 1;
        let run = self.tensors.run(shape, mode, self.clock, shapes)?;
        let inputs = run.input_pointers.as_slice();
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
        // (`TensorStore` keeps them so while `run` borrows it); `output` is
        // null or a live tensor over the output storage, whose shape ONNX
        // Runtime checks before writing into it.
        let status = unsafe {
            (api.Run)(
                session.ptr().cast_mut(),
                self.run_control.options().ptr(),
                names.inputs.as_ptr(),
                inputs.as_ptr(),
                inputs.len(),
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
            self.output_elements = values::elements(&run.output_shape)?;
            self.output_shape.clone_from(&run.output_shape);
            return Ok(());
        }
        let output = NonNull::new(output).ok_or(EmbedError::library("no_output"))?;
        // SAFETY: a value ONNX Runtime's `Run` just returned for us to own and
        // release, allocated on the CPU (outputs are returned in CPU memory).
        let value = unsafe { DynValue::from_ptr(output, Some(&Allocator::default())) };
        let (shape, data) = values::output_data(&value)?;
        self.output_shape.clear();
        self.output_shape.extend_from_slice(shape);
        self.tensors.copy_output(&data)?;
        self.output_elements = data.len();
        Ok(())
    }
}
