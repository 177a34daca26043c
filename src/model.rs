//! A network on a backend: its parameters, a forward pass, the loss and the backward pass.
//!
//! Data flow of one pass (all tensors live in the `Workspace`, allocated once per shape):
//! `inputs -> xs[0] (encoded) -> layer 0 -> xs[1] -> ... -> xs[L] -> head -> logits`,
//! with per-layer caches kept for backpropagation through time, and gradients accumulated
//! into one flat buffer laid out like the parameters.

use crate::backend::{
    Backend, LossPlan, Real, SeqShape, StackBackward, StackForward, StateBufs, StateBufsMut,
    TargetBufs, TokenBags,
};
use crate::config::{InputEncoding, NetworkConfig, Task, UnknownTokens};
use crate::dropout;
use crate::error::{ConfigError, InputError};
use crate::params::{ModelPlan, ParamTable, init_params, plan_network};

/// A batch of sequences on the host, time-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch<T> {
    /// Padded length and each sequence's valid steps.
    pub seq: SeqShape,
    /// The inputs: `[T, B]` token ids or `[T, B, F]` features.
    pub inputs: Inputs<T>,
}

/// The inputs of a batch.
#[derive(Clone, Debug, PartialEq)]
pub enum Inputs<T> {
    /// Token ids `[T, B]` (for embedding and one-hot encodings); padding ids are ignored.
    Ids(Vec<u32>),
    /// Dense features `[T, B, F]` (for the dense encoding).
    Dense(Vec<T>),
    /// A bag of token ids per step (for embedding and one-hot encodings), summed: step
    /// `r = t * B + b` holds `ids[offsets[r]..offsets[r + 1]]`, `offsets` has `T * B + 1`
    /// entries from 0 to `ids.len()`. Word hashing by letter trigrams gives each word the bag
    /// of its trigram ids (`crate::data::trigram`); padding steps' bags are ignored.
    Bags {
        /// `T * B + 1` non-decreasing offsets into `ids`.
        offsets: Vec<u32>,
        /// Every bag's ids, bag after bag.
        ids: Vec<u32>,
    },
}

/// One layer's state on the host: `h` is `[D, B, R]` (R = the layer's recurrent input width:
/// its output size, or the head's classes for Jordan), `c` is `[D, B, H]` for LSTMs.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerState<T> {
    /// Hidden state (or fed-back output for Jordan).
    pub h: Vec<T>,
    /// Cell state (LSTM only).
    pub c: Option<Vec<T>>,
}

/// Targets of the task loss.
#[derive(Clone, Debug, PartialEq)]
pub enum Targets<T> {
    /// Class ids: `[T, B]` for tagging / language modelling, `[B]` for classification.
    Classes(Vec<u32>),
    /// Float targets `[T, B, C]` for regression.
    Values(Vec<T>),
}

/// Whether a forward pass trains (dropout on, with this seed) or evaluates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// No dropout.
    Eval,
    /// Dropout masks drawn from `dropout_seed` (see `crate::dropout`).
    Train {
        /// Seed of this pass's masks.
        dropout_seed: u64,
    },
}

/// Which input-side gradients a backward pass should return besides the parameters'.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Wants {
    /// Gradient w.r.t. the dense inputs `[T, B, F]`.
    pub inputs: bool,
    /// Gradient w.r.t. the initial states.
    pub initial_states: bool,
}

/// Input-side gradients of a backward pass.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InputGrads<T> {
    /// `dL/dx` `[T, B, F]` (the encoded input for id encodings).
    pub inputs: Option<Vec<T>>,
    /// `dL/dstate_0` per layer.
    pub initial_states: Option<Vec<LayerState<T>>>,
}

/// A layer's `h` state and, for LSTMs, its `c` state.
type StatePair<Buf> = (Buf, Option<Buf>);

/// Device tensors of one forward/backward pass, reused while (T, B) stays the same.
struct Workspace<B: Backend> {
    seq: SeqShape,
    ids: Option<B::Tokens>,
    /// `xs[0]`: encoded input; `xs[k+1]`: layer k's output (after dropout).
    xs: Vec<B::Buffer>,
    caches: Vec<B::Buffer>,
    /// Final states per layer: `h`, and `c` for LSTMs.
    last: Vec<StatePair<B::Buffer>>,
    /// Initial states given to the last forward pass.
    init: Option<Vec<StatePair<B::Buffer>>>,
    /// Dropout applied to each layer's output in the last forward pass: probability and
    /// seed.
    dropout: Vec<Option<(f32, u64)>>,
    pooled: Option<B::Buffer>,
    logits: Option<B::Buffer>,
    dlogits: Option<B::Buffer>,
    loss: B::Buffer,
    /// Whether `dlogits` holds the gradient of the last `loss` call.
    have_dlogits: bool,
}

/// A network with its parameters and gradients on a backend.
pub struct Model<B: Backend> {
    backend: B,
    config: NetworkConfig,
    table: ParamTable,
    plan: ModelPlan,
    params: B::Buffer,
    grads: B::Buffer,
    ws: Option<Workspace<B>>,
}

impl<B: Backend> Model<B> {
    /// Builds a validated network with PyTorch-style initial parameters drawn from `seed`.
    pub fn new(backend: B, config: NetworkConfig, seed: u64) -> Result<Self, ConfigError> {
        config.validate()?;
        let (table, plan) = plan_network(&config);
        if let Some(limit) = backend.max_buffer_bytes() {
            let bytes = (table.total() * std::mem::size_of::<B::Scalar>()) as u64;
            if bytes > limit {
                return Err(ConfigError::TooLarge {
                    params: table.total(),
                    bytes,
                    limit,
                });
            }
        }
        let init: Vec<B::Scalar> = init_params(&config, &table, seed)
            .iter()
            .map(|&v| B::Scalar::of(v as f64))
            .collect();
        let params = backend.upload(&init);
        let grads = backend.zeros(table.total());
        Ok(Model {
            backend,
            config,
            table,
            plan,
            params,
            grads,
            ws: None,
        })
    }

    /// The network description.
    pub fn config(&self) -> &NetworkConfig {
        &self.config
    }
    /// Names, shapes and offsets of every parameter tensor.
    pub fn table(&self) -> &ParamTable {
        &self.table
    }
    /// The network as offsets into the parameter buffer.
    pub fn plan(&self) -> &ModelPlan {
        &self.plan
    }
    /// The backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }
    /// Gives the backend back (its device, compiled kernels and caches), dropping the model.
    pub fn into_backend(self) -> B {
        self.backend
    }
    /// The backend with the parameter and gradient buffers, for optimizer updates.
    pub fn parts_mut(&mut self) -> (&B, &mut B::Buffer, &mut B::Buffer) {
        (&self.backend, &mut self.params, &mut self.grads)
    }

    /// All parameters, flat, in table order.
    pub fn params(&self) -> Vec<B::Scalar> {
        self.backend.download(&self.params)
    }
    /// All accumulated gradients, flat, in table order.
    pub fn grads(&self) -> Vec<B::Scalar> {
        self.backend.download(&self.grads)
    }
    /// Replaces every parameter.
    pub fn set_params(&mut self, values: &[B::Scalar]) -> Result<(), InputError> {
        check_len(
            "parameters",
            values.len(),
            self.table.total(),
            "flat parameter table",
        )?;
        self.backend.write(&mut self.params, values);
        Ok(())
    }
    /// One named parameter tensor.
    pub fn param(&self, name: &str) -> Option<Vec<B::Scalar>> {
        let e = self.table.get(name)?;
        Some(self.params()[e.range()].to_vec())
    }
    /// Sets the gradients to zero (backward passes accumulate).
    pub fn zero_grads(&mut self) {
        self.backend.fill_zero(&mut self.grads);
    }

    /// Runs the network forward, keeping what the backward pass needs. `init` gives each
    /// layer's initial state (zeros when `None`).
    pub fn forward(
        &mut self,
        batch: &Batch<B::Scalar>,
        init: Option<&[LayerState<B::Scalar>]>,
        mode: Mode,
    ) -> Result<(), InputError> {
        let seq = &batch.seq;
        check_seq(seq)?;
        self.check_fits(seq)?;
        self.ensure_workspace(seq);
        let ws = self.ws.as_mut().expect("workspace just ensured");
        ws.seq = seq.clone();
        ws.have_dlogits = false;
        let be = &self.backend;
        let (nt, nb) = (seq.time, seq.batch());
        // Input encoding.
        match (&batch.inputs, &self.config.input) {
            (
                tokens @ (Inputs::Ids(_) | Inputs::Bags { .. }),
                enc @ (InputEncoding::Embedding { .. } | InputEncoding::OneHot { .. }),
            ) => {
                let bags = match tokens {
                    Inputs::Ids(ids) => {
                        check_len("token ids", ids.len(), nt * nb, &format!("[{nt}, {nb}]"))?;
                        TokenBags::singles(ids)
                    }
                    Inputs::Bags { offsets, ids } => check_bags(offsets, ids, seq)?,
                    Inputs::Dense(_) => unreachable!("matched above"),
                };
                let dev = be.upload_tokens(map_ids(bags, enc, seq)?);
                be.encode_forward(&self.plan.encode, &self.params, &dev, seq, &mut ws.xs[0]);
                ws.ids = Some(dev);
            }
            (Inputs::Dense(x), InputEncoding::Dense { features }) => {
                check_len(
                    "dense inputs",
                    x.len(),
                    nt * nb * features,
                    &format!("[{nt}, {nb}, {features}]"),
                )?;
                let masked = zero_padding(x, seq, *features);
                be.write(&mut ws.xs[0], &masked);
                ws.ids = None;
            }
            (Inputs::Ids(_) | Inputs::Bags { .. }, _) => {
                return Err(InputError::WrongKind(
                    "token ids given to a model with dense inputs".into(),
                ));
            }
            (Inputs::Dense(_), _) => {
                return Err(InputError::WrongKind(
                    "dense features given to a model that takes token ids".into(),
                ));
            }
        }
        // Initial states.
        ws.init = match init {
            None => None,
            Some(states) => Some(upload_states(be, &self.plan, states, nb)?),
        };
        // The recurrent stack.
        let dropout = (0..self.plan.layers.len())
            .map(|k| {
                let lp = &self.plan.layers[k];
                match mode {
                    Mode::Train { dropout_seed } if lp.dropout > 0.0 => {
                        Some((lp.dropout, dropout::layer_seed(dropout_seed, 0, k)))
                    }
                    _ => None,
                }
            })
            .collect::<Vec<_>>();
        be.stack_forward(StackForward {
            plans: &self.plan.layers,
            params: &self.params,
            seq,
            xs: &mut ws.xs,
            caches: &mut ws.caches,
            init: ws.init.as_ref().map(|s| {
                s.iter()
                    .map(|(h, c)| StateBufs { h, c: c.as_ref() })
                    .collect()
            }),
            last: ws
                .last
                .iter_mut()
                .map(|(h, c)| StateBufsMut { h, c: c.as_mut() })
                .collect(),
            dropout: dropout.clone(),
        });
        ws.dropout = dropout;
        // The head.
        let top = &ws.xs[self.plan.layers.len()];
        if let (Some(hp), Some(task)) = (&self.plan.head, &self.plan.task) {
            let logits = ws.logits.as_mut().expect("allocated with a head");
            match task {
                Task::Classification { pooling } => {
                    let pooled = ws.pooled.as_mut().expect("allocated for classification");
                    let top_plan = self
                        .plan
                        .layers
                        .last()
                        .expect("validated: at least one layer");
                    be.pool_forward(
                        *pooling,
                        top,
                        seq,
                        top_plan.directions(),
                        top_plan.output,
                        pooled,
                    );
                    be.head_forward(hp, &self.params, pooled, nb, None, logits);
                }
                _ => be.head_forward(hp, &self.params, top, nt * nb, Some(seq), logits),
            }
        }
        Ok(())
    }

    /// The model's outputs from the last forward pass: logits `[T, B, C]` (per-step tasks),
    /// `[B, C]` (classification), or the top layer's outputs `[T, B, D*out]` without a head.
    pub fn outputs(&self) -> Vec<B::Scalar> {
        let Some(ws) = &self.ws else {
            return Vec::new();
        };
        match &ws.logits {
            Some(l) => self.backend.download(l),
            None => self.backend.download(&ws.xs[self.plan.layers.len()]),
        }
    }

    /// Each layer's state at each sequence's own last step, from the last forward pass.
    pub fn final_states(&self) -> Vec<LayerState<B::Scalar>> {
        let Some(ws) = &self.ws else {
            return Vec::new();
        };
        ws.last
            .iter()
            .map(|(h, c)| LayerState {
                h: self.backend.download(h),
                c: c.as_ref().map(|c| self.backend.download(c)),
            })
            .collect()
    }

    /// The task loss of the last forward pass (mean over what counts); also prepares its
    /// gradient for `backward`.
    pub fn loss(&mut self, targets: &Targets<B::Scalar>) -> Result<B::Scalar, InputError> {
        self.record_loss(targets)?;
        self.last_loss()
    }

    /// Like [`Model::loss`] without reading the loss back: on the GPU the loss and its
    /// gradient are only recorded, so a training step never waits for the device. Read the
    /// value later with [`Model::last_loss`].
    pub fn record_loss(&mut self, targets: &Targets<B::Scalar>) -> Result<(), InputError> {
        let (Some(hp), Some(task)) = (&self.plan.head, &self.plan.task) else {
            return Err(InputError::WrongKind(
                "this model has no head, hence no loss; use backward_from".into(),
            ));
        };
        let Some(ws) = self.ws.as_mut() else {
            return Err(InputError::WrongKind("loss called before forward".into()));
        };
        let be = &self.backend;
        let seq = &ws.seq;
        let classes = hp.classes;
        let (nt, nb) = (seq.time, seq.batch());
        let plan = LossPlan {
            task: task.clone(),
            classes,
        };
        let logits = ws.logits.as_ref().expect("allocated with a head");
        let dlogits = ws.dlogits.as_mut().expect("allocated with a head");
        match (task, targets) {
            (Task::Regression, Targets::Values(v)) => {
                check_len(
                    "regression targets",
                    v.len(),
                    nt * nb * classes,
                    &format!("[{nt}, {nb}, {classes}]"),
                )?;
                let dev = be.upload(v);
                be.loss(
                    &plan,
                    logits,
                    TargetBufs::Values(&dev),
                    seq,
                    &mut ws.loss,
                    dlogits,
                );
            }
            (Task::Regression, Targets::Classes(_)) => {
                return Err(InputError::WrongKind(
                    "a regression head needs float targets".into(),
                ));
            }
            (_, Targets::Values(_)) => {
                return Err(InputError::WrongKind(
                    "a classification head needs class ids".into(),
                ));
            }
            (task, Targets::Classes(y)) => {
                let per_step = task.per_step();
                let n = if per_step { nt * nb } else { nb };
                let shape = if per_step {
                    format!("[{nt}, {nb}]")
                } else {
                    format!("[{nb}]")
                };
                check_len("targets", y.len(), n, &shape)?;
                let ignore = task.ignore_label();
                for (r, &c) in y.iter().enumerate() {
                    let counts = !per_step || seq.valid(r / nb, r % nb);
                    if counts && Some(c) != ignore && c as usize >= classes {
                        return Err(InputError::TargetOutOfRange {
                            target: c,
                            position: r,
                            classes,
                        });
                    }
                }
                let dev = be.upload_ids(y);
                be.loss(
                    &plan,
                    logits,
                    TargetBufs::Classes(&dev),
                    seq,
                    &mut ws.loss,
                    dlogits,
                );
            }
        }
        ws.have_dlogits = true;
        Ok(())
    }

    /// The buffer holding the last recorded loss (one scalar), for reading it back later.
    pub fn loss_buffer(&self) -> Option<&B::Buffer> {
        self.ws
            .as_ref()
            .filter(|ws| ws.have_dlogits)
            .map(|ws| &ws.loss)
    }

    /// The value of the last recorded loss (waits for the GPU).
    pub fn last_loss(&self) -> Result<B::Scalar, InputError> {
        match &self.ws {
            Some(ws) if ws.have_dlogits => Ok(self.backend.download(&ws.loss)[0]),
            _ => Err(InputError::WrongKind("no loss was computed yet".into())),
        }
    }

    /// Backpropagates the gradient of the last `loss` call, accumulating parameter
    /// gradients; returns the input-side gradients asked for.
    pub fn backward(&mut self, wants: Wants) -> Result<InputGrads<B::Scalar>, InputError> {
        match &self.ws {
            Some(ws) if ws.have_dlogits => {}
            _ => {
                return Err(InputError::WrongKind(
                    "backward needs forward and loss first".into(),
                ));
            }
        }
        self.backward_impl(None, None, wants)
    }

    /// Backpropagates a given gradient of the outputs (layout of `outputs()`) and,
    /// optionally, of the final states (layout of `final_states()`).
    pub fn backward_from(
        &mut self,
        doutputs: &[B::Scalar],
        dfinal: Option<&[LayerState<B::Scalar>]>,
        wants: Wants,
    ) -> Result<InputGrads<B::Scalar>, InputError> {
        let Some(ws) = &self.ws else {
            return Err(InputError::WrongKind(
                "backward_from called before forward".into(),
            ));
        };
        let want_len = match &ws.logits {
            Some(l) => self.backend.len(l),
            None => self.backend.len(&ws.xs[self.plan.layers.len()]),
        };
        check_len(
            "output gradient",
            doutputs.len(),
            want_len,
            "the layout of outputs()",
        )?;
        let nb = ws.seq.batch();
        let dfinal = match dfinal {
            None => None,
            Some(s) => Some(upload_states(&self.backend, &self.plan, s, nb)?),
        };
        let dout = self.backend.upload(doutputs);
        self.backward_impl(Some(dout), dfinal, wants)
    }

    fn backward_impl(
        &mut self,
        doutputs: Option<B::Buffer>,
        dfinal: Option<Vec<StatePair<B::Buffer>>>,
        wants: Wants,
    ) -> Result<InputGrads<B::Scalar>, InputError> {
        let ws = self.ws.as_mut().expect("checked by callers");
        let be = &self.backend;
        let seq = ws.seq.clone();
        let (nt, nb) = (seq.time, seq.batch());
        let nl = self.plan.layers.len();
        // Gradient w.r.t. the top layer's output: written whole by the head's backward (or
        // the pooling's), else the one given, else zero.
        let dy = match (&self.plan.head, &self.plan.task) {
            (Some(hp), Some(task)) => {
                let mut dy = be.for_output(be.len(&ws.xs[nl]));
                let dlogits = match &doutputs {
                    Some(d) => d,
                    None => ws.dlogits.as_ref().expect("allocated with a head"),
                };
                if let Task::Classification { pooling } = task {
                    let pooled = ws.pooled.as_ref().expect("allocated for classification");
                    let mut dpooled = be.for_output(be.len(pooled));
                    be.head_backward(
                        hp,
                        &self.params,
                        pooled,
                        nb,
                        None,
                        dlogits,
                        &mut self.grads,
                        &mut dpooled,
                    );
                    let top = self
                        .plan
                        .layers
                        .last()
                        .expect("validated: at least one layer");
                    be.pool_backward(
                        *pooling,
                        &dpooled,
                        &seq,
                        top.directions(),
                        top.output,
                        &mut dy,
                    );
                } else {
                    be.head_backward(
                        hp,
                        &self.params,
                        &ws.xs[nl],
                        nt * nb,
                        Some(&seq),
                        dlogits,
                        &mut self.grads,
                        &mut dy,
                    );
                }
                dy
            }
            _ => match doutputs {
                Some(d) => d,
                None => be.zeros(be.len(&ws.xs[nl])),
            },
        };
        // Down the stack.
        let mut dinit_all: Vec<StatePair<B::Buffer>> = match wants.initial_states {
            true => ws
                .last
                .iter()
                .map(|(h, c)| (be.zeros(be.len(h)), c.as_ref().map(|c| be.zeros(be.len(c)))))
                .collect(),
            false => Vec::new(),
        };
        let dx = be.stack_backward(StackBackward {
            plans: &self.plan.layers,
            params: &self.params,
            seq: &seq,
            xs: &ws.xs,
            caches: &ws.caches,
            dy,
            dlast: dfinal.as_ref().map(|s| {
                s.iter()
                    .map(|(h, c)| StateBufs { h, c: c.as_ref() })
                    .collect()
            }),
            grads: &mut self.grads,
            dinit: wants.initial_states.then(|| {
                dinit_all
                    .iter_mut()
                    .map(|(h, c)| StateBufsMut { h, c: c.as_mut() })
                    .collect()
            }),
            zero_init: ws.init.is_none(),
            dropout: ws.dropout.clone(),
            dx: wants.inputs || ws.ids.is_some() && self.plan.encode.table.is_some(),
        });
        // Into the embedding table.
        if let (Some(ids), Some(dx)) = (&ws.ids, &dx) {
            be.encode_backward(&self.plan.encode, ids, &seq, dx, &mut self.grads);
        }
        Ok(InputGrads {
            inputs: match (wants.inputs, &dx) {
                (true, Some(dx)) => Some(be.download(dx)),
                _ => None,
            },
            initial_states: wants.initial_states.then(|| {
                dinit_all
                    .iter()
                    .map(|(h, c)| LayerState {
                        h: be.download(h),
                        c: c.as_ref().map(|c| be.download(c)),
                    })
                    .collect()
            }),
        })
    }

    /// Refuses a batch of more sequences than the device's kernels take, or a batch shape
    /// whose per-layer buffers (cache, scratch, outputs) exceed what the device can bind in
    /// one buffer.
    fn check_fits(&self, seq: &SeqShape) -> Result<(), InputError> {
        if let Some(limit) = self.backend.max_sequences()
            && seq.batch() > limit
        {
            return Err(InputError::TooManySequences {
                batch: seq.batch(),
                limit,
            });
        }
        let Some(limit) = self.backend.max_buffer_bytes() else {
            return Ok(());
        };
        let scalar = std::mem::size_of::<B::Scalar>() as u64;
        let rows = seq.time * seq.batch();
        for (i, lp) in self.plan.layers.iter().enumerate() {
            for (what, bytes) in [
                ("cache", self.backend.layer_largest_bytes(lp, seq)),
                ("output", (rows * lp.output_width()) as u64 * scalar),
            ] {
                if bytes > limit {
                    return Err(InputError::TooLarge {
                        what: format!(
                            "layer {i}'s {what} for {} steps x {} sequences",
                            seq.time,
                            seq.batch()
                        ),
                        bytes,
                        limit,
                    });
                }
            }
        }
        Ok(())
    }

    /// Allocates the workspace unless one of the same (T, B) exists.
    fn ensure_workspace(&mut self, seq: &SeqShape) {
        if let Some(ws) = &self.ws
            && ws.seq.time == seq.time
            && ws.seq.batch() == seq.batch()
        {
            return;
        }
        let be = &self.backend;
        let (nt, nb) = (seq.time, seq.batch());
        let mut xs = vec![be.zeros(nt * nb * self.plan.encode.width)];
        xs.extend(be.layer_outputs(&self.plan.layers, seq));
        let caches = be.layer_caches(&self.plan.layers, seq);
        let mut last = Vec::new();
        for lp in &self.plan.layers {
            let c = lp.cell_state();
            last.push((
                be.zeros(lp.directions() * nb * lp.recurrent_input),
                (c > 0).then(|| be.zeros(lp.directions() * nb * c)),
            ));
        }
        let classification = matches!(self.plan.task, Some(Task::Classification { .. }));
        let top_width = self.config.stack_output_size();
        let logits_len = self.plan.head.as_ref().map(|h| {
            if classification {
                nb * h.classes
            } else {
                nt * nb * h.classes
            }
        });
        self.ws = Some(Workspace {
            seq: seq.clone(),
            ids: None,
            xs,
            caches,
            last,
            init: None,
            dropout: vec![None; self.plan.layers.len()],
            pooled: classification.then(|| be.zeros(nb * top_width)),
            logits: logits_len.map(|n| be.zeros(n)),
            dlogits: logits_len.map(|n| be.zeros(n)),
            loss: be.zeros(1),
            have_dlogits: false,
        });
    }
}

/// Checks that a batch has sequences and that every length is in `1..=T`.
pub fn check_seq(seq: &SeqShape) -> Result<(), InputError> {
    if seq.lengths.is_empty() {
        return Err(InputError::EmptyBatch);
    }
    for (index, &length) in seq.lengths.iter().enumerate() {
        if length == 0 || length > seq.time {
            return Err(InputError::BadLength {
                index,
                length,
                time: seq.time,
            });
        }
    }
    Ok(())
}

fn check_len(what: &str, got: usize, expected: usize, shape: &str) -> Result<(), InputError> {
    if got != expected {
        return Err(InputError::Shape {
            what: what.into(),
            expected,
            shape: shape.into(),
            got,
        });
    }
    Ok(())
}

/// Validates token ids over valid steps, maps unknown ids to the "other" slot where the
/// encoding has one, and sets padding ids to 0.
/// Checks the shape of token bags: `T * B + 1` non-decreasing offsets from 0 to `ids.len()`.
fn check_bags(offsets: &[u32], ids: &[u32], seq: &SeqShape) -> Result<TokenBags, InputError> {
    let (nt, nb) = (seq.time, seq.batch());
    check_len(
        "token bag offsets",
        offsets.len(),
        nt * nb + 1,
        &format!("[{nt} * {nb} + 1]"),
    )?;
    if offsets[0] != 0 || offsets[nt * nb] as usize != ids.len() {
        return Err(InputError::WrongKind(format!(
            "token bag offsets must run from 0 to the number of ids ({}), found {} to {}",
            ids.len(),
            offsets[0],
            offsets[nt * nb]
        )));
    }
    if let Some(r) = (0..nt * nb).find(|&r| offsets[r] > offsets[r + 1]) {
        return Err(InputError::WrongKind(format!(
            "token bag offsets decrease at step {} of sequence {} ({} > {})",
            r / nb,
            r % nb,
            offsets[r],
            offsets[r + 1]
        )));
    }
    Ok(TokenBags {
        offsets: offsets.to_vec(),
        ids: ids.to_vec(),
    })
}

/// Maps the ids of valid steps to the "other" slot where the encoding allows it (an error
/// naming the id and its position otherwise); ids of padding steps become 0.
fn map_ids(
    mut bags: TokenBags,
    enc: &InputEncoding,
    seq: &SeqShape,
) -> Result<TokenBags, InputError> {
    let (nt, nb) = (seq.time, seq.batch());
    let (vocab, unknown) = match *enc {
        InputEncoding::Embedding { vocab, unknown, .. }
        | InputEncoding::OneHot { vocab, unknown } => (vocab, unknown),
        InputEncoding::Dense { .. } => unreachable!("called for id encodings only"),
    };
    for t in 0..nt {
        for b in 0..nb {
            let r = t * nb + b;
            let (start, end) = (bags.offsets[r] as usize, bags.offsets[r + 1] as usize);
            for id in &mut bags.ids[start..end] {
                *id = if !seq.valid(t, b) {
                    0
                } else if (*id as usize) < vocab {
                    *id
                } else if unknown == UnknownTokens::Other {
                    vocab as u32
                } else {
                    return Err(InputError::TokenOutOfVocabulary {
                        id: *id,
                        step: t,
                        seq: b,
                        vocab,
                    });
                };
            }
        }
    }
    Ok(bags)
}

/// A copy of dense inputs with padding steps set to zero (nothing past a sequence's end may
/// influence anything).
fn zero_padding<T: Real>(x: &[T], seq: &SeqShape, f: usize) -> Vec<T> {
    let nb = seq.batch();
    let mut out = x.to_vec();
    for t in 0..seq.time {
        for b in (0..nb).filter(|&b| !seq.valid(t, b)) {
            out[(t * nb + b) * f..(t * nb + b + 1) * f].fill(T::zero());
        }
    }
    out
}

/// Uploads per-layer states after checking their shapes against the plan.
fn upload_states<B: Backend>(
    be: &B,
    plan: &ModelPlan,
    states: &[LayerState<B::Scalar>],
    nb: usize,
) -> Result<Vec<StatePair<B::Buffer>>, InputError> {
    check_len(
        "layer states",
        states.len(),
        plan.layers.len(),
        "one per layer",
    )?;
    let mut out = Vec::new();
    for (lp, s) in plan.layers.iter().zip(states) {
        let d = lp.directions();
        let k = lp.index;
        check_len(
            &format!("layer {k} state h"),
            s.h.len(),
            d * nb * lp.recurrent_input,
            &format!("[{d}, {nb}, {}]", lp.recurrent_input),
        )?;
        let c = lp.cell_state();
        let cbuf = match (&s.c, c) {
            (Some(cv), c) if c > 0 => {
                check_len(
                    &format!("layer {k} state c"),
                    cv.len(),
                    d * nb * c,
                    &format!("[{d}, {nb}, {c}]"),
                )?;
                Some(be.upload(cv))
            }
            (None, c) if c > 0 => Some(be.zeros(d * nb * c)),
            (Some(_), _) => {
                return Err(InputError::WrongKind(format!(
                    "layer {k} has no cell state, but one was given"
                )));
            }
            (None, _) => None,
        };
        out.push((be.upload(&s.h), cbuf));
    }
    Ok(out)
}
