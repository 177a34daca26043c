//! A whole recurrent layer on the GPU: the input projections of all steps as one GEMM, one
//! fused dispatch per time step (the recurrent product with the gate and state update, both
//! directions together), and after backpropagation through time the weight gradients as
//! GEMMs summed over all steps. The cell kinds provide the step kernels (`GpuCell`); this
//! driver owns the cache layout (`shaders/layer.wgsl` documents it) and the schedule.

use std::cell::{Cell, OnceCell};
use std::ops::Range;
use std::sync::OnceLock;

use super::codegen::{CoopOps, expand_with, storage_prelude};
use super::elman_cell::ElmanCell;
use super::gemm::{ColSum, Held, Mat, Out, Product, Products};
use super::gru_cell::GruCell;
use super::jordan_cell::JordanCell;
use super::lstm_cell::LstmCell;
use super::runtime::{Kernel, Shader};
use super::slices_measure::{self, StepTile};
use super::stack::InStack;
use super::step_tiles::{
    PlainChunks, StepGrid, TILE_QUADS, chunk_depth, coop_forward_quads, forward_tile,
};
use super::weights_f16::weights_f16;
use super::{GpuBuffer, WgpuBackend};
use crate::backend::{SeqShape, StateBufs, StateBufsMut};
use crate::config::{Activation, CellConfig};
use crate::params::LayerPlan;

/// How the tiled step kernels compute their recurrent products (the file put between
/// `shaders/layer.wgsl` and a cell's own).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepProducts {
    /// `shaders/step_tiles.wgsl`: f32 products and sums through workgroup memory.
    F32,
    /// `shaders/step_coop.wgsl` on the matrix units: operands rounded to f16, f32 sums.
    Tensor,
    /// `shaders/step_coop.wgsl` with its matrix operations emulated in plain WGSL
    /// (`shaders/coop_emulated.wgsl`), for adapters without matrix units (tests).
    TensorEmulated,
    /// `shaders/step_gemv.wgsl`: f32 matrix-vector products for few sequences, 4 per
    /// workgroup, each weight loaded by one invocation into a register.
    Gemv,
}

impl StepProducts {
    /// Every build, in the order of [`CellShader`]'s slots.
    pub const ALL: [StepProducts; 4] = [Self::F32, Self::Tensor, Self::TensorEmulated, Self::Gemv];

    fn index(self) -> usize {
        self as usize
    }

    /// The shader name's suffix.
    fn suffix(self) -> &'static str {
        match self {
            Self::F32 => "",
            Self::Tensor => "_coop",
            Self::TensorEmulated => "_coop_emulated",
            Self::Gemv => "_gemv",
        }
    }

    /// Whether the products round their operands to f16 on the matrix units (or their
    /// emulation).
    pub fn on_tensor_cores(self) -> bool {
        matches!(self, Self::Tensor | Self::TensorEmulated)
    }
}

/// A cell's kernel file: `shaders/f16_range.wgsl` and `shaders/coop_scale.wgsl` (for the
/// tensor-core products), `shaders/layer.wgsl`, the step products (`StepProducts`; the f32
/// tiles with `shaders/params_vec4.wgsl`, the tensor-core tiles with
/// `shaders/weights_f16_read.wgsl`, or for adapters without a storage buffer to spare their
/// twins without a binding), then the cell's own file; its cache storage type `CT` is f32,
/// or f16 under `Precision::F16`. Each build is expanded (`codegen`) and made on first use.
pub(super) struct CellShader {
    stem: &'static str,
    cell: &'static str,
    /// The cell file has tiled step kernels, ended by `shaders/tile_update.wgsl`.
    tiled: bool,
    /// By [joined][f16][products][narrow].
    built: [[[[OnceLock<Shader>; 2]; 4]; 2]; 2],
}

impl CellShader {
    /// The kernels of the cell file `stem`.wgsl, whose source is `cell`; `tiled` where it
    /// has tiled step kernels (and so provides `shaders/tile_update.wgsl`'s interface).
    pub const fn new(stem: &'static str, cell: &'static str, tiled: bool) -> Self {
        CellShader {
            stem,
            cell,
            tiled,
            built: [const { [const { [const { [const { OnceLock::new() }; 2] }; 4] }; 2] }; 2],
        }
    }

    /// The build for an f16 (`f16`) or f32 cache whose tiled steps compute their products
    /// as `products` says; the f32 tiles' with the parameters' vec4 binding and the
    /// tensor-core tiles' with the f16 copy of W_hh where `spare` (`Gpu::spare_binding`),
    /// else without that ninth binding (`_8buffers`).
    pub fn get(&self, f16: bool, products: StepProducts, spare: bool) -> &Shader {
        self.build(false, f16, products, spare)
    }

    /// [`CellShader::get`]'s build for a joined step: the tiled steps of up to
    /// [`JOINED_LAYERS`] layers in one dispatch, one per `workgroup_id.z`, each with its own
    /// `LP` (`shaders/layer.wgsl`, `take_layer`; the layer pipeline, `stack.rs`).
    pub fn joined(&self, f16: bool, products: StepProducts, spare: bool) -> &Shader {
        self.build(true, f16, products, spare)
    }

    fn build(&self, joined: bool, f16: bool, products: StepProducts, spare: bool) -> &Shader {
        let narrow = products != StepProducts::Gemv && !spare;
        let slot = &self.built[joined as usize][f16 as usize][products.index()];
        slot[narrow as usize].get_or_init(|| {
            let name = format!(
                "{}{}{}{}{}",
                self.stem,
                products.suffix(),
                if f16 { "_f16" } else { "" },
                if narrow { "_8buffers" } else { "" },
                if joined { "_joined" } else { "" }
            );
            let mut source = cell_source(self.cell, self.tiled, f16, products, !narrow);
            if joined {
                source = joined_source(&source);
            }
            Shader {
                name: Box::leak(name.into_boxed_str()),
                source: Box::leak(source.into_boxed_str()),
            }
        })
    }
}

const LAYER_WGSL: &str = include_str!("../../../shaders/layer.wgsl");
const STEP_TILES_WGSL: &str = include_str!("../../../shaders/step_tiles.wgsl");
const STEP_COOP_WGSL: &str = include_str!("../../../shaders/step_coop.wgsl");
const STEP_GEMV_WGSL: &str = include_str!("../../../shaders/step_gemv.wgsl");
const TILE_UPDATE_WGSL: &str = include_str!("../../../shaders/tile_update.wgsl");
const F16_RANGE_WGSL: &str = include_str!("../../../shaders/f16_range.wgsl");
const COOP_SCALE_WGSL: &str = include_str!("../../../shaders/coop_scale.wgsl");
const WEIGHTS_F16_READ_WGSL: &str = include_str!("../../../shaders/weights_f16_read.wgsl");
const WEIGHTS_F16_ABSENT_WGSL: &str = include_str!("../../../shaders/weights_f16_absent.wgsl");
const COOP_EMULATED_WGSL: &str = include_str!("../../../shaders/coop_emulated.wgsl");
const PARAMS_VEC4_WGSL: &str = include_str!("../../../shaders/params_vec4.wgsl");
const PARAMS_VEC4_SCALAR_WGSL: &str = include_str!("../../../shaders/params_vec4_scalar.wgsl");

/// The expanded source of a cell's kernels (see [`CellShader`]; with the tiled steps' cell
/// updates where `tiled`); the f32 tiles' with the parameters' vec4 binding and the
/// tensor-core tiles' with the f16 copy of W_hh where `spare`.
fn cell_source(cell: &str, tiled: bool, f16: bool, products: StepProducts, spare: bool) -> String {
    let (vec4, w16) = if spare {
        (PARAMS_VEC4_WGSL, WEIGHTS_F16_READ_WGSL)
    } else {
        (PARAMS_VEC4_SCALAR_WGSL, WEIGHTS_F16_ABSENT_WGSL)
    };
    // The products, then (for cells with tiled steps) their cell updates, then the cell.
    let coop = [
        F16_RANGE_WGSL,
        COOP_SCALE_WGSL,
        LAYER_WGSL,
        w16,
        STEP_COOP_WGSL,
    ];
    let (ops, mut parts) = match products {
        StepProducts::F32 => (CoopOps::Hardware, vec![LAYER_WGSL, vec4, STEP_TILES_WGSL]),
        StepProducts::Gemv => (CoopOps::Hardware, vec![LAYER_WGSL, STEP_GEMV_WGSL]),
        StepProducts::Tensor => (CoopOps::Hardware, coop.to_vec()),
        StepProducts::TensorEmulated => (
            CoopOps::Emulated,
            [&coop[..], &[COOP_EMULATED_WGSL]].concat(),
        ),
    };
    if tiled {
        parts.push(TILE_UPDATE_WGSL);
    }
    parts.push(cell);
    format!(
        "{}{}",
        storage_prelude("CT", f16),
        expand_with(&parts.concat(), ops)
    )
}

/// The most layers one joined step dispatch takes (`LP`s in its uniform).
pub(super) const JOINED_LAYERS: usize = 4;

/// The fields of `shaders/layer.wgsl`'s `LP` that are the same for every layer of a joined
/// step (words 1 to 12, `stack::SHARED_WORDS`): the sizes and the flags.
pub(super) const SHARED_FIELDS: [&str; 12] = [
    "batch", "time", "dirs", "hidden", "rw", "cw", "gh", "out_w", "out", "kw", "sw", "flags",
];

/// `source` with its step parameters `p` taken per layer (see `shaders/layer.wgsl`): the
/// words all its layers share read from the first layer's `LP`, a uniform value to the
/// compiler's analysis (a private copy is not, and barriers and matrix operations must be
/// in uniform control flow), the others from the workgroup's layer's, copied into `p`.
fn joined_source(source: &str) -> String {
    let one = "@group(0) @binding(0) var<uniform> p: LP;\n\
               fn take_layer(wg: vec3<u32>) -> vec3<u32> { return wg; }\n";
    let per_layer = format!(
        "@group(0) @binding(0) var<uniform> lps: array<LP, {JOINED_LAYERS}>;\n\
         var<private> p: LP;\n\
         fn take_layer(wg: vec3<u32>) -> vec3<u32> {{ p = lps[wg.z]; return vec3<u32>(wg.xy, 0u); }}\n"
    );
    assert_eq!(source.matches(one).count(), 1, "layer.wgsl declares p once");
    let source = source.replace(one, &per_layer);
    // Every `p.<shared field>` (not part of a longer name on either side) becomes
    // `lps[0].<field>`.
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = String::with_capacity(source.len());
    let mut rest = source.as_str();
    while let Some(at) = rest.find("p.") {
        let (before, after) = rest.split_at(at);
        out.push_str(before);
        let field_len = after[2..]
            .find(|c: char| !ident(c))
            .unwrap_or(after.len() - 2);
        let field = &after[2..2 + field_len];
        let alone = !before.ends_with(ident);
        match alone && SHARED_FIELDS.contains(&field) {
            true => out.push_str("lps[0]."),
            false => out.push_str("p."),
        }
        rest = &after[2..];
    }
    out.push_str(rest);
    out
}

/// A cell's kernels as the device compiles them (`Shader::module_source`), for tests that
/// validate builds an adapter cannot (the tensor-core products, without matrix units).
pub fn cell_module_source(cell: CellKind, f16: bool, products: StepProducts) -> String {
    cell_shader(cell).get(f16, products, true).module_source()
}

/// The kernels of cell kind `cell`.
pub(super) fn cell_shader(cell: CellKind) -> &'static CellShader {
    match cell {
        CellKind::Elman => ElmanCell.shader(),
        CellKind::Lstm => LstmCell.shader(),
        CellKind::Gru => GruCell.shader(),
        CellKind::Jordan => JordanCell.shader(),
    }
}

/// The cell kinds with step kernels of their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CellKind {
    /// `shaders/elman_cell.wgsl`.
    Elman,
    /// `shaders/lstm_cell.wgsl`.
    Lstm,
    /// `shaders/gru_cell.wgsl`.
    Gru,
    /// `shaders/jordan_cell.wgsl`.
    Jordan,
}

impl CellKind {
    /// Every cell kind, for whatever must cover all of their kernels.
    pub const ALL: [CellKind; 4] = [
        CellKind::Elman,
        CellKind::Lstm,
        CellKind::Gru,
        CellKind::Jordan,
    ];
}

/// Sequences per workgroup of the matrix-vector step products (`shaders/step_gemv.wgsl`
/// stages one vec4 of them per k).
pub(super) const GEMV_SEQUENCES: usize = 4;

/// The activation code the kernels use (`shaders/common.wgsl`).
pub(super) fn act_code(a: Activation) -> u32 {
    match a {
        Activation::Tanh => 0,
        Activation::Relu => 1,
        Activation::Linear => 2,
        Activation::Sigmoid => 3,
    }
}

/// Element offsets of the sections of one layer call (see `shaders/layer.wgsl`): xp, dxp and
/// dgh in the call's gates buffer (`gates_len`) or in the cache's record (`gates_in_rec`),
/// the rest in the cache (`total`).
#[derive(Clone, Debug)]
pub(super) struct Layout {
    pub time: usize,
    pub batch: usize,
    pub dirs: usize,
    /// G*H.
    pub gh: usize,
    /// Recurrent state width R.
    pub rw: usize,
    /// Cell state width C.
    pub cw: usize,
    /// Record width K.
    pub kw: usize,
    /// Backward scratch width S.
    pub sw: usize,
    /// xp, dxp and dgh are the first G*H columns of the record rows (`GATES_IN_REC` of
    /// `shaders/layer.wgsl`): an f32 cache whose cell records one value per gate row.
    pub gates_in_rec: bool,
    /// Row stride of xp, dxp and dgh: G*H in the gates buffer, K in the record.
    pub gs: usize,
    /// Where dxp's columns are in its rows: (first gate column, columns, offset in the
    /// row), one block unless the record holds dxp in pieces.
    pub dxp_blocks: Vec<(usize, usize, usize)>,
    pub xp: usize,
    /// Initial recurrent state of each sequence, [D][B][R].
    pub h0: usize,
    /// Initial cell state of each sequence, [D][B][C].
    pub c0: usize,
    pub hs: usize,
    /// The states live in the layer output y instead of the hs section (the cell's state is
    /// its output and nothing changes the output afterwards: no dropout on it).
    pub hs_in_y: bool,
    pub cs: usize,
    pub rec: usize,
    pub dxp: usize,
    pub dgh: usize,
    /// dgh equals dxp (every cell but the PyTorch-variant GRU): one section where both are
    /// in the gates buffer, and the same bias gradients.
    pub dgh_is_dxp: bool,
    /// Rows per direction of the gates buffer's row sections (xp, dxp and dgh where they are
    /// there, and the scratch): T * B, or the layer pipeline's window of a chunk
    /// ([`Layout::with_gate_rows`]).
    pub gate_rows: usize,
    /// dgh of each sequence's first step, [D][B][G*H] (gates buffer; read for bidirectional
    /// layers, `Call::first_dgh`).
    pub dgh0: usize,
    /// The cell's backward scratch, [D][T][B][S] (gates buffer).
    pub scr: usize,
    /// Running gradient of the cell state, [D][B][C] (gates buffer).
    pub dc: usize,
    /// Scalars of the gates buffer (the forward uses only xp, but a buffer of one size
    /// is reused from the forward to the backward by the allocator's pool).
    pub gates_len: usize,
    pub total: usize,
}

impl Layout {
    pub fn of(plan: &LayerPlan, seq: &SeqShape, f16_cache: bool) -> Layout {
        let cell = cell_of(plan);
        let (time, batch, dirs) = (seq.time, seq.batch(), plan.directions());
        let rows = dirs * time * batch;
        let gh = plan.gates * plan.hidden;
        let (rw, cw) = (plan.recurrent_input, plan.cell_state());
        let (kw, sw) = (cell.record_width(plan), cell.scratch_width(plan));
        let mut at = 0;
        // Sections start on multiples of 4 elements, so an f16 cache's sections are whole
        // words (clears) and whole vec4s (matrix-product operands).
        let mut take = |n: usize| {
            let o = at;
            at += n.next_multiple_of(4);
            o
        };
        let h0 = take(dirs * batch * rw);
        let c0 = take(dirs * batch * cw);
        let hs_in_y = cell.state_is_output() && plan.dropout == 0.0;
        let hs = take(if hs_in_y { 0 } else { rows * rw });
        let cs = take(rows * cw);
        let rec = take(rows * kw);
        // xp for the forward; dxp over it for the backward, and dgh too where the cell's
        // two gradients are equal: in the record where it starts with the gates (f16 caches
        // keep them in f32, where small gradients stay exact), else at the start of the
        // gates buffer.
        let gates_in_rec = !f16_cache && cell.gates_in_record(plan);
        let dxp_blocks = if gates_in_rec {
            cell.dxp_blocks_in_record(plan)
        } else {
            vec![(0, gh, 0)]
        };
        let mut lay = Layout {
            time,
            batch,
            dirs,
            gh,
            rw,
            cw,
            kw,
            sw,
            gates_in_rec,
            gs: if gates_in_rec { kw } else { gh },
            dxp_blocks,
            xp: 0,
            h0,
            c0,
            hs,
            hs_in_y,
            cs,
            rec,
            dxp: 0,
            dgh: 0,
            dgh_is_dxp: cell.dgh_is_dxp(plan),
            gate_rows: 0,
            dgh0: 0,
            scr: 0,
            dc: 0,
            gates_len: 0,
            total: at,
        };
        lay.place_gates(time * batch);
        lay
    }

    /// This layout with a gates buffer of `rows` rows per direction in its row sections:
    /// the window of a chunk of steps the layer pipeline's backward holds (`stack.rs`), whose
    /// first row the call says (`Call::gates_first_row`). The cache's sections stay.
    pub fn with_gate_rows(mut self, rows: usize) -> Layout {
        self.place_gates(rows);
        self
    }

    /// Places the gates buffer's sections for `rows` rows per direction: xp = dxp, and dgh
    /// where it differs (in the record instead where it holds them), dgh0, the scratch and dc.
    fn place_gates(&mut self, rows: usize) {
        let all = self.dirs * rows;
        let each = self.dirs * self.batch;
        // (xp = dxp, dgh, where the rest of the gates buffer starts)
        let (xp, dgh, dgh0) = if self.gates_in_rec {
            (self.rec, self.rec, 0)
        } else if self.dgh_is_dxp {
            (0, 0, all * self.gh)
        } else {
            (0, all * self.gh, 2 * all * self.gh)
        };
        // The backward's scratch lives with its gate gradients, not in the cache, so the
        // cache holds only what the forward records.
        let scr = dgh0 + each * self.gh;
        let dc = scr + all * self.sw;
        (self.xp, self.dxp, self.dgh, self.dgh0) = (xp, xp, dgh, dgh0);
        (self.scr, self.dc, self.gate_rows) = (scr, dc, rows);
        self.gates_len = dc + each * self.cw;
    }

    /// Rows per direction (T * B).
    pub fn rows(&self) -> usize {
        self.time * self.batch
    }
}

/// What a tiled step pipeline binds at 11, besides the bindings every step has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ninth {
    None,
    /// The parameters again, as vec4s (the f32 tiles, `shaders/params_vec4.wgsl`).
    Params,
    /// The call's f16 copy of W_hh (the tensor-core tiles with W16,
    /// `shaders/weights_f16_read.wgsl`).
    HalfWeights,
    /// The dummy buffer: the tensor-core tiles' build declares the copy's binding, but
    /// these steps read the parameters (W16 off).
    Unread,
}

/// What a cell's kernels see of one layer call.
pub(super) struct Call<'a> {
    pub be: &'a WgpuBackend,
    pub plan: &'a LayerPlan,
    pub lay: Layout,
    pub params: &'a GpuBuffer,
    pub cache: &'a GpuBuffer,
    /// xp / dxp / dgh (binding 10), made for this call; where the record holds them
    /// (`Layout::gates_in_rec`) only dgh0, the scratch and dc.
    pub gates: &'a GpuBuffer,
    /// The layer's output (binding 3), which may hold the states (`Layout::hs_in_y`).
    pub y: &'a GpuBuffer,
    pub lengths: &'a GpuBuffer,
    /// Whether st_h/st_c hold an initial state (forward) or final-state gradient (backward).
    pub has_state: bool,
    /// Whether the forward started from zero states: the backward then records no product
    /// of h0 (and no gather of the first steps' dgh it would take) for dW_hh.
    pub zero_init: bool,
    /// Steps of the longest sequence.
    pub steps: usize,
    /// The f16 copy of W_hh the rounded tensor-core steps read (binding 11,
    /// `weights_f16`), made by the first step kernel of this call that reads it
    /// ([`Call::half_weights`]).
    pub w16: OnceCell<GpuBuffer>,
    /// Whether the dispatch recorded last read W_hh from that copy (for its cost).
    pub read_w16: Cell<bool>,
    /// Where the call's matrix products and column sums go: recorded at once, or held to
    /// run side by side (both directions' of a layer, or in the layer pipeline several
    /// layers').
    pub products: &'a Products<'a>,
    /// The call's place in the layer pipeline (`stack.rs`; none by default).
    pub stack: InStack<'a>,
    /// The tiles' width and K slices the forward's and the backward's tiled steps take
    /// where the tuning leaves the slices open (`None`: by the grid's rule), looked up or
    /// measured the first time a step asks ([`Call::tile_ask`]).
    pub k_slices: KSlices,
}

/// A call's tiles for its forward and its backward steps ([`Call::tile_ask`]).
pub(super) type KSlices = [OnceCell<Option<StepTile>>; 2];

/// The tiles' width and K slices asked of a call's tiled steps (`None`: as the tuning or
/// the grid's rule gives them).
pub(super) type TileAsk = (Option<usize>, Option<usize>);

/// Words of `shaders/layer.wgsl`'s `LP` ([`Call::words`]).
pub(super) const LP_WORDS: usize = 40;

impl<'a> Call<'a> {
    /// The uniform words of `shaders/layer.wgsl`'s `LP` for step `s` (the cell's options
    /// go to the pipelines, `Call::run`).
    pub fn words(&self, s: usize) -> Vec<u32> {
        let (l, plan) = (&self.lay, self.plan);
        let d1 = plan.dirs.get(1).unwrap_or(&plan.dirs[0]);
        let d0 = &plan.dirs[0];
        let flags = self.has_state as u32
            | (plan.recurrent as u32) << 1
            | (self.lay.gates_in_rec as u32) << 3;
        let (ex00, ex01, ex10, ex11) = cell_of(plan).extra_offsets(plan);
        let w = |v: usize| v as u32;
        // The gates buffer's row sections in a window of rows: their offsets as if the
        // window went back to row 0 (u32 sums wrap, so the kernels' row offsets land in the
        // window).
        let first = self.gates_first_row();
        let gate = |section: usize| w(section).wrapping_sub(w(first * l.gs));
        let (xp, dxp, dgh) = (gate(l.xp), gate(l.dxp), gate(l.dgh));
        let scr = w(l.scr).wrapping_sub(w(self.window_first_row() * l.sw));
        vec![
            w(s),
            w(l.batch),
            w(l.time),
            w(l.dirs),
            w(plan.hidden),
            w(l.rw),
            w(l.cw),
            w(l.gh),
            w(plan.output_width()),
            w(plan.output),
            w(l.kw),
            w(l.sw),
            flags,
            xp,
            w(l.h0),
            w(l.c0),
            w(l.hs),
            w(l.cs),
            w(l.rec),
            dxp,
            dgh,
            scr,
            w(l.dc),
            w(l.dgh0),
            w(d0.w_hh),
            w(d1.w_hh),
            w(d0.b_hh),
            w(d1.b_hh),
            w(ex00),
            w(ex01),
            w(ex10),
            w(ex11),
            // y0, sh0, sc0, dy0, w16: where y, st_h, st_c, dy and W_hh's f16 copy start in
            // what the step binds (0 but in a joined step of several layers,
            // `stack::rebase`; dy0 as xp where dy is a window of rows, `InStack::dy_from`),
            // hs_y (the states live in y), and 2 words of padding.
            0,
            0,
            0,
            0u32.wrapping_sub(w(self.stack.dy_from.get() * plan.output_width())),
            0,
            self.lay.hs_in_y as u32,
            0,
            0,
        ]
    }

    /// Declares the dispatch just recorded as a `[B, k] x [k, rows]` product per direction,
    /// for the per-kernel profile (weights read once, inputs and outputs once per sequence).
    pub fn cost(&self, rows: usize, k: usize) {
        let (b, d) = (self.lay.batch as f64, self.lay.dirs as f64);
        let (rows, k) = (rows as f64, k as f64);
        let flops = 2.0 * b * d * rows * k;
        let weight = if self.read_w16.get() { 2.0 } else { 4.0 };
        let bytes = d * (weight * rows * k + 4.0 * b * (rows + k));
        match self.stack.joined {
            Some(j) if self.stack.went_joined.get() => j.cost(flops, bytes),
            _ => self.be.gpu.cost(flops, bytes),
        }
    }

    /// How the tiled step kernels compute this call's recurrent products (its batch decides
    /// between the f32 tiles and the matrix-vector products by default).
    pub fn products(&self) -> StepProducts {
        self.be.step_products_for(self.lay.batch)
    }

    /// Units and sequences per workgroup of the `forward` or backward tiled step kernels (the
    /// `TU` and `TB` overrides of `shaders/layer.wgsl`): 8 (or 4) units x
    /// [`GEMV_SEQUENCES`] for the matrix-vector products, else the tiles' width x 16
    /// ([`Call::tile_layout`]), the forward's as its sequence quads make it
    /// ([`forward_tile`]).
    fn tile_shape(&self, forward: bool) -> (usize, usize) {
        if self.products() == StepProducts::Gemv {
            return (self.gemv_shape(false).0, GEMV_SEQUENCES);
        }
        let (tu, c) = self.tile_layout(!forward);
        match forward {
            true => forward_tile(tu, c.sq),
            false => (tu, 16),
        }
    }

    /// The width and K slices asked of this call's `backward` or forward tiled steps: the
    /// slices as the tuning says (the width as it says), else the measured choice for
    /// their shape where the backend measures them (`slices_measure::chosen`, which may
    /// time them now), else the tuning's width and the grid's slices.
    pub fn tile_ask(&self, backward: bool) -> TileAsk {
        let t = self.be.tuning();
        if t.step_k_split.is_some() || self.products() == StepProducts::Gemv {
            return (t.step_tile_units, t.step_k_split);
        }
        let measured =
            self.k_slices[backward as usize].get_or_init(|| slices_measure::chosen(self, backward));
        match measured {
            Some(tile) => (Some(tile.units), Some(tile.slices)),
            None => (t.step_tile_units, None),
        }
    }

    /// The tiles' width and the f32 plain loops' chunking for this call's `backward` or
    /// forward steps as asked ([`Call::tile_ask`], [`Call::plain_tiles_at`]).
    fn plain_tiles(&self, backward: bool) -> (usize, PlainChunks) {
        self.plain_tiles_at(self.tile_ask(backward))
    }

    /// The tiles' width and the f32 plain loops' chunking for this call at `ask`
    /// ([`WgpuBackend::step_tiles_at`]): width and K slices as asked or by the grid with
    /// the f32 products; with the tensor-core products their width and slices
    /// ([`Call::coop_tiles_at`]), which the f32 tiles keep where the tensor build fails to
    /// compile (the slices where their arrays fit).
    pub fn plain_tiles_at(&self, ask: TileAsk) -> (usize, PlainChunks) {
        let t = self.be.tuning();
        match self.products() {
            StepProducts::F32 => self.be.step_tiles_at(self.step_grid(), ask.0, ask.1),
            StepProducts::Gemv => self
                .be
                .step_tiles(self.step_grid(), Some(t.step_k_split.unwrap_or(1))),
            StepProducts::Tensor | StepProducts::TensorEmulated => {
                let (tu, ks) = self.coop_tiles_at(ask);
                let sq = coop_forward_quads(self.step_grid(), tu, t.forward_sequences);
                (tu, self.be.step_chunks_at(tu, ks, self.gates(), sq))
            }
        }
    }

    /// The tensor-core steps' width and K slices for this call at `ask`
    /// ([`WgpuBackend::coop_step_tiles_at`]).
    pub fn coop_tiles_at(&self, ask: TileAsk) -> (usize, usize) {
        self.be.coop_step_tiles_at(self.step_grid(), ask.0, ask.1)
    }

    /// What the tile rule sees of this call's steps.
    fn step_grid(&self) -> StepGrid {
        StepGrid {
            hidden: self.plan.hidden,
            batch: self.lay.batch,
            dirs: self.lay.dirs,
            gates: self.gates(),
        }
    }

    /// The tiles' width and the chunking of the f32 tiles' plain loops for the `backward` or
    /// forward steps ([`Call::plain_tiles`]: K slices, weight rows per chunk and slice,
    /// forward k steps per chunk and sequence quads, each entry point's sizes of `wsm` and
    /// `h_tile`); for the blocked loops 32 units, one slice and the arrays' default sizes.
    fn tile_layout(&self, backward: bool) -> (usize, PlainChunks) {
        let t = self.be.tuning();
        if t.blocked_steps {
            let rows = chunk_depth(t.step_chunk_rows);
            return (32, PlainChunks::blocked(rows, self.gates()));
        }
        self.plain_tiles(backward)
    }

    /// Whether every direction's W_hh and its row length are multiples of 4 floats, so the
    /// f32 tiles' steps may load its rows a vec4 at a time (the `W4` override of
    /// `shaders/step_tiles.wgsl`).
    fn w_hh_vec4(&self) -> bool {
        self.lay.rw.is_multiple_of(4) && self.plan.dirs.iter().all(|d| d.w_hh.is_multiple_of(4))
    }

    /// The matrix-vector step products' workgroups (`shaders/step_gemv.wgsl`) for the
    /// forward or the `backward` entry: `(TU, KS)`, 8 units per workgroup (4 where the
    /// adapter allows fewer than 512 invocations), and the factor KS of its 4 TU KS
    /// invocations: 4 x gates in the forward (16 invocations per weight row of the tile),
    /// 16 in the backward (64 row lanes, so that a round of 16 rows per lane spans the
    /// staged chunk of 1024 rows).
    fn gemv_shape(&self, backward: bool) -> (usize, usize) {
        let tu = if self.be.most_invocations() >= 512 {
            8
        } else {
            4
        };
        (tu, if backward { 16 } else { 4 * self.gates() })
    }

    /// Gate rows per unit of the layer's cell (4 LSTM, 3 GRU, 1 Elman).
    fn gates(&self) -> usize {
        self.lay.gh / self.plan.hidden.max(1)
    }

    /// Workgroups of the `forward` or backward tiled step kernels (`*_tiled`,
    /// `shaders/layer.wgsl`): tiles of `tile_shape`'s units and sequences, of one direction
    /// each.
    pub fn tiles(&self, forward: bool) -> [u32; 3] {
        let (units, sequences) = self.tile_shape(forward);
        [
            self.plan.hidden.div_ceil(units) as u32,
            self.lay.batch.div_ceil(sequences) as u32,
            self.lay.dirs as u32,
        ]
    }

    /// Workgroups for invocations (x < `width`, b, d) of a 64-wide kernel.
    pub fn groups(&self, width: usize) -> [u32; 3] {
        [
            width.max(1).div_ceil(64) as u32,
            self.lay.batch as u32,
            self.lay.dirs as u32,
        ]
    }

    /// Records `entry` of `shader` over (width, B, D) with the layer-wide bindings (params
    /// at 1, cache at 2, lengths at 6) and the entry's own `io` bindings.
    fn run(
        &self,
        shader: &'static CellShader,
        entry: &'static str,
        io: &[(u32, &'a GpuBuffer)],
        words: &[u32],
        groups: [u32; 3],
    ) {
        let gpu = &self.be.gpu;
        let f16 = self.cache.is_f16();
        let opts = cell_of(self.plan).options(self.plan);
        let options = [
            ("OPT0", opts[0] as f64),
            ("OPT1", opts[1] as f64),
            ("OPT2", opts[2] as f64),
            ("OPT3", opts[3] as f64),
        ];
        // The f32 build with the parameters' vec4 binding (`shaders/params_vec4.wgsl`).
        let spare = gpu.spare_binding();
        let tiled = entry.ends_with("_tiled");
        let join = self.stack.joined.filter(|_| tiled);
        self.stack.went_joined.set(join.is_some());
        if let (None, Some(held)) = (join, self.stack.joined) {
            // Any other dispatch of a call in the pipeline goes after the steps it holds
            // (none today: `GpuCell::joins` takes cells whose steps are one tiled dispatch).
            held.flush(gpu);
        }
        let (pipeline, ninth) = if tiled {
            self.tiled_pipeline(shader, entry, &options, f16, spare, join.is_some())
        } else {
            let p = gpu.pipeline(shader.get(f16, StepProducts::F32, spare), entry, &options);
            (p, Ninth::None)
        };
        let mut bindings = vec![
            (1, self.params),
            (2, self.cache),
            (3, self.y),
            (6, self.lengths),
            (10, self.gates),
        ];
        match ninth {
            Ninth::None | Ninth::HalfWeights => {}
            Ninth::Params => bindings.push((11, self.params)),
            Ninth::Unread => bindings.push((11, &self.be.dummy)),
        }
        self.read_w16.set(ninth == Ninth::HalfWeights);
        bindings.extend_from_slice(io);
        if let Some(j) = join {
            if ninth == Ninth::HalfWeights {
                let part = self
                    .stack
                    .w16
                    .expect("the layer pipeline made W_hh's f16 copy");
                bindings.push((11, part));
            }
            j.push(pipeline, words, bindings, groups);
            return;
        }
        let mut bindings: Vec<(u32, &GpuBuffer)> = bindings;
        if ninth == Ninth::HalfWeights {
            bindings.push((11, self.w16_copy()));
        }
        gpu.dispatch_at(&pipeline, words, &bindings, groups);
    }

    /// The pipeline of the tiled step entry `entry` of `shader` for this call, with the
    /// cell's `options`, and what it binds at 11: the tensor-core build where the products
    /// are theirs and it compiles, else the matrix-vector products or the f32 tiles.
    fn tiled_pipeline(
        &self,
        shader: &'static CellShader,
        entry: &'static str,
        options: &[(&'static str, f64)],
        f16: bool,
        spare: bool,
        joined: bool,
    ) -> (Kernel, Ninth) {
        let gpu = &self.be.gpu;
        let products = self.products();
        let build = |products: StepProducts| match joined {
            true => shader.joined(f16, products, spare),
            false => shader.get(f16, products, spare),
        };
        if products == StepProducts::Gemv {
            let (tu, ks) = self.gemv_shape(entry.starts_with("bwd"));
            let tb = GEMV_SEQUENCES as f64;
            let shape = [("TU", tu as f64), ("KS", ks as f64), ("TB", tb)];
            let constants = [options, &shape].concat();
            return (
                gpu.pipeline(build(products), entry, &constants),
                Ninth::None,
            );
        }
        // The width this call's grid was made for (`tiles`) and the f32 tiles' chunks at it,
        // worked out before a tensor-core build is tried: where it fails to compile, the
        // choice of later calls changes, not this call's grid.
        let backward = entry.starts_with("bwd");
        let (tu, c) = self.tile_layout(backward);
        let (units, sq) = match backward {
            true => (tu, TILE_QUADS),
            false => (c.forward_units(tu), c.sq),
        };
        let tu = ("TU", units as f64);
        let seqs = [("SQ", sq as f64), ("TB", (4 * sq) as f64)];
        if products.on_tensor_cores() {
            // The experimental feature may fail to compile on a driver: then the f32 tiles.
            let ks = ("KS", self.coop_tiles_at(self.tile_ask(backward)).1 as f64);
            let split = ("SPLIT", self.be.tuning().split_steps as u32 as f64);
            let half = self.half_weights();
            let w16 = ("W16", half as u32 as f64);
            match gpu.try_pipeline(
                build(products),
                entry,
                &[options, &[tu, ks, split, w16], &seqs].concat(),
            ) {
                Ok(p) if half => return (p, Ninth::HalfWeights),
                Ok(p) if spare => return (p, Ninth::Unread),
                Ok(p) => return (p, Ninth::None),
                Err(why) => gpu
                    .give_up_tensor_cores("recurrent step", &format!("it does not compile: {why}")),
            }
        }
        let blocked = ("STEP_BLOCKED", self.be.tuning().blocked_steps as u32 as f64);
        let arrays = c.arrays(backward);
        let chunks = [
            ("KS", c.ks as f64),
            ("BR", c.rows as f64),
            ("FK", c.fk as f64),
            ("WS", arrays.ws as f64),
            ("HT", arrays.ht as f64),
            ("W4", self.w_hh_vec4() as u32 as f64),
        ];
        let constants = [options, &[tu, blocked], &seqs, &chunks].concat();
        let ninth = if spare { Ninth::Params } else { Ninth::None };
        (
            gpu.pipeline(build(StepProducts::F32), entry, &constants),
            ninth,
        )
    }

    /// Whether this call's tensor-core steps read W_hh from its f16 copy: where they are
    /// the rounded products of a recurrent layer, on an adapter with the binding for it,
    /// and the tuning asks for it or the copy pays ([`WgpuBackend::half_step_weights`]).
    fn half_weights(&self) -> bool {
        let weights = self.lay.dirs * self.lay.gh * self.lay.rw;
        self.plan.recurrent
            && self
                .be
                .half_step_weights(self.lay.batch, weights, self.steps)
    }

    /// The f16 copy of W_hh (`weights_f16`), recorded before the first step kernel that
    /// reads it, so a call whose steps all take other kernels (an LSTM's backward with a
    /// projection) makes none.
    fn w16_copy(&self) -> &GpuBuffer {
        if let Some(part) = self.stack.w16 {
            return part;
        }
        self.w16.get_or_init(|| {
            let at: Vec<usize> = self.plan.dirs.iter().map(|d| d.w_hh).collect();
            weights_f16(&self.be.gpu, self.params, &at, self.lay.gh * self.lay.rw)
        })
    }

    /// Records the zeroing of the forward's outputs where the batch `seq` has padding: y,
    /// and the cache, whose rows past each sequence's end must read as zero in the
    /// backward's products over all rows (dW_hh against hs shifted by a step, see
    /// `Call::dw_prev_state`; records such as the GRU's r h or the projection's m), whatever
    /// an earlier batch of this shape left there: finite values would bias the reverse
    /// direction's dW_hh, and a NaN from a skipped batch would poison every later one.
    ///
    /// Where every sequence runs all T steps the forward writes every row it and the
    /// backward read, over what the last batch left: y and the cache start zeroed, and
    /// what no step writes stays as it was. Only the initial states' sections (h0, c0,
    /// the cache's first) are cleared then, as before every forward.
    pub fn clear_outputs(&self, seq: &SeqShape) {
        let l = &self.lay;
        if !seq.has_padding() {
            self.be.gpu.clear_range(self.cache, 0, l.hs);
            return;
        }
        self.be.gpu.clear(self.y);
        self.be.gpu.clear_range(self.cache, 0, l.total);
    }

    /// The first row the gates buffer's row sections hold (the scratch, and xp, dxp and dgh
    /// where they are there): 0, or where it holds a window of rows of the layer pipeline's
    /// chunk (`InStack::gates_from`).
    fn window_first_row(&self) -> usize {
        self.stack.gates_from.get()
    }

    /// The first row the gate sections xp, dxp and dgh hold: the window's
    /// ([`Call::window_first_row`]), or 0 where the record holds them for every row.
    fn gates_first_row(&self) -> usize {
        match self.lay.gates_in_rec {
            true => 0,
            false => self.window_first_row(),
        }
    }

    /// Element offset in [`Call::gate_buf`] of row `row` of direction `d` of the gate section
    /// starting at `section` (xp, dxp or dgh), in a window of rows too.
    pub fn gate_row(&self, section: usize, d: usize, row: usize) -> usize {
        let l = &self.lay;
        let per_dir = match l.gates_in_rec {
            true => l.rows(),
            false => l.gate_rows,
        };
        section + (d * per_dir + row - self.gates_first_row()) * l.gs
    }

    /// Element offset in the gates buffer of row `row` of direction `d` of the scratch, in a
    /// window of rows too.
    pub fn scr_row(&self, d: usize, row: usize) -> usize {
        let l = &self.lay;
        l.scr + (d * l.gate_rows + row - self.window_first_row()) * l.sw
    }

    /// Records xp = x W_ih^T + b_ih for the rows `rows` of every direction (all of them as
    /// one GEMM per direction, or the layer pipeline's chunk of steps into its window).
    pub fn project(&self, x: &'a GpuBuffer, rows: std::ops::Range<usize>) {
        let (l, plan, params) = (&self.lay, self.plan, self.params);
        let _both = self.hold_products();
        for (d, off) in plan.dirs.iter().enumerate() {
            self.product(Product {
                m: rows.len(),
                n: l.gh,
                k: plan.input,
                a: Mat::rows(x, rows.start * plan.input, plan.input),
                b: Mat::t(params, off.w_ih, plan.input),
                c: Out {
                    buf: self.gate_buf(),
                    off: self.gate_row(l.xp, d, rows.start),
                    rs: l.gs,
                },
                alpha: 1.0,
                accumulate: false,
                bias: Some((params, off.b_ih)),
            });
        }
    }

    /// Records the zeroing of xp in the rows past each sequence's end where the record
    /// holds it (`clear_padding`): the backward's products over all rows read dxp there.
    pub fn clear_padding(&self, seq: &SeqShape) {
        let l = &self.lay;
        if l.gates_in_rec && seq.has_padding() {
            let w = self.words(0);
            let shader = final_state_shader(self.plan);
            self.run(shader, "clear_padding", &[], &w, self.groups(l.gh));
        }
    }

    /// Records the copy of each sequence's states at its last step into `last`.
    pub fn final_states(&self, last: StateBufsMut<'a, GpuBuffer>) {
        let StateBufsMut { h, c } = last;
        let c: &GpuBuffer = match c {
            Some(b) => b,
            None => &self.be.dummy,
        };
        let w = self.words(0);
        let width = self.lay.rw.max(self.lay.cw);
        self.states(
            final_state_shader(self.plan),
            "final_state",
            h,
            c,
            &w,
            width,
        );
    }

    /// Records a backward-step entry of `shader` (bindings 1, 2, 4-7) over explicit
    /// workgroups (tiled kernels).
    pub fn backward_tiles(
        &self,
        shader: &'static CellShader,
        entry: &'static str,
        io: &Bwd<'a>,
        words: &[u32],
        groups: [u32; 3],
    ) {
        let io = [(4, io.st_h), (5, io.st_c), (7, io.dy)];
        self.run(shader, entry, &io, words, groups);
    }

    /// Records a forward-step entry of `shader` (bindings 1-6) over explicit workgroups
    /// (for tiled kernels whose workgroups cover blocks of units and sequences).
    pub fn forward_tiles(
        &self,
        shader: &'static CellShader,
        entry: &'static str,
        io: &Fwd<'a>,
        words: &[u32],
        groups: [u32; 3],
    ) {
        let io = [(4, io.st_h), (5, io.st_c)];
        self.run(shader, entry, &io, words, groups);
    }

    /// Records a forward-step entry of `shader` (bindings 1-6).
    pub fn forward(
        &self,
        shader: &'static CellShader,
        entry: &'static str,
        io: &Fwd<'a>,
        words: &[u32],
        width: usize,
    ) {
        self.forward_tiles(shader, entry, io, words, self.groups(width));
    }

    /// Records a backward-step entry of `shader` (bindings 1, 2, 4-7).
    pub fn backward(
        &self,
        shader: &'static CellShader,
        entry: &'static str,
        io: &Bwd<'a>,
        words: &[u32],
        width: usize,
    ) {
        self.backward_tiles(shader, entry, io, words, self.groups(width));
    }

    /// Records an entry writing per-sequence states (bindings 1, 2, 6, 8, 9).
    pub fn states(
        &self,
        shader: &'static CellShader,
        entry: &'static str,
        out_h: &'a GpuBuffer,
        out_c: &'a GpuBuffer,
        words: &[u32],
        width: usize,
    ) {
        self.run(
            shader,
            entry,
            &[(8, out_h), (9, out_c)],
            words,
            self.groups(width),
        );
    }

    /// `C (+)= A B` over this call's rows; see [`Call::product`].
    #[allow(clippy::too_many_arguments)]
    pub fn gemm(
        &self,
        m: usize,
        n: usize,
        k: usize,
        a: Mat<'a>,
        b: Mat<'a>,
        c: Out<'a>,
        accumulate: bool,
    ) {
        self.product(Product {
            m,
            n,
            k,
            a,
            b,
            c,
            alpha: 1.0,
            accumulate,
            bias: None,
        });
    }

    /// Records the matrix product `p` (as `gemm::gemm`), or holds it where the call's
    /// products are held ([`Call::products`]).
    pub fn product(&self, p: Product<'a>) {
        self.products.record(p);
    }

    /// Holds the call's products until what this returns is dropped, which records them
    /// side by side where they can be.
    fn hold_products(&self) -> Held<'_, 'a> {
        self.products.hold()
    }

    /// `dW[out..] (rows first..first + n of a [G*H, R] weight) += dgh[:, first..first + n]^T
    /// h_{t-1}` over the steps of the rows `rows` of direction `d` (whole steps): h_{t-1} is
    /// hs one step back in the direction's order (hs is cleared before each forward, so the
    /// row past a reverse sequence's end reads zero), and at each sequence's first step (in
    /// the rows from 0) the initial state h0, against those steps' dgh rows
    /// ([`Call::first_dgh`]), unless the forward started from zero states
    /// ([`Call::zero_init`]). No-op for a non-recurrent layer.
    pub fn dw_prev_state(
        &self,
        d: usize,
        first: usize,
        n: usize,
        grads: &'a GpuBuffer,
        out: usize,
        rows: std::ops::Range<usize>,
    ) {
        if !self.plan.recurrent {
            return;
        }
        let l = &self.lay;
        let (t, b) = (l.time, l.batch);
        let (s0, s1) = (rows.start / b, rows.end.div_ceil(b));
        // hs rows of steps `from..` of direction d, where they live.
        let hs = |from: usize| {
            if l.hs_in_y {
                let out_w = self.plan.output_width();
                Mat::rows(self.y, from * b * out_w + d * l.rw, out_w)
            } else {
                Mat::rows(self.cache, self.dir(l.hs, d, l.rw) + from * b * l.rw, l.rw)
            }
        };
        let dst = || Out {
            buf: grads,
            off: out,
            rs: l.rw,
        };
        // Forward direction: dgh rows of steps 1.. against hs rows of the step before; the
        // reverse direction steps from t + 1 to t, so its steps ..T-1 against the step after.
        let (from, to, h) = match d {
            0 => (s0.max(1), s1, s0.max(1).saturating_sub(1)),
            _ => (s0, s1.min(t.saturating_sub(1)), s0 + 1),
        };
        if to > from {
            self.gemm(
                n,
                l.rw,
                (to - from) * b,
                Mat::t(
                    self.gate_buf(),
                    self.gate_row(l.dgh, d, from * b) + first,
                    l.gs,
                ),
                hs(h),
                dst(),
                true,
            );
        }
        if s0 == 0 && !self.zero_init {
            let (buf, off, ld) = self.first_dgh(d);
            self.gemm(
                n,
                l.rw,
                b,
                Mat::t(buf, off + first, ld),
                Mat::rows(self.cache, l.h0 + d * b * l.rw, l.rw),
                dst(),
                true,
            );
        }
    }

    /// Where the dgh of each sequence's first step in direction `d` is, as (buffer, offset,
    /// row stride) of `[B][G*H]` rows: for a unidirectional layer the rows of step 0, where
    /// every sequence starts; else what `gather_first_dgh` collected in dgh0.
    fn first_dgh(&self, d: usize) -> (&'a GpuBuffer, usize, usize) {
        let l = &self.lay;
        match l.dirs {
            1 => (self.gate_buf(), self.gate_row(l.dgh, 0, 0), l.gs),
            _ => (self.gates, l.dgh0 + d * l.batch * l.gh, l.gh),
        }
    }

    /// `grads[at..at+n] += column sums of the first `n` columns of the [rows, ld] matrix at
    /// `off` of `buf`` for each `at` of `ats` (one or two; `buf` the cache or the gates
    /// buffer; `shaders/colsum.wgsl`), held with the call's products where those are held.
    #[allow(clippy::too_many_arguments)]
    pub fn col_sums(
        &self,
        buf: &'a GpuBuffer,
        off: usize,
        n: usize,
        ld: usize,
        grads: &'a GpuBuffer,
        ats: &[usize],
        rows: usize,
    ) {
        let src = Mat::rows(buf, off, ld);
        self.products.sum(ColSum::new(src, rows, n, grads, ats));
    }

    /// The buffer of xp, dxp and dgh (row stride `Layout::gs`): the cache or the gates
    /// buffer.
    pub fn gate_buf(&self) -> &'a GpuBuffer {
        if self.lay.gates_in_rec {
            self.cache
        } else {
            self.gates
        }
    }

    /// Element offset of direction `d`'s rows in a section starting at `section` with rows
    /// of `width`.
    pub fn dir(&self, section: usize, d: usize, width: usize) -> usize {
        section + d * self.lay.rows() * width
    }
}

/// Buffers of a forward step.
pub(super) struct Fwd<'a> {
    pub st_h: &'a GpuBuffer,
    pub st_c: &'a GpuBuffer,
}

/// Buffers of a backward step.
pub(super) struct Bwd<'a> {
    pub dy: &'a GpuBuffer,
    pub st_h: &'a GpuBuffer,
    pub st_c: &'a GpuBuffer,
}

/// One cell kind's kernels.
pub(super) trait GpuCell {
    /// The cell's kernel file (prefixed with `shaders/layer.wgsl`).
    fn shader(&self) -> &'static CellShader;
    /// Scalars the forward step records per (d, t, b) in the `rec` section.
    fn record_width(&self, plan: &LayerPlan) -> usize;
    /// Scalars of backward scratch per (d, t, b) in the `scr` section.
    fn scratch_width(&self, _plan: &LayerPlan) -> usize {
        0
    }
    /// Whether the gradient of `W_hh h + b_hh` (dgh) always equals that of `xp` (dxp), so
    /// both sections can be one.
    fn dgh_is_dxp(&self, _plan: &LayerPlan) -> bool {
        true
    }
    /// Whether the record's first G*H values per row are one per gate row, each read only
    /// by the step that writes it, so an f32 cache can hold xp and dxp there
    /// (`Layout::gates_in_rec`; dgh must be dxp).
    fn gates_in_record(&self, _plan: &LayerPlan) -> bool {
        false
    }
    /// Where dxp's columns are in a record row (see `Layout::dxp_blocks`) when the record
    /// holds the gate sections.
    fn dxp_blocks_in_record(&self, plan: &LayerPlan) -> Vec<(usize, usize, usize)> {
        vec![(0, plan.gates * plan.hidden, 0)]
    }
    /// Whether the recurrent state after each step is the layer's output at that step, so
    /// the output can hold it (see `Layout::hs_in_y`).
    fn state_is_output(&self) -> bool {
        true
    }
    /// The four options (`OPT0..OPT3`, pipeline constants) of the cell's kernels.
    fn options(&self, plan: &LayerPlan) -> [u32; 4];
    /// Extra parameter offsets (`ex0`, `ex1` of each direction): (ex0 fwd, ex0 rev, ex1 fwd,
    /// ex1 rev).
    fn extra_offsets(&self, _plan: &LayerPlan) -> (usize, usize, usize, usize) {
        (0, 0, 0, 0)
    }
    /// Whether each forward step is one tiled dispatch, which the layer pipeline can join
    /// with other layers' (`stack.rs`).
    fn joins(&self, _plan: &LayerPlan, _tuning: &super::Tuning) -> bool {
        false
    }
    /// Records the forward dispatches of step `s` (both directions).
    fn forward_step<'a>(&self, c: &Call<'a>, io: &Fwd<'a>, s: usize) {
        let w = c.words(s);
        c.forward(self.shader(), "fwd_step", io, &w, c.plan.hidden);
        c.cost(c.lay.gh, c.lay.rw);
    }
    /// Records the backward dispatches of step `s` (called for s from the last step down).
    fn backward_step<'a>(&self, c: &Call<'a>, io: &Bwd<'a>, s: usize) {
        let w = c.words(s);
        c.backward(self.shader(), "bwd_step", io, &w, c.plan.hidden);
        c.cost(c.lay.gh, c.lay.rw);
    }
    /// Records the gradient of the initial states (after all backward steps).
    fn initial_state_grads<'a>(&self, c: &Call<'a>, dh: &'a GpuBuffer, dc: &'a GpuBuffer) {
        let w = c.words(0);
        let width = c.lay.rw.max(c.lay.cw);
        c.states(self.shader(), "dinit", dh, dc, &w, width);
    }
    /// Records the gradients of `weight_hh` of direction `d` (and of any other weight of the
    /// cell but `weight_ih`) from the steps of `rows`, matrix products only
    /// (`Call::weight_grads_of_rows`).
    fn weight_grads<'a>(&self, c: &Call<'a>, d: usize, grads: &'a GpuBuffer, rows: Range<usize>) {
        // dW_hh += dgh^T h_{t-1}
        c.dw_prev_state(d, 0, c.lay.gh, grads, c.plan.dirs[d].w_hh, rows);
    }
    /// Records the gradients of the cell's parameters other than the weights and
    /// `bias_ih`, `bias_hh` (column sums; `Call::bias_grads_of_rows`).
    fn bias_grads<'a>(&self, _c: &Call<'a>, _d: usize, _grads: &'a GpuBuffer, _rows: Range<usize>) {
    }
}

/// The kernels of the plan's cell kind.
pub(super) fn cell_of(plan: &LayerPlan) -> &'static dyn GpuCell {
    match plan.cell {
        CellConfig::Elman { .. } => &ElmanCell,
        CellConfig::Jordan { .. } => &JordanCell,
        CellConfig::Lstm { .. } => &LstmCell,
        CellConfig::Gru { .. } => &GruCell,
    }
}

/// The shader of the layer-wide entry points (final states).
pub(super) fn final_state_shader(plan: &LayerPlan) -> &'static CellShader {
    cell_of(plan).shader()
}

/// Scalars of cache a layer call needs (what the forward records for the backward).
pub(super) fn cache_len(plan: &LayerPlan, seq: &SeqShape) -> usize {
    // The same for both storage types.
    Layout::of(plan, seq, false).total
}

/// Scalars of the two large buffers of a layer call: its cache (f16 or f32 as `f16_cache`
/// says) and its gates buffer.
pub(super) fn largest_lens(plan: &LayerPlan, seq: &SeqShape, f16_cache: bool) -> (usize, usize) {
    let l = Layout::of(plan, seq, f16_cache);
    (l.total, l.gates_len)
}

pub(super) fn steps(seq: &SeqShape) -> usize {
    seq.lengths.iter().copied().max().unwrap_or(0)
}

/// See `Backend::layer_forward`.
#[allow(clippy::too_many_arguments)]
pub(super) fn layer_forward(
    be: &WgpuBackend,
    plan: &LayerPlan,
    params: &GpuBuffer,
    x: &GpuBuffer,
    seq: &SeqShape,
    init: Option<StateBufs<'_, GpuBuffer>>,
    y: &mut GpuBuffer,
    last: StateBufsMut<'_, GpuBuffer>,
    cache: &mut GpuBuffer,
) {
    let cell = cell_of(plan);
    let lengths = be.lengths(seq);
    let lay = Layout::of(plan, seq, cache.is_f16());
    // xp: every row is written by the projection below before a step reads it.
    let gates = be.gpu.buffer_uninit(lay.gates_len);
    let products = Products::new(&be.gpu);
    let c = Call {
        be,
        plan,
        lay,
        params,
        cache,
        gates: &gates,
        y,
        lengths: &lengths,
        has_state: init.is_some(),
        zero_init: init.is_none(),
        steps: steps(seq),
        w16: OnceCell::new(),
        read_w16: Cell::new(false),
        products: &products,
        stack: InStack::default(),
        k_slices: KSlices::default(),
    };
    c.clear_outputs(seq);
    c.project(x, 0..c.lay.rows());
    c.clear_padding(seq);
    let (st_h, st_c) = match &init {
        Some(s) => (s.h, s.c.unwrap_or(&be.dummy)),
        None => (&be.dummy, &be.dummy),
    };
    let io = Fwd { st_h, st_c };
    for s in 0..c.steps {
        cell.forward_step(&c, &io, s);
    }
    c.final_states(last);
}

/// The gates buffer of a layer's backward (dxp, dgh where apart, dgh0, the scratch and the
/// running dc), zeroed where the batch has padding: the padding rows of dxp and dgh must
/// read as zero in the products over all rows, and a step reads the next one's scratch
/// only where the sequence goes on. Where every sequence runs all T steps it starts
/// uninitialised: the steps write every row before anything reads it, a sequence's last
/// step takes the final-state gradient (or zero) instead of the running dc
/// (`shaders/lstm_cell.wgsl` `lstm_bwd_in`), and dgh0 is read only after
/// `gather_first_dgh` has written it.
fn gates_for_backward(be: &WgpuBackend, lay: &Layout, seq: &SeqShape) -> GpuBuffer {
    match seq.has_padding() {
        true => be.gpu.buffer(lay.gates_len),
        false => be.gpu.buffer_uninit(lay.gates_len),
    }
}

/// See `Backend::layer_backward`.
#[allow(clippy::too_many_arguments)]
pub(super) fn layer_backward(
    be: &WgpuBackend,
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
    let cell = cell_of(plan);
    let lengths = be.lengths(seq);
    let lay = Layout::of(plan, seq, cache.is_f16());
    let gates = gates_for_backward(be, &lay, seq);
    let products = Products::new(&be.gpu);
    let c = Call {
        be,
        plan,
        lay,
        params,
        cache,
        gates: &gates,
        y,
        lengths: &lengths,
        has_state: dlast.is_some(),
        zero_init,
        steps: steps(seq),
        w16: OnceCell::new(),
        read_w16: Cell::new(false),
        products: &products,
        stack: InStack::default(),
        k_slices: KSlices::default(),
    };
    let (st_h, st_c) = match &dlast {
        Some(s) => (s.h, s.c.unwrap_or(&be.dummy)),
        None => (&be.dummy, &be.dummy),
    };
    let io = Bwd { dy, st_h, st_c };
    for s in (0..c.steps).rev() {
        cell.backward_step(&c, &io, s);
    }
    c.param_grads_after_steps(x, grads, dinit);
    if let Some(dx) = dx {
        c.input_grads(dx, 0..c.lay.rows(), 0);
    }
}

impl<'a> Call<'a> {
    /// Records what a backward does after its steps: the initial states' gradients into
    /// `dinit` where asked for, and every parameter gradient into `grads` (`x` the layer's
    /// input).
    pub fn param_grads_after_steps(
        &self,
        x: &'a GpuBuffer,
        grads: &'a GpuBuffer,
        dinit: Option<StateBufsMut<'a, GpuBuffer>>,
    ) {
        self.initial_state_grads(dinit);
        self.param_grads_of_rows(x, grads, 0..self.lay.rows());
    }

    /// Records the initial states' gradients into `dinit` where asked for, once the steps
    /// from the first have run (the dgh of each sequence's first step in the gates buffer).
    pub fn initial_state_grads(&self, dinit: Option<StateBufsMut<'a, GpuBuffer>>) {
        if let Some(StateBufsMut { h, c: dc }) = dinit {
            let dc: &GpuBuffer = match dc {
                Some(b) => b,
                None => &self.be.dummy,
            };
            cell_of(self.plan).initial_state_grads(self, h, dc);
        }
    }

    /// Adds to every parameter gradient in `grads` the share of the steps of the rows `rows`
    /// of each direction (all of them, or the layer pipeline's chunk of a unidirectional
    /// layer, whose gate sections hold its rows); `x` is the layer's input.
    pub fn param_grads_of_rows(
        &self,
        x: &'a GpuBuffer,
        grads: &'a GpuBuffer,
        rows: std::ops::Range<usize>,
    ) {
        let (plan, l) = (self.plan, &self.lay);
        // The reverse direction's first steps are at each sequence's end: gathered for
        // dW_hh's share of h0 where the forward had one. The forward direction's are the
        // rows of step 0 (`Call::first_dgh`).
        if plan.recurrent && rows.start == 0 && l.dirs > 1 && !self.zero_init {
            let w = self.words(0);
            self.run(
                final_state_shader(plan),
                "gather_first_dgh",
                &[],
                &w,
                self.groups(l.gh),
            );
        }
        self.weight_grads_of_rows(x, grads, rows.clone());
        self.bias_grads_of_rows(grads, rows);
    }

    /// The weights' share of [`Call::param_grads_of_rows`], matrix products only (which the
    /// layer pipeline holds to record with the other layers', `Call::products`); the
    /// reverse direction's first steps' dgh must have been gathered.
    pub fn weight_grads_of_rows(
        &self,
        x: &'a GpuBuffer,
        grads: &'a GpuBuffer,
        rows: std::ops::Range<usize>,
    ) {
        let (cell, plan, l) = (cell_of(self.plan), self.plan, &self.lay);
        let _both = self.hold_products();
        for (d, off) in plan.dirs.iter().enumerate() {
            let dxp = self.gate_row(l.dxp, d, rows.start);
            for &(col, n, at) in &l.dxp_blocks {
                // dW_ih += dxp^T x
                self.gemm(
                    n,
                    plan.input,
                    rows.len(),
                    Mat::t(self.gate_buf(), dxp + at, l.gs),
                    Mat::rows(x, rows.start * plan.input, plan.input),
                    Out {
                        buf: grads,
                        off: off.w_ih + col * plan.input,
                        rs: plan.input,
                    },
                    true,
                );
            }
            cell.weight_grads(self, d, grads, rows.clone());
        }
    }

    /// The biases' share of [`Call::param_grads_of_rows`]: column sums.
    pub fn bias_grads_of_rows(&self, grads: &'a GpuBuffer, rows: std::ops::Range<usize>) {
        let (cell, plan, l) = (cell_of(self.plan), self.plan, &self.lay);
        let _both = self.hold_products();
        for (d, off) in plan.dirs.iter().enumerate() {
            let dxp = self.gate_row(l.dxp, d, rows.start);
            for &(col, n, at) in &l.dxp_blocks {
                // db_ih += column sums of dxp; where dgh is dxp, db_hh takes the same sums.
                let b = [off.b_ih + col, off.b_hh + col];
                let ats = if l.dgh_is_dxp { &b[..] } else { &b[..1] };
                self.col_sums(self.gate_buf(), dxp + at, n, l.gs, grads, ats, rows.len());
            }
            if !l.dgh_is_dxp {
                // db_hh += column sums of dgh
                let dgh = self.gate_row(l.dgh, d, rows.start);
                let b_hh = [off.b_hh];
                self.col_sums(self.gate_buf(), dgh, l.gh, l.gs, grads, &b_hh, rows.len());
            }
            cell.bias_grads(self, d, grads, rows.clone());
        }
    }

    /// Records dx = the sum over directions of dxp W_ih for the rows `rows` of dx `[T, B, I]`
    /// (all of them, or the layer pipeline's chunk of steps), of which `dx` holds the rows
    /// from `first` on (0, or the pipeline's window of a chunk).
    pub fn input_grads(&self, dx: &'a GpuBuffer, rows: std::ops::Range<usize>, first: usize) {
        let (plan, l) = (self.plan, &self.lay);
        for (d, off) in plan.dirs.iter().enumerate() {
            let dxp = self.gate_row(l.dxp, d, rows.start);
            for (i, &(col, n, at)) in l.dxp_blocks.iter().enumerate() {
                self.gemm(
                    rows.len(),
                    plan.input,
                    n,
                    Mat::rows(self.gate_buf(), dxp + at, l.gs),
                    Mat::rows(self.params, off.w_ih + col * plan.input, plan.input),
                    Out {
                        buf: dx,
                        off: (rows.start - first) * plan.input,
                        rs: plan.input,
                    },
                    d > 0 || i > 0,
                );
            }
        }
    }
}
