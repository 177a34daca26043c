// step_tiles.wgsl: the recurrent products of the tiled step kernels in f32 (tile_w_h:
// W_hh h_{t-1}; tile_wt_dgh: W_hh^T dgh_{t+1}), for 16 sequences x TU units per workgroup
// (the gated cells' forward also 32 x TU: SQ = 8 sequence quads, layer.wgsl).
// Put between shaders/layer.wgsl (bindings, tile constants and loads, documented there) with
// shaders/params_vec4.wgsl (or its scalar twin) and a cell's file; shaders/step_coop.wgsl is
// the same interface on the matrix units. CPU twin:
// the cells' step loops in src/backend/cpu/ (the products are sums over the inner dimension).
//
// The inner dimension goes in chunks per K slice: the plain backward stages BR rows of
// W_hh^T (64 by default, fewer where the adapter's workgroup memory does not hold KS slices
// of them), the plain forward FK k steps of every gate (as many as BR, at most 128 weight
// rows: LSTM and GRU 32, Elman 64, fewer where memory is short). The host's
// `layer::fit_chunks` chooses them and sizes each entry point's `wsm` and `h_tile`. (Before
// session 20 an LSTM's backward and the Elman forward moved 16 rows a chunk, and until
// session 21 the gated forwards 64 weight rows, in twice the chunks.) The blocked loops
// take 16 k steps forward and 32 rows backward. Each chunk of the weights and of the
// state goes through workgroup memory (`wsm`, `h_tile`: 20.5 KiB for the flagship's
// 32-unit forward, 46 KiB at four K slices of 16 units, 29 KiB in the blocked loops);
// every weight element loaded serves 16 sequences. The next chunk's global loads are issued before the current chunk's
// arithmetic, so their latency hides behind it. Sums run along the inner dimension in
// ascending order within each partial sum.
//
// Two inner loops, chosen by the STEP_BLOCKED override:
// - plain (any TU): invocation l accumulates its own outputs over the inner dimension.
//   The forward stages its chunk's weights k-packed ([gate][unit][FK / 4 + 1] vec4s of 4
//   k steps), the backward W_hh as it lies ([row][TU / 4 + 1] vec4s of 4 units); the spare
//   vec4 spreads stores and reads over the memory banks. Where W_hh's rows start 16-byte
//   aligned (W4) both load a vec4 of 4 k steps (forward) or 4 units (backward) of one row
//   at a time and store it as one; else the forward loads one k step of 4 units (still
//   coalesced) and stores it lane by lane, the backward 4 contiguous scalars. The
//   backward and the Elman forward (one gate) go by 4-unit blocks (block4_*): an
//   invocation takes a quarter of each chunk's rows for 4 units and reads 4 vec4s of
//   weights and 4 of states or dgh per 4 rows (8 multiply-adds per shared-memory read).
//   The forward of gated cells goes by unit pairs (pair_*): an invocation takes half of
//   each chunk's k steps for 2 units and every gate (with SQ 8, 32 sequences: 8 TU
//   invocations a slice, whose two groups of 4 TU load every other part of a chunk's
//   weights, or half its gates, fwd_src), and per 4 k steps reads 4 vec4s of
//   states and one vec4 of weights per unit and gate (LSTM 10.7, GRU 9.6). The parts'
//   and slices' sums are added through workgroup memory at the end. (Before session 18 a
//   weight was one scalar read with its vec4 lane split out of the index: 4 and 2; until
//   session 20 the backward took half the rows for 2 units, 5.3, and until session 21 a
//   forward invocation took one unit's gates over all k steps: LSTM 8, GRU 6.9.) The
//   loops' lanes pair up on those reads (lanes n and n ^ 1 share a block or pair, n and
//   n ^ 2 a sequence quad), which the shared-memory pipe serves two lanes to a register;
//   the states are staged [k][HS] from a load order that puts a warp's stores on distinct
//   banks.
//   With KS > 1 (layer.wgsl) the
//   workgroup has KS times the invocations: slice l / (4 TU) takes its own consecutive
//   run of a 1 / KS share of the chunks, loading and staging them in its own part of the
//   workgroup memory, and after the loop slice 0's invocations add every slice's partial
//   sums for their outputs (after each slice's parts have added theirs). A step
//   whose grid is small thus gets KS times the warps per core and KS chains of loads in
//   flight, each 1 / KS as long, at one more barrier.
// - blocked (TU = 32, 128 invocations): invocation l = 32 slice + 8 sq + uq owns a 4-unit x
//   4-sequence block (units 4 uq.., sequences 4 sq..) of every gate and a quarter of each
//   chunk's k steps (its slice); per k step it reads one vec4 of weights per gate and one
//   vec4 of states (16 multiply-adds per read). The four slices' partial sums are added
//   through workgroup memory at the end, and the results handed out in the plain mapping.
//   Its 16 forward accumulators are generated code (`// @generate step_*`, expanded by
//   src/backend/wgpu/codegen.rs).
override STEP_BLOCKED: bool = false;
// Chunk depths of the plain loops per K slice (16, 32 or 64): BR rows of
// W_hh^T dgh in the backward, FK k steps of W_hh h in the forward (gates x FK at most 128).
override BR: u32 = 16u;
override FK: u32 = 16u;
// Sizes of the two workgroup arrays (vec4s), set by the host per entry point for the plain
// loops' KS and BR (backward) or FK (forward) (`layer::fit_chunks`: what their staging and
// partial sums need, within the adapter's workgroup memory); the blocked loops take these
// defaults.
override WS: u32 = 1536u;
override HT: u32 = 320u;
// Shared by both loops: the staged weights during the loop, the partial sums after it.
var<workgroup> wsm: array<vec4<f32>, WS>;
// States (or dgh) of 16 sequences (32 in a forward of SQ 8): [chunk][TB / 4] in the blocked
// loops, [chunk][HS] per K slice in the plain loops (a spare vec4 per row spreads their
// stores over the banks).
var<workgroup> h_tile: array<vec4<f32>, HT>;
// Vec4s per row of the plain loops' staged states: SQ = TB / 4 and a spare one.
override HS: u32 = SQ + 1u;

fn wsm_set(i: u32, v: f32) {
    wsm[i >> 2u][i & 3u] = v;
}

// Stores a gate's load slot (w_rows) for the blocked loop (TU = 32) from float `at` (a
// multiple of 4): weight (kk, gate, tile unit) in vec4 kk * rs + gate * 8 + unit / 4, lane
// unit % 4 (row stride rs vec4s).
fn stage_w4(at: u32, gate: u32, l: u32, rs: u32, v: vec4<f32>) {
    let u = l / TK;
    let base = at / 4u + (l % TK) * rs + gate * 8u + u / 4u;
    let lane = u % 4u;
    wsm[base][lane] = v.x;
    wsm[base + 2u][lane] = v.y;
    wsm[base + 4u][lane] = v.z;
    wsm[base + 6u][lane] = v.w;
}

// Stores tile_w_gates' registers (blocked loop) into workgroup memory from float `at`.
fn stage_w_gates(at: u32, l: u32, rs: u32, v: Gates4, gates: u32) {
    stage_w4(at, 0u, l, rs, v.g0);
    if (gates > 1u) { stage_w4(at, 1u, l, rs, v.g1); }
    if (gates > 2u) { stage_w4(at, 2u, l, rs, v.g2); }
    if (gates > 3u) { stage_w4(at, 3u, l, rs, v.g3); }
}

// Stores element e of a [TB][width] chunk, placed by chunk_slot, into h_tile from vec4 `at`
// ([width][rows of vec4s of 4 sequences]): sequence b's element k in lane b % 4 of vec4
// at + k rs + b / 4, with rows of TB / 4 = 4 vec4s in the blocked loops and HS in the
// plain ones (`plain`, whose slot order and spare vec4 put a warp's stores on distinct
// banks).
fn stage_h(at: u32, e: u32, v: f32, width: u32, plain: bool) {
    let s = chunk_slot(e, width, plain);
    let rs = select(4u, HS, plain);
    h_tile[at + s.y * rs + s.x / 4u][s.x % 4u] = v;
}

// Stores tile_states' lanes (elements l + i stride, i < count, of a state_src with the
// same `plain`) into h_tile from vec4 `at`.
fn stage_states(at: u32, l: u32, stride: u32, count: u32, width: u32, plain: bool,
                v: vec4<f32>) {
    stage_h(at, l, v.x, width, plain);
    if (count > 1u) { stage_h(at, l + stride, v.y, width, plain); }
    if (count > 2u) {
        stage_h(at, l + 2u * stride, v.z, width, plain);
        stage_h(at, l + 3u * stride, v.w, width, plain);
    }
}

// Vec4s per unit of a gate's staged forward weights: FK / 4 quads of k and a spare one, so
// that the units' rows start 4 banks apart.
fn fwd_unit_stride() -> u32 {
    return FK / 4u + 1u;
}

// Stores the load slot (w_rows) of one gate (units l / 16 + i TU / 4 at k = l % 16 of the
// part whose first quad of k is `quad`) into the forward's staged weights from vec4 at: unit
// u, k step kk of the gate in lane kk % 4 of vec4 at + u fwd_unit_stride() + kk / 4. The
// loads stay coalesced (16 invocations, 64 contiguous bytes, per load); the lanes cost 4
// scalar stores, which fall on distinct memory banks but for 4 of the 32 (2 cycles a warp).
// Where W4 holds, w_quads' slot and stage_quad_w take its place.
fn stage_plain_w4(at: u32, l: u32, quad: u32, v: vec4<f32>) {
    let s = fwd_unit_stride();
    let slot = at + (l / TK) * s + quad + (l % TK) / 4u;
    let lane = l % 4u;
    let step = (TU / 4u) * s;
    wsm[slot][lane] = v.x;
    wsm[slot + step][lane] = v.y;
    wsm[slot + 2u * step][lane] = v.z;
    wsm[slot + 3u * step][lane] = v.w;
}

// Whether both directions' W_hh and its row length R are multiples of 4 floats (the host's
// `Call::run`): the plain loops then load their weights a vec4 at a time (params_vec4: 4 k
// steps of a unit forward, 4 units of a row backward).
override W4: bool = false;

// Where the plain forward's weights come from where W4 holds (the same every chunk of a
// step): slice invocation ls takes, per gate and part of 16 k steps, the 4 k steps 4 kq ..
// of tile unit uq as one vec4 (params_vec4), where a warp's 8 lanes of one kq take 8 units
// (so their staging stores fall on distinct banks) and its 4 groups of 8 cover 64
// contiguous bytes of each of those rows. at: the float index of W_hh[unit][4 kq] of gate
// 0; ok: the unit exists.
struct WQuads {
    at: u32,
    ok: bool,
    uq: u32,
    kq: u32,
}

fn w_quads(w: u32, u0: u32, ls: u32) -> WQuads {
    let uq = (ls % 8u) + 8u * (ls / 32u);
    let kq = (ls / 8u) % 4u;
    return WQuads(w + (u0 + uq) * p.rw + 4u * kq, u0 + uq < p.hidden, uq, kq);
}

// The slot's 4 k steps of every gate < gates in part j of a run of parts from k0 (a
// multiple of 16), where the part lies inside the matrix: one vec4 load each (the run's
// first index worked out once, each part a constant further).
fn w_quad_gates_inside(q: WQuads, k0: u32, j: u32, gates: u32) -> Gates4 {
    let z = vec4<f32>(0.0);
    let i = (q.at + k0) / 4u + j * (TK / 4u);
    let g4 = p.hidden * p.rw / 4u;
    var v = Gates4(params_vec4(i), z, z, z);
    if (gates > 1u) { v.g1 = params_vec4(i + g4); }
    if (gates > 2u) { v.g2 = params_vec4(i + 2u * g4); }
    if (gates > 3u) { v.g3 = params_vec4(i + 3u * g4); }
    return v;
}

// The same wherever the part lies: 4 masked scalars a gate, 0 outside the matrix.
fn w_quad_gates_edge(q: WQuads, k0: u32, gates: u32) -> Gates4 {
    let z = vec4<f32>(0.0);
    let gs = p.hidden * p.rw;
    let k = vec4<u32>(k0 + 4u * q.kq) + vec4<u32>(0u, 1u, 2u, 3u);
    let ok = vec4<bool>(q.ok) & (k < vec4<u32>(p.rw));
    var v = Gates4(w_quad_edge(q.at + k0, ok), z, z, z);
    if (gates > 1u) { v.g1 = w_quad_edge(q.at + k0 + gs, ok); }
    if (gates > 2u) { v.g2 = w_quad_edge(q.at + k0 + 2u * gs, ok); }
    if (gates > 3u) { v.g3 = w_quad_edge(q.at + k0 + 3u * gs, ok); }
    return v;
}

// params[at + i] for the lanes i where ok, else 0 (masked lanes load element 0).
fn w_quad_edge(at: u32, ok: vec4<bool>) -> vec4<f32> {
    let j = select(vec4<u32>(0u), vec4<u32>(at) + vec4<u32>(0u, 1u, 2u, 3u), ok);
    let v = vec4<f32>(params[j.x], params[j.y], params[j.z], params[j.w]);
    return select(vec4<f32>(0.0), v, ok);
}

// Stores w_quad_gates_*'s registers of the part whose first quad of k is `quad` into the
// forward's staged weights from vec4 wo (as stage_plain_w places them): one vec4 a gate.
fn stage_quad_w(wo: u32, q: WQuads, quad: u32, v: Gates4, gates: u32) {
    let s = fwd_unit_stride();
    let gs = TU * s;
    let at = wo + q.uq * s + quad + q.kq;
    wsm[at] = v.g0;
    if (gates > 1u) { wsm[at + gs] = v.g1; }
    if (gates > 2u) { wsm[at + 2u * gs] = v.g2; }
    if (gates > 3u) { wsm[at + 3u * gs] = v.g3; }
}

// Stores tile_w_gates' registers of the part whose first quad of k is `quad` into the
// forward's staged weights from vec4 wo: gate g's unit u, quad kq at
// wo + (g TU + u) fwd_unit_stride() + kq.
fn stage_plain_w(wo: u32, l: u32, quad: u32, v: Gates4, gates: u32) {
    let gs = TU * fwd_unit_stride();
    stage_plain_w4(wo, l, quad, v.g0);
    if (gates > 1u) { stage_plain_w4(wo + gs, l, quad, v.g1); }
    if (gates > 2u) { stage_plain_w4(wo + 2u * gs, l, quad, v.g2); }
    if (gates > 3u) { stage_plain_w4(wo + 3u * gs, l, quad, v.g3); }
}

// One Gates4 per part of TK k steps of a chunk (up to 4: 64 k steps).
struct GateParts {
    w0: Gates4,
    w1: Gates4,
    w2: Gates4,
    w3: Gates4,
}

// What an invocation of the plain forward loads of one chunk of FK k steps, in FK / 16
// parts of 16 (w.w{j}, s.p{j} for part j; parts past FK stay zero and are never loaded): per
// part one vec4 of weights per gate (fwd_w_parts) and `count` (1, 2 or 4) of its 256 state
// elements (tile_state_parts). Named registers, never an array, so they stay out of local
// memory.
struct FwdChunk {
    w: GateParts,
    s: Parts4,
}

// Where the forward's chunks come from (the same every chunk of a step): the weights'
// rows (w, or q where W4 holds) of load slot `slot`, which takes n parts of every chunk
// from part j0, PG apart, each of ng gates from gate g0 (fwd_src), and the states'
// sources of slice invocation ls.
struct FwdSrc {
    w: WRows,
    q: WQuads,
    s: StateSrc,
    slot: u32,
    j0: u32,
    n: u32,
    g0: u32,
    ng: u32,
}

// A part of 16 k steps of a chunk has 4 TU weight slots (a vec4 of every gate each), a
// slice SQ TU invocations: with SQ 4 one group of them takes every part; with SQ 8 two
// groups (pg = ls / 4 TU) take every other part of each chunk, or where a chunk has one
// part (16 k steps) half its gates each, so both load alike.
override PG: u32 = SQ / 4u;
override BY_GATES: bool = FK / TK < PG;

fn fwd_src(w: u32, d: u32, u0: u32, b0: u32, ls: u32, threads: u32, count: u32,
           gates: u32) -> FwdSrc {
    let ls2 = load_slot(ls);
    let slot = ls2.x;
    let g = load_gates(ls2.y, gates, BY_GATES);
    let n = select(FK / TK / PG, 1u, BY_GATES);
    let j0 = select(ls2.y, 0u, BY_GATES);
    let wg = w + g.x * p.hidden * p.rw;
    return FwdSrc(w_rows(wg, u0, slot), w_quads(wg, u0, slot),
                  state_src(d, b0, ls, threads, count, TK, false, true), slot, j0, n, g.x, g.y);
}

// The weights of the forward's load slot (src.q where W4 holds, else src.w) in part j of a
// run of parts from k0, where it lies inside the matrix: one vec4 per gate < gates.
fn fwd_w_inside(src: FwdSrc, k0: u32, j: u32, gates: u32) -> Gates4 {
    if (W4) {
        return w_quad_gates_inside(src.q, k0, j, gates);
    }
    return tile_w_gates_inside(src.w, k0 + j * TK, gates);
}

// The same wherever the part lies: 0 outside the matrix.
fn fwd_w_edge(src: FwdSrc, k0: u32, gates: u32) -> Gates4 {
    if (W4) {
        return w_quad_gates_edge(src.q, k0, gates);
    }
    return tile_w_gates_edge(src.w, k0, gates);
}

// The forward's weights in the parts of the chunk at k0 its load slot takes (src.n parts
// of 16 k steps from src.j0, PG apart; src.ng gates from src.g0), w{j} for its j-th (the
// registers that carry them from one chunk to the next); one test for all the gates and
// parts of whether the load slot lies inside the matrix.
fn fwd_w_parts(src: FwdSrc, k0: u32) -> GateParts {
    let z4 = vec4<f32>(0.0);
    let z = Gates4(z4, z4, z4, z4);
    var v = GateParts(z, z, z, z);
    let n = src.n;
    let j0 = src.j0;
    let gates = src.ng;
    let ok = select(all(src.w.ok), src.q.ok, W4);
    if (ok && k0 + (j0 + (n - 1u) * PG + 1u) * TK <= p.rw) {
        v.w0 = fwd_w_inside(src, k0, j0, gates);
        if (n > 1u) { v.w1 = fwd_w_inside(src, k0, j0 + PG, gates); }
        if (n > 2u) {
            v.w2 = fwd_w_inside(src, k0, j0 + 2u * PG, gates);
            v.w3 = fwd_w_inside(src, k0, j0 + 3u * PG, gates);
        }
    } else {
        v.w0 = fwd_w_edge(src, k0 + j0 * TK, gates);
        if (n > 1u) { v.w1 = fwd_w_edge(src, k0 + (j0 + PG) * TK, gates); }
        if (n > 2u) {
            v.w2 = fwd_w_edge(src, k0 + (j0 + 2u * PG) * TK, gates);
            v.w3 = fwd_w_edge(src, k0 + (j0 + 3u * PG) * TK, gates);
        }
    }
    return v;
}

// Loads the forward chunk at k0 (`count` state elements per part).
fn fwd_chunk(src: FwdSrc, k0: u32, count: u32) -> FwdChunk {
    return FwdChunk(fwd_w_parts(src, k0), tile_state_parts(src.s, k0, count, FK / TK));
}

// Stores part j's weights (quads 4 j.. of the units' rows; the slot's src.ng gates from
// src.g0) from vec4 wo.
fn stage_fwd_w(wo: u32, src: FwdSrc, j: u32, v: Gates4) {
    let at = wo + src.g0 * TU * fwd_unit_stride();
    if (W4) {
        stage_quad_w(at, src.q, 4u * j, v, src.ng);
    } else {
        stage_plain_w(at, src.slot, 4u * j, v, src.ng);
    }
}

// Stages a forward chunk: part j's weights as quads 4 j.. of the units' rows from vec4 wo
// (each by the load slots that took it), its states as rows 16 j.. of [FK][HS] from vec4 ho.
fn stage_fwd_chunk(wo: u32, ho: u32, src: FwdSrc, ls: u32, threads: u32, count: u32,
                   c: FwdChunk) {
    let n = src.n;
    let j0 = src.j0;
    if (n > 0u) { stage_fwd_w(wo, src, j0, c.w.w0); }
    stage_states(ho, ls, threads, count, TK, true, c.s.p0);
    if (FK > 16u) {
        if (n > 1u) { stage_fwd_w(wo, src, j0 + PG, c.w.w1); }
        stage_states(ho + 16u * HS, ls, threads, count, TK, true, c.s.p1);
    }
    if (FK > 32u) {
        if (n > 2u) {
            stage_fwd_w(wo, src, j0 + 2u * PG, c.w.w2);
            stage_fwd_w(wo, src, j0 + 3u * PG, c.w.w3);
        }
        stage_states(ho + 32u * HS, ls, threads, count, TK, true, c.s.p2);
        stage_states(ho + 48u * HS, ls, threads, count, TK, true, c.s.p3);
    }
}

// (W_hh h_{t-1}) at rows g * H + unit for g < gates (1 to 4) and the previous state of the
// tile's sequences at step p.s; zeros when not recurrent, for absent units and sequences.
fn tile_w_h(l: u32, wg: vec3<u32>, gates: u32) -> Gates4 {
    if (STEP_BLOCKED) {
        return tile_w_h_blocked(l, wg, gates);
    }
    let d = wg.z;
    let u0 = wg.x * TU;
    let b0 = wg.y * TB;
    let threads = SQ * TU;
    // K slice `slice` (of KS) takes its own run of `per` chunks of FK k steps (FK / 16 parts
    // of 16, each loaded as a 16-deep chunk) from k = `first`, staged in its own part of the
    // workgroup memory; ls is the invocation's place in its slice.
    let slice = l / threads;
    let ls = l % threads;
    let w = w_hh(d);
    // The slice's staged weights from vec4 wo (gate g's unit u at wo + (g TU + u) s), its
    // states from vec4 ho ([FK][HS]: k step k's quad q at ho + k HS + q).
    let s = fwd_unit_stride();
    let wo = slice * gates * TU * s;
    let ho = slice * FK * HS;
    let per = ((p.rw + FK - 1u) / FK + KS - 1u) / KS;
    let first = slice * per * FK;
    let z = vec4<f32>(0.0);
    if (!recurrent()) {
        return Gates4(z, z, z, z);
    }
    // The loop goes by blocks of units: with one gate (the Elman cell) by the backward's
    // 4-unit blocks (block4_at), a read of weights then serving 16 multiply-adds instead of
    // 4; with more by pairs of units taking every gate (pair_at), 4 reads of states then
    // serving two units' gates instead of one's.
    var blk = Block4(z, z, z, z);
    let at = block4_at(ls, wo, ho, s, FK);
    let z4 = Gates4(z, z, z, z);
    var pair = GatePair(z4, z4);
    let pat = pair_at(ls, wo, ho, s);
    // The registers holding the next chunk (fwd_chunk). Chunks past the inner dimension
    // load zeros.
    let count = TB * TK / threads;
    let src = fwd_src(w, d, u0, b0, ls, threads, count, gates);
    var next = fwd_chunk(src, first, count);
    for (var i = 0u; i < per; i++) {
        stage_fwd_chunk(wo, ho, src, ls, threads, count, next);
        workgroupBarrier();
        if (i + 1u < per) {
            next = fwd_chunk(src, first + (i + 1u) * FK, count);
        }
        if (gates == 1u) {
            block4_chunk(&blk, at, FK);
        } else {
            pair_chunk(&pair, pat, gates);
        }
        workgroupBarrier();
    }
    if (gates == 1u) {
        return Gates4(block4_sums(blk, at, slice, l), z, z, z);
    }
    return pair_sums(pair, pat, slice, ls, gates);
}

// A unit pair's sums for every gate < gates (units a and b = a + TU / 2) and one sequence
// quad, over the inner dimension of the chunks it takes half of.
struct GatePair {
    a: Gates4,
    b: Gates4,
}

// Where a unit pair's reads start in every chunk, and where its sums go.
struct PairAt {
    // Half of each chunk's k quads (its quads (FK / 8) half ..), sequence quad, unit a.
    half: u32,
    q: u32,
    ua: u32,
    // The first weight read of a chunk (unit a, gate 0), the quad's first states.
    wa0: u32,
    hb0: u32,
}

// Slice invocation ls's half, sequence quad and unit pair, for chunks staged as the
// forward stages them (weights [gate][TU][FK / 4 + 1] vec4s, unit stride s, from vec4 wo;
// states [FK][HS] from vec4 ho). The SQ TU invocations of a slice each take half of every
// chunk's k quads for 2 units (TU / 2 apart, so a warp's 8 pairs read 8 distinct
// banks), every gate and one sequence quad: per 4 k steps 4 vec4s of states and 2
// gates vec4s of weights, 32 gates multiply-adds. Lanes pair up on the reads as in the
// blocks (block_lanes, within each 2 TU invocations of a half; with SQ 8 the second 2 TU
// take quads 4-7).
fn pair_at(ls: u32, wo: u32, ho: u32, s: u32) -> PairAt {
    let span = SQ * TU / 2u;
    let half = ls / span;
    let q = block_lanes(ls % span, 2u * TU);
    let quad = q.y + 4u * q.x;
    let quads = FK / 8u;
    return PairAt(half, quad, q.z, wo + q.z * s + half * quads,
                  ho + 4u * HS * half * quads + quad);
}

// Adds one staged chunk to a pair's sums: per quad of its half's k steps the 4 steps'
// states, then per unit and gate one vec4 of weights, added in ascending k. The half's
// FK / 8 quads are written out (codegen.rs; FK is at most 64, `layer::PlainChunks`), the
// ones past FK / 8 dropped when the pipeline's FK is known, so a chunk is straight code
// whatever the driver unrolls.
fn pair_chunk(acc: ptr<function, GatePair>, at: PairAt, gates: u32) {
    let gs = TU * fwd_unit_stride();
    let us = (TU / 2u) * fwd_unit_stride();
    // @unroll j 8
    if (j < FK / 8u) {
        let h = staged_quad(at.hb0 + 4u * HS * j);
        let wa = at.wa0 + j;
        (*acc).a = gates_fma((*acc).a, wa, gs, gates, h);
        (*acc).b = gates_fma((*acc).b, wa + us, gs, gates, h);
    }
    // @end unroll
}

// The staged states (or dgh) of 4 consecutive k steps (or rows) of one sequence quad, the
// first at vec4 hb of h_tile: part i is step i's.
fn staged_quad(hb: u32) -> Parts4 {
    return Parts4(h_tile[hb], h_tile[hb + HS], h_tile[hb + 2u * HS], h_tile[hb + 3u * HS]);
}

// acc plus, per gate g < gates, the staged weights at vec4 wa + g gs (4 k steps of one
// unit) times the states h of those k steps.
fn gates_fma(acc: Gates4, wa: u32, gs: u32, gates: u32, h: Parts4) -> Gates4 {
    var v = acc;
    v.g0 = quad_fma(v.g0, wsm[wa], h.p0, h.p1, h.p2, h.p3);
    if (gates > 1u) { v.g1 = quad_fma(v.g1, wsm[wa + gs], h.p0, h.p1, h.p2, h.p3); }
    if (gates > 2u) { v.g2 = quad_fma(v.g2, wsm[wa + 2u * gs], h.p0, h.p1, h.p2, h.p3); }
    if (gates > 3u) { v.g3 = quad_fma(v.g3, wsm[wa + 3u * gs], h.p0, h.p1, h.p2, h.p3); }
    return v;
}

// The sums of every slice and half for slice invocation ls's unit ls % TU and sequence
// quad ls / TU (the tiles' mapping; 0 outside slice 0), after the last chunk's barrier.
// Through [slice][gate][sequence quad][unit] (gates SQ TU KS vec4s of wsm, a warp's stores
// and reads spread evenly over the banks): each slice's second half stores its sums, its
// first half adds its own to them, then slice 0 adds the slices' in order.
fn pair_sums(acc: GatePair, at: PairAt, slice: u32, ls: u32, gates: u32) -> Gates4 {
    let threads = SQ * TU;
    let per_slice = gates * threads;
    let ia = slice * per_slice + at.q * TU + at.ua;
    let ib = ia + TU / 2u;
    if (at.half == 1u) {
        wsm_put_gates(ia, threads, acc.a, gates);
        wsm_put_gates(ib, threads, acc.b, gates);
    }
    workgroupBarrier();
    if (at.half == 0u) {
        wsm_put_gates(ia, threads, gates_sum(acc.a, wsm_gates(ia, threads, gates)), gates);
        wsm_put_gates(ib, threads, gates_sum(acc.b, wsm_gates(ib, threads, gates)), gates);
    }
    workgroupBarrier();
    let z = vec4<f32>(0.0);
    var out = Gates4(z, z, z, z);
    if (slice == 0u) {
        for (var k = 0u; k < KS; k++) {
            out = gates_sum(out, wsm_gates(k * per_slice + ls, threads, gates));
        }
    }
    return out;
}

// a + b, gate by gate.
fn gates_sum(a: Gates4, b: Gates4) -> Gates4 {
    return Gates4(a.g0 + b.g0, a.g1 + b.g1, a.g2 + b.g2, a.g3 + b.g3);
}

// Stores the gates < gates of v in wsm at vec4s at, at + stride, ...
fn wsm_put_gates(at: u32, stride: u32, v: Gates4, gates: u32) {
    wsm[at] = v.g0;
    if (gates > 1u) { wsm[at + stride] = v.g1; }
    if (gates > 2u) { wsm[at + 2u * stride] = v.g2; }
    if (gates > 3u) { wsm[at + 3u * stride] = v.g3; }
}

// The gates < gates stored by wsm_put_gates at `at`; 0 for the others.
fn wsm_gates(at: u32, stride: u32, gates: u32) -> Gates4 {
    let z = vec4<f32>(0.0);
    var v = Gates4(wsm[at], z, z, z);
    if (gates > 1u) { v.g1 = wsm[at + stride]; }
    if (gates > 2u) { v.g2 = wsm[at + 2u * stride]; }
    if (gates > 3u) { v.g3 = wsm[at + 3u * stride]; }
    return v;
}

// tile_w_h's blocked loop (TU = 32). Accumulator a{g}_{c} holds gate g of the invocation's
// four units for sequence 4 sq + c.
fn tile_w_h_blocked(l: u32, wg: vec3<u32>, gates: u32) -> Gates4 {
    let d = wg.z;
    let u0 = wg.x * 32u;
    let b0 = wg.y * TB;
    let uq = l % 8u;
    let sq = (l / 8u) % 4u;
    let slice = l / 32u;
    let w = w_hh(d);
    // Staged weights: per k step a row of gates * 8 vec4s (4 units each) and one spare vec4
    // that spreads the transposed stores over the memory banks.
    let rs = gates * 8u + 1u;
    var out = Gates4(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
    if (!recurrent()) {
        return out;
    }
    // @generate step_acc_decl
    let rows = w_rows(w, u0, l);
    let src = state_src(d, b0, l, 128u, 2u, TK, false, false);
    var wt = tile_w_gates(rows, 0u, gates);
    var st = tile_states(src, 0u, 2u);
    for (var k0 = 0u; k0 < p.rw; k0 += TK) {
        stage_w_gates(0u, l, rs, wt, gates);
        stage_states(0u, l, 128u, 2u, TK, false, st);
        workgroupBarrier();
        let k1 = k0 + TK;
        if (k1 < p.rw) {
            wt = tile_w_gates(rows, k1, gates);
            st = tile_states(src, k1, 2u);
        }
        for (var j = 0u; j < 4u; j++) {
            let kk = slice * 4u + j;
            let h = h_tile[kk * 4u + sq];
            let wr = kk * rs + uq;
            // @generate step_fma
        }
        workgroupBarrier();
    }
    // Slices 1-3 put their partial sums in workgroup memory ([slice - 1][block][16]), slice
    // 0 adds them and puts the totals at [block][16].
    let blk = sq * 8u + uq;
    if (slice > 0u) {
        let base = ((slice - 1u) * 32u + blk) * 16u;
        // @generate step_red_put
    }
    workgroupBarrier();
    if (slice == 0u) {
        let r0 = blk * 16u;
        let r1 = (32u + blk) * 16u;
        let r2 = (64u + blk) * 16u;
        // @generate step_red_sum
    }
    workgroupBarrier();
    // Hand out unit l % 32 for sequences 4 (l / 32) + 0..3: gate g, sequence c is lane
    // unit % 4 of vec4 [block][4 g + c].
    let u = l % 32u;
    let fb = ((l / 32u) * 8u + u / 4u) * 16u;
    let lane = u % 4u;
    out.g0 = vec4<f32>(wsm[fb][lane], wsm[fb + 1u][lane], wsm[fb + 2u][lane], wsm[fb + 3u][lane]);
    out.g1 = vec4<f32>(wsm[fb + 4u][lane], wsm[fb + 5u][lane], wsm[fb + 6u][lane],
                       wsm[fb + 7u][lane]);
    out.g2 = vec4<f32>(wsm[fb + 8u][lane], wsm[fb + 9u][lane], wsm[fb + 10u][lane],
                       wsm[fb + 11u][lane]);
    out.g3 = vec4<f32>(wsm[fb + 12u][lane], wsm[fb + 13u][lane], wsm[fb + 14u][lane],
                       wsm[fb + 15u][lane]);
    return out;
}

// Stores the load slot (tile_wt_col) for the blocked backward loop (TU = 32) at chunk row
// offset g_off: weight (g, tile unit) at float at + (g_off + g) * TU + unit.
fn stage_wt4(at: u32, l: u32, g_off: u32, v: vec4<f32>) {
    let slot = at + (g_off + l / TU) * TU + l % TU;
    wsm_set(slot, v.x);
    wsm_set(slot + 4u * TU, v.y);
    wsm_set(slot + 8u * TU, v.z);
    wsm_set(slot + 12u * TU, v.w);
}

// Vec4s per staged row of the backward's weights: TU / 4 quads of units and a spare one
// (which puts a warp's staging stores on distinct banks).
fn bwd_row_stride() -> u32 {
    return TU / 4u + 1u;
}

// Where the plain backward's weights come from (the same every chunk of a step): slice
// invocation ls takes, per part of 16 rows, row r0 of the part and the 4 consecutive units
// 4 uq .. of the tile (a warp's lanes of one row cover 4 TU contiguous bytes of it, read as
// one vec4 each where W4 holds, else as 4 scalars). at: the float index of W_hh[r0][unit
// 4 uq]; ok: which of the 4 units exist (as columns of W_hh: < H and < R).
struct WRowQuads {
    at: u32,
    ok: vec4<bool>,
    r0: u32,
    uq: u32,
}

fn w_row_quads(w: u32, u0: u32, ls: u32) -> WRowQuads {
    let uq = ls % (TU / 4u);
    let r0 = ls / (TU / 4u);
    let u = vec4<u32>(u0 + 4u * uq) + vec4<u32>(0u, 1u, 2u, 3u);
    let ok = u < vec4<u32>(p.hidden) & u < vec4<u32>(p.rw);
    return WRowQuads(w + r0 * p.rw + u0 + 4u * uq, ok, r0, uq);
}

// The slot's 4 units in part j of a run of parts whose first starts at float i (the slot's
// index in its first row), where the part lies inside the matrix. The parts' offsets are
// multiples of one uniform step, so a chunk's address arithmetic is one product and an add
// a part.
fn w_row4_inside(i: u32, j: u32) -> vec4<f32> {
    let step = TK * p.rw;
    if (W4) {
        return params_vec4(i / 4u + j * (step / 4u));
    }
    let k = i + j * step;
    return vec4<f32>(params[k], params[k + 1u], params[k + 2u], params[k + 3u]);
}

// The same wherever the part lies: 0 outside the matrix (masked lanes load element 0).
fn w_row4_edge(q: WRowQuads, g: u32) -> vec4<f32> {
    let ok = q.ok & vec4<bool>(g + q.r0 < p.gh);
    let j = select(vec4<u32>(0u), vec4<u32>(q.at + g * p.rw) + vec4<u32>(0u, 1u, 2u, 3u), ok);
    let v = vec4<f32>(params[j.x], params[j.y], params[j.z], params[j.w]);
    return select(vec4<f32>(0.0), v, ok);
}

// The backward's weights in `parts` (1, 2 or 4) consecutive parts of TK rows from g0, a vec4
// per part (the registers that carry them from one chunk to the next); one test for all the
// parts of whether the slot lies inside the matrix.
fn w_row_parts(q: WRowQuads, g0: u32, parts: u32) -> Parts4 {
    let z = vec4<f32>(0.0);
    var v = Parts4(z, z, z, z);
    if (all(q.ok) && g0 + parts * TK <= p.gh) {
        let i = q.at + g0 * p.rw;
        v.p0 = w_row4_inside(i, 0u);
        if (parts > 1u) { v.p1 = w_row4_inside(i, 1u); }
        if (parts > 2u) {
            v.p2 = w_row4_inside(i, 2u);
            v.p3 = w_row4_inside(i, 3u);
        }
    } else {
        v.p0 = w_row4_edge(q, g0);
        if (parts > 1u) { v.p1 = w_row4_edge(q, g0 + TK); }
        if (parts > 2u) {
            v.p2 = w_row4_edge(q, g0 + 2u * TK);
            v.p3 = w_row4_edge(q, g0 + 3u * TK);
        }
    }
    return v;
}

// Stores the slot's vec4 of part j into the backward's staged weights from vec4 wo: row r's
// units 4 uq .. at wo + r bwd_row_stride() + uq.
fn stage_bwd_w(wo: u32, q: WRowQuads, j: u32, v: vec4<f32>) {
    wsm[wo + (16u * j + q.r0) * bwd_row_stride() + q.uq] = v;
}

// What an invocation of the plain backward loads of one chunk of BR rows g, in BR / 16
// parts of 16 (w.p{j}, s.p{j} for part j; parts past BR stay zero and are never loaded):
// per part one vec4 of weights (w_row_parts) and `count` (1, 2 or 4) of its 256 dgh
// elements (tile_state_parts).
struct BwdChunk {
    w: Parts4,
    s: Parts4,
}

// Where the backward's chunks come from (the same every chunk of a step): the weights' rows
// and the dgh sources of slice invocation ls.
struct BwdSrc {
    w: WRowQuads,
    s: StateSrc,
}

// Loads the backward chunk at g0 (`count` dgh elements per part).
fn bwd_chunk(src: BwdSrc, g0: u32, count: u32) -> BwdChunk {
    return BwdChunk(w_row_parts(src.w, g0, BR / TK), tile_state_parts(src.s, g0, count, BR / TK));
}

// Stages a backward chunk: part j's weights as rows 16 j.. of [BR][bwd_row_stride()] from
// vec4 wo, its dgh as rows 16 j.. of [BR][HS] from vec4 ho.
fn stage_bwd_chunk(wo: u32, ho: u32, src: BwdSrc, ls: u32, threads: u32, count: u32,
                   c: BwdChunk) {
    stage_bwd_w(wo, src.w, 0u, c.w.p0);
    stage_states(ho, ls, threads, count, TK, true, c.s.p0);
    if (BR > 16u) {
        stage_bwd_w(wo, src.w, 1u, c.w.p1);
        stage_states(ho + 16u * HS, ls, threads, count, TK, true, c.s.p1);
    }
    if (BR > 32u) {
        stage_bwd_w(wo, src.w, 2u, c.w.p2);
        stage_states(ho + 32u * HS, ls, threads, count, TK, true, c.s.p2);
        stage_bwd_w(wo, src.w, 3u, c.w.p3);
        stage_states(ho + 48u * HS, ls, threads, count, TK, true, c.s.p3);
    }
}

// (W_hh^T dgh_{t+1}) at column unit (< R = H) for the tile's sequences, over all G*H rows:
// the gradient reaching h_t from the next step; zeros when not recurrent, for absent units
// and sequences, and for sequences whose step p.s is their last.
fn tile_wt_dgh(l: u32, wg: vec3<u32>) -> vec4<f32> {
    if (STEP_BLOCKED) {
        return tile_wt_dgh_blocked(l, wg);
    }
    let d = wg.z;
    let u0 = wg.x * TU;
    let b0 = wg.y * TB;
    let threads = 4u * TU;
    // The K slices as in tile_w_h, over the rows g, in chunks of BR rows (BR / 16 parts of
    // 16 rows): slice `slice` takes `per` chunks from g = `first`, its weights staged as
    // [BR][TU / 4 + 1] vec4s (4 units each) from vec4 wo, its dgh as [BR][HS] from vec4
    // ho. Loads and staging go by the slice invocation ls; the loop by 4-unit blocks
    // (block4_rows_at).
    let slice = l / threads;
    let ls = l % threads;
    let w = w_hh(d);
    let rs = bwd_row_stride();
    let wo = slice * BR * rs;
    let ho = slice * BR * HS;
    let per = ((p.gh + BR - 1u) / BR + KS - 1u) / KS;
    let first = slice * per * BR;
    if (!recurrent()) {
        return vec4<f32>(0.0);
    }
    let z = vec4<f32>(0.0);
    var acc = Block4(z, z, z, z);
    let at = block4_rows_at(ls, wo, ho, rs, BR);
    // The registers holding the next chunk (bwd_chunk).
    let count = TB * TK / threads;
    let src = BwdSrc(w_row_quads(w, u0, ls), state_src(d, b0, ls, threads, count, TK, true, true));
    var next = bwd_chunk(src, first, count);
    for (var i = 0u; i < per; i++) {
        stage_bwd_chunk(wo, ho, src, ls, threads, count, next);
        workgroupBarrier();
        if (i + 1u < per) {
            next = bwd_chunk(src, first + (i + 1u) * BR, count);
        }
        block4_chunk(&acc, at, BR);
        workgroupBarrier();
    }
    return block4_sums(acc, at, slice, l);
}

// A 4-unit block's sums (its unit i in a{i}) for one sequence quad, over the inner
// dimension of the chunks it takes a quarter of.
struct Block4 {
    a0: vec4<f32>,
    a1: vec4<f32>,
    a2: vec4<f32>,
    a3: vec4<f32>,
}

// Where a 4-unit block's reads start in every chunk, and where its sums go.
struct Block4At {
    // Row quarter of each chunk (its quads (depth / 16) qt ..) and sequence quad.
    qt: u32,
    qh: u32,
    // The block's first tile unit, and the vec4s between its units' partial sums (4 u
    // apart for units u apart).
    un0: u32,
    us: u32,
    // The first weight read of a chunk, the next three ws apart, the next quad's wq apart;
    // whether a read is a row of 4 units (`rows`) or a unit's 4 rows; the quad's states.
    wa0: u32,
    ws: u32,
    wq: u32,
    rows: bool,
    hb0: u32,
}

// Slice invocation ls's part of every chunk's inner dimension (ls / span), sequence quad and
// block (< span / 4): with span TU a row quarter and a 4-unit block (block4_at; per 4 rows 4
// vec4s of weights and 4 of states, 64 multiply-adds per 8 reads), with span 2 TU a half
// and a unit pair (pair_at). Lanes pair up on the reads: lanes n and n ^ 1 read the same
// weights (one block), n and n ^ 2 the same states (one sequence quad), which the
// shared-memory pipe serves two lanes to a register (bits 0 and 2 of r are the quad's, bits
// 1 and 3.. the block's).
fn block_lanes(ls: u32, span: u32) -> vec3<u32> {
    let r = ls % span;
    return vec3<u32>(ls / span, (r & 1u) | ((r >> 1u) & 2u), ((r >> 1u) & 1u) | ((r >> 3u) << 1u));
}

// The 4-unit block of slice invocation ls for chunks of `depth` k steps staged as the
// forward stages one gate: weights [TU][depth / 4 + 1] vec4s (unit stride s, 4 k steps each)
// from vec4 wo, states [depth][HS] from vec4 ho. The block's units are ub + i TU / 4 (8
// apart at TU 32), so a warp's 8 distinct weight vec4s fall on distinct banks.
fn block4_at(ls: u32, wo: u32, ho: u32, s: u32, depth: u32) -> Block4At {
    let q = block_lanes(ls, TU);
    let quads = depth / 16u;
    return Block4At(q.x, q.y, q.z, TU, wo + q.z * s + q.x * quads, (TU / 4u) * s, 1u, false,
                    ho + 4u * HS * q.x * quads + q.y);
}

// The same for chunks of `depth` rows staged as the backward stages them: weights
// [depth][TU / 4 + 1] vec4s (row stride rs, 4 units each) from vec4 wo. The block's units
// are 4 ub .. 4 ub + 3, a warp's 8 blocks 8 consecutive vec4s of a row.
fn block4_rows_at(ls: u32, wo: u32, ho: u32, rs: u32, depth: u32) -> Block4At {
    let q = block_lanes(ls, TU);
    let quads = depth / 16u;
    return Block4At(q.x, q.y, 4u * q.z, 4u, wo + 4u * q.x * quads * rs + q.z, rs, 4u * rs,
                    true, ho + 4u * HS * q.x * quads + q.y);
}

// Adds one staged chunk of `depth` rows to a block's sums: per quad of its quarter's rows
// the 4 rows' states and the block's 16 weights, added in ascending rows. The quarter's
// depth / 16 quads are written out (codegen.rs; depth, BR or FK, is at most 64,
// `layer::PlainChunks`), the ones past depth / 16 dropped once the pipeline's constants
// are known, so a chunk is straight code whatever the driver unrolls.
fn block4_chunk(acc: ptr<function, Block4>, at: Block4At, depth: u32) {
    // @unroll j 4
    if (j < depth / 16u) {
        let h = staged_quad(at.hb0 + 4u * HS * j);
        let wa = at.wa0 + j * at.wq;
        var w0 = wsm[wa];
        var w1 = wsm[wa + at.ws];
        var w2 = wsm[wa + 2u * at.ws];
        var w3 = wsm[wa + 3u * at.ws];
        if (at.rows) {
            // Rows of 4 units: unit i's 4 rows are lane i of each (registers renamed, no
            // instructions).
            let r0 = w0;
            let r1 = w1;
            let r2 = w2;
            let r3 = w3;
            w0 = vec4<f32>(r0.x, r1.x, r2.x, r3.x);
            w1 = vec4<f32>(r0.y, r1.y, r2.y, r3.y);
            w2 = vec4<f32>(r0.z, r1.z, r2.z, r3.z);
            w3 = vec4<f32>(r0.w, r1.w, r2.w, r3.w);
        }
        (*acc).a0 = quad_fma((*acc).a0, w0, h.p0, h.p1, h.p2, h.p3);
        (*acc).a1 = quad_fma((*acc).a1, w1, h.p0, h.p1, h.p2, h.p3);
        (*acc).a2 = quad_fma((*acc).a2, w2, h.p0, h.p1, h.p2, h.p3);
        (*acc).a3 = quad_fma((*acc).a3, w3, h.p0, h.p1, h.p2, h.p3);
    }
    // @end unroll
}

// The sums of every slice and quarter for invocation l's unit l % TU and sequence quad
// l / TU (the tiles' mapping; 0 for invocations past tile_lead), after the last chunk's
// barrier. In two rounds through [slice][half][unit][sequence quad] (the footprint of two
// quarters, 8 TU KS vec4s of wsm): quarters 2 and 3 hand theirs to 0 and 1, which add them
// and store the halves' sums; then each lead invocation adds those of its unit and quad in
// that order.
fn block4_sums(acc: Block4, at: Block4At, slice: u32, l: u32) -> vec4<f32> {
    let i = ((slice * 2u + (at.qt & 1u)) * TU + at.un0) * 4u + at.qh;
    let us = at.us;
    if (at.qt >= 2u) {
        wsm[i] = acc.a0;
        wsm[i + us] = acc.a1;
        wsm[i + 2u * us] = acc.a2;
        wsm[i + 3u * us] = acc.a3;
    }
    workgroupBarrier();
    if (at.qt < 2u) {
        wsm[i] = acc.a0 + wsm[i];
        wsm[i + us] = acc.a1 + wsm[i + us];
        wsm[i + 2u * us] = acc.a2 + wsm[i + 2u * us];
        wsm[i + 3u * us] = acc.a3 + wsm[i + 3u * us];
    }
    workgroupBarrier();
    var out = vec4<f32>(0.0);
    if (tile_lead(l)) {
        let unit = l % TU;
        let q = l / TU;
        for (var j = 0u; j < 2u * KS; j++) {
            out += wsm[(j * TU + unit) * 4u + q];
        }
    }
    return out;
}

// tile_wt_dgh's blocked loop (TU = 32, chunks of 32 rows g). Accumulator a{c} holds the
// invocation's four units for sequence 4 sq + c.
fn tile_wt_dgh_blocked(l: u32, wg: vec3<u32>) -> vec4<f32> {
    let d = wg.z;
    let u0 = wg.x * 32u;
    let b0 = wg.y * TB;
    let uq = l % 8u;
    let sq = (l / 8u) % 4u;
    let slice = l / 32u;
    let w = w_hh(d);
    if (!recurrent()) {
        return vec4<f32>(0.0);
    }
    var a0 = vec4<f32>(0.0);
    var a1 = vec4<f32>(0.0);
    var a2 = vec4<f32>(0.0);
    var a3 = vec4<f32>(0.0);
    let col = tile_wt_col(w, u0, l);
    let src = state_src(d, b0, l, 128u, 4u, 32u, true, false);
    // Two parts of 16 rows of weights a chunk (wt.p0, wt.p1), one of 32 rows of dgh.
    var wt = w_column_parts(col, 0u, 2u);
    var st = tile_states(src, 0u, 4u);
    for (var g0 = 0u; g0 < p.gh; g0 += 32u) {
        stage_wt4(0u, l, 0u, wt.p0);
        stage_wt4(0u, l, 16u, wt.p1);
        stage_states(0u, l, 128u, 4u, 32u, false, st);
        workgroupBarrier();
        let g1 = g0 + 32u;
        if (g1 < p.gh) {
            wt = w_column_parts(col, g1, 2u);
            st = tile_states(src, g1, 4u);
        }
        for (var j = 0u; j < 8u; j++) {
            let kk = slice * 8u + j;
            let wv = wsm[kk * 8u + uq];
            let h = h_tile[kk * 4u + sq];
            a0 += wv * h.x;
            a1 += wv * h.y;
            a2 += wv * h.z;
            a3 += wv * h.w;
        }
        workgroupBarrier();
    }
    let blk = sq * 8u + uq;
    if (slice > 0u) {
        let base = ((slice - 1u) * 32u + blk) * 4u;
        wsm[base] = a0;
        wsm[base + 1u] = a1;
        wsm[base + 2u] = a2;
        wsm[base + 3u] = a3;
    }
    workgroupBarrier();
    if (slice == 0u) {
        let r0 = blk * 4u;
        let r1 = (32u + blk) * 4u;
        let r2 = (64u + blk) * 4u;
        wsm[r0] = a0 + wsm[r0] + wsm[r1] + wsm[r2];
        wsm[r0 + 1u] = a1 + wsm[r0 + 1u] + wsm[r1 + 1u] + wsm[r2 + 1u];
        wsm[r0 + 2u] = a2 + wsm[r0 + 2u] + wsm[r1 + 2u] + wsm[r2 + 2u];
        wsm[r0 + 3u] = a3 + wsm[r0 + 3u] + wsm[r1 + 3u] + wsm[r2 + 3u];
    }
    workgroupBarrier();
    let u = l % 32u;
    let fb = ((l / 32u) * 8u + u / 4u) * 4u;
    let lane = u % 4u;
    return vec4<f32>(wsm[fb][lane], wsm[fb + 1u][lane], wsm[fb + 2u][lane], wsm[fb + 3u][lane]);
}
