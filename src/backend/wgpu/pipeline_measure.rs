//! The layer pipeline (`stack.rs`) chosen by measurement: the first passes of a stack of a
//! shape run layer by layer and in the pipeline's chunk counts in turn, each timed on its
//! own, and the fastest takes every later pass of that shape's class
//! ([`StackShape::class`]) for the rest of the run; the forward and the backward are
//! measured apart, since either may leave every buffer as the other would
//! (`stack::stack_forward`, `stack::stack_backward`).
//!
//! Whether the pipeline pays depends on the GPU (the time of a dependent dispatch against
//! the steps' and the per-chunk products' time, how well the layers' workgroups side by
//! side fill it) and on the shape, and no rule written without the device can know it
//! (BENCHMARKS.md, entries 58-61 and 72). Unlike a product's tile, a pass cannot be timed
//! aside on scratch operands without a second workspace as large as the run's, so it is
//! timed in place: a measured pass is one of the run's own, submitted alone (what was
//! recorded before it first, then the pass in one submission once it is recorded) and
//! waited for, so the time is the device's, not the host's recording. Its results are
//! what any of the candidates gives (to the bit where the gate gradients are narrow, to
//! rounding where the pipeline sums them per chunk: `stack::stack_backward`), so the
//! run's numbers do not depend on the measuring. The
//! backward takes the candidates in the other order, so the first passes also run each
//! pipeline's forward with another's backward, as a measured run may keep them.
//!
//! Where the product tiles are kept between runs (`Gpu::product_tiles_file`), the
//! choices are kept beside them ([`PIPELINE_FILE`]), per adapter and version of wgrnn.
//!
//! `Tuning::wavefront: None` measures on an adapter that is a GPU (`Some(n)` takes n
//! chunks, 1 layer by layer); `Tuning::wavefront_measured` on any adapter (tests, on
//! lavapipe).

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::autotune::AdapterKey;
use super::measured::{self, Classed, fastest};
use super::{Precision, Tuning, WgpuBackend};
use crate::config::CellConfig;
use crate::params::LayerPlan;

/// The chunk counts measured: 1 (layer by layer) and the pipeline at two depths (fewer
/// chunks keep its products larger, more fill the wavefront's ramp sooner).
pub const CANDIDATES: [usize; 3] = [1, 4, 8];

/// Timed passes of each candidate after its first, untimed one (which builds its pipelines
/// and measures its products' tiles), the least kept.
pub const ROUNDS: u32 = 2;

/// The file, beside the product tiles' (`autotune::product_tiles_path`), that keeps the
/// choices between runs.
pub const PIPELINE_FILE: &str = "layer_pipeline.json";

/// What a measured choice is kept for: the pass and the stack's shape, and the kernel
/// choices its layers' steps take.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StackShape {
    /// The backward pass (else the forward).
    pub backward: bool,
    /// Every layer's cell.
    pub cell: CellConfig,
    /// Layers in the stack.
    pub layers: usize,
    /// Width of the bottom layer's input.
    pub input: usize,
    /// Every layer's hidden size.
    pub hidden: usize,
    /// Sequences.
    pub batch: usize,
    /// Time steps of the longest sequence.
    pub steps: usize,
    /// The layer caches are f16.
    pub f16: bool,
    /// The kernel choices but the pipeline's (`Tuning::label`).
    pub kernels: String,
}

impl StackShape {
    /// The shape of a pass over `plans` of `steps` x `batch`.
    pub(super) fn of(
        be: &WgpuBackend,
        backward: bool,
        plans: &[LayerPlan],
        batch: usize,
        steps: usize,
    ) -> Option<StackShape> {
        let first = plans.first()?;
        Some(StackShape {
            backward,
            cell: first.cell.clone(),
            layers: plans.len(),
            input: first.input,
            hidden: first.hidden,
            batch,
            steps,
            f16: be.precision() == Precision::F16,
            // Whether measured on a GPU (`auto`) or on any adapter, the same kernels.
            kernels: Tuning {
                wavefront: None,
                wavefront_measured: false,
                ..be.tuning()
            }
            .label(),
        })
    }
}

impl Classed for StackShape {
    type Class = StackShape;

    /// The shapes a measurement of this one also serves: the same but for the steps, which
    /// round up to the same power of two, so that the length buckets of a training run
    /// measure a few times rather than once each.
    fn class(&self) -> StackShape {
        StackShape {
            steps: self.steps.next_power_of_two(),
            ..self.clone()
        }
    }

    /// E.g. `backward 4 x lstm 1024 (input 1024), 64 x 100`.
    fn label(&self) -> String {
        let pass = if self.backward { "backward" } else { "forward" };
        let f16 = if self.f16 { " f16" } else { "" };
        format!(
            "{pass} {} x {} {}{f16} (input {}), {} x {}",
            self.layers,
            self.cell.name(),
            self.hidden,
            self.input,
            self.batch,
            self.steps
        )
    }
}

/// One measurement: each candidate chunk count's least seconds a pass, and the fastest.
pub type PipelineRace = measured::Race<StackShape, usize>;

impl PipelineRace {
    /// One line: the pass and shape, each candidate's time, the chosen one first.
    pub fn label(&self) -> String {
        self.line(chunks_name)
    }
}

/// `layer-by-layer` for 1 chunk, else `wavefront=N`.
pub fn chunks_name(n: usize) -> String {
    match n {
        1 => "layer-by-layer".to_string(),
        n => format!("wavefront={n}"),
    }
}

/// A measurement under way: each candidate's passes so far and least time.
#[derive(Clone, Debug)]
struct Trial {
    shape: StackShape,
    candidates: Vec<usize>,
    /// Per candidate: passes run, least seconds of the timed ones.
    runs: Vec<(u32, f64)>,
}

impl Trial {
    /// The candidate the next pass runs: the one with the fewest passes, the first (the last
    /// in the backward) of those.
    fn next(&self) -> usize {
        let least = self.runs.iter().map(|r| r.0).min().unwrap_or(0);
        let mut order: Vec<usize> = (0..self.candidates.len()).collect();
        if self.shape.backward {
            order.reverse();
        }
        order
            .into_iter()
            .find(|&i| self.runs[i].0 == least)
            .unwrap_or(0)
    }

    /// Whether every candidate has run its untimed pass and [`ROUNDS`] timed ones.
    fn done(&self) -> bool {
        self.runs.iter().all(|r| r.0 > ROUNDS)
    }
}

impl Measurements {
    /// Where the measurement under way for passes of `shape`'s class among `candidates`
    /// is, if one is.
    fn trial_for(&self, shape: &StackShape, candidates: &[usize]) -> Option<usize> {
        let class = shape.class();
        self.trials
            .iter()
            .position(|t| t.shape.class() == class && t.candidates == candidates)
    }
}

/// The backend's measurements: finished, under way, and those read from the file.
#[derive(Debug, Default)]
pub(super) struct Measurements {
    kept: measured::Kept<StackShape, usize>,
    trials: Vec<Trial>,
}

/// How a pass runs: its chunk count and, where it is being measured, what times it.
#[must_use = "a measured pass is timed by `Choice::done` after it is recorded"]
pub(super) struct Choice {
    /// Chunks of time steps (1: layer by layer).
    pub chunks: usize,
    timer: Option<Timer>,
}

/// A measured pass's place in its trial and the submission setting it put aside.
struct Timer {
    shape: StackShape,
    candidates: Vec<usize>,
    index: usize,
    first_submission: u32,
}

/// Whether `be` measures the layer pipeline (see the module documentation).
pub(super) fn measures(be: &WgpuBackend) -> bool {
    let t = be.tuning();
    t.wavefront.is_none()
        && (t.wavefront_measured || be.gpu.info().device_type != wgpu::DeviceType::Cpu)
}

/// The chunk counts of [`CANDIDATES`] that differ at `steps`: a count that runs as an
/// earlier one there (more chunks than steps, or the same steps a chunk) is left out, so
/// the same shape class measures the same candidates at most lengths.
pub fn candidates_at(steps: usize) -> Vec<usize> {
    let runs_as = |n: usize| {
        let k = steps.div_ceil(n.min(steps).max(1)).max(1);
        steps.div_ceil(k)
    };
    let mut out: Vec<usize> = Vec::new();
    for n in CANDIDATES {
        if out.iter().all(|&o| runs_as(o) != runs_as(n)) {
            out.push(n);
        }
    }
    out
}

/// A pass in `chunks` chunks, not measured.
pub(super) fn choose_fixed(chunks: usize) -> Choice {
    Choice {
        chunks,
        timer: None,
    }
}

/// How a pass of `shape` runs among `candidates` (chunk counts): the one measured fastest
/// for its class, else the next candidate of its measurement, which is then timed (the
/// work recorded before it is submitted and awaited first, and the pass goes to the device
/// in one submission). There are at least two candidates (one is [`choose_fixed`]).
pub(super) fn choose(be: &WgpuBackend, shape: StackShape, candidates: Vec<usize>) -> Choice {
    debug_assert!(candidates.len() > 1, "one candidate is no choice");
    let mut m = be.pipeline.borrow_mut();
    let read = || Some(load(&file(be)?, &AdapterKey::of(be.gpu.info())));
    if let Some(chunks) = m.kept.known(&shape, &candidates, read) {
        return choose_fixed(chunks);
    }
    let at = match m.trial_for(&shape, &candidates) {
        Some(at) => at,
        None => {
            m.trials.push(Trial {
                shape,
                candidates: candidates.clone(),
                runs: vec![(0, f64::INFINITY); candidates.len()],
            });
            m.trials.len() - 1
        }
    };
    let trial = &m.trials[at];
    let index = trial.next();
    let timer = Timer {
        shape: trial.shape.clone(),
        candidates,
        index,
        first_submission: be.gpu.first_submission(),
    };
    drop(m);
    be.gpu.flush();
    be.gpu.wait();
    be.gpu.set_first_submission(0);
    Choice {
        chunks: timer.candidates[index],
        timer: Some(timer),
    }
}

impl Choice {
    /// Ends the pass: where it is measured, submits it, waits for it and counts its time;
    /// the measurement's last pass decides, and the choice is kept (and stored where the
    /// product tiles are).
    pub(super) fn done(self, be: &WgpuBackend) {
        let Some(t) = self.timer else {
            return;
        };
        let start = Instant::now();
        be.gpu.flush();
        be.gpu.wait();
        let seconds = start.elapsed().as_secs_f64();
        be.gpu.set_first_submission(t.first_submission);
        let mut m = be.pipeline.borrow_mut();
        let Some(at) = m.trial_for(&t.shape, &t.candidates) else {
            return;
        };
        let run = &mut m.trials[at].runs[t.index];
        if run.0 > 0 {
            run.1 = run.1.min(seconds);
        }
        run.0 += 1;
        if !m.trials[at].done() {
            return;
        }
        let trial = m.trials.remove(at);
        let times: Vec<(usize, f64)> = trial
            .candidates
            .iter()
            .zip(&trial.runs)
            .map(|(&n, r)| (n, r.1))
            .collect();
        let race = PipelineRace {
            chosen: fastest(&times).unwrap_or(1),
            shape: trial.shape,
            candidates: trial.candidates,
            times,
            stored: false,
        };
        if let Some(path) = file(be) {
            store(&path, &AdapterKey::of(be.gpu.info()), &race);
        }
        m.kept.races.push(race);
        // The buffers the other candidates' passes left for reuse would be held for
        // nothing (and counted in the run's peak memory): freed, the passes from now on
        // allocate what the choices use.
        be.gpu.trim();
    }
}

impl WgpuBackend {
    /// The layer pipeline's measurements so far, finished ones, in the order they finished.
    pub fn pipeline_races(&self) -> Vec<PipelineRace> {
        self.pipeline.borrow().kept.races.clone()
    }

    /// Whether a measurement of the layer pipeline is under way: a shape whose candidates
    /// have not all run their passes (a benchmark warms up until none is).
    pub fn measuring_pipeline(&self) -> bool {
        !self.pipeline.borrow().trials.is_empty()
    }
}

/// Where the choices are kept: beside the product tiles, where they are kept.
fn file(be: &WgpuBackend) -> Option<PathBuf> {
    measured::beside_tiles(&be.gpu, PIPELINE_FILE)
}

/// What the file calls its measurements (warnings).
const KEPT: &str = "layer pipeline choices";

/// The measurements in the file at `path` for `adapter` by this version of wgrnn.
fn load(path: &Path, adapter: &AdapterKey) -> Vec<PipelineRace> {
    measured::load_choices(path, KEPT, adapter, |n: usize| n >= 1)
}

/// Adds `race` to the file at `path` for `adapter`.
fn store(path: &Path, adapter: &AdapterKey, race: &PipelineRace) {
    measured::store_choices(path, KEPT, adapter, race);
}

#[cfg(test)]
mod tests {
    use super::super::autotune::MAX_KEPT;
    use super::*;

    #[test]
    fn candidates_are_distinct_chunk_counts() {
        assert_eq!(candidates_at(100), vec![1, 4, 8]);
        // 8 chunks of 5 steps, the last of 4.
        assert_eq!(candidates_at(39), vec![1, 4, 8]);
        // 8 chunks over 10 steps are 2 steps a chunk (5 chunks), 4 are 3 (4 chunks).
        assert_eq!(candidates_at(10), vec![1, 4, 8]);
        // 4 or 8 chunks over 4 steps are 4 of 1.
        assert_eq!(candidates_at(4), vec![1, 4]);
        assert_eq!(candidates_at(3), vec![1, 4]);
        assert_eq!(candidates_at(1), vec![1]);
    }

    /// The file keeps the newest [`MAX_KEPT`] measurements, one per class and candidates,
    /// and reads back what it kept.
    #[test]
    fn the_file_keeps_the_newest_measurements() {
        let dir = std::env::temp_dir().join(format!("wgrnn-kept-{}", std::process::id()));
        let path = dir.join(PIPELINE_FILE);
        let _ = std::fs::remove_file(&path);
        let adapter = AdapterKey {
            name: "gpu".into(),
            backend: "Vulkan".into(),
            driver: "d 1".into(),
        };
        let race = |batch: usize| PipelineRace {
            shape: StackShape {
                backward: false,
                cell: CellConfig::lstm(false, None),
                layers: 2,
                input: 8,
                hidden: 16,
                batch,
                steps: 20,
                f16: false,
                kernels: "k".into(),
            },
            candidates: vec![1, 4, 8],
            times: vec![(1, 3.0), (4, 1.0), (8, 2.0)],
            chosen: 4,
            stored: false,
        };
        for batch in 1..=MAX_KEPT + 10 {
            store(&path, &adapter, &race(batch));
        }
        // The same class again replaces its entry rather than adding one.
        store(&path, &adapter, &race(MAX_KEPT + 10));
        let kept = load(&path, &adapter);
        assert_eq!(kept.len(), MAX_KEPT);
        assert_eq!(kept[0].shape.batch, 11, "the oldest dropped");
        let last = kept.last().expect("kept");
        assert_eq!(last.shape.batch, MAX_KEPT + 10);
        assert!(last.stored && last.chosen == 4);
        assert!(last.serves(&race(MAX_KEPT + 10).shape, &[1, 4, 8]));
        assert!(!last.serves(&race(MAX_KEPT + 10).shape, &[1, 4]));
        let other = AdapterKey {
            name: "other".into(),
            ..adapter
        };
        assert!(load(&path, &other).is_empty(), "another adapter's");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
