//! Jordan networks on the GPU against the CPU reference: the Jordan layer on top (alone,
//! over an Elman or an LSTM layer, recurrent or not) with its per-step head, both feedback
//! kinds, every activation, awkward hidden sizes and class counts (also more than the
//! softmax's workgroup has invocations), variable lengths mixed in one batch, initial
//! states given and their gradients asked for. The comparison (`compare_stack`) runs the
//! whole model with the head: logits and final states (the fed-back outputs) to 1e-5
//! relative error, every parameter gradient (the head's includes the feedback path) and
//! the input and initial-state gradients to 1e-4.

mod gpu_common;

use gpu_common::{compare_stack, dense_net, gpu, layer, rng};
use wgrnn::config::{Activation, CellConfig, HeadConfig, JordanFeedback, Task};

const TOL_FWD: f64 = 1e-5;
const TOL_GRAD: f64 = 1e-4;

/// Batches of awkward shapes: batch 1 and 5, lengths 1 and 7 mixed.
const LENGTHS: [&[usize]; 3] = [&[1], &[7], &[7, 1, 4, 7, 2]];

fn elman() -> CellConfig {
    CellConfig::Elman {
        activation: Activation::Tanh,
    }
}

/// Runs every (hidden, classes) pair of `sizes` over the LENGTHS batches, with the Jordan
/// layer alone and on top of a layer of `below` with 5 units; `recurrent: false` makes the
/// Jordan layer see no previous state.
fn run_jordan(
    name: &str,
    activation: Activation,
    feedback: JordanFeedback,
    sizes: &[(usize, usize)],
    below: CellConfig,
    recurrent: bool,
) {
    let Some(mut be) = gpu() else { return };
    let mut r = rng(name);
    let jordan = CellConfig::Jordan {
        activation,
        feedback,
    };
    for &(hidden, classes) in sizes {
        for two_layers in [false, true] {
            for lengths in LENGTHS {
                let mut layers = Vec::new();
                if two_layers {
                    layers.push(layer(below.clone(), 5, false));
                }
                let mut top = layer(jordan.clone(), hidden, false);
                top.recurrent = recurrent;
                layers.push(top);
                let head = HeadConfig {
                    classes,
                    task: Task::Tagging { ignore_label: None },
                };
                let cfg = dense_net(3, layers, Some(head));
                be = compare_stack(be, &cfg, lengths, &mut r, TOL_FWD, TOL_GRAD);
            }
        }
    }
}

#[test]
fn jordan_softmax_tanh() {
    run_jordan(
        "jordan_softmax_tanh",
        Activation::Tanh,
        JordanFeedback::Softmax,
        // 150 classes: more than two per invocation of the softmax's workgroup, the last
        // pass partial.
        &[(1, 1), (3, 5), (17, 2), (33, 5), (9, 150)],
        elman(),
        true,
    );
}

#[test]
fn jordan_linear_tanh() {
    run_jordan(
        "jordan_linear_tanh",
        Activation::Tanh,
        JordanFeedback::Linear,
        &[(1, 2), (3, 1), (17, 5), (33, 2)],
        elman(),
        true,
    );
}

#[test]
fn jordan_relu_and_linear() {
    for a in [Activation::Relu, Activation::Linear] {
        for f in [JordanFeedback::Softmax, JordanFeedback::Linear] {
            run_jordan(
                "jordan_relu_linear",
                a,
                f,
                &[(3, 2), (17, 5)],
                elman(),
                true,
            );
        }
    }
}

#[test]
fn jordan_over_lstm() {
    let lstm = CellConfig::Lstm {
        gate: Activation::Sigmoid,
        cell: Activation::Tanh,
        hidden: Activation::Tanh,
        peephole: false,
        proj: None,
        forget_bias: None,
    };
    for f in [JordanFeedback::Softmax, JordanFeedback::Linear] {
        run_jordan(
            "jordan_over_lstm",
            Activation::Tanh,
            f,
            &[(3, 5)],
            lstm.clone(),
            true,
        );
    }
}

#[test]
fn jordan_not_recurrent() {
    for f in [JordanFeedback::Softmax, JordanFeedback::Linear] {
        run_jordan(
            "jordan_not_recurrent",
            Activation::Tanh,
            f,
            &[(3, 2), (17, 5)],
            elman(),
            false,
        );
    }
}
