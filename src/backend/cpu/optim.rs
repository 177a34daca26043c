//! CPU reference of gradient clipping and the optimizer updates (PyTorch's formulas).

use crate::backend::Real;
use crate::optim::{OptimizerConfig, OptimizerStep};

/// Global L2 norm; scales the gradients to `max_norm` when the norm exceeds it.
pub(crate) fn clip_grad_norm<T: Real>(grads: &mut [T], max_norm: Option<f32>) -> T {
    let norm = grads.iter().map(|g| *g * *g).sum::<T>().sqrt();
    if let Some(c) = max_norm {
        let c = T::of(c as f64);
        if norm > c {
            let s = c / norm;
            grads.iter_mut().for_each(|g| *g = *g * s);
        }
    }
    norm
}

/// Clamps every gradient to `[-limit, limit]`.
pub(crate) fn clip_grad_value<T: Real>(grads: &mut [T], limit: f32) {
    let l = T::of(limit as f64);
    grads.iter_mut().for_each(|g| *g = g.max(-l).min(l));
}

/// One update of `params` (see `OptimizerConfig` for each rule).
pub(crate) fn optimizer_step<T: Real>(
    s: &OptimizerStep,
    params: &mut [T],
    grads: &[T],
    state: &mut [Vec<T>],
) {
    let lr = T::of(s.lr as f64);
    let f = |v: f32| T::of(v as f64);
    match s.optimizer {
        OptimizerConfig::Sgd {
            momentum,
            nesterov,
            weight_decay,
        } => {
            let (mu, wd) = (f(momentum), f(weight_decay));
            for i in 0..params.len() {
                let mut g = grads[i] + wd * params[i];
                if momentum != 0.0 {
                    let buf = &mut state[0][i];
                    // PyTorch starts the momentum buffer at the first gradient.
                    *buf = if s.step <= 1 { g } else { mu * *buf + g };
                    g = if nesterov { g + mu * *buf } else { *buf };
                }
                params[i] = params[i] - lr * g;
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
            let decoupled = matches!(s.optimizer, OptimizerConfig::AdamW { .. });
            let (b1, b2, eps, wd) = (f(beta1), f(beta2), f(eps), f(weight_decay));
            let t = s.step.max(1) as i32;
            let bc1 = T::one() - b1.powi(t);
            let bc2_sqrt = (T::one() - b2.powi(t)).sqrt();
            let step_size = lr / bc1;
            let (m, v) = state.split_at_mut(1);
            let (m, v) = (&mut m[0], &mut v[0]);
            for i in 0..params.len() {
                let mut g = grads[i];
                if decoupled {
                    params[i] = params[i] * (T::one() - lr * wd);
                } else {
                    g = g + wd * params[i];
                }
                m[i] = b1 * m[i] + (T::one() - b1) * g;
                v[i] = b2 * v[i] + (T::one() - b2) * g * g;
                let denom = v[i].sqrt() / bc2_sqrt + eps;
                params[i] = params[i] - step_size * m[i] / denom;
            }
        }
    }
}
