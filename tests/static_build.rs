//! The release builds for the initramfs are fully static for both targets, as configured in
//! `.cargo/config.toml` (rust-lld, crt-static): no program interpreter, no dynamic section.

use std::path::{Path, PathBuf};
use std::process::Command;

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
    repo.join("target").join(target).join("release/ramboot")
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
        let bin = build(target);
        let (m, interp) = elf_facts(&bin);
        assert_eq!(m, machine, "{target}: ELF machine");
        assert!(
            !interp,
            "{target}: a static binary has no program interpreter"
        );
        let size = std::fs::metadata(&bin).unwrap().len();
        eprintln!("{target}: {} bytes", size);
        assert!(
            size < 8 << 20,
            "{target}: {size} bytes is too big for an initramfs /init"
        );
    }
    let out = Command::new(build("x86_64-unknown-linux-musl"))
        .arg("version")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ramboot "));
}
