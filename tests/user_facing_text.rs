//! Issue 8, point 15, as a class: no user-facing line shows Rust Debug formatting
//! (`Verified { key: "…" }`, `Settled`, `"quoted"` by accident of the type). Every `{:?}`-style
//! format in the library and the binary outside test code is a finding; names from outside are
//! shown through `ramboot::quote::Quoted`, enums through their Display impls.

use std::fs;
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The text of a source file without its test code: a `tests.rs` file is all test code, so is
/// `src/fuzzing/` (fuzz target bodies whose panics are findings for the fuzz drivers, never
/// shown to users), and a `#[cfg(test)] mod …` block runs to the end of the file by this crate's
/// convention.
fn non_test_code(path: &Path) -> String {
    let fuzzing = path.components().any(|c| c.as_os_str() == "fuzzing");
    if fuzzing || path.file_name().is_some_and(|n| n == "tests.rs") {
        return String::new();
    }
    let text = fs::read_to_string(path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let mut kept = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let next = lines.get(i + 1).map_or("", |l| l.trim_start());
        if line.trim() == "#[cfg(test)]"
            && (next.starts_with("mod ") || next.starts_with("pub(crate) mod "))
            && next.ends_with('{')
        {
            break;
        }
        kept.push(*line);
    }
    kept.join("\n")
}

/// `{:?}`, `{x:?}`, `{:#?}`, `{0:>8?}` ...: a format spec that ends in `?`.
fn debug_specs(line: &str) -> bool {
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'{' {
            if b.get(i + 1) == Some(&b'{') {
                i += 2;
                continue;
            }
            if let Some(end) = line[i..].find('}') {
                let spec = &line[i + 1..i + end];
                if let Some((_, fmt)) = spec.split_once(':') {
                    if fmt.ends_with('?') {
                        return true;
                    }
                }
                i += end;
            }
        }
        i += 1;
    }
    false
}

#[test]
fn no_debug_formatting_outside_tests() {
    let mut files = Vec::new();
    rust_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    files.sort();
    let mut found = Vec::new();
    for f in &files {
        for (n, line) in non_test_code(f).lines().enumerate() {
            if !line.trim_start().starts_with("//") && debug_specs(line) {
                found.push(format!("{}:{}: {}", f.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "Debug formatting in user-facing code:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_scanner_sees_every_form() {
    for yes in [
        "format!(\"{:?}\", x)",
        "write!(f, \"{x:?}\")",
        "\"{:#?}\"",
        "\"{0:>8?}\"",
    ] {
        assert!(debug_specs(yes), "{yes}");
    }
    for no in ["\"{x}\"", "\"{{:?}}\"", "\"{:>8}\"", "a ? b"] {
        assert!(!debug_specs(no), "{no}");
    }
}
