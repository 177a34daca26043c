// encode.wgsl: token bags -> encoded steps, and the embedding gradient.
// CPU twin: src/backend/cpu/encode.rs.
//
// Layout: step row r = t * B + b holds the bag ids[offsets[r] .. offsets[r + 1]] (u32, already
// mapped to the "other" slot; one id per row for plain tokens, a word's letter trigrams for
// word hashing); x `[T, B, W]`; row r exists when t < lengths[b]; padding rows are zeros.
//
// encode_forward (one invocation per element of x, 1-D grid of 256-wide groups):
//   0 uniform P   n = T*B*W, width W, batch B, mode, table offset
//   1 params f32[] read        (embedding table rows at table + id * W; the dummy for one-hot)
//   2 ids     u32[] read
//   3 lengths u32[] read
//   4 x       f32[] read_write
//   5 offsets u32[] read `[T*B + 1]`
//   mode 0 embedding bag: x[r, f] = sum over the bag of params[table + id * W + f]
//   mode 1 one-hot:       x[r, f] = number of ids in the bag equal to f
//   otherwise zeros. Sums run in bag order.
//
// encode_backward (one invocation per (unique id, feature), 1-D grid):
//   0 uniform P   n = U*W, width W, U unique ids, table offset, CSR offsets inside csr,
//                 skip, most (this dispatch's share of each id's positions)
//   1 csr   u32[] read: uniq[U] at 0, offsets[U+1] at off_start, positions at pos_start
//   2 dx    f32[] read `[T, B, W]`
//   3 grads f32[] read_write
//   grads[table + uniq[u] * W + f] += sum over the positions r of id u (in step order, a row
//   listed once per occurrence of u in its bag) of dx[r * W + f], over each id's positions
//   skip..skip + most a dispatch (all of them in one, except where the adapter caps a
//   kernel's loops: the running sum goes through grads between dispatches, the same f32
//   sums). Each table row has exactly one writer, so no atomics are needed and the sum is
//   deterministic (the same order as the CPU loop).

struct P {
    n: u32, width: u32, batch: u32, mode: u32,
    table: u32, off_start: u32, pos_start: u32, uniq: u32,
    skip: u32, most: u32, pad0: u32, pad1: u32,
}

@group(0) @binding(0) var<uniform> p: P;

@group(0) @binding(1) var<storage, read> params: array<f32>;
@group(0) @binding(2) var<storage, read> ids: array<u32>;
@group(0) @binding(3) var<storage, read> lengths: array<u32>;
@group(0) @binding(4) var<storage, read_write> x: array<f32>;
@group(0) @binding(5) var<storage, read> offsets: array<u32>;

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
    if (t < lengths[b] && p.mode <= 1u) {
        for (var k = offsets[r]; k < offsets[r + 1u]; k++) {
            let id = ids[k];
            if (p.mode == 0u) {
                v += params[p.table + id * p.width + f];
            } else {
                v += select(0.0, 1.0, f == id);
            }
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
    let count = csr[p.off_start + u + 1u] - start;
    if (count <= p.skip) {
        return;
    }
    let end = start + min(count, p.skip + p.most);
    let at = p.table + id * p.width + f;
    var acc = grads[at];
    for (var k = start + p.skip; k < end; k++) {
        let r = csr[p.pos_start + k];
        acc += dx[r * p.width + f];
    }
    grads[at] = acc;
}
