//! A token vocabulary built from counts: the tokens a model has its own id (embedding row or
//! 1-of-N slot) for, and one "other" id that every other token maps to.
//!
//! Ids: `0` is `<pad>` (the id of padding steps, never produced by [`Vocabulary::id`]), `1`
//! is `<other>`, then the kept tokens from the most to the least frequent (ties: the token
//! that sorts first as a string first). Because unknown tokens already map to id 1, a model
//! over this vocabulary uses `vocab = len()` and `unknown = "error"`: no id can be out of
//! range.
//!
//! The text file ([`Vocabulary::save`]) has one line per id, `token TAB count`, starting with
//! `<pad>` and `<other>` (whose count is the total count of the tokens that were left out).
//! Backslash, tab, newline and carriage return inside a token are written `\\`, `\t`, `\n`,
//! `\r`, so character vocabularies (which hold `"\n"` and `"\t"`) round-trip.
//!
//! ```
//! use wgrnn::data::vocab::{VocabOptions, Vocabulary, OTHER};
//!
//! let v = Vocabulary::from_tokens("b a b c b a".split(' '), &VocabOptions::default());
//! assert_eq!(v.token(2), Some("b"));
//! assert_eq!(v.id("a"), 3);
//! assert_eq!(v.id("zebra"), OTHER);
//! ```

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::data::error::DataError;

/// Id of padding steps.
pub const PAD: u32 = 0;
/// Id of every token outside the vocabulary (the 1-of-N "other" dimension).
pub const OTHER: u32 = 1;
/// How [`PAD`] is written.
pub const PAD_TOKEN: &str = "<pad>";
/// How [`OTHER`] is written.
pub const OTHER_TOKEN: &str = "<other>";
/// Number of reserved ids before the first token.
pub const RESERVED: usize = 2;

/// Which tokens a vocabulary keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VocabOptions {
    /// Keep at most this many tokens (not counting `<pad>` and `<other>`), the most frequent
    /// first; `None` keeps every token that passes `min_count`.
    #[serde(default)]
    pub max_size: Option<usize>,
    /// Keep only tokens seen at least this often (1 keeps every token seen).
    #[serde(default = "one")]
    pub min_count: u64,
}

fn one() -> u64 {
    1
}

impl Default for VocabOptions {
    /// Every token seen at least once, no size limit.
    fn default() -> Self {
        VocabOptions {
            max_size: None,
            min_count: 1,
        }
    }
}

/// Tokens with ids and the counts they were chosen by. See the module documentation for the
/// id layout and the file format.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "VocabularyData", try_from = "VocabularyData")]
pub struct Vocabulary {
    /// Token of each id (reserved names at 0 and 1).
    tokens: Vec<String>,
    /// Training count of each id (`<pad>`: 0; `<other>`: the left-out tokens' total).
    counts: Vec<u64>,
    /// Id of each kept token (reserved ids are not in it).
    index: HashMap<String, u32>,
}

/// The serialised form of a [`Vocabulary`]: tokens and counts by id, reserved ones included.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct VocabularyData {
    tokens: Vec<String>,
    counts: Vec<u64>,
}

impl From<Vocabulary> for VocabularyData {
    fn from(v: Vocabulary) -> Self {
        VocabularyData {
            tokens: v.tokens,
            counts: v.counts,
        }
    }
}

impl TryFrom<VocabularyData> for Vocabulary {
    type Error = DataError;
    fn try_from(d: VocabularyData) -> Result<Self, DataError> {
        if d.tokens.len() != d.counts.len() {
            return Err(DataError::invalid(
                "vocabulary",
                format!("{} tokens but {} counts", d.tokens.len(), d.counts.len()),
            ));
        }
        let entries = d.tokens.into_iter().zip(d.counts).enumerate();
        let lines = entries.map(|(i, (t, c))| (i + 1, t, c));
        Vocabulary::from_entries("vocabulary (serialised)", lines)
    }
}

impl Vocabulary {
    /// Builds a vocabulary from token counts, keeping tokens with `count >= min_count`, the
    /// `max_size` most frequent of them, ordered by count (descending) then token (ascending).
    pub fn from_counts(counts: &HashMap<String, u64>, options: &VocabOptions) -> Self {
        let mut ranked: Vec<(&String, u64)> = counts.iter().map(|(t, &c)| (t, c)).collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        let passing = ranked
            .iter()
            .take_while(|(_, c)| *c >= options.min_count)
            .count();
        let keep = options.max_size.map_or(passing, |m| m.min(passing));
        let left_out: u64 = ranked[keep..].iter().map(|(_, c)| c).sum();
        let mut tokens = vec![PAD_TOKEN.to_string(), OTHER_TOKEN.to_string()];
        let mut kept_counts = vec![0, left_out];
        let mut index = HashMap::with_capacity(keep);
        for (i, (t, c)) in ranked[..keep].iter().enumerate() {
            index.insert((*t).clone(), (RESERVED + i) as u32);
            tokens.push((*t).clone());
            kept_counts.push(*c);
        }
        Vocabulary {
            tokens,
            counts: kept_counts,
            index,
        }
    }

    /// Counts `tokens` and builds the vocabulary with [`Vocabulary::from_counts`].
    pub fn from_tokens<I, S>(tokens: I, options: &VocabOptions) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Vocabulary::from_counts(&count_tokens(tokens), options)
    }

    /// The id of `token`: its own id if kept, [`OTHER`] otherwise.
    pub fn id(&self, token: &str) -> u32 {
        self.get(token).unwrap_or(OTHER)
    }

    /// The id of `token` if it was kept (never a reserved id).
    pub fn get(&self, token: &str) -> Option<u32> {
        self.index.get(token).copied()
    }

    /// The ids of a token sequence (unknown tokens become [`OTHER`]).
    pub fn encode<S: AsRef<str>>(&self, tokens: &[S]) -> Vec<u32> {
        tokens.iter().map(|t| self.id(t.as_ref())).collect()
    }

    /// The token of `id` (`<pad>`, `<other>` for the reserved ids), if the id exists.
    pub fn token(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    /// The training count of `id` (0 for `<pad>`, the left-out tokens' total for `<other>`).
    pub fn count(&self, id: u32) -> Option<u64> {
        self.counts.get(id as usize).copied()
    }

    /// Number of ids, reserved ones included: the `vocab` of the model's input encoding (or
    /// the classes of a language-model head). Never zero.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Number of kept tokens (ids besides `<pad>` and `<other>`).
    pub fn known(&self) -> usize {
        self.tokens.len() - RESERVED
    }

    /// The vocabulary as its text file: `token TAB count` per id, in id order.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        for (t, c) in self.tokens.iter().zip(&self.counts) {
            s += &escape(t);
            s.push('\t');
            s += &c.to_string();
            s.push('\n');
        }
        s
    }

    /// Writes [`Vocabulary::to_text`] to `path`.
    pub fn save(&self, path: &Path) -> Result<(), DataError> {
        std::fs::write(path, self.to_text()).map_err(|source| DataError::Io {
            file: path.display().to_string(),
            source,
        })
    }

    /// Reads a vocabulary written by [`Vocabulary::save`].
    pub fn load(path: &Path) -> Result<Self, DataError> {
        let (name, text) = crate::data::formats::read_text(path)?;
        Vocabulary::from_text(&name, &text)
    }

    /// Parses the text of a vocabulary file; `name` is the file named in errors.
    pub fn from_text(name: &str, text: &str) -> Result<Self, DataError> {
        let mut entries = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let raw = raw.strip_suffix('\r').unwrap_or(raw);
            let Some((tok, count)) = raw.rsplit_once('\t') else {
                let why = "expected `token TAB count`, found no tab";
                return Err(DataError::malformed(name, line, why, raw));
            };
            let count: u64 = count.trim().parse().map_err(|_| DataError::BadNumber {
                file: name.into(),
                line,
                field: 2,
                value: count.into(),
                expected: "a count (a whole number >= 0)",
            })?;
            let tok = unescape(tok)
                .ok_or_else(|| DataError::malformed(name, line, "bad escape in token", tok))?;
            entries.push((line, tok, count));
        }
        Vocabulary::from_entries(name, entries)
    }

    /// Builds a vocabulary from `(line, token, count)` entries in id order, checking the
    /// reserved entries and uniqueness.
    fn from_entries(
        name: &str,
        entries: impl IntoIterator<Item = (usize, String, u64)>,
    ) -> Result<Self, DataError> {
        let mut tokens = Vec::new();
        let mut counts = Vec::new();
        let mut index = HashMap::new();
        let mut first_line: HashMap<String, usize> = HashMap::new();
        for (line, tok, count) in entries {
            let id = tokens.len();
            if id < RESERVED {
                let want = [PAD_TOKEN, OTHER_TOKEN][id];
                if tok != want {
                    let why = format!("id {id} must be the reserved token `{want}`");
                    return Err(DataError::malformed(name, line, &why, &tok));
                }
            } else {
                if let Some(&first) = first_line.get(&tok) {
                    return Err(DataError::Duplicate {
                        file: name.into(),
                        line,
                        token: tok,
                        first,
                    });
                }
                first_line.insert(tok.clone(), line);
                index.insert(tok.clone(), id as u32);
            }
            tokens.push(tok);
            counts.push(count);
        }
        if tokens.len() < RESERVED {
            return Err(DataError::Empty {
                file: name.into(),
                why: format!("a vocabulary starts with `{PAD_TOKEN}` and `{OTHER_TOKEN}`"),
            });
        }
        Ok(Vocabulary {
            tokens,
            counts,
            index,
        })
    }
}

/// How often each token occurs.
pub fn count_tokens<I, S>(tokens: I) -> HashMap<String, u64>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut counts: HashMap<String, u64> = HashMap::new();
    for t in tokens {
        let t = t.as_ref();
        match counts.get_mut(t) {
            Some(c) => *c += 1,
            None => {
                counts.insert(t.to_string(), 1);
            }
        }
    }
    counts
}

/// `token` with `\`, tab, newline and carriage return written as two-character escapes.
fn escape(token: &str) -> String {
    let mut s = String::with_capacity(token.len());
    for c in token.chars() {
        match c {
            '\\' => s += "\\\\",
            '\t' => s += "\\t",
            '\n' => s += "\\n",
            '\r' => s += "\\r",
            c => s.push(c),
        }
    }
    s
}

/// The inverse of [`escape`]; `None` for a backslash not followed by `\`, `t`, `n` or `r`.
fn unescape(text: &str) -> Option<String> {
    let mut s = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            s.push(c);
            continue;
        }
        s.push(match chars.next()? {
            '\\' => '\\',
            't' => '\t',
            'n' => '\n',
            'r' => '\r',
            _ => return None,
        });
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_round_trip() {
        for t in ["a", "\\", "\t", "\n", "\r", "x\\ny", ""] {
            assert_eq!(unescape(&escape(t)).as_deref(), Some(t));
        }
        assert_eq!(unescape("a\\q"), None);
        assert_eq!(unescape("a\\"), None);
    }
}
