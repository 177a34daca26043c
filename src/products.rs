//! `wgrnn bench --products`: the large matrix products of a training step timed one by one
//! under each GEMM tile, at the shapes and operand layouts the layers use, so a device run
//! says which tile is fastest for which product and how far each is from the device's peak
//! (BENCHMARKS.md, "Where the time must go": the flagship needs its products at about 40
//! TFLOP/s). The step's own per-kernel table adds all products of a tile together; this
//! separates them.

use std::time::Instant;

use anyhow::{Result, bail};

use crate::backend::wgpu::Gpu;
use crate::backend::wgpu::gemm::{GemmTiles, gemm, split_tile_runs};
use crate::backend::wgpu::gemm_measure::{Operands, Shape};
use crate::bench::BenchConfig;

/// One large product of a layer: `C [m, n] = A [m, k] B [k, n]`, with A and B stored as the
/// layers store them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Product {
    /// The suite entry (or configuration label) it comes from.
    pub config: String,
    /// What it computes: `xp` (input projections of all steps), `dx` (the input's gradient),
    /// `dW_ih`, `dW_hh` (weight gradients over all steps); with the layer, `l0` or `l1+`.
    pub what: String,
    /// Rows of C.
    pub m: usize,
    /// Columns of C.
    pub n: usize,
    /// The inner dimension.
    pub k: usize,
    /// A is stored transposed (m is its contiguous dimension: the gate gradients read as
    /// `[gates, rows]`), else row-major.
    pub a_t: bool,
    /// B is stored transposed (k is its contiguous dimension: W_ih read as `W_ih^T`), else
    /// row-major.
    pub b_t: bool,
}

impl Product {
    /// Floating-point operations of one product.
    pub fn flops(&self) -> f64 {
        2.0 * self.m as f64 * self.n as f64 * self.k as f64
    }
}

/// The distinct large products of a training step of `c`, per direction: the first layer's
/// four (its input width), and the other layers' four where there are more layers.
pub fn products_of(c: &BenchConfig) -> Vec<Product> {
    let dirs = if c.bidirectional { 2 } else { 1 };
    let gh = c.kind.gates() * c.hidden;
    let rows = c.batch * c.seq;
    let config = c.name.clone().unwrap_or_else(|| c.label());
    let mut out = Vec::new();
    let widths = if c.layers > 1 {
        vec![("l0", c.input), ("l1+", c.hidden * dirs)]
    } else {
        vec![("l0", c.input)]
    };
    for (layer, width) in widths {
        let p = |what: &str, m, n, k, a_t, b_t| Product {
            config: config.clone(),
            what: format!("{what} {layer}"),
            m,
            n,
            k,
            a_t,
            b_t,
        };
        out.push(p("xp", rows, gh, width, false, true));
        out.push(p("dx", rows, width, gh, false, false));
        out.push(p("dW_ih", gh, width, rows, true, false));
        if layer == "l0" {
            out.push(p("dW_hh", gh, c.hidden, rows, true, false));
        }
    }
    // A product of the same shape and layout as an earlier one is not timed twice: the
    // earlier one's name says it stands for both (`dW_ih l0, dW_hh l0`).
    let mut unique: Vec<Product> = Vec::new();
    for p in out {
        let key = |q: &Product| (q.m, q.n, q.k, q.a_t, q.b_t);
        match unique.iter_mut().find(|q| key(q) == key(&p)) {
            Some(q) => q.what = format!("{}, {}", q.what, p.what),
            None => unique.push(p),
        }
    }
    unique
}

/// One product timed under one tile choice.
#[derive(Clone, Debug)]
pub struct ProductTime {
    /// The product.
    pub product: Product,
    /// The tile asked for.
    pub tiles: GemmTiles,
    /// The kernel that ran (`gemm128.gemm128`, ...; `-` where the adapter cannot time
    /// dispatches and the time is wall-clock).
    pub kernel: String,
    /// Milliseconds per product (the median of the timed repetitions).
    pub ms: f64,
}

impl ProductTime {
    /// TFLOP/s of the product at its measured time.
    pub fn tflops(&self) -> f64 {
        self.product.flops() / (self.ms * 1e-3) / 1e12
    }

    /// One JSON line: the product, the tile, the kernel, its time and rate.
    pub fn to_json(&self) -> String {
        let p = &self.product;
        serde_json::json!({
            "config": p.config,
            "product": p.what,
            "m": p.m,
            "n": p.n,
            "k": p.k,
            "a_transposed": p.a_t,
            "b_transposed": p.b_t,
            "tiles": self.tiles.name(),
            "kernel": self.kernel,
            "ms": (self.ms * 1e4).round() / 1e4,
            "tflops": (self.tflops() * 100.0).round() / 100.0,
        })
        .to_string()
    }
}

/// Times `product` under each of `tiles` on `gpu` (`reps` timed products after one untimed
/// one, the median reported): by the adapter's timestamps where it has them, else by the
/// wall clock around each submitted and awaited product. The operands are allocated once
/// ([`Operands`], as a measured tile's are).
pub fn time_product(
    gpu: &Gpu,
    product: &Product,
    tiles: &[GemmTiles],
    reps: usize,
) -> Result<Vec<ProductTime>> {
    if reps == 0 {
        bail!("--reps must be at least 1");
    }
    let (m, n, k) = (product.m, product.n, product.k);
    let most = gpu.limits().max_storage_buffer_binding_size as usize / 4;
    for (name, len) in [("A", m * k), ("B", k * n), ("C", m * n)] {
        if len > most {
            bail!(
                "{} {}: its {name} operand ({len} floats) exceeds the adapter's largest binding \
                 ({most} floats)",
                product.config,
                product.what
            );
        }
    }
    let shape = Shape {
        m,
        n,
        k,
        a_k: !product.a_t,
        b_n: !product.b_t,
        b16: false,
    };
    let operands = Operands::new(gpu, shape);
    let before = gpu.gemm_tiles();
    let mut out = Vec::new();
    for &t in tiles {
        gpu.set_gemm_tiles(t);
        let run = || {
            let p = operands.product();
            gemm(gpu, m, n, k, p.a, p.b, p.c, p.alpha, p.accumulate, p.bias);
        };
        run();
        gpu.flush();
        gpu.wait();
        let mut times = Vec::with_capacity(reps);
        let mut kernel = "-".to_string();
        // With timestamps, each product's time is what its run adds to the profile's total.
        let profiled = gpu.profile(true);
        let mut total_s = 0.0;
        for _ in 0..reps {
            if profiled {
                run();
                let timed = gpu.kernel_times();
                if let Some(kt) = timed.first() {
                    kernel = kt.label.clone();
                }
                let now: f64 = timed.iter().map(|kt| kt.seconds).sum();
                times.push((now - total_s) * 1e3);
                total_s = now;
            } else {
                let t0 = Instant::now();
                run();
                gpu.flush();
                gpu.wait();
                times.push(t0.elapsed().as_secs_f64() * 1e3);
            }
        }
        gpu.profile(false);
        times.sort_by(f64::total_cmp);
        out.push(ProductTime {
            product: product.clone(),
            tiles: t,
            kernel,
            ms: times[times.len() / 2],
        });
    }
    gpu.set_gemm_tiles(before);
    operands.free(gpu);
    Ok(out)
}

/// The tile choices worth timing on `gpu`: the 64x64, 128x128 and 256x128 tiles, and the
/// tensor-core tile where the adapter has matrix units, also split into f16 halves (f32
/// accuracy) where its workgroup memory holds that.
pub fn tiles_to_time(gpu: &Gpu) -> Vec<GemmTiles> {
    let mut t = vec![GemmTiles::Small, GemmTiles::Big, GemmTiles::Tall];
    if gpu.has_tensor_cores() {
        t.push(GemmTiles::Tensor);
    }
    if split_tile_runs(gpu) {
        t.push(GemmTiles::TensorSplit);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::RnnKind;

    fn config(layers: usize, bidirectional: bool) -> BenchConfig {
        BenchConfig {
            name: Some("flagship".into()),
            kind: RnnKind::Lstm,
            layers,
            hidden: 1024,
            input: 512,
            batch: 64,
            seq: 100,
            bidirectional,
        }
    }

    #[test]
    fn a_stack_has_the_four_products_of_its_first_and_later_layers() {
        let p = products_of(&config(4, false));
        let shapes: Vec<(&str, usize, usize, usize)> =
            p.iter().map(|p| (p.what.as_str(), p.m, p.n, p.k)).collect();
        assert_eq!(
            shapes,
            [
                ("xp l0", 6400, 4096, 512),
                ("dx l0", 6400, 512, 4096),
                ("dW_ih l0", 4096, 512, 6400),
                ("dW_hh l0, dW_ih l1+", 4096, 1024, 6400),
                ("xp l1+", 6400, 4096, 1024),
                ("dx l1+", 6400, 1024, 4096),
            ]
        );
        assert!(p[0].b_t && !p[0].a_t, "xp reads W_ih transposed");
        assert!(
            p[2].a_t && !p[2].b_t,
            "dW reads the gate gradients transposed"
        );
        assert_eq!(p[0].flops(), 2.0 * 6400.0 * 4096.0 * 512.0);
        // One layer: the first layer's four only. Bidirectional: the later layers read
        // both directions' outputs.
        assert_eq!(products_of(&config(1, false)).len(), 4);
        let bi = products_of(&config(2, true));
        assert_eq!((bi[4].what.as_str(), bi[4].k), ("xp l1+", 2048));
    }

    #[test]
    fn products_of_the_same_shape_are_timed_once() {
        // input = hidden (the suite's stacks): dW_ih and dW_hh have one shape, and the
        // later layers' products are the first layer's.
        let mut c = config(4, false);
        c.input = 1024;
        let names: Vec<String> = products_of(&c).into_iter().map(|p| p.what).collect();
        assert_eq!(
            names,
            [
                "xp l0, xp l1+",
                "dx l0, dx l1+",
                "dW_ih l0, dW_hh l0, dW_ih l1+"
            ]
        );
    }
}
