//! CPU reference of the input encodings: embedding-bag gather / scatter-add and one-hot
//! (multi-hot for bags of several ids).

use crate::backend::{Real, SeqShape, TokenBags};
use crate::config::InputEncoding;
use crate::params::EncodePlan;

/// `x[t, b] = sum over the bag of (t, b) of table[id]` (embedding) or of the one-hot vectors
/// of its ids; zeros on padding steps. Ids have been validated and mapped to "other" already.
pub(crate) fn encode_forward<T: Real>(
    plan: &EncodePlan,
    params: &[T],
    tokens: &TokenBags,
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
            let r = t * nb + b;
            let row = &mut x[r * w..(r + 1) * w];
            for &id in tokens.bag(r) {
                let id = id as usize;
                match (&plan.encoding, plan.table) {
                    (InputEncoding::Embedding { .. }, Some(tab)) => {
                        for (v, e) in row
                            .iter_mut()
                            .zip(&params[tab + id * w..tab + (id + 1) * w])
                        {
                            *v = *v + *e;
                        }
                    }
                    (InputEncoding::OneHot { .. }, _) => row[id] = row[id] + T::one(),
                    _ => {}
                }
            }
        }
    }
}

/// `dtable[id] += dx[t, b]` for every id in the bag of every valid step (embedding only).
pub(crate) fn encode_backward<T: Real>(
    plan: &EncodePlan,
    tokens: &TokenBags,
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
            let r = t * nb + b;
            let src = &dx[r * w..(r + 1) * w];
            for &id in tokens.bag(r) {
                let id = id as usize;
                for (g, v) in grads[tab + id * w..tab + (id + 1) * w].iter_mut().zip(src) {
                    *g = *g + *v;
                }
            }
        }
    }
}
