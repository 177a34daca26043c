//! SGD (momentum, Nesterov, weight decay), Adam and AdamW updates (`shaders/optim.wgsl`; CPU
//! twin `src/backend/cpu/optim.rs`).

use super::runtime::{Gpu, Shader};
use super::{GpuBuffer, WgpuBackend};
use crate::optim::{OptimizerConfig, OptimizerStep};

pub(super) static OPTIM: Shader = Shader {
    name: "optim",
    source: include_str!("../../../shaders/optim.wgsl"),
};

/// Flag: SGD's first step (the momentum buffer starts at the gradient).
const FIRST: u32 = 1;
/// Flag: Nesterov momentum.
const NESTEROV: u32 = 2;
/// Flag: decoupled weight decay (AdamW).
const DECOUPLED: u32 = 4;

/// One update of every parameter from `grads`; `state` holds the optimizer's buffers
/// (`OptimizerConfig::state_buffers` of them: SGD's momentum, Adam's two moments). With a
/// `guard`, the kernels skip the update when `guard[0]` is not finite.
///
/// # Panics
/// When `state` has fewer buffers than the optimizer keeps (a caller bug).
pub(super) fn optimizer_step(
    be: &WgpuBackend,
    step: &OptimizerStep,
    params: &mut GpuBuffer,
    grads: &GpuBuffer,
    state: &mut [GpuBuffer],
    guard: Option<&GpuBuffer>,
) {
    let guard = guard.unwrap_or(&be.dummy);
    let n = params.len();
    if n == 0 {
        return;
    }
    assert!(
        state.len() >= step.optimizer.state_buffers(),
        "optimizer_step: {} state buffers given, {} needed",
        state.len(),
        step.optimizer.state_buffers()
    );
    let lr = step.lr;
    let grid = Gpu::grid_1d(n, 256);
    match step.optimizer {
        OptimizerConfig::Sgd {
            momentum,
            nesterov,
            weight_decay,
        } => {
            let mut flags = 0;
            if step.step <= 1 {
                flags |= FIRST;
            }
            if nesterov {
                flags |= NESTEROV;
            }
            let words = [
                n as u32,
                lr.to_bits(),
                weight_decay.to_bits(),
                momentum.to_bits(),
                flags,
            ];
            if momentum != 0.0 {
                let pipeline = be.gpu.pipeline(&OPTIM, "sgd_momentum", &[]);
                be.gpu.dispatch_at(
                    &pipeline,
                    &words,
                    &[(1, params), (2, grads), (3, &state[0]), (5, guard)],
                    grid,
                );
            } else {
                let pipeline = be.gpu.pipeline(&OPTIM, "sgd", &[]);
                be.gpu.dispatch_at(
                    &pipeline,
                    &words,
                    &[(1, params), (2, grads), (5, guard)],
                    grid,
                );
            }
        }
        OptimizerConfig::Adam {
            beta1,
            beta2,
            eps,
            weight_decay,
        }
        | OptimizerConfig::AdamW {
            beta1,
            beta2,
            eps,
            weight_decay,
        } => {
            let decoupled = matches!(step.optimizer, OptimizerConfig::AdamW { .. });
            // The same f32 arithmetic as the CPU twin.
            let t = step.step.clamp(1, i32::MAX as u64) as i32;
            let bc1 = 1.0f32 - beta1.powi(t);
            let bc2_sqrt = (1.0f32 - beta2.powi(t)).sqrt();
            let step_size = lr / bc1;
            let decay = 1.0f32 - lr * weight_decay;
            let words = [
                n as u32,
                lr.to_bits(),
                weight_decay.to_bits(),
                0,
                if decoupled { DECOUPLED } else { 0 },
                beta1.to_bits(),
                beta2.to_bits(),
                (1.0f32 - beta1).to_bits(),
                (1.0f32 - beta2).to_bits(),
                eps.to_bits(),
                step_size.to_bits(),
                bc2_sqrt.to_bits(),
                decay.to_bits(),
            ];
            let (m, v) = state.split_at_mut(1);
            let pipeline = be.gpu.pipeline(&OPTIM, "adam", &[]);
            be.gpu.dispatch_at(
                &pipeline,
                &words,
                &[(1, params), (2, grads), (3, &m[0]), (4, &v[0]), (5, guard)],
                grid,
            );
            // Reads p, g, m, v; writes p, m, v.
            be.gpu.cost(12.0 * n as f64, 28.0 * n as f64);
        }
    }
}
