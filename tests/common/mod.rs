//! Shared by the integration tests: where the models are, and small wrappers
//! over the exported functions.
//!
//! The tests run a real ONNX Runtime on models that `make setup` installs or
//! generates: `ORT_DYLIB_PATH` if set, else the one of the project's `.venv`
//! (its `onnxruntime` package's `capi/` folder, registered with the library,
//! which chooses the file there by its own rule), so a plain `cargo test`
//! needs no variable.

#![allow(dead_code)] // each test binary uses its own part

use std::ffi::{c_void, CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Once;

use c_embed_runtime::ffi::*;

fn models_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models")
}

/// Registers the `.venv`'s ONNX Runtime folder with the library
/// (`c_embed_runtime_register_onnxruntime_dir`).
///
/// Called wherever a test gets a model, which every test does before its first
/// create: so the folder is registered before any thread loads ONNX Runtime.
fn use_project_onnx_runtime() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv");
        let mut registered = false;
        for capi in venv_capi_dirs(&venv) {
            let capi = CString::new(capi.as_os_str().as_bytes()).unwrap();
            // SAFETY: a NUL-terminated string that outlives the call.
            registered |= unsafe { c_embed_runtime_register_onnxruntime_dir(capi.as_ptr()) } == 1;
        }
        let chosen = std::env::var_os(c_embed_runtime::env::ORT_PATH_ENV);
        assert!(
            registered || chosen.is_some_and(|p| !p.is_empty()),
            "no ONNX Runtime: {} has no onnxruntime package; run `make setup` or set ORT_DYLIB_PATH",
            venv.display()
        );
    });
}

/// `lib/python3.*/site-packages/onnxruntime/capi` under `venv`.
fn venv_capi_dirs(venv: &Path) -> Vec<PathBuf> {
    let entries = std::fs::read_dir(venv.join("lib")).into_iter().flatten();
    entries
        .filter_map(|python| python.ok())
        .map(|python| python.path().join("site-packages/onnxruntime/capi"))
        .filter(|capi| capi.is_dir())
        .collect()
}

/// A model `make setup` installs under models/, by its relative path.
fn installed(relative: &str) -> PathBuf {
    use_project_onnx_runtime();
    let path = models_dir().join(relative);
    assert!(
        path.exists(),
        "{} is missing: run `make setup`",
        path.display()
    );
    path
}

/// A generated test model (see tools/gen_test_models.py).
pub fn test_model(name: &str) -> PathBuf {
    installed(&format!("test/{name}.onnx"))
}

/// The real default model (all-MiniLM-L6-v2, int8).
pub fn real_model() -> PathBuf {
    installed("all-MiniLM-L6-v2/model.onnx")
}

/// The second real model (paraphrase-MiniLM-L3-v2, fp32; its vocabulary is
/// all-MiniLM-L6-v2's tokenizer's).
pub fn paraphrase_model() -> PathBuf {
    installed("paraphrase-MiniLM-L3-v2/model.onnx")
}

pub fn c_string(s: &str) -> CString {
    CString::new(s).unwrap()
}

/// Reads a string the library returned.
pub fn read(ptr: *const std::ffi::c_char) -> String {
    assert!(!ptr.is_null(), "the library never returns NULL strings");
    // SAFETY: non-NULL strings from the library are NUL-terminated and valid here.
    unsafe { CStr::from_ptr(ptr) }
        .to_string_lossy()
        .into_owned()
}

/// An owned handle, destroyed on drop.
pub struct Handle(pub *mut c_void);

// SAFETY: the library's handles may be used from any thread (its contract).
unsafe impl Send for Handle {}
unsafe impl Sync for Handle {}

impl Handle {
    pub fn create(
        model: &std::path::Path,
        device: &str,
        seq_len: i64,
        out_dim: i32,
        threads: i32,
        strict: i32,
    ) -> Self {
        let model = c_string(model.to_str().unwrap());
        let device = c_string(device);
        // SAFETY: valid C strings.
        let handle = unsafe {
            c_embed_runtime_create(
                model.as_ptr(),
                device.as_ptr(),
                seq_len,
                out_dim,
                threads,
                strict,
            )
        };
        assert!(
            !handle.is_null(),
            "create failed: {}",
            read(c_embed_runtime_last_create_error())
        );
        Self(handle)
    }

    pub fn out_dim(&self) -> usize {
        c_embed_runtime_output_dim(self.0) as usize
    }

    /// Embeds and returns the vector, or the handle's error string.
    pub fn embed(
        &self,
        ids: &[i64],
        mask: Option<&[i64]>,
        types: Option<&[i64]>,
    ) -> Result<Vec<f32>, String> {
        let mut out = vec![0.0f32; self.out_dim()];
        let ok = self.embed_into(ids, mask, types, &mut out);
        if ok {
            Ok(out)
        } else {
            Err(read(c_embed_runtime_last_error(self.0)))
        }
    }

    /// Embeds one row into `out` without allocating.
    pub fn embed_into(
        &self,
        ids: &[i64],
        mask: Option<&[i64]>,
        types: Option<&[i64]>,
        out: &mut [f32],
    ) -> bool {
        self.embed_rows_into(None, ids, mask, types, out)
    }

    /// `rows` rows of `seq_len` tokens (row after row) into `out`, without allocating.
    pub fn embed_batch_into(
        &self,
        rows: usize,
        ids: &[i64],
        mask: Option<&[i64]>,
        types: Option<&[i64]>,
        out: &mut [f32],
    ) -> bool {
        self.embed_rows_into(Some(rows), ids, mask, types, out)
    }

    /// One row through `c_embed_runtime_embed` (`rows` None), else `rows` rows
    /// through `c_embed_runtime_embed_batch`; panics on arrays shorter than the
    /// library reads or writes.
    fn embed_rows_into(
        &self,
        rows: Option<usize>,
        ids: &[i64],
        mask: Option<&[i64]>,
        types: Option<&[i64]>,
        out: &mut [f32],
    ) -> bool {
        let n = rows.unwrap_or(1);
        let tokens = n * c_embed_runtime_seq_len(self.0) as usize;
        let long_enough = |array: Option<&[i64]>| array.is_none_or(|a| a.len() >= tokens);
        assert!(ids.len() >= tokens && long_enough(mask) && long_enough(types));
        assert!(out.len() >= n * self.out_dim());
        let (ids, mask, types, out) = (ids.as_ptr(), ptr(mask), ptr(types), out.as_mut_ptr());
        // SAFETY: a live handle; every array holds the `n` rows it reads or
        // writes (checked above).
        let done = unsafe {
            match rows {
                None => c_embed_runtime_embed(self.0, ids, mask, types, out),
                Some(rows) => {
                    c_embed_runtime_embed_batch(self.0, rows as i64, ids, mask, types, out)
                }
            }
        };
        done == 1
    }
}

/// An optional array as the C ABI takes it: NULL for `None`.
fn ptr(array: Option<&[i64]>) -> *const i64 {
    array.map_or(std::ptr::null(), <[i64]>::as_ptr)
}

impl Drop for Handle {
    fn drop(&mut self) {
        c_embed_runtime_destroy(self.0)
    }
}

/// One generated model per execution class and output layout: (a) tiny_bert,
/// time-major and fp16 outputs; (b) mask-ignoring; (c) int8 dynamic and a
/// data-dependent output shape.
pub const CLASS_MODELS: [&str; 6] = [
    "tiny_bert",
    "tiny_mask_ignoring",
    "tiny_int8_dynamic",
    "tiny_time_major",
    "tiny_fp16_output",
    "tiny_nonzero_output",
];

/// Token ids of a short "sentence": [CLS]-like 1, then `len - 2` ids, then 2, then padding.
pub fn sentence(seq_len: usize, len: usize, vocab: i64, seed: i64) -> (Vec<i64>, Vec<i64>) {
    let mut ids = vec![0i64; seq_len];
    let mut mask = vec![0i64; seq_len];
    for t in 0..len.min(seq_len) {
        ids[t] = match t {
            0 => 1,
            _ if t + 1 == len => 2,
            _ => 3 + (seed * 31 + t as i64 * 17) % (vocab - 3),
        };
        mask[t] = 1;
    }
    (ids, mask)
}
