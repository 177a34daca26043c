//! `wgrnn bench`: times training steps of a recurrent stack, in the units of the PyTorch
//! reference script (`shared/device/torch_rnn_bench.py`), so both engines' JSON lines compare
//! one to one.
//!
//! A configuration is a `torch.nn.LSTM/GRU/RNN(input, hidden, num_layers, bidirectional)` on
//! dense inputs `[seq, batch, input]`. wgrnn's timed training step is [`Trainer::step`]:
//! forward through the stack and a 1-output linear head, a mean-squared-error loss, backward
//! through everything, the gradient norm and an Adam update; the backend is synchronised
//! before the clock stops. (PyTorch's step is forward + `y.sum().backward()` with no head and
//! no optimizer, so wgrnn's step does slightly more work for the same FLOP count.)
//!
//! Where the adapter has timestamp queries, a few more steps are run with every dispatch
//! timed, giving a per-kernel table ([`BenchResult::kernel_table`]): time per step, share of
//! the step, and GFLOP/s and GB/s from the work each dispatch declares (gate products and
//! weight-gradient GEMMs count their multiply-adds, element-wise kernels their bytes).
//!
//! FLOPs are counted exactly as the reference counts them: the gate matrix products only,
//! `sum over layers of dirs * 2 * batch * seq * gates * hidden * (layer_input + hidden)` for the
//! forward pass, times 3 for a training step.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};

use crate::backend::wgpu::KernelTime;
use crate::backend::{Backend, Real, SeqShape};
use crate::config::{Activation, CellConfig, HeadConfig, InputEncoding, LayerConfig, Task};
use crate::model::{Batch, Inputs, Mode, Model, Targets};
use crate::optim::{ClipConfig, OptimizerConfig, Schedule, TrainConfig};
use crate::train::Trainer;
use crate::{CpuBackend, NetworkConfig, WgpuBackend};

/// The recurrent cell of a benchmark configuration (the reference script's `kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum RnnKind {
    /// `torch.nn.LSTM`: 4 gate blocks.
    Lstm,
    /// `torch.nn.GRU`: 3 gate blocks.
    Gru,
    /// `torch.nn.RNN` (tanh): 1 gate block.
    Rnn,
}

impl RnnKind {
    /// The name used in suite files and JSON (`lstm`, `gru`, `rnn`).
    pub fn name(self) -> &'static str {
        match self {
            RnnKind::Lstm => "lstm",
            RnnKind::Gru => "gru",
            RnnKind::Rnn => "rnn",
        }
    }

    /// Gate blocks per layer.
    pub fn gates(self) -> usize {
        match self {
            RnnKind::Lstm => 4,
            RnnKind::Gru => 3,
            RnnKind::Rnn => 1,
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "lstm" => Some(RnnKind::Lstm),
            "gru" => Some(RnnKind::Gru),
            "rnn" => Some(RnnKind::Rnn),
            _ => None,
        }
    }

    fn cell(self) -> CellConfig {
        match self {
            RnnKind::Lstm => CellConfig::lstm(false, None),
            RnnKind::Gru => CellConfig::Gru {
                variant: crate::config::GruVariant::Pytorch,
            },
            RnnKind::Rnn => CellConfig::Elman {
                activation: Activation::Tanh,
            },
        }
    }
}

/// One benchmark configuration (a row of a suite file).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BenchConfig {
    /// The suite's name for it (`flagship`, ...), if it came from a suite.
    pub name: Option<String>,
    /// The cell.
    pub kind: RnnKind,
    /// Stacked layers.
    pub layers: usize,
    /// Hidden size.
    pub hidden: usize,
    /// Input features.
    pub input: usize,
    /// Sequences per batch.
    pub batch: usize,
    /// Time steps.
    pub seq: usize,
    /// Bidirectional layers.
    pub bidirectional: bool,
}

impl BenchConfig {
    /// Checks that every size is at least 1.
    pub fn validate(&self) -> Result<()> {
        for (what, v) in [
            ("layers", self.layers),
            ("hidden", self.hidden),
            ("input", self.input),
            ("batch", self.batch),
            ("seq", self.seq),
        ] {
            if v == 0 {
                bail!("{what} must be at least 1");
            }
        }
        Ok(())
    }

    /// Forward FLOPs as the reference script counts them (gate matrix products only).
    pub fn forward_flops(&self) -> f64 {
        let dirs = if self.bidirectional { 2 } else { 1 };
        (0..self.layers)
            .map(|l| {
                let layer_in = if l == 0 {
                    self.input
                } else {
                    self.hidden * dirs
                };
                (dirs * 2 * self.batch * self.seq * self.kind.gates() * self.hidden) as f64
                    * (layer_in + self.hidden) as f64
            })
            .sum()
    }

    /// The benchmarked network: dense inputs, the stack, a 1-output regression head.
    pub fn network(&self) -> NetworkConfig {
        NetworkConfig {
            input: InputEncoding::Dense {
                features: self.input,
            },
            layers: (0..self.layers)
                .map(|_| LayerConfig {
                    cell: self.kind.cell(),
                    hidden: self.hidden,
                    bidirectional: self.bidirectional,
                    dropout: 0.0,
                    recurrent: true,
                })
                .collect(),
            head: Some(HeadConfig {
                classes: 1,
                task: Task::Regression,
            }),
        }
    }

    /// `lstm 4x1024 in 1024, batch 64, seq 100` and the suite name, for progress output.
    pub fn label(&self) -> String {
        format!(
            "{}{} {}x{} in {}, batch {}, seq {}{}",
            self.name
                .as_ref()
                .map_or(String::new(), |n| format!("{n}: ")),
            self.kind.name(),
            self.layers,
            self.hidden,
            self.input,
            self.batch,
            self.seq,
            if self.bidirectional { ", bi" } else { "" }
        )
    }
}

/// Parses a suite file: `name kind layers hidden input batch seq uni|bi` per line,
/// whitespace-separated; blank lines and lines starting with `#` are skipped.
pub fn parse_suite(text: &str) -> Result<Vec<BenchConfig>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.is_empty() || fields[0].starts_with('#') {
            continue;
        }
        let at = || format!("suite line {}: `{}`", i + 1, line.trim());
        if fields.len() != 8 {
            bail!(
                "{}: expected 8 fields (name kind layers hidden input batch seq uni|bi), found {}",
                at(),
                fields.len()
            );
        }
        let kind = RnnKind::parse(fields[1])
            .with_context(|| format!("{}: kind must be lstm, gru or rnn", at()))?;
        let num = |k: usize, what: &str| -> Result<usize> {
            fields[k]
                .parse::<usize>()
                .with_context(|| format!("{}: {what} `{}` is not a whole number", at(), fields[k]))
        };
        let bidirectional = match fields[7] {
            "uni" => false,
            "bi" => true,
            other => bail!("{}: direction must be uni or bi, found `{other}`", at()),
        };
        let cfg = BenchConfig {
            name: Some(fields[0].to_string()),
            kind,
            layers: num(2, "layers")?,
            hidden: num(3, "hidden")?,
            input: num(4, "input")?,
            batch: num(5, "batch")?,
            seq: num(6, "seq")?,
            bidirectional,
        };
        cfg.validate().with_context(at)?;
        out.push(cfg);
    }
    if out.is_empty() {
        bail!("the suite has no configurations");
    }
    Ok(out)
}

/// What a benchmark needs from a backend beyond [`Backend`]: waiting for queued work, and
/// counters where the device has them.
pub trait Timing {
    /// Waits until all queued work is done (no-op where operations are synchronous).
    fn sync(&self) {}
    /// Kernel dispatches recorded so far, where counted.
    fn dispatch_count(&self) -> Option<u64> {
        None
    }
    /// Bytes held in device buffers, where counted.
    fn bytes_held(&self) -> Option<u64> {
        None
    }
    /// The most bytes held since the last [`Timing::reset_peak`], where counted.
    fn peak_bytes(&self) -> Option<u64> {
        None
    }
    /// Starts a new peak measurement.
    fn reset_peak(&self) {}
    /// Command submissions so far, where counted.
    fn submission_count(&self) -> Option<u64> {
        None
    }
    /// Bytes of buffer clears recorded so far, where counted.
    fn cleared_bytes(&self) -> Option<u64> {
        None
    }
    /// Starts or stops timing every kernel; whether timing is on.
    fn profile(&self, _on: bool) -> bool {
        false
    }
    /// Per-kernel totals since profiling started.
    fn kernel_times(&self) -> Vec<KernelTime> {
        Vec::new()
    }
    /// The matrix products' tiles measured so far, one line per shape: each tile's time,
    /// the fastest (the one taken) first.
    fn measured_tiles(&self) -> Vec<String> {
        Vec::new()
    }
    /// The steps' tiles and K slices measured so far, one line per step shape and pass:
    /// each layout's time a step, the fastest first.
    fn measured_slices(&self) -> Vec<String> {
        Vec::new()
    }
    /// The layer pipeline's choices measured so far, one line per stack shape and pass:
    /// each chunk count's time, the fastest first.
    fn measured_pipelines(&self) -> Vec<String> {
        Vec::new()
    }
    /// Whether a measurement of the backend's choices is under way over its passes (the
    /// layer pipeline's), which the steps after warming up should not include.
    fn measuring(&self) -> bool {
        false
    }
}

impl Timing for WgpuBackend {
    fn sync(&self) {
        WgpuBackend::sync(self);
    }
    fn dispatch_count(&self) -> Option<u64> {
        Some(self.gpu().dispatch_count())
    }
    fn bytes_held(&self) -> Option<u64> {
        Some(WgpuBackend::bytes_held(self))
    }
    fn peak_bytes(&self) -> Option<u64> {
        Some(self.gpu().peak_bytes())
    }
    fn reset_peak(&self) {
        self.gpu().reset_peak();
    }
    fn submission_count(&self) -> Option<u64> {
        Some(self.gpu().submission_count())
    }
    fn cleared_bytes(&self) -> Option<u64> {
        Some(self.gpu().cleared_bytes())
    }
    fn profile(&self, on: bool) -> bool {
        self.gpu().profile(on)
    }
    fn kernel_times(&self) -> Vec<KernelTime> {
        self.gpu().kernel_times()
    }
    fn measured_tiles(&self) -> Vec<String> {
        self.gpu().races().iter().map(|r| r.label()).collect()
    }
    fn measured_slices(&self) -> Vec<String> {
        self.slice_races().iter().map(|r| r.label()).collect()
    }
    fn measured_pipelines(&self) -> Vec<String> {
        self.pipeline_races().iter().map(|r| r.label()).collect()
    }
    fn measuring(&self) -> bool {
        self.measuring_pipeline()
    }
}

impl<T: Real> Timing for CpuBackend<T> {}

/// A device's peaks, for the share of the roofline each kernel reaches: its time at the
/// roofline (the larger of its declared FLOPs at `tflops` and its declared bytes at `gbps`)
/// over its measured time. H100 SXM in fp32 without tensor cores: 67 TFLOP/s, 3350 GB/s.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Roofline {
    /// Peak arithmetic rate, TFLOP/s.
    pub tflops: f64,
    /// Peak memory bandwidth, GB/s.
    pub gbps: f64,
}

impl Roofline {
    /// Parses `TFLOPS,GBPS` (both positive).
    pub fn parse(s: &str) -> Result<Roofline, String> {
        let bad = || format!("expected TFLOPS,GBPS (e.g. 67,3350), got `{s}`");
        let (f, b) = s.split_once(',').ok_or_else(bad)?;
        let (tflops, gbps): (f64, f64) = (
            f.trim().parse().map_err(|_| bad())?,
            b.trim().parse().map_err(|_| bad())?,
        );
        if !(tflops > 0.0 && gbps > 0.0 && tflops.is_finite() && gbps.is_finite()) {
            return Err(bad());
        }
        Ok(Roofline { tflops, gbps })
    }

    /// The fraction of the roofline kernel `k` reaches, `None` where it declares no work or
    /// took no time.
    pub fn share(&self, k: &KernelTime) -> Option<f64> {
        self.share_of(k.flops, k.bytes, k.seconds)
    }

    /// The fraction of the roofline that `flops` and `bytes` of work done in `seconds` reach.
    pub fn share_of(&self, flops: f64, bytes: f64, seconds: f64) -> Option<f64> {
        let ideal = (flops / (self.tflops * 1e12)).max(bytes / (self.gbps * 1e9));
        (ideal > 0.0 && seconds > 0.0).then(|| ideal / seconds)
    }
}

/// Timings of one configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchResult {
    /// The configuration.
    pub config: BenchConfig,
    /// The backend's description.
    pub device: String,
    /// Median forward pass (training-mode forward: caches kept), milliseconds.
    pub forward_ms: f64,
    /// Median training step, milliseconds.
    pub train_step_ms: f64,
    /// Median host time of a training step, milliseconds: recording its kernels and
    /// submitting them, before the device's work is waited for. The step's wall time holds
    /// it in full when the device waits for the submission, so it bounds what a step can
    /// take on any GPU; `record_ms` in JSON.
    pub record_ms: f64,
    /// `3 * forward_flops / train_step` in TFLOP/s.
    pub train_tflops: f64,
    /// `batch * seq` per second of training.
    pub tokens_per_s: f64,
    /// The most device memory a training step held on top of parameters, gradients and
    /// optimizer state (bytes: activations, caches, temporaries, buffers kept for reuse),
    /// where the backend counts it; `peak_mem_mb` in JSON.
    pub workspace_bytes: Option<u64>,
    /// All device memory the model and its optimizer hold (bytes), where counted.
    pub total_bytes: Option<u64>,
    /// Kernel dispatches per training step, where counted.
    pub dispatches_per_step: Option<f64>,
    /// Command submissions per training step, where counted.
    pub submissions_per_step: Option<f64>,
    /// Bytes of buffer clears per training step, where counted: memory traffic outside
    /// the kernels (`cleared_mb_per_step` in JSON).
    pub cleared_per_step: Option<f64>,
    /// Per-kernel GPU time of one training step (totals over the profiled steps divided by
    /// their number), longest first; empty without timestamp queries.
    pub kernels: Vec<KernelTime>,
    /// Timed repetitions behind each median.
    pub reps: usize,
    /// The kernel choices the backend ran with (e.g. `steps=auto units=auto gemm=auto checked`), so
    /// lines from runs that compare kernels can be told apart.
    pub variant: String,
    /// The layout of the step tiles the steps ran in (f32: width, K slices, chunks, grid;
    /// tensor-core: width, K slices, grid), where they ran in tiles; `step_tiles` in JSON.
    pub step_tiles: Option<String>,
    /// The matrix products' tiles measured for the run (`gemm_measure`), one line per
    /// shape with each tile's time, the fastest first; `gemm_measured` in JSON.
    pub measured_tiles: Vec<String>,
    /// The steps' tiles and K slices measured for the run (`slices_measure`), one line per
    /// step shape and pass with each layout's time a step; `slices_measured` in JSON.
    pub measured_slices: Vec<String>,
    /// The layer pipeline's choices measured for the run (`pipeline_measure`), one line
    /// per stack shape and pass; `pipeline_measured` in JSON.
    pub measured_pipelines: Vec<String>,
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 20) as f64
}

fn round(v: f64, digits: i32) -> f64 {
    let s = 10f64.powi(digits);
    (v * s).round() / s
}

impl BenchResult {
    /// The JSON line, with the reference script's field names (plus `device`, `name`,
    /// `dispatches_per_step`, `peak_mem_bytes`, `total_mem_bytes`, `total_mem_mb`, `reps`).
    pub fn to_json(&self) -> serde_json::Value {
        let c = &self.config;
        serde_json::json!({
            "engine": "wgrnn",
            "name": c.name,
            "device": self.device,
            "kind": c.kind.name(),
            "layers": c.layers,
            "hidden": c.hidden,
            "input": c.input,
            "batch": c.batch,
            "seq": c.seq,
            "bidirectional": c.bidirectional,
            "tf32": false,
            "forward_ms": round(self.forward_ms, 3),
            "train_step_ms": round(self.train_step_ms, 3),
            "record_ms": round(self.record_ms, 3),
            "train_tflops": round(self.train_tflops, 2),
            "tokens_per_s": self.tokens_per_s.round() as u64,
            "peak_mem_mb": self.workspace_bytes.map(|b| round(mib(b), 3)),
            "peak_mem_bytes": self.workspace_bytes,
            "total_mem_mb": self.total_bytes.map(|b| round(mib(b), 3)),
            "total_mem_bytes": self.total_bytes,
            "dispatches_per_step": self.dispatches_per_step.map(|d| round(d, 1)),
            "submissions_per_step": self.submissions_per_step.map(|d| round(d, 2)),
            "cleared_mb_per_step": self.cleared_per_step.map(|b| round(b / (1u64 << 20) as f64, 3)),
            "reps": self.reps,
            "variant": self.variant,
            "step_tiles": self.step_tiles,
            "gemm_measured": self.measured_tiles,
            "slices_measured": self.measured_slices,
            "pipeline_measured": self.measured_pipelines,
            "kernels": self.kernels.iter().map(|k| serde_json::json!({
                "kernel": k.label,
                "calls": k.calls,
                "ms": round(k.seconds * 1e3, 4),
                "gflops": round(k.flops / 1e9, 4),
                "gbytes": round(k.bytes / 1e9, 4),
            })).collect::<Vec<_>>(),
        })
    }

    /// The per-kernel table of one training step: calls, time, share of the summed kernel
    /// time, GFLOP/s and GB/s (`-` where a kernel declares no work), and with `roof` each
    /// kernel's share of the roofline. Empty without timestamp queries.
    pub fn kernel_table(&self, roof: Option<Roofline>) -> String {
        if self.kernels.is_empty() {
            return String::new();
        }
        let total: f64 = self.kernels.iter().map(|k| k.seconds).sum();
        // The name column fits the longest name (the tensor-core builds' are long).
        let w = self
            .kernels
            .iter()
            .map(|k| k.label.len())
            .max()
            .unwrap_or(0)
            .max(32);
        let mut s = format!(
            "  {:<w$} {:>7} {:>10} {:>6} {:>10} {:>9}{}\n",
            "kernel",
            "calls",
            "ms/step",
            "share",
            "GFLOP/s",
            "GB/s",
            if roof.is_some() { "  roofline" } else { "" }
        );
        let rate = |v: f64, t: f64| {
            if v > 0.0 && t > 0.0 {
                format!("{:.1}", v / t / 1e9)
            } else {
                "-".to_string()
            }
        };
        for k in &self.kernels {
            let roofline = match roof.and_then(|r| r.share(k)) {
                Some(share) => format!("  {:>7.1}%", 100.0 * share),
                None if roof.is_some() => format!("  {:>8}", "-"),
                None => String::new(),
            };
            s.push_str(&format!(
                "  {:<w$} {:>7} {:>10.4} {:>5.1}% {:>10} {:>9}{roofline}\n",
                k.label,
                k.calls,
                k.seconds * 1e3,
                100.0 * k.seconds / total.max(f64::MIN_POSITIVE),
                rate(k.flops, k.seconds),
                rate(k.bytes, k.seconds),
            ));
        }
        s.push_str(&format!(
            "  {:<w$} {:>7} {:>10.4} {:>5.1}%\n",
            "all kernels",
            self.kernels.iter().map(|k| k.calls).sum::<u64>(),
            total * 1e3,
            100.0
        ));
        s
    }

    /// One human-readable line.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{}: forward {:.3} ms, train step {:.3} ms (host {:.3} ms), {:.4} TFLOP/s, {:.0} tokens/s",
            self.config.label(),
            self.forward_ms,
            self.train_step_ms,
            self.record_ms,
            self.train_tflops,
            self.tokens_per_s
        );
        if let Some(d) = self.dispatches_per_step {
            s.push_str(&format!(", {d:.0} dispatches/step"));
        }
        if let Some(d) = self.submissions_per_step {
            s.push_str(&format!(", {d:.2} submissions/step"));
        }
        if let Some(b) = self.cleared_per_step {
            s.push_str(&format!(", {:.3} MiB cleared/step", mib(b as u64)));
        }
        if let (Some(p), Some(t)) = (self.workspace_bytes, self.total_bytes) {
            s.push_str(&format!(
                ", workspace {:.3} MiB of {:.3} MiB held",
                mib(p),
                mib(t)
            ));
        }
        if let Some(tiles) = &self.step_tiles {
            s.push_str(&format!("; step tiles: {tiles}"));
        }
        for m in &self.measured_tiles {
            s.push_str(&format!("\n  product tiles measured, {m}"));
        }
        for m in &self.measured_slices {
            s.push_str(&format!("\n  step tiles measured, {m}"));
        }
        for m in &self.measured_pipelines {
            s.push_str(&format!("\n  layer pipeline measured, {m}"));
        }
        s
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Most untimed steps a benchmark adds to its warm-up while the backend measures its
/// choices: every candidate chunk count's passes, forward and backward
/// (`pipeline_measure::CANDIDATES` x (1 + `ROUNDS`)), with room to spare.
const MAX_MEASURING_STEPS: usize = 16;

/// Times `config` on `backend`: `warmup` untimed training steps (they also build pipelines
/// and buffers, and more while the backend measures its choices), then the median of `reps` forward passes and of `reps` training steps, then
/// (where the backend can time kernels) `profile_steps` steps with every kernel timed.
pub fn run<B: Backend + Timing>(
    backend: B,
    config: &BenchConfig,
    warmup: usize,
    reps: usize,
    profile_steps: usize,
) -> Result<BenchResult> {
    config.validate()?;
    if reps == 0 {
        bail!("--reps must be at least 1");
    }
    let device = backend.describe();
    let model = Model::new(backend, config.network(), 0)?;
    let train_cfg = TrainConfig {
        optimizer: OptimizerConfig::adam(),
        lr: 1e-3,
        schedule: Schedule::Constant,
        clip: ClipConfig::default(),
    };
    let mut trainer = Trainer::new(model, train_cfg, 0);
    trainer.model.backend().sync();
    let held_before = trainer.model.backend().bytes_held();

    let (nt, nb) = (config.seq, config.batch);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut draw = |n: usize| -> Vec<B::Scalar> {
        (0..n)
            .map(|_| B::Scalar::of(rng.random_range(-1f32..=1f32) as f64))
            .collect()
    };
    let batch = Batch {
        seq: SeqShape {
            time: nt,
            lengths: vec![nt; nb],
        },
        inputs: Inputs::Dense(draw(nt * nb * config.input)),
    };
    let targets = Targets::Values(draw(nt * nb));

    for k in 0..warmup {
        trainer
            .step(&batch, &targets)
            .with_context(|| format!("warm-up step {}", k + 1))?;
    }
    // Where the warm-up steps began measuring the layer pipeline, more untimed steps finish
    // it, so the timed ones run what it chose.
    let mut more = 0;
    while warmup > 0 && trainer.model.backend().measuring() && more < MAX_MEASURING_STEPS {
        more += 1;
        trainer
            .step(&batch, &targets)
            .with_context(|| format!("warm-up step {} (measuring)", warmup + more))?;
    }
    trainer.model.backend().sync();

    let mut forward = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t0 = Instant::now();
        trainer.model.forward(&batch, None, Mode::Eval)?;
        trainer.model.backend().sync();
        forward.push(t0.elapsed().as_secs_f64() * 1e3);
    }

    let dispatch_before = trainer.model.backend().dispatch_count();
    let submissions_before = trainer.model.backend().submission_count();
    let cleared_before = trainer.model.backend().cleared_bytes();
    trainer.model.backend().reset_peak();
    let mut train = Vec::with_capacity(reps);
    let mut record = Vec::with_capacity(reps);
    for k in 0..reps {
        let t0 = Instant::now();
        trainer
            .queue_step(&batch, &targets)
            .with_context(|| format!("timed step {}", k + 1))?;
        record.push(t0.elapsed().as_secs_f64() * 1e3);
        trainer
            .finish_stats()
            .with_context(|| format!("timed step {}", k + 1))?;
        trainer.model.backend().sync();
        train.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    let be = trainer.model.backend();
    let dispatches_per_step = match (dispatch_before, be.dispatch_count()) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / reps as f64),
        _ => None,
    };
    let submissions_per_step = match (submissions_before, be.submission_count()) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / reps as f64),
        _ => None,
    };
    let cleared_per_step = match (cleared_before, be.cleared_bytes()) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / reps as f64),
        _ => None,
    };
    let held_after = be.bytes_held();
    let peak = be.peak_bytes();

    let mut kernels = Vec::new();
    if profile_steps > 0 && trainer.model.backend().profile(true) {
        for k in 0..profile_steps {
            trainer
                .step(&batch, &targets)
                .with_context(|| format!("profiled step {}", k + 1))?;
        }
        let be = trainer.model.backend();
        kernels = be.kernel_times();
        be.profile(false);
        for k in &mut kernels {
            let n = profile_steps as f64;
            k.calls /= profile_steps as u64;
            k.seconds /= n;
            k.flops /= n;
            k.bytes /= n;
        }
    }

    let forward_ms = median(forward);
    let train_step_ms = median(train);
    Ok(BenchResult {
        config: config.clone(),
        device,
        forward_ms,
        train_step_ms,
        record_ms: median(record),
        train_tflops: 3.0 * config.forward_flops() / train_step_ms / 1e9,
        tokens_per_s: (nb * nt) as f64 / (train_step_ms / 1e3),
        workspace_bytes: match (held_before, peak) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a)),
            _ => None,
        },
        total_bytes: held_after,
        dispatches_per_step,
        submissions_per_step,
        cleared_per_step,
        kernels,
        reps,
        variant: String::new(),
        step_tiles: None,
        measured_tiles: trainer.model.backend().measured_tiles(),
        measured_slices: trainer.model.backend().measured_slices(),
        measured_pipelines: trainer.model.backend().measured_pipelines(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roofline_share_is_the_bound_time_over_the_measured_time() {
        let r = Roofline::parse("10, 1000").expect("valid");
        let k = |flops: f64, bytes: f64, seconds: f64| KernelTime {
            label: "k".into(),
            calls: 1,
            seconds,
            flops,
            bytes,
        };
        // Compute-bound: 1e10 FLOPs at 10 TFLOP/s take 1 ms; measured 4 ms.
        let s = r.share(&k(1e10, 1e6, 4e-3)).expect("declared");
        assert!((s - 0.25).abs() < 1e-12, "{s}");
        // Memory-bound: 2e9 bytes at 1000 GB/s take 2 ms; measured 2.5 ms.
        let s = r.share(&k(1e6, 2e9, 2.5e-3)).expect("declared");
        assert!((s - 0.8).abs() < 1e-12, "{s}");
        assert_eq!(r.share(&k(0.0, 0.0, 1e-3)), None);
        for bad in ["10", "0,5", "a,b", "5,-1", "inf,3"] {
            assert!(Roofline::parse(bad).is_err(), "{bad}");
        }
    }

    fn cfg(kind: RnnKind, layers: usize, bi: bool) -> BenchConfig {
        BenchConfig {
            name: None,
            kind,
            layers,
            hidden: 1024,
            input: 1024,
            batch: 64,
            seq: 100,
            bidirectional: bi,
        }
    }

    #[test]
    fn flops_match_the_reference_formula() {
        // flagship: 4 layers * 2 * 64 * 100 * 4 * 1024 * 2048
        let f = cfg(RnnKind::Lstm, 4, false).forward_flops();
        assert_eq!(f, 4.0 * 2.0 * 64.0 * 100.0 * 4.0 * 1024.0 * 2048.0);
        // bilstm, 2 layers, 512: layer 1 input is 2 * hidden
        let mut b = cfg(RnnKind::Lstm, 2, true);
        b.hidden = 512;
        b.input = 512;
        let want = 2.0 * 2.0 * 64.0 * 100.0 * 4.0 * 512.0 * (512.0 + 512.0)
            + 2.0 * 2.0 * 64.0 * 100.0 * 4.0 * 512.0 * (1024.0 + 512.0);
        assert_eq!(b.forward_flops(), want);
        assert_eq!(
            cfg(RnnKind::Rnn, 1, false).forward_flops() * 3.0,
            cfg(RnnKind::Gru, 1, false).forward_flops()
        );
    }

    #[test]
    fn parses_the_standard_suite() {
        let text = "# comment\nsmall     lstm 1 128  128  32  50  uni\n\nbilstm lstm 2 512 512 64 100 bi\ntanh4 rnn 4 8 8 2 3 uni\n";
        let s = parse_suite(text).unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].name.as_deref(), Some("small"));
        assert!(s[1].bidirectional);
        assert_eq!(s[2].kind, RnnKind::Rnn);
        for bad in [
            "x lstm 1 2 3 4 5",
            "x lstn 1 2 3 4 5 uni",
            "x lstm 1 2 3 4 five uni",
            "x lstm 1 2 3 4 5 both",
            "x lstm 0 2 3 4 5 uni",
            "# nothing",
        ] {
            assert!(parse_suite(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cpu_bench_runs() {
        let c = BenchConfig {
            name: Some("t".into()),
            kind: RnnKind::Gru,
            layers: 2,
            hidden: 4,
            input: 3,
            batch: 2,
            seq: 3,
            bidirectional: true,
        };
        let r = run(CpuBackend::<f32>::new(), &c, 1, 3, 2).unwrap();
        assert!(r.kernels.is_empty() && r.kernel_table(None).is_empty());
        assert!(r.forward_ms > 0.0 && r.train_step_ms > 0.0 && r.tokens_per_s > 0.0);
        assert_eq!(r.workspace_bytes, None);
        let j = r.to_json();
        assert_eq!(j["engine"], "wgrnn");
        assert_eq!(j["kind"], "gru");
        assert_eq!(j["bidirectional"], true);
        assert!(j["peak_mem_mb"].is_null());
    }
}
