//! What a model asks for: the create-time checks, how each input is filled, the
//! resolved input shapes, and which output is read.

use ort::value::{Outlet, TensorElementType, ValueType};

use crate::error::{CreateError, EmbedError};

/// Dimensions at or above this are treated as dynamic, like the legacy library.
const MAX_STATIC_DIM: i64 = 1_000_000;

/// Where an input's values come from on each call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputFill {
    /// The caller's `input_ids`.
    Ids,
    /// The caller's mask, or all ones.
    Mask,
    /// The caller's token types, or all zeros.
    TokenTypes,
    /// 0, 1, ..., seq_len-1 (written once at create).
    Positions,
    /// Zeros, for any other int64 input (written once at create).
    ZerosI64,
    /// Zeros, for any other float input (written once at create).
    ZerosF32,
}

impl InputFill {
    /// Whether the caller's arrays feed this input (then it holds `seq_len` values).
    pub fn from_caller(self) -> bool {
        matches!(
            self,
            Self::Ids | Self::Mask | Self::TokenTypes | Self::Positions
        )
    }
}

/// One model input, resolved for a handle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputSpec {
    pub name: String,
    pub fill: InputFill,
    pub shape: Vec<i64>,
    pub elements: usize,
}

/// The contract's create-time model checks: at least one input and one output,
/// every input a tensor, no empty names.
pub fn check_model(inputs: &[Outlet], outputs: &[Outlet]) -> Result<(), CreateError> {
    if inputs.is_empty() {
        return Err(CreateError::library("model has no inputs"));
    }
    if outputs.is_empty() {
        return Err(CreateError::library("model has no outputs"));
    }
    if let Some(input) = inputs.iter().find(|i| !i.dtype().is_tensor()) {
        return Err(CreateError::library(format!(
            "model input '{}' is not a tensor",
            input.name()
        )));
    }
    if inputs.iter().chain(outputs).any(|o| o.name().is_empty()) {
        return Err(CreateError::library(
            "model has an input or output with an empty name",
        ));
    }
    Ok(())
}

/// The output that is read: the first float tensor output. (The legacy library
/// read output 0 whatever its type, and returned garbage for an int64 output.)
pub fn select_output(outputs: &[Outlet]) -> Result<usize, CreateError> {
    outputs
        .iter()
        .position(|o| o.dtype().tensor_type() == Some(TensorElementType::Float32))
        .ok_or_else(|| CreateError::library("model has no float tensor output"))
}

/// Whether a declared dimension is left to the caller (symbolic, unknown, or
/// too large to be a real static size).
pub fn is_dynamic(dim: i64) -> bool {
    !(dim > 0 && dim < MAX_STATIC_DIM)
}

/// Resolves a declared shape: positive dimensions below 1,000,000 are kept; any
/// other becomes 1 for dimension 0, `seq_len` for dimension 1 and 1 beyond.
pub fn resolve_shape(declared: &[i64], seq_len: usize) -> Vec<i64> {
    declared
        .iter()
        .enumerate()
        .map(|(i, &d)| match (!is_dynamic(d), i) {
            (true, _) => d,
            (false, 1) => seq_len as i64,
            (false, _) => 1,
        })
        .collect()
}

/// Plans every input in model order, or says why `embed` cannot feed this model
/// (reported by each `embed`, as the legacy library did).
pub fn plan_inputs(inputs: &[Outlet], seq_len: usize) -> Result<Vec<InputSpec>, EmbedError> {
    inputs
        .iter()
        .map(|input| plan_input(input, seq_len))
        .collect()
}

fn plan_input(input: &Outlet, seq_len: usize) -> Result<InputSpec, EmbedError> {
    let ValueType::Tensor { ty, shape, .. } = input.dtype() else {
        return Err(EmbedError::library("unsupported_input_type"));
    };
    let fill = match input.name() {
        "input_ids" => InputFill::Ids,
        "attention_mask" => InputFill::Mask,
        "token_type_ids" => InputFill::TokenTypes,
        "position_ids" => InputFill::Positions,
        _ if *ty == TensorElementType::Float32 => InputFill::ZerosF32,
        _ => InputFill::ZerosI64,
    };
    let wanted = match fill {
        InputFill::ZerosF32 => TensorElementType::Float32,
        _ => TensorElementType::Int64,
    };
    if *ty != wanted {
        return Err(EmbedError::library("unsupported_input_type"));
    }
    let shape = resolve_shape(shape, seq_len);
    let elements = shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d as usize))
        .ok_or_else(|| EmbedError::library_owned(format!("input_too_large:{}", input.name())))?;
    if fill.from_caller() && elements != seq_len {
        return Err(EmbedError::library_owned(format!(
            "input_length_mismatch:{} has {elements} elements, seq_len is {seq_len}",
            input.name()
        )));
    }
    Ok(InputSpec {
        name: input.name().to_owned(),
        fill,
        shape,
        elements,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ort::value::{Shape, SymbolicDimensions};

    fn tensor(name: &str, ty: TensorElementType, dims: &[i64]) -> Outlet {
        Outlet::new(
            name,
            ValueType::Tensor {
                ty,
                shape: Shape::new(dims.iter().copied()),
                dimension_symbols: SymbolicDimensions::empty(dims.len()),
            },
        )
    }

    #[test]
    fn dynamic_dimensions_resolve_by_position() {
        assert_eq!(resolve_shape(&[-1, -1], 128), vec![1, 128]);
        assert_eq!(resolve_shape(&[0, 7, -1, 3], 16), vec![1, 7, 1, 3]);
        assert_eq!(resolve_shape(&[1_000_000, 1_000_000], 9), vec![1, 9]);
        assert_eq!(resolve_shape(&[999_999], 9), vec![999_999]);
        assert_eq!(resolve_shape(&[], 9), Vec::<i64>::new());
    }

    #[test]
    fn inputs_are_filled_by_name_and_type() {
        let i64_ = TensorElementType::Int64;
        let inputs = [
            tensor("input_ids", i64_, &[-1, -1]),
            tensor("attention_mask", i64_, &[-1, -1]),
            tensor("token_type_ids", i64_, &[-1, -1]),
            tensor("position_ids", i64_, &[1, -1]),
            tensor("extra", i64_, &[2, -1, 3]),
            tensor("bias", TensorElementType::Float32, &[1, 4]),
        ];
        let plan = plan_inputs(&inputs, 8).unwrap();
        let fills: Vec<_> = plan.iter().map(|s| s.fill).collect();
        assert_eq!(
            fills,
            [
                InputFill::Ids,
                InputFill::Mask,
                InputFill::TokenTypes,
                InputFill::Positions,
                InputFill::ZerosI64,
                InputFill::ZerosF32
            ]
        );
        assert_eq!(plan[4].shape, vec![2, 8, 3]);
        assert_eq!(plan[4].elements, 48);
        assert_eq!(plan[5].elements, 4);
    }

    #[test]
    fn unfeedable_inputs_are_reported_for_embed() {
        let int32 = [tensor("extra", TensorElementType::Int32, &[-1, -1])];
        assert_eq!(
            plan_inputs(&int32, 8).unwrap_err().to_string(),
            "std_error:unsupported_input_type"
        );
        let ids_f32 = [tensor("input_ids", TensorElementType::Float32, &[-1, -1])];
        assert_eq!(
            plan_inputs(&ids_f32, 8).unwrap_err().to_string(),
            "std_error:unsupported_input_type",
            "the caller's ids are int64: a float input_ids cannot be fed"
        );
        let static_ids = [tensor("input_ids", TensorElementType::Int64, &[1, 16])];
        assert!(plan_inputs(&static_ids, 16).is_ok());
        assert!(plan_inputs(&static_ids, 8)
            .unwrap_err()
            .to_string()
            .starts_with("std_error:input_length_mismatch:input_ids"));
    }

    #[test]
    fn output_selection_prefers_the_first_float_tensor() {
        let outputs = [
            tensor("ids_copy", TensorElementType::Int64, &[-1, -1]),
            tensor("hidden", TensorElementType::Float32, &[-1, -1, 32]),
        ];
        assert_eq!(select_output(&outputs).unwrap(), 1);
        assert!(select_output(&outputs[..1]).is_err());
    }

    #[test]
    fn create_checks() {
        let ok = [tensor("x", TensorElementType::Int64, &[1])];
        assert!(check_model(&ok, &ok).is_ok());
        assert!(check_model(&[], &ok).is_err());
        assert!(check_model(&ok, &[]).is_err());
        let unnamed = [tensor("", TensorElementType::Int64, &[1])];
        assert!(check_model(&ok, &unnamed).is_err());
    }
}
