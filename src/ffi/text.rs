//! Text in (feature `text`): a handle with a `tokenizer.json`, and the calls
//! that embed UTF-8 text through it. Thin, as the rest of the FFI: the work is
//! done in [`crate::text`].

use std::ffi::{c_char, c_void, CStr, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::boundary::{catch_panic, optional_c_str, optional_slice, optional_slice_mut};
use super::{
    batch_sizes, create_handle, finish_create, finish_embed, handle_ref, required, Handle,
};
use crate::error::EmbedError;
use crate::error_strings;
use crate::text::{RowMut, TextTokenizer};

/// The error of a text call on a handle made without a tokenizer.
const NO_TOKENIZER: EmbedError = EmbedError::library(error_strings::NO_TOKENIZER);

/// Creates an embedding handle that also takes text: `c_embed_runtime_create`
/// with the same arguments, plus the model's Hugging Face `tokenizer.json`
/// (WordPiece, BPE, Unigram or WordLevel), for `c_embed_runtime_embed_text`,
/// `c_embed_runtime_embed_text_batch` and `c_embed_runtime_tokenize`. The token
/// functions (`c_embed_runtime_embed`, ...) work on it as on any handle.
///
/// - `tokenizer_path`: path of a `tokenizer.json` (NUL-terminated, any bytes but
///   NUL). NULL or "" fails with "tokenizer path is empty"; a file that cannot be
///   read or is not a tokenizer fails with "cannot load tokenizer PATH: REASON":
///   only a regular file is read (a FIFO or a device fails at once), of at most
///   `C_EMBED_RUNTIME_MAX_TOKENIZER_BYTES` bytes (default 128 MiB), and a
///   tokenizer that cannot encode the empty text, or panics on a probe text, is
///   refused here.
///   Its own truncation and padding settings are ignored: texts are truncated to
///   `seq_len` tokens with the special tokens kept (see `c_embed_runtime_tokenize`).
/// - the other arguments: as for `c_embed_runtime_create`.
///
/// Returns a handle owned by the caller (free it with `c_embed_runtime_destroy`),
/// or NULL on failure; then `c_embed_runtime_last_create_error` says why
/// (`std_create_error:` for the tokenizer). The strings are only read during the call.
///
/// Only in builds with the `text` feature (the default); an ids-only build
/// (`cargo build --no-default-features`) exports none of the text functions.
///
/// # Safety
/// `model_path`, `tokenizer_path` and `requested_device` are NULL or
/// NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn c_embed_runtime_create_with_tokenizer(
    model_path: *const c_char,
    tokenizer_path: *const c_char,
    requested_device: *const c_char,
    seq_len: i64,
    out_dim: i32,
    threads: i32,
    strict: i32,
) -> *mut c_void {
    // SAFETY: each is NULL or a NUL-terminated string (this function's contract).
    let (model_path, tokenizer_path, requested_device) = unsafe {
        (
            optional_c_str(model_path),
            optional_c_str(tokenizer_path),
            optional_c_str(requested_device),
        )
    };
    let created = catch_panic(Err(None), || {
        let mut handle = create_handle(
            model_path,
            requested_device,
            seq_len,
            out_dim,
            threads,
            strict,
        )
        .map_err(Some)?;
        let path = tokenizer_path.map_or(Path::new(""), |p| {
            Path::new(OsStr::from_bytes(p.to_bytes()))
        });
        handle.tokenizer = Some(TextTokenizer::load(path, handle.runtime.seq_len()).map_err(Some)?);
        Ok(handle)
    });
    finish_create(created)
}

/// Embeds one UTF-8 text into `out_vec` (`out_dim` floats): tokenizes it with the
/// handle's tokenizer (as `c_embed_runtime_tokenize`) and embeds the tokens as
/// `c_embed_runtime_embed` does, so the vector is the one those ids give.
///
/// - `utf8_text`: a NUL-terminated UTF-8 string (any length; "" is a text too).
///   NULL, or bytes that are not UTF-8, fail.
/// - `out_vec`: room for `out_dim` floats; must not be NULL. Written only on success.
///
/// Returns 1 on success (then `c_embed_runtime_last_error` is ""), 0 on failure
/// (invalid handle, or an error `c_embed_runtime_last_error` describes, e.g.
/// "std_error:no tokenizer: ..." on a handle made by `c_embed_runtime_create`).
/// Thread rules as for `c_embed_runtime_embed`. Unlike the token functions, this
/// allocates: the tokenizer allocates on every call (the token rows themselves
/// are reused per handle). Only in builds with the `text` feature.
///
/// # Safety
/// `handle` may be any value; `utf8_text` is NULL or NUL-terminated; a non-NULL
/// `out_vec` holds at least `out_dim` floats.
#[no_mangle]
pub unsafe extern "C" fn c_embed_runtime_embed_text(
    handle: *mut c_void,
    utf8_text: *const c_char,
    out_vec: *mut f32,
) -> i32 {
    // SAFETY: one text, forwarded under this function's contract.
    unsafe { embed_texts(handle, &utf8_text, 1, out_vec, Naming::Single) }
}

/// Embeds `count` UTF-8 texts in one call, through the batch path of
/// `c_embed_runtime_embed_batch` (each text is one row of `seq_len` tokens),
/// writing `count * out_dim` floats to `out_vecs`, text after text. Each text's
/// vector is the one `c_embed_runtime_embed_text` gives for it (within 1e-6).
///
/// - `texts`: `count` pointers to NUL-terminated UTF-8 strings; must not be NULL,
///   and no element may be NULL ("std_error:texts[I] is NULL").
/// - `count`: at least 1 ("std_error:invalid_rows" otherwise).
/// - `out_vecs`: room for `count * out_dim` floats; must not be NULL.
///
/// Returns 1 when every text succeeded, else 0 and `c_embed_runtime_last_error`
/// says why (naming the first bad text as `texts[I]`, a tokenizer error too; a
/// model error names no text: rows share runs); after a failure `out_vecs` may
/// be partly written. Any number of texts takes bounded memory: they are
/// tokenized and embedded in windows of rows. Thread rules as for `c_embed_runtime_embed`. Allocates
/// as `c_embed_runtime_embed_text`. Only in builds with the `text` feature.
///
/// # Safety
/// `handle` may be any value; a non-NULL `texts` holds `count` pointers, each NULL
/// or NUL-terminated; a non-NULL `out_vecs` holds at least `count * out_dim` floats.
#[no_mangle]
pub unsafe extern "C" fn c_embed_runtime_embed_text_batch(
    handle: *mut c_void,
    texts: *const *const c_char,
    count: i64,
    out_vecs: *mut f32,
) -> i32 {
    // SAFETY: forwarded under this function's contract.
    unsafe { embed_texts(handle, texts, count, out_vecs, Naming::Indexed) }
}

/// How errors name a caller's text.
#[derive(Clone, Copy)]
enum Naming {
    /// "text"
    Single,
    /// "texts[I]"
    Indexed,
}

impl Naming {
    /// The name of the caller's text `index`.
    fn name(self, index: usize) -> String {
        match self {
            Naming::Single => "text".to_owned(),
            Naming::Indexed => format!("texts[{index}]"),
        }
    }
}

/// `c_embed_runtime_embed_text_batch`, with errors naming the texts as `naming` says.
///
/// # Safety
/// As `c_embed_runtime_embed_text_batch`.
unsafe fn embed_texts(
    handle: *mut c_void,
    texts: *const *const c_char,
    count: i64,
    out_vecs: *mut f32,
    naming: Naming,
) -> i32 {
    catch_panic(0, || {
        let Some(handle) = handle_ref(handle) else {
            return 0;
        };
        let Some((rows, _, out_count)) = batch_sizes(&handle, count) else {
            return 0;
        };
        // SAFETY: non-NULL arrays hold `rows` pointers and `rows * out_dim` floats
        // the caller does not touch during the call (the caller's contract).
        let (texts, out) = unsafe {
            (
                optional_slice(texts, rows),
                optional_slice_mut(out_vecs, out_count),
            )
        };
        let Some((texts, out)) = required(
            &handle,
            (texts, out),
            error_strings::whole::NULL_TEXT_ARRAYS,
        ) else {
            return 0;
        };
        finish_embed(&handle, || {
            let tokenizer = tokenizer_of(&handle)?;
            let texts = texts
                .iter()
                .enumerate()
                // SAFETY: each element is NULL or NUL-terminated (the caller's contract).
                .map(|(i, &text)| utf8(unsafe { optional_c_str(text) }, naming, i))
                .collect::<Result<Vec<&str>, _>>()?;
            tokenizer.embed(&handle.runtime, &texts, out, &|i| naming.name(i))
        })
    })
}

/// Tokenizes one UTF-8 text with the handle's tokenizer into one row of the
/// layout `c_embed_runtime_embed` takes: its tokens, then 0 up to `seq_len`, in
/// each array given.
///
/// The text is encoded as the Hugging Face `tokenizers` package encodes it with
/// `enable_truncation(seq_len)`: special tokens added (for BERT `[CLS] ... [SEP]`),
/// then the text's own tokens cut so that the whole sequence fits `seq_len`, so
/// a long text still ends with `[SEP]`. (The legacy Python host cut the ids to
/// `seq_len` after the special tokens were added, dropping the `[SEP]`; its
/// vectors differ from these for texts longer than `seq_len` tokens.)
///
/// - `utf8_text`: a NUL-terminated UTF-8 string; NULL or not UTF-8 fails.
/// - `input_ids`, `attention_mask`, `token_type_ids`: room for `seq_len` values
///   each, or NULL for an array not wanted. Written only on success.
///
/// Returns the number of tokens of the text after truncation (0..=seq_len; the
/// positions past it are padding), or -1 on failure (invalid handle, or an error
/// `c_embed_runtime_last_error` describes). Only in builds with the `text` feature.
///
/// # Safety
/// `handle` may be any value; `utf8_text` is NULL or NUL-terminated; each non-NULL
/// array holds at least `seq_len` values.
#[no_mangle]
pub unsafe extern "C" fn c_embed_runtime_tokenize(
    handle: *mut c_void,
    utf8_text: *const c_char,
    input_ids: *mut i64,
    attention_mask: *mut i64,
    token_type_ids: *mut i64,
) -> i64 {
    catch_panic(-1, || {
        let Some(handle) = handle_ref(handle) else {
            return -1;
        };
        let seq_len = handle.runtime.seq_len();
        // SAFETY: each non-NULL array holds seq_len values the caller does not
        // touch during the call (the caller's contract); the text is NULL or
        // NUL-terminated.
        let (text, arrays) = unsafe {
            (
                optional_c_str(utf8_text),
                [input_ids, attention_mask, token_type_ids]
                    .map(|array| (array, optional_slice_mut(array, seq_len))),
            )
        };
        if arrays
            .iter()
            .any(|(pointer, slice)| !pointer.is_null() && slice.is_none())
        {
            handle
                .errors
                .set("std_error:input_ids, attention_mask and token_type_ids must be NULL or aligned arrays");
            return -1;
        }
        let [(_, ids), (_, mask), (_, token_types)] = arrays;
        let mut count = 0;
        let ok = finish_embed(&handle, || {
            let tokenizer = tokenizer_of(&handle)?;
            let text = utf8(text, Naming::Single, 0)?;
            let row = RowMut {
                ids,
                mask,
                token_types,
            };
            count = tokenizer.encode_into(text, row)?;
            Ok(())
        });
        if ok == 1 {
            count as i64
        } else {
            -1
        }
    })
}

fn tokenizer_of(handle: &Handle) -> Result<&TextTokenizer, EmbedError> {
    handle.tokenizer.as_ref().ok_or(NO_TOKENIZER)
}

/// A caller's text as UTF-8; errors name it as `naming` says (`index`: its place).
fn utf8(text: Option<&CStr>, naming: Naming, index: usize) -> Result<&str, EmbedError> {
    let name = naming.name(index);
    let text = text.ok_or_else(|| {
        EmbedError::library_owned(format!("{name}{}", error_strings::ARGUMENT_IS_NULL))
    })?;
    text.to_str().map_err(|e| {
        EmbedError::library_owned(format!(
            "{name}{} (invalid byte at offset {})",
            error_strings::ARGUMENT_NOT_UTF8,
            e.valid_up_to()
        ))
    })
}
