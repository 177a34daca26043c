//! Writes the synthetic slot-filling corpus of `assets/slots/` as CoNLL files with BIO tags:
//! `cargo run --release --example make_slots [OUT_DIR]` (default `assets/slots`).
//!
//! The sentences come from `wgrnn::data::slots::generate` ("arrive taipei on november 2nd" /
//! "leave taipei ..."): 1000 training sentences from seed 1 and 300 validation sentences from
//! the held-out stream of the same seed. A run of words with the same slot becomes `B-SLOT`
//! then `I-SLOT`, so span F1 counts whole slots ("november 2nd" is one `ARRIVE_TIME` span).

use std::fmt::Write as _;
use std::path::PathBuf;

use wgrnn::data::slots::{SlotSentence, Tag, generate};
use wgrnn::tasks::held_out_seed;

/// The sentences as CoNLL text: `word TAB tag` lines, a blank line after each sentence.
fn conll(sentences: &[SlotSentence]) -> String {
    let mut out = String::new();
    for s in sentences {
        let mut previous = Tag::O;
        for (w, &t) in s.words.iter().zip(&s.tags) {
            let tag = match t {
                Tag::O => "O".to_string(),
                t if t == previous => format!("I-{t}"),
                t => format!("B-{t}"),
            };
            previous = t;
            writeln!(out, "{w}\t{tag}").expect("writing to a String");
        }
        out.push('\n');
    }
    out
}

fn main() -> std::io::Result<()> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "assets/slots".into()),
    );
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("train.conll"), conll(&generate(1000, 1)))?;
    std::fs::write(
        dir.join("valid.conll"),
        conll(&generate(300, held_out_seed(1))),
    )?;
    println!("wrote {}/train.conll and valid.conll", dir.display());
    Ok(())
}
