//! Variable-length batches and states: padding is never computed and never matters, each
//! sequence's final state is taken at its own last step (both directions' ends), sequences in a
//! batch are independent, and running a stream in chunks with the state carried over equals
//! running it whole (truncated BPTT / stateful training).

mod common;

use common::{dense_net, head, layer, rel_err};
use rand::SeedableRng;
use rand::rngs::ChaCha8Rng;
use wgrnn::config::{Activation, CellConfig, GruVariant, NetworkConfig, Pooling, Task};
use wgrnn::{Batch, CpuBackend, Inputs, LayerState, Mode, Model, SeqShape};

fn cells() -> Vec<CellConfig> {
    vec![
        CellConfig::Elman {
            activation: Activation::Tanh,
        },
        CellConfig::lstm(true, Some(3)),
        CellConfig::Gru {
            variant: GruVariant::Pytorch,
        },
    ]
}

/// Two bidirectional layers of `cell`, 3 features, no head.
fn stack(cell: &CellConfig) -> NetworkConfig {
    dense_net(
        3,
        vec![layer(cell.clone(), 4, true), layer(cell.clone(), 5, true)],
        None,
    )
}

fn run(
    model: &mut Model<CpuBackend<f64>>,
    batch: &Batch<f64>,
    init: Option<&[LayerState<f64>]>,
) -> (Vec<f64>, Vec<LayerState<f64>>) {
    model.forward(batch, init, Mode::Eval).expect("forward");
    (model.outputs(), model.final_states())
}

fn dense(b: &Batch<f64>) -> &Vec<f64> {
    match &b.inputs {
        Inputs::Dense(x) => x,
        _ => panic!("dense batch expected"),
    }
}

#[test]
fn padding_is_zero_and_never_matters() {
    for cell in cells() {
        let cfg = stack(&cell);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut model = Model::new(CpuBackend::<f64>::new(), cfg.clone(), 3).expect("config");
        let batch = common::random_batch(&cfg, &[5, 2, 4], &mut rng);
        let (out, fin) = run(&mut model, &batch, None);
        let width = out.len() / (5 * 3);
        for t in 0..5 {
            for (b, &len) in [5usize, 2, 4].iter().enumerate() {
                let row = &out[(t * 3 + b) * width..(t * 3 + b + 1) * width];
                if t >= len {
                    assert!(
                        row.iter().all(|v| *v == 0.0),
                        "{}: output at t={t} b={b} past the end is {row:?}",
                        cell.name()
                    );
                } else {
                    assert!(
                        row.iter().any(|v| *v != 0.0),
                        "{}: output at t={t} b={b} is all zero",
                        cell.name()
                    );
                }
            }
        }
        // Garbage in the padding changes nothing.
        let mut noisy = batch.clone();
        if let Inputs::Dense(x) = &mut noisy.inputs {
            for t in 0..5 {
                for (b, &len) in [5usize, 2, 4].iter().enumerate() {
                    if t >= len {
                        x[(t * 3 + b) * 3..(t * 3 + b + 1) * 3].fill(1e6);
                    }
                }
            }
        }
        let (out2, fin2) = run(&mut model, &noisy, None);
        assert_eq!(
            out,
            out2,
            "{}: padding inputs changed the outputs",
            cell.name()
        );
        assert_eq!(
            fin,
            fin2,
            "{}: padding inputs changed the final states",
            cell.name()
        );
    }
}

#[test]
fn final_state_is_taken_at_each_direction_end() {
    for cell in cells() {
        let cfg = stack(&cell);
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let mut model = Model::new(CpuBackend::<f64>::new(), cfg.clone(), 4).expect("config");
        let lengths = [5usize, 2, 4];
        let batch = common::random_batch(&cfg, &lengths, &mut rng);
        let (out, fin) = run(&mut model, &batch, None);
        let top = &fin[1];
        let hout = cfg.layers[1].output_size();
        let nb = lengths.len();
        for (b, &len) in lengths.iter().enumerate() {
            // Forward direction: its output at the sequence's last step.
            let at = ((len - 1) * nb + b) * 2 * hout;
            assert_eq!(
                &top.h[b * hout..(b + 1) * hout],
                &out[at..at + hout],
                "{} fwd b={b}",
                cell.name()
            );
            // Backward direction: its output at step 0.
            let at = b * 2 * hout + hout;
            assert_eq!(
                &top.h[(nb + b) * hout..(nb + b + 1) * hout],
                &out[at..at + hout],
                "{} bwd b={b}",
                cell.name()
            );
        }
    }
}

#[test]
fn sequences_in_a_batch_are_independent() {
    for cell in cells() {
        let cfg = stack(&cell);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut model = Model::new(CpuBackend::<f64>::new(), cfg.clone(), 5).expect("config");
        let lengths = [5usize, 2, 4];
        let batch = common::random_batch(&cfg, &lengths, &mut rng);
        let (out, _) = run(&mut model, &batch, None);
        let width = out.len() / (5 * 3);
        // Sequence 2 alone, as a batch of one of its own length.
        let len = lengths[2];
        let x = dense(&batch);
        let alone: Vec<f64> = (0..len)
            .flat_map(|t| x[(t * 3 + 2) * 3..(t * 3 + 3) * 3].to_vec())
            .collect();
        let single = Batch {
            seq: SeqShape {
                time: len,
                lengths: vec![len],
            },
            inputs: Inputs::Dense(alone),
        };
        let (out1, _) = run(&mut model, &single, None);
        for t in 0..len {
            let a = &out[(t * 3 + 2) * width..(t * 3 + 3) * width];
            let b = &out1[t * width..(t + 1) * width];
            assert!(
                rel_err(a, b) < 1e-14,
                "{} t={t}: {a:?} vs {b:?}",
                cell.name()
            );
        }
    }
}

#[test]
fn chunks_with_carried_state_equal_the_whole_stream() {
    for cell in cells() {
        // Unidirectional (a stream is read forwards).
        let cfg = dense_net(
            3,
            vec![layer(cell.clone(), 4, false), layer(cell.clone(), 5, false)],
            None,
        );
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let mut model = Model::new(CpuBackend::<f64>::new(), cfg.clone(), 6).expect("config");
        let whole = common::random_batch(&cfg, &[6, 6], &mut rng);
        let (out, fin) = run(&mut model, &whole, None);
        let x = dense(&whole);
        let chunk = |from: usize, to: usize| Batch {
            seq: SeqShape {
                time: to - from,
                lengths: vec![to - from; 2],
            },
            inputs: Inputs::Dense(x[from * 2 * 3..to * 2 * 3].to_vec()),
        };
        let (o1, s1) = run(&mut model, &chunk(0, 4), None);
        let (o2, s2) = run(&mut model, &chunk(4, 6), Some(&s1));
        let joined: Vec<f64> = o1.iter().chain(&o2).copied().collect();
        assert!(
            rel_err(&joined, &out) < 1e-14,
            "{}: chunked outputs differ",
            cell.name()
        );
        for (a, b) in s2.iter().zip(&fin) {
            assert!(
                rel_err(&a.h, &b.h) < 1e-14,
                "{}: chunked final h differs",
                cell.name()
            );
        }
    }
}

#[test]
fn classification_last_pools_both_directions_ends() {
    let cell = CellConfig::Gru {
        variant: GruVariant::ResetBefore,
    };
    let with_head = dense_net(
        3,
        vec![layer(cell.clone(), 4, true)],
        head(
            2,
            Task::Classification {
                pooling: Pooling::Last,
            },
        ),
    );
    let bare = dense_net(3, vec![layer(cell, 4, true)], None);
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut clf = Model::new(CpuBackend::<f64>::new(), with_head.clone(), 7).expect("config");
    let mut stack = Model::new(CpuBackend::<f64>::new(), bare, 7).expect("config");
    // Share the recurrent weights.
    let p = clf.params();
    let n = stack.table().total();
    stack
        .set_params(&p[..n])
        .expect("the stack comes first in the table");
    let lengths = [3usize, 1, 2];
    let batch = common::random_batch(&with_head, &lengths, &mut rng);
    clf.forward(&batch, None, Mode::Eval).expect("forward");
    let logits = clf.outputs();
    let (_, fin) = run(&mut stack, &batch, None);
    let w = clf.param("head.weight").expect("head");
    let bias = clf.param("head.bias").expect("head");
    for b in 0..3 {
        // [forward end, backward end] of sequence b.
        let feat: Vec<f64> = fin[0].h[b * 4..(b + 1) * 4]
            .iter()
            .chain(&fin[0].h[(3 + b) * 4..(3 + b + 1) * 4])
            .copied()
            .collect();
        for c in 0..2 {
            let want: f64 = bias[c] + (0..8).map(|k| w[c * 8 + k] * feat[k]).sum::<f64>();
            assert!(
                (logits[b * 2 + c] - want).abs() < 1e-12,
                "b={b} c={c}: {} vs {want}",
                logits[b * 2 + c]
            );
        }
    }
    // Mean pooling: the head applied to the mean of the outputs over each sequence's steps.
    let mut mean_cfg = with_head;
    mean_cfg.head = head(
        2,
        Task::Classification {
            pooling: Pooling::Mean,
        },
    );
    let mut clf = Model::new(CpuBackend::<f64>::new(), mean_cfg, 7).expect("config");
    clf.forward(&batch, None, Mode::Eval).expect("forward");
    let logits = clf.outputs();
    let (out, _) = run(&mut stack, &batch, None);
    for (b, &len) in lengths.iter().enumerate() {
        let feat: Vec<f64> = (0..8)
            .map(|k| (0..len).map(|t| out[(t * 3 + b) * 8 + k]).sum::<f64>() / len as f64)
            .collect();
        for c in 0..2 {
            let want: f64 = bias[c] + (0..8).map(|k| w[c * 8 + k] * feat[k]).sum::<f64>();
            assert!(
                (logits[b * 2 + c] - want).abs() < 1e-12,
                "mean b={b} c={c}: {} vs {want}",
                logits[b * 2 + c]
            );
        }
    }
}
