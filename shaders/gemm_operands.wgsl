// gemm_operands.wgsl: the parameter block, the A and B bindings and the operand loads shared
// by the large-tile matrix products (shaders/gemm128.wgsl, shaders/gemm_coop.wgsl). The host
// puts this file before the kernel file, which declares the chunk depth `const BK` (a
// multiple of 4), the tile's rows of A as `const AM4` vec4s (32: 128 rows; 64: 256 rows),
// bindings 3 (c) and 4 (bias), and its staging.
//
// Bindings (group 0):
//   0 uniform P           sizes, strides, flags, and the starts of up to 8 products (as
//                         gemm.wgsl: product z on the workgroups of workgroup_id.z)
//   1 a    vec4<f32>[]    read: element (m, k) at a_off + m * a_rs + k * a_cs
//   2 b    vec4<BT>[]     read: element (k, n) at b_off + k * b_rs + n * b_cs; BT, declared
//                         by the host, is f32 or f16 (an f16 layer cache)
// Element i of a flat buffer is component i % 4 of vec4 i / 4. Preconditions the host checks:
// one stride of A is 1 (A_K_CONTIGUOUS says which) and the other stride and a_off are
// multiples of 4; likewise for B (B_N_CONTIGUOUS). A tile is 4 AM4 rows of A by BK along k,
// loaded as AM4 * BK vec4 slots, and 128 columns of B by BK, loaded as 32 * BK slots.

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
@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b: array<vec4<BT>>;

/// True when A's k stride is 1 (A row-major), false when its m stride is 1 (A transposed).
override A_K_CONTIGUOUS: bool = true;
/// True when B's n stride is 1 (B row-major), false when its k stride is 1 (B transposed).
override B_N_CONTIGUOUS: bool = true;

fn a_elem(i: u32) -> f32 {
    return a[i >> 2u][i & 3u];
}

fn b_elem(i: u32) -> f32 {
    return f32(b[i >> 2u][i & 3u]);
}

/// Whether the tile at (m0, n0), 4 AM4 rows of C by 128 columns, lies wholly inside C and
/// K is whole chunks: every load slot of every chunk then lies inside A and B, and the
/// kernels load them without load_a's and load_b's edge arithmetic (a_load_at, b_load_at).
/// Uniform over the workgroup; true for every tile of the suite's large products.
fn tile_inside(m0: u32, n0: u32) -> bool {
    return m0 + 4u * AM4 <= p.m && n0 + 128u <= p.n && p.k % BK == 0u;
}

/// Where load slot `e` of A starts in its 4 AM4 x BK tile: (row m, k) from the tile's
/// corner. Slots run along the contiguous dimension first: BK / 4 slots per row of A when k
/// is contiguous, AM4 per k when m is; each covers 4 elements along it. load_a, a_load_at
/// and the kernels' staging all place slots by this.
fn a_load_mk(e: u32) -> vec2<u32> {
    if (A_K_CONTIGUOUS) {
        return vec2<u32>(e / (BK / 4u), (e % (BK / 4u)) * 4u);
    }
    return vec2<u32>((e % AM4) * 4u, e / AM4);
}

/// The same for load slot `e` of B in its BK x 128 tile: (k, column n). 32 slots per k
/// when n is contiguous, BK / 4 per column when k is.
fn b_load_kn(e: u32) -> vec2<u32> {
    if (B_N_CONTIGUOUS) {
        return vec2<u32>(e / 32u, (e % 32u) * 4u);
    }
    return vec2<u32>((e % (BK / 4u)) * 4u, e / (BK / 4u));
}

/// Where load slot `e` of A starts in the first chunk of a tile at row m0 that lies inside
/// (tile_inside), in vec4s of `a`; chunk kt's is kt a_chunk_step() vec4s further.
fn a_load_at(e: u32, m0: u32) -> u32 {
    let s = a_load_mk(e);
    return (start.a + (m0 + s.x) * p.a_rs + s.y * p.a_cs) >> 2u;
}

/// Vec4s of `a` between a load slot's elements in consecutive chunks (BK along k; a whole
/// number by the preconditions).
fn a_chunk_step() -> u32 {
    return BK * p.a_cs / 4u;
}

/// As a_load_at for B (the tile's columns from n0).
fn b_load_at(e: u32, n0: u32) -> u32 {
    let s = b_load_kn(e);
    return (start.b + s.x * p.b_rs + (n0 + s.y) * p.b_cs) >> 2u;
}

/// As a_chunk_step for B.
fn b_chunk_step() -> u32 {
    return BK * p.b_rs / 4u;
}

/// Four elements of A along its contiguous dimension, starting at tile-local load slot `e`
/// (0..AM4 * BK, placed by a_load_mk) of the 4 AM4 x BK tile at (m0, k0); zeros outside the
/// matrix.
fn load_a(e: u32, m0: u32, k0: u32) -> vec4<f32> {
    let s = a_load_mk(e);
    let m = m0 + s.x;
    let k = k0 + s.y;
    var room: u32; // elements of the 4 inside the matrix along the contiguous dimension
    if (A_K_CONTIGUOUS) {
        room = select(0u, min(4u, p.k - min(k, p.k)), m < p.m);
    } else {
        room = select(0u, min(4u, p.m - min(m, p.m)), k < p.k);
    }
    let base = start.a + m * p.a_rs + k * p.a_cs;
    if (room == 4u) {
        return a[base >> 2u];
    }
    var v = vec4<f32>(0.0);
    let step = select(p.a_rs, p.a_cs, A_K_CONTIGUOUS); // 1 by the precondition
    if (room > 0u) { v.x = a_elem(base); }
    if (room > 1u) { v.y = a_elem(base + step); }
    if (room > 2u) { v.z = a_elem(base + 2u * step); }
    return v;
}

/// Four elements of B along its contiguous dimension (slot `e` placed by b_load_kn), as
/// `load_a`.
fn load_b(e: u32, n0: u32, k0: u32) -> vec4<f32> {
    let s = b_load_kn(e);
    let k = k0 + s.x;
    let n = n0 + s.y;
    var room: u32;
    if (B_N_CONTIGUOUS) {
        room = select(0u, min(4u, p.n - min(n, p.n)), k < p.k);
    } else {
        room = select(0u, min(4u, p.k - min(k, p.k)), n < p.n);
    }
    let base = start.b + k * p.b_rs + n * p.b_cs;
    if (room == 4u) {
        return vec4<f32>(b[base >> 2u]);
    }
    var v = vec4<f32>(0.0);
    let step = select(p.b_rs, p.b_cs, B_N_CONTIGUOUS); // 1 by the precondition
    if (room > 0u) { v.x = b_elem(base); }
    if (room > 1u) { v.y = b_elem(base + step); }
    if (room > 2u) { v.z = b_elem(base + 2u * step); }
    return v;
}
