//! Adapter discovery and selection: which GPU the wgpu backend runs on.
//!
//! The choice is, in order: an explicit `--adapter NAME|INDEX`, the `WGRNN_ADAPTER`
//! environment variable, else the best adapter by type (discrete, integrated, virtual, CPU).

use thiserror::Error;

/// The environment variable that picks an adapter by index or by part of its name.
pub const ADAPTER_ENV: &str = "WGRNN_ADAPTER";

/// What to do when no adapter exists, printed with every "no adapter" error.
pub const INSTALL_HINT: &str = "install a Vulkan driver (on Debian/Ubuntu without a GPU: \
`apt-get install -y mesa-vulkan-drivers` gives lavapipe, the CPU Vulkan driver), or run with \
`--device cpu`";

/// Why the GPU backend could not start.
#[derive(Debug, Error)]
pub enum GpuError {
    /// wgpu found no adapter at all.
    #[error("no GPU adapter found; {INSTALL_HINT}")]
    NoAdapter,
    /// The requested adapter is not among those found.
    #[error("no adapter matches `{wanted}`; the adapters are: {available}")]
    NoSuchAdapter {
        /// The index or name asked for.
        wanted: String,
        /// The adapters that exist, numbered as `wgrnn devices` numbers them.
        available: String,
    },
    /// The adapter refused to open a device with the limits the kernels need.
    #[error("adapter `{adapter}` could not open a device: {reason}")]
    Device {
        /// The adapter's name.
        adapter: String,
        /// wgpu's reason.
        reason: String,
    },
    /// The adapter allows less of a resource than the kernels take.
    #[error(
        "adapter `{adapter}` allows {has} for {limit}, and wgrnn's kernels need {needs}; pick \
         another adapter (`wgrnn devices` lists them)"
    )]
    Limit {
        /// The adapter's name.
        adapter: String,
        /// The wgpu limit, by its field name.
        limit: &'static str,
        /// What the adapter allows.
        has: u32,
        /// What the kernels need.
        needs: u32,
    },
    /// f16 storage was asked for on an adapter without `SHADER_F16`.
    #[error(
        "adapter `{adapter}` has no f16 shader support (SHADER_F16), which --precision f16 \
         needs; use --precision f32, or pick another adapter (`wgrnn devices` lists them with \
         their f16 support)"
    )]
    NoF16 {
        /// The adapter's name.
        adapter: String,
    },
}

/// One adapter as `wgrnn devices` shows it.
#[derive(Clone, Debug)]
pub struct AdapterSummary {
    /// Position in the list (what `--adapter INDEX` refers to).
    pub index: usize,
    /// Adapter name.
    pub name: String,
    /// Vulkan, Metal, Dx12, Gl, ...
    pub backend: String,
    /// DiscreteGpu, IntegratedGpu, VirtualGpu, Cpu, Other.
    pub device_type: String,
    /// Driver name and version.
    pub driver: String,
    /// Largest storage buffer binding in bytes.
    pub max_storage_buffer_binding_size: u64,
    /// Largest buffer in bytes.
    pub max_buffer_size: u64,
    /// Workgroup shared memory in bytes.
    pub max_compute_workgroup_storage_size: u32,
    /// Invocations per workgroup.
    pub max_compute_invocations_per_workgroup: u32,
    /// Storage buffers one shader can bind.
    pub max_storage_buffers_per_shader_stage: u32,
    /// Whether GPU timestamps can time each kernel.
    pub timestamp_query: bool,
    /// Whether f16 arithmetic is available in shaders.
    pub shader_f16: bool,
    /// The cooperative-matrix (tensor-core) shapes the adapter offers, e.g.
    /// `16x16x16 f16->f32` (M x N x K, input type -> accumulator type); empty without
    /// `EXPERIMENTAL_COOPERATIVE_MATRIX`.
    pub cooperative_matrix: Vec<String>,
    /// Why the tensor-core tile cannot run on the adapter (`None`: it can).
    pub tensor_cores_missing: Option<String>,
    /// Whether the adapter ends a kernel's loops past a budget of iterations (llvmpipe),
    /// so the engine runs loops over the data in pieces there.
    pub loops_capped: bool,
}

/// A wgpu instance over every native backend.
pub fn instance() -> wgpu::Instance {
    wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env())
}

/// Every adapter, best first: those whose limits the kernels fit
/// ([`super::runtime::check_limits`]) before those they do not, then discrete GPUs,
/// integrated, virtual, CPU, other; so the default choice is one that can run.
pub fn adapters(instance: &wgpu::Instance) -> Vec<wgpu::Adapter> {
    let mut all = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
    all.sort_by_cached_key(|a| {
        let info = a.get_info();
        let fits = super::runtime::check_limits(&info.name, &a.limits()).is_ok();
        rank(fits, info.device_type)
    });
    all
}

/// An adapter's place in the order of [`adapters`]: lower is better.
fn rank(fits: bool, t: wgpu::DeviceType) -> (bool, u8) {
    let kind = match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    };
    (!fits, kind)
}

/// The features the tensor-core tile needs beyond `SHADER_F16`.
pub const TENSOR_FEATURES: wgpu::Features =
    wgpu::Features::SUBGROUP.union(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX);

/// Whether `adapter` can run the tensor-core tile (`shaders/gemm_coop.wgsl`): f16, subgroups
/// and cooperative matrices with the 16x16x16 f16 x f16 -> f32 configuration, subgroups of
/// exactly 32 invocations (the tile's 8 subgroups of 256 invocations), and its workgroup
/// memory.
pub fn tensor_cores(adapter: &wgpu::Adapter) -> bool {
    tensor_cores_missing(adapter).is_none()
}

/// What `adapter` lacks for the tensor-core tile, in words (`None`: nothing).
pub fn tensor_cores_missing(adapter: &wgpu::Adapter) -> Option<String> {
    let info = adapter.get_info();
    let features = adapter.features();
    let workgroup = adapter.limits().max_compute_workgroup_storage_size;
    let shape = || {
        adapter.cooperative_matrix_properties().iter().any(|c| {
            (c.m_size, c.n_size, c.k_size) == (16, 16, 16)
                && c.ab_type == wgpu::CooperativeScalarType::F16
                && c.cr_type == wgpu::CooperativeScalarType::F32
        })
    };
    if !features.contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX) {
        Some("no cooperative matrices".into())
    } else if !shape() {
        Some("no 16x16x16 f16 -> f32 cooperative matrix".into())
    } else if !features.contains(wgpu::Features::SHADER_F16 | wgpu::Features::SUBGROUP) {
        Some("no f16 shaders or no subgroups".into())
    } else if (info.subgroup_min_size, info.subgroup_max_size) != (32, 32) {
        Some(format!(
            "subgroups of {}-{} invocations, not exactly 32",
            info.subgroup_min_size, info.subgroup_max_size
        ))
    } else if workgroup < super::gemm::GEMM_COOP_WORKGROUP_BYTES {
        Some(format!(
            "{workgroup} bytes of workgroup memory, {} needed",
            super::gemm::GEMM_COOP_WORKGROUP_BYTES
        ))
    } else {
        None
    }
}

/// Describes an adapter for listing.
pub fn summarize(index: usize, adapter: &wgpu::Adapter) -> AdapterSummary {
    let info = adapter.get_info();
    let limits = adapter.limits();
    let features = adapter.features();
    let loops_capped = super::runtime::loops_capped(&info.name, &info.driver);
    AdapterSummary {
        index,
        name: info.name,
        backend: format!("{:?}", info.backend),
        device_type: format!("{:?}", info.device_type),
        driver: format!("{} {}", info.driver, info.driver_info)
            .trim()
            .to_string(),
        max_storage_buffer_binding_size: limits.max_storage_buffer_binding_size,
        max_buffer_size: limits.max_buffer_size,
        max_compute_workgroup_storage_size: limits.max_compute_workgroup_storage_size,
        max_compute_invocations_per_workgroup: limits.max_compute_invocations_per_workgroup,
        max_storage_buffers_per_shader_stage: limits.max_storage_buffers_per_shader_stage,
        timestamp_query: features.contains(wgpu::Features::TIMESTAMP_QUERY),
        shader_f16: features.contains(wgpu::Features::SHADER_F16),
        cooperative_matrix: if features.contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX) {
            adapter
                .cooperative_matrix_properties()
                .iter()
                .map(|c| {
                    format!(
                        "{}x{}x{} {:?}->{:?}",
                        c.m_size, c.n_size, c.k_size, c.ab_type, c.cr_type
                    )
                    .to_lowercase()
                })
                .collect()
        } else {
            Vec::new()
        },
        tensor_cores_missing: tensor_cores_missing(adapter),
        loops_capped,
    }
}

/// Every adapter wgpu finds, described, best first.
pub fn list() -> Vec<AdapterSummary> {
    adapters(&instance())
        .iter()
        .enumerate()
        .map(|(i, a)| summarize(i, a))
        .collect()
}

/// Picks an adapter: `wanted` (an index or part of a name, case-insensitive), else
/// `WGRNN_ADAPTER`, else the best one.
pub fn select(instance: &wgpu::Instance, wanted: Option<&str>) -> Result<wgpu::Adapter, GpuError> {
    let mut all = adapters(instance);
    if all.is_empty() {
        return Err(GpuError::NoAdapter);
    }
    let env = std::env::var(ADAPTER_ENV)
        .ok()
        .filter(|s| !s.trim().is_empty());
    let Some(wanted) = wanted.map(str::to_string).or(env) else {
        return Ok(all.remove(0));
    };
    let pos = match wanted.trim().parse::<usize>() {
        Ok(i) if i < all.len() => Some(i),
        Ok(_) => None,
        Err(_) => {
            let w = wanted.to_lowercase();
            all.iter()
                .position(|a| a.get_info().name.to_lowercase().contains(&w))
        }
    };
    match pos {
        Some(i) => Ok(all.remove(i)),
        None => Err(GpuError::NoSuchAdapter {
            wanted,
            available: all
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    let info = a.get_info();
                    format!("{i}: {} ({:?})", info.name, info.backend)
                })
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::rank;
    use wgpu::DeviceType::{Cpu, DiscreteGpu, IntegratedGpu};

    #[test]
    fn adapters_the_kernels_fit_come_first() {
        // Among adapters that fit, discrete before integrated before the CPU's.
        assert!(rank(true, DiscreteGpu) < rank(true, IntegratedGpu));
        assert!(rank(true, IntegratedGpu) < rank(true, Cpu));
        // A discrete GPU with too few storage buffers ranks after lavapipe.
        assert!(rank(true, Cpu) < rank(false, DiscreteGpu));
    }
}
