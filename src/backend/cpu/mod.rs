//! The CPU reference backend: plain, readable loops that define the right answer.
//!
//! Generic over the scalar type so gradient checks can run in f64; buffers are `Vec`s.
//! Each operation lives in a file named like its WGSL twin (`lstm_cell.rs` ~
//! `shaders/lstm_cell.wgsl`).

mod activation;
mod elman_cell;
mod encode;
mod gemm;
mod gru_cell;
mod head;
mod jordan_cell;
mod layer;
mod loss;
mod lstm_cell;
mod optim;
pub mod weights_f16;

use std::marker::PhantomData;

use super::{Backend, LossPlan, Real, SeqShape, StateBufs, StateBufsMut, TargetBufs, TokenBags};
use crate::config::{Pooling, Task};
use crate::optim::OptimizerStep;
use crate::params::{EncodePlan, HeadPlan, LayerPlan};

/// The CPU reference backend computing in `T` (f32 or f64).
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuBackend<T> {
    _scalar: PhantomData<T>,
}

impl<T: Real> CpuBackend<T> {
    /// A CPU backend.
    pub fn new() -> Self {
        CpuBackend {
            _scalar: PhantomData,
        }
    }
}

impl<T: Real> Backend for CpuBackend<T> {
    type Scalar = T;
    type Buffer = Vec<T>;
    type Ids = Vec<u32>;
    type Readback = Vec<T>;
    type Tokens = TokenBags;

    fn describe(&self) -> String {
        format!("cpu ({})", std::any::type_name::<T>())
    }

    fn upload(&self, data: &[T]) -> Vec<T> {
        data.to_vec()
    }
    fn upload_ids(&self, ids: &[u32]) -> Vec<u32> {
        ids.to_vec()
    }
    fn upload_tokens(&self, tokens: TokenBags) -> TokenBags {
        tokens
    }
    fn zeros(&self, len: usize) -> Vec<T> {
        vec![T::zero(); len]
    }
    fn write(&self, buf: &mut Vec<T>, data: &[T]) {
        buf.copy_from_slice(data);
    }
    fn fill_zero(&self, buf: &mut Vec<T>) {
        buf.fill(T::zero());
    }
    fn zero_range(&self, buf: &mut Vec<T>, range: std::ops::Range<usize>) {
        buf[range].fill(T::zero());
    }
    fn download(&self, buf: &Vec<T>) -> Vec<T> {
        buf.clone()
    }
    fn len(&self, buf: &Vec<T>) -> usize {
        buf.len()
    }
    fn read_later(&self, firsts: &[&Vec<T>]) -> Vec<T> {
        firsts.iter().map(|b| b[0]).collect()
    }
    fn try_read(&self, r: &Vec<T>) -> Option<Vec<T>> {
        Some(r.clone())
    }
    fn read_wait(&self, r: &Vec<T>) -> Vec<T> {
        r.clone()
    }

    fn encode_forward(
        &self,
        plan: &EncodePlan,
        params: &Vec<T>,
        tokens: &TokenBags,
        seq: &SeqShape,
        x: &mut Vec<T>,
    ) {
        encode::encode_forward(plan, params, tokens, seq, x);
    }
    fn encode_backward(
        &self,
        plan: &EncodePlan,
        tokens: &TokenBags,
        seq: &SeqShape,
        dx: &Vec<T>,
        grads: &mut Vec<T>,
    ) {
        encode::encode_backward(plan, tokens, seq, dx, grads);
    }

    fn layer_cache_len(&self, plan: &LayerPlan, seq: &SeqShape) -> usize {
        layer::cache_len::<T>(plan, seq)
    }
    fn layer_forward(
        &self,
        plan: &LayerPlan,
        params: &Vec<T>,
        x: &Vec<T>,
        seq: &SeqShape,
        init: Option<StateBufs<'_, Vec<T>>>,
        y: &mut Vec<T>,
        last: StateBufsMut<'_, Vec<T>>,
        cache: &mut Vec<T>,
    ) {
        layer::layer_forward(plan, params, x, seq, init, y, last, cache);
    }
    fn layer_backward(
        &self,
        plan: &LayerPlan,
        params: &Vec<T>,
        x: &Vec<T>,
        _y: &Vec<T>,
        seq: &SeqShape,
        cache: &Vec<T>,
        dy: &Vec<T>,
        dlast: Option<StateBufs<'_, Vec<T>>>,
        grads: &mut Vec<T>,
        dx: Option<&mut Vec<T>>,
        dinit: Option<StateBufsMut<'_, Vec<T>>>,
        // The reference adds the zero states' terms too.
        _zero_init: bool,
    ) {
        layer::layer_backward(plan, params, x, seq, cache, dy, dlast, grads, dx, dinit);
    }

    fn dropout(&self, x: &mut Vec<T>, p: f32, seed: u64) {
        let scale = T::one() / T::of(1.0 - p as f64);
        for (i, v) in x.iter_mut().enumerate() {
            *v = if crate::dropout::keep(seed, i as u32, p) {
                *v * scale
            } else {
                T::zero()
            };
        }
    }

    fn head_forward(
        &self,
        plan: &HeadPlan,
        params: &Vec<T>,
        x: &Vec<T>,
        rows: usize,
        seq: Option<&SeqShape>,
        logits: &mut Vec<T>,
    ) {
        head::head_forward(plan, params, x, rows, seq, logits);
    }
    fn head_backward(
        &self,
        plan: &HeadPlan,
        params: &Vec<T>,
        x: &Vec<T>,
        rows: usize,
        seq: Option<&SeqShape>,
        dlogits: &Vec<T>,
        grads: &mut Vec<T>,
        dx: &mut Vec<T>,
    ) {
        head::head_backward(plan, params, x, rows, seq, dlogits, grads, dx);
    }

    fn pool_forward(
        &self,
        mode: Pooling,
        x: &Vec<T>,
        seq: &SeqShape,
        dirs: usize,
        width: usize,
        pooled: &mut Vec<T>,
    ) {
        head::pool_forward(mode, x, seq, dirs, width, pooled);
    }
    fn pool_backward(
        &self,
        mode: Pooling,
        dpooled: &Vec<T>,
        seq: &SeqShape,
        dirs: usize,
        width: usize,
        dx: &mut Vec<T>,
    ) {
        head::pool_backward(mode, dpooled, seq, dirs, width, dx);
    }

    fn loss(
        &self,
        plan: &LossPlan,
        logits: &Vec<T>,
        targets: TargetBufs<'_, Self>,
        seq: &SeqShape,
        loss: &mut Vec<T>,
        dlogits: &mut Vec<T>,
    ) {
        let nb = seq.batch();
        loss[0] = match (&plan.task, targets) {
            (Task::Classification { .. }, TargetBufs::Classes(y)) => {
                loss::cross_entropy(logits, y, plan.classes, None, |_| true, dlogits)
            }
            (Task::Regression, TargetBufs::Values(y)) => {
                loss::mean_squared_error(logits, y, plan.classes, seq, dlogits)
            }
            (task, TargetBufs::Classes(y)) => {
                let ignore = task.ignore_label();
                loss::cross_entropy(
                    logits,
                    y,
                    plan.classes,
                    ignore,
                    |r| seq.valid(r / nb, r % nb),
                    dlogits,
                )
            }
            (_, TargetBufs::Values(_)) => T::nan(),
        };
    }

    fn clip_grad_norm(&self, grads: &mut Vec<T>, max_norm: Option<f32>, norm: &mut Vec<T>) {
        norm[0] = optim::clip_grad_norm(grads, max_norm);
    }
    fn clip_grad_value(&self, grads: &mut Vec<T>, limit: f32) {
        optim::clip_grad_value(grads, limit);
    }

    fn optimizer_step(
        &self,
        step: &OptimizerStep,
        params: &mut Vec<T>,
        grads: &Vec<T>,
        state: &mut [Vec<T>],
    ) {
        optim::optimizer_step(step, params, grads, state);
    }
}
