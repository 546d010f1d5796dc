//! `ramboot mkinitfs` as a user runs it: from any directory, with the built-in feature lists,
//! refusing (with the reason) an `/init` the kernel could not run, and checking the
//! `/etc/mactab` it puts in.
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

/// `--mactab FILE` puts the file at `/etc/mactab` after reading it as the boot will: lines the
/// boot would skip are warned about, a file it would refuse is refused with the line.
#[test]
fn mactab_goes_in_as_etc_mactab_once_checked() {
    let dir = tempfile::tempdir().unwrap();
    let init = dir.path().join("ramboot");
    fs::write(&init, minimal(EM_AARCH64, true, 3, None)).unwrap();
    let tab = dir.path().join("mactab");
    let run = |out: &str| {
        Command::new(env!("CARGO_BIN_EXE_ramboot"))
            .current_dir(dir.path())
            .args(["mkinitfs", "--compress", "none", "-o", out, "--init"])
            .arg(&init)
            .arg("--mactab")
            .arg(&tab)
            .output()
            .unwrap()
    };
    let content = "lan0 b8:27:eb:00:00:01 # onboard\nwan0 bus=usb-0000:00:08.2-3\n";
    fs::write(&tab, content).unwrap();
    let out = run("initrd");
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("warning: /etc/mactab:2: `bus=usb-0000:00:08.2-3` is not supported"),
        "{}",
        text(&out)
    );
    let image = fs::read(dir.path().join("initrd")).unwrap();
    let find = |needle: &[u8]| image.windows(needle.len()).position(|w| w == needle);
    let name = find(b"etc/mactab\0").expect("etc/mactab in the archive");
    assert!(find(content.as_bytes()).is_some_and(|at| at > name));

    fs::write(&tab, "lan0 b8:27:eb:00:00\n").unwrap();
    let out = run("initrd2");
    assert!(!out.status.success());
    assert!(
        text(&out).contains("line 1: `b8:27:eb:00:00` is not a MAC address (XX:XX:XX:XX:XX:XX)"),
        "{}",
        text(&out)
    );
    assert!(!dir.path().join("initrd2").exists(), "nothing written");
}
