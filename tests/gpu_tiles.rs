//! Both kinds of recurrent step kernels against the CPU reference, over batches that span
//! several tiles: tiled (16, 32 or 64 units x 16 sequences per workgroup,
//! `shaders/layer.wgsl`, with the plain and the blocked inner loops, the plain ones also with
//! their inner dimension split, `Tuning::step_k_split`, and in chunks of 16, 32 or 64
//! weight rows, `Tuning::step_chunk_rows`) and row-wise (one invocation per unit
//! and sequence), and the tiles' products as matrix-vector products for few sequences
//! (`Tuning::gemv_steps`, 4 sequences per workgroup). 19 sequences of mixed lengths (two
//! sequence tiles, five of 4), 65 units (the last unit tile nearly empty), widths that are
//! not multiples of the 16-wide inner chunk; uni- and bidirectional, two layers. Forward
//! values to 1e-5 relative error, gradients to 1e-4. The matrix-vector products also at
//! one and two sequences over more than one chunk (1024) of the inner dimension in both
//! directions.

mod gpu_common;

use gpu_common::{compare_stack, dense_net, gpu, layer, rng};
use wgrnn::backend::wgpu::{StepProducts, Tuning};
use wgrnn::config::{Activation, CellConfig, GruVariant};

fn run(name: &str, stacks: &[(CellConfig, CellConfig)]) {
    let Some(mut be) = gpu() else { return };
    let mut r = rng(name);
    let lengths: Vec<usize> = (0..19).map(|i| [7, 1, 4, 7, 2, 5][i % 6]).collect();
    // Plain tiles of 16, 32 and 64 units, blocked tiles (32 units), plain tiles with their
    // inner dimension split 4 ways (16 units; 32 for the Elman cell, the layout the grid
    // gives the H100's larger steps, where lavapipe's memory holds it, else 2 ways) and 2
    // ways (32 units; 64 for the Elman cell, where it fits: `layer::fit_chunks`); the 64-unit tiles also run with naga's bounds
    // checks off (the trusted path), so every kernel of a stack is compiled and compared
    // both ways. The plain loops' chunks: 64 weight rows (the default) in the 16-unit
    // tiles, 16 and 32 in the 32- and 64-unit ones; with K slices what lavapipe's 32 KiB of
    // workgroup memory holds of 64 (4 slices: 32 rows; 2 of 32 units: 64; 2 of 64 Elman
    // units: 32), and 16 asked at 4 slices; so the backward in chunks of 16, 32 and 64 rows
    // with and without slices, and the Elman forward in chunks of 16, 32 and 64 k steps (65
    // and 17 units: the last chunk partial). The LSTM's and GRU's forward take 32 k steps
    // where lavapipe's memory holds them beside the backward's rows (16-unit tiles at one
    // and two slices, the GRU's also wider), else 16.
    // Last, the matrix-vector products (`--step-kernel gemv`: 4 sequences and their own
    // tile width per workgroup, no K slices or chunk rows), with the checks off. The first
    // tiling runs the build for adapters with only 8 storage buffers per stage
    // (`Gpu::set_spare_binding(false)`: W_hh's aligned rows as 4 scalar loads, not through
    // the vec4 binding); the others the vec4 binding.
    for (tiled, units, blocked, k_split, chunk_rows, gemv) in [
        (true, 16, false, 1, 64, false),
        (true, 32, false, 1, 16, false),
        (true, 64, false, 1, 32, false),
        (true, 32, true, 1, 64, false),
        (false, 0, false, 1, 64, false),
        (true, 16, false, 4, 64, false),
        (true, 16, false, 4, 16, false),
        (true, 16, false, 2, 64, false),
        (true, 32, false, 2, 64, false),
        (true, 32, false, 4, 64, false),
        (true, 64, false, 2, 64, false),
        (true, 0, false, 1, 64, true),
    ] {
        let narrow = (tiled, units, k_split) == (true, 16, 1);
        assert_eq!(be.gpu().set_spare_binding(!narrow), !narrow);
        be.set_tuning(Tuning {
            tiled_steps: tiled,
            step_tile_units: (tiled && !gemv).then_some(units),
            blocked_steps: blocked,
            step_k_split: Some(k_split),
            step_chunk_rows: chunk_rows,
            gemv_steps: Some(gemv),
            checked: units != 64 && !gemv,
            ..Tuning::default()
        });
        assert_eq!(
            be.step_products() == StepProducts::Gemv,
            gemv,
            "{}",
            be.tuning().label()
        );
        // 65 and 17 units, both directions; for the plain tiles also 64 and 20 units one
        // way, whose W_hh rows start 16-byte aligned, so the forward loads them as vec4s
        // (the W4 override of shaders/step_tiles.wgsl; the others take its scalar loads).
        let plain = tiled && !blocked && !gemv;
        let mut shapes = vec![(65, 17, false), (65, 17, true)];
        if plain {
            shapes.push((64, 20, false));
        }
        for (c1, c2) in stacks {
            for &(h1, h2, bi) in &shapes {
                let cfg = dense_net(
                    3,
                    vec![layer(c1.clone(), h1, bi), layer(c2.clone(), h2, bi)],
                    None,
                );
                be = compare_stack(be, &cfg, &lengths, &mut r, 1e-5, 1e-4);
            }
        }
    }
}

#[test]
fn lstm_steps_over_several_tiles() {
    run(
        "lstm_steps_over_several_tiles",
        &[
            (CellConfig::lstm(false, None), CellConfig::lstm(false, None)),
            (
                CellConfig::lstm(true, Some(9)),
                CellConfig::lstm(false, Some(3)),
            ),
        ],
    );
}

#[test]
fn elman_and_gru_steps_over_several_tiles() {
    let elman = CellConfig::Elman {
        activation: Activation::Tanh,
    };
    let gru = |variant| CellConfig::Gru { variant };
    run(
        "elman_and_gru_steps_over_several_tiles",
        &[
            (elman.clone(), elman),
            (gru(GruVariant::Pytorch), gru(GruVariant::ResetBefore)),
        ],
    );
}

#[test]
fn gemv_steps_over_several_chunks_at_one_and_two_sequences() {
    // 1030 units: the forward's inner dimension in two chunks of up to 1024 (the second of
    // 6), the backward's 4120 (LSTM) and 1030 (Elman) rows of W_hh in five and two; rounds
    // of 256 k and 1024 rows that end past the matrix. One sequence (the batch1 case), and
    // two of different lengths, one layer each way.
    let Some(mut be) = gpu() else { return };
    let mut r = rng("gemv_steps_over_several_chunks_at_one_and_two_sequences");
    be.set_tuning(Tuning {
        gemv_steps: Some(true),
        tensor_steps: Some(false),
        ..Tuning::default()
    });
    assert_eq!(be.step_products(), StepProducts::Gemv);
    let elman = CellConfig::Elman {
        activation: Activation::Tanh,
    };
    for (cell, bi, lengths) in [
        (CellConfig::lstm(false, None), false, vec![3]),
        (CellConfig::lstm(false, None), true, vec![2, 3]),
        (elman, false, vec![3, 1]),
    ] {
        let cfg = dense_net(3, vec![layer(cell, 1030, bi)], None);
        be = compare_stack(be, &cfg, &lengths, &mut r, 1e-5, 1e-4);
    }
}
