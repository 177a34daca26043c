// gemm_coop.wgsl: C = alpha * op(A) op(B) [+ C] [+ bias] on the adapter's matrix units
// (tensor cores) through wgpu's cooperative matrices: the reduced-precision product of
// `--precision f16`, the way cuDNN's tf32 mode rounds its operands. Same math, parameter
// block and preconditions as gemm128.wgsl; CPU twin: src/backend/cpu/gemm.rs. Each operand
// is rounded to f16 (10-bit mantissa, as tf32) when staged; products and sums are f32.
//
// Split (override SPLIT, `--gemm tensor-split`): the f32 product on the matrix units. Each
// scaled operand x is staged twice, as hi = f16(x) and as lo = f16(x - hi) (22 of f32's 24
// mantissa bits together), and every 16x16x16 step adds lo_A hi_B + hi_A lo_B + hi_A hi_B
// (three matrix products; lo_A lo_B, 2^-22 of the product, is left out), as Ootomo and
// Yokota (2022) recover single precision from f16 tensor cores. Within a chunk lo loses
// precision only where x is below 2^-3 (f16's normal range ends at 2^-14 = 2^-11 x 2^-3),
// at an absolute error below 2^-25: 2^-39 of the chunk's largest value, which the scaling
// below puts near 2^15. Product errors are then about 2^-22 relative to the sum of the
// terms' magnitudes, as an f32 GEMM's sums are.
//
// Range: f16 is normal only from 6.1e-5 to 65504, while gradients of a mean loss are often
// 1e-6 and smaller. So each 32-deep chunk of each operand is scaled by a power of two 2^ka
// (2^kb for B) that brings the chunk's largest magnitude into [2^14, 2^15) before rounding,
// and the chunk's products are scaled back by 2^-ka 2^-kb (exact: one multiply by their
// product where that is a normal f32, coop_scale.wgsl one_back, else the two in turn) as
// they are added to the f32 accumulators. Within a chunk, values down to 2^-28 of its
// largest keep f16's relative precision; smaller ones lose it, at an absolute error below
// 2^-38 of that largest value.
//
// This file is a template (src/backend/wgpu/codegen.rs expands its `// @generate` lines):
// the 8 accumulators of a subgroup are named variables, never a private array. The `coop_*`
// lines are wgpu's cooperative matrices, or for adapters without matrix units the same
// operations in plain WGSL (shaders/coop_emulated.wgsl), so that the rest of this file
// is tested everywhere (`Gpu::set_tensor_emulation`).
//
// Bindings (group 0; 0-2 and the operand loads are shaders/gemm_operands.wgsl, which the
// host puts before this file, with the chunk scales of shaders/coop_scale.wgsl):
//   0 uniform P           sizes, strides, offsets, flags (as gemm.wgsl)
//   1 a    vec4<f32>[]    read: element (m, k) at a_off + m * a_rs + k * a_cs
//   2 b    vec4<BT>[]     read: element (k, n) at b_off + k * b_rs + n * b_cs (BT f32 or f16)
//   3 c    f32[]          read_write: element (m, n) at c_off + m * c_rs + n
//   4 bias f32[]          read: bias[bias_off + n]
// Flags: bit 0 accumulate into C, bit 1 add bias[n].
//
// Needs: SHADER_F16, SUBGROUP and EXPERIMENTAL_COOPERATIVE_MATRIX with the 16x16x16
// f16 x f16 -> f32 configuration, and subgroups of exactly 32 invocations (the host checks
// all of it: `Gpu::has_tensor_cores`).
//
// Tiling: a workgroup of 256 invocations (8 subgroups) computes a 128x128 tile of C in
// chunks of BK = 32 along k. Subgroup s owns the 64x32 block at rows (s / 4) * 64 and
// columns (s % 4) * 32: 4 x 2 accumulators c{i}_{j} of 16x16 (coop_mat16x16<f32, C>).
// Each chunk is loaded from global memory as in gemm128 (four vec4 of each operand per
// invocation, the next chunk's loads issued before this chunk's products); its largest
// magnitudes are found with atomicMax on their bit patterns (which order like the values for
// non-negative floats) as soon as it is loaded, during the chunk before it, into the second
// of two slots per operand (so the scales cost no barrier of their own); it is scaled,
// rounded to f16 and staged row-major: A as
// [128][LDA] (k fastest), B as [BK][LDB] (n fastest); rows are padded by 8 halves so that
// every matrix load starts on a 16-byte boundary. Per 16-deep
// step a subgroup loads 4 A and 2 B matrices and does 8 multiply-adds into the chunk's
// accumulators t{i}_{j}, which are then scaled back and added to c{i}_{j}. At the end each
// accumulator goes through the subgroup's 16x16 f32 slot of workgroup memory (Cs), from
// where the subgroup's invocations apply alpha, bias and accumulation and store the rows
// and columns inside C. Workgroup memory: 26.5 KiB. Split: the lo halves of A and B are
// staged A_TILE and B_TILE halves after the hi ones (45 KiB), and per 16-deep step a
// subgroup loads 8 A and 4 B matrices and does 24 multiply-adds.

enable f16;
// @generate coop_enable

@group(0) @binding(3) var<storage, read_write> c: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;

const BK: u32 = 32u;
const AM4: u32 = 32u; // 128 rows of A per tile, in vec4s (shaders/gemm_operands.wgsl)
const LDA: u32 = 40u;
const LDB: u32 = 136u;
const SCALE_SLOTS: u32 = 2u; // one run of chunks (shaders/coop_scale.wgsl)
const A_TILE: u32 = 5120u; // 128 * LDA halves: A staged once
const B_TILE: u32 = 4352u; // BK * LDB halves: B staged once
const A_LO: u32 = A_TILE; // where the lo halves start (shaders/coop_scale.wgsl put_a)
const B_LO: u32 = B_TILE;

// Whether each operand is staged as hi and lo halves, for f32 accuracy (above).
override SPLIT: bool = false;
override AS_LEN: u32 = select(A_TILE, 2u * A_TILE, SPLIT);
override BS_LEN: u32 = select(B_TILE, 2u * B_TILE, SPLIT);

var<workgroup> As: array<f16, AS_LEN>; // [128][LDA] hi, then with SPLIT [128][LDA] lo
var<workgroup> Bs: array<f16, BS_LEN>; // [BK][LDB] hi, then with SPLIT [BK][LDB] lo
var<workgroup> Cs: array<f32, 2048>; // 8 subgroups x 16 x 16

/// Puts load slot `e` of A (as `load_a` numbers them) into the [128][LDA] staging tile.
fn stage_a(e: u32, v: vec4<f32>) {
    let s = a_load_mk(e);
    let i = s.x * LDA + s.y;
    if (A_K_CONTIGUOUS) {
        // Four k values of one row m.
        put_a(i, v.x);
        put_a(i + 1u, v.y);
        put_a(i + 2u, v.z);
        put_a(i + 3u, v.w);
    } else {
        // Four rows m at one k.
        put_a(i, v.x);
        put_a(i + LDA, v.y);
        put_a(i + 2u * LDA, v.z);
        put_a(i + 3u * LDA, v.w);
    }
}

/// Puts load slot `e` of B (as `load_b` numbers them) into the [BK][LDB] staging tile.
fn stage_b(e: u32, v: vec4<f32>) {
    let s = b_load_kn(e);
    let i = s.x * LDB + s.y;
    if (B_N_CONTIGUOUS) {
        // Four columns n at one k.
        put_b(i, v.x);
        put_b(i + 1u, v.y);
        put_b(i + 2u, v.z);
        put_b(i + 3u, v.w);
    } else {
        // Four k values of one column n.
        put_b(i, v.x);
        put_b(i + LDB, v.y);
        put_b(i + 2u * LDB, v.z);
        put_b(i + 3u * LDB, v.w);
    }
}

/// Writes the 16x16 block at (row0, col0) of C from the subgroup's slot `base` of Cs: alpha,
/// bias and accumulation, rows and columns outside C skipped. Invocation `lane` of the
/// subgroup's `size` takes elements lane, lane + size, ... (row-major).
fn store_block(row0: u32, col0: u32, base: u32, lane: u32, size: u32) {
    let accumulate = (p.flags & 1u) != 0u;
    let with_bias = (p.flags & 2u) != 0u;
    for (var e = lane; e < 256u; e += size) {
        let row = row0 + e / 16u;
        let col = col0 + e % 16u;
        if (row < p.m && col < p.n) {
            let i = start.c + row * p.c_rs + col;
            var x = p.alpha * Cs[base + e];
            if (with_bias) {
                x += bias[start.bias + col];
            }
            if (accumulate) {
                x += c[i];
            }
            c[i] = x;
        }
    }
}

@compute @workgroup_size(256, 1, 1)
fn gemm_coop(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
    // @generate coop_entry_ids
) {
    start = p.at[wid.z];
    // @generate coop_ids
    let m0 = wid.y * 128u;
    let n0 = wid.x * 128u;
    // The subgroup's 64x32 block of the tile.
    let wrow = (sg / 4u) * 64u;
    let wcol = (sg % 4u) * 32u;
    let sa_ld = LDA;
    let sb_ld = LDB;
    // @generate coop_acc_decl
    var pa0 = load_a(t, m0, 0u);
    var pa1 = load_a(t + 256u, m0, 0u);
    var pa2 = load_a(t + 512u, m0, 0u);
    var pa3 = load_a(t + 768u, m0, 0u);
    var pb0 = load_b(t, n0, 0u);
    var pb1 = load_b(t + 256u, n0, 0u);
    var pb2 = load_b(t + 512u, n0, 0u);
    var pb3 = load_b(t + 768u, n0, 0u);
    // The first chunk's largest magnitudes; the chunk after each one's are found while it
    // runs (after its loads), in the other slot.
    let abits0 = max(max(max_bits(pa0), max_bits(pa1)), max(max_bits(pa2), max_bits(pa3)));
    let bbits0 = max(max(max_bits(pb0), max_bits(pb1)), max(max_bits(pb2), max_bits(pb3)));
    scales_first(t, 0u, abits0, bbits0);
    let tiles = (p.k + BK - 1u) / BK;
    for (var kt = 0u; kt < tiles; kt++) {
        // The chunk's scales (its slot was filled before the last barrier).
        let slot = kt % 2u;
        let sc = scales_of(slot, 0);
        let sa = sc.to.x;
        let sb = sc.to.y;
        stage_a(t, pa0 * sa);
        stage_a(t + 256u, pa1 * sa);
        stage_a(t + 512u, pa2 * sa);
        stage_a(t + 768u, pa3 * sa);
        stage_b(t, pb0 * sb);
        stage_b(t + 256u, pb1 * sb);
        stage_b(t + 512u, pb2 * sb);
        stage_b(t + 768u, pb3 * sb);
        workgroupBarrier();
        scales_done(t, slot);
        if (kt + 1u < tiles) {
            let k1 = (kt + 1u) * BK;
            pa0 = load_a(t, m0, k1);
            pa1 = load_a(t + 256u, m0, k1);
            pa2 = load_a(t + 512u, m0, k1);
            pa3 = load_a(t + 768u, m0, k1);
            pb0 = load_b(t, n0, k1);
            pb1 = load_b(t + 256u, n0, k1);
            pb2 = load_b(t + 512u, n0, k1);
            pb3 = load_b(t + 768u, n0, k1);
            let abits = max(max(max_bits(pa0), max_bits(pa1)), max(max_bits(pa2), max_bits(pa3)));
            let bbits = max(max(max_bits(pb0), max_bits(pb1)), max(max_bits(pb2), max_bits(pb3)));
            scales_add(1u - slot, abits, bbits);
        }
        let back_a = sc.back.x;
        let back_b = sc.back.y;
        let back = one_back(sc);
        // @generate coop_mma
        // The staging tiles are overwritten next chunk.
        workgroupBarrier();
    }
    let cs = sg * 256u;
    let s16 = 16u;
    // @generate coop_store
}
