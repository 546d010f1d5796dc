//! End-to-end installs from repositories built by the tests.

mod apk_support;
use apk_support::*;

#[test]
fn chain_installs_in_dependency_order_and_writes_db() {
    let f = Fixture::new();
    f.publish(vec![
        pkg("app", "1.0-r0").depends("libfoo so:libbar.so.1").file(
            "usr/bin/app",
            b"#!/bin/sh\necho app\n",
            0o755,
        ),
        pkg("libfoo", "2.1-r3").file("usr/lib/libfoo.so", b"foo", 0o644),
        pkg("libbar", "1.0-r0")
            .provides("so:libbar.so.1=1.0")
            .file("usr/lib/libbar.so.1", b"bar", 0o644)
            .symlink("usr/lib/libbar.so", "libbar.so.1"),
    ]);
    let r = f.install(&["app"]);
    assert!(r.failed.is_empty(), "{:?}", r.failed);
    assert_eq!(names(&r), ["libfoo", "libbar", "app"]);
    assert_eq!(f.read("usr/bin/app"), "#!/bin/sh\necho app\n");
    assert_eq!(
        std::fs::read_link(f.root().join("usr/lib/libbar.so"))
            .unwrap()
            .to_str(),
        Some("libbar.so.1")
    );
    assert_eq!(f.read("etc/apk/world"), "app\n");
    let installed = f.read("lib/apk/db/installed");
    assert!(installed.contains("P:app\nV:1.0-r0\n"), "{installed}");
    assert!(
        installed.contains("F:usr/bin\nR:app\na:0:0:755\nZ:Q1"),
        "{installed}"
    );
    assert!(
        installed.contains("R:libbar.so\na:0:0:777\nZ:Q1"),
        "{installed}"
    );
    assert_eq!(
        std::fs::read(f.root().join("lib/apk/db/scripts.tar")).unwrap(),
        vec![0u8; 1024]
    );
    assert!(!f.root().join(".ramboot-apk-staging").exists());
    assert_eq!(r.exit_code(), 0);
}

/// alpine-baselayout ships `var/run -> /run`; ppp-daemon (Alpine 3.13) then ships `var/run/ppp/`.
/// The absolute link is followed inside the root, as chroot would: the files land in `run/ppp`
/// and the db lists the paths as written in the package, as apk-tools does.
#[test]
fn absolute_symlink_in_the_root_is_followed_inside_it() {
    for resolve in RESOLVERS {
        let f = Fixture::new();
        f.publish(vec![
            pkg("alpine-baselayout", "3.2.0-r8")
                .dir("run", 0o755)
                .dir("var", 0o755)
                .symlink("var/run", "/run"),
            pkg("ppp-daemon", "2.4.8-r1")
                .depends("alpine-baselayout")
                .dir("var/run/ppp", 0o750)
                .file("var/run/ppp/resolv.conf", b"nameserver 1.1.1.1\n", 0o644),
        ]);
        let r = f.install_resolved(&["ppp-daemon"], resolve);
        assert!(r.failed.is_empty(), "{:?}", r.failed);
        assert!(r.broken.is_empty(), "{:?}", r.broken);
        assert_eq!(r.exit_code(), 0);
        assert_eq!(f.read("run/ppp/resolv.conf"), "nameserver 1.1.1.1\n");
        assert_eq!(
            std::fs::read_link(f.root().join("var/run")).unwrap(),
            std::path::Path::new("/run")
        );
        let installed = f.read("lib/apk/db/installed");
        // What apk-tools 2.14.10 records for the same two packages.
        assert!(
            installed.contains("\nF:run\nF:var\nR:run\na:0:0:777\nZ:Q1"),
            "{installed}"
        );
        assert!(
            installed.contains("\nF:var\nF:var/run\nF:var/run/ppp\nM:0:0:750\nR:resolv.conf\nZ:Q1"),
            "{installed}"
        );
        assert!(!installed.contains("F:run/ppp"), "{installed}");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(f.root().join("run/ppp"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o750);
    }
}

/// The report says where the install's time went (the boot's timeline shows it): the phases
/// in order, then the parts measured inside them.
#[test]
fn the_report_profiles_each_phase() {
    let f = Fixture::new();
    f.publish(vec![
        pkg("app", "1.0-r0")
            .depends("libfoo")
            .file("usr/bin/app", b"app", 0o755),
        pkg("libfoo", "2.1-r3").file("usr/lib/libfoo.so", b"foo", 0o644),
    ]);
    let r = f.install(&["app"]);
    let names: Vec<&str> = r.profile.iter().map(|(n, _)| n.as_str()).collect();
    let phases: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| ["prepare", "solve", "commit", "triggers", "db"].contains(n))
        .collect();
    assert_eq!(phases, ["prepare", "solve", "commit", "triggers", "db"]);
    for part in ["waiting for staging", "staging cpu", "committer cpu"] {
        assert!(names.contains(&part), "{part} missing from {names:?}");
    }
    let phase_sum: std::time::Duration = r
        .profile
        .iter()
        .filter(|(n, _)| phases.contains(&n.as_str()))
        .map(|(_, d)| *d)
        .sum();
    assert!(phase_sum <= r.elapsed, "{phase_sum:?} > {:?}", r.elapsed);
}
