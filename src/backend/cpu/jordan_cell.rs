//! CPU reference of the Jordan cell: the previous step's head output is the recurrent input.
//!
//! `h_t = act(xp + W_hh y_{t-1} + b_hh)`, `z_t = W_head h_t + b_head`,
//! `y_t = softmax(z_t)` or `z_t` (the configured feedback). The layer outputs `h_t` (the
//! model's head reads it as usual); the state carried to the next step is `y_t`.
//!
//! Record per step: `[h_t: H | y_t: C]`.

use crate::backend::Real;
use crate::config::{Activation, CellConfig, JordanFeedback};
use crate::params::LayerPlan;

use super::activation::{apply, grad_from_output, softmax};
use super::gemm::{add_into, matvec_acc, matvec_t_acc, outer_acc};
use super::layer::{CellStep, StepCtx, StepGrads};

/// The Jordan step.
pub(crate) struct JordanCell;

fn options(plan: &LayerPlan) -> (Activation, JordanFeedback) {
    match plan.cell {
        CellConfig::Jordan {
            activation,
            feedback,
        } => (activation, feedback),
        _ => (Activation::Tanh, JordanFeedback::Linear),
    }
}

impl<T: Real> CellStep<T> for JordanCell {
    fn cache_width(&self, plan: &LayerPlan) -> usize {
        plan.hidden + plan.recurrent_input
    }

    fn forward(
        &self,
        ctx: &StepCtx<'_, T>,
        xp: &[T],
        h_prev: &[T],
        _c_prev: &[T],
        out: &mut [T],
        h: &mut [T],
        _c: &mut [T],
        rec: &mut [T],
    ) {
        let (p, off, n) = (ctx.params, ctx.off, ctx.plan.hidden);
        let nc = ctx.plan.recurrent_input;
        let head = ctx
            .plan
            .feedback_head
            .as_ref()
            .expect("validated: Jordan layer has a head");
        let (act, feedback) = options(ctx.plan);
        let mut a: Vec<T> = (0..n).map(|j| xp[j] + p[off.b_hh + j]).collect();
        matvec_acc(&mut a, &p[off.w_hh..], n, nc, h_prev);
        for j in 0..n {
            out[j] = apply(act, a[j]);
        }
        let mut z = p[head.b..head.b + nc].to_vec();
        matvec_acc(&mut z, &p[head.w..], nc, n, out);
        match feedback {
            JordanFeedback::Softmax => softmax(&z, h),
            JordanFeedback::Linear => h.copy_from_slice(&z),
        }
        rec[..n].copy_from_slice(out);
        rec[n..].copy_from_slice(h);
    }

    fn backward(
        &self,
        ctx: &StepCtx<'_, T>,
        grads: &mut [T],
        _xp: &[T],
        h_prev: &[T],
        _c_prev: &[T],
        rec: &[T],
        g: StepGrads<'_, T>,
    ) {
        let (p, off, n) = (ctx.params, ctx.off, ctx.plan.hidden);
        let nc = ctx.plan.recurrent_input;
        let head = ctx
            .plan
            .feedback_head
            .as_ref()
            .expect("validated: Jordan layer has a head");
        let (act, feedback) = options(ctx.plan);
        let (ht, yt) = rec.split_at(n);
        // dz from dy = g.dh (the fed-back output's gradient).
        let dz: Vec<T> = match feedback {
            JordanFeedback::Softmax => {
                let dot: T = yt.iter().zip(g.dh).map(|(y, d)| *y * *d).sum();
                yt.iter().zip(g.dh).map(|(y, d)| *y * (*d - dot)).collect()
            }
            JordanFeedback::Linear => g.dh.to_vec(),
        };
        outer_acc(&mut grads[head.w..], nc, n, &dz, ht);
        add_into(&mut grads[head.b..head.b + nc], &dz);
        // dh_t = dout + W_head^T dz
        let mut dht = g.dout.to_vec();
        matvec_t_acc(&mut dht, &p[head.w..], nc, n, &dz);
        for j in 0..n {
            g.dxp[j] = dht[j] * grad_from_output(act, ht[j]);
        }
        add_into(&mut grads[off.b_hh..off.b_hh + n], g.dxp);
        outer_acc(&mut grads[off.w_hh..], n, nc, g.dxp, h_prev);
        g.dh_prev.fill(T::zero());
        matvec_t_acc(g.dh_prev, &p[off.w_hh..], n, nc, g.dxp);
        g.dc_prev.fill(T::zero());
    }
}
