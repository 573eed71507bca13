//! The watchdog (src/ort/watchdog/) with a real ONNX Runtime's run options.

mod common;

use std::time::Duration;

use c_embed_runtime::env::RUN_TIMEOUT_ENV;
use c_embed_runtime::error_strings::{HANDLE_DESTROYED, RUN_TIME_LIMIT};
use c_embed_runtime::ort::{RunControl, RunGate, Watch};

/// Run options need ONNX Runtime loaded.
fn load_onnx_runtime() {
    common::test_model("tiny_bert");
    c_embed_runtime::ort::environment().expect("ONNX Runtime loads");
}

#[test]
fn a_closed_gate_refuses_runs_and_stops_those_in_flight() {
    let gate = RunGate::new(None);
    gate.created();
    load_onnx_runtime();
    let options = RunControl::new(&gate).unwrap();
    let watch = Watch::start(&gate, &options).unwrap();
    gate.close();
    assert!(watch
        .finish(&gate)
        .unwrap_err()
        .to_string()
        .contains(HANDLE_DESTROYED));
    assert!(Watch::start(&gate, &options).is_err());
}

#[test]
fn a_run_past_its_limit_is_stopped() {
    let gate = RunGate::new(Some(Duration::from_millis(20)));
    load_onnx_runtime();
    let options = RunControl::new(&gate).unwrap();
    let watch = Watch::start(&gate, &options).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let error = watch.finish(&gate).unwrap_err().to_string();
    assert!(
        error.contains(RUN_TIME_LIMIT) && error.contains(RUN_TIMEOUT_ENV),
        "{error}"
    );
    assert!(gate.timed_out());
    assert!(
        Watch::start(&gate, &options).is_err(),
        "create phase: fails at once"
    );
}
