//! The discovery driver against a fake /sys, fake /dev images, pre-filled /media trees (what the
//! mount would show) and scripted uevents on the double's fake clock.
// Tests drive real tools and processes (QEMU, mkfs, the built binary): the system boundary
// lint is for the library.
#![allow(clippy::disallowed_methods)]

mod support;

use ramboot::hw::discover::{discover, discover_with, DiscoverConfig, Ending, Goal};
use ramboot::hw::modules::ModuleLoader;
use ramboot::hw::DeviceSpec;
use ramboot::sys::{RecordingSys, Uevent, UeventRecv, UeventSource};
use std::collections::VecDeque;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::hw::*;

const MS: fn(u64) -> Duration = Duration::from_millis;

struct World {
    dir: tempfile::TempDir,
    sys: RecordingSys,
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        standard_modules(dir.path());
        let sys = RecordingSys::new(dir.path()).with_kernel_release(RELEASE);
        World { dir, sys }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    /// What `/media/<dev>` shows once mounted.
    fn media(&self, dev: &str, files: &[&str]) {
        for f in files {
            let p = self.root().join("media").join(dev).join(f);
            if f.ends_with('/') {
                fs::create_dir_all(p).unwrap();
            } else {
                fs::create_dir_all(p.parent().unwrap()).unwrap();
                fs::write(p, b"x").unwrap();
            }
        }
    }

    /// A disk with an MBR (signature 0x5e29a4d6) and a FAT16 first partition in sysfs and /dev.
    fn fat_disk(&self, disk: &str, part: &str, major: u32, serial: u32) {
        sys_block(self.root(), disk, major, 0, None, 16384, false);
        sys_block(self.root(), part, major, 1, Some((1, disk)), 2048, false);
        dev_file(self.root(), disk, &mbr(0x5e29a4d6));
        dev_file(self.root(), part, &fat16_image(serial, Some("ALPINE")));
    }

    fn trace(&self) -> Vec<String> {
        self.sys.trace()
    }
}

fn mbr(sig: u32) -> Vec<u8> {
    let mut d = vec![0u8; 4096];
    d[440..444].copy_from_slice(&sig.to_le_bytes());
    d[446 + 4] = 0x0c;
    d[446 + 16 + 4] = 0x83;
    d[510] = 0x55;
    d[511] = 0xAA;
    d
}

fn ev(action: &str, devpath: &str, vars: &[(&str, &str)]) -> UeventRecv {
    let mut vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    vars.push(("ACTION".into(), action.into()));
    vars.push(("DEVPATH".into(), devpath.into()));
    UeventRecv::Event(Uevent {
        action: action.into(),
        devpath: devpath.into(),
        vars,
    })
}

/// A block `add` for a device that sysfs does not list (it appears after coldplug).
fn block_add(disk: &str, part: Option<(&str, &str)>, major: &str, minor: &str) -> UeventRecv {
    let (devpath, name, extra): (String, &str, Vec<(&str, &str)>) = match part {
        None => (
            format!("/devices/usb1/host0/block/{disk}"),
            disk,
            vec![("DEVTYPE", "disk")],
        ),
        Some((p, n)) => (
            format!("/devices/usb1/host0/block/{disk}/{p}"),
            p,
            vec![("DEVTYPE", "partition"), ("PARTN", n)],
        ),
    };
    let mut vars = vec![
        ("SUBSYSTEM", "block"),
        ("DEVNAME", name),
        ("MAJOR", major),
        ("MINOR", minor),
    ];
    vars.extend(extra);
    ev("add", &devpath, &vars)
}

fn media_goal() -> Goal {
    Goal::Media {
        want_repository: true,
        want_apkovl: true,
    }
}

fn index_of(trace: &[String], needle: &str) -> usize {
    trace
        .iter()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not in {trace:#?}"))
}

#[test]
fn coldplug_finds_boot_media_without_waiting() {
    let w = World::new();
    sys_modalias(
        w.root(),
        "pci0000:00/0000:00:01.0",
        "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00",
    );
    sys_modalias(
        w.root(),
        "pci0000:00/0000:00:01.0/virtio0",
        "virtio:d00000002v00001AF4",
    );
    sys_modalias(w.root(), "platform/serial", "platform:unknown-device");
    w.fat_disk("vda", "vda1", 254, 0x1234ABCD);
    w.media(
        "vda1",
        &[
            "apks/.boot_repository",
            "apks/aarch64/APKINDEX.tar.gz",
            "host.apkovl.tar.gz",
            "boot/x",
        ],
    );
    let loader = ModuleLoader::open(&w.sys).unwrap();
    let d = discover(&w.sys, Some(&loader), &DiscoverConfig::new(media_goal()));

    assert_eq!(d.ending, Ending::Found);
    assert_eq!(d.ready_at, Some(Duration::ZERO));
    assert_eq!(d.finished, Duration::ZERO, "no waiting at all");
    for m in [
        "virtio_pci",
        "virtio_blk",
        "vfat",
        "fat",
        "nls_cp437",
        "nls_ascii",
    ] {
        assert!(
            d.modules.loaded.contains(&m.to_string()),
            "{m}: {:?}",
            d.modules
        );
    }
    let t = w.trace();
    assert_eq!(
        t[0], "uevent-listen 4194304",
        "listen before the sysfs walk"
    );
    let mount = index_of(&t, "mount -t vfat -o ro /dev/vda1 /media/vda1");
    assert!(index_of(&t, "vfat.ko") < mount && index_of(&t, "nls_cp437.ko") < mount);
    assert!(
        !t.iter().any(|l| l.contains("/dev/vda ")),
        "the partitioned disk itself has no filesystem"
    );
    assert_eq!(d.boot_repositories, [PathBuf::from("/media/vda1/apks")]);
    let ovl = d.apkovl.as_ref().unwrap();
    assert_eq!(
        ovl.chosen.path,
        PathBuf::from("/media/vda1/host.apkovl.tar.gz")
    );
    assert!(d.warnings.is_empty(), "{:?}", d.warnings);
    let vda1 = d
        .devices
        .iter()
        .find(|s| s.info.dev.name == "vda1")
        .unwrap();
    assert_eq!(vda1.info.dev.parent.as_deref(), Some("vda"));
    assert_eq!(vda1.info.part.partuuid.as_deref(), Some("5e29a4d6-01"));
    assert_eq!(
        vda1.info.probe.as_ref().unwrap().uuid.as_deref(),
        Some("1234-ABCD")
    );
    assert_eq!(d.kept_media().len(), 1);
}

#[test]
fn late_usb_stick_brings_the_apkovl() {
    let w = World::new();
    w.fat_disk("mmcblk0", "mmcblk0p1", 179, 1);
    w.media("mmcblk0p1", &["apks/.boot_repository", "cache/"]);
    dev_file(w.root(), "sda", &mbr(0xabcdef01));
    dev_file(w.root(), "sda1", &fat16_image(2, Some("STICK")));
    w.media("sda1", &["pi.apkovl.tar.gz"]);
    w.sys.push_uevent_after(
        MS(100),
        ev(
            "add",
            "/devices/usb1/1-1/1-1:1.0",
            &[
                ("SUBSYSTEM", "usb"),
                (
                    "MODALIAS",
                    "usb:v0781p5567d0100dc00dsc00dp00ic08isc06ip50in00",
                ),
            ],
        ),
    );
    w.sys
        .push_uevent_after(MS(50), block_add("sda", None, "8", "0"));
    w.sys
        .push_uevent(block_add("sda", Some(("sda1", "1")), "8", "1"));
    let loader = ModuleLoader::open(&w.sys).unwrap();
    let d = discover(&w.sys, Some(&loader), &DiscoverConfig::new(media_goal()));

    assert_eq!(d.ending, Ending::Found);
    assert_eq!(d.ready_at, Some(MS(150)));
    assert!(d.modules.loaded.contains(&"usb_storage".to_string()));
    let sda1 = d
        .devices
        .iter()
        .find(|s| s.info.dev.name == "sda1")
        .unwrap();
    assert_eq!(sda1.appeared, MS(150));
    assert_eq!(sda1.info.part.partuuid.as_deref(), Some("abcdef01-01"));
    assert_eq!(
        d.devices
            .iter()
            .find(|s| s.info.dev.name == "mmcblk0p1")
            .unwrap()
            .appeared,
        Duration::ZERO
    );
    assert_eq!(
        d.boot_repositories,
        [PathBuf::from("/media/mmcblk0p1/apks")]
    );
    assert_eq!(d.caches, [PathBuf::from("/media/mmcblk0p1/cache")]);
    assert_eq!(
        d.apkovl.unwrap().chosen.path,
        PathBuf::from("/media/sda1/pi.apkovl.tar.gz")
    );
    // The whole disk sda has no filesystem: not mounted.
    assert!(w
        .trace()
        .iter()
        .any(|l| l == "mount -t vfat -o ro /dev/sda1 /media/sda1"));
}

#[test]
fn repository_without_apkovl_settles_after_the_quiet_period() {
    let w = World::new();
    w.fat_disk("vda", "vda1", 254, 1);
    w.media("vda1", &["apks/.boot_repository"]);
    let loader = ModuleLoader::open(&w.sys).unwrap();
    let d = discover(&w.sys, Some(&loader), &DiscoverConfig::new(media_goal()));
    assert_eq!(d.ending, Ending::Settled);
    assert_eq!(d.finished, MS(250));
    assert_eq!(d.ready_at, None);
    assert_eq!(d.boot_repositories.len(), 1);

    // usbdelay=2 makes the quiet period 2 s.
    let w = World::new();
    w.fat_disk("vda", "vda1", 254, 1);
    w.media("vda1", &["apks/.boot_repository"]);
    let cfg = DiscoverConfig::new(media_goal()).with_usbdelay(Duration::from_secs(2));
    let d = discover(&w.sys, None, &cfg);
    assert_eq!(
        (d.ending, d.finished),
        (Ending::Settled, Duration::from_secs(2))
    );
}

#[test]
fn nothing_found_times_out_and_usb_storage_extends_the_wait() {
    let w = World::new();
    let d = discover(&w.sys, None, &DiscoverConfig::new(media_goal()));
    assert_eq!(
        (d.ending, d.finished, d.ready_at),
        (Ending::TimedOut, Duration::from_secs(5), None)
    );

    // A USB mass-storage device at coldplug: +1 s for it to show its disks.
    let w = World::new();
    sys_modalias(
        w.root(),
        "usb1/1-1/1-1:1.0",
        "usb:v0781p5567d0100dc00dsc00dp00ic08isc06ip50in00",
    );
    let loader = ModuleLoader::open(&w.sys).unwrap();
    let d = discover(&w.sys, Some(&loader), &DiscoverConfig::new(media_goal()));
    assert_eq!(
        (d.ending, d.finished),
        (Ending::TimedOut, Duration::from_secs(6))
    );

    // Each event restarts the idle timer (nlplug's poll timeout).
    let w = World::new();
    w.sys.push_uevent_after(
        Duration::from_secs(4),
        ev("add", "/devices/virtual/misc/x", &[("SUBSYSTEM", "misc")]),
    );
    let d = discover(&w.sys, None, &DiscoverConfig::new(media_goal()));
    assert_eq!(d.finished, Duration::from_secs(9));
}

#[test]
fn unused_media_is_unmounted_and_mount_failures_are_skipped() {
    let w = World::new();
    w.fat_disk("vda", "vda1", 254, 1);
    w.media("vda1", &["photos/a.jpg"]);
    sys_block(w.root(), "vdb", 254, 16, None, 4096, false);
    dev_file(w.root(), "vdb", &ext_image(4, 0x2c2, 3, [7; 16], "data"));
    w.sys.fail_on("/dev/vdb", 22);
    let loader = ModuleLoader::open(&w.sys).unwrap();
    let d = discover(&w.sys, Some(&loader), &DiscoverConfig::new(media_goal()));
    assert_eq!(d.ending, Ending::TimedOut);
    let t = w.trace();
    assert!(t.contains(&"umount /media/vda1".to_string()), "{t:#?}");
    let vdb = d.devices.iter().find(|s| s.info.dev.name == "vdb").unwrap();
    assert!(
        vdb.error.as_ref().unwrap().contains("/dev/vdb (ext4)"),
        "{:?}",
        vdb.error
    );
    assert!(d.modules.loaded.contains(&"ext4".to_string()));
    assert!(d.kept_media().is_empty());
}

#[test]
fn vfat_einval_loads_more_character_sets_and_retries() {
    let w = World::new();
    let mut m = FakeModules::new(w.root());
    // The standard tree plus nls_utf8.
    drop(standard_modules(w.root()));
    m.module("kernel/fs/nls/nls_utf8.ko", &[])
        .alias("fs-vfat", "vfat");
    let dep = fs::read_to_string(m.dir.join("modules.dep")).unwrap();
    fs::write(
        m.dir.join("modules.dep"),
        format!("{dep}kernel/fs/nls/nls_utf8.ko:\n"),
    )
    .unwrap();
    w.fat_disk("vda", "vda1", 254, 1);
    w.media("vda1", &["a.apkovl.tar.gz"]);
    w.sys.fail_on("mount -t vfat", 22);
    let loader = ModuleLoader::open(&w.sys).unwrap();
    let d = discover(
        &w.sys,
        Some(&loader),
        &DiscoverConfig::new(Goal::Media {
            want_repository: false,
            want_apkovl: true,
        }),
    );
    let t = w.trace();
    let first = index_of(&t, "mount -t vfat");
    let utf8 = index_of(&t, "nls_utf8.ko");
    assert!(
        first < utf8 && t[utf8 + 1..].iter().any(|l| l.starts_with("mount -t vfat")),
        "{t:#?}"
    );
    assert!(d.devices[1].error.is_some());
}

#[test]
fn several_apkovls_pick_by_rule_and_warn() {
    let w = World::new();
    w.fat_disk("vdb", "vdb1", 254, 2);
    w.fat_disk("vda", "vda1", 254, 1);
    w.media("vda1", &["apks/.boot_repository", "old.apkovl.tar.gz"]);
    w.media("vdb1", &["web.apkovl.tar.gz"]);
    let mut cfg = DiscoverConfig::new(media_goal());
    let d = discover(&w.sys, None, &cfg);
    assert_eq!(
        d.apkovl.as_ref().unwrap().chosen.path,
        PathBuf::from("/media/vda1/old.apkovl.tar.gz")
    );
    assert!(d
        .warnings
        .iter()
        .any(|w| w.contains("several apkovls") && w.contains("/media/vdb1/web.apkovl.tar.gz")));
    // Both were scanned although the goal was met after the first: coldplug handles every present device.
    assert_eq!(d.apkovls.len(), 2);

    let w = World::new();
    w.fat_disk("vda", "vda1", 254, 1);
    w.fat_disk("vdb", "vdb1", 254, 2);
    w.media("vda1", &["apks/.boot_repository", "old.apkovl.tar.gz"]);
    w.media("vdb1", &["web.apkovl.tar.gz"]);
    cfg.hostname = Some("web".into());
    let d = discover(&w.sys, None, &cfg);
    assert_eq!(
        d.apkovl.unwrap().chosen.path,
        PathBuf::from("/media/vdb1/web.apkovl.tar.gz")
    );
}

#[test]
fn root_by_uuid_at_coldplug_mounts_nothing() {
    let w = World::new();
    sys_block(w.root(), "vda", 254, 0, None, 16384, false);
    sys_block(w.root(), "vda1", 254, 1, Some((1, "vda")), 2048, false);
    sys_block(w.root(), "vda2", 254, 2, Some((2, "vda")), 8192, false);
    dev_file(w.root(), "vda", &mbr(0x11223344));
    dev_file(w.root(), "vda1", &fat16_image(1, None));
    dev_file(
        w.root(),
        "vda2",
        &ext_image(4, 0x2c2, 3, [0xab; 16], "rootfs"),
    );
    for spec in [
        "UUID=abababab-abab-abab-abab-abababababab",
        "LABEL=rootfs",
        "PARTUUID=11223344-02",
        "/dev/vda2",
        "254:2",
    ] {
        let d = discover(
            &w.sys,
            None,
            &DiscoverConfig::new(Goal::Root(DeviceSpec::parse(spec).unwrap())),
        );
        assert_eq!(d.ending, Ending::Found, "{spec}");
        assert_eq!(d.root.as_ref().unwrap().dev.name, "vda2", "{spec}");
        assert_eq!(d.ready_at, Some(Duration::ZERO));
    }
    assert!(!w.trace().iter().any(|l| l.starts_with("mount")));
}

#[test]
fn root_appearing_late_and_root_never_appearing() {
    let w = World::new();
    dev_file(w.root(), "sda", &mbr(0x5e29a4d6));
    dev_file(w.root(), "sda2", &ext_image(4, 0x2c2, 3, [1; 16], "r"));
    w.sys
        .push_uevent_after(MS(1500), block_add("sda", None, "8", "0"));
    w.sys
        .push_uevent(block_add("sda", Some(("sda1", "1")), "8", "1"));
    w.sys
        .push_uevent(block_add("sda", Some(("sda2", "2")), "8", "2"));
    let d = discover(
        &w.sys,
        None,
        &DiscoverConfig::new(Goal::Root(
            DeviceSpec::parse("PARTUUID=5e29a4d6-02").unwrap(),
        )),
    );
    assert_eq!(d.ending, Ending::Found);
    assert_eq!(d.ready_at, Some(MS(1500)));
    let root = d.root.unwrap();
    assert_eq!(root.probe.unwrap().fstype.as_str(), "ext4");
    assert_eq!(root.dev.partition, Some(2));

    let w = World::new();
    let d = discover(
        &w.sys,
        None,
        &DiscoverConfig::new(Goal::Root(DeviceSpec::parse("LABEL=nope").unwrap())),
    );
    assert_eq!(
        (d.ending, d.root.is_none(), d.finished),
        (Ending::TimedOut, true, Duration::from_secs(5))
    );
}

#[test]
fn drivers_goal_does_not_wait() {
    let w = World::new();
    sys_modalias(w.root(), "virtio0", "virtio:d00000002v00001AF4");
    let loader = ModuleLoader::open(&w.sys).unwrap();
    let d = discover(&w.sys, Some(&loader), &DiscoverConfig::new(Goal::Drivers));
    assert_eq!((d.ending, d.finished), (Ending::Found, Duration::ZERO));
    assert_eq!(d.modules.loaded, ["virtio_blk"]);
}

/// A uevent source whose script can change the fake tree just before an item is delivered.
struct Hooked {
    sys: RecordingSys,
    script: VecDeque<(Box<dyn FnOnce() + Send>, UeventRecv)>,
}

impl UeventSource for Hooked {
    fn recv(&mut self, timeout: Duration) -> io::Result<UeventRecv> {
        match self.script.pop_front() {
            Some((hook, item)) => {
                hook();
                Ok(item)
            }
            None => {
                self.sys.advance(timeout);
                Ok(UeventRecv::Timeout)
            }
        }
    }
}

#[test]
fn overflow_rescans_sysfs() {
    let w = World::new();
    let root = w.root().to_path_buf();
    let hook: Box<dyn FnOnce() + Send> = Box::new(move || {
        // Devices appear while the events announcing them are lost.
        sys_modalias(&root, "virtio1", "virtio:d00000002v00001AF4");
        sys_block(&root, "vdb", 254, 16, None, 2048, false);
        dev_file(&root, "vdb", &fat16_image(3, None));
        let p = root.join("media/vdb/apks");
        fs::create_dir_all(&p).unwrap();
        fs::write(p.join(".boot_repository"), b"").unwrap();
        fs::write(root.join("media/vdb/h.apkovl.tar.gz"), b"").unwrap();
    });
    let src = Hooked {
        sys: w.sys.clone(),
        script: VecDeque::from([(hook, UeventRecv::Overflow)]),
    };
    let loader = ModuleLoader::open(&w.sys).unwrap();
    let d = discover_with(
        &w.sys,
        Some(&loader),
        &DiscoverConfig::new(media_goal()),
        Some(Box::new(src)),
    );
    assert_eq!(d.overflows, 1);
    assert_eq!(d.ending, Ending::Found);
    assert_eq!(
        d.modules
            .loaded
            .iter()
            .filter(|m| *m == "virtio_blk")
            .count(),
        1
    );
    assert_eq!(d.boot_repositories, [PathBuf::from("/media/vdb/apks")]);
}

#[test]
fn no_uevent_socket_means_one_pass() {
    let w = World::new();
    w.fat_disk("vda", "vda1", 254, 1);
    w.media("vda1", &["apks/.boot_repository"]);
    w.sys.fail_on("uevent-listen", 93);
    let d = discover(&w.sys, None, &DiscoverConfig::new(media_goal()));
    assert_eq!(d.ending, Ending::NoUevents);
    assert!(d.warnings[0].contains("cannot listen"));
    assert_eq!(d.boot_repositories.len(), 1);
}

#[test]
fn already_mounted_media_needs_no_superblock() {
    // A device listed in /proc/mounts whose node cannot be probed (no /dev file at all): it is
    // scanned where it is mounted, typed from /proc/mounts, and never mounted again.
    let w = World::new();
    sys_block(
        w.root(),
        "mmcblk0p1",
        179,
        1,
        Some((1, "mmcblk0")),
        2048,
        false,
    );
    w.media("mmcblk0p1", &["apks/.boot_repository", "rpi.apkovl.tar.gz"]);
    fs::create_dir_all(w.root().join("proc")).unwrap();
    fs::write(
        w.root().join("proc/mounts"),
        "/dev/mmcblk0p1 /media/mmcblk0p1 vfat ro 0 0\n",
    )
    .unwrap();
    let d = discover(&w.sys, None, &DiscoverConfig::new(media_goal()));
    assert_eq!(d.ending, Ending::Found);
    assert_eq!(
        d.boot_repositories,
        [PathBuf::from("/media/mmcblk0p1/apks")]
    );
    assert_eq!(
        d.apkovl.as_ref().unwrap().chosen.path,
        PathBuf::from("/media/mmcblk0p1/rpi.apkovl.tar.gz")
    );
    let m = d.kept_media();
    assert!(m[0].already);
    assert_eq!(m[0].fstype.as_str(), "vfat");
    assert!(
        !w.trace().iter().any(|l| l.starts_with("mount")),
        "{:?}",
        w.trace()
    );
}

/// Devices a coldplug driver registers while it loads (virtio_pci and the virtio devices behind
/// it) get their drivers too, even when the goal waits for nothing after coldplug: before this,
/// a boot needing only the network (apkovl=URL, alpine_repo=URL) never loaded virtio_net and
/// found no interface.
#[test]
fn devices_made_by_coldplugs_own_drivers_get_drivers_too() {
    let w = World::new();
    sys_modalias(
        w.root(),
        "pci0000:00/0000:00:01.0",
        "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00",
    );
    w.sys.on_module_load("virtio_pci", |root| {
        sys_modalias(
            root,
            "pci0000:00/0000:00:01.0/virtio0",
            "virtio:d00000002v00001AF4",
        );
    });
    let loader = ModuleLoader::open(&w.sys).unwrap();
    let goal = Goal::Media {
        want_repository: false,
        want_apkovl: false,
    };
    let d = discover(&w.sys, Some(&loader), &DiscoverConfig::new(goal));
    let mut loaded = d.modules.loaded.clone();
    loaded.sort();
    assert_eq!(loaded, ["virtio_blk", "virtio_pci"], "{:#?}", w.trace());
}
