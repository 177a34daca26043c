//! The layer pipeline (`Tuning::wavefront`, `src/backend/wgpu/stack.rs`): a stack's forward
//! and backward as wavefronts over chunks of time steps, each time step one dispatch for
//! every layer in it. Against the CPU reference (`compare_stack`: padding poisoned, initial
//! states, every gradient) for LSTM, GRU and Elman stacks at chunk counts that do and do not
//! divide the steps (and more chunks than steps); and against the same GPU layer by layer,
//! to the last bit, in training mode with dropout between the layers, f32 and f16 with the
//! tensor-core steps reading W_hh's f16 copy (emulated on lavapipe), but for the parameter
//! gradients of f16 LSTM and GRU stacks, whose gate gradients are held in windows of a chunk
//! and summed per chunk (to rounding, and against the CPU reference). Each pipelined forward
//! and backward must take fewer dispatches than layer by layer, so no comparison passes on
//! the fallback.

mod gpu_common;

use gpu_common::{
    compare_stack, dense_batch, dense_net, gpu, layer, random_states, rng, suite_cell,
    tensor_cores_or_emulated, uniform,
};
use wgrnn::backend::wgpu::gemm::GemmTiles;
use wgrnn::backend::wgpu::{Precision, Tuning};
use wgrnn::config::{CellConfig, NetworkConfig};
use wgrnn::{Batch, LayerState, Mode, Model, Wants, WgpuBackend};

/// 19 sequences of mixed lengths, the longest `longest` steps.
fn lengths(longest: usize) -> Vec<usize> {
    (0..19)
        .map(|i| [longest, 1, 4, longest, 2, 5][i % 6])
        .collect()
}

/// One stack of the CPU-reference tests: the cell, layers, units, chunks asked, and whether
/// the steps are the matrix-vector products.
type Stack = (CellConfig, usize, usize, usize, bool);

/// Compares each of `stacks` through the pipeline on `be` with the CPU reference
/// (`compare_stack`) over 7 steps of mixed lengths, and of a batch without padding (whose
/// windows and gate gradients start uninitialised, after a pass that left NaN in them),
/// within `tol` (outputs, gradients).
fn stacks_match_the_cpu_reference(
    mut be: WgpuBackend,
    test: &str,
    stacks: &[Stack],
    tol: (f64, f64),
) {
    let mut r = rng(test);
    for (cell, layers, hidden, chunks, gemv) in stacks {
        be.set_tuning(Tuning {
            wavefront: Some(*chunks),
            gemv_steps: Some(*gemv),
            ..Tuning::default()
        });
        let cfg = dense_net(3, vec![layer(cell.clone(), *hidden, false); *layers], None);
        be = compare_stack(be, &cfg, &lengths(7), &mut r, tol.0, tol.1);
        be = compare_stack(be, &cfg, &[7; 5], &mut r, tol.0, tol.1);
    }
}

#[test]
fn wavefront_matches_the_cpu_reference() {
    let Some(be) = gpu() else { return };
    // 7 steps in 3 chunks of 3, 2, 2 (the last shorter), in 2, in 7 of 1 (64 asked: no
    // more chunks than steps) and in 4 of 2; the matrix-vector steps (the defaults at up to
    // 4 sequences) joined too. A peephole LSTM's scratch (3 values per row and unit) is in
    // windows of a chunk while its gate gradients are in the records, for all rows.
    let (lstm, gru, elman) = (suite_cell(4), suite_cell(3), suite_cell(1));
    let stacks = [
        (CellConfig::lstm(true, None), 3, 24, 3, false),
        (CellConfig::lstm(true, None), 2, 20, 2, true),
        (lstm.clone(), 3, 20, 3, false),
        (gru.clone(), 2, 33, 2, false),
        (elman, 3, 17, 64, false),
        (lstm.clone(), 4, 40, 4, false),
        (lstm, 3, 24, 3, true),
        (gru, 2, 20, 2, true),
    ];
    let test = "wavefront_matches_the_cpu_reference";
    stacks_match_the_cpu_reference(be, test, &stacks, (1e-5, 1e-4));
}

/// With f16 caches the LSTM's and GRU's backward hold their gate gradients in windows of a
/// chunk (`stack::window_rows`): against the f32 CPU reference at the bounds of f16 storage
/// (`tests/gpu_f16.rs`), with chunks that do and do not divide the steps, padding rows
/// between them and more chunks than steps; and a peephole LSTM, whose scratch (the
/// peepholes' column sums) is in the windows too.
#[test]
fn wavefront_with_gate_gradient_windows_matches_the_cpu_reference() {
    let Some(mut be) = gpu() else { return };
    be.set_precision(Precision::F16).expect("SHADER_F16");
    let stacks = [
        (suite_cell(4), 3, 20, 3, false),
        (suite_cell(3), 2, 33, 2, false),
        (suite_cell(4), 2, 16, 64, false),
        (CellConfig::lstm(true, None), 3, 24, 3, false),
    ];
    let test = "wavefront_with_gate_gradient_windows_matches_the_cpu_reference";
    stacks_match_the_cpu_reference(be, test, &stacks, (4e-3, 5e-3));
}

/// What one training pass of `cfg` on `be` gives: outputs, final states, every gradient
/// (parameters, inputs, initial states), and the dispatches its forward and backward took.
struct Pass {
    outputs: Vec<f32>,
    states: Vec<LayerState<f32>>,
    grads: Vec<f32>,
    dinputs: Vec<f32>,
    dinit: Vec<LayerState<f32>>,
    forward_dispatches: u64,
    backward_dispatches: u64,
}

fn train_pass(
    be: WgpuBackend,
    cfg: &NetworkConfig,
    params: &[f32],
    batch: &Batch<f32>,
    init: &[LayerState<f32>],
    seed: u64,
) -> Pass {
    let mut m = Model::new(be, cfg.clone(), 1).expect("model");
    m.set_params(params).expect("params");
    pass_of(&mut m, batch, init, seed)
}

/// [`train_pass`] on a model made before (its gradients zeroed first).
fn pass_of(
    m: &mut Model<WgpuBackend>,
    batch: &Batch<f32>,
    init: &[LayerState<f32>],
    seed: u64,
) -> Pass {
    m.zero_grads();
    let before = m.backend().gpu().dispatch_count();
    m.forward(batch, Some(init), Mode::Train { dropout_seed: seed })
        .expect("forward");
    m.backend().sync();
    let forward_dispatches = m.backend().gpu().dispatch_count() - before;
    let outputs = m.outputs();
    let states = m.final_states();
    // Gradients of fixed values for the outputs, and of the final states scaled.
    let dout: Vec<f32> = (0..outputs.len())
        .map(|i| ((i * 7919) % 13) as f32 / 13.0 - 0.5)
        .collect();
    let dfinal: Vec<LayerState<f32>> = states
        .iter()
        .map(|s| LayerState {
            h: s.h.iter().map(|v| 0.5 * v).collect(),
            c: s.c.as_ref().map(|c| c.iter().map(|v| -0.25 * v).collect()),
        })
        .collect();
    let wants = Wants {
        inputs: true,
        initial_states: true,
    };
    let before = m.backend().gpu().dispatch_count();
    let g = m
        .backward_from(&dout, Some(&dfinal), wants)
        .expect("backward");
    m.backend().sync();
    let backward_dispatches = m.backend().gpu().dispatch_count() - before;
    Pass {
        outputs,
        states,
        grads: m.grads(),
        dinputs: g.inputs.expect("input gradient"),
        dinit: g.initial_states.expect("initial-state gradients"),
        forward_dispatches,
        backward_dispatches,
    }
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn state_bits(s: &[LayerState<f32>]) -> Vec<u32> {
    s.iter()
        .flat_map(|s| {
            bits(&s.h)
                .into_iter()
                .chain(bits(s.c.as_deref().unwrap_or(&[])))
        })
        .collect()
}

/// The largest difference between `a` and `b` relative to the largest magnitude of `b`.
fn rel_err(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths");
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    assert!(scale > 0.0 && diff.is_finite(), "all zero or not finite");
    diff / scale
}

/// How the backward through the pipeline compares with layer by layer.
#[derive(Clone, Copy, PartialEq)]
enum Backward {
    /// Every gradient equal to the bit.
    ToTheBit,
    /// The gate gradients in windows of a chunk (f16 LSTM and GRU caches,
    /// `stack::window_rows`): the parameter gradients are summed per chunk, so they agree to
    /// rounding; the rest to the bit.
    Windows,
}

/// Trains one pass of `cfg` over sequences of up to `steps` steps layer by layer and in a
/// wavefront of `chunks` on backends `setup` makes, and asserts the forward's results equal
/// to the bit, the backward's as `backward` says, and fewer dispatches each way.
fn same_as_layer_by_layer(
    cfg: &NetworkConfig,
    (steps, chunks): (usize, usize),
    backward: Backward,
    setup: &dyn Fn(usize) -> Option<WgpuBackend>,
) {
    let Some(one) = setup(1) else { return };
    let Some(wave) = setup(chunks) else { return };
    let mut r = rng("wavefront same as layer by layer");
    // Layer by layer `steps` step dispatches a layer each way, in a wavefront (chunks + layers
    // - 1) x steps / chunks for all of them, which outweighs its GEMMs and dropouts per chunk
    // (and with windows its parameter gradients per chunk).
    let lengths = lengths(steps);
    let probe = Model::new(wgrnn::CpuBackend::<f32>::new(), cfg.clone(), 3).expect("cpu model");
    let params = uniform(&mut r, probe.params().len(), 0.4);
    let batch = dense_batch(&mut r, 3, &lengths);
    let mut shape = Model::new(wgrnn::CpuBackend::<f32>::new(), cfg.clone(), 3).expect("cpu model");
    shape
        .forward(&batch, None, Mode::Eval)
        .expect("cpu forward");
    let init = random_states(&mut r, &shape.final_states());
    let a = train_pass(one, cfg, &params, &batch, &init, 11);
    let b = train_pass(wave, cfg, &params, &batch, &init, 11);
    assert!(a.outputs.iter().all(|v| v.is_finite()), "finite outputs");
    assert!(a.outputs.iter().any(|&v| v != 0.0), "outputs not all zero");
    assert_eq!(bits(&a.outputs), bits(&b.outputs), "outputs");
    assert_eq!(state_bits(&a.states), state_bits(&b.states), "final states");
    match backward {
        Backward::ToTheBit => assert_eq!(bits(&a.grads), bits(&b.grads), "parameter gradients"),
        Backward::Windows => {
            // Summed per chunk: to rounding.
            let e = rel_err(&b.grads, &a.grads);
            assert!(e < 1e-5, "parameter gradients: relative error {e}");
            assert_ne!(bits(&a.grads), bits(&b.grads), "summed per chunk");
        }
    }
    // Either way made from the same gate gradients.
    assert_eq!(bits(&a.dinputs), bits(&b.dinputs), "input gradients");
    assert_eq!(
        state_bits(&a.dinit),
        state_bits(&b.dinit),
        "initial-state gradients"
    );
    assert!(
        b.forward_dispatches < a.forward_dispatches,
        "the wavefront's forward took {} dispatches, layer by layer {}",
        b.forward_dispatches,
        a.forward_dispatches
    );
    assert!(
        b.backward_dispatches < a.backward_dispatches,
        "the wavefront's backward took {} dispatches, layer by layer {}",
        b.backward_dispatches,
        a.backward_dispatches
    );
    eprintln!(
        "dispatches forward, backward: {}, {} layer by layer, {}, {} in a wavefront of {chunks}",
        a.forward_dispatches, a.backward_dispatches, b.forward_dispatches, b.backward_dispatches
    );
}

/// An LSTM stack with dropout after its lower layers.
fn dropout_stack(hidden: usize) -> NetworkConfig {
    let mut layers = vec![layer(suite_cell(4), hidden, false); 3];
    layers[0].dropout = 0.3;
    layers[1].dropout = 0.2;
    dense_net(3, layers, None)
}

#[test]
fn wavefront_is_layer_by_layer_to_the_bit() {
    let setup = |chunks: usize| {
        let mut be = gpu()?;
        be.set_tuning(Tuning {
            wavefront: Some(chunks),
            ..Tuning::default()
        });
        Some(be)
    };
    same_as_layer_by_layer(&dropout_stack(24), (24, 3), Backward::ToTheBit, &setup);
    let gru = dense_net(3, vec![layer(suite_cell(3), 20, false); 2], None);
    same_as_layer_by_layer(&gru, (24, 2), Backward::ToTheBit, &setup);
    // The 128x128 tiles, which the suite's large products take: the layers' products of a
    // phase side by side in one dispatch (`gemm::Products`), each as it runs alone.
    let big = |chunks: usize| {
        let mut be = gpu()?;
        be.set_tuning(Tuning {
            wavefront: Some(chunks),
            gemm_tiles: GemmTiles::Big,
            ..Tuning::default()
        });
        Some(be)
    };
    same_as_layer_by_layer(&dropout_stack(24), (24, 3), Backward::ToTheBit, &big);
}

#[test]
fn wavefront_of_tensor_core_steps_on_the_f16_weight_copy_matches_layer_by_layer() {
    let setup = |chunks: usize| {
        let mut be = gpu()?;
        tensor_cores_or_emulated(be.gpu(), "tensor-core steps");
        be.set_precision(Precision::F16).expect("f16");
        be.set_tuning(Tuning {
            wavefront: Some(chunks),
            tensor_steps: Some(true),
            half_step_weights: Some(true),
            ..Tuning::default()
        });
        Some(be)
    };
    // The f16 LSTM's and GRU's backward hold their gate gradients (4 and 7 values per row
    // and unit a layer outside the cache) in windows of a chunk; the Elman stack's, one value
    // per row and unit, for all steps.
    // 3 chunks of 11, 11 and 10 steps: the last window shorter.
    same_as_layer_by_layer(&dropout_stack(32), (32, 3), Backward::Windows, &setup);
    let gru = dense_net(3, vec![layer(suite_cell(3), 24, false); 3], None);
    same_as_layer_by_layer(&gru, (40, 2), Backward::Windows, &setup);
    let mut elman = vec![layer(suite_cell(1), 32, false); 3];
    elman[1].dropout = 0.25;
    same_as_layer_by_layer(
        &dense_net(3, elman, None),
        (24, 3),
        Backward::ToTheBit,
        &setup,
    );
}

/// Parameters, a batch of `lengths` and initial states for `cfg`, drawn from `r`.
fn draw_pass(
    r: &mut rand::rngs::ChaCha8Rng,
    cfg: &NetworkConfig,
    lengths: &[usize],
) -> (Vec<f32>, Batch<f32>, Vec<LayerState<f32>>) {
    let mut probe = Model::new(wgrnn::CpuBackend::<f32>::new(), cfg.clone(), 3).expect("cpu model");
    let params = uniform(r, probe.params().len(), 0.4);
    let batch = dense_batch(r, 3, lengths);
    probe
        .forward(&batch, None, Mode::Eval)
        .expect("cpu forward");
    let init = random_states(r, &probe.final_states());
    (params, batch, init)
}

/// A backend that measures the layer pipeline on any adapter (`--wavefront measured`).
fn measuring_gpu() -> Option<WgpuBackend> {
    let mut be = gpu()?;
    be.set_tuning(Tuning {
        wavefront_measured: true,
        ..Tuning::default()
    });
    Some(be)
}

/// `--wavefront measured` (what `auto` does on a GPU): the first passes of a stack shape run
/// each candidate chunk count (layer by layer, 4 and 8 chunks) in turn, the forward and the
/// backward apart and in opposite orders, so a pipelined forward also meets a backward
/// layer by layer and the other way round; every one of them gives layer by layer's
/// results to the bit (f32 LSTM stack, dropout between the layers). Once each has run an
/// untimed pass and its timed ones, the fastest is kept for each pass, and the passes after
/// take the dispatches of the chunk count it chose; a batch of another length in the same
/// class (steps to the same power of two) measures nothing more, one of another class
/// measures anew.
#[test]
fn measured_pipeline_runs_every_chunk_count_and_keeps_the_fastest() {
    use wgrnn::backend::wgpu::measured::fastest;
    use wgrnn::backend::wgpu::pipeline_measure::{CANDIDATES, ROUNDS};
    let Some(measured) = measuring_gpu() else {
        return;
    };
    let fixed = |chunks: usize| {
        let mut be = gpu().expect("adapter");
        be.set_tuning(Tuning {
            wavefront: Some(chunks),
            ..Tuning::default()
        });
        be
    };
    let mut r = rng("measured_pipeline_runs_every_chunk_count_and_keeps_the_fastest");
    let cfg = dropout_stack(24);
    let (params, batch, init) = draw_pass(&mut r, &cfg, &lengths(24));
    let reference = train_pass(fixed(1), &cfg, &params, &batch, &init, 5);
    // The dispatches of each chunk count each way.
    let counts: Vec<(u64, u64)> = CANDIDATES
        .iter()
        .map(|&n| {
            let p = train_pass(fixed(n), &cfg, &params, &batch, &init, 5);
            (p.forward_dispatches, p.backward_dispatches)
        })
        .collect();
    // Each its own count each way (8 chunks take more products than 4), so the passes
    // say which ran.
    for (i, a) in counts.iter().enumerate() {
        for b in &counts[i + 1..] {
            assert!(a.0 != b.0 && a.1 != b.1, "dispatches each way: {counts:?}");
        }
    }
    let mut m = Model::new(measured, cfg.clone(), 1).expect("model");
    m.set_params(&params).expect("params");
    let passes = CANDIDATES.len() * (1 + ROUNDS as usize);
    let mut ran = Vec::new();
    for i in 0..passes {
        assert_eq!(m.backend().measuring_pipeline(), i > 0, "pass {i}");
        let p = pass_of(&mut m, &batch, &init, 5);
        for (what, a, b) in [
            ("outputs", &reference.outputs, &p.outputs),
            ("parameter gradients", &reference.grads, &p.grads),
            ("input gradients", &reference.dinputs, &p.dinputs),
        ] {
            assert_eq!(bits(a), bits(b), "pass {i}: {what}");
        }
        assert_eq!(state_bits(&reference.states), state_bits(&p.states));
        assert_eq!(state_bits(&reference.dinit), state_bits(&p.dinit));
        let fwd = counts.iter().position(|c| c.0 == p.forward_dispatches);
        let bwd = counts.iter().position(|c| c.1 == p.backward_dispatches);
        ran.push((
            fwd.expect("a candidate's forward"),
            bwd.expect("a backward's"),
        ));
    }
    // Forward 1, 4, 8 chunks in turn, the backward 8, 4, 1.
    let turn: Vec<(usize, usize)> = (0..passes).map(|i| (i % 3, 2 - i % 3)).collect();
    assert_eq!(ran, turn, "candidates run (forward, backward)");
    assert!(!m.backend().measuring_pipeline(), "measured");
    let races = m.backend().pipeline_races();
    assert_eq!(races.len(), 2, "{races:?}");
    let mut chosen = [0, 0];
    for race in &races {
        assert_eq!(race.candidates, CANDIDATES.to_vec());
        assert_eq!(race.times.len(), CANDIDATES.len());
        assert!(race.times.iter().all(|t| t.1.is_finite() && t.1 > 0.0));
        assert_eq!(Some(race.chosen), fastest(&race.times));
        assert!(!race.stored);
        assert_eq!(race.shape.layers, 3);
        chosen[race.shape.backward as usize] = race.chosen;
        eprintln!("{}", race.label());
    }
    // The choices taken from then on.
    let p = pass_of(&mut m, &batch, &init, 5);
    let at = |n: usize| CANDIDATES.iter().position(|&c| c == n).expect("candidate");
    assert_eq!(p.forward_dispatches, counts[at(chosen[0])].0);
    assert_eq!(p.backward_dispatches, counts[at(chosen[1])].1);
    assert_eq!(bits(&reference.grads), bits(&p.grads));
    // What the other candidates left for reuse was freed when the choices were made: the
    // run holds what its choices' passes hold, as after freeing everything and running
    // them again.
    pass_of(&mut m, &batch, &init, 5);
    let held = m.backend().bytes_held();
    m.backend().gpu().trim();
    for _ in 0..2 {
        pass_of(&mut m, &batch, &init, 5);
    }
    assert_eq!(m.backend().bytes_held(), held, "bytes held after measuring");
    // 20 steps: the class of 24 (32 steps); 40 steps another.
    let (_, short, short_init) = draw_pass(&mut r, &cfg, &lengths(20));
    pass_of(&mut m, &short, &short_init, 5);
    assert!(!m.backend().measuring_pipeline(), "20 steps measured again");
    assert_eq!(m.backend().pipeline_races().len(), 2);
    let (_, long, long_init) = draw_pass(&mut r, &cfg, &lengths(40));
    pass_of(&mut m, &long, &long_init, 5);
    assert!(m.backend().measuring_pipeline(), "40 steps measured");
}

/// Measured choices are kept beside the product tiles (`pipeline_measure::PIPELINE_FILE`):
/// a second backend reading the file takes them for the same shape without measuring, and
/// a file that is not one is measured over.
#[test]
fn measured_pipeline_is_kept_between_runs_in_a_file() {
    use wgrnn::backend::wgpu::pipeline_measure::{CANDIDATES, PIPELINE_FILE, ROUNDS};
    let Some(first) = measuring_gpu() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("wgrnn-pipeline-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let tiles = dir.join("product_tiles.json");
    let kept = dir.join(PIPELINE_FILE);
    let _ = std::fs::remove_file(&kept);
    let mut r = rng("measured_pipeline_is_kept_between_runs_in_a_file");
    let cfg = dense_net(3, vec![layer(suite_cell(3), 20, false); 2], None);
    let (params, batch, init) = draw_pass(&mut r, &cfg, &lengths(16));
    let open = |be: WgpuBackend| {
        be.gpu().set_product_tiles_file(Some(tiles.clone()));
        let mut m = Model::new(be, cfg.clone(), 1).expect("model");
        m.set_params(&params).expect("params");
        m
    };
    let mut m = open(first);
    for _ in 0..CANDIDATES.len() * (1 + ROUNDS as usize) {
        pass_of(&mut m, &batch, &init, 5);
    }
    let measured = m.backend().pipeline_races();
    assert_eq!(measured.len(), 2);
    assert!(kept.exists(), "{} written", kept.display());
    let mut again = open(measuring_gpu().expect("adapter"));
    pass_of(&mut again, &batch, &init, 5);
    assert!(!again.backend().measuring_pipeline(), "taken from the file");
    let stored = again.backend().pipeline_races();
    assert_eq!(stored.len(), 2);
    for (a, b) in measured.iter().zip(&stored) {
        assert!(b.stored && !a.stored);
        assert_eq!(
            (&a.shape, a.chosen, &a.times),
            (&b.shape, b.chosen, &b.times)
        );
        assert!(b.label().ends_with("(stored)"), "{}", b.label());
    }
    std::fs::write(&kept, "not json").expect("write");
    let mut over = open(measuring_gpu().expect("adapter"));
    pass_of(&mut over, &batch, &init, 5);
    assert!(
        over.backend().measuring_pipeline(),
        "measured over a bad file"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Measured passes against the CPU reference, each candidate's pass poisoned before
/// (`compare_stack`): f32 LSTM and GRU stacks, and with f16 caches, whose pipelined
/// backward holds the gate gradients in windows of a chunk.
#[test]
fn measured_pipeline_matches_the_cpu_reference() {
    let Some(mut be) = measuring_gpu() else {
        return;
    };
    let mut r = rng("measured_pipeline_matches_the_cpu_reference");
    for (precision, tol) in [
        (Precision::F32, (1e-5, 1e-4)),
        (Precision::F16, (4e-3, 5e-3)),
    ] {
        be.set_precision(precision).expect("precision");
        for cell in [suite_cell(4), suite_cell(3)] {
            let cfg = dense_net(3, vec![layer(cell, 20, false); 3], None);
            // Enough passes for every candidate each way, and some after.
            for _ in 0..6 {
                be = compare_stack(be, &cfg, &lengths(9), &mut r, tol.0, tol.1);
            }
            assert!(!be.measuring_pipeline(), "measured");
        }
    }
    assert_eq!(be.pipeline_races().len(), 8, "{:?}", be.pipeline_races());
}
