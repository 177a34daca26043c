// gemm128.wgsl: C = alpha * op(A) op(B) [+ C] [+ bias], the large-tile matrix product for the
// big GEMMs of a training step (input projections of all steps, dX, the weight gradients
// over all steps). Same math and parameter block as gemm.wgsl; CPU twin:
// src/backend/cpu/gemm.rs.
//
// This file is a template: the lines `// @generate NAME` are replaced by unrolled code from
// src/backend/wgpu/codegen.rs, because per-invocation accumulators kept in
// a private array indexed by a loop variable land in slow local memory on NVIDIA (45x slower
// on the H100, ../shared/device/README.md). The accumulators are 16 named vec4 fields of a
// struct (Acc128). The block between `// @unroll kq 4` and `// @end unroll` is written once
// per k step of a group of 4 (kq = 0u .. 3u), so the k loop takes 4 steps a pass with
// constant staging offsets, and a driver that unrolls a loop of 4 passes has the whole
// chunk as straight code (BENCHMARKS.md, entry 43).
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
// vec4s). Preconditions the host checks: one stride of A is 1 (A_K_CONTIGUOUS says which) and
// the other stride and a_off are multiples of 4; likewise for B (B_N_CONTIGUOUS); c_off and
// c_rs are multiples of 4. Flags: bit 0 accumulate into C, bit 1 add bias[n].
//
// Tiling: a 16x16 workgroup computes a 128x128 tile of C in steps of BK = 16 along k.
// Invocation (tx, ty) owns rows {ty*4 .. ty*4+3, 64+ty*4 .. 64+ty*4+3} and columns
// {tx*4 .. tx*4+3, 64+tx*4 .. 64+tx*4+3}: an 8x8 block in 16 vec4 accumulators acc{r}_{h}
// (row r, column half h). A is staged in workgroup memory as [BK][128] (m fastest) and B as
// [BK][128] (n fastest), each row's vec4s swizzled by k (gemm_tile_io.wgsl a_slot, b_slot),
// so each k step reads 2 vec4 of A and 2 vec4 of B and does 16 vec4 multiply-adds. Every invocation loads two vec4 of each operand from global memory along
// its contiguous dimension; the next tile's loads are issued before the current tile's
// arithmetic (register prefetch) and staged into the second workgroup buffer after it (one
// barrier per chunk). Out-of-range elements load zeros and are not stored. Workgroup
// memory: 32 KiB.

const BK: u32 = 16u;
const AM4: u32 = 32u; // 128 rows of A per tile, in vec4s (shaders/gemm_operands.wgsl)

// Two staging buffers of [BK][128 / 4] each (offsets 0 and 512): the next chunk is staged
// into one while the current one is read, so each chunk needs one barrier, not two.
var<workgroup> As: array<vec4<f32>, 1024>;
var<workgroup> Bs: array<vec4<f32>, 1024>;

// The invocation's 8x8 block of sums: 16 named vec4s (never an array, so they stay in
// registers).
struct Acc128 {
    // @generate gemm_acc_fields
}

// The next chunk's operands, loaded before the current chunk's arithmetic.
struct Next128 {
    a0: vec4<f32>,
    a1: vec4<f32>,
    b0: vec4<f32>,
    b1: vec4<f32>,
}

// Where the invocation's load slots start (vec4s of a and b, first chunk) in a tile that
// lies inside (tile_inside).
struct At128 {
    a0: u32,
    a1: u32,
    b0: u32,
    b1: u32,
}

// Chunk kt (of `tiles`), staged in the buffers at vec4 `cur`: loads chunk kt + 1 into
// `next` (from `at` where the tile lies inside, else through the edge checks of load_a and
// load_b), adds this chunk's products into `acc`, stages `next` into the other buffers (last
// read in the previous chunk, before its barrier), and waits for the workgroup. Called with
// a constant `cur` at each of its two call sites, so every staging address of the arithmetic
// is the same in each pass of the chunk loop.
fn gemm128_chunk(acc: ptr<function, Acc128>, next: ptr<function, Next128>, kt: u32,
                 tiles: u32, cur: u32, m0: u32, n0: u32, tx: u32, ty: u32, inside: bool,
                 at: At128) {
    let t = ty * 16u + tx;
    let more = kt + 1u < tiles;
    if (more) {
        if (inside) {
            let sa = (kt + 1u) * a_chunk_step();
            let sb = (kt + 1u) * b_chunk_step();
            (*next).a0 = a[at.a0 + sa];
            (*next).a1 = a[at.a1 + sa];
            (*next).b0 = vec4<f32>(b[at.b0 + sb]);
            (*next).b1 = vec4<f32>(b[at.b1 + sb]);
        } else {
            let k1 = (kt + 1u) * BK;
            (*next).a0 = load_a(t, m0, k1);
            (*next).a1 = load_a(t + 256u, m0, k1);
            (*next).b0 = load_b(t, n0, k1);
            (*next).b1 = load_b(t + 256u, n0, k1);
        }
    }
    // The chunk's BK k steps in groups of 4 written out (codegen.rs): the group's rows share
    // their swizzle, so each step's staging addresses are a constant past the group's.
    for (var k4 = 0u; k4 < BK; k4 += 4u) {
        let ra4 = cur + a_slot(k4, ty);
        let rb4 = cur + b_slot(k4, tx);
        // @unroll kq 4
        {
            let ra = ra4 + kq * AM4;
            let a0 = As[ra];
            let a1 = As[ra + 16u];
            let rb = rb4 + kq * 32u;
            let b0 = Bs[rb];
            let b1 = Bs[rb + 16u];
            // @generate gemm_fma
        }
        // @end unroll
    }
    if (more) {
        let other = 512u - cur;
        stage_a(other, t, (*next).a0);
        stage_a(other, t + 256u, (*next).a1);
        stage_b(other, t, (*next).b0);
        stage_b(other, t + 256u, (*next).b1);
    }
    workgroupBarrier();
}

@compute @workgroup_size(16, 16, 1)
fn gemm128(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    start = p.at[wid.z];
    let m0 = wid.y * 128u;
    let n0 = wid.x * 128u;
    let tx = lid.x;
    let ty = lid.y;
    let t = ty * 16u + tx;
    var acc: Acc128;
    var next = Next128(load_a(t, m0, 0u), load_a(t + 256u, m0, 0u), load_b(t, n0, 0u),
                       load_b(t + 256u, n0, 0u));
    stage_a(0u, t, next.a0);
    stage_a(0u, t + 256u, next.a1);
    stage_b(0u, t, next.b0);
    stage_b(0u, t + 256u, next.b1);
    workgroupBarrier();
    let tiles = (p.k + BK - 1u) / BK;
    let inside = tile_inside(m0, n0);
    let at = At128(a_load_at(t, m0), a_load_at(t + 256u, m0), b_load_at(t, n0),
                   b_load_at(t + 256u, n0));
    // Chunks in pairs: the even one from buffer 0, the odd one from buffer 1.
    for (var kt = 0u; kt < tiles; kt += 2u) {
        gemm128_chunk(&acc, &next, kt, tiles, 0u, m0, n0, tx, ty, inside, at);
        if (kt + 1u < tiles) {
            gemm128_chunk(&acc, &next, kt + 1u, tiles, 512u, m0, n0, tx, ty, inside, at);
        }
    }
    // @generate gemm_store
}
