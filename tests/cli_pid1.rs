//! Issue 8 (10): as PID 1, ramboot boots only when it is the init. As a container's entrypoint
//! (`ramboot mkinitfs …` with PID 1 in a new PID namespace) it runs the command it was given.
//!
//! Each run uses `unshare --pid --fork` (util-linux, installed by `qemu/setup-host.sh`) with a
//! private mount namespace and a root of its own (the test binary and its libraries copied into
//! a temporary directory): if the binary did boot, its mounts and directories would stay there.
//! Needs root; without it (or without `unshare`) the test fails when `CI` is set.
// Tests drive real tools and processes (QEMU, mkfs, the built binary): the system boundary
// lint is for the library.
#![allow(clippy::disallowed_methods)]

mod support;

use std::path::Path;
use std::process::{Command, Output};

/// A temporary root holding `/ramboot` and the shared libraries it links against.
fn root_with_ramboot() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_ramboot");
    std::fs::copy(bin, dir.path().join("ramboot")).unwrap();
    // `ldd` prints `name => /path (addr)` and `/lib64/ld-linux… (addr)`; a static build prints
    // nothing useful and needs nothing.
    let ldd = Command::new("ldd").arg(bin).output().expect("ldd runs");
    for word in String::from_utf8_lossy(&ldd.stdout).split_whitespace() {
        if word.starts_with('/') && Path::new(word).is_file() {
            let to = dir.path().join(word.trim_start_matches('/'));
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(word, &to).unwrap();
        }
    }
    dir
}

/// Runs `/ramboot ARGS` as PID 1 of a new PID namespace, or `None` when this host cannot.
fn run_as_pid1(root: &Path, args: &[&str]) -> Option<Output> {
    let can = rustix::process::geteuid().is_root()
        && Command::new("unshare")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success());
    if !can {
        support::tools::missing("running as PID 1 needs root and unshare (util-linux)");
        return None;
    }
    // A hang guard only: the command takes milliseconds; a binary that boots instead never
    // ends, and `--kill-child` takes it down with `unshare`.
    let out = Command::new("timeout")
        .args([
            "-s",
            "KILL",
            "60",
            "unshare",
            "--pid",
            "--fork",
            "--kill-child",
        ])
        .args(["--mount", "--propagation", "private", "--root"])
        .arg(root)
        .arg("/ramboot")
        .args(args)
        .output()
        .expect("timeout runs");
    Some(out)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn ramboot_version_as_pid1_runs_the_command() {
    let root = root_with_ramboot();
    let Some(out) = run_as_pid1(root.path(), &["--version"]) else {
        return;
    };
    assert!(
        out.status.success(),
        "{:?}\nstdout: {}\nstderr: {}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(
        text(&out.stdout),
        format!("ramboot {}\n", env!("CARGO_PKG_VERSION"))
    );
    assert!(
        !root.path().join("sysroot").exists(),
        "the boot did not start"
    );
}

#[test]
fn cmdline_explain_as_pid1_runs_the_command() {
    let root = root_with_ramboot();
    let Some(out) = run_as_pid1(root.path(), &["cmdline", "explain", "quiet"]) else {
        return;
    };
    assert!(
        out.status.success(),
        "{:?}\nstdout: {}\nstderr: {}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(text(&out.stdout).contains("quiet"), "{}", text(&out.stdout));
    assert!(!root.path().join("sysroot").exists());
}
