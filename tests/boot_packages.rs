//! The boot's package step on the recording double: what happens when the installer fails.
//! Each test builds a stand-in `/` with a repository at `/repo` (named by `alpine_repo=`, so no
//! device discovery is needed), the test key in the initramfs's `/etc/apk/keys`, and a rescue
//! shell at `/bin/sh`.
// Tests drive real tools and processes (QEMU, mkfs, the built binary): the system boundary
// lint is for the library.
#![allow(clippy::disallowed_methods)]

mod apk_support;
mod support;
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

/// Issue 8, point 5, at boot (through `ramboot plan`, which runs the boot with its log): when
/// the boot repository's index is refused, the log says why before the package is skipped, and
/// so do the plan's decisions (they listed only "wanted (no such package)").
#[test]
fn a_refused_boot_repository_is_explained_before_the_skipped_package() {
    let f = Fixture::new();
    f.publish(vec![pkg("wanted", "1.0").file("usr/bin/w", b"w", 0o755)]);
    let dir = tempfile::tempdir().unwrap();
    let card = dir.path().join("media/mmcblk0p1");
    fs::create_dir_all(&card).unwrap();
    fs::rename(f.repo(), card.join("apks")).unwrap();
    fs::write(card.join("apks/.boot_repository"), b"").unwrap();
    // The initramfs trusts another key than the one that signed the index.
    fs::create_dir_all(dir.path().join("etc/apk/keys")).unwrap();
    fs::write(
        dir.path().join("etc/apk/keys/other-5f000001.rsa.pub"),
        impostor_key().public_pem(),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ramboot"))
        .args(["plan", "--cmdline", "pkgs=wanted modloop=none", "--root"])
        .arg(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let why = text
        .find(&format!(
            "UNTRUSTED signature (signed by unknown key(s) {KEY_NAME})"
        ))
        .unwrap_or_else(|| panic!("the refusal is not in the boot log:\n{text}"));
    let skipped = text
        .find("package wanted skipped")
        .unwrap_or_else(|| panic!("wanted was not skipped:\n{text}"));
    assert!(why < skipped, "{text}");
    // The decisions say it too, before the skipped package.
    let decisions = &text[text.find("== decisions ==").unwrap()..];
    let unused = decisions
        .find("  repository not used: ")
        .unwrap_or_else(|| panic!("the decisions do not name the refusal:\n{text}"));
    assert!(
        decisions[unused..]
            .lines()
            .next()
            .unwrap()
            .contains("UNTRUSTED signature"),
        "{text}"
    );
    let skipped = decisions
        .find("  wanted: skipped: wanted (no such package)")
        .unwrap_or_else(|| panic!("{text}"));
    assert!(unused < skipped, "{text}");
}

/// `ramboot plan` over a card whose boot repository has `wanted`, signed by the key the
/// initramfs trusts, and a modloop signing key in the initramfs (so the boot adds openssl).
fn plan_card_with_modloop_key(cmdline: &str) -> String {
    let f = Fixture::new();
    f.publish(vec![pkg("wanted", "1.0").file("usr/bin/w", b"w", 0o755)]);
    let dir = tempfile::tempdir().unwrap();
    let card = dir.path().join("media/mmcblk0p1");
    fs::create_dir_all(&card).unwrap();
    fs::rename(f.repo(), card.join("apks")).unwrap();
    fs::write(card.join("apks/.boot_repository"), b"").unwrap();
    fs::create_dir_all(dir.path().join("etc/apk/keys")).unwrap();
    fs::write(
        dir.path().join("etc/apk/keys").join(KEY_NAME),
        key().public_pem(),
    )
    .unwrap();
    // mkinitfs puts the modloop signing key here: the boot then adds openssl.
    fs::create_dir_all(dir.path().join("var/cache/misc")).unwrap();
    fs::write(
        dir.path()
            .join("var/cache/misc/modloop-lts.SIGN.RSA.modloop-5f000002.rsa.pub"),
        key().public_pem(),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ramboot"))
        .args(["plan", "--cmdline", cmdline, "--root"])
        .arg(dir.path())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Issue 8, point 15: a package the boot adds on its own says why it was wanted when it is
/// skipped ("openssl is not in any repository: skipped" did not), and the plan shows no Debug
/// formatting (the device search read "Settled after").
#[test]
fn a_skipped_implicit_package_says_why_it_was_wanted() {
    let text = plan_card_with_modloop_key("pkgs=wanted modloop=none");
    assert!(
        text.contains(
            " * openssl (wanted to verify the modloop signature) is not in any repository: skipped\n"
        ),
        "{text}"
    );
    assert!(
        text.contains(" * alpine-base (the base system every diskless boot installs) is not in any repository: skipped\n"),
        "{text}"
    );
    assert!(
        text.contains("installed, in order:\n  wanted-1.0\n"),
        "{text}"
    );
    assert!(text.contains("devices (settled after "), "{text}");
}

/// A package the user asked for is not an implicit one, even when the boot would add it too:
/// its absence is a problem, not a notice, and it stays in world (it was dropped silently).
#[test]
fn a_package_the_user_asked_for_is_not_implicit() {
    let text = plan_card_with_modloop_key("pkgs=wanted,openssl modloop=none");
    assert!(
        text.contains(" * WARNING: package openssl skipped: openssl (no such package)"),
        "{text}"
    );
    assert!(!text.contains("openssl (wanted to verify"), "{text}");
    assert!(
        text.contains("  openssl: skipped: openssl (no such package)"),
        "{text}"
    );
}

/// The files under `dir`, keyed `<prefix>/<relative path>` (what an HTTP server would serve).
fn served(dir: &Path, prefix: &str) -> std::collections::HashMap<String, Vec<u8>> {
    let mut files = std::collections::HashMap::new();
    for arch in fs::read_dir(dir).unwrap() {
        let arch = arch.unwrap().path();
        for f in fs::read_dir(&arch).unwrap() {
            let f = f.unwrap().path();
            let rel = f.strip_prefix(dir).unwrap().display().to_string();
            files.insert(format!("{prefix}/{rel}"), fs::read(&f).unwrap());
        }
    }
    files
}

/// Issue 10, point 5: `alpine_repo=http://…` with the network up (a lease from the in-process
/// DHCP server): the signed index and the chosen package come from the server into memory and
/// are verified as local ones; a package whose bytes differ from its index record is refused.
#[test]
fn packages_from_an_http_repository_are_fetched_and_verified() {
    let s = Stand::new(
        "ip=dhcp alpine_repo=http://repo.test/r apkovl=none modloop=none pkgs=net-good,net-bad",
        vec![
            pkg("net-good", "1.0").file("usr/bin/ng", b"good", 0o755),
            pkg("net-bad", "1.0").file("usr/bin/nb", b"bad", 0o755),
        ],
    );
    let repo = s.root().join("repo");
    let mut files = served(&repo, "/r");
    fs::remove_dir_all(&repo).unwrap();
    // The server hands out other bytes for net-bad than its index record names.
    let bad = files
        .keys()
        .find(|k| k.contains("net-bad-1.0"))
        .unwrap()
        .clone();
    let bytes = files.get_mut(&bad).unwrap();
    let at = bytes.len() - 12; // in the data part, which the index record's checksum covers
    bytes[at] ^= 0x55;
    let sys = RecordingSys::new(s.root());
    support::dhcp::nic(&s.root(), "eth0", 2, "52:54:00:12:34:56", "up", true);
    sys.serve_dhcp(
        std::time::Duration::from_millis(2),
        support::dhcp::slirp_like(0),
    );
    let seen = support::http::serve_files(&sys, files);
    boot::run_recorded(&sys, Some(0));
    let seen = seen.lock().unwrap().clone();
    let arch = ramboot::apk::build::default_arch();
    assert_eq!(
        seen[0],
        format!("GET /r/{arch}/APKINDEX.tar.gz HTTP/1.1 repo.test:80")
    );
    assert_eq!(
        fs::read(s.root().join("sysroot/usr/bin/ng")).unwrap(),
        b"good"
    );
    assert!(!s.root().join("sysroot/usr/bin/nb").exists());
    // Into memory: the initramfs's tmpfs, not the new root.
    assert!(s.root().join("tmp/ramboot-apk-cache").is_dir());
}
