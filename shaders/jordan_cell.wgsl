// jordan_cell.wgsl: the Jordan step, forward and backward (CPU twin:
// src/backend/cpu/jordan_cell.rs). Prepended by layer.wgsl (bindings, LP, cache sections)
// and the tiled steps' products.
//
//   h_t = act(xp_t + W_hh y_{t-1} + b_hh)         act = OPT0 (tanh, relu, linear)
//   z_t = W_head h_t + b_head                     W_head [C, H] at ex0, b_head [C] at ex1
//   y_t = softmax(z_t) (OPT1 = 1) or z_t (OPT1 = 0)
//
// The layer outputs h_t; the recurrent state (width R = C, the head's classes; sections
// hs) is y_t. The head is the model's own head, shared: its gradients from the feedback
// path add to those of the model's head.
//
// Record (K = H + C): [h_t: H | z_t: C]. Scratch (S = 2C): [dz_t: C | dy_t: C].
//
// Forward, per step, in order (each phase needs whole rows of the one before):
//   fwd_step    (j < H)  h_t -> rec[0..H], layer output
//   fwd_head    (c < C)  z_t -> rec[H..H+C]; linear feedback also y_t = z_t -> hs
//   fwd_softmax (a workgroup per row) softmax feedback: y_t = softmax(rec z row) -> hs
// Backward, per step:
//   bwd_state   (c < C)  dy_t = W_hh^T da_{t+1} (or the final-state gradient) -> scr dy
//   bwd_step    (j < H)  dz_t = y (dy - <y, dy>) (softmax) or dy (linear): <y, dy> reduced
//                        once a workgroup (its 64 units share the row), dz recomputed from
//                        the row by every invocation and written to scr dz for c = j, j+H..;
//                        dh_t = dout_t + W_head^T dz_t, da_t = dh_t * act'(h_t) -> dxp, dgh
// The head's gradients (dW_head += dz^T h, db_head += col sums of dz) are GEMMs after the
// loop (src/backend/wgpu/jordan_cell.rs).
// Invocations (j or c, b, d): both directions in one dispatch (a Jordan layer has one).

fn softmax_feedback() -> bool { return OPT1 != 0u; }

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
    cache[p.rec + row * p.kw + j] = CT(h);
    y[y_at(t, b, d, j)] = h;
}

@compute @workgroup_size(64, 1, 1)
fn fwd_head(@builtin(global_invocation_id) gid: vec3<u32>) {
    touch_forward();
    let c = gid.x;
    let b = gid.y;
    let d = gid.z;
    if (c >= p.rw || p.s >= lens[b]) {
        return;
    }
    let row = row_of(d, time_of(d, b, p.s), b);
    var z = params[ex1(d) + c];
    let w = ex0(d) + c * p.hidden;
    let hr = p.rec + row * p.kw;
    for (var j = 0u; j < p.hidden; j++) {
        z += params[w + j] * f32(cache[hr + j]);
    }
    cache[hr + p.hidden + c] = CT(z);
    if (!softmax_feedback()) {
        cache[p.hs + row * p.rw + c] = CT(z);
    }
}

// One workgroup per row: the row's maximum and sum of exponentials reduced in workgroup
// memory, each invocation then writing the classes c = lid, lid + 64, .. (a loop of C / 64
// a pass, where one invocation per class would read the whole row twice: C^2 a row).
var<workgroup> softmax_red: array<f32, 64>;

// Folds softmax_red[0..64] into softmax_red[0] by max (or sum); every invocation reads it.
fn softmax_reduce(lid: u32, v: f32, by_max: bool) -> f32 {
    softmax_red[lid] = v;
    workgroupBarrier();
    for (var stride = 32u; stride > 0u; stride /= 2u) {
        if (lid < stride) {
            let o = softmax_red[lid + stride];
            softmax_red[lid] = select(softmax_red[lid] + o, max(softmax_red[lid], o), by_max);
        }
        workgroupBarrier();
    }
    let r = softmax_red[0];
    workgroupBarrier();
    return r;
}

// Workgroups (1, b, d); the row's early exit is uniform over the workgroup.
@compute @workgroup_size(64, 1, 1)
fn fwd_softmax(@builtin(workgroup_id) wid: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    touch_forward();
    let b = wid.y;
    let d = wid.z;
    if (p.s >= lens[b]) {
        return;
    }
    let row = row_of(d, time_of(d, b, p.s), b);
    let zr = p.rec + row * p.kw + p.hidden;
    var m = -3.4028235e38;
    for (var c = lid; c < p.rw; c += 64u) {
        m = max(m, f32(cache[zr + c]));
    }
    m = softmax_reduce(lid, m, true);
    var sum = 0.0;
    for (var c = lid; c < p.rw; c += 64u) {
        sum += exp(f32(cache[zr + c]) - m);
    }
    sum = softmax_reduce(lid, sum, false);
    for (var c = lid; c < p.rw; c += 64u) {
        cache[p.hs + row * p.rw + c] = CT(exp(f32(cache[zr + c]) - m) / sum);
    }
}

@compute @workgroup_size(64, 1, 1)
fn bwd_state(@builtin(global_invocation_id) gid: vec3<u32>) {
    touch_backward();
    let c = gid.x;
    let b = gid.y;
    let d = gid.z;
    if (c >= p.rw || p.s >= lens[b]) {
        return;
    }
    let row = row_of(d, time_of(d, b, p.s), b);
    gates[p.scr + row * p.sw + p.rw + c] = dh_from_next(d, b, p.s, c);
}

// Workgroups (units / 64, b, d): a workgroup's invocations share one row, and its early
// exit for a finished sequence is uniform over the workgroup.
@compute @workgroup_size(64, 1, 1)
fn bwd_step(@builtin(global_invocation_id) gid: vec3<u32>,
            @builtin(workgroup_id) wid: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    touch_backward();
    let j = gid.x;
    let b = wid.y;
    let d = wid.z;
    if (p.s >= lens[b]) {
        return;
    }
    let t = time_of(d, b, p.s);
    let row = row_of(d, t, b);
    let sr = p.scr + row * p.sw;
    let yr = p.hs + row * p.rw;
    // <y, dy> for the softmax's Jacobian (0 unused for linear feedback), each invocation
    // summing every 64th class before the workgroup adds the 64 parts.
    var dot = 0.0;
    if (softmax_feedback()) {
        var part = 0.0;
        for (var k = lid; k < p.rw; k += 64u) {
            part += f32(cache[yr + k]) * gates[sr + p.rw + k];
        }
        dot = softmax_reduce(lid, part, false);
    }
    if (j >= p.hidden) {
        return;
    }
    // dh = dout + W_head^T dz
    var dh = dy[dy_at(t, b, d, j)];
    let w = ex0(d) + j;
    for (var k = 0u; k < p.rw; k++) {
        var dz = gates[sr + p.rw + k];
        if (softmax_feedback()) {
            dz = f32(cache[yr + k]) * (dz - dot);
        }
        dh += params[w + k * p.hidden] * dz;
    }
    for (var k = j; k < p.rw; k += p.hidden) {
        var dz = gates[sr + p.rw + k];
        if (softmax_feedback()) {
            dz = f32(cache[yr + k]) * (dz - dot);
        }
        gates[sr + k] = dz;
    }
    let h = f32(cache[p.rec + row * p.kw + j]);
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
