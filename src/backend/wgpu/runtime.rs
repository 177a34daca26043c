//! The GPU runtime under every kernel: device and queue, the pipeline cache, buffers, and the
//! lazily recorded command encoder.
//!
//! Work is recorded, never submitted, until the host needs a result (`read`) or writes into
//! a buffer that recorded work may still use (`write`): a whole training step becomes one
//! submission. Each dispatch gets its parameters (sizes, offsets, flags: at most
//! [`MAX_PARAMS`] 32-bit words) in its own 256-byte slot of one uniform arena buffer, which
//! is written once, just before the submission.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::device::{self, GpuError};

/// Bytes of one dispatch's parameter slot (the usual uniform offset alignment).
const SLOT: u64 = 256;
/// Parameter words a dispatch may pass.
pub const MAX_PARAMS: usize = (SLOT / 4) as usize;
/// Dispatches recorded before a submission is forced (arena size / slot size).
const ARENA_SLOTS: u64 = 8192;
/// Workgroups per dimension a dispatch may use (WebGPU's minimum maximum).
pub const MAX_GROUPS: u32 = 65535;

/// WGSL shared by every kernel: activations, the 1-D grid index.
const COMMON_WGSL: &str = include_str!("../../../shaders/common.wgsl");

/// A kernel family: one WGSL file.
#[derive(Debug)]
pub struct Shader {
    /// File stem (also the stem of its CPU twin).
    pub name: &'static str,
    /// WGSL source, without the common prelude.
    pub source: &'static str,
}

/// Which pipeline: shader, entry point and the values of its `override` constants.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct PipelineKey {
    shader: &'static str,
    entry: &'static str,
    constants: Vec<(&'static str, u64)>,
}

/// A float buffer on the GPU (f32), with its length in elements.
#[derive(Debug)]
pub struct GpuBuffer {
    pub(crate) buf: wgpu::Buffer,
    len: usize,
    held: Arc<AtomicU64>,
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
}

impl Drop for GpuBuffer {
    fn drop(&mut self) {
        self.held.fetch_sub(self.buf.size(), Ordering::Relaxed);
    }
}

/// Device, queue, caches and the pending command encoder.
pub struct Gpu {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    limits: wgpu::Limits,
    modules: RefCell<HashMap<&'static str, wgpu::ShaderModule>>,
    pipelines: RefCell<HashMap<PipelineKey, wgpu::ComputePipeline>>,
    encoder: RefCell<Option<wgpu::CommandEncoder>>,
    arena: wgpu::Buffer,
    arena_bytes: RefCell<Vec<u8>>,
    dispatches: Cell<u64>,
    held: Arc<AtomicU64>,
}

impl Gpu {
    /// Opens the adapter chosen by `adapter` (index or name part; `None`: `WGRNN_ADAPTER`, else
    /// the best one) with every limit it offers.
    pub fn new(adapter: Option<&str>) -> Result<Gpu, GpuError> {
        let instance = device::instance();
        let adapter = device::select(&instance, adapter)?;
        let info = adapter.get_info();
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("wgrnn"),
            required_features: wgpu::Features::empty(),
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|e| GpuError::Device {
            adapter: info.name.clone(),
            reason: e.to_string(),
        })?;
        let arena = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("dispatch parameters"),
            size: SLOT * ARENA_SLOTS,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Ok(Gpu {
            device,
            queue,
            info,
            limits,
            modules: RefCell::default(),
            pipelines: RefCell::default(),
            encoder: RefCell::default(),
            arena,
            arena_bytes: RefCell::default(),
            dispatches: Cell::new(0),
            held: Arc::default(),
        })
    }

    /// The adapter's description.
    pub fn info(&self) -> &wgpu::AdapterInfo {
        &self.info
    }

    /// The limits the device was opened with.
    pub fn limits(&self) -> &wgpu::Limits {
        &self.limits
    }

    /// Bytes held in buffers made by [`Gpu::buffer`] that are still alive.
    pub fn bytes_held(&self) -> u64 {
        self.held.load(Ordering::Relaxed)
    }

    /// Number of kernel dispatches recorded since the runtime started.
    pub fn dispatch_count(&self) -> u64 {
        self.dispatches.get()
    }

    /// A new buffer of `len` f32 elements (zeroed by wgpu).
    pub fn buffer(&self, len: usize) -> GpuBuffer {
        // Bindings need a non-zero size.
        let size = (len.max(1) * 4) as u64;
        let buf = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.held.fetch_add(size, Ordering::Relaxed);
        GpuBuffer {
            buf,
            len,
            held: self.held.clone(),
        }
    }

    /// A new buffer holding `data` (any 4-byte plain type: f32 or u32).
    pub fn buffer_from<T: bytemuck::Pod>(&self, data: &[T]) -> GpuBuffer {
        let b = self.buffer(data.len());
        if !data.is_empty() {
            self.flush();
            self.queue
                .write_buffer(&b.buf, 0, bytemuck::cast_slice(data));
        }
        b
    }

    /// Overwrites the start of `buf` with `data`. Recorded work is submitted first, so it
    /// sees the old contents, as program order says.
    pub fn write<T: bytemuck::Pod>(&self, buf: &GpuBuffer, data: &[T]) {
        if data.is_empty() {
            return;
        }
        self.flush();
        self.queue
            .write_buffer(&buf.buf, 0, bytemuck::cast_slice(data));
    }

    /// Records zeroing of a whole buffer.
    pub fn clear(&self, buf: &GpuBuffer) {
        self.with_encoder(|e| e.clear_buffer(&buf.buf, 0, None));
    }

    /// Records zeroing of `len` elements from `at`.
    pub fn clear_range(&self, buf: &GpuBuffer, at: usize, len: usize) {
        if len == 0 {
            return;
        }
        self.with_encoder(|e| e.clear_buffer(&buf.buf, (at * 4) as u64, Some((len * 4) as u64)));
    }

    /// Records a copy of `len` elements.
    pub fn copy(&self, src: &GpuBuffer, src_at: usize, dst: &GpuBuffer, dst_at: usize, len: usize) {
        if len == 0 {
            return;
        }
        self.with_encoder(|e| {
            e.copy_buffer_to_buffer(
                &src.buf,
                (src_at * 4) as u64,
                &dst.buf,
                (dst_at * 4) as u64,
                Some((len * 4) as u64),
            )
        });
    }

    /// Submits the recorded work and copies `len` elements from the start of `buf` back.
    pub fn read<T: bytemuck::Pod>(&self, buf: &GpuBuffer, len: usize) -> Vec<T> {
        if len == 0 {
            return Vec::new();
        }
        let size = (len * 4) as u64;
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("read back"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.with_encoder(|e| e.copy_buffer_to_buffer(&buf.buf, 0, &staging, 0, Some(size)));
        self.flush();
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

    /// Blocks until the GPU has finished everything submitted.
    pub fn wait(&self) {
        if let Err(e) = self.device.poll(wgpu::PollType::wait_indefinitely()) {
            panic!("waiting for the GPU failed: {e}");
        }
    }

    /// Submits the recorded work (with its dispatch parameters), if any.
    pub fn flush(&self) {
        let Some(encoder) = self.encoder.borrow_mut().take() else {
            return;
        };
        let mut bytes = self.arena_bytes.borrow_mut();
        if !bytes.is_empty() {
            self.queue.write_buffer(&self.arena, 0, &bytes);
            bytes.clear();
        }
        self.queue.submit([encoder.finish()]);
    }

    fn with_encoder<R>(&self, f: impl FnOnce(&mut wgpu::CommandEncoder) -> R) -> R {
        let mut slot = self.encoder.borrow_mut();
        let enc = slot.get_or_insert_with(|| {
            self.device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None })
        });
        f(enc)
    }

    /// The pipeline of `entry` in `shader` with the given `override` constants (compiled once
    /// per combination).
    pub fn pipeline(
        &self,
        shader: &'static Shader,
        entry: &'static str,
        constants: &[(&'static str, f64)],
    ) -> wgpu::ComputePipeline {
        let key = PipelineKey {
            shader: shader.name,
            entry,
            constants: constants.iter().map(|(k, v)| (*k, v.to_bits())).collect(),
        };
        if let Some(p) = self.pipelines.borrow().get(&key) {
            return p.clone();
        }
        let module = self
            .modules
            .borrow_mut()
            .entry(shader.name)
            .or_insert_with(|| {
                let source = format!("{COMMON_WGSL}\n{}", shader.source);
                self.device
                    .create_shader_module(wgpu::ShaderModuleDescriptor {
                        label: Some(shader.name),
                        source: wgpu::ShaderSource::Wgsl(source.into()),
                    })
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
        self.pipelines.borrow_mut().insert(key, pipeline.clone());
        pipeline
    }

    /// Records one dispatch of `pipeline` over `groups` workgroups. Binding 0 is a uniform
    /// holding `params`; bindings 1.. are `buffers` in order (every binding the entry point
    /// declares must be used by it, so the automatic layout keeps it).
    pub fn dispatch(
        &self,
        pipeline: &wgpu::ComputePipeline,
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
        pipeline: &wgpu::ComputePipeline,
        params: &[u32],
        buffers: &[(u32, &GpuBuffer)],
        groups: [u32; 3],
    ) {
        assert!(params.len() <= MAX_PARAMS, "too many dispatch parameters");
        if groups.contains(&0) {
            return;
        }
        let slot = {
            let mut bytes = self.arena_bytes.borrow_mut();
            if bytes.len() as u64 >= SLOT * ARENA_SLOTS {
                drop(bytes);
                self.flush();
                bytes = self.arena_bytes.borrow_mut();
            }
            let at = bytes.len() as u64;
            bytes.extend_from_slice(bytemuck::cast_slice(params));
            bytes.resize((at + SLOT) as usize, 0);
            at
        };
        let layout = pipeline.get_bind_group_layout(0);
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: &self.arena,
                offset: slot,
                size: wgpu::BufferSize::new(SLOT),
            }),
        }];
        for (binding, b) in buffers {
            entries.push(wgpu::BindGroupEntry {
                binding: *binding,
                resource: b.buf.as_entire_binding(),
            });
        }
        let group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &layout,
            entries: &entries,
        });
        self.with_encoder(|e| {
            let mut pass = e.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
            pass.set_pipeline(pipeline);
            pass.set_bind_group(0, &group, &[]);
            pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
        });
        self.dispatches.set(self.dispatches.get() + 1);
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
