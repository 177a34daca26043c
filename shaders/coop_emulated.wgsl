// coop_emulated.wgsl: the cooperative-matrix operations of the tensor-core kernels
// (shaders/gemm_coop.wgsl, shaders/step_coop.wgsl) in plain WGSL, appended to them (after
// src/backend/wgpu/codegen.rs writes their `coop_*` / `step_coop_*` lines as calls to these)
// for adapters without matrix units, so that every other line of those kernels runs and is
// compared with the CPU reference there (`Gpu::set_tensor_emulation`). Not a fast path: a test
// and debugging aid.
//
// A virtual subgroup is 32 consecutive invocations (sg = t / 32, lane = t % 32). A 16x16 f32
// matrix (`Emu`) is spread over its lanes: lane l holds row l / 2, columns (l % 2) * 8 .. + 7,
// as two vec4. The A and B operands are not copied: a matrix load is its offset and row
// stride in the kernel's staged f16 tiles `As` and `Bs` (row-major), which stay unchanged
// while a chunk's products run, exactly as coopLoadT reads them. Products of the f16
// operands are exact in f32 and summed in f32, as on the matrix units (in another order).
// Results are stored into the kernel's f32 array `Cs`, row-major with row stride 16 (as
// coopStoreT with stride 16).

struct Emu {
    lo: vec4<f32>,
    hi: vec4<f32>,
}

fn emu_zero() -> Emu {
    return Emu(vec4<f32>(0.0), vec4<f32>(0.0));
}

/// `acc + A B` for the A matrix at As[ia] (row stride lda) and the B matrix at Bs[ib] (row
/// stride ldb): this lane's 8 elements.
fn emu_mma(ia: u32, lda: u32, ib: u32, ldb: u32, acc: Emu, lane: u32) -> Emu {
    let row = ia + (lane / 2u) * lda;
    let col = ib + (lane % 2u) * 8u;
    var lo = acc.lo;
    var hi = acc.hi;
    for (var k = 0u; k < 16u; k++) {
        let a = f32(As[row + k]);
        let b = col + k * ldb;
        lo += a * vec4<f32>(f32(Bs[b]), f32(Bs[b + 1u]), f32(Bs[b + 2u]), f32(Bs[b + 3u]));
        hi += a * vec4<f32>(f32(Bs[b + 4u]), f32(Bs[b + 5u]), f32(Bs[b + 6u]), f32(Bs[b + 7u]));
    }
    return Emu(lo, hi);
}

/// `c + (t * s1) * s2`, element-wise.
fn emu_add_scaled(c: Emu, t: Emu, s1: f32, s2: f32) -> Emu {
    return Emu(c.lo + (t.lo * s1) * s2, c.hi + (t.hi * s1) * s2);
}

/// Stores the matrix row-major with row stride 16 at Cs[base] (as coopStoreT).
fn emu_store(m: Emu, base: u32, lane: u32) {
    let i = base + (lane / 2u) * 16u + (lane % 2u) * 8u;
    Cs[i] = m.lo.x;
    Cs[i + 1u] = m.lo.y;
    Cs[i + 2u] = m.lo.z;
    Cs[i + 3u] = m.lo.w;
    Cs[i + 4u] = m.hi.x;
    Cs[i + 5u] = m.hi.y;
    Cs[i + 6u] = m.hi.z;
    Cs[i + 7u] = m.hi.w;
}
