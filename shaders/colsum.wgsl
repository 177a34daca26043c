// colsum.wgsl: column sums of a strided [rows, n] matrix added into a vector, the bias
// gradients (dst[at + j] += sum_r src[off + r * ld + j]). CPU twin: the bias sums in
// src/backend/cpu/layer.rs and head.rs (gemm against a ones vector, src/backend/cpu/gemm.rs).
//
// Two passes, so that a long column (rows = T * B, thousands) is spread over many
// workgroups instead of one loop per column. A dispatch runs up to 8 sums of one shape
// (rows, n, ld) side by side, sum z on the workgroups of workgroup_id.z with its own
// starts `p.s[z]` (off, part0, at, at2): the layers' or directions' bias gradients at once.
//   colsum_partial: workgroups (ceil(n / 256), S, sums); invocation j of group (x, s, z)
//     sums rows [s * per, min(rows, (s + 1) * per)) of column x * 256 + j of sum z in row
//     order into part[part0 + s * n + j] (part0 past the slices of the sums before it).
//     Consecutive invocations read consecutive columns (coalesced).
//   colsum_finish: one invocation per column j and sum z: dst[at + j] += sum over s of
//     part[part0 + s * n + j], in s order, and the same sum into dst[at2 + j] unless at2
//     is 0xffffffff (the two bias gradients of a cell whose dgh is dxp).
//
// Bindings (group 0):
//   0 uniform P   rows, n, ld, per (rows per slice), slices S, and each sum's starts
//   1 src  f32[] read (partial) / part f32[] read (finish)
//   2 part f32[] read_write (partial) / dst f32[] read_write (finish)

// Where one sum reads and writes: its rows' first element, its partial sums' first
// element, and the one or two places its sums go.
struct Sum {
    off: u32, part0: u32, at: u32, at2: u32,
}

struct P {
    rows: u32, n: u32, ld: u32, per: u32,
    slices: u32, pad0: u32, pad1: u32, pad2: u32,
    s: array<Sum, 8>,
}

@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn colsum_partial(@builtin(global_invocation_id) gid: vec3<u32>) {
    let j = gid.x;
    let s = gid.y;
    let q = p.s[gid.z];
    if (j >= p.n) {
        return;
    }
    let r0 = s * p.per;
    let r1 = min(p.rows, r0 + p.per);
    var acc = 0.0;
    for (var r = r0; r < r1; r++) {
        acc += src[q.off + r * p.ld + j];
    }
    dst[q.part0 + s * p.n + j] = acc;
}

@compute @workgroup_size(256, 1, 1)
fn colsum_finish(@builtin(global_invocation_id) gid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>) {
    let j = linear_index(gid, nwg);
    let q = p.s[gid.z];
    if (j >= p.n) {
        return;
    }
    var acc = 0.0;
    for (var s = 0u; s < p.slices; s++) {
        acc += src[q.part0 + s * p.n + j];
    }
    dst[q.at + j] += acc;
    if (q.at2 != 0xffffffffu) {
        dst[q.at2 + j] += acc;
    }
}
