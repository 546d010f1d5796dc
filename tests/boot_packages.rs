//! The boot's package step on the recording double: what happens when the installer fails.
//! Each test builds a stand-in `/` with a repository at `/repo` (named by `alpine_repo=`, so no
//! device discovery is needed), the test key in the initramfs's `/etc/apk/keys`, and a rescue
//! shell at `/bin/sh`.

mod apk_support;
use apk_support::*;
use ramboot::boot::{self, timeline::Outcome, BootEnd, RESCUE_SHELL};
use ramboot::sys::RecordingSys;
use std::fs;
use std::path::Path;

struct Stand {
    fx: Fixture,
}

impl Stand {
    /// A stand-in `/` whose `/repo` has `pkgs`, booting with `cmdline`.
    fn new(cmdline: &str, pkgs: Vec<ramboot::apk::build::PackageBuilder>) -> Stand {
        let fx = Fixture::new();
        let root = fx.dir.path().join("root");
        fs::create_dir_all(root.join("proc")).unwrap();
        fs::write(root.join("proc/cmdline"), format!("{cmdline}\n")).unwrap();
        fs::create_dir_all(root.join("bin")).unwrap();
        fs::write(root.join("bin/sh"), b"").unwrap();
        fs::create_dir_all(root.join("etc/apk/keys")).unwrap();
        fs::write(root.join("etc/apk/keys").join(KEY_NAME), key().public_pem()).unwrap();
        fx.publish(pkgs);
        fs::rename(fx.repo(), root.join("repo")).unwrap();
        Stand { fx }
    }

    fn root(&self) -> std::path::PathBuf {
        self.fx.dir.path().join("root")
    }
}

/// Issue 8, point 6: a panic in an installer worker (injected) ends the install with an error
/// and the boot takes its failure policy: the rescue shell, then a retry. Before, the committer
/// waited forever and PID 1 hung without a word.
#[test]
fn a_panicking_installer_worker_sends_the_boot_to_rescue() {
    use ramboot::apk::install::fault::{panic_at, Site};
    let s = Stand::new(
        "alpine_repo=/repo apkovl=none modloop=none pkgs=boot-fault",
        vec![pkg("boot-fault", "1.0").file("usr/bin/bf", b"bf", 0o755)],
    );
    panic_at(Site::Worker, "boot-fault");
    let sys = RecordingSys::new(s.root());
    let f = boot::run_recorded(&sys, Some(1));
    let BootEnd::GaveUp { reason } = &f.end else {
        panic!("expected the failure policy, got {:?}", f.end);
    };
    assert!(
        reason.contains("installing packages failed")
            && reason.contains("internal error in the installer")
            && reason.contains("boot-fault"),
        "{reason}"
    );
    let shells = sys
        .trace()
        .iter()
        .filter(|l| l.as_str() == RESCUE_SHELL)
        .count();
    assert_eq!(
        shells, 1,
        "the rescue shell ran, then the retry failed again"
    );
    let packages: Vec<&Outcome> = f
        .timeline
        .stages
        .iter()
        .filter(|st| st.name == "packages")
        .map(|st| &st.outcome)
        .collect();
    assert!(
        packages.len() == 2 && packages.iter().all(|o| matches!(o, Outcome::Failed(_))),
        "{packages:?}"
    );
    assert!(!Path::new(&s.root().join("sysroot/usr/bin/bf")).exists());
}
