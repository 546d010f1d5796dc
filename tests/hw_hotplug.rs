//! Hotplug after boot (system mode) on the recording double: recorded uevents of a USB stick
//! arriving and leaving, a fake sysfs laid out like the kernel's, a fake module tree.
// Tests build fake trees with plain file operations: the system boundary lint is for the
// library.
#![allow(clippy::disallowed_methods)]

mod support;

use ramboot::hw::hotplug::{through_usb, Line, Listener};
use ramboot::hw::modules::ModuleLoader;
use ramboot::sys::{RecordingSys, Sys, Uevent, UeventRecv};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::hw::*;

/// Where the kernel puts a USB stick's disk: below the xHCI controller's root hub `usb2`.
const USB_HOST: &str = "/devices/platform/4010000000.pcie/pci0000:00/0000:00:02.0/usb2/2-1";
const USB_STORAGE_ALIAS: &str = "usb:v46F4p0001d0000dc00dsc00dp00ic08isc06ip50in00";

struct World {
    dir: tempfile::TempDir,
    sys: RecordingSys,
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let mut modules = standard_modules(dir.path());
        modules
            .module("kernel/drivers/scsi/sd_mod.ko", &[])
            .alias("scsi:t-0x00*", "sd_mod");
        modules.write();
        fs::create_dir_all(dir.path().join("dev")).unwrap();
        let sys = RecordingSys::new(dir.path()).with_kernel_release(RELEASE);
        World { dir, sys }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    /// A disk (and its partitions) in sysfs below `parent` (a `/devices/…` path), as
    /// `/sys/class/block` links; returns the disk's devpath.
    fn disk(&self, parent: &str, name: &str, major: u32, partitions: u32) -> String {
        let devpath = format!("{parent}/host0/target0:0:0/0:0:0:0/block/{name}");
        let dir = self
            .root()
            .join("sys")
            .join(devpath.trim_start_matches('/'));
        let class = self.root().join("sys/class/block");
        fs::create_dir_all(&class).unwrap();
        for n in 0..=partitions {
            let (entry, node) = match n {
                0 => (dir.clone(), name.to_string()),
                n => (dir.join(format!("{name}{n}")), format!("{name}{n}")),
            };
            fs::create_dir_all(&entry).unwrap();
            fs::write(entry.join("dev"), format!("{major}:{n}\n")).unwrap();
            if n > 0 {
                fs::write(entry.join("partition"), format!("{n}\n")).unwrap();
            }
            std::os::unix::fs::symlink(&entry, class.join(&node)).unwrap();
            fs::write(self.root().join("dev").join(&node), b"").unwrap();
        }
        devpath
    }

    /// The disk gone from sysfs and devtmpfs, as the kernel does before `remove` arrives.
    fn unplug(&self, names: &[&str]) {
        for n in names {
            let _ = fs::remove_file(self.root().join("sys/class/block").join(n));
            let _ = fs::remove_file(self.root().join("dev").join(n));
        }
    }

    fn link(&self, name: &str) -> Option<PathBuf> {
        fs::read_link(self.root().join("dev").join(name)).ok()
    }

    fn loads(&self) -> Vec<String> {
        self.sys
            .trace()
            .into_iter()
            .filter(|l| l.starts_with("insmod"))
            .collect()
    }
}

fn event(action: &str, devpath: &str, vars: &[(&str, &str)]) -> UeventRecv {
    let mut all = vec![
        ("ACTION".to_string(), action.to_string()),
        ("DEVPATH".to_string(), devpath.to_string()),
    ];
    all.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    UeventRecv::Event(Uevent {
        action: action.into(),
        devpath: devpath.into(),
        vars: all,
    })
}

fn block_event(action: &str, devpath: &str, name: &str, partition: Option<u32>) -> UeventRecv {
    let partn = partition.map(|n| n.to_string()).unwrap_or_default();
    let mut vars = vec![
        ("SUBSYSTEM", "block"),
        ("DEVNAME", name),
        ("MAJOR", "8"),
        ("MINOR", "0"),
    ];
    match partition {
        Some(_) => vars.extend([("DEVTYPE", "partition"), ("PARTN", partn.as_str())]),
        None => vars.push(("DEVTYPE", "disk")),
    }
    event(action, devpath, &vars)
}

/// Feeds every queued event to a listener; returns what it logged.
fn run(w: &World, events: Vec<UeventRecv>) -> Vec<Line> {
    let loader = ModuleLoader::open(&w.sys).unwrap().with_max_threads(1);
    let mut listener = Listener::new(&w.sys, Some(&loader));
    let n = events.len();
    for ev in events {
        w.sys.push_uevent(ev);
    }
    let mut src = w.sys.uevents(1 << 20).unwrap();
    let mut lines = Vec::new();
    for _ in 0..n {
        lines.extend(listener.next(src.as_mut(), Duration::from_secs(1)).unwrap());
    }
    lines
}

fn texts(lines: &[Line], level: log::Level) -> Vec<&str> {
    lines
        .iter()
        .filter(|(l, _)| *l == level)
        .map(|(_, t)| t.as_str())
        .collect()
}

/// The events of a USB stick with one partition, in the kernel's order.
fn stick_arrives(w: &World, name: &str) -> Vec<UeventRecv> {
    let disk = w.disk(USB_HOST, name, 8, 1);
    vec![
        event(
            "add",
            &format!("{USB_HOST}/2-1:1.0"),
            &[("SUBSYSTEM", "usb"), ("MODALIAS", USB_STORAGE_ALIAS)],
        ),
        event(
            "add",
            &format!("{USB_HOST}/host0/target0:0:0/0:0:0:0"),
            &[("SUBSYSTEM", "scsi"), ("MODALIAS", "scsi:t-0x00")],
        ),
        block_event("add", &disk, name, None),
        block_event(
            "add",
            &format!("{disk}/{name}1"),
            &format!("{name}1"),
            Some(1),
        ),
    ]
}

#[test]
fn a_usb_stick_gets_its_drivers_and_links_which_go_with_it() {
    let w = World::new();
    let lines = run(&w, stick_arrives(&w, "sda"));
    let loads = w.loads();
    assert!(
        loads.iter().any(|l| l.contains("usb-storage.ko")),
        "{loads:?}"
    );
    assert!(loads.iter().any(|l| l.contains("sd_mod.ko")), "{loads:?}");
    assert_eq!(w.link("usbdisk"), Some(PathBuf::from("sda")));
    assert_eq!(w.link("usbdisk1"), Some(PathBuf::from("sda1")));
    assert_eq!(
        texts(&lines, log::Level::Info),
        [
            format!("hotplug: loaded usb_storage for {USB_HOST}/2-1:1.0"),
            format!("hotplug: loaded sd_mod for {USB_HOST}/host0/target0:0:0/0:0:0:0"),
            "hotplug: /dev/usbdisk -> sda".into(),
            "hotplug: /dev/usbdisk1 -> sda1".into(),
        ]
    );
    assert!(texts(&lines, log::Level::Warn).is_empty(), "{lines:?}");

    // Pulled out: partition first, then the disk; the kernel removed the nodes already.
    let disk = format!("{USB_HOST}/host0/target0:0:0/0:0:0:0/block/sda");
    w.unplug(&["sda1", "sda"]);
    let lines = run(
        &w,
        vec![
            block_event("remove", &format!("{disk}/sda1"), "sda1", Some(1)),
            block_event("remove", &disk, "sda", None),
        ],
    );
    assert_eq!(w.link("usbdisk"), None);
    assert_eq!(w.link("usbdisk1"), None);
    assert_eq!(
        texts(&lines, log::Level::Info),
        [
            "hotplug: /dev/usbdisk1 removed (sda1 is gone)",
            "hotplug: /dev/usbdisk removed (sda is gone)",
        ]
    );
}

#[test]
fn the_first_usb_disk_keeps_the_name_and_a_second_gets_none_of_its_links() {
    let w = World::new();
    let mut events = stick_arrives(&w, "sda");
    let second = "/devices/platform/4010000000.pcie/pci0000:00/0000:00:02.0/usb2/2-2";
    let disk_b = w.disk(second, "sdb", 8, 1);
    events.push(block_event("add", &disk_b, "sdb", None));
    events.push(block_event(
        "add",
        &format!("{disk_b}/sdb1"),
        "sdb1",
        Some(1),
    ));
    run(&w, events);
    assert_eq!(w.link("usbdisk"), Some(PathBuf::from("sda")));
    assert_eq!(w.link("usbdisk1"), Some(PathBuf::from("sda1")));
    // The second disk's removal touches nothing of the first's.
    w.unplug(&["sdb1", "sdb"]);
    run(&w, vec![block_event("remove", &disk_b, "sdb", None)]);
    assert_eq!(w.link("usbdisk"), Some(PathBuf::from("sda")));
}

#[test]
fn a_stale_usbdisk_link_is_replaced_by_the_next_stick() {
    let w = World::new();
    std::os::unix::fs::symlink("sdz", w.root().join("dev/usbdisk")).unwrap();
    run(&w, stick_arrives(&w, "sdc"));
    assert_eq!(w.link("usbdisk"), Some(PathBuf::from("sdc")));
}

#[test]
fn disks_not_on_usb_get_no_link_and_an_optical_drive_gets_cdrom() {
    let w = World::new();
    let sata = "/devices/platform/ahci/ata1";
    let disk = w.disk(sata, "sda", 8, 0);
    let cd = w.disk(sata, "sr0", 11, 0);
    let lines = run(
        &w,
        vec![
            block_event("add", &disk, "sda", None),
            block_event("add", &cd, "sr0", None),
            // A disc inserted: `change` on the same device changes nothing.
            block_event("change", &cd, "sr0", None),
        ],
    );
    assert_eq!(w.link("usbdisk"), None);
    assert_eq!(w.link("cdrom"), Some(PathBuf::from("sr0")));
    assert_eq!(
        texts(&lines, log::Level::Info),
        ["hotplug: /dev/cdrom -> sr0"]
    );
    w.unplug(&["sr0"]);
    run(&w, vec![block_event("remove", &cd, "sr0", None)]);
    assert_eq!(w.link("cdrom"), None);
}

#[test]
fn the_blacklist_and_options_of_the_boot_apply() {
    let w = World::new();
    fs::create_dir_all(w.root().join("etc/modprobe.d")).unwrap();
    fs::write(
        w.root().join("etc/modprobe.d/local.conf"),
        "blacklist sd_mod\noptions usb-storage delay_use=0\n",
    )
    .unwrap();
    run(&w, stick_arrives(&w, "sda"));
    let loads = w.loads();
    assert!(
        loads
            .iter()
            .any(|l| l.contains("usb-storage.ko") && l.contains("delay_use=0")),
        "{loads:?}"
    );
    assert!(!loads.iter().any(|l| l.contains("sd_mod")), "{loads:?}");
}

#[test]
fn a_module_that_fails_is_one_warning_and_the_links_still_come() {
    let w = World::new();
    w.sys.fail_on("usb-storage.ko", 1);
    let lines = run(&w, stick_arrives(&w, "sda"));
    let warnings = texts(&lines, log::Level::Warn);
    assert_eq!(warnings.len(), 1, "{lines:?}");
    assert!(
        warnings[0].starts_with(&format!(
            "hotplug: cannot load usb_storage for {USB_HOST}/2-1:1.0: "
        )),
        "{warnings:?}"
    );
    assert_eq!(w.link("usbdisk"), Some(PathBuf::from("sda")));
}

#[test]
fn devices_present_at_start_and_after_an_overflow_are_handled_once() {
    let w = World::new();
    sys_modalias(w.root(), "platform/usbhost/2-1:1.0", USB_STORAGE_ALIAS);
    w.disk(USB_HOST, "sda", 8, 1);
    let loader = ModuleLoader::open(&w.sys).unwrap().with_max_threads(1);
    let mut listener = Listener::new(&w.sys, Some(&loader));
    let lines = listener.coldplug();
    assert_eq!(
        texts(&lines, log::Level::Info),
        [
            "hotplug: loaded usb_storage for devices present",
            "hotplug: /dev/usbdisk -> sda",
            "hotplug: /dev/usbdisk1 -> sda1",
        ]
    );
    // An overflow re-scans: nothing new, nothing loaded twice.
    w.sys.push_uevent(UeventRecv::Overflow);
    let mut src = w.sys.uevents(1 << 20).unwrap();
    let lines = listener.next(src.as_mut(), Duration::ZERO).unwrap();
    assert_eq!(
        texts(&lines, log::Level::Warn),
        ["hotplug: uevent buffer overflow; re-scanning sysfs"]
    );
    assert!(texts(&lines, log::Level::Info).is_empty(), "{lines:?}");
    let loads = w.loads();
    assert_eq!(
        loads.iter().filter(|l| l.contains("usb-storage")).count(),
        1,
        "{loads:?}"
    );
}

#[test]
fn without_a_module_index_links_are_still_made() {
    let w = World::new();
    let events = stick_arrives(&w, "sda");
    let mut listener = Listener::new(&w.sys, None);
    for ev in events {
        w.sys.push_uevent(ev);
    }
    let mut src = w.sys.uevents(1 << 20).unwrap();
    for _ in 0..4 {
        listener.next(src.as_mut(), Duration::ZERO).unwrap();
    }
    assert_eq!(w.link("usbdisk"), Some(PathBuf::from("sda")));
    assert!(w.loads().is_empty());
}

#[test]
fn usb_is_a_usb_bus_device_in_the_path() {
    assert!(through_usb(&format!("{USB_HOST}/host0/block/sda")));
    assert!(through_usb(
        "/devices/platform/soc/3f980000.usb/usb1/1-1/1-1.3/block/sdb"
    ));
    assert!(!through_usb("/devices/platform/ahci/ata1/host0/block/sda"));
    assert!(!through_usb("/devices/virtual/usbmon/usbmon0"));
    assert!(!through_usb("/devices/platform/soc/3f980000.usb/block/sdb"));
}
