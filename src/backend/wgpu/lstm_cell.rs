//! The LSTM step kernels (`shaders/lstm_cell.wgsl`; CPU twin `src/backend/cpu/lstm_cell.rs`):
//! PyTorch `nn.LSTM` with configurable activations, optional peepholes and an optional
//! projection (LSTMP). With a projection each step takes two dispatches (the cell update,
//! then `h = W_hr m` over the whole `m` row), and so does each backward step (`dh` into
//! scratch, then the cell with `dm = W_hr^T dh`). The peephole and `W_hr` gradients are
//! reductions over all steps after the loop.

use std::ops::Range;

use super::GpuBuffer;
use super::gemm::{Mat, Out};
use super::layer::{Bwd, Call, CellShader, Fwd, GpuCell, act_code};
use crate::config::{Activation, CellConfig};
use crate::params::LayerPlan;

/// `lstm_cell.wgsl` after `layer.wgsl` and the step products (see [`CellShader`]).
static SHADER: CellShader = CellShader::new(
    "lstm_cell",
    include_str!("../../../shaders/lstm_cell.wgsl"),
    true,
);

/// Option bits of `opt3` (`shaders/lstm_cell.wgsl`).
const PEEPHOLE: u32 = 1;
const PROJ: u32 = 2;

/// The LSTM step.
pub(super) struct LstmCell;

fn has_peephole(plan: &LayerPlan) -> bool {
    plan.dirs[0].peephole.is_some()
}

fn has_proj(plan: &LayerPlan) -> bool {
    plan.dirs[0].w_hr.is_some()
}

/// Offset of the `dh` block in a scratch row.
fn scr_dh(plan: &LayerPlan) -> usize {
    if has_peephole(plan) {
        3 * plan.hidden
    } else {
        0
    }
}

impl GpuCell for LstmCell {
    fn shader(&self) -> &'static CellShader {
        &SHADER
    }

    fn record_width(&self, plan: &LayerPlan) -> usize {
        // i, f, g, o (+ m with a projection)
        plan.hidden * if has_proj(plan) { 5 } else { 4 }
    }

    /// i, f, g, o are the first 4H values of a record row.
    fn gates_in_record(&self, _plan: &LayerPlan) -> bool {
        true
    }

    fn scratch_width(&self, plan: &LayerPlan) -> usize {
        scr_dh(plan)
            + if has_proj(plan) {
                plan.recurrent_input
            } else {
                0
            }
    }

    fn options(&self, plan: &LayerPlan) -> [u32; 4] {
        let (gate, cell, hidden) = match plan.cell {
            CellConfig::Lstm {
                gate, cell, hidden, ..
            } => (gate, cell, hidden),
            _ => (Activation::Sigmoid, Activation::Tanh, Activation::Tanh),
        };
        let bits =
            if has_peephole(plan) { PEEPHOLE } else { 0 } | if has_proj(plan) { PROJ } else { 0 };
        [act_code(gate), act_code(cell), act_code(hidden), bits]
    }

    fn extra_offsets(&self, plan: &LayerPlan) -> (usize, usize, usize, usize) {
        let d0 = &plan.dirs[0];
        let d1 = plan.dirs.get(1).unwrap_or(d0);
        (
            d0.peephole.unwrap_or(0),
            d1.peephole.unwrap_or(0),
            d0.w_hr.unwrap_or(0),
            d1.w_hr.unwrap_or(0),
        )
    }

    fn joins(&self, plan: &LayerPlan, tuning: &super::Tuning) -> bool {
        tuning.tiled_steps && !has_proj(plan)
    }

    fn forward_step<'a>(&self, c: &Call<'a>, io: &Fwd<'a>, s: usize) {
        let w = c.words(s);
        if c.be.tuning().tiled_steps {
            c.forward_tiles(self.shader(), "fwd_step_tiled", io, &w, c.tiles(true));
        } else {
            c.forward(self.shader(), "fwd_step", io, &w, c.plan.hidden);
        }
        c.cost(c.lay.gh, c.lay.rw);
        if has_proj(c.plan) {
            c.forward(self.shader(), "fwd_proj", io, &w, c.lay.rw);
            c.cost(c.lay.rw, c.plan.hidden);
        }
    }

    fn backward_step<'a>(&self, c: &Call<'a>, io: &Bwd<'a>, s: usize) {
        let w = c.words(s);
        if has_proj(c.plan) {
            c.backward(self.shader(), "bwd_dh", io, &w, c.lay.rw);
            c.cost(c.lay.gh, c.lay.rw);
        }
        if c.be.tuning().tiled_steps && !has_proj(c.plan) {
            c.backward_tiles(self.shader(), "bwd_step_tiled", io, &w, c.tiles(false));
        } else {
            c.backward(self.shader(), "bwd_step", io, &w, c.plan.hidden);
        }
        if has_proj(c.plan) {
            c.cost(c.lay.rw, c.plan.hidden);
        } else {
            c.cost(c.lay.gh, c.lay.rw);
        }
    }

    fn weight_grads<'a>(&self, c: &Call<'a>, d: usize, grads: &'a GpuBuffer, rows: Range<usize>) {
        let (l, off, n) = (&c.lay, &c.plan.dirs[d], c.plan.hidden);
        // dW_hh += dgh^T h_{t-1}
        c.dw_prev_state(d, 0, l.gh, grads, off.w_hh, rows.clone());
        let scr = c.scr_row(d, rows.start);
        if let Some(w_hr) = off.w_hr {
            // dW_hr += dh^T m over the steps
            c.gemm(
                l.rw,
                n,
                rows.len(),
                Mat {
                    buf: c.gates,
                    off: scr + scr_dh(c.plan),
                    rs: 1,
                    cs: l.sw,
                },
                Mat {
                    buf: c.cache,
                    off: c.dir(l.rec, d, l.kw) + rows.start * l.kw + 4 * n,
                    rs: l.kw,
                    cs: 1,
                },
                Out {
                    buf: grads,
                    off: w_hr,
                    rs: n,
                },
                true,
            );
        }
    }

    fn bias_grads<'a>(&self, c: &Call<'a>, d: usize, grads: &'a GpuBuffer, rows: Range<usize>) {
        let (l, off, n) = (&c.lay, &c.plan.dirs[d], c.plan.hidden);
        if let Some(pe) = off.peephole {
            // [dp_i | dp_f | dp_o] += column sums of scratch [da_i c_prev | da_f c_prev | da_o c]
            let scr = c.scr_row(d, rows.start);
            c.col_sums(c.gates, scr, 3 * n, l.sw, grads, &[pe], rows.len());
        }
    }
}
