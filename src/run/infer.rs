//! Using a trained run: sample text from a language model, tag words, classify texts, and
//! score a data file, with the vocabularies saved in the run directory.

use std::path::Path;
use std::sync::Arc;

use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};

use crate::backend::{Backend, Real};
use crate::checkpoint;
use crate::data::example::Example;
use crate::data::tokenize::Tokenizer;
use crate::data::vocab::RESERVED;
use crate::model::{LayerState, Mode, Model};
use crate::run::RunError;
use crate::run::config::{RunConfig, TaskKind, TokenKind};
use crate::run::feed::{Scores, argmax, evaluate, make_batch};
use crate::run::run_dir::RunDir;
use crate::run::task::{Artifacts, Dataset, WordTable, load_file, prepare};

/// A trained model with its run's settings and vocabularies.
pub struct Loaded<B: Backend> {
    /// The run's settings.
    pub cfg: RunConfig,
    /// Its vocabularies.
    pub art: Artifacts,
    /// The model with the trained weights.
    pub model: Model<B>,
    /// The weights file loaded.
    pub weights: std::path::PathBuf,
}

/// How a language model picks the next token.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sampling {
    /// Softmax temperature (> 0; lower is more conservative).
    pub temperature: f64,
    /// Draw only among the `k` likeliest tokens (`None`: all).
    pub top_k: Option<usize>,
    /// Seed of the draws.
    pub seed: u64,
}

/// Loads the run in `dir` with its best weights (or `weights` when given).
pub fn load<B: Backend>(
    backend: B,
    dir: &Path,
    weights: Option<&Path>,
) -> Result<Loaded<B>, RunError> {
    let run = RunDir::open(dir)?;
    let (cfg, art) = run.load_setup()?;
    let network = crate::run::task::network(&cfg, &art);
    let mut model = Model::new(backend, network, cfg.train.seed)?;
    let weights = match weights {
        Some(w) => w.to_path_buf(),
        None => run.weights()?,
    };
    checkpoint::load(&mut model, &weights)?;
    Ok(Loaded {
        cfg,
        art,
        model,
        weights,
    })
}

impl<B: Backend> Loaded<B> {
    fn tokenizer(&self) -> Tokenizer {
        Artifacts::tokenizer(&self.cfg)
    }

    /// One-example data set of model input ids (with a word table when hashing).
    fn single(&self, tokens: &[String], target: crate::data::example::Target) -> Dataset {
        let mut table = self.art.trigrams.as_ref().map(|_| WordTable::default());
        let ids = self.art.input_ids(tokens, table.as_mut());
        Dataset {
            examples: Arc::new(vec![Example { ids, target }]),
            words: table.map(Arc::new),
            source: "input".into(),
        }
    }

    /// Continues `prompt` by `length` tokens sampled from the language model.
    pub fn generate(
        &mut self,
        prompt: &str,
        length: usize,
        sampling: Sampling,
    ) -> Result<String, RunError> {
        if self.cfg.task != TaskKind::Lm {
            return Err(RunError::Config(format!(
                "this run trained a `{}` model; generate needs a language model (task lm)",
                self.cfg.task.name()
            )));
        }
        if !(sampling.temperature.is_finite() && sampling.temperature > 0.0) {
            return Err(RunError::Config(
                "--temperature must be a positive number".into(),
            ));
        }
        generate(
            &mut self.model,
            &self.cfg,
            &self.art,
            prompt,
            length,
            sampling,
        )
    }

    /// The tag of every word of `text` (words as written, tags by name).
    pub fn tag(&mut self, text: &str) -> Result<Vec<(String, String)>, RunError> {
        self.expect(TaskKind::Tag, "tag")?;
        let shown = Tokenizer::Words { lowercase: false }.tokenize(text);
        if shown.is_empty() {
            return Ok(Vec::new());
        }
        let tok = self.tokenizer();
        let mut out = Vec::with_capacity(shown.len());
        // Longer inputs are tagged in pieces of the trained maximum length.
        for piece in shown.chunks(self.cfg.data.max_len.max(1)) {
            let tokens: Vec<String> = piece.iter().map(|w| tok.normalize(w)).collect();
            let data = self.single(
                &tokens,
                crate::data::example::Target::Steps(vec![0; tokens.len()]),
            );
            let p = make_batch::<B::Scalar>(&data, &[0], None)?;
            self.model.forward(&p.batch, None, Mode::Eval)?;
            let out_logits = self.model.outputs();
            let classes = out_logits.len() / tokens.len();
            for (t, w) in piece.iter().enumerate() {
                let c = argmax(&out_logits[t * classes..(t + 1) * classes]) as u32;
                out.push((w.clone(), self.label(c)));
            }
        }
        Ok(out)
    }

    /// The class of `text` and the probability the model gives it.
    pub fn classify(&mut self, text: &str) -> Result<(String, f64), RunError> {
        self.expect(TaskKind::Classify, "classify")?;
        let mut tokens = self.tokenizer().tokenize(text);
        if tokens.is_empty() {
            return Err(RunError::Data("cannot classify an empty text".into()));
        }
        tokens.truncate(self.cfg.data.max_len);
        let data = self.single(&tokens, crate::data::example::Target::Class(0));
        let p = make_batch::<B::Scalar>(&data, &[0], None)?;
        self.model.forward(&p.batch, None, Mode::Eval)?;
        let logits: Vec<f64> = self.model.outputs().iter().map(|v| v.f64()).collect();
        let probs = softmax(&logits, 1.0);
        let c = argmax(&logits);
        Ok((self.label(c as u32), probs[c]))
    }

    /// Scores the model on `file` (in the task's format), or on the run's validation data.
    pub fn evaluate(&mut self, file: Option<&Path>) -> Result<(Scores, String), RunError> {
        let data = match file {
            Some(f) => load_file(&self.cfg, &self.art, f)?,
            None => prepare(&self.cfg, Some(self.art.clone()))?.valid,
        };
        let chars = self.cfg.data.tokens == TokenKind::Chars;
        let s = evaluate(&mut self.model, &data, self.cfg.task, &self.art, chars)?;
        Ok((s, data.source))
    }

    fn label(&self, c: u32) -> String {
        self.art
            .labels
            .as_ref()
            .and_then(|l| l.label(c))
            .unwrap_or("?")
            .to_string()
    }

    fn expect(&self, task: TaskKind, verb: &str) -> Result<(), RunError> {
        if self.cfg.task == task {
            return Ok(());
        }
        Err(RunError::Config(format!(
            "this run trained a `{}` model; {verb} needs a `{}` model",
            self.cfg.task.name(),
            task.name()
        )))
    }
}

fn softmax(logits: &[f64], temperature: f64) -> Vec<f64> {
    let m = logits.iter().copied().fold(f64::MIN, f64::max);
    let e: Vec<f64> = logits
        .iter()
        .map(|l| ((l - m) / temperature).exp())
        .collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

/// Samples `length` tokens after `prompt` from a language model (used by [`Loaded::generate`]
/// and by training to show samples). An empty prompt starts from a newline (characters) or
/// from the most frequent word.
pub fn generate<B: Backend>(
    model: &mut Model<B>,
    cfg: &RunConfig,
    art: &Artifacts,
    prompt: &str,
    length: usize,
    sampling: Sampling,
) -> Result<String, RunError> {
    let tok = Artifacts::tokenizer(cfg);
    let chars = cfg.data.tokens == TokenKind::Chars;
    let mut tokens = tok.tokenize(prompt);
    if tokens.is_empty() {
        tokens.push(if chars {
            "\n".to_string()
        } else {
            art.vocab
                .token(RESERVED as u32)
                .unwrap_or("the")
                .to_string()
        });
    }
    let mut rng = ChaCha8Rng::seed_from_u64(sampling.seed);
    let mut out = String::new();
    let mut state: Option<Vec<LayerState<B::Scalar>>> = None;
    let mut feed = tokens;
    for _ in 0..length {
        let mut table = art.trigrams.as_ref().map(|_| WordTable::default());
        let ids = art.input_ids(&feed, table.as_mut());
        let data = Dataset {
            examples: Arc::new(vec![Example {
                ids,
                target: crate::data::example::Target::Steps(vec![0; feed.len()]),
            }]),
            words: table.map(Arc::new),
            source: "prompt".into(),
        };
        let p = make_batch::<B::Scalar>(&data, &[0], None)?;
        model.forward(&p.batch, state.as_deref(), Mode::Eval)?;
        let logits = model.outputs();
        let classes = logits.len() / feed.len();
        let last: Vec<f64> = logits[(feed.len() - 1) * classes..]
            .iter()
            .map(|v| v.f64())
            .collect();
        state = Some(model.final_states());
        // Never the padding or "other" ids.
        let mut probs = softmax(&last, sampling.temperature);
        let reserved = RESERVED.min(probs.len());
        probs[..reserved].fill(0.0);
        if let Some(k) = sampling.top_k.filter(|&k| k > 0 && k < probs.len()) {
            let mut sorted = probs.clone();
            sorted.sort_by(|a, b| b.total_cmp(a));
            let cut = sorted[k - 1];
            let mut kept = 0;
            for p in probs.iter_mut() {
                if *p < cut || kept >= k {
                    *p = 0.0;
                } else {
                    kept += 1;
                }
            }
        }
        let total: f64 = probs.iter().sum();
        let mut r = rng.random::<f64>() * total;
        let mut pick = argmax(&probs);
        for (i, p) in probs.iter().enumerate() {
            if r < *p {
                pick = i;
                break;
            }
            r -= p;
        }
        let token = art.vocab.token(pick as u32).unwrap_or("").to_string();
        if !chars && !out.is_empty() {
            out.push(' ');
        }
        out += &token;
        feed = vec![token];
    }
    Ok(out)
}
