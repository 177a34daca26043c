//! The LSTM layer on the GPU against the CPU reference: plain, peepholes, projection (LSTMP),
//! both, linear cell/hidden activations and a set forget bias, uni- and bidirectional, two
//! layers, awkward sizes, variable lengths mixed in one batch, initial states given and their
//! gradients asked for. Forward values to 1e-5 relative error, gradients to 1e-4.

mod gpu_common;

use gpu_common::{compare_stack, dense_net, gpu, layer, rng};
use wgrnn::config::{Activation, CellConfig, LayerConfig};

const TOL_FWD: f64 = 1e-5;
const TOL_GRAD: f64 = 1e-4;

/// Batches of awkward shapes: batch 1 and 5, lengths 1 and 7 mixed.
const LENGTHS: [&[usize]; 3] = [&[1], &[7], &[7, 1, 4, 7, 2]];

/// A two-layer stack: (cell, hidden) of the lower and of the upper layer.
type Stack = ((CellConfig, usize), (CellConfig, usize));

/// Two-layer stacks of `(cell, hidden)` pairs, uni- and bidirectional, over every batch of
/// `LENGTHS` (all of them when `all_lengths`, else only the mixed batch).
fn run(name: &str, stacks: &[Stack], all_lengths: bool) {
    let Some(mut be) = gpu() else { return };
    let mut r = rng(name);
    let lengths: &[&[usize]] = if all_lengths { &LENGTHS } else { &LENGTHS[2..] };
    for ((c1, h1), (c2, h2)) in stacks {
        for bi in [false, true] {
            for &lens in lengths {
                let cfg = dense_net(
                    3,
                    vec![layer(c1.clone(), *h1, bi), layer(c2.clone(), *h2, bi)],
                    None,
                );
                be = compare_stack(be, &cfg, lens, &mut r, TOL_FWD, TOL_GRAD);
            }
        }
    }
}

#[test]
fn lstm_plain() {
    let c = CellConfig::lstm(false, None);
    run(
        "lstm_plain",
        &[
            ((c.clone(), 1), (c.clone(), 3)),
            ((c.clone(), 17), (c.clone(), 33)),
            ((c.clone(), 65), (c, 5)),
        ],
        true,
    );
}

#[test]
fn lstm_peephole() {
    let c = CellConfig::lstm(true, None);
    run(
        "lstm_peephole",
        &[((c.clone(), 1), (c.clone(), 3)), ((c.clone(), 33), (c, 17))],
        true,
    );
}

#[test]
fn lstm_projection() {
    run(
        "lstm_projection",
        &[
            (
                (CellConfig::lstm(false, Some(1)), 3),
                (CellConfig::lstm(false, Some(2)), 17),
            ),
            (
                (CellConfig::lstm(false, Some(2)), 17),
                (CellConfig::lstm(false, Some(1)), 3),
            ),
        ],
        true,
    );
    // A projection wider than the 64-wide workgroup.
    run(
        "lstm_projection_wide",
        &[(
            (CellConfig::lstm(false, Some(65)), 66),
            (CellConfig::lstm(false, Some(1)), 3),
        )],
        false,
    );
}

#[test]
fn lstm_peephole_and_projection() {
    run(
        "lstm_peephole_projection",
        &[
            (
                (CellConfig::lstm(true, Some(2)), 3),
                (CellConfig::lstm(true, Some(1)), 17),
            ),
            (
                (CellConfig::lstm(true, None), 65),
                (CellConfig::lstm(true, Some(2)), 3),
            ),
        ],
        true,
    );
}

#[test]
fn lstm_linear_activations_and_forget_bias() {
    let lin = CellConfig::Lstm {
        gate: Activation::Sigmoid,
        cell: Activation::Linear,
        hidden: Activation::Linear,
        peephole: false,
        proj: None,
        forget_bias: None,
    };
    let fb = CellConfig::Lstm {
        gate: Activation::Sigmoid,
        cell: Activation::Tanh,
        hidden: Activation::Tanh,
        peephole: true,
        proj: Some(2),
        forget_bias: Some(1.0),
    };
    let mixed = CellConfig::Lstm {
        gate: Activation::Sigmoid,
        cell: Activation::Relu,
        hidden: Activation::Linear,
        peephole: true,
        proj: Some(1),
        forget_bias: Some(-0.5),
    };
    run(
        "lstm_linear_forget_bias",
        &[
            ((lin, 3), (fb, 17)),
            ((mixed, 17), (CellConfig::lstm(false, None), 1)),
        ],
        false,
    );
}

#[test]
fn lstm_not_recurrent() {
    // `recurrent = false`: no step sees the previous state (h or c), so the initial-state
    // gradients are zero and the final-state gradient enters only at each sequence's end.
    let Some(mut be) = gpu() else { return };
    let mut r = rng("lstm_not_recurrent");
    for (c, h) in [
        (CellConfig::lstm(true, Some(2)), 3),
        (CellConfig::lstm(false, None), 17),
    ] {
        for bi in [false, true] {
            let l = LayerConfig {
                recurrent: false,
                ..layer(c.clone(), h, bi)
            };
            let cfg = dense_net(
                3,
                vec![l, layer(CellConfig::lstm(false, None), 3, bi)],
                None,
            );
            be = compare_stack(be, &cfg, LENGTHS[2], &mut r, TOL_FWD, TOL_GRAD);
        }
    }
}
