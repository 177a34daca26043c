//! The kernels keep the rules of the developers' guide that a compiler does not check: no
//! private arrays anywhere (function-scope `var x: array<...>`, `var<private>`, array
//! constructors), since on NVIDIA a private array indexed by a loop variable lives in local
//! memory (a GEMM tile ran 45x slower that way on the H100); and every file in `shaders/`
//! opens with its header comment (`// name.wgsl: ...`). Checked on the files as written and on
//! every generated module (the cells composed with their step products, f32 and f16, and the
//! unrolled GEMM tiles), so a generator that emitted an array fails here. Needs no GPU.

use std::path::PathBuf;

use wgrnn::backend::wgpu::gemm::{gemm_coop_source, gemm128_source, gemm256_source};
use wgrnn::backend::wgpu::{CellKind, StepProducts, cell_module_source};

/// `src` without its `//` comments.
fn code_of(src: &str) -> String {
    src.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether `b[i..]` starts the word `word` (not part of a longer identifier).
fn word_at(b: &[u8], i: usize, word: &str) -> bool {
    let w = word.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    b[i..].starts_with(w)
        && (i == 0 || !ident(b[i - 1]))
        && b.get(i + w.len()).is_none_or(|&c| !ident(c))
}

/// The index of the first non-blank byte at or after `i`.
fn skip_blank(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// The private arrays in WGSL source `src`, each as the line it is on (1-based) and what it
/// is: a `var<private>`, a function-scope `var name: array<...>`, or an array constructor
/// `array<...>(...)` / `array(...)`. Workgroup, storage and uniform arrays are not private.
fn private_arrays(src: &str) -> Vec<(usize, &'static str)> {
    let code = code_of(src);
    let b = code.as_bytes();
    let line = |i: usize| code[..i].matches('\n').count() + 1;
    let mut found = Vec::new();
    for i in 0..b.len() {
        if word_at(b, i, "var") {
            let j = skip_blank(b, i + 3);
            if code[j..].starts_with("<private>") {
                found.push((line(i), "var<private>"));
            } else if b.get(j) != Some(&b'<') {
                // `var name: type`: a function-scope (private) variable.
                let colon = code[j..].find([':', '=', ';']).map(|k| j + k);
                if let Some(c) = colon.filter(|&c| b[c] == b':') {
                    let t = skip_blank(b, c + 1);
                    if word_at(b, t, "array") {
                        found.push((line(i), "function-scope array variable"));
                    }
                }
            }
        }
        if word_at(b, i, "array") {
            let mut j = skip_blank(b, i + 5);
            if b.get(j) == Some(&b'<') {
                let mut depth = 0usize;
                while j < b.len() {
                    match b[j] {
                        b'<' => depth += 1,
                        b'>' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    j += 1;
                }
                j = skip_blank(b, j + 1);
            }
            if b.get(j) == Some(&b'(') {
                found.push((line(i), "array constructor"));
            }
        }
    }
    found
}

/// Every `.wgsl` file of `shaders/`, by name, with its text.
fn shader_files() -> Vec<(String, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .expect("the shaders directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "wgsl"))
        .map(|p| {
            let name = p
                .file_name()
                .expect("a file name")
                .to_string_lossy()
                .into_owned();
            let text = std::fs::read_to_string(&p).expect("a readable shader");
            (name, text)
        })
        .collect();
    files.sort();
    files
}

#[test]
fn the_check_finds_each_kind_of_private_array() {
    let src = "var<workgroup> ws: array<vec4<f32>, 64>;\n\
               var<private> seed: u32;\n\
               fn f(i: u32) -> f32 {\n\
                   var acc: array<f32, 4>;\n\
                   let w = array<vec4<f32>, 2>(vec4<f32>(0.0), vec4<f32>(1.0));\n\
                   let z = array(1.0, 2.0);\n\
                   var ok: vec4<f32>; // var bad: array<f32, 4>;\n\
                   var n = 0u;\n\
                   return acc[i] + w[i].x + z[i];\n\
               }\n";
    assert_eq!(
        private_arrays(src),
        [
            (2, "var<private>"),
            (4, "function-scope array variable"),
            (5, "array constructor"),
            (6, "array constructor"),
        ]
    );
    assert!(
        private_arrays("var<storage, read> p: array<f32>;\nvar<workgroup> a: array<u32, 4>;")
            .is_empty()
    );
}

#[test]
fn shader_files_have_headers_and_no_private_arrays() {
    let files = shader_files();
    assert!(files.len() >= 20, "{} shader files", files.len());
    for (name, text) in &files {
        let head = format!("// {name}: ");
        assert!(
            text.starts_with(&head),
            "shaders/{name} must open with its header comment `{head}...`"
        );
        let found = private_arrays(text);
        assert!(found.is_empty(), "shaders/{name}: {found:?}");
    }
}

#[test]
fn generated_modules_have_no_private_arrays() {
    let mut modules = vec![
        ("gemm128".to_string(), gemm128_source()),
        ("gemm256".to_string(), gemm256_source()),
        ("gemm_coop f32 B".to_string(), gemm_coop_source(false)),
        ("gemm_coop f16 B".to_string(), gemm_coop_source(true)),
    ];
    for cell in [
        CellKind::Elman,
        CellKind::Lstm,
        CellKind::Gru,
        CellKind::Jordan,
    ] {
        for f16 in [false, true] {
            for products in StepProducts::ALL {
                let label = format!("{cell:?} f16={f16} {products:?}");
                modules.push((label, cell_module_source(cell, f16, products)));
            }
        }
    }
    for (label, src) in &modules {
        assert!(
            !src.lines().any(|l| l.trim().starts_with("// @generate")),
            "{label}: a template line was left"
        );
        let found = private_arrays(src);
        assert!(found.is_empty(), "{label}: {found:?}");
    }
}
