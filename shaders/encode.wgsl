// encode.wgsl: token ids -> encoded steps, and the embedding gradient.
// CPU twin: src/backend/cpu/encode.rs.
//
// Layout: ids `[T, B]` (u32, already mapped to the "other" slot), x `[T, B, W]`; row
// r = t * B + b exists when t < lengths[b]; padding rows are written as zeros.
//
// encode_forward (one invocation per element of x, 1-D grid of 256-wide groups):
//   0 uniform P   n = T*B*W, width W, batch B, mode, table offset
//   1 params f32[] read        (embedding table rows at table + id * W; the dummy for one-hot)
//   2 ids     u32[] read
//   3 lengths u32[] read
//   4 x       f32[] read_write
//   mode 0 embedding: x[r, f] = params[table + id * W + f]
//   mode 1 one-hot:   x[r, f] = (f == id) ? 1 : 0
//   otherwise zeros.
//
// encode_backward (one invocation per (unique id, feature), 1-D grid):
//   0 uniform P   n = U*W, width W, U unique ids, table offset, CSR offsets inside csr
//   1 csr   u32[] read: uniq[U] at 0, offsets[U+1] at off_start, positions at pos_start
//   2 dx    f32[] read `[T, B, W]`
//   3 grads f32[] read_write
//   grads[table + uniq[u] * W + f] += sum over the positions r of id u (in step order) of
//   dx[r * W + f]. Each table row has exactly one writer, so no atomics are needed and the
//   sum is deterministic (the same order as the CPU loop).

struct P {
    n: u32, width: u32, batch: u32, mode: u32,
    table: u32, off_start: u32, pos_start: u32, uniq: u32,
}

@group(0) @binding(0) var<uniform> p: P;

@group(0) @binding(1) var<storage, read> params: array<f32>;
@group(0) @binding(2) var<storage, read> ids: array<u32>;
@group(0) @binding(3) var<storage, read> lengths: array<u32>;
@group(0) @binding(4) var<storage, read_write> x: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn encode_forward(@builtin(global_invocation_id) gid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_index(gid, nwg);
    if (i >= p.n) {
        return;
    }
    let r = i / p.width;
    let f = i % p.width;
    let t = r / p.batch;
    let b = r % p.batch;
    var v = 0.0;
    if (t < lengths[b]) {
        let id = ids[r];
        if (p.mode == 0u) {
            v = params[p.table + id * p.width + f];
        } else if (p.mode == 1u) {
            v = select(0.0, 1.0, f == id);
        }
    }
    x[i] = v;
}

@group(0) @binding(1) var<storage, read> csr: array<u32>;
@group(0) @binding(2) var<storage, read> dx: array<f32>;
@group(0) @binding(3) var<storage, read_write> grads: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn encode_backward(@builtin(global_invocation_id) gid: vec3<u32>,
                   @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = linear_index(gid, nwg);
    if (i >= p.n) {
        return;
    }
    let u = i / p.width;
    let f = i % p.width;
    let id = csr[u];
    let start = csr[p.off_start + u];
    let end = csr[p.off_start + u + 1u];
    let at = p.table + id * p.width + f;
    var acc = grads[at];
    for (var k = start; k < end; k++) {
        let r = csr[p.pos_start + k];
        acc += dx[r * p.width + f];
    }
    grads[at] = acc;
}
