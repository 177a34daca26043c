//! Evaluation numbers: token and classification accuracy, span precision / recall / F1 with
//! `conlleval` semantics, perplexity and bits per character.
//!
//! Rates of an empty set are 0 rather than NaN, so reports stay printable.

use std::collections::BTreeMap;

use crate::data::bio::spans;
use crate::data::error::DataError;

/// Correct predictions out of a total.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Accuracy {
    /// Number of predictions equal to the gold value.
    pub correct: usize,
    /// Number of predictions.
    pub total: usize,
}

impl Accuracy {
    /// `correct / total` (0 when there is nothing to score).
    pub fn rate(&self) -> f64 {
        ratio(self.correct, self.total)
    }
}

/// Token accuracy over sentences: every position of every sentence counts once. Sentences
/// must pair up with equal lengths.
pub fn token_accuracy<T: PartialEq>(
    gold: &[Vec<T>],
    predicted: &[Vec<T>],
) -> Result<Accuracy, DataError> {
    same_len("sentences", gold.len(), predicted.len())?;
    let mut acc = Accuracy::default();
    for (i, (g, p)) in gold.iter().zip(predicted).enumerate() {
        same_len(&format!("sentence {i}"), g.len(), p.len())?;
        acc.correct += g.iter().zip(p).filter(|(a, b)| a == b).count();
        acc.total += g.len();
    }
    Ok(acc)
}

/// Classification accuracy: one label per sequence.
pub fn classification_accuracy<T: PartialEq>(
    gold: &[T],
    predicted: &[T],
) -> Result<Accuracy, DataError> {
    same_len("labels", gold.len(), predicted.len())?;
    Ok(Accuracy {
        correct: gold.iter().zip(predicted).filter(|(a, b)| a == b).count(),
        total: gold.len(),
    })
}

/// Span counts of one label or of all labels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpanCounts {
    /// Spans in the gold tags.
    pub gold: usize,
    /// Spans in the predicted tags.
    pub predicted: usize,
    /// Predicted spans equal to a gold span (same label, start and end).
    pub correct: usize,
}

impl SpanCounts {
    /// `correct / predicted` (0 when nothing was predicted).
    pub fn precision(&self) -> f64 {
        ratio(self.correct, self.predicted)
    }

    /// `correct / gold` (0 when there is no gold span).
    pub fn recall(&self) -> f64 {
        ratio(self.correct, self.gold)
    }

    /// The harmonic mean of precision and recall (0 when both are 0).
    pub fn f1(&self) -> f64 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }
}

/// Span scores over a set of sentences, overall and per label.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpanScore {
    /// Counts over all labels (micro-averaged, as `conlleval` reports).
    pub overall: SpanCounts,
    /// Counts per label, by label name.
    pub by_label: BTreeMap<String, SpanCounts>,
}

/// Span precision, recall and F1 of predicted tags against gold tags, sentence by sentence:
/// spans are read by [`crate::data::bio::spans`] and a predicted span is correct only if a
/// gold span has the same label, start and end. Sentences must pair up with equal lengths.
pub fn span_f1<S: AsRef<str>>(
    gold: &[Vec<S>],
    predicted: &[Vec<S>],
) -> Result<SpanScore, DataError> {
    same_len("sentences", gold.len(), predicted.len())?;
    let mut score = SpanScore::default();
    for (i, (g, p)) in gold.iter().zip(predicted).enumerate() {
        same_len(&format!("sentence {i}"), g.len(), p.len())?;
        let (gs, ps) = (spans(g), spans(p));
        for s in &gs {
            score.overall.gold += 1;
            score.by_label.entry(s.label.clone()).or_default().gold += 1;
        }
        for s in &ps {
            let hit = gs.contains(s) as usize;
            score.overall.predicted += 1;
            score.overall.correct += hit;
            let c = score.by_label.entry(s.label.clone()).or_default();
            c.predicted += 1;
            c.correct += hit;
        }
    }
    Ok(score)
}

/// Perplexity `exp(mean cross-entropy)` of a language model whose mean per-token
/// cross-entropy is `mean_nats` (natural log, as the model's loss is).
pub fn perplexity(mean_nats: f64) -> f64 {
    mean_nats.exp()
}

/// Bits per character `mean_nats / ln 2` of a character language model whose mean
/// per-character cross-entropy is `mean_nats`.
pub fn bits_per_char(mean_nats: f64) -> f64 {
    mean_nats / std::f64::consts::LN_2
}

/// A running mean of per-batch mean losses weighted by how many tokens each batch scored,
/// so the result is the mean over tokens (what perplexity needs), not over batches.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LossMeter {
    /// Sum of `mean * tokens` over the batches added.
    pub total: f64,
    /// Tokens scored.
    pub tokens: usize,
}

impl LossMeter {
    /// Adds a batch whose mean loss over its `tokens` scored tokens was `mean`.
    pub fn add(&mut self, mean: f64, tokens: usize) {
        self.total += mean * tokens as f64;
        self.tokens += tokens;
    }

    /// The mean loss per token (0 before anything was added).
    pub fn mean(&self) -> f64 {
        if self.tokens == 0 {
            0.0
        } else {
            self.total / self.tokens as f64
        }
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

fn same_len(what: &str, gold: usize, predicted: usize) -> Result<(), DataError> {
    if gold == predicted {
        Ok(())
    } else {
        Err(DataError::LengthMismatch {
            what: what.into(),
            left: gold,
            right: predicted,
        })
    }
}
