// lstm_cell.wgsl: the LSTM step, forward and backward (CPU twin:
// src/backend/cpu/lstm_cell.rs). Prepended by layer.wgsl (bindings, LP, cache sections)
// and the tiled steps' products.
//
//   a   = xp + W_hh h_{t-1} + b_hh          (4H rows a_i a_f a_g a_o, PyTorch order)
//   i   = gate(a_i + p_i c_{t-1})           gate = OPT0, cellact = OPT1, hiddenact = OPT2
//   f   = gate(a_f + p_f c_{t-1})
//   g   = cellact(a_g)
//   c_t = f c_{t-1} + i g
//   o   = gate(a_o + p_o c_t)
//   m   = o hiddenact(c_t)
//   h_t = m, or W_hr m with a projection (W_hr [P, H])
//
// OPT3 bits: 1 peepholes (p_i, p_f, p_o = rows 0, 1, 2 of `peephole` [3, H] at ex0),
// 2 projection (W_hr at ex1). The recurrent state and the output are h_t (width R = P with
// a projection, else H, section hs); the cell state c_t (width H) is in cs, the initial
// cell state of each sequence in c0 (c_before reads c_{t-1} from them in the backward).
//
// Record (K per row): [i: H | f: H | g: H | o: H | m: H], the m block only with a
// projection (every activation's derivative follows from its output; hiddenact(c_t) is
// recomputed from cs in the backward).
// Scratch (S per row): [da_i c_{t-1}: H | da_f c_{t-1}: H | da_o c_t: H] with peepholes
// (column sums -> peephole gradient), then [dh_t: P] with a projection (dW_hr = dh^T m).
//
// Forward, per step: fwd_step (j < H, row-wise) or fwd_step_tiled (TU units x 16 sequences
// per workgroup, see there) computes the gates and the cell update (fwd_cell), and without
// a projection writes h_t = m; with one, fwd_proj (k < P) then forms h_t = W_hr m from the
// complete m row.
// Backward, per step: dh_t = dy_t + W_hh^T da_{t+1} (or the final-state gradient at the
// sequence's end). With a projection bwd_dh (k < P) stores dh_t in scratch and bwd_step
// forms dm = W_hr^T dh_t; without one dm = dh_t directly in bwd_step (j < H, row-wise) or
// bwd_step_tiled (TU = 16, 32 or 64 units x 16 sequences per workgroup); both end in bwd_cell.
// The running cell-state gradient lives in the dc section: read from st_c at each sequence's last
// step, replaced by dc_{t-1} = dc f + da_i p_i + da_f p_f after each step.
//   da_o = dm hiddenact(c) gate'(o)       dc = dc_next + dm o hiddenact'(c) + da_o p_o
//   da_i = dc g gate'(i)   da_f = dc c_{t-1} gate'(f)   da_g = dc i cellact'(g)
// dxp = dgh = da. dinit: dh_0 = W_hh^T da_first, dc_0 = the final dc.
// Invocations (j, b, d): one per hidden unit (or projected unit), both directions at once.

const LSTM_PEEPHOLE: u32 = 1u;
const LSTM_PROJ: u32 = 2u;

fn lstm_peephole() -> bool { return (OPT3 & LSTM_PEEPHOLE) != 0u; }
fn lstm_proj() -> bool { return (OPT3 & LSTM_PROJ) != 0u; }

// Peephole weight of row r (0 i, 1 f, 2 o) for unit j; 0 without peepholes.
fn peep(d: u32, r: u32, j: u32) -> f32 {
    if (!lstm_peephole()) {
        return 0.0;
    }
    return params[ex0(d) + r * p.hidden + j];
}

// Offset of the dh block in a scratch row.
fn scr_dh() -> u32 {
    return select(0u, 3u * p.hidden, lstm_peephole());
}

// What the forward of unit j of sequence b at step p.s reads besides W_hh h_{t-1} (b a
// valid step): its time and row, the four gates' xp + b_hh (i, f, g, o), c_{t-1}.
struct FwdIn {
    t: u32,
    row: u32,
    x: vec4<f32>,
    cp: f32,
}

fn fwd_in(d: u32, b: u32, j: u32) -> FwdIn {
    let n = p.hidden;
    let t = time_of(d, b, p.s);
    let row = row_of(d, t, b);
    let bh = b_hh(d);
    let x = vec4<f32>(xp_get(row, j) + params[bh + j], xp_get(row, n + j) + params[bh + n + j],
                      xp_get(row, 2u * n + j) + params[bh + 2u * n + j],
                      xp_get(row, 3u * n + j) + params[bh + 3u * n + j]);
    return FwdIn(t, row, x, c_prev(d, b, p.s, j));
}

// The cell update of unit j of sequence b at step p.s, given `wh` = (W_hh h_{t-1}) at the
// four gate rows of unit j (i, f, g, o) (b a valid step). Shared by the row-wise and the
// tiled forward step.
fn fwd_cell(d: u32, b: u32, j: u32, wh: vec4<f32>) {
    fwd_update(d, b, j, fwd_in(d, b, j), wh);
}

// fwd_cell from what fwd_in read (tile_update.wgsl's interface).
fn fwd_update(d: u32, b: u32, j: u32, e: FwdIn, wh: vec4<f32>) {
    let n = p.hidden;
    let t = e.t;
    let row = e.row;
    let cp = e.cp;
    record_h0(d, b, p.s, j);
    let ai = e.x.x + wh.x;
    let af = e.x.y + wh.y;
    let ag = e.x.z + wh.z;
    let ao = e.x.w + wh.w;
    if (p.s == 0u) {
        // The backward reads c_{t-1} from cs of the previous row, or from here at step 0.
        cache[p.c0 + (d * p.batch + b) * p.cw + j] = CT(cp);
    }
    let gi = act(OPT0, ai + peep(d, 0u, j) * cp);
    let gf = act(OPT0, af + peep(d, 1u, j) * cp);
    let gg = act(OPT1, ag);
    let c = gf * cp + gi * gg;
    let go = act(OPT0, ao + peep(d, 2u, j) * c);
    let hc = act(OPT2, c);
    let m = go * hc;
    cache[p.cs + row * p.cw + j] = CT(c);
    let r = p.rec + row * p.kw;
    cache[r + j] = CT(gi);
    cache[r + n + j] = CT(gf);
    cache[r + 2u * n + j] = CT(gg);
    cache[r + 3u * n + j] = CT(go);
    if (lstm_proj()) {
        cache[r + 4u * n + j] = CT(m);
    } else {
        hs_set(row, j, m);
        y[y_at(t, b, d, j)] = m;
    }
}

// Row-wise forward step: one invocation per (unit j, sequence b, direction d) reads its four
// W_hh rows. Invocations (j, b, d), j < H.
@compute @workgroup_size(64, 1, 1)
fn fwd_step(@builtin(global_invocation_id) gid: vec3<u32>) {
    touch_forward();
    let j = gid.x;
    let b = gid.y;
    let d = gid.z;
    let n = p.hidden;
    if (j >= n || p.s >= lens[b]) {
        return;
    }
    let w = w_hh(d);
    let wi = w + j * p.rw;
    let wf = w + (n + j) * p.rw;
    let wg = w + (2u * n + j) * p.rw;
    let wo = w + (3u * n + j) * p.rw;
    var wh = vec4<f32>(0.0);
    for (var k = 0u; k < p.rw; k++) {
        let hk = h_prev(d, b, p.s, k);
        wh += vec4<f32>(params[wi + k], params[wf + k], params[wg + k], params[wo + k]) * hk;
    }
    fwd_cell(d, b, j, wh);
}

// Tiled forward step (tile_w_h, see layer.wgsl): TU units, all four gate rows of each, for
// TB = 4 SQ sequences per workgroup (16, or 32 in the f32 tiles' SQ 8), so each W_hh element
// loaded serves TB sequences.
@compute @workgroup_size(SQ * TU * KS, 1, 1)
fn fwd_step_tiled(@builtin(local_invocation_index) l: u32,
                  @builtin(workgroup_id) wid: vec3<u32>) {
    let wg = take_layer(wid);
    touch_forward();
    let a = tile_w_h(l, wg, 4u);
    if (!tile_lead(l)) {
        return;
    }
    tile_fwd_update(l, wg, a);
}

// h_t = W_hr m (projection only). Invocations (k, b, d), k < P.
@compute @workgroup_size(64, 1, 1)
fn fwd_proj(@builtin(global_invocation_id) gid: vec3<u32>) {
    touch_forward();
    let k = gid.x;
    let b = gid.y;
    let d = gid.z;
    if (k >= p.rw || p.s >= lens[b]) {
        return;
    }
    let t = time_of(d, b, p.s);
    let row = row_of(d, t, b);
    let w = ex1(d) + k * p.hidden;
    let mr = p.rec + row * p.kw + 4u * p.hidden;
    var h = 0.0;
    for (var j = 0u; j < p.hidden; j++) {
        h += params[w + j] * f32(cache[mr + j]);
    }
    hs_set(row, k, h);
    y[y_at(t, b, d, k)] = h;
}

// dh_t = dy_t + W_hh^T da_{t+1} into scratch (projection only). Invocations (k, b, d), k < P.
@compute @workgroup_size(64, 1, 1)
fn bwd_dh(@builtin(global_invocation_id) gid: vec3<u32>) {
    touch_backward();
    let k = gid.x;
    let b = gid.y;
    let d = gid.z;
    if (k >= p.rw || p.s >= lens[b]) {
        return;
    }
    let t = time_of(d, b, p.s);
    let row = row_of(d, t, b);
    let dh = dy[dy_at(t, b, d, k)] + dh_from_next(d, b, p.s, k);
    gates[p.scr + row * p.sw + scr_dh() + k] = dh;
}

// Row-wise backward step. Invocations (j, b, d), j < H.
@compute @workgroup_size(64, 1, 1)
fn bwd_step(@builtin(global_invocation_id) gid: vec3<u32>) {
    touch_backward();
    let j = gid.x;
    let b = gid.y;
    let d = gid.z;
    let n = p.hidden;
    if (j >= n || p.s >= lens[b]) {
        return;
    }
    let t = time_of(d, b, p.s);
    let row = row_of(d, t, b);
    // dm = W_hr^T dh_t, or dh_t itself.
    var dm = 0.0;
    if (lstm_proj()) {
        let w = ex1(d) + j;
        let dr = p.scr + row * p.sw + scr_dh();
        for (var k = 0u; k < p.rw; k++) {
            dm += params[w + k * n] * gates[dr + k];
        }
    } else {
        dm = dy[dy_at(t, b, d, j)] + dh_from_next(d, b, p.s, j);
    }
    bwd_cell(d, b, j, dm);
}

// Tiled backward step (no projection: R = H; tile_wt_dgh, see layer.wgsl): dh_t = dy_t +
// W_hh^T da_{t+1} for TU units x 16 sequences per workgroup.
@compute @workgroup_size(4u * TU * KS, 1, 1)
fn bwd_step_tiled(@builtin(local_invocation_index) l: u32,
                  @builtin(workgroup_id) wid: vec3<u32>) {
    let wg = take_layer(wid);
    touch_backward();
    let wt = tile_wt_dgh(l, wg);
    if (!tile_lead(l)) {
        return;
    }
    tile_bwd_update(l, wg, wt);
}

// What the tiled backward's update reads (tile_update.wgsl's interface): the cell's inputs
// and dh_t's besides the recurrent sum.
struct BwdIn {
    cell: LstmBwdIn,
    dh: DhIn,
}

fn bwd_in(d: u32, b: u32, j: u32) -> BwdIn {
    return BwdIn(lstm_bwd_in(d, b, j), tile_dh_in(d, b, j));
}

// The tiled backward's update given wt, the lane of W_hh^T dgh_{t+1} (dm = dh_t: no
// projection in the tiles).
fn bwd_update(d: u32, b: u32, j: u32, e: BwdIn, wt: f32) {
    bwd_cell_from(d, b, j, e.cell, tile_dh_from(e.dh, wt));
}

// c_{t-1} of step p.s of sequence b at unit j, from the cache (the backward's st_c binding
// holds the final-state gradient, not the initial state).
fn c_before(d: u32, b: u32, j: u32) -> f32 {
    if (!recurrent()) {
        return 0.0;
    }
    if (p.s == 0u) {
        return f32(cache[p.c0 + (d * p.batch + b) * p.cw + j]);
    }
    return f32(cache[p.cs + prev_row(d, b, p.s) * p.cw + j]);
}

// What the backward of unit j of sequence b at step p.s reads besides dm (b a valid
// step): its row, the running dc of the next step (or the final-state gradient), the
// gates i, f, g, o, c_t and c_{t-1}.
struct LstmBwdIn {
    row: u32,
    dc_next: f32,
    g: vec4<f32>,
    c: f32,
    cp: f32,
}

fn lstm_bwd_in(d: u32, b: u32, j: u32) -> LstmBwdIn {
    let n = p.hidden;
    let t = time_of(d, b, p.s);
    let row = row_of(d, t, b);
    // Gradient of c_t from the next step (or the final-state gradient).
    let di = (d * p.batch + b) * p.cw + j;
    var dc_next = 0.0;
    if (p.s + 1u >= lens[b]) {
        if (has_state()) {
            dc_next = st_c[p.sc0 + di];
        }
    } else {
        dc_next = gates[p.dc + di];
    }
    let r = p.rec + row * p.kw;
    let g = vec4<f32>(f32(cache[r + j]), f32(cache[r + n + j]), f32(cache[r + 2u * n + j]),
                      f32(cache[r + 3u * n + j]));
    let c = f32(cache[p.cs + row * p.cw + j]);
    return LstmBwdIn(row, dc_next, g, c, c_before(d, b, j));
}

// The cell's backward at unit j of sequence b (a valid step), given dm, the gradient of m.
fn bwd_cell(d: u32, b: u32, j: u32, dm: f32) {
    bwd_cell_from(d, b, j, lstm_bwd_in(d, b, j), dm);
}

// bwd_cell from what lstm_bwd_in read.
fn bwd_cell_from(d: u32, b: u32, j: u32, e: LstmBwdIn, dm: f32) {
    let n = p.hidden;
    let row = e.row;
    let sr = p.scr + row * p.sw;
    let di = (d * p.batch + b) * p.cw + j;
    let gi = e.g.x;
    let gf = e.g.y;
    let gg = e.g.z;
    let go = e.g.w;
    let c = e.c;
    let cp = e.cp;
    let hc = act(OPT2, c);
    let da_o = dm * hc * dact(OPT0, go);
    let dc = e.dc_next + dm * go * dact(OPT2, hc) + da_o * peep(d, 2u, j);
    let da_i = dc * gg * dact(OPT0, gi);
    let da_f = dc * cp * dact(OPT0, gf);
    let da_g = dc * gi * dact(OPT1, gg);
    var dc_prev = 0.0;
    if (recurrent()) {
        dc_prev = dc * gf + da_i * peep(d, 0u, j) + da_f * peep(d, 1u, j);
    }
    gates[p.dc + di] = dc_prev;
    // With GATES_IN_REC these overwrite i, f, g, o read above (see xp_get).
    dxp_set(row, j, da_i);
    dxp_set(row, n + j, da_f);
    dxp_set(row, 2u * n + j, da_g);
    dxp_set(row, 3u * n + j, da_o);
    // (dgh is the same section: GpuCell::dgh_is_dxp, so it needs no second store.)
    if (lstm_peephole()) {
        gates[sr + j] = da_i * cp;
        gates[sr + n + j] = da_f * cp;
        gates[sr + 2u * n + j] = da_o * c;
    }
}

// Gradient of the initial states. Invocations (k, b, d), k < max(R, C).
@compute @workgroup_size(64, 1, 1)
fn dinit(@builtin(global_invocation_id) gid: vec3<u32>) {
    touch_final();
    let k = gid.x;
    let b = gid.y;
    let d = gid.z;
    if (k < p.rw) {
        out_h[(d * p.batch + b) * p.rw + k] = dh_initial(d, b, k);
    }
    if (k < p.cw) {
        let di = (d * p.batch + b) * p.cw + k;
        out_c[di] = gates[p.dc + di];
    }
}
