//! Checking that a file is an ONNX Runtime this library runs on, before `ort`
//! sees it: opened with `dlopen` (its `dlerror` text is the reason when that
//! fails), its version read from `OrtGetApiBase()->GetVersionString()` and
//! checked against [`MIN_ORT_VERSION`], and its API table asked for the level
//! `ort` is built for. `ort` would otherwise panic on a library that returns no
//! API table, and could not be given another library once it accepted one.

use std::ffi::{c_char, c_void, CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::ort::dynamic_loader::file_of;

/// The oldest ONNX Runtime this library runs on (`ort`'s `api-20` feature: the
/// C API level of ONNX Runtime 1.20). Any newer 1.x works.
pub(crate) const MIN_ORT_VERSION: (u32, u32) = (1, 20);

/// The supported range, as error messages and docs/hosts.md state it.
pub(crate) const SUPPORTED_RANGE: &str = "1.20 or newer 1.x";

/// A `major.minor[.patch...]` version string as numbers.
fn parse_version(text: &str) -> Option<(u32, u32)> {
    let mut parts = text.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// Whether ONNX Runtime `version` is in the supported range.
fn version_supported(version: (u32, u32)) -> bool {
    version.0 == MIN_ORT_VERSION.0 && version.1 >= MIN_ORT_VERSION.1
}

/// Opens the library at `path` and checks it is an ONNX Runtime this library
/// runs on; returns the file the loader mapped and its version string. The library stays loaded on success
/// (`ort` opens it again and gets the same mapping); on failure it is closed.
pub(crate) fn probe(path: &Path) -> Result<(CString, CString), String> {
    let Ok(c_path) = CString::new(path.as_os_str().as_bytes()) else {
        return Err("the path contains a NUL byte".to_owned());
    };
    // SAFETY: `c_path` is a NUL-terminated string that outlives the call.
    // Loading runs the library's initialisers, as loading it for `ort` would.
    let library = unsafe { libc::dlopen(c_path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if library.is_null() {
        return Err(last_dlerror());
    }
    let checked = check_library(library);
    if checked.is_err() {
        // SAFETY: `library` came from a successful dlopen above and nothing
        // from it is kept (the version string was copied).
        unsafe { libc::dlclose(library) };
    }
    checked
}

/// The text of the last `dlerror` (thread-local in glibc), or a fallback.
fn last_dlerror() -> String {
    // SAFETY: dlerror returns NULL or a NUL-terminated string owned by the
    // loader, valid until the next dl* call on this thread; it is copied at once.
    let text = unsafe { libc::dlerror() };
    if text.is_null() {
        return "dlopen failed".to_owned();
    }
    // SAFETY: not NULL, so a NUL-terminated string (see above).
    unsafe { CStr::from_ptr(text) }
        .to_string_lossy()
        .into_owned()
}

/// The parts of `OrtApiBase` the probe calls (the C layout of ONNX Runtime's
/// `struct OrtApiBase`, stable since 1.0).
#[repr(C)]
struct OrtApiBase {
    get_api: unsafe extern "C" fn(version: u32) -> *const c_void,
    get_version_string: unsafe extern "C" fn() -> *const c_char,
}

fn check_library(library: *mut c_void) -> Result<(CString, CString), String> {
    // SAFETY: `library` is a live handle from dlopen; the name is NUL-terminated.
    let symbol = unsafe { libc::dlsym(library, c"OrtGetApiBase".as_ptr()) };
    if symbol.is_null() {
        return Err("not an ONNX Runtime library (no OrtGetApiBase)".to_owned());
    }
    let file = file_of(symbol).unwrap_or_default();
    // SAFETY: ONNX Runtime exports `const OrtApiBase* OrtGetApiBase(void)`
    // under this name; it takes nothing and is safe to call at any time.
    let get_api_base: unsafe extern "C" fn() -> *const OrtApiBase =
        unsafe { std::mem::transmute(symbol) };
    // SAFETY: see above.
    let base = unsafe { get_api_base() };
    if base.is_null() {
        return Err("OrtGetApiBase returned NULL".to_owned());
    }
    // SAFETY: `base` points to the library's static OrtApiBase, whose first two
    // fields are the two function pointers of `OrtApiBase`.
    let version = unsafe { ((*base).get_version_string)() };
    let version = if version.is_null() {
        String::new()
    } else {
        // SAFETY: a NUL-terminated static string of the library; copied at once.
        unsafe { CStr::from_ptr(version) }
            .to_string_lossy()
            .into_owned()
    };
    match parse_version(&version) {
        Some(v) if version_supported(v) => {}
        _ => {
            return Err(format!(
                "ONNX Runtime {version:?} is not supported (supported: {SUPPORTED_RANGE})"
            ))
        }
    }
    // Asked only of a supported version: an older ONNX Runtime prints to
    // stderr when asked for an API level it lacks.
    // SAFETY: as above; GetApi only reads its argument and returns a static
    // table or NULL.
    let api = unsafe { ((*base).get_api)(ort::MINOR_VERSION) };
    if api.is_null() {
        return Err(format!(
            "ONNX Runtime {version} has no C API level {} (supported: {SUPPORTED_RANGE})",
            ort::MINOR_VERSION
        ));
    }
    let version = CString::new(version).unwrap_or_default();
    Ok((file, version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_from_1_20_on_are_supported() {
        for (text, ok) in [
            ("1.20.1", true),
            ("1.22.0", true),
            ("1.31.1", true),
            ("1.19.2", false),
            ("2.0.0", false),
            ("", false),
            ("1", false),
            ("one.two", false),
        ] {
            assert_eq!(
                parse_version(text).is_some_and(version_supported),
                ok,
                "{text}"
            );
        }
    }

    #[test]
    fn a_missing_library_gives_the_loaders_reason() {
        let reason = probe(Path::new("/nonexistent/libonnxruntime.so.1")).unwrap_err();
        assert!(
            reason.contains("/nonexistent/libonnxruntime.so.1"),
            "{reason}"
        );
        assert!(reason.contains("No such file"), "{reason}");
    }
}
