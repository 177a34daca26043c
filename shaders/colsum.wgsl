// colsum.wgsl: column sums of a strided [rows, n] matrix added into a vector, the bias
// gradients (dst[at + j] += sum_r src[off + r * ld + j]). CPU twin: the bias sums in
// src/backend/cpu/layer.rs and head.rs (gemm against a ones vector, src/backend/cpu/gemm.rs).
//
// Two passes, so that a long column (rows = T * B, thousands) is spread over many
// workgroups instead of one loop per column:
//   colsum_partial: workgroups (ceil(n / 256), S); invocation j of group (x, s) sums rows
//     [s * per, min(rows, (s + 1) * per)) of column x * 256 + j in row order into
//     part[part0 + s * n + j] (part0 > 0 for a later block of rows whose partial sums join
//     an earlier block's, the layer pipeline's chunks). Consecutive invocations read
//     consecutive columns (coalesced).
//   colsum_finish: one invocation per column j (1-D grid): dst[at + j] += sum over s of
//     part[s * n + j], in s order, and the same sum into dst[at2 + j] unless at2 is
//     0xffffffff (the two bias gradients of a cell whose dgh is dxp).
//
// Bindings (group 0):
//   0 uniform P   rows, n, ld, off, per (rows per slice), slices S, at, at2, part0
//   1 src  f32[] read (partial) / part f32[] read (finish)
//   2 part f32[] read_write (partial) / dst f32[] read_write (finish)

struct P {
    rows: u32, n: u32, ld: u32, off: u32,
    per: u32, slices: u32, at: u32, at2: u32,
    part0: u32, pad0: u32, pad1: u32, pad2: u32,
}

@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn colsum_partial(@builtin(global_invocation_id) gid: vec3<u32>) {
    let j = gid.x;
    let s = gid.y;
    if (j >= p.n) {
        return;
    }
    let r0 = s * p.per;
    let r1 = min(p.rows, r0 + p.per);
    var acc = 0.0;
    for (var r = r0; r < r1; r++) {
        acc += src[p.off + r * p.ld + j];
    }
    dst[p.part0 + s * p.n + j] = acc;
}

@compute @workgroup_size(256, 1, 1)
fn colsum_finish(@builtin(global_invocation_id) gid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>) {
    let j = linear_index(gid, nwg);
    if (j >= p.n) {
        return;
    }
    var acc = 0.0;
    for (var s = 0u; s < p.slices; s++) {
        acc += src[s * p.n + j];
    }
    dst[p.at + j] += acc;
    if (p.at2 != 0xffffffffu) {
        dst[p.at2 + j] += acc;
    }
}
