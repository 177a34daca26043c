//! Both kinds of recurrent step kernels against the CPU reference, over batches that span
//! several tiles: tiled (16, 32 or 64 units x 16 sequences per workgroup,
//! `shaders/layer.wgsl`, with the plain and the blocked inner loops, the plain ones also with
//! their inner dimension split, `Tuning::step_k_split`, and in chunks of 16, 32 or 64
//! weight rows, `Tuning::step_chunk_rows`) and row-wise (one invocation per unit
//! and sequence). 19 sequences of mixed lengths (two sequence tiles), 65 units (the last unit
//! tile nearly empty), widths that are not multiples of the 16-wide inner chunk; uni- and
//! bidirectional, two layers. Forward values to 1e-5 relative error, gradients to 1e-4.

mod gpu_common;

use gpu_common::{compare_stack, dense_net, gpu, layer, rng};
use wgrnn::backend::wgpu::Tuning;
use wgrnn::config::{Activation, CellConfig, GruVariant};

fn run(name: &str, stacks: &[(CellConfig, CellConfig)]) {
    let Some(mut be) = gpu() else { return };
    let mut r = rng(name);
    let lengths: Vec<usize> = (0..19).map(|i| [7, 1, 4, 7, 2, 5][i % 6]).collect();
    // Plain tiles of 16, 32 and 64 units, blocked tiles (32 units), plain tiles with their
    // inner dimension split 4 ways (16 units) and 2 ways (32 units; 64 for the Elman cell,
    // where it fits: `layer::fit_k_split`); the 64-unit tiles also run with naga's bounds
    // checks off (the trusted path), so every kernel of a stack is compiled and compared
    // both ways. The plain loops' chunks: 64 weight rows (the default) in the 16-unit
    // tiles, 16 and 32 in the 32- and 64-unit ones, 64 / KS (16 or 32) with K slices; so
    // the backward in chunks of 16, 32 and 64 rows, and the Elman forward in chunks of 16,
    // 32 and 64 k steps (65 and 17 units: the last chunk partial).
    for (tiled, units, blocked, k_split, chunk_rows) in [
        (true, 16, false, 1, 64),
        (true, 32, false, 1, 16),
        (true, 64, false, 1, 32),
        (true, 32, true, 1, 64),
        (false, 0, false, 1, 64),
        (true, 16, false, 4, 64),
        (true, 32, false, 2, 64),
        (true, 64, false, 2, 64),
    ] {
        be.set_tuning(Tuning {
            tiled_steps: tiled,
            step_tile_units: tiled.then_some(units),
            blocked_steps: blocked,
            step_k_split: k_split,
            step_chunk_rows: chunk_rows,
            checked: units != 64,
            ..Tuning::default()
        });
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
