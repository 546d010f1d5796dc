//! Provisioning profiles (issue 14, point 3): every example loads, and the apkovl a profile
//! makes is applied by the boot's own apkovl step (`boot::apkovl::apply`, the checked
//! extraction the diskless boot runs) into a temporary root on the recording double, giving
//! the expected tree with modes, owners and links; the bytes are reproducible.

use ramboot::profile::Profile;
use ramboot::sys::RecordingSys;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/profiles")
        .join(name)
}

fn load(name: &str) -> Profile {
    Profile::load(&example(name)).unwrap_or_else(|e| panic!("{e}"))
}

/// Applies `profile`'s apkovl with the boot's code into a fresh root; returns (dir, root).
fn apply(profile: &Profile) -> (tempfile::TempDir, PathBuf, ramboot::boot::apkovl::Applied) {
    let d = tempfile::tempdir().unwrap();
    let host = d.path().join("host");
    fs::create_dir_all(host.join("sysroot")).unwrap();
    fs::write(host.join("p.apkovl.tar.gz"), profile.apkovl(1_700_000_000)).unwrap();
    let sys = RecordingSys::new(&host).with_privileged(true);
    let applied =
        ramboot::boot::apkovl::apply(&sys, Path::new("/sysroot"), Path::new("/p.apkovl.tar.gz"))
            .unwrap_or_else(|e| panic!("{e}"));
    (d, host.join("sysroot"), applied)
}

fn meta(root: &Path, rel: &str) -> (u32, u32, u32) {
    let m = fs::symlink_metadata(root.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    (m.mode() & 0o7777, m.uid(), m.gid())
}

fn text(root: &Path, rel: &str) -> String {
    fs::read_to_string(root.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn every_example_profile_loads() {
    let mut names: Vec<String> = fs::read_dir(example(""))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".toml"))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "kiosk.toml",
            "media-centre.toml",
            "retro-gaming.toml",
            "web-dev.toml"
        ]
    );
    for n in &names {
        let p = load(n);
        assert!(p.world().contains(&"alpine-base".to_string()), "{n}");
        assert!(p.entries().count() > 5, "{n}");
        assert!(p.warnings().is_empty(), "{n}: {:?}", p.warnings());
    }
    let kiosk = load("kiosk.toml");
    assert!(kiosk.world().contains(&"chromium".into()));
    assert!(
        kiosk.world().contains(&"tzdata".into()),
        "timezone adds tzdata"
    );
    assert_eq!(kiosk.services().ramboot, ["kiosk"]);
    assert_eq!(kiosk.cmdline_additions(), ["ramboot_init", "quiet"]);
    assert_eq!(kiosk.apkovl_name(), "kiosk.apkovl.tar.gz");
    let media = load("media-centre.toml");
    for pkg in ["kodi", "kodi-gbm", "kodi-openrc"] {
        assert!(media.world().contains(&pkg.into()), "{pkg}");
    }
    assert!(media
        .services()
        .openrc
        .contains(&("default".into(), "kodi".into())));
    assert_eq!(
        media.cmdline_additions(),
        ["ip=::::media-centre:eth0:dhcp", "quiet"]
    );
    let retro = load("retro-gaming.toml");
    assert!(retro.world().contains(&"retroarch".into()));
    assert!(retro.world().contains(&"libretro-snes9x@testing".into()));
    let web = load("web-dev.toml");
    for pkg in ["nodejs", "npm", "git"] {
        assert!(web.world().contains(&pkg.into()), "{pkg}");
    }
    assert_eq!(
        web.cmdline_additions(),
        [
            "ip=192.168.1.50::192.168.1.1:255.255.255.0:webdev.lan:eth0:none",
            "ramboot_init"
        ]
    );
}

/// The web-dev profile through the boot's apkovl step: users with their groups, home and
/// key modes and owners, the service directory, runlevel links, network and sourced files.
#[test]
fn the_boots_apkovl_step_gives_the_profiles_tree() {
    let profile = load("web-dev.toml");
    let (_d, root, applied) = apply(&profile);
    assert_eq!(applied.world, profile.world());
    assert!(applied.warnings.is_empty(), "{:?}", applied.warnings);
    assert!(applied.overlay_files.contains(&"etc/apk/world".into()));
    assert!(applied.overlay_files.contains(&"home/dev/.ssh/".into()));

    assert_eq!(text(&root, "etc/hostname"), "webdev.lan\n");
    assert!(text(&root, "etc/hosts").starts_with("127.0.0.1\twebdev.lan webdev localhost"));
    assert_eq!(
        text(&root, "etc/apk/repositories").lines().count(),
        2,
        "repositories"
    );
    assert!(text(&root, "etc/passwd").contains("\ndev:x:1000:1000:dev:/home/dev:/bin/bash\n"));
    assert!(text(&root, "etc/group").contains("\nwheel:x:10:dev\n"));
    assert!(text(&root, "etc/shadow").contains("\ndev:*::0:::::\n"));
    assert_eq!(meta(&root, "etc/shadow"), (0o640, 0, 42));
    assert_eq!(meta(&root, "home/dev"), (0o755, 1000, 1000));
    assert_eq!(meta(&root, "home/dev/.ssh"), (0o700, 1000, 1000));
    assert_eq!(
        meta(&root, "home/dev/.ssh/authorized_keys"),
        (0o600, 1000, 1000)
    );
    assert_eq!(
        meta(&root, "home/dev/app"),
        (0o755, 1000, 1000),
        "made in dev's home"
    );
    assert_eq!(meta(&root, "home/dev/app/server.js"), (0o644, 1000, 1000));
    assert!(text(&root, "home/dev/app/server.js").contains("createServer"));
    assert_eq!(meta(&root, "etc/doas.d/wheel.conf"), (0o600, 0, 0));

    let link = |rel: &str| fs::read_link(root.join(rel)).unwrap();
    assert_eq!(
        link("etc/runlevels/default/sshd"),
        Path::new("/etc/init.d/sshd")
    );
    assert_eq!(
        link("etc/runlevels/boot/networking"),
        Path::new("/etc/init.d/networking")
    );
    assert_eq!(
        link("etc/localtime"),
        Path::new("/usr/share/zoneinfo/Europe/Berlin")
    );
    assert!(root.join("etc/.default_boot_services").is_file());

    let svc = "etc/ramboot/services/app";
    assert_eq!(meta(&root, &format!("{svc}/run")).0, 0o755);
    assert!(text(&root, &format!("{svc}/run")).starts_with("#!/bin/sh\ncd /home/dev/app"));
    assert_eq!(text(&root, &format!("{svc}/user")), "dev\n");
    assert_eq!(text(&root, &format!("{svc}/env/PORT")), "3000\n");
    assert!(text(&root, "etc/network/interfaces").contains("iface eth0 inet static\n"));
    assert_eq!(
        text(&root, "etc/resolv.conf"),
        "nameserver 192.168.1.1\nnameserver 1.1.1.1\n"
    );
    // Every entry of the archive carries the mtime it was written with.
    let m = fs::symlink_metadata(root.join("etc/hostname")).unwrap();
    assert_eq!(m.mtime(), 1_700_000_000);
}

/// ramboot's service mode reads the directories the profile writes.
#[test]
fn the_supervisor_loads_the_profiles_services() {
    let profile = load("retro-gaming.toml");
    let (_d, root, _) = apply(&profile);
    let sys = RecordingSys::new(&root);
    let (defs, skipped) =
        ramboot::supervise::service_dir::load_all(&sys, Path::new("/etc/ramboot/services"));
    assert!(skipped.is_empty(), "{skipped:?}");
    let names: Vec<&str> = defs.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["retroarch", "retroarch/log"]);
    let user = defs[0].user.as_ref().expect("the user file is read");
    assert_eq!(user.1, "player");
    assert_eq!(
        fs::read_link(root.join("home/player/roms")).unwrap(),
        Path::new("/media/mmcblk0p2/roms")
    );
    assert_eq!(meta(&root, "etc/retroarch/retroarch.cfg").0, 0o644);
}

#[test]
fn the_apkovl_is_reproducible() {
    let a = load("kiosk.toml").apkovl(0);
    let b = load("kiosk.toml").apkovl(0);
    assert_eq!(a, b);
    assert_ne!(a, load("kiosk.toml").apkovl(1));
    let mut streamed = Vec::new();
    load("kiosk.toml").write_apkovl(&mut streamed, 0).unwrap();
    assert_eq!(streamed, a);
    // gzip header: no mtime, no name.
    assert_eq!(&a[..4], &[0x1f, 0x8b, 8, 0]);
    assert_eq!(&a[4..8], &[0, 0, 0, 0]);
}

/// Runs the host binary (tests may spawn it directly, as the other CLI tests do).
#[allow(clippy::disallowed_methods)]
fn ramboot(args: &[&std::ffi::OsStr], epoch: &str) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_ramboot"))
        .args(args)
        .env("SOURCE_DATE_EPOCH", epoch)
        .output()
        .unwrap()
}

/// `ramboot profile apkovl` writes the library's bytes with SOURCE_DATE_EPOCH as the mtime,
/// and says which kernel command-line words the profile needs; `check` lists the tree.
#[test]
fn the_cli_writes_the_apkovl_and_checks_profiles() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("kiosk.apkovl.tar.gz");
    let kiosk = example("kiosk.toml");
    let r = ramboot(
        &[
            "profile".as_ref(),
            "apkovl".as_ref(),
            kiosk.as_os_str(),
            "-o".as_ref(),
            out.as_os_str(),
        ],
        "1234",
    );
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(r.status.success(), "{stderr}");
    assert!(
        stderr.contains("kernel command line: add `ramboot_init quiet`"),
        "{stderr}"
    );
    assert_eq!(fs::read(&out).unwrap(), load("kiosk.toml").apkovl(1234));

    let r = ramboot(
        &["profile".as_ref(), "check".as_ref(), kiosk.as_os_str()],
        "0",
    );
    let stdout = String::from_utf8_lossy(&r.stdout);
    assert!(r.status.success());
    assert!(stdout.contains("ramboot service: kiosk\n"), "{stdout}");
    assert!(stdout.contains("openrc: sshd in default\n"), "{stdout}");
    for line in [
        "apkovl: file 0600 0:0 /root/.ssh/authorized_keys\n",
        "apkovl: dir  0755 1000:1000 /home/kiosk\n",
        "apkovl: file 0640 0:42 /etc/shadow\n",
        "kernel command line: ramboot_init quiet\n",
    ] {
        assert!(stdout.contains(line), "{line}in\n{stdout}");
    }

    let bad = d.path().join("bad.toml");
    fs::write(&bad, "hostname = \"x\"\nwrold = []\n").unwrap();
    let r = ramboot(
        &["profile".as_ref(), "check".as_ref(), bad.as_os_str()],
        "0",
    );
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(1));
    assert!(
        stderr.starts_with(&format!(
            "ramboot profile: {}:2: unknown field `wrold`",
            bad.display()
        )),
        "{stderr}"
    );
    let r = ramboot(&["profile".as_ref(), "show".as_ref(), bad.as_os_str()], "0");
    assert_eq!(r.status.code(), Some(2));
}

/// An independent reader (the `tar` crate, as busybox or GNU tar would) sees the same archive:
/// entries sorted, directories with a trailing slash, numeric owners with their names, every
/// mtime the one given, link targets.
#[test]
fn an_independent_tar_reader_agrees() {
    let profile = load("kiosk.toml");
    let bytes = profile.apkovl(42);
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
    let mut names = Vec::new();
    for e in archive.entries().unwrap() {
        let e = e.unwrap();
        let h = e.header();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        assert_eq!(h.mtime().unwrap(), 42, "{name}");
        match name.as_str() {
            "home/kiosk/" => {
                assert_eq!(h.entry_type(), tar::EntryType::Directory);
                assert_eq!((h.uid().unwrap(), h.gid().unwrap()), (1000, 1000));
                assert_eq!(h.username().unwrap(), Some("kiosk"));
            }
            "etc/kiosk/url" => {
                assert_eq!((h.uid().unwrap(), h.gid().unwrap()), (0, 1000));
                assert_eq!(h.groupname().unwrap(), Some("kiosk"));
            }
            "etc/runlevels/default/seatd" => {
                assert_eq!(h.entry_type(), tar::EntryType::Symlink);
                let target = e.link_name().unwrap().unwrap();
                assert_eq!(target, Path::new("/etc/init.d/seatd"));
            }
            _ => {}
        }
        names.push(name.trim_end_matches('/').to_string());
    }
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    for want in ["home/kiosk", "etc/kiosk/url", "etc/runlevels/default/seatd"] {
        assert!(names.contains(&want.to_string()), "{want}");
    }
}

/// The whole boot (`ramboot plan` over a card's files) takes the profile's apkovl from the
/// media: every entry unpacked, Alpine's default services added because of the marker, the
/// profile's world asked for.
#[test]
fn a_planned_boot_applies_the_profiles_apkovl() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    let card = root.join("media/mmcblk0p1");
    fs::create_dir_all(card.join("apks")).unwrap();
    fs::write(card.join("apks/.boot_repository"), b"").unwrap();
    let profile = load("kiosk.toml");
    fs::write(card.join(profile.apkovl_name()), profile.apkovl(0)).unwrap();
    fs::create_dir_all(root.join("sysroot/sbin")).unwrap();
    let init = root.join("sysroot/sbin/init");
    fs::write(&init, b"#!/bin/sh\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&init, fs::Permissions::from_mode(0o755)).unwrap();
    let cmdline = format!("console=ttyS0 {}", profile.cmdline_additions().join(" "));
    let out = ramboot(
        &[
            "plan".as_ref(),
            "--root".as_ref(),
            root.as_os_str(),
            "--cmdline".as_ref(),
            cmdline.as_ref(),
        ],
        "0",
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let want = [
        "apkovl: /media/mmcblk0p1/kiosk.apkovl.tar.gz (found on the boot media".to_string(),
        format!(
            "  {} entries unpacked into /sysroot\n",
            profile.entries().count()
        ),
        "default services: added".to_string(),
        format!("packages asked for: {}\n", profile.world().join(" ")),
    ];
    for w in want {
        assert!(text.contains(&w), "{w}\nin\n{text}");
    }
}
