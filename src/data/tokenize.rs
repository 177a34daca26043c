//! Splitting text into tokens: characters (for character language models) or words with
//! punctuation split off (for tagging, classification and word language models).
//!
//! Both are deterministic functions of the text: no locale, no model, no state.
//!
//! ```
//! use wgrnn::data::tokenize::Tokenizer;
//!
//! let words = Tokenizer::Words { lowercase: true };
//! assert_eq!(words.tokenize("Arrive Taipei, today!"), ["arrive", "taipei", ",", "today", "!"]);
//! assert_eq!(Tokenizer::Chars.tokenize("ab\nc"), ["a", "b", "\n", "c"]);
//! ```

use serde::{Deserialize, Serialize};

/// How text becomes tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Tokenizer {
    /// Every Unicode scalar value is a token, whitespace and newlines included (a character
    /// language model has to predict line ends too). A `\r\n` line end becomes one `\n`
    /// token, so files with Windows line ends give the same tokens.
    Chars,
    /// Words: text is split on whitespace, then each piece into maximal runs of letters and
    /// digits (`char::is_alphanumeric`) and single punctuation characters, so
    /// `"Taipei,"` gives `taipei` and `,`, and `"don't"` gives `don`, `'`, `t`.
    Words {
        /// Lower-case every word (Unicode lower-casing), so `Taipei` and `taipei` share an id.
        #[serde(default)]
        lowercase: bool,
    },
}

impl Tokenizer {
    /// The tokens of `text`, in order.
    pub fn tokenize(&self, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        match *self {
            Tokenizer::Chars => {
                let mut chars = text.chars().peekable();
                while let Some(c) = chars.next() {
                    if c == '\r' && chars.peek() == Some(&'\n') {
                        continue;
                    }
                    out.push(c.to_string());
                }
            }
            Tokenizer::Words { .. } => {
                for piece in text.split_whitespace() {
                    split_punctuation(piece, &mut out);
                }
                for w in &mut out {
                    *w = self.normalize(w);
                }
            }
        }
        out
    }

    /// A token read from a pre-tokenised file (a CoNLL column) normalised the way
    /// [`Tokenizer::tokenize`] normalises its words: lower-cased for
    /// `Words { lowercase: true }`, unchanged otherwise.
    pub fn normalize(&self, token: &str) -> String {
        match *self {
            Tokenizer::Words { lowercase: true } => token.to_lowercase(),
            _ => token.to_string(),
        }
    }
}

/// Appends the alphanumeric runs and single punctuation characters of `piece` to `out`.
fn split_punctuation(piece: &str, out: &mut Vec<String>) {
    let mut word = String::new();
    for c in piece.chars() {
        if c.is_alphanumeric() {
            word.push(c);
        } else {
            if !word.is_empty() {
                out.push(std::mem::take(&mut word));
            }
            out.push(c.to_string());
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_punctuation_and_keep_case_when_asked() {
        let t = Tokenizer::Words { lowercase: false };
        assert_eq!(
            t.tokenize("  Leave Taipei,on (Nov. 2nd)\tÉté\n"),
            [
                "Leave", "Taipei", ",", "on", "(", "Nov", ".", "2nd", ")", "Été"
            ]
        );
        let t = Tokenizer::Words { lowercase: true };
        assert_eq!(t.tokenize("Été--OK"), ["été", "-", "-", "ok"]);
        assert!(t.tokenize(" \n\t ").is_empty());
    }

    #[test]
    fn chars_keep_newlines_and_fold_crlf() {
        let t = Tokenizer::Chars;
        assert_eq!(t.tokenize("a b\r\nç\r"), ["a", " ", "b", "\n", "ç", "\r"]);
        assert_eq!(t.tokenize("A"), ["A"]);
    }
}
