//! CPU reference of the LSTM cell (PyTorch `nn.LSTM`, gate order i, f, g, o), with optional
//! peepholes and projection (LSTMP):
//!
//! ```text
//! a   = xp + W_hh h_{t-1} + b_hh            (xp = W_ih x_t + b_ih, 4H rows: a_i a_f a_g a_o)
//! i   = gate(a_i + p_i * c_{t-1})
//! f   = gate(a_f + p_f * c_{t-1})
//! g   = cellact(a_g)
//! c_t = f * c_{t-1} + i * g
//! o   = gate(a_o + p_o * c_t)
//! m   = o * hiddenact(c_t)
//! h_t = m, or h_t = W_hr m with a projection (W_hr: [P, H])
//! ```
//!
//! The peephole terms `p_i, p_f, p_o` (rows 0, 1, 2 of `peephole` `[3, H]`) are present only
//! with `peephole = true`. The layer output and the recurrent state are both `h_t` (width P
//! with a projection, else H); the cell state `c_t` has width H.
//!
//! Record per step: `[i: H | f: H | g: H | o: H | c_t: H | hiddenact(c_t): H | m: H]`, the
//! last block only with a projection (the derivative of every activation follows from its
//! output).

use crate::backend::Real;
use crate::config::{Activation, CellConfig};
use crate::params::LayerPlan;

use super::activation::{apply, grad_from_output};
use super::gemm::{add_into, matvec_acc, matvec_t_acc, outer_acc};
use super::layer::{CellStep, StepCtx, StepGrads};

/// The LSTM step.
pub(crate) struct LstmCell;

/// The activations of the gates (i, f, o), of the cell input g and of the cell state before
/// the output gate.
struct Acts {
    gate: Activation,
    cell: Activation,
    hidden: Activation,
}

fn acts(plan: &LayerPlan) -> Acts {
    match plan.cell {
        CellConfig::Lstm {
            gate, cell, hidden, ..
        } => Acts { gate, cell, hidden },
        _ => Acts {
            gate: Activation::Sigmoid,
            cell: Activation::Tanh,
            hidden: Activation::Tanh,
        },
    }
}

/// Number of `H`-wide blocks in the record: i, f, g, o, c, hiddenact(c) (+ m when projected).
fn record_blocks(plan: &LayerPlan) -> usize {
    if has_projection(plan) { 7 } else { 6 }
}

fn has_projection(plan: &LayerPlan) -> bool {
    plan.dirs.first().is_some_and(|d| d.w_hr.is_some())
}

impl<T: Real> CellStep<T> for LstmCell {
    fn cache_width(&self, plan: &LayerPlan) -> usize {
        record_blocks(plan) * plan.hidden
    }

    fn forward(
        &self,
        ctx: &StepCtx<'_, T>,
        xp: &[T],
        h_prev: &[T],
        c_prev: &[T],
        out: &mut [T],
        h: &mut [T],
        c: &mut [T],
        rec: &mut [T],
    ) {
        let (p, off, n) = (ctx.params, ctx.off, ctx.plan.hidden);
        let r = ctx.plan.recurrent_input;
        let act = acts(ctx.plan);
        // Peephole weight of row `k` (0: i, 1: f, 2: o) for unit `j`; zero without peepholes.
        let peep = |k: usize, j: usize| off.peephole.map_or(T::zero(), |o| p[o + k * n + j]);

        // a = xp + b_hh + W_hh h_{t-1}
        let mut a: Vec<T> = (0..4 * n).map(|k| xp[k] + p[off.b_hh + k]).collect();
        matvec_acc(&mut a, &p[off.w_hh..], 4 * n, r, h_prev);

        let (gi, rest) = rec.split_at_mut(n);
        let (gf, rest) = rest.split_at_mut(n);
        let (gg, rest) = rest.split_at_mut(n);
        let (go, rest) = rest.split_at_mut(n);
        let (rc, rest) = rest.split_at_mut(n);
        let (hc, rm) = rest.split_at_mut(n);
        for j in 0..n {
            // i = gate(a_i + p_i c_{t-1}), f = gate(a_f + p_f c_{t-1}), g = cellact(a_g)
            gi[j] = apply(act.gate, a[j] + peep(0, j) * c_prev[j]);
            gf[j] = apply(act.gate, a[n + j] + peep(1, j) * c_prev[j]);
            gg[j] = apply(act.cell, a[2 * n + j]);
            // c_t = f c_{t-1} + i g
            c[j] = gf[j] * c_prev[j] + gi[j] * gg[j];
            // o = gate(a_o + p_o c_t)
            go[j] = apply(act.gate, a[3 * n + j] + peep(2, j) * c[j]);
            rc[j] = c[j];
            // hiddenact(c_t)
            hc[j] = apply(act.hidden, c[j]);
        }
        // m = o * hiddenact(c_t); h_t = W_hr m or m
        let m: Vec<T> = go.iter().zip(hc.iter()).map(|(o, v)| *o * *v).collect();
        match ctx.off.w_hr {
            Some(w_hr) => {
                rm.copy_from_slice(&m);
                h.fill(T::zero());
                matvec_acc(h, &p[w_hr..], r, n, &m);
            }
            None => h.copy_from_slice(&m),
        }
        out.copy_from_slice(h);
    }

    fn backward(
        &self,
        ctx: &StepCtx<'_, T>,
        grads: &mut [T],
        _xp: &[T],
        h_prev: &[T],
        c_prev: &[T],
        rec: &[T],
        g: StepGrads<'_, T>,
    ) {
        let (p, off, n) = (ctx.params, ctx.off, ctx.plan.hidden);
        let r = ctx.plan.recurrent_input;
        let act = acts(ctx.plan);
        let peep = |k: usize, j: usize| off.peephole.map_or(T::zero(), |o| p[o + k * n + j]);

        let (gi, rest) = rec.split_at(n);
        let (gf, rest) = rest.split_at(n);
        let (gg, rest) = rest.split_at(n);
        let (go, rest) = rest.split_at(n);
        let (c, rest) = rest.split_at(n);
        let (hc, rm) = rest.split_at(n);

        // Total gradient of h_t: from this step's output and from the next step.
        let dht: Vec<T> = g.dout.iter().zip(g.dh).map(|(a, b)| *a + *b).collect();
        // dm = W_hr^T dh_t (dW_hr += dh_t m^T), or dm = dh_t without a projection.
        let dm: Vec<T> = match off.w_hr {
            Some(w_hr) => {
                outer_acc(&mut grads[w_hr..], r, n, &dht, &rm[..n]);
                let mut dm = vec![T::zero(); n];
                matvec_t_acc(&mut dm, &p[w_hr..], r, n, &dht);
                dm
            }
            None => dht,
        };

        let (da_i, rest) = g.dxp.split_at_mut(n);
        let (da_f, rest) = rest.split_at_mut(n);
        let (da_g, da_o) = rest.split_at_mut(n);
        for j in 0..n {
            // m = o * hc: do = dm hc, da_o = do gate'(o)
            da_o[j] = dm[j] * hc[j] * grad_from_output(act.gate, go[j]);
            // dc_t = dc (from the next step) + dm o hiddenact'(hc) + da_o p_o
            let dc = g.dc[j]
                + dm[j] * go[j] * grad_from_output(act.hidden, hc[j])
                + da_o[j] * peep(2, j);
            // c_t = f c_{t-1} + i g
            da_i[j] = dc * gg[j] * grad_from_output(act.gate, gi[j]);
            da_f[j] = dc * c_prev[j] * grad_from_output(act.gate, gf[j]);
            da_g[j] = dc * gi[j] * grad_from_output(act.cell, gg[j]);
            // dc_{t-1} = dc f + da_i p_i + da_f p_f
            g.dc_prev[j] = dc * gf[j] + da_i[j] * peep(0, j) + da_f[j] * peep(1, j);
            if let Some(o) = off.peephole {
                // dp_i += da_i c_{t-1}, dp_f += da_f c_{t-1}, dp_o += da_o c_t
                grads[o + j] = grads[o + j] + da_i[j] * c_prev[j];
                grads[o + n + j] = grads[o + n + j] + da_f[j] * c_prev[j];
                grads[o + 2 * n + j] = grads[o + 2 * n + j] + da_o[j] * c[j];
            }
        }

        // a = xp + W_hh h_{t-1} + b_hh, so dxp = da (written above).
        add_into(&mut grads[off.b_hh..off.b_hh + 4 * n], g.dxp);
        outer_acc(&mut grads[off.w_hh..], 4 * n, r, g.dxp, h_prev);
        g.dh_prev.fill(T::zero());
        matvec_t_acc(g.dh_prev, &p[off.w_hh..], 4 * n, r, g.dxp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::DirOffsets;

    fn plan(peephole: bool, proj: Option<usize>) -> LayerPlan {
        LayerPlan {
            index: 0,
            cell: CellConfig::lstm(peephole, proj),
            input: 1,
            hidden: 1,
            output: proj.unwrap_or(1),
            recurrent_input: proj.unwrap_or(1),
            gates: 4,
            // Params: w_ih [4,1] | w_hh [4,1] | b_ih [4] | b_hh [4] | w_hr [1,1] | peep [3,1]
            dirs: vec![DirOffsets {
                w_ih: 0,
                w_hh: 4,
                b_ih: 8,
                b_hh: 12,
                w_hr: proj.map(|_| 16),
                peephole: peephole.then_some(17),
            }],
            recurrent: true,
            dropout: 0.0,
            feedback_head: None,
        }
    }

    fn sigmoid(x: f64) -> f64 {
        1.0 / (1.0 + (-x).exp())
    }

    /// One step of a 1-unit LSTM, every weight and bias 0.5, x = 1, h_prev = 1, c_prev = 1:
    /// every pre-activation is `a = W_ih x + b_ih + W_hh h + b_hh = 0.5+0.5+0.5+0.5 = 2`, so
    /// `i = f = o = sigmoid(2) = 0.880797`, `g = tanh(2) = 0.964028`,
    /// `c = f*1 + i*g = 0.880797 + 0.849113 = 1.729910`, `h = o*tanh(c) = 0.827108`.
    /// With peepholes (0.5) and a projection (W_hr = 0.5):
    /// `i = f = sigmoid(2.5) = 0.924142`, `c = 0.924142 * (1 + 0.964028) = 1.815040`,
    /// `o = sigmoid(2 + 0.5 c) = sigmoid(2.907520) = 0.948217`,
    /// `m = o * tanh(c) = 0.899234`, `h = 0.5 m = 0.449617`.
    #[test]
    fn one_unit_step_by_hand() {
        for (peephole, proj) in [(false, None), (true, Some(1))] {
            let pl = plan(peephole, proj);
            let params = vec![0.5f64; 20];
            let ctx = StepCtx {
                plan: &pl,
                off: &pl.dirs[0],
                params: &params,
            };
            // xp = W_ih x + b_ih = 0.5 * 1 + 0.5
            let xp = [1.0f64; 4];
            let (mut out, mut h, mut c) = ([0.0f64], [0.0f64], [0.0f64]);
            let mut rec = vec![0.0f64; CellStep::<f64>::cache_width(&LstmCell, &pl)];
            LstmCell.forward(
                &ctx,
                &xp,
                &[1.0],
                &[1.0],
                &mut out,
                &mut h,
                &mut c,
                &mut rec,
            );

            let (want_c, want_h) = if peephole {
                (1.815040, 0.449617)
            } else {
                (1.729910, 0.827108)
            };
            assert!((c[0] - want_c).abs() < 1e-6, "c = {}", c[0]);
            assert!((h[0] - want_h).abs() < 1e-6, "h = {}", h[0]);
            assert_eq!(out[0], h[0]);
            // Cross-check the hand values with the closed form.
            let pi = if peephole { 0.5 } else { 0.0 };
            let gate = sigmoid(2.0 + pi);
            let cc = gate + gate * 2f64.tanh();
            let o = sigmoid(2.0 + pi * cc);
            let hh = o * cc.tanh() * if proj.is_some() { 0.5 } else { 1.0 };
            assert!((c[0] - cc).abs() < 1e-12 && (h[0] - hh).abs() < 1e-12);
        }
    }
}
