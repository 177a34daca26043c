//! CoNLL-style tagging files: one `token TAB tag` per line, a blank line between sentences.
//!
//! - Columns are separated by tabs if the line has one, else by any whitespace; the token is
//!   the first column and the tag the last, so four-column CoNLL-2003 files
//!   (`EU NNP B-NP B-ORG`) read as (token, NER tag).
//! - A line starting with `#` is a comment, and a `-DOCSTART-` line is a document separator;
//!   both are skipped (a document separator also ends the sentence).
//! - A line with a single column (a token without a tag) is an error naming file and line.
//!
//! ```
//! use wgrnn::data::conll::Conll;
//!
//! let c = Conll::from_str("ex.conll", "# comment\narrive\tO\ntaipei\tB-DEST\n\nleave O\n").unwrap();
//! assert_eq!(c.sentences.len(), 2);
//! assert_eq!(c.sentences[0].tags, ["O", "B-DEST"]);
//! assert_eq!(c.sentences[0].lines, [2, 3]);
//! ```

use std::path::Path;

use crate::data::error::DataError;
use crate::data::formats::{numbered_lines, read_text};
use crate::data::labels::LabelVocab;
use crate::data::tokenize::Tokenizer;

/// One tagged sentence and where each of its tokens was read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TaggedSentence {
    /// The tokens, as written in the file.
    pub tokens: Vec<String>,
    /// The tag of each token.
    pub tags: Vec<String>,
    /// The 1-based line of each token.
    pub lines: Vec<usize>,
}

impl TaggedSentence {
    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether the sentence has no tokens.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
}

/// The sentences of a CoNLL-style file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conll {
    /// The file name used in errors.
    pub file: String,
    /// The sentences in file order (none is empty).
    pub sentences: Vec<TaggedSentence>,
}

impl Conll {
    /// Reads a CoNLL-style file.
    pub fn read(path: &Path) -> Result<Self, DataError> {
        let (name, text) = read_text(path)?;
        Conll::from_str(&name, &text)
    }

    /// Parses CoNLL-style text; `name` is the file named in errors.
    pub fn from_str(name: &str, text: &str) -> Result<Self, DataError> {
        let mut sentences = Vec::new();
        let mut current = TaggedSentence::default();
        for (line, raw) in numbered_lines(text) {
            let trimmed = raw.trim();
            let boundary = trimmed.is_empty() || trimmed.starts_with("-DOCSTART-");
            if boundary {
                if !current.is_empty() {
                    sentences.push(std::mem::take(&mut current));
                }
                continue;
            }
            if raw.starts_with('#') {
                continue;
            }
            let (token, tag) = split_columns(raw.trim_end())
                .map_err(|why| DataError::malformed(name, line, why, raw))?;
            current.tokens.push(token.into());
            current.tags.push(tag.into());
            current.lines.push(line);
        }
        if !current.is_empty() {
            sentences.push(current);
        }
        if sentences.is_empty() {
            return Err(DataError::Empty {
                file: name.into(),
                why: "no tagged sentences".into(),
            });
        }
        Ok(Conll {
            file: name.into(),
            sentences,
        })
    }

    /// Every tag of every sentence (to build a [`LabelVocab`] from).
    pub fn all_tags(&self) -> impl Iterator<Item = &str> {
        self.sentences
            .iter()
            .flat_map(|s| s.tags.iter().map(String::as_str))
    }

    /// The tag ids of every sentence; a tag `labels` lacks is an error naming file and line.
    pub fn tag_ids(&self, labels: &LabelVocab) -> Result<Vec<Vec<u32>>, DataError> {
        self.sentences
            .iter()
            .map(|s| {
                s.tags
                    .iter()
                    .zip(&s.lines)
                    .map(|(t, &line)| labels.require(t, &self.file, line))
                    .collect()
            })
            .collect()
    }

    /// The tokens of every sentence normalised by `tokenizer` (lower-cased or not).
    pub fn tokens(&self, tokenizer: &Tokenizer) -> Vec<Vec<String>> {
        self.sentences
            .iter()
            .map(|s| s.tokens.iter().map(|t| tokenizer.normalize(t)).collect())
            .collect()
    }
}

/// `(first column, last column)` of a tab- or whitespace-separated line, or what is wrong.
fn split_columns(raw: &str) -> Result<(&str, &str), &'static str> {
    let columns: Vec<&str> = if raw.contains('\t') {
        raw.split('\t').map(str::trim).collect()
    } else {
        raw.split_whitespace().collect()
    };
    match columns[..] {
        [] | [_] => Err("expected `token TAB tag`, found a token without a tag"),
        ["", ..] => Err("expected `token TAB tag`, found an empty token"),
        [.., ""] => Err("expected `token TAB tag`, found an empty tag"),
        [token, .., tag] => Ok((token, tag)),
    }
}
