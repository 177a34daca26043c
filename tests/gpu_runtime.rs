//! The GPU runtime under a training loop: one submission per training step when asked for,
//! and pieces that compute the same otherwise; no buffer or bind group
//! created once a shape has been seen, statistics read back in the background that equal the
//! synchronous ones, and per-kernel timestamps where the adapter has them.

mod gpu_common;

use gpu_common::{dense_batch, gpu, layer, rng, uniform};
use wgrnn::backend::wgpu::Precision;
use wgrnn::config::{Activation, CellConfig, HeadConfig, InputEncoding, NetworkConfig, Task};
use wgrnn::optim::{ClipConfig, OptimizerConfig, Schedule, TrainConfig};
use wgrnn::train::Trainer;
use wgrnn::{Batch, Mode, Model, Targets, Wants, WgpuBackend};

const FEATURES: usize = 3;
const LENGTHS: [usize; 4] = [7, 1, 4, 7];

fn lstm() -> CellConfig {
    CellConfig::Lstm {
        gate: Activation::Sigmoid,
        cell: Activation::Tanh,
        hidden: Activation::Tanh,
        peephole: false,
        proj: None,
        forget_bias: None,
    }
}

fn net() -> NetworkConfig {
    NetworkConfig {
        input: InputEncoding::Dense { features: FEATURES },
        layers: vec![layer(lstm(), 9, true), layer(lstm(), 5, false)],
        head: Some(HeadConfig {
            classes: 2,
            task: Task::Regression,
        }),
    }
}

fn trainer(be: WgpuBackend, seed: u64) -> Trainer<WgpuBackend> {
    let model = Model::new(be, net(), seed).expect("model");
    let cfg = TrainConfig {
        optimizer: OptimizerConfig::adam(),
        lr: 1e-2,
        schedule: Schedule::Constant,
        clip: ClipConfig {
            max_norm: Some(1.0),
            max_value: None,
        },
    };
    Trainer::new(model, cfg, seed)
}

fn batches(test: &str, n: usize) -> Vec<(Batch<f32>, Targets<f32>)> {
    let mut r = rng(test);
    let time = *LENGTHS.iter().max().expect("lengths");
    (0..n)
        .map(|_| {
            let b = dense_batch(&mut r, FEATURES, &LENGTHS);
            let t = Targets::Values(uniform(&mut r, time * LENGTHS.len() * 2, 1.0));
            (b, t)
        })
        .collect()
}

/// Submissions of a step of `dispatches` dispatches recorded in pieces of `first`, twice
/// that, and so on up to 512: one per full piece, and the last (with the read-back's copies).
fn pieces(dispatches: u64, first: u64) -> u64 {
    let (mut piece, mut done, mut n) = (first, 0, 1);
    while done + piece <= dispatches {
        done += piece;
        n += 1;
        piece = (2 * piece).min(512);
    }
    n
}

#[test]
fn a_training_step_is_one_submission_when_asked_and_creates_nothing_once_warm() {
    let Some(be) = gpu() else { return };
    be.gpu().set_first_submission(0);
    let mut tr = trainer(be, 3);
    let data = batches("one_submission", 6);
    for (b, t) in &data[..2] {
        tr.step(b, t).expect("warm-up step");
    }
    let gpu = tr.model.backend().gpu();
    let (subs, created, groups, held) = (
        gpu.submission_count(),
        gpu.buffers_created(),
        gpu.bind_groups_made(),
        gpu.bytes_held(),
    );
    for (b, t) in &data[2..] {
        tr.step(b, t).expect("step");
    }
    let gpu = tr.model.backend().gpu();
    assert_eq!(
        gpu.submission_count() - subs,
        4,
        "each training step (upload, forward, loss, backward, clip, Adam, read-back) must be one submission"
    );
    assert_eq!(
        gpu.buffers_created(),
        created,
        "steps of a shape seen before must reuse their buffers"
    );
    assert_eq!(
        gpu.bind_groups_made(),
        groups,
        "steps of a shape seen before must reuse their bind groups"
    );
    assert_eq!(gpu.bytes_held(), held, "memory held must not grow");
}

#[test]
fn a_step_submitted_in_pieces_computes_what_one_submission_does() {
    let Some(whole) = gpu() else { return };
    let Some(split) = gpu() else { return };
    whole.gpu().set_first_submission(0);
    // Pieces of 3, 6, 12, ...: every kind of dispatch lands next to a piece boundary.
    split.gpu().set_first_submission(3);
    let data = batches("pieces", 5);
    let mut a = trainer(whole, 11);
    let mut b = trainer(split, 11);
    let want: Vec<f64> = data
        .iter()
        .map(|(x, t)| a.step(x, t).expect("whole step").loss)
        .collect();
    let mut got = Vec::new();
    let mut per_step = Vec::new();
    for (x, t) in &data {
        let gpu = b.model.backend().gpu();
        let (subs, dispatches, groups) = (
            gpu.submission_count(),
            gpu.dispatch_count(),
            gpu.bind_groups_made(),
        );
        got.push(b.step(x, t).expect("step in pieces").loss);
        let gpu = b.model.backend().gpu();
        per_step.push((
            gpu.submission_count() - subs,
            gpu.dispatch_count() - dispatches,
            gpu.bind_groups_made() - groups,
        ));
    }
    assert_eq!(
        got, want,
        "the same kernels in the same order: bit-identical losses"
    );
    assert_eq!(a.model.params(), b.model.params(), "and parameters");
    for (k, (subs, dispatches, _)) in per_step.iter().enumerate() {
        assert!(*dispatches > 12, "step {k}: {dispatches} dispatches");
        assert_eq!(
            *subs,
            pieces(*dispatches, 3),
            "step {k}: {dispatches} dispatches"
        );
    }
    let made: Vec<u64> = per_step.iter().map(|p| p.2).collect();
    assert!(made[0] > 0, "{made:?}");
    assert_eq!(
        made[1..],
        [0, 0, 0, 0],
        "warm steps reuse their bind groups: {made:?}"
    );
}

#[test]
fn queued_steps_give_the_synchronous_losses_in_order() {
    let Some(a) = gpu() else { return };
    let Some(b) = gpu() else { return };
    // One batch, twelve times: the loss must fall as well as agree.
    let one = batches("queued_steps", 1);
    let data: Vec<_> = (0..12).map(|_| one[0].clone()).collect();
    let mut sync = trainer(a, 5);
    let want: Vec<f64> = data
        .iter()
        .map(|(b, t)| sync.step(b, t).expect("step").loss)
        .collect();
    let mut queued = trainer(b, 5);
    let mut got = Vec::new();
    for (k, (b, t)) in data.iter().enumerate() {
        let n = queued.queue_step(b, t).expect("queue");
        assert_eq!(n, k as u64 + 1);
        got.extend(queued.poll_stats().expect("poll"));
        assert!(queued.steps_in_flight() <= wgrnn::train::MAX_IN_FLIGHT);
    }
    got.extend(queued.finish_stats().expect("finish"));
    assert_eq!(queued.steps_in_flight(), 0);
    let steps: Vec<u64> = got.iter().map(|s| s.step).collect();
    assert_eq!(steps, (1..=12).collect::<Vec<u64>>());
    let losses: Vec<f64> = got.iter().map(|s| s.loss).collect();
    assert_eq!(
        losses, want,
        "same device, same order: bit-identical losses"
    );
    assert!(losses[11] < losses[0], "the loss must fall: {losses:?}");
}

#[test]
fn a_non_finite_loss_in_a_queued_step_is_reported_with_its_step() {
    let Some(be) = gpu() else { return };
    let mut tr = trainer(be, 7);
    let data = batches("queued_nan", 3);
    tr.queue_step(&data[0].0, &data[0].1).expect("step 1");
    let Targets::Values(mut bad) = data[1].1.clone() else {
        unreachable!()
    };
    bad[0] = f32::NAN;
    tr.queue_step(&data[1].0, &Targets::Values(bad))
        .expect("step 2 is only recorded");
    let err = tr.finish_stats().expect_err("step 2 has a NaN loss");
    assert!(err.to_string().contains("loss at step 2"), "{err}");
}

#[test]
fn kernel_timestamps_cover_every_dispatch_where_the_adapter_has_them() {
    let Some(be) = gpu() else { return };
    let mut tr = trainer(be, 9);
    let data = batches("timestamps", 1);
    let (b, t) = &data[0];
    tr.step(b, t).expect("warm-up");
    let gpu = tr.model.backend().gpu();
    let on = gpu.profile(true);
    assert_eq!(on, gpu.can_profile());
    if !on {
        assert!(gpu.kernel_times().is_empty());
        return;
    }
    let before = gpu.dispatch_count();
    tr.step(b, t).expect("profiled step");
    let gpu = tr.model.backend().gpu();
    let dispatches = gpu.dispatch_count() - before;
    let times = gpu.kernel_times();
    gpu.profile(false);
    let calls: u64 = times.iter().map(|k| k.calls).sum();
    assert_eq!(calls, dispatches, "every dispatch is timed once");
    let find = |label: &str| {
        times
            .iter()
            .find(|k| k.label == label)
            .unwrap_or_else(|| panic!("no {label} in {times:?}"))
    };
    // Two layers of 7 steps, forward and backward; at LENGTHS' few sequences the step
    // kernels' recurrent products are the matrix-vector build (`Tuning::gemv_at`).
    assert!(LENGTHS.len() <= wgrnn::backend::wgpu::GEMV_AUTO_BATCH);
    assert_eq!(find("lstm_cell_gemv.fwd_step_tiled").calls, 14);
    assert_eq!(find("lstm_cell_gemv.bwd_step_tiled").calls, 14);
    let gemm = find("gemm.gemm");
    assert!(gemm.flops > 0.0 && gemm.bytes > 0.0);
    let total: f64 = times.iter().map(|k| k.seconds).sum();
    assert!(total > 0.0 && total.is_finite(), "{times:?}");
    for w in times.windows(2) {
        assert!(w[0].seconds >= w[1].seconds, "sorted longest first");
    }
}

#[test]
fn frozen_parameters_stay_put_inside_one_submission() {
    let Some(be) = gpu() else { return };
    be.gpu().set_first_submission(0);
    let mut tr = trainer(be, 13);
    let data = batches("frozen", 3);
    // Frozen from the start: Adam's moments of these parameters stay zero too.
    let range = tr
        .model
        .table()
        .get("rnn.weight_hh_l0")
        .expect("layer 0's recurrent weights")
        .range();
    tr.freeze(vec![range.clone()]);
    let before = tr.model.params();
    let subs = tr.model.backend().gpu().submission_count();
    for (b, t) in &data {
        tr.step(b, t).expect("step");
    }
    assert_eq!(
        tr.model.backend().gpu().submission_count() - subs,
        3,
        "freezing must not add a host round-trip"
    );
    let after = tr.model.params();
    assert_eq!(after[range.clone()], before[range.clone()]);
    let moved = (0..after.len())
        .filter(|i| !range.contains(i) && after[*i] != before[*i])
        .count();
    assert!(moved > 0, "the other parameters train");
}

/// Networks and batches larger than the adapter can bind in one buffer are refused with an
/// error naming the buffer, its size and the limit, before anything is allocated (wgpu would
/// otherwise stop the process with a validation panic).
#[test]
fn oversized_networks_and_batches_are_refused() {
    use wgrnn::backend::Backend;
    use wgrnn::error::{ConfigError, InputError};
    use wgrnn::{Inputs, Mode, SeqShape};
    let Some(be) = gpu() else { return };
    let limit = be
        .max_buffer_bytes()
        .expect("the GPU backend states its limit");
    // One LSTM layer on one feature holds about 4 H^2 parameters (16 H^2 bytes).
    let hidden = ((limit / 16) as f64).sqrt() as usize + 64;
    let big = NetworkConfig {
        input: InputEncoding::Dense { features: 1 },
        layers: vec![layer(lstm(), hidden, false)],
        head: None,
    };
    match Model::new(be, big, 0) {
        Err(ConfigError::TooLarge {
            bytes, limit: l, ..
        }) => {
            assert!(bytes > l && l == limit, "{bytes} vs {l}")
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a network over the binding limit was accepted"),
    }
    // A small network, but one sequence so long that its output alone exceeds the limit.
    let Some(be) = gpu() else { return };
    let small = NetworkConfig {
        input: InputEncoding::Dense { features: 1 },
        layers: vec![layer(lstm(), 8, false)],
        head: None,
    };
    let mut model = Model::new(be, small, 0).expect("small model");
    let time = (limit / 32) as usize + 1;
    let batch = Batch {
        seq: SeqShape {
            time,
            lengths: vec![time],
        },
        inputs: Inputs::Dense(Vec::new()),
    };
    match model.forward(&batch, None, Mode::Eval) {
        Err(e @ InputError::TooLarge { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains("layer 0") && msg.contains(&limit.to_string()),
                "{msg}"
            );
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(()) => panic!("a batch over the binding limit was accepted"),
    }
}

/// A batch of as many sequences as a dispatch has workgroups along one dimension (the
/// layers' kernels run a row of workgroups per sequence) computes what the CPU reference
/// does, every cell's kernels forward and backward, both directions; one sequence more is
/// refused with an error naming both counts (wgpu would otherwise stop the process with a
/// validation panic).
#[test]
fn batches_up_to_the_dispatch_limit_run_and_larger_ones_are_refused() {
    use gpu_common::{compare_stack, dense_net, suite_cell};
    use wgrnn::backend::Backend;
    use wgrnn::config::JordanFeedback;
    use wgrnn::error::InputError;
    use wgrnn::{Inputs, Mode, SeqShape};
    let Some(be) = gpu() else { return };
    let limit = be
        .max_sequences()
        .expect("the GPU backend states its limit");
    let mut r = rng("batches_up_to_the_dispatch_limit_run_and_larger_ones_are_refused");
    let jordan = CellConfig::Jordan {
        activation: Activation::Tanh,
        feedback: JordanFeedback::Softmax,
    };
    let cfg = dense_net(
        2,
        vec![
            layer(suite_cell(4), 2, true),
            layer(suite_cell(3), 2, true),
            layer(suite_cell(1), 2, false),
            layer(jordan, 2, false),
        ],
        Some(HeadConfig {
            classes: 2,
            task: Task::Tagging { ignore_label: None },
        }),
    );
    let lengths: Vec<usize> = (0..limit).map(|i| 1 + i % 2).collect();
    let be = compare_stack(be, &cfg, &lengths, &mut r, 1e-4, 1e-3);
    let mut model = Model::new(be, cfg, 0).expect("model");
    let batch = Batch {
        seq: SeqShape {
            time: 1,
            lengths: vec![1; limit + 1],
        },
        inputs: Inputs::Dense(vec![0.0; 2 * (limit + 1)]),
    };
    match model.forward(&batch, None, Mode::Eval) {
        Err(e @ InputError::TooManySequences { .. }) => {
            let msg = e.to_string();
            let counts = [limit + 1, limit].map(|n| n.to_string());
            assert!(counts.iter().all(|n| msg.contains(n)), "{msg}");
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(()) => panic!("a batch over the dispatch limit was accepted"),
    }
}

/// What the second forward and backward of `net()` over `lengths` (9 steps) record, after
/// the first has made the workspace.
struct PassCounts {
    /// Bytes the forward clears.
    forward_cleared: u64,
    /// Bytes the backward clears.
    backward_cleared: u64,
    /// Dispatches of both.
    dispatches: u64,
}

fn second_pass(be: WgpuBackend, lengths: &[usize]) -> (PassCounts, WgpuBackend) {
    let mut m = Model::new(be, net(), 1).expect("model");
    let batch = dense_batch(&mut rng("second_pass"), FEATURES, lengths);
    let wants = Wants {
        inputs: false,
        initial_states: false,
    };
    let pass = |m: &mut Model<WgpuBackend>| {
        let gpu = m.backend().gpu();
        let (cleared, dispatches) = (gpu.cleared_bytes(), gpu.dispatch_count());
        m.forward(&batch, None, Mode::Eval).expect("forward");
        let forward_cleared = m.backend().gpu().cleared_bytes() - cleared;
        let dout = vec![0.5; m.outputs().len()];
        m.backward_from(&dout, None, wants).expect("backward");
        m.backend().sync();
        let gpu = m.backend().gpu();
        PassCounts {
            forward_cleared,
            backward_cleared: gpu.cleared_bytes() - cleared - forward_cleared,
            dispatches: gpu.dispatch_count() - dispatches,
        }
    };
    pass(&mut m);
    let counts = pass(&mut m);
    (counts, m.into_backend())
}

/// A forward clears its layers' outputs and caches only where a sequence ends before the
/// last step (their rows past the end must read as zero); where every sequence runs all
/// steps it writes every row and clears only the initial states' sections. Likewise a
/// backward's gate gradients (in a gates buffer under f16 caches). The results of both
/// are the CPU reference's (`tests/gpu_layers.rs`, `tests/gpu_f16.rs`: batches of one
/// sequence are full, after a pass that left NaN in every row).
#[test]
fn passes_clear_outputs_caches_and_gate_gradients_only_for_padded_batches() {
    let Some(mut be) = gpu() else { return };
    be.set_precision(Precision::F16).expect("SHADER_F16");
    let (full, be) = second_pass(be, &[9, 9, 9]);
    let (padded, _) = second_pass(be, &[9, 2, 9]);
    let (full, full_back) = (full.forward_cleared, full.backward_cleared);
    let (padded, padded_back) = (padded.forward_cleared, padded.backward_cleared);
    // The bidirectional layer's gate gradients alone: 2 x 27 rows x 4 x 9 floats.
    let gates = (2 * 27 * 4 * 9 * 4) as u64;
    assert!(
        full_back + gates <= padded_back,
        "backward: full batch {full_back} bytes cleared, padded {padded_back}"
    );
    // The outputs alone: 9 steps x 3 sequences x (2 x 9 + 5) floats.
    let outputs = (9 * 3 * (2 * 9 + 5) * 4) as u64;
    assert!(padded > outputs, "padded batch: {padded} bytes cleared");
    // h0 and c0 of each layer (2 x 3 x 9 values, then 3 x 5), each section rounded up to
    // a multiple of 4 values, in the f16 cache.
    let states = (2 * (56 + 56) + 2 * (16 + 16)) as u64;
    assert_eq!(
        full, states,
        "full batch: {full} bytes cleared, padded {padded}"
    );
}

/// The head zeroes its logits' and their gradient's padding rows (one dispatch each, and a
/// copy of the gradient) only where a sequence ends before the last step; a batch without
/// padding has no such rows. The results of both are the CPU reference's
/// (`tests/gpu_ops.rs::head_matches_cpu`, full and padded shapes, padding rows of the
/// gradient drawn nonzero).
#[test]
fn head_masks_padding_rows_only_for_padded_batches() {
    let Some(be) = gpu() else { return };
    let (full, be) = second_pass(be, &[9, 9, 9]);
    let (padded, _) = second_pass(be, &[9, 2, 9]);
    let (full, padded) = (full.dispatches, padded.dispatches);
    // The padded batch's own: the head's two masks and each layer's clear_padding.
    let masks = 2;
    let layers = 2;
    assert_eq!(
        padded,
        full + masks + layers,
        "dispatches: full batch {full}, padded {padded}"
    );
}
