//! The watchdog's own thread, started and joined with pthreads.

use std::ffi::c_void;

/// The watchdog thread, made with `pthread_create` rather than
/// `std::thread::spawn`: std registers a thread-local destructor in the
/// spawning thread (the caller's), which keeps the library loaded after a
/// `dlclose` for as long as that thread lives.
pub(super) struct WatchThread(libc::pthread_t);

impl WatchThread {
    /// Starts the thread of `epoch`; `None` if the system refuses a thread.
    pub(super) fn spawn(epoch: u64) -> Option<Self> {
        extern "C" fn run(epoch: *mut c_void) -> *mut c_void {
            // A panic cannot leave a thread started by pthread_create.
            let _ = crate::panics::quietly(|| super::watch_runs(epoch as usize as u64));
            std::ptr::null_mut()
        }
        let mut thread: libc::pthread_t = 0;
        // SAFETY: `run` is an `extern "C"` function that catches every panic;
        // its argument is a number, not a pointer; default attributes (NULL).
        let created = unsafe {
            libc::pthread_create(
                &mut thread,
                std::ptr::null(),
                run,
                epoch as usize as *mut c_void,
            )
        };
        (created == 0).then_some(Self(thread))
    }

    /// Waits for the thread to end (it was told to: its epoch is over).
    pub(super) fn join(self) {
        // SAFETY: a thread this library started, joined once (`self` is consumed),
        // never detached; the result pointer may be NULL.
        unsafe { libc::pthread_join(self.0, std::ptr::null_mut()) };
    }
}

// SAFETY: a `pthread_t` may be joined from any thread.
unsafe impl Send for WatchThread {}
