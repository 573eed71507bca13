//! Length-aware execution and the pool's bounds, seen from the runtime: runs
//! cover only up to the last valid position, their vectors are those of the
//! full-length run, and the pooled memory follows the lengths used, not
//! `seq_len`.

mod common;

use c_embed_runtime::buffers::MAX_CACHED_SHAPES;
use c_embed_runtime::device::Device;
use c_embed_runtime::runtime::{
    CreateOptions, EmbedRuntime, FallbackSignals, TokenInput, TokenRows,
};
use common::{sentence, test_model};

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

#[test]
fn two_threads_on_one_handle_both_progress() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let handle = runtime(&test_model("tiny_bert"), 256, 1);
    let (ids, _) = sentence(256, 256, 100, 9);
    let want = embed(&handle, &ids, None);
    // Runs until the two threads have met inside the handle (or give up).
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                for _ in 0..5_000 {
                    assert_close(&embed(&handle, &ids, None), &want);
                    if handle.open_sessions() == 2 {
                        break;
                    }
                }
            });
        }
    });
    if cores >= 2 {
        assert_eq!(
            handle.open_sessions(),
            2,
            "contention opens a second session"
        );
    }
    // A handle whose session already uses every core keeps one session.
    let wide = runtime(&test_model("tiny_bert"), 256, cores as i32);
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                for _ in 0..100 {
                    embed(&wide, &ids, None);
                }
            });
        }
    });
    assert_eq!(wide.open_sessions(), 1);
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
