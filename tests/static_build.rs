//! The release builds for the initramfs are fully static for both targets, as configured in
//! `.cargo/config.toml` (rust-lld, crt-static): no program interpreter, no dynamic section. The
//! init build (`ramboot-init`, what `mkinitfs` puts at `/init`) stays within its size budget.
// Tests drive real tools and processes (QEMU, mkfs, the built binary): the system boundary
// lint is for the library.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The init build's budget on aarch64 (issue "shape and size"): 1.5 MiB.
const INIT_BUDGET: u64 = 1536 * 1024;

/// Builds both binaries for `target`; returns the release directory.
fn build(target: &str) -> PathBuf {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let status = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--release", "--target", target])
        .current_dir(&repo)
        .status()
        .expect("cargo runs");
    assert!(
        status.success(),
        "cargo build --release --target {target} failed"
    );
    repo.join("target").join(target).join("release")
}

/// (machine, has a program interpreter), read by the crate's own ELF reader.
fn elf_facts(path: &Path) -> (u16, bool) {
    let info = ramboot::elf::parse(&std::fs::read(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (info.machine, info.interpreter.is_some())
}

#[test]
fn aarch64_and_x86_64_release_builds_are_static() {
    for (target, machine) in [
        ("aarch64-unknown-linux-musl", ramboot::elf::EM_AARCH64),
        ("x86_64-unknown-linux-musl", ramboot::elf::EM_X86_64),
    ] {
        let dir = build(target);
        for name in ["ramboot", "ramboot-init"] {
            let bin = dir.join(name);
            let (m, interp) = elf_facts(&bin);
            assert_eq!(m, machine, "{target} {name}: ELF machine");
            assert!(
                !interp,
                "{target} {name}: a static binary has no program interpreter"
            );
            let size = std::fs::metadata(&bin).unwrap().len();
            eprintln!("{target} {name}: {size} bytes");
        }
    }
    let out = Command::new(build("x86_64-unknown-linux-musl").join("ramboot"))
        .arg("version")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ramboot "));
}

#[test]
fn the_aarch64_init_build_is_within_its_budget() {
    let init = build("aarch64-unknown-linux-musl").join("ramboot-init");
    let size = std::fs::metadata(&init).unwrap().len();
    eprintln!("aarch64 ramboot-init: {size} bytes (budget {INIT_BUDGET})");
    assert!(
        size <= INIT_BUDGET,
        "aarch64 ramboot-init is {size} bytes, over the {INIT_BUDGET}-byte budget"
    );
}
