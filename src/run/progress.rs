//! What a run tells its user: a progress bar with the loss, tokens per second and the time
//! left in the epoch, a line per epoch, notices; or nothing but the final line (`--quiet`);
//! or one JSON object per line on stdout (`--json`) for scripts.
//!
//! The bar is drawn on stderr, and only when stderr is a terminal and `CI` is not set; lines
//! printed while it is shown go through it, so it is never broken.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::outln;

/// How much a run prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// A progress bar and a summary per epoch.
    Human,
    /// Only the final summary and errors.
    Quiet,
    /// JSON lines on stdout: one per epoch, one at the end; notices on stderr.
    Json,
}

/// The reporter of a run.
pub struct Reporter {
    /// The chosen output.
    pub mode: Output,
    bar: Option<ProgressBar>,
}

impl Reporter {
    /// A reporter printing in `mode`.
    pub fn new(mode: Output) -> Self {
        Reporter { mode, bar: None }
    }

    fn bar_allowed(&self) -> bool {
        self.mode == Output::Human
            && std::io::stderr().is_terminal()
            && std::env::var_os("CI").is_none_or(|v| v.is_empty() || v == "false")
    }

    /// A line for people (human mode only).
    pub fn line(&self, text: &str) {
        if self.mode != Output::Human {
            return;
        }
        match &self.bar {
            Some(b) => b.println(text),
            None => outln!("{text}"),
        }
    }

    /// A notice on stderr (every mode but quiet).
    pub fn notice(&self, text: &str) {
        if self.mode == Output::Quiet {
            return;
        }
        match &self.bar {
            Some(b) => b.suspend(|| eprintln!("{text}")),
            None => eprintln!("{text}"),
        }
    }

    /// A JSON line (JSON mode only).
    pub fn json(&self, value: &serde_json::Value) {
        if self.mode == Output::Json {
            outln!("{value}");
        }
    }

    /// Starts the bar of an epoch of `total` batches, `done` of them already trained.
    pub fn start_epoch(&mut self, epoch: usize, epochs: usize, total: usize, done: usize) {
        if !self.bar_allowed() {
            return;
        }
        let bar = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "epoch {prefix} [{bar:30}] {pos}/{len} batches  {msg}  ETA {eta}",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(format!("{epoch}/{epochs}"));
        bar.set_position(done as u64);
        bar.reset_eta();
        bar.enable_steady_tick(Duration::from_millis(200));
        self.bar = Some(bar);
    }

    /// Moves the bar to `done` batches with the running loss and speed.
    pub fn progress(&self, done: usize, loss: f64, tokens_per_s: f64) {
        if let Some(b) = &self.bar {
            b.set_position(done as u64);
            b.set_message(format!("loss {loss:.4}  {tokens_per_s:.0} tok/s"));
        }
    }

    /// Removes the bar.
    pub fn end_epoch(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        self.end_epoch();
    }
}
