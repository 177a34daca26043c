//! Whole recurrent stacks on the GPU against the CPU reference: every cell kind, uni- and
//! bidirectional, two layers, awkward sizes, variable lengths mixed in one batch, initial
//! states given (or zero, `stacks_from_zero_states`) and their gradients asked for. Forward
//! values to 1e-5 relative error, gradients to 1e-4.

mod gpu_common;

use gpu_common::{
    compare_stack, compare_stack_from_zero_states, dense_batch, dense_net, gpu, layer,
    random_states, rng, uniform,
};
use wgrnn::backend::wgpu::Tuning;
use wgrnn::backend::wgpu::gemm::GemmTiles;
use wgrnn::config::{Activation, CellConfig, GruVariant, HeadConfig, JordanFeedback, Task};
use wgrnn::{Mode, Model, Wants, WgpuBackend};

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

/// A stack started from zero states (no initial states given, as training does): each
/// cell kind, uni- and bidirectional, layer by layer and (unidirectional) in the layer
/// pipeline, against the CPU reference, with the zero states' gradients asked for too. The
/// backward records no product of h0 for dW_hh there, and a bidirectional layer no gather
/// of its first steps' dgh for it.
#[test]
fn stacks_from_zero_states() {
    let Some(mut be) = gpu() else { return };
    let mut r = rng("stacks_from_zero_states");
    let cells = [
        CellConfig::lstm(true, None),
        CellConfig::Gru {
            variant: GruVariant::Pytorch,
        },
        CellConfig::Gru {
            variant: GruVariant::ResetBefore,
        },
        CellConfig::Elman {
            activation: Activation::Tanh,
        },
    ];
    for cell in cells {
        for (bi, wavefront) in [(false, None), (true, None), (false, Some(3))] {
            be.set_tuning(Tuning {
                wavefront,
                ..Tuning::default()
            });
            let cfg = dense_net(
                3,
                vec![layer(cell.clone(), 9, bi), layer(cell.clone(), 9, bi)],
                None,
            );
            be = compare_stack_from_zero_states(
                be,
                &cfg,
                &[7, 1, 4, 7, 2],
                &mut r,
                TOL_FWD,
                TOL_GRAD,
            );
        }
    }
    // A Jordan layer's state is the head's output, fed back from zero.
    be.set_tuning(Tuning::default());
    let jordan = CellConfig::Jordan {
        activation: Activation::Tanh,
        feedback: JordanFeedback::Softmax,
    };
    let head = HeadConfig {
        classes: 5,
        task: Task::Tagging { ignore_label: None },
    };
    let cfg = dense_net(3, vec![layer(jordan, 6, false)], Some(head));
    compare_stack_from_zero_states(be, &cfg, &[7, 1, 4, 7, 2], &mut r, TOL_FWD, TOL_GRAD);
}

/// Stacks whose large products take the tiles measured fastest (`--gemm measured`, what
/// `Auto` does on a GPU), each measured in the middle of recording a pass, also among
/// products held to share a dispatch (a bidirectional layer's, the layer pipeline's):
/// widths that are multiples of 4, so the large tiles can take them, against the CPU
/// reference, with padding and without.
#[test]
fn stacks_with_measured_product_tiles() {
    let Some(mut be) = gpu() else { return };
    let mut r = rng("stacks_with_measured_product_tiles");
    let cells = [
        CellConfig::lstm(true, None),
        CellConfig::Gru {
            variant: GruVariant::Pytorch,
        },
    ];
    for cell in cells {
        for (bi, wavefront) in [(false, None), (true, None), (false, Some(2))] {
            be.set_tuning(Tuning {
                wavefront,
                gemm_tiles: GemmTiles::Measured,
                ..Tuning::default()
            });
            let cfg = dense_net(
                8,
                vec![layer(cell.clone(), 12, bi), layer(cell.clone(), 12, bi)],
                None,
            );
            for lengths in [&[7, 1, 4, 7, 2][..], &[6; 4]] {
                be = compare_stack(be, &cfg, lengths, &mut r, TOL_FWD, TOL_GRAD);
            }
        }
    }
    let races = be.gpu().races();
    assert!(races.len() >= 6, "shapes measured: {}", races.len());
}

/// Dispatches of a forward and backward of a 2-layer LSTM stack of 9 units, from `init`
/// (`None`: zero states), the initial states' gradients asked for.
fn step_dispatches(be: WgpuBackend, bi: bool, init: bool) -> (u64, WgpuBackend) {
    let cell = CellConfig::lstm(false, None);
    let cfg = dense_net(
        3,
        vec![layer(cell.clone(), 9, bi), layer(cell, 9, bi)],
        None,
    );
    let mut r = rng("step_dispatches");
    let mut m = Model::new(be, cfg, 1).expect("model");
    let batch = dense_batch(&mut r, 3, &[7, 1, 4]);
    m.forward(&batch, None, Mode::Eval).expect("forward");
    let states = random_states(&mut r, &m.final_states());
    let wants = Wants {
        inputs: false,
        initial_states: true,
    };
    m.backend().sync();
    let before = m.backend().gpu().dispatch_count();
    m.forward(&batch, init.then_some(&states[..]), Mode::Eval)
        .expect("forward");
    let dout = uniform(&mut r, m.outputs().len(), 1.0);
    m.backward_from(&dout, None, wants).expect("backward");
    m.backend().sync();
    let dispatches = m.backend().gpu().dispatch_count() - before;
    (dispatches, m.into_backend())
}

#[test]
fn zero_states_take_no_h0_products() {
    let Some(mut be) = gpu() else { return };
    // Per layer: the h0 product (both directions' side by side), and for a bidirectional
    // layer the gather of the reverse direction's first steps' dgh.
    for (bi, fewer) in [(false, 2), (true, 4)] {
        let (given, b) = step_dispatches(be, bi, true);
        let (zero, b) = step_dispatches(b, bi, false);
        be = b;
        assert_eq!(given - zero, fewer, "bidirectional {bi}: {given} -> {zero}");
    }
}
