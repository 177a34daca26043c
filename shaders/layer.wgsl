// layer.wgsl: bindings, parameters and indexing shared by every recurrent-cell kernel file
// (prepended to elman_cell.wgsl, lstm_cell.wgsl, gru_cell.wgsl, jordan_cell.wgsl; the host
// side is src/backend/wgpu/layer.rs).
//
// Bindings (group 0; each entry point uses a subset, and touches every one it is given):
//   0 uniform LP      step index, sizes, flags, cache section offsets, parameter offsets
//   1 params  f32[]   read: the flat parameter array
//   2 cache   CT[]    read_write: the layer cache (sections below), in the storage type CT
//                     the host declares before this file: f32, or f16 under `--precision
//                     f16` (records rounded to f16 when stored; all arithmetic in f32)
//   3 y       f32[]   read_write: layer output [T, B, D*out] (forward; also read in the
//                     backward, where it holds hs when the flags say so)
//   4 st_h    f32[]   read: initial h [D, B, R] (forward) / gradient of the final h (backward)
//   5 st_c    f32[]   read: initial c [D, B, C] (forward) / gradient of the final c (backward)
//   6 lens    u32[]   read: sequence lengths [B]
//   7 dy      f32[]   read: gradient of the layer output [T, B, D*out] (backward)
//   8 out_h   f32[]   read_write: final h (forward) / gradient of the initial h (backward)
//   9 out_c   f32[]   read_write: final c (forward) / gradient of the initial c (backward)
//  10 gates   f32[]   read_write: the layer call's gate sections xp / dxp / dgh (below),
//                     a buffer of their own that lives only while the layer's forward or
//                     backward runs
//
// Sections, each [D][T][B][width] (row index (d*T + t)*B + b), except dc [D][B][C]; xp, dxp,
// dgh, scr and dc are in `gates`, the forward's records (h0, c0, hs, cs, rec) in `cache`:
//   xp  (G*H)  W_ih x_t + b_ih            h0 [D][B][R] initial recurrent state (0 if none)
//   c0 [D][B][C] initial cell state       hs (R)   state after the step
//   cs  (C)    cell state after the step  rec (K)  the cell's own record
//   dxp (G*H)  gradient of xp             dgh (G*H) gradient of W_hh h + b_hh
//   scr (S)    the cell's backward scratch dc (C)  running gradient of the cell state
// The cache keeps what the backward needs from the forward; `gates` is made for the forward
// (xp, read only by the forward steps) and again for the backward (dxp, and dgh where it
// differs from dxp: the PyTorch-variant GRU; elsewhere dgh is dxp; the scratch and dc), so
// a row of the layer holds no gate-wide section or scratch between its forward and its
// backward. The host's Layout says where each section is.
//
// Step s of sequence b in direction d is time t = s (forward) or len_b - 1 - s (reverse);
// invocations with s >= len_b do nothing, so finished sequences cost no work.

struct LP {
    s: u32, batch: u32, time: u32, dirs: u32,
    hidden: u32, rw: u32, cw: u32, gh: u32,
    out_w: u32, out: u32, kw: u32, sw: u32,
    flags: u32, xp: u32, h0: u32, c0: u32,
    hs: u32, cs: u32, rec: u32, dxp: u32,
    dgh: u32, scr: u32, dc: u32, dgh0: u32,
    w_hh0: u32, w_hh1: u32, b_hh0: u32, b_hh1: u32,
    ex00: u32, ex01: u32, ex10: u32, ex11: u32,
    opt0: u32, opt1: u32, opt2: u32, opt3: u32,
}

@group(0) @binding(0) var<uniform> p: LP;
@group(0) @binding(1) var<storage, read> params: array<f32>;
@group(0) @binding(2) var<storage, read_write> cache: array<CT>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read> st_h: array<f32>;
@group(0) @binding(5) var<storage, read> st_c: array<f32>;
@group(0) @binding(6) var<storage, read> lens: array<u32>;
@group(0) @binding(7) var<storage, read> dy: array<f32>;
@group(0) @binding(8) var<storage, read_write> out_h: array<f32>;
@group(0) @binding(9) var<storage, read_write> out_c: array<f32>;
@group(0) @binding(10) var<storage, read_write> gates: array<f32>;

// flags
const HAS_STATE: u32 = 1u;   // st_h/st_c hold values (initial state / final-state gradient)
const RECURRENT: u32 = 2u;   // the step sees the previous state
const HS_IN_Y: u32 = 4u;     // hs lives in y (the layer output holds the same values)

fn has_state() -> bool { return (p.flags & HAS_STATE) != 0u; }
fn recurrent() -> bool { return (p.flags & RECURRENT) != 0u; }
fn hs_in_y() -> bool { return (p.flags & HS_IN_Y) != 0u; }

// Index in y of element k of hs row (d*T + t)*B + b: y is [T][B][D*out], and with HS_IN_Y
// the state is the output (out = R; no dropout on the layer's output), so the cache keeps
// no copy of it.
fn hs_index(row: u32, k: u32) -> u32 {
    let rows = p.time * p.batch;
    return (row % rows) * p.out_w + (row / rows) * p.out + k;
}

// Element k of the state after the step of `row`.
fn hs_get(row: u32, k: u32) -> f32 {
    if (hs_in_y()) {
        return y[hs_index(row, k)];
    }
    return f32(cache[p.hs + row * p.rw + k]);
}

// Stores element k of the state after the step of `row`.
fn hs_set(row: u32, k: u32, v: f32) {
    if (hs_in_y()) {
        y[hs_index(row, k)] = v;
    } else {
        cache[p.hs + row * p.rw + k] = CT(v);
    }
}

// Bindings every forward step entry uses.
fn touch_forward() {
    _ = arrayLength(&params);
    _ = arrayLength(&cache);
    _ = arrayLength(&gates);
    _ = arrayLength(&y);
    _ = arrayLength(&st_h);
    _ = arrayLength(&st_c);
    _ = arrayLength(&lens);
}

// Bindings every backward step entry uses.
fn touch_backward() {
    _ = arrayLength(&params);
    _ = arrayLength(&y);
    _ = arrayLength(&cache);
    _ = arrayLength(&gates);
    _ = arrayLength(&st_h);
    _ = arrayLength(&st_c);
    _ = arrayLength(&lens);
    _ = arrayLength(&dy);
}

// Bindings every final-state / initial-state-gradient entry uses.
fn touch_final() {
    _ = arrayLength(&params);
    _ = arrayLength(&y);
    _ = arrayLength(&cache);
    _ = arrayLength(&gates);
    _ = arrayLength(&lens);
    _ = arrayLength(&out_h);
    _ = arrayLength(&out_c);
}

// Time of step s of sequence b in direction d (valid only when s < lens[b]).
fn time_of(d: u32, b: u32, s: u32) -> u32 {
    if (d == 0u) {
        return s;
    }
    return lens[b] - 1u - s;
}

// Cache row of (d, t, b).
fn row_of(d: u32, t: u32, b: u32) -> u32 {
    return (d * p.time + t) * p.batch + b;
}

// Row of the step before step s (in the direction's order); only for s >= 1.
fn prev_row(d: u32, b: u32, s: u32) -> u32 {
    return row_of(d, time_of(d, b, s - 1u), b);
}

// Row of the step after step s; only for s + 1 < lens[b].
fn next_row(d: u32, b: u32, s: u32) -> u32 {
    return row_of(d, time_of(d, b, s + 1u), b);
}

fn w_hh(d: u32) -> u32 { return select(p.w_hh0, p.w_hh1, d == 1u); }
fn b_hh(d: u32) -> u32 { return select(p.b_hh0, p.b_hh1, d == 1u); }
fn ex0(d: u32) -> u32 { return select(p.ex00, p.ex01, d == 1u); }
fn ex1(d: u32) -> u32 { return select(p.ex10, p.ex11, d == 1u); }

// Previous recurrent state element k of step s (0 when not recurrent or no initial state),
// in the forward (st_h holds the initial state).
fn h_prev(d: u32, b: u32, s: u32, k: u32) -> f32 {
    if (!recurrent()) {
        return 0.0;
    }
    if (s == 0u) {
        if (has_state()) {
            return st_h[(d * p.batch + b) * p.rw + k];
        }
        return 0.0;
    }
    return hs_get(prev_row(d, b, s), k);
}

// Previous cell state element k of step s.
fn c_prev(d: u32, b: u32, s: u32, k: u32) -> f32 {
    if (!recurrent()) {
        return 0.0;
    }
    if (s == 0u) {
        if (has_state()) {
            return st_c[(d * p.batch + b) * p.cw + k];
        }
        return 0.0;
    }
    return f32(cache[p.cs + prev_row(d, b, s) * p.cw + k]);
}

// At a sequence's first step, copies its initial recurrent state into h0 (elements k = j,
// j + H, ... < R), where the backward reads h_{t-1} of step 0 (h_before; its other steps'
// h_{t-1} is the previous row of hs).
fn record_h0(d: u32, b: u32, s: u32, j: u32) {
    if (s != 0u) {
        return;
    }
    for (var k = j; k < p.rw; k += p.hidden) {
        cache[p.h0 + (d * p.batch + b) * p.rw + k] = CT(h_prev(d, b, 0u, k));
    }
}

// h_{t-1}[k] of step p.s of sequence b, from the cache alone (the backward's st_h holds the
// final-state gradient, not the initial state); 0 when not recurrent.
fn h_before(d: u32, b: u32, k: u32) -> f32 {
    if (!recurrent()) {
        return 0.0;
    }
    if (p.s == 0u) {
        return f32(cache[p.h0 + (d * p.batch + b) * p.rw + k]);
    }
    return hs_get(prev_row(d, b, p.s), k);
}

// dgh of each sequence's first step gathered into dgh0 [D][B][G*H] (gates), for the
// initial-state term of dW_hh. Invocations (g, b, d), g < G*H.
@compute @workgroup_size(64, 1, 1)
fn gather_first_dgh(@builtin(global_invocation_id) gid: vec3<u32>) {
    _ = arrayLength(&params);
    _ = arrayLength(&y);
    _ = arrayLength(&cache);
    _ = arrayLength(&lens);
    let g = gid.x;
    let b = gid.y;
    let d = gid.z;
    if (g >= p.gh) {
        return;
    }
    let first = row_of(d, time_of(d, b, 0u), b);
    gates[p.dgh0 + (d * p.batch + b) * p.gh + g] = gates[p.dgh + first * p.gh + g];
}

// Pre-activation of a single-gate cell (Elman, Jordan) for unit j of step s at `row`:
// xp[row, j] + b_hh[j] + sum_k W_hh[j, k] * h_prev(k).
fn single_gate_pre(d: u32, b: u32, s: u32, row: u32, j: u32) -> f32 {
    var a = gates[p.xp + row * p.gh + j] + params[b_hh(d) + j];
    let w = w_hh(d) + j * p.rw;
    for (var k = 0u; k < p.rw; k++) {
        a += params[w + k] * h_prev(d, b, s, k);
    }
    return a;
}

// sum_g W_hh[g, k] * dgh[row, g]: the gradient reaching element k of the state that fed the
// step at `row` through W_hh.
fn w_hh_t_dgh(d: u32, row: u32, k: u32) -> f32 {
    let w = w_hh(d);
    var acc = 0.0;
    for (var g = 0u; g < p.gh; g++) {
        acc += params[w + g * p.rw + k] * gates[p.dgh + row * p.gh + g];
    }
    return acc;
}

// Gradient reaching element k of the recurrent state of step s from step s + 1 through
// W_hh: sum_g W_hh[g, k] * dgh[next, g] (0 when not recurrent or at the sequence's end,
// where the final-state gradient st_h enters instead).
fn dh_from_next(d: u32, b: u32, s: u32, k: u32) -> f32 {
    if (s + 1u >= lens[b]) {
        if (has_state()) {
            return st_h[(d * p.batch + b) * p.rw + k];
        }
        return 0.0;
    }
    if (!recurrent()) {
        return 0.0;
    }
    return w_hh_t_dgh(d, next_row(d, b, s), k);
}

// Gradient of the initial recurrent state element k: sum_g W_hh[g, k] * dgh[first row, g].
fn dh_initial(d: u32, b: u32, k: u32) -> f32 {
    if (!recurrent()) {
        return 0.0;
    }
    return w_hh_t_dgh(d, row_of(d, time_of(d, b, 0u), b), k);
}

// Final state: h and c after each sequence's last step (out_h [D, B, R], out_c [D, B, C]).
// Invocation (k, b, d), k < max(R, C).
@compute @workgroup_size(64, 1, 1)
fn final_state(@builtin(global_invocation_id) gid: vec3<u32>) {
    touch_final();
    let k = gid.x;
    let b = gid.y;
    let d = gid.z;
    let last = row_of(d, time_of(d, b, lens[b] - 1u), b);
    if (k < p.rw) {
        out_h[(d * p.batch + b) * p.rw + k] = hs_get(last, k);
    }
    if (k < p.cw) {
        out_c[(d * p.batch + b) * p.cw + k] = f32(cache[p.cs + last * p.cw + k]);
    }
}

// ---- Tiled recurrent products, for the cells' *_tiled entry points ----
// A workgroup of 4 * TU invocations owns TU units (TU = 16, 32 or 64, an override the host
// picks so the grid fills the GPU) of one direction (workgroup id z) for TB = 16 sequences: units
// u0 = TU * wg.x .., sequences b0 = 16 * wg.y ..; on return, invocation l holds unit
// u0 + l % TU for the four sequences b0 + 4 (l / TU) + 0..3, one vec4 lane each.
// The inner dimension goes in chunks of TK = 16 (32 in the blocked backward). Each chunk of
// the weights and of the state goes through workgroup memory, loaded so that 16 consecutive
// invocations read 16 consecutive addresses; every weight element loaded serves 16
// sequences. The next chunk's global loads are issued into registers (named vec4s, never a
// private array) before the current chunk's arithmetic, so their latency hides behind it.
// Sums run along the inner dimension in ascending order within each partial sum. Call these
// from uniform control flow (they hold barriers); workgroups (ceil(H / TU), ceil(B / 16), D).
//
// Two inner loops, chosen by the STEP_BLOCKED override:
// - plain (any TU): invocation l accumulates its own outputs over the whole inner
//   dimension; per k step it reads one vec4 of states and one weight per gate (4
//   multiply-adds per shared-memory read in the forward, 2 in the backward).
// - blocked (TU = 32, 128 invocations): invocation l = 32 slice + 8 sq + uq owns a 4-unit x
//   4-sequence block (units 4 uq.., sequences 4 sq..) of every gate and a quarter of each
//   chunk's k steps (its slice); per k step it reads one vec4 of weights per gate and one
//   vec4 of states (16 multiply-adds per read). The four slices' partial sums are added
//   through workgroup memory at the end, and the results handed out in the plain mapping.
//   Its 16 forward accumulators are generated code (`// @generate step_*`, expanded by
//   src/backend/wgpu/codegen.rs).
override TU: u32 = 64u;
override STEP_BLOCKED: bool = false;
const TB: u32 = 16u;
const TK: u32 = 16u;
// Shared by both loops: the staged weights during the loop, the partial sums after it.
var<workgroup> wsm: array<vec4<f32>, 1536>;
var<workgroup> h_tile: array<vec4<f32>, 128>; // [chunk][TB / 4]: states (or dgh) of 16 sequences

fn wsm_get(i: u32) -> f32 {
    return wsm[i >> 2u][i & 3u];
}

fn wsm_set(i: u32, v: f32) {
    wsm[i >> 2u][i & 3u] = v;
}

// One vec4 (four sequences) per gate row block.
struct Gates4 {
    g0: vec4<f32>,
    g1: vec4<f32>,
    g2: vec4<f32>,
    g3: vec4<f32>,
}

// Weight W_hh[gate * H + unit, k] of the tile, 0 outside the matrix.
fn tile_w(w: u32, gate: u32, unit: u32, k: u32) -> f32 {
    if (unit < p.hidden && k < p.rw) {
        return params[w + (gate * p.hidden + unit) * p.rw + k];
    }
    return 0.0;
}

// Four weights of `gate` for this invocation's load slot in the chunk at k0: tile units
// l / 16 + i * TU / 4 (i = 0..3) at k = k0 + l % 16.
fn tile_w4(w: u32, gate: u32, u0: u32, k0: u32, l: u32) -> vec4<f32> {
    let u = u0 + l / TK;
    let k = k0 + l % TK;
    let step = TU / 4u;
    return vec4<f32>(tile_w(w, gate, u, k), tile_w(w, gate, u + step, k),
                     tile_w(w, gate, u + 2u * step, k), tile_w(w, gate, u + 3u * step, k));
}

// Stores tile_w4's slot. Plain loop: weight (kk, gate, tile unit) at float kk * rs + gate *
// TU + unit (row stride rs floats). Blocked loop (TU = 32): in vec4 kk * rs + gate * 8 +
// unit / 4, lane unit % 4 (row stride rs vec4s).
fn stage_w4(gate: u32, l: u32, rs: u32, v: vec4<f32>) {
    if (STEP_BLOCKED) {
        let u = l / TK;
        let base = (l % TK) * rs + gate * 8u + u / 4u;
        let lane = u % 4u;
        wsm[base][lane] = v.x;
        wsm[base + 2u][lane] = v.y;
        wsm[base + 4u][lane] = v.z;
        wsm[base + 6u][lane] = v.w;
        return;
    }
    let base = (l % TK) * rs + gate * TU + l / TK;
    let step = TU / 4u;
    wsm_set(base, v.x);
    wsm_set(base + step, v.y);
    wsm_set(base + 2u * step, v.z);
    wsm_set(base + 3u * step, v.w);
}

// The weight chunk at k0 of this invocation's load slot, one vec4 per gate < gates (the
// registers that carry it from one chunk to the next).
fn tile_w_gates(w: u32, u0: u32, k0: u32, l: u32, gates: u32) -> Gates4 {
    var v = Gates4(tile_w4(w, 0u, u0, k0, l), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
    if (gates > 1u) { v.g1 = tile_w4(w, 1u, u0, k0, l); }
    if (gates > 2u) { v.g2 = tile_w4(w, 2u, u0, k0, l); }
    if (gates > 3u) { v.g3 = tile_w4(w, 3u, u0, k0, l); }
    return v;
}

// Stores tile_w_gates' registers into workgroup memory.
fn stage_w_gates(l: u32, rs: u32, v: Gates4, gates: u32) {
    stage_w4(0u, l, rs, v.g0);
    if (gates > 1u) { stage_w4(1u, l, rs, v.g1); }
    if (gates > 2u) { stage_w4(2u, l, rs, v.g2); }
    if (gates > 3u) { stage_w4(3u, l, rs, v.g3); }
}

// Element e of the [TB][width] state chunk at k0: h_{t-1}[k0 + e % width] of sequence
// b0 + e / width, 0 outside the batch, the state or the sequence.
fn tile_h(d: u32, b0: u32, k0: u32, e: u32, width: u32) -> f32 {
    let b = b0 + e / width;
    let k = k0 + e % width;
    if (b < p.batch && k < p.rw && p.s < lens[b]) {
        return h_prev(d, b, p.s, k);
    }
    return 0.0;
}

// Element e of the [TB][width] chunk at g0 of dgh at the next step: dgh[next, g0 + e % width]
// of sequence b0 + e / width, 0 outside the batch, the gates or the sequence's steps.
fn tile_dgh(d: u32, b0: u32, g0: u32, e: u32, width: u32) -> f32 {
    let b = b0 + e / width;
    let g = g0 + e % width;
    if (b < p.batch && g < p.gh && p.s + 1u < lens[b]) {
        return gates[p.dgh + next_row(d, b, p.s) * p.gh + g];
    }
    return 0.0;
}

// Stores element e of a [TB][width] chunk into h_tile ([width][TB] as vec4s of 4 sequences).
fn stage_h(e: u32, v: f32, width: u32) {
    let b = e / width;
    h_tile[(e % width) * 4u + b / 4u][b % 4u] = v;
}

// Element e of a [TB][width] chunk at k0: of the previous states, or (from_dgh) of dgh at
// the next step.
fn tile_state(d: u32, b0: u32, k0: u32, e: u32, width: u32, from_dgh: bool) -> f32 {
    if (from_dgh) {
        return tile_dgh(d, b0, k0, e, width);
    }
    return tile_h(d, b0, k0, e, width);
}

// The elements l + i * stride (i < count: 1, 2 or 4) of a [TB][width] chunk at k0 that
// invocation l loads, as the lanes of one vec4 (the registers that carry them from one
// chunk to the next); count * stride = TB * width.
fn tile_states(d: u32, b0: u32, k0: u32, l: u32, stride: u32, count: u32, width: u32,
               from_dgh: bool) -> vec4<f32> {
    var v = vec4<f32>(tile_state(d, b0, k0, l, width, from_dgh), 0.0, 0.0, 0.0);
    if (count > 1u) { v.y = tile_state(d, b0, k0, l + stride, width, from_dgh); }
    if (count > 2u) {
        v.z = tile_state(d, b0, k0, l + 2u * stride, width, from_dgh);
        v.w = tile_state(d, b0, k0, l + 3u * stride, width, from_dgh);
    }
    return v;
}

// Stores tile_states' lanes into h_tile.
fn stage_states(l: u32, stride: u32, count: u32, width: u32, v: vec4<f32>) {
    stage_h(l, v.x, width);
    if (count > 1u) { stage_h(l + stride, v.y, width); }
    if (count > 2u) {
        stage_h(l + 2u * stride, v.z, width);
        stage_h(l + 3u * stride, v.w, width);
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
    let u = l % TU;
    let q = l / TU;
    let w = w_hh(d);
    let threads = 4u * TU;
    // Row stride of the staged weights: gates * TU + 1 (the 1 spreads the transposed stores
    // over the memory banks).
    let rs = gates * TU + 1u;
    var acc = Gates4(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
    if (!recurrent()) {
        return acc;
    }
    // Registers holding the next chunk: one vec4 of weights per gate, and the 256 state
    // elements of a chunk spread over the workgroup's invocations (1, 2 or 4 each).
    let count = TB * TK / threads;
    var wt = tile_w_gates(w, u0, 0u, l, gates);
    var st = tile_states(d, b0, 0u, l, threads, count, TK, false);
    for (var k0 = 0u; k0 < p.rw; k0 += TK) {
        stage_w_gates(l, rs, wt, gates);
        stage_states(l, threads, count, TK, st);
        workgroupBarrier();
        let k1 = k0 + TK;
        if (k1 < p.rw) {
            wt = tile_w_gates(w, u0, k1, l, gates);
            st = tile_states(d, b0, k1, l, threads, count, TK, false);
        }
        for (var kk = 0u; kk < TK; kk++) {
            let h = h_tile[kk * 4u + q];
            let wb = kk * rs + u;
            acc.g0 += wsm_get(wb) * h;
            if (gates > 1u) {
                acc.g1 += wsm_get(wb + TU) * h;
            }
            if (gates > 2u) {
                acc.g2 += wsm_get(wb + 2u * TU) * h;
            }
            if (gates > 3u) {
                acc.g3 += wsm_get(wb + 3u * TU) * h;
            }
        }
        workgroupBarrier();
    }
    return acc;
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
    var wt = tile_w_gates(w, u0, 0u, l, gates);
    var st = tile_states(d, b0, 0u, l, 128u, 2u, TK, false);
    for (var k0 = 0u; k0 < p.rw; k0 += TK) {
        stage_w_gates(l, rs, wt, gates);
        stage_states(l, 128u, 2u, TK, st);
        workgroupBarrier();
        let k1 = k0 + TK;
        if (k1 < p.rw) {
            wt = tile_w_gates(w, u0, k1, l, gates);
            st = tile_states(d, b0, k1, l, 128u, 2u, TK, false);
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

// W_hh[g0 + l / TU + 4 i, unit u0 + l % TU] for i = 0..3: this invocation's load slot of the
// [16][TU] weight chunk at g0 in tile_wt_dgh; 0 outside the matrix.
fn tile_wt4(w: u32, u0: u32, g0: u32, l: u32) -> vec4<f32> {
    let unit = u0 + l % TU;
    let g = g0 + l / TU;
    var v = vec4<f32>(0.0);
    if (unit < p.hidden && unit < p.rw) {
        if (g < p.gh) { v.x = params[w + g * p.rw + unit]; }
        if (g + 4u < p.gh) { v.y = params[w + (g + 4u) * p.rw + unit]; }
        if (g + 8u < p.gh) { v.z = params[w + (g + 8u) * p.rw + unit]; }
        if (g + 12u < p.gh) { v.w = params[w + (g + 12u) * p.rw + unit]; }
    }
    return v;
}

// Stores tile_wt4's slot at chunk row offset g_off: weight (g, tile unit) at float
// (g_off + g) * TU + unit.
fn stage_wt4(l: u32, g_off: u32, v: vec4<f32>) {
    let slot = (g_off + l / TU) * TU + l % TU;
    wsm_set(slot, v.x);
    wsm_set(slot + 4u * TU, v.y);
    wsm_set(slot + 8u * TU, v.z);
    wsm_set(slot + 12u * TU, v.w);
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
    let u = l % TU;
    let q = l / TU;
    let w = w_hh(d);
    let threads = 4u * TU;
    var acc = vec4<f32>(0.0);
    if (!recurrent()) {
        return acc;
    }
    let count = TB * TK / threads;
    var w0 = tile_wt4(w, u0, 0u, l);
    var st = tile_states(d, b0, 0u, l, threads, count, TK, true);
    for (var g0 = 0u; g0 < p.gh; g0 += TK) {
        stage_wt4(l, 0u, w0);
        stage_states(l, threads, count, TK, st);
        workgroupBarrier();
        let g1 = g0 + TK;
        if (g1 < p.gh) {
            w0 = tile_wt4(w, u0, g1, l);
            st = tile_states(d, b0, g1, l, threads, count, TK, true);
        }
        for (var kk = 0u; kk < TK; kk++) {
            acc += wsm_get(kk * TU + u) * h_tile[kk * 4u + q];
        }
        workgroupBarrier();
    }
    return acc;
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
    var w0 = tile_wt4(w, u0, 0u, l);
    var w1 = tile_wt4(w, u0, 16u, l);
    var st = tile_states(d, b0, 0u, l, 128u, 4u, 32u, true);
    for (var g0 = 0u; g0 < p.gh; g0 += 32u) {
        stage_wt4(l, 0u, w0);
        stage_wt4(l, 16u, w1);
        stage_states(l, 128u, 4u, 32u, st);
        workgroupBarrier();
        let g1 = g0 + 32u;
        if (g1 < p.gh) {
            w0 = tile_wt4(w, u0, g1, l);
            w1 = tile_wt4(w, u0, g1 + 16u, l);
            st = tile_states(d, b0, g1, l, 128u, 4u, 32u, true);
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

// dh_t[j] of sequence b (a valid step) given wt = tile_wt_dgh's lane for b: dy plus what comes
// from the next step, or the final-state gradient at the sequence's last step (as
// dh_from_next).
fn tile_dh(d: u32, b: u32, j: u32, wt: f32) -> f32 {
    var from_next = wt;
    if (p.s + 1u >= lens[b]) {
        from_next = 0.0;
        if (has_state()) {
            from_next = st_h[(d * p.batch + b) * p.rw + j];
        }
    }
    let t = time_of(d, b, p.s);
    return dy[(t * p.batch + b) * p.out_w + d * p.out + j] + from_next;
}

// Whether lane sequence b of a tile has a step p.s. The tiled entry points hand lane c of
// their vec4 accumulators to the cell's update for sequence b0 + 4 q + c (a vector, not a
// private array, so indexing it by the lane keeps it in registers).
fn tile_has(b: u32) -> bool {
    return b < p.batch && p.s < lens[b];
}
