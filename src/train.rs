//! One training step: forward, loss, backward, clipping and the optimizer update, all as
//! backend operations on the model's buffers.

use crate::backend::{Backend, Real};
use crate::error::InputError;
use crate::model::{Batch, Mode, Model, Targets, Wants};
use crate::optim::{OptimizerStep, TrainConfig};

/// What one training step measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepStats {
    /// Mean loss of the batch before the update.
    pub loss: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// Learning rate used.
    pub lr: f32,
}

/// A model with its optimizer state.
pub struct Trainer<B: Backend> {
    /// The model being trained.
    pub model: Model<B>,
    config: TrainConfig,
    state: Vec<B::Buffer>,
    norm: B::Buffer,
    step: u64,
    seed: u64,
}

impl<B: Backend> Trainer<B> {
    /// Wraps a model; `seed` drives the dropout masks of successive steps.
    pub fn new(model: Model<B>, config: TrainConfig, seed: u64) -> Self {
        let n = model.table().total();
        let be = model.backend();
        let state = (0..config.optimizer.state_buffers())
            .map(|_| be.zeros(n))
            .collect();
        let norm = be.zeros(1);
        Trainer {
            model,
            config,
            state,
            norm,
            step: 0,
            seed,
        }
    }

    /// Number of updates done so far.
    pub fn steps_done(&self) -> u64 {
        self.step
    }

    /// The training configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// Trains on one batch. A non-finite loss stops before any parameter changes.
    pub fn step(
        &mut self,
        batch: &Batch<B::Scalar>,
        targets: &Targets<B::Scalar>,
    ) -> Result<StepStats, InputError> {
        let step = self.step + 1;
        let seed = crate::dropout::layer_seed(self.seed, step, usize::MAX);
        self.model
            .forward(batch, None, Mode::Train { dropout_seed: seed })?;
        // The whole step is recorded first (one submission on the GPU); the update is
        // skipped on the device when the gradient norm is not finite, which a NaN or
        // infinite loss always makes it.
        self.model.record_loss(targets)?;
        self.model.zero_grads();
        self.model.backward(Wants::default())?;
        let clip = self.config.clip.clone();
        let lr = self.config.schedule.lr_at(self.config.lr, step);
        let opt = OptimizerStep {
            optimizer: self.config.optimizer.clone(),
            lr,
            step,
        };
        let (be, params, grads) = self.model.parts_mut();
        be.clip_grad_norm(grads, clip.max_norm, &mut self.norm);
        if let Some(v) = clip.max_value {
            be.clip_grad_value(grads, v);
        }
        be.optimizer_step_if_finite(&opt, params, grads, &mut self.state, &self.norm);
        let grad_norm = be.download(&self.norm)[0].f64();
        let loss = self.model.last_loss()?.f64();
        if !loss.is_finite() {
            return Err(InputError::NotFinite {
                what: format!("loss at step {step}"),
                value: loss,
            });
        }
        if !grad_norm.is_finite() {
            return Err(InputError::NotFinite {
                what: format!("gradient norm at step {step}"),
                value: grad_norm,
            });
        }
        self.step = step;
        Ok(StepStats {
            loss,
            grad_norm,
            lr,
        })
    }

    /// Loss of a batch in evaluation mode (no dropout, no update).
    pub fn evaluate(
        &mut self,
        batch: &Batch<B::Scalar>,
        targets: &Targets<B::Scalar>,
    ) -> Result<f64, InputError> {
        self.model.forward(batch, None, Mode::Eval)?;
        Ok(self.model.loss(targets)?.f64())
    }
}
