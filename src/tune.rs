//! `wgrnn bench --tune`: measures the kernel choices that compute the same thing (step
//! kernels and their tile widths, the matrix-product tile, bounds checks) on one adapter over
//! a set of configurations, and picks the fastest for the autotune table
//! (`backend::wgpu::autotune`).
//!
//! Each choice is measured one axis at a time against the defaults (step kernels, product
//! tile, checks); then the best of each axis together, where that is a new combination. The
//! score of a candidate is the geometric mean over the configurations of its training-step
//! time over the default's, so every configuration counts alike whatever its size; the
//! fastest by that score is the entry's overall choice. Each configuration also keeps its
//! own fastest choice, by shape (the best of each axis together on it measured where new),
//! which runs of that shape or a near one take instead.

use anyhow::Result;

use crate::WgpuBackend;
use crate::backend::wgpu::autotune::{AdapterKey, Entry, Measured, Shape, ShapeChoice};
use crate::backend::wgpu::gemm::GemmTiles;
use crate::backend::wgpu::{Precision, SliceChoice, Tuning};
use crate::bench::{self, BenchConfig, BenchResult};

/// One candidate's results.
#[derive(Clone, Debug)]
pub struct Candidate {
    /// The choices.
    pub tuning: Tuning,
    /// One result per configuration, in the order given.
    pub results: Vec<BenchResult>,
    /// Geometric mean of its step times over the default's (below 1: faster).
    pub relative_time: f64,
}

/// What a tuning run measured and chose.
#[derive(Clone, Debug)]
pub struct TuneReport {
    /// Every candidate, in the order measured (the defaults first).
    pub candidates: Vec<Candidate>,
    /// The entry for the autotune table: the fastest candidate.
    pub entry: Entry,
}

/// The defaults and the single-axis alternatives to them, for runs at `precision` (under
/// f16 also the f32 recurrent steps, which the default replaces with the tensor-core ones
/// where the adapter has them; under f32 also the split tensor-core products and steps,
/// f32-accurate, where the adapter runs them: `split`).
pub fn single_axis_candidates(precision: Precision, split: bool) -> Vec<Tuning> {
    let d = Tuning::default();
    let units = |u| Tuning {
        step_tile_units: Some(u),
        ..d
    };
    let mut all = vec![
        d,
        units(16),
        units(32),
        units(64),
        Tuning {
            blocked_steps: true,
            ..d
        },
        // The matrix-vector products at every batch (the default takes them at a few
        // sequences; the tile widths above are the tiles there).
        Tuning {
            gemv_steps: Some(true),
            tensor_steps: Some(false),
            ..d
        },
        Tuning {
            tiled_steps: false,
            ..d
        },
        // K slices fixed: one (the default before entry 48), two or four at every grid.
        Tuning {
            step_k_split: Some(1),
            ..d
        },
        Tuning {
            step_k_split: Some(2),
            ..d
        },
        Tuning {
            step_k_split: Some(4),
            ..d
        },
        Tuning {
            step_chunk_rows: 16,
            ..d
        },
        Tuning {
            step_chunk_rows: 32,
            ..d
        },
        // The f32 tiles' forward in 16 sequences (the default takes 32 for gated cells in
        // tiles of at least 32 units over more than 16 sequences).
        Tuning {
            forward_sequences: Some(16),
            ..d
        },
        // The layer pipeline over 4 chunks of time steps (stacks of one kind and width),
        // and layer by layer (the default measures them against each other on a GPU).
        Tuning {
            wavefront: Some(4),
            ..d
        },
        Tuning {
            wavefront: Some(1),
            ..d
        },
        Tuning {
            gemm_tiles: GemmTiles::Small,
            ..d
        },
        Tuning {
            gemm_tiles: GemmTiles::Big,
            ..d
        },
        Tuning {
            gemm_tiles: GemmTiles::Tall,
            ..d
        },
        Tuning {
            checked: false,
            ..d
        },
        // K slices by the grid's rule (the default measures them on a GPU).
        Tuning {
            k_split_by: SliceChoice::Rules,
            ..d
        },
    ];
    if precision == Precision::F16 {
        all.push(Tuning {
            tensor_steps: Some(false),
            ..d
        });
        // The tensor-core steps on the f32 weights rather than their f16 copy where it pays.
        all.push(Tuning {
            half_step_weights: Some(false),
            ..d
        });
    }
    if precision == Precision::F32 && split {
        all.push(Tuning {
            gemm_tiles: GemmTiles::TensorSplit,
            ..d
        });
        all.push(Tuning {
            tensor_steps: Some(true),
            split_steps: true,
            ..d
        });
    }
    all
}

/// The best of each axis together: the step kernel and tile width, the product tile and the
/// checks of the fastest candidate that differs from the defaults in that axis only (or the
/// default's where none beat it).
pub fn combine(measured: &[(Tuning, f64)]) -> Tuning {
    let d = Tuning::default();
    let best = |axis: &dyn Fn(&Tuning) -> bool| {
        measured
            .iter()
            .filter(|(t, _)| *t == d || axis(t))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(t, _)| *t)
            .unwrap_or(d)
    };
    let steps = best(&|t| t.gemm_tiles == d.gemm_tiles && t.checked == d.checked);
    let same_steps = |t: &Tuning| {
        (
            t.tiled_steps,
            t.blocked_steps,
            t.step_tile_units,
            (t.step_k_split, t.k_split_by),
            t.step_chunk_rows,
            t.forward_sequences,
            t.wavefront,
            t.wavefront_measured,
            t.tensor_steps,
            t.split_steps,
            t.half_step_weights,
            t.gemv_steps,
        ) == (
            d.tiled_steps,
            d.blocked_steps,
            d.step_tile_units,
            (d.step_k_split, d.k_split_by),
            d.step_chunk_rows,
            d.forward_sequences,
            d.wavefront,
            d.wavefront_measured,
            d.tensor_steps,
            d.split_steps,
            d.half_step_weights,
            d.gemv_steps,
        )
    };
    let gemm = best(&|t| same_steps(t) && t.checked == d.checked);
    let checks = best(&|t| same_steps(t) && t.gemm_tiles == d.gemm_tiles);
    Tuning {
        tiled_steps: steps.tiled_steps,
        blocked_steps: steps.blocked_steps,
        step_tile_units: steps.step_tile_units,
        step_k_split: steps.step_k_split,
        k_split_by: steps.k_split_by,
        step_chunk_rows: steps.step_chunk_rows,
        forward_sequences: steps.forward_sequences,
        wavefront: steps.wavefront,
        wavefront_measured: steps.wavefront_measured,
        tensor_steps: steps.tensor_steps,
        split_steps: steps.split_steps,
        half_step_weights: steps.half_step_weights,
        gemv_steps: steps.gemv_steps,
        gemm_tiles: gemm.gemm_tiles,
        checked: checks.checked,
    }
}

/// Measures every candidate on every configuration, each run on a fresh backend from `open`
/// with `precision`, and returns the results and the fastest choices, overall and per
/// configuration's shape. `progress` is told about each run as it finishes.
pub fn tune(
    open: &dyn Fn() -> Result<WgpuBackend>,
    configs: &[BenchConfig],
    precision: Precision,
    warmup: usize,
    reps: usize,
    progress: &mut dyn FnMut(&Tuning, &BenchResult),
) -> Result<TuneReport> {
    anyhow::ensure!(
        !configs.is_empty(),
        "tuning needs at least one configuration"
    );
    let mut adapter = None;
    let mut run = |t: Tuning, c: &BenchConfig| -> Result<BenchResult> {
        let mut be = open()?;
        be.set_precision(precision)?;
        be.set_tuning(t);
        adapter.get_or_insert_with(|| AdapterKey::of(be.gpu().info()));
        let mut r = bench::run(be, c, warmup, reps, 0)?;
        r.variant = t.label();
        progress(&t, &r);
        Ok(r)
    };
    let split = open()?.split_tile_runs();
    let mut candidates: Vec<(Tuning, Vec<BenchResult>)> = Vec::new();
    for t in single_axis_candidates(precision, split) {
        let results = configs.iter().map(|c| run(t, c)).collect::<Result<_>>()?;
        candidates.push((t, results));
    }
    let relative = |rs: &[BenchResult], base: &[BenchResult]| {
        let logs: f64 = rs
            .iter()
            .zip(base)
            .map(|(r, b)| (r.train_step_ms / b.train_step_ms).ln())
            .sum();
        (logs / rs.len() as f64).exp()
    };
    let scored = |cands: &[(Tuning, Vec<BenchResult>)]| -> Vec<(Tuning, f64)> {
        cands
            .iter()
            .map(|(t, rs)| (*t, relative(rs, &cands[0].1)))
            .collect()
    };
    let together = combine(&scored(&candidates));
    if !candidates.iter().any(|(t, _)| *t == together) {
        let results = configs
            .iter()
            .map(|c| run(together, c))
            .collect::<Result<_>>()?;
        candidates.push((together, results));
    }
    // Each configuration's own choice: the fastest candidate on it, or the best of each axis
    // together on it, measured on it alone where that is a new combination.
    let mut shapes: Vec<ShapeChoice> = Vec::new();
    for (i, c) in configs.iter().enumerate() {
        // A later configuration of a shape already kept adds nothing (the first's stays).
        let shape = Shape::of(&c.network(), c.batch);
        if shapes.iter().any(|s| s.shape == shape) {
            continue;
        }
        let base = candidates[0].1[i].train_step_ms;
        let mut times: Vec<(Tuning, f64)> = candidates
            .iter()
            .map(|(t, rs)| (*t, rs[i].train_step_ms / base))
            .collect();
        let own = combine(&times);
        if !times.iter().any(|(t, _)| *t == own) {
            times.push((own, run(own, c)?.train_step_ms / base));
        }
        if let Some(&(tuning, relative_time)) = times.iter().min_by(|a, b| a.1.total_cmp(&b.1)) {
            shapes.push(ShapeChoice {
                shape,
                tuning,
                relative_time,
            });
        }
    }
    let scores = scored(&candidates);
    let candidates: Vec<Candidate> = candidates
        .into_iter()
        .zip(&scores)
        .map(|((tuning, results), (_, rel))| Candidate {
            tuning,
            results,
            relative_time: *rel,
        })
        .collect();
    let mut ranked: Vec<&Candidate> = candidates.iter().collect();
    ranked.sort_by(|a, b| a.relative_time.total_cmp(&b.relative_time));
    let entry = Entry {
        adapter: adapter.expect("at least one run"),
        precision,
        tuning: ranked[0].tuning,
        configs: configs.iter().map(BenchConfig::label).collect(),
        shapes,
        measured: ranked
            .iter()
            .map(|c| Measured {
                variant: c.tuning.label(),
                relative_time: c.relative_time,
            })
            .collect(),
        version: env!("CARGO_PKG_VERSION").to_string(),
    };
    Ok(TuneReport { candidates, entry })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_differ_from_the_defaults_in_one_axis_and_are_valid() {
        for (precision, split) in [
            (Precision::F32, false),
            (Precision::F32, true),
            (Precision::F16, true),
        ] {
            let all = single_axis_candidates(precision, split);
            assert_eq!(all[0], Tuning::default());
            for t in &all {
                assert!(t.is_valid(), "{t:?}");
            }
            let labels: std::collections::HashSet<String> = all.iter().map(Tuning::label).collect();
            assert_eq!(
                labels.len(),
                all.len(),
                "every candidate is a different choice"
            );
        }
        let f16 = single_axis_candidates(Precision::F16, true);
        let n = f16.len();
        assert_eq!(
            n,
            single_axis_candidates(Precision::F32, false).len() + 2,
            "f16 also tries the f32 steps"
        );
        assert_eq!(f16[n - 2].tensor_steps, Some(false));
        assert_eq!(
            f16[n - 1].half_step_weights,
            Some(false),
            "and the tensor-core steps on the f32 weights"
        );
        let split = single_axis_candidates(Precision::F32, true);
        let n = split.len();
        assert_eq!(
            split[n - 2].gemm_tiles,
            GemmTiles::TensorSplit,
            "f32 also tries the split tensor-core products where they run"
        );
        assert!(split[n - 1].split_steps, "and the split tensor-core steps");
        assert_eq!(n, single_axis_candidates(Precision::F32, false).len() + 2);
    }

    #[test]
    fn combine_takes_the_best_of_each_axis() {
        let c = single_axis_candidates(Precision::F32, false);
        // units 64 best on the step axis, the small tile best on the product axis, checks
        // off slower than on.
        let mut times = [
            1.0, 0.98, 0.99, 0.9, 0.95, 1.2, 1.3, 1.03, 0.97, 0.96, 1.02, 1.01, 1.04, 1.06, 1.07,
            0.8, 1.1, 0.85, 1.05, 1.08,
        ];
        assert_eq!(times.len(), c.len());
        let measured: Vec<(Tuning, f64)> = c.iter().copied().zip(times).collect();
        let t = combine(&measured);
        assert_eq!(t.step_tile_units, Some(64));
        assert!(t.tiled_steps && !t.blocked_steps);
        assert_eq!(t.step_k_split, None);
        assert_eq!(t.gemm_tiles, GemmTiles::Small);
        assert!(t.checked);
        // One K slice at every grid best on the step axis (the default picks them by the
        // grid): it is kept as a choice.
        let mut one = times;
        one[7] = 0.85;
        let measured: Vec<(Tuning, f64)> = c.iter().copied().zip(one).collect();
        let t = combine(&measured);
        assert_eq!((t.step_k_split, t.step_tile_units), (Some(1), None));
        assert!(t.label().contains(" ksplit=1 "), "{}", t.label());
        // Four K slices best on the step axis: they come with the default tile width.
        times[9] = 0.85;
        let measured: Vec<(Tuning, f64)> = c.iter().copied().zip(times).collect();
        let t = combine(&measured);
        assert_eq!((t.step_k_split, t.step_tile_units), (Some(4), None));
        assert_eq!(t.step_chunk_rows, 64);
        assert_eq!(t.gemm_tiles, GemmTiles::Small);
        assert!(t.is_valid());
        // The gated forwards in 16 sequences best on the step axis: kept as a choice.
        let mut sixteen = times;
        sixteen[12] = 0.8;
        let measured: Vec<(Tuning, f64)> = c.iter().copied().zip(sixteen).collect();
        let t = combine(&measured);
        assert_eq!((t.forward_sequences, t.step_tile_units), (Some(16), None));
        assert!(t.is_valid());
        assert!(t.label().contains(" fwdseqs=16 "), "{}", t.label());
        // The layer pipeline best on the step axis: kept as a choice.
        let mut wave = times;
        wave[13] = 0.8;
        let measured: Vec<(Tuning, f64)> = c.iter().copied().zip(wave).collect();
        let t = combine(&measured);
        assert_eq!((t.wavefront, t.step_tile_units), (Some(4), None));
        assert!(t.is_valid());
        assert!(t.label().contains(" wavefront=4 "), "{}", t.label());
        // Layer by layer best: kept as a choice (the default measures).
        let mut off = times;
        off[14] = 0.8;
        let measured: Vec<(Tuning, f64)> = c.iter().copied().zip(off).collect();
        let t = combine(&measured);
        assert_eq!(t.wavefront, Some(1));
        assert!(t.label().contains(" wavefront=off "), "{}", t.label());
        // The backward's 16-row chunks best on the step axis: K slices by the grid, default
        // width.
        times[10] = 0.8;
        let measured: Vec<(Tuning, f64)> = c.iter().copied().zip(times).collect();
        let t = combine(&measured);
        assert_eq!(
            (t.step_chunk_rows, t.step_k_split, t.step_tile_units),
            (16, None, None)
        );
        assert!(t.is_valid());
        // The matrix-vector products best on the step axis: f32 products, no K slices.
        times[5] = 0.7;
        let measured: Vec<(Tuning, f64)> = c.iter().copied().zip(times).collect();
        let t = combine(&measured);
        assert!(
            t.gemv_steps == Some(true) && t.tiled_steps && !t.blocked_steps,
            "{t:?}"
        );
        assert_eq!(
            (t.step_chunk_rows, t.step_k_split, t.step_tile_units),
            (64, None, None)
        );
        assert_eq!(t.gemm_tiles, GemmTiles::Small);
        assert!(t.is_valid());
        assert_eq!(t.label(), "steps=gemv units=auto gemm=small checked");
        // The rule's K slices best on the step axis: kept as a choice.
        let mut rules = times;
        rules[19] = 0.5;
        let measured: Vec<(Tuning, f64)> = c.iter().copied().zip(rules).collect();
        let t = combine(&measured);
        assert_eq!((t.step_k_split, t.k_split_by), (None, SliceChoice::Rules));
        assert!(t.is_valid());
        assert!(t.label().contains(" ksplit=rules "), "{}", t.label());
        // Nothing beats the defaults: the defaults.
        let slow: Vec<(Tuning, f64)> = c
            .iter()
            .enumerate()
            .map(|(i, t)| (*t, if i == 0 { 1.0 } else { 1.5 }))
            .collect();
        assert_eq!(combine(&slow), Tuning::default());
    }
}
