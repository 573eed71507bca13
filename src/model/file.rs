//! Reading the model file, once, at create. Every session of the handle is
//! built from these bytes, so a file replaced or rewritten on disk after
//! create changes nothing: one handle is one model for its whole life. The
//! bytes are dropped when create returns (ONNX Runtime keeps its own copy of
//! what it needs).
//!
//! Only regular files are read: a FIFO, a directory or a device is refused
//! before anything could block on it, and the file is opened non-blocking and
//! checked again through the open descriptor (the path may change meanwhile).

use std::fs::{File, Metadata};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::error::shown;
use crate::error::CreateError;
use crate::error_strings::NOT_A_REGULAR_FILE;

/// A model's bytes and the directory its external data is read from.
pub struct ModelFile {
    pub path: PathBuf,
    pub bytes: Vec<u8>,
    /// The model file's directory (external data paths are relative to it).
    pub directory: PathBuf,
}

impl ModelFile {
    /// Reads the regular file at `path`.
    pub fn read(path: &Path) -> Result<Self, CreateError> {
        let cannot_read = |e: std::io::Error| {
            CreateError::library(format!("cannot read model file {}: {e}", shown(path)))
        };
        check_kind(path, &std::fs::metadata(path).map_err(cannot_read)?)?;
        let mut file = File::options()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(path)
            .map_err(cannot_read)?;
        let metadata = file.metadata().map_err(cannot_read)?;
        check_kind(path, &metadata)?;
        let mut bytes = Vec::new();
        bytes
            .try_reserve_exact(metadata.len() as usize)
            .map_err(|_| {
                CreateError::library(format!("model file {} does not fit in memory", shown(path)))
            })?;
        file.read_to_end(&mut bytes).map_err(cannot_read)?;
        let directory = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Ok(Self {
            path: path.to_path_buf(),
            bytes,
            directory,
        })
    }
}

/// Refuses anything but a regular file, saying what it is.
fn check_kind(path: &Path, metadata: &Metadata) -> Result<(), CreateError> {
    let kind = metadata.file_type();
    let what = if kind.is_file() {
        return Ok(());
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_char_device() || kind.is_block_device() {
        "a device"
    } else {
        "not a regular file"
    };
    Err(CreateError::library(format!(
        "model path is {what}{NOT_A_REGULAR_FILE}: {}",
        shown(path)
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_are_read() {
        let dir = std::env::temp_dir();
        let error = ModelFile::read(&dir).err().unwrap().to_string();
        assert!(error.contains("is a directory"), "{error}");
        let error = ModelFile::read(Path::new("/dev/null"))
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("is a device"), "{error}");
    }
}
