//! Bad inputs and bad configurations give typed errors whose messages name the offending
//! value or field; none of them panics.

use wgrnn::config::{
    Activation, CellConfig, HeadConfig, InputEncoding, JordanFeedback, LayerConfig, Task,
    UnknownTokens,
};
use wgrnn::error::{ConfigError, InputError};
use wgrnn::optim::{ClipConfig, OptimizerConfig, Schedule, TrainConfig};
use wgrnn::train::Trainer;
use wgrnn::{Batch, CpuBackend, Inputs, LayerState, Mode, Model, NetworkConfig, SeqShape, Targets};

type M = Model<CpuBackend<f64>>;

fn elman() -> CellConfig {
    CellConfig::Elman {
        activation: Activation::Tanh,
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

fn layer(cell: CellConfig, hidden: usize) -> LayerConfig {
    LayerConfig {
        cell,
        hidden,
        bidirectional: false,
        dropout: 0.0,
        recurrent: true,
    }
}

fn tagging(classes: usize, ignore_label: Option<u32>) -> Option<HeadConfig> {
    Some(HeadConfig {
        classes,
        task: Task::Tagging { ignore_label },
    })
}

/// Dense 2 features, Elman 4, tagging head of 3 classes.
fn dense_cfg() -> NetworkConfig {
    NetworkConfig {
        input: InputEncoding::Dense { features: 2 },
        layers: vec![layer(elman(), 4)],
        head: tagging(3, Some(99)),
    }
}

fn dense_model() -> M {
    Model::new(CpuBackend::new(), dense_cfg(), 7).expect("valid")
}

fn seq(time: usize, lengths: &[usize]) -> SeqShape {
    SeqShape {
        time,
        lengths: lengths.to_vec(),
    }
}

/// A valid dense batch of T = 3, B = 2 (lengths 3 and 2).
fn dense_batch() -> Batch<f64> {
    Batch {
        seq: seq(3, &[3, 2]),
        inputs: Inputs::Dense((0..12).map(|i| (i as f64 * 0.37).sin()).collect()),
    }
}

fn ids_model(unknown: UnknownTokens) -> M {
    let cfg = NetworkConfig {
        input: InputEncoding::Embedding {
            vocab: 5,
            dim: 3,
            unknown,
        },
        layers: vec![layer(elman(), 4)],
        head: tagging(3, None),
    };
    Model::new(CpuBackend::new(), cfg, 7).expect("valid")
}

/// Asserts that `msg` contains every one of `parts`.
fn names(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "message {msg:?} does not mention {p:?}");
    }
}

#[test]
fn dense_inputs_of_the_wrong_length() {
    let mut m = dense_model();
    let b = Batch {
        seq: seq(3, &[3, 2]),
        inputs: Inputs::Dense(vec![0.5; 11]),
    };
    let e = m.forward(&b, None, Mode::Eval).unwrap_err();
    assert_eq!(
        e,
        InputError::Shape {
            what: "dense inputs".into(),
            expected: 12,
            shape: "[3, 2, 2]".into(),
            got: 11
        }
    );
    names(
        &e.to_string(),
        &["dense inputs", "12", "[3, 2, 2]", "got 11"],
    );
}

#[test]
fn initial_state_of_the_wrong_shape() {
    let mut m = dense_model();
    let b = dense_batch();
    // h must be [1, 2, 4] = 8 values.
    let bad = vec![LayerState {
        h: vec![0.0; 7],
        c: None,
    }];
    let e = m.forward(&b, Some(&bad), Mode::Eval).unwrap_err();
    assert!(
        matches!(&e, InputError::Shape { what, expected: 8, got: 7, .. } if what == "layer 0 state h"),
        "{e:?}"
    );
    names(
        &e.to_string(),
        &["layer 0 state h", "8", "[1, 2, 4]", "got 7"],
    );

    // One state per layer: two given for a one-layer model.
    let two = vec![
        LayerState {
            h: vec![0.0; 8],
            c: None,
        };
        2
    ];
    let e = m.forward(&b, Some(&two), Mode::Eval).unwrap_err();
    assert!(
        matches!(&e, InputError::Shape { what, expected: 1, got: 2, .. } if what == "layer states"),
        "{e:?}"
    );
    names(&e.to_string(), &["layer states", "got 2"]);

    // A cell state for an Elman layer.
    let with_c = vec![LayerState {
        h: vec![0.0; 8],
        c: Some(vec![0.0; 8]),
    }];
    let e = m.forward(&b, Some(&with_c), Mode::Eval).unwrap_err();
    assert!(matches!(e, InputError::WrongKind(_)), "{e:?}");
    names(&e.to_string(), &["layer 0", "cell state"]);

    // The right shape is accepted.
    let ok = vec![LayerState {
        h: vec![0.1; 8],
        c: None,
    }];
    m.forward(&b, Some(&ok), Mode::Eval).expect("right shape");
}

#[test]
fn lstm_cell_state_of_the_wrong_shape() {
    let cfg = NetworkConfig {
        input: InputEncoding::Dense { features: 2 },
        layers: vec![layer(lstm(None), 4)],
        head: None,
    };
    let mut m: M = Model::new(CpuBackend::new(), cfg, 1).expect("valid");
    let bad = vec![LayerState {
        h: vec![0.0; 8],
        c: Some(vec![0.0; 9]),
    }];
    let e = m
        .forward(&dense_batch(), Some(&bad), Mode::Eval)
        .unwrap_err();
    assert!(
        matches!(&e, InputError::Shape { what, expected: 8, got: 9, .. } if what == "layer 0 state c"),
        "{e:?}"
    );
    names(&e.to_string(), &["layer 0 state c", "got 9"]);
}

/// Ids `[T=3, B=2]`; sequence 1 has length 2, so (t=2, b=1) is padding.
fn ids_batch(ids: Vec<u32>) -> Batch<f64> {
    Batch {
        seq: seq(3, &[3, 2]),
        inputs: Inputs::Ids(ids),
    }
}

#[test]
fn token_outside_the_vocabulary() {
    let mut m = ids_model(UnknownTokens::Error);
    // Id 7 at step 1 of sequence 1 (flat index t * B + b = 3).
    let e = m
        .forward(&ids_batch(vec![0, 1, 2, 7, 4, 0]), None, Mode::Eval)
        .unwrap_err();
    assert_eq!(
        e,
        InputError::TokenOutOfVocabulary {
            id: 7,
            step: 1,
            seq: 1,
            vocab: 5
        }
    );
    names(
        &e.to_string(),
        &["token id 7", "step 1", "sequence 1", "vocabulary of 5"],
    );
    // id == vocab is already outside.
    let e = m
        .forward(&ids_batch(vec![5, 1, 2, 3, 4, 0]), None, Mode::Eval)
        .unwrap_err();
    assert!(
        matches!(
            e,
            InputError::TokenOutOfVocabulary {
                id: 5,
                step: 0,
                seq: 0,
                ..
            }
        ),
        "{e:?}"
    );
    // Padding steps are not looked at: a bad id at (t=2, b=1) is fine.
    m.forward(&ids_batch(vec![0, 1, 2, 3, 4, 1000]), None, Mode::Eval)
        .expect("padding ids are ignored");
    // Wrong number of ids.
    let e = m
        .forward(&ids_batch(vec![0, 1, 2]), None, Mode::Eval)
        .unwrap_err();
    assert!(
        matches!(&e, InputError::Shape { what, expected: 6, got: 3, .. } if what == "token ids"),
        "{e:?}"
    );
}

#[test]
fn unknown_token_maps_to_other() {
    let mut m = ids_model(UnknownTokens::Other);
    assert_eq!(
        m.table().get("embedding.weight").expect("table").shape,
        [6, 3]
    );
    let out = |m: &mut M, ids: Vec<u32>| {
        m.forward(&ids_batch(ids), None, Mode::Eval)
            .expect("accepted");
        m.outputs()
    };
    let at_vocab = out(&mut m, vec![0, 1, 2, 5, 4, 0]);
    let beyond = out(&mut m, vec![0, 1, 2, 7, 4, 0]);
    let far = out(&mut m, vec![0, 1, 2, u32::MAX, 4, 0]);
    assert_eq!(beyond, at_vocab, "id 7 behaves exactly like id 5 (= vocab)");
    assert_eq!(far, at_vocab);
    // ... and differently from a known id (the "other" row is a row of its own).
    let known = out(&mut m, vec![0, 1, 2, 4, 4, 0]);
    assert_ne!(known, at_vocab);
}

#[test]
fn empty_batch() {
    let mut m = dense_model();
    let b = Batch {
        seq: seq(3, &[]),
        inputs: Inputs::Dense(vec![]),
    };
    let e = m.forward(&b, None, Mode::Eval).unwrap_err();
    assert_eq!(e, InputError::EmptyBatch);
    names(&e.to_string(), &["empty batch"]);
}

#[test]
fn bad_lengths() {
    let mut m = dense_model();
    let mut b = dense_batch();
    b.seq.lengths = vec![3, 0];
    let e = m.forward(&b, None, Mode::Eval).unwrap_err();
    assert_eq!(
        e,
        InputError::BadLength {
            index: 1,
            length: 0,
            time: 3
        }
    );
    names(&e.to_string(), &["sequence 1", "length 0", "1..=3"]);
    b.seq.lengths = vec![4, 3];
    let e = m.forward(&b, None, Mode::Eval).unwrap_err();
    assert_eq!(
        e,
        InputError::BadLength {
            index: 0,
            length: 4,
            time: 3
        }
    );
    names(&e.to_string(), &["sequence 0", "length 4", "1..=3"]);
}

#[test]
fn bad_targets() {
    let mut m = dense_model();
    m.forward(&dense_batch(), None, Mode::Eval)
        .expect("forward");
    // Class 5 of 3 at (t=1, b=0): flat position 1 * 2 + 0 = 2.
    let e = m
        .loss(&Targets::Classes(vec![0, 1, 5, 2, 1, 0]))
        .unwrap_err();
    assert_eq!(
        e,
        InputError::TargetOutOfRange {
            target: 5,
            position: 2,
            classes: 3
        }
    );
    names(&e.to_string(), &["target 5", "position 2", "3 classes"]);
    // The ignore label (99) and padding steps ((t=2, b=1), position 5) are not checked.
    let l = m
        .loss(&Targets::Classes(vec![0, 99, 1, 2, 1, 40]))
        .expect("ignored and padding targets pass");
    assert!(l.is_finite() && l > 0.0);
    // Targets of the wrong length: [3, 2] needs 6.
    let e = m.loss(&Targets::Classes(vec![0, 1, 2, 0, 1])).unwrap_err();
    assert_eq!(
        e,
        InputError::Shape {
            what: "targets".into(),
            expected: 6,
            shape: "[3, 2]".into(),
            got: 5
        }
    );
    names(
        &e.to_string(),
        &["targets", "expected 6", "[3, 2]", "got 5"],
    );
    // Float targets for a classification head.
    let e = m.loss(&Targets::Values(vec![0.0; 18])).unwrap_err();
    assert!(matches!(e, InputError::WrongKind(_)), "{e:?}");
    names(&e.to_string(), &["class ids"]);
}

#[test]
fn regression_targets_of_the_wrong_length() {
    let mut cfg = dense_cfg();
    cfg.head = Some(HeadConfig {
        classes: 2,
        task: Task::Regression,
    });
    let mut m: M = Model::new(CpuBackend::new(), cfg, 1).expect("valid");
    m.forward(&dense_batch(), None, Mode::Eval)
        .expect("forward");
    let e = m.loss(&Targets::Values(vec![0.0; 11])).unwrap_err();
    assert!(
        matches!(&e, InputError::Shape { what, expected: 12, got: 11, .. } if what == "regression targets"),
        "{e:?}"
    );
    names(
        &e.to_string(),
        &["regression targets", "[3, 2, 2]", "got 11"],
    );
    let e = m.loss(&Targets::Classes(vec![0; 6])).unwrap_err();
    assert!(matches!(e, InputError::WrongKind(_)), "{e:?}");
    names(&e.to_string(), &["regression", "float targets"]);
}

#[test]
fn wrong_kind_of_input() {
    let mut m = dense_model();
    let e = m
        .forward(&ids_batch(vec![0; 6]), None, Mode::Eval)
        .unwrap_err();
    assert!(matches!(e, InputError::WrongKind(_)), "{e:?}");
    names(&e.to_string(), &["token ids", "dense"]);
    let mut m = ids_model(UnknownTokens::Error);
    let e = m.forward(&dense_batch(), None, Mode::Eval).unwrap_err();
    assert!(matches!(e, InputError::WrongKind(_)), "{e:?}");
    names(&e.to_string(), &["dense features", "token ids"]);
}

/// `validate` (also run by `Model::new`) names the field.
fn invalid(cfg: &NetworkConfig, field: &str) {
    let e = cfg.validate().unwrap_err();
    match &e {
        ConfigError::Invalid { field: f, .. } => assert_eq!(f, field, "{e}"),
        other => panic!("expected Invalid for {field}, got {other:?}"),
    }
    names(&e.to_string(), &[&format!("`{field}`")]);
    let m = Model::new(CpuBackend::<f64>::new(), cfg.clone(), 0);
    assert_eq!(m.err(), Some(e));
}

#[test]
fn config_errors_name_the_field() {
    // Hidden size 0 on the second layer.
    let mut cfg = dense_cfg();
    cfg.layers = vec![layer(elman(), 4), layer(elman(), 0)];
    invalid(&cfg, "layers[1].hidden");

    // Dropout on the top layer (and only layer).
    let mut cfg = dense_cfg();
    cfg.layers[0].dropout = 0.5;
    invalid(&cfg, "layers[0].dropout");
    // ... while dropout between layers is fine.
    cfg.layers.push(layer(elman(), 3));
    cfg.validate().expect("dropout below the top layer");

    // A Jordan layer below the top.
    let mut cfg = dense_cfg();
    cfg.layers = vec![
        layer(
            CellConfig::Jordan {
                activation: Activation::Tanh,
                feedback: JordanFeedback::Softmax,
            },
            4,
        ),
        layer(elman(), 4),
    ];
    invalid(&cfg, "layers[0].cell");

    // LSTM projection not below the hidden size.
    let mut cfg = dense_cfg();
    cfg.layers = vec![layer(lstm(Some(4)), 4)];
    invalid(&cfg, "layers[0].cell.proj");
    cfg.layers = vec![layer(lstm(Some(5)), 4)];
    invalid(&cfg, "layers[0].cell.proj");
    cfg.layers = vec![layer(lstm(Some(3)), 4)];
    cfg.validate().expect("proj 3 < hidden 4");

    // Zero features.
    let mut cfg = dense_cfg();
    cfg.input = InputEncoding::Dense { features: 0 };
    invalid(&cfg, "input.features");
}

#[test]
fn toml_errors() {
    let good = r#"
        [input]
        kind = "dense"
        features = 2

        [[layers]]
        hidden = 4
        cell = { kind = "elman" }
    "#;
    let cfg = NetworkConfig::from_toml(good).expect("valid TOML");
    assert_eq!(cfg.layers[0].hidden, 4);

    // A syntax error: the parse error points at the line.
    let e = NetworkConfig::from_toml(&good.replace("[[layers]]", "[[layers]")).unwrap_err();
    assert!(matches!(e, ConfigError::Parse(_)), "{e:?}");
    names(&e.to_string(), &["does not parse", "line 6"]);

    // A value of the wrong type names the key and the value.
    let e = NetworkConfig::from_toml(&good.replace("hidden = 4", "hidden = \"four\"")).unwrap_err();
    assert!(matches!(e, ConfigError::Parse(_)), "{e:?}");
    names(&e.to_string(), &["hidden", "four"]);

    // Valid TOML, invalid network: validation names the field.
    let e = NetworkConfig::from_toml(&good.replace("hidden = 4", "hidden = 0")).unwrap_err();
    assert_eq!(
        e,
        ConfigError::Invalid {
            field: "layers[0].hidden".into(),
            why: "must be at least 1".into()
        }
    );
    names(&e.to_string(), &["`layers[0].hidden`"]);

    // A misspelt field.
    let e =
        NetworkConfig::from_toml(&good.replace("hidden = 4", "hidden = 4\nhiden = 4")).unwrap_err();
    assert!(matches!(e, ConfigError::Parse(_)), "{e:?}");
    names(&e.to_string(), &["hiden"]);
}

#[test]
fn nan_loss_leaves_parameters_unchanged() {
    let model = dense_model();
    let config = TrainConfig {
        optimizer: OptimizerConfig::adam(),
        lr: 0.01,
        schedule: Schedule::Constant,
        clip: ClipConfig::default(),
    };
    let mut tr = Trainer::new(model, config, 3);
    let before: Vec<u64> = tr.model.params().iter().map(|v| v.to_bits()).collect();
    let mut b = dense_batch();
    if let Inputs::Dense(x) = &mut b.inputs {
        x[0] = f64::NAN; // (t=0, b=0), a valid step.
    }
    let targets = Targets::Classes(vec![0, 1, 2, 0, 1, 0]);
    let e = tr.step(&b, &targets).unwrap_err();
    assert!(
        matches!(&e, InputError::NotFinite { what, value } if what == "loss at step 1" && value.is_nan()),
        "{e:?}"
    );
    names(&e.to_string(), &["loss at step 1", "NaN"]);
    let after: Vec<u64> = tr.model.params().iter().map(|v| v.to_bits()).collect();
    assert_eq!(before, after, "parameters changed by a failed step");
    assert_eq!(tr.steps_done(), 0);
    // A good batch then trains normally and does change the parameters.
    let st = tr.step(&dense_batch(), &targets).expect("finite");
    assert!(st.loss.is_finite());
    assert_eq!(tr.steps_done(), 1);
    let trained: Vec<u64> = tr.model.params().iter().map(|v| v.to_bits()).collect();
    assert_ne!(before, trained);
}

#[test]
fn adapter_with_too_few_storage_buffers() {
    use wgrnn::backend::wgpu::GpuError;
    use wgrnn::backend::wgpu::runtime::{KERNEL_STORAGE_BUFFERS, check_limits};
    // wgpu's downlevel limits: Vulkan's minimum of 4 storage buffers per shader stage.
    let few = wgpu::Limits::downlevel_defaults();
    assert!(few.max_storage_buffers_per_shader_stage < KERNEL_STORAGE_BUFFERS);
    let err = check_limits("Tiny GPU", &few).expect_err("4 storage buffers are too few");
    assert!(matches!(err, GpuError::Limit { has: 4, .. }), "{err:?}");
    names(
        &err.to_string(),
        &[
            "Tiny GPU",
            "max_storage_buffers_per_shader_stage",
            "allows 4",
            "need 8",
        ],
    );
    // WebGPU's defaults are what the kernels are written to.
    check_limits("Any GPU", &wgpu::Limits::default()).expect("WebGPU's default limits suffice");
}
