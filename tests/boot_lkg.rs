//! Last-known-good at boot (issue 13, point 3), the whole diskless boot on the recording double
//! (`ramboot plan`): an apkovl that already booted `ramboot_lkg` times unconfirmed is passed over
//! for the newest backup of the rotation, the reason is logged and in the timeline, and the
//! attempt record on the card says what was booted; `cmdline explain` shows the setting.
// Tests drive the built binary: the system boundary lint is for the library.
#![allow(clippy::disallowed_methods)]

mod apk_support;

use apk_support::*;
use ramboot::boot::lkg;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// An apkovl with a hostname and a world.
fn apkovl(hostname: &str) -> Vec<u8> {
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    for (path, content) in [("etc/apk/world", "hello\n"), ("etc/hostname", hostname)] {
        let mut h = tar::Header::new_gnu();
        h.set_size(content.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, path, content.as_bytes()).unwrap();
    }
    b.into_inner().unwrap().finish().unwrap()
}

/// A card: a signed boot repository, the current apkovl (`new`) and its backup (`old`).
fn card(dir: &Path) -> PathBuf {
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
    fs::write(card.join("pi.apkovl.tar.gz"), apkovl("new\n")).unwrap();
    fs::write(card.join("pi.20250101000000.tar.gz"), apkovl("old\n")).unwrap();
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
    card
}

/// The plan's kept scratch copy, removed when the test ends.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn plan(dir: &Path, cmdline: &str) -> (String, Scratch) {
    let out = Command::new(env!("CARGO_BIN_EXE_ramboot"))
        .args(["plan", "--keep", "--root"])
        .arg(dir)
        .args(["--cmdline", cmdline])
        .output()
        .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let scratch = text
        .lines()
        .find_map(|l| l.strip_prefix("(scratch copy kept in ")?.strip_suffix(')'))
        .map(|p| Scratch(p.into()))
        .unwrap_or_else(|| panic!("no scratch path:\n{text}"));
    assert!(out.status.success(), "{text}");
    (text, scratch)
}

fn state(card: &Path, attempts: u32) {
    let sha1 = lkg::file_sha1(&card.join("pi.apkovl.tar.gz")).unwrap();
    let s = lkg::State {
        apkovl: "pi.apkovl.tar.gz".into(),
        sha1,
        attempts,
        booted: "pi.apkovl.tar.gz".into(),
    };
    fs::write(card.join(lkg::STATE_NAME), s.text()).unwrap();
}

#[test]
fn a_boot_under_the_limit_counts_its_attempt_and_uses_the_apkovl() {
    let dir = tempfile::tempdir().unwrap();
    let card = card(dir.path());
    state(&card, 1);
    let (text, scratch) = plan(dir.path(), "console=ttyS0 ramboot_lkg=2");
    assert!(!text.contains("last-known-good"), "{text}");
    let root = scratch.0.join("sysroot");
    assert_eq!(
        fs::read_to_string(root.join("etc/hostname")).unwrap(),
        "new\n"
    );
    let s = lkg::State::read(&scratch.0.join("media/mmcblk0p1")).unwrap();
    assert_eq!((s.attempts, s.fell_back()), (2, false), "{text}");
}

#[test]
fn after_the_limit_the_boot_uses_the_previous_apkovl_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let card = card(dir.path());
    state(&card, 2);
    let (text, scratch) = plan(dir.path(), "console=ttyS0 ramboot_lkg=2");
    let why = "last-known-good: apkovl pi.apkovl.tar.gz booted 2 time(s) without being confirmed good (`ramboot ok`): using the previous one, pi.20250101000000.tar.gz";
    assert!(text.contains(why), "{text}");
    let root = scratch.0.join("sysroot");
    assert_eq!(
        fs::read_to_string(root.join("etc/hostname")).unwrap(),
        "old\n"
    );
    let timeline = ["run", "sysroot/run"]
        .iter()
        .find_map(|r| fs::read_to_string(scratch.0.join(r).join("ramboot/timeline.json")).ok())
        .unwrap_or_else(|| panic!("no timeline:\n{text}"));
    assert!(
        timeline.contains("last-known-good: apkovl pi.apkovl.tar.gz"),
        "{timeline}"
    );
    let s = lkg::State::read(&scratch.0.join("media/mmcblk0p1")).unwrap();
    assert!(s.fell_back(), "{s:?}");
    // Off: the apkovl found is used whatever the record says.
    let (_, scratch) = plan(dir.path(), "console=ttyS0");
    let root = scratch.0.join("sysroot");
    assert_eq!(
        fs::read_to_string(root.join("etc/hostname")).unwrap(),
        "new\n"
    );
}

#[test]
fn explain_shows_the_setting() {
    let explain = |line: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_ramboot"))
            .args(["cmdline", "explain", line])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let on = explain("ramboot_init");
    assert!(on.contains("after 2 boot(s) not confirmed good"), "{on}");
    assert!(explain("quiet").contains("last-known-good"));
    assert!(explain("ramboot_lkg=3").contains("after 3 boot(s)"));
}
