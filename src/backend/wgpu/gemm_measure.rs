//! Matrix-product tiles chosen by measurement, as `torch.backends.cudnn.benchmark` chooses
//! cuDNN's algorithms: the first time a large product of a shape is recorded, every tile
//! that can run it is timed on operands of that shape and layout, and the fastest takes
//! every product of that shape's class ([`Shape::class`]) for the rest of the run.
//!
//! Which tile is fastest depends on the GPU (its registers, its workgroup memory, whether it
//! has matrix units, how its compiler treats each tile's code) and on the shape (how well a
//! tile's grid fills the device), and the products are most of a large network's step
//! (BENCHMARKS.md, "Where the time must go": two thirds of the flagship's FLOPs). Rules
//! written on one machine cannot know another's; measuring takes each adapter's own best,
//! at the price of a few products per shape in a run's first step. The candidates keep the
//! accuracy asked for: at f32 the 64x64, 128x128 and 256x128 tiles and, where the adapter
//! has matrix units, the tensor-core tile in split f16 halves (f32 accuracy, entry 52);
//! the tile that rounds its operands to f16 only where reduced precision allows it.
//!
//! Where the autotune table is on, measurements are kept beside it
//! (`autotune::product_tiles_path`, per adapter and version of wgrnn), so a later run takes
//! them without measuring, and every process of a device session compares its kernels
//! with the same product tiles.
//!
//! `GemmTiles::Auto` measures on an adapter that is a GPU, from [`MIN_MACS`] multiply-adds;
//! `GemmTiles::Measured` on any adapter at any size (tests, on lavapipe); `GemmTiles::Rules`
//! never. Which tile a run measured fastest can change the last bits of its results from
//! one machine (or run) to the next, as the choice of a cuDNN algorithm does.

use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::autotune::AdapterKey;
use super::measured::{self, Classed, fastest};

use super::gemm::{
    GemmTiles, Mat, Out, Product, Tile, big_tile_layout, record_in, runnable, split_tile_runs,
    tile_builds,
};
use super::runtime::{Gpu, GpuBuffer};

/// The fewest multiply-adds (m n k) of a product whose tile `GemmTiles::Auto` measures
/// (about 20 us at the 26 TFLOP/s the H100 gave the 128x128 tile's twin): smaller products
/// cost little in any tile, and take the rules'.
pub const MIN_MACS: usize = 1 << 28;

/// Most bytes of operands a measurement allocates (A, B and C at the product's shape);
/// a larger product takes the rules' tile.
pub const MAX_SCRATCH_BYTES: usize = 1 << 29;

/// How long each candidate's timed run should last at least: long enough that the wall
/// clock around a submission measures the kernels, not the submission.
const TIMED_SECONDS: f64 = 5e-3;

/// Most products in one timed run.
const MAX_REPS: usize = 16;

/// What a measured tile is kept for: a product's sizes, the layout of its operands (the
/// large tiles' constants) and whether B is f16.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Shape {
    /// Rows of A and C.
    pub m: usize,
    /// Columns of B and C.
    pub n: usize,
    /// Columns of A, rows of B.
    pub k: usize,
    /// A's k index is its contiguous one (row-major A).
    pub a_k: bool,
    /// B's n index is its contiguous one (row-major B).
    pub b_n: bool,
    /// B is an f16 buffer (an f16 layer cache).
    pub b16: bool,
}

impl Shape {
    /// The shape of `p` where `gpu` measures its tile ([`Gpu::measures_products`]): its
    /// operands allow the large tiles, it is large enough, and its operands fit the
    /// adapter's bindings and [`MAX_SCRATCH_BYTES`].
    pub(super) fn to_measure(gpu: &Gpu, p: &Product<'_>) -> Option<Shape> {
        let all_sizes = gpu.measures_products()?;
        let (m, n, k) = (p.m, p.n, p.k);
        let macs = m.saturating_mul(n).saturating_mul(k);
        if macs == 0 || (!all_sizes && macs < MIN_MACS) {
            return None;
        }
        let (a_k, b_n) = big_tile_layout(GemmTiles::Big, m, n, &p.a, &p.b, &p.c)?;
        let b16 = p.b.buf.is_f16();
        let limits = gpu.limits();
        let most = limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size) as usize;
        let b_bytes = k * n * if b16 { 2 } else { 4 };
        let sizes = [4 * m * k, b_bytes, 4 * m * n];
        let fits =
            sizes.iter().all(|&s| s <= most) && sizes.iter().sum::<usize>() <= MAX_SCRATCH_BYTES;
        fits.then_some(Shape {
            m,
            n,
            k,
            a_k,
            b_n,
            b16,
        })
    }
}

impl Classed for Shape {
    type Class = (usize, usize, usize, bool, bool, bool);

    /// The products a measurement of this shape also serves: those of the same layout and
    /// `n` (a width of the network) whose `m` and `k` (which may count rows, steps x
    /// sequences) round up to the same powers of two, so that the buckets of a training
    /// run, each of its own length, measure a few times rather than once each.
    fn class(&self) -> (usize, usize, usize, bool, bool, bool) {
        let (m, k) = (self.m.next_power_of_two(), self.k.next_power_of_two());
        (m, self.n, k, self.a_k, self.b_n, self.b16)
    }

    /// `m x n x k`, and the operands' layouts where they are transposed.
    fn label(&self) -> String {
        let mut s = format!("{}x{}x{}", self.m, self.n, self.k);
        if !self.a_k {
            s.push_str(" A^T");
        }
        if !self.b_n {
            s.push_str(" B^T");
        }
        if self.b16 {
            s.push_str(" B f16");
        }
        s
    }
}

/// One measurement: each candidate tile's time for a product of `shape` (its seconds per
/// product, as the adapter ran it), and the fastest. Its candidates are the tiles it serves
/// the choice among ([`candidates`], as they stood after it); `stored` where it was read
/// from the file of an earlier run ([`Gpu::set_product_tiles_file`]).
pub type Race = measured::Race<Shape, Tile>;

impl Race {
    /// One line: the shape, each tile's time, the chosen one first.
    pub fn label(&self) -> String {
        self.line(|t| tile_name(t).to_string())
    }
}

/// A tile's name as `--gemm` gives it.
pub fn tile_name(t: Tile) -> &'static str {
    t.choice().name()
}

/// The tile [`tile_name`] names, with the large tiles' layout constants.
pub fn tile_named(name: &str, a_k: bool, b_n: bool) -> Option<Tile> {
    let (a, b) = (a_k, b_n);
    [
        Tile::Small,
        Tile::Big(a, b),
        Tile::Tall(a, b),
        Tile::Tensor(a, b),
        Tile::TensorSplit(a, b),
    ]
    .into_iter()
    .find(|&t| tile_name(t) == name)
}

/// The tile products of `shape` take on `gpu`: the one measured fastest for its
/// [`Shape::class`], measuring it now on `shape` if this is the first product of the
/// class.
pub(super) fn chosen(gpu: &Gpu, shape: Shape) -> Tile {
    let tiles = candidates(gpu, &shape);
    let key = || AdapterKey::of(gpu.info());
    let read = || Some(load(&gpu.product_tiles_file()?, &key()));
    if let Some(t) = gpu.measured_tile(&shape, &tiles, read) {
        return t;
    }
    let file = gpu.product_tiles_file();
    let mut race = gpu.aside(|| measure(gpu, shape, tiles));
    // Kept for the candidates as they stand now: a tile given up while it was timed (the
    // tensor cores, where their kernel does not build) is one no longer.
    race.candidates = candidates(gpu, &shape);
    if let Some(path) = &file {
        store(path, &key(), &race);
    }
    let t = race.chosen;
    gpu.keep_race(race);
    t
}

/// What the file of measured tiles calls them (warnings).
const KEPT: &str = "product tiles";

/// The measurements in the file at `path` for `adapter` by this version of wgrnn, where
/// their tiles are ones this version names.
fn load(path: &Path, adapter: &AdapterKey) -> Vec<Race> {
    measured::load::<Shape, String>(path, KEPT, adapter)
        .into_iter()
        .filter_map(|s| {
            let (a, b) = (s.shape().a_k, s.shape().b_n);
            s.race(|name: &String| tile_named(name, a, b))
        })
        .collect()
}

/// Adds `race` to the file at `path` for `adapter`, its tiles by their `--gemm` names
/// (`measured::store`).
fn store(path: &Path, adapter: &AdapterKey, race: &Race) {
    let stored = race.stored(adapter, |t| tile_name(t).to_string());
    measured::store(path, KEPT, stored);
}

/// The tiles that can run products of `shape` on `gpu` at the accuracy asked for, each
/// once as the adapter runs it (a tile it cannot run falls back to one already listed;
/// one whose pipeline the driver refuses is left out).
pub fn candidates(gpu: &Gpu, shape: &Shape) -> Vec<Tile> {
    let (a, b) = (shape.a_k, shape.b_n);
    let mut all = vec![Tile::Small, Tile::Big(a, b), Tile::Tall(a, b)];
    if split_tile_runs(gpu) {
        all.push(Tile::TensorSplit(a, b));
    }
    if gpu.auto_tensor() {
        all.push(Tile::Tensor(a, b));
    }
    let mut out: Vec<Tile> = Vec::new();
    for t in all.into_iter().map(|t| runnable(gpu, t)) {
        if !out.contains(&t) && tile_builds(gpu, t, shape.b16) {
            out.push(t);
        }
    }
    out
}

/// Times each of `tiles` ([`candidates`]) on products of `shape` (operands of varied
/// values in the shape's layout, outside the buffer pool) and returns them with the
/// fastest.
fn measure(gpu: &Gpu, shape: Shape, tiles: Vec<Tile>) -> Race {
    let operands = Operands::new(gpu, shape);
    let product = operands.product();
    // Seconds per product over `reps` products in one submission, waited for.
    let run = |tile: Tile, reps: usize| {
        let start = Instant::now();
        for _ in 0..reps {
            record_in(gpu, &[product], tile);
        }
        gpu.flush();
        gpu.wait();
        start.elapsed().as_secs_f64() / reps as f64
    };
    let times = measured::time_in_turns(&tiles, TIMED_SECONDS, MAX_REPS, run);
    operands.free(gpu);
    // A tile the adapter gave up on while it ran (the tensor cores, if their kernel did
    // not compile) is timed as the tile that ran instead.
    let times: Vec<(Tile, f64)> = times
        .into_iter()
        .map(|(t, s)| (runnable(gpu, t), s))
        .collect();
    let chosen = fastest(&times).unwrap_or(Tile::Small);
    Race {
        shape,
        candidates: tiles,
        times,
        chosen,
        stored: false,
    }
}

/// A product's operands at a shape, A and B of varied values ([`pattern`]), outside the
/// buffer pool ([`Gpu::scratch`]): what a measurement times, and `wgrnn bench --products`.
pub struct Operands {
    shape: Shape,
    a: GpuBuffer,
    b: GpuBuffer,
    c: GpuBuffer,
}

impl Operands {
    /// A [m, k] and B [k, n] laid out as `shape` says (B in f16 where it says so), and C
    /// [m, n] row-major, contents undefined.
    pub fn new(gpu: &Gpu, shape: Shape) -> Operands {
        let Shape { m, n, k, b16, .. } = shape;
        let a = gpu.scratch(m * k, false);
        gpu.write(&a, &pattern(m * k, 1));
        let b = gpu.scratch(k * n, b16);
        match b16 {
            true => gpu.write(&b, &pattern_f16(k * n, 2)),
            false => gpu.write(&b, &pattern(k * n, 2)),
        }
        let c = gpu.scratch(m * n, false);
        Operands { shape, a, b, c }
    }

    /// C = A B over them (no scale, accumulation or bias).
    pub fn product(&self) -> Product<'_> {
        let Shape {
            m, n, k, a_k, b_n, ..
        } = self.shape;
        Product {
            m,
            n,
            k,
            a: match a_k {
                true => Mat::rows(&self.a, 0, k),
                false => Mat::t(&self.a, 0, m),
            },
            b: match b_n {
                true => Mat::rows(&self.b, 0, n),
                false => Mat::t(&self.b, 0, k),
            },
            c: Out {
                buf: &self.c,
                off: 0,
                rs: n,
            },
            alpha: 1.0,
            accumulate: false,
            bias: None,
        }
    }

    /// Gives their memory back to the device ([`Gpu::forget_scratch`]).
    pub fn free(self, gpu: &Gpu) {
        gpu.forget_scratch(vec![self.a, self.b, self.c]);
    }
}

/// Operand values: varied, in [-1, 1], the same each run.
pub fn pattern(n: usize, seed: u64) -> Vec<f32> {
    (0..n as u64)
        .map(|i| {
            let h = (i ^ seed).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
            (h % 2001) as f32 / 1000.0 - 1.0
        })
        .collect()
}

/// [`pattern`] in f16.
fn pattern_f16(n: usize, seed: u64) -> Vec<half::f16> {
    pattern(n, seed)
        .into_iter()
        .map(half::f16::from_f32)
        .collect()
}
