//! Which ONNX Runtime the library uses: the one in use, and the places a host
//! adds to its search (its build of the drop-in source, a directory).

use std::ffi::{c_char, CStr, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::boundary::{catch_panic, optional_c_str};

/// The file of the ONNX Runtime this process's handles run on, as the dynamic
/// loader mapped it (e.g. `/host/site-packages/onnxruntime/capi/libonnxruntime.so.1.22.0`);
/// "" before the first successful create (ONNX Runtime is loaded then, once per
/// process). A string valid for the life of the process, for a host to log.
/// The order in which it was looked for is in docs/hosts.md ("Which ONNX Runtime").
#[no_mangle]
pub extern "C" fn c_embed_runtime_onnxruntime_path() -> *const c_char {
    catch_panic(c"".as_ptr(), || {
        crate::ort::loader::in_use().map_or(c"".as_ptr(), |(path, _)| path.as_ptr())
    })
}

/// The version of the ONNX Runtime in use (e.g. "1.22.0"); "" before the first
/// successful create. A string valid for the life of the process.
#[no_mangle]
pub extern "C" fn c_embed_runtime_onnxruntime_version() -> *const c_char {
    catch_panic(c"".as_ptr(), || {
        crate::ort::loader::in_use().map_or(c"".as_ptr(), |(_, version)| version.as_ptr())
    })
}

/// Called by the drop-in source (`c_embed_runtime.cpp`, which a host compiles
/// in place of the legacy library's source) with the file it was loaded from,
/// before it forwards its first call. When ONNX Runtime is not loaded yet and
/// `ORT_DYLIB_PATH` is not set, the first create then looks in the directories
/// of that file's `-Wl,-rpath` (the `capi/` folder the host links against),
/// after any ONNX Runtime already loaded in the process and before the
/// library's own places. Returns 1 when `object_path` names an object loaded in
/// this process (a repeated call changes nothing), 0 otherwise (NULL included).
/// Hosts that do not build the drop-in source have no need of it.
///
/// # Safety
/// `object_path` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn c_embed_runtime_register_host_build(object_path: *const c_char) -> i32 {
    // SAFETY: NULL or NUL-terminated (this function's contract).
    let object_path = unsafe { optional_c_str(object_path) };
    register(object_path, crate::ort::host_build::register)
}

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
    register(directory, crate::ort::registered_dirs::register)
}

/// A registration's answer: 1 when `path` is given and `register` took it, else 0.
fn register(path: Option<&CStr>, register: fn(&Path) -> bool) -> i32 {
    catch_panic(0, || {
        path.map_or(0, |path| {
            i32::from(register(Path::new(OsStr::from_bytes(path.to_bytes()))))
        })
    })
}
