//! The matrix products of `shaders/gemm.wgsl`, `shaders/gemm128.wgsl` and
//! `shaders/gemm256.wgsl`: input projections of all steps at once, weight gradients summed
//! over all steps, the head. Operands are views into flat buffers given by an offset and
//! row/column strides, so transposes cost nothing.
//! Large products with vec4-aligned operands take the 128x128 tile (on the matrix units where
//! the adapter has them and reduced precision was asked for, or at f32 accuracy in split f16
//! halves, or the 256x128 one, where asked for); the rest the 64x64 one. Products of one
//! shape and layout over the same buffers can share a dispatch ([`Products`]).

use std::cell::{Cell, RefCell};

use super::codegen::{self, CoopOps, StorageVariants};
use super::gemm_measure;
use super::runtime::{Gpu, GpuBuffer, MAX_GROUPS, Shader};

/// The 64x64 tile, for an f32 or an f16 B operand.
pub(super) static GEMM: StorageVariants = StorageVariants::new(
    ["gemm", "gemm_b16"],
    "BT",
    include_str!("../../../shaders/gemm.wgsl"),
);

pub(super) static COLSUM: Shader = Shader {
    name: "colsum",
    source: include_str!("../../../shaders/colsum.wgsl"),
};

/// `shaders/gemm128.wgsl` after the operand loads it shares with the other large tiles and
/// the staging and stores it shares with the 256x128 one.
const GEMM128_WGSL: &str = concat!(
    include_str!("../../../shaders/gemm_operands.wgsl"),
    include_str!("../../../shaders/gemm_tile_io.wgsl"),
    include_str!("../../../shaders/gemm128.wgsl")
);

/// `shaders/gemm256.wgsl` after the operand loads it shares with the other large tiles and
/// the staging and stores it shares with the 128x128 one.
const GEMM256_WGSL: &str = concat!(
    include_str!("../../../shaders/gemm_operands.wgsl"),
    include_str!("../../../shaders/gemm_tile_io.wgsl"),
    include_str!("../../../shaders/gemm256.wgsl")
);

/// The 256x128 tile, for an f32 or an f16 B operand, its `// @generate` lines expanded
/// (see [`gemm256_source`]).
pub(super) static GEMM256: StorageVariants =
    StorageVariants::new(["gemm256", "gemm256_b16"], "BT", GEMM256_WGSL);

/// `shaders/gemm_coop.wgsl` after the operand loads it shares with the 128x128 tile and the
/// chunk scales it shares with the tensor-core step products (and their exponent rule with
/// the f16 copy of the recurrent weights).
const GEMM_COOP_WGSL: &str = concat!(
    include_str!("../../../shaders/gemm_operands.wgsl"),
    include_str!("../../../shaders/f16_range.wgsl"),
    include_str!("../../../shaders/coop_scale.wgsl"),
    include_str!("../../../shaders/gemm_coop.wgsl")
);

/// The 128x128 tile, for an f32 or an f16 B operand, its `// @generate` lines expanded
/// (see [`gemm128_source`]).
pub(super) static GEMM128: StorageVariants =
    StorageVariants::new(["gemm128", "gemm128_b16"], "BT", GEMM128_WGSL);

/// The 128x128 tensor-core tile, for an f32 or an f16 B operand (see [`gemm_coop_source`]).
pub(super) static GEMM_COOP: StorageVariants =
    StorageVariants::new(["gemm_coop", "gemm_coop_b16"], "BT", GEMM_COOP_WGSL);

/// The tensor-core tile with its matrix operations emulated in plain WGSL, for adapters
/// without matrix units (`Gpu::set_tensor_emulation`: tests).
pub(super) static GEMM_COOP_EMULATED: StorageVariants = StorageVariants::with_coop(
    ["gemm_coop_emulated", "gemm_coop_emulated_b16"],
    "BT",
    concat!(
        include_str!("../../../shaders/gemm_operands.wgsl"),
        include_str!("../../../shaders/f16_range.wgsl"),
        include_str!("../../../shaders/coop_scale.wgsl"),
        include_str!("../../../shaders/gemm_coop.wgsl"),
        include_str!("../../../shaders/coop_emulated.wgsl")
    ),
    CoopOps::Emulated,
);

/// Which tile the matrix products use (`--gemm`).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
pub enum GemmTiles {
    /// On an adapter that is a GPU, the large products' tiles measured
    /// (`gemm_measure`: each tile that can run a product of at least
    /// [`gemm_measure::MIN_MACS`] multiply-adds timed on that shape the first time one is
    /// recorded, the fastest kept); on a CPU adapter (lavapipe), and for smaller products,
    /// the rules of `Rules`.
    #[default]
    Auto,
    /// 128x128 where the operands allow it and the grid has at least [`MIN_BIG_TILES`]
    /// tiles, else 64x64 (on the matrix units under reduced precision where the adapter
    /// has them): no measuring, so the same tiles on every run.
    Rules,
    /// As `Auto`, measuring on any adapter and at any size where the operands allow the
    /// large tiles (tests measure on lavapipe with it).
    Measured,
    /// Always the 64x64 tile (`gemm.wgsl`).
    Small,
    /// 128x128 wherever the operands allow it, whatever the size.
    Big,
    /// The 256x128 tile (`gemm256.wgsl`: 16x8 outputs per invocation) wherever the operands
    /// allow it, whatever the size; to measure against `Big` before `Auto` takes it.
    Tall,
    /// The 128x128 tensor-core tile (`gemm_coop.wgsl`: operands rounded to f16, f32 sums)
    /// wherever the operands allow it, whatever the size; only on adapters with
    /// [`Gpu::has_tensor_cores`] (elsewhere as `Big`).
    Tensor,
    /// The tensor-core tile at f32 accuracy (`gemm_coop.wgsl` with SPLIT: each operand
    /// staged as two f16 halves, three matrix products per step) wherever the operands
    /// allow it; only on adapters with [`Gpu::has_tensor_cores`] and
    /// [`GEMM_COOP_SPLIT_WORKGROUP_BYTES`] of workgroup memory (elsewhere as `Big`).
    TensorSplit,
}

impl GemmTiles {
    /// The choice as `--gemm` names it (`tensor-split`).
    pub fn name(self) -> &'static str {
        match self {
            GemmTiles::Auto => "auto",
            GemmTiles::Rules => "rules",
            GemmTiles::Measured => "measured",
            GemmTiles::Small => "small",
            GemmTiles::Big => "big",
            GemmTiles::Tall => "tall",
            GemmTiles::Tensor => "tensor",
            GemmTiles::TensorSplit => "tensor-split",
        }
    }
}

/// Workgroup memory of the 128x128 tile (two staging buffers for A and for B); adapters
/// with less take the 64x64 tile.
pub const GEMM128_WORKGROUP_BYTES: u32 = 32 * 1024;

/// Workgroup memory of the 256x128 tile (two staging buffers for A and for B, 8 deep).
pub const GEMM256_WORKGROUP_BYTES: u32 = 24 * 1024;

/// The fewest 128x128 tiles for which `Auto` takes the big tile: below it the 64x64 tile's
/// four times as many workgroups fill a large GPU better.
pub const MIN_BIG_TILES: usize = 128;

/// `shaders/gemm128.wgsl` (after `shaders/gemm_operands.wgsl`) with its `// @generate` lines
/// replaced by unrolled code (`codegen`): the 16 vec4 accumulators, their 16 multiply-adds per
/// k step, their 16 stores.
pub fn gemm128_source() -> String {
    codegen::expand(GEMM128_WGSL)
}

/// `shaders/gemm256.wgsl` (after `shaders/gemm_operands.wgsl`) with its `// @generate` lines
/// replaced by unrolled code (`codegen`): the 32 vec4 accumulators, their 32 multiply-adds per
/// k step, their 32 stores.
pub fn gemm256_source() -> String {
    codegen::expand(GEMM256_WGSL)
}

/// The tensor-core tile as the device compiles it (`Shader::module_source`):
/// `shaders/gemm_coop.wgsl` after `shaders/gemm_operands.wgsl`, its `// @generate` lines
/// expanded (the 8 cooperative-matrix accumulators, their loads and multiply-adds, their
/// stores). `b16`: the build for an f16 B operand. Adapters without cooperative matrices
/// cannot compile it, so tests validate it with naga directly.
pub fn gemm_coop_source(b16: bool) -> String {
    GEMM_COOP.get(b16).module_source()
}

/// Workgroup memory of the tensor-core tile (f16 staging of A and B, one f32 16x16 slot per
/// subgroup, four atomic scale words).
pub const GEMM_COOP_WORKGROUP_BYTES: u32 = 27152;

/// Workgroup memory of the split tensor-core tile (`GemmTiles::TensorSplit`): the tile's,
/// with A and B staged twice.
pub const GEMM_COOP_SPLIT_WORKGROUP_BYTES: u32 = GEMM_COOP_WORKGROUP_BYTES + 2 * (5120 + 4352);

/// Whether `gpu` runs the split tensor-core tile (`GemmTiles::TensorSplit`): matrix units,
/// and the tile's workgroup memory in what the kernels are laid out for.
pub fn split_tile_runs(gpu: &Gpu) -> bool {
    gpu.has_tensor_cores() && gpu.workgroup_storage() >= GEMM_COOP_SPLIT_WORKGROUP_BYTES
}

/// The tile a product takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tile {
    /// `gemm.wgsl`'s 64x64.
    Small,
    /// `gemm128.wgsl`'s 128x128, with its two layout constants (A's k stride is 1, B's n
    /// stride is 1).
    Big(bool, bool),
    /// `gemm256.wgsl`'s 256x128, with the same layout constants.
    Tall(bool, bool),
    /// `gemm_coop.wgsl`'s 128x128 on the matrix units, with the same layout constants.
    Tensor(bool, bool),
    /// The same tile with its operands split into two f16 halves (f32 accuracy).
    TensorSplit(bool, bool),
}

impl Tile {
    /// The `--gemm` choice that takes this tile wherever the operands allow it (its name
    /// is the tile's, `GemmTiles::name`).
    pub fn choice(self) -> GemmTiles {
        match self {
            Tile::Small => GemmTiles::Small,
            Tile::Big(..) => GemmTiles::Big,
            Tile::Tall(..) => GemmTiles::Tall,
            Tile::Tensor(..) => GemmTiles::Tensor,
            Tile::TensorSplit(..) => GemmTiles::TensorSplit,
        }
    }

    /// The most k steps one dispatch of the tile may take on `gpu`: all of them, but where
    /// the adapter cuts loops short ([`Gpu::loops_are_capped`], llvmpipe), what keeps each
    /// invocation's loops within its budget with room to spare. Measured on lavapipe (Mesa
    /// 22.3, LLVM 15) with products of ones (the sum is the number of k steps the loops
    /// ran): the 64x64 tile ran 58255 k steps, 128x128 190652, 256x128 149800, the emulated
    /// tensor-core tile 7696 and its split twin 2562, with either operand either way round
    /// (`tests/gpu_gemm.rs`, `deep_products_run_whole_where_loops_are_capped`). Each piece
    /// takes at most about half of that, since another Mesa may unroll fewer of the loops
    /// (the 64x64 tile unrolled none would still fit 43008 iterations in 32768 k steps).
    pub fn k_per_dispatch(self, gpu: &Gpu) -> usize {
        if !gpu.loops_are_capped() {
            return usize::MAX;
        }
        match self {
            Tile::Small => 32768,
            Tile::Big(..) | Tile::Tall(..) => 65536,
            Tile::Tensor(..) => 4096,
            Tile::TensorSplit(..) => 1024,
        }
    }
}

/// The tile a product takes under `choice`, on an adapter with matrix units (`tensor_cores`)
/// or without, where `Auto` may (`auto_tensor`) or may not take them for large products.
#[allow(clippy::too_many_arguments)]
pub fn tile_for(
    choice: GemmTiles,
    tensor_cores: bool,
    auto_tensor: bool,
    m: usize,
    n: usize,
    a: &Mat<'_>,
    b: &Mat<'_>,
    c: &Out<'_>,
) -> Tile {
    let Some((a_k, b_n)) = big_tile_layout(choice, m, n, a, b, c) else {
        return Tile::Small;
    };
    if tensor_choice(choice, tensor_cores, auto_tensor) {
        Tile::Tensor(a_k, b_n)
    } else if choice == GemmTiles::TensorSplit && tensor_cores {
        Tile::TensorSplit(a_k, b_n)
    } else if choice == GemmTiles::Tall {
        Tile::Tall(a_k, b_n)
    } else {
        Tile::Big(a_k, b_n)
    }
}

/// Whether `choice` puts the large aligned products on the tensor cores at reduced precision
/// (operands rounded to f16), on an adapter with (`tensor_cores`) or without them, where
/// `Auto` may (`auto_tensor`) or may not take them. The split tile is not: it keeps f32's
/// accuracy.
pub fn tensor_choice(choice: GemmTiles, tensor_cores: bool, auto_tensor: bool) -> bool {
    tensor_cores
        && match choice {
            GemmTiles::Tensor => true,
            GemmTiles::Auto | GemmTiles::Rules | GemmTiles::Measured => auto_tensor,
            GemmTiles::Small | GemmTiles::Big | GemmTiles::Tall | GemmTiles::TensorSplit => false,
        }
}

/// Whether a product takes a large tile (128x128 plain or tensor-core, or 256x128) under
/// `choice`:
/// `Some((a_k_contiguous, b_n_contiguous))` (its two layout constants) when it does, `None`
/// for the 64x64 tile.
pub fn big_tile_layout(
    choice: GemmTiles,
    m: usize,
    n: usize,
    a: &Mat<'_>,
    b: &Mat<'_>,
    c: &Out<'_>,
) -> Option<(bool, bool)> {
    let want_big = match choice {
        GemmTiles::Small => false,
        GemmTiles::Big | GemmTiles::Tall | GemmTiles::Tensor | GemmTiles::TensorSplit => true,
        GemmTiles::Auto | GemmTiles::Rules | GemmTiles::Measured => {
            m.div_ceil(128) * n.div_ceil(128) >= MIN_BIG_TILES
        }
    };
    let c_aligned = c.off.is_multiple_of(4) && c.rs.is_multiple_of(4);
    match (vec4_layout(a), vec4_layout(b)) {
        (Some(a_k), Some(b_n)) if want_big && c_aligned => Some((a_k, b_n)),
        _ => None,
    }
}

/// Whether a view can feed the 128x128 tile: one unit stride, the other stride and the offset
/// multiples of 4. Returns whether its column (second) index is the contiguous one.
fn vec4_layout(m: &Mat<'_>) -> Option<bool> {
    let aligned = |x: usize| x.is_multiple_of(4);
    if m.cs == 1 && aligned(m.rs) && aligned(m.off) {
        Some(true)
    } else if m.rs == 1 && aligned(m.cs) && aligned(m.off) {
        Some(false)
    } else {
        None
    }
}

/// A strided matrix view: element (r, c) at `off + r * rs + c * cs`.
#[derive(Clone, Copy)]
pub struct Mat<'a> {
    /// The buffer viewed.
    pub buf: &'a GpuBuffer,
    /// First element.
    pub off: usize,
    /// Row stride.
    pub rs: usize,
    /// Column stride.
    pub cs: usize,
}

impl<'a> Mat<'a> {
    /// A row-major matrix with `cols` columns starting at `off`.
    pub fn rows(buf: &'a GpuBuffer, off: usize, cols: usize) -> Self {
        Mat {
            buf,
            off,
            rs: cols,
            cs: 1,
        }
    }
    /// The transpose of a row-major matrix with `cols` columns starting at `off`.
    pub fn t(buf: &'a GpuBuffer, off: usize, cols: usize) -> Self {
        Mat {
            buf,
            off,
            rs: 1,
            cs: cols,
        }
    }
}

/// Where a product goes: row-major `[m, n]` at `off` in `buf`, with row stride `rs`.
#[derive(Clone, Copy)]
pub struct Out<'a> {
    /// Destination buffer.
    pub buf: &'a GpuBuffer,
    /// First element.
    pub off: usize,
    /// Row stride (>= n).
    pub rs: usize,
}

/// Runs the tensor-core tile once, where the device has matrix units, on a product whose
/// every partial sum is exact in f32 whatever its order, and gives the tensor cores up for
/// the run (`Gpu::give_up_tensor_cores`, with a warning saying by how much it was off) if
/// any element differs from the loops'; likewise its split twin (f32 accuracy), where it
/// runs, on a product whose A has bits past f16's, so that its low halves are not zero.
/// A driver whose cooperative matrices lay out their loads or stores other than the tile
/// expects would otherwise pass O(1) errors silently into every product of `--precision
/// f16` (the recurrent steps use the same matrix loads), and into every product whose tile
/// `GemmTiles::Auto` measures fastest (`gemm_measure`, the split tile among the
/// candidates). Returns whether the tensor cores are still in use. The backend calls it
/// when it opens an adapter with matrix units; tests call it on the emulated tile.
pub fn verify_tensor_cores(gpu: &Gpu) -> bool {
    if !gpu.has_tensor_cores() {
        return false;
    }
    let mut checks = vec![(GemmTiles::Tensor, "matrix product", exact_product(8))];
    if split_tile_runs(gpu) {
        let split = "matrix product in split f16 halves";
        checks.push((GemmTiles::TensorSplit, split, exact_product(2048)));
    }
    let tiles = gpu.gemm_tiles();
    for (choice, kernel, (a, b, want, (m, n, k))) in checks {
        let (ga, gb) = (gpu.buffer_from(&a), gpu.buffer_from(&b));
        let gc = gpu.buffer_from(&vec![f32::NAN; m * n]);
        gpu.set_gemm_tiles(choice);
        let out = Out {
            buf: &gc,
            off: 0,
            rs: n,
        };
        let (ma, mb) = (Mat::rows(&ga, 0, k), Mat::rows(&gb, 0, n));
        gemm(gpu, m, n, k, ma, mb, out, 1.0, false, None);
        gpu.set_gemm_tiles(tiles);
        let got = gpu.read::<f32>(&gc, m * n);
        if let Some(why) = products_differ(&got, &want, n)
            && gpu.has_tensor_cores()
        {
            gpu.give_up_tensor_cores(kernel, &why);
        }
        if !gpu.has_tensor_cores() {
            return false;
        }
    }
    true
}

/// A [`verify_tensor_cores`] product: A [m, k] and B [k, n] row-major, A's elements
/// multiples of `1 / a_steps` in [-2, 2] (8: exact in f16, so rounding to it changes
/// nothing; 2048: 12 significant bits, one past f16's, so a split tile's low halves carry
/// it), B's multiples of 1/8 in [-2, 2] (exact in f16; the chunk scales are powers of
/// two), and C = A B from the loops: each product a multiple of 1 / (8 a_steps), every
/// partial sum below 2^9, so exact in f32 in any order (23 bits at 2048). One interior
/// 128x128 tile, edges in m and n, and three 32-deep chunks. Returns (A, B, C, (m, n, k)).
#[allow(clippy::type_complexity)]
fn exact_product(a_steps: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>, (usize, usize, usize)) {
    let (m, n, k) = (136, 144, 72);
    let value = |i: usize, salt: usize, steps: usize| {
        ((i * 37 + salt * 101) % (4 * steps + 1)) as f32 / steps as f32 - 2.0
    };
    let a: Vec<f32> = (0..m * k).map(|i| value(i, 7, a_steps)).collect();
    let b: Vec<f32> = (0..k * n).map(|i| value(i, 11, 8)).collect();
    let c = (0..m * n)
        .map(|e| {
            let (i, j) = (e / n, e % n);
            (0..k).map(|l| a[i * k + l] * b[l * n + j]).sum::<f32>()
        })
        .collect();
    (a, b, c, (m, n, k))
}

/// Why `got` is not `want` (row-major with `n` columns, as long), or `None` where they are
/// equal to the last bit (zeros of either sign alike; a NaN never is): how many elements
/// differ (and how many of those are NaN), the first of them, and the largest difference.
fn products_differ(got: &[f32], want: &[f32], n: usize) -> Option<String> {
    let wrong: Vec<(usize, f32, f32)> = got
        .iter()
        .zip(want)
        .enumerate()
        .filter(|(_, (g, w))| g != w)
        .map(|(e, (&g, &w))| (e, g, w))
        .collect();
    let &(first, g, w) = wrong.first()?;
    let nan = wrong.iter().filter(|x| x.1.is_nan()).count();
    let largest = wrong
        .iter()
        .map(|x| (x.1 - x.2).abs())
        .fold(0.0f32, f32::max);
    Some(format!(
        "it gives wrong products: {} of {} elements differ ({nan} NaN), the first at ({}, {}): \
         {g} for {w}; by up to {largest}",
        wrong.len(),
        want.len(),
        first / n,
        first % n,
    ))
}

/// Records `C = alpha * A B (+ C if accumulate) (+ bias[n])` with A `[m, k]`, B `[k, n]`.
/// B may be an f16 buffer (an f16 layer cache; its values are widened to f32); A, C and the
/// bias are f32.
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    gpu: &Gpu,
    m: usize,
    n: usize,
    k: usize,
    a: Mat<'_>,
    b: Mat<'_>,
    c: Out<'_>,
    alpha: f32,
    accumulate: bool,
    bias: Option<(&GpuBuffer, usize)>,
) {
    let p = Product {
        m,
        n,
        k,
        a,
        b,
        c,
        alpha,
        accumulate,
        bias,
    };
    record(gpu, &[p]);
}

/// One matrix product, `C = alpha * A B (+ C if accumulate) (+ bias[n])` with A `[m, k]`
/// and B `[k, n]`, as [`gemm`] records it or [`Products`] holds it.
#[derive(Clone, Copy)]
pub struct Product<'a> {
    /// Rows of A and C.
    pub m: usize,
    /// Columns of B and C.
    pub n: usize,
    /// Columns of A, rows of B.
    pub k: usize,
    /// The left operand.
    pub a: Mat<'a>,
    /// The right operand (f32, or an f16 layer cache).
    pub b: Mat<'a>,
    /// Where the product goes.
    pub c: Out<'a>,
    /// The product's scale.
    pub alpha: f32,
    /// Whether the product is added to C.
    pub accumulate: bool,
    /// The bias buffer and where the bias starts in it.
    pub bias: Option<(&'a GpuBuffer, usize)>,
}

/// Most rows of C one dispatch computes: the 64x64 tile's grid over rows within WebGPU's
/// workgroups per dimension ([`MAX_GROUPS`]), a multiple of every tile's rows (64, 128,
/// 256) so each piece keeps the tile and the alignment of the whole.
pub const MOST_ROWS: usize = (MAX_GROUPS as usize / 4) * 256;

/// Most products one dispatch runs (`P.at` in `shaders/gemm.wgsl`).
pub const PRODUCTS_PER_DISPATCH: usize = 8;

/// Words of the products' `P`: 12 shared, then each product's starts.
const GEMM_WORDS: usize = 12 + 4 * PRODUCTS_PER_DISPATCH;

impl Product<'_> {
    /// The product's rows `rows` of A and C (a view of the same buffers).
    fn rows(&self, rows: std::ops::Range<usize>) -> Self {
        let mut p = *self;
        p.m = rows.len();
        p.a.off += rows.start * p.a.rs;
        p.c.off += rows.start * p.c.rs;
        p
    }

    /// The product's share of the k steps `steps` (columns of A, rows of B): the whole
    /// product where they are all of them, else, past the first, added to C without the
    /// bias.
    fn steps(&self, steps: std::ops::Range<usize>) -> Self {
        let mut p = *self;
        if steps.len() == p.k {
            return p;
        }
        p.k = steps.len();
        p.a.off += steps.start * p.a.cs;
        p.b.off += steps.start * p.b.rs;
        if steps.start > 0 {
            p.accumulate = true;
            p.bias = None;
        }
        p
    }

    /// The tile it takes on `gpu`, as the tile choice stands: the fastest measured for its
    /// shape where the choice measures it ([`gemm_measure`]), else by the rules.
    fn tile(&self, gpu: &Gpu) -> Tile {
        if let Some(shape) = gemm_measure::Shape::to_measure(gpu, self) {
            return gemm_measure::chosen(gpu, shape);
        }
        tile_for(
            gpu.gemm_tiles(),
            gpu.has_tensor_cores(),
            gpu.auto_tensor(),
            self.m,
            self.n,
            &self.a,
            &self.b,
            &self.c,
        )
    }

    fn flags(&self) -> u32 {
        self.accumulate as u32 | (self.bias.is_some() as u32) << 1
    }

    /// The buffer bound as the bias: the bias's, else A's (never read).
    fn bias_buf(&self) -> &GpuBuffer {
        self.bias.map_or(self.a.buf, |b| b.0)
    }

    /// What one dispatch of several products needs them to share: the tile, sizes,
    /// strides, flags, alpha, and the buffers (parts of one joined buffer count as it).
    fn shared(&self, gpu: &Gpu) -> (Tile, [usize; 10], [*const GpuBuffer; 4]) {
        let (a, b, c) = (&self.a, &self.b, &self.c);
        let (flags, alpha) = (self.flags() as usize, self.alpha.to_bits() as usize);
        let words = [
            self.m, self.n, self.k, a.rs, a.cs, b.rs, b.cs, c.rs, flags, alpha,
        ];
        let bufs = [
            whole(a.buf),
            whole(b.buf),
            whole(c.buf),
            whole(self.bias_buf()),
        ];
        (self.tile(gpu), words, bufs)
    }

    /// The elements it reads (A, B, the bias) and writes (C).
    fn spans(&self) -> ([Span; 3], [Span; 1]) {
        let (a, b, c) = (&self.a, &self.b, &self.c);
        let (m, n, k) = (self.m.max(1) - 1, self.n.max(1) - 1, self.k.max(1) - 1);
        let bias = match self.bias {
            Some((buf, at)) => span(buf, at, n + 1),
            None => NO_SPAN,
        };
        let reads = [
            span(a.buf, a.off, m * a.rs + k * a.cs + 1),
            span(b.buf, b.off, k * b.rs + n * b.cs + 1),
            bias,
        ];
        (reads, [span(c.buf, c.off, m * c.rs + n + 1)])
    }

    /// Whether it and `other` touch one element where either writes it: then they cannot
    /// share a dispatch, nor trade places.
    fn conflicts(&self, other: &Product<'_>) -> bool {
        let ((r1, w1), (r2, w2)) = (self.spans(), other.spans());
        touch((&r1, &w1), (&r2, &w2))
    }
}

/// Elements of a buffer as a dispatch of several products or sums binds it: (the joined
/// buffer it is part of, or itself; first; end).
type Span = (*const GpuBuffer, usize, usize);

/// No elements.
const NO_SPAN: Span = (std::ptr::null(), 0, 0);

/// What a dispatch of several products or sums binds for `buf`, as an identity.
fn whole(buf: &GpuBuffer) -> *const GpuBuffer {
    buf.resolved().0
}

/// The `len` elements of `buf` from `off`.
fn span(buf: &GpuBuffer, off: usize, len: usize) -> Span {
    let (whole, base) = buf.resolved();
    (whole, base + off, base + off + len)
}

/// Whether two spans share an element.
fn overlap(x: &Span, y: &Span) -> bool {
    std::ptr::eq(x.0, y.0) && x.1 < y.2 && y.1 < x.2
}

/// Whether two items, each as the spans it (reads, writes), touch one element where either
/// writes it.
fn touch((r1, w1): (&[Span], &[Span]), (r2, w2): (&[Span], &[Span])) -> bool {
    let any = |xs: &[Span], ys: &[Span]| xs.iter().any(|x| ys.iter().any(|y| overlap(x, y)));
    any(w1, w2) || any(r1, w2) || any(r2, w1)
}

/// What a dispatch binds for `buf` and where element `off` of it is there: the buffer as
/// it is where the dispatch runs one product or sum (`alone`); else the joined buffer it
/// is part of, the element moved to where the part begins.
fn bound(buf: &GpuBuffer, off: usize, alone: bool) -> (&GpuBuffer, u32) {
    match alone {
        true => (buf, off as u32),
        false => {
            let (whole, base) = buf.resolved();
            (whole, (base + off) as u32)
        }
    }
}

/// Matrix products held from [`Products::hold`] until what it returns is dropped, then
/// recorded in as few dispatches as they allow. The layer pipeline's products of several
/// layers (their input projections of a chunk, their input or weight gradients) and a
/// layer's two directions have one shape and layout over parts of the same buffers, so
/// one dispatch runs them all, one per `workgroup_id.z` (`shaders/gemm.wgsl`'s `P.at`). A
/// step's dispatches wait for each other (wgpu's barriers), and a chunk's product alone
/// may leave much of a large GPU idle in its last wave of tiles; side by side they fill
/// it. Holds nest: a layer holds its directions' products whether or not the pipeline
/// holds several layers'.
///
/// Products held together must not depend on each other, except that where two touch the
/// same elements (accumulating into one gradient, say) they keep their order; each runs
/// as [`gemm`] would run it alone, the same tile and the same sums, so the results are the
/// same to the bit. It holds column sums ([`ColSum`], the bias gradients) the same way,
/// recorded after the products. Nothing else may be recorded while they are held.
pub struct Products<'a> {
    gpu: &'a Gpu,
    held: RefCell<Vec<Product<'a>>>,
    sums: RefCell<Vec<ColSum<'a>>>,
    /// Holds not yet flushed.
    depth: Cell<usize>,
    /// The device's dispatch count when holding began.
    since: Cell<u64>,
}

impl<'a> Products<'a> {
    /// Products recorded on `gpu`, none held yet.
    pub fn new(gpu: &'a Gpu) -> Products<'a> {
        Products {
            gpu,
            held: RefCell::new(Vec::new()),
            sums: RefCell::new(Vec::new()),
            depth: Cell::new(0),
            since: Cell::new(0),
        }
    }

    /// Holds the products and sums recorded through [`Products::record`] and
    /// [`Products::sum`] from now until what this returns is dropped.
    pub fn hold(&self) -> Held<'_, 'a> {
        if self.depth.get() == 0 {
            self.since.set(self.gpu.dispatch_count());
        }
        self.depth.set(self.depth.get() + 1);
        Held(self)
    }

    /// Records `p` now, or holds it where a [`Products::hold`] is on.
    pub fn record(&self, p: Product<'a>) {
        match self.depth.get() {
            0 => record(self.gpu, &[p]),
            _ => self.held.borrow_mut().push(p),
        }
    }

    /// Records `s` now, or holds it where a [`Products::hold`] is on.
    pub fn sum(&self, s: ColSum<'a>) {
        match self.depth.get() {
            0 => record_sums(self.gpu, &[s]),
            _ => self.sums.borrow_mut().push(s),
        }
    }

    /// Ends the last [`Products::hold`]; where it was the outermost, records the held
    /// products, those that can share a dispatch together, then the held column sums
    /// likewise.
    fn flush(&self) {
        let depth = self.depth.get();
        assert!(depth > 0, "matrix products flushed without a hold");
        self.depth.set(depth - 1);
        if depth > 1 {
            return;
        }
        assert_eq!(
            self.gpu.dispatch_count(),
            self.since.get(),
            "a dispatch was recorded among held matrix products"
        );
        let held = std::mem::take(&mut *self.held.borrow_mut());
        let key = |p: &Product<'_>| p.shared(self.gpu);
        for batch in batches(held, key, Product::conflicts, PRODUCTS_PER_DISPATCH) {
            record(self.gpu, &batch);
        }
        let sums = std::mem::take(&mut *self.sums.borrow_mut());
        for batch in batches(sums, ColSum::shared, ColSum::conflicts, SUMS_PER_DISPATCH) {
            record_sums(self.gpu, &batch);
        }
    }
}

/// A hold on matrix products ([`Products::hold`]): dropping it ends the hold, recording
/// what was held where it was the outermost.
#[must_use = "the products are recorded when the hold is dropped"]
pub struct Held<'p, 'a>(&'p Products<'a>);

impl Drop for Held<'_, '_> {
    fn drop(&mut self) {
        // Unwinding from a panic among them, nothing more is recorded.
        if !std::thread::panicking() {
            self.0.flush();
        }
    }
}

/// `held` in dispatches: each item joins the last dispatch before it that it can share
/// (the same `key`, at most `most`, none in `conflicts` with it) where it conflicts with no
/// item of a dispatch after that one; else a dispatch of its own after the others.
fn batches<T, K: PartialEq>(
    held: Vec<T>,
    key: impl Fn(&T) -> K,
    conflicts: impl Fn(&T, &T) -> bool,
    most: usize,
) -> Vec<Vec<T>> {
    let mut out: Vec<(Vec<T>, K)> = Vec::new();
    for p in held {
        let key = key(&p);
        let mut at = None;
        for (i, (batch, k)) in out.iter().enumerate().rev() {
            let clash = batch.iter().any(|q| conflicts(q, &p));
            if *k == key && !clash && batch.len() < most {
                at = Some(i);
                break;
            }
            if clash {
                break;
            }
        }
        match at {
            Some(i) => out[i].0.push(p),
            None => out.push((vec![p], key)),
        }
    }
    out.into_iter().map(|(batch, _)| batch).collect()
}

/// Records `batch` (one product, or up to [`PRODUCTS_PER_DISPATCH`] that share what
/// [`Product::shared`] says) as one dispatch, product z on the workgroups of z; as one a
/// piece where the products have more rows than [`MOST_ROWS`] or more k steps than the
/// adapter's loops allow ([`Tile::k_per_dispatch`]).
fn record(gpu: &Gpu, batch: &[Product<'_>]) {
    if let Some(first) = batch.first() {
        record_in(gpu, batch, first.tile(gpu));
    }
}

/// Records `batch` as [`record`] does, in `tile` (or what the adapter runs in its place).
pub(super) fn record_in(gpu: &Gpu, batch: &[Product<'_>], tile: Tile) {
    let Some(first) = batch.first() else {
        return;
    };
    let (m, n) = (first.m, first.n);
    if m == 0 || n == 0 {
        return;
    }
    // More tile rows than a dispatch has workgroups: the rows in pieces, each in the tile
    // the whole takes (each element of C is then the same sum whichever piece holds it).
    // Where the adapter cuts long loops short, the k steps in pieces too, each added to
    // what the ones before wrote.
    let tile = runnable(gpu, tile);
    let (k, depth) = (first.k, tile.k_per_dispatch(gpu));
    for r0 in (0..m).step_by(MOST_ROWS) {
        let rows = r0..m.min(r0 + MOST_ROWS);
        for k0 in (0..k.max(1)).step_by(depth) {
            let steps = k0..k.min(k0 + depth);
            let piece: Vec<Product<'_>> = batch
                .iter()
                .map(|p| p.rows(rows.clone()).steps(steps.clone()))
                .collect();
            record_rows(gpu, &piece, tile);
        }
    }
}

/// The tile `tile` falls back to where the adapter does not run it as laid out: the split
/// tensor-core tile without matrix units or its workgroup memory, the 256x128 tile or the
/// 128x128 one without theirs.
pub(super) fn runnable(gpu: &Gpu, tile: Tile) -> Tile {
    let storage = gpu.workgroup_storage();
    let tile = match tile {
        Tile::TensorSplit(a_k, b_n) if !split_tile_runs(gpu) => Tile::Big(a_k, b_n),
        Tile::Tall(a_k, b_n) if storage < GEMM256_WORKGROUP_BYTES => Tile::Big(a_k, b_n),
        other => other,
    };
    match tile {
        Tile::Big(..) if storage < GEMM128_WORKGROUP_BYTES => Tile::Small,
        other => other,
    }
}

/// The large tiles' pipeline constants for A's and B's layouts.
fn layout_constants(a_k: bool, b_n: bool) -> [(&'static str, f64); 2] {
    [
        ("A_K_CONTIGUOUS", a_k as u32 as f64),
        ("B_N_CONTIGUOUS", b_n as u32 as f64),
    ]
}

/// Whether the f32 tile `tile`'s pipeline, for an f32 or an f16 (`b16`) B, builds on `gpu`
/// (kept where it does): `gemm_measure` times tiles beside the one the rules would take,
/// and one a driver refuses must not stop the run. The tensor-core tiles answer yes here:
/// where they do not build, their dispatch gives them up and runs the 128x128 tile.
pub(super) fn tile_builds(gpu: &Gpu, tile: Tile, b16: bool) -> bool {
    match tile {
        Tile::Small => gpu.try_pipeline(GEMM.get(b16), "gemm", &[]).is_ok(),
        Tile::Big(a_k, b_n) => {
            let constants = layout_constants(a_k, b_n);
            gpu.try_pipeline(GEMM128.get(b16), "gemm128", &constants)
                .is_ok()
        }
        Tile::Tall(a_k, b_n) => {
            let constants = layout_constants(a_k, b_n);
            gpu.try_pipeline(GEMM256.get(b16), "gemm256", &constants)
                .is_ok()
        }
        Tile::Tensor(..) | Tile::TensorSplit(..) => true,
    }
}

/// Records `batch` as [`record`] does, in `tile`, its rows within one dispatch's grid.
fn record_rows(gpu: &Gpu, batch: &[Product<'_>], mut tile: Tile) {
    let first = &batch[0];
    let (m, n, k) = (first.m, first.n, first.k);
    let (a, b, c) = (&first.a, &first.b, &first.c);
    assert!(
        !a.buf.is_f16() && !c.buf.is_f16(),
        "gemm: only B may be an f16 buffer"
    );
    assert!(batch.len() <= PRODUCTS_PER_DISPATCH);
    let w = |v: usize| v as u32;
    let mut params = vec![
        w(m),
        w(n),
        w(k),
        first.flags(),
        w(a.rs),
        w(a.cs),
        w(b.rs),
        w(b.cs),
        w(c.rs),
        first.alpha.to_bits(),
        0,
        0,
    ];
    let alone = batch.len() == 1;
    let at = |buf: &GpuBuffer, off: usize| bound(buf, off, alone).1;
    for p in batch {
        let (bias_buf, bias_off) = (p.bias_buf(), p.bias.map_or(0, |x| x.1));
        params.extend([
            at(p.a.buf, p.a.off),
            at(p.b.buf, p.b.off),
            at(p.c.buf, p.c.off),
            at(bias_buf, bias_off),
        ]);
    }
    params.resize(GEMM_WORDS, 0);
    let bind = |buf| bound(buf, 0, alone).0;
    let buffers = [
        bind(a.buf),
        bind(b.buf),
        bind(c.buf),
        bind(first.bias_buf()),
    ];
    let z = batch.len() as u32;
    let layout = layout_constants;
    let big_grid = [n.div_ceil(128) as u32, m.div_ceil(128) as u32, z];
    if let Tile::Tensor(a_k, b_n) | Tile::TensorSplit(a_k, b_n) = tile {
        let variants = if gpu.tensor_emulated() {
            &GEMM_COOP_EMULATED
        } else {
            &GEMM_COOP
        };
        let split = matches!(tile, Tile::TensorSplit(..));
        let [a_layout, b_layout] = layout(a_k, b_n);
        let constants = [a_layout, b_layout, ("SPLIT", split as u32 as f64)];
        // The experimental feature may fail to compile on a driver: then the f32 tile.
        match gpu.try_pipeline(variants.get(b.buf.is_f16()), "gemm_coop", &constants) {
            Ok(pipeline) => gpu.dispatch(&pipeline, &params, &buffers, big_grid),
            Err(why) => {
                gpu.give_up_tensor_cores("matrix product", &format!("it does not compile: {why}"));
                tile = Tile::Big(a_k, b_n);
            }
        }
    }
    match tile {
        Tile::Tensor(..) | Tile::TensorSplit(..) => {}
        Tile::Tall(a_k, b_n) => {
            let shader = GEMM256.get(b.buf.is_f16());
            let pipeline = gpu.pipeline(shader, "gemm256", &layout(a_k, b_n));
            let grid = [n.div_ceil(128) as u32, m.div_ceil(256) as u32, z];
            gpu.dispatch(&pipeline, &params, &buffers, grid);
        }
        Tile::Big(a_k, b_n) => {
            let shader = GEMM128.get(b.buf.is_f16());
            let pipeline = gpu.pipeline(shader, "gemm128", &layout(a_k, b_n));
            gpu.dispatch(&pipeline, &params, &buffers, big_grid);
        }
        Tile::Small => {
            let pipeline = gpu.pipeline(GEMM.get(b.buf.is_f16()), "gemm", &[]);
            let grid = [n.div_ceil(64) as u32, m.div_ceil(64) as u32, z];
            gpu.dispatch(&pipeline, &params, &buffers, grid);
        }
    }
    let (mf, nf, kf) = (m as f64, n as f64, k as f64);
    let c_traffic = if first.accumulate { 2.0 } else { 1.0 };
    let b_bytes = if b.buf.is_f16() { 2.0 } else { 4.0 };
    let z = z as f64;
    gpu.cost(
        z * 2.0 * mf * nf * kf,
        z * (4.0 * (mf * kf + c_traffic * mf * nf) + b_bytes * kf * nf),
    );
}

/// Records `dst[at..at + n] += column sums of the [rows, n] view `src`` for each `at` of
/// `ats` (one or two: bias gradients; `src` must have unit column stride):
/// `shaders/colsum.wgsl`, rows split into slices summed by separate workgroups, then the
/// slices added per column.
pub fn col_sums(gpu: &Gpu, src: Mat<'_>, rows: usize, n: usize, dst: &GpuBuffer, ats: &[usize]) {
    record_sums(gpu, &[ColSum::new(src, rows, n, dst, ats)]);
}

/// One column sum, `dst[at..at + n] +=` the column sums of the `[rows, n]` view `src` (unit
/// column stride), and the same into `dst[at2..]` where there is one (an LSTM's two bias
/// gradients), as [`col_sums`] records it or [`Products`] holds it.
#[derive(Clone, Copy)]
pub struct ColSum<'a> {
    /// The rows summed.
    pub src: Mat<'a>,
    /// Rows of `src`.
    pub rows: usize,
    /// Columns of `src`.
    pub n: usize,
    /// Where the sums go.
    pub dst: &'a GpuBuffer,
    /// Where in `dst`.
    pub at: usize,
    /// A second place in `dst`.
    pub at2: Option<usize>,
}

/// Most column sums one pair of dispatches runs (`P.s` in `shaders/colsum.wgsl`).
pub const SUMS_PER_DISPATCH: usize = 8;

impl<'a> ColSum<'a> {
    /// The sum of [`col_sums`]: into `dst` at each of `ats` (one or two places).
    pub fn new(src: Mat<'a>, rows: usize, n: usize, dst: &'a GpuBuffer, ats: &[usize]) -> Self {
        let (at, at2) = match *ats {
            [at] => (at, None),
            [at, at2] => (at, Some(at2)),
            _ => panic!("column sums into one or two places"),
        };
        ColSum {
            src,
            rows,
            n,
            dst,
            at,
            at2,
        }
    }

    /// What sums that share a pair of dispatches share: sizes, row stride and buffers.
    fn shared(&self) -> ([usize; 3], [*const GpuBuffer; 2]) {
        (
            [self.rows, self.n, self.src.rs],
            [whole(self.src.buf), whole(self.dst)],
        )
    }

    /// The elements it reads and writes, as [`Product::spans`].
    fn spans(&self) -> ([Span; 1], [Span; 2]) {
        let last = self.rows.max(1) - 1;
        let read = span(self.src.buf, self.src.off, last * self.src.rs + self.n);
        let second = match self.at2 {
            Some(at2) => span(self.dst, at2, self.n),
            None => NO_SPAN,
        };
        ([read], [span(self.dst, self.at, self.n), second])
    }

    /// Whether it and `other` touch one element where either writes it.
    fn conflicts(&self, other: &ColSum<'_>) -> bool {
        let ((r1, w1), (r2, w2)) = (self.spans(), other.spans());
        touch((&r1, &w1), (&r2, &w2))
    }
}

/// How column sums split `rows` rows of `n` columns: enough slices for about 512
/// workgroups, each slice at least 32 rows. (rows per slice, slices)
fn col_slices(rows: usize, n: usize) -> (usize, usize) {
    let col_groups = n.div_ceil(256);
    let slices = 512usize.div_ceil(col_groups).min(rows.div_ceil(32)).max(1);
    let per = rows.div_ceil(slices);
    (per, rows.div_ceil(per))
}

/// Words of `shaders/colsum.wgsl`'s `P`: 8 shared, then each sum's starts.
const SUM_WORDS: usize = 8 + 4 * SUMS_PER_DISPATCH;

/// `shaders/colsum.wgsl`'s `P` for sums of `rows` x `n` with row stride `ld` in
/// `(per, slices)`, each sum's starts `(off, part0, at, at2)` (at2 `u32::MAX` for none).
fn col_sum_words(
    (rows, n, ld): (usize, usize, usize),
    (per, slices): (usize, usize),
    starts: &[[u32; 4]],
) -> Vec<u32> {
    assert!(starts.len() <= SUMS_PER_DISPATCH);
    let w = |v: usize| v as u32;
    let mut words = vec![w(rows), w(n), w(ld), w(per), w(slices), 0, 0, 0];
    words.extend(starts.iter().flatten());
    words.resize(SUM_WORDS, 0);
    words
}

/// Records `batch` (one sum, or up to [`SUMS_PER_DISPATCH`] that share what
/// [`ColSum::shared`] says) as a partial and a finishing dispatch, sum z on the workgroups
/// of z.
fn record_sums(gpu: &Gpu, batch: &[ColSum<'_>]) {
    let Some(first) = batch.first() else {
        return;
    };
    let (rows, n, ld) = (first.rows, first.n, first.src.rs);
    if rows == 0 || n == 0 {
        return;
    }
    assert_eq!(
        first.src.cs, 1,
        "column sums read rows with unit column stride"
    );
    assert!(!first.src.buf.is_f16(), "column sums read f32 buffers");
    let (per, slices) = col_slices(rows, n);
    // Every partial sum is written by the first pass.
    let part = gpu.buffer_uninit(batch.len() * slices * n);
    let alone = batch.len() == 1;
    let at = |buf: &GpuBuffer, off: usize| bound(buf, off, alone).1;
    let bind = |buf| bound(buf, 0, alone).0;
    let starts: Vec<[u32; 4]> = batch
        .iter()
        .enumerate()
        .map(|(z, s)| {
            let at2 = s.at2.map_or(u32::MAX, |a| at(s.dst, a));
            [
                at(s.src.buf, s.src.off),
                (z * slices * n) as u32,
                at(s.dst, s.at),
                at2,
            ]
        })
        .collect();
    let words = col_sum_words((rows, n, ld), (per, slices), &starts);
    let z = batch.len() as u32;
    let partial = gpu.pipeline(&COLSUM, "colsum_partial", &[]);
    let groups = [n.div_ceil(256) as u32, slices as u32, z];
    gpu.dispatch(&partial, &words, &[bind(first.src.buf), &part], groups);
    let (r, nf, zf) = (rows as f64, n as f64, z as f64);
    gpu.cost(zf * r * nf, zf * 4.0 * (r * nf + slices as f64 * nf));
    let finish = gpu.pipeline(&COLSUM, "colsum_finish", &[]);
    let [x, y, _] = Gpu::grid_1d(n, 256);
    gpu.dispatch(&finish, &words, &[&part, bind(first.dst)], [x, y, z]);
    let s = slices as f64;
    gpu.cost(zf * s * nf, zf * 4.0 * (s * nf + 2.0 * nf));
}

#[cfg(test)]
mod tests {
    use super::{exact_product, products_differ};

    /// The self-checks' products are exact: the f32 loops give what f64 gives; the tensor
    /// tile's operands are exact in f16, and the split tile's A is not (its low halves
    /// carry a bit), but is in two f16 halves.
    #[test]
    fn the_check_products_are_exact_in_f32() {
        let f16 = |x: f32| half::f16::from_f32(x).to_f32();
        for a_steps in [8, 2048] {
            let (a, b, c, (m, n, k)) = exact_product(a_steps);
            assert!(
                m % 128 != 0 && n % 128 != 0 && k > 64,
                "edges and three chunks"
            );
            for x in a.iter().chain(&b) {
                assert_eq!(f16(*x) + f16(*x - f16(*x)), *x);
                assert!(x.abs() <= 2.0);
            }
            assert!(b.iter().all(|&x| f16(x) == x));
            let a_in_f16 = a.iter().filter(|&&x| f16(x) == x).count();
            assert_eq!(a_in_f16 == a.len(), a_steps == 8, "A's low halves");
            assert_eq!(c.len(), m * n);
            for (e, &got) in c.iter().enumerate() {
                let (i, j) = (e / n, e % n);
                let exact: f64 = (0..k)
                    .map(|l| a[i * k + l] as f64 * b[l * n + j] as f64)
                    .sum();
                assert_eq!(got as f64, exact, "({i}, {j})");
            }
            assert!(c.iter().any(|&x| x != 0.0));
        }
    }

    /// A product laid out wrong (here each 16x16 block of C transposed, as a cooperative
    /// matrix stored with rows and columns swapped would be) is told from the right one, and
    /// the right one passes.
    #[test]
    fn a_transposed_block_layout_is_a_wrong_product() {
        let (_, _, c, (m, n, _)) = exact_product(8);
        assert_eq!(products_differ(&c, &c, n), None);
        let mut t = c.clone();
        for e in 0..128 * 128 {
            let (i, j) = (e / 128, e % 128);
            let (bi, bj) = (i / 16 * 16, j / 16 * 16);
            t[i * n + j] = c[(bi + j % 16) * n + bj + i % 16];
        }
        let why = products_differ(&t, &c, n).expect("a transposed layout differs");
        assert!(why.contains("elements differ (0 NaN)"), "{why}");
        let mut one = c.clone();
        one[m * n - 1] = f32::NAN;
        let why = products_differ(&one, &c, n).expect("a NaN differs");
        assert!(
            why.contains(&format!("1 of {} elements differ (1 NaN)", m * n)),
            "{why}"
        );
        assert!(why.contains(&format!("({}, {})", m - 1, n - 1)), "{why}");
    }
}
