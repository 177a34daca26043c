//! The linear head (through the GEMM) and mean/last pooling (`shaders/pool.wgsl`); CPU twin
//! `src/backend/cpu/head.rs`.

use super::gemm::{Mat, Out, col_sums, gemm};
use super::runtime::{Gpu, Shader};
use super::{GpuBuffer, WgpuBackend};
use crate::backend::SeqShape;
use crate::config::Pooling;
use crate::params::HeadPlan;

pub(super) static POOL: Shader = Shader {
    name: "pool",
    source: include_str!("../../../shaders/pool.wgsl"),
};

/// Records zeroing of the rows `r = t * B + b` of a `[rows, cols]` matrix whose step is
/// padding (`t >= lengths[b]`); records nothing for a batch without padding.
fn mask_rows(be: &WgpuBackend, seq: &SeqShape, m: &GpuBuffer, rows: usize, cols: usize) {
    let n = rows * cols;
    if n == 0 || seq.batch() == 0 || !seq.has_padding() {
        return;
    }
    let lengths = be.lengths(seq);
    let pipeline = be.gpu.pipeline(&POOL, "mask_rows", &[]);
    be.gpu.dispatch(
        &pipeline,
        &[
            n as u32,
            cols as u32,
            0,
            seq.batch() as u32,
            0,
            rows as u32,
            0,
            0,
        ],
        &[&lengths, m],
        Gpu::grid_1d(n, 256),
    );
}

/// `logits[r] = W x[r] + b` for existing rows, zeros on padding rows.
pub(super) fn head_forward(
    be: &WgpuBackend,
    plan: &HeadPlan,
    params: &GpuBuffer,
    x: &GpuBuffer,
    rows: usize,
    seq: Option<&SeqShape>,
    logits: &mut GpuBuffer,
) {
    let (ni, nc) = (plan.input, plan.classes);
    gemm(
        &be.gpu,
        rows,
        nc,
        ni,
        Mat::rows(x, 0, ni),
        Mat::t(params, plan.w, ni),
        Out {
            buf: logits,
            off: 0,
            rs: nc,
        },
        1.0,
        false,
        Some((params, plan.b)),
    );
    if let Some(seq) = seq {
        mask_rows(be, seq, logits, rows, nc);
    }
}

/// Accumulates `dW += dlogits^T x` and `db += column sums of dlogits` over existing rows and
/// writes `dx = dlogits W` (zeros on padding rows).
#[allow(clippy::too_many_arguments)]
pub(super) fn head_backward(
    be: &WgpuBackend,
    plan: &HeadPlan,
    params: &GpuBuffer,
    x: &GpuBuffer,
    rows: usize,
    seq: Option<&SeqShape>,
    dlogits: &GpuBuffer,
    grads: &mut GpuBuffer,
    dx: &mut GpuBuffer,
) {
    let (ni, nc) = (plan.input, plan.classes);
    // Padding rows take no part: work on a copy of dlogits with those rows zeroed (the loss
    // already writes zeros there, but the contract does not rely on it). A batch without
    // padding has no such rows, and dlogits is used as it is.
    let masked;
    let dl = match seq {
        Some(seq) if seq.has_padding() => {
            masked = be.gpu.buffer(rows * nc);
            be.gpu.copy(dlogits, 0, &masked, 0, rows * nc);
            mask_rows(be, seq, &masked, rows, nc);
            &masked
        }
        _ => dlogits,
    };
    // dW [nc, ni] += dl^T [nc, rows] x [rows, ni].
    gemm(
        &be.gpu,
        nc,
        ni,
        rows,
        Mat::t(dl, 0, nc),
        Mat::rows(x, 0, ni),
        Out {
            buf: grads,
            off: plan.w,
            rs: ni,
        },
        1.0,
        true,
        None,
    );
    // db [nc] += column sums of dl.
    col_sums(&be.gpu, Mat::rows(dl, 0, nc), rows, nc, grads, &[plan.b]);
    // dx [rows, ni] = dl [rows, nc] W [nc, ni]; zero rows of dl give zero rows of dx.
    gemm(
        &be.gpu,
        rows,
        ni,
        nc,
        Mat::rows(dl, 0, nc),
        Mat::rows(params, plan.w, ni),
        Out {
            buf: dx,
            off: 0,
            rs: ni,
        },
        1.0,
        false,
        None,
    );
}

/// The pooling mode's code in `shaders/pool.wgsl`.
fn mode_code(mode: Pooling) -> u32 {
    match mode {
        Pooling::Last => 0,
        Pooling::Mean => 1,
    }
}

/// Pools `[T, B, dirs*width]` to `[B, dirs*width]`.
pub(super) fn pool_forward(
    be: &WgpuBackend,
    mode: Pooling,
    x: &GpuBuffer,
    seq: &SeqShape,
    dirs: usize,
    width: usize,
    pooled: &mut GpuBuffer,
) {
    let (nb, f) = (seq.batch(), dirs * width);
    let n = nb * f;
    if n == 0 {
        return;
    }
    let lengths = be.lengths(seq);
    let pipeline = be.gpu.pipeline(&POOL, "pool_forward", &[]);
    // The mean's steps in pieces where the adapter caps a kernel's loops.
    let piece = match mode {
        Pooling::Mean => be.gpu.loop_piece(seq.time),
        Pooling::Last => seq.time.max(1),
    };
    for t0 in (0..seq.time.max(1)).step_by(piece) {
        let until = seq.time.min(t0 + piece);
        let words = pool_words(n, (f, width, nb), mode, t0..until);
        be.gpu.dispatch(
            &pipeline,
            &words,
            &[x, &lengths, pooled],
            Gpu::grid_1d(n, 256),
        );
    }
}

/// Backward of `pool_forward`: writes `dx` `[T, B, dirs*width]` (zeros where nothing pooled).
pub(super) fn pool_backward(
    be: &WgpuBackend,
    mode: Pooling,
    dpooled: &GpuBuffer,
    seq: &SeqShape,
    dirs: usize,
    width: usize,
    dx: &mut GpuBuffer,
) {
    let (nb, f) = (seq.batch(), dirs * width);
    let n = seq.time * nb * f;
    if n == 0 {
        return;
    }
    let lengths = be.lengths(seq);
    let pipeline = be.gpu.pipeline(&POOL, "pool_backward", &[]);
    let words = pool_words(n, (f, width, nb), mode, 0..0);
    be.gpu.dispatch(
        &pipeline,
        &words,
        &[dpooled, &lengths, dx],
        Gpu::grid_1d(n, 256),
    );
}

/// `shaders/pool.wgsl`'s `P` for `n` invocations over `[.., B, F]` steps of `width`-wide
/// directions (`(F, width, B)`), pooled by `mode`, the forward's sums over `steps`.
fn pool_words(
    n: usize,
    (f, width, nb): (usize, usize, usize),
    mode: Pooling,
    steps: std::ops::Range<usize>,
) -> [u32; 8] {
    let w = |v: usize| v as u32;
    let (t0, t1) = (w(steps.start), w(steps.end));
    [w(n), w(f), w(width), w(nb), mode_code(mode), 0, t0, t1]
}
