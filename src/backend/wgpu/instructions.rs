//! Instruction counts of a kernel's hot loop as a GPU driver gets it: naga's SPIR-V (the
//! compiler wgpu uses) for one entry point with its pipeline constants, under one of the sets
//! of runtime checks wgpu can ask of naga on Vulkan, optionally after `spirv-opt -O`
//! (inlining, constant propagation, dead branches, variables promoted to registers: what
//! every driver's compiler does first), and optionally with its loops of constant trip count
//! unrolled (`optimize_unrolled`: what a driver that unrolls short loops compiles, whose hot
//! loop is then a whole chunk of the kernel). `benches/instructions.rs` tabulates them for the
//! suite's kernels, with what the loop's workgroup accesses cost the shared-memory pipe
//! (`banks`); BENCHMARKS.md says what they showed. Needs no GPU.
//!
//! Counts are per pass through the innermost loop with the most multiply-adds, by kind, each
//! lane of a vector operation counted as a scalar GPU issues it; a multiply whose only use is
//! an add counts with it as one multiply-add, as drivers fuse them; loads and stores of
//! workgroup or storage memory count once whatever their width; loads and stores of
//! function-scope variables (registers) and moves between lanes not at all; arithmetic that
//! every pass computes alike not at all (drivers hoist it). Where the pass branches, the arm
//! doing the most work by its fast path is counted (`Mix::typical`). Not modelled: what a
//! driver folds into an instruction's operands (a constant address offset), and lanes a
//! driver finds dead. So the counts are upper bounds on what a loop issues, and their
//! differences between builds of one kernel are what they are best at.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::rc::Rc;

use naga::back::spv;
use naga::proc::{BoundsCheckPolicies, BoundsCheckPolicy};

mod banks;
pub use banks::{Access, Banks, hot_loop_banks};

/// The runtime checks of one build of a kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checks {
    /// `Checked` plus the loop counters wgpu puts in every loop of untrusted code: what
    /// `create_shader_module` gives, the engine's default before session 18.
    Counted,
    /// The engine's default on an adapter with robustBufferAccess2 (the H100's Vulkan
    /// driver): storage-buffer bounds left to the driver, indices into fixed-size arrays
    /// clamped, integer division guarded.
    Checked,
    /// `Checked` on an adapter without robustBufferAccess2: storage accesses clamped by naga
    /// too, as on Metal and DX12.
    NoRba2,
    /// `--unchecked`: no checks.
    Unchecked,
}

impl Checks {
    /// Every build, in the order of the bench's table.
    pub const ALL: [Checks; 4] = [
        Checks::Counted,
        Checks::Checked,
        Checks::NoRba2,
        Checks::Unchecked,
    ];

    /// The build's name in the bench's table.
    pub fn name(self) -> &'static str {
        match self {
            Checks::Counted => "counted",
            Checks::Checked => "checked",
            Checks::NoRba2 => "no-rba2",
            Checks::Unchecked => "unchecked",
        }
    }

    /// naga's SPIR-V options as wgpu-hal's Vulkan backend sets them for these checks.
    fn options(self) -> spv::Options<'static> {
        let (index, buffer) = match self {
            Checks::Counted | Checks::Checked => {
                (BoundsCheckPolicy::Restrict, BoundsCheckPolicy::Unchecked)
            }
            Checks::NoRba2 => (BoundsCheckPolicy::Restrict, BoundsCheckPolicy::Restrict),
            Checks::Unchecked => (BoundsCheckPolicy::Unchecked, BoundsCheckPolicy::Unchecked),
        };
        let bounded = !matches!(self, Checks::Unchecked);
        spv::Options {
            lang_version: (1, 6),
            flags: spv::WriterFlags::empty(),
            bounds_check_policies: BoundsCheckPolicies {
                index,
                buffer,
                image_load: BoundsCheckPolicy::Unchecked,
                binding_array: BoundsCheckPolicy::Unchecked,
            },
            zero_initialize_workgroup_memory: spv::ZeroInitializeWorkgroupMemoryMode::None,
            force_loop_bounding: matches!(self, Checks::Counted),
            emit_int_div_checks: bounded,
            ..spv::Options::default()
        }
    }
}

/// WGSL module `src` as naga parses and validates it (every capability allowed: the
/// extensions the engine asks of an adapter included), or naga's message.
pub fn parse(src: &str) -> Result<(naga::Module, naga::valid::ModuleInfo), String> {
    let module = naga::front::wgsl::parse_str(src).map_err(|e| e.emit_to_string(src))?;
    let mut validator = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::all(),
    );
    let info = validator.validate(&module).map_err(|e| format!("{e:?}"))?;
    Ok((module, info))
}

/// The SPIR-V of `entry` of WGSL module `src` with pipeline constants `constants`, or why
/// naga refused it.
pub fn spirv(
    src: &str,
    entry: &str,
    constants: &[(&str, f64)],
    checks: Checks,
) -> Result<Vec<u32>, String> {
    let (module, info) = parse(src)?;
    let constants = constants.iter().map(|&(k, v)| (k.to_string(), v)).collect();
    let (module, info) = naga::back::pipeline_constants::process_overrides(
        &module,
        &info,
        Some((naga::ShaderStage::Compute, entry)),
        &constants,
    )
    .map_err(|e| format!("{e:?}"))?;
    let pipeline = spv::PipelineOptions {
        shader_stage: naga::ShaderStage::Compute,
        entry_point: entry.to_string(),
    };
    spv::write_vec(&module, &info, &checks.options(), Some(&pipeline)).map_err(|e| e.to_string())
}

/// `words` after `spirv-opt -O` (inlining, constant propagation, dead branches removed,
/// variables promoted to registers: what any driver's compiler does first), or why not.
///
/// The tensor-core kernels' SPIR-V uses SPV_KHR_cooperative_matrix, which spirv-opt 2023.1
/// (Debian 12's) refuses: where this machine's spirv-opt refuses a module, the SPIRV-Tools
/// compiled into the engine with the `spirv-tools` feature run the same passes
/// (`cargo bench --bench instructions --features spirv-tools`).
pub fn optimize(words: &[u32], tag: &str) -> Result<Vec<u32>, String> {
    spirv_opt(words, tag, &["-O"])
        .or_else(|why| optimize_compiled(words).map_err(|then| format!("{why}; then {then}")))
}

/// `words` after SPIRV-Tools' performance passes (`spirv-opt -O`), by the library the
/// `spirv-tools` crate compiles in.
#[cfg(feature = "spirv-tools")]
fn optimize_compiled(words: &[u32]) -> Result<Vec<u32>, String> {
    use spirv_tools::opt::Optimizer;
    let mut opt = spirv_tools::opt::create(Some(spirv_tools::TargetEnv::Vulkan_1_3));
    opt.register_performance_passes();
    let mut messages = Vec::new();
    let mut on_message = |m: spirv_tools::error::Message| messages.push(m.message);
    opt.optimize(words, &mut on_message, None)
        .map(|b| b.as_words().to_vec())
        .map_err(|e| format!("SPIRV-Tools: {e} {}", messages.join("; ")))
}

/// Without the `spirv-tools` feature there is no second optimizer.
#[cfg(not(feature = "spirv-tools"))]
fn optimize_compiled(_words: &[u32]) -> Result<Vec<u32>, String> {
    Err("no newer SPIRV-Tools: build with the spirv-tools feature".to_string())
}

/// `words` after `optimize`, then with every loop whose trip count is a constant fully
/// unrolled and optimized again: what a driver that unrolls such loops (NVIDIA's does, by
/// default, for short ones) works on. Loops are marked one at a time for `spirv-opt
/// --loop-unroll`, which leaves the ones whose trip count it cannot know; a loop whose
/// unrolling spirv-opt gets wrong (2023.1 does on some: its output fails `spirv-val`) is
/// left as it is.
pub fn optimize_unrolled(words: &[u32], tag: &str) -> Result<Vec<u32>, String> {
    let mut words = optimize(words, tag)?;
    // Loop control bits of OpLoopMerge.
    const UNROLL: u32 = 1;
    const DONT_UNROLL: u32 = 2;
    let loop_merges = |words: &[u32]| {
        let mut at = Vec::new();
        let mut i = 5;
        while i < words.len() {
            let n = (words[i] >> 16) as usize;
            if words[i] & 0xffff == op::LOOP_MERGE && n >= 4 {
                at.push(i + 3);
            }
            i += n.max(1);
        }
        at
    };
    loop {
        let merges = loop_merges(&words);
        let Some(&next) = merges.iter().rev().find(|&&c| words[c] & DONT_UNROLL == 0) else {
            break;
        };
        let mut tried = words.clone();
        for &c in &merges {
            tried[c] &= !UNROLL;
        }
        tried[next] |= UNROLL;
        let unrolled = spirv_opt(&tried, tag, &["--loop-unroll", "-O"])
            .ok()
            .filter(|out| loop_merges(out).len() != merges.len() && validates(out, tag));
        match unrolled {
            Some(out) => words = out,
            None => words[next] |= DONT_UNROLL,
        }
    }
    spirv_opt(&words, tag, &["-O"])
}

/// Whether `spirv-val` accepts `words`.
fn validates(words: &[u32], tag: &str) -> bool {
    let path = std::env::temp_dir().join(format!("wgrnn-{tag}-{}.val.spv", std::process::id()));
    if std::fs::write(&path, bytemuck::cast_slice(words)).is_err() {
        return false;
    }
    let ok = std::process::Command::new("spirv-val")
        .args(["--target-env", "vulkan1.3"])
        .arg(&path)
        .output()
        .is_ok_and(|o| o.status.success());
    let _ = std::fs::remove_file(&path);
    ok
}

/// Runs spirv-opt with `passes` on `words`.
fn spirv_opt(words: &[u32], tag: &str, passes: &[&str]) -> Result<Vec<u32>, String> {
    let dir = std::env::temp_dir();
    let (input, output) = (
        dir.join(format!("wgrnn-{tag}-{}.spv", std::process::id())),
        dir.join(format!("wgrnn-{tag}-{}.opt.spv", std::process::id())),
    );
    std::fs::write(&input, bytemuck::cast_slice(words)).map_err(|e| e.to_string())?;
    let run = std::process::Command::new("spirv-opt")
        .args(passes)
        .arg("--target-env=vulkan1.3")
        .arg(&input)
        .arg("-o")
        .arg(&output)
        .output()
        .map_err(|e| format!("spirv-opt: {e} (apt-get install spirv-tools)"))?;
    if !run.status.success() {
        return Err(String::from_utf8_lossy(&run.stderr).into_owned());
    }
    let bytes = std::fs::read(&output).map_err(|e| e.to_string())?;
    if std::env::var_os("KEEP_SPV").is_none() {
        let _ = std::fs::remove_file(&input);
        let _ = std::fs::remove_file(&output);
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// What one pass through a stretch of code issues, by kind (lanes of vector operations
/// counted one by one, as a scalar GPU issues them).
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct Mix {
    /// Multiply-adds (a multiply whose only use is an add, with that add; or an fma).
    pub fma: u32,
    /// Other floating-point arithmetic.
    pub float: u32,
    /// Integer arithmetic, comparisons, selects, conversions, bit operations, clamps.
    pub int: u32,
    /// Loads and stores of workgroup memory (one per access, whatever its width; atomics
    /// and cooperative matrix loads and stores included).
    pub shared: u32,
    /// Loads and stores of storage buffers.
    pub global: u32,
    /// Barriers.
    pub barriers: u32,
    /// Conditional branches.
    pub branches: u32,
    /// 32-bit lanes moved by the loads and stores of workgroup and storage memory (a
    /// cooperative matrix's elements an invocation holds, counted as lanes).
    pub lanes_moved: u32,
    /// Matrix multiply-adds on the matrix units: a subgroup's 16x16x16 product
    /// (OpCooperativeMatrixMulAddKHR), which the tensor cores run beside the instructions
    /// counted in [`Mix::issued`] (whose cooperative matrix loads count as workgroup
    /// accesses, and whose arithmetic on a matrix counts the elements each invocation holds).
    pub mma: u32,
}

impl Mix {
    /// Adds what `o` issues.
    pub fn add(&mut self, o: &Mix) {
        self.fma += o.fma;
        self.float += o.float;
        self.int += o.int;
        self.shared += o.shared;
        self.global += o.global;
        self.barriers += o.barriers;
        self.branches += o.branches;
        self.lanes_moved += o.lanes_moved;
        self.mma += o.mma;
    }

    /// How a pass ranks the arms of a branch (the larger is taken): the one with the most
    /// multiply-adds, then the most data moved to or from memory, then the fewest
    /// instructions. So the pass does all the work and moves all the data a chunk has, by
    /// the fast path where there is one (the interior's, not the matrix edge's, which moves
    /// as much or less in more, narrower accesses).
    fn typical(&self) -> (u32, u32, u32, std::cmp::Reverse<u32>) {
        (
            self.mma,
            self.fma,
            self.lanes_moved,
            std::cmp::Reverse(self.issued()),
        )
    }

    /// Instructions issued: every lane of arithmetic, every access, branch and barrier (not
    /// the matrix units' products, `mma`).
    pub fn issued(&self) -> u32 {
        self.fma + self.float + self.int + self.shared + self.global + self.barriers + self.branches
    }
}

/// A block of a function: its instructions (label to terminator), the labels it may branch
/// to, and the construct it heads, if any.
struct Block {
    range: Range<usize>,
    succ: Vec<u32>,
    merge: Option<Merge>,
}

/// The construct a block heads: a loop (its continue target) or a selection (its merge
/// block).
enum Merge {
    Loop(u32),
    Selection(u32),
}

/// An innermost loop: its header, its blocks, and the blocks of its function.
struct Loop {
    header: u32,
    body: HashSet<u32>,
    blocks: Rc<HashMap<u32, Block>>,
}

/// A path through a loop's pass: what it issues, its blocks' instructions, and the block
/// where it ended.
#[derive(Clone, Default)]
struct Path {
    mix: Mix,
    ranges: Vec<Range<usize>>,
    end: Option<u32>,
}

impl Path {
    /// `self` followed by `next`.
    fn append(&mut self, next: Path) {
        self.mix.add(&next.mix);
        self.ranges.extend(next.ranges);
        self.end = next.end;
    }
}

/// One decoded instruction: its opcode and operand words.
struct Inst<'a> {
    op: u32,
    w: &'a [u32],
}

/// SPIR-V opcodes the count and the address evaluation (`banks`) look at.
mod op {
    pub const EXT_INST: u32 = 12;
    pub const EXECUTION_MODE: u32 = 16;
    pub const TYPE_BOOL: u32 = 20;
    pub const TYPE_INT: u32 = 21;
    pub const TYPE_FLOAT: u32 = 22;
    pub const TYPE_VECTOR: u32 = 23;
    pub const TYPE_ARRAY: u32 = 28;
    pub const TYPE_STRUCT: u32 = 30;
    pub const TYPE_POINTER: u32 = 32;
    pub const CONSTANT_TRUE: u32 = 41;
    pub const CONSTANT_FALSE: u32 = 42;
    pub const CONSTANT: u32 = 43;
    pub const CONSTANT_COMPOSITE: u32 = 44;
    pub const CONSTANT_NULL: u32 = 46;
    pub const FUNCTION: u32 = 54;
    pub const FUNCTION_END: u32 = 56;
    pub const FUNCTION_CALL: u32 = 57;
    pub const VARIABLE: u32 = 59;
    pub const LOAD: u32 = 61;
    pub const STORE: u32 = 62;
    pub const ACCESS_CHAIN: u32 = 65;
    pub const IN_BOUNDS_ACCESS_CHAIN: u32 = 66;
    pub const DECORATE: u32 = 71;
    pub const VECTOR_SHUFFLE: u32 = 79;
    pub const COMPOSITE_CONSTRUCT: u32 = 80;
    pub const COMPOSITE_EXTRACT: u32 = 81;
    pub const COPY_OBJECT: u32 = 83;
    pub const U_CONVERT: u32 = 113;
    pub const S_CONVERT: u32 = 114;
    pub const BITCAST: u32 = 124;
    pub const S_NEGATE: u32 = 126;
    pub const F_ADD: u32 = 129;
    pub const F_MUL: u32 = 133;
    pub const VECTOR_TIMES_SCALAR: u32 = 142;
    pub const MATRIX_TIMES_SCALAR: u32 = 143;
    pub const LOGICAL_NOT: u32 = 168;
    pub const SELECT: u32 = 169;
    pub const NOT: u32 = 200;
    pub const CONTROL_BARRIER: u32 = 224;
    pub const ATOMIC_LOAD: u32 = 227;
    pub const ATOMIC_STORE: u32 = 228;
    pub const ATOMIC_XOR: u32 = 242;
    pub const PHI: u32 = 245;
    pub const LOOP_MERGE: u32 = 246;
    pub const SELECTION_MERGE: u32 = 247;
    pub const LABEL: u32 = 248;
    pub const BRANCH: u32 = 249;
    pub const BRANCH_CONDITIONAL: u32 = 250;
    pub const SWITCH: u32 = 251;
    pub const KILL: u32 = 252;
    pub const RETURN: u32 = 253;
    pub const RETURN_VALUE: u32 = 254;
    pub const UNREACHABLE: u32 = 255;
    pub const TYPE_COOPERATIVE_MATRIX: u32 = 4456;
    pub const COOPERATIVE_MATRIX_LOAD: u32 = 4457;
    pub const COOPERATIVE_MATRIX_STORE: u32 = 4458;
    pub const COOPERATIVE_MATRIX_MUL_ADD: u32 = 4459;
}

/// Invocations of the subgroup that holds a cooperative matrix (NVIDIA's 32, which the
/// tensor-core builds require): each holds rows x columns / 32 of its elements.
const COOP_SUBGROUP: u32 = 32;

/// The storage classes whose accesses are counted (the others are registers, or constant-bank
/// operands on NVIDIA for uniforms).
const WORKGROUP: u32 = 4;
const STORAGE_BUFFER: u32 = 12;

/// GLSL.std.450's Fma.
const EXT_FMA: u32 = 50;

/// A decoded SPIR-V module: its instructions, the type of each result, the storage class of
/// each pointer, the lane count of each type, and each function's range of instructions.
struct Module<'a> {
    insts: Vec<Inst<'a>>,
    result_type: HashMap<u32, u32>,
    pointer_class: HashMap<u32, u32>,
    lanes: HashMap<u32, u32>,
    float_types: Vec<u32>,
    functions: HashMap<u32, (usize, usize)>,
    uses: HashMap<u32, u32>,
    fma_muls: HashSet<u32>,
    constants: HashSet<u32>,
}

/// Whether instruction `op` has a result type and id as its first two operands (the
/// constants, variables, loads, access chains, composites, arithmetic and calls; not the
/// types, labels, stores, branches and annotations).
fn has_result(op: u32) -> bool {
    matches!(
        op,
        12 | 41..=46
            | 50..=52
            | 54
            | 55
            | 57
            | 59
            | 61
            | 65..=67
            | 77..=83
            | 109..=205
            | 245
            | op::COOPERATIVE_MATRIX_LOAD
            | op::COOPERATIVE_MATRIX_MUL_ADD
            | op::ATOMIC_LOAD
            | 229..=op::ATOMIC_XOR
    )
}

impl<'a> Module<'a> {
    fn decode(words: &'a [u32]) -> Module<'a> {
        let mut insts = Vec::new();
        let mut i = 5;
        while i < words.len() {
            let n = (words[i] >> 16) as usize;
            insts.push(Inst {
                op: words[i] & 0xffff,
                w: &words[i + 1..i + n],
            });
            i += n;
        }
        let mut m = Module {
            insts,
            result_type: HashMap::new(),
            pointer_class: HashMap::new(),
            lanes: HashMap::new(),
            float_types: Vec::new(),
            functions: HashMap::new(),
            uses: HashMap::new(),
            fma_muls: Default::default(),
            constants: Default::default(),
        };
        let mut start = None;
        let mut producer: HashMap<u32, u32> = HashMap::new();
        // Values of 32-bit constants (a cooperative matrix type's rows and columns).
        let mut values: HashMap<u32, u32> = HashMap::new();
        for (k, inst) in m.insts.iter().enumerate() {
            let w = inst.w;
            match inst.op {
                op::CONSTANT if w.len() == 3 => {
                    values.insert(w[1], w[2]);
                }
                op::TYPE_COOPERATIVE_MATRIX if w.len() >= 5 => {
                    let dim = |id: u32| values.get(&id).copied().unwrap_or(16);
                    m.lanes
                        .insert(w[0], (dim(w[3]) * dim(w[4]) / COOP_SUBGROUP).max(1));
                    if m.float_types.contains(&w[1]) {
                        m.float_types.push(w[0]);
                    }
                }
                op::TYPE_BOOL | op::TYPE_INT => {
                    m.lanes.insert(w[0], 1);
                }
                op::TYPE_FLOAT => {
                    m.lanes.insert(w[0], 1);
                    m.float_types.push(w[0]);
                }
                op::TYPE_VECTOR => {
                    m.lanes.insert(w[0], w[2]);
                    if m.float_types.contains(&w[1]) {
                        m.float_types.push(w[0]);
                    }
                }
                op::TYPE_POINTER => {
                    m.pointer_class.insert(w[0], w[1]);
                }
                op::FUNCTION => start = Some((w[1], k)),
                op::FUNCTION_END => {
                    if let Some((id, s)) = start.take() {
                        m.functions.insert(id, (s, k));
                    }
                }
                _ => {}
            }
            if (op::CONSTANT..=op::CONSTANT_NULL).contains(&inst.op) {
                m.constants.insert(w[1]);
            }
            if has_result(inst.op) && w.len() >= 2 {
                m.result_type.insert(w[1], w[0]);
                producer.insert(w[1], inst.op);
                for &id in &w[2..] {
                    *m.uses.entry(id).or_default() += 1;
                }
            } else {
                for &id in w {
                    *m.uses.entry(id).or_default() += 1;
                }
            }
        }
        // Multiplies whose one use is a float add: fused with it.
        for inst in &m.insts {
            if inst.op == op::F_ADD {
                for &id in &inst.w[2..4] {
                    let is_mul = matches!(
                        producer.get(&id),
                        Some(&op::F_MUL)
                            | Some(&op::VECTOR_TIMES_SCALAR)
                            | Some(&op::MATRIX_TIMES_SCALAR)
                    );
                    if is_mul && m.uses.get(&id) == Some(&1) {
                        m.fma_muls.insert(id);
                        break;
                    }
                }
            }
        }
        m
    }

    /// The storage class of pointer `id`, from its type.
    fn class_of(&self, id: u32) -> Option<u32> {
        self.result_type
            .get(&id)
            .and_then(|t| self.pointer_class.get(t))
            .copied()
    }

    fn lanes_of(&self, result: u32) -> u32 {
        self.result_type
            .get(&result)
            .and_then(|t| self.lanes.get(t))
            .copied()
            .unwrap_or(1)
    }

    fn is_float(&self, result: u32) -> bool {
        self.result_type
            .get(&result)
            .is_some_and(|t| self.float_types.contains(t))
    }

    /// What instructions `range` issue, with the functions they call counted in.
    /// Instructions whose results are in `hoisted` are left out: they issue once, before
    /// the loop.
    fn mix(&self, range: Range<usize>, depth: usize, hoisted: &HashSet<u32>) -> Mix {
        let mut m = Mix::default();
        for inst in &self.insts[range] {
            let w = inst.w;
            if has_result(inst.op) && w.len() >= 2 && hoisted.contains(&w[1]) {
                continue;
            }
            match inst.op {
                op::LOAD | op::STORE => {
                    let (ptr, value) = if inst.op == op::LOAD {
                        (w[2], w[1])
                    } else {
                        (w[0], w[1])
                    };
                    match self.class_of(ptr) {
                        Some(WORKGROUP) => m.shared += 1,
                        Some(STORAGE_BUFFER) => m.global += 1,
                        _ => continue,
                    }
                    m.lanes_moved += self.lanes_of(value);
                }
                op::ACCESS_CHAIN | op::IN_BOUNDS_ACCESS_CHAIN => {
                    // A runtime index into memory costs an address computation.
                    let dynamic = w[3..].iter().any(|i| !self.constants.contains(i));
                    if dynamic && matches!(self.class_of(w[1]), Some(WORKGROUP | STORAGE_BUFFER)) {
                        m.int += 1;
                    }
                }
                op::COOPERATIVE_MATRIX_LOAD
                | op::COOPERATIVE_MATRIX_STORE
                | op::ATOMIC_LOAD..=op::ATOMIC_XOR => {
                    // Loads and read-modify-writes: (result type, result, pointer, ..).
                    let (ptr, value) = match inst.op {
                        op::COOPERATIVE_MATRIX_STORE => (w[0], w[1]),
                        op::ATOMIC_STORE if w.len() >= 4 => (w[0], w[3]),
                        _ if w.len() >= 3 => (w[2], w[1]),
                        _ => continue,
                    };
                    match self.class_of(ptr) {
                        Some(WORKGROUP) => m.shared += 1,
                        Some(STORAGE_BUFFER) => m.global += 1,
                        _ => continue,
                    }
                    m.lanes_moved += self.lanes_of(value);
                }
                op::COOPERATIVE_MATRIX_MUL_ADD => m.mma += 1,
                op::CONTROL_BARRIER => m.barriers += 1,
                op::BRANCH_CONDITIONAL | op::SWITCH => m.branches += 1,
                op::FUNCTION_CALL => {
                    if let Some(&(s, e)) = self.functions.get(&w[2])
                        && depth < 16
                    {
                        m.add(&self.mix(s..e, depth + 1, &HashSet::new()));
                    }
                }
                op::EXT_INST => {
                    // Float work by its result (integer min, max and clamp count as integer).
                    let lanes = self.lanes_of(w[1]);
                    if w[3] == EXT_FMA {
                        m.fma += lanes;
                    } else if self.is_float(w[1]) {
                        m.float += lanes;
                    } else {
                        m.int += lanes;
                    }
                }
                op::F_ADD if w[2..4].iter().any(|id| self.fma_muls.contains(id)) => {
                    m.fma += self.lanes_of(w[1]);
                }
                o if self.fma_muls.contains(&w.get(1).copied().unwrap_or(0))
                    && matches!(
                        o,
                        op::F_MUL | op::VECTOR_TIMES_SCALAR | op::MATRIX_TIMES_SCALAR
                    ) => {}
                // Arithmetic, comparisons, selects, conversions, bit operations.
                109..=115 | 124 | 126..=143 | 154..=205 => {
                    let lanes = self.lanes_of(w[1]);
                    if self.is_float(w[1]) {
                        m.float += lanes;
                    } else {
                        m.int += lanes;
                    }
                }
                _ => {}
            }
        }
        m
    }

    /// The innermost loops of every function: the natural loop of the back edge from its
    /// continue target to its header (the header and every block that reaches the continue
    /// target without passing the header), with the function's blocks.
    fn innermost_loops(&self) -> Vec<Loop> {
        let mut found = Vec::new();
        let mut fns: Vec<(usize, usize)> = self.functions.values().copied().collect();
        fns.sort();
        for (s, e) in fns {
            let blocks = Rc::new(self.blocks(s..e));
            let mut preds: HashMap<u32, Vec<u32>> = HashMap::new();
            for (&b, block) in blocks.iter() {
                for &t in &block.succ {
                    preds.entry(t).or_default().push(b);
                }
            }
            let bodies: Vec<(u32, HashSet<u32>)> = blocks
                .iter()
                .filter_map(|(&h, b)| match b.merge {
                    Some(Merge::Loop(cont)) => Some((h, cont)),
                    _ => None,
                })
                .map(|(header, cont)| {
                    let mut body = HashSet::from([header]);
                    let mut stack = vec![cont];
                    while let Some(b) = stack.pop() {
                        if body.insert(b) {
                            stack.extend(preds.get(&b).into_iter().flatten().copied());
                        }
                    }
                    (header, body)
                })
                .collect();
            for (header, body) in &bodies {
                let nested = bodies.iter().any(|(h, _)| h != header && body.contains(h));
                if !nested {
                    found.push(Loop {
                        header: *header,
                        body: body.clone(),
                        blocks: Rc::clone(&blocks),
                    });
                }
            }
        }
        found.sort_by_key(|l| l.blocks.get(&l.header).map(|b| b.range.start));
        found
    }

    /// The blocks of the function whose instructions are `range`, by label.
    fn blocks(&self, range: Range<usize>) -> HashMap<u32, Block> {
        let mut blocks = HashMap::new();
        let mut current: Option<(u32, usize)> = None;
        let mut merge = None;
        for k in range {
            let inst = &self.insts[k];
            let w = inst.w;
            match inst.op {
                op::LABEL => {
                    current = Some((w[0], k));
                    merge = None;
                }
                op::LOOP_MERGE => merge = Some(Merge::Loop(w[1])),
                op::SELECTION_MERGE => merge = Some(Merge::Selection(w[0])),
                op::BRANCH
                | op::BRANCH_CONDITIONAL
                | op::SWITCH
                | op::RETURN
                | op::RETURN_VALUE
                | op::KILL
                | op::UNREACHABLE => {
                    let succ = match inst.op {
                        op::BRANCH => vec![w[0]],
                        op::BRANCH_CONDITIONAL => vec![w[1], w[2]],
                        // Default, then (literal, label) pairs.
                        op::SWITCH => std::iter::once(w[1])
                            .chain(w[2..].iter().skip(1).step_by(2).copied())
                            .collect(),
                        _ => Vec::new(),
                    };
                    if let Some((id, start)) = current.take() {
                        blocks.insert(
                            id,
                            Block {
                                range: start..k + 1,
                                succ,
                                merge: merge.take(),
                            },
                        );
                    }
                }
                _ => {}
            }
        }
        blocks
    }

    /// The typical path of one pass through loop `lp` from block `from` to the end of the
    /// construct it is in: the first of `stops` (the merge blocks of the selections around
    /// it) it reaches, the back edge, or a branch out of the loop; its blocks' instructions,
    /// what they issue, and where it ended. Of the arms of a selection (an if, a switch) one
    /// is taken, as an invocation runs one of them: the one doing the most work by
    /// `Mix::typical`, to that end (an arm that leaves the construct early, a return from an
    /// inlined function, ends there; one that reaches its merge block goes on from there). `memo` holds the paths from the
    /// blocks walked (the stops a block sees are those of the constructs around it).
    fn walk(
        &self,
        lp: &Loop,
        from: u32,
        stops: &mut Vec<u32>,
        hoisted: &HashSet<u32>,
        memo: &mut HashMap<u32, Path>,
    ) -> Path {
        // A construct's end is where its walks stop, not a walk of its own to remember.
        if stops.contains(&from) {
            return Path {
                end: Some(from),
                ..Path::default()
            };
        }
        if let Some(p) = memo.get(&from) {
            return p.clone();
        }
        let mut out = Path::default();
        let mut cur = from;
        let mut first = true;
        loop {
            let ends = stops.contains(&cur) || (!first && cur == lp.header);
            if ends || !lp.body.contains(&cur) {
                out.end = Some(cur);
                break;
            }
            first = false;
            let Some(block) = lp.blocks.get(&cur) else {
                break;
            };
            out.mix.add(&self.mix(block.range.clone(), 0, hoisted));
            out.ranges.push(block.range.clone());
            if let Some(Merge::Selection(m)) = block.merge {
                stops.push(m);
                let mut best: Option<Path> = None;
                for &arm in &block.succ {
                    let mut p = if arm == m {
                        Path {
                            end: Some(m),
                            ..Path::default()
                        }
                    } else {
                        self.walk(lp, arm, stops, hoisted, memo)
                    };
                    if p.end == Some(m) {
                        stops.pop();
                        p.append(self.walk(lp, m, stops, hoisted, memo));
                        stops.push(m);
                    }
                    if best
                        .as_ref()
                        .is_none_or(|b| p.mix.typical() > b.mix.typical())
                    {
                        best = Some(p);
                    }
                }
                stops.pop();
                if let Some(b) = best {
                    out.append(b);
                }
                break;
            }
            // A loop header's test, or a branch out of the loop: on into the body.
            match block.succ.iter().find(|a| lp.body.contains(a)) {
                Some(&next) => cur = next,
                None => break,
            }
        }
        memo.insert(from, out.clone());
        out
    }

    /// The hot loop (the innermost loop with the most multiply-adds, then the most workgroup
    /// accesses): what the typical path of a pass issues, and its instructions.
    fn hot_ranges(&self) -> Option<(Mix, Vec<Range<usize>>)> {
        self.loop_passes()
            .into_iter()
            .max_by_key(|(mix, _)| (mix.fma, mix.shared))
    }

    /// One pass through each innermost loop (as [`hot_loop`] counts it), in the order of
    /// their headers in the module.
    fn loop_passes(&self) -> Vec<(Mix, Vec<Range<usize>>)> {
        let mut loops = self.innermost_loops();
        loops.sort_by_key(|lp| lp.blocks.get(&lp.header).map(|b| b.range.start));
        loops
            .into_iter()
            .map(|lp| {
                let all: Vec<Range<usize>> = lp
                    .body
                    .iter()
                    .filter_map(|b| lp.blocks.get(b))
                    .map(|b| b.range.clone())
                    .collect();
                let hoisted = self.invariant(&all);
                let path = self.walk(
                    &lp,
                    lp.header,
                    &mut Vec::new(),
                    &hoisted,
                    &mut HashMap::new(),
                );
                (path.mix, path.ranges)
            })
            .collect()
    }

    /// The results of the loop made of `ranges` that every pass computes alike: arithmetic
    /// and addresses whose operands are all defined outside the loop or are alike
    /// themselves. Every driver's compiler hoists them out of the loop (spirv-opt -O does
    /// not, and its own pass for it also moves workgroup loads across barriers, so the count
    /// does it instead). Memory accesses, phis and calls never are.
    fn invariant(&self, ranges: &[Range<usize>]) -> HashSet<u32> {
        let insts = || ranges.iter().flat_map(|r| &self.insts[r.clone()]);
        let defined: HashSet<u32> = insts()
            .filter(|i| has_result(i.op) && i.w.len() >= 2)
            .map(|i| i.w[1])
            .collect();
        let pure = |op: u32| {
            matches!(
                op,
                op::EXT_INST | op::ACCESS_CHAIN | op::IN_BOUNDS_ACCESS_CHAIN | 79..=83 | 109..=205
            ) && op != op::CONTROL_BARRIER
        };
        let mut hoisted = HashSet::new();
        loop {
            let before = hoisted.len();
            for i in insts() {
                if !pure(i.op) || i.w.len() < 2 || hoisted.contains(&i.w[1]) {
                    continue;
                }
                let alike = i.w[2..]
                    .iter()
                    .all(|id| !defined.contains(id) || hoisted.contains(id));
                if alike {
                    hoisted.insert(i.w[1]);
                }
            }
            if hoisted.len() == before {
                return hoisted;
            }
        }
    }
}

/// What one pass through the hot loop of SPIR-V module `words` issues: its innermost loop
/// with the most multiply-adds (then the most workgroup accesses); `None` without loops.
pub fn hot_loop(words: &[u32]) -> Option<Mix> {
    let m = Module::decode(words);
    m.hot_ranges().map(|(mix, _)| mix)
}

/// What one pass through each innermost loop of SPIR-V module `words` issues, in the order
/// they appear in it (counted as [`hot_loop`] counts the hottest): for loops beside the hot
/// one, such as a kernel's staging.
pub fn loops(words: &[u32]) -> Vec<Mix> {
    let m = Module::decode(words);
    m.loop_passes().into_iter().map(|(mix, _)| mix).collect()
}

/// How often, after the last barrier of each function of SPIR-V module `words` (a step
/// kernel's cell update, once its products are summed), a load from a storage buffer
/// follows, in program order, a store into the same buffer: a compiler keeps such a load
/// behind the store, as it cannot tell their elements apart, so each turn is one more
/// memory latency in a row. Loops are read once (count an unrolled build,
/// [`optimize_unrolled`]), and code behind a branch counts as taken.
pub fn tail_store_load_turns(words: &[u32]) -> u32 {
    let m = Module::decode(words);
    // The storage variable each pointer reaches into.
    let mut root: HashMap<u32, u32> = HashMap::new();
    for inst in &m.insts {
        let w = inst.w;
        match inst.op {
            op::VARIABLE if w.len() >= 3 && w[2] == STORAGE_BUFFER => {
                root.insert(w[1], w[1]);
            }
            op::ACCESS_CHAIN | op::IN_BOUNDS_ACCESS_CHAIN if w.len() >= 3 => {
                if let Some(&r) = root.get(&w[2]) {
                    root.insert(w[1], r);
                }
            }
            _ => {}
        }
    }
    let mut turns = 0;
    for &(s, e) in m.functions.values() {
        let body = &m.insts[s..e];
        let start = body
            .iter()
            .rposition(|i| i.op == op::CONTROL_BARRIER)
            .unwrap_or(0);
        let mut stored: HashSet<u32> = HashSet::new();
        for inst in &body[start..] {
            match inst.op {
                op::STORE => {
                    if let Some(&r) = inst.w.first().and_then(|p| root.get(p)) {
                        stored.insert(r);
                    }
                }
                op::LOAD
                    if inst.w.len() >= 3
                        && root.get(&inst.w[2]).is_some_and(|r| stored.contains(r)) =>
                {
                    turns += 1;
                    stored.clear();
                }
                _ => {}
            }
        }
    }
    turns
}

/// The size of SPIR-V module `words`' code as a scalar GPU holds it: what every instruction
/// of its functions issues once, vector lanes counted one by one, calls not followed (after
/// `optimize` a module is one function with every call inlined). What an instruction cache
/// has to hold of a kernel, in instructions: a chunk written out twice in a loop of pairs
/// counts twice.
pub fn code_size(words: &[u32]) -> u32 {
    let m = Module::decode(words);
    m.functions
        .values()
        .map(|&(s, e)| m.mix(s..e, 16, &HashSet::new()).issued())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::{
        Checks, Mix, code_size, hot_loop, loops, optimize, optimize_unrolled, spirv,
        tail_store_load_turns,
    };

    /// A kernel whose inner loop does 4 multiply-adds from 2 workgroup reads per pass, inside
    /// an outer loop with a global load and a barrier.
    const KERNEL: &str = "
        var<workgroup> ws: array<vec4<f32>, 64>;
        @group(0) @binding(0) var<storage, read_write> out: array<vec4<f32>>;
        override N: u32 = 4u;
        @compute @workgroup_size(64)
        fn main(@builtin(local_invocation_index) l: u32) {
            var acc = vec4<f32>(0.0);
            for (var c = 0u; c < N; c++) {
                ws[l] = out[c * 64u + l];
                workgroupBarrier();
                for (var k = 0u; k < 16u; k++) {
                    let w = ws[k];
                    acc += w.x * ws[k + 16u];
                }
                workgroupBarrier();
            }
            out[l] = acc;
        }
    ";

    fn hot(checks: Checks) -> Mix {
        let words = spirv(KERNEL, "main", &[("N", 8.0)], checks).expect("SPIR-V");
        hot_loop(&words).expect("a loop")
    }

    #[test]
    fn the_hot_loop_is_the_inner_one_counted_by_kind() {
        let m = hot(Checks::Unchecked);
        // One vec4 multiply-add, two workgroup reads, no global access or barrier (those are
        // in the outer loop), one exit branch.
        assert_eq!(
            (m.fma, m.float, m.shared, m.global, m.barriers),
            (4, 0, 2, 0, 0)
        );
        assert_eq!(m.branches, 1);
        // The counter's increment and comparison, k + 16, and the two reads' addresses.
        assert_eq!(m.int, 5);
        assert_eq!(m.issued(), 4 + 2 + 1 + 5);
    }

    /// A chunk loop on the matrix units: two 16x16x16 products from three matrix loads of
    /// workgroup memory, an atomic on a scale word, and the products scaled into the
    /// accumulator by one multiply-add a held element.
    const COOP_KERNEL: &str = "
        enable f16;
        enable wgpu_cooperative_matrix;
        var<workgroup> hs: array<f16, 512>;
        var<workgroup> top: atomic<u32>;
        @group(0) @binding(0) var<storage, read_write> out: array<f32>;
        @compute @workgroup_size(32)
        fn main(@builtin(local_invocation_index) l: u32) {
            var c = coop_mat16x16<f32, C>();
            for (var k = 0u; k < 8u; k++) {
                let ia = k * 16u;
                let ib = ia + 256u;
                let a = coopLoad<coop_mat16x16<f16, A>>(&hs[ia], 16u);
                let b = coopLoad<coop_mat16x16<f16, B>>(&hs[ib], 16u);
                let b2 = coopLoad<coop_mat16x16<f16, B>>(&hs[ia], 16u);
                var t = coop_mat16x16<f32, C>();
                t = coopMultiplyAdd(a, b, t);
                t = coopMultiplyAdd(a, b2, t);
                atomicMax(&top, l);
                c = c + t * 0.5;
            }
            coopStore(c, &out[0], 16u);
        }
    ";

    #[test]
    fn matrix_unit_products_are_counted_beside_the_issued_ones() {
        let words = spirv(COOP_KERNEL, "main", &[], Checks::Unchecked).expect("SPIR-V");
        let m = hot_loop(&words).expect("a loop");
        assert_eq!(m.mma, 2, "{m:?}");
        // Three matrix loads and the atomic, from workgroup memory.
        assert_eq!(m.shared, 4, "{m:?}");
        // t * 0.5 feeding c + ...: one multiply-add for each of the 8 elements an invocation
        // of a subgroup of 32 holds of a 16x16 matrix.
        assert_eq!((m.fma, m.float), (8, 0), "{m:?}");
    }

    #[test]
    fn every_innermost_loop_in_the_order_written() {
        // KERNEL with a staging loop before the hot one: two innermost loops (the outer
        // loop holds them, so it is not one), the staging first.
        let staged = KERNEL.replace(
            "ws[l] = out[c * 64u + l];",
            "for (var e = l; e < 64u; e += 16u) { ws[e] = out[c * 64u + e]; }",
        );
        assert_ne!(staged, KERNEL);
        let words = spirv(&staged, "main", &[("N", 8.0)], Checks::Unchecked).expect("SPIR-V");
        let all = loops(&words);
        assert_eq!(all.len(), 2, "{all:?}");
        // The staging: one global load and one workgroup store a pass, no arithmetic.
        assert_eq!((all[0].fma, all[0].global, all[0].shared), (0, 1, 1));
        // The hot loop, as hot_loop counts it.
        assert_eq!(Some(all[1]), hot_loop(&words));
        assert_eq!((all[1].fma, all[1].shared), (4, 2));
    }

    #[test]
    fn loads_behind_stores_into_their_buffer_are_counted_after_the_last_barrier() {
        // Two elements updated one after the other: the second's load follows the first's
        // store into the same buffer (one turn); loaded both first, none. A store into
        // another buffer, or before the barrier, does not count.
        let kernel = |body: &str| {
            format!(
                "@group(0) @binding(0) var<storage, read_write> a: array<f32>;
                 @group(0) @binding(1) var<storage, read_write> o: array<f32>;
                 @compute @workgroup_size(64)
                 fn main(@builtin(local_invocation_index) l: u32) {{
                     a[l + 500u] = 1.0;
                     workgroupBarrier();
                     {body}
                 }}"
            )
        };
        let turns = |body: &str| {
            let words = spirv(&kernel(body), "main", &[], Checks::Unchecked).expect("SPIR-V");
            tail_store_load_turns(&words)
        };
        assert_eq!(
            turns("a[l] = a[l] + 1.0; a[l + 64u] = a[l + 64u] + 1.0;"),
            1
        );
        assert_eq!(
            turns("let x = a[l]; let y = a[l + 64u]; a[l] = x + 1.0; a[l + 64u] = y + 1.0;"),
            0
        );
        assert_eq!(turns("o[l] = a[l]; o[l + 64u] = a[l + 64u];"), 0);
        assert_eq!(
            turns("a[l] = a[l] + 1.0; a[l + 64u] = a[l + 64u] + 1.0; a[l + 128u] = a[l + 128u];"),
            2
        );
    }

    #[test]
    fn checks_add_clamps_and_loop_counters() {
        let (unchecked, checked, counted) = (
            hot(Checks::Unchecked),
            hot(Checks::Checked),
            hot(Checks::Counted),
        );
        // Checked: each workgroup index clamped once; the same arithmetic otherwise.
        assert_eq!(checked.int, unchecked.int + 2);
        assert_eq!((checked.fma, checked.shared), (4, 2));
        // Counted: the 64-bit loop counter, its test and a second exit.
        assert!(counted.int >= checked.int + 4, "{counted:?} {checked:?}");
        assert_eq!(counted.branches, checked.branches + 1);
        // Storage checks sit outside this loop.
        assert_eq!(hot(Checks::NoRba2), checked);
    }

    #[test]
    fn a_module_naga_refuses_says_why() {
        let err = spirv("fn f( {", "main", &[], Checks::Checked).expect_err("bad WGSL");
        assert!(!err.is_empty());
        let err = spirv(KERNEL, "absent", &[], Checks::Checked).expect_err("no such entry");
        assert!(!err.is_empty());
    }

    #[test]
    fn what_every_pass_computes_alike_is_left_out() {
        let plain = hot(Checks::Unchecked);
        // KERNEL with an address worked out inside the loop from values that are the same
        // in every pass.
        let invariant = KERNEL.replace(
            "acc += w.x * ws[k + 16u];",
            "let far = (l * 7u + 3u) % 16u;\n acc += w.x * ws[k + 16u + far];",
        );
        assert_ne!(invariant, KERNEL);
        let words = spirv(&invariant, "main", &[("N", 8.0)], Checks::Unchecked).expect("SPIR-V");
        let m = hot_loop(&words).expect("a loop");
        // `far` (a multiply, an add, a remainder) issues before the loop; its use in the
        // second read's address is one more add per pass.
        assert_eq!(m.int, plain.int + 1, "{m:?} {plain:?}");
        assert_eq!((m.fma, m.shared), (plain.fma, plain.shared));
    }

    /// A loop that branches: a slow arm and a fast one with the same loads and multiply-adds
    /// (the fast one is the typical pass), and an arm that moves data, against one that does
    /// nothing (the one moving data is taken). `slow` is the slow arm's text, or the fast
    /// one's.
    fn branches(slow: &str) -> String {
        format!(
            "
            struct P {{ fast: u32, more: u32 }}
            @group(0) @binding(0) var<uniform> p: P;
            @group(0) @binding(1) var<storage, read_write> out: array<vec4<f32>>;
            var<workgroup> ws: array<vec4<f32>, 64>;
            @compute @workgroup_size(64)
            fn main(@builtin(local_invocation_index) l: u32) {{
                var acc = vec4<f32>(0.0);
                for (var k = 0u; k < 16u; k++) {{
                    if (p.fast == 0u) {{
                        {slow}
                    }} else {{
                        acc += out[k] * ws[l];
                    }}
                    if (k < p.more) {{
                        ws[k] = out[k + 16u];
                    }}
                }}
                out[l] = acc;
            }}
        "
        )
    }

    #[test]
    fn a_pass_takes_the_arms_doing_the_most_work_by_the_fast_path() {
        let slow = "acc += out[min(k * 3u, 15u)] * ws[(l * 5u + k) % 64u];";
        let words = spirv(&branches(slow), "main", &[], Checks::Unchecked).expect("SPIR-V");
        let m = hot_loop(&words).expect("a loop");
        // One global load and one workgroup read in either arm, a load and a store in the
        // second if's arm; one vec4 multiply-add.
        assert_eq!((m.global, m.shared, m.fma), (2, 2, 4), "{m:?}");
        // The fast arm's arithmetic: as if both arms were the fast one.
        let fast = "acc += out[k] * ws[l];";
        let words = spirv(&branches(fast), "main", &[], Checks::Unchecked).expect("SPIR-V");
        assert_eq!(m, hot_loop(&words).expect("a loop"));
    }

    #[test]
    fn a_fast_path_of_wide_loads_beats_an_edge_of_narrow_ones() {
        // The GEMM's operand loads: one vec4 inside the matrix, up to three floats at its
        // edge (more accesses, less data).
        let src = "
            struct P { room: u32 }
            @group(0) @binding(0) var<uniform> p: P;
            @group(0) @binding(1) var<storage, read_write> out: array<vec4<f32>>;
            @group(0) @binding(2) var<storage, read> flat: array<f32>;
            @compute @workgroup_size(64)
            fn main(@builtin(local_invocation_index) l: u32) {
                var acc = vec4<f32>(0.0);
                for (var k = 0u; k < 16u; k++) {
                    var v = vec4<f32>(0.0);
                    if (p.room == 4u) {
                        v = out[k];
                    } else {
                        v.x = flat[4u * k];
                        if (p.room > 1u) { v.y = flat[4u * k + 1u]; }
                        if (p.room > 2u) { v.z = flat[4u * k + 2u]; }
                    }
                    acc += v * v;
                }
                out[l] = acc;
            }
        ";
        let words = spirv(src, "main", &[], Checks::Unchecked).expect("SPIR-V");
        let m = hot_loop(&words).expect("a loop");
        assert_eq!((m.global, m.lanes_moved, m.fma), (1, 4, 4), "{m:?}");
    }

    /// A chunk loop of unknown trip count around two halves, each a 4-pass loop and a
    /// barrier (the GEMM tiles' pairs of chunks).
    const CHUNKS: &str = "
        struct P { n: u32 }
        @group(0) @binding(0) var<uniform> p: P;
        @group(0) @binding(1) var<storage, read_write> out: array<vec4<f32>>;
        var<workgroup> ws: array<vec4<f32>, 64>;
        @compute @workgroup_size(64)
        fn main(@builtin(local_invocation_index) l: u32) {
            var acc = vec4<f32>(0.0);
            for (var c = 0u; c < p.n; c++) {
                for (var half = 0u; half < 2u; half++) {
                    ws[l] = out[c * 64u + l];
                    workgroupBarrier();
                    for (var k = 0u; k < 4u; k++) {
                        acc += ws[k] * ws[k + 4u];
                    }
                    workgroupBarrier();
                }
            }
            out[l] = acc;
        }
    ";

    /// Needs spirv-opt and spirv-val (`apt-get install spirv-tools`; `.ci/run` installs them).
    #[test]
    fn unrolled_the_hot_loop_is_the_whole_chunk() {
        let words = spirv(CHUNKS, "main", &[], Checks::Unchecked).expect("SPIR-V");
        let as_written = optimize(&words, "test-chunks").expect("spirv-opt (spirv-tools)");
        let m = hot_loop(&as_written).expect("a loop");
        assert_eq!((m.fma, m.shared, m.barriers), (4, 2, 0), "{m:?}");
        let unrolled = optimize_unrolled(&words, "test-chunks").expect("spirv-opt (spirv-tools)");
        let m = hot_loop(&unrolled).expect("a loop");
        // The pair of chunks (the inner loops unrolled first, then the halves): 8 passes'
        // multiply-adds and reads, the staging stores, the global loads and the barriers.
        assert_eq!(
            (m.fma, m.shared, m.global, m.barriers),
            (32, 18, 2, 4),
            "{m:?}"
        );
        // Unrolled, the code holds 8 copies of the inner loop's body where it held one: 7
        // more of its 4 multiply-adds and 2 reads, less the two loops' counters, tests and
        // branches.
        let (rolled, written_out) = (code_size(&as_written), code_size(&unrolled));
        assert!(written_out <= rolled + 7 * 6, "{rolled} -> {written_out}");
        assert!(
            written_out >= rolled + 7 * 6 - 10,
            "{rolled} -> {written_out}"
        );
    }
}
