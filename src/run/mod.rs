//! Training runs on real data, as `wgrnn train` does them: a [`config::RunConfig`] names the
//! task, data, network and training; [`task`] turns files into examples and a network,
//! [`feed`] builds batches on a host thread and scores models, [`train_loop`] trains with
//! validation, early stopping, checkpoints and exact resume, [`run_dir`] lays out and
//! atomically writes the run directory, [`resume`] holds what a checkpoint needs besides the
//! weights, [`progress`] reports (bar, quiet, JSON lines), [`plot`] draws the SVG plot, and
//! [`infer`] loads a run to generate, tag, classify or evaluate.

use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::data::error::DataError;
use crate::error::{CheckpointError, ConfigError, InputError};

pub mod config;
pub mod feed;
pub mod infer;
pub mod plot;
pub mod progress;
pub mod resume;
pub mod run_dir;
pub mod task;
pub mod train_loop;

/// Why a run could not be done.
#[derive(Debug, Error)]
pub enum RunError {
    /// A setting is unusable, or a run directory is not what it should be.
    #[error("{0}")]
    Config(String),
    /// The data does not suffice.
    #[error("{0}")]
    Data(String),
    /// A data file is malformed (names the file and line).
    #[error(transparent)]
    File(#[from] DataError),
    /// A file of the run could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The network could not be built.
    #[error(transparent)]
    Network(#[from] ConfigError),
    /// A batch did not fit the model.
    #[error(transparent)]
    Input(#[from] InputError),
    /// Weights could not be loaded (names every tensor that does not fit).
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A step's loss or gradient norm was not finite and the run stops there.
    #[error(
        "training stopped: the {what} (the update was not applied). {}",
        match checkpoint {
            Some(c) => format!("The last good checkpoint is {} (intact); continue it with --resume and a lower --lr, or train with --on-nan skip", c.display()),
            None => "No checkpoint had been written yet; try a lower --lr or --on-nan skip".to_string(),
        }
    )]
    NotFinite {
        /// What was not finite, naming the step, e.g. "loss at step 17 is not finite (NaN)".
        what: String,
        /// The newest checkpoint, left as it was.
        checkpoint: Option<PathBuf>,
    },
}

impl RunError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        RunError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}
