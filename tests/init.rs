//! Parameter names, shapes and initialisation: PyTorch's layout and default init, the LSTM
//! forget bias, zero recurrence for non-recurrent layers, and reproducibility by seed.

mod common;

use common::{dense_net, head, layer};
use wgrnn::config::{Activation, CellConfig, InputEncoding, NetworkConfig, Task, UnknownTokens};
use wgrnn::{CpuBackend, Model};

fn lstm(proj: Option<usize>, forget_bias: Option<f32>) -> CellConfig {
    CellConfig::Lstm {
        gate: Activation::Sigmoid,
        cell: Activation::Tanh,
        hidden: Activation::Tanh,
        peephole: false,
        proj,
        forget_bias,
    }
}

fn model(cfg: NetworkConfig, seed: u64) -> Model<CpuBackend<f32>> {
    Model::new(CpuBackend::<f32>::new(), cfg, seed).expect("valid config")
}

#[test]
fn names_and_shapes_follow_pytorch() {
    // nn.LSTM(input_size=3, hidden_size=6, num_layers=2, bidirectional=True, proj_size=2)
    let cfg = NetworkConfig {
        input: InputEncoding::Embedding {
            vocab: 10,
            dim: 3,
            unknown: UnknownTokens::Other,
        },
        layers: vec![
            layer(lstm(Some(2), None), 6, true),
            layer(lstm(Some(2), None), 6, true),
        ],
        head: head(4, Task::Tagging { ignore_label: None }),
    };
    let m = model(cfg, 0);
    let got: Vec<(String, Vec<usize>)> = m
        .table()
        .entries()
        .iter()
        .map(|e| (e.name.clone(), e.shape.clone()))
        .collect();
    let mut want: Vec<(String, Vec<usize>)> = vec![("embedding.weight".into(), vec![11, 3])];
    for (k, input) in [(0, 3), (1, 4)] {
        for sfx in ["", "_reverse"] {
            want.push((format!("rnn.weight_ih_l{k}{sfx}"), vec![24, input]));
            want.push((format!("rnn.weight_hh_l{k}{sfx}"), vec![24, 2]));
            want.push((format!("rnn.bias_ih_l{k}{sfx}"), vec![24]));
            want.push((format!("rnn.bias_hh_l{k}{sfx}"), vec![24]));
            want.push((format!("rnn.weight_hr_l{k}{sfx}"), vec![2, 6]));
        }
    }
    want.push(("head.weight".into(), vec![4, 4]));
    want.push(("head.bias".into(), vec![4]));
    assert_eq!(got, want);
    let total: usize = want.iter().map(|(_, s)| s.iter().product::<usize>()).sum();
    assert_eq!(m.table().total(), total);
}

#[test]
fn default_init_is_uniform_in_pytorch_bounds_and_seeded() {
    let cfg = dense_net(
        5,
        vec![
            layer(lstm(None, None), 16, true),
            layer(
                CellConfig::Gru {
                    variant: wgrnn::config::GruVariant::Pytorch,
                },
                9,
                false,
            ),
        ],
        head(3, Task::Regression),
    );
    let a = model(cfg.clone(), 1);
    let b = model(cfg.clone(), 1);
    let c = model(cfg.clone(), 2);
    assert_eq!(a.params(), b.params(), "same seed, same parameters");
    assert_ne!(a.params(), c.params(), "another seed, other parameters");
    let p = a.params();
    for e in a.table().entries() {
        // Recurrent tensors: 1/sqrt(H) of their layer; the head: 1/sqrt(fan_in), fan_in = the
        // GRU's 9 outputs.
        let bound = match &e.name {
            n if n.contains("_l0") => 1.0 / 16f32.sqrt(),
            _ => 1.0 / 9f32.sqrt(),
        };
        let v = &p[e.range()];
        let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
        assert!(
            max <= bound,
            "{}: max |w| {max} exceeds the bound {bound}",
            e.name
        );
        // Uniform on [-bound, bound]: with this many draws the extremes come close to it.
        if v.len() >= 64 {
            assert!(
                max > 0.9 * bound,
                "{}: max |w| {max} is far inside the bound {bound}",
                e.name
            );
            let mean = v.iter().sum::<f32>() / v.len() as f32;
            assert!(
                mean.abs() < 0.25 * bound,
                "{}: mean {mean} is not centred",
                e.name
            );
        }
    }
}

#[test]
fn forget_bias_sets_the_effective_forget_bias() {
    let cfg = dense_net(3, vec![layer(lstm(None, Some(1.0)), 4, true)], None);
    let m = model(cfg, 3);
    for sfx in ["", "_reverse"] {
        let bi = m.param(&format!("rnn.bias_ih_l0{sfx}")).expect("bias_ih");
        let bh = m.param(&format!("rnn.bias_hh_l0{sfx}")).expect("bias_hh");
        for j in 0..4 {
            // Rows H..2H are the forget gate (order i, f, g, o).
            assert_eq!(bi[4 + j] + bh[4 + j], 1.0);
            // The other gates keep their random init.
            assert_ne!(bi[j], 0.0);
            assert_ne!(bh[8 + j], 0.0);
        }
    }
}

#[test]
fn non_recurrent_layers_have_zero_recurrent_weights() {
    let mut l = layer(
        CellConfig::Elman {
            activation: Activation::Tanh,
        },
        4,
        true,
    );
    l.recurrent = false;
    let m = model(dense_net(3, vec![l], None), 4);
    for name in ["rnn.weight_hh_l0", "rnn.weight_hh_l0_reverse"] {
        assert!(
            m.param(name).expect("exists").iter().all(|v| *v == 0.0),
            "{name} is not zero"
        );
    }
    assert!(
        m.param("rnn.weight_ih_l0")
            .expect("exists")
            .iter()
            .any(|v| *v != 0.0)
    );
}
