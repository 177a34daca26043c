//! GRU stacks on the GPU against the CPU reference: both variants (`Pytorch`, whose reset
//! multiplies `W_hn h + b_hn`, and `ResetBefore`, whose reset multiplies `h` before `W_hn`),
//! uni- and bidirectional, two layers, awkward sizes, variable lengths mixed in one batch,
//! initial states given and their gradients asked for. Forward values to 1e-5 relative
//! error, gradients to 1e-4.

mod gpu_common;

use gpu_common::{compare_stack, dense_net, gpu, layer, rng};
use wgrnn::config::{CellConfig, GruVariant};

const TOL_FWD: f64 = 1e-5;
const TOL_GRAD: f64 = 1e-4;

/// Batches of awkward shapes: batch 1 and 5, lengths 1 and 7 mixed.
const LENGTHS: [&[usize]; 3] = [&[1], &[7], &[7, 1, 4, 7, 2]];

fn run_gru(name: &str, variant: GruVariant, hiddens: &[(usize, usize)]) {
    let Some(mut be) = gpu() else { return };
    let mut r = rng(name);
    let cell = CellConfig::Gru { variant };
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
fn gru_pytorch() {
    run_gru(
        "gru_pytorch",
        GruVariant::Pytorch,
        &[(1, 3), (17, 33), (65, 5)],
    );
}

#[test]
fn gru_reset_before() {
    run_gru(
        "gru_reset_before",
        GruVariant::ResetBefore,
        &[(1, 3), (17, 33), (65, 5)],
    );
}

/// Without recurrence (`recurrent = false`) each step sees a zero previous state: the
/// update's `z * h` term, the reset and the state gradients all vanish.
#[test]
fn gru_not_recurrent() {
    let Some(mut be) = gpu() else { return };
    let mut r = rng("gru_not_recurrent");
    for variant in [GruVariant::Pytorch, GruVariant::ResetBefore] {
        let cell = CellConfig::Gru { variant };
        for lengths in LENGTHS {
            let mut layers = vec![layer(cell.clone(), 17, true), layer(cell.clone(), 3, true)];
            for l in &mut layers {
                l.recurrent = false;
            }
            let cfg = dense_net(3, layers, None);
            be = compare_stack(be, &cfg, lengths, &mut r, TOL_FWD, TOL_GRAD);
        }
    }
}
