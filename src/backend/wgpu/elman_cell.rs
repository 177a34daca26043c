//! The Elman step kernels (`shaders/elman_cell.wgsl`; CPU twin `src/backend/cpu/elman_cell.rs`).

use super::layer::{Bwd, Call, CellShader, Fwd, GpuCell, act_code};
use crate::config::{Activation, CellConfig};
use crate::params::LayerPlan;

/// `elman_cell.wgsl` after `layer.wgsl` and the step products (see [`CellShader`]).
static SHADER: CellShader = CellShader::new(
    "elman_cell",
    include_str!("../../../shaders/elman_cell.wgsl"),
    true,
);

/// Elman: `h_t = act(xp + W_hh h_{t-1} + b_hh)`.
pub(super) struct ElmanCell;

impl GpuCell for ElmanCell {
    fn shader(&self) -> &'static CellShader {
        &SHADER
    }
    fn record_width(&self, _plan: &LayerPlan) -> usize {
        0
    }
    fn options(&self, plan: &LayerPlan) -> [u32; 4] {
        let a = match plan.cell {
            CellConfig::Elman { activation } => activation,
            _ => Activation::Tanh,
        };
        [act_code(a), 0, 0, 0]
    }
    fn joins(&self, _plan: &LayerPlan, tuning: &super::Tuning) -> bool {
        tuning.tiled_steps
    }
    fn forward_step<'a>(&self, c: &Call<'a>, io: &Fwd<'a>, s: usize) {
        let w = c.words(s);
        if c.be.tuning().tiled_steps {
            c.forward_tiles(&SHADER, "fwd_step_tiled", io, &w, c.tiles(true));
        } else {
            c.forward(&SHADER, "fwd_step", io, &w, c.plan.hidden);
        }
        c.cost(c.lay.gh, c.lay.rw);
    }
    fn backward_step<'a>(&self, c: &Call<'a>, io: &Bwd<'a>, s: usize) {
        let w = c.words(s);
        if c.be.tuning().tiled_steps {
            c.backward_tiles(&SHADER, "bwd_step_tiled", io, &w, c.tiles(false));
        } else {
            c.backward(&SHADER, "bwd_step", io, &w, c.plan.hidden);
        }
        c.cost(c.lay.gh, c.lay.rw);
    }
}
