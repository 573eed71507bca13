//! Length-aware execution and the pool's bounds, seen from the runtime: runs
//! cover only up to the last valid position, their vectors are those of the
//! full-length run, and the pooled memory follows the lengths used, not
//! `seq_len`.

mod common;

use c_embed_runtime::ort::Device;
use c_embed_runtime::run::KEEP_BYTES;
use c_embed_runtime::run::MAX_CACHED_SHAPES;
use c_embed_runtime::run::{CreateOptions, EmbedRuntime, FallbackSignals, TokenInput, TokenRows};
use common::{real_model, sentence, test_model, CLASS_MODELS};

fn runtime(model: &std::path::Path, seq_len: i64, threads: i32) -> EmbedRuntime {
    EmbedRuntime::create(&CreateOptions {
        model_path: model,
        devices: &[Device::Cpu],
        seq_len,
        out_dim: 24,
        threads,
        strict: true,
        fallback_signals: FallbackSignals::ByDevice,
    })
    .unwrap_or_else(|e| panic!("create failed: {e}"))
}

fn embed(runtime: &EmbedRuntime, ids: &[i64], mask: Option<&[i64]>) -> Vec<f32> {
    let mut out = vec![0.0; runtime.out_dim()];
    let tokens = TokenInput {
        ids,
        mask,
        token_types: None,
    };
    runtime.embed(&tokens, &mut out).expect("embed");
    out
}

fn assert_close(a: &[f32], b: &[f32]) {
    let diff = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    assert!(diff <= 1e-6, "vectors differ by {diff}");
}

#[test]
fn runs_stop_at_the_last_valid_position() {
    let seq_len = 128;
    let handle = runtime(&test_model("tiny_bert"), seq_len as i64, 1);
    let (ids, _) = sentence(seq_len, seq_len, 100, 3);
    // A full-length run first: storages grow to it (growth drops the kept
    // shapes, whose tensors view the old storage), then only new shapes add.
    embed(&handle, &ids, None);
    let known = handle.cached_shapes();
    let mask_up_to =
        |last: usize| -> Vec<i64> { (0..seq_len).map(|t| i64::from(t < last)).collect() };
    for last in [5, 9, 5, 9] {
        embed(&handle, &ids, Some(&mask_up_to(last)));
    }
    assert_eq!(handle.cached_shapes(), known + 2, "lengths 5 and 9");
    let mut gaps = mask_up_to(20);
    gaps[3] = 0;
    gaps[10] = 0;
    embed(&handle, &ids, Some(&gaps));
    assert_eq!(handle.cached_shapes(), known + 3, "length 20");
    // No mask and an all-zero mask need every position: the first shape again.
    embed(&handle, &ids, None);
    embed(&handle, &ids, Some(&[0; 128]));
    assert_eq!(handle.cached_shapes(), known + 3, "length 128 was kept");
}

#[test]
fn static_models_keep_their_length() {
    let handle = runtime(&test_model("tiny_static16"), 16, 1);
    let (ids, mask) = sentence(16, 4, 100, 1);
    embed(&handle, &ids, Some(&mask));
    embed(&handle, &ids, None);
    assert_eq!(handle.cached_shapes(), 1);
}

/// A caller may ask for any `seq_len`; the pool holds what the runs use.
#[test]
fn a_huge_seq_len_pools_only_the_lengths_used() {
    let huge = 1 << 20;
    let handle = runtime(&test_model("tiny_bert"), huge as i64, 1);
    let small = runtime(&test_model("tiny_bert"), 64, 1);
    for valid in [5, 40] {
        let (ids, mask) = sentence(huge, valid, 100, valid as i64);
        let got = embed(&handle, &ids, Some(&mask));
        let want = embed(&small, &ids[..64], Some(&mask[..64]));
        assert_close(&got, &want);
    }
    // Two storages per shape at most (doubling), for 40 positions of hidden 32.
    let bytes = handle.pool_bytes();
    assert!(bytes < 64 * 1024, "pool holds {bytes} bytes");
}

#[test]
fn the_shape_cache_is_bounded_and_eviction_keeps_results() {
    let seq_len = MAX_CACHED_SHAPES + 64;
    let handle = runtime(&test_model("tiny_bert"), seq_len as i64, 1);
    let fresh = |ids: &[i64], mask: &[i64]| {
        let other = runtime(&test_model("tiny_bert"), seq_len as i64, 1);
        embed(&other, ids, Some(mask))
    };
    for valid in 1..=seq_len {
        let (ids, mask) = sentence(seq_len, valid, 100, 7);
        embed(&handle, &ids, Some(&mask));
        assert!(handle.cached_shapes() <= MAX_CACHED_SHAPES);
    }
    // Length 3 was evicted long ago: it is recreated and still right.
    let (ids, mask) = sentence(seq_len, 3, 100, 7);
    assert_close(&embed(&handle, &ids, Some(&mask)), &fresh(&ids, &mask));
}

/// Concurrent callers share the handle's one session, each with its own
/// buffers, and get the results a single caller gets.
#[test]
fn concurrent_callers_share_one_session() {
    let handle = runtime(&test_model("tiny_bert"), 256, 1);
    let rows: Vec<_> = (0..6)
        .map(|i| sentence(256, 5 + 40 * i, 100, i as i64))
        .collect();
    let want: Vec<_> = rows
        .iter()
        .map(|(ids, mask)| embed(&handle, ids, Some(mask)))
        .collect();
    // Runs until the two threads have met inside the handle (or give up).
    std::thread::scope(|scope| {
        for t in 0..2 {
            let (rows, want, handle) = (&rows, &want, &handle);
            scope.spawn(move || {
                for i in 0..5_000 {
                    let k = (i + t) % rows.len();
                    let got = embed(handle, &rows[k].0, Some(&rows[k].1));
                    assert_eq!(got, want[k], "row {k} on thread {t}");
                    if handle.open_buffers() == 2 && i > 20 {
                        break;
                    }
                }
            });
        }
    });
    assert_eq!(
        handle.open_buffers(),
        2,
        "contention adds a caller's buffers"
    );
}

/// A row sees in a batch what it sees alone: positions after its last non-zero
/// mask value are padding, even when a longer row makes the run reach them.
#[test]
fn a_batch_row_never_feeds_its_own_masked_tail() {
    let seq_len = 16;
    let handle = runtime(&test_model("tiny_bert"), seq_len as i64, 1);
    let (mut short_ids, short_mask) = sentence(seq_len, 4, 100, 1);
    short_ids[10] = 1_000_000; // out of the vocabulary, after the last valid token
    let (long_ids, long_mask) = sentence(seq_len, 14, 100, 2);
    let alone = embed(&handle, &short_ids, Some(&short_mask));
    let rows = TokenRows {
        seq_len,
        ids: &[short_ids, long_ids.clone()].concat(),
        mask: Some(&[short_mask, long_mask.clone()].concat()),
        token_types: None,
    };
    let mut out = vec![0.0; 2 * handle.out_dim()];
    handle.embed_rows(&rows, &mut out).expect("batch");
    assert_close(&out[..24], &alone);
    assert_close(&out[24..], &embed(&handle, &long_ids, Some(&long_mask)));
}

/// `count` rows of `seq_len` tokens with lengths spread over 1..=seq_len.
fn mixed_rows(count: usize, seq_len: usize) -> (Vec<i64>, Vec<i64>) {
    let mut ids = Vec::with_capacity(count * seq_len);
    let mut mask = Vec::with_capacity(count * seq_len);
    for row in 0..count {
        let len = 1 + (row * 7919 + row * row) % seq_len;
        let (i, m) = sentence(seq_len, len, 100, row as i64);
        ids.extend(i);
        mask.extend(m);
    }
    (ids, mask)
}

fn embed_batch(runtime: &EmbedRuntime, ids: &[i64], mask: &[i64]) -> Vec<f32> {
    let rows = TokenRows {
        seq_len: runtime.seq_len(),
        ids,
        mask: Some(mask),
        token_types: None,
    };
    let mut out = vec![0.0; rows.count() * runtime.out_dim()];
    runtime.embed_rows(&rows, &mut out).expect("batch");
    out
}

/// Batches are reordered and grouped by length, on one thread or with the
/// handle's helper threads: each row's vector is still its single call's, in
/// the caller's order, for every execution class (one-row-at-a-time models
/// exactly). 300 rows span two grouping windows.
#[test]
fn batch_rows_equal_singles_in_the_callers_order() {
    let seq_len = 48;
    let (ids, mask) = mixed_rows(300, seq_len);
    for name in CLASS_MODELS {
        for threads in [1, 2] {
            let handle = runtime(&test_model(name), seq_len as i64, threads);
            let exact = !handle.plan().policy.may_batch();
            // A float16 output rounds each value to 11 bits: a batch's f32
            // rounding differences can move a value by one fp16 step.
            let tolerance = if name.contains("fp16") { 1e-3 } else { 1e-6 };
            let batch = embed_batch(&handle, &ids, &mask);
            for (row, got) in batch.chunks(handle.out_dim()).enumerate() {
                let span = row * seq_len..(row + 1) * seq_len;
                let alone = embed(&handle, &ids[span.clone()], Some(&mask[span]));
                if exact {
                    assert_eq!(got, &alone[..], "{name} threads {threads} row {row}");
                } else {
                    let diff = got
                        .iter()
                        .zip(&alone)
                        .map(|(x, y)| (x - y).abs())
                        .fold(0.0, f32::max);
                    assert!(
                        diff <= tolerance,
                        "{name} threads {threads} row {row}: {diff}"
                    );
                }
            }
        }
    }
}

/// The run that meets a new shape is the run whose output is kept: one ONNX
/// Runtime run per new length, per new batch shape, and per known one.
#[test]
fn a_new_shape_costs_one_run() {
    for model in [test_model("tiny_bert"), real_model()] {
        let handle = runtime(&model, 64, 1);
        assert!(!handle.ort_allocates_outputs(), "{}", model.display());
        for len in [3, 17, 17, 40] {
            let before = handle.runs();
            let (ids, mask) = sentence(64, len, 100, len as i64);
            embed(&handle, &ids, Some(&mask));
            assert_eq!(handle.runs(), before + 1, "length {len}");
        }
        // Four rows of one length: one group, one run.
        let (ids, mask) = sentence(64, 9, 100, 1);
        let before = handle.runs();
        embed_batch(&handle, &ids.repeat(4), &mask.repeat(4));
        assert_eq!(handle.runs(), before + 1, "a batch of 4 rows of length 9");
    }
}

/// An output whose shape follows no rule of rows and length: ONNX Runtime
/// allocates it (decided at create), with the same vectors.
#[test]
fn unpredictable_output_shapes_let_onnx_runtime_allocate() {
    let seq_len = 32;
    let handle = runtime(&test_model("tiny_doubled_tokens"), seq_len as i64, 1);
    assert!(handle.ort_allocates_outputs());
    let (ids, mask) = mixed_rows(20, seq_len);
    let batch = embed_batch(&handle, &ids, &mask);
    for (row, got) in batch.chunks(handle.out_dim()).enumerate() {
        let span = row * seq_len..(row + 1) * seq_len;
        assert_close(got, &embed(&handle, &ids[span.clone()], Some(&mask[span])));
    }
}

/// Memory follows the work: a rare run larger than a workspace keeps gives
/// its storage back when the call returns; ordinary calls keep theirs.
#[test]
fn a_rare_huge_run_gives_its_memory_back() {
    let huge = 1 << 18;
    let handle = runtime(&test_model("tiny_bert"), huge as i64, 1);
    let (ids, mask) = sentence(huge, 30, 100, 4);
    let want = embed(&handle, &ids, Some(&mask));
    let kept = handle.pool_bytes();
    assert!(kept > 0 && kept < 64 * 1024, "pool holds {kept} bytes");
    // No mask: all 262144 positions (40 MB of storage) for one call.
    embed(&handle, &ids, None);
    assert!(
        handle.pool_bytes() <= KEEP_BYTES,
        "pool holds {} bytes after the huge run",
        handle.pool_bytes()
    );
    assert_close(&embed(&handle, &ids, Some(&mask)), &want);
    // A batch never groups more rows than a workspace keeps.
    let seq_len = 4096;
    let wide = runtime(&test_model("tiny_bert"), seq_len as i64, 1);
    let (ids, mask) = sentence(seq_len, seq_len, 100, 5);
    embed_batch(&wide, &ids.repeat(40), &mask.repeat(40));
    assert!(
        wide.pool_bytes() <= KEEP_BYTES,
        "{} bytes",
        wide.pool_bytes()
    );
    assert!(
        wide.pool_bytes() > 0,
        "the storage of ordinary runs is kept"
    );
}
