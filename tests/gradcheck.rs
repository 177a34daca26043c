//! Finite-difference gradient checks (f64 CPU reference) for every cell kind and variant,
//! uni- and bidirectional, two stacked layers, variable lengths in one batch, every loss, and
//! the gradients w.r.t. the inputs and the initial states.

mod common;

use common::{Objective, dense_net, grad_check, head, layer};
use wgrnn::config::{
    Activation, CellConfig, GruVariant, InputEncoding, JordanFeedback, NetworkConfig, Pooling,
    Task, UnknownTokens,
};

const LENGTHS: &[usize] = &[4, 2, 1];

fn elman(activation: Activation) -> CellConfig {
    CellConfig::Elman { activation }
}

fn gru(variant: GruVariant) -> CellConfig {
    CellConfig::Gru { variant }
}

/// Two stacked layers of `cell`, dense inputs, checked against the projection objective
/// (outputs and final states) with random initial states.
fn stack(cell: CellConfig, bidirectional: bool) {
    let cfg = dense_net(
        3,
        vec![
            layer(cell.clone(), 4, bidirectional),
            layer(cell, 3, bidirectional),
        ],
        None,
    );
    grad_check(cfg, LENGTHS, true, Objective::Projection, 11);
}

#[test]
fn elman_tanh_uni() {
    stack(elman(Activation::Tanh), false);
}
#[test]
fn elman_tanh_bi() {
    stack(elman(Activation::Tanh), true);
}
#[test]
fn elman_relu_bi() {
    stack(elman(Activation::Relu), true);
}
#[test]
fn elman_linear_uni() {
    stack(elman(Activation::Linear), false);
}

#[test]
fn jordan_softmax_feedback_on_elman() {
    let jordan = CellConfig::Jordan {
        activation: Activation::Tanh,
        feedback: JordanFeedback::Softmax,
    };
    let cfg = dense_net(
        3,
        vec![
            layer(elman(Activation::Tanh), 4, true),
            layer(jordan, 5, false),
        ],
        head(3, Task::Tagging { ignore_label: None }),
    );
    grad_check(cfg, LENGTHS, true, Objective::TaskLoss, 12);
}
#[test]
fn jordan_linear_feedback_projection() {
    let jordan = CellConfig::Jordan {
        activation: Activation::Relu,
        feedback: JordanFeedback::Linear,
    };
    let cfg = dense_net(
        3,
        vec![
            layer(elman(Activation::Tanh), 4, false),
            layer(jordan, 5, false),
        ],
        head(3, Task::Regression),
    );
    grad_check(cfg, LENGTHS, true, Objective::Projection, 13);
}

#[test]
fn lstm_uni() {
    stack(CellConfig::lstm(false, None), false);
}
#[test]
fn lstm_bi() {
    stack(CellConfig::lstm(false, None), true);
}
#[test]
fn lstm_peephole_bi() {
    stack(CellConfig::lstm(true, None), true);
}
#[test]
fn lstm_projection_bi() {
    let cfg = dense_net(
        3,
        vec![
            layer(CellConfig::lstm(false, Some(2)), 4, true),
            layer(CellConfig::lstm(false, Some(3)), 5, true),
        ],
        None,
    );
    grad_check(cfg, LENGTHS, true, Objective::Projection, 14);
}
#[test]
fn lstm_peephole_projection_uni() {
    stack(CellConfig::lstm(true, Some(2)), false);
}
#[test]
fn lstm_linear_cell_and_hidden_activations() {
    let cell = CellConfig::Lstm {
        gate: Activation::Sigmoid,
        cell: Activation::Linear,
        hidden: Activation::Linear,
        peephole: false,
        proj: None,
        forget_bias: Some(1.0),
    };
    stack(cell, true);
}

#[test]
fn gru_pytorch_uni() {
    stack(gru(GruVariant::Pytorch), false);
}
#[test]
fn gru_pytorch_bi() {
    stack(gru(GruVariant::Pytorch), true);
}
#[test]
fn gru_reset_before_bi() {
    stack(gru(GruVariant::ResetBefore), true);
}

#[test]
fn mixed_stack_with_dropout() {
    let mut below = layer(CellConfig::lstm(false, None), 4, true);
    below.dropout = 0.4;
    let cfg = dense_net(
        3,
        vec![below, layer(gru(GruVariant::Pytorch), 3, false)],
        None,
    );
    grad_check(cfg, LENGTHS, true, Objective::Projection, 15);
}

#[test]
fn non_recurrent_lstm() {
    let mut l = layer(CellConfig::lstm(false, None), 4, true);
    l.recurrent = false;
    let cfg = dense_net(3, vec![l], head(3, Task::Tagging { ignore_label: None }));
    grad_check(cfg, LENGTHS, false, Objective::TaskLoss, 16);
}

#[test]
fn tagging_loss_with_ignore_label_and_embedding() {
    let cfg = NetworkConfig {
        input: InputEncoding::Embedding {
            vocab: 6,
            dim: 3,
            unknown: UnknownTokens::Error,
        },
        layers: vec![
            layer(CellConfig::lstm(false, None), 4, true),
            layer(elman(Activation::Tanh), 3, false),
        ],
        head: head(
            4,
            Task::Tagging {
                ignore_label: Some(0),
            },
        ),
    };
    grad_check(cfg, LENGTHS, true, Objective::TaskLoss, 17);
}

#[test]
fn language_model_loss_with_one_hot() {
    let cfg = NetworkConfig {
        input: InputEncoding::OneHot {
            vocab: 5,
            unknown: UnknownTokens::Other,
        },
        layers: vec![
            layer(gru(GruVariant::Pytorch), 4, false),
            layer(gru(GruVariant::Pytorch), 3, false),
        ],
        head: head(6, Task::LanguageModel),
    };
    grad_check(cfg, LENGTHS, true, Objective::TaskLoss, 18);
}

#[test]
fn classification_last_bidirectional() {
    let cfg = dense_net(
        3,
        vec![
            layer(CellConfig::lstm(false, None), 4, true),
            layer(CellConfig::lstm(true, None), 3, true),
        ],
        head(
            3,
            Task::Classification {
                pooling: Pooling::Last,
            },
        ),
    );
    grad_check(cfg, LENGTHS, true, Objective::TaskLoss, 19);
}

#[test]
fn classification_mean_bidirectional() {
    let cfg = dense_net(
        3,
        vec![
            layer(gru(GruVariant::ResetBefore), 4, true),
            layer(elman(Activation::Tanh), 3, true),
        ],
        head(
            3,
            Task::Classification {
                pooling: Pooling::Mean,
            },
        ),
    );
    grad_check(cfg, LENGTHS, true, Objective::TaskLoss, 20);
}

#[test]
fn regression_loss() {
    let cfg = dense_net(
        3,
        vec![
            layer(CellConfig::lstm(false, Some(2)), 4, false),
            layer(elman(Activation::Relu), 3, true),
        ],
        head(2, Task::Regression),
    );
    grad_check(cfg, LENGTHS, true, Objective::TaskLoss, 21);
}
