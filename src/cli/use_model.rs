//! `wgrnn eval`, `generate`, `tag` and `classify`: a trained run directory put to use.

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use serde_json::json;

use wgrnn::run::infer::{Loaded, Sampling, load};
use wgrnn::{Backend, outln};

use crate::{DeviceChoice, choose, on_backend};

/// Which run and where to run it (shared by the verbs).
#[derive(clap::Args)]
pub struct RunArgs {
    /// The run directory written by `wgrnn train`.
    #[arg(long, value_name = "DIR")]
    run: PathBuf,
    /// Weights to use instead of the run's best (e.g. a checkpoint's weights.safetensors).
    #[arg(long, value_name = "FILE")]
    weights: Option<PathBuf>,
    /// Where to run.
    #[arg(long, value_enum, default_value = "auto")]
    device: DeviceChoice,
    /// GPU adapter: an index from `wgrnn devices` or part of its name.
    #[arg(long, value_name = "NAME|INDEX")]
    adapter: Option<String>,
}

#[derive(clap::Args)]
pub struct EvalArgs {
    #[command(flatten)]
    run: RunArgs,
    /// Data file in the task's format (default: the run's validation data).
    #[arg(long, value_name = "FILE")]
    data: Option<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    run: RunArgs,
    /// Text to continue (default: a line start).
    #[arg(long, default_value = "")]
    prompt: String,
    /// Tokens to sample (characters or words).
    #[arg(long, default_value_t = 300)]
    length: usize,
    /// Softmax temperature: below 1 more likely tokens, above 1 more surprises.
    #[arg(long, default_value_t = 0.8)]
    temperature: f64,
    /// Sample only among the K likeliest tokens.
    #[arg(long, value_name = "K")]
    top_k: Option<usize>,
    /// Seed of the draws.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[derive(clap::Args)]
pub struct TextArgs {
    #[command(flatten)]
    run: RunArgs,
    /// A text to process (repeatable); without --text or --input, lines are read from stdin.
    #[arg(long, value_name = "TEXT")]
    text: Vec<String>,
    /// A file with one text per line.
    #[arg(long, value_name = "FILE", conflicts_with = "text")]
    input: Option<PathBuf>,
    /// Print `word/TAG` pairs on one line per text instead of `word TAB tag` lines (tag only).
    #[arg(long)]
    inline: bool,
}

/// Loads the run on the chosen device and applies `f`.
macro_rules! with_loaded {
    ($args:expr, $m:ident => $body:expr) => {{
        let chosen = choose($args.device, $args.adapter.as_deref())?;
        on_backend!(chosen, be => {
            let mut $m = load(be, &$args.run, $args.weights.as_deref())
                .with_context(|| format!("loading the run {}", $args.run.display()))?;
            $body
        })
    }};
}

/// `wgrnn eval`.
pub fn eval(a: EvalArgs) -> Result<()> {
    with_loaded!(a.run, m => {
        let (s, source) = m.evaluate(a.data.as_deref())?;
        if a.json {
            outln!("{}", json!({
                "data": source, "count": s.count, "loss": s.loss, "accuracy": s.accuracy,
                "f1": s.f1, "perplexity": s.perplexity, "bits_per_char": s.bpc,
                "weights": m.weights,
            }));
        } else {
            outln!("{source}: {} ({} scored, weights {})", s.describe(), s.count, m.weights.display());
        }
        Ok(())
    })
}

/// `wgrnn generate`.
pub fn generate(a: GenerateArgs) -> Result<()> {
    with_loaded!(a.run, m => {
        let sampling = Sampling { temperature: a.temperature, top_k: a.top_k, seed: a.seed };
        let text = m.generate(&a.prompt, a.length, sampling)?;
        let joiner = if a.prompt.is_empty() || m.cfg.data.tokens == wgrnn::run::config::TokenKind::Chars { "" } else { " " };
        outln!("{}{joiner}{text}", a.prompt);
        Ok(())
    })
}

/// The texts of `--text`, `--input` or stdin.
fn texts(a: &TextArgs) -> Result<Vec<String>> {
    if !a.text.is_empty() {
        return Ok(a.text.clone());
    }
    let lines: Vec<String> = match &a.input {
        Some(p) => std::fs::read_to_string(p)
            .with_context(|| format!("reading {}", p.display()))?
            .lines()
            .map(str::to_string)
            .collect(),
        None => std::io::stdin()
            .lock()
            .lines()
            .collect::<Result<_, _>>()
            .context("reading stdin")?,
    };
    let lines: Vec<String> = lines.into_iter().filter(|l| !l.trim().is_empty()).collect();
    if lines.is_empty() {
        bail!("no text: give --text, --input FILE or lines on stdin");
    }
    Ok(lines)
}

fn tag_all<B: Backend>(m: &mut Loaded<B>, a: &TextArgs) -> Result<()> {
    for t in texts(a)? {
        let pairs = m.tag(&t)?;
        if a.inline {
            let line: Vec<String> = pairs
                .iter()
                .map(|(w, tag)| {
                    if tag == "O" {
                        w.clone()
                    } else {
                        format!("{w}/{tag}")
                    }
                })
                .collect();
            outln!("{}", line.join(" "));
        } else {
            for (w, tag) in pairs {
                outln!("{w}\t{tag}");
            }
            outln!();
        }
    }
    Ok(())
}

/// `wgrnn tag`.
pub fn tag(a: TextArgs) -> Result<()> {
    with_loaded!(a.run, m => tag_all(&mut m, &a))
}

/// `wgrnn classify`.
pub fn classify(a: TextArgs) -> Result<()> {
    with_loaded!(a.run, m => {
        for t in texts(&a)? {
            let (label, p) = m.classify(&t)?;
            outln!("{label}\t{p:.3}\t{t}");
        }
        Ok(())
    })
}
