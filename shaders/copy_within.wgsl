// copy_within.wgsl: a copy between two ranges of one buffer, which the transfer command
// cannot make (WebGPU refuses a buffer copy whose source is its destination, and the parts of
// a joined buffer are one buffer): the layer pipeline's gate-gradient windows carry a
// chunk's first rows to where the next window reads them (src/backend/wgpu/stack.rs). Host
// side: `Gpu::copy`, which takes this kernel where source and destination share a buffer;
// its CPU twin is a slice's `copy_within`.
//
// Bindings (group 0), one invocation per 4-byte word i < n (1-D grid of 256-wide groups):
//   0 uniform P   n, src, dst: word offsets of ranges that do not overlap
//   1 x u32[]     read_write
// x[dst + i] = x[src + i] (the bits as they are: f32 or pairs of f16).

struct P {
    n: u32, src: u32, dst: u32, pad: u32,
}

@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> x: array<u32>;

@compute @workgroup_size(256, 1, 1)
fn copy_within(@builtin(global_invocation_id) gid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_index(gid, nwg);
    if (i >= p.n) {
        return;
    }
    x[p.dst + i] = x[p.src + i];
}
