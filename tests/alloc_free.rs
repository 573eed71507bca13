//! The pooled buffers at work: in steady state an embed call makes no Rust heap
//! allocation (ONNX Runtime's own C++ allocations are not counted: they are the
//! floor this library cannot remove).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use common::{real_model, sentence, test_model, Handle};

/// Counts the allocations and reallocations made through Rust's allocator by
/// the threads that asked for it and by the library's helper threads (the
/// test harness's own threads allocate at any time, for example to report
/// another test's result).
struct CountingAllocator;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static COUNTED: Cell<bool> = const { Cell::new(false) };
    /// Set once this thread was seen to be one of a handle's batch helpers.
    static HELPER: Cell<bool> = const { Cell::new(false) };
}

/// The name the library gives its batch helper threads.
const HELPER_THREAD: &[u8] = b"c_embed_helper";

/// Whether the calling thread is a batch helper, by its name (read without
/// allocating: this runs inside the allocator).
fn is_helper_thread() -> bool {
    HELPER.with(|helper| {
        if !helper.get() {
            // Looked up until seen (a thread may allocate before it is named).
            let mut name = [0u8; 16];
            // SAFETY: `name` is a writable buffer of the length passed.
            let got = unsafe {
                libc::pthread_getname_np(libc::pthread_self(), name.as_mut_ptr().cast(), name.len())
            };
            helper.set(got == 0 && name.starts_with(HELPER_THREAD));
        }
        helper.get()
    })
}

fn count_this_thread() {
    COUNTED.with(|c| c.set(true));
}

fn record() {
    if COUNTED.with(Cell::get) || is_helper_thread() {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record();
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record();
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// The counter is process-wide: the tests of this file take turns.
static SERIAL: Mutex<()> = Mutex::new(());

/// Takes this test's turn and counts this thread's allocations until the turn
/// ends (the harness then allocates on this thread to report the result, maybe
/// while another test counts).
fn serial() -> Turn {
    let guard = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    count_this_thread();
    Turn(guard)
}

struct Turn(#[allow(dead_code)] std::sync::MutexGuard<'static, ()>);

impl Drop for Turn {
    fn drop(&mut self) {
        COUNTED.with(|c| c.set(false));
    }
}

/// Calls `run(0..warm_up)` (first-use allocations, thread handles and such,
/// happen there), then `run(0..calls)`: how many Rust allocations the latter made.
fn counted(warm_up: usize, calls: usize, mut run: impl FnMut(usize)) -> usize {
    (0..warm_up).for_each(&mut run);
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    (0..calls).for_each(&mut run);
    ALLOCATIONS.load(Ordering::SeqCst) - before
}

/// Embeds `calls` times over a mix of sentence lengths, with and without a mask
/// and token types, and returns how many Rust allocations that made.
fn allocations_over(handle: &Handle, seq_len: usize, vocab: i64, calls: usize) -> usize {
    let inputs: Vec<_> = (0..8)
        .map(|i| sentence(seq_len, 3 + i * seq_len / 9, vocab, i as i64))
        .collect();
    let types = vec![0i64; seq_len];
    let mut out = vec![0.0f32; handle.out_dim()];
    counted(16, calls, |i| {
        let (ids, mask) = &inputs[i % inputs.len()];
        let mask = (i % 3 != 0).then_some(mask.as_slice());
        let types = (i % 2 == 0).then_some(types.as_slice());
        assert!(
            handle.embed_into(ids, mask, types, &mut out),
            "embed {i} failed"
        );
    })
}

#[test]
fn steady_state_embeds_allocate_nothing_on_a_test_model() {
    let _turn = serial();
    let handle = Handle::create(&test_model("tiny_bert_position_ids"), "CPU", 128, 24, 1, 1);
    assert_eq!(allocations_over(&handle, 128, 100, 1_000), 0);
}

#[test]
fn steady_state_embeds_allocate_nothing_on_the_real_model() {
    let _turn = serial();
    // seq_len 32 keeps 1,000 full-length runs of the real model to seconds.
    let handle = Handle::create(&real_model(), "CPU", 32, 384, 1, 1);
    assert_eq!(allocations_over(&handle, 32, 30_000, 1_000), 0);
}

#[test]
fn steady_state_embeds_allocate_nothing_for_every_class_and_output_type() {
    let _turn = serial();
    // fp16 and bf16 outputs (pooled from their own storage), class (b) and class (c).
    for model in [
        "tiny_fp16_output",
        "tiny_bf16_output",
        "tiny_mask_ignoring",
        "tiny_int8_dynamic",
        "tiny_time_major",
    ] {
        let handle = Handle::create(&test_model(model), "CPU", 64, 24, 1, 1);
        assert_eq!(allocations_over(&handle, 64, 100, 300), 0, "{model}");
        assert_eq!(batch_allocations(&handle, 64, 100), 0, "{model}");
    }
}

/// Batches of 8, 3 and 1 rows of mixed lengths (each grouped by length),
/// 300 times after a warm-up: the Rust allocations they made.
fn batch_allocations(handle: &Handle, seq_len: usize, vocab: i64) -> usize {
    let rows = 8;
    let mut ids = Vec::new();
    let mut mask = Vec::new();
    for row in 0..rows {
        let (i, m) = sentence(seq_len, 3 + row * 7, vocab, row as i64);
        ids.extend(i);
        mask.extend(m);
    }
    let mut out = vec![0.0f32; rows * handle.out_dim()];
    counted(64, 300, |i| {
        let n = [8, 3, 1][i % 3];
        let first = i % (rows - n + 1);
        let span = first * seq_len..(first + n) * seq_len;
        assert!(handle.embed_batch_into(
            n,
            &ids[span.clone()],
            Some(&mask[span]),
            None,
            &mut out[..n * handle.out_dim()]
        ));
    })
}

#[test]
fn steady_state_batches_allocate_nothing() {
    let _turn = serial();
    let handle = Handle::create(&test_model("tiny_bert"), "CPU", 64, 24, 1, 1);
    assert_eq!(batch_allocations(&handle, 64, 100), 0);
}

/// With `threads` 2 a batch's groups also run on the handle's helper thread,
/// started by the first batch (the warm-up), then reused.
#[test]
fn steady_state_batches_on_helper_threads_allocate_nothing() {
    let _turn = serial();
    let handle = Handle::create(&test_model("tiny_bert"), "CPU", 64, 24, 2, 1);
    assert_eq!(batch_allocations(&handle, 64, 100), 0);
    let real = Handle::create(&real_model(), "CPU", 32, 384, 2, 1);
    assert_eq!(batch_allocations(&real, 32, 30_000), 0);
}

#[test]
fn the_counter_sees_allocations() {
    let _turn = serial();
    // Guards the two tests above against a counter that never counts.
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    let v = std::hint::black_box(vec![1u8; 64]);
    assert!(ALLOCATIONS.load(Ordering::SeqCst) > before);
    drop(v);
    // And on a thread named as the library names its helpers.
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    let name = String::from_utf8(HELPER_THREAD.to_vec()).unwrap();
    let helper = std::thread::Builder::new().name(name).spawn(|| {
        COUNTED.with(|c| c.set(false));
        let before = ALLOCATIONS.load(Ordering::SeqCst);
        drop(std::hint::black_box(vec![1u8; 64]));
        ALLOCATIONS.load(Ordering::SeqCst) > before
    });
    assert!(helper.unwrap().join().unwrap());
    assert!(ALLOCATIONS.load(Ordering::SeqCst) > before);
}
