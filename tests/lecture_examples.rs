//! The worked examples of the lecture, computed by hand and checked against the engine:
//! a linear Elman network whose outputs depend on the order of its inputs, and the
//! "human LSTM" whose gates are set by hand to store, hold, read and erase a number.

use wgrnn::config::{Activation, CellConfig, HeadConfig, InputEncoding, LayerConfig, Task};
use wgrnn::{Batch, CpuBackend, Inputs, LayerState, Mode, Model, NetworkConfig, SeqShape};

fn one_layer(cell: CellConfig, hidden: usize) -> Vec<LayerConfig> {
    vec![LayerConfig {
        cell,
        hidden,
        bidirectional: false,
        dropout: 0.0,
        recurrent: true,
    }]
}

/// Sets one named tensor (panics if the name or size is wrong).
fn set(model: &mut Model<CpuBackend<f64>>, name: &str, values: &[f64]) {
    let e = model
        .table()
        .get(name)
        .unwrap_or_else(|| panic!("no tensor {name}"))
        .clone();
    assert_eq!(e.len(), values.len(), "{name}: {:?}", e.shape);
    let mut p = model.params();
    p[e.range()].copy_from_slice(values);
    model.set_params(&p).expect("sizes");
}

/// A batch of one or more sequences of equal length `[T, B, F]` given per sequence.
fn batch(seqs: &[&[[f64; 2]]]) -> Batch<f64> {
    let (nt, nb) = (seqs[0].len(), seqs.len());
    let mut x = vec![0.0; nt * nb * 2];
    for (b, s) in seqs.iter().enumerate() {
        for (t, v) in s.iter().enumerate() {
            x[(t * nb + b) * 2..(t * nb + b) * 2 + 2].copy_from_slice(v);
        }
    }
    Batch {
        seq: SeqShape {
            time: nt,
            lengths: vec![nt; nb],
        },
        inputs: Inputs::Dense(x),
    }
}

/// The linear Elman net: 2 inputs, 2 hidden units, 2 outputs, every weight 1, every bias 0.
fn linear_elman() -> Model<CpuBackend<f64>> {
    let cfg = NetworkConfig {
        input: InputEncoding::Dense { features: 2 },
        layers: one_layer(
            CellConfig::Elman {
                activation: Activation::Linear,
            },
            2,
        ),
        head: Some(HeadConfig {
            classes: 2,
            task: Task::Regression,
        }),
    };
    let mut model = Model::new(CpuBackend::<f64>::new(), cfg, 1).expect("valid");
    let names: Vec<(String, usize)> = model
        .table()
        .entries()
        .iter()
        .map(|e| (e.name.clone(), e.len()))
        .collect();
    // Every tensor of the network: the Elman layer's two weights and two biases, the head's.
    assert_eq!(names.len(), 6, "{names:?}");
    for (name, len) in names {
        let v = if name.contains("bias") { 0.0 } else { 1.0 };
        set(&mut model, &name, &vec![v; len]);
    }
    model
}

#[test]
fn elman_linear_outputs_by_hand() {
    let mut model = linear_elman();
    // h_t = W_ih x_t + W_hh h_{t-1} (all-ones 2x2 matrices), y_t = W h_t:
    // x=[1,1]: h=[2,2],            y=[4,4]
    // x=[1,1]: h=[2,2]+[4,4]=[6,6],  y=[12,12]
    // x=[2,2]: h=[4,4]+[12,12]=[16,16], y=[32,32]
    let a: &[[f64; 2]] = &[[1.0, 1.0], [1.0, 1.0], [2.0, 2.0]];
    model
        .forward(&batch(&[a]), None, Mode::Eval)
        .expect("forward");
    assert_eq!(model.outputs(), vec![4.0, 4.0, 12.0, 12.0, 32.0, 32.0]);
    assert_eq!(model.final_states()[0].h, vec![16.0, 16.0]);

    // The same inputs in another order give other outputs:
    // x=[2,2]: h=[4,4],              y=[8,8]
    // x=[1,1]: h=[2,2]+[8,8]=[10,10],  y=[20,20]
    // x=[1,1]: h=[2,2]+[20,20]=[22,22], y=[44,44]
    let b: &[[f64; 2]] = &[[2.0, 2.0], [1.0, 1.0], [1.0, 1.0]];
    model
        .forward(&batch(&[b]), None, Mode::Eval)
        .expect("forward");
    assert_eq!(model.outputs(), vec![8.0, 8.0, 20.0, 20.0, 44.0, 44.0]);
    assert_eq!(model.final_states()[0].h, vec![22.0, 22.0]);

    // Both orders in one batch: the sequences do not mix (layout [T, B, C]).
    model
        .forward(&batch(&[a, b]), None, Mode::Eval)
        .expect("forward");
    assert_eq!(
        model.outputs(),
        vec![
            4.0, 4.0, 8.0, 8.0, 12.0, 12.0, 20.0, 20.0, 32.0, 32.0, 44.0, 44.0
        ]
    );
}

/// The "human LSTM": hidden 1, inputs (x1, x2, x3); cell input g = x1, input gate
/// sigmoid(100 x2 - 10), forget gate sigmoid(100 x2 + 10), output gate sigmoid(100 x3 - 10);
/// linear cell and hidden activations, so h = o * c.
fn human_lstm() -> Model<CpuBackend<f64>> {
    let cfg = NetworkConfig {
        input: InputEncoding::Dense { features: 3 },
        layers: one_layer(
            CellConfig::Lstm {
                gate: Activation::Sigmoid,
                cell: Activation::Linear,
                hidden: Activation::Linear,
                peephole: false,
                proj: None,
                forget_bias: None,
            },
            1,
        ),
        head: None,
    };
    let mut model = Model::new(CpuBackend::<f64>::new(), cfg, 1).expect("valid");
    assert_eq!(model.table().entries().len(), 4);
    // Gate order i, f, g, o (PyTorch): rows of W_ih [4, 3].
    #[rustfmt::skip]
    set(&mut model, "rnn.weight_ih_l0", &[
        0.0, 100.0, 0.0, // i
        0.0, 100.0, 0.0, // f
        1.0, 0.0, 0.0,   // g
        0.0, 0.0, 100.0, // o
    ]);
    set(&mut model, "rnn.weight_hh_l0", &[0.0; 4]);
    set(&mut model, "rnn.bias_ih_l0", &[-10.0, 10.0, 0.0, -10.0]);
    set(&mut model, "rnn.bias_hh_l0", &[0.0; 4]);
    model
}

const HUMAN_INPUTS: [[f64; 3]; 5] = [
    [3.0, 1.0, 0.0],  // write 3 (i = f = 1):    c = 3, o = 0 -> h = 0
    [4.0, 1.0, 0.0],  // add 4:                  c = 7, h = 0
    [2.0, 0.0, 0.0],  // ignore (i = 0, f = 1):  c = 7, h = 0
    [1.0, 0.0, 1.0],  // read (o = 1):           c = 7, h = 7
    [3.0, -1.0, 0.0], // forget (i = f = 0):     c = 0, h = 0
];
const HUMAN_MEMORY: [f64; 5] = [3.0, 7.0, 7.0, 7.0, 0.0];
const HUMAN_OUTPUT: [f64; 5] = [0.0, 0.0, 0.0, 7.0, 0.0];

#[test]
fn human_lstm_by_hand() {
    let mut model = human_lstm();
    // Five sequences holding the same inputs, of lengths 1..=5: the final cell state of
    // sequence b is the memory after step b.
    let (nt, nb) = (5, 5);
    let mut x = vec![0.0; nt * nb * 3];
    for t in 0..nt {
        for b in 0..nb {
            x[(t * nb + b) * 3..(t * nb + b) * 3 + 3].copy_from_slice(&HUMAN_INPUTS[t]);
        }
    }
    let seq = SeqShape {
        time: nt,
        lengths: (1..=nb).collect(),
    };
    model
        .forward(
            &Batch {
                seq,
                inputs: Inputs::Dense(x),
            },
            None,
            Mode::Eval,
        )
        .expect("forward");
    let fin = &model.final_states()[0];
    let c = fin.c.as_ref().expect("an LSTM has a cell state");
    assert_eq!(c.len(), nb);
    for (b, want) in HUMAN_MEMORY.iter().enumerate() {
        assert!(
            (c[b] - want).abs() < 0.01,
            "memory after step {}: {} (want {want})",
            b + 1,
            c[b]
        );
        assert!((fin.h[b] - HUMAN_OUTPUT[b]).abs() < 0.01, "h {:?}", fin.h);
    }
    // Outputs of the full-length sequence (b = 4) at every step: [T, B, 1].
    let y = model.outputs();
    for (t, want) in HUMAN_OUTPUT.iter().enumerate() {
        let got = y[t * nb + 4];
        assert!(
            (got - want).abs() < 0.01,
            "output at step {}: {got} (want {want})",
            t + 1
        );
    }
    // Padding steps of shorter sequences stay zero.
    assert_eq!(y[4 * nb], 0.0);
}

#[test]
fn human_lstm_one_step_at_a_time() {
    let mut model = human_lstm();
    let mut state: Option<Vec<LayerState<f64>>> = None;
    for (t, x) in HUMAN_INPUTS.iter().enumerate() {
        let b = Batch {
            seq: SeqShape {
                time: 1,
                lengths: vec![1],
            },
            inputs: Inputs::Dense(x.to_vec()),
        };
        model
            .forward(&b, state.as_deref(), Mode::Eval)
            .expect("forward");
        let y = model.outputs();
        let fin = model.final_states();
        let c = fin[0].c.as_ref().expect("cell state")[0];
        assert!(
            (c - HUMAN_MEMORY[t]).abs() < 0.01,
            "memory after step {}: {c}",
            t + 1
        );
        assert!(
            (y[0] - HUMAN_OUTPUT[t]).abs() < 0.01,
            "output at step {}: {}",
            t + 1,
            y[0]
        );
        state = Some(fin);
    }
}
