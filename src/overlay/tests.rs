use super::*;
use std::io::Write;

enum E<'a> {
    Dir(&'a str, u32),
    File(&'a str, u32, &'a [u8]),
    Link(&'a str, &'a str),
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
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    fs::create_dir_all(root.join("usr/bin")).unwrap();
    symlink("usr/bin", root.join("bin")).unwrap();
    let ovl = apkovl(
        dir.path(),
        "a.apkovl.tar.gz",
        &[E::File("bin/foo", 0o755, b"x")],
    );
    extract(&ovl, &root, opts()).unwrap();
    assert!(root.join("usr/bin/foo").is_file());
}

#[test]
fn symlink_then_write_stays_inside_the_root() {
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
    extract(&ovl, &root, opts()).unwrap();
    assert!(root.join("escape").is_file(), "{:?}", tree(&root));
    assert!(!dir.path().join("escape").exists());
    assert!(!dir.path().join("outside").exists());
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
            chown: false,
            make_node: Some(&make),
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
