//! Ready-made training runs on generated data, shared by the `wgrnn` command line and the
//! tests: the slot-filling tagger of [`crate::data::slots`].

use rand::SeedableRng;
use rand::rngs::ChaCha8Rng;
use rand::seq::SliceRandom;
use thiserror::Error;

use crate::backend::Backend;
use crate::config::{
    Activation, CellConfig, HeadConfig, InputEncoding, LayerConfig, NetworkConfig, Task,
    UnknownTokens,
};
use crate::data::slots::{
    SlotSentence, Tag, Vocab, correct_tags, generate, memoryless_ceiling, predict_tags, to_batch,
};
use crate::error::{ConfigError, InputError};
use crate::model::{Mode, Model};
use crate::optim::{ClipConfig, OptimizerConfig, Schedule, TrainConfig};
use crate::train::Trainer;

/// Why a task run could not be done.
#[derive(Debug, Error)]
pub enum TaskError {
    /// A setting of the run is unusable.
    #[error("{0}")]
    Invalid(String),
    /// The network could not be built.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A batch did not fit the model, or training diverged.
    #[error(transparent)]
    Input(#[from] InputError),
}

/// Settings of a slot-filling run: a one-layer tagger (embedding -> recurrent layer ->
/// linear head over [`Tag`]s) trained with Adam on generated sentences and measured on
/// held-out ones.
#[derive(Clone, Debug, PartialEq)]
pub struct SlotTaskConfig {
    /// The recurrent cell.
    pub cell: CellConfig,
    /// Hidden size of the recurrent layer.
    pub hidden: usize,
    /// Width of the word embeddings.
    pub embedding: usize,
    /// `false` removes the recurrence (each word is tagged from itself alone).
    pub recurrent: bool,
    /// Passes over the training sentences.
    pub epochs: usize,
    /// Sentences per update.
    pub batch_size: usize,
    /// Adam's learning rate.
    pub lr: f32,
    /// Seed of the training sentences, the initial parameters and the batch order; the
    /// held-out sentences use [`held_out_seed`]`(seed)`.
    pub seed: u64,
    /// Number of generated training sentences.
    pub train_sentences: usize,
    /// Number of generated held-out sentences.
    pub test_sentences: usize,
}

impl Default for SlotTaskConfig {
    /// An LSTM with 32 hidden units trained for 8 epochs on 1000 sentences (a few seconds on
    /// one core).
    fn default() -> Self {
        SlotTaskConfig {
            cell: lstm(),
            hidden: 32,
            embedding: 16,
            recurrent: true,
            epochs: 8,
            batch_size: 16,
            lr: 0.02,
            seed: 1,
            train_sentences: 1000,
            test_sentences: 400,
        }
    }
}

/// An LSTM cell with PyTorch's activations and a forget-gate bias of 1.
pub fn lstm() -> CellConfig {
    CellConfig::Lstm {
        gate: Activation::Sigmoid,
        cell: Activation::Tanh,
        hidden: Activation::Tanh,
        peephole: false,
        proj: None,
        forget_bias: Some(1.0),
    }
}

/// The seed of the held-out sentences of a run seeded with `seed` (a different stream).
pub fn held_out_seed(seed: u64) -> u64 {
    seed ^ 0x9e37_79b9_7f4a_7c15
}

/// What one epoch measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SlotEpoch {
    /// 1-based epoch number.
    pub epoch: usize,
    /// Mean training loss of the epoch's updates, weighted by words.
    pub train_loss: f64,
    /// Token accuracy on the held-out sentences after the epoch.
    pub test_accuracy: f64,
}

/// The outcome of a slot-filling run.
pub struct SlotRun<B: Backend> {
    /// The trained model.
    pub model: Model<B>,
    /// The vocabulary its ids refer to.
    pub vocab: Vocab,
    /// Each epoch's measurements.
    pub epochs: Vec<SlotEpoch>,
    /// Token accuracy on the held-out sentences at the end.
    pub test_accuracy: f64,
    /// [`memoryless_ceiling`] of the held-out sentences: what no tagger without memory can beat.
    pub ceiling: f64,
    /// Number of words in the held-out sentences.
    pub test_words: usize,
}

/// The network of a slot-filling run.
pub fn slot_network(cfg: &SlotTaskConfig, vocab: &Vocab) -> NetworkConfig {
    NetworkConfig {
        input: InputEncoding::Embedding {
            vocab: vocab.len(),
            dim: cfg.embedding,
            unknown: UnknownTokens::Error,
        },
        layers: vec![LayerConfig {
            cell: cfg.cell.clone(),
            hidden: cfg.hidden,
            bidirectional: false,
            dropout: 0.0,
            recurrent: cfg.recurrent,
        }],
        head: Some(HeadConfig {
            classes: Tag::COUNT,
            task: Task::Tagging { ignore_label: None },
        }),
    }
}

/// Sentences evaluated per forward pass.
const EVAL_CHUNK: usize = 256;

/// Number of right tags and of words of a model on sentences (evaluation mode).
pub fn count_correct<B: Backend>(
    model: &mut Model<B>,
    vocab: &Vocab,
    sentences: &[SlotSentence],
) -> Result<(usize, usize), InputError> {
    let (mut right, mut total) = (0, 0);
    for chunk in sentences.chunks(EVAL_CHUNK) {
        let (batch, _) = to_batch::<B::Scalar>(chunk, vocab);
        model.forward(&batch, None, Mode::Eval)?;
        let (r, t) = correct_tags(&model.outputs(), chunk)?;
        right += r;
        total += t;
    }
    Ok((right, total))
}

/// The tags a model predicts for sentences given as words (evaluation mode). An empty
/// sentence is an error.
pub fn tag_words<B: Backend>(
    model: &mut Model<B>,
    vocab: &Vocab,
    sentences: &[Vec<String>],
) -> Result<Vec<Vec<Tag>>, InputError> {
    let mut out = Vec::new();
    for chunk in sentences.chunks(EVAL_CHUNK) {
        let chunk: Vec<SlotSentence> = chunk
            .iter()
            .map(|w| SlotSentence {
                words: w.clone(),
                tags: vec![Tag::O; w.len()],
            })
            .collect();
        let (batch, _) = to_batch::<B::Scalar>(&chunk, vocab);
        model.forward(&batch, None, Mode::Eval)?;
        out.extend(predict_tags(&model.outputs(), &chunk)?);
    }
    Ok(out)
}

fn check(cfg: &SlotTaskConfig) -> Result<(), TaskError> {
    let bad = |what: &str| Err(TaskError::Invalid(what.into()));
    if cfg.batch_size == 0 {
        return bad("batch size must be at least 1");
    }
    if cfg.train_sentences == 0 {
        return bad("need at least one training sentence");
    }
    if cfg.test_sentences == 0 {
        return bad("need at least one held-out sentence");
    }
    if !(cfg.lr.is_finite() && cfg.lr > 0.0) {
        return bad("the learning rate must be a positive number");
    }
    Ok(())
}

/// Trains a slot-filling tagger on `backend` and measures it on held-out sentences after
/// every epoch; `on_epoch` sees each epoch's numbers as they come (for progress output).
pub fn train_slot_tagger<B: Backend>(
    backend: B,
    cfg: &SlotTaskConfig,
    mut on_epoch: impl FnMut(&SlotEpoch),
) -> Result<SlotRun<B>, TaskError> {
    check(cfg)?;
    let vocab = Vocab::new();
    let train = generate(cfg.train_sentences, cfg.seed);
    let test = generate(cfg.test_sentences, held_out_seed(cfg.seed));
    let ceiling = memoryless_ceiling(&test);
    let model = Model::new(backend, slot_network(cfg, &vocab), cfg.seed)?;
    let train_cfg = TrainConfig {
        optimizer: OptimizerConfig::adam(),
        lr: cfg.lr,
        schedule: Schedule::Constant,
        clip: ClipConfig {
            max_norm: Some(5.0),
            max_value: None,
        },
    };
    let mut trainer = Trainer::new(model, train_cfg, cfg.seed);
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed.wrapping_add(1));
    let mut order: Vec<usize> = (0..train.len()).collect();
    let mut epochs = Vec::new();
    let mut test_accuracy = accuracy(&mut trainer.model, &vocab, &test)?;
    for epoch in 1..=cfg.epochs {
        order.shuffle(&mut rng);
        let (mut loss_sum, mut words) = (0.0, 0usize);
        for idx in order.chunks(cfg.batch_size) {
            let chunk: Vec<SlotSentence> = idx.iter().map(|&i| train[i].clone()).collect();
            let (batch, targets) = to_batch::<B::Scalar>(&chunk, &vocab);
            let stats = trainer.step(&batch, &targets)?;
            let n = batch.seq.valid_steps();
            loss_sum += stats.loss * n as f64;
            words += n;
        }
        test_accuracy = accuracy(&mut trainer.model, &vocab, &test)?;
        let e = SlotEpoch {
            epoch,
            train_loss: loss_sum / words.max(1) as f64,
            test_accuracy,
        };
        on_epoch(&e);
        epochs.push(e);
    }
    Ok(SlotRun {
        model: trainer.model,
        vocab,
        epochs,
        test_accuracy,
        ceiling,
        test_words: test.iter().map(SlotSentence::len).sum(),
    })
}

fn accuracy<B: Backend>(
    model: &mut Model<B>,
    vocab: &Vocab,
    sentences: &[SlotSentence],
) -> Result<f64, InputError> {
    let (right, total) = count_correct(model, vocab, sentences)?;
    Ok(if total == 0 {
        1.0
    } else {
        right as f64 / total as f64
    })
}
