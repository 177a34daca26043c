//! The `wgrnn` command line.
//!
//! `wgrnn train` with no arguments trains the bundled default task (slot filling on generated
//! "arrive/leave <city> on <date>" sentences) and prints its held-out accuracy per epoch.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};

use wgrnn::config::{Activation, CellConfig, GruVariant};
use wgrnn::tasks::{SlotTaskConfig, lstm, train_slot_tagger};
use wgrnn::{CpuBackend, checkpoint};

/// Recurrent networks (Elman, Jordan, LSTM, GRU) trained through wgpu, checked against a CPU
/// reference.
#[derive(Parser)]
#[command(name = "wgrnn", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train the bundled slot-filling tagger on generated sentences and report held-out
    /// accuracy per epoch.
    ///
    /// Example: `wgrnn train --cell gru --hidden 64 --epochs 5 --save tagger.safetensors`
    Train(TrainArgs),
}

/// The recurrent cell of the `train` command.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum CellKind {
    /// Long short-term memory (PyTorch equations, forget-gate bias 1).
    Lstm,
    /// Gated recurrent unit (PyTorch equations).
    Gru,
    /// Elman network with tanh.
    Elman,
}

#[derive(clap::Args)]
struct TrainArgs {
    /// Recurrent cell.
    #[arg(long, value_enum, default_value = "lstm")]
    cell: CellKind,
    /// Hidden units of the recurrent layer.
    #[arg(long)]
    hidden: Option<usize>,
    /// Passes over the training sentences.
    #[arg(long)]
    epochs: Option<usize>,
    /// Sentences per update.
    #[arg(long)]
    batch_size: Option<usize>,
    /// Adam learning rate.
    #[arg(long)]
    lr: Option<f32>,
    /// Seed of data, initialisation and batch order.
    #[arg(long)]
    seed: Option<u64>,
    /// Number of generated training sentences.
    #[arg(long)]
    train_sentences: Option<usize>,
    /// Remove the recurrence (each word is tagged from itself alone): shows that the task
    /// needs memory.
    #[arg(long)]
    no_recurrence: bool,
    /// Write the trained parameters (PyTorch names, safetensors) to this file.
    #[arg(long)]
    save: Option<PathBuf>,
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Train(args) => train(args),
    }
}

fn train(args: TrainArgs) -> Result<()> {
    let cell = match args.cell {
        CellKind::Lstm => lstm(),
        CellKind::Gru => CellConfig::Gru {
            variant: GruVariant::Pytorch,
        },
        CellKind::Elman => CellConfig::Elman {
            activation: Activation::Tanh,
        },
    };
    let mut cfg = SlotTaskConfig {
        cell,
        recurrent: !args.no_recurrence,
        ..SlotTaskConfig::default()
    };
    if let Some(v) = args.hidden {
        cfg.hidden = v;
    }
    if let Some(v) = args.epochs {
        cfg.epochs = v;
    }
    if let Some(v) = args.batch_size {
        cfg.batch_size = v;
    }
    if let Some(v) = args.lr {
        cfg.lr = v;
    }
    if let Some(v) = args.seed {
        cfg.seed = v;
    }
    if let Some(v) = args.train_sentences {
        cfg.train_sentences = v;
    }
    if cfg.hidden == 0 {
        bail!("--hidden must be at least 1");
    }
    println!(
        "slot filling: {:?} {} hidden{}, {} training sentences, {} held out, device cpu",
        args.cell,
        cfg.hidden,
        if cfg.recurrent {
            ""
        } else {
            " (recurrence removed)"
        },
        cfg.train_sentences,
        cfg.test_sentences
    );
    let run = train_slot_tagger(CpuBackend::<f32>::new(), &cfg, |e| {
        println!(
            "epoch {:>3}  train loss {:.4}  held-out accuracy {:.2}%",
            e.epoch,
            e.train_loss,
            100.0 * e.test_accuracy
        );
    })?;
    println!(
        "held-out token accuracy {:.2}% on {} words (a tagger without memory can reach at most {:.2}%)",
        100.0 * run.test_accuracy,
        run.test_words,
        100.0 * run.ceiling
    );
    if let Some(path) = args.save {
        checkpoint::save(&run.model, &path)
            .with_context(|| format!("saving the model to {}", path.display()))?;
        println!("saved {}", path.display());
    }
    Ok(())
}
