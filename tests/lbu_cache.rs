//! An lbu-style card (`lbu` with a package cache: the apkovl links `etc/apk/cache` to
//! `/media/<dev>/cache` on the card) booted through `ramboot plan`, i.e. the whole boot on the
//! recording double. The card is mounted read-only; the installer must remount it read-write
//! for `cache/installed` and back, as apk-tools does, and the boot must stay free of warnings.
// Tests drive real tools and processes (QEMU, mkfs, the built binary): the system boundary
// lint is for the library.
#![allow(clippy::disallowed_methods)]

mod apk_support;

use apk_support::*;
use std::fs;
use std::path::Path;
use std::process::Command;

/// The apkovl: the cache link, a world and a hostname.
fn apkovl() -> Vec<u8> {
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    for (path, content) in [("etc/apk/world", "hello\n"), ("etc/hostname", "pi\n")] {
        let mut h = tar::Header::new_gnu();
        h.set_size(content.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, path, content.as_bytes()).unwrap();
    }
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    h.set_mode(0o777);
    b.append_link(&mut h, "etc/apk/cache", "/media/mmcblk0p1/cache")
        .unwrap();
    b.into_inner().unwrap().finish().unwrap()
}

/// A card copy: a signed boot repository, an empty cache, the apkovl; the test key among the
/// initramfs keys; an init in the new root.
fn card(dir: &Path) {
    let f = Fixture::new();
    f.publish(vec![pkg("hello", "1").file(
        "usr/share/hello",
        b"hi\n",
        0o644,
    )]);
    let card = dir.join("media/mmcblk0p1");
    let arch = ramboot::apk::build::default_arch();
    fs::create_dir_all(card.join("apks").join(arch)).unwrap();
    for e in fs::read_dir(f.repo().join(arch)).unwrap().flatten() {
        fs::copy(e.path(), card.join("apks").join(arch).join(e.file_name())).unwrap();
    }
    fs::write(card.join("apks/.boot_repository"), b"").unwrap();
    fs::create_dir_all(card.join("cache")).unwrap();
    fs::write(card.join("cache/.keep"), b"").unwrap();
    fs::write(card.join("pi.apkovl.tar.gz"), apkovl()).unwrap();
    fs::create_dir_all(dir.join("etc/apk/keys")).unwrap();
    fs::copy(
        f.keys().join(KEY_NAME),
        dir.join("etc/apk/keys").join(KEY_NAME),
    )
    .unwrap();
    let init = dir.join("sysroot/sbin/init");
    fs::create_dir_all(init.parent().unwrap()).unwrap();
    fs::write(&init, b"#!/bin/sh\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&init, fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn a_healthy_lbu_card_boots_without_warnings_and_its_cache_is_remounted_for_the_write() {
    let dir = tempfile::tempdir().unwrap();
    card(dir.path());
    let out = Command::new(env!("CARGO_BIN_EXE_ramboot"))
        .args(["plan", "--keep", "--root"])
        .arg(dir.path())
        .args(["--cmdline", "console=ttyS0"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let all = format!("{text}\n{}", String::from_utf8_lossy(&out.stderr));
    let scratch = text
        .lines()
        .find_map(|l| l.strip_prefix("(scratch copy kept in ")?.strip_suffix(')'))
        .map(|p| Scratch(p.into()))
        .unwrap_or_else(|| panic!("no scratch path:\n{all}"));
    assert!(out.status.success(), "{all}");
    assert!(text.contains("(1/1) Installing hello (1)"), "{all}");
    assert!(!all.contains("WARNING"), "{all}");
    let rw = text
        .find("mount -o remount /media/mmcblk0p1\n")
        .unwrap_or_else(|| panic!("no remount read-write:\n{all}"));
    let ro = text
        .find("mount -o remount,ro /media/mmcblk0p1\n")
        .unwrap_or_else(|| panic!("no remount read-only:\n{all}"));
    assert!(rw < ro, "{all}");
    assert!(
        scratch.0.join("media/mmcblk0p1/cache/installed").is_file(),
        "{all}"
    );
}

/// The plan's kept scratch copy, removed when the test ends.
struct Scratch(std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}
