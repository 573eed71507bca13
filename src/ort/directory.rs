//! The ONNX Runtime files of one directory, in the one order every rule of the
//! search order ([`crate::ort::search`]) uses, and the only place that chooses
//! among several: `libonnxruntime.so` first (a link someone made on purpose),
//! then `libonnxruntime.so.<version>`, the newest version first, compared
//! number by number (1.10.0 is newer than 1.9.2). Other files
//! (`libonnxruntime_providers_shared.so`, `libonnxruntime.so.bak`) are not ONNX
//! Runtime libraries. The Python package and the Rust tests name a directory
//! and let the library choose (`c_embed_runtime_register_onnxruntime_dir`).

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

/// A file to try, and which rule named it (for the error message).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Candidate {
    pub(crate) path: PathBuf,
    pub(crate) source: String,
}

/// The ONNX Runtime files in `dir`, in the order of the module docs, each
/// with `source` (which rule of the search order looked there).
pub(crate) fn in_directory(dir: &Path, source: &str) -> Vec<Candidate> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<(Version, OsString)> = entries
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .filter_map(|name| Some((onnxruntime_version(&name)?, name)))
        .collect();
    // Unversioned (an empty version) first, then the highest version first.
    found.sort_by(|(a, _), (b, _)| a.is_empty().cmp(&b.is_empty()).reverse().then(b.cmp(a)));
    found
        .into_iter()
        .map(|(_, name)| Candidate {
            path: dir.join(name),
            source: source.to_owned(),
        })
        .collect()
}

/// The numbers of a `libonnxruntime.so.<version>` name (`[1, 22, 0]`), empty
/// for `libonnxruntime.so`.
type Version = Vec<u64>;

/// The version of an ONNX Runtime file name; `None` when `name` is not one
/// (`libonnxruntime_providers_shared.so`, `libonnxruntime.so.bak`, ...).
fn onnxruntime_version(name: &OsStr) -> Option<Version> {
    let name = name.to_str()?;
    if name == "libonnxruntime.so" {
        return Some(Version::new());
    }
    name.strip_prefix("libonnxruntime.so.")?
        .split('.')
        .map(|part| {
            // Digits only: `parse` would also take a sign.
            Some(part)
                .filter(|part| part.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|part| part.parse().ok())
        })
        .collect()
}

/// Whether `name` is `libonnxruntime.so` or `libonnxruntime.so.<version>`.
pub(crate) fn is_onnxruntime_name(name: &OsStr) -> bool {
    onnxruntime_version(name).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_compared_number_by_number() {
        let dir = std::env::temp_dir().join(format!("cer-order-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for name in [
            "libonnxruntime.so.1.9.2",
            "libonnxruntime.so.1",
            "libonnxruntime.so.1.10.0",
            "libonnxruntime.so.1.22",
            "libonnxruntime.so.1.22.0",
            "libonnxruntime.so.1..2",
            "libonnxruntime.so.",
            "libonnxruntime.so",
            "libonnxruntime_providers_shared.so",
        ] {
            std::fs::write(dir.join(name), b"").unwrap();
        }
        let got = in_directory(&dir, "here");
        std::fs::remove_dir_all(&dir).unwrap();
        let names: Vec<_> = got
            .iter()
            .map(|c| c.path.strip_prefix(&dir).unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "libonnxruntime.so",
                "libonnxruntime.so.1.22.0",
                "libonnxruntime.so.1.22",
                "libonnxruntime.so.1.10.0",
                "libonnxruntime.so.1.9.2",
                "libonnxruntime.so.1"
            ]
            .map(Path::new)
        );
        assert!(got.iter().all(|c| c.source == "here"));
    }
}
