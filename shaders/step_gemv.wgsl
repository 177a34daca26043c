// step_gemv.wgsl: the recurrent products of the tiled step kernels as matrix-vector products
// for few sequences (`--step-kernel gemv`, `StepProducts::Gemv`). The same interface as
// shaders/step_tiles.wgsl (tile_w_h: W_hh h_{t-1}; tile_wt_dgh: W_hh^T dgh_{t+1}; results
// handed out in the mapping shaders/layer.wgsl documents), put between layer.wgsl and a cell's
// file in its place. CPU twin: the cells' step loops in src/backend/cpu/ (the products are
// sums over the inner dimension).
//
// Why: at batch 1 a step reads all of W_hh (16 MiB at 1024 units) for one multiply-add per
// weight. The tiles stage W_hh through workgroup memory in a chain of chunks (a barrier pair
// and an L2 round trip each: 64 per step at 1024 units) for 16 sequence lanes, 15 of them
// idle, on H / 16 workgroups. Here each weight is loaded by exactly one invocation straight
// into a register, 16 loads in flight per invocation and no barrier between them, and only
// the 4 sequences' states (forward) or dgh (backward) go through workgroup memory.
//
// Geometry (the host's `Call::gemv_shape`): TB = 4 sequences per workgroup (the override of
// layer.wgsl: b0 = 4 wg.y; invocations l < TU lead, one unit each), TU units (8, or 4 on
// adapters with fewer than 512 invocations per workgroup), 4 * TU * KS invocations.
// - Forward (KS = 4 * gates, so 16 invocations per weight row): invocation l reads row
//   r = l / 16 of the tile (gate r / TU, unit u0 + r % TU) at k = c0 + l % 16 + 16 j, 16
//   weights per round; the 16 invocations of a row read 64 contiguous bytes per load.
// - Backward (KS = 4, 8 or 16: 4 KS = 16, 32 or 64 row lanes): invocation l reads column
//   u0 + l % TU at rows g = c0 + l / TU + 4 KS j, 16 per round; TU invocations read TU
//   contiguous floats of a row (32 bytes, one memory sector, at TU = 8).
// Per chunk of GC = 1024 k (forward) or rows g (backward) the 4 sequences' operands are
// staged as gsm[k][sequence] (16 KiB, zeros past the batch, the state or the sequence's
// steps), then each invocation runs over its weights of the chunk (its first round loaded
// before the staging, so the two latencies overlap; in the backward, whose 4 H rows are
// several chunks, before the previous chunk's staging and products). Afterwards gsm holds
// the partial sums (forward [row][16 k lanes], backward [row lane][TU]), which the lead
// invocations add in lane order; within a lane each round's 16 products are added in a fixed
// order, so the sums are the same from run to run.
// Units past the layer read the last unit's weights; their sums are never used.

const GL: u32 = 16u;   // k lanes per weight row in the forward
const GC: u32 = 1024u; // k values (forward) or rows g (backward) staged per chunk

// A staged chunk of the 4 sequences' operands ([k][sequence]), then the partial sums.
var<workgroup> gsm: array<vec4<f32>, 1024>;

// Where the tile's 4 sequences' operands come from at this step (state_src: lane i is
// sequence b0 + i at inner index 0): h_{t-1} (forward) or, with from_dgh, dgh of the next
// step. Worked out once a step, not once an element.
fn gemv_src(d: u32, b0: u32, from_dgh: bool) -> StateSrc {
    return state_src(d, b0, 0u, 1u, 4u, 1u, from_dgh, false);
}

// Stages the chunk at c0 of the tile's 4 sequences' operands (src: gemv_src) as
// gsm[k][sequence]: per k the sequences' loads and one vec4 store, 0 past the batch, the
// state or the sequence's steps.
fn gemv_stage(src: StateSrc, c0: u32, l: u32, threads: u32) {
    for (var k = l; k < GC; k += threads) {
        gsm[k] = tile_states(src, c0 + k, 4u);
    }
}

// W_hh element k of the row starting at `row`, 0 past the row's end.
fn gemv_w(row: u32, k: u32) -> f32 {
    return select(0.0, params[row + min(k, p.rw - 1u)], k < p.rw);
}

// W_hh element of row g of the column starting at `col`, 0 past the last row.
fn gemv_wt(col: u32, g: u32) -> f32 {
    return select(0.0, params[col + min(g, p.gh - 1u) * p.rw], g < p.gh);
}

// Four weights of a row at k, k + 16, k + 32, k + 48.
fn gemv_w4(row: u32, k: u32) -> vec4<f32> {
    return vec4<f32>(gemv_w(row, k), gemv_w(row, k + 16u), gemv_w(row, k + 32u),
                     gemv_w(row, k + 48u));
}

// gemv_w4 where all four are inside the row: no guards.
fn gemv_w4_in(row: u32, k: u32) -> vec4<f32> {
    let at = row + k;
    return vec4<f32>(params[at], params[at + 16u], params[at + 32u], params[at + 48u]);
}


// Four weights of a column at rows g + i * lanes, i = 0..3.
fn gemv_wt4(col: u32, g: u32, lanes: u32) -> vec4<f32> {
    return vec4<f32>(gemv_wt(col, g), gemv_wt(col, g + lanes), gemv_wt(col, g + 2u * lanes),
                     gemv_wt(col, g + 3u * lanes));
}

// gemv_wt4 where all four rows are inside the column: no guards.
fn gemv_wt4_in(col: u32, g: u32, lanes: u32) -> vec4<f32> {
    let at = col + g * p.rw;
    let step = lanes * p.rw;
    return vec4<f32>(params[at], params[at + step], params[at + 2u * step],
                     params[at + 3u * step]);
}

// One round's weights of an invocation (named registers, never an array): forward, its row
// at k + 64 i + 16 j in w{i} lane j; backward, its column at rows g + (4 i + j) lanes.
struct GemvRound {
    w0: vec4<f32>, w1: vec4<f32>, w2: vec4<f32>, w3: vec4<f32>,
}

// The forward round of the row at k, unguarded where the caller knows it `inside` the row.
fn gemv_round_w(row: u32, k: u32, inside: bool) -> GemvRound {
    if (inside) {
        return GemvRound(gemv_w4_in(row, k), gemv_w4_in(row, k + 64u),
                         gemv_w4_in(row, k + 128u), gemv_w4_in(row, k + 192u));
    }
    return GemvRound(gemv_w4(row, k), gemv_w4(row, k + 64u), gemv_w4(row, k + 128u),
                     gemv_w4(row, k + 192u));
}

// The backward round of the column at g, unguarded where the caller knows it `inside` the
// column.
fn gemv_round_wt(col: u32, g: u32, lanes: u32, inside: bool) -> GemvRound {
    if (inside) {
        return GemvRound(gemv_wt4_in(col, g, lanes), gemv_wt4_in(col, g + 4u * lanes, lanes),
                         gemv_wt4_in(col, g + 8u * lanes, lanes),
                         gemv_wt4_in(col, g + 12u * lanes, lanes));
    }
    return GemvRound(gemv_wt4(col, g, lanes), gemv_wt4(col, g + 4u * lanes, lanes),
                     gemv_wt4(col, g + 8u * lanes, lanes), gemv_wt4(col, g + 12u * lanes, lanes));
}

// acc + w.x gsm[at] + w.y gsm[at + step] + w.z gsm[at + 2 step] + w.w gsm[at + 3 step],
// added in that order (four multiply-adds).
fn gemv_dot(acc: vec4<f32>, w: vec4<f32>, at: u32, step: u32) -> vec4<f32> {
    return quad_fma(acc, w, gsm[at], gsm[at + step], gsm[at + 2u * step], gsm[at + 3u * step]);
}

// A forward round of 256 k from k: the round's weights `w` (gemv_round_w) times the staged
// states.
fn gemv_round(acc: vec4<f32>, w: GemvRound, k: u32) -> vec4<f32> {
    var s = gemv_dot(acc, w.w0, k, 16u);
    s = gemv_dot(s, w.w1, k + 64u, 16u);
    s = gemv_dot(s, w.w2, k + 128u, 16u);
    return gemv_dot(s, w.w3, k + 192u, 16u);
}

// A backward round of 16 lanes rows from g: the round's weights `w` (gemv_round_wt) times
// the staged dgh.
fn gemv_round_t(acc: vec4<f32>, w: GemvRound, g: u32, lanes: u32) -> vec4<f32> {
    var s = gemv_dot(acc, w.w0, g, lanes);
    s = gemv_dot(s, w.w1, g + 4u * lanes, lanes);
    s = gemv_dot(s, w.w2, g + 8u * lanes, lanes);
    return gemv_dot(s, w.w3, g + 12u * lanes, lanes);
}

// (W_hh h_{t-1}) at rows g * H + unit for g < gates, as tile_w_h of step_tiles.wgsl, for
// the 4 sequences of the workgroup (lead invocations l < TU: unit u0 + l).
fn tile_w_h(l: u32, wg: vec3<u32>, gates: u32) -> Gates4 {
    let d = wg.z;
    let u0 = wg.x * TU;
    let b0 = wg.y * TB;
    let threads = 4u * TU * KS;
    let r = l / GL;
    let kl = l % GL;
    let unit = min(u0 + r % TU, p.hidden - 1u);
    let row = w_hh(d) + ((r / TU) * p.hidden + unit) * p.rw;
    var out = Gates4(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
    if (!recurrent()) {
        return out;
    }
    let src = gemv_src(d, b0, false);
    var acc = vec4<f32>(0.0);
    for (var c0 = 0u; c0 < p.rw; c0 += GC) {
        // The chunk's first round of weights is loaded before the states are staged, so
        // the two loads' latencies overlap (unguarded where the whole round is inside the
        // row).
        var w = gemv_round_w(row, c0 + kl, c0 + 256u <= p.rw);
        // The previous chunk's reads are done before it is overwritten.
        workgroupBarrier();
        gemv_stage(src, c0, l, threads);
        workgroupBarrier();
        let n = min(GC, p.rw - c0);
        // Rounds of 256 k (k + 240 < GC: GC is a multiple of 256): those whose weights are
        // all inside the row load them unguarded, then the row's last, partial round.
        var k = kl;
        for (; k + 240u < n; k += 256u) {
            if (k != kl) {
                w = gemv_round_w(row, c0 + k, true);
            }
            acc = gemv_round(acc, w, k);
        }
        if (k < n) {
            if (k != kl) {
                w = gemv_round_w(row, c0 + k, false);
            }
            acc = gemv_round(acc, w, k);
        }
    }
    // Partial sums [row][k lane] (l = r * GL + kl), added by the lead invocations.
    workgroupBarrier();
    gsm[l] = acc;
    workgroupBarrier();
    if (l < TU) {
        out.g0 = gemv_lanes(l * GL, 1u, GL);
        if (gates > 1u) { out.g1 = gemv_lanes((TU + l) * GL, 1u, GL); }
        if (gates > 2u) { out.g2 = gemv_lanes((2u * TU + l) * GL, 1u, GL); }
        if (gates > 3u) { out.g3 = gemv_lanes((3u * TU + l) * GL, 1u, GL); }
    }
    return out;
}

// gsm[at] + gsm[at + step] + ... (count terms, in that order).
fn gemv_lanes(at: u32, step: u32, count: u32) -> vec4<f32> {
    var s = gsm[at];
    for (var i = 1u; i < count; i++) {
        s += gsm[at + i * step];
    }
    return s;
}

// (W_hh^T dgh_{t+1}) at column unit over all G*H rows, as tile_wt_dgh of step_tiles.wgsl,
// for the 4 sequences of the workgroup (lead invocations l < TU: unit u0 + l).
fn tile_wt_dgh(l: u32, wg: vec3<u32>) -> vec4<f32> {
    let d = wg.z;
    let u0 = wg.x * TU;
    let b0 = wg.y * TB;
    let threads = 4u * TU * KS;
    let lanes = 4u * KS;
    let rl = l / TU;
    let col = w_hh(d) + min(u0 + l % TU, min(p.hidden, p.rw) - 1u);
    if (!recurrent()) {
        return vec4<f32>(0.0);
    }
    let src = gemv_src(d, b0, true);
    var acc = vec4<f32>(0.0);
    // The first chunk's first round of weights before its staging, as in tile_w_h
    // (unguarded where the whole chunk is inside the column).
    var w = gemv_round_wt(col, rl, lanes, GC <= p.gh);
    for (var c0 = 0u; c0 < p.gh; c0 += GC) {
        // The next chunk's first round, loaded before this chunk is staged and multiplied,
        // so that W_hh's traffic goes on through the barriers, the staging and the
        // products instead of starting after them (two rounds in registers).
        var next = w;
        if (c0 + GC < p.gh) {
            next = gemv_round_wt(col, c0 + GC + rl, lanes, c0 + 2u * GC <= p.gh);
        }
        workgroupBarrier();
        gemv_stage(src, c0, l, threads);
        workgroupBarrier();
        let n = min(GC, p.gh - c0);
        // Rounds of 16 lanes rows: g + 15 lanes < GC (GC is a multiple of 16 lanes; one
        // round per chunk at the host's 64 lanes).
        for (var g = rl; g < n; g += 16u * lanes) {
            if (g != rl) {
                w = gemv_round_wt(col, c0 + g, lanes, false);
            }
            acc = gemv_round_t(acc, w, g, lanes);
        }
        w = next;
    }
    // Partial sums [row lane][TU] (l = rl * TU + unit), added by the lead invocations.
    workgroupBarrier();
    gsm[l] = acc;
    workgroupBarrier();
    if (l < TU) {
        return gemv_lanes(l, TU, lanes);
    }
    return vec4<f32>(0.0);
}
