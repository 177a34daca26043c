//! CPU reference of the linear head and of sequence pooling.

use crate::backend::{Real, SeqShape};
use crate::config::Pooling;
use crate::params::HeadPlan;

use super::gemm::{add_into, matvec_acc, matvec_t_acc, outer_acc};

/// Whether head row `r` exists: every row without a sequence shape, else step `(t, b)` valid.
fn row_valid(seq: Option<&SeqShape>, r: usize) -> bool {
    seq.is_none_or(|s| s.valid(r / s.batch(), r % s.batch()))
}

/// `logits[r] = W x[r] + b` for existing rows, zeros elsewhere.
pub(crate) fn head_forward<T: Real>(
    plan: &HeadPlan,
    params: &[T],
    x: &[T],
    rows: usize,
    seq: Option<&SeqShape>,
    logits: &mut [T],
) {
    let (ni, nc) = (plan.input, plan.classes);
    logits.fill(T::zero());
    for r in (0..rows).filter(|&r| row_valid(seq, r)) {
        let out = &mut logits[r * nc..(r + 1) * nc];
        out.copy_from_slice(&params[plan.b..plan.b + nc]);
        matvec_acc(out, &params[plan.w..], nc, ni, &x[r * ni..(r + 1) * ni]);
    }
}

/// Accumulates `dW += dlogits x^T`, `db += dlogits`; writes `dx = W^T dlogits`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn head_backward<T: Real>(
    plan: &HeadPlan,
    params: &[T],
    x: &[T],
    rows: usize,
    seq: Option<&SeqShape>,
    dlogits: &[T],
    grads: &mut [T],
    dx: &mut [T],
) {
    let (ni, nc) = (plan.input, plan.classes);
    dx.fill(T::zero());
    for r in (0..rows).filter(|&r| row_valid(seq, r)) {
        let dl = &dlogits[r * nc..(r + 1) * nc];
        outer_acc(&mut grads[plan.w..], nc, ni, dl, &x[r * ni..(r + 1) * ni]);
        add_into(&mut grads[plan.b..plan.b + nc], dl);
        matvec_t_acc(&mut dx[r * ni..(r + 1) * ni], &params[plan.w..], nc, ni, dl);
    }
}

/// For `Pooling::Last`, the step whose output direction `d` contributes for sequence `b`:
/// the forward direction ends at `len - 1`, the backward one at 0.
fn last_step(seq: &SeqShape, b: usize, d: usize) -> usize {
    if d == 0 { seq.lengths[b] - 1 } else { 0 }
}

/// Pools `[T, B, dirs*width]` to `[B, dirs*width]`.
pub(crate) fn pool_forward<T: Real>(
    mode: Pooling,
    x: &[T],
    seq: &SeqShape,
    dirs: usize,
    width: usize,
    pooled: &mut [T],
) {
    let (nb, f) = (seq.batch(), dirs * width);
    pooled.fill(T::zero());
    for b in 0..nb {
        for d in 0..dirs {
            let out = &mut pooled[b * f + d * width..b * f + (d + 1) * width];
            match mode {
                Pooling::Last => {
                    let t = last_step(seq, b, d);
                    let at = (t * nb + b) * f + d * width;
                    out.copy_from_slice(&x[at..at + width]);
                }
                Pooling::Mean => {
                    let len = seq.lengths[b];
                    for t in 0..len {
                        let at = (t * nb + b) * f + d * width;
                        add_into(out, &x[at..at + width]);
                    }
                    let inv = T::one() / T::of(len as f64);
                    out.iter_mut().for_each(|v| *v = *v * inv);
                }
            }
        }
    }
}

/// Backward of `pool_forward`: writes `dx` `[T, B, dirs*width]` (zeros where nothing pooled).
pub(crate) fn pool_backward<T: Real>(
    mode: Pooling,
    dpooled: &[T],
    seq: &SeqShape,
    dirs: usize,
    width: usize,
    dx: &mut [T],
) {
    let (nb, f) = (seq.batch(), dirs * width);
    dx.fill(T::zero());
    for b in 0..nb {
        for d in 0..dirs {
            let g = &dpooled[b * f + d * width..b * f + (d + 1) * width];
            match mode {
                Pooling::Last => {
                    let at = (last_step(seq, b, d) * nb + b) * f + d * width;
                    dx[at..at + width].copy_from_slice(g);
                }
                Pooling::Mean => {
                    let len = seq.lengths[b];
                    let inv = T::one() / T::of(len as f64);
                    for t in 0..len {
                        let at = (t * nb + b) * f + d * width;
                        for (o, v) in dx[at..at + width].iter_mut().zip(g) {
                            *o = *v * inv;
                        }
                    }
                }
            }
        }
    }
}
