//! Fused loss forward+backward: softmax cross-entropy and mean squared error
//! (`shaders/loss.wgsl`; CPU twin `src/backend/cpu/loss.rs`).
//!
//! Targets stay on the device: a row kernel writes each row's loss into scratch and its
//! gradient scaled by `1 / count`, which the host counts from the lengths and its copy of
//! the targets; a single workgroup sums the losses into the mean. Nothing is read back.

use super::runtime::{Gpu, Shader};
use super::{GpuBuffer, WgpuBackend};
use crate::backend::{LossPlan, SeqShape, TargetBufs};
use crate::config::Task;

pub(super) static LOSS: Shader = Shader {
    name: "loss",
    source: include_str!("../../../shaders/loss.wgsl"),
};

/// Flag: rows are steps `t * B + b`, counted only where valid.
const PER_STEP: u32 = 1;
/// Flag: an ignore label is set.
const IGNORE: u32 = 2;

/// Writes the mean loss into `loss[0]` and its gradient into `dlogits`, dispatching on the
/// task and targets exactly as the CPU backend does.
pub(super) fn loss(
    be: &WgpuBackend,
    plan: &LossPlan,
    logits: &GpuBuffer,
    targets: TargetBufs<'_, WgpuBackend>,
    seq: &SeqShape,
    loss: &mut GpuBuffer,
    dlogits: &mut GpuBuffer,
) {
    let nb = seq.batch();
    let classes = plan.classes;
    // (entry point, rows, flags, ignore label, targets).
    let (entry, rows, flags, ignore, target) = match (&plan.task, &targets) {
        (Task::Classification { .. }, TargetBufs::Classes(y)) => {
            ("ce_rows", y.host.len(), 0, 0, &y.buf)
        }
        (Task::Regression, TargetBufs::Values(y)) => ("mse_rows", seq.time * nb, 0, 0, *y),
        (task, TargetBufs::Classes(y)) => {
            let (flags, ignore) = match task.ignore_label() {
                Some(l) => (PER_STEP | IGNORE, l),
                None => (PER_STEP, 0),
            };
            ("ce_rows", y.host.len(), flags, ignore, &y.buf)
        }
        (_, TargetBufs::Values(_)) => {
            // Float targets for a classification task: no loss is defined.
            be.gpu.write(loss, &[f32::NAN]);
            return;
        }
    };
    let count = match &targets {
        TargetBufs::Values(_) => seq.valid_steps() * classes,
        TargetBufs::Classes(y) => {
            let valid = |r: usize| flags & PER_STEP == 0 || seq.valid(r / nb, r % nb);
            let ignored = |l: u32| flags & IGNORE != 0 && l == ignore;
            let counted =
                |(r, &l): (usize, &u32)| valid(r) && !ignored(l) && (l as usize) < classes;
            y.host.iter().enumerate().filter(|&t| counted(t)).count()
        }
    };
    let inv = match count {
        0 => 0.0,
        n => 1.0 / n as f32,
    };
    let lengths = be.lengths(seq);
    // (Every row's loss is written by the row kernel.)
    let scratch = be.gpu.buffer_uninit(rows);
    let params = [
        rows as u32,
        classes as u32,
        nb as u32,
        flags,
        ignore,
        inv.to_bits(),
        0,
        0,
    ];
    if rows > 0 {
        let groups = if entry == "ce_rows" {
            // One workgroup per row.
            Gpu::grid_1d(rows, 1)
        } else {
            Gpu::grid_1d(rows, 256)
        };
        let pipeline = be.gpu.pipeline(&LOSS, entry, &[]);
        be.gpu.dispatch(
            &pipeline,
            &params,
            &[logits, target, &lengths, dlogits, &scratch],
            groups,
        );
    }
    let reduce = be.gpu.pipeline(&LOSS, "reduce_loss", &[]);
    be.gpu
        .dispatch(&reduce, &params, &[&scratch, loss], [1, 1, 1]);
}
