use super::*;
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::PathBuf;

/// A root with the links the extractors meet, and a directory outside it.
fn tree() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    for d in ["usr/bin", "etc", "run", "var"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::write(root.join("usr/bin/sh"), b"").unwrap();
    symlink("usr/bin", root.join("bin")).unwrap();
    symlink("/", root.join("up")).unwrap();
    symlink("/..", root.join("dotdot")).unwrap();
    symlink("../../../../etc", root.join("esc")).unwrap();
    symlink("/etc", root.join("abs")).unwrap();
    symlink("/run", root.join("var/run")).unwrap();
    symlink(&outside, root.join("out")).unwrap();
    symlink("/chain2/bin", root.join("chain1")).unwrap();
    symlink("../../up/usr", root.join("chain2")).unwrap();
    symlink("loop", root.join("loop")).unwrap();
    (dir, root, outside)
}

fn ino_of_fd(fd: &OwnedFd) -> (u64, u64) {
    let st = rustix::fs::fstat(fd).unwrap();
    (st.st_dev, st.st_ino)
}

fn ino_of(p: &Path) -> (u64, u64) {
    let m = std::fs::symlink_metadata(p).unwrap();
    (m.dev(), m.ino())
}

fn check_semantics(resolve: Resolve) {
    let (_dir, root_path, outside) = tree();
    let root = Root::open(&root_path, resolve).unwrap();
    let path = OFlags::PATH;
    let cases = [
        ("bin/sh", "usr/bin/sh"),
        ("/up/up/up/usr", "usr"),
        ("../../usr", "usr"),
        ("dotdot/usr", "usr"),
        ("esc", "etc"),
        ("abs", "etc"),
        ("var/run", "run"),
        ("chain1/sh", "usr/bin/sh"),
        ("usr/bin/../../etc/..", ""),
        ("up", ""),
        ("", ""),
    ];
    for (name, want) in cases {
        let fd = root
            .open_at(Path::new(name), path)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(ino_of_fd(&fd), ino_of(&root_path.join(want)), "{name}");
    }
    // The last component unfollowed: the link itself.
    let fd = root
        .open_at(Path::new("var/run"), path | OFlags::NOFOLLOW)
        .unwrap();
    assert_eq!(ino_of_fd(&fd), ino_of(&root_path.join("var/run")));
    // An absolute link to a host directory names the same path inside the root.
    let err = root.open_at(Path::new("out"), path).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
    let mirror = root_path.join(outside.strip_prefix("/").unwrap());
    std::fs::create_dir_all(&mirror).unwrap();
    let fd = root.open_at(Path::new("out"), path).unwrap();
    assert_eq!(ino_of_fd(&fd), ino_of(&mirror));
    let errno = |name: &str, symlinks| {
        root.open_with(Path::new(name), path, symlinks)
            .unwrap_err()
            .raw_os_error()
    };
    let loop_ = Some(Errno::LOOP.raw_os_error());
    assert_eq!(errno("loop/x", Symlinks::InRoot), loop_);
    assert_eq!(
        errno("usr/bin/sh/x", Symlinks::InRoot),
        Some(Errno::NOTDIR.raw_os_error())
    );
    assert_eq!(
        errno("usr/none", Symlinks::InRoot),
        Some(Errno::NOENT.raw_os_error())
    );
    assert_eq!(errno("bin/sh", Symlinks::Refused), loop_);
    assert!(root
        .open_with(Path::new("usr/bin/sh"), path, Symlinks::Refused)
        .is_ok());
    // Directories are created where the links lead, and listed as named.
    let mut created = Vec::new();
    root.create_dirs(Path::new("var/run/ppp/a"), 0o750, &mut created)
        .unwrap();
    assert_eq!(created, ["var/run/ppp", "var/run/ppp/a"]);
    assert!(root_path.join("run/ppp/a").is_dir());
    root.create_dirs(Path::new("up/../esc/new"), 0o755, &mut created)
        .unwrap();
    assert!(root_path.join("etc/new").is_dir());
    let (parent, name) = root.parent(Path::new("bin/sh")).unwrap();
    assert_eq!(name, "sh");
    assert_eq!(ino_of_fd(&parent), ino_of(&root_path.join("usr/bin")));
    // Files are written where links lead inside the root, created there when missing.
    symlink("/etc/made", root_path.join("dangling")).unwrap();
    root.write(Path::new("dangling"), b"1", 0o600).unwrap();
    assert_eq!(std::fs::read(root_path.join("etc/made")).unwrap(), b"1");
    root.write(Path::new("abs/made"), b"2", 0o600).unwrap();
    assert_eq!(root.read_to_string(Path::new("etc/made")).unwrap(), "2");
    root.write(Path::new("out/x"), b"3", 0o600).unwrap();
    assert_eq!(std::fs::read(mirror.join("x")).unwrap(), b"3");
    // Nothing was written outside.
    assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
}

#[test]
fn kernel_resolution_is_chroot_semantics() {
    // The kernel path must really be openat2 here, or this test would test the walk twice.
    let (_dir, root_path, _) = tree();
    let root = Root::open(&root_path, Resolve::Kernel).unwrap();
    open_kernel(
        root.fd(),
        Path::new("var/run"),
        OFlags::PATH,
        Mode::empty(),
        Symlinks::InRoot,
    )
    .expect("openat2(RESOLVE_IN_ROOT) works on this kernel");
    check_semantics(Resolve::Kernel);
}

#[test]
fn walk_resolution_is_chroot_semantics() {
    check_semantics(Resolve::Walk);
}
