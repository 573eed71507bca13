//! The self-check at create picks each model's execution class, and every class
//! keeps the promise "a row's vector depends only on its own tokens": a batch
//! row equals the row embedded alone, whatever its neighbours and `seq_len`.
//!
//! `cargo test --release --test execution_classes -- --nocapture` prints each
//! model's class, the self-check's measured differences and its time.

mod common;

use c_embed_runtime::model::{ExecutionClass, PROBE_TOLERANCE};
use c_embed_runtime::ort::Device;
use c_embed_runtime::run::{CreateOptions, EmbedRuntime, FallbackSignals, TokenInput, TokenRows};
use common::{paraphrase_model, real_model, sentence, test_model, CLASS_MODELS};

fn runtime(model: &std::path::Path, seq_len: i64) -> EmbedRuntime {
    EmbedRuntime::create(&CreateOptions {
        model_path: model,
        devices: &[Device::Cpu],
        seq_len,
        out_dim: 1024,
        threads: 1,
        strict: true,
        fallback_signals: FallbackSignals::ByDevice,
    })
    .unwrap_or_else(|e| panic!("create {} failed: {e}", model.display()))
}

fn report(name: &str, runtime: &EmbedRuntime) -> ExecutionClass {
    let plan = runtime.plan();
    let check = runtime.self_check();
    println!(
        "{name:24} class {:44} time-major {:5} data-dependent {:5} | padded {:9} mixed batch {:9} same-length batch {:9} | self-check {:.1} ms",
        plan.policy.class.name(),
        plan.policy.time_major,
        plan.policy.data_dependent_output,
        shown(check.diffs.padded),
        shown(check.diffs.mixed_batch),
        shown(check.diffs.same_batch),
        check.elapsed.as_secs_f64() * 1e3,
    );
    assert_eq!(check.failure, None);
    plan.policy.class
}

fn shown(diff: Option<f32>) -> String {
    diff.map_or("-".into(), |d| format!("{d:.2e}"))
}

#[test]
fn each_model_gets_the_fastest_class_that_keeps_its_vectors() {
    use ExecutionClass::*;
    let cases = [
        ("tiny_bert", Free),
        ("tiny_bert_position_ids", Free),
        ("tiny_time_major", Free),
        ("tiny_fp16_output", Free),
        ("tiny_bf16_output", Free),
        ("tiny_mask_ignoring", SameLength),
        ("tiny_int8_dynamic", Alone),
        ("tiny_nonzero_output", Alone),
    ];
    for (name, class) in cases {
        let runtime = runtime(&test_model(name), 128);
        assert_eq!(report(name, &runtime), class, "{name}");
    }
    let real = runtime(&real_model(), 128);
    report("all-MiniLM-L6-v2 (int8)", &real);
    let paraphrase = runtime(&paraphrase_model(), 128);
    assert_eq!(report("paraphrase-MiniLM-L3-v2", &paraphrase), Free);
}

#[test]
fn the_self_check_tolerance_separates_rounding_from_real_changes() {
    // The tolerance is far above float rounding and far below what a neighbour
    // does to a quantised model or padding to a mask-ignoring one.
    let int8 = runtime(&test_model("tiny_int8_dynamic"), 128);
    let diffs = int8.self_check().diffs;
    assert!(
        diffs.same_batch.unwrap() > 100.0 * PROBE_TOLERANCE,
        "{diffs:?}"
    );
    let ignoring = runtime(&test_model("tiny_mask_ignoring"), 128);
    let diffs = ignoring.self_check().diffs;
    assert!(diffs.padded.unwrap() > 100.0 * PROBE_TOLERANCE, "{diffs:?}");
    let fp32 = runtime(&test_model("tiny_bert"), 128);
    let diffs = fp32.self_check().diffs;
    assert!(diffs.padded.unwrap() < PROBE_TOLERANCE / 10.0, "{diffs:?}");
}

fn embed_rows(runtime: &EmbedRuntime, seq_len: usize, rows: &[(Vec<i64>, Vec<i64>)]) -> Vec<f32> {
    let ids: Vec<i64> = rows.iter().flat_map(|r| r.0.clone()).collect();
    let mask: Vec<i64> = rows.iter().flat_map(|r| r.1.clone()).collect();
    let mut out = vec![0.0; rows.len() * runtime.out_dim()];
    let tokens = TokenRows {
        seq_len,
        ids: &ids,
        mask: Some(&mask),
        token_types: None,
    };
    runtime.embed_rows(&tokens, &mut out).expect("embed_rows");
    out
}

fn embed(runtime: &EmbedRuntime, ids: &[i64], mask: &[i64]) -> Vec<f32> {
    let mut out = vec![0.0; runtime.out_dim()];
    let tokens = TokenInput {
        ids,
        mask: Some(mask),
        token_types: None,
    };
    runtime.embed(&tokens, &mut out).expect("embed");
    out
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn batch_rows_equal_single_rows_for_every_class() {
    for name in CLASS_MODELS {
        for seq_len in [16usize, 64] {
            let runtime = runtime(&test_model(name), seq_len as i64);
            // Lengths 3, 9, 3, 5, 9, 5: neighbours of the same and other lengths.
            let rows: Vec<_> = [3, 9, 3, 5, 9, 5]
                .iter()
                .enumerate()
                .map(|(i, &len)| sentence(seq_len, len, 100, i as i64))
                .collect();
            let batch = embed_rows(&runtime, seq_len, &rows);
            let dim = runtime.out_dim();
            for (i, (ids, mask)) in rows.iter().enumerate() {
                let single = embed(&runtime, ids, mask);
                let diff = max_diff(&batch[i * dim..(i + 1) * dim], &single);
                assert!(diff <= 1e-6, "{name} seq_len {seq_len} row {i}: {diff}");
            }
        }
    }
}

#[test]
fn vectors_do_not_depend_on_seq_len() {
    // The default vector of every class is the row alone at its own length.
    for name in ["tiny_int8_dynamic", "tiny_mask_ignoring", "tiny_bert"] {
        let short = runtime(&test_model(name), 16);
        let long = runtime(&test_model(name), 128);
        let (ids16, mask16) = sentence(16, 7, 100, 4);
        let (ids128, mask128) = sentence(128, 7, 100, 4);
        let diff = max_diff(
            &embed(&short, &ids16, &mask16),
            &embed(&long, &ids128, &mask128),
        );
        assert!(diff <= 1e-6, "{name}: {diff}");
    }
}
