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
//! ([`RowPool`]) and reused across calls: one per concurrent caller. A batch is
//! encoded and embedded in windows of at most [`WINDOW_VALUES`] values per
//! array (256 rows at `seq_len` 128, one row from `seq_len` 32,768 up), so
//! its row storage is bounded whatever the number of texts, and allocated
//! fallibly: a failure is an error that names the size. Batches encode on the
//! calling thread, one text after the other: the library starts no thread pool
//! behind its host's back.
//!
//! **Bounded work.** Only as much of a text is tokenized as can yield
//! `seq_len` tokens: its first `seq_len` x 16 bytes, cut back to a whitespace,
//! then four times more while that yields no more than `seq_len` tokens, up
//! to `seq_len` x [`MAX_BYTES_PER_TOKEN`] bytes (8 KiB at `seq_len` 128). The
//! tokens are the full text's first `seq_len` (for the whitespace-separated
//! pre-tokenizers of text models), except for a text whose first
//! `seq_len` x 64 bytes yield fewer than `seq_len` tokens, which is embedded
//! from those bytes. A WordPiece tokenizer looks into words of at most
//! [`MAX_WORD_CHARS`] characters. So a call's time and memory follow `seq_len`,
//! not the text's length.
//!
//! **Files.** The `tokenizer.json` is read as the model is: a regular file only
//! (a FIFO or a device is refused before anything could block on it), opened
//! non-blocking, and no larger than `C_EMBED_RUNTIME_MAX_TOKENIZER_BYTES`
//! (128 MiB by default). A tokenizer that loads but cannot encode a probe text
//! is refused at create; a panic inside `tokenizers` is an error naming the
//! stage, and prints nothing.

use std::path::Path;
use std::sync::{Mutex, PoisonError};

use tokenizers::{Encoding, ModelWrapper, PostProcessor, Tokenizer, TruncationParams};

use crate::env::{self, DEFAULT_MAX_TOKENIZER_BYTES, MAX_TOKENIZER_BYTES_ENV};
use crate::error::{CreateError, EmbedError};
use crate::error_strings::{CANNOT_LOAD_TOKENIZER, TOKENIZER_PATH_EMPTY};
use crate::model::file::{read_regular, ReadError};
use crate::run::batching::WINDOW;
use crate::run::runtime::EmbedRuntime;
use crate::tokens::TokenRows;

/// Values per array of a batch's row window (see the module docs).
pub const WINDOW_VALUES: usize = WINDOW * 128;

/// The texts a tokenizer encodes at create: the empty text must encode (only
/// the special tokens), and this one must not panic (a strict vocabulary may
/// refuse it with an error).
const PROBE_TEXT: &str = "Hello, world.";

/// Bytes of a text first read per token of `seq_len` (English averages 4-5).
const FIRST_BYTES_PER_TOKEN: usize = 16;

/// The most bytes of a text ever read per token of `seq_len`: past them a text
/// is embedded from what they yield (see the module docs).
pub const MAX_BYTES_PER_TOKEN: usize = 64;

/// The longest word a WordPiece tokenizer looks into (longer words are its
/// unknown token): the `tokenizers` default is 100; a tokenizer.json that
/// raises it is held to this, as its matching is quadratic in the word.
pub const MAX_WORD_CHARS: usize = 200;

/// The error of an encode that panicked inside `tokenizers`.
const ENCODE_PANICKED: &str = "tokenizer: the tokenizers library panicked while encoding";

/// Why an encode failed: the tokenizer refused the text, or panicked.
#[derive(Debug)]
enum EncodeFailure {
    Refused(EmbedError),
    Panicked,
}

impl From<EncodeFailure> for EmbedError {
    fn from(failure: EncodeFailure) -> Self {
        match failure {
            EncodeFailure::Refused(error) => error,
            EncodeFailure::Panicked => EmbedError::library(ENCODE_PANICKED),
        }
    }
}

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
        let limit = env::number(MAX_TOKENIZER_BYTES_ENV, DEFAULT_MAX_TOKENIZER_BYTES);
        let bytes = read_regular(path, Some(limit)).map_err(|e| match e {
            ReadError::Io(e) => cannot(&e),
            ReadError::Kind(what) => {
                cannot(&format_args!("it is {what}, not a tokenizer.json file"))
            }
            ReadError::TooLarge { size, limit } => cannot(&format_args!(
                "it holds {size} bytes, above the limit of {limit} ({MAX_TOKENIZER_BYTES_ENV})"
            )),
            ReadError::NoMemory(size) => {
                cannot(&format_args!("its {size} bytes do not fit in memory"))
            }
        })?;
        let mut tokenizer = crate::panics::quietly(|| Tokenizer::from_bytes(&bytes))
            .map_err(|_| cannot(&"the tokenizers library panicked while loading it"))?
            .map_err(|e| cannot(&e))?;
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
        if let ModelWrapper::WordPiece(wordpiece) = tokenizer.get_model() {
            if wordpiece.max_input_chars_per_word > MAX_WORD_CHARS {
                let mut held = wordpiece.clone();
                held.max_input_chars_per_word = MAX_WORD_CHARS;
                tokenizer.with_model(ModelWrapper::WordPiece(held));
            }
        }
        let loaded = Self {
            tokenizer,
            seq_len,
            rows: RowPool::default(),
        };
        for text in ["", PROBE_TEXT] {
            let refused = match loaded.encode_bounded(text) {
                Err(failure @ EncodeFailure::Panicked) => Some(EmbedError::from(failure)),
                Err(EncodeFailure::Refused(error)) if text.is_empty() => Some(error),
                _ => None,
            };
            if let Some(error) = refused {
                return Err(cannot(&format_args!(
                    "it cannot encode the probe text {text:?}: {}",
                    error.message
                )));
            }
        }
        Ok(loaded)
    }

    /// Encodes `text` into `row` (each array `seq_len` long): its tokens, then
    /// zeros. Returns how many tokens it has (at most `seq_len`). On failure
    /// nothing is written.
    pub fn encode_into(&self, text: &str, row: RowMut<'_>) -> Result<usize, EmbedError> {
        let encoding = self.encode_bounded(text)?;
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

    /// Encodes as much of `text` as can yield `seq_len` tokens (see the module docs).
    fn encode_bounded(&self, text: &str) -> Result<Encoding, EncodeFailure> {
        let most = self.seq_len.saturating_mul(MAX_BYTES_PER_TOKEN);
        let mut budget = self.seq_len.saturating_mul(FIRST_BYTES_PER_TOKEN).min(most);
        loop {
            let (part, whole) = prefix(text, budget);
            let encoding = crate::panics::quietly(|| self.tokenizer.encode(part, true))
                .map_err(|_| EncodeFailure::Panicked)?
                .map_err(|e| {
                    EncodeFailure::Refused(EmbedError::library_owned(format!("tokenizer: {e}")))
                })?;
            // Cut by truncation: the part holds more than `seq_len` tokens.
            if whole || !encoding.get_overflowing().is_empty() || budget >= most {
                return Ok(encoding);
            }
            budget = budget.saturating_mul(4).min(most);
        }
    }

    /// Embeds each text of `texts` into `out` (`out_dim` values per text),
    /// window after window of rows through [`EmbedRuntime::embed_rows`]. A
    /// tokenizer error names its text as `name` does (`texts[i]`).
    pub fn embed(
        &self,
        runtime: &EmbedRuntime,
        texts: &[&str],
        out: &mut [f32],
        name: &dyn Fn(usize) -> String,
    ) -> Result<(), EmbedError> {
        debug_assert_eq!(self.seq_len, runtime.seq_len());
        let out_dim = runtime.out_dim();
        let window = window_rows(self.seq_len).min(texts.len().max(1));
        let mut rows = self.rows.take(window * self.seq_len)?;
        let mut result = Ok(());
        for (index, texts) in texts.chunks(window).enumerate() {
            let first = index * window;
            let values = texts.len() * self.seq_len;
            result = rows.encode(self, texts).map_err(|(i, e)| {
                EmbedError::library_owned(format!("{}: {}", name(first + i), e.message))
            });
            result = result.and_then(|()| {
                runtime.embed_rows(
                    &TokenRows {
                        seq_len: self.seq_len,
                        ids: &rows.ids[..values],
                        mask: Some(&rows.mask[..values]),
                        token_types: Some(&rows.token_types[..values]),
                    },
                    &mut out[first * out_dim..(first + texts.len()) * out_dim],
                )
            });
            if result.is_err() {
                break;
            }
        }
        self.rows.give_back(rows);
        result
    }
}

/// The rows of a batch's window at `seq_len`: [`WINDOW_VALUES`] values per
/// array, 1 to [`WINDOW`] rows.
fn window_rows(seq_len: usize) -> usize {
    (WINDOW_VALUES / seq_len.max(1)).clamp(1, WINDOW)
}

/// The first `budget` bytes of `text` (`true`: all of it), cut back to its last
/// whitespace when there is one in the last quarter, so that no word is split.
fn prefix(text: &str, budget: usize) -> (&str, bool) {
    if text.len() <= budget {
        return (text, true);
    }
    let mut cut = budget;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let head = &text[..cut];
    let at = head
        .rfind(char::is_whitespace)
        .filter(|&at| at >= cut - cut / 4)
        .unwrap_or(cut);
    (&text[..at], false)
}

/// Rows of token arrays, laid out as [`TokenRows`] takes them.
#[derive(Default)]
struct RowBuffer {
    ids: Vec<i64>,
    mask: Vec<i64>,
    token_types: Vec<i64>,
}

impl RowBuffer {
    /// Encodes `texts` into the first rows; on failure, which text failed.
    fn encode(
        &mut self,
        tokenizer: &TextTokenizer,
        texts: &[&str],
    ) -> Result<(), (usize, EmbedError)> {
        let n = tokenizer.seq_len;
        let rows = self
            .ids
            .chunks_exact_mut(n)
            .zip(self.mask.chunks_exact_mut(n))
            .zip(self.token_types.chunks_exact_mut(n));
        for (i, (text, ((ids, mask), token_types))) in texts.iter().zip(rows).enumerate() {
            let row = RowMut {
                ids: Some(ids),
                mask: Some(mask),
                token_types: Some(token_types),
            };
            tokenizer.encode_into(text, row).map_err(|e| (i, e))?;
        }
        Ok(())
    }
}

/// A handle's row buffers, reused across calls (see the module docs).
#[derive(Default)]
struct RowPool(Mutex<Vec<RowBuffer>>);

impl RowPool {
    /// A buffer of `len` values per array (contents unspecified), or an error
    /// naming the size when it cannot be allocated.
    fn take(&self, len: usize) -> Result<RowBuffer, EmbedError> {
        let mut buffer = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
            .unwrap_or_default();
        for values in [&mut buffer.ids, &mut buffer.mask, &mut buffer.token_types] {
            values.clear();
            values.try_reserve_exact(len).map_err(|_| {
                EmbedError::library_owned(format!(
                    "out_of_memory: cannot allocate 3 x {} bytes for the token rows",
                    len.saturating_mul(8)
                ))
            })?;
            values.resize(len, 0);
        }
        Ok(buffer)
    }

    /// Keeps `buffer` for the next call (its size is bounded by a window).
    fn give_back(&self, buffer: RowBuffer) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(buffer);
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

    #[test]
    fn prefixes_end_at_a_whitespace_or_a_char_boundary() {
        assert_eq!(prefix("short", 16), ("short", true));
        assert_eq!(prefix("one two three four", 16), ("one two three", false));
        // No whitespace in the last quarter: cut at the char boundary.
        assert_eq!(prefix("aaaaaaaaaaaa", 8), ("aaaaaaaa", false));
        assert_eq!(prefix("ééééé", 5), ("éé", false));
    }

    #[test]
    fn a_megabyte_of_text_gives_the_full_texts_first_tokens() {
        let tokenizer = tiny(16);
        let words = ["hello", "world", "the", "cat", "is", "sitting", "qzx"];
        let text: Vec<&str> = (0..250_000).map(|i| words[i % words.len()]).collect();
        let text = text.join(" ");
        assert!(text.len() > 1 << 20);
        let full = tokenizer.tokenizer.encode(text.as_str(), true).unwrap();
        let bounded = tokenizer.encode_bounded(&text).unwrap();
        assert_eq!(bounded.get_ids(), full.get_ids());
        assert_eq!(bounded.get_ids().len(), 16);
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
    fn pooled_rows_are_reused() {
        let pool = RowPool::default();
        let buffer = pool.take(16).unwrap();
        let address = buffer.ids.as_ptr();
        pool.give_back(buffer);
        let again = pool.take(8).unwrap();
        assert_eq!(again.ids.as_ptr(), address, "the pooled buffer is reused");
        assert_eq!(again.ids.len(), 8);
        let error = pool
            .take(usize::MAX / 16)
            .err()
            .expect("cannot be allocated");
        assert!(
            error.message.contains("cannot allocate 3 x "),
            "{}",
            error.message
        );
    }

    #[test]
    fn a_batch_runs_in_windows_of_rows() {
        // The window: 256 rows at seq_len 128, fewer as rows get longer, at least one.
        for (seq_len, rows) in [(128, 256), (1024, 32), (8192, 4), (1 << 20, 1)] {
            assert_eq!(window_rows(seq_len), rows, "{seq_len}");
        }
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
