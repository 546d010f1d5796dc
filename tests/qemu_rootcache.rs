//! QEMU aarch64 scenario for the cached installed root (issue 11): three boots on one writable
//! copy of the demo media. The first installs and writes the image in the background; the
//! second mounts it instead of installing and must give the same root (every entry, its mode,
//! owner, target and checksum, the apk database among them); the third finds the image damaged,
//! says so in one line and installs again.
// Tests drive real tools and processes (QEMU, the built binary): the system boundary
// lint is for the library.
#![allow(clippy::disallowed_methods)]

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;
use support::qemu::{edit_fat_file, number_after, out_dir, script, virtio_disk, Qemu};

const BOOT: Duration = Duration::from_secs(240);
const IMAGE: &str = "/media/vda1/ramboot-root.sqfs";

/// The demo media (a private copy, written by the boots) and an initramfs for it.
fn artifacts() -> (PathBuf, PathBuf) {
    let media = out_dir().join("rc-media");
    script("make-media.sh", &[media.to_str().unwrap()]);
    let key = std::fs::read_dir(media.join("keys"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "pub"))
        .unwrap();
    let sig = std::fs::read_dir(media.join("initramfs-files"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let file = format!(
        "{}:/var/cache/misc/{}",
        sig.display(),
        sig.file_name().unwrap().to_str().unwrap()
    );
    let initrd = out_dir().join("rc-initrd");
    script(
        "make-initramfs.sh",
        &[
            initrd.to_str().unwrap(),
            "-F",
            "base,virtio,vfat",
            "--apk-key",
            key.to_str().unwrap(),
            "--file",
            &file,
        ],
    );
    (media.join("media.img"), initrd)
}

/// One boot on the instruction clock; its console.
fn boot(name: &str, disk: &Path, initrd: &Path) -> String {
    let mut extra = virtio_disk(disk, "d0");
    extra.extend(["-icount".into(), "shift=0,sleep=on".into()]);
    let mut q = Qemu::virt(name, initrd, "console=ttyAMA0 ramboot_demo=tree", &extra);
    q.expect("RAMBOOT-DEMO: done, powering off", BOOT);
    q.wait_exit(BOOT)
}

fn tree(console: &str) -> Vec<&str> {
    let lines: Vec<&str> = console
        .lines()
        .filter(|l| l.starts_with("RAMBOOT-TREE: "))
        .collect();
    assert!(lines.len() > 50, "the root listing is there: {console}");
    lines
}

fn timeline(console: &str) -> &str {
    console
        .lines()
        .find(|l| l.contains("RAMBOOT-DEMO: timeline"))
        .unwrap_or_else(|| panic!("no timeline: {console}"))
}

/// `(stage, duration in ms)` of each stage of a timeline line.
fn stages(timeline: &str) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    for part in timeline.split("{\"name\":\"").skip(1) {
        let name = part.split('"').next().unwrap().to_string();
        if part.contains("\"start_ms\":") && part.contains("\"end_ms\":") {
            let d = number_after(part, "\"end_ms\":") - number_after(part, "\"start_ms\":");
            out.push((name, d));
        }
    }
    out
}

/// Flips one byte inside the image on the FAT partition (through fatfs, in user space).
fn corrupt_image(disk: &Path) {
    edit_fat_file(disk, "ramboot-root.sqfs", |bytes| bytes[20_000] ^= 0x40);
}

#[test]
fn second_boot_mounts_the_cached_root_and_a_damaged_one_is_reinstalled() {
    let (media, initrd) = artifacts();
    let disk = out_dir().join("rc-disk.img");
    std::fs::copy(&media, &disk).unwrap();

    let first = boot("rc-1-install", &disk, &initrd);
    assert!(
        first.contains(&format!("no cached root at {IMAGE} yet: installing")),
        "{first}"
    );
    assert!(first.contains("Installing packages"), "{first}");
    assert!(
        first.contains(&format!("cached root written to {IMAGE}")),
        "{first}"
    );
    assert!(
        first.contains("RAMBOOT-DEMO: root fs tmpfs"),
        "the first boot's root stays a plain tmpfs: {first}"
    );
    assert!(
        first.contains("RAMBOOT-DEMO: media now ro"),
        "the media is read-only again after the write: {first}"
    );

    let second = boot("rc-2-cached", &disk, &initrd);
    assert!(
        second.contains(&format!("Mounting the cached root {IMAGE}")),
        "{second}"
    );
    assert!(!second.contains("Installing packages"), "{second}");
    assert!(second.contains("RAMBOOT-DEMO: root fs overlay"), "{second}");
    assert!(!second.contains("cached root written"), "{second}");
    assert!(
        second.contains("RAMBOOT-DEMO: demo.conf setting=from-apkovl"),
        "the apkovl is applied over the cached root: {second}"
    );
    let (t1, t2) = (tree(&first), tree(&second));
    let only_first: Vec<_> = t1.iter().filter(|l| !t2.contains(l)).collect();
    let only_second: Vec<_> = t2.iter().filter(|l| !t1.contains(l)).collect();
    assert!(
        only_first.is_empty() && only_second.is_empty(),
        "the cached root is the installed one: only after the install {only_first:#?}, only \
         from the cache {only_second:#?}"
    );
    let (s1, s2) = (stages(timeline(&first)), stages(timeline(&second)));
    eprintln!("first boot stages (instruction clock, ms): {s1:?}");
    eprintln!("cached boot stages (instruction clock, ms): {s2:?}");
    eprintln!("first: {}\ncached: {}", timeline(&first), timeline(&second));
    assert!(s2.iter().any(|(n, _)| n == "rootcache"), "{s2:?}");
    assert!(!s2.iter().any(|(n, _)| n == "packages"), "{s2:?}");

    corrupt_image(&disk);
    let third = boot("rc-3-corrupt", &disk, &initrd);
    let line = format!(
        "cached root {IMAGE} is not used: its content does not match its digest; installing the packages"
    );
    assert_eq!(third.matches(&line).count(), 1, "{third}");
    assert!(third.contains("Installing packages"), "{third}");
    assert!(
        third.contains(&format!("cached root written to {IMAGE}")),
        "a new image replaces the damaged one: {third}"
    );
}
