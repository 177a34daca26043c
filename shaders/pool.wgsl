// pool.wgsl: sequence pooling and the head's row helpers. CPU twin: src/backend/cpu/head.rs
// (the head's products themselves run through gemm.wgsl).
//
// Layout: step tensors `[T, B, F]` with F = dirs * width, row r = t * B + b valid when
// t < lengths[b]; pooled `[B, F]`. All kernels: 1-D grid of 256-wide groups.
//
// pool_forward (one invocation per element (b, f) of pooled):
//   0 uniform P  n = B*F, cols = F, width, batch B, mode (0 last, 1 mean), off = t0,
//                until = t1
//   1 x       f32[] read
//   2 lengths u32[] read
//   3 pooled  f32[] read_write
//   last: pooled[b, f] = x[t, b, f] at t = len-1 for direction d = f / width == 0, t = 0
//   for the reverse direction; mean: sum over t < len (in step order) times 1/len, over the
//   steps t0..t1 a dispatch: the sum so far is kept in pooled between dispatches (the same
//   f32 sums as in one), scaled by 1/len by the dispatch that reaches len (one dispatch
//   of all steps, t0 = 0 and t1 = T, except where the adapter caps a kernel's loops).
//
// pool_backward (one invocation per element (t, b, f) of dx):
//   0 uniform P  n = T*B*F, cols = F, width, batch B, mode
//   1 dpooled f32[] read
//   2 lengths u32[] read
//   3 dx      f32[] read_write
//   last: dx = dpooled[b, f] at the pooled step, else 0; mean: dpooled[b, f] / len on valid
//   steps; padding 0.
//
// mask_rows (one invocation per element of a `[rows, cols]` matrix of per-step rows):
//   0 uniform P  n = rows*cols, cols, batch B
//   1 lengths u32[] read
//   2 m       f32[] read_write: zero where row r = t*B + b has t >= lengths[b]

// Every kernel reads the words it needs: n (invocations), cols (F, or the matrix's columns),
// width, batch, mode, rows, off, until.
struct P {
    n: u32, cols: u32, width: u32, batch: u32,
    mode: u32, rows: u32, off: u32, until: u32,
}

@group(0) @binding(0) var<uniform> p: P;

fn last_step(len: u32, d: u32) -> u32 {
    return select(0u, len - 1u, d == 0u);
}

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> lengths: array<u32>;
@group(0) @binding(3) var<storage, read_write> pooled: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn pool_forward(@builtin(global_invocation_id) gid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_index(gid, nwg);
    if (i >= p.n) {
        return;
    }
    let b = i / p.cols;
    let f = i % p.cols;
    let len = lengths[b];
    let row = p.batch * p.cols;
    let base = b * p.cols + f;
    var v = 0.0;
    if (p.mode == 0u) {
        v = x[last_step(len, f / p.width) * row + base];
    } else {
        if (len <= p.off) {
            return;
        }
        if (p.off > 0u) {
            v = pooled[i];
        }
        let end = min(len, p.until);
        for (var t = p.off; t < end; t++) {
            v += x[t * row + base];
        }
        if (end == len) {
            v *= 1.0 / f32(len);
        }
    }
    pooled[i] = v;
}

@group(0) @binding(1) var<storage, read> dpooled: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn pool_backward(@builtin(global_invocation_id) gid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_index(gid, nwg);
    if (i >= p.n) {
        return;
    }
    let f = i % p.cols;
    let r = i / p.cols;
    let t = r / p.batch;
    let b = r % p.batch;
    let len = lengths[b];
    var v = 0.0;
    if (t < len) {
        let g = dpooled[b * p.cols + f];
        if (p.mode == 0u) {
            v = select(0.0, g, t == last_step(len, f / p.width));
        } else {
            v = g * (1.0 / f32(len));
        }
    }
    dx[i] = v;
}

@group(0) @binding(1) var<storage, read> row_lengths: array<u32>;
@group(0) @binding(2) var<storage, read_write> m: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn mask_rows(@builtin(global_invocation_id) gid: vec3<u32>,
             @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_index(gid, nwg);
    if (i >= p.n) {
        return;
    }
    let r = i / p.cols;
    let t = r / p.batch;
    let b = r % p.batch;
    if (t >= row_lengths[b]) {
        m[i] = 0.0;
    }
}
