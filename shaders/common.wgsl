// common.wgsl: prepended to every kernel file (see src/backend/wgpu/runtime.rs).
//
// Activation codes (config::Activation): 0 tanh, 1 relu, 2 linear, 3 sigmoid.
// `act(k, x)` applies one; `dact(k, y)` is its derivative written in terms of the output
// y = act(k, x), as the CPU twin (src/backend/cpu/activation.rs) computes it.
// `linear_index` recovers a 1-D invocation index from a grid spread over x and y
// (Gpu::grid_1d), for kernels of 256 invocations per workgroup.

const ACT_TANH: u32 = 0u;
const ACT_RELU: u32 = 1u;
const ACT_LINEAR: u32 = 2u;
const ACT_SIGMOID: u32 = 3u;

// tanh without overflow for large |x| (exp of a non-positive number only).
fn tanh_stable(x: f32) -> f32 {
    let e = exp(-2.0 * abs(x));
    return sign(x) * (1.0 - e) / (1.0 + e);
}

fn sigmoid(x: f32) -> f32 {
    return 1.0 / (1.0 + exp(-x));
}

fn act(k: u32, x: f32) -> f32 {
    switch k {
        case 0u: { return tanh_stable(x); }
        case 1u: { return max(x, 0.0); }
        case 3u: { return sigmoid(x); }
        default: { return x; }
    }
}

fn dact(k: u32, y: f32) -> f32 {
    switch k {
        case 0u: { return 1.0 - y * y; }
        case 1u: { return select(0.0, 1.0, y > 0.0); }
        case 3u: { return y * (1.0 - y); }
        default: { return 1.0; }
    }
}

fn linear_index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 256u;
}
