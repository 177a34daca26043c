// loss.wgsl: the task losses and their gradients in one pass, the mean taken on the GPU.
// CPU twin: src/backend/cpu/loss.rs.
//
// Two kernels share a scratch buffer `s` of `rows` floats: s[r] the loss of row r (0 when
// it takes no part). The mean's scale 1/count (`inv`, 0 when nothing counts) comes from
// the host, which counts the terms from the lengths, targets and ignore label it has: the
// row kernels write the gradient scaled, and the reduction scales the summed loss.
//
// ce_rows (softmax cross-entropy; one 64-wide workgroup per row, 2-D grid of rows):
//   0 uniform P   rows, classes C, batch B, flags (bit 0: rows are steps r = t*B + b that
//                 count only when t < lengths[b]; bit 1: an ignore label is set), ignore,
//                 inv (f32 bits)
//   1 logits  f32[] read `[rows, C]`
//   2 targets u32[] read `[rows]`
//   3 lengths u32[] read `[B]`
//   4 dlogits f32[] read_write `[rows, C]`: (softmax(z) - onehot(y)) inv; 0 on rows
//                   that do not count
//   5 s       f32[] read_write: s[r] = logsumexp(z) - z[y] (or 0)
//   A row counts when it is valid, its label is not the ignore label and is < C.
//
// mse_rows (squared error; one invocation per row, 1-D grid of 256-wide groups):
//   0 uniform P   rows (= T*B), width C, batch B, inv (f32 bits)
//   1 pred    f32[] read `[T, B, C]`
//   2 target  f32[] read `[T, B, C]`
//   3 lengths u32[] read
//   4 dpred   f32[] read_write: 2 (pred - target) inv; 0 on padding rows
//   5 s       f32[] read_write: s[r] = sum of squared errors (0 on padding)
//
// reduce_loss (a single 256-wide workgroup):
//   0 uniform P   rows, inv
//   1 s    f32[] read_write
//   2 loss f32[] read_write: loss[0] = (sum of s[r]) inv

struct P {
    rows: u32, classes: u32, batch: u32, flags: u32,
    ignore: u32, inv: u32, pad0: u32, pad1: u32,
}

// The mean's scale, 1/count.
fn inv() -> f32 { return bitcast<f32>(p.inv); }

@group(0) @binding(0) var<uniform> p: P;

const CE_WG: u32 = 64u;
var<workgroup> red: array<f32, 256>;

@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> targets: array<u32>;
@group(0) @binding(3) var<storage, read> lengths: array<u32>;
@group(0) @binding(4) var<storage, read_write> dlogits: array<f32>;
@group(0) @binding(5) var<storage, read_write> s: array<f32>;

// Whether row r (a step t*B + b when rows are steps) exists.
fn row_valid(r: u32) -> bool {
    if ((p.flags & 1u) == 0u) {
        return true;
    }
    return r / p.batch < lengths[r % p.batch];
}

@compute @workgroup_size(64, 1, 1)
fn ce_rows(@builtin(workgroup_id) wid: vec3<u32>,
           @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let r = wid.x + wid.y * nwg.x;
    if (r >= p.rows) {
        return;
    }
    let base = r * p.classes;
    // Row maximum.
    var m = -3.4028235e38;
    for (var c = lid; c < p.classes; c += CE_WG) {
        m = max(m, logits[base + c]);
    }
    red[lid] = m;
    workgroupBarrier();
    for (var stride = CE_WG / 2u; stride > 0u; stride /= 2u) {
        if (lid < stride) {
            red[lid] = max(red[lid], red[lid + stride]);
        }
        workgroupBarrier();
    }
    m = red[0];
    workgroupBarrier();
    // Sum of exp(z - m).
    var sum = 0.0;
    for (var c = lid; c < p.classes; c += CE_WG) {
        sum += exp(logits[base + c] - m);
    }
    red[lid] = sum;
    workgroupBarrier();
    for (var stride = CE_WG / 2u; stride > 0u; stride /= 2u) {
        if (lid < stride) {
            red[lid] += red[lid + stride];
        }
        workgroupBarrier();
    }
    sum = red[0];
    let y = targets[r];
    let ignored = (p.flags & 2u) != 0u && y == p.ignore;
    let counted = row_valid(r) && !ignored && y < p.classes;
    for (var c = lid; c < p.classes; c += CE_WG) {
        var d = exp(logits[base + c] - m) / sum;
        if (c == y) {
            d -= 1.0;
        }
        dlogits[base + c] = select(0.0, d * inv(), counted);
    }
    if (lid == 0u) {
        var l = 0.0;
        if (counted) {
            l = m + log(sum) - logits[base + y];
        }
        s[r] = l;
    }
}

@group(0) @binding(1) var<storage, read> pred: array<f32>;
@group(0) @binding(2) var<storage, read> goal: array<f32>;
@group(0) @binding(3) var<storage, read> mse_lengths: array<u32>;
@group(0) @binding(4) var<storage, read_write> dpred: array<f32>;
@group(0) @binding(5) var<storage, read_write> mse_s: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn mse_rows(@builtin(global_invocation_id) gid: vec3<u32>,
            @builtin(num_workgroups) nwg: vec3<u32>) {
    let r = linear_index(gid, nwg);
    if (r >= p.rows) {
        return;
    }
    let valid = r / p.batch < mse_lengths[r % p.batch];
    let base = r * p.classes;
    var total = 0.0;
    for (var j = 0u; j < p.classes; j++) {
        let e = pred[base + j] - goal[base + j];
        total += e * e;
        dpred[base + j] = select(0.0, (2.0 * e) * inv(), valid);
    }
    mse_s[r] = select(0.0, total, valid);
}

@group(0) @binding(1) var<storage, read_write> rs: array<f32>;
@group(0) @binding(2) var<storage, read_write> loss: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn reduce_loss(@builtin(local_invocation_index) lid: u32) {
    var total = 0.0;
    for (var r = lid; r < p.rows; r += 256u) {
        total += rs[r];
    }
    red[lid] = total;
    workgroupBarrier();
    for (var stride = 128u; stride > 0u; stride /= 2u) {
        if (lid < stride) {
            red[lid] += red[lid + stride];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        loss[0] = red[0] * inv();
    }
}
