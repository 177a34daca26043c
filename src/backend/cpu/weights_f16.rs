//! CPU twin of `shaders/weights_f16.wgsl` (and of `chunk_exp` in `shaders/f16_range.wgsl`):
//! the f16 copy of a recurrent weight matrix that the rounded tensor-core steps read, each
//! matrix scaled by the power of two that puts its largest magnitude in [2^14, 2^15).

use half::f16;

/// The exponent k for which 2^k brings a block whose largest magnitude is `max_abs` into
/// [2^14, 2^15); 0 for an all-zero block; clamped to [-126, 126] so 2^k and 2^-k are finite
/// (a NaN or infinity gives -114 and stays itself).
pub fn chunk_exp(max_abs: f32) -> i32 {
    let bits = max_abs.abs().to_bits();
    if bits == 0 {
        return 0;
    }
    let e = ((bits >> 23) & 0xff) as i32 - 127;
    (14 - e).clamp(-126, 126)
}

/// The f16 copy of one matrix `w`: its exponent k and `w * 2^k` rounded to f16 (to nearest;
/// the WGSL conversion may round either way, so a GPU copy agrees within one f16 step).
pub fn weights_f16(w: &[f32]) -> (i32, Vec<f16>) {
    // NaN is carried by its bits, which order above infinity's, as the kernel's atomicMax.
    let bits = w.iter().map(|x| x.abs().to_bits()).max().unwrap_or(0);
    let k = chunk_exp(f32::from_bits(bits));
    let s = 2f32.powi(k);
    (k, w.iter().map(|&x| f16::from_f32(x * s)).collect())
}

#[cfg(test)]
mod tests {
    use super::{chunk_exp, weights_f16};

    #[test]
    fn the_largest_weight_lands_in_the_top_binade_below_2_to_15() {
        for max in [1e-30f32, 3e-7, 0.03, 1.0, 1.5, 40000.0, 1e30] {
            let (k, h) = weights_f16(&[max * 0.25, -max, 0.0]);
            let top = h[1].to_f32().abs();
            assert!((16384.0..32768.0).contains(&top), "{max}: {top} (k {k})");
            assert_eq!(h[2].to_f32(), 0.0);
            assert_eq!(h[0].to_f32(), top / 4.0, "{max}: a power of two apart");
        }
        assert_eq!(chunk_exp(0.0), 0);
        assert_eq!(chunk_exp(1.0), 14);
        assert_eq!(chunk_exp(f32::MIN_POSITIVE), 126);
        assert_eq!(chunk_exp(f32::INFINITY), -114);
        let (_, h) = weights_f16(&[1.0, f32::NAN]);
        assert!(h[1].is_nan(), "a NaN weight stays NaN");
    }
}
