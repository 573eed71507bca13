//! The caller's token rows: the arrays every embed reads, as the C ABI passes
//! them (`seq_len` values per row, row after row, mask and token types optional).

/// The caller's token arrays for one row; each holds exactly `seq_len` values.
#[derive(Clone, Copy, Debug)]
pub struct TokenInput<'a> {
    pub ids: &'a [i64],
    /// `None`: every position is valid.
    pub mask: Option<&'a [i64]>,
    /// `None`: all zeros.
    pub token_types: Option<&'a [i64]>,
}

/// `count` rows of `seq_len` tokens, laid out row after row.
#[derive(Clone, Copy, Debug)]
pub struct TokenRows<'a> {
    pub seq_len: usize,
    pub ids: &'a [i64],
    pub mask: Option<&'a [i64]>,
    pub token_types: Option<&'a [i64]>,
}

impl<'a> TokenRows<'a> {
    /// One row as `count` 1.
    pub fn single(row: &TokenInput<'a>) -> Self {
        Self {
            seq_len: row.ids.len(),
            ids: row.ids,
            mask: row.mask,
            token_types: row.token_types,
        }
    }

    pub fn count(&self) -> usize {
        self.ids.len() / self.seq_len.max(1)
    }

    pub fn row(&self, index: usize) -> TokenInput<'a> {
        let span = index * self.seq_len..(index + 1) * self.seq_len;
        TokenInput {
            ids: &self.ids[span.clone()],
            mask: self.mask.map(|m| &m[span.clone()]),
            token_types: self.token_types.map(|t| &t[span]),
        }
    }

    /// The rows `first..first + count`.
    pub fn slice(&self, first: usize, count: usize) -> Self {
        let span = first * self.seq_len..(first + count) * self.seq_len;
        Self {
            seq_len: self.seq_len,
            ids: &self.ids[span.clone()],
            mask: self.mask.map(|m| &m[span.clone()]),
            token_types: self.token_types.map(|t| &t[span]),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = TokenInput<'a>> + '_ {
        (0..self.count()).map(|i| self.row(i))
    }
}
