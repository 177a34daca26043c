//! The GEMM kernels (`shaders/gemm.wgsl` 64x64, the generated `shaders/gemm128.wgsl`
//! 128x128 and `shaders/gemm256.wgsl` 256x128, and the tensor-core twin
//! `shaders/gemm_coop.wgsl`) against a plain triple loop,
//! at awkward sizes, with every transpose, accumulation and bias; the big tile with and
//! without naga's bounds checks. The tensor-core tile runs where the adapter has matrix
//! units; everywhere its source is compiled to SPIR-V by naga.

mod gpu_common;

use gpu_common::{
    assert_close, compile_coop_to_spirv, gpu, lay_out_for_the_h100, poison, rel_err, rng,
    tensor_cores_or_emulated, uniform,
};
use half::f16;
use rand::rngs::ChaCha8Rng;
use wgrnn::backend::wgpu::gemm::{
    ColSum, GEMM_COOP_SPLIT_WORKGROUP_BYTES, GemmTiles, MOST_ROWS, Mat, Out, Product, Products,
    Tile, big_tile_layout, col_sums, gemm, gemm_coop_source, gemm128_source, gemm256_source,
    tile_for, verify_tensor_cores,
};
use wgrnn::backend::wgpu::gemm_measure::{Shape, candidates};
use wgrnn::backend::wgpu::measured::{Classed, fastest};
use wgrnn::backend::wgpu::{Gpu, GpuBuffer};

#[test]
fn gemm_matches_loops() {
    let Some(be) = gpu() else { return };
    let g = be.gpu();
    g.set_gemm_tiles(GemmTiles::Small);
    let mut r = rng("gemm_matches_loops");
    check_sizes(
        g,
        &mut r,
        &[
            (1, 1, 1),
            (3, 17, 5),
            (65, 33, 17),
            (70, 130, 67),
            (5, 1, 200),
        ],
        0,
        false,
    );
}

/// Both tiles with B in f16 (the products that read an f16 layer cache: dW_hh against the
/// stored states, the records of LSTMP, GRU and Jordan): the values widen exactly, so the
/// result matches the loops on the same rounded values to f32 accuracy.
#[test]
fn gemm_with_f16_b_matches_loops() {
    let Some(be) = gpu() else { return };
    let g = be.gpu();
    assert!(g.has_f16(), "the GPU tests' adapter must offer SHADER_F16");
    let mut r = rng("gemm_with_f16_b_matches_loops");
    g.set_gemm_tiles(GemmTiles::Small);
    check_sizes(g, &mut r, &[(3, 17, 5), (70, 130, 67)], 0, true);
    g.set_gemm_tiles(GemmTiles::Big);
    check_sizes(g, &mut r, &[(130, 133, 37), (7, 129, 3)], 4, true);
}

/// The 128x128 tile: sizes that leave ragged tiles on every edge (m, n, k not multiples of
/// 128, 4 or 16), exact multiples, and k shorter than one 16-step; offsets multiples of 4 so
/// it is taken (the 64x64 tile would serve unaligned views), bounds checks off and on.
#[test]
fn gemm128_matches_loops() {
    let Some(be) = gpu() else { return };
    let g = be.gpu();
    g.set_gemm_tiles(GemmTiles::Big);
    let mut r = rng("gemm128_matches_loops");
    for checked in [false, true] {
        g.set_checked(checked);
        check_sizes(
            g,
            &mut r,
            &[(130, 133, 37), (128, 256, 32), (7, 129, 3), (257, 6, 130)],
            4,
            false,
        );
    }
}

/// The 256x128 tile (`--gemm tall`): ragged tiles on every edge (m past one and two
/// 256-row tiles, n and k not multiples of 128, 4 or 8), exact multiples, k shorter than one
/// 8-step, one row; f32 and f16 B; bounds checks off and on.
#[test]
fn gemm256_matches_loops() {
    let Some(be) = gpu() else { return };
    let g = be.gpu();
    g.set_gemm_tiles(GemmTiles::Tall);
    let mut r = rng("gemm256_matches_loops");
    for checked in [false, true] {
        g.set_checked(checked);
        check_sizes(
            g,
            &mut r,
            &[(300, 133, 37), (256, 128, 16), (7, 129, 3), (521, 6, 130)],
            4,
            false,
        );
    }
    check_sizes(g, &mut r, &[(260, 70, 21)], 4, true);
}

/// The tensor-core tile (`--gemm tensor`) on the adapter's matrix units, or with its matrix
/// operations emulated where it has none (lavapipe; every other line of the tile runs as on
/// the matrix units): the loops use the operands rounded to f16 as the tile does, so only the
/// order of the f32 sums differs, also for an A far below and far above f16's range (the
/// tile scales each chunk). `wgrnn check --gemm tensor` compares it on hardware
/// (benches/device.sh check).
#[test]
fn tensor_tile_matches_loops() {
    let Some(be) = gpu() else { return };
    let g = be.gpu();
    let emulated = tensor_cores_or_emulated(g, "tensor-core tile");
    g.set_gemm_tiles(GemmTiles::Tensor);
    let mut r = rng("tensor_tile_matches_loops");
    // Bounds checks on and off for f32 B, on for f16 B (each combination is four pipelines of
    // a large kernel: the compiles dominate this test on lavapipe).
    for (checked, b16) in [(true, false), (false, false), (true, true)] {
        g.set_checked(checked);
        check_sizes(
            g,
            &mut r,
            &[(130, 133, 37), (128, 256, 64), (7, 129, 3), (257, 6, 130)],
            4,
            b16,
        );
    }
    // Operands far below f16's normal range (2^-30: a gradient of 1e-9), and far above it;
    // at 2^-56 both, their products (2^-112) take the chunk scales back in two multiplies,
    // as one would leave f32's normal range.
    for magnitude in [2f32.powi(-30), 2f32.powi(20), 2f32.powi(-56)] {
        check_sizes_at(g, &mut r, &[(130, 133, 70)], 4, false, magnitude);
    }
    // Off again: the choice falls back to the 128x128 tile (exact f32).
    if emulated {
        assert!(!g.set_tensor_emulation(false) && !g.has_tensor_cores());
        check_sizes(g, &mut r, &[(130, 133, 37)], 4, false);
    }
}

/// The split tensor-core tile (`--gemm tensor-split`): operands in f32 as drawn, not rounded
/// to f16 first, compared with the f64 loops at the f32 tiles' bound (1e-5 of the largest
/// output), at ragged sizes with every transpose, accumulation and bias, f16 B, and operands
/// far below and above f16's range. On the same product the plain tensor tile is off by
/// f16's rounding, ten times and more what the split one is: the lo halves carry what f16
/// drops. Laid out for the H100's 48 KiB (the tile takes 45 KiB; lavapipe reports 32 and
/// allocates what a workgroup declares).
#[test]
fn split_tensor_tile_matches_f32_loops() {
    let Some(be) = gpu() else { return };
    let g = be.gpu();
    tensor_cores_or_emulated(g, "split tensor-core tile");
    if !lay_out_for_the_h100(g, "split_tensor_tile_matches_f32_loops") {
        return;
    }
    assert!(g.workgroup_storage() >= GEMM_COOP_SPLIT_WORKGROUP_BYTES);
    let mut r = rng("split_tensor_tile_matches_f32_loops");
    // One product under both tensor tiles, against the f64 loops (row strides multiples of
    // 4, as the large tiles read them).
    let (m, n, k) = (130, 132, 68);
    let a = uniform(&mut r, m * k, 1.0);
    let b = uniform(&mut r, k * n, 1.0);
    let want = row_major_loops((m, n, k), &a, &b);
    let (ga, gb) = (g.buffer_from(&a), g.buffer_from(&b));
    let err = |tiles: GemmTiles| {
        g.set_gemm_tiles(tiles);
        let gc = g.buffer_from(&poison(m * n));
        row_major_product(g, (m, n, k), &ga, &gb, &gc);
        rel_err(&g.read::<f32>(&gc, m * n), &want, 0.0)
    };
    let (plain, split) = (err(GemmTiles::Tensor), err(GemmTiles::TensorSplit));
    eprintln!("relative error: tensor tile {plain:e}, split tile {split:e}");
    assert!(split <= 1e-6, "split tile: {split:e}");
    assert!(plain >= 10.0 * split, "tensor {plain:e}, split {split:e}");
    // Bounds checks on (an index past the tile's halves would read or write a clamped
    // element and show), f32 and f16 B (whose lo halves are zero).
    g.set_gemm_tiles(GemmTiles::TensorSplit);
    for b16 in [false, true] {
        check_sizes(
            g,
            &mut r,
            &[(130, 133, 37), (7, 129, 3), (257, 6, 130)],
            4,
            b16,
        );
    }
    for magnitude in [2f32.powi(-30), 2f32.powi(20), 2f32.powi(-56)] {
        check_sizes_at(g, &mut r, &[(130, 133, 70)], 4, false, magnitude);
    }
}

/// `--gemm measured` (what `Auto` does on an adapter that is a GPU): the first product of a
/// shape times every candidate tile aside from the recording (the dispatch and clear
/// counts, the kernel-time profile and the pool's bytes do not see it), keeps the fastest,
/// and later products of that shape take it without timing again; the products are right
/// whichever tile wins, with every layout, accumulation and bias. The split tensor-core
/// tile (f32 accuracy) is among the candidates, emulated in the H100's workgroup memory;
/// the f16-rounding one is not at f32.
#[test]
fn measured_tiles_are_timed_once_per_shape_aside_from_the_recording() {
    let Some(be) = gpu() else { return };
    let g = be.gpu();
    tensor_cores_or_emulated(g, "split tensor-core tile");
    let h100 = lay_out_for_the_h100(g, "measured_tiles_are_timed_once_per_shape");
    g.set_gemm_tiles(GemmTiles::Measured);
    let mut r = rng("measured_tiles_are_timed_once_per_shape_aside_from_the_recording");
    let (m, n, k) = (136, 72, 40);
    let a = uniform(&mut r, m * k, 1.0);
    let (ga, gc) = (g.buffer_from(&a), g.buffer_from(&poison(m * n)));
    let product = |b: &[f32], gb: &GpuBuffer| {
        row_major_product(g, (m, n, k), &ga, gb, &gc);
        let want = row_major_loops((m, n, k), &a, b);
        assert_close("measured product", &g.read::<f32>(&gc, m * n), &want, 1e-5);
    };
    let b = uniform(&mut r, k * n, 1.0);
    let gb = g.buffer_from(&b);
    assert!(g.profile(true) || !g.can_profile());
    let before = (g.dispatch_count(), g.cleared_bytes(), g.bytes_held());
    product(&b, &gb);
    let after = (g.dispatch_count(), g.cleared_bytes(), g.bytes_held());
    assert_eq!(
        after,
        (before.0 + 1, before.1, before.2),
        "dispatches, clears, bytes"
    );
    if g.can_profile() {
        let calls: u64 = g.kernel_times().iter().map(|t| t.calls).sum();
        assert_eq!(calls, 1, "kernels profiled for one product");
        g.profile(false);
    }
    let races = g.races();
    assert_eq!(races.len(), 1, "one shape measured");
    let race = &races[0];
    let shape = Shape {
        m,
        n,
        k,
        a_k: true,
        b_n: true,
        b16: false,
    };
    assert_eq!(race.shape, shape);
    let timed: Vec<Tile> = race.times.iter().map(|t| t.0).collect();
    assert_eq!(timed, candidates(g, &shape), "each candidate timed once");
    for t in [Tile::Small, Tile::Big(true, true), Tile::Tall(true, true)] {
        assert!(timed.contains(&t), "{t:?} not timed");
    }
    assert_eq!(timed.contains(&Tile::TensorSplit(true, true)), h100);
    assert!(
        !timed.contains(&Tile::Tensor(true, true)),
        "f16 rounding at f32"
    );
    assert!(race.times.iter().all(|t| t.1 > 0.0 && t.1.is_finite()));
    assert_eq!(Some(race.chosen), fastest(&race.times));
    // The same shape again: the tile kept, nothing timed; likewise a shape of the same
    // class (m and k within the same powers of two), and not one of another.
    let b = uniform(&mut r, k * n, 1.0);
    product(&b, &g.buffer_from(&b));
    assert_eq!(g.races(), races, "measured again");
    let alike = Shape {
        m: 129,
        k: 36,
        ..shape
    };
    assert_eq!(alike.class(), shape.class());
    let (ga2, gb2) = (g.buffer_from(&a[..129 * 36]), g.buffer_from(&b[..36 * n]));
    row_major_product(g, (129, n, 36), &ga2, &gb2, &gc);
    assert_eq!(
        g.races(),
        races,
        "measured again for a shape of the same class"
    );
    assert_ne!(Shape { m: 128, ..shape }.class(), shape.class());
    assert_ne!(Shape { k: 32, ..shape }.class(), shape.class());
    assert_ne!(Shape { n: 76, ..shape }.class(), shape.class());
    // Where the candidates change (reduced precision lets the f16-rounding tile in), the
    // class is measured again, with it.
    g.set_auto_tensor(true);
    row_major_product(g, (m, n, k), &ga, &gb, &gc);
    g.set_auto_tensor(false);
    let again = g.races();
    assert_eq!(again.len(), 2, "measured again with the rounding tile");
    assert!(again[1].candidates.contains(&Tile::Tensor(true, true)));
    // Every layout, accumulation and bias, in whichever tile wins for each.
    check_sizes(g, &mut r, &[(130, 133, 37)], 4, false);
    assert_eq!(g.races().len(), 6, "one more per layout");
    // Without the tensor cores (given up), a class measured with the split tile is
    // measured once more, without it, and then kept.
    if h100 {
        g.give_up_tensor_cores("matrix product", "a test gives them up");
        for _ in 0..2 {
            product(&b, &g.buffer_from(&b));
            assert_eq!(g.races().len(), 7, "measured once without the tensor cores");
        }
        let last = g.races().pop().expect("races");
        assert!(!last.candidates.contains(&Tile::TensorSplit(true, true)));
    }
}

/// Measured tiles kept in a file (`Gpu::set_product_tiles_file`, what the backend does
/// beside the autotune table): the first run measures and writes the class; a later run
/// on the adapter takes it from the file without measuring (its line says "(stored)"), as
/// every process of a device session then does; a class with other candidates is
/// measured and added; a file that is not one is said so and measured over.
#[test]
fn measured_tiles_are_kept_between_runs_in_a_file() {
    let file =
        std::env::temp_dir().join(format!("wgrnn-product-tiles-{}.json", std::process::id()));
    let _ = std::fs::remove_file(&file);
    let mut r = rng("measured_tiles_are_kept_between_runs_in_a_file");
    let (m, n, k) = (72, 64, 36);
    let a = uniform(&mut r, m * k, 1.0);
    let b = uniform(&mut r, k * n, 1.0);
    let want = row_major_loops((m, n, k), &a, &b);
    let run = |auto_tensor: bool| {
        let be = gpu()?;
        let g = be.gpu();
        tensor_cores_or_emulated(g, "tensor-core tile");
        g.set_gemm_tiles(GemmTiles::Measured);
        g.set_auto_tensor(auto_tensor);
        g.set_product_tiles_file(Some(file.clone()));
        let (ga, gb) = (g.buffer_from(&a), g.buffer_from(&b));
        let gc = g.buffer_from(&poison(m * n));
        row_major_product(g, (m, n, k), &ga, &gb, &gc);
        let got = g.read::<f32>(&gc, m * n);
        let tol = if auto_tensor { 1e-2 } else { 1e-5 };
        assert_close("product in the kept tile", &got, &want, tol);
        Some(g.races())
    };
    let Some(first) = run(false) else { return };
    assert_eq!(first.len(), 1);
    assert!(!first[0].stored, "measured in the first run");
    let kept = std::fs::read_to_string(&file).expect("the file was written");
    assert!(kept.contains("\"chosen\""), "{kept}");
    let second = run(false).expect("a GPU");
    assert_eq!(second.len(), 1);
    assert!(second[0].stored, "taken from the file");
    assert!(second[0].label().ends_with(" (stored)"));
    assert_eq!(
        (second[0].shape, &second[0].candidates, second[0].chosen),
        (first[0].shape, &first[0].candidates, first[0].chosen)
    );
    // Other candidates (the f16-rounding tile allowed): measured, and added beside.
    let third = run(true).expect("a GPU");
    assert!(!third[0].stored);
    let fourth = run(true).expect("a GPU");
    assert!(fourth[0].stored);
    assert!(
        run(false).expect("a GPU")[0].stored,
        "the first class still kept"
    );
    // Not a file of measured tiles: measured over (and rewritten).
    std::fs::write(&file, "not json").expect("write");
    assert!(!run(false).expect("a GPU")[0].stored);
    assert!(run(false).expect("a GPU")[0].stored);
    let _ = std::fs::remove_file(&file);
}

/// Which tile each choice takes: `Auto` the tensor cores only when allowed (reduced
/// precision) and present, `Tensor` wherever they are present, never for views the 128x128
/// staging cannot read, and the 64x64 tile for small `Auto` grids.
#[test]
fn tile_choice_follows_the_rules() {
    let Some(be) = gpu() else { return };
    let x = be.gpu().buffer(8);
    let a = Mat::rows(&x, 0, 512);
    let b = Mat::rows(&x, 0, 512);
    let odd = Mat::rows(&x, 1, 512);
    let c = Out {
        buf: &x,
        off: 0,
        rs: 512,
    };
    use GemmTiles::*;
    let big = (2048, 2048);
    let small = (64, 64);
    let cases = [
        (Auto, true, true, big, Tile::Tensor(true, true)),
        (Auto, true, false, big, Tile::Big(true, true)),
        (Auto, false, true, big, Tile::Big(true, true)),
        (Auto, true, true, small, Tile::Small),
        (Tensor, true, false, small, Tile::Tensor(true, true)),
        (Tensor, false, false, big, Tile::Big(true, true)),
        (Big, true, true, big, Tile::Big(true, true)),
        (Tall, true, true, big, Tile::Tall(true, true)),
        (Tall, false, false, small, Tile::Tall(true, true)),
        (Small, true, true, big, Tile::Small),
    ];
    for (choice, cores, auto, (m, n), want) in cases {
        let got = tile_for(choice, cores, auto, m, n, &a, &b, &c);
        assert_eq!(got, want, "{choice:?} cores={cores} auto={auto} {m}x{n}");
    }
    let got = tile_for(Tensor, true, true, 2048, 2048, &odd, &b, &c);
    assert_eq!(got, Tile::Small, "an unaligned view takes the 64x64 tile");
}

/// The tensor-core tile's source, for f32 and f16 B, is valid WGSL with cooperative
/// matrices, its `// @generate` lines unrolled into 8 named accumulators (and 8 for each
/// chunk's products, scaled back into them), and compiles to
/// SPIR-V (as wgpu's Vulkan backend does) for every layout of its override constants. No
/// adapter needed: lavapipe has no cooperative matrices.
#[test]
fn gemm_coop_compiles_to_spirv() {
    for b16 in [false, true] {
        let src = gemm_coop_source(b16);
        assert!(!src.lines().any(|l| l.trim().starts_with("// @generate")));
        assert_eq!(
            src.matches("= coop_mat16x16<f32, C>();").count(),
            16,
            "8 accumulators and the chunk's 8"
        );
        assert!(src.contains("    c3_1 = c3_1 + t3_1 * back;"));
        assert!(src.contains("    c3_1 = c3_1 + (t3_1 * back_a) * back_b;"));
        assert_eq!(
            src.matches("coopMultiplyAdd(").count(),
            16 + 32,
            "8 per 16-deep step, and 16 more split"
        );
        assert!(src.contains("t3_1 = coopMultiplyAdd(fal3, fb1, t3_1);"));
        assert!(src.contains("t3_1 = coopMultiplyAdd(fa3, fbl1, t3_1);"));
        assert_eq!(src.matches("coopStoreT(").count(), 8);
        assert_eq!(only_private(&src), ["start: Starts"]);
        let mut layouts = Vec::new();
        for split in [false, true] {
            for (a_k, b_n) in [(true, true), (true, false), (false, true), (false, false)] {
                let overrides = vec![
                    ("A_K_CONTIGUOUS", a_k as u32 as f64),
                    ("B_N_CONTIGUOUS", b_n as u32 as f64),
                    ("SPLIT", split as u32 as f64),
                ];
                layouts.push(("gemm_coop", overrides));
            }
        }
        compile_coop_to_spirv(&format!("b16={b16}"), &src, &layouts);
    }
}

/// The 256x128 tile's generated source: 32 named vec4 accumulator fields, 32 multiply-adds
/// per k step over the four A and two B registers, 32 stores, no template line left.
#[test]
fn gemm256_source_is_unrolled() {
    let src = gemm256_source();
    assert!(!src.lines().any(|l| l.trim().starts_with("// @")));
    // The k loop's groups of 4 steps written out, each reading its own staged rows.
    assert_eq!(src.matches("(*acc).acc15_1 += a3.w * b1;").count(), 4);
    assert!(src.contains("let ra = ra4 + 3u * AM4;"));
    assert_eq!(
        src.matches(": vec4<f32>,").count(),
        32 + 3,
        "32 accumulators, 3 loads"
    );
    assert_eq!(src.matches("store4(m0").count(), 32, "32 stores");
    assert!(src.contains("(*acc).acc15_1 += a3.w * b1;"));
    assert!(src.contains("store4(m0 + 192u + ty * 4u + 3u, n0 + 64u + tx * 4u, acc.acc15_1);"));
}

/// The generated source replaces every `// @generate` line and `// @unroll` block with
/// unrolled code and keeps no private arrays (the accumulators must be named registers).
#[test]
fn gemm128_source_is_unrolled() {
    let src = gemm128_source();
    assert!(
        !src.lines().any(|l| l.trim().starts_with("// @")),
        "a template line was left"
    );
    // The k loop's groups of 4 steps written out, each reading its own staged rows.
    assert!(src.contains("let rb = rb4 + 3u * 32u;"));
    assert_eq!(
        src.matches(": vec4<f32>,").count(),
        16 + 4,
        "16 accumulators, 4 loads"
    );
    assert_eq!(src.matches("store4(m0").count(), 16, "16 stores");
    assert_eq!(
        src.matches(" * b0;").count() + src.matches(" * b1;").count(),
        4 * 16,
        "16 vec4 multiply-adds per k step"
    );
    assert!(!src.contains("array<f32, "));
    assert_eq!(only_private(&src), ["start: Starts"]);
}

/// The module-scope private variables of `src`: the tiles keep theirs in named registers,
/// and their only private variable is where the workgroup's product starts.
fn only_private(src: &str) -> Vec<&str> {
    src.lines()
        .filter_map(|l| l.trim().strip_prefix("var<private> "))
        .map(|l| l.trim_end_matches(';'))
        .collect()
}

/// Checks `gemm` against loops for each `(m, n, k)`, every transpose, accumulate and bias;
/// operands start at offsets that are multiples of `align` (0: odd offsets). With `b16`, B is
/// an f16 buffer (an f16 layer cache) holding values the loops also use, rounded to f16. On
/// the tensor-core tile both operands hold f16 values, which it multiplies exactly.
fn check_sizes(
    g: &Gpu,
    r: &mut ChaCha8Rng,
    sizes: &[(usize, usize, usize)],
    align: usize,
    b16: bool,
) {
    check_sizes_at(g, r, sizes, align, b16, 1.0);
}

/// `check_sizes` with A and (an f32) B scaled by `magnitude` (a power of two, so the scaled
/// values stay exact), C and the bias by the product's scale, and the result compared
/// relative to that scale: gradients of a mean
/// loss are often far below f16's smallest normal number, which the tensor-core tile must
/// handle by scaling.
fn check_sizes_at(
    g: &Gpu,
    r: &mut ChaCha8Rng,
    sizes: &[(usize, usize, usize)],
    align: usize,
    b16: bool,
    magnitude: f32,
) {
    let (a_off, b_off, c_off, bias_off) = if align == 0 {
        (3, 2, 4, 1)
    } else {
        (align, 2 * align, align, 1)
    };
    let tensor = g.gemm_tiles() == GemmTiles::Tensor && g.has_tensor_cores();
    let out_scale = if b16 {
        magnitude
    } else {
        magnitude * magnitude
    };
    let to_f16 = |v: &mut Vec<f32>| v.iter_mut().for_each(|x| *x = f16::from_f32(*x).to_f32());
    for &(m, n, k) in sizes {
        for ta in [false, true] {
            for tb in [false, true] {
                for (acc, with_bias) in [(false, false), (true, true), (false, true)] {
                    // Row strides padded to a multiple of `align` where the view needs it.
                    let pad = |x: usize| {
                        if align == 0 {
                            x
                        } else {
                            x.next_multiple_of(align)
                        }
                    };
                    let (a_rs, b_rs, c_rs) = (
                        if ta { pad(m) } else { pad(k) },
                        if tb { pad(k) } else { pad(n) },
                        pad(n),
                    );
                    let a_rows = if ta { k } else { m };
                    let b_rows = if tb { n } else { k };
                    let mut a = uniform(r, a_off + a_rows * a_rs, 1.0);
                    let mut b = uniform(r, b_off + b_rows * b_rs, 1.0);
                    if b16 || tensor {
                        to_f16(&mut b);
                    }
                    if tensor {
                        to_f16(&mut a);
                    }
                    a.iter_mut().for_each(|x| *x *= magnitude);
                    if !b16 {
                        b.iter_mut().for_each(|x| *x *= magnitude);
                    }
                    let bias = uniform(r, n + bias_off, out_scale);
                    let c_len = c_off + m * c_rs;
                    let c0 = if acc {
                        uniform(r, c_len, out_scale)
                    } else {
                        poison(c_len)
                    };
                    let a_at = |i: usize, l: usize| {
                        if ta {
                            a[a_off + l * a_rs + i]
                        } else {
                            a[a_off + i * a_rs + l]
                        }
                    };
                    let b_at = |l: usize, j: usize| {
                        if tb {
                            b[b_off + j * b_rs + l]
                        } else {
                            b[b_off + l * b_rs + j]
                        }
                    };
                    let mut want = c0.clone();
                    for i in 0..m {
                        for j in 0..n {
                            let mut s = 0.0f64;
                            for l in 0..k {
                                s += a_at(i, l) as f64 * b_at(l, j) as f64;
                            }
                            let mut v = 0.5 * s as f32;
                            if with_bias {
                                v += bias[bias_off + j];
                            }
                            if acc {
                                v += c0[c_off + i * c_rs + j];
                            }
                            want[c_off + i * c_rs + j] = v;
                        }
                    }
                    let (ga, gbias) = (g.buffer_from(&a), g.buffer_from(&bias));
                    let gb = if b16 {
                        let gb = g.buffer_f16(b.len());
                        let half: Vec<f16> = b.iter().map(|&v| f16::from_f32(v)).collect();
                        g.write(&gb, &half);
                        gb
                    } else {
                        g.buffer_from(&b)
                    };
                    let gc = g.buffer_from(&c0);
                    let ma = if ta {
                        Mat::t(&ga, a_off, a_rs)
                    } else {
                        Mat::rows(&ga, a_off, a_rs)
                    };
                    let mb = if tb {
                        Mat::t(&gb, b_off, b_rs)
                    } else {
                        Mat::rows(&gb, b_off, b_rs)
                    };
                    let out = Out {
                        buf: &gc,
                        off: c_off,
                        rs: c_rs,
                    };
                    let big = big_tile_layout(g.gemm_tiles(), m, n, &ma, &mb, &out).is_some();
                    assert_eq!(
                        big,
                        matches!(
                            g.gemm_tiles(),
                            GemmTiles::Big
                                | GemmTiles::Tall
                                | GemmTiles::Tensor
                                | GemmTiles::TensorSplit
                        ),
                        "tile not as intended"
                    );
                    gemm(
                        g,
                        m,
                        n,
                        k,
                        ma,
                        mb,
                        out,
                        0.5,
                        acc,
                        with_bias.then_some((&gbias, bias_off)),
                    );
                    let got = g.read::<f32>(&gc, c_len);
                    let what = format!(
                        "gemm {:?} (tensor cores: {tensor}) m={m} n={n} k={k} ta={ta} tb={tb} \
                         acc={acc} bias={with_bias} b16={b16} magnitude={magnitude:e}",
                        g.gemm_tiles()
                    );
                    // Outputs match; everything else (before the output, row padding) is
                    // bit for bit untouched.
                    let (mut got_out, mut want_out) = (Vec::new(), Vec::new());
                    for (i, (x, y)) in got.iter().zip(&c0).enumerate() {
                        let inside = i >= c_off && (i - c_off) % c_rs < n;
                        if inside {
                            got_out.push(*x / out_scale);
                            want_out.push(want[i] / out_scale);
                        } else {
                            assert_eq!(x.to_bits(), y.to_bits(), "{what}: element {i} changed");
                        }
                    }
                    assert_close(&what, &got_out, &want_out, 1e-5);
                }
            }
        }
    }
}

/// A product with more rows than one dispatch's grid holds (`MOST_ROWS`: 65535 of the 64x64
/// tile's rows, reached by a layer's input projection at 4.2M rows of steps x sequences)
/// runs in pieces: every row against loops, with A as rows and transposed, at odd offsets
/// in the 64x64 tile and aligned in the 128x128 one (whose vec4 loads each piece must
/// keep), added to C with a bias.
#[test]
fn products_taller_than_one_grid_run_in_pieces() {
    let Some(be) = gpu() else { return };
    let g = be.gpu();
    let mut r = rng("products_taller_than_one_grid_run_in_pieces");
    let (m, n, k) = (MOST_ROWS + 70, 3, 2);
    for (choice, off) in [(GemmTiles::Small, 3), (GemmTiles::Big, 4)] {
        g.set_gemm_tiles(choice);
        for ta in [false, true] {
            let a = uniform(&mut r, off + m * k, 1.0);
            let b = uniform(&mut r, off + k * 4, 1.0);
            let bias = uniform(&mut r, off + n, 1.0);
            let c0 = uniform(&mut r, off + m * 4, 1.0);
            let (ga, gb, gc, gbias) = (
                g.buffer_from(&a),
                g.buffer_from(&b),
                g.buffer_from(&c0),
                g.buffer_from(&bias),
            );
            let ma = match ta {
                true => Mat::t(&ga, off, m),
                false => Mat::rows(&ga, off, k),
            };
            let out = Out {
                buf: &gc,
                off,
                rs: 4,
            };
            let mb = Mat::rows(&gb, off, 4);
            let bias_at = Some((&gbias, off));
            gemm(g, m, n, k, ma, mb, out, 0.5, true, bias_at);
            let got = g.read::<f32>(&gc, c0.len());
            let mut want = c0.clone();
            for i in 0..m {
                for j in 0..n {
                    let a_at = |l: usize| a[off + if ta { l * m + i } else { i * k + l }];
                    let s: f32 = (0..k).map(|l| a_at(l) * b[off + l * 4 + j]).sum();
                    want[off + i * 4 + j] += 0.5 * s + bias[off + j];
                }
            }
            let what = format!("{choice:?} m={m} ta={ta}");
            assert_close(&what, &got, &want, 1e-5);
        }
    }
}

/// Products deeper than an adapter's loop budget lets one dispatch run (llvmpipe, CI's
/// adapter, ends every loop of an invocation past 65535 iterations, silently: the 64x64
/// tile summed 58255 k steps of a deeper product and stopped) take their k steps in pieces,
/// each added to what the ones before wrote: under every tile, either operand either way
/// round, added to C with a bias, every element the exact sum of all its k steps (small
/// integers whose pattern has no period that divides a piece, so a piece that starts its
/// operands anywhere but at its k steps shows too). Three dispatches a product where the
/// loops are capped, one elsewhere.
#[test]
fn deep_products_run_whole_where_loops_are_capped() {
    let Some(be) = gpu() else { return };
    let g = be.gpu();
    let capped = g.loops_are_capped();
    if g.info().name.starts_with("llvmpipe") {
        assert!(capped, "llvmpipe caps every kernel's loops");
    }
    tensor_cores_or_emulated(g, "tensor-core tile");
    let split = lay_out_for_the_h100(g, "deep_products_run_whole_where_loops_are_capped");
    let tiles = every_tile(split);
    let (m, n) = (4usize, 8usize);
    let probe_buf = g.buffer(64);
    for choice in tiles {
        g.set_gemm_tiles(choice);
        let probe = Mat::rows(&probe_buf, 0, 8);
        let tile = tile_for(
            choice,
            g.has_tensor_cores(),
            false,
            m,
            n,
            &probe,
            &probe,
            &Out {
                buf: &probe_buf,
                off: 0,
                rs: n,
            },
        );
        let depth = tile.k_per_dispatch(g);
        let k = if capped { 2 * depth + 8 } else { 70004 };
        // A(i, l) = l % 5 + 1 + i, B(l, j) = (l + j) % 7 - 3: exact in f16 and in every sum.
        let a_at = |i: usize, l: usize| (l % 5 + 1 + i) as f32;
        let b_at = |l: usize, j: usize| ((l + j) % 7) as f32 - 3.0;
        for (ta, tb) in [(false, false), (true, true)] {
            let a: Vec<f32> = match ta {
                true => (0..k * m).map(|e| a_at(e % m, e / m)).collect(),
                false => (0..m * k).map(|e| a_at(e / k, e % k)).collect(),
            };
            let b: Vec<f32> = match tb {
                true => (0..n * k).map(|e| b_at(e % k, e / k)).collect(),
                false => (0..k * n).map(|e| b_at(e / n, e % n)).collect(),
            };
            let bias: Vec<f32> = (0..n).map(|j| j as f32).collect();
            let c0: Vec<f32> = (0..m * n).map(|e| 100.0 * e as f32).collect();
            let (ga, gb, gbias, gc) = (
                g.buffer_from(&a),
                g.buffer_from(&b),
                g.buffer_from(&bias),
                g.buffer_from(&c0),
            );
            let ma = match ta {
                true => Mat::t(&ga, 0, m),
                false => Mat::rows(&ga, 0, k),
            };
            let mb = match tb {
                true => Mat::t(&gb, 0, k),
                false => Mat::rows(&gb, 0, n),
            };
            let out = Out {
                buf: &gc,
                off: 0,
                rs: n,
            };
            let before = g.dispatch_count();
            gemm(g, m, n, k, ma, mb, out, 1.0, true, Some((&gbias, 0)));
            let dispatches = g.dispatch_count() - before;
            let what = format!("{choice:?} ({tile:?}) k={k} ta={ta} tb={tb}");
            assert_eq!(dispatches, if capped { 3 } else { 1 }, "{what}: dispatches");
            let got = g.read::<f32>(&gc, m * n);
            for i in 0..m {
                for j in 0..n {
                    let sum: f64 = (0..k).map(|l| (a_at(i, l) * b_at(l, j)) as f64).sum();
                    let want = (sum + bias[j] as f64 + c0[i * n + j] as f64) as f32;
                    assert_eq!(got[i * n + j], want, "{what}: C({i}, {j})");
                }
            }
        }
    }
}

/// Held products taller than one grid keep their dispatches side by side, piece by piece:
/// two products of `MOST_ROWS + 9` rows in two dispatches (four alone), each output what
/// it gives alone, to the bit.
#[test]
fn tall_held_products_share_each_piece() {
    let Some(be) = gpu() else { return };
    let g = be.gpu();
    g.set_gemm_tiles(GemmTiles::Small);
    let mut r = rng("tall_held_products_share_each_piece");
    let (m, n, k) = (MOST_ROWS + 9, 2, 3);
    let a = g.buffer_from(&uniform(&mut r, 2 * m * k, 1.0));
    let b = g.buffer_from(&uniform(&mut r, 2 * k * n, 1.0));
    let c = [g.buffer(2 * m * n)];
    let product = |i: usize| Product {
        m,
        n,
        k,
        a: Mat::rows(&a, i * m * k, k),
        b: Mat::rows(&b, i * k * n, n),
        c: Out {
            buf: &c[0],
            off: i * m * n,
            rs: n,
        },
        alpha: 1.0,
        accumulate: false,
        bias: None,
    };
    let c0 = [poison(2 * m * n)];
    let run = |together: bool| {
        held_or_alone(g, &c, &c0, together, |held| {
            (0..2).for_each(|i| held.record(product(i)))
        })
    };
    let (alone, four) = run(false);
    let (together, two) = run(true);
    assert_eq!((four, two), (4, 2), "dispatches alone, together");
    assert!(
        together == alone,
        "held pieces differ from the products alone"
    );
    assert!(
        alone[0].iter().all(|&x| !f32::from_bits(x).is_nan()),
        "an output row was not written"
    );
}

/// Products held together (`Products`, as the layer pipeline holds several layers'
/// input projections and gradients) under every tile: three of one shape in parts of joined
/// buffers share a dispatch; one of another shape takes its own; two more of the first
/// shape that write (or add onto) its output run after it, each in a dispatch of its own,
/// since the first of them cannot run before it and the second not beside the first.
/// Every output is what `gemm` gives for each product alone, in order, to the bit,
/// outputs poisoned before either run (or, where the products add to them, drawn), and
/// nothing else in the buffers changes.
#[test]
fn held_products_are_each_what_gemm_gives_alone() {
    let Some(be) = gpu() else { return };
    let g = be.gpu();
    tensor_cores_or_emulated(g, "tensor-core tile");
    let split = lay_out_for_the_h100(g, "held_products_are_each_what_gemm_gives_alone");
    let mut r = rng("held_products_are_each_what_gemm_gives_alone");
    let (m, n, k) = (68, 136, 40);
    let len = 4 * 160 * 64;
    let a_parts = g.joined(&[len, len, len], false);
    let c_parts = g.joined(&[len, len, len], false);
    let (gb, gbias) = (g.buffer(4 * len), g.buffer(1024));
    let tiles = every_tile(split);
    for choice in tiles {
        for (ta, tb, acc) in [(false, true, false), (true, false, true)] {
            for part in &a_parts {
                g.write(part, &uniform(&mut r, len, 1.0));
            }
            g.write(&gb, &uniform(&mut r, 4 * len, 1.0));
            // Biases in [7, 9], so that no output's sum cancels to zero, which would leave
            // an output added to C as it was and the count of changed outputs below one
            // short: with biases in [-1, 1] that came about once in a hundred runs
            // (WGRNN_TEST_SEED=1796657049390206014: 0.5 A B rounded to minus the bias).
            let bias: Vec<f32> = uniform(&mut r, 1024, 1.0).iter().map(|b| b + 8.0).collect();
            g.write(&gbias, &bias);
            // Product i: A at 4 (i + 1) of A's part i (part 0 from the fourth), B at
            // i * 8192, C at 8 i of C's part i, the bias at 136 i. The fourth is deeper
            // (k + 8) and writes past the first's C, where the fifth and sixth write too.
            let product = |i: usize, part: usize, depth: usize, c_at: usize| {
                let a_ld = if ta { m + 4 } else { depth + 4 };
                let b_ld = if tb { depth + 4 } else { n + 4 };
                Product {
                    m,
                    n,
                    k: depth,
                    a: match ta {
                        true => Mat::t(&a_parts[part], 4 * (i + 1), a_ld),
                        false => Mat::rows(&a_parts[part], 4 * (i + 1), a_ld),
                    },
                    b: match tb {
                        true => Mat::t(&gb, i * 8192, b_ld),
                        false => Mat::rows(&gb, i * 8192, b_ld),
                    },
                    c: Out {
                        buf: &c_parts[part],
                        off: c_at,
                        rs: n + 8,
                    },
                    alpha: 0.5,
                    accumulate: acc,
                    bias: Some((&gbias, 136 * i)),
                }
            };
            let far = m * (n + 8) + 64;
            let products = [
                product(0, 0, k, 0),
                product(1, 1, k, 8),
                product(2, 2, k, 16),
                product(3, 0, k + 8, far),
                product(4, 0, k, far),
                product(5, 0, k, far),
            ];
            g.set_gemm_tiles(choice);
            for p in &products {
                let big = big_tile_layout(choice, m, n, &p.a, &p.b, &p.c).is_some();
                assert_eq!(
                    big,
                    choice != GemmTiles::Small,
                    "{choice:?}: tile not as intended"
                );
            }
            let c0: Vec<Vec<f32>> = (0..3)
                .map(|_| match acc {
                    true => uniform(&mut r, len, 1.0),
                    false => poison(len),
                })
                .collect();
            let run = |together: bool| {
                held_or_alone(g, &c_parts, &c0, together, |held| {
                    products.iter().for_each(|&p| held.record(p))
                })
            };
            let (alone, one_each) = run(false);
            let (together, fewer) = run(true);
            let what = format!("{choice:?} ta={ta} tb={tb} acc={acc}");
            assert_eq!(
                (one_each, fewer),
                (6, 4),
                "{what}: dispatches alone, together"
            );
            for (i, (x, y)) in together.iter().zip(&alone).enumerate() {
                assert!(x == y, "{what}: C's part {i} differs");
            }
            let changed = |i: usize| {
                let was = bits(&c0[i]);
                alone[i].iter().zip(&was).filter(|(x, y)| x != y).count()
            };
            assert_eq!(
                changed(0),
                2 * m * n,
                "{what}: the outputs in the first part"
            );
            assert_eq!(changed(1), m * n, "{what}: the second output");
        }
    }
}

/// Nothing but matrix products may be recorded while products are held: anything else
/// would run before them though recorded after.
#[test]
#[should_panic(expected = "a dispatch was recorded among held matrix products")]
fn a_dispatch_among_held_products_is_refused() {
    let Some(be) = gpu() else {
        panic!("a dispatch was recorded among held matrix products (no GPU to show it)")
    };
    let g = be.gpu();
    let (a, c) = (g.buffer_from(&[1.0f32; 64]), g.buffer_from(&[0.0f32; 64]));
    let held = Products::new(g);
    let hold = held.hold();
    held.record(Product {
        m: 8,
        n: 8,
        k: 8,
        a: Mat::rows(&a, 0, 8),
        b: Mat::rows(&a, 0, 8),
        c: Out {
            buf: &c,
            off: 0,
            rs: 8,
        },
        alpha: 1.0,
        accumulate: false,
        bias: None,
    });
    col_sums(g, Mat::rows(&a, 0, 8), 8, 8, &c, &[0]);
    drop(hold);
}

/// Column sums (`shaders/colsum.wgsl`, the bias gradients): columns spanning two 256-wide
/// groups, rows split into several slices, a strided view at an odd offset, added into a
/// vector at one offset or at two (the LSTM's two bias gradients), with the rest of the
/// vector untouched.
#[test]
fn col_sums_match_loops() {
    let Some(be) = gpu() else { return };
    let g = be.gpu();
    let mut r = rng("col_sums_match_loops");
    for &(rows, n, ld, off) in &[(1000, 300, 305, 7), (3, 5, 5, 0), (64, 1, 2, 1)] {
        for ats in [vec![4], vec![4, n + 9]] {
            let src = uniform(&mut r, off + rows * ld, 1.0);
            let len = 2 * n + 12;
            let dst0 = uniform(&mut r, len, 1.0);
            let mut want = dst0.clone();
            for j in 0..n {
                let s: f64 = (0..rows).map(|i| src[off + i * ld + j] as f64).sum();
                for &at in &ats {
                    want[at + j] += s as f32;
                }
            }
            let (gs, gd) = (g.buffer_from(&src), g.buffer_from(&dst0));
            col_sums(g, Mat::rows(&gs, off, ld), rows, n, &gd, &ats);
            let got = g.read::<f32>(&gd, len);
            let what = format!("col_sums rows={rows} n={n} into {ats:?}");
            // Each sum against the scale of its terms: O(1) terms that cancel to near zero
            // leave the rounding of the terms, not of the result (rows=64, n=1 came to
            // 7e-5 of a small sum, WGRNN_TEST_SEED=1796631644210197866); a row left out
            // would be about 1/rows of it.
            for &at in &ats {
                for j in 0..n {
                    let terms = (0..rows).map(|i| src[off + i * ld + j].abs() as f64);
                    let scale = dst0[at + j].abs() as f64 + terms.sum::<f64>();
                    let err = (got[at + j] as f64 - want[at + j] as f64).abs() / scale;
                    assert!(err <= 1e-5, "{what}: column {j} at {at} off by {err:e}");
                }
            }
            for i in (0..len).filter(|i| !ats.iter().any(|&at| (at..at + n).contains(i))) {
                assert_eq!(
                    got[i].to_bits(),
                    dst0[i].to_bits(),
                    "{what}: element {i} changed"
                );
            }
        }
    }
}

/// Column sums held together (`Products::sum`: several layers' or directions' bias
/// gradients): three of one shape over parts of joined buffers, one into two places,
/// share a pair of dispatches; one of another width takes its own pair; one that adds
/// into the first one's destination again runs after it in a pair of its own. Every
/// destination is what `col_sums` gives for each alone, in order, to the bit; nothing
/// else changes.
#[test]
fn held_column_sums_are_each_what_col_sums_gives_alone() {
    let Some(be) = gpu() else { return };
    let g = be.gpu();
    let mut r = rng("held_column_sums_are_each_what_col_sums_gives_alone");
    let (rows, n, ld, len) = (300, 40, 48, 16384);
    let src = g.joined(&[len, len, len], false);
    let dst = g.joined(&[256, 256, 256], false);
    for part in &src {
        g.write(part, &uniform(&mut r, len, 1.0));
    }
    let dst0: Vec<Vec<f32>> = (0..3).map(|_| uniform(&mut r, 256, 1.0)).collect();
    let sum = |part: usize, off: usize, width: usize, ats: &[usize]| {
        ColSum::new(Mat::rows(&src[part], off, ld), rows, width, &dst[part], ats)
    };
    let sums = [
        sum(0, 4, n, &[0]),
        sum(1, 8, n, &[40, 100]),
        sum(2, 12, n, &[80]),
        sum(0, 16, n - 8, &[150]),
        sum(0, 20, n, &[0]),
    ];
    let run = |together: bool| {
        held_or_alone(g, &dst, &dst0, together, |held| {
            sums.iter().for_each(|&s| held.sum(s))
        })
    };
    let (alone, one_each) = run(false);
    let (together, fewer) = run(true);
    assert_eq!((one_each, fewer), (10, 6), "dispatches alone, together");
    assert!(together == alone, "held sums differ from alone");
    let changed: Vec<usize> = (0..3)
        .map(|i| {
            alone[i]
                .iter()
                .zip(&bits(&dst0[i]))
                .filter(|(x, y)| x != y)
                .count()
        })
        .collect();
    assert_eq!(
        changed,
        [2 * n - 8, 2 * n, n],
        "elements each part's sums changed"
    );
}

/// Every tile choice but `Auto`: the split tensor-core tile where it runs (`split`).
fn every_tile(split: bool) -> Vec<GemmTiles> {
    let mut tiles = vec![
        GemmTiles::Small,
        GemmTiles::Big,
        GemmTiles::Tall,
        GemmTiles::Tensor,
    ];
    if split {
        tiles.push(GemmTiles::TensorSplit);
    }
    tiles
}

/// C = A B from f64 loops, with A [m, k], B [k, n] and C [m, n] row-major.
fn row_major_loops((m, n, k): (usize, usize, usize), a: &[f32], b: &[f32]) -> Vec<f32> {
    (0..m * n)
        .map(|e| {
            let (i, j) = (e / n, e % n);
            (0..k)
                .map(|l| a[i * k + l] as f64 * b[l * n + j] as f64)
                .sum::<f64>() as f32
        })
        .collect()
}

/// Records C = A B with A [m, k], B [k, n] and C [m, n] row-major from their first element.
fn row_major_product(
    g: &Gpu,
    (m, n, k): (usize, usize, usize),
    a: &GpuBuffer,
    b: &GpuBuffer,
    c: &GpuBuffer,
) {
    let out = Out {
        buf: c,
        off: 0,
        rs: n,
    };
    let (ma, mb) = (Mat::rows(a, 0, k), Mat::rows(b, 0, n));
    gemm(g, m, n, k, ma, mb, out, 1.0, false, None);
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Writes `init` into `parts`, records what `record` gives a `Products` (held together
/// where `together`, else one by one) and returns each part's bits after and the
/// dispatches it took.
fn held_or_alone<'a>(
    g: &'a Gpu,
    parts: &[GpuBuffer],
    init: &[Vec<f32>],
    together: bool,
    record: impl Fn(&Products<'a>),
) -> (Vec<Vec<u32>>, u64) {
    for (part, v) in parts.iter().zip(init) {
        g.write(part, v);
    }
    let before = g.dispatch_count();
    let held = Products::new(g);
    let hold = together.then(|| held.hold());
    record(&held);
    drop(hold);
    let dispatches = g.dispatch_count() - before;
    let out = parts
        .iter()
        .map(|p| bits(&g.read::<f32>(p, p.len())))
        .collect();
    (out, dispatches)
}

/// A copy between two ranges of one buffer (`Gpu::copy` through `shaders/copy_within.wgsl`,
/// which the transfer command cannot make), between parts of one joined buffer and within a
/// buffer of its own, two such copies in one dispatch, and ten over the parts of a joined
/// buffer in two (`Gpu::copy_within`): the destination ranges get the sources' bits, and
/// nothing else changes.
#[test]
fn copies_within_one_buffer_move_only_their_range() {
    let Some(be) = gpu() else { return };
    let g = be.gpu();
    let mut r = rng("copies_within_one_buffer_move_only_their_range");
    let parts = g.joined(&[300, 41], false);
    let own = g.buffer(500);
    for (a, b) in [(&parts[0], &parts[1]), (&parts[1], &parts[0]), (&own, &own)] {
        let va = uniform(&mut r, a.len(), 1.0);
        g.write(a, &va);
        let vb = match std::ptr::eq(a, b) {
            true => va.clone(),
            false => {
                let v = uniform(&mut r, b.len(), 1.0);
                g.write(b, &v);
                v
            }
        };
        let (src_at, dst_at, n) = (3, b.len() - 40, 37);
        g.copy(a, src_at, b, dst_at, n);
        let got = g.read::<f32>(b, b.len());
        for (i, v) in got.iter().enumerate() {
            let want = match (dst_at..dst_at + n).contains(&i) {
                true => va[src_at + i - dst_at],
                false => vb[i],
            };
            assert_eq!(v.to_bits(), want.to_bits(), "element {i}");
        }
    }
    // Two ranges of a part in one dispatch (the layer pipeline's carried dgh and scratch
    // rows), one reading from where the other does not write.
    let v = uniform(&mut r, parts[0].len(), 1.0);
    g.write(&parts[0], &v);
    let ranges = [(0, 200, 30), (40, 260, 25)];
    let before = g.dispatch_count();
    g.copy_within(&parts[0], &ranges);
    assert_eq!(g.dispatch_count() - before, 1, "two ranges, one dispatch");
    let mut want = v.clone();
    for &(from, to, n) in &ranges {
        want[to..to + n].copy_from_slice(&v[from..from + n]);
    }
    let got = g.read::<f32>(&parts[0], v.len());
    assert_eq!(bits(&got), bits(&want), "two ranges in one dispatch");
    // Every layer's carried rows at once: ten ranges over the parts of one joined buffer
    // (eight a dispatch), of different lengths, each read where nothing is written.
    let parts = g.joined(&[600, 600, 600, 600, 600], false);
    let whole = parts[0].whole().expect("a joined buffer").0;
    let at = |p: usize| parts[p].whole().expect("a part").1;
    let len = at(4) + 600;
    let v = uniform(&mut r, len, 1.0);
    g.write(whole, &v);
    let ranges: Vec<(usize, usize, usize)> = (0..10)
        .map(|i| {
            (
                at(i / 2) + 300 * (i % 2),
                at(i / 2) + 300 * (i % 2) + 150,
                50 + 7 * i,
            )
        })
        .collect();
    let before = g.dispatch_count();
    g.copy_within(whole, &ranges);
    assert_eq!(
        g.dispatch_count() - before,
        2,
        "ten ranges, eight a dispatch"
    );
    let mut want = v.clone();
    for &(from, to, n) in &ranges {
        want[to..to + n].copy_from_slice(&v[from..from + n]);
    }
    let got = g.read::<f32>(whole, len);
    assert_eq!(bits(&got), bits(&want), "ten ranges over the parts");
}

/// The self-check the backend runs where it opens an adapter with matrix units
/// (`verify_tensor_cores`: a product exact in f32, compared to the last bit, for the tile
/// and, where it runs, as here in the H100's workgroup memory, its split twin) passes on
/// the tiles as they are, on the matrix units or emulated, and leaves them in use and the
/// tile choice as it was; without tensor cores it reports none and changes nothing.
#[test]
fn the_tensor_tile_passes_its_self_check() {
    let Some(be) = gpu() else { return };
    let g = be.gpu();
    let emulated = tensor_cores_or_emulated(g, "tensor-core tile");
    lay_out_for_the_h100(g, "the_tensor_tile_passes_its_self_check");
    g.set_gemm_tiles(GemmTiles::Big);
    assert!(
        verify_tensor_cores(g),
        "the tile must give the exact product"
    );
    assert!(g.has_tensor_cores());
    assert_eq!(g.gemm_tiles(), GemmTiles::Big);
    if emulated {
        assert!(!g.set_tensor_emulation(false));
        assert!(!verify_tensor_cores(g) && !g.has_tensor_cores());
    }
}

/// A kernel the device refuses (here: WGSL that does not type-check, as an experimental
/// feature may on some driver) comes back as an error from `try_pipeline` instead of stopping
/// the process; after `give_up_tensor_cores` the tensor choice falls back to the 128x128 tile
/// and still computes the product.
#[test]
fn a_refused_tensor_tile_falls_back() {
    static BROKEN: wgrnn::backend::wgpu::runtime::Shader = wgrnn::backend::wgpu::runtime::Shader {
        name: "broken_for_test",
        source: "@compute @workgroup_size(1) fn main() { let x: u32 = 1.5; }",
    };
    let Some(be) = gpu() else { return };
    let g = be.gpu();
    let Err(err) = g.try_pipeline(&BROKEN, "main", &[]) else {
        panic!("a kernel that does not type-check must be refused");
    };
    assert!(!err.is_empty());
    assert!(g.set_tensor_emulation(true) && g.has_tensor_cores());
    g.give_up_tensor_cores("matrix product", &err);
    assert!(!g.has_tensor_cores() && !g.tensor_emulated());
    g.set_gemm_tiles(GemmTiles::Tensor);
    let mut r = rng("a_refused_tensor_tile_falls_back");
    check_sizes(g, &mut r, &[(130, 133, 37)], 4, false);
}
