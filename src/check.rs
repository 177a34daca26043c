//! `wgrnn check`: runs one network on two backends with identical parameters and data and
//! compares every tensor that matters.
//!
//! The reference is normally the f32 CPU backend and the candidate the wgpu backend; both are
//! generic [`Backend`]s, so any pair can be compared (the f64 CPU backend as a candidate shows
//! how much of a difference is plain f32 rounding). What is compared, in order:
//!
//! 1. forward (training mode, random initial states): the model's outputs, each layer's final
//!    states and the loss;
//! 2. backward: every named parameter gradient, the input gradient and each layer's
//!    initial-state gradients;
//! 3. `steps` Adam updates through [`Trainer`]: the loss of each step and every parameter after
//!    the last one.
//!
//! A tensor passes when `max|a - b| <= tol * max(1, max|b|)` (b = reference), i.e. when either
//! its max absolute error or its max relative error (`max|a - b| / max|b|`) is within the
//! tolerance. NaN where the other side is not NaN always fails.

use anyhow::{Context, Result, bail};
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};

use crate::backend::{Backend, Real, SeqShape};
use crate::bench::Timing;
use crate::config::{
    Activation, CellConfig, GruVariant, HeadConfig, InputEncoding, JordanFeedback, LayerConfig,
    NetworkConfig, Task,
};
use crate::model::{Batch, Inputs, LayerState, Mode, Model, Targets, Wants};
use crate::optim::{ClipConfig, OptimizerConfig, OptimizerStep, Schedule, TrainConfig};
use crate::train::Trainer;

/// Default tolerance of forward values (outputs, final states, the loss).
pub const FORWARD_TOLERANCE: f64 = 1e-5;
/// Default tolerance of gradients, step losses and updated parameters.
pub const GRADIENT_TOLERANCE: f64 = 1e-4;
/// The fraction of the learning rate per optimizer step that updated parameters may differ
/// by at least (see `run_check`).
pub const ADAM_STEP_FRACTION: f64 = 0.5;

/// The recurrent cell of a network built from command-line flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum CheckCell {
    /// LSTM (PyTorch equations; `--peephole`, `--proj` apply).
    Lstm,
    /// GRU (`--gru-variant` applies).
    Gru,
    /// Elman with tanh (`torch.nn.RNN`).
    RnnTanh,
    /// Elman with ReLU (`torch.nn.RNN(nonlinearity="relu")`).
    RnnRelu,
    /// Elman without a nonlinearity.
    ElmanLinear,
    /// Jordan (tanh, softmax feedback) as the top layer; lower layers are Elman tanh.
    Jordan,
}

/// Which GRU equations a flag-built network uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum CheckGruVariant {
    /// PyTorch / cuDNN: the reset gate multiplies `W_hn h + b_hn`.
    Pytorch,
    /// Cho et al. 2014: the reset gate multiplies `h` before `W_hn`.
    ResetBefore,
}

/// The head (and so the loss) of a flag-built network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum CheckTask {
    /// Per-step softmax cross-entropy against random class ids.
    Tagging,
    /// Per-step mean squared error against random float targets.
    Regression,
    /// One class per sequence from the last step's output.
    Classification,
    /// No head: the loss is `sum(outputs * G)` for a fixed random `G`.
    None,
}

/// A network described by command-line flags (everything except the batch shape).
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkFlags {
    /// The cell.
    pub cell: CheckCell,
    /// LSTM peephole connections.
    pub peephole: bool,
    /// LSTM projection size.
    pub proj: Option<usize>,
    /// GRU equations.
    pub gru_variant: CheckGruVariant,
    /// Number of stacked layers.
    pub layers: usize,
    /// Hidden size of every layer.
    pub hidden: usize,
    /// Dense input features per step.
    pub input: usize,
    /// Every layer bidirectional.
    pub bidirectional: bool,
    /// The head and its loss.
    pub task: CheckTask,
    /// Classes (or regression outputs) of the head.
    pub classes: usize,
}

impl NetworkFlags {
    /// The network these flags describe (validated).
    pub fn network(&self) -> Result<NetworkConfig> {
        if self.layers == 0 {
            bail!("--layers must be at least 1");
        }
        if self.peephole && self.cell != CheckCell::Lstm {
            bail!("--peephole applies to --cell lstm only");
        }
        if self.proj.is_some() && self.cell != CheckCell::Lstm {
            bail!("--proj applies to --cell lstm only");
        }
        let elman = |activation| CellConfig::Elman { activation };
        let top_cell = match self.cell {
            CheckCell::Lstm => CellConfig::lstm(self.peephole, self.proj),
            CheckCell::Gru => CellConfig::Gru {
                variant: match self.gru_variant {
                    CheckGruVariant::Pytorch => GruVariant::Pytorch,
                    CheckGruVariant::ResetBefore => GruVariant::ResetBefore,
                },
            },
            CheckCell::RnnTanh => elman(Activation::Tanh),
            CheckCell::RnnRelu => elman(Activation::Relu),
            CheckCell::ElmanLinear => elman(Activation::Linear),
            CheckCell::Jordan => CellConfig::Jordan {
                activation: Activation::Tanh,
                feedback: JordanFeedback::Softmax,
            },
        };
        let lower_cell = match self.cell {
            CheckCell::Jordan => elman(Activation::Tanh),
            _ => top_cell.clone(),
        };
        let layers = (0..self.layers)
            .map(|k| LayerConfig {
                cell: if k + 1 == self.layers {
                    top_cell.clone()
                } else {
                    lower_cell.clone()
                },
                hidden: self.hidden,
                bidirectional: self.bidirectional,
                dropout: 0.0,
                recurrent: true,
            })
            .collect();
        let head = match self.task {
            CheckTask::Tagging => Some(Task::Tagging { ignore_label: None }),
            CheckTask::Regression => Some(Task::Regression),
            CheckTask::Classification => Some(Task::Classification {
                pooling: crate::config::Pooling::Last,
            }),
            CheckTask::None => None,
        }
        .map(|task| HeadConfig {
            classes: self.classes,
            task,
        });
        let cfg = NetworkConfig {
            input: InputEncoding::Dense {
                features: self.input,
            },
            layers,
            head,
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

/// Parses `7,1,4` into sequence lengths.
pub fn parse_lengths(text: &str) -> Result<Vec<usize>> {
    text.split(',')
        .map(|s| {
            s.trim().parse::<usize>().with_context(|| {
                format!(
                    "--lengths: `{}` is not a whole number (expected e.g. 7,1,4)",
                    s.trim()
                )
            })
        })
        .collect()
}

/// The batch shape from `--seq`, `--batch` and `--lengths`: lengths default to `T, T-1, ...`
/// (at least 1, so padding is exercised), `T` defaults to the longest length (else 6) and the
/// batch to the number of lengths (else 3).
pub fn seq_shape(
    seq: Option<usize>,
    batch: Option<usize>,
    lengths: Option<Vec<usize>>,
) -> Result<SeqShape> {
    if seq == Some(0) {
        bail!("--seq must be at least 1");
    }
    if batch == Some(0) {
        bail!("--batch must be at least 1");
    }
    let shape = match lengths {
        Some(lengths) => {
            if let Some(b) = batch
                && b != lengths.len()
            {
                bail!(
                    "--batch {b} does not match the {} lengths given with --lengths",
                    lengths.len()
                );
            }
            let time = seq.unwrap_or_else(|| lengths.iter().copied().max().unwrap_or(1));
            for (i, &l) in lengths.iter().enumerate() {
                if l == 0 {
                    bail!("--lengths: sequence {i} has length 0; lengths must be in 1..={time}");
                }
                if l > time {
                    bail!(
                        "--lengths: sequence {i} has length {l}, longer than --seq {time}; \
                         lengths must be in 1..={time}"
                    );
                }
            }
            SeqShape { time, lengths }
        }
        None => {
            let time = seq.unwrap_or(6);
            let b = batch.unwrap_or(3);
            SeqShape {
                time,
                lengths: (0..b)
                    .map(|i| time.saturating_sub(i % time).max(1))
                    .collect(),
            }
        }
    };
    Ok(shape)
}

/// Tolerances of the comparison.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerances {
    /// Outputs, final states and the loss.
    pub forward: f64,
    /// Gradients.
    pub gradient: f64,
    /// Step losses and parameters after the optimizer steps.
    pub update: f64,
}

impl Tolerances {
    /// For a GPU that stores its layer caches in f16 (`--precision f16`): each stored record
    /// carries an f16 rounding (2^-11), about 8 of which the forward and gradient bounds
    /// allow. Adam moves every parameter by about lr whatever its gradient's size, so an
    /// element whose gradient is near zero can step the other way under that rounding: the
    /// updated parameters get a bound of a few lr-sized steps (3e-2 at the default lr 0.01).
    pub const F16_CACHES: Tolerances = Tolerances {
        forward: 4e-3,
        gradient: 5e-3,
        update: 3e-2,
    };
    /// For a GPU whose large matrix products run on the tensor cores (`--gemm tensor`, or
    /// `--precision f16` on an adapter with them): every operand of those products is rounded
    /// to f16 (10-bit mantissa, as tf32), about 2^-11 relative per term of each sum, which
    /// the same bounds as [`Tolerances::F16_CACHES`] allow for. Measured (BENCHMARKS.md, seven
    /// cells, tensor products with and without f16 caches): forward 5.9e-4, gradients 1.8e-3
    /// at most. A wrong kernel (a transposed or misplaced block) is off by O(1).
    pub const TENSOR_PRODUCTS: Tolerances = Self::F16_CACHES;
}

impl Default for Tolerances {
    fn default() -> Self {
        Tolerances {
            forward: FORWARD_TOLERANCE,
            gradient: GRADIENT_TOLERANCE,
            update: GRADIENT_TOLERANCE,
        }
    }
}

/// Everything one comparison needs.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckSpec {
    /// The network.
    pub network: NetworkConfig,
    /// Padded length and per-sequence lengths.
    pub seq: SeqShape,
    /// Seed of the parameters, inputs, targets and dropout masks.
    pub seed: u64,
    /// Adam updates after the first forward/backward comparison.
    pub steps: usize,
    /// Adam's learning rate.
    pub lr: f32,
    /// When a difference fails.
    pub tolerances: Tolerances,
}

/// Which part of the run a compared tensor comes from (selects its tolerance).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Forward values.
    Forward,
    /// Gradients of the first backward pass.
    Gradient,
    /// Losses of the optimizer steps.
    Update,
    /// Parameters after the optimizer steps.
    Params,
}

/// One compared tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// What was compared (`outputs`, `grad rnn.weight_ih_l0`, ...).
    pub name: String,
    /// Where it comes from.
    pub stage: Stage,
    /// Number of elements.
    pub len: usize,
    /// `max |candidate - reference|`.
    pub max_abs: f64,
    /// `max_abs / max |reference|` (0 when both are all zero).
    pub max_rel: f64,
    /// The tolerance applied.
    pub tolerance: f64,
    /// Whether the tensor is within the tolerance.
    pub ok: bool,
}

/// The result of a comparison: one row per tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckReport {
    /// The reference backend's description.
    pub reference: String,
    /// The candidate backend's description.
    pub candidate: String,
    /// The compared tensors, in the order they were computed.
    pub rows: Vec<Row>,
    /// The choices the candidate measured, so the table says which kernels it compared:
    /// the products' tiles (`gemm_measure`; a line per shape class, the fastest tile first)
    /// and the layer pipeline's chunks (`pipeline_measure`; a line per stack shape and
    /// pass), each line saying which.
    pub measured: Vec<String>,
}

impl CheckReport {
    /// Whether every tensor is within its tolerance.
    pub fn passed(&self) -> bool {
        self.rows.iter().all(|r| r.ok)
    }

    /// The tensors that exceed their tolerance.
    pub fn failures(&self) -> Vec<&Row> {
        self.rows.iter().filter(|r| !r.ok).collect()
    }

    /// The table printed by `wgrnn check`.
    pub fn render(&self) -> String {
        let width = self
            .rows
            .iter()
            .map(|r| r.name.len())
            .max()
            .unwrap_or(6)
            .max(6);
        let mut out = format!(
            "reference: {}\ncandidate: {}\n\n{:<width$}  {:>7}  {:>11}  {:>11}  {:>9}  result\n",
            self.reference,
            self.candidate,
            "tensor",
            "elems",
            "max abs err",
            "max rel err",
            "tolerance"
        );
        for r in &self.rows {
            out.push_str(&format!(
                "{:<width$}  {:>7}  {:>11.3e}  {:>11.3e}  {:>9.0e}  {}\n",
                r.name,
                r.len,
                r.max_abs,
                r.max_rel,
                r.tolerance,
                if r.ok { "ok" } else { "FAIL" }
            ));
        }
        let failed = self.failures().len();
        out.push_str(&format!(
            "\n{} tensors compared, {} within tolerance, {} FAILED\n",
            self.rows.len(),
            self.rows.len() - failed,
            failed
        ));
        for m in &self.measured {
            out.push_str(&format!("{m}\n"));
        }
        out
    }
}

/// Max absolute and max relative difference of `candidate` against `reference`
/// (`max|a-b| / max|b|`; 0 when both are exactly equal, infinite on a length mismatch or a
/// NaN on one side only).
pub fn compare(candidate: &[f64], reference: &[f64]) -> (f64, f64) {
    if candidate.len() != reference.len() {
        return (f64::INFINITY, f64::INFINITY);
    }
    let mut max_abs = 0f64;
    let mut scale = 0f64;
    for (&a, &b) in candidate.iter().zip(reference) {
        let d = if a.is_nan() || b.is_nan() {
            if a.is_nan() && b.is_nan() {
                0.0
            } else {
                f64::INFINITY
            }
        } else if a == b {
            0.0
        } else {
            (a - b).abs()
        };
        max_abs = max_abs.max(d);
        if b.is_finite() {
            scale = scale.max(b.abs());
        }
    }
    let max_rel = if max_abs == 0.0 {
        0.0
    } else if scale == 0.0 {
        f64::INFINITY
    } else {
        max_abs / scale
    };
    (max_abs, max_rel)
}

/// Whether a difference is within `tol`: absolute or relative error at most `tol`.
pub fn within(max_abs: f64, max_rel: f64, tol: f64) -> bool {
    max_abs <= tol || max_rel <= tol
}

fn f64s<T: Real>(v: &[T]) -> Vec<f64> {
    v.iter().map(|x| x.f64()).collect()
}

fn reals<T: Real>(v: &[f64]) -> Vec<T> {
    v.iter().map(|&x| T::of(x)).collect()
}

/// Host-side data of one comparison, in f64 (values drawn in f32 so every backend sees the
/// same numbers).
struct Data {
    batch: Batch<f64>,
    init: Vec<LayerState<f64>>,
    targets: Option<Targets<f64>>,
    /// For headless models: the fixed gradient of the outputs.
    doutputs: Option<Vec<f64>>,
}

fn uniform(rng: &mut ChaCha8Rng, n: usize, scale: f32) -> Vec<f64> {
    (0..n)
        .map(|_| rng.random_range(-scale..=scale) as f64)
        .collect()
}

fn make_data(cfg: &NetworkConfig, model_plan: &crate::params::ModelPlan, spec: &CheckSpec) -> Data {
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed ^ 0x5eed_c4ec);
    let seq = spec.seq.clone();
    let (nt, nb) = (seq.time, seq.batch());
    let inputs = match cfg.input {
        InputEncoding::Dense { features } => {
            Inputs::Dense(uniform(&mut rng, nt * nb * features, 1.0))
        }
        InputEncoding::Embedding { vocab, .. } | InputEncoding::OneHot { vocab, .. } => {
            Inputs::Ids(
                (0..nt * nb)
                    .map(|_| rng.random_range(0..vocab as u32))
                    .collect(),
            )
        }
    };
    let init = model_plan
        .layers
        .iter()
        .map(|lp| {
            let d = lp.directions();
            let c = lp.cell_state();
            LayerState {
                h: uniform(&mut rng, d * nb * lp.recurrent_input, 0.5),
                c: (c > 0).then(|| uniform(&mut rng, d * nb * c, 0.5)),
            }
        })
        .collect();
    let (targets, doutputs) = match &cfg.head {
        Some(h) => {
            let classes = |rng: &mut ChaCha8Rng, n: usize| {
                Targets::Classes(
                    (0..n)
                        .map(|_| rng.random_range(0..h.classes as u32))
                        .collect(),
                )
            };
            let t = match h.task {
                Task::Regression => Targets::Values(uniform(&mut rng, nt * nb * h.classes, 1.0)),
                Task::Classification { .. } => classes(&mut rng, nb),
                Task::Tagging { .. } | Task::LanguageModel => classes(&mut rng, nt * nb),
            };
            (Some(t), None)
        }
        None => {
            let width = cfg.stack_output_size();
            (None, Some(uniform(&mut rng, nt * nb * width, 1.0)))
        }
    };
    Data {
        batch: Batch { seq, inputs },
        init,
        targets,
        doutputs,
    }
}

fn batch_as<T: Real>(b: &Batch<f64>) -> Batch<T> {
    Batch {
        seq: b.seq.clone(),
        inputs: match &b.inputs {
            Inputs::Ids(ids) => Inputs::Ids(ids.clone()),
            Inputs::Bags { offsets, ids } => Inputs::Bags {
                offsets: offsets.clone(),
                ids: ids.clone(),
            },
            Inputs::Dense(x) => Inputs::Dense(reals(x)),
        },
    }
}

fn targets_as<T: Real>(t: &Targets<f64>) -> Targets<T> {
    match t {
        Targets::Classes(c) => Targets::Classes(c.clone()),
        Targets::Values(v) => Targets::Values(reals(v)),
    }
}

fn states_as<T: Real>(s: &[LayerState<f64>]) -> Vec<LayerState<T>> {
    s.iter()
        .map(|l| LayerState {
            h: reals(&l.h),
            c: l.c.as_ref().map(|c| reals(c)),
        })
        .collect()
}

/// What one backend produced, in f64.
#[derive(Default)]
struct Run {
    outputs: Vec<f64>,
    finals: Vec<LayerState<f64>>,
    loss: Option<f64>,
    grads: Vec<f64>,
    dinputs: Vec<f64>,
    dinit: Vec<LayerState<f64>>,
    step_losses: Vec<f64>,
    updated: Vec<f64>,
    /// The choices the backend measured ([`measured`]).
    measured: Vec<String>,
}

/// A forward and backward of `batch`'s shape with every sequence running all its steps and
/// every parameter NaN, after which the parameters are restored and the gradients zeroed.
/// The compared pass then reuses the buffers it left (a workspace of a seen shape, the
/// pool's recycled ones), so anything that pass reads without having written, or that it
/// should have cleared for its padding, holds NaN; a device's fresh buffers start zeroed,
/// which would hide it.
fn poison_pass<B: Backend>(
    model: &mut Model<B>,
    batch: &Batch<B::Scalar>,
    init: &[LayerState<B::Scalar>],
) -> Result<()> {
    let keep = model.params();
    model.set_params(&vec![B::Scalar::of(f64::NAN); keep.len()])?;
    let mut full = batch.clone();
    full.seq.lengths.fill(full.seq.time);
    model.forward(&full, Some(init), Mode::Train { dropout_seed: 0 })?;
    let nan = vec![B::Scalar::of(f64::NAN); model.outputs().len()];
    let wants = Wants {
        inputs: true,
        initial_states: true,
    };
    model.backward_from(&nan, None, wants)?;
    model.set_params(&keep)?;
    model.zero_grads();
    Ok(())
}

/// Runs the whole comparison on one backend. `params` replaces the model's initial ones.
/// The choices `be` measured so far, a line each saying which: product tiles
/// (`Timing::measured_tiles`), the steps' K slices (`Timing::measured_slices`), then the
/// layer pipeline's (`Timing::measured_pipelines`).
fn measured<B: Timing>(be: &B) -> Vec<String> {
    let tiles = be.measured_tiles().into_iter();
    let tiles = tiles.map(|m| format!("product tiles measured, {m}"));
    let slices = be.measured_slices().into_iter();
    let pipes = be.measured_pipelines().into_iter();
    tiles
        .chain(slices.map(|m| format!("step tiles measured, {m}")))
        .chain(pipes.map(|m| format!("layer pipeline measured, {m}")))
        .collect()
}

fn run_one<B: Backend + Timing>(
    backend: B,
    spec: &CheckSpec,
    params: Option<&[f64]>,
    data: &Data,
) -> Result<(Run, Vec<f64>)> {
    let name = backend.describe();
    let ctx = |what: &str| format!("{what} on {name}");
    let mut model = Model::new(backend, spec.network.clone(), spec.seed)?;
    if let Some(p) = params {
        model
            .set_params(&reals::<B::Scalar>(p))
            .with_context(|| ctx("setting the parameters"))?;
    }
    let initial = f64s(&model.params());
    let batch = batch_as::<B::Scalar>(&data.batch);
    let init = states_as::<B::Scalar>(&data.init);
    poison_pass(&mut model, &batch, &init).with_context(|| ctx("the poisoned pass"))?;
    let mode = Mode::Train {
        dropout_seed: spec.seed,
    };
    model
        .forward(&batch, Some(&init), mode)
        .with_context(|| ctx("forward"))?;
    let mut run = Run {
        outputs: f64s(&model.outputs()),
        finals: model
            .final_states()
            .iter()
            .map(|s| LayerState {
                h: f64s(&s.h),
                c: s.c.as_ref().map(|c| f64s(c)),
            })
            .collect(),
        ..Run::default()
    };
    let wants = Wants {
        inputs: true,
        initial_states: true,
    };
    model.zero_grads();
    let grads_in = match (&data.targets, &data.doutputs) {
        (Some(t), _) => {
            let loss = model
                .loss(&targets_as::<B::Scalar>(t))
                .with_context(|| ctx("loss"))?;
            run.loss = Some(loss.f64());
            model.backward(wants).with_context(|| ctx("backward"))?
        }
        (None, Some(g)) => {
            run.loss = Some(dot(&run.outputs, g));
            model
                .backward_from(&reals::<B::Scalar>(g), None, wants)
                .with_context(|| ctx("backward"))?
        }
        (None, None) => bail!("internal: neither targets nor an output gradient"),
    };
    run.grads = f64s(&model.grads());
    // (Again after the steps below, which may record shapes of their own: from zero
    // states, say.)
    run.measured = measured(model.backend());
    run.dinputs = grads_in.inputs.as_deref().map(f64s).unwrap_or_default();
    run.dinit = grads_in
        .initial_states
        .unwrap_or_default()
        .iter()
        .map(|s| LayerState {
            h: f64s(&s.h),
            c: s.c.as_ref().map(|c| f64s(c)),
        })
        .collect();
    // Optimizer steps from the initial parameters.
    if spec.steps > 0 {
        let train_cfg = TrainConfig {
            optimizer: OptimizerConfig::adam(),
            lr: spec.lr,
            schedule: Schedule::Constant,
            clip: ClipConfig::default(),
        };
        model
            .set_params(&reals::<B::Scalar>(&initial))
            .with_context(|| ctx("resetting the parameters"))?;
        match (&data.targets, &data.doutputs) {
            (Some(t), _) => {
                let targets = targets_as::<B::Scalar>(t);
                let mut trainer = Trainer::new(model, train_cfg, spec.seed);
                for k in 1..=spec.steps {
                    let stats = trainer
                        .step(&batch, &targets)
                        .with_context(|| ctx(&format!("training step {k}")))?;
                    run.step_losses.push(stats.loss);
                }
                run.updated = f64s(&trainer.model.params());
                run.measured = measured(trainer.model.backend());
            }
            (None, Some(g)) => {
                let g = reals::<B::Scalar>(g);
                let n = model.table().total();
                let mut state: Vec<B::Buffer> = (0..train_cfg.optimizer.state_buffers())
                    .map(|_| model.backend().zeros(n))
                    .collect();
                for k in 1..=spec.steps {
                    let seed = crate::dropout::layer_seed(spec.seed, k as u64, usize::MAX);
                    model
                        .forward(&batch, None, Mode::Train { dropout_seed: seed })
                        .with_context(|| ctx(&format!("forward of step {k}")))?;
                    run.step_losses
                        .push(dot(&f64s(&model.outputs()), &f64s(&g)));
                    model.zero_grads();
                    model
                        .backward_from(&g, None, Wants::default())
                        .with_context(|| ctx(&format!("backward of step {k}")))?;
                    let step = OptimizerStep {
                        optimizer: train_cfg.optimizer.clone(),
                        lr: spec.lr,
                        step: k as u64,
                    };
                    let (be, params, grads) = model.parts_mut();
                    be.optimizer_step(&step, params, grads, &mut state);
                }
                run.updated = f64s(&model.params());
                run.measured = measured(model.backend());
            }
            (None, None) => {}
        }
    }
    Ok((run, initial))
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Runs `spec` on both backends (the candidate gets the reference's initial parameters) and
/// compares every tensor.
pub fn run_check<R: Backend + Timing, C: Backend + Timing>(
    reference: R,
    candidate: C,
    spec: &CheckSpec,
) -> Result<CheckReport> {
    spec.network.validate()?;
    crate::model::check_seq(&spec.seq)?;
    let ref_name = reference.describe();
    let cand_name = candidate.describe();
    let (table, plan) = crate::params::plan_network(&spec.network);
    let data = make_data(&spec.network, &plan, spec);
    let (r, initial) = run_one(reference, spec, None, &data)?;
    let (c, _) = run_one(candidate, spec, Some(&initial), &data)?;

    let tol = spec.tolerances;
    let mut rows = Vec::new();
    // Adam moves every element by about lr whatever its gradient's size, so an element whose
    // gradient is near Adam's eps turns rounding-level gradient differences into lr-scale
    // steps (a sweep saw up to 0.15 lr between the GPU and the CPU, and 0.09 lr between the
    // f32 and f64 CPU references): updated parameters may differ by half of lr per step. A
    // wrong optimizer is off by about lr or more, and gradients are compared on their own.
    let param_tolerance = tol
        .update
        .max(ADAM_STEP_FRACTION * f64::from(spec.lr) * spec.steps as f64);
    let mut push = |name: String, stage: Stage, a: &[f64], b: &[f64]| {
        let (max_abs, max_rel) = compare(a, b);
        let tolerance = match stage {
            Stage::Forward => tol.forward,
            Stage::Gradient => tol.gradient,
            Stage::Update => tol.update,
            Stage::Params => param_tolerance,
        };
        rows.push(Row {
            name,
            stage,
            len: b.len(),
            max_abs,
            max_rel,
            tolerance,
            ok: within(max_abs, max_rel, tolerance),
        });
    };
    let names: Vec<(String, std::ops::Range<usize>)> = table
        .entries()
        .iter()
        .map(|e| (e.name.clone(), e.range()))
        .collect();
    let slice = |v: &[f64], range: &std::ops::Range<usize>| -> Vec<f64> {
        v.get(range.clone())
            .map(<[f64]>::to_vec)
            .unwrap_or_default()
    };

    push("outputs".into(), Stage::Forward, &c.outputs, &r.outputs);
    for (k, (a, b)) in c.finals.iter().zip(&r.finals).enumerate() {
        push(format!("final h, layer {k}"), Stage::Forward, &a.h, &b.h);
        if let (Some(ac), Some(bc)) = (&a.c, &b.c) {
            push(format!("final c, layer {k}"), Stage::Forward, ac, bc);
        }
    }
    if c.finals.len() != r.finals.len() {
        push(
            "final states (layer count)".into(),
            Stage::Forward,
            &[],
            &[0.0],
        );
    }
    if let (Some(a), Some(b)) = (c.loss, r.loss) {
        let what = if spec.network.head.is_some() {
            "loss"
        } else {
            "loss = sum(outputs * G)"
        };
        push(what.into(), Stage::Forward, &[a], &[b]);
    }
    for (name, range) in &names {
        push(
            format!("grad {name}"),
            Stage::Gradient,
            &slice(&c.grads, range),
            &slice(&r.grads, range),
        );
    }
    let input_name = if spec.network.input.takes_ids() {
        "grad encoded inputs"
    } else {
        "grad inputs"
    };
    push(input_name.into(), Stage::Gradient, &c.dinputs, &r.dinputs);
    for (k, (a, b)) in c.dinit.iter().zip(&r.dinit).enumerate() {
        push(
            format!("grad initial h, layer {k}"),
            Stage::Gradient,
            &a.h,
            &b.h,
        );
        if let (Some(ac), Some(bc)) = (&a.c, &b.c) {
            push(
                format!("grad initial c, layer {k}"),
                Stage::Gradient,
                ac,
                bc,
            );
        }
    }
    if spec.steps > 0 {
        for (k, (a, b)) in c.step_losses.iter().zip(&r.step_losses).enumerate() {
            push(
                format!("loss of step {}", k + 1),
                Stage::Update,
                &[*a],
                &[*b],
            );
        }
        for (name, range) in &names {
            push(
                format!("after {} steps {name}", spec.steps),
                Stage::Params,
                &slice(&c.updated, range),
                &slice(&r.updated, range),
            );
        }
    }
    Ok(CheckReport {
        reference: ref_name,
        candidate: cand_name,
        rows,
        measured: c.measured,
    })
}

/// A one-line description of what is compared (printed above the table).
pub fn describe(spec: &CheckSpec) -> String {
    let input = match spec.network.input {
        InputEncoding::Dense { features } => format!("{features} dense features"),
        InputEncoding::Embedding { vocab, dim, .. } => format!("embedding {vocab}x{dim}"),
        InputEncoding::OneHot { vocab, .. } => format!("one-hot over {vocab}"),
    };
    let layers: Vec<String> = spec
        .network
        .layers
        .iter()
        .map(|l| {
            format!(
                "{} {}{}",
                l.cell.name(),
                l.hidden,
                if l.bidirectional { " bi" } else { "" }
            )
        })
        .collect();
    let head = match &spec.network.head {
        Some(h) => {
            let task = match h.task {
                Task::Tagging { .. } => "tagging",
                Task::LanguageModel => "language-model",
                Task::Classification { .. } => "classification",
                Task::Regression => "regression",
            };
            format!("{task} head ({} outputs)", h.classes)
        }
        None => "no head".into(),
    };
    format!(
        "network: {input} -> [{}] -> {head}; seq {}, lengths {:?}; seed {}; {} Adam steps (lr {})",
        layers.join(", "),
        spec.seq.time,
        spec.seq.lengths,
        spec.seed,
        spec.steps,
        spec.lr
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CpuBackend;

    fn flags(cell: CheckCell, task: CheckTask) -> NetworkFlags {
        NetworkFlags {
            cell,
            peephole: false,
            proj: None,
            gru_variant: CheckGruVariant::Pytorch,
            layers: 2,
            hidden: 4,
            input: 3,
            bidirectional: false,
            task,
            classes: 3,
        }
    }

    fn spec(network: NetworkConfig, tol: f64) -> CheckSpec {
        CheckSpec {
            network,
            seq: seq_shape(Some(5), None, Some(vec![5, 2, 4])).unwrap(),
            seed: 3,
            steps: 2,
            lr: 0.01,
            tolerances: Tolerances {
                forward: tol,
                gradient: tol,
                update: tol,
            },
        }
    }

    #[test]
    fn compare_abs_rel_nan() {
        assert_eq!(compare(&[1.0, 2.0], &[1.0, 2.0]), (0.0, 0.0));
        let (a, r) = compare(&[1.0, 2.5], &[1.0, 2.0]);
        assert!((a - 0.5).abs() < 1e-12 && (r - 0.25).abs() < 1e-12);
        assert_eq!(compare(&[f64::NAN], &[1.0]).0, f64::INFINITY);
        assert_eq!(compare(&[f64::NAN], &[f64::NAN]), (0.0, 0.0));
        assert_eq!(compare(&[1.0], &[]).0, f64::INFINITY);
        assert_eq!(compare(&[1e-9], &[0.0]).1, f64::INFINITY);
        assert!(within(1e-9, f64::INFINITY, 1e-5));
        assert!(within(1.0, 1e-6, 1e-5));
        assert!(!within(1e-3, 1e-3, 1e-5));
    }

    #[test]
    fn lengths_and_shapes() {
        assert_eq!(parse_lengths("7, 1,4").unwrap(), vec![7, 1, 4]);
        assert!(parse_lengths("7,x").is_err());
        let s = seq_shape(None, None, Some(vec![7, 1, 4])).unwrap();
        assert_eq!((s.time, s.batch()), (7, 3));
        let e = seq_shape(Some(5), None, Some(vec![7])).unwrap_err();
        assert!(e.to_string().contains("longer than --seq 5"), "{e}");
        assert!(seq_shape(Some(5), Some(2), Some(vec![1])).is_err());
        assert!(seq_shape(Some(5), None, Some(vec![0])).is_err());
        let d = seq_shape(Some(3), Some(4), None).unwrap();
        assert_eq!(d.lengths, vec![3, 2, 1, 3]);
    }

    #[test]
    fn flags_build_valid_networks() {
        for cell in [
            CheckCell::Lstm,
            CheckCell::Gru,
            CheckCell::RnnTanh,
            CheckCell::RnnRelu,
            CheckCell::ElmanLinear,
            CheckCell::Jordan,
        ] {
            flags(cell, CheckTask::Tagging).network().unwrap();
        }
        let mut f = flags(CheckCell::Jordan, CheckTask::Tagging);
        f.bidirectional = true;
        assert!(f.network().is_err());
        let mut f = flags(CheckCell::Gru, CheckTask::Tagging);
        f.peephole = true;
        assert!(f.network().is_err());
    }

    /// f32 against f64 CPU: within the default tolerances, and failing at tolerance 0.
    #[test]
    fn cpu_f32_against_f64() {
        for (cell, task) in [
            (CheckCell::Lstm, CheckTask::Tagging),
            (CheckCell::Gru, CheckTask::Regression),
            (CheckCell::Jordan, CheckTask::Tagging),
            (CheckCell::RnnTanh, CheckTask::None),
            (CheckCell::Lstm, CheckTask::Classification),
        ] {
            let mut f = flags(cell, task);
            f.bidirectional = cell != CheckCell::Jordan;
            let net = f.network().unwrap();
            let ok = run_check(
                CpuBackend::<f32>::new(),
                CpuBackend::<f64>::new(),
                &spec(net.clone(), 1e-4),
            )
            .unwrap();
            assert!(ok.passed(), "{cell:?}:\n{}", ok.render());
            let names: Vec<&str> = ok.rows.iter().map(|r| r.name.as_str()).collect();
            assert!(names.contains(&"outputs"));
            assert!(names.contains(&"grad inputs"));
            assert!(names.contains(&"grad initial h, layer 1"));
            assert!(names.contains(&"loss of step 2"));
            assert!(names.iter().any(|n| n.starts_with("grad rnn.weight_hh_l1")));
            // Updated parameters get half of lr per step (2 steps at 0.01), losses not.
            for r in &ok.rows {
                if r.name.starts_with("after 2 steps") {
                    assert!(
                        (r.tolerance - 1e-2).abs() < 1e-9,
                        "{}: {}",
                        r.name,
                        r.tolerance
                    );
                } else {
                    assert_eq!(r.tolerance, 1e-4, "{}", r.name);
                }
            }
            let strict = run_check(
                CpuBackend::<f32>::new(),
                CpuBackend::<f64>::new(),
                &spec(net, 0.0),
            )
            .unwrap();
            assert!(!strict.passed(), "{cell:?}: tolerance 0 must fail");
            assert!(strict.render().contains("FAIL"));
        }
    }

    /// Identical backends agree exactly.
    #[test]
    fn same_backend_is_exact() {
        let net = flags(CheckCell::Lstm, CheckTask::Tagging)
            .network()
            .unwrap();
        let rep = run_check(
            CpuBackend::<f32>::new(),
            CpuBackend::<f32>::new(),
            &spec(net, 0.0),
        )
        .unwrap();
        assert!(rep.passed(), "{}", rep.render());
        assert!(rep.rows.iter().all(|r| r.max_abs == 0.0));
    }
}
