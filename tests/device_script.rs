//! `benches/device.sh`, the script a session runs on the lent GPU machine, run here with
//! stand-ins for the engine and the PyTorch reference: every part must call what it names
//! (a device call is scarce; a part that dies on a typo loses it), and a failing check must
//! be reported and fail its part.
#![cfg(unix)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A fresh directory in the temporary directory.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wgrnn-device-sh-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temporary directory");
    dir
}

/// Runs `device.sh parts` with a stand-in engine that appends its arguments to `calls.txt`
/// and fails when they contain `fail_on` (never, if empty).
fn run_parts(dir: &Path, parts: &[&str], fail_on: &str) -> Output {
    run_parts_with(dir, parts, fail_on, &[])
}

/// As [`run_parts`], with more environment variables.
fn run_parts_with(dir: &Path, parts: &[&str], fail_on: &str, env: &[(&str, &str)]) -> Output {
    let stub = dir.join("wgrnn-stub");
    std::fs::write(
        &stub,
        format!(
            "#!/bin/sh\necho \"$*\" >> {calls}\ncase \"$*\" in *'{fail_on}'*) [ -n '{fail_on}' ] && exit 1;; esac\necho stub output\n",
            calls = dir.join("calls.txt").display()
        ),
    )
    .expect("stub");
    std::fs::set_permissions(&stub, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let out = dir.join("out");
    std::fs::create_dir_all(&out).expect("out");
    Command::new("bash")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/device.sh"))
        .args(parts)
        .env("OUT", &out)
        .env("WGRNN", &stub)
        .env("SUITE", "suite.tsv")
        .env("TORCH_BENCH", format!("sh {}", stub.display()))
        .env("DEVICE_SH_PART", "1")
        .env("BUDGET", "600")
        .envs(env.iter().copied())
        .current_dir(dir)
        .output()
        .expect("bash runs")
}

fn calls(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("calls.txt")).unwrap_or_default()
}

#[test]
fn every_part_runs_what_it_names() {
    let dir = temp_dir("all");
    let o = run_parts(&dir, &["first", "tune", "tune-f16"], "");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "rc {:?}: {err}", o.status.code());
    assert!(!err.contains("command not found"), "{err}");
    let calls = calls(&dir);
    // check-new and check: every variant on every cell; first runs both.
    for variant in [
        "--gemm tall",
        "--step-kernel tensor --step-units 64",
        "--step-kernel tensor --step-units 32",
        "--step-kernel tensor --step-k-split 1",
        "--gemm tensor",
        "--gemm tensor-split",
        "--step-kernel tensor-split",
        "--step-kernel tensor --step-weights f16",
        "--step-chunk-rows 16",
        "--step-k-split 2 --step-units 64",
        "--step-k-split 1",
        "--precision f16 --step-kernel tiled",
        "--step-kernel gemv --unchecked",
    ] {
        for cell in ["lstm", "lstm --bidirectional", "gru", "rnn-tanh"] {
            let want = format!("check --cell {cell} --layers 2");
            assert!(
                calls
                    .lines()
                    .any(|l| l.starts_with(&want) && l.ends_with(variant)),
                "no `{want} ... {variant}` in\n{calls}"
            );
        }
    }
    for want in [
        "bench --suite suite.tsv --roofline 67,3350 --json",
        "report --ours",
        "bench --suite suite.tsv --products --reps 10",
        "report --products",
        "bench --suite suite.tsv --step-chunk-rows 16",
        "bench --suite suite.tsv --gemm tall --roofline",
        "bench --suite suite.tsv --gemm tensor-split --step-kernel tensor-split --roofline",
        "bench --suite suite.tsv --step-kernel tensor-split --no-kernels --json",
        "bench --suite suite.tsv --step-k-split 1",
        "bench --suite suite.tsv --wavefront off --no-kernels",
        "bench --suite suite.tsv --step-k-split rules --no-kernels",
        "bench --suite suite.tsv --gemm rules --no-kernels",
        "bench --suite suite.tsv --step-k-split 4 --step-units 16",
        "bench --suite suite.tsv --step-k-split 4",
        "bench --suite suite.tsv --submit-first 0 --no-kernels",
        "bench --suite suite.tsv --step-kernel gemv --no-kernels",
        "bench --suite suite.tsv --step-kernel tiled --no-kernels",
        "bench --suite suite.tsv --precision f16 --roofline 989,3350",
        "bench --suite suite.tsv --step-kernel tensor --step-k-split 1 --no-kernels",
        "bench --suite suite.tsv --precision f16 --step-weights f32 --no-kernels",
        "bench --suite suite.tsv --precision f16 --step-k-split 1 --no-kernels",
        "bench --suite suite.tsv --step-kernel rowwise",
        "bench --suite suite.tsv --tune --warmup 2",
        "bench --suite suite.tsv --tune --precision f16",
    ] {
        assert!(calls.contains(want), "no `{want}` in\n{calls}");
    }
    // check-new also checks the defaults at 3 sequences (the matrix-vector steps).
    assert!(
        calls
            .lines()
            .any(|l| l.starts_with("check --cell lstm --layers 2")
                && l.contains("--lengths 7,29,1 ")),
        "no check at 3 sequences in\n{calls}"
    );
    // The reference script's output is kept beside ours.
    let torch = std::fs::read_to_string(dir.join("out/torch.jsonl")).expect("torch.jsonl");
    assert!(torch.contains("stub output"), "{torch}");
    let checks = std::fs::read_to_string(dir.join("out/check.txt")).expect("check.txt");
    assert!(checks.contains("ok: --cell gru --gemm tall"), "{checks}");
    assert!(!checks.contains("FAILED"), "{checks}");
    // No older build was staged: `before` says so and is no failure.
    let skipped = std::fs::read_to_string(dir.join("out/skipped.txt")).expect("skipped.txt");
    assert!(
        skipped.contains("before: no .bin/wgrnn-before staged"),
        "{skipped}"
    );
}

/// With an older build staged, `before` runs the suite with it into wgrnn-before.jsonl, with
/// the flags of BEFORE_ARGS where set.
#[test]
fn the_before_build_runs_the_suite_where_staged() {
    // (BEFORE_ARGS, the flags it adds): none, and the f16 path's before (entry 55).
    for (args, flags) in [(None, ""), (Some("--precision f16"), "--precision f16 ")] {
        let dir = temp_dir(if args.is_some() {
            "before-f16"
        } else {
            "before"
        });
        let stub = dir.join("wgrnn-stub").to_string_lossy().into_owned();
        let mut env = vec![("BEFORE", stub.as_str())];
        env.extend(args.map(|a| ("BEFORE_ARGS", a)));
        let o = run_parts_with(&dir, &["before"], "", &env);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let want = format!(
            "bench --suite suite.tsv --no-kernels {flags}--json {}",
            dir.join("out/wgrnn-before.jsonl").display()
        );
        assert_eq!(calls(&dir).trim(), want);
    }
}

#[test]
fn a_failing_check_is_reported_and_fails_its_part() {
    let dir = temp_dir("fail");
    let o = run_parts(&dir, &["check-new"], "--gemm tall");
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let checks = std::fs::read_to_string(dir.join("out/check.txt")).expect("check.txt");
    assert!(
        checks.contains("CHECK FAILED: --cell lstm --bidirectional --gemm tall"),
        "{checks}"
    );
    assert!(checks.contains("ok: --cell gru --gemm tensor"), "{checks}");
}

#[test]
fn an_unknown_part_is_refused_by_name() {
    let dir = temp_dir("unknown");
    let o = run_parts(&dir, &["sweet"], "");
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("unknown part sweet"), "{err}");
}

#[test]
fn a_failing_run_fails_its_part_and_the_rest_of_it_still_runs() {
    // Where the adapter has no tensor cores the tensor-core runs fail; the f16 runs after
    // them must still be made, and the part must say it did not all succeed.
    let dir = temp_dir("f16");
    let o = run_parts(&dir, &["f16"], "--step-kernel tensor");
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let calls = calls(&dir);
    assert!(
        calls.contains("--precision f16 --step-kernel tiled --no-kernels --json"),
        "{calls}"
    );
    assert!(
        calls.contains("--gemm tensor --no-kernels --json"),
        "{calls}"
    );
}
