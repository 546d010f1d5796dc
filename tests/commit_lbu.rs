//! `ramboot commit` (issue 13, points 1 and 2): lbu's file selection on a fixture root with an
//! apk database, the archive read back by the boot's own apkovl extraction, lbu's naming and
//! rotation, the refusals, and the atomic write through the recording double (the medium made
//! writable only for the write) and on a small real filesystem (a full card); encrypted
//! commits (issue 13 point 4) read back by the boot's key and by the real `openssl enc -d`.
// Tests build fixtures, mount a small tmpfs and run openssl: the system boundary lint is for
// the library.
#![allow(clippy::disallowed_methods)]

mod support;

use ramboot::apk::checksum::Checksum;
use ramboot::commit::{self, CommitError, Encrypt, Request};
use ramboot::overlay::crypt::{self, CryptError, Unlocked};
use ramboot::sys::RecordingSys;
use sha1::Digest;
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

fn q1(data: &[u8]) -> String {
    Checksum::Sha1(sha1::Sha1::digest(data).into()).to_string()
}

fn write(root: &Path, rel: &str, data: &str, mode: u32) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(&p, data).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
}

/// A root as a diskless system has it after boot and some editing: one package owning a few
/// files of /etc, the user's changes on top. Returns the paths lbu would take, in walk order.
fn fixture(root: &Path) -> Vec<&'static str> {
    let packaged = [
        ("etc/motd", "Welcome\n"),
        ("etc/issue", "Alpine\n"),
        ("etc/shadow", "root:::0:::::\n"),
        ("etc/init.d/packaged", "#!/sbin/openrc-run\n"),
        ("etc/apk/arch", "x86_64\n"),
        ("etc/conf.d/net", "x=1\n"),
    ];
    let mut installed = String::from("P:alpine-baselayout\nV:1-r0\nA:x86_64\n");
    let mut dirs: Vec<&str> = Vec::new();
    for (rel, _) in packaged {
        let (dir, _) = rel.rsplit_once('/').unwrap();
        if !dirs.contains(&dir) {
            dirs.push(dir);
        }
    }
    for dir in &dirs {
        installed.push_str(&format!("F:{dir}\nM:0:0:755\n"));
        for (rel, data) in packaged {
            let (d, name) = rel.rsplit_once('/').unwrap();
            if d == *dir {
                let mode = if name == "shadow" {
                    "0:0:640"
                } else {
                    "0:0:644"
                };
                installed.push_str(&format!("R:{name}\na:{mode}\nZ:{}\n", q1(data.as_bytes())));
            }
        }
    }
    installed.push('\n');
    for (rel, data) in packaged {
        let mode = if rel.ends_with("shadow") {
            0o640
        } else {
            0o644
        };
        write(root, rel, data, mode);
    }
    write(root, "lib/apk/db/installed", &installed, 0o644);
    // The user's changes.
    write(root, "etc/issue", "Changed\n", 0o644); // U
    fs::set_permissions(root.join("etc/shadow"), fs::Permissions::from_mode(0o600)).unwrap(); // M
    write(root, "etc/hostname", "pi\n", 0o644); // A
    write(root, "etc/init.d/custom", "#!/bin/sh\n", 0o755); // @: not a symlink, left out
    symlink("/etc/init.d/packaged", root.join("etc/init.d/alias")).unwrap(); // @: taken
    fs::create_dir_all(root.join("etc/runlevels/default")).unwrap(); // d, d
    symlink("/etc/init.d/sshd", root.join("etc/runlevels/default/sshd")).unwrap(); // A
    write(root, "etc/apk/world", "alpine-base\n", 0o644); // !etc/apk
    write(root, "etc/apk/repositories", "/media/vda1/apks\n", 0o644);
    write(root, "etc/leftover.apk-new", "x\n", 0o644); // never
    write(root, "etc/secret/key", "k\n", 0o600); // excluded below
    write(root, "root/.profile", "alias l=ls\n", 0o644); // included below
    write(root, "var/lib/state", "s\n", 0o644); // not protected
    write(
        root,
        "etc/apk/protected_paths.d/lbu.list",
        "-etc/secret\n+root/.profile\n",
        0o644,
    );
    vec![
        "etc/apk/arch",
        "etc/apk/protected_paths.d/",
        "etc/apk/protected_paths.d/lbu.list",
        "etc/apk/repositories",
        "etc/apk/world",
        "etc/hostname",
        "etc/init.d/alias",
        "etc/issue",
        "etc/runlevels/",
        "etc/runlevels/default/",
        "etc/runlevels/default/sshd",
        "etc/shadow",
        "root/.profile",
    ]
}

fn paths(sel: &commit::Selection) -> Vec<String> {
    let mut v: Vec<String> = sel.files.iter().map(|s| s.path.clone()).collect();
    v.sort();
    v
}

/// The files lbu takes: new, changed (content, mode), all of etc/apk, only symlinks in
/// etc/init.d, new directories, lbu.list's includes and excludes; never `.apk-new` files,
/// unchanged package files or unprotected paths. (Checked against `apk audit --backup --quiet
/// --recursive --check-permissions` of apk-tools 2.14.10 on the same tree: same set.)
#[test]
fn the_selection_is_lbus() {
    let d = tempfile::tempdir().unwrap();
    let want = fixture(d.path());
    let (_, sel) = commit::selection(d.path()).unwrap();
    assert_eq!(paths(&sel), want, "{sel:#?}");
    let reason = |p: &str| sel.files.iter().find(|s| s.path == p).unwrap().reason;
    use commit::select::Reason;
    assert_eq!(reason("etc/issue"), Reason::Updated);
    assert_eq!(reason("etc/shadow"), Reason::Permissions);
    assert_eq!(reason("etc/hostname"), Reason::Added);
    assert_eq!(reason("etc/runlevels/"), Reason::NewDir);
}

fn media_root(d: &Path, read_only: bool) -> (RecordingSys, PathBuf) {
    let media = d.join("media/vda1");
    fs::create_dir_all(&media).unwrap();
    fs::create_dir_all(d.join("proc")).unwrap();
    let flags = if read_only { "ro" } else { "rw" };
    fs::write(
        d.join("proc/mounts"),
        format!("/dev/vda1 /media/vda1 vfat {flags},relatime 0 0\n"),
    )
    .unwrap();
    (RecordingSys::new(d), media)
}

fn request(root: &Path) -> Request {
    Request {
        root: root.to_path_buf(),
        media: Some("vda1".into()),
        hostname: Some("pi".into()),
        ..Default::default()
    }
}

/// What the boot extracts from an apkovl: every path with its kind, mode, owner, link and
/// content.
fn tree(root: &Path) -> Vec<(String, u32, u32, String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            let m = fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let link = fs::read_link(&p)
                .map(|l| l.display().to_string())
                .unwrap_or_default();
            let data = if m.is_file() {
                fs::read(&p).unwrap()
            } else {
                Vec::new()
            };
            if m.is_dir() {
                stack.push(p.clone());
            }
            out.push((rel, m.mode(), m.uid(), link, data));
        }
    }
    out.sort();
    out
}

/// The apkovl `ramboot commit` writes, extracted by the boot's own apkovl step, gives back the
/// same files (content, modes, owners, links), and the medium was read-write only for the write.
#[test]
fn a_committed_apkovl_reads_back_as_the_same_files() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("root");
    let want = fixture(&root);
    let (sys, media) = media_root(d.path(), true);
    let report = commit::commit(&sys, &request(&root)).unwrap();
    assert_eq!(report.selection.files.len(), want.len());
    let apkovl = media.join("pi.apkovl.tar.gz");
    assert!(apkovl.is_file());
    let names: Vec<String> = fs::read_dir(&media)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["pi.apkovl.tar.gz"], "no temporary file left");
    assert_eq!(
        sys.trace(),
        [
            "mount -o remount,sync,relatime /media/vda1",
            "mount -o remount,ro,relatime /media/vda1"
        ]
    );
    let out = d.path().join("extracted");
    fs::create_dir_all(&out).unwrap();
    let opts = ramboot::overlay::Options {
        chown: true,
        ..Default::default()
    };
    ramboot::overlay::extract(&apkovl, &out, opts).unwrap();
    // The selected entries (their parents are not in the archive: the boot makes them).
    let selected = |t: Vec<(String, u32, u32, String, Vec<u8>)>| -> Vec<_> {
        t.into_iter()
            .filter(|(rel, ..)| want.iter().any(|w| w.trim_end_matches('/') == rel))
            .collect()
    };
    let expected = selected(tree(&root));
    assert_eq!(expected.len(), want.len());
    assert_eq!(selected(tree(&out)), expected);
}

/// `--dry-run` lists and writes nothing; other apkovls are refused unless `-d`; the old apkovl
/// becomes `<host>.<UTC mtime>.tar.gz`; `BACKUP_LIMIT` older copies are kept (at least one).
#[test]
fn dry_run_refusals_backup_and_rotation() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("root");
    fixture(&root);
    let (sys, media) = media_root(d.path(), false);
    let dry = Request {
        dry_run: true,
        ..request(&root)
    };
    let r = commit::commit(&sys, &dry).unwrap();
    assert!(r.bytes > 0);
    assert_eq!(fs::read_dir(&media).unwrap().count(), 0, "dry run wrote");

    fs::write(media.join("old.apkovl.tar.gz"), b"x").unwrap();
    let err = commit::commit(&sys, &request(&root)).unwrap_err();
    assert!(
        matches!(&err, CommitError::OtherApkovls { names, .. } if names == &["old.apkovl.tar.gz"]),
        "{err}"
    );
    assert!(!media.join("pi.apkovl.tar.gz").exists());
    let delete = Request {
        delete_others: true,
        ..request(&root)
    };
    let r = commit::commit(&sys, &delete).unwrap();
    assert_eq!(r.removed, ["old.apkovl.tar.gz"]);

    // Backups named by the old file's mtime, in UTC; BACKUP_LIMIT=2 keeps two.
    write(&root, "etc/lbu/lbu.conf", "# lbu\nBACKUP_LIMIT=2\n", 0o644);
    let out = media.join("pi.apkovl.tar.gz");
    let mut stamps = Vec::new();
    for (i, t) in [1_700_000_000i64, 1_700_000_100, 1_700_000_200]
        .iter()
        .enumerate()
    {
        let times = fs::FileTimes::new()
            .set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(*t as u64));
        fs::File::options()
            .write(true)
            .open(&out)
            .unwrap()
            .set_times(times)
            .unwrap();
        write(&root, "etc/hostname", &format!("pi{i}\n"), 0o644);
        let r = commit::commit(&sys, &request(&root)).unwrap();
        stamps.push(r.backup.unwrap());
    }
    assert_eq!(
        stamps,
        [
            "pi.20231114221320.tar.gz",
            "pi.20231114221500.tar.gz",
            "pi.20231114221640.tar.gz"
        ]
    );
    let mut left: Vec<String> = fs::read_dir(&media)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(
        left,
        [
            "pi.20231114221500.tar.gz",
            "pi.20231114221640.tar.gz",
            "pi.apkovl.tar.gz"
        ]
    );
}

/// The UTC stamp of lbu's backup names (`date -u -r FILE +%Y%m%d%H%M%S`).
#[test]
fn utc_stamps() {
    assert_eq!(commit::utc_stamp(0), "19700101000000");
    assert_eq!(commit::utc_stamp(951_782_400), "20000229000000");
    assert_eq!(commit::utc_stamp(4_102_444_799), "20991231235959");
}

/// lbu.conf: plain assignments, quotes, `export`; the environment fills what it leaves unset.
#[test]
fn lbu_conf() {
    let c = commit::LbuConf::parse(
        "# c\nLBU_MEDIA=\"mmcblk0p1\"\nexport BACKUP_LIMIT=3\nif true; then :; fi\n",
    );
    assert_eq!(c.media.as_deref(), Some("mmcblk0p1"));
    assert_eq!(c.backup_limit, Some(3));
    assert_eq!(c.backup_dir, None);
    let e = commit::LbuConf::parse(
        "ENCRYPTION=aes-256-cbc\nDEFAULT_CIPHER=aes-128-cbc\nPASSWORD=\"a b\"\n",
    );
    assert_eq!(e.encryption.as_deref(), Some("aes-256-cbc"));
    assert_eq!(e.default_cipher.as_deref(), Some("aes-128-cbc"));
    assert_eq!(e.password, Some(commit::Password(b"a b".to_vec())));
    assert!(
        !format!("{e:?}").contains("a b"),
        "the password is never shown"
    );
}

/// A card too small for the new apkovl (a real 64 KiB tmpfs): the old apkovl stays whole and
/// the only one, no temporary file is left, and the error says how much room was needed.
#[test]
fn a_full_card_keeps_the_old_apkovl_and_says_how_much_was_needed() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("root");
    fixture(&root);
    let (sys, media) = media_root(d.path(), false);
    let status = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&media)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "mounting a small tmpfs (tests run as root)"
    );
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(media.clone());
    commit::commit(&sys, &request(&root)).unwrap();
    let old = fs::read(media.join("pi.apkovl.tar.gz")).unwrap();
    // Fill the card, then make the configuration bigger than what is left.
    let filler = vec![0x5a; 44 * 1024];
    fs::write(media.join("filler"), &filler).ok();
    let mut rng = ramboot::xorshift::Xorshift(0x9e37_79b9_7f4a_7c15);
    let noise: Vec<u8> = (0..40_000).map(|_| rng.next_u64() as u8).collect();
    fs::write(root.join("etc/big"), &noise).unwrap();
    let err = commit::commit(&sys, &request(&root)).unwrap_err();
    let CommitError::NoSpace { needed, free, .. } = err else {
        panic!("{err}");
    };
    assert!(needed > free, "{needed} {free}");
    assert!(err_text(needed, free).contains("bytes needed"));
    assert_eq!(fs::read(media.join("pi.apkovl.tar.gz")).unwrap(), old);
    let mut names: Vec<String> = fs::read_dir(&media)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["filler", "pi.apkovl.tar.gz"]);
}

fn err_text(needed: u64, free: u64) -> String {
    CommitError::NoSpace {
        dir: "/media/vda1".into(),
        needed,
        free,
    }
    .to_string()
}

/// Last-known-good (issue 13, point 3): a commit from a boot not confirmed good is refused
/// unless forced; after a fall-back boot, the apkovl that failed is kept aside as
/// `<host>.failed.tar.gz`, out of the rotation a later fall-back reads, and the good backup stays.
#[test]
fn commits_keep_the_last_known_good_copy() {
    use ramboot::boot::lkg;
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("root");
    fixture(&root);
    let (sys, media) = media_root(d.path(), false);
    commit::commit(&sys, &request(&root)).unwrap();
    let apkovl = Path::new("/media/vda1/pi.apkovl.tar.gz");
    let booted = lkg::choose(&sys, apkovl, 2).unwrap();
    lkg::record(&sys, apkovl, &booted.record);
    write(&root, "etc/hostname", "changed\n", 0o644);
    let err = commit::commit(&sys, &request(&root)).unwrap_err();
    assert!(
        matches!(err, CommitError::Unconfirmed { attempts: 1, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("ramboot ok"), "{err}");
    let forced = Request {
        force: true,
        ..request(&root)
    };
    let r = commit::commit(&sys, &forced).unwrap();
    let good_backup = r.backup.unwrap();

    // Two failed boots of the forced commit, then the fall-back boot.
    for _ in 0..3 {
        let c = lkg::choose(&sys, apkovl, 2).unwrap();
        lkg::record(&sys, apkovl, &c.record);
    }
    assert!(lkg::State::read(&media).unwrap().fell_back());
    let failing = fs::read(media.join("pi.apkovl.tar.gz")).unwrap();
    write(&root, "etc/hostname", "fixed\n", 0o644);
    let r = commit::commit(&sys, &request(&root)).unwrap();
    assert_eq!(r.backup, None);
    assert_eq!(fs::read(media.join("pi.failed.tar.gz")).unwrap(), failing);
    assert_eq!(lkg::backups(&media, "pi.apkovl.tar.gz"), [good_backup]);
    // The new apkovl is a new start: no fall-back on its first boot.
    let c = lkg::choose(&sys, apkovl, 2).unwrap();
    assert_eq!(c.fell_back, None);
}

/// apk's rule walk in its corners, as apk-tools 2.14.10's `apk audit --backup --recursive
/// --check-permissions` answers on the same tree: a rule with a glob below a directory, an
/// exclude with an include inside it, protected paths outside /etc from two lists, a parent of
/// an owned directory that no package owns (apk expects an impossible owner of it and reports
/// it), an owned directory whose mode changed, a dangling symlink.
#[test]
fn the_selection_follows_apks_rules_in_their_corners() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    for (rel, data) in [
        ("etc/ssl/certs/ca.pem", "a"),
        ("etc/ssl/certs/mine.pem", "b"),
        ("etc/ssl/other.txt", "c"),
        ("etc/owned/f", "d"),
        ("etc/anc/deep/g", "e"),
        ("usr/local/bin/tool", "tool"),
        ("etc/foo/bar", "x"),
        ("etc/foo/keep.conf", "y"),
        ("etc/apk/world", "base\n"),
    ] {
        write(root, rel, data, 0o644);
    }
    fs::create_dir_all(root.join("var/x")).unwrap();
    fs::set_permissions(root.join("etc/owned"), fs::Permissions::from_mode(0o700)).unwrap();
    symlink("/nowhere", root.join("etc/dangling")).unwrap();
    let installed = format!(
        "P:base\nV:1\nF:etc\nM:0:0:755\nF:etc/owned\nM:0:0:755\nR:f\nZ:{}\n\
         F:etc/anc/deep\nM:0:0:755\nR:g\nZ:{}\nF:etc/ssl/certs\nR:ca.pem\nZ:{}\n\n",
        q1(b"d"),
        q1(b"e"),
        q1(b"a")
    );
    write(root, "lib/apk/db/installed", &installed, 0o644);
    write(
        root,
        "etc/apk/protected_paths.d/lbu.list",
        "+etc/ssl/certs/*.pem\n-etc/foo\n+etc/foo/keep.conf\n+usr/local/bin\n",
        0o644,
    );
    write(root, "etc/apk/protected_paths.d/zz.list", "+var/x\n", 0o644);
    let (_, sel) = commit::selection(root).unwrap();
    assert_eq!(
        paths(&sel),
        [
            "etc/anc/",
            "etc/apk/",
            "etc/apk/protected_paths.d/",
            "etc/apk/protected_paths.d/lbu.list",
            "etc/apk/protected_paths.d/zz.list",
            "etc/apk/world",
            "etc/dangling",
            "etc/foo/keep.conf",
            "etc/owned/",
            "etc/ssl/",
            "etc/ssl/certs/mine.pem",
            "etc/ssl/other.txt",
            "usr/local/bin/",
            "usr/local/bin/tool",
            "var/x/",
        ]
    );
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

fn set_mtime(path: &Path, secs: u64) {
    let times = fs::FileTimes::new()
        .set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs));
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_times(times)
        .unwrap();
}

/// The boot's own apkovl step with the key: unlock, then extract; the files it gives.
fn unlocked_tree(
    apkovl: &Path,
    pass: &[u8],
    out: &Path,
) -> Vec<(String, u32, u32, String, Vec<u8>)> {
    let key = Unlocked::new(apkovl, pass).unwrap();
    fs::create_dir_all(out).unwrap();
    let opts = ramboot::overlay::Options {
        chown: true,
        unlocked: Some(&key),
        ..Default::default()
    };
    ramboot::overlay::extract(apkovl, out, opts).unwrap();
    tree(out)
}

fn selected(
    want: &[&str],
    t: Vec<(String, u32, u32, String, Vec<u8>)>,
) -> Vec<(String, u32, u32, String, Vec<u8>)> {
    t.into_iter()
        .filter(|(rel, ..)| want.iter().any(|w| w.trim_end_matches('/') == rel))
        .collect()
}

/// `commit --encrypt --key-file`: one `<host>.apkovl.tar.gz.ramboot` (no plain copy, no
/// temporary file), which the boot's apkovl step unlocks with the key file's first line and
/// extracts to the same files; a wrong key is refused by name; the next commit's backup keeps
/// the suffix (as lbu's) and the boot reads it too (a last-known-good fall-back applies it);
/// `diff` decrypts the last apkovl, and says a wrong key is one.
#[test]
fn an_encrypted_commit_reads_back_through_the_boots_key() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("root");
    let want = fixture(&root);
    let (sys, media) = media_root(d.path(), true);
    let key = d.path().join("key");
    fs::write(&key, "s3cret\nsecond line ignored\n").unwrap();
    let req = Request {
        encrypt: Some(Encrypt::Ramboot),
        key_file: Some(key.clone()),
        ..request(&root)
    };
    commit::commit(&sys, &req).unwrap();
    assert_eq!(names(&media), ["pi.apkovl.tar.gz.ramboot"]);
    let apkovl = media.join("pi.apkovl.tar.gz.ramboot");
    assert_ne!(
        &fs::read(&apkovl).unwrap()[..2],
        b"\x1f\x8b",
        "not gzip: sealed"
    );
    let expected = selected(&want, tree(&root));
    assert_eq!(expected.len(), want.len());
    assert_eq!(
        selected(
            &want,
            unlocked_tree(&apkovl, b"s3cret", &d.path().join("x1"))
        ),
        expected
    );
    assert!(matches!(
        Unlocked::new(&apkovl, b"s3cret\nsecond line ignored"),
        Err(CryptError::WrongKey)
    ));

    // diff: nothing changed, then one file; a wrong key is named as such.
    let (r, sel) = commit::selection(&root).unwrap();
    assert_eq!(
        commit::diff(&r, &sel.files, &apkovl, Some(b"s3cret")).unwrap(),
        []
    );
    let err = commit::diff(&r, &sel.files, &apkovl, Some(b"guess")).unwrap_err();
    assert!(
        matches!(
            &err,
            CommitError::Crypt {
                source: CryptError::WrongKey,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("wrong passphrase"), "{err}");
    write(&root, "etc/hostname", "pi2\n", 0o644);
    let (r, sel) = commit::selection(&root).unwrap();
    let changes = commit::diff(&r, &sel.files, &apkovl, Some(b"s3cret")).unwrap();
    assert_eq!(
        changes,
        [commit::Change {
            letter: 'U',
            path: "etc/hostname".into()
        }]
    );

    // The next commit: the backup keeps the suffix and is as readable as the apkovl was.
    set_mtime(&apkovl, 1_700_000_000);
    let first = fs::read(&apkovl).unwrap();
    let r = commit::commit(&sys, &req).unwrap();
    assert_eq!(
        r.backup.as_deref(),
        Some("pi.20231114221320.tar.gz.ramboot")
    );
    let backup = media.join("pi.20231114221320.tar.gz.ramboot");
    assert_eq!(fs::read(&backup).unwrap(), first);
    assert_eq!(crypt::suffix_of(&backup), Some(crypt::RAMBOOT_SUFFIX));
    assert_eq!(
        ramboot::boot::lkg::backups(&media, "pi.apkovl.tar.gz.ramboot"),
        ["pi.20231114221320.tar.gz.ramboot"]
    );
    let back = unlocked_tree(&backup, b"s3cret", &d.path().join("x2"));
    assert!(back
        .iter()
        .any(|(p, .., data)| p == "etc/hostname" && data == b"pi\n"));
}

/// The passphrase typed on the terminal (the Sys boundary, echo off) is asked twice when it
/// seals: two that differ write nothing; `commit --encrypt` next to a plain apkovl of the same
/// host is refused (a boot would pick one by its rule), and `-d` replaces it.
#[test]
fn a_typed_passphrase_is_confirmed_and_plain_and_encrypted_never_sit_side_by_side() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("root");
    fixture(&root);
    let (sys, media) = media_root(d.path(), false);
    commit::commit(&sys, &request(&root)).unwrap();
    let enc = Request {
        encrypt: Some(Encrypt::Ramboot),
        ..request(&root)
    };
    let err = commit::commit(&sys, &enc).unwrap_err();
    assert!(
        matches!(&err, CommitError::OtherApkovls { names, .. } if names == &["pi.apkovl.tar.gz"]),
        "{err}"
    );
    let replace = Request {
        delete_others: true,
        ..enc.clone()
    };
    sys.push_secret(Some(b"one"));
    sys.push_secret(Some(b"two"));
    let err = commit::commit(&sys, &replace).unwrap_err();
    assert!(matches!(err, CommitError::Passphrase(_)), "{err}");
    assert_eq!(names(&media), ["pi.apkovl.tar.gz"], "nothing written");
    sys.push_secret(Some(b"typed"));
    sys.push_secret(Some(b"typed"));
    let r = commit::commit(&sys, &replace).unwrap();
    assert_eq!(r.removed, ["pi.apkovl.tar.gz"]);
    assert_eq!(names(&media), ["pi.apkovl.tar.gz.ramboot"]);
    let prompts = sys
        .trace()
        .iter()
        .filter(|l| l.starts_with("read secret"))
        .count();
    assert_eq!(prompts, 4, "{:#?}", sys.trace());
    assert!(crypt::open_to_vec(&media.join("pi.apkovl.tar.gz.ramboot"), b"typed").is_ok());
}

/// lbu.conf `ENCRYPTION=aes-256-cbc` with `PASSWORD` (as lbu reads them): the apkovl is
/// `<host>.apkovl.tar.gz.aes-256-cbc`, which the real `openssl enc -d -aes-256-cbc` (what
/// Alpine's initramfs runs) decrypts to the gzip'd tar the boot reads; `--openssl --cipher`
/// overrides it; a cipher ramboot cannot write is refused before anything is written.
#[test]
fn lbu_conf_encryption_is_read_by_real_openssl() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("root");
    let want = fixture(&root);
    let (sys, media) = media_root(d.path(), false);
    write(
        &root,
        "etc/lbu/lbu.conf",
        "ENCRYPTION=aes-256-cbc\nPASSWORD='p4ss word'\n",
        0o644,
    );
    commit::commit(&sys, &request(&root)).unwrap();
    assert_eq!(names(&media), ["pi.apkovl.tar.gz.aes-256-cbc"]);
    let apkovl = media.join("pi.apkovl.tar.gz.aes-256-cbc");
    assert_eq!(&fs::read(&apkovl).unwrap()[..8], b"Salted__");
    assert!(support::tools::have("openssl"));
    let out = std::process::Command::new("openssl")
        .args([
            "enc",
            "-d",
            "-aes-256-cbc",
            "-pass",
            "pass:p4ss word",
            "-in",
        ])
        .arg(&apkovl)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ours = crypt::open_to_vec(&apkovl, b"p4ss word").unwrap();
    assert_eq!(out.stdout, ours);
    let entries = commit::read_entries(&out.stdout).unwrap();
    let mut got: Vec<&str> = entries.iter().map(|(p, _)| p.as_str()).collect();
    got.sort();
    let mut expect: Vec<&str> = want.iter().map(|w| w.trim_end_matches('/')).collect();
    // lbu.conf is new under /etc: saved too (in the encrypted apkovl, as lbu does).
    expect.extend(["etc/lbu", "etc/lbu/lbu.conf"]);
    expect.sort();
    assert_eq!(got, expect);
    let wrong = std::process::Command::new("openssl")
        .args(["enc", "-d", "-aes-256-cbc", "-pass", "pass:guess", "-in"])
        .arg(&apkovl)
        .output()
        .unwrap();
    assert!(wrong.stdout != ours, "a wrong key gives other bytes");

    // --openssl --cipher wins over lbu.conf; the old one is another apkovl: -d replaces it.
    let other = Request {
        encrypt: Some(Encrypt::Openssl {
            cipher: Some("aes-128-cbc".into()),
        }),
        delete_others: true,
        ..request(&root)
    };
    commit::commit(&sys, &other).unwrap();
    assert_eq!(names(&media), ["pi.apkovl.tar.gz.aes-128-cbc"]);
    let out = std::process::Command::new("openssl")
        .args([
            "enc",
            "-d",
            "-aes-128-cbc",
            "-pass",
            "pass:p4ss word",
            "-in",
        ])
        .arg(media.join("pi.apkovl.tar.gz.aes-128-cbc"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    write(
        &root,
        "etc/lbu/lbu.conf",
        "ENCRYPTION=des3\nPASSWORD=x\n",
        0o644,
    );
    let err = commit::commit(&sys, &request(&root)).unwrap_err();
    assert!(matches!(err, CommitError::Cipher { .. }), "{err}");
    assert!(err.to_string().contains("des3"), "{err}");
    assert_eq!(names(&media), ["pi.apkovl.tar.gz.aes-128-cbc"]);
}
