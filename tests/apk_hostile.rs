//! Hostile inputs: each is refused with a clear error, or (symlinks) resolved inside the root as
//! chroot would; nothing lands outside the root.

mod apk_support;
use apk_support::*;
use ramboot::apk::build::{ChecksumRecord, Content, PackageBuilder};
use ramboot::apk::stream::ScriptKind;
use ramboot::apk::tar::Kind;
use ramboot::apk::{install, ApkError, ScriptPolicy};
use ramboot::sys::RecordingSys;

/// Installs `bad` next to a good package; returns the report and the error text for `bad`.
fn install_bad(f: &Fixture, bad: PackageBuilder) -> (ramboot::apk::InstallReport, String) {
    let name = bad.info.name.clone();
    f.publish(vec![
        bad,
        pkg("good", "1.0").file("usr/bin/good", b"ok", 0o755),
    ]);
    let mut req = f.request(&[&name, "good"]);
    req.diskless_boot = true;
    let r = install(&req, &RecordingSys::new("/")).unwrap();
    assert!(
        names(&r).contains(&"good".to_string()),
        "the good package still installs"
    );
    let err = r
        .failed
        .iter()
        .find(|(p, _)| p.starts_with(&name))
        .map(|(_, e)| e.to_string())
        .unwrap_or_default();
    (r, err)
}

fn assert_outside_untouched(f: &Fixture) {
    let outside: Vec<String> = list_tree(f.dir.path())
        .into_iter()
        .filter(|p| !p.starts_with("root") && !p.starts_with("repo") && !p.starts_with("keys"))
        .collect();
    assert!(outside.is_empty(), "written outside the root: {outside:?}");
}

#[test]
fn path_traversal_is_refused() {
    let f = Fixture::new();
    let (r, err) = install_bad(&f, pkg("evil", "1.0").file("usr/../../escape", b"x", 0o644));
    assert!(err.contains("path traversal"), "{err} {:?}", r.failed);
    assert_outside_untouched(&f);
}

#[test]
fn absolute_names_are_refused() {
    let f = Fixture::new();
    let (_, err) = install_bad(
        &f,
        pkg("evil", "1.0").entry(PackageBuilder::file_entry(
            "/tmp/abs-escape",
            Content::Bytes(b"x".to_vec()),
            0o644,
        )),
    );
    assert!(err.contains("absolute name"), "{err}");
    assert_outside_untouched(&f);
}

/// A directory outside the root, with a file in it, and its mirror inside the root: absolute
/// links name it, chroot semantics must land in the mirror.
fn sentinel(f: &Fixture) -> std::path::PathBuf {
    let outside = f.dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("keep"), b"1").unwrap();
    std::fs::create_dir_all(f.root().join(outside.strip_prefix("/").unwrap())).unwrap();
    outside
}

fn assert_sentinel_untouched(outside: &std::path::Path) {
    let names: Vec<_> = std::fs::read_dir(outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["keep"], "written outside the root");
}

/// Links that would leave the root (`/..`, `../../..`, absolute ones, chains of them) are followed
/// inside it, as chroot would: the files land in the root, never outside, with no refusal.
#[test]
fn symlinks_that_climb_resolve_inside_the_root() {
    for resolve in RESOLVERS {
        let f = Fixture::new();
        let outside = sentinel(&f);
        let abs = outside.to_str().unwrap();
        // Unique name: a bug would put it in the host's /etc.
        let etc_probe = format!("ramboot-hostile-{}", std::process::id());
        f.publish(vec![
            pkg("dotdot", "1.0")
                .symlink("a1", "/..")
                .file("a1/f1", b"1", 0o644),
            pkg("climb", "1.0")
                .symlink("a2", "../../..")
                .file("a2/f2", b"2", 0o644),
            pkg("absolute", "1.0")
                .symlink("a3", abs)
                .file("a3/f3", b"3", 0o644),
            pkg("etc", "1.0")
                .dir("etc", 0o755)
                .symlink("a4", "/etc")
                .file(&format!("a4/{etc_probe}"), b"4", 0o644),
            pkg("chain", "1.0")
                .dir("x", 0o755)
                .symlink("l3", "/")
                .symlink("l2", "../../../l3")
                .symlink("l1", "/l2/x")
                .file("l1/f5", b"5", 0o644),
        ]);
        let r = f.install_resolved(&["dotdot", "climb", "absolute", "etc", "chain"], resolve);
        let host_probe = std::path::Path::new("/etc").join(&etc_probe);
        if host_probe.exists() {
            std::fs::remove_file(&host_probe).unwrap();
            panic!("wrote {} on the host", host_probe.display());
        }
        assert_sentinel_untouched(&outside);
        assert!(r.failed.is_empty(), "{:?}", r.failed);
        assert!(r.broken.is_empty(), "{:?}", r.broken);
        assert_eq!(f.read("f1"), "1");
        assert_eq!(f.read("f2"), "2");
        assert_eq!(f.read(&format!("{}/f3", abs.trim_start_matches('/'))), "3");
        assert_eq!(f.read(&format!("etc/{etc_probe}")), "4");
        assert_eq!(f.read("x/f5"), "5");
        let installed = f.read("lib/apk/db/installed");
        for written in ["F:a1\n", "F:a2\n", "F:a3\n", "F:a4\n", "F:l1\n"] {
            assert!(installed.contains(written), "{written} {installed}");
        }
    }
}

/// A link installed by an earlier package is followed inside the root by a later one; a link
/// loop is an error that names the path, and nothing lands outside.
#[test]
fn links_from_an_earlier_package_stay_inside_the_root() {
    for resolve in RESOLVERS {
        let f = Fixture::new();
        let outside = sentinel(&f);
        f.publish(vec![
            pkg("linker", "1.0")
                .symlink("srv", outside.to_str().unwrap())
                .symlink("loop", "loop"),
            pkg("writer", "1.0")
                .depends("linker")
                .file("srv/passwd", b"root::0:0", 0o644),
            pkg("looper", "1.0")
                .depends("linker")
                .file("loop/f", b"x", 0o644),
        ]);
        let mut req = f.request(&["writer", "looper"]);
        req.diskless_boot = true;
        req.resolve = resolve;
        let r = install(&req, &RecordingSys::new("/")).unwrap();
        assert_sentinel_untouched(&outside);
        let mirror = f.root().join(outside.strip_prefix("/").unwrap());
        assert_eq!(std::fs::read(mirror.join("passwd")).unwrap(), b"root::0:0");
        let text = format!("{:?}", r.broken);
        assert!(!text.contains("writer"), "{text}");
        assert!(text.contains("looper") && text.contains("loop"), "{text}");
    }
}

/// apk's own files (the db, the scripts it runs) never follow a link a package put in their
/// place out of the root: a package ships `lib/apk/exec` and `lib/apk/db/triggers.new` as
/// absolute links to a host directory.
#[test]
fn bookkeeping_writes_never_follow_links_out_of_the_root() {
    for resolve in RESOLVERS {
        let f = Fixture::new();
        let outside = sentinel(&f);
        let abs = outside.to_str().unwrap();
        f.publish(vec![pkg("evil", "1.0")
            .symlink("lib/apk/exec", abs)
            .symlink("lib/apk/db/triggers.new", &format!("{abs}/triggers"))
            .script(ScriptKind::PostInstall, "#!/bin/sh\nexit 0\n")]);
        let mut req = f.request(&["evil"]);
        req.scripts = ScriptPolicy::Always;
        req.resolve = resolve;
        let sys = RecordingSys::new("/");
        let r = install(&req, &sys).unwrap();
        assert_sentinel_untouched(&outside);
        assert!(r.failed.is_empty(), "{:?}", r.failed);
        assert!(
            sys.trace()
                .iter()
                .any(|t| t.contains("evil-1.0.post-install")),
            "{:?}",
            sys.trace()
        );
        assert!(std::fs::metadata(f.root().join("lib/apk/db/triggers"))
            .unwrap()
            .is_file());
    }
}

#[test]
fn device_nodes_are_refused() {
    let f = Fixture::new();
    let mut dev = PackageBuilder::raw_entry("dev/sda", Kind::BlockDevice, 0o600);
    dev.dev = (8, 0);
    let (_, err) = install_bad(&f, pkg("evil", "1.0").dir("dev", 0o755).entry(dev));
    assert!(err.contains("device node"), "{err}");
    assert!(!f.root().join("dev/sda").exists());
}

#[test]
fn truncated_gzip_is_refused() {
    let f = Fixture::new();
    let built = f.publish(vec![
        pkg("trunc", "1.0").file("usr/share/big", &vec![b'a'; 200_000], 0o644),
        pkg("good", "1.0"),
    ]);
    let path = f
        .repo()
        .join(ramboot::apk::build::default_arch())
        .join(built[0].file_name());
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 20]).unwrap();
    let mut req = f.request(&["trunc", "good"]);
    req.diskless_boot = true;
    let r = install(&req, &RecordingSys::new("/")).unwrap();
    let err = format!("{:?}", r.failed);
    assert!(err.contains("trunc"), "{err}");
    assert!(!f.root().join("usr/share/big").exists());
    assert!(!f.root().join(".ramboot-apk-staging").exists());
}

#[test]
fn gzip_bomb_is_stopped() {
    let f = Fixture::new();
    let mut bomb = pkg("bomb", "1.0")
        .dir("usr", 0o755)
        .entry(PackageBuilder::file_entry(
            "usr/zeros",
            Content::Zeros(64 << 20),
            0o644,
        ));
    bomb.installed_size = Some(4096);
    bomb.level = 1;
    let (_, err) = install_bad(&f, bomb);
    assert!(err.contains("decompression bomb"), "{err}");
    assert!(!f.root().join("usr/zeros").exists());
}

#[test]
fn bad_index_signature_drops_the_repository() {
    let f = Fixture::new();
    f.publish(vec![pkg("a", "1.0")]);
    // Re-sign the index with a different key of the same name.
    let arch = ramboot::apk::build::default_arch();
    let mut idx = ramboot::apk::build::IndexBuilder::default();
    idx.add(&pkg("a", "1.0").build(None).unwrap().info);
    let bytes = idx
        .build(Some(impostor_key()), ramboot::apk::sign::SigAlgo::Sha1)
        .unwrap();
    std::fs::write(f.repo().join(arch).join("APKINDEX.tar.gz"), bytes).unwrap();
    let mut req = f.request(&["a"]);
    req.diskless_boot = true;
    let r = install(&req, &RecordingSys::new("/")).unwrap();
    assert!(
        r.repo_warnings.iter().any(|w| w.contains("BAD signature")),
        "{:?}",
        r.repo_warnings
    );
    assert!(r.installed.is_empty());
    assert_eq!(r.skipped_world.len(), 1);
    // Without diskless-boot forcing, the solver error names the package.
    let err = install(&f.request(&["a"]), &RecordingSys::new("/")).unwrap_err();
    assert!(err.to_string().contains("a (no such package)"), "{err}");
}

#[test]
fn unsigned_index_is_untrusted_unless_allowed() {
    let f = Fixture::new();
    let built = f.publish(vec![pkg("a", "1.0").file("a", b"a", 0o644)]);
    let arch = ramboot::apk::build::default_arch();
    let mut idx = ramboot::apk::build::IndexBuilder::default();
    idx.add(&built[0].info);
    std::fs::write(
        f.repo().join(arch).join("APKINDEX.tar.gz"),
        idx.build(None, ramboot::apk::sign::SigAlgo::Sha1).unwrap(),
    )
    .unwrap();
    let err = install(&f.request(&["a"]), &RecordingSys::new("/")).unwrap_err();
    assert!(matches!(err, ApkError::Unsatisfiable { .. }));
    let mut req = f.request(&["a"]);
    req.allow_untrusted = true;
    let r = install(&req, &RecordingSys::new("/")).unwrap();
    assert_eq!(names(&r), ["a"]);
    assert!(r.warnings.iter().any(|w| w.contains("--allow-untrusted")));
}

#[test]
fn index_checksum_mismatch_is_refused() {
    let f = Fixture::new();
    let other = pkg("x", "9").build(Some(key())).unwrap().info.identity;
    f.publish_with(
        vec![
            pkg("cmis", "1.0").file("usr/bin/c", b"c", 0o755),
            pkg("good", "1.0"),
        ],
        |idx| {
            idx.packages
                .iter_mut()
                .find(|p| p.name == "cmis")
                .unwrap()
                .identity = other;
        },
    );
    let mut req = f.request(&["cmis", "good"]);
    req.diskless_boot = true;
    let r = install(&req, &RecordingSys::new("/")).unwrap();
    let err = format!("{}", r.failed[0].1);
    assert!(err.contains("does not match the index C:"), "{err}");
    assert!(!f.root().join("usr/bin/c").exists());
    assert_eq!(names(&r), ["good"]);
    assert_eq!(r.exit_code(), 1);
}

#[test]
fn datahash_mismatch_is_refused() {
    let f = Fixture::new();
    let mut b = pkg("dh", "1.0").file("usr/bin/d", b"d", 0o755);
    b.datahash_override = Some([7u8; 32]);
    let (_, err) = install_bad(&f, b);
    assert!(err.contains("datahash"), "{err}");
    assert!(!f.root().join("usr/bin/d").exists());
}

#[test]
fn missing_dependency_and_cycle() {
    let f = Fixture::new();
    f.publish(vec![
        pkg("app", "1.0").depends("nothere"),
        pkg("cyca", "1.0").depends("cycb"),
        pkg("cycb", "1.0").depends("cycc"),
        pkg("cycc", "1.0").depends("cyca"),
    ]);
    let err = install(&f.request(&["app"]), &RecordingSys::new("/"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("nothere (no such package)") && err.contains("app-1.0[nothere]"),
        "{err}"
    );
    let mut req = f.request(&["app", "cyca"]);
    req.diskless_boot = true;
    let r = install(&req, &RecordingSys::new("/")).unwrap();
    assert_eq!(names(&r), ["cycc", "cycb", "cyca"]);
    assert_eq!(r.skipped_world[0].0, "app");
    assert_eq!(f.read("etc/apk/world"), "app\ncyca\n");
}

#[test]
fn malformed_index_line_is_refused() {
    let f = Fixture::new();
    f.publish_with(vec![pkg("a", "1.0")], |idx| {
        idx.raw_append = "P:b\nthis is not a field\n\n".into()
    });
    let mut req = f.request(&["a"]);
    req.diskless_boot = true;
    let r = install(&req, &RecordingSys::new("/")).unwrap();
    assert!(
        r.repo_warnings
            .iter()
            .any(|w| w.contains("expected `X:value`")),
        "{:?}",
        r.repo_warnings
    );
}

#[test]
fn huge_pkginfo_line_is_refused() {
    let f = Fixture::new();
    let mut b = pkg("huge", "1.0").file("x", b"x", 0o644);
    b.pkginfo_extra = format!("pkgdesc = {}\n", "x".repeat(10 << 20));
    let (_, err) = install_bad(&f, b);
    assert!(err.contains(".PKGINFO") && err.contains("allowed"), "{err}");
}

#[test]
fn files_without_checksums_mark_the_package() {
    let f = Fixture::new();
    let mut e = PackageBuilder::file_entry("nosum", Content::Bytes(b"x".to_vec()), 0o644);
    e.checksum = ChecksumRecord::Omitted;
    f.publish(vec![pkg("nosum", "1.0").entry(e)]);
    let r = f.install(&["nosum"]);
    assert_eq!(r.broken.len(), 1);
    assert!(f.read("lib/apk/db/installed").contains("\nf:f\n"));
}

/// A panic in a worker thread (a bug, injected here) ends the install with an error; before,
/// the committer waited forever for the package the dead worker had taken.
#[test]
fn a_panicking_worker_ends_the_install_with_an_error() {
    use ramboot::apk::install::fault::{panic_at, Site};
    let f = Fixture::new();
    f.publish(vec![
        pkg("fault-worker", "1.0").file("usr/bin/w", b"w", 0o755),
        pkg("calm", "1.0").file("usr/bin/c", b"c", 0o755),
    ]);
    panic_at(Site::Worker, "fault-worker");
    let mut req = f.request(&["calm", "fault-worker"]);
    req.diskless_boot = true;
    let err = install(&req, &RecordingSys::new("/")).unwrap_err();
    assert!(matches!(err, ApkError::Internal(_)), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("internal error") && text.contains("fault-worker"),
        "{text}"
    );
    assert_eq!(
        f.read("lib/apk/db/installed"),
        "",
        "no db claiming a half-done transaction"
    );
    assert!(!f.root().join(ramboot::apk::extract::STAGING_DIR).exists());
}

/// A panic in the committing thread ends the install with an error; before, the scope waited
/// for workers blocked on the look-ahead window, which only the committer opens.
#[test]
fn a_panicking_committer_ends_the_install_with_an_error() {
    use ramboot::apk::install::fault::{panic_at, Site};
    let f = Fixture::new();
    // More packages than the look-ahead window of two workers, so workers are waiting.
    let mut pkgs = vec![pkg("fault-committer", "1.0").file("usr/bin/f", b"f", 0o755)];
    let mut world = vec!["fault-committer".to_string()];
    for i in 0..12 {
        let name = format!("filler{i:02}");
        pkgs.push(pkg(&name, "1.0").file(&format!("usr/share/{name}"), b"x", 0o644));
        world.push(name);
    }
    // Installed first: a dependency of every filler.
    for p in pkgs.iter_mut().skip(1) {
        p.info.depends = ramboot::apk::dep::Dep::parse_list("fault-committer").unwrap();
    }
    f.publish(pkgs);
    panic_at(Site::Committer, "fault-committer");
    let world: Vec<&str> = world.iter().map(String::as_str).collect();
    let mut req = f.request(&world);
    req.diskless_boot = true;
    let err = install(&req, &RecordingSys::new("/")).unwrap_err();
    assert!(matches!(err, ApkError::Internal(_)), "{err}");
    assert!(err.to_string().contains("fault-committer"), "{err}");
}

/// An index record without `C:` names a package that cannot be verified: that package is
/// refused with the reason (it was an `expect`, a panic), the others install.
#[test]
fn an_index_record_without_checksum_is_refused_with_the_reason() {
    let f = Fixture::new();
    f.publish_with(
        vec![
            pkg("nocsum", "1.0").file("usr/bin/n", b"n", 0o755),
            pkg("good", "1.0").file("usr/bin/good", b"ok", 0o755),
        ],
        |idx| {
            idx.packages
                .iter_mut()
                .find(|p| p.name == "nocsum")
                .unwrap()
                .identity = None;
        },
    );
    let mut req = f.request(&["nocsum", "good"]);
    req.diskless_boot = true;
    let r = install(&req, &RecordingSys::new("/")).unwrap();
    assert_eq!(names(&r), ["good"]);
    let err = r.failed[0].1.to_string();
    assert!(err.contains("nocsum-1.0") && err.contains("C:"), "{err}");
    assert!(!f.root().join("usr/bin/n").exists());
}

/// A signature entry that comes after an empty first gzip member, in the same member as the
/// index, names an algorithm whose digest was never started: the index is refused with the
/// reason (it was an `expect`, a panic while loading repositories).
#[test]
fn a_signature_next_to_the_index_is_refused() {
    use std::io::Write;
    let f = Fixture::new();
    f.publish(vec![pkg("late", "1.0")]);
    let gz = |data: &[u8]| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    };
    let mut t = tar::Builder::new(Vec::new());
    let text = "C:Q1sKBraP0l14fbx+ZBoqeB0pFzpH4=\nP:late\nV:1.0\nS:1\nI:1\nT:d\nU:\nL:\n\n";
    for (name, data) in [
        (format!(".SIGN.RSA256.{KEY_NAME}"), &[7u8; 128][..]),
        ("APKINDEX".to_string(), text.as_bytes()),
    ] {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        t.append_data(&mut h, name, data).unwrap();
    }
    let mut bytes = gz(b"");
    bytes.extend(gz(&t.into_inner().unwrap()));
    let arch = ramboot::apk::build::default_arch();
    std::fs::write(f.repo().join(arch).join("APKINDEX.tar.gz"), bytes).unwrap();
    let mut req = f.request(&["late"]);
    req.diskless_boot = true;
    let r = install(&req, &RecordingSys::new("/")).unwrap();
    assert!(r.installed.is_empty());
    assert!(
        r.repo_warnings.iter().any(|w| w.contains("index refused")),
        "{:?}",
        r.repo_warnings
    );
}

/// Installed sizes from the index are untrusted numbers: two that add up past u64 once made the
/// progress total overflow (a panic in debug builds); the install goes on.
#[test]
fn huge_declared_sizes_do_not_overflow() {
    let f = Fixture::new();
    f.publish_with(
        vec![
            pkg("big1", "1.0").file("usr/share/b1", b"1", 0o644),
            pkg("big2", "1.0").file("usr/share/b2", b"2", 0o644),
        ],
        |idx| {
            for p in &mut idx.packages {
                p.installed_size = u64::MAX - 1;
            }
        },
    );
    let mut req = f.request(&["big1", "big2"]);
    req.diskless_boot = true;
    let r = install(&req, &RecordingSys::new("/")).unwrap();
    assert_eq!(names(&r), ["big1", "big2"]);
}

#[test]
fn a_protected_file_listed_twice_does_not_crash_the_install() {
    // Bug fixed: the second copy looked up the checksum of its own, not yet recorded, package
    // by index and panicked.
    let f = Fixture::new();
    f.publish(vec![pkg("twice", "1")
        .dir("etc", 0o755)
        .file("etc/x", b"one\n", 0o644)
        .file("etc/x", b"two\n", 0o644)]);
    let r = f.install(&["twice"]);
    assert_eq!(r.installed.len(), 1, "{r:?}");
    assert!(f.read("lib/apk/db/installed").contains("\nR:x\n"));
}

/// apk-tools 3 (OpenWrt's feeds, `apk mkpkg`/`apk mkndx`) writes packages and indexes in its ADB
/// format, which starts with `ADB` and a compression letter: seen in stangri/apk.openwrt.melmac.ca
/// (`packages.adb`, `*.apk`). Refused naming the format, not as "corrupt gzip data".
#[test]
fn apk_v3_files_are_refused_naming_the_format() {
    // An ADB file's shape: magic, compression `d` (deflate), then compressed bytes.
    let mut adb = b"ADBd".to_vec();
    adb.extend((0..600u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));

    let f = Fixture::new();
    let built = f.publish(vec![
        pkg("v3pkg", "1.0").file("usr/share/v3", b"v3\n", 0o644),
        pkg("good", "1.0"),
    ]);
    let dir = f.repo().join(ramboot::apk::build::default_arch());
    std::fs::write(dir.join(built[0].file_name()), &adb).unwrap();
    let mut req = f.request(&["v3pkg", "good"]);
    req.diskless_boot = true;
    let r = install(&req, &RecordingSys::new("/")).unwrap();
    let err = format!("{:?}", r.failed);
    assert!(err.contains("apk v3 file (ADB format"), "{err}");
    assert!(!err.contains("corrupt gzip"), "{err}");

    let f = Fixture::new();
    f.publish(vec![pkg("good", "1.0")]);
    let dir = f.repo().join(ramboot::apk::build::default_arch());
    std::fs::write(dir.join("APKINDEX.tar.gz"), &adb).unwrap();
    let r = install(&f.request(&[]), &RecordingSys::new("/")).unwrap();
    assert!(
        r.repo_warnings
            .iter()
            .any(|w| w.contains("index refused") && w.contains("apk v3 file (ADB format")),
        "{:?}",
        r.repo_warnings
    );
}
