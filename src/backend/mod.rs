//! The backend boundary: whole-sequence operations that a CPU or GPU implementation provides.
//!
//! The boundary is drawn at fused operations (a layer's forward over all steps, its backward,
//! the head, the loss, the optimizer step), never per scalar op, so a GPU backend is free to
//! fuse and schedule inside each call. `Model` is written once against this trait.
//!
//! Layouts shared by every backend:
//! - sequences are time-major: a step tensor is `[T, B, F]` row-major, element
//!   `(t, b, f)` at `(t * B + b) * F + f`;
//! - a layer's output concatenates directions per step: `[T, B, D * out]`, forward first;
//! - steps at `t >= lengths[b]` are never computed and hold zeros in every step tensor;
//! - a layer's state is `[D, B, W]` (W = the state's width), forward direction first;
//! - all parameters live in one buffer, all gradients in another of the same layout, and
//!   plans (`crate::params`) carry offsets into them.

pub mod cpu;
pub mod wgpu;

use crate::config::{Pooling, Task};
use crate::optim::OptimizerStep;
use crate::params::{EncodePlan, HeadPlan, LayerPlan};

/// The floating-point types the engine computes in (f32 everywhere; f64 in the CPU reference
/// for gradient checks).
pub trait Real:
    num_traits::Float
    + num_traits::FromPrimitive
    + num_traits::ToPrimitive
    + std::iter::Sum
    + std::fmt::Debug
    + std::fmt::Display
    + Default
    + Send
    + Sync
    + 'static
{
    /// Converts from f64 (rounding for f32).
    fn of(v: f64) -> Self {
        <Self as num_traits::NumCast>::from(v).unwrap_or_else(Self::nan)
    }
    /// Converts to f64.
    fn f64(self) -> f64 {
        self.to_f64().unwrap_or(f64::NAN)
    }
}
impl Real for f32 {}
impl Real for f64 {}

/// Shape of a batch of sequences and where each one ends.
#[derive(Clone, Debug, PartialEq)]
pub struct SeqShape {
    /// Padded number of time steps T.
    pub time: usize,
    /// Valid steps of each sequence (`1..=T`); its length is the batch size B.
    pub lengths: Vec<usize>,
}

impl SeqShape {
    /// Batch size B.
    pub fn batch(&self) -> usize {
        self.lengths.len()
    }

    /// Whether step `t` of sequence `b` exists.
    pub fn valid(&self, t: usize, b: usize) -> bool {
        t < self.lengths[b]
    }

    /// Number of valid (t, b) steps.
    pub fn valid_steps(&self) -> usize {
        self.lengths.iter().sum()
    }

    /// Whether some sequence ends before step T, leaving rows past its end (padding).
    pub fn has_padding(&self) -> bool {
        self.lengths.iter().any(|&n| n < self.time)
    }
}

/// A layer's state tensors: `h` is `[D, B, recurrent_input]`, `c` is `[D, B, H]` (LSTM only).
#[derive(Debug)]
pub struct StateBufs<'a, Buf> {
    /// Hidden (or, for Jordan, fed-back output) state.
    pub h: &'a Buf,
    /// Cell state, for LSTMs.
    pub c: Option<&'a Buf>,
}

/// Mutable state tensors of a layer, with the same layout as [`StateBufs`].
#[derive(Debug)]
pub struct StateBufsMut<'a, Buf> {
    /// Hidden (or fed-back output) state.
    pub h: &'a mut Buf,
    /// Cell state, for LSTMs.
    pub c: Option<&'a mut Buf>,
}

/// What the forward of a whole recurrent stack reads and writes
/// ([`Backend::stack_forward`]).
pub struct StackForward<'a, B: Backend + ?Sized> {
    /// The layers, bottom first.
    pub plans: &'a [LayerPlan],
    /// The flat parameters.
    pub params: &'a B::Buffer,
    /// The batch's shape.
    pub seq: &'a SeqShape,
    /// `xs[0]`: the stack's input `[T, B, I]`; `xs[k + 1]`: layer k's output, after its
    /// dropout.
    pub xs: &'a mut [B::Buffer],
    /// Layer k's cache ([`Backend::layer_caches`]).
    pub caches: &'a mut [B::Buffer],
    /// Layer k's initial states (zeros when `None`).
    pub init: Option<Vec<StateBufs<'a, B::Buffer>>>,
    /// Layer k's state at each sequence's last step.
    pub last: Vec<StateBufsMut<'a, B::Buffer>>,
    /// Dropout on layer k's output: probability and seed.
    pub dropout: Vec<Option<(f32, u64)>>,
}

/// [`Backend::stack_forward`] one layer after the other: each layer's forward over all
/// steps, then its dropout.
pub fn forward_layer_by_layer<B: Backend + ?Sized>(be: &B, job: StackForward<'_, B>) {
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
    for (k, ((lp, cache), last)) in plans.iter().zip(caches).zip(last).enumerate() {
        let (below, above) = xs.split_at_mut(k + 1);
        let init_k = init.as_ref().map(|s| StateBufs {
            h: s[k].h,
            c: s[k].c,
        });
        be.layer_forward(
            lp,
            params,
            &below[k],
            seq,
            init_k,
            &mut above[0],
            last,
            cache,
        );
        if let Some((p, seed)) = dropout[k] {
            be.dropout(&mut above[0], p, seed);
        }
    }
}

/// What the backward of a whole recurrent stack reads and writes
/// ([`Backend::stack_backward`]).
pub struct StackBackward<'a, B: Backend + ?Sized> {
    /// The layers, bottom first.
    pub plans: &'a [LayerPlan],
    /// The flat parameters.
    pub params: &'a B::Buffer,
    /// The batch's shape.
    pub seq: &'a SeqShape,
    /// As the forward left them: `xs[0]` the stack's input, `xs[k + 1]` layer k's output.
    pub xs: &'a [B::Buffer],
    /// Layer k's cache, as its forward wrote it.
    pub caches: &'a [B::Buffer],
    /// The gradient of the top layer's output, after its dropout (the backward applies the
    /// dropout's mask; the buffer is the backward's to change).
    pub dy: B::Buffer,
    /// The gradient of layer k's final states (zero when `None`).
    pub dlast: Option<Vec<StateBufs<'a, B::Buffer>>>,
    /// Where the parameter gradients accumulate.
    pub grads: &'a mut B::Buffer,
    /// Where layer k's initial-state gradients go, when they are asked for.
    pub dinit: Option<Vec<StateBufsMut<'a, B::Buffer>>>,
    /// Whether the forward started every layer from zero states (`StackForward::init` was
    /// `None`): their share of the recurrent weights' gradients is then zero, and a
    /// backend may skip it.
    pub zero_init: bool,
    /// Dropout on layer k's output, as the forward applied it: probability and seed.
    pub dropout: Vec<Option<(f32, u64)>>,
    /// Whether to return the gradient of the stack's input.
    pub dx: bool,
}

/// [`Backend::stack_backward`] one layer after the other, from the top: the dropout's mask
/// on the layer's output gradient, then its `layer_backward` over all steps.
pub fn backward_layer_by_layer<B: Backend + ?Sized>(
    be: &B,
    job: StackBackward<'_, B>,
) -> Option<B::Buffer> {
    let StackBackward {
        plans,
        params,
        seq,
        xs,
        caches,
        mut dy,
        dlast,
        grads,
        dinit,
        zero_init,
        dropout,
        dx: want_dx,
    } = job;
    let mut dinit = each_layer(dinit, plans.len());
    for k in (0..plans.len()).rev() {
        if let Some((p, seed)) = dropout[k] {
            be.dropout(&mut dy, p, seed);
        }
        let mut dx = (k > 0 || want_dx).then(|| be.for_output(be.len(&xs[k])));
        let dlast_k = dlast.as_ref().map(|s| StateBufs {
            h: s[k].h,
            c: s[k].c,
        });
        be.layer_backward(
            &plans[k],
            params,
            &xs[k],
            &xs[k + 1],
            seq,
            &caches[k],
            &dy,
            dlast_k,
            grads,
            dx.as_mut(),
            dinit[k].take(),
            zero_init,
        );
        match dx {
            Some(d) => dy = d,
            None => return None,
        }
    }
    Some(dy)
}

/// Per-layer values that are given for all `layers` or none, as one option per layer (for
/// a stack's passes to take each layer's as they reach it).
pub fn each_layer<T>(all: Option<Vec<T>>, layers: usize) -> Vec<Option<T>> {
    match all {
        Some(v) => v.into_iter().map(Some).collect(),
        None => (0..layers).map(|_| None).collect(),
    }
}

/// Targets of a loss, already on the device.
#[derive(Debug)]
pub enum TargetBufs<'a, B: Backend + ?Sized> {
    /// Class ids: `[T, B]` for per-step tasks, `[B]` for classification.
    Classes(&'a B::Ids),
    /// Float targets `[T, B, C]` for regression.
    Values(&'a B::Buffer),
}

/// The loss a head is trained with.
#[derive(Clone, Debug, PartialEq)]
pub struct LossPlan {
    /// The task, which fixes the loss.
    pub task: Task,
    /// Number of classes / outputs.
    pub classes: usize,
}

/// Token inputs as bags of ids: step row `r = t * B + b` holds `ids[offsets[r]..offsets[r + 1]]`
/// and its encoding is the sum of its ids' encodings. Plain token inputs are bags of one id;
/// word hashing puts a word's letter trigrams in its bag (an embedding bag, or a multi-hot
/// count vector with the one-hot encoding). Ids are validated and mapped to "other" already.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TokenBags {
    /// `T * B + 1` offsets into `ids`, non-decreasing, from 0 to `ids.len()`.
    pub offsets: Vec<u32>,
    /// The ids of every bag, one bag after the other.
    pub ids: Vec<u32>,
}

impl TokenBags {
    /// One id per step row.
    pub fn singles(ids: &[u32]) -> Self {
        TokenBags {
            offsets: (0..=ids.len() as u32).collect(),
            ids: ids.to_vec(),
        }
    }

    /// The ids of step row `r`.
    pub fn bag(&self, r: usize) -> &[u32] {
        &self.ids[self.offsets[r] as usize..self.offsets[r + 1] as usize]
    }
}

/// A compute backend: buffers plus the fused operations of training.
///
/// Operations take output buffers allocated by the caller (once per shape, reused across
/// steps). Gradient outputs accumulate (`+=`) into the shared gradient buffer; every other
/// output is overwritten, including its padding steps (zeros).
pub trait Backend {
    /// The scalar type of every float buffer.
    type Scalar: Real;
    /// A flat array of scalars on the device.
    type Buffer;
    /// A flat array of `u32` on the device (class ids, lengths).
    type Ids;
    /// Token inputs on the device ([`TokenBags`]).
    type Tokens;
    /// Scalars being read back in the background ([`Backend::read_later`]).
    type Readback;

    /// A short description of the device (`cpu (f64)`, adapter name, ...).
    fn describe(&self) -> String;

    /// Copies host values into a new buffer.
    fn upload(&self, data: &[Self::Scalar]) -> Self::Buffer;
    /// Copies host ids into a new id buffer.
    fn upload_ids(&self, ids: &[u32]) -> Self::Ids;
    /// Copies token inputs to the device.
    fn upload_tokens(&self, tokens: TokenBags) -> Self::Tokens;
    /// A new zero-filled buffer of `len` scalars.
    fn zeros(&self, len: usize) -> Self::Buffer;
    /// A new buffer of `len` scalars for a result that an operation then writes whole
    /// (such as `layer_backward`'s `dx`): zero-filled, unless the backend can skip that.
    fn for_output(&self, len: usize) -> Self::Buffer {
        self.zeros(len)
    }
    /// Overwrites a buffer with host values of the same length.
    fn write(&self, buf: &mut Self::Buffer, data: &[Self::Scalar]);
    /// Sets every element to zero.
    fn fill_zero(&self, buf: &mut Self::Buffer);
    /// Sets the elements in `range` to zero (recorded like any operation: no host round-trip;
    /// frozen parameters' gradients).
    fn zero_range(&self, buf: &mut Self::Buffer, range: std::ops::Range<usize>);
    /// Copies a buffer back to the host (waits for queued work).
    fn download(&self, buf: &Self::Buffer) -> Vec<Self::Scalar>;
    /// Number of scalars in a buffer.
    fn len(&self, buf: &Self::Buffer) -> usize;

    /// Starts reading the first element of each buffer back without waiting: on a GPU the work
    /// recorded so far is submitted and runs while the host goes on (a training loop reads its
    /// loss this way, a few steps late, instead of stalling every step).
    fn read_later(&self, firsts: &[&Self::Buffer]) -> Self::Readback;
    /// The values of a read-back if they have arrived; never blocks.
    fn try_read(&self, r: &Self::Readback) -> Option<Vec<Self::Scalar>>;
    /// Waits for a read-back and returns its values.
    fn read_wait(&self, r: &Self::Readback) -> Vec<Self::Scalar>;

    /// Encodes the token bags of `[T, B]` steps into `x` `[T, B, width]` (sums of embedding
    /// rows or of one-hot vectors); padding steps get zeros.
    fn encode_forward(
        &self,
        plan: &EncodePlan,
        params: &Self::Buffer,
        tokens: &Self::Tokens,
        seq: &SeqShape,
        x: &mut Self::Buffer,
    );
    /// Accumulates the embedding gradient (each step's `dx` row added to the row of every id
    /// in its bag); no-op for one-hot.
    fn encode_backward(
        &self,
        plan: &EncodePlan,
        tokens: &Self::Tokens,
        seq: &SeqShape,
        dx: &Self::Buffer,
        grads: &mut Self::Buffer,
    );

    /// Scalars of per-layer scratch the forward pass keeps for the backward pass.
    fn layer_cache_len(&self, plan: &LayerPlan, seq: &SeqShape) -> usize;

    /// A new zeroed layer cache of `layer_cache_len` scalars, stored as the backend keeps its
    /// caches (a GPU backend may store them in f16).
    fn layer_cache(&self, plan: &LayerPlan, seq: &SeqShape) -> Self::Buffer {
        self.zeros(self.layer_cache_len(plan, seq))
    }

    /// Zeroed caches of a stack's layers (`layer_cache` each), which a backend may place
    /// where its kernels reach several at once ([`Backend::stack_forward`]).
    fn layer_caches(&self, plans: &[LayerPlan], seq: &SeqShape) -> Vec<Self::Buffer> {
        plans.iter().map(|p| self.layer_cache(p, seq)).collect()
    }

    /// Zeroed outputs `[T, B, D*out]` of a stack's layers, placed as `layer_caches` places
    /// their caches.
    fn layer_outputs(&self, plans: &[LayerPlan], seq: &SeqShape) -> Vec<Self::Buffer> {
        let rows = seq.time * seq.batch();
        plans
            .iter()
            .map(|p| self.zeros(rows * p.output_width()))
            .collect()
    }

    /// Runs the whole recurrent stack forward: each layer as `layer_forward` runs it, then
    /// its dropout. A backend may interleave the layers (a GPU's layer pipeline) as long as
    /// every buffer ends as layer by layer leaves it.
    fn stack_forward(&self, job: StackForward<'_, Self>) {
        forward_layer_by_layer(self, job);
    }

    /// Runs the whole recurrent stack backward from the top, each layer as the dropout's
    /// mask and `layer_backward` take it, and returns the gradient of the stack's input when
    /// `job.dx` asks for it. A backend may interleave the layers (a GPU's layer pipeline)
    /// as long as every result is what layer by layer gives.
    fn stack_backward(&self, job: StackBackward<'_, Self>) -> Option<Self::Buffer> {
        backward_layer_by_layer(self, job)
    }

    /// The most bytes one buffer may hold where the device limits it (a GPU's largest
    /// storage binding), so oversized networks and batches are refused with a clear error.
    fn max_buffer_bytes(&self) -> Option<u64> {
        None
    }

    /// The most sequences one batch may hold where the device limits it (a GPU's
    /// workgroups along one dimension of a dispatch, where a layer's kernels run a row of
    /// workgroups per sequence), so larger batches are refused with a clear error.
    fn max_sequences(&self) -> Option<usize> {
        None
    }

    /// Bytes of the largest buffer a layer call makes or keeps (its cache, or scratch the
    /// backend makes while the layer runs).
    fn layer_largest_bytes(&self, plan: &LayerPlan, seq: &SeqShape) -> u64 {
        (self.layer_cache_len(plan, seq) * std::mem::size_of::<Self::Scalar>()) as u64
    }

    /// Runs a layer over all steps: `x` `[T, B, I]` -> `y` `[T, B, D*out]`, starting from
    /// `init` (zeros when `None`) and writing each sequence's state at its own last step to
    /// `last`. `cache` receives what the backward pass needs.
    #[allow(clippy::too_many_arguments)]
    fn layer_forward(
        &self,
        plan: &LayerPlan,
        params: &Self::Buffer,
        x: &Self::Buffer,
        seq: &SeqShape,
        init: Option<StateBufs<'_, Self::Buffer>>,
        y: &mut Self::Buffer,
        last: StateBufsMut<'_, Self::Buffer>,
        cache: &mut Self::Buffer,
    );

    /// Backpropagation through time for a layer: from `dy` `[T, B, D*out]` and the gradient
    /// of the final states `dlast` (zero when `None`), accumulates parameter gradients into
    /// `grads` and writes `dx` `[T, B, I]` (every element, whatever it held) and `dinit`
    /// when asked for. `y` is the layer's output as its forward wrote it (a backend may keep
    /// the states there instead of in the cache when the output is not changed afterwards:
    /// `LayerPlan::dropout` is 0).
    /// `zero_init`: the forward started from zero states (`init` was `None`), so a backend
    /// may skip their share of the gradient of W_hh.
    #[allow(clippy::too_many_arguments)]
    fn layer_backward(
        &self,
        plan: &LayerPlan,
        params: &Self::Buffer,
        x: &Self::Buffer,
        y: &Self::Buffer,
        seq: &SeqShape,
        cache: &Self::Buffer,
        dy: &Self::Buffer,
        dlast: Option<StateBufs<'_, Self::Buffer>>,
        grads: &mut Self::Buffer,
        dx: Option<&mut Self::Buffer>,
        dinit: Option<StateBufsMut<'_, Self::Buffer>>,
        zero_init: bool,
    );

    /// Inverted dropout in place on `[T, B, F]`: element `i` is kept (and scaled by
    /// `1/(1-p)`) when `crate::dropout::keep(seed, i, p)`; padding stays zero.
    fn dropout(&self, x: &mut Self::Buffer, p: f32, seed: u64);

    /// `logits[r] = W x[r] + b` for the rows that exist: per-step rows `(t, b)` valid in
    /// `seq` (others zero), or every row when `seq` is `None` (one row per sequence).
    fn head_forward(
        &self,
        plan: &HeadPlan,
        params: &Self::Buffer,
        x: &Self::Buffer,
        rows: usize,
        seq: Option<&SeqShape>,
        logits: &mut Self::Buffer,
    );
    /// Backward of `head_forward`: accumulates `head.weight`/`head.bias` gradients and writes
    /// `dx` (zeros on padding rows).
    #[allow(clippy::too_many_arguments)]
    fn head_backward(
        &self,
        plan: &HeadPlan,
        params: &Self::Buffer,
        x: &Self::Buffer,
        rows: usize,
        seq: Option<&SeqShape>,
        dlogits: &Self::Buffer,
        grads: &mut Self::Buffer,
        dx: &mut Self::Buffer,
    );

    /// Pools `[T, B, D*out]` to `[B, D*out]` (last: each direction's own end; mean: over
    /// valid steps).
    fn pool_forward(
        &self,
        mode: Pooling,
        x: &Self::Buffer,
        seq: &SeqShape,
        dirs: usize,
        width: usize,
        pooled: &mut Self::Buffer,
    );
    /// Backward of `pool_forward`: writes `dx` `[T, B, D*out]` from `dpooled`.
    fn pool_backward(
        &self,
        mode: Pooling,
        dpooled: &Self::Buffer,
        seq: &SeqShape,
        dirs: usize,
        width: usize,
        dx: &mut Self::Buffer,
    );

    /// The task loss and its gradient in one pass: writes the mean loss into `loss[0]` and
    /// `dlogits` (same layout as `logits`, zero where no loss applies).
    fn loss(
        &self,
        plan: &LossPlan,
        logits: &Self::Buffer,
        targets: TargetBufs<'_, Self>,
        seq: &SeqShape,
        loss: &mut Self::Buffer,
        dlogits: &mut Self::Buffer,
    );

    /// Writes the global L2 norm of `grads` into `norm[0]`, then, if `max_norm` is given
    /// and the norm exceeds it, scales `grads` by `max_norm / norm`.
    fn clip_grad_norm(
        &self,
        grads: &mut Self::Buffer,
        max_norm: Option<f32>,
        norm: &mut Self::Buffer,
    );
    /// Clamps every gradient to `[-limit, limit]`.
    fn clip_grad_value(&self, grads: &mut Self::Buffer, limit: f32);

    /// One optimizer update of every parameter from `grads`; `state` holds the optimizer's
    /// moment buffers (created by the caller with `OptimizerStep::state_buffers` zeros each).
    fn optimizer_step(
        &self,
        step: &OptimizerStep,
        params: &mut Self::Buffer,
        grads: &Self::Buffer,
        state: &mut [Self::Buffer],
    );

    /// [`Backend::optimizer_step`], skipped entirely when `guard[0]` (the step's gradient
    /// norm) is infinite or NaN, decided on the device: a training step needs no host
    /// round-trip to keep a diverged step from reaching the parameters.
    fn optimizer_step_if_finite(
        &self,
        step: &OptimizerStep,
        params: &mut Self::Buffer,
        grads: &Self::Buffer,
        state: &mut [Self::Buffer],
        guard: &Self::Buffer,
    ) {
        if self
            .download(guard)
            .first()
            .is_some_and(|g| num_traits::Float::is_finite(*g))
        {
            self.optimizer_step(step, params, grads, state);
        }
    }
}
