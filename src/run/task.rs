//! From a [`RunConfig`] to examples and a network: reads the files of the task, builds (or
//! reuses) the vocabularies, holds out validation data, and describes the network that fits.
//!
//! What a trained model needs besides its weights to read new text is an [`Artifacts`]: the
//! token vocabulary, the labels and, for word hashing, the trigram vocabulary. A run
//! directory stores them next to the weights.

use std::collections::HashMap;
use std::sync::Arc;

use rand::SeedableRng;
use rand::rngs::ChaCha8Rng;
use rand::seq::SliceRandom;

use crate::config::{
    Activation, CellConfig, GruVariant, HeadConfig, InputEncoding, LayerConfig, NetworkConfig,
    Pooling, Task, UnknownTokens,
};
use crate::data::conll::Conll;
use crate::data::example::{Example, fit_length, lm_stream};
use crate::data::formats::{TsvFile, read_plain};
use crate::data::labels::LabelVocab;
use crate::data::tokenize::Tokenizer;
use crate::data::trigram::TrigramVocab;
use crate::data::vocab::{VocabOptions, Vocabulary};
use crate::run::RunError;
use crate::run::config::{CellKind, Encoding, PoolKind, RunConfig, TaskKind, TokenKind};
use crate::tasks::lstm;

/// The vocabularies a model's ids and classes refer to.
#[derive(Clone, Debug, PartialEq)]
pub struct Artifacts {
    /// Token ids of the input (and the classes of a language model's head).
    pub vocab: Vocabulary,
    /// Tags or classes (tagging and classification).
    pub labels: Option<LabelVocab>,
    /// Letter-trigram ids (word hashing only).
    pub trigrams: Option<TrigramVocab>,
}

/// How a token sequence becomes model input ids: vocabulary ids, or (word hashing) ids into
/// a table of words whose rows are their trigram bags.
#[derive(Clone, Debug, Default)]
pub struct WordTable {
    /// Trigram ids of each word id.
    pub bags: Vec<Vec<u32>>,
    index: HashMap<String, u32>,
}

impl WordTable {
    /// The id of `word`, adding it (with its trigram bag) if new.
    fn id(&mut self, word: &str, trigrams: &TrigramVocab) -> u32 {
        if let Some(&i) = self.index.get(word) {
            return i;
        }
        let i = self.bags.len() as u32;
        self.bags.push(trigrams.encode(word));
        self.index.insert(word.to_string(), i);
        i
    }
}

/// Examples and what their ids mean.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// The examples (ids and targets).
    pub examples: Arc<Vec<Example>>,
    /// For word hashing: the table the example ids index.
    pub words: Option<Arc<WordTable>>,
    /// Where the data came from (for messages).
    pub source: String,
}

impl Dataset {
    /// Number of scored steps (per-step tasks) or sequences (classification).
    pub fn len(&self) -> usize {
        self.examples.len()
    }

    /// Whether there are no examples.
    pub fn is_empty(&self) -> bool {
        self.examples.is_empty()
    }
}

/// A task's data, ready to train on.
pub struct Prepared {
    /// The vocabularies.
    pub artifacts: Artifacts,
    /// Training examples.
    pub train: Dataset,
    /// Validation examples.
    pub valid: Dataset,
    /// The network that fits the vocabularies.
    pub network: NetworkConfig,
}

impl Artifacts {
    /// The tokenizer of a run.
    pub fn tokenizer(cfg: &RunConfig) -> Tokenizer {
        match cfg.data.tokens {
            TokenKind::Chars => Tokenizer::Chars,
            TokenKind::Words => Tokenizer::Words {
                lowercase: cfg.data.lowercase,
            },
        }
    }

    /// Model input ids of a token sequence (vocabulary ids, or word-table ids when hashing).
    pub fn input_ids<S: AsRef<str>>(
        &self,
        tokens: &[S],
        table: Option<&mut WordTable>,
    ) -> Vec<u32> {
        match (table, &self.trigrams) {
            (Some(t), Some(tri)) => tokens.iter().map(|w| t.id(w.as_ref(), tri)).collect(),
            _ => self.vocab.encode(tokens),
        }
    }

    /// Width of the hashed input (trigram vocabulary size), if hashing.
    pub fn trigram_width(&self) -> Option<usize> {
        self.trigrams.as_ref().map(|t| t.vocabulary().len())
    }
}

/// Reads the data of `cfg` and builds the vocabularies from the training part (or takes
/// `saved` ones, when resuming or evaluating a trained model).
pub fn prepare(cfg: &RunConfig, saved: Option<Artifacts>) -> Result<Prepared, RunError> {
    cfg.validate()?;
    let tok = Artifacts::tokenizer(cfg);
    let options = VocabOptions {
        max_size: cfg.data.vocab_size,
        min_count: cfg.data.min_count,
    };
    let d = &cfg.data;
    // Token sequences (with targets) of the training and validation parts.
    let (train_tokens, valid_tokens, train_targets, valid_targets, labels) = match cfg.task {
        TaskKind::Lm => {
            let all = read_plain(&d.train, &tok)?;
            let (train, valid) = match &d.valid {
                Some(v) => (all, read_plain(v, &tok)?),
                None => {
                    let cut = ((all.len() as f64) * (1.0 - d.valid_fraction)) as usize;
                    if cut < 2 || all.len() - cut < 2 {
                        return Err(RunError::Data(format!(
                            "{}: {} tokens are too few to hold out a validation part",
                            d.train.display(),
                            all.len()
                        )));
                    }
                    let valid = all[cut..].to_vec();
                    let mut train = all;
                    train.truncate(cut);
                    (train, valid)
                }
            };
            (vec![train], vec![valid], None, None, None)
        }
        TaskKind::Tag => {
            if d.tokens == TokenKind::Chars {
                return Err(RunError::Config(
                    "`data.tokens`: tagging reads the words of a CoNLL file; use words".into(),
                ));
            }
            let train = Conll::read(&d.train)?;
            let labels = match &saved {
                Some(a) => a.labels.clone().ok_or_else(|| missing("labels"))?,
                None => LabelVocab::from_labels(train.all_tags()),
            };
            let (tt, ty, vt, vy) = match &d.valid {
                Some(v) => {
                    let valid = Conll::read(v)?;
                    (
                        train.tokens(&tok),
                        train.tag_ids(&labels)?,
                        valid.tokens(&tok),
                        valid.tag_ids(&labels)?,
                    )
                }
                None => {
                    let (tr, va) = split(train.tokens(&tok), train.tag_ids(&labels)?, cfg)?;
                    (tr.0, tr.1, va.0, va.1)
                }
            };
            (tt, vt, Some(ty), Some(vy), Some(labels))
        }
        TaskKind::Classify => {
            let train = TsvFile::read(&d.train)?;
            let labels = match &saved {
                Some(a) => a.labels.clone().ok_or_else(|| missing("labels"))?,
                None => LabelVocab::from_labels(train.rows.iter().map(|r| r.label.as_str())),
            };
            let one = |ids: Vec<u32>| ids.into_iter().map(|c| vec![c]).collect::<Vec<_>>();
            let (tt, ty, vt, vy) = match &d.valid {
                Some(v) => {
                    let valid = TsvFile::read(v)?;
                    (
                        train.tokens(&tok),
                        one(train.label_ids(&labels)?),
                        valid.tokens(&tok),
                        one(valid.label_ids(&labels)?),
                    )
                }
                None => {
                    let (tr, va) = split(train.tokens(&tok), one(train.label_ids(&labels)?), cfg)?;
                    (tr.0, tr.1, va.0, va.1)
                }
            };
            (tt, vt, Some(ty), Some(vy), Some(labels))
        }
    };

    let artifacts = match saved {
        Some(a) => a,
        None => {
            let vocab = Vocabulary::from_tokens(train_tokens.iter().flatten(), &options);
            let trigrams = (cfg.model.encoding == Encoding::Trigram).then(|| {
                TrigramVocab::from_words(
                    train_tokens.iter().flatten(),
                    &VocabOptions {
                        max_size: Some(cfg.model.trigram_vocab),
                        min_count: 1,
                    },
                )
            });
            Artifacts {
                vocab,
                labels,
                trigrams,
            }
        }
    };
    if (cfg.model.encoding == Encoding::Trigram) != artifacts.trigrams.is_some() {
        return Err(RunError::Config(
            "the saved vocabularies do not match `model.encoding` (trigram or not)".into(),
        ));
    }

    let train_name = d.train.display().to_string();
    let valid_name = match &d.valid {
        Some(v) => v.display().to_string(),
        None => format!("{} (held-out {:.0}%)", train_name, 100.0 * d.valid_fraction),
    };
    let train = dataset(cfg, &artifacts, train_tokens, train_targets, train_name)?;
    let valid = dataset(cfg, &artifacts, valid_tokens, valid_targets, valid_name)?;
    let network = network(cfg, &artifacts);
    Ok(Prepared {
        artifacts,
        train,
        valid,
        network,
    })
}

fn missing(what: &str) -> RunError {
    RunError::Config(format!("the saved run has no {what}"))
}

/// Token sequences and targets split into (train, valid) by a seeded shuffle.
type Part = (Vec<Vec<String>>, Vec<Vec<u32>>);
fn split(
    tokens: Vec<Vec<String>>,
    targets: Vec<Vec<u32>>,
    cfg: &RunConfig,
) -> Result<(Part, Part), RunError> {
    let n = tokens.len();
    let n_valid = ((n as f64) * cfg.data.valid_fraction).round() as usize;
    if n < 2 || n_valid == 0 || n_valid >= n {
        return Err(RunError::Data(format!(
            "{}: {n} sequences are too few to hold out {:.0}% for validation (give --valid FILE)",
            cfg.data.train.display(),
            100.0 * cfg.data.valid_fraction
        )));
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(
        cfg.train.seed ^ 0x05ee_d0f5_9117_u64,
    ));
    let mut is_valid = vec![false; n];
    for &i in &order[..n_valid] {
        is_valid[i] = true;
    }
    let (mut train, mut valid): (Part, Part) = Default::default();
    for (i, (t, y)) in tokens.into_iter().zip(targets).enumerate() {
        let part = if is_valid[i] { &mut valid } else { &mut train };
        part.0.push(t);
        part.1.push(y);
    }
    Ok((train, valid))
}

/// Examples of one part.
fn dataset(
    cfg: &RunConfig,
    art: &Artifacts,
    tokens: Vec<Vec<String>>,
    targets: Option<Vec<Vec<u32>>>,
    source: String,
) -> Result<Dataset, RunError> {
    let mut table = art.trigrams.as_ref().map(|_| WordTable::default());
    let mut examples = Vec::new();
    match cfg.task {
        TaskKind::Lm => {
            for stream in &tokens {
                let ids = art.vocab.encode(stream);
                let pieces = lm_stream(&ids, cfg.data.max_len)?;
                match table.as_mut() {
                    None => examples.extend(pieces),
                    Some(t) => {
                        let inputs = art.input_ids(stream, Some(t));
                        let hashed = lm_stream(&inputs, cfg.data.max_len)?;
                        examples.extend(hashed.into_iter().zip(pieces).map(|(h, p)| Example {
                            ids: h.ids,
                            target: p.target,
                        }));
                    }
                }
            }
        }
        TaskKind::Tag | TaskKind::Classify => {
            let targets = targets.expect("tagging and classification have targets");
            for (seq, y) in tokens.iter().zip(targets) {
                if seq.is_empty() {
                    continue;
                }
                let ids = art.input_ids(seq, table.as_mut());
                examples.push(match cfg.task {
                    TaskKind::Tag => Example::tagged(ids, y)?,
                    _ => Example::classified(ids, y[0]),
                });
            }
            examples = fit_length(examples, cfg.data.max_len, cfg.data.long)?;
        }
    }
    if examples.is_empty() {
        return Err(RunError::Data(format!("{source}: no usable sequences")));
    }
    Ok(Dataset {
        examples: Arc::new(examples),
        words: table.map(Arc::new),
        source,
    })
}

/// The cell a run's `cell` setting stands for (LSTM with forget-gate bias 1, PyTorch's
/// GRU, Elman tanh).
pub fn cell_config(kind: CellKind) -> CellConfig {
    match kind {
        CellKind::Lstm => lstm(),
        CellKind::Gru => CellConfig::Gru {
            variant: GruVariant::Pytorch,
        },
        CellKind::Elman => CellConfig::Elman {
            activation: Activation::Tanh,
        },
    }
}

/// The network of a run over its vocabularies.
pub fn network(cfg: &RunConfig, art: &Artifacts) -> NetworkConfig {
    let m = &cfg.model;
    let input = match (m.encoding, art.trigram_width()) {
        // Word hashing: the trigram count vector of each word (its bag, encoded on the device).
        (_, Some(vocab)) => InputEncoding::OneHot {
            vocab,
            unknown: UnknownTokens::Error,
        },
        (Encoding::Embedding, None) => InputEncoding::Embedding {
            vocab: art.vocab.len(),
            dim: m.embedding_dim,
            unknown: UnknownTokens::Error,
        },
        _ => InputEncoding::OneHot {
            vocab: art.vocab.len(),
            unknown: UnknownTokens::Error,
        },
    };
    let cell = cell_config(m.cell);
    let layers = (0..m.layers)
        .map(|k| LayerConfig {
            cell: cell.clone(),
            hidden: m.hidden,
            bidirectional: m.bidirectional,
            dropout: if k + 1 < m.layers { m.dropout } else { 0.0 },
            recurrent: true,
        })
        .collect();
    let labels = art.labels.as_ref().map_or(0, LabelVocab::len);
    let head = match cfg.task {
        TaskKind::Lm => HeadConfig {
            classes: art.vocab.len(),
            task: Task::LanguageModel,
        },
        TaskKind::Tag => HeadConfig {
            classes: labels,
            task: Task::Tagging { ignore_label: None },
        },
        TaskKind::Classify => HeadConfig {
            classes: labels,
            task: Task::Classification {
                pooling: match m.pooling {
                    PoolKind::Last => Pooling::Last,
                    PoolKind::Mean => Pooling::Mean,
                },
            },
        },
    };
    NetworkConfig {
        input,
        layers,
        head: Some(head),
    }
}

/// The examples of one file in the task's format, over saved vocabularies (for `eval`); a
/// tag or class the labels lack is an error naming the file and line.
pub fn load_file(
    cfg: &RunConfig,
    art: &Artifacts,
    path: &std::path::Path,
) -> Result<Dataset, RunError> {
    let tok = Artifacts::tokenizer(cfg);
    let labels = || art.labels.as_ref().ok_or_else(|| missing("labels"));
    let (tokens, targets) = match cfg.task {
        TaskKind::Lm => (vec![read_plain(path, &tok)?], None),
        TaskKind::Tag => {
            let c = Conll::read(path)?;
            (c.tokens(&tok), Some(c.tag_ids(labels()?)?))
        }
        TaskKind::Classify => {
            let f = TsvFile::read(path)?;
            let ids = f.label_ids(labels()?)?;
            (
                f.tokens(&tok),
                Some(ids.into_iter().map(|c| vec![c]).collect()),
            )
        }
    };
    dataset(cfg, art, tokens, targets, path.display().to_string())
}
