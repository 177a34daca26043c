//! `wgrnn report`: the suite table of BENCHMARKS.md from the JSON lines of one device run, so
//! the table is the output of a command anyone can rerun rather than numbers copied by hand.
//!
//! Inputs: `wgrnn bench --json` lines (ours, with `name`, `train_step_ms`, `peak_mem_mb` and
//! the per-kernel `kernels` array), the reference script's lines (PyTorch on cuDNN, one per
//! configuration and `tf32` mode), and optionally more `wgrnn bench` files of alternative
//! kernel choices. Configurations are matched by their shape (kind, layers, hidden, input,
//! batch, seq, direction).

use std::fmt::Write as _;

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::bench::Roofline;

/// The issue's target for a suite configuration: the largest ratio of our training-step time
/// to cuDNN fp32's (1.0 for the flagship and batch1, 1.5 for the rest).
pub fn target_ratio(name: &str) -> f64 {
    match name {
        "flagship" | "batch1" => 1.0,
        _ => 1.5,
    }
}

/// The issue's target for the reduced-precision path (`--precision f16`): the largest ratio
/// of our training-step time to cuDNN tf32's, where there is one (the flagship: 1.0).
pub fn tf32_target_ratio(name: &str) -> Option<f64> {
    (name == "flagship").then_some(1.0)
}

/// One configuration's shape, the key that matches lines across files.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Shape {
    kind: String,
    dims: [u64; 5],
    bidirectional: bool,
}

fn shape(v: &Value) -> Option<Shape> {
    let n = |k: &str| v[k].as_u64();
    Some(Shape {
        kind: v["kind"].as_str()?.to_string(),
        dims: [
            n("layers")?,
            n("hidden")?,
            n("input")?,
            n("batch")?,
            n("seq")?,
        ],
        bidirectional: v["bidirectional"].as_bool()?,
    })
}

/// The JSON objects of a JSON-lines text that describe a configuration (others, such as the
/// reference script's header line, are skipped). `what` names the source in errors.
pub fn parse_lines(text: &str, what: &str) -> Result<Vec<Value>> {
    json_lines(text, what, |v| {
        shape(v).is_some() && v["train_step_ms"].is_number()
    })
}

/// The JSON objects of `wgrnn bench --products --json` lines (others are skipped). `what`
/// names the source in errors.
pub fn parse_product_lines(text: &str, what: &str) -> Result<Vec<Value>> {
    json_lines(text, what, |v| {
        v["tiles"].is_string() && v["tflops"].is_number()
    })
}

/// The JSON objects of a JSON-lines text that `keep` keeps; an unparsable line is an error
/// naming `what` and the line.
fn json_lines(text: &str, what: &str, keep: impl Fn(&Value) -> bool) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line)
            .with_context(|| format!("{what}, line {}: not JSON", i + 1))?;
        if keep(&v) {
            out.push(v);
        }
    }
    Ok(out)
}

fn ms(v: &Value, key: &str) -> Option<f64> {
    v[key].as_f64()
}

fn fmt_opt(x: Option<f64>, digits: usize) -> String {
    x.map_or("-".to_string(), |x| format!("{x:.digits$}"))
}

/// The suite table: for each of our configurations, our step time and the host's part of
/// it (`record_ms`: recording and submitting, which bounds a step from below on any GPU),
/// cuDNN's fp32 and tf32 times and our ratios to them, the target and whether it is met,
/// and both peak memories.
/// `variants` adds one column of step times per alternative file (name, lines).
pub fn suite_table(
    ours: &[Value],
    torch: &[Value],
    variants: &[(String, Vec<Value>)],
) -> Result<String> {
    if ours.is_empty() {
        bail!("no wgrnn results to report");
    }
    let find = |lines: &[Value], s: &Shape, tf32: Option<bool>| -> Option<Value> {
        lines
            .iter()
            .find(|v| shape(v).as_ref() == Some(s) && tf32.is_none_or(|t| v["tf32"] == t))
            .cloned()
    };
    let mut t = String::new();
    let mut head = "| config | wgrnn ms | host ms | cuDNN fp32 ms | ratio | target | met | cuDNN tf32 ms | ratio to tf32 | peak MiB wgrnn | peak MiB torch |".to_string();
    let mut rule = "|---|---|---|---|---|---|---|---|---|---|---|".to_string();
    for (name, _) in variants {
        head.push_str(&format!(" {name} ms |"));
        rule.push_str("---|");
    }
    writeln!(t, "{head}\n{rule}")?;
    for o in ours {
        let s = shape(o).context("a wgrnn line without its shape")?;
        let name = o["name"].as_str().unwrap_or("-").to_string();
        let our = ms(o, "train_step_ms");
        let f32_ = find(torch, &s, Some(false));
        let tf = find(torch, &s, Some(true));
        let ratio = |r: &Option<Value>| match (our, r.as_ref().and_then(|v| ms(v, "train_step_ms")))
        {
            (Some(a), Some(b)) if b > 0.0 => Some(a / b),
            _ => None,
        };
        let r32 = ratio(&f32_);
        let target = target_ratio(&name);
        let met = match r32 {
            Some(r) if r <= target => "yes",
            Some(_) => "no",
            None => "-",
        };
        write!(
            t,
            "| {name} | {} | {} | {} | {} | <= {target:.1} | {met} | {} | {} | {} | {} |",
            fmt_opt(our, 2),
            fmt_opt(ms(o, "record_ms"), 2),
            fmt_opt(f32_.as_ref().and_then(|v| ms(v, "train_step_ms")), 2),
            fmt_opt(r32, 2),
            fmt_opt(tf.as_ref().and_then(|v| ms(v, "train_step_ms")), 2),
            fmt_opt(ratio(&tf), 2),
            fmt_opt(ms(o, "peak_mem_mb"), 1),
            fmt_opt(f32_.as_ref().and_then(|v| ms(v, "peak_mem_mb")), 1),
        )?;
        for (_, lines) in variants {
            let v = find(lines, &s, None);
            write!(
                t,
                " {} |",
                fmt_opt(v.as_ref().and_then(|v| ms(v, "train_step_ms")), 2)
            )?;
        }
        writeln!(t)?;
    }
    Ok(t)
}

/// The reduced-precision table: for each configuration of `reduced` (`wgrnn bench
/// --precision f16` lines: f16 caches, and tensor-core products where the adapter has them),
/// our step time against cuDNN tf32's, the ratio, the tf32 target where the issue sets one
/// and whether it is met, and both peak memories (ours and torch's in tf32 mode).
pub fn reduced_table(reduced: &[Value], torch: &[Value]) -> Result<String> {
    if reduced.is_empty() {
        bail!("no reduced-precision wgrnn results to report");
    }
    let mut t = String::new();
    writeln!(
        t,
        "| config | wgrnn f16 ms | variant | cuDNN tf32 ms | ratio to tf32 | target | met | peak MiB wgrnn | peak MiB torch tf32 |\n|---|---|---|---|---|---|---|---|---|"
    )?;
    for o in reduced {
        let s = shape(o).context("a wgrnn line without its shape")?;
        let name = o["name"].as_str().unwrap_or("-").to_string();
        let our = ms(o, "train_step_ms");
        let tf = torch
            .iter()
            .find(|v| shape(v).as_ref() == Some(&s) && v["tf32"] == true);
        let theirs = tf.and_then(|v| ms(v, "train_step_ms"));
        let ratio = match (our, theirs) {
            (Some(a), Some(b)) if b > 0.0 => Some(a / b),
            _ => None,
        };
        let target = tf32_target_ratio(&name);
        let met = match (ratio, target) {
            (Some(r), Some(x)) if r <= x => "yes",
            (Some(_), Some(_)) => "no",
            _ => "-",
        };
        writeln!(
            t,
            "| {name} | {} | {} | {} | {} | {} | {met} | {} | {} |",
            fmt_opt(our, 2),
            o["variant"].as_str().unwrap_or("-"),
            fmt_opt(theirs, 2),
            fmt_opt(ratio, 2),
            target.map_or("-".to_string(), |x| format!("<= {x:.1}")),
            fmt_opt(ms(o, "peak_mem_mb"), 1),
            fmt_opt(tf.and_then(|v| ms(v, "peak_mem_mb")), 1),
        )?;
    }
    Ok(t)
}

/// The per-kernel breakdown of one configuration (`name`) from our lines: each kernel's calls,
/// ms per step, share of the step's kernel time, GFLOP/s, GB/s and, with `roof`, its share
/// of the roofline.
pub fn kernel_table(ours: &[Value], name: &str, roof: Option<Roofline>) -> Result<String> {
    let o = ours
        .iter()
        .find(|v| v["name"] == name)
        .with_context(|| format!("no wgrnn result named `{name}`"))?;
    let kernels = o["kernels"]
        .as_array()
        .filter(|k| !k.is_empty())
        .with_context(|| {
            format!("`{name}` has no per-kernel table (run bench without --no-kernels)")
        })?;
    let total: f64 = kernels.iter().filter_map(|k| k["ms"].as_f64()).sum();
    let mut t = String::new();
    writeln!(
        t,
        "| kernel | calls | ms/step | share | GFLOP/s | GB/s | roofline |\n|---|---|---|---|---|---|---|"
    )?;
    for k in kernels {
        let ms = k["ms"].as_f64().unwrap_or(0.0);
        let (gf, gb) = (
            k["gflops"].as_f64().unwrap_or(0.0),
            k["gbytes"].as_f64().unwrap_or(0.0),
        );
        let rate = |x: f64| (x > 0.0 && ms > 0.0).then(|| x / (ms / 1e3));
        let roofline = roof.and_then(|r| r.share_of(gf * 1e9, gb * 1e9, ms / 1e3));
        writeln!(
            t,
            "| {} | {} | {ms:.3} | {:.1}% | {} | {} | {} |",
            k["kernel"].as_str().unwrap_or("?"),
            k["calls"].as_u64().unwrap_or(0),
            100.0 * ms / total.max(f64::MIN_POSITIVE),
            fmt_opt(rate(gf), 1),
            fmt_opt(rate(gb), 1),
            roofline.map_or("-".to_string(), |r| format!("{:.1}%", 100.0 * r)),
        )?;
    }
    Ok(t)
}

/// The products' tiles each configuration's run measured (`gemm_measured` in its line, as
/// `wgrnn bench` prints them): one row per configuration and shape class, the tile taken
/// (the fastest) and every candidate's time. `None` where no run measured any.
pub fn measured_tiles_table(ours: &[Value]) -> Option<String> {
    measured_table(
        ours,
        "gemm_measured",
        "product (m x n x k)",
        "each tile's time",
    )
}

/// The steps' K slices each configuration's run measured (`slices_measured` in its line):
/// one row per configuration and pass of a step shape, the slices taken (the fastest;
/// `ksplit=N`) and every candidate's time a step. `None` where no run measured any.
pub fn measured_slices_table(ours: &[Value]) -> Option<String> {
    measured_table(ours, "slices_measured", "steps", "each count's time a step")
}

/// The layer pipeline's choices each configuration's run measured (`pipeline_measured` in
/// its line): one row per configuration and pass of a stack shape, the chunks taken (the
/// fastest; `layer-by-layer` or `wavefront=N`) and every candidate's time a pass. `None`
/// where no run measured any.
pub fn measured_pipelines_table(ours: &[Value]) -> Option<String> {
    measured_table(
        ours,
        "pipeline_measured",
        "pass",
        "each choice's time a pass",
    )
}

/// A table of the `key` lines of each of `ours` (`SHAPE: CHOICE TIME, ...`, the fastest
/// first): configuration, shape, the choice taken and every candidate's time.
fn measured_table(ours: &[Value], key: &str, shape: &str, times: &str) -> Option<String> {
    let mut t = format!("| config | {shape} | taken | {times} |\n|---|---|---|---|\n");
    let mut any = false;
    for o in ours {
        let config = o["name"].as_str().unwrap_or("-");
        let lines = o[key].as_array().into_iter().flatten();
        for line in lines.filter_map(Value::as_str) {
            let (shape, times) = line.split_once(": ").unwrap_or((line, ""));
            let taken = times.split_whitespace().next().unwrap_or("-");
            t.push_str(&format!("| {config} | {shape} | {taken} | {times} |\n"));
            any = true;
        }
    }
    any.then_some(t)
}

/// The products table from `wgrnn bench --products` lines: one row per product (config,
/// product, m x n x k, operand layouts), one TFLOP/s column per tile in the order the lines
/// first name them, and the fastest tile (by time, finer than the rounded rates) with its
/// kernel.
pub fn products_table(lines: &[Value]) -> Result<String> {
    if lines.is_empty() {
        bail!("no product timings to report");
    }
    let mut tiles: Vec<String> = Vec::new();
    // (row key, [(tile, tflops, kernel, ms)]) in first-appearance order.
    type Timing = (String, f64, String, f64);
    let mut rows: Vec<(String, Vec<Timing>)> = Vec::new();
    for l in lines {
        let (Some(m), Some(n), Some(k)) = (l["m"].as_u64(), l["n"].as_u64(), l["k"].as_u64())
        else {
            bail!("a products line without its shape: {l}");
        };
        let tile = l["tiles"]
            .as_str()
            .context("a products line without its tiles")?;
        let tflops = l["tflops"]
            .as_f64()
            .context("a products line without tflops")?;
        let ms = l["ms"].as_f64().context("a products line without ms")?;
        let layout = |key: &str| if l[key] == true { "T" } else { "N" };
        let key = format!(
            "{} | {} | {m} x {n} x {k} | {}{}",
            l["config"].as_str().unwrap_or("-"),
            l["product"].as_str().unwrap_or("-"),
            layout("a_transposed"),
            layout("b_transposed"),
        );
        if !tiles.iter().any(|t| t == tile) {
            tiles.push(tile.to_string());
        }
        let kernel = l["kernel"].as_str().unwrap_or("-").to_string();
        let entry = (tile.to_string(), tflops, kernel, ms);
        match rows.iter_mut().find(|(k, _)| *k == key) {
            Some((_, times)) => times.push(entry),
            None => rows.push((key, vec![entry])),
        }
    }
    let mut t = String::new();
    let heads: Vec<String> = tiles.iter().map(|x| format!("{x} TFLOP/s")).collect();
    writeln!(
        t,
        "| config | product | m x n x k | A B | {} | fastest |\n|---|---|---|---|{}---|",
        heads.join(" | "),
        "---|".repeat(tiles.len())
    )?;
    for (key, times) in &rows {
        let cells: Vec<String> = tiles
            .iter()
            .map(|x| {
                let v = times.iter().find(|e| e.0 == *x).map(|e| e.1);
                fmt_opt(v, 2)
            })
            .collect();
        let best = times
            .iter()
            .min_by(|a, b| a.3.total_cmp(&b.3))
            .map_or("-".to_string(), |(tile, _, kernel, _)| {
                format!("{tile} ({kernel})")
            });
        writeln!(t, "| {key} | {} | {best} |", cells.join(" | "))?;
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(engine: &str, name: &str, ms: f64, tf32: bool, mem: f64) -> String {
        format!(
            r#"{{"engine":"{engine}","name":"{name}","kind":"lstm","layers":4,"hidden":1024,"input":1024,"batch":64,"seq":100,"bidirectional":false,"tf32":{tf32},"train_step_ms":{ms},"peak_mem_mb":{mem},"kernels":[{{"kernel":"gemm128.gemm128","calls":20,"ms":10.0,"gflops":268.4,"gbytes":1.0}},{{"kernel":"lstm_cell.fwd_step_tiled","calls":400,"ms":30.0,"gflops":0.0,"gbytes":0.0}}]}}"#
        )
    }

    #[test]
    fn measured_tiles_table_has_a_row_per_class_with_the_tile_taken() {
        let with = line("wgrnn", "flagship", 40.0, false, 700.0).replace(
            "\"kernels\"",
            "\"gemm_measured\":[\"6400x4096x1024 B^T: tall 1.9 ms, big 2.1 ms\",\
             \"4096x1024x6400 A^T: big 2.0 ms, tall 2.4 ms\"],\"kernels\"",
        );
        let without = line("wgrnn", "small", 1.0, false, 10.0);
        let ours = parse_lines(&format!("{with}\n{without}\n"), "ours").unwrap();
        let t = measured_tiles_table(&ours).expect("a table");
        let rows: Vec<&str> = t.lines().skip(2).collect();
        assert_eq!(
            rows,
            [
                "| flagship | 6400x4096x1024 B^T | tall | tall 1.9 ms, big 2.1 ms |",
                "| flagship | 4096x1024x6400 A^T | big | big 2.0 ms, tall 2.4 ms |",
            ]
        );
        assert_eq!(measured_tiles_table(&ours[1..]), None);
        assert_eq!(measured_pipelines_table(&ours), None);
        let with = line("wgrnn", "gru4", 30.0, false, 600.0).replace(
            "\"kernels\"",
            "\"pipeline_measured\":[\"forward 4 x gru 1024 (input 1024), 64 x 100: \
             wavefront=4 9.1 ms, layer-by-layer 10.2 ms, wavefront=8 11.0 ms\"],\"kernels\"",
        );
        let ours = parse_lines(&format!("{with}\n"), "ours").unwrap();
        let t = measured_pipelines_table(&ours).expect("a table");
        assert!(t.starts_with("| config | pass | taken |"), "{t}");
        assert_eq!(
            t.lines().nth(2),
            Some(
                "| gru4 | forward 4 x gru 1024 (input 1024), 64 x 100 | wavefront=4 | \
                 wavefront=4 9.1 ms, layer-by-layer 10.2 ms, wavefront=8 11.0 ms |"
            )
        );
    }

    #[test]
    fn suite_table_matches_shapes_and_states_the_target() {
        let ours = parse_lines(
            &line("wgrnn", "flagship", 40.0, false, 700.0).replace(
                "\"train_step_ms\":40",
                "\"record_ms\":1.5,\"train_step_ms\":40",
            ),
            "ours",
        )
        .unwrap();
        let torch_text = format!(
            "{{\"device\":\"H100\"}}\n{}\n{}\n",
            line("pytorch-cudnn", "", 38.7, false, 800.0),
            line("pytorch-cudnn", "", 21.4, true, 790.0)
        );
        let torch = parse_lines(&torch_text, "torch").unwrap();
        assert_eq!(torch.len(), 2, "the header line is skipped");
        let variant = parse_lines(&line("wgrnn", "flagship", 36.0, false, 700.0), "v").unwrap();
        let t = suite_table(&ours, &torch, &[("blocked".into(), variant)]).unwrap();
        let row = t.lines().nth(2).expect("a row");
        // 40 / 38.7 = 1.03 > 1.0 for the flagship: not met; 40 / 21.4 = 1.87.
        assert!(
            row.starts_with("| flagship | 40.00 | 1.50 | 38.70 | 1.03 | <= 1.0 | no | 21.40 | 1.87 | 700.0 | 800.0 | 36.00 |"),
            "{row}"
        );
        assert!(t.lines().next().unwrap().ends_with(" blocked ms |"));
        assert!(suite_table(&[], &torch, &[]).is_err());
    }

    #[test]
    fn reduced_table_compares_with_tf32() {
        let mut f16 = line("wgrnn", "flagship", 20.0, false, 500.0);
        f16 = f16.replacen(
            "\"tf32\":false,",
            "\"tf32\":false,\"variant\":\"gemm=auto f16-caches tensor-products\",",
            1,
        );
        let ours = parse_lines(&f16, "f16").unwrap();
        let torch_text = format!(
            "{}\n{}\n",
            line("pytorch-cudnn", "", 38.7, false, 800.0),
            line("pytorch-cudnn", "", 21.4, true, 790.0)
        );
        let torch = parse_lines(&torch_text, "torch").unwrap();
        let t = reduced_table(&ours, &torch).unwrap();
        let row = t.lines().nth(2).expect("a row");
        // 20 / 21.4 = 0.93 <= 1.0: met; torch's tf32 peak is the one compared.
        assert_eq!(
            row,
            "| flagship | 20.00 | gemm=auto f16-caches tensor-products | 21.40 | 0.93 | <= 1.0 | yes | 500.0 | 790.0 |"
        );
        assert!(reduced_table(&[], &torch).is_err());
    }

    #[test]
    fn kernel_table_gives_shares_and_roofline() {
        let ours = parse_lines(&line("wgrnn", "flagship", 40.0, false, 700.0), "ours").unwrap();
        let roof = Roofline {
            tflops: 67.0,
            gbps: 3350.0,
        };
        let t = kernel_table(&ours, "flagship", Some(roof)).unwrap();
        // 268.4 GFLOP in 10 ms = 26840 GFLOP/s = 40.1% of 67 TFLOP/s; share 25% of 40 ms.
        assert!(
            t.contains("| gemm128.gemm128 | 20 | 10.000 | 25.0% | 26840.0 | 100.0 | 40.1% |"),
            "{t}"
        );
        assert!(t.contains("| lstm_cell.fwd_step_tiled | 400 | 30.000 | 75.0% | - | - | - |"));
        assert!(kernel_table(&ours, "nope", None).is_err());
        assert!(parse_lines("{not json", "f").is_err());
    }

    #[test]
    fn products_table_has_a_column_per_tile_and_the_fastest() {
        let line = |product: &str, tile: &str, kernel: &str, tflops: f64| {
            let ms = 53.6870912 / tflops;
            format!(
                r#"{{"config":"flagship","product":"{product}","m":6400,"n":4096,"k":1024,"a_transposed":false,"b_transposed":true,"tiles":"{tile}","kernel":"{kernel}","ms":{ms},"tflops":{tflops}}}"#
            )
        };
        let text = [
            line("xp l0", "small", "gemm.gemm", 12.5),
            line("xp l0", "big", "gemm128.gemm128", 26.0),
            line("xp l0", "tall", "gemm256.gemm256", 31.25),
            line("dx l0", "big", "gemm128.gemm128", 24.0),
        ]
        .join("\n");
        let t = products_table(&parse_product_lines(&text, "products").unwrap()).unwrap();
        assert!(parse_lines(&text, "products").unwrap().is_empty());
        let rows: Vec<&str> = t.lines().collect();
        assert_eq!(
            rows[0],
            "| config | product | m x n x k | A B | small TFLOP/s | big TFLOP/s | tall TFLOP/s | fastest |"
        );
        assert_eq!(rows[1], "|---|---|---|---|---|---|---|---|");
        assert_eq!(
            rows[2],
            "| flagship | xp l0 | 6400 x 4096 x 1024 | NT | 12.50 | 26.00 | 31.25 | tall (gemm256.gemm256) |"
        );
        assert_eq!(
            rows[3],
            "| flagship | dx l0 | 6400 x 4096 x 1024 | NT | - | 24.00 | - | big (gemm128.gemm128) |"
        );
        assert!(products_table(&[]).is_err());
    }

    #[test]
    fn targets_follow_the_issue() {
        assert_eq!(target_ratio("flagship"), 1.0);
        assert_eq!(target_ratio("batch1"), 1.0);
        assert_eq!(target_ratio("gru4"), 1.5);
    }
}
