// dropout.wgsl: inverted dropout in place with the hash mask of src/dropout.rs
// (`keep`/`hash32`, bit-identical: 32-bit integer operations only). CPU twin: the `dropout`
// method of src/backend/cpu/mod.rs.
//
// Bindings (group 0), one invocation per element i in [first, n) (1-D grid of 256-wide
// groups; first > 0 for the layer pipeline's chunks of rows), element i stored at
// x[i - shift] (u32 arithmetic, wrapping; shift > 0 for a window of rows):
//   0 uniform P   n, seed_lo, seed_hi, p (drop probability), scale = 1 / (1 - p), first,
//                 shift
//   1 x f32[]     read_write
// h = hash32(hash32(i ^ seed_hi) ^ seed_lo); u = (h >> 8) / 2^24 in [0, 1);
// x[i] = u >= p ? x[i] * scale : 0. Padding elements are zero and stay zero.

struct P {
    n: u32, seed_lo: u32, seed_hi: u32, prob: f32,
    scale: f32, first: u32, shift: u32, pad2: u32,
}

@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;

// Chris Wellons' lowbias32 (u32 multiplication wraps in WGSL).
fn hash32(v: u32) -> u32 {
    var h = v;
    h ^= h >> 16u;
    h *= 0x7feb352du;
    h ^= h >> 15u;
    h *= 0x846ca68bu;
    h ^= h >> 16u;
    return h;
}

@compute @workgroup_size(256, 1, 1)
fn dropout(@builtin(global_invocation_id) gid: vec3<u32>,
           @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = p.first + linear_index(gid, nwg);
    if (i >= p.n) {
        return;
    }
    let h = hash32(hash32(i ^ p.seed_hi) ^ p.seed_lo);
    // Exact: a 24-bit integer times a power of two.
    let u = f32(h >> 8u) * (1.0 / 16777216.0);
    let at = i - p.shift;
    x[at] = select(0.0, x[at] * p.scale, u >= p.prob);
}
