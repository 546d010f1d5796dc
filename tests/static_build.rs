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

/// (machine, has PT_INTERP, has PT_DYNAMIC with DT_NEEDED-free) from a 64-bit little-endian ELF.
fn elf_facts(path: &Path) -> (u16, bool) {
    let b = std::fs::read(path).unwrap();
    assert_eq!(&b[..4], b"\x7fELF", "{} is an ELF file", path.display());
    assert_eq!(b[4], 2, "64-bit");
    let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]);
    let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
    let machine = u16_at(18);
    let phoff = u64_at(32) as usize;
    let phentsize = u16_at(54) as usize;
    let phnum = u16_at(56) as usize;
    let interp = (0..phnum)
        .any(|i| u32::from_le_bytes(b[phoff + i * phentsize..][..4].try_into().unwrap()) == 3);
    (machine, interp)
}

#[test]
fn aarch64_and_x86_64_release_builds_are_static() {
    for (target, machine) in [
        ("aarch64-unknown-linux-musl", 183u16),
        ("x86_64-unknown-linux-musl", 62),
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
