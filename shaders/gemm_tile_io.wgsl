// gemm_tile_io.wgsl: what the register-tiled large products (shaders/gemm128.wgsl,
// shaders/gemm256.wgsl) share around their arithmetic: staging a loaded chunk of A and B
// into workgroup memory, and the epilogue C = alpha * (the tile's sums) [+ bias[n]] [+ C],
// four columns at a time. The host puts it after shaders/gemm_operands.wgsl (whose
// parameter block `p`, load slots and layout constants it uses) and before the kernel
// file, which declares BK, AM4 and the staging buffers `As` ([BK][4 AM4] vec4 rows of A, m
// fastest) and `Bs` ([BK][128], n fastest), two of each. CPU twin: src/backend/cpu/gemm.rs.
//
// Bindings (group 0):
//   3 c    vec4<f32>[]    read_write: element (m, n) at c_off + m * c_rs + n
//   4 bias f32[]          read: bias[bias_off + n]
// Element i of a flat buffer is component i % 4 of vec4 i / 4. Preconditions the host
// checks: c_off and c_rs are multiples of 4. Flags: bit 0 accumulate into C, bit 1 add
// bias[n].

@group(0) @binding(3) var<storage, read_write> c: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;

/// Puts load slot `e` of A (`load_a`) into the staging buffer at vec4 `buf`: a row of AM4
/// vec4s per k.
fn stage_a(buf: u32, e: u32, v: vec4<f32>) {
    if (A_K_CONTIGUOUS) {
        // Four k values of one row m: a column of the staged tile.
        let mm = e / (BK / 4u);
        let kk = (e % (BK / 4u)) * 4u;
        let q = mm / 4u;
        let lane = mm % 4u;
        As[buf + kk * AM4 + q][lane] = v.x;
        As[buf + (kk + 1u) * AM4 + q][lane] = v.y;
        As[buf + (kk + 2u) * AM4 + q][lane] = v.z;
        As[buf + (kk + 3u) * AM4 + q][lane] = v.w;
    } else {
        As[buf + e] = v;
    }
}

/// Puts load slot `e` of B (`load_b`) into the staging buffer at vec4 `buf`: a row of 32
/// vec4s (128 columns) per k.
fn stage_b(buf: u32, e: u32, v: vec4<f32>) {
    if (B_N_CONTIGUOUS) {
        Bs[buf + e] = v;
    } else {
        let nn = e / (BK / 4u);
        let kk = (e % (BK / 4u)) * 4u;
        let q = nn / 4u;
        let lane = nn % 4u;
        Bs[buf + kk * 32u + q][lane] = v.x;
        Bs[buf + (kk + 1u) * 32u + q][lane] = v.y;
        Bs[buf + (kk + 2u) * 32u + q][lane] = v.z;
        Bs[buf + (kk + 3u) * 32u + q][lane] = v.w;
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
    let i = p.c_off + row * p.c_rs + col;
    // A value, not a variable: the tail below indexes it by j, which a variable would
    // only allow through local memory (tests/shader_style.rs).
    let r = p.alpha * v;
    if (col + 4u <= p.n) {
        var r4 = r;
        if (with_bias) {
            let bi = p.bias_off + col;
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
            x += bias[p.bias_off + col + j];
        }
        if (accumulate) {
            x += c[(i + j) >> 2u][(i + j) & 3u];
        }
        c[(i + j) >> 2u][(i + j) & 3u] = x;
    }
}
