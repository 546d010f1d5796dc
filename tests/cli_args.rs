//! Every command parses its words with the same rules (issue 12, point 3): an unknown flag is
//! refused with one line naming it, then the command's usage, and the command's usage status;
//! `--flag=value` is accepted wherever `--flag value` is; `-h`/`--help` prints the usage.
// Tests drive real tools and processes (QEMU, mkfs, the built binary): the system boundary
// lint is for the library.
#![allow(clippy::disallowed_methods)]

use std::os::unix::process::CommandExt;
use std::process::{Command, Output};

/// (argv[0], words before the flags, how messages name the command, a flag with its value
/// glued on, the usage status).
type Case = (
    &'static str,
    &'static [&'static str],
    &'static str,
    &'static str,
    i32,
);
const COMMANDS: &[Case] = &[
    (
        "ramboot",
        &["mkinitfs"],
        "ramboot mkinitfs",
        "--output=x",
        2,
    ),
    ("ramboot", &["plan"], "ramboot plan", "--root=/", 2),
    ("ramboot", &["install"], "ramboot install", "--root=x", 99),
    (
        "ramboot",
        &["apk", "genkey"],
        "ramboot apk genkey",
        "--out=x",
        2,
    ),
    (
        "ramboot",
        &["apk", "mkpkg"],
        "ramboot apk mkpkg",
        "--root=x",
        2,
    ),
    (
        "ramboot",
        &["apk", "index"],
        "ramboot apk index",
        "--key=x",
        2,
    ),
    (
        "ramboot",
        &["cmdline", "explain"],
        "ramboot cmdline",
        "--file=x",
        2,
    ),
    ("modprobe", &[], "modprobe", "--set-version=1", 1),
];

fn run(argv0: &str, words: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ramboot"))
        .arg0(argv0)
        .args(words)
        .env("PATH", "/nonexistent")
        .output()
        .unwrap()
}

#[test]
fn every_command_refuses_an_unknown_flag_the_same_way() {
    for &(argv0, prefix, prog, _, status) in COMMANDS {
        for bogus in ["--bogus", "-Z", "--bogus=1"] {
            let words: Vec<&str> = prefix.iter().copied().chain([bogus]).collect();
            let out = run(argv0, &words);
            let err = String::from_utf8_lossy(&out.stderr);
            let flag = bogus.split('=').next().unwrap();
            let first = format!("{prog}: unknown flag {flag}\n\nusage: ");
            assert_eq!(out.status.code(), Some(status), "{prog} {bogus}: {err}");
            assert!(err.starts_with(&first), "{prog} {bogus}:\n{err}");
            assert!(out.stdout.is_empty(), "{prog} {bogus}");
        }
    }
}

#[test]
fn every_command_takes_glued_values_and_help() {
    for &(argv0, prefix, prog, glued, _) in COMMANDS {
        // The raw stage accepts the glued value; --help then prints the usage, exit 0.
        for help in ["--help", "-h"] {
            let words: Vec<&str> = prefix.iter().copied().chain([glued, help]).collect();
            let out = run(argv0, &words);
            let text = String::from_utf8_lossy(&out.stdout);
            assert_eq!(out.status.code(), Some(0), "{prog} {glued} {help}: {out:?}");
            assert!(text.starts_with("usage: "), "{prog}:\n{text}");
        }
        // A missing value is named the same way.
        let flag = glued.split('=').next().unwrap();
        let words: Vec<&str> = prefix.iter().copied().chain([flag]).collect();
        let err = String::from_utf8_lossy(&run(argv0, &words).stderr).into_owned();
        assert!(
            err.starts_with(&format!("{prog}: {flag} needs a value\n\nusage: ")),
            "{prog} {flag}:\n{err}"
        );
    }
}

/// A glued value means the same as a separate one, end to end.
#[test]
fn glued_values_reach_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cmdline.txt");
    std::fs::write(&file, "quiet modules=a,b\n").unwrap();
    let glued = run(
        "ramboot",
        &["cmdline", "explain", &format!("--file={}", file.display())],
    );
    let separate = run(
        "ramboot",
        &["cmdline", "explain", "--file", file.to_str().unwrap()],
    );
    assert!(glued.status.success(), "{glued:?}");
    assert_eq!(glued.stdout, separate.stdout);
    // A switch given a value is refused, naming it.
    let out = run("ramboot", &["cmdline", "explain", "--json=yes", "quiet"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("ramboot cmdline: --json takes no value\n\nusage: "),
        "{err}"
    );
}
