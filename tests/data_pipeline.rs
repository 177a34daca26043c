//! The data pipeline from files to batches and scores: every reader on valid and malformed
//! input (errors name the file and line, nothing panics), vocabularies, letter trigrams,
//! span F1 worked by hand, the batch scheduler's coverage / padding / reproducibility, and
//! pretrained vectors.

use std::path::PathBuf;

use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use wgrnn::config::{
    CellConfig, GruVariant, HeadConfig, InputEncoding, LayerConfig, NetworkConfig, Task,
    UnknownTokens,
};
use wgrnn::data::batching::{
    BatchConfig, Batcher, Bucketing, pad_target, padding_fraction, to_batch,
};
use wgrnn::data::conll::Conll;
use wgrnn::data::embeddings::{Vectors, fill_embedding, read_vectors, vectors_from_str};
use wgrnn::data::error::DataError;
use wgrnn::data::example::{Example, Target, lm_sequence, lm_stream};
use wgrnn::data::formats::{TsvFile, lines_from_str, plain_from_str, read_plain};
use wgrnn::data::labels::LabelVocab;
use wgrnn::data::metrics::{
    bits_per_char, classification_accuracy, perplexity, span_f1, token_accuracy,
};
use wgrnn::data::tokenize::Tokenizer;
use wgrnn::data::trigram::{TrigramVocab, trigrams};
use wgrnn::data::vocab::{OTHER, PAD, VocabOptions, Vocabulary};
use wgrnn::model::{Inputs, Targets};
use wgrnn::{CpuBackend, Mode, Model};

/// A fresh path in the temp directory for this test.
fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("wgrnn-data-{}-{name}", std::process::id()))
}

/// Asserts the error message names `file` and `:line:` and contains `needle`.
fn assert_names(err: &DataError, file: &str, line: usize, needle: &str) {
    let msg = err.to_string();
    assert!(msg.contains(&format!("{file}:{line}:")), "{msg}");
    assert!(msg.contains(needle), "`{needle}` not in: {msg}");
}

// ----- tokenizer and vocabulary ---------------------------------------------------------

#[test]
fn tokenizer_words_split_punctuation_and_chars_keep_newlines() {
    let words = Tokenizer::Words { lowercase: true };
    assert_eq!(
        words.tokenize("Arrive Taipei, on November 2nd."),
        ["arrive", "taipei", ",", "on", "november", "2nd", "."]
    );
    assert_eq!(
        Tokenizer::Chars.tokenize("hi\r\nyo"),
        ["h", "i", "\n", "y", "o"]
    );
}

#[test]
fn vocabulary_orders_by_count_then_token_and_maps_unknown_to_other() {
    let text = "b c a b d a c b";
    // counts: b 3, a 2, c 2, d 1
    let all = Vocabulary::from_tokens(text.split(' '), &VocabOptions::default());
    let order: Vec<&str> = (0..all.len() as u32).filter_map(|i| all.token(i)).collect();
    assert_eq!(order, ["<pad>", "<other>", "b", "a", "c", "d"]);
    assert_eq!(all.len(), 6);
    assert_eq!(all.known(), 4);
    assert_eq!(
        (all.id("b"), all.id("a"), all.id("c"), all.id("d")),
        (2, 3, 4, 5)
    );
    assert_eq!(all.id("zebra"), OTHER);
    assert_eq!(all.id("<pad>"), OTHER, "the reserved name is not a token");
    assert_eq!(all.count(2), Some(3));
    assert_eq!(all.count(1), Some(0));

    let min2 = Vocabulary::from_tokens(
        text.split(' '),
        &VocabOptions {
            max_size: None,
            min_count: 2,
        },
    );
    assert_eq!(min2.len(), 5);
    assert_eq!(min2.id("d"), OTHER);
    assert_eq!(
        min2.count(OTHER),
        Some(1),
        "<other> counts the left-out tokens"
    );

    let top2 = Vocabulary::from_tokens(
        text.split(' '),
        &VocabOptions {
            max_size: Some(2),
            min_count: 1,
        },
    );
    assert_eq!(
        top2.encode(&["b", "a", "c", "d", "x"]),
        [2, 3, OTHER, OTHER, OTHER]
    );
    assert_eq!(top2.count(OTHER), Some(3));
}

#[test]
fn vocabulary_file_and_serde_round_trip_with_awkward_tokens() {
    let tokens = ["a", "\n", "\t", "\\", "a", "\n", " "];
    let v = Vocabulary::from_tokens(tokens, &VocabOptions::default());
    let path = temp("vocab.tsv");
    v.save(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().next(), Some("<pad>\t0"));
    assert_eq!(text.lines().nth(2), Some("\\n\t2"));
    assert_eq!(Vocabulary::load(&path).unwrap(), v);
    std::fs::remove_file(&path).unwrap();

    let json = serde_json::to_string(&v).unwrap();
    assert_eq!(serde_json::from_str::<Vocabulary>(&json).unwrap(), v);
    let bad = r#"{"tokens":["<pad>","<other>","x","x"],"counts":[0,0,1,1]}"#;
    let err = serde_json::from_str::<Vocabulary>(bad)
        .unwrap_err()
        .to_string();
    assert!(err.contains("`x` already appeared on line 3"), "{err}");
}

#[test]
fn vocabulary_file_errors_name_file_and_line() {
    let ok = "<pad>\t0\n<other>\t0\ncat\t5\n";
    assert_eq!(Vocabulary::from_text("v.tsv", ok).unwrap().id("cat"), 2);
    let cases = [
        ("<pad>\t0\n<other>\t0\ncat 5\n", 3, "no tab"),
        ("<pad>\t0\n<other>\t0\ncat\tfive\n", 3, "`five`"),
        (
            "<pad>\t0\n<other>\t0\ncat\t5\ncat\t2\n",
            4,
            "already appeared on line 3",
        ),
        ("<other>\t0\n", 1, "`<pad>`"),
        ("<pad>\t0\n<other>\t0\nc\\at\t5\n", 3, "bad escape"),
    ];
    for (text, line, needle) in cases {
        let err = Vocabulary::from_text("v.tsv", text).unwrap_err();
        assert_names(&err, "v.tsv", line, needle);
    }
    let err = Vocabulary::from_text("v.tsv", "").unwrap_err();
    assert!(err.to_string().starts_with("v.tsv: "), "{err}");
}

#[test]
fn label_vocab_is_sorted_exact_and_names_unknown_labels() {
    let labels = LabelVocab::from_labels(["O", "B-LOC", "O", "I-LOC", "B-PER"]);
    assert_eq!(labels.labels(), ["B-LOC", "B-PER", "I-LOC", "O"]);
    assert_eq!(labels.id("O"), Some(3));
    assert_eq!(labels.label(1), Some("B-PER"));
    let json = serde_json::to_string(&labels).unwrap();
    assert_eq!(json, r#"["B-LOC","B-PER","I-LOC","O"]"#);
    assert_eq!(serde_json::from_str::<LabelVocab>(&json).unwrap(), labels);
    assert!(serde_json::from_str::<LabelVocab>(r#"["O","B"]"#).is_err());

    let test = Conll::from_str("test.conll", "paris\tB-LOC\nbob\tB-MISC\n").unwrap();
    let err = test.tag_ids(&labels).unwrap_err();
    assert_names(&err, "test.conll", 2, "unknown label `B-MISC`");
}

// ----- letter trigrams ------------------------------------------------------------------

#[test]
fn trigrams_of_apple_and_one_letter_words() {
    assert_eq!(trigrams("apple"), ["#ap", "app", "ppl", "ple", "le#"]);
    assert_eq!(trigrams("a"), ["#a#"]);
    assert_eq!(trigrams("ab"), ["#ab", "ab#"]);
    assert_eq!(trigrams("aaaa"), ["#aa", "aaa", "aaa", "aa#"]);
    assert_eq!(trigrams("né"), ["#né", "né#"]);
    assert!(trigrams("").is_empty());
}

#[test]
fn trigram_vocab_has_no_oov_words_and_keeps_repeats() {
    // Training words: apple x2, apply x1. Trigram counts: #ap 3, app 3, ppl 3, ple 2, le# 2,
    // ply 1, ly# 1.
    let tv = TrigramVocab::from_words(
        ["apple", "apply", "apple"],
        &VocabOptions {
            max_size: None,
            min_count: 2,
        },
    );
    let v = tv.vocabulary();
    let kept: Vec<&str> = (2..v.len() as u32).filter_map(|i| v.token(i)).collect();
    assert_eq!(kept, ["#ap", "app", "ppl", "le#", "ple"]);
    assert_eq!(tv.encode("apple"), [2, 3, 4, 6, 5]);
    // An unseen word still has an encoding; its unseen trigrams are "other".
    assert_eq!(tv.encode("apply"), [2, 3, 4, OTHER, OTHER]);
    assert_eq!(tv.encode("pap"), [OTHER, OTHER, OTHER]);
    assert_eq!(tv.encode("ppppp").len(), 5);

    let batch = tv.batch(&[vec!["apple", "a"], vec!["app"]], None).unwrap();
    assert_eq!(batch.seq.time, 2);
    assert_eq!(batch.seq.lengths, [2, 1]);
    // Positions t*B+b: (0,0) apple 5 ids, (0,1) app 3 ids, (1,0) a 1 id, (1,1) padding.
    assert_eq!(batch.offsets, [0, 5, 8, 9, 9]);
    assert_eq!(batch.at(0, 1), [2, 3, OTHER]);
    assert_eq!(batch.at(1, 0), [OTHER]);
    assert!(batch.at(1, 1).is_empty());
    assert!(tv.batch(&[Vec::<&str>::new()], None).is_err());
}

// ----- file formats ---------------------------------------------------------------------

#[test]
fn plain_text_for_character_and_word_language_models() {
    let chars = plain_from_str("t.txt", "ab\nba\n", &Tokenizer::Chars).unwrap();
    assert_eq!(chars, ["a", "b", "\n", "b", "a", "\n"]);
    let vocab = Vocabulary::from_tokens(&chars, &VocabOptions::default());
    // a, b and \n each appear twice: ordered by string ("\n" < "a" < "b").
    assert_eq!(vocab.encode(&chars), [3, 4, 2, 4, 3, 2]);
    let ex = lm_stream(&vocab.encode(&chars), 2).unwrap();
    assert_eq!(ex.len(), 3);
    assert_eq!(ex[1].ids, [2, 4]);
    assert_eq!(ex[1].target, Target::Steps(vec![4, 3]));
    assert_eq!(ex[2].ids, [3]);
    assert_eq!(ex[2].target, Target::Steps(vec![2]));

    let words = Tokenizer::Words { lowercase: true };
    let lines = lines_from_str("t.txt", "Hello, world\n\nBye\n", &words).unwrap();
    assert_eq!(lines, [vec!["hello", ",", "world"], vec!["bye"]]);
    let by_line = lines_from_str("t.txt", "ab\n", &Tokenizer::Chars).unwrap();
    assert_eq!(by_line, [vec!["a", "b", "\n"]]);
    assert_eq!(
        lm_sequence(&[7, 8, 9]),
        Some(Example::tagged(vec![7, 8], vec![8, 9]).unwrap())
    );

    let err = plain_from_str("empty.txt", "", &Tokenizer::Chars).unwrap_err();
    assert!(err.to_string().contains("empty.txt"), "{err}");
}

#[test]
fn invalid_utf8_names_file_and_line() {
    let path = temp("bad-utf8.txt");
    std::fs::write(&path, b"fine\nalso fine\nbad \xff byte\n").unwrap();
    let err = read_plain(&path, &Tokenizer::Chars).unwrap_err();
    let name = path.display().to_string();
    assert_names(&err, &name, 3, "byte offset 19");
    let err = Conll::read(&path).unwrap_err();
    assert_names(&err, &name, 3, "invalid UTF-8");
    std::fs::remove_file(&path).unwrap();
    let missing = temp("no-such-file.txt");
    let err = TsvFile::read(&missing).unwrap_err();
    assert!(err.to_string().contains("no-such-file.txt"), "{err}");
}

#[test]
fn conll_reads_sentences_comments_and_any_whitespace() {
    let text = "# a comment\n-DOCSTART- -X- O O\n\narrive\tO\nTaipei\tB-DEST\n\n\n\
                EU NNP B-NP B-ORG\nrejects VBZ B-VP O\r\n\n";
    let c = Conll::from_str("train.conll", text).unwrap();
    assert_eq!(c.sentences.len(), 2);
    assert_eq!(c.sentences[0].tokens, ["arrive", "Taipei"]);
    assert_eq!(c.sentences[0].tags, ["O", "B-DEST"]);
    assert_eq!(c.sentences[0].lines, [4, 5]);
    assert_eq!(c.sentences[1].tokens, ["EU", "rejects"]);
    assert_eq!(c.sentences[1].tags, ["B-ORG", "O"]);
    assert_eq!(c.sentences[1].lines, [8, 9]);
    let labels = LabelVocab::from_labels(c.all_tags());
    assert_eq!(labels.labels(), ["B-DEST", "B-ORG", "O"]);
    assert_eq!(c.tag_ids(&labels).unwrap(), [vec![2, 0], vec![1, 2]]);
    let lower = c.tokens(&Tokenizer::Words { lowercase: true });
    assert_eq!(lower[0], ["arrive", "taipei"]);
}

#[test]
fn conll_malformed_lines_name_file_and_line() {
    let cases = [
        ("a\tO\nb\tO\n\nc\n", 4, "without a tag"),
        ("a\tO\n\tO\n", 2, "empty token"),
        ("a\tO\nb\t\n", 2, "without a tag"),
    ];
    for (text, line, needle) in cases {
        let err = Conll::from_str("dev.conll", text).unwrap_err();
        assert_names(&err, "dev.conll", line, needle);
    }
    let err = Conll::from_str("dev.conll", "# only comments\n\n").unwrap_err();
    assert!(
        err.to_string().contains("dev.conll: no tagged sentences"),
        "{err}"
    );
}

#[test]
fn tsv_classification_rows_and_errors() {
    let t = TsvFile::from_str("c.tsv", "pos\tGreat film!\n\nneg\t  dull, long \n").unwrap();
    assert_eq!(t.rows.len(), 2);
    assert_eq!(
        (t.rows[1].label.as_str(), t.rows[1].text.as_str()),
        ("neg", "dull, long")
    );
    assert_eq!(t.rows[1].line, 3);
    let labels = LabelVocab::from_labels(t.rows.iter().map(|r| &r.label));
    assert_eq!(t.label_ids(&labels).unwrap(), [1, 0]);
    assert_eq!(
        t.tokens(&Tokenizer::Words { lowercase: true })[0],
        ["great", "film", "!"]
    );
    let cases = [
        ("pos\tok\nneg no tab here\n", 2, "no tab"),
        ("pos\tok\nneg\t   \n", 2, "empty text"),
        ("\ttext\n", 1, "empty label"),
    ];
    for (text, line, needle) in cases {
        let err = TsvFile::from_str("c.tsv", text).unwrap_err();
        assert_names(&err, "c.tsv", line, needle);
    }
    let err = t.label_ids(&LabelVocab::from_labels(["pos"])).unwrap_err();
    assert_names(&err, "c.tsv", 3, "`neg`");
}

// ----- metrics --------------------------------------------------------------------------

#[test]
fn span_f1_by_hand() {
    let gold = vec![
        vec!["B-PER", "I-PER", "O", "B-LOC"], // PER 0..2, LOC 3..4
        vec!["B-ORG", "O", "O"],              // ORG 0..1
        vec!["O", "I-MISC", "I-MISC"],        // stray I: MISC 1..3
    ];
    let pred = vec![
        vec!["B-PER", "I-PER", "O", "B-ORG"], // PER 0..2 (right), ORG 3..4 (wrong label)
        vec!["O", "O", "O"],                  // nothing
        vec!["O", "B-MISC", "I-MISC"],        // MISC 1..3 (right)
    ];
    let s = span_f1(&gold, &pred).unwrap();
    assert_eq!(
        (s.overall.gold, s.overall.predicted, s.overall.correct),
        (4, 3, 2)
    );
    assert!((s.overall.precision() - 2.0 / 3.0).abs() < 1e-12);
    assert!((s.overall.recall() - 0.5).abs() < 1e-12);
    assert!((s.overall.f1() - 4.0 / 7.0).abs() < 1e-12);
    let org = s.by_label["ORG"];
    assert_eq!((org.gold, org.predicted, org.correct), (1, 1, 0));
    assert_eq!(org.f1(), 0.0);
    assert_eq!(s.by_label["LOC"].recall(), 0.0);
    assert_eq!(s.by_label["PER"].f1(), 1.0);
    // A boundary error is a miss even with the right label.
    let s = span_f1(&[vec!["B-X", "I-X"]], &[vec!["B-X", "O"]]).unwrap();
    assert_eq!(s.overall.correct, 0);
    assert!(span_f1(&[vec!["O"]], &[vec!["O", "O"]]).is_err());
}

#[test]
fn accuracies_perplexity_and_bits_per_char() {
    let acc = token_accuracy(&[vec![1, 2, 3], vec![4]], &[vec![1, 0, 3], vec![4]]).unwrap();
    assert_eq!((acc.correct, acc.total), (3, 4));
    assert_eq!(acc.rate(), 0.75);
    let acc = classification_accuracy(&["a", "b", "c"], &["a", "c", "c"]).unwrap();
    assert!((acc.rate() - 2.0 / 3.0).abs() < 1e-12);
    let err = token_accuracy(&[vec![1, 2]], &[vec![1]]).unwrap_err();
    assert_eq!(err.to_string(), "sentence 0: 2 gold items but 1 predicted");
    assert!((perplexity(10f64.ln()) - 10.0).abs() < 1e-12);
    assert!((bits_per_char(1.5 * std::f64::consts::LN_2) - 1.5).abs() < 1e-12);
    // A uniform guess over 256 characters costs 8 bits per character.
    assert!((bits_per_char(256f64.ln()) - 8.0).abs() < 1e-12);
}

// ----- batching -------------------------------------------------------------------------

fn random_lengths(n: usize, seed: u64) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(1..=60)).collect()
}

fn bucketings() -> [Bucketing; 4] {
    [
        Bucketing::None,
        Bucketing::Sorted { pool: 64 },
        Bucketing::Sorted { pool: 1 },
        Bucketing::Width { width: 5 },
    ]
}

#[test]
fn every_sequence_is_in_exactly_one_batch_per_epoch() {
    let lengths = random_lengths(301, 5);
    for seed in [0, 1, 42] {
        for max_batch in [1, 7, 32, 500] {
            for max_tokens in [None, Some(50), Some(400)] {
                for bucketing in bucketings() {
                    let config = BatchConfig {
                        max_batch,
                        max_tokens,
                        bucketing,
                        shuffle: true,
                        seed,
                    };
                    let batcher = Batcher::new(config, lengths.clone()).unwrap();
                    for epoch in 0..3 {
                        let batches = batcher.epoch(epoch);
                        let mut seen = vec![0; lengths.len()];
                        for b in &batches {
                            assert!(!b.is_empty() && b.len() <= max_batch, "{config:?}");
                            let longest = b.iter().map(|&i| lengths[i]).max().unwrap();
                            if let Some(budget) = max_tokens {
                                assert!(b.len() == 1 || b.len() * longest <= budget);
                            }
                            for &i in b {
                                seen[i] += 1;
                            }
                        }
                        assert!(seen.iter().all(|&c| c == 1), "{config:?} epoch {epoch}");
                    }
                }
            }
        }
    }
}

#[test]
fn bucketing_pads_far_less_than_a_plain_shuffle() {
    let lengths = random_lengths(2000, 9);
    let frac = |bucketing| {
        let config = BatchConfig {
            max_batch: 32,
            bucketing,
            ..BatchConfig::default()
        };
        let b = Batcher::new(config, lengths.clone()).unwrap();
        (0..3)
            .map(|e| padding_fraction(&lengths, &b.epoch(e)))
            .sum::<f64>()
            / 3.0
    };
    let plain = frac(Bucketing::None);
    let sorted = frac(Bucketing::Sorted { pool: 1024 });
    let width = frac(Bucketing::Width { width: 4 });
    eprintln!("padding: plain {plain:.4}, sorted {sorted:.4}, width {width:.4}");
    // Lengths uniform in 1..=60: a random batch of 32 pads to about 58 steps while its mean
    // is 30.5, so about half the steps are padding (measured: 0.480). Sorted pools of 1024
    // hold about 17 sequences per length, so a batch spans about two lengths (0.029); width-4
    // buckets pad by about 1.5 steps per sequence (0.046).
    assert!((0.45..0.51).contains(&plain), "plain shuffle {plain}");
    assert!(sorted < 0.04, "sorted pools {sorted}");
    assert!(width < 0.06, "width-4 buckets {width}");
}

#[test]
fn epoch_order_depends_only_on_seed_and_epoch() {
    let lengths = random_lengths(200, 3);
    for bucketing in bucketings() {
        let config = BatchConfig {
            max_batch: 8,
            bucketing,
            seed: 7,
            ..BatchConfig::default()
        };
        let a = Batcher::new(config, lengths.clone()).unwrap();
        let resumed = Batcher::new(config, lengths.clone()).unwrap();
        assert_eq!(a.epoch(3), resumed.epoch(3), "{bucketing:?}");
        assert_ne!(a.epoch(3), a.epoch(4), "{bucketing:?}");
        let other_seed = Batcher::new(BatchConfig { seed: 8, ..config }, lengths.clone()).unwrap();
        assert_ne!(a.epoch(3), other_seed.epoch(3), "{bucketing:?}");
    }
    // Without shuffling the order is fixed (sorted by length) and equal in every epoch.
    let fixed = BatchConfig {
        max_batch: 2,
        bucketing: Bucketing::Sorted { pool: 10 },
        shuffle: false,
        ..BatchConfig::default()
    };
    let b = Batcher::new(fixed, vec![3, 1, 2, 1]).unwrap();
    assert_eq!(b.epoch(0), [vec![1, 3], vec![2, 0]]);
    assert_eq!(b.epoch(0), b.epoch(9));
}

#[test]
fn batcher_rejects_unusable_settings() {
    let ok = BatchConfig::default();
    for (config, lengths, needle) in [
        (BatchConfig { max_batch: 0, ..ok }, vec![1], "max_batch"),
        (
            BatchConfig {
                max_tokens: Some(0),
                ..ok
            },
            vec![1],
            "max_tokens",
        ),
        (
            BatchConfig {
                bucketing: Bucketing::Width { width: 0 },
                ..ok
            },
            vec![1],
            "width",
        ),
        (ok, vec![2, 0, 1], "sequence 1 is empty"),
        (ok, vec![], "no sequences"),
    ] {
        let err = Batcher::new(config, lengths).unwrap_err();
        assert!(err.to_string().contains(needle), "{err}");
    }
}

#[test]
fn batches_are_time_major_padded_and_carry_the_ignore_label() {
    let examples = vec![
        Example::tagged(vec![11, 12, 13], vec![1, 2, 3]).unwrap(),
        Example::tagged(vec![21], vec![4]).unwrap(),
    ];
    let task = Task::Tagging {
        ignore_label: Some(9),
    };
    let (batch, targets) = to_batch::<f32>(&examples, &[1, 0], None, pad_target(&task)).unwrap();
    assert_eq!(batch.seq.time, 3);
    assert_eq!(batch.seq.lengths, [1, 3]);
    assert_eq!(batch.inputs, Inputs::Ids(vec![21, 11, PAD, 12, PAD, 13]));
    assert_eq!(targets, Targets::Classes(vec![4, 1, 9, 2, 9, 3]));
    // Aligned to a fixed length.
    let (batch, _) = to_batch::<f32>(&examples, &[0], Some(5), 0).unwrap();
    assert_eq!(batch.inputs, Inputs::Ids(vec![11, 12, 13, PAD, PAD]));
    assert!(to_batch::<f32>(&examples, &[0], Some(2), 0).is_err());
    assert!(to_batch::<f32>(&examples, &[2], None, 0).is_err());
    // Classification: one target per sequence.
    let cls = vec![
        Example::classified(vec![5, 6], 1),
        Example::classified(vec![7], 0),
    ];
    let (batch, targets) = to_batch::<f32>(&cls, &[0, 1], None, 0).unwrap();
    assert_eq!(batch.inputs, Inputs::Ids(vec![5, 7, 6, PAD]));
    assert_eq!(targets, Targets::Classes(vec![1, 0]));
    let mixed = vec![examples[0].clone(), cls[0].clone()];
    assert!(to_batch::<f32>(&mixed, &[0, 1], None, 0).is_err());
}

/// A CoNLL file through the whole pipeline into a model on the CPU: the batch is accepted,
/// the loss is finite, and the target written at padding steps does not change it.
#[test]
fn conll_file_trains_a_tagger_batch() {
    let text = "arrive\tO\ntaipei\tB-DEST\n\nleave\tO\ntokyo\tB-DEPART\ntoday\tB-TIME\n\n\
                fly\tO\n";
    let conll = Conll::from_str("mini.conll", text).unwrap();
    let words = Tokenizer::Words { lowercase: true };
    let tokens = conll.tokens(&words);
    let vocab = Vocabulary::from_tokens(tokens.iter().flatten(), &VocabOptions::default());
    let labels = LabelVocab::from_labels(conll.all_tags());
    let tags = conll.tag_ids(&labels).unwrap();
    let examples: Vec<Example> = tokens
        .iter()
        .zip(tags)
        .map(|(t, y)| Example::tagged(vocab.encode(t), y).unwrap())
        .collect();
    let config = NetworkConfig {
        input: InputEncoding::Embedding {
            vocab: vocab.len(),
            dim: 4,
            unknown: UnknownTokens::Error,
        },
        layers: vec![LayerConfig {
            cell: CellConfig::Gru {
                variant: GruVariant::Pytorch,
            },
            hidden: 5,
            bidirectional: false,
            dropout: 0.0,
            recurrent: true,
        }],
        head: Some(HeadConfig {
            classes: labels.len(),
            task: Task::Tagging { ignore_label: None },
        }),
    };
    let mut model = Model::new(CpuBackend::<f64>::new(), config, 1).unwrap();
    let batcher = Batcher::for_examples(BatchConfig::default(), &examples).unwrap();
    let epoch = batcher.epoch(0);
    assert_eq!(epoch.len(), 1);
    let (batch, targets) = to_batch::<f64>(&examples, &epoch[0], None, 0).unwrap();
    model.forward(&batch, None, Mode::Eval).unwrap();
    let loss = model.loss(&targets).unwrap();
    assert!(loss.is_finite() && loss > 0.0);
    let (_, other_pad) = to_batch::<f64>(&examples, &epoch[0], None, 3).unwrap();
    assert_ne!(other_pad, targets);
    assert_eq!(model.loss(&other_pad).unwrap(), loss);
}

// ----- pretrained vectors ---------------------------------------------------------------

#[test]
fn embeddings_file_round_trip_and_fill() {
    let words: Vec<String> = ["the", "cat", "sat"].map(String::from).to_vec();
    let values = vec![0.1, -0.25, 3.0e-8, 1.0, 2.0, 3.0, -1.5, 0.0, 7.125];
    let vectors = Vectors::new(3, words, values).unwrap();
    for header in [true, false] {
        let path = temp(&format!("vectors-{header}.txt"));
        vectors.save(&path, header).unwrap();
        let back = read_vectors(&path, |_| true).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(back, vectors);
    }
    // Only the kept words are stored, every row is read.
    let some = vectors_from_str("v.txt", &vectors.to_text(false), |w| w != "cat").unwrap();
    assert_eq!((some.words().len(), some.rows_read()), (2, 3));

    let vocab = Vocabulary::from_tokens(["cat", "cat", "dog"], &VocabOptions::default());
    // Rows: <pad>, <other>, cat, dog, and one extra (the model's "other" row).
    let mut table = vec![9.0f32; 5 * 3];
    let report = fill_embedding(&vectors, &vocab, &mut table, 3).unwrap();
    assert_eq!((report.found, report.missing), (1, 1));
    assert_eq!(&table[6..9], [1.0, 2.0, 3.0]);
    assert!(table[..6].iter().chain(&table[9..]).all(|&v| v == 9.0));
    assert!(fill_embedding(&vectors, &vocab, &mut table, 4).is_err());
    assert!(fill_embedding(&vectors, &vocab, &mut table[..9], 3).is_err());
    assert!(Vectors::new(1, vec!["a b".into()], vec![1.0]).is_err());
    assert!(Vectors::new(2, vec!["a".into()], vec![1.0]).is_err());
}

#[test]
fn embeddings_bad_rows_name_file_line_and_value() {
    let cases = [
        ("the 0.1 0.2\ncat 0.3 abc\n", 2, "`abc`"),
        ("the 0.1 0.2\ncat 0.3\n", 2, "has 1 values; expected 2"),
        (
            "2 2\nthe 0.1 0.2\ncat 1 2 3\n",
            3,
            "has 3 values; expected 2",
        ),
        (
            "3 2\nthe 0.1 0.2\n",
            1,
            "announces 3 vectors but the file has 1",
        ),
        ("the 0.1 NaN\n", 1, "`NaN`"),
        ("the 1\ncat\n", 2, "has 0 values"),
    ];
    for (text, line, needle) in cases {
        let err = vectors_from_str("glove.txt", text, |_| true).unwrap_err();
        assert_names(&err, "glove.txt", line, needle);
    }
    let path = temp("vectors-bad-utf8.txt");
    std::fs::write(&path, b"the 1 2\n\xfe 1 2\n").unwrap();
    let err = read_vectors(&path, |_| true).unwrap_err();
    std::fs::remove_file(&path).unwrap();
    assert_names(&err, &path.display().to_string(), 2, "byte offset 8");
    let err = vectors_from_str("glove.txt", "\n\n", |_| true).unwrap_err();
    assert!(
        err.to_string().contains("glove.txt: no word vectors"),
        "{err}"
    );
}
