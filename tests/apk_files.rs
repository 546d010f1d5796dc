//! Installed files and their attributes, overlay and protection, the package cache, and the CLI
//! builder.
// Tests drive real tools and processes (QEMU, mkfs, the built binary): the system boundary
// lint is for the library.
#![allow(clippy::disallowed_methods)]

mod apk_support;
mod support;
use apk_support::*;
use ramboot::apk::build::PackageBuilder;
use ramboot::apk::install;
use ramboot::sys::RecordingSys;
use std::ffi::OsString;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

#[test]
fn hard_links_setuid_xattrs_owners_and_mtimes() {
    let f = Fixture::new();
    std::fs::create_dir_all(f.root().join("etc")).unwrap();
    std::fs::write(
        f.root().join("etc/passwd"),
        "root:x:0:0::/root:/bin/sh\nsvc:x:42:42::/:/sbin/nologin\n",
    )
    .unwrap();
    std::fs::write(f.root().join("etc/group"), "root:x:0:\nsvc:x:43:\n").unwrap();
    let owned = PackageBuilder::file_entry(
        "var/lib/svc/state",
        ramboot::apk::build::Content::Bytes(b"s".to_vec()),
        0o640,
    )
    .owner("svc", 1000, "svc", 1000);
    let xat = PackageBuilder::file_entry(
        "usr/bin/x",
        ramboot::apk::build::Content::Bytes(b"x".to_vec()),
        0o755,
    )
    .xattr("user.test", b"v");
    f.publish(vec![pkg("attrs", "1")
        .file("usr/bin/suid", b"s", 0o4755)
        .hardlink("usr/bin/suid-link", "usr/bin/suid")
        .dir("var", 0o755)
        .dir("var/lib", 0o755)
        .dir("var/lib/svc", 0o700)
        .entry(owned)
        .entry(xat)]);
    let mut req = f.request(&["attrs"]);
    req.initdb = true;
    let r = install(&req, &RecordingSys::new("/")).unwrap();
    assert!(r.failed.is_empty(), "{:?}", r.failed);
    let a = std::fs::metadata(f.root().join("usr/bin/suid")).unwrap();
    let b = std::fs::metadata(f.root().join("usr/bin/suid-link")).unwrap();
    assert_eq!(a.ino(), b.ino());
    assert_eq!(a.mode() & 0o7777, 0o4755);
    assert_eq!(a.mtime(), 1_700_000_000);
    assert_eq!(
        std::fs::metadata(f.root().join("var/lib/svc"))
            .unwrap()
            .mode()
            & 0o7777,
        0o700
    );
    let db = f.read("lib/apk/db/installed");
    assert!(
        db.contains("F:var/lib/svc\nM:0:0:700\nR:state\na:42:43:640\n"),
        "{db}"
    );
    assert!(db.contains("R:suid\na:0:0:4755\n"), "{db}");
    assert!(db.contains("R:x\na:0:0:755:Q1"), "{db}");
}

/// Files staged with the owner they must have skip the chown; in a setgid root they are
/// created with the root's group, so a `root:root` file is still chowned to gid 0 (and keeps
/// its setuid bit).
#[test]
fn files_in_a_setgid_root_get_their_own_group() {
    let f = Fixture::new();
    std::fs::create_dir_all(f.root()).unwrap();
    std::os::unix::fs::chown(f.root(), Some(0), Some(4321)).unwrap();
    std::fs::set_permissions(f.root(), std::fs::Permissions::from_mode(0o2755)).unwrap();
    f.publish(vec![pkg("sg", "1")
        .dir("usr", 0o755)
        .file("usr/plain", b"p", 0o644)
        .file("usr/suid", b"s", 0o4755)]);
    let mut req = f.request(&["sg"]);
    req.initdb = true;
    let r = install(&req, &RecordingSys::new("/")).unwrap();
    assert!(r.failed.is_empty(), "{:?}", r.failed);
    for (rel, mode) in [("usr/plain", 0o644), ("usr/suid", 0o4755)] {
        let m = std::fs::metadata(f.root().join(rel)).unwrap();
        assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (0, 0, mode), "{rel}");
    }
}

#[test]
fn overlay_files_win_and_protected_paths_get_apk_new() {
    let f = Fixture::new();
    f.publish(vec![pkg("conf", "1")
        .file("etc/listed.conf", b"pkg", 0o644)
        .file("etc/unlisted.conf", b"pkg", 0o644)
        .file("etc/same.conf", b"same", 0o644)
        .file("usr/bin/listed", b"pkg", 0o755)
        .file("usr/bin/unlisted", b"pkg", 0o755)]);
    let setup = |f: &Fixture| {
        std::fs::create_dir_all(f.root().join("etc")).unwrap();
        std::fs::create_dir_all(f.root().join("usr/bin")).unwrap();
        for p in [
            "etc/listed.conf",
            "etc/unlisted.conf",
            "usr/bin/listed",
            "usr/bin/unlisted",
        ] {
            std::fs::write(f.root().join(p), "user").unwrap();
        }
        std::fs::write(f.root().join("etc/same.conf"), "same").unwrap();
    };
    setup(&f);
    let mut req = f.request(&["conf"]);
    req.overlay_list = Some(vec![
        "etc/".into(),
        "etc/listed.conf".into(),
        "usr/bin/listed".into(),
    ]);
    let r = install(&req, &RecordingSys::new("/")).unwrap();
    assert_eq!(r.errors(), 0);
    assert_eq!(f.read("etc/listed.conf"), "user");
    assert!(!f.root().join("etc/listed.conf.apk-new").exists());
    assert_eq!(f.read("etc/unlisted.conf"), "user");
    assert_eq!(f.read("etc/unlisted.conf.apk-new"), "pkg");
    assert!(!f.root().join("etc/same.conf.apk-new").exists());
    assert_eq!(f.read("usr/bin/listed"), "user");
    assert_eq!(f.read("usr/bin/unlisted"), "pkg");
    // The db records the package's checksum for the kept file.
    assert!(f
        .read("lib/apk/db/installed")
        .contains("R:listed.conf\nZ:Q1"));

    let f = Fixture::new();
    f.publish(vec![pkg("conf", "1").file(
        "etc/unlisted.conf",
        b"pkg",
        0o644,
    )]);
    std::fs::create_dir_all(f.root().join("etc")).unwrap();
    std::fs::write(f.root().join("etc/unlisted.conf"), "user").unwrap();
    let mut req = f.request(&["conf"]);
    req.clean_protected = true;
    install(&req, &RecordingSys::new("/")).unwrap();
    assert_eq!(f.read("etc/unlisted.conf"), "user");
    assert!(!f.root().join("etc/unlisted.conf.apk-new").exists());
}

#[test]
fn cache_names_and_cache_installs() {
    use ramboot::apk::repo::{cache_index_name, cache_package_name};
    assert_eq!(
        cache_index_name("http://dl-cdn.example.invalid/alpine/v3.20/main", "x86_64"),
        "APKINDEX.3492ca4a.tar.gz"
    );
    let mut info = ramboot::apk::pkg::PkgInfo {
        name: "foo".into(),
        version: "1.0-r0".into(),
        ..Default::default()
    };
    info.identity = ramboot::apk::checksum::Checksum::parse("Q1sKBraP0l14fbx+ZBoqeB0pFzpH4=");
    assert_eq!(
        cache_package_name(&info).unwrap(),
        "foo-1.0-r0.b0a06b68.apk"
    );

    // A remote repository listed in the root, served from the cache only.
    let f = Fixture::new();
    let built = f.publish(vec![pkg("cached", "1").file("usr/bin/cached", b"c", 0o755)]);
    let url = "http://dl-cdn.example.invalid/alpine/v3.20/main";
    let cache = f.dir.path().join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    let arch = ramboot::apk::build::default_arch();
    std::fs::copy(
        f.repo().join(arch).join("APKINDEX.tar.gz"),
        cache.join(cache_index_name(url, arch)),
    )
    .unwrap();
    std::fs::write(
        cache.join(cache_package_name(&built[0].info).unwrap()),
        &built[0].bytes,
    )
    .unwrap();
    std::fs::create_dir_all(f.root().join("etc/apk")).unwrap();
    std::fs::write(f.root().join("etc/apk/repositories"), format!("{url}\n")).unwrap();
    std::os::unix::fs::symlink(&cache, f.root().join("etc/apk/cache")).unwrap();
    let mut req = f.request(&["cached"]);
    req.repositories.clear();
    let r = install(&req, &RecordingSys::new("/")).unwrap();
    assert_eq!(names(&r), ["cached"], "{:?}", r.repo_warnings);
    assert_eq!(f.read("usr/bin/cached"), "c");
}

#[test]
fn cache_installed_is_read_and_written_like_apk() {
    // apk-tools 2.14: with an active cache, `<cache>/installed` lists the installed packages
    // that no repository has (installed from a file, or virtual with no content); they are
    // installable from the cache, and the list is rewritten after the db.
    use ramboot::apk::build::IndexBuilder;
    use ramboot::apk::repo::cache_package_name;
    let f = Fixture::new();
    f.publish(vec![pkg("inrepo", "1").file(
        "usr/share/inrepo",
        b"r",
        0o644,
    )]);
    let local = pkg("local", "1.0-r0")
        .depends("inrepo")
        .file("usr/share/local", b"l", 0o644)
        .build(Some(key()))
        .unwrap();
    let virt = pkg(".virt", "20240101.000000")
        .depends("local")
        .build(None)
        .unwrap();
    assert_eq!(virt.info.installed_size, 0);
    let cache = f.dir.path().join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::write(
        cache.join(cache_package_name(&local.info).unwrap()),
        &local.bytes,
    )
    .unwrap();
    let listed = IndexBuilder {
        packages: vec![local.info.clone(), virt.info.clone()],
        ..Default::default()
    }
    .text();
    std::fs::write(cache.join("installed"), &listed).unwrap();
    let mut req = f.request(&[".virt"]);
    req.cache_dir = Some(cache.clone());
    let r = install(&req, &RecordingSys::new("/")).unwrap();
    assert!(r.failed.is_empty(), "{:?}", r.failed);
    assert_eq!(names(&r), ["inrepo", "local", ".virt"]);
    assert_eq!(f.read("usr/share/local"), "l");
    // Rewritten: the same two records (sorted like the db), not the repository's package.
    let after = std::fs::read_to_string(cache.join("installed")).unwrap();
    assert_eq!(after, listed);
}

#[test]
fn repositories_d_lists_are_read() {
    // apk-tools 2.14 also reads etc/apk/repositories.d/*.list (other names are ignored).
    let f = Fixture::new();
    f.publish(vec![pkg("fromlist", "1").file("usr/share/l", b"l", 0o644)]);
    let d = f.root().join("etc/apk/repositories.d");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("main.list"), format!("{}\n", f.repo().display())).unwrap();
    std::fs::write(d.join("ignored.txt"), "/nonexistent/repo\n").unwrap();
    let mut req = f.request(&["fromlist"]);
    req.repositories.clear();
    let r = install(&req, &RecordingSys::new("/")).unwrap();
    assert_eq!(names(&r), ["fromlist"]);
    assert!(r.repo_warnings.is_empty(), "{:?}", r.repo_warnings);
}

#[test]
fn initdb_skeleton() {
    let f = Fixture::new();
    f.publish(vec![]);
    let sys = RecordingSys::new("/");
    let r = install(&f.request(&[]), &sys).unwrap();
    assert!(r.installed.is_empty());
    assert_eq!(f.read("etc/apk/world"), "\n");
    assert_eq!(f.read("lib/apk/db/installed"), "");
    assert_eq!(f.read("lib/apk/db/triggers"), "");
    assert_eq!(
        std::fs::read(f.root().join("lib/apk/db/scripts.tar"))
            .unwrap()
            .len(),
        1024
    );
    assert_eq!(
        std::fs::metadata(f.root().join("tmp")).unwrap().mode() & 0o7777,
        0o1777
    );
    // apk runs with umask 0: its device nodes are 0666 whatever the caller's umask.
    for dev in ["null", "zero", "random", "urandom"] {
        assert_eq!(
            std::fs::metadata(f.root().join("dev").join(dev))
                .unwrap()
                .mode()
                & 0o7777,
            0o666,
            "dev/{dev}"
        );
    }
    assert_eq!(
        std::fs::metadata(f.root().join("lib/apk/db/lock"))
            .unwrap()
            .mode()
            & 0o7777,
        0o600
    );
    assert!(
        sys.trace()
            .iter()
            .any(|t| t.contains("mknod -m 600") && t.contains("dev/console c 5 1")),
        "{:?}",
        sys.trace()
    );
    assert_eq!(
        f.read("etc/apk/arch").trim(),
        ramboot::apk::build::default_arch()
    );
}

#[test]
fn cli_genkey_mkpkg_index_install() {
    let f = Fixture::new();
    let d = f.dir.path();
    let args = |v: &[&str]| -> Vec<OsString> { v.iter().map(OsString::from).collect() };
    assert_eq!(
        ramboot::cli::apk::main_apk(&args(&[
            "genkey",
            "--out",
            d.join("k").to_str().unwrap(),
            "--name",
            "demo",
            "--bits",
            "1024"
        ])),
        0
    );
    let key = std::fs::read_dir(d.join("k"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "rsa"))
        .unwrap();
    let tree = d.join("tree");
    std::fs::create_dir_all(tree.join("bin")).unwrap();
    std::fs::write(tree.join("bin/busybox"), b"\x7fELF fake").unwrap();
    std::os::unix::fs::symlink("busybox", tree.join("bin/sh")).unwrap();
    std::fs::write(d.join("post"), "#!/bin/sh\n/bin/busybox --install -s\n").unwrap();
    let arch = ramboot::apk::build::default_arch();
    let repo = d.join("clirepo").join(arch);
    std::fs::create_dir_all(&repo).unwrap();
    let apk = repo.join("busybox-1.36.1-r0.apk");
    let post = format!("post-install={}", d.join("post").display());
    assert_eq!(
        ramboot::cli::apk::main_apk(&args(&[
            "mkpkg",
            "--root",
            tree.to_str().unwrap(),
            "--name",
            "busybox",
            "--version",
            "1.36.1-r0",
            "--provides",
            "/bin/sh cmd:sh",
            "--priority",
            "100",
            "--script",
            &post,
            "--key",
            key.to_str().unwrap(),
            "--out",
            apk.to_str().unwrap(),
        ])),
        0
    );
    let index = repo.join("APKINDEX.tar.gz");
    assert_eq!(
        ramboot::cli::apk::main_apk(&args(&[
            "index",
            "--key",
            key.to_str().unwrap(),
            "--out",
            index.to_str().unwrap(),
            apk.to_str().unwrap()
        ])),
        0
    );
    let root = d.join("cliroot");
    let rc = ramboot::cli::apk::main_install(&args(&[
        "--root",
        root.to_str().unwrap(),
        "--initdb",
        "-X",
        d.join("clirepo").to_str().unwrap(),
        "--keys-dir",
        d.join("k").to_str().unwrap(),
        "--no-scripts",
        "--quiet",
        "cmd:sh",
    ]));
    assert_eq!(rc, 0);
    assert_eq!(
        std::fs::read_link(root.join("bin/sh")).unwrap().to_str(),
        Some("busybox")
    );
    assert!(std::fs::read_to_string(root.join("lib/apk/db/installed"))
        .unwrap()
        .contains("p:/bin/sh cmd:sh"));
    assert_eq!(
        std::fs::read_to_string(root.join("etc/apk/world")).unwrap(),
        "cmd:sh\n"
    );
    // Unknown options are usage errors.
    assert_eq!(
        ramboot::cli::apk::main_install(&args(&["--root", "x", "--bogus"])),
        99
    );
}

#[test]
fn files_that_fail_to_land_stay_in_the_db_like_apk() {
    // apk-tools 2.14 (`apk_db_install_archive_entry`) keeps a file it could not write in the
    // db: without `Z:` when its temporary file could not be created, with `Z:` when only the
    // rename into place failed. The directory is recorded even if creating it failed.
    let f = Fixture::new();
    f.publish(vec![
        pkg("alink", "1").symlink("usr/lib64", "lib"),
        pkg("bdir", "1")
            .depends("alink")
            .dir("usr/lib64", 0o755)
            .file("usr/lib64/x", b"x", 0o644),
    ]);
    let r = f.install(&["bdir"]);
    assert_eq!(r.broken.len(), 1, "{:?}", r.broken);
    let db = f.read("lib/apk/db/installed");
    let b = &db[db.find("P:bdir").unwrap()..];
    assert!(b.contains("\nf:f\nF:usr\nF:usr/lib64\nR:x\n\n"), "{db}");

    let f = Fixture::new();
    f.publish(vec![
        pkg("alink", "1")
            .depends("bdir")
            .symlink("usr/lib64", "lib"),
        pkg("bdir", "1")
            .dir("usr/lib64", 0o755)
            .file("usr/lib64/x", b"x", 0o644),
    ]);
    let r = f.install(&["alink"]);
    assert_eq!(r.broken.len(), 1, "{:?}", r.broken);
    let db = f.read("lib/apk/db/installed");
    let a = &db[db.find("P:alink").unwrap()..db.find("P:bdir").unwrap()];
    assert!(a.contains("\nf:f\nF:usr\nR:lib64\na:0:0:777\nZ:Q1"), "{db}");
    assert!(f.root().join("usr/lib64/x").is_file());
    // Unlike apk, no `.apk.*` temporary is left behind.
    let left: Vec<_> = std::fs::read_dir(f.root().join("usr"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with(".apk."))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn a_read_only_cache_medium_is_remounted_for_the_write_and_back() {
    // Bug fixed: with an lbu-style card (`etc/apk/cache -> /media/<dev>/cache`, the card mounted
    // read-only) every boot warned "writing …/cache/installed: Read-only file system". Like
    // apk, the medium is remounted read-write for the write, then back with its own flags.
    let f = Fixture::new();
    f.publish(vec![pkg("a", "1").file("a", b"a", 0o644)]);
    let media = f.dir.path().join("media/sda1");
    std::fs::create_dir_all(media.join("cache")).unwrap();
    std::fs::create_dir_all(f.root().join("etc/apk")).unwrap();
    std::os::unix::fs::symlink(media.join("cache"), f.root().join("etc/apk/cache")).unwrap();
    let sys = RecordingSys::new("/");
    use ramboot::sys::{MountFlags, Sys};
    let ro = MountFlags::RDONLY | MountFlags::NOEXEC;
    sys.mount("/dev/sda1", &media, "vfat", ro, "").unwrap();
    let r = install(&f.request(&["a"]), &sys).unwrap();
    assert_eq!(r.errors(), 0);
    let m = media.display();
    let remounts: Vec<String> = sys
        .trace()
        .into_iter()
        .filter(|l| l.contains("remount"))
        .collect();
    assert_eq!(
        remounts,
        [
            format!("mount -o remount,noexec {m}"),
            format!("mount -o remount,ro,noexec {m}")
        ]
    );
    assert!(std::fs::read_to_string(media.join("cache/installed"))
        .unwrap()
        .is_empty());
    // Back to read-only, as the double's mount table shows.
    let now = sys.mount_containing(&media.join("cache")).unwrap();
    assert_eq!((now.target, now.flags), (media.clone(), ro));

    // The next boot of the card installs the same: the index on it is already right, so the
    // medium is not remounted at all.
    let again = Fixture::new();
    again.publish(vec![pkg("a", "1").file("a", b"a", 0o644)]);
    std::fs::create_dir_all(again.root().join("etc/apk")).unwrap();
    std::os::unix::fs::symlink(media.join("cache"), again.root().join("etc/apk/cache")).unwrap();
    let r = install(&again.request(&["a"]), &sys).unwrap();
    assert_eq!(r.errors(), 0);
    assert_eq!(
        sys.trace().iter().filter(|l| l.contains("remount")).count(),
        2,
        "an unchanged cache index remounted the medium"
    );

    // A medium that refuses to become writable (a locked card): no write, no remount back.
    let f2 = Fixture::new();
    f2.publish(vec![pkg("a", "1").file("a", b"a", 0o644)]);
    std::fs::create_dir_all(f2.root().join("etc/apk")).unwrap();
    std::os::unix::fs::symlink(media.join("cache"), f2.root().join("etc/apk/cache")).unwrap();
    std::fs::remove_file(media.join("cache/installed")).unwrap();
    sys.fail_on("remount,noexec", 13);
    let r = install(&f2.request(&["a"]), &sys).unwrap();
    assert_eq!(r.errors(), 0);
    assert!(!media.join("cache/installed").exists());
    assert_eq!(
        sys.trace().iter().filter(|l| l.contains("remount")).count(),
        3
    );
}
