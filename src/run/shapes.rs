//! The shapes of a run: what a model's declared inputs allow, how each input
//! is shaped and filled for a run of `n` rows of `len` positions, and how the
//! output's shape follows the run (learnt at create, see `calibrate`).

use ort::value::{Outlet, ValueType};

use crate::error::EmbedError;
use crate::model::execution_class::{ExecutionClass, ShapePolicy};
use crate::model::plan::{self, InputFill};
use crate::run::batching::Grouping;
use crate::run::workspace::Element;
use crate::tokens::TokenInput;

/// What the model's declared shapes allow (before the self-check): the
/// sequence dimension may follow the rows when every input is `[batch,
/// sequence]` with a dynamic sequence and there is an `attention_mask`; rows may
/// batch when every batch dimension is dynamic.
pub(crate) fn declared_policy(inputs: &[Outlet]) -> ShapePolicy {
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
pub(crate) fn grouping(policy: &ShapePolicy) -> Grouping {
    if !policy.may_batch() {
        Grouping::Single
    } else if policy.may_pad() {
        Grouping::Free
    } else {
        Grouping::SameLength
    }
}

/// One model input: how it is filled and the shape of one full-length row.
pub(crate) struct InputPlan {
    pub(crate) fill: InputFill,
    /// The shape of one full-length row.
    pub(crate) shape: Vec<i64>,
}

impl InputPlan {
    pub(crate) fn element(&self) -> Element {
        match self.fill {
            InputFill::ZerosF32 => Element::F32,
            _ => Element::I64,
        }
    }
}

/// How one output dimension follows the run shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DimRule {
    Const(i64),
    Rows,
    Len,
}

/// The output's shape for a run of `n` rows of `len` positions.
pub(crate) fn predicted_output(rules: &[DimRule], n: usize, len: usize) -> Vec<i64> {
    rules
        .iter()
        .map(|r| match *r {
            DimRule::Const(d) => d,
            DimRule::Rows => n as i64,
            DimRule::Len => len as i64,
        })
        .collect()
}

/// Learns the rule of each output dimension from two runs of shapes `a` and
/// `b` (rows, length) that gave `shape_a` and `shape_b`, or `None` when some
/// dimension follows neither (then ONNX Runtime allocates the output).
pub(crate) fn output_rules(
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

/// The shape of one input for a run of `n` rows of `len` positions.
pub(crate) fn run_shape(full_row: &[i64], policy: ShapePolicy, n: usize, len: usize) -> Vec<i64> {
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
pub(crate) fn input_elements(
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
pub(crate) fn fill_row(fill: InputFill, row: &TokenInput<'_>, own_len: usize, dst: &mut [i64]) {
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
