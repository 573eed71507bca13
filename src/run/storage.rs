//! The storage vectors of a workspace, one per input and one for the read
//! output, in their element types. Growing or freeing one moves or frees the
//! memory tensors may view: those are `unsafe fn`, called only by
//! [`crate::run::tensors::TensorStore`] right after it drops its views.

use ort::value::{DynValue, TensorElementType};

use crate::error::EmbedError;
use crate::model::plan::OutputType;
use crate::ort::values::{tensor_over, OutputData};
use crate::postprocess::{Bf16, F16};

/// One input's storage, in its element type.
pub(super) enum Storage {
    I64(Vec<i64>),
    F32(Vec<f32>),
}

impl Storage {
    pub(super) fn len(&self) -> usize {
        match self {
            Self::I64(v) => v.len(),
            Self::F32(v) => v.len(),
        }
    }

    pub(super) fn bytes(&self) -> usize {
        match self {
            Self::I64(v) => v.len() * 8,
            Self::F32(v) => v.len() * 4,
        }
    }

    /// # Safety
    /// No tensor views this storage (growing may move it).
    pub(super) unsafe fn grow(&mut self, elements: usize) -> Result<(), EmbedError> {
        match self {
            Self::I64(v) => grow(v, elements),
            Self::F32(v) => grow(v, elements),
        }
    }

    /// # Safety
    /// No tensor views this storage (it is freed).
    pub(super) unsafe fn release(&mut self) {
        *self = match self {
            Self::I64(_) => Self::I64(Vec::new()),
            Self::F32(_) => Self::F32(Vec::new()),
        };
    }
}

/// The read output's storage, in its element type.
pub(super) enum OutputStorage {
    F32(Vec<f32>),
    F16(Vec<F16>),
    Bf16(Vec<Bf16>),
}

impl OutputStorage {
    pub(super) fn new(ty: OutputType) -> Self {
        match ty {
            OutputType::F32 => Self::F32(Vec::new()),
            OutputType::F16 => Self::F16(Vec::new()),
            OutputType::Bf16 => Self::Bf16(Vec::new()),
        }
    }

    pub(super) fn len(&self) -> usize {
        match self {
            Self::F32(v) => v.len(),
            Self::F16(v) => v.len(),
            Self::Bf16(v) => v.len(),
        }
    }

    pub(super) fn bytes(&self) -> usize {
        match self {
            Self::F32(v) => v.len() * 4,
            Self::F16(v) => v.len() * 2,
            Self::Bf16(v) => v.len() * 2,
        }
    }

    /// # Safety
    /// No tensor views this storage (growing may move it).
    pub(super) unsafe fn grow(&mut self, elements: usize) -> Result<(), EmbedError> {
        match self {
            Self::F32(v) => grow(v, elements),
            Self::F16(v) => grow(v, elements),
            Self::Bf16(v) => grow(v, elements),
        }
    }

    /// Gives the memory back (same element type).
    ///
    /// # Safety
    /// No tensor views this storage (it is freed).
    pub(super) unsafe fn release(&mut self) {
        *self = match self {
            Self::F32(_) => Self::F32(Vec::new()),
            Self::F16(_) => Self::F16(Vec::new()),
            Self::Bf16(_) => Self::Bf16(Vec::new()),
        };
    }

    /// A tensor of `shape` over this storage.
    ///
    /// # Safety
    /// As [`tensor_over`].
    pub(super) unsafe fn tensor(&mut self, shape: &[i64]) -> Result<DynValue, ort::Error> {
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
    pub(super) fn copy_from(&mut self, data: &OutputData<'_>) -> Result<(), EmbedError> {
        match (self, data) {
            (Self::F32(v), OutputData::F32(d)) => v[..d.len()].copy_from_slice(d),
            (Self::F16(v), OutputData::F16(d)) => v[..d.len()].copy_from_slice(d),
            (Self::Bf16(v), OutputData::Bf16(d)) => v[..d.len()].copy_from_slice(d),
            _ => return Err(EmbedError::library("output_not_float")),
        }
        Ok(())
    }

    /// The first `elements` values.
    pub(super) fn data(&self, elements: usize) -> OutputData<'_> {
        match self {
            Self::F32(v) => OutputData::F32(&v[..elements]),
            Self::F16(v) => OutputData::F16(&v[..elements]),
            Self::Bf16(v) => OutputData::Bf16(&v[..elements]),
        }
    }
}

/// Grows `storage` to at least `elements` (doubling, but never past twice what
/// is asked), reporting a failed allocation as an error instead of aborting.
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
