// step_coop.wgsl: the recurrent products of the tiled step kernels on the matrix units (tensor
// cores) through wgpu's cooperative matrices, operands rounded to f16 and sums in f32, as
// shaders/gemm_coop.wgsl does for the large products. The same interface as
// shaders/step_tiles.wgsl (tile_w_h: W_hh h_{t-1}; tile_wt_dgh: W_hh^T dgh_{t+1}; 16 sequences
// x TU units per workgroup, results handed out in the mapping shaders/layer.wgsl documents),
// put between layer.wgsl and a cell's file in its place. CPU twin: the cells' step loops in
// src/backend/cpu/ (f32 products); the f16 rounding of operands is the only difference.
//
// Forward, per tile: C [TB sequences][gates * TU] = H [TB][R] x B [R][gates * TU], where
// column n = g * TU + u of B is row g * H + u0 + u of W_hh. In chunks of TK = 16 along R: the
// states' chunk is staged as As [TB][LDA] (k fastest), the weights' as Bs [16][LDBF] (n
// fastest: W_hh rows are k-contiguous, so their loads are stored transposed). The gates * TU
// / 16 column blocks of 16 go to the TU / 8 subgroups of a row block of 16 sequences, two
// each (blocks sg and sg + TU / 8); a subgroup past the last block computes the last block
// again and stores it into the spare slot of Cs (GRU: 3 gates, Elman: 1), so that every
// subgroup runs the same matrix operations and none sits in a branch around them. TB is 16
// (one row block), or for the LSTM's forward 32 (SQ 8, `layer::coop_forward_quads`:
// tiles of half the units, the same workgroups, W_hh read once per 32 sequences): two row
// blocks, the first half of the subgroups on the first, the second on the second, and two
// groups of weight load slots, each half of the gates.
// Backward, per tile: C [16][TU] = D [16][G * H] x W_hh[:, u0..u0 + TU] (rows of W_hh are
// n-contiguous: staged as loaded, Bs [32][LDBB]), in chunks of 32 rows g. The TU / 16 column
// blocks times the two 16-deep halves of each chunk go to the TU / 8 subgroups (block
// sg % (TU / 16), half sg / (TU / 16)); the halves' sums are added when handed out.
//
// Range: each chunk of each operand is scaled by a power of two before rounding
// (shaders/coop_scale.wgsl, which the host puts before layer.wgsl), its maxima found while the
// chunk before it runs, into the second of two slots per operand, so the scales cost no
// barrier of their own; products are scaled back as they join the f32 accumulators.
// Hand-out: each subgroup stores its accumulators into its 16x16 slots of Cs ([slot][16][16],
// row-major: sequence, then column), from where every invocation reads its units' columns for
// its four sequences.
//
// This file is a template (src/backend/wgpu/codegen.rs expands its `// @generate
// step_coop_*` lines into cooperative-matrix operations, or for adapters without matrix units
// into the plain-WGSL ones of shaders/coop_emulated.wgsl, which the host then appends).
// Needs what gemm_coop.wgsl needs (`Gpu::has_tensor_cores`: 16x16x16 f16 x f16 -> f32,
// subgroups of exactly 32, f16); a subgroup is taken to be 32 consecutive local invocation
// indices (sg = l / 32), as on NVIDIA.
// K slices (KS > 1, as the f32 tiles': layer.wgsl): the workgroup has KS x 4 TU invocations;
// slice l / (4 TU) goes through its own run of a 1 / KS share of the chunks, in its own part
// of As and Bs and with its own scale slots, and after the loop the slices hand their sums
// out one after the other through Cs, slice 0's invocations (the lead ones) adding them in
// slice order. A step whose grid is small thus has KS times the warps per core, each
// walking 1 / KS of the chunks.
// Split (override SPLIT, `--step-kernel tensor-split`): the products at f32 accuracy, as
// gemm_coop.wgsl's split tile computes them: each scaled operand staged as hi = f16(x) and
// lo = f16(x - hi), a slice's lo halves A_SLICE (B_SLICE) halves after its hi ones, and each
// 16-deep product lo_A hi_B + hi_A lo_B + hi_A hi_B.
// Workgroup memory (`layer::coop_step_bytes`): per slice As 640 halves and Bs max(16 LDBF,
// 32 LDBB) halves (LDBF = 4 TU + 8, LDBB = TU + 8), twice that split, Cs (TU / 4 + 1) x 256
// floats, 4 atomic words per slice: at TU 64 and one slice 27152 bytes, the same as
// gemm_coop.wgsl; at TU 32 and four slices 31808 (split: 54336, two slices 31776).

enable f16;
// @generate coop_enable

const LDA: u32 = 40u;   // As row stride in halves (16 or 32 used; rows start 16-byte aligned)
override LDBF: u32 = 4u * TU + 8u; // forward Bs row stride: up to 4 gates x TU units, + 8
override LDBB: u32 = TU + 8u;      // backward Bs row stride: TU units, + 8
// Row blocks of 16 sequences of a forward tile (SQ 8: 32 sequences, two), and Cs slots per
// row block (a 16x16 block of 16 columns each: 4 gates x TU units).
override NR: u32 = SQ / 4u;
override RS: u32 = TU / 4u;
override SPARE: u32 = NR * RS;     // the Cs slot of blocks computed twice (never read)
// Halves of a K slice's As ([TB sequences][LDA]) and Bs (forward [16][LDBF], backward
// [32][LDBB]); the slices' parts follow one another.
override A_SLICE: u32 = 4u * SQ * LDA;
override B_SLICE: u32 = max(16u * LDBF, 32u * LDBB);
override A_LO: u32 = A_SLICE; // where a slice's lo halves start (coop_scale.wgsl put_a)
override B_LO: u32 = B_SLICE;
// Whether the operands are staged as hi and lo halves, for f32 accuracy (above); a slice's
// staging then spans twice its halves.
override SPLIT: bool = false;
override A_STRIDE: u32 = select(1u, 2u, SPLIT) * A_SLICE;
override B_STRIDE: u32 = select(1u, 2u, SPLIT) * B_SLICE;
override AS_LEN: u32 = KS * A_STRIDE;
override BS_LEN: u32 = KS * B_STRIDE;
override CS_LEN: u32 = (SPARE + 1u) * 256u;
override SCALE_SLOTS: u32 = 2u * KS; // two per slice (shaders/coop_scale.wgsl)

// Whether W_hh comes from the layer call's f16 copy (binding 11, shaders/weights_f16.wgsl:
// [k_0, k_1, W_0 2^k_0 .., W_1 2^k_1 ..] in f16) rather than the f32 parameters: half the
// bytes a step reads for it, and the same f16 operands up to powers of two (k_d, and the
// chunk scales, which leave an f16 rounding as it is). Its chunks are loaded and staged in
// f16 as they are, unscaled (w16_gates, w16_column_parts; until BENCHMARKS.md entry 55
// through f32 and back), and the products scaled back by 2^-k_d. Not with SPLIT, whose lo
// halves need the f32 weights; only in the build that declares the binding
// (shaders/weights_f16_read.wgsl; in its place weights_f16_absent.wgsl, where W16 stays
// false).
override W16: bool = false;
const W16_HEAD: u32 = 2u; // halves before the copy's matrices: k_0, k_1

// Where direction d's W_hh starts: in the parameters, for shaders/layer.wgsl's tile loads,
// or with W16 in the copy, for the f16 loads below.
fn w_source(d: u32) -> u32 {
    return select(w_hh(d), p.w16 + W16_HEAD + d * p.gh * p.rw, W16);
}

// The power of two direction d's weights carry as the steps read them (k_d from the copy;
// 0 from the parameters), which the chunk scales undo (coop_scale.wgsl scales_of).
fn w_exp(d: u32) -> i32 {
    return select(0, i32(w16_half(p.w16 + d)), W16);
}

// The largest magnitude of a forward weight chunk (gates_bits) for its scale; 0 with W16,
// whose weights are f16 already: they are staged as they are (a chunk scale of 1), and
// scaling them by a power of two would change no product.
fn w_gates_bits(v: Gates4) -> u32 {
    if (W16) {
        return 0u;
    }
    return gates_bits(v);
}

// The same for a backward weight chunk's two parts.
fn w_parts_bits(v: Parts4) -> u32 {
    if (W16) {
        return 0u;
    }
    return max(max_bits(v.p0), max_bits(v.p1));
}

var<workgroup> As: array<f16, AS_LEN>;
var<workgroup> Bs: array<f16, BS_LEN>;
var<workgroup> Cs: array<f32, CS_LEN>; // SPARE + 1 slots of 16 x 16

// The largest magnitude over the four gate registers, as the bits of an f32.
fn gates_bits(v: Gates4) -> u32 {
    return max(max(max_bits(v.g0), max_bits(v.g1)), max(max_bits(v.g2), max_bits(v.g3)));
}

// Stores element e (sequence e / width, column e % width) of a [TB][width] state or dgh
// chunk, already scaled, at column koff + e % width of As.
fn stage_a(e: u32, v: f32, width: u32, koff: u32) {
    put_a((e / width) * LDA + koff + e % width, v);
}

// Stores tile_states' lanes (elements l + i * stride, i < count) into As.
fn stage_a4(l: u32, stride: u32, count: u32, width: u32, koff: u32, v: vec4<f32>) {
    stage_a(l, v.x, width, koff);
    if (count > 1u) { stage_a(l + stride, v.y, width, koff); }
    if (count > 2u) {
        stage_a(l + 2u * stride, v.z, width, koff);
        stage_a(l + 3u * stride, v.w, width, koff);
    }
}

// Stores the load slot (w_rows) of `gate` (units l / 16 + i * TU / 4 at k = l % 16), already
// scaled, into the forward's Bs of a slice from b0: weight (k, gate, unit) at b0 + k * LDBF
// + gate * TU + unit.
fn stage_bf(gate: u32, l: u32, b0: u32, v: vec4<f32>) {
    let base = b0 + (l % TK) * LDBF + gate * TU + l / TK;
    let step = TU / 4u;
    put_b(base, v.x);
    put_b(base + step, v.y);
    put_b(base + 2u * step, v.z);
    put_b(base + 3u * step, v.w);
}

// Stores tile_w_gates' registers, scaled by s, into the forward's Bs of a slice from b0.
fn stage_bf_gates(l: u32, b0: u32, v: Gates4, gates: u32, s: f32) {
    stage_bf(0u, l, b0, v.g0 * s);
    if (gates > 1u) { stage_bf(1u, l, b0, v.g1 * s); }
    if (gates > 2u) { stage_bf(2u, l, b0, v.g2 * s); }
    if (gates > 3u) { stage_bf(3u, l, b0, v.g3 * s); }
}

// With W16 the weights go from the copy to Bs in f16, as they are (its chunks take a scale
// of 1: coop_scale.wgsl scales_of), through the load slots of layer.wgsl's tile loads
// (tile_w_gates forward, w_column_parts backward).
struct Gates4h {
    g0: vec4<f16>,
    g1: vec4<f16>,
    g2: vec4<f16>,
    g3: vec4<f16>,
}

// The copy's halves at i.
fn w16_4(i: vec4<u32>) -> vec4<f16> {
    return vec4<f16>(w16_half(i.x), w16_half(i.y), w16_half(i.z), w16_half(i.w));
}

// The same where ok, 0 elsewhere (masked lanes read element 0).
fn w16_4_edge(i: vec4<u32>, ok: vec4<bool>) -> vec4<f16> {
    return select(vec4<f16>(0.0h), w16_4(select(vec4<u32>(0u), i, ok)), ok);
}

// tile_w_gates from the copy: gate g's lanes at r.at + g H R + k0 + r.col; one test for all
// gates of whether the slot lies inside the matrix.
fn w16_gates(r: WRows, k0: u32, gates: u32) -> Gates4h {
    let i = r.at + vec4<u32>(k0 + r.col);
    let g = vec4<u32>(p.hidden * p.rw);
    let z = vec4<f16>(0.0h);
    var v = Gates4h(z, z, z, z);
    if (all(r.ok) && k0 + TK <= p.rw) {
        v.g0 = w16_4(i);
        if (gates > 1u) { v.g1 = w16_4(i + g); }
        if (gates > 2u) { v.g2 = w16_4(i + 2u * g); }
        if (gates > 3u) { v.g3 = w16_4(i + 3u * g); }
    } else {
        let ok = r.ok & vec4<bool>(k0 + r.col < p.rw);
        v.g0 = w16_4_edge(i, ok);
        if (gates > 1u) { v.g1 = w16_4_edge(i + g, ok); }
        if (gates > 2u) { v.g2 = w16_4_edge(i + 2u * g, ok); }
        if (gates > 3u) { v.g3 = w16_4_edge(i + 3u * g, ok); }
    }
    return v;
}

// A backward chunk's two parts of weights from the copy.
struct Parts2h {
    p0: vec4<f16>,
    p1: vec4<f16>,
}

// w_column_parts' two parts (p0 rows from g0, p1 from g0 + TK) from the copy.
fn w16_column_parts(c: WCol, g0: u32) -> Parts2h {
    let lanes = vec4<u32>(0u, 1u, 2u, 3u);
    let i = vec4<u32>(c.at + g0 * p.rw) + lanes * (c.step * p.rw);
    let i1 = i + vec4<u32>(TK * p.rw);
    if (c.ok && g0 + TK + c.dg + 3u * c.step < p.gh) {
        return Parts2h(w16_4(i), w16_4(i1));
    }
    let rows = lanes * c.step + vec4<u32>(g0 + c.dg);
    let ok = vec4<bool>(c.ok) & (rows < vec4<u32>(p.gh));
    let ok1 = vec4<bool>(c.ok) & (rows + vec4<u32>(TK) < vec4<u32>(p.gh));
    return Parts2h(w16_4_edge(i, ok), w16_4_edge(i1, ok1));
}

// Stores a gate's load slot from the copy into the forward's Bs (as stage_bf).
fn stage_bf16(gate: u32, l: u32, b0: u32, v: vec4<f16>) {
    let base = b0 + (l % TK) * LDBF + gate * TU + l / TK;
    let step = TU / 4u;
    Bs[base] = v.x;
    Bs[base + step] = v.y;
    Bs[base + 2u * step] = v.z;
    Bs[base + 3u * step] = v.w;
}

fn stage_bf16_gates(l: u32, b0: u32, v: Gates4h, gates: u32) {
    stage_bf16(0u, l, b0, v.g0);
    if (gates > 1u) { stage_bf16(1u, l, b0, v.g1); }
    if (gates > 2u) { stage_bf16(2u, l, b0, v.g2); }
    if (gates > 3u) { stage_bf16(3u, l, b0, v.g3); }
}

// Stores a backward load slot from the copy into Bs (as stage_bb).
fn stage_bb16(l: u32, b0: u32, g_off: u32, v: vec4<f16>) {
    let i = b0 + (g_off + l / TU) * LDBB + l % TU;
    Bs[i] = v.x;
    Bs[i + 4u * LDBB] = v.y;
    Bs[i + 8u * LDBB] = v.z;
    Bs[i + 12u * LDBB] = v.w;
}

// Stores the load slot (tile_wt_col: rows g_off + l / TU + 4 i, unit l % TU), already scaled,
// into the backward's Bs of a slice from b0: weight (g, unit) at b0 + g * LDBB + unit.
fn stage_bb(l: u32, b0: u32, g_off: u32, v: vec4<f32>) {
    let i = b0 + (g_off + l / TU) * LDBB + l % TU;
    put_b(i, v.x);
    put_b(i + 4u * LDBB, v.y);
    put_b(i + 8u * LDBB, v.z);
    put_b(i + 12u * LDBB, v.w);
}

// Column n of the tile's result for sequences m .. m + 3, from Cs's slots (column n of
// row block r = m / 16 is in slot r RS + n / 16).
fn cs_lanes(n: u32, m: u32) -> vec4<f32> {
    let i = ((m / 16u) * RS + n / 16u) * 256u + (m % 16u) * 16u + n % 16u;
    return vec4<f32>(Cs[i], Cs[i + 16u], Cs[i + 32u], Cs[i + 48u]);
}

// (W_hh h_{t-1}) at rows g * H + unit for g < gates (1 to 4) and the previous state of the
// tile's sequences at step p.s; zeros when not recurrent, for absent units and sequences.
fn tile_w_h(l: u32, wg: vec3<u32>, gates: u32) -> Gates4 {
    let d = wg.z;
    let u0 = wg.x * TU;
    let b0 = wg.y * TB;
    let w = w_source(d);
    let kw = w_exp(d);
    let threads = SQ * TU;
    var out = Gates4(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
    if (!recurrent()) {
        return out;
    }
    // K slice `slice` takes its own run of `per` chunks from k = `first`, staged from As[a0]
    // and Bs[b0s] (their lo halves A_LO and B_LO on), its scales in slots sbase and
    // sbase + 1; ls is the invocation's place in its slice, which loads and stages as a
    // workgroup of one slice would.
    let slice = l / threads;
    let ls = l % threads;
    let per = ((p.rw + TK - 1u) / TK + KS - 1u) / KS;
    let first = slice * per * TK;
    let a0 = slice * A_STRIDE;
    let b0s = slice * B_STRIDE;
    let sbase = 2u * slice;
    let sg = ls / 32u;
    let lane = ls % 32u;
    let nsg = threads / 32u;
    // With NR 2 the first half of the subgroups takes row block 0, the second row block 1:
    // subgroup sg's row block r and its place sgc among the row's rsg subgroups, which
    // take the row's column blocks two each, as one row's subgroups do with NR 1.
    let rsg = nsg / NR;
    let r = select(0u, sg / rsg, NR > 1u);
    let sgc = select(sg, sg % rsg, NR > 1u);
    let nb = gates * TU / 16u;
    let blk0 = min(sgc, nb - 1u);
    let blk1 = min(sgc + rsg, nb - 1u);
    let slot0 = select(SPARE, r * RS + sgc, sgc < nb);
    let slot1 = select(SPARE, r * RS + sgc + rsg, sgc + rsg < nb);
    let ar = a0 + r * 16u * LDA;
    let lda = LDA;
    let ldb = LDBF;
    let s16 = 16u;
    // @generate step_coop_fwd_acc
    let count = TB * TK / threads;
    // The weights' load slots: 4 TU of them take a chunk's gates; with SQ 8 two groups of
    // 4 TU invocations, each half of the gates (layer.wgsl load_slot, load_gates).
    let ls2 = load_slot(ls);
    let slot = ls2.x;
    let g = load_gates(ls2.y, gates, NR > 1u);
    let g0 = g.x;
    let ng = g.y;
    let bg = b0s + g0 * TU;
    let rows = w_rows(w + g0 * p.hidden * p.rw, u0, slot);
    let src = state_src(d, b0, ls, threads, count, TK, false, false);
    // The weights' registers: f32 from the parameters (wt), or f16 from the copy (wh).
    var wt: Gates4;
    var wh: Gates4h;
    if (W16) {
        wh = w16_gates(rows, first, ng);
    } else {
        wt = tile_w_gates(rows, first, ng);
    }
    var st = tile_states(src, first, count);
    scales_first(ls, sbase, max_bits(st), w_gates_bits(wt));
    for (var i = 0u; i < per; i++) {
        let sslot = sbase + i % 2u;
        let sc = scales_of(sslot, kw);
        stage_a4(ls, threads, count, TK, a0, st * sc.to.x);
        if (W16) {
            stage_bf16_gates(slot, bg, wh, ng);
        } else {
            stage_bf_gates(slot, bg, wt, ng, sc.to.y);
        }
        workgroupBarrier();
        scales_done(ls, sslot);
        if (i + 1u < per) {
            let k1 = first + (i + 1u) * TK;
            if (W16) {
                wh = w16_gates(rows, k1, ng);
            } else {
                wt = tile_w_gates(rows, k1, ng);
            }
            st = tile_states(src, k1, count);
            scales_add(sbase + 1u - i % 2u, max_bits(st), w_gates_bits(wt));
        }
        let back_a = sc.back.x;
        let back_b = sc.back.y;
        let back = one_back(sc);
        // @generate step_coop_fwd_mma
        // The staged chunk is overwritten next.
        workgroupBarrier();
    }
    // The slices' sums, one slice at a time through Cs (whole subgroups store or wait).
    let u = ls % TU;
    let m = 4u * (ls / TU);
    for (var s = 0u; s < KS; s++) {
        if (slice == s) {
            // @generate step_coop_fwd_store
        }
        workgroupBarrier();
        if (slice == 0u) {
            out.g0 += cs_lanes(u, m);
            if (gates > 1u) { out.g1 += cs_lanes(TU + u, m); }
            if (gates > 2u) { out.g2 += cs_lanes(2u * TU + u, m); }
            if (gates > 3u) { out.g3 += cs_lanes(3u * TU + u, m); }
        }
        if (s + 1u < KS) {
            workgroupBarrier();
        }
    }
    return out;
}

// (W_hh^T dgh_{t+1}) at column unit (< R = H) for the tile's sequences, over all G*H rows:
// the gradient reaching h_t from the next step; zeros when not recurrent, for absent units
// and sequences, and for sequences whose step p.s is their last.
fn tile_wt_dgh(l: u32, wg: vec3<u32>) -> vec4<f32> {
    let d = wg.z;
    let u0 = wg.x * TU;
    let b0 = wg.y * TB;
    let w = w_source(d);
    let kw = w_exp(d);
    let threads = 4u * TU;
    if (!recurrent()) {
        return vec4<f32>(0.0);
    }
    // K slices as tile_w_h's, in chunks of 2 TK rows.
    let slice = l / threads;
    let ls = l % threads;
    let per = ((p.gh + 2u * TK - 1u) / (2u * TK) + KS - 1u) / KS;
    let first = slice * per * 2u * TK;
    let a0 = slice * A_STRIDE;
    let b0s = slice * B_STRIDE;
    let sbase = 2u * slice;
    let sg = ls / 32u;
    let lane = ls % 32u;
    let nb = TU / 16u;
    let blk = sg % nb;
    let half = sg / nb;
    let slot0 = half * nb + blk;
    let lda = LDA;
    let ldb = LDBB;
    let s16 = 16u;
    // @generate step_coop_bwd_acc
    let count = TB * TK / threads;
    let col = tile_wt_col(w, u0, ls);
    let src = state_src(d, b0, ls, threads, count, TK, true, false);
    // Two parts of TK rows a chunk: weights wt.p0, wt.p1 and dgh st.p0, st.p1.
    var wt: Parts4;
    var wh: Parts2h;
    if (W16) {
        wh = w16_column_parts(col, first);
    } else {
        wt = w_column_parts(col, first, 2u);
    }
    var st = tile_state_parts(src, first, count, 2u);
    scales_first(ls, sbase, max(max_bits(st.p0), max_bits(st.p1)), w_parts_bits(wt));
    for (var i = 0u; i < per; i++) {
        let slot = sbase + i % 2u;
        let sc = scales_of(slot, kw);
        let sa = sc.to.x;
        let sb = sc.to.y;
        stage_a4(ls, threads, count, TK, a0, st.p0 * sa);
        stage_a4(ls, threads, count, TK, a0 + TK, st.p1 * sa);
        if (W16) {
            stage_bb16(ls, b0s, 0u, wh.p0);
            stage_bb16(ls, b0s, TK, wh.p1);
        } else {
            stage_bb(ls, b0s, 0u, wt.p0 * sb);
            stage_bb(ls, b0s, TK, wt.p1 * sb);
        }
        workgroupBarrier();
        scales_done(ls, slot);
        if (i + 1u < per) {
            let g1 = first + (i + 1u) * 2u * TK;
            if (W16) {
                wh = w16_column_parts(col, g1);
            } else {
                wt = w_column_parts(col, g1, 2u);
            }
            st = tile_state_parts(src, g1, count, 2u);
            let abits = max(max_bits(st.p0), max_bits(st.p1));
            scales_add(sbase + 1u - i % 2u, abits, w_parts_bits(wt));
        }
        let back_a = sc.back.x;
        let back_b = sc.back.y;
        let back = one_back(sc);
        // @generate step_coop_bwd_mma
        workgroupBarrier();
    }
    // The slices' sums as tile_w_h's; the second halves' slots follow the first halves':
    // column TU + u is unit u's.
    let u = ls % TU;
    let m = 4u * (ls / TU);
    var out = vec4<f32>(0.0);
    for (var s = 0u; s < KS; s++) {
        if (slice == s) {
            // @generate step_coop_bwd_store
        }
        workgroupBarrier();
        if (slice == 0u) {
            out += cs_lanes(u, m) + cs_lanes(TU + u, m);
        }
        if (s + 1u < KS) {
            workgroupBarrier();
        }
    }
    return out;
}
