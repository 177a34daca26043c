//! CPU reference of the Elman cell (PyTorch `nn.RNN` for tanh/relu):
//! `h_t = act(xp + W_hh h_{t-1} + b_hh)` with `xp = W_ih x_t + b_ih`.
//!
//! Record per step: `[h_t: H]` (the derivative of every activation follows from its output).

use crate::backend::Real;
use crate::config::{Activation, CellConfig};
use crate::params::LayerPlan;

use super::activation::{apply, grad_from_output};
use super::gemm::{add_into, matvec_acc, matvec_t_acc, outer_acc};
use super::layer::{CellStep, StepCtx, StepGrads};

/// The Elman step.
pub(crate) struct ElmanCell;

fn activation(plan: &LayerPlan) -> Activation {
    match plan.cell {
        CellConfig::Elman { activation } | CellConfig::Jordan { activation, .. } => activation,
        _ => Activation::Tanh,
    }
}

impl<T: Real> CellStep<T> for ElmanCell {
    fn cache_width(&self, plan: &LayerPlan) -> usize {
        plan.hidden
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
        let mut a: Vec<T> = (0..n).map(|j| xp[j] + p[off.b_hh + j]).collect();
        matvec_acc(&mut a, &p[off.w_hh..], n, n, h_prev);
        let act = activation(ctx.plan);
        for j in 0..n {
            h[j] = apply(act, a[j]);
        }
        out.copy_from_slice(h);
        rec.copy_from_slice(h);
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
        let act = activation(ctx.plan);
        // da = (dout + dh) * act'(a)
        for (j, h) in rec.iter().enumerate() {
            g.dxp[j] = (g.dout[j] + g.dh[j]) * grad_from_output(act, *h);
        }
        add_into(&mut grads[off.b_hh..off.b_hh + n], g.dxp);
        outer_acc(&mut grads[off.w_hh..], n, n, g.dxp, h_prev);
        g.dh_prev.fill(T::zero());
        matvec_t_acc(g.dh_prev, &p[off.w_hh..], n, n, g.dxp);
        g.dc_prev.fill(T::zero());
    }
}
