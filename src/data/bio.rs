//! Spans of BIO tags, the way `conlleval` reads them: `B-X` starts a span of label `X`,
//! `I-X` continues a span of `X` and otherwise starts one (a "stray" `I-X` after `O` or after
//! another label is accepted, not an error), `O` is outside every span.
//!
//! A tag with neither a `B-` nor an `I-` prefix (other than `O`), such as the slot tags
//! `DEST` of [`crate::data::slots`], reads as `I-` of itself, so a run of equal plain tags is
//! one span. IOBES (`E-`, `S-`) tags are not interpreted; convert them to BIO first.
//!
//! ```
//! use wgrnn::data::bio::{Span, spans};
//!
//! let s = spans(&["B-LOC", "I-LOC", "O", "I-PER", "B-PER"]);
//! assert_eq!(s, [Span::new("LOC", 0, 2), Span::new("PER", 3, 4), Span::new("PER", 4, 5)]);
//! ```

/// A labelled span of tokens `start..end` (end exclusive) of one sentence.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Span {
    /// The label without its `B-`/`I-` prefix.
    pub label: String,
    /// Index of the first token.
    pub start: usize,
    /// One past the index of the last token.
    pub end: usize,
}

impl Span {
    /// A span of `label` over tokens `start..end`.
    pub fn new(label: &str, start: usize, end: usize) -> Self {
        Span {
            label: label.into(),
            start,
            end,
        }
    }
}

/// How a tag reads.
enum Part<'a> {
    Outside,
    Begin(&'a str),
    Inside(&'a str),
}

fn part(tag: &str) -> Part<'_> {
    if tag == "O" {
        Part::Outside
    } else if let Some(label) = tag.strip_prefix("B-") {
        Part::Begin(label)
    } else if let Some(label) = tag.strip_prefix("I-") {
        Part::Inside(label)
    } else {
        Part::Inside(tag)
    }
}

/// The spans of one sentence's tags, in order.
pub fn spans<S: AsRef<str>>(tags: &[S]) -> Vec<Span> {
    walk(tags).0
}

/// How many `I-X` tags start a span instead of continuing one (after `O`, at the start of
/// the sentence, or after a span of another label): the number of places a strict BIO
/// validator would have had to repair. Plain tags without a prefix are not counted.
pub fn bio_repairs<S: AsRef<str>>(tags: &[S]) -> usize {
    walk(tags).1
}

/// The spans and the number of stray `I-` tags.
fn walk<S: AsRef<str>>(tags: &[S]) -> (Vec<Span>, usize) {
    let mut out = Vec::new();
    let mut stray = 0;
    let mut open: Option<(&str, usize)> = None;
    for (i, tag) in tags.iter().enumerate() {
        let tag = tag.as_ref();
        let starts = match part(tag) {
            Part::Outside => None,
            Part::Begin(label) => Some(label),
            Part::Inside(label) if open.is_some_and(|(l, _)| l == label) => continue,
            Part::Inside(label) => {
                stray += tag.starts_with("I-") as usize;
                Some(label)
            }
        };
        if let Some((label, start)) = open.take() {
            out.push(Span::new(label, start, i));
        }
        open = starts.map(|label| (label, i));
    }
    if let Some((label, start)) = open {
        out.push(Span::new(label, start, tags.len()));
    }
    (out, stray)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stray_inside_starts_a_span_and_is_counted() {
        let tags = ["I-LOC", "I-LOC", "O", "B-PER", "I-LOC", "I-PER"];
        assert_eq!(
            spans(&tags),
            [
                Span::new("LOC", 0, 2),
                Span::new("PER", 3, 4),
                Span::new("LOC", 4, 5),
                Span::new("PER", 5, 6)
            ]
        );
        assert_eq!(bio_repairs(&tags), 3);
        assert_eq!(bio_repairs(&["B-A", "I-A", "O"]), 0);
    }

    #[test]
    fn plain_tags_form_runs() {
        let tags = ["O", "DEST", "DEST", "ARRIVE_TIME", "O"];
        assert_eq!(
            spans(&tags),
            [Span::new("DEST", 1, 3), Span::new("ARRIVE_TIME", 3, 4)]
        );
        assert_eq!(bio_repairs(&tags), 0);
        assert!(spans::<&str>(&[]).is_empty());
    }
}
