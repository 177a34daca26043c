//! wgrnn: recurrent networks (Elman, Jordan, LSTM, GRU; stacked, bidirectional) trained
//! through fused whole-sequence operations, with a plain CPU reference backend that defines
//! the right answer and PyTorch-compatible parameters.
//!
//! The pieces, in the order data flows through them:
//! - [`config`]: the network description (serde / TOML);
//! - [`params`]: the flat parameter array, its PyTorch names and initialisation;
//! - [`model`]: forward, loss and backpropagation through time on a [`backend::Backend`];
//! - [`optim`] and [`train`]: clipping, optimizers, schedules and the training step;
//! - [`checkpoint`]: safetensors files that load into `torch.nn.LSTM` and back;
//! - [`data`]: task data: file readers, tokenisers, vocabularies, batching and metrics, and the
//!   slot-filling generator;
//! - [`run`]: training runs on real data (what `wgrnn train` does): settings, the training
//!   loop with validation, early stopping, checkpoints and exact resume, and inference.

#![warn(missing_docs)]

pub mod backend;
pub mod bench;
pub mod check;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod dropout;
pub mod error;
pub mod model;
pub mod optim;
pub mod params;
pub mod products;
pub mod report;
pub mod run;
pub mod stdout;
pub mod tasks;
pub mod train;
pub mod tune;

pub use backend::cpu::CpuBackend;
pub use backend::wgpu::WgpuBackend;
pub use backend::{Backend, Real, SeqShape};
pub use config::NetworkConfig;
pub use model::{Batch, Inputs, LayerState, Mode, Model, Targets, Wants};
