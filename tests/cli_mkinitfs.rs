//! `ramboot mkinitfs` as a user runs it: from any directory, with the built-in feature lists,
//! and refusing (with the reason) an `/init` the kernel could not run.
// Tests drive real tools and processes (QEMU, mkfs, the built binary): the system boundary
// lint is for the library.
#![allow(clippy::disallowed_methods)]

use ramboot::elf::{minimal, EM_AARCH64, EM_X86_64};
use std::fs;
use std::path::Path;
use std::process::{Command, Output};

/// A `lib/modules/<release>` tree with one aarch64 module that `-F base` asks for.
fn aarch64_modules(dir: &Path) -> std::path::PathBuf {
    let mods = dir.join("lib/modules/6.1.0-arm64");
    fs::create_dir_all(mods.join("kernel/fs/squashfs")).unwrap();
    fs::write(
        mods.join("kernel/fs/squashfs/squashfs.ko"),
        minimal(EM_AARCH64, true, 1, None),
    )
    .unwrap();
    fs::write(
        mods.join("modules.dep"),
        "kernel/fs/squashfs/squashfs.ko:\n",
    )
    .unwrap();
    mods
}

fn mkinitfs(cwd: &Path, init: &Path, mods: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ramboot"))
        .current_dir(cwd)
        .args(["mkinitfs", "-o", "initrd", "-F", "base", "--init"])
        .arg(init)
        .arg("--kernel-modules")
        .arg(mods)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn built_in_feature_lists_work_from_any_directory() {
    let dir = tempfile::tempdir().unwrap();
    let mods = aarch64_modules(dir.path());
    let init = dir.path().join("ramboot");
    fs::write(&init, minimal(EM_AARCH64, true, 3, None)).unwrap();
    // The working directory has no initramfs/features.
    let out = mkinitfs(dir.path(), &init, &mods);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("1 modules"), "{}", text(&out));
    // --features-dir still overrides.
    let own = dir.path().join("own");
    fs::create_dir_all(&own).unwrap();
    fs::write(own.join("mine.modules"), "squashfs\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ramboot"))
        .current_dir(dir.path())
        .args(["mkinitfs", "-o", "initrd2", "-F", "mine", "--features-dir"])
        .arg(&own)
        .arg("--init")
        .arg(&init)
        .arg("--kernel-modules")
        .arg(&mods)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn an_init_the_kernel_cannot_run_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let mods = aarch64_modules(dir.path());
    let init = dir.path().join("ramboot");
    fs::write(
        &init,
        minimal(EM_AARCH64, true, 3, Some("/lib/ld-musl-aarch64.so.1")),
    )
    .unwrap();
    let out = mkinitfs(dir.path(), &init, &mods);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("dynamically linked (it needs the loader /lib/ld-musl-aarch64.so.1"),
        "{}",
        text(&out)
    );
    fs::write(&init, minimal(EM_X86_64, true, 3, None)).unwrap();
    let out = mkinitfs(dir.path(), &init, &mods);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("built for x86_64 but the kernel modules are for aarch64"),
        "{}",
        text(&out)
    );
    assert!(!dir.path().join("initrd").exists(), "nothing written");
}
