//! From the model's output tensor to the caller's vector: validate the output
//! shape, mean-pool the valid tokens, fold to `out_dim` and L2-normalise.
//!
//! The arithmetic (f32 sums in token order, `1.0f / valid`, squared norm in
//! double) is the legacy library's, so vectors agree with it bit for bit on the
//! same ONNX Runtime output. float16 and bfloat16 outputs are widened to f32
//! (exactly: every such value is an f32) and pooled the same way.

use crate::error::EmbedError;
use crate::error_strings::{
    EMPTY_OUTPUT, INVALID_HIDDEN_DIM, INVALID_TOKEN_DIM, NON_FINITE_OUTPUT, UNSUPPORTED_OUTPUT_RANK,
};

/// Largest accepted hidden size (last output dimension).
pub const MAX_HIDDEN: i64 = 16_384;

/// One element of the read output, widened to f32 for pooling.
pub trait OutputElement: Copy + Default + 'static {
    fn to_f32(self) -> f32;
}

impl OutputElement for f32 {
    #[inline]
    fn to_f32(self) -> f32 {
        self
    }
}

/// An IEEE 754 half-precision value (ONNX `float16`), as its bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(transparent)]
pub struct F16(pub u16);

/// A bfloat16 value (ONNX `bfloat16`): the upper half of an f32, as its bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(transparent)]
pub struct Bf16(pub u16);

impl OutputElement for F16 {
    /// Exact: every half value, subnormals, infinities and NaN included, is an f32.
    #[inline]
    fn to_f32(self) -> f32 {
        let bits = u32::from(self.0);
        let sign = (bits & 0x8000) << 16;
        let exponent = (bits >> 10) & 0x1f;
        let mantissa = bits & 0x3ff;
        let magnitude = match exponent {
            0 => {
                // Zero or subnormal: mantissa * 2^-24, exact in f32.
                let value = mantissa as f32 * (1.0 / 16_777_216.0);
                return f32::from_bits(sign | value.to_bits());
            }
            0x1f => 0x7f80_0000 | (mantissa << 13),
            _ => ((exponent + 112) << 23) | (mantissa << 13),
        };
        f32::from_bits(sign | magnitude)
    }
}

impl OutputElement for Bf16 {
    #[inline]
    fn to_f32(self) -> f32 {
        f32::from_bits(u32::from(self.0) << 16)
    }
}

/// How to read one row's values in a validated output tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputLayout {
    /// Rank >= 3: mean-pool `tokens` vectors of `hidden` values, `token_stride`
    /// apart; row `r` starts at `r * row_stride`. Batch-major `[batch, tokens,
    /// hidden]` has `token_stride == hidden`; a time-major `[tokens, batch,
    /// hidden]` output has `row_stride == hidden`.
    Tokens {
        tokens: usize,
        hidden: usize,
        row_stride: usize,
        token_stride: usize,
    },
    /// Rank 2: the row's first `hidden` values are the embedding.
    FirstRow { hidden: usize, row_stride: usize },
}

impl OutputLayout {
    /// Validates the output shape of a run of `rows` rows for a handle whose
    /// effective length is `seq_len`. `time_major`: the model's output is
    /// `[tokens, batch, hidden]` (found at create, see `self_check`).
    ///
    /// An output with no elements is `empty_output` whatever its rank, checked
    /// first (as the legacy library did), so a zero token dimension reads as
    /// empty; `invalid_token_dim` remains for the impossible negative size.
    pub fn from_shape(
        shape: &[i64],
        seq_len: usize,
        rows: usize,
        time_major: bool,
    ) -> Result<Self, EmbedError> {
        let rank = shape.len();
        if rank == 0 || shape.contains(&0) {
            return Err(EmbedError::library(EMPTY_OUTPUT));
        }
        if rank == 1 {
            return Err(EmbedError::library(UNSUPPORTED_OUTPUT_RANK));
        }
        let hidden = shape[rank - 1];
        if !(1..=MAX_HIDDEN).contains(&hidden) {
            return Err(EmbedError::library(INVALID_HIDDEN_DIM));
        }
        let hidden = hidden as usize;
        let elements = shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(usize::try_from(d).ok()?))
            .ok_or(EmbedError::library(INVALID_TOKEN_DIM))?;
        let batch_dim = usize::from(time_major && rank == 3);
        if rows > 1 && usize::try_from(shape[batch_dim]) != Ok(rows) {
            return Err(EmbedError::library(
                crate::error_strings::BATCH_OUTPUT_MISMATCH,
            ));
        }
        if rank == 2 {
            return Ok(Self::FirstRow {
                hidden,
                row_stride: elements / rows.max(1),
            });
        }
        let token_dim = if batch_dim == 1 { 0 } else { rank - 2 };
        let tokens = seq_len.min(shape[token_dim] as usize);
        Ok(if batch_dim == 1 {
            Self::Tokens {
                tokens,
                hidden,
                row_stride: hidden,
                token_stride: shape[1] as usize * hidden,
            }
        } else {
            Self::Tokens {
                tokens,
                hidden,
                row_stride: elements / rows.max(1),
                token_stride: hidden,
            }
        })
    }

    pub fn hidden(&self) -> usize {
        match *self {
            Self::Tokens { hidden, .. } | Self::FirstRow { hidden, .. } => hidden,
        }
    }
}

/// Pools row `row` of `output` (laid out as `layout` says) into `pooled`
/// (`hidden` values).
///
/// `mask` holds the caller's attention mask for that row (`None`: every token is valid).
pub fn pool<T: OutputElement>(
    output: &[T],
    layout: OutputLayout,
    row: usize,
    mask: Option<&[i64]>,
    pooled: &mut [f32],
) {
    match layout {
        OutputLayout::FirstRow { hidden, row_stride } => {
            let start = row * row_stride;
            for (dst, &x) in pooled.iter_mut().zip(&output[start..start + hidden]) {
                *dst = x.to_f32();
            }
        }
        OutputLayout::Tokens {
            tokens,
            hidden,
            row_stride,
            token_stride,
        } => {
            let start = row * row_stride;
            let token = |t: usize| &output[start + t * token_stride..][..hidden];
            pooled.fill(0.0);
            let mut valid = 0usize;
            for t in 0..tokens {
                if mask.is_none_or(|m| m.get(t).is_some_and(|&v| v > 0)) {
                    valid += 1;
                    for (acc, &x) in pooled.iter_mut().zip(token(t)) {
                        *acc += x.to_f32();
                    }
                }
            }
            if valid == 0 {
                for (dst, &x) in pooled.iter_mut().zip(token(0)) {
                    *dst = x.to_f32();
                }
            } else {
                let inv = 1.0f32 / valid as f32;
                pooled.iter_mut().for_each(|x| *x *= inv);
            }
        }
    }
}

/// Writes `pooled` folded to `out.len()` values and L2-normalised into `out`.
/// A NaN or infinite value among those kept fails with `non_finite_output`
/// before `out` is written (a host would store a poisoned vector). Finite kept
/// values give a finite vector: each is at most the norm.
pub fn fold_and_normalize(pooled: &[f32], out: &mut [f32]) -> Result<(), EmbedError> {
    let n = pooled.len().min(out.len());
    if !pooled[..n].iter().all(|x| x.is_finite()) {
        return Err(EmbedError::library(NON_FINITE_OUTPUT));
    }
    out[..n].copy_from_slice(&pooled[..n]);
    out[n..].fill(0.0);
    let norm_sq: f64 = out[..n].iter().map(|&x| f64::from(x) * f64::from(x)).sum();
    if norm_sq > 1e-12 {
        let scale = (1.0 / norm_sq.sqrt()) as f32;
        out[..n].iter_mut().for_each(|x| *x *= scale);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(shape: &[i64]) -> String {
        OutputLayout::from_shape(shape, 8, 1, false)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn shapes_are_validated_with_the_contract_errors() {
        assert_eq!(err(&[]), "std_error:empty_output");
        assert_eq!(err(&[1, 0]), "std_error:empty_output");
        assert_eq!(err(&[1, 0, 4]), "std_error:empty_output");
        assert_eq!(err(&[1, -1, 4]), "std_error:invalid_token_dim");
        assert_eq!(err(&[0, 3, 4]), "std_error:empty_output");
        assert_eq!(err(&[5]), "std_error:unsupported_output_rank");
        assert_eq!(err(&[1, 8, 16_385]), "std_error:invalid_hidden_dim");
        assert_eq!(err(&[1, 8, -3]), "std_error:invalid_hidden_dim");
        assert_eq!(
            OutputLayout::from_shape(&[1, 128, 384], 8, 1, false),
            Ok(OutputLayout::Tokens {
                tokens: 8,
                hidden: 384,
                row_stride: 128 * 384,
                token_stride: 384
            })
        );
        assert_eq!(
            OutputLayout::from_shape(&[1, 4, 384], 8, 1, false),
            Ok(OutputLayout::Tokens {
                tokens: 4,
                hidden: 384,
                row_stride: 4 * 384,
                token_stride: 384
            })
        );
        assert_eq!(
            OutputLayout::from_shape(&[3, 16], 8, 3, false),
            Ok(OutputLayout::FirstRow {
                hidden: 16,
                row_stride: 16
            })
        );
        assert_eq!(
            OutputLayout::from_shape(&[4, 16], 8, 3, false).unwrap_err(),
            EmbedError::library(crate::error_strings::BATCH_OUTPUT_MISMATCH)
        );
    }

    #[test]
    fn time_major_outputs_are_read_along_their_first_dimension() {
        let layout = OutputLayout::from_shape(&[3, 2, 2], 8, 2, true).unwrap();
        assert_eq!(
            layout,
            OutputLayout::Tokens {
                tokens: 3,
                hidden: 2,
                row_stride: 2,
                token_stride: 4
            }
        );
        // [token][row][hidden]: row 1's tokens are (10, 20), (30, 40), (50, 60).
        let output = [
            1.0, 2.0, 10.0, 20.0, 3.0, 4.0, 30.0, 40.0, 5.0, 6.0, 50.0, 60.0,
        ];
        let mut pooled = [0.0; 2];
        pool(&output, layout, 1, Some(&[1, 1, 0]), &mut pooled);
        assert_eq!(pooled, [20.0, 30.0]);
        pool(&output, layout, 0, None, &mut pooled);
        assert_eq!(pooled, [3.0, 4.0]);
        assert_eq!(
            OutputLayout::from_shape(&[3, 5, 2], 8, 2, true).unwrap_err(),
            EmbedError::library(crate::error_strings::BATCH_OUTPUT_MISMATCH)
        );
    }

    #[test]
    fn mean_pool_skips_masked_tokens_and_ignores_tokens_past_the_layout() {
        // 3 tokens of 2 values; the third is masked; a 4th row is past `tokens`.
        let output = [1.0, 2.0, 3.0, 6.0, 100.0, 100.0, 50.0, 50.0];
        let layout = OutputLayout::Tokens {
            tokens: 3,
            hidden: 2,
            row_stride: 8,
            token_stride: 2,
        };
        let mut pooled = [0.0; 2];
        pool(&output, layout, 0, Some(&[1, 1, 0, 1]), &mut pooled);
        assert_eq!(pooled, [2.0, 4.0]);
        pool(&output, layout, 0, None, &mut pooled);
        assert_eq!(pooled, [104.0 / 3.0, 108.0 / 3.0].map(|x: f64| x as f32));
    }

    #[test]
    fn no_valid_token_uses_token_zero_as_is() {
        let output = [3.0, 4.0, 9.0, 9.0];
        let layout = OutputLayout::Tokens {
            tokens: 2,
            hidden: 2,
            row_stride: 4,
            token_stride: 2,
        };
        let mut pooled = [0.0; 2];
        pool(&output, layout, 0, Some(&[0, -1]), &mut pooled);
        assert_eq!(pooled, [3.0, 4.0]);
    }

    #[test]
    fn half_precision_values_widen_exactly() {
        let f16 = |bits| F16(bits).to_f32();
        assert_eq!(f16(0x3c00), 1.0);
        assert_eq!(f16(0xc000), -2.0);
        assert_eq!(f16(0x7bff), 65504.0);
        assert_eq!(f16(0x0001), 2f32.powi(-24), "smallest subnormal");
        assert_eq!(f16(0x03ff), 1023.0 * 2f32.powi(-24), "largest subnormal");
        assert_eq!(f16(0x0400), 2f32.powi(-14), "smallest normal");
        assert_eq!(f16(0x8000).to_bits(), (-0.0f32).to_bits());
        assert_eq!(f16(0x7c00), f32::INFINITY);
        assert_eq!(f16(0xfc00), f32::NEG_INFINITY);
        assert!(f16(0x7e00).is_nan());
        assert_eq!(f16(0x3555), 0.333_251_95);
        assert_eq!(Bf16(0x3f80).to_f32(), 1.0);
        assert_eq!(Bf16(0xc0a0).to_f32(), -5.0);
        assert!(Bf16(0x7fc0).to_f32().is_nan());
        let layout = OutputLayout::FirstRow {
            hidden: 2,
            row_stride: 2,
        };
        let mut pooled = [0.0; 2];
        pool(&[F16(0x3c00), F16(0x4000)], layout, 0, None, &mut pooled);
        assert_eq!(pooled, [1.0, 2.0]);
    }

    #[test]
    fn fold_truncates_pads_and_normalises() {
        let mut out = [9.0f32; 4];
        fold_and_normalize(&[3.0, 4.0], &mut out).unwrap();
        assert_eq!(out, [0.6, 0.8, 0.0, 0.0]);
        let mut short = [0.0f32; 1];
        fold_and_normalize(&[-2.0, 4.0], &mut short).unwrap();
        assert_eq!(short, [-1.0]);
        let mut tiny = [0.0f32; 2];
        fold_and_normalize(&[1e-7, 0.0], &mut tiny).unwrap();
        assert_eq!(
            tiny,
            [1e-7, 0.0],
            "norm below 1e-12 leaves the vector as it is"
        );
    }

    #[test]
    fn non_finite_values_fail_before_the_vector_is_written() {
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let mut out = [7.0f32; 2];
            assert_eq!(
                fold_and_normalize(&[1.0, bad], &mut out).unwrap_err(),
                EmbedError::library(NON_FINITE_OUTPUT)
            );
            assert_eq!(out, [7.0, 7.0], "out untouched");
            // A value folded away does not reach the vector.
            let mut short = [0.0f32; 1];
            fold_and_normalize(&[2.0, bad], &mut short).unwrap();
            assert_eq!(short, [1.0]);
        }
        let mut big = [0.0f32; 2];
        fold_and_normalize(&[f32::MAX, f32::MAX], &mut big).unwrap();
        assert!(big.iter().all(|x| x.is_finite()));
    }
}
