//! Safetensors checkpoints with PyTorch's parameter names.
//!
//! A checkpoint holds every tensor of a model's [`ParamTable`] as F32 under its PyTorch name
//! (`rnn.weight_ih_l0`, `rnn.weight_hh_l1_reverse`, `embedding.weight`, `head.weight`, ...),
//! plus the network description as TOML text in the safetensors metadata under
//! [`CONFIG_KEY`]. The recurrent stack's tensors have exactly the names, shapes and gate
//! orders of `torch.nn.RNN` / `LSTM` / `GRU` inside a module that holds it as `self.rnn`, so
//! such a checkpoint loads into PyTorch with `load_state_dict`, and [`load_stack`] reads what
//! `safetensors.torch.save_file(torch.nn.LSTM(...).state_dict(), f)` writes.
//!
//! Loading is strict: every tensor the model needs must be present with its shape, and no
//! other tensor may be in the file; otherwise the error lists every missing, unexpected and
//! wrongly shaped tensor at once.

use std::collections::{BTreeSet, HashMap};
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::backend::{Backend, Real};
use crate::config::NetworkConfig;
use crate::error::CheckpointError;
use crate::model::Model;
use crate::params::RNN_PREFIX;

/// Metadata key under which [`save`] stores the network description as TOML text.
pub const CONFIG_KEY: &str = "wgrnn.config";

/// Writes every parameter of `model` to `path` as F32 safetensors, with the network config
/// as TOML in the metadata under [`CONFIG_KEY`].
///
/// The file is written to `<path>.tmp` first and then renamed over `path`, so an existing
/// checkpoint is never left half-written.
pub fn save<B: Backend>(model: &Model<B>, path: &Path) -> Result<(), CheckpointError> {
    let shown = path.display().to_string();
    let io = |source: std::io::Error| CheckpointError::Io {
        path: shown.clone(),
        source,
    };
    let config = toml::to_string(model.config()).map_err(|e| {
        io(std::io::Error::other(format!(
            "the network config cannot be written as TOML: {e}"
        )))
    })?;
    let params = model.params();
    let table = model.table();
    let bytes: Vec<Vec<u8>> = table
        .entries()
        .iter()
        .map(|e| {
            params[e.range()]
                .iter()
                .flat_map(|v| (v.f64() as f32).to_le_bytes())
                .collect()
        })
        .collect();
    let mut views = Vec::with_capacity(bytes.len());
    for (e, b) in table.entries().iter().zip(&bytes) {
        let view = TensorView::new(Dtype::F32, e.shape.clone(), b).map_err(|err| {
            io(std::io::Error::other(format!(
                "tensor `{}` cannot be serialized: {err}",
                e.name
            )))
        })?;
        views.push((e.name.clone(), view));
    }
    let metadata = HashMap::from([(CONFIG_KEY.to_string(), config)]);
    let data = safetensors::serialize(views, Some(metadata))
        .map_err(|e| io(std::io::Error::other(format!("cannot serialize: {e}"))))?;

    let tmp = tmp_path(path);
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&data)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        // Best effort: do not leave the temporary file behind.
        let _ = std::fs::remove_file(&tmp);
        io(e)
    })
}

/// Loads every parameter of `model` from a checkpoint written by [`save`] (or any
/// safetensors file holding exactly the model's tensors under its names).
///
/// Strict: every tensor of the model's table must be present with its shape and the file may
/// hold no other tensor; otherwise [`CheckpointError::Mismatch`] lists every missing,
/// unexpected and wrongly shaped tensor, and the model is left unchanged. F32, F64, F16 and
/// BF16 tensors are converted to the backend's scalar type. The config stored in the
/// metadata is not compared (see [`read_config`]).
pub fn load<B: Backend>(model: &mut Model<B>, path: &Path) -> Result<(), CheckpointError> {
    load_scoped(model, path, "")
}

/// Loads the recurrent stack of `model` from a file holding only a stack's tensors under
/// PyTorch's bare names (`weight_ih_l0`, `bias_hh_l1_reverse`, `weight_hr_l0`, ...), which
/// is what `safetensors.torch.save_file(torch.nn.LSTM(...).state_dict(), f)` writes.
///
/// Each file tensor `name` fills the model's `rnn.name`. Strict over the `rnn.*` tensors:
/// every one must be present with its shape and the file may hold nothing else; errors name
/// tensors as the file does (without the `rnn.` prefix). Other tensors of the model (the
/// embedding, the head) are left unchanged.
pub fn load_stack<B: Backend>(model: &mut Model<B>, path: &Path) -> Result<(), CheckpointError> {
    load_scoped(model, path, RNN_PREFIX)
}

/// Reads the network description stored in a checkpoint's metadata by [`save`]; `None` when
/// the file has none (e.g. a file written by PyTorch).
pub fn read_config(path: &Path) -> Result<Option<NetworkConfig>, CheckpointError> {
    let shown = path.display().to_string();
    let data = std::fs::read(path).map_err(|source| CheckpointError::Io {
        path: shown.clone(),
        source,
    })?;
    let (_, meta) = SafeTensors::read_metadata(&data).map_err(|e| CheckpointError::Format {
        path: shown.clone(),
        why: e.to_string(),
    })?;
    let Some(text) = meta.metadata().as_ref().and_then(|m| m.get(CONFIG_KEY)) else {
        return Ok(None);
    };
    NetworkConfig::from_toml(text)
        .map(Some)
        .map_err(|e| CheckpointError::Format {
            path: shown,
            why: format!("metadata `{CONFIG_KEY}`: {e}"),
        })
}

/// `<path>.tmp`, next to `path`.
fn tmp_path(path: &Path) -> PathBuf {
    let mut s = OsString::from(path.as_os_str());
    s.push(".tmp");
    PathBuf::from(s)
}

/// Loads the model tensors whose names start with `prefix`, each from the file tensor named
/// like it without the prefix; strict over that scope.
fn load_scoped<B: Backend>(
    model: &mut Model<B>,
    path: &Path,
    prefix: &str,
) -> Result<(), CheckpointError> {
    let shown = path.display().to_string();
    let data = std::fs::read(path).map_err(|source| CheckpointError::Io {
        path: shown.clone(),
        source,
    })?;
    let st = SafeTensors::deserialize(&data).map_err(|e| CheckpointError::Format {
        path: shown.clone(),
        why: e.to_string(),
    })?;

    // The model's tensors in scope, by their name in the file.
    let table = model.table().clone();
    let scope: Vec<(&str, &crate::params::ParamEntry)> = table
        .entries()
        .iter()
        .filter_map(|e| e.name.strip_prefix(prefix).map(|n| (n, e)))
        .collect();
    let wanted: BTreeSet<&str> = scope.iter().map(|(n, _)| *n).collect();

    let mut missing = Vec::new();
    let mut wrong_shape = Vec::new();
    let mut found = Vec::with_capacity(scope.len());
    for &(name, entry) in &scope {
        match st.tensor(name) {
            Ok(view) if view.shape() == entry.shape.as_slice() => found.push((name, entry, view)),
            Ok(view) => {
                wrong_shape.push((name.to_string(), entry.shape.clone(), view.shape().to_vec()))
            }
            Err(_) => missing.push(name.to_string()),
        }
    }
    let mut unexpected: Vec<String> = st
        .names()
        .into_iter()
        .filter(|n| !wanted.contains(n))
        .map(str::to_string)
        .collect();
    unexpected.sort();
    if !(missing.is_empty() && unexpected.is_empty() && wrong_shape.is_empty()) {
        return Err(CheckpointError::Mismatch {
            path: shown,
            missing,
            unexpected,
            wrong_shape,
        });
    }

    let mut params = model.params();
    for (name, entry, view) in found {
        let values = to_f64(&view).ok_or_else(|| CheckpointError::Dtype {
            path: shown.clone(),
            name: name.to_string(),
            dtype: format!("{:?}", view.dtype()),
        })?;
        for (dst, v) in params[entry.range()].iter_mut().zip(values) {
            *dst = B::Scalar::of(v);
        }
    }
    model.set_params(&params).map_err(|e| CheckpointError::Io {
        path: shown,
        source: std::io::Error::other(e.to_string()),
    })
}

/// The values of a floating-point tensor as f64, or `None` for a dtype that is not F32,
/// F64, F16 or BF16. Little-endian, as safetensors stores them; no alignment is assumed.
fn to_f64(view: &TensorView<'_>) -> Option<Vec<f64>> {
    let d = view.data();
    let v = match view.dtype() {
        Dtype::F32 => d
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)
            .collect(),
        Dtype::F64 => d
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect(),
        Dtype::F16 => d
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f64())
            .collect(),
        Dtype::BF16 => d
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f64())
            .collect(),
        _ => return None,
    };
    Some(v)
}
