// layer.wgsl: bindings, parameters and indexing shared by every recurrent-cell kernel file
// (prepended to elman_cell.wgsl, lstm_cell.wgsl, gru_cell.wgsl, jordan_cell.wgsl, with the
// tiled steps' products, step_tiles.wgsl, step_coop.wgsl or step_gemv.wgsl, in between; the
// host side is src/backend/wgpu/layer.rs, `CellShader`).
//
// Bindings (group 0; each entry point uses a subset, and touches every one it is given):
//   0 uniform LP      step index, sizes, flags, cache section offsets, parameter offsets
//                     (the cell's options are the override constants OPT0..OPT3)
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
//  10 gates   f32[]   read_write: the layer call's gate sections xp / dxp / dgh (below;
//                     in the cache with GATES_IN_REC), the scratch and dc, a buffer of
//                     their own that lives only while the layer's forward or backward runs
//
// Sections, each [D][T][B][width] (row index (d*T + t)*B + b), except dc [D][B][C]; xp, dxp,
// dgh, scr and dc are in `gates` (xp, dxp and dgh in rec instead with GATES_IN_REC, see
// xp_get), the forward's records (h0, c0, hs, cs, rec) in `cache`:
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
    y0: u32, sh0: u32, sc0: u32, dy0: u32,
    w16: u32, hs_y: u32, pad1: u32, pad2: u32,
}

// The cell's four options (activations, variant, option bits; each cell file says which),
// fixed for a layer: pipeline-overridable constants rather than uniform words, so every
// driver compiles each layer's kernels with the other options' branches gone (and lavapipe,
// which re-specialises a shader on uniform values that decide its branches, does not
// compile a fresh variant per step: 11 ms a dispatch for the GRU's backward).
override OPT0: u32 = 0u;
override OPT1: u32 = 0u;
override OPT2: u32 = 0u;
override OPT3: u32 = 0u;

// The step's parameters. A joined step of several layers' steps (the layer pipeline,
// src/backend/wgpu/stack.rs) is built with these two lines replaced: its uniform holds one LP
// per layer, and take_layer copies the workgroup's (workgroup_id.z) into a private p; the
// words every layer has alike (batch to flags) are read from the first LP instead, so what
// they decide stays uniform control flow for the compiler (barriers, matrix operations).
@group(0) @binding(0) var<uniform> p: LP;
fn take_layer(wg: vec3<u32>) -> vec3<u32> { return wg; }
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

// flags (the same for every layer of a joined step; hs_y, which is not, is a word of its own)
const HAS_STATE: u32 = 1u;   // st_h/st_c hold values (initial state / final-state gradient)
const RECURRENT: u32 = 2u;   // the step sees the previous state
const GATES_IN_REC: u32 = 8u; // xp, dxp and dgh (= dxp) live in the cache's record (below)

fn has_state() -> bool { return (p.flags & HAS_STATE) != 0u; }
fn recurrent() -> bool { return (p.flags & RECURRENT) != 0u; }
// hs lives in y (the layer output holds the same values).
fn hs_in_y() -> bool { return p.hs_y != 0u; }

// Index in y of element k of hs row (d*T + t)*B + b: y is [T][B][D*out], and with hs_y
// the state is the output (out = R; no dropout on the layer's output), so the cache keeps
// no copy of it.
fn hs_index(row: u32, k: u32) -> u32 {
    let rows = p.time * p.batch;
    return p.y0 + (row % rows) * p.out_w + (row / rows) * p.out + k;
}

// Index in y (or, from p.dy0, in dy) of unit j of direction d at time t of sequence b.
fn y_at(t: u32, b: u32, d: u32, j: u32) -> u32 {
    return p.y0 + (t * p.batch + b) * p.out_w + d * p.out + j;
}
fn dy_at(t: u32, b: u32, d: u32, j: u32) -> u32 {
    return p.dy0 + (t * p.batch + b) * p.out_w + d * p.out + j;
}

// Index in st_h (st_c) of element k of sequence b's state in direction d.
fn st_h_at(d: u32, b: u32, k: u32) -> u32 {
    return p.sh0 + (d * p.batch + b) * p.rw + k;
}
fn st_c_at(d: u32, b: u32, k: u32) -> u32 {
    return p.sc0 + (d * p.batch + b) * p.cw + k;
}

// Where the state after the step of `row` starts: in y with hs_y, else in the cache.
fn hs_at(row: u32) -> u32 {
    if (hs_in_y()) {
        return hs_index(row, 0u);
    }
    return p.hs + row * p.rw;
}

// Element k of the state after the step of `row`.
fn hs_get(row: u32, k: u32) -> f32 {
    if (hs_in_y()) {
        return y[hs_at(row) + k];
    }
    return f32(cache[hs_at(row) + k]);
}

// Stores element k of the state after the step of `row`.
fn hs_set(row: u32, k: u32, v: f32) {
    if (hs_in_y()) {
        y[hs_at(row) + k] = v;
    } else {
        cache[hs_at(row) + k] = CT(v);
    }
}

// The gate sections xp, dxp and dgh: rows of `gates` (stride G*H), or with GATES_IN_REC
// the first G*H columns of the record rows (stride K) of an f32 cache whose record starts
// with one value per gate row (the LSTM's i, f, g, o, whose dgh is dxp). There the GEMM
// writes xp, the forward step reads each element where it then stores that gate's
// activation, and the backward step reads the activation where it then stores its gradient:
// the same invocation does both and nothing else reads the element of that step, so the
// layer needs no gate-wide buffer of its own (4 floats per row and unit less at the peak).
fn gates_in_rec() -> bool { return (p.flags & GATES_IN_REC) != 0u; }

// Where row `row` of the gate section starting at `section` (p.xp, p.dxp or p.dgh) starts:
// in the cache's records with GATES_IN_REC, else in `gates`.
fn gate_at(section: u32, row: u32) -> u32 {
    return section + row * select(p.gh, p.kw, gates_in_rec());
}

// xp[row, g] (forward).
fn xp_get(row: u32, g: u32) -> f32 {
    if (gates_in_rec()) {
        return f32(cache[gate_at(p.xp, row) + g]);
    }
    return gates[gate_at(p.xp, row) + g];
}

// dgh[row, g] (backward).
fn dgh_get(row: u32, g: u32) -> f32 {
    if (gates_in_rec()) {
        return f32(cache[gate_at(p.dgh, row) + g]);
    }
    return gates[gate_at(p.dgh, row) + g];
}

// Stores dxp[row, g] (backward).
fn dxp_set(row: u32, g: u32, v: f32) {
    if (gates_in_rec()) {
        cache[gate_at(p.dxp, row) + g] = CT(v);
    } else {
        gates[gate_at(p.dxp, row) + g] = v;
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
            return st_h[st_h_at(d, b, k)];
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
            return st_c[st_c_at(d, b, k)];
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
    gates[p.dgh0 + (d * p.batch + b) * p.gh + g] = dgh_get(first, g);
}

// Zeroes xp in the rows past each sequence's end where it lives in the record
// (GATES_IN_REC): the backward's products over all rows read dxp there, and no step
// writes those rows. Invocations (g, b, d), g < G*H.
@compute @workgroup_size(64, 1, 1)
fn clear_padding(@builtin(global_invocation_id) gid: vec3<u32>) {
    _ = arrayLength(&params);
    _ = arrayLength(&y);
    _ = arrayLength(&gates);
    _ = arrayLength(&lens);
    let g = gid.x;
    let b = gid.y;
    let d = gid.z;
    if (g >= p.gh || !gates_in_rec()) {
        return;
    }
    for (var t = lens[b]; t < p.time; t++) {
        cache[p.xp + row_of(d, t, b) * p.kw + g] = CT(0.0);
    }
}

// Pre-activation of a single-gate cell (Elman, Jordan) for unit j of step s at `row`:
// xp[row, j] + b_hh[j] + sum_k W_hh[j, k] * h_prev(k).
fn single_gate_pre(d: u32, b: u32, s: u32, row: u32, j: u32) -> f32 {
    var a = xp_get(row, j) + params[b_hh(d) + j];
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
        acc += params[w + g * p.rw + k] * dgh_get(row, g);
    }
    return acc;
}

// Gradient reaching element k of the recurrent state of step s from step s + 1 through
// W_hh: sum_g W_hh[g, k] * dgh[next, g] (0 when not recurrent or at the sequence's end,
// where the final-state gradient st_h enters instead).
fn dh_from_next(d: u32, b: u32, s: u32, k: u32) -> f32 {
    if (s + 1u >= lens[b]) {
        if (has_state()) {
            return st_h[st_h_at(d, b, k)];
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

// ---- Tiled recurrent steps: what the cells' *_tiled entry points share ----
// A workgroup of 4 * TU invocations owns TU units (TU = 16, 32 or 64, an override the host
// picks so the grid fills the GPU) of one direction (workgroup id z) for TB = 16 sequences
// (the f32 tiles' gated forwards: SQ * TU invocations and TB = 4 SQ, SQ below): units
// u0 = TU * wg.x .., sequences b0 = TB * wg.y ..; the recurrent products tile_w_h (forward)
// and tile_wt_dgh (backward) return, in invocation l, unit u0 + l % TU for the four sequences
// b0 + 4 (l / TU) + 0..3, one vec4 lane each. Three files implement them, and the host puts
// one of them after this file (and before the cell's): shaders/step_tiles.wgsl (f32 sums of
// f32 products, through workgroup memory), shaders/step_coop.wgsl (the same products on
// the matrix units, operands rounded to f16) and shaders/step_gemv.wgsl (f32 matrix-vector
// products for few sequences, TB = 4 below). Call them from uniform control flow (they hold
// barriers); workgroups (ceil(H / TU), ceil(B / TB), D). Below: the tile constants, the
// global loads both implementations share (each chunk of weights and states loaded so that
// 8 or 16 consecutive invocations read consecutive addresses, whole 32-byte sectors, into
// named vec4 registers that carry it to the next chunk, never a private array; where each
// load comes from is worked out once a step), and the cells' per-lane helpers.
// With KS > 1 (the f32 tiles' plain loops only) a workgroup has 4 * TU * KS invocations
// that split the inner dimension KS ways (shaders/step_tiles.wgsl); the results are in the
// lead invocations l < 4 * TU (tile_lead), and only those go on to the cell update.
// shaders/step_gemv.wgsl sets TB = 4: one sequence quad per workgroup, lead invocations
// l < TU.
override TU: u32 = 64u;
override KS: u32 = 1u;
override TB: u32 = 16u;
// Sequence quads of the f32 tiles' forward workgroup (TB / 4; 4 everywhere else): with 8
// (TB 32, the host's `PlainChunks::sq`, gated cells' plain loops only) a forward workgroup
// of SQ TU KS invocations reads each weight it stages for 32 sequences instead of 16, so
// tiles of half the units at the same workgroup count read W_hh half as often a step.
override SQ: u32 = 4u;
const TK: u32 = 16u;

// One vec4 (four sequences) per gate row block.
struct Gates4 {
    g0: vec4<f32>,
    g1: vec4<f32>,
    g2: vec4<f32>,
    g3: vec4<f32>,
}

// A forward workgroup's weight load slots (x) and their group (y) for slice invocation
// ls: 4 TU slots take a part of 16 k steps of a chunk (a vec4 of every gate each, w_rows);
// with SQ 8 a slice's SQ TU invocations are two groups of them.
fn load_slot(ls: u32) -> vec2<u32> {
    return select(vec2<u32>(ls, 0u), vec2<u32>(ls % (4u * TU), ls / (4u * TU)), SQ > 4u);
}

// The first gate (x) and the number of gates (y) load slot group `group` takes of a cell's
// `gates`: where `halves`, half of them each (the first group the larger half), else all.
fn load_gates(group: u32, gates: u32, halves: bool) -> vec2<u32> {
    let half = (gates + 1u) / 2u;
    let mine = vec2<u32>(group * half, select(half, gates - half, group == 1u));
    return select(vec2<u32>(0u, gates), mine, halves);
}

// Where tile_w_gates' loads come from, the same in every chunk of a step (computed once, before
// the chunk loop, so a chunk's loads are an add and a load each): lane i's weight of gate g
// at inner index k is params[at[i] + g H R + k] (unit u0 + l / 16 + i TU / 4 of the tile, k =
// k0 + l % 16 in the chunk at k0); ok[i] says the unit exists.
struct WRows {
    at: vec4<u32>,
    ok: vec4<bool>,
    col: u32,
}

fn w_rows(w: u32, u0: u32, l: u32) -> WRows {
    let u = vec4<u32>(u0 + l / TK) + vec4<u32>(0u, 1u, 2u, 3u) * (TU / 4u);
    return WRows(vec4<u32>(w) + u * p.rw, u < vec4<u32>(p.hidden), l % TK);
}

// Four weights of `gate` for this invocation's load slot in the chunk at k0 (w_rows), where
// the slot lies inside the matrix.
fn tile_w4_inside(r: WRows, gate: u32, k0: u32) -> vec4<f32> {
    let i = r.at + vec4<u32>(gate * p.hidden * p.rw + k0 + r.col);
    return vec4<f32>(params[i.x], params[i.y], params[i.z], params[i.w]);
}

// The same at the matrix's edges, 0 outside it: masked lanes load element 0 and read as 0.
fn tile_w4_edge(r: WRows, gate: u32, k0: u32) -> vec4<f32> {
    let k = k0 + r.col;
    let ok = r.ok & vec4<bool>(k < p.rw);
    let j = select(vec4<u32>(0u), r.at + vec4<u32>(gate * p.hidden * p.rw + k), ok);
    let v = vec4<f32>(params[j.x], params[j.y], params[j.z], params[j.w]);
    return select(vec4<f32>(0.0), v, ok);
}

// tile_w4_inside of every gate < gates (the others 0).
fn tile_w_gates_inside(r: WRows, k0: u32, gates: u32) -> Gates4 {
    let z = vec4<f32>(0.0);
    var v = Gates4(tile_w4_inside(r, 0u, k0), z, z, z);
    if (gates > 1u) { v.g1 = tile_w4_inside(r, 1u, k0); }
    if (gates > 2u) { v.g2 = tile_w4_inside(r, 2u, k0); }
    if (gates > 3u) { v.g3 = tile_w4_inside(r, 3u, k0); }
    return v;
}

// tile_w4_edge of every gate < gates (the others 0).
fn tile_w_gates_edge(r: WRows, k0: u32, gates: u32) -> Gates4 {
    let z = vec4<f32>(0.0);
    var v = Gates4(tile_w4_edge(r, 0u, k0), z, z, z);
    if (gates > 1u) { v.g1 = tile_w4_edge(r, 1u, k0); }
    if (gates > 2u) { v.g2 = tile_w4_edge(r, 2u, k0); }
    if (gates > 3u) { v.g3 = tile_w4_edge(r, 3u, k0); }
    return v;
}

// The weight chunk at k0 of this invocation's load slot, one vec4 per gate < gates (the
// registers that carry it from one chunk to the next); one test for all the gates of
// whether the slot lies inside the matrix.
fn tile_w_gates(r: WRows, k0: u32, gates: u32) -> Gates4 {
    var v: Gates4;
    if (all(r.ok) && k0 + TK <= p.rw) {
        v = tile_w_gates_inside(r, k0, gates);
    } else {
        v = tile_w_gates_edge(r, k0, gates);
    }
    return v;
}

// One vec4 per part of a chunk's inner dimension (up to 4): states, dgh or weight columns.
struct Parts4 {
    p0: vec4<f32>,
    p1: vec4<f32>,
    p2: vec4<f32>,
    p3: vec4<f32>,
}

// Which buffer the states (or dgh) of a step's chunks come from (StateSrc.src).
const SRC_ZERO: u32 = 0u;
const SRC_ST_H: u32 = 1u;
const SRC_Y: u32 = 2u;
const SRC_CACHE: u32 = 3u;
const SRC_GATES: u32 = 4u;

// Where tile_states' loads come from, the same in every chunk of a step (computed once,
// before the chunk loop: the sequences' lengths and rows are read and worked out there, not
// per chunk): lane i (< count) of the invocation's elements, element l + i stride of the
// [TB][width] chunk at k0 (placed by chunk_slot), is element at[i] + k0 of buffer `src`,
// where ok[i] says its sequence has the value at this step (at[i] is then its row's start
// plus its inner index col[i], else col[i] alone, an element any source holds); inner
// indices from `limit` on read as 0. In the forward the value is h_{t-1} (the previous
// step's state in y or the cache, or the initial state st_h), in the backward dgh of the
// next step.
struct StateSrc {
    at: vec4<u32>,
    col: vec4<u32>,
    ok: vec4<bool>,
    src: u32,
    limit: u32,
    width: u32,
}

// The buffer of a step's states (from_dgh: of its dgh), uniform over the dispatch.
fn state_kind(from_dgh: bool) -> u32 {
    if (from_dgh) {
        return select(SRC_GATES, SRC_CACHE, gates_in_rec());
    }
    if (!recurrent()) {
        return SRC_ZERO;
    }
    if (p.s == 0u) {
        return select(SRC_ZERO, SRC_ST_H, has_state());
    }
    return select(SRC_CACHE, SRC_Y, hs_in_y());
}

// Sequence b's states at this step: where its row starts in the step's buffer (x), and
// whether it has the value (y, 0 or 1).
fn state_lane(d: u32, b: u32, from_dgh: bool) -> vec2<u32> {
    let none = vec2<u32>(0u, 0u);
    if (b >= p.batch) {
        return none;
    }
    if (from_dgh) {
        if (p.s + 1u >= lens[b]) {
            return none;
        }
        return vec2<u32>(gate_at(p.dgh, next_row(d, b, p.s)), 1u);
    }
    if (p.s >= lens[b] || !recurrent()) {
        return none;
    }
    if (p.s == 0u) {
        return vec2<u32>(st_h_at(d, b, 0u), u32(has_state()));
    }
    return vec2<u32>(hs_at(prev_row(d, b, p.s)), 1u);
}

// Element e (< TB x width) of a [TB][width] chunk: its sequence (x) and inner index (y) in
// the chunk. Row by row (e / width, e % width), or for the plain step loops' 16 x 16 (or 32
// x 16) chunks (`plain`) so that a warp's 32 consecutive elements are 8 consecutive inner
// indices of 4 sequences: global loads still take whole 32-byte sectors, and the lanes'
// stores into the loops' padded staging (stage_states) fall on 32 distinct memory banks.
fn chunk_slot(e: u32, width: u32, plain: bool) -> vec2<u32> {
    if (plain) {
        return vec2<u32>(((e >> 3u) & 3u) | ((e >> 4u) & 28u), (e & 7u) | ((e >> 2u) & 8u));
    }
    return vec2<u32>(e / width, e % width);
}

// The sources of the elements l + i * stride (i < count: 1, 2 or 4; count * stride = TB *
// width) of a step's [TB][width] chunks of states (from_dgh: of dgh), placed by chunk_slot.
fn state_src(d: u32, b0: u32, l: u32, stride: u32, count: u32, width: u32, from_dgh: bool,
             plain: bool) -> StateSrc {
    var s = StateSrc(vec4<u32>(0u), vec4<u32>(0u), vec4<bool>(false), state_kind(from_dgh),
                     select(p.rw, p.gh, from_dgh), width);
    let e = vec4<u32>(l) + vec4<u32>(0u, 1u, 2u, 3u) * stride;
    let sx = chunk_slot(e.x, width, plain);
    let sy = chunk_slot(e.y, width, plain);
    let sz = chunk_slot(e.z, width, plain);
    let sw = chunk_slot(e.w, width, plain);
    s.col = vec4<u32>(sx.y, sy.y, sz.y, sw.y);
    let x = state_lane(d, b0 + sx.x, from_dgh);
    var lanes = vec4<u32>(x.x, 0u, 0u, 0u);
    var ok = vec4<u32>(x.y, 0u, 0u, 0u);
    if (count > 1u) {
        let v = state_lane(d, b0 + sy.x, from_dgh);
        lanes.y = v.x;
        ok.y = v.y;
    }
    if (count > 2u) {
        let v = state_lane(d, b0 + sz.x, from_dgh);
        let w = state_lane(d, b0 + sw.x, from_dgh);
        lanes.z = v.x;
        lanes.w = w.x;
        ok.z = v.y;
        ok.w = w.y;
    }
    s.ok = (ok != vec4<u32>(0u)) & vec4<bool>(s.src != SRC_ZERO);
    s.at = select(vec4<u32>(0u), lanes, s.ok) + s.col;
    return s;
}

// gather_st_h, gather_y, gather_cache, gather_gates(at, ok, k0, count): lanes i < count of
// that buffer's elements at[i] + k0, 0 where !ok[i] (the lanes past count are neither
// loaded nor worked out); gather_parts_st_h, ... (at, ok, k0, count, width, parts): those of
// `parts` (1, 2 or 4) parts `width` apart, as a Parts4.
// @generate state_gathers

// The invocation's `count` elements (state_src) of the part at k0 wherever it lies: 0
// outside the batch, the state or the sequence, and past the inner dimension (masked lanes
// load element 0).
fn tile_states_edge(s: StateSrc, k0: u32, count: u32) -> vec4<f32> {
    let ok = s.ok & (s.col + vec4<u32>(k0) < vec4<u32>(s.limit));
    let at = select(vec4<u32>(0u), s.at + vec4<u32>(k0), ok);
    switch (s.src) {
        case SRC_ST_H: { return gather_st_h(at, ok, 0u, count); }
        case SRC_Y: { return gather_y(at, ok, 0u, count); }
        case SRC_CACHE: { return gather_cache(at, ok, 0u, count); }
        case SRC_GATES: { return gather_gates(at, ok, 0u, count); }
        default: {}
    }
    return vec4<f32>(0.0);
}

// The invocation's `count` elements (state_src) of `parts` (1, 2 or 4) consecutive parts of
// s.width inner indices from k0, a vec4 per part (the registers that carry them from one
// chunk to the next); 0 outside the batch, the state or the sequence. One test for all the
// parts of whether they lie inside the inner dimension and one choice of buffer: an element
// then costs an add and a load; past the inner dimension tile_states_edge masks them.
fn tile_state_parts(s: StateSrc, k0: u32, count: u32, parts: u32) -> Parts4 {
    let z = vec4<f32>(0.0);
    if (k0 + parts * s.width <= s.limit) {
        let w = s.width;
        switch (s.src) {
            case SRC_ST_H: { return gather_parts_st_h(s.at, s.ok, k0, count, w, parts); }
            case SRC_Y: { return gather_parts_y(s.at, s.ok, k0, count, w, parts); }
            case SRC_CACHE: { return gather_parts_cache(s.at, s.ok, k0, count, w, parts); }
            case SRC_GATES: { return gather_parts_gates(s.at, s.ok, k0, count, w, parts); }
            default: {}
        }
        return Parts4(z, z, z, z);
    }
    var v = Parts4(tile_states_edge(s, k0, count), z, z, z);
    if (parts > 1u) { v.p1 = tile_states_edge(s, k0 + s.width, count); }
    if (parts > 2u) {
        v.p2 = tile_states_edge(s, k0 + 2u * s.width, count);
        v.p3 = tile_states_edge(s, k0 + 3u * s.width, count);
    }
    return v;
}

// The invocation's `count` elements of the chunk at k0 (tile_state_parts of one part).
fn tile_states(s: StateSrc, k0: u32, count: u32) -> vec4<f32> {
    return tile_state_parts(s, k0, count, 1u).p0;
}

// acc + w.x h0 + w.y h1 + w.z h2 + w.w h3, added in that order: 4 weights of one unit (4
// consecutive k steps or rows of W_hh) times the tile's 4 sequences' states or dgh at them.
fn quad_fma(acc: vec4<f32>, w: vec4<f32>, h0: vec4<f32>, h1: vec4<f32>, h2: vec4<f32>,
            h3: vec4<f32>) -> vec4<f32> {
    var s = acc;
    s += w.x * h0;
    s += w.y * h1;
    s += w.z * h2;
    s += w.w * h3;
    return s;
}

// Where w_column_parts' loads come from, the same in every chunk of a step: column `unit` of
// W_hh from row dg of a chunk on, rows `step` apart (params[at + (g0 + i step) R] for the
// chunk at g0); ok says the column exists.
struct WCol {
    at: u32,
    ok: bool,
    dg: u32,
    step: u32,
}

fn w_col(w: u32, unit: u32, dg: u32, step: u32) -> WCol {
    return WCol(w + dg * p.rw + unit, unit < p.hidden && unit < p.rw, dg, step);
}

// W_hh[g0 + j TK + dg + i step, unit] for i = 0..3 (w_col) in part j of a run of parts
// whose first starts at float at = c.at + g0 R, where all four lie inside the matrix. The
// parts' offsets are multiples of one uniform step (as w_row4_inside's in step_tiles.wgsl),
// so a chunk's address arithmetic is one product and an add a part.
fn w_column4_inside(c: WCol, at: u32, j: u32) -> vec4<f32> {
    let i = at + j * (TK * p.rw);
    let s = c.step * p.rw;
    return vec4<f32>(params[i], params[i + s], params[i + 2u * s], params[i + 3u * s]);
}

// The same wherever they lie: 0 outside the matrix.
fn w_column4_edge(c: WCol, g0: u32) -> vec4<f32> {
    let i = c.at + g0 * p.rw;
    let s = c.step * p.rw;
    let g = g0 + c.dg;
    var v = vec4<f32>(0.0);
    if (c.ok) {
        if (g < p.gh) { v.x = params[i]; }
        if (g + c.step < p.gh) { v.y = params[i + s]; }
        if (g + 2u * c.step < p.gh) { v.z = params[i + 2u * s]; }
        if (g + 3u * c.step < p.gh) { v.w = params[i + 3u * s]; }
    }
    return v;
}

// Four weights of a column (w_col) in each of `parts` (1, 2 or 4) consecutive parts of TK
// rows from g0, a vec4 per part (the registers that carry them from one chunk to the next);
// one test for all the parts of whether they lie inside the matrix.
fn w_column_parts(c: WCol, g0: u32, parts: u32) -> Parts4 {
    let z = vec4<f32>(0.0);
    var v = Parts4(z, z, z, z);
    if (c.ok && g0 + (parts - 1u) * TK + c.dg + 3u * c.step < p.gh) {
        let at = c.at + g0 * p.rw;
        v.p0 = w_column4_inside(c, at, 0u);
        if (parts > 1u) { v.p1 = w_column4_inside(c, at, 1u); }
        if (parts > 2u) {
            v.p2 = w_column4_inside(c, at, 2u);
            v.p3 = w_column4_inside(c, at, 3u);
        }
    } else {
        v.p0 = w_column4_edge(c, g0);
        if (parts > 1u) { v.p1 = w_column4_edge(c, g0 + TK); }
        if (parts > 2u) {
            v.p2 = w_column4_edge(c, g0 + 2u * TK);
            v.p3 = w_column4_edge(c, g0 + 3u * TK);
        }
    }
    return v;
}

// The column source of this invocation's load slot of the [16][TU] weight chunks of
// tile_wt_dgh: W_hh[g0 + l / TU + 4 i, unit u0 + l % TU] for i = 0..3 (w_column_parts of the
// chunk at g0).
fn tile_wt_col(w: u32, u0: u32, l: u32) -> WCol {
    return w_col(w, u0 + l % TU, l / TU, 4u);
}

// What dh_t[j] of sequence b (a valid step) takes besides wt, tile_wt_dgh's lane for b,
// read before wt is known: dy_t, whether this is the sequence's last step, and then its
// final-state gradient (0 without one), which replaces wt there (as dh_from_next).
struct DhIn {
    dy: f32,
    last: bool,
    end: f32,
}

fn tile_dh_in(d: u32, b: u32, j: u32) -> DhIn {
    var end = 0.0;
    let last = p.s + 1u >= lens[b];
    if (last && has_state()) {
        end = st_h[st_h_at(d, b, j)];
    }
    let t = time_of(d, b, p.s);
    return DhIn(dy[dy_at(t, b, d, j)], last, end);
}

// dh_t[j] from what tile_dh_in read and the recurrent sum wt.
fn tile_dh_from(i: DhIn, wt: f32) -> f32 {
    return i.dy + select(wt, i.end, i.last);
}

// Whether invocation l holds results of the tile's products (KS and TB above).
fn tile_lead(l: u32) -> bool {
    return l < TU * (TB / 4u);
}

// Whether lane sequence b of a tile has a step p.s. The tiled entry points hand lane c of
// their vec4 accumulators to the cell's update for sequence b0 + 4 q + c (a vector, not a
// private array, so indexing it by the lane keeps it in registers).
fn tile_has(b: u32) -> bool {
    return b < p.batch && p.s < lens[b];
}

// tile_has of the lead invocation's four lane sequences b .. b + 3, where unit j is inside
// the layer.
fn tile_live(j: u32, b: u32) -> vec4<bool> {
    let has = vec4<bool>(tile_has(b), tile_has(b + 1u), tile_has(b + 2u), tile_has(b + 3u));
    return has & vec4<bool>(j < p.hidden);
}
