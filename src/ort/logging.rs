//! Where ONNX Runtime's log messages go.
//!
//! ONNX Runtime's default logger writes to stderr, which belongs to the host.
//! This library installs its own loggers instead: one for the environment
//! (messages that no session owns, such as an execution provider failing to
//! load) and one per session (see [`crate::ort::session`]). Nothing reaches stderr
//! unless the host sets [`ORT_LOG_ENV`] to `stderr`.
//!
//! Messages at warning level and above that are logged on a thread while it
//! runs a `create` ([`capture`]) belong to that create: a failed device step
//! carries them as its reason, and the handle's fallback monitor sees the
//! environment's messages as it sees its own session's. While a handle's embed
//! runs ([`attribute`]), the environment's messages on that thread go to the
//! handle's monitor too (execution providers such as OpenVINO log through the
//! environment's logger, not the session's).

use std::cell::RefCell;
use std::sync::{Arc, OnceLock};

use ort::logging::{LogLevel, LoggerFunction};

use crate::env::ORT_LOG_ENV;
use crate::ort::fallback::FallbackMonitor;

/// Most messages one create step keeps, and the bytes kept of each.
const MAX_MESSAGES: usize = 8;
const MAX_MESSAGE_BYTES: usize = 640;

/// What the messages of the current thread are attributed to.
struct Attribution {
    monitor: Arc<FallbackMonitor>,
    /// `Some` while a create step runs: its messages, for its error.
    messages: Option<Vec<String>>,
}

thread_local! {
    static CURRENT: RefCell<Option<Attribution>> = const { RefCell::new(None) };
}

fn echo_to_stderr() -> bool {
    static ECHO: OnceLock<bool> = OnceLock::new();
    *ECHO.get_or_init(|| std::env::var(ORT_LOG_ENV).is_ok_and(|v| v.eq_ignore_ascii_case("stderr")))
}

fn echo(level: LogLevel, id: &str, message: &str) {
    if echo_to_stderr() {
        // Not eprintln!, which panics when stderr cannot be written: this runs
        // inside ONNX Runtime, where a panic cannot unwind.
        let line = format!("onnxruntime {level:?} [{id}] {}\n", message.trim_end());
        let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
    }
}

/// The environment's logger: messages no session owns.
pub fn environment_logger() -> LoggerFunction {
    Arc::new(|level, _category, id, _location, message| {
        if level < LogLevel::Warning {
            return;
        }
        echo(level, id, message);
        with_current(|current| {
            current.monitor.observe(message);
            if let Some(messages) = &mut current.messages {
                keep(messages, message);
            }
        });
    })
}

/// The logger of one session: its messages go to `monitor` (the handle's own),
/// and to the create step that is opening it.
pub fn session_logger(monitor: Arc<FallbackMonitor>) -> LoggerFunction {
    Arc::new(move |level, _category, id, _location, message| {
        if level < LogLevel::Warning {
            return;
        }
        echo(level, id, message);
        monitor.observe(message);
        with_current(|current| {
            if let Some(messages) = &mut current.messages {
                keep(messages, message);
            }
        });
    })
}

/// Runs one create step on this thread with its messages attributed to
/// `monitor`; returns its result and the messages logged meanwhile.
pub fn capture<T>(monitor: &Arc<FallbackMonitor>, step: impl FnOnce() -> T) -> (T, Vec<String>) {
    let previous = replace(Some(Attribution {
        monitor: Arc::clone(monitor),
        messages: Some(Vec::new()),
    }));
    let result = step();
    let messages = replace(previous)
        .and_then(|a| a.messages)
        .unwrap_or_default();
    (result, messages)
}

/// Runs `run` (an embed) with the environment's messages on this thread
/// attributed to `monitor`.
pub fn attribute<T>(monitor: &Arc<FallbackMonitor>, run: impl FnOnce() -> T) -> T {
    let previous = replace(Some(Attribution {
        monitor: Arc::clone(monitor),
        messages: None,
    }));
    let result = run();
    replace(previous);
    result
}

fn replace(attribution: Option<Attribution>) -> Option<Attribution> {
    CURRENT
        .try_with(|current| match current.try_borrow_mut() {
            Ok(mut current) => std::mem::replace(&mut *current, attribution),
            Err(_) => None,
        })
        .ok()
        .flatten()
}

/// Calls `f` with the current attribution, if any. A logger called from
/// within another (or during thread teardown) does nothing rather than panic.
fn with_current(f: impl FnOnce(&mut Attribution)) {
    let _ = CURRENT.try_with(|current| {
        if let Ok(mut current) = current.try_borrow_mut() {
            if let Some(current) = current.as_mut() {
                f(current);
            }
        }
    });
}

/// `message` without the source location and C++ signature ONNX Runtime puts
/// before some (`/onnxruntime/...cc:141 std::string ...(...) [ERROR] ...`).
fn without_location(message: &str) -> &str {
    let message = message.trim();
    match (message.starts_with('/'), message.find(" [")) {
        (true, Some(at)) => &message[at + 1..],
        _ => message,
    }
}

fn keep(messages: &mut Vec<String>, message: &str) {
    let message = without_location(message);
    if messages.len() >= MAX_MESSAGES || messages.iter().any(|m| m == message) {
        return;
    }
    let mut end = message.len().min(MAX_MESSAGE_BYTES);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    messages.push(message[..end].trim_end().to_owned());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(logger: &LoggerFunction, level: LogLevel, message: &str) {
        logger(level, "cat", "id", "here", message);
    }

    #[test]
    fn a_create_step_keeps_its_warnings_and_errors_once() {
        let monitor = Arc::new(FallbackMonitor::new(true));
        let environment = environment_logger();
        let ((), messages) = capture(&monitor, || {
            log(&environment, LogLevel::Info, "chatter");
            log(&environment, LogLevel::Error, "provider failed");
            log(&environment, LogLevel::Error, "provider failed");
            log(&environment, LogLevel::Warning, "cpu fallback here");
        });
        assert_eq!(messages, ["provider failed", "cpu fallback here"]);
        assert!(monitor.detected());
        // Outside a create, nothing is attributed.
        log(&environment, LogLevel::Error, "later");
        let ((), again) = capture(&monitor, || {});
        assert!(again.is_empty());
    }

    #[test]
    fn source_locations_are_cut() {
        assert_eq!(
            without_location("/ort/factory.cc:141 std::string f(const g&) [ERROR] [OpenVINO] Device NPU is not available\n"),
            "[ERROR] [OpenVINO] Device NPU is not available"
        );
        assert_eq!(without_location("plain [text]"), "plain [text]");
    }

    #[test]
    fn an_embed_attributes_environment_messages_to_its_handle() {
        let monitor = Arc::new(FallbackMonitor::new(true));
        let environment = environment_logger();
        attribute(&monitor, || {
            log(
                &environment,
                LogLevel::Warning,
                "OpenVINO NPU compile failed, falling back to OV CPU",
            )
        });
        assert!(monitor.detected());
        let other = Arc::new(FallbackMonitor::new(true));
        log(&environment, LogLevel::Warning, "cpu fallback elsewhere");
        assert!(!other.detected());
    }
}
