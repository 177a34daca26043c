//! The recurrent steps' K slices chosen by measurement (`Tuning::k_split_by`,
//! `src/backend/wgpu/slices_measure.rs`): each step shape's slice counts timed aside the
//! first time it runs, forward and backward apart, the fastest kept. Measured on lavapipe
//! with `SliceChoice::Measured` (what `Auto` does on a GPU): every candidate is timed, the
//! least time wins, the measuring leaves the run's dispatches, memory and results as a run
//! without it would have them, the choices are kept in a file and read back, and a forward
//! and a backward in different slices (forced through that file) match the CPU reference;
//! the layer pipeline's joined steps are measured with their layers side by side.

mod gpu_common;

use gpu_common::{compare_stack, dense_batch, dense_net, gpu, layer, random_states, rng, uniform};
use gpu_common::{suite_cell, tensor_cores_or_emulated};
use wgrnn::backend::wgpu::slices_measure::{CANDIDATES, SLICES_FILE, SliceRace, WIDTHS};
use wgrnn::backend::wgpu::{Precision, SliceChoice, Tuning};
use wgrnn::config::NetworkConfig;
use wgrnn::{Batch, LayerState, Mode, Model, Wants, WgpuBackend};

/// 19 sequences of mixed lengths, the longest `longest` steps: 2 tiles of 16 sequences.
fn lengths(longest: usize) -> Vec<usize> {
    (0..19)
        .map(|i| [longest, 1, 4, longest, 2, 5][i % 6])
        .collect()
}

/// A backend whose K slices are chosen as `by` says (the rest the defaults).
fn slicing_gpu(by: SliceChoice) -> Option<WgpuBackend> {
    let mut be = gpu()?;
    be.set_tuning(Tuning {
        k_split_by: by,
        ..Tuning::default()
    });
    Some(be)
}

/// What a training pass gives, and what it took.
struct Pass {
    outputs: Vec<f32>,
    grads: Vec<f32>,
    dinputs: Vec<f32>,
    dispatches: u64,
    held: u64,
}

/// Parameters, a batch and initial states for `cfg`, drawn from `r`.
fn draw(
    r: &mut rand::rngs::ChaCha8Rng,
    cfg: &NetworkConfig,
) -> (Vec<f32>, Batch<f32>, Vec<LayerState<f32>>) {
    let mut probe = Model::new(wgrnn::CpuBackend::<f32>::new(), cfg.clone(), 3).expect("cpu model");
    let params = uniform(r, probe.params().len(), 0.4);
    let batch = dense_batch(r, 3, &lengths(6));
    probe
        .forward(&batch, None, Mode::Eval)
        .expect("cpu forward");
    let init = random_states(r, &probe.final_states());
    (params, batch, init)
}

/// One forward and backward of `m` (gradients zeroed first).
fn pass(m: &mut Model<WgpuBackend>, batch: &Batch<f32>, init: &[LayerState<f32>]) -> Pass {
    m.zero_grads();
    let before = m.backend().gpu().dispatch_count();
    m.forward(batch, Some(init), Mode::Train { dropout_seed: 5 })
        .expect("forward");
    let outputs = m.outputs();
    let dout: Vec<f32> = (0..outputs.len())
        .map(|i| ((i * 7919) % 13) as f32 / 13.0 - 0.5)
        .collect();
    let wants = Wants {
        inputs: true,
        initial_states: false,
    };
    let g = m.backward_from(&dout, None, wants).expect("backward");
    m.backend().sync();
    Pass {
        outputs,
        grads: m.grads(),
        dinputs: g.inputs.expect("input gradient"),
        dispatches: m.backend().gpu().dispatch_count() - before,
        held: m.backend().bytes_held(),
    }
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// A model of `cfg` on `be` with `params`.
fn model(be: WgpuBackend, cfg: &NetworkConfig, params: &[f32]) -> Model<WgpuBackend> {
    let mut m = Model::new(be, cfg.clone(), 1).expect("model");
    m.set_params(params).expect("params");
    m
}

/// Asserts `race`'s candidates are every width (the layer is wider than 32 units) at
/// every slice count, each layout once.
fn every_width_and_count(race: &SliceRace) {
    let label = race.label();
    let mut widths: Vec<usize> = race.candidates.iter().map(|t| t.units).collect();
    let mut counts: Vec<usize> = race.candidates.iter().map(|t| t.slices).collect();
    for v in [&mut widths, &mut counts] {
        v.sort();
        v.dedup();
    }
    assert_eq!(widths, WIDTHS, "{label}");
    assert_eq!(counts, CANDIDATES, "{label}");
    let mut once = race.candidates.clone();
    once.dedup();
    assert_eq!(once.len(), race.candidates.len(), "{label}");
}

/// Asserts `race` timed every candidate once, each time a real one, and took the fastest.
fn timed_every_candidate(race: &SliceRace) {
    let label = race.label();
    let timed: Vec<_> = race.times.iter().map(|t| t.0).collect();
    assert_eq!(timed, race.candidates, "{label}");
    assert!(race.candidates.len() >= 2, "{label}: a choice");
    assert!(
        race.candidates
            .iter()
            .all(|t| CANDIDATES.contains(&t.slices) && WIDTHS.contains(&t.units)),
        "{label}"
    );
    assert!(
        race.times.iter().all(|t| t.1.is_finite() && t.1 > 0.0),
        "{label}"
    );
    let least = race
        .times
        .iter()
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .expect("times");
    assert_eq!(race.chosen, least.0, "{label}: the fastest taken");
    assert!(!race.stored, "{label}: measured");
}

/// A two-layer LSTM stack's steps (one shape each way) measured at 1, 2 and 4 slices,
/// the forward before the backward, each taking its fastest; the pass that measured them
/// took the dispatches and holds the memory of a pass by the rule (the measurement's own
/// are not the run's), a pass after measures nothing more, and a batch of another width
/// measures its own shape.
#[test]
fn measured_slices_time_each_layout_and_keep_the_fastest() {
    let Some(be) = slicing_gpu(SliceChoice::Measured) else {
        return;
    };
    let rules = slicing_gpu(SliceChoice::Rules).expect("adapter");
    let mut r = rng("measured_slices_time_each_layout_and_keep_the_fastest");
    let cfg = dense_net(3, vec![layer(suite_cell(4), 40, false); 2], None);
    let (params, batch, init) = draw(&mut r, &cfg);
    let mut m = model(be, &cfg, &params);
    let mut by_rule = model(rules, &cfg, &params);
    let measured = pass(&mut m, &batch, &init);
    let ruled = pass(&mut by_rule, &batch, &init);
    assert!(
        by_rule.backend().slice_races().is_empty(),
        "the rule measures nothing"
    );
    let races = m.backend().slice_races();
    assert_eq!(races.len(), 2, "{races:?}");
    assert!(!races[0].shape.backward && races[1].shape.backward);
    for race in &races {
        every_width_and_count(race);
        timed_every_candidate(race);
        eprintln!("{}", race.label());
    }
    // Every candidate's steps were built (to be timed), each way: every count, and every
    // width (the forward's tiles of 32 sequences take half the units from 32 up).
    let gpu = m.backend().gpu();
    for entry in ["fwd_step_tiled", "bwd_step_tiled"] {
        assert_eq!(gpu.built_constants(entry, "KS"), [1.0, 2.0, 4.0], "{entry}");
    }
    assert_eq!(
        gpu.built_constants("bwd_step_tiled", "TU"),
        [16.0, 32.0, 64.0]
    );
    assert_eq!(gpu.built_constants("fwd_step_tiled", "TU"), [16.0, 32.0]);
    assert_eq!(
        measured.dispatches, ruled.dispatches,
        "the measuring's own not counted"
    );
    assert_eq!(measured.held, ruled.held, "none of the run's pool taken");
    assert!(measured.outputs.iter().all(|v| v.is_finite()));
    assert!(measured.grads.iter().any(|&g| g != 0.0));
    let again = pass(&mut m, &batch, &init);
    assert_eq!(m.backend().slice_races().len(), 2, "measured once");
    assert_eq!(bits(&again.outputs), bits(&measured.outputs));
    // Another batch width is another shape.
    let wider = dense_batch(&mut r, 3, &[6; 24]);
    let wide_init: Vec<LayerState<f32>> = init
        .iter()
        .map(|s| LayerState {
            h: vec![0.1; s.h.len() / 19 * 24],
            c: s.c.as_ref().map(|c| vec![-0.1; c.len() / 19 * 24]),
        })
        .collect();
    pass(&mut m, &wider, &wide_init);
    let races = m.backend().slice_races();
    assert_eq!(races.len(), 4, "{races:?}");
    assert_eq!(races[3].shape.batch, 24);
}

/// Measured steps against the CPU reference, each pass poisoned first (`compare_stack`):
/// LSTM, GRU and a bidirectional Elman stack in f32, and an LSTM with f16 caches on the
/// tensor cores (emulated on lavapipe).
#[test]
fn measured_slices_match_the_cpu_reference() {
    let Some(mut be) = slicing_gpu(SliceChoice::Measured) else {
        return;
    };
    let mut r = rng("measured_slices_match_the_cpu_reference");
    for (gates, bidirectional) in [(4, false), (3, false), (1, true)] {
        let cfg = dense_net(
            3,
            vec![layer(suite_cell(gates), 36, bidirectional); 2],
            None,
        );
        be = compare_stack(be, &cfg, &lengths(7), &mut r, 1e-5, 1e-4);
    }
    assert_eq!(be.slice_races().len(), 6, "{:?}", be.slice_races());
    tensor_cores_or_emulated(be.gpu(), "tensor-core steps");
    be.set_precision(Precision::F16).expect("f16");
    let cfg = dense_net(3, vec![layer(suite_cell(4), 36, false); 2], None);
    be = compare_stack(be, &cfg, &lengths(7), &mut r, 4e-3, 5e-3);
    let races = be.slice_races();
    assert_eq!(races.len(), 8, "{races:?}");
    assert!(
        races[6].shape.tensor && races[6].shape.f16,
        "{}",
        races[6].label()
    );
    for race in &races {
        timed_every_candidate(race);
    }
}

/// A backend whose K slices are measured, its stacks run through the layer pipeline in
/// `chunks` chunks (`--wavefront N`): their steps joined, several layers a dispatch.
fn joined_gpu(by: SliceChoice, chunks: usize) -> Option<WgpuBackend> {
    let mut be = gpu()?;
    be.set_tuning(Tuning {
        k_split_by: by,
        wavefront: Some(chunks),
        ..Tuning::default()
    });
    Some(be)
}

/// The layer pipeline's joined steps are measured as they run: the layers of the stack side
/// by side in one dispatch of the joined build, each with its own weights, at 1, 2 and 4
/// slices each way (three layers: one measurement of three layers, not of one); the pass
/// that measured took the dispatches and holds the memory of a pass by the rule, and its
/// results are the CPU reference's (LSTM and GRU stacks, and an f16 LSTM on the tensor
/// cores reading each layer's f16 copy of W_hh, emulated on lavapipe).
#[test]
fn measured_joined_slices_time_the_layers_side_by_side() {
    let Some(be) = joined_gpu(SliceChoice::Measured, 3) else {
        return;
    };
    let rules = joined_gpu(SliceChoice::Rules, 3).expect("adapter");
    let mut r = rng("measured_joined_slices_time_the_layers_side_by_side");
    let cfg = dense_net(3, vec![layer(suite_cell(4), 40, false); 3], None);
    let (params, batch, init) = draw(&mut r, &cfg);
    let mut m = model(be, &cfg, &params);
    let mut by_rule = model(rules, &cfg, &params);
    let measured = pass(&mut m, &batch, &init);
    let ruled = pass(&mut by_rule, &batch, &init);
    let races = m.backend().slice_races();
    assert_eq!(races.len(), 2, "{races:?}");
    assert!(!races[0].shape.backward && races[1].shape.backward);
    for race in &races {
        assert_eq!(race.shape.layers, 3, "{}", race.label());
        assert!(
            race.label().contains("3 layers side by side"),
            "{}",
            race.label()
        );
        every_width_and_count(race);
        timed_every_candidate(race);
        eprintln!("{}", race.label());
    }
    // Every candidate was timed in the joined build (a rule's run builds one count).
    let gpu = m.backend().gpu();
    for entry in ["fwd_step_tiled", "bwd_step_tiled"] {
        assert_eq!(
            gpu.built_constants_in("_joined", entry, "KS"),
            [1.0, 2.0, 4.0],
            "{entry}"
        );
        assert_eq!(
            by_rule
                .backend()
                .gpu()
                .built_constants_in("_joined", entry, "KS")
                .len(),
            1,
            "{entry}"
        );
    }
    assert_eq!(measured.dispatches, ruled.dispatches);
    assert_eq!(measured.held, ruled.held, "none of the run's pool taken");
    assert!(measured.grads.iter().any(|&g| g != 0.0));
    pass(&mut m, &batch, &init);
    assert_eq!(m.backend().slice_races().len(), 2, "measured once");

    let mut be = m.into_backend();
    let gru = dense_net(3, vec![layer(suite_cell(3), 36, false); 3], None);
    be = compare_stack(be, &gru, &lengths(7), &mut r, 1e-5, 1e-4);
    assert_eq!(be.slice_races().len(), 4, "{:?}", be.slice_races());
    tensor_cores_or_emulated(be.gpu(), "tensor-core steps");
    be.set_precision(Precision::F16).expect("f16");
    be.set_tuning(Tuning {
        half_step_weights: Some(true),
        ..be.tuning()
    });
    let lstm = dense_net(3, vec![layer(suite_cell(4), 36, false); 3], None);
    be = compare_stack(be, &lstm, &lengths(7), &mut r, 4e-3, 5e-3);
    let races = be.slice_races();
    assert_eq!(races.len(), 6, "{races:?}");
    for race in &races[4..] {
        let s = &race.shape;
        assert!(s.tensor && s.f16 && s.layers == 3, "{}", race.label());
        timed_every_candidate(race);
    }
}

/// The choices are kept in a file beside the product tiles and read back by a later run,
/// which measures nothing and gives the measured run's results to the bit; choices edited
/// in the file are taken as they are (a forward in 4 slices with a backward in 1, and the
/// other way round, each against the CPU reference); a file that cannot be read is
/// measured over.
#[test]
fn measured_slices_are_kept_between_runs_in_a_file() {
    let Some(first) = slicing_gpu(SliceChoice::Measured) else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("wgrnn-slices-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let tiles = dir.join("product_tiles.json");
    let kept = dir.join(SLICES_FILE);
    let _ = std::fs::remove_file(&kept);
    let mut r = rng("measured_slices_are_kept_between_runs_in_a_file");
    let cfg = dense_net(3, vec![layer(suite_cell(3), 40, false); 2], None);
    let (params, batch, init) = draw(&mut r, &cfg);
    let open = |be: WgpuBackend| {
        be.gpu().set_product_tiles_file(Some(tiles.clone()));
        be
    };
    let mut m = model(open(first), &cfg, &params);
    let measured = pass(&mut m, &batch, &init);
    let races = m.backend().slice_races();
    assert_eq!(races.len(), 2);
    assert!(kept.exists(), "{} written", kept.display());
    let second = open(slicing_gpu(SliceChoice::Measured).expect("adapter"));
    let mut again = model(second, &cfg, &params);
    let stored = pass(&mut again, &batch, &init);
    let read = again.backend().slice_races();
    assert_eq!(read.len(), 2);
    for (a, b) in races.iter().zip(&read) {
        assert!(b.stored, "{}", b.label());
        assert_eq!(
            (&a.shape, a.chosen, &a.times),
            (&b.shape, b.chosen, &b.times)
        );
        assert!(b.label().ends_with("(stored)"), "{}", b.label());
    }
    assert_eq!(bits(&stored.outputs), bits(&measured.outputs), "outputs");
    assert_eq!(
        bits(&stored.grads),
        bits(&measured.grads),
        "parameter gradients"
    );
    assert_eq!(
        bits(&stored.dinputs),
        bits(&measured.dinputs),
        "input gradients"
    );
    for (forward, backward) in [(4, 1), (1, 4)] {
        let text = std::fs::read_to_string(&kept).expect("kept file");
        let mut file: serde_json::Value = serde_json::from_str(&text).expect("json");
        for entry in file["measured"].as_array_mut().expect("measurements") {
            let chosen = match entry["shape"]["backward"].as_bool() {
                Some(true) => backward,
                _ => forward,
            };
            entry["chosen"] = serde_json::json!({ "units": 16, "slices": chosen });
        }
        std::fs::write(&kept, file.to_string()).expect("write");
        let be = open(slicing_gpu(SliceChoice::Measured).expect("adapter"));
        let be = compare_stack(be, &cfg, &lengths(7), &mut r, 1e-5, 1e-4);
        let taken: Vec<(bool, usize, usize, bool)> = be
            .slice_races()
            .iter()
            .map(|r| (r.shape.backward, r.chosen.units, r.chosen.slices, r.stored))
            .collect();
        assert_eq!(
            taken,
            [(false, 16, forward, true), (true, 16, backward, true)]
        );
        // The steps were built in those slices and no others (nothing was measured).
        let built = |entry| be.gpu().built_constants(entry, "KS");
        assert_eq!(built("fwd_step_tiled"), [forward as f64], "forward");
        assert_eq!(built("bwd_step_tiled"), [backward as f64], "backward");
        for entry in ["fwd_step_tiled", "bwd_step_tiled"] {
            assert_eq!(be.gpu().built_constants(entry, "TU"), [16.0], "{entry}");
        }
    }
    std::fs::write(&kept, "not json").expect("write");
    let mut over = model(
        open(slicing_gpu(SliceChoice::Measured).expect("adapter")),
        &cfg,
        &params,
    );
    pass(&mut over, &batch, &init);
    let races = over.backend().slice_races();
    assert!(
        races.len() == 2 && races.iter().all(|r| !r.stored),
        "measured over a bad file: {races:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
