//! The `wgrnn` binary end to end: `devices`, `check` (GPU against the CPU reference, passing
//! and provably failing), `bench --json`, `train --device cpu` (the training product's own
//! tests are in tests/run_cli.rs), and bad input that must give a
//! clear error and a non-zero exit without a panic.
//!
//! The GPU commands need an adapter (CI has lavapipe); sizes are tiny because lavapipe is slow.

use std::path::PathBuf;
use std::process::{Command, Output};

/// Runs the built binary with `args`.
fn wgrnn(args: &[&str]) -> Output {
    wgrnn_env(args, &[])
}

/// Environment that hides every adapter: Vulkan only, with no driver manifest.
const NO_ADAPTER: &[(&str, &str)] = &[
    ("WGPU_BACKEND", "vulkan"),
    ("VK_ICD_FILENAMES", "/nonexistent/wgrnn-no-driver.json"),
    ("VK_DRIVER_FILES", "/nonexistent/wgrnn-no-driver.json"),
];

/// Runs the built binary with `args` and extra environment variables; fails the test on a
/// panic.
fn wgrnn_env(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_wgrnn"))
        .args(args)
        // Kernel choices from a developer's autotune table would change what is tested;
        // the tune test turns it back on with its own file.
        .env("WGRNN_TUNING", "off")
        .envs(envs.iter().copied())
        .env(
            "XDG_RUNTIME_DIR",
            std::env::var("XDG_RUNTIME_DIR").unwrap_or_else(|_| "/tmp".into()),
        )
        .env("RUST_BACKTRACE", "0")
        .env_remove("WGRNN_ADAPTER")
        .output()
        .expect("the wgrnn binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("panicked"),
        "wgrnn {args:?} panicked:\n{stderr}"
    );
    out
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts success, showing both streams otherwise.
fn ok(args: &[&str]) -> String {
    let o = wgrnn(args);
    assert!(
        o.status.success(),
        "wgrnn {args:?} failed ({}):\n{}\n{}",
        o.status,
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

/// Asserts failure with a message containing `needle` (on stderr).
fn fails(args: &[&str], needle: &str) -> Output {
    let o = wgrnn(args);
    assert!(
        !o.status.success(),
        "wgrnn {args:?} should fail:\n{}",
        stdout(&o)
    );
    assert!(
        stderr(&o).contains(needle),
        "wgrnn {args:?}: expected `{needle}` in stderr:\n{}",
        stderr(&o)
    );
    o
}

/// A fresh path in the temporary directory.
fn temp_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wgrnn-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    dir.join(name)
}

#[test]
fn devices_lists_adapters_with_limits() {
    let out = ok(&["devices"]);
    assert!(out.starts_with("0: "), "{out}");
    for field in [
        "backend ",
        "driver:",
        "max storage buffer binding:",
        "max buffer:",
        "workgroup storage:",
        "invocations per workgroup:",
        "storage buffers per stage:",
        "timestamp query:",
        "shader f16:",
        "cooperative matrices:",
    ] {
        assert!(out.contains(field), "missing `{field}`:\n{out}");
    }
    // llvmpipe (CI's lavapipe) says it caps loops; every other adapter does not. An
    // adapter's lines start with its index, the rest are indented.
    let mut adapters: Vec<String> = Vec::new();
    for line in out.lines() {
        match (line.starts_with(' '), adapters.last_mut()) {
            (true, Some(a)) => a.push_str(line),
            _ => adapters.push(line.to_string()),
        }
    }
    for adapter in adapters {
        let name = adapter.split_once(": ").map_or("", |(_, n)| n);
        let capped = adapter.contains("loops: ended after 65535 iterations");
        assert_eq!(capped, name.starts_with("llvmpipe"), "{adapter}");
    }
}

#[test]
fn check_lstm_peephole_projection_bidirectional() {
    let out = ok(&[
        "check",
        "--cell",
        "lstm",
        "--peephole",
        "--proj",
        "2",
        "--layers",
        "2",
        "--hidden",
        "3",
        "--input",
        "2",
        "--lengths",
        "4,1,3",
        "--bidirectional",
        "--steps",
        "2",
    ]);
    for row in [
        "outputs",
        "final h, layer 1",
        "final c, layer 0",
        "loss ",
        "grad rnn.weight_hr_l1_reverse",
        "grad rnn.peephole_l0",
        "grad head.weight",
        "grad inputs",
        "grad initial c, layer 1",
        "loss of step 2",
        "after 2 steps rnn.weight_ih_l0",
    ] {
        assert!(out.contains(row), "missing row `{row}`:\n{out}");
    }
    assert!(out.contains(" 0 FAILED"), "{out}");
    assert!(!out.contains("FAIL\n"), "{out}");
}

/// The kernel flags reach the GPU backend: the blocked step loops, the 128x128 GEMM tile,
/// unchecked shader modules, the tiles' K slices and their 16-row chunks agree
/// with the CPU reference, and the chosen kernels are named; K slices with the blocked
/// loops, and chunk rows with the row-wise ones, are refused.
#[test]
fn check_with_kernel_flags() {
    let lengths = "7,1,4,7,2,5,7,1,4,7,2,5,7,1,4,7,2,5,7";
    // `wgrnn check` of `cell` with `flags`, which must agree and name `kernels`.
    let check = |cell: &str, flags: &[&str], kernels: &str| {
        let mut args = vec![
            "check",
            "--cell",
            cell,
            "--hidden",
            "40",
            "--input",
            "8",
            "--lengths",
            lengths,
            "--steps",
            "1",
        ];
        args.extend_from_slice(flags);
        let out = ok(&args);
        assert!(out.contains(kernels), "{out}");
        assert!(out.contains(" 0 FAILED"), "{cell}: {out}");
    };
    for cell in ["lstm", "gru", "rnn-tanh"] {
        check(
            cell,
            &[
                "--layers",
                "2",
                "--step-kernel",
                "blocked",
                "--gemm",
                "big",
                "--unchecked",
            ],
            "kernels: steps=blocked units=32 gemm=big unchecked",
        );
        check(
            cell,
            &["--step-k-split", "4"],
            "kernels: steps=tiled units=auto ksplit=4 gemm=auto",
        );
        check(
            cell,
            &["--step-chunk-rows", "16"],
            "kernels: steps=tiled-f32 units=auto chunkrows=16 gemm=auto",
        );
        check(
            cell,
            &["--step-kernel", "gemv"],
            "kernels: steps=gemv units=auto gemm=auto checked",
        );
    }
    // K slices are choices of the plain f32 and the tensor-core tiles, chunk rows of the
    // plain f32 tiles: elsewhere a clear refusal that names the flag.
    for (kernel, flag, value, why) in [
        (
            "blocked",
            "--step-k-split",
            "4",
            "K slices are for the tiled steps only",
        ),
        (
            "rowwise",
            "--step-chunk-rows",
            "32",
            "chunk rows are for the f32 tiled steps only",
        ),
        (
            "gemv",
            "--step-k-split",
            "2",
            "K slices are for the tiled steps only",
        ),
    ] {
        let o = wgrnn(&[
            "check",
            "--step-kernel",
            kernel,
            flag,
            value,
            "--steps",
            "1",
        ]);
        let err = stderr(&o);
        assert!(
            !o.status.success()
                && err.contains(&format!("{flag} {value}: {why}"))
                && err.contains(&format!("steps={kernel}")),
            "{err}"
        );
    }
    // The matrix-vector steps choose their own width.
    let o = wgrnn(&[
        "check",
        "--step-kernel",
        "gemv",
        "--step-units",
        "32",
        "--steps",
        "1",
    ]);
    let err = stderr(&o);
    assert!(
        !o.status.success() && err.contains("--step-units 32: the matrix-vector steps"),
        "{err}"
    );
}

/// `wgrnn check` of a 2-layer stack of `cell` (140 units, 36 inputs, 19 sequences of ragged
/// lengths that span several step tiles, one Adam step) with `flags`.
fn stack_check<'a>(cell: &'a str, flags: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec![
        "check",
        "--cell",
        cell,
        "--layers",
        "2",
        "--hidden",
        "140",
        "--input",
        "36",
        "--lengths",
        "7,1,4,30,2,5,7,1,4,7,2,5,7,1,4,7,2,5,7",
        "--steps",
        "1",
    ];
    a.extend_from_slice(flags);
    a
}

/// `--gemm tensor` runs the large products on the tensor cores, `--step-kernel tensor` the
/// recurrent steps' products, and each agrees with the CPU reference within the
/// rounded-operand bounds: on the matrix units where the adapter has them, else emulated
/// (WGRNN_EMULATE_TENSOR_CORES=1), through a whole stack's forward, backward and Adam step.
/// Without emulation, an adapter without them refuses the flag by name.
#[test]
fn check_with_tensor_products() {
    for (flag, value, label, described) in [
        (
            "--gemm",
            "tensor",
            "gemm=tensor",
            "; tensor-core matrix products",
        ),
        (
            "--step-kernel",
            "tensor",
            "steps=tensor",
            "; tensor-core recurrent steps",
        ),
    ] {
        let args = stack_check("lstm", &[flag, value]);
        let o = wgrnn_env(&args, &[("WGRNN_EMULATE_TENSOR_CORES", "1")]);
        let out = stdout(&o);
        assert!(o.status.success(), "{out}\n{}", stderr(&o));
        assert!(out.contains(label), "{out}");
        assert!(out.contains(described), "{out}");
        assert!(out.contains(" 0 FAILED"), "{out}");
        let o = wgrnn(&args);
        if out.contains("(emulated)") {
            let err = stderr(&o);
            assert!(
                !o.status.success()
                    && err.contains(&format!("{flag} {value}: adapter"))
                    && err.contains("has no tensor-core matrix products")
                    && err.contains("wgrnn devices"),
                "{err}"
            );
        } else {
            assert!(o.status.success(), "{}", stderr(&o));
        }
    }
}

/// `--gemm tensor-split` runs the large products on the tensor cores at f32 accuracy (each
/// operand in two f16 halves), `--step-kernel tensor-split` the recurrent steps' products,
/// and each agrees with the CPU reference within the f32 tolerances
/// (1e-5 forward, 1e-4 gradients), where the rounded-operand products need 4e-3 and 5e-3:
/// on the matrix units where the adapter has them, else emulated and laid out for the
/// H100's 48 KiB (lavapipe reports 32). Where the tile does not fit, and without matrix
/// units, the flag is refused with the reason.
/// `--step-weights` chooses where the tensor-core steps read W_hh, and is refused by name
/// where it chooses nothing: steps that are not on the tensor cores, or an f16 copy for
/// the split steps, whose lo halves need the f32 weights.
#[test]
fn step_weights_are_refused_where_they_choose_nothing() {
    let emulate = [("WGRNN_EMULATE_TENSOR_CORES", "1")];
    for (flags, env, want) in [
        (
            &["--step-weights", "f32"][..],
            &[][..],
            "--step-weights f32: only the tensor-core steps",
        ),
        (
            &["--step-kernel", "tiled", "--step-weights", "f16"][..],
            &emulate[..],
            "--step-weights f16: only the tensor-core steps",
        ),
        (
            &["--step-kernel", "tensor-split", "--step-weights", "f16"][..],
            &emulate[..],
            "--step-weights f16: the split tensor-core steps read the f32 weights",
        ),
    ] {
        let o = wgrnn_env(&stack_check("lstm", flags), env);
        let err = stderr(&o);
        assert!(
            !o.status.success() && err.contains(want) && err.contains("not with `steps="),
            "{flags:?}: {err}"
        );
    }
    // Where they choose, the label says the f32 reads.
    let flags = ["--step-kernel", "tensor", "--step-weights", "f32"];
    let o = wgrnn_env(&stack_check("lstm", &flags), &emulate);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}\n{}", stderr(&o));
    assert!(
        out.contains("steps=tensor units=auto weights=f32 "),
        "{out}"
    );
}

/// `--gemm measured` (what `Auto` does on a GPU): the products' tiles are measured in the
/// check's run, the table says which won for each shape class (the split tensor-core tile
/// among the candidates, emulated, in the H100's workgroup memory), and the run agrees
/// with the CPU reference at f32's tolerances.
#[test]
fn check_with_measured_product_tiles() {
    let flags = ["--gemm", "measured", "--workgroup-memory", "49152"];
    let o = wgrnn_env(
        &stack_check("lstm", &flags),
        &[("WGRNN_EMULATE_TENSOR_CORES", "1")],
    );
    let out = stdout(&o);
    assert!(o.status.success(), "{out}\n{}", stderr(&o));
    assert!(out.contains("gemm=measured"), "{out}");
    assert!(
        out.contains("; large products' tiles measured per shape"),
        "{out}"
    );
    assert!(out.contains(" 0 FAILED"), "{out}");
    let measured: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("product tiles measured, "))
        .collect();
    assert!(measured.len() >= 4, "{out}");
    for line in measured {
        for tile in ["small ", "big ", "tall ", "tensor-split "] {
            assert!(line.contains(tile), "{line}");
        }
    }
}

/// `--wavefront measured` (what `auto` does on a GPU): the check's passes measure the layer
/// pipeline (its Adam steps give every candidate its passes), the table says what each pass
/// of the stack's shape took, and every candidate's results agree with the CPU reference;
/// a value that is none of the choices is refused by name.
#[test]
fn check_with_measured_layer_pipeline() {
    let args = |wavefront: &'static str| {
        vec![
            "check",
            "--cell",
            "gru",
            "--layers",
            "3",
            "--hidden",
            "40",
            "--input",
            "12",
            "--lengths",
            "9,3,9,5,1,9",
            "--steps",
            "8",
            "--wavefront",
            wavefront,
        ]
    };
    let o = wgrnn(&args("measured"));
    let out = stdout(&o);
    assert!(o.status.success(), "{out}\n{}", stderr(&o));
    assert!(out.contains("wavefront=measured"), "{out}");
    assert!(
        out.contains("; layer pipeline measured per stack shape"),
        "{out}"
    );
    assert!(out.contains(" 0 FAILED"), "{out}");
    for pass in ["forward", "backward"] {
        let head = format!("layer pipeline measured, {pass} 3 x gru 40 (input 12), 6 x 9: ");
        let line = out.lines().find(|l| l.starts_with(&head));
        let line = line.unwrap_or_else(|| panic!("no line {head}: {out}"));
        for chunks in ["layer-by-layer ", "wavefront=4 ", "wavefront=8 "] {
            assert!(line.contains(chunks), "{line}");
        }
    }
    let o = wgrnn(&args("0"));
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("`0` is not auto, measured, off or a chunk count from 1 to 64"),
        "{err}"
    );
}

#[test]
fn check_with_split_tensor_products() {
    let args = |memory: &'static str| {
        let mut flags = vec!["--gemm", "tensor-split"];
        if !memory.is_empty() {
            flags.extend(["--workgroup-memory", memory]);
        }
        stack_check("gru", &flags)
    };
    let emulate = [("WGRNN_EMULATE_TENSOR_CORES", "1")];
    let o = wgrnn_env(&args("49152"), &emulate);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}\n{}", stderr(&o));
    assert!(out.contains("gemm=tensor-split"), "{out}");
    assert!(
        out.contains("; tensor-core matrix products in split f16 halves (f32 accuracy)"),
        "{out}"
    );
    assert!(out.contains(" 0 FAILED"), "{out}");
    let tolerances = |name: &str| -> Vec<String> {
        out.lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.split_whitespace().nth_back(1).map(str::to_string))
            .collect()
    };
    assert_eq!(tolerances("outputs"), ["1e-5"], "{out}");
    assert_eq!(tolerances("grad rnn.weight_hh_l1"), ["1e-4"], "{out}");
    if out.contains("(emulated)") {
        // Lavapipe's 32 KiB do not hold the tile (a driver that reports 46096 bytes or more
        // runs it).
        let o = wgrnn_env(&args(""), &emulate);
        let err = stderr(&o);
        assert!(
            stdout(&o).contains(" 0 FAILED")
                || (!o.status.success()
                    && err.contains("--gemm tensor-split: the split tile needs 46096 bytes")
                    && err.contains("bytes of workgroup memory and the kernels are laid out")),
            "{err}"
        );
        let o = wgrnn(&args(""));
        let err = stderr(&o);
        assert!(
            !o.status.success()
                && err.contains("--gemm tensor-split: adapter")
                && err.contains("has no tensor-core matrix products"),
            "{err}"
        );
    }
    // The recurrent steps' products likewise (`--step-kernel tensor-split`), in any
    // workgroup memory (narrower tiles or fewer K slices where it is short).
    let steps = stack_check("gru", &["--step-kernel", "tensor-split"]);
    let o = wgrnn_env(&steps, &emulate);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}\n{}", stderr(&o));
    assert!(out.contains("steps=tensor-split"), "{out}");
    assert!(
        out.contains("; tensor-core recurrent steps in split f16 halves (f32 accuracy)"),
        "{out}"
    );
    assert!(out.contains(" 0 FAILED"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("outputs") && l.contains(" 1e-5 ")),
        "{out}"
    );
    if out.contains("(emulated)") {
        let err = stderr(&wgrnn(&steps));
        assert!(
            err.contains("--step-kernel tensor-split: adapter")
                && err.contains("has no tensor-core matrix products"),
            "{err}"
        );
    }
}

/// `bench --tune` measures every kernel choice on two small configurations, stores the
/// fastest for this adapter in the table named by WGRNN_TUNING_FILE, overall and per shape,
/// and later runs start from it (unless WGRNN_TUNING=off), from their own shape's choice
/// where the table has it or a near one; a flag still overrides it.
#[test]
fn tune_writes_the_table_and_later_runs_use_it() {
    let table = temp_path("tuning.json");
    let _ = std::fs::remove_file(&table);
    let file = table.to_str().expect("utf-8 path");
    let on = [("WGRNN_TUNING", "on"), ("WGRNN_TUNING_FILE", file)];
    let suite = temp_path("tune-suite.tsv");
    std::fs::write(
        &suite,
        "three lstm 1 24 8 3 4 uni\nsixteen lstm 1 24 8 16 4 uni\n",
    )
    .expect("suite file");
    let suite = suite.to_str().expect("utf-8 path");
    let out = wgrnn_env(
        &[
            "bench", "--tune", "--suite", suite, "--warmup", "1", "--reps", "1",
        ],
        &on,
    );
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    // Twenty single-axis candidates on each configuration, each timed, then the ranking.
    assert!(text.matches(" ms\n").count() >= 40, "{text}");
    let chosen = text
        .lines()
        .find_map(|l| l.strip_prefix("chosen: "))
        .and_then(|l| l.split(';').next())
        .expect("a chosen line")
        .to_string();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&table).expect("the table was written"))
            .expect("the table is JSON");
    let entries = json["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 1, "{json}");
    // Twenty candidates, and a twenty-first where the best of each axis together is a new
    // one.
    let measured = entries[0]["measured"].as_array().map_or(0, Vec::len);
    assert!(measured == 20 || measured == 21, "{json}");
    assert_eq!(
        entries[0]["measured"][0]["variant"],
        chosen.as_str(),
        "fastest first"
    );
    // Each configuration's own choice, by shape; a check of that shape (or within a factor
    // of 2 of it) starts from it and says so.
    let shapes = entries[0]["shapes"].as_array().expect("shapes");
    let batches: Vec<u64> = shapes
        .iter()
        .filter_map(|c| c["shape"]["batch"].as_u64())
        .collect();
    assert_eq!(batches, [3, 16], "{json}");
    for (batch, tuned) in [
        ("3", "batch 3"),
        ("2", "batch 3"),
        ("16", "batch 16"),
        ("8", "batch 16"),
    ] {
        let args = [
            "check", "--hidden", "24", "--input", "8", "--batch", batch, "--steps", "1",
        ];
        let o = wgrnn_env(&args, &on);
        let t = stdout(&o);
        assert!(
            o.status.success() && t.contains(" 0 FAILED"),
            "{t}{}",
            stderr(&o)
        );
        let own = shapes
            .iter()
            .find(|c| format!("batch {}", c["shape"]["batch"]) == tuned)
            .expect("the tuned shape");
        let tuning: wgrnn::backend::wgpu::Tuning =
            serde_json::from_value(own["tuning"].clone()).expect("a tuning");
        let want = format!(
            "kernels: {} (from the autotune table {file}, tuned on 4 gates, 1x24, {tuned});",
            tuning.label()
        );
        assert!(t.contains(&want), "batch {batch}: {t}\nwanted {want}");
    }
    // A later check starts from the chosen kernels and says so.
    let check = |extra: &[&str], envs: &[(&str, &str)]| {
        let mut args = vec!["check", "--cell", "gru", "--steps", "1"];
        args.extend_from_slice(extra);
        let o = wgrnn_env(&args, envs);
        let t = stdout(&o);
        assert!(
            o.status.success() && t.contains(" 0 FAILED"),
            "{t}{}",
            stderr(&o)
        );
        t
    };
    let t = check(&[], &on);
    assert!(
        t.contains(&format!(
            "kernels: {chosen} (from the autotune table {file})"
        )),
        "{t}"
    );
    let t = check(&["--step-kernel", "rowwise"], &on);
    assert!(t.contains("kernels: steps=rowwise"), "{t}");
    // The entry holds what was measured at f32; an f16 run starts from the defaults.
    assert_eq!(entries[0]["precision"], "f32", "{json}");
    let t = check(&["--precision", "f16"], &on);
    assert!(!t.contains("from the autotune table"), "{t}");
    // A tune at f16 adds its own entry, which f16 runs then start from; f32's stays.
    let out = wgrnn_env(
        &[
            "bench",
            "--tune",
            "--precision",
            "f16",
            "--hidden",
            "24",
            "--input",
            "8",
            "--batch",
            "3",
            "--seq",
            "4",
            "--warmup",
            "1",
            "--reps",
            "1",
        ],
        &on,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("(the entry for --precision f16)"),
        "{}",
        stdout(&out)
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&table).expect("the table")).expect("JSON");
    let precisions: Vec<&str> = json["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["precision"].as_str())
        .collect();
    assert_eq!(precisions, ["f32", "f16"], "{json}");
    let t = check(&["--precision", "f16"], &on);
    assert!(t.contains("(from the autotune table"), "{t}");
    let t = check(&[], &on);
    assert!(
        t.contains(&format!(
            "kernels: {chosen} (from the autotune table {file})"
        )),
        "{t}"
    );
    let t = check(&[], &[("WGRNN_TUNING_FILE", file)]);
    assert!(
        t.contains("kernels: steps=auto units=auto gemm=auto checked;"),
        "WGRNN_TUNING=off: {t}"
    );
    // A corrupt table is reported and ignored.
    std::fs::write(&table, "not json").expect("write");
    let o = wgrnn_env(&["check", "--cell", "gru", "--steps", "1"], &on);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("is not a wgrnn tuning table"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn check_gru_jordan_and_headless() {
    ok(&[
        "check",
        "--cell",
        "gru",
        "--gru-variant",
        "reset-before",
        "--task",
        "regression",
        "--hidden",
        "3",
        "--input",
        "2",
        "--lengths",
        "3,2",
    ]);
    ok(&[
        "check", "--cell", "jordan", "--layers", "2", "--hidden", "3", "--input", "2", "--seq",
        "3", "--batch", "2",
    ]);
    ok(&[
        "check",
        "--cell",
        "rnn-relu",
        "--task",
        "none",
        "--hidden",
        "3",
        "--input",
        "2",
        "--lengths",
        "2,3",
    ]);
}

#[test]
fn check_from_a_toml_config() {
    let path = temp_path("net.toml");
    std::fs::write(
        &path,
        r#"
[input]
kind = "embedding"
vocab = 5
dim = 3

[[layers]]
hidden = 3
dropout = 0.25
cell = { kind = "lstm" }

[[layers]]
hidden = 2
cell = { kind = "gru" }

[head]
classes = 2
task = { kind = "classification", pooling = "mean" }
"#,
    )
    .expect("write the config");
    let p = path.to_string_lossy().into_owned();
    let out = ok(&["check", "--config", &p, "--lengths", "3,1", "--steps", "1"]);
    assert!(out.contains("grad embedding.weight"), "{out}");
    assert!(out.contains("grad encoded inputs"), "{out}");
}

/// A tolerance of 0 must fail: the GPU and the CPU never agree to the last bit everywhere.
#[test]
fn check_can_fail() {
    let o = fails(
        &[
            "check",
            "--cell",
            "rnn-tanh",
            "--hidden",
            "3",
            "--input",
            "2",
            "--lengths",
            "3,2",
            "--tolerance",
            "0",
        ],
        "exceed the tolerance",
    );
    assert!(stdout(&o).contains("FAIL"), "{}", stdout(&o));
}

/// The CPU f64 candidate needs no GPU: the comparison machinery itself, end to end.
#[test]
fn check_against_cpu64() {
    let out = ok(&[
        "check",
        "--candidate",
        "cpu64",
        "--cell",
        "gru",
        "--hidden",
        "3",
        "--input",
        "2",
    ]);
    assert!(out.contains("candidate: cpu (f64)"), "{out}");
    fails(
        &[
            "check",
            "--candidate",
            "cpu64",
            "--hidden",
            "3",
            "--tolerance",
            "0",
        ],
        "exceed the tolerance",
    );
}

#[test]
fn bench_writes_comparable_json() {
    let path = temp_path("bench.jsonl");
    let p = path.to_string_lossy().into_owned();
    let out = ok(&[
        "bench", "--cell", "lstm", "--layers", "1", "--hidden", "4", "--input", "3", "--batch",
        "2", "--seq", "3", "--warmup", "1", "--reps", "2", "--json", &p,
    ]);
    assert!(out.contains("train step"), "{out}");
    let text = std::fs::read_to_string(&path).expect("the JSON file");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text}");
    let j: serde_json::Value = serde_json::from_str(lines[0]).expect("one JSON object");
    assert_eq!(j["engine"], "wgrnn");
    assert_eq!(j["kind"], "lstm");
    for (k, v) in [
        ("layers", 1),
        ("hidden", 4),
        ("input", 3),
        ("batch", 2),
        ("seq", 3),
    ] {
        assert_eq!(j[k], v, "{k}");
    }
    assert_eq!(j["bidirectional"], false);
    for k in [
        "forward_ms",
        "train_step_ms",
        "record_ms",
        "tokens_per_s",
        "peak_mem_bytes",
        "total_mem_bytes",
    ] {
        let v = j[k].as_f64().unwrap_or(-1.0);
        assert!(v > 0.0, "{k} = {} in {text}", j[k]);
    }
    assert!(j["train_tflops"].as_f64().is_some_and(|v| v >= 0.0));
    assert!(j["peak_mem_mb"].as_f64().is_some_and(|v| v >= 0.0));
    assert!(j["dispatches_per_step"].as_f64().is_some_and(|v| v >= 1.0));
    // Fewer dispatches than the first piece of 32: the step is one submission.
    assert!(
        j["dispatches_per_step"].as_f64().is_some_and(|v| v < 32.0),
        "{text}"
    );
    assert_eq!(j["submissions_per_step"].as_f64(), Some(1.0), "{text}");
    assert!(
        j["record_ms"].as_f64() <= j["train_step_ms"].as_f64(),
        "the host's part of a step is within it: {text}"
    );
    // Lavapipe has timestamp queries: the per-kernel table is printed and in the JSON, and
    // it accounts for every dispatch of a step.
    assert!(
        out.contains("lstm_cell_gemv.fwd_step") && out.contains("GB/s"),
        "{out}"
    );
    let kernels = j["kernels"].as_array().expect("a kernels array");
    let calls: f64 = kernels.iter().filter_map(|k| k["calls"].as_f64()).sum();
    assert_eq!(Some(calls), j["dispatches_per_step"].as_f64(), "{text}");
    // Two sequences: the matrix-vector step products by default.
    let fwd = kernels
        .iter()
        .find(|k| k["kernel"] == "lstm_cell_gemv.fwd_step_tiled")
        .expect("the LSTM forward step");
    assert_eq!(fwd["calls"], 3, "one per time step");
    assert!(fwd["ms"].as_f64().is_some_and(|v| v > 0.0), "{text}");
}

#[test]
fn bench_takes_the_matrix_vector_steps_at_a_few_sequences() {
    // By default up to 4 sequences run the recurrent products as matrix-vector products
    // (`Tuning::gemv_at`), 5 the f32 tiles; an explicit kernel holds at every batch.
    for (batch, flags, gemv) in [
        ("4", &[][..], true),
        ("5", &[][..], false),
        ("4", &["--step-kernel", "tiled"][..], false),
        ("4", &["--step-units", "16"][..], false),
        ("5", &["--step-kernel", "gemv"][..], true),
    ] {
        let name = format!("gemv-auto-{batch}-{}.jsonl", flags.len());
        let args = [
            &[
                "--cell", "gru", "--hidden", "6", "--input", "3", "--seq", "2", "--warmup", "0",
                "--reps", "1", "--batch", batch,
            ][..],
            flags,
        ]
        .concat();
        let (out, j) = bench_json(&name, &args);
        let names: Vec<&str> = j["kernels"]
            .as_array()
            .expect("a kernels array")
            .iter()
            .filter_map(|k| k["kernel"].as_str())
            .collect();
        let (want, not) = if gemv {
            ("gru_cell_gemv.", "gru_cell.")
        } else {
            ("gru_cell.", "gru_cell_gemv.")
        };
        for entry in ["fwd_step_tiled", "bwd_step_tiled"] {
            assert!(
                names.contains(&format!("{want}{entry}").as_str())
                    && !names.contains(&format!("{not}{entry}").as_str()),
                "batch {batch} {flags:?}: {names:?}\n{out}"
            );
        }
        // The JSON says where the defaults took them.
        let variant = j["variant"].as_str().unwrap_or_default();
        assert_eq!(
            variant.ends_with(" gemv-steps"),
            gemv && flags.is_empty(),
            "{variant}"
        );
    }
    let out = ok(&[
        "check",
        "--cell",
        "gru",
        "--hidden",
        "6",
        "--input",
        "3",
        "--lengths",
        "3,2",
        "--steps",
        "1",
    ]);
    assert!(out.contains("; matrix-vector steps at this batch"), "{out}");
}

#[test]
fn bench_and_check_say_where_the_grid_chose_k_slices() {
    // 6 units x 8 sequences is a grid of one workgroup: the defaults give the f32 tiles
    // four K slices (`step_tiles::plain_tiles`); slices asked for, or a kernel without them, are
    // no choice of the grid's.
    for (flags, by_grid) in [
        (&[][..], true),
        (&["--step-kernel", "tiled"][..], true),
        (&["--step-k-split", "1"][..], false),
        (&["--step-k-split", "4"][..], false),
        (&["--step-kernel", "rowwise"][..], false),
        (&["--step-kernel", "blocked"][..], false),
    ] {
        let name = format!("k-slices-{}.jsonl", flags.join("-"));
        let args = [
            &[
                "--cell", "lstm", "--hidden", "6", "--input", "3", "--seq", "2", "--warmup", "0",
                "--reps", "1", "--batch", "8",
            ][..],
            flags,
        ]
        .concat();
        let (out, j) = bench_json(&name, &args);
        let variant = j["variant"].as_str().unwrap_or_default();
        assert_eq!(
            variant.ends_with(" k-slices=4"),
            by_grid,
            "{flags:?}: {variant}"
        );
        // The f32 tiles' layout, where they ran (lavapipe's 32 KiB: 32-row chunks at four
        // slices), in the JSON and after the summary.
        let four = "16 units x 16 sequences, 4 K slices, 32-row chunks (16 k steps forward), \
                    1 workgroup of 256 invocations";
        let one = "16 units x 16 sequences, 1 K slice, 64-row chunks (32 k steps forward), \
                   1 workgroup of 64 invocations";
        let want = match flags {
            [] | ["--step-kernel", "tiled"] | ["--step-k-split", "4"] => Some(four),
            ["--step-k-split", "1"] => Some(one),
            _ => None,
        };
        assert_eq!(j["step_tiles"].as_str(), want, "{flags:?}: {j}");
        if let Some(w) = want {
            assert!(out.contains(&format!("; step tiles: {w}")), "{out}");
        }
    }
    let check_at = |flags: &[&str]| {
        ok(&[
            &[
                "check",
                "--cell",
                "lstm",
                "--hidden",
                "6",
                "--input",
                "3",
                "--lengths",
                "3,2,1,3,2,1",
                "--steps",
                "1",
            ][..],
            flags,
        ]
        .concat())
    };
    assert!(check_at(&[]).contains("; 4 K slices at this grid"));
    let one = check_at(&["--step-k-split", "1"]);
    assert!(!one.contains("K slices at this grid"), "{one}");
    assert!(one.contains("ksplit=1"), "{one}");
    // The tensor-core steps take their K slices by the grid too (entry 51; emulated here),
    // and say so the same way, and whether they read W_hh from its f16 copy (entry 54: not
    // by default at this size, where it does not pay; when asked for, it does); chunk rows
    // stay a choice of the f32 tiles.
    let emulated = [("WGRNN_EMULATE_TENSOR_CORES", "1")];
    for (ks, copy, flags) in [
        (4, false, &["--step-kernel", "tensor"][..]),
        (
            1,
            false,
            &["--step-kernel", "tensor", "--step-k-split", "1"][..],
        ),
        (
            4,
            true,
            &["--step-kernel", "tensor", "--step-weights", "f16"][..],
        ),
    ] {
        let path = temp_path(&format!("k-slices-tensor-{ks}-{copy}.jsonl"));
        let p = path.to_string_lossy().into_owned();
        let args = [
            &[
                "bench", "--cell", "lstm", "--hidden", "6", "--input", "3", "--seq", "2",
                "--warmup", "0", "--reps", "1", "--batch", "8", "--json", &p,
            ][..],
            flags,
        ]
        .concat();
        let o = wgrnn_env(&args, &emulated);
        assert!(o.status.success(), "{}", stderr(&o));
        let text = std::fs::read_to_string(&path).expect("the JSON file");
        let j: serde_json::Value = serde_json::from_str(text.trim()).expect("one JSON object");
        let variant = j["variant"].as_str().unwrap_or_default();
        assert!(variant.contains("tensor-steps"), "{variant}");
        assert_eq!(variant.ends_with(" k-slices=4"), ks == 4, "{variant}");
        assert_eq!(variant.contains(" weights=f16 "), copy, "{variant}");
        let (s, inv) = if ks == 4 { ("s", 256) } else { ("", 64) };
        let how = if copy {
            " reading an f16 copy of W_hh"
        } else {
            ""
        };
        let want = format!(
            "tensor cores{how}, 16 units x 16 sequences, {ks} K slice{s}, 1 workgroup of \
             {inv} invocations"
        );
        assert_eq!(j["step_tiles"].as_str(), Some(want.as_str()), "{j}");
    }
    let o = wgrnn_env(
        &[
            "check",
            "--step-kernel",
            "tensor",
            "--step-chunk-rows",
            "16",
            "--steps",
            "1",
        ],
        &emulated,
    );
    let err = stderr(&o);
    assert!(
        !o.status.success()
            && err.contains("--step-chunk-rows 16: chunk rows are for the f32 tiled steps only")
            && err.contains("steps=tensor"),
        "{err}"
    );
}

#[test]
fn kernels_are_laid_out_for_the_workgroup_memory_asked() {
    // 32-unit tiles at 4 K slices: lavapipe's own 32 KiB hold two slices of them, laid out
    // for the H100's 48 KiB four, in 32-row chunks; 16 KiB hold no tiles (row-wise steps).
    // The forward in tiles of 16 units x 32 sequences (19 of them: 5 workgroups).
    let tiles = ["--cell", "lstm", "--hidden", "65", "--input", "3"];
    let tiles = [&tiles[..], &["--step-units", "32", "--step-k-split", "4"]].concat();
    for (bytes, want) in [
        (
            None,
            Some(
                "32 units x 16 sequences (forward 16 x 32 in 5), 2 K slices, 64-row chunks \
                 (32 k steps forward), 6 workgroups of 256 invocations",
            ),
        ),
        (
            Some("49152"),
            Some(
                "32 units x 16 sequences (forward 16 x 32 in 5), 4 K slices, 32-row chunks \
                 (16 k steps forward), 6 workgroups of 512 invocations",
            ),
        ),
        (Some("16384"), None),
    ] {
        let run = [
            "--seq", "2", "--warmup", "0", "--reps", "1", "--batch", "19",
        ];
        let mut args = [&tiles[..], &run].concat();
        if let Some(b) = bytes {
            args.extend(["--workgroup-memory", b]);
        }
        let name = format!("workgroup-memory-{}.jsonl", bytes.unwrap_or("own"));
        let (_, j) = bench_json(&name, &args);
        assert_eq!(j["step_tiles"].as_str(), want, "{bytes:?}: {j}");
        let variant = j["variant"].as_str().unwrap_or_default();
        if let Some(b) = bytes {
            assert!(
                variant.ends_with(&format!("workgroup-memory={b}")),
                "{variant}"
            );
        }
    }
    // And the H100's layout agrees with the CPU reference.
    let lengths = "7,1,4,7,2,5,7,1,4,7,2,5,7,1,4,7,2,5,3";
    let check = ["check", "--lengths", lengths, "--steps", "1"];
    let out = ok(&[&check[..], &tiles, &["--workgroup-memory", "49152"]].concat());
    assert!(
        out.contains("ksplit=4") && out.contains("workgroup-memory=49152"),
        "{out}"
    );
    assert!(out.contains(" 0 FAILED"), "{out}");
}

/// `wgrnn bench ARGS --json FILE` (FILE named `name` in the temporary directory): what it
/// printed, and the one JSON object it wrote.
fn bench_json(name: &str, args: &[&str]) -> (String, serde_json::Value) {
    let path = temp_path(name);
    let p = path.to_string_lossy().into_owned();
    let out = ok(&[&["bench"], args, &["--json", &p]].concat());
    let text = std::fs::read_to_string(&path).expect("the JSON file");
    let j: serde_json::Value = serde_json::from_str(text.trim()).expect("one JSON object");
    (out, j)
}

/// `--step-k-split measured` (what `auto` does on a GPU): the bench's steps are timed at 1, 2
/// and 4 K slices aside, each way, and say so (the step tiles as "measured", the rule's
/// layout beside it, the variant, the measurements in the JSON and after the summary);
/// `rules` is the grid's rule without measuring; `check` lists what it measured, and agrees
/// with the CPU reference; a count that is none of the choices is refused by name.
#[test]
fn bench_and_check_with_measured_k_slices() {
    let args = |by: &'static str| {
        vec![
            "--cell",
            "lstm",
            "--hidden",
            "6",
            "--input",
            "3",
            "--seq",
            "2",
            "--warmup",
            "0",
            "--reps",
            "1",
            "--batch",
            "8",
            "--step-k-split",
            by,
        ]
    };
    let rule = "16 units x 16 sequences, 4 K slices, 32-row chunks (16 k steps forward), \
                1 workgroup of 256 invocations";
    let (out, j) = bench_json("k-slices-measured.jsonl", &args("measured"));
    let variant = j["variant"].as_str().unwrap_or_default();
    assert!(variant.contains("ksplit=measured"), "{variant}");
    assert!(variant.ends_with(" k-slices=measured"), "{variant}");
    let tiles = format!("tiles and K slices measured per step shape (by the rule: {rule})");
    assert_eq!(j["step_tiles"].as_str(), Some(tiles.as_str()), "{j}");
    let lines: Vec<&str> = j["slices_measured"]
        .as_array()
        .expect("slices_measured")
        .iter()
        .filter_map(|l| l.as_str())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    for (line, pass) in lines.iter().zip(["forward", "backward"]) {
        assert!(
            line.starts_with(&format!("{pass} lstm 6, 8 sequences: ")),
            "{line}"
        );
        for ks in ["ksplit=1 ", "ksplit=2 ", "ksplit=4 "] {
            assert!(line.contains(ks), "{line}");
        }
        assert!(
            out.contains(&format!("\n  step tiles measured, {line}")),
            "{out}"
        );
    }
    let (_, j) = bench_json("k-slices-rules.jsonl", &args("rules"));
    assert_eq!(j["step_tiles"].as_str(), Some(rule), "{j}");
    assert!(
        j["variant"]
            .as_str()
            .unwrap_or_default()
            .ends_with(" k-slices=4")
    );
    assert_eq!(
        j["slices_measured"].as_array().map(Vec::len),
        Some(0),
        "{j}"
    );
    let check = ok(&[
        "check",
        "--cell",
        "gru",
        "--layers",
        "2",
        "--hidden",
        "20",
        "--input",
        "3",
        "--lengths",
        "3,2,1,3,2,1",
        "--steps",
        "2",
        "--step-k-split",
        "measured",
    ]);
    assert!(check.contains("ksplit=measured"), "{check}");
    assert!(
        check.contains("; step tiles and K slices measured per step shape"),
        "{check}"
    );
    assert!(check.contains(" 0 FAILED"), "{check}");
    for pass in ["forward", "backward"] {
        let head = format!("step tiles measured, {pass} gru 20, 6 sequences: ");
        assert!(
            check.lines().any(|l| l.starts_with(&head)),
            "no line {head}: {check}"
        );
    }
    let o = wgrnn(&["check", "--step-k-split", "3"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("'3'") && err.contains("--step-k-split"),
        "{err}"
    );
}

#[test]
fn bench_submits_in_the_pieces_asked_for() {
    let run = |first: &str| -> (String, serde_json::Value) {
        bench_json(
            &format!("bench_pieces_{first}.jsonl"),
            &[
                "--cell",
                "gru",
                "--layers",
                "2",
                "--hidden",
                "4",
                "--input",
                "3",
                "--batch",
                "2",
                "--seq",
                "6",
                "--warmup",
                "1",
                "--reps",
                "1",
                "--no-kernels",
                "--submit-first",
                first,
            ],
        )
    };
    let (out, whole) = run("0");
    assert!(out.contains("1.00 submissions/step"), "{out}");
    assert!(
        whole["variant"]
            .as_str()
            .is_some_and(|v| v.split(' ').any(|w| w == "submit=whole")),
        "{whole}"
    );
    assert_eq!(whole["submissions_per_step"].as_f64(), Some(1.0), "{whole}");
    let (_, split) = run("4");
    assert!(
        split["variant"]
            .as_str()
            .is_some_and(|v| v.split(' ').any(|w| w == "submit=4")),
        "{split}"
    );
    let dispatches = split["dispatches_per_step"].as_f64().expect("dispatches");
    assert_eq!(Some(dispatches), whole["dispatches_per_step"].as_f64());
    // Pieces of 4, 8, 16, ... and the last one with the read-back.
    let (mut piece, mut done, mut want) = (4.0, 0.0, 1.0);
    while done + piece <= dispatches {
        done += piece;
        want += 1.0;
        piece *= 2.0;
    }
    assert!(want >= 3.0, "{dispatches} dispatches");
    assert_eq!(
        split["submissions_per_step"].as_f64(),
        Some(want),
        "{split}"
    );
}

/// The floats one more time step adds to a training step's peak, per sequence and hidden
/// unit, of a one-layer `cell` (hidden = input = 32, batch 8) with the layer caches in
/// `precision`.
fn peak_floats_per_row_unit(cell: &str, precision: &str) -> f64 {
    let peak = |seq: &str| {
        let (_, j) = bench_json(
            &format!("peak_{cell}_{precision}_{seq}.jsonl"),
            &[
                "--cell",
                cell,
                "--layers",
                "1",
                "--hidden",
                "32",
                "--input",
                "32",
                "--batch",
                "8",
                "--seq",
                seq,
                "--warmup",
                "0",
                "--reps",
                "1",
                "--no-kernels",
                "--precision",
                precision,
            ],
        );
        j["peak_mem_bytes"].as_f64().expect("peak_mem_bytes")
    };
    (peak("8") - peak("4")) / 4.0 / (8.0 * 32.0) / 4.0
}

/// What a training step holds per time step is what the backward must keep and no more: the
/// LSTM cache's cell state and four gate activations (5 floats per sequence and unit), the
/// layer output that also holds h (1), the input (1) and the output's gradient (1); the GRU
/// cache's r, z, n, hn (4) and its backward scratch (1) instead of the LSTM's 5. The input
/// projections and their gradients live in the cache's gate slots (f32 caches), so a
/// gate-wide buffer of their own (4 more for the LSTM, 6 for the GRU) fails the upper bound;
/// anything not counted fails the lower one. f16 caches halve the LSTM's 5 and keep the gate
/// sections in f32 (4).
#[test]
fn bench_peak_memory_is_what_the_backward_keeps() {
    for (cell, precision, low) in [
        ("lstm", "f32", 8.0),
        ("gru", "f32", 8.0),
        ("lstm", "f16", 9.5),
    ] {
        let slope = peak_floats_per_row_unit(cell, precision);
        assert!(
            (low..low + 0.5).contains(&slope),
            "{cell} {precision}: {slope} floats per sequence and unit"
        );
    }
}

#[test]
fn bench_suite_file() {
    let suite = temp_path("suite.tsv");
    std::fs::write(
        &suite,
        "# name kind layers hidden input batch seq direction\n\
         a gru 1 3 2 2 3 uni\n\
         b rnn 2 3 2 1 2 bi\n",
    )
    .expect("write the suite");
    let json = temp_path("suite.jsonl");
    let (s, j) = (
        suite.to_string_lossy().into_owned(),
        json.to_string_lossy().into_owned(),
    );
    ok(&[
        "bench", "--suite", &s, "--device", "cpu", "--warmup", "1", "--reps", "2", "--json", &j,
    ]);
    let text = std::fs::read_to_string(&json).expect("the JSON file");
    let rows: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["name"], "a");
    assert_eq!(rows[1]["kind"], "rnn");
    assert_eq!(rows[1]["bidirectional"], true);
    ok(&[
        "bench", "--suite", &s, "--only", "b", "--device", "cpu", "--warmup", "0", "--reps", "1",
    ]);
    fails(
        &["bench", "--suite", &s, "--only", "zz", "--device", "cpu"],
        "no entry named `zz`",
    );
}

#[test]
fn train_on_the_cpu() {
    let run = temp_path("train-cpu");
    let _ = std::fs::remove_dir_all(&run);
    let out = ok(&[
        "train",
        "--task",
        "slots",
        "--device",
        "cpu",
        "--epochs",
        "1",
        "--hidden",
        "4",
        "--run-dir",
        &run.to_string_lossy(),
    ]);
    assert!(out.contains("device cpu"), "{out}");
    assert!(out.contains("accuracy"), "{out}");
}

/// `train` takes the GPU kernel flags; on the CPU backend they are refused by name, before
/// any training starts.
#[test]
fn train_kernel_flags_need_the_gpu() {
    let run = temp_path("train-cpu-kernels");
    let _ = std::fs::remove_dir_all(&run);
    fails(
        &[
            "train",
            "--task",
            "slots",
            "--device",
            "cpu",
            "--gemm",
            "big",
            "--run-dir",
            &run.to_string_lossy(),
        ],
        "need the GPU (--device gpu)",
    );
    assert!(!run.exists(), "nothing is written before the refusal");
}

/// `--precision f16`: check passes at its stated tolerances and says so; the CPU and the f64
/// reference refuse it with a message naming the flag; bench labels its results.
#[test]
fn precision_f16_on_check_bench_and_train() {
    let out = ok(&[
        "check",
        "--cell",
        "lstm",
        "--layers",
        "2",
        "--hidden",
        "20",
        "--lengths",
        "9,3,7,1",
        "--precision",
        "f16",
    ]);
    assert!(out.contains("precision: F16"), "{out}");
    assert!(out.contains("4e-3") && out.contains(" 0 FAILED"), "{out}");
    fails(
        &["check", "--precision", "f16", "--candidate", "cpu64"],
        "--precision f16",
    );
    let run = temp_path("train-f16-cpu");
    fails(
        &[
            "train",
            "--task",
            "slots",
            "--device",
            "cpu",
            "--precision",
            "f16",
            "--run-dir",
            &run.to_string_lossy(),
        ],
        "--precision f16",
    );
    fails(
        &[
            "bench",
            "--device",
            "cpu",
            "--precision",
            "f16",
            "--reps",
            "1",
        ],
        "--precision f16",
    );
    let (_, v) = bench_json(
        "bench-f16.jsonl",
        &[
            "--hidden",
            "16",
            "--input",
            "8",
            "--batch",
            "2",
            "--seq",
            "3",
            "--warmup",
            "0",
            "--reps",
            "1",
            "--no-kernels",
            "--precision",
            "f16",
        ],
    );
    assert!(
        v["variant"]
            .as_str()
            .is_some_and(|s| s.split(' ').any(|w| w == "f16-caches")),
        "{v}"
    );
}

/// `wgrnn report` turns a suite run's JSON lines and the reference script's into the suite
/// table: the reference lines here are ours with the time doubled (fp32) or kept (tf32), so
/// the ratios are known.
#[test]
fn report_makes_the_suite_table_from_json_lines() {
    let suite = temp_path("report-suite.tsv");
    std::fs::write(
        &suite,
        "flagship lstm 2 8 8 2 4 uni\ngru4 gru 1 8 8 2 4 bi\n",
    )
    .expect("suite");
    let ours = temp_path("report-ours.jsonl");
    ok(&[
        "bench",
        "--suite",
        &suite.to_string_lossy(),
        "--warmup",
        "0",
        "--reps",
        "1",
        "--profile-steps",
        "1",
        "--gemm",
        "measured",
        "--json",
        &ours.to_string_lossy(),
    ]);
    let mut torch = String::from("{\"device\": \"reference header line\"}\n");
    for line in std::fs::read_to_string(&ours).expect("ours").lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("json");
        for (tf32, factor) in [(false, 2.0), (true, 1.0)] {
            let mut t = v.clone();
            t["engine"] = "pytorch-cudnn".into();
            t["tf32"] = tf32.into();
            t["train_step_ms"] = (v["train_step_ms"].as_f64().expect("ms") * factor).into();
            t["peak_mem_mb"] = 123.0.into();
            torch.push_str(&format!("{t}\n"));
        }
    }
    let torch_path = temp_path("report-torch.jsonl");
    std::fs::write(&torch_path, torch).expect("torch");
    let out = ok(&[
        "report",
        "--ours",
        &ours.to_string_lossy(),
        "--torch",
        &torch_path.to_string_lossy(),
        "--variant",
        &format!("again={}", ours.to_string_lossy()),
        "--kernels",
        "flagship",
    ]);
    let rows: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("| flagship |") || l.starts_with("| gru4 |"))
        .collect();
    // The suite table's rows, then (under --gemm measured) a row per measured shape class
    // with the tile taken, the fastest of its times.
    let (rows, measured): (Vec<&str>, Vec<&str>) =
        rows.into_iter().partition(|r| r.matches('|').count() > 5);
    assert_eq!(rows.len(), 2, "{out}");
    assert!(!measured.is_empty(), "{out}");
    for row in measured {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        assert!(cells[4].starts_with(&format!("{} ", cells[3])), "{row}");
    }
    for row in rows {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        // config, ours, host, fp32, ratio, target, met, tf32, ratio to tf32, peak ours, peak
        // torch, again
        assert_eq!(
            (cells[5], cells[7], cells[9]),
            ("0.50", "yes", "1.00"),
            "{row}"
        );
        assert_eq!(cells[11], "123.0", "{row}");
        assert_eq!(
            cells[2], cells[12],
            "the variant column repeats ours: {row}"
        );
        let (step, host): (f64, f64) = (
            cells[2].parse().expect("our ms"),
            cells[3].parse().expect("the host's ms"),
        );
        assert!(host > 0.0 && host <= step, "{row}");
    }
    assert!(out.contains("| lstm_cell_gemv.fwd_step_tiled |"), "{out}");
    fails(
        &[
            "report",
            "--ours",
            "/nonexistent/w.jsonl",
            "--torch",
            "/nonexistent/t.jsonl",
        ],
        "/nonexistent/w.jsonl",
    );
}

#[test]
fn bad_input_is_a_clear_error() {
    // Unknown cell: clap names the allowed values.
    let o = fails(&["check", "--cell", "lstn"], "possible values");
    assert_eq!(o.status.code(), Some(2));
    fails(&["bench", "--cell", "transformer"], "invalid value");
    // Lengths longer than the padded sequence.
    fails(
        &["check", "--seq", "3", "--lengths", "5,1"],
        "longer than --seq 3",
    );
    fails(&["check", "--lengths", "2,0"], "length 0");
    fails(&["check", "--lengths", "2,x"], "not a whole number");
    fails(&["check", "--batch", "3", "--lengths", "2,1"], "--batch 3");
    // Missing files.
    fails(
        &["check", "--config", "/nonexistent/wgrnn/net.toml"],
        "reading the network config /nonexistent/wgrnn/net.toml",
    );
    fails(
        &["bench", "--suite", "/nonexistent/wgrnn/suite.tsv"],
        "reading the suite",
    );
    // A config that does not validate names its field.
    let path = temp_path("bad.toml");
    std::fs::write(
        &path,
        "input = { kind = \"dense\", features = 2 }\n[[layers]]\nhidden = 0\ncell = { kind = \"gru\" }\n",
    )
    .expect("write the config");
    fails(
        &["check", "--config", &path.to_string_lossy()],
        "layers[0].hidden",
    );
    // Bad suite lines name the line.
    let suite = temp_path("bad_suite.tsv");
    std::fs::write(&suite, "x lstm 1 2 3 4 5 sideways\n").expect("write the suite");
    fails(
        &[
            "bench",
            "--suite",
            &suite.to_string_lossy(),
            "--device",
            "cpu",
        ],
        "suite line 1",
    );
    // Flag combinations.
    fails(&["check", "--cell", "gru", "--peephole"], "--peephole");
    fails(&["check", "--cell", "lstm", "--proj", "9"], "proj");
    fails(
        &["check", "--cell", "jordan", "--bidirectional"],
        "unidirectional",
    );
    fails(
        &["train", "--device", "cpu", "--adapter", "0"],
        "--device cpu",
    );
    fails(&["bench", "--reps", "0", "--device", "cpu"], "--reps");
    fails(&["bench", "--hidden", "0", "--device", "cpu"], "hidden");
    fails(
        &[
            "check",
            "--adapter",
            "no-such-adapter-anywhere",
            "--hidden",
            "2",
        ],
        "no adapter matches",
    );
}

#[test]
fn help_has_examples() {
    for verb in ["devices", "train", "check", "bench"] {
        let out = ok(&[verb, "--help"]);
        assert!(out.contains("Example"), "{verb} --help:\n{out}");
    }
    let bench = ok(&["bench", "--help"]);
    assert!(bench.contains("per-kernel table"), "{bench}");
}

/// With no adapter at all: `devices` and GPU commands fail with the install hint, `auto`
/// falls back to the CPU with a notice.
#[test]
fn no_adapter() {
    let o = wgrnn_env(&["devices"], NO_ADAPTER);
    assert!(!o.status.success(), "{}", stdout(&o));
    assert!(stderr(&o).contains("mesa-vulkan-drivers"), "{}", stderr(&o));
    let o = wgrnn_env(&["check", "--hidden", "2"], NO_ADAPTER);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("no GPU adapter found"),
        "{}",
        stderr(&o)
    );
    let run = temp_path("train-no-adapter");
    let _ = std::fs::remove_dir_all(&run);
    let run = run.to_string_lossy();
    let args = [
        "train",
        "--task",
        "slots",
        "--epochs",
        "1",
        "--hidden",
        "3",
        "--run-dir",
        &run,
    ];
    let o = wgrnn_env(&args, NO_ADAPTER);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("running on the CPU"), "{}", stderr(&o));
    assert!(stdout(&o).contains("device cpu"), "{}", stdout(&o));
    let o = wgrnn_env(&["bench", "--hidden", "2", "--reps", "1"], NO_ADAPTER);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("no GPU adapter found"),
        "{}",
        stderr(&o)
    );
}

/// `train --device auto` (the default) works whatever the machine has; `--device gpu` trains
/// on the adapter.
#[test]
fn train_auto_and_gpu() {
    let (auto_dir, gpu_dir) = (temp_path("train-auto"), temp_path("train-gpu"));
    let _ = std::fs::remove_dir_all(&auto_dir);
    let _ = std::fs::remove_dir_all(&gpu_dir);
    let args = [
        "--task",
        "slots",
        "--epochs",
        "1",
        "--hidden",
        "3",
        "--max-steps",
        "4",
    ];
    let auto_dir = auto_dir.to_string_lossy();
    let auto: Vec<&str> = ["train", "--run-dir", &auto_dir]
        .iter()
        .chain(&args)
        .copied()
        .collect();
    let out = ok(&auto);
    assert!(out.contains("--max-steps reached"), "{out}");
    let gpu_dir = gpu_dir.to_string_lossy();
    let gpu: Vec<&str> = [
        "train",
        "--device",
        "gpu",
        "--adapter",
        "0",
        "--run-dir",
        &gpu_dir,
    ]
    .iter()
    .chain(&args)
    .copied()
    .collect();
    let out = ok(&gpu);
    assert!(!out.contains("device cpu"), "{out}");
    // With f16 caches and the tensor-core products (emulated where the adapter has none).
    let tensor_dir = temp_path("train-tensor");
    let _ = std::fs::remove_dir_all(&tensor_dir);
    let tensor_dir = tensor_dir.to_string_lossy();
    let tensor: Vec<&str> = [
        "train",
        "--device",
        "gpu",
        "--precision",
        "f16",
        "--gemm",
        "tensor",
        "--run-dir",
        &tensor_dir,
    ]
    .iter()
    .chain(&args)
    .copied()
    .collect();
    let o = wgrnn_env(&tensor, &[("WGRNN_EMULATE_TENSOR_CORES", "1")]);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}\n{}", stderr(&o));
    assert!(out.contains("--max-steps reached"), "{out}");
    assert!(
        out.contains("f16 layer caches; tensor-core matrix products and recurrent steps"),
        "{out}"
    );
}

/// `bench --products` times each configuration's large products under every product tile
/// and names the kernel that ran: the 64x64, 128x128 and 256x128 tiles each where asked for,
/// a positive rate for each, one JSON line each; `--gemm` narrows it to one tile; the CPU
/// refuses it.
#[test]
fn bench_products_times_each_product_under_each_tile() {
    let suite = temp_path("products-suite.tsv");
    std::fs::write(&suite, "tiny lstm 2 24 16 8 5 uni\n").expect("suite file");
    let suite = suite.to_str().expect("utf-8 path");
    let json = temp_path("products.jsonl");
    let json = json.to_str().expect("utf-8 path");
    let out = ok(&[
        "bench",
        "--suite",
        suite,
        "--products",
        "--reps",
        "2",
        "--json",
        json,
    ]);
    // Layer 0's four products and the later layers' xp and dx (their dW_ih is layer 0's
    // dW_hh shape), under three tiles.
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(json)
        .expect("the JSON lines")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 6 * 3, "{out}");
    for l in &lines {
        let want = match l["tiles"].as_str() {
            Some("small") => "gemm.gemm",
            Some("big") => "gemm128.gemm128",
            Some("tall") => "gemm256.gemm256",
            other => panic!("unexpected tiles {other:?}"),
        };
        assert_eq!(l["kernel"], want, "{l}");
        let ms = l["ms"].as_f64().expect("ms");
        assert!(ms > 0.0 && ms.is_finite(), "{l}");
        assert!(l["tflops"].as_f64().is_some_and(|t| t >= 0.0), "{l}");
    }
    let dw = lines
        .iter()
        .find(|l| l["product"] == "dW_hh l0, dW_ih l1+")
        .expect("the shared weight-gradient shape");
    assert_eq!(
        (dw["m"].as_u64(), dw["n"].as_u64(), dw["k"].as_u64()),
        (Some(96), Some(24), Some(40))
    );
    assert_eq!(dw["a_transposed"], true);
    assert!(out.contains("gemm256.gemm256"), "{out}");
    // `report --products` makes the markdown table of them: a row per product, a TFLOP/s
    // column per tile.
    let table = ok(&["report", "--products", json]);
    assert_eq!(table.lines().count(), 2 + 6, "{table}");
    assert!(
        table.starts_with(
            "| config | product | m x n x k | A B | small TFLOP/s | big TFLOP/s | tall TFLOP/s | fastest |"
        ),
        "{table}"
    );
    assert!(
        table.contains("| tiny | dW_hh l0, dW_ih l1+ | 96 x 24 x 40 | TN |"),
        "{table}"
    );
    fails(&["report"], "--ours");
    let one = ok(&[
        "bench",
        "--suite",
        suite,
        "--products",
        "--reps",
        "1",
        "--gemm",
        "tall",
    ]);
    assert_eq!(one.matches("gemm256.gemm256").count(), 6, "{one}");
    assert!(!one.contains("gemm128.gemm128"), "{one}");
    fails(
        &["bench", "--products", "--device", "cpu"],
        "--products times GPU kernels",
    );
}

/// Runs the built binary with `args` and its stdout a pipe whose reader has gone away (as
/// under `| head` once head has quit).
fn wgrnn_closed_stdout(args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    Command::new(env!("CARGO_BIN_EXE_wgrnn"))
        .args(args)
        .env("WGRNN_TUNING", "off")
        .env("RUST_BACKTRACE", "0")
        .stdout(writer)
        .output()
        .expect("the wgrnn binary runs")
}

/// A reader that quits early (`wgrnn report | head`) ends a command that only prints, quietly
/// and with status 0, and does not stop a training run short of its checkpoints.
#[test]
fn a_closed_stdout_ends_printing_not_training() {
    let products = temp_path("closed-products.jsonl");
    let line = r#"{"a_transposed":false,"b_transposed":true,"config":"c","k":8,"kernel":"gemm.gemm","m":6,"ms":0.16,"n":32,"product":"xp l0","tflops":0.5,"tiles":"small"}"#;
    std::fs::write(&products, format!("{line}\n")).expect("products");
    let o = wgrnn_closed_stdout(&["report", "--products", &products.to_string_lossy()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(o.stderr.is_empty(), "{}", stderr(&o));

    let run = temp_path("train-closed-stdout");
    let _ = std::fs::remove_dir_all(&run);
    let o = wgrnn_closed_stdout(&[
        "train",
        "--task",
        "slots",
        "--device",
        "cpu",
        "--epochs",
        "1",
        "--hidden",
        "4",
        "--run-dir",
        &run.to_string_lossy(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    assert!(run.join("best.safetensors").is_file(), "{}", stderr(&o));
    assert!(run.join("metrics.csv").is_file(), "{}", stderr(&o));
}
