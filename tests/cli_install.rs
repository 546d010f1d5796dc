//! `ramboot install` as a user runs it on a host: the binary, its output and its exit status.
// Tests drive real tools and processes (QEMU, mkfs, the built binary): the system boundary
// lint is for the library.
#![allow(clippy::disallowed_methods)]

mod apk_support;
use apk_support::*;
use std::process::{Command, Output};

fn ramboot(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ramboot"))
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Issue 8, point 5: when the only repository's index is refused, the solver can only say
/// "no such package"; the refusal and its reason are printed first. Before, the output was
/// only `ERROR: unable to select packages: a (no such package)`.
#[test]
fn a_refused_index_is_explained_before_the_solver_error() {
    let f = Fixture::new();
    let built = f.publish(vec![pkg("a", "1.0").file("usr/bin/a", b"a", 0o755)]);
    // The same package, in an unsigned index.
    let mut idx = ramboot::apk::build::IndexBuilder::default();
    idx.add(&built[0].info);
    let arch = ramboot::apk::build::default_arch();
    std::fs::write(
        f.repo().join(arch).join("APKINDEX.tar.gz"),
        idx.build(None, ramboot::apk::sign::SigAlgo::Sha1).unwrap(),
    )
    .unwrap();
    let (root, repo, keys) = (f.root(), f.repo(), f.keys());
    let out = ramboot(&[
        "install".as_ref(),
        "--root".as_ref(),
        root.as_os_str(),
        "--initdb".as_ref(),
        "-X".as_ref(),
        repo.as_os_str(),
        "--keys-dir".as_ref(),
        keys.as_os_str(),
        "a".as_ref(),
    ]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let why = stderr
        .find("UNTRUSTED signature (not signed)")
        .unwrap_or_else(|| panic!("the refusal is not shown: {t}"));
    let solver = stderr
        .find("ERROR: unable to select packages")
        .unwrap_or_else(|| panic!("no solver error: {t}"));
    assert!(why < solver, "the reason comes first: {t}");
    assert!(
        stderr.contains(&format!("WARNING: {}", repo.display())),
        "{t}"
    );
}

/// An apkovl (gzip'd tar) of `(raw name, content)` files; names are written as given, so
/// hostile ones can be too.
fn apkovl(path: &std::path::Path, files: &[(&str, &[u8])]) {
    use std::io::Write;
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        let raw = &mut h.as_old_mut().name;
        raw.fill(0);
        raw[..name.len()].copy_from_slice(name.as_bytes());
        h.set_size(data.len() as u64);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&b.into_inner().unwrap()).unwrap();
    std::fs::write(path, gz.finish().unwrap()).unwrap();
}

/// `ramboot install` with `--apkovl FILE` and the usual repository options.
fn install_with_apkovl(f: &Fixture, apkovl: &std::path::Path, world: &[&str]) -> Output {
    let (root, repo, keys) = (f.root(), f.repo(), f.keys());
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "install".as_ref(),
        "--root".as_ref(),
        root.as_os_str(),
        "--initdb".as_ref(),
        "-X".as_ref(),
        repo.as_os_str(),
        "--keys-dir".as_ref(),
        keys.as_os_str(),
        "--no-scripts".as_ref(),
        "--apkovl".as_ref(),
        apkovl.as_os_str(),
    ];
    args.extend(world.iter().map(std::ffi::OsStr::new));
    ramboot(&args)
}

/// Issue 8, point 16: `ramboot install --apkovl` does the boot's apkovl step on the target:
/// the apkovl's files land (checked extraction), its world is installed, and its files win over
/// the packages' through the overlay list.
#[test]
fn install_applies_an_apkovl_as_the_boot_does() {
    let f = Fixture::new();
    f.publish(vec![
        pkg("wanted", "1.0")
            .file("usr/share/wanted/data", b"from the package\n", 0o644)
            .file("usr/share/wanted/other", b"package only\n", 0o644),
        pkg("extra", "1.0").file("usr/bin/extra", b"x", 0o755),
    ]);
    let ovl = f.dir.path().join("host.apkovl.tar.gz");
    apkovl(
        &ovl,
        &[
            ("etc/hostname", b"imagehost\n"),
            ("etc/apk/world", b"wanted\n"),
            ("usr/share/wanted/data", b"the user's copy\n"),
        ],
    );
    let out = install_with_apkovl(&f, &ovl, &["extra"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert_eq!(f.read("etc/hostname"), "imagehost\n", "{t}");
    assert_eq!(f.read("usr/share/wanted/data"), "the user's copy\n", "{t}");
    assert_eq!(f.read("usr/share/wanted/other"), "package only\n", "{t}");
    assert_eq!(f.read("etc/apk/world"), "extra\nwanted\n", "{t}");
    let db = f.read("lib/apk/db/installed");
    assert!(
        db.contains("P:wanted\n") && db.contains("P:extra\n"),
        "{db}"
    );
}

/// A hostile apkovl is refused whole, with the reason, and nothing is installed or written
/// outside the root.
#[test]
fn install_refuses_a_hostile_apkovl_with_the_reason() {
    let f = Fixture::new();
    f.publish(vec![pkg("extra", "1.0").file("usr/bin/extra", b"x", 0o755)]);
    let ovl = f.dir.path().join("evil.apkovl.tar.gz");
    apkovl(
        &ovl,
        &[("etc/hostname", b"evil\n"), ("etc/../../escaped", b"x")],
    );
    let out = install_with_apkovl(&f, &ovl, &["extra"]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(99), "{t}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ERROR: apkovl entry \"etc/../../escaped\" refused: `..` in the path"),
        "{t}"
    );
    assert!(stderr.contains("nothing installed"), "{t}");
    assert!(!f.root().join("etc/hostname").exists(), "{t}");
    assert!(!f.root().join("usr/bin/extra").exists(), "{t}");
    assert!(!f.dir.path().join("escaped").exists());
    assert!(!f.dir.path().parent().unwrap().join("escaped").exists());
}

/// `ramboot install` with `extra` flags and packages, on the fixture's root and repository.
fn install_cli(f: &Fixture, extra: &[&str]) -> Output {
    let (root, repo, keys) = (f.root(), f.repo(), f.keys());
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "install".as_ref(),
        "--root".as_ref(),
        root.as_os_str(),
        "--initdb".as_ref(),
        "-q".as_ref(),
        "-X".as_ref(),
        repo.as_os_str(),
        "--keys-dir".as_ref(),
        keys.as_os_str(),
    ];
    args.extend(extra.iter().map(|a| std::ffi::OsStr::new(*a)));
    ramboot(&args)
}

/// Issue 15, point 5: like `apk add`, a plain install keeps the installed version; `-u` (or
/// `--upgrade`) upgrades the named package and its dependencies.
#[test]
fn install_keeps_installed_versions_and_upgrades_with_u() {
    let f = Fixture::new();
    f.publish(vec![
        pkg("lib", "1").file("usr/lib/lib", b"1", 0o644),
        pkg("app", "1").depends("lib"),
    ]);
    let out = install_cli(&f, &["app"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    std::fs::remove_dir_all(f.repo()).unwrap();
    f.publish(vec![
        pkg("lib", "2").file("usr/lib/lib", b"2", 0o644),
        pkg("app", "1").depends("lib"),
        pkg("app", "2").depends("lib>=2"),
    ]);
    let out = install_cli(&f, &["app"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(f.read("usr/lib/lib"), "1");
    let out = install_cli(&f, &["-u", "app"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(f.read("usr/lib/lib"), "2");
    let db = f.read("lib/apk/db/installed");
    assert!(db.contains("P:app\nV:2\n"), "{db}");
}

/// Issue 13 (4): `--apkovl-key` opens an encrypted apkovl (lbu's openssl format); without it, or
/// with a wrong one, nothing is installed and the reason is named.
#[test]
fn install_opens_an_encrypted_apkovl_with_its_key_file() {
    let f = Fixture::new();
    f.publish(vec![pkg("extra", "1.0").file("usr/bin/extra", b"x", 0o755)]);
    let plain = f.dir.path().join("plain.tar.gz");
    apkovl(&plain, &[("etc/hostname", b"sealed\n")]);
    let ovl = f.dir.path().join("host.apkovl.tar.gz.aes-256-cbc");
    let mut enc = Vec::new();
    let cipher = ramboot::overlay::crypt::Cipher::by_name("aes-256-cbc").unwrap();
    ramboot::overlay::crypt::write_openssl(
        &mut std::fs::File::open(&plain).unwrap(),
        &mut enc,
        cipher,
        b"pw",
        None,
    )
    .unwrap();
    std::fs::write(&ovl, enc).unwrap();
    let out = install_with_apkovl(&f, &ovl, &["extra"]);
    assert_eq!(out.status.code(), Some(99), "{}", text(&out));
    assert!(text(&out).contains("--apkovl-key"), "{}", text(&out));
    let key = f.dir.path().join("key");
    std::fs::write(&key, b"pw\n").unwrap();
    let with_key = |k: &std::path::Path| {
        let (root, repo, keys) = (f.root(), f.repo(), f.keys());
        let args: Vec<&std::ffi::OsStr> = vec![
            "install".as_ref(),
            "--root".as_ref(),
            root.as_os_str(),
            "--initdb".as_ref(),
            "-X".as_ref(),
            repo.as_os_str(),
            "--keys-dir".as_ref(),
            keys.as_os_str(),
            "--no-scripts".as_ref(),
            "--apkovl".as_ref(),
            ovl.as_os_str(),
            "--apkovl-key".as_ref(),
            k.as_os_str(),
            "extra".as_ref(),
        ];
        ramboot(&args)
    };
    let wrong = f.dir.path().join("wrong");
    std::fs::write(&wrong, b"nope\n").unwrap();
    let out = with_key(&wrong);
    assert_eq!(out.status.code(), Some(99), "{}", text(&out));
    assert!(text(&out).contains("wrong passphrase"), "{}", text(&out));
    let out = with_key(&key);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(f.read("etc/hostname"), "sealed\n");
}
