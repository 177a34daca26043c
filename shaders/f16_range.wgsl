// f16_range.wgsl: the power-of-two exponents that bring a block of f32 values into f16's
// range before rounding, for the tensor-core kernels' chunk scales (shaders/coop_scale.wgsl)
// and the f16 copy of the recurrent weights (shaders/weights_f16.wgsl). f16 is normal only
// from 6.1e-5 to 65504: a block whose largest magnitude lands in [2^14, 2^15) keeps 10
// mantissa bits for every element down to 2^-28 of it. No bindings. CPU twin:
// `chunk_exp` in src/backend/cpu/weights_f16.rs.

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
