//! `ramboot plan` as a user runs it: a directory holding a copy of an SD card's files, no fake
//! kernel. The plan must explain the apkovl choice, hand off, and leave the directory untouched.

use std::fs;
use std::process::Command;

fn apkovl() -> Vec<u8> {
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    let mut h = tar::Header::new_gnu();
    h.set_size(4);
    h.set_mode(0o644);
    b.append_data(&mut h, "etc/hostname", &b"rpi\n"[..])
        .unwrap();
    b.into_inner().unwrap().finish().unwrap()
}

fn snapshot(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in walk(dir) {
        out.push(e.strip_prefix(dir).unwrap().display().to_string());
    }
    out.sort();
    out
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut v = Vec::new();
    for e in fs::read_dir(dir).unwrap().flatten() {
        v.push(e.path());
        if e.file_type().unwrap().is_dir() {
            v.extend(walk(&e.path()));
        }
    }
    v
}

#[test]
fn plan_over_a_card_copy_explains_the_apkovl_and_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let card = root.join("media/mmcblk0p1");
    fs::create_dir_all(card.join("apks")).unwrap();
    fs::write(card.join("apks/.boot_repository"), b"").unwrap();
    fs::write(card.join("rpi.apkovl.tar.gz"), apkovl()).unwrap();
    fs::write(card.join("rpi.apkovl.tar.gz.bak"), apkovl()).unwrap();
    fs::create_dir_all(root.join("sysroot/sbin")).unwrap();
    fs::write(root.join("sysroot/sbin/init"), b"#!/bin/sh\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(
        root.join("sysroot/sbin/init"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let before = snapshot(root);

    let out = Command::new(env!("CARGO_BIN_EXE_ramboot"))
        .args(["plan", "--root"])
        .arg(root)
        .args(["--cmdline", "console=ttyS0"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("mmcblk0p1 [vfat] at /media/mmcblk0p1: kept (was already mounted)"),
        "{text}"
    );
    assert!(text.contains("apkovl: /media/mmcblk0p1/rpi.apkovl.tar.gz (found on the boot media: the others are leftovers"), "{text}");
    assert!(
        text.contains("  ignored: /media/mmcblk0p1/rpi.apkovl.tar.gz.bak"),
        "{text}"
    );
    assert!(
        text.contains("handoff: switch_root -c /dev/ttyS0 /sysroot /sbin/init"),
        "{text}"
    );
    assert!(text.contains("exec /sbin/init"), "{text}");
    assert!(text.contains("== end ==\nhanded off"), "{text}");
    // Bug fixed: the "several apkovls" warning was logged twice (discovery and the media stage).
    assert_eq!(
        text.matches("WARNING: several apkovls found").count(),
        1,
        "{text}"
    );
    assert_eq!(snapshot(root), before, "the user's directory changed");

    let out = Command::new(env!("CARGO_BIN_EXE_ramboot"))
        .args(["plan", "--json", "--cmdline", "noapkovl", "--root"])
        .arg(root)
        .output()
        .unwrap();
    let json = String::from_utf8_lossy(&out.stdout);
    assert!(
        json.starts_with('{') && json.trim_end().ends_with('}'),
        "{json}"
    );
    assert!(
        json.contains(
            r#""apkovl":null,"apkovl_why":"disabled by the command line (noapkovl / apkovl=none)""#
        ),
        "{json}"
    );
    assert!(json.contains(r#""handed_off":true"#), "{json}");
}
