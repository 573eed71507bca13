//! How a model's rows may be run so that **a row's vector depends only on its
//! own tokens**: never on `seq_len` padding, nor on the other rows of a batch.
//!
//! Most models respect the attention mask row by row: a row can be cut to its
//! own length and padded next to longer rows without changing its vector. Some
//! do not: a dynamically quantised model computes one quantisation scale over
//! every position of every row of a run, and a model that pools or accumulates
//! over all positions sees the padding. A short self-check on the handle's first
//! session (`crate::run::calibrate`) compares a probe row run alone at its own length,
//! padded with masked positions, next to a longer row and next to a row of its
//! own length, and picks the fastest [`ExecutionClass`] that keeps the promise.
//!
//! `C_EMBED_RUNTIME_PADDED=1` ([`PADDED_ENV`], read at create) makes every call
//! of the handle run as the legacy library did (one row at a time, all
//! `seq_len` positions, the mask as given), for hosts that must reproduce stored
//! vectors bit for bit.

use crate::env;
pub(crate) use crate::env::PADDED_ENV;
use crate::tokens::TokenInput;

/// Largest difference (absolute, per component of the L2-normalised pooled
/// vector) between two runs of the probe row that still counts as "the same
/// vector": float rounding moves mask-respecting fp32 models far less, padding
/// moves the models of classes (b) and (c) far more (the measured gaps are in
/// docs/models.md, "Which models run how", printed by tests/execution_classes.rs).
pub const PROBE_TOLERANCE: f32 = 1e-5;

/// The padded probe runs at `min(seq_len, PROBE_PADDED_LEN)` positions.
pub const PROBE_PADDED_LEN: usize = 32;

/// A model that cannot trim (no mask, or a fixed input) runs every row at
/// `seq_len`; its batch check runs only up to this `seq_len` (above it, rows
/// run one at a time without the check).
pub const PROBE_MAX_FULL_LEN: usize = 128;

/// How rows of one call may share a run, fastest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecutionClass {
    /// (a) Rows are cut to the longest row of their run and batched freely:
    /// padding and neighbours change nothing.
    Free,
    /// (b) Rows batch only with rows of the same own length (no padding in the
    /// run): neighbours change nothing, padding does.
    SameLength,
    /// (c) One row at a time at its own length.
    Alone,
    /// Legacy (`PADDED_ENV`): one row at a time at `seq_len`, the mask as given.
    Padded,
}

impl ExecutionClass {
    /// The name docs/models.md and the self-check report use.
    pub fn name(self) -> &'static str {
        match self {
            Self::Free => "a: trimmed, batched freely",
            Self::SameLength => "b: batched with rows of the same length",
            Self::Alone => "c: one row at a time at its own length",
            Self::Padded => "padded: one row at a time at seq_len (legacy)",
        }
    }
}

/// What the runs of a handle may do: the model's shape allowances, the class
/// the self-check found and the output's layout. A grouping function consults
/// [`ShapePolicy::may_batch`], [`ShapePolicy::may_pad`] and
/// [`ShapePolicy::row_length`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShapePolicy {
    /// Every input is `[batch, sequence]` with a dynamic sequence and the model
    /// takes an `attention_mask`: the sequence dimension may follow the rows.
    pub trims: bool,
    /// Every input's batch dimension is dynamic (and the output follows it).
    pub batches: bool,
    pub class: ExecutionClass,
    /// The output is `[tokens, batch, hidden]`.
    pub time_major: bool,
    /// The output's shape depends on the input values, not only on the run's
    /// shape: ONNX Runtime allocates it on each run.
    pub data_dependent_output: bool,
}

impl ShapePolicy {
    /// Several rows may share a run.
    pub fn may_batch(&self) -> bool {
        self.batches
            && !self.data_dependent_output
            && matches!(
                self.class,
                ExecutionClass::Free | ExecutionClass::SameLength
            )
    }

    /// A row may run longer than its own length (next to a longer row).
    pub fn may_pad(&self) -> bool {
        self.class == ExecutionClass::Free
    }

    /// The positions `row` runs at alone: up to its last non-zero mask value
    /// (all `seq_len` for a NULL or all-zero mask, which the contract runs in
    /// full, for models that cannot trim, and in padded mode).
    pub fn row_length(&self, seq_len: usize, row: &TokenInput<'_>) -> usize {
        if !self.trims || self.class == ExecutionClass::Padded {
            return seq_len;
        }
        match row.mask.and_then(|m| m.iter().rposition(|&v| v != 0)) {
            Some(last) => last + 1,
            None => seq_len,
        }
    }
}

/// Whether this process asked for legacy padded runs.
pub fn padded_requested() -> bool {
    env::is_on(PADDED_ENV)
}

/// The largest component difference between the probe row's vectors.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProbeDiffs {
    /// Alone at its own length vs padded with masked positions.
    pub padded: Option<f32>,
    /// Alone vs in a batch next to a longer row (so padded within the run).
    pub mixed_batch: Option<f32>,
    /// Alone vs in a batch next to a different row of its own length.
    pub same_batch: Option<f32>,
}

/// The fastest class the measured differences allow (`None`: not measured,
/// because the model cannot do it). A difference that could not be measured
/// for a model that can do it counts as a failure.
pub fn decide(diffs: &ProbeDiffs, trims: bool, batches: bool) -> ExecutionClass {
    let same = |d: Option<f32>| d.is_some_and(|d| d <= PROBE_TOLERANCE);
    let pads_ok = !trims || same(diffs.padded);
    if !batches {
        return if pads_ok {
            ExecutionClass::Free
        } else {
            ExecutionClass::Alone
        };
    }
    if pads_ok && (!trims || same(diffs.mixed_batch)) && same(diffs.same_batch) {
        ExecutionClass::Free
    } else if same(diffs.same_batch) {
        ExecutionClass::SameLength
    } else {
        ExecutionClass::Alone
    }
}

/// What the self-check found (kept for the report and the tests).
#[derive(Clone, Debug, PartialEq)]
pub struct SelfCheck {
    pub diffs: ProbeDiffs,
    /// Time the check took (its runs, their tensors and output views).
    pub elapsed: std::time::Duration,
    /// Why the check could not run, if it could not (then the class is `Alone`).
    pub failure: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diffs(padded: f32, mixed: f32, same: f32) -> ProbeDiffs {
        ProbeDiffs {
            padded: Some(padded),
            mixed_batch: Some(mixed),
            same_batch: Some(same),
        }
    }

    #[test]
    fn the_fastest_class_the_differences_allow() {
        use ExecutionClass::*;
        assert_eq!(decide(&diffs(6e-8, 1e-7, 0.0), true, true), Free);
        assert_eq!(decide(&diffs(0.3, 0.3, 1e-7), true, true), SameLength);
        assert_eq!(decide(&diffs(1e-7, 0.3, 1e-7), true, true), SameLength);
        assert_eq!(decide(&diffs(0.02, 0.04, 0.03), true, true), Alone);
        assert_eq!(decide(&diffs(0.02, 0.0, 0.0), true, false), Alone);
        assert_eq!(decide(&diffs(0.0, 0.0, 0.0), true, false), Free);
        assert_eq!(decide(&ProbeDiffs::default(), false, false), Free);
        // Not measured although the model could: not allowed.
        assert_eq!(decide(&ProbeDiffs::default(), true, true), Alone);
        let no_mixed = ProbeDiffs {
            mixed_batch: None,
            ..diffs(0.0, 0.0, 0.0)
        };
        assert_eq!(decide(&no_mixed, true, true), SameLength);
    }

    #[test]
    fn grouping_follows_the_class() {
        let mut policy = ShapePolicy {
            trims: true,
            batches: true,
            class: ExecutionClass::Free,
            time_major: false,
            data_dependent_output: false,
        };
        // Rows of any lengths share a run (the shorter ones padded).
        assert!(policy.may_batch() && policy.may_pad());
        policy.class = ExecutionClass::SameLength;
        // Only rows of the same length share a run.
        assert!(policy.may_batch() && !policy.may_pad());
        policy.class = ExecutionClass::Alone;
        assert!(!policy.may_batch());
        policy.class = ExecutionClass::Padded;
        let (ids, mask) = ([1i64; 16], [1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let row = TokenInput {
            ids: &ids,
            mask: Some(&mask),
            token_types: None,
        };
        assert_eq!(policy.row_length(16, &row), 16);
        policy.class = ExecutionClass::Alone;
        assert_eq!(policy.row_length(16, &row), 2);
    }
}
