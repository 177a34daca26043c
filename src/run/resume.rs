//! What a checkpoint holds besides the weights, so that `--resume` continues exactly: the
//! optimizer's state buffers, the step and epoch counters, the position inside the epoch,
//! the learning rate and the early-stopping state; and the per-step and per-epoch history
//! (`steps.csv`, `metrics.csv`) read back up to the checkpoint.
//!
//! Random numbers need no saved generator state: every epoch's batch order is drawn from
//! `(seed, epoch)` ([`crate::data::batching::epoch_rng`]) and every step's dropout masks from
//! `(seed, step)`, so the counters and the seed are the whole random state.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};

use crate::backend::Real;
use crate::run::RunError;
use crate::run::feed::Scores;
use crate::run::run_dir::write_atomic;

/// Where training stands (saved as `state.json` in every checkpoint).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainingState {
    /// Updates done.
    pub step: u64,
    /// The epoch in progress, 0-based (equal to the epochs done when `batch` is 0).
    pub epoch: usize,
    /// Batches of `epoch` done.
    pub batch: usize,
    /// Sum of `loss * count` over the updates of the epoch so far.
    pub epoch_loss: f64,
    /// Scored items of the epoch so far.
    pub epoch_count: usize,
    /// Tokens trained on in the epoch so far.
    pub epoch_tokens: usize,
    /// The base learning rate now (lowered by `on_nan = "skip"`).
    pub lr: f32,
    /// Best validation value of the monitored metric so far.
    pub best: Option<f64>,
    /// The epoch (1-based) that reached it.
    pub best_epoch: Option<usize>,
    /// Epochs since the best one.
    pub bad_epochs: usize,
    /// Steps skipped because their loss was not finite.
    pub skipped: u64,
    /// Why training ended, once it has.
    pub finished: Option<String>,
    /// Seconds of training so far (all sessions).
    pub seconds: f64,
    /// The run's seed (for checking).
    pub seed: u64,
}

impl TrainingState {
    /// Writes `state.json` into `dir`.
    pub fn save(&self, dir: &Path) -> Result<(), RunError> {
        let text = serde_json::to_string_pretty(self).expect("plain data");
        write_atomic(&dir.join(crate::run::run_dir::STATE), text.as_bytes())
    }

    /// Reads `state.json` from `dir`.
    pub fn load(dir: &Path) -> Result<Self, RunError> {
        let path = dir.join(crate::run::run_dir::STATE);
        let text = std::fs::read_to_string(&path).map_err(|e| RunError::io(&path, e))?;
        serde_json::from_str(&text)
            .map_err(|e| RunError::Config(format!("{}: {e}", path.display())))
    }
}

/// Writes optimizer state buffers as F32 tensors `state.0`, `state.1`, ... (exact for an f32
/// backend).
pub fn save_optimizer<T: Real>(path: &Path, state: &[Vec<T>]) -> Result<(), RunError> {
    let bytes: Vec<Vec<u8>> = state
        .iter()
        .map(|s| {
            s.iter()
                .flat_map(|v| (v.f64() as f32).to_le_bytes())
                .collect()
        })
        .collect();
    let mut views = Vec::new();
    for (k, (b, s)) in bytes.iter().zip(state).enumerate() {
        let view = TensorView::new(Dtype::F32, vec![s.len()], b)
            .map_err(|e| RunError::Config(format!("optimizer state {k}: {e}")))?;
        views.push((format!("state.{k}"), view));
    }
    let meta = HashMap::from([("buffers".to_string(), state.len().to_string())]);
    let data = safetensors::serialize(views, Some(meta))
        .map_err(|e| RunError::Config(format!("optimizer state: {e}")))?;
    write_atomic(path, &data)
}

/// Reads what [`save_optimizer`] wrote.
pub fn load_optimizer<T: Real>(path: &Path) -> Result<Vec<Vec<T>>, RunError> {
    let data = std::fs::read(path).map_err(|e| RunError::io(path, e))?;
    let bad = |why: String| RunError::Config(format!("{}: {why}", path.display()));
    let st = SafeTensors::deserialize(&data).map_err(|e| bad(e.to_string()))?;
    let mut out = Vec::new();
    for k in 0.. {
        let Ok(view) = st.tensor(&format!("state.{k}")) else {
            break;
        };
        if view.dtype() != Dtype::F32 {
            return Err(bad(format!("state.{k} is {:?}, not F32", view.dtype())));
        }
        out.push(
            view.data()
                .chunks_exact(4)
                .map(|c| T::of(f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64))
                .collect(),
        );
    }
    if out.len() != st.len() {
        return Err(bad(
            "unexpected tensors besides state.0, state.1, ...".into()
        ));
    }
    Ok(out)
}

/// One update of `steps.csv`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepRow {
    /// Update number.
    pub step: u64,
    /// 1-based epoch.
    pub epoch: usize,
    /// Training loss of the batch.
    pub loss: f64,
    /// Gradient norm before clipping.
    pub grad_norm: f64,
    /// Learning rate used.
    pub lr: f32,
}

/// Header of `steps.csv`.
pub const STEPS_HEADER: &str = "step,epoch,loss,grad_norm,lr";

impl StepRow {
    /// The CSV line (floats in their shortest exact form, so equal losses read equal).
    pub fn csv(&self) -> String {
        format!(
            "{},{},{},{},{}",
            self.step, self.epoch, self.loss, self.grad_norm, self.lr
        )
    }

    fn parse(line: &str) -> Option<Self> {
        let f: Vec<&str> = line.split(',').collect();
        Some(StepRow {
            step: f.first()?.parse().ok()?,
            epoch: f.get(1)?.parse().ok()?,
            loss: f.get(2)?.parse().ok()?,
            grad_norm: f.get(3)?.parse().ok()?,
            lr: f.get(4)?.parse().ok()?,
        })
    }
}

/// One epoch of `metrics.csv`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpochRow {
    /// 1-based epoch.
    pub epoch: usize,
    /// Updates done at its end.
    pub step: u64,
    /// Mean training loss of its updates.
    pub train_loss: f64,
    /// Validation scores after it.
    pub valid: Scores,
    /// Training seconds so far.
    pub seconds: f64,
    /// Training tokens per second in this epoch.
    pub tokens_per_s: f64,
}

/// Header of `metrics.csv`.
pub const METRICS_HEADER: &str = "epoch,step,train_loss,valid_loss,valid_accuracy,valid_f1,valid_perplexity,valid_bits_per_char,seconds,tokens_per_s";

fn opt(v: Option<f64>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

impl EpochRow {
    /// The CSV line (empty fields where a metric does not apply).
    pub fn csv(&self) -> String {
        format!(
            "{},{},{},{},{},{},{},{},{:.3},{:.1}",
            self.epoch,
            self.step,
            self.train_loss,
            self.valid.loss,
            opt(self.valid.accuracy),
            opt(self.valid.f1),
            opt(self.valid.perplexity),
            opt(self.valid.bpc),
            self.seconds,
            self.tokens_per_s
        )
    }

    fn parse(line: &str) -> Option<Self> {
        let f: Vec<&str> = line.split(',').collect();
        let o = |i: usize| -> Option<Option<f64>> {
            let s = f.get(i)?;
            Some(if s.is_empty() {
                None
            } else {
                Some(s.parse().ok()?)
            })
        };
        Some(EpochRow {
            epoch: f.first()?.parse().ok()?,
            step: f.get(1)?.parse().ok()?,
            train_loss: f.get(2)?.parse().ok()?,
            valid: Scores {
                loss: f.get(3)?.parse().ok()?,
                count: 0,
                accuracy: o(4)?,
                f1: o(5)?,
                perplexity: o(6)?,
                bpc: o(7)?,
            },
            seconds: f.get(8)?.parse().ok()?,
            tokens_per_s: f.get(9)?.parse().ok()?,
        })
    }
}

/// Writes a CSV file (header and rows) atomically.
pub fn write_csv(
    path: &Path,
    header: &str,
    rows: impl Iterator<Item = String>,
) -> Result<(), RunError> {
    let mut text = format!("{header}\n");
    for r in rows {
        text += &r;
        text.push('\n');
    }
    write_atomic(path, text.as_bytes())
}

/// The rows of `steps.csv` up to update `last` (a missing file: none).
pub fn read_steps(path: &Path, last: u64) -> Result<Vec<StepRow>, RunError> {
    read_rows(path, StepRow::parse, |r| r.step <= last)
}

/// The rows of `metrics.csv` up to epoch `last` (a missing file: none).
pub fn read_metrics(path: &Path, last: usize) -> Result<Vec<EpochRow>, RunError> {
    read_rows(path, EpochRow::parse, |r| r.epoch <= last)
}

fn read_rows<R>(
    path: &Path,
    parse: fn(&str) -> Option<R>,
    keep: impl Fn(&R) -> bool,
) -> Result<Vec<R>, RunError> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        let row = parse(line).ok_or_else(|| {
            RunError::Config(format!(
                "{}:{}: not a row of this file: `{line}`",
                path.display(),
                i + 1
            ))
        })?;
        if keep(&row) {
            out.push(row);
        }
    }
    Ok(out)
}
