//! Every non-recurrent GPU operation (encoding, dropout, head, pooling, losses, clipping,
//! optimizers) against the CPU reference through the `Backend` trait, on fresh random inputs
//! at awkward sizes, with outputs poisoned (NaN) before each run and gradient accumulators
//! starting from random values.

mod gpu_common;

use gpu_common::{assert_close, gpu, poison, rel_err, rng, uniform};
use rand::RngExt;
use rand::rngs::ChaCha8Rng;
use wgrnn::backend::{Backend, LossPlan, TargetBufs, TokenBags};
use wgrnn::config::{InputEncoding, Pooling, Task, UnknownTokens};
use wgrnn::optim::{OptimizerConfig, OptimizerStep};
use wgrnn::params::{EncodePlan, HeadPlan};
use wgrnn::{CpuBackend, SeqShape, WgpuBackend};

/// Forward values.
const FWD: f64 = 1e-5;
/// Gradients and updates.
const GRAD: f64 = 1e-4;

/// Batch shapes: mixed lengths, a single step, a single full sequence.
fn shapes() -> Vec<SeqShape> {
    vec![
        SeqShape {
            time: 7,
            lengths: vec![7, 1, 4, 7, 2],
        },
        SeqShape {
            time: 1,
            lengths: vec![1],
        },
        SeqShape {
            time: 3,
            lengths: vec![3],
        },
    ]
}

/// Zeros the padding steps of a `[T, B, width]` tensor (the layout every step tensor keeps).
fn zero_padding(seq: &SeqShape, width: usize, v: &mut [f32]) {
    let nb = seq.batch();
    for t in 0..seq.time {
        for b in (0..nb).filter(|&b| !seq.valid(t, b)) {
            v[(t * nb + b) * width..(t * nb + b + 1) * width].fill(0.0);
        }
    }
}

fn ids(r: &mut ChaCha8Rng, n: usize, below: u32) -> Vec<u32> {
    (0..n).map(|_| r.random_range(0..below)).collect()
}

#[test]
fn encode_matches_cpu() {
    let Some(gb) = gpu() else { return };
    let cb = CpuBackend::<f32>::new();
    let mut r = rng("encode_matches_cpu");
    let mut encodings = Vec::new();
    for dim in [1, 3, 17] {
        encodings.push(InputEncoding::Embedding {
            vocab: 5,
            dim,
            unknown: UnknownTokens::Other,
        });
    }
    encodings.push(InputEncoding::Embedding {
        vocab: 2,
        dim: 33,
        unknown: UnknownTokens::Error,
    });
    encodings.push(InputEncoding::OneHot {
        vocab: 16,
        unknown: UnknownTokens::Other,
    });
    encodings.push(InputEncoding::OneHot {
        vocab: 3,
        unknown: UnknownTokens::Error,
    });
    for enc in encodings {
        let w = enc.width();
        let (rows, table) = match enc {
            InputEncoding::Embedding { .. } => (wgrnn::params::embedding_rows(&enc), Some(3)),
            _ => (w, None),
        };
        let plan = EncodePlan {
            encoding: enc.clone(),
            table,
            width: w,
        };
        let nparams = 3 + rows * w + 2;
        for seq in shapes() {
            let n = seq.time * seq.batch();
            // Bags of one id (plain tokens) and bags of 0 to 4 ids, repeats allowed (word
            // hashing).
            let singles = TokenBags::singles(&ids(&mut r, n, rows as u32));
            let mut offsets = vec![0u32];
            for _ in 0..n {
                let k = r.random_range(0..=4u32);
                offsets.push(offsets.last().copied().unwrap_or(0) + k);
            }
            let total = *offsets.last().unwrap_or(&0) as usize;
            let bags = TokenBags {
                offsets,
                ids: ids(&mut r, total, rows as u32),
            };
            for (kind, tokens) in [("singles", singles), ("bags", bags)] {
                let what = format!("{enc:?} {kind} lengths {:?}", seq.lengths);
                let params = uniform(&mut r, nparams, 1.0);
                let mut dx = uniform(&mut r, n * w, 1.0);
                zero_padding(&seq, w, &mut dx);
                let grads0 = uniform(&mut r, nparams, 1.0);

                let (cp, ci) = (cb.upload(&params), cb.upload_tokens(tokens.clone()));
                let mut cx = cb.upload(&poison(n * w));
                cb.encode_forward(&plan, &cp, &ci, &seq, &mut cx);
                let mut cg = cb.upload(&grads0);
                cb.encode_backward(&plan, &ci, &seq, &cb.upload(&dx), &mut cg);

                let (gp, gi) = (gb.upload(&params), gb.upload_tokens(tokens));
                let mut gx = gb.upload(&poison(n * w));
                gb.encode_forward(&plan, &gp, &gi, &seq, &mut gx);
                let mut gg = gb.upload(&grads0);
                gb.encode_backward(&plan, &gi, &seq, &gb.upload(&dx), &mut gg);

                assert_close(&format!("encode x, {what}"), &gb.download(&gx), &cx, FWD);
                assert_close(
                    &format!("encode grads, {what}"),
                    &gb.download(&gg),
                    &cg,
                    GRAD,
                );
            }
        }
    }
}

#[test]
fn dropout_mask_is_bit_identical() {
    let Some(gb) = gpu() else { return };
    let cb = CpuBackend::<f32>::new();
    let mut r = rng("dropout_mask_is_bit_identical");
    for (n, p) in [(1, 0.5f32), (5 * 7 * 17, 0.1), (4097, 0.5), (3 * 65, 0.8)] {
        let x = uniform(&mut r, n, 1.0);
        let seed: u64 = r.random();
        let mut cx = cb.upload(&x);
        cb.dropout(&mut cx, p, seed);
        let mut gx = gb.upload(&x);
        gb.dropout(&mut gx, p, seed);
        let got = gb.download(&gx);
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&got), bits(&cx), "dropout n={n} p={p} seed={seed}");
    }
}

#[test]
fn head_matches_cpu() {
    let Some(gb) = gpu() else { return };
    let cb = CpuBackend::<f32>::new();
    let mut r = rng("head_matches_cpu");
    for (ni, nc) in [(1, 1), (17, 3), (65, 33), (3, 17)] {
        // The head's tensors after some other parameters.
        let plan = HeadPlan {
            w: 2,
            b: 2 + nc * ni,
            input: ni,
            classes: nc,
        };
        let nparams = 2 + nc * ni + nc + 1;
        for seq in shapes() {
            for per_step in [true, false] {
                let (rows, s) = if per_step {
                    (seq.time * seq.batch(), Some(&seq))
                } else {
                    (seq.batch(), None)
                };
                let what = format!(
                    "head in={ni} classes={nc} lengths {:?} per_step={per_step}",
                    seq.lengths
                );
                let params = uniform(&mut r, nparams, 1.0);
                let x = uniform(&mut r, rows * ni, 1.0);
                let dl = uniform(&mut r, rows * nc, 1.0);
                let grads0 = uniform(&mut r, nparams, 1.0);

                let (cp, cx, cdl) = (cb.upload(&params), cb.upload(&x), cb.upload(&dl));
                let mut cl = cb.upload(&poison(rows * nc));
                cb.head_forward(&plan, &cp, &cx, rows, s, &mut cl);
                let mut cg = cb.upload(&grads0);
                let mut cdx = cb.upload(&poison(rows * ni));
                cb.head_backward(&plan, &cp, &cx, rows, s, &cdl, &mut cg, &mut cdx);

                let (gp, gx, gdl) = (gb.upload(&params), gb.upload(&x), gb.upload(&dl));
                let mut gl = gb.upload(&poison(rows * nc));
                gb.head_forward(&plan, &gp, &gx, rows, s, &mut gl);
                let mut gg = gb.upload(&grads0);
                let mut gdx = gb.upload(&poison(rows * ni));
                gb.head_backward(&plan, &gp, &gx, rows, s, &gdl, &mut gg, &mut gdx);

                assert_close(&format!("logits, {what}"), &gb.download(&gl), &cl, FWD);
                assert_close(&format!("head grads, {what}"), &gb.download(&gg), &cg, GRAD);
                assert_close(&format!("head dx, {what}"), &gb.download(&gdx), &cdx, GRAD);
            }
        }
    }
}

#[test]
fn pooling_matches_cpu() {
    let Some(gb) = gpu() else { return };
    let cb = CpuBackend::<f32>::new();
    let mut r = rng("pooling_matches_cpu");
    for mode in [Pooling::Last, Pooling::Mean] {
        for (dirs, width) in [(1, 1), (2, 3), (1, 17), (2, 33)] {
            for seq in shapes() {
                let what = format!(
                    "{mode:?} dirs={dirs} width={width} lengths {:?}",
                    seq.lengths
                );
                let f = dirs * width;
                let n = seq.time * seq.batch() * f;
                let mut x = uniform(&mut r, n, 1.0);
                zero_padding(&seq, f, &mut x);
                let dp = uniform(&mut r, seq.batch() * f, 1.0);

                let mut cpooled = cb.upload(&poison(seq.batch() * f));
                cb.pool_forward(mode, &cb.upload(&x), &seq, dirs, width, &mut cpooled);
                let mut cdx = cb.upload(&poison(n));
                cb.pool_backward(mode, &cb.upload(&dp), &seq, dirs, width, &mut cdx);

                let mut gpooled = gb.upload(&poison(seq.batch() * f));
                gb.pool_forward(mode, &gb.upload(&x), &seq, dirs, width, &mut gpooled);
                let mut gdx = gb.upload(&poison(n));
                gb.pool_backward(mode, &gb.upload(&dp), &seq, dirs, width, &mut gdx);

                assert_close(
                    &format!("pooled, {what}"),
                    &gb.download(&gpooled),
                    &cpooled,
                    FWD,
                );
                assert_close(&format!("pool dx, {what}"), &gb.download(&gdx), &cdx, GRAD);
            }
        }
    }
}

/// The embedding gradient of an id seen more often in a batch than llvmpipe lets a kernel's
/// loops run (65535 iterations an invocation, past which every loop ends, silently): its
/// positions go in pieces there (three dispatches for 69300), one elsewhere, and every
/// table row matches the CPU's.
#[test]
fn embedding_gradient_of_a_frequent_id_matches_cpu() {
    let Some(gb) = gpu() else { return };
    let cb = CpuBackend::<f32>::new();
    let mut r = rng("embedding_gradient_of_a_frequent_id_matches_cpu");
    let enc = InputEncoding::Embedding {
        vocab: 3,
        dim: 2,
        unknown: UnknownTokens::Error,
    };
    let (w, rows) = (enc.width(), wgrnn::params::embedding_rows(&enc));
    let plan = EncodePlan {
        encoding: enc.clone(),
        table: Some(1),
        width: w,
    };
    let seq = SeqShape {
        time: 35000,
        lengths: vec![35000, 35000],
    };
    let n = seq.time * seq.batch();
    // Id 1 everywhere but every hundredth row (id 2): 69300 positions.
    let tokens = TokenBags::singles(
        &(0..n)
            .map(|i| 1 + (i % 100 == 0) as u32)
            .collect::<Vec<_>>(),
    );
    let dx = uniform(&mut r, n * w, 1.0);
    let grads0 = uniform(&mut r, 1 + rows * w, 1.0);
    let mut cg = cb.upload(&grads0);
    let ci = cb.upload_tokens(tokens.clone());
    cb.encode_backward(&plan, &ci, &seq, &cb.upload(&dx), &mut cg);
    let (gi, gdx) = (gb.upload_tokens(tokens), gb.upload(&dx));
    let mut gg = gb.upload(&grads0);
    let before = gb.gpu().dispatch_count();
    gb.encode_backward(&plan, &gi, &seq, &gdx, &mut gg);
    let dispatches = gb.gpu().dispatch_count() - before;
    let capped = gb.gpu().loops_are_capped();
    assert_eq!(
        dispatches,
        if capped { 3 } else { 1 },
        "embedding gradient dispatches"
    );
    assert_close("embedding grads", &gb.download(&gg), &cg, GRAD);
}

/// Mean pooling over more steps than llvmpipe lets a kernel's loops run (65535 iterations
/// an invocation, all its loops together; past them every loop ends, silently): the sums
/// go in pieces of steps there (three dispatches for 70001 steps), one elsewhere, and
/// match the CPU's, for a sequence of every step, one ending mid-piece and one of a step.
#[test]
fn mean_pooling_over_more_steps_than_llvmpipe_loops_matches_cpu() {
    let Some(gb) = gpu() else { return };
    let cb = CpuBackend::<f32>::new();
    let mut r = rng("mean_pooling_over_more_steps_than_llvmpipe_loops_matches_cpu");
    let seq = SeqShape {
        time: 70001,
        lengths: vec![70001, 40000, 1],
    };
    let (dirs, width) = (2, 1);
    let f = dirs * width;
    let mut x = uniform(&mut r, seq.time * seq.batch() * f, 1.0);
    zero_padding(&seq, f, &mut x);
    let mut cpooled = cb.upload(&poison(seq.batch() * f));
    cb.pool_forward(
        Pooling::Mean,
        &cb.upload(&x),
        &seq,
        dirs,
        width,
        &mut cpooled,
    );
    let mut gpooled = gb.upload(&poison(seq.batch() * f));
    let gx = gb.upload(&x);
    let before = gb.gpu().dispatch_count();
    gb.pool_forward(Pooling::Mean, &gx, &seq, dirs, width, &mut gpooled);
    let dispatches = gb.gpu().dispatch_count() - before;
    let capped = gb.gpu().loops_are_capped();
    assert_eq!(dispatches, if capped { 3 } else { 1 }, "pooling dispatches");
    assert_close("mean pooled", &gb.download(&gpooled), &cpooled, FWD);
}

/// Runs the loss on both backends and compares the loss and `dlogits`.
fn compare_loss(
    gb: &WgpuBackend,
    plan: &LossPlan,
    seq: &SeqShape,
    logits: &[f32],
    classes: Option<&[u32]>,
    values: Option<&[f32]>,
    what: &str,
) {
    let cb = CpuBackend::<f32>::new();
    let mut closs = cb.upload(&poison(1));
    let mut cdl = cb.upload(&poison(logits.len()));
    let mut gloss = gb.upload(&poison(1));
    let mut gdl = gb.upload(&poison(logits.len()));
    let (cl, gl) = (cb.upload(logits), gb.upload(logits));
    match (classes, values) {
        (Some(y), _) => {
            let (cy, gy) = (cb.upload_ids(y), gb.upload_ids(y));
            cb.loss(
                plan,
                &cl,
                TargetBufs::Classes(&cy),
                seq,
                &mut closs,
                &mut cdl,
            );
            gb.loss(
                plan,
                &gl,
                TargetBufs::Classes(&gy),
                seq,
                &mut gloss,
                &mut gdl,
            );
        }
        (None, Some(y)) => {
            let (cy, gy) = (cb.upload(y), gb.upload(y));
            cb.loss(
                plan,
                &cl,
                TargetBufs::Values(&cy),
                seq,
                &mut closs,
                &mut cdl,
            );
            gb.loss(
                plan,
                &gl,
                TargetBufs::Values(&gy),
                seq,
                &mut gloss,
                &mut gdl,
            );
        }
        (None, None) => unreachable!("a loss needs targets"),
    }
    // The loss is a mean of differences between log-sum-exps and picked logits (or of
    // squared differences) of size up to 3, so its rounding is that of those terms however
    // small the difference: measured against 1, not SCALE_FLOOR (a loss of 0.02 from one
    // sequence of 3 classes once missed 1e-5 of itself by rounding alone).
    let loss = gb.download(&gloss);
    let e = rel_err(&loss, &closs, 1.0);
    assert!(e <= FWD, "loss, {what}: relative error {e:e} > {FWD:e}");
    assert_close(&format!("dlogits, {what}"), &gb.download(&gdl), &cdl, GRAD);
}

#[test]
fn losses_match_cpu() {
    let Some(gb) = gpu() else { return };
    let mut r = rng("losses_match_cpu");
    for nc in [1usize, 3, 17, 65] {
        for seq in shapes() {
            let nb = seq.batch();
            let steps = seq.time * nb;
            let lens = format!("classes={nc} lengths {:?}", seq.lengths);

            // One label per sequence.
            let task = Task::Classification {
                pooling: Pooling::Last,
            };
            let plan = LossPlan { task, classes: nc };
            let logits = uniform(&mut r, nb * nc, 3.0);
            let y = ids(&mut r, nb, nc as u32);
            let what = format!("classification {lens}");
            compare_loss(&gb, &plan, &seq, &logits, Some(&y), None, &what);

            // Per-step labels, with and without an ignore label.
            let tasks = [
                Task::Tagging { ignore_label: None },
                Task::Tagging {
                    ignore_label: Some(0),
                },
                Task::LanguageModel,
            ];
            for task in tasks {
                let plan = LossPlan {
                    task: task.clone(),
                    classes: nc,
                };
                let mut logits = uniform(&mut r, steps * nc, 3.0);
                zero_padding(&seq, nc, &mut logits);
                let y = ids(&mut r, steps, nc as u32);
                let what = format!("{task:?} {lens}");
                compare_loss(&gb, &plan, &seq, &logits, Some(&y), None, &what);
            }

            // Regression.
            let plan = LossPlan {
                task: Task::Regression,
                classes: nc,
            };
            let mut pred = uniform(&mut r, steps * nc, 2.0);
            zero_padding(&seq, nc, &mut pred);
            let mut target = uniform(&mut r, steps * nc, 2.0);
            zero_padding(&seq, nc, &mut target);
            let what = format!("regression {lens}");
            compare_loss(&gb, &plan, &seq, &pred, None, Some(&target), &what);
        }
    }
}

#[test]
fn loss_with_every_label_ignored_is_zero() {
    let Some(gb) = gpu() else { return };
    let mut r = rng("loss_with_every_label_ignored_is_zero");
    let seq = SeqShape {
        time: 7,
        lengths: vec![7, 1, 4, 7, 2],
    };
    let plan = LossPlan {
        task: Task::Tagging {
            ignore_label: Some(2),
        },
        classes: 3,
    };
    let logits = uniform(&mut r, 35 * 3, 1.0);
    let y = vec![2u32; 35];
    compare_loss(&gb, &plan, &seq, &logits, Some(&y), None, "all ignored");
}

#[test]
fn clipping_matches_cpu() {
    let Some(gb) = gpu() else { return };
    let cb = CpuBackend::<f32>::new();
    let c64 = CpuBackend::<f64>::new();
    let mut r = rng("clipping_matches_cpu");
    // 300_000 elements exceed one pass of the first reduction level (1024 groups of 256).
    // There the CPU's sequential f32 sum drifts by ~1e-5 relative while the GPU's tree sum
    // does not, so the large case is checked against the f64 reference instead.
    for n in [1usize, 17, 65 * 33 + 5, 300_000] {
        let g = uniform(&mut r, n, 1.0);
        let g64: Vec<f64> = g.iter().map(|&v| v as f64).collect();
        let norm = g64.iter().map(|v| v * v).sum::<f64>().sqrt() as f32;
        for max_norm in [None, Some(norm * 0.5), Some(norm * 2.0)] {
            let what = format!("clip norm n={n} max_norm={max_norm:?}");
            let (want_g, want_n) = if n < 100_000 {
                let mut cg = cb.upload(&g);
                let mut cn = cb.upload(&poison(1));
                cb.clip_grad_norm(&mut cg, max_norm, &mut cn);
                (cg, cn)
            } else {
                let mut cg = c64.upload(&g64);
                let mut cn = c64.upload(&[f64::NAN]);
                c64.clip_grad_norm(&mut cg, max_norm, &mut cn);
                let f = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect::<Vec<f32>>();
                (f(cg), f(cn))
            };
            let mut gg = gb.upload(&g);
            let mut gn = gb.upload(&poison(1));
            gb.clip_grad_norm(&mut gg, max_norm, &mut gn);
            assert_close(&format!("norm, {what}"), &gb.download(&gn), &want_n, FWD);
            assert_close(&format!("grads, {what}"), &gb.download(&gg), &want_g, GRAD);
        }
        let what = format!("clip value n={n}");
        let mut cg = cb.upload(&g);
        cb.clip_grad_value(&mut cg, 0.3);
        let mut gg = gb.upload(&g);
        gb.clip_grad_value(&mut gg, 0.3);
        assert_close(&what, &gb.download(&gg), &cg, GRAD);
    }
}

#[test]
fn optimizers_match_cpu() {
    let Some(gb) = gpu() else { return };
    let cb = CpuBackend::<f32>::new();
    let mut r = rng("optimizers_match_cpu");
    let optimizers = [
        OptimizerConfig::Sgd {
            momentum: 0.0,
            nesterov: false,
            weight_decay: 0.0,
        },
        OptimizerConfig::Sgd {
            momentum: 0.0,
            nesterov: false,
            weight_decay: 0.01,
        },
        OptimizerConfig::Sgd {
            momentum: 0.9,
            nesterov: false,
            weight_decay: 0.01,
        },
        OptimizerConfig::Sgd {
            momentum: 0.8,
            nesterov: true,
            weight_decay: 0.0,
        },
        OptimizerConfig::adam(),
        OptimizerConfig::Adam {
            beta1: 0.8,
            beta2: 0.99,
            eps: 1e-6,
            weight_decay: 0.1,
        },
        OptimizerConfig::AdamW {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        },
    ];
    for opt in optimizers {
        for n in [1usize, 33, 1000] {
            for step in [1u64, 4] {
                let what = format!("{opt:?} n={n} step={step}");
                let s = OptimizerStep {
                    optimizer: opt.clone(),
                    lr: 0.05,
                    step,
                };
                let params = uniform(&mut r, n, 1.0);
                let grads = uniform(&mut r, n, 1.0);
                // Moments as after earlier steps (second moments non-negative).
                let states: Vec<Vec<f32>> = (0..opt.state_buffers())
                    .map(|k| {
                        let v = uniform(&mut r, n, 0.5);
                        if k == 1 {
                            v.iter().map(|x| x * x).collect()
                        } else {
                            v
                        }
                    })
                    .collect();

                let mut cp = cb.upload(&params);
                let mut cs: Vec<Vec<f32>> = states.iter().map(|v| cb.upload(v)).collect();
                cb.optimizer_step(&s, &mut cp, &cb.upload(&grads), &mut cs);

                let mut gp = gb.upload(&params);
                let mut gs: Vec<_> = states.iter().map(|v| gb.upload(v)).collect();
                gb.optimizer_step(&s, &mut gp, &gb.upload(&grads), &mut gs);

                assert_close(&format!("params, {what}"), &gb.download(&gp), &cp, GRAD);
                for (k, (g, c)) in gs.iter().zip(&cs).enumerate() {
                    assert_close(&format!("state {k}, {what}"), &gb.download(g), c, GRAD);
                }
            }
        }
    }
}
