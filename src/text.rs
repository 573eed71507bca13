//! Text in (feature `text`): a handle's `tokenizer.json` tokenizer, and
//! embedding UTF-8 text through the handle's token-id path.
//!
//! **Tokens.** A text is encoded as the Hugging Face `tokenizers` package
//! encodes it (normalizer, pre-tokenizer, model, post-processor with its
//! special tokens), truncated so that the sequence *with* its special tokens
//! fits `seq_len`: for BERT, `[CLS] ... [SEP]` always ends with `[SEP]`. This is
//! what the Python `tokenizers` package gives with `enable_truncation(seq_len)`.
//! (The legacy Python host cut the encoded ids to `seq_len` after the special
//! tokens were added, dropping `[SEP]` from long texts.) The tokenizer.json's own
//! truncation and padding settings are replaced by these.
//!
//! **Rows.** Each text becomes one row of the layout the ids path takes:
//! `seq_len` ids, mask and token types, padded with 0 (as the legacy host
//! padded). The rows then go through [`EmbedRuntime::embed_rows`], the path of
//! `c_embed_runtime_embed_batch`, so a text's vector is the one its ids give.
//!
//! **Allocations.** The tokenizer allocates on every call (its normalized
//! string, tokens and encoding). The rows live in buffers pooled per handle
//! ([`RowPool`]) and reused across calls: one per concurrent caller, kept up to
//! [`POOLED_ROWS`] rows. Batches encode on the calling thread, one text after the
//! other: the library starts no thread pool behind its host's back.

use std::path::Path;
use std::sync::{Mutex, PoisonError};

use tokenizers::{PostProcessor, Tokenizer, TruncationParams};

use crate::error::{CreateError, EmbedError};
use crate::error_strings::{CANNOT_LOAD_TOKENIZER, TOKENIZER_PATH_EMPTY};
use crate::run::runtime::EmbedRuntime;
use crate::tokens::TokenRows;

/// Rows a pooled buffer keeps between calls; a larger batch allocates its rows
/// for that call only.
pub const POOLED_ROWS: usize = 32;

/// One handle's tokenizer, set up for its `seq_len`.
pub struct TextTokenizer {
    tokenizer: Tokenizer,
    seq_len: usize,
    rows: RowPool,
}

/// Where one row goes: `seq_len` ids, mask values and token types; `None` for
/// an array not wanted.
pub struct RowMut<'a> {
    pub ids: Option<&'a mut [i64]>,
    pub mask: Option<&'a mut [i64]>,
    pub token_types: Option<&'a mut [i64]>,
}

impl TextTokenizer {
    /// Loads `tokenizer.json` from `path` and sets it to truncate to `seq_len`
    /// tokens (special tokens included) without padding.
    pub fn load(path: &Path, seq_len: usize) -> Result<Self, CreateError> {
        let cannot = |why: &dyn std::fmt::Display| {
            CreateError::library(format!(
                "{CANNOT_LOAD_TOKENIZER} {}: {why}",
                crate::error::shown(path)
            ))
        };
        if path.as_os_str().is_empty() {
            return Err(CreateError::library(TOKENIZER_PATH_EMPTY));
        }
        if path.is_dir() {
            return Err(cannot(&"it is a directory, not a tokenizer.json file"));
        }
        let mut tokenizer = Tokenizer::from_file(path).map_err(|e| cannot(&e))?;
        let special = tokenizer
            .get_post_processor()
            .map_or(0, |p| p.added_tokens(false));
        if special >= seq_len {
            return Err(cannot(&format_args!(
                "its {special} special tokens leave no room in seq_len {seq_len}"
            )));
        }
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: seq_len,
                ..TruncationParams::default()
            }))
            .map_err(|e| cannot(&e))?;
        tokenizer.with_padding(None);
        Ok(Self {
            tokenizer,
            seq_len,
            rows: RowPool::default(),
        })
    }

    /// Encodes `text` into `row` (each array `seq_len` long): its tokens, then
    /// zeros. Returns how many tokens it has (at most `seq_len`). On failure
    /// nothing is written.
    pub fn encode_into(&self, text: &str, row: RowMut<'_>) -> Result<usize, EmbedError> {
        let encoding = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| EmbedError::library_owned(format!("tokenizer: {e}")))?;
        let ids = encoding.get_ids();
        // Truncation makes this hold; a tokenizer that broke it would otherwise
        // write past the row.
        if ids.len() > self.seq_len {
            return Err(EmbedError::library_owned(format!(
                "tokenizer: {} tokens after truncation to {}",
                ids.len(),
                self.seq_len
            )));
        }
        let fill = |to: Option<&mut [i64]>, from: &[u32]| {
            if let Some(to) = to {
                let (used, padding) = to.split_at_mut(from.len());
                used.iter_mut()
                    .zip(from)
                    .for_each(|(t, &f)| *t = i64::from(f));
                padding.fill(0);
            }
        };
        fill(row.ids, ids);
        fill(row.mask, encoding.get_attention_mask());
        fill(row.token_types, encoding.get_type_ids());
        Ok(ids.len())
    }

    /// Embeds each text of `texts` into `out` (`out_dim` values per text) in one
    /// [`EmbedRuntime::embed_rows`] call.
    pub fn embed(
        &self,
        runtime: &EmbedRuntime,
        texts: &[&str],
        out: &mut [f32],
    ) -> Result<(), EmbedError> {
        debug_assert_eq!(self.seq_len, runtime.seq_len());
        let mut rows = self.rows.take(texts.len() * self.seq_len);
        let result = rows.encode(self, texts).and_then(|()| {
            runtime.embed_rows(
                &TokenRows {
                    seq_len: self.seq_len,
                    ids: &rows.ids,
                    mask: Some(&rows.mask),
                    token_types: Some(&rows.token_types),
                },
                out,
            )
        });
        self.rows.give_back(rows, POOLED_ROWS * self.seq_len);
        result
    }
}

/// Rows of token arrays, laid out as [`TokenRows`] takes them.
#[derive(Default)]
struct RowBuffer {
    ids: Vec<i64>,
    mask: Vec<i64>,
    token_types: Vec<i64>,
}

impl RowBuffer {
    fn encode(&mut self, tokenizer: &TextTokenizer, texts: &[&str]) -> Result<(), EmbedError> {
        let n = tokenizer.seq_len;
        let rows = self
            .ids
            .chunks_exact_mut(n)
            .zip(self.mask.chunks_exact_mut(n))
            .zip(self.token_types.chunks_exact_mut(n));
        for (text, ((ids, mask), token_types)) in texts.iter().zip(rows) {
            let row = RowMut {
                ids: Some(ids),
                mask: Some(mask),
                token_types: Some(token_types),
            };
            tokenizer.encode_into(text, row)?;
        }
        Ok(())
    }
}

/// A handle's row buffers, reused across calls (see the module docs).
#[derive(Default)]
struct RowPool(Mutex<Vec<RowBuffer>>);

impl RowPool {
    /// A buffer of `len` values per array (contents unspecified).
    fn take(&self, len: usize) -> RowBuffer {
        let mut buffer = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
            .unwrap_or_default();
        for values in [&mut buffer.ids, &mut buffer.mask, &mut buffer.token_types] {
            // Exact: the pool's bound is on what it keeps, not on amortised growth.
            values.clear();
            values.reserve_exact(len);
            values.resize(len, 0);
        }
        buffer
    }

    /// Keeps `buffer` for the next call unless it holds more than `keep` values.
    fn give_back(&self, buffer: RowBuffer, keep: usize) {
        if buffer.ids.capacity() <= keep {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(buffer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The WordPiece tokenizer.json of tools/gen_test_models.py (`make setup`).
    fn tiny_path() -> std::path::PathBuf {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/test/tiny_tokenizer.json");
        assert!(
            path.exists(),
            "{} is missing: run `make setup`",
            path.display()
        );
        path
    }

    fn tiny(seq_len: usize) -> TextTokenizer {
        TextTokenizer::load(&tiny_path(), seq_len).expect("loads")
    }

    fn encode(tokenizer: &TextTokenizer, text: &str) -> (usize, [Vec<i64>; 3]) {
        let n = tokenizer.seq_len;
        let mut arrays = [vec![9; n], vec![9; n], vec![9; n]];
        let [ids, mask, token_types] = &mut arrays;
        let row = RowMut {
            ids: Some(ids),
            mask: Some(mask),
            token_types: Some(token_types),
        };
        let count = tokenizer.encode_into(text, row).expect("encodes");
        (count, arrays)
    }

    #[test]
    fn encodes_with_special_tokens_and_pads_with_zeros() {
        let tokenizer = tiny(8);
        let (count, [ids, mask, types]) = encode(&tokenizer, "Hello worlds, bye!");
        // [CLS] hello world ##s , [UNK] ! [SEP]
        assert_eq!(count, 8);
        assert_eq!(ids, [2, 4, 5, 6, 18, 1, 19, 3]);
        assert_eq!(mask, [1; 8]);
        assert_eq!(types, [0; 8]);
        let (count, [ids, mask, _]) = encode(&tokenizer, "world");
        assert_eq!(count, 3);
        assert_eq!(ids, [2, 5, 3, 0, 0, 0, 0, 0]);
        assert_eq!(mask, [1, 1, 1, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn truncation_keeps_the_final_special_token() {
        let tokenizer = tiny(8);
        let (count, [ids, ..]) = encode(&tokenizer, &"hello ".repeat(20));
        assert_eq!(count, 8);
        assert_eq!(ids, [2, 4, 4, 4, 4, 4, 4, 3]);
    }

    #[test]
    fn load_errors_say_what_is_wrong() {
        let missing = TextTokenizer::load(Path::new("/nonexistent/tokenizer.json"), 8);
        let message = missing.err().expect("fails").to_string();
        assert!(
            message.starts_with(
                "std_create_error:cannot load tokenizer /nonexistent/tokenizer.json: "
            ),
            "{message}"
        );
        let directory = TextTokenizer::load(Path::new("/"), 8).err().expect("fails");
        assert!(
            directory.to_string().contains("is a directory"),
            "{directory}"
        );
        let empty = TextTokenizer::load(Path::new(""), 8).err().expect("fails");
        assert_eq!(
            empty.to_string(),
            "std_create_error:tokenizer path is empty"
        );
        let bad = tempfile_path::TempFile::with("{\"not\": \"a tokenizer\"}");
        let invalid = TextTokenizer::load(bad.path(), 8).err().expect("fails");
        assert!(invalid
            .to_string()
            .starts_with("std_create_error:cannot load tokenizer "));
        let too_short = TextTokenizer::load(&tiny_path(), 2).err().expect("fails");
        assert!(too_short
            .to_string()
            .contains("2 special tokens leave no room in seq_len 2"));
    }

    #[test]
    fn pooled_rows_are_reused_up_to_their_bound() {
        let pool = RowPool::default();
        let buffer = pool.take(16);
        let address = buffer.ids.as_ptr();
        pool.give_back(buffer, 16);
        let again = pool.take(8);
        assert_eq!(again.ids.as_ptr(), address, "the pooled buffer is reused");
        assert_eq!(again.ids.len(), 8);
        pool.give_back(pool.take(1000), 16);
        assert_eq!(
            pool.0.lock().unwrap().len(),
            0,
            "an oversized buffer is not kept"
        );
    }

    /// A file under the system's temporary directory, removed on drop.
    mod tempfile_path {
        use std::path::{Path, PathBuf};
        use std::sync::atomic::{AtomicUsize, Ordering};

        pub struct TempFile(PathBuf);

        impl TempFile {
            pub fn with(contents: &str) -> Self {
                static NEXT: AtomicUsize = AtomicUsize::new(0);
                let name = format!(
                    "c_embed_runtime_text_{}_{}.json",
                    std::process::id(),
                    NEXT.fetch_add(1, Ordering::Relaxed)
                );
                let path = std::env::temp_dir().join(name);
                std::fs::write(&path, contents).expect("writes a temporary file");
                Self(path)
            }

            pub fn path(&self) -> &Path {
                &self.0
            }
        }

        impl Drop for TempFile {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
    }
}
