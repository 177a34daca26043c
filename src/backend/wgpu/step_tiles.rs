//! How the recurrent step kernels lay out their tiles on an adapter: units and sequences
//! per workgroup, K slices, chunk depths within the workgroup memory, and where the f16
//! copy of W_hh pays (`shaders/step_tiles.wgsl`, `shaders/step_coop.wgsl`). The rules take
//! a step's grid and the adapter's limits and give the same layout to the kernels, the
//! reports and the instruction counts; BENCHMARKS.md says why each is what it is.

/// The fewest workgroups a tile width must give for the tiled step kernels to take it
/// (about one per core of a 132-core GPU).
pub const FULL_GRID: usize = 128;

/// The deepest k steps per chunk of the plain forward beside the backward's chunks of `rows`
/// rows: as many k steps as those take rows, but at most 128 weight rows (`gates` per k
/// step) a chunk; whole parts of 16, at least one. The LSTM's and GRU's forward thus stage
/// twice the backward's weight rows a chunk (32 k steps beside 64 rows), halving their
/// chunks and barriers; an Elman forward takes the rows' depth.
fn forward_chunk(rows: usize, gates: usize) -> usize {
    (rows.min(128 / gates.max(1)) / 16).max(1) * 16
}

/// Sizes (vec4s) of `shaders/step_tiles.wgsl`'s `wsm` and `h_tile` for the blocked loops,
/// the arrays' defaults.
pub(super) const BLOCKED_WS: usize = 1536;
pub(super) const BLOCKED_HT: usize = 320;

/// Sequence quads of a workgroup of the f32 tiles (their 16 sequences), and of the
/// forward's where it takes 32 ([`PlainChunks::sq`]).
pub const TILE_QUADS: usize = 4;
/// See [`TILE_QUADS`].
pub const WIDE_QUADS: usize = 8;

/// How the f32 tiles' plain loops go through the inner dimension (the `KS`, `BR` and `FK`
/// overrides of `shaders/step_tiles.wgsl`), and the workgroup memory each direction's entry
/// point takes for it (its `WS` and `HT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlainChunks {
    /// K slices: parts of every chunk's inner dimension taken by their own invocations.
    pub ks: usize,
    /// Weight rows per chunk and slice, which the backward takes as rows of W_hh^T.
    pub rows: usize,
    /// The forward's k steps per chunk and slice (16, 32 or 64; `forward_chunk` at most).
    pub fk: usize,
    /// Sequence quads of the forward's workgroups (the `SQ` override): 4, or 8 for tiles
    /// of half the width and 32 sequences ([`forward_quads`]), which read W_hh half as often
    /// a step at the same workgroups and invocations.
    pub sq: usize,
    /// The forward's workgroup arrays.
    pub fwd: StepArrays,
    /// The backward's workgroup arrays.
    pub bwd: StepArrays,
}

/// Sizes (vec4s) of the two workgroup arrays of a step entry point of the f32 tiles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StepArrays {
    /// Vec4s of `wsm` (staged weights, then partial sums).
    pub ws: usize,
    /// Vec4s of `h_tile` (staged states or dgh).
    pub ht: usize,
}

impl StepArrays {
    /// Bytes of workgroup memory the two arrays take.
    pub fn bytes(&self) -> usize {
        (self.ws + self.ht) * 16
    }
}

impl PlainChunks {
    /// The chunking at `ks` slices, `rows` rows and `fk` forward k steps of tiles of `tu`
    /// units and `gates` gate rows each, the forward's in workgroups of `sq` sequence quads
    /// (of `tu` 4 / `sq` units). Per slice, the forward's `wsm` holds its staged weights
    /// (gates x units x (FK / 4 + 1) vec4s) and after the loop its partial sums (gates x
    /// `sq` x units; the Elman blocks' 8 x `tu`), the backward's its staged weights (`rows`
    /// x (`tu` / 4 + 1)) and then its sums (8 x `tu`); `h_tile` holds FK or `rows` rows of
    /// their sequences' states (a vec4 a quad and a spare one).
    pub fn of(ks: usize, rows: usize, fk: usize, tu: usize, gates: usize, sq: usize) -> Self {
        // The step loops write out at most 4 quads of a quarter's rows and 8 of a half's k
        // steps (`block4_chunk`, `pair_chunk`).
        assert!(
            rows <= 64 && fk <= 64,
            "the step tiles take at most 64 rows and k steps a chunk"
        );
        let fu = forward_tile(tu, sq).0;
        let fwd_ws = [gates * fu * (fk / 4 + 1), gates * sq * fu, 8 * tu];
        let bwd_ws = [rows * (tu / 4 + 1), 8 * tu];
        let most = |w: &[usize]| w.iter().copied().max().unwrap_or(0);
        PlainChunks {
            ks,
            rows,
            fk,
            sq,
            fwd: StepArrays {
                ws: ks * most(&fwd_ws),
                ht: ks * fk * (sq + 1),
            },
            bwd: StepArrays {
                ws: ks * most(&bwd_ws),
                ht: ks * rows * (TILE_QUADS + 1),
            },
        }
    }

    /// Units of the forward's tiles beside the backward's `tu` ([`forward_tile`]).
    pub fn forward_units(&self, tu: usize) -> usize {
        forward_tile(tu, self.sq).0
    }

    /// Sequences of the forward's tiles ([`forward_tile`]).
    pub fn forward_sequences(&self) -> usize {
        forward_tile(TILE_QUADS, self.sq).1
    }

    /// What the blocked loops take (they ignore the depths): one slice, the arrays'
    /// default sizes.
    pub fn blocked(rows: usize, gates: usize) -> PlainChunks {
        let arrays = StepArrays {
            ws: BLOCKED_WS,
            ht: BLOCKED_HT,
        };
        PlainChunks {
            ks: 1,
            rows,
            fk: forward_chunk(rows, gates),
            sq: TILE_QUADS,
            fwd: arrays,
            bwd: arrays,
        }
    }

    /// The arrays of the forward's or the `backward`'s entry point.
    pub fn arrays(&self, backward: bool) -> StepArrays {
        if backward { self.bwd } else { self.fwd }
    }

    /// Bytes of workgroup memory the larger of the two entry points takes.
    pub fn bytes(&self) -> usize {
        self.fwd.bytes().max(self.bwd.bytes())
    }
}

/// The deepest chunk of the plain loops, 64, 32 or 16 rows, at most `asked` (16 below that).
pub(super) fn chunk_depth(asked: usize) -> usize {
    [64, 32, 16].into_iter().find(|&r| r <= asked).unwrap_or(16)
}

/// The chunking of tiles of `tu` units and `gates` gate rows each, the forward's in
/// workgroups of `sq` sequence quads: the most K slices, at most
/// `asked_ks`, whose workgroup of 4 x `tu` x KS invocations stays within `most`, each with
/// the deepest chunks of 16, 32 or 64 rows, at most `asked_rows`, whose backward's arrays
/// fit the adapter's `storage` bytes of workgroup memory, and beside them the deepest
/// forward chunks (`forward_chunk` at most) whose arrays fit too. Slices before depth: they
/// give a step whose grid is small KS times the warps. One slice of 16 rows and 16 k steps
/// always fits an adapter that holds the blocked loops' arrays (`TILED_STEP_WORKGROUP_BYTES`,
/// which `Tuning` requires of tiles).
pub fn fit_chunks(
    asked_ks: usize,
    asked_rows: usize,
    tu: usize,
    gates: usize,
    sq: usize,
    most: usize,
    storage: usize,
) -> PlainChunks {
    let mut ks = asked_ks.max(1);
    loop {
        let mut rows = chunk_depth(asked_rows);
        loop {
            let mut fk = forward_chunk(rows, gates);
            loop {
                let c = PlainChunks::of(ks, rows, fk, tu, gates, sq);
                let floor = ks == 1 && rows == 16 && fk == 16;
                if (c.bytes() <= storage && 4 * tu * ks <= most) || floor {
                    return c;
                }
                if fk == 16 {
                    break;
                }
                fk /= 2;
            }
            if rows == 16 {
                break;
            }
            rows /= 2;
        }
        ks /= 2;
    }
}

/// Invocations the f32 tiles should give a step where the K slices are left to the grid:
/// 16 warps of 32 on each of [`FULL_GRID`] cores (four per scheduler of an NVIDIA SM), so
/// that each core has warps to issue while others wait on L2 or a barrier (BENCHMARKS.md,
/// entries 18 and 48).
pub const BUSY_INVOCATIONS: usize = FULL_GRID * 512;

/// One layer call's recurrent steps as the tile rule sees them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StepGrid {
    /// Hidden units: the products' inner dimension and rows per gate.
    pub hidden: usize,
    /// Sequences (16 per tile).
    pub batch: usize,
    /// Directions, side by side in one dispatch.
    pub dirs: usize,
    /// Gate rows per unit (4 LSTM, 3 GRU, 1 Elman).
    pub gates: usize,
}

impl StepGrid {
    /// The steps of a model of `shape` (its widest layer's).
    pub fn of(shape: &super::autotune::Shape) -> StepGrid {
        StepGrid {
            hidden: shape.hidden,
            batch: shape.batch,
            dirs: if shape.bidirectional { 2 } else { 1 },
            gates: shape.gates,
        }
    }

    /// Workgroups of tiles `tu` units wide.
    pub fn workgroups(&self, tu: usize) -> usize {
        self.hidden.div_ceil(tu) * self.batch.div_ceil(16) * self.dirs
    }

    /// Recurrent weights of the layer, all directions.
    pub fn weights(&self) -> usize {
        self.gates * self.hidden * self.hidden * self.dirs
    }
}

/// What one dependent dispatch costs, in bytes of L2 traffic at the same time: ~5 us a
/// dispatch on the H100 through wgpu (../shared/device/README.md) at ~6 TB/s (the rate
/// BENCHMARKS.md's traffic tables assume).
const DISPATCH_BYTES: f64 = 5e-6 * 6e12;

/// Whether an f16 copy of W_hh (`weights_f16`) saves a layer call of `steps` steps over
/// `batch` sequences with `weights` recurrent weights more than it costs: its steps read
/// W_hh once per 16 sequences a step at 2 bytes a weight less, while the copy reads it
/// twice and writes it once (10 bytes a weight) in two dispatches. A model of L2 traffic,
/// not a measurement: it keeps the copy out of short calls (generation's single steps: 2
/// bytes saved a weight, 10 spent) and small layers, where its dispatches cost more.
pub fn half_weights_pay(weights: usize, batch: usize, steps: usize) -> bool {
    let w = weights as f64;
    let saved = 2.0 * w * (batch.div_ceil(16) * steps) as f64;
    saved > 10.0 * w + 2.0 * DISPATCH_BYTES
}

/// Workgroup memory and invocations per workgroup of the H100 through wgpu
/// (../shared/device/README.md), the adapter the suite's targets are set on: what the tile
/// rule's tests, the instruction counts and the GPU tests of the suite's layouts take.
pub const H100_WORKGROUP_BYTES: usize = 48 << 10;
/// See [`H100_WORKGROUP_BYTES`].
pub const H100_INVOCATIONS: usize = 1024;

/// The step grids of the benchmark suite (`../shared/device/suite.tsv`, BENCHMARKS.md), by
/// configuration name: the shapes the tile rule is checked and counted on.
pub const SUITE_GRIDS: [(&str, StepGrid); 8] = [
    ("small", suite_grid(128, 32, 1, 4)),
    ("charlm", suite_grid(512, 64, 1, 4)),
    ("flagship", suite_grid(1024, 64, 1, 4)),
    ("gru4", suite_grid(1024, 64, 1, 3)),
    ("tanh4", suite_grid(1024, 64, 1, 1)),
    ("wide", suite_grid(2048, 128, 1, 4)),
    ("batch1", suite_grid(1024, 1, 1, 4)),
    ("bilstm", suite_grid(512, 64, 2, 4)),
];

const fn suite_grid(hidden: usize, batch: usize, dirs: usize, gates: usize) -> StepGrid {
    StepGrid {
        hidden,
        batch,
        dirs,
        gates,
    }
}

/// The f32 tiles the H100 gives steps of `grid` ([`plain_tiles`] at its limits and the
/// default 64-row chunks), with `units`, `k_split` and the forward's `sequences` where asked.
pub fn h100_tiles(
    grid: StepGrid,
    units: Option<usize>,
    k_split: Option<usize>,
    sequences: Option<usize>,
) -> (usize, PlainChunks) {
    plain_tiles(
        grid,
        TileAsk {
            units,
            k_split,
            sequences,
            rows: 64,
        },
        H100_INVOCATIONS,
        H100_WORKGROUP_BYTES,
    )
}

/// What a tuning asks of the f32 tiles ([`plain_tiles`]): their width, K slices and the
/// forward's sequences (`None`: by the grid), and the chunks' deepest rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TileAsk {
    /// Units per tile (16, 32 or 64).
    pub units: Option<usize>,
    /// K slices (1, 2 or 4).
    pub k_split: Option<usize>,
    /// Sequences of the forward's tiles (16 or 32; [`forward_quads`]).
    pub sequences: Option<usize>,
    /// The deepest chunk rows (16, 32 or 64).
    pub rows: usize,
}

/// The forward's tiles, (units, sequences), beside tiles of `tu` units x 16 sequences, in
/// workgroups of `sq` sequence quads ([`forward_quads`]): as many invocations, `tu` 4 /
/// `sq` units x 4 `sq` sequences.
pub fn forward_tile(tu: usize, sq: usize) -> (usize, usize) {
    (tu * TILE_QUADS / sq, 4 * sq)
}

/// Sequence quads of the forward's workgroups beside tiles of `tu` units for steps of
/// `grid`: 8 (tiles of `tu` / 2 units x 32 sequences) where `sequences` asks for 32 or, by
/// default, the batch has more than 16 sequences and tiles of 32 pad it no more than tiles
/// of 16 do (24, 32, 56, 64, ..., not 48), for a gated cell (its unit pairs' loop; the
/// Elman forward's 4-unit blocks take 16) in tiles of at least 32 units (so that the
/// forward's have 16 and stage at most 4 states an invocation a part), else 4. The forward
/// then reads W_hh once per 32 sequences a step instead of 16 and stages twice the states,
/// at the same workgroups and invocations: a third less L2 traffic for the flagship's
/// forward (BENCHMARKS.md, "What the step tiles read from L2"), none more where the
/// states' term was the smaller.
pub fn forward_quads(grid: StepGrid, tu: usize, sequences: Option<usize>) -> usize {
    let b = grid.batch;
    let fits = b > 16 && 2 * b.div_ceil(32) == b.div_ceil(16);
    let wide = sequences.unwrap_or(if fits { 32 } else { 16 }) == 32;
    if wide && grid.gates > 1 && tu >= 32 {
        WIDE_QUADS
    } else {
        TILE_QUADS
    }
}

/// Sequence quads of the tensor-core steps' forward workgroups beside tiles of `tu` units
/// ([`forward_quads`]), for the LSTM only: their two groups of weight load slots take half
/// a chunk's gates each, which the GRU's three split unevenly (2 and 1, the gate count then
/// worked out per group: 181 instructions a chunk pass of gru4's f16 forward instead of
/// 146 in 16 sequences, BENCHMARKS.md entry 57).
pub fn coop_forward_quads(grid: StepGrid, tu: usize, sequences: Option<usize>) -> usize {
    match grid.gates % 2 {
        0 => forward_quads(grid, tu, sequences),
        _ => TILE_QUADS,
    }
}

/// The f32 tiles' width and chunking for steps of `grid`, on an adapter with `most`
/// invocations and `storage` bytes of workgroup memory per workgroup. The width is `units`
/// where given, else the widest of 64 and 32 whose grid still has [`FULL_GRID`] workgroups
/// and whose tiles take the K slices, else 16, so a large GPU has work on every core; a
/// wider tile over deeper chunks, since every workgroup stages all of its sequences'
/// states or dgh each step (at four slices on the H100, 32-unit tiles in 32-row chunks
/// restage a quarter less in the backward than 16-unit tiles in 64-row ones:
/// BENCHMARKS.md, entry 48). The K slices are `k_split` where given, else the fewest of 1
/// and 2 whose tiles give [`BUSY_INVOCATIONS`], else 4: more warps where the grid is
/// small, for one reduction through workgroup memory a step. The chunks are
/// [`fit_chunks`]'s at that width: the deepest that fit, at most `rows`, the forward's
/// workgroups of [`forward_quads`]. All as `ask` says where it does.
pub fn plain_tiles(
    grid: StepGrid,
    ask: TileAsk,
    most: usize,
    storage: usize,
) -> (usize, PlainChunks) {
    let fit = |ks: usize, tu: usize| {
        let sq = forward_quads(grid, tu, ask.sequences);
        fit_chunks(ks, ask.rows, tu, grid.gates, sq, most, storage)
    };
    let at = |ks: usize| {
        let tu = ask.units.unwrap_or_else(|| {
            [64, 32]
                .into_iter()
                .find(|&tu| {
                    let c = fit(ks, tu);
                    grid.workgroups(tu) >= FULL_GRID && c.ks == ks
                })
                .unwrap_or(16)
        });
        (tu, fit(ks, tu))
    };
    match ask.k_split {
        Some(ks) => at(ks.max(1)),
        None => [1, 2]
            .into_iter()
            .map(at)
            .find(|(tu, c)| grid.workgroups(*tu) * 4 * tu * c.ks >= BUSY_INVOCATIONS)
            .unwrap_or_else(|| at(4)),
    }
}

/// Bytes of workgroup memory of the tensor-core steps (`shaders/step_coop.wgsl`) in tiles of
/// `tu` units at `ks` K slices: per slice its staged states (640 halves), its staged weights
/// (the larger of the forward's 16 rows of 4 `tu` + 8 halves and the backward's 32 of `tu` +
/// 8), both twice where `split` (hi and lo halves: f32 accuracy), and its 4 words of chunk
/// scales, and the hand-out's `tu` / 4 + 1 slots of 16 x 16 floats. At 64 units and one
/// slice what the tensor-core GEMM tile takes. A forward in tiles of `tu` / 2 units x 32
/// sequences ([`forward_quads`]) takes no more: twice the staged states, half the staged
/// weights, the same slots (`tests/shader_targets.rs`).
pub fn coop_step_bytes(tu: usize, ks: usize, split: bool) -> usize {
    let weights = (16 * (4 * tu + 8)).max(32 * (tu + 8));
    let copies = if split { 2 } else { 1 };
    ks * (2 * copies * (640 + weights) + 16) + (tu / 4 + 1) * 1024
}

/// The tensor-core steps' width and K slices for steps of `grid`, on an adapter with `most`
/// invocations and `storage` bytes of workgroup memory per workgroup: the width `units`
/// where given, else the widest of 64 and 32 whose grid has [`FULL_GRID`] workgroups, else
/// 16; the slices `k_split` where given, else the fewest of 1 and 2 that give
/// [`BUSY_INVOCATIONS`], else 4, as the f32 tiles take them ([`plain_tiles`]): each slice
/// walks its own share of the chunks, so a small grid has more warps per core to hide the
/// chunks' barriers and loads. Fewer slices where the adapter does not hold them (the
/// split products' twice the staging, `split`, among them), and for the split products
/// narrower tiles where not even one slice fits.
pub fn coop_tiles(
    grid: StepGrid,
    units: Option<usize>,
    k_split: Option<usize>,
    split: bool,
    most: usize,
    storage: usize,
) -> (usize, usize) {
    let tu = units.unwrap_or_else(|| {
        [64, 32]
            .into_iter()
            .find(|&tu| grid.workgroups(tu) >= FULL_GRID)
            .unwrap_or(16)
    });
    // The split staging of one slice of 64 units (36880 bytes) is more than some adapters
    // have: narrower tiles there (16 units take 12304).
    let tu = match split {
        true => [64, 32, 16]
            .into_iter()
            .filter(|&w| w <= tu)
            .find(|&w| coop_step_bytes(w, 1, true) <= storage)
            .unwrap_or(16),
        false => tu,
    };
    let fit = |asked: usize| {
        let mut ks = asked.clamp(1, 4);
        while ks > 1 && (4 * tu * ks > most || coop_step_bytes(tu, ks, split) > storage) {
            ks /= 2;
        }
        ks
    };
    let ks = match k_split {
        Some(ks) => fit(ks),
        None => [1, 2]
            .into_iter()
            .map(fit)
            .find(|&ks| grid.workgroups(tu) * 4 * tu * ks >= BUSY_INVOCATIONS)
            .unwrap_or_else(|| fit(4)),
    };
    (tu, ks)
}

#[cfg(test)]
mod tests {
    use super::super::TILED_STEP_WORKGROUP_BYTES;
    use super::{
        BUSY_INVOCATIONS, FULL_GRID, H100_WORKGROUP_BYTES, PlainChunks, SUITE_GRIDS, StepGrid,
        TILE_QUADS, TileAsk, WIDE_QUADS, coop_step_bytes, coop_tiles, forward_chunk, forward_quads,
        h100_tiles, half_weights_pay,
    };

    /// `super::plain_tiles` with the forward's sequences by the grid.
    fn plain_tiles(
        grid: StepGrid,
        units: Option<usize>,
        k_split: Option<usize>,
        rows: usize,
        most: usize,
        storage: usize,
    ) -> (usize, PlainChunks) {
        let ask = TileAsk {
            units,
            k_split,
            sequences: None,
            rows,
        };
        super::plain_tiles(grid, ask, most, storage)
    }

    /// `super::fit_chunks` with the forward in 16 sequences.
    fn fit_chunks(
        ks: usize,
        rows: usize,
        tu: usize,
        gates: usize,
        most: usize,
        storage: usize,
    ) -> PlainChunks {
        super::fit_chunks(ks, rows, tu, gates, TILE_QUADS, most, storage)
    }

    #[test]
    fn gated_forwards_take_32_sequences_in_tiles_of_half_the_units() {
        let grid = |name: &str| SUITE_GRIDS.iter().find(|c| c.0 == name).expect("suite").1;
        // By the grid on the H100: the LSTM's and GRU's forward in tiles of half the
        // backward's units over 32 sequences, the same workgroups and invocations; the
        // Elman forward, 16-unit tiles (charlm, small) and one sequence keep 16.
        for (name, tu, forward) in [
            ("flagship", 32, 16),
            ("gru4", 32, 16),
            ("bilstm", 32, 16),
            ("wide", 64, 32),
        ] {
            let g = grid(name);
            let (w, c) = h100_tiles(g, None, None, None);
            assert_eq!(
                (w, c.sq, c.forward_units(w)),
                (tu, WIDE_QUADS, forward),
                "{name}"
            );
            let fwd = g.hidden.div_ceil(forward) * g.batch.div_ceil(32) * g.dirs;
            assert_eq!(fwd, g.workgroups(w), "{name}");
            assert!(c.fwd.bytes() <= H100_WORKGROUP_BYTES, "{name}: {c:?}");
        }
        for name in ["tanh4", "charlm", "small", "batch1"] {
            assert_eq!(
                h100_tiles(grid(name), None, None, None).1.sq,
                TILE_QUADS,
                "{name}"
            );
        }
        // The flagship's forward at four slices: the same 16 k steps a chunk, in 41 KiB
        // (2048 vec4s of partial sums, 576 of states) instead of 45.
        let (_, c) = h100_tiles(grid("flagship"), None, None, None);
        assert_eq!((c.ks, c.fk, c.fwd.ws, c.fwd.ht), (4, 16, 2048, 576));
        let (_, before) = h100_tiles(grid("flagship"), None, None, Some(16));
        assert_eq!(
            (before.sq, before.fwd.ws, before.fwd.ht),
            (TILE_QUADS, 2560, 320)
        );
        // Asked: 16 always; 32 only where the tiles are at least 32 units wide and the cell
        // gated, at any batch.
        let flagship = grid("flagship");
        assert_eq!(forward_quads(flagship, 32, Some(16)), TILE_QUADS);
        assert_eq!(forward_quads(flagship, 16, Some(32)), TILE_QUADS);
        assert_eq!(forward_quads(grid("tanh4"), 32, Some(32)), TILE_QUADS);
        assert_eq!(forward_quads(grid("batch1"), 32, Some(32)), WIDE_QUADS);
        assert_eq!(forward_quads(grid("batch1"), 32, None), TILE_QUADS);
        // By default only where tiles of 32 pad the batch no more than tiles of 16.
        let at = |batch| forward_quads(StepGrid { batch, ..flagship }, 32, None);
        for (batch, quads) in [
            (16, 4),
            (17, 8),
            (32, 8),
            (40, 4),
            (48, 4),
            (56, 8),
            (64, 8),
        ] {
            assert_eq!(at(batch), quads, "{batch} sequences");
        }
        assert_eq!(
            forward_quads(
                StepGrid {
                    batch: 48,
                    ..flagship
                },
                32,
                Some(32)
            ),
            8
        );
    }

    #[test]
    fn k_slices_by_the_grid_give_the_small_grids_more_warps() {
        let (h100, lavapipe) = (49152, 32768);
        // (width, K slices, backward rows, forward k steps, invocations) on the H100.
        let chosen = |name: &str, k_split: Option<usize>, storage: usize| {
            let &(_, grid) = SUITE_GRIDS
                .iter()
                .find(|c| c.0 == name)
                .expect("a suite config");
            let (tu, c) = plain_tiles(grid, None, k_split, 64, 1024, storage);
            assert!(c.bytes() <= storage, "{name}: {c:?}");
            (tu, c.ks, c.rows, c.fk, grid.workgroups(tu) * 4 * tu * c.ks)
        };
        // One slice, as before entry 48: the widest tile that keeps 128 workgroups.
        assert_eq!(chosen("flagship", Some(1), h100), (32, 1, 64, 32, 16384));
        assert_eq!(chosen("wide", Some(1), h100), (64, 1, 64, 32, 65536));
        assert_eq!(chosen("tanh4", Some(1), h100), (32, 1, 64, 64, 16384));
        // By the grid: four slices wherever one leaves fewer than 16 warps per core, in
        // 32-unit tiles (32-row chunks: what 48 KiB hold of them) where those keep 128
        // workgroups, else 16-unit ones (64 rows); wide keeps one (it has them already).
        for name in ["flagship", "gru4", "tanh4", "bilstm"] {
            let (tu, ks, rows, _, inv) = chosen(name, None, h100);
            assert_eq!((tu, ks, rows), (32, 4, 32), "{name}");
            assert_eq!(inv, BUSY_INVOCATIONS, "{name}");
        }
        assert_eq!(chosen("flagship", None, h100), (32, 4, 32, 16, 65536));
        assert_eq!(chosen("tanh4", None, h100).3, 32);
        assert_eq!(chosen("charlm", None, h100), (16, 4, 64, 32, 32768));
        assert_eq!(chosen("wide", None, h100), chosen("wide", Some(1), h100));
        // small (16 workgroups) and batch1 (64: its matrix-vector products stand in by
        // default) take four slices too.
        assert_eq!(chosen("small", None, h100).1, 4);
        assert_eq!(chosen("batch1", None, h100).1, 4);
        // Lavapipe's 32 KiB: four slices of 32 units do not fit, so 16-unit tiles in 32-row
        // chunks, never fewer slices for a wider tile.
        assert_eq!(chosen("flagship", None, lavapipe), (16, 4, 32, 16, 65536));
        // Slices asked for take the same widths: 16-unit tiles only where asked.
        assert_eq!(chosen("flagship", Some(4), h100), (32, 4, 32, 16, 65536));
        // A grid that is busy at two slices stops there: 1024 units x 128 sequences in
        // 64-unit tiles (128 workgroups of 512 invocations).
        let two = StepGrid {
            hidden: 1024,
            batch: 128,
            dirs: 1,
            gates: 4,
        };
        let (tu, c) = plain_tiles(two, None, None, 64, 1024, h100);
        assert_eq!((tu, c.ks, c.rows), (64, 2, 64));
        assert_eq!(two.workgroups(tu) * 4 * tu * c.ks, BUSY_INVOCATIONS);
        assert!(two.workgroups(tu) >= FULL_GRID);
        // An asked width keeps its width, with the slices by its grid; asked slices are kept.
        let flagship = StepGrid {
            hidden: 1024,
            batch: 64,
            dirs: 1,
            gates: 4,
        };
        let (tu, c) = plain_tiles(flagship, Some(64), None, 64, 1024, h100);
        assert_eq!((tu, c.ks), (64, 2));
        let (tu, c) = plain_tiles(flagship, None, Some(2), 64, 1024, h100);
        assert_eq!((tu, c.ks, c.rows), (32, 2, 64));
        let (tu, c) = plain_tiles(flagship, Some(16), Some(4), 64, 1024, h100);
        assert_eq!((tu, c.ks, c.rows, c.fk), (16, 4, 64, 32));
        // An adapter with 256 invocations per workgroup: four slices of 16 units still fit.
        let (tu, c) = plain_tiles(flagship, None, None, 64, 256, h100);
        assert_eq!((tu, c.ks), (16, 4));
    }

    #[test]
    fn the_f16_weight_copy_is_made_where_it_pays() {
        // The suite's sequence lengths (../shared/device/suite.tsv): every configuration
        // but small saves more than the copy costs; small's 128-unit layer does not.
        let steps = [50, 100, 100, 100, 100, 50, 200, 100];
        for ((name, grid), steps) in SUITE_GRIDS.into_iter().zip(steps) {
            let pays = half_weights_pay(grid.weights(), grid.batch, steps);
            assert_eq!(pays, name != "small", "{name}");
        }
        // Generation's single steps, at one sequence or the flagship's 64, never pay; a
        // layer the size of the GPU tests' (65 units, 19 sequences, 7 steps) does not.
        let flagship = SUITE_GRIDS[2].1;
        assert!(!half_weights_pay(flagship.weights(), 1, 1));
        assert!(!half_weights_pay(flagship.weights(), 64, 1));
        assert!(!half_weights_pay(4 * 65 * 65, 19, 7));
    }

    #[test]
    fn tensor_core_tiles_take_k_slices_by_the_grid() {
        let (h100, lavapipe) = (H100_WORKGROUP_BYTES, 32768);
        let grid = |name: &str| {
            SUITE_GRIDS
                .iter()
                .find(|c| c.0 == name)
                .expect("a suite config")
                .1
        };
        let split_at = |name: &str, units, k_split, split, most, storage| {
            let (tu, ks) = coop_tiles(grid(name), units, k_split, split, most, storage);
            let bytes = |ks| coop_step_bytes(tu, ks, split);
            assert!(bytes(ks) <= storage.max(bytes(1)));
            (tu, ks)
        };
        let at = |name: &str, units, k_split, most, storage| {
            split_at(name, units, k_split, false, most, storage)
        };
        // One slice of 64 units is what the tensor-core GEMM tile takes.
        assert_eq!(
            coop_step_bytes(64, 1, false),
            super::super::gemm::GEMM_COOP_WORKGROUP_BYTES as usize
        );
        assert_eq!(coop_step_bytes(32, 4, false), 31808);
        assert_eq!(coop_step_bytes(32, 4, true), 54336);
        assert_eq!(coop_step_bytes(32, 2, true), 31776);
        // Split (hi and lo halves staged): the flagship's 32 units hold two slices in 48
        // KiB, charlm's 16 four; in lavapipe's 32 KiB two and two.
        assert_eq!(split_at("flagship", None, None, true, 1024, h100), (32, 2));
        assert_eq!(split_at("charlm", None, None, true, 1024, h100), (16, 4));
        assert_eq!(
            split_at("flagship", None, None, true, 1024, lavapipe),
            (32, 2)
        );
        assert_eq!(
            split_at("charlm", None, None, true, 1024, lavapipe),
            (16, 2)
        );
        // wide's one slice of 64 units split takes 36880 bytes: the H100 holds it, lavapipe
        // takes 32 units.
        assert_eq!(coop_step_bytes(64, 1, true), 36880);
        assert_eq!(split_at("wide", None, None, true, 1024, h100), (64, 1));
        assert_eq!(split_at("wide", None, None, true, 1024, lavapipe).0, 32);
        // On the H100 the widths of the f32 tiles at one slice, with four slices wherever
        // one leaves fewer than 16 warps per core; wide keeps one.
        for name in ["flagship", "gru4", "tanh4", "bilstm"] {
            assert_eq!(at(name, None, None, 1024, h100), (32, 4), "{name}");
        }
        for name in ["small", "charlm", "batch1"] {
            assert_eq!(at(name, None, None, 1024, h100), (16, 4), "{name}");
        }
        assert_eq!(at("wide", None, None, 1024, h100), (64, 1));
        // Asked: kept where they fit; 64 units hold two slices in 48 KiB, one in 32.
        assert_eq!(at("flagship", None, Some(1), 1024, h100), (32, 1));
        assert_eq!(at("flagship", Some(64), Some(4), 1024, h100), (64, 2));
        assert_eq!(at("flagship", Some(64), None, 1024, lavapipe), (64, 1));
        // Lavapipe's 32 KiB hold the flagship's four slices of 32 units; 256 invocations
        // a workgroup hold two.
        assert_eq!(at("flagship", None, None, 1024, lavapipe), (32, 4));
        assert_eq!(at("flagship", None, None, 256, h100), (32, 2));
    }

    #[test]
    fn forward_chunks_hold_the_rows_within_128_weight_rows() {
        // Elman (1 gate) takes the rows' depth as k steps; LSTM and GRU at most 32, 2 gates 64.
        assert_eq!(forward_chunk(64, 1), 64);
        assert_eq!(forward_chunk(32, 1), 32);
        assert_eq!(forward_chunk(16, 1), 16);
        assert_eq!(forward_chunk(64, 2), 64);
        assert_eq!(forward_chunk(64, 3), 32);
        assert_eq!(forward_chunk(64, 4), 32);
        assert_eq!(forward_chunk(32, 4), 32);
        assert_eq!(forward_chunk(16, 4), 16);
    }

    #[test]
    fn chunks_fit_the_workgroup_memory_and_the_adapter() {
        // (KS, rows, forward k steps) chosen, on the H100's 48 KiB of workgroup memory and
        // lavapipe's 32.
        let fit = |ks, tu, gates, most, storage| {
            let c = fit_chunks(ks, 64, tu, gates, most, storage);
            assert!(c.bytes() <= storage, "{c:?}");
            (c.ks, c.rows, c.fk)
        };
        let (h100, lavapipe) = (49152, 32768);
        // LSTM (4 gate rows), 16-unit tiles: four slices of 64 rows backward (1280 vec4s of
        // staged weights and 1280 of dgh, 40 KiB), of 32 k steps forward (2304 + 640, 46
        // KiB); lavapipe holds 32 rows and 16 k steps.
        assert_eq!(fit(4, 16, 4, 1024, h100), (4, 64, 32));
        assert_eq!(fit(4, 16, 4, 1024, lavapipe), (4, 32, 16));
        let c = fit_chunks(4, 64, 16, 4, 1024, h100);
        assert_eq!(
            (c.fwd.ws, c.fwd.ht, c.bwd.ws, c.bwd.ht),
            (2304, 640, 1280, 1280)
        );
        // 32-unit tiles keep four slices at 32 rows and 16 k steps on the H100 (the
        // forward's 2560 + 320 vec4s), two of 64 on lavapipe; 64-unit ones two slices of 64.
        assert_eq!(fit(4, 32, 4, 1024, h100), (4, 32, 16));
        assert_eq!(fit(4, 32, 4, 1024, lavapipe), (2, 64, 16));
        assert_eq!(fit(4, 64, 4, 1024, h100), (2, 64, 16));
        // Elman (1): the forward takes the rows' depth as k steps, so its states bound the
        // depth: 32 rows at four slices of 32 units.
        assert_eq!(fit(4, 32, 1, 1024, h100), (4, 32, 32));
        let c = fit_chunks(4, 64, 32, 1, 1024, h100);
        assert_eq!(
            (c.fwd.ws, c.fwd.ht, c.bwd.ws, c.bwd.ht),
            (1152, 640, 1152, 640)
        );
        // One slice of the flagship's 32-unit tiles: its forward 1152 + 160 vec4s, 20.5 KiB;
        // gru4's 32 k steps too; 64-unit tiles take 16 k steps on lavapipe.
        assert_eq!(fit_chunks(1, 64, 32, 4, 1024, h100).bytes(), 20992);
        assert_eq!(fit(1, 32, 3, 1024, h100), (1, 64, 32));
        assert_eq!(fit(1, 64, 4, 1024, h100), (1, 64, 32));
        assert_eq!(fit(1, 64, 4, 1024, lavapipe), (1, 64, 16));
        // An adapter with WebGPU's minimum of 256 invocations per workgroup, or fewer.
        assert_eq!(fit(4, 16, 4, 256, h100), (4, 64, 32));
        assert_eq!(fit(4, 16, 4, 128, h100), (2, 64, 32));
        assert_eq!(fit(4, 32, 1, 256, h100), (2, 64, 64));
        // Asked rows are kept where they fit (any other depth asked is taken down to 64, 32
        // or 16); one slice stays one; nothing asked is one.
        assert_eq!(fit_chunks(4, 16, 16, 4, 1024, h100).rows, 16);
        assert_eq!(fit_chunks(1, 48, 16, 4, 1024, h100).rows, 32);
        assert_eq!(fit_chunks(1, 0, 16, 4, 1024, h100).rows, 16);
        assert_eq!(fit(1, 32, 4, 1024, lavapipe), (1, 64, 32));
        assert_eq!(fit(0, 32, 4, 1024, lavapipe), (1, 64, 32));
        // One slice of 16 rows and 16 k steps is the floor, whatever the adapter (Tuning
        // requires the blocked loops' arrays of any adapter that runs tiles).
        let c = fit_chunks(4, 64, 64, 4, 1024, 16384);
        assert_eq!((c.ks, c.rows, c.fk), (1, 16, 16));
        // And wherever the blocked loops' arrays fit, so does the floor, and every chunking
        // chosen for one slice.
        let blocked = TILED_STEP_WORKGROUP_BYTES as usize;
        for (tu, gates, rows) in [16, 32, 64]
            .into_iter()
            .flat_map(|tu| (1..=4).flat_map(move |g| [16, 32, 64].map(|r| (tu, g, r))))
        {
            for sq in [TILE_QUADS, WIDE_QUADS] {
                let c = PlainChunks::of(1, 16, 16, tu, gates, sq);
                assert!(c.bytes() <= blocked, "{c:?}");
            }
            let c = fit_chunks(1, rows, tu, gates, 1024, blocked);
            assert!(c.bytes() <= blocked, "{c:?}");
        }
    }
}
