//! `wgrnn train` and the verbs that use a run, end to end on tiny data (CPU backend): each
//! task from files to a run directory to generate / tag / classify / eval; exact resume (the
//! same losses, bit for bit, as an uninterrupted run); keep-last-K checkpoints; Ctrl-C;
//! malformed data naming file and line; a NaN loss that stops with the last checkpoint
//! intact; weights that do not fit a model named tensor by tensor.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A fresh directory for one test.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wgrnn-run-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temporary directory");
    dir
}

fn command(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_wgrnn"));
    c.args(args)
        .env(
            "XDG_RUNTIME_DIR",
            std::env::var("XDG_RUNTIME_DIR").unwrap_or_else(|_| "/tmp".into()),
        )
        .env("RUST_BACKTRACE", "0");
    c
}

/// Runs the binary; fails the test on a panic.
fn wgrnn(args: &[&str]) -> Output {
    let out = command(args).output().expect("the wgrnn binary runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "wgrnn {args:?} panicked:\n{err}");
    out
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Asserts success and returns stdout.
fn ok(args: &[&str]) -> String {
    let o = wgrnn(args);
    assert!(
        o.status.success(),
        "wgrnn {args:?} failed ({}):\n{}\n{}",
        o.status,
        text(&o.stdout),
        text(&o.stderr)
    );
    text(&o.stdout)
}

/// Asserts failure with `needle` in stderr; returns stderr.
fn fails(args: &[&str], needle: &str) -> String {
    let o = wgrnn(args);
    let err = text(&o.stderr);
    assert!(
        !o.status.success(),
        "wgrnn {args:?} should fail:\n{}",
        text(&o.stdout)
    );
    assert!(
        err.contains(needle),
        "wgrnn {args:?}: `{needle}` not in stderr:\n{err}"
    );
    err
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A small corpus for a character language model.
fn lm_corpus(dir: &Path) -> PathBuf {
    let lines = [
        "the cat sat on the mat.",
        "a dog ran in the park.",
        "the bird sang a song.",
        "we like to read books.",
    ];
    let body: String = (0..30)
        .map(|i| format!("{}\n", lines[i % lines.len()]))
        .collect();
    let p = dir.join("tiny.txt");
    std::fs::write(&p, body).unwrap();
    p
}

/// A small slot-filling corpus (CoNLL, BIO).
fn conll_corpus(dir: &Path) -> PathBuf {
    let cities = ["taipei", "tokyo", "paris", "rome"];
    let mut body = String::new();
    for i in 0..24 {
        let (verb, slot) = if i % 2 == 0 {
            ("arrive", "DEST")
        } else {
            ("leave", "DEPART")
        };
        body += &format!(
            "{verb}\tO\nin\tO\n{}\tB-{slot}\ntoday\tO\n\n",
            cities[i % 4]
        );
    }
    let p = dir.join("tiny.conll");
    std::fs::write(&p, body).unwrap();
    p
}

/// A small classification corpus (`label TAB text`).
fn tsv_corpus(dir: &Path) -> PathBuf {
    let mut body = String::new();
    for i in 0..30 {
        if i % 2 == 0 {
            body += "pos\ta wonderful , moving film\n";
        } else {
            body += "neg\ta dull and tedious mess\n";
        }
    }
    let p = dir.join("tiny.tsv");
    std::fs::write(&p, body).unwrap();
    p
}

const CPU: [&str; 2] = ["--device", "cpu"];

/// `train` args on CPU with a tiny network, plus `extra`.
fn train_args<'a>(task: &'a str, data: &'a str, run: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "train",
        "--task",
        task,
        "--data",
        data,
        "--run-dir",
        run,
        "--hidden",
        "8",
        "--embedding-dim",
        "4",
        "--batch",
        "4",
        "--valid-fraction",
        "0.2",
        "--quiet",
        "--device",
        "cpu",
    ];
    a.extend_from_slice(extra);
    a
}

#[test]
fn language_model_trains_saves_generates_and_evaluates() {
    let dir = temp_dir("lm");
    let data = lm_corpus(&dir);
    let run = dir.join("run");
    let out = ok(&train_args(
        "lm",
        s(&data),
        s(&run),
        &["--epochs", "2", "--max-len", "16"],
    ));
    assert!(out.contains("all 2 epochs done"), "{out}");
    for f in [
        "config.toml",
        "network.toml",
        "vocab.tsv",
        "metrics.csv",
        "steps.csv",
        "plot.svg",
        "best.safetensors",
        "latest",
    ] {
        assert!(run.join(f).is_file(), "missing {f}");
    }
    let metrics = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    assert_eq!(metrics.lines().count(), 3, "{metrics}");
    assert!(
        metrics.starts_with("epoch,step,train_loss,valid_loss"),
        "{metrics}"
    );
    let svg = std::fs::read_to_string(run.join("plot.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("polyline"), "{svg}");
    let latest = std::fs::read_to_string(run.join("latest")).unwrap();
    let ck = run.join("checkpoints").join(latest.trim());
    for f in ["weights.safetensors", "optimizer.safetensors", "state.json"] {
        assert!(ck.join(f).is_file(), "missing {f} in {}", ck.display());
    }
    // The vocabulary is saved with the model and the weights carry PyTorch names.
    let vocab = std::fs::read_to_string(run.join("vocab.tsv")).unwrap();
    assert!(vocab.starts_with("<pad>\t0\n<other>\t"), "{vocab}");
    let weights = std::fs::read(run.join("best.safetensors")).unwrap();
    let names = safetensors::SafeTensors::deserialize(&weights)
        .unwrap()
        .names()
        .len();
    let st = safetensors::SafeTensors::deserialize(&weights).unwrap();
    for name in [
        "rnn.weight_ih_l0",
        "rnn.weight_hh_l0",
        "rnn.bias_ih_l0",
        "rnn.bias_hh_l0",
        "head.weight",
    ] {
        assert!(
            st.tensor(name).is_ok(),
            "{name} missing among {names} tensors"
        );
    }

    let sample = ok(&[
        "generate",
        "--run",
        s(&run),
        "--prompt",
        "the ",
        "--length",
        "30",
        "--seed",
        "2",
        "--device",
        "cpu",
    ]);
    assert!(
        sample.starts_with("the ") && sample.trim_end().chars().count() >= 20,
        "{sample:?}"
    );
    let again = ok(&[
        "generate",
        "--run",
        s(&run),
        "--prompt",
        "the ",
        "--length",
        "30",
        "--seed",
        "2",
        "--device",
        "cpu",
    ]);
    assert_eq!(sample, again, "sampling is seeded");
    let eval = ok(&["eval", "--run", s(&run), "--json", "--device", "cpu"]);
    assert!(
        eval.contains("\"bits_per_char\":") && !eval.contains("\"bits_per_char\":null"),
        "{eval}"
    );
    // A language model cannot tag.
    fails(
        &["tag", "--run", s(&run), "--text", "x", "--device", "cpu"],
        "needs a `tag` model",
    );
}

#[test]
fn tagger_trains_and_tags_text() {
    let dir = temp_dir("tag");
    let data = conll_corpus(&dir);
    let run = dir.join("run");
    let out = ok(&train_args(
        "tag",
        s(&data),
        s(&run),
        &["--epochs", "3", "--lr", "0.05"],
    ));
    assert!(out.contains("span F1"), "{out}");
    let labels = std::fs::read_to_string(run.join("labels.txt")).unwrap();
    assert_eq!(labels, "B-DEPART\nB-DEST\nO\n");
    let tagged = ok(&[
        "tag",
        "--run",
        s(&run),
        "--text",
        "arrive in Paris today",
        "--device",
        "cpu",
    ]);
    let lines: Vec<&str> = tagged.lines().collect();
    assert_eq!(lines.len(), 5, "{tagged}");
    assert!(lines[2].starts_with("Paris\t"), "{tagged}");
    for l in &lines[..4] {
        let tag = l.split('\t').nth(1).unwrap();
        assert!(["O", "B-DEST", "B-DEPART"].contains(&tag), "{tagged}");
    }
    let inline = ok(&[
        "tag",
        "--run",
        s(&run),
        "--text",
        "leave rome",
        "--inline",
        "--device",
        "cpu",
    ]);
    assert_eq!(inline.lines().count(), 1, "{inline}");
    let eval = ok(&[
        "eval",
        "--run",
        s(&run),
        "--data",
        s(&data),
        "--device",
        "cpu",
    ]);
    assert!(
        eval.contains("accuracy") && eval.contains("span F1"),
        "{eval}"
    );
}

#[test]
fn classifier_trains_and_classifies_text() {
    let dir = temp_dir("classify");
    let data = tsv_corpus(&dir);
    let run = dir.join("run");
    let args = train_args(
        "classify",
        s(&data),
        s(&run),
        &["--epochs", "4", "--lr", "0.05", "--json"],
    );
    let args: Vec<&str> = args.into_iter().filter(|a| *a != "--quiet").collect();
    let out = ok(&args);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines.iter().all(|l| l.starts_with('{')),
        "JSON lines only:\n{out}"
    );
    assert!(lines.last().unwrap().contains("\"event\":\"end\""), "{out}");
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("\"event\":\"epoch\""))
            .count(),
        4
    );
    let c = ok(&[
        "classify",
        "--run",
        s(&run),
        "--text",
        "a wonderful film",
        "--text",
        "a tedious mess",
        "--device",
        "cpu",
    ]);
    let labels: Vec<&str> = c.lines().map(|l| l.split('\t').next().unwrap()).collect();
    assert_eq!(labels, ["pos", "neg"], "{c}");
}

#[test]
fn word_hashing_and_frozen_pretrained_embeddings() {
    let dir = temp_dir("encodings");
    let data = tsv_corpus(&dir);
    let run = dir.join("trigram");
    ok(&train_args(
        "classify",
        s(&data),
        s(&run),
        &["--epochs", "1", "--encoding", "trigram"],
    ));
    assert!(run.join("trigrams.tsv").is_file());
    // A word never seen in training still has trigrams.
    ok(&[
        "classify",
        "--run",
        s(&run),
        "--text",
        "wonderfully unseen",
        "--device",
        "cpu",
    ]);

    let vectors = dir.join("vectors.txt");
    std::fs::write(
        &vectors,
        "3 4\nwonderful 1 0 0 0\ndull 0 1 0 0\nfilm 0 0 1 0\n",
    )
    .unwrap();
    let run = dir.join("frozen");
    ok(&train_args(
        "classify",
        s(&data),
        s(&run),
        &[
            "--epochs",
            "2",
            "--embeddings",
            s(&vectors),
            "--freeze-embeddings",
        ],
    ));
    // The embedding rows stayed as loaded: `wonderful` is still (1, 0, 0, 0).
    let vocab = std::fs::read_to_string(run.join("vocab.tsv")).unwrap();
    let id = vocab
        .lines()
        .position(|l| l.starts_with("wonderful\t"))
        .unwrap();
    let bytes = std::fs::read(run.join("best.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let e = st.tensor("embedding.weight").unwrap();
    let row: Vec<f32> = e.data()[id * 16..id * 16 + 16]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(row, [1.0, 0.0, 0.0, 0.0]);
}

fn csv_rows(path: &Path, drop_timing: bool) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            if drop_timing {
                l.split(',').take(8).collect::<Vec<_>>().join(",")
            } else {
                l.to_string()
            }
        })
        .collect()
}

#[test]
fn resume_gives_the_same_losses_as_an_uninterrupted_run() {
    let dir = temp_dir("resume");
    let data = lm_corpus(&dir);
    // Two layers with dropout, so the dropout masks must line up too.
    let extra = [
        "--epochs",
        "3",
        "--max-len",
        "12",
        "--layers",
        "2",
        "--dropout",
        "0.3",
    ];
    let whole = dir.join("whole");
    ok(&train_args("lm", s(&data), s(&whole), &extra));
    let parts = dir.join("parts");
    let mut first = extra.to_vec();
    first.extend(["--max-steps", "13"]);
    let out = ok(&train_args("lm", s(&data), s(&parts), &first));
    assert!(out.contains("--max-steps reached at update 13"), "{out}");
    ok(&["train", "--resume", s(&parts), "--quiet", "--device", "cpu"]);

    let (a, b) = (
        csv_rows(&whole.join("steps.csv"), false),
        csv_rows(&parts.join("steps.csv"), false),
    );
    assert!(a.len() > 20, "{a:?}");
    assert_eq!(a, b, "per-step losses of the resumed run differ");
    let (a, b) = (
        csv_rows(&whole.join("metrics.csv"), true),
        csv_rows(&parts.join("metrics.csv"), true),
    );
    assert_eq!(a, b, "per-epoch metrics of the resumed run differ");
    let wa = std::fs::read(whole.join("best.safetensors")).unwrap();
    let wb = std::fs::read(parts.join("best.safetensors")).unwrap();
    assert!(wa == wb, "final weights differ");
}

#[test]
fn checkpoints_keep_the_last_k_and_latest_is_complete() {
    let dir = temp_dir("keep");
    let data = lm_corpus(&dir);
    let run = dir.join("run");
    ok(&train_args(
        "lm",
        s(&data),
        s(&run),
        &[
            "--epochs",
            "2",
            "--max-len",
            "12",
            "--checkpoint-every",
            "3",
            "--keep",
            "2",
        ],
    ));
    let mut names: Vec<String> = std::fs::read_dir(run.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(
        names.iter().all(|n| n.starts_with("step-")),
        "no temporary left: {names:?}"
    );
    let latest = std::fs::read_to_string(run.join("latest")).unwrap();
    assert_eq!(latest.trim(), names[1]);
    let leftovers: Vec<_> = std::fs::read_dir(&run)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // A new run refuses a directory that is in use.
    fails(
        &train_args("lm", s(&data), s(&run), &["--epochs", "1"]),
        "already exists",
    );
}

#[test]
fn ctrl_c_stops_after_the_step_saves_and_resumes() {
    let dir = temp_dir("ctrlc");
    let data = lm_corpus(&dir);
    let run = dir.join("run");
    let args = train_args(
        "lm",
        s(&data),
        s(&run),
        &["--epochs", "100000", "--max-len", "12"],
    );
    let child = command(&args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while !run.join("latest").exists() && start.elapsed().as_secs() < 60 {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    let out = child.wait_with_output().unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(
        err.contains("interrupted: saved a checkpoint at update"),
        "{err}"
    );
    let state = std::fs::read_to_string(
        run.join("checkpoints")
            .join(std::fs::read_to_string(run.join("latest")).unwrap().trim())
            .join("state.json"),
    )
    .unwrap();
    assert!(state.contains("\"finished\": null"), "{state}");
    // Continue it, now with an end in sight.
    let out = ok(&[
        "train",
        "--resume",
        s(&run),
        "--epochs",
        "3",
        "--quiet",
        "--device",
        "cpu",
    ]);
    assert!(
        out.contains("epochs done") || out.contains("finished"),
        "{out}"
    );
}

#[test]
fn malformed_data_names_the_file_and_line() {
    let dir = temp_dir("malformed");
    let run = dir.join("run");
    let bad = dir.join("bad.conll");
    std::fs::write(&bad, "arrive\tO\ntaipei\tB-DEST\nnotag\n\n").unwrap();
    fails(&train_args("tag", s(&bad), s(&run), &[]), "bad.conll:3:");
    let bad = dir.join("bad.tsv");
    std::fs::write(&bad, "pos\tfine\nno tab here\n").unwrap();
    fails(&train_args("classify", s(&bad), s(&run), &[]), "bad.tsv:2:");
    let bad = dir.join("bad.txt");
    std::fs::write(&bad, b"good line\nbad \xff byte\n").unwrap();
    fails(&train_args("lm", s(&bad), s(&run), &[]), "bad.txt:2:");
    // A tag in the validation file that training never saw.
    let train = conll_corpus(&dir);
    let valid = dir.join("valid.conll");
    std::fs::write(&valid, "arrive\tO\n\nleave\tO\nrome\tB-CITY\n").unwrap();
    fails(
        &[
            "train",
            "--task",
            "tag",
            "--data",
            s(&train),
            "--valid",
            s(&valid),
            "--run-dir",
            s(&run),
            "--device",
            "cpu",
        ],
        "valid.conll:4: unknown label `B-CITY`",
    );
    fails(
        &[
            "train",
            "--task",
            "lm",
            "--data",
            s(&dir.join("missing.txt")),
            "--device",
            "cpu",
        ],
        "missing.txt",
    );
    assert!(
        !run.exists(),
        "no run directory for data that does not read"
    );
}

#[test]
fn nan_loss_stops_and_keeps_the_last_checkpoint() {
    let dir = temp_dir("nan");
    let data = lm_corpus(&dir);
    let run = dir.join("run");
    // SGD with an absurd rate and no clipping: the first update blows the weights up, the
    // second step's loss overflows.
    let nan = [
        "--epochs",
        "2",
        "--max-len",
        "12",
        "--optimizer",
        "sgd",
        "--lr",
        "3e38",
        "--clip",
        "0",
        "--checkpoint-every",
        "1",
    ];
    let err = fails(
        &train_args("lm", s(&data), s(&run), &nan),
        "training stopped: the loss at step 2 is not finite",
    );
    assert!(err.contains("last good checkpoint is"), "{err}");
    let latest = std::fs::read_to_string(run.join("latest")).unwrap();
    assert_eq!(latest.trim(), "step-00000001");
    let ck = run.join("checkpoints/step-00000001");
    assert!(ck.join("state.json").is_file());
    ok(&[
        "eval",
        "--run",
        s(&run),
        "--weights",
        s(&ck.join("weights.safetensors")),
        "--device",
        "cpu",
    ]);

    // Skipping instead: the run goes on and says so.
    let run = dir.join("skip");
    let mut skip = nan.to_vec();
    skip.extend(["--on-nan", "skip"]);
    let args = train_args("lm", s(&data), s(&run), &skip);
    let args: Vec<&str> = args.into_iter().filter(|a| *a != "--quiet").collect();
    let o = wgrnn(&args);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("skipped a step"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn weights_that_do_not_fit_are_named() {
    let dir = temp_dir("mismatch");
    let data = lm_corpus(&dir);
    let run = dir.join("run");
    ok(&train_args(
        "lm",
        s(&data),
        s(&run),
        &["--epochs", "1", "--max-len", "12"],
    ));
    // Resuming with another hidden size.
    let err = fails(
        &[
            "train",
            "--resume",
            s(&run),
            "--hidden",
            "6",
            "--epochs",
            "2",
            "--device",
            "cpu",
        ],
        "does not fit this model",
    );
    assert!(
        err.contains("`rnn.weight_hh_l0` has shape [32, 8], the model needs [24, 6]"),
        "{err}"
    );
    // Initialising a two-layer model from a one-layer one.
    let err = fails(
        &train_args(
            "lm",
            s(&data),
            s(&dir.join("two")),
            &[
                "--layers",
                "2",
                "--init-from",
                s(&run.join("best.safetensors")),
            ],
        ),
        "missing tensors: rnn.weight_ih_l1",
    );
    assert!(err.contains("rnn.bias_hh_l1"), "{err}");
}

#[test]
fn every_verb_has_help_with_examples() {
    for verb in [
        "train", "eval", "generate", "tag", "classify", "check", "bench", "devices",
    ] {
        let out = ok(&[verb, "--help"]);
        assert!(out.contains("Example"), "{verb} --help:\n{out}");
        if verb != "devices" && verb != "check" && verb != "bench" {
            assert!(out.contains("--device"), "{verb} --help:\n{out}");
        }
    }
    let _ = CPU;
}

#[test]
fn config_file_then_flags_override_the_defaults() {
    let dir = temp_dir("config");
    let data = lm_corpus(&dir);
    let cfg = dir.join("lm.toml");
    std::fs::write(
        &cfg,
        format!(
            "task = \"lm\"\n[data]\ntrain = \"{}\"\nmax_len = 12\n[model]\nhidden = 6\ncell = \"gru\"\n[train]\nepochs = 1\nbatch = 4\n",
            s(&data)
        ),
    )
    .unwrap();
    let run = dir.join("run");
    ok(&[
        "train",
        "--config",
        s(&cfg),
        "--epochs",
        "2",
        "--run-dir",
        s(&run),
        "--quiet",
        "--device",
        "cpu",
    ]);
    let saved = std::fs::read_to_string(run.join("config.toml")).unwrap();
    for line in [
        "hidden = 6",
        "cell = \"gru\"",
        "epochs = 2",
        "max_len = 12",
        "valid_fraction = 0.1",
    ] {
        assert!(saved.contains(line), "`{line}` not in\n{saved}");
    }
    assert!(
        !saved.contains("valid = "),
        "own data holds out a fraction:\n{saved}"
    );
    // Unknown keys and mistyped values are named.
    std::fs::write(&cfg, "[model]\nhiden = 6\n").unwrap();
    fails(&["train", "--config", s(&cfg), "--device", "cpu"], "hiden");
    std::fs::write(&cfg, "task = \"lm\"\n[train]\nlr = \"fast\"\n").unwrap();
    fails(&["train", "--config", s(&cfg), "--device", "cpu"], "lr");
}
