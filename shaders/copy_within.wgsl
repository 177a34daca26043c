// copy_within.wgsl: copies between ranges of one buffer, which the transfer command cannot
// make (WebGPU refuses a buffer copy whose source is its destination, and the parts of a
// joined buffer are one buffer): the layer pipeline's gate-gradient windows carry a chunk's
// first rows of dgh and of the scratch to where the next window reads them, every layer's
// in one dispatch (src/backend/wgpu/stack.rs). Host side: `Gpu::copy_within`, which `Gpu::copy` takes where
// source and destination share a buffer; its CPU twin is a slice's `copy_within`.
//
// Bindings (group 0), one invocation per 4-byte word i of the longest range (1-D grid of
// 256-wide groups), range r on the workgroups of workgroup_id.z:
//   0 uniform P   up to 8 ranges (n, src, dst): word offsets of ranges none of which
//                 overlaps another
//   1 x u32[]     read_write
// x[dst_r + i] = x[src_r + i] for i < n_r (the bits as they are: f32 or pairs of f16).

struct P {
    // (n, src, dst, unused) of range r.
    r: array<vec4<u32>, 8>,
}

@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read_write> x: array<u32>;

@compute @workgroup_size(256, 1, 1)
fn copy_within(@builtin(global_invocation_id) gid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_index(gid, nwg);
    let q = p.r[gid.z];
    if (i < q.x) {
        x[q.z + i] = x[q.y + i];
    }
}
