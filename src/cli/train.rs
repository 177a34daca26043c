//! `wgrnn train`: settings from the task's defaults, a TOML file and flags (in that order of
//! precedence, flags last), then the training loop of [`wgrnn::run::train_loop`].

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use serde_json::json;

use wgrnn::data::batching::Bucketing;
use wgrnn::outln;
use wgrnn::run::config::{
    CellKind, Encoding, OnNan, OptimizerKind, PoolKind, RunConfig, TaskKind, TokenKind, merge,
};
use wgrnn::run::progress::Output;
use wgrnn::run::run_dir::{self, next_run_dir};
use wgrnn::run::train_loop::{Ending, TrainOptions, train};

use crate::{Chosen, DeviceChoice, choose, on_backend};

/// The task of `wgrnn train`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TaskArg {
    /// Language model on plain text (default data: assets/fortunes, characters).
    Lm,
    /// Sequence tagger on CoNLL files (default data: assets/brown, part of speech).
    Tag,
    /// Slot filling: the tagger on the synthetic BIO corpus assets/slots.
    Slots,
    /// Sequence classifier on `label TAB text` files (default data: assets/movies, sentiment).
    Classify,
}

/// `lowercase`-style switches that can be set either way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Switch {
    /// On.
    True,
    /// Off.
    False,
}

#[derive(clap::Args)]
pub struct TrainArgs {
    /// The task (default: lm, or the task of --config).
    #[arg(long, value_enum)]
    task: Option<TaskArg>,
    /// Settings file (TOML, like a run directory's config.toml; partial files are fine).
    /// Flags override it.
    #[arg(long, value_name = "FILE.toml")]
    config: Option<PathBuf>,
    /// Training data: plain text (lm), CoNLL `token TAB tag` (tag), `label TAB text`
    /// (classify).
    #[arg(long, value_name = "FILE", help_heading = "Data")]
    data: Option<PathBuf>,
    /// Validation data in the same format (default with --data: hold out --valid-fraction).
    #[arg(long, value_name = "FILE", help_heading = "Data")]
    valid: Option<PathBuf>,
    /// Share of the training data held out for validation when there is no --valid file.
    #[arg(long, value_name = "F", help_heading = "Data")]
    valid_fraction: Option<f64>,
    /// Tokens: characters or words.
    #[arg(long, value_enum, help_heading = "Data")]
    tokens: Option<TokenArg>,
    /// Lower-case words.
    #[arg(long, value_enum, help_heading = "Data")]
    lowercase: Option<Switch>,
    /// Most tokens in the vocabulary (the rest map to one "other" id).
    #[arg(long, value_name = "N", help_heading = "Data")]
    vocab_size: Option<usize>,
    /// Least count of a vocabulary token in the training data.
    #[arg(long, value_name = "N", help_heading = "Data")]
    min_count: Option<u64>,
    /// Longest sequence (language-model piece length; longer tagged or classified sequences
    /// are cut per --long).
    #[arg(long, value_name = "N", help_heading = "Data")]
    max_len: Option<usize>,
    /// Longer sequences: truncate, or split into pieces (tagging).
    #[arg(long, value_enum, help_heading = "Data")]
    long: Option<LongArg>,
    /// Pad every batch to --max-len steps instead of its longest sequence.
    #[arg(long, help_heading = "Data")]
    align: bool,
    /// Input encoding: one-hot, a trained embedding, or word hashing by letter trigrams.
    #[arg(long, value_enum, alias = "words", help_heading = "Network")]
    encoding: Option<EncodingArg>,
    /// Embedding width.
    #[arg(long, value_name = "N", help_heading = "Network")]
    embedding_dim: Option<usize>,
    /// Initialise the embedding from word vectors (word2vec / GloVe text format).
    #[arg(long, value_name = "FILE", help_heading = "Network")]
    embeddings: Option<PathBuf>,
    /// Keep the pretrained embedding fixed.
    #[arg(long, help_heading = "Network")]
    freeze_embeddings: bool,
    /// Most letter trigrams kept for word hashing.
    #[arg(long, value_name = "N", help_heading = "Network")]
    trigram_vocab: Option<usize>,
    /// Recurrent cell.
    #[arg(long, value_enum, help_heading = "Network")]
    cell: Option<CellArg>,
    /// Hidden units per layer.
    #[arg(long, value_name = "N", help_heading = "Network")]
    hidden: Option<usize>,
    /// Stacked layers.
    #[arg(long, value_name = "N", help_heading = "Network")]
    layers: Option<usize>,
    /// Bidirectional layers (tagging and classification).
    #[arg(long, value_enum, num_args = 0..=1, default_missing_value = "true", help_heading = "Network")]
    bidirectional: Option<Switch>,
    /// Dropout between stacked layers.
    #[arg(long, value_name = "P", help_heading = "Network")]
    dropout: Option<f32>,
    /// Pooling of a classifier.
    #[arg(long, value_enum, help_heading = "Network")]
    pooling: Option<PoolArg>,
    /// Initialise the weights from a safetensors file (strict: names the tensors that do not
    /// fit).
    #[arg(long, value_name = "FILE", help_heading = "Network")]
    init_from: Option<PathBuf>,
    /// Passes over the training data.
    #[arg(long, value_name = "N", help_heading = "Training")]
    epochs: Option<usize>,
    /// Most sequences per batch.
    #[arg(long, value_name = "N", help_heading = "Training")]
    batch: Option<usize>,
    /// Most padded steps per batch (sequences x longest).
    #[arg(long, value_name = "N", help_heading = "Training")]
    max_tokens: Option<usize>,
    /// Length bucketing: sorted pools of N sequences (0: no bucketing).
    #[arg(long, value_name = "N", help_heading = "Training")]
    bucket_pool: Option<usize>,
    /// Learning rate.
    #[arg(long, help_heading = "Training")]
    lr: Option<f32>,
    /// Optimizer.
    #[arg(long, value_enum, help_heading = "Training")]
    optimizer: Option<OptimizerArg>,
    /// Clip the gradient norm to this (0: no clipping).
    #[arg(long, value_name = "NORM", help_heading = "Training")]
    clip: Option<f32>,
    /// Seed of initialisation, validation split, batch order and dropout.
    #[arg(long, help_heading = "Training")]
    seed: Option<u64>,
    /// Stop after this many epochs without a better validation metric (0: never).
    #[arg(long, value_name = "EPOCHS", help_heading = "Training")]
    patience: Option<usize>,
    /// A non-finite loss: stop (keeping the last checkpoint), or skip the step and halve the
    /// learning rate.
    #[arg(long, value_enum, help_heading = "Training")]
    on_nan: Option<NanArg>,
    /// Stop after this many updates in total (a checkpoint is saved).
    #[arg(long, value_name = "N", help_heading = "Training")]
    max_steps: Option<u64>,
    /// Also save a checkpoint every N updates (besides each epoch's end).
    #[arg(long, value_name = "N", help_heading = "Run")]
    checkpoint_every: Option<u64>,
    /// Checkpoints kept.
    #[arg(long, value_name = "K", help_heading = "Run")]
    keep: Option<usize>,
    /// The run directory (default: runs/<task>-<n>, the first free n).
    #[arg(
        long,
        value_name = "DIR",
        help_heading = "Run",
        conflicts_with = "resume"
    )]
    run_dir: Option<PathBuf>,
    /// Continue the run in DIR from its newest checkpoint (its settings, flags override).
    #[arg(long, value_name = "DIR", help_heading = "Run")]
    resume: Option<PathBuf>,
    /// Print only the final summary.
    #[arg(long, help_heading = "Run", conflicts_with = "json")]
    quiet: bool,
    /// Print JSON lines (one per epoch, one at the end) instead of text.
    #[arg(long, help_heading = "Run")]
    json: bool,
    /// No sampled text after each epoch of a language model.
    #[arg(long, help_heading = "Run")]
    no_samples: bool,
    /// Where to train.
    #[arg(long, value_enum, default_value = "auto", help_heading = "Device")]
    device: DeviceChoice,
    /// GPU adapter: an index from `wgrnn devices` or part of its name.
    #[arg(long, value_name = "NAME|INDEX", help_heading = "Device")]
    adapter: Option<String>,
    /// How the GPU stores the layer caches (what the forward keeps for the backward): f32,
    /// or f16 (needs SHADER_F16; half their memory, every kernel still sums in f32; where the
    /// adapter has tensor cores, the large matrix products and the recurrent steps' products
    /// also run there on f16 operands).
    #[arg(long, value_enum, default_value = "f32", help_heading = "Device")]
    precision: wgrnn::backend::wgpu::Precision,
    #[command(flatten, next_help_heading = "GPU kernels")]
    kernels: crate::KernelFlags,
}

macro_rules! choice {
    ($name:ident { $($v:ident => $t:expr),* $(,)? } -> $ty:ty) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
        #[allow(missing_docs)]
        pub enum $name { $($v),* }
        impl $name {
            fn value(self) -> $ty {
                match self { $($name::$v => $t),* }
            }
        }
    };
}
choice!(TokenArg { Chars => TokenKind::Chars, Words => TokenKind::Words } -> TokenKind);
choice!(LongArg { Truncate => wgrnn::data::example::LongSequences::Truncate, Split => wgrnn::data::example::LongSequences::Split } -> wgrnn::data::example::LongSequences);
choice!(EncodingArg { Onehot => Encoding::Onehot, Embedding => Encoding::Embedding, Trigram => Encoding::Trigram } -> Encoding);
choice!(CellArg { Lstm => CellKind::Lstm, Gru => CellKind::Gru, Elman => CellKind::Elman } -> CellKind);
choice!(PoolArg { Last => PoolKind::Last, Mean => PoolKind::Mean } -> PoolKind);
choice!(OptimizerArg { Adam => OptimizerKind::Adam, Adamw => OptimizerKind::Adamw, Sgd => OptimizerKind::Sgd } -> OptimizerKind);
choice!(NanArg { Stop => OnNan::Stop, Skip => OnNan::Skip } -> OnNan);

/// Set by Ctrl-C: the training loop stops after the current step and saves.
static STOP: AtomicBool = AtomicBool::new(false);

/// The flags as a partial TOML config.
fn flag_table(a: &TrainArgs) -> Result<toml::Value> {
    use toml::Value as V;
    let mut data = toml::Table::new();
    let mut model = toml::Table::new();
    let mut train = toml::Table::new();
    let path = |p: &Path| V::String(p.display().to_string());
    let put = |t: &mut toml::Table, k: &str, v: Option<V>| {
        if let Some(v) = v {
            t.insert(k.into(), v);
        }
    };
    let int = |n: u64| V::Integer(n as i64);
    put(&mut data, "train", a.data.as_deref().map(path));
    put(&mut data, "valid", a.valid.as_deref().map(path));
    put(&mut data, "valid_fraction", a.valid_fraction.map(V::Float));
    put(&mut data, "tokens", a.tokens.map(|v| ser(&v.value())));
    put(
        &mut data,
        "lowercase",
        a.lowercase.map(|s| V::Boolean(s == Switch::True)),
    );
    put(&mut data, "vocab_size", a.vocab_size.map(|n| int(n as u64)));
    put(&mut data, "min_count", a.min_count.map(int));
    put(&mut data, "max_len", a.max_len.map(|n| int(n as u64)));
    put(&mut data, "long", a.long.map(|v| ser(&v.value())));
    put(&mut data, "align", a.align.then_some(V::Boolean(true)));
    put(&mut model, "encoding", a.encoding.map(|v| ser(&v.value())));
    put(
        &mut model,
        "embedding_dim",
        a.embedding_dim.map(|n| int(n as u64)),
    );
    put(&mut model, "embeddings", a.embeddings.as_deref().map(path));
    put(
        &mut model,
        "freeze_embeddings",
        a.freeze_embeddings.then_some(V::Boolean(true)),
    );
    put(
        &mut model,
        "trigram_vocab",
        a.trigram_vocab.map(|n| int(n as u64)),
    );
    put(&mut model, "cell", a.cell.map(|v| ser(&v.value())));
    put(&mut model, "hidden", a.hidden.map(|n| int(n as u64)));
    put(&mut model, "layers", a.layers.map(|n| int(n as u64)));
    put(
        &mut model,
        "bidirectional",
        a.bidirectional.map(|s| V::Boolean(s == Switch::True)),
    );
    put(&mut model, "dropout", a.dropout.map(|p| V::Float(p as f64)));
    put(&mut model, "pooling", a.pooling.map(|v| ser(&v.value())));
    put(&mut train, "epochs", a.epochs.map(|n| int(n as u64)));
    put(&mut train, "batch", a.batch.map(|n| int(n as u64)));
    put(
        &mut train,
        "max_tokens",
        a.max_tokens.map(|n| int(n as u64)),
    );
    if let Some(pool) = a.bucket_pool {
        let b = if pool == 0 {
            Bucketing::None
        } else {
            Bucketing::Sorted { pool }
        };
        train.insert("bucketing".into(), V::try_from(b)?);
    }
    put(&mut train, "lr", a.lr.map(|v| V::Float(v as f64)));
    put(
        &mut train,
        "optimizer",
        a.optimizer.map(|v| ser(&v.value())),
    );
    put(&mut train, "seed", a.seed.map(int));
    put(&mut train, "on_nan", a.on_nan.map(|v| ser(&v.value())));
    put(&mut train, "max_steps", a.max_steps.map(int));
    put(&mut train, "checkpoint_every", a.checkpoint_every.map(int));
    put(&mut train, "keep", a.keep.map(|n| int(n as u64)));
    let mut top = toml::Table::new();
    // "No limit" settings are removed by writing nothing for them, below.
    for (k, t) in [("data", data), ("model", model), ("train", train)] {
        if !t.is_empty() {
            top.insert(k.into(), V::Table(t));
        }
    }
    Ok(V::Table(top))
}

/// A small enum of the settings as its TOML value.
fn ser<T: serde::Serialize>(v: &T) -> toml::Value {
    toml::Value::try_from(v).expect("a plain enum")
}

/// A bundled data path (`assets/...`) found relative to the working directory, else next
/// to the crate's sources (so `wgrnn train` works from anywhere on the machine it was built
/// on).
fn bundled(p: &Path) -> PathBuf {
    if p.exists() || p.is_absolute() || !p.starts_with("assets") {
        return p.to_path_buf();
    }
    let beside = Path::new(env!("CARGO_MANIFEST_DIR")).join(p);
    if beside.exists() {
        beside
    } else {
        p.to_path_buf()
    }
}

/// The run's settings: defaults of the task (or the resumed run's settings), then the file,
/// then the flags.
fn settings(a: &TrainArgs) -> Result<RunConfig> {
    let file = match &a.config {
        Some(p) => Some(
            std::fs::read_to_string(p)
                .with_context(|| format!("reading the config {}", p.display()))?,
        ),
        None => None,
    };
    let mut layers: Vec<toml::Value> = Vec::new();
    let mut task = None;
    if let Some(dir) = &a.resume {
        let path = dir.join(run_dir::CONFIG);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "{} is not a run directory (reading {})",
                dir.display(),
                path.display()
            )
        })?;
        let saved =
            RunConfig::from_toml(&text).with_context(|| format!("in {}", path.display()))?;
        task = Some(saved.task);
        // --max-steps ends one session; the resumed one runs on unless it is given again.
        let mut saved = saved;
        saved.train.max_steps = None;
        layers.push(toml::Value::try_from(&saved)?);
    }
    if let Some(text) = &file {
        let t = RunConfig::task_of(text)
            .with_context(|| format!("in {}", a.config.as_ref().unwrap().display()))?;
        task = task.or(t);
        layers.push(
            toml::from_str(text)
                .with_context(|| format!("in {}", a.config.as_ref().unwrap().display()))?,
        );
    }
    let mut flags = flag_table(a)?;
    let arg_task = a.task.map(|t| match t {
        TaskArg::Lm => TaskKind::Lm,
        TaskArg::Tag | TaskArg::Slots => TaskKind::Tag,
        TaskArg::Classify => TaskKind::Classify,
    });
    if let (Some(saved), Some(asked)) = (task, arg_task)
        && a.resume.is_some()
        && saved != asked
    {
        bail!(
            "--task {}: the resumed run is a `{}` run",
            asked.name(),
            saved.name()
        );
    }
    let task = arg_task.or(task).unwrap_or(TaskKind::Lm);
    if a.task == Some(TaskArg::Slots) && a.data.is_none() && a.resume.is_none() {
        let slots: toml::Value = toml::from_str(
            "[data]\ntrain = \"assets/slots/train.conll\"\nvalid = \"assets/slots/valid.conll\"\n",
        )?;
        flags = merge(slots, flags);
    }
    let mut merged = toml::Value::Table(toml::Table::new());
    for l in layers {
        merged = merge(merged, l);
    }
    merged = merge(merged, flags);
    let text = toml::to_string(&merged)?;
    let mut cfg = RunConfig::layered(task, Some(&text))?;
    // Zero means "none" for the optional limits given as flags.
    if a.clip == Some(0.0) {
        cfg.train.clip = None;
    } else if let Some(c) = a.clip {
        cfg.train.clip = Some(c);
    }
    if a.patience == Some(0) {
        cfg.train.patience = None;
    } else if let Some(p) = a.patience {
        cfg.train.patience = Some(p);
    }
    cfg.data.train = bundled(&cfg.data.train);
    cfg.data.valid = cfg.data.valid.as_deref().map(bundled);
    cfg.validate()?;
    Ok(cfg)
}

/// `wgrnn train`.
pub fn run(a: TrainArgs) -> Result<()> {
    // A run's results are its directory: a reader of its progress going away (`| head`)
    // must not stop it short of its checkpoints.
    wgrnn::stdout::keep_working();
    let cfg = settings(&a)?;
    let output = if a.json {
        Output::Json
    } else if a.quiet {
        Output::Quiet
    } else {
        Output::Human
    };
    let run_dir = match (&a.resume, &a.run_dir) {
        (Some(d), _) => d.clone(),
        (None, Some(d)) => d.clone(),
        (None, None) => next_run_dir(Path::new("runs"), cfg.task),
    };
    let opts = TrainOptions {
        run_dir,
        resume: a.resume.is_some(),
        output,
        init_from: a.init_from.clone(),
        samples: !a.no_samples,
    };
    // Ctrl-C once: stop after the current step and save; twice: stop now.
    let _ = ctrlc::set_handler(|| {
        if STOP.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
    });
    let started = std::time::Instant::now();
    let mut chosen = choose(a.device, a.adapter.as_deref())?;
    chosen.set_precision(a.precision)?;
    match &mut chosen {
        Chosen::Gpu(be) => {
            let m = &cfg.model;
            let shape = wgrnn::backend::wgpu::autotune::Shape {
                gates: wgrnn::run::task::cell_config(m.cell).gates(),
                layers: m.layers,
                hidden: m.hidden,
                batch: cfg.train.batch,
                bidirectional: m.bidirectional,
            };
            crate::apply_kernel_flags(be, &a.kernels, shape)?;
        }
        Chosen::Cpu(_) if a.kernels.any() => {
            bail!("the GPU kernel flags (--step-kernel, --gemm, ...) need the GPU (--device gpu)")
        }
        Chosen::Cpu(_) => {}
    }
    let outcome = on_backend!(chosen, be => train(be, &cfg, &opts, &STOP))
        .with_context(|| format!("training in {}", opts.run_dir.display()))?;
    let secs = started.elapsed().as_secs_f64();
    let last = outcome.epochs.last();
    let why = match &outcome.ending {
        Ending::Finished(f) => f.clone(),
        Ending::Interrupted => "interrupted".into(),
        Ending::MaxSteps => format!("--max-steps reached at update {}", outcome.state.step),
    };
    if output == Output::Json {
        outln!(
            "{}",
            json!({
                "event": "end",
                "reason": why,
                "run_dir": outcome.dir,
                "step": outcome.state.step,
                "epochs_done": outcome.state.epoch,
                "monitored": outcome.monitored,
                "best": outcome.state.best,
                "best_epoch": outcome.state.best_epoch,
                "last_valid": last.map(|r| json!({
                    "loss": r.valid.loss, "accuracy": r.valid.accuracy, "f1": r.valid.f1,
                    "perplexity": r.valid.perplexity, "bits_per_char": r.valid.bpc,
                })),
                "seconds": secs,
            })
        );
    } else {
        let best = match (outcome.state.best, outcome.state.best_epoch) {
            (Some(b), Some(e)) if outcome.monitored == "loss" => {
                format!("best validation loss {b:.4} (epoch {e})")
            }
            (Some(b), Some(e)) => format!(
                "best validation {} {:.2}% (epoch {e})",
                outcome.monitored,
                100.0 * b
            ),
            _ => "no epoch finished yet".into(),
        };
        let scores = last
            .map(|r| format!("; last epoch: {}", r.valid.describe()))
            .unwrap_or_default();
        outln!(
            "{why}: {best}{scores}; {secs:.0} s; run directory {} ({} and {})",
            outcome.dir.display(),
            run_dir::BEST,
            run_dir::PLOT
        );
    }
    if outcome.ending == Ending::Interrupted {
        std::process::exit(130);
    }
    Ok(())
}
