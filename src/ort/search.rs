//! Where ONNX Runtime is looked for: the candidates the loader tries, in order.
//!
//! Rules 1 to 3 are exclusive: when one names a file, only its files are
//! tried (a choice made by the host, so an unusable one fails `create` rather
//! than giving way to another). Rules 4 to 6 are tried in turn until one loads.
//! 1. `ORT_DYLIB_PATH`, when set and not empty (an explicit choice: nothing else is tried);
//! 2. an ONNX Runtime already loaded in the process: a `libonnxruntime.so*`
//!    (linked by the host's build, preloaded, or loaded by another library), or the one
//!    beside a loaded Python `onnxruntime` package's extension module. Nothing
//!    else is tried, so the process keeps one ONNX Runtime, the host's;
//! 3. a `libonnxruntime.so*` in the directories registered with
//!    `c_embed_runtime_register_onnxruntime_dir`, in the order registered
//!    ([`crate::ort::registered_dirs`]: how the Python package prefers an
//!    installed `onnxruntime` package, for its process alone);
//! 4. a `libonnxruntime.so*` in the directories of a registered host build's
//!    `-Wl,-rpath` ([`crate::ort::host_build`]: the drop-in source's build, which does
//!    not load the ONNX Runtime it was linked against by itself);
//! 5. a `libonnxruntime.so*` beside `libc_embed_runtime.so` (where the build puts one),
//!    then in its `c_embed_runtime/` subdirectory (where `make install` puts the
//!    one it was built with, out of the way of other users of the library directory);
//! 6. the system's (`libonnxruntime.so`, then `libonnxruntime.so.1`, by the dynamic loader's search).
//!
//! Within one directory the order is [`crate::ort::directory`]'s: the one rule
//! for choosing among several ONNX Runtime files.
//!
//! [`candidates`] only lists files; [`crate::ort::probe`] checks each before it is used.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use crate::env::ORT_PATH_ENV;
use crate::ort::directory::{in_directory, is_onnxruntime_name, Candidate};
use crate::ort::dynamic_loader;
use crate::ort::host_build::{self, HostBuild};
use crate::ort::registered_dirs;

/// The subdirectory of the library's directory that `make install` gives the
/// ONNX Runtime it was built with.
pub(crate) const INSTALL_SUBDIR: &str = "c_embed_runtime";

const SYSTEM_NAMES: [&str; 2] = ["libonnxruntime.so", "libonnxruntime.so.1"];

/// The Python `onnxruntime` package's extension module: ONNX Runtime linked
/// in statically, its `libonnxruntime.so*` beside it in `capi/`.
const PYTHON_MODULE_PREFIX: &str = "onnxruntime_pybind11_state";

/// What the search order of the module docs looks at.
pub(crate) struct Search {
    env_path: Option<OsString>,
    /// Every object loaded in the process, in load order.
    loaded: Vec<PathBuf>,
    host_builds: Vec<HostBuild>,
    /// Registered with `c_embed_runtime_register_onnxruntime_dir`, in order.
    registered_dirs: Vec<PathBuf>,
    /// The directory of `libc_embed_runtime.so`.
    own_dir: Option<PathBuf>,
}

impl Search {
    /// This process as it is now.
    pub(crate) fn of_this_process() -> Self {
        Self {
            env_path: std::env::var_os(ORT_PATH_ENV),
            loaded: dynamic_loader::loaded_objects(),
            host_builds: host_build::registered(),
            registered_dirs: registered_dirs::registered(),
            own_dir: dynamic_loader::own_directory(),
        }
    }
}

/// The libraries to try, in order (see the module docs).
pub(crate) fn candidates(search: &Search) -> Vec<Candidate> {
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
    let registered: Vec<Candidate> = search
        .registered_dirs
        .iter()
        .flat_map(|dir| {
            in_directory(
                dir,
                "registered with c_embed_runtime_register_onnxruntime_dir",
            )
        })
        .collect();
    if !registered.is_empty() {
        return registered;
    }
    let mut found = Vec::new();
    for build in &search.host_builds {
        let source = format!("on the -rpath of {}", build.object.display());
        for dir in &build.run_path {
            found.extend(in_directory(dir, &source));
        }
    }
    if let Some(dir) = &search.own_dir {
        found.extend(in_directory(dir, "beside libc_embed_runtime.so"));
        found.extend(in_directory(
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
                found.extend(in_directory(
                    dir,
                    "beside the loaded Python onnxruntime package; ORT_DYLIB_PATH chooses another",
                ));
            }
        }
    }
    found.dedup();
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn search(env_path: Option<&str>, own_dir: Option<&Path>) -> Search {
        Search {
            env_path: env_path.map(OsString::from),
            loaded: Vec::new(),
            host_builds: Vec::new(),
            registered_dirs: Vec::new(),
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
    fn registered_directories_holding_an_onnxruntime_are_the_only_candidates() {
        let capi = dir_with("rpath", &["libonnxruntime.so.1.22.0"]);
        let first = dir_with("first", &["libonnxruntime.so.1.24.4"]);
        let second = dir_with("second", &["libonnxruntime.so.1.20.1"]);
        let beside = dir_with("own", &["libonnxruntime.so.1.31.1"]);
        let mut search = search(None, Some(&beside));
        search.host_builds = vec![HostBuild {
            object: "/host/native/libc_embed_runtime.abc.so".into(),
            run_path: vec![capi.clone()],
        }];
        search.registered_dirs = vec!["/nonexistent".into(), first.clone(), second.clone()];
        let got = candidates(&search);
        // Registered folders without one give way to the next rules.
        search.registered_dirs = vec!["/nonexistent".into()];
        let without = candidates(&search);
        for dir in [&capi, &first, &second, &beside] {
            std::fs::remove_dir_all(dir).unwrap();
        }
        assert_eq!(
            got.iter().map(|c| c.path.clone()).collect::<Vec<_>>(),
            [
                first.join("libonnxruntime.so.1.24.4"),
                second.join("libonnxruntime.so.1.20.1")
            ]
        );
        assert_eq!(
            got[0].source,
            "registered with c_embed_runtime_register_onnxruntime_dir"
        );
        assert_eq!(without[0].path, capi.join("libonnxruntime.so.1.22.0"));
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
}
