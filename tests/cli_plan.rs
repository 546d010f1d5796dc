//! `ramboot plan` as a user runs it: a directory holding a copy of an SD card's files, no fake
//! kernel. The plan must explain the apkovl choice, hand off, and leave the directory untouched.
// Tests drive real tools and processes (QEMU, mkfs, the built binary): the system boundary
// lint is for the library.
#![allow(clippy::disallowed_methods)]

use std::fs;
use std::process::Command;

fn apkovl() -> Vec<u8> {
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    let mut h = tar::Header::new_gnu();
    h.set_size(4);
    h.set_mode(0o644);
    b.append_data(&mut h, "etc/hostname", &b"rpi\n"[..])
        .unwrap();
    b.into_inner().unwrap().finish().unwrap()
}

fn snapshot(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in walk(dir) {
        out.push(e.strip_prefix(dir).unwrap().display().to_string());
    }
    out.sort();
    out
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut v = Vec::new();
    for e in fs::read_dir(dir).unwrap().flatten() {
        v.push(e.path());
        if e.file_type().unwrap().is_dir() {
            v.extend(walk(&e.path()));
        }
    }
    v
}

#[test]
fn plan_over_a_card_copy_explains_the_apkovl_and_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let card = root.join("media/mmcblk0p1");
    fs::create_dir_all(card.join("apks")).unwrap();
    fs::write(card.join("apks/.boot_repository"), b"").unwrap();
    fs::write(card.join("rpi.apkovl.tar.gz"), apkovl()).unwrap();
    fs::write(card.join("rpi.apkovl.tar.gz.bak"), apkovl()).unwrap();
    fs::create_dir_all(root.join("sysroot/sbin")).unwrap();
    fs::write(root.join("sysroot/sbin/init"), b"#!/bin/sh\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(
        root.join("sysroot/sbin/init"),
        fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let before = snapshot(root);

    let out = Command::new(env!("CARGO_BIN_EXE_ramboot"))
        .args(["plan", "--root"])
        .arg(root)
        .args(["--cmdline", "console=ttyS0"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("mmcblk0p1 [vfat] at /media/mmcblk0p1: kept (was already mounted)"),
        "{text}"
    );
    assert!(text.contains("apkovl: /media/mmcblk0p1/rpi.apkovl.tar.gz (found on the boot media: the others are leftovers"), "{text}");
    assert!(
        text.contains("  ignored: /media/mmcblk0p1/rpi.apkovl.tar.gz.bak"),
        "{text}"
    );
    assert!(
        text.contains("handoff: switch_root -c /dev/ttyS0 /sysroot /sbin/init"),
        "{text}"
    );
    assert!(text.contains("exec /sbin/init"), "{text}");
    assert!(text.contains("== end ==\nhanded off"), "{text}");
    // Issue 11: the plan says what the root cache does (and writes nothing to the card): an
    // install from a repository that could not be used is not kept.
    assert!(
        text.contains(
            "root cache: no cached root at /media/mmcblk0p1/ramboot-root.sqfs yet: installing"
        ),
        "{text}"
    );
    assert!(!text.contains("is written to"), "{text}");
    // Bug fixed: the "several apkovls" warning was logged twice (discovery and the media stage).
    assert_eq!(
        text.matches("WARNING: several apkovls found").count(),
        1,
        "{text}"
    );
    assert_eq!(snapshot(root), before, "the user's directory changed");

    let out = Command::new(env!("CARGO_BIN_EXE_ramboot"))
        .args(["plan", "--json", "--cmdline", "noapkovl", "--root"])
        .arg(root)
        .output()
        .unwrap();
    let json = String::from_utf8_lossy(&out.stdout);
    assert!(
        json.starts_with('{') && json.trim_end().ends_with('}'),
        "{json}"
    );
    assert!(
        json.contains(
            r#""apkovl":null,"apkovl_why":"disabled by the command line (noapkovl / apkovl=none)""#
        ),
        "{json}"
    );
    assert!(json.contains(r#""handed_off":true"#), "{json}");
    let out = Command::new(env!("CARGO_BIN_EXE_ramboot"))
        .args(["plan", "--cmdline", "ramboot_cache=no", "--root"])
        .arg(root)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("root cache: off (ramboot_cache=no)"),
        "{text}"
    );
    assert_eq!(snapshot(root), before, "the user's directory changed");
}

// --- package scripts, --keys-dir, --media over the temp dir (issue 8, point 13) ---

mod support;

use ramboot::apk::build::{IndexBuilder, PackageBuilder};
use ramboot::apk::sign::{SigAlgo, SigningKey};
use ramboot::apk::stream::ScriptKind;
use std::path::{Path, PathBuf};
use support::tools;

const KEY_NAME: &str = "card-5f000000.rsa.pub";

fn key() -> &'static SigningKey {
    static KEY: std::sync::OnceLock<SigningKey> = std::sync::OnceLock::new();
    KEY.get_or_init(|| SigningKey::generate(KEY_NAME, 1024).unwrap())
}

/// Alpine's busybox post-install, in substance: the applet links, `/sbin/init` among them,
/// exist only once it ran.
const ALPINE_POST_INSTALL: &str =
    "#!/bin/busybox sh\n/bin/busybox mkdir -p /bin /sbin /usr/bin /usr/sbin\n/bin/busybox --install -s || exit 1\nexit 0\n";

/// A copy of an SD card's files: a signed boot repository for `arch` with `busybox` (the given
/// binary and post-install script) and `alpine-base`, in `dir/card`; the key in `dir/keys`.
fn card_with_busybox(
    dir: &Path,
    arch: &str,
    busybox: &[u8],
    post_install: &str,
) -> (PathBuf, PathBuf) {
    let card = dir.join("card");
    let repo = card.join("apks").join(arch);
    fs::create_dir_all(&repo).unwrap();
    fs::write(card.join("apks/.boot_repository"), b"").unwrap();
    let mut idx = IndexBuilder {
        description: "card".into(),
        ..Default::default()
    };
    let mut bb = PackageBuilder::new("busybox", "1.36.1-r0")
        .file("bin/busybox", busybox, 0o755)
        .script(ScriptKind::PostInstall, post_install);
    bb.info.arch = arch.into();
    let mut base = PackageBuilder::new("alpine-base", "3.19.0-r0").depends("busybox");
    base.info.arch = arch.into();
    for p in [bb, base] {
        let b = p.build(Some(key())).unwrap();
        fs::write(repo.join(b.file_name()), &b.bytes).unwrap();
        idx.add(&b.info);
    }
    fs::write(
        repo.join("APKINDEX.tar.gz"),
        idx.build(Some(key()), SigAlgo::Sha1).unwrap(),
    )
    .unwrap();
    let keys = dir.join("keys");
    fs::create_dir_all(&keys).unwrap();
    fs::write(keys.join(KEY_NAME), key().public_pem()).unwrap();
    (card, keys)
}

/// `ramboot plan --media CARD --keys-dir KEYS [extra]`: (exit success, stdout + stderr).
fn plan_card(card: &Path, keys: &Path, extra: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ramboot"))
        .args(["plan", "--cmdline", "console=ttyS0", "--media"])
        .arg(card)
        .arg("--keys-dir")
        .arg(keys)
        .args(extra)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// This machine's static busybox (package busybox-static, installed by qemu/setup-host.sh).
fn host_busybox() -> Option<Vec<u8>> {
    let found = ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .filter_map(|p| fs::read(p).ok())
        .find(|b| ramboot::elf::parse(b).is_ok_and(|i| i.interpreter.is_none()));
    if found.is_none() {
        tools::missing("no static busybox (package busybox-static)");
    }
    found
}

/// Bug fixed: `/sbin/init` comes from busybox's post-install script, which the plan only
/// recorded, so every real card ended with "/sbin/init does not exist". As root the script now
/// runs chrooted in the scratch copy and the plan hands off.
#[test]
fn busybox_post_install_runs_and_creates_sbin_init() {
    let Some(busybox) = host_busybox() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let arch = ramboot::apk::build::default_arch();
    let (card, keys) = card_with_busybox(dir.path(), arch, &busybox, ALPINE_POST_INSTALL);
    let (ok, text) = plan_card(&card, &keys, &[]);
    assert!(!text.contains("does not exist"), "{text}");
    if rustix::process::geteuid().is_root() {
        assert!(ok, "{text}");
        assert!(
            text.contains("installed, in order:\n  busybox-1.36.1-r0\n  alpine-base-3.19.0-r0\n"),
            "{text}"
        );
        assert!(
            text.contains("== end ==\nhanded off: exec /sbin/init in the new root\n"),
            "{text}"
        );
        assert!(!text.contains("not verified"), "{text}");
    } else {
        assert!(tools::root("running package scripts"));
    }
}

/// When the scripts do not run (here `--no-scripts`), what they create is reported as not
/// verified, never as a failure of the boot.
#[test]
fn scripts_that_do_not_run_leave_init_not_verified() {
    let dir = tempfile::tempdir().unwrap();
    let arch = ramboot::apk::build::default_arch();
    let (card, keys) = card_with_busybox(dir.path(), arch, b"not run", ALPINE_POST_INSTALL);
    let (ok, text) = plan_card(&card, &keys, &["--no-scripts"]);
    assert!(ok, "{text}");
    assert!(
        text.contains("busybox-1.36.1-r0: post-install script not run (--no-scripts)"),
        "{text}"
    );
    assert!(
        text.contains("handed off: exec /sbin/init in the new root (not verified: /sbin/init: created by a package script, not verified"),
        "{text}"
    );
    let (_, json) = plan_card(&card, &keys, &["--no-scripts", "--json"]);
    assert!(json.contains(r#""handed_off":true,"unverified":["/sbin/init: created by a package script, not verified"#), "{json}");
}

/// A card of another machine: the script runs under qemu-user. Debian's arm64 busybox-static
/// (from the QEMU kernel cache) runs applets in-process, so `ln` works without binfmt_misc.
#[test]
fn a_foreign_card_runs_its_scripts_under_qemu_user() {
    if !tools::have("qemu-aarch64-static") || !tools::root("chroot for package scripts") {
        return;
    }
    let busybox = fs::read(&support::qemu::kernel().busybox).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let script = "#!/bin/busybox sh\nmkdir -p /sbin\nln -s /bin/busybox /sbin/init\n";
    let (card, keys) = card_with_busybox(dir.path(), "aarch64", &busybox, script);
    let (ok, text) = plan_card(&card, &keys, &[]);
    assert!(ok, "{text}");
    assert!(
        text.contains("kernel release") && text.contains("machine aarch64"),
        "{text}"
    );
    assert!(
        text.contains("== end ==\nhanded off: exec /sbin/init in the new root\n"),
        "{text}"
    );
    // A script that starts other aarch64 programs by path needs binfmt_misc: without it, the
    // result is "not verified", not a failure.
    let dir = tempfile::tempdir().unwrap();
    let (card, keys) = card_with_busybox(dir.path(), "aarch64", &busybox, ALPINE_POST_INSTALL);
    let (ok, text) = plan_card(&card, &keys, &[]);
    assert!(ok, "{text}");
    assert!(
        text.contains("== end ==\nhanded off: exec /sbin/init"),
        "{text}"
    );
    let binfmt = Path::new("/proc/sys/fs/binfmt_misc/status").exists();
    assert!(
        binfmt || text.contains("(not verified: /sbin/init: created by a package script"),
        "{text}"
    );
}

/// Bug fixed: with the card in the temp dir (`--media /tmp`), the scratch copy was copied into
/// itself until "File name too long". And without `--keys-dir`, the card's repository is not
/// trusted, which the plan says.
#[test]
fn media_in_the_temp_dir_and_keys_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let (card, keys) = card_with_busybox(
        tmp.path(),
        ramboot::apk::build::default_arch(),
        b"x",
        ALPINE_POST_INSTALL,
    );
    let out = Command::new(env!("CARGO_BIN_EXE_ramboot"))
        .env("TMPDIR", &card)
        .args(["plan", "--no-scripts", "--media"])
        .arg(&card)
        .arg("--keys-dir")
        .arg(&keys)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("busybox-1.36.1-r0"), "{text}");
    let left: Vec<_> = fs::read_dir(&card)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left, ["apks"], "the scratch copy is removed");
    // Without the card's key, nothing is installed (and not silently).
    let out = Command::new(env!("CARGO_BIN_EXE_ramboot"))
        .args(["plan", "--no-scripts", "--media"])
        .arg(&card)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("  busybox-1.36.1-r0"), "{text}");
}

/// A script the real boot could not run either (its interpreter is missing) is a failure the
/// plan must predict, not something "not verified".
#[test]
fn a_script_that_cannot_run_at_boot_fails_in_the_plan_too() {
    if !tools::root("running package scripts") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let arch = ramboot::apk::build::default_arch();
    let script = "#!/bin/no-such-shell\nexit 0\n";
    let (card, keys) = card_with_busybox(dir.path(), arch, b"not a program", script);
    let (ok, text) = plan_card(&card, &keys, &[]);
    assert!(!ok, "{text}");
    assert!(
        text.contains(
            "busybox-1.36.1-r0: installed with errors: post-install script could not run"
        ),
        "{text}"
    );
    assert!(!text.contains("not verified"), "{text}");
    assert!(
        text.contains("stopped: /sbin/init does not exist in the new root /sysroot"),
        "{text}"
    );
}

/// Issue 10 (8): the plan says what the network stage would do: the interface and why, and
/// on the dry run (no DHCP server) that no lease came and the boot went on.
#[test]
fn plan_shows_the_network_decisions() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let card = root.join("media/mmcblk0p1");
    fs::create_dir_all(card.join("apks")).unwrap();
    fs::write(card.join("apks/.boot_repository"), b"").unwrap();
    let nic = root.join("sys/class/net/eth0");
    fs::create_dir_all(nic.join("device")).unwrap();
    fs::write(nic.join("ifindex"), "2\n").unwrap();
    fs::write(nic.join("address"), "b8:27:eb:00:00:01\n").unwrap();
    fs::write(nic.join("operstate"), "up\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ramboot"))
        .args(["plan", "--root"])
        .arg(root)
        .args(["--cmdline", "ip=dhcp"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("network: not configured: no DHCP lease on eth0: no server answered (4 tries in 15s); the boot went on with the local sources"),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("udhcpc -i eth0"), "{text}");
}

/// Issue 10 (mkinitfs case 24): the stand-in root's `/etc/mactab` renames the NIC before the
/// choice, and the plan says which name it had.
#[test]
fn plan_shows_a_mactab_rename() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let card = root.join("media/mmcblk0p1");
    fs::create_dir_all(card.join("apks")).unwrap();
    fs::write(card.join("apks/.boot_repository"), b"").unwrap();
    let nic = root.join("sys/class/net/eth0");
    fs::create_dir_all(nic.join("device")).unwrap();
    fs::write(nic.join("ifindex"), "2\n").unwrap();
    fs::write(nic.join("address"), "b8:27:eb:00:00:01\n").unwrap();
    fs::write(nic.join("operstate"), "up\n").unwrap();
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::write(root.join("etc/mactab"), "lan0 B8:27:EB:00:00:01\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ramboot"))
        .args(["plan", "--root"])
        .arg(root)
        .args(["--cmdline", "ip=10.0.2.15::10.0.2.2:255.255.255.0::lan0"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(
            "network: up by ip=: lan0 10.0.2.15/24 via 10.0.2.2 (static, ip=); interface: named by ip= \
             (renamed from eth0 by /etc/mactab)"
        ),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("ip link set eth0 name lan0"), "{text}");
}

/// Issue 10 (3, 8): with IPv6 in the kernel, the plan shows SLAAC switched on before the link
/// and, on the dry run (no DHCP server, no router), that neither gave an address.
#[test]
fn plan_shows_the_ipv6_fallback() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let card = root.join("media/mmcblk0p1");
    fs::create_dir_all(card.join("apks")).unwrap();
    fs::write(card.join("apks/.boot_repository"), b"").unwrap();
    let nic = root.join("sys/class/net/eth0");
    fs::create_dir_all(nic.join("device")).unwrap();
    fs::write(nic.join("ifindex"), "2\n").unwrap();
    fs::write(nic.join("address"), "b8:27:eb:00:00:01\n").unwrap();
    fs::write(nic.join("operstate"), "up\n").unwrap();
    let conf = root.join("proc/sys/net/ipv6/conf/eth0");
    fs::create_dir_all(&conf).unwrap();
    fs::write(conf.join("accept_ra"), "0\n").unwrap();
    fs::write(conf.join("autoconf"), "0\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ramboot"))
        .args(["plan", "--root"])
        .arg(root)
        .args(["--cmdline", "ip=dhcp"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("network: not configured: no address on eth0: no DHCP server answered (4 tries in 15s) and no IPv6 router advertised a prefix within 10s; the boot went on with the local sources"),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("sysctl -w net.ipv6.conf.eth0.accept_ra=1"),
        "{text}"
    );
    assert!(text.contains("ip -6 monitor address nduseropt"), "{text}");
}

/// A real Orange Pi card (asxtree/CompileKernelandAlpineLinuxforOrangePi) has `apks/aarch64/`
/// with its index but no `apks/.boot_repository`: the boot, like Alpine's, finds no repository;
/// the plan names the missing marker next to "nothing to boot from".
#[test]
fn plan_names_a_repository_without_its_boot_repository_marker() {
    let dir = tempfile::tempdir().unwrap();
    let card = dir.path().join("card");
    fs::create_dir_all(card.join("apks/aarch64")).unwrap();
    fs::write(card.join("apks/aarch64/APKINDEX.tar.gz"), b"x").unwrap();
    let keys = dir.path().join("keys");
    fs::create_dir_all(&keys).unwrap();
    let (ok, text) = plan_card(&card, &keys, &["--no-scripts"]);
    assert!(!ok, "{text}");
    assert!(text.contains("nothing to boot from"), "{text}");
    assert!(
        text.contains(
            "media/mmcblk0p1/apks/aarch64/APKINDEX.tar.gz is not used: apks/ has no \
             .boot_repository file"
        ),
        "{text}"
    );
}
