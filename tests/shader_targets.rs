//! Every kernel the engine compiles (`module_sources`) on every kind of GPU wgpu targets, as
//! far as can be checked without one:
//!
//! - **Workgroup memory.** wgpu 30 does not check a pipeline's workgroup memory against the
//!   adapter's `max_compute_workgroup_storage_size` (wgpu-core leaves it to the driver), so
//!   the host's own accounting is all that keeps a kernel off an adapter it does not fit
//!   (Apple GPUs have 32 KiB, WebGPU's minimum is 16 KiB). Each entry point's workgroup
//!   variables, sized by naga with the pipeline constants the host gives them, must take
//!   exactly (or at most) what the host checks before it builds that kernel: the GEMM tiles'
//!   `GEMM*_WORKGROUP_BYTES`, the step tiles' `PlainChunks` arrays (`fit_chunks`) and
//!   `TILED_STEP_WORKGROUP_BYTES`, the tensor-core steps' `coop_step_bytes`, and
//!   for every other kernel, which the host never checks, WebGPU's 16 KiB minimum.
//! - **Metal and Direct3D 12.** wgpu hands a kernel to Metal as MSL and to D3D12 as HLSL,
//!   both written by naga from the module after its pipeline constants are applied. Every
//!   entry point must pass naga's validation with the capabilities that backend can offer
//!   and translate, under both bounds-check policies the engine uses (checked, and
//!   `--unchecked`): f16 modules at HLSL shader model 6.2 (wgpu offers `SHADER_F16` on D3D12
//!   only there), the rest at 5.1 (FXC). The tensor-core modules are left out of HLSL: wgpu
//!   30 offers cooperative matrices on Vulkan and Metal only (`device::tensor_cores` is false
//!   elsewhere), and naga cannot write them as HLSL.
//!
//! Lavapipe runs only the Vulkan path, so these are the checks that a kernel which passes
//! every GPU test here also builds for a Mac or a Windows machine. Needs no GPU.

use naga::back::{hlsl, msl, pipeline_constants};
use naga::proc::{BoundsCheckPolicies, BoundsCheckPolicy};
use naga::valid::{Capabilities, ValidationFlags, Validator};
use naga::{AddressSpace, ShaderStage};
use wgrnn::backend::wgpu::gemm::{
    GEMM_COOP_SPLIT_WORKGROUP_BYTES, GEMM_COOP_WORKGROUP_BYTES, GEMM128_WORKGROUP_BYTES,
    GEMM256_WORKGROUP_BYTES,
};
use wgrnn::backend::wgpu::{
    PlainChunks, TILE_QUADS, TILED_STEP_WORKGROUP_BYTES, WIDE_QUADS, coop_step_bytes, fit_chunks,
    instructions, module_sources,
};

/// WebGPU's (and so wgpu's downlevel) minimum of workgroup memory: what a kernel the host
/// builds without checking the adapter may take.
const WEBGPU_WORKGROUP_BYTES: u32 = 16 * 1024;

/// A module as naga parsed and validated it, once per source.
struct Parsed {
    module: naga::Module,
    info: naga::valid::ModuleInfo,
}

/// `src` parsed by naga (the compiler wgpu uses).
fn parse(src: &str) -> Parsed {
    let (module, info) = instructions::parse(src).unwrap_or_else(|why| panic!("{why}"));
    Parsed { module, info }
}

/// The module with `constants` applied for `entry`, and its validation info.
fn with_constants(
    parsed: &Parsed,
    entry: &str,
    constants: &[(&str, f64)],
) -> (naga::Module, naga::valid::ModuleInfo) {
    let constants = constants.iter().map(|&(k, v)| (k.to_string(), v)).collect();
    let (m, i) = pipeline_constants::process_overrides(
        &parsed.module,
        &parsed.info,
        Some((ShaderStage::Compute, entry)),
        &constants,
    )
    .unwrap_or_else(|why| panic!("{entry}: {why:?}"));
    (m.into_owned(), i.into_owned())
}

/// Bytes of workgroup memory `entry` takes with `constants`: the sizes of the workgroup
/// variables it uses.
fn workgroup_bytes(parsed: &Parsed, entry: &str, constants: &[(&str, f64)]) -> u32 {
    let (module, info) = with_constants(parsed, entry, constants);
    let at = module
        .entry_points
        .iter()
        .position(|e| e.name == entry)
        .unwrap_or_else(|| panic!("no entry point {entry}"));
    let used = info.get_entry_point(at);
    module
        .global_variables
        .iter()
        .filter(|(h, g)| g.space == AddressSpace::WorkGroup && !used[*h].is_empty())
        .map(|(_, g)| module.types[g.ty].inner.size(module.to_ctx()))
        .sum()
}

/// The compute entry points of the module.
fn entries(parsed: &Parsed) -> Vec<String> {
    parsed
        .module
        .entry_points
        .iter()
        .map(|e| e.name.clone())
        .collect()
}

/// Gate rows per unit of a cell module's layer (`Call::gates`).
fn gates_of(module: &str) -> usize {
    if module.starts_with("lstm") {
        4
    } else if module.starts_with("gru") {
        3
    } else {
        1
    }
}

/// Whether `name` is a build of a cell with the f32 step tiles (`shaders/step_tiles.wgsl`):
/// f32 or f16 caches, with or without the parameters' vec4 binding, joined or not.
fn f32_tiles(name: &str) -> bool {
    let name = name.strip_suffix("_joined").unwrap_or(name);
    ["_cell", "_cell_f16", "_cell_8buffers", "_cell_f16_8buffers"]
        .iter()
        .any(|s| name.ends_with(s))
}

#[test]
fn kernels_take_the_workgroup_memory_the_host_checks() {
    let mut tiled = 0;
    for (name, src) in module_sources() {
        let parsed = parse(&src);
        for entry in entries(&parsed) {
            let at_defaults = workgroup_bytes(&parsed, &entry, &[]);
            let step = entry.ends_with("_tiled");
            let what = format!("{name}::{entry}");
            if name.starts_with("gemm128") {
                assert_eq!(at_defaults, GEMM128_WORKGROUP_BYTES, "{what}");
            } else if name.starts_with("gemm256") {
                assert_eq!(at_defaults, GEMM256_WORKGROUP_BYTES, "{what}");
            } else if name.starts_with("gemm_coop") {
                assert_eq!(at_defaults, GEMM_COOP_WORKGROUP_BYTES, "{what}");
                let split = workgroup_bytes(&parsed, &entry, &[("SPLIT", 1.0)]);
                assert_eq!(split, GEMM_COOP_SPLIT_WORKGROUP_BYTES, "{what} split");
            } else if step && name.contains("_coop") {
                // Built only where `device::tensor_cores` holds, which checks the tile's
                // bytes: every width at one slice fits them; K slices where
                // `coop_tiles` finds the adapter's memory holds `coop_step_bytes`.
                for tu in [16, 32, 64] {
                    for ks in [1, 2, 4] {
                        for split in [false, true] {
                            let c = [
                                ("TU", tu as f64),
                                ("KS", ks as f64),
                                ("SPLIT", split as u32 as f64),
                            ];
                            let bytes = workgroup_bytes(&parsed, &entry, &c) as usize;
                            let want = coop_step_bytes(tu, ks, split);
                            assert_eq!(bytes, want, "{what} {c:?}");
                            // A gated forward in tiles of half the units x 32 sequences
                            // (`step_tiles::forward_quads`) takes no more.
                            if tu >= 32 && entry.starts_with("fwd") {
                                let c = [
                                    ("TU", (tu / 2) as f64),
                                    ("SQ", 8.0),
                                    ("TB", 32.0),
                                    ("KS", ks as f64),
                                    ("SPLIT", split as u32 as f64),
                                ];
                                let bytes = workgroup_bytes(&parsed, &entry, &c) as usize;
                                assert!(bytes <= want, "{what} {c:?}: {bytes} > {want}");
                            }
                        }
                    }
                    let one = coop_step_bytes(tu, 1, false) as u32;
                    assert!(one <= GEMM_COOP_WORKGROUP_BYTES, "{what} at TU {tu}: {one}");
                }
            } else if step && name.contains("_gemv") {
                // Built only where the tiles fit (`Tuning`: gemv_steps needs tiled_steps).
                for (tu, ks) in [(4.0, 4.0), (8.0, 16.0), (4.0, 16.0), (8.0, 12.0)] {
                    let c = [("TU", tu), ("KS", ks), ("TB", 4.0)];
                    let bytes = workgroup_bytes(&parsed, &entry, &c);
                    assert!(bytes <= TILED_STEP_WORKGROUP_BYTES, "{what} {c:?}: {bytes}");
                }
            } else if step && f32_tiles(name) {
                let blocked = [("TU", 32.0), ("STEP_BLOCKED", 1.0)];
                let bytes = workgroup_bytes(&parsed, &entry, &blocked);
                assert_eq!(bytes, TILED_STEP_WORKGROUP_BYTES, "{what}, blocked loops");
                let gates = gates_of(name);
                // Apple's 32 KiB, the H100's 48 KiB, 64 KiB (lavapipe, AMD).
                for storage in [32 * 1024, 48 * 1024, 64 * 1024] {
                    // The last: the grid's default at 4 slices where 32-unit tiles keep
                    // 128 workgroups (32-row chunks on the H100).
                    for (tu, ks, rows) in [
                        (16, 4, 64),
                        (32, 1, 64),
                        (32, 2, 32),
                        (64, 2, 64),
                        (32, 4, 64),
                    ] {
                        // The gated forwards also in tiles of half the units x 32
                        // sequences (`step_tiles::forward_quads`).
                        let backward = entry.starts_with("bwd");
                        let wide = !backward && gates > 1 && tu >= 32;
                        for sq in [TILE_QUADS, WIDE_QUADS] {
                            if sq == WIDE_QUADS && !wide {
                                continue;
                            }
                            let c = fit_chunks(ks, rows, tu, gates, sq, 1024, storage);
                            let arrays = c.arrays(backward);
                            let units = if backward { tu } else { c.forward_units(tu) };
                            let constants = [
                                ("TU", units as f64),
                                ("SQ", if backward { TILE_QUADS } else { sq } as f64),
                                ("KS", c.ks as f64),
                                ("BR", c.rows as f64),
                                ("FK", c.fk as f64),
                                ("WS", arrays.ws as f64),
                                ("HT", arrays.ht as f64),
                            ];
                            let bytes = workgroup_bytes(&parsed, &entry, &constants) as usize;
                            assert_eq!(bytes, arrays.bytes(), "{what} {constants:?}");
                            let floor = PlainChunks::of(1, 16, 16, tu, gates, sq);
                            assert!(bytes <= storage || c == floor, "{what} {constants:?}");
                            tiled += 1;
                        }
                    }
                }
            } else {
                assert!(
                    at_defaults <= WEBGPU_WORKGROUP_BYTES,
                    "{what} takes {at_defaults} bytes, which no adapter check covers"
                );
            }
        }
    }
    // Three cells (the Jordan cell's steps are row-wise only) x four builds x two entry
    // points x fifteen chunkings, and the LSTM's and GRU's forwards in 32 sequences at the
    // twelve of at least 32 units; each build also joined.
    assert_eq!(
        tiled,
        2 * (3 * 4 * 2 * 15 + 2 * 4 * 12),
        "every f32 tile build was seen"
    );
}

/// naga's validation of `module` with the capabilities a backend offers, or why it fails.
fn validate(module: &naga::Module, caps: Capabilities) -> Result<naga::valid::ModuleInfo, String> {
    Validator::new(ValidationFlags::all(), caps)
        .validate(module)
        .map_err(|e| format!("{:?}", e.into_inner()))
}

/// The MSL wgpu's Metal backend would hand the driver for `entry`, or why naga refuses it.
fn to_msl(module: &naga::Module, entry: &str, policy: BoundsCheckPolicy) -> Result<String, String> {
    let info = validate(module, msl::supported_capabilities())?;
    let options = msl::Options {
        // macOS 12 / iOS 15; wgpu offers cooperative matrices from 2.3.
        lang_version: (2, 4),
        bounds_check_policies: BoundsCheckPolicies {
            index: policy,
            buffer: policy,
            image_load: policy,
            binding_array: BoundsCheckPolicy::Unchecked,
        },
        ..Default::default()
    };
    let pipeline = msl::PipelineOptions {
        entry_point: Some((ShaderStage::Compute, entry.to_string())),
        ..Default::default()
    };
    msl::write_string(module, &info, &options, &pipeline)
        .map(|(text, _)| text)
        .map_err(|e| format!("{e:?}"))
}

/// The HLSL wgpu's D3D12 backend would compile for `entry` at `model`, or why naga refuses
/// it.
fn to_hlsl(
    module: &naga::Module,
    entry: &str,
    model: hlsl::ShaderModel,
    policy: BoundsCheckPolicy,
) -> Result<String, String> {
    let info = validate(module, hlsl::supported_capabilities())?;
    let options = hlsl::Options {
        shader_model: model,
        restrict_indexing: policy == BoundsCheckPolicy::Restrict,
        ..Default::default()
    };
    let pipeline = hlsl::PipelineOptions {
        entry_point: Some((ShaderStage::Compute, entry.to_string())),
    };
    let mut text = String::new();
    hlsl::Writer::new(&mut text, &options, &pipeline)
        .write(module, &info, None)
        .map_err(|e| format!("{e:?}"))?;
    Ok(text)
}

#[test]
fn kernels_translate_to_metal_and_direct3d() {
    let mut written = 0;
    for (name, src) in module_sources() {
        let f16 = src.contains("enable f16");
        let tensor = src.contains("wgpu_cooperative_matrix");
        let model = if f16 {
            hlsl::ShaderModel::V6_2
        } else {
            hlsl::ShaderModel::V5_1
        };
        let parsed = parse(&src);
        for entry in entries(&parsed) {
            let (module, _) = with_constants(&parsed, &entry, &[]);
            for policy in [BoundsCheckPolicy::Restrict, BoundsCheckPolicy::Unchecked] {
                let text = to_msl(&module, &entry, policy)
                    .unwrap_or_else(|why| panic!("{name}::{entry} as MSL: {why}"));
                assert!(
                    text.contains("kernel void"),
                    "{name}::{entry}: no MSL kernel"
                );
                written += 1;
                if tensor {
                    continue;
                }
                let text = to_hlsl(&module, &entry, model, policy)
                    .unwrap_or_else(|why| panic!("{name}::{entry} as HLSL: {why}"));
                assert!(
                    text.contains("[numthreads("),
                    "{name}::{entry}: no HLSL kernel"
                );
                written += 1;
            }
        }
    }
    assert!(written > 400, "only {written} translations");
}
