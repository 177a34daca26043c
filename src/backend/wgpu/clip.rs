//! Global gradient norm (two-level reduction) and clipping by norm or value, without a host
//! round-trip (`shaders/clip.wgsl`; CPU twin in `src/backend/cpu/optim.rs`).

use super::runtime::{Gpu, Shader};
use super::{GpuBuffer, WgpuBackend};

pub(super) static CLIP: Shader = Shader {
    name: "clip",
    source: include_str!("../../../shaders/clip.wgsl"),
};

/// Most workgroups of the first reduction level (the second level loops over them).
const MAX_PARTIALS: usize = 1024;

/// Writes `||grads||` into `norm[0]`; when `max_norm` is given and exceeded, scales `grads`
/// by `max_norm / norm` (read from the buffer on the GPU).
pub(super) fn clip_grad_norm(
    be: &WgpuBackend,
    grads: &mut GpuBuffer,
    max_norm: Option<f32>,
    norm: &mut GpuBuffer,
) {
    let n = grads.len();
    let groups = n.div_ceil(256).clamp(1, MAX_PARTIALS);
    let partials = be.gpu.buffer(groups);
    let limit = max_norm.unwrap_or(f32::INFINITY);
    let params = [n as u32, groups as u32, limit.to_bits(), 0];
    let first = be.gpu.pipeline(&CLIP, "sumsq_partials", &[]);
    be.gpu
        .dispatch(&first, &params, &[grads, &partials], [groups as u32, 1, 1]);
    be.gpu.cost(2.0 * n as f64, 4.0 * n as f64);
    let second = be.gpu.pipeline(&CLIP, "norm_finish", &[]);
    be.gpu
        .dispatch(&second, &params, &[&partials, norm], [1, 1, 1]);
    if max_norm.is_some() && n > 0 {
        let scale = be.gpu.pipeline(&CLIP, "scale_by_norm", &[]);
        be.gpu
            .dispatch(&scale, &params, &[norm, grads], Gpu::grid_1d(n, 256));
        be.gpu.cost(n as f64, 8.0 * n as f64);
    }
}

/// Clamps every gradient to `[-limit, limit]`.
pub(super) fn clip_grad_value(be: &WgpuBackend, grads: &mut GpuBuffer, limit: f32) {
    let n = grads.len();
    if n == 0 {
        return;
    }
    let pipeline = be.gpu.pipeline(&CLIP, "clamp_values", &[]);
    be.gpu.dispatch(
        &pipeline,
        &[n as u32, 0, limit.to_bits(), 0],
        &[grads],
        Gpu::grid_1d(n, 256),
    );
}
