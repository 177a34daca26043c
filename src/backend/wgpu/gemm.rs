//! The matrix product of `shaders/gemm.wgsl`: input projections of all steps at once, weight
//! gradients summed over all steps, the head. Operands are views into flat buffers given by
//! an offset and row/column strides, so transposes cost nothing.

use super::runtime::{Gpu, GpuBuffer, Shader};

static GEMM: Shader = Shader {
    name: "gemm",
    source: include_str!("../../../shaders/gemm.wgsl"),
};

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
pub struct Out<'a> {
    /// Destination buffer.
    pub buf: &'a GpuBuffer,
    /// First element.
    pub off: usize,
    /// Row stride (>= n).
    pub rs: usize,
}

/// Records `C = alpha * A B (+ C if accumulate) (+ bias[n])` with A `[m, k]`, B `[k, n]`.
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
    if m == 0 || n == 0 {
        return;
    }
    let flags = accumulate as u32 | (bias.is_some() as u32) << 1;
    let (bias_buf, bias_off) = bias.unwrap_or((a.buf, 0));
    let params = [
        m as u32,
        n as u32,
        k as u32,
        flags,
        a.off as u32,
        a.rs as u32,
        a.cs as u32,
        b.off as u32,
        b.rs as u32,
        b.cs as u32,
        c.off as u32,
        c.rs as u32,
        bias_off as u32,
        alpha.to_bits(),
        0,
        0,
    ];
    let pipeline = gpu.pipeline(&GEMM, "gemm", &[]);
    gpu.dispatch(
        &pipeline,
        &params,
        &[a.buf, b.buf, c.buf, bias_buf],
        [n.div_ceil(64) as u32, m.div_ceil(64) as u32, 1],
    );
    let (mf, nf, kf) = (m as f64, n as f64, k as f64);
    let c_traffic = if accumulate { 2.0 } else { 1.0 };
    gpu.cost(
        2.0 * mf * nf * kf,
        4.0 * (mf * kf + kf * nf + c_traffic * mf * nf),
    );
}

/// Records `dst[at..at + n] += column sums of the [rows, n] view `src`` (bias gradients), as a
/// GEMM of `src^T` against `ones` (at least `rows` ones): one mechanism for every bias.
pub fn col_sums(
    gpu: &Gpu,
    ones: &GpuBuffer,
    src: Mat<'_>,
    rows: usize,
    n: usize,
    dst: &GpuBuffer,
    at: usize,
) {
    let src_t = Mat {
        buf: src.buf,
        off: src.off,
        rs: src.cs,
        cs: src.rs,
    };
    let ones = Mat {
        buf: ones,
        off: 0,
        rs: 1,
        cs: 0,
    };
    let out = Out {
        buf: dst,
        off: at,
        rs: 1,
    };
    gemm(gpu, n, 1, rows, src_t, ones, out, 1.0, true, None);
}
