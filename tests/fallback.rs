//! CPU-fallback detection is per handle: each session logs to its own monitor.
//!
//! No machine here has an NPU, so a real ONNX Runtime warning stands in for a
//! fallback message: `tiny_fallback_marker` carries an unused initializer named
//! `npu_cpu_fallback_marker`, and ONNX Runtime warns "Removing initializer
//! 'npu_cpu_fallback_marker'..." while creating its session, which is a signal
//! by the contract's rules. On the CPU device signals do not count (contract),
//! so these tests ask the runtime to count them on every device.

mod common;

use std::path::Path;

use c_embed_runtime::error_strings::whole;
use c_embed_runtime::ort::Device;
use c_embed_runtime::run::{CreateOptions, EmbedRuntime, FallbackSignals, TokenInput};
use common::{sentence, test_model};

const SEQ_LEN: usize = 16;

fn runtime(model: &Path, strict: bool, signals: FallbackSignals) -> EmbedRuntime {
    EmbedRuntime::create(&CreateOptions {
        model_path: model,
        devices: &[Device::Cpu],
        seq_len: SEQ_LEN as i64,
        out_dim: 8,
        threads: 1,
        strict,
        fallback_signals: signals,
    })
    .expect("create")
}

fn embed(runtime: &EmbedRuntime) -> Result<Vec<f32>, String> {
    let (ids, mask) = sentence(SEQ_LEN, 6, 100, 1);
    let mut out = vec![0.0; runtime.out_dim()];
    let tokens = TokenInput {
        ids: &ids,
        mask: Some(&mask),
        token_types: None,
    };
    runtime
        .embed(&tokens, &mut out)
        .map(|()| out)
        .map_err(|e| e.to_string())
}

fn detail(runtime: &EmbedRuntime) -> String {
    runtime.fallback().detail().to_str().unwrap().to_owned()
}

#[test]
fn two_live_handles_keep_separate_flags_and_survive_each_other() {
    let marker = test_model("tiny_fallback_marker");
    let clean = test_model("tiny_bert");
    let flagged = runtime(&marker, false, FallbackSignals::Always);
    let quiet = runtime(&clean, false, FallbackSignals::Always);

    assert!(flagged.fallback().detected());
    assert!(
        detail(&flagged).contains("npu_cpu_fallback_marker"),
        "{}",
        detail(&flagged)
    );
    assert!(
        !quiet.fallback().detected(),
        "the first handle's messages never reach the second"
    );
    assert_eq!(detail(&quiet), "");

    // Destroying the first handle leaves the second's logging sound, and a new
    // handle sees its own messages (the legacy library bound one callback to the
    // first handle ever created and read it after free).
    drop(flagged);
    let later = runtime(&marker, false, FallbackSignals::Always);
    assert!(later.fallback().detected());
    assert!(!quiet.fallback().detected());
    assert!(embed(&quiet).is_ok());
    assert!(
        embed(&later).is_ok(),
        "not strict: a signal does not fail the call"
    );
}

#[test]
fn strict_mode_fails_embed_with_the_signal_detail() {
    let strict = runtime(
        &test_model("tiny_fallback_marker"),
        true,
        FallbackSignals::Always,
    );
    let error = embed(&strict).unwrap_err();
    assert_eq!(
        error,
        format!("{}:{}", whole::NPU_CPU_FALLBACK_DETECTED, detail(&strict))
    );
    assert!(error.len() <= whole::NPU_CPU_FALLBACK_DETECTED.len() + 1 + 640);

    let strict_clean = runtime(&test_model("tiny_bert"), true, FallbackSignals::Always);
    assert!(embed(&strict_clean).is_ok());
}

#[test]
fn on_the_cpu_device_no_message_is_a_signal() {
    let cpu = runtime(
        &test_model("tiny_fallback_marker"),
        true,
        FallbackSignals::ByDevice,
    );
    assert!(!cpu.fallback().detected());
    assert_eq!(detail(&cpu), "");
    assert!(
        embed(&cpu).is_ok(),
        "strict has no effect on the CPU device"
    );
}
