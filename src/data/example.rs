//! A training example (token ids and its targets) and the ways to cut data into examples:
//! next-token pairs for language modelling, and truncating or splitting long sequences.
//!
//! ```
//! use wgrnn::data::example::{Target, lm_stream};
//!
//! let ex = lm_stream(&[5, 6, 7, 8, 9], 3).unwrap();
//! assert_eq!(ex[0].ids, [5, 6, 7]);
//! assert_eq!(ex[0].target, Target::Steps(vec![6, 7, 8]));
//! assert_eq!(ex[1].ids, [8]);
//! assert_eq!(ex[1].target, Target::Steps(vec![9]));
//! ```

use serde::{Deserialize, Serialize};

use crate::data::error::DataError;

/// What an example is trained to predict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// One class id per step (a tag, or the next token for language modelling); same length
    /// as the ids.
    Steps(Vec<u32>),
    /// One class id for the whole sequence.
    Class(u32),
}

/// One sequence of token ids and its targets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Example {
    /// Token ids, one per step.
    pub ids: Vec<u32>,
    /// The targets.
    pub target: Target,
}

impl Example {
    /// A tagged sequence; `tags` must have one id per token.
    pub fn tagged(ids: Vec<u32>, tags: Vec<u32>) -> Result<Self, DataError> {
        if ids.len() != tags.len() {
            return Err(DataError::LengthMismatch {
                what: "tagged example (tokens vs tags)".into(),
                left: ids.len(),
                right: tags.len(),
            });
        }
        Ok(Example {
            ids,
            target: Target::Steps(tags),
        })
    }

    /// A sequence with one class label.
    pub fn classified(ids: Vec<u32>, class: u32) -> Self {
        Example {
            ids,
            target: Target::Class(class),
        }
    }

    /// Number of steps.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the example has no steps (such an example cannot be batched).
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// One language-modelling example from a whole sequence: inputs `ids[..n-1]`, targets
/// `ids[1..]`. `None` for fewer than two ids (nothing to predict).
pub fn lm_sequence(ids: &[u32]) -> Option<Example> {
    (ids.len() >= 2).then(|| Example {
        ids: ids[..ids.len() - 1].to_vec(),
        target: Target::Steps(ids[1..].to_vec()),
    })
}

/// Language-modelling examples from one token stream cut into consecutive pieces of `len`
/// steps: piece k has inputs `ids[k*len..(k+1)*len]` and targets shifted by one, so every
/// token but the first is a target exactly once. The last piece may be shorter.
pub fn lm_stream(ids: &[u32], len: usize) -> Result<Vec<Example>, DataError> {
    if len == 0 {
        return Err(DataError::invalid("lm_stream len", "must be at least 1"));
    }
    if ids.len() < 2 {
        return Err(DataError::invalid(
            "lm_stream ids",
            format!("{} tokens; need at least 2 to predict one", ids.len()),
        ));
    }
    let steps = ids.len() - 1;
    Ok((0..steps)
        .step_by(len)
        .map(|s| {
            let e = (s + len).min(steps);
            Example {
                ids: ids[s..e].to_vec(),
                target: Target::Steps(ids[s + 1..e + 1].to_vec()),
            }
        })
        .collect())
}

/// What to do with an example longer than the maximum length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LongSequences {
    /// Keep the first `max_len` steps (and their targets).
    Truncate,
    /// Cut into consecutive pieces of at most `max_len` steps, each an example of its own
    /// (per-step targets only: a sequence label cannot be split).
    Split,
}

/// Makes every example at most `max_len` steps long by `policy`; shorter ones are kept as
/// they are, in order (pieces of a split example stay together).
pub fn fit_length(
    examples: Vec<Example>,
    max_len: usize,
    policy: LongSequences,
) -> Result<Vec<Example>, DataError> {
    if max_len == 0 {
        return Err(DataError::invalid(
            "fit_length max_len",
            "must be at least 1",
        ));
    }
    let mut out = Vec::with_capacity(examples.len());
    for (i, ex) in examples.into_iter().enumerate() {
        if ex.len() <= max_len {
            out.push(ex);
            continue;
        }
        match (policy, ex.target) {
            (LongSequences::Truncate, Target::Class(c)) => {
                out.push(Example::classified(ex.ids[..max_len].to_vec(), c));
            }
            (LongSequences::Truncate, Target::Steps(t)) => out.push(Example {
                ids: ex.ids[..max_len].to_vec(),
                target: Target::Steps(t[..max_len.min(t.len())].to_vec()),
            }),
            (LongSequences::Split, Target::Class(_)) => {
                return Err(DataError::invalid(
                    "fit_length",
                    format!(
                        "example {i} has {} steps and one class label; a labelled sequence \
                         cannot be split (truncate it instead)",
                        ex.ids.len()
                    ),
                ));
            }
            (LongSequences::Split, Target::Steps(t)) => {
                for (ids, tags) in ex.ids.chunks(max_len).zip(t.chunks(max_len)) {
                    out.push(Example {
                        ids: ids.to_vec(),
                        target: Target::Steps(tags.to_vec()),
                    });
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lm_stream_covers_every_target_once() {
        let ids: Vec<u32> = (10..21).collect();
        let ex = lm_stream(&ids, 4).unwrap();
        let lens: Vec<usize> = ex.iter().map(Example::len).collect();
        assert_eq!(lens, [4, 4, 2]);
        let targets: Vec<u32> = ex
            .iter()
            .flat_map(|e| match &e.target {
                Target::Steps(t) => t.clone(),
                Target::Class(_) => unreachable!(),
            })
            .collect();
        assert_eq!(targets, (11..21).collect::<Vec<u32>>());
        assert!(lm_stream(&[1], 4).is_err());
        assert!(lm_stream(&ids, 0).is_err());
        assert_eq!(lm_sequence(&[3]), None);
    }

    #[test]
    fn split_and_truncate() {
        let ex = vec![
            Example::tagged(vec![1, 2, 3, 4, 5], vec![6, 7, 8, 9, 10]).unwrap(),
            Example::tagged(vec![1], vec![2]).unwrap(),
        ];
        let split = fit_length(ex.clone(), 2, LongSequences::Split).unwrap();
        assert_eq!(split.len(), 4);
        assert_eq!(split[2], Example::tagged(vec![5], vec![10]).unwrap());
        let cut = fit_length(ex, 2, LongSequences::Truncate).unwrap();
        assert_eq!(cut[0], Example::tagged(vec![1, 2], vec![6, 7]).unwrap());
        let cls = vec![Example::classified(vec![1, 2, 3], 4)];
        assert!(fit_length(cls.clone(), 2, LongSequences::Split).is_err());
        let cut = fit_length(cls, 2, LongSequences::Truncate).unwrap();
        assert_eq!(cut[0], Example::classified(vec![1, 2], 4));
    }
}
