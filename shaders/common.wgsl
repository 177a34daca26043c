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

// tanh accurate to a few ulp everywhere: Lambert's continued fraction near 0 (where
// 1 - exp(-2|x|) would cancel), exp of a non-positive number elsewhere (no overflow).
fn tanh_stable(x: f32) -> f32 {
    let ax = abs(x);
    if (ax < 0.55) {
        let x2 = x * x;
        return x / (1.0 + x2 / (3.0 + x2 / (5.0 + x2 / (7.0 + x2 / (9.0 + x2 / 11.0)))));
    }
    let e = exp(-2.0 * ax);
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
