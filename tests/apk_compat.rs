//! Installs checked against apk-tools 2.14.10 on the same packages.
//!
//! Each case was run through the reference apk (built from source, run as root:
//! `apk add --root R --initdb -X REPO --keys-dir KEYS --no-cache`, scripts run in a chroot with
//! a static busybox as `/bin/sh`) and through ramboot; the db lines and owners asserted here are
//! the reference's output. The reference is not needed to run these tests.
// Tests drive real tools and processes (QEMU, mkfs, the built binary): the system boundary
// lint is for the library.
#![allow(clippy::disallowed_methods)]

mod apk_support;

use apk_support::*;
use ramboot::apk::build::{Content, PackageBuilder};
use ramboot::apk::stream::ScriptKind;
use ramboot::apk::tar::Kind;
use ramboot::apk::{install, ScriptPolicy};
use ramboot::sys::RecordingSys;
use std::os::unix::fs::MetadataExt;

/// The package that ships the accounts: user foo is 100, group foo is 101.
fn accounts(name: &str) -> PackageBuilder {
    pkg(name, "1")
        .dir("etc", 0o755)
        .file(
            "etc/passwd",
            b"root:x:0:0:root:/root:/bin/sh\nfoo:x:100:101:foo:/home/foo:/bin/sh\n",
            0o644,
        )
        .file("etc/group", b"root:x:0:root\nfoo:x:101:foo\n", 0o644)
}

/// A package whose directory `dir` and file `dir/f` belong to foo:foo, with the builder's
/// numbers 1100:1101 in the tar headers.
fn owned_by_foo(name: &str, dir: &str) -> PackageBuilder {
    pkg(name, "1")
        .entry(PackageBuilder::raw_entry(dir, Kind::Dir, 0o750).owner("foo", 1100, "foo", 1101))
        .entry(
            PackageBuilder::file_entry(&format!("{dir}/f"), Content::Bytes(b"x\n".to_vec()), 0o640)
                .owner("foo", 1100, "foo", 1101),
        )
}

/// The installed-db record of `name`.
fn record(f: &Fixture, name: &str) -> String {
    let db = f.read("lib/apk/db/installed");
    db.split("\n\n")
        .find(|r| r.starts_with("C:") && r.contains(&format!("\nP:{name}\n")))
        .unwrap_or_else(|| panic!("no record for {name} in\n{db}"))
        .to_string()
}

/// The lines of a directory in a record, from its `F:` up to the next `F:`.
fn dir_lines(record: &str, dir: &str) -> String {
    let start = record
        .find(&format!("\nF:{dir}\n"))
        .unwrap_or_else(|| panic!("no F:{dir} in\n{record}"));
    let rest = &record[start + 1..];
    let end = rest[2..].find("\nF:").map_or(rest.len(), |e| e + 3);
    rest[..end]
        .lines()
        .filter(|l| !l.starts_with("Z:"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Owner of a path on disk: what a privileged install sets, else whoever ran the test.
fn disk_owner(f: &Fixture, rel: &str) -> (u32, u32) {
    let m = std::fs::symlink_metadata(f.root().join(rel)).unwrap();
    (m.uid(), m.gid())
}

fn expect_on_disk(f: &Fixture, rel: &str, owner: (u32, u32)) {
    let want = if rustix::process::geteuid().is_root() {
        owner
    } else {
        (
            rustix::process::geteuid().as_raw(),
            rustix::process::getegid().as_raw(),
        )
    };
    assert_eq!(disk_owner(f, rel), want, "{rel}");
}

/// Scripts "run" through the recording double (exit 0), as a successful script would.
fn install_running_scripts(f: &Fixture, world: &[&str]) {
    let mut req = f.request(world);
    req.scripts = ScriptPolicy::Always;
    let r = install(&req, &RecordingSys::new("/")).unwrap();
    assert_eq!(r.errors(), 0, "{r:?}");
}

#[test]
fn owner_names_map_through_accounts_shipped_by_an_earlier_package() {
    // Bug fixed: the accounts were read once before the transaction, so names kept the tar
    // numbers (1100) when `etc/passwd` came from an earlier package with no script between.
    let f = Fixture::new();
    f.publish(vec![
        accounts("base"),
        owned_by_foo("app", "srv").depends("base"),
    ]);
    let r = f.install(&["app"]);
    assert_eq!(r.errors(), 0, "{r:?}");
    assert_eq!(
        dir_lines(&record(&f, "app"), "srv"),
        "F:srv\nM:100:101:750\nR:f\na:100:101:640"
    );
    expect_on_disk(&f, "srv", (100, 101));
    expect_on_disk(&f, "srv/f", (100, 101));
}

#[test]
fn a_name_missing_when_first_looked_up_keeps_its_tar_number_until_a_script_runs() {
    // apk remembers a miss as well: `early` asks for foo before any passwd exists, so `app`
    // gets the tar number too, although `base` brought foo in between.
    let f = Fixture::new();
    f.publish(vec![
        owned_by_foo("early", "srv"),
        accounts("base").depends("early"),
        owned_by_foo("app", "opt").depends("base"),
    ]);
    assert_eq!(f.install(&["app"]).errors(), 0);
    for (name, dir) in [("early", "srv"), ("app", "opt")] {
        assert_eq!(
            dir_lines(&record(&f, name), dir),
            format!("F:{dir}\nM:1100:1101:750\nR:f\na:1100:1101:640")
        );
    }
    expect_on_disk(&f, "opt/f", (1100, 1101));

    // A script that ran (here base's post-install) makes apk forget every answer.
    let f = Fixture::new();
    f.publish(vec![
        owned_by_foo("early", "srv"),
        accounts("base")
            .depends("early")
            .script(ScriptKind::PostInstall, "#!/bin/sh\nexit 0\n"),
        owned_by_foo("app", "opt").depends("base"),
    ]);
    install_running_scripts(&f, &["app"]);
    assert_eq!(
        dir_lines(&record(&f, "early"), "srv"),
        "F:srv\nM:1100:1101:750\nR:f\na:1100:1101:640"
    );
    assert_eq!(
        dir_lines(&record(&f, "app"), "opt"),
        "F:opt\nM:100:101:750\nR:f\na:100:101:640"
    );
    expect_on_disk(&f, "opt", (100, 101));
}

#[test]
fn the_first_data_entry_is_resolved_before_the_pre_install_script() {
    // apk parses the first data header (resolving its names) and only then runs pre-install,
    // which resets the cache: the directory keeps the remembered miss, the file after it sees
    // passwd afresh.
    let f = Fixture::new();
    f.publish(vec![
        owned_by_foo("early", "srv"),
        accounts("base").depends("early"),
        owned_by_foo("app", "opt")
            .depends("base")
            .script(ScriptKind::PreInstall, "#!/bin/sh\nexit 0\n"),
    ]);
    install_running_scripts(&f, &["app"]);
    assert_eq!(
        dir_lines(&record(&f, "app"), "opt"),
        "F:opt\nM:1100:1101:750\nR:f\na:100:101:640"
    );
    expect_on_disk(&f, "opt", (1100, 1101));
    expect_on_disk(&f, "opt/f", (100, 101));
}

/// `rep` replaces `orig` and ships one of its protected files; `meta` (no files, like
/// `alpine-base`) replaces `orig` too.
fn replacing_packages() -> Vec<PackageBuilder> {
    let mut meta = pkg("meta", "1").depends("orig rep").replaces("orig");
    meta.installed_size = Some(4096); // abuild's size of an empty package
    vec![
        pkg("orig", "1")
            .dir("etc", 0o755)
            .file("etc/motd", b"hi\n", 0o644)
            .file("etc/shared", b"orig\n", 0o644),
        meta,
        pkg("rep", "1")
            .depends("orig")
            .replaces("orig")
            .dir("etc", 0o755)
            .file("etc/shared", b"rep\n", 0o644),
    ]
}

#[test]
fn a_replacing_package_takes_over_unmodified_protected_files() {
    // Bug fixed: the takeover forgot the old owner's checksum before the protected-path check,
    // so the unmodified file looked changed: `rep`'s copy went to `.apk-new` (or was dropped
    // with --clean-protected) where apk overwrites it.
    for diskless in [false, true] {
        let f = Fixture::new();
        f.publish(replacing_packages());
        let mut req = f.request(&["meta"]);
        req.diskless_boot = diskless;
        req.clean_protected = diskless;
        let r = install(&req, &RecordingSys::new("/")).unwrap();
        assert_eq!(r.errors(), 0, "{r:?}");
        assert_eq!(f.read("etc/shared"), "rep\n", "diskless: {diskless}");
        assert!(!f.root().join("etc/shared.apk-new").exists());
        assert_eq!(
            dir_lines(&record(&f, "orig"), "etc"),
            "F:etc\nR:motd",
            "the file left the replaced package"
        );
        assert_eq!(dir_lines(&record(&f, "rep"), "etc"), "F:etc\nR:shared");
    }
}

#[test]
fn replaces_lines_stay_in_their_own_record() {
    // A deliberate difference (see the apk module docs): apk 2.14 buffers a record's `r:`,
    // `q:`, `s:` and `f:` lines until the record's first `F:` line, so a record without
    // directories hands them to the next record that has one (here `meta`'s `r:orig` would be
    // written into `orig`'s record) and the last such record loses them. ramboot writes each
    // record's lines in that record.
    let f = Fixture::new();
    f.publish(replacing_packages());
    assert_eq!(f.install(&["meta"]).errors(), 0);
    let meta = record(&f, "meta");
    assert!(meta.ends_with("\nD:orig rep\nr:orig"), "{meta}");
    let orig = record(&f, "orig");
    assert!(!orig.contains("r:"), "{orig}");
    let rep = record(&f, "rep");
    assert!(rep.contains("\nD:orig\nr:orig\nF:etc\n"), "{rep}");
}

/// abuild outside a git checkout writes `commit = ` (empty): `apk index` keeps it as `c:` and
/// apk-tools 2.14 writes the empty `c:` into the installed db (seen in a user repository built
/// that way, kuba2k2/alpine-home-assistant v3.19-v3.22); absent stays absent.
#[test]
fn an_empty_commit_is_kept_as_an_empty_c_line() {
    let f = Fixture::new();
    let mut empty = pkg("empty-commit", "1").file("usr/share/e", b"e\n", 0o644);
    empty.pkginfo_extra = "commit = \n".into();
    let absent = pkg("no-commit", "1").file("usr/share/n", b"n\n", 0o644);
    let repo = f.repo();
    f.publish_with(vec![empty, absent], |idx| {
        let dir = repo.join(ramboot::apk::build::default_arch());
        for p in &mut idx.packages {
            *p = ramboot::apk::build::index_record(&dir.join(format!("{}.apk", p.nv()))).unwrap();
        }
        assert!(idx.text().contains("t:1700000000\nc:\n"), "{}", idx.text());
    });
    f.install(&["empty-commit", "no-commit"]);
    assert!(record(&f, "empty-commit").contains("\nt:1700000000\nc:\n"));
    assert!(!record(&f, "no-commit").contains("\nc:"));
}
