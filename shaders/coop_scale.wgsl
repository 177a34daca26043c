// coop_scale.wgsl: the power-of-two chunk scales of the tensor-core kernels
// (shaders/gemm_coop.wgsl, shaders/step_coop.wgsl), which round their operands to f16. f16 is
// normal only from 6.1e-5 to 65504, while gradients are often 1e-6 and smaller, so each chunk
// of an operand is multiplied by 2^k, k chosen so that its largest magnitude lands in
// [2^14, 2^15), before rounding; the chunk's products are multiplied by 2^-k (exact) as they
// join the f32 sums. The largest magnitude of a chunk is found with atomicMax on the bit
// patterns of |x| (non-negative floats order like their bits). No bindings.

/// The largest magnitude of four values, as the bits of an f32.
fn max_bits(v: vec4<f32>) -> u32 {
    let m = abs(v);
    return bitcast<u32>(max(max(m.x, m.y), max(m.z, m.w)));
}

/// The exponent k for which 2^k brings a chunk whose largest magnitude has the f32 bits
/// `bits` into [2^14, 2^15), inside f16's range; 0 for an all-zero chunk. Clamped so 2^k and
/// 2^-k are finite f32 (a NaN or infinity in the chunk scales it down and stays itself).
fn chunk_exp(bits: u32) -> i32 {
    if (bits == 0u) {
        return 0;
    }
    let e = i32((bits >> 23u) & 0xffu) - 127;
    return clamp(14 - e, -126, 126);
}
