// gru_cell.wgsl: the GRU step, forward and backward (CPU twin: src/backend/cpu/gru_cell.rs).
// Prepended by layer.wgsl (bindings, LP, cache sections) and the tiled steps' products.
// Gate order r, z, n: the row blocks of W_hh ([3H, H]) and b_hh are W_hr, W_hz, W_hn and
// b_hr, b_hz, b_hn; xp = [xp_r|xp_z|xp_n].
//
//   r = sigmoid(xp_r + W_hr h + b_hr),  z = sigmoid(xp_z + W_hz h + b_hz)   (h = h_{t-1})
//   OPT0 = 0 Pytorch:      hn = W_hn h + b_hn,       n = tanh(xp_n + r * hn)
//   OPT0 = 1 ResetBefore:  hn = W_hn (r * h) + b_hn, n = tanh(xp_n + hn)
//   h_t = (1 - z) * n + z * h
//
// The step's output and its next state are both h_t (section hs); no cell state.
//
// Record (K = 4H): [r | z | n | q] with q = hn (Pytorch, needed for dr) or q = r * h
// (ResetBefore, the right factor of dW_hn).
// Scratch (S = H Pytorch, 2H ResetBefore): [z dh | r drh] with dh the whole gradient of h_t
// (dy + what came back from step t+1) and drh = W_hn^T da_n (ResetBefore only): the two
// terms dh_through takes from its row besides W_hh^T dgh, so it reads no record there.
// With GATES_IN_REC (f32 caches, see layer.wgsl's xp_get) the GEMM writes xp into the
// record's r, z, n slots and the backward its gradients over the record once read:
// ResetBefore dxp = dgh = [da_r | da_z | da_n] in r, z, n (q stays for dW_hn); Pytorch
// dgh = [da_r | da_z | da_n r] in r, z, n and dxp's n block da_n in q (the host reads dxp
// as two column blocks, GpuCell::dxp_blocks).
//
// Backward, per unit j: dn = dh (1 - z), dz = dh (h - n), da_n = dn (1 - n^2),
// da_z = dz z (1 - z) and
//   Pytorch:      da_r = da_n hn r (1 - r);  dxp = [da_r | da_z | da_n],
//                 dgh = [da_r | da_z | da_n r] (so dW_hh = dgh^T h_{t-1}, db_hh = sums of dgh);
//   ResetBefore:  drh = W_hn^T da_n, da_r = drh h r (1 - r); dxp = dgh = [da_r | da_z | da_n]
//                 (dW_hh rows 0..2H = dgh^T h_{t-1}, rows 2H..3H = dgh_n^T q: see gru_cell.rs).
// The gradient reaching h_{t-1}[k] through the step of row t (dh_through):
//   z[k] dh[k] + sum_{g < 2H} W_hh[g, k] dgh[g] + (Pytorch) sum_g W_hn[g, k] dgh_n[g]
//                                               | (ResetBefore) r[k] drh[k].
// layer.wgsl's dh_from_next/dh_initial (plain W_hh^T dgh) miss the direct z * dh path and
// the reset factor, so this file has its own (dh_next, dh_through).
//
// Dispatches per step. Pytorch: one forward (fwd_step, or fwd_step_tiled), one backward
// (bwd_step, or bwd_step_tiled): every quantity of unit j needs only row j of each W_hh
// block and the previous state.
// ResetBefore: hn_j = sum_k W_hn[j, k] r_k h_k needs r of the whole row, so the forward is
// two dispatches: fwd_gates (r, z, q = r h into rec) then fwd_cand (hn, n, h_t).
// Recomputing r_k inside the sum instead would cost an H-long dot per k, O(H^3) per row
// against O(H^2), which a second dispatch's fixed launch cost beats for all but tiny H.
// Likewise its backward: drh_j = sum_g W_hn[g, j] da_n[g] needs da_n of the whole row, so
// bwd_step (dh, da_z, da_n) is followed by bwd_reset (drh, da_r).
// Invocations (j, b, d): j < H, one per hidden unit, both directions in one dispatch;
// dinit: (k, b, d), k < R = H.

const RESET_BEFORE: u32 = 1u;

fn reset_before() -> bool { return OPT0 == RESET_BEFORE; }

// Index of element `i` of the record (width K) of `row`.
fn rec_at(row: u32, i: u32) -> u32 { return p.rec + row * p.kw + i; }
// Index of element `i` of the backward scratch (width S) of `row`.
fn scr_at(row: u32, i: u32) -> u32 { return p.scr + row * p.sw + i; }

// (W_hr h, W_hz h, W_hn h) at unit j for the previous state h of step s, given the offsets
// of the three W_hh rows (wr, wz, wn); zero when the step sees no previous state. The
// previous state is read where it lives (h_prev: st_h or the previous row's hs).
fn hh3(d: u32, b: u32, s: u32, wr: u32, wz: u32, wn: u32) -> vec3<f32> {
    var acc = vec3<f32>(0.0);
    for (var k = 0u; k < p.rw; k++) {
        acc += vec3<f32>(params[wr + k], params[wz + k], params[wn + k]) * h_prev(d, b, s, k);
    }
    return acc;
}

// The reset and update gates (r, z) of unit j at `row` from the products `a` (hh3), also
// stored in the record; shared by fwd_step and fwd_gates.
fn gates_rz(d: u32, row: u32, j: u32, a: vec3<f32>) -> vec2<f32> {
    let hd = p.hidden;
    let bh = b_hh(d);
    let x = vec2<f32>(xp_get(row, j), xp_get(row, hd + j));
    return gates_rz_from(row, j, x, vec2<f32>(params[bh + j], params[bh + hd + j]), a);
}

// gates_rz from xp_r, xp_z (`x`) and b_hr, b_hz (`bias`) read beforehand.
fn gates_rz_from(row: u32, j: u32, x: vec2<f32>, bias: vec2<f32>, a: vec3<f32>) -> vec2<f32> {
    let r = sigmoid(x.x + a.x + bias.x);
    let z = sigmoid(x.y + a.y + bias.y);
    cache[rec_at(row, j)] = CT(r);
    cache[rec_at(row, p.hidden + j)] = CT(z);
    return vec2<f32>(r, z);
}

// Pytorch: the whole step in one dispatch.
@compute @workgroup_size(64, 1, 1)
fn fwd_step(@builtin(global_invocation_id) gid: vec3<u32>) {
    touch_forward();
    let j = gid.x;
    let b = gid.y;
    let d = gid.z;
    if (j >= p.hidden || p.s >= lens[b]) {
        return;
    }
    let hd = p.hidden;
    let wr = w_hh(d) + j * p.rw;
    let wz = wr + hd * p.rw;
    let wn = wz + hd * p.rw;
    fwd_cell(d, b, j, hh3(d, b, p.s, wr, wz, wn));
}

// Pytorch, tiled (tile_w_h, see layer.wgsl): TU units, their three gate rows, for TB = 4 SQ
// sequences per workgroup (16, or 32 in the f32 tiles' SQ 8).
@compute @workgroup_size(SQ * TU * KS, 1, 1)
fn fwd_step_tiled(@builtin(local_invocation_index) l: u32,
                  @builtin(workgroup_id) wid: vec3<u32>) {
    let wg = take_layer(wid);
    touch_forward();
    let a = tile_w_h(l, wg, 3u);
    if (!tile_lead(l)) {
        return;
    }
    tile_fwd_update(l, wg, a);
}

// Pytorch: what the update of unit j of sequence b at step p.s reads besides the products
// (b a valid step): its time and row, xp and b_hh of r, z, n, and h_{t-1}.
struct FwdIn {
    t: u32,
    row: u32,
    x: vec3<f32>,
    bias: vec3<f32>,
    hp: f32,
}

fn fwd_in(d: u32, b: u32, j: u32) -> FwdIn {
    let hd = p.hidden;
    let t = time_of(d, b, p.s);
    let row = row_of(d, t, b);
    let bh = b_hh(d);
    let x = vec3<f32>(xp_get(row, j), xp_get(row, hd + j), xp_get(row, 2u * hd + j));
    let bias = vec3<f32>(params[bh + j], params[bh + hd + j], params[bh + 2u * hd + j]);
    return FwdIn(t, row, x, bias, h_prev(d, b, p.s, j));
}

// Pytorch: the update of unit j of sequence b (a valid step) given a = (W_hr h, W_hz h,
// W_hn h) at unit j.
fn fwd_cell(d: u32, b: u32, j: u32, a: vec3<f32>) {
    fwd_update(d, b, j, fwd_in(d, b, j), vec4<f32>(a, 0.0));
}

// fwd_cell from what fwd_in read, given the products in a.xyz (tile_update.wgsl's
// interface).
fn fwd_update(d: u32, b: u32, j: u32, e: FwdIn, a: vec4<f32>) {
    let hd = p.hidden;
    let row = e.row;
    record_h0(d, b, p.s, j);
    let rz = gates_rz_from(row, j, e.x.xy, e.bias.xy, a.xyz);
    let r = rz.x;
    let z = rz.y;
    let hn = a.z + e.bias.z;
    let n = tanh_stable(e.x.z + r * hn);
    let h = (1.0 - z) * n + z * e.hp;
    cache[rec_at(row, 2u * hd + j)] = CT(n);
    cache[rec_at(row, 3u * hd + j)] = CT(hn);
    hs_set(row, j, h);
    y[y_at(e.t, b, d, j)] = h;
}

// ResetBefore, phase 1: r, z, q = r * h (and the initial state into h0 at step 0).
@compute @workgroup_size(64, 1, 1)
fn fwd_gates(@builtin(global_invocation_id) gid: vec3<u32>) {
    touch_forward();
    let j = gid.x;
    let b = gid.y;
    let d = gid.z;
    if (j >= p.hidden || p.s >= lens[b]) {
        return;
    }
    let hd = p.hidden;
    let t = time_of(d, b, p.s);
    let row = row_of(d, t, b);
    record_h0(d, b, p.s, j);
    let wr = w_hh(d) + j * p.rw;
    let wz = wr + hd * p.rw;
    // The third product is not needed here: pass the z row again (same loads).
    let a = hh3(d, b, p.s, wr, wz, wz);
    let r = gates_rz(d, row, j, a).x;
    cache[rec_at(row, 3u * hd + j)] = CT(r * h_prev(d, b, p.s, j));
}

// ResetBefore, phase 2: hn = W_hn q + b_hn over the complete q row, n and h_t.
@compute @workgroup_size(64, 1, 1)
fn fwd_cand(@builtin(global_invocation_id) gid: vec3<u32>) {
    touch_forward();
    let j = gid.x;
    let b = gid.y;
    let d = gid.z;
    if (j >= p.hidden || p.s >= lens[b]) {
        return;
    }
    let hd = p.hidden;
    let t = time_of(d, b, p.s);
    let row = row_of(d, t, b);
    var hn = params[b_hh(d) + 2u * hd + j];
    if (recurrent()) {
        let wn = w_hh(d) + (2u * hd + j) * p.rw;
        let q = rec_at(row, 3u * hd);
        for (var k = 0u; k < p.rw; k++) {
            hn += params[wn + k] * f32(cache[q + k]);
        }
    }
    let n = tanh_stable(xp_get(row, 2u * hd + j) + hn);
    let z = f32(cache[rec_at(row, hd + j)]);
    let h = (1.0 - z) * n + z * h_prev(d, b, p.s, j);
    cache[rec_at(row, 2u * hd + j)] = CT(n);
    hs_set(row, j, h);
    y[y_at(t, b, d, j)] = h;
}

// Gradient reaching h_{t-1}[k] through the step of `row` (whose backward is complete).
fn dh_through(d: u32, row: u32, k: u32) -> f32 {
    let hd = p.hidden;
    var acc = gates[scr_at(row, k)];
    let w = w_hh(d) + k;
    let g_end = select(p.gh, 2u * hd, reset_before());
    for (var g = 0u; g < g_end; g++) {
        acc += params[w + g * p.rw] * dgh_get(row, g);
    }
    if (reset_before()) {
        acc += gates[scr_at(row, hd + k)];
    }
    return acc;
}

// Gradient reaching h_t[k] of step s from step s + 1 (or the final-state gradient at the
// sequence's end; 0 when the layer is not recurrent).
fn dh_next(d: u32, b: u32, s: u32, k: u32) -> f32 {
    if (s + 1u >= lens[b]) {
        if (has_state()) {
            return st_h[st_h_at(d, b, k)];
        }
        return 0.0;
    }
    if (!recurrent()) {
        return 0.0;
    }
    return dh_through(d, next_row(d, b, s), k);
}

// Both variants, phase 1: dh, da_z, da_n (and da_r for Pytorch). Row-wise.
@compute @workgroup_size(64, 1, 1)
fn bwd_step(@builtin(global_invocation_id) gid: vec3<u32>) {
    touch_backward();
    let j = gid.x;
    let b = gid.y;
    let d = gid.z;
    if (j >= p.hidden || p.s >= lens[b]) {
        return;
    }
    let t = time_of(d, b, p.s);
    bwd_cell(d, b, j, dy[dy_at(t, b, d, j)] + dh_next(d, b, p.s, j));
}

// Pytorch, tiled (tile_wt_dgh, see layer.wgsl: TU units x 16 sequences per workgroup): the
// W_hh^T dgh part of dh_through from the tile, plus the direct z dh term of the next step.
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

// What the tiled backward's update reads (tile_update.wgsl's interface): the cell's inputs,
// dh_t's besides the recurrent sum, and the direct z dh term of the next step.
struct BwdIn {
    cell: GruBwdIn,
    dh: DhIn,
    zdh: f32,
}

fn bwd_in(d: u32, b: u32, j: u32) -> BwdIn {
    return BwdIn(gru_bwd_in(d, b, j), tile_dh_in(d, b, j), z_dh_next(d, b, j));
}

// The tiled backward's update given wt, the lane of the W_hh^T dgh part of dh_through.
fn bwd_update(d: u32, b: u32, j: u32, e: BwdIn, wt: f32) {
    bwd_cell_from(d, b, j, e.cell, tile_dh_from(e.dh, wt) + e.zdh);
}

// The direct z dh term of the next step's gradient that reaches h_t (its scratch), 0 at the
// sequence's last step or without recurrence.
fn z_dh_next(d: u32, b: u32, j: u32) -> f32 {
    if (recurrent() && p.s + 1u < lens[b]) {
        return gates[scr_at(next_row(d, b, p.s), j)];
    }
    return 0.0;
}

// What the backward of unit j of sequence b at step p.s reads besides dh (b a valid step):
// its row, the record's r, z, n, q and h_{t-1}. Every record element of (row, j) is read
// before any is overwritten (GATES_IN_REC).
struct GruBwdIn {
    row: u32,
    rec: vec4<f32>,
    h: f32,
}

fn gru_bwd_in(d: u32, b: u32, j: u32) -> GruBwdIn {
    let hd = p.hidden;
    let row = row_of(d, time_of(d, b, p.s), b);
    let rec = vec4<f32>(f32(cache[rec_at(row, j)]), f32(cache[rec_at(row, hd + j)]),
                        f32(cache[rec_at(row, 2u * hd + j)]),
                        f32(cache[rec_at(row, 3u * hd + j)]));
    return GruBwdIn(row, rec, h_before(d, b, j));
}

// The backward of unit j of sequence b (a valid step) given dh, the whole gradient of h_t.
fn bwd_cell(d: u32, b: u32, j: u32, dh: f32) {
    bwd_cell_from(d, b, j, gru_bwd_in(d, b, j), dh);
}

// bwd_cell from what gru_bwd_in read.
fn bwd_cell_from(d: u32, b: u32, j: u32, e: GruBwdIn, dh: f32) {
    let hd = p.hidden;
    let row = e.row;
    let r = e.rec.x;
    let z = e.rec.y;
    let n = e.rec.z;
    let hn = e.rec.w;
    gates[scr_at(row, j)] = z * dh;
    let h = e.h;
    let da_n = dh * (1.0 - z) * (1.0 - n * n);
    let da_z = dh * (h - n) * z * (1.0 - z);
    if (reset_before()) {
        // dgh is the dxp section (GpuCell::dgh_is_dxp), completed by bwd_reset.
        dxp_set(row, hd + j, da_z);
        dxp_set(row, 2u * hd + j, da_n);
        return;
    }
    let da_r = da_n * hn * r * (1.0 - r);
    if (gates_in_rec()) {
        // dgh = [da_r | da_z | da_n r] over r, z, n; dxp's n block over q.
        cache[rec_at(row, j)] = CT(da_r);
        cache[rec_at(row, hd + j)] = CT(da_z);
        cache[rec_at(row, 2u * hd + j)] = CT(da_n * r);
        cache[rec_at(row, 3u * hd + j)] = CT(da_n);
        return;
    }
    let dx = p.dxp + row * p.gh;
    gates[dx + j] = da_r;
    gates[dx + hd + j] = da_z;
    gates[dx + 2u * hd + j] = da_n;
    // Pytorch: dgh is its own section, [da_r | da_z | da_n r].
    let dg = p.dgh + row * p.gh;
    gates[dg + j] = da_r;
    gates[dg + hd + j] = da_z;
    gates[dg + 2u * hd + j] = da_n * r;
}

// ResetBefore, phase 2: drh = W_hn^T da_n over the complete da_n row, then da_r.
@compute @workgroup_size(64, 1, 1)
fn bwd_reset(@builtin(global_invocation_id) gid: vec3<u32>) {
    touch_backward();
    let j = gid.x;
    let b = gid.y;
    let d = gid.z;
    if (j >= p.hidden || p.s >= lens[b]) {
        return;
    }
    let hd = p.hidden;
    let t = time_of(d, b, p.s);
    let row = row_of(d, t, b);
    let w = w_hh(d) + 2u * hd * p.rw + j;
    var drh = 0.0;
    for (var g = 0u; g < hd; g++) {
        drh += params[w + g * p.rw] * dgh_get(row, 2u * hd + g);
    }
    let r = f32(cache[rec_at(row, j)]);
    gates[scr_at(row, hd + j)] = r * drh;
    let da_r = drh * h_before(d, b, j) * r * (1.0 - r);
    dxp_set(row, j, da_r);
    // (dgh is the same section: GpuCell::dgh_is_dxp, so it needs no second store.)
}

// Gradient of the initial state. Invocations (k, b, d), k < R.
@compute @workgroup_size(64, 1, 1)
fn dinit(@builtin(global_invocation_id) gid: vec3<u32>) {
    touch_final();
    let k = gid.x;
    let b = gid.y;
    let d = gid.z;
    if (k >= p.rw) {
        return;
    }
    var g = 0.0;
    if (recurrent()) {
        g = dh_through(d, row_of(d, time_of(d, b, 0u), b), k);
    }
    out_h[(d * p.batch + b) * p.rw + k] = g;
}
