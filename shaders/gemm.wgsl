// gemm.wgsl: C = alpha * op(A) op(B) [+ C] [+ bias], a tiled, register-blocked matrix
// product. CPU twin: src/backend/cpu/gemm.rs (and gemm_ref in src/backend/wgpu/gemm.rs).
//
// Bindings (group 0):
//   0 uniform P     sizes, strides, offsets, flags
//   1 a    f32[]    read: element (m, k) at a_off + m * a_rs + k * a_cs
//   2 b    BT[]     read: element (k, n) at b_off + k * b_rs + n * b_cs; BT, declared by
//                   the host before this file, is f32 or f16 (an f16 layer cache)
//   3 c    f32[]    read_write: element (m, n) at c_off + m * c_rs + n
//   4 bias f32[]    read: bias[bias_off + n]
// Strides express the transposes BPTT needs (A^T: swap a_rs and a_cs) without copies.
// One dispatch may run up to 8 independent products that differ only in a_off, b_off,
// c_off and bias_off (their `Starts`, P.at[z] for the workgroups of workgroup_id.z): the
// layer pipeline's products of several layers at once (src/backend/wgpu/gemm.rs, Products).
// Flags: bit 0 accumulate into C (C += ...), bit 1 add bias[n].
//
// Tiling: a 16x16 workgroup computes a 64x64 tile of C; each invocation owns a 4x4 block
// held in four vec4 accumulators (rows), fed from 64x16 (A) and 16x64 (B) tiles staged in
// workgroup memory. Out-of-range rows/columns load zeros and are not stored.

// Where one product's operands start: a_off, b_off, c_off and bias_off.
struct Starts {
    a: u32, b: u32, c: u32, bias: u32,
}

// A dispatch runs up to 8 independent products of one shape and layout over the same
// buffers, product z on the workgroups of workgroup_id.z: all but their starts are shared.
struct P {
    m: u32, n: u32, k: u32, flags: u32,
    a_rs: u32, a_cs: u32, b_rs: u32, b_cs: u32,
    c_rs: u32, alpha: f32, pad0: u32, pad1: u32,
    at: array<Starts, 8>,
}

@group(0) @binding(0) var<uniform> p: P;

// The starts of this workgroup's product (p.at[workgroup_id.z]), set first by the entry point.
var<private> start: Starts;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<BT>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;

const TM: u32 = 64u;
const TN: u32 = 64u;
const TK: u32 = 16u;

var<workgroup> As: array<f32, 1024>; // [TK][TM]
var<workgroup> Bs: array<f32, 1024>; // [TK][TN]

fn store_row(row: u32, col: u32, v: vec4<f32>) {
    if (row >= p.m) {
        return;
    }
    let accumulate = (p.flags & 1u) != 0u;
    let with_bias = (p.flags & 2u) != 0u;
    let base = start.c + row * p.c_rs;
    for (var j = 0u; j < 4u; j++) {
        let n = col + j;
        if (n < p.n) {
            var r = p.alpha * v[j];
            if (with_bias) {
                r += bias[start.bias + n];
            }
            if (accumulate) {
                r += c[base + n];
            }
            c[base + n] = r;
        }
    }
}

@compute @workgroup_size(16, 16, 1)
fn gemm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    start = p.at[wid.z];
    let m0 = wid.y * TM;
    let n0 = wid.x * TN;
    let t = lid.y * 16u + lid.x;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    let tiles = (p.k + TK - 1u) / TK;
    for (var kt = 0u; kt < tiles; kt++) {
        let k0 = kt * TK;
        for (var i = 0u; i < 4u; i++) {
            let e = t + i * 256u;
            // A tile element (mm, kk), stored at kk * TM + mm.
            let mm = e % TM;
            let kk = e / TM;
            let gm = m0 + mm;
            let gk = k0 + kk;
            var av = 0.0;
            if (gm < p.m && gk < p.k) {
                av = a[start.a + gm * p.a_rs + gk * p.a_cs];
            }
            As[kk * TM + mm] = av;
            // B tile element (kk, nn), stored at kk * TN + nn.
            let nn = e % TN;
            let gn = n0 + nn;
            var bv = 0.0;
            if (gn < p.n && gk < p.k) {
                bv = f32(b[start.b + gk * p.b_rs + gn * p.b_cs]);
            }
            Bs[kk * TN + nn] = bv;
        }
        workgroupBarrier();
        let ra = lid.y * 4u;
        let cb = lid.x * 4u;
        for (var kk = 0u; kk < TK; kk++) {
            let ai = kk * TM + ra;
            let bi = kk * TN + cb;
            let av = vec4<f32>(As[ai], As[ai + 1u], As[ai + 2u], As[ai + 3u]);
            let bv = vec4<f32>(Bs[bi], Bs[bi + 1u], Bs[bi + 2u], Bs[bi + 3u]);
            acc0 += av.x * bv;
            acc1 += av.y * bv;
            acc2 += av.z * bv;
            acc3 += av.w * bv;
        }
        workgroupBarrier();
    }
    let row = m0 + lid.y * 4u;
    let col = n0 + lid.x * 4u;
    store_row(row, col, acc0);
    store_row(row + 1u, col, acc1);
    store_row(row + 2u, col, acc2);
    store_row(row + 3u, col, acc3);
}
