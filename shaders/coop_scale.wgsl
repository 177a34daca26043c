// coop_scale.wgsl: the power-of-two chunk scales of the tensor-core kernels
// (shaders/gemm_coop.wgsl, shaders/step_coop.wgsl), which round their operands to f16, and
// the staging of those operands (put_a, put_b: f16, and with the includer's SPLIT also the
// lo halves that make the products f32-accurate). f16 is
// normal only from 6.1e-5 to 65504, while gradients are often 1e-6 and smaller, so each chunk
// of an operand is multiplied by 2^k, k chosen so that its largest magnitude lands in
// [2^14, 2^15), before rounding (shaders/f16_range.wgsl, which the host puts before this
// file); the chunk's products are multiplied by 2^-k (exact) as they join the f32 sums. The
// largest magnitude of a chunk is found with atomicMax on the bit patterns of |x|
// (non-negative floats order like their bits). No bindings.
//
// Slot protocol (two slots per operand, so a chunk's maxima are gathered while the chunk
// before it runs and cost no barrier of their own): scales_first before the loop (chunk 0
// into slot 0); per chunk kt in slot kt % 2: scales_of before staging it, scales_done after
// the barrier that follows the staging (every invocation has read the slot), and
// scales_add(1 - slot, ..) once the next chunk is loaded. The chunk after next fills the slot
// again only after the next barrier. A kernel whose invocations go through their own runs
// of chunks side by side (step_coop.wgsl's K slices) gives each run its own pair of slots,
// from slot `base` (2 x its index), and its own lead invocation `l` = 0; the includer
// declares SCALE_SLOTS, 2 per run.

var<workgroup> amax: array<atomic<u32>, SCALE_SLOTS>; // largest |A| of a chunk, as bits
var<workgroup> bmax: array<atomic<u32>, SCALE_SLOTS>; // largest |B| of a chunk, as bits

/// Clears both slots (from `base`) of both operands, then gathers the first chunk's maxima
/// (`abits`, `bbits`: this invocation's share, as max_bits gives them) into slot `base`.
/// Invocation `l` (local index in its run); uniform control flow (two barriers).
fn scales_first(l: u32, base: u32, abits: u32, bbits: u32) {
    if (l == 0u) {
        atomicStore(&amax[base], 0u);
        atomicStore(&bmax[base], 0u);
        atomicStore(&amax[base + 1u], 0u);
        atomicStore(&bmax[base + 1u], 0u);
    }
    workgroupBarrier();
    scales_add(base, abits, bbits);
    workgroupBarrier();
}

/// Adds this invocation's share of a chunk's maxima to `slot`.
fn scales_add(slot: u32, abits: u32, bbits: u32) {
    atomicMax(&amax[slot], abits);
    atomicMax(&bmax[slot], bbits);
}

/// A chunk's multipliers, A's in x and B's in y: `to` brings an operand into f16's range
/// before staging, `back` undoes it on the products (applied one after the other where
/// together they leave f32's normal range: one_back).
struct ChunkScales {
    to: vec2<f32>,
    back: vec2<f32>,
}

/// The multipliers of the chunk gathered in `slot`, whose B operand was loaded already
/// multiplied by 2^kw (the f16 copy of the weights, shaders/weights_f16.wgsl; else 0): B's
/// `back` undoes both, its `to` lowered where together they would leave f32's range (never
/// for a chunk whose maximum is 0, such as the f16 copy's, staged unscaled: its `to` is 1).
fn scales_of(slot: u32, kw: i32) -> ChunkScales {
    let ka = chunk_exp(atomicLoad(&amax[slot]));
    let kb = min(chunk_exp(atomicLoad(&bmax[slot])), 126 - kw);
    let one = vec2<f32>(1.0);
    return ChunkScales(ldexp(one, vec2<i32>(ka, kb)), ldexp(one, vec2<i32>(-ka, -kb - kw)));
}

/// The products' one multiplier back.x back.y where it is a normal f32, so that one multiply
/// scales them back exactly as the two one after the other would (powers of two); else 0,
/// and they take the two (operands far below or above f16's range on both sides: products
/// below 2^-98 or above 2^155). The same for every invocation that reads the chunk's scales,
/// so a branch on it is uniform.
fn one_back(sc: ChunkScales) -> f32 {
    let b = sc.back.x * sc.back.y;
    return select(0.0, b, b >= 0x1p-126f && b <= 0x1p127f);
}

/// Clears `slot` for the chunk after next (invocation `l`; after the barrier that follows
/// staging the chunk that used it).
fn scales_done(l: u32, slot: u32) {
    if (l == 0u) {
        atomicStore(&amax[slot], 0u);
        atomicStore(&bmax[slot], 0u);
    }
}

/// Stages the scaled operand x at As[i] rounded to f16, and with SPLIT what that rounding
/// leaves (x - hi, exact in f32) rounded again at As[A_LO + i]: together 22 of x's 24
/// mantissa bits. The includer declares As, Bs (f16 arrays), SPLIT, A_LO and B_LO.
fn put_a(i: u32, x: f32) {
    let hi = f16(x);
    As[i] = hi;
    if (SPLIT) {
        As[A_LO + i] = f16(x - f32(hi));
    }
}

/// The same for B, its lo half at Bs[B_LO + i].
fn put_b(i: u32, x: f32) {
    let hi = f16(x);
    Bs[i] = hi;
    if (SPLIT) {
        Bs[B_LO + i] = f16(x - f32(hi));
    }
}
