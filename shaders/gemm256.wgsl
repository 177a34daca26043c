// gemm256.wgsl: C = alpha * op(A) op(B) [+ C] [+ bias], the tall-tile matrix product (256
// rows of C by 128 columns per workgroup) for the big GEMMs of a training step, a choice
// beside gemm128.wgsl (`--gemm tall`) with twice the outputs per invocation: more
// multiply-adds per shared-memory read and per barrier. Same math and parameter block as
// gemm.wgsl; CPU twin: src/backend/cpu/gemm.rs.
//
// This file is a template: the lines `// @generate NAME` are replaced by unrolled code from
// src/backend/wgpu/codegen.rs (private arrays indexed by a loop variable land in slow local
// memory on NVIDIA: 45x slower on the H100, ../shared/device/README.md). The accumulators
// are 32 named vec4 fields of a struct (Acc256). The block between `// @unroll kq 4` and
// `// @end unroll` is written once per k step of a group of 4 (kq = 0u .. 3u), so the k
// loop takes 4 steps a pass with constant staging offsets, and a driver that unrolls a
// loop of 2 passes has the whole chunk as straight code (BENCHMARKS.md, entry 43).
//
// Bindings (group 0; 0-2 and the loads along the contiguous dimension of each operand are
// shaders/gemm_operands.wgsl, 3-4, the staging and the stores shaders/gemm_tile_io.wgsl,
// which the host puts before this file):
//   0 uniform P           sizes, strides, offsets, flags (as gemm.wgsl)
//   1 a    vec4<f32>[]    read: element (m, k) at a_off + m * a_rs + k * a_cs
//   2 b    vec4<BT>[]     read: element (k, n) at b_off + k * b_rs + n * b_cs; BT, declared
//                         by the host before this file, is f32 or f16 (an f16 layer cache)
//   3 c    vec4<f32>[]    read_write: element (m, n) at c_off + m * c_rs + n
//   4 bias f32[]          read: bias[bias_off + n]
// Element i of a flat buffer is component i % 4 of vec4 i / 4 (buffers are sized in whole
// vec4s). Preconditions the host checks (as for gemm128.wgsl): one stride of A is 1
// (A_K_CONTIGUOUS says which) and the other stride and a_off are multiples of 4; likewise for
// B (B_N_CONTIGUOUS); c_off and c_rs are multiples of 4. Flags: bit 0 accumulate into C,
// bit 1 add bias[n].
//
// Tiling: a 16x16 workgroup computes a 256x128 tile of C in steps of BK = 8 along k.
// Invocation (tx, ty) owns rows {64 i + ty*4 .. 64 i + ty*4+3 : i = 0..3} and columns
// {tx*4 .. tx*4+3, 64+tx*4 .. 64+tx*4+3}: a 16x8 block in 32 vec4 accumulators acc{r}_{h}
// (row r = 4 i + lane, column half h). A is staged in workgroup memory as [BK][256] (m
// fastest) and B as [BK][128] (n fastest), each row's vec4s swizzled by k (a_slot, b_slot in
// gemm_tile_io.wgsl), so each k step reads 4 vec4 of A and 2 vec4 of B and does 32 vec4
// multiply-adds (gemm128: 4 reads, 16). Each invocation loads two vec4 of A
// and one of B per chunk along their contiguous dimensions; the next chunk's loads are
// issued before the current chunk's arithmetic (register prefetch) and staged into the second
// workgroup buffer after it (one barrier per chunk, 1024 multiply-adds per invocation between
// barriers, as gemm128's 16-deep chunks). Out-of-range elements load zeros and are not
// stored. Workgroup memory: 24 KiB.

const BK: u32 = 8u;
const AM4: u32 = 64u; // 256 rows of A per tile, in vec4s (shaders/gemm_operands.wgsl)

// Two staging buffers each: A [BK][256 / 4] at vec4 0 and 512, B [BK][128 / 4] at 0 and 256.
// The next chunk is staged into one while the current one is read.
var<workgroup> As: array<vec4<f32>, 1024>;
var<workgroup> Bs: array<vec4<f32>, 512>;

// The invocation's 16x8 block of sums: 32 named vec4s (never an array, so they stay in
// registers).
struct Acc256 {
    // @generate gemm256_acc_fields
}

// The next chunk's operands, loaded before the current chunk's arithmetic.
struct Next256 {
    a0: vec4<f32>,
    a1: vec4<f32>,
    b0: vec4<f32>,
}

// Where the invocation's load slots start (vec4s of a and b, first chunk) in a tile that
// lies inside (tile_inside).
struct At256 {
    a0: u32,
    a1: u32,
    b0: u32,
}

// Chunk kt (of `tiles`), staged in the buffers at vec4 `cur_a` (A) and `cur_b` (B), as
// gemm128_chunk: the next chunk's loads (from `at` where the tile lies inside), this chunk's
// products, the next chunk staged into the other buffers, a barrier; constant offsets at
// each call site.
fn gemm256_chunk(acc: ptr<function, Acc256>, next: ptr<function, Next256>, kt: u32,
                 tiles: u32, cur_a: u32, cur_b: u32, m0: u32, n0: u32, tx: u32, ty: u32,
                 inside: bool, at: At256) {
    let t = ty * 16u + tx;
    let more = kt + 1u < tiles;
    if (more) {
        if (inside) {
            let sa = (kt + 1u) * a_chunk_step();
            (*next).a0 = a[at.a0 + sa];
            (*next).a1 = a[at.a1 + sa];
            (*next).b0 = vec4<f32>(b[at.b0 + (kt + 1u) * b_chunk_step()]);
        } else {
            let k1 = (kt + 1u) * BK;
            (*next).a0 = load_a(t, m0, k1);
            (*next).a1 = load_a(t + 256u, m0, k1);
            (*next).b0 = load_b(t, n0, k1);
        }
    }
    // The chunk's BK k steps in groups of 4 written out (codegen.rs): the group's rows share
    // their swizzle, so each step's staging addresses are a constant past the group's.
    for (var k4 = 0u; k4 < BK; k4 += 4u) {
        let ra4 = cur_a + a_slot(k4, ty);
        let rb4 = cur_b + b_slot(k4, tx);
        // @unroll kq 4
        {
            let ra = ra4 + kq * AM4;
            let a0 = As[ra];
            let a1 = As[ra + 16u];
            let a2 = As[ra + 32u];
            let a3 = As[ra + 48u];
            let rb = rb4 + kq * 32u;
            let b0 = Bs[rb];
            let b1 = Bs[rb + 16u];
            // @generate gemm256_fma
        }
        // @end unroll
    }
    if (more) {
        stage_a(512u - cur_a, t, (*next).a0);
        stage_a(512u - cur_a, t + 256u, (*next).a1);
        stage_b(256u - cur_b, t, (*next).b0);
    }
    workgroupBarrier();
}

@compute @workgroup_size(16, 16, 1)
fn gemm256(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    start = p.at[wid.z];
    let m0 = wid.y * 256u;
    let n0 = wid.x * 128u;
    let tx = lid.x;
    let ty = lid.y;
    let t = ty * 16u + tx;
    var acc: Acc256;
    var next = Next256(load_a(t, m0, 0u), load_a(t + 256u, m0, 0u), load_b(t, n0, 0u));
    stage_a(0u, t, next.a0);
    stage_a(0u, t + 256u, next.a1);
    stage_b(0u, t, next.b0);
    workgroupBarrier();
    let tiles = (p.k + BK - 1u) / BK;
    let inside = tile_inside(m0, n0);
    let at = At256(a_load_at(t, m0), a_load_at(t + 256u, m0), b_load_at(t, n0));
    // Chunks in pairs: the even one from buffers 0, the odd one from buffers 1.
    for (var kt = 0u; kt < tiles; kt += 2u) {
        gemm256_chunk(&acc, &next, kt, tiles, 0u, 0u, m0, n0, tx, ty, inside, at);
        if (kt + 1u < tiles) {
            gemm256_chunk(&acc, &next, kt + 1u, tiles, 512u, 256u, m0, n0, tx, ty, inside, at);
        }
    }
    // @generate gemm256_store
}
