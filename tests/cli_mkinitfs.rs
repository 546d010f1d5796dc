//! `ramboot mkinitfs` as a user runs it: from any directory, with the built-in feature lists,
//! refusing (with the reason) an `/init` the kernel could not run, checking the `/etc/mactab`
//! it puts in, and with `--tls --ca-bundle` putting the bundle where the TLS init reads it.
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

/// The files of an uncompressed newc archive: (name, mode, contents).
fn cpio_entries(bytes: &[u8]) -> Vec<(String, u32, Vec<u8>)> {
    let mut out = Vec::new();
    let mut pos = 0;
    loop {
        let head = std::str::from_utf8(&bytes[pos..pos + 110]).unwrap();
        assert_eq!(&head[..6], "070701", "a newc header at {pos}");
        let field = |i: usize| usize::from_str_radix(&head[6 + i * 8..14 + i * 8], 16).unwrap();
        let (mode, size, name_size) = (field(1) as u32, field(6), field(11));
        let name = String::from_utf8(bytes[pos + 110..pos + 109 + name_size].to_vec()).unwrap();
        pos = (pos + 110 + name_size).next_multiple_of(4);
        let data = bytes[pos..pos + size].to_vec();
        pos = (pos + size).next_multiple_of(4);
        if name == "TRAILER!!!" {
            return out;
        }
        out.push((name, mode, data));
    }
}

#[test]
fn the_ca_bundle_lands_where_the_tls_init_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let init = dir.path().join("ramboot-init-tls");
    fs::write(&init, minimal(EM_AARCH64, true, 3, None)).unwrap();
    let bundle = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tls/ca.pem");
    let out = Command::new(env!("CARGO_BIN_EXE_ramboot"))
        .current_dir(dir.path())
        .args(["mkinitfs", "-o", "initrd", "--compress", "none", "--tls"])
        .arg("--ca-bundle")
        .arg(&bundle)
        .arg("--init")
        .arg(&init)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let entries = cpio_entries(&fs::read(dir.path().join("initrd")).unwrap());
    // The path net::tls opens at boot, relative as in the archive.
    let at = ramboot::net::CA_BUNDLE.trim_start_matches('/');
    let (_, mode, data) = entries
        .iter()
        .find(|(name, ..)| name == at)
        .unwrap_or_else(|| {
            panic!(
                "no {at} in {:?}",
                entries.iter().map(|e| &e.0).collect::<Vec<_>>()
            )
        });
    assert_eq!(*data, fs::read(&bundle).unwrap());
    assert_eq!(mode & 0o170000, 0o100000, "a regular file");
    assert_eq!(mode & 0o004, 0o004, "readable");
    let (_, _, init_data) = entries.iter().find(|(name, ..)| name == "init").unwrap();
    assert_eq!(
        *init_data,
        fs::read(&init).unwrap(),
        "the named init at /init"
    );
}

#[test]
fn a_ca_bundle_that_is_not_a_file_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let init = dir.path().join("ramboot-init-tls");
    fs::write(&init, minimal(EM_AARCH64, true, 3, None)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ramboot"))
        .current_dir(dir.path())
        .args([
            "mkinitfs",
            "-o",
            "initrd",
            "--tls",
            "--ca-bundle",
            "missing.pem",
            "--init",
        ])
        .arg(&init)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("missing.pem"), "{}", text(&out));
    assert!(text(&out).contains("not a file"), "{}", text(&out));
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
