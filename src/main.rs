//! The `wgrnn` command line.
//!
//! - `wgrnn devices` lists the GPU adapters wgpu finds;
//! - `wgrnn train` trains a language model, tagger or classifier on bundled or given data
//!   into a run directory (checkpoints, metrics, plot); `eval`, `generate`, `tag` and
//!   `classify` use such a run;
//! - `wgrnn check` runs one network on the CPU reference and on the GPU and compares every
//!   output, gradient and update;
//! - `wgrnn bench` times training steps in the units of the PyTorch reference benchmark.

use std::io::Write;
use std::path::PathBuf;

mod cli;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};

use wgrnn::backend::wgpu::device;
use wgrnn::backend::wgpu::gemm::GemmTiles;
use wgrnn::backend::wgpu::runtime;
use wgrnn::backend::wgpu::{GpuError, Precision, SliceChoice, Tuning, autotune};
use wgrnn::bench::{self, BenchConfig, RnnKind};
use wgrnn::check::{self, CheckCell, CheckGruVariant, CheckSpec, CheckTask, NetworkFlags};
use wgrnn::{CpuBackend, NetworkConfig, WgpuBackend};
use wgrnn::{out, outln, products, report, tune};

/// Recurrent networks (Elman, Jordan, LSTM, GRU) trained through wgpu, checked against a CPU
/// reference.
#[derive(Parser)]
#[command(name = "wgrnn", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List every GPU adapter wgpu finds, with the limits that matter to the kernels.
    ///
    /// The index shown is what `--adapter INDEX` refers to. Exits non-zero, with an install
    /// hint, when there is none.
    ///
    /// Example: `wgrnn devices`
    Devices,
    /// Train a model into a run directory (no arguments: a character LM on bundled text).
    ///
    /// With no arguments: a character LSTM language model on the bundled fortunes (a few
    /// minutes on two CPU cores), showing loss, validation bits per character and a sample
    /// after each epoch.
    ///
    /// Settings come from the task's defaults, then --config FILE.toml, then flags. The run
    /// directory (default runs/<task>-<n>) gets config.toml, the vocabulary, checkpoints with
    /// weights (safetensors, PyTorch names) and optimizer state, metrics.csv, steps.csv and
    /// plot.svg. Ctrl-C stops after the current step and saves; --resume DIR continues
    /// exactly.
    ///
    /// Examples:
    ///   wgrnn train
    ///   wgrnn train --task slots --epochs 5
    ///   wgrnn train --task tag --data train.conll --valid dev.conll --bidirectional --hidden 128
    ///   wgrnn train --task classify --data reviews.tsv --valid-fraction 0.1 --encoding trigram
    ///   wgrnn train --task lm --tokens words --data corpus.txt --embeddings glove.txt --freeze-embeddings
    ///   wgrnn train --resume runs/lm-1 --epochs 10
    #[command(verbatim_doc_comment)]
    Train(Box<cli::train::TrainArgs>),
    /// Score a trained run on its validation data or on a file.
    ///
    /// Loss, and perplexity / bits per character, token accuracy and span F1, or accuracy.
    ///
    /// Examples:
    ///   wgrnn eval --run runs/lm-1
    ///   wgrnn eval --run runs/tag-1 --data test.conll --json
    #[command(verbatim_doc_comment)]
    Eval(cli::use_model::EvalArgs),
    /// Sample text from a trained language model.
    ///
    /// Examples:
    ///   wgrnn generate --run runs/lm-1 --prompt "The computer" --length 200
    ///   wgrnn generate --run runs/lm-1 --temperature 0.5 --top-k 5 --seed 3
    #[command(verbatim_doc_comment)]
    Generate(cli::use_model::GenerateArgs),
    /// Tag the words of texts with a trained tagger.
    ///
    /// Prints `word TAB tag` lines, a blank line after each text (or `word/TAG` with
    /// --inline).
    ///
    /// Examples:
    ///   wgrnn tag --run runs/tag-1 --text "arrive in taipei on november 2nd"
    ///   wgrnn tag --run runs/tag-1 --inline < sentences.txt
    #[command(verbatim_doc_comment)]
    Tag(cli::use_model::TextArgs),
    /// Classify texts with a trained classifier.
    ///
    /// Prints `label TAB probability TAB text` per text.
    ///
    /// Examples:
    ///   wgrnn classify --run runs/classify-1 --text "a gorgeous, witty film"
    ///   wgrnn classify --run runs/classify-1 --input reviews.txt
    #[command(verbatim_doc_comment)]
    Classify(cli::use_model::TextArgs),
    /// Run one network on the CPU reference (f32) and on the GPU with identical parameters,
    /// inputs, initial states and targets, and compare every tensor.
    ///
    /// Compared: outputs, each layer's final states and the loss (forward tolerance), every
    /// named parameter gradient, the input gradient and the initial-state gradients, then the
    /// loss of each of `--steps` Adam steps and every parameter after them (gradient
    /// tolerance). A tensor passes when its max absolute error or its max relative error
    /// (max|gpu-cpu| / max|cpu|) is within the tolerance. Exits non-zero when any fails, so
    /// CI can run it. Each backend first runs a pass of the same shape with every parameter
    /// NaN, so a kernel that reads what it did not write (or a padding row it should have
    /// cleared) shows as NaN in the compared pass.
    ///
    /// Examples: `wgrnn check --cell lstm --peephole --proj 3 --layers 2 --hidden 6 --lengths 7,1,4`;
    /// `wgrnn check --config net.toml --lengths 5,3 --steps 5`
    Check(CheckArgs),
    /// Time training steps (forward, loss, backward through the stack, Adam) and forward
    /// passes of one configuration or a suite; JSON lines compare one to one with
    /// shared/device/torch_rnn_bench.py.
    ///
    /// TFLOP/s count the gate matrix products only, 3x the forward for a step, exactly as the
    /// PyTorch script counts them. wgrnn's step also runs a 1-output head, an MSE loss and Adam,
    /// which PyTorch's (forward + y.sum().backward()) does not. peak_mem_mb is the most GPU
    /// memory held during the timed steps on top of parameters, gradients and optimizer state
    /// (activations, caches, temporaries and the buffers kept for reuse). Where the adapter has
    /// timestamp queries, a per-kernel table follows (calls, ms per step, share, GFLOP/s,
    /// GB/s), measured on --profile-steps extra steps.
    ///
    /// Examples: `wgrnn bench --cell lstm --layers 4 --hidden 1024 --input 1024 --batch 64 --seq 100`;
    /// `wgrnn bench --suite shared/device/suite.tsv --json wgrnn.jsonl`
    Bench(BenchArgs),
    /// Make BENCHMARKS.md's suite table from the JSON lines of a device run: our step times
    /// against cuDNN fp32 and tf32 (ratios, the target, whether it is met), peak
    /// memory of both, a column per alternative kernel choice, and optionally the per-kernel
    /// breakdown of one configuration with its roofline shares.
    ///
    /// Example: `wgrnn report --ours wgrnn.jsonl --torch torch.jsonl --variant
    /// blocked=wgrnn-blocked.jsonl --kernels flagship --roofline 67,3350`
    Report(ReportArgs),
}

/// Where the computation runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum DeviceChoice {
    /// The wgpu backend (fails when no adapter opens).
    Gpu,
    /// The CPU reference backend (f32).
    Cpu,
    /// The GPU if a hardware adapter opens (or the one named by --adapter / WGRNN_ADAPTER),
    /// else the CPU with a one-line notice.
    Auto,
}

impl Chosen {
    /// Applies `--precision`: the GPU's cache storage; f16 on the CPU is refused.
    pub(crate) fn set_precision(&mut self, p: Precision) -> Result<()> {
        match (self, p) {
            (Chosen::Gpu(be), p) => Ok(be.set_precision(p)?),
            (Chosen::Cpu(_), Precision::F32) => Ok(()),
            (Chosen::Cpu(_), Precision::F16) => bail!(
                "--precision f16 stores the GPU's layer caches in f16; the CPU backend computes \
                 and stores in f32 only (use --device gpu)"
            ),
        }
    }
}

#[derive(clap::Args)]
struct CheckArgs {
    #[command(flatten)]
    kernels: KernelFlags,
    /// How the GPU stores the layer caches: f32, or f16 (the default tolerances then
    /// become 4e-3 for forward values and 5e-3 for gradients, about 8 f16 roundings, and
    /// 3e-2 for step losses and updated parameters: Adam steps every element by about lr,
    /// so a gradient near zero can flip its step under that rounding). The same tolerances
    /// apply when the matrix products or the recurrent steps run on the tensor cores (--gemm
    /// tensor, --step-kernel tensor, or f16 on an adapter with them).
    #[arg(long, value_enum, default_value = "f32")]
    precision: Precision,
    /// A full network description (TOML, as NetworkConfig); replaces the network flags.
    #[arg(long, value_name = "FILE.toml", conflicts_with_all = [
        "cell", "peephole", "proj", "gru_variant", "layers", "hidden", "input",
        "bidirectional", "task", "classes",
    ])]
    config: Option<PathBuf>,
    /// Recurrent cell (jordan: the top layer is Jordan, the ones below Elman tanh).
    #[arg(long, value_enum, default_value = "lstm")]
    cell: CheckCell,
    /// LSTM peephole connections.
    #[arg(long)]
    peephole: bool,
    /// LSTM projection size (1..hidden).
    #[arg(long, value_name = "N")]
    proj: Option<usize>,
    /// GRU equations.
    #[arg(long, value_enum, default_value = "pytorch")]
    gru_variant: CheckGruVariant,
    /// Stacked layers.
    #[arg(long, default_value_t = 1)]
    layers: usize,
    /// Hidden size of every layer.
    #[arg(long, default_value_t = 8)]
    hidden: usize,
    /// Dense input features per step.
    #[arg(long, default_value_t = 5)]
    input: usize,
    /// Every layer bidirectional.
    #[arg(long)]
    bidirectional: bool,
    /// The head and loss.
    #[arg(long, value_enum, default_value = "tagging")]
    task: CheckTask,
    /// Classes (or regression outputs) of the head.
    #[arg(long, default_value_t = 3)]
    classes: usize,
    /// Sequences per batch (default: the number of --lengths, else 3).
    #[arg(long)]
    batch: Option<usize>,
    /// Padded time steps T (default: the longest of --lengths, else 6).
    #[arg(long)]
    seq: Option<usize>,
    /// Valid steps of each sequence, e.g. 7,1,4 (default: T, T-1, ... so padding is tested).
    #[arg(long, value_name = "L1,L2,..")]
    lengths: Option<String>,
    /// Seed of parameters, inputs, initial states and targets.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Adam steps after the forward/backward comparison.
    #[arg(long, default_value_t = 3)]
    steps: usize,
    /// Adam learning rate of those steps.
    #[arg(long, default_value_t = 0.01)]
    lr: f32,
    /// Tolerance of every tensor (default: 1e-4 for gradients, step losses and updated
    /// parameters, 1e-5 for outputs, final states and the loss; see --precision for f16).
    /// Updated parameters are allowed at least half of --lr per step: Adam steps every
    /// element by about lr, so a gradient near its eps turns rounding into lr-scale steps.
    #[arg(long)]
    tolerance: Option<f64>,
    /// Tolerance of the forward values only (overrides --tolerance for them).
    #[arg(long)]
    forward_tolerance: Option<f64>,
    /// What to compare the f32 CPU reference against: the GPU, or the f64 CPU reference
    /// (cpu64: shows the f32 rounding level the tolerances must allow; needs no GPU).
    #[arg(long, value_enum, default_value = "gpu")]
    candidate: Candidate,
    /// GPU adapter: an index from `wgrnn devices` or part of its name.
    #[arg(long, value_name = "NAME|INDEX")]
    adapter: Option<String>,
}

/// The backend compared against the f32 CPU reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Candidate {
    /// The wgpu backend.
    Gpu,
    /// The CPU reference in f64.
    Cpu64,
}

#[derive(clap::Args)]
struct BenchArgs {
    /// A suite file (`name kind layers hidden input batch seq uni|bi` per line, like
    /// shared/device/suite.tsv); replaces the configuration flags.
    #[arg(long, value_name = "FILE", conflicts_with_all = [
        "cell", "layers", "hidden", "input", "batch", "seq", "bidirectional",
    ])]
    suite: Option<PathBuf>,
    /// Only these suite entries (comma-separated names).
    #[arg(long, value_name = "NAME,..", requires = "suite")]
    only: Option<String>,
    /// Recurrent cell (rnn: tanh).
    #[arg(long, value_enum, default_value = "lstm")]
    cell: RnnKind,
    /// Stacked layers.
    #[arg(long, default_value_t = 1)]
    layers: usize,
    /// Hidden size.
    #[arg(long, default_value_t = 128)]
    hidden: usize,
    /// Input features.
    #[arg(long, default_value_t = 128)]
    input: usize,
    /// Sequences per batch.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Time steps.
    #[arg(long, default_value_t = 50)]
    seq: usize,
    /// Bidirectional layers.
    #[arg(long)]
    bidirectional: bool,
    /// Untimed training steps first (they also compile pipelines and allocate buffers).
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Timed repetitions (the median is reported).
    #[arg(long, default_value_t = 20)]
    reps: usize,
    /// Where to run.
    #[arg(long, value_enum, default_value = "gpu")]
    device: DeviceChoice,
    /// GPU adapter: an index from `wgrnn devices` or part of its name.
    #[arg(long, value_name = "NAME|INDEX")]
    adapter: Option<String>,
    /// Write one JSON line per configuration to this file (created or truncated).
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Training steps run with every kernel timed for the per-kernel table (after the timed
    /// steps, so timing them does not slow those; only where the adapter has timestamp
    /// queries).
    #[arg(long, default_value_t = 3)]
    profile_steps: usize,
    /// Skip the per-kernel table.
    #[arg(long)]
    no_kernels: bool,
    /// The device's peak fp32 rate and memory bandwidth, `TFLOPS,GBPS` (H100 SXM: 67,3350),
    /// for a roofline column in the per-kernel table: each kernel's declared work at those
    /// peaks over its measured time.
    #[arg(long, value_name = "TFLOPS,GBPS", value_parser = bench::Roofline::parse)]
    roofline: Option<bench::Roofline>,
    #[command(flatten)]
    kernels: KernelFlags,
    /// How the GPU stores the layer caches: f32, or f16 (SHADER_F16; half their memory; where
    /// the adapter has tensor cores, the large matrix products and the recurrent steps'
    /// products also run there).
    #[arg(long, value_enum, default_value = "f32")]
    precision: Precision,
    /// Measure every kernel choice (step kernels and tile widths, product tile, bounds
    /// checks) on these configurations and store the fastest in the autotune table, which
    /// every later run on this adapter starts from (`WGRNN_TUNING_FILE`, else
    /// ~/.cache/wgrnn/tuning.json; `WGRNN_TUNING=off` ignores it).
    #[arg(long)]
    tune: bool,
    /// Time the configurations' large matrix products one by one (input projections, the
    /// input's gradient, the weight gradients; at the layers' shapes and layouts) under each
    /// product tile (64x64, 128x128, 256x128, and the tensor-core tile where the adapter has
    /// it; only --gemm's tile when given), instead of training steps: ms and TFLOP/s per
    /// product and tile, one JSON line each with --json.
    #[arg(long, conflicts_with = "tune")]
    products: bool,
}

#[derive(clap::Args)]
struct ReportArgs {
    /// `wgrnn bench --json` lines of the suite.
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "products",
        requires = "torch"
    )]
    ours: Option<PathBuf>,
    /// The reference script's lines (shared/device/torch_rnn_bench.py).
    #[arg(long, value_name = "FILE", requires = "ours")]
    torch: Option<PathBuf>,
    /// An alternative kernel choice's `wgrnn bench --json` lines, as NAME=FILE (repeatable):
    /// a column of its step times.
    #[arg(long, value_name = "NAME=FILE")]
    variant: Vec<String>,
    /// `wgrnn bench --precision f16 --json` lines of the suite: also the reduced-precision
    /// table against cuDNN tf32.
    #[arg(long, value_name = "FILE")]
    f16: Option<PathBuf>,
    /// Also the per-kernel breakdown of this configuration (a suite name).
    #[arg(long, value_name = "NAME")]
    kernels: Option<String>,
    /// Peaks for the breakdown's roofline column, `TFLOPS,GBPS` (H100 SXM: 67,3350).
    #[arg(long, value_name = "TFLOPS,GBPS", value_parser = bench::Roofline::parse)]
    roofline: Option<bench::Roofline>,
    /// `wgrnn bench --products --json` lines: also (or only, without --ours) the table of
    /// each product's TFLOP/s under each tile.
    #[arg(long, value_name = "FILE")]
    products: Option<PathBuf>,
}

/// The kernel choices `wgrnn bench` and `wgrnn check` take, to compare kernels that compute
/// the same thing (speed with bench, agreement with the CPU reference with check). Each
/// given flag overrides the backend's starting choice (the adapter's autotune entry, else
/// the default); the rest are kept.
#[derive(clap::Args, Debug)]
pub(crate) struct KernelFlags {
    /// Recurrent step kernels: `tiled` (16, 32 or 64 units x 16 sequences per workgroup sharing
    /// W_hh through workgroup memory, f32 products), `tensor` (the same tiles with their
    /// recurrent products on the tensor cores, operands rounded to f16; needs an adapter with
    /// them), `tensor-split` (the same at f32 accuracy: each operand split into two f16
    /// halves, three products), `blocked` (the f32 tiles, each invocation a 4-unit x 4-sequence block over a
    /// quarter of the inner dimension), `gemv` (the f32 products as matrix-vector products
    /// for few sequences: 4 sequences x 8 units per workgroup, each weight loaded by one
    /// invocation into a register; for small batches) or `rowwise` (one invocation per unit
    /// and sequence), to compare them on an adapter; each at every batch [default: tiled,
    /// with tensor-core products under --precision f16 where the adapter has them, else
    /// gemv for batches of up to 4 sequences; or the adapter's autotune entry].
    #[arg(long, value_enum)]
    step_kernel: Option<StepKernels>,
    /// Units per workgroup of the tiled step kernels (16, 32 or 64; default: the widest of 64
    /// and 32 that still gives 128 workgroups, else 16). Implies tiled steps unless
    /// --step-kernel says otherwise.
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(["16", "32", "64"]))]
    step_units: Option<String>,
    /// K slices of the tiled steps, f32 or tensor-core (1, 2 or 4): that many times the
    /// invocations per workgroup, each a part of the inner dimension, for grids that leave
    /// the GPU's cores with few warps. Lowered where the tile or the adapter's workgroup
    /// limit does not allow it. 2 and 4 imply tiled steps (on the tensor cores where
    /// --precision f16 puts them there) unless --step-kernel says otherwise. `rules`: by the
    /// grid (the fewest that give 16 warps per core, else 4); `auto`: on a GPU, each step
    /// shape's slice counts timed aside the first time it runs and the fastest kept,
    /// forward and backward apart (by the grid on a CPU adapter); `measured`: that on any
    /// adapter [default: auto, or the adapter's autotune entry].
    #[arg(
        long,
        value_name = "1|2|4|auto|rules|measured",
        value_parser = clap::builder::PossibleValuesParser::new(
            ["1", "2", "4", "auto", "rules", "measured"]
        )
    )]
    step_k_split: Option<String>,
    /// Chunk depth (one barrier pair each chunk) per K slice of the f32 tiled steps (16, 32
    /// or 64; fewer where the adapter's workgroup memory does not hold them at the K
    /// slices): rows of W_hh in the backward, k steps in the forward, at most 128 weight
    /// rows (LSTM and GRU 32 k steps) [default: 64, or the adapter's autotune entry].
    /// Implies tiled f32 steps unless --step-kernel says otherwise.
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(["16", "32", "64"]))]
    step_chunk_rows: Option<String>,
    /// Sequences per workgroup of the tiled forward steps of LSTM and GRU layers, f32 or
    /// tensor-core (16 or 32): 32 in tiles of half the units, the same workgroups, which
    /// read W_hh half as often a step and stage twice the states; only where the tiles are
    /// at least 32 units wide [default: 32 for more than 16 sequences that 32-sequence
    /// tiles pad no more than 16-sequence ones (not 48), or the adapter's autotune entry].
    /// Implies tiled steps unless --step-kernel says otherwise.
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(["16", "32"]))]
    forward_sequences: Option<String>,
    /// Run the forward of a stack of unidirectional layers of one kind and width as a
    /// wavefront over N chunks of time steps (2 to 64): layer l on chunk c while layer l + 1
    /// runs chunk c - 1, each time step one dispatch for all the layers in it; and its
    /// backward as the mirror wavefront from the top (with f16 LSTM and GRU caches each
    /// layer's gate gradients held for a window of its chunk, and its weight gradients
    /// summed per chunk); 1 or `off`: layer by layer; `auto`: each stack shape's first
    /// passes timed layer by layer and over 4 and 8 chunks, the fastest kept, on a GPU
    /// (layer by layer on a CPU adapter); `measured`: that on any adapter [default: auto,
    /// or the adapter's autotune entry].
    #[arg(long, value_name = "N|auto|measured|off", value_parser = parse_wavefront)]
    wavefront: Option<WavefrontFlag>,
    /// Where the tensor-core steps (operands rounded to f16) read W_hh: `f16`, a copy made
    /// once per layer call, half the bytes a step reads (where the adapter has a ninth
    /// storage buffer per stage for it), `f32`, the parameters, rounded as each chunk is
    /// staged, or `auto`, the copy where it saves more traffic than it costs (not for a
    /// call of a few steps or a small layer); the same products either way [default: auto,
    /// or the adapter's autotune entry]. The split steps (--step-kernel tensor-split)
    /// always read the parameters.
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(["auto", "f16", "f32"]))]
    step_weights: Option<String>,
    /// Matrix-product tile: `auto` (on a GPU, each large product shape's tiles timed the
    /// first time one is recorded and the fastest kept, as cuDNN's benchmark mode does; on a
    /// CPU adapter and for small products, the rules of `rules`), `rules` (128x128 for large
    /// aligned products, else 64x64; on the tensor cores under --precision f16 where the
    /// adapter has them), `measured` (as `auto`, on any adapter and at any size), `small`
    /// (always 64x64), `big` (128x128 wherever the operands allow), `tall` (256x128, 16x8 outputs per
    /// invocation, wherever the operands allow), `tensor` (the 128x128 tile on the
    /// tensor cores, operands rounded to f16, wherever the operands allow; needs an adapter
    /// with them) or `tensor-split` (the same tile at f32 accuracy: each operand split into
    /// two f16 halves, three products; needs 45 KiB of workgroup memory too), to compare
    /// them [default: auto, or the adapter's autotune entry].
    #[arg(long, value_enum, hide_possible_values = true)]
    gemm: Option<GemmTiles>,
    /// Compile kernels without naga's bounds checks (the trusted path; every kernel checks
    /// its own indices).
    #[arg(long, conflicts_with = "checked")]
    unchecked: bool,
    /// Keep naga's bounds checks even where the autotune entry drops them.
    #[arg(long)]
    checked: bool,
    /// Dispatches in the first submission of a recording (the device starts on it while the
    /// host records the rest; each later piece is twice the one before, up to 512), or 0 to
    /// submit each training step whole, as one piece [default: 32].
    #[arg(long, value_name = "N")]
    submit_first: Option<u32>,
    /// Lay the kernels out as for an adapter with this many bytes of workgroup memory per
    /// workgroup, e.g. 49152 (the H100's): on a CPU adapter (lavapipe, which allocates what
    /// a workgroup declares) `wgrnn check` then compares the tiles that GPU runs with the
    /// CPU reference. Any amount up to the adapter's limit; more only on a CPU adapter
    /// [default: the adapter's limit].
    #[arg(long, value_name = "BYTES")]
    workgroup_memory: Option<u32>,
}

impl KernelFlags {
    /// `base` with the choices these flags make. A step kernel other than the plain f32
    /// tiles drops the base's K slices and chunk rows, which only those have (the flags'
    /// own are kept, for `is_valid` to refuse by name).
    fn tuning(&self, base: Tuning) -> Tuning {
        let mut t = base;
        if let Some(k) = self.step_kernel {
            t.tiled_steps = k != StepKernels::Rowwise;
            t.blocked_steps = k == StepKernels::Blocked;
            // An explicit kernel is that kernel at every batch.
            t.gemv_steps = Some(k == StepKernels::Gemv);
            t.tensor_steps = match k {
                StepKernels::Tensor | StepKernels::TensorSplit => Some(true),
                StepKernels::Tiled | StepKernels::Gemv => Some(false),
                StepKernels::Blocked | StepKernels::Rowwise => None,
            };
            t.split_steps = k == StepKernels::TensorSplit;
            if k == StepKernels::Gemv {
                // The matrix-vector products pick their own tile width.
                t.step_tile_units = None;
            }
            if !t.plain_f32_tiles() {
                let d = Tuning::default();
                t.step_k_split = d.step_k_split;
                t.step_chunk_rows = d.step_chunk_rows;
            }
            if !t.sliced_tiles() {
                t.forward_sequences = None;
            }
        }
        // A choice only the plain tiles have implies them, unless --step-kernel says
        // otherwise (and is then refused by `is_valid` where it does not fit).
        let plain_tiles = |t: &mut Tuning| {
            t.tiled_steps = true;
            t.blocked_steps = false;
            t.gemv_steps = Some(false);
        };
        if let Some(u) = self.step_units.as_deref().and_then(|u| u.parse().ok()) {
            t.step_tile_units = Some(u);
            if self.step_kernel.is_none() {
                plain_tiles(&mut t);
            }
        }
        match self.step_k_split.as_deref() {
            Some("auto") => (t.step_k_split, t.k_split_by) = (None, SliceChoice::Auto),
            Some("rules") => (t.step_k_split, t.k_split_by) = (None, SliceChoice::Rules),
            Some("measured") => (t.step_k_split, t.k_split_by) = (None, SliceChoice::Measured),
            _ => {}
        }
        if let Some(k) = self.step_k_split.as_deref().and_then(|k| k.parse().ok()) {
            (t.step_k_split, t.k_split_by) = (Some(k), SliceChoice::Auto);
            if self.step_kernel.is_none() && k > 1 {
                plain_tiles(&mut t);
            }
        }
        if let Some(r) = self.step_chunk_rows.as_deref().and_then(|r| r.parse().ok()) {
            t.step_chunk_rows = r;
            if self.step_kernel.is_none() && r != 64 {
                plain_tiles(&mut t);
                t.tensor_steps = Some(false);
                t.split_steps = false;
            }
        }
        if let Some(n) = self
            .forward_sequences
            .as_deref()
            .and_then(|n| n.parse().ok())
        {
            t.forward_sequences = Some(n);
            if self.step_kernel.is_none() {
                plain_tiles(&mut t);
            }
        }
        if let Some(w) = self.wavefront {
            (t.wavefront, t.wavefront_measured) = match w {
                WavefrontFlag::Auto => (None, false),
                WavefrontFlag::Measured => (None, true),
                WavefrontFlag::Chunks(n) => (Some(n), false),
            };
        }
        if let Some(g) = self.gemm {
            t.gemm_tiles = g;
        }
        if let Some(w) = self.step_weights.as_deref() {
            t.half_step_weights = match w {
                "f16" => Some(true),
                "f32" => Some(false),
                _ => None,
            };
        }
        if self.unchecked {
            t.checked = false;
        }
        if self.checked {
            t.checked = true;
        }
        t
    }

    /// Whether any choice was given.
    pub(crate) fn any(&self) -> bool {
        self.step_kernel.is_some()
            || self.step_units.is_some()
            || self.step_k_split.is_some()
            || self.step_chunk_rows.is_some()
            || self.forward_sequences.is_some()
            || self.wavefront.is_some()
            || self.step_weights.is_some()
            || self.gemm.is_some()
            || self.unchecked
            || self.checked
            || self.workgroup_memory.is_some()
    }
}

/// Applies `flags` to a freshly opened backend that is to run a model of `shape` (whose
/// autotune choices, if the table has them, are the base the flags change) and says where
/// its choices come from, e.g. `steps=auto units=auto gemm=auto checked (from the
/// autotune table ~/.cache/wgrnn/tuning.json, tuned on 4 gates, 4x1024, batch 64)`.
pub(crate) fn apply_kernel_flags(
    be: &mut WgpuBackend,
    flags: &KernelFlags,
    shape: autotune::Shape,
) -> Result<String> {
    if let Some(bytes) = flags.workgroup_memory {
        let took = be.gpu().set_workgroup_storage(bytes);
        if took != bytes {
            bail!(
                "--workgroup-memory {bytes}: adapter `{}` has {} bytes of workgroup memory per \
                 workgroup; only a CPU adapter (lavapipe) may lay its kernels out for more",
                be.gpu().info().name,
                be.gpu().limits().max_compute_workgroup_storage_size
            );
        }
    }
    be.set_shape(shape);
    let asked = [
        (
            flags.step_kernel == Some(StepKernels::Tensor),
            "--step-kernel tensor",
        ),
        (
            flags.step_kernel == Some(StepKernels::TensorSplit),
            "--step-kernel tensor-split",
        ),
        (flags.gemm == Some(GemmTiles::Tensor), "--gemm tensor"),
        (
            flags.gemm == Some(GemmTiles::TensorSplit),
            "--gemm tensor-split",
        ),
    ];
    for (_, flag) in asked.iter().filter(|(on, _)| *on) {
        if !be.gpu().has_tensor_cores() {
            bail!(
                "{flag}: adapter `{}` has no tensor-core matrix products (cooperative \
                 matrices with 16x16x16 f16 -> f32, subgroups of 32, f16); `wgrnn devices` \
                 lists each adapter's cooperative-matrix shapes",
                be.gpu().info().name
            );
        }
    }
    if flags.gemm == Some(GemmTiles::TensorSplit) && !be.split_tile_runs() {
        let g = be.gpu();
        bail!(
            "--gemm tensor-split: the split tile needs {} bytes of workgroup memory and the \
             kernels are laid out for {} (--workgroup-memory; adapter `{}` has {})",
            wgrnn::backend::wgpu::gemm::GEMM_COOP_SPLIT_WORKGROUP_BYTES,
            g.workgroup_storage(),
            g.info().name,
            g.limits().max_compute_workgroup_storage_size
        );
    }
    let tuning = flags.tuning(be.tuning());
    if let (Some(true), Some(units)) = (tuning.gemv_steps, tuning.step_tile_units) {
        bail!(
            "--step-units {units}: the matrix-vector steps (--step-kernel gemv) pick their own \
             width (8 units and 4 sequences per workgroup)"
        );
    }
    if !tuning.is_valid() {
        let mut asked = Vec::new();
        if let Some(k) = tuning
            .step_k_split
            .filter(|&k| k != 1 && !tuning.sliced_tiles())
        {
            asked.push(format!(
                "--step-k-split {k}: K slices are for the tiled steps only (--step-kernel \
                 tiled or tensor)"
            ));
        }
        if tuning.step_chunk_rows != 64 && !tuning.plain_f32_tiles() {
            asked.push(format!(
                "--step-chunk-rows {}: chunk rows are for the f32 tiled steps only \
                 (--step-kernel tiled)",
                tuning.step_chunk_rows
            ));
        }
        if let Some(n) = tuning.forward_sequences.filter(|_| !tuning.sliced_tiles()) {
            asked.push(format!(
                "--forward-sequences {n}: the forward's sequences are for the tiled steps only \
                 (--step-kernel tiled or tensor)"
            ));
        }
        if asked.is_empty() {
            asked.push("these kernel choices do not go together".into());
        }
        bail!(
            "{}; not with `{}`",
            asked.join("; "),
            Tuning {
                step_k_split: None,
                step_chunk_rows: 64,
                forward_sequences: None,
                ..tuning
            }
            .label()
        );
    }
    be.set_tuning(tuning);
    if let Some(w) = flags.step_weights.as_deref().filter(|&w| w != "auto") {
        let why = if !be.tensor_step_products() {
            "only the tensor-core steps (--step-kernel tensor, or --precision f16 where the \
             adapter has tensor cores) read W_hh in f16"
                .to_string()
        } else if w == "f16" && be.split_step_products() {
            "the split tensor-core steps read the f32 weights (their lo halves need them)"
                .to_string()
        } else if w == "f16" && !be.gpu().spare_binding() {
            format!(
                "the f16 copy needs a ninth storage buffer per shader stage, which adapter \
                 `{}` does not have",
                be.gpu().info().name
            )
        } else {
            String::new()
        };
        if !why.is_empty() {
            bail!(
                "--step-weights {w}: {why}; not with `{}`",
                be.tuning().label()
            );
        }
    }
    if let Some(n) = flags.submit_first {
        be.gpu().set_first_submission(n);
    }
    let mut label = match be.gpu().first_submission() {
        runtime::FIRST_SUBMISSION => be.tuning().label(),
        0 => format!("{} submit=whole", be.tuning().label()),
        n => format!("{} submit={n}", be.tuning().label()),
    };
    if let Some(bytes) = flags.workgroup_memory {
        label.push_str(&format!(" workgroup-memory={bytes}"));
    }
    Ok(match (be.tuned_from(), be.tuned_shape()) {
        (Some(path), Some(shape)) => format!(
            "{label} (from the autotune table {}, tuned on {})",
            path.display(),
            shape.label()
        ),
        (Some(path), None) => format!("{label} (from the autotune table {})", path.display()),
        (None, _) => label,
    })
}

/// The recurrent step kernels `wgrnn bench` can compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum StepKernels {
    Tiled,
    Blocked,
    Rowwise,
    Tensor,
    TensorSplit,
    Gemv,
}

/// What `--wavefront` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WavefrontFlag {
    /// Measured on a GPU, layer by layer on a CPU adapter.
    Auto,
    /// Measured on any adapter.
    Measured,
    /// This many chunks (1: layer by layer).
    Chunks(usize),
}

/// `--wavefront`'s value: `auto`, `measured`, `off` (1) or a chunk count up to
/// `MAX_WAVEFRONT`.
fn parse_wavefront(v: &str) -> Result<WavefrontFlag, String> {
    let most = wgrnn::backend::wgpu::MAX_WAVEFRONT;
    match v {
        "auto" => Ok(WavefrontFlag::Auto),
        "measured" => Ok(WavefrontFlag::Measured),
        "off" => Ok(WavefrontFlag::Chunks(1)),
        n => match n.parse::<usize>() {
            Ok(n) if (1..=most).contains(&n) => Ok(WavefrontFlag::Chunks(n)),
            _ => Err(format!(
                "`{v}` is not auto, measured, off or a chunk count from 1 to {most}"
            )),
        },
    }
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Devices => devices(),
        Command::Train(args) => cli::train::run(*args),
        Command::Eval(args) => cli::use_model::eval(args),
        Command::Generate(args) => cli::use_model::generate(args),
        Command::Tag(args) => cli::use_model::tag(args),
        Command::Classify(args) => cli::use_model::classify(args),
        Command::Check(args) => run_check(args),
        Command::Bench(args) => run_bench(args),
        Command::Report(args) => run_report(args),
    }
}

/// A backend chosen by `--device` / `--adapter`.
pub(crate) enum Chosen {
    Gpu(Box<WgpuBackend>),
    Cpu(CpuBackend<f32>),
}

/// Runs `$body` with `$be` bound to the chosen backend (a generic call per backend).
#[macro_export]
macro_rules! on_backend {
    ($chosen:expr, $be:ident => $body:expr) => {
        match $chosen {
            $crate::Chosen::Gpu(b) => {
                let $be = *b;
                $body
            }
            $crate::Chosen::Cpu(b) => {
                let $be = b;
                $body
            }
        }
    };
}

fn open_gpu(adapter: Option<&str>) -> Result<WgpuBackend> {
    WgpuBackend::new(adapter).context("opening the GPU backend")
}

pub(crate) fn choose(device: DeviceChoice, adapter: Option<&str>) -> Result<Chosen> {
    match device {
        DeviceChoice::Cpu => {
            if adapter.is_some() {
                bail!("--adapter selects a GPU; it cannot be combined with --device cpu");
            }
            Ok(Chosen::Cpu(CpuBackend::new()))
        }
        DeviceChoice::Gpu => Ok(Chosen::Gpu(Box::new(open_gpu(adapter)?))),
        DeviceChoice::Auto => {
            // A software Vulkan driver (lavapipe) is far slower than the CPU backend: unless an
            // adapter was named, `auto` only takes hardware.
            let named = adapter.is_some()
                || std::env::var(device::ADAPTER_ENV).is_ok_and(|v| !v.trim().is_empty());
            if !named
                && let Some(best) = device::list().first()
                && best.device_type == "Cpu"
            {
                eprintln!(
                    "note: only software GPU adapters found (best: {}); running on the CPU \
                     backend, which is faster (--device gpu uses it anyway)",
                    best.name
                );
                return Ok(Chosen::Cpu(CpuBackend::new()));
            }
            choose_auto(adapter)
        }
    }
}

fn choose_auto(adapter: Option<&str>) -> Result<Chosen> {
    match WgpuBackend::new(adapter) {
        Ok(be) => Ok(Chosen::Gpu(Box::new(be))),
        // A named adapter that does not exist is a mistake, not a reason to fall back.
        Err(e @ GpuError::NoSuchAdapter { .. }) => Err(e).context("opening the GPU backend"),
        Err(e) => {
            eprintln!("note: no usable GPU ({e}); running on the CPU");
            Ok(Chosen::Cpu(CpuBackend::new()))
        }
    }
}

fn mib(bytes: u64) -> String {
    if bytes >= 1 << 30 && bytes.is_multiple_of(1 << 30) {
        format!("{} GiB", bytes >> 30)
    } else if bytes >= 1 << 20 {
        format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
    } else {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    }
}

fn devices() -> Result<()> {
    let all = device::list();
    if all.is_empty() {
        bail!(
            "no GPU adapter found; {}",
            wgrnn::backend::wgpu::INSTALL_HINT
        );
    }
    for a in &all {
        let yes = |b: bool| if b { "yes" } else { "no" };
        outln!("{}: {}", a.index, a.name);
        outln!("   backend {}, type {}", a.backend, a.device_type);
        outln!(
            "   driver: {}",
            if a.driver.is_empty() { "-" } else { &a.driver }
        );
        outln!(
            "   max storage buffer binding: {} ({} bytes)",
            mib(a.max_storage_buffer_binding_size),
            a.max_storage_buffer_binding_size
        );
        outln!(
            "   max buffer: {} ({} bytes)",
            mib(a.max_buffer_size),
            a.max_buffer_size
        );
        outln!(
            "   workgroup storage: {} bytes; invocations per workgroup: {}; storage buffers per stage: {}",
            a.max_compute_workgroup_storage_size,
            a.max_compute_invocations_per_workgroup,
            a.max_storage_buffers_per_shader_stage
        );
        outln!(
            "   timestamp query: {}; shader f16: {}; cooperative matrices: {}",
            yes(a.timestamp_query),
            yes(a.shader_f16),
            if a.cooperative_matrix.is_empty() {
                "no".to_string()
            } else {
                a.cooperative_matrix.join(", ")
            }
        );
        match &a.tensor_cores_missing {
            None => outln!(
                "   tensor-core products (--gemm tensor, --step-kernel tensor, --precision f16): yes"
            ),
            Some(why) => outln!("   tensor-core products: no ({why})"),
        }
        if a.loops_capped {
            outln!(
                "   loops: ended after {} iterations an invocation (llvmpipe); loops over the \
                 data run in pieces",
                wgrnn::backend::wgpu::runtime::LLVMPIPE_LOOP_BUDGET
            );
        }
    }
    Ok(())
}

fn run_check(args: CheckArgs) -> Result<()> {
    let network = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the network config {}", path.display()))?;
            NetworkConfig::from_toml(&text)
                .with_context(|| format!("in the network config {}", path.display()))?
        }
        None => NetworkFlags {
            cell: args.cell,
            peephole: args.peephole,
            proj: args.proj,
            gru_variant: args.gru_variant,
            layers: args.layers,
            hidden: args.hidden,
            input: args.input,
            bidirectional: args.bidirectional,
            task: args.task,
            classes: args.classes,
        }
        .network()?,
    };
    let lengths = args
        .lengths
        .as_deref()
        .map(check::parse_lengths)
        .transpose()?;
    let seq = check::seq_shape(args.seq, args.batch, lengths)?;
    let shape = autotune::Shape::of(&network, seq.batch());
    // The GPU is opened first: whether its products run on the tensor cores sets the bound.
    let gpu = match args.candidate {
        Candidate::Gpu => {
            let mut gpu = open_gpu(args.adapter.as_deref())?;
            gpu.set_precision(args.precision)?;
            let kernels = apply_kernel_flags(&mut gpu, &args.kernels, shape.clone())?;
            Some((gpu, kernels))
        }
        Candidate::Cpu64 => {
            if args.adapter.is_some() {
                bail!("--adapter selects a GPU; it cannot be combined with --candidate cpu64");
            }
            if args.precision == Precision::F16 {
                bail!(
                    "--precision f16 is a GPU storage mode; it cannot be combined with --candidate cpu64"
                );
            }
            None
        }
    };
    let tensor = gpu.as_ref().is_some_and(|(g, _)| g.uses_tensor_cores());
    let gemv = gpu
        .as_ref()
        .is_some_and(|(g, _)| g.auto_gemv_steps(seq.batch()));
    let k_slices = gpu
        .as_ref()
        .and_then(|(g, _)| g.auto_k_split(&shape))
        .filter(|&k| k > 1);
    let mut tolerances = match (args.precision, tensor) {
        (_, true) => check::Tolerances::TENSOR_PRODUCTS,
        (Precision::F32, false) => check::Tolerances::default(),
        (Precision::F16, false) => check::Tolerances::F16_CACHES,
    };
    if let Some(t) = args.tolerance {
        tolerances.forward = t;
        tolerances.gradient = t;
        tolerances.update = t;
    }
    if let Some(t) = args.forward_tolerance {
        tolerances.forward = t;
    }
    for t in [tolerances.forward, tolerances.gradient, tolerances.update] {
        if !(t >= 0.0 && t.is_finite()) {
            bail!("tolerances must be finite and not negative, got {t}");
        }
    }
    if !(args.lr.is_finite() && args.lr > 0.0) {
        bail!("--lr must be a positive number");
    }
    let spec = CheckSpec {
        network,
        seq,
        seed: args.seed,
        steps: args.steps,
        lr: args.lr,
        tolerances,
    };
    outln!("{}", check::describe(&spec));
    let reference = CpuBackend::<f32>::new();
    let report = match gpu {
        Some((gpu, kernels)) => {
            outln!(
                "kernels: {kernels}; precision: {:?}{}{}{}",
                args.precision,
                match (tensor, gpu.gpu().tensor_emulated()) {
                    (true, false) => "; tensor-core products",
                    (true, true) => "; tensor-core products (emulated)",
                    (false, _) => "",
                },
                if gemv {
                    "; matrix-vector steps at this batch"
                } else {
                    ""
                },
                match k_slices {
                    Some(k) => format!("; {k} K slices at this grid"),
                    None => String::new(),
                }
            );
            check::run_check(reference, gpu, &spec)?
        }
        None => check::run_check(reference, CpuBackend::<f64>::new(), &spec)?,
    };
    out!("{}", report.render());
    let failures = report.failures();
    if let Some(worst) = failures.first() {
        bail!(
            "{} of {} tensors exceed the tolerance (first: {}, max abs err {:.3e}, max rel err {:.3e}, tolerance {:.0e})",
            failures.len(),
            report.rows.len(),
            worst.name,
            worst.max_abs,
            worst.max_rel,
            worst.tolerance
        );
    }
    Ok(())
}

/// `wgrnn bench --tune`: every kernel choice on every configuration, the fastest stored in
/// the autotune table for this adapter.
/// `bench --products`: each configuration's large products under each tile, on one GPU.
fn run_products(args: &BenchArgs, configs: &[BenchConfig]) -> Result<()> {
    if args.device == DeviceChoice::Cpu {
        bail!("--products times GPU kernels; it cannot be combined with --device cpu");
    }
    let mut be = open_gpu(args.adapter.as_deref())?;
    let mut json = create_json(args.json.as_deref())?;
    let shape = configs
        .first()
        .map(|c| autotune::Shape::of(&c.network(), c.batch));
    if let Some(shape) = shape {
        let kernels = apply_kernel_flags(&mut be, &args.kernels, shape)?;
        outln!("kernels: {kernels}");
    }
    let gpu = be.gpu();
    let tiles = match args.kernels.gemm {
        Some(t) => vec![t],
        None => products::tiles_to_time(gpu),
    };
    outln!(
        "{:<10} {:<28} {:>18} {:>4} {:<12} {:<20} {:>10} {:>8}",
        "config",
        "product",
        "m x n x k",
        "A B",
        "tiles",
        "kernel",
        "ms",
        "TFLOP/s"
    );
    for c in configs {
        for p in products::products_of(c) {
            let layout = format!(
                "{}{}",
                if p.a_t { "T" } else { "N" },
                if p.b_t { "T" } else { "N" }
            );
            for t in products::time_product(gpu, &p, &tiles, args.reps)
                .with_context(|| format!("timing {} of {}", p.what, p.config))?
            {
                outln!(
                    "{:<10} {:<28} {:>18} {:>4} {:<12} {:<20} {:>10.4} {:>8.2}",
                    p.config,
                    p.what,
                    format!("{}x{}x{}", p.m, p.n, p.k),
                    layout,
                    t.tiles.name(),
                    t.kernel,
                    t.ms,
                    t.tflops()
                );
                if let (Some(f), Some(path)) = (json.as_mut(), &args.json) {
                    writeln!(f, "{}", t.to_json())
                        .and_then(|()| f.flush())
                        .with_context(|| format!("writing {}", path.display()))?;
                }
            }
        }
    }
    Ok(())
}

fn run_tune(args: &BenchArgs, configs: &[BenchConfig]) -> Result<()> {
    if args.kernels.any() {
        bail!("--tune measures every kernel choice itself; drop the kernel flags");
    }
    if args.device == DeviceChoice::Cpu {
        bail!("--tune measures GPU kernels; it cannot be combined with --device cpu");
    }
    let path = autotune::table_path().context(
        "no place for the autotune table: set WGRNN_TUNING_FILE, XDG_CACHE_HOME or HOME",
    )?;
    // Read first: a table that cannot be updated should fail before minutes of measuring.
    let mut table = autotune::Table::load(&path)?;
    let mut json = create_json(args.json.as_deref())?;
    let open = || open_gpu(args.adapter.as_deref());
    let mut write_err = None;
    let report = tune::tune(
        &open,
        configs,
        args.precision,
        args.warmup,
        args.reps,
        &mut |t, r| {
            outln!(
                "{:<44} {:<44} {:>10.3} ms",
                t.label(),
                r.config.label(),
                r.train_step_ms
            );
            if let (Some(f), Some(p)) = (json.as_mut(), &args.json)
                && let Err(e) = writeln!(f, "{}", r.to_json()).and_then(|()| f.flush())
            {
                write_err.get_or_insert(format!("writing {}: {e}", p.display()));
            }
        },
    )?;
    if let Some(e) = write_err {
        bail!(e);
    }
    outln!("\nstep time relative to the defaults (geometric mean over the configurations):");
    for m in &report.entry.measured {
        outln!("  {:<44} {:.3}", m.variant, m.relative_time);
    }
    // What runs of each tuned shape (or a near one) take instead of the overall choice.
    outln!("\nfastest per shape (relative to the defaults on it; kept in the table):");
    for s in &report.entry.shapes {
        outln!(
            "  {:<44} {:<44} {:.3}",
            s.shape.label(),
            s.tuning.label(),
            s.relative_time
        );
    }
    let chosen = report.entry.tuning.label();
    let precision = format!("{:?}", report.entry.precision).to_lowercase();
    table.put(report.entry);
    table.save(&path)?;
    outln!(
        "chosen: {chosen}; stored in {} (the entry for --precision {precision})",
        path.display()
    );
    Ok(())
}

fn run_report(args: ReportArgs) -> Result<()> {
    let read = |p: &std::path::Path| {
        let text =
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
        report::parse_lines(&text, &p.display().to_string())
    };
    if let (Some(ours), Some(torch)) = (&args.ours, &args.torch) {
        let ours = read(ours)?;
        let torch = read(torch)?;
        let mut variants = Vec::new();
        for v in &args.variant {
            let Some((name, file)) = v.split_once('=') else {
                bail!("--variant takes NAME=FILE, got `{v}`");
            };
            variants.push((name.to_string(), read(std::path::Path::new(file))?));
        }
        out!("{}", report::suite_table(&ours, &torch, &variants)?);
        for t in [
            report::measured_tiles_table(&ours),
            report::measured_slices_table(&ours),
            report::measured_pipelines_table(&ours),
        ]
        .into_iter()
        .flatten()
        {
            outln!();
            out!("{t}");
        }
        if let Some(path) = &args.f16 {
            outln!();
            out!("{}", report::reduced_table(&read(path)?, &torch)?);
        }
        if let Some(name) = &args.kernels {
            outln!();
            out!("{}", report::kernel_table(&ours, name, args.roofline)?);
        }
    } else if !args.variant.is_empty() || args.f16.is_some() || args.kernels.is_some() {
        bail!("--variant, --f16 and --kernels report on the suite: give --ours and --torch");
    }
    if let Some(path) = &args.products {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let lines = report::parse_product_lines(&text, &path.display().to_string())?;
        if args.ours.is_some() {
            outln!();
        }
        out!(
            "{}",
            report::products_table(&lines).with_context(|| format!("in {}", path.display()))?
        );
    }
    Ok(())
}

/// The `--json` file of bench (created or truncated), if one was asked for.
fn create_json(path: Option<&std::path::Path>) -> Result<Option<std::fs::File>> {
    path.map(|p| std::fs::File::create(p).with_context(|| format!("creating {}", p.display())))
        .transpose()
}

fn run_bench(args: BenchArgs) -> Result<()> {
    let mut configs = match &args.suite {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the suite {}", path.display()))?;
            bench::parse_suite(&text).with_context(|| format!("in {}", path.display()))?
        }
        None => {
            let c = BenchConfig {
                name: None,
                kind: args.cell,
                layers: args.layers,
                hidden: args.hidden,
                input: args.input,
                batch: args.batch,
                seq: args.seq,
                bidirectional: args.bidirectional,
            };
            c.validate()?;
            vec![c]
        }
    };
    if let Some(only) = &args.only {
        let names: Vec<&str> = only.split(',').map(str::trim).collect();
        for n in &names {
            if !configs.iter().any(|c| c.name.as_deref() == Some(n)) {
                bail!("--only: the suite has no entry named `{n}`");
            }
        }
        configs.retain(|c| c.name.as_deref().is_some_and(|n| names.contains(&n)));
    }
    if args.reps == 0 {
        bail!("--reps must be at least 1");
    }
    if args.tune {
        return run_tune(&args, &configs);
    }
    if args.products {
        return run_products(&args, &configs);
    }
    let mut json = create_json(args.json.as_deref())?;
    // Each configuration gets a fresh backend (its own device and memory count); the first
    // one also settles which device `auto` means.
    let profile = if args.no_kernels {
        0
    } else {
        args.profile_steps
    };
    let mut chosen = Some(choose(args.device, args.adapter.as_deref())?);
    let on_gpu = matches!(chosen, Some(Chosen::Gpu(_)));
    for c in &configs {
        let mut backend = match chosen.take() {
            Some(b) => b,
            None if on_gpu => Chosen::Gpu(Box::new(open_gpu(args.adapter.as_deref())?)),
            None => Chosen::Cpu(CpuBackend::new()),
        };
        backend.set_precision(args.precision)?;
        let result = match backend {
            Chosen::Gpu(mut be) => {
                let shape = autotune::Shape::of(&c.network(), c.batch);
                let kernels = apply_kernel_flags(&mut be, &args.kernels, shape.clone())?;
                let tensor = be.tensor_products();
                let split = be.split_products();
                let split_steps = be.split_step_products();
                let tensor_steps = be.tensor_step_products() && !split_steps;
                let gemv_steps = be.auto_gemv_steps(c.batch);
                let k_slices = be.auto_k_split(&shape).filter(|&k| k > 1);
                let step_tiles = be.step_tiles_label(&shape, c.seq);
                let measured_slices = be.measures_slices() && step_tiles.is_some();
                bench::run(*be, c, args.warmup, args.reps, profile).map(|mut r| {
                    r.variant = kernels;
                    if args.precision == Precision::F16 {
                        r.variant.push_str(" f16-caches");
                    }
                    if tensor {
                        r.variant.push_str(" tensor-products");
                    }
                    if split {
                        r.variant.push_str(" split-products");
                    }
                    if tensor_steps {
                        r.variant.push_str(" tensor-steps");
                    }
                    if split_steps {
                        r.variant.push_str(" split-steps");
                    }
                    if gemv_steps {
                        r.variant.push_str(" gemv-steps");
                    }
                    if let Some(k) = k_slices {
                        r.variant.push_str(&format!(" k-slices={k}"));
                    }
                    if measured_slices {
                        r.variant.push_str(" k-slices=measured");
                    }
                    r.step_tiles = step_tiles;
                    r
                })
            }
            Chosen::Cpu(be) => bench::run(be, c, args.warmup, args.reps, profile),
        }
        .with_context(|| format!("benchmarking {}", c.label()))?;
        outln!("{}", result.summary());
        out!("{}", result.kernel_table(args.roofline));
        if let (Some(f), Some(path)) = (json.as_mut(), &args.json) {
            writeln!(f, "{}", result.to_json())
                .and_then(|()| f.flush())
                .with_context(|| format!("writing {}", path.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{Cli, Command};
    use clap::Parser;
    use wgrnn::backend::wgpu::Tuning;

    /// The kernel flags of `wgrnn check ARGS`.
    fn flags(args: &[&str]) -> super::KernelFlags {
        let mut all = vec!["wgrnn", "check"];
        all.extend_from_slice(args);
        match Cli::try_parse_from(all).expect("valid flags").command {
            Command::Check(a) => a.kernels,
            _ => unreachable!("parsed as check"),
        }
    }

    /// A base (an autotune entry) with K slices and 16-row chunks: a step kernel without
    /// them drops them, a flag that asks for them keeps them and is refused by name.
    #[test]
    fn a_step_kernel_drops_the_base_choices_it_does_not_have() {
        let base = Tuning {
            step_k_split: Some(2),
            step_chunk_rows: 16,
            ..Tuning::default()
        };
        assert!(base.is_valid());
        for kernel in ["rowwise", "blocked", "tensor"] {
            let t = flags(&["--step-kernel", kernel]).tuning(base);
            assert!(t.is_valid(), "{kernel}: {t:?}");
            assert_eq!((t.step_k_split, t.step_chunk_rows), (None, 64), "{kernel}");
        }
        let t = flags(&["--step-kernel", "tiled"]).tuning(base);
        assert_eq!((t.step_k_split, t.step_chunk_rows), (Some(2), 16));
        let t = flags(&["--step-kernel", "rowwise", "--step-chunk-rows", "32"]).tuning(base);
        assert_eq!((t.step_k_split, t.step_chunk_rows), (None, 32));
        assert!(!t.is_valid());
        let t = flags(&["--step-chunk-rows", "32"]).tuning(Tuning {
            tiled_steps: false,
            ..Tuning::default()
        });
        assert!(t.plain_f32_tiles() && t.is_valid(), "{t:?}");
    }
}
