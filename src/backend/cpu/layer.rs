//! CPU reference for a whole recurrent layer: directions, variable lengths, input projection.
//!
//! The cell kinds only define one step (`CellStep`); this driver walks every direction of
//! every sequence over its own valid steps, in order for the forward direction and reversed for
//! the backward one, and keeps per-step records for backpropagation through time.
//!
//! Cache layout, per direction, per `(t, b)` (only valid steps are written):
//! `[ xp: G*H | h_prev: R | c_prev: C | cell record: cell.cache_width() ]`
//! where `xp = W_ih x_t + b_ih`, R = recurrent input width, C = cell-state width.

use crate::backend::{Real, SeqShape, StateBufs, StateBufsMut};
use crate::config::CellConfig;
use crate::params::{DirOffsets, LayerPlan};

use super::elman_cell::ElmanCell;
use super::gemm::{matvec_acc, matvec_t_acc, outer_acc};
use super::gru_cell::GruCell;
use super::jordan_cell::JordanCell;
use super::lstm_cell::LstmCell;

/// What a cell sees of its layer: the plan, one direction's offsets and the parameters.
pub(crate) struct StepCtx<'a, T> {
    /// The layer.
    pub plan: &'a LayerPlan,
    /// This direction's tensors.
    pub off: &'a DirOffsets,
    /// The flat parameter array.
    pub params: &'a [T],
}

/// Gradient of one step, passed to and from [`CellStep::backward`].
pub(crate) struct StepGrads<'a, T> {
    /// In: gradient w.r.t. this step's layer output (from the layer above / the loss).
    pub dout: &'a [T],
    /// In: gradient w.r.t. the recurrent state `h_t` (from step t+1 or the final state).
    pub dh: &'a [T],
    /// In: gradient w.r.t. the cell state `c_t`.
    pub dc: &'a [T],
    /// Out: gradient w.r.t. `xp = W_ih x_t + b_ih` (overwritten).
    pub dxp: &'a mut [T],
    /// Out: gradient w.r.t. `h_{t-1}` (overwritten).
    pub dh_prev: &'a mut [T],
    /// Out: gradient w.r.t. `c_{t-1}` (overwritten).
    pub dc_prev: &'a mut [T],
}

/// One time step of a cell kind, for one sequence of one direction.
pub(crate) trait CellStep<T: Real> {
    /// Scalars the cell records per step for its backward pass.
    fn cache_width(&self, plan: &LayerPlan) -> usize;

    /// From `xp` (`[G*H]`, input projection incl. `b_ih`) and the previous state, computes
    /// this step's output `out` (`[out]`), the next recurrent state `h` (`[R]`) and cell
    /// state `c` (`[C]`), and fills `rec`.
    #[allow(clippy::too_many_arguments)]
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
    );

    /// Backward of `forward`: accumulates parameter gradients (other than `W_ih`, `b_ih`)
    /// into `grads` and fills the outputs of `g`.
    #[allow(clippy::too_many_arguments)]
    fn backward(
        &self,
        ctx: &StepCtx<'_, T>,
        grads: &mut [T],
        xp: &[T],
        h_prev: &[T],
        c_prev: &[T],
        rec: &[T],
        g: StepGrads<'_, T>,
    );
}

/// Calls `f` with the step implementation of the layer's cell kind.
fn with_cell<T: Real, R>(plan: &LayerPlan, f: impl FnOnce(&dyn CellStep<T>) -> R) -> R {
    match plan.cell {
        CellConfig::Elman { .. } => f(&ElmanCell),
        CellConfig::Jordan { .. } => f(&JordanCell),
        CellConfig::Lstm { .. } => f(&LstmCell),
        CellConfig::Gru { .. } => f(&GruCell),
    }
}

/// Widths of one step's cache record pieces.
struct Widths {
    gh: usize,
    r: usize,
    c: usize,
    cell: usize,
}

impl Widths {
    fn of<T: Real>(plan: &LayerPlan, cell: &dyn CellStep<T>) -> Self {
        Widths {
            gh: plan.gates * plan.hidden,
            r: plan.recurrent_input,
            c: plan.cell_state(),
            cell: cell.cache_width(plan),
        }
    }
    fn total(&self) -> usize {
        self.gh + self.r + self.c + self.cell
    }
}

/// Scalars of cache the CPU layer keeps: one record per direction and (t, b).
pub(crate) fn cache_len<T: Real>(plan: &LayerPlan, seq: &SeqShape) -> usize {
    with_cell::<T, _>(plan, |cell| {
        Widths::of(plan, cell).total() * plan.directions() * seq.time * seq.batch()
    })
}

/// Forward pass of a layer over all steps (see `Backend::layer_forward`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn layer_forward<T: Real>(
    plan: &LayerPlan,
    params: &[T],
    x: &[T],
    seq: &SeqShape,
    init: Option<StateBufs<'_, Vec<T>>>,
    y: &mut [T],
    last: StateBufsMut<'_, Vec<T>>,
    cache: &mut [T],
) {
    with_cell(plan, |cell| {
        let w = Widths::of(plan, cell);
        let (nb, nt, ni) = (seq.batch(), seq.time, plan.input);
        let out_w = plan.output_width();
        y.fill(T::zero());
        let StateBufsMut {
            h: last_h,
            c: mut last_c,
        } = last;
        for (d, off) in plan.dirs.iter().enumerate() {
            let ctx = StepCtx { plan, off, params };
            for b in 0..nb {
                let len = seq.lengths[b];
                let mut h = state_row(init.as_ref().map(|s| &s.h[..]), d, b, nb, w.r);
                let mut c = state_row(
                    init.as_ref().and_then(|s| s.c.map(|c| &c[..])),
                    d,
                    b,
                    nb,
                    w.c,
                );
                let mut out = vec![T::zero(); plan.output];
                let (mut h_next, mut c_next) = (h.clone(), c.clone());
                for s in 0..len {
                    let t = if d == 0 { s } else { len - 1 - s };
                    let at = ((d * nt + t) * nb + b) * w.total();
                    let rec = &mut cache[at..at + w.total()];
                    let (xp, rest) = rec.split_at_mut(w.gh);
                    let (hp, rest) = rest.split_at_mut(w.r);
                    let (cp, rest) = rest.split_at_mut(w.c);
                    // xp = W_ih x_t + b_ih
                    xp.copy_from_slice(&params[off.b_ih..off.b_ih + w.gh]);
                    let xt = &x[(t * nb + b) * ni..(t * nb + b + 1) * ni];
                    matvec_acc(xp, &params[off.w_ih..], w.gh, ni, xt);
                    if plan.recurrent {
                        hp.copy_from_slice(&h);
                        cp.copy_from_slice(&c);
                    } else {
                        hp.fill(T::zero());
                        cp.fill(T::zero());
                    }
                    cell.forward(&ctx, xp, hp, cp, &mut out, &mut h_next, &mut c_next, rest);
                    let yo = (t * nb + b) * out_w + d * plan.output;
                    y[yo..yo + plan.output].copy_from_slice(&out);
                    std::mem::swap(&mut h, &mut h_next);
                    std::mem::swap(&mut c, &mut c_next);
                }
                last_h[(d * nb + b) * w.r..(d * nb + b + 1) * w.r].copy_from_slice(&h);
                if let Some(lc) = last_c.as_deref_mut() {
                    lc[(d * nb + b) * w.c..(d * nb + b + 1) * w.c].copy_from_slice(&c);
                }
            }
        }
    })
}

/// Backpropagation through time for a layer (see `Backend::layer_backward`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn layer_backward<T: Real>(
    plan: &LayerPlan,
    params: &[T],
    x: &[T],
    seq: &SeqShape,
    cache: &[T],
    dy: &[T],
    dlast: Option<StateBufs<'_, Vec<T>>>,
    grads: &mut [T],
    mut dx: Option<&mut Vec<T>>,
    dinit: Option<StateBufsMut<'_, Vec<T>>>,
) {
    with_cell(plan, |cell| {
        let w = Widths::of(plan, cell);
        let (nb, nt, ni) = (seq.batch(), seq.time, plan.input);
        let out_w = plan.output_width();
        if let Some(dx) = dx.as_deref_mut() {
            dx.fill(T::zero());
        }
        let (mut dinit_h, mut dinit_c) = match dinit {
            Some(StateBufsMut { h, c }) => (Some(h), c),
            None => (None, None),
        };
        for (d, off) in plan.dirs.iter().enumerate() {
            let ctx = StepCtx { plan, off, params };
            for b in 0..nb {
                let len = seq.lengths[b];
                let mut dh = state_row(dlast.as_ref().map(|s| &s.h[..]), d, b, nb, w.r);
                let mut dc = state_row(
                    dlast.as_ref().and_then(|s| s.c.map(|c| &c[..])),
                    d,
                    b,
                    nb,
                    w.c,
                );
                let mut dxp = vec![T::zero(); w.gh];
                let (mut dh_prev, mut dc_prev) = (dh.clone(), dc.clone());
                for s in (0..len).rev() {
                    let t = if d == 0 { s } else { len - 1 - s };
                    let at = ((d * nt + t) * nb + b) * w.total();
                    let rec = &cache[at..at + w.total()];
                    let (xp, rest) = rec.split_at(w.gh);
                    let (hp, rest) = rest.split_at(w.r);
                    let (cp, rest) = rest.split_at(w.c);
                    let yo = (t * nb + b) * out_w + d * plan.output;
                    let g = StepGrads {
                        dout: &dy[yo..yo + plan.output],
                        dh: &dh,
                        dc: &dc,
                        dxp: &mut dxp,
                        dh_prev: &mut dh_prev,
                        dc_prev: &mut dc_prev,
                    };
                    cell.backward(&ctx, grads, xp, hp, cp, rest, g);
                    if !plan.recurrent {
                        // The previous state was not an input of this step.
                        dh_prev.fill(T::zero());
                        dc_prev.fill(T::zero());
                    }
                    // xp = W_ih x_t + b_ih
                    let xt = &x[(t * nb + b) * ni..(t * nb + b + 1) * ni];
                    outer_acc(&mut grads[off.w_ih..], w.gh, ni, &dxp, xt);
                    for (gb, v) in grads[off.b_ih..off.b_ih + w.gh].iter_mut().zip(&dxp) {
                        *gb = *gb + *v;
                    }
                    if let Some(dx) = dx.as_deref_mut() {
                        let row = &mut dx[(t * nb + b) * ni..(t * nb + b + 1) * ni];
                        matvec_t_acc(row, &params[off.w_ih..], w.gh, ni, &dxp);
                    }
                    std::mem::swap(&mut dh, &mut dh_prev);
                    std::mem::swap(&mut dc, &mut dc_prev);
                }
                if let Some(di) = dinit_h.as_deref_mut() {
                    di[(d * nb + b) * w.r..(d * nb + b + 1) * w.r].copy_from_slice(&dh);
                }
                if let Some(di) = dinit_c.as_deref_mut() {
                    di[(d * nb + b) * w.c..(d * nb + b + 1) * w.c].copy_from_slice(&dc);
                }
            }
        }
    })
}

/// Row `(d, b)` of a `[D, B, width]` state tensor, or zeros when there is none.
fn state_row<T: Real>(s: Option<&[T]>, d: usize, b: usize, nb: usize, width: usize) -> Vec<T> {
    match s {
        Some(s) => s[(d * nb + b) * width..(d * nb + b + 1) * width].to_vec(),
        None => vec![T::zero(); width],
    }
}
