//! The dropout mask as a pure function of (seed, element index), so every backend draws the
//! same mask without storing it, and the backward pass recomputes it. The per-element hash
//! uses only 32-bit integer operations so the WGSL twin (`shaders/dropout.wgsl`) computes
//! bit-identical masks.

/// Chris Wellons' `lowbias32` integer hash.
pub fn hash32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^= x >> 16;
    x
}

/// Whether element `index` survives dropout with drop probability `p` under `seed`.
pub fn keep(seed: u64, index: u32, p: f32) -> bool {
    let (lo, hi) = (seed as u32, (seed >> 32) as u32);
    let h = hash32(hash32(index ^ hi) ^ lo);
    // The top 24 bits as a uniform number in [0, 1).
    let u = (h >> 8) as f32 / (1u32 << 24) as f32;
    u >= p
}

/// The seed of layer `layer`'s mask in training step `step` under a run's base seed.
pub fn layer_seed(base: u64, step: u64, layer: usize) -> u64 {
    let mix = |a: u64, b: u64| {
        let lo = hash32(a as u32 ^ hash32(b as u32));
        let hi = hash32((a >> 32) as u32 ^ hash32((b >> 32) as u32 ^ lo));
        (hi as u64) << 32 | lo as u64
    };
    mix(mix(base, step), layer as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_rate_matches_probability_and_seeds_differ() {
        let n = 100_000u32;
        for p in [0.1f32, 0.5, 0.8] {
            let kept = (0..n).filter(|&i| keep(7, i, p)).count() as f32 / n as f32;
            assert!((kept - (1.0 - p)).abs() < 0.01, "p={p}: kept {kept}");
        }
        let a: Vec<bool> = (0..64).map(|i| keep(1, i, 0.5)).collect();
        let b: Vec<bool> = (0..64).map(|i| keep(2, i, 0.5)).collect();
        assert_ne!(a, b);
        assert_ne!(layer_seed(1, 1, 0), layer_seed(1, 1, 1));
        assert_ne!(layer_seed(1, 1, 0), layer_seed(1, 2, 0));
    }
}
