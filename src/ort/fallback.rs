//! CPU-fallback signals: which ONNX Runtime log messages say that work meant for
//! an accelerator ran on the CPU, and the per-handle monitor that remembers the
//! first one.
//!
//! Each session gets its own log callback bound to its own monitor, so a handle
//! only ever sees the messages of its own session (the legacy library bound one
//! callback to the first handle ever created).

use std::ffi::{CStr, CString};
use std::sync::atomic::{AtomicBool, Ordering};

use once_cell::sync::OnceCell;

/// The detail is cut to this many bytes (on a character boundary).
pub const DETAIL_MAX_BYTES: usize = 640;

/// `true` when `message` is a CPU-fallback signal by the contract's rules
/// (case-insensitive):
/// - "cpu" and one of "fallback", "fall back", "falling back"; or
/// - "ze_result_error_unsupported_feature" and "cpu"; or
/// - "unsupported", "npu" and "cpu".
pub fn is_fallback_signal(message: &str) -> bool {
    let has = |needle: &str| contains_ignore_ascii_case(message, needle);
    if !has("cpu") {
        return false;
    }
    has("fallback")
        || has("fall back")
        || has("falling back")
        || has("ze_result_error_unsupported_feature")
        || (has("unsupported") && has("npu"))
}

/// Substring search without lower-casing into a new string: the log callback
/// runs inside ONNX Runtime, on its threads, and should not allocate.
fn contains_ignore_ascii_case(haystack: &str, needle: &str) -> bool {
    let (hay, needle) = (haystack.as_bytes(), needle.as_bytes());
    needle.is_empty()
        || hay
            .windows(needle.len())
            .any(|window| window.eq_ignore_ascii_case(needle))
}

/// Cuts `message` to at most [`DETAIL_MAX_BYTES`] bytes without splitting a character.
fn cut_detail(message: &str) -> &str {
    if message.len() <= DETAIL_MAX_BYTES {
        return message;
    }
    let mut end = DETAIL_MAX_BYTES;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    &message[..end]
}

/// What one handle's session has logged about CPU fallback.
///
/// Shared (through an `Arc`) between the handle and its session's log callback;
/// the callback may run on any ONNX Runtime thread.
#[derive(Debug)]
pub struct FallbackMonitor {
    /// On the CPU device no message counts as a fallback signal.
    counts_signals: bool,
    detected: AtomicBool,
    detail: OnceCell<CString>,
}

impl FallbackMonitor {
    pub fn new(counts_signals: bool) -> Self {
        Self {
            counts_signals,
            detected: AtomicBool::new(false),
            detail: OnceCell::new(),
        }
    }

    /// Inspects one log message at warning level or above.
    pub fn observe(&self, message: &str) {
        if !self.counts_signals || self.detected.load(Ordering::Acquire) {
            return;
        }
        if is_fallback_signal(message) {
            // A log message never holds a NUL (it came from a C string).
            let detail = CString::new(cut_detail(message)).unwrap_or_default();
            let _ = self.detail.set(detail);
            self.detected.store(true, Ordering::Release);
        }
    }

    pub fn detected(&self) -> bool {
        self.detected.load(Ordering::Acquire)
    }

    /// The first signal's text, or "" when none was seen. Never changes once set,
    /// so the returned string lives as long as the monitor.
    pub fn detail(&self) -> &CStr {
        if !self.detected() {
            return c"";
        }
        self.detail.get().map_or(c"", CString::as_c_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_examples_are_classified_as_the_contract_says() {
        assert!(is_fallback_signal(
            "OpenVINO NPU compile failed, falling back to OV CPU"
        ));
        assert!(is_fallback_signal(
            "ZE_RESULT_ERROR_UNSUPPORTED_FEATURE while routing to CPU"
        ));
        assert!(!is_fallback_signal(
            "OpenVINO NPU pipeline active with no fallback"
        ));
        assert!(!is_fallback_signal(
            "runtime selected_device=CPU (requested CPU)"
        ));
    }

    #[test]
    fn each_rule_needs_all_of_its_words() {
        assert!(is_fallback_signal("CPU Fallback engaged"));
        assert!(is_fallback_signal("will FALL BACK to cpu"));
        assert!(is_fallback_signal("op Unsupported on NPU, using CPU"));
        assert!(!is_fallback_signal("op unsupported on NPU"));
        assert!(!is_fallback_signal("fallback to GPU"));
        assert!(!is_fallback_signal("ze_result_error_unsupported_feature"));
        assert!(!is_fallback_signal(""));
    }

    #[test]
    fn monitor_keeps_the_first_signal_cut_to_640_bytes() {
        let monitor = FallbackMonitor::new(true);
        assert!(!monitor.detected());
        assert_eq!(monitor.detail(), c"");
        monitor.observe("nothing to see");
        assert!(!monitor.detected());

        let long = format!("cpu fallback {}", "é".repeat(400));
        monitor.observe(&long);
        monitor.observe("second cpu fallback");
        assert!(monitor.detected());
        let detail = monitor.detail().to_str().unwrap();
        assert!(detail.len() <= DETAIL_MAX_BYTES && detail.len() >= DETAIL_MAX_BYTES - 1);
        assert!(long.starts_with(detail));
    }

    #[test]
    fn a_cpu_monitor_ignores_every_message() {
        let monitor = FallbackMonitor::new(false);
        monitor.observe("OpenVINO NPU compile failed, falling back to OV CPU");
        assert!(!monitor.detected());
        assert_eq!(monitor.detail(), c"");
    }
}
