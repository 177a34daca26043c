//! The wgpu backend: every operation of [`Backend`] as WGSL compute kernels (`shaders/`),
//! recorded into command encoders and submitted in pieces, without waiting for the device
//! until the host reads a result.
//!
//! Each operation family lives in a file named like its shader and its CPU twin
//! (`lstm_cell.rs` ~ `shaders/lstm_cell.wgsl` ~ `src/backend/cpu/lstm_cell.rs`). Computes in
//! f32; under [`Precision::F16`] the layer caches are stored in f16.

pub mod autotune;
pub mod device;
pub mod gemm;
pub mod gemm_measure;
pub mod instructions;
pub mod measured;
pub mod runtime;

mod clip;
mod codegen;
mod dropout;
mod elman_cell;
mod encode;
mod gru_cell;
mod head;
mod jordan_cell;
mod layer;
pub use layer::{CellKind, StepProducts, cell_module_source};
mod loss;
mod lstm_cell;
mod optim;
pub mod pipeline_measure;
pub mod slices_measure;
mod stack;
mod step_tiles;
pub use step_tiles::{
    BUSY_INVOCATIONS, H100_INVOCATIONS, H100_WORKGROUP_BYTES, PlainChunks, SUITE_GRIDS, StepArrays,
    StepGrid, TILE_QUADS, TileAsk, WIDE_QUADS, coop_forward_quads, coop_step_bytes, coop_tiles,
    fit_chunks, forward_quads, forward_tile, h100_tiles, plain_tiles,
};
pub mod weights_f16;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use super::{
    Backend, LossPlan, SeqShape, StackBackward, StackForward, StateBufs, StateBufsMut, TargetBufs,
    TokenBags,
};
use crate::config::Pooling;
use crate::optim::OptimizerStep;
use crate::params::{EncodePlan, HeadPlan, LayerPlan};

pub use device::{GpuError, INSTALL_HINT};
pub use runtime::{Gpu, GpuBuffer, Kernel, KernelTime, Readback};

/// Every WGSL module the engine can hand to a device, by name, as the device gets it
/// (`Shader::module_source`): each kernel family in each of its builds (f32 or f16 storage,
/// each way of computing the step products, the tensor-core builds and the layer pipeline's
/// joined steps included). For checks
/// that need no GPU, such as `tests/shader_style.rs`, which holds every kernel to the
/// developers' guide's rules on the modules as compiled.
pub fn module_sources() -> Vec<(&'static str, String)> {
    use runtime::Shader;
    let plain: [&Shader; 9] = [
        &clip::CLIP,
        &runtime::COPY_WITHIN,
        &dropout::DROPOUT,
        &encode::ENCODE,
        &gemm::COLSUM,
        &head::POOL,
        &loss::LOSS,
        &optim::OPTIM,
        &weights_f16::WEIGHTS_F16,
    ];
    let variants = [
        &gemm::GEMM,
        &gemm::GEMM128,
        &gemm::GEMM256,
        &gemm::GEMM_COOP,
        &gemm::GEMM_COOP_EMULATED,
    ];
    let mut shaders: Vec<&Shader> = plain.to_vec();
    for f16 in [false, true] {
        shaders.extend(variants.iter().map(|v| v.get(f16)));
        for cell in CellKind::ALL {
            for products in StepProducts::ALL {
                shaders.push(layer::cell_shader(cell).get(f16, products, true));
            }
            // The joined matrix-vector steps (the layer pipeline's at small batches).
            if cell != CellKind::Jordan {
                shaders.push(layer::cell_shader(cell).joined(f16, StepProducts::Gemv, true));
            }
            // The f32 and tensor-core tiles for adapters with only 8 storage buffers per
            // stage, and their joined builds for the layer pipeline's steps (cells whose
            // tiled steps join, `GpuCell::joins`), with and without the ninth binding.
            for products in [
                StepProducts::F32,
                StepProducts::Tensor,
                StepProducts::TensorEmulated,
            ] {
                let shader = layer::cell_shader(cell);
                shaders.push(shader.get(f16, products, false));
                if cell != CellKind::Jordan {
                    shaders.push(shader.joined(f16, products, true));
                    shaders.push(shader.joined(f16, products, false));
                }
            }
        }
    }
    shaders
        .into_iter()
        .map(|s| (s.name, s.module_source()))
        .collect()
}

/// Class ids on the GPU, with the host copy they were made from.
#[derive(Debug)]
pub struct GpuIds {
    pub(crate) buf: GpuBuffer,
    pub(crate) host: Vec<u32>,
}

/// Token bags on the GPU (offsets and ids), with the host copy they were made from (the
/// embedding gradient groups positions by id on the host before its scatter-add kernel).
#[derive(Debug)]
pub struct GpuTokens {
    pub(crate) offsets: GpuBuffer,
    pub(crate) ids: GpuBuffer,
    pub(crate) host: TokenBags,
}

/// Workgroup memory of the tiled step kernels' blocked loops (`shaders/step_tiles.wgsl`:
/// `wsm`, 1536 vec4, and `h_tile`, 320 vec4), which also holds one K slice of the plain
/// loops at 16 rows and 16 k steps, and whatever `step_tiles::fit_chunks` chooses for one slice
/// within it (it sizes the arrays for those).
pub const TILED_STEP_WORKGROUP_BYTES: u32 =
    ((step_tiles::BLOCKED_WS + step_tiles::BLOCKED_HT) * 16) as u32;

/// The most sequences at which the recurrent steps take the matrix-vector products by
/// default ([`Tuning::gemv_steps`]): one of their workgroups' worth, so that they read W_hh
/// once a step, as the tiles do (whose 16 sequence lanes are then at least three quarters
/// idle), on far more invocations and without the tiles' chain of staged chunks
/// (BENCHMARKS.md, entries 22 and 45).
pub const GEMV_AUTO_BATCH: usize = layer::GEMV_SEQUENCES;

/// Choices between kernels that compute the same thing, for benchmarking one against the
/// other on a given adapter (every choice is tested against the CPU reference). The
/// backend starts from the adapter's entry in the autotune table where there is one
/// (`autotune`), else from the default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Tuning {
    /// Recurrent steps as 16-, 32- or 64-unit x 16-sequence tiles sharing W_hh through workgroup
    /// memory (the `*_tiled` entry points: forward and backward of Elman, LSTM (backward
    /// without projection) and PyTorch-variant GRU), instead of one invocation per unit and
    /// sequence reading its own W_hh rows. Default: tiled.
    pub tiled_steps: bool,
    /// Units per workgroup of the tiled steps: 16, 32 or 64, `None` to pick by the grid size
    /// (`step_tiles::FULL_GRID`).
    pub step_tile_units: Option<usize>,
    /// The tiled steps' blocked inner loops (`STEP_BLOCKED` in `shaders/layer.wgsl`): 32
    /// units per workgroup, each invocation a 4-unit x 4-sequence block of every gate over a
    /// quarter of the inner dimension, partial sums added through workgroup memory. Default:
    /// off until measured on a GPU against the plain loops.
    pub blocked_steps: bool,
    /// K slices of the f32 tiles' plain loops and of the tensor-core tiles (the `KS`
    /// override of `shaders/layer.wgsl`): 1, 2 or 4 times the invocations per workgroup,
    /// each slice a share of the inner dimension's chunks, partial sums added through
    /// workgroup memory, for steps whose grid leaves the cores with few warps (the
    /// flagship's 128 workgroups of 128 on 132 SMs). `None` (the default) leaves them to
    /// [`Tuning::k_split_by`]: measured on a GPU, else by the grid's rule, the fewest that
    /// give a step [`step_tiles::BUSY_INVOCATIONS`], else 4 (`step_tiles::plain_tiles`,
    /// `step_tiles::coop_tiles`; BENCHMARKS.md, entries 48, 51 and 73). Lowered where the
    /// tile or the adapter's workgroup limit does not allow it (`step_tiles::fit_chunks`,
    /// `step_tiles::coop_step_bytes`).
    #[serde(default)]
    pub step_k_split: Option<usize>,
    /// How the K slices are chosen where [`Tuning::step_k_split`] is `None`: by default
    /// measured on an adapter that is a GPU (`slices_measure`: each step shape's layouts,
    /// tile widths too where [`Tuning::step_tile_units`] is `None`, timed aside the first
    /// time it runs, the fastest kept), by the grid's rule on a CPU adapter.
    #[serde(default)]
    pub k_split_by: SliceChoice,
    /// Chunk depth (one barrier pair each chunk) per K slice in the f32 tiles' plain loops:
    /// 16, 32 or 64, lowered where the adapter's workgroup memory does not hold them at the
    /// K slices (`step_tiles::fit_chunks`: the H100's 48 KiB holds 64 rows at four slices of
    /// 16-unit LSTM tiles and 32 of the 32-unit ones the grid takes by default, lavapipe's
    /// 32 KiB 32 of 16-unit ones). The backward stages that many rows of
    /// W_hh^T per chunk, the forward that many k steps within 128 weight rows (an LSTM's or
    /// GRU's 32, an Elman cell's 64). 64 (the default) gives an LSTM's backward H / 16
    /// chunks a step (each of 64 x TU weights) and its forward H / 32, with four weight
    /// loads in flight per invocation; 16 is what both had before: 4H / 16 chunks of one
    /// load each in an LSTM's backward, H / 16 in the Elman forward (BENCHMARKS.md, entries
    /// 19 and 42).
    #[serde(default = "sixty_four")]
    pub step_chunk_rows: usize,
    /// Sequences per workgroup of the tiled forward steps of gated cells (the f32 tiles'
    /// LSTM and GRU, the tensor-core tiles' LSTM): 16, or 32 in tiles of half the units
    /// (the same workgroups and invocations), which read each staged weight for twice the
    /// sequences and so W_hh half as often a step, for twice the staged states
    /// (`step_tiles::forward_quads`: a third less L2 traffic for the flagship's f32 forward, a
    /// fifth for its f16 one). Only where the tiles are at least 32 units wide; `None`
    /// (the default) takes 32 where the batch has more than 16 sequences and tiles of 32
    /// pad it no more than tiles of 16.
    #[serde(default)]
    pub forward_sequences: Option<usize>,
    /// The layer pipeline (`stack.rs`): a stack of unidirectional layers of one kind and
    /// width runs its forward as a wavefront over this many chunks of time steps, layer l
    /// on chunk c while layer l + 1 runs chunk c - 1, each time step one dispatch for all
    /// the layers in it (the flagship's forward: 191 dispatches instead of 404 at 4
    /// chunks), and its backward as the mirror wavefront from the top (the flagship's
    /// training step: 382 dispatches instead of 837; where the gate gradients are wide, f16
    /// LSTM and GRU caches, each layer holds them for a window of its chunk,
    /// `stack::window_rows`). Only the tiled steps (f32, matrix-vector or tensor-core, also
    /// on W_hh's f16 copy). `Some(1)`: layer by layer. `None` (the default): measured on an
    /// adapter that is a GPU, each stack shape's first passes timed layer by layer and in
    /// the pipeline's chunk counts, the fastest kept for the run (`pipeline_measure`); layer
    /// by layer on a CPU adapter, unless [`Tuning::wavefront_measured`].
    #[serde(default)]
    pub wavefront: Option<usize>,
    /// With `wavefront: None`, measure the layer pipeline on any adapter (`--wavefront
    /// measured`: tests and checks on lavapipe), not only on a GPU.
    #[serde(default)]
    pub wavefront_measured: bool,
    /// The tiled steps' recurrent products on the tensor cores (`shaders/step_coop.wgsl`:
    /// operands rounded to f16, f32 sums): `Some(true)` wherever the adapter has them,
    /// `Some(false)` never, `None` (the default) under [`Precision::F16`] where the adapter
    /// has them. Only in the plain tiles (not the blocked loops).
    #[serde(default)]
    pub tensor_steps: Option<bool>,
    /// The tensor-core steps at f32 accuracy (the `SPLIT` override of
    /// `shaders/step_coop.wgsl`: each operand staged as two f16 halves, three products per
    /// 16-deep step; twice the staging, so fewer K slices where the workgroup memory is
    /// short). Only with `tensor_steps: Some(true)`. Default: off until measured on a GPU.
    #[serde(default)]
    pub split_steps: bool,
    /// Where the rounded tensor-core steps read W_hh: `Some(true)` from an f16 copy made once
    /// per layer call (`shaders/weights_f16.wgsl`: half the bytes a step reads for W_hh, the
    /// same f16 operands; BENCHMARKS.md, entry 54), `Some(false)` from the f32 parameters,
    /// scaling and rounding it as they stage each chunk, `None` (the default) from the copy
    /// where it saves more than it costs ([`step_tiles::half_weights_pay`]: not for short calls
    /// such as generation's one step, nor for small layers). The copy needs a ninth storage
    /// buffer per stage.
    #[serde(default)]
    pub half_step_weights: Option<bool>,
    /// The tiled steps' recurrent products as matrix-vector products for few sequences
    /// (`shaders/step_gemv.wgsl`: 4 sequences and 8 units per workgroup, each weight loaded
    /// by one invocation straight into a register, 16 loads in flight, no barrier between
    /// them), for small batches, where the tiles leave 15 of 16 sequence lanes idle and walk
    /// W_hh in a chain of staged chunks. Only in place of the plain f32 tiles (f32 products;
    /// no K slices or chunk rows of their own). `Some(true)` at every batch, `Some(false)`
    /// never, `None` (the default) for batches of at most [`GEMV_AUTO_BATCH`] sequences
    /// where the f32 tiles would run with their automatic width, one K slice and 64-row
    /// chunks ([`WgpuBackend::step_products_for`]).
    #[serde(default)]
    pub gemv_steps: Option<bool>,
    /// The tile of the matrix products (`gemm.wgsl` 64x64, the generated 128x128
    /// `gemm128.wgsl` or 256x128 `gemm256.wgsl`, or the tensor-core twin `gemm_coop.wgsl`).
    /// Default: by size, on the tensor cores under [`Precision::F16`] where the adapter has
    /// them; the 256x128 tile only when asked for, until measured on a GPU.
    pub gemm_tiles: gemm::GemmTiles,
    /// Keep naga's bounds checks in every kernel. Default: on (without the loop counters
    /// wgpu would add for untrusted code: every loop of ours ends); off is the trusted path
    /// (`Gpu::set_checked`).
    pub checked: bool,
}

/// serde's default of [`Tuning::step_chunk_rows`] (entries written before it existed).
fn sixty_four() -> usize {
    64
}

impl Tuning {
    /// Whether the choices are possible (tiles of 16, 32 or 64 units; blocked loops only in
    /// tiles; K slices only in the plain f32 or the tensor-core tiles, chunk rows other than
    /// 64 only in the plain f32 loops): a tuning read from a file is checked before use.
    pub fn is_valid(&self) -> bool {
        matches!(self.step_tile_units, None | Some(16) | Some(32) | Some(64))
            && (self.tiled_steps || !self.blocked_steps)
            && (self.tensor_steps != Some(true) || (self.tiled_steps && !self.blocked_steps))
            && (!self.split_steps || self.tensor_steps == Some(true))
            && matches!(self.step_k_split, None | Some(1 | 2 | 4))
            && (self.step_k_split.is_none() || self.k_split_by == SliceChoice::Auto)
            && matches!(self.step_chunk_rows, 16 | 32 | 64)
            && (self.step_chunk_rows == 64 || self.plain_f32_tiles())
            && matches!(self.forward_sequences, None | Some(16 | 32))
            && self
                .wavefront
                .is_none_or(|n| (1..=MAX_WAVEFRONT).contains(&n))
            && (!self.wavefront_measured || self.wavefront.is_none())
            && (self.forward_sequences.is_none() || self.sliced_tiles())
            && (self.step_k_split.unwrap_or(1) == 1 || self.sliced_tiles())
            && (self.gemv_steps != Some(true)
                || (self.tiled_steps
                    && !self.blocked_steps
                    && self.tensor_steps != Some(true)
                    && self.step_tile_units.is_none()))
    }

    /// Whether the recurrent steps may run in tiles with K slices: the f32 tiles' plain
    /// loops or the tensor-core tiles.
    pub fn sliced_tiles(&self) -> bool {
        self.tiled_steps && !self.blocked_steps && self.gemv_steps != Some(true)
    }

    /// Whether the recurrent steps may run in the f32 tiles' plain loops, the only ones with
    /// a choice of chunk rows.
    pub fn plain_f32_tiles(&self) -> bool {
        self.tiled_steps
            && !self.blocked_steps
            && self.tensor_steps != Some(true)
            && self.gemv_steps != Some(true)
    }

    /// Whether the matrix-vector products take the place of the f32 tiles at `batch`
    /// sequences: where asked for, or by default at batches of at most
    /// [`GEMV_AUTO_BATCH`] sequences, unless a choice only the tiles have (a width, more
    /// than one K slice, chunk rows) was made.
    pub fn gemv_at(&self, batch: usize) -> bool {
        match self.gemv_steps {
            Some(asked) => asked,
            None => {
                batch <= GEMV_AUTO_BATCH
                    && self.step_tile_units.is_none()
                    && matches!(self.step_k_split, None | Some(1))
                    && self.step_chunk_rows == 64
                    && self.forward_sequences.is_none()
            }
        }
    }

    /// The choices in a few words, e.g. `steps=auto units=auto gemm=auto checked`: steps
    /// `auto` (the default: tensor-core tiles under f16 where the adapter has them, else the
    /// f32 tiles, or the matrix-vector products for few sequences), `f32` (the f32 tiles or
    /// the matrix-vector products), `tiled` (tiles only), `tiled-f32`, `tensor`, `gemv`,
    /// `blocked` or `rowwise`.
    pub fn label(&self) -> String {
        let steps = match (self.tiled_steps, self.blocked_steps, self.tensor_steps) {
            (false, _, _) => "rowwise",
            (true, true, _) => "blocked",
            _ if self.gemv_steps == Some(true) => "gemv",
            (true, false, Some(true)) if self.split_steps => "tensor-split",
            (true, false, Some(true)) => "tensor",
            // Whether the matrix-vector products may stand in for the f32 tiles.
            (true, false, Some(false)) if self.gemv_steps.is_none() => "f32",
            (true, false, Some(false)) => "tiled-f32",
            (true, false, None) if self.gemv_steps.is_none() => "auto",
            (true, false, None) => "tiled",
        };
        let units = match (self.tiled_steps, self.blocked_steps, self.step_tile_units) {
            (false, _, _) => "-".to_string(),
            (true, true, _) => "32".to_string(),
            (true, false, Some(u)) => u.to_string(),
            (true, false, None) => "auto".to_string(),
        };
        let gemm = self.gemm_tiles.name();
        let checks = if self.checked { "checked" } else { "unchecked" };
        let split = match (self.step_k_split, self.k_split_by) {
            (None, SliceChoice::Auto) => String::new(),
            (None, by) => format!(" ksplit={}", by.name()),
            (Some(k), _) => format!(" ksplit={k}"),
        };
        let rows = match self.step_chunk_rows {
            64 => String::new(),
            r => format!(" chunkrows={r}"),
        };
        let weights = match self.half_step_weights {
            None => "",
            Some(true) => " weights=f16",
            Some(false) => " weights=f32",
        };
        let seqs = match self.forward_sequences {
            None => String::new(),
            Some(n) => format!(" fwdseqs={n}"),
        };
        let wave = match self.wavefront {
            None if self.wavefront_measured => " wavefront=measured".to_string(),
            None => String::new(),
            Some(1) => " wavefront=off".to_string(),
            Some(n) => format!(" wavefront={n}"),
        };
        format!(
            "steps={steps} units={units}{split}{rows}{seqs}{weights}{wave} gemm={gemm} {checks}"
        )
    }
}

/// How the recurrent steps' K slices (and, where [`Tuning::step_tile_units`] leaves it
/// open, their tiles' width) are chosen where [`Tuning::step_k_split`] leaves them open:
/// which layout fills a GPU best depends on how it hides a chunk's barriers and loads,
/// which a rule written without the device cannot know (BENCHMARKS.md, entries 48, 73 and
/// 75).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum SliceChoice {
    /// Measured on an adapter that is a GPU (`slices_measure`), by the rule on a CPU
    /// adapter.
    #[default]
    Auto,
    /// By the grid's rule (`step_tiles::plain_tiles`, `step_tiles::coop_tiles`): the fewest
    /// slices that give a step [`step_tiles::BUSY_INVOCATIONS`], else 4; no measuring.
    Rules,
    /// Measured on any adapter (tests and checks on lavapipe).
    Measured,
}

impl SliceChoice {
    /// The choice as `--step-k-split` names it.
    pub fn name(self) -> &'static str {
        match self {
            SliceChoice::Auto => "auto",
            SliceChoice::Rules => "rules",
            SliceChoice::Measured => "measured",
        }
    }
}

/// The most chunks of time steps [`Tuning::wavefront`] takes.
pub const MAX_WAVEFRONT: usize = 64;

/// The forward's tiles beside tiles of `tu` units in a step layout's words, where its
/// `sq` sequence quads make them others: ` (forward 16 x 32 in 128)`, its units, sequences
/// and workgroups for steps of `grid`.
fn forward_tiles(grid: StepGrid, tu: usize, sq: usize) -> String {
    if sq == step_tiles::TILE_QUADS {
        return String::new();
    }
    let (fu, fb) = step_tiles::forward_tile(tu, sq);
    let groups = grid.hidden.div_ceil(fu) * grid.batch.div_ceil(fb) * grid.dirs;
    format!(" (forward {fu} x {fb} in {groups})")
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            tiled_steps: true,
            step_tile_units: None,
            blocked_steps: false,
            step_k_split: None,
            k_split_by: SliceChoice::Auto,
            step_chunk_rows: 64,
            forward_sequences: None,
            wavefront: None,
            wavefront_measured: false,
            tensor_steps: None,
            split_steps: false,
            half_step_weights: None,
            gemv_steps: None,
            gemm_tiles: gemm::GemmTiles::Auto,
            checked: true,
        }
    }
}

/// How the backend stores what the forward pass keeps for the backward pass (the layer caches:
/// gate activations, cell states, initial states and the cells' other records), and whether
/// its large matrix products may round their operands to f16 on the tensor cores. Every sum
/// is f32 either way; parameters, gradients, optimizer state, layer outputs and the
/// backward's gate gradients stay f32.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Everything in f32.
    #[default]
    F32,
    /// Layer caches in f16 (`SHADER_F16`): half their memory and traffic; each record is
    /// rounded to f16 when stored, the forward's recurrence included where it reads its
    /// state back from the cache (LSTM cell state, Jordan output, GRU records). Where the
    /// adapter has tensor cores (`Gpu::has_tensor_cores`), the large matrix products and the
    /// tiled steps' recurrent products run on them with operands rounded to f16 and f32
    /// sums (as cuDNN's tf32 mode).
    F16,
}

/// The GPU backend: one adapter, one device, the kernels' pipelines and scratch.
pub struct WgpuBackend {
    pub(crate) gpu: Gpu,
    /// A one-element zero buffer bound where a kernel's optional input is absent.
    pub(crate) dummy: GpuBuffer,
    /// Sequence lengths as u32 buffers, by batch shape.
    lengths: RefCell<HashMap<Vec<usize>, Rc<GpuBuffer>>>,
    tuning: Tuning,
    /// The autotune table the starting choices came from, if any.
    tuned_from: Option<std::path::PathBuf>,
    /// That table's entry for this adapter and precision.
    tuned_entry: Option<autotune::Entry>,
    /// The shape of the model about to run ([`WgpuBackend::set_shape`]), which picks the
    /// entry's choices for that shape.
    shape: Option<autotune::Shape>,
    /// The tuned shape the choices in effect came from, if they came from one.
    tuned_shape: Option<autotune::Shape>,
    /// The choices were set through [`WgpuBackend::set_tuning`], so a change of precision
    /// keeps them instead of taking that precision's table entry.
    tuning_fixed: bool,
    precision: Precision,
    /// The layer pipeline's measured choices (`pipeline_measure`).
    pipeline: RefCell<pipeline_measure::Measurements>,
    /// The steps' measured K slices (`slices_measure`).
    slices: RefCell<measured::Kept<slices_measure::SliceShape, slices_measure::StepTile>>,
}

impl WgpuBackend {
    /// Opens an adapter: `adapter` is an index or part of a name (see `wgrnn devices`); `None`
    /// takes `WGRNN_ADAPTER`, else the best adapter.
    pub fn new(adapter: Option<&str>) -> Result<Self, GpuError> {
        let gpu = Gpu::new(adapter)?;
        // Matrix units are used only once they give the loops' products (emulated ones are
        // the tests' to check).
        if gpu.has_tensor_cores() && !gpu.tensor_emulated() {
            gemm::verify_tensor_cores(&gpu);
        }
        if autotune::enabled() {
            gpu.set_product_tiles_file(autotune::product_tiles_path());
        }
        let dummy = gpu.buffer(1);
        let mut be = WgpuBackend {
            gpu,
            dummy,
            lengths: RefCell::default(),
            tuning: Tuning::default(),
            tuned_from: None,
            tuned_entry: None,
            shape: None,
            tuned_shape: None,
            tuning_fixed: false,
            precision: Precision::F32,
            pipeline: RefCell::default(),
            slices: RefCell::default(),
        };
        be.apply_autotune_table();
        Ok(be)
    }

    /// Starts from the defaults, or from the autotune table's entry for this adapter at the
    /// backend's precision where there is a valid one (its choices for the model's shape
    /// where [`WgpuBackend::set_shape`] gave one). A table that cannot be read is reported
    /// and ignored: it only ever holds speed choices.
    fn apply_autotune_table(&mut self) {
        self.tuned_from = None;
        self.tuned_entry = None;
        if autotune::enabled()
            && let Some(path) = autotune::table_path()
        {
            match autotune::Table::load(&path) {
                Ok(table) => {
                    let key = autotune::AdapterKey::of(self.gpu.info());
                    if let Some(e) = table.get(&key, self.precision) {
                        self.tuned_entry = Some(e.clone());
                        self.tuned_from = Some(path);
                    }
                }
                Err(e) => eprintln!("warning: {e}; using the default kernel choices"),
            }
        }
        self.install_tuned_choice();
    }

    /// Puts the loaded entry's choice for the model's shape in effect, else the defaults.
    fn install_tuned_choice(&mut self) {
        self.tuned_shape = None;
        let Some(e) = &self.tuned_entry else {
            self.install_tuning(Tuning::default());
            return;
        };
        let (tuning, from) = e.choice_for(self.shape.as_ref());
        let from = from.cloned();
        if tuning.is_valid() {
            self.install_tuning(tuning);
            self.tuned_shape = from;
        } else {
            eprintln!(
                "warning: {}: the entry for `{}` holds impossible kernel choices; using the \
                 defaults",
                self.tuned_from
                    .as_deref()
                    .map_or(String::new(), |p| p.display().to_string()),
                e.adapter.name
            );
            self.install_tuning(Tuning::default());
            self.tuned_from = None;
        }
    }

    /// The autotune table the backend's starting kernel choices came from (`None`: the
    /// defaults).
    pub fn tuned_from(&self) -> Option<&std::path::Path> {
        self.tuned_from.as_deref()
    }

    /// The tuned shape whose choices are in effect (`None`: the table entry's overall
    /// choice, or no table).
    pub fn tuned_shape(&self) -> Option<&autotune::Shape> {
        self.tuned_shape.as_ref()
    }

    /// Says what model is about to run, so the autotune table's choices for that shape (or
    /// the nearest tuned one) apply instead of its overall choice; choices set through
    /// [`WgpuBackend::set_tuning`] stay as they are.
    pub fn set_shape(&mut self, shape: autotune::Shape) {
        self.shape = Some(shape);
        if !self.tuning_fixed {
            self.install_tuned_choice();
        }
    }

    /// Whether the adapter's workgroup memory holds the tiled step kernels' staging arrays.
    fn tiles_fit(&self) -> bool {
        self.gpu.workgroup_storage() >= TILED_STEP_WORKGROUP_BYTES
    }

    /// The kernel choices in effect.
    pub fn tuning(&self) -> Tuning {
        self.tuning
    }

    /// Changes the kernel choices (for benchmarks and tests that compare kernels); they
    /// stay through later changes of precision.
    pub fn set_tuning(&mut self, tuning: Tuning) {
        self.install_tuning(tuning);
        self.tuning_fixed = true;
    }

    /// Puts `tuning` in effect, less what the adapter cannot run.
    fn install_tuning(&mut self, mut tuning: Tuning) {
        assert!(
            matches!(
                tuning.step_tile_units,
                None | Some(16) | Some(32) | Some(64)
            ),
            "step tiles hold 16, 32 or 64 units"
        );
        // Adapters with little workgroup memory (WebGPU's 16 KiB minimum) run the row-wise
        // steps; the 128x128 GEMM tile checks its own need (gemm::GEMM128_WORKGROUP_BYTES).
        tuning.tiled_steps &= self.tiles_fit();
        tuning.blocked_steps &= tuning.tiled_steps;
        if tuning.gemv_steps == Some(true) && (!tuning.tiled_steps || tuning.blocked_steps) {
            tuning.gemv_steps = None;
        }
        if tuning.tensor_steps == Some(true)
            && (!tuning.tiled_steps || tuning.blocked_steps || !self.gpu.has_tensor_cores())
        {
            tuning.tensor_steps = None;
        }
        tuning.split_steps &= tuning.tensor_steps == Some(true);
        let runs = match tuning.gemm_tiles {
            gemm::GemmTiles::Tensor => self.gpu.has_tensor_cores(),
            gemm::GemmTiles::TensorSplit => self.split_tile_runs(),
            _ => true,
        };
        if !runs {
            tuning.gemm_tiles = gemm::GemmTiles::Big;
        }
        self.gpu.set_gemm_tiles(tuning.gemm_tiles);
        self.gpu.set_checked(tuning.checked);
        self.tuning = tuning;
    }

    /// How layer caches made from now on are stored; `F16` needs an adapter with
    /// `SHADER_F16` (`GpuError::NoF16` otherwise).
    pub fn set_precision(&mut self, precision: Precision) -> Result<(), GpuError> {
        if precision == Precision::F16 && !self.gpu.has_f16() {
            return Err(GpuError::NoF16 {
                adapter: self.gpu.info().name.clone(),
            });
        }
        self.precision = precision;
        self.gpu.set_auto_tensor(precision == Precision::F16);
        if !self.tuning_fixed {
            // The table's choices were measured at one precision each.
            self.apply_autotune_table();
        }
        Ok(())
    }

    /// Whether the adapter runs the split tensor-core tile (`--gemm tensor-split`): matrix
    /// units, and the tile's workgroup memory.
    pub fn split_tile_runs(&self) -> bool {
        gemm::split_tile_runs(&self.gpu)
    }

    /// Whether the large matrix products run on the tensor cores at f32 accuracy, split into
    /// f16 halves (`--gemm tensor-split` on an adapter that runs it).
    pub fn split_products(&self) -> bool {
        self.tuning.gemm_tiles == gemm::GemmTiles::TensorSplit && self.split_tile_runs()
    }

    /// Whether the large matrix products may run on the tensor cores (operands rounded to
    /// f16): `--gemm tensor`, or `Auto` under [`Precision::F16`], on an adapter that has
    /// them (where `Auto` measures the tiles, where the tensor-core tile is the fastest).
    pub fn tensor_products(&self) -> bool {
        let g = &self.gpu;
        gemm::tensor_choice(
            self.tuning.gemm_tiles,
            g.has_tensor_cores(),
            g.auto_tensor(),
        )
    }

    /// How the tiled step kernels compute their recurrent products at batches of more than
    /// [`GEMV_AUTO_BATCH`] sequences ([`WgpuBackend::step_products_for`]); whether they
    /// are on the tensor cores does not depend on the batch.
    pub fn step_products(&self) -> StepProducts {
        self.step_products_for(usize::MAX)
    }

    /// How the tiled step kernels compute their recurrent products for `batch` sequences:
    /// on the tensor cores (emulated where the adapter has none but emulation is on) with
    /// `--step-kernel tensor`, or by default under [`Precision::F16`], on an adapter that
    /// has them; else as matrix-vector products with `--step-kernel gemv`, or by default at
    /// batches of at most [`GEMV_AUTO_BATCH`] sequences ([`Tuning::gemv_at`]); else in the
    /// f32 tiles.
    pub fn step_products_for(&self, batch: usize) -> StepProducts {
        let t = &self.tuning;
        let g = &self.gpu;
        let tiles = t.tiled_steps && !t.blocked_steps;
        // install_tuning keeps gemv_steps = Some(true) only with the plain tiles.
        if t.gemv_steps == Some(true) {
            return StepProducts::Gemv;
        }
        let wanted =
            tiles && g.has_tensor_cores() && t.tensor_steps.unwrap_or_else(|| g.auto_tensor());
        match (wanted, g.tensor_emulated()) {
            (false, _) if tiles && t.gemv_at(batch) => StepProducts::Gemv,
            (false, _) => StepProducts::F32,
            (true, false) => StepProducts::Tensor,
            (true, true) => StepProducts::TensorEmulated,
        }
    }

    /// Whether the defaults (not an explicit choice) take the matrix-vector step products
    /// for `batch` sequences: what `wgrnn bench` and `wgrnn check` report.
    pub fn auto_gemv_steps(&self, batch: usize) -> bool {
        self.tuning.gemv_steps.is_none() && self.step_products_for(batch) == StepProducts::Gemv
    }

    /// The f32 tiles' width and chunking for steps of `grid` on this adapter, with the
    /// tuning's width and chunk rows and `k_split` ([`step_tiles::plain_tiles`]).
    pub fn step_tiles(&self, grid: StepGrid, k_split: Option<usize>) -> (usize, PlainChunks) {
        self.step_tiles_at(grid, self.tuning.step_tile_units, k_split)
    }

    /// [`WgpuBackend::step_tiles`] at the width `units` where given (else the grid's).
    pub fn step_tiles_at(
        &self,
        grid: StepGrid,
        units: Option<usize>,
        k_split: Option<usize>,
    ) -> (usize, PlainChunks) {
        let t = &self.tuning;
        let storage = self.gpu.workgroup_storage() as usize;
        let ask = step_tiles::TileAsk {
            units,
            k_split,
            sequences: t.forward_sequences,
            rows: t.step_chunk_rows,
        };
        step_tiles::plain_tiles(grid, ask, self.most_invocations(), storage)
    }

    /// The f32 tiles' chunking at width `tu` and `ks` K slices (fewer where their arrays do
    /// not fit) for a cell of `gates` gate rows, the forward's in workgroups of `sq`
    /// sequence quads (the tensor-core tiles' whose grid they stand in for), with the
    /// tuning's chunk rows ([`step_tiles::fit_chunks`]).
    pub fn step_chunks_at(&self, tu: usize, ks: usize, gates: usize, sq: usize) -> PlainChunks {
        let storage = self.gpu.workgroup_storage() as usize;
        step_tiles::fit_chunks(
            ks,
            self.tuning.step_chunk_rows,
            tu,
            gates,
            sq,
            self.most_invocations(),
            storage,
        )
    }

    /// The tensor-core steps' width and K slices for steps of `grid` on this adapter, with
    /// the tuning's width and `k_split` ([`step_tiles::coop_tiles`]).
    pub fn coop_step_tiles(&self, grid: StepGrid, k_split: Option<usize>) -> (usize, usize) {
        self.coop_step_tiles_at(grid, self.tuning.step_tile_units, k_split)
    }

    /// [`WgpuBackend::coop_step_tiles`] at the width `units` where given (else the grid's).
    pub fn coop_step_tiles_at(
        &self,
        grid: StepGrid,
        units: Option<usize>,
        k_split: Option<usize>,
    ) -> (usize, usize) {
        step_tiles::coop_tiles(
            grid,
            units,
            k_split,
            self.tuning.split_steps,
            self.most_invocations(),
            self.gpu.workgroup_storage() as usize,
        )
    }

    /// The most invocations one workgroup of the adapter may have (along x).
    fn most_invocations(&self) -> usize {
        let lim = self.gpu.limits();
        lim.max_compute_invocations_per_workgroup
            .min(lim.max_compute_workgroup_size_x) as usize
    }

    /// The K slices the defaults (not an explicit choice) give the steps of a model of
    /// `shape` where they run in the f32 tiles' plain loops or the tensor-core tiles (the
    /// widest layer's) by the grid's rule, not measured ([`WgpuBackend::measures_slices`]):
    /// what `wgrnn bench` and `wgrnn check` report.
    pub fn auto_k_split(&self, shape: &autotune::Shape) -> Option<usize> {
        if self.tuning.step_k_split.is_some() || self.measures_slices() {
            return None;
        }
        let grid = StepGrid::of(shape);
        if self.plain_f32_steps_at(shape.batch) {
            Some(self.step_tiles(grid, None).1.ks)
        } else if self.step_products_for(shape.batch).on_tensor_cores() {
            Some(self.coop_step_tiles(grid, None).1)
        } else {
            None
        }
    }

    /// Whether the K slices the tuning leaves open are measured per step shape
    /// (`slices_measure`) rather than taken by the grid's rule.
    pub fn measures_slices(&self) -> bool {
        slices_measure::measures(self)
    }

    /// Whether the steps of `batch` sequences run in the f32 tiles' plain loops (not the
    /// matrix-vector, tensor-core, blocked or row-wise ones): where the K slices and the
    /// tile rule apply.
    fn plain_f32_steps_at(&self, batch: usize) -> bool {
        let t = &self.tuning;
        t.tiled_steps && !t.blocked_steps && self.step_products_for(batch) == StepProducts::F32
    }

    /// The step tiles a model of `shape` runs its steps in (the widest layer's) over
    /// sequences of `steps` steps, in words: `32 units x 16 sequences (forward 16 x 32 in
    /// 128), 4 K slices, 32-row chunks (16 k steps forward), 128 workgroups of 512
    /// invocations` for the f32 tiles,
    /// `tensor cores reading an f16 copy of W_hh, 32 units x 16 sequences, 4 K slices, ...`
    /// for the tensor-core ones; `None` where another kernel runs them (matrix-vector,
    /// blocked or row-wise). Where the K slices are measured
    /// ([`WgpuBackend::measures_slices`]), `tiles and K slices measured per step shape (by
    /// the rule: ...)`, since what the run takes is known only once it runs. What `wgrnn bench`
    /// reports with each configuration, so a timing says what ran.
    pub fn step_tiles_label(&self, shape: &autotune::Shape, steps: usize) -> Option<String> {
        let rule = self.rule_step_tiles_label(shape, steps)?;
        Some(match self.measures_slices() {
            true => format!("tiles and K slices measured per step shape (by the rule: {rule})"),
            false => rule,
        })
    }

    /// [`WgpuBackend::step_tiles_label`] at the K slices the tuning asks for or the rule's.
    fn rule_step_tiles_label(&self, shape: &autotune::Shape, steps: usize) -> Option<String> {
        let grid = StepGrid::of(shape);
        let plural = |n: usize| if n == 1 { "" } else { "s" };
        if self.step_products_for(shape.batch).on_tensor_cores() {
            let (tu, ks) = self.coop_step_tiles(grid, self.tuning.step_k_split);
            let groups = grid.workgroups(tu);
            let sq = step_tiles::coop_forward_quads(grid, tu, self.tuning.forward_sequences);
            let forward = forward_tiles(grid, tu, sq);
            let split = if self.tuning.split_steps {
                " in split f16 halves"
            } else if self.half_step_weights(shape.batch, grid.weights(), steps) {
                " reading an f16 copy of W_hh"
            } else {
                ""
            };
            return Some(format!(
                "tensor cores{split}, {tu} units x 16 sequences{forward}, {ks} K slice{}, \
                 {groups} workgroup{} of {} invocations",
                plural(ks),
                plural(groups),
                4 * tu * ks
            ));
        }
        if !self.plain_f32_steps_at(shape.batch) {
            return None;
        }
        let (tu, c) = self.step_tiles(grid, self.tuning.step_k_split);
        let groups = grid.workgroups(tu);
        let forward = forward_tiles(grid, tu, c.sq);
        Some(format!(
            "{tu} units x 16 sequences{forward}, {} K slice{}, {}-row chunks ({} k steps \
             forward), {groups} workgroup{} of {} invocations",
            c.ks,
            plural(c.ks),
            c.rows,
            c.fk,
            plural(groups),
            4 * tu * c.ks
        ))
    }

    /// Whether any product rounds its operands to f16 on the tensor cores (the large matrix
    /// products or the recurrent steps', not split into halves): what `wgrnn check` sets its
    /// tolerances by.
    pub fn uses_tensor_cores(&self) -> bool {
        self.tensor_products() || (self.tensor_step_products() && !self.split_step_products())
    }

    /// Whether the recurrent steps' products run on the tensor cores (or their emulation),
    /// rounded or split ([`Tuning::split_steps`]).
    pub fn tensor_step_products(&self) -> bool {
        self.step_products().on_tensor_cores()
    }

    /// Whether the recurrent steps' products run on the tensor cores split into f16 halves
    /// (`--step-kernel tensor-split`: f32 accuracy).
    pub fn split_step_products(&self) -> bool {
        self.tensor_step_products() && self.tuning.split_steps
    }

    /// Whether the recurrent steps of a layer call over `batch` sequences and `steps` steps
    /// with `weights` recurrent weights (all directions) read W_hh from an f16 copy made for
    /// the call (`weights_f16`): where they are the rounded tensor-core products (not split),
    /// the adapter has the ninth storage buffer the copy binds, and the tuning asks for it
    /// or, by default, the copy pays ([`Tuning::half_step_weights`]).
    pub fn half_step_weights(&self, batch: usize, weights: usize, steps: usize) -> bool {
        self.step_products_for(batch).on_tensor_cores()
            && !self.tuning.split_steps
            && self.gpu.spare_binding()
            && self
                .tuning
                .half_step_weights
                .unwrap_or_else(|| step_tiles::half_weights_pay(weights, batch, steps))
    }

    /// How layer caches are stored.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// The runtime (device, queue, pipeline cache).
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// Bytes this backend holds in GPU buffers (parameters, activations, caches, scratch).
    pub fn bytes_held(&self) -> u64 {
        self.gpu.bytes_held()
    }

    /// Submits recorded work and waits for it (for timing).
    pub fn sync(&self) {
        self.gpu.flush();
        self.gpu.wait();
    }

    /// The lengths of `seq` as a u32 buffer (made once per distinct batch shape).
    pub(crate) fn lengths(&self, seq: &SeqShape) -> Rc<GpuBuffer> {
        let mut cache = self.lengths.borrow_mut();
        if let Some(b) = cache.get(&seq.lengths) {
            return b.clone();
        }
        let lens: Vec<u32> = seq.lengths.iter().map(|&l| l as u32).collect();
        let b = Rc::new(self.gpu.buffer_from(&lens));
        if cache.len() > 256 {
            cache.clear();
        }
        cache.insert(seq.lengths.clone(), b.clone());
        b
    }
}

impl Backend for WgpuBackend {
    type Scalar = f32;
    type Buffer = GpuBuffer;
    type Ids = GpuIds;
    type Tokens = GpuTokens;
    type Readback = Readback;

    fn describe(&self) -> String {
        let info = self.gpu.info();
        let mut s = format!("{} ({:?}, {:?})", info.name, info.backend, info.device_type);
        if self.tuned_from.is_some() {
            s.push_str(&format!(
                "; kernels {} (starting from the autotune table)",
                self.tuning.label()
            ));
        }
        if self.precision == Precision::F16 {
            s.push_str("; f16 layer caches");
        }
        // What runs on the tensor cores, operands rounded to f16 or split into halves (the
        // large products' tiles, where measured, as the run measures them).
        let measured = self.gpu.measures_products().is_some();
        if measured {
            s.push_str("; large products' tiles measured per shape");
        }
        if slices_measure::measures(self) {
            s.push_str("; step tiles and K slices measured per step shape");
        }
        if pipeline_measure::measures(self) {
            s.push_str("; layer pipeline measured per stack shape");
        }
        let split_steps = self.split_step_products();
        let steps = self.tensor_step_products() && !split_steps;
        for (products, steps, how) in [
            (self.tensor_products() && !measured, steps, ""),
            (
                self.split_products(),
                split_steps,
                " in split f16 halves (f32 accuracy)",
            ),
        ] {
            let what = match (products, steps) {
                (true, true) => "matrix products and recurrent steps",
                (true, false) => "matrix products",
                (false, true) => "recurrent steps",
                (false, false) => continue,
            };
            s.push_str(&format!("; tensor-core {what}{how}"));
            if self.gpu.tensor_emulated() {
                s.push_str(" (emulated)");
            }
        }
        s
    }

    fn upload(&self, data: &[f32]) -> GpuBuffer {
        self.gpu.buffer_from(data)
    }
    fn upload_ids(&self, ids: &[u32]) -> GpuIds {
        GpuIds {
            buf: self.gpu.buffer_from(ids),
            host: ids.to_vec(),
        }
    }
    fn upload_tokens(&self, tokens: TokenBags) -> GpuTokens {
        GpuTokens {
            offsets: self.gpu.buffer_from(&tokens.offsets),
            ids: self.gpu.buffer_from(&tokens.ids),
            host: tokens,
        }
    }
    fn zeros(&self, len: usize) -> GpuBuffer {
        self.gpu.buffer(len)
    }
    /// Uninitialised: not cleared first.
    fn for_output(&self, len: usize) -> GpuBuffer {
        self.gpu.buffer_uninit(len)
    }
    fn write(&self, buf: &mut GpuBuffer, data: &[f32]) {
        assert_eq!(buf.len(), data.len(), "write: length mismatch");
        if buf.is_f16() {
            let half: Vec<half::f16> = data.iter().map(|&v| half::f16::from_f32(v)).collect();
            self.gpu.write(buf, &half);
        } else {
            self.gpu.write(buf, data);
        }
    }
    fn fill_zero(&self, buf: &mut GpuBuffer) {
        self.gpu.clear(buf);
    }
    fn zero_range(&self, buf: &mut GpuBuffer, range: std::ops::Range<usize>) {
        assert!(
            range.end <= buf.len(),
            "zero_range: {range:?} past {}",
            buf.len()
        );
        self.gpu.clear_range(buf, range.start, range.len());
    }
    fn download(&self, buf: &GpuBuffer) -> Vec<f32> {
        if buf.is_f16() {
            let half: Vec<half::f16> = self.gpu.read(buf, buf.len());
            return half.into_iter().map(f32::from).collect();
        }
        self.gpu.read(buf, buf.len())
    }
    fn len(&self, buf: &GpuBuffer) -> usize {
        buf.len()
    }
    fn read_later(&self, firsts: &[&GpuBuffer]) -> Readback {
        self.gpu.read_later(firsts)
    }
    fn try_read(&self, r: &Readback) -> Option<Vec<f32>> {
        self.gpu.try_read(r)
    }
    fn read_wait(&self, r: &Readback) -> Vec<f32> {
        self.gpu.read_wait(r)
    }

    fn encode_forward(
        &self,
        plan: &EncodePlan,
        params: &GpuBuffer,
        tokens: &GpuTokens,
        seq: &SeqShape,
        x: &mut GpuBuffer,
    ) {
        encode::encode_forward(self, plan, params, tokens, seq, x);
    }
    fn encode_backward(
        &self,
        plan: &EncodePlan,
        tokens: &GpuTokens,
        seq: &SeqShape,
        dx: &GpuBuffer,
        grads: &mut GpuBuffer,
    ) {
        encode::encode_backward(self, plan, tokens, seq, dx, grads);
    }

    fn layer_cache_len(&self, plan: &LayerPlan, seq: &SeqShape) -> usize {
        layer::cache_len(plan, seq)
    }
    fn layer_cache(&self, plan: &LayerPlan, seq: &SeqShape) -> GpuBuffer {
        let len = layer::cache_len(plan, seq);
        match self.precision {
            Precision::F32 => self.gpu.buffer(len),
            Precision::F16 => self.gpu.buffer_f16(len),
        }
    }
    fn layer_caches(&self, plans: &[LayerPlan], seq: &SeqShape) -> Vec<GpuBuffer> {
        let lens: Vec<usize> = plans.iter().map(|p| layer::cache_len(p, seq)).collect();
        stack::layer_buffers(self, plans, &lens, self.precision == Precision::F16)
    }
    fn layer_outputs(&self, plans: &[LayerPlan], seq: &SeqShape) -> Vec<GpuBuffer> {
        let rows = seq.time * seq.batch();
        let lens: Vec<usize> = plans.iter().map(|p| rows * p.output_width()).collect();
        stack::layer_buffers(self, plans, &lens, false)
    }
    fn stack_forward(&self, job: StackForward<'_, Self>) {
        stack::stack_forward(self, job);
    }
    fn stack_backward(&self, job: StackBackward<'_, Self>) -> Option<GpuBuffer> {
        stack::stack_backward(self, job)
    }
    fn max_buffer_bytes(&self) -> Option<u64> {
        let l = self.gpu.limits();
        Some(l.max_storage_buffer_binding_size.min(l.max_buffer_size))
    }
    fn max_sequences(&self) -> Option<usize> {
        let per_dimension = self.gpu.limits().max_compute_workgroups_per_dimension;
        Some(per_dimension.min(runtime::MAX_GROUPS) as usize)
    }
    fn layer_largest_bytes(&self, plan: &LayerPlan, seq: &SeqShape) -> u64 {
        let cache_elem = match self.precision {
            Precision::F32 => 4,
            Precision::F16 => 2,
        };
        let f16 = self.precision == Precision::F16;
        let (cache, gates) = layer::largest_lens(plan, seq, f16);
        (cache as u64 * cache_elem).max(gates as u64 * 4)
    }
    fn layer_forward(
        &self,
        plan: &LayerPlan,
        params: &GpuBuffer,
        x: &GpuBuffer,
        seq: &SeqShape,
        init: Option<StateBufs<'_, GpuBuffer>>,
        y: &mut GpuBuffer,
        last: StateBufsMut<'_, GpuBuffer>,
        cache: &mut GpuBuffer,
    ) {
        layer::layer_forward(self, plan, params, x, seq, init, y, last, cache);
    }
    fn layer_backward(
        &self,
        plan: &LayerPlan,
        params: &GpuBuffer,
        x: &GpuBuffer,
        y: &GpuBuffer,
        seq: &SeqShape,
        cache: &GpuBuffer,
        dy: &GpuBuffer,
        dlast: Option<StateBufs<'_, GpuBuffer>>,
        grads: &mut GpuBuffer,
        dx: Option<&mut GpuBuffer>,
        dinit: Option<StateBufsMut<'_, GpuBuffer>>,
        zero_init: bool,
    ) {
        layer::layer_backward(
            self, plan, params, x, y, seq, cache, dy, dlast, grads, dx, dinit, zero_init,
        );
    }

    fn dropout(&self, x: &mut GpuBuffer, p: f32, seed: u64) {
        dropout::dropout(self, x, p, seed);
    }

    fn head_forward(
        &self,
        plan: &HeadPlan,
        params: &GpuBuffer,
        x: &GpuBuffer,
        rows: usize,
        seq: Option<&SeqShape>,
        logits: &mut GpuBuffer,
    ) {
        head::head_forward(self, plan, params, x, rows, seq, logits);
    }
    fn head_backward(
        &self,
        plan: &HeadPlan,
        params: &GpuBuffer,
        x: &GpuBuffer,
        rows: usize,
        seq: Option<&SeqShape>,
        dlogits: &GpuBuffer,
        grads: &mut GpuBuffer,
        dx: &mut GpuBuffer,
    ) {
        head::head_backward(self, plan, params, x, rows, seq, dlogits, grads, dx);
    }

    fn pool_forward(
        &self,
        mode: Pooling,
        x: &GpuBuffer,
        seq: &SeqShape,
        dirs: usize,
        width: usize,
        pooled: &mut GpuBuffer,
    ) {
        head::pool_forward(self, mode, x, seq, dirs, width, pooled);
    }
    fn pool_backward(
        &self,
        mode: Pooling,
        dpooled: &GpuBuffer,
        seq: &SeqShape,
        dirs: usize,
        width: usize,
        dx: &mut GpuBuffer,
    ) {
        head::pool_backward(self, mode, dpooled, seq, dirs, width, dx);
    }

    fn loss(
        &self,
        plan: &LossPlan,
        logits: &GpuBuffer,
        targets: TargetBufs<'_, Self>,
        seq: &SeqShape,
        loss: &mut GpuBuffer,
        dlogits: &mut GpuBuffer,
    ) {
        loss::loss(self, plan, logits, targets, seq, loss, dlogits);
    }

    fn clip_grad_norm(&self, grads: &mut GpuBuffer, max_norm: Option<f32>, norm: &mut GpuBuffer) {
        clip::clip_grad_norm(self, grads, max_norm, norm);
    }
    fn clip_grad_value(&self, grads: &mut GpuBuffer, limit: f32) {
        clip::clip_grad_value(self, grads, limit);
    }

    fn optimizer_step(
        &self,
        step: &OptimizerStep,
        params: &mut GpuBuffer,
        grads: &GpuBuffer,
        state: &mut [GpuBuffer],
    ) {
        optim::optimizer_step(self, step, params, grads, state, None);
    }
    fn optimizer_step_if_finite(
        &self,
        step: &OptimizerStep,
        params: &mut GpuBuffer,
        grads: &GpuBuffer,
        state: &mut [GpuBuffer],
        guard: &GpuBuffer,
    ) {
        optim::optimizer_step(self, step, params, grads, state, Some(guard));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_matrix_vector_steps_take_few_sequences_unless_the_tiles_are_asked_for() {
        let d = Tuning::default();
        assert_eq!(d.gemv_steps, None);
        for batch in 1..=GEMV_AUTO_BATCH {
            assert!(d.gemv_at(batch), "batch {batch}");
        }
        assert!(!d.gemv_at(GEMV_AUTO_BATCH + 1));
        assert!(!d.gemv_at(64));
        // A choice only the tiles have keeps the tiles at every batch.
        for t in [
            Tuning {
                step_tile_units: Some(16),
                ..d
            },
            Tuning {
                step_k_split: Some(4),
                ..d
            },
            Tuning {
                step_chunk_rows: 32,
                ..d
            },
            Tuning {
                gemv_steps: Some(false),
                ..d
            },
        ] {
            assert!(t.is_valid(), "{t:?}");
            assert!(!t.gemv_at(1), "{t:?}");
        }
        let always = Tuning {
            gemv_steps: Some(true),
            ..d
        };
        assert!(always.gemv_at(1) && always.gemv_at(1000));
        // One K slice asked for is no choice of the tiles' (the measure of entry 48 keeps
        // the matrix-vector products where they ran before it).
        let one_slice = Tuning {
            step_k_split: Some(1),
            ..d
        };
        assert!(one_slice.gemv_at(1) && !one_slice.gemv_at(GEMV_AUTO_BATCH + 1));
        // The labels tell the automatic choice from the fixed ones.
        let label = |t: Tuning| t.label().split(' ').next().map(str::to_string);
        assert_eq!(label(d).as_deref(), Some("steps=auto"));
        assert_eq!(label(always).as_deref(), Some("steps=gemv"));
        let tiles = Tuning {
            gemv_steps: Some(false),
            ..d
        };
        assert_eq!(label(tiles).as_deref(), Some("steps=tiled"));
        let f32_steps = Tuning {
            tensor_steps: Some(false),
            ..d
        };
        assert_eq!(label(f32_steps).as_deref(), Some("steps=f32"));
        let f32_tiles = Tuning {
            tensor_steps: Some(false),
            ..tiles
        };
        assert_eq!(label(f32_tiles).as_deref(), Some("steps=tiled-f32"));
    }
}
