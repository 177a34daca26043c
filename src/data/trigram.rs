//! Word hashing by letter trigrams: a word is the bag of the three-letter pieces of `#word#`,
//! so every word, seen in training or not, has an encoding (only trigrams that were rare in
//! training map to the "other" id).
//!
//! `apple` -> `#ap app ppl ple le#`; a one-letter word `a` -> `#a#`. Letters are Unicode
//! scalar values. A batch of words is stored in CSR form ([`TrigramBatch`]): for each
//! time-major position `t * B + b`, a range of `offsets` into one flat list of trigram ids.
//! The model-side encoding that consumes it (a sum of trigram embedding rows) is separate.
//!
//! ```
//! use wgrnn::data::trigram::trigrams;
//!
//! assert_eq!(trigrams("apple"), ["#ap", "app", "ppl", "ple", "le#"]);
//! assert_eq!(trigrams("a"), ["#a#"]);
//! ```

use serde::{Deserialize, Serialize};

use crate::backend::SeqShape;
use crate::data::error::DataError;
use crate::data::vocab::{VocabOptions, Vocabulary, count_tokens};

/// The letter trigrams of `#word#`, in order, repeats kept (`"aaaa"` has `aaa` twice).
/// An empty word has none.
pub fn trigrams(word: &str) -> Vec<String> {
    if word.is_empty() {
        return Vec::new();
    }
    let letters: Vec<char> = std::iter::once('#')
        .chain(word.chars())
        .chain(std::iter::once('#'))
        .collect();
    letters.windows(3).map(|w| w.iter().collect()).collect()
}

/// A vocabulary of letter trigrams (ids as in [`Vocabulary`]: 0 unused padding, 1 other, then
/// trigrams by training frequency).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TrigramVocab {
    vocab: Vocabulary,
}

impl TrigramVocab {
    /// Counts the trigrams of every word occurrence in `words` and keeps them by `options`
    /// (`max_size` / `min_count` of trigrams, ties broken by trigram string).
    pub fn from_words<I, S>(words: I, options: &VocabOptions) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let grams = words.into_iter().flat_map(|w| trigrams(w.as_ref()));
        TrigramVocab {
            vocab: Vocabulary::from_counts(&count_tokens(grams), options),
        }
    }

    /// Wraps a trigram vocabulary (for example one loaded with [`Vocabulary::load`]).
    pub fn from_vocabulary(vocab: Vocabulary) -> Self {
        TrigramVocab { vocab }
    }

    /// The underlying vocabulary (its `len()` is the number of trigram embedding rows).
    pub fn vocabulary(&self) -> &Vocabulary {
        &self.vocab
    }

    /// The bag of trigram ids of `word`, in trigram order; a trigram occurring k times in
    /// the word occurs k times here, and unknown trigrams are [`crate::data::vocab::OTHER`].
    pub fn encode(&self, word: &str) -> Vec<u32> {
        trigrams(word).iter().map(|g| self.vocab.id(g)).collect()
    }

    /// The CSR trigram encoding of a batch of word sequences, time-major like
    /// [`crate::model::Inputs::Ids`], padded to `time` steps (the longest sequence when
    /// `None`). Every sequence needs at least one word and at most `time`.
    pub fn batch<W, S>(
        &self,
        sequences: &[W],
        time: Option<usize>,
    ) -> Result<TrigramBatch, DataError>
    where
        W: AsRef<[S]>,
        S: AsRef<str>,
    {
        let lengths: Vec<usize> = sequences.iter().map(|s| s.as_ref().len()).collect();
        let seq = crate::data::batching::shape(&lengths, time)?;
        let nb = lengths.len();
        let mut per_pos: Vec<Vec<u32>> = vec![Vec::new(); seq.time * nb];
        for (b, s) in sequences.iter().enumerate() {
            for (t, w) in s.as_ref().iter().enumerate() {
                per_pos[t * nb + b] = self.encode(w.as_ref());
            }
        }
        let mut offsets = Vec::with_capacity(per_pos.len() + 1);
        let mut ids = Vec::new();
        offsets.push(0);
        for bag in per_pos {
            ids.extend(bag);
            let end = u32::try_from(ids.len()).map_err(|_| {
                DataError::invalid("trigram batch", "more than 2^32 - 1 trigrams in one batch")
            })?;
            offsets.push(end);
        }
        Ok(TrigramBatch { seq, offsets, ids })
    }
}

/// The trigram ids of a batch of words in CSR (compressed sparse row) form.
///
/// Position `p = t * B + b` (time-major, like token ids) holds the trigram ids
/// `ids[offsets[p] as usize..offsets[p + 1] as usize]`; padding positions (`t >=
/// seq.lengths[b]`) have an empty range. `offsets` has `T * B + 1` entries, starts at 0 and
/// never decreases; its last entry is `ids.len()`.
#[derive(Clone, Debug, PartialEq)]
pub struct TrigramBatch {
    /// Padded length and each sequence's number of words.
    pub seq: SeqShape,
    /// Start of each position's ids in `ids`, plus the end: `[T * B + 1]`.
    pub offsets: Vec<u32>,
    /// All trigram ids, position after position.
    pub ids: Vec<u32>,
}

impl TrigramBatch {
    /// The trigram ids of step `t` of sequence `b` (empty for padding steps). Panics if
    /// `t >= T` or `b >= B`, like slice indexing.
    pub fn at(&self, t: usize, b: usize) -> &[u32] {
        let p = t * self.seq.batch() + b;
        &self.ids[self.offsets[p] as usize..self.offsets[p + 1] as usize]
    }

    /// The model's input batch: each word is the bag of its trigram ids
    /// ([`crate::model::Inputs::Bags`]), summed as an embedding bag (`embedding` encoding over
    /// the trigram vocabulary) or as a trigram count vector (`one_hot` encoding).
    pub fn into_batch<T>(self) -> crate::model::Batch<T> {
        crate::model::Batch {
            seq: self.seq,
            inputs: crate::model::Inputs::Bags {
                offsets: self.offsets,
                ids: self.ids,
            },
        }
    }
}
