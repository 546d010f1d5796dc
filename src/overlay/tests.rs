use super::*;
use std::io::Write;
use std::os::unix::fs::{symlink, PermissionsExt};

/// Both resolutions: openat2 and the walk older kernels get.
const RESOLVERS: [Resolve; 2] = [Resolve::Kernel, Resolve::Walk];

enum E<'a> {
    Dir(&'a str, u32),
    /// A directory owned by uid = gid = the number.
    DirOwned(&'a str, u32, u64),
    File(&'a str, u32, &'a [u8]),
    Link(&'a str, &'a str),
    Hard(&'a str, &'a str),
    Char(&'a str),
}

/// Builds a tar.gz with raw header names (so hostile names can be written too).
fn apkovl(dir: &Path, name: &str, entries: &[E<'_>]) -> PathBuf {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_ustar();
        let (path, data): (&str, &[u8]) = match e {
            E::Dir(p, m) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(*m);
                (p, b"")
            }
            E::DirOwned(p, m, id) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(*m);
                h.set_uid(*id);
                h.set_gid(*id);
                (p, b"")
            }
            E::File(p, m, d) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*m);
                (p, d)
            }
            E::Link(p, t) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_link_name(t).unwrap();
                (p, b"")
            }
            E::Hard(p, t) => {
                h.set_entry_type(tar::EntryType::Link);
                h.set_link_name(t).unwrap();
                (p, b"")
            }
            E::Char(p) => {
                h.set_entry_type(tar::EntryType::Char);
                h.set_mode(0o600);
                (p, b"")
            }
        };
        let raw = &mut h.as_old_mut().name;
        raw.fill(0);
        raw[..path.len()].copy_from_slice(path.as_bytes());
        h.set_size(data.len() as u64);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    let tar = b.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).unwrap();
    let p = dir.join(name);
    fs::write(&p, gz.finish().unwrap()).unwrap();
    p
}

fn opts() -> Options<'static> {
    Options::default()
}

fn tree(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            out.push(p.strip_prefix(base).unwrap().display().to_string());
            if p.is_dir() && !fs::symlink_metadata(&p).unwrap().file_type().is_symlink() {
                walk(base, &p, out);
            }
        }
    }
    walk(root, root, &mut out);
    out.sort();
    out
}

#[test]
fn extracts_and_lists_like_tar_v() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    fs::create_dir(&root).unwrap();
    let ovl = apkovl(
        dir.path(),
        "host.apkovl.tar.gz",
        &[
            E::Dir("etc/", 0o755),
            E::File("etc/hostname", 0o644, b"pi\n"),
            E::Dir("root/", 0o755),
            E::Link("etc/localtime", "/usr/share/zoneinfo/UTC"),
            E::File("/etc/motd", 0o600, b"hi"),
        ],
    );
    let out = extract(&ovl, &root, opts()).unwrap();
    assert_eq!(
        out.names,
        ["etc/", "etc/hostname", "root/", "etc/localtime", "etc/motd"]
    );
    assert_eq!(fs::read(root.join("etc/hostname")).unwrap(), b"pi\n");
    assert_eq!(
        fs::metadata(root.join("root"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );
    assert_eq!(
        fs::metadata(root.join("etc/motd"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    assert_eq!(
        fs::read_link(root.join("etc/localtime")).unwrap(),
        Path::new("/usr/share/zoneinfo/UTC")
    );
}

/// mkinitfs test `tmpfs_root_apkovl_unpack_merged`.
#[test]
fn tmpfs_root_apkovl_unpack_merged() {
    for resolve in RESOLVERS {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        fs::create_dir_all(root.join("usr/bin")).unwrap();
        symlink("usr/bin", root.join("bin")).unwrap();
        let ovl = apkovl(
            dir.path(),
            "a.apkovl.tar.gz",
            &[E::File("bin/foo", 0o755, b"x")],
        );
        extract(&ovl, &root, Options { resolve, ..opts() }).unwrap();
        assert!(root.join("usr/bin/foo").is_file());
    }
}

#[test]
fn symlink_then_write_stays_inside_the_root() {
    for resolve in RESOLVERS {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        fs::create_dir(&root).unwrap();
        let ovl = apkovl(
            dir.path(),
            "a.apkovl.tar.gz",
            &[
                E::Link("etc", "/../../.."),
                E::File("etc/escape", 0o644, b"x"),
                E::Link("l", "../outside"),
            ],
        );
        extract(&ovl, &root, Options { resolve, ..opts() }).unwrap();
        assert!(root.join("escape").is_file(), "{:?}", tree(&root));
        assert!(!dir.path().join("escape").exists());
        assert!(!dir.path().join("outside").exists());
    }
}

#[test]
fn hostile_or_corrupt_archives_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    fs::create_dir(&root).unwrap();
    fs::write(root.join("keep"), b"1").unwrap();
    let traversal = apkovl(
        dir.path(),
        "t.apkovl.tar.gz",
        &[
            E::File("etc/ok", 0o644, b"x"),
            E::File("etc/../../evil", 0o644, b"x"),
        ],
    );
    assert!(matches!(
        extract(&traversal, &root, opts()),
        Err(OverlayError::Hostile { .. })
    ));
    let device = apkovl(dir.path(), "d.apkovl.tar.gz", &[E::Char("etc/sda")]);
    assert!(matches!(
        extract(&device, &root, opts()),
        Err(OverlayError::Hostile { .. })
    ));
    let good = apkovl(
        dir.path(),
        "g.apkovl.tar.gz",
        &[E::File("etc/big", 0o644, &[7u8; 100_000])],
    );
    let bytes = fs::read(&good).unwrap();
    for cut in [10, bytes.len() / 2, bytes.len() - 4] {
        let truncated = dir.path().join("x.apkovl.tar.gz");
        fs::write(&truncated, &bytes[..cut]).unwrap();
        let err = extract(&truncated, &root, opts()).unwrap_err();
        assert!(
            matches!(err, OverlayError::Corrupt { .. }),
            "cut {cut}: {err}"
        );
    }
    let mut flipped = bytes.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0xff;
    let bad = dir.path().join("f.apkovl.tar.gz");
    fs::write(&bad, &flipped).unwrap();
    assert!(extract(&bad, &root, opts()).is_err());
    assert_eq!(tree(&root), ["keep"]);
    let enc = dir.path().join("h.apkovl.tar.gz.aes-256-cbc");
    fs::write(&enc, b"Salted__").unwrap();
    assert!(matches!(
        extract(&enc, &root, opts()),
        Err(OverlayError::Encrypted { .. })
    ));
}

#[test]
fn device_nodes_under_dev_are_allowed_by_the_check() {
    let dir = tempfile::tempdir().unwrap();
    let ovl = apkovl(dir.path(), "a.apkovl.tar.gz", &[E::Char("dev/ttyX")]);
    assert_eq!(check(&ovl).unwrap(), 1);
}

#[test]
fn device_nodes_are_made_through_the_callers_boundary() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    fs::create_dir(&root).unwrap();
    let ovl = apkovl(dir.path(), "a.apkovl.tar.gz", &[E::Char("dev/ttyX")]);
    let made = std::cell::RefCell::new(Vec::new());
    let make = |rel: &Path, kind, mode, _: u32, _: u32| {
        made.borrow_mut().push((rel.to_path_buf(), kind, mode));
        Ok(())
    };
    let out = extract(
        &ovl,
        &root,
        Options {
            make_node: Some(&make),
            ..opts()
        },
    )
    .unwrap();
    assert_eq!(
        made.borrow().as_slice(),
        [(PathBuf::from("dev/ttyX"), crate::sys::NodeKind::Char, 0o600)]
    );
    assert_eq!(out.names, ["dev/ttyX"]);
    // Without a way to make nodes: skipped with a warning, nothing else changes.
    let out = extract(&ovl, &root, opts()).unwrap();
    assert!(
        out.warnings[0].contains("device node"),
        "{:?}",
        out.warnings
    );
}

/// A directory outside the root, with a file in it, and its mirror inside the root (where an
/// absolute link naming it leads under chroot semantics). Returns (outside, mirror).
fn sentinel(dir: &Path, root: &Path, name: &str) -> (PathBuf, PathBuf) {
    let outside = dir.join(name);
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("keep"), b"1").unwrap();
    fs::set_permissions(&outside, fs::Permissions::from_mode(0o755)).unwrap();
    let mirror = root.join(outside.strip_prefix("/").unwrap());
    fs::create_dir_all(&mirror).unwrap();
    fs::set_permissions(&mirror, fs::Permissions::from_mode(0o755)).unwrap();
    (outside, mirror)
}

fn mode_owner(p: &Path) -> (u32, u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let m = fs::metadata(p).unwrap();
    (m.mode() & 0o7777, m.uid(), m.gid())
}

fn assert_untouched(outside: &Path) {
    let names: Vec<_> = fs::read_dir(outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["keep"], "written outside the root");
    assert_eq!(mode_owner(outside).0, 0o755);
}

/// alpine-baselayout's `var/run -> /run`: an apkovl file under `var/run/` lands in `run/`, and
/// the overlay list names it as written.
#[test]
fn absolute_symlink_in_the_root_is_followed_inside_it() {
    for resolve in RESOLVERS {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        fs::create_dir_all(root.join("run")).unwrap();
        fs::create_dir_all(root.join("var")).unwrap();
        symlink("/run", root.join("var/run")).unwrap();
        let ovl = apkovl(
            dir.path(),
            "a.apkovl.tar.gz",
            &[E::File("var/run/x", 0o644, b"x")],
        );
        let out = extract(&ovl, &root, Options { resolve, ..opts() }).unwrap();
        assert_eq!(out.names, ["var/run/x"]);
        assert_eq!(fs::read(root.join("run/x")).unwrap(), b"x");
        assert_eq!(
            fs::read_link(root.join("var/run")).unwrap(),
            Path::new("/run")
        );
    }
}

/// Links that climb (`/..`, `../../..`), absolute ones, chains of them and hard links through
/// them: all resolve inside the root; nothing outside changes.
#[test]
fn hostile_links_resolve_inside_the_root() {
    for resolve in RESOLVERS {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        fs::create_dir(&root).unwrap();
        let (outside, mirror) = sentinel(dir.path(), &root, "outside");
        let abs = outside.to_str().unwrap();
        let ovl = apkovl(
            dir.path(),
            "a.apkovl.tar.gz",
            &[
                E::Link("a1", "/.."),
                E::File("a1/f1", 0o644, b"1"),
                E::Link("a2", "../../.."),
                E::File("a2/f2", 0o644, b"2"),
                E::Link("a3", abs),
                E::File("a3/f3", 0o644, b"3"),
                E::Dir("x/", 0o755),
                E::Link("l3", "/"),
                E::Link("l2", "../../../l3"),
                E::Link("l1", "/l2/x"),
                E::File("l1/f5", 0o644, b"5"),
                E::Link("a3/inner", "../../../../.."),
                E::File("a3/inner/f6", 0o644, b"6"),
                E::Hard("h1", "l1/f5"),
                E::Hard("a2/h2", "/a3/f3"),
            ],
        );
        let out = extract(&ovl, &root, Options { resolve, ..opts() }).unwrap();
        assert!(out.warnings.is_empty(), "{:?}", out.warnings);
        assert_untouched(&outside);
        assert!(!dir.path().join("f1").exists() && !dir.path().join("f2").exists());
        assert_eq!(fs::read(root.join("f1")).unwrap(), b"1");
        assert_eq!(fs::read(root.join("f2")).unwrap(), b"2");
        assert_eq!(fs::read(mirror.join("f3")).unwrap(), b"3");
        assert_eq!(fs::read(root.join("x/f5")).unwrap(), b"5");
        assert_eq!(fs::read(root.join("f6")).unwrap(), b"6");
        use std::os::unix::fs::MetadataExt;
        let ino = |p: &Path| fs::metadata(p).unwrap().ino();
        assert_eq!(ino(&root.join("h1")), ino(&root.join("x/f5")));
        assert_eq!(ino(&root.join("h2")), ino(&mirror.join("f3")));
    }
}

/// Issue 8 point 12: a directory entry whose name is a symlink in the root (to a directory
/// outside, or inside) keeps the link and changes neither the target's mode nor its owner; the
/// same for Alpine's `chmod 700 root`.
#[test]
fn directory_entries_never_change_modes_or_owners_through_a_symlink() {
    for resolve in RESOLVERS {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        fs::create_dir_all(root.join("etc")).unwrap();
        let (outside, mirror) = sentinel(dir.path(), &root, "outside");
        let (home_outside, home_mirror) = sentinel(dir.path(), &root, "home");
        fs::create_dir(root.join("inside")).unwrap();
        fs::set_permissions(root.join("inside"), fs::Permissions::from_mode(0o755)).unwrap();
        symlink(&outside, root.join("etc/x")).unwrap();
        symlink("../inside", root.join("etc/y")).unwrap();
        symlink(&home_outside, root.join("root")).unwrap();
        let before: Vec<_> = [
            &outside,
            &mirror,
            &home_outside,
            &home_mirror,
            &root.join("inside"),
        ]
        .iter()
        .map(|p| mode_owner(p))
        .collect();
        let ovl = apkovl(
            dir.path(),
            "a.apkovl.tar.gz",
            &[
                E::DirOwned("etc/x/", 0o2700, 4321),
                E::DirOwned("etc/y/", 0o2700, 4321),
                E::DirOwned("root/", 0o2700, 4321),
                E::File("etc/y/f", 0o644, b"f"),
            ],
        );
        let out = extract(
            &ovl,
            &root,
            Options {
                chown: true,
                resolve,
                ..opts()
            },
        )
        .unwrap();
        let after: Vec<_> = [
            &outside,
            &mirror,
            &home_outside,
            &home_mirror,
            &root.join("inside"),
        ]
        .iter()
        .map(|p| mode_owner(p))
        .collect();
        assert_eq!(before, after);
        assert_eq!(out.names, ["etc/x/", "etc/y/", "root/", "etc/y/f"]);
        for link in ["etc/x", "etc/y", "root"] {
            assert!(fs::symlink_metadata(root.join(link)).unwrap().is_symlink());
        }
        assert_eq!(fs::read(root.join("inside/f")).unwrap(), b"f");
    }
}

/// A device node is made only where its path has no symlink: the path handed to the caller's
/// boundary is then the one inside the root.
#[test]
fn device_nodes_are_not_made_through_a_symlink() {
    for resolve in RESOLVERS {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        fs::create_dir(&root).unwrap();
        symlink("/", root.join("dev")).unwrap();
        let ovl = apkovl(dir.path(), "a.apkovl.tar.gz", &[E::Char("dev/ttyX")]);
        let made = std::cell::RefCell::new(Vec::new());
        let make = |rel: &Path, _, _, _: u32, _: u32| {
            made.borrow_mut().push(rel.to_path_buf());
            Ok(())
        };
        let out = extract(
            &ovl,
            &root,
            Options {
                make_node: Some(&make),
                resolve,
                ..opts()
            },
        )
        .unwrap();
        assert!(made.borrow().is_empty(), "{:?}", made.borrow());
        assert!(
            out.warnings[0].contains("a symlink is on its path"),
            "{:?}",
            out.warnings
        );
    }
}

/// A GNU tar archive (as busybox and GNU tar write apkovls) with names and link targets longer
/// than a header holds: the names come in `L` records, the link targets in `K` records.
fn gnu_apkovl(dir: &Path, name: &str, long_dir: &str) -> PathBuf {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o755);
    h.set_size(0);
    b.append_data(&mut h, format!("{long_dir}/"), &b""[..])
        .unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o640);
    h.set_size(5);
    b.append_data(&mut h, format!("{long_dir}/file"), &b"hello"[..])
        .unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    b.append_link(&mut h, "etc/long-symlink", format!("/{long_dir}/file"))
        .unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Link);
    h.set_size(0);
    b.append_link(
        &mut h,
        format!("{long_dir}/hard"),
        format!("{long_dir}/file"),
    )
    .unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Block);
    h.set_mode(0o660);
    h.set_device_major(8).unwrap();
    h.set_device_minor(1).unwrap();
    h.set_size(0);
    b.append_data(&mut h, "dev/sda1", &b""[..]).unwrap();
    let tar = b.into_inner().unwrap();
    assert!(
        tar.windows(13).any(|w| w == b"././@LongLink"),
        "GNU long records"
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).unwrap();
    let p = dir.join(name);
    fs::write(&p, gz.finish().unwrap()).unwrap();
    p
}

#[test]
fn gnu_long_names_long_link_targets_and_device_numbers_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    fs::create_dir_all(root.join("etc")).unwrap();
    let long_dir = format!("etc/{}", "d".repeat(120));
    let ovl = gnu_apkovl(dir.path(), "g.apkovl.tar.gz", &long_dir);
    assert_eq!(check(&ovl).unwrap(), 5);
    let made = std::cell::RefCell::new(Vec::new());
    let make = |rel: &Path, kind, mode, major: u32, minor: u32| {
        made.borrow_mut()
            .push((rel.to_path_buf(), kind, mode, major, minor));
        Ok(())
    };
    let opts = Options {
        make_node: Some(&make),
        ..opts()
    };
    let out = extract(&ovl, &root, opts).unwrap();
    assert_eq!(
        out.names,
        [
            format!("{long_dir}/"),
            format!("{long_dir}/file"),
            "etc/long-symlink".to_string(),
            format!("{long_dir}/hard"),
            "dev/sda1".to_string(),
        ]
    );
    assert_eq!(
        fs::read(root.join(&long_dir).join("file")).unwrap(),
        b"hello"
    );
    assert_eq!(
        fs::read_link(root.join("etc/long-symlink")).unwrap(),
        Path::new(&format!("/{long_dir}/file"))
    );
    assert_eq!(
        fs::read(root.join(&long_dir).join("hard")).unwrap(),
        b"hello"
    );
    assert_eq!(
        made.borrow().as_slice(),
        [(
            PathBuf::from("dev/sda1"),
            crate::sys::NodeKind::Block,
            0o660,
            8,
            1
        )]
    );
}

#[test]
fn concatenated_gzip_members_are_one_archive_and_data_after_the_end_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    fs::create_dir(&root).unwrap();
    // One archive cut at a record boundary into two gzip members, as `cat a.gz b.gz` makes.
    // The entries have the old-style type flag (NUL), a regular file for tar.
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in [("etc/a", &b"one"[..]), ("etc/b", &b"two"[..])] {
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, name, data).unwrap();
    }
    let tar = b.into_inner().unwrap();
    let gzip = |data: &[u8]| {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(data).unwrap();
        gz.finish().unwrap()
    };
    let mut bytes = gzip(&tar[..1024]);
    bytes.extend(gzip(&tar[1024..]));
    // What follows the end of the archive is not read (tar stops at its end marker too).
    bytes.extend_from_slice(b"trailing bytes that are not gzip");
    let ovl = dir.path().join("c.apkovl.tar.gz");
    fs::write(&ovl, &bytes).unwrap();
    let out = extract(&ovl, &root, opts()).unwrap();
    assert_eq!(out.names, ["etc/a", "etc/b"]);
    assert_eq!(fs::read(root.join("etc/b")).unwrap(), b"two");
}

#[test]
fn a_corrupt_archive_names_the_readers_error_as_its_source() {
    let dir = tempfile::tempdir().unwrap();
    let ovl = dir.path().join("x.apkovl.tar.gz");
    fs::write(&ovl, b"not gzip at all").unwrap();
    let err = check(&ovl).unwrap_err();
    assert!(matches!(err, OverlayError::Corrupt { .. }), "{err}");
    let source = std::error::Error::source(&err).expect("the reader's error");
    assert!(err.to_string().ends_with(&source.to_string()), "{err}");
}
