//! The network description: input encoding, a stack of recurrent layers, a head and its loss.
//!
//! Everything here is plain data (serde), so a network can be written in TOML and checked
//! before any memory is allocated. `NetworkConfig::validate` names the first field that is wrong.

use serde::{Deserialize, Serialize};

use crate::error::ConfigError;

/// A whole network: how tokens or features enter, the recurrent stack, and the head.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    /// How each time step's input becomes a vector.
    pub input: InputEncoding,
    /// The recurrent layers, bottom first. At least one.
    pub layers: Vec<LayerConfig>,
    /// The linear head and the task it serves; `None` makes the model a bare recurrent stack
    /// whose outputs are the top layer's outputs (like `torch.nn.LSTM`).
    #[serde(default)]
    pub head: Option<HeadConfig>,
}

/// What to do with a token id that is not in the vocabulary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnknownTokens {
    /// An id `>= vocab` is an error naming the id and its position.
    Error,
    /// An extra "other" row/slot (index `vocab`) stands for every id `>= vocab`.
    Other,
}

/// How the input at each time step becomes a vector of floats.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum InputEncoding {
    /// Token ids looked up in a trainable table `embedding.weight` of shape `[rows, dim]`,
    /// `rows = vocab + 1` when unknown ids map to "other", else `vocab`.
    Embedding {
        /// Number of known token ids (`0..vocab`).
        vocab: usize,
        /// Width of each embedding vector.
        dim: usize,
        /// Policy for ids `>= vocab`; default: error.
        #[serde(default = "unknown_error")]
        unknown: UnknownTokens,
    },
    /// Token ids as 1-of-N vectors; with `unknown = "other"` (the default) the vector has an
    /// extra last slot that is hot for every id `>= vocab`.
    OneHot {
        /// Number of known token ids (`0..vocab`).
        vocab: usize,
        /// Policy for ids `>= vocab`; default: the "other" slot.
        #[serde(default = "unknown_other")]
        unknown: UnknownTokens,
    },
    /// Dense float features, `features` per step.
    Dense {
        /// Number of features per time step.
        features: usize,
    },
}

fn unknown_error() -> UnknownTokens {
    UnknownTokens::Error
}
fn unknown_other() -> UnknownTokens {
    UnknownTokens::Other
}
fn yes() -> bool {
    true
}

impl InputEncoding {
    /// Width of the vector fed to the first recurrent layer.
    pub fn width(&self) -> usize {
        match *self {
            InputEncoding::Embedding { dim, .. } => dim,
            InputEncoding::OneHot { vocab, unknown } => {
                vocab + (unknown == UnknownTokens::Other) as usize
            }
            InputEncoding::Dense { features } => features,
        }
    }

    /// Whether inputs are token ids (as opposed to dense features).
    pub fn takes_ids(&self) -> bool {
        !matches!(self, InputEncoding::Dense { .. })
    }
}

/// An element-wise activation used by the cells.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// `tanh(x)`.
    Tanh,
    /// `max(x, 0)`.
    Relu,
    /// `x`.
    Linear,
    /// `1 / (1 + exp(-x))`.
    Sigmoid,
}

/// What a Jordan layer feeds back: the head's output after softmax, or the raw linear output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JordanFeedback {
    /// `softmax(W_head h + b_head)` of the previous step.
    Softmax,
    /// `W_head h + b_head` of the previous step.
    Linear,
}

/// Where a GRU applies its reset gate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GruVariant {
    /// PyTorch / cuDNN: `n = tanh(W_in x + b_in + r * (W_hn h + b_hn))`.
    Pytorch,
    /// Cho et al. 2014: `n = tanh(W_in x + b_in + W_hn (r * h) + b_hn)`.
    ResetBefore,
}

/// The recurrent cell of a layer and its options.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum CellConfig {
    /// Elman: `h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)`, like `torch.nn.RNN`.
    Elman {
        /// `tanh` (default), `relu` or `linear`.
        #[serde(default = "tanh")]
        activation: Activation,
    },
    /// Jordan: like Elman, but the previous step's head output is fed back instead of the
    /// hidden state: `h_t = act(W_ih x_t + b_ih + W_hh y_{t-1} + b_hh)`,
    /// `y_t = feedback(W_head h_t + b_head)`. Only as the top layer, unidirectional, with a head.
    Jordan {
        /// `tanh` (default), `relu` or `linear`.
        #[serde(default = "tanh")]
        activation: Activation,
        /// What is fed back; default softmax.
        #[serde(default = "softmax_feedback")]
        feedback: JordanFeedback,
    },
    /// LSTM with PyTorch's equations and gate order i, f, g, o.
    Lstm {
        /// Gate activation (i, f, o); default sigmoid.
        #[serde(default = "sigmoid")]
        gate: Activation,
        /// Cell-input activation (g); default tanh.
        #[serde(default = "tanh")]
        cell: Activation,
        /// Activation of the cell state before the output gate; default tanh.
        #[serde(default = "tanh")]
        hidden: Activation,
        /// Peephole connections: `c_{t-1}` feeds i and f, `c_t` feeds o, through diagonal
        /// weights `peephole_l{k}` of shape `[3, hidden]` (rows i, f, o).
        #[serde(default)]
        peephole: bool,
        /// Projection size (LSTMP, PyTorch `proj_size`): `h_t = W_hr (o * act(c_t))`.
        #[serde(default)]
        proj: Option<usize>,
        /// Initial value of both forget-gate biases (`b_ih` and `b_hh` rows H..2H);
        /// `None` keeps PyTorch's uniform init.
        #[serde(default)]
        forget_bias: Option<f32>,
    },
    /// GRU with gate order r, z, n.
    Gru {
        /// Where the reset gate applies; default PyTorch's.
        #[serde(default = "pytorch_gru")]
        variant: GruVariant,
    },
}

fn tanh() -> Activation {
    Activation::Tanh
}
fn sigmoid() -> Activation {
    Activation::Sigmoid
}
fn softmax_feedback() -> JordanFeedback {
    JordanFeedback::Softmax
}
fn pytorch_gru() -> GruVariant {
    GruVariant::Pytorch
}

impl CellConfig {
    /// An LSTM cell as `torch.nn.LSTM` computes it (sigmoid gates, tanh cell and output
    /// activations, no forget-gate bias), with optional peepholes and output projection.
    pub fn lstm(peephole: bool, proj: Option<usize>) -> Self {
        CellConfig::Lstm {
            gate: Activation::Sigmoid,
            cell: Activation::Tanh,
            hidden: Activation::Tanh,
            peephole,
            proj,
            forget_bias: None,
        }
    }

    /// Number of gate blocks stacked in `weight_ih` (4 for LSTM, 3 for GRU, 1 otherwise).
    pub fn gates(&self) -> usize {
        match self {
            CellConfig::Lstm { .. } => 4,
            CellConfig::Gru { .. } => 3,
            CellConfig::Elman { .. } | CellConfig::Jordan { .. } => 1,
        }
    }

    /// Short name used in messages and benchmark output.
    pub fn name(&self) -> &'static str {
        match self {
            CellConfig::Elman { .. } => "elman",
            CellConfig::Jordan { .. } => "jordan",
            CellConfig::Lstm { .. } => "lstm",
            CellConfig::Gru { .. } => "gru",
        }
    }
}

/// One recurrent layer of the stack.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerConfig {
    /// The cell and its options.
    pub cell: CellConfig,
    /// Hidden size H (the cell-state size for an LSTM with projection).
    pub hidden: usize,
    /// Run a second, reversed direction and concatenate `[forward, backward]` outputs.
    #[serde(default)]
    pub bidirectional: bool,
    /// Dropout probability applied to this layer's output before the next layer (training
    /// only). Must be 0 on the top layer.
    #[serde(default)]
    pub dropout: f32,
    /// `false` removes the recurrence: `weight_hh` is zero and stays zero, so each step sees
    /// only its own input. Used to show that a task needs memory.
    #[serde(default = "yes")]
    pub recurrent: bool,
}

impl LayerConfig {
    /// Width of one direction's output `h_t` (the projection size for LSTMP).
    pub fn output_size(&self) -> usize {
        match self.cell {
            CellConfig::Lstm { proj: Some(p), .. } => p,
            _ => self.hidden,
        }
    }

    /// Number of directions (1 or 2).
    pub fn directions(&self) -> usize {
        if self.bidirectional { 2 } else { 1 }
    }
}

/// How a sequence classifier reduces the top layer's outputs to one vector per sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// The output at each sequence's own last step (for a bidirectional layer: the forward
    /// half at the last step and the backward half at step 0, both directions' ends).
    Last,
    /// The mean of the outputs over each sequence's valid steps.
    Mean,
}

/// The task a head serves; it fixes the loss and how targets are laid out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Task {
    /// Per-step classification (tagging, many-to-many); softmax cross-entropy averaged over
    /// valid steps whose label is not `ignore_label`. Targets: `[T, B]` class ids.
    Tagging {
        /// A label that contributes no loss (e.g. padding or "don't care").
        #[serde(default)]
        ignore_label: Option<u32>,
    },
    /// Next-token language modelling: per-step cross-entropy against the next token id.
    /// Targets: `[T, B]` ids (the inputs shifted by one, built by the data side).
    LanguageModel,
    /// One label per sequence (many-to-one) from pooled outputs; cross-entropy. Targets: `[B]`.
    Classification {
        /// How the outputs are pooled; default last.
        #[serde(default = "pool_last")]
        pooling: Pooling,
    },
    /// Per-step regression; mean squared error over valid steps and outputs.
    /// Targets: `[T, B, classes]` floats.
    Regression,
}

fn pool_last() -> Pooling {
    Pooling::Last
}

impl Task {
    /// The label whose steps contribute no loss, if any.
    pub fn ignore_label(&self) -> Option<u32> {
        match self {
            Task::Tagging { ignore_label } => *ignore_label,
            _ => None,
        }
    }

    /// Whether the head applies at every step (as opposed to once per sequence).
    pub fn per_step(&self) -> bool {
        !matches!(self, Task::Classification { .. })
    }
}

/// The linear head on top of the stack.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadConfig {
    /// Number of outputs (classes, vocabulary size, or regression targets).
    pub classes: usize,
    /// The task and its loss.
    pub task: Task,
}

impl NetworkConfig {
    /// Checks sizes and combinations, naming the first offending field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field: String, why: &str| {
            Err(ConfigError::Invalid {
                field,
                why: why.into(),
            })
        };
        match self.input {
            InputEncoding::Embedding { vocab, dim, .. } => {
                if vocab == 0 {
                    return bad("input.vocab".into(), "must be at least 1");
                }
                if dim == 0 {
                    return bad("input.dim".into(), "must be at least 1");
                }
            }
            InputEncoding::OneHot { vocab, .. } => {
                if vocab == 0 {
                    return bad("input.vocab".into(), "must be at least 1");
                }
            }
            InputEncoding::Dense { features } => {
                if features == 0 {
                    return bad("input.features".into(), "must be at least 1");
                }
            }
        }
        if self.layers.is_empty() {
            return bad("layers".into(), "need at least one recurrent layer");
        }
        let top = self.layers.len() - 1;
        for (k, l) in self.layers.iter().enumerate() {
            let f = |name: &str| format!("layers[{k}].{name}");
            if l.hidden == 0 {
                return bad(f("hidden"), "must be at least 1");
            }
            if !(0.0..1.0).contains(&l.dropout) {
                return bad(f("dropout"), "must be in [0, 1)");
            }
            if l.dropout > 0.0 && k == top {
                return bad(
                    f("dropout"),
                    "dropout applies between layers; the top layer has none",
                );
            }
            match &l.cell {
                CellConfig::Elman { activation } | CellConfig::Jordan { activation, .. } => {
                    if *activation == Activation::Sigmoid {
                        return bad(f("cell.activation"), "must be tanh, relu or linear");
                    }
                }
                CellConfig::Lstm { proj: Some(p), .. } if *p == 0 || *p >= l.hidden => {
                    return bad(f("cell.proj"), "must be in 1..hidden (PyTorch's rule)");
                }
                CellConfig::Lstm { .. } => {}
                CellConfig::Gru { .. } => {}
            }
            if let CellConfig::Jordan { .. } = l.cell {
                if k != top {
                    return bad(
                        f("cell"),
                        "a Jordan layer feeds back the head's output, so it must be the top layer",
                    );
                }
                if l.bidirectional {
                    return bad(f("bidirectional"), "a Jordan layer is unidirectional");
                }
                match &self.head {
                    None => return bad(f("cell"), "a Jordan layer needs a head to feed back"),
                    Some(h) if !h.task.per_step() => {
                        return bad(
                            f("cell"),
                            "a Jordan layer needs a per-step head (not classification)",
                        );
                    }
                    _ => {}
                }
            }
        }
        if let Some(h) = &self.head
            && h.classes == 0
        {
            return bad("head.classes".into(), "must be at least 1");
        }
        Ok(())
    }

    /// Width of one step of the top layer's output (both directions).
    pub fn stack_output_size(&self) -> usize {
        self.layers
            .last()
            .map_or(0, |l| l.output_size() * l.directions())
    }

    /// Parses a TOML network description and validates it.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let cfg: NetworkConfig =
            toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }
}
