//! Instruction counts and shared-memory cycles of the kernels' hot loops as a GPU driver
//! gets them (`wgrnn::backend::wgpu::instructions`): each kernel of the flagship's, gru4's,
//! tanh4's and batch1's training steps, with the pipeline constants the host gives it on the
//! H100, under each set of runtime checks, after `spirv-opt -O`, as written and with the
//! loops of constant trip count unrolled. Prints BENCHMARKS.md's tables.
//!
//!     apt-get install -y spirv-tools              # spirv-opt, spirv-val
//!     cargo bench --bench instructions            # no GPU needed
//!     cargo bench --bench instructions -- --detail   # and each workgroup access's cycles
//!     cargo bench --bench instructions -- --loops    # and one pass of every innermost loop
//!
//! A second table counts, for each step kernel, the loads of its cell update that follow a
//! store into their own buffer (`tail_store_load_turns`: memory latencies in a row); a third
//! what the suite's f32 step tiles read from L2 a step (`traffic_table`). The tensor-core
//! kernels' chunks (`coop_table`, `-- --coop` alone) need a SPIRV-Tools that reads
//! SPV_KHR_cooperative_matrix: `cargo bench --bench instructions --features spirv-tools`.

use std::collections::HashMap;

use wgrnn::backend::wgpu::instructions::{
    Checks, code_size, hot_loop, hot_loop_banks, loops, optimize, optimize_unrolled, spirv,
    tail_store_load_turns,
};
use wgrnn::backend::wgpu::{
    H100_INVOCATIONS, H100_WORKGROUP_BYTES, PlainChunks, SUITE_GRIDS, StepGrid, TILE_QUADS,
    coop_forward_quads, coop_tiles, fit_chunks, forward_tile, h100_tiles, module_sources,
};

/// A kernel to count: the module's name (`module_sources`), the entry point and the values of
/// its pipeline constants, as the host sets them for `what`.
struct Case {
    module: &'static str,
    entry: &'static str,
    constants: Vec<(&'static str, f64)>,
    what: String,
}

/// A product tile (`gemm128`, `gemm256`) with A's k (`a_k`) or B's n contiguous.
fn gemm(tile: &'static str, a_k: bool, what: &str) -> Case {
    let (a, b) = if a_k { (1.0, 0.0) } else { (0.0, 1.0) };
    Case {
        module: tile,
        entry: tile,
        constants: vec![("A_K_CONTIGUOUS", a), ("B_N_CONTIGUOUS", b)],
        what: what.to_string(),
    }
}

/// The f32 tiles of a step: units, K slices asked, the forward's sequence quads, the
/// blocked or the plain loops; the chunks follow as the host's `fit_chunks` (or
/// `PlainChunks::blocked`) makes them on the H100, at the default 64 rows.
#[derive(Clone, Copy)]
struct Tiles {
    tu: usize,
    ks: usize,
    sq: usize,
    blocked: bool,
}

/// The tiles the host gives the steps of the suite configuration `name` (`SUITE_GRIDS`) on
/// the H100 (`plain_tiles`): width, K slices and the forward's sequences by the grid (the
/// defaults since entries 48 and 56), or `units`, `k_split` and `sequences`.
fn suite_tiles(
    name: &str,
    units: Option<usize>,
    k_split: Option<usize>,
    sequences: Option<usize>,
) -> Tiles {
    let grid = SUITE_GRIDS
        .iter()
        .find(|c| c.0 == name)
        .map(|c| c.1)
        .unwrap_or_else(|| panic!("{name} is no suite configuration"));
    let (tu, c) = h100_tiles(grid, units, k_split, sequences);
    Tiles {
        tu,
        ks: c.ks,
        sq: c.sq,
        blocked: false,
    }
}

/// The blocked loops (`--step-kernel blocked`): 32 units, one slice.
const BLOCKED: Tiles = Tiles {
    tu: 32,
    ks: 1,
    sq: TILE_QUADS,
    blocked: true,
};

/// A step entry of a cell's f32 tiles with cell option OPT0 (the LSTM's gate activation,
/// sigmoid, else 0), for the row `what` (followed by the tiles' width and slices).
fn tiles(module: &'static str, entry: &'static str, t: Tiles, what: &str) -> Case {
    let opt0 = if module.starts_with("lstm") { 3.0 } else { 0.0 };
    let gates = match module {
        m if m.starts_with("lstm_cell") => 4,
        m if m.starts_with("gru_cell") => 3,
        _ => 1,
    };
    let c = if t.blocked {
        PlainChunks::blocked(64, gates)
    } else {
        fit_chunks(
            t.ks,
            64,
            t.tu,
            gates,
            t.sq,
            H100_INVOCATIONS,
            H100_WORKGROUP_BYTES,
        )
    };
    let backward = entry.starts_with("bwd");
    let arrays = c.arrays(backward);
    let (tu, sq) = match backward {
        true => (t.tu, TILE_QUADS),
        false => (c.forward_units(t.tu), c.sq),
    };
    let what = if t.blocked {
        format!("{what}, blocked loops")
    } else if sq != TILE_QUADS {
        format!("{what}, TU {tu} x {} sequences, KS {}", 4 * sq, c.ks)
    } else {
        format!("{what}, TU {tu}, KS {}", c.ks)
    };
    Case {
        module,
        entry,
        constants: vec![
            ("OPT0", opt0),
            ("TU", tu as f64),
            ("KS", c.ks as f64),
            ("SQ", sq as f64),
            ("TB", (4 * sq) as f64),
            ("STEP_BLOCKED", if t.blocked { 1.0 } else { 0.0 }),
            ("BR", c.rows as f64),
            ("FK", c.fk as f64),
            ("WS", arrays.ws as f64),
            ("HT", arrays.ht as f64),
            // The suite's W_hh rows start 16-byte aligned (`Call::w_hh_vec4`).
            ("W4", 1.0),
        ],
        what,
    }
}

/// A step entry of the matrix-vector products at batch 1 (`Call::gemv_shape`: 8 units, 16
/// K slices, 4 sequences).
fn gemv(entry: &'static str, what: &str) -> Case {
    Case {
        module: "lstm_cell_gemv",
        entry,
        constants: vec![("OPT0", 3.0), ("TU", 8.0), ("KS", 16.0), ("TB", 4.0)],
        what: what.to_string(),
    }
}

/// The kernels of the flagship's, gru4's, tanh4's and batch1's training steps on the H100,
/// with the constants the host gives them (`plain_tiles`, `fit_chunks`), and the flagship's
/// under one K slice (the default before entry 48), under four in 16-unit tiles (64-row
/// chunks) and in the blocked loops; and the joined builds of the layer pipeline's steps
/// (`--wavefront`), each layer's parameters from its own `LP`.
fn cases() -> Vec<Case> {
    let (fwd, bwd) = ("fwd_step_tiled", "bwd_step_tiled");
    let lstm = suite_tiles("flagship", None, None, None);
    let (gru, elman) = (
        suite_tiles("gru4", None, None, None),
        suite_tiles("tanh4", None, None, None),
    );
    let sixteen = suite_tiles("flagship", None, None, Some(16));
    let one = suite_tiles("flagship", None, Some(1), None);
    let narrow = suite_tiles("flagship", Some(16), Some(4), None);
    vec![
        gemm("gemm128", true, "128x128 tile, x W^T (input projections)"),
        gemm("gemm128", false, "128x128 tile, dG^T H (weight gradients)"),
        gemm("gemm256", true, "256x128 tile, x W^T"),
        tiles("lstm_cell", fwd, lstm, "flagship forward step"),
        tiles("lstm_cell", fwd, sixteen, "flagship forward step"),
        tiles("lstm_cell", bwd, lstm, "flagship backward step"),
        tiles("lstm_cell", fwd, one, "flagship forward step"),
        tiles("lstm_cell", bwd, one, "flagship backward step"),
        tiles("lstm_cell", fwd, narrow, "flagship forward step"),
        tiles("lstm_cell", bwd, narrow, "flagship backward step"),
        tiles("lstm_cell", fwd, BLOCKED, "flagship forward step"),
        tiles("lstm_cell", bwd, BLOCKED, "flagship backward step"),
        tiles("gru_cell", fwd, gru, "gru4 forward step"),
        tiles("gru_cell", bwd, gru, "gru4 backward step"),
        tiles("elman_cell", fwd, elman, "tanh4 forward step"),
        tiles(
            "lstm_cell_joined",
            fwd,
            lstm,
            "flagship forward step joined",
        ),
        tiles(
            "lstm_cell_joined",
            bwd,
            lstm,
            "flagship backward step joined",
        ),
        tiles("gru_cell_joined", fwd, gru, "gru4 forward step joined"),
        tiles("gru_cell_joined", bwd, gru, "gru4 backward step joined"),
        tiles("elman_cell_joined", fwd, elman, "tanh4 forward step joined"),
        gemv(fwd, "batch1 forward step, matrix-vector"),
        gemv(bwd, "batch1 backward step, matrix-vector"),
    ]
}

/// The step kernels whose cell updates the second table counts: the table's, and the
/// Elman backward.
fn update_cases() -> Vec<Case> {
    let mut all: Vec<Case> = cases()
        .into_iter()
        .filter(|c| c.module.contains("_cell"))
        .collect();
    all.push(tiles(
        "elman_cell",
        "bwd_step_tiled",
        suite_tiles("tanh4", None, None, None),
        "tanh4 backward step",
    ));
    all
}

/// An L2 bandwidth to price the traffic at: about what microbenchmarks report for the H100;
/// an assumption, not a measurement.
const L2_BYTES_PER_S: f64 = 6e12;

/// What step tiles of `tu` units and `tb` sequences read from L2 a step for `grid`, in
/// bytes: (W_hh, the states, dgh). Every workgroup reads its units' rows of W_hh (so W_hh
/// once per `tb` sequences, at `weight_bytes` a weight) and stages all its sequences' states
/// (forward, H a sequence) or dgh (backward, gates x H) in f32, so each unit tile restages
/// them.
fn step_reads(grid: StepGrid, tu: usize, tb: usize, weight_bytes: f64) -> (f64, f64, f64) {
    let StepGrid {
        hidden,
        batch,
        dirs,
        gates,
    } = grid;
    let w = weight_bytes * (gates * hidden * hidden * batch.div_ceil(tb) * dirs) as f64;
    let tiles = (hidden.div_ceil(tu) * dirs * batch) as f64;
    (
        w,
        4.0 * tiles * hidden as f64,
        4.0 * tiles * (gates * hidden) as f64,
    )
}

/// The suite's configurations whose steps run in tiles by default (batch1 runs the
/// matrix-vector products).
fn tiled_suite() -> impl Iterator<Item = (&'static str, StepGrid)> {
    SUITE_GRIDS
        .into_iter()
        .filter(|(name, _)| *name != "batch1")
}

fn mib(bytes: f64) -> f64 {
    bytes / (1u64 << 20) as f64
}

/// Microseconds `bytes` take at [`L2_BYTES_PER_S`].
fn l2_us(bytes: f64) -> f64 {
    1e6 * bytes / L2_BYTES_PER_S
}

/// What the f32 step tiles read from L2 a step, forward and backward (`step_reads`), for
/// each suite configuration at its tiles by the grid (the default), with the forward in 16
/// sequences (before entry 56), at one K slice (before entry 48) and in 16-unit tiles at
/// four.
fn traffic_table() {
    println!(
        "\nL2 reads of the f32 step tiles a step (one layer and direction set; MiB): W_hh once \
         per 16 sequences (32 in a forward of tiles TU / 2 x 32), states (forward) or dgh \
         (backward) once per unit tile; time at an assumed {:.0} TB/s. \
         benches/instructions.rs\n",
        L2_BYTES_PER_S / 1e12
    );
    println!(
        "| config | tiles (TU, KS, rows; forward TU x TB) | workgroups x invocations | forward W_hh + states | backward W_hh^T + dgh | us at that bandwidth (fwd, bwd) |"
    );
    println!("|---|---|---|---|---|---|");
    for (name, grid) in tiled_suite() {
        for (what, units, k_split, seqs) in [
            ("by the grid", None, None, None),
            ("forward 16 sequences", None, None, Some(16)),
            ("one slice", None, Some(1), None),
            ("16 units", Some(16), Some(4), None),
        ] {
            let (tu, c) = h100_tiles(grid, units, k_split, seqs);
            let (fu, fb) = (c.forward_units(tu), c.forward_sequences());
            let (wf, states, _) = step_reads(grid, fu, fb, 4.0);
            let (w, _, dgh) = step_reads(grid, tu, 16, 4.0);
            println!(
                "| {name} | {what}: {tu}, {}, {}; {fu} x {fb} | {} x {} | {:.1} + {:.1} | {:.1} + {:.1} | {:.1}, {:.1} |",
                c.ks,
                c.rows,
                grid.workgroups(tu),
                4 * tu * c.ks,
                mib(wf),
                mib(states),
                mib(w),
                mib(dgh),
                l2_us(wf + states),
                l2_us(w + dgh),
            );
        }
    }
}

/// What the rounded tensor-core step tiles read from L2 a step (`step_reads`) at their H100
/// layout by the grid, with W_hh read from the f32 parameters (`--step-weights f32`) and
/// from its f16 copy (the default, entry 54), and the copy's own pass (it reads W_hh twice
/// and writes it once in f16, for the forward and again for the backward of a layer call),
/// spread over the call's `steps`.
fn coop_traffic_table(steps: usize) {
    println!(
        "\nL2 reads of the rounded tensor-core step tiles a step (MiB), W_hh from the f32 \
         parameters or its f16 copy; the copy's pass per step of a {steps}-step call in the \
         last column; time at an assumed {:.0} TB/s. benches/instructions.rs\n",
        L2_BYTES_PER_S / 1e12
    );
    println!(
        "| config | tensor tiles (TU, KS; forward TU x TB) | forward W_hh + states | backward W_hh^T + dgh | us (fwd, bwd) | f16 copy: forward | f16 copy: backward | f16 copy: us (fwd, bwd) | copy pass a step, us |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (name, grid) in tiled_suite() {
        let (tu, ks) = coop_tiles(grid, None, None, false, 1024, H100_WORKGROUP_BYTES);
        // The forward in tiles of half the units x 32 sequences where the LSTM's are.
        let sq = coop_forward_quads(grid, tu, None);
        let (fu, fb) = forward_tile(tu, sq);
        let (w32, states, _) = step_reads(grid, fu, fb, 4.0);
        let (w16, _, _) = step_reads(grid, fu, fb, 2.0);
        let (b32, _, dgh) = step_reads(grid, tu, 16, 4.0);
        let (b16, _, _) = step_reads(grid, tu, 16, 2.0);
        let weights = (grid.gates * grid.hidden * grid.hidden * grid.dirs) as f64;
        let copy = 10.0 * weights / steps as f64;
        println!(
            "| {name} | {tu}, {ks}; {fu} x {fb} | {:.1} + {:.1} | {:.1} + {:.1} | {:.1}, {:.1} | {:.1} + {:.1} | {:.1} + {:.1} | {:.1}, {:.1} | {:.2} |",
            mib(w32),
            mib(states),
            mib(b32),
            mib(dgh),
            l2_us(w32 + states),
            l2_us(b32 + dgh),
            mib(w16),
            mib(states),
            mib(b16),
            mib(dgh),
            l2_us(w16 + states),
            l2_us(b16 + dgh),
            l2_us(copy),
        );
    }
}

/// Where a step kernel's chunk loop runs on the H100: its configuration's grid, the tiles'
/// units and K slices, and whether it is the backward (32-row chunks) or the forward (16).
#[derive(Clone, Copy)]
struct StepRun {
    grid: StepGrid,
    tu: usize,
    ks: usize,
    backward: bool,
}

/// SMs of the H100 and their warp schedulers, each issuing one warp instruction a cycle at
/// an assumed 1.75 GHz.
const H100_SMS: usize = 132;
const SCHEDULERS: usize = 4;
const CYCLES_PER_US: f64 = 1750.0;

impl StepRun {
    /// The microseconds a step's chunk loops take to issue at `issued` instructions a pass:
    /// each scheduler's warps (a workgroup's KS x 4 TU / 32 warps over 4 schedulers, the
    /// workgroups in waves of 132) each walk their slice's chunks, one instruction a cycle;
    /// what the loops' latency, the cell update and L2 add is not in it.
    fn issue_us(self, issued: u32) -> f64 {
        let StepRun {
            grid,
            tu,
            ks,
            backward,
        } = self;
        let (inner, depth) = if backward {
            (grid.gates * grid.hidden, 32)
        } else {
            (grid.hidden, 16)
        };
        let chunks = inner.div_ceil(depth).div_ceil(ks);
        let warps = ks * 4 * tu / 32;
        let waves = grid.workgroups(tu).div_ceil(H100_SMS);
        let cycles = waves * warps.div_ceil(SCHEDULERS) * chunks * issued as usize;
        cycles as f64 / CYCLES_PER_US
    }
}

/// A tensor-core kernel to count (`Case`), with the matrix units' 16x16x16 products it
/// asks for: the GEMM tile (rounded or split) or a suite configuration's step tiles as the
/// host gives them on the H100 (`coop_tiles`; with where they run), rounded (f16 storage, as
/// `--precision f16` builds them; `w16`: reading the f16 copy of W_hh) or split (f32
/// storage).
fn coop_cases() -> Vec<(Case, Option<StepRun>)> {
    let gemm = |split: bool, a_k: bool, what: &str| {
        let (a, b) = if a_k { (1.0, 0.0) } else { (0.0, 1.0) };
        let case = Case {
            module: "gemm_coop",
            entry: "gemm_coop",
            constants: vec![
                ("A_K_CONTIGUOUS", a),
                ("B_N_CONTIGUOUS", b),
                ("SPLIT", split as u32 as f64),
            ],
            what: what.to_string(),
        };
        (case, None)
    };
    let step = |config: &str,
                cell: &str,
                entry: &'static str,
                split: bool,
                w16: bool,
                seqs: Option<usize>| {
        let grid = SUITE_GRIDS
            .iter()
            .find(|c| c.0 == config)
            .map(|c| c.1)
            .unwrap_or_else(|| panic!("{config} is no suite configuration"));
        let (tu, ks) = coop_tiles(grid, None, None, split, 1024, H100_WORKGROUP_BYTES);
        // The gated forwards' tiles of half the units x 32 sequences (entry 56).
        let sq = match entry.starts_with("fwd") {
            true => coop_forward_quads(grid, tu, seqs),
            false => TILE_QUADS,
        };
        let units = forward_tile(tu, sq).0;
        let module = match (cell, split) {
            ("lstm", false) => "lstm_cell_coop_f16",
            ("lstm", true) => "lstm_cell_coop",
            ("gru", false) => "gru_cell_coop_f16",
            ("gru", true) => "gru_cell_coop",
            (_, false) => "elman_cell_coop_f16",
            (_, true) => "elman_cell_coop",
        };
        let opt0 = if cell == "lstm" { 3.0 } else { 0.0 };
        let direction = if entry.starts_with("fwd") {
            "forward"
        } else {
            "backward"
        };
        let how = match (split, w16) {
            (true, _) => "split",
            (false, true) => "rounded, f16 copy of W_hh",
            (false, false) => "rounded, f32 W_hh",
        };
        let case = Case {
            module,
            entry,
            constants: vec![
                ("OPT0", opt0),
                ("TU", units as f64),
                ("KS", ks as f64),
                ("SQ", sq as f64),
                ("TB", (4 * sq) as f64),
                ("SPLIT", split as u32 as f64),
                ("W16", w16 as u32 as f64),
            ],
            what: match sq {
                TILE_QUADS => format!("{config} {direction} step, {how}, TU {tu}, KS {ks}"),
                _ => format!(
                    "{config} {direction} step, {how}, TU {units} x {} sequences, KS {ks}",
                    4 * sq
                ),
            },
        };
        let run = StepRun {
            grid,
            tu,
            ks,
            backward: direction == "backward",
        };
        (case, Some(run))
    };
    let (fwd, bwd) = ("fwd_step_tiled", "bwd_step_tiled");
    vec![
        gemm(false, true, "128x128 tensor tile, rounded, x W^T"),
        gemm(false, false, "128x128 tensor tile, rounded, dG^T H"),
        gemm(true, true, "128x128 tensor tile, split, x W^T"),
        gemm(true, false, "128x128 tensor tile, split, dG^T H"),
        step("flagship", "lstm", fwd, false, false, None),
        step("flagship", "lstm", fwd, false, true, None),
        step("flagship", "lstm", fwd, false, true, Some(16)),
        step("flagship", "lstm", fwd, true, false, None),
        step("flagship", "lstm", bwd, false, false, None),
        step("flagship", "lstm", bwd, false, true, None),
        step("flagship", "lstm", bwd, true, false, None),
        step("gru4", "gru", fwd, false, true, None),
        step("gru4", "gru", bwd, false, true, None),
        step("tanh4", "elman", fwd, false, true, None),
        step("tanh4", "elman", bwd, false, true, None),
    ]
}

/// The tensor-core kernels' chunk loops: per pass, the matrix products a subgroup asks of the
/// tensor cores and the instructions each invocation issues beside them (staging, scales,
/// loads, the products' scaling back), checked and unchecked, as written (spirv-opt's
/// unrolling is not tried on them). Needs a SPIRV-Tools that reads
/// SPV_KHR_cooperative_matrix (`--features spirv-tools` where the system's is older); without
/// one it says so and counts nothing.
fn coop_table(sources: &HashMap<&str, String>) {
    println!(
        "\nTensor-core kernels, per pass through the chunk loop of a subgroup: 16x16x16 \
         matrix products (mma) and the instructions each invocation issues beside them, \
         SPIR-V from naga after SPIRV-Tools' -O, as written; for the steps, how long a \
         step's chunk loops take to issue on the H100 at one instruction a cycle a \
         scheduler and 1.75 GHz (StepRun::issue_us; latency, the cell update and L2 not \
         in it). benches/instructions.rs\n"
    );
    println!(
        "| kernel | build | mma | multiply-adds | other float | integer | shared (matrix loads included) | global | barriers | branches | issued | issued per mma | issue-bound us a step |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (c, (case, run)) in coop_cases().iter().enumerate() {
        for checks in [Checks::Checked, Checks::Unchecked] {
            let tag = format!("coop-{c}-{}", checks.name());
            let words = spirv(&sources[case.module], case.entry, &case.constants, checks)
                .and_then(|w| optimize(&w, &tag));
            let hot = match words {
                Ok(w) => hot_loop(&w).unwrap_or_default(),
                Err(why) => {
                    println!(
                        "\n(not counted: {why}; `cargo bench --bench instructions \
                         --features spirv-tools` compiles a SPIRV-Tools that reads them)"
                    );
                    return;
                }
            };
            let us = run.map_or(String::new(), |r| {
                format!("{:.1}", r.issue_us(hot.issued()))
            });
            println!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} | {us} |",
                case.what,
                checks.name(),
                hot.mma,
                hot.fma,
                hot.float,
                hot.int,
                hot.shared,
                hot.global,
                hot.barriers,
                hot.branches,
                hot.issued(),
                hot.issued() as f64 / hot.mma.max(1) as f64,
            );
        }
    }
}

/// A build of a kernel: its checks, and whether loops with a constant trip count are
/// unrolled first (what a driver that unrolls them compiles: the hot loop is then a whole
/// chunk of the kernel, its staging and global loads included).
const BUILDS: [(Checks, bool); 6] = [
    (Checks::Counted, false),
    (Checks::Checked, false),
    (Checks::NoRba2, false),
    (Checks::Unchecked, false),
    (Checks::Checked, true),
    (Checks::Unchecked, true),
];

fn main() {
    // `-- --detail`: each workgroup access's cycles under the table's rows.
    let detail = std::env::args().any(|a| a == "--detail");
    // `-- --loops`: one pass of each innermost loop under the table's rows (staging loops,
    // reductions: what runs beside the hot loop).
    let all_loops = std::env::args().any(|a| a == "--loops");
    // `-- --traffic`: the L2 traffic table alone (no SPIR-V tools needed).
    if std::env::args().any(|a| a == "--traffic") {
        traffic_table();
        coop_traffic_table(100);
        return;
    }
    let sources: HashMap<&str, String> = module_sources().into_iter().collect();
    // `-- --coop`: the tensor-core kernels' table alone.
    if std::env::args().any(|a| a == "--coop") {
        coop_table(&sources);
        return;
    }
    println!(
        "Per pass through each kernel's hot loop (its innermost loop with the most \
         multiply-adds; where it branches, the arm doing the most work by its fast path): \
         instructions issued, SPIR-V from naga after spirv-opt -O, loop-invariant arithmetic \
         left out; cycles of the SM's shared-memory pipe per warp; and the multiply-adds' \
         share of the SM's peak those allow, fma / max(issued, 4 cycles); and the whole \
         kernel's code, each instruction once (what an instruction cache holds). \
         benches/instructions.rs\n"
    );
    println!(
        "| kernel | build | multiply-adds | other float | integer | shared | global | branches | issued | multiply-add share | shared-pipe cycles (without conflicts) | peak share bound | code |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (c, case) in cases().iter().enumerate() {
        let src = &sources[case.module];
        for (checks, unrolled) in BUILDS {
            let tag = format!("{c}-{}", checks.name());
            let words = spirv(src, case.entry, &case.constants, checks).and_then(|w| {
                if unrolled {
                    optimize_unrolled(&w, &tag)
                } else {
                    optimize(&w, &tag)
                }
            });
            let (hot, banks, code, passes) = match words {
                Ok(w) => (
                    hot_loop(&w).unwrap_or_default(),
                    hot_loop_banks(&w).unwrap_or_default(),
                    code_size(&w),
                    loops(&w),
                ),
                Err(why) => {
                    eprintln!("{}: {why}", case.what);
                    std::process::exit(1);
                }
            };
            let build = if unrolled {
                format!("{}, unrolled", checks.name())
            } else {
                checks.name().to_string()
            };
            // An SM issues 4 warp instructions a cycle and moves one register per lane of a
            // warp a cycle through its shared-memory pipe.
            let bound = hot.fma as f64 / (hot.issued() as f64).max(4.0 * banks.cycles).max(1.0);
            let unresolved = match banks.unresolved {
                0 => String::new(),
                n => format!(" ({n} unresolved)"),
            };
            println!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.0}% | {:.1} ({:.1}){} | {:.0}% | {} |",
                case.what,
                build,
                hot.fma,
                hot.float,
                hot.int,
                hot.shared,
                hot.global,
                hot.branches,
                hot.issued(),
                100.0 * hot.fma as f64 / hot.issued().max(1) as f64,
                banks.cycles,
                banks.floor,
                unresolved,
                100.0 * bound,
                code,
            );
            if all_loops {
                for (i, m) in passes.iter().enumerate() {
                    println!(
                        "    loop {i}: {} issued ({} multiply-adds, {} other float, {} integer, {} shared, {} global, {} branches)",
                        m.issued(),
                        m.fma,
                        m.float,
                        m.int,
                        m.shared,
                        m.global,
                        m.branches
                    );
                }
            }
            if detail {
                for (i, a) in banks.each.iter().enumerate() {
                    let kind = if a.load { "load" } else { "store" };
                    let cost = match a.cycles {
                        Some((c, f)) => format!("{c:.1} cycles ({f:.1} without conflicts)"),
                        None => "unresolved".to_string(),
                    };
                    println!("    access {i}: {kind} of {} bytes: {cost}", a.bytes);
                }
            }
        }
    }
    println!(
        "\nCell updates (after each step kernel's last barrier): loads that follow, in \
         program order, a store into their own buffer, which a compiler keeps behind it \
         (one memory latency each, in a row); the checked build with loops of constant trip \
         count unrolled. A loop left rolled is read once, and code behind a branch (step 0's \
         copy of the initial state) counts as taken. benches/instructions.rs\n"
    );
    println!("| kernel | store -> load turns |");
    println!("|---|---|");
    for (c, case) in update_cases().iter().enumerate() {
        let tag = format!("turns-{c}");
        let words = spirv(
            &sources[case.module],
            case.entry,
            &case.constants,
            Checks::Checked,
        )
        .and_then(|w| optimize_unrolled(&w, &tag));
        match words {
            Ok(w) => println!("| {} | {} |", case.what, tail_store_load_turns(&w)),
            Err(why) => {
                eprintln!("{}: {why}", case.what);
                std::process::exit(1);
            }
        }
    }
    coop_table(&sources);
    traffic_table();
    coop_traffic_table(100);
}
