// clip.wgsl: gradient clipping without a host round-trip. CPU twin: clip_grad_norm and
// clip_grad_value in src/backend/cpu/optim.rs.
//
// sumsq_partials (G workgroups of 256, a grid-stride loop over n):
//   0 uniform P   n, groups G
//   1 g        f32[] read
//   2 partials f32[] read_write: partials[w] = sum of g[i]^2 over workgroup w's elements
//
// norm_finish (a single 256-wide workgroup):
//   0 uniform P   groups G
//   1 partials f32[] read
//   2 norm     f32[] read_write: norm[0] = sqrt(sum of partials)
//
// scale_by_norm (one invocation per element, 1-D grid of 256-wide groups):
//   0 uniform P   n, max_norm c
//   1 norm f32[] read
//   2 g    f32[] read_write: g *= c / norm[0] when norm[0] > c
//
// clamp_values (one invocation per element):
//   0 uniform P   n, limit l
//   1 g f32[] read_write: g = min(max(g, -l), l)

struct P {
    n: u32, groups: u32, limit: f32, pad0: u32,
}

@group(0) @binding(0) var<uniform> p: P;

var<workgroup> red: array<f32, 256>;

// Tree sum of red[0..256] into red[0] (called from uniform control flow).
fn reduce_shared(lid: u32) {
    workgroupBarrier();
    for (var stride = 128u; stride > 0u; stride /= 2u) {
        if (lid < stride) {
            red[lid] += red[lid + stride];
        }
        workgroupBarrier();
    }
}

@group(0) @binding(1) var<storage, read> g_in: array<f32>;
@group(0) @binding(2) var<storage, read_write> partials: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn sumsq_partials(@builtin(workgroup_id) wid: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    var acc = 0.0;
    let stride = p.groups * 256u;
    for (var i = wid.x * 256u + lid; i < p.n; i += stride) {
        let v = g_in[i];
        acc += v * v;
    }
    red[lid] = acc;
    reduce_shared(lid);
    if (lid == 0u) {
        partials[wid.x] = red[0];
    }
}

@group(0) @binding(1) var<storage, read> parts: array<f32>;
@group(0) @binding(2) var<storage, read_write> norm_out: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn norm_finish(@builtin(local_invocation_index) lid: u32) {
    var acc = 0.0;
    for (var i = lid; i < p.groups; i += 256u) {
        acc += parts[i];
    }
    red[lid] = acc;
    reduce_shared(lid);
    if (lid == 0u) {
        norm_out[0] = sqrt(red[0]);
    }
}

@group(0) @binding(1) var<storage, read> norm_in: array<f32>;
@group(0) @binding(2) var<storage, read_write> g_scaled: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn scale_by_norm(@builtin(global_invocation_id) gid: vec3<u32>,
                 @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_index(gid, nwg);
    if (i >= p.n) {
        return;
    }
    let norm = norm_in[0];
    if (norm > p.limit) {
        g_scaled[i] *= p.limit / norm;
    }
}

@group(0) @binding(1) var<storage, read_write> g_clamped: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn clamp_values(@builtin(global_invocation_id) gid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_index(gid, nwg);
    if (i >= p.n) {
        return;
    }
    g_clamped[i] = min(max(g_clamped[i], -p.limit), p.limit);
}
