//! The GEMM kernel (`shaders/gemm.wgsl`) against a plain triple loop, at awkward sizes, with
//! every transpose, accumulation and bias.

mod gpu_common;

use gpu_common::{assert_close, gpu, poison, rng, uniform};
use wgrnn::backend::wgpu::gemm::{Mat, Out, gemm};

#[test]
fn gemm_matches_loops() {
    let Some(be) = gpu() else { return };
    let g = be.gpu();
    let mut r = rng("gemm_matches_loops");
    for &(m, n, k) in &[
        (1, 1, 1),
        (3, 17, 5),
        (65, 33, 17),
        (70, 130, 67),
        (5, 1, 200),
    ] {
        for ta in [false, true] {
            for tb in [false, true] {
                for (acc, with_bias) in [(false, false), (true, true), (false, true)] {
                    let a = uniform(&mut r, m * k + 3, 1.0);
                    let b = uniform(&mut r, k * n + 2, 1.0);
                    let bias = uniform(&mut r, n + 1, 1.0);
                    let c0 = if acc {
                        uniform(&mut r, m * n + 4, 1.0)
                    } else {
                        poison(m * n + 4)
                    };
                    // A at offset 3, B at offset 2, C at offset 4 with row stride n.
                    let a_at = |i: usize, l: usize| {
                        if ta {
                            a[3 + l * m + i]
                        } else {
                            a[3 + i * k + l]
                        }
                    };
                    let b_at = |l: usize, j: usize| {
                        if tb {
                            b[2 + j * k + l]
                        } else {
                            b[2 + l * n + j]
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
                                v += bias[1 + j];
                            }
                            if acc {
                                v += c0[4 + i * n + j];
                            }
                            want[4 + i * n + j] = v;
                        }
                    }
                    let (ga, gb, gbias) =
                        (g.buffer_from(&a), g.buffer_from(&b), g.buffer_from(&bias));
                    let gc = g.buffer_from(&c0);
                    let ma = if ta {
                        Mat::t(&ga, 3, m)
                    } else {
                        Mat::rows(&ga, 3, k)
                    };
                    let mb = if tb {
                        Mat::t(&gb, 2, k)
                    } else {
                        Mat::rows(&gb, 2, n)
                    };
                    gemm(
                        g,
                        m,
                        n,
                        k,
                        ma,
                        mb,
                        Out {
                            buf: &gc,
                            off: 4,
                            rs: n,
                        },
                        0.5,
                        acc,
                        with_bias.then_some((&gbias, 1)),
                    );
                    let got = g.read::<f32>(&gc, m * n + 4);
                    let what = format!(
                        "gemm m={m} n={n} k={k} ta={ta} tb={tb} acc={acc} bias={with_bias}"
                    );
                    assert_close(&what, &got[4..], &want[4..], 1e-5);
                    // Elements before the output are untouched.
                    assert_eq!(
                        got[..4].iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                        c0[..4].iter().map(|v| v.to_bits()).collect::<Vec<_>>()
                    );
                }
            }
        }
    }
}
