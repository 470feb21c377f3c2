//! The code's shape, as issue 20 set it: no function in src/, tools/ or bpf/ longer than a
//! reader takes in at a glance (60 lines, signature to closing brace). No root needed.

use std::fs;
use std::path::{Path, PathBuf};

const MAX_LINES: usize = 60;

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap().map(Result::unwrap) {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, out);
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("rs" | "c" | "h")
        ) {
            out.push(path);
        }
    }
}

/// Whether `line` starts a function definition: a Rust `fn`, or a C definition at the left
/// margin (a return type, then a name and its parameters; declarations end in `;`).
fn starts_function(line: &str, rust: bool) -> bool {
    let code = line.trim_start();
    if rust {
        let words: Vec<&str> = code.split_whitespace().take(6).collect();
        let fn_at = words.iter().position(|w| *w == "fn");
        return fn_at.is_some_and(|i| {
            words[..i].iter().all(|w| {
                w.starts_with("pub") || ["const", "async", "unsafe", "extern", "\"C\""].contains(w)
            })
        });
    }
    let first = line.chars().next().unwrap_or(' ');
    (first.is_ascii_alphabetic() || first == '_')
        && line.contains('(')
        && !line.trim_end().ends_with(';')
        && !code.starts_with("struct ")
        && !code.starts_with("#")
        && !code.starts_with("typedef")
}

/// Length in lines of the function starting at `lines[start]`, or None for a declaration.
fn function_length(lines: &[&str], start: usize) -> Option<usize> {
    let mut depth = 0i32;
    let mut opened = false;
    for (i, line) in lines.iter().enumerate().skip(start) {
        for ch in line.chars() {
            match ch {
                '{' => {
                    depth += 1;
                    opened = true;
                }
                '}' => depth -= 1,
                _ => {}
            }
        }
        if opened && depth <= 0 {
            return Some(i - start + 1);
        }
        if !opened && line.trim_end().ends_with(';') {
            return None;
        }
    }
    None
}

fn long_functions(path: &Path) -> Vec<String> {
    let text = fs::read_to_string(path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let rust = path.extension().is_some_and(|e| e == "rs");
    let mut long = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if !starts_function(line, rust) {
            continue;
        }
        if let Some(n) = function_length(&lines, i).filter(|n| *n > MAX_LINES) {
            long.push(format!(
                "{}:{}: {} lines: {}",
                path.display(),
                i + 1,
                n,
                line.trim()
            ));
        }
    }
    long
}

#[test]
fn no_function_is_longer_than_sixty_lines() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["src", "tools", "bpf"] {
        sources(&root.join(dir), &mut files);
    }
    assert!(files.len() > 20, "found only {} source files", files.len());
    let long: Vec<String> = files.iter().flat_map(|f| long_functions(f)).collect();
    assert!(
        long.is_empty(),
        "functions over {MAX_LINES} lines:\n{}",
        long.join("\n")
    );
}

#[test]
fn the_check_finds_a_long_function() {
    let body = "    x += 1;\n".repeat(MAX_LINES);
    let rust = format!("pub fn f() {{\n{body}}}\n");
    let c = format!("static __always_inline int f(void)\n{{\n{body}}}\n");
    for (name, text) in [("f.rs", rust), ("f.c", c)] {
        let path =
            std::env::temp_dir().join(format!("tcptools-shape-{}-{name}", std::process::id()));
        fs::write(&path, text).unwrap();
        let found = long_functions(&path);
        fs::remove_file(&path).unwrap();
        assert_eq!(found.len(), 1, "{name}: {found:?}");
    }
}
