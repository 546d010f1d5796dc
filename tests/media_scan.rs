//! What a mounted filesystem offers: repositories, apkovls, modloop, cache; and the apkovl choice.
// Tests drive real tools and processes (QEMU, mkfs, the built binary): the system boundary
// lint is for the library.
#![allow(clippy::disallowed_methods)]

mod support;

use ramboot::media::{
    choose_apkovl, deep_boot_repositories, find_modloop, scan, ApkovlCandidate, ScanOptions,
    Verdict,
};
use std::fs;
use std::path::{Path, PathBuf};
use support::hw::squashfs_image;

fn touch(p: &Path, bytes: &[u8]) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, bytes).unwrap();
}

fn paths(v: &[&str]) -> Vec<PathBuf> {
    v.iter().map(PathBuf::from).collect()
}

/// The Raspberry Pi layout of the spec (§10) plus user additions.
fn rpi_media(d: &Path) {
    touch(&d.join("apks/.boot_repository"), b"");
    touch(&d.join("apks/aarch64/APKINDEX.tar.gz"), b"idx");
    touch(&d.join("boot/vmlinuz-rpi"), b"kernel");
    touch(&d.join("boot/initramfs-rpi"), b"initrd");
    touch(&d.join("boot/modloop-rpi"), &squashfs_image());
    touch(&d.join("boot/config-rpi"), b"CONFIG_X=y");
    touch(&d.join("bcm2710-rpi-3-b.dtb"), b"dtb");
    touch(
        &d.join("cmdline.txt"),
        b"modules=loop,squashfs,sd-mod,usb-storage quiet console=tty1",
    );
    touch(&d.join("pi.apkovl.tar.gz"), b"ovl");
    touch(&d.join("pi.apkovl.tar.gz.bak"), b"old");
    touch(&d.join("notes.apkovl.txt"), b"no");
    fs::create_dir_all(d.join("cache")).unwrap();
    // A directory that merely looks like an apkovl is not one.
    fs::create_dir_all(d.join("dir.apkovl.tar.gz")).unwrap();
    // A repository marker one level deeper: only the deep scan sees it.
    touch(&d.join("extra/edge/.boot_repository"), b"");
}

#[test]
fn scans_the_rpi_layout() {
    let dir = tempfile::tempdir().unwrap();
    rpi_media(dir.path());
    let opts = ScanOptions {
        modloop: None,
        kernel_release: Some("6.6.31-0-rpi".into()),
    };
    let offer = scan(dir.path(), &opts).unwrap();
    assert_eq!(offer.boot_repositories, paths(&["apks"]));
    assert_eq!(
        offer.apkovls,
        paths(&["pi.apkovl.tar.gz", "pi.apkovl.tar.gz.bak"])
    );
    assert_eq!(offer.modloops, paths(&["boot/modloop-rpi"]));
    assert_eq!(offer.cache, Some(PathBuf::from("cache")));
    assert_eq!(offer.verdict(), Verdict::Keep);
    assert_eq!(
        deep_boot_repositories(dir.path()),
        paths(&["apks", "extra/edge"])
    );
}

#[test]
fn empty_or_unrelated_media_is_unmounted() {
    let dir = tempfile::tempdir().unwrap();
    touch(&dir.path().join("photos/1.jpg"), b"x");
    touch(&dir.path().join("boot/readme"), b"not squashfs");
    let offer = scan(dir.path(), &ScanOptions::default()).unwrap();
    assert_eq!(offer.verdict(), Verdict::Unmount);
    assert!(scan(&dir.path().join("missing"), &ScanOptions::default()).is_err());
}

#[test]
fn deep_repositories_stop_at_alpines_depth() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    touch(&d.join(".boot_repository"), b"");
    touch(&d.join("a/b/.boot_repository"), b"");
    touch(&d.join("a/b/c/.boot_repository"), b""); // depth 4 below /media: too deep
    fs::create_dir_all(d.join("x/.boot_repository")).unwrap(); // a directory, not a file
    assert_eq!(deep_boot_repositories(d), paths(&["", "a/b"]));
}

#[test]
fn modloop_search_order() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let sq = squashfs_image();
    touch(&d.join("boot/modloop-lts"), &sq);
    touch(&d.join("boot/modloop-virt"), &sq);
    touch(&d.join("boot/other.sqfs"), &sq);
    touch(&d.join("modloop-top"), &sq);
    touch(&d.join("boot/modloop-fake"), b"not a squashfs");
    assert_eq!(
        find_modloop(d, None, Some("6.12.1-0-virt")),
        paths(&[
            "boot/modloop-virt",
            "boot/modloop-lts",
            "modloop-top",
            "boot/other.sqfs"
        ])
    );
    assert_eq!(
        find_modloop(d, None, None),
        paths(&[
            "boot/modloop-lts",
            "boot/modloop-virt",
            "modloop-top",
            "boot/other.sqfs"
        ])
    );
    // modloop=<relpath> names exactly one file.
    assert_eq!(
        find_modloop(d, Some("/boot/modloop-fake"), None),
        paths(&["boot/modloop-fake"])
    );
    assert!(find_modloop(d, Some("boot/absent"), None).is_empty());
}

fn cand(dev: &str, name: &str) -> ApkovlCandidate {
    ApkovlCandidate {
        device: dev.into(),
        path: PathBuf::from(format!("/media/{dev}/{name}")),
    }
}

#[test]
fn apkovl_choice_is_deterministic_and_explained() {
    assert!(choose_apkovl(&[], None).is_none());
    let one = choose_apkovl(&[cand("vda1", "x.apkovl.tar.gz")], None).unwrap();
    assert!(one.others.is_empty());

    let all = vec![
        cand("vda1", "web.apkovl.tar.gz"),
        cand("sda1", "setup.apkovl.tar.gz"),
        cand("mmcblk0p1", "old.apkovl.tar.gz.bak"),
        cand("sdb10", "b.apkovl.tar.gz"),
        cand("sdb2", "a.apkovl.tar.gz.aes-256-cbc"),
    ];
    // The hostname hint wins wherever it is.
    let c = choose_apkovl(&all, Some("web")).unwrap();
    assert_eq!(c.chosen, all[0]);
    assert_eq!(c.others.len(), 4);
    assert!(c.reason.contains("hostname"), "{}", c.reason);
    // Without it: leftovers last, then natural device order.
    let c = choose_apkovl(&all, None).unwrap();
    assert_eq!(c.chosen, all[1]);
    let order: Vec<&str> = c.others.iter().map(|o| o.device.as_str()).collect();
    assert_eq!(order, ["sdb2", "sdb10", "vda1", "mmcblk0p1"]);
    // Input order does not matter.
    let mut rev = all.clone();
    rev.reverse();
    assert_eq!(choose_apkovl(&rev, None).unwrap(), c);
    // An encrypted overlay named after the host counts as the host's.
    let c = choose_apkovl(&all, Some("a")).unwrap();
    assert_eq!(c.chosen, all[4]);
    // A hostname that matches nothing changes nothing; a leftover named after the host is no match.
    assert_eq!(choose_apkovl(&all, Some("nobody")).unwrap().chosen, all[1]);
    assert_eq!(choose_apkovl(&all, Some("old")).unwrap().chosen, all[1]);
    // Same device: by file name.
    let c = choose_apkovl(
        &[
            cand("vda1", "b.apkovl.tar.gz"),
            cand("vda1", "a.apkovl.tar.gz"),
        ],
        None,
    )
    .unwrap();
    assert!(c.chosen.path.ends_with("a.apkovl.tar.gz"));
}
