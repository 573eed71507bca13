//! Errors of `create` and `embed`, and the prefixes the ABI puts in front of them.
//!
//! The legacy library reported failures as `<origin>:<message>` strings; callers
//! match on the origin prefix, so it is part of the contract (see `abi.md`).

use std::borrow::Cow;
use std::fmt;
use std::path::Path;

use crate::error_strings::{ORT_CREATE_ERROR, ORT_ERROR, STD_CREATE_ERROR, STD_ERROR};
pub use crate::error_strings::{UNKNOWN_CREATE_ERROR, UNKNOWN_EMBED_ERROR};

/// Where a failure came from; decides the prefix of the ABI error string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Raised by ONNX Runtime (loading, session creation, `Run`).
    OnnxRuntime,
    /// One of this library's own checks.
    Library,
    /// A panic caught inside the library: the message is the contract's
    /// `unknown_error` / `unknown_create_error`, with no prefix.
    Unknown,
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

    /// Some of ONNX Runtime's messages end in a newline; a step's reason does not
    /// (reasons are joined on one line).
    pub fn onnx_runtime(error: impl fmt::Display) -> Self {
        let mut message = error.to_string();
        message.truncate(message.trim_end().len());
        Self {
            origin: Origin::OnnxRuntime,
            message,
        }
    }

    /// Adds what ONNX Runtime logged while this step ran (the provider's own
    /// reason, for example), unless the message already says it.
    pub fn with_log(mut self, messages: &[String]) -> Self {
        let new: Vec<&str> = messages
            .iter()
            .map(String::as_str)
            .filter(|m| !self.message.contains(m))
            .collect();
        if !new.is_empty() {
            self.message = format!("{} (onnxruntime: {})", self.message, new.join("; "));
        }
        self
    }

    /// Joins the reasons of several failed device steps with `" | "`; the origin
    /// is that of the last step, the one that ended the attempt.
    pub fn join(steps: Vec<CreateError>) -> Self {
        let origin = steps.last().map_or(Origin::Library, |e| e.origin);
        let message = steps
            .iter()
            .map(|e| e.message.as_str())
            .collect::<Vec<_>>()
            .join(crate::error_strings::DEVICE_REASON_SEPARATOR);
        Self { origin, message }
    }
}

impl fmt::Display for CreateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = match self.origin {
            Origin::OnnxRuntime => ORT_CREATE_ERROR,
            Origin::Library => STD_CREATE_ERROR,
            Origin::Unknown => "",
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

    /// A panic caught inside the library (on a helper thread, say): `unknown_error`.
    pub const fn unknown() -> Self {
        Self {
            origin: Origin::Unknown,
            message: Cow::Borrowed(UNKNOWN_EMBED_ERROR),
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
            Origin::Unknown => "",
        };
        write!(f, "{prefix}{}", self.message)
    }
}

/// A path for an error message, cut to a readable length (a caller may pass
/// a path of any size).
pub fn shown(path: &Path) -> String {
    const MAX_CHARS: usize = 240;
    let full = path.display().to_string();
    match full.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => format!("{}... ({} bytes)", &full[..cut], path.as_os_str().len()),
        None => full,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_caught_panic_is_the_contracts_unknown_error() {
        assert_eq!(EmbedError::unknown().to_string(), "unknown_error");
    }

    #[test]
    fn a_reason_ends_without_a_newline_and_carries_the_log() {
        let step = CreateError::onnx_runtime("Failed to load library x.so\n")
            .with_log(&["[OpenVINO] no NPU".to_owned(), "x.so".to_owned()]);
        assert_eq!(
            step.to_string(),
            "ort_create_error:Failed to load library x.so (onnxruntime: [OpenVINO] no NPU)"
        );
        let joined = CreateError::join(vec![step, CreateError::library("disabled")]);
        assert_eq!(
            joined.to_string(),
            "std_create_error:Failed to load library x.so (onnxruntime: [OpenVINO] no NPU) | disabled"
        );
    }

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
