//! The directory of a training run: what is in it, and writing it safely.
//!
//! ```text
//! runs/lm-1/
//!   config.toml            the run's settings (task, data, network, training)
//!   network.toml           the network description the weights belong to
//!   vocab.tsv              token vocabulary (`token TAB count`, id = line - 1)
//!   labels.txt             tags or classes, one per line in class-id order (tag, classify)
//!   trigrams.tsv           letter-trigram vocabulary (word hashing only)
//!   metrics.csv            one row per epoch: losses and validation metrics
//!   steps.csv              one row per update: step, epoch, loss, gradient norm, lr
//!   plot.svg               training loss and validation metric
//!   best.safetensors       weights of the best validation epoch so far
//!   latest                 name of the newest checkpoint directory
//!   checkpoints/step-00000420/
//!     weights.safetensors  parameters (PyTorch names)
//!     optimizer.safetensors the optimizer's state buffers
//!     state.json           step, epoch, position in the epoch, learning rate, early-stop state
//! ```
//!
//! Every file is written to a temporary name in the same directory, flushed and renamed over
//! the old one; a checkpoint is written as a whole temporary directory that is renamed into
//! place. A crash or Ctrl-C therefore never leaves a half-written file, and `latest` always
//! names a complete checkpoint. Only the newest `keep` checkpoints are kept.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::data::labels::LabelVocab;
use crate::data::trigram::TrigramVocab;
use crate::data::vocab::Vocabulary;
use crate::run::RunError;
use crate::run::config::{RunConfig, TaskKind};
use crate::run::task::Artifacts;

/// The run's settings.
pub const CONFIG: &str = "config.toml";
/// The network description.
pub const NETWORK: &str = "network.toml";
/// The token vocabulary.
pub const VOCAB: &str = "vocab.tsv";
/// The labels.
pub const LABELS: &str = "labels.txt";
/// The trigram vocabulary.
pub const TRIGRAMS: &str = "trigrams.tsv";
/// Per-epoch metrics.
pub const METRICS: &str = "metrics.csv";
/// Per-step losses.
pub const STEPS: &str = "steps.csv";
/// The plot.
pub const PLOT: &str = "plot.svg";
/// The best weights.
pub const BEST: &str = "best.safetensors";
/// The pointer to the newest checkpoint.
pub const LATEST: &str = "latest";
/// The checkpoint directories.
pub const CHECKPOINTS: &str = "checkpoints";
/// Weights inside a checkpoint.
pub const WEIGHTS: &str = "weights.safetensors";
/// Optimizer state inside a checkpoint.
pub const OPTIMIZER: &str = "optimizer.safetensors";
/// Training state inside a checkpoint.
pub const STATE: &str = "state.json";

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RunError> {
    let tmp = sibling(path, ".tmp");
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        RunError::io(path, e)
    })
}

/// `path` with `suffix` appended to its file name.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut s = OsString::from(path.as_os_str());
    s.push(suffix);
    PathBuf::from(s)
}

/// A run directory.
#[derive(Clone, Debug)]
pub struct RunDir {
    /// Its path.
    pub path: PathBuf,
}

/// The first free `root/<task>-<n>` (n = 1, 2, ...).
pub fn next_run_dir(root: &Path, task: TaskKind) -> PathBuf {
    (1..)
        .map(|n| root.join(format!("{}-{n}", task.name())))
        .find(|p| !p.exists())
        .expect("some number is free")
}

impl RunDir {
    /// Creates a new run directory; an existing non-empty directory is an error (resume it
    /// with `--resume` or choose another).
    pub fn create(path: &Path) -> Result<Self, RunError> {
        if path.exists()
            && std::fs::read_dir(path)
                .map_err(|e| RunError::io(path, e))?
                .next()
                .is_some()
        {
            return Err(RunError::Config(format!(
                "the run directory {} already exists and is not empty (continue it with --resume {0}, or choose another --run-dir)",
                path.display()
            )));
        }
        std::fs::create_dir_all(path.join(CHECKPOINTS)).map_err(|e| RunError::io(path, e))?;
        Ok(RunDir { path: path.into() })
    }

    /// Opens an existing run directory (it must hold `config.toml`).
    pub fn open(path: &Path) -> Result<Self, RunError> {
        if !path.join(CONFIG).is_file() {
            return Err(RunError::Config(format!(
                "{} is not a run directory (no {CONFIG})",
                path.display()
            )));
        }
        Ok(RunDir { path: path.into() })
    }

    /// A file of the run.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Writes the settings, the network description and the vocabularies.
    pub fn save_setup(
        &self,
        cfg: &RunConfig,
        network: &crate::config::NetworkConfig,
        art: &Artifacts,
    ) -> Result<(), RunError> {
        write_atomic(&self.file(CONFIG), cfg.to_toml().as_bytes())?;
        let net = toml::to_string(network).map_err(|e| RunError::Config(e.to_string()))?;
        write_atomic(&self.file(NETWORK), net.as_bytes())?;
        write_atomic(&self.file(VOCAB), art.vocab.to_text().as_bytes())?;
        if let Some(l) = &art.labels {
            let text: String = l.labels().iter().map(|s| format!("{s}\n")).collect();
            write_atomic(&self.file(LABELS), text.as_bytes())?;
        }
        if let Some(t) = &art.trigrams {
            write_atomic(&self.file(TRIGRAMS), t.vocabulary().to_text().as_bytes())?;
        }
        Ok(())
    }

    /// Reads the settings and the vocabularies.
    pub fn load_setup(&self) -> Result<(RunConfig, Artifacts), RunError> {
        let path = self.file(CONFIG);
        let text = std::fs::read_to_string(&path).map_err(|e| RunError::io(&path, e))?;
        let cfg = RunConfig::from_toml(&text)
            .map_err(|e| RunError::Config(format!("{}: {e}", path.display())))?;
        let vocab = Vocabulary::load(&self.file(VOCAB))?;
        let labels = match self.file(LABELS) {
            p if p.is_file() => {
                let text = std::fs::read_to_string(&p).map_err(|e| RunError::io(&p, e))?;
                let list: Vec<String> = text.lines().map(str::to_string).collect();
                Some(LabelVocab::try_from(list)?)
            }
            _ => None,
        };
        let trigrams = match self.file(TRIGRAMS) {
            p if p.is_file() => Some(TrigramVocab::from_vocabulary(Vocabulary::load(&p)?)),
            _ => None,
        };
        Ok((
            cfg,
            Artifacts {
                vocab,
                labels,
                trigrams,
            },
        ))
    }

    /// The checkpoints present, oldest first, as (step, directory).
    pub fn checkpoints(&self) -> Vec<(u64, PathBuf)> {
        let Ok(entries) = std::fs::read_dir(self.path.join(CHECKPOINTS)) else {
            return Vec::new();
        };
        let mut out: Vec<(u64, PathBuf)> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let step = name.strip_prefix("step-")?.parse().ok()?;
                Some((step, e.path()))
            })
            .collect();
        out.sort();
        out
    }

    /// The newest complete checkpoint (the one `latest` names).
    pub fn latest(&self) -> Option<PathBuf> {
        let name = std::fs::read_to_string(self.file(LATEST)).ok()?;
        let dir = self.path.join(CHECKPOINTS).join(name.trim());
        dir.join(STATE).is_file().then_some(dir)
    }

    /// Writes a checkpoint of update `step`: `fill` writes its files into a temporary
    /// directory, which is then renamed to `checkpoints/step-NNNNNNNN`; `latest` is pointed
    /// at it and all but the newest `keep` checkpoints are removed. Returns its directory.
    pub fn save_checkpoint(
        &self,
        step: u64,
        keep: usize,
        fill: impl FnOnce(&Path) -> Result<(), RunError>,
    ) -> Result<PathBuf, RunError> {
        let root = self.path.join(CHECKPOINTS);
        let name = format!("step-{step:08}");
        let dir = root.join(&name);
        let tmp = root.join(format!(".tmp-{name}"));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(|e| RunError::io(&tmp, e))?;
        fill(&tmp)?;
        if dir.exists() {
            // The same step saved again (e.g. an interrupted run stopped right after an
            // epoch's checkpoint): the new one replaces it.
            std::fs::remove_dir_all(&dir).map_err(|e| RunError::io(&dir, e))?;
        }
        std::fs::rename(&tmp, &dir).map_err(|e| RunError::io(&dir, e))?;
        write_atomic(&self.file(LATEST), format!("{name}\n").as_bytes())?;
        let all = self.checkpoints();
        for (_, old) in all.iter().take(all.len().saturating_sub(keep)) {
            std::fs::remove_dir_all(old).map_err(|e| RunError::io(old, e))?;
        }
        Ok(dir)
    }

    /// The weights inference uses: `best.safetensors`, else the newest checkpoint's.
    pub fn weights(&self) -> Result<PathBuf, RunError> {
        let best = self.file(BEST);
        if best.is_file() {
            return Ok(best);
        }
        self.latest().map(|d| d.join(WEIGHTS)).ok_or_else(|| {
            RunError::Config(format!(
                "{} holds no trained weights yet",
                self.path.display()
            ))
        })
    }
}
