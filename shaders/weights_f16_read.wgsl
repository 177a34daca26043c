// weights_f16_read.wgsl: binding 11 of the tensor-core step build (shaders/step_coop.wgsl
// with W16): the layer call's f16 copy of W_hh (shaders/weights_f16.wgsl), for adapters with
// a ninth storage buffer per shader stage (`Gpu::spare_binding`; the backward takes eight
// others); else shaders/weights_f16_absent.wgsl takes its place. CPU twin: none (a load).
@group(0) @binding(11) var<storage, read> w16: array<f16>;

fn w16_half(i: u32) -> f16 {
    return w16[i];
}
