// elman_cell.wgsl: the Elman step, forward and backward (CPU twin:
// src/backend/cpu/elman_cell.rs). Prepended by layer.wgsl (bindings, LP, cache sections).
//
//   h_t = act(xp_t + W_hh h_{t-1} + b_hh)         act = opt0 (tanh, relu, linear)
//
// The step's output and its next state are both h_t (section hs); no record (K = 0).
// Backward: dh_t = dy_t + W_hh^T da_{t+1} (or the final-state gradient at the end),
// da_t = dh_t * act'(h_t) -> dxp and dgh.
// Invocations (j, b, d): j < H, one per hidden unit, both directions in one dispatch.

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
    record_h_prev(d, b, p.s, row, j);
    // The hp row is complete only after every invocation of this row wrote its part, so
    // the product reads the previous state directly.
    let h = act(p.opt0, single_gate_pre(d, b, p.s, row, j));
    cache[p.hs + row * p.rw + j] = h;
    y[(t * p.batch + b) * p.out_w + d * p.out + j] = h;
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
    let dh = dy[(t * p.batch + b) * p.out_w + d * p.out + j] + dh_from_next(d, b, p.s, j);
    let h = cache[p.hs + row * p.rw + j];
    let da = dh * dact(p.opt0, h);
    cache[p.dxp + row * p.gh + j] = da;
    cache[p.dgh + row * p.gh + j] = da;
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
