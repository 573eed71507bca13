//! Loading ONNX Runtime and building the one process-wide `ort` environment.
//!
//! The library is found at the first `create`, in this order. Rules 1 and 2
//! are exclusive: when either names a file, only its files are tried. Rules
//! 3 to 5 are tried in turn until one loads.
//! 1. `ORT_DYLIB_PATH`, when set and not empty (an explicit choice: nothing else is tried);
//! 2. an ONNX Runtime already loaded in the process: a `libonnxruntime.so*`
//!    (linked by the host's build, preloaded, or loaded by another library), or the one
//!    beside a loaded Python `onnxruntime` package's extension module. Nothing
//!    else is tried, so the process keeps one ONNX Runtime, the host's;
//! 3. a `libonnxruntime.so*` in the directories of a registered host build's
//!    `-Wl,-rpath` ([`crate::ort::host_build`]: the drop-in source's build, which does
//!    not load the ONNX Runtime it was linked against by itself);
//! 4. a `libonnxruntime.so*` beside `libc_embed_runtime.so` (where the build puts one),
//!    then in its `c_embed_runtime/` subdirectory (where `make install` puts the
//!    one it was built with, out of the way of other users of the library directory);
//! 5. the system's (`libonnxruntime.so`, then `libonnxruntime.so.1`, by the dynamic loader's search).
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
//! process: `ort`'s environment cannot be rebuilt once dropped. [`in_use`]
//! tells which file and version it is.

use std::ffi::{c_char, c_void, CStr, CString, OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use once_cell::sync::OnceCell;
use ort::environment::Environment;
use ort::logging::LogLevel;

use crate::error::CreateError;
use crate::error_strings::COULD_NOT_LOAD_ONNX_RUNTIME;
use crate::ort::host_build::{self, HostBuild};
use crate::ort::{dynamic_loader, logging};

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

/// The Python `onnxruntime` package's extension module: ONNX Runtime linked
/// in statically, its `libonnxruntime.so*` beside it in `capi/`.
const PYTHON_MODULE_PREFIX: &str = "onnxruntime_pybind11_state";

/// The loaded ONNX Runtime and the environment over it.
struct Runtime {
    environment: Environment,
    /// The file as the dynamic loader mapped it, and its version string.
    path: CString,
    version: CString,
}

static RUNTIME: OnceCell<Runtime> = OnceCell::new();

/// The process-wide environment, loading ONNX Runtime on first use.
pub fn environment() -> Result<&'static Environment, CreateError> {
    RUNTIME
        .get_or_try_init(load)
        .map(|runtime| &runtime.environment)
}

/// The file and version of the ONNX Runtime in use; `None` before the first
/// successful load.
pub(crate) fn in_use() -> Option<(&'static CStr, &'static CStr)> {
    RUNTIME
        .get()
        .map(|runtime| (runtime.path.as_c_str(), runtime.version.as_c_str()))
}

fn load() -> Result<Runtime, CreateError> {
    let candidates = candidates(&Search {
        env_path: std::env::var_os(ORT_PATH_ENV),
        loaded: dynamic_loader::loaded_objects(),
        host_builds: host_build::registered(),
        own_dir: own_directory(),
    });
    let mut tried = Vec::new();
    for candidate in &candidates {
        let loaded = probe(&candidate.path).and_then(|found| {
            let builder = ort::init_from(&candidate.path).map_err(|e| e.to_string())?;
            Ok((found, builder))
        });
        match loaded {
            Ok(((path, version), builder)) => {
                let environment = builder
                    .with_name("c_embed_runtime")
                    .with_telemetry(false)
                    .with_logger(logging::environment_logger())
                    .build()
                    .map_err(CreateError::onnx_runtime)?;
                // The custom logger is created at verbose level; warnings are what it keeps.
                environment.set_log_level(LogLevel::Warning);
                return Ok(Runtime {
                    environment,
                    path,
                    version,
                });
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
/// runs on; returns the file the loader mapped and its version string. The library stays loaded on success
/// (`ort` opens it again and gets the same mapping); on failure it is closed.
fn probe(path: &Path) -> Result<(CString, CString), String> {
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

/// The file of the loaded object that holds `address`, as the loader mapped it.
fn file_of(address: *const c_void) -> Option<CString> {
    let mut info = libc::Dl_info {
        dli_fname: std::ptr::null(),
        dli_fbase: std::ptr::null_mut(),
        dli_sname: std::ptr::null(),
        dli_saddr: std::ptr::null_mut(),
    };
    // SAFETY: dladdr only reads the loader's tables; `info` is a valid, writable Dl_info.
    if unsafe { libc::dladdr(address, &mut info) } == 0 || info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: on success dli_fname is a NUL-terminated path owned by the loader,
    // valid while the object stays loaded; it is copied at once.
    Some(unsafe { CStr::from_ptr(info.dli_fname) }.to_owned())
}

#[derive(Debug, PartialEq, Eq)]
struct Candidate {
    path: PathBuf,
    source: String,
}

/// What the search order of the module docs looks at.
struct Search {
    env_path: Option<OsString>,
    /// Every object loaded in the process, in load order.
    loaded: Vec<PathBuf>,
    host_builds: Vec<HostBuild>,
    /// The directory of `libc_embed_runtime.so`.
    own_dir: Option<PathBuf>,
}

/// The libraries to try, in order (see the module docs).
fn candidates(search: &Search) -> Vec<Candidate> {
    if let Some(path) = search.env_path.as_ref().filter(|p| !p.is_empty()) {
        return vec![Candidate {
            path: path.into(),
            source: ORT_PATH_ENV.to_owned(),
        }];
    }
    let loaded = already_loaded(&search.loaded);
    if !loaded.is_empty() {
        return loaded;
    }
    let mut found = Vec::new();
    for build in &search.host_builds {
        let source = format!("on the -rpath of {}", build.object.display());
        for dir in &build.run_path {
            found.extend(beside_candidates(dir, &source));
        }
    }
    if let Some(dir) = &search.own_dir {
        found.extend(beside_candidates(dir, "beside libc_embed_runtime.so"));
        found.extend(beside_candidates(
            &dir.join(INSTALL_SUBDIR),
            "installed with libc_embed_runtime.so",
        ));
    }
    found.extend(SYSTEM_NAMES.iter().map(|name| Candidate {
        path: PathBuf::from(name),
        source: "system".to_owned(),
    }));
    found
}

/// The ONNX Runtimes among the loaded objects, in load order: each
/// `libonnxruntime.so*`, and the one beside a Python `onnxruntime` package's
/// extension module (which has ONNX Runtime inside and exports none of it).
fn already_loaded(objects: &[PathBuf]) -> Vec<Candidate> {
    let source = "already loaded in the process; ORT_DYLIB_PATH chooses another";
    let mut found = Vec::new();
    for object in objects {
        let Some(name) = object.file_name() else {
            continue;
        };
        if is_onnxruntime_name(name) {
            found.push(Candidate {
                path: object.clone(),
                source: source.to_owned(),
            });
        } else if name.as_bytes().starts_with(PYTHON_MODULE_PREFIX.as_bytes()) {
            if let Some(dir) = object.parent() {
                found.extend(beside_candidates(
                    dir,
                    "beside the loaded Python onnxruntime package; ORT_DYLIB_PATH chooses another",
                ));
            }
        }
    }
    found.dedup();
    found
}

/// `libonnxruntime.so` first, then versioned names, newest first.
fn beside_candidates(dir: &Path, source: &str) -> Vec<Candidate> {
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
            source: source.to_owned(),
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
    let file = file_of(own_directory as *const c_void)?;
    let path = PathBuf::from(OsStr::from_bytes(file.to_bytes()));
    std::fs::canonicalize(&path)
        .unwrap_or(path)
        .parent()
        .map(Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn search(env_path: Option<&str>, own_dir: Option<&Path>) -> Search {
        Search {
            env_path: env_path.map(OsString::from),
            loaded: Vec::new(),
            host_builds: Vec::new(),
            own_dir: own_dir.map(Path::to_path_buf),
        }
    }

    fn names(candidates: &[Candidate]) -> Vec<String> {
        candidates
            .iter()
            .map(|c| c.path.file_name().unwrap().to_str().unwrap().to_owned())
            .collect()
    }

    /// A fresh directory holding empty files of these names.
    fn dir_with(tag: &str, files: &[&str]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("cer-loader-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for name in files {
            std::fs::write(dir.join(name), b"").unwrap();
        }
        dir
    }

    #[test]
    fn an_explicit_path_is_the_only_candidate() {
        let mut search = search(Some("/opt/ort/libonnxruntime.so.1.31.1"), None);
        search.loaded = vec!["/opt/other/libonnxruntime.so.1".into()];
        assert_eq!(
            candidates(&search),
            vec![Candidate {
                path: "/opt/ort/libonnxruntime.so.1.31.1".into(),
                source: ORT_PATH_ENV.to_owned()
            }]
        );
    }

    #[test]
    fn an_empty_override_falls_through_to_the_system() {
        let got = candidates(&search(Some(""), None));
        let paths: Vec<_> = got.iter().map(|c| c.path.to_str().unwrap()).collect();
        assert_eq!(paths, SYSTEM_NAMES);
    }

    #[test]
    fn an_onnxruntime_already_loaded_is_the_only_candidate() {
        let beside = dir_with("loaded", &["libonnxruntime.so.1.31.1"]);
        let python = dir_with(
            "python",
            &["libonnxruntime.so.1.22.0", "onnxruntime_pybind11_state.so"],
        );
        let mut search = search(None, Some(&beside));
        search.loaded = vec![
            "/usr/lib/libm.so.6".into(),
            "/host/capi/libonnxruntime_providers_shared.so".into(),
            python.join("onnxruntime_pybind11_state.so"),
            "/host/capi/libonnxruntime.so.1.20.1".into(),
        ];
        let got = candidates(&search);
        std::fs::remove_dir_all(&beside).unwrap();
        std::fs::remove_dir_all(&python).unwrap();
        assert_eq!(
            got.iter().map(|c| c.path.clone()).collect::<Vec<_>>(),
            [
                python.join("libonnxruntime.so.1.22.0"),
                "/host/capi/libonnxruntime.so.1.20.1".into()
            ]
        );
        assert!(got
            .iter()
            .all(|c| c.source.contains("ORT_DYLIB_PATH chooses another")));
    }

    #[test]
    fn a_host_builds_run_path_comes_before_the_librarys_own_places() {
        let capi = dir_with(
            "capi",
            &[
                "libonnxruntime.so.1.22.0",
                "libonnxruntime_providers_openvino.so",
            ],
        );
        let beside = dir_with("beside", &["libonnxruntime.so.1.31.1"]);
        let mut search = search(None, Some(&beside));
        search.host_builds = vec![HostBuild {
            object: "/host/native/libc_embed_runtime.abc.so".into(),
            run_path: vec!["/nonexistent".into(), capi.clone()],
        }];
        let got = candidates(&search);
        std::fs::remove_dir_all(&capi).unwrap();
        std::fs::remove_dir_all(&beside).unwrap();
        assert_eq!(
            names(&got),
            [
                "libonnxruntime.so.1.22.0",
                "libonnxruntime.so.1.31.1",
                "libonnxruntime.so",
                "libonnxruntime.so.1"
            ]
        );
        assert_eq!(
            got[0].source,
            "on the -rpath of /host/native/libc_embed_runtime.abc.so"
        );
    }

    #[test]
    fn libraries_beside_come_first_unversioned_then_newest() {
        let dir = dir_with(
            "order",
            &[
                "libonnxruntime.so.1.24.0",
                "libonnxruntime.so.1.31.1",
                "libonnxruntime.so",
                "libonnxruntime_providers_shared.so",
                "libonnxruntime.so.bak-x",
            ],
        );
        let installed = dir.join(INSTALL_SUBDIR);
        std::fs::create_dir_all(&installed).unwrap();
        std::fs::write(installed.join("libonnxruntime.so.1.31.1"), b"").unwrap();
        let got = candidates(&search(None, Some(&dir)));
        assert_eq!(got[3].path, installed.join("libonnxruntime.so.1.31.1"));
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            names(&got),
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
