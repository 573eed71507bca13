//! What a model asks for: the create-time checks, how each input is filled, the
//! resolved input shapes, and which output is read.
//!
//! An input the contract can never fill (a token input that is not int64, an
//! input of any other type than int64 or float, a caller-fed input whose static
//! length is not `seq_len`, a zero-filled input too large for any sane model)
//! fails `create`, naming the input, its type and shape and why; the legacy
//! library opened such models and failed every embed.

use std::fmt::Write;

use ort::value::{Outlet, TensorElementType, ValueType};

use crate::error::CreateError;
use crate::error_strings::{INPUT_LENGTH_MISMATCH, INPUT_TOO_LARGE, UNSUPPORTED_INPUT_TYPE};

/// Dimensions at or above this are treated as dynamic, like the legacy library.
const MAX_STATIC_DIM: i64 = 1_000_000;

/// Largest input the library fills with zeros for one row (bytes): 256 MiB.
/// Above it a model's extra input is refused at create, with the bytes it would need.
pub const MAX_ZERO_INPUT_BYTES: usize = 256 << 20;

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
    pub fn is_caller_fed(self) -> bool {
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

/// A model input or output as the checks below see it: its name and type.
///
/// The session's are `ort`'s `Outlet`s; the unit tests use a plain struct,
/// since making an `Outlet` calls into ONNX Runtime.
pub trait Port {
    fn name(&self) -> &str;
    fn dtype(&self) -> &ValueType;
}

impl Port for Outlet {
    fn name(&self) -> &str {
        Outlet::name(self)
    }

    fn dtype(&self) -> &ValueType {
        Outlet::dtype(self)
    }
}

/// The contract's create-time model checks: at least one input and one output,
/// every input a tensor, no empty names.
pub fn check_model<P: Port>(inputs: &[P], outputs: &[P]) -> Result<(), CreateError> {
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

/// The element types of an output that the library reads (pooled in f32).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputType {
    F32,
    F16,
    Bf16,
}

impl OutputType {
    pub fn of(ty: TensorElementType) -> Option<Self> {
        match ty {
            TensorElementType::Float32 => Some(Self::F32),
            TensorElementType::Float16 => Some(Self::F16),
            TensorElementType::Bfloat16 => Some(Self::Bf16),
            _ => None,
        }
    }
}

/// The output that is read: the first floating-point tensor output (f32, f16 or
/// bf16), and its type. (The legacy library read output 0 whatever its type, and
/// returned garbage for an int64 output.)
pub fn select_output(outputs: &[impl Port]) -> Result<(usize, OutputType), CreateError> {
    outputs
        .iter()
        .enumerate()
        .find_map(|(i, o)| Some((i, OutputType::of(o.dtype().tensor_type()?)?)))
        .ok_or_else(|| {
            CreateError::library("model has no float tensor output (float, float16 or bfloat16)")
        })
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

/// Plans every input in model order, or says why the contract can never feed
/// this model (a create error).
pub fn plan_inputs(inputs: &[impl Port], seq_len: usize) -> Result<Vec<InputSpec>, CreateError> {
    inputs
        .iter()
        .map(|input| plan_input(input, seq_len))
        .collect()
}

fn plan_input(input: &impl Port, seq_len: usize) -> Result<InputSpec, CreateError> {
    let refuse = |why: &str| {
        CreateError::library(format!(
            "{UNSUPPORTED_INPUT_TYPE}: input '{}' is {}, {why}",
            input.name(),
            describe(input.dtype())
        ))
    };
    let ValueType::Tensor { ty, shape, .. } = input.dtype() else {
        return Err(refuse("not a tensor"));
    };
    let fill = match input.name() {
        "input_ids" => InputFill::Ids,
        "attention_mask" => InputFill::Mask,
        "token_type_ids" => InputFill::TokenTypes,
        "position_ids" => InputFill::Positions,
        _ if *ty == TensorElementType::Float32 => InputFill::ZerosF32,
        _ if *ty == TensorElementType::Int64 => InputFill::ZerosI64,
        _ => {
            return Err(refuse(
                "the contract fills other inputs with int64 or float zeros only",
            ))
        }
    };
    if fill.is_caller_fed() && *ty != TensorElementType::Int64 {
        return Err(refuse("the contract feeds it int64 token values"));
    }
    let shape = resolve_shape(shape, seq_len);
    let bytes_per_element = if fill == InputFill::ZerosF32 { 4 } else { 8 };
    let bytes = shape
        .iter()
        .try_fold(bytes_per_element, |n: usize, &d| n.checked_mul(d as usize))
        .filter(|&b| b <= MAX_ZERO_INPUT_BYTES || fill.is_caller_fed())
        .ok_or_else(|| {
            let needed = shape
                .iter()
                .map(|&d| d as u128)
                .product::<u128>()
                .saturating_mul(bytes_per_element as u128);
            CreateError::library(format!(
                "{INPUT_TOO_LARGE}: input '{}' is {}, its zeros for one row would take {needed} bytes \
                 (the limit is {MAX_ZERO_INPUT_BYTES})",
                input.name(),
                describe(input.dtype())
            ))
        })?;
    let elements = bytes / bytes_per_element;
    if fill.is_caller_fed() && elements != seq_len {
        return Err(CreateError::library(format!(
            "{INPUT_LENGTH_MISMATCH}: input '{}' is {}, {elements} values per row, and seq_len is \
             {seq_len}: the contract feeds it the caller's seq_len values",
            input.name(),
            describe(input.dtype())
        )));
    }
    Ok(InputSpec {
        name: input.name().to_owned(),
        fill,
        shape,
        elements,
    })
}

/// An input's type and shape as ONNX tools show them: `tensor(float) [batch, 128]`.
pub fn describe(value: &ValueType) -> String {
    let ValueType::Tensor {
        ty,
        shape,
        dimension_symbols,
    } = value
    else {
        return value.to_string();
    };
    let mut text = format!("tensor({}) [", onnx_type_name(*ty));
    for (i, &d) in shape.iter().enumerate() {
        let sep = if i == 0 { "" } else { ", " };
        let _ = match dimension_symbols.get(i).filter(|s| d < 0 && !s.is_empty()) {
            Some(symbol) => write!(text, "{sep}{symbol}"),
            None if d < 0 => write!(text, "{sep}?"),
            None => write!(text, "{sep}{d}"),
        };
    }
    text.push(']');
    text
}

/// ONNX's name of an element type (`float`, `int64`, `string`, ...).
fn onnx_type_name(ty: TensorElementType) -> String {
    let name = match ty {
        TensorElementType::Float32 => "float",
        TensorElementType::Float16 => "float16",
        TensorElementType::Bfloat16 => "bfloat16",
        TensorElementType::Float64 => "double",
        TensorElementType::Int8 => "int8",
        TensorElementType::Int16 => "int16",
        TensorElementType::Int32 => "int32",
        TensorElementType::Int64 => "int64",
        TensorElementType::Uint8 => "uint8",
        TensorElementType::Uint16 => "uint16",
        TensorElementType::Uint32 => "uint32",
        TensorElementType::Uint64 => "uint64",
        TensorElementType::Bool => "bool",
        TensorElementType::String => "string",
        other => return other.to_string(),
    };
    name.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ort::value::{Shape, SymbolicDimensions};

    /// A model port that needs no ONNX Runtime.
    struct TestPort {
        name: String,
        dtype: ValueType,
    }

    impl Port for TestPort {
        fn name(&self) -> &str {
            &self.name
        }

        fn dtype(&self) -> &ValueType {
            &self.dtype
        }
    }

    fn tensor(name: &str, ty: TensorElementType, dims: &[i64]) -> TestPort {
        TestPort {
            name: name.to_owned(),
            dtype: ValueType::Tensor {
                ty,
                shape: Shape::new(dims.iter().copied()),
                dimension_symbols: SymbolicDimensions::empty(dims.len()),
            },
        }
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
    fn inputs_the_contract_cannot_fill_are_refused_at_create() {
        let err =
            |inputs: &[TestPort], seq_len| plan_inputs(inputs, seq_len).unwrap_err().to_string();
        let int32 = [tensor("extra", TensorElementType::Int32, &[-1, -1])];
        assert_eq!(
            err(&int32, 8),
            "std_create_error:unsupported_input_type: input 'extra' is tensor(int32) [?, ?], \
             the contract fills other inputs with int64 or float zeros only"
        );
        let mask_f32 = [tensor(
            "attention_mask",
            TensorElementType::Float32,
            &[-1, 128],
        )];
        assert_eq!(
            err(&mask_f32, 128),
            "std_create_error:unsupported_input_type: input 'attention_mask' is tensor(float) \
             [?, 128], the contract feeds it int64 token values"
        );
        let text = [tensor("text", TensorElementType::String, &[1])];
        assert!(err(&text, 8).contains("input 'text' is tensor(string) [1]"));
        let static_ids = [tensor("input_ids", TensorElementType::Int64, &[1, 16])];
        assert!(plan_inputs(&static_ids, 16).is_ok());
        assert_eq!(
            err(&static_ids, 8),
            "std_create_error:input_length_mismatch: input 'input_ids' is tensor(int64) [1, 16], \
             16 values per row, and seq_len is 8: the contract feeds it the caller's seq_len values"
        );
        let huge = [tensor(
            "extra",
            TensorElementType::Float32,
            &[1, 100_000, 1_000],
        )];
        assert_eq!(
            err(&huge, 8),
            "std_create_error:input_too_large: input 'extra' is tensor(float) [1, 100000, 1000], \
             its zeros for one row would take 400000000 bytes (the limit is 268435456)"
        );
        let limit = [tensor("extra", TensorElementType::Float32, &[1, 1 << 26])];
        assert!(
            plan_inputs(&limit, 8).is_ok(),
            "exactly the limit is accepted"
        );
    }

    #[test]
    fn output_selection_reads_the_first_floating_point_tensor() {
        let outputs = [
            tensor("ids_copy", TensorElementType::Int64, &[-1, -1]),
            tensor("hidden", TensorElementType::Float16, &[-1, -1, 32]),
            tensor("hidden32", TensorElementType::Float32, &[-1, -1, 32]),
        ];
        assert_eq!(select_output(&outputs).unwrap(), (1, OutputType::F16));
        assert!(select_output(&outputs[..1]).is_err());
        let bf16 = [tensor("h", TensorElementType::Bfloat16, &[-1, 32])];
        assert_eq!(select_output(&bf16).unwrap(), (0, OutputType::Bf16));
    }

    #[test]
    fn create_checks() {
        let ok = [tensor("x", TensorElementType::Int64, &[1])];
        assert!(check_model(&ok, &ok).is_ok());
        assert!(check_model(&[] as &[TestPort], &ok).is_err());
        assert!(check_model(&ok, &[] as &[TestPort]).is_err());
        let unnamed = [tensor("", TensorElementType::Int64, &[1])];
        assert!(check_model(&ok, &unnamed).is_err());
    }
}
