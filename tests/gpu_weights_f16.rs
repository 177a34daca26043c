//! The f16 copy of the recurrent weights (`shaders/weights_f16.wgsl`), which the rounded
//! tensor-core steps read instead of the f32 parameters, against its CPU twin
//! (`src/backend/cpu/weights_f16.rs`): the exponent of each matrix exactly, each copied
//! weight within one f16 step (WGSL may round an f32 to f16 either way). Matrices at awkward
//! offsets and lengths (one element; more than the kernels' 1024 workgroups of 256 cover in
//! one pass), one and two directions, at 2^-30 and 2^20, all zero, and with a NaN.

mod gpu_common;

use gpu_common::{gpu, poison, rng, uniform};
use half::f16;
use wgrnn::backend::cpu::weights_f16::weights_f16 as cpu_copy;
use wgrnn::backend::wgpu::weights_f16::{WEIGHTS_F16_HEAD, weights_f16};

/// Runs the copy of the matrices `mats` laid out in one parameter buffer at offsets 5,
/// 5 + len + 7 (as a layer's directions sit among its other parameters) and compares it with
/// the CPU twin's.
fn check(be: &wgrnn::WgpuBackend, mats: &[Vec<f32>], what: &str) {
    let g = be.gpu();
    let len = mats[0].len();
    let at: Vec<usize> = (0..mats.len()).map(|d| 5 + d * (len + 7)).collect();
    let mut params = uniform(&mut rng(what), at[mats.len() - 1] + len + 3, 1e6);
    for (m, &a) in mats.iter().zip(&at) {
        params[a..a + len].copy_from_slice(m);
    }
    // A poison pass first: its copy (all NaN) goes back to the pool, and the run below gets
    // that buffer back, so an element the kernels leave unwritten reads as NaN.
    let nan = g.buffer_from(&poison(params.len()));
    let poisoned = weights_f16(g, &nan, &at, len);
    let all_nan: Vec<f16> = g.read(&poisoned, poisoned.len());
    let nan_weights = &all_nan[WEIGHTS_F16_HEAD..];
    assert!(
        nan_weights.iter().all(|h| h.is_nan()),
        "{what}: poison pass"
    );
    drop(poisoned);
    let buf = g.buffer_from(&params);
    let copy = weights_f16(g, &buf, &at, len);
    assert_eq!(copy.len(), WEIGHTS_F16_HEAD + mats.len() * len, "{what}");
    let got: Vec<f16> = g.read(&copy, copy.len());
    for (d, m) in mats.iter().enumerate() {
        let (k, want) = cpu_copy(m);
        assert_eq!(
            got[d].to_f32(),
            k as f32,
            "{what}: exponent of direction {d}"
        );
        let base = WEIGHTS_F16_HEAD + d * len;
        for (i, (g, w)) in got[base..base + len].iter().zip(&want).enumerate() {
            let (g, w) = (g.to_f32(), w.to_f32());
            // One f16 step: 2^-10 of the value where it is normal, 2^-24 below.
            let step = (w.abs() * 2f32.powi(-10)).max(2f32.powi(-24));
            let ok = (w.is_nan() && g.is_nan()) || (g - w).abs() <= step;
            assert!(ok, "{what}: direction {d} element {i}: {g} vs {w}");
        }
    }
}

#[test]
fn the_f16_weight_copy_matches_its_cpu_twin() {
    let Some(be) = gpu() else { return };
    assert!(
        be.gpu().has_f16(),
        "the copy needs SHADER_F16 (lavapipe has it)"
    );
    let mut r = rng("the_f16_weight_copy_matches_its_cpu_twin");
    for (len, dirs) in [
        (1, 1),
        (3, 2),
        (257, 1),
        (4096 * 65, 2),
        (1024 * 256 + 300, 1),
    ] {
        let mats: Vec<Vec<f32>> = (0..dirs)
            .map(|d| uniform(&mut r, len, [0.03, 1.5][d]))
            .collect();
        check(&be, &mats, &format!("{len} x {dirs}"));
    }
    // Far below f16's normal range and far above its largest value; an all-zero matrix.
    let tiny: Vec<f32> = uniform(&mut r, 999, 1.0)
        .iter()
        .map(|x| x * 2f32.powi(-30))
        .collect();
    let huge: Vec<f32> = uniform(&mut r, 999, 1.0)
        .iter()
        .map(|x| x * 2f32.powi(20))
        .collect();
    check(&be, &[tiny, huge], "2^-30 and 2^20");
    check(&be, &[vec![0.0; 40], uniform(&mut r, 40, 1.0)], "zeros");
    // The largest weight where a workgroup other than the first reads it, in its loop's
    // last pass.
    let mut spike = uniform(&mut r, 1024 * 256 * 2 + 300, 1.0);
    spike[1024 * 256 * 2 + 299] = -3e4;
    check(&be, &[spike], "a spike at the end");
    // A NaN weight stays NaN (the steps' results then show it); the others are copied.
    let mut nan = uniform(&mut r, 300, 1.0);
    nan[123] = f32::NAN;
    check(&be, &[nan], "a NaN");
}
