//! Agreement with PyTorch: `torch.nn.RNN` (tanh, relu), `LSTM`, `LSTM(proj_size=3)` and `GRU`,
//! two bidirectional layers, a padded batch of unsorted lengths and random initial states.
//!
//! The fixtures in `tests/fixtures/` were written by `tests/fixtures/make_fixtures.py`: each
//! case's `state_dict` exactly as PyTorch saves it (loaded here with
//! `checkpoint::load_stack`), and the float64 answer for those float32 weights: outputs, final
//! states, and the gradients of `L = sum(out * R) + sum(h_n * S) + sum(c_n * U)` w.r.t. every
//! parameter, the inputs and the initial states. Every tensor is compared with the normwise
//! relative error `max|a - b| / max|b|`: at most 1e-5 computing in f32, 1e-9 in f64.
//! PyTorch is never needed to run these tests.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors};
use wgrnn::checkpoint;
use wgrnn::config::{Activation, CellConfig, GruVariant, InputEncoding, LayerConfig};
use wgrnn::{
    Batch, CpuBackend, Inputs, LayerState, Mode, Model, NetworkConfig, Real, SeqShape, Wants,
};

/// Layers, directions, input features and hidden size of every fixture.
const LAYERS: usize = 2;
const DIRS: usize = 2;
const FEATURES: usize = 3;
const HIDDEN: usize = 5;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(name)
}

/// A tensor read from a fixture: its shape and values as f64.
struct Tensor {
    shape: Vec<usize>,
    values: Vec<f64>,
}

/// Every tensor of a safetensors file (F32, F64 or I64).
fn read_all(path: &Path) -> HashMap<String, Tensor> {
    let data =
        std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let st = SafeTensors::deserialize(&data)
        .unwrap_or_else(|e| panic!("{} is not safetensors: {e}", path.display()));
    st.iter()
        .map(|(name, v)| {
            let d = v.data();
            let values: Vec<f64> = match v.dtype() {
                Dtype::F32 => d
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")) as f64)
                    .collect(),
                Dtype::F64 => d
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
                    .collect(),
                Dtype::I64 => d
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")) as f64)
                    .collect(),
                other => panic!("{}: tensor {name} has dtype {other:?}", path.display()),
            };
            let t = Tensor {
                shape: v.shape().to_vec(),
                values,
            };
            (name.to_string(), t)
        })
        .collect()
}

/// The model matching a fixture case: dense inputs, two bidirectional layers, no head.
fn network(cell: CellConfig) -> NetworkConfig {
    let layer = |cell: CellConfig| LayerConfig {
        cell,
        hidden: HIDDEN,
        bidirectional: true,
        dropout: 0.0,
        recurrent: true,
    };
    NetworkConfig {
        input: InputEncoding::Dense { features: FEATURES },
        layers: vec![layer(cell.clone()), layer(cell)],
        head: None,
    }
}

/// Normwise relative error `max|a - b| / max|b|` (absolute when `b` is all zeros).
fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    if a.len() != b.len() {
        return f64::INFINITY;
    }
    let diff = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    let scale = b.iter().map(|y| y.abs()).fold(0.0, f64::max);
    let err = if scale > 0.0 { diff / scale } else { diff };
    // A NaN anywhere must fail, not compare as small.
    if a.iter().any(|x| !x.is_finite()) {
        f64::INFINITY
    } else {
        err
    }
}

/// PyTorch's `[L*D, B, W]` state split into per-layer `[D, B, W]` blocks.
fn split_layers<T: Real>(t: &Tensor) -> Vec<Vec<T>> {
    let per = t.values.len() / LAYERS;
    t.values
        .chunks(per)
        .map(|c| c.iter().map(|&v| T::of(v)).collect())
        .collect()
}

fn to_f64<T: Real>(v: &[T]) -> Vec<f64> {
    v.iter().map(|x| x.f64()).collect()
}

/// Runs one fixture case computing in `T` and returns `(tensor, relative error)` for every
/// compared tensor.
fn run_case<T: Real>(case: &str, cell: CellConfig) -> Vec<(String, f64)> {
    let want = read_all(&fixture(&format!("{case}.expected.safetensors")));
    let get = |name: &str| {
        want.get(name)
            .unwrap_or_else(|| panic!("fixture {case} lacks `{name}`"))
    };
    let is_lstm = matches!(cell, CellConfig::Lstm { .. });

    let mut model = Model::new(CpuBackend::<T>::new(), network(cell), 7).expect("valid config");
    checkpoint::load_stack(
        &mut model,
        &fixture(&format!("{case}.state_dict.safetensors")),
    )
    .expect("the PyTorch state_dict loads");

    let input = get("input");
    assert_eq!(input.shape[2], FEATURES);
    let lengths: Vec<usize> = get("lengths").values.iter().map(|&v| v as usize).collect();
    let batch = Batch {
        seq: SeqShape {
            time: input.shape[0],
            lengths,
        },
        inputs: Inputs::Dense(input.values.iter().map(|&v| T::of(v)).collect()),
    };
    let layer_states = |h: &str, c: &str| -> Vec<LayerState<T>> {
        let hs = split_layers::<T>(get(h));
        let cs = is_lstm.then(|| split_layers::<T>(get(c)));
        hs.into_iter()
            .enumerate()
            .map(|(k, h)| LayerState {
                h,
                c: cs.as_ref().map(|cs| cs[k].clone()),
            })
            .collect()
    };
    let init = layer_states("h0", "c0");
    assert_eq!(
        init[0].h.len(),
        DIRS * batch.seq.batch() * get("h0").shape[2]
    );

    model
        .forward(&batch, Some(&init), Mode::Eval)
        .expect("forward");
    let mut report = Vec::new();
    let mut used = std::collections::HashSet::new();
    let mut check = |name: &str, got: &[f64], fixture_name: &str| {
        report.push((name.to_string(), rel_err(got, &get(fixture_name).values)));
        used.insert(fixture_name.to_string());
    };
    check("out", &to_f64(&model.outputs()), "out");
    let fin = model.final_states();
    let h_n: Vec<f64> = fin.iter().flat_map(|s| to_f64(&s.h)).collect();
    check("h_n", &h_n, "h_n");
    if is_lstm {
        let c_n: Vec<f64> = fin
            .iter()
            .flat_map(|s| to_f64(s.c.as_deref().expect("an LSTM has c")))
            .collect();
        check("c_n", &c_n, "c_n");
    }

    model.zero_grads();
    let r: Vec<T> = get("R").values.iter().map(|&v| T::of(v)).collect();
    let dfinal = layer_states("S", "U");
    let ig = model
        .backward_from(
            &r,
            Some(&dfinal),
            Wants {
                inputs: true,
                initial_states: true,
            },
        )
        .expect("backward");
    let grads = model.grads();
    let table = model.table().clone();
    for e in table.entries() {
        let bare = e
            .name
            .strip_prefix(wgrnn::params::RNN_PREFIX)
            .expect("a headless stack has only rnn.* tensors");
        check(
            &format!("grad.{}", e.name),
            &to_f64(&grads[e.range()]),
            &format!("grad.{bare}"),
        );
    }
    check(
        "grad.input",
        &to_f64(ig.inputs.as_deref().expect("asked for")),
        "grad.input",
    );
    let d0 = ig.initial_states.expect("asked for");
    let dh0: Vec<f64> = d0.iter().flat_map(|s| to_f64(&s.h)).collect();
    check("grad.h0", &dh0, "grad.h0");
    if is_lstm {
        let dc0: Vec<f64> = d0
            .iter()
            .flat_map(|s| to_f64(s.c.as_deref().expect("an LSTM has dc0")))
            .collect();
        check("grad.c0", &dc0, "grad.c0");
    }
    // Every gradient in the fixture was compared (the model has exactly PyTorch's tensors).
    let unused: Vec<&String> = want
        .keys()
        .filter(|k| k.starts_with("grad.") && !used.contains(k.as_str()))
        .collect();
    assert!(
        unused.is_empty(),
        "{case}: fixture gradients not compared: {unused:?}"
    );
    report
}

/// Runs a case in `T` and fails naming every tensor whose error exceeds `tol`.
fn agree<T: Real>(case: &str, cell: CellConfig, tol: f64) {
    let report = run_case::<T>(case, cell);
    let worst = report
        .iter()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .expect("tensors compared");
    eprintln!(
        "{case} ({}): {} tensors, worst {} at {:.3e}",
        std::any::type_name::<T>(),
        report.len(),
        worst.0,
        worst.1
    );
    let bad: Vec<String> = report
        .iter()
        .filter(|(_, e)| e.is_nan() || *e > tol)
        .map(|(n, e)| format!("{n}: {e:.3e}"))
        .collect();
    assert!(
        bad.is_empty(),
        "{case} ({}): {} tensors disagree with PyTorch beyond {tol:e}:\n  {}\nall errors:\n{}",
        std::any::type_name::<T>(),
        bad.len(),
        bad.join("\n  "),
        report
            .iter()
            .map(|(n, e)| format!("  {n}: {e:.3e}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

const TOL_F32: f64 = 1e-5;
const TOL_F64: f64 = 1e-9;

#[test]
fn rnn_tanh_f32() {
    agree::<f32>(
        "rnn_tanh",
        CellConfig::Elman {
            activation: Activation::Tanh,
        },
        TOL_F32,
    );
}
#[test]
fn rnn_tanh_f64() {
    agree::<f64>(
        "rnn_tanh",
        CellConfig::Elman {
            activation: Activation::Tanh,
        },
        TOL_F64,
    );
}
#[test]
fn rnn_relu_f32() {
    agree::<f32>(
        "rnn_relu",
        CellConfig::Elman {
            activation: Activation::Relu,
        },
        TOL_F32,
    );
}
#[test]
fn rnn_relu_f64() {
    agree::<f64>(
        "rnn_relu",
        CellConfig::Elman {
            activation: Activation::Relu,
        },
        TOL_F64,
    );
}
#[test]
fn lstm_f32() {
    agree::<f32>("lstm", CellConfig::lstm(false, None), TOL_F32);
}
#[test]
fn lstm_f64() {
    agree::<f64>("lstm", CellConfig::lstm(false, None), TOL_F64);
}
#[test]
fn lstm_proj_f32() {
    agree::<f32>("lstm_proj", CellConfig::lstm(false, Some(3)), TOL_F32);
}
#[test]
fn lstm_proj_f64() {
    agree::<f64>("lstm_proj", CellConfig::lstm(false, Some(3)), TOL_F64);
}
#[test]
fn gru_f32() {
    agree::<f32>(
        "gru",
        CellConfig::Gru {
            variant: GruVariant::Pytorch,
        },
        TOL_F32,
    );
}
#[test]
fn gru_f64() {
    agree::<f64>(
        "gru",
        CellConfig::Gru {
            variant: GruVariant::Pytorch,
        },
        TOL_F64,
    );
}
