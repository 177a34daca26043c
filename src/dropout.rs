//! The dropout mask as a pure function of (seed, element index), so every backend draws the
//! same mask without storing it, and the backward pass recomputes it.

/// A 64-bit mix (SplitMix64's finaliser) of the seed and index.
fn mix(seed: u64, index: u64) -> u64 {
    let mut z = seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Whether element `index` survives dropout with drop probability `p` under `seed`.
pub fn keep(seed: u64, index: u64, p: f32) -> bool {
    // The top 24 bits as a uniform number in [0, 1).
    let u = (mix(seed, index) >> 40) as f32 / (1u64 << 24) as f32;
    u >= p
}

/// The seed of layer `layer`'s mask in training step `step` under a run's base seed.
pub fn layer_seed(base: u64, step: u64, layer: usize) -> u64 {
    mix(mix(base, step), layer as u64)
}
