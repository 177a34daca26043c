// copy_within.wgsl: copies between ranges of one buffer, which the transfer command cannot
// make (WebGPU refuses a buffer copy whose source is its destination, and the parts of a
// joined buffer are one buffer): the layer pipeline's gate-gradient windows carry a chunk's
// first rows of dgh and of the scratch to where the next window reads them
// (src/backend/wgpu/stack.rs). Host side: `Gpu::copy_within`, which `Gpu::copy` takes where
// source and destination share a buffer; its CPU twin is a slice's `copy_within`.
//
// Bindings (group 0), one invocation per 4-byte word i < n + n2 (1-D grid of 256-wide
// groups):
//   0 uniform P   n, src, dst, then n2, src2, dst2 (a second range, n2 = 0 where there is
//                 none): word offsets of ranges none of which overlaps another
//   1 x u32[]     read_write
// x[dst + i] = x[src + i] for i < n, x[dst2 + i - n] = x[src2 + i - n] after (the bits as
// they are: f32 or pairs of f16).

struct P {
    n: u32, src: u32, dst: u32, n2: u32,
    src2: u32, dst2: u32, pad0: u32, pad1: u32,
}

@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> x: array<u32>;

@compute @workgroup_size(256, 1, 1)
fn copy_within(@builtin(global_invocation_id) gid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_index(gid, nwg);
    if (i < p.n) {
        x[p.dst + i] = x[p.src + i];
    } else if (i < p.n + p.n2) {
        x[p.dst2 + i - p.n] = x[p.src2 + i - p.n];
    }
}
