//! The tiled step kernels with their recurrent products on the tensor cores
//! (`shaders/step_coop.wgsl`, `--step-kernel tensor`) against the f32 CPU reference: on the
//! adapter's matrix units, or with the matrix operations emulated where it has none
//! (lavapipe: every other line of the kernels, staging, chunk scales, block placement and
//! hand-out, runs as on the matrix units). 19 sequences of mixed lengths (two sequence tiles),
//! 65 units (the last unit tile nearly empty), widths that are not multiples of the 16-deep
//! chunk; uni- and bidirectional, two layers; tiles of 16, 32 and 64 units (1, 2 and 4
//! blocks of 16 columns per gate, 2, 4 and 8 subgroups), the LSTM's forward in 32- and
//! 64-unit ones over one tile of 32 sequences (two row blocks, `step_tiles::coop_forward_quads`)
//! but for one run in 16. The operands of every recurrent
//! product are rounded to f16 (relative 2^-11), so the bounds are those of the f16 path
//! (tests/gpu_f16.rs); a misplaced block or an unwritten slot is off by O(1).
//! The hardware build, which no CI adapter can run, is compiled to SPIR-V for every cell, cache
//! type and tile width.

mod gpu_common;

use gpu_common::{
    assert_close, compare_stack, compare_stack_scaled, compile_coop_to_spirv, dense_batch,
    dense_net, gpu, lay_out_for_the_h100, layer, nan_batch, rng, suite_cell,
    tensor_cores_or_emulated, uniform,
};
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use wgrnn::backend::wgpu::{
    CellKind, H100_WORKGROUP_BYTES, Precision, SUITE_GRIDS, StepGrid, StepProducts, Tuning,
    cell_module_source, coop_step_bytes, coop_tiles,
};
use wgrnn::config::{Activation, CellConfig, GruVariant};
use wgrnn::{Batch, CpuBackend, Mode, Model, Wants};

const TOL_FWD: f64 = 4e-3;
const TOL_GRAD: f64 = 5e-3;

/// The backend with tensor-core steps on the matrix units or emulated.
fn tensor_gpu() -> Option<wgrnn::WgpuBackend> {
    let be = gpu()?;
    tensor_cores_or_emulated(be.gpu(), "tensor-core steps");
    Some(be)
}

fn tensor_steps(units: usize, checked: bool) -> Tuning {
    Tuning {
        tiled_steps: true,
        step_tile_units: Some(units),
        tensor_steps: Some(true),
        checked,
        ..Tuning::default()
    }
}

/// The test stacks' step grid (65 units, 19 sequences, LSTM gates; the slices do not depend
/// on the gates).
const GRID: StepGrid = StepGrid {
    hidden: 65,
    batch: 19,
    dirs: 1,
    gates: 4,
};

fn run(name: &str, stacks: &[(CellConfig, CellConfig)]) {
    let Some(mut be) = tensor_gpu() else { return };
    let mut r = rng(name);
    let lengths: Vec<usize> = (0..19).map(|i| [7, 1, 4, 7, 2, 5][i % 6]).collect();
    // f32 caches at every tile width (the 64-unit tiles without bounds checks), then f16
    // caches at 32 units: what `--precision f16` runs on an adapter with tensor cores. The
    // K slices by the grid: 4 at 16 and 32 units (this grid is small), at 64 units what the
    // adapter's workgroup memory holds (one on lavapipe); then one slice at 32 units, and
    // four at 64 where the kernels may be laid out for 64 KiB (a CPU adapter). The LSTM's
    // forward in tiles of half the units x 32 sequences at 32 and 64 units (the default
    // over 19 sequences), but in 16 at one slice (`fwd16`).
    let full = be.gpu().workgroup_storage();
    for (units, precision, k_split, storage, fwd16) in [
        (16, Precision::F32, None, full, false),
        (32, Precision::F32, None, full, false),
        (64, Precision::F32, None, full, false),
        (32, Precision::F16, None, full, false),
        (32, Precision::F32, Some(1), full, true),
        (64, Precision::F32, Some(4), 64 << 10, false),
    ] {
        let storage = be.gpu().set_workgroup_storage(storage);
        be.set_tuning(Tuning {
            step_k_split: k_split,
            forward_sequences: fwd16.then_some(16),
            ..tensor_steps(units, units != 64)
        });
        be.set_precision(precision).expect("f16 caches");
        assert_ne!(be.step_products(), StepProducts::F32);
        let (tu, ks) = be.coop_step_tiles(GRID, k_split);
        assert_eq!(tu, units);
        match (units, k_split) {
            (16 | 32, None) => assert_eq!(ks, 4, "{units} units"),
            (_, Some(1)) => assert_eq!(ks, 1),
            (64, Some(4)) if storage == 64 << 10 => assert_eq!(ks, 4),
            _ => {}
        }
        for (c1, c2) in stacks {
            for bi in [false, true] {
                let cfg = dense_net(
                    3,
                    vec![layer(c1.clone(), 65, bi), layer(c2.clone(), 17, bi)],
                    None,
                );
                be = compare_stack(be, &cfg, &lengths, &mut r, TOL_FWD, TOL_GRAD);
            }
        }
    }
    be.gpu().set_workgroup_storage(full);
}

#[test]
fn lstm_tensor_steps_match_the_f32_reference() {
    run(
        "lstm_tensor_steps_match_the_f32_reference",
        &[
            (CellConfig::lstm(false, None), CellConfig::lstm(false, None)),
            // Peepholes; with a projection only the forward step is tiled.
            (
                CellConfig::lstm(true, Some(9)),
                CellConfig::lstm(true, None),
            ),
        ],
    );
}

#[test]
fn elman_and_gru_tensor_steps_match_the_f32_reference() {
    let elman = CellConfig::Elman {
        activation: Activation::Tanh,
    };
    let gru = |variant| CellConfig::Gru { variant };
    run(
        "elman_and_gru_tensor_steps_match_the_f32_reference",
        &[
            (elman.clone(), elman),
            (gru(GruVariant::Pytorch), gru(GruVariant::ResetBefore)),
        ],
    );
}

/// The tensor-core steps as the H100 lays them out for the suite's LSTM, GRU and Elman
/// configurations (`coop_tiles` at its limits: 32 units at 4 K slices for the flagship,
/// gru4, tanh4 and bilstm, 16 at 4 for charlm; wide's 64 at one is `run`'s; the LSTM's
/// forward in 16 units x 32 sequences, `step_tiles::coop_forward_quads`), at the
/// configuration's own width (one layer over 3 steps, 19 sequences), so each slice walks
/// the run of chunks it walks there (the flagship's forward 16 chunks a slice, backward
/// 32): laid out for the H100's 48 KiB where the adapter allows it (a CPU adapter does).
#[test]
fn the_h100_tensor_layouts_of_the_suite() {
    let Some(mut be) = tensor_gpu() else { return };
    let mut r = rng("the_h100_tensor_layouts_of_the_suite");
    if !lay_out_for_the_h100(be.gpu(), "the_h100_tensor_layouts_of_the_suite") {
        return;
    }
    let lengths: Vec<usize> = (0..19).map(|i| [3, 1, 2, 3, 2, 3][i % 6]).collect();
    let mut seen = Vec::new();
    for (name, grid) in SUITE_GRIDS {
        let (tu, ks) = coop_tiles(grid, None, None, false, 1024, H100_WORKGROUP_BYTES);
        assert!(
            coop_step_bytes(tu, ks, false) <= H100_WORKGROUP_BYTES,
            "{name}"
        );
        // wide's one slice of 64 units is `run`'s, which lavapipe holds.
        if ks == 1 || name == "batch1" || name == "small" || seen.contains(&(grid.gates, tu, ks)) {
            continue;
        }
        seen.push((grid.gates, tu, ks));
        be.set_tuning(Tuning {
            step_tile_units: Some(tu),
            step_k_split: Some(ks),
            ..tensor_steps(tu, true)
        });
        assert_eq!(be.coop_step_tiles(grid, Some(ks)), (tu, ks), "{name}");
        let cell = suite_cell(grid.gates);
        let cfg = dense_net(3, vec![layer(cell, grid.hidden, false)], None);
        be = compare_stack(be, &cfg, &lengths, &mut r, TOL_FWD, TOL_GRAD);
    }
    // charlm's LSTM (16 x 4), the flagship's (32 x 4, also bilstm's), gru4, tanh4.
    assert_eq!(
        seen,
        [(4, 16, 4), (4, 32, 4), (3, 32, 4), (1, 32, 4)],
        "{seen:?}"
    );
    // The flagship's split steps (`--step-kernel tensor-split`): 32 units at the 2 slices
    // their doubled staging leaves, at the f32 tiles' bounds.
    let (name, grid) = SUITE_GRIDS[2];
    assert_eq!(name, "flagship");
    be.set_tuning(Tuning {
        split_steps: true,
        ..tensor_steps(32, true)
    });
    assert_eq!(be.coop_step_tiles(grid, None), (32, 2));
    let cfg = dense_net(3, vec![layer(suite_cell(4), grid.hidden, false)], None);
    compare_stack(be, &cfg, &lengths, &mut r, 1e-5, 1e-4);
}

/// The tensor-core steps at f32 accuracy (`--step-kernel tensor-split`: each operand staged
/// as two f16 halves, three products a step) at the f32 tiles' bounds (1e-5 forward, 1e-4
/// gradients; the rounded products above need 4e-3 and 5e-3), every cell uni- and
/// bidirectional, laid out for the H100's 48 KiB: 16-unit tiles at 4 K slices (charlm's
/// layout) and 32-unit ones at the 2 that hold their doubled staging (the flagship's:
/// `coop_tiles` halves the 4 of the rounded products). The operands at 2^-30 and 2^20 too.
#[test]
fn split_tensor_steps_match_the_f32_reference() {
    let Some(mut be) = tensor_gpu() else { return };
    let mut r = rng("split_tensor_steps_match_the_f32_reference");
    if !lay_out_for_the_h100(be.gpu(), "split_tensor_steps_match_the_f32_reference") {
        return;
    }
    let lengths: Vec<usize> = (0..19).map(|i| [7, 1, 4, 7, 2, 5][i % 6]).collect();
    let lstm = CellConfig::lstm(false, None);
    let gru = CellConfig::Gru {
        variant: GruVariant::Pytorch,
    };
    let elman = CellConfig::Elman {
        activation: Activation::Tanh,
    };
    for (units, ks, stacks) in [
        (16, 4, [(lstm.clone(), gru.clone())]),
        (32, 2, [(gru, elman)]),
    ] {
        be.set_tuning(Tuning {
            split_steps: true,
            ..tensor_steps(units, true)
        });
        assert_eq!(be.coop_step_tiles(GRID, None), (units, ks));
        assert!(!be.uses_tensor_cores(), "split steps are not rounded ones");
        for (c1, c2) in stacks {
            for bi in [false, true] {
                let cfg = dense_net(
                    3,
                    vec![layer(c1.clone(), 65, bi), layer(c2.clone(), 17, bi)],
                    None,
                );
                be = compare_stack(be, &cfg, &lengths, &mut r, 1e-5, 1e-4);
            }
        }
    }
    let cfg = dense_net(3, vec![layer(lstm, 40, false)], None);
    for scale in [2f32.powi(-30), 2f32.powi(20)] {
        be = compare_stack_scaled(be, &cfg, &lengths, &mut r, 1e-5, 1e-4, scale);
    }
}

/// One forward and backward of `cfg` on `be` with `params`, after a poison pass over NaN
/// inputs at every step (so rows a run leaves unwritten hold NaN): the outputs, final
/// states, parameter gradients and input gradients, one after the other.
fn gpu_pass(
    be: wgrnn::WgpuBackend,
    cfg: &wgrnn::config::NetworkConfig,
    params: &[f32],
    batch: &Batch<f32>,
    dout_seed: u64,
) -> (wgrnn::WgpuBackend, Vec<f32>) {
    let mut m = Model::new(be, cfg.clone(), 1).expect("gpu model");
    m.set_params(params).expect("params");
    let wants = Wants {
        inputs: true,
        initial_states: false,
    };
    let mut poisoned = nan_batch(batch);
    poisoned.seq.lengths.fill(batch.seq.time);
    m.forward(&poisoned, None, Mode::Eval)
        .expect("poison forward");
    let dout = uniform(
        &mut ChaCha8Rng::seed_from_u64(dout_seed),
        m.outputs().len(),
        1.0,
    );
    m.backward_from(&dout, None, wants)
        .expect("poison backward");
    m.zero_grads();
    m.forward(batch, None, Mode::Eval).expect("forward");
    let mut all = m.outputs();
    for s in m.final_states() {
        all.extend(s.h);
        all.extend(s.c.unwrap_or_default());
    }
    let g = m.backward_from(&dout, None, wants).expect("backward");
    all.extend(m.grads());
    all.extend(g.inputs.expect("dx"));
    (m.into_backend(), all)
}

/// The rounded tensor-core steps read W_hh from its f16 copy (`shaders/weights_f16.wgsl`,
/// `--step-weights f16`; by default where the copy pays, which at these sizes it does not)
/// and give the products they give from the f32 weights (`--step-weights f32`): the same
/// f16 operands, scaled by other powers of two. Outputs, states and every gradient agree
/// to 1e-6 (a copy 0.1% off is 3.8e-4 away), an LSTM and a bidirectional GRU, with W_hh at
/// 1, 2^-24 (below f16's normal range without the copy's exponent) and 2^12 times its
/// initial scale.
#[test]
fn half_weights_give_the_products_of_the_f32_weights() {
    let Some(mut be) = tensor_gpu() else { return };
    assert!(
        be.gpu().spare_binding(),
        "a ninth storage buffer for the copy"
    );
    let mut r = rng("half_weights_give_the_products_of_the_f32_weights");
    let lengths: Vec<usize> = (0..19).map(|i| [7, 1, 4, 7, 2, 5][i % 6]).collect();
    let gru = CellConfig::Gru {
        variant: GruVariant::Pytorch,
    };
    for (cell, bi) in [(CellConfig::lstm(false, None), false), (gru, true)] {
        let cfg = dense_net(3, vec![layer(cell, 65, bi)], None);
        let batch = dense_batch(&mut r, 3, &lengths);
        let m = Model::new(CpuBackend::<f32>::new(), cfg.clone(), r.random()).expect("model");
        let dout_seed: u64 = r.random();
        for scale in [1.0, 2f32.powi(-24), 2f32.powi(12)] {
            let mut params = m.params();
            for e in m
                .table()
                .entries()
                .iter()
                .filter(|e| e.name.contains("weight_hh"))
            {
                params[e.range()].iter_mut().for_each(|w| *w *= scale);
            }
            let what = format!("{cfg:?} with W_hh x {scale:e}");
            let mut runs = Vec::new();
            for f32_weights in [false, true] {
                be.set_tuning(Tuning {
                    half_step_weights: Some(!f32_weights),
                    ..tensor_steps(32, true)
                });
                let weights = m
                    .table()
                    .entries()
                    .iter()
                    .filter(|e| e.name.contains("weight_hh"));
                let weights = weights.map(|e| e.range().len()).sum();
                assert_eq!(be.half_step_weights(19, weights, 7), !f32_weights, "{what}");
                let (back, all) = gpu_pass(be, &cfg, &params, &batch, dout_seed);
                be = back;
                runs.push(all);
            }
            assert_close(&what, &runs[0], &runs[1], 1e-6);
        }
    }
}

/// Gradients far below f16's normal range (2^-30 of O(1): what a mean loss over a large batch
/// gives) and far above it (2^20) reach the backward's recurrent products (dgh_{t+1}, the A
/// operand) and keep their relative precision: each chunk is scaled into f16's range before
/// rounding (shaders/coop_scale.wgsl). Without the scales, 2^-30 flushes to zero in f16 and
/// 2^20 overflows.
#[test]
fn tensor_steps_keep_tiny_and_huge_gradients() {
    let Some(mut be) = tensor_gpu() else { return };
    let mut r = rng("tensor_steps_keep_tiny_and_huge_gradients");
    let lengths: Vec<usize> = (0..19).map(|i| [7, 1, 4, 7, 2, 5][i % 6]).collect();
    be.set_tuning(tensor_steps(32, true));
    for scale in [2f32.powi(-30), 2f32.powi(20)] {
        let lstm = CellConfig::lstm(false, None);
        let cfg = dense_net(3, vec![layer(lstm, 65, false)], None);
        be = compare_stack_scaled(be, &cfg, &lengths, &mut r, TOL_FWD, TOL_GRAD, scale);
    }
}

/// Which products the steps take: f32 by default and for the blocked and row-wise steps;
/// the tensor cores when asked, and by default under f16 precision, where the adapter has
/// them; back to f32 (at a few sequences the matrix-vector products) when the tensor cores
/// go away.
#[test]
fn tensor_steps_are_taken_where_asked_and_possible() {
    let Some(mut be) = tensor_gpu() else { return };
    let tensor = if be.gpu().tensor_emulated() {
        StepProducts::TensorEmulated
    } else {
        StepProducts::Tensor
    };
    assert_eq!(be.step_products(), StepProducts::F32, "f32 precision");
    be.set_tuning(tensor_steps(32, true));
    assert_eq!(be.step_products(), tensor);
    assert!(be.uses_tensor_cores());
    for other in [
        Tuning {
            blocked_steps: true,
            ..tensor_steps(32, true)
        },
        Tuning {
            tiled_steps: false,
            ..tensor_steps(32, true)
        },
    ] {
        be.set_tuning(other);
        assert_eq!(be.step_products(), StepProducts::F32, "{other:?}");
    }
    be.set_tuning(Tuning::default());
    be.set_precision(Precision::F16).expect("f16");
    assert_eq!(be.step_products(), tensor, "f16 precision takes them");
    be.set_tuning(Tuning {
        tensor_steps: Some(false),
        ..Tuning::default()
    });
    assert_eq!(be.step_products(), StepProducts::F32, "unless told not to");
    be.set_tuning(Tuning::default());
    assert_eq!(be.step_products_for(1), tensor, "at a few sequences too");
    be.gpu().give_up_tensor_cores("recurrent step", "a test");
    assert_eq!(be.step_products(), StepProducts::F32, "after giving up");
    assert_eq!(
        be.step_products_for(1),
        StepProducts::Gemv,
        "after giving up, a few sequences take the matrix-vector products"
    );
    assert!(!be.uses_tensor_cores());
}

/// The hardware build of every cell's kernels, for f32 and f16 caches, is valid WGSL with
/// cooperative matrices, its `// @generate step_coop_*` lines unrolled into named
/// accumulators, and compiles to SPIR-V (as wgpu's Vulkan backend does) for each tiled entry
/// point at every tile width, at one and four K slices. No adapter needed: lavapipe has no
/// cooperative matrices.
#[test]
fn tensor_steps_compile_to_spirv() {
    for cell in [CellKind::Lstm, CellKind::Gru, CellKind::Elman] {
        for f16 in [false, true] {
            let what = format!("{cell:?} f16={f16}");
            let src = cell_module_source(cell, f16, StepProducts::Tensor);
            assert!(!src.lines().any(|l| l.trim().starts_with("// @generate")));
            assert!(src.contains("enable wgpu_cooperative_matrix;"), "{what}");
            // Forward: two accumulators, each with its chunk product; backward: one.
            assert_eq!(
                src.matches("= coop_mat16x16<f32, C>();").count(),
                6,
                "{what}"
            );
            // Each product, and with SPLIT its two lo-half products.
            assert_eq!(src.matches("coopMultiplyAdd(").count(), 3 * 3, "{what}");
            assert_eq!(src.matches("coopStoreT(").count(), 3, "{what}");
            assert!(
                !src.contains("var<private>") && !src.contains("wsm"),
                "{what}"
            );
            let pipelines: Vec<_> = ["fwd_step_tiled", "bwd_step_tiled"]
                .into_iter()
                .flat_map(|entry| {
                    [16.0, 32.0, 64.0].into_iter().flat_map(move |tu| {
                        // W_hh from the f16 copy or the parameters, rounded or split.
                        [(1.0, 0.0, 0.0), (4.0, 0.0, 1.0), (2.0, 1.0, 0.0)].map(
                            |(ks, split, w16)| {
                                let c = [("TU", tu), ("KS", ks), ("SPLIT", split), ("W16", w16)];
                                (entry, c.to_vec())
                            },
                        )
                    })
                })
                .collect();
            compile_coop_to_spirv(&what, &src, &pipelines);
        }
    }
}
