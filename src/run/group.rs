//! What the runs of a call are made of: a [`Group`] (the rows of one run and
//! its length), [`Vectors`] (where a window's vectors go, shared by the
//! threads that run its groups), a [`Worker`] (what one thread needs to run
//! and pool groups) and a [`Caller`] (a caller's worker and grouping scratch).

use std::sync::Mutex;

use crate::error::EmbedError;
use crate::postprocess::{self, OutputElement, OutputLayout};
use crate::run::batching::Grouper;
use crate::run::workspace::Workspace;
use crate::tokens::TokenRows;

/// What one thread needs to run and pool groups: the workspace of its runs
/// and the pooling scratch. A caller has one, and so does each helper thread.
/// No allocation in steady state.
pub struct Worker {
    pub(crate) workspace: Workspace,
    /// Pooling scratch: `hidden` values.
    pub(crate) pooled: Vec<f32>,
}

impl Worker {
    /// Bytes held by the storages and the pooling scratch (not ONNX Runtime's).
    pub(crate) fn pool_bytes(&self) -> usize {
        self.workspace.pool_bytes() + self.pooled.len() * 4
    }

    /// Runs made through this worker.
    pub(crate) fn runs(&self) -> usize {
        self.workspace.runs() as usize
    }
}

/// One caller's pooled state: its worker and the grouping scratch of the
/// current window.
pub struct Caller {
    pub(crate) worker: Worker,
    pub(crate) grouper: Grouper,
    /// Each row's own length, for the current window.
    pub(crate) lens: Vec<usize>,
}

impl Caller {
    /// Run shapes whose tensors are kept.
    pub(crate) fn cached_shapes(&self) -> usize {
        self.worker.workspace.cached_shapes()
    }
}

/// The rows of one run: which rows of a window, each one's own length, and
/// the run's length (the longest of them).
pub(crate) struct Group<'a> {
    pub(crate) window: &'a TokenRows<'a>,
    pub(crate) rows: &'a [u32],
    /// Each window row's own length (indexed by row, not by place in `rows`).
    pub(crate) lens: &'a [usize],
    pub(crate) len: usize,
}

impl<'a> Group<'a> {
    pub(crate) fn new(window: &'a TokenRows<'a>, rows: &'a [u32], lens: &'a [usize]) -> Self {
        let len = rows.iter().map(|&r| lens[r as usize]).max().unwrap_or(1);
        Self {
            window,
            rows,
            lens,
            len,
        }
    }
}

/// Where a window's vectors go, `dim` values a row, shared by the threads
/// that run its groups (each row belongs to one group, so each is written
/// once; the lock is held while a group pools, far shorter than its run).
pub(crate) struct Vectors<'a> {
    pub(crate) out: Mutex<&'a mut [f32]>,
    pub(crate) dim: usize,
}

impl<'a> Vectors<'a> {
    pub(crate) fn new(out: &'a mut [f32], dim: usize) -> Self {
        Self {
            out: Mutex::new(out),
            dim,
        }
    }
}

/// Pools each row of `group` from `data` (a run's output read by `layout`)
/// into its place in `out`, `dim` values a row.
pub(crate) fn pool_typed<T: OutputElement>(
    data: &[T],
    layout: OutputLayout,
    group: &Group<'_>,
    pooled: &mut [f32],
    out: &mut [f32],
    dim: usize,
) -> Result<(), EmbedError> {
    for (index, &row) in group.rows.iter().enumerate() {
        let row = row as usize;
        postprocess::pool(data, layout, index, group.window.row(row).mask, pooled);
        postprocess::fold_and_normalize(pooled, &mut out[row * dim..(row + 1) * dim])?;
    }
    Ok(())
}
