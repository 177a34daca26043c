//! Shared helpers of the GPU tests: opening the backend (failing with the install hint when
//! no adapter exists, unless `WGRNN_SKIP_GPU=1` is set deliberately), fresh random inputs,
//! NaN poisoning and relative-error comparison.
#![allow(dead_code)]

use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use wgrnn::WgpuBackend;

/// The GPU backend, or `None` when the run deliberately skips GPU tests.
pub fn gpu() -> Option<WgpuBackend> {
    if std::env::var("WGRNN_SKIP_GPU").is_ok_and(|v| v == "1") {
        eprintln!("WGRNN_SKIP_GPU=1: skipping a GPU test");
        return None;
    }
    match WgpuBackend::new(None) {
        // The default kernel choices, whatever a developer's autotune table says (tests that
        // compare choices set their own).
        Ok(mut be) => {
            be.set_tuning(wgrnn::backend::wgpu::Tuning::default());
            // Measured product tiles too (tests that keep them name their own file).
            be.gpu().set_product_tiles_file(None);
            Some(be)
        }
        Err(e) => panic!("the GPU tests need an adapter: {e}"),
    }
}

/// Lays `g`'s kernels out for the H100's workgroup memory (`Gpu::set_workgroup_storage`),
/// for `test`: true where that took, as it must on a CPU adapter (lavapipe, CI); a GPU with
/// less is said so on stderr and the test does not run there.
pub fn lay_out_for_the_h100(g: &wgrnn::backend::wgpu::Gpu, test: &str) -> bool {
    use wgrnn::backend::wgpu::H100_WORKGROUP_BYTES;
    let storage = g.set_workgroup_storage(H100_WORKGROUP_BYTES as u32);
    if storage as usize == H100_WORKGROUP_BYTES {
        return true;
    }
    assert_ne!(
        g.info().device_type,
        wgpu::DeviceType::Cpu,
        "a CPU adapter takes any workgroup memory"
    );
    eprintln!(
        "{test}: {} has {storage} bytes of workgroup memory, not the H100's \
         {H100_WORKGROUP_BYTES}; not run on it",
        g.info().name
    );
    false
}

/// The cell of a suite configuration with `gates` gate rows per unit (its `kind`): the
/// LSTM (4), PyTorch's GRU (3) or the tanh Elman cell (1).
pub fn suite_cell(gates: usize) -> wgrnn::config::CellConfig {
    use wgrnn::config::{Activation, CellConfig, GruVariant};
    match gates {
        4 => CellConfig::lstm(false, None),
        3 => CellConfig::Gru {
            variant: GruVariant::Pytorch,
        },
        _ => CellConfig::Elman {
            activation: Activation::Tanh,
        },
    }
}

/// A fresh RNG: seeded from the clock so every run draws new inputs, printed so a failure
/// can be replayed with `WGRNN_TEST_SEED`.
pub fn rng(test: &str) -> ChaCha8Rng {
    let seed = std::env::var("WGRNN_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    eprintln!("{test}: WGRNN_TEST_SEED={seed}");
    ChaCha8Rng::seed_from_u64(seed)
}

/// `n` values uniform in [-scale, scale].
pub fn uniform(rng: &mut ChaCha8Rng, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-scale..=scale)).collect()
}

/// `n` NaNs: what outputs hold before a kernel runs, so anything it forgets to write shows.
pub fn poison(n: usize) -> Vec<f32> {
    vec![f32::NAN; n]
}

/// Relative error `max|a - b| / max(max|b|, floor)`; NaN anywhere gives infinity.
pub fn rel_err(a: &[f32], b: &[f32], floor: f64) -> f64 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    let mut num = 0.0f64;
    let mut den = floor;
    for (&x, &y) in a.iter().zip(b) {
        if !x.is_finite() || !y.is_finite() {
            return f64::INFINITY;
        }
        num = num.max((x as f64 - y as f64).abs());
        den = den.max((y as f64).abs());
    }
    num / den
}

/// The smallest scale errors are measured against. Inputs, weights and states are O(1), so
/// f32 rounding leaves absolute errors of about 1e-7 in any value however small it ends up;
/// a tensor of one or a few values that cancel to near zero (a single output of 2.5e-4, a
/// Jordan state of 1.3e-4) would otherwise fail on rounding alone.
pub const SCALE_FLOOR: f64 = 1e-2;

/// Asserts `rel_err(got, want) <= tol`, naming what was compared.
pub fn assert_close(what: &str, got: &[f32], want: &[f32], tol: f64) {
    let e = rel_err(got, want, SCALE_FLOOR);
    assert!(
        e <= tol,
        "{what}: relative error {e:e} > {tol:e} (len {})",
        got.len()
    );
}

use wgrnn::config::{InputEncoding, LayerConfig, NetworkConfig};
use wgrnn::{Batch, CpuBackend, Inputs, LayerState, Mode, Model, SeqShape, Wants};

/// A layer of `cell` with `hidden` units.
pub fn layer(cell: wgrnn::config::CellConfig, hidden: usize, bidirectional: bool) -> LayerConfig {
    LayerConfig {
        cell,
        hidden,
        bidirectional,
        dropout: 0.0,
        recurrent: true,
    }
}

/// A dense-input network.
pub fn dense_net(
    features: usize,
    layers: Vec<LayerConfig>,
    head: Option<wgrnn::config::HeadConfig>,
) -> NetworkConfig {
    NetworkConfig {
        input: InputEncoding::Dense { features },
        layers,
        head,
    }
}

/// A dense batch of random features, time-major, zero on padding steps.
pub fn dense_batch(rng: &mut ChaCha8Rng, features: usize, lengths: &[usize]) -> Batch<f32> {
    let time = *lengths.iter().max().expect("lengths");
    let nb = lengths.len();
    let mut x = uniform(rng, time * nb * features, 1.0);
    for t in 0..time {
        for (b, &len) in lengths.iter().enumerate() {
            if t >= len {
                x[(t * nb + b) * features..(t * nb + b + 1) * features].fill(0.0);
            }
        }
    }
    Batch {
        seq: SeqShape {
            time,
            lengths: lengths.to_vec(),
        },
        inputs: Inputs::Dense(x),
    }
}

/// Random states shaped like `like`.
pub fn random_states(rng: &mut ChaCha8Rng, like: &[LayerState<f32>]) -> Vec<LayerState<f32>> {
    like.iter()
        .map(|s| LayerState {
            h: uniform(rng, s.h.len(), 1.0),
            c: s.c.as_ref().map(|c| uniform(rng, c.len(), 1.0)),
        })
        .collect()
}

/// The same batch with every feature NaN.
pub fn nan_batch(b: &Batch<f32>) -> Batch<f32> {
    let inputs = match &b.inputs {
        Inputs::Dense(x) => Inputs::Dense(vec![f32::NAN; x.len()]),
        other => other.clone(),
    };
    Batch {
        seq: b.seq.clone(),
        inputs,
    }
}

fn flat_states(s: &[LayerState<f32>]) -> Vec<f32> {
    s.iter()
        .flat_map(|l| l.h.iter().chain(l.c.iter().flatten()).copied())
        .collect()
}

/// The CPU reference's scalar in `compare_stack`: its f32 twin, computing each activation
/// derivative from an f32 output exactly as the kernels do (an f64 reference turns the f32
/// cancellation in `1 - h^2` of a saturated unit into spurious "errors").
type Ref = f32;

fn widen(v: &[f32]) -> Vec<Ref> {
    v.iter().map(|&x| wgrnn::Real::of(f64::from(x))).collect()
}

fn narrow(v: &[Ref]) -> Vec<f32> {
    v.iter().map(|&x| wgrnn::Real::f64(x) as f32).collect()
}

fn widen_states(s: &[LayerState<f32>]) -> Vec<LayerState<Ref>> {
    s.iter()
        .map(|l| LayerState {
            h: widen(&l.h),
            c: l.c.as_deref().map(widen),
        })
        .collect()
}

fn flat_states64(s: &[LayerState<Ref>]) -> Vec<f32> {
    s.iter()
        .flat_map(|l| {
            l.h.iter()
                .chain(l.c.iter().flatten())
                .map(|&x| wgrnn::Real::f64(x) as f32)
        })
        .collect()
}

/// Runs one recurrent stack forward and backward from random output and final-state
/// gradients on the CPU reference and on the GPU, with the same parameters (PyTorch's
/// init, U(-1/sqrt(H), 1/sqrt(H)), drawn fresh each call), inputs and initial states, and compares every result:
/// outputs and final states to `tol_fwd`, every parameter gradient and the input and
/// initial-state gradients to `tol_grad`. The GPU model first runs on NaN inputs, so
/// anything a kernel fails to (re)write shows up as NaN.
pub fn compare_stack(
    be: WgpuBackend,
    cfg: &NetworkConfig,
    lengths: &[usize],
    rng: &mut ChaCha8Rng,
    tol_fwd: f64,
    tol_grad: f64,
) -> WgpuBackend {
    compare_stack_scaled(be, cfg, lengths, rng, tol_fwd, tol_grad, 1.0)
}

/// [`compare_stack`] with the output and final-state gradients scaled by `grad_scale` (a
/// power of two, so the reference's gradients scale exactly); every gradient is compared
/// after dividing by it, so a kernel that loses small values (f16 operands outside f16's
/// range) shows as a relative error however small the scale.
pub fn compare_stack_scaled(
    be: WgpuBackend,
    cfg: &NetworkConfig,
    lengths: &[usize],
    rng: &mut ChaCha8Rng,
    tol_fwd: f64,
    tol_grad: f64,
    grad_scale: f32,
) -> WgpuBackend {
    compare_stack_with(
        be,
        cfg,
        lengths,
        rng,
        (tol_fwd, tol_grad),
        grad_scale,
        false,
    )
}

/// [`compare_stack`] with every layer started from zero states (no initial states given,
/// so a backend may skip their share of dW_hh); their gradients are still compared.
pub fn compare_stack_from_zero_states(
    be: WgpuBackend,
    cfg: &NetworkConfig,
    lengths: &[usize],
    rng: &mut ChaCha8Rng,
    tol_fwd: f64,
    tol_grad: f64,
) -> WgpuBackend {
    compare_stack_with(be, cfg, lengths, rng, (tol_fwd, tol_grad), 1.0, true)
}

/// [`compare_stack_scaled`], from random initial states or (`zero_init`) from none.
fn compare_stack_with(
    be: WgpuBackend,
    cfg: &NetworkConfig,
    lengths: &[usize],
    rng: &mut ChaCha8Rng,
    (tol_fwd, tol_grad): (f64, f64),
    grad_scale: f32,
    zero_init: bool,
) -> WgpuBackend {
    let what = format!("{cfg:?} lengths {lengths:?} zero_init {zero_init}");
    let features = match cfg.input {
        InputEncoding::Dense { features } => features,
        _ => panic!("dense input expected"),
    };
    let seed = rng.random_range(0..u64::MAX);
    let mut cpu = Model::new(CpuBackend::<Ref>::new(), cfg.clone(), seed).expect("cpu model");
    let mut gpu = Model::new(be, cfg.clone(), seed).expect("gpu model");
    let params: Vec<f32> = narrow(&cpu.params());
    cpu.set_params(&widen(&params)).expect("params");
    gpu.set_params(&params).expect("params");
    let batch = dense_batch(rng, features, lengths);
    let batch64 = Batch {
        seq: batch.seq.clone(),
        inputs: match &batch.inputs {
            Inputs::Dense(x) => Inputs::Dense(widen(x)),
            Inputs::Ids(i) => Inputs::Ids(i.clone()),
            Inputs::Bags { offsets, ids } => Inputs::Bags {
                offsets: offsets.clone(),
                ids: ids.clone(),
            },
        },
    };
    gpu.forward(&batch, None, Mode::Eval).expect("gpu forward");
    let init = random_states(rng, &gpu.final_states());
    let init64 = widen_states(&init);
    let (init, init64) = match zero_init {
        true => (None, None),
        false => (Some(init), Some(init64)),
    };
    let scaled = |v: Vec<f32>| v.into_iter().map(|x| x * grad_scale).collect::<Vec<_>>();
    let dout = scaled(uniform(rng, gpu.outputs().len(), 1.0));
    let dfinal: Vec<LayerState<f32>> = random_states(rng, &gpu.final_states())
        .into_iter()
        .map(|s| LayerState {
            h: scaled(s.h),
            c: s.c.map(scaled),
        })
        .collect();
    let unscaled = |v: Vec<f32>| v.into_iter().map(|x| x / grad_scale).collect::<Vec<_>>();
    let wants = Wants {
        inputs: true,
        initial_states: true,
    };

    // Poison pass, over every step of every sequence: rows that are padding in the real batch
    // then hold NaN, as a previous batch of the same shape can leave any values there.
    let mut poison_batch = nan_batch(&batch);
    poison_batch.seq.lengths.fill(batch.seq.time);
    gpu.forward(&poison_batch, init.as_deref(), Mode::Eval)
        .expect("gpu forward");
    gpu.backward_from(&dout, Some(&dfinal), wants)
        .expect("gpu backward");
    gpu.zero_grads();

    cpu.forward(&batch64, init64.as_deref(), Mode::Eval)
        .expect("cpu forward");
    gpu.forward(&batch, init.as_deref(), Mode::Eval)
        .expect("gpu forward");
    assert_close(
        &format!("outputs of {what}"),
        &gpu.outputs(),
        &narrow(&cpu.outputs()),
        tol_fwd,
    );
    // Final states against the scale of the outputs: each final h is one step's output of
    // its layer, and a state that cancels to near zero (a Jordan state of 1.3e-4 from O(1)
    // terms, WGRNN_TEST_SEED=1795445899727028217) carries the rounding of those terms.
    let out_scale = cpu
        .outputs()
        .iter()
        .fold(SCALE_FLOOR, |m, &v| m.max(wgrnn::Real::f64(v).abs()));
    let states_err = rel_err(
        &flat_states(&gpu.final_states()),
        &flat_states64(&cpu.final_states()),
        out_scale,
    );
    assert!(
        states_err <= tol_fwd,
        "final states of {what}: relative error {states_err:e} > {tol_fwd:e}"
    );
    let gc = cpu
        .backward_from(&widen(&dout), Some(&widen_states(&dfinal)), wants)
        .expect("cpu backward");
    let gg = gpu
        .backward_from(&dout, Some(&dfinal), wants)
        .expect("gpu backward");
    let (cg, ggr) = (unscaled(narrow(&cpu.grads())), unscaled(gpu.grads()));
    for e in cpu.table().entries() {
        assert_close(
            &format!("gradient of {} in {what}", e.name),
            &ggr[e.range()],
            &cg[e.range()],
            tol_grad,
        );
    }
    assert_close(
        &format!("input gradient of {what}"),
        &unscaled(gg.inputs.expect("gpu dx")),
        &unscaled(narrow(gc.inputs.as_deref().expect("cpu dx"))),
        tol_grad,
    );
    assert_close(
        &format!("initial-state gradient of {what}"),
        &unscaled(flat_states(
            gg.initial_states.as_deref().expect("gpu dinit"),
        )),
        &unscaled(flat_states64(
            gc.initial_states.as_deref().expect("cpu dinit"),
        )),
        tol_grad,
    );
    gpu.into_backend()
}

/// Compiles a module that uses cooperative matrices, f16 and subgroups to SPIR-V as wgpu's
/// Vulkan backend does (parse, validate, pipeline constants, write), once per entry point and
/// set of override values in `pipelines`; panics naming `what` and the pipeline on any error.
/// For kernels no CI adapter can run (the tensor-core builds, without matrix units).
pub fn compile_coop_to_spirv(what: &str, src: &str, pipelines: &[(&str, Vec<(&str, f64)>)]) {
    use wgpu::naga;
    use wgpu::naga::valid::{Capabilities, ValidationFlags, Validator};
    let module = naga::front::wgsl::parse_str(src)
        .unwrap_or_else(|e| panic!("{what}: {}", e.emit_to_string(src)));
    let caps =
        Capabilities::COOPERATIVE_MATRIX | Capabilities::SHADER_FLOAT16 | Capabilities::SUBGROUP;
    let info = Validator::new(ValidationFlags::all(), caps)
        .validate(&module)
        .unwrap_or_else(|e| panic!("{what}: {}", e.emit_to_string(src)));
    for (entry, overrides) in pipelines {
        let which = format!("{what} {entry} {overrides:?}");
        let mut constants = naga::back::PipelineConstants::default();
        for (name, value) in overrides {
            constants.insert(name.to_string(), *value);
        }
        let stage = naga::ShaderStage::Compute;
        let (module, info) = naga::back::pipeline_constants::process_overrides(
            &module,
            &info,
            Some((stage, entry)),
            &constants,
        )
        .unwrap_or_else(|e| panic!("{which}: {e}"));
        let words = naga::back::spv::write_vec(
            &module,
            &info,
            &naga::back::spv::Options::default(),
            Some(&naga::back::spv::PipelineOptions {
                shader_stage: stage,
                entry_point: entry.to_string(),
            }),
        )
        .unwrap_or_else(|e| panic!("{which}: {e}"));
        assert!(words.len() > 1000, "{which}: a real module");
    }
}

/// Makes `g` run its tensor-core kernels (`what`, for the messages): on its matrix units, or
/// with their matrix operations emulated where it has none (lavapipe: every other line of the
/// kernels runs as on the matrix units). Returns whether they are emulated; fails if neither
/// is possible.
pub fn tensor_cores_or_emulated(g: &wgrnn::backend::wgpu::Gpu, what: &str) -> bool {
    let emulated = !g.has_tensor_cores() && g.set_tensor_emulation(true);
    assert!(
        g.has_tensor_cores(),
        "the GPU tests' adapter must run the {what}, on matrix units or emulated (f16 and 27 \
         KiB of workgroup memory)"
    );
    eprintln!(
        "{what} on `{}`: {}",
        g.info().name,
        if emulated { "emulated" } else { "matrix units" }
    );
    emulated
}
