//! The kernels keep the rules of the developers' guide that a compiler does not check: no
//! private arrays anywhere (function-scope `var x: array<...>` or `var<private> x:
//! array<...>`, array constructors), since on NVIDIA a private array indexed by a loop
//! variable lives in local memory (a GEMM tile ran 45x slower that way on the H100); and every
//! file in `shaders/` opens with its header comment (`// name.wgsl: ...`). The text rule is
//! checked on the files as written and on every module the engine compiles
//! (`module_sources`: the cells composed with their step products, f32 and f16, the layer
//! pipeline's joined steps, the unrolled GEMM tiles, every other kernel), so a generator that
//! emitted an array fails here. On the same modules, parsed by naga (the compiler wgpu uses),
//! no module-scope private variable may hold an array or a matrix, and nothing may index a
//! variable, or an array or matrix value, by a runtime value: that is what forces a register
//! into local memory, whatever its type (a `vec4` variable indexed by a loop variable as much
//! as an array). A private scalar or structure of scalars read by member (the joined steps'
//! per-layer parameters) is registers. And no entry point binds more storage buffers than the
//! adapter check in `Gpu::new` asks of the adapter. Needs no GPU.

use std::path::PathBuf;

use naga::{AddressSpace, Expression, TypeInner};
use wgrnn::backend::wgpu::runtime::KERNEL_STORAGE_BUFFERS;
use wgrnn::backend::wgpu::{instructions, module_sources};

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
/// is: a `var<private> name: array<...>`, a function-scope `var name: array<...>`, or an
/// array constructor `array<...>(...)` / `array(...)`. Workgroup, storage and uniform arrays
/// are not private.
fn private_arrays(src: &str) -> Vec<(usize, &'static str)> {
    let code = code_of(src);
    let b = code.as_bytes();
    let line = |i: usize| code[..i].matches('\n').count() + 1;
    let mut found = Vec::new();
    for i in 0..b.len() {
        if word_at(b, i, "var") {
            let j = skip_blank(b, i + 3);
            // `var name: type` (a function-scope variable) or `var<private> name: type`.
            let (j, what) = match code[j..].starts_with("<private>") {
                true => (skip_blank(b, j + 9), "private array variable"),
                false => (j, "function-scope array variable"),
            };
            if b.get(j) != Some(&b'<') {
                let colon = code[j..].find([':', '=', ';']).map(|k| j + k);
                if let Some(c) = colon.filter(|&c| b[c] == b':') {
                    let t = skip_blank(b, c + 1);
                    if word_at(b, t, "array") {
                        found.push((line(i), what));
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
               var<private> table: array<u32, 4>; var<private> seed: u32;\n\
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
            (2, "private array variable"),
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
fn compiled_modules_have_no_private_arrays() {
    let modules = module_sources();
    // 9 single kernels, 5 product families and 4 cells x 7 step products (the f32 tiles
    // with and without the parameters' vec4 binding, the tensor-core tiles and their
    // emulation with and without the f16 copy of W_hh, the matrix-vector products), and
    // the joined builds of all but the row-wise ones for the 3 cells whose steps join, each
    // f32 and f16.
    assert_eq!(modules.len(), 9 + 2 * (5 + 4 * 7 + 3 * 7));
    let mut names: Vec<&str> = modules.iter().map(|(name, _)| *name).collect();
    names.sort();
    names.dedup();
    assert_eq!(
        names.len(),
        modules.len(),
        "module names are pipeline keys: {names:?}"
    );
    for (name, src) in &modules {
        assert!(
            !src.lines().any(|l| l.trim().starts_with("// @generate")),
            "{name}: a template line was left"
        );
        let found = private_arrays(src);
        assert!(found.is_empty(), "{name}: {found:?}");
    }
}

/// Whether values of type `ty` hold an array or a matrix (in a structure's members too).
fn holds_array(module: &naga::Module, ty: naga::Handle<naga::Type>) -> bool {
    match &module.types[ty].inner {
        TypeInner::Array { .. } | TypeInner::Matrix { .. } => true,
        TypeInner::Struct { members, .. } => members.iter().any(|m| holds_array(module, m.ty)),
        _ => false,
    }
}

/// Where WGSL module `src` keeps something a GPU compiler can only put in local memory: a
/// `var<private>` holding an array or a matrix, or an index by a runtime value into a
/// private or function-scope variable (of any type: array, vector, matrix, structure) or
/// into an array or matrix value, which naga spills into one. Each as "function line N:
/// what". Indexing a vector value is fine (one select per component), as is any index into
/// workgroup, storage or uniform memory.
fn local_memory_uses(src: &str) -> Result<Vec<String>, String> {
    let (module, info) = instructions::parse(src)?;
    let mut found = Vec::new();
    for (_, global) in module.global_variables.iter() {
        if global.space == AddressSpace::Private && holds_array(&module, global.ty) {
            found.push(format!(
                "var<private> {}",
                global.name.as_deref().unwrap_or("?")
            ));
        }
    }
    let mut check = |name: &str, f: &naga::Function, fi: &naga::valid::FunctionInfo| {
        for (h, e) in f.expressions.iter() {
            let Expression::Access { base, .. } = e else {
                continue;
            };
            let private = |space: &AddressSpace| {
                matches!(space, AddressSpace::Function | AddressSpace::Private)
            };
            let what = match fi[*base].ty.inner_with(&module.types) {
                TypeInner::Pointer { space, .. } | TypeInner::ValuePointer { space, .. }
                    if private(space) =>
                {
                    "a variable"
                }
                TypeInner::Array { .. } => "an array value",
                TypeInner::Matrix { .. } => "a matrix value",
                _ => continue,
            };
            let line = f.expressions.get_span(h).location(src).line_number;
            found.push(format!(
                "{name} line {line}: {what} indexed by a runtime value"
            ));
        }
    };
    for (h, f) in module.functions.iter() {
        check(f.name.as_deref().unwrap_or("?"), f, &info[h]);
    }
    for (i, ep) in module.entry_points.iter().enumerate() {
        check(&ep.name, &ep.function, info.get_entry_point(i));
    }
    Ok(found)
}

#[test]
fn the_parsed_check_finds_each_local_memory_use() {
    let src = "var<private> table: array<u32, 4>; var<private> seed: u32;\n\
               var<workgroup> ws: array<vec4<f32>, 64>;\n\
               fn f(i: u32, v: vec4<f32>) -> f32 {\n\
                   var r = v;\n\
                   let a = array<f32, 2>(1.0, 2.0);\n\
                   let m = mat2x2<f32>(v.xy, v.zw);\n\
                   var s = 0.0;\n\
                   s += r[i];\n\
                   s += a[i];\n\
                   s += m[i].x;\n\
                   s += v[i] + ws[i].x + r[1] + a[0];\n\
                   return s;\n\
               }\n";
    let found = local_memory_uses(src).expect("the sample parses");
    assert_eq!(
        found,
        [
            "var<private> table",
            "f line 8: a variable indexed by a runtime value",
            "f line 9: an array value indexed by a runtime value",
            "f line 10: a matrix value indexed by a runtime value",
        ]
    );
}

#[test]
fn compiled_modules_keep_their_registers_out_of_local_memory() {
    for (name, src) in module_sources() {
        match local_memory_uses(&src) {
            Ok(found) => assert!(found.is_empty(), "{name}: {found:#?}"),
            Err(why) => panic!("{name} does not parse and validate: {why}"),
        }
    }
}

/// The storage buffers each entry point of WGSL module `src` binds (those it uses), as
/// (entry point, count).
fn storage_buffers(src: &str) -> Result<Vec<(String, u32)>, String> {
    let (module, info) = instructions::parse(src)?;
    Ok(module
        .entry_points
        .iter()
        .enumerate()
        .map(|(i, ep)| {
            let used = info.get_entry_point(i);
            let n = module
                .global_variables
                .iter()
                .filter(|(h, g)| {
                    matches!(g.space, AddressSpace::Storage { .. }) && !used[*h].is_empty()
                })
                .count();
            (ep.name.clone(), n as u32)
        })
        .collect())
}

#[test]
fn kernels_bind_what_the_adapter_check_asks_for() {
    // Gpu::new refuses adapters with fewer than KERNEL_STORAGE_BUFFERS storage buffers per
    // stage; only the step tiles' builds with a ninth binding (the f32 tiles' vec4 view of
    // the parameters, the tensor-core tiles' f16 copy of W_hh) take one more, and only where
    // the adapter has it (the `_8buffers` build stands in elsewhere).
    let modules = module_sources();
    let mut most = 0;
    for (name, src) in &modules {
        // Its build without the ninth binding (`_8buffers` before a joined build's
        // `_joined`).
        let narrow = match name.strip_suffix("_joined") {
            Some(stem) => format!("{stem}_8buffers_joined"),
            None => format!("{name}_8buffers"),
        };
        let spare = modules.iter().any(|(other, _)| *other == narrow);
        for (entry, n) in storage_buffers(src).unwrap_or_else(|why| panic!("{name}: {why}")) {
            let allowed = KERNEL_STORAGE_BUFFERS + u32::from(spare && entry.ends_with("_tiled"));
            assert!(n <= allowed, "{name}::{entry} binds {n} storage buffers");
            if !spare {
                most = most.max(n);
            }
        }
    }
    assert_eq!(
        most, KERNEL_STORAGE_BUFFERS,
        "the constant should be what some kernel needs"
    );
}
