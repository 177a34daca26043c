//! The training loop of `wgrnn train`: epochs of bucketed, shuffled batches built on a host
//! thread, steps queued without waiting for their loss, validation after every epoch with
//! early stopping, checkpoints (every epoch, every `checkpoint_every` updates, at
//! `max_steps`, and on Ctrl-C after the current step) and exact resume.
//!
//! Exact resume: a checkpoint holds the weights, the optimizer state, the step counter and
//! the position inside the epoch; the batch order of an epoch depends only on (seed, epoch)
//! and a step's dropout only on (seed, step), so a run stopped and resumed computes the same
//! updates as one that never stopped (bit for bit on the CPU backend).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde_json::json;

use crate::backend::Backend;
use crate::checkpoint;
use crate::data::batching::{BatchConfig, Batcher};
use crate::data::embeddings::{fill_embedding, read_vectors};
use crate::error::InputError;
use crate::model::Model;
use crate::optim::{ClipConfig, OptimizerConfig, Schedule, TrainConfig};
use crate::run::RunError;
use crate::run::config::{OnNan, OptimizerKind, RunConfig, TaskKind, TokenKind};
use crate::run::feed::{Feed, Scores, evaluate, is_bio};
use crate::run::infer::{Sampling, generate};
use crate::run::plot;
use crate::run::progress::{Output, Reporter};
use crate::run::resume::{
    EpochRow, METRICS_HEADER, STEPS_HEADER, StepRow, TrainingState, load_optimizer, read_metrics,
    read_steps, save_optimizer, write_csv,
};
use crate::run::run_dir::{self, RunDir};
use crate::run::task::{Artifacts, Prepared, prepare};
use crate::train::{MAX_IN_FLIGHT, StepStats, Trainer};

/// How `train` is run (besides the [`RunConfig`]).
#[derive(Clone, Debug)]
pub struct TrainOptions {
    /// The run directory: created (must be new or empty), or continued with `resume`.
    pub run_dir: PathBuf,
    /// Continue the run in `run_dir` from its newest checkpoint.
    pub resume: bool,
    /// How much to print.
    pub output: Output,
    /// Initialise the weights from this safetensors file (strict: every tensor must fit).
    pub init_from: Option<PathBuf>,
    /// Show a sampled text after each epoch (language models, human output).
    pub samples: bool,
}

/// Why training stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    /// All epochs done, or early stopping; the reason.
    Finished(String),
    /// Ctrl-C: stopped after the current step, checkpoint saved.
    Interrupted,
    /// `max_steps` reached, checkpoint saved.
    MaxSteps,
}

/// What a run did.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The run directory.
    pub dir: PathBuf,
    /// Where training stands.
    pub state: TrainingState,
    /// Every epoch's row (this and earlier sessions).
    pub epochs: Vec<EpochRow>,
    /// Why it stopped.
    pub ending: Ending,
    /// The newest checkpoint.
    pub checkpoint: Option<PathBuf>,
    /// Name and best value of the monitored validation metric.
    pub monitored: &'static str,
}

/// The training configuration of a run.
fn train_config(cfg: &RunConfig) -> TrainConfig {
    let optimizer = match cfg.train.optimizer {
        OptimizerKind::Adam => OptimizerConfig::adam(),
        OptimizerKind::Adamw => OptimizerConfig::AdamW {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        },
        OptimizerKind::Sgd => OptimizerConfig::Sgd {
            momentum: 0.9,
            nesterov: false,
            weight_decay: 0.0,
        },
    };
    TrainConfig {
        optimizer,
        lr: cfg.train.lr,
        schedule: Schedule::Constant,
        clip: ClipConfig {
            max_norm: cfg.train.clip,
            max_value: None,
        },
    }
}

/// Everything a training session changes.
struct Session<'a, B: Backend> {
    cfg: &'a RunConfig,
    dir: RunDir,
    trainer: Trainer<B>,
    state: TrainingState,
    steps: Vec<StepRow>,
    epochs: Vec<EpochRow>,
    /// (scored items, epoch) of each queued step whose statistics have not arrived.
    pending: VecDeque<(usize, usize)>,
    rep: Reporter,
    checkpoint: Option<PathBuf>,
    started: Instant,
    seconds_before: f64,
}

/// Trains `cfg` on `backend`; `stop` is the Ctrl-C flag (checked after every step).
pub fn train<B: Backend>(
    backend: B,
    cfg: &RunConfig,
    opts: &TrainOptions,
    stop: &AtomicBool,
) -> Result<Outcome, RunError> {
    cfg.validate()?;
    let rep = Reporter::new(opts.output);
    let device = backend.describe();
    let (dir, prep, mut state, checkpoint) = if opts.resume {
        let dir = RunDir::open(&opts.run_dir)?;
        let (_, art) = dir.load_setup()?;
        let prep = prepare(cfg, Some(art))?;
        let ck = dir.latest();
        let state = match &ck {
            Some(c) => TrainingState::load(c)?,
            None => TrainingState::default(),
        };
        (dir, prep, state, ck)
    } else {
        let prep = prepare(cfg, None)?;
        let dir = RunDir::create(&opts.run_dir)?;
        dir.save_setup(cfg, &prep.network, &prep.artifacts)?;
        (dir, prep, TrainingState::default(), None)
    };
    let Prepared {
        artifacts: art,
        train: train_data,
        valid,
        network,
    } = prep;
    let mut model = Model::new(backend, network.clone(), cfg.train.seed)?;
    if let Some(ck) = &checkpoint {
        // Strict: a model that changed since (other --hidden, --layers, ...) is an error that
        // names every tensor that does not fit.
        checkpoint::load(&mut model, &ck.join(run_dir::WEIGHTS))?;
    } else {
        if let Some(path) = &cfg.model.embeddings {
            init_embeddings(&mut model, &art, path, &rep)?;
        }
        if let Some(path) = &opts.init_from {
            checkpoint::load(&mut model, path)?;
        }
    }
    let mut trainer = Trainer::new(model, train_config(cfg), cfg.train.seed);
    if cfg.model.freeze_embeddings
        && let Some(e) = trainer.model.table().get("embedding.weight")
    {
        let range = e.range();
        trainer.freeze(vec![range]);
    }
    let (steps, epochs) = if let Some(ck) = &checkpoint {
        let opt = load_optimizer::<B::Scalar>(&ck.join(run_dir::OPTIMIZER))?;
        trainer.restore(state.step, &opt)?;
        trainer.set_lr(state.lr);
        (
            read_steps(&dir.file(run_dir::STEPS), state.step)?,
            read_metrics(&dir.file(run_dir::METRICS), state.epoch)?,
        )
    } else {
        state.lr = cfg.train.lr;
        state.seed = cfg.train.seed;
        (Vec::new(), Vec::new())
    };
    if opts.resume {
        // The weights fit: record the settings this session runs with (e.g. more epochs).
        dir.save_setup(cfg, &network, &art)?;
        if state
            .finished
            .as_deref()
            .is_some_and(|f| f.starts_with("all"))
            && state.epoch < cfg.train.epochs
        {
            state.finished = None;
        }
    }
    let bio = is_bio(&art);
    let task = cfg.task;
    let mut s = Session {
        cfg,
        dir,
        trainer,
        seconds_before: state.seconds,
        state,
        steps,
        epochs,
        pending: VecDeque::new(),
        rep,
        checkpoint,
        started: Instant::now(),
    };
    let what = match task {
        TaskKind::Lm if cfg.data.tokens == TokenKind::Chars => "character language model",
        TaskKind::Lm => "word language model",
        TaskKind::Tag => "tagger",
        TaskKind::Classify => "classifier",
    };
    s.rep.line(&format!(
        "{what}: {} {}x{}{} on {} ({} sequences), validation {} ({} sequences), vocabulary {}{}, {} parameters, device {device}",
        cfg.model.cell.name(),
        cfg.model.layers,
        cfg.model.hidden,
        if cfg.model.bidirectional { " bidirectional" } else { "" },
        train_data.source,
        train_data.len(),
        valid.source,
        valid.len(),
        art.vocab.len(),
        art.labels.as_ref().map(|l| format!(", {} labels", l.len())).unwrap_or_default(),
        s.trainer.model.table().total(),
    ));
    s.rep
        .line(&format!("run directory {}", s.dir.path.display()));
    if opts.resume {
        s.rep.line(&format!(
            "resuming at update {}, epoch {} batch {}",
            s.state.step,
            s.state.epoch + 1,
            s.state.batch
        ));
    }
    let ending = s.run(&train_data, &valid, &art, bio, opts.samples, stop)?;
    let monitored = Scores::default().monitored(task, bio).0;
    Ok(Outcome {
        dir: s.dir.path.clone(),
        state: s.state,
        epochs: s.epochs,
        ending,
        checkpoint: s.checkpoint,
        monitored,
    })
}

impl crate::run::config::CellKind {
    /// The cell's name.
    pub fn name(self) -> &'static str {
        match self {
            crate::run::config::CellKind::Lstm => "lstm",
            crate::run::config::CellKind::Gru => "gru",
            crate::run::config::CellKind::Elman => "elman",
        }
    }
}

/// Fills the embedding rows of the vocabulary's tokens from a vector file.
fn init_embeddings<B: Backend>(
    model: &mut Model<B>,
    art: &Artifacts,
    path: &std::path::Path,
    rep: &Reporter,
) -> Result<(), RunError> {
    let vectors = read_vectors(path, |w| art.vocab.get(w).is_some())?;
    let Some(e) = model.table().get("embedding.weight").cloned() else {
        return Err(RunError::Config(
            "pretrained vectors need the embedding encoding".into(),
        ));
    };
    let dim = e.shape[1];
    if vectors.dim() != dim {
        return Err(RunError::Config(format!(
            "{}: the vectors have {} values but model.embedding_dim is {dim} (set --embedding-dim {})",
            path.display(),
            vectors.dim(),
            vectors.dim()
        )));
    }
    let mut params = model.params();
    let report = fill_embedding(&vectors, &art.vocab, &mut params[e.range()], dim)?;
    model.set_params(&params)?;
    rep.notice(&format!(
        "embeddings: {} of {} vocabulary tokens initialised from {}",
        report.found,
        report.found + report.missing,
        path.display()
    ));
    Ok(())
}

impl<B: Backend> Session<'_, B> {
    /// Takes in one step's outcome.
    fn handle(&mut self, r: Result<StepStats, InputError>) -> Result<(), RunError> {
        let (count, epoch) = self.pending.pop_front().expect("a step was queued");
        match r {
            Ok(s) => {
                self.state.epoch_loss += s.loss * count as f64;
                self.state.epoch_count += count;
                self.steps.push(StepRow {
                    step: s.step,
                    epoch: epoch + 1,
                    loss: s.loss,
                    grad_norm: s.grad_norm,
                    lr: s.lr,
                });
                Ok(())
            }
            Err(InputError::NotFinite { what, value }) => match self.cfg.train.on_nan {
                OnNan::Stop => Err(RunError::NotFinite {
                    what: format!("{what} is not finite ({value})"),
                    checkpoint: self.checkpoint.clone(),
                }),
                OnNan::Skip => {
                    self.state.skipped += 1;
                    self.state.lr /= 2.0;
                    self.trainer.set_lr(self.state.lr);
                    self.rep.notice(&format!(
                        "skipped a step: the {what} is not finite ({value}); learning rate lowered to {}",
                        self.state.lr
                    ));
                    Ok(())
                }
            },
            Err(e) => Err(e.into()),
        }
    }

    /// Waits for every queued step.
    fn drain(&mut self) -> Result<(), RunError> {
        while let Some(r) = self.trainer.wait_result() {
            self.handle(r)?;
        }
        Ok(())
    }

    /// Writes the history files, the plot and a checkpoint of the current state.
    fn save(&mut self) -> Result<(), RunError> {
        self.state.step = self.trainer.steps_done();
        self.state.seconds = self.seconds_before + self.started.elapsed().as_secs_f64();
        write_csv(
            &self.dir.file(run_dir::STEPS),
            STEPS_HEADER,
            self.steps.iter().map(StepRow::csv),
        )?;
        write_csv(
            &self.dir.file(run_dir::METRICS),
            METRICS_HEADER,
            self.epochs.iter().map(EpochRow::csv),
        )?;
        let task = self.cfg.task;
        let metric: (&str, fn(&EpochRow) -> Option<f64>) = match task {
            TaskKind::Lm if self.cfg.data.tokens == TokenKind::Chars => {
                ("bits per character", |e| e.valid.bpc)
            }
            TaskKind::Lm => ("perplexity", |e| e.valid.perplexity),
            TaskKind::Tag => ("span F1 and accuracy", |e| e.valid.f1.or(e.valid.accuracy)),
            TaskKind::Classify => ("accuracy", |e| e.valid.accuracy),
        };
        let title = format!("{} — {}", self.dir.path.display(), task.name());
        let svg = plot::render(&title, &self.steps, &self.epochs, metric);
        run_dir::write_atomic(&self.dir.file(run_dir::PLOT), svg.as_bytes())?;
        let (trainer, state) = (&self.trainer, &self.state);
        let dir = self
            .dir
            .save_checkpoint(state.step, self.cfg.train.keep, |tmp| {
                checkpoint::save(&trainer.model, &tmp.join(run_dir::WEIGHTS))?;
                save_optimizer(&tmp.join(run_dir::OPTIMIZER), &trainer.optimizer_state())?;
                state.save(tmp)
            })?;
        self.checkpoint = Some(dir);
        Ok(())
    }

    fn run(
        &mut self,
        train: &crate::run::task::Dataset,
        valid: &crate::run::task::Dataset,
        art: &Artifacts,
        bio: bool,
        samples: bool,
        stop: &AtomicBool,
    ) -> Result<Ending, RunError> {
        let cfg = self.cfg;
        let t = &cfg.train;
        if let Some(f) = &self.state.finished {
            self.rep
                .line(&format!("nothing to do: the run has finished ({f})"));
            return Ok(Ending::Finished(f.clone()));
        }
        if t.max_steps.is_some_and(|m| self.trainer.steps_done() >= m) {
            return Ok(Ending::MaxSteps);
        }
        let batcher = Batcher::for_examples(
            BatchConfig {
                max_batch: t.batch,
                max_tokens: t.max_tokens,
                bucketing: t.bucketing,
                shuffle: true,
                seed: t.seed,
            },
            &train.examples,
        )?;
        let time = cfg.data.align.then_some(cfg.data.max_len);
        let chars = cfg.data.tokens == TokenKind::Chars;
        while self.state.epoch < t.epochs {
            let e = self.state.epoch;
            let batches = batcher.epoch(e as u64);
            let total = batches.len();
            let feed = Feed::<B::Scalar>::spawn(train.clone(), batches, self.state.batch, time);
            self.rep
                .start_epoch(e + 1, t.epochs, total, self.state.batch);
            let t0 = Instant::now();
            let mut tokens = 0usize;
            for p in feed {
                let p = p?;
                while self.trainer.steps_in_flight() + 1 >= MAX_IN_FLIGHT {
                    let r = self.trainer.wait_result().expect("steps are in flight");
                    self.handle(r)?;
                }
                self.trainer.queue_step(&p.batch, &p.targets)?;
                self.pending.push_back((p.count, e));
                for r in self.trainer.poll_results() {
                    self.handle(r)?;
                }
                self.state.batch = p.index + 1;
                self.state.epoch_tokens += p.tokens;
                tokens += p.tokens;
                let mean = self.state.epoch_loss / self.state.epoch_count.max(1) as f64;
                self.rep.progress(
                    self.state.batch,
                    mean,
                    tokens as f64 / t0.elapsed().as_secs_f64(),
                );
                let step = self.trainer.steps_done();
                let interrupted = stop.load(Ordering::SeqCst);
                let at_max = t.max_steps.is_some_and(|m| step >= m);
                let every = t.checkpoint_every.is_some_and(|k| step.is_multiple_of(k))
                    && self.state.batch < total;
                if interrupted || at_max || every {
                    self.drain()?;
                    self.save()?;
                    let at = format!(
                        "update {} (epoch {}, batch {}/{total})",
                        self.state.step,
                        e + 1,
                        self.state.batch
                    );
                    if interrupted {
                        self.rep.end_epoch();
                        // Said even with --quiet: the run did not end as asked.
                        eprintln!(
                            "interrupted: saved a checkpoint at {at}; continue with --resume {}",
                            self.dir.path.display()
                        );
                        return Ok(Ending::Interrupted);
                    }
                    if at_max {
                        self.rep.end_epoch();
                        self.rep.line(&format!(
                            "stopped at --max-steps: saved a checkpoint at {at}"
                        ));
                        return Ok(Ending::MaxSteps);
                    }
                }
            }
            self.drain()?;
            self.rep.end_epoch();
            let train_secs = t0.elapsed().as_secs_f64();
            self.end_epoch(
                e,
                valid,
                art,
                bio,
                chars,
                tokens as f64 / train_secs.max(1e-9),
            )?;
            if samples && cfg.task == TaskKind::Lm && self.rep.mode == Output::Human {
                let sampling = Sampling {
                    temperature: 0.7,
                    top_k: None,
                    seed: e as u64,
                };
                let text = generate(
                    &mut self.trainer.model,
                    cfg,
                    art,
                    "",
                    if chars { 160 } else { 30 },
                    sampling,
                )?;
                self.rep
                    .line(&format!("  sample: {}", text.replace('\n', "\n          ")));
            }
            if let Some(f) = &self.state.finished {
                return Ok(Ending::Finished(f.clone()));
            }
        }
        let f = self
            .state
            .finished
            .clone()
            .unwrap_or_else(|| format!("all {} epochs done", t.epochs));
        Ok(Ending::Finished(f))
    }

    #[allow(clippy::too_many_arguments)]
    fn end_epoch(
        &mut self,
        e: usize,
        valid: &crate::run::task::Dataset,
        art: &Artifacts,
        bio: bool,
        chars: bool,
        tokens_per_s: f64,
    ) -> Result<(), RunError> {
        let cfg = self.cfg;
        let scores = evaluate(&mut self.trainer.model, valid, cfg.task, art, chars)?;
        let train_loss = self.state.epoch_loss / self.state.epoch_count.max(1) as f64;
        let row = EpochRow {
            epoch: e + 1,
            step: self.trainer.steps_done(),
            train_loss,
            valid: scores,
            seconds: self.seconds_before + self.started.elapsed().as_secs_f64(),
            tokens_per_s,
        };
        self.epochs.push(row);
        let (name, value, higher) = scores.monitored(cfg.task, bio);
        let improved = self
            .state
            .best
            .is_none_or(|b| if higher { value > b } else { value < b });
        if improved {
            self.state.best = Some(value);
            self.state.best_epoch = Some(e + 1);
            self.state.bad_epochs = 0;
            checkpoint::save(&self.trainer.model, &self.dir.file(run_dir::BEST))?;
        } else {
            self.state.bad_epochs += 1;
        }
        self.state.epoch = e + 1;
        self.state.batch = 0;
        self.state.epoch_loss = 0.0;
        self.state.epoch_count = 0;
        self.state.epoch_tokens = 0;
        if let Some(p) = cfg.train.patience.filter(|&p| self.state.bad_epochs >= p) {
            self.state.finished = Some(format!(
                "early stop: validation {name} has not improved for {p} epochs (best {:.4} at epoch {})",
                self.state.best.unwrap_or(f64::NAN),
                self.state.best_epoch.unwrap_or(0)
            ));
        } else if self.state.epoch >= cfg.train.epochs {
            self.state.finished = Some(format!("all {} epochs done", cfg.train.epochs));
        }
        self.save()?;
        self.rep.line(&format!(
            "epoch {:>3}/{}  train loss {:.4}  valid {}  {:.0} tok/s  {:.0}s{}",
            e + 1,
            cfg.train.epochs,
            train_loss,
            scores.describe(),
            tokens_per_s,
            row.seconds,
            if improved { "  (best)" } else { "" }
        ));
        self.rep.json(&json!({
            "event": "epoch",
            "epoch": e + 1,
            "step": row.step,
            "train_loss": train_loss,
            "valid_loss": scores.loss,
            "valid_accuracy": scores.accuracy,
            "valid_f1": scores.f1,
            "valid_perplexity": scores.perplexity,
            "valid_bits_per_char": scores.bpc,
            "tokens_per_s": tokens_per_s,
            "seconds": row.seconds,
            "best": improved,
        }));
        Ok(())
    }
}
