//! Both kinds of recurrent step kernels against the CPU reference, over batches that span
//! several tiles: tiled (16, 32 or 64 units x 16 sequences per workgroup,
//! `shaders/layer.wgsl`, with the plain and the blocked inner loops, the plain ones also with
//! their inner dimension split, `Tuning::step_k_split`, and in chunks of 16, 32 or 64
//! weight rows, `Tuning::step_chunk_rows`) and row-wise (one invocation per unit
//! and sequence), and the tiles' products as matrix-vector products for few sequences
//! (`Tuning::gemv_steps`, 4 sequences per workgroup). 19 sequences of mixed lengths (two
//! sequence tiles, five of 4), 65 units (the last unit tile nearly empty), widths that are
//! not multiples of the 16-wide inner chunk; uni- and bidirectional, two layers. Forward
//! values to 1e-5 relative error, gradients to 1e-4. Each suite configuration's layout of
//! the f32 tiles on the H100 too, laid out for its 48 KiB of workgroup memory (lavapipe
//! reports 32 but allocates what a workgroup declares). The matrix-vector products also at
//! one and two sequences over more than one chunk (1024) of the inner dimension in both
//! directions.

mod gpu_common;

use gpu_common::{compare_stack, dense_net, gpu, lay_out_for_the_h100, layer, rng, suite_cell};
use wgrnn::backend::wgpu::{Precision, SUITE_GRIDS, StepGrid, StepProducts, Tuning, h100_tiles};
use wgrnn::config::{Activation, CellConfig, GruVariant};

fn run(name: &str, stacks: &[(CellConfig, CellConfig)]) {
    let Some(mut be) = gpu() else { return };
    let mut r = rng(name);
    let lengths: Vec<usize> = (0..19).map(|i| [7, 1, 4, 7, 2, 5][i % 6]).collect();
    // Plain tiles of 16, 32 and 64 units, blocked tiles (32 units), plain tiles with their
    // inner dimension split 4 ways (16 units; 32 for the Elman cell, the layout the grid
    // gives the H100's larger steps, where lavapipe's memory holds it, else 2 ways) and 2
    // ways (32 units; 64 for the Elman cell, where it fits: `step_tiles::fit_chunks`); the 64-unit tiles also run with naga's bounds
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
    // the vec4 binding); the others the vec4 binding. The LSTM's and GRU's forward takes
    // tiles of half the units x 32 sequences in the plain tiles of 32 and 64 units (the
    // default over 19 sequences, `step_tiles::forward_quads`), but for one of 32 units asked for
    // 16 sequences (`fwd16`); the 16-unit tiles' forward takes 16.
    for (tiled, units, blocked, k_split, chunk_rows, gemv, fwd16) in [
        (true, 16, false, 1, 64, false, false),
        (true, 32, false, 1, 16, false, false),
        (true, 64, false, 1, 32, false, false),
        (true, 32, true, 1, 64, false, false),
        (false, 0, false, 1, 64, false, false),
        (true, 16, false, 4, 64, false, false),
        (true, 16, false, 4, 16, false, false),
        (true, 16, false, 2, 64, false, false),
        (true, 32, false, 2, 64, false, true),
        (true, 32, false, 4, 64, false, false),
        (true, 64, false, 2, 64, false, false),
        (true, 0, false, 1, 64, true, false),
    ] {
        let narrow = (tiled, units, k_split) == (true, 16, 1);
        assert_eq!(be.gpu().set_spare_binding(!narrow), !narrow);
        be.set_tuning(Tuning {
            tiled_steps: tiled,
            step_tile_units: (tiled && !gemv).then_some(units),
            blocked_steps: blocked,
            step_k_split: Some(k_split),
            step_chunk_rows: chunk_rows,
            forward_sequences: fwd16.then_some(16),
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
fn the_h100_layouts_of_the_suite() {
    // Each suite configuration's f32 step tiles as the H100 lays them out by the grid
    // (`h100_tiles`: width, K slices, backward rows and forward k steps a chunk), with its
    // cell, against the CPU reference. Most of them take more than lavapipe's 32 KiB of
    // workgroup memory (the LSTM's forward at 16 units x 32 sequences x 4 slices 41 KiB,
    // charlm's 16 x 16 x 4 in 64-row chunks 46), so the kernels are laid out for the H100's 48 KiB, which a CPU
    // adapter allows (`Gpu::set_workgroup_storage`); batch1 takes the matrix-vector
    // products and small's tiles are charlm's. Shapes as `run`'s: 19 sequences, 65 and 17
    // units (partial unit tiles and chunks), and 64 and 20 one way (W_hh's rows aligned:
    // the forward's vec4 loads); then the suite's own width.
    let Some(mut be) = gpu() else { return };
    if !lay_out_for_the_h100(be.gpu(), "the_h100_layouts_of_the_suite") {
        return;
    }
    let mut r = rng("the_h100_layouts_of_the_suite");
    let lengths: Vec<usize> = (0..19).map(|i| [7, 1, 4, 7, 2, 5][i % 6]).collect();
    let short: Vec<usize> = lengths.iter().map(|&n| n.min(3)).collect();
    let mut seen = Vec::new();
    for (name, grid) in SUITE_GRIDS {
        if name == "batch1" || name == "small" {
            continue;
        }
        let (tu, chunks) = h100_tiles(grid, None, None, None);
        let cell = suite_cell(grid.gates);
        let bi = grid.dirs == 2;
        if seen.contains(&(grid.gates, bi, tu, chunks)) {
            continue;
        }
        seen.push((grid.gates, bi, tu, chunks));
        be.set_tuning(Tuning {
            step_tile_units: Some(tu),
            step_k_split: Some(chunks.ks),
            step_chunk_rows: chunks.rows,
            forward_sequences: Some(chunks.forward_sequences()),
            gemv_steps: Some(false),
            ..Tuning::default()
        });
        // What the test's own grid gets at these choices is the suite's layout.
        let mine = StepGrid {
            hidden: 65,
            batch: lengths.len(),
            dirs: grid.dirs,
            gates: grid.gates,
        };
        assert_eq!(be.step_tiles(mine, Some(chunks.ks)), (tu, chunks), "{name}");
        // Beyond lavapipe's 32 KiB but for the Elman layout and wide's (one slice: its
        // forward of 32 units x 32 sequences takes 23 KiB).
        assert!(
            chunks.bytes() > 32 << 10 || grid.gates == 1 || name == "wide",
            "{name}: {chunks:?}"
        );
        let mut shapes = vec![(65, 17, bi)];
        if !bi {
            shapes.push((64, 20, false));
        }
        for (h1, h2, bi) in shapes {
            let cfg = dense_net(
                3,
                vec![layer(cell.clone(), h1, bi), layer(cell.clone(), h2, bi)],
                None,
            );
            be = compare_stack(be, &cfg, &lengths, &mut r, 1e-5, 1e-4);
        }
        // And one layer of the configuration's own width over 3 steps: every slice walks
        // the whole run of chunks it walks on the H100 (the flagship's 8 backward, 16
        // forward).
        let cfg = dense_net(3, vec![layer(cell.clone(), grid.hidden, bi)], None);
        be = compare_stack(be, &cfg, &short, &mut r, 1e-5, 1e-4);
    }
    // charlm (LSTM 16 x 4), flagship (LSTM 32 x 4, its forward 16 x 32), gru4, tanh4, wide
    // (LSTM 64 x 1, its forward 32 x 32) and bilstm (flagship's layout both ways).
    assert_eq!(seen.len(), 6, "{seen:?}");
    assert_eq!(SUITE_GRIDS[2].0, "flagship");
    let lstm = CellConfig::lstm(false, None);
    let cfg = dense_net(
        3,
        vec![layer(lstm.clone(), 65, false), layer(lstm, 17, false)],
        None,
    );
    // The flagship's forward in 16 sequences (the layout before entry 56, 45 KiB).
    let (tu, chunks) = h100_tiles(SUITE_GRIDS[2].1, None, None, Some(16));
    assert!(chunks.fwd.bytes() > 44 << 10, "{chunks:?}");
    be.set_tuning(Tuning {
        step_tile_units: Some(tu),
        step_k_split: Some(chunks.ks),
        step_chunk_rows: chunks.rows,
        forward_sequences: Some(16),
        gemv_steps: Some(false),
        ..Tuning::default()
    });
    be = compare_stack(be, &cfg, &lengths, &mut r, 1e-5, 1e-4);
    // The flagship's layout with f16 caches (`device.sh f16`'s f16-f32-steps): the f16
    // build of the same tiles, to gpu_f16's bounds (one f16 rounding of the records).
    let (tu, chunks) = h100_tiles(SUITE_GRIDS[2].1, None, None, None);
    be.set_precision(Precision::F16)
        .expect("the GPU tests' adapter must offer SHADER_F16");
    be.set_tuning(Tuning {
        step_tile_units: Some(tu),
        step_k_split: Some(chunks.ks),
        step_chunk_rows: chunks.rows,
        gemv_steps: Some(false),
        tensor_steps: Some(false),
        ..Tuning::default()
    });
    compare_stack(be, &cfg, &lengths, &mut r, 4e-3, 5e-3);
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
