// weights_f16.wgsl: an f16 copy of a layer's recurrent weights W_hh (one matrix per
// direction), made once per layer call, which the rounded tensor-core steps
// (shaders/step_coop.wgsl, W16) read instead of the f32 parameters: half the bytes a step
// reads from L2 for W_hh, with the same f16 operands up to a power of two (which changes
// neither an f16 rounding nor a product), staged as they are. CPU twin:
// src/backend/cpu/weights_f16.rs.
//
// Math: for direction d, k_d = chunk_exp(max |W_d|) (shaders/f16_range.wgsl, put before
// this file), so the largest weight lands in [2^14, 2^15); copy[0 .. D] = k_d (small
// integers, exact in f16), copy[HEAD + d * len + i] = f16(W_d[i] * 2^k_d). A NaN or
// infinity in W_d reaches the copy (and the steps' results) as itself.
//
// weights_max (workgroups of 256 x (G, D), a grid-stride loop over each matrix):
//   0 uniform P   len (elements of one matrix), at0, at1 (W_d's offsets in params), groups G
//   1 params f32[]      read
//   2 maxima u32[D * G] read_write: maxima[d G + w] = the bits of max |W_d| over workgroup
//                       w's elements (every one written: no clearing before)
//
// weights_copy (the same grid; each workgroup first gathers its direction's G maxima):
//   0 uniform P   as above
//   1 params f32[]      read
//   2 maxima u32[D * G] read
//   3 copy   f16[HEAD + D * len] read_write

enable f16;

struct P {
    len: u32, at0: u32, at1: u32, groups: u32,
}

// Halves before the matrices: the exponents k_d, one per direction (2 keep the matrices
// word-aligned).
const HEAD: u32 = 2u;

@group(0) @binding(0) var<uniform> p: P;
@group(0) @binding(1) var<storage, read> params: array<f32>;
@group(0) @binding(2) var<storage, read_write> maxima: array<u32>;
@group(0) @binding(3) var<storage, read_write> copy: array<f16>;

var<workgroup> wg_max: atomic<u32>;

fn at_of(d: u32) -> u32 {
    return select(p.at0, p.at1, d == 1u);
}

// The largest of the workgroup's `bits` (invocation l's share); uniform control flow.
fn workgroup_max(l: u32, bits: u32) -> u32 {
    if (l == 0u) {
        atomicStore(&wg_max, 0u);
    }
    workgroupBarrier();
    atomicMax(&wg_max, bits);
    workgroupBarrier();
    return atomicLoad(&wg_max);
}

@compute @workgroup_size(256, 1, 1)
fn weights_max(@builtin(local_invocation_index) l: u32,
               @builtin(workgroup_id) wg: vec3<u32>) {
    let at = at_of(wg.y);
    // |x| as bits orders like |x|, NaN above infinity (so a NaN is not lost, as max() would).
    var bits = 0u;
    for (var i = wg.x * 256u + l; i < p.len; i += p.groups * 256u) {
        bits = max(bits, bitcast<u32>(abs(params[at + i])));
    }
    let most = workgroup_max(l, bits);
    if (l == 0u) {
        maxima[wg.y * p.groups + wg.x] = most;
    }
}

@compute @workgroup_size(256, 1, 1)
fn weights_copy(@builtin(local_invocation_index) l: u32,
                @builtin(workgroup_id) wg: vec3<u32>) {
    let d = wg.y;
    let at = at_of(d);
    var bits = 0u;
    for (var w = l; w < p.groups; w += 256u) {
        bits = max(bits, maxima[d * p.groups + w]);
    }
    let k = chunk_exp(workgroup_max(l, bits));
    let s = ldexp(1.0, k);
    if (wg.x == 0u && l == 0u) {
        copy[d] = f16(f32(k));
    }
    let base = HEAD + d * p.len;
    for (var i = wg.x * 256u + l; i < p.len; i += p.groups * 256u) {
        copy[base + i] = f16(params[at + i] * s);
    }
}
