// params_vec4_scalar.wgsl: vec4 i of the parameters (floats 4 i .. 4 i + 3), as
// shaders/params_vec4.wgsl gives it, for adapters with only WebGPU's 8 storage buffers per
// shader stage: four scalar loads from `params` (binding 1), no binding of its own. CPU twin:
// none (a load).
fn params_vec4(i: u32) -> vec4<f32> {
    let j = 4u * i;
    return vec4<f32>(params[j], params[j + 1u], params[j + 2u], params[j + 3u]);
}
