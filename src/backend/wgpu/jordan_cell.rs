//! The Jordan step kernels (`shaders/jordan_cell.wgsl`; CPU twin `src/backend/cpu/jordan_cell.rs`).
//!
//! Forward per step: the hidden row, then the head's row `z_t` (needs the whole hidden row),
//! then for softmax feedback the softmax of that row. Backward per step: the fed-back
//! output's gradient row, then the hidden unit gradients (the softmax and head backward
//! recomputed per invocation from that row). The head's gradients over all steps are GEMMs.

use std::ops::Range;

use super::GpuBuffer;
use super::gemm::{Mat, Out};
use super::layer::{Bwd, Call, CellShader, Fwd, GpuCell, act_code};
use crate::config::{Activation, CellConfig, JordanFeedback};
use crate::params::{HeadPlan, LayerPlan};

/// `jordan_cell.wgsl` after `layer.wgsl` and the step products (see [`CellShader`]).
static SHADER: CellShader = CellShader::new(
    "jordan_cell",
    include_str!("../../../shaders/jordan_cell.wgsl"),
    false,
);

/// Jordan: `h_t = act(xp + W_hh y_{t-1} + b_hh)`, `y_t = feedback(W_head h_t + b_head)`.
pub(super) struct JordanCell;

fn head(plan: &LayerPlan) -> &HeadPlan {
    plan.feedback_head
        .as_ref()
        .expect("validated: a Jordan layer has a head")
}

fn softmax(plan: &LayerPlan) -> bool {
    matches!(
        plan.cell,
        CellConfig::Jordan {
            feedback: JordanFeedback::Softmax,
            ..
        }
    )
}

impl GpuCell for JordanCell {
    fn state_is_output(&self) -> bool {
        // The fed-back state is the head's output y_t, not the layer's output h_t.
        false
    }
    fn shader(&self) -> &'static CellShader {
        &SHADER
    }
    /// `[h_t: H | z_t: C]`.
    fn record_width(&self, plan: &LayerPlan) -> usize {
        plan.hidden + plan.recurrent_input
    }
    /// `[dz_t: C | dy_t: C]`.
    fn scratch_width(&self, plan: &LayerPlan) -> usize {
        2 * plan.recurrent_input
    }
    fn options(&self, plan: &LayerPlan) -> [u32; 4] {
        let a = match plan.cell {
            CellConfig::Jordan { activation, .. } => activation,
            _ => Activation::Tanh,
        };
        [act_code(a), softmax(plan) as u32, 0, 0]
    }
    fn extra_offsets(&self, plan: &LayerPlan) -> (usize, usize, usize, usize) {
        let h = head(plan);
        (h.w, h.w, h.b, h.b)
    }
    fn forward_step<'a>(&self, c: &Call<'a>, io: &Fwd<'a>, s: usize) {
        let w = c.words(s);
        let classes = c.lay.rw;
        c.forward(&SHADER, "fwd_step", io, &w, c.plan.hidden);
        c.cost(c.plan.hidden, classes);
        c.forward(&SHADER, "fwd_head", io, &w, classes);
        c.cost(classes, c.plan.hidden);
        if softmax(c.plan) {
            // One workgroup per row (b, d).
            let [_, b, d] = c.groups(classes);
            c.forward_tiles(&SHADER, "fwd_softmax", io, &w, [1, b, d]);
        }
    }
    fn backward_step<'a>(&self, c: &Call<'a>, io: &Bwd<'a>, s: usize) {
        let w = c.words(s);
        c.backward(&SHADER, "bwd_state", io, &w, c.lay.rw);
        c.cost(c.lay.rw, c.plan.hidden);
        c.backward(&SHADER, "bwd_step", io, &w, c.plan.hidden);
        c.cost(c.plan.hidden, c.lay.rw);
    }
    fn weight_grads<'a>(&self, c: &Call<'a>, d: usize, grads: &'a GpuBuffer, rows: Range<usize>) {
        let (l, off, hp) = (&c.lay, &c.plan.dirs[d], head(c.plan));
        let (n, nc) = (c.plan.hidden, l.rw);
        // dW_hh += dgh^T y_{t-1} (the fed-back output)
        c.dw_prev_state(d, 0, l.gh, grads, off.w_hh, rows.clone());
        // dW_head += dz^T h (dz: the first C of each scratch row, h: the first H of each
        // record row)
        let scr = c.scr_row(d, rows.start);
        let rec = c.dir(l.rec, d, l.kw) + rows.start * l.kw;
        c.gemm(
            nc,
            n,
            rows.len(),
            Mat::t(c.gates, scr, l.sw),
            Mat::rows(c.cache, rec, l.kw),
            Out {
                buf: grads,
                off: hp.w,
                rs: n,
            },
            true,
        );
    }

    fn bias_grads<'a>(&self, c: &Call<'a>, d: usize, grads: &'a GpuBuffer, rows: Range<usize>) {
        let (l, hp) = (&c.lay, head(c.plan));
        // db_head += column sums of dz (the first C of each scratch row)
        let scr = c.scr_row(d, rows.start);
        c.col_sums(c.gates, scr, l.rw, l.sw, grads, &[hp.b], rows.len());
    }
}
