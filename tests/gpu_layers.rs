//! Whole recurrent stacks on the GPU against the CPU reference: every cell kind, uni- and
//! bidirectional, two layers, awkward sizes, variable lengths mixed in one batch, initial
//! states given and their gradients asked for. Forward values to 1e-5 relative error,
//! gradients to 1e-4.

mod gpu_common;

use gpu_common::{compare_stack, dense_net, gpu, layer, rng};
use wgrnn::config::{Activation, CellConfig};

const TOL_FWD: f64 = 1e-5;
const TOL_GRAD: f64 = 1e-4;

/// Batches of awkward shapes: batch 1 and 5, lengths 1 and 7 mixed.
const LENGTHS: [&[usize]; 3] = [&[1], &[7], &[7, 1, 4, 7, 2]];

fn run_cell(name: &str, cell: CellConfig, hiddens: &[(usize, usize)]) {
    let Some(mut be) = gpu() else { return };
    let mut r = rng(name);
    for &(h1, h2) in hiddens {
        for bi in [false, true] {
            for lengths in LENGTHS {
                let cfg = dense_net(
                    3,
                    vec![layer(cell.clone(), h1, bi), layer(cell.clone(), h2, bi)],
                    None,
                );
                be = compare_stack(be, &cfg, lengths, &mut r, TOL_FWD, TOL_GRAD);
            }
        }
    }
}

#[test]
fn elman_tanh() {
    run_cell(
        "elman_tanh",
        CellConfig::Elman {
            activation: Activation::Tanh,
        },
        &[(1, 3), (17, 33), (65, 5)],
    );
}

#[test]
fn elman_relu_and_linear() {
    for a in [Activation::Relu, Activation::Linear] {
        run_cell(
            "elman_relu_linear",
            CellConfig::Elman { activation: a },
            &[(3, 17)],
        );
    }
}
