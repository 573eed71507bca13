//! The model a handle runs ([`ModelRunner`], one per handle, shared by its
//! callers), each caller's pooled buffers ([`EmbedBuffers`]) and the embed hot
//! path ([`ModelRunner::embed_rows_with`]).
//!
//! **Length-aware execution.** When every input is a `[batch, sequence]` tensor
//! with a dynamic sequence dimension and the model takes an `attention_mask`, a
//! run covers positions up to the last one whose mask is not 0 and no further:
//! the positions cut have mask 0, which attention ignores, so the vectors are
//! those of the full-length run (within float rounding). (Not "> 0": a model may
//! treat a negative mask value differently from 0.) Their ids are not fed to the
//! model, so an id there that the model would reject is not an error.
//! A NULL mask or an all-zero mask keeps `seq_len`
//! (with no valid token the contract uses token 0's vector, which attends to
//! every position). Static-shape models always run at their own length.
//!
//! **Exact shapes.** A run costs a fixed amount plus a cost per token, so
//! every row runs at its exact length (padding to length buckets would cost a
//! typical sentence 10-25%); the storage and the shape cache are the
//! [`Workspace`]'s.
//!
//! **One run per call, also for a new shape.** The output's shape is predicted
//! for every run shape from two runs at create (of different row counts and
//! lengths): each output dimension is constant, follows the rows, or follows
//! the length. The output is then written straight into pooled storage by the
//! run that meets the shape. A model whose output does not follow that rule
//! (ONNX Runtime rejects the predicted shape) lets ONNX Runtime allocate the
//! output instead, decided once for the handle.
//!
//! **Batches** are ordered by row length and grouped by a cost model measured
//! at create ([`crate::run::batching`]); results go back in the caller's order.
//! Which rows may share a run, and whether a row may be padded next to a longer
//! one, is the handle's [`ShapePolicy`], found by the self-check at create
//! ([`crate::model::execution_class`]): a row's vector depends only on its own tokens.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use ort::session::Session;
use ort::value::{Outlet, ValueType};

use crate::error::{CreateError, EmbedError};
use crate::model::execution_class::{self, ExecutionClass, SelfCheck, ShapePolicy};
use crate::model::plan::{self, InputFill, OutputType};
use crate::ort::watchdog::RunGate;
use crate::postprocess::{self, OutputElement, OutputLayout};
use crate::run::batching::{CostModel, Grouper, Grouping, WINDOW};
pub use crate::run::workspace::MAX_CACHED_SHAPES;
use crate::run::workspace::{Element, OutputData, OutputMode, RunNames, Workspace, KEEP_BYTES};

/// Most rows one run holds. On CPU, groups of 8-16 already amortise the fixed
/// cost of a run; on GPUs and NPUs 32 rows are past the point where larger
/// batches still pay.
pub const MAX_ROWS_PER_RUN: usize = 32;

/// The caller's token arrays for one row; each holds exactly `seq_len` values.
#[derive(Clone, Copy, Debug)]
pub struct TokenInput<'a> {
    pub ids: &'a [i64],
    /// `None`: every position is valid.
    pub mask: Option<&'a [i64]>,
    /// `None`: all zeros.
    pub token_types: Option<&'a [i64]>,
}

/// `count` rows of `seq_len` tokens, laid out row after row.
#[derive(Clone, Copy, Debug)]
pub struct TokenRows<'a> {
    pub seq_len: usize,
    pub ids: &'a [i64],
    pub mask: Option<&'a [i64]>,
    pub token_types: Option<&'a [i64]>,
}

impl<'a> TokenRows<'a> {
    /// One row as `count` 1.
    pub fn single(row: &TokenInput<'a>) -> Self {
        Self {
            seq_len: row.ids.len(),
            ids: row.ids,
            mask: row.mask,
            token_types: row.token_types,
        }
    }

    pub fn count(&self) -> usize {
        self.ids.len() / self.seq_len.max(1)
    }

    pub fn row(&self, index: usize) -> TokenInput<'a> {
        let span = index * self.seq_len..(index + 1) * self.seq_len;
        TokenInput {
            ids: &self.ids[span.clone()],
            mask: self.mask.map(|m| &m[span.clone()]),
            token_types: self.token_types.map(|t| &t[span]),
        }
    }

    /// The rows `first..first + count`.
    pub fn slice(&self, first: usize, count: usize) -> Self {
        let span = first * self.seq_len..(first + count) * self.seq_len;
        Self {
            seq_len: self.seq_len,
            ids: &self.ids[span.clone()],
            mask: self.mask.map(|m| &m[span.clone()]),
            token_types: self.token_types.map(|t| &t[span]),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = TokenInput<'a>> + '_ {
        (0..self.count()).map(|i| self.row(i))
    }
}

/// What the model's declared shapes allow (before the self-check): the
/// sequence dimension may follow the rows when every input is `[batch,
/// sequence]` with a dynamic sequence and there is an `attention_mask`; rows may
/// batch when every batch dimension is dynamic.
fn declared_policy(inputs: &[Outlet]) -> ShapePolicy {
    let dims: Vec<Option<&[i64]>> = inputs
        .iter()
        .map(|input| match input.dtype() {
            ValueType::Tensor { shape, .. } if shape.len() == 2 => Some(&shape[..]),
            _ => None,
        })
        .collect();
    let all = |f: fn(&[i64]) -> bool| dims.iter().all(|d| d.is_some_and(f));
    let has_mask = inputs.iter().any(|i| i.name() == "attention_mask");
    ShapePolicy {
        trims: has_mask && all(|d| plan::is_dynamic(d[1])),
        batches: all(|d| plan::is_dynamic(d[0])),
        class: ExecutionClass::Free,
        time_major: false,
        data_dependent_output: false,
    }
}

/// Which rows may share a run under `policy`.
fn grouping(policy: &ShapePolicy) -> Grouping {
    if !policy.may_batch() {
        Grouping::Single
    } else if policy.may_pad() {
        Grouping::Free
    } else {
        Grouping::SameLength
    }
}

/// What a handle found out at create (the self-check's policy and the hidden size).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExecutionPlan {
    pub policy: ShapePolicy,
    /// 0 when no run succeeded.
    pub hidden: usize,
}

/// One model input: how it is filled and the shape of one full-length row.
struct InputPlan {
    fill: InputFill,
    shape: Vec<i64>,
}

impl InputPlan {
    fn element(&self) -> Element {
        match self.fill {
            InputFill::ZerosF32 => Element::F32,
            _ => Element::I64,
        }
    }
}

/// How one output dimension follows the run shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DimRule {
    Const(i64),
    Rows,
    Len,
}

/// Learns the rule of each output dimension from two runs of shapes `a` and
/// `b` (rows, length) that gave `shape_a` and `shape_b`, or `None` when some
/// dimension follows neither (then ONNX Runtime allocates the output).
fn output_rules(
    a: (usize, usize),
    shape_a: &[i64],
    b: (usize, usize),
    shape_b: &[i64],
) -> Option<Vec<DimRule>> {
    if shape_a.len() != shape_b.len() {
        return None;
    }
    let as_dim = |x: usize| x as i64;
    shape_a
        .iter()
        .zip(shape_b)
        .map(|(&x, &y)| {
            if x == y {
                Some(DimRule::Const(x))
            } else if x == as_dim(a.0) && y == as_dim(b.0) {
                Some(DimRule::Rows)
            } else if x == as_dim(a.1) && y == as_dim(b.1) {
                Some(DimRule::Len)
            } else {
                None
            }
        })
        .collect()
}

/// The model of one handle: its session (one per handle, run concurrently by
/// its callers, see [`Workspace::run`]), what each input takes, how rows may
/// share a run, how the output's shape follows the run, and the cost model of
/// its runs. Set up at create, then only read.
pub struct ModelRunner {
    session: Session,
    seq_len: usize,
    policy: ShapePolicy,
    inputs: Vec<InputPlan>,
    output_type: OutputType,
    names: RunNames,
    /// `None`: the output's shape cannot be predicted.
    output_rules: Option<Vec<DimRule>>,
    /// Set when a predicted output shape was rejected (then for good).
    ort_allocates: AtomicBool,
    cost: CostModel,
    hidden: usize,
    /// The run-time limit and destroy flag of every run on this handle.
    gate: Arc<RunGate>,
}

impl ModelRunner {
    /// Plans the inputs of `session`, runs the self-check
    /// ([`execution_class::self_check`]: the execution class, or the padded class
    /// when [`execution_class::PADDED_ENV`] asks for it, and the output's layout),
    /// then learns the output's shape rule and the cost model ([`Self::learn`]),
    /// using the returned first caller's buffers. Inputs the contract cannot
    /// fill fail here; a model whose output is unusable still opens: each
    /// embed reports why.
    ///
    /// A session compiled for `static_shapes` runs every row alone at the full
    /// `seq_len` (padded, its mask 0 past the row), in the padded class.
    pub fn new(
        session: Session,
        seq_len: usize,
        static_shapes: bool,
        gate: Arc<RunGate>,
    ) -> Result<(Self, EmbedBuffers, SelfCheck), CreateError> {
        plan::check_model(session.inputs(), session.outputs())?;
        let (output_index, output_type) = plan::select_output(session.outputs())?;
        let output_name = session.outputs()[output_index].name().to_owned();
        let mut policy = declared_policy(session.inputs());
        if static_shapes {
            policy.trims = false;
            policy.batches = false;
        }
        let specs = plan::plan_inputs(session.inputs(), seq_len)?;
        let names = RunNames::new(specs.iter().map(|s| s.name.as_str()), &output_name)
            .map_err(create_error)?;
        let inputs = specs
            .into_iter()
            .map(|spec| InputPlan {
                fill: spec.fill,
                shape: spec.shape,
            })
            .collect();
        let mut runner = Self {
            session,
            seq_len,
            policy,
            inputs,
            output_type,
            names,
            output_rules: None,
            ort_allocates: AtomicBool::new(true),
            cost: CostModel::DEFAULT,
            hidden: 0,
            gate,
        };
        let mut buffers = runner.new_buffers().map_err(create_error)?;
        let forced = (static_shapes || execution_class::padded_requested())
            .then_some(ExecutionClass::Padded);
        let check = execution_class::self_check(
            &mut Probe {
                runner: &mut runner,
                buffers: &mut buffers,
            },
            forced,
        );
        // Errors here are the model's, reported by each embed as the contract wants.
        let _ = runner.learn(&mut buffers);
        // A hung model is not: it fails the create.
        if runner.gate.timed_out() {
            return Err(CreateError::library(runner.gate.limit_error().message));
        }
        runner.gate.created();
        Ok((runner, buffers, check))
    }

    /// Stops the runs in flight (their callers get an error) and refuses new ones.
    pub fn close(&self) {
        self.gate.close();
    }

    /// Fresh pooled buffers for one more caller.
    pub fn new_buffers(&self) -> Result<EmbedBuffers, EmbedError> {
        let elements: Vec<Element> = self.inputs.iter().map(InputPlan::element).collect();
        Ok(EmbedBuffers {
            workspace: Workspace::new(&elements, self.output_type, Arc::clone(&self.gate))?,
            grouper: Grouper::new(),
            lens: Vec::with_capacity(WINDOW),
            pooled: Vec::with_capacity(self.hidden),
        })
    }

    /// The output-shape rule and the cost model, from runs on two shapes `a`
    /// (one row of 5 tokens) and `b` (4 rows of 16; at `seq_len` for models
    /// that cannot trim, 2 rows): each run once with ONNX Runtime allocating the
    /// output (its shape shows how each dimension follows rows and length),
    /// then twice more into the predicted shape, timed (the faster counts): six
    /// short runs (their cost at create is in the README's Performance section).
    fn learn(&mut self, buffers: &mut EmbedBuffers) -> Result<(), EmbedError> {
        let (short, long) = if self.policy.trims {
            (self.seq_len.min(8) - 3, self.seq_len.min(16))
        } else {
            (self.seq_len, self.seq_len)
        };
        let a = (1, short);
        let b = match (self.policy.batches, self.policy.trims) {
            (false, _) => (1, long),
            (true, true) => (4, long),
            (true, false) => (2, long),
        };
        // Rows of ordinary token ids, every position valid up to its length.
        let ids: Vec<i64> = (0..self.seq_len * b.0)
            .map(|i| 1 + (i as i64 * 7) % 9)
            .collect();
        let mask: Vec<i64> = (0..self.seq_len * b.0)
            .map(|i| i64::from(i % self.seq_len < long))
            .collect();
        let rows = TokenRows {
            seq_len: self.seq_len,
            ids: &ids,
            mask: Some(&mask),
            token_types: None,
        };
        let lens = [long; 4];
        let indices = [0u32, 1, 2, 3];
        let mut probe = |runner: &Self, (n, len): (usize, usize), mode| {
            let started = Instant::now();
            let shape = runner.run_group(buffers, &rows, &indices[..n], &lens[..n], len, mode)?;
            Ok::<_, EmbedError>((shape, started.elapsed().as_secs_f64()))
        };
        let (shape_a, _) = probe(self, a, OutputMode::OrtAllocated)?;
        self.hidden =
            OutputLayout::from_shape(&shape_a, self.seq_len, 1, self.policy.time_major)?.hidden();
        let (shape_b, _) = if b == a {
            (shape_a.clone(), 0.0)
        } else {
            probe(self, b, OutputMode::OrtAllocated)?
        };
        self.output_rules = match self.policy.data_dependent_output {
            true => None,
            false => output_rules(a, &shape_a, b, &shape_b),
        };
        let mode = match self.output_rules {
            Some(_) => OutputMode::Preallocated,
            None => OutputMode::OrtAllocated,
        };
        // Timed: the best of the second and third runs of each shape (other
        // work on the machine only ever makes a run slower).
        let mut timed = |runner: &Self, mode| -> Result<(f64, f64), EmbedError> {
            let (mut time_a, mut time_b) = (f64::INFINITY, f64::INFINITY);
            for _ in 0..2 {
                time_a = time_a.min(probe(runner, a, mode)?.1);
                time_b = time_b.min(probe(runner, b, mode)?.1);
            }
            Ok((time_a, time_b))
        };
        let (time_a, time_b) = match timed(self, mode) {
            Ok(times) => times,
            Err(_) if mode == OutputMode::Preallocated => {
                // ONNX Runtime rejected a predicted shape: it allocates from now on.
                self.output_rules = None;
                timed(self, OutputMode::OrtAllocated)?
            }
            Err(e) => return Err(e),
        };
        self.ort_allocates
            .store(self.output_rules.is_none(), Ordering::Relaxed);
        // The probes' tensors of the other mode are never used again.
        buffers.workspace.keep_runs_of(match self.output_rules {
            Some(_) => OutputMode::Preallocated,
            None => OutputMode::OrtAllocated,
        });
        self.cost = CostModel::from_timings(a.0 * a.1, time_a, b.0 * b.1, time_b);
        Ok(())
    }

    /// How this handle runs rows (the self-check's policy) and its hidden size.
    pub fn plan(&self) -> ExecutionPlan {
        ExecutionPlan {
            policy: self.policy,
            hidden: self.hidden,
        }
    }

    /// The last dimension of the output, 0 when no run has shown it.
    pub fn hidden(&self) -> usize {
        self.hidden
    }

    /// Whether ONNX Runtime allocates each output (its shape is not predictable).
    pub fn ort_allocates(&self) -> bool {
        self.ort_allocates.load(Ordering::Relaxed)
    }

    /// The most rows a run of `len` positions may hold: [`MAX_ROWS_PER_RUN`],
    /// and what keeps a workspace within [`KEEP_BYTES`] (storage grows up to
    /// twice what a run needs).
    fn max_rows(&self, len: usize) -> usize {
        let per_position = self.hidden.max(1) * 4 + self.inputs.len() * 8;
        let per_row = per_position.saturating_mul(len).max(1);
        (KEEP_BYTES / 2 / per_row).clamp(1, MAX_ROWS_PER_RUN)
    }

    /// The hot path: embeds `rows` into `out` (`out_dim` values per row, in
    /// the caller's order). Rows are grouped by length in windows of
    /// [`WINDOW`]; `after_run` is the strict-mode check that follows each run;
    /// with `helpers`, groups also run on them in parallel. On error, `out`
    /// may be partly written.
    pub fn embed_rows_with(
        &self,
        buffers: &mut EmbedBuffers,
        rows: &TokenRows<'_>,
        out: &mut [f32],
        out_dim: usize,
        after_run: &dyn Fn() -> Result<(), EmbedError>,
        mut helpers: Option<&mut dyn Helpers>,
    ) -> Result<(), EmbedError> {
        let count = rows.count();
        let result = (|| {
            for first in (0..count).step_by(WINDOW) {
                let window = rows.slice(first, WINDOW.min(count - first));
                let out = &mut out[first * out_dim..(first + window.count()) * out_dim];
                buffers.lens.clear();
                for row in window.iter() {
                    buffers
                        .lens
                        .push(self.policy.row_length(self.seq_len, &row));
                }
                let grouping = grouping(&self.policy);
                buffers
                    .grouper
                    .plan(&buffers.lens, grouping, self.cost, &|len| {
                        self.max_rows(len)
                    });
                match helpers.as_deref_mut() {
                    Some(helpers) if buffers.grouper.group_count() > 1 => {
                        helpers.run_window(self, buffers, &window, out, out_dim, after_run)?
                    }
                    _ => {
                        let EmbedBuffers {
                            workspace,
                            grouper,
                            lens,
                            pooled,
                        } = buffers;
                        for group in grouper.groups() {
                            let len = group_len(lens, group);
                            self.run_and_pool(
                                workspace, pooled, &window, group, lens, len, out, out_dim,
                            )?;
                            after_run()?;
                        }
                    }
                }
            }
            Ok(())
        })();
        buffers.workspace.trim(KEEP_BYTES);
        result
    }

    /// Runs one group in `workspace` and pools its rows into their places in `out`.
    #[allow(clippy::too_many_arguments)]
    pub fn run_and_pool(
        &self,
        workspace: &mut Workspace,
        pooled: &mut Vec<f32>,
        window: &TokenRows<'_>,
        group: &[u32],
        lens: &[usize],
        len: usize,
        out: &mut [f32],
        out_dim: usize,
    ) -> Result<(), EmbedError> {
        self.load(workspace, window, group, lens, len)?;
        self.run_loaded(workspace, group.len(), len)?;
        let (shape, data) = workspace.last_output();
        let layout = self.layout(shape, group.len())?;
        pool_rows(data, layout, window, group, pooled, out, out_dim)
    }

    /// How to read the output of a run of `rows` rows.
    pub fn layout(&self, shape: &[i64], rows: usize) -> Result<OutputLayout, EmbedError> {
        let layout = OutputLayout::from_shape(shape, self.seq_len, rows, self.policy.time_major)?;
        if self.hidden != 0 && layout.hidden() != self.hidden {
            return Err(EmbedError::library(
                crate::error_strings::INVALID_HIDDEN_DIM,
            ));
        }
        Ok(layout)
    }

    /// Runs one group and returns the output's shape (create-time probes).
    fn run_group(
        &self,
        buffers: &mut EmbedBuffers,
        rows: &TokenRows<'_>,
        group: &[u32],
        lens: &[usize],
        len: usize,
        mode: OutputMode,
    ) -> Result<Vec<i64>, EmbedError> {
        let workspace = &mut buffers.workspace;
        self.load(workspace, rows, group, lens, len)?;
        self.run_mode(workspace, group.len(), len, mode)?;
        Ok(workspace.last_output().0.to_vec())
    }

    /// Writes the rows `group` of `rows` (each needing `lens[row]` positions
    /// alone), cut or padded to `len`, into the workspace's inputs.
    pub fn load(
        &self,
        workspace: &mut Workspace,
        rows: &TokenRows<'_>,
        group: &[u32],
        lens: &[usize],
        len: usize,
    ) -> Result<(), EmbedError> {
        let n = group.len();
        for (index, plan) in self.inputs.iter().enumerate() {
            let elements = input_elements(&plan.shape, self.policy, n, len)?;
            let per_row = elements / n;
            if per_row == 0 {
                continue;
            }
            match plan.element() {
                Element::F32 => workspace.input_f32(index, elements)?.fill(0.0),
                Element::I64 => {
                    let data = workspace.input_i64(index, elements)?;
                    for (&row, dst) in group.iter().zip(data.chunks_exact_mut(per_row)) {
                        let row = row as usize;
                        fill_row(plan.fill, &rows.row(row), lens[row], dst);
                    }
                }
            }
        }
        Ok(())
    }

    /// Runs the loaded inputs as run shape (`n`, `len`) (the output is then
    /// the workspace's [`Workspace::last_output`]): into a preallocated output
    /// of the predicted shape, or, once that was rejected, into one ONNX
    /// Runtime allocates.
    pub fn run_loaded(
        &self,
        workspace: &mut Workspace,
        n: usize,
        len: usize,
    ) -> Result<(), EmbedError> {
        if self.ort_allocates() {
            return self.run_mode(workspace, n, len, OutputMode::OrtAllocated);
        }
        let predicted = self.run_mode(workspace, n, len, OutputMode::Preallocated);
        if predicted.is_ok() || workspace.last_run_stopped() {
            return predicted;
        }
        // The predicted shape was rejected (or the run failed for another
        // reason): run again with ONNX Runtime allocating; if that works, the
        // prediction was wrong and is not used again.
        self.run_mode(workspace, n, len, OutputMode::OrtAllocated)?;
        self.ort_allocates.store(true, Ordering::Relaxed);
        Ok(())
    }

    fn run_mode(
        &self,
        workspace: &mut Workspace,
        n: usize,
        len: usize,
        mode: OutputMode,
    ) -> Result<(), EmbedError> {
        let shapes = || {
            let inputs: Vec<Vec<i64>> = self
                .inputs
                .iter()
                .map(|p| run_shape(&p.shape, self.policy, n, len))
                .collect();
            let output = self.output_rules.as_ref().map_or_else(Vec::new, |rules| {
                rules
                    .iter()
                    .map(|r| match *r {
                        DimRule::Const(d) => d,
                        DimRule::Rows => n as i64,
                        DimRule::Len => len as i64,
                    })
                    .collect()
            });
            (inputs, output)
        };
        workspace.run(&self.session, &self.names, (n, len), mode, &shapes)
    }
}

/// Lets a batch run some of its groups elsewhere at the same time (the
/// handle's helper threads, `crate::run::runtime`).
pub trait Helpers {
    /// Runs every group planned in `buffers.grouper` for `window`, pooling each
    /// row into `out` (the window's rows, in the caller's order).
    fn run_window(
        &mut self,
        runner: &ModelRunner,
        buffers: &mut EmbedBuffers,
        window: &TokenRows<'_>,
        out: &mut [f32],
        out_dim: usize,
        after_run: &dyn Fn() -> Result<(), EmbedError>,
    ) -> Result<(), EmbedError>;
}

/// One caller's pooled buffers: the workspace of its runs and the scratch of
/// the grouping and pooling. No allocation in steady state.
pub struct EmbedBuffers {
    pub workspace: Workspace,
    pub grouper: Grouper,
    /// Each row's own length, for the current window.
    pub lens: Vec<usize>,
    /// Pooling scratch: `hidden` values.
    pub pooled: Vec<f32>,
}

impl EmbedBuffers {
    /// Bytes held by the storages and the pooling scratch (not ONNX Runtime's).
    pub fn pool_bytes(&self) -> usize {
        self.workspace.pool_bytes() + self.pooled.len() * 4
    }

    /// Run shapes whose tensors are kept.
    pub fn cached_shapes(&self) -> usize {
        self.workspace.cached_shapes()
    }

    /// Runs made through these buffers.
    pub fn runs(&self) -> usize {
        self.workspace.runs() as usize
    }
}

/// The run length of a group: its longest row.
pub fn group_len(lens: &[usize], group: &[u32]) -> usize {
    group.iter().map(|&r| lens[r as usize]).max().unwrap_or(1)
}

/// Pools each row of `group` from a run's output into its place in `out`.
pub fn pool_rows(
    data: OutputData<'_>,
    layout: OutputLayout,
    window: &TokenRows<'_>,
    group: &[u32],
    pooled: &mut Vec<f32>,
    out: &mut [f32],
    out_dim: usize,
) -> Result<(), EmbedError> {
    pooled.resize(layout.hidden(), 0.0);
    match data {
        OutputData::F32(d) => pool_typed(d, layout, window, group, pooled, out, out_dim),
        OutputData::F16(d) => pool_typed(d, layout, window, group, pooled, out, out_dim),
        OutputData::Bf16(d) => pool_typed(d, layout, window, group, pooled, out, out_dim),
    }
}

fn pool_typed<T: OutputElement>(
    data: &[T],
    layout: OutputLayout,
    window: &TokenRows<'_>,
    group: &[u32],
    pooled: &mut [f32],
    out: &mut [f32],
    out_dim: usize,
) -> Result<(), EmbedError> {
    for (index, &row) in group.iter().enumerate() {
        let row = row as usize;
        postprocess::pool(data, layout, index, window.row(row).mask, pooled);
        postprocess::fold_and_normalize(pooled, &mut out[row * out_dim..(row + 1) * out_dim])?;
    }
    Ok(())
}

/// The self-check's view of a handle being created: its runner and first
/// buffers ([`execution_class::self_check`] runs probes through it).
pub struct Probe<'a> {
    runner: &'a mut ModelRunner,
    buffers: &'a mut EmbedBuffers,
}

impl Probe<'_> {
    pub fn policy(&self) -> ShapePolicy {
        self.runner.policy
    }

    /// Sets the policy; drops the kept run shapes, whose output views follow it.
    pub fn set_policy(&mut self, policy: ShapePolicy) {
        if policy != self.runner.policy {
            self.buffers.workspace.clear_runs();
        }
        self.runner.policy = policy;
    }

    /// Drops the kept run shapes.
    pub fn reset_runs(&mut self) {
        self.buffers.workspace.clear_runs();
    }

    pub fn seq_len(&self) -> usize {
        self.runner.seq_len
    }

    /// `rows` (each needing `own_lens` positions alone) at `len` positions, as
    /// embed runs them. Returns each row's L2-normalised pooled vector (`hidden`
    /// values, row after row) and the output shape.
    pub fn probe_run(
        &mut self,
        rows: &execution_class::OwnedRows,
        own_lens: &[usize],
        len: usize,
    ) -> Result<(Vec<f32>, Vec<i64>), EmbedError> {
        let rows = rows.rows();
        let group: Vec<u32> = (0..rows.count() as u32).collect();
        let (runner, buffers) = (&*self.runner, &mut *self.buffers);
        runner.load(&mut buffers.workspace, &rows, &group, own_lens, len)?;
        runner.run_loaded(&mut buffers.workspace, group.len(), len)?;
        let (shape, data) = buffers.workspace.last_output();
        let layout = runner.layout(shape, group.len())?;
        let hidden = layout.hidden();
        let mut out = vec![0.0f32; group.len() * hidden];
        pool_rows(
            data,
            layout,
            &rows,
            &group,
            &mut buffers.pooled,
            &mut out,
            hidden,
        )?;
        Ok((out, shape.to_vec()))
    }

    /// The output shape ONNX Runtime gives for `rows` at `len` positions (it
    /// allocates the output).
    pub fn output_shape(
        &mut self,
        rows: &execution_class::OwnedRows,
        own_lens: &[usize],
        len: usize,
    ) -> Result<Vec<i64>, EmbedError> {
        let rows = rows.rows();
        let group: Vec<u32> = (0..rows.count() as u32).collect();
        self.runner.run_group(
            self.buffers,
            &rows,
            &group,
            own_lens,
            len,
            OutputMode::OrtAllocated,
        )
    }
}

fn create_error(e: EmbedError) -> CreateError {
    CreateError::library(e.message.into_owned())
}

/// The shape of one input for a run of `n` rows of `len` positions.
fn run_shape(full_row: &[i64], policy: ShapePolicy, n: usize, len: usize) -> Vec<i64> {
    (0..full_row.len())
        .map(|i| run_dim(full_row, policy, n, len, i))
        .collect()
}

/// Dimension `i` of [`run_shape`] (without allocating the shape).
fn run_dim(full_row: &[i64], policy: ShapePolicy, n: usize, len: usize, i: usize) -> i64 {
    match i {
        0 if policy.batches => n as i64,
        1 if policy.trims => len as i64,
        _ => full_row[i],
    }
}

/// The element count of [`run_shape`].
fn input_elements(
    full_row: &[i64],
    policy: ShapePolicy,
    n: usize,
    len: usize,
) -> Result<usize, EmbedError> {
    (0..full_row.len())
        .map(|i| run_dim(full_row, policy, n, len, i))
        .try_fold(1usize, |acc, d| acc.checked_mul(usize::try_from(d).ok()?))
        .ok_or_else(|| EmbedError::library("run_too_large"))
}

/// Writes one row of an int64 input (`dst.len()` positions). Positions from
/// `own_len` on, which a longer row of the batch made part of the run, are
/// padding (id 0, type 0; their mask is 0): as in the row's own run, the
/// caller's values there never reach the model.
fn fill_row(fill: InputFill, row: &TokenInput<'_>, own_len: usize, dst: &mut [i64]) {
    let len = dst.len();
    let given = own_len.min(len);
    match (fill, row.mask, row.token_types) {
        (InputFill::Ids, _, _) => {
            dst[..given].copy_from_slice(&row.ids[..given]);
            dst[given..].fill(0);
        }
        (InputFill::Mask, Some(mask), _) => dst.copy_from_slice(&mask[..len]),
        (InputFill::Mask, None, _) => dst.fill(1),
        (InputFill::TokenTypes, _, Some(types)) => {
            dst[..given].copy_from_slice(&types[..given]);
            dst[given..].fill(0);
        }
        (InputFill::Positions, _, _) => dst.iter_mut().zip(0..).for_each(|(x, i)| *x = i),
        _ => dst.fill(0),
    }
}
