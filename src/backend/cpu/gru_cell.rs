//! PLACEHOLDER: being written.

use crate::backend::Real;
use crate::params::LayerPlan;

use super::layer::{CellStep, StepCtx, StepGrads};

/// Placeholder.
pub(crate) struct GruCell;

impl<T: Real> CellStep<T> for GruCell {
    fn cache_width(&self, _plan: &LayerPlan) -> usize {
        0
    }
    fn forward(
        &self,
        _ctx: &StepCtx<'_, T>,
        _xp: &[T],
        _h_prev: &[T],
        _c_prev: &[T],
        _out: &mut [T],
        _h: &mut [T],
        _c: &mut [T],
        _rec: &mut [T],
    ) {
        unimplemented!()
    }
    fn backward(
        &self,
        _ctx: &StepCtx<'_, T>,
        _grads: &mut [T],
        _xp: &[T],
        _h_prev: &[T],
        _c_prev: &[T],
        _rec: &[T],
        _g: StepGrads<'_, T>,
    ) {
        unimplemented!()
    }
}
