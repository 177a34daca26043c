//! Criterion benchmarks of the GPU backend: a forward pass through the stack and a whole
//! training step (forward, loss, backward, Adam), at a couple of small sizes.
//!
//! `cargo bench --bench kernels`; skipped with a message when no adapter opens. For sizes that
//! compare with PyTorch, use `wgrnn bench` instead.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};

use wgrnn::bench::{BenchConfig, RnnKind};
use wgrnn::optim::{ClipConfig, OptimizerConfig, Schedule, TrainConfig};
use wgrnn::train::Trainer;
use wgrnn::{Batch, Inputs, Mode, Model, SeqShape, Targets, WgpuBackend};

/// Small configurations: (kind, hidden, batch, seq).
const SIZES: &[(RnnKind, usize, usize, usize)] =
    &[(RnnKind::Lstm, 32, 4, 16), (RnnKind::Gru, 64, 8, 32)];

fn setup(
    kind: RnnKind,
    hidden: usize,
    batch: usize,
    seq: usize,
) -> Option<(Trainer<WgpuBackend>, Batch<f32>, Targets<f32>)> {
    let be = match WgpuBackend::new(None) {
        Ok(be) => be,
        Err(e) => {
            eprintln!("skipping the GPU benchmarks: {e}");
            return None;
        }
    };
    let cfg = BenchConfig {
        name: None,
        kind,
        layers: 1,
        hidden,
        input: hidden,
        batch,
        seq,
        bidirectional: false,
    };
    let model = Model::new(be, cfg.network(), 0).expect("a valid benchmark network");
    let trainer = Trainer::new(
        model,
        TrainConfig {
            optimizer: OptimizerConfig::adam(),
            lr: 1e-3,
            schedule: Schedule::Constant,
            clip: ClipConfig::default(),
        },
        0,
    );
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let mut draw =
        |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random_range(-1.0..=1.0)).collect() };
    let x = Batch {
        seq: SeqShape {
            time: seq,
            lengths: vec![seq; batch],
        },
        inputs: Inputs::Dense(draw(seq * batch * hidden)),
    };
    let y = Targets::Values(draw(seq * batch));
    Some((trainer, x, y))
}

fn gpu(c: &mut Criterion) {
    let mut group = c.benchmark_group("gpu");
    group.sample_size(10);
    for &(kind, hidden, batch, seq) in SIZES {
        let Some((mut trainer, x, y)) = setup(kind, hidden, batch, seq) else {
            return;
        };
        let id = format!("{}-h{hidden}-b{batch}-t{seq}", kind.name());
        group.throughput(Throughput::Elements((batch * seq) as u64));
        // Warm up: pipelines, workspace.
        trainer.step(&x, &y).expect("a training step");
        group.bench_function(BenchmarkId::new("forward", &id), |b| {
            b.iter(|| {
                trainer
                    .model
                    .forward(&x, None, Mode::Eval)
                    .expect("a forward pass");
                trainer.model.backend().sync();
            })
        });
        group.bench_function(BenchmarkId::new("train_step", &id), |b| {
            b.iter(|| {
                trainer.step(&x, &y).expect("a training step");
                trainer.model.backend().sync();
            })
        });
    }
    group.finish();
}

criterion_group!(benches, gpu);
criterion_main!(benches);
