// optim.wgsl: one optimizer update per parameter (PyTorch's formulas). CPU twin:
// optimizer_step in src/backend/cpu/optim.rs. Every kernel: one invocation per parameter,
// 1-D grid of 256-wide groups. Scalars derived from the step (bias corrections, 1 - beta,
// 1 - lr * wd) are computed on the host in f32 exactly as the CPU twin computes them.
//
// sgd (no momentum):
//   0 uniform P   n, lr, wd
//   (and in every entry: 5 guard f32[] read)
//   1 params f32[] read_write
//   2 grads  f32[] read
//   p -= lr * (g + wd * p)
//
// sgd_momentum:
//   0 uniform P   n, lr, wd, mu, flags (bit 0: first step, bit 1: Nesterov)
//   1 params f32[] read_write
//   2 grads  f32[] read
//   3 buf    f32[] read_write (momentum buffer)
//   g = grad + wd * p; buf = first ? g : mu * buf + g; step = nesterov ? g + mu * buf : buf;
//   p -= lr * step
//
// adam (Adam and AdamW):
//   0 uniform P   n, lr, wd, flags (bit 2: decoupled weight decay), beta1, beta2,
//                 1 - beta1, 1 - beta2, eps, step_size = lr / (1 - beta1^t),
//                 bc2_sqrt = sqrt(1 - beta2^t), decay = 1 - lr * wd
//   1 params f32[] read_write
//   2 grads  f32[] read
//   3 m      f32[] read_write (first moment)
//   4 v      f32[] read_write (second moment)
//   AdamW: p *= decay; Adam: g += wd * p. m = b1 m + (1-b1) g; v = b2 v + (1-b2) g g;
//   p -= step_size * m / (sqrt(v) / bc2_sqrt + eps)

struct P {
    n: u32, lr: f32, wd: f32, mu: f32,
    flags: u32, beta1: f32, beta2: f32, one_m_b1: f32,
    one_m_b2: f32, eps: f32, step_size: f32, bc2_sqrt: f32,
    decay: f32, pad0: u32, pad1: u32, pad2: u32,
}

@group(0) @binding(0) var<uniform> p: P;

@group(0) @binding(1) var<storage, read_write> params: array<f32>;
@group(0) @binding(2) var<storage, read> grads: array<f32>;
@group(0) @binding(3) var<storage, read_write> s0: array<f32>;
@group(0) @binding(4) var<storage, read_write> s1: array<f32>;
// Every entry: skip the whole update when guard[0] (the gradient norm of this step) is
// infinite or NaN, so a diverged step never reaches the parameters or the moments.
@group(0) @binding(5) var<storage, read> guard: array<f32>;

fn skip_update() -> bool {
    return (bitcast<u32>(guard[0]) & 0x7f800000u) == 0x7f800000u;
}

@compute @workgroup_size(256, 1, 1)
fn sgd(@builtin(global_invocation_id) gid: vec3<u32>,
       @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_index(gid, nwg);
    if (i >= p.n || skip_update()) {
        return;
    }
    let w = params[i];
    let g = grads[i] + p.wd * w;
    params[i] = w - p.lr * g;
}

@compute @workgroup_size(256, 1, 1)
fn sgd_momentum(@builtin(global_invocation_id) gid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_index(gid, nwg);
    if (i >= p.n || skip_update()) {
        return;
    }
    let w = params[i];
    var g = grads[i] + p.wd * w;
    var buf = g;
    if ((p.flags & 1u) == 0u) {
        buf = p.mu * s0[i] + g;
    }
    s0[i] = buf;
    if ((p.flags & 2u) != 0u) {
        g = g + p.mu * buf;
    } else {
        g = buf;
    }
    params[i] = w - p.lr * g;
}

@compute @workgroup_size(256, 1, 1)
fn adam(@builtin(global_invocation_id) gid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_index(gid, nwg);
    if (i >= p.n || skip_update()) {
        return;
    }
    var w = params[i];
    var g = grads[i];
    if ((p.flags & 4u) != 0u) {
        w = w * p.decay;
    } else {
        g = g + p.wd * w;
    }
    let m = p.beta1 * s0[i] + p.one_m_b1 * g;
    let v = p.beta2 * s1[i] + p.one_m_b2 * g * g;
    s0[i] = m;
    s1[i] = v;
    let denom = sqrt(v) / p.bc2_sqrt + p.eps;
    params[i] = w - p.step_size * m / denom;
}
