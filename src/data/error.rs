//! The typed errors of the data pipeline: every problem with a file names the file, the
//! 1-based line and the offending value, so a user can open the file at that line.

use thiserror::Error;

/// Why data could not be read, encoded, batched or scored.
#[derive(Debug, Error)]
pub enum DataError {
    /// The file could not be opened, read or written.
    #[error("{file}: {source}")]
    Io {
        /// The file.
        file: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The bytes of a line are not valid UTF-8.
    #[error("{file}:{line}: invalid UTF-8 at byte offset {offset} of the file")]
    InvalidUtf8 {
        /// The file.
        file: String,
        /// 1-based line holding the first bad byte.
        line: usize,
        /// Byte offset of the first bad byte from the start of the file.
        offset: usize,
    },
    /// A line does not have the shape the format requires (a missing tag, tab, label, ...).
    #[error("{file}:{line}: {why}: `{text}`")]
    Malformed {
        /// The file.
        file: String,
        /// 1-based line.
        line: usize,
        /// What the format expected, e.g. "expected `token TAB tag`, found no tag".
        why: String,
        /// The offending line (or field) as found.
        text: String,
    },
    /// A field that must be a number is not one.
    #[error("{file}:{line}: field {field} is `{value}`, which is not {expected}")]
    BadNumber {
        /// The file.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based field (column) of the line.
        field: usize,
        /// The text of the field.
        value: String,
        /// What kind of number was expected ("a float", "a count").
        expected: &'static str,
    },
    /// A row of vectors has the wrong number of values.
    #[error("{file}:{line}: the vector of `{word}` has {got} values; expected {expected}")]
    WrongWidth {
        /// The file.
        file: String,
        /// 1-based line.
        line: usize,
        /// The word the row belongs to.
        word: String,
        /// Expected number of values (the dimension).
        expected: usize,
        /// Number of values found.
        got: usize,
    },
    /// A token or label occurs twice where each must be unique.
    #[error("{file}:{line}: `{token}` already appeared on line {first}")]
    Duplicate {
        /// The file.
        file: String,
        /// 1-based line of the repeat.
        line: usize,
        /// The repeated token.
        token: String,
        /// 1-based line of its first appearance.
        first: usize,
    },
    /// A label (tag or class) that the label vocabulary does not know.
    #[error("{file}:{line}: unknown label `{label}` (the label vocabulary has {known} labels)")]
    UnknownLabel {
        /// The file the label came from.
        file: String,
        /// 1-based line.
        line: usize,
        /// The label.
        label: String,
        /// Number of known labels.
        known: usize,
    },
    /// The file holds no usable data (no tokens, sentences or rows).
    #[error("{file}: {why}")]
    Empty {
        /// The file.
        file: String,
        /// What is missing.
        why: String,
    },
    /// A setting or an argument is unusable (not tied to a file).
    #[error("{what}: {why}")]
    Invalid {
        /// The setting or argument, e.g. `BatchConfig::max_batch`.
        what: String,
        /// What is wrong with it.
        why: String,
    },
    /// Two lists that must match element for element have different lengths.
    #[error("{what}: {left} gold items but {right} predicted")]
    LengthMismatch {
        /// What was compared (e.g. "sentence 3").
        what: String,
        /// Length of the gold (reference) list.
        left: usize,
        /// Length of the predicted list.
        right: usize,
    },
}

impl DataError {
    /// A [`DataError::Malformed`] for `file:line`.
    pub(crate) fn malformed(file: &str, line: usize, why: &str, text: &str) -> Self {
        DataError::Malformed {
            file: file.into(),
            line,
            why: why.into(),
            text: text.into(),
        }
    }

    /// A [`DataError::Invalid`] for a setting or argument.
    pub(crate) fn invalid(what: &str, why: impl Into<String>) -> Self {
        DataError::Invalid {
            what: what.into(),
            why: why.into(),
        }
    }
}
