// elman_cell.wgsl: the Elman step, forward and backward (CPU twin:
// src/backend/cpu/elman_cell.rs). Prepended by layer.wgsl (bindings, LP, cache sections)
// and the tiled steps' products.
//
//   h_t = act(xp_t + W_hh h_{t-1} + b_hh)         act = OPT0 (tanh, relu, linear)
//
// The step's output and its next state are both h_t (section hs); no record (K = 0).
// Backward: dh_t = dy_t + W_hh^T da_{t+1} (or the final-state gradient at the end),
// da_t = dh_t * act'(h_t) -> dxp and dgh.
// Invocations (j, b, d): j < H, one per hidden unit, both directions in one dispatch; the
// *_tiled entry points do the same for TU (16, 32 or 64) units x 16 sequences per workgroup
// (layer.wgsl; their products in step_tiles.wgsl or step_coop.wgsl).

// What the step of unit j of sequence b at step p.s reads besides its recurrent sum (b a
// valid step): its time and row, and forward xp + b_hh, backward h_t (`v`).
struct ElmanIn {
    t: u32,
    row: u32,
    v: f32,
}

// tile_update.wgsl's interface: the forward reads ElmanIn, the backward ElmanIn and what
// dh_t takes besides the recurrent sum.
alias FwdIn = ElmanIn;

struct BwdIn {
    cell: ElmanIn,
    dh: DhIn,
}

fn fwd_in(d: u32, b: u32, j: u32) -> FwdIn {
    let t = time_of(d, b, p.s);
    let row = row_of(d, t, b);
    return ElmanIn(t, row, xp_get(row, j) + params[b_hh(d) + j]);
}

fn bwd_in(d: u32, b: u32, j: u32) -> BwdIn {
    let t = time_of(d, b, p.s);
    let row = row_of(d, t, b);
    return BwdIn(ElmanIn(t, row, hs_get(row, j)), tile_dh_in(d, b, j));
}

// h_t at unit j of sequence b (a valid step) given a.x = (W_hh h_{t-1})[j], from what
// fwd_in read.
fn fwd_update(d: u32, b: u32, j: u32, e: FwdIn, a: vec4<f32>) {
    record_h0(d, b, p.s, j);
    let h = act(OPT0, e.v + a.x);
    hs_set(e.row, j, h);
    y[y_at(e.t, b, d, j)] = h;
}

// The backward at unit j of sequence b (a valid step) given wt = (W_hh^T da_{t+1})[j],
// from what bwd_in read.
fn bwd_update(d: u32, b: u32, j: u32, e: BwdIn, wt: f32) {
    let dh = tile_dh_from(e.dh, wt);
    let da = dh * dact(OPT0, e.cell.v);
    dxp_set(e.cell.row, j, da);
    // (dgh is the same section: GpuCell::dgh_is_dxp, so it needs no second store.)
}

@compute @workgroup_size(SQ * TU * KS, 1, 1)
fn fwd_step_tiled(@builtin(local_invocation_index) l: u32,
                  @builtin(workgroup_id) wid: vec3<u32>) {
    let wg = take_layer(wid);
    touch_forward();
    let a = tile_w_h(l, wg, 1u);
    if (!tile_lead(l)) {
        return;
    }
    tile_fwd_update(l, wg, a);
}

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

@compute @workgroup_size(64, 1, 1)
fn fwd_step(@builtin(global_invocation_id) gid: vec3<u32>) {
    touch_forward();
    let j = gid.x;
    let b = gid.y;
    let d = gid.z;
    if (j >= p.hidden || p.s >= lens[b]) {
        return;
    }
    let t = time_of(d, b, p.s);
    let row = row_of(d, t, b);
    record_h0(d, b, p.s, j);
    // The product reads the previous state where it lives (h_prev: st_h or hs).
    let h = act(OPT0, single_gate_pre(d, b, p.s, row, j));
    hs_set(row, j, h);
    y[y_at(t, b, d, j)] = h;
}

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
    let row = row_of(d, t, b);
    let dh = dy[dy_at(t, b, d, j)] + dh_from_next(d, b, p.s, j);
    let h = hs_get(row, j);
    let da = dh * dact(OPT0, h);
    dxp_set(row, j, da);
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
    out_h[(d * p.batch + b) * p.rw + k] = dh_initial(d, b, k);
}
