//! The OpenVINO execution provider, run for real on OpenVINO's CPU device.
//!
//! This binary loads the onnxruntime-openvino 1.22.0 build that `make setup`
//! caches (tools/ort_versions.py; the hosts' version), whatever
//! `ORT_DYLIB_PATH` the other tests use: ONNX Runtime is loaded once per process.
//! The tests run one at a time: the test-only option set is an environment
//! variable read at create.

mod common;

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError};

use c_embed_runtime::env::{ORT_PATH_ENV, TEST_OPENVINO_OPTIONS_ENV};
use c_embed_runtime::error_strings::whole;
use c_embed_runtime::model::ExecutionClass;
use c_embed_runtime::ort::Device;
use c_embed_runtime::run::{CreateOptions, EmbedRuntime, FallbackSignals, TokenInput};
use common::{real_model, sentence, test_model};

/// Largest component difference between OpenVINO's CPU device and ONNX
/// Runtime's CPU provider on the real model (L2-normalised 384-d vectors).
/// Ten times the largest difference measured (the README states it).
const OPENVINO_TOLERANCE: f32 = 2e-6;

const SEQ_LEN: usize = 64;

static SERIAL: Mutex<()> = Mutex::new(());

fn openvino_build() -> PathBuf {
    let cache = std::env::var_os("C_EMBED_RUNTIME_ORT_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".cache/ort"));
    let library = cache.join("onnxruntime-openvino-1.22.0/libonnxruntime.so.1.22.0");
    assert!(
        library.exists(),
        "{} is missing: run `make setup` (tools/ort_versions.py fetch)",
        library.display()
    );
    library
}

/// Serialises the tests and points the loader at the OpenVINO build; `options`
/// is the test-only option set (`""`: OPENVINO_CPU's own).
fn setup(options: &str) -> MutexGuard<'static, ()> {
    let guard = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    std::env::set_var(ORT_PATH_ENV, openvino_build());
    std::env::set_var(TEST_OPENVINO_OPTIONS_ENV, options);
    guard
}

fn create(model: &std::path::Path, device: Device, strict: bool) -> Result<EmbedRuntime, String> {
    EmbedRuntime::create(&CreateOptions {
        model_path: model,
        devices: &[device],
        seq_len: SEQ_LEN as i64,
        out_dim: 384,
        threads: 1,
        strict,
        fallback_signals: FallbackSignals::ByDevice,
    })
    .map_err(|e| e.to_string())
}

/// Vectors of a few sentences of different lengths.
fn vectors(runtime: &EmbedRuntime) -> Vec<Vec<f32>> {
    [(5, 1), (12, 2), (31, 3), (SEQ_LEN, 4)]
        .iter()
        .map(|&(len, seed)| {
            let (ids, mask) = sentence(SEQ_LEN, len, 30_000, seed);
            let mut out = vec![0.0; runtime.out_dim()];
            let tokens = TokenInput {
                ids: &ids,
                mask: Some(&mask),
                token_types: None,
            };
            runtime.embed(&tokens, &mut out).expect("embed");
            out
        })
        .collect()
}

fn max_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    a.iter()
        .flatten()
        .zip(b.iter().flatten())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn openvino_plugin_loaded() -> bool {
    std::fs::read_to_string("/proc/self/maps")
        .expect("/proc/self/maps")
        .contains("libopenvino_intel_cpu_plugin.so")
}

#[test]
fn openvino_cpu_runs_on_openvino_and_agrees_with_the_cpu_provider() {
    let _guard = setup("");
    let cpu = create(&real_model(), Device::Cpu, true).expect("CPU");
    let reference = vectors(&cpu);
    let openvino = create(&real_model(), Device::OpenVinoCpu, true).expect("OPENVINO_CPU");
    assert_eq!(openvino.device().name(), c"OPENVINO_CPU");
    // Evidence that OpenVINO ran the model, not ONNX Runtime's CPU provider:
    // its CPU plugin is loaded, and its float rounding differs.
    assert!(openvino_plugin_loaded());
    let got = vectors(&openvino);
    let diff = max_diff(&got, &reference);
    eprintln!("OPENVINO_CPU vs CPU provider: max diff {diff:e}");
    assert!(diff <= OPENVINO_TOLERANCE, "{diff}");
    assert!(
        diff > 0.0,
        "bit-identical to the CPU provider: OpenVINO did not run"
    );
    // Dynamic shapes: rows are cut to their own length as on the CPU provider.
    assert_ne!(openvino.plan().policy.class, ExecutionClass::Padded);
    assert!(!openvino.fallback().detected());
}

#[test]
fn the_npu_and_gpu_option_sets_run_static_shapes_at_full_seq_len() {
    let reference = {
        let _guard = setup("");
        vectors(&create(&real_model(), Device::Cpu, true).expect("CPU"))
    };
    for options in ["npu", "gpu"] {
        let _guard = setup(options);
        let runtime = create(&real_model(), Device::OpenVinoCpu, true).expect(options);
        let policy = runtime.plan().policy;
        assert_eq!(policy.class, ExecutionClass::Padded, "{options}");
        assert!(!policy.trims && !policy.batches, "{options}");
        let got = vectors(&runtime);
        let diff = max_diff(&got, &reference);
        eprintln!("OPENVINO_CPU with the {options} option set vs CPU provider: max diff {diff:e}");
        assert!(diff <= OPENVINO_TOLERANCE, "{options}: {diff}");
    }
}

#[test]
fn strict_mode_fails_embeds_after_a_fallback_signal_on_openvino() {
    let _guard = setup("");
    // tiny_fallback_marker makes ONNX Runtime warn about an initializer named
    // `npu_cpu_fallback_marker` (see tests/fallback.rs): a signal on this device.
    let model = test_model("tiny_fallback_marker");
    let (ids, mask) = sentence(SEQ_LEN, 6, 100, 1);
    let tokens = TokenInput {
        ids: &ids,
        mask: Some(&mask),
        token_types: None,
    };
    let mut out = vec![0.0; 384];
    let strict = create(&model, Device::OpenVinoCpu, true).expect("strict");
    assert!(strict.fallback().detected());
    let err = strict
        .embed(&tokens, &mut out[..strict.out_dim()])
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("{}:", whole::NPU_CPU_FALLBACK_DETECTED)),
        "{err}"
    );
    let lenient = create(&model, Device::OpenVinoCpu, false).expect("lenient");
    assert!(lenient.fallback().detected());
    lenient
        .embed(&tokens, &mut out[..lenient.out_dim()])
        .expect("not strict: embeds");
}

#[test]
fn a_missing_npu_says_why_in_the_create_error() {
    let _guard = setup("");
    let Err(err) = create(&real_model(), Device::Npu, true) else {
        panic!("an NPU on this machine");
    };
    assert!(
        err.starts_with(&format!(
            "{}Failed to load provider OpenVINO (onnxruntime: ",
            whole::ORT_CREATE_ERROR
        )),
        "{err}"
    );
    // OpenVINO's own reason, which ONNX Runtime logged (1.22: a device_type it
    // does not have; newer: "Device NPU is not available").
    assert!(
        err.contains(
            "[OpenVINO] You have selected wrong configuration value for the key 'device_type'"
        ),
        "{err}"
    );
}
