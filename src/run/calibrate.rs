//! What a handle learns about its model at create, from short runs on its
//! own session: the self-check (the execution class, see
//! [`crate::model::execution_class`], and the output's layout), then the
//! output's shape rule and the cost model of its runs ([`learn`]).

use std::sync::atomic::Ordering;
use std::time::Instant;

use crate::error::EmbedError;
use crate::model::execution_class::{
    decide, ExecutionClass, ProbeDiffs, SelfCheck, ShapePolicy, PROBE_MAX_FULL_LEN,
    PROBE_PADDED_LEN,
};
use crate::postprocess::OutputLayout;
use crate::run::batching::CostModel;
use crate::run::group::{Group, Worker};
use crate::run::runner::ModelRunner;
use crate::run::shapes;
use crate::run::workspace::OutputMode;
use crate::tokens::TokenRows;

/// Calibrates a fresh handle on its first `worker`: the self-check (its class
/// `forced` in padded mode), then [`learn`]. Errors of the model's are not
/// returned: each embed reports them, as the contract wants.
pub(super) fn calibrate(
    runner: &mut ModelRunner,
    worker: &mut Worker,
    forced: Option<ExecutionClass>,
) -> SelfCheck {
    let check = self_check(&mut Probe { runner, worker }, forced);
    let _ = learn(runner, worker);
    check
}

/// Runs the self-check on a fresh handle, setting its policy:
/// the output layout (time-major or not), whether the output shape depends on
/// the values, and, unless `forced` (padded mode), the execution class.
///
/// Cost: five runs of at most 2 x 7 positions and one of
/// `min(seq_len, PROBE_PADDED_LEN)` (models that cannot trim: up to three runs
/// at `seq_len`); measured in docs/models.md.
fn self_check(buffers: &mut Probe<'_>, forced: Option<ExecutionClass>) -> SelfCheck {
    let start = std::time::Instant::now();
    let mut policy = buffers.policy();
    policy.class = forced.unwrap_or(ExecutionClass::Free);
    buffers.set_policy(policy);
    match measure(buffers, forced.is_none()) {
        Ok(diffs) => {
            let mut policy = buffers.policy();
            if forced.is_none() {
                policy.class = if policy.data_dependent_output {
                    ExecutionClass::Alone
                } else {
                    decide(&diffs, policy.trims, policy.batches)
                };
            }
            buffers.set_policy(policy);
            SelfCheck {
                diffs,
                elapsed: start.elapsed(),
                failure: None,
            }
        }
        Err(failure) => {
            let mut policy = buffers.policy();
            policy.class = forced.unwrap_or(ExecutionClass::Alone);
            buffers.set_policy(policy);
            SelfCheck {
                diffs: ProbeDiffs::default(),
                elapsed: start.elapsed(),
                failure: Some(failure),
            }
        }
    }
}

fn measure(buffers: &mut Probe<'_>, classify: bool) -> Result<ProbeDiffs, String> {
    let seq_len = buffers.seq_len();
    let policy = buffers.policy();
    // Runs at the probe's own length where the model trims, else at seq_len;
    // the probe's arrays hold what the longest run reads.
    let trims = policy.trims && policy.class != ExecutionClass::Padded;
    let (own, width) = if trims {
        (PROBE.len(), seq_len.min(PROBE_PADDED_LEN))
    } else {
        (seq_len, seq_len)
    };
    let (ids, mask) = probe_row(&PROBE, PROBE.len(), width);
    let alone_rows = rows_of(&[(&ids, &mask)], width);
    let (alone, shape) = buffers
        .probe_run(&alone_rows, &[own], own)
        .map_err(|e| e.to_string())?;

    // [own, 1, hidden] from a one-row run: the output is time-major.
    if shape.len() == 3 && shape[0] == own as i64 && shape[1] == 1 && own != 1 {
        let mut policy = buffers.policy();
        policy.time_major = true;
        buffers.set_policy(policy);
    }
    // The same run shape with other values (a masked position, its id 0) must
    // give the same output shape, or the output cannot be preallocated.
    let mut gap_ids = ids.clone();
    let mut gap_mask = mask.clone();
    gap_ids[2] = 0;
    gap_mask[2] = 0;
    let gap_shape = buffers
        .output_shape(&rows_of(&[(&gap_ids, &gap_mask)], width), &[own], own)
        .map_err(|e| e.to_string())?;
    if gap_shape != shape {
        let mut policy = buffers.policy();
        policy.data_dependent_output = true;
        buffers.set_policy(policy);
    }
    let policy = buffers.policy();
    // With a new layout or ONNX Runtime allocating the output, the alone
    // vector is taken again the way embed will read it.
    let alone = if policy.time_major || policy.data_dependent_output {
        buffers.reset_runs();
        buffers
            .probe_run(&alone_rows, &[own], own)
            .map_err(|e| e.to_string())?
            .0
    } else {
        alone
    };
    let mut diffs = ProbeDiffs::default();
    if !classify || policy.data_dependent_output {
        return Ok(diffs);
    }
    if policy.trims && width > own {
        let (padded, _) = buffers
            .probe_run(&alone_rows, &[own], width)
            .map_err(|e| e.to_string())?;
        diffs.padded = Some(max_diff(&alone, &padded));
    }
    if policy.batches && (policy.trims || seq_len <= PROBE_MAX_FULL_LEN) {
        let hidden = alone.len();
        let batch = |buffers: &mut Probe<'_>, other: &[i64], other_own: usize| {
            let (o_ids, o_mask) = probe_row(other, other.len(), width);
            let rows = rows_of(&[(&ids, &mask), (&o_ids, &o_mask)], width);
            let len = own.max(other_own);
            // A model whose output does not follow the batch cannot batch: not measured.
            buffers
                .probe_run(&rows, &[own, other_own], len)
                .ok()
                .map(|(v, _)| max_diff(&alone, &v[..hidden]))
        };
        if policy.trims {
            diffs.mixed_batch = batch(buffers, &PROBE_LONGER, PROBE_LONGER.len());
        }
        diffs.same_batch = batch(buffers, &PROBE_SAME_LEN, own);
    }
    Ok(diffs)
}

/// Rows laid out row after row in arrays of `width`.
fn rows_of(rows: &[(&Vec<i64>, &Vec<i64>)], width: usize) -> OwnedRows {
    OwnedRows {
        width,
        ids: rows.iter().flat_map(|r| r.0.iter().copied()).collect(),
        mask: rows.iter().flat_map(|r| r.1.iter().copied()).collect(),
    }
}

/// Probe rows that own their arrays.
struct OwnedRows {
    width: usize,
    ids: Vec<i64>,
    mask: Vec<i64>,
}

impl OwnedRows {
    fn rows(&self) -> TokenRows<'_> {
        TokenRows {
            seq_len: self.width,
            ids: &self.ids,
            mask: Some(&self.mask),
            token_types: None,
        }
    }
}

/// The self-check's view of a handle being created: its runner and first
/// worker, through which it runs probes.
struct Probe<'a> {
    runner: &'a mut ModelRunner,
    worker: &'a mut Worker,
}

impl Probe<'_> {
    fn policy(&self) -> ShapePolicy {
        self.runner.policy
    }

    /// Sets the policy; drops the kept run shapes, whose output views follow it.
    fn set_policy(&mut self, policy: ShapePolicy) {
        if policy != self.runner.policy {
            self.worker.workspace.clear_runs();
        }
        self.runner.policy = policy;
    }

    /// Drops the kept run shapes.
    fn reset_runs(&mut self) {
        self.worker.workspace.clear_runs();
    }

    fn seq_len(&self) -> usize {
        self.runner.seq_len
    }

    /// `rows` (each needing `own_lens` positions alone) at `len` positions, as
    /// embed runs them. Returns each row's L2-normalised pooled vector (`hidden`
    /// values, row after row) and the output shape.
    fn probe_run(
        &mut self,
        rows: &OwnedRows,
        own_lens: &[usize],
        len: usize,
    ) -> Result<(Vec<f32>, Vec<i64>), EmbedError> {
        let rows = rows.rows();
        let indices: Vec<u32> = (0..rows.count() as u32).collect();
        let mut group = Group::new(&rows, &indices, own_lens);
        group.len = len;
        let runner = &*self.runner;
        runner.run_group(&mut self.worker.workspace, &group, None)?;
        let shape = self.worker.workspace.last_output().0.to_vec();
        let hidden = runner.layout(&shape, indices.len())?.hidden();
        let mut out = vec![0.0f32; indices.len() * hidden];
        runner.pool_group(self.worker, &group, &mut out, hidden)?;
        Ok((out, shape))
    }

    /// The output shape ONNX Runtime gives for `rows` at `len` positions (it
    /// allocates the output).
    fn output_shape(
        &mut self,
        rows: &OwnedRows,
        own_lens: &[usize],
        len: usize,
    ) -> Result<Vec<i64>, EmbedError> {
        let rows = rows.rows();
        let indices: Vec<u32> = (0..rows.count() as u32).collect();
        let mut group = Group::new(&rows, &indices, own_lens);
        group.len = len;
        let workspace = &mut self.worker.workspace;
        self.runner
            .run_group(workspace, &group, Some(OutputMode::OrtAllocated))?;
        Ok(workspace.last_output().0.to_vec())
    }
}

/// A probe row: `ids` of which the first `valid` are unmasked, in arrays of `width`.
fn probe_row(ids: &[i64], valid: usize, width: usize) -> (Vec<i64>, Vec<i64>) {
    let mut row_ids = vec![0i64; width];
    let mut mask = vec![0i64; width];
    row_ids[..ids.len()].copy_from_slice(ids);
    mask[..valid].fill(1);
    (row_ids, mask)
}

/// Ids every text model accepts (its vocabulary has at least ten tokens).
const PROBE: [i64; 5] = [1, 5, 9, 7, 2];
const PROBE_SAME_LEN: [i64; 5] = [1, 6, 4, 8, 2];
const PROBE_LONGER: [i64; 7] = [1, 8, 3, 6, 4, 9, 2];

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The output-shape rule and the cost model, from runs on two shapes `a`
/// (one row of 5 tokens) and `b` (4 rows of 16; at `seq_len` for models
/// that cannot trim, 2 rows): each run once with ONNX Runtime allocating the
/// output (its shape shows how each dimension follows rows and length),
/// then twice more into the predicted shape, timed (the faster counts): six
/// short runs (their cost at create is in docs/performance.md).
fn learn(runner: &mut ModelRunner, worker: &mut Worker) -> Result<(), EmbedError> {
    let (short, long) = if runner.policy.trims {
        (runner.seq_len.min(8) - 3, runner.seq_len.min(16))
    } else {
        (runner.seq_len, runner.seq_len)
    };
    let a = (1, short);
    let b = match (runner.policy.batches, runner.policy.trims) {
        (false, _) => (1, long),
        (true, true) => (4, long),
        (true, false) => (2, long),
    };
    // Rows of ordinary token ids, every position valid up to its length.
    let ids: Vec<i64> = (0..runner.seq_len * b.0)
        .map(|i| 1 + (i as i64 * 7) % 9)
        .collect();
    let mask: Vec<i64> = (0..runner.seq_len * b.0)
        .map(|i| i64::from(i % runner.seq_len < long))
        .collect();
    let rows = TokenRows {
        seq_len: runner.seq_len,
        ids: &ids,
        mask: Some(&mask),
        token_types: None,
    };
    let lens = [long; 4];
    let indices = [0u32, 1, 2, 3];
    let mut probe = |runner: &ModelRunner, (n, len): (usize, usize), mode| {
        let mut group = Group::new(&rows, &indices[..n], &lens[..n]);
        group.len = len;
        let started = Instant::now();
        runner.run_group(&mut worker.workspace, &group, Some(mode))?;
        let shape = worker.workspace.last_output().0.to_vec();
        Ok::<_, EmbedError>((shape, started.elapsed().as_secs_f64()))
    };
    let (shape_a, _) = probe(runner, a, OutputMode::OrtAllocated)?;
    runner.hidden =
        OutputLayout::from_shape(&shape_a, runner.seq_len, 1, runner.policy.time_major)?.hidden();
    let (shape_b, _) = if b == a {
        (shape_a.clone(), 0.0)
    } else {
        probe(runner, b, OutputMode::OrtAllocated)?
    };
    runner.output_rules = match runner.policy.data_dependent_output {
        true => None,
        false => shapes::output_rules(a, &shape_a, b, &shape_b),
    };
    let mode = match runner.output_rules {
        Some(_) => OutputMode::Preallocated,
        None => OutputMode::OrtAllocated,
    };
    // Timed: the best of the second and third runs of each shape (other
    // work on the machine only ever makes a run slower).
    let mut timed = |runner: &ModelRunner, mode| -> Result<(f64, f64), EmbedError> {
        let (mut time_a, mut time_b) = (f64::INFINITY, f64::INFINITY);
        for _ in 0..2 {
            time_a = time_a.min(probe(runner, a, mode)?.1);
            time_b = time_b.min(probe(runner, b, mode)?.1);
        }
        Ok((time_a, time_b))
    };
    let (time_a, time_b) = match timed(runner, mode) {
        Ok(times) => times,
        Err(_) if mode == OutputMode::Preallocated => {
            // ONNX Runtime rejected a predicted shape: it allocates from now on.
            runner.output_rules = None;
            timed(runner, OutputMode::OrtAllocated)?
        }
        Err(e) => return Err(e),
    };
    runner
        .ort_allocates
        .store(runner.output_rules.is_none(), Ordering::Relaxed);
    // The probes' tensors of the other mode are never used again.
    worker.workspace.keep_runs_of(match runner.output_rules {
        Some(_) => OutputMode::Preallocated,
        None => OutputMode::OrtAllocated,
    });
    runner.cost = CostModel::from_timings(a.0 * a.1, time_a, b.0 * b.1, time_b);
    Ok(())
}
