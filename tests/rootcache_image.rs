//! The cached root's image (issue 11): the squashfs writer checked against squashfs-tools'
//! reader (`unsquashfs`, installed by qemu/setup-host.sh: a missing tool fails the test), the
//! trailer's key and digest, and the key's inputs.
// Tests drive a real tool (unsquashfs): the system boundary lint is for the library.
#![allow(clippy::disallowed_methods)]

use ramboot::rootcache::*;
use ramboot::sys::Sys;
use rustix::fd::AsFd;
use rustix::fs::{Mode, OFlags};
use sha2::{Digest, Sha256};
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::Path;
use std::path::PathBuf;
use std::process::Command;

/// Every entry under `root`, sorted: path, type and mode, owner, mtime, and content, link target
/// or device number; hard links by the first path of their inode.
fn listing(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut seen = std::collections::HashMap::new();
    walk(root, root, &mut out, &mut seen);
    out.sort();
    out
}

fn walk(
    root: &Path,
    dir: &Path,
    out: &mut Vec<String>,
    seen: &mut std::collections::HashMap<u64, String>,
) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        let rel = p.strip_prefix(root).unwrap().display().to_string();
        let m = std::fs::symlink_metadata(&p).unwrap();
        let ft = m.file_type();
        let what = if ft.is_dir() {
            walk(root, &p, out, seen);
            "dir".to_string()
        } else if ft.is_symlink() {
            format!("-> {}", std::fs::read_link(&p).unwrap().display())
        } else if ft.is_file() {
            if m.nlink() > 1 {
                if let Some(first) = seen.get(&m.ino()) {
                    out.push(format!("{rel} hardlink {first}"));
                } else {
                    seen.insert(m.ino(), rel.clone());
                }
            }
            let data = std::fs::read(&p).unwrap();
            format!("file {} {:?}", data.len(), &Sha256::digest(&data)[..])
        } else {
            format!("special rdev {}", m.rdev())
        };
        let mtime = if ft.is_dir() { 0 } else { m.mtime() };
        out.push(format!(
            "{rel} {:o} {}:{} {mtime} {what}",
            m.mode(),
            m.uid(),
            m.gid()
        ));
    }
}

/// A tree with every kind of entry squashfs holds: large, compressible and random files, an
/// empty one, a directory of 300 names (several listing headers), symlinks, hard links, a fifo,
/// odd modes and owners.
fn sample_tree(root: &Path) {
    let d = |p: &str| std::fs::create_dir_all(root.join(p)).unwrap();
    let f = |p: &str, data: &[u8], mode: u32| {
        std::fs::write(root.join(p), data).unwrap();
        std::fs::set_permissions(root.join(p), std::fs::Permissions::from_mode(mode)).unwrap();
    };
    d("bin");
    d("etc/empty");
    d("usr/share/many");
    let mut x = 7u32;
    let random: Vec<u8> = (0..300_000)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (x >> 16) as u8
        })
        .collect();
    f("bin/busybox", &random, 0o4755);
    f("etc/motd", &b"welcome\n".repeat(40_000), 0o644);
    f("etc/shadow", b"root:*::0:::::\n", 0o640);
    f("etc/zero", b"", 0o600);
    for i in 0..300 {
        f(
            &format!("usr/share/many/f{i:03}"),
            format!("{i}").as_bytes(),
            0o644,
        );
    }
    symlink("/bin/busybox", root.join("bin/sh")).unwrap();
    symlink("../etc/motd", root.join("usr/motd-link")).unwrap();
    std::fs::hard_link(root.join("etc/motd"), root.join("usr/motd-hard")).unwrap();
    // Through the Sys trait (tests run as root here; every target is in the temp dir).
    let sys = ramboot::sys::RealSys;
    let etc = dir_fd(&root.join("etc"));
    sys.mkfifo_at(etc.as_fd(), "fifo".as_ref(), 0o600).unwrap();
    sys.chown_at(etc.as_fd(), "shadow".as_ref(), 0, 42).unwrap();
    let usr = dir_fd(&root.join("usr/share"));
    sys.chown_at(usr.as_fd(), "many".as_ref(), 1000, 1000)
        .unwrap();
    std::fs::set_permissions(
        root.join("etc/empty"),
        std::fs::Permissions::from_mode(0o1777),
    )
    .unwrap();
}

fn dir_fd(p: &Path) -> rustix::fd::OwnedFd {
    rustix::fs::open(p, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap()
}

fn unsquash(image: &Path, to: &Path) {
    let out = Command::new("unsquashfs")
        .arg("-no-progress")
        .arg("-d")
        .arg(to)
        .arg(image)
        .output()
        .expect("unsquashfs (squashfs-tools, qemu/setup-host.sh) must be installed");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn written(tree: &Path, media: &Path, skip: &dyn Fn(&[u8]) -> bool) -> PathBuf {
    let key = [7u8; 32];
    let root = dir_fd(tree);
    let scanned = squashfs::scan_tree(root.as_fd(), skip).unwrap();
    write_image(
        scanned,
        root.as_fd(),
        dir_fd(media).as_fd(),
        &key,
        1_700_000_000,
    )
    .unwrap();
    media.join(IMAGE_NAME)
}

/// The image holds the tree exactly: squashfs-tools' own reader gives back every entry with its
/// type, mode, owner, mtime, content, target and hard links.
#[test]
fn the_image_gives_back_the_tree_it_was_made_from() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("tree");
    let media = tmp.path().join("media");
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::create_dir_all(&media).unwrap();
    sample_tree(&tree);
    let image = written(&tree, &media, &|_| false);
    assert!(!media.join(TEMP_NAME).exists(), "renamed into place");
    let back = tmp.path().join("back");
    unsquash(&image, &back);
    assert_eq!(listing(&back), listing(&tree));
    let size = std::fs::metadata(&image).unwrap().len();
    assert!(
        size < 600_000,
        "compressed: {size} bytes for ~1.1 MB of content"
    );
}

/// What `skip` names is left out (the apkovl's files at boot), with everything under it.
#[test]
fn skipped_paths_are_left_out() {
    let tmp = tempfile::tempdir().unwrap();
    let (tree, media) = (tmp.path().join("tree"), tmp.path().join("media"));
    std::fs::create_dir_all(&media).unwrap();
    std::fs::create_dir_all(&tree).unwrap();
    sample_tree(&tree);
    let image = written(&tree, &media, &|p| p == b"etc/motd" || p == b"usr/share");
    let back = tmp.path().join("back");
    unsquash(&image, &back);
    assert!(!back.join("etc/motd").exists());
    assert!(!back.join("usr/share").exists());
    assert!(back.join("usr/motd-hard").is_file(), "the other name stays");
    assert!(back.join("etc/shadow").is_file());
}

#[test]
fn an_image_is_used_only_with_its_key_and_intact() {
    let tmp = tempfile::tempdir().unwrap();
    let (tree, media) = (tmp.path().join("tree"), tmp.path().join("media"));
    std::fs::create_dir_all(&media).unwrap();
    std::fs::create_dir_all(&tree).unwrap();
    sample_tree(&tree);
    let image = written(&tree, &media, &|_| false);
    assert_eq!(check(&image, &[7u8; 32]), Ok(()));
    assert_eq!(check(&image, &[8u8; 32]), Err(Unusable::OtherInputs));
    assert_eq!(
        check(&media.join("nothing"), &[7u8; 32]),
        Err(Unusable::Missing)
    );
    let mut bytes = std::fs::read(&image).unwrap();
    bytes[5000] ^= 1;
    std::fs::write(&image, &bytes).unwrap();
    assert!(matches!(
        check(&image, &[7u8; 32]),
        Err(Unusable::Corrupt(why)) if why.contains("digest")
    ));
    std::fs::write(&image, vec![0u8; 10_000]).unwrap();
    assert!(matches!(
        check(&image, &[7u8; 32]),
        Err(Unusable::Corrupt(why)) if why.contains("not a ramboot cached root")
    ));
}

#[test]
fn a_key_changes_with_any_input() {
    let key = |parts: &[(&str, &[u8])]| {
        let mut k = Key::default();
        for (l, v) in parts {
            k.add(l, v);
        }
        k.finish()
    };
    let base = key(&[("world", b"a b"), ("arch", b"aarch64")]);
    assert_eq!(base, key(&[("world", b"a b"), ("arch", b"aarch64")]));
    assert_ne!(base, key(&[("world", b"a"), ("arch", b"b aarch64")]));
    assert_ne!(base, key(&[("world", b"a b"), ("arch", b"x86_64")]));
}

/// The image keeps no extended attributes: a tree whose files have some is refused (the cached
/// root would differ from the install), with the file named.
#[test]
fn a_tree_with_extended_attributes_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (tree, media) = (tmp.path().join("tree"), tmp.path().join("media"));
    std::fs::create_dir_all(&media).unwrap();
    std::fs::create_dir_all(tree.join("usr/bin")).unwrap();
    std::fs::write(tree.join("usr/bin/ping"), b"ping").unwrap();
    rustix::fs::setxattr(
        tree.join("usr/bin/ping"),
        "user.ramboot-test",
        b"1",
        rustix::fs::XattrFlags::empty(),
    )
    .expect("the temp dir's file system takes user xattrs");
    let root = dir_fd(&tree);
    let scanned = squashfs::scan_tree(root.as_fd(), &|_| false).unwrap();
    let err = write_image(scanned, root.as_fd(), dir_fd(&media).as_fd(), &[1; 32], 0)
        .expect_err("refused");
    assert!(
        err.to_string()
            .contains("/usr/bin/ping has extended attributes"),
        "{err}"
    );
    assert!(!media.join(IMAGE_NAME).exists());
}
