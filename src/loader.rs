//! Loading ONNX Runtime and building the one process-wide `ort` environment.
//!
//! The library is found at the first `create`, in this order:
//! 1. `ORT_DYLIB_PATH`, when set and not empty (an explicit choice: nothing else is tried);
//! 2. a `libonnxruntime.so*` beside `libc_embed_runtime.so` (where the build puts one),
//!    then in its `c_embed_runtime/` subdirectory (where `make install` puts the
//!    one it was built with, out of the way of other users of the library directory);
//! 3. the system's (`libonnxruntime.so`, then `libonnxruntime.so.1`, by the dynamic loader's search).
//!
//! A failure is not remembered, so a later `create` tries again (for example
//! after the host set `ORT_DYLIB_PATH`). Success is kept for the life of the
//! process: `ort`'s environment cannot be rebuilt once dropped.

use std::ffi::{c_void, CStr, OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use once_cell::sync::OnceCell;
use ort::environment::Environment;

use crate::error::CreateError;

/// Overrides where ONNX Runtime is loaded from.
pub const ORT_PATH_ENV: &str = "ORT_DYLIB_PATH";

/// The subdirectory of the library's directory that `make install` gives the
/// ONNX Runtime it was built with.
pub const INSTALL_SUBDIR: &str = "c_embed_runtime";

const SYSTEM_NAMES: [&str; 2] = ["libonnxruntime.so", "libonnxruntime.so.1"];

static ENVIRONMENT: OnceCell<Environment> = OnceCell::new();

/// The process-wide environment, loading ONNX Runtime on first use.
pub fn environment() -> Result<&'static Environment, CreateError> {
    ENVIRONMENT.get_or_try_init(load)
}

fn load() -> Result<Environment, CreateError> {
    let mut tried = Vec::new();
    for candidate in candidates(std::env::var_os(ORT_PATH_ENV), own_directory().as_deref()) {
        match ort::init_from(&candidate.path) {
            Ok(builder) => {
                return builder
                    .with_name("c_embed_runtime")
                    .with_telemetry(false)
                    .build()
                    .map_err(CreateError::onnx_runtime);
            }
            Err(e) => tried.push(format!(
                "{} ({}): {e}",
                candidate.path.display(),
                candidate.source
            )),
        }
    }
    Err(CreateError::library(format!(
        "{}; tried {}",
        crate::error_strings::COULD_NOT_LOAD_ONNX_RUNTIME,
        tried.join("; ")
    )))
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
    fn own_directory_is_found() {
        let dir = own_directory().expect("dladdr finds this test binary");
        assert!(dir.is_dir());
    }
}
