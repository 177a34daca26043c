//! All parameters of a model live in one flat array; this module names its pieces.
//!
//! `ParamTable` lists every tensor with its PyTorch name, shape and offset, so checkpoints,
//! clipping and optimizers walk one table, and kernels receive offsets into one buffer.
//! `ModelPlan` is the same information arranged for the forward and backward passes.

use rand::SeedableRng;
use rand::distr::{Distribution, Uniform};
use rand::rngs::ChaCha8Rng;
use rand_distr::StandardNormal;

use crate::config::{CellConfig, InputEncoding, LayerConfig, NetworkConfig, Task};

/// One named tensor inside the flat parameter array.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamEntry {
    /// PyTorch-style name, e.g. `rnn.weight_ih_l0_reverse`.
    pub name: String,
    /// Row-major shape.
    pub shape: Vec<usize>,
    /// First element in the flat array.
    pub offset: usize,
}

impl ParamEntry {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The element range of this tensor in the flat array.
    pub fn range(&self) -> std::ops::Range<usize> {
        self.offset..self.offset + self.len()
    }
}

/// The ordered list of a model's parameter tensors.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ParamTable {
    entries: Vec<ParamEntry>,
    total: usize,
}

impl ParamTable {
    /// Appends a tensor and returns its offset.
    fn push(&mut self, name: String, shape: Vec<usize>) -> usize {
        let offset = self.total;
        let entry = ParamEntry {
            name,
            shape,
            offset,
        };
        self.total += entry.len();
        self.entries.push(entry);
        offset
    }

    /// Every tensor, in layout order.
    pub fn entries(&self) -> &[ParamEntry] {
        &self.entries
    }

    /// The tensor with this name.
    pub fn get(&self, name: &str) -> Option<&ParamEntry> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// Total number of scalars.
    pub fn total(&self) -> usize {
        self.total
    }
}

/// Prefix of the recurrent stack's tensors inside a model (as a `torch.nn.Module` holding
/// `self.rnn = nn.LSTM(...)` names them).
pub const RNN_PREFIX: &str = "rnn.";

/// Offsets of one direction's tensors of one layer.
#[derive(Clone, Debug, PartialEq)]
pub struct DirOffsets {
    /// `weight_ih`: `[G*H, I]`.
    pub w_ih: usize,
    /// `weight_hh`: `[G*H, R]`, R = recurrent input width.
    pub w_hh: usize,
    /// `bias_ih`: `[G*H]`.
    pub b_ih: usize,
    /// `bias_hh`: `[G*H]`.
    pub b_hh: usize,
    /// `weight_hr` (LSTMP): `[P, H]`.
    pub w_hr: Option<usize>,
    /// `peephole` (LSTM): `[3, H]`, rows i, f, o.
    pub peephole: Option<usize>,
}

/// Offsets and sizes of the linear head: `logits = W x + b`.
#[derive(Clone, Debug, PartialEq)]
pub struct HeadPlan {
    /// `head.weight`: `[classes, input]`.
    pub w: usize,
    /// `head.bias`: `[classes]`.
    pub b: usize,
    /// Input width (the stack's output width).
    pub input: usize,
    /// Output width.
    pub classes: usize,
}

/// Everything a backend needs to run one recurrent layer.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerPlan {
    /// Position in the stack (0 = bottom).
    pub index: usize,
    /// The cell and its options.
    pub cell: CellConfig,
    /// Input width I.
    pub input: usize,
    /// Hidden (cell) size H.
    pub hidden: usize,
    /// Width of one direction's output h_t (P for LSTMP, else H).
    pub output: usize,
    /// Width of the recurrent input fed back each step (the output, or the head's classes
    /// for a Jordan layer).
    pub recurrent_input: usize,
    /// Gate blocks G (4 LSTM, 3 GRU, 1 Elman/Jordan).
    pub gates: usize,
    /// Offsets per direction (forward first).
    pub dirs: Vec<DirOffsets>,
    /// `false`: `weight_hh` is not used (zero), no step sees the previous state.
    pub recurrent: bool,
    /// Dropout probability on this layer's output (training only).
    pub dropout: f32,
    /// For a Jordan layer: the head whose output is fed back.
    pub feedback_head: Option<HeadPlan>,
}

impl LayerPlan {
    /// Number of directions.
    pub fn directions(&self) -> usize {
        self.dirs.len()
    }

    /// Width of one time step of this layer's output, all directions.
    pub fn output_width(&self) -> usize {
        self.output * self.dirs.len()
    }

    /// Width of the cell state c (LSTM only; 0 for cells without one).
    pub fn cell_state(&self) -> usize {
        match self.cell {
            CellConfig::Lstm { .. } => self.hidden,
            _ => 0,
        }
    }
}

/// Where the input encoding's table lives.
#[derive(Clone, Debug, PartialEq)]
pub struct EncodePlan {
    /// The encoding.
    pub encoding: InputEncoding,
    /// Offset of `embedding.weight` for an embedding.
    pub table: Option<usize>,
    /// Width of one encoded step.
    pub width: usize,
}

/// The whole model as offsets into one parameter array.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelPlan {
    /// The input encoding.
    pub encode: EncodePlan,
    /// The recurrent layers, bottom first.
    pub layers: Vec<LayerPlan>,
    /// The head, if the model has one.
    pub head: Option<HeadPlan>,
    /// The head's task.
    pub task: Option<Task>,
}

/// Builds the parameter table and plan of a (validated) network.
pub fn plan_network(cfg: &NetworkConfig) -> (ParamTable, ModelPlan) {
    let mut t = ParamTable::default();
    let table = match cfg.input {
        InputEncoding::Embedding { .. } => {
            let rows = embedding_rows(&cfg.input);
            Some(t.push("embedding.weight".into(), vec![rows, cfg.input.width()]))
        }
        _ => None,
    };
    let encode = EncodePlan {
        encoding: cfg.input.clone(),
        table,
        width: cfg.input.width(),
    };
    let classes = cfg.head.as_ref().map_or(0, |h| h.classes);
    let mut input = cfg.input.width();
    let mut layers = Vec::new();
    for (k, l) in cfg.layers.iter().enumerate() {
        let plan = plan_layer(&mut t, k, l, input, classes);
        input = plan.output_width();
        layers.push(plan);
    }
    let head = cfg.head.as_ref().map(|h| {
        let w = t.push("head.weight".into(), vec![h.classes, input]);
        let b = t.push("head.bias".into(), vec![h.classes]);
        HeadPlan {
            w,
            b,
            input,
            classes: h.classes,
        }
    });
    // A Jordan layer (always the top one) feeds back through the head.
    if let (Some(h), Some(top)) = (&head, layers.last_mut())
        && matches!(top.cell, CellConfig::Jordan { .. })
    {
        top.feedback_head = Some(h.clone());
    }
    let task = cfg.head.as_ref().map(|h| h.task.clone());
    (
        t,
        ModelPlan {
            encode,
            layers,
            head,
            task,
        },
    )
}

/// Rows of the embedding table (vocab, plus the "other" row where unknown ids map to it).
pub fn embedding_rows(enc: &InputEncoding) -> usize {
    match *enc {
        InputEncoding::Embedding { vocab, unknown, .. } => {
            vocab + (unknown == crate::config::UnknownTokens::Other) as usize
        }
        _ => 0,
    }
}

fn plan_layer(
    t: &mut ParamTable,
    k: usize,
    l: &LayerConfig,
    input: usize,
    classes: usize,
) -> LayerPlan {
    let h = l.hidden;
    let g = l.cell.gates();
    let output = l.output_size();
    let recurrent_input = match l.cell {
        CellConfig::Jordan { .. } => classes,
        _ => output,
    };
    let (proj, peephole) = match l.cell {
        CellConfig::Lstm { proj, peephole, .. } => (proj, peephole),
        _ => (None, false),
    };
    let mut dirs = Vec::new();
    for d in 0..l.directions() {
        let sfx = if d == 0 {
            format!("l{k}")
        } else {
            format!("l{k}_reverse")
        };
        let name = |base: &str| format!("{RNN_PREFIX}{base}_{sfx}");
        let w_ih = t.push(name("weight_ih"), vec![g * h, input]);
        let w_hh = t.push(name("weight_hh"), vec![g * h, recurrent_input]);
        let b_ih = t.push(name("bias_ih"), vec![g * h]);
        let b_hh = t.push(name("bias_hh"), vec![g * h]);
        let w_hr = proj.map(|p| t.push(name("weight_hr"), vec![p, h]));
        let peephole = peephole.then(|| t.push(name("peephole"), vec![3, h]));
        dirs.push(DirOffsets {
            w_ih,
            w_hh,
            b_ih,
            b_hh,
            w_hr,
            peephole,
        });
    }
    LayerPlan {
        index: k,
        cell: l.cell.clone(),
        input,
        hidden: h,
        output,
        recurrent_input,
        gates: g,
        dirs,
        recurrent: l.recurrent,
        dropout: l.dropout,
        feedback_head: None,
    }
}

/// Draws initial parameters the way PyTorch does, from a seed.
///
/// Recurrent tensors: `U(-1/sqrt(H), 1/sqrt(H))` (nn.RNN/LSTM/GRU); the embedding: `N(0, 1)`
/// (nn.Embedding); the head: `U(-1/sqrt(in), 1/sqrt(in))` for weight and bias (nn.Linear).
/// An LSTM `forget_bias` sets `bias_ih`'s forget rows to that value and `bias_hh`'s to 0, so
/// the effective forget bias is exactly the configured one. A non-recurrent layer's
/// `weight_hh` is zero. Tensors are drawn in table order, so a seed fixes every value.
pub fn init_params(cfg: &NetworkConfig, table: &ParamTable, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut p = vec![0f32; table.total()];
    for e in table.entries() {
        let slot = &mut p[e.range()];
        if e.name == "embedding.weight" {
            for v in slot.iter_mut() {
                *v = StandardNormal.sample(&mut rng);
            }
            continue;
        }
        let bound = if let Some(rest) = e.name.strip_prefix(RNN_PREFIX) {
            let k = layer_index(rest);
            1.0 / (cfg.layers[k].hidden as f32).sqrt()
        } else {
            // head.weight / head.bias: fan_in is the head's input width.
            let fan_in = table.get("head.weight").map_or(1, |w| w.shape[1]);
            1.0 / (fan_in as f32).sqrt()
        };
        let u = Uniform::new_inclusive(-bound, bound).expect("finite positive bound");
        for v in slot.iter_mut() {
            *v = u.sample(&mut rng);
        }
    }
    // Overrides that do not consume randomness (so they do not shift other tensors' draws).
    for (k, l) in cfg.layers.iter().enumerate() {
        for d in 0..l.directions() {
            let sfx = if d == 0 {
                format!("l{k}")
            } else {
                format!("l{k}_reverse")
            };
            let get = |base: &str| table.get(&format!("{RNN_PREFIX}{base}_{sfx}"));
            if !l.recurrent
                && let Some(e) = get("weight_hh")
            {
                p[e.range()].fill(0.0);
            }
            if let CellConfig::Lstm {
                forget_bias: Some(fb),
                ..
            } = l.cell
            {
                let h = l.hidden;
                if let (Some(bi), Some(bh)) = (get("bias_ih"), get("bias_hh")) {
                    p[bi.offset + h..bi.offset + 2 * h].fill(fb);
                    p[bh.offset + h..bh.offset + 2 * h].fill(0.0);
                }
            }
        }
    }
    p
}

/// The layer index `k` of a recurrent tensor name like `weight_ih_l3_reverse`.
fn layer_index(name: &str) -> usize {
    let after = name.rsplit_once("_l").map_or("0", |(_, r)| r);
    let digits: String = after.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().unwrap_or(0)
}
