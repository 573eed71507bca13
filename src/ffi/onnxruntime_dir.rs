//! `c_embed_runtime_register_onnxruntime_dir`: a directory for the ONNX
//! Runtime search ([`crate::ort::registered_dirs`]).

use std::ffi::{c_char, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::boundary::{catch_panic, optional_c_str};

/// Adds `directory` to the places the first create looks for ONNX Runtime.
/// When the registered directories hold a `libonnxruntime.so*`, those files
/// are the only ones tried (in the order registered, the newest version first
/// in each): a host's choice, like `ORT_DYLIB_PATH`, so an unusable one fails
/// create rather than giving way to the library's own. `ORT_DYLIB_PATH` and an
/// ONNX Runtime already loaded in the process come first; a registered
/// directory without one changes nothing. Only a create that loads ONNX
/// Runtime looks: call it before the first create. Returns 1 when `directory`
/// is a directory (a repeated call changes nothing), 0 otherwise (NULL
/// included). The Python package registers so the `capi/` folder of an
/// installed `onnxruntime` package, for its process alone (no environment
/// variable is set, so the processes it starts are not affected).
///
/// # Safety
/// `directory` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn c_embed_runtime_register_onnxruntime_dir(directory: *const c_char) -> i32 {
    // SAFETY: NULL or NUL-terminated (this function's contract).
    let directory = unsafe { optional_c_str(directory) };
    catch_panic(0, || {
        directory.map_or(0, |dir| {
            i32::from(crate::ort::registered_dirs::register(Path::new(
                OsStr::from_bytes(dir.to_bytes()),
            )))
        })
    })
}
