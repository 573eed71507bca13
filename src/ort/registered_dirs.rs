//! Directories a host named for the ONNX Runtime search
//! (`c_embed_runtime_register_onnxruntime_dir`): where [`crate::ort::search`]
//! looks after an ONNX Runtime already loaded, and only there when they hold one.
//! The Python package names the `capi/` folder of an installed `onnxruntime`
//! package this way, so that no `ORT_DYLIB_PATH` is set for the process and
//! the processes it starts.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

/// Every directory registered in this process, in the order of registration.
static DIRECTORIES: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Records `directory` (made absolute); false when it is not a directory. A
/// directory registered again keeps its first place.
pub(crate) fn register(directory: &Path) -> bool {
    let Ok(directory) = std::fs::canonicalize(directory) else {
        return false;
    };
    if !directory.is_dir() {
        return false;
    }
    let mut directories = DIRECTORIES.lock().unwrap_or_else(PoisonError::into_inner);
    if !directories.contains(&directory) {
        directories.push(directory);
    }
    true
}

/// The registered directories, in order.
pub(crate) fn registered() -> Vec<PathBuf> {
    DIRECTORIES
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_directories_are_registered_once_each_in_order() {
        let file = std::env::temp_dir().join(format!("cer-registered-{}", std::process::id()));
        std::fs::write(&file, b"").unwrap();
        assert!(!register(&file));
        std::fs::remove_file(&file).unwrap();
        assert!(!register(Path::new("/nonexistent/capi")));
        assert!(!register(Path::new("")));
        let here = Path::new(env!("CARGO_MANIFEST_DIR"));
        assert!(register(&here.join("src")));
        assert!(register(&here.join("src/../tests")));
        assert!(register(&here.join("src/")));
        let got = registered();
        let canonical = |p: &str| std::fs::canonicalize(here.join(p)).unwrap();
        let src = got.iter().position(|d| *d == canonical("src")).unwrap();
        assert_eq!(got[src + 1], canonical("tests"));
        assert_eq!(got.iter().filter(|d| **d == canonical("src")).count(), 1);
    }
}
