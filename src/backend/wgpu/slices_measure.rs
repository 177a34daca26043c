//! The recurrent steps' K slices chosen by measurement, as the products' tiles are
//! (`gemm_measure`): the first time a layer call's tiled steps of a shape run, each K slice
//! count that lays them out differently is timed aside on steps of that shape, and the
//! fastest takes every call of that shape for the rest of the run, the forward and the
//! backward apart.
//!
//! K slices give a workgroup more invocations, each a share of every chunk's inner
//! dimension, its partial sums added through workgroup memory once a step: more warps to
//! hide the chunks' barriers and loads where the grid leaves the cores with few, for one
//! more reduction a step. The rule (`step_tiles::plain_tiles`: the fewest slices whose grid
//! has 16 warps a core of a 132-core GPU, else 4) was written from the H100's counts
//! without the device (BENCHMARKS.md, entry 48); whether a GPU hides latency better with
//! more warps or with fewer reductions, and where, is its own, so a GPU measures it.
//!
//! A measurement runs [`STEPS`] steps of the call's shape on buffers of its own (outside
//! the pool, freed after it) and the run's parameters (which a step only reads), so the
//! run's buffers and results are untouched: only the later steps' sums are added in the
//! slices chosen, which changes their order (the last bits of the results), as a cuDNN
//! algorithm's choice does.
//!
//! Where the product tiles are kept between runs (`Gpu::product_tiles_file`), the choices
//! are kept beside them ([`SLICES_FILE`]), per adapter and version of wgrnn.
//!
//! `SliceChoice::Auto` (the default) measures on an adapter that is a GPU,
//! `SliceChoice::Measured` on any adapter (tests, on lavapipe), `SliceChoice::Rules` never.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::autotune::AdapterKey;
use super::gemm::Products;
use super::layer::{Bwd, Call, Fwd, KSlices, Layout, StepProducts, cell_of};
use super::measured::{self, Classed, fastest};
use super::runtime::GpuBuffer;
use super::stack::InStack;
use super::{Precision, SliceChoice, Tuning, WgpuBackend};
use crate::backend::SeqShape;
use crate::config::CellConfig;

/// The K slice counts asked for (each lowered where the tile or the adapter does not hold
/// it, so those that lay the steps out as an earlier one are left out: [`candidates`]).
pub const CANDIDATES: [usize; 3] = [1, 2, 4];

/// Time steps a measurement's buffers hold; a timed run repeats them.
pub const STEPS: usize = 8;

/// How long each candidate's timed run should last at least (as the product tiles').
const TIMED_SECONDS: f64 = 5e-3;

/// Most repetitions of [`STEPS`] steps in one timed run.
const MAX_REPS: usize = 32;

/// The file, beside the product tiles' (`autotune::product_tiles_path`), that keeps the
/// choices between runs.
pub const SLICES_FILE: &str = "step_slices.json";

/// What a measured choice is kept for: the pass, the layer's shape as its steps see it, and
/// the kernel choices they take.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SliceShape {
    /// The backward's steps (else the forward's).
    pub backward: bool,
    /// The layer's cell.
    pub cell: CellConfig,
    /// Hidden units.
    pub hidden: usize,
    /// Length of W_hh's rows (the recurrent input: the output, an LSTM's projection).
    pub recurrent: usize,
    /// Sequences.
    pub batch: usize,
    /// Directions, side by side in one dispatch.
    pub dirs: usize,
    /// The layer cache is f16.
    pub f16: bool,
    /// The steps' products are on the tensor cores (or their emulation), else the f32
    /// tiles.
    pub tensor: bool,
    /// The kernel choices but the slices' own and the layer pipeline's (`Tuning::label`).
    pub kernels: String,
}

impl SliceShape {
    /// The shape of `c`'s `backward` or forward steps.
    fn of(c: &Call<'_>, backward: bool) -> SliceShape {
        SliceShape {
            backward,
            cell: c.plan.cell.clone(),
            hidden: c.plan.hidden,
            recurrent: c.lay.rw,
            batch: c.lay.batch,
            dirs: c.lay.dirs,
            f16: c.be.precision() == Precision::F16,
            tensor: c.products().on_tensor_cores(),
            kernels: kernels_key(c.be.tuning()),
        }
    }
}

/// `tuning`'s label without the choices a measurement of the slices does not depend on
/// (the slices', the layer pipeline's), so a measurement serves every such choice.
fn kernels_key(tuning: Tuning) -> String {
    Tuning {
        step_k_split: None,
        k_split_by: SliceChoice::Auto,
        wavefront: None,
        wavefront_measured: false,
        ..tuning
    }
    .label()
}

impl Classed for SliceShape {
    type Class = SliceShape;

    /// The shape alone: a step's time does not depend on the sequences' length.
    fn class(&self) -> SliceShape {
        self.clone()
    }

    /// E.g. `forward lstm 1024 f16, 64 sequences, tensor cores`.
    fn label(&self) -> String {
        let pass = if self.backward { "backward" } else { "forward" };
        let f16 = if self.f16 { " f16" } else { "" };
        let dirs = if self.dirs > 1 { " bidirectional" } else { "" };
        let products = if self.tensor { ", tensor cores" } else { "" };
        format!(
            "{pass} {} {}{f16}{dirs}, {} sequences{products}",
            self.cell.name(),
            self.hidden,
            self.batch
        )
    }
}

/// One measurement: each candidate slice count's least seconds a step, and the fastest.
pub type SliceRace = measured::Race<SliceShape, usize>;

impl SliceRace {
    /// One line: the pass and shape, each candidate's time, the chosen one first.
    pub fn label(&self) -> String {
        self.line(slices_name)
    }
}

/// `ksplit=N`, as the tuning's label names a fixed count.
pub fn slices_name(n: usize) -> String {
    format!("ksplit={n}")
}

/// Whether `be` measures the K slices (see the module documentation).
pub(super) fn measures(be: &WgpuBackend) -> bool {
    let t = be.tuning();
    t.step_k_split.is_none()
        && match t.k_split_by {
            SliceChoice::Rules => false,
            SliceChoice::Measured => true,
            SliceChoice::Auto => be.gpu.info().device_type != wgpu::DeviceType::Cpu,
        }
}

/// The slice counts of [`CANDIDATES`] that lay `c`'s steps out differently (a count the
/// tile or the adapter lowers to an earlier one's layout is left out).
pub(super) fn candidates(c: &Call<'_>) -> Vec<usize> {
    let layout = |ks: usize| match c.products().on_tensor_cores() {
        true => {
            let (tu, ks) = c.coop_tiles_at(Some(ks));
            (tu, ks, None)
        }
        false => {
            let (tu, chunks) = c.plain_tiles_at(Some(ks));
            (tu, chunks.ks, Some(chunks))
        }
    };
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for ks in CANDIDATES {
        let l = layout(ks);
        if !seen.contains(&l) {
            seen.push(l);
            out.push(ks);
        }
    }
    out
}

/// The K slices `c`'s `backward` or forward steps take where the tuning leaves them open:
/// `None` (the grid's rule) where the backend does not measure them or there is no choice,
/// else the count measured fastest for their shape, measuring it now if this is the first
/// call of the shape.
pub(super) fn chosen(c: &Call<'_>, backward: bool) -> Option<usize> {
    let be = c.be;
    let products = c.products();
    if !measures(be) || !(products == StepProducts::F32 || products.on_tensor_cores()) {
        return None;
    }
    let candidates = candidates(c);
    if candidates.len() < 2 {
        return None;
    }
    let shape = SliceShape::of(c, backward);
    let read = || Some(load(&file(be)?, &AdapterKey::of(be.gpu.info())));
    if let Some(ks) = be.slices.borrow_mut().known(&shape, &candidates, read) {
        return Some(ks);
    }
    let race = be.gpu.aside(|| measure(c, shape, candidates));
    if let Some(path) = &file(be) {
        store(path, &AdapterKey::of(be.gpu.info()), &race);
    }
    let ks = race.chosen;
    be.slices.borrow_mut().races.push(race);
    Some(ks)
}

/// Times `c`'s `shape.backward` or forward steps at each of `candidates` ([`STEPS`] steps
/// of its shape on buffers of their own) and returns them with the fastest.
fn measure(c: &Call<'_>, shape: SliceShape, candidates: Vec<usize>) -> SliceRace {
    let gpu = &c.be.gpu;
    let bufs = Scratch::new(c);
    let products = Products::new(gpu);
    let calls: Vec<Call<'_>> = candidates
        .iter()
        .map(|&ks| bufs.call(Of::call(c), &products, ks))
        .collect();
    let cell = cell_of(c.plan);
    let dummy = &c.be.dummy;
    let backward = shape.backward;
    // Each timed run goes to the device in one submission once it is recorded, so the time
    // is the device's and not the host's recording.
    let first_submission = gpu.first_submission();
    gpu.set_first_submission(0);
    // Seconds a step over `reps` x STEPS steps in one submission, waited for.
    let run = |at: usize, reps: usize| {
        let call = &calls[at];
        for _ in 0..reps {
            match backward {
                true => {
                    let io = Bwd {
                        dy: &bufs.dy,
                        st_h: dummy,
                        st_c: dummy,
                    };
                    for s in (0..STEPS).rev() {
                        cell.backward_step(call, &io, s);
                    }
                }
                false => {
                    let io = Fwd {
                        st_h: dummy,
                        st_c: dummy,
                    };
                    for s in 0..STEPS {
                        cell.forward_step(call, &io, s);
                    }
                }
            }
        }
        let start = Instant::now();
        gpu.flush();
        gpu.wait();
        start.elapsed().as_secs_f64() / (reps * STEPS) as f64
    };
    let order: Vec<usize> = (0..candidates.len()).collect();
    let times: Vec<(usize, f64)> = measured::time_in_turns(&order, TIMED_SECONDS, MAX_REPS, run)
        .into_iter()
        .map(|(at, s)| (candidates[at], s))
        .collect();
    gpu.set_first_submission(first_submission);
    drop(calls);
    bufs.free(gpu);
    SliceRace {
        chosen: fastest(&times).unwrap_or(candidates[0]),
        shape,
        candidates,
        times,
        stored: false,
    }
}

/// What a measurement's calls take of the call they measure for.
#[derive(Clone, Copy)]
struct Of<'a> {
    be: &'a WgpuBackend,
    plan: &'a crate::params::LayerPlan,
    params: &'a GpuBuffer,
    steps: usize,
}

impl<'a> Of<'a> {
    fn call(c: &Call<'a>) -> Of<'a> {
        Of {
            be: c.be,
            plan: c.plan,
            params: c.params,
            steps: c.steps,
        }
    }
}

/// A measurement's buffers: a call's cache, gates buffer, output and output gradient over
/// [`STEPS`] steps of every sequence, and its sequence lengths, outside the pool.
struct Scratch {
    seq: SeqShape,
    cache: GpuBuffer,
    gates: GpuBuffer,
    y: GpuBuffer,
    dy: GpuBuffer,
    lengths: GpuBuffer,
}

impl Scratch {
    /// Buffers for `c`'s steps (zeros: wgpu clears a new buffer).
    fn new(c: &Call<'_>) -> Scratch {
        let gpu = &c.be.gpu;
        let seq = SeqShape {
            time: STEPS,
            lengths: vec![STEPS; c.lay.batch],
        };
        let f16 = c.cache.is_f16();
        let lay = Layout::of(c.plan, &seq, f16);
        let outputs = STEPS * c.lay.batch * c.plan.output_width();
        let lengths = gpu.scratch(c.lay.batch, false);
        gpu.write(&lengths, &vec![STEPS as u32; c.lay.batch]);
        Scratch {
            cache: gpu.scratch(lay.total, f16),
            gates: gpu.scratch(lay.gates_len, false),
            y: gpu.scratch(outputs, false),
            dy: gpu.scratch(outputs, false),
            lengths,
            seq,
        }
    }

    /// A call of `of`'s layer over these buffers, its steps in `ks` K slices both ways.
    fn call<'a>(&'a self, of: Of<'a>, products: &'a Products<'a>, ks: usize) -> Call<'a> {
        let k_slices: KSlices = [ks, ks].map(|k| std::cell::OnceCell::from(Some(k)));
        Call {
            be: of.be,
            plan: of.plan,
            lay: Layout::of(of.plan, &self.seq, self.cache.is_f16()),
            params: of.params,
            cache: &self.cache,
            gates: &self.gates,
            y: &self.y,
            lengths: &self.lengths,
            has_state: false,
            zero_init: true,
            // The call's own, which decides whether the tensor-core steps read an f16 copy
            // of W_hh (`Call::half_weights`), as the call's steps will.
            steps: of.steps,
            w16: std::cell::OnceCell::new(),
            read_w16: std::cell::Cell::new(false),
            products,
            stack: InStack::default(),
            k_slices,
        }
    }

    /// Gives their memory back to the device.
    fn free(self, gpu: &super::runtime::Gpu) {
        gpu.forget_scratch(vec![self.cache, self.gates, self.y, self.dy, self.lengths]);
    }
}

impl WgpuBackend {
    /// The K slices' measurements so far, in the order they were taken or read.
    pub fn slice_races(&self) -> Vec<SliceRace> {
        self.slices.borrow().races.clone()
    }
}

/// Where the choices are kept: beside the product tiles, where they are kept.
fn file(be: &WgpuBackend) -> Option<PathBuf> {
    measured::beside_tiles(&be.gpu, SLICES_FILE)
}

/// What the file calls its measurements (warnings).
const KEPT: &str = "step K slices";

/// The measurements in the file at `path` for `adapter` by this version of wgrnn.
fn load(path: &Path, adapter: &AdapterKey) -> Vec<SliceRace> {
    measured::load_counts(path, KEPT, adapter, |n| CANDIDATES.contains(&n))
}

/// Adds `race` to the file at `path` for `adapter`.
fn store(path: &Path, adapter: &AdapterKey, race: &SliceRace) {
    measured::store_counts(path, KEPT, adapter, race);
}
