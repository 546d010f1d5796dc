//! Solver parity with apk-tools (issue 15), end to end: real signed packages in a signed
//! repository, installed by the installer into a root. Each test pins one behaviour of
//! `apk add` (apk-tools 2.14 `src/solver.c`): what gets installed, or the refusal and its
//! words.

mod apk_support;
use apk_support::*;

fn installed(r: &ramboot::apk::InstallReport) -> Vec<String> {
    r.installed
        .iter()
        .map(|(n, v)| format!("{n}-{v}"))
        .collect()
}

fn world_file(f: &Fixture) -> String {
    f.read("etc/apk/world")
}

/// The `name-version` records of the installed db, sorted.
fn db_packages(f: &Fixture) -> Vec<String> {
    let db = f.read("lib/apk/db/installed");
    let mut out: Vec<String> = db
        .split("\n\n")
        .filter_map(|rec| {
            let field = |k: &str| {
                rec.lines()
                    .find_map(|l| l.strip_prefix(k))
                    .map(str::to_string)
            };
            Some(format!("{}-{}", field("P:")?, field("V:")?))
        })
        .collect();
    out.sort();
    out
}

#[test]
fn newest_version_whose_dependencies_clash_gives_way_to_an_older_one() {
    let f = Fixture::new();
    f.publish(vec![
        pkg("tool", "4").depends("glue"),
        pkg("tool", "5").depends("glue core>=3"),
        pkg("glue", "1").depends("core<3"),
        pkg("core", "2.1"),
        pkg("core", "3.0"),
    ]);
    let r = f.install(&["tool"]);
    assert_eq!(installed(&r), ["core-2.1", "glue-1", "tool-4"]);
}

#[test]
fn versioned_virtual_provider_is_the_one_that_fits() {
    let f = Fixture::new();
    f.publish(vec![
        pkg("daemon", "1").depends("libx>500"),
        pkg("libx-dev", "9001")
            .depends("libx=9001")
            .provides("pc:libx=1.1"),
        pkg("libx-dev", "200")
            .depends("libx=200")
            .provides("pc:libx=1.2"),
        pkg("libx", "9001"),
        pkg("libx", "200"),
    ]);
    let r = f.install(&["daemon", "pc:libx"]);
    assert_eq!(installed(&r), ["libx-9001", "daemon-1", "libx-dev-9001"]);
}

#[test]
fn world_naming_a_provider_gets_only_that_provider() {
    // The virtual sorts before the provider world names: apk still waits for the name.
    let f = Fixture::new();
    f.publish(vec![
        pkg("postfix", "3").provides("mta").priority(10),
        pkg("xmail", "1").provides("mta").priority(1),
        pkg("xmail", "0.9"),
    ]);
    let r = f.install(&["mta", "xmail"]);
    assert_eq!(installed(&r), ["xmail-1"]);
    assert_eq!(world_file(&f), "mta\nxmail\n");
}

#[test]
fn provider_priority_decides_only_between_equal_versions() {
    let f = Fixture::new();
    f.publish(vec![
        pkg("busybox-sh", "1").provides("sh=1").priority(100),
        pkg("bash", "5").provides("sh=2"),
        pkg("mailx", "1").provides("mail").priority(1),
        pkg("mutt", "2").provides("mail").priority(2),
    ]);
    let r = f.install(&["sh", "mail"]);
    assert_eq!(installed(&r), ["mutt-2", "bash-5"]);
}

#[test]
fn install_if_dependency_decides_which_provider_a_virtual_gets() {
    let f = Fixture::new();
    f.publish(vec![
        pkg("desktop", "1").depends("auth"),
        pkg("openrc", "1"),
        pkg("desktop-openrc", "1")
            .install_if("desktop=1 openrc")
            .depends("auth-logind"),
        pkg("auth", "1"),
        pkg("auth-logind", "1").provides("auth=1"),
    ]);
    let r = f.install(&["desktop", "openrc"]);
    assert_eq!(
        installed(&r),
        ["auth-logind-1", "desktop-1", "openrc-1", "desktop-openrc-1"]
    );
}

#[test]
fn package_providing_two_versions_of_one_name_is_refused() {
    let f = Fixture::new();
    f.publish(vec![pkg("twofaced", "1").provides("face=1 face=2")]);
    let err = f.try_install(&["twofaced"]).unwrap_err();
    assert_eq!(
        err,
        "unable to select packages:\n  twofaced-1:\n    conflicts: twofaced-1[face=1] twofaced-1[face=2]\n    satisfies: world[twofaced]"
    );
    assert!(!f.root().join("lib/apk/db/installed").exists() || db_packages(&f).is_empty());
}

#[test]
fn package_providing_its_own_name_is_refused() {
    let f = Fixture::new();
    f.publish(vec![pkg("narcissus", "2").provides("narcissus")]);
    let err = f.try_install(&["narcissus"]).unwrap_err();
    assert_eq!(
        err,
        "unable to select packages:\n  narcissus-2:\n    conflicts: narcissus-2[narcissus]\n    satisfies: world[narcissus]"
    );
}

#[test]
fn virtual_with_several_providers_and_no_choice_is_refused() {
    let f = Fixture::new();
    f.publish(vec![
        pkg("viewer-a", "1").provides("viewer"),
        pkg("viewer-b", "1").provides("viewer"),
        pkg("gallery", "1").depends("viewer"),
    ]);
    let err = f.try_install(&["gallery"]).unwrap_err();
    assert_eq!(
        err,
        "unable to select packages:\n  viewer (virtual):\n    note: please select one of the 'provided by' packages explicitly\n    provided by: viewer-a viewer-b\n    required by: gallery-1[viewer]"
    );
    let r = f.install(&["gallery", "viewer-b"]);
    assert_eq!(installed(&r), ["viewer-b-1", "gallery-1"]);
}

#[test]
fn virtual_provided_only_by_an_install_if_package_is_not_chosen_for_world() {
    // sane-hp would come in by install_if, but world asking for the virtual it provides
    // does not name it: apk refuses rather than guess.
    let f = Fixture::new();
    f.publish(vec![
        pkg("sane", "1"),
        pkg("sane-hp", "1")
            .install_if("sane")
            .provides("scanner-driver"),
    ]);
    let err = f.try_install(&["scanner-driver", "sane"]).unwrap_err();
    assert_eq!(
        err,
        "unable to select packages:\n  scanner-driver (virtual):\n    note: please select one of the 'provided by' packages explicitly\n    provided by: sane-hp\n    required by: world[scanner-driver]"
    );
}

#[test]
fn two_versions_of_a_library_pulled_in_name_both_sides() {
    let f = Fixture::new();
    f.publish(vec![
        pkg("libz", "1").provides("so:libz.so.1=1"),
        pkg("libz", "2").provides("so:libz.so.2=2"),
        pkg("old-app", "1").depends("so:libz.so.1"),
        pkg("new-app", "1").depends("so:libz.so.2"),
    ]);
    let err = f.try_install(&["old-app", "new-app"]).unwrap_err();
    assert!(
        err.contains("  libz-1:\n    conflicts: libz-2\n    satisfies: old-app-1[so:libz.so.1]"),
        "{err}"
    );
    assert!(
        err.contains("  libz-2:\n    conflicts: libz-1\n    satisfies: new-app-1[so:libz.so.2]"),
        "{err}"
    );
}

/// lib-1 and app-1 installed; the repository has newer versions of both.
fn installed_then_newer_published() -> Fixture {
    let f = Fixture::new();
    f.publish(vec![pkg("lib", "1"), pkg("app", "1").depends("lib")]);
    f.install(&["app"]);
    std::fs::remove_dir_all(f.repo()).unwrap();
    f.publish(vec![
        pkg("lib", "1"),
        pkg("lib", "2"),
        pkg("app", "1").depends("lib"),
        pkg("app", "2").depends("lib"),
        pkg("tool", "1").depends("lib"),
    ]);
    f
}

#[test]
fn plain_install_keeps_installed_versions_that_still_fit() {
    let f = installed_then_newer_published();
    let r = f.install(&["tool"]);
    assert_eq!(installed(&r), ["tool-1"]);
    assert_eq!(db_packages(&f), ["app-1", "lib-1", "tool-1"]);
    // Named again without -u: nothing to do.
    let r = f.install(&["app"]);
    assert!(r.installed.is_empty(), "{:?}", r.installed);
    // A constraint the installed version does not meet moves it.
    let r = f.install(&["lib>1"]);
    assert_eq!(installed(&r), ["lib-2"]);
}

#[test]
fn upgrade_moves_the_named_packages_and_their_dependencies() {
    let f = installed_then_newer_published();
    let r = f.upgrade(&["app"]);
    assert_eq!(installed(&r), ["lib-2", "app-2"]);
    assert_eq!(db_packages(&f), ["app-2", "lib-2"]);
}

#[test]
fn install_that_would_remove_a_package_is_refused_and_changes_nothing() {
    let f = Fixture::new();
    f.publish(vec![
        pkg("mailplus", "1").provides("mail").priority(2),
        pkg("mymail", "1").provides("mail").priority(1),
    ]);
    f.install(&["mail"]);
    assert_eq!(db_packages(&f), ["mailplus-1"]);
    let before = f.read("lib/apk/db/installed");
    let err = f.try_install(&["mymail"]).unwrap_err();
    assert_eq!(
        err,
        "the solution removes installed packages (mailplus-1), which ramboot does not do; nothing was changed"
    );
    assert_eq!(f.read("lib/apk/db/installed"), before);
    assert_eq!(world_file(&f), "mail\n");
}

/// A second, tagged repository (`@testing DIR` in the root's `etc/apk/repositories`).
fn publish_testing(f: &Fixture, pkgs: Vec<ramboot::apk::build::PackageBuilder>) {
    use ramboot::apk::build::IndexBuilder;
    use ramboot::apk::sign::SigAlgo;
    let repo = f.dir.path().join("testing");
    let dir = repo.join(ramboot::apk::build::default_arch());
    std::fs::create_dir_all(&dir).unwrap();
    let mut idx = IndexBuilder::default();
    for p in pkgs {
        let b = p.build(Some(key())).unwrap();
        std::fs::write(dir.join(b.file_name()), &b.bytes).unwrap();
        idx.add(&b.info);
    }
    let index = idx.build(Some(key()), SigAlgo::Sha1).unwrap();
    std::fs::write(dir.join("APKINDEX.tar.gz"), index).unwrap();
    std::fs::create_dir_all(f.root().join("etc/apk")).unwrap();
    std::fs::write(
        f.root().join("etc/apk/repositories"),
        format!("@testing {}\n", repo.display()),
    )
    .unwrap();
}

/// A package with content: apk never masks an empty package (installed size 0).
fn full(name: &str, version: &str) -> ramboot::apk::build::PackageBuilder {
    pkg(name, version).file(&format!("usr/share/{name}/v"), version.as_bytes(), 0o644)
}

fn pinned_fixture() -> Fixture {
    let f = Fixture::new();
    f.publish(vec![full("app", "2").depends("lib"), full("lib", "2")]);
    publish_testing(
        &f,
        vec![
            full("app", "3").depends("lib"),
            full("lib", "3"),
            full("extra", "3"),
        ],
    );
    f
}

#[test]
fn pinned_world_atom_takes_the_tagged_package_and_untagged_dependencies_that_fit() {
    let f = pinned_fixture();
    let r = f.install(&["app@testing"]);
    assert_eq!(installed(&r), ["lib-2", "app-3"]);
    let db = f.read("lib/apk/db/installed");
    let app = db.split("\n\n").find(|r| r.contains("P:app\n")).unwrap();
    assert!(app.contains("\ns:testing\n"), "{app}");
    let lib = db.split("\n\n").find(|r| r.contains("P:lib\n")).unwrap();
    assert!(!lib.contains("\ns:"), "{lib}");
    assert_eq!(world_file(&f), "app@testing\n");
}

#[test]
fn package_only_in_a_tagged_repository_is_masked() {
    let f = pinned_fixture();
    let r = f.install(&["app"]);
    assert_eq!(installed(&r), ["lib-2", "app-2"]);
    let err = f.try_install(&["extra"]).unwrap_err();
    assert_eq!(
        err,
        "unable to select packages:\n  extra-3:\n    masked in: @testing\n    satisfies: world[extra]"
    );
}
