//! Token encoding on the GPU: embedding-bag gather / one-hot (multi-hot) and the embedding
//! gradient's scatter-add (`shaders/encode.wgsl`; CPU twin `src/backend/cpu/encode.rs`).
//!
//! The scatter-add needs no float atomics: positions are grouped by id on the host (from
//! the bags' host copy) into a CSR table, and one invocation per (unique id, feature) sums its
//! positions' rows in step order, so the result is deterministic.

use std::collections::BTreeMap;

use super::runtime::{Gpu, Shader};
use super::{GpuBuffer, GpuTokens, WgpuBackend};
use crate::backend::SeqShape;
use crate::config::InputEncoding;
use crate::params::{EncodePlan, embedding_rows};

pub(super) static ENCODE: Shader = Shader {
    name: "encode",
    source: include_str!("../../../shaders/encode.wgsl"),
};

/// Writes `x` `[T, B, width]`: sums of embedding rows or of one-hot vectors over each step's
/// bag, zeros on padding steps.
pub(super) fn encode_forward(
    be: &WgpuBackend,
    plan: &EncodePlan,
    params: &GpuBuffer,
    tokens: &GpuTokens,
    seq: &SeqShape,
    x: &mut GpuBuffer,
) {
    let (nb, w) = (seq.batch(), plan.width);
    let n = seq.time * nb * w;
    if n == 0 {
        return;
    }
    let (mode, table, src) = match (&plan.encoding, plan.table) {
        (InputEncoding::Embedding { .. }, Some(tab)) => (0u32, tab, params),
        (InputEncoding::OneHot { .. }, _) => (1, 0, &be.dummy),
        _ => (2, 0, &be.dummy),
    };
    let lengths = be.lengths(seq);
    let pipeline = be.gpu.pipeline(&ENCODE, "encode_forward", &[]);
    be.gpu.dispatch(
        &pipeline,
        &encode_words(&[n, w, nb, mode as usize, table]),
        &[src, &tokens.ids, &lengths, x, &tokens.offsets],
        Gpu::grid_1d(n, 256),
    );
}

/// `dtable[id] += dx[t, b]` for every id in the bag of every valid step (embedding only;
/// no-op otherwise).
pub(super) fn encode_backward(
    be: &WgpuBackend,
    plan: &EncodePlan,
    tokens: &GpuTokens,
    seq: &SeqShape,
    dx: &GpuBuffer,
    grads: &mut GpuBuffer,
) {
    let Some(tab) = plan.table else { return };
    let (nb, w) = (seq.batch(), plan.width);
    let rows = embedding_rows(&plan.encoding);
    // Positions of each id, in step order (the order the CPU loop adds them in).
    let mut by_id: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for t in 0..seq.time {
        for b in (0..nb).filter(|&b| seq.valid(t, b)) {
            let r = t * nb + b;
            for &id in tokens.host.bag(r) {
                // Ids are validated upstream; one outside the table has no row to update.
                if (id as usize) < rows {
                    by_id.entry(id).or_default().push(r as u32);
                }
            }
        }
    }
    let uniq = by_id.len();
    if uniq == 0 || w == 0 {
        return;
    }
    // One u32 buffer: unique ids, then offsets (uniq + 1), then positions.
    let positions: usize = by_id.values().map(Vec::len).sum();
    let mut csr = Vec::with_capacity(2 * uniq + 1 + positions);
    csr.extend(by_id.keys().copied());
    let mut at = 0u32;
    csr.push(0);
    for list in by_id.values() {
        at += list.len() as u32;
        csr.push(at);
    }
    for list in by_id.values() {
        csr.extend_from_slice(list);
    }
    let csr = be.gpu.buffer_from(&csr);
    let n = uniq * w;
    let pipeline = be.gpu.pipeline(&ENCODE, "encode_backward", &[]);
    // Each id's positions in pieces where the adapter caps a kernel's loops.
    let longest = by_id.values().map(Vec::len).max().unwrap_or(0);
    let piece = be.gpu.loop_piece(longest);
    for from in (0..longest).step_by(piece) {
        let words = encode_words(&[n, w, nb, 0, tab, uniq, 2 * uniq + 1, uniq, from, piece]);
        be.gpu
            .dispatch(&pipeline, &words, &[&csr, dx, grads], Gpu::grid_1d(n, 256));
    }
}

/// `shaders/encode.wgsl`'s `P` from its first `fields` in order, the rest zero.
fn encode_words(fields: &[usize]) -> [u32; 12] {
    let mut words = [0u32; 12];
    words
        .iter_mut()
        .zip(fields)
        .for_each(|(w, &f)| *w = f as u32);
    words
}
