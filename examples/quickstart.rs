//! The README's example: build a tagger from a TOML description, run one forward pass,
//! compute the loss and backpropagate. Run with `cargo run --release --example quickstart`.

use wgrnn::config::NetworkConfig;
use wgrnn::{Batch, CpuBackend, Inputs, Mode, Model, SeqShape, Targets, Wants};

fn main() -> anyhow::Result<()> {
    let cfg = NetworkConfig::from_toml(
        r#"
        input = { kind = "embedding", vocab = 100, dim = 16 }
        [[layers]]
        cell = { kind = "lstm", forget_bias = 1.0 }
        hidden = 32
        bidirectional = true
        [head]
        classes = 5
        task = { kind = "tagging" }
        "#,
    )?;
    let mut model = Model::new(CpuBackend::<f32>::new(), cfg, 42)?;
    // A time-major batch of two sequences of lengths 3 and 1 (padding is never computed).
    let batch = Batch {
        seq: SeqShape {
            time: 3,
            lengths: vec![3, 1],
        },
        inputs: Inputs::Ids(vec![4, 7, 5, 0, 6, 0]),
    };
    model.forward(&batch, None, Mode::Eval)?;
    let loss = model.loss(&Targets::Classes(vec![1, 2, 0, 0, 3, 0]))?;
    model.backward(Wants::default())?; // gradients accumulate into model.grads()
    let norm = model.grads().iter().map(|g| g * g).sum::<f32>().sqrt();
    println!(
        "loss {loss:.4}, gradient norm {norm:.4}, {} parameters",
        model.table().total()
    );
    Ok(())
}
