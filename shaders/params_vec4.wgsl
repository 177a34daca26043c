// params_vec4.wgsl: vec4 i of the parameters (floats 4 i .. 4 i + 3), for the f32 step tiles'
// aligned weight loads (W4 in shaders/step_tiles.wgsl), as one 16-byte load from the
// parameter buffer bound a second time, as vec4s (binding 11). Put between
// shaders/layer.wgsl and shaders/step_tiles.wgsl where the adapter has a ninth storage buffer
// per shader stage for it (the tiled backward takes eight others); else
// shaders/params_vec4_scalar.wgsl takes its place. CPU twin: none (a load).
@group(0) @binding(11) var<storage, read> params4: array<vec4<f32>>;

fn params_vec4(i: u32) -> vec4<f32> {
    return params4[i];
}
