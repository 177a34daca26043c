//! Optimizers, gradient clipping and learning-rate schedules: configuration and the per-step
//! values a backend needs. The update arithmetic itself is a backend operation
//! (`Backend::optimizer_step`), so it can run as one fused kernel over all parameters.

use serde::{Deserialize, Serialize};

/// An optimizer and its hyper-parameters (PyTorch's semantics and defaults).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum OptimizerConfig {
    /// `torch.optim.SGD`: `buf = momentum * buf + g` (no dampening), step `g` or `buf`
    /// (`g + momentum * buf` with Nesterov); weight decay adds `wd * p` to `g` first.
    Sgd {
        /// Momentum factor (0 = plain SGD).
        #[serde(default)]
        momentum: f32,
        /// Nesterov momentum.
        #[serde(default)]
        nesterov: bool,
        /// L2 penalty added to the gradient.
        #[serde(default)]
        weight_decay: f32,
    },
    /// `torch.optim.Adam` (L2 weight decay added to the gradient).
    Adam {
        /// First-moment decay; default 0.9.
        #[serde(default = "beta1")]
        beta1: f32,
        /// Second-moment decay; default 0.999.
        #[serde(default = "beta2")]
        beta2: f32,
        /// Added to the denominator; default 1e-8.
        #[serde(default = "eps")]
        eps: f32,
        /// L2 penalty added to the gradient.
        #[serde(default)]
        weight_decay: f32,
    },
    /// `torch.optim.AdamW` (decoupled weight decay `p -= lr * wd * p`); default wd 0.01.
    AdamW {
        /// First-moment decay; default 0.9.
        #[serde(default = "beta1")]
        beta1: f32,
        /// Second-moment decay; default 0.999.
        #[serde(default = "beta2")]
        beta2: f32,
        /// Added to the denominator; default 1e-8.
        #[serde(default = "eps")]
        eps: f32,
        /// Decoupled weight decay.
        #[serde(default = "adamw_wd")]
        weight_decay: f32,
    },
}

fn beta1() -> f32 {
    0.9
}
fn beta2() -> f32 {
    0.999
}
fn eps() -> f32 {
    1e-8
}
fn adamw_wd() -> f32 {
    0.01
}

impl OptimizerConfig {
    /// Adam with PyTorch's defaults.
    pub fn adam() -> Self {
        OptimizerConfig::Adam {
            beta1: beta1(),
            beta2: beta2(),
            eps: eps(),
            weight_decay: 0.0,
        }
    }

    /// Number of parameter-sized state buffers the optimizer keeps (momentum, moments).
    pub fn state_buffers(&self) -> usize {
        match self {
            OptimizerConfig::Sgd { momentum, .. } => (*momentum != 0.0) as usize,
            OptimizerConfig::Adam { .. } | OptimizerConfig::AdamW { .. } => 2,
        }
    }
}

/// Everything one update needs: the optimizer, this step's learning rate and the 1-based
/// step number (for Adam's bias correction and SGD's first momentum step).
#[derive(Clone, Debug, PartialEq)]
pub struct OptimizerStep {
    /// The optimizer.
    pub optimizer: OptimizerConfig,
    /// Learning rate for this step (after the schedule).
    pub lr: f32,
    /// 1-based number of this update.
    pub step: u64,
}

/// How the learning rate changes over updates.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Schedule {
    /// The base rate throughout.
    Constant,
    /// `lr = base * gamma^floor((step-1) / every)` (PyTorch `StepLR`, stepped per update).
    Step {
        /// Updates between decays.
        every: u64,
        /// Decay factor.
        gamma: f32,
    },
    /// Linear warm-up from `base / warmup` to `base` over `warmup` updates, then cosine decay
    /// to `min_lr` at update `total` (and `min_lr` after).
    CosineWarmup {
        /// Warm-up updates.
        warmup: u64,
        /// Update at which the cosine reaches `min_lr`.
        total: u64,
        /// Final learning rate.
        #[serde(default)]
        min_lr: f32,
    },
}

impl Schedule {
    /// The learning rate of 1-based update `step`.
    pub fn lr_at(&self, base: f32, step: u64) -> f32 {
        let step = step.max(1);
        match *self {
            Schedule::Constant => base,
            Schedule::Step { every, gamma } => {
                base * gamma.powi(((step - 1) / every.max(1)).min(i32::MAX as u64) as i32)
            }
            Schedule::CosineWarmup {
                warmup,
                total,
                min_lr,
            } => {
                if step <= warmup {
                    base * step as f32 / warmup as f32
                } else if step >= total {
                    min_lr
                } else {
                    let span = (total - warmup) as f64;
                    let prog = (step - warmup) as f64 / span;
                    let cos = 0.5 * (1.0 + (std::f64::consts::PI * prog).cos());
                    (min_lr as f64 + (base - min_lr) as f64 * cos) as f32
                }
            }
        }
    }
}

/// Gradient clipping applied before each update.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClipConfig {
    /// If the global L2 norm `||g||` exceeds this, `g <- max_norm * g / ||g||`.
    #[serde(default)]
    pub max_norm: Option<f32>,
    /// Clamp every gradient element to `[-max_value, max_value]` (after norm clipping).
    #[serde(default)]
    pub max_value: Option<f32>,
}

/// How a model is trained: optimizer, base learning rate, schedule and clipping.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// The optimizer.
    pub optimizer: OptimizerConfig,
    /// Base learning rate.
    pub lr: f32,
    /// Learning-rate schedule; default constant.
    #[serde(default = "constant")]
    pub schedule: Schedule,
    /// Gradient clipping; default none.
    #[serde(default)]
    pub clip: ClipConfig,
}

fn constant() -> Schedule {
    Schedule::Constant
}
