//! The model a handle runs ([`ModelRunner`], one per handle, shared by its
//! callers), what one thread needs to run groups ([`Worker`]), and the embed
//! hot path ([`ModelRunner::embed_rows`]), whose every group goes through
//! [`ModelRunner::embed_group`], on the caller's thread or a helper's.
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
//! the length (see `calibrate`). The output is then written straight into pooled storage by the
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
use std::sync::{Arc, PoisonError};

use ort::session::Session;

use crate::error::{CreateError, EmbedError};
use crate::model::execution_class::{self, ExecutionClass, SelfCheck, ShapePolicy};
use crate::model::plan::{self, OutputType};
use crate::ort::watchdog::RunGate;
use crate::postprocess::OutputLayout;
use crate::run::batching::{CostModel, Grouper, WINDOW};
use crate::run::calibrate;
use crate::run::crew::{Batch, Crew};
use crate::run::group::{pool_typed, Caller, Group, Vectors, Worker};
use crate::run::shapes::{self, DimRule, InputPlan};
use crate::run::workspace::{Element, OutputData, OutputMode, RunNames, Workspace, KEEP_BYTES};
use crate::tokens::TokenRows;

/// Most rows one run holds. On CPU, groups of 8-16 already amortise the fixed
/// cost of a run; on GPUs and NPUs 32 rows are past the point where larger
/// batches still pay.
pub const MAX_ROWS_PER_RUN: usize = 32;

/// Most (row, position, position) attention pairs one run holds: a run's
/// attention scores grow with rows x length^2, and past about this many a
/// token costs more in a batch than alone (the scores no longer stay in cache;
/// docs/performance.md, "Longer text"). 32 rows of 32 positions, 8 of 64, 2
/// of 128; a longer row runs alone.
pub const MAX_PAIRS_PER_RUN: usize = 32 * 32 * 32;

/// What a handle found out at create (the self-check's policy and the hidden size).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExecutionPlan {
    pub policy: ShapePolicy,
    /// 0 when no run succeeded.
    pub hidden: usize,
}

/// The strict-mode check that follows each run of a call.
pub(crate) type AfterRun<'a> = dyn Fn() -> Result<(), EmbedError> + Sync + 'a;

/// The model of one handle: its session (one per handle, run concurrently by
/// its callers, see [`Workspace::run`]), what each input takes, how rows may
/// share a run, how the output's shape follows the run, and the cost model of
/// its runs. Set up at create (`calibrate` learns the last three), then only read.
pub struct ModelRunner {
    session: Session,
    pub(super) seq_len: usize,
    pub(super) policy: ShapePolicy,
    inputs: Vec<InputPlan>,
    output_type: OutputType,
    names: RunNames,
    /// `None`: the output's shape cannot be predicted.
    pub(super) output_rules: Option<Vec<DimRule>>,
    /// Set when a predicted output shape was rejected (then for good).
    pub(super) ort_allocates: AtomicBool,
    pub(super) cost: CostModel,
    pub(super) hidden: usize,
    /// The run-time limit and destroy flag of every run on this handle.
    gate: Arc<RunGate>,
}

impl ModelRunner {
    /// Plans the inputs of `session`, then calibrates the handle
    /// ([`calibrate::calibrate`]: the self-check's execution class, or the
    /// padded class when asked for, the output's layout and shape rule, the
    /// cost model), using the returned first caller's buffers. Inputs the
    /// contract cannot fill fail here; a model whose output is unusable still
    /// opens: each embed reports why.
    ///
    /// A session compiled for `static_shapes` runs every row alone at the full
    /// `seq_len` (padded, its mask 0 past the row), in the padded class.
    pub fn new(
        session: Session,
        seq_len: usize,
        static_shapes: bool,
        gate: Arc<RunGate>,
    ) -> Result<(Self, Caller, SelfCheck), CreateError> {
        plan::check_model(session.inputs(), session.outputs())?;
        let (output_index, output_type) = plan::select_output(session.outputs())?;
        let output_name = session.outputs()[output_index].name().to_owned();
        let mut policy = shapes::declared_policy(session.inputs());
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
        let mut caller = runner.new_caller().map_err(create_error)?;
        let forced = (static_shapes || execution_class::padded_requested())
            .then_some(ExecutionClass::Padded);
        let check = calibrate::calibrate(&mut runner, &mut caller.worker, forced);
        // A hung model fails the create (other errors are reported by each embed).
        if runner.gate.timed_out() {
            return Err(CreateError::library(runner.gate.limit_error().message));
        }
        runner.gate.created();
        Ok((runner, caller, check))
    }

    /// Stops the runs in flight (their callers get an error) and refuses new ones.
    pub fn close(&self) {
        self.gate.close();
    }

    /// What one more thread needs to run groups.
    pub(crate) fn new_worker(&self) -> Result<Worker, EmbedError> {
        let elements: Vec<Element> = self.inputs.iter().map(InputPlan::element).collect();
        Ok(Worker {
            workspace: Workspace::new(&elements, self.output_type, Arc::clone(&self.gate))?,
            pooled: Vec::with_capacity(self.hidden),
        })
    }

    /// What one more caller needs.
    pub(crate) fn new_caller(&self) -> Result<Caller, EmbedError> {
        Ok(Caller {
            worker: self.new_worker()?,
            grouper: Grouper::new(),
            lens: Vec::with_capacity(WINDOW),
        })
    }

    /// How this handle runs rows (the self-check's policy) and its hidden size.
    pub fn plan(&self) -> ExecutionPlan {
        ExecutionPlan {
            policy: self.policy,
            hidden: self.hidden,
        }
    }

    /// The last dimension of the output, 0 when no run has given it.
    pub fn hidden(&self) -> usize {
        self.hidden
    }

    /// Whether ONNX Runtime allocates each output (its shape is not predictable).
    pub fn ort_allocates(&self) -> bool {
        self.ort_allocates.load(Ordering::Relaxed)
    }

    /// The most rows a run of `len` positions may hold: [`MAX_ROWS_PER_RUN`],
    /// no more than [`MAX_PAIRS_PER_RUN`] attention pairs, and what keeps a
    /// workspace within [`KEEP_BYTES`] (storage grows up to twice what a run
    /// needs).
    fn max_rows(&self, len: usize) -> usize {
        let per_position = self.hidden.max(1) * 4 + self.inputs.len() * 8;
        let per_row = per_position.saturating_mul(len).max(1);
        let by_pairs = MAX_PAIRS_PER_RUN / len.saturating_mul(len).max(1);
        (KEEP_BYTES / 2 / per_row)
            .min(by_pairs)
            .clamp(1, MAX_ROWS_PER_RUN)
    }

    /// The hot path: embeds `rows` into `out` (`out_dim` values per row, in
    /// the caller's order). Rows are grouped by length in windows of
    /// [`WINDOW`]; each group is embedded by [`Self::embed_group`], on this
    /// thread or, with a `crew`, also on its helper threads at the same time.
    /// `after_run` follows each run. On error, `out` may be partly written.
    pub(crate) fn embed_rows(
        &self,
        caller: &mut Caller,
        rows: &TokenRows<'_>,
        out: &mut [f32],
        out_dim: usize,
        after_run: &AfterRun<'_>,
        mut crew: Option<&mut Crew>,
    ) -> Result<(), EmbedError> {
        let count = rows.count();
        let Caller {
            worker,
            grouper,
            lens,
        } = caller;
        let mut result = Ok(());
        for first in (0..count).step_by(WINDOW) {
            let window = rows.slice(first, WINDOW.min(count - first));
            let vectors = Vectors::new(
                &mut out[first * out_dim..(first + window.count()) * out_dim],
                out_dim,
            );
            lens.clear();
            lens.extend(
                window
                    .iter()
                    .map(|row| self.policy.row_length(self.seq_len, &row)),
            );
            let grouping = shapes::grouping(&self.policy);
            grouper.plan(lens, grouping, self.cost, &|len| self.max_rows(len));
            let groups = grouper.group_count();
            let workers = crew.as_deref().map_or(1, |crew| crew.workers(groups));
            grouper.deal(workers, lens, self.cost);
            let (grouper, lens) = (&*grouper, &lens[..]);
            let job = |worker: &mut Worker, g: usize| {
                let group = Group::new(&window, grouper.group(g), lens);
                self.embed_group(worker, &group, &vectors)?;
                after_run()
            };
            let batch = Batch::new(grouper.owners(), &job);
            result = match crew.as_deref_mut() {
                Some(crew) if workers > 1 => crew.run(&batch, worker),
                _ => batch.work(0, worker),
            };
            if result.is_err() {
                break;
            }
        }
        worker.workspace.trim(KEEP_BYTES);
        result
    }

    /// Embeds one group: runs it ([`Self::run_group`]) and pools each of its
    /// rows into its place in `vectors`. Every embed runs its groups here.
    pub(crate) fn embed_group(
        &self,
        worker: &mut Worker,
        group: &Group<'_>,
        vectors: &Vectors<'_>,
    ) -> Result<(), EmbedError> {
        self.run_group(&mut worker.workspace, group, None)?;
        let mut out = vectors.out.lock().unwrap_or_else(PoisonError::into_inner);
        self.pool_group(worker, group, &mut out, vectors.dim)
    }

    /// Pools each row of `group` from the last run's output into its place
    /// in `out` (`dim` values a row, folded and normalised).
    pub(super) fn pool_group(
        &self,
        worker: &mut Worker,
        group: &Group<'_>,
        out: &mut [f32],
        dim: usize,
    ) -> Result<(), EmbedError> {
        let (shape, data) = worker.workspace.last_output();
        let layout = self.layout(shape, group.rows.len())?;
        worker.pooled.resize(layout.hidden(), 0.0);
        match data {
            OutputData::F32(d) => pool_typed(d, layout, group, &mut worker.pooled, out, dim),
            OutputData::F16(d) => pool_typed(d, layout, group, &mut worker.pooled, out, dim),
            OutputData::Bf16(d) => pool_typed(d, layout, group, &mut worker.pooled, out, dim),
        }
    }

    /// How to read the output of a run of `rows` rows.
    pub(super) fn layout(&self, shape: &[i64], rows: usize) -> Result<OutputLayout, EmbedError> {
        let layout = OutputLayout::from_shape(shape, self.seq_len, rows, self.policy.time_major)?;
        if self.hidden != 0 && layout.hidden() != self.hidden {
            return Err(EmbedError::library(
                crate::error_strings::INVALID_HIDDEN_DIM,
            ));
        }
        Ok(layout)
    }

    /// Runs one group: writes its rows, cut or padded to the group's length,
    /// into the workspace's inputs and runs the session (the output is then
    /// [`Workspace::last_output`]). Every run goes through here: `mode`
    /// `None` is how embeds run (into the predicted output shape, or, once
    /// that was rejected, into one ONNX Runtime allocates); create's probes
    /// may ask for a mode.
    pub(super) fn run_group(
        &self,
        workspace: &mut Workspace,
        group: &Group<'_>,
        mode: Option<OutputMode>,
    ) -> Result<(), EmbedError> {
        self.load(workspace, group)?;
        let (n, len) = (group.rows.len(), group.len);
        if let Some(mode) = mode {
            return self.run_mode(workspace, n, len, mode);
        }
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

    /// Writes the rows of `group` into the workspace's inputs.
    fn load(&self, workspace: &mut Workspace, group: &Group<'_>) -> Result<(), EmbedError> {
        let (n, len) = (group.rows.len(), group.len);
        for (index, plan) in self.inputs.iter().enumerate() {
            let elements = shapes::input_elements(&plan.shape, self.policy, n, len)?;
            let per_row = elements / n;
            if per_row == 0 {
                continue;
            }
            match plan.element() {
                Element::F32 => workspace.input_f32(index, elements)?.fill(0.0),
                Element::I64 => {
                    let data = workspace.input_i64(index, elements)?;
                    for (&row, dst) in group.rows.iter().zip(data.chunks_exact_mut(per_row)) {
                        let row = row as usize;
                        let own_len = group.lens[row];
                        shapes::fill_row(plan.fill, &group.window.row(row), own_len, dst);
                    }
                }
            }
        }
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
                .map(|p| shapes::run_shape(&p.shape, self.policy, n, len))
                .collect();
            let output = self
                .output_rules
                .as_deref()
                .map_or_else(Vec::new, |rules| shapes::predicted_output(rules, n, len));
            (inputs, output)
        };
        workspace.run(&self.session, &self.names, (n, len), mode, &shapes)
    }
}

pub(super) fn create_error(e: EmbedError) -> CreateError {
    CreateError::library(e.message.into_owned())
}
