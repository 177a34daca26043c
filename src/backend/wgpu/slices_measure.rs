//! The recurrent steps' tiles and K slices chosen by measurement, as the products' tiles
//! are (`gemm_measure`): the first time a layer call's tiled steps of a shape run, each
//! layout (a tile width and a K slice count) that lays them out differently is timed aside
//! on steps of that shape, and the fastest takes every call of that shape for the rest of
//! the run, the forward and the backward apart. The layer pipeline's joined steps are timed
//! as they run, the stack's layers side by side in one dispatch.
//!
//! K slices give a workgroup more invocations, each a share of every chunk's inner
//! dimension, its partial sums added through workgroup memory once a step: more warps to
//! hide the chunks' barriers and loads where the grid leaves the cores with few, for one
//! more reduction a step. Wider tiles stage each step's states (or dgh) once for more
//! units and make fewer, larger workgroups. The rule (`step_tiles::plain_tiles`: the
//! widest of 64 and 32 units that keeps 128 workgroups, the fewest slices whose grid has 16
//! warps a core of a 132-core GPU, else 4) was written from the H100's counts without the
//! device (BENCHMARKS.md, entries 48 and 75); whether a GPU hides latency better with
//! more warps, fewer reductions or less restaging, and where, is its own, so a GPU
//! measures it. The width is measured only where the tuning leaves it open
//! (`--step-units`).
//!
//! A measurement runs [`STEPS`] steps of the call's shape on buffers of their own (outside
//! the pool, freed after it) and the run's parameters (which a step only reads), so the
//! run's buffers and results are untouched: only the later steps' sums are added in the
//! layout chosen, which changes their order (the last bits of the results), as a cuDNN
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
use super::layer::{Bwd, Call, Fwd, JOINED_LAYERS, KSlices, Layout, StepProducts, cell_of};
use super::measured::{self, Classed, fastest};
use super::runtime::GpuBuffer;
use super::stack::{InStack, Joined, w16_parts};
use super::{Precision, SliceChoice, Tuning, WgpuBackend};
use crate::backend::SeqShape;
use crate::config::CellConfig;

/// The K slice counts asked for (each lowered where the tile or the adapter does not hold
/// it, so those that lay the steps out as an earlier one are left out: [`candidates`]).
pub const CANDIDATES: [usize; 3] = [1, 2, 4];

/// The tiles' widths asked for, in units, where the tuning leaves the width open (each
/// with every count of [`CANDIDATES`]).
pub const WIDTHS: [usize; 3] = [16, 32, 64];

/// A layout of the tiled steps a measurement times: the tiles' width and K slices, as
/// asked (the tile rule may lower the slices where the tile or adapter does not hold
/// them, `Call::plain_tiles_at`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepTile {
    /// Units a tile.
    pub units: usize,
    /// K slices.
    pub slices: usize,
}

/// Time steps a measurement's buffers hold; a timed run repeats them.
pub const STEPS: usize = 8;

/// How long each candidate's timed run should last at least (as the product tiles').
const TIMED_SECONDS: f64 = 5e-3;

/// Most repetitions of [`STEPS`] steps in one timed run.
const MAX_REPS: usize = 32;

/// The file, beside the product tiles' (`autotune::product_tiles_path`), that keeps the
/// choices between runs.
pub const SLICES_FILE: &str = "step_tiles.json";

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
    /// Layers whose steps run side by side in one dispatch: the layer pipeline's joined
    /// steps ([`joined_layers`]), else 1.
    #[serde(default = "one_layer")]
    pub layers: usize,
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
            layers: joined_layers(c),
            f16: c.be.precision() == Precision::F16,
            tensor: c.products().on_tensor_cores(),
            kernels: kernels_key(c.be.tuning()),
        }
    }
}

/// A shape's layers where the file that kept it predates them: one.
fn one_layer() -> usize {
    1
}

/// How many layers' steps `c`'s run beside in one dispatch: where `c` is in the layer
/// pipeline, its stack's layers, at most [`JOINED_LAYERS`] (the phases where fewer layers
/// run, at the pipeline's ends, take the same choice), else 1. Their grid holds that many
/// times the workgroups of one layer's, which may want fewer slices.
fn joined_layers(c: &Call<'_>) -> usize {
    match c.stack.joined {
        Some(_) => c.stack.plans.len().clamp(1, JOINED_LAYERS),
        None => 1,
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

    /// E.g. `forward lstm 1024 f16, 64 sequences, tensor cores`, or `backward gru 1024, 64
    /// sequences, 4 layers side by side`.
    fn label(&self) -> String {
        let pass = if self.backward { "backward" } else { "forward" };
        let f16 = if self.f16 { " f16" } else { "" };
        let dirs = if self.dirs > 1 { " bidirectional" } else { "" };
        let products = if self.tensor { ", tensor cores" } else { "" };
        let layers = match self.layers {
            1 => String::new(),
            n => format!(", {n} layers side by side"),
        };
        format!(
            "{pass} {} {}{f16}{dirs}, {} sequences{products}{layers}",
            self.cell.name(),
            self.hidden,
            self.batch
        )
    }
}

/// One measurement: each candidate layout's least seconds a step, and the fastest.
pub type SliceRace = measured::Race<SliceShape, StepTile>;

impl SliceRace {
    /// One line: the pass and shape, each candidate's time, the chosen one first.
    pub fn label(&self) -> String {
        self.line(tile_name)
    }
}

/// `units=U ksplit=N`, as the tuning's label names a fixed width and count.
pub fn tile_name(t: StepTile) -> String {
    format!("units={} ksplit={}", t.units, t.slices)
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

/// The layouts of `c`'s steps to time: each of [`WIDTHS`] up to the first that holds all
/// of the layer's units (only the tuning's where it gives one) at each count of
/// [`CANDIDATES`], less those that lay the steps out as an earlier one (a count the tile
/// or the adapter lowers).
pub(super) fn candidates(c: &Call<'_>) -> Vec<StepTile> {
    let widths: Vec<usize> = match c.be.tuning().step_tile_units {
        Some(units) => vec![units],
        None => WIDTHS
            .iter()
            .enumerate()
            .filter(|&(i, _)| i == 0 || WIDTHS[i - 1] < c.plan.hidden)
            .map(|(_, &w)| w)
            .collect(),
    };
    let layout = |t: StepTile| {
        let ask = (Some(t.units), Some(t.slices));
        match c.products().on_tensor_cores() {
            true => {
                let (tu, ks) = c.coop_tiles_at(ask);
                (tu, ks, None)
            }
            false => {
                let (tu, chunks) = c.plain_tiles_at(ask);
                (tu, chunks.ks, Some(chunks))
            }
        }
    };
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for slices in CANDIDATES {
        for &units in &widths {
            let t = StepTile { units, slices };
            let l = layout(t);
            if !seen.contains(&l) {
                seen.push(l);
                out.push(t);
            }
        }
    }
    out
}

/// The width and K slices `c`'s `backward` or forward steps take where the tuning leaves
/// the slices open: `None` (the tuning's width and the grid's rule) where the backend does
/// not measure them or there is no choice, else the layout measured fastest for their
/// shape, measuring it now if this is the first call of the shape.
pub(super) fn chosen(c: &Call<'_>, backward: bool) -> Option<StepTile> {
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
    if let Some(tile) = be.slices.borrow_mut().known(&shape, &candidates, read) {
        return Some(tile);
    }
    let race = be.gpu.aside(|| measure(c, shape, candidates));
    if let Some(path) = &file(be) {
        store(path, &AdapterKey::of(be.gpu.info()), &race);
    }
    let tile = race.chosen;
    be.slices.borrow_mut().races.push(race);
    Some(tile)
}

/// Times `c`'s `shape.backward` or forward steps at each of `candidates` ([`STEPS`] steps
/// of its shape on buffers of their own; where they are joined, those of `shape.layers`
/// layers of its stack side by side, each with its own weights, as the pipeline runs them)
/// and returns them with the fastest.
fn measure(c: &Call<'_>, shape: SliceShape, candidates: Vec<StepTile>) -> SliceRace {
    let gpu = &c.be.gpu;
    let of = Of::call(c, shape.layers);
    let bufs = Scratch::new(c, of);
    let first_submission = gpu.first_submission();
    let times = time_candidates(&bufs, of, &candidates, shape.backward);
    gpu.set_first_submission(first_submission);
    bufs.free(gpu);
    SliceRace {
        chosen: fastest(&times).unwrap_or(candidates[0]),
        shape,
        candidates,
        times,
        stored: false,
    }
}

/// Each of `candidates` (layouts) and its least seconds a step of the `backward` or
/// forward steps of `of`'s layers over `bufs`.
fn time_candidates(
    bufs: &Scratch,
    of: Of<'_>,
    candidates: &[StepTile],
    backward: bool,
) -> Vec<(StepTile, f64)> {
    let gpu = &of.be.gpu;
    let products = Products::new(gpu);
    // Where the layers' steps are held until they go as one dispatch (each time step's are
    // flushed before the next's); a call of its own (one layer) holds none there.
    let held = Joined::default();
    let joined = (of.plans.len() > 1).then_some(&held);
    let calls: Vec<Vec<Call<'_>>> = candidates
        .iter()
        .map(|&tile| {
            (0..of.plans.len())
                .map(|l| bufs.call(of, l, &products, tile, joined))
                .collect()
        })
        .collect();
    let cell = cell_of(&of.plans[0]);
    let dummy = &of.be.dummy;
    // Each timed run goes to the device in one submission once it is recorded, so the time
    // is the device's and not the host's recording.
    gpu.set_first_submission(0);
    // Seconds a step over `reps` x STEPS steps in one submission, waited for.
    let run = |at: usize, reps: usize| {
        let layers = &calls[at];
        for _ in 0..reps {
            for j in 0..STEPS {
                for (l, call) in layers.iter().enumerate() {
                    match backward {
                        true => {
                            let io = Bwd {
                                dy: &bufs.dys[l],
                                st_h: dummy,
                                st_c: dummy,
                            };
                            cell.backward_step(call, &io, STEPS - 1 - j);
                        }
                        false => {
                            let io = Fwd {
                                st_h: dummy,
                                st_c: dummy,
                            };
                            cell.forward_step(call, &io, j);
                        }
                    }
                }
                held.flush(gpu);
            }
        }
        let start = Instant::now();
        gpu.flush();
        gpu.wait();
        start.elapsed().as_secs_f64() / (reps * STEPS) as f64
    };
    let order: Vec<usize> = (0..candidates.len()).collect();
    measured::time_in_turns(&order, TIMED_SECONDS, MAX_REPS, run)
        .into_iter()
        .map(|(at, s)| (candidates[at], s))
        .collect()
}

/// What a measurement's calls take of the call they measure for.
#[derive(Clone, Copy)]
struct Of<'a> {
    be: &'a WgpuBackend,
    /// The layers measured side by side: the call's own, or the first of its stack's.
    plans: &'a [crate::params::LayerPlan],
    params: &'a GpuBuffer,
    steps: usize,
}

impl<'a> Of<'a> {
    /// What `c` gives a measurement of `layers` layers' steps.
    fn call(c: &Call<'a>, layers: usize) -> Of<'a> {
        let plans = match layers {
            1 => std::slice::from_ref(c.plan),
            n => &c.stack.plans[..n],
        };
        Of {
            be: c.be,
            plans,
            params: c.params,
            steps: c.steps,
        }
    }
}

/// A measurement's buffers, outside the pool: each layer's cache, gates buffer, output and
/// output gradient over [`STEPS`] steps of every sequence (parts of one buffer each where
/// the layers are joined, as the pipeline's are), their f16 copies of W_hh where joined
/// steps read one, and the sequence lengths.
struct Scratch {
    seq: SeqShape,
    caches: Vec<GpuBuffer>,
    gates: Vec<GpuBuffer>,
    ys: Vec<GpuBuffer>,
    dys: Vec<GpuBuffer>,
    w16: Vec<GpuBuffer>,
    lengths: GpuBuffer,
}

impl Scratch {
    /// Buffers for the steps of `of`'s layers, shaped as `c`'s.
    fn new(c: &Call<'_>, of: Of<'_>) -> Scratch {
        let gpu = &c.be.gpu;
        let seq = SeqShape {
            time: STEPS,
            lengths: vec![STEPS; c.lay.batch],
        };
        let f16 = c.cache.is_f16();
        let lay = Layout::of(c.plan, &seq, f16);
        let layers = of.plans.len();
        let each = |len: usize, half: bool| match layers {
            1 => vec![gpu.scratch(len, half)],
            n => gpu.scratch_joined(&vec![len; n], half),
        };
        let outputs = STEPS * c.lay.batch * c.plan.output_width();
        let lengths = gpu.scratch(c.lay.batch, false);
        gpu.write(&lengths, &vec![STEPS as u32; c.lay.batch]);
        // A call of its own makes its copy where it reads one (`Call::w16_copy`); joined
        // steps bind parts of one buffer, as the pipeline's.
        let w16 = match layers {
            1 => Vec::new(),
            _ => w16_parts(c.be, of.plans, of.params, &lay, of.steps, |lens| {
                gpu.scratch_joined(lens, true)
            }),
        };
        Scratch {
            caches: each(lay.total, f16),
            gates: each(lay.gates_len, false),
            ys: each(outputs, false),
            dys: each(outputs, false),
            w16,
            lengths,
            seq,
        }
    }

    /// A call of `of`'s layer `l` over these buffers, its steps in `tile`'s width and K
    /// slices both ways, held in `joined` where given.
    fn call<'a>(
        &'a self,
        of: Of<'a>,
        l: usize,
        products: &'a Products<'a>,
        tile: StepTile,
        joined: Option<&'a Joined<'a>>,
    ) -> Call<'a> {
        let k_slices: KSlices = [tile, tile].map(|t| std::cell::OnceCell::from(Some(t)));
        let plan = &of.plans[l];
        Call {
            be: of.be,
            plan,
            lay: Layout::of(plan, &self.seq, self.caches[l].is_f16()),
            params: of.params,
            cache: &self.caches[l],
            gates: &self.gates[l],
            y: &self.ys[l],
            lengths: &self.lengths,
            has_state: false,
            zero_init: true,
            // The call's own, which decides whether the tensor-core steps read an f16 copy
            // of W_hh (`Call::half_weights`), as the call's steps will.
            steps: of.steps,
            w16: std::cell::OnceCell::new(),
            read_w16: std::cell::Cell::new(false),
            products,
            stack: InStack {
                joined,
                plans: of.plans,
                w16: self.w16.get(l),
                ..InStack::default()
            },
            k_slices,
        }
    }

    /// Gives their memory back to the device.
    fn free(self, gpu: &super::runtime::Gpu) {
        let mut all = vec![self.lengths];
        for bufs in [self.caches, self.gates, self.ys, self.dys, self.w16] {
            all.extend(bufs);
        }
        gpu.forget_scratch(all);
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
    measured::load_choices(path, KEPT, adapter, |t: StepTile| {
        WIDTHS.contains(&t.units) && CANDIDATES.contains(&t.slices)
    })
}

/// Adds `race` to the file at `path` for `adapter`.
fn store(path: &Path, adapter: &AdapterKey, race: &SliceRace) {
    measured::store_choices(path, KEPT, adapter, race);
}
