//! Whole models on the GPU against the CPU reference: every task head and loss, id inputs
//! (embedding and one-hot), dropout, and 20 optimizer steps whose losses must agree to 1e-4
//! relative on both backends (with clipping and every optimizer).

mod gpu_common;

use gpu_common::{assert_close, dense_batch, gpu, layer, rng, uniform};
use rand::RngExt;
use rand::rngs::ChaCha8Rng;
use wgrnn::config::{
    Activation, CellConfig, GruVariant, HeadConfig, InputEncoding, NetworkConfig, Pooling, Task,
    UnknownTokens,
};
use wgrnn::data::trigram::TrigramVocab;
use wgrnn::data::vocab::VocabOptions;
use wgrnn::optim::{ClipConfig, OptimizerConfig, Schedule, TrainConfig};
use wgrnn::train::Trainer;
use wgrnn::{Batch, CpuBackend, Inputs, Model, SeqShape, Targets, WgpuBackend};

fn lstm() -> CellConfig {
    CellConfig::Lstm {
        gate: Activation::Sigmoid,
        cell: Activation::Tanh,
        hidden: Activation::Tanh,
        peephole: false,
        proj: None,
        forget_bias: Some(1.0),
    }
}

fn gru() -> CellConfig {
    CellConfig::Gru {
        variant: GruVariant::Pytorch,
    }
}

fn elman() -> CellConfig {
    CellConfig::Elman {
        activation: Activation::Tanh,
    }
}

fn id_batch(rng: &mut ChaCha8Rng, ids_below: u32, lengths: &[usize]) -> Batch<f32> {
    let time = *lengths.iter().max().expect("lengths");
    let nb = lengths.len();
    let ids = (0..time * nb)
        .map(|i| {
            if i / nb < lengths[i % nb] {
                rng.random_range(0..ids_below)
            } else {
                0
            }
        })
        .collect();
    Batch {
        seq: SeqShape {
            time,
            lengths: lengths.to_vec(),
        },
        inputs: Inputs::Ids(ids),
    }
}

fn targets(rng: &mut ChaCha8Rng, task: &Task, classes: usize, seq: &SeqShape) -> Targets<f32> {
    let nb = seq.batch();
    match task {
        Task::Classification { .. } => Targets::Classes(
            (0..nb)
                .map(|_| rng.random_range(0..classes as u32))
                .collect(),
        ),
        Task::Regression => Targets::Values(uniform(rng, seq.time * nb * classes, 1.0)),
        Task::Tagging { ignore_label } => Targets::Classes(
            (0..seq.time * nb)
                .map(|_| match ignore_label {
                    Some(ig) if rng.random_range(0..4) == 0 => *ig,
                    _ => rng.random_range(0..classes as u32),
                })
                .collect(),
        ),
        Task::LanguageModel => Targets::Classes(
            (0..seq.time * nb)
                .map(|_| rng.random_range(0..classes as u32))
                .collect(),
        ),
    }
}

/// Trains the same network on both backends for `steps` steps on fixed random batches
/// and compares every step's loss and gradient norm, then the final parameters.
fn train_both(
    be: WgpuBackend,
    cfg: NetworkConfig,
    train: TrainConfig,
    batch: &Batch<f32>,
    tg: &Targets<f32>,
    steps: usize,
    seed: u64,
) -> WgpuBackend {
    let what = format!("{cfg:?} {train:?}");
    let cpu = Model::new(CpuBackend::<f32>::new(), cfg.clone(), seed).expect("cpu model");
    let gpu = Model::new(be, cfg, seed).expect("gpu model");
    let mut tc = Trainer::new(cpu, train.clone(), seed);
    let mut tg_ = Trainer::new(gpu, train, seed);
    let (mut lc, mut lg) = (Vec::new(), Vec::new());
    for _ in 0..steps {
        let a = tc.step(batch, tg).expect("cpu step");
        let b = tg_.step(batch, tg).expect("gpu step");
        lc.push(a.loss as f32);
        lg.push(b.loss as f32);
        assert_close(
            &format!("gradient norm at step {} of {what}", lc.len()),
            &[b.grad_norm as f32],
            &[a.grad_norm as f32],
            1e-4,
        );
    }
    assert_close(&format!("losses of {what}"), &lg, &lc, 1e-4);
    // Adam divides by sqrt(v): a parameter whose gradient is near zero turns f32 rounding
    // differences into different step directions, so parameters get a looser bound than the
    // losses (the criterion).
    assert_close(
        &format!("parameters after {steps} steps of {what}"),
        &tg_.model.params(),
        &tc.model.params(),
        1e-3,
    );
    tg_.model.into_backend()
}

fn adam(clip: Option<f32>) -> TrainConfig {
    TrainConfig {
        optimizer: OptimizerConfig::adam(),
        lr: 0.01,
        schedule: Schedule::Constant,
        clip: ClipConfig {
            max_norm: clip,
            max_value: None,
        },
    }
}

#[test]
fn twenty_adam_steps_agree_for_every_cell() {
    let Some(mut be) = gpu() else { return };
    let mut r = rng("twenty_adam_steps_agree_for_every_cell");
    let lengths = [7, 1, 4, 7, 2];
    for cell in [lstm(), gru(), elman()] {
        for bi in [false, true] {
            let classes = 5;
            let cfg = NetworkConfig {
                input: InputEncoding::Dense { features: 3 },
                layers: vec![layer(cell.clone(), 17, bi), layer(cell.clone(), 3, bi)],
                head: Some(HeadConfig {
                    classes,
                    task: Task::Tagging { ignore_label: None },
                }),
            };
            let batch = dense_batch(&mut r, 3, &lengths);
            let tgt = targets(
                &mut r,
                &cfg.head.as_ref().expect("head").task,
                classes,
                &batch.seq,
            );
            let seed = r.random_range(0..u64::MAX);
            be = train_both(be, cfg, adam(Some(1.0)), &batch, &tgt, 20, seed);
        }
    }
}

/// Word hashing: each word is the bag of its letter trigrams, summed as an embedding bag or
/// as a trigram count vector; both backends agree over 5 training steps.
#[test]
fn word_hashing_bags_agree() {
    let Some(mut be) = gpu() else { return };
    let mut r = rng("word_hashing_bags_agree");
    let words = [
        "arrive", "leave", "taipei", "tokyo", "on", "november", "2nd", "a", "early", "from",
    ];
    let vocab = TrigramVocab::from_words(words, &VocabOptions::default());
    let sentences: Vec<Vec<&str>> = [7usize, 1, 4, 7, 2]
        .iter()
        .map(|&n| {
            (0..n)
                .map(|_| words[r.random_range(0..words.len())])
                .collect()
        })
        .collect();
    // "unseen" has no trigram of its own in the vocabulary: its bag is mostly "other".
    let mut with_unseen = sentences.clone();
    with_unseen[0][3] = "unseen";
    let batch: Batch<f32> = vocab
        .batch(&with_unseen, None)
        .expect("trigram batch")
        .into_batch();
    let task = Task::Tagging { ignore_label: None };
    let tgt = targets(&mut r, &task, 4, &batch.seq);
    let n = vocab.vocabulary().len();
    for input in [
        InputEncoding::Embedding {
            vocab: n,
            dim: 6,
            unknown: UnknownTokens::Error,
        },
        InputEncoding::OneHot {
            vocab: n,
            unknown: UnknownTokens::Error,
        },
    ] {
        let cfg = NetworkConfig {
            input,
            layers: vec![layer(lstm(), 5, true)],
            head: Some(HeadConfig {
                classes: 4,
                task: task.clone(),
            }),
        };
        let seed = r.random_range(0..u64::MAX);
        be = train_both(be, cfg, adam(Some(1.0)), &batch, &tgt, 5, seed);
    }
}

#[test]
fn every_task_input_and_optimizer_agrees() {
    let Some(mut be) = gpu() else { return };
    let mut r = rng("every_task_input_and_optimizer_agrees");
    let lengths = [7, 1, 4, 7, 2];
    let tasks = [
        Task::Tagging {
            ignore_label: Some(0),
        },
        Task::LanguageModel,
        Task::Classification {
            pooling: Pooling::Last,
        },
        Task::Classification {
            pooling: Pooling::Mean,
        },
        Task::Regression,
    ];
    let optimizers = [
        OptimizerConfig::Adam {
            beta1: 0.9,
            beta2: 0.99,
            eps: 1e-8,
            weight_decay: 0.01,
        },
        OptimizerConfig::AdamW {
            beta1: 0.8,
            beta2: 0.999,
            eps: 1e-6,
            weight_decay: 0.1,
        },
        OptimizerConfig::Sgd {
            momentum: 0.9,
            nesterov: true,
            weight_decay: 0.01,
        },
    ];
    for (i, task) in tasks.iter().enumerate() {
        let classes = [3, 33, 1, 5, 2][i];
        let input = match i % 3 {
            0 => InputEncoding::Embedding {
                vocab: 11,
                dim: 4,
                unknown: UnknownTokens::Other,
            },
            1 => InputEncoding::OneHot {
                vocab: 6,
                unknown: UnknownTokens::Other,
            },
            _ => InputEncoding::Dense { features: 3 },
        };
        let mut l1 = layer(lstm(), 5, i % 2 == 0);
        l1.dropout = 0.3;
        let cfg = NetworkConfig {
            input: input.clone(),
            layers: vec![l1, layer(gru(), 3, i % 2 == 1)],
            head: Some(HeadConfig {
                classes,
                task: task.clone(),
            }),
        };
        let batch = match input {
            InputEncoding::Dense { features } => dense_batch(&mut r, features, &lengths),
            InputEncoding::Embedding { vocab, .. } | InputEncoding::OneHot { vocab, .. } => {
                id_batch(&mut r, vocab as u32 + 3, &lengths)
            }
        };
        let tgt = targets(&mut r, task, classes, &batch.seq);
        let train = TrainConfig {
            optimizer: optimizers[i % 3].clone(),
            lr: 0.02,
            schedule: Schedule::CosineWarmup {
                warmup: 2,
                total: 5,
                min_lr: 0.001,
            },
            clip: ClipConfig {
                max_norm: Some(0.5),
                max_value: Some(0.05),
            },
        };
        let seed = r.random_range(0..u64::MAX);
        be = train_both(be, cfg, train, &batch, &tgt, 5, seed);
    }
}

#[test]
fn nan_loss_on_the_gpu_leaves_parameters_and_moments_unchanged() {
    let Some(be) = gpu() else { return };
    let mut r = rng("nan_loss_on_the_gpu_leaves_parameters_and_moments_unchanged");
    let cfg = NetworkConfig {
        input: InputEncoding::Dense { features: 3 },
        layers: vec![layer(lstm(), 5, true)],
        head: Some(HeadConfig {
            classes: 3,
            task: Task::Tagging { ignore_label: None },
        }),
    };
    let model = Model::new(be, cfg.clone(), 5).expect("model");
    let mut tr = Trainer::new(model, adam(None), 5);
    let good = dense_batch(&mut r, 3, &[4, 2]);
    let tgt = targets(&mut r, &cfg.head.as_ref().expect("head").task, 3, &good.seq);
    tr.step(&good, &tgt).expect("a finite step");
    let before: Vec<u32> = tr.model.params().iter().map(|v| v.to_bits()).collect();
    let mut bad = good.clone();
    if let Inputs::Dense(x) = &mut bad.inputs {
        x[0] = f32::NAN;
    }
    let e = tr.step(&bad, &tgt).expect_err("a NaN loss is an error");
    assert!(e.to_string().contains("loss at step 2"), "{e}");
    let after: Vec<u32> = tr.model.params().iter().map(|v| v.to_bits()).collect();
    assert_eq!(before, after, "a failed step changed the parameters");
    assert_eq!(tr.steps_done(), 1);
    // The moments were not touched either: the next good step equals the CPU's.
    let cpu = Model::new(CpuBackend::<f32>::new(), cfg, 5).expect("model");
    let mut tc = Trainer::new(cpu, adam(None), 5);
    tc.step(&good, &tgt).expect("cpu step");
    let _ = tc.step(&bad, &tgt).expect_err("cpu NaN");
    let a = tc.step(&good, &tgt).expect("cpu step");
    let b = tr.step(&good, &tgt).expect("gpu step");
    assert_close(
        "loss after a skipped step",
        &[b.loss as f32],
        &[a.loss as f32],
        1e-4,
    );
    assert_close(
        "parameters after a skipped step",
        &tr.model.params(),
        &tc.model.params(),
        1e-4,
    );
}
