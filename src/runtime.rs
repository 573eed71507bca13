//! The embedding runtime behind one handle: device selection at create, the
//! pooled buffers, and the embed hot path ([`EmbedBuffers::embed`]).
//!
//! Everything an embed call touches is created at `create` and reused: the input
//! tensors (refilled in place), the output tensor (preallocated, written by ONNX
//! Runtime), and the pooling scratch. In steady state an embed call makes no heap
//! allocation of its own; ONNX Runtime's `Run` allocates internally.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use ort::memory::Allocator;
use ort::session::{HasSelectedOutputs, OutputSelector, RunOptions, Session, SessionInputValue};
use ort::value::{DynValue, Tensor, TensorElementType};

use crate::device::Device;
use crate::error::{CreateError, EmbedError};
use crate::fallback::FallbackMonitor;
use crate::loader;
use crate::model::{self, InputFill, InputSpec};
use crate::pooling::{self, OutputLayout};
use crate::session::{self, SessionSettings};

/// `seq_len` is clamped to at least this.
pub const MIN_SEQ_LEN: i64 = 8;

/// When CPU-fallback signals count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FallbackSignals {
    /// As the contract says: on every device but the CPU.
    #[default]
    ByDevice,
    /// On every device, the CPU included. For tests and diagnostics: it is how a
    /// CPU-only machine exercises the per-handle log path and strict mode.
    Always,
}

/// What `create` is asked for (values as the caller gave them; clamped here).
#[derive(Clone, Debug)]
pub struct CreateOptions<'a> {
    pub model_path: &'a Path,
    /// Devices to try in order (see [`crate::device::plan`]).
    pub devices: &'a [Device],
    pub seq_len: i64,
    pub out_dim: i32,
    pub threads: i32,
    pub strict: bool,
    pub fallback_signals: FallbackSignals,
}

/// The caller's token arrays for one embed; each holds exactly `seq_len` values.
#[derive(Clone, Copy, Debug)]
pub struct TokenInput<'a> {
    pub ids: &'a [i64],
    /// `None`: every position is valid.
    pub mask: Option<&'a [i64]>,
    /// `None`: all zeros.
    pub token_types: Option<&'a [i64]>,
}

/// One handle's runtime.
pub struct EmbedRuntime {
    seq_len: usize,
    out_dim: usize,
    device: Device,
    strict: bool,
    fallback: Arc<FallbackMonitor>,
    /// `Session::run` needs `&mut`: one run at a time per handle.
    buffers: Mutex<EmbedBuffers>,
}

impl EmbedRuntime {
    /// Loads ONNX Runtime if needed, then opens the model on the first device of
    /// `options.devices` that works.
    pub fn create(options: &CreateOptions<'_>) -> Result<Self, CreateError> {
        let seq_len = options.seq_len.max(MIN_SEQ_LEN);
        let seq_len = usize::try_from(seq_len).map_err(|_| {
            CreateError::library(format!("seq_len {seq_len} does not fit in memory"))
        })?;
        let out_dim = options.out_dim.max(1) as usize;
        let intra_threads = options.threads.max(1) as usize;
        check_model_path(options.model_path)?;

        let environment = loader::environment()?;
        let log_id = next_log_id();
        let settings = SessionSettings {
            model_path: options.model_path,
            intra_threads,
            log_id: &log_id,
        };
        let mut failures = Vec::new();
        for &device in options.devices {
            let counts_signals =
                options.fallback_signals == FallbackSignals::Always || device != Device::Cpu;
            let monitor = Arc::new(FallbackMonitor::new(counts_signals));
            match session::open(environment, device, &settings, Arc::clone(&monitor)) {
                Ok(session) => {
                    let buffers = EmbedBuffers::new(session, seq_len)?;
                    return Ok(Self {
                        seq_len,
                        out_dim,
                        device,
                        strict: options.strict,
                        fallback: monitor,
                        buffers: Mutex::new(buffers),
                    });
                }
                Err(failure) => failures.push(failure),
            }
        }
        Err(CreateError::join(failures))
    }

    /// Embeds one sequence into `out` (`out_dim` values).
    pub fn embed(&self, tokens: &TokenInput<'_>, out: &mut [f32]) -> Result<(), EmbedError> {
        debug_assert_eq!(out.len(), self.out_dim);
        self.check_strict()?;
        let mut buffers = self.buffers.lock().unwrap_or_else(PoisonError::into_inner);
        buffers.embed(tokens, out, || self.check_strict())
    }

    pub fn seq_len(&self) -> usize {
        self.seq_len
    }

    pub fn out_dim(&self) -> usize {
        self.out_dim
    }

    pub fn device(&self) -> Device {
        self.device
    }

    pub fn fallback(&self) -> &FallbackMonitor {
        &self.fallback
    }

    /// Strict mode: a CPU-fallback signal seen on this handle fails the call.
    /// (On the CPU device the monitor counts no signal, so strict has no effect.)
    fn check_strict(&self) -> Result<(), EmbedError> {
        if !self.strict || !self.fallback.detected() {
            return Ok(());
        }
        let detail = self.fallback.detail().to_string_lossy();
        Err(if detail.is_empty() {
            EmbedError::library("npu_cpu_fallback_detected")
        } else {
            EmbedError::library_owned(format!("npu_cpu_fallback_detected:{detail}"))
        })
    }
}

fn check_model_path(path: &Path) -> Result<(), CreateError> {
    if path.as_os_str().is_empty() {
        return Err(CreateError::library("model path is empty"));
    }
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => Err(CreateError::library(format!(
            "model path is a directory: {}",
            path.display()
        ))),
        Ok(_) => Ok(()),
        Err(e) => Err(CreateError::library(format!(
            "cannot read model file {}: {e}",
            path.display()
        ))),
    }
}

/// A unique tag per handle for ONNX Runtime's log lines.
fn next_log_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("c_embed_runtime#{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The pooled buffers of one handle: its session and everything a run reads or
/// writes, created once and reused by every embed.
pub struct EmbedBuffers {
    session: Session,
    seq_len: usize,
    /// One tensor per model input, in model order, refilled in place.
    inputs: Vec<SessionInputValue<'static>>,
    /// How each of `inputs` is filled.
    fills: Vec<InputFill>,
    /// Why this model's inputs cannot be fed (reported by every embed).
    input_error: Option<EmbedError>,
    /// Selects the output that is read and, once its shape is known, holds the
    /// preallocated tensor ONNX Runtime writes it into.
    run_options: RunOptions<HasSelectedOutputs>,
    /// Pooling scratch: `hidden` values.
    pooled: Vec<f32>,
}

impl EmbedBuffers {
    fn new(session: Session, seq_len: usize) -> Result<Self, CreateError> {
        model::check_model(session.inputs(), session.outputs())?;
        let output_index = model::select_output(session.outputs())?;
        let output_name = session.outputs()[output_index].name().to_owned();
        let (inputs, fills, input_error) = match model::plan_inputs(session.inputs(), seq_len) {
            Ok(specs) => {
                let inputs = specs.iter().map(create_input).collect::<Result<_, _>>()?;
                (inputs, specs.iter().map(|s| s.fill).collect(), None)
            }
            Err(e) => (Vec::new(), Vec::new(), Some(e)),
        };
        let mut buffers = Self {
            session,
            seq_len,
            inputs,
            fills,
            input_error,
            run_options: select_output(&output_name, None)?,
            pooled: Vec::new(),
        };
        buffers.preallocate_output(&output_name)?;
        Ok(buffers)
    }

    /// Runs the model once on the inputs as created (all zeros: padding) to learn
    /// the output's shape, then has every later run write into one tensor of that
    /// shape. A model whose warm-up run fails, or whose output is unusable, keeps
    /// ONNX Runtime-allocated outputs: each embed then reports the error itself.
    fn preallocate_output(&mut self, output_name: &str) -> Result<(), CreateError> {
        if self.input_error.is_some() {
            return Ok(());
        }
        let shape = {
            let Ok(outputs) = self
                .session
                .run_with_options(&self.inputs[..], &self.run_options)
            else {
                return Ok(());
            };
            let Ok((shape, _)) = float_output(&outputs[0]) else {
                return Ok(());
            };
            shape.to_vec()
        };
        let Ok(layout) = OutputLayout::from_shape(&shape, self.seq_len) else {
            return Ok(());
        };
        let output =
            Tensor::<f32>::new(&Allocator::default(), shape).map_err(CreateError::onnx_runtime)?;
        self.run_options = select_output(output_name, Some(output.into_dyn()))?;
        self.pooled = vec![0.0; layout.hidden()];
        Ok(())
    }

    /// The hot path: refill the pooled inputs, run into the preallocated output,
    /// pool, fold, normalise. `after_run` is the strict-mode check that follows
    /// the run.
    fn embed(
        &mut self,
        tokens: &TokenInput<'_>,
        out: &mut [f32],
        after_run: impl Fn() -> Result<(), EmbedError>,
    ) -> Result<(), EmbedError> {
        if let Some(error) = &self.input_error {
            return Err(error.clone());
        }
        for (input, &fill) in self.inputs.iter_mut().zip(&self.fills) {
            write_input(input, fill, tokens)?;
        }
        let outputs = self
            .session
            .run_with_options(&self.inputs[..], &self.run_options)
            .map_err(EmbedError::onnx_runtime)?;
        after_run()?;
        let (shape, data) = float_output(&outputs[0])?;
        let layout = OutputLayout::from_shape(shape, self.seq_len)?;
        let hidden = layout.hidden();
        if self.pooled.len() != hidden {
            // Only for outputs that were not preallocated (their shape was unknown).
            self.pooled.resize(hidden, 0.0);
        }
        pooling::pool(data, layout, tokens.mask, &mut self.pooled);
        pooling::fold_and_normalize(&self.pooled, out);
        Ok(())
    }
}

/// Run options that compute only `name`, written into `preallocated` if given.
fn select_output(
    name: &str,
    preallocated: Option<DynValue>,
) -> Result<RunOptions<HasSelectedOutputs>, CreateError> {
    let selector = OutputSelector::no_default().with(name);
    let selector = match preallocated {
        Some(value) => selector.preallocate(name, value),
        None => selector,
    };
    Ok(RunOptions::new()
        .map_err(CreateError::onnx_runtime)?
        .with_outputs(selector))
}

/// Creates one input tensor and writes the values that never change.
fn create_input(spec: &InputSpec) -> Result<SessionInputValue<'static>, CreateError> {
    let allocator = Allocator::default();
    let shape = spec.shape.clone();
    let value = match spec.fill {
        InputFill::ZerosF32 => {
            let mut tensor =
                Tensor::<f32>::new(&allocator, shape).map_err(CreateError::onnx_runtime)?;
            tensor.extract_tensor_mut().1.fill(0.0);
            tensor.into_dyn()
        }
        fill => {
            let mut tensor =
                Tensor::<i64>::new(&allocator, shape).map_err(CreateError::onnx_runtime)?;
            let data = tensor.extract_tensor_mut().1;
            match fill {
                InputFill::Positions => data.iter_mut().zip(0..).for_each(|(x, i)| *x = i),
                _ => data.fill(0),
            }
            tensor.into_dyn()
        }
    };
    Ok(SessionInputValue::Owned(value))
}

/// Refills one input from the caller's arrays (constant inputs are left alone).
fn write_input(
    input: &mut SessionInputValue<'static>,
    fill: InputFill,
    tokens: &TokenInput<'_>,
) -> Result<(), EmbedError> {
    let (source, default) = match fill {
        InputFill::Ids => (Some(tokens.ids), 0),
        InputFill::Mask => (tokens.mask, 1),
        InputFill::TokenTypes => (tokens.token_types, 0),
        InputFill::Positions | InputFill::ZerosI64 | InputFill::ZerosF32 => return Ok(()),
    };
    let SessionInputValue::Owned(value) = input else {
        return Err(EmbedError::library("input_not_owned"));
    };
    let (_, data) = value
        .try_extract_tensor_mut::<i64>()
        .map_err(EmbedError::onnx_runtime)?;
    match source {
        Some(values) => data.copy_from_slice(values),
        None => data.fill(default),
    }
    Ok(())
}

/// The read output as a float tensor, or the contract's error for it.
fn float_output(output: &DynValue) -> Result<(&[i64], &[f32]), EmbedError> {
    let dtype = output.dtype();
    if !dtype.is_tensor() {
        return Err(EmbedError::library("output_not_tensor"));
    }
    if dtype.tensor_type() != Some(TensorElementType::Float32) {
        return Err(EmbedError::library("output_not_float"));
    }
    let (shape, data) = output
        .try_extract_tensor::<f32>()
        .map_err(EmbedError::onnx_runtime)?;
    Ok((shape, data))
}
