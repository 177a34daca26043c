//! The description of a training run (TOML): the task, its data, the network and how it is
//! trained. A run directory keeps it as `config.toml`, so `--resume` and the inference verbs
//! rebuild exactly the same model and data.
//!
//! Settings come in layers, each overriding the one before: the defaults of the task
//! ([`RunConfig::defaults`]), a config file, then command-line flags. [`RunConfig::layered`]
//! merges TOML tables key by key, so a file that sets `train.lr` keeps every other default.
//!
//! ```
//! use wgrnn::run::config::{RunConfig, TaskKind};
//!
//! let cfg = RunConfig::layered(TaskKind::Tag, Some("[model]\nhidden = 16\n")).unwrap();
//! assert_eq!(cfg.model.hidden, 16);
//! assert_eq!(cfg.data.train.to_str(), Some("assets/brown/train.conll"));
//! ```

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::data::batching::Bucketing;
use crate::data::example::LongSequences;
use crate::run::RunError;

/// What the network learns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// Next-token language modelling on plain text (characters or words).
    Lm,
    /// Sequence tagging / slot filling on CoNLL files (`token TAB tag`).
    Tag,
    /// Sequence classification on TSV files (`label TAB text`).
    Classify,
}

impl TaskKind {
    /// The name used in run directory names and messages.
    pub fn name(self) -> &'static str {
        match self {
            TaskKind::Lm => "lm",
            TaskKind::Tag => "tag",
            TaskKind::Classify => "classify",
        }
    }
}

/// How text is cut into tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// Every character is a token (newlines included).
    Chars,
    /// Words with punctuation split off.
    Words,
}

/// How a token becomes the network's input vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// 1-of-N over the vocabulary (with its "other" id).
    Onehot,
    /// A trainable embedding table, optionally initialised from pretrained vectors.
    Embedding,
    /// Word hashing: the bag of a word's letter trigrams as a multi-hot vector over the
    /// trigram vocabulary (words only; unseen words still get an encoding).
    Trigram,
}

/// The recurrent cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CellKind {
    /// LSTM, PyTorch's equations, forget-gate bias 1.
    Lstm,
    /// GRU, PyTorch's equations.
    Gru,
    /// Elman network with tanh.
    Elman,
}

/// The optimizer (PyTorch's defaults for its other settings).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    /// Adam.
    Adam,
    /// AdamW with weight decay 0.01.
    Adamw,
    /// SGD with momentum 0.9.
    Sgd,
}

/// What to do when a step's loss or gradient norm is not finite.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnNan {
    /// Stop with an error naming the step; the last checkpoint stays as it was.
    Stop,
    /// Skip the step (its update was never applied), halve the learning rate, go on.
    Skip,
}

/// How sequences are pooled for classification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolKind {
    /// The output at each sequence's last step (both directions' ends).
    Last,
    /// The mean over the valid steps.
    Mean,
}

/// Where the data is and how it becomes examples.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Training file: plain text (lm), CoNLL (tag) or `label TAB text` (classify).
    pub train: PathBuf,
    /// Validation file in the same format; when absent, `valid_fraction` of the training
    /// data is held out (a seeded random choice of sequences; the end of the text for lm).
    #[serde(default)]
    pub valid: Option<PathBuf>,
    /// Share of the training data held out when there is no validation file (0 < f < 1).
    pub valid_fraction: f64,
    /// Characters or words.
    pub tokens: TokenKind,
    /// Lower-case words (ignored for characters).
    pub lowercase: bool,
    /// Keep at most this many tokens in the vocabulary (the most frequent); the rest map to
    /// the "other" id.
    #[serde(default)]
    pub vocab_size: Option<usize>,
    /// Keep only tokens seen at least this often in the training data.
    pub min_count: u64,
    /// Longest sequence: the length of language-model pieces, and the most steps a tagged or
    /// classified sequence keeps (longer ones are cut by `long`).
    pub max_len: usize,
    /// What happens to a longer sequence: `truncate` or `split` (tagging only).
    pub long: LongSequences,
    /// Pad every batch to `max_len` steps (aligned) instead of its longest sequence
    /// (variable length; padding is never computed either way, only allocated).
    pub align: bool,
}

/// The network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// How tokens enter the network.
    pub encoding: Encoding,
    /// Width of the embedding vectors (embedding encoding).
    pub embedding_dim: usize,
    /// Pretrained vectors (word2vec / GloVe text) to initialise the embedding table with.
    #[serde(default)]
    pub embeddings: Option<PathBuf>,
    /// Keep the embedding table fixed during training.
    pub freeze_embeddings: bool,
    /// Most letter trigrams kept (trigram encoding); the rest map to "other".
    pub trigram_vocab: usize,
    /// The recurrent cell.
    pub cell: CellKind,
    /// Hidden units of every layer.
    pub hidden: usize,
    /// Stacked recurrent layers.
    pub layers: usize,
    /// Every layer bidirectional (not for language models).
    pub bidirectional: bool,
    /// Dropout between stacked layers (training only).
    pub dropout: f32,
    /// Pooling of a classifier.
    pub pooling: PoolKind,
}

/// How the network is trained.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingConfig {
    /// Passes over the training data.
    pub epochs: usize,
    /// Most sequences per batch.
    pub batch: usize,
    /// Most padded steps per batch (`batch * longest`); none: only `batch` limits.
    #[serde(default)]
    pub max_tokens: Option<usize>,
    /// How sequences are grouped by length into batches.
    pub bucketing: Bucketing,
    /// Base learning rate.
    pub lr: f32,
    /// The optimizer.
    pub optimizer: OptimizerKind,
    /// Clip the global gradient norm to this (none: no clipping).
    #[serde(default)]
    pub clip: Option<f32>,
    /// Seed of the initial parameters, the validation split, every epoch's batch order and
    /// the dropout masks.
    pub seed: u64,
    /// Stop when the validation metric has not improved for this many epochs.
    #[serde(default)]
    pub patience: Option<usize>,
    /// What a non-finite loss does.
    pub on_nan: OnNan,
    /// Stop (and save) after this many updates in total, even within an epoch.
    #[serde(default)]
    pub max_steps: Option<u64>,
    /// Also save a checkpoint every this many updates (besides every epoch's end).
    #[serde(default)]
    pub checkpoint_every: Option<u64>,
    /// Checkpoints kept in `checkpoints/` (older ones are removed).
    pub keep: usize,
}

/// A whole run: task, data, network and training.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// The task.
    pub task: TaskKind,
    /// The data.
    pub data: DataConfig,
    /// The network.
    pub model: ModelConfig,
    /// The training.
    pub train: TrainingConfig,
}

impl RunConfig {
    /// The defaults of a task, on its bundled data: a character LSTM language model on
    /// `assets/fortunes`, a part-of-speech tagger on `assets/brown`, a sentiment classifier
    /// on `assets/movies`. Small enough to train in a few minutes on two CPU cores.
    pub fn defaults(task: TaskKind) -> Self {
        let (train, valid, tokens) = match task {
            TaskKind::Lm => (
                "assets/fortunes/train.txt",
                "assets/fortunes/valid.txt",
                TokenKind::Chars,
            ),
            TaskKind::Tag => (
                "assets/brown/train.conll",
                "assets/brown/valid.conll",
                TokenKind::Words,
            ),
            TaskKind::Classify => (
                "assets/movies/train.tsv",
                "assets/movies/valid.tsv",
                TokenKind::Words,
            ),
        };
        RunConfig {
            task,
            data: DataConfig {
                train: train.into(),
                valid: Some(valid.into()),
                valid_fraction: 0.1,
                tokens,
                lowercase: task != TaskKind::Lm,
                vocab_size: match task {
                    TaskKind::Lm => None,
                    _ => Some(8000),
                },
                min_count: match task {
                    TaskKind::Lm => 1,
                    _ => 2,
                },
                max_len: match task {
                    TaskKind::Lm => 100,
                    _ => 60,
                },
                long: LongSequences::Truncate,
                align: false,
            },
            model: ModelConfig {
                encoding: match task {
                    TaskKind::Lm => Encoding::Onehot,
                    _ => Encoding::Embedding,
                },
                embedding_dim: 32,
                embeddings: None,
                freeze_embeddings: false,
                trigram_vocab: 2000,
                cell: CellKind::Lstm,
                hidden: match task {
                    TaskKind::Lm => 128,
                    _ => 64,
                },
                layers: 1,
                bidirectional: task == TaskKind::Tag,
                dropout: 0.0,
                pooling: PoolKind::Mean,
            },
            train: TrainingConfig {
                epochs: match task {
                    TaskKind::Lm => 3,
                    TaskKind::Tag => 10,
                    TaskKind::Classify => 5,
                },
                batch: match task {
                    TaskKind::Lm => 16,
                    _ => 32,
                },
                max_tokens: None,
                bucketing: Bucketing::Sorted { pool: 1024 },
                lr: match task {
                    TaskKind::Lm => 0.01,
                    _ => 0.005,
                },
                optimizer: OptimizerKind::Adam,
                clip: Some(5.0),
                seed: 1,
                patience: Some(3),
                on_nan: OnNan::Stop,
                max_steps: None,
                checkpoint_every: None,
                keep: 3,
            },
        }
    }

    /// The defaults of `task` with the TOML `overrides` (a partial config; its `task`, if
    /// any, must agree) merged over them key by key.
    pub fn layered(task: TaskKind, overrides: Option<&str>) -> Result<Self, RunError> {
        let base = toml::Value::try_from(RunConfig::defaults(task))
            .map_err(|e| RunError::Config(format!("defaults: {e}")))?;
        let merged = match overrides {
            None => base,
            Some(text) => {
                let over: toml::Value = toml::from_str(text)
                    .map_err(|e| RunError::Config(format!("does not parse: {e}")))?;
                // Another training file without a validation file: hold out a fraction of
                // it rather than validating on the bundled data.
                let mut base = base;
                let own_train = over.get("data").is_some_and(|d| d.get("train").is_some());
                let own_valid = over.get("data").is_some_and(|d| d.get("valid").is_some());
                if own_train
                    && !own_valid
                    && let Some(toml::Value::Table(d)) = base.get_mut("data")
                {
                    d.remove("valid");
                }
                merge(base, over)
            }
        };
        let cfg: RunConfig = merged
            .try_into()
            .map_err(|e: toml::de::Error| RunError::Config(e.to_string()))?;
        if cfg.task != task {
            return Err(RunError::Config(format!(
                "the file is for task `{}`, not `{}`",
                cfg.task.name(),
                task.name()
            )));
        }
        Ok(cfg)
    }

    /// The task a partial TOML config names, if any.
    pub fn task_of(text: &str) -> Result<Option<TaskKind>, RunError> {
        #[derive(Deserialize)]
        struct OnlyTask {
            task: Option<TaskKind>,
        }
        let value: toml::Value =
            toml::from_str(text).map_err(|e| RunError::Config(format!("does not parse: {e}")))?;
        let t: OnlyTask = value
            .try_into()
            .map_err(|e: toml::de::Error| RunError::Config(e.to_string()))?;
        Ok(t.task)
    }

    /// A complete config as written by [`RunConfig::to_toml`].
    pub fn from_toml(text: &str) -> Result<Self, RunError> {
        let cfg: RunConfig = toml::from_str(text).map_err(|e| RunError::Config(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// The config as TOML text.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("a run config is plain data")
    }

    /// Checks settings and combinations, naming the first unusable one.
    pub fn validate(&self) -> Result<(), RunError> {
        let bad = |what: &str, why: &str| Err(RunError::Config(format!("`{what}`: {why}")));
        let (d, m, t) = (&self.data, &self.model, &self.train);
        if !(d.valid_fraction > 0.0 && d.valid_fraction < 1.0) {
            return bad("data.valid_fraction", "must be between 0 and 1");
        }
        if d.max_len == 0 {
            return bad("data.max_len", "must be at least 1");
        }
        if d.vocab_size == Some(0) {
            return bad("data.vocab_size", "must be at least 1");
        }
        if d.long == LongSequences::Split && self.task == TaskKind::Classify {
            return bad(
                "data.long",
                "a labelled sequence cannot be split; use truncate",
            );
        }
        if m.hidden == 0 || m.layers == 0 || m.embedding_dim == 0 || m.trigram_vocab == 0 {
            return bad(
                "model",
                "hidden, layers, embedding_dim and trigram_vocab must be at least 1",
            );
        }
        if !(0.0..1.0).contains(&m.dropout) {
            return bad("model.dropout", "must be in [0, 1)");
        }
        if m.bidirectional && self.task == TaskKind::Lm {
            return bad(
                "model.bidirectional",
                "a language model cannot see the future",
            );
        }
        if m.encoding == Encoding::Trigram && d.tokens != TokenKind::Words {
            return bad("model.encoding", "trigram word hashing needs word tokens");
        }
        if (m.embeddings.is_some() || m.freeze_embeddings) && m.encoding != Encoding::Embedding {
            return bad(
                "model.embeddings",
                "pretrained or frozen embeddings need the embedding encoding",
            );
        }
        if m.freeze_embeddings && m.embeddings.is_none() {
            return bad(
                "model.freeze_embeddings",
                "freezing needs pretrained vectors (model.embeddings)",
            );
        }
        if m.freeze_embeddings && t.optimizer == OptimizerKind::Adamw {
            return bad(
                "model.freeze_embeddings",
                "AdamW's decoupled weight decay would still change frozen rows; use adam or sgd",
            );
        }
        if t.epochs == 0 || t.batch == 0 || t.keep == 0 {
            return bad("train", "epochs, batch and keep must be at least 1");
        }
        if t.max_tokens == Some(0) || t.checkpoint_every == Some(0) || t.max_steps == Some(0) {
            return bad(
                "train",
                "max_tokens, checkpoint_every and max_steps must be at least 1",
            );
        }
        if !(t.lr.is_finite() && t.lr > 0.0) {
            return bad("train.lr", "must be a positive number");
        }
        if t.clip.is_some_and(|c| !(c.is_finite() && c > 0.0)) {
            return bad("train.clip", "must be a positive number");
        }
        crate::data::batching::BatchConfig {
            max_batch: t.batch,
            max_tokens: t.max_tokens,
            bucketing: t.bucketing,
            shuffle: true,
            seed: t.seed,
        }
        .validate()
        .map_err(|e| RunError::Config(e.to_string()))?;
        Ok(())
    }
}

/// `over` merged into `base`: tables key by key (recursively), anything else replaced. A
/// table with a `kind` (a choice such as the bucketing) replaces the whole table.
pub fn merge(base: toml::Value, over: toml::Value) -> toml::Value {
    match (base, over) {
        (toml::Value::Table(mut b), toml::Value::Table(o)) if !o.contains_key("kind") => {
            for (k, v) in o {
                let merged = match b.remove(&k) {
                    Some(old) => merge(old, v),
                    None => v,
                };
                b.insert(k, merged);
            }
            toml::Value::Table(b)
        }
        (_, o) => o,
    }
}
