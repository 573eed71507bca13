//! Benchmark builds only (feature `alloc-counter`): a global allocator that counts
//! the Rust side's heap allocations, and one extra exported function to read the
//! count from C.
//!
//! The count covers every allocation made through Rust's allocator in this
//! library (the `ort` crate included); ONNX Runtime's own C++ allocations are
//! not seen here (the LD_PRELOAD counter of `bench/` sees those). The feature
//! adds a symbol outside the contract, so it is built into its own target
//! directory (`make bench`) and never into the library that ships. It cannot be
//! combined with test targets that install their own global allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

/// Forwards to the system allocator and counts allocations and reallocations.
struct CountingAllocator;

/// Relaxed: only the total matters, read between benchmark phases.
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees hold; counting touches no memory of theirs.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::alloc_zeroed`'s contract.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller upholds `GlobalAlloc::dealloc`'s contract, and
        // `ptr` came from `System` through this allocator.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract, and
        // `ptr` came from `System` through this allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Heap allocations (and reallocations) made through Rust's allocator in this
/// process since it started, all threads.
pub fn rust_allocations() -> u64 {
    ALLOCATIONS.load(Ordering::Relaxed)
}

/// [`rust_allocations`] for C callers (the benchmark finds it with `dlsym`).
/// cbindgen:ignore
#[no_mangle]
pub extern "C" fn c_embed_runtime_bench_rust_allocations() -> u64 {
    rust_allocations()
}
