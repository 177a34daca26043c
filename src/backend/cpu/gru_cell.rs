//! CPU reference of the GRU cell, gate order r, z, n (rows of `weight_ih`, `weight_hh`,
//! `bias_ih`, `bias_hh` stacked in that order, H rows each). `xp = W_ih x_t + b_ih` holds
//! `[xp_r | xp_z | xp_n]`; `W_hr`, `W_hz`, `W_hn` are the row blocks of `weight_hh`
//! (`[3H, H]`) and `b_hr`, `b_hz`, `b_hn` those of `bias_hh`.
//!
//! Both variants share the gates and the update:
//! `r = sigmoid(xp_r + W_hr h + b_hr)`, `z = sigmoid(xp_z + W_hz h + b_hz)`,
//! `h_t = (1 - z) * n + z * h` (with `h = h_{t-1}`); they differ in the candidate `n`:
//! - `GruVariant::Pytorch` (PyTorch `nn.GRU`, cuDNN): `n = tanh(xp_n + r * (W_hn h + b_hn))`;
//! - `GruVariant::ResetBefore` (Cho et al. 2014): `n = tanh(xp_n + W_hn (r * h) + b_hn)`.
//!
//! The step's output and its next state are both `h_t`; there is no cell state.
//!
//! Record per step: `[r: H | z: H | n: H | hn: H]` where `hn` is the recurrent part of the
//! candidate's argument before the reset: `W_hn h + b_hn` (Pytorch, needed by the backward
//! pass for `dr`) or `W_hn (r * h) + b_hn` (ResetBefore, kept for symmetry; the backward pass
//! recomputes `r * h` from `r` and `h_{t-1}` instead).

use crate::backend::Real;
use crate::config::{CellConfig, GruVariant};
use crate::params::LayerPlan;

use super::activation::{apply, grad_from_output};
use super::gemm::{add_into, matvec_acc, matvec_t_acc, outer_acc};
use super::layer::{CellStep, StepCtx, StepGrads};
use crate::config::Activation::{Sigmoid, Tanh};

/// The GRU step.
pub(crate) struct GruCell;

fn variant(plan: &LayerPlan) -> GruVariant {
    match plan.cell {
        CellConfig::Gru { variant } => variant,
        _ => GruVariant::Pytorch,
    }
}

impl<T: Real> CellStep<T> for GruCell {
    fn cache_width(&self, plan: &LayerPlan) -> usize {
        4 * plan.hidden
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
        let (xp_r, rest) = xp.split_at(n);
        let (xp_z, xp_n) = rest.split_at(n);
        // Row block k of weight_hh / bias_hh starts at w_hh + k*H*H / b_hh + k*H.
        let w_hn = &p[off.w_hh + 2 * n * n..];
        let b_hr = &p[off.b_hh..off.b_hh + n];
        let b_hz = &p[off.b_hh + n..off.b_hh + 2 * n];
        let b_hn = &p[off.b_hh + 2 * n..off.b_hh + 3 * n];

        // a_r = W_hr h + b_hr, a_z = W_hz h + b_hz (rows 0..2H of weight_hh at once).
        let mut a_rz: Vec<T> = b_hr.iter().chain(b_hz).copied().collect();
        matvec_acc(&mut a_rz, &p[off.w_hh..], 2 * n, n, h_prev);

        let (rr, rest) = rec.split_at_mut(n);
        let (zz, rest) = rest.split_at_mut(n);
        let (nn, hn) = rest.split_at_mut(n);
        // r = sigmoid(xp_r + a_r), z = sigmoid(xp_z + a_z)
        for j in 0..n {
            rr[j] = apply(Sigmoid, xp_r[j] + a_rz[j]);
            zz[j] = apply(Sigmoid, xp_z[j] + a_rz[n + j]);
        }

        hn.copy_from_slice(b_hn);
        match variant(ctx.plan) {
            GruVariant::Pytorch => {
                // hn = W_hn h + b_hn; n = tanh(xp_n + r * hn)
                matvec_acc(hn, w_hn, n, n, h_prev);
                for j in 0..n {
                    nn[j] = apply(Tanh, xp_n[j] + rr[j] * hn[j]);
                }
            }
            GruVariant::ResetBefore => {
                // hn = W_hn (r * h) + b_hn; n = tanh(xp_n + hn)
                let rh: Vec<T> = rr.iter().zip(h_prev).map(|(r, h)| *r * *h).collect();
                matvec_acc(hn, w_hn, n, n, &rh);
                for j in 0..n {
                    nn[j] = apply(Tanh, xp_n[j] + hn[j]);
                }
            }
        }

        // h_t = (1 - z) * n + z * h_{t-1}
        for j in 0..n {
            h[j] = (T::one() - zz[j]) * nn[j] + zz[j] * h_prev[j];
        }
        out.copy_from_slice(h);
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
        let (rr, rest) = rec.split_at(n);
        let (zz, rest) = rest.split_at(n);
        let (nn, hn) = rest.split_at(n);
        let w_hn_at = off.w_hh + 2 * n * n;
        let b_hn_at = off.b_hh + 2 * n;
        let (dxp_rz, dxp_n) = g.dxp.split_at_mut(2 * n);

        // dh_t = dout + dh; h_t = (1 - z) * n + z * h_{t-1} gives
        // dn = dh_t * (1 - z), dz = dh_t * (h_{t-1} - n) and the direct dh_{t-1} = dh_t * z.
        // Through the activations: da_n = dn * (1 - n^2), da_z = dz * z * (1 - z).
        for j in 0..n {
            let dht = g.dout[j] + g.dh[j];
            let dn = dht * (T::one() - zz[j]);
            let dz = dht * (h_prev[j] - nn[j]);
            g.dh_prev[j] = dht * zz[j];
            dxp_n[j] = dn * grad_from_output(Tanh, nn[j]);
            dxp_rz[n + j] = dz * grad_from_output(Sigmoid, zz[j]);
        }

        match variant(ctx.plan) {
            GruVariant::Pytorch => {
                // a_n = xp_n + r * hn, hn = W_hn h + b_hn:
                // dr = da_n * hn, dhn = da_n * r; da_r = dr * r * (1 - r).
                let mut dhn = vec![T::zero(); n];
                for j in 0..n {
                    dxp_rz[j] = dxp_n[j] * hn[j] * grad_from_output(Sigmoid, rr[j]);
                    dhn[j] = dxp_n[j] * rr[j];
                }
                // The pre-activations of the hidden side are [a_r | a_z | hn], all linear in
                // h_{t-1} through weight_hh and bias_hh: their gradient is [da_r | da_z | dhn].
                let da_hh: Vec<T> = dxp_rz.iter().chain(&dhn).copied().collect();
                add_into(&mut grads[off.b_hh..off.b_hh + 3 * n], &da_hh);
                outer_acc(&mut grads[off.w_hh..], 3 * n, n, &da_hh, h_prev);
                matvec_t_acc(g.dh_prev, &p[off.w_hh..], 3 * n, n, &da_hh);
            }
            GruVariant::ResetBefore => {
                // a_n = xp_n + W_hn (r * h) + b_hn:
                // db_hn = da_n, dW_hn = da_n (r * h)^T, d(r * h) = W_hn^T da_n,
                // dr = d(r * h) * h, dh_{t-1} += d(r * h) * r; da_r = dr * r * (1 - r).
                let rh: Vec<T> = rr.iter().zip(h_prev).map(|(r, h)| *r * *h).collect();
                add_into(&mut grads[b_hn_at..b_hn_at + n], dxp_n);
                outer_acc(&mut grads[w_hn_at..], n, n, dxp_n, &rh);
                let mut drh = vec![T::zero(); n];
                matvec_t_acc(&mut drh, &p[w_hn_at..], n, n, dxp_n);
                for j in 0..n {
                    dxp_rz[j] = drh[j] * h_prev[j] * grad_from_output(Sigmoid, rr[j]);
                    g.dh_prev[j] = g.dh_prev[j] + drh[j] * rr[j];
                }
                // a_r, a_z = rows 0..2H of (W_hh h + b_hh): gradient [da_r | da_z].
                add_into(&mut grads[off.b_hh..off.b_hh + 2 * n], dxp_rz);
                outer_acc(&mut grads[off.w_hh..], 2 * n, n, dxp_rz, h_prev);
                matvec_t_acc(g.dh_prev, &p[off.w_hh..], 2 * n, n, dxp_rz);
            }
        }
        g.dc_prev.fill(T::zero());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::DirOffsets;

    /// A 1-unit GRU layer (input width 1) whose parameters are laid out as
    /// `[w_ih: 3 | w_hh: 3 | b_ih: 3 | b_hh: 3]`.
    fn plan(variant: GruVariant) -> LayerPlan {
        LayerPlan {
            index: 0,
            cell: CellConfig::Gru { variant },
            input: 1,
            hidden: 1,
            output: 1,
            recurrent_input: 1,
            gates: 3,
            dirs: vec![DirOffsets {
                w_ih: 0,
                w_hh: 3,
                b_ih: 6,
                b_hh: 9,
                w_hr: None,
                peephole: None,
            }],
            recurrent: true,
            dropout: 0.0,
            feedback_head: None,
        }
    }

    /// One step from `h_{t-1} = 1` with
    /// `xp = [-0.75, 0.5, -1]`, `W_hh = [0.5, -1, 1]`, `b_hh = [0.25, 0.5, 1]`:
    /// - `r = sigmoid(-0.75 + 0.5 * 1 + 0.25) = sigmoid(0) = 0.5`,
    /// - `z = sigmoid(0.5 - 1 * 1 + 0.5) = sigmoid(0) = 0.5`;
    /// - Pytorch: `hn = 1 * 1 + 1 = 2`, `n = tanh(-1 + 0.5 * 2) = tanh(0) = 0`,
    ///   `h_t = 0.5 * 0 + 0.5 * 1 = 0.5`;
    /// - ResetBefore: `hn = 1 * (0.5 * 1) + 1 = 1.5`, `n = tanh(-1 + 1.5) = tanh(0.5)
    ///   = 0.46211715726000974`, `h_t = 0.5 * tanh(0.5) + 0.5 = sigmoid(1) = 0.7310585786300049`.
    fn step(variant: GruVariant) -> (Vec<f64>, Vec<f64>) {
        let plan = plan(variant);
        let params = [0.0, 0.0, 0.0, 0.5, -1.0, 1.0, 0.0, 0.0, 0.0, 0.25, 0.5, 1.0];
        let ctx = StepCtx {
            plan: &plan,
            off: &plan.dirs[0],
            params: &params[..],
        };
        let xp = [-0.75, 0.5, -1.0];
        let (mut out, mut h, mut c) = (vec![0.0; 1], vec![0.0; 1], Vec::new());
        let mut rec = vec![0.0; CellStep::<f64>::cache_width(&GruCell, &plan)];
        GruCell.forward(&ctx, &xp, &[1.0], &[], &mut out, &mut h, &mut c, &mut rec);
        assert_eq!(out, h);
        (h, rec)
    }

    fn close(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-12)
    }

    #[test]
    fn one_step_pytorch() {
        let (h, rec) = step(GruVariant::Pytorch);
        assert!(close(&h, &[0.5]), "{h:?}");
        // [r | z | n | hn]
        assert!(close(&rec, &[0.5, 0.5, 0.0, 2.0]), "{rec:?}");
    }

    #[test]
    fn one_step_reset_before() {
        let (h, rec) = step(GruVariant::ResetBefore);
        assert!(close(&h, &[0.7310585786300049]), "{h:?}");
        assert!(
            close(&rec, &[0.5, 0.5, 0.46211715726000974, 1.5]),
            "{rec:?}"
        );
    }
}
