//! One training step: forward, loss, backward, clipping and the optimizer update, all as
//! backend operations on the model's buffers.
//!
//! [`Trainer::step`] waits for its loss. A training loop that wants the GPU busy uses
//! [`Trainer::queue_step`] instead: the step is submitted with no host round-trip, its loss and
//! gradient norm come back in the background, and [`Trainer::poll_stats`] (never blocks) or
//! [`Trainer::finish_stats`] (waits) hand them over in step order.

use std::collections::VecDeque;
use std::ops::Range;

use crate::backend::{Backend, Real};
use crate::error::InputError;
use crate::model::{Batch, Mode, Model, Targets, Wants};
use crate::optim::{OptimizerStep, TrainConfig};

/// What one training step measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepStats {
    /// Number of the step (1 for the first update).
    pub step: u64,
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
    /// Steps submitted whose loss and norm are still on their way back, oldest first.
    in_flight: VecDeque<(u64, f32, B::Readback)>,
    /// Ranges of the flat parameter array whose gradient is zeroed before clipping (frozen
    /// parameters, e.g. a pretrained embedding table).
    frozen: Vec<Range<usize>>,
}

/// Steps a trainer lets run ahead of the host before [`Trainer::queue_step`] waits for the
/// oldest one's statistics.
pub const MAX_IN_FLIGHT: usize = 8;

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
            in_flight: VecDeque::new(),
            frozen: Vec::new(),
        }
    }

    /// The optimizer's state buffers (Adam's first and second moments, SGD's momentum), each
    /// flat and laid out like the parameters; waits for queued steps to finish on the device.
    /// Together with [`Trainer::steps_done`] this is everything [`Trainer::restore`] needs to
    /// continue exactly where training stopped.
    pub fn optimizer_state(&self) -> Vec<Vec<B::Scalar>> {
        let be = self.model.backend();
        self.state.iter().map(|b| be.download(b)).collect()
    }

    /// Sets the number of updates done and the optimizer state (as returned by
    /// [`Trainer::optimizer_state`]), e.g. after loading a checkpoint's parameters into the
    /// model: the next step is number `step + 1`, with Adam's bias correction and the learning
    /// rate schedule at that step, and its dropout masks are those an uninterrupted run would
    /// draw. Statistics of steps still in flight are dropped. An error names a state buffer of
    /// the wrong count or length; the trainer is then unchanged.
    pub fn restore(&mut self, step: u64, state: &[Vec<B::Scalar>]) -> Result<(), InputError> {
        let n = self.model.table().total();
        if state.len() != self.state.len() {
            return Err(InputError::Shape {
                what: "optimizer state buffers".into(),
                expected: self.state.len(),
                shape: format!("{} buffers of {n} values", self.state.len()),
                got: state.len(),
            });
        }
        for (k, s) in state.iter().enumerate() {
            if s.len() != n {
                return Err(InputError::Shape {
                    what: format!("optimizer state buffer {k}"),
                    expected: n,
                    shape: "the flat parameter table".into(),
                    got: s.len(),
                });
            }
        }
        let be = self.model.backend();
        for (buf, s) in self.state.iter_mut().zip(state) {
            be.write(buf, s);
        }
        self.in_flight.clear();
        self.step = step;
        Ok(())
    }

    /// Changes the base learning rate of the following steps (the schedule applies on top).
    pub fn set_lr(&mut self, lr: f32) {
        self.config.lr = lr;
    }

    /// Freezes parameters: from the next step on, the gradient of every element in `ranges`
    /// (offsets into the flat parameter array, e.g. `model.table().get("embedding.weight")`'s
    /// range) is set to zero before clipping and the update, so they do not count in the
    /// gradient norm, and parameters frozen before their first update (momentum and Adam
    /// moments still zero) never change with SGD, Adam or AdamW at zero weight decay.
    /// The gradient is zeroed on the device, inside the step's recording (no host round-trip).
    pub fn freeze(&mut self, ranges: Vec<Range<usize>>) {
        self.frozen = ranges;
    }

    /// Number of updates done so far.
    pub fn steps_done(&self) -> u64 {
        self.step
    }

    /// The training configuration.
    pub fn config(&self) -> &TrainConfig {
        &self.config
    }

    /// Trains on one batch and waits for its loss. A non-finite loss or gradient norm is an
    /// error, and that step's update was skipped on the device.
    pub fn step(
        &mut self,
        batch: &Batch<B::Scalar>,
        targets: &Targets<B::Scalar>,
    ) -> Result<StepStats, InputError> {
        self.queue_step(batch, targets)?;
        let stats = self.finish_stats()?;
        Ok(*stats.last().expect("one step was queued"))
    }

    /// Records and submits a training step without waiting for it; returns its number. Its
    /// statistics arrive through [`Trainer::poll_stats`] or [`Trainer::finish_stats`]. When
    /// [`MAX_IN_FLIGHT`] steps are already on their way, waits for the oldest first, and an
    /// error found there (a non-finite loss) is returned here. A step with a non-finite loss
    /// or gradient norm never updates the parameters (the device skips it); steps queued after
    /// it still apply theirs.
    pub fn queue_step(
        &mut self,
        batch: &Batch<B::Scalar>,
        targets: &Targets<B::Scalar>,
    ) -> Result<u64, InputError> {
        if self.in_flight.len() >= MAX_IN_FLIGHT {
            self.wait_oldest()?;
        }
        let step = self.step + 1;
        let seed = crate::dropout::layer_seed(self.seed, step, usize::MAX);
        self.model
            .forward(batch, None, Mode::Train { dropout_seed: seed })?;
        // The whole step is recorded without waiting for the device; the update is
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
        for r in &self.frozen {
            be.zero_range(grads, r.clone());
        }
        be.clip_grad_norm(grads, clip.max_norm, &mut self.norm);
        if let Some(v) = clip.max_value {
            be.clip_grad_value(grads, v);
        }
        be.optimizer_step_if_finite(&opt, params, grads, &mut self.state, &self.norm);
        let loss = self
            .model
            .loss_buffer()
            .expect("the loss was just recorded");
        let readback = self.model.backend().read_later(&[loss, &self.norm]);
        self.in_flight.push_back((step, lr, readback));
        self.step = step;
        Ok(step)
    }

    /// Statistics of the queued steps that have finished, in step order; never blocks. The
    /// first non-finite loss or gradient norm is an error naming its step.
    pub fn poll_stats(&mut self) -> Result<Vec<StepStats>, InputError> {
        let mut out = Vec::new();
        while let Some((step, lr, r)) = self.in_flight.front() {
            let Some(values) = self.model.backend().try_read(r) else {
                break;
            };
            let (step, lr) = (*step, *lr);
            self.in_flight.pop_front();
            out.push(self.checked(step, lr, &values)?);
        }
        Ok(out)
    }

    /// Waits for every queued step and returns their statistics in step order.
    pub fn finish_stats(&mut self) -> Result<Vec<StepStats>, InputError> {
        let mut out = Vec::new();
        while !self.in_flight.is_empty() {
            out.push(self.wait_oldest()?);
        }
        Ok(out)
    }

    /// Like [`Trainer::poll_stats`], but each finished step's outcome on its own, so a step
    /// with a non-finite loss does not hide the statistics of the steps before or after it;
    /// never blocks. A training loop that skips bad steps uses this and
    /// [`Trainer::wait_result`] (and keeps fewer than [`MAX_IN_FLIGHT`] steps queued, so that
    /// [`Trainer::queue_step`] never has to wait and drop one).
    pub fn poll_results(&mut self) -> Vec<Result<StepStats, InputError>> {
        let mut out = Vec::new();
        while let Some((step, lr, r)) = self.in_flight.front() {
            let Some(values) = self.model.backend().try_read(r) else {
                break;
            };
            let (step, lr) = (*step, *lr);
            self.in_flight.pop_front();
            out.push(self.checked(step, lr, &values));
        }
        out
    }

    /// Waits for the oldest step in flight and returns its outcome; `None` when none is.
    pub fn wait_result(&mut self) -> Option<Result<StepStats, InputError>> {
        (!self.in_flight.is_empty()).then(|| self.wait_oldest())
    }

    /// Steps queued whose statistics have not been handed over yet.
    pub fn steps_in_flight(&self) -> usize {
        self.in_flight.len()
    }

    fn wait_oldest(&mut self) -> Result<StepStats, InputError> {
        let (step, lr, r) = self
            .in_flight
            .pop_front()
            .expect("callers check that a step is in flight");
        let values = self.model.backend().read_wait(&r);
        self.checked(step, lr, &values)
    }

    /// [`stats`]; a failed step that is the newest one queued is not counted as done (its
    /// update was skipped on the device), so the next step takes its number.
    fn checked(
        &mut self,
        step: u64,
        lr: f32,
        values: &[B::Scalar],
    ) -> Result<StepStats, InputError> {
        let r = stats(step, lr, values);
        if r.is_err() && step == self.step {
            self.step -= 1;
        }
        r
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

/// A step's statistics from its read-back `[loss, grad_norm]`; non-finite values are errors.
fn stats<T: Real>(step: u64, lr: f32, values: &[T]) -> Result<StepStats, InputError> {
    let (loss, grad_norm) = (values[0].f64(), values[1].f64());
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
    Ok(StepStats {
        step,
        loss,
        grad_norm,
        lr,
    })
}
