//! The host-side data scheduler: which sequences go into which batch in each epoch, and the
//! padded time-major [`Batch`] / [`Targets`] the model takes.
//!
//! An epoch's batches are a pure function of `(config, lengths, epoch)`: the random
//! generator of epoch `k` is seeded from `(seed, k)` alone, so a run resumed at epoch `k`
//! sees exactly the batches it would have seen. Every sequence is in exactly one batch per
//! epoch.
//!
//! Padding is what makes a batch cost more than its tokens: a batch costs `B * T_max` steps.
//! Bucketing puts sequences of similar length together:
//! - [`Bucketing::None`]: shuffle, then cut into batches (the baseline);
//! - [`Bucketing::Sorted`]: shuffle, cut into pools of `pool` sequences, sort each pool by
//!   length, then cut into batches (the batches of a pool hold neighbouring lengths);
//! - [`Bucketing::Width`]: shuffle, group lengths `1..=w`, `w+1..=2w`, ..., then cut each
//!   group into batches (padding below `w` steps per sequence).
//!
//! In every case the batches are then shuffled, so long and short ones interleave.
//!
//! ```
//! use wgrnn::data::batching::{BatchConfig, Batcher, Bucketing};
//!
//! let lengths = vec![3, 9, 4, 8, 2, 9, 3, 7];
//! let config = BatchConfig { max_batch: 2, bucketing: Bucketing::Sorted { pool: 8 }, ..Default::default() };
//! let batcher = Batcher::new(config, lengths).unwrap();
//! let epoch = batcher.epoch(0);
//! let mut seen: Vec<usize> = epoch.iter().flatten().copied().collect();
//! seen.sort();
//! assert_eq!(seen, (0..8).collect::<Vec<_>>());
//! assert_eq!(epoch, batcher.epoch(0));
//! ```

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand::rngs::ChaCha8Rng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::backend::SeqShape;
use crate::config::Task;
use crate::data::error::DataError;
use crate::data::example::{Example, Target};
use crate::model::{Batch, Inputs, Targets};

/// How sequences are grouped by length before batches are cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Bucketing {
    /// No grouping: batches of randomly drawn sequences.
    None,
    /// Sort by length within shuffled pools of `pool` sequences (a larger pool: less padding,
    /// less randomness in which sequences share a batch).
    Sorted {
        /// Sequences per pool (at least 1).
        pool: usize,
    },
    /// Fixed-width length buckets `1..=width`, `width+1..=2*width`, ...
    Width {
        /// Width of each bucket in steps (at least 1).
        width: usize,
    },
}

/// How an epoch is cut into batches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    /// Most sequences per batch (at least 1).
    pub max_batch: usize,
    /// Most padded steps per batch, `B * T_max` (a token budget); `None`: no budget. A
    /// sequence longer than the budget gets a batch of its own.
    #[serde(default)]
    pub max_tokens: Option<usize>,
    /// How sequences are grouped by length.
    pub bucketing: Bucketing,
    /// Shuffle the sequences and the batches (`false`: a fixed order, by length when
    /// bucketing, for evaluation).
    #[serde(default = "yes")]
    pub shuffle: bool,
    /// Seed of every epoch's order.
    #[serde(default)]
    pub seed: u64,
}

fn yes() -> bool {
    true
}

impl Default for BatchConfig {
    /// 32 sequences per batch, no token budget, sorted pools of 100 batches' worth of
    /// sequences, shuffled, seed 0.
    fn default() -> Self {
        BatchConfig {
            max_batch: 32,
            max_tokens: None,
            bucketing: Bucketing::Sorted { pool: 3200 },
            shuffle: true,
            seed: 0,
        }
    }
}

impl BatchConfig {
    /// Checks the settings, naming the first unusable one.
    pub fn validate(&self) -> Result<(), DataError> {
        if self.max_batch == 0 {
            return Err(DataError::invalid(
                "BatchConfig::max_batch",
                "must be at least 1",
            ));
        }
        if self.max_tokens == Some(0) {
            return Err(DataError::invalid(
                "BatchConfig::max_tokens",
                "must be at least 1",
            ));
        }
        match self.bucketing {
            Bucketing::Sorted { pool: 0 } => Err(DataError::invalid(
                "BatchConfig::bucketing.pool",
                "must be at least 1",
            )),
            Bucketing::Width { width: 0 } => Err(DataError::invalid(
                "BatchConfig::bucketing.width",
                "must be at least 1",
            )),
            _ => Ok(()),
        }
    }
}

/// The batch schedule of a data set: its sequence lengths and how to batch them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batcher {
    config: BatchConfig,
    lengths: Vec<usize>,
}

impl Batcher {
    /// A schedule for sequences of these lengths (each at least 1, at least one sequence).
    pub fn new(config: BatchConfig, lengths: Vec<usize>) -> Result<Self, DataError> {
        config.validate()?;
        if lengths.is_empty() {
            return Err(DataError::invalid(
                "Batcher lengths",
                "no sequences to batch",
            ));
        }
        if let Some(i) = lengths.iter().position(|&l| l == 0) {
            return Err(DataError::invalid(
                "Batcher lengths",
                format!("sequence {i} is empty; every sequence needs at least one step"),
            ));
        }
        Ok(Batcher { config, lengths })
    }

    /// A schedule for these examples' lengths.
    pub fn for_examples(config: BatchConfig, examples: &[Example]) -> Result<Self, DataError> {
        Batcher::new(config, examples.iter().map(Example::len).collect())
    }

    /// The settings.
    pub fn config(&self) -> &BatchConfig {
        &self.config
    }

    /// The sequence lengths.
    pub fn lengths(&self) -> &[usize] {
        &self.lengths
    }

    /// The batches of epoch `epoch` (0-based), each a list of sequence indices; every
    /// sequence is in exactly one batch. A pure function of the seed, the epoch and the
    /// lengths.
    pub fn epoch(&self, epoch: u64) -> Vec<Vec<usize>> {
        let c = &self.config;
        let len = |i: &usize| self.lengths[*i];
        let mut rng = epoch_rng(c.seed, epoch);
        let mut order: Vec<usize> = (0..self.lengths.len()).collect();
        if c.shuffle {
            order.shuffle(&mut rng);
        }
        let groups: Vec<Vec<usize>> = match c.bucketing {
            Bucketing::None => vec![order],
            Bucketing::Sorted { pool } => order
                .chunks(pool)
                .map(|p| {
                    let mut p = p.to_vec();
                    p.sort_by_key(len);
                    p
                })
                .collect(),
            Bucketing::Width { width } => {
                let mut buckets: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
                for i in order {
                    buckets.entry((len(&i) - 1) / width).or_default().push(i);
                }
                buckets.into_values().collect()
            }
        };
        let mut batches = Vec::new();
        for group in groups {
            self.cut(&group, &mut batches);
        }
        if c.shuffle {
            batches.shuffle(&mut rng);
        }
        batches
    }

    /// Cuts `group` in order into batches within `max_batch` and `max_tokens`.
    fn cut(&self, group: &[usize], batches: &mut Vec<Vec<usize>>) {
        let budget = self.config.max_tokens.unwrap_or(usize::MAX);
        let mut current: Vec<usize> = Vec::new();
        let mut longest = 0;
        for &i in group {
            let l = self.lengths[i];
            let wider = longest.max(l);
            let too_big = current.len() + 1 > self.config.max_batch
                || (current.len() + 1).saturating_mul(wider) > budget;
            if !current.is_empty() && too_big {
                batches.push(std::mem::take(&mut current));
                longest = 0;
            }
            longest = longest.max(l);
            current.push(i);
        }
        if !current.is_empty() {
            batches.push(current);
        }
    }
}

/// The random generator of epoch `epoch` of a run seeded with `seed`: ChaCha8 keyed by both
/// numbers, so epochs are independent streams and need no earlier epoch to be replayed.
pub fn epoch_rng(seed: u64, epoch: u64) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&epoch.to_le_bytes());
    key[16..].copy_from_slice(b"wgrnn batch ord\0");
    ChaCha8Rng::from_seed(key)
}

/// The fraction of a schedule's `B * T_max` steps that are padding (0 = none). Every index
/// in `batches` must be below `lengths.len()` (panics otherwise, like slice indexing).
pub fn padding_fraction(lengths: &[usize], batches: &[Vec<usize>]) -> f64 {
    let (mut slots, mut used) = (0usize, 0usize);
    for b in batches {
        let longest = b.iter().map(|&i| lengths[i]).max().unwrap_or(0);
        slots += longest * b.len();
        used += b.iter().map(|&i| lengths[i]).sum::<usize>();
    }
    if slots == 0 {
        0.0
    } else {
        (slots - used) as f64 / slots as f64
    }
}

/// The target written at padding steps of per-step tasks: the task's ignore label if it has
/// one, else 0. The model counts only valid steps, so any in-range id works; the ignore
/// label makes padding harmless even to code that looks at every position.
pub fn pad_target(task: &Task) -> u32 {
    task.ignore_label().unwrap_or(0)
}

/// The [`SeqShape`] of sequences of `lengths` padded to `time` steps (the longest when
/// `None`); every length must be in `1..=time`.
pub fn shape(lengths: &[usize], time: Option<usize>) -> Result<SeqShape, DataError> {
    if lengths.is_empty() {
        return Err(DataError::invalid("batch", "no sequences"));
    }
    let longest = lengths.iter().copied().max().unwrap_or(0);
    let time = time.unwrap_or(longest);
    if let Some(i) = lengths.iter().position(|&l| l == 0 || l > time) {
        return Err(DataError::invalid(
            "batch",
            format!(
                "sequence {i} has {} steps; each needs 1..={time} (truncate or split long \
                 ones with fit_length)",
                lengths[i]
            ),
        ));
    }
    Ok(SeqShape {
        time,
        lengths: lengths.to_vec(),
    })
}

/// The model's batch and targets for `examples[indices]`, time-major `[T, B]`: ids padded
/// with 0 ([`crate::data::vocab::PAD`]), `T` the longest sequence (or `time` when given, to
/// align every batch to one length). Per-step targets are `[T, B]` with `pad_target` at
/// padding steps (see [`pad_target`]); sequence labels are `[B]`. All examples of a batch
/// must have the same kind of target.
pub fn to_batch<T>(
    examples: &[Example],
    indices: &[usize],
    time: Option<usize>,
    pad_target: u32,
) -> Result<(Batch<T>, Targets<T>), DataError> {
    let mut picked = Vec::with_capacity(indices.len());
    for &i in indices {
        let ex = examples.get(i).ok_or_else(|| {
            DataError::invalid(
                "to_batch indices",
                format!("index {i} but only {} examples", examples.len()),
            )
        })?;
        if let Target::Steps(t) = &ex.target
            && t.len() != ex.ids.len()
        {
            return Err(DataError::LengthMismatch {
                what: format!("example {i} (ids vs per-step targets)"),
                left: ex.ids.len(),
                right: t.len(),
            });
        }
        picked.push(ex);
    }
    let lengths: Vec<usize> = picked.iter().map(|e| e.len()).collect();
    let seq = shape(&lengths, time)?;
    let (nt, nb) = (seq.time, seq.batch());
    let mut ids = vec![crate::data::vocab::PAD; nt * nb];
    for (b, ex) in picked.iter().enumerate() {
        for (t, &id) in ex.ids.iter().enumerate() {
            ids[t * nb + b] = id;
        }
    }
    let targets = match picked[0].target {
        Target::Steps(_) => {
            let mut y = vec![pad_target; nt * nb];
            for (b, ex) in picked.iter().enumerate() {
                let Target::Steps(tags) = &ex.target else {
                    return Err(mixed(indices[b]));
                };
                for (t, &c) in tags.iter().enumerate() {
                    y[t * nb + b] = c;
                }
            }
            y
        }
        Target::Class(_) => picked
            .iter()
            .enumerate()
            .map(|(b, ex)| match ex.target {
                Target::Class(c) => Ok(c),
                Target::Steps(_) => Err(mixed(indices[b])),
            })
            .collect::<Result<_, _>>()?,
    };
    Ok((
        Batch {
            seq,
            inputs: Inputs::Ids(ids),
        },
        Targets::Classes(targets),
    ))
}

fn mixed(i: usize) -> DataError {
    DataError::invalid(
        "to_batch",
        format!("example {i} has another kind of target (per-step vs class) than the first"),
    )
}
