//! Token bags on the CPU reference: a bag of one id is the plain token, a bag's encoding is
//! the sum of its ids' encodings, and malformed offsets are clear errors.

use wgrnn::config::{
    Activation, CellConfig, HeadConfig, InputEncoding, LayerConfig, NetworkConfig, Task,
    UnknownTokens,
};
use wgrnn::error::InputError;
use wgrnn::{Batch, CpuBackend, Inputs, Mode, Model, SeqShape};

fn model(input: InputEncoding) -> Model<CpuBackend<f64>> {
    let cfg = NetworkConfig {
        input,
        layers: vec![LayerConfig {
            cell: CellConfig::Elman {
                activation: Activation::Tanh,
            },
            hidden: 4,
            bidirectional: true,
            dropout: 0.0,
            recurrent: true,
        }],
        head: Some(HeadConfig {
            classes: 3,
            task: Task::Tagging { ignore_label: None },
        }),
    };
    Model::new(CpuBackend::new(), cfg, 11).expect("model")
}

fn seq() -> SeqShape {
    SeqShape {
        time: 3,
        lengths: vec![3, 2],
    }
}

fn outputs(m: &mut Model<CpuBackend<f64>>, inputs: Inputs<f64>) -> Result<Vec<f64>, InputError> {
    m.forward(&Batch { seq: seq(), inputs }, None, Mode::Eval)?;
    Ok(m.outputs())
}

fn embedding() -> InputEncoding {
    InputEncoding::Embedding {
        vocab: 6,
        dim: 5,
        unknown: UnknownTokens::Other,
    }
}

#[test]
fn bags_of_one_id_are_plain_tokens() {
    let ids = vec![1, 2, 3, 4, 5, 0];
    let mut m = model(embedding());
    let plain = outputs(&mut m, Inputs::Ids(ids.clone())).expect("ids");
    let bags = outputs(
        &mut m,
        Inputs::Bags {
            offsets: (0..=6).collect(),
            ids,
        },
    )
    .expect("bags");
    assert_eq!(plain, bags);
}

#[test]
fn a_bag_encodes_as_the_sum_of_its_ids() {
    // One-hot over 6 ids (+ other): a bag [2, 2, 5] is the count vector (0,0,2,0,0,1,0), which
    // must give the same outputs as dense features with those counts.
    let mut bags = model(InputEncoding::OneHot {
        vocab: 6,
        unknown: UnknownTokens::Other,
    });
    let mut dense = model(InputEncoding::Dense { features: 7 });
    dense
        .set_params(&bags.params())
        .expect("same parameter layout");
    let bag_ids: Vec<Vec<u32>> = vec![vec![2, 2, 5], vec![9], vec![], vec![0, 1], vec![4], vec![]];
    let mut offsets = vec![0u32];
    let mut ids = Vec::new();
    let mut x = vec![0.0f64; 6 * 7];
    for (r, bag) in bag_ids.iter().enumerate() {
        for &id in bag {
            ids.push(id);
            // Id 9 is outside the vocabulary: the "other" slot (index 6).
            x[r * 7 + (id as usize).min(6)] += 1.0;
        }
        offsets.push(ids.len() as u32);
    }
    // Row 5 (t = 2, b = 1) is padding: nothing there may matter.
    x[5 * 7..].fill(0.0);
    let got = outputs(&mut bags, Inputs::Bags { offsets, ids }).expect("bags");
    let want = outputs(&mut dense, Inputs::Dense(x)).expect("dense");
    for (g, w) in got.iter().zip(&want) {
        assert!((g - w).abs() < 1e-12, "{got:?} vs {want:?}");
    }
}

#[test]
fn malformed_bags_are_clear_errors() {
    let mut m = model(embedding());
    let e = outputs(
        &mut m,
        Inputs::Bags {
            offsets: vec![0, 1, 2],
            ids: vec![1, 2],
        },
    )
    .expect_err("too few offsets");
    assert!(e.to_string().contains("token bag offsets"), "{e}");
    let e = outputs(
        &mut m,
        Inputs::Bags {
            offsets: vec![0, 1, 3, 2, 4, 5, 6],
            ids: vec![1; 6],
        },
    )
    .expect_err("decreasing");
    assert!(
        e.to_string().contains("decrease at step 1 of sequence 0"),
        "{e}"
    );
    let e = outputs(
        &mut m,
        Inputs::Bags {
            offsets: vec![0, 1, 2, 3, 4, 5, 9],
            ids: vec![1; 6],
        },
    )
    .expect_err("past the end");
    assert!(
        e.to_string().contains("from 0 to the number of ids (6)"),
        "{e}"
    );
    let mut strict = model(InputEncoding::Embedding {
        vocab: 6,
        dim: 5,
        unknown: UnknownTokens::Error,
    });
    let e = outputs(
        &mut strict,
        Inputs::Bags {
            offsets: vec![0, 1, 2, 4, 5, 6, 7],
            ids: vec![1, 2, 3, 8, 4, 5, 0],
        },
    )
    .expect_err("id 8 is unknown");
    assert!(
        e.to_string().contains("token id 8 at step 1 of sequence 0"),
        "{e}"
    );
}
