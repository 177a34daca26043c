//! Batches for the model: padded time-major ids (or hashed word features) built on a host
//! thread ahead of the step that trains on them, and the evaluation of a model on a data set.
//!
//! The training loop takes batch `k + 1` from a [`Feed`] while step `k` runs: the feed's
//! thread has built it meanwhile, and on the GPU the step before was submitted without
//! waiting (see [`crate::train::Trainer::queue_step`]), so the upload of the next batch's ids
//! is queued behind the work in flight instead of stalling it.

use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;

use crate::backend::{Backend, Real};
use crate::data::batching::{BatchConfig, Batcher, Bucketing, to_batch};
use crate::data::example::Target;
use crate::data::metrics::{LossMeter, bits_per_char, perplexity, span_f1, token_accuracy};
use crate::model::{Batch, Inputs, Mode, Model, Targets};
use crate::run::RunError;
use crate::run::config::TaskKind;
use crate::run::task::{Artifacts, Dataset};

/// One batch ready for the model.
pub struct Prepped<T> {
    /// Inputs.
    pub batch: Batch<T>,
    /// Targets.
    pub targets: Targets<T>,
    /// Scored items: valid steps (per-step tasks) or sequences (classification).
    pub count: usize,
    /// Valid steps (tokens) in the batch.
    pub tokens: usize,
    /// Position of the batch in its epoch.
    pub index: usize,
}

/// The batch of `data.examples[indices]`, padded to `time` steps (the longest when `None`);
/// with word hashing each word becomes the bag of its trigram ids ([`Inputs::Bags`], which
/// the model encodes as a trigram count vector on the device).
pub fn make_batch<T: Real>(
    data: &Dataset,
    indices: &[usize],
    time: Option<usize>,
) -> Result<Prepped<T>, RunError> {
    let (mut batch, targets) = to_batch::<T>(&data.examples, indices, time, 0)?;
    if let Some(words) = &data.words {
        let Inputs::Ids(ids) = &batch.inputs else {
            unreachable!("to_batch gives ids")
        };
        let nb = batch.seq.batch();
        let mut offsets = Vec::with_capacity(ids.len() + 1);
        let mut bag_ids = Vec::new();
        offsets.push(0u32);
        for (p, &w) in ids.iter().enumerate() {
            if batch.seq.valid(p / nb, p % nb) {
                bag_ids.extend_from_slice(&words.bags[w as usize]);
            }
            offsets.push(bag_ids.len() as u32);
        }
        batch.inputs = Inputs::Bags {
            offsets,
            ids: bag_ids,
        };
    }
    let tokens = batch.seq.valid_steps();
    let count = match data.examples[indices[0]].target {
        Target::Steps(_) => tokens,
        Target::Class(_) => indices.len(),
    };
    Ok(Prepped {
        batch,
        targets,
        count,
        tokens,
        index: 0,
    })
}

/// Batches built on a background thread, in order, at most a few ahead.
pub struct Feed<T> {
    rx: Receiver<Result<Prepped<T>, RunError>>,
    _thread: JoinHandle<()>,
}

impl<T: Real> Feed<T> {
    /// Starts building `batches[start..]` of `data`.
    pub fn spawn(
        data: Dataset,
        batches: Vec<Vec<usize>>,
        start: usize,
        time: Option<usize>,
    ) -> Self {
        let (tx, rx) = sync_channel(3);
        let thread = std::thread::spawn(move || {
            for (k, idx) in batches.iter().enumerate().skip(start) {
                let b = make_batch(&data, idx, time).map(|mut p| {
                    p.index = k;
                    p
                });
                // The receiver is gone when training stopped early: stop quietly.
                if tx.send(b).is_err() {
                    return;
                }
            }
        });
        Feed {
            rx,
            _thread: thread,
        }
    }
}

impl<T> Iterator for Feed<T> {
    type Item = Result<Prepped<T>, RunError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.rx.recv().ok()
    }
}

/// What a model scores on a data set.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Scores {
    /// Mean loss per scored token (or sequence).
    pub loss: f64,
    /// Tokens (or sequences) scored.
    pub count: usize,
    /// Token accuracy (tagging) or accuracy (classification).
    pub accuracy: Option<f64>,
    /// Span F1 of the tags (tagging).
    pub f1: Option<f64>,
    /// Perplexity (language models).
    pub perplexity: Option<f64>,
    /// Bits per character (character language models).
    pub bpc: Option<f64>,
}

impl Scores {
    /// The metric early stopping watches, its name, and whether higher is better: the loss
    /// of a language model, the span F1 of a BIO tagger (token accuracy for plain tags), the
    /// accuracy of a classifier.
    pub fn monitored(&self, task: TaskKind, bio: bool) -> (&'static str, f64, bool) {
        match task {
            TaskKind::Lm => ("loss", self.loss, false),
            TaskKind::Tag if bio => ("span F1", self.f1.unwrap_or(0.0), true),
            _ => ("accuracy", self.accuracy.unwrap_or(0.0), true),
        }
    }

    /// One line for people, e.g. `loss 1.2345  bits/char 1.781  perplexity 3.44`.
    pub fn describe(&self) -> String {
        let mut s = format!("loss {:.4}", self.loss);
        if let Some(b) = self.bpc {
            s += &format!("  bits/char {b:.3}");
        }
        if let Some(p) = self.perplexity {
            s += &format!("  perplexity {p:.2}");
        }
        if let Some(a) = self.accuracy {
            s += &format!("  accuracy {:.2}%", 100.0 * a);
        }
        if let Some(f) = self.f1 {
            s += &format!("  span F1 {:.2}%", 100.0 * f);
        }
        s
    }
}

/// Whether tags use `B-`/`I-` prefixes (then span F1 is the tagging metric).
pub fn is_bio(art: &Artifacts) -> bool {
    art.labels.as_ref().is_some_and(|l| {
        l.labels()
            .iter()
            .any(|t| t.starts_with("B-") || t.starts_with("I-"))
    })
}

/// Index of the largest of `row`.
pub fn argmax<T: Real>(row: &[T]) -> usize {
    let mut best = 0;
    for (i, v) in row.iter().enumerate() {
        if *v > row[best] {
            best = i;
        }
    }
    best
}

/// Scores a model on `data` in evaluation mode (no dropout, no update).
pub fn evaluate<B: Backend>(
    model: &mut Model<B>,
    data: &Dataset,
    task: TaskKind,
    art: &Artifacts,
    chars: bool,
) -> Result<Scores, RunError> {
    let config = BatchConfig {
        max_batch: 64,
        max_tokens: Some(64 * 128),
        bucketing: Bucketing::Sorted { pool: usize::MAX },
        shuffle: false,
        seed: 0,
    };
    let batcher = Batcher::for_examples(config, &data.examples)?;
    let classes = model.config().head.as_ref().map_or(0, |h| h.classes);
    let mut meter = LossMeter::default();
    let (mut gold, mut pred): (Vec<Vec<String>>, Vec<Vec<String>>) = (Vec::new(), Vec::new());
    let (mut right, mut total) = (0usize, 0usize);
    let label = |c: u32| {
        art.labels
            .as_ref()
            .and_then(|l| l.label(c))
            .unwrap_or("?")
            .to_string()
    };
    for idx in batcher.epoch(0) {
        let p = make_batch::<B::Scalar>(data, &idx, None)?;
        model.forward(&p.batch, None, Mode::Eval)?;
        let loss = model.loss(&p.targets)?.f64();
        meter.add(loss, p.count);
        if task == TaskKind::Lm {
            continue;
        }
        let out = model.outputs();
        let Targets::Classes(y) = &p.targets else {
            unreachable!("token tasks have class targets")
        };
        let nb = p.batch.seq.batch();
        match task {
            TaskKind::Classify => {
                for (b, &g) in y.iter().enumerate() {
                    let guess = argmax(&out[b * classes..(b + 1) * classes]) as u32;
                    right += (guess == g) as usize;
                    total += 1;
                }
            }
            _ => {
                for (b, &len) in p.batch.seq.lengths.iter().enumerate() {
                    let (mut g, mut q) = (Vec::with_capacity(len), Vec::with_capacity(len));
                    for t in 0..len {
                        let pos = t * nb + b;
                        g.push(label(y[pos]));
                        q.push(label(
                            argmax(&out[pos * classes..(pos + 1) * classes]) as u32
                        ));
                    }
                    gold.push(g);
                    pred.push(q);
                }
            }
        }
    }
    let mean = meter.mean();
    let mut s = Scores {
        loss: mean,
        count: meter.tokens,
        ..Scores::default()
    };
    match task {
        TaskKind::Lm => {
            s.perplexity = Some(perplexity(mean));
            s.bpc = chars.then(|| bits_per_char(mean));
        }
        TaskKind::Classify => s.accuracy = Some(right as f64 / total.max(1) as f64),
        TaskKind::Tag => {
            s.accuracy = Some(token_accuracy(&gold, &pred)?.rate());
            s.f1 = Some(span_f1(&gold, &pred)?.overall.f1());
        }
    }
    Ok(s)
}
