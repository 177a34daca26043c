//! Inverted dropout with the hash mask of `crate::dropout` (`shaders/dropout.wgsl`).

use super::runtime::{Gpu, Shader};
use super::{GpuBuffer, WgpuBackend};

pub(super) static DROPOUT: Shader = Shader {
    name: "dropout",
    source: include_str!("../../../shaders/dropout.wgsl"),
};

/// Keeps element `i` of `x` (scaled by `1 / (1 - p)`) when `crate::dropout::keep(seed, i, p)`,
/// else zeroes it, exactly like `CpuBackend::dropout`.
pub(super) fn dropout(be: &WgpuBackend, x: &mut GpuBuffer, p: f32, seed: u64) {
    dropout_range(be, x, 0..x.len(), p, seed);
}

/// [`dropout`] on the elements `range` of `x` only (the mask of element `i` is the same).
pub(super) fn dropout_range(
    be: &WgpuBackend,
    x: &GpuBuffer,
    range: std::ops::Range<usize>,
    p: f32,
    seed: u64,
) {
    let at = range.start;
    dropout_window(be, x, range, at, p, seed);
}

/// [`dropout`] on the elements `range` of a tensor whose window `x` holds them from `at`
/// (the layer pipeline's chunk of rows of an output gradient): the mask is element
/// `range.start + i`'s, applied to `x[at + i]`.
pub(super) fn dropout_window(
    be: &WgpuBackend,
    x: &GpuBuffer,
    range: std::ops::Range<usize>,
    at: usize,
    p: f32,
    seed: u64,
) {
    if range.is_empty() {
        return;
    }
    // The CPU reference rounds 1 - p in f64 to f32 before dividing.
    let scale = 1.0f32 / (1.0 - p as f64) as f32;
    let pipeline = be.gpu.pipeline(&DROPOUT, "dropout", &[]);
    be.gpu.dispatch(
        &pipeline,
        &[
            range.end as u32,
            seed as u32,
            (seed >> 32) as u32,
            p.to_bits(),
            scale.to_bits(),
            range.start as u32,
            (range.start as u32).wrapping_sub(at as u32),
            0,
        ],
        &[x],
        Gpu::grid_1d(range.len(), 256),
    );
}
