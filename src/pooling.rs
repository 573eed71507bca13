//! From the model's output tensor to the caller's vector: validate the output
//! shape, mean-pool the valid tokens, fold to `out_dim` and L2-normalise.
//!
//! The arithmetic (f32 sums in token order, `1.0f / valid`, squared norm in
//! double) is the legacy library's, so vectors agree with it bit for bit on the
//! same ONNX Runtime output.

use crate::error::EmbedError;

/// Largest accepted hidden size (last output dimension).
pub const MAX_HIDDEN: i64 = 16_384;

/// How to read a validated output tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputLayout {
    /// Rank >= 3: mean-pool `tokens` rows of `hidden` values (the first batch item).
    Tokens { tokens: usize, hidden: usize },
    /// Rank 2: the first row is the embedding.
    FirstRow { hidden: usize },
}

impl OutputLayout {
    /// Validates an output shape for a handle whose effective length is `seq_len`.
    ///
    /// An output with no elements is `empty_output` whatever its rank, checked
    /// first (as the legacy library did), so a zero token dimension reads as
    /// empty; `invalid_token_dim` remains for the impossible negative size.
    pub fn from_shape(shape: &[i64], seq_len: usize) -> Result<Self, EmbedError> {
        let rank = shape.len();
        if rank == 0 || shape.contains(&0) {
            return Err(EmbedError::library("empty_output"));
        }
        if rank == 1 {
            return Err(EmbedError::library("unsupported_output_rank"));
        }
        let hidden = shape[rank - 1];
        if !(1..=MAX_HIDDEN).contains(&hidden) {
            return Err(EmbedError::library("invalid_hidden_dim"));
        }
        let hidden = hidden as usize;
        if rank == 2 {
            return Ok(Self::FirstRow { hidden });
        }
        let token_dim = shape[rank - 2];
        if token_dim <= 0 {
            return Err(EmbedError::library("invalid_token_dim"));
        }
        let tokens = seq_len.min(token_dim as usize);
        Ok(Self::Tokens { tokens, hidden })
    }

    pub fn hidden(&self) -> usize {
        match *self {
            Self::Tokens { hidden, .. } | Self::FirstRow { hidden } => hidden,
        }
    }
}

/// Pools `output` (laid out as `layout` says) into `pooled` (`hidden` values).
///
/// `mask` holds the caller's attention mask (`None`: every token is valid).
pub fn pool(output: &[f32], layout: OutputLayout, mask: Option<&[i64]>, pooled: &mut [f32]) {
    match layout {
        OutputLayout::FirstRow { hidden } => pooled.copy_from_slice(&output[..hidden]),
        OutputLayout::Tokens { tokens, hidden } => {
            pooled.fill(0.0);
            let mut valid = 0usize;
            for (t, row) in output.chunks_exact(hidden).take(tokens).enumerate() {
                if mask.is_none_or(|m| m[t] > 0) {
                    valid += 1;
                    for (acc, &x) in pooled.iter_mut().zip(row) {
                        *acc += x;
                    }
                }
            }
            if valid == 0 {
                pooled.copy_from_slice(&output[..hidden]);
            } else {
                let inv = 1.0f32 / valid as f32;
                pooled.iter_mut().for_each(|x| *x *= inv);
            }
        }
    }
}

/// Writes `pooled` folded to `out.len()` values and L2-normalised into `out`.
pub fn fold_and_normalize(pooled: &[f32], out: &mut [f32]) {
    let n = pooled.len().min(out.len());
    out[..n].copy_from_slice(&pooled[..n]);
    out[n..].fill(0.0);
    let norm_sq: f64 = out[..n].iter().map(|&x| f64::from(x) * f64::from(x)).sum();
    if norm_sq > 1e-12 {
        let scale = (1.0 / norm_sq.sqrt()) as f32;
        out[..n].iter_mut().for_each(|x| *x *= scale);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(shape: &[i64]) -> String {
        OutputLayout::from_shape(shape, 8).unwrap_err().to_string()
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
            OutputLayout::from_shape(&[1, 128, 384], 8),
            Ok(OutputLayout::Tokens {
                tokens: 8,
                hidden: 384
            })
        );
        assert_eq!(
            OutputLayout::from_shape(&[1, 4, 384], 8),
            Ok(OutputLayout::Tokens {
                tokens: 4,
                hidden: 384
            })
        );
        assert_eq!(
            OutputLayout::from_shape(&[3, 16], 8),
            Ok(OutputLayout::FirstRow { hidden: 16 })
        );
    }

    #[test]
    fn mean_pool_skips_masked_tokens_and_ignores_tokens_past_the_layout() {
        // 3 tokens of 2 values; the third is masked; a 4th row is past `tokens`.
        let output = [1.0, 2.0, 3.0, 6.0, 100.0, 100.0, 50.0, 50.0];
        let layout = OutputLayout::Tokens {
            tokens: 3,
            hidden: 2,
        };
        let mut pooled = [0.0; 2];
        pool(&output, layout, Some(&[1, 1, 0, 1]), &mut pooled);
        assert_eq!(pooled, [2.0, 4.0]);
        pool(&output, layout, None, &mut pooled);
        assert_eq!(pooled, [104.0 / 3.0, 108.0 / 3.0].map(|x: f64| x as f32));
    }

    #[test]
    fn no_valid_token_uses_token_zero_as_is() {
        let output = [3.0, 4.0, 9.0, 9.0];
        let layout = OutputLayout::Tokens {
            tokens: 2,
            hidden: 2,
        };
        let mut pooled = [0.0; 2];
        pool(&output, layout, Some(&[0, -1]), &mut pooled);
        assert_eq!(pooled, [3.0, 4.0]);
    }

    #[test]
    fn fold_truncates_pads_and_normalises() {
        let mut out = [9.0f32; 4];
        fold_and_normalize(&[3.0, 4.0], &mut out);
        assert_eq!(out, [0.6, 0.8, 0.0, 0.0]);
        let mut short = [0.0f32; 1];
        fold_and_normalize(&[-2.0, 4.0], &mut short);
        assert_eq!(short, [-1.0]);
        let mut tiny = [0.0f32; 2];
        fold_and_normalize(&[1e-7, 0.0], &mut tiny);
        assert_eq!(
            tiny,
            [1e-7, 0.0],
            "norm below 1e-12 leaves the vector as it is"
        );
    }
}
