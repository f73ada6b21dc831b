//! The layers of `streamdsl/src` point one way: each `crate::` path in a module names a module of its own layer
//! or below, as listed in the crate doc's "Architecture" table, and the module graph has no circle. Each op
//! picks its backend with one `match`, never with `is_cuda()`/`is_cpu()` branches.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// `(layer, position within the layer)` of every module named in the Architecture table of `lib.rs`.
fn layers(lib_rs: &str) -> BTreeMap<String, (u32, u32)> {
    let mut out = BTreeMap::new();
    let table = lib_rs.split("## Architecture").nth(1).expect("lib.rs documents its Architecture");
    for line in table.lines().map(|l| l.trim_start_matches("//!").trim()) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let Some(layer) = cells.get(1).and_then(|c| c.parse::<u32>().ok()) else { continue };
        for (position, group) in cells[2].split('→').enumerate() {
            for name in group.split('`').skip(1).step_by(2) {
                out.insert(name.to_string(), (layer, position as u32));
            }
        }
    }
    assert!(out.len() > 10, "the Architecture table lists too few modules: {out:?}");
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to: `backend/cpu/machine.rs` → `backend`, `lib.rs` → `lib`.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel.components().next().unwrap().as_os_str().to_string_lossy().into_owned();
    first.strip_suffix(".rs").unwrap_or(&first).to_string()
}

/// The code of a file without comments (line comments and doc comments), so doc links are not imports.
fn code(text: &str) -> String {
    text.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n")
}

/// `(line, first segment)` of every `crate::` path, including each item of `crate::{a, b::c}`.
fn crate_paths(code: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = code[from..].find("crate::").map(|i| i + from) {
        from = i + "crate::".len();
        let preceded = code[..i].chars().next_back();
        if preceded.is_some_and(|c| c == '$' || c.is_alphanumeric() || c == '_') {
            continue; // `$crate::` (the macro front) or an identifier ending in `crate`
        }
        let line = code[..i].matches('\n').count() + 1;
        let rest = &code[from..];
        if rest.starts_with('{') {
            let (mut depth, mut item, mut items) = (0, String::new(), Vec::new());
            for c in rest.chars() {
                match c {
                    '{' => {
                        depth += 1;
                        if depth == 1 {
                            continue;
                        }
                    }
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            items.push(std::mem::take(&mut item));
                            break;
                        }
                    }
                    ',' if depth == 1 => {
                        items.push(std::mem::take(&mut item));
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
            for item in items {
                let name: String = item.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                if !name.is_empty() {
                    out.push((line, name));
                }
            }
        } else {
            let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            out.push((line, name));
        }
    }
    out
}

#[test]
fn imports_point_down_the_layers_and_never_in_a_circle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../streamdsl/src");
    let layers = layers(&std::fs::read_to_string(src.join("lib.rs")).unwrap());
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut violations = Vec::new();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let module = module_of(&src, file);
        let Some(&(layer, position)) = layers.get(&module) else {
            violations.push(format!("{}: module `{module}` is missing from the Architecture table", file.display()));
            continue;
        };
        for (line, target) in crate_paths(&code(&std::fs::read_to_string(file).unwrap())) {
            if target == module || matches!(target.as_str(), "self" | "super") {
                continue;
            }
            // Anything else (`crate::Error`, `crate::gpu_scope`) is a re-export of the crate root, `lib`: the top.
            let (t_layer, t_position) = layers.get(&target).copied().unwrap_or(layers["lib"]);
            let target = if layers.contains_key(&target) { target } else { "lib".to_string() };
            if target == module {
                continue;
            }
            if (t_layer, t_position) > (layer, position) {
                violations.push(format!(
                    "{}:{line}: `{module}` (layer {layer}) imports `crate::{target}` (layer {t_layer}) from above",
                    file.display()
                ));
            }
            graph.entry(module.clone()).or_default().insert(target);
        }
    }
    // No circle: a depth-first search finds no back edge.
    fn visit<'a>(
        m: &'a str,
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<&'a str, bool>,
        stack: &mut Vec<&'a str>,
        circles: &mut Vec<String>,
    ) {
        match state.get(m) {
            Some(true) => return,
            Some(false) => {
                let from = stack.iter().position(|s| *s == m).unwrap_or(0);
                circles.push(format!("{} → {m}", stack[from..].join(" → ")));
                return;
            }
            None => {}
        }
        state.insert(m, false);
        stack.push(m);
        for t in graph.get(m).into_iter().flatten() {
            visit(t, graph, state, stack, circles);
        }
        stack.pop();
        state.insert(m, true);
    }
    let (mut state, mut circles) = (BTreeMap::new(), Vec::new());
    for m in graph.keys() {
        visit(m, &graph, &mut state, &mut Vec::new(), &mut circles);
    }
    violations.extend(circles.into_iter().map(|c| format!("import circle: {c}")));
    assert!(violations.is_empty(), "layering violations:\n{}", violations.join("\n"));
}

#[test]
fn ops_choose_the_backend_with_one_match() {
    let ops = Path::new(env!("CARGO_MANIFEST_DIR")).join("../streamdsl/src/ops");
    let mut files = Vec::new();
    rust_files(&ops, &mut files);
    for file in files {
        let text = code(&std::fs::read_to_string(&file).unwrap());
        for (n, line) in text.lines().enumerate() {
            assert!(
                !line.contains("is_cuda()") && !line.contains("is_cpu()"),
                "{}:{}: an op branches on the device kind; match on `stream.queue()` instead: {line}",
                file.display(),
                n + 1
            );
        }
    }
}

#[test]
fn the_checker_sees_grouped_imports_and_ignores_the_macro_front() {
    let found = crate_paths(
        "use crate::{backend::{Kernels, Queue}, dtype::Element};\nlet x = $crate::ops::mm;\nlet mycrate::y;",
    );
    assert_eq!(found, vec![(1, "backend".to_string()), (1, "dtype".to_string())]);
    let found = crate_paths("use crate::hazard::Point;\n  crate::ops::x()");
    assert_eq!(found, vec![(1, "hazard".to_string()), (2, "ops".to_string())]);
}
