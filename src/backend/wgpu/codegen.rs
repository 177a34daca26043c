//! Unrolled WGSL from templates: a shader line `// @generate NAME` is replaced by the lines
//! of generator NAME, with the marker's indentation. Hot loops keep their per-invocation
//! accumulators in named vec4 variables this way; a private array indexed by a loop
//! variable ends up in slow local memory on NVIDIA (45x slower on the H100,
//! ../shared/device/README.md), and writing 16 copies of a line by hand invites slips.
//! The lines between `// @unroll NAME COUNT` and `// @end unroll` are written COUNT times,
//! with the identifier NAME replaced by 0u, 1u, ... and `{NAME}` inside an identifier by 0,
//! 1, ... (`e{c}`: e0, e1, ..., one named variable per copy): a loop of constant trip count
//! as straight code, whatever a driver's compiler would decide to unroll.

use std::sync::OnceLock;

use super::runtime::Shader;

const LANES: [&str; 4] = ["x", "y", "z", "w"];

/// How the `coop_*` generators write the tensor-core tile's matrix operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CoopOps {
    /// wgpu's cooperative matrices (`coop_mat16x16`, `coopLoadT`, `coopMultiplyAdd`,
    /// `coopStoreT`) on subgroups: the matrix units.
    Hardware,
    /// The same operations in plain WGSL (`shaders/coop_emulated.wgsl`) on virtual
    /// subgroups of 32 consecutive invocations, with the same f16 operands and f32 sums: so
    /// that every other line of the tile (staging, scaling, block placement, epilogue) runs
    /// and is compared with the CPU on adapters without matrix units.
    Emulated,
}

/// A kernel file with one storage type left open: its source uses the alias `alias` (the
/// element type of one or more of its buffers), which is f32 in the first build and f16 in
/// the second (`enable f16;` added). Each is expanded (see [`expand_with`]) and built on
/// first use.
pub struct StorageVariants {
    names: [&'static str; 2],
    alias: &'static str,
    source: &'static str,
    coop: CoopOps,
    built: [OnceLock<Shader>; 2],
}

impl StorageVariants {
    /// `source` with `alias` = f32 under `names[0]` and = f16 under `names[1]`.
    pub const fn new(names: [&'static str; 2], alias: &'static str, source: &'static str) -> Self {
        Self::with_coop(names, alias, source, CoopOps::Hardware)
    }

    /// As [`StorageVariants::new`], its `coop_*` lines written as `coop` says.
    pub const fn with_coop(
        names: [&'static str; 2],
        alias: &'static str,
        source: &'static str,
        coop: CoopOps,
    ) -> Self {
        StorageVariants {
            names,
            alias,
            source,
            coop,
            built: [OnceLock::new(), OnceLock::new()],
        }
    }

    /// The build with the alias f16 (`f16`) or f32.
    pub fn get(&self, f16: bool) -> &Shader {
        let i = f16 as usize;
        self.built[i].get_or_init(|| {
            let source = format!(
                "{}{}",
                storage_prelude(self.alias, f16),
                expand_with(self.source, self.coop)
            );
            Shader {
                name: self.names[i],
                source: Box::leak(source.into_boxed_str()),
            }
        })
    }
}

/// The lines that open a kernel file whose storage type `alias` is f16 (`f16`, with `enable
/// f16;`) or f32.
pub fn storage_prelude(alias: &str, f16: bool) -> String {
    if f16 {
        format!("enable f16;\nalias {alias} = f16;\n")
    } else {
        format!("alias {alias} = f32;\n")
    }
}

/// `template` with every `// @generate NAME` line expanded (matrix operations on the matrix
/// units). Panics on an unknown name: the templates are compiled into the binary, and the
/// shader tests expand all of them.
pub fn expand(template: &str) -> String {
    expand_with(template, CoopOps::Hardware)
}

/// [`expand`], the `coop_*` lines written as `coop` says.
pub fn expand_with(template: &str, coop: CoopOps) -> String {
    let mut out = String::with_capacity(template.len() + 8192);
    let lines: Vec<String> = template.lines().map(str::to_string).collect();
    expand_lines(&lines, coop, &mut out);
    out
}

/// Appends `lines` to `out` with their `@generate` markers and `@unroll` blocks expanded.
fn expand_lines(lines: &[String], coop: CoopOps, out: &mut String) {
    let mut i = 0;
    while i < lines.len() {
        let line = &lines[i];
        let trimmed = line.trim();
        if let Some(spec) = trimmed.strip_prefix("// @unroll ") {
            let (name, count, end) = unroll_block(lines, i, spec);
            for k in 0..count {
                let copy: Vec<String> = lines[i + 1..end]
                    .iter()
                    .map(|l| {
                        let pasted = l.replace(&format!("{{{name}}}"), &k.to_string());
                        replace_identifier(&pasted, name, &format!("{k}u"))
                    })
                    .collect();
                expand_lines(&copy, coop, out);
            }
            i = end + 1;
            continue;
        }
        match trimmed.strip_prefix("// @generate ") {
            Some(name) => {
                let indent = &line[..line.len() - line.trim_start().len()];
                let code = generate(name, coop)
                    .unwrap_or_else(|| panic!("no WGSL generator named {name:?}"));
                for l in code {
                    out.push_str(indent);
                    out.push_str(&l);
                    out.push('\n');
                }
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
        i += 1;
    }
}

/// The identifier and trip count of the `// @unroll NAME COUNT` marker at line `at` (its
/// `spec`: what follows `@unroll`), and the line of its own `// @end unroll` (blocks may
/// nest). Panics on a malformed block: the templates are compiled into the binary, and the
/// shader tests expand all of them.
fn unroll_block<'a>(lines: &[String], at: usize, spec: &'a str) -> (&'a str, usize, usize) {
    let mut words = spec.split_whitespace();
    let (name, count) = match (words.next(), words.next().map(str::parse::<usize>)) {
        (Some(name), Some(Ok(count))) => (name, count),
        _ => panic!("malformed @unroll marker {spec:?}: `// @unroll NAME COUNT`"),
    };
    let mut depth = 0;
    for (j, l) in lines.iter().enumerate().skip(at + 1) {
        let t = l.trim();
        if t.starts_with("// @unroll ") {
            depth += 1;
        } else if t == "// @end unroll" {
            if depth == 0 {
                return (name, count, j);
            }
            depth -= 1;
        }
    }
    panic!("@unroll {spec:?} without its `// @end unroll`");
}

/// `line` with every whole identifier `name` replaced by `by`.
fn replace_identifier(line: &str, name: &str, by: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        out.push_str(if word == name { by } else { word.as_str() });
        word.clear();
    };
    for c in line.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

/// One part of a register-tiled GEMM's `rows` x 8 block per invocation (gemm128.wgsl: 8
/// rows, gemm256.wgsl: 16), its accumulators acc{r}_{h} for row r (tile row
/// 64 (r / 4) + 4 ty + r % 4) and column half h, the fields of the kernel's accumulator
/// struct: their declarations (`acc_fields`), their multiply-adds per k step from the A
/// registers a{r / 4} and B registers b{h} through the pointer `acc` (`fma`), or their
/// stores from the struct `acc` (`store`).
fn gemm_block(part: &str, rows: usize) -> Vec<String> {
    let mut v = Vec::new();
    for r in 0..rows {
        let row = match 64 * (r / 4) {
            0 => format!("ty * 4u + {}u", r % 4),
            base => format!("{base}u + ty * 4u + {}u", r % 4),
        };
        for h in 0..2 {
            v.push(match part {
                "acc_fields" => format!("acc{r}_{h}: vec4<f32>,"),
                "fma" => format!("(*acc).acc{r}_{h} += a{}.{} * b{h};", r / 4, LANES[r % 4]),
                _ => format!(
                    "store4(m0 + {row}, n0 + {}u + tx * 4u, acc.acc{r}_{h});",
                    h * 64
                ),
            });
        }
    }
    v
}

/// The lines of generator `name`, `None` for an unknown one.
fn generate(name: &str, coop: CoopOps) -> Option<Vec<String>> {
    let mut v = Vec::new();
    let hw = coop == CoopOps::Hardware;
    match name {
        // gemm128.wgsl: an 8x8 block; gemm256.wgsl: a 16x8 block.
        "gemm_acc_fields" => v = gemm_block("acc_fields", 8),
        "gemm_fma" => v = gemm_block("fma", 8),
        "gemm_store" => v = gemm_block("store", 8),
        "gemm256_acc_fields" => v = gemm_block("acc_fields", 16),
        "gemm256_fma" => v = gemm_block("fma", 16),
        "gemm256_store" => v = gemm_block("store", 16),
        // gemm_coop.wgsl: the extension, and where a subgroup's ids come from.
        "coop_enable" if hw => v.push("enable wgpu_cooperative_matrix;".to_string()),
        "coop_enable" => {}
        "coop_entry_ids" if hw => {
            v.push("@builtin(subgroup_id) sg: u32,".to_string());
            v.push("@builtin(subgroup_invocation_id) lane: u32,".to_string());
            v.push("@builtin(subgroup_size) sg_size: u32,".to_string());
        }
        "coop_entry_ids" => {}
        "coop_ids" if hw => {}
        "coop_ids" => {
            v.push("let sg = t / 32u;".to_string());
            v.push("let lane = t % 32u;".to_string());
            v.push("let sg_size = 32u;".to_string());
        }
        // gemm_coop.wgsl: a subgroup's 64x32 block as 4 x 2 16x16 accumulators c{i}_{j}.
        "coop_acc_decl" => {
            for i in 0..4 {
                for j in 0..2 {
                    v.push(format!("var c{i}_{j} = {};", coop_zero(coop)));
                }
            }
        }
        "coop_mma" => {
            // The chunk's products in t{i}_{j}, in two 16-deep steps; every index a `let`
            // of its own (with SPLIT also the lo halves' products). Then scaled back into
            // the accumulators.
            for i in 0..4 {
                for j in 0..2 {
                    v.push(format!("var t{i}_{j} = {};", coop_zero(coop)));
                }
            }
            for kk in [0, 16] {
                v.push("{".to_string());
                for i in 0..4 {
                    v.push(format!(
                        "    let ia{i} = (wrow + {}u) * LDA + {kk}u;",
                        16 * i
                    ));
                    if hw {
                        v.push(format!(
                            "    let fa{i} = coopLoadT<coop_mat16x16<f16, A>>(&As[ia{i}], sa_ld);"
                        ));
                    }
                }
                for j in 0..2 {
                    v.push(format!("    let ib{j} = {kk}u * LDB + wcol + {}u;", 16 * j));
                    if hw {
                        v.push(format!(
                            "    let fb{j} = coopLoadT<coop_mat16x16<f16, B>>(&Bs[ib{j}], sb_ld);"
                        ));
                    }
                }
                // Split (f32 accuracy): the two products with a lo half first, then hi hi.
                v.push("    if (SPLIT) {".to_string());
                for i in 0..4 {
                    if hw {
                        v.push(format!(
                            "        let fal{i} = coopLoadT<coop_mat16x16<f16, A>>(&As[ia{i} + A_LO], sa_ld);"
                        ));
                    }
                }
                for j in 0..2 {
                    if hw {
                        v.push(format!(
                            "        let fbl{j} = coopLoadT<coop_mat16x16<f16, B>>(&Bs[ib{j} + B_LO], sb_ld);"
                        ));
                    }
                }
                for i in 0..4 {
                    for j in 0..2 {
                        if hw {
                            v.push(format!(
                                "        t{i}_{j} = coopMultiplyAdd(fal{i}, fb{j}, t{i}_{j});"
                            ));
                            v.push(format!(
                                "        t{i}_{j} = coopMultiplyAdd(fa{i}, fbl{j}, t{i}_{j});"
                            ));
                        } else {
                            v.push(format!(
                                "        t{i}_{j} = emu_mma(ia{i} + A_LO, sa_ld, ib{j}, sb_ld, t{i}_{j}, lane);"
                            ));
                            v.push(format!(
                                "        t{i}_{j} = emu_mma(ia{i}, sa_ld, ib{j} + B_LO, sb_ld, t{i}_{j}, lane);"
                            ));
                        }
                    }
                }
                v.push("    }".to_string());
                for i in 0..4 {
                    for j in 0..2 {
                        v.push(if hw {
                            format!("    t{i}_{j} = coopMultiplyAdd(fa{i}, fb{j}, t{i}_{j});")
                        } else {
                            format!("    t{i}_{j} = emu_mma(ia{i}, sa_ld, ib{j}, sb_ld, t{i}_{j}, lane);")
                        });
                    }
                }
                v.push("}".to_string());
            }
            let accs: Vec<String> = (0..4)
                .flat_map(|i| (0..2).map(move |j| format!("{i}_{j}")))
                .collect();
            scale_back(&mut v, hw, &accs);
        }
        "coop_store" => {
            for i in 0..4 {
                for j in 0..2 {
                    v.push(if hw {
                        format!("coopStoreT(c{i}_{j}, &Cs[cs], s16);")
                    } else {
                        format!("emu_store(c{i}_{j}, cs, lane);")
                    });
                    v.push("workgroupBarrier();".to_string());
                    v.push(format!(
                        "store_block(m0 + wrow + {}u, n0 + wcol + {}u, cs, lane, sg_size);",
                        16 * i,
                        16 * j
                    ));
                    v.push("workgroupBarrier();".to_string());
                }
            }
        }
        // step_coop.wgsl: the forward's two 16x16 accumulators c0, c1 (column blocks blk0,
        // blk1) and the backward's one (c0: block blk, half `half` of each chunk).
        "step_coop_fwd_acc" | "step_coop_bwd_acc" => {
            let n = if name == "step_coop_fwd_acc" { 2 } else { 1 };
            for i in 0..n {
                v.push(format!("var c{i} = {};", coop_zero(coop)));
            }
        }
        "step_coop_fwd_mma" | "step_coop_bwd_mma" => {
            // (A offset, [(accumulator, B offset)]) of this chunk's one 16-deep product per
            // accumulator; every offset a `let` of its own (naga's SPIR-V writer needs the
            // index of a matrix load's pointer to be a named expression).
            let (ia, blocks): (&str, &[(usize, &str)]) = if name == "step_coop_fwd_mma" {
                ("ar", &[(0, "b0s + blk0 * 16u"), (1, "b0s + blk1 * 16u")])
            } else {
                (
                    "a0 + half * 16u",
                    &[(0, "b0s + half * 16u * ldb + blk * 16u")],
                )
            };
            // With SPLIT the lo halves' two products go first (A_LO and B_LO halves after
            // the hi ones).
            v.push(format!("let ia = {ia};"));
            v.push("let ial = ia + A_LO;".to_string());
            if hw {
                v.push("let fa = coopLoadT<coop_mat16x16<f16, A>>(&As[ia], lda);".to_string());
            }
            for &(i, ib) in blocks {
                v.push(format!("let ib{i} = {ib};"));
                v.push(format!("let ibl{i} = ib{i} + B_LO;"));
                v.push(format!("var t{i} = {};", coop_zero(coop)));
                if hw {
                    v.push(format!(
                        "let fb{i} = coopLoadT<coop_mat16x16<f16, B>>(&Bs[ib{i}], ldb);"
                    ));
                    v.push("if (SPLIT) {".to_string());
                    v.push(format!(
                        "    let fal{i} = coopLoadT<coop_mat16x16<f16, A>>(&As[ial], lda);"
                    ));
                    v.push(format!(
                        "    let fbl{i} = coopLoadT<coop_mat16x16<f16, B>>(&Bs[ibl{i}], ldb);"
                    ));
                    v.push(format!("    t{i} = coopMultiplyAdd(fal{i}, fb{i}, t{i});"));
                    v.push(format!("    t{i} = coopMultiplyAdd(fa, fbl{i}, t{i});"));
                    v.push("}".to_string());
                    v.push(format!("t{i} = coopMultiplyAdd(fa, fb{i}, t{i});"));
                } else {
                    v.push("if (SPLIT) {".to_string());
                    v.push(format!(
                        "    t{i} = emu_mma(ial, lda, ib{i}, ldb, t{i}, lane);"
                    ));
                    v.push(format!(
                        "    t{i} = emu_mma(ia, lda, ibl{i}, ldb, t{i}, lane);"
                    ));
                    v.push("}".to_string());
                    v.push(format!("t{i} = emu_mma(ia, lda, ib{i}, ldb, t{i}, lane);"));
                }
            }
            let accs: Vec<String> = blocks.iter().map(|&(i, _)| i.to_string()).collect();
            scale_back(&mut v, hw, &accs);
        }
        "step_coop_fwd_store" | "step_coop_bwd_store" => {
            let n = if name == "step_coop_fwd_store" { 2 } else { 1 };
            for i in 0..n {
                v.push(format!("let ic{i} = slot{i} * 256u;"));
                v.push(if hw {
                    format!("coopStoreT(c{i}, &Cs[ic{i}], s16);")
                } else {
                    format!("emu_store(c{i}, ic{i}, lane);")
                });
            }
        }
        // layer.wgsl tile_states: one gather per buffer a step's states come from (a WGSL
        // function takes no storage buffer), lanes i < count of elements at[i] + k0, 0
        // where !ok[i]; and of up to 4 parts of a chunk (tile_state_parts).
        "state_gathers" => {
            let buffers = [
                ("st_h", "st_h[{}]"),
                ("y", "y[{}]"),
                ("cache", "f32(cache[{}])"),
                ("gates", "gates[{}]"),
            ];
            for (name, elem) in buffers {
                let lane = |c: &str| {
                    let at = elem.replace("{}", &format!("at.{c} + k0"));
                    format!("select(0.0, {at}, ok.{c})")
                };
                v.push(format!(
                    "fn gather_{name}(at: vec4<u32>, ok: vec4<bool>, k0: u32, count: u32) -> vec4<f32> {{"
                ));
                v.push(format!(
                    "    var v = vec4<f32>({}, 0.0, 0.0, 0.0);",
                    lane("x")
                ));
                v.push(format!("    if (count > 1u) {{ v.y = {}; }}", lane("y")));
                v.push("    if (count > 2u) {".to_string());
                v.push(format!("        v.z = {};", lane("z")));
                v.push(format!("        v.w = {};", lane("w")));
                v.push("    }".to_string());
                v.push("    return v;".to_string());
                v.push("}".to_string());
                v.push(format!(
                    "fn gather_parts_{name}(at: vec4<u32>, ok: vec4<bool>, k0: u32, count: u32, width: u32, parts: u32) -> Parts4 {{"
                ));
                // The lanes' first elements once; each later part a constant further (an
                // immediate offset of the load on most GPUs).
                v.push("    let z = vec4<f32>(0.0);".to_string());
                v.push("    var a = at;".to_string());
                v.push("    a.x += k0;".to_string());
                v.push("    if (count > 1u) { a.y += k0; }".to_string());
                v.push("    if (count > 2u) {".to_string());
                v.push("        a.z += k0;".to_string());
                v.push("        a.w += k0;".to_string());
                v.push("    }".to_string());
                v.push(format!(
                    "    var v = Parts4(gather_{name}(a, ok, 0u, count), z, z, z);"
                ));
                v.push(format!(
                    "    if (parts > 1u) {{ v.p1 = gather_{name}(a, ok, width, count); }}"
                ));
                v.push("    if (parts > 2u) {".to_string());
                v.push(format!(
                    "        v.p2 = gather_{name}(a, ok, 2u * width, count);"
                ));
                v.push(format!(
                    "        v.p3 = gather_{name}(a, ok, 3u * width, count);"
                ));
                v.push("    }".to_string());
                v.push("    return v;".to_string());
                v.push("}".to_string());
            }
        }
        // step_tiles.wgsl tile_w_h_blocked: gate g of four units for sequence c as a{g}_{c}.
        "step_acc_decl" => {
            for g in 0..4 {
                for c in 0..4 {
                    v.push(format!("var a{g}_{c} = vec4<f32>(0.0);"));
                }
            }
        }
        "step_fma" => {
            for g in 0..4 {
                let body = |v: &mut Vec<String>, pad: &str| {
                    v.push(format!("{pad}let wv{g} = wsm[wr + {}u];", g * 8));
                    for (c, lane) in LANES.iter().enumerate() {
                        v.push(format!("{pad}a{g}_{c} += wv{g} * h.{lane};"));
                    }
                };
                if g == 0 {
                    body(&mut v, "");
                } else {
                    v.push(format!("if (gates > {g}u) {{"));
                    body(&mut v, "    ");
                    v.push("}".to_string());
                }
            }
        }
        "step_red_put" => {
            for g in 0..4 {
                for c in 0..4 {
                    v.push(format!("wsm[base + {}u] = a{g}_{c};", 4 * g + c));
                }
            }
        }
        "step_red_sum" => {
            for g in 0..4 {
                for c in 0..4 {
                    let i = 4 * g + c;
                    v.push(format!(
                        "wsm[r0 + {i}u] = a{g}_{c} + wsm[r0 + {i}u] + wsm[r1 + {i}u] + wsm[r2 + {i}u];"
                    ));
                }
            }
        }
        _ => return None,
    }
    Some(v)
}

/// Adds each chunk product t{a} into its accumulator c{a} for the suffixes `accs`, scaled
/// back by the chunk's multipliers: in one multiply by `back` where that is a normal f32
/// (`one_back` in shaders/coop_scale.wgsl, nonzero), else by `back_a` then `back_b`. The
/// branch is uniform (every invocation reads the same scales) and costs one test a chunk.
fn scale_back(v: &mut Vec<String>, hw: bool, accs: &[String]) {
    // Each arm: its opening line, the multiplier, and the second one of the two-step arm.
    let arms = [
        ("if (back != 0.0) {", "back", None),
        ("} else {", "back_a", Some("back_b")),
    ];
    for (open, s1, s2) in arms {
        v.push(open.to_string());
        for a in accs {
            v.push(match (hw, s2) {
                (true, None) => format!("    c{a} = c{a} + t{a} * {s1};"),
                (true, Some(s2)) => format!("    c{a} = c{a} + (t{a} * {s1}) * {s2};"),
                (false, s2) => format!(
                    "    c{a} = emu_add_scaled(c{a}, t{a}, {s1}, {});",
                    s2.unwrap_or("1.0")
                ),
            });
        }
    }
    v.push("}".to_string());
}

/// A zero 16x16 accumulator of the tensor-core tile.
fn coop_zero(coop: CoopOps) -> &'static str {
    match coop {
        CoopOps::Hardware => "coop_mat16x16<f32, C>()",
        CoopOps::Emulated => "emu_zero()",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_with_indentation_and_keeps_other_lines() {
        let out = expand("a\n    // @generate step_red_put\nb\n");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 18);
        assert_eq!(lines[0], "a");
        assert_eq!(lines[1], "    wsm[base + 0u] = a0_0;");
        assert_eq!(lines[16], "    wsm[base + 15u] = a3_3;");
        assert_eq!(lines[17], "b");
    }

    #[test]
    fn state_gathers_load_only_their_lanes() {
        let out = expand("// @generate state_gathers\n");
        assert_eq!(out.matches("fn gather_").count(), 8);
        // The parts' lanes from one base, the chunk's offset added once per lane in use.
        assert!(out.contains("v.p3 = gather_gates(a, ok, 3u * width, count);"));
        assert!(out.contains("if (count > 1u) { a.y += k0; }"));
        assert!(out.contains("v.w = select(0.0, f32(cache[at.w + k0]), ok.w);"));
        assert!(out.contains("if (count > 1u) { v.y = select(0.0, y[at.y + k0], ok.y); }"));
    }

    #[test]
    fn unrolls_blocks_with_their_index_as_a_constant() {
        let template = "a\n// @unroll kk 3\n{ x[kk] = kk2 + kk; }\n// @end unroll\nb\n";
        let out = expand(template);
        assert_eq!(
            out,
            "a\n{ x[0u] = kk2 + 0u; }\n{ x[1u] = kk2 + 1u; }\n{ x[2u] = kk2 + 2u; }\nb\n"
        );
        // Nested blocks and generators inside them.
        let nested = "// @unroll i 2\n// @unroll j 2\ni j\n// @end unroll\n// @end unroll\n";
        assert_eq!(expand(nested), "0u 0u\n0u 1u\n1u 0u\n1u 1u\n");
        let inner = expand("// @unroll k 2\n    // @generate step_red_put\n// @end unroll\n");
        assert_eq!(inner.lines().count(), 32);
        // `{NAME}` inside an identifier: one name per copy.
        let named = expand("// @unroll c 2\nlet e{c} = f(c, x{c}y);\n// @end unroll\n");
        assert_eq!(named, "let e0 = f(0u, x0y);\nlet e1 = f(1u, x1y);\n");
    }

    #[test]
    #[should_panic(expected = "without its")]
    fn unroll_without_its_end_is_a_bug() {
        expand("// @unroll kk 4\nx\n");
    }

    #[test]
    #[should_panic(expected = "no WGSL generator")]
    fn unknown_generator_is_a_bug() {
        expand("// @generate nonesuch\n");
    }
}
