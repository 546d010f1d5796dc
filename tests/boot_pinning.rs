//! Pinned repositories at a diskless boot (issue 15, point 4), the whole boot on the recording
//! double through `ramboot plan`: a card with the untagged boot repository, a tagged repository
//! on the card and a tagged remote repository known only through the card's package cache, named
//! by the apkovl's `etc/apk/repositories`; the apkovl's world pins packages to both tags.
// Tests drive real tools and processes (QEMU, mkfs, the built binary): the system boundary
// lint is for the library.
#![allow(clippy::disallowed_methods)]

mod apk_support;

use apk_support::*;
use ramboot::apk::repo::{cache_index_name, cache_package_name};
use std::fs;
use std::path::Path;
use std::process::Command;

const COMMUNITY: &str = "http://dl.example.org/alpine/community";

/// The apkovl: the cache link, the repositories with their tags, a pinned world.
fn apkovl() -> Vec<u8> {
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    let repositories = format!(
        "/media/mmcblk0p1/apks\n@testing /media/mmcblk0p1/testing\n@community {COMMUNITY}\n"
    );
    for (path, content) in [
        (
            "etc/apk/world",
            "hello\nbar@testing\nfoo@community\nonly-testing\n",
        ),
        ("etc/apk/repositories", repositories.as_str()),
        ("etc/hostname", "pi\n"),
    ] {
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

fn p(name: &str, version: &str) -> ramboot::apk::build::PackageBuilder {
    pkg(name, version).file(&format!("usr/share/pin/{name}"), version.as_bytes(), 0o644)
}

/// The card: the boot repository `apks/` (hello, bar 1), `testing/` (bar 2, only-testing), and
/// in `cache/` the community index and foo, as `apk cache` leaves them.
fn card(dir: &Path) {
    let card = dir.join("media/mmcblk0p1");
    let arch = ramboot::apk::build::default_arch();
    publish_in(
        &card.join("apks"),
        vec![p("hello", "1"), p("bar", "1")],
        |_| {},
    );
    fs::write(card.join("apks/.boot_repository"), b"").unwrap();
    publish_in(
        &card.join("testing"),
        vec![p("bar", "2"), p("only-testing", "1")],
        |_| {},
    );
    let community = dir.join("community-build");
    let built = publish_in(&community, vec![p("foo", "1")], |_| {});
    let cache = card.join("cache");
    fs::create_dir_all(&cache).unwrap();
    fs::copy(
        community.join(arch).join("APKINDEX.tar.gz"),
        cache.join(cache_index_name(COMMUNITY, arch)),
    )
    .unwrap();
    fs::write(
        cache.join(cache_package_name(&built[0].info).unwrap()),
        &built[0].bytes,
    )
    .unwrap();
    fs::remove_dir_all(&community).unwrap();
    fs::write(card.join("pi.apkovl.tar.gz"), apkovl()).unwrap();
    fs::create_dir_all(dir.join("etc/apk/keys")).unwrap();
    fs::write(dir.join("etc/apk/keys").join(KEY_NAME), key().public_pem()).unwrap();
    let init = dir.join("sysroot/sbin/init");
    fs::create_dir_all(init.parent().unwrap()).unwrap();
    fs::write(&init, b"#!/bin/sh\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&init, fs::Permissions::from_mode(0o755)).unwrap();
}

/// The plan's kept scratch copy, removed when the test ends.
struct Scratch(std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[test]
fn the_boot_takes_pinned_packages_from_their_tags_and_skips_a_masked_one() {
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
    let sysroot = scratch.0.join("sysroot");
    let db = fs::read_to_string(sysroot.join("lib/apk/db/installed"))
        .unwrap_or_else(|e| panic!("no db ({e}):\n{all}"));
    let mut got: Vec<String> = db
        .split("\n\n")
        .filter(|r| !r.trim().is_empty())
        .map(|r| {
            let f = |k: &str| r.lines().find_map(|l| l.strip_prefix(k)).unwrap_or("");
            format!("{}-{}{}", f("P:"), f("V:"), {
                let t = f("s:");
                if t.is_empty() {
                    String::new()
                } else {
                    format!("@{t}")
                }
            })
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        ["bar-2@testing", "foo-1@community", "hello-1"],
        "{all}"
    );
    assert!(all.contains("only-testing-1: masked in: @testing"), "{all}");
    // The world keeps what the user pinned, the masked atom too (as apk's broken world does).
    let world = fs::read_to_string(sysroot.join("etc/apk/world")).unwrap();
    assert_eq!(
        world, "bar@testing\nfoo@community\nhello\nonly-testing\n",
        "{all}"
    );
}
