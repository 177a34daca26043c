// gemm_store4.wgsl: the epilogue shared by the register-tiled large products
// (shaders/gemm128.wgsl, shaders/gemm256.wgsl): C = alpha * (the tile's sums) [+ bias[n]]
// [+ C], four columns at a time. The host puts it after shaders/gemm_operands.wgsl (whose
// parameter block `p` it reads) and before the kernel file. CPU twin:
// src/backend/cpu/gemm.rs.
//
// Bindings (group 0):
//   3 c    vec4<f32>[]    read_write: element (m, n) at c_off + m * c_rs + n
//   4 bias f32[]          read: bias[bias_off + n]
// Element i of a flat buffer is component i % 4 of vec4 i / 4. Preconditions the host
// checks: c_off and c_rs are multiples of 4. Flags: bit 0 accumulate into C, bit 1 add
// bias[n].

@group(0) @binding(3) var<storage, read_write> c: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;

/// Writes four results of row `row` from column `col` (a multiple of 4): alpha, bias,
/// accumulation; a whole vec4 store when all four columns are inside.
fn store4(row: u32, col: u32, v: vec4<f32>) {
    if (row >= p.m || col >= p.n) {
        return;
    }
    let accumulate = (p.flags & 1u) != 0u;
    let with_bias = (p.flags & 2u) != 0u;
    let i = p.c_off + row * p.c_rs + col;
    var r = p.alpha * v;
    if (col + 4u <= p.n) {
        if (with_bias) {
            let bi = p.bias_off + col;
            r += vec4<f32>(bias[bi], bias[bi + 1u], bias[bi + 2u], bias[bi + 3u]);
        }
        if (accumulate) {
            r += c[i >> 2u];
        }
        c[i >> 2u] = r;
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
