//! Helpers shared by the integration tests: random batches and finite-difference checks.
#![allow(dead_code)]

use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use wgrnn::config::{CellConfig, HeadConfig, InputEncoding, LayerConfig, NetworkConfig, Task};
use wgrnn::model::{InputGrads, Targets};
use wgrnn::{Batch, CpuBackend, Inputs, LayerState, Mode, Model, SeqShape, Wants};

/// A layer with defaults.
pub fn layer(cell: CellConfig, hidden: usize, bidirectional: bool) -> LayerConfig {
    LayerConfig {
        cell,
        hidden,
        bidirectional,
        dropout: 0.0,
        recurrent: true,
    }
}

/// A network of dense inputs.
pub fn dense_net(
    features: usize,
    layers: Vec<LayerConfig>,
    head: Option<HeadConfig>,
) -> NetworkConfig {
    NetworkConfig {
        input: InputEncoding::Dense { features },
        layers,
        head,
    }
}

/// A head for a task.
pub fn head(classes: usize, task: Task) -> Option<HeadConfig> {
    Some(HeadConfig { classes, task })
}

/// Uniform values in [-1, 1).
pub fn uniform(rng: &mut ChaCha8Rng, n: usize) -> Vec<f64> {
    (0..n).map(|_| rng.random_range(-1.0..1.0)).collect()
}

/// A random batch for a model (dense features or ids in `0..vocab+2`, so unknown ids occur).
pub fn random_batch(cfg: &NetworkConfig, lengths: &[usize], rng: &mut ChaCha8Rng) -> Batch<f64> {
    let time = *lengths.iter().max().expect("lengths");
    let seq = SeqShape {
        time,
        lengths: lengths.to_vec(),
    };
    let n = time * lengths.len();
    let inputs = match cfg.input {
        InputEncoding::Dense { features } => Inputs::Dense(uniform(rng, n * features)),
        InputEncoding::Embedding { vocab, .. } => {
            Inputs::Ids((0..n).map(|_| rng.random_range(0..vocab as u32)).collect())
        }
        InputEncoding::OneHot { vocab, .. } => Inputs::Ids(
            (0..n)
                .map(|_| rng.random_range(0..vocab as u32 + 2))
                .collect(),
        ),
    };
    Batch { seq, inputs }
}

/// Random states shaped like a model's final states.
pub fn random_states(like: &[LayerState<f64>], rng: &mut ChaCha8Rng) -> Vec<LayerState<f64>> {
    like.iter()
        .map(|s| LayerState {
            h: uniform(rng, s.h.len()),
            c: s.c.as_ref().map(|c| uniform(rng, c.len())),
        })
        .collect()
}

/// Random targets for the model's task.
pub fn random_targets(cfg: &NetworkConfig, seq: &SeqShape, rng: &mut ChaCha8Rng) -> Targets<f64> {
    let h = cfg.head.as_ref().expect("a head");
    let per_step = seq.time * seq.batch();
    match h.task {
        Task::Regression => Targets::Values(uniform(rng, per_step * h.classes)),
        Task::Classification { .. } => Targets::Classes(
            (0..seq.batch())
                .map(|_| rng.random_range(0..h.classes as u32))
                .collect(),
        ),
        _ => Targets::Classes(
            (0..per_step)
                .map(|_| rng.random_range(0..h.classes as u32))
                .collect(),
        ),
    }
}

/// `max |a - n| / max |n|` over a tensor (0 when both are 0): the normwise relative error.
pub fn rel_err(a: &[f64], n: &[f64]) -> f64 {
    assert_eq!(a.len(), n.len(), "lengths differ");
    let diff = a
        .iter()
        .zip(n)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max);
    let scale = n.iter().map(|v| v.abs()).fold(0.0, f64::max);
    if diff == 0.0 {
        0.0
    } else {
        diff / scale.max(1e-300)
    }
}

/// The objective a gradient check differentiates.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Objective {
    /// `sum(outputs * R) + sum(final states * S)` with fixed random R, S (exercises the
    /// gradient of the final states too).
    Projection,
    /// The head's task loss.
    TaskLoss,
}

/// What the checked function depends on.
pub struct Point {
    pub params: Vec<f64>,
    pub batch: Batch<f64>,
    pub init: Option<Vec<LayerState<f64>>>,
}

/// Finite-difference gradient check of every parameter, the dense inputs (if any) and the
/// initial states (if given). Panics naming the worst tensor when the relative error of
/// any gradient exceeds `tol`.
pub fn grad_check(
    cfg: NetworkConfig,
    lengths: &[usize],
    with_init: bool,
    objective: Objective,
    seed: u64,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut model = Model::new(CpuBackend::<f64>::new(), cfg.clone(), seed).expect("valid config");
    // Perturb the parameters away from init so every tensor matters (incl. zero-init ones).
    let params: Vec<f64> = model
        .params()
        .iter()
        .zip(uniform(&mut rng, model.table().total()))
        .map(|(p, u)| p + 0.3 * u)
        .collect();
    // A non-recurrent layer's W_hh stays at zero (the only point where that model is defined).
    let frozen: Vec<String> = model
        .table()
        .entries()
        .iter()
        .filter(|e| {
            e.name.contains("weight_hh")
                && cfg.layers.iter().enumerate().any(|(k, l)| {
                    !l.recurrent
                        && (e.name.ends_with(&format!("_l{k}"))
                            || e.name.ends_with(&format!("_l{k}_reverse")))
                })
        })
        .map(|e| e.name.clone())
        .collect();
    let mut params = params;
    for name in &frozen {
        let e = model.table().get(name).expect("listed").clone();
        params[e.range()].fill(0.0);
    }
    model.set_params(&params).expect("sizes");
    let batch = random_batch(&cfg, lengths, &mut rng);
    let mode = Mode::Train { dropout_seed: 7 };
    model.forward(&batch, None, mode).expect("forward");
    let init = with_init.then(|| random_states(&model.final_states(), &mut rng));
    let out_len = model.outputs().len();
    let r_out = uniform(&mut rng, out_len);
    let r_fin = random_states(&model.final_states(), &mut rng);
    let targets = cfg
        .head
        .as_ref()
        .map(|_| random_targets(&cfg, &batch.seq, &mut rng));

    let eval = |model: &mut Model<CpuBackend<f64>>, p: &Point| -> f64 {
        model.set_params(&p.params).expect("sizes");
        model
            .forward(&p.batch, p.init.as_deref(), mode)
            .expect("forward");
        match objective {
            Objective::TaskLoss => model.loss(targets.as_ref().expect("head")).expect("loss"),
            Objective::Projection => {
                let o: f64 = model.outputs().iter().zip(&r_out).map(|(a, b)| a * b).sum();
                let f: f64 = model
                    .final_states()
                    .iter()
                    .zip(&r_fin)
                    .map(|(s, r)| {
                        let h: f64 = s.h.iter().zip(&r.h).map(|(a, b)| a * b).sum();
                        let c: f64 = match (&s.c, &r.c) {
                            (Some(c), Some(rc)) => c.iter().zip(rc).map(|(a, b)| a * b).sum(),
                            _ => 0.0,
                        };
                        h + c
                    })
                    .sum();
                o + f
            }
        }
    };

    // Analytic gradients.
    let point = Point {
        params: params.clone(),
        batch: batch.clone(),
        init: init.clone(),
    };
    let _ = eval(&mut model, &point);
    model.zero_grads();
    let dense = matches!(batch.inputs, Inputs::Dense(_));
    let wants = Wants {
        inputs: dense,
        initial_states: with_init,
    };
    let ig: InputGrads<f64> = match objective {
        Objective::TaskLoss => model.backward(wants).expect("backward"),
        Objective::Projection => model
            .backward_from(&r_out, Some(&r_fin), wants)
            .expect("backward"),
    };
    let grads = model.grads();

    let eps = 1e-5;
    let numeric = |model: &mut Model<CpuBackend<f64>>, perturb: &dyn Fn(&mut Point, f64)| -> f64 {
        let mut p = Point {
            params: params.clone(),
            batch: batch.clone(),
            init: init.clone(),
        };
        perturb(&mut p, eps);
        let up = eval(model, &p);
        let mut p = Point {
            params: params.clone(),
            batch: batch.clone(),
            init: init.clone(),
        };
        perturb(&mut p, -eps);
        let down = eval(model, &p);
        (up - down) / (2.0 * eps)
    };

    let tol = 1e-6;
    let mut report = Vec::new();
    let table = model.table().clone();
    for e in table.entries() {
        let num: Vec<f64> = e
            .range()
            .map(|i| numeric(&mut model, &|p: &mut Point, d| p.params[i] += d))
            .collect();
        let ana = &grads[e.range()];
        let err = rel_err(ana, &num);
        report.push((
            e.name.clone(),
            err,
            num.iter().map(|v| v.abs()).fold(0.0, f64::max),
        ));
    }
    if dense {
        let n = match &batch.inputs {
            Inputs::Dense(x) => x.len(),
            _ => 0,
        };
        let num: Vec<f64> = (0..n)
            .map(|i| {
                numeric(&mut model, &|p: &mut Point, d| {
                    if let Inputs::Dense(x) = &mut p.batch.inputs {
                        x[i] += d
                    }
                })
            })
            .collect();
        let err = rel_err(ig.inputs.as_ref().expect("asked"), &num);
        report.push((
            "d inputs".into(),
            err,
            num.iter().map(|v| v.abs()).fold(0.0, f64::max),
        ));
    }
    if let (Some(init), Some(di)) = (&init, &ig.initial_states) {
        for (k, s) in init.iter().enumerate() {
            let num: Vec<f64> = (0..s.h.len())
                .map(|i| {
                    numeric(&mut model, &|p: &mut Point, d| {
                        p.init.as_mut().expect("init")[k].h[i] += d
                    })
                })
                .collect();
            report.push((
                format!("d h0 layer {k}"),
                rel_err(&di[k].h, &num),
                num.iter().map(|v| v.abs()).fold(0.0, f64::max),
            ));
            if let Some(c) = &s.c {
                let num: Vec<f64> = (0..c.len())
                    .map(|i| {
                        numeric(&mut model, &|p: &mut Point, d| {
                            p.init.as_mut().expect("init")[k].c.as_mut().expect("c")[i] += d
                        })
                    })
                    .collect();
                let ana = di[k].c.as_ref().expect("dc0");
                report.push((
                    format!("d c0 layer {k}"),
                    rel_err(ana, &num),
                    num.iter().map(|v| v.abs()).fold(0.0, f64::max),
                ));
            }
        }
    }
    let bad: Vec<_> = report
        .iter()
        .filter(|(_, e, _)| e.is_nan() || *e > tol)
        .collect();
    assert!(
        bad.is_empty(),
        "gradient check failed (rel err > {tol}): {bad:#?}\nall: {report:#?}"
    );
    // Every tensor the objective depends on must have a gradient that is not identically zero
    // (a check of zeros against zeros proves nothing); only frozen tensors may.
    let zero: Vec<_> = report
        .iter()
        .filter(|(n, _, m)| *m == 0.0 && !frozen.contains(n))
        .collect();
    assert!(
        zero.is_empty(),
        "tensors with an all-zero gradient: {zero:?}"
    );
}
