//! Optimizers, gradient clipping and learning-rate schedules against PyTorch.
//!
//! The reference values come from `tests/fixtures/optim.safetensors`, written by
//! `tests/fixtures/make_optim_fixtures.py` (torch.optim.SGD / Adam / AdamW trajectories,
//! clip_grad_norm_, clip_grad_value_ and StepLR, all in float64). The script hands torch the f32
//! rounding of every hyper-parameter, because that is what `OptimizerConfig` and
//! `OptimizerStep::lr` hold; the f64 backend must then agree to 1e-12 (normwise relative).

mod common;

use common::rel_err;
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use safetensors::{Dtype, SafeTensors};
use wgrnn::config::{Activation, CellConfig, HeadConfig, InputEncoding, LayerConfig, Task};
use wgrnn::optim::{ClipConfig, OptimizerConfig, OptimizerStep, Schedule, TrainConfig};
use wgrnn::train::Trainer;
use wgrnn::{
    Backend, Batch, CpuBackend, Inputs, Mode, Model, NetworkConfig, Real, SeqShape, Targets, Wants,
};

const LR: f32 = 0.05;
const MOMENTUM: f32 = 0.9;
const WD: f32 = 0.1;

/// The fixture file's tensors as flat f64 vectors with their shapes.
struct Fixture {
    bytes: Vec<u8>,
}

impl Fixture {
    fn load() -> Self {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/optim.safetensors"
        );
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        Fixture { bytes }
    }

    fn get(&self, name: &str) -> (Vec<usize>, Vec<f64>) {
        let st = SafeTensors::deserialize(&self.bytes).expect("valid safetensors");
        let t = st
            .tensor(name)
            .unwrap_or_else(|e| panic!("fixture tensor {name}: {e}"));
        assert_eq!(t.dtype(), Dtype::F64, "{name} must be float64");
        let v = t
            .data()
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect();
        (t.shape().to_vec(), v)
    }

    fn vec(&self, name: &str) -> Vec<f64> {
        self.get(name).1
    }

    fn scalar(&self, name: &str) -> f64 {
        let v = self.vec(name);
        assert_eq!(v.len(), 1, "{name} is a scalar");
        v[0]
    }

    /// A `[rows, cols]` tensor as rows.
    fn rows(&self, name: &str) -> Vec<Vec<f64>> {
        let (shape, v) = self.get(name);
        assert_eq!(shape.len(), 2, "{name} is 2-d");
        v.chunks_exact(shape[1]).map(<[f64]>::to_vec).collect()
    }
}

fn to<T: Real>(v: &[f64]) -> Vec<T> {
    v.iter().map(|&x| T::of(x)).collect()
}

fn from<T: Real>(v: &[T]) -> Vec<f64> {
    v.iter().map(|x| x.f64()).collect()
}

/// Runs `optimizer` through the `Backend` trait over the fixture's gradients; returns the
/// parameters after each update.
fn trajectory<T: Real>(fx: &Fixture, optimizer: &OptimizerConfig) -> Vec<Vec<f64>> {
    let be = CpuBackend::<T>::new();
    let init = fx.vec("init");
    let grads = fx.rows("grads");
    let n = init.len();
    let mut params = be.upload(&to::<T>(&init));
    let mut state: Vec<Vec<T>> = (0..optimizer.state_buffers())
        .map(|_| be.zeros(n))
        .collect();
    let mut out = Vec::new();
    for (s, g) in grads.iter().enumerate() {
        let g = be.upload(&to::<T>(g));
        let step = OptimizerStep {
            optimizer: optimizer.clone(),
            lr: LR,
            step: s as u64 + 1,
        };
        be.optimizer_step(&step, &mut params, &g, &mut state);
        out.push(from(&be.download(&params)));
    }
    out
}

/// Compares our f64 and f32 trajectories with torch's, step by step.
fn check_optimizer(name: &str, optimizer: OptimizerConfig) {
    let fx = Fixture::load();
    // The script used exactly the f32 values our configuration holds.
    assert_eq!(fx.scalar("lr"), LR as f64);
    assert_eq!(fx.scalar("momentum"), MOMENTUM as f64);
    assert_eq!(fx.scalar("weight_decay"), WD as f64);
    assert_eq!(fx.scalar("beta1"), 0.9f32 as f64);
    assert_eq!(fx.scalar("beta2"), 0.999f32 as f64);
    assert_eq!(fx.scalar("eps"), 1e-8f32 as f64);
    let want = fx.rows(name);
    assert_eq!(want.len(), 6);
    let init = fx.vec("init");
    // The trajectory really moves (a comparison of unchanged parameters would prove nothing).
    assert!(
        rel_err(&want[5], &init) > 1e-2,
        "{name}: torch trajectory barely moves"
    );
    let got64 = trajectory::<f64>(&fx, &optimizer);
    let got32 = trajectory::<f32>(&fx, &optimizer);
    for (s, w) in want.iter().enumerate() {
        let e64 = rel_err(&got64[s], w);
        assert!(
            e64 <= 1e-12,
            "{name} f64 step {}: rel err {e64:e}\n ours  {:?}\n torch {w:?}",
            s + 1,
            got64[s]
        );
        let e32 = rel_err(&got32[s], w);
        assert!(
            e32 <= 1e-5,
            "{name} f32 step {}: rel err {e32:e}\n ours  {:?}\n torch {w:?}",
            s + 1,
            got32[s]
        );
    }
}

#[test]
fn sgd_momentum_matches_torch() {
    check_optimizer(
        "sgd_momentum",
        OptimizerConfig::Sgd {
            momentum: MOMENTUM,
            nesterov: false,
            weight_decay: 0.0,
        },
    );
}

#[test]
fn sgd_nesterov_matches_torch() {
    check_optimizer(
        "sgd_nesterov",
        OptimizerConfig::Sgd {
            momentum: MOMENTUM,
            nesterov: true,
            weight_decay: 0.0,
        },
    );
}

#[test]
fn sgd_weight_decay_matches_torch() {
    check_optimizer(
        "sgd_wd",
        OptimizerConfig::Sgd {
            momentum: MOMENTUM,
            nesterov: false,
            weight_decay: WD,
        },
    );
}

#[test]
fn adam_defaults_match_torch() {
    // `OptimizerConfig::adam()` must carry torch's defaults (betas (0.9, 0.999), eps 1e-8, no wd).
    assert_eq!(
        OptimizerConfig::adam(),
        OptimizerConfig::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0
        }
    );
    check_optimizer("adam", OptimizerConfig::adam());
}

#[test]
fn adam_weight_decay_matches_torch() {
    check_optimizer(
        "adam_wd",
        OptimizerConfig::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: WD,
        },
    );
}

#[test]
fn adamw_matches_torch() {
    check_optimizer(
        "adamw",
        OptimizerConfig::AdamW {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: WD,
        },
    );
}

#[test]
fn optimizers_are_distinguished_by_the_fixture() {
    // The six torch trajectories differ from each other, so each test above pins its own rule.
    let fx = Fixture::load();
    let names = [
        "sgd_momentum",
        "sgd_nesterov",
        "sgd_wd",
        "adam",
        "adam_wd",
        "adamw",
    ];
    for (i, a) in names.iter().enumerate() {
        for b in &names[i + 1..] {
            let (ra, rb) = (fx.rows(a), fx.rows(b));
            assert!(rel_err(&ra[5], &rb[5]) > 1e-4, "{a} and {b} coincide");
        }
    }
}

/// Runs the backend's norm clipping on `g`; returns the clipped gradient and the norm reported.
fn clip_norm<T: Real>(g: &[f64], max_norm: Option<f32>) -> (Vec<f64>, f64) {
    let be = CpuBackend::<T>::new();
    let mut buf = be.upload(&to::<T>(g));
    let mut norm = be.zeros(1);
    be.clip_grad_norm(&mut buf, max_norm, &mut norm);
    (from(&be.download(&buf)), be.download(&norm)[0].f64())
}

#[test]
fn clip_grad_norm_matches_torch() {
    let fx = Fixture::load();
    for case in ["above", "below"] {
        let g = fx.vec(&format!("clip_{case}_in"));
        let want = fx.vec(&format!("clip_{case}_out"));
        let want_norm = fx.scalar(&format!("clip_{case}_norm"));
        let c = fx.scalar(&format!("clip_{case}_max"));
        assert_eq!(c, c as f32 as f64, "max_norm exact in f32");
        let (got, norm) = clip_norm::<f64>(&g, Some(c as f32));
        assert!(rel_err(&got, &want) <= 1e-12, "{case}: {got:?} vs {want:?}");
        assert!(
            (norm - want_norm).abs() <= 1e-12 * want_norm,
            "{case}: norm {norm} vs torch {want_norm}"
        );
        let (got32, norm32) = clip_norm::<f32>(&g, Some(c as f32));
        assert!(rel_err(&got32, &want) <= 1e-5, "{case} f32: {got32:?}");
        assert!((norm32 - want_norm).abs() <= 1e-5 * want_norm);
        if case == "below" {
            // Below the threshold nothing changes, bit for bit.
            assert_eq!(got, g);
        } else {
            // The fixture's "above" norm is 7.9..., clipped to 1.5.
            assert!(want_norm > 5.0 && c == 1.5);
            let post: f64 = got.iter().map(|v| v * v).sum::<f64>().sqrt();
            assert!((post - 1.5).abs() <= 1e-12, "post-clip norm {post}");
        }
        // Without a threshold the norm is still reported and nothing is scaled.
        let (same, n2) = clip_norm::<f64>(&g, None);
        assert_eq!(same, g);
        assert!((n2 - want_norm).abs() <= 1e-12 * want_norm);
    }
}

#[test]
fn clip_grad_value_matches_torch() {
    let fx = Fixture::load();
    let g = fx.vec("clipvalue_in");
    let want = fx.vec("clipvalue_out");
    let limit = fx.scalar("clipvalue_limit") as f32;
    assert_eq!(limit, 0.25);
    let be = CpuBackend::<f64>::new();
    let mut buf = be.upload(&g);
    be.clip_grad_value(&mut buf, limit);
    // Clamping is exact.
    assert_eq!(buf, want);
    assert_eq!(
        want,
        vec![0.1, -0.25, 0.25, -0.25, 0.25, -0.01, 0.25],
        "fixture as designed"
    );
    let be32 = CpuBackend::<f32>::new();
    let mut buf32 = be32.upload(&to::<f32>(&g));
    be32.clip_grad_value(&mut buf32, limit);
    assert_eq!(buf32, to::<f32>(&want));
}

/// Post-clip global norm equals `max_norm` on a random vector, and the direction is kept.
#[test]
fn clip_grad_norm_scales_to_max_norm() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let g: Vec<f64> = (0..257).map(|_| rng.random_range(-3.0..3.0)).collect();
    let before = g.iter().map(|v| v * v).sum::<f64>().sqrt();
    let max_norm = 0.7f32;
    assert!(before > 10.0);
    let (got, norm) = clip_norm::<f64>(&g, Some(max_norm));
    assert!(
        (norm - before).abs() <= 1e-12 * before,
        "reports the pre-clip norm"
    );
    let after = got.iter().map(|v| v * v).sum::<f64>().sqrt();
    assert!(
        (after - max_norm as f64).abs() <= 1e-12,
        "post-clip norm {after} != {max_norm}"
    );
    let ratio = max_norm as f64 / before;
    for (a, b) in got.iter().zip(&g) {
        assert!(
            (a - b * ratio).abs() <= 1e-15,
            "direction changed: {a} vs {b}"
        );
    }
    let (got32, _) = clip_norm::<f32>(&g, Some(max_norm));
    let after32 = got32.iter().map(|v| v * v).sum::<f64>().sqrt();
    assert!((after32 - max_norm as f64).abs() <= 1e-6, "f32: {after32}");
}

#[test]
fn schedule_constant() {
    for step in [0, 1, 2, 17, 1_000_000] {
        assert_eq!(Schedule::Constant.lr_at(0.05, step), 0.05);
    }
}

#[test]
fn schedule_step_matches_torch_steplr() {
    let fx = Fixture::load();
    let want = fx.vec("steplr");
    assert_eq!(want.len(), 8);
    let s = Schedule::Step {
        every: 2,
        gamma: 0.5,
    };
    for (k, w) in want.iter().enumerate() {
        // Base f32(0.05) times powers of 0.5 is exact in both f32 and f64.
        assert_eq!(s.lr_at(LR, k as u64 + 1) as f64, *w, "update {}", k + 1);
    }
    // By hand: updates 1,2 -> 0.05; 3,4 -> 0.025; 5,6 -> 0.0125; 7,8 -> 0.00625.
    assert_eq!(s.lr_at(LR, 2), LR);
    assert_eq!(s.lr_at(LR, 3), LR / 2.0);
    assert_eq!(s.lr_at(LR, 8), LR / 8.0);
}

#[test]
fn schedule_cosine_warmup() {
    let s = Schedule::CosineWarmup {
        warmup: 4,
        total: 12,
        min_lr: 0.01,
    };
    let base = 0.1f32;
    // (step, lr) by hand. Warm-up: step/4 * 0.1. Cosine over 8 updates from 0.1 to 0.01:
    // lr = 0.01 + 0.09 * 0.5 * (1 + cos(pi * (step - 4) / 8)).
    let cases: [(u64, f64); 11] = [
        (1, 0.025),
        (2, 0.05),
        (3, 0.075),
        (4, 0.1),
        // cos(pi/8) = 0.92387953: 0.01 + 0.09 * 0.96193977
        (5, 0.096_574_579_3),
        // cos(pi/4) = 0.70710678: 0.01 + 0.09 * 0.85355339
        (6, 0.086_819_805_2),
        // cos(pi/2) = 0: halfway between 0.1 and 0.01
        (8, 0.055),
        // cos(3pi/4) = -0.70710678: 0.01 + 0.09 * 0.14644661
        (10, 0.023_180_194_8),
        (12, 0.01),
        (13, 0.01),
        (1000, 0.01),
    ];
    for (step, want) in cases {
        let got = s.lr_at(base, step) as f64;
        assert!(
            (got - want).abs() <= 1e-6 * want,
            "step {step}: got {got}, want {want}"
        );
    }
    // Decreasing after warm-up.
    let lrs: Vec<f32> = (4..=12).map(|k| s.lr_at(base, k)).collect();
    assert!(lrs.windows(2).all(|w| w[1] < w[0]), "{lrs:?}");
}

/// A tiny Elman tagger: 3 features, 8 hidden units, 3 classes; the tag of a step is the index
/// of its largest feature.
fn tagger() -> (NetworkConfig, Batch<f64>, Targets<f64>) {
    let cfg = NetworkConfig {
        input: InputEncoding::Dense { features: 3 },
        layers: vec![LayerConfig {
            cell: CellConfig::Elman {
                activation: Activation::Tanh,
            },
            hidden: 8,
            bidirectional: false,
            dropout: 0.0,
            recurrent: true,
        }],
        head: Some(HeadConfig {
            classes: 3,
            task: Task::Tagging { ignore_label: None },
        }),
    };
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let seq = SeqShape {
        time: 6,
        lengths: vec![6, 4, 5, 6],
    };
    let n = seq.time * seq.batch();
    let x: Vec<f64> = (0..n * 3).map(|_| rng.random_range(-1.0..1.0)).collect();
    let y: Vec<u32> = x
        .chunks_exact(3)
        .map(|f| {
            (0..3)
                .max_by(|&a, &b| f[a].total_cmp(&f[b]))
                .expect("3 features") as u32
        })
        .collect();
    (
        cfg,
        Batch {
            seq,
            inputs: Inputs::Dense(x),
        },
        Targets::Classes(y),
    )
}

#[test]
fn trainer_adam_lowers_the_loss() {
    let (cfg, batch, targets) = tagger();
    let model = Model::new(CpuBackend::<f64>::new(), cfg, 5).expect("valid");
    let config = TrainConfig {
        optimizer: OptimizerConfig::adam(),
        lr: 0.05,
        schedule: Schedule::Constant,
        clip: ClipConfig::default(),
    };
    let mut tr = Trainer::new(model, config, 1);
    let initial = tr.evaluate(&batch, &targets).expect("evaluate");
    assert!(initial > 0.5, "initial loss {initial}");
    let mut first = None;
    for k in 0..30 {
        let st = tr.step(&batch, &targets).expect("step");
        assert_eq!(st.lr, 0.05);
        assert!(st.grad_norm.is_finite() && st.grad_norm > 0.0);
        if k == 0 {
            first = Some(st.loss);
        }
    }
    assert_eq!(tr.steps_done(), 30);
    // No dropout: the first step's loss is the loss of the initial parameters.
    assert!((first.expect("ran") - initial).abs() <= 1e-12 * initial);
    let last = tr.evaluate(&batch, &targets).expect("evaluate");
    assert!(
        last < 0.1 * initial,
        "loss went from {initial} to {last} in 30 Adam steps"
    );
}

/// Through the Trainer: with plain SGD and `max_norm`, the update is exactly `lr` times the
/// clipped gradient, whose norm is `max_norm`; the reported norm is the unclipped one.
#[test]
fn trainer_clips_by_global_norm() {
    let (cfg, batch, targets) = tagger();
    let mut model = Model::new(CpuBackend::<f64>::new(), cfg, 5).expect("valid");
    // The unclipped gradient, computed by hand.
    model.forward(&batch, None, Mode::Eval).expect("forward");
    model.loss(&targets).expect("loss");
    model.zero_grads();
    model.backward(Wants::default()).expect("backward");
    let g = model.grads();
    let gnorm = g.iter().map(|v| v * v).sum::<f64>().sqrt();
    let max_norm = 0.01f32;
    assert!(gnorm > 10.0 * max_norm as f64, "gradient norm {gnorm}");
    let before = model.params();
    let lr = 0.5f32;
    let config = TrainConfig {
        optimizer: OptimizerConfig::Sgd {
            momentum: 0.0,
            nesterov: false,
            weight_decay: 0.0,
        },
        lr,
        schedule: Schedule::Constant,
        clip: ClipConfig {
            max_norm: Some(max_norm),
            max_value: None,
        },
    };
    let mut tr = Trainer::new(model, config, 1);
    let st = tr.step(&batch, &targets).expect("step");
    assert!((st.grad_norm - gnorm).abs() <= 1e-12 * gnorm);
    let after = tr.model.params();
    let delta: Vec<f64> = before
        .iter()
        .zip(&after)
        .map(|(b, a)| (b - a) / lr as f64)
        .collect();
    let dnorm = delta.iter().map(|v| v * v).sum::<f64>().sqrt();
    assert!(
        (dnorm - max_norm as f64).abs() <= 1e-9,
        "update norm / lr = {dnorm}, want {max_norm}"
    );
    // Same direction as the raw gradient.
    let scale = max_norm as f64 / gnorm;
    let scaled: Vec<f64> = g.iter().map(|v| v * scale).collect();
    assert!(rel_err(&delta, &scaled) <= 1e-9);
}
