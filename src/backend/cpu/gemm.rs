//! Plain matrix-vector loops used by the CPU reference (row-major weights `[rows, cols]`).
//!
//! The weight slices may run past the matrix (they start at a tensor's offset inside the
//! flat parameter array); only the first `rows * cols` elements are read or written.

use crate::backend::Real;

/// `out[r] += sum_k w[r, k] * v[k]` for `r < rows`.
pub(crate) fn matvec_acc<T: Real>(out: &mut [T], w: &[T], rows: usize, cols: usize, v: &[T]) {
    for (r, o) in out.iter_mut().enumerate().take(rows) {
        let row = &w[r * cols..(r + 1) * cols];
        *o = *o + row.iter().zip(v).map(|(a, b)| *a * *b).sum::<T>();
    }
}

/// `out[k] += sum_r w[r, k] * v[r]` (the transposed product `W^T v`).
pub(crate) fn matvec_t_acc<T: Real>(out: &mut [T], w: &[T], rows: usize, cols: usize, v: &[T]) {
    for (r, vr) in v.iter().enumerate().take(rows) {
        let row = &w[r * cols..(r + 1) * cols];
        for (o, a) in out.iter_mut().zip(row) {
            *o = *o + *a * *vr;
        }
    }
}

/// `g[r, k] += a[r] * b[k]` (accumulates an outer product into a gradient).
pub(crate) fn outer_acc<T: Real>(g: &mut [T], rows: usize, cols: usize, a: &[T], b: &[T]) {
    for (r, ar) in a.iter().enumerate().take(rows) {
        let row = &mut g[r * cols..(r + 1) * cols];
        for (gv, bv) in row.iter_mut().zip(b) {
            *gv = *gv + *ar * *bv;
        }
    }
}

/// `acc[i] += v[i]`.
pub(crate) fn add_into<T: Real>(acc: &mut [T], v: &[T]) {
    for (a, b) in acc.iter_mut().zip(v) {
        *a = *a + *b;
    }
}
