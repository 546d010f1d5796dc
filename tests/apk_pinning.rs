//! Pinned repositories (issue 15, point 4), through real signed packages: `@tag` lines in the
//! root's `etc/apk/repositories`, `name@tag` atoms in world, and `s:<tag>` in the installed db,
//! as apk-tools 2.14 behaves (checked against the reference binary on the same roots).

mod apk_support;
use apk_support::*;
use ramboot::apk::build::PackageBuilder;
use ramboot::apk::{install, ApkError, InstallReport};
use ramboot::sys::RecordingSys;
use std::path::PathBuf;

/// A root with an untagged repository (`-X`) and tagged ones in its `etc/apk/repositories`.
struct Pinned {
    fx: Fixture,
}

impl Pinned {
    fn new(untagged: Vec<PackageBuilder>, tagged: Vec<(&str, Vec<PackageBuilder>)>) -> Pinned {
        let fx = Fixture::new();
        fx.publish(untagged);
        let mut lines = String::new();
        for (tag, pkgs) in tagged {
            let dir = fx.dir.path().join(format!("repo-{tag}"));
            publish_in(&dir, pkgs, |_| {});
            lines.push_str(&format!("@{tag} {}\n", dir.display()));
        }
        let p = Pinned { fx };
        p.set_repositories(&lines);
        p
    }

    fn set_repositories(&self, text: &str) {
        let etc = self.fx.root().join("etc/apk");
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::write(etc.join("repositories"), text).unwrap();
    }

    fn repo_dir(&self, tag: &str) -> PathBuf {
        self.fx.dir.path().join(format!("repo-{tag}"))
    }

    /// `ramboot install` of `world` (creating the db the first time).
    fn add(&self, world: &[&str]) -> Result<InstallReport, ApkError> {
        let mut req = self.fx.request(world);
        req.initdb = !self.fx.root().join("lib/apk/db/installed").exists();
        install(&req, &RecordingSys::new("/"))
    }

    /// The installed db as `name-version[@tag]`, sorted.
    fn db(&self) -> Vec<String> {
        let text = self.fx.read("lib/apk/db/installed");
        let mut out: Vec<String> = text
            .split("\n\n")
            .filter(|r| !r.trim().is_empty())
            .map(|r| {
                let field = |k: &str| {
                    r.lines()
                        .find_map(|l| l.strip_prefix(k))
                        .map(str::to_string)
                };
                let mut s = format!("{}-{}", field("P:").unwrap(), field("V:").unwrap());
                if let Some(t) = field("s:") {
                    s.push_str(&format!("@{t}"));
                }
                s
            })
            .collect();
        out.sort();
        out
    }
}

/// A package with one file of its own, so versions replace each other.
fn p(name: &str, version: &str) -> PackageBuilder {
    pkg(name, version).file(&format!("usr/share/pin/{name}"), version.as_bytes(), 0o644)
}

#[test]
fn an_untagged_atom_never_takes_the_newer_package_of_a_tagged_repository() {
    let r = Pinned::new(
        vec![p("a", "1").depends("b"), p("b", "1")],
        vec![("testing", vec![p("a", "2").depends("b"), p("b", "2")])],
    );
    r.add(&["a"]).unwrap();
    assert_eq!(r.db(), ["a-1", "b-1"]);
}

#[test]
fn a_pinned_atom_takes_the_tagged_package_and_its_dependencies_from_untagged_repositories() {
    let r = Pinned::new(
        vec![p("a", "1").depends("b"), p("b", "1")],
        vec![("testing", vec![p("a", "2").depends("b"), p("b", "2")])],
    );
    r.add(&["a@testing"]).unwrap();
    assert_eq!(r.db(), ["a-2@testing", "b-1"]);
    assert_eq!(r.fx.read("etc/apk/world"), "a@testing\n");
}

#[test]
fn a_dependency_only_the_tagged_repository_has_follows_the_pin_and_records_it() {
    let r = Pinned::new(
        vec![p("a", "1")],
        vec![("testing", vec![p("a", "2").depends("c>=2"), p("c", "2")])],
    );
    r.add(&["a@testing"]).unwrap();
    assert_eq!(r.db(), ["a-2@testing", "c-2@testing"]);
}

#[test]
fn a_package_only_a_tagged_repository_has_is_masked_and_the_error_says_where_it_is() {
    let r = Pinned::new(vec![p("a", "1")], vec![("testing", vec![p("x", "1")])]);
    let e = r.add(&["a", "x"]).unwrap_err().to_string();
    // apk's words (pinning11): the package, where it is, and who wants it.
    assert!(
        e.contains("  x-1:\n    masked in: @testing\n    satisfies: world[x]"),
        "{e}"
    );
    assert!(!r.fx.root().join("usr/share/pin/a").exists(), "{e}");
}

#[test]
fn an_install_if_package_of_a_tagged_repository_follows_its_triggers_pin() {
    let r = Pinned::new(
        vec![p("a", "1"), p("b", "1")],
        vec![(
            "testing",
            vec![p("a", "2"), p("a-extra", "2").install_if("a b")],
        )],
    );
    r.add(&["b"]).unwrap();
    assert_eq!(r.db(), ["b-1"]);
    r.add(&["a@testing"]).unwrap();
    assert_eq!(r.db(), ["a-2@testing", "a-extra-2@testing", "b-1"]);
}

#[test]
fn pinning_to_another_tag_of_the_same_package_updates_its_tag_without_reinstalling() {
    let r = Pinned::new(
        vec![p("a", "1")],
        vec![("testing", vec![p("a", "2").depends("c"), p("c", "2")])],
    );
    r.add(&["a@testing"]).unwrap();
    assert_eq!(r.db(), ["a-2@testing", "c-2@testing"]);
    // A second tag naming a copy of the same repository: the same packages.
    let copy = r.fx.dir.path().join("repo-edge");
    let arch = ramboot::apk::build::default_arch();
    std::fs::create_dir_all(copy.join(arch)).unwrap();
    for e in std::fs::read_dir(r.repo_dir("testing").join(arch)).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), copy.join(arch).join(e.file_name())).unwrap();
    }
    r.set_repositories(&format!(
        "@testing {}\n@edge {}\n",
        r.repo_dir("testing").display(),
        copy.display()
    ));
    let report = r.add(&["a@edge"]).unwrap();
    assert!(report.installed.is_empty(), "{:?}", report.installed);
    assert_eq!(r.db(), ["a-2@edge", "c-2@edge"]);
    assert_eq!(r.fx.read("etc/apk/world"), "a@edge\n");
}

#[test]
fn unpinning_an_atom_downgrades_to_the_untagged_version() {
    let r = Pinned::new(vec![p("a", "1")], vec![("testing", vec![p("a", "2")])]);
    r.add(&["a@testing"]).unwrap();
    assert_eq!(r.db(), ["a-2@testing"]);
    r.add(&["a"]).unwrap();
    assert_eq!(r.db(), ["a-1"]);
    assert_eq!(r.fx.read("usr/share/pin/a"), "1");
}

#[test]
fn a_pinned_atom_prefers_its_tag_over_an_untagged_package_of_the_same_version() {
    let r = Pinned::new(
        vec![pkg("a", "1").file("usr/share/pin/a", b"untagged", 0o644)],
        vec![(
            "testing",
            vec![pkg("a", "1").file("usr/share/pin/a", b"tagged", 0o644)],
        )],
    );
    r.add(&["a@testing"]).unwrap();
    assert_eq!(r.db(), ["a-1@testing"]);
    assert_eq!(r.fx.read("usr/share/pin/a"), "tagged");
}

/// apk would purge `c` (nothing needs it once `a` is unpinned, and `a-1` breaks it); ramboot
/// removes nothing, so it refuses and says which package stands in the way.
#[test]
fn unpinning_that_would_need_a_removal_is_refused_naming_the_package() {
    let r = Pinned::new(
        vec![p("a", "1")],
        vec![(
            "testing",
            vec![p("a", "2").depends("c"), p("c", "2").depends("a>=2")],
        )],
    );
    r.add(&["a@testing"]).unwrap();
    let e = r.add(&["a"]).unwrap_err().to_string();
    assert!(
        e.contains("the solution removes installed packages (c-2)"),
        "{e}"
    );
    assert_eq!(r.db(), ["a-2@testing", "c-2@testing"]);
    assert_eq!(r.fx.read("etc/apk/world"), "a@testing\n");
}

/// As apk (`apk_db_check_world`): a pin to a tag no repository has is refused, not ignored.
#[test]
fn a_pin_to_a_tag_no_repository_has_is_refused() {
    let r = Pinned::new(vec![p("a", "1")], vec![("testing", vec![p("a", "2")])]);
    let e = r.add(&["a@edge"]).unwrap_err().to_string();
    assert!(
        e.contains("the repository tag for world dependency 'a@edge' does not exist"),
        "{e}"
    );
    assert!(!r.fx.root().join("usr/share/pin/a").exists());
}
