//! CPU reference of the input encodings: embedding gather / scatter-add and one-hot.

use crate::backend::{Real, SeqShape};
use crate::config::InputEncoding;
use crate::params::EncodePlan;

/// `x[t, b] = table[ids[t, b]]` (embedding) or the one-hot vector of `ids[t, b]`; zeros on
/// padding steps. Ids have been validated and mapped to the "other" slot already.
pub(crate) fn encode_forward<T: Real>(
    plan: &EncodePlan,
    params: &[T],
    ids: &[u32],
    seq: &SeqShape,
    x: &mut [T],
) {
    let (nb, w) = (seq.batch(), plan.width);
    x.fill(T::zero());
    for t in 0..seq.time {
        for b in 0..nb {
            if !seq.valid(t, b) {
                continue;
            }
            let id = ids[t * nb + b] as usize;
            let row = &mut x[(t * nb + b) * w..(t * nb + b + 1) * w];
            match (&plan.encoding, plan.table) {
                (InputEncoding::Embedding { .. }, Some(tab)) => {
                    row.copy_from_slice(&params[tab + id * w..tab + (id + 1) * w]);
                }
                (InputEncoding::OneHot { .. }, _) => row[id] = T::one(),
                _ => {}
            }
        }
    }
}

/// `dtable[ids[t, b]] += dx[t, b]` over valid steps (embedding only).
pub(crate) fn encode_backward<T: Real>(
    plan: &EncodePlan,
    ids: &[u32],
    seq: &SeqShape,
    dx: &[T],
    grads: &mut [T],
) {
    let Some(tab) = plan.table else { return };
    let (nb, w) = (seq.batch(), plan.width);
    for t in 0..seq.time {
        for b in 0..nb {
            if !seq.valid(t, b) {
                continue;
            }
            let id = ids[t * nb + b] as usize;
            let src = &dx[(t * nb + b) * w..(t * nb + b + 1) * w];
            for (g, v) in grads[tab + id * w..tab + (id + 1) * w].iter_mut().zip(src) {
                *g = *g + *v;
            }
        }
    }
}
