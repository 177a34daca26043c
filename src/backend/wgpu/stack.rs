//! The layer pipeline (a wavefront over chunks of time steps): the forward of a stack of
//! unidirectional recurrent layers with layer l on chunk c while layer l + 1 runs chunk
//! c - 1, so that each time step of a phase is one dispatch for every layer in it (their
//! tiled step kernels side by side, one layer per `workgroup_id.z`:
//! `CellShader::joined`) instead of one dispatch per layer; and the backward as its
//! mirror, from the top layer and the last chunk. Each layer's input projections (and in
//! the backward its input gradients) stay GEMMs, one per chunk, and those of the layers of
//! a phase run side by side in one dispatch where their shapes agree (`gemm::Products`:
//! all but the bottom layer's, whose input is the stack's). wgpu puts a barrier before
//! every dispatch that writes what an earlier one used, and each waits for all earlier
//! work, so layers recorded one after the other never overlap: only one dispatch for all
//! of them does (`BENCHMARKS.md`, the wavefront lever).
//!
//! Dispatches of a forward of L > 1 layers over T steps in C chunks: C + L - 1 GEMMs
//! (the bottom layer's one for all chunks where the records hold xp, f32 caches, else C;
//! the others' one a phase) and (C + L - 1) ceil(T / C) steps, against L GEMMs and L T
//! steps layer by layer (the flagship, 4 layers x 100 steps in 4 chunks: 7 + 175 instead
//! of 4 + 400). The backward the same, with C + L - 2
//! input-gradient GEMMs instead of L - 1, and its weight gradients' GEMMs of all layers
//! side by side after the steps; where the layers' gate gradients are held in windows of
//! a chunk (f16 LSTM and GRU caches, [`window_rows`]), the weight-gradient GEMMs, the
//! bias sums' two passes and a copy a phase instead.

use std::cell::{Cell, OnceCell, RefCell};

use super::dropout::{dropout_range, dropout_window};
use super::gemm::Products;
use super::layer::{Bwd, Call, Fwd, JOINED_LAYERS, KSlices, LP_WORDS, Layout, cell_of, steps};
use super::pipeline_measure::{self, Choice, StackShape};
use super::runtime::{Gpu, Kernel};
use super::weights_f16::{WEIGHTS_F16_HEAD, weights_f16_into};
use super::{GpuBuffer, WgpuBackend};
use crate::backend::{
    Backend, SeqShape, StackBackward, StackForward, StateBufs, backward_layer_by_layer, each_layer,
    forward_layer_by_layer,
};
use crate::config::CellConfig;
use crate::params::LayerPlan;

/// A layer call's place in the layer pipeline (`Call::stack`); the default, none, is a call
/// of its own.
#[derive(Default)]
pub(super) struct InStack<'a> {
    /// Where the call's tiled steps go: held there and dispatched with the other layers'.
    pub joined: Option<&'a Joined<'a>>,
    /// The layers whose steps are joined with the call's (the stack's, the call's among
    /// them), whose K slices are measured side by side (`slices_measure`); none where the
    /// call is not in the pipeline.
    pub plans: &'a [LayerPlan],
    /// The call's part of one buffer for every layer's f16 copy of W_hh, recorded by the
    /// pipeline (else the call makes its own, `Call::w16`).
    pub w16: Option<&'a GpuBuffer>,
    /// Whether the step recorded last went to `joined` (for its cost).
    pub went_joined: Cell<bool>,
    /// Where the gates buffer holds a window of rows (of xp in the forward, of dxp, dgh
    /// and the scratch in the backward; where the records do not hold them): the first row
    /// of the chunk being run.
    pub gates_from: Cell<usize>,
    /// Where the backward's output gradient dy is a window of rows: the first row of the
    /// chunk being run.
    pub dy_from: Cell<usize>,
}

/// Whether the layer pipeline can take `plans` on `be` as it is tuned (in more than one
/// chunk, or where it is measured, `pipeline_measure::measures`): at least two layers, all
/// unidirectional and recurrent, of one cell kind, options and width, whose forward steps
/// are each one tiled dispatch (`GpuCell::joins`). The batch decides the rest
/// ([`chunks_of`]).
pub(super) fn joins(be: &WgpuBackend, plans: &[LayerPlan]) -> bool {
    let t = be.tuning();
    let wanted = t.wavefront.unwrap_or(1) > 1 || pipeline_measure::measures(be);
    let Some(first) = plans.first() else {
        return false;
    };
    fn shape(p: &LayerPlan) -> (&CellConfig, [usize; 5]) {
        let widths = [
            p.hidden,
            p.gates,
            p.recurrent_input,
            p.cell_state(),
            p.output_width(),
        ];
        (&p.cell, widths)
    }
    wanted
        && plans.len() > 1
        && plans.iter().all(|p| {
            p.directions() == 1
                && p.recurrent
                && shape(p) == shape(first)
                && cell_of(p).joins(p, &t)
        })
}

/// The chunk counts a pass over `plans` with these caches and layer `outputs` can take:
/// where the pipeline [`joins`] the layers, their caches and outputs are parts of one
/// buffer each (`WgpuBackend::layer_caches`) and there are at least two steps, the count
/// the tuning asks for, or those measured (`pipeline_measure::candidates_at`); else 1
/// (layer by layer).
fn chunk_counts(
    be: &WgpuBackend,
    plans: &[LayerPlan],
    caches: &[GpuBuffer],
    outputs: &[GpuBuffer],
    seq: &SeqShape,
) -> Vec<usize> {
    let steps = steps(seq);
    let one_whole = |bufs: &[GpuBuffer]| {
        let first = bufs.first().and_then(|b| b.whole()).map(|w| w.0);
        first.is_some_and(|f| {
            bufs.iter()
                .all(|b| b.whole().is_some_and(|w| std::ptr::eq(w.0, f)))
        })
    };
    let ok = joins(be, plans) && one_whole(caches) && one_whole(outputs) && steps > 1;
    match (ok, be.tuning().wavefront) {
        (false, _) => vec![1],
        (true, Some(n)) => vec![n],
        (true, None) => pipeline_measure::candidates_at(steps),
    }
}

/// How a pass over `plans` runs: in the chunk count the tuning asks for where the pipeline
/// takes it, or the one measured fastest for its shape (`pipeline_measure::choose`).
fn choose_chunks(
    be: &WgpuBackend,
    backward: bool,
    plans: &[LayerPlan],
    caches: &[GpuBuffer],
    outputs: &[GpuBuffer],
    seq: &SeqShape,
) -> Choice {
    let counts = chunk_counts(be, plans, caches, outputs, seq);
    // One count (layer by layer, or the tuning's): nothing to measure, so no shape to make
    // (its kernels' label is formatted text) on every pass.
    if let [count] = counts[..] {
        return pipeline_measure::choose_fixed(count);
    }
    match StackShape::of(be, backward, plans, seq.batch(), steps(seq)) {
        Some(shape) => pipeline_measure::choose(be, shape, counts),
        None => pipeline_measure::choose_fixed(1),
    }
}

/// The chunks of time steps of a pass over `plans` in `count` chunks, if that is more
/// than one (else the pass runs layer by layer).
fn chunks_of(count: usize, plans: &[LayerPlan], seq: &SeqShape) -> Option<Chunks> {
    let steps = steps(seq);
    (count > 1 && steps > 1).then(|| {
        let k = steps.div_ceil(count.min(steps));
        Chunks {
            k,
            count: steps.div_ceil(k),
            layers: plans.len(),
            batch: seq.batch(),
            steps,
        }
    })
}

/// The chunks of time steps a pass through the pipeline runs in, and which layer runs
/// which chunk in each of its phases.
struct Chunks {
    /// Steps per chunk (the last may have fewer).
    k: usize,
    /// Chunks: ceil(steps / k).
    count: usize,
    layers: usize,
    batch: usize,
    /// Steps of the longest sequence.
    steps: usize,
}

impl Chunks {
    /// The rows (t * B + b) of chunk `c`'s steps.
    fn rows(&self, c: usize) -> std::ops::Range<usize> {
        c * self.k * self.batch..((c + 1) * self.k).min(self.steps) * self.batch
    }

    /// The phases of a pass: one per chunk, and one more per layer after the first.
    fn phases(&self) -> std::ops::Range<usize> {
        0..self.count + self.layers - 1
    }

    /// (layer, chunk) of the layers in `phase`: the forward's bottom first, layer l on
    /// chunk phase - l; the `backward`'s top first, the layer i from the top on the chunk
    /// phase - i from the last.
    fn active(&self, phase: usize, backward: bool) -> Vec<(usize, usize)> {
        (0..self.layers)
            .filter_map(|i| {
                let j = phase.checked_sub(i).filter(|&j| j < self.count)?;
                Some(match backward {
                    false => (i, j),
                    true => (self.layers - 1 - i, self.count - 1 - j),
                })
            })
            .collect()
    }
}

/// Zeroed buffers of `lens` elements (f16 where `half`), as parts of one buffer where the
/// layer pipeline [`joins`] `plans` and the whole fits the adapter's largest binding, else
/// each on its own (`WgpuBackend::layer_caches`, `layer_outputs`).
pub(super) fn layer_buffers(
    be: &WgpuBackend,
    plans: &[LayerPlan],
    lens: &[usize],
    half: bool,
) -> Vec<GpuBuffer> {
    let bytes = Gpu::joined_bytes(lens, half);
    let fits = be.max_buffer_bytes().is_none_or(|m| bytes <= m);
    if joins(be, plans) && fits {
        return be.gpu.joined(lens, half);
    }
    let one = |n: usize| match half {
        true => be.gpu.buffer_f16(n),
        false => be.gpu.buffer(n),
    };
    lens.iter().map(|&n| one(n)).collect()
}

/// `Backend::stack_forward`: the layer pipeline where it takes the stack
/// ([`choose_chunks`]), else layer by layer. Every buffer ends as layer by layer leaves it.
pub(super) fn stack_forward(be: &WgpuBackend, job: StackForward<'_, WgpuBackend>) {
    let choice = choose_chunks(be, false, job.plans, job.caches, &job.xs[1..], job.seq);
    forward_in(be, job, choice.chunks);
    choice.done(be);
}

/// [`stack_forward`] in `count` chunks.
fn forward_in(be: &WgpuBackend, job: StackForward<'_, WgpuBackend>, count: usize) {
    let Some(chunks) = chunks_of(count, job.plans, job.seq) else {
        forward_layer_by_layer(be, job);
        return;
    };
    let StackForward {
        plans,
        params,
        seq,
        xs,
        caches,
        init,
        last,
        dropout,
    } = job;
    let (xs, caches): (&[GpuBuffer], &[GpuBuffer]) = (xs, caches);
    let gpu = &be.gpu;
    let (nl, k, steps) = (plans.len(), chunks.k, chunks.steps);
    let lengths = be.lengths(seq);
    // What all layers share (`joins`: one kind and width, caches of one type).
    let lay = Layout::of(&plans[0], seq, caches[0].is_f16());
    // Each layer's xp of one chunk where it is not in the cache's records (a window of k
    // steps' rows, `InStack::gates_from`), parts of one buffer, as the step binds them; of
    // the size the backward's windows take where it has them, whose allocation then reuses
    // this one. Uninitialised, as layer by layer's gates buffer: each chunk's input
    // projections write its rows before its steps read them.
    let window = match (backward_gates(&lay, &plans[0], &chunks), lay.gates_in_rec) {
        ((Some(_), len), _) => len,
        ((None, _), true) => 1,
        ((None, _), false) => k * lay.batch * lay.gs,
    };
    let gates = gpu.joined_uninit(&vec![window; nl], false);
    let (st_h, st_c) = state_parts(be, &lay, init.as_deref());
    let ios: Vec<Fwd<'_>> = (0..nl)
        .map(|l| Fwd {
            st_h: st_h.as_ref().map_or(&be.dummy, |s| &s[l]),
            st_c: st_c.as_ref().map_or(&be.dummy, |s| &s[l]),
        })
        .collect();
    let w16 = w16_parts(be, plans, params, &lay, steps, |lens| {
        gpu.joined_uninit(lens, true)
    });
    let joined = Joined::default();
    let products = Products::new(gpu);
    let calls = Layers {
        be,
        plans,
        params,
        seq,
        caches,
        gates: &gates,
        outputs: &xs[1..],
        lengths: &lengths,
        has_state: init.is_some(),
        zero_init: init.is_none(),
        w16: &w16,
        joined: &joined,
        products: &products,
        gate_rows: None,
    }
    .calls();
    for c in &calls {
        c.clear_outputs(seq);
    }
    let mut last: Vec<_> = last.into_iter().map(Some).collect();
    // Where the records hold xp for every step (f32 caches), the bottom layer's input
    // projections of all chunks are one product: its input is all there from the start.
    let bottom_whole = lay.gates_in_rec;
    if bottom_whole {
        calls[0].project(
            &xs[0],
            chunks.rows(0).start..chunks.rows(chunks.count - 1).end,
        );
    }
    for phase in chunks.phases() {
        let active = chunks.active(phase, false);
        // The layers' input projections of their chunks, side by side where they can be.
        let held = products.hold();
        for &(l, c) in active.iter().filter(|a| !(bottom_whole && a.0 == 0)) {
            calls[l].stack.gates_from.set(chunks.rows(c).start);
            calls[l].project(&xs[l], chunks.rows(c));
        }
        drop(held);
        for j in 0..k {
            for &(l, c) in &active {
                let s = c * k + j;
                if s < steps {
                    cell_of(&plans[l]).forward_step(&calls[l], &ios[l], s);
                }
            }
            joined.flush(gpu);
        }
        for &(l, c) in &active {
            if let Some((p, seed)) = dropout[l] {
                let w = plans[l].output_width();
                let r = chunks.rows(c);
                // The rows past the last step are zeros, which dropout keeps.
                dropout_range(be, &xs[l + 1], r.start * w..r.end * w, p, seed);
            }
            if c + 1 == chunks.count
                && let Some(out) = last[l].take()
            {
                // After the layer's last projection, which wrote those rows too.
                calls[l].clear_padding(seq);
                calls[l].final_states(out);
            }
        }
    }
}

/// `Backend::stack_backward`: the layer pipeline where it takes the stack ([`chunks_of`]),
/// else layer by layer. The mirror of [`stack_forward`]: in phase p the layer i from the top
/// runs the chunk p - i from the last, its steps from the chunk's last down, each time step
/// one dispatch for every layer in the phase; after them, each layer but the bottom one
/// records dx = dxp W_ih for its chunk's rows, the output gradient of the layer below for
/// that chunk (with that layer's dropout mask), which it runs in the next phase.
///
/// Where each layer's gate gradients are at most one value per row and unit (`narrow_gates`)
/// they are held for all steps, and the parameter gradients and the stack input's gradient
/// are GEMMs over all steps at the end, as layer by layer: every result is what layer by
/// layer gives, to the bit. Where they are wider (f16 LSTM and GRU caches; an f32 LSTM with
/// peepholes, whose scratch is 3 values per row and unit), each layer holds them for a
/// window of its chunk ([`window_rows`]; the scratch only, where the records hold the gate
/// gradients for all rows), and those GEMMs run per chunk after its steps, which sums the
/// gradients in another order (the same to rounding).
pub(super) fn stack_backward(
    be: &WgpuBackend,
    job: StackBackward<'_, WgpuBackend>,
) -> Option<GpuBuffer> {
    let choice = choose_chunks(be, true, job.plans, job.caches, &job.xs[1..], job.seq);
    let dx = backward_in(be, job, choice.chunks);
    choice.done(be);
    dx
}

/// [`stack_backward`] in `count` chunks.
fn backward_in(
    be: &WgpuBackend,
    job: StackBackward<'_, WgpuBackend>,
    count: usize,
) -> Option<GpuBuffer> {
    let chunks = chunks_of(count, job.plans, job.seq);
    let lay = Layout::of(&job.plans[0], job.seq, job.caches[0].is_f16());
    let Some(chunks) = chunks else {
        return backward_layer_by_layer(be, job);
    };
    let StackBackward {
        plans,
        params,
        seq,
        xs,
        caches,
        dy,
        dlast,
        grads,
        dinit,
        zero_init,
        dropout,
        dx: want_dx,
    } = job;
    let gpu = &be.gpu;
    let (nl, k, steps) = (plans.len(), chunks.k, chunks.steps);
    let lengths = be.lengths(seq);
    let out_w = plans[0].output_width();
    // Each layer's output gradient for the chunk it runs, a window of k steps' rows (parts
    // of one buffer, as the steps bind them): the top layer's copied from `dy`, each
    // other's the dx of the layer above, with the dropout's mask of the layer's output.
    // Both write all of a chunk's rows before its steps, so it starts uninitialised.
    let dys = gpu.joined_uninit(&vec![k * lay.batch * out_w; nl], false);
    let (st_h, st_c) = state_parts(be, &lay, dlast.as_deref());
    let ios: Vec<Bwd<'_>> = (0..nl)
        .map(|l| Bwd {
            dy: &dys[l],
            st_h: st_h.as_ref().map_or(&be.dummy, |s| &s[l]),
            st_c: st_c.as_ref().map_or(&be.dummy, |s| &s[l]),
        })
        .collect();
    // dxp / dgh, the scratch and the running dc, zeroed where `layer_backward` zeroes them,
    // for a batch with padding (in a window, rows a chunk's steps do not write are rows no
    // earlier chunk wrote: a sequence that has ended by a step of this chunk had ended in
    // every later one), else uninitialised: the steps write a window's rows before they
    // or its products read them, and the carried rows are copied in first.
    let (gate_rows, gates_len) = backward_gates(&lay, &plans[0], &chunks);
    let windowed = gate_rows.is_some();
    let gates = match seq.has_padding() {
        true => gpu.joined(&vec![gates_len; nl], false),
        false => gpu.joined_uninit(&vec![gates_len; nl], false),
    };
    let w16 = w16_parts(be, plans, params, &lay, steps, |lens| {
        gpu.joined_uninit(lens, true)
    });
    // The stack input's gradient, where asked for: with windows made per chunk from the
    // start, else after the steps, once `dy` has gone back to the pool.
    let dx = OnceCell::new();
    // (Written whole: each chunk's rows, or all rows at once, by a first product that
    // overwrites.)
    let new_dx = || gpu.buffer_uninit(lay.rows() * plans[0].input);
    if windowed && want_dx {
        dx.get_or_init(new_dx);
    }
    let joined = Joined::default();
    let products = Products::new(gpu);
    let calls = Layers {
        be,
        plans,
        params,
        seq,
        caches,
        gates: &gates,
        outputs: &xs[1..],
        lengths: &lengths,
        has_state: dlast.is_some(),
        zero_init,
        w16: &w16,
        joined: &joined,
        products: &products,
        gate_rows,
    }
    .calls();
    // Layer l's window of dy for chunk c, once it holds the top layer's rows of `dy` or
    // the dx of the layer above (which ran the chunk in the phase before): the mask of
    // layer l's dropout.
    let mask = |l: usize, c: usize| {
        let r = chunks.rows(c);
        if let Some((p, seed)) = dropout[l] {
            dropout_window(be, &dys[l], r.start * out_w..r.end * out_w, 0, p, seed);
        }
        calls[l].stack.dy_from.set(r.start);
    };
    // With windows, what the layers' chunks leave when their steps have run: their shares
    // of the parameter gradients (the weights' products of all layers side by side, and of
    // the stack input's, then the bias sums likewise), and each one's first step's dgh (and
    // scratch, which the GRU's steps read too) where the window of chunk c - 1 reads it,
    // past that chunk's k steps.
    let close_windows = |active: &[(usize, usize)]| {
        let held = products.hold();
        for &(l, c) in active {
            let r = chunks.rows(c);
            calls[l].weight_grads_of_rows(&xs[l], grads, r.clone());
            calls[l].bias_grads_of_rows(grads, r.clone());
            if let (0, Some(dx)) = (l, dx.get()) {
                calls[l].input_grads(dx, r, 0);
            }
        }
        drop(held);
        let mut carried = Vec::new();
        for &(l, c) in active {
            let call = &calls[l];
            let (w, b) = (&call.lay, lay.batch);
            // The gates buffers are parts of one: the carried rows of every layer, in it.
            let at = call.gates.resolved().1;
            if c > 0 {
                // (dgh in the records, an f32 LSTM's with peepholes, is there for all rows.)
                if !w.gates_in_rec {
                    carried.push((at + w.dgh, at + w.dgh + k * b * w.gs, b * w.gs));
                }
                carried.push((at + w.scr, at + w.scr + k * b * w.sw, b * w.sw));
            }
        }
        gpu.copy_within(gates[0].resolved().0, &carried);
    };
    for phase in chunks.phases() {
        let active = chunks.active(phase, true);
        if let Some(&(top, c)) = active.first().filter(|a| a.0 + 1 == nl) {
            let r = chunks.rows(c);
            gpu.copy(&dy, r.start * out_w, &dys[top], 0, r.len() * out_w);
            mask(top, c);
        }
        if windowed {
            for &(l, c) in &active {
                calls[l].stack.gates_from.set(chunks.rows(c).start);
            }
        }
        for j in (0..k).rev() {
            for &(l, c) in &active {
                let s = c * k + j;
                if s < steps {
                    cell_of(&plans[l]).backward_step(&calls[l], &ios[l], s);
                }
            }
            joined.flush(gpu);
        }
        if windowed {
            close_windows(&active);
        }
        // The windows of the layers below, for their next phase: the input gradients of
        // the layers above them, side by side where they can be.
        let below: Vec<_> = active.iter().filter(|a| a.0 > 0).collect();
        let held = products.hold();
        for &&(l, c) in &below {
            let r = chunks.rows(c);
            calls[l].input_grads(&dys[l - 1], r.clone(), r.start);
        }
        drop(held);
        for &&(l, c) in &below {
            mask(l - 1, c);
        }
    }
    // Its rows are all copied: back to the pool, for the input's gradient below.
    drop(dy);
    // Every window holds chunk 0, whose first step's dgh the initial states' take.
    let mut dinit = each_layer(dinit, nl);
    for l in (0..nl).rev() {
        calls[l].initial_state_grads(dinit[l].take());
    }
    if !windowed {
        // The parameter gradients over all steps: every layer's weights' products side by
        // side where they can be, then their column sums likewise.
        let held = products.hold();
        for l in (0..nl).rev() {
            calls[l].weight_grads_of_rows(&xs[l], grads, 0..lay.rows());
            calls[l].bias_grads_of_rows(grads, 0..lay.rows());
        }
        drop(held);
        if want_dx {
            calls[0].input_grads(dx.get_or_init(new_dx), 0..lay.rows(), 0);
        }
    }
    drop(calls);
    dx.into_inner()
}

/// What each layer's `Call` in a pass through the pipeline is made of ([`Layers::calls`]).
struct Layers<'a> {
    be: &'a WgpuBackend,
    plans: &'a [LayerPlan],
    params: &'a GpuBuffer,
    seq: &'a SeqShape,
    caches: &'a [GpuBuffer],
    /// Each layer's gates buffer, parts of one buffer.
    gates: &'a [GpuBuffer],
    /// Each layer's output (`xs[1..]`).
    outputs: &'a [GpuBuffer],
    lengths: &'a GpuBuffer,
    /// Whether the states (initial states, final-state gradients) are given.
    has_state: bool,
    /// Whether the forward started from zero states ([`Call::zero_init`]).
    zero_init: bool,
    /// Each layer's f16 copy of W_hh, where the steps read it ([`w16_parts`]).
    w16: &'a [GpuBuffer],
    /// Where the calls' tiled steps are held.
    joined: &'a Joined<'a>,
    /// Where the calls' matrix products go (held while the pipeline holds them).
    products: &'a Products<'a>,
    /// Rows per direction of each gates buffer's row sections where they are a window of a
    /// chunk ([`window_rows`]); else all.
    gate_rows: Option<usize>,
}

impl<'a> Layers<'a> {
    /// Each layer's call, its tiled steps held in `joined`.
    fn calls(&self) -> Vec<Call<'a>> {
        (0..self.plans.len())
            .map(|l| Call {
                be: self.be,
                plan: &self.plans[l],
                lay: {
                    let lay = Layout::of(&self.plans[l], self.seq, self.caches[l].is_f16());
                    match self.gate_rows {
                        Some(rows) => lay.with_gate_rows(rows),
                        None => lay,
                    }
                },
                params: self.params,
                cache: &self.caches[l],
                gates: &self.gates[l],
                y: &self.outputs[l],
                lengths: self.lengths,
                has_state: self.has_state,
                zero_init: self.zero_init,
                steps: steps(self.seq),
                w16: OnceCell::new(),
                read_w16: Cell::new(false),
                products: self.products,
                k_slices: KSlices::default(),
                stack: InStack {
                    joined: Some(self.joined),
                    plans: self.plans,
                    w16: self.w16.get(l),
                    ..InStack::default()
                },
            })
            .collect()
    }
}

/// Whether a layer's gates buffer in the backward (`Layout::gates_len`) holds no more than
/// one value per row and unit besides its per-sequence sections: where the record holds the
/// gate gradients (f32 LSTM and GRU caches, `Layout::gates_in_rec`) and the scratch is
/// narrow (not an LSTM's with peepholes), or there is one gate (Elman). The layer
/// pipeline's backward holds every layer's at once, where layer by layer
/// holds one at a time: with the gate gradients of an f16 cache (4 or 7 values per row and
/// unit a layer) for all steps that would cost more memory than PyTorch's whole training
/// step.
fn narrow_gates(lay: &Layout, plan: &LayerPlan) -> bool {
    lay.gates_len <= lay.rows() * plan.hidden + lay.dirs * lay.batch * (lay.gh + lay.cw)
}

/// Rows per direction of each layer's gate sections in the layer pipeline's backward where
/// they are not [`narrow_gates`]: a window of one chunk's k steps and the step after them,
/// whose dgh (and scratch) the chunk's last step reads (`Layout::with_gate_rows`). All the
/// layers' windows together then hold about what layer by layer's one gates buffer for all
/// steps holds where there are as many chunks as layers, and less with more chunks.
fn window_rows(lay: &Layout, plan: &LayerPlan, chunks: &Chunks) -> Option<usize> {
    (!narrow_gates(lay, plan)).then_some((chunks.k + 1) * chunks.batch)
}

/// Each layer's gates buffer in the layer pipeline's backward: its rows per direction where
/// they are a window ([`window_rows`]), and its scalars.
fn backward_gates(lay: &Layout, plan: &LayerPlan, chunks: &Chunks) -> (Option<usize>, usize) {
    let rows = window_rows(lay, plan, chunks);
    let len = match rows {
        Some(rows) => lay.clone().with_gate_rows(rows).gates_len,
        None => lay.gates_len,
    };
    (rows, len)
}

/// A stack's per-layer states (initial states or final-state gradients), copied into parts
/// of one buffer for the hidden states and one for the cell states (where the cell has
/// them), as the joined steps bind them; none where there are none.
fn state_parts(
    be: &WgpuBackend,
    lay: &Layout,
    from: Option<&[StateBufs<'_, GpuBuffer>]>,
) -> (Option<Vec<GpuBuffer>>, Option<Vec<GpuBuffer>>) {
    let Some(from) = from else {
        return (None, None);
    };
    let gpu = &be.gpu;
    let parts = |width: usize, srcs: Vec<Option<&GpuBuffer>>| {
        let len = lay.batch * width;
        let parts = gpu.joined(&vec![len; srcs.len()], false);
        for (part, src) in parts.iter().zip(srcs) {
            if let Some(src) = src {
                gpu.copy(src, 0, part, 0, len);
            }
        }
        parts
    };
    (
        Some(parts(lay.rw, from.iter().map(|s| Some(s.h)).collect())),
        (lay.cw > 0).then(|| parts(lay.cw, from.iter().map(|s| s.c).collect())),
    )
}

/// Each layer's f16 copy of W_hh where the tensor-core steps read it (as `Call::half_weights`
/// decides it for each layer), parts of one buffer that `parts` makes, f16 and
/// uninitialised, of the lengths it is given (the pool's, `Gpu::joined_uninit`, or a
/// measurement's scratch); else none.
pub(super) fn w16_parts(
    be: &WgpuBackend,
    plans: &[LayerPlan],
    params: &GpuBuffer,
    lay: &Layout,
    steps: usize,
    parts: impl FnOnce(&[usize]) -> Vec<GpuBuffer>,
) -> Vec<GpuBuffer> {
    let w_len = lay.gh * lay.rw;
    if !be.half_step_weights(lay.batch, w_len, steps) {
        return Vec::new();
    }
    // (Written whole by the copies, as layer by layer's.)
    let parts = parts(&vec![WEIGHTS_F16_HEAD + w_len; plans.len()]);
    for (p, part) in plans.iter().zip(&parts) {
        weights_f16_into(&be.gpu, params, &[p.dirs[0].w_hh], w_len, part);
    }
    parts
}

/// Words of `shaders/layer.wgsl`'s `LP` that hold element offsets, by the binding whose
/// buffer they point into (the tests check them against the struct).
mod lp {
    pub const FLAGS: usize = 12;
    pub const XP: usize = 13;
    pub const H0: usize = 14;
    pub const C0: usize = 15;
    pub const HS: usize = 16;
    pub const CS: usize = 17;
    pub const REC: usize = 18;
    pub const DXP: usize = 19;
    pub const DGH: usize = 20;
    pub const SCR: usize = 21;
    pub const DC: usize = 22;
    pub const DGH0: usize = 23;
    pub const Y0: usize = 32;
    pub const SH0: usize = 33;
    pub const SC0: usize = 34;
    pub const DY0: usize = 35;
    pub const W16: usize = 36;
    /// The flag saying xp, dxp and dgh live in the cache's records (`GATES_IN_REC`).
    pub const GATES_IN_REC: u32 = 8;
}

/// One layer's step dispatch, held until the steps of every layer of a phase are recorded.
struct Step<'a> {
    kernel: Kernel,
    words: Vec<u32>,
    bindings: Vec<(u32, &'a GpuBuffer)>,
    groups: [u32; 3],
    flops: f64,
    bytes: f64,
}

/// The step dispatches of the layers of one phase at one time step, recorded by each
/// layer's `Call` (`InStack::joined`) and dispatched together by [`Joined::flush`].
#[derive(Default)]
pub(super) struct Joined<'a> {
    steps: RefCell<Vec<Step<'a>>>,
}

impl<'a> Joined<'a> {
    /// Holds a layer's step dispatch (of a joined build, with the layer's own words and
    /// bindings) for the next [`Joined::flush`].
    pub fn push(
        &self,
        kernel: Kernel,
        words: &[u32],
        bindings: Vec<(u32, &'a GpuBuffer)>,
        groups: [u32; 3],
    ) {
        self.steps.borrow_mut().push(Step {
            kernel,
            words: words.to_vec(),
            bindings,
            groups,
            flops: 0.0,
            bytes: 0.0,
        });
    }

    /// Declares the work of the step held last (see `Gpu::cost`).
    pub fn cost(&self, flops: f64, bytes: f64) {
        if let Some(s) = self.steps.borrow_mut().last_mut() {
            s.flops += flops;
            s.bytes += bytes;
        }
    }

    /// Records the held steps: [`JOINED_LAYERS`] at a time as one dispatch where they are
    /// the same kernel over the same grid and bind the same buffers or parts of the same
    /// joined buffers (`Gpu::joined`), each layer's offsets moved to where its parts start;
    /// else one dispatch each.
    pub fn flush(&self, gpu: &Gpu) {
        let steps = std::mem::take(&mut *self.steps.borrow_mut());
        for group in steps.chunks(JOINED_LAYERS) {
            let Some(bindings) = joined_bindings(group) else {
                for s in group {
                    let mut words = s.words.clone();
                    words.resize(JOINED_LAYERS * LP_WORDS, 0);
                    gpu.dispatch_at(&s.kernel, &words, &s.bindings, s.groups);
                    gpu.cost(s.flops, s.bytes);
                }
                continue;
            };
            let mut words = Vec::with_capacity(JOINED_LAYERS * LP_WORDS);
            for s in group {
                words.extend(rebase(&s.words, &s.bindings));
            }
            words.resize(JOINED_LAYERS * LP_WORDS, 0);
            let [x, y, _] = group[0].groups;
            gpu.dispatch_at(
                &group[0].kernel,
                &words,
                &bindings,
                [x, y, group.len() as u32],
            );
            gpu.cost(
                group.iter().map(|s| s.flops).sum(),
                group.iter().map(|s| s.bytes).sum(),
            );
        }
    }
}

/// The words of `LP` a joined build reads from the first layer's (`layer::SHARED_FIELDS`):
/// sizes and flags.
const SHARED_WORDS: std::ops::Range<usize> = 1..13;

/// The bindings of one dispatch for all of `group`, if they can share one: the same
/// kernel, a grid of one direction, the same sizes and flags (`SHARED_WORDS`), and at each
/// binding the same buffer once parts are taken as their wholes.
fn joined_bindings<'a>(group: &[Step<'a>]) -> Option<Vec<(u32, &'a GpuBuffer)>> {
    let first = &group[0];
    let alike = group.iter().all(|s| {
        s.kernel.same(&first.kernel)
            && s.groups == first.groups
            && s.words[SHARED_WORDS] == first.words[SHARED_WORDS]
            && s.bindings.len() == first.bindings.len()
            && s.bindings
                .iter()
                .zip(&first.bindings)
                .all(|((i, b), (j, c))| i == j && std::ptr::eq(b.resolved().0, c.resolved().0))
    });
    (alike && first.groups[2] == 1).then(|| {
        first
            .bindings
            .iter()
            .map(|&(i, b)| (i, b.resolved().0))
            .collect()
    })
}

/// A layer's step words with every offset moved by where the part its binding holds starts
/// in the joined buffer.
fn rebase(words: &[u32], bindings: &[(u32, &GpuBuffer)]) -> Vec<u32> {
    let mut w = words.to_vec();
    let in_rec = w[lp::FLAGS] & lp::GATES_IN_REC != 0;
    for &(binding, buf) in bindings {
        let base = buf.resolved().1 as u32;
        if base == 0 {
            continue;
        }
        let fields: &[usize] = match binding {
            2 => &[lp::H0, lp::C0, lp::HS, lp::CS, lp::REC],
            10 => &[lp::SCR, lp::DC, lp::DGH0],
            3 => &[lp::Y0],
            4 => &[lp::SH0],
            5 => &[lp::SC0],
            7 => &[lp::DY0],
            11 => &[lp::W16],
            _ => &[],
        };
        // xp, dxp and dgh are in the records or in the gates buffer.
        let gates: &[usize] = match (binding == 2 && in_rec) || (binding == 10 && !in_rec) {
            true => &[lp::XP, lp::DXP, lp::DGH],
            false => &[],
        };
        for &f in fields.iter().chain(gates) {
            // Offsets may wrap (an xp window's start, `InStack::gates_from`): so do their sums.
            w[f] = w[f].wrapping_add(base);
        }
    }
    w
}

#[cfg(test)]
mod tests {
    use super::super::layer::LP_WORDS;
    use super::{SHARED_WORDS, lp};

    /// The word positions the rebase moves are those of `shaders/layer.wgsl`'s `LP`.
    #[test]
    fn offsets_are_where_the_step_parameters_have_them() {
        let src = include_str!("../../../shaders/layer.wgsl");
        let start = src.find("struct LP {").expect("layer.wgsl declares LP");
        let end = start + src[start..].find('}').expect("LP ends");
        let fields: Vec<&str> = src[start + "struct LP {".len()..end]
            .split(',')
            .map(|f| f.split(':').next().unwrap_or("").trim())
            .filter(|f| !f.is_empty())
            .collect();
        assert_eq!(fields.len(), LP_WORDS);
        for (name, at) in [
            ("flags", lp::FLAGS),
            ("xp", lp::XP),
            ("h0", lp::H0),
            ("c0", lp::C0),
            ("hs", lp::HS),
            ("cs", lp::CS),
            ("rec", lp::REC),
            ("dxp", lp::DXP),
            ("dgh", lp::DGH),
            ("scr", lp::SCR),
            ("dc", lp::DC),
            ("dgh0", lp::DGH0),
            ("y0", lp::Y0),
            ("sh0", lp::SH0),
            ("sc0", lp::SC0),
            ("dy0", lp::DY0),
            ("w16", lp::W16),
        ] {
            assert_eq!(fields[at], name, "LP word {at}");
        }
        assert_eq!(fields[SHARED_WORDS], super::super::layer::SHARED_FIELDS);
    }
}
