//! A full network description in TOML, parsed field by field; unknown fields are rejected
//! with a message naming them.

use wgrnn::NetworkConfig;
use wgrnn::config::{
    Activation, CellConfig, GruVariant, HeadConfig, InputEncoding, LayerConfig, Task, UnknownTokens,
};
use wgrnn::error::ConfigError;

const FULL: &str = r#"
# A tagger: embedded tokens, a bidirectional peephole LSTM, a GRU, a tagging head.
[input]
kind = "embedding"
vocab = 1000
dim = 32
unknown = "other"

[[layers]]
hidden = 64
bidirectional = true
dropout = 0.25

[layers.cell]
kind = "lstm"
peephole = true
forget_bias = 1.0
proj = 16
cell = "tanh"
hidden = "linear"

[[layers]]
hidden = 48
recurrent = true
cell = { kind = "gru", variant = "reset_before" }

[head]
classes = 9
task = { kind = "tagging", ignore_label = 0 }
"#;

#[test]
fn full_description_field_by_field() {
    let cfg = NetworkConfig::from_toml(FULL).expect("valid");

    assert_eq!(
        cfg.input,
        InputEncoding::Embedding {
            vocab: 1000,
            dim: 32,
            unknown: UnknownTokens::Other
        }
    );
    assert_eq!(cfg.input.width(), 32);
    assert!(cfg.input.takes_ids());

    assert_eq!(cfg.layers.len(), 2);
    let l0 = &cfg.layers[0];
    assert_eq!(l0.hidden, 64);
    assert!(l0.bidirectional);
    assert_eq!(l0.dropout, 0.25);
    assert!(l0.recurrent, "recurrent defaults to true");
    match &l0.cell {
        CellConfig::Lstm {
            gate,
            cell,
            hidden,
            peephole,
            proj,
            forget_bias,
        } => {
            assert_eq!(*gate, Activation::Sigmoid, "default gate activation");
            assert_eq!(*cell, Activation::Tanh);
            assert_eq!(*hidden, Activation::Linear);
            assert!(*peephole);
            assert_eq!(*proj, Some(16));
            assert_eq!(*forget_bias, Some(1.0));
        }
        other => panic!("layer 0 should be an LSTM, got {other:?}"),
    }
    assert_eq!(l0.output_size(), 16);
    assert_eq!(l0.directions(), 2);

    let l1 = &cfg.layers[1];
    assert_eq!(l1.hidden, 48);
    assert!(!l1.bidirectional, "bidirectional defaults to false");
    assert_eq!(l1.dropout, 0.0, "dropout defaults to 0");
    assert!(l1.recurrent);
    assert_eq!(
        l1.cell,
        CellConfig::Gru {
            variant: GruVariant::ResetBefore
        }
    );

    let head = cfg.head.as_ref().expect("a head");
    assert_eq!(head.classes, 9);
    assert_eq!(
        head.task,
        Task::Tagging {
            ignore_label: Some(0)
        }
    );
    assert_eq!(head.task.ignore_label(), Some(0));
    assert_eq!(cfg.stack_output_size(), 48);

    // The whole struct, once more, as a literal.
    let want = NetworkConfig {
        input: InputEncoding::Embedding {
            vocab: 1000,
            dim: 32,
            unknown: UnknownTokens::Other,
        },
        layers: vec![
            LayerConfig {
                cell: CellConfig::Lstm {
                    gate: Activation::Sigmoid,
                    cell: Activation::Tanh,
                    hidden: Activation::Linear,
                    peephole: true,
                    proj: Some(16),
                    forget_bias: Some(1.0),
                },
                hidden: 64,
                bidirectional: true,
                dropout: 0.25,
                recurrent: true,
            },
            LayerConfig {
                cell: CellConfig::Gru {
                    variant: GruVariant::ResetBefore,
                },
                hidden: 48,
                bidirectional: false,
                dropout: 0.0,
                recurrent: true,
            },
        ],
        head: Some(HeadConfig {
            classes: 9,
            task: Task::Tagging {
                ignore_label: Some(0),
            },
        }),
    };
    assert_eq!(cfg, want);
}

#[test]
fn defaults_of_a_minimal_description() {
    let cfg = NetworkConfig::from_toml(
        r#"
        input = { kind = "one_hot", vocab = 7 }
        [[layers]]
        hidden = 5
        cell = { kind = "lstm" }
        [[layers]]
        hidden = 3
        cell = { kind = "gru" }
        "#,
    )
    .expect("valid");
    assert_eq!(
        cfg.input,
        InputEncoding::OneHot {
            vocab: 7,
            unknown: UnknownTokens::Other
        }
    );
    assert_eq!(cfg.input.width(), 8, "one-hot with the extra 'other' slot");
    assert_eq!(
        cfg.layers[0].cell,
        CellConfig::Lstm {
            gate: Activation::Sigmoid,
            cell: Activation::Tanh,
            hidden: Activation::Tanh,
            peephole: false,
            proj: None,
            forget_bias: None
        }
    );
    assert_eq!(
        cfg.layers[1].cell,
        CellConfig::Gru {
            variant: GruVariant::Pytorch
        }
    );
    assert_eq!(cfg.head, None);
    // Embedding's default for unknown ids is an error.
    let cfg = NetworkConfig::from_toml(
        r#"
        input = { kind = "embedding", vocab = 7, dim = 2 }
        [[layers]]
        hidden = 5
        cell = { kind = "elman" }
        "#,
    )
    .expect("valid");
    assert_eq!(
        cfg.input,
        InputEncoding::Embedding {
            vocab: 7,
            dim: 2,
            unknown: UnknownTokens::Error
        }
    );
    assert_eq!(
        cfg.layers[0].cell,
        CellConfig::Elman {
            activation: Activation::Tanh
        }
    );
}

#[test]
fn serialize_and_parse_again() {
    let cfg = NetworkConfig::from_toml(FULL).expect("valid");
    let text = toml::to_string(&cfg).expect("serializes");
    let back = NetworkConfig::from_toml(&text).expect("parses its own output");
    assert_eq!(back, cfg, "{text}");
}

/// `from_toml(FULL with `from` replaced by `to`)` is a parse error naming `name`.
fn rejects(from: &str, to: &str, name: &str) {
    assert!(FULL.contains(from), "{from:?} not in the description");
    let text = FULL.replacen(from, to, 1);
    let e = NetworkConfig::from_toml(&text).unwrap_err();
    assert!(matches!(e, ConfigError::Parse(_)), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains(&format!("unknown field `{name}`")),
        "message does not name `{name}`: {msg}"
    );
}

#[test]
fn unknown_fields_are_rejected() {
    // At the top level, in a layer, in the input, in the LSTM cell, in the head and its task.
    rejects("[input]", "colour = \"red\"\n[input]", "colour");
    rejects(
        "bidirectional = true",
        "bidirectional = true\nbidirectionnal = true",
        "bidirectionnal",
    );
    rejects("dim = 32", "dim = 32\ndims = 32", "dims");
    rejects("peephole = true", "peepholes = true", "peepholes");
    rejects("classes = 9", "classes = 9\nlabels = 9", "labels");
    rejects("ignore_label = 0", "ignore = 0", "ignore");
    rejects(
        "variant = \"reset_before\"",
        "variant = \"reset_before\", reset = true",
        "reset",
    );
}

#[test]
fn unknown_kinds_are_rejected() {
    let e = NetworkConfig::from_toml(&FULL.replacen("kind = \"lstm\"", "kind = \"lstn\"", 1))
        .unwrap_err();
    assert!(matches!(e, ConfigError::Parse(_)), "{e:?}");
    assert!(e.to_string().contains("lstn"), "{e}");
    let e = NetworkConfig::from_toml(&FULL.replacen("hidden = \"linear\"", "hidden = \"gelu\"", 1))
        .unwrap_err();
    assert!(e.to_string().contains("gelu"), "{e}");
}
