//! The autotune table: for each adapter and precision, the kernel choices (`Tuning`) that
//! `wgrnn bench --tune` measured fastest on it, kept in a JSON file so every later run on that
//! adapter at that precision starts from them (f16 caches and tensor cores move the best
//! choices). Kernels that compute the same thing differ in speed from one GPU to the
//! next (tile widths, the blocked inner loops, bounds checks), and no one default suits them
//! all.
//!
//! Within an entry, each tuned configuration's own fastest choices are kept by [`Shape`]
//! (what sets the kernels' grids: gates, layers, hidden size, batch, directions), because
//! the best tile width or K split for a 64-sequence batch need not be the best for one
//! sequence; a run takes the choices of its own shape, else of the nearest tuned shape
//! within a factor of 2 in hidden size and batch, else the entry's overall choice.
//!
//! The file is `$WGRNN_TUNING_FILE`, else `$XDG_CACHE_HOME/wgrnn/tuning.json`, else
//! `$HOME/.cache/wgrnn/tuning.json`; `WGRNN_TUNING=off` ignores it (and the measured
//! product tiles kept beside it, [`product_tiles_path`]). An entry matches an adapter
//! by name, backend and driver, so a driver update asks for a new measurement.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Precision, Tuning};
use crate::config::NetworkConfig;

/// Environment variable naming the table file.
pub const FILE_ENV: &str = "WGRNN_TUNING_FILE";
/// Environment variable that, set to `off`, makes the backend ignore the table.
pub const SWITCH_ENV: &str = "WGRNN_TUNING";

/// Which adapter an entry is for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdapterKey {
    /// Adapter name, e.g. `NVIDIA H100 80GB HBM3`.
    pub name: String,
    /// Vulkan, Metal, Dx12, Gl.
    pub backend: String,
    /// Driver name and version.
    pub driver: String,
}

impl AdapterKey {
    /// The key of an adapter as wgpu describes it.
    pub fn of(info: &wgpu::AdapterInfo) -> Self {
        AdapterKey {
            name: info.name.clone(),
            backend: format!("{:?}", info.backend),
            driver: format!("{} {}", info.driver, info.driver_info)
                .trim()
                .to_string(),
        }
    }
}

/// One candidate's measurement: its label and its time relative to the default choices
/// (geometric mean over the tuned configurations; below 1 is faster).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Measured {
    /// `Tuning::label` of the candidate.
    pub variant: String,
    /// Geometric mean of its training-step times over the default's.
    pub relative_time: f64,
}

/// What sets a model's kernel grids, to key tuned choices by: the step kernels' workgroups
/// come from the hidden size, the batch and the directions, their inner loops from the
/// gates; the large products from the same sizes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shape {
    /// Gate blocks per layer (4 LSTM, 3 GRU, 1 Elman and Jordan).
    pub gates: usize,
    /// Recurrent layers.
    pub layers: usize,
    /// Hidden size of the widest layer.
    pub hidden: usize,
    /// Sequences per batch.
    pub batch: usize,
    /// Bidirectional layers.
    pub bidirectional: bool,
}

impl Shape {
    /// The shape of `network` run on batches of `batch` sequences (its first layer's cell
    /// and directions).
    pub fn of(network: &NetworkConfig, batch: usize) -> Shape {
        let first = network.layers.first();
        Shape {
            gates: first.map_or(1, |l| l.cell.gates()),
            layers: network.layers.len(),
            hidden: network.layers.iter().map(|l| l.hidden).max().unwrap_or(0),
            batch,
            bidirectional: first.is_some_and(|l| l.bidirectional),
        }
    }

    /// `4 gates, 2x1024, batch 64` (`, bi` for bidirectional layers), for messages.
    pub fn label(&self) -> String {
        format!(
            "{} gate{}, {}x{}, batch {}{}",
            self.gates,
            if self.gates == 1 { "" } else { "s" },
            self.layers,
            self.hidden,
            self.batch,
            if self.bidirectional { ", bi" } else { "" }
        )
    }

    /// How far `other` is from this shape for borrowing its choices: `None` unless the
    /// gates and directions agree and the hidden size and batch are within a factor of 2,
    /// else the sum of their log ratios (the layer counts' difference breaks ties).
    fn distance(&self, other: &Shape) -> Option<f64> {
        let ratio = |a: usize, b: usize| (a.max(1) as f64 / b.max(1) as f64).ln().abs();
        let (h, b) = (
            ratio(self.hidden, other.hidden),
            ratio(self.batch, other.batch),
        );
        let near = self.gates == other.gates
            && self.bidirectional == other.bidirectional
            && h <= 2f64.ln() + 1e-9
            && b <= 2f64.ln() + 1e-9;
        near.then(|| h + b + 1e-3 * self.layers.abs_diff(other.layers) as f64)
    }
}

/// The choices measured fastest on one tuned configuration's shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShapeChoice {
    /// The configuration's shape.
    pub shape: Shape,
    /// Its fastest choices.
    pub tuning: Tuning,
    /// Their training-step time over the default choices' on this configuration.
    pub relative_time: f64,
}

/// The choices measured fastest on one adapter at one precision.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The adapter.
    pub adapter: AdapterKey,
    /// The precision the runs used (`f32` for tables written before entries had one).
    #[serde(default)]
    pub precision: Precision,
    /// The fastest choices.
    pub tuning: Tuning,
    /// The configurations they were measured on (`BenchConfig::label`).
    pub configs: Vec<String>,
    /// Each tuned configuration's own fastest choices, by shape (none in tables written
    /// before entries were keyed by shape).
    #[serde(default)]
    pub shapes: Vec<ShapeChoice>,
    /// Every candidate's result, fastest first.
    pub measured: Vec<Measured>,
    /// The wgrnn version that measured it (kernels change between versions).
    pub version: String,
}

impl Entry {
    /// The choices for a run of `shape`: those tuned on that shape, else on the nearest
    /// tuned shape ([`Shape::distance`]), with the shape they were tuned on; else (or with
    /// no shape given) the entry's overall choice and `None`.
    pub fn choice_for(&self, shape: Option<&Shape>) -> (Tuning, Option<&Shape>) {
        let nearest = shape.and_then(|s| {
            self.shapes
                .iter()
                .filter_map(|c| s.distance(&c.shape).map(|d| (d, c)))
                .min_by(|a, b| a.0.total_cmp(&b.0))
        });
        match nearest {
            Some((_, c)) => (c.tuning, Some(&c.shape)),
            None => (self.tuning, None),
        }
    }
}

/// The table: one entry per adapter and precision.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Table {
    /// Entries, one per adapter key and precision.
    pub entries: Vec<Entry>,
}

/// Why the table could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// The file exists but could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The table file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a tuning table.
    #[error(
        "{path} is not a wgrnn tuning table ({source}); delete it or run `wgrnn bench --tune` again"
    )]
    Parse {
        /// The table file.
        path: PathBuf,
        /// The JSON error.
        source: serde_json::Error,
    },
}

impl Table {
    /// Reads the table at `path`; a missing file is an empty table.
    pub fn load(path: &Path) -> Result<Table, TableError> {
        match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text).map_err(|source| TableError::Parse {
                path: path.to_path_buf(),
                source,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Table::default()),
            Err(source) => Err(TableError::Io {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Writes the table to `path` (creating its directory), through a temporary file so a
    /// reader never sees half of it.
    pub fn save(&self, path: &Path) -> Result<(), TableError> {
        let text = serde_json::to_string_pretty(self).map_err(|source| TableError::Parse {
            path: path.to_path_buf(),
            source,
        })?;
        write_whole(path, &text).map_err(|source| TableError::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// The entry of `adapter` at `precision` written by this version of wgrnn, if any.
    pub fn get(&self, adapter: &AdapterKey, precision: Precision) -> Option<&Entry> {
        self.entries.iter().find(|e| {
            &e.adapter == adapter
                && e.precision == precision
                && e.version == env!("CARGO_PKG_VERSION")
        })
    }

    /// Puts `entry` in place of any entry for the same adapter and precision.
    pub fn put(&mut self, entry: Entry) {
        self.entries
            .retain(|e| e.adapter != entry.adapter || e.precision != entry.precision);
        self.entries.push(entry);
    }
}

/// Writes `text` and a newline to `path` (creating its directory) through a temporary file
/// of this process, renamed into place, so a reader never sees half of it.
pub(super) fn write_whole(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("json.{}.tmp", std::process::id()));
    std::fs::write(&tmp, format!("{text}\n"))?;
    std::fs::rename(&tmp, path)
}

/// Most measurements a file of measured choices keeps (`gemm_measure`, `pipeline_measure`):
/// each adapter, version, shape class and set of candidates is one, and a run's length
/// buckets add a few classes, so without a bound the file would grow with every new
/// shape trained; past it the oldest go first, to be measured again if met again.
pub(super) const MAX_KEPT: usize = 256;

/// Drops the oldest of `entries` (the first) beyond [`MAX_KEPT`].
pub(super) fn keep_newest<T>(entries: &mut Vec<T>) {
    let extra = entries.len().saturating_sub(MAX_KEPT);
    entries.drain(..extra);
}

/// A file of measured choices (`gemm_measure`, `pipeline_measure`) at `path`, as `T`: the
/// default where there is none; one that cannot be read, or is not a file of `what`, is
/// said so on stderr and taken as the default (it only ever holds speed choices, which the
/// run then measures again).
pub(super) fn read_kept<T: serde::de::DeserializeOwned + Default>(path: &Path, what: &str) -> T {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return T::default(),
        Err(e) => {
            eprintln!(
                "warning: {}: {e}; measuring the {what} again",
                path.display()
            );
            return T::default();
        }
    };
    serde_json::from_str(&text).unwrap_or_else(|e| {
        eprintln!(
            "warning: {} is not a file of measured {what} ({e}); measuring them again",
            path.display()
        );
        T::default()
    })
}

/// Where the table lives (see the module documentation); `None` when no location is known.
pub fn table_path() -> Option<PathBuf> {
    let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(p) = var(FILE_ENV) {
        return Some(PathBuf::from(p));
    }
    let cache = var("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(cache.join("wgrnn").join("tuning.json"))
}

/// Where the matrix products' measured tiles are kept between runs (`gemm_measure`): beside
/// the table, as `product_tiles.json`.
pub fn product_tiles_path() -> Option<PathBuf> {
    table_path().map(|p| p.with_file_name("product_tiles.json"))
}

/// Whether the backend should read the table (`WGRNN_TUNING` is not `off`).
pub fn enabled() -> bool {
    std::env::var(SWITCH_ENV).map_or(true, |v| v.trim() != "off")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, units: Option<usize>) -> Entry {
        Entry {
            adapter: AdapterKey {
                name: name.into(),
                backend: "Vulkan".into(),
                driver: "d 1".into(),
            },
            precision: Precision::F32,
            tuning: Tuning {
                step_tile_units: units,
                ..Tuning::default()
            },
            configs: vec!["lstm 1x8".into()],
            shapes: Vec::new(),
            measured: vec![Measured {
                variant: "v".into(),
                relative_time: 0.9,
            }],
            version: env!("CARGO_PKG_VERSION").into(),
        }
    }

    #[test]
    fn table_round_trips_and_keeps_one_entry_per_adapter_and_precision() {
        let dir = std::env::temp_dir().join(format!("wgrnn-autotune-{}", std::process::id()));
        let path = dir.join("sub").join("tuning.json");
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(
            Table::load(&path).expect("missing is empty"),
            Table::default()
        );
        let mut t = Table::default();
        t.put(entry("a", Some(16)));
        t.put(entry("b", None));
        t.put(entry("a", Some(64)));
        t.save(&path).expect("save");
        let back = Table::load(&path).expect("load");
        assert_eq!(back, t);
        assert_eq!(back.entries.len(), 2);
        let key = |n: &str| entry(n, None).adapter;
        assert_eq!(
            back.get(&key("a"), Precision::F32)
                .map(|e| e.tuning.step_tile_units),
            Some(Some(64))
        );
        assert!(back.get(&key("c"), Precision::F32).is_none());
        // An entry per precision: f16's neither replaces nor answers for f32's.
        assert!(back.get(&key("a"), Precision::F16).is_none());
        let mut half = entry("a", Some(32));
        half.precision = Precision::F16;
        let mut both = back.clone();
        both.put(half);
        assert_eq!(both.entries.len(), 3);
        let units = |p| both.get(&key("a"), p).map(|e| e.tuning.step_tile_units);
        assert_eq!(units(Precision::F32), Some(Some(64)));
        assert_eq!(units(Precision::F16), Some(Some(32)));
        // Tables written before entries had a precision hold f32 entries, before the steps
        // had K slices the grid's choice, before their backward had a choice of rows, the
        // default's 64, and before the tensor-core steps could be split, rounded ones.
        let old_text = serde_json::to_string(&back)
            .expect("json")
            .replace(",\"precision\":\"f32\"", "")
            .replace("\"step_k_split\":null,", "")
            .replace("\"step_chunk_rows\":64,", "")
            .replace("\"split_steps\":false,", "")
            .replace(",\"shapes\":[]", "");
        assert!(!old_text.contains("precision"), "{old_text}");
        assert!(!old_text.contains("shapes"), "{old_text}");
        assert!(!old_text.contains("step_k_split"), "{old_text}");
        assert!(!old_text.contains("step_chunk_rows"), "{old_text}");
        assert!(!old_text.contains("split_steps"), "{old_text}");
        let old: Table = serde_json::from_str(&old_text).expect("an older table");
        assert_eq!(old, back);
        // One slice written when it was the default stays one slice: it was measured so.
        let one_slice = serde_json::to_string(&back)
            .expect("json")
            .replace("\"step_k_split\":null", "\"step_k_split\":1");
        let one: Table = serde_json::from_str(&one_slice).expect("a table");
        assert!(one.entries.iter().all(|e| e.tuning.step_k_split == Some(1)));
        // Another version's entry does not apply.
        let mut old = entry("c", None);
        old.version = "0.0.0-old".into();
        let mut t2 = back.clone();
        t2.put(old);
        assert!(t2.get(&key("c"), Precision::F32).is_none());
        std::fs::write(&path, "{ not json").expect("write");
        let err = Table::load(&path).expect_err("corrupt");
        assert!(
            err.to_string().contains("is not a wgrnn tuning table"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn shape(gates: usize, hidden: usize, batch: usize) -> Shape {
        Shape {
            gates,
            layers: 4,
            hidden,
            batch,
            bidirectional: false,
        }
    }

    #[test]
    fn a_run_takes_its_own_shapes_choice_else_the_nearest_within_a_factor_of_two() {
        let mut e = entry("a", Some(64));
        let choice = |s: Shape, units: usize| ShapeChoice {
            shape: s,
            tuning: Tuning {
                step_tile_units: Some(units),
                ..Tuning::default()
            },
            relative_time: 0.8,
        };
        e.shapes = vec![
            choice(shape(4, 1024, 64), 16),
            choice(shape(4, 1024, 1), 32),
        ];
        let units = |s: Option<Shape>| {
            let (t, from) = e.choice_for(s.as_ref());
            (t.step_tile_units, from.map(|f| (f.hidden, f.batch)))
        };
        // Its own shape, and nearby ones take the nearest tuned shape's choice.
        assert_eq!(
            units(Some(shape(4, 1024, 64))),
            (Some(16), Some((1024, 64)))
        );
        assert_eq!(units(Some(shape(4, 1024, 1))), (Some(32), Some((1024, 1))));
        assert_eq!(units(Some(shape(4, 768, 48))), (Some(16), Some((1024, 64))));
        assert_eq!(units(Some(shape(4, 1024, 2))), (Some(32), Some((1024, 1))));
        let two_layers = Shape {
            layers: 2,
            ..shape(4, 1024, 64)
        };
        assert_eq!(units(Some(two_layers)), (Some(16), Some((1024, 64))));
        // Beyond a factor of 2, another cell or other directions: the overall choice.
        assert_eq!(units(Some(shape(4, 1024, 16))), (Some(64), None));
        assert_eq!(units(Some(shape(4, 4096, 64))), (Some(64), None));
        assert_eq!(units(Some(shape(3, 1024, 64))), (Some(64), None));
        let bi = Shape {
            bidirectional: true,
            ..shape(4, 1024, 64)
        };
        assert_eq!(units(Some(bi)), (Some(64), None));
        assert_eq!(units(None), (Some(64), None));
        assert_eq!(shape(4, 1024, 64).label(), "4 gates, 4x1024, batch 64");
    }
}
