//! The f16 copy of a layer's recurrent weights (`shaders/weights_f16.wgsl`; CPU twin in
//! `src/backend/cpu/weights_f16.rs`), which the rounded tensor-core steps read in place of
//! the f32 parameters: half the bytes of W_hh a step reads, the same f16 operands.

use super::runtime::{Gpu, GpuBuffer, Shader};

/// The copy kernels, after the exponent rule they share with the tensor-core products.
pub(super) static WEIGHTS_F16: Shader = Shader {
    name: "weights_f16",
    source: concat!(
        include_str!("../../../shaders/f16_range.wgsl"),
        include_str!("../../../shaders/weights_f16.wgsl")
    ),
};

/// Halves before the matrices in a copy (`HEAD` in the shader): one exponent per direction.
pub const WEIGHTS_F16_HEAD: usize = 2;

/// Most workgroups per matrix (the kernels loop over the rest).
const MAX_GROUPS: usize = 1024;

/// Records the f16 copy of the `len`-element matrices at offsets `at` (one per direction,
/// at most 2) of `params`: `[k_0, k_1, W_0 * 2^k_0 .., W_1 * 2^k_1 ..]` in f16, each k the
/// power of two that puts its matrix's largest magnitude in [2^14, 2^15). Needs
/// [`Gpu::has_f16`].
pub fn weights_f16(gpu: &Gpu, params: &GpuBuffer, at: &[usize], len: usize) -> GpuBuffer {
    let copy = gpu.buffer_f16_uninit(WEIGHTS_F16_HEAD + at.len() * len);
    weights_f16_into(gpu, params, at, len, &copy);
    copy
}

/// [`weights_f16`] into `copy`, an f16 buffer of at least `WEIGHTS_F16_HEAD + at.len() *
/// len` elements (the layer pipeline's part of one buffer for every layer's copy).
pub fn weights_f16_into(gpu: &Gpu, params: &GpuBuffer, at: &[usize], len: usize, copy: &GpuBuffer) {
    assert!(
        (1..=2).contains(&at.len()),
        "one or two directions, not {}",
        at.len()
    );
    let dirs = at.len();
    let groups = len.div_ceil(256).clamp(1, MAX_GROUPS);
    // Each workgroup's maximum, every one written by the first pass.
    let maxima = gpu.buffer_uninit(dirs * groups);
    let words = [len as u32, at[0] as u32, at[dirs - 1] as u32, groups as u32];
    let grid = [groups as u32, dirs as u32, 1];
    let max = gpu.pipeline(&WEIGHTS_F16, "weights_max", &[]);
    gpu.dispatch(&max, &words, &[params, &maxima], grid);
    let write = gpu.pipeline(&WEIGHTS_F16, "weights_copy", &[]);
    gpu.dispatch(&write, &words, &[params, &maxima, copy], grid);
    gpu.cost(2.0 * (dirs * len) as f64, 10.0 * (dirs * len) as f64);
}
