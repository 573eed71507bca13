//! Reading the model file, once, at create. Every session of the handle is
//! built from these bytes, so a file replaced or rewritten on disk after
//! create changes nothing: one handle is one model for its whole life. The
//! bytes are dropped when create returns (ONNX Runtime keeps its own copy of
//! what it needs).
//!
//! Only regular files are read: a FIFO, a directory or a device is refused
//! before anything could block on it, and the file is opened non-blocking and
//! checked again through the open descriptor (the path may change meanwhile).
//! The tokenizer file is read the same way ([`read_regular`]), with a size limit.

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
        let bytes = read_regular(path, None).map_err(|e| match e {
            ReadError::Io(e) => {
                CreateError::library(format!("cannot read model file {}: {e}", shown(path)))
            }
            ReadError::Kind(what) => CreateError::library(format!(
                "model path is {what}{NOT_A_REGULAR_FILE}: {}",
                shown(path)
            )),
            ReadError::TooLarge { .. } | ReadError::NoMemory(_) => {
                CreateError::library(format!("model file {} does not fit in memory", shown(path)))
            }
        })?;
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

/// Why a file could not be read.
#[derive(Debug)]
pub(crate) enum ReadError {
    Io(std::io::Error),
    /// Not a regular file: what it is ("a FIFO", "a device", ...).
    Kind(&'static str),
    /// Larger than the limit (bytes, the limit).
    TooLarge {
        size: u64,
        limit: u64,
    },
    /// Its size could not be allocated (bytes).
    NoMemory(u64),
}

/// The bytes of the regular file at `path` (see the module docs), refused
/// when it holds more than `limit` bytes.
pub(crate) fn read_regular(path: &Path, limit: Option<u64>) -> Result<Vec<u8>, ReadError> {
    check_kind(&std::fs::metadata(path).map_err(ReadError::Io)?)?;
    let file = File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(ReadError::Io)?;
    let metadata = file.metadata().map_err(ReadError::Io)?;
    check_kind(&metadata)?;
    let size = metadata.len();
    if let Some(limit) = limit.filter(|&limit| size > limit) {
        return Err(ReadError::TooLarge { size, limit });
    }
    let mut bytes = Vec::new();
    let fits = usize::try_from(size)
        .ok()
        .filter(|&n| bytes.try_reserve_exact(n).is_ok());
    fits.ok_or(ReadError::NoMemory(size))?;
    // A file growing meanwhile is read no further than the limit (and one byte,
    // to see that it grew past it).
    let cap = limit.map_or(u64::MAX, |limit| limit.saturating_add(1));
    file.take(cap)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    match limit {
        Some(limit) if bytes.len() as u64 > limit => Err(ReadError::TooLarge {
            size: bytes.len() as u64,
            limit,
        }),
        _ => Ok(bytes),
    }
}

/// Refuses anything but a regular file, saying what it is.
fn check_kind(metadata: &Metadata) -> Result<(), ReadError> {
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
    Err(ReadError::Kind(what))
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
