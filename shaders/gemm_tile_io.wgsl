// gemm_tile_io.wgsl: what the register-tiled large products (shaders/gemm128.wgsl,
// shaders/gemm256.wgsl) share around their arithmetic: staging a loaded chunk of A and B
// into workgroup memory, and the epilogue C = alpha * (the tile's sums) [+ bias[n]] [+ C],
// four columns at a time. The host puts it after shaders/gemm_operands.wgsl (whose
// parameter block `p`, load slots and layout constants it uses) and before the kernel
// file, which declares BK, AM4 and the staging buffers `As` ([BK][4 AM4] vec4 rows of A, m
// fastest) and `Bs` ([BK][128], n fastest), two of each, each row's vec4s in an order
// swizzled by k (a_slot, b_slot). CPU twin: src/backend/cpu/gemm.rs.
//
// Bindings (group 0):
//   3 c    vec4<f32>[]    read_write: element (m, n) at c_off + m * c_rs + n
//   4 bias f32[]          read: bias[bias_off + n]
// Element i of a flat buffer is component i % 4 of vec4 i / 4. Preconditions the host
// checks: c_off and c_rs are multiples of 4. Flags: bit 0 accumulate into C, bit 1 add
// bias[n].

@group(0) @binding(3) var<storage, read_write> c: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;

/// Where the vec4 of rows 4 q .. 4 q + 3 of A at chunk row k (< BK) is staged, from the
/// buffer's start: row k's AM4 vec4s in an order swizzled by k (q xor swizzle(k)).
fn a_slot(k: u32, q: u32) -> u32 {
    return k * AM4 + (q ^ swizzle(k));
}

/// The same for columns 4 q .. 4 q + 3 of B (rows of 32 vec4s).
fn b_slot(k: u32, q: u32) -> u32 {
    return k * 32u + (q ^ swizzle(k));
}

/// The order of a staged row's vec4s at chunk row k, so that the transposed staging's stores
/// fall on distinct banks: a warp stages 32 / (BK / 4) consecutive rows m of A (or columns n
/// of B), whose vec4s q span 8 / (BK / 4), at each of BK / 4 groups of 4 k rows; unswizzled
/// the groups' rows, AM4 (or 32) x 4 words apart, start in one bank (a 4-way conflict at BK
/// 16, 2-way at 8), and each group's xor moves its vec4s to 8 / (BK / 4) of their own. The
/// xor (below 16) keeps 16 vec4s apart what was, so the kernels' reads (vec4 ty + 16 i of a
/// row of A, tx + 16 i of B) stay one vec4 each, and a warp's 16 vec4s of B a permutation of
/// 16 consecutive ones. It is the same for the 4 rows k4 .. k4 + 3 of a group, which the
/// kernels' k loops take as a_slot(k4, q) + i AM4 and b_slot(k4, q) + 32 i.
fn swizzle(k: u32) -> u32 {
    return (k / 4u) * (32u / BK);
}

/// Puts load slot `e` of A (`load_a`) into the staging buffer at vec4 `buf`: a row of AM4
/// vec4s per k (a_slot).
fn stage_a(buf: u32, e: u32, v: vec4<f32>) {
    let s = a_load_mk(e);
    let q = s.x / 4u;
    if (A_K_CONTIGUOUS) {
        // Four k values of one row m: a column of the staged tile.
        let kk = s.y;
        let lane = s.x % 4u;
        As[buf + a_slot(kk, q)][lane] = v.x;
        As[buf + a_slot(kk + 1u, q)][lane] = v.y;
        As[buf + a_slot(kk + 2u, q)][lane] = v.z;
        As[buf + a_slot(kk + 3u, q)][lane] = v.w;
    } else {
        As[buf + a_slot(s.y, q)] = v;
    }
}

/// Puts load slot `e` of B (`load_b`) into the staging buffer at vec4 `buf`: a row of 32
/// vec4s (128 columns) per k (b_slot).
fn stage_b(buf: u32, e: u32, v: vec4<f32>) {
    let s = b_load_kn(e);
    let q = s.y / 4u;
    if (B_N_CONTIGUOUS) {
        Bs[buf + b_slot(s.x, q)] = v;
    } else {
        // Four k values of one column n.
        let kk = s.x;
        let lane = s.y % 4u;
        Bs[buf + b_slot(kk, q)][lane] = v.x;
        Bs[buf + b_slot(kk + 1u, q)][lane] = v.y;
        Bs[buf + b_slot(kk + 2u, q)][lane] = v.z;
        Bs[buf + b_slot(kk + 3u, q)][lane] = v.w;
    }
}

/// Writes four results of row `row` from column `col` (a multiple of 4): alpha, bias,
/// accumulation; a whole vec4 store when all four columns are inside.
fn store4(row: u32, col: u32, v: vec4<f32>) {
    if (row >= p.m || col >= p.n) {
        return;
    }
    let accumulate = (p.flags & 1u) != 0u;
    let with_bias = (p.flags & 2u) != 0u;
    let i = start.c + row * p.c_rs + col;
    // A value, not a variable: the tail below indexes it by j, which a variable would
    // only allow through local memory (tests/shader_style.rs).
    let r = p.alpha * v;
    if (col + 4u <= p.n) {
        var r4 = r;
        if (with_bias) {
            let bi = start.bias + col;
            r4 += vec4<f32>(bias[bi], bias[bi + 1u], bias[bi + 2u], bias[bi + 3u]);
        }
        if (accumulate) {
            r4 += c[i >> 2u];
        }
        c[i >> 2u] = r4;
        return;
    }
    for (var j = 0u; j < p.n - col; j++) {
        var x = r[j];
        if (with_bias) {
            x += bias[start.bias + col + j];
        }
        if (accumulate) {
            x += c[(i + j) >> 2u][(i + j) & 3u];
        }
        c[(i + j) >> 2u][(i + j) & 3u] = x;
    }
}
