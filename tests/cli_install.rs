//! `ramboot install` as a user runs it on a host: the binary, its output and its exit status.

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
