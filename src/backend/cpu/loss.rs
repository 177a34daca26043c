//! CPU reference of the task losses, each computing the mean loss and its gradient in one
//! pass: softmax cross-entropy (per step or per sequence) and mean squared error.

use crate::backend::{Real, SeqShape};

use super::activation::softmax;

/// Softmax cross-entropy averaged over the rows whose target is not `ignore`
/// (`rows_valid(r)` false rows are skipped too). Returns the loss; writes `dlogits`.
pub(crate) fn cross_entropy<T: Real>(
    logits: &[T],
    targets: &[u32],
    classes: usize,
    ignore: Option<u32>,
    row_valid: impl Fn(usize) -> bool,
    dlogits: &mut [T],
) -> T {
    dlogits.fill(T::zero());
    let counted: Vec<usize> = (0..targets.len())
        .filter(|&r| row_valid(r) && Some(targets[r]) != ignore)
        .collect();
    if counted.is_empty() {
        return T::zero();
    }
    let inv = T::one() / T::of(counted.len() as f64);
    let mut total = T::zero();
    for &r in &counted {
        let z = &logits[r * classes..(r + 1) * classes];
        let d = &mut dlogits[r * classes..(r + 1) * classes];
        softmax(z, d);
        let y = targets[r] as usize;
        // -log softmax(z)_y, computed from the logits for accuracy.
        let m = z.iter().fold(T::neg_infinity(), |a, &b| a.max(b));
        let lse = m + z.iter().map(|&v| (v - m).exp()).sum::<T>().ln();
        total = total + (lse - z[y]);
        d[y] = d[y] - T::one();
        d.iter_mut().for_each(|v| *v = *v * inv);
    }
    total * inv
}

/// Mean squared error over valid steps and all outputs (`torch.nn.MSELoss` over the valid
/// elements). Returns the loss; writes `dpred`.
pub(crate) fn mean_squared_error<T: Real>(
    pred: &[T],
    targets: &[T],
    width: usize,
    seq: &SeqShape,
    dpred: &mut [T],
) -> T {
    dpred.fill(T::zero());
    let nb = seq.batch();
    let count = seq.valid_steps() * width;
    let inv = T::one() / T::of(count as f64);
    let mut total = T::zero();
    for t in 0..seq.time {
        for b in (0..nb).filter(|&b| seq.valid(t, b)) {
            for j in 0..width {
                let i = (t * nb + b) * width + j;
                let e = pred[i] - targets[i];
                total = total + e * e;
                dpred[i] = T::of(2.0) * e * inv;
            }
        }
    }
    total * inv
}
