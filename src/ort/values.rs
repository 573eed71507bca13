//! ONNX Runtime values as this library uses them: a tensor over memory it
//! owns ([`tensor_over`]), and the values of an output tensor ONNX Runtime
//! allocated ([`output_data`]), in their element type.

use std::ptr::NonNull;

use ort::memory::Allocator;
use ort::value::{DynValue, TensorElementType, ValueType};
use ort::AsPointer;

use crate::error::EmbedError;
use crate::model::plan::OutputType;
use crate::postprocess::{Bf16, F16};

/// Output values to pool, in their element type.
#[derive(Clone, Copy)]
pub(crate) enum OutputData<'a> {
    F32(&'a [f32]),
    F16(&'a [F16]),
    Bf16(&'a [Bf16]),
}

impl OutputData<'_> {
    pub(crate) fn len(&self) -> usize {
        match self {
            Self::F32(d) => d.len(),
            Self::F16(d) => d.len(),
            Self::Bf16(d) => d.len(),
        }
    }
}

/// The element count of a shape, or an error for a negative or overflowing one.
pub(crate) fn elements(shape: &[i64]) -> Result<usize, EmbedError> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(usize::try_from(d).ok()?))
        .ok_or_else(|| EmbedError::library("run_too_large"))
}

/// An ONNX Runtime tensor of `shape` over the first elements of `storage`,
/// owned as a value (so it can be a preallocated output) but not owning the
/// memory.
///
/// # Safety
/// `storage` holds at least the shape's element count, and the returned value
/// is dropped before `storage` is resized, moved or dropped.
/// `element` is the ONNX type of `T`'s values (`T` has its size and layout).
pub(crate) unsafe fn tensor_over<T: Copy>(
    storage: &mut [T],
    shape: &[i64],
    element: TensorElementType,
) -> Result<DynValue, ort::Error> {
    let allocator = Allocator::default();
    let bytes = std::mem::size_of_val(storage);
    let mut value = std::ptr::null_mut();
    let api = ort::api();
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

/// The read output's shape and values (f32, f16 or bf16), or the contract's
/// error for it.
pub(crate) fn output_data(output: &DynValue) -> Result<(&[i64], OutputData<'_>), EmbedError> {
    let ValueType::Tensor { ty, shape, .. } = output.dtype() else {
        return Err(EmbedError::library(crate::error_strings::OUTPUT_NOT_TENSOR));
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
    let count = elements(shape)?;
    if count == 0 {
        return Ok(&[]);
    }
    let api = ort::api();
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
