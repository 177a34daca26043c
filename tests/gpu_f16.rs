//! `Precision::F16`: every cell kind with its layer caches stored in f16, against the f32 CPU
//! reference (plain, blocked and row-wise steps, uni- and bidirectional, two layers). Each stored
//! record is rounded to f16 (relative 2^-11), and the forward's recurrence reads some of them
//! back (the LSTM cell state, the Jordan output), so the bounds are those of f16 storage, not
//! of f32 arithmetic: the largest errors measured here were 1.2e-4 (outputs) and 5.5e-4
//! (gradients) relative to the tensors' scale, about one f16 rounding; the bounds leave an
//! 8x margin. A kernel reading a wrong element or an unwritten one (NaN poison) is off by
//! O(1) and fails them.

mod gpu_common;

use gpu_common::{assert_close, compare_stack, dense_batch, dense_net, gpu, layer, rng};
use rand::RngExt;
use wgrnn::backend::wgpu::{Precision, Tuning};
use wgrnn::backend::{Backend, SeqShape};
use wgrnn::config::{
    Activation, CellConfig, GruVariant, HeadConfig, InputEncoding, JordanFeedback, NetworkConfig,
    Task,
};
use wgrnn::optim::{ClipConfig, OptimizerConfig, Schedule, TrainConfig};
use wgrnn::train::Trainer;
use wgrnn::{CpuBackend, Model, Targets};

/// Forward outputs and final states: f16 rounding of the records the steps read back.
const TOL_FWD: f64 = 4e-3;
/// Gradients: the rounding of every record the backward reads, over the whole sequence.
const TOL_GRAD: f64 = 5e-3;

/// The GPU backend with f16 caches (the GPU tests' adapter must offer SHADER_F16).
fn f16_gpu() -> Option<wgrnn::WgpuBackend> {
    let mut be = gpu()?;
    be.set_precision(Precision::F16)
        .expect("the GPU tests' adapter must offer SHADER_F16");
    Some(be)
}

fn stacks() -> Vec<(CellConfig, CellConfig)> {
    let elman = CellConfig::Elman {
        activation: Activation::Tanh,
    };
    let gru = |variant| CellConfig::Gru { variant };
    vec![
        (CellConfig::lstm(false, None), CellConfig::lstm(false, None)),
        (
            CellConfig::lstm(true, Some(9)),
            CellConfig::lstm(false, Some(3)),
        ),
        (gru(GruVariant::Pytorch), gru(GruVariant::ResetBefore)),
        (elman.clone(), elman),
    ]
}

#[test]
fn f16_caches_match_the_f32_reference() {
    let Some(mut be) = f16_gpu() else { return };
    let mut r = rng("f16_caches_match_the_f32_reference");
    let lengths: Vec<usize> = (0..19).map(|i| [7, 1, 4, 7, 2, 5][i % 6]).collect();
    // Plain and blocked tiles (the latter with naga's bounds checks off), plain tiles with
    // their inner dimension split 4 ways, the matrix-vector products, and row-wise steps.
    for (tiled, blocked, k_split, gemv) in [
        (true, false, 1, false),
        (true, true, 1, false),
        (true, false, 4, false),
        (true, false, 1, true),
        (false, false, 1, false),
    ] {
        be.set_tuning(Tuning {
            tiled_steps: tiled,
            blocked_steps: blocked,
            step_k_split: Some(k_split),
            gemv_steps: Some(gemv),
            checked: !blocked,
            ..Tuning::default()
        });
        for (c1, c2) in stacks() {
            for bi in [false, true] {
                let cfg = dense_net(
                    3,
                    vec![layer(c1.clone(), 33, bi), layer(c2.clone(), 17, bi)],
                    None,
                );
                be = compare_stack(be, &cfg, &lengths, &mut r, TOL_FWD, TOL_GRAD);
            }
        }
    }
}

/// A Jordan layer (its fed-back softmax output, hs, lives in the f16 cache and the next
/// step reads it back) on top of an Elman layer, with its tagging head.
#[test]
fn f16_jordan_matches_the_f32_reference() {
    let Some(mut be) = f16_gpu() else { return };
    let mut r = rng("f16_jordan_matches_the_f32_reference");
    let elman = CellConfig::Elman {
        activation: Activation::Tanh,
    };
    for feedback in [JordanFeedback::Softmax, JordanFeedback::Linear] {
        let jordan = CellConfig::Jordan {
            activation: Activation::Tanh,
            feedback,
        };
        let head = HeadConfig {
            classes: 5,
            task: Task::Tagging { ignore_label: None },
        };
        let cfg = dense_net(
            3,
            vec![layer(elman.clone(), 7, false), layer(jordan, 17, false)],
            Some(head),
        );
        be = compare_stack(be, &cfg, &[6, 2, 6, 4], &mut r, TOL_FWD, TOL_GRAD);
    }
}

/// Training with f16 caches: a stack with dropout on its first layer (the states then live
/// in the f16 cache, not in the layer output) follows the f32 CPU reference over 10 Adam
/// steps, loss and gradient norm at every step.
#[test]
fn f16_training_follows_the_f32_reference() {
    let Some(be) = f16_gpu() else { return };
    let mut r = rng("f16_training_follows_the_f32_reference");
    let lengths = [7, 1, 4, 7, 2];
    let classes = 5;
    let mut l0 = layer(CellConfig::lstm(false, None), 17, true);
    l0.dropout = 0.3;
    let cfg = NetworkConfig {
        input: InputEncoding::Dense { features: 3 },
        layers: vec![
            l0,
            layer(
                CellConfig::Gru {
                    variant: GruVariant::Pytorch,
                },
                9,
                false,
            ),
        ],
        head: Some(HeadConfig {
            classes,
            task: Task::Tagging { ignore_label: None },
        }),
    };
    let batch = dense_batch(&mut r, 3, &lengths);
    let rows = batch.seq.time * lengths.len();
    let tgt = Targets::Classes(
        (0..rows)
            .map(|_| r.random_range(0..classes as u32))
            .collect(),
    );
    let seed = r.random_range(0..u64::MAX);
    let train = TrainConfig {
        optimizer: OptimizerConfig::adam(),
        lr: 0.01,
        schedule: Schedule::Constant,
        clip: ClipConfig {
            max_norm: Some(1.0),
            max_value: None,
        },
    };
    let cpu = Model::new(CpuBackend::<f32>::new(), cfg.clone(), seed).expect("cpu model");
    let gpu = Model::new(be, cfg, seed).expect("gpu model");
    let mut tc = Trainer::new(cpu, train.clone(), seed);
    let mut tg = Trainer::new(gpu, train, seed);
    let (mut lc, mut lg) = (Vec::new(), Vec::new());
    for step in 1..=10 {
        let a = tc.step(&batch, &tgt).expect("cpu step");
        let b = tg.step(&batch, &tgt).expect("gpu step");
        lc.push(a.loss as f32);
        lg.push(b.loss as f32);
        assert_close(
            &format!("gradient norm at step {step}"),
            &[b.grad_norm as f32],
            &[a.grad_norm as f32],
            TOL_GRAD,
        );
    }
    assert_close("losses of 10 steps", &lg, &lc, TOL_FWD);
    assert!(lg[9] < lg[0], "the loss fell: {lg:?}");
}

/// Under F16 a layer cache is an f16 buffer of the same element count, half the bytes of
/// the f32 one; under F32 it is f32.
#[test]
fn f16_caches_take_half_the_bytes() {
    let Some(mut be) = gpu() else { return };
    let cfg = dense_net(
        3,
        vec![layer(CellConfig::lstm(false, None), 64, true)],
        None,
    );
    let model = wgrnn::Model::new(be, cfg, 1).expect("model");
    let plan = model.plan().layers[0].clone();
    be = model.into_backend();
    let seq = SeqShape {
        time: 9,
        lengths: vec![9, 3, 5, 1],
    };
    let len = be.layer_cache_len(&plan, &seq);
    let before = be.bytes_held();
    let f32_cache = be.layer_cache(&plan, &seq);
    let f32_bytes = be.bytes_held() - before;
    be.set_precision(Precision::F16).expect("SHADER_F16");
    let f16_cache = be.layer_cache(&plan, &seq);
    let f16_bytes = be.bytes_held() - before - f32_bytes;
    assert!(!f32_cache.is_f16() && f16_cache.is_f16());
    assert_eq!((f32_cache.len(), f16_cache.len()), (len, len));
    assert_eq!(f32_bytes, (len * 4).next_multiple_of(16) as u64);
    assert_eq!(f16_bytes, (len * 2).next_multiple_of(16) as u64);
    // Values round-trip through f16.
    let mut f16_cache = f16_cache;
    let vals: Vec<f32> = (0..len).map(|i| (i % 97) as f32 * 0.25 - 7.0).collect();
    be.write(&mut f16_cache, &vals);
    assert_eq!(be.download(&f16_cache), vals);
}
