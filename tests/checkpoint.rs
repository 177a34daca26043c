//! Safetensors checkpoints: round trips, strict loading with complete mismatch reports,
//! dtype conversion, bare PyTorch stacks, and errors (never panics) for bad files.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use wgrnn::checkpoint::{self, CONFIG_KEY};
use wgrnn::config::{
    Activation, CellConfig, GruVariant, HeadConfig, InputEncoding, LayerConfig, Task, UnknownTokens,
};
use wgrnn::error::CheckpointError;
use wgrnn::{Batch, CpuBackend, Inputs, Mode, Model, NetworkConfig, SeqShape};

/// A fresh path in the system temp directory, removed when dropped.
struct TempPath(PathBuf);

impl TempPath {
    fn new(name: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!(
            "wgrnn-checkpoint-test-{}-{n}-{name}",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&p);
        TempPath(p)
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn layer(cell: CellConfig, hidden: usize, bidirectional: bool) -> LayerConfig {
    LayerConfig {
        cell,
        hidden,
        bidirectional,
        dropout: 0.0,
        recurrent: true,
    }
}

fn lstm(proj: Option<usize>) -> CellConfig {
    CellConfig::Lstm {
        gate: Activation::Sigmoid,
        cell: Activation::Tanh,
        hidden: Activation::Tanh,
        peephole: false,
        proj,
        forget_bias: None,
    }
}

fn elman() -> CellConfig {
    CellConfig::Elman {
        activation: Activation::Tanh,
    }
}

/// An embedding, a bidirectional LSTMP layer, a GRU layer and a tagging head: every kind of
/// tensor name.
fn full_net(hidden: usize) -> NetworkConfig {
    NetworkConfig {
        input: InputEncoding::Embedding {
            vocab: 7,
            dim: 4,
            unknown: UnknownTokens::Other,
        },
        layers: vec![
            layer(lstm(Some(3)), hidden, true),
            layer(
                CellConfig::Gru {
                    variant: GruVariant::Pytorch,
                },
                hidden,
                false,
            ),
        ],
        head: Some(HeadConfig {
            classes: 5,
            task: Task::Tagging { ignore_label: None },
        }),
    }
}

/// A small Elman network (works whatever cells are implemented).
fn elman_net(hidden: usize) -> NetworkConfig {
    NetworkConfig {
        input: InputEncoding::Dense { features: 3 },
        layers: vec![layer(elman(), hidden, true)],
        head: Some(HeadConfig {
            classes: 2,
            task: Task::Regression,
        }),
    }
}

fn model(cfg: NetworkConfig, seed: u64) -> Model<CpuBackend<f32>> {
    Model::new(CpuBackend::new(), cfg, seed).expect("valid config")
}

fn id_batch() -> Batch<f32> {
    let lengths = vec![4, 2, 3];
    Batch {
        seq: SeqShape { time: 4, lengths },
        inputs: Inputs::Ids((0..12).map(|i| (i * 5 % 9) as u32).collect()),
    }
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// The tensors of a safetensors file as `(dtype, shape, bytes)`, and its metadata.
type Raw = Vec<(String, Dtype, Vec<usize>, Vec<u8>)>;
fn read_raw(path: &Path) -> (Raw, Option<HashMap<String, String>>) {
    let data = std::fs::read(path).expect("readable");
    let st = SafeTensors::deserialize(&data).expect("safetensors");
    let (_, meta) = SafeTensors::read_metadata(&data).expect("header");
    let mut raw: Raw = st
        .iter()
        .map(|(n, v)| {
            (
                n.to_string(),
                v.dtype(),
                v.shape().to_vec(),
                v.data().to_vec(),
            )
        })
        .collect();
    raw.sort_by(|a, b| a.0.cmp(&b.0));
    (raw, meta.metadata().clone())
}

fn write_raw(path: &Path, raw: &Raw) {
    let views: Vec<(String, TensorView<'_>)> = raw
        .iter()
        .map(|(n, d, s, b)| {
            (
                n.clone(),
                TensorView::new(*d, s.clone(), b).expect("consistent view"),
            )
        })
        .collect();
    let bytes = safetensors::serialize(views, None).expect("serialize");
    std::fs::write(path, bytes).expect("write");
}

fn mismatch(err: CheckpointError) -> (Vec<String>, Vec<String>, Vec<String>) {
    match err {
        CheckpointError::Mismatch {
            missing,
            unexpected,
            wrong_shape,
            ..
        } => (
            missing,
            unexpected,
            wrong_shape.into_iter().map(|(n, _, _)| n).collect(),
        ),
        other => panic!("expected a mismatch, got {other}"),
    }
}

#[test]
fn round_trip_is_bit_identical() {
    let path = TempPath::new("round.safetensors");
    let mut a = model(full_net(5), 1);
    checkpoint::save(&a, &path.0).expect("save");
    assert!(
        !PathBuf::from(format!("{}.tmp", path.0.display())).exists(),
        "the temporary file is renamed away"
    );

    let mut b = model(full_net(5), 2);
    assert_ne!(bits(&a.params()), bits(&b.params()));
    checkpoint::load(&mut b, &path.0).expect("load");
    assert_eq!(bits(&a.params()), bits(&b.params()));

    let batch = id_batch();
    a.forward(&batch, None, Mode::Eval).expect("forward");
    b.forward(&batch, None, Mode::Eval).expect("forward");
    assert_eq!(bits(&a.outputs()), bits(&b.outputs()));

    // Every table entry is stored as F32 under its name, with the config in the metadata.
    let (raw, meta) = read_raw(&path.0);
    let mut names: Vec<&str> = a
        .table()
        .entries()
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    names.sort();
    assert_eq!(raw.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(), names);
    for (name, dtype, shape, _) in &raw {
        assert_eq!(*dtype, Dtype::F32, "{name}");
        assert_eq!(
            shape,
            &a.table().get(name).expect("in table").shape,
            "{name}"
        );
    }
    let text = meta
        .as_ref()
        .and_then(|m| m.get(CONFIG_KEY))
        .expect("config");
    assert_eq!(NetworkConfig::from_toml(text).expect("parses"), *a.config());
    assert_eq!(
        checkpoint::read_config(&path.0).expect("read"),
        Some(a.config().clone())
    );

    // Saving over an existing checkpoint replaces it.
    let c = model(full_net(5), 3);
    checkpoint::save(&c, &path.0).expect("save again");
    checkpoint::load(&mut b, &path.0).expect("load");
    assert_eq!(bits(&c.params()), bits(&b.params()));
}

#[test]
fn f64_model_round_trips_through_f32() {
    let path = TempPath::new("f64.safetensors");
    let a: Model<CpuBackend<f64>> =
        Model::new(CpuBackend::new(), elman_net(4), 1).expect("valid config");
    checkpoint::save(&a, &path.0).expect("save");
    let mut b: Model<CpuBackend<f64>> =
        Model::new(CpuBackend::new(), elman_net(4), 2).expect("valid config");
    checkpoint::load(&mut b, &path.0).expect("load");
    // Initial parameters are f32 values, so nothing is lost.
    assert_eq!(a.params(), b.params());
}

#[test]
fn other_shape_names_every_wrong_tensor() {
    let path = TempPath::new("shape.safetensors");
    checkpoint::save(&model(elman_net(4), 1), &path.0).expect("save");
    let mut other = model(elman_net(6), 2);
    let before = bits(&other.params());
    let err = checkpoint::load(&mut other, &path.0).expect_err("shapes differ");
    let msg = err.to_string();
    assert!(msg.contains(&path.0.display().to_string()), "{msg}");
    for name in [
        "rnn.weight_ih_l0",
        "rnn.weight_hh_l0_reverse",
        "head.weight",
    ] {
        assert!(msg.contains(name), "message should name `{name}`: {msg}");
    }
    assert!(msg.contains("[4, 3]") && msg.contains("[6, 3]"), "{msg}");
    let (missing, unexpected, wrong) = mismatch(err);
    assert!(missing.is_empty() && unexpected.is_empty());
    // Every tensor but head.bias changes shape with the hidden size.
    assert_eq!(wrong.len(), other.table().entries().len() - 1, "{wrong:?}");
    assert_eq!(
        bits(&other.params()),
        before,
        "a failed load changes nothing"
    );
}

#[test]
fn missing_and_extra_tensors_are_named() {
    let path = TempPath::new("saved.safetensors");
    let edited = TempPath::new("edited.safetensors");
    checkpoint::save(&model(elman_net(4), 1), &path.0).expect("save");
    let (raw, _) = read_raw(&path.0);

    // One tensor removed.
    let fewer: Raw = raw
        .iter()
        .filter(|r| r.0 != "rnn.bias_hh_l0_reverse")
        .cloned()
        .collect();
    write_raw(&edited.0, &fewer);
    let mut m = model(elman_net(4), 2);
    let err = checkpoint::load(&mut m, &edited.0).expect_err("missing");
    assert!(err.to_string().contains("rnn.bias_hh_l0_reverse"), "{err}");
    assert_eq!(
        mismatch(err),
        (vec!["rnn.bias_hh_l0_reverse".into()], vec![], vec![])
    );

    // One tensor added.
    let mut more = raw.clone();
    more.push(("rnn.weight_hr_l0".into(), Dtype::F32, vec![1], vec![0; 4]));
    write_raw(&edited.0, &more);
    let err = checkpoint::load(&mut m, &edited.0).expect_err("extra");
    assert!(err.to_string().contains("rnn.weight_hr_l0"), "{err}");
    assert_eq!(
        mismatch(err),
        (vec![], vec!["rnn.weight_hr_l0".into()], vec![])
    );

    // All three kinds at once are all reported.
    let mut all: Raw = fewer.clone();
    all.push(("stray".into(), Dtype::F32, vec![2], vec![0; 8]));
    for r in all.iter_mut().filter(|r| r.0 == "head.bias") {
        r.2 = vec![1, 2];
    }
    write_raw(&edited.0, &all);
    let err = checkpoint::load(&mut m, &edited.0).expect_err("all wrong");
    let msg = err.to_string();
    for name in ["rnn.bias_hh_l0_reverse", "stray", "head.bias"] {
        assert!(msg.contains(name), "message should name `{name}`: {msg}");
    }
    assert_eq!(
        mismatch(err),
        (
            vec!["rnn.bias_hh_l0_reverse".into()],
            vec!["stray".into()],
            vec!["head.bias".into()]
        )
    );
}

#[test]
fn converts_f64_f16_bf16_and_rejects_integers() {
    let saved = TempPath::new("f32.safetensors");
    let edited = TempPath::new("converted.safetensors");
    let src = model(elman_net(4), 1);
    checkpoint::save(&src, &saved.0).expect("save");
    let (raw, _) = read_raw(&saved.0);
    let f32s = |b: &[u8]| -> Vec<f32> {
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect()
    };

    // Each tensor stored in another float dtype; values exactly representable in f16/bf16.
    let kinds = [Dtype::F64, Dtype::F16, Dtype::BF16, Dtype::F32];
    let mut expected = HashMap::new();
    let converted: Raw = raw
        .iter()
        .enumerate()
        .map(|(i, (name, _, shape, bytes))| {
            let dtype = kinds[i % kinds.len()];
            // Round to a multiple of 1/64 in [-1, 1]: exact in every format.
            let vals: Vec<f32> = f32s(bytes)
                .iter()
                .map(|v| (v * 64.0).round() / 64.0)
                .collect();
            expected.insert(name.clone(), vals.clone());
            let data: Vec<u8> = match dtype {
                Dtype::F64 => vals
                    .iter()
                    .flat_map(|&v| (v as f64).to_le_bytes())
                    .collect(),
                Dtype::F16 => vals
                    .iter()
                    .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
                    .collect(),
                Dtype::BF16 => vals
                    .iter()
                    .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
                    .collect(),
                _ => vals.iter().flat_map(|&v| v.to_le_bytes()).collect(),
            };
            (name.clone(), dtype, shape.clone(), data)
        })
        .collect();
    write_raw(&edited.0, &converted);
    let mut m = model(elman_net(4), 2);
    checkpoint::load(&mut m, &edited.0).expect("load converted");
    for (name, want) in &expected {
        assert_eq!(&m.param(name).expect("in table"), want, "{name}");
    }

    // An integer tensor is a dtype error naming it.
    let mut ints = raw.clone();
    ints[0].1 = Dtype::I32;
    let bad_name = ints[0].0.clone();
    write_raw(&edited.0, &ints);
    let before = bits(&m.params());
    let err = checkpoint::load(&mut m, &edited.0).expect_err("integers");
    assert!(
        matches!(&err, CheckpointError::Dtype { name, .. } if *name == bad_name),
        "{err}"
    );
    assert!(err.to_string().contains(&bad_name), "{err}");
    assert_eq!(bits(&m.params()), before, "a failed load changes nothing");
}

#[test]
fn bad_files_are_errors_naming_the_path() {
    let mut m = model(elman_net(4), 1);
    let before = bits(&m.params());

    let missing = TempPath::new("does-not-exist.safetensors");
    let err = checkpoint::load(&mut m, &missing.0).expect_err("no file");
    assert!(matches!(err, CheckpointError::Io { .. }), "{err}");
    assert!(
        err.to_string().contains(&missing.0.display().to_string()),
        "{err}"
    );
    let err = checkpoint::load_stack(&mut m, &missing.0).expect_err("no file");
    assert!(
        err.to_string().contains(&missing.0.display().to_string()),
        "{err}"
    );
    assert!(checkpoint::read_config(&missing.0).is_err());

    let junk = TempPath::new("junk.safetensors");
    for contents in [
        &b"not a safetensors file at all"[..],
        &[][..],
        &[1, 2, 3][..],
        &[255; 8][..],
        &[16, 0, 0, 0, 0, 0, 0, 0, b'{', b'}'][..],
    ] {
        std::fs::write(&junk.0, contents).expect("write");
        let err = checkpoint::load(&mut m, &junk.0).expect_err("junk");
        assert!(matches!(err, CheckpointError::Format { .. }), "{err}");
        assert!(
            err.to_string().contains(&junk.0.display().to_string()),
            "{err}"
        );
        assert!(checkpoint::read_config(&junk.0).is_err());
    }
    assert_eq!(bits(&m.params()), before);

    // Saving into a directory that does not exist is an I/O error naming the path.
    let nowhere = std::env::temp_dir()
        .join(format!("wgrnn-no-such-dir-{}", std::process::id()))
        .join("m.safetensors");
    let err = checkpoint::save(&m, &nowhere).expect_err("no directory");
    assert!(matches!(err, CheckpointError::Io { .. }), "{err}");
    assert!(
        err.to_string().contains(&nowhere.display().to_string()),
        "{err}"
    );
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(name)
}

/// A PyTorch `nn.LSTM(3, 5, 2, bidirectional=True).state_dict()` fills the `rnn.*` tensors of
/// a model with an embedding and a head, leaving those untouched.
#[test]
fn load_stack_reads_a_pytorch_state_dict() {
    let path = fixture("lstm.state_dict.safetensors");
    let cfg = NetworkConfig {
        input: InputEncoding::Embedding {
            vocab: 6,
            dim: 3,
            unknown: UnknownTokens::Error,
        },
        layers: vec![layer(lstm(None), 5, true), layer(lstm(None), 5, true)],
        head: Some(HeadConfig {
            classes: 4,
            task: Task::Tagging { ignore_label: None },
        }),
    };
    let mut m = model(cfg.clone(), 1);
    let before = m.params();
    checkpoint::load_stack(&mut m, &path).expect("load_stack");
    let (raw, _) = read_raw(&path);
    for (name, dtype, _, bytes) in &raw {
        assert_eq!(*dtype, Dtype::F32);
        let want: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect();
        assert_eq!(m.param(&format!("rnn.{name}")), Some(want), "{name}");
    }
    let after = m.params();
    for e in m.table().entries() {
        if !e.name.starts_with("rnn.") {
            assert_eq!(
                bits(&after[e.range()]),
                bits(&before[e.range()]),
                "{}",
                e.name
            );
        }
    }

    // A full checkpoint of that model reloads the same values.
    let saved = TempPath::new("stack-model.safetensors");
    checkpoint::save(&m, &saved.0).expect("save");
    let mut n = model(cfg, 9);
    checkpoint::load(&mut n, &saved.0).expect("load");
    assert_eq!(bits(&n.params()), bits(&after));
    // ... but is not a bare stack: its `rnn.`-prefixed names are all unexpected.
    let err = checkpoint::load_stack(&mut n, &saved.0).expect_err("prefixed names");
    let (missing, unexpected, wrong) = mismatch(err);
    assert_eq!(missing.len(), 16);
    assert!(unexpected.contains(&"rnn.weight_ih_l0".to_string()));
    assert!(unexpected.contains(&"embedding.weight".to_string()));
    assert!(wrong.is_empty());
}

#[test]
fn load_stack_is_strict_and_names_tensors_as_the_file_does() {
    // An LSTM state_dict into a projected LSTM: shapes differ, weight_hr_* are missing.
    let path = fixture("lstm.state_dict.safetensors");
    let cfg = NetworkConfig {
        input: InputEncoding::Dense { features: 3 },
        layers: vec![layer(lstm(Some(3)), 5, true), layer(lstm(Some(3)), 5, true)],
        head: None,
    };
    let mut m = model(cfg, 1);
    let before = bits(&m.params());
    let err = checkpoint::load_stack(&mut m, &path).expect_err("other shapes");
    let msg = err.to_string();
    assert!(msg.contains("weight_hr_l1_reverse"), "{msg}");
    assert!(msg.contains("weight_hh_l0"), "{msg}");
    let (missing, unexpected, wrong) = mismatch(err);
    assert_eq!(
        missing,
        vec![
            "weight_hr_l0",
            "weight_hr_l0_reverse",
            "weight_hr_l1",
            "weight_hr_l1_reverse"
        ]
    );
    assert!(unexpected.is_empty());
    // weight_hh (R = 3 vs 5) everywhere, weight_ih of layer 1 (input 6 vs 10).
    assert_eq!(
        wrong,
        vec![
            "weight_hh_l0",
            "weight_hh_l0_reverse",
            "weight_ih_l1",
            "weight_hh_l1",
            "weight_ih_l1_reverse",
            "weight_hh_l1_reverse"
        ]
    );
    assert_eq!(bits(&m.params()), before);

    // A one-layer model: layer-1 tensors are unexpected.
    let cfg = NetworkConfig {
        input: InputEncoding::Dense { features: 3 },
        layers: vec![layer(lstm(None), 5, true)],
        head: None,
    };
    let mut m = model(cfg, 1);
    let (missing, unexpected, wrong) =
        mismatch(checkpoint::load_stack(&mut m, &path).expect_err("extra layer"));
    assert!(missing.is_empty() && wrong.is_empty());
    assert_eq!(unexpected.len(), 8, "{unexpected:?}");
    assert!(
        unexpected.iter().all(|n| n.contains("_l1")),
        "{unexpected:?}"
    );
}
