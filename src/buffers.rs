//! The pooled buffers of one session and the embed hot path ([`EmbedBuffers::embed_rows`]).
//!
//! **Length-aware execution.** When every input is a `[batch, sequence]` tensor
//! with a dynamic sequence dimension and the model takes an `attention_mask`, a
//! run covers positions up to the last one whose mask is not 0 and no further
//! (not "> 0": a model may treat a negative mask value differently from 0).
//! Their ids are not fed to the model, so an id there that the model would
//! reject is not an error. A NULL mask or an all-zero mask keeps `seq_len`
//! (with no valid token the contract uses token 0's vector, which attends to
//! every position). Static-shape models always run at their own length.
//! Which rows may share a run, and whether a row may be padded next to a longer
//! one, is the handle's [`ShapePolicy`], found by the self-check at create
//! ([`crate::execution`]): a row's vector depends only on its own tokens.
//!
//! **Exact shapes, one copy of memory.** Measured by `make bench` on
//! all-MiniLM-L6-v2 int8 with one thread on this project's 2-core machine, a run
//! costs about 4 ms plus 0.7 ms per token (9 ms at 7 tokens, 17 ms at 19, 47 ms
//! at 62, 100 ms at 128), so padding to length buckets would cost a typical
//! sentence 10-25% (multiples of 8: 3.5 tokens on average) or up to 50% (powers
//! of two), against a target of 5% over a bare run. The
//! pool therefore runs every exact length, and keeps the memory of one run
//! shape: each input and the output have one storage vector, and the ONNX
//! Runtime tensors of every shape seen ([`ShapedRun`]) are views of their
//! prefix. A new shape costs a few small ONNX Runtime objects (about 2 KiB) and
//! at most [`MAX_CACHED_SHAPES`] are kept, so the pool's memory is bounded by
//! twice the largest shape it has served plus a constant, whatever `seq_len`.
//! Storage grows by doubling, is never shrunk, and is not allocated for lengths
//! that are never used.

use std::ptr::NonNull;

use ort::memory::Allocator;
use ort::session::{HasSelectedOutputs, OutputSelector, RunOptions, Session, SessionInputValue};
use ort::value::{DynValue, Outlet, TensorElementType, ValueType};
use ort::AsPointer;

use crate::error::{CreateError, EmbedError};
use crate::execution::{self, ExecutionClass, SelfCheck, ShapePolicy};
use crate::model::{self, InputFill, OutputType};
use crate::pooling::{self, Bf16, OutputLayout, F16};

/// Batch rows sent to one run. A larger batch is split into runs of this many
/// rows, which bounds the pool's memory by `MAX_ROWS_PER_RUN * seq_len`
/// positions. On CPU, batching gives no per-row gain (measured); on GPUs and NPUs
/// 32 rows are past the point where larger batches still pay.
pub const MAX_ROWS_PER_RUN: usize = 32;

/// Run shapes (rows, length) whose tensors are kept. A caller mixing more
/// shapes than this recreates the least recently used one (a few allocations).
/// 256 covers every length of the common `seq_len` 128 and 256.
pub const MAX_CACHED_SHAPES: usize = 256;

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
    fn slice(&self, first: usize, count: usize) -> Self {
        let span = first * self.seq_len..(first + count) * self.seq_len;
        Self {
            seq_len: self.seq_len,
            ids: &self.ids[span.clone()],
            mask: self.mask.map(|m| &m[span.clone()]),
            token_types: self.token_types.map(|t| &t[span]),
        }
    }

    fn iter(&self) -> impl Iterator<Item = TokenInput<'a>> + '_ {
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
        trims: has_mask && all(|d| model::is_dynamic(d[1])),
        batches: all(|d| model::is_dynamic(d[0])),
        class: ExecutionClass::Free,
        time_major: false,
        data_dependent_output: false,
    }
}

/// One model input: how it is filled and where its values live.
struct InputSlot {
    fill: InputFill,
    /// Resolved shape of one full-length row.
    shape: Vec<i64>,
    storage: Storage,
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

    fn data(&self) -> OutputData<'_> {
        match self {
            Self::F32(v) => OutputData::F32(v),
            Self::F16(v) => OutputData::F16(v),
            Self::Bf16(v) => OutputData::Bf16(v),
        }
    }
}

/// Output values to pool, in their element type.
enum OutputData<'a> {
    F32(&'a [f32]),
    F16(&'a [F16]),
    Bf16(&'a [Bf16]),
}

impl OutputData<'_> {
    /// Pools every row of `rows` from this output into `out` (`out_dim` values each).
    fn pool_rows(
        &self,
        layout: OutputLayout,
        rows: &TokenRows<'_>,
        out: &mut [f32],
        out_dim: usize,
        pooled: &mut [f32],
    ) -> Result<(), EmbedError> {
        for (index, (row, out)) in rows.iter().zip(out.chunks_exact_mut(out_dim)).enumerate() {
            match *self {
                Self::F32(data) => pooling::pool(data, layout, index, row.mask, pooled),
                Self::F16(data) => pooling::pool(data, layout, index, row.mask, pooled),
                Self::Bf16(data) => pooling::pool(data, layout, index, row.mask, pooled),
            }
            pooling::fold_and_normalize(pooled, out)?;
        }
        Ok(())
    }
}

/// The ONNX Runtime tensors of one run shape: views of the storages.
struct ShapedRun {
    rows: usize,
    len: usize,
    last_used: u64,
    inputs: Vec<SessionInputValue<'static>>,
    /// Selects the read output and holds its preallocated view (none when the
    /// model's output shape depends on the values).
    run_options: RunOptions<HasSelectedOutputs>,
    /// The output's shape when this run shape was first run.
    shape: Vec<i64>,
    layout: OutputLayout,
}

/// The pooled buffers of one session: everything a run reads or writes.
pub struct EmbedBuffers {
    // Declared first so it is dropped first: its tensors view the storages below.
    runs: Vec<ShapedRun>,
    session: Session,
    seq_len: usize,
    policy: ShapePolicy,
    inputs: Vec<InputSlot>,
    output_name: String,
    /// Storage of the output tensor.
    output: OutputStorage,
    /// Pooling scratch: `hidden` values.
    pooled: Vec<f32>,
    /// Counts runs, to find the least recently used shape.
    clock: u64,
}

/// What a handle's first session found out, for its other sessions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExecutionPlan {
    pub policy: ShapePolicy,
    /// 0 when no run succeeded.
    pub hidden: usize,
}

impl EmbedBuffers {
    /// Prepares the buffers of `session`, the handle's first, and runs the
    /// self-check ([`execution::self_check`]): it finds the output's hidden size
    /// and layout and the model's execution class (or the padded class when
    /// [`execution::PADDED_ENV`] asks for it). Inputs the contract cannot fill
    /// fail here; a model whose output is unusable still opens: each embed
    /// reports why.
    pub fn new(session: Session, seq_len: usize) -> Result<(Self, SelfCheck), CreateError> {
        let policy = declared_policy(session.inputs());
        let mut buffers = Self::with_policy(session, seq_len, policy)?;
        let forced = execution::padded_requested().then_some(ExecutionClass::Padded);
        let check = execution::self_check(&mut buffers, forced);
        Ok((buffers, check))
    }

    /// Prepares the buffers of another session of a handle whose first session
    /// found `plan`. Nothing is run.
    pub fn with_plan(
        session: Session,
        seq_len: usize,
        plan: &ExecutionPlan,
    ) -> Result<Self, CreateError> {
        let mut buffers = Self::with_policy(session, seq_len, plan.policy)?;
        buffers.pooled.resize(plan.hidden, 0.0);
        Ok(buffers)
    }

    fn with_policy(
        session: Session,
        seq_len: usize,
        policy: ShapePolicy,
    ) -> Result<Self, CreateError> {
        model::check_model(session.inputs(), session.outputs())?;
        let (output_index, output_type) = model::select_output(session.outputs())?;
        let output_name = session.outputs()[output_index].name().to_owned();
        let inputs = model::plan_inputs(session.inputs(), seq_len)?
            .into_iter()
            .map(|spec| InputSlot {
                storage: match spec.fill {
                    InputFill::ZerosF32 => Storage::F32(Vec::new()),
                    _ => Storage::I64(Vec::new()),
                },
                fill: spec.fill,
                shape: spec.shape,
            })
            .collect();
        Ok(Self {
            runs: Vec::new(),
            session,
            seq_len,
            policy,
            inputs,
            output_name,
            output: OutputStorage::new(output_type),
            pooled: Vec::new(),
            clock: 0,
        })
    }

    /// What other sessions of this handle need to run like this one.
    pub fn plan(&self) -> ExecutionPlan {
        ExecutionPlan {
            policy: self.policy,
            hidden: self.pooled.len(),
        }
    }

    pub fn policy(&self) -> ShapePolicy {
        self.policy
    }

    /// Sets the policy (the self-check); drops the kept run shapes, whose
    /// layout and output views follow it.
    pub fn set_policy(&mut self, policy: ShapePolicy) {
        if policy != self.policy {
            self.runs.clear();
        }
        self.policy = policy;
    }

    /// Drops the kept run shapes.
    pub fn reset_runs(&mut self) {
        self.runs.clear();
    }

    pub fn seq_len(&self) -> usize {
        self.seq_len
    }

    /// The last dimension of the output, once a run has shown it.
    pub fn hidden(&self) -> Option<usize> {
        (!self.pooled.is_empty()).then_some(self.pooled.len())
    }

    /// Bytes held by the storages and the pooling scratch (not ONNX Runtime's).
    pub fn pool_bytes(&self) -> usize {
        let inputs: usize = self.inputs.iter().map(|s| s.storage.len() * 8).sum();
        inputs + self.output.bytes() + self.pooled.len() * 4
    }

    /// Run shapes whose tensors are kept.
    pub fn cached_shapes(&self) -> usize {
        self.runs.len()
    }

    /// The hot path: embeds `rows` into `out` (`out_dim` values per row), in
    /// runs of at most [`MAX_ROWS_PER_RUN`] consecutive rows that the policy lets
    /// share a run (one row at a time for models whose vectors would depend on
    /// their neighbours or on padding, and when the model's batch dimension is
    /// fixed). `after_run` is the strict-mode check that follows each run. On
    /// error, `out` may be partly written.
    pub fn embed_rows(
        &mut self,
        rows: &TokenRows<'_>,
        out: &mut [f32],
        out_dim: usize,
        after_run: &impl Fn() -> Result<(), EmbedError>,
    ) -> Result<(), EmbedError> {
        let count = rows.count();
        let mut first = 0;
        while first < count {
            // Each row's own length, once per run (at most MAX_ROWS_PER_RUN rows).
            let mut own_lens = [0usize; MAX_ROWS_PER_RUN];
            let n = self.next_group(rows, first, &mut own_lens);
            let group = rows.slice(first, n);
            let own_lens = &own_lens[..n];
            let len = own_lens.iter().copied().max().unwrap_or(1);
            let prepared = self.prepare(&group, own_lens, len)?;
            let out = &mut out[first * out_dim..(first + n) * out_dim];
            self.run_prepared(prepared, &group, out, out_dim, after_run)?;
            first += n;
        }
        Ok(())
    }

    /// The rows from `first` on that share the next run: their number, with
    /// their own lengths written to `own_lens`. Rows keep the caller's order.
    fn next_group(
        &self,
        rows: &TokenRows<'_>,
        first: usize,
        own_lens: &mut [usize; MAX_ROWS_PER_RUN],
    ) -> usize {
        let limit = if self.policy.may_batch() {
            MAX_ROWS_PER_RUN.min(rows.count() - first)
        } else {
            1
        };
        own_lens[0] = self.policy.row_length(self.seq_len, &rows.row(first));
        let mut n = 1;
        while n < limit {
            let own = self.policy.row_length(self.seq_len, &rows.row(first + n));
            if !self.policy.may_share(own_lens[0], own) {
                break;
            }
            own_lens[n] = own;
            n += 1;
        }
        n
    }

    /// Runs the prepared run shape (unless its output is already computed) and
    /// pools each row of `rows` into `out`.
    fn run_prepared(
        &mut self,
        (index, computed): (usize, bool),
        rows: &TokenRows<'_>,
        out: &mut [f32],
        out_dim: usize,
        after_run: &impl Fn() -> Result<(), EmbedError>,
    ) -> Result<(), EmbedError> {
        self.clock += 1;
        let run = &mut self.runs[index];
        run.last_used = self.clock;
        if computed {
            after_run()?;
            let layout = run.layout;
            return self
                .output
                .data()
                .pool_rows(layout, rows, out, out_dim, &mut self.pooled);
        }
        let outputs = self
            .session
            .run_with_options(&run.inputs[..], &run.run_options)
            .map_err(EmbedError::onnx_runtime)?;
        after_run()?;
        if self.policy.data_dependent_output {
            // ONNX Runtime allocated the output; its shape is this run's own.
            let (shape, data) = output_data(&outputs[0])?;
            let layout = OutputLayout::from_shape(
                shape,
                self.seq_len,
                rows.count(),
                self.policy.time_major,
            )?;
            if self.pooled.len() != layout.hidden() {
                return Err(EmbedError::library("invalid_hidden_dim"));
            }
            return data.pool_rows(layout, rows, out, out_dim, &mut self.pooled);
        }
        drop(outputs);
        let layout = self.runs[index].layout;
        self.output
            .data()
            .pool_rows(layout, rows, out, out_dim, &mut self.pooled)
    }

    /// The self-check's run: `rows` (each needing `own_lens` positions alone)
    /// at `len` positions, as embed runs them. Returns each row's
    /// L2-normalised pooled vector (`hidden` values, row after row) and the
    /// output shape.
    pub fn probe_run(
        &mut self,
        rows: &execution::OwnedRows,
        own_lens: &[usize],
        len: usize,
    ) -> Result<(Vec<f32>, Vec<i64>), EmbedError> {
        let rows = rows.rows();
        let prepared = self.prepare(&rows, own_lens, len)?;
        let hidden = self.pooled.len();
        let mut out = vec![0.0f32; rows.count() * hidden];
        self.run_prepared(prepared, &rows, &mut out, hidden, &|| Ok(()))?;
        Ok((out, self.runs[prepared.0].shape.clone()))
    }

    /// The output shape ONNX Runtime gives for `rows` at `len` positions (it
    /// allocates the output: nothing is preallocated for this run).
    pub fn output_shape(
        &mut self,
        rows: &execution::OwnedRows,
        own_lens: &[usize],
        len: usize,
    ) -> Result<Vec<i64>, EmbedError> {
        let (index, _) = self.prepare(&rows.rows(), own_lens, len)?;
        let options = select_output(&self.output_name, None).map_err(EmbedError::onnx_runtime)?;
        let outputs = self
            .session
            .run_with_options(&self.runs[index].inputs[..], &options)
            .map_err(EmbedError::onnx_runtime)?;
        Ok(output_data(&outputs[0])?.0.to_vec())
    }

    /// Writes `rows` (each needing `own_lens` positions alone) cut to `len` into
    /// the input storages and returns the index of the run shape's tensors,
    /// creating them on first use (then the output may already be computed: see
    /// [`Self::add_run`]).
    fn prepare(
        &mut self,
        rows: &TokenRows<'_>,
        own_lens: &[usize],
        len: usize,
    ) -> Result<(usize, bool), EmbedError> {
        let n = rows.count();
        self.reserve_inputs(n, len)?;
        for slot in &mut self.inputs {
            let elements = input_elements(&slot.shape, self.policy, n, len)?;
            let per_row = elements / n;
            if per_row == 0 {
                continue;
            }
            match &mut slot.storage {
                Storage::F32(data) => data[..elements].fill(0.0),
                Storage::I64(data) => {
                    let chunks = data.chunks_exact_mut(per_row);
                    for ((row, &own_len), dst) in rows.iter().zip(own_lens).zip(chunks) {
                        fill_row(slot.fill, &row, own_len, dst);
                    }
                }
            }
        }
        match self.runs.iter().position(|r| r.rows == n && r.len == len) {
            Some(index) => Ok((index, false)),
            None => self.add_run(n, len),
        }
    }

    /// Makes each input storage hold a run of `n` rows of `len`.
    fn reserve_inputs(&mut self, n: usize, len: usize) -> Result<(), EmbedError> {
        let mut fits = true;
        for slot in &self.inputs {
            fits &= slot.storage.len() >= input_elements(&slot.shape, self.policy, n, len)?;
        }
        if fits {
            return Ok(());
        }
        // The kept tensors view the storages about to move.
        self.runs.clear();
        for slot in &mut self.inputs {
            let elements = input_elements(&slot.shape, self.policy, n, len)?;
            match &mut slot.storage {
                Storage::I64(v) if v.len() < elements => grow(v, elements)?,
                Storage::F32(v) if v.len() < elements => grow(v, elements)?,
                _ => {}
            }
        }
        Ok(())
    }

    /// Creates the tensors of run shape (`n`, `len`): runs once with ONNX Runtime
    /// allocating the output to learn its shape, then keeps a view of the output
    /// storage for every later run. The inputs must already be written. Returns
    /// the run's index and whether the output storage already holds this run's
    /// output (copied from the first run, so the caller need not run it again).
    fn add_run(&mut self, n: usize, len: usize) -> Result<(usize, bool), EmbedError> {
        if self.runs.len() >= MAX_CACHED_SHAPES {
            if let Some(oldest) = (0..self.runs.len()).min_by_key(|&i| self.runs[i].last_used) {
                self.runs.swap_remove(oldest);
            }
        }
        let mut inputs = Vec::with_capacity(self.inputs.len());
        for slot in &mut self.inputs {
            let shape = run_shape(&slot.shape, self.policy, n, len);
            // SAFETY: `run_shape` fits the storage (`reserve_inputs`), and the view
            // lives in `self.runs`, which is cleared before any storage moves and
            // dropped before the storages.
            let view = unsafe {
                match &mut slot.storage {
                    Storage::I64(v) => tensor_over(v, &shape, TensorElementType::Int64),
                    Storage::F32(v) => tensor_over(v, &shape, TensorElementType::Float32),
                }
            };
            inputs.push(SessionInputValue::Owned(
                view.map_err(EmbedError::onnx_runtime)?,
            ));
        }
        let probe = select_output(&self.output_name, None).map_err(EmbedError::onnx_runtime)?;
        let outputs = self
            .session
            .run_with_options(&inputs[..], &probe)
            .map_err(EmbedError::onnx_runtime)?;
        let (shape, data) = output_data(&outputs[0])?;
        let shape = shape.to_vec();
        let layout = OutputLayout::from_shape(&shape, self.seq_len, n, self.policy.time_major)?;
        let (run_options, fresh) = if self.policy.data_dependent_output {
            let options = select_output(&self.output_name, None);
            (options.map_err(EmbedError::onnx_runtime)?, false)
        } else {
            let elements = run_elements(&shape)?;
            if self.output.len() < elements {
                // The kept output views point into the storage about to move.
                self.runs.clear();
                self.output.grow(elements)?;
            }
            // This run's output is kept: the caller need not run it again.
            self.output.copy_from(&data)?;
            // SAFETY: as for the inputs above; the output storage holds `elements`.
            let output = unsafe { self.output.tensor(&shape) };
            let output = output.map_err(EmbedError::onnx_runtime)?;
            let options = select_output(&self.output_name, Some(output));
            (options.map_err(EmbedError::onnx_runtime)?, true)
        };
        drop(outputs);
        self.pooled.resize(layout.hidden(), 0.0);
        self.runs.push(ShapedRun {
            rows: n,
            len,
            last_used: self.clock,
            inputs,
            run_options,
            shape,
            layout,
        });
        Ok((self.runs.len() - 1, fresh))
    }
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

fn run_elements(shape: &[i64]) -> Result<usize, EmbedError> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(usize::try_from(d).ok()?))
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

/// Grows `storage` to at least `elements` (doubling), reporting a failed
/// allocation as an error instead of aborting.
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
    let api = ort::api::ort();
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

/// Run options that compute only `name`, written into `preallocated` if given.
pub fn select_output(
    name: &str,
    preallocated: Option<DynValue>,
) -> Result<RunOptions<HasSelectedOutputs>, ort::Error> {
    let selector = OutputSelector::no_default().with(name);
    let selector = match preallocated {
        Some(value) => selector.preallocate(name, value),
        None => selector,
    };
    Ok(RunOptions::new()?.with_outputs(selector))
}

/// The read output's shape and values (f32, f16 or bf16), or the contract's
/// error for it.
fn output_data(output: &DynValue) -> Result<(&[i64], OutputData<'_>), EmbedError> {
    let ValueType::Tensor { ty, shape, .. } = output.dtype() else {
        return Err(EmbedError::library("output_not_tensor"));
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
    let api = ort::api::ort();
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
