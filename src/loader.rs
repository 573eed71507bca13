//! Loading ONNX Runtime and building the one process-wide `ort` environment.
//!
//! The library is found at the first `create`, in this order:
//! 1. `ORT_DYLIB_PATH`, when set and not empty (an explicit choice: nothing else is tried);
//! 2. a `libonnxruntime.so*` beside `libc_embed_runtime.so` (where the build puts one),
//!    then in its `c_embed_runtime/` subdirectory (where `make install` puts the
//!    one it was built with, out of the way of other users of the library directory);
//! 3. the system's (`libonnxruntime.so`, then `libonnxruntime.so.1`, by the dynamic loader's search).
//!
//! Each candidate is probed before `ort` sees it ([`probe`]): opened with
//! `dlopen` (its `dlerror` text is the reason when that fails), its version read
//! from `OrtGetApiBase()->GetVersionString()` and checked against
//! [`MIN_ORT_VERSION`], and its API table asked for the level `ort` is built for.
//! Only then is it handed to `ort`, which would otherwise panic on a library
//! that returns no API table, and could not be given another library once it
//! accepted one.
//!
//! A failure is not remembered, so a later `create` tries again (for example
//! after the host set `ORT_DYLIB_PATH`). Success is kept for the life of the
//! process: `ort`'s environment cannot be rebuilt once dropped.

use std::ffi::{c_char, c_void, CStr, CString, OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use once_cell::sync::OnceCell;
use ort::environment::Environment;
use ort::logging::LogLevel;

use crate::error::CreateError;
use crate::error_strings::COULD_NOT_LOAD_ONNX_RUNTIME;
use crate::logging;

/// Overrides where ONNX Runtime is loaded from.
pub const ORT_PATH_ENV: &str = "ORT_DYLIB_PATH";

/// The subdirectory of the library's directory that `make install` gives the
/// ONNX Runtime it was built with.
pub const INSTALL_SUBDIR: &str = "c_embed_runtime";

const SYSTEM_NAMES: [&str; 2] = ["libonnxruntime.so", "libonnxruntime.so.1"];

/// The oldest ONNX Runtime this library runs on (`ort`'s `api-20` feature: the
/// C API level of ONNX Runtime 1.20). Any newer 1.x works.
pub const MIN_ORT_VERSION: (u32, u32) = (1, 20);

/// The supported range, as error messages and the README state it.
pub const SUPPORTED_RANGE: &str = "1.20 or newer 1.x";

static ENVIRONMENT: OnceCell<Environment> = OnceCell::new();

/// The process-wide environment, loading ONNX Runtime on first use.
pub fn environment() -> Result<&'static Environment, CreateError> {
    ENVIRONMENT.get_or_try_init(load)
}

fn load() -> Result<Environment, CreateError> {
    let candidates = candidates(std::env::var_os(ORT_PATH_ENV), own_directory().as_deref());
    let mut tried = Vec::new();
    for candidate in &candidates {
        let loaded = probe(&candidate.path)
            .and_then(|_version| ort::init_from(&candidate.path).map_err(|e| e.to_string()));
        match loaded {
            Ok(builder) => {
                let environment = builder
                    .with_name("c_embed_runtime")
                    .with_telemetry(false)
                    .with_logger(logging::environment_logger())
                    .build()
                    .map_err(CreateError::onnx_runtime)?;
                // The custom logger is created at verbose level; warnings are what it keeps.
                environment.set_log_level(LogLevel::Warning);
                return Ok(environment);
            }
            Err(reason) => tried.push(format!(
                "{} ({}): {reason}",
                candidate.path.display(),
                candidate.source
            )),
        }
    }
    let message = match tried.as_slice() {
        [only] => format!("{COULD_NOT_LOAD_ONNX_RUNTIME} from {only}"),
        _ => format!("{COULD_NOT_LOAD_ONNX_RUNTIME}; tried {}", tried.join("; ")),
    };
    Err(CreateError::library(message))
}

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
/// runs on; returns its version string. The library stays loaded on success
/// (`ort` opens it again and gets the same mapping); on failure it is closed.
fn probe(path: &Path) -> Result<String, String> {
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

fn check_library(library: *mut c_void) -> Result<String, String> {
    // SAFETY: `library` is a live handle from dlopen; the name is NUL-terminated.
    let symbol = unsafe { libc::dlsym(library, c"OrtGetApiBase".as_ptr()) };
    if symbol.is_null() {
        return Err("not an ONNX Runtime library (no OrtGetApiBase)".to_owned());
    }
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
    Ok(version)
}

#[derive(Debug, PartialEq, Eq)]
struct Candidate {
    path: PathBuf,
    source: &'static str,
}

/// The libraries to try, in order (see the module docs).
fn candidates(env_path: Option<OsString>, own_dir: Option<&Path>) -> Vec<Candidate> {
    if let Some(path) = env_path.filter(|p| !p.is_empty()) {
        return vec![Candidate {
            path: path.into(),
            source: ORT_PATH_ENV,
        }];
    }
    let beside = own_dir
        .map(|dir| {
            let mut found = beside_candidates(dir, "beside libc_embed_runtime.so");
            found.extend(beside_candidates(
                &dir.join(INSTALL_SUBDIR),
                "installed with libc_embed_runtime.so",
            ));
            found
        })
        .unwrap_or_default();
    let system = SYSTEM_NAMES.iter().map(|name| Candidate {
        path: PathBuf::from(name),
        source: "system",
    });
    beside.into_iter().chain(system).collect()
}

/// `libonnxruntime.so` first, then versioned names, newest first.
fn beside_candidates(dir: &Path, source: &'static str) -> Vec<Candidate> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<OsString> = entries
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .filter(|name| is_onnxruntime_name(name))
        .collect();
    names.sort_by(|a, b| a.len().cmp(&b.len()).then(b.cmp(a)));
    names
        .into_iter()
        .map(|name| Candidate {
            path: dir.join(name),
            source,
        })
        .collect()
}

fn is_onnxruntime_name(name: &OsStr) -> bool {
    let name = name.as_bytes();
    name == b"libonnxruntime.so"
        || name
            .strip_prefix(b"libonnxruntime.so.")
            .is_some_and(|version| version.iter().all(|&b| b.is_ascii_digit() || b == b'.'))
}

/// The directory of the file this code was loaded from (the shared library, or
/// the executable it is linked into).
fn own_directory() -> Option<PathBuf> {
    let mut info = libc::Dl_info {
        dli_fname: std::ptr::null(),
        dli_fbase: std::ptr::null_mut(),
        dli_sname: std::ptr::null(),
        dli_saddr: std::ptr::null_mut(),
    };
    let address = own_directory as *const c_void;
    // SAFETY: dladdr only reads the loader's tables; `address` is a function of
    // this object and `info` is a valid, writable Dl_info.
    let found = unsafe { libc::dladdr(address, &mut info) };
    if found == 0 || info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: on success dli_fname is a NUL-terminated path owned by the loader,
    // valid while this object stays loaded; it is copied before returning.
    let file = unsafe { CStr::from_ptr(info.dli_fname) };
    let path = PathBuf::from(OsStr::from_bytes(file.to_bytes()));
    std::fs::canonicalize(&path)
        .unwrap_or(path)
        .parent()
        .map(Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_path_is_the_only_candidate() {
        let got = candidates(Some("/opt/ort/libonnxruntime.so.1.31.1".into()), None);
        assert_eq!(
            got,
            vec![Candidate {
                path: "/opt/ort/libonnxruntime.so.1.31.1".into(),
                source: ORT_PATH_ENV
            }]
        );
    }

    #[test]
    fn an_empty_override_falls_through_to_the_system() {
        let got = candidates(Some(OsString::new()), None);
        let paths: Vec<_> = got.iter().map(|c| c.path.to_str().unwrap()).collect();
        assert_eq!(paths, SYSTEM_NAMES);
    }

    #[test]
    fn libraries_beside_come_first_unversioned_then_newest() {
        let dir = std::env::temp_dir().join(format!("cer-loader-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for name in [
            "libonnxruntime.so.1.24.0",
            "libonnxruntime.so.1.31.1",
            "libonnxruntime.so",
            "libonnxruntime_providers_shared.so",
            "libonnxruntime.so.bak-x",
        ] {
            std::fs::write(dir.join(name), b"").unwrap();
        }
        let installed = dir.join(INSTALL_SUBDIR);
        std::fs::create_dir_all(&installed).unwrap();
        std::fs::write(installed.join("libonnxruntime.so.1.31.1"), b"").unwrap();
        let got = candidates(None, Some(&dir));
        assert_eq!(got[3].path, installed.join("libonnxruntime.so.1.31.1"));
        let names: Vec<_> = got
            .iter()
            .map(|c| c.path.file_name().unwrap().to_str().unwrap().to_owned())
            .collect();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            names,
            [
                "libonnxruntime.so",
                "libonnxruntime.so.1.31.1",
                "libonnxruntime.so.1.24.0",
                "libonnxruntime.so.1.31.1",
                "libonnxruntime.so",
                "libonnxruntime.so.1"
            ]
        );
    }

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

    #[test]
    fn own_directory_is_found() {
        let dir = own_directory().expect("dladdr finds this test binary");
        assert!(dir.is_dir());
    }
}
