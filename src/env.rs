//! Every environment variable of the project, in one place: those the library
//! reads (and when), and the one its drop-in source and its Python package read
//! to find the library. The code that reads one names it from here, and
//! `tests/source_rules.rs` checks that no other file of `src/` spells a
//! variable's name.

/// The ONNX Runtime library to load, read at each `create` until one loads;
/// when set and not empty nothing else is tried (src/ort/search.rs has the
/// whole search order).
pub const ORT_PATH_ENV: &str = "ORT_DYLIB_PATH";

/// `stderr`: ONNX Runtime's messages at warning level and above are also
/// written to stderr (one line each, with the session's log id). Read once,
/// at the first message.
pub const ORT_LOG_ENV: &str = "C_EMBED_RUNTIME_ORT_LOG";

/// Milliseconds a run (the create-time self-check's and every embed's) may
/// take before it is stopped; read at create. 0 means no limit.
pub const RUN_TIMEOUT_ENV: &str = "C_EMBED_RUNTIME_RUN_TIMEOUT_MS";

/// 1/true/yes/on, read at create: every call of the handle runs as the legacy
/// library did (one row at a time, all `seq_len` positions, the mask as given).
pub const PADDED_ENV: &str = "C_EMBED_RUNTIME_PADDED";

/// 1/true/yes/on, read at create: a handle with `threads` > 1 runs a batch's
/// groups one after another on the caller's thread, each run with `threads`
/// intra-op threads, instead of up to `threads` groups at once with its helper
/// threads. For measurements (`make bench` compares both).
pub const SERIAL_BATCHES_ENV: &str = "C_EMBED_RUNTIME_SERIAL_BATCHES";

/// 1/true/yes/on, read at create: enables the OpenVINO-GPU step of the `AUTO`
/// and `GPU` devices (the legacy library's name, kept).
pub const OPENVINO_GPU_GATE_ENV: &str = "CDB_EMBED_GPU_ALLOW_OPENVINO_FALLBACK";

/// **Test-only** (set before create; changes nothing in the contract): `npu` or
/// `gpu` gives the `OPENVINO_CPU` device the NPU's or the OpenVINO-GPU's option
/// set (static shapes; the NPU's adds the QDQ optimiser), still on OpenVINO's
/// CPU device, so a machine without those devices runs their configuration.
pub const TEST_OPENVINO_OPTIONS_ENV: &str = "C_EMBED_RUNTIME_TEST_OPENVINO_OPTIONS";

/// Not read by the library: the library file that the drop-in source
/// (`c_embed_runtime.cpp`, tools/drop_in_source.rs) opens instead of the path
/// generated into it, and that the Python package loads instead of searching
/// (python/c_embed_runtime/__init__.py, which also still accepts the older
/// `C_EMBED_RUNTIME_LIB`).
pub const LIBRARY_ENV: &str = "C_EMBED_RUNTIME_LIBRARY";

/// Bytes, read at each create with a tokenizer: a `tokenizer.json` larger than
/// this is refused (default [`DEFAULT_MAX_TOKENIZER_BYTES`]).
pub const MAX_TOKENIZER_BYTES_ENV: &str = "C_EMBED_RUNTIME_MAX_TOKENIZER_BYTES";

/// 128 MiB: several times the largest `tokenizer.json` of common text models
/// (tens of MB), far below what would strain a host.
pub const DEFAULT_MAX_TOKENIZER_BYTES: u64 = 128 << 20;

/// Every variable above.
pub const ALL: [&str; 9] = [
    ORT_PATH_ENV,
    ORT_LOG_ENV,
    RUN_TIMEOUT_ENV,
    PADDED_ENV,
    SERIAL_BATCHES_ENV,
    OPENVINO_GPU_GATE_ENV,
    TEST_OPENVINO_OPTIONS_ENV,
    LIBRARY_ENV,
    MAX_TOKENIZER_BYTES_ENV,
];

/// Whether a gate variable's value turns the gate on (1/true/yes/on, any case).
pub fn gate_is_on(value: Option<&str>) -> bool {
    value.is_some_and(|v| {
        ["1", "true", "yes", "on"]
            .iter()
            .any(|on| v.eq_ignore_ascii_case(on))
    })
}

/// The value of the number variable `name`, or `default` when it is not set
/// or not a number.
pub fn number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// Whether the gate variable `name` is set on.
pub fn is_on(name: &str) -> bool {
    gate_is_on(std::env::var(name).ok().as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn gate_accepts_the_contract_spellings_only() {
        for on in ["1", "true", "TRUE", "Yes", "on", "ON"] {
            assert!(gate_is_on(Some(on)), "{on}");
        }
        for off in [
            None,
            Some(""),
            Some("0"),
            Some("false"),
            Some("enable"),
            Some(" 1"),
        ] {
            assert!(!gate_is_on(off), "{off:?}");
        }
    }
}
