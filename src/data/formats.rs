//! Readers for plain text (language modelling) and `label TAB text` files (classification),
//! and the UTF-8 decoding every reader shares. CoNLL tagging files are read by
//! [`crate::data::conll`].
//!
//! Every reader has a `&Path` form and a form taking a name and the text (the name is what
//! errors mention), and reports problems as [`DataError`]s naming the file and 1-based line.

use std::path::Path;

use crate::data::error::DataError;
use crate::data::labels::LabelVocab;
use crate::data::tokenize::Tokenizer;

/// Reads a whole file as UTF-8; returns the name used in errors (the path as displayed) and
/// the text.
pub fn read_text(path: &Path) -> Result<(String, String), DataError> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| DataError::Io {
        file: name.clone(),
        source,
    })?;
    let text = decode(&name, bytes)?;
    Ok((name, text))
}

/// The bytes as a `String`, or [`DataError::InvalidUtf8`] naming the line and byte offset of
/// the first invalid byte.
pub fn decode(name: &str, bytes: Vec<u8>) -> Result<String, DataError> {
    String::from_utf8(bytes).map_err(|e| {
        let offset = e.utf8_error().valid_up_to();
        let line = 1 + e.as_bytes()[..offset]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        DataError::InvalidUtf8 {
            file: name.into(),
            line,
            offset,
        }
    })
}

/// The lines of `text` with their 1-based numbers, each without its `\n` or `\r\n` end.
pub(crate) fn numbered_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().map(|(i, l)| (i + 1, l))
}

/// The whole file as one token stream (a language-modelling corpus); see
/// [`crate::data::example::lm_stream`] to cut it into training sequences.
pub fn read_plain(path: &Path, tokenizer: &Tokenizer) -> Result<Vec<String>, DataError> {
    let (name, text) = read_text(path)?;
    plain_from_str(&name, &text, tokenizer)
}

/// [`read_plain`] on text already in memory; `name` is the file named in errors.
pub fn plain_from_str(
    name: &str,
    text: &str,
    tokenizer: &Tokenizer,
) -> Result<Vec<String>, DataError> {
    let tokens = tokenizer.tokenize(text);
    if tokens.is_empty() {
        return Err(DataError::Empty {
            file: name.into(),
            why: "no tokens".into(),
        });
    }
    Ok(tokens)
}

/// The file as one token sequence per non-blank line (blank lines are skipped). With the
/// character tokenizer each line's tokens end with a `"\n"` token, so a model learns where
/// lines end.
pub fn read_lines(path: &Path, tokenizer: &Tokenizer) -> Result<Vec<Vec<String>>, DataError> {
    let (name, text) = read_text(path)?;
    lines_from_str(&name, &text, tokenizer)
}

/// [`read_lines`] on text already in memory; `name` is the file named in errors.
pub fn lines_from_str(
    name: &str,
    text: &str,
    tokenizer: &Tokenizer,
) -> Result<Vec<Vec<String>>, DataError> {
    let mut out = Vec::new();
    for (_, line) in numbered_lines(text) {
        if line.trim().is_empty() {
            continue;
        }
        let mut tokens = tokenizer.tokenize(line);
        if *tokenizer == Tokenizer::Chars {
            tokens.push("\n".into());
        }
        out.push(tokens);
    }
    if out.is_empty() {
        return Err(DataError::Empty {
            file: name.into(),
            why: "no non-blank lines".into(),
        });
    }
    Ok(out)
}

/// One row of a classification file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabeledText {
    /// The class label (first column, surrounding whitespace removed).
    pub label: String,
    /// The text (everything after the first tab, surrounding whitespace removed); tokenise
    /// it with a [`Tokenizer`].
    pub text: String,
    /// 1-based line of the row.
    pub line: usize,
}

/// A classification file: `label TAB text` per line; blank lines are skipped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TsvFile {
    /// The file name used in errors.
    pub file: String,
    /// The rows in file order.
    pub rows: Vec<LabeledText>,
}

impl TsvFile {
    /// Reads a classification file.
    pub fn read(path: &Path) -> Result<Self, DataError> {
        let (name, text) = read_text(path)?;
        TsvFile::from_str(&name, &text)
    }

    /// Parses classification rows; a line without a tab, with an empty label or an empty
    /// text is an error naming `name` and the line.
    pub fn from_str(name: &str, text: &str) -> Result<Self, DataError> {
        let mut rows = Vec::new();
        for (line, raw) in numbered_lines(text) {
            if raw.trim().is_empty() {
                continue;
            }
            let Some((label, body)) = raw.split_once('\t') else {
                let why = "expected `label TAB text`, found no tab";
                return Err(DataError::malformed(name, line, why, raw));
            };
            let (label, body) = (label.trim(), body.trim());
            if label.is_empty() {
                return Err(DataError::malformed(name, line, "empty label", raw));
            }
            if body.is_empty() {
                return Err(DataError::malformed(name, line, "empty text", raw));
            }
            rows.push(LabeledText {
                label: label.into(),
                text: body.into(),
                line,
            });
        }
        if rows.is_empty() {
            return Err(DataError::Empty {
                file: name.into(),
                why: "no `label TAB text` rows".into(),
            });
        }
        Ok(TsvFile {
            file: name.into(),
            rows,
        })
    }

    /// The class id of every row; a label `labels` lacks is an error naming file and line.
    pub fn label_ids(&self, labels: &LabelVocab) -> Result<Vec<u32>, DataError> {
        self.rows
            .iter()
            .map(|r| labels.require(&r.label, &self.file, r.line))
            .collect()
    }

    /// The tokens of every row's text.
    pub fn tokens(&self, tokenizer: &Tokenizer) -> Vec<Vec<String>> {
        self.rows
            .iter()
            .map(|r| tokenizer.tokenize(&r.text))
            .collect()
    }
}
