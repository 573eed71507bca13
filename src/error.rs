//! Errors of `create` and `embed`, and the prefixes the ABI puts in front of them.
//!
//! The legacy library reported failures as `<origin>:<message>` strings; callers
//! match on the origin prefix, so it is part of the contract (see `abi.md`).

use std::borrow::Cow;
use std::fmt;

use crate::error_strings::{ORT_CREATE_ERROR, ORT_ERROR, STD_CREATE_ERROR, STD_ERROR};
pub use crate::error_strings::{UNKNOWN_CREATE_ERROR, UNKNOWN_EMBED_ERROR};

/// Where a failure came from; decides the prefix of the ABI error string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Raised by ONNX Runtime (loading, session creation, `Run`).
    OnnxRuntime,
    /// One of this library's own checks.
    Library,
}

/// Why `create` failed. Rendered as `ort_create_error:<message>` or
/// `std_create_error:<message>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateError {
    pub origin: Origin,
    pub message: String,
}

impl CreateError {
    pub fn library(message: impl Into<String>) -> Self {
        Self {
            origin: Origin::Library,
            message: message.into(),
        }
    }

    pub fn onnx_runtime(error: impl fmt::Display) -> Self {
        Self {
            origin: Origin::OnnxRuntime,
            message: error.to_string(),
        }
    }

    /// Joins the reasons of several failed device steps with `" | "`; the origin
    /// is that of the last step, the one that ended the attempt.
    pub fn join(steps: Vec<CreateError>) -> Self {
        let origin = steps.last().map_or(Origin::Library, |e| e.origin);
        let message = steps
            .iter()
            .map(|e| e.message.as_str())
            .collect::<Vec<_>>()
            .join(" | ");
        Self { origin, message }
    }
}

impl fmt::Display for CreateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = match self.origin {
            Origin::OnnxRuntime => ORT_CREATE_ERROR,
            Origin::Library => STD_CREATE_ERROR,
        };
        write!(f, "{prefix}{}", self.message)
    }
}

/// Why `embed` failed. Rendered as `ort_error:<message>` or `std_error:<message>`.
///
/// Library reasons are short fixed tokens (`invalid_hidden_dim`, ...) so the
/// common failures build no string; the strict-mode error carries the detail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmbedError {
    pub origin: Origin,
    pub message: Cow<'static, str>,
}

impl EmbedError {
    pub const fn library(reason: &'static str) -> Self {
        Self {
            origin: Origin::Library,
            message: Cow::Borrowed(reason),
        }
    }

    pub fn library_owned(message: String) -> Self {
        Self {
            origin: Origin::Library,
            message: Cow::Owned(message),
        }
    }

    pub fn onnx_runtime(error: impl fmt::Display) -> Self {
        Self {
            origin: Origin::OnnxRuntime,
            message: Cow::Owned(error.to_string()),
        }
    }
}

impl fmt::Display for EmbedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = match self.origin {
            Origin::OnnxRuntime => ORT_ERROR,
            Origin::Library => STD_ERROR,
        };
        write!(f, "{prefix}{}", self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_follow_the_origin() {
        assert_eq!(
            CreateError::library("model path is empty").to_string(),
            "std_create_error:model path is empty"
        );
        assert_eq!(
            CreateError::onnx_runtime("bad model").to_string(),
            "ort_create_error:bad model"
        );
        assert_eq!(
            EmbedError::library("empty_output").to_string(),
            "std_error:empty_output"
        );
        assert_eq!(
            EmbedError::onnx_runtime("idx out of range").to_string(),
            "ort_error:idx out of range"
        );
    }

    #[test]
    fn join_uses_the_last_origin_and_the_spec_separator() {
        let joined = CreateError::join(vec![
            CreateError::library("OpenVINOExecutionProvider unavailable"),
            CreateError::onnx_runtime("load failed"),
        ]);
        assert_eq!(
            joined.to_string(),
            "ort_create_error:OpenVINOExecutionProvider unavailable | load failed"
        );
    }
}
