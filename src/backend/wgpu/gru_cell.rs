//! The GRU step kernels (`shaders/gru_cell.wgsl`; CPU twin `src/backend/cpu/gru_cell.rs`).
//!
//! Record `[r | z | n | q]` per row (`q = W_hn h + b_hn` for `Pytorch`, `q = r * h` for
//! `ResetBefore`), scratch `[dh]` (`Pytorch`) or `[dh | W_hn^T da_n]` (`ResetBefore`).
//! `Pytorch` takes one dispatch per step each way; `ResetBefore` two (its candidate needs the
//! whole reset row forward, its reset gradient the whole candidate gradient row backward).

use std::ops::Range;

use super::gemm::{Mat, Out};
use super::layer::{Bwd, Call, CellShader, Fwd, GpuCell};
use super::runtime::GpuBuffer;
use crate::config::{CellConfig, GruVariant};
use crate::params::LayerPlan;

/// `gru_cell.wgsl` after `layer.wgsl` and the step products (see [`CellShader`]).
static SHADER: CellShader = CellShader::new(
    "gru_cell",
    include_str!("../../../shaders/gru_cell.wgsl"),
    true,
);

/// GRU, gate order r, z, n; see `shaders/gru_cell.wgsl` for the math of both variants.
pub(super) struct GruCell;

fn variant(plan: &LayerPlan) -> GruVariant {
    match plan.cell {
        CellConfig::Gru { variant } => variant,
        _ => GruVariant::Pytorch,
    }
}

fn reset_before(plan: &LayerPlan) -> bool {
    matches!(variant(plan), GruVariant::ResetBefore)
}

/// `dW_hh[rows first..first+n] += dgh[:, first..first+n]^T B` over the rows `rows` of
/// direction `d`, with `B` the `[rows, H]` matrix at `b_off` of the cache with row stride
/// `b_rs` (from its row 0).
fn dw_block<'a>(
    c: &Call<'a>,
    d: usize,
    grads: &'a GpuBuffer,
    (first, n): (usize, usize),
    (b_off, b_rs): (usize, usize),
    rows: Range<usize>,
) {
    let (l, off) = (&c.lay, &c.plan.dirs[d]);
    c.gemm(
        n,
        l.rw,
        rows.len(),
        Mat::t(c.gate_buf(), c.gate_row(l.dgh, d, rows.start) + first, l.gs),
        Mat {
            buf: c.cache,
            off: b_off + rows.start * b_rs,
            rs: b_rs,
            cs: 1,
        },
        Out {
            buf: grads,
            off: off.w_hh + first * l.rw,
            rs: l.rw,
        },
        true,
    );
}

impl GpuCell for GruCell {
    fn shader(&self) -> &'static CellShader {
        &SHADER
    }
    fn record_width(&self, plan: &LayerPlan) -> usize {
        4 * plan.hidden
    }
    /// r, z, n are the first 3H values of a record row (both variants).
    fn gates_in_record(&self, _plan: &LayerPlan) -> bool {
        true
    }
    /// Pytorch: dgh takes the r, z, n slots (its n block is da_n r), so dxp's n block da_n
    /// is in the q slot.
    fn dxp_blocks_in_record(&self, plan: &LayerPlan) -> Vec<(usize, usize, usize)> {
        let h = plan.hidden;
        if reset_before(plan) {
            vec![(0, 3 * h, 0)]
        } else {
            vec![(0, 2 * h, 0), (2 * h, h, 3 * h)]
        }
    }
    fn scratch_width(&self, plan: &LayerPlan) -> usize {
        if reset_before(plan) {
            2 * plan.hidden
        } else {
            plan.hidden
        }
    }
    fn dgh_is_dxp(&self, plan: &LayerPlan) -> bool {
        // Pytorch: dgh's n block is da_n r, dxp's is da_n.
        reset_before(plan)
    }
    fn options(&self, plan: &LayerPlan) -> [u32; 4] {
        [reset_before(plan) as u32, 0, 0, 0]
    }
    fn joins(&self, plan: &LayerPlan, tuning: &super::Tuning) -> bool {
        tuning.tiled_steps && !reset_before(plan)
    }
    fn forward_step<'a>(&self, c: &Call<'a>, io: &Fwd<'a>, s: usize) {
        let w = c.words(s);
        let h = c.plan.hidden;
        if reset_before(c.plan) {
            c.forward(&SHADER, "fwd_gates", io, &w, h);
            c.cost(2 * h, c.lay.rw);
            c.forward(&SHADER, "fwd_cand", io, &w, h);
            c.cost(h, c.lay.rw);
        } else if c.be.tuning().tiled_steps {
            c.forward_tiles(&SHADER, "fwd_step_tiled", io, &w, c.tiles(true));
            c.cost(3 * h, c.lay.rw);
        } else {
            c.forward(&SHADER, "fwd_step", io, &w, h);
            c.cost(3 * h, c.lay.rw);
        }
    }
    fn backward_step<'a>(&self, c: &Call<'a>, io: &Bwd<'a>, s: usize) {
        let w = c.words(s);
        let h = c.plan.hidden;
        if !reset_before(c.plan) && c.be.tuning().tiled_steps {
            c.backward_tiles(&SHADER, "bwd_step_tiled", io, &w, c.tiles(false));
        } else {
            c.backward(&SHADER, "bwd_step", io, &w, h);
        }
        c.cost(3 * h, c.lay.rw);
        if reset_before(c.plan) {
            c.backward(&SHADER, "bwd_reset", io, &w, h);
            c.cost(h, c.lay.rw);
        }
    }
    fn weight_grads<'a>(&self, c: &Call<'a>, d: usize, grads: &'a GpuBuffer, rows: Range<usize>) {
        let (l, h, w_hh) = (&c.lay, c.plan.hidden, c.plan.dirs[d].w_hh);
        if reset_before(c.plan) {
            // Rows r, z against h_{t-1}; rows n against q = r * h_{t-1} (record slot 3).
            c.dw_prev_state(d, 0, 2 * h, grads, w_hh, rows.clone());
            let q = (c.dir(l.rec, d, l.kw) + 3 * h, l.kw);
            dw_block(c, d, grads, (2 * h, h), q, rows.clone());
        } else {
            c.dw_prev_state(d, 0, l.gh, grads, w_hh, rows);
        }
    }
}
