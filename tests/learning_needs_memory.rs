//! Learning needs memory: on generated slot-filling sentences ("arrive taipei on november
//! 2nd" / "leave taipei on november 2nd") the tag of a city or date depends on a verb several
//! words back. A one-layer LSTM learns it to >= 99% held-out token accuracy; the same model
//! with its recurrence removed cannot beat the memoryless ceiling.

use wgrnn::CpuBackend;
use wgrnn::tasks::{SlotTaskConfig, train_slot_tagger};

fn run(recurrent: bool) -> (f64, f64, Vec<f64>) {
    let cfg = SlotTaskConfig {
        recurrent,
        ..SlotTaskConfig::default()
    };
    let run = train_slot_tagger(CpuBackend::<f32>::new(), &cfg, |_| {}).expect("training runs");
    let curve = run.epochs.iter().map(|e| e.test_accuracy).collect();
    (run.test_accuracy, run.ceiling, curve)
}

#[test]
fn lstm_learns_the_slots() {
    let (acc, ceiling, curve) = run(true);
    assert!(ceiling <= 0.90, "the task is too easy: ceiling {ceiling}");
    assert!(
        acc >= 0.99,
        "LSTM held-out accuracy {acc} < 0.99 (per epoch {curve:?})"
    );
}

#[test]
fn without_recurrence_the_model_stays_at_the_ceiling() {
    let (acc, ceiling, curve) = run(false);
    assert!(ceiling <= 0.90, "the task is too easy: ceiling {ceiling}");
    assert!(
        acc <= ceiling + 0.01,
        "a memoryless tagger beat the ceiling {ceiling}: {acc} (per epoch {curve:?})"
    );
    assert!(
        acc >= ceiling - 0.05,
        "the memoryless tagger did not even learn the word -> tag map: {acc} vs ceiling {ceiling} (per epoch {curve:?})"
    );
}
