//! The GPU runtime under every kernel: device and queue, the pipeline cache, buffers, and the
//! lazily recorded command encoder.
//!
//! Work is recorded and submitted in growing pieces (32 dispatches, then 64, 128, up to 512),
//! so the device starts on a training step while the host still records the rest of it,
//! until the host needs a result (`read`) or writes into a buffer that recorded work may
//! still use (`write`); the next piece after that is small again. With
//! [`Gpu::set_first_submission`]`(0)` a whole training step is one submission. Each dispatch
//! gets its parameters (sizes, offsets, flags: at most [`MAX_PARAMS`] 32-bit words) in its
//! own 256-byte slots of one uniform arena buffer (one slot, or a few for the parameters of
//! several layers' steps in one dispatch), written once, just before its submission.
//! A dispatch that binds what one before it bound (pipeline, slot, buffers: the same
//! dispatch of the next step) reuses its bind group.
//!
//! Buffers are recycled: a dropped [`GpuBuffer`] goes back to a pool keyed by its size, and the
//! next request of that size reuses it, so a training step of a shape seen before allocates
//! nothing. A host write into a buffer forces a submission only when recorded work still uses
//! that buffer. Where the adapter offers `TIMESTAMP_QUERY`, [`Gpu::profile`] times every
//! dispatch (see [`KernelTime`]).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::device::{self, GpuError};
use super::gemm::{GemmTiles, Tile};
use super::gemm_measure::{Race, Shape as ProductShape};
use super::measured::Kept;

/// Bytes of one dispatch's parameter slot (the usual uniform offset alignment).
const SLOT: u64 = 256;
/// Parameter words a dispatch may pass (in up to 8 slots).
pub const MAX_PARAMS: usize = 8 * (SLOT / 4) as usize;
/// The most storage buffers a kernel binds per shader stage (the row-wise backward steps and
/// the f32 step tiles), leaving out the tiles' optional vec4 binding of the parameters
/// (`shaders/params_vec4.wgsl`): WebGPU's default limit, which [`Gpu::new`] requires of the
/// adapter and the tiles keep to where it has no more. `tests/shader_style.rs` counts the
/// bindings of every entry point against it.
pub const KERNEL_STORAGE_BUFFERS: u32 = 8;

/// Whether an adapter with `limits` has a storage buffer per shader stage beyond the
/// kernels' [`KERNEL_STORAGE_BUFFERS`], for the step tiles' vec4 binding of the parameters.
fn has_spare_binding(limits: &wgpu::Limits) -> bool {
    limits.max_storage_buffers_per_shader_stage > KERNEL_STORAGE_BUFFERS
}

/// Refuses an adapter whose `limits` the kernels exceed, naming the limit: every layer's
/// backward binds [`KERNEL_STORAGE_BUFFERS`] storage buffers, where Vulkan's minimum is 4
/// (older mobile GPUs; wgpu's downlevel limits), and pipelines built beyond the limit would
/// fail in the middle of a run. Workgroup memory needs no check here: the kernels every model
/// runs take at most 8 KiB, within WebGPU's 16 KiB minimum, and those that take more are
/// chosen only where it fits.
pub fn check_limits(adapter: &str, limits: &wgpu::Limits) -> Result<(), GpuError> {
    let has = limits.max_storage_buffers_per_shader_stage;
    if has < KERNEL_STORAGE_BUFFERS {
        return Err(GpuError::Limit {
            adapter: adapter.to_string(),
            limit: "max_storage_buffers_per_shader_stage",
            has,
            needs: KERNEL_STORAGE_BUFFERS,
        });
    }
    Ok(())
}

/// Dispatches recorded before a submission is forced (arena size / slot size).
const ARENA_SLOTS: u64 = 8192;
/// Dispatches of the first submission after the host has waited for the device, where
/// recording is submitted in pieces ([`Gpu::set_first_submission`]): the device starts on
/// them while the host records the rest, and each later piece takes twice as many, up to
/// [`LAST_SUBMISSION`].
pub const FIRST_SUBMISSION: u32 = 32;
/// The most dispatches one piece of a submitted-in-pieces recording takes.
const LAST_SUBMISSION: u32 = 512;
/// Bind groups kept for reuse before the cache starts afresh.
const BIND_GROUPS_KEPT: usize = 16384;
/// Loop iterations llvmpipe lets one invocation of a kernel run, every loop of it together,
/// before it ends them all (Mesa's `LP_MAX_TGSI_LOOP_ITERATIONS`; [`Gpu::loops_are_capped`]).
pub const LLVMPIPE_LOOP_BUDGET: u32 = 65535;
/// Whether the adapter of this name and driver caps its kernels' loops at
/// [`LLVMPIPE_LOOP_BUDGET`] ([`Gpu::loops_are_capped`]): llvmpipe does.
pub fn loops_capped(name: &str, driver: &str) -> bool {
    let llvmpipe = |s: &str| s.to_lowercase().starts_with("llvmpipe");
    llvmpipe(name) || llvmpipe(driver)
}

/// Iterations of a kernel's one loop over the data that a dispatch takes where loops are
/// capped ([`Gpu::loop_piece`]): half of llvmpipe's budget, the rest left to the kernel's
/// other loops (the mean pooling's steps, an id's embedding-gradient positions).
pub const CAPPED_LOOP_PIECE: usize = (LLVMPIPE_LOOP_BUDGET as usize).div_ceil(2);
/// Workgroups per dimension a dispatch may use (WebGPU's minimum maximum).
pub const MAX_GROUPS: u32 = 65535;

/// Byte alignment of the parts of a joined buffer ([`Gpu::joined`]): WebGPU's largest
/// `min_storage_buffer_offset_alignment`.
const JOIN_ALIGN: usize = 256;
/// Bytes of dropped buffers kept for reuse; beyond this they are freed.
const POOL_CAP: u64 = 1 << 30;
/// Timestamp queries per query set (wgpu's maximum): two per timed dispatch.
const QUERIES: u32 = wgpu::QUERY_SET_MAX_QUERIES;

/// WGSL shared by every kernel: activations, the 1-D grid index.
const COMMON_WGSL: &str = include_str!("../../../shaders/common.wgsl");

/// Most ranges one dispatch of `shaders/copy_within.wgsl` copies ([`Gpu::copy_within`]).
pub const COPY_RANGES: usize = 8;

/// The copies between ranges of one buffer (`Gpu::copy_within`).
pub(super) static COPY_WITHIN: Shader = Shader {
    name: "copy_within",
    source: include_str!("../../../shaders/copy_within.wgsl"),
};

/// A kernel family: one WGSL file.
#[derive(Debug)]
pub struct Shader {
    /// File stem (also the stem of its CPU twin).
    pub name: &'static str,
    /// WGSL source, without the common prelude.
    pub source: &'static str,
}

impl Shader {
    /// The module the device compiles: the source's `enable` directives (which must open a
    /// module), `shaders/common.wgsl`, then the rest of the source.
    pub fn module_source(&self) -> String {
        let (enables, body): (Vec<&str>, Vec<&str>) =
            self.source.lines().partition(|l| l.starts_with("enable "));
        format!("{}\n{COMMON_WGSL}\n{}", enables.join("\n"), body.join("\n"))
    }
}

/// Which pipeline: shader, entry point and the values of its `override` constants.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct PipelineKey {
    shader: &'static str,
    checked: bool,
    entry: &'static str,
    constants: Vec<(&'static str, u64)>,
}

/// A compute pipeline with the name it is profiled under (`shader.entry`).
#[derive(Clone, Debug)]
pub struct Kernel {
    pipeline: wgpu::ComputePipeline,
    label: Arc<str>,
}

impl Kernel {
    /// Whether `other` is the same pipeline.
    pub fn same(&self, other: &Kernel) -> bool {
        self.pipeline == other.pipeline
    }
}

/// Buffers that were dropped, kept by size for reuse, with the byte counts of the runtime.
#[derive(Debug, Default)]
struct Pool {
    /// Free buffers by byte size, each with the epoch of its last recorded use.
    free: HashMap<u64, Vec<(wgpu::Buffer, u64)>>,
    /// Bytes in live [`GpuBuffer`]s.
    live: u64,
    /// Bytes in `free`.
    pooled: u64,
    /// The most `live + pooled` has been since the last [`Gpu::reset_peak`].
    peak: u64,
    /// Buffers created on the device (not counting reuses).
    created: u64,
    /// Buffers given back to the device (beyond the pool's cap, or by a trim): cached bind
    /// groups may hold them, so the cache is emptied when this changes.
    released: u64,
}

impl Pool {
    fn note_peak(&mut self) {
        self.peak = self.peak.max(self.live + self.pooled);
    }
}

/// A buffer on the GPU of 4-byte elements (f32 or u32) or of f16 elements, with its length
/// in elements. Dropping it returns its memory to the runtime's pool. It may be a part of a
/// larger buffer ([`Gpu::joined`]): then it binds, clears and copies only its own range,
/// and the whole goes back to the pool when its last part is dropped.
#[derive(Debug)]
pub struct GpuBuffer {
    pub(crate) buf: wgpu::Buffer,
    len: usize,
    /// Byte offset of this part in `buf` (0 for a buffer of its own).
    base: u64,
    /// The buffer this is a part of, kept alive (and touched) with it.
    whole: Option<Arc<GpuBuffer>>,
    /// Whether its elements are f16 (2 bytes) rather than 4-byte words.
    half: bool,
    /// Epoch (submission number) of the last recorded command that used it.
    used: AtomicU64,
    pool: Arc<Mutex<Pool>>,
}

impl GpuBuffer {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether the buffer has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Whether its elements are f16 (`Gpu::buffer_f16`).
    pub fn is_f16(&self) -> bool {
        self.half
    }
    /// Bytes of one element.
    fn elem(&self) -> usize {
        if self.half { 2 } else { 4 }
    }
    /// Byte offset in `buf` and size of elements `at..at + len`, which must lie on 4-byte
    /// boundaries (clears and copies work in whole words).
    fn bytes(&self, at: usize, len: usize) -> (u64, u64) {
        let (o, n) = (at * self.elem(), len * self.elem());
        assert!(
            o % 4 == 0 && n % 4 == 0,
            "f16 range {at}+{len} is not word-aligned"
        );
        (self.base + o as u64, n as u64)
    }
    /// Bytes this buffer binds: its elements in whole words (a part of a joined buffer), or
    /// the whole allocation.
    fn size(&self) -> u64 {
        match self.whole {
            Some(_) => ((self.len.max(1) * self.elem()).next_multiple_of(16)) as u64,
            None => self.buf.size(),
        }
    }
    fn touch(&self, epoch: u64) {
        self.used.store(epoch, Ordering::Relaxed);
        if let Some(w) = &self.whole {
            w.touch(epoch);
        }
    }
    /// The buffer this one is a part of ([`Gpu::joined`]) and the element where this part
    /// starts in it, for kernels that reach every part in one dispatch.
    pub fn whole(&self) -> Option<(&GpuBuffer, usize)> {
        let w = self.whole.as_deref()?;
        Some((w, self.base as usize / self.elem()))
    }
    /// What this buffer is bound as where one dispatch reaches several parts of a joined
    /// buffer: that buffer and the element where this part starts in it, or itself and 0.
    pub fn resolved(&self) -> (&GpuBuffer, usize) {
        self.whole().unwrap_or((self, 0))
    }
    /// Byte offset and size of what it binds: a joined buffer's first part starts where
    /// its whole does, but binds less.
    fn bound(&self) -> (u64, u64) {
        (self.base, self.size())
    }
    fn binding(&self) -> wgpu::BindingResource<'_> {
        match self.whole {
            Some(_) => wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: &self.buf,
                offset: self.base,
                size: wgpu::BufferSize::new(self.size()),
            }),
            None => self.buf.as_entire_binding(),
        }
    }
}

impl Drop for GpuBuffer {
    fn drop(&mut self) {
        if self.whole.is_some() {
            // The whole goes back when its last part (its `Arc`) is dropped.
            return;
        }
        let size = self.buf.size();
        let mut pool = lock(&self.pool);
        pool.live -= size;
        if pool.pooled + size <= POOL_CAP {
            pool.pooled += size;
            let used = self.used.load(Ordering::Relaxed);
            pool.free
                .entry(size)
                .or_default()
                .push((self.buf.clone(), used));
        } else {
            pool.released += 1;
        }
    }
}

/// Where the parts of a joined buffer of `lens` elements (f16 when `half`) start, and the
/// elements of the whole: each part on a [`JOIN_ALIGN`] boundary.
fn join_layout(lens: &[usize], half: bool) -> (Vec<usize>, usize) {
    let per = JOIN_ALIGN / if half { 2 } else { 4 };
    let mut bases = Vec::with_capacity(lens.len());
    let mut at = 0;
    for &n in lens {
        bases.push(at);
        at += n.max(1).next_multiple_of(per);
    }
    (bases, at)
}

/// `whole` as parts of `lens` elements laid out as [`join_layout`] lays them out; the whole
/// goes where it came from (its pool) when the last part is dropped.
fn parts_of(whole: GpuBuffer, lens: &[usize]) -> Vec<GpuBuffer> {
    let half = whole.half;
    let elem = if half { 2 } else { 4 };
    let bases = join_layout(lens, half).0;
    let whole = Arc::new(whole);
    bases
        .iter()
        .zip(lens)
        .map(|(&b, &len)| GpuBuffer {
            buf: whole.buf.clone(),
            len,
            base: (b * elem) as u64,
            whole: Some(whole.clone()),
            half,
            used: AtomicU64::new(0),
            pool: whole.pool.clone(),
        })
        .collect()
}

fn lock(pool: &Mutex<Pool>) -> MutexGuard<'_, Pool> {
    // The pool holds only counters and handles; a panic elsewhere leaves it consistent.
    pool.lock().unwrap_or_else(|e| e.into_inner())
}

/// Time spent in one kernel (pipeline entry) over a profiled run, from timestamp queries.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KernelTime {
    /// `shader.entry`, e.g. `lstm_cell.fwd_step`.
    pub label: String,
    /// Dispatches timed.
    pub calls: u64,
    /// Total GPU time in seconds.
    pub seconds: f64,
    /// Floating-point operations the dispatches were declared to do (0 when undeclared).
    pub flops: f64,
    /// Bytes the dispatches were declared to move to or from memory (0 when undeclared).
    pub bytes: f64,
}

/// One timed dispatch waiting for its timestamps.
struct Timed {
    label: Arc<str>,
    flops: f64,
    bytes: f64,
}

/// Timestamp queries of the dispatches recorded since the last submission, and the totals.
struct Profiler {
    set: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    pending: Vec<Timed>,
    totals: HashMap<Arc<str>, KernelTime>,
}

/// Scalars on their way back from the GPU (see [`Gpu::read_later`]).
#[derive(Debug)]
pub struct Readback {
    staging: wgpu::Buffer,
    len: usize,
    done: Arc<Mutex<Option<bool>>>,
}

impl Readback {
    fn take(&self, ok: bool) -> Vec<f32> {
        assert!(ok, "reading a GPU buffer back failed (device lost?)");
        let view = self
            .staging
            .get_mapped_range(..)
            .expect("the staging buffer is mapped");
        let out = bytemuck::cast_slice::<u8, f32>(&view)[..self.len].to_vec();
        drop(view);
        self.staging.unmap();
        out
    }
}

/// Device, queue, caches and the pending command encoder.
pub struct Gpu {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    /// Whether the adapter caps its kernels' loops ([`Gpu::loops_are_capped`]), from its
    /// name and driver once.
    loops_capped: bool,
    limits: wgpu::Limits,
    modules: RefCell<HashMap<(&'static str, bool), wgpu::ShaderModule>>,
    /// Whether shader modules made from now on keep naga's bounds checks.
    checked: Cell<bool>,
    /// Which tile the matrix products take.
    gemm_tiles: Cell<GemmTiles>,
    /// Whether the device can run the tensor-core tile (see [`Gpu::has_tensor_cores`]);
    /// cleared if the tile does not compile there.
    tensor_cores: Cell<bool>,
    /// Whether `GemmTiles::Auto` may take the tensor-core tile for large products (the
    /// backend's reduced precision); it does where the device has one.
    auto_tensor: Cell<bool>,
    /// Whether the tensor-core tile runs with emulated matrix operations (no matrix units).
    tensor_emulated: Cell<bool>,
    /// Whether the f32 step tiles bind the parameters a second time, as vec4s
    /// (`shaders/params_vec4.wgsl`): where the adapter has more storage buffers per shader
    /// stage than the kernels' [`KERNEL_STORAGE_BUFFERS`].
    spare_binding: Cell<bool>,
    /// Bytes of workgroup memory the kernels are laid out for (see
    /// [`Gpu::set_workgroup_storage`]): the adapter's limit unless asked otherwise.
    workgroup_storage: Cell<u32>,
    pipelines: RefCell<HashMap<PipelineKey, Kernel>>,
    /// The compute pass of the dispatches recorded since the encoder's last other command
    /// (WebGPU orders a pass's dispatches as it does separate passes); dropped before the
    /// encoder.
    pass: RefCell<Option<wgpu::ComputePass<'static>>>,
    encoder: RefCell<Option<wgpu::CommandEncoder>>,
    arena: wgpu::Buffer,
    arena_bytes: RefCell<Vec<u8>>,
    dispatches: Cell<u64>,
    submissions: Cell<u64>,
    /// Bytes of buffer clears recorded (fills the timed dispatches do not see).
    cleared: Cell<u64>,
    /// Number of the submission now being recorded.
    epoch: Cell<u64>,
    pool: Arc<Mutex<Pool>>,
    profiler: RefCell<Option<Profiler>>,
    /// Dispatches of the first piece of a recording submitted in pieces; 0: one submission
    /// until the host needs the device's results.
    first_submission: Cell<u32>,
    /// Dispatches at which the piece being recorded is submitted.
    piece: Cell<u32>,
    /// Dispatches recorded since the last submission.
    unsubmitted: Cell<u32>,
    /// Bind groups already made, by what they bind (see [`BindKey`]).
    bind_groups: RefCell<BindCache>,
    /// The matrix products' tiles measured or read so far, one per shape class and
    /// candidates, and those of the file (`gemm_measure`).
    races: RefCell<Kept<ProductShape, Tile>>,
    /// Where measured tiles are kept between runs, if anywhere.
    product_tiles_file: RefCell<Option<std::path::PathBuf>>,
}

/// What a dispatch binds: its pipeline, its parameter slot and its buffers. The same
/// dispatch in the next training step binds the same (buffers come back from the pool in
/// the same order), so its bind group is made once.
struct BindKey {
    pipeline: wgpu::ComputePipeline,
    slot: u64,
    /// Each binding's buffer and the byte range it binds ([`GpuBuffer::bound`]).
    buffers: Vec<(u32, wgpu::Buffer, (u64, u64))>,
}

/// Bind groups by the hash of their [`BindKey`] (a collision replaces the older one), and
/// the pool's release count they were made under.
#[derive(Default)]
struct BindCache {
    groups: HashMap<u64, (BindKey, wgpu::BindGroup)>,
    released: u64,
    made: u64,
}

impl BindCache {
    /// The hash of a dispatch's bindings, computed without building a [`BindKey`].
    fn hash(pipeline: &wgpu::ComputePipeline, slot: u64, buffers: &[(u32, &GpuBuffer)]) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        pipeline.hash(&mut h);
        slot.hash(&mut h);
        for (binding, b) in buffers {
            binding.hash(&mut h);
            b.buf.hash(&mut h);
            b.bound().hash(&mut h);
        }
        h.finish()
    }

    /// The cached group for these bindings, if any.
    fn get(
        &self,
        hash: u64,
        pipeline: &wgpu::ComputePipeline,
        slot: u64,
        buffers: &[(u32, &GpuBuffer)],
    ) -> Option<wgpu::BindGroup> {
        let (key, group) = self.groups.get(&hash)?;
        let same = key.pipeline == *pipeline
            && key.slot == slot
            && key.buffers.len() == buffers.len()
            && key
                .buffers
                .iter()
                .zip(buffers)
                .all(|((kb, kbuf, krange), (b, buf))| {
                    kb == b && *kbuf == buf.buf && *krange == buf.bound()
                });
        same.then(|| group.clone())
    }
}

impl Gpu {
    /// Opens the adapter chosen by `adapter` (index or name part; `None`: `WGRNN_ADAPTER`, else
    /// the best one) with every limit it offers, and `TIMESTAMP_QUERY` and `SHADER_F16` where
    /// they exist; where the adapter can run the tensor-core tile (see
    /// [`Gpu::has_tensor_cores`]) also `SUBGROUP` and `EXPERIMENTAL_COOPERATIVE_MATRIX`, or
    /// without those two if the device will not open with them.
    pub fn new(adapter: Option<&str>) -> Result<Gpu, GpuError> {
        let instance = device::instance();
        let adapter = device::select(&instance, adapter)?;
        let info = adapter.get_info();
        let limits = adapter.limits();
        check_limits(&info.name, &limits)?;
        let base =
            adapter.features() & (wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::SHADER_F16);
        let open = |features: wgpu::Features| {
            let experimental = if features.contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX)
            {
                // SAFETY: wgpu asks callers of its experimental features to accept that they
                // may hold bugs. Only the tensor-core tile uses them, and only when asked for
                // (`--precision f16` or `--gemm tensor`); `tests/gpu_gemm.rs` and `wgrnn
                // check` compare it with the CPU reference on the adapter.
                unsafe { wgpu::ExperimentalFeatures::enabled() }
            } else {
                wgpu::ExperimentalFeatures::disabled()
            };
            pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
                label: Some("wgrnn"),
                required_features: features,
                required_limits: limits.clone(),
                experimental_features: experimental,
                memory_hints: wgpu::MemoryHints::Performance,
                trace: wgpu::Trace::Off,
            }))
        };
        let tensor_cores = device::tensor_cores(&adapter);
        let opened = if tensor_cores {
            open(base | device::TENSOR_FEATURES)
                .map(|d| (d, true))
                .or_else(|_| open(base).map(|d| (d, false)))
        } else {
            open(base).map(|d| (d, false))
        };
        let ((device, queue), tensor_cores) = opened.map_err(|e| GpuError::Device {
            adapter: info.name.clone(),
            reason: e.to_string(),
        })?;
        let emulate =
            !tensor_cores && std::env::var("WGRNN_EMULATE_TENSOR_CORES").is_ok_and(|v| v == "1");
        let arena = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("dispatch parameters"),
            size: SLOT * ARENA_SLOTS,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let spare_binding = has_spare_binding(&limits);
        let workgroup_storage = limits.max_compute_workgroup_storage_size;
        let gpu = Gpu {
            device,
            queue,
            loops_capped: loops_capped(&info.name, &info.driver),
            info,
            limits,
            modules: RefCell::default(),
            checked: Cell::new(true),
            gemm_tiles: Cell::default(),
            tensor_cores: Cell::new(tensor_cores),
            auto_tensor: Cell::new(false),
            tensor_emulated: Cell::new(false),
            spare_binding: Cell::new(spare_binding),
            workgroup_storage: Cell::new(workgroup_storage),
            pipelines: RefCell::default(),
            encoder: RefCell::default(),
            pass: RefCell::default(),
            arena,
            arena_bytes: RefCell::default(),
            dispatches: Cell::new(0),
            submissions: Cell::new(0),
            cleared: Cell::new(0),
            epoch: Cell::new(1),
            pool: Arc::default(),
            profiler: RefCell::default(),
            first_submission: Cell::new(FIRST_SUBMISSION),
            piece: Cell::new(FIRST_SUBMISSION),
            unsubmitted: Cell::new(0),
            bind_groups: RefCell::default(),
            races: RefCell::default(),
            product_tiles_file: RefCell::default(),
        };
        gpu.set_tensor_emulation(emulate);
        Ok(gpu)
    }

    /// Whether kernels compiled from now on keep the bounds checks naga adds to every buffer
    /// access (default: on). Off removes their cost (17-40% on matrix products elsewhere);
    /// the kernels check their own indices against the sizes they are given.
    pub fn set_checked(&self, on: bool) {
        self.checked.set(on);
    }

    /// Chooses the tile of the matrix products recorded from now on (benchmarks and tests
    /// compare them).
    pub fn set_gemm_tiles(&self, t: GemmTiles) {
        self.gemm_tiles.set(t);
    }

    /// The tile choice of the matrix products.
    pub fn gemm_tiles(&self) -> GemmTiles {
        self.gemm_tiles.get()
    }

    /// Whether the device runs the tensor-core tile (`shaders/gemm_coop.wgsl`): it was opened
    /// with cooperative matrices offering 16x16x16 f16 x f16 -> f32, subgroups, f16, subgroups
    /// of exactly 32 invocations and the tile's workgroup memory; or the tile's matrix
    /// operations are emulated ([`Gpu::set_tensor_emulation`]).
    pub fn has_tensor_cores(&self) -> bool {
        self.tensor_cores.get() || self.tensor_emulated.get()
    }

    /// Stops using the tensor cores for the rest of the run (the tensor-core `kernel` cannot
    /// be used on this device: `why`, such as that it does not compile, or that it gives
    /// wrong products, `gemm::verify_tensor_cores`), with a warning; the matrix products and
    /// the recurrent step products fall back to the f32 tiles.
    pub fn give_up_tensor_cores(&self, kernel: &str, why: &str) {
        eprintln!(
            "warning: the tensor-core {kernel} is not used on `{}`: {why}; \
             the matrix products and recurrent steps use the f32 tiles instead",
            self.info.name
        );
        self.tensor_cores.set(false);
        self.tensor_emulated.set(false);
    }

    /// Whether the f32 step tiles take the parameters also as vec4s through a binding of
    /// their own (`shaders/params_vec4.wgsl`), else as 4 scalar loads
    /// (`shaders/params_vec4_scalar.wgsl`).
    pub fn spare_binding(&self) -> bool {
        self.spare_binding.get()
    }

    /// Lets the f32 step tiles take the vec4 binding (`on`, where the adapter has the
    /// storage buffer for it) or not, as on an adapter with only WebGPU's 8: so tests run
    /// both builds on any adapter. Returns whether they take it.
    pub fn set_spare_binding(&self, on: bool) -> bool {
        self.spare_binding
            .set(on && has_spare_binding(&self.limits));
        self.spare_binding.get()
    }

    /// On a device without matrix units, runs the tensor-core tile with its matrix
    /// operations emulated in plain WGSL (`shaders/coop_emulated.wgsl`): same staging,
    /// f16 rounding and scaling, f32 sums, so tests and `wgrnn check` compare every other
    /// line of the tile with the CPU reference on any adapter with f16 and the tile's
    /// workgroup memory. Slow; a test aid (`WGRNN_EMULATE_TENSOR_CORES=1` turns it on for a
    /// whole run). Returns whether it is on.
    pub fn set_tensor_emulation(&self, on: bool) -> bool {
        let possible = !self.tensor_cores.get()
            && self.has_f16()
            && self.workgroup_storage() >= super::gemm::GEMM_COOP_WORKGROUP_BYTES
            && self.limits.max_compute_invocations_per_workgroup >= 256;
        self.tensor_emulated.set(on && possible);
        self.tensor_emulated.get()
    }

    /// Whether the tensor-core tile's matrix operations are emulated.
    pub fn tensor_emulated(&self) -> bool {
        self.tensor_emulated.get()
    }

    /// Lets `GemmTiles::Auto` take the tensor-core tile for large products (the backend's
    /// reduced precision), where the device has one.
    pub fn set_auto_tensor(&self, on: bool) {
        self.auto_tensor.set(on);
    }

    /// Whether `GemmTiles::Auto` takes the tensor-core tile for large products.
    pub fn auto_tensor(&self) -> bool {
        self.auto_tensor.get() && self.has_tensor_cores()
    }

    /// The adapter's description.
    pub fn info(&self) -> &wgpu::AdapterInfo {
        &self.info
    }

    /// Whether the matrix products' tiles are measured (`gemm_measure`): `Some(all)` where
    /// they are, `all` saying whether at every size (else from `gemm_measure::MIN_MACS`
    /// multiply-adds); `None` where the choice says which tile or the rules give it.
    /// `GemmTiles::Auto` measures on an adapter that is a GPU, not on a CPU (lavapipe,
    /// whose timings say nothing of a GPU's, and where tests want the same tiles each run).
    pub fn measures_products(&self) -> Option<bool> {
        match self.gemm_tiles.get() {
            GemmTiles::Measured => Some(true),
            GemmTiles::Auto if self.info.device_type != wgpu::DeviceType::Cpu => Some(false),
            _ => None,
        }
    }

    /// The tile measured fastest for products of `shape`'s class among `candidates`, if
    /// one was, in this run or in the file `read` reads (the candidates change with the
    /// precision and the workgroup memory; `measured::Kept::known`).
    pub(crate) fn measured_tile(
        &self,
        shape: &ProductShape,
        candidates: &[Tile],
        read: impl FnOnce() -> Option<Vec<Race>>,
    ) -> Option<Tile> {
        self.races.borrow_mut().known(shape, candidates, read)
    }

    /// Keeps a measurement's outcome for the rest of the run.
    pub(crate) fn keep_race(&self, race: Race) {
        self.races.borrow_mut().races.push(race);
    }

    /// Keeps the measured tiles in `file` between runs (`None`: measures anew each run), so
    /// a later run on this adapter takes them without measuring and every process of a
    /// session compares its kernels with the same product tiles (the backend sets
    /// `autotune::product_tiles_path` where the autotune table is on).
    pub fn set_product_tiles_file(&self, file: Option<std::path::PathBuf>) {
        *self.product_tiles_file.borrow_mut() = file;
        self.races.borrow_mut().forget_stored();
    }

    /// Where measured tiles are kept between runs ([`Gpu::set_product_tiles_file`]).
    pub fn product_tiles_file(&self) -> Option<std::path::PathBuf> {
        self.product_tiles_file.borrow().clone()
    }

    /// The matrix products' tiles measured so far, in the order they were
    /// ([`Gpu::measures_products`]).
    pub fn races(&self) -> Vec<Race> {
        self.races.borrow().races.clone()
    }

    /// Runs `f`, the runtime's own work (measuring kernels), outside the recording it
    /// interrupts: what is recorded so far is submitted first, `f`'s work is awaited, and
    /// the dispatch, submission and clear counts and the kernel-time profile are left as
    /// they were, so they still describe the recording alone.
    pub(crate) fn aside<R>(&self, f: impl FnOnce() -> R) -> R {
        self.flush();
        let profiler = self.profiler.borrow_mut().take();
        let counts = (
            self.dispatches.get(),
            self.submissions.get(),
            self.cleared.get(),
        );
        let out = f();
        self.flush();
        self.wait();
        *self.profiler.borrow_mut() = profiler;
        self.dispatches.set(counts.0);
        self.submissions.set(counts.1);
        self.cleared.set(counts.2);
        out
    }

    /// A buffer of `len` elements (f16 where `half`), contents undefined, for
    /// [`Gpu::aside`] work: outside the pool, so it counts in no byte total and is freed
    /// with [`Gpu::forget_scratch`].
    pub(crate) fn scratch(&self, len: usize, half: bool) -> GpuBuffer {
        let bytes = len.max(1) * if half { 2 } else { 4 };
        let buf = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("scratch"),
            size: bytes.next_multiple_of(16) as u64,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        // A pool of its own, dropped with the buffer: its memory goes back to the device,
        // not to the runtime's pool.
        let pool = Arc::new(Mutex::new(Pool {
            live: buf.size(),
            ..Pool::default()
        }));
        GpuBuffer {
            buf,
            len,
            base: 0,
            whole: None,
            half,
            used: AtomicU64::new(0),
            pool,
        }
    }

    /// Scratch buffers of `lens` elements (f16 where `half`), contents undefined, as parts
    /// of one ([`Gpu::joined`]'s layout), so that one dispatch can reach them all: the
    /// measuring of the layer pipeline's joined steps (`slices_measure`). Freed with
    /// [`Gpu::forget_scratch`].
    pub(crate) fn scratch_joined(&self, lens: &[usize], half: bool) -> Vec<GpuBuffer> {
        let at = join_layout(lens, half).1;
        parts_of(self.scratch(at, half), lens)
    }

    /// Frees scratch buffers ([`Gpu::scratch`]): drops them and the bind groups that bind
    /// them, which would otherwise keep them alive.
    pub(crate) fn forget_scratch(&self, bufs: Vec<GpuBuffer>) {
        let gone: Vec<wgpu::Buffer> = bufs.iter().map(|b| b.buf.clone()).collect();
        drop(bufs);
        let mut cache = self.bind_groups.borrow_mut();
        cache
            .groups
            .retain(|_, (key, _)| !key.buffers.iter().any(|(_, b, _)| gone.contains(b)));
    }

    /// Whether the adapter ends every loop of a kernel once an invocation has run
    /// [`LLVMPIPE_LOOP_BUDGET`] iterations of its loops together, silently: llvmpipe
    /// (lavapipe, Mesa's CPU driver, also behind OpenGL) does, so kernels whose loops grow
    /// with the data take them in pieces there.
    pub fn loops_are_capped(&self) -> bool {
        self.loops_capped
    }

    /// Iterations a dispatch takes of a kernel's loop over `whole` items of data: all of
    /// them (at least one), or [`CAPPED_LOOP_PIECE`] where the adapter caps loops, the
    /// kernel then recorded once a piece.
    pub fn loop_piece(&self, whole: usize) -> usize {
        match self.loops_capped {
            true => CAPPED_LOOP_PIECE,
            false => whole.max(1),
        }
    }

    /// The limits the device was opened with.
    pub fn limits(&self) -> &wgpu::Limits {
        &self.limits
    }

    /// Bytes of workgroup memory a workgroup of the kernels recorded from now on may take:
    /// what their tiles and chunk depths are chosen for (the adapter's limit unless
    /// [`Gpu::set_workgroup_storage`] changed it).
    pub fn workgroup_storage(&self) -> u32 {
        self.workgroup_storage.get()
    }

    /// Lays the kernels recorded from now on out for `bytes` of workgroup memory per
    /// workgroup, so tests (and `--workgroup-memory`) run on one adapter the layouts another
    /// one's limit gives: any amount up to the adapter's limit, and on a CPU adapter
    /// (lavapipe, whose driver allocates each workgroup's memory as it runs it, whatever
    /// limit it reports) also beyond, such as the H100's 48 KiB, whose step-tile layouts
    /// would otherwise first run on the H100 itself. On a GPU an amount past its limit is
    /// refused (pipelines past it are undefined behaviour there) and the limit kept.
    /// Returns the bytes now in effect. Set it before the kernel choices
    /// (`WgpuBackend::set_tuning` drops the tiles where it is too small for them).
    pub fn set_workgroup_storage(&self, bytes: u32) -> u32 {
        let cpu = self.info.device_type == wgpu::DeviceType::Cpu;
        let limit = self.limits.max_compute_workgroup_storage_size;
        self.workgroup_storage
            .set(if cpu { bytes } else { bytes.min(limit) });
        self.workgroup_storage.get()
    }

    /// Bytes held in GPU buffers: live ones and dropped ones kept for reuse.
    pub fn bytes_held(&self) -> u64 {
        let pool = lock(&self.pool);
        pool.live + pool.pooled
    }

    /// The most [`Gpu::bytes_held`] has been since the start or the last [`Gpu::reset_peak`].
    pub fn peak_bytes(&self) -> u64 {
        lock(&self.pool).peak
    }

    /// Number of storage buffers created on the device so far; a buffer reused from the pool
    /// does not count, so a steady training loop leaves it unchanged.
    pub fn buffers_created(&self) -> u64 {
        lock(&self.pool).created
    }

    /// Starts a new peak measurement from what is held now.
    pub fn reset_peak(&self) {
        let mut pool = lock(&self.pool);
        pool.peak = pool.live + pool.pooled;
    }

    /// Frees the buffers kept for reuse.
    pub fn trim(&self) {
        let mut pool = lock(&self.pool);
        pool.free.clear();
        pool.pooled = 0;
        pool.released += 1;
        drop(pool);
        // Now, not at the next dispatch: cached groups would keep the freed buffers alive.
        self.bind_groups.borrow_mut().groups.clear();
    }

    /// How recorded work reaches the device: with `first` > 0, in pieces, the first of
    /// `first` dispatches after each submission the host asks for (a read-back, a write into
    /// a buffer in use, [`Gpu::flush`]) and each later one
    /// twice the one before (up to 512), so the device runs the start of a training step
    /// while the host records the rest; with 0, in one submission until the host needs a
    /// result (the whole step). Default: [`FIRST_SUBMISSION`]. Profiling submits as 0 does.
    pub fn set_first_submission(&self, first: u32) {
        self.first_submission.set(first);
        self.piece.set(first);
    }

    /// The dispatches of the first piece of a recording ([`Gpu::set_first_submission`]).
    pub fn first_submission(&self) -> u32 {
        self.first_submission.get()
    }

    /// Bind groups made so far; a dispatch whose bindings were seen before reuses its group,
    /// so a steady training loop leaves this unchanged.
    pub fn bind_groups_made(&self) -> u64 {
        self.bind_groups.borrow().made
    }

    /// Number of kernel dispatches recorded since the runtime started.
    pub fn dispatch_count(&self) -> u64 {
        self.dispatches.get()
    }

    /// Number of command submissions since the runtime started.
    pub fn submission_count(&self) -> u64 {
        self.submissions.get()
    }

    /// Bytes of buffer clears recorded since the runtime started: memory traffic that is
    /// not a kernel, so the per-kernel times leave it out.
    pub fn cleared_bytes(&self) -> u64 {
        self.cleared.get()
    }

    /// Whether the device can time dispatches ([`Gpu::profile`]).
    pub fn can_profile(&self) -> bool {
        self.device
            .features()
            .contains(wgpu::Features::TIMESTAMP_QUERY)
    }

    /// Starts (`true`) or stops timing every dispatch. Starting clears earlier totals; returns
    /// whether timing is on (false where the adapter has no timestamp queries).
    pub fn profile(&self, on: bool) -> bool {
        self.flush();
        let mut slot = self.profiler.borrow_mut();
        if !on || !self.can_profile() {
            *slot = None;
            return false;
        }
        let set = self.device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("kernel timestamps"),
            ty: wgpu::QueryType::Timestamp,
            count: QUERIES,
        });
        let resolve = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("kernel timestamps"),
            size: QUERIES as u64 * 8,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        *slot = Some(Profiler {
            set,
            resolve,
            pending: Vec::new(),
            totals: HashMap::new(),
        });
        true
    }

    /// Per-kernel totals of the profiled run so far (submits and waits for recorded work),
    /// longest first.
    pub fn kernel_times(&self) -> Vec<KernelTime> {
        self.flush();
        let mut out: Vec<KernelTime> = self
            .profiler
            .borrow()
            .as_ref()
            .map(|p| p.totals.values().cloned().collect())
            .unwrap_or_default();
        out.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
        out
    }

    /// Declares the work of the dispatch recorded last, for the GFLOP/s and GB/s columns of a
    /// profile (nothing happens when not profiling).
    pub fn cost(&self, flops: f64, bytes: f64) {
        if let Some(p) = self.profiler.borrow_mut().as_mut()
            && let Some(t) = p.pending.last_mut()
        {
            t.flops = flops;
            t.bytes = bytes;
        }
    }

    /// A buffer of `len` elements (f16 when `half`), recycled when one of that size is free,
    /// contents undefined. Prefers a free buffer that recorded work no longer uses.
    fn alloc(&self, len: usize, half: bool) -> (GpuBuffer, bool) {
        // Bindings need a non-zero size; whole vec4s of 4-byte elements, so kernels may view
        // any buffer as `array<vec4<f32>>` or `array<vec4<f16>>` (shaders/gemm128.wgsl).
        let bytes = len.max(1) * if half { 2 } else { 4 };
        let size = bytes.next_multiple_of(16) as u64;
        let epoch = self.epoch.get();
        let mut pool = lock(&self.pool);
        let reused = pool.free.get_mut(&size).and_then(|list| {
            let i = list
                .iter()
                .position(|(_, used)| *used < epoch)
                .unwrap_or(list.len().saturating_sub(1));
            (!list.is_empty()).then(|| list.swap_remove(i))
        });
        let (buf, used, recycled) = match reused {
            Some((buf, used)) => {
                pool.pooled -= size;
                (buf, used, true)
            }
            None => {
                let buf = self.device.create_buffer(&wgpu::BufferDescriptor {
                    label: None,
                    size,
                    usage: wgpu::BufferUsages::STORAGE
                        | wgpu::BufferUsages::COPY_SRC
                        | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
                pool.created += 1;
                (buf, 0, false)
            }
        };
        pool.live += size;
        pool.note_peak();
        let b = GpuBuffer {
            buf,
            len,
            base: 0,
            whole: None,
            half,
            used: AtomicU64::new(used),
            pool: self.pool.clone(),
        };
        (b, recycled)
    }

    /// Zeroed buffers of `lens` elements (f16 when `half`), parts of one allocation, each
    /// starting on a 256-byte boundary (any adapter's storage offset alignment), so one
    /// dispatch can reach all of them through the whole ([`GpuBuffer::whole`]).
    pub fn joined(&self, lens: &[usize], half: bool) -> Vec<GpuBuffer> {
        self.join(lens, half, true)
    }

    /// Like [`Gpu::joined`], but uninitialised: for parts every element of which is written
    /// before it is read.
    pub fn joined_uninit(&self, lens: &[usize], half: bool) -> Vec<GpuBuffer> {
        self.join(lens, half, false)
    }

    fn join(&self, lens: &[usize], half: bool, zeroed: bool) -> Vec<GpuBuffer> {
        let at = join_layout(lens, half).1;
        let whole = match zeroed {
            true => self.zeroed(at, half),
            false => self.alloc(at, half).0,
        };
        parts_of(whole, lens)
    }

    /// Bytes of the buffer [`Gpu::joined`] makes for `lens` (its parts and their alignment).
    pub fn joined_bytes(lens: &[usize], half: bool) -> u64 {
        let elems = join_layout(lens, half).1;
        (elems * if half { 2 } else { 4 }) as u64
    }

    /// A buffer of `len` f32 elements, zeroed (recycled ones by a recorded clear).
    pub fn buffer(&self, len: usize) -> GpuBuffer {
        self.zeroed(len, false)
    }

    /// A zeroed buffer of `len` elements (f16 when `half`): recycled ones are cleared by a
    /// recorded clear, new ones start zeroed.
    fn zeroed(&self, len: usize, half: bool) -> GpuBuffer {
        let (b, recycled) = self.alloc(len, half);
        if recycled {
            self.clear(&b);
        }
        b
    }

    /// A buffer of `len` f32 elements whose contents are undefined (for outputs every
    /// element of which is written before it is read).
    pub fn buffer_uninit(&self, len: usize) -> GpuBuffer {
        self.alloc(len, false).0
    }

    /// A buffer of `len` f16 elements, zeroed, for storage that kernels declare as
    /// `array<f16>` (needs [`Gpu::has_f16`]).
    pub fn buffer_f16(&self, len: usize) -> GpuBuffer {
        assert!(self.has_f16(), "f16 buffers need SHADER_F16");
        self.zeroed(len, true)
    }

    /// A buffer of `len` f16 elements whose contents are undefined (for outputs every
    /// element of which is written before it is read; needs [`Gpu::has_f16`]).
    pub fn buffer_f16_uninit(&self, len: usize) -> GpuBuffer {
        assert!(self.has_f16(), "f16 buffers need SHADER_F16");
        self.alloc(len, true).0
    }

    /// Whether kernels may use f16 (the adapter offers `SHADER_F16`).
    pub fn has_f16(&self) -> bool {
        self.device.features().contains(wgpu::Features::SHADER_F16)
    }

    /// A buffer holding `data` (any 4-byte plain type: f32 or u32).
    pub fn buffer_from<T: bytemuck::Pod>(&self, data: &[T]) -> GpuBuffer {
        assert_eq!(
            std::mem::size_of::<T>(),
            4,
            "buffer_from takes 4-byte elements"
        );
        let (b, _) = self.alloc(data.len(), false);
        self.write(&b, data);
        b
    }

    /// Overwrites the start of `buf` with `data`. When recorded work uses `buf`, it is
    /// submitted first, so it sees the old contents, as program order says.
    pub fn write<T: bytemuck::Pod>(&self, buf: &GpuBuffer, data: &[T]) {
        if data.is_empty() {
            return;
        }
        assert_eq!(std::mem::size_of::<T>(), buf.elem(), "write: element size");
        if buf.used.load(Ordering::Relaxed) == self.epoch.get() {
            self.flush();
        }
        let bytes = bytemuck::cast_slice::<T, u8>(data);
        if bytes.len().is_multiple_of(4) {
            self.queue.write_buffer(&buf.buf, buf.base, bytes);
        } else {
            // An odd number of f16: writes are whole words.
            let mut padded = bytes.to_vec();
            padded.resize(bytes.len().next_multiple_of(4), 0);
            self.queue.write_buffer(&buf.buf, buf.base, &padded);
        }
    }

    /// Records zeroing of a whole buffer.
    pub fn clear(&self, buf: &GpuBuffer) {
        buf.touch(self.epoch.get());
        let size = buf.whole.as_ref().map(|_| buf.size());
        self.cleared.set(self.cleared.get() + buf.size());
        self.with_encoder(|e| e.clear_buffer(&buf.buf, buf.base, size));
    }

    /// Records zeroing of `len` elements from `at`.
    pub fn clear_range(&self, buf: &GpuBuffer, at: usize, len: usize) {
        if len == 0 {
            return;
        }
        let (at, len) = buf.bytes(at, len);
        buf.touch(self.epoch.get());
        self.cleared.set(self.cleared.get() + len);
        self.with_encoder(|e| e.clear_buffer(&buf.buf, at, Some(len)));
    }

    /// Records a copy of `len` elements: a transfer command, or where source and destination
    /// are one buffer (parts of a joined buffer included), which transfers cannot copy
    /// within, [`Gpu::copy_within`] (the ranges must not overlap).
    pub fn copy(&self, src: &GpuBuffer, src_at: usize, dst: &GpuBuffer, dst_at: usize, len: usize) {
        if len == 0 {
            return;
        }
        assert_eq!(src.half, dst.half, "copy between f16 and f32 buffers");
        if src.buf == dst.buf {
            let ((whole, s0), d0) = (src.resolved(), dst.resolved().1);
            self.copy_within(whole, &[(s0 + src_at, d0 + dst_at, len)]);
            return;
        }
        let (src_at, bytes) = src.bytes(src_at, len);
        let (dst_at, _) = dst.bytes(dst_at, len);
        src.touch(self.epoch.get());
        dst.touch(self.epoch.get());
        self.with_encoder(|e| {
            e.copy_buffer_to_buffer(&src.buf, src_at, &dst.buf, dst_at, Some(bytes))
        });
    }

    /// Records copies between `(from, to, len)` ranges of elements of `buf`, up to
    /// [`COPY_RANGES`] a dispatch of `shaders/copy_within.wgsl`; no range copied into may
    /// overlap another.
    pub fn copy_within(&self, buf: &GpuBuffer, ranges: &[(usize, usize, usize)]) {
        // (from, to, len) in 4-byte words from the start of the wgpu buffer.
        let words: Vec<[u64; 3]> = ranges
            .iter()
            .filter(|r| r.2 > 0)
            .map(|&(from, to, len)| {
                let ((from, bytes), (to, _)) = (buf.bytes(from, len), buf.bytes(to, len));
                [from / 4, to / 4, bytes / 4]
            })
            .collect();
        let spans: Vec<(u64, u64)> = words
            .iter()
            .flat_map(|&[from, to, n]| [(from, from + n), (to, to + n)])
            .collect();
        for (i, d) in spans.iter().enumerate().filter(|(i, _)| i % 2 == 1) {
            for (_, o) in spans.iter().enumerate().filter(|(j, _)| *j != i) {
                assert!(d.1 <= o.0 || o.1 <= d.0, "copy_within: overlapping ranges");
            }
        }
        let kernel = self.pipeline(&COPY_WITHIN, "copy_within", &[]);
        // The offsets count from the start of the wgpu buffer: bind all of it.
        let whole = buf.resolved().0;
        for group in words.chunks(COPY_RANGES) {
            let mut p = vec![0u32; 4 * COPY_RANGES];
            for (r, &[src, dst, n]) in group.iter().enumerate() {
                p[4 * r..4 * r + 3].copy_from_slice(&[n as u32, src as u32, dst as u32]);
            }
            let longest = group.iter().map(|w| w[2]).max().unwrap_or(0) as usize;
            let [x, y, _] = Gpu::grid_1d(longest, 256);
            self.dispatch(&kernel, &p, &[whole], [x, y, group.len() as u32]);
        }
    }

    /// Submits the recorded work and copies `len` elements from the start of `buf` back.
    pub fn read<T: bytemuck::Pod>(&self, buf: &GpuBuffer, len: usize) -> Vec<T> {
        if len == 0 {
            return Vec::new();
        }
        assert_eq!(std::mem::size_of::<T>(), buf.elem(), "read: element size");
        let size = (len * buf.elem()).next_multiple_of(4) as u64;
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("read back"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        buf.touch(self.epoch.get());
        self.with_encoder(|e| e.copy_buffer_to_buffer(&buf.buf, buf.base, &staging, 0, Some(size)));
        self.flush();
        let mut out = self.map_and_read(&staging);
        out.truncate(len);
        out
    }

    /// Starts reading the first element of each of `firsts` back: records the copies, submits
    /// everything recorded so far, and returns without waiting.
    pub fn read_later(&self, firsts: &[&GpuBuffer]) -> Readback {
        let size = (firsts.len().max(1) * 4) as u64;
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("read back later"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let epoch = self.epoch.get();
        for (i, b) in firsts.iter().enumerate() {
            b.touch(epoch);
            self.with_encoder(|e| {
                e.copy_buffer_to_buffer(&b.buf, b.base, &staging, (i * 4) as u64, Some(4))
            });
        }
        self.flush();
        let done: Arc<Mutex<Option<bool>>> = Arc::default();
        let flag = done.clone();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            *flag.lock().unwrap_or_else(|e| e.into_inner()) = Some(r.is_ok());
        });
        Readback {
            staging,
            len: firsts.len(),
            done,
        }
    }

    /// The values of a read-back if the GPU has finished it; never blocks.
    pub fn try_read(&self, r: &Readback) -> Option<Vec<f32>> {
        // Runs the callbacks of finished work; errors surface in `read_wait`.
        let _ = self.device.poll(wgpu::PollType::Poll);
        let state = *r.done.lock().unwrap_or_else(|e| e.into_inner());
        state.map(|ok| r.take(ok))
    }

    /// Waits for a read-back and returns its values.
    pub fn read_wait(&self, r: &Readback) -> Vec<f32> {
        loop {
            if let Some(v) = self.try_read(r) {
                return v;
            }
            self.wait();
        }
    }

    /// Blocks until the GPU has finished everything submitted.
    pub fn wait(&self) {
        if let Err(e) = self.device.poll(wgpu::PollType::wait_indefinitely()) {
            panic!("waiting for the GPU failed: {e}");
        }
    }

    /// Submits the recorded work (with its dispatch parameters), if any. When profiling, also
    /// waits for it and adds its kernel times to the totals. A recording submitted in pieces
    /// starts again from its first, small piece: what follows is the next unit of work (a
    /// training step ends with its read-back).
    pub fn flush(&self) {
        self.piece.set(self.first_submission.get());
        self.submit();
    }

    /// [`Gpu::flush`] without starting the pieces afresh.
    fn submit(&self) {
        self.end_pass();
        let Some(mut encoder) = self.encoder.borrow_mut().take() else {
            return;
        };
        self.unsubmitted.set(0);
        let mut bytes = self.arena_bytes.borrow_mut();
        if !bytes.is_empty() {
            self.queue.write_buffer(&self.arena, 0, &bytes);
            bytes.clear();
        }
        drop(bytes);
        let timed = self.resolve_timestamps(&mut encoder);
        self.queue.submit([encoder.finish()]);
        self.submissions.set(self.submissions.get() + 1);
        self.epoch.set(self.epoch.get() + 1);
        if let Some((staging, timed)) = timed {
            self.add_kernel_times(&staging, timed);
        }
    }

    /// Records the resolution of this submission's timestamps into a readable buffer.
    fn resolve_timestamps(
        &self,
        encoder: &mut wgpu::CommandEncoder,
    ) -> Option<(wgpu::Buffer, Vec<Timed>)> {
        let mut slot = self.profiler.borrow_mut();
        let p = slot.as_mut()?;
        if p.pending.is_empty() {
            return None;
        }
        let queries = 2 * p.pending.len() as u32;
        let size = queries as u64 * 8;
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("kernel timestamps read back"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        encoder.resolve_query_set(&p.set, 0..queries, &p.resolve, 0);
        encoder.copy_buffer_to_buffer(&p.resolve, 0, &staging, 0, Some(size));
        Some((staging, std::mem::take(&mut p.pending)))
    }

    /// Waits for a submission's timestamps and adds each dispatch's duration to its kernel.
    fn add_kernel_times(&self, staging: &wgpu::Buffer, timed: Vec<Timed>) {
        let ticks: Vec<u64> = self.map_and_read(staging);
        let period = self.queue.get_timestamp_period() as f64 * 1e-9;
        let mut slot = self.profiler.borrow_mut();
        let Some(p) = slot.as_mut() else {
            return;
        };
        for (i, t) in timed.into_iter().enumerate() {
            let (start, end) = (ticks[2 * i], ticks[2 * i + 1]);
            let e = p
                .totals
                .entry(t.label.clone())
                .or_insert_with(|| KernelTime {
                    label: t.label.to_string(),
                    ..KernelTime::default()
                });
            e.calls += 1;
            e.seconds += end.saturating_sub(start) as f64 * period;
            e.flops += t.flops;
            e.bytes += t.bytes;
        }
    }

    /// Maps a submitted MAP_READ buffer, waits, and copies it out.
    fn map_and_read<T: bytemuck::Pod>(&self, staging: &wgpu::Buffer) -> Vec<T> {
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.wait();
        match rx.recv() {
            Ok(Ok(())) => {}
            other => panic!("reading a GPU buffer back failed: {other:?}"),
        }
        let view = staging
            .get_mapped_range(..)
            .expect("the staging buffer was just mapped");
        let out = bytemuck::cast_slice::<u8, T>(&view).to_vec();
        drop(view);
        staging.unmap();
        out
    }

    /// Ends the compute pass consecutive dispatches share, if one is open: the encoder takes
    /// no other command while it is.
    fn end_pass(&self) {
        drop(self.pass.borrow_mut().take());
    }

    fn with_encoder<R>(&self, f: impl FnOnce(&mut wgpu::CommandEncoder) -> R) -> R {
        self.end_pass();
        f(self
            .encoder
            .borrow_mut()
            .get_or_insert_with(|| self.new_encoder()))
    }

    /// A command encoder for the next submission.
    fn new_encoder(&self) -> wgpu::CommandEncoder {
        self.device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None })
    }

    /// The pipeline of `entry` in `shader` with the given `override` constants (compiled once
    /// per combination).
    pub fn pipeline(
        &self,
        shader: &'static Shader,
        entry: &'static str,
        constants: &[(&'static str, f64)],
    ) -> Kernel {
        let key = self.pipeline_key(shader, entry, constants);
        if let Some(p) = self.pipelines.borrow().get(&key) {
            return p.clone();
        }
        let kernel = self.make_pipeline(shader, entry, constants, key.checked);
        self.pipelines.borrow_mut().insert(key, kernel.clone());
        kernel
    }

    /// The values the `override` constant `name` took in the pipelines made so far for
    /// entry point `entry` of any shader, each once, in ascending order: which layouts a
    /// run's kernels were built for (tests check a choice by it).
    pub fn built_constants(&self, entry: &str, name: &str) -> Vec<f64> {
        self.built_constants_in("", entry, name)
    }

    /// As [`Gpu::built_constants`], in the pipelines of the shaders whose names end with
    /// `suffix` alone (`_joined`: the layer pipeline's joined steps).
    pub fn built_constants_in(&self, suffix: &str, entry: &str, name: &str) -> Vec<f64> {
        let mut values: Vec<f64> = self
            .pipelines
            .borrow()
            .keys()
            .filter(|k| k.entry == entry && k.shader.ends_with(suffix))
            .flat_map(|k| k.constants.iter().filter(|c| c.0 == name))
            .map(|c| f64::from_bits(c.1))
            .collect();
        values.sort_by(f64::total_cmp);
        values.dedup();
        values
    }

    /// As [`Gpu::pipeline`], for a kernel the device may refuse (the tensor-core tile, on
    /// wgpu's experimental cooperative matrices): an error while compiling it comes back as
    /// `Err` with wgpu's message, instead of stopping the process, and nothing of it is kept.
    pub fn try_pipeline(
        &self,
        shader: &'static Shader,
        entry: &'static str,
        constants: &[(&'static str, f64)],
    ) -> Result<Kernel, String> {
        let key = self.pipeline_key(shader, entry, constants);
        if let Some(p) = self.pipelines.borrow().get(&key) {
            return Ok(p.clone());
        }
        let internal = self.device.push_error_scope(wgpu::ErrorFilter::Internal);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let kernel = self.make_pipeline(shader, entry, constants, key.checked);
        let error = pollster::block_on(validation.pop()).or(pollster::block_on(internal.pop()));
        match error {
            Some(e) => {
                self.modules
                    .borrow_mut()
                    .remove(&(shader.name, key.checked));
                Err(e.to_string())
            }
            None => {
                self.pipelines.borrow_mut().insert(key, kernel.clone());
                Ok(kernel)
            }
        }
    }

    fn pipeline_key(
        &self,
        shader: &'static Shader,
        entry: &'static str,
        constants: &[(&'static str, f64)],
    ) -> PipelineKey {
        PipelineKey {
            shader: shader.name,
            checked: self.checked.get(),
            entry,
            constants: constants.iter().map(|(k, v)| (*k, v.to_bits())).collect(),
        }
    }

    /// Compiles `shader`'s module (once per bounds-check setting) and `entry`'s pipeline.
    fn make_pipeline(
        &self,
        shader: &'static Shader,
        entry: &'static str,
        constants: &[(&'static str, f64)],
        checked: bool,
    ) -> Kernel {
        let module = self
            .modules
            .borrow_mut()
            .entry((shader.name, checked))
            .or_insert_with(|| {
                let desc = wgpu::ShaderModuleDescriptor {
                    label: Some(shader.name),
                    source: wgpu::ShaderSource::Wgsl(shader.module_source().into()),
                };
                if checked {
                    // Bounds checks stay; the counter naga would put in every loop so that a
                    // driver cannot assume a loop ends goes (7-8 instructions per pass through
                    // each hot loop, benches/instructions.rs).
                    let mut checks = wgpu::ShaderRuntimeChecks::checked();
                    checks.force_loop_bounding = false;
                    // SAFETY: every loop in shaders/ counts up by a positive step to a bound
                    // the host sets from tensor sizes (far below u32::MAX) or to a constant,
                    // so none runs forever; out-of-bounds accesses are still checked.
                    unsafe { self.device.create_shader_module_trusted(desc, checks) }
                } else {
                    // SAFETY: every kernel guards its own indices against the sizes it is
                    // given, and the GPU tests compare every kernel with its CPU twin at
                    // ragged sizes under both settings; `set_checked(false)` is an opt-in.
                    unsafe {
                        self.device.create_shader_module_trusted(
                            desc,
                            wgpu::ShaderRuntimeChecks::unchecked(),
                        )
                    }
                }
            })
            .clone();
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: None,
                module: &module,
                entry_point: Some(entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants,
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            });
        Kernel {
            pipeline,
            label: format!("{}.{entry}", shader.name).into(),
        }
    }

    /// Records one dispatch of `pipeline` over `groups` workgroups. Binding 0 is a uniform
    /// holding `params`; bindings 1.. are `buffers` in order (every binding the entry point
    /// declares must be used by it, so the automatic layout keeps it).
    pub fn dispatch(
        &self,
        pipeline: &Kernel,
        params: &[u32],
        buffers: &[&GpuBuffer],
        groups: [u32; 3],
    ) {
        let at: Vec<(u32, &GpuBuffer)> = buffers
            .iter()
            .enumerate()
            .map(|(i, b)| (i as u32 + 1, *b))
            .collect();
        self.dispatch_at(pipeline, params, &at, groups);
    }

    /// Like [`Gpu::dispatch`], with explicit binding numbers for the buffers (for shader
    /// files whose entry points use different subsets of one binding plan).
    pub fn dispatch_at(
        &self,
        kernel: &Kernel,
        params: &[u32],
        buffers: &[(u32, &GpuBuffer)],
        groups: [u32; 3],
    ) {
        assert!(params.len() <= MAX_PARAMS, "too many dispatch parameters");
        if groups.contains(&0) {
            return;
        }
        let span = ((4 * params.len()) as u64).div_ceil(SLOT).max(1) * SLOT;
        let slot = {
            let mut bytes = self.arena_bytes.borrow_mut();
            if bytes.len() as u64 + span > SLOT * ARENA_SLOTS {
                drop(bytes);
                self.submit();
                bytes = self.arena_bytes.borrow_mut();
            }
            let at = bytes.len() as u64;
            bytes.extend_from_slice(bytemuck::cast_slice(params));
            bytes.resize((at + span) as usize, 0);
            at
        };
        let full = self
            .profiler
            .borrow()
            .as_ref()
            .is_some_and(|p| 2 * (p.pending.len() as u32 + 1) > QUERIES);
        if full {
            self.submit();
        }
        let pipeline = &kernel.pipeline;
        let epoch = self.epoch.get();
        for (_, b) in buffers {
            b.touch(epoch);
        }
        let group = self.bind_group(pipeline, slot, span, buffers);
        let mut profiler = self.profiler.borrow_mut();
        let timestamp_writes = profiler.as_mut().map(|p| {
            let i = 2 * p.pending.len() as u32;
            p.pending.push(Timed {
                label: kernel.label.clone(),
                flops: 0.0,
                bytes: 0.0,
            });
            wgpu::ComputePassTimestampWrites {
                query_set: &p.set,
                beginning_of_pass_write_index: Some(i),
                end_of_pass_write_index: Some(i + 1),
            }
        });
        let record = |pass: &mut wgpu::ComputePass<'_>| {
            pass.set_pipeline(pipeline);
            pass.set_bind_group(0, &group, &[]);
            pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
        };
        if timestamp_writes.is_some() {
            // Timed dispatches each have their own pass, whose ends the timestamps mark.
            self.with_encoder(|e| {
                record(&mut e.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: None,
                    timestamp_writes,
                }));
            });
        } else {
            let mut slot = self.pass.borrow_mut();
            record(slot.get_or_insert_with(|| {
                let mut encoder = self.encoder.borrow_mut();
                let e = encoder.get_or_insert_with(|| self.new_encoder());
                e.begin_compute_pass(&wgpu::ComputePassDescriptor::default())
                    .forget_lifetime()
            }));
        }
        self.dispatches.set(self.dispatches.get() + 1);
        let profiling = profiler.is_some();
        drop(profiler);
        self.unsubmitted.set(self.unsubmitted.get() + 1);
        let piece = self.piece.get();
        if piece > 0 && !profiling && self.unsubmitted.get() >= piece {
            self.submit();
            self.piece.set((2 * piece).min(LAST_SUBMISSION));
        }
    }

    /// The bind group of a dispatch: the one made for the same pipeline, parameter slot and
    /// buffers before, else a new one (kept for the next time).
    fn bind_group(
        &self,
        pipeline: &wgpu::ComputePipeline,
        slot: u64,
        span: u64,
        buffers: &[(u32, &GpuBuffer)],
    ) -> wgpu::BindGroup {
        let released = lock(&self.pool).released;
        let mut cache = self.bind_groups.borrow_mut();
        if cache.released != released || cache.groups.len() >= BIND_GROUPS_KEPT {
            // A released buffer may be bound by a cached group, which would keep it alive.
            cache.groups.clear();
            cache.released = released;
        }
        let hash = BindCache::hash(pipeline, slot, buffers);
        if let Some(group) = cache.get(hash, pipeline, slot, buffers) {
            return group;
        }
        let layout = pipeline.get_bind_group_layout(0);
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: &self.arena,
                offset: slot,
                size: wgpu::BufferSize::new(span),
            }),
        }];
        for (binding, b) in buffers {
            entries.push(wgpu::BindGroupEntry {
                binding: *binding,
                resource: b.binding(),
            });
        }
        let group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &layout,
            entries: &entries,
        });
        let key = BindKey {
            pipeline: pipeline.clone(),
            slot,
            buffers: buffers
                .iter()
                .map(|(i, b)| (*i, b.buf.clone(), b.bound()))
                .collect(),
        };
        cache.groups.insert(hash, (key, group.clone()));
        cache.made += 1;
        group
    }

    /// Workgroups for `n` invocations of a 1-D kernel of `size` invocations per group, spread
    /// over x and y when x alone would exceed [`MAX_GROUPS`] (kernels recover the index
    /// with `linear_index` from `common.wgsl`).
    pub fn grid_1d(n: usize, size: u32) -> [u32; 3] {
        let groups = n.div_ceil(size as usize) as u64;
        if groups <= MAX_GROUPS as u64 {
            [groups as u32, 1, 1]
        } else {
            [MAX_GROUPS, groups.div_ceil(MAX_GROUPS as u64) as u32, 1]
        }
    }
}
