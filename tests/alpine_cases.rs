//! Alpine's own conformance cases (mkinitfs `tests/initramfs-init.test`, spec §8) on the
//! recording double. Each builds a fake root (proc/cmdline, fake sysfs and devices, media, a
//! sysroot with an executable `/sbin/init`), runs the boot with a rescue budget of zero, and
//! asserts on the trace and the tree, as upstream asserts on the commands its `MOCK=echo` prints.
//! Each test is named after its upstream case. Upstream's harness sets
//! `KOPT_bootstrap_usr_merged=yes`; so do the diskless cases here that depend on it.
//!
//! Covered elsewhere, by a unit test with the upstream name (not repeated here):
//! * 6 `tmpfs_root_console_serial`: `src/boot/sysroot.rs` (console expansion and inittab lines);
//!   [`tmpfs_root_console_serial_handoff`] adds the `switch_root -c` part.
//! * 7 `tmpfs_root_autodetect_serial`: `src/boot/sysroot.rs` (which ports are detected);
//!   [`tmpfs_root_autodetect_serial_wiring`] checks that a boot without an apkovl uses them.
//! * 10 `tmpfs_root_remount_opts`: `src/boot/sysroot.rs` (the move and remount);
//!   [`tmpfs_root_remount_opts_from_apkovl_fstab`] runs it from an apkovl's fstab.
//! * 18 `tmpfs_root_apkovl_unpack_merged`: `src/overlay/tests.rs`.
//!
//! * 11-15 `tmpfs_root_tiny_cloud_*` are here, with ramboot's `notinycloud` (which Alpine turns
//!   into "on").
//! * 5 `tmpfs_root_net_apkovl` and 16 `tmpfs_root_apkovl_url` are here, against the in-process
//!   HTTP server of `support::http` (upstream mocks wget).
//! * 19-23 `tmpfs_root_ip_dhcp_*` are here; the DHCP exchange itself (upstream mocks udhcpc)
//!   is in `tests/net_config.rs`.
//! * 24 `tmpfs_root_ip_mactab` is here (upstream checks only that `nameif` runs); the file's
//!   format is unit-tested in `src/net/mactab.rs`.
//!
//! Not applicable, and why:
//! * 26 `aoe`, 27 `wireguard`: ATA over Ethernet and WireGuard need networking; not implemented.
//! * 28 `resume_offset`: resume from hibernation (`resume=`, `resume_offset=`) is recorded by
//!   the command-line plan but not acted on; a RAM-only diskless boot has no swap to resume from.
//! * 30-32 `autodetect_serial_setconsole*`: `setconsole` (making a detected serial port the
//!   console, optionally gated by a DMI regex) is parsed but not implemented.
// Tests drive real tools and processes (QEMU, mkfs, the built binary): the system boundary
// lint is for the library.
#![allow(clippy::disallowed_methods)]

mod support;

use ramboot::boot::{self, BootEnd, Finished};
use ramboot::sys::RecordingSys;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use support::hw::*;

struct World {
    dir: tempfile::TempDir,
    sys: RecordingSys,
}

impl World {
    fn new(cmdline: &str) -> World {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("proc")).unwrap();
        fs::write(root.join("proc/cmdline"), format!("{cmdline}\n")).unwrap();
        let sys = RecordingSys::new(root).with_kernel_release(RELEASE);
        World { dir, sys }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn sysroot(&self) -> std::path::PathBuf {
        self.root().join("sysroot")
    }

    /// An executable init in the new root (under `usr/sbin` when the root is usr-merged, so
    /// the `sbin -> usr/sbin` link the boot makes finds it).
    fn init(&self, merged: bool) {
        let p = self
            .sysroot()
            .join(if merged { "usr/sbin/init" } else { "sbin/init" });
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, b"#!/bin/sh\n").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// Boot media `vda1` (FAT, in sysfs and /dev) whose mount shows `files`; a boot repository
    /// is always there so discovery ends at once.
    fn media(&self, files: &[(&str, &[u8])]) {
        sys_block(self.root(), "vda", 254, 0, None, 16384, false);
        sys_block(self.root(), "vda1", 254, 1, Some((1, "vda")), 2048, false);
        dev_file(
            self.root(),
            "vda1",
            &fat16_image(0x1234ABCD, Some("ALPINE")),
        );
        let m = self.root().join("media/vda1");
        fs::create_dir_all(m.join("apks")).unwrap();
        fs::write(m.join("apks/.boot_repository"), b"").unwrap();
        for (name, data) in files {
            fs::create_dir_all(m.join(name).parent().unwrap()).unwrap();
            fs::write(m.join(name), data).unwrap();
        }
    }

    fn run(&self) -> Finished {
        boot::run_recorded(&self.sys, Some(0))
    }

    fn trace(&self) -> Vec<String> {
        self.sys.trace()
    }

    fn has(&self, line: &str) -> bool {
        self.trace().iter().any(|l| l == line)
    }
}

/// A gzip'd tar of `(path, content)` files (directories are implied).
fn apkovl(files: &[(&str, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    for (path, content) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(content.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, path, content.as_bytes()).unwrap();
    }
    b.into_inner().unwrap().finish().unwrap()
}

fn handed_off(f: &Finished, w: &World) {
    assert!(
        matches!(f.end, BootEnd::HandedOff),
        "{:?}\n{:#?}",
        f.end,
        w.trace()
    );
}

/// Serial ports as upstream fakes them: ttyS0 with CTS/DSR up, ttyAMA0 with a device link.
fn serial_ports(w: &World) {
    let r = w.root();
    fs::create_dir_all(r.join("proc/tty/driver")).unwrap();
    fs::write(
        r.join("proc/tty/driver/serial"),
        "serinfo:1.0 driver revision:\n0: uart:16550A port:000003F8 irq:4 tx:0 rx:0 RTS|CTS|DTR|DSR|CD\n",
    )
    .unwrap();
    fs::create_dir_all(r.join("sys/class/tty/ttyAMA0/device")).unwrap();
    fs::create_dir_all(r.join("dev")).unwrap();
    for t in ["ttyS0", "ttyAMA0"] {
        fs::write(r.join("dev").join(t), b"").unwrap();
    }
}

fn inittab(w: &World) -> String {
    fs::read_to_string(w.sysroot().join("etc/inittab")).unwrap_or_default()
}

/// Case 1: `root=/dev/vda1`: the device is found, mounted read-only on /sysroot, and init is exec'd.
#[test]
fn cmdline_root() {
    let w = World::new("root=/dev/vda1");
    sys_block(w.root(), "vda", 254, 0, None, 16384, false);
    sys_block(w.root(), "vda1", 254, 1, Some((1, "vda")), 2048, false);
    dev_file(w.root(), "vda1", &ext_image(0, 0x40, 0, [7; 16], "root"));
    w.init(false);
    let f = w.run();
    handed_off(&f, &w);
    assert!(
        w.has("mount -t ext4 -o ro /dev/vda1 /sysroot"),
        "{:#?}",
        w.trace()
    );
    assert_eq!(w.trace().last().unwrap(), "exec /sbin/init");
    assert!(w.has("chroot ."));
}

/// Case 1 without `rootfstype=` on a filesystem the probe does not know: like busybox `mount`,
/// each block filesystem in `/proc/filesystems` (`nodev` lines skipped) is tried in order until
/// one accepts the device; never the literal type `auto` (issue 8, point 11).
#[test]
fn cmdline_root_unknown_type_tries_the_kernel_filesystems() {
    let w = World::new("root=/dev/vda1");
    sys_block(w.root(), "vda", 254, 0, None, 16384, false);
    sys_block(w.root(), "vda1", 254, 1, Some((1, "vda")), 2048, false);
    dev_file(w.root(), "vda1", &[0u8; 65536]);
    fs::write(
        w.root().join("proc/filesystems"),
        "nodev\tsysfs\nnodev\ttmpfs\n\text4\nnodev\toverlay\n\tsquashfs\n\tbtrfs\n\tvfat\n",
    )
    .unwrap();
    w.sys.fail_on("mount -t ext4 ", 22);
    w.sys.fail_on("mount -t squashfs ", 22);
    w.init(false);
    let f = w.run();
    handed_off(&f, &w);
    let mounts: Vec<String> = w
        .trace()
        .into_iter()
        .filter(|l| l.starts_with("mount ") && l.ends_with(" /sysroot"))
        .collect();
    assert_eq!(
        mounts,
        [
            "mount -t ext4 -o ro /dev/vda1 /sysroot",
            "mount -t squashfs -o ro /dev/vda1 /sysroot",
            "mount -t btrfs -o ro /dev/vda1 /sysroot",
        ]
    );
}

/// The same when nothing accepts the device: the refusal names what was tried and why.
#[test]
fn cmdline_root_unknown_type_nothing_accepts_it() {
    let w = World::new("root=/dev/vda1");
    sys_block(w.root(), "vda1", 254, 1, None, 2048, false);
    dev_file(w.root(), "vda1", &[0u8; 65536]);
    fs::write(
        w.root().join("proc/filesystems"),
        "nodev\tproc\n\text4\n\tvfat\n",
    )
    .unwrap();
    w.sys.fail_on("mount -t ext4 ", 22);
    w.sys.fail_on("mount -t vfat ", 22);
    w.init(false);
    let f = w.run();
    let BootEnd::GaveUp { reason } = &f.end else {
        panic!("{:?}", f.end)
    };
    assert_eq!(
        reason,
        "cannot mount /dev/vda1 on /sysroot: its filesystem type is not given (rootfstype=) nor \
         recognised, and none of the kernel's filesystems accepted it (tried ext4, vfat; last \
         error: Invalid argument (os error 22))"
    );
    assert!(!w.trace().iter().any(|l| l.contains("-t auto")));
}

/// Case 2: `blacklist=dummy,evbug` goes into the initramfs's modprobe.d.
#[test]
fn blacklist() {
    let w = World::new("blacklist=dummy,evbug");
    w.run();
    let conf = fs::read_to_string(w.root().join("etc/modprobe.d/boot-opt-blacklist.conf")).unwrap();
    assert_eq!(conf, "blacklist dummy\nblacklist evbug\n");
}

/// Case 3: No command line: media found, tmpfs on /sysroot, the usr-merged skeleton, switch_root.
#[test]
fn tmpfs_root() {
    let w = World::new("bootstrap_usr_merged=yes");
    w.media(&[]);
    w.init(true);
    let f = w.run();
    handed_off(&f, &w);
    assert!(w.has("mount -t vfat -o ro /dev/vda1 /media/vda1"));
    assert!(w.has("mount -t tmpfs -o mode=0755 tmpfs /sysroot"));
    for d in ["usr/lib", "usr/bin", "usr/sbin"] {
        assert!(w.sysroot().join(d).is_dir(), "{d}");
    }
    for l in ["bin", "sbin", "lib"] {
        assert_eq!(
            fs::read_link(w.sysroot().join(l)).unwrap(),
            Path::new("usr").join(l)
        );
    }
    // The media is carried into the new root.
    assert!(w.has("mount -o move /media/vda1 /sysroot/media/vda1"));
}

/// Case 4: The modloop signing keys of the initramfs are copied into the new root, and `openssl`
/// is added to the packages.
#[test]
fn tmpfs_root_modloop_sign() {
    let w = World::new("");
    w.media(&[]);
    w.init(false);
    let key =
        "var/cache/misc/modloop-lts.SIGN.RSA.alpine-devel@lists.alpinelinux.org-4a6a0840.rsa.pub";
    fs::create_dir_all(w.root().join("var/cache/misc")).unwrap();
    fs::write(w.root().join(key), b"KEY").unwrap();
    let f = w.run();
    handed_off(&f, &w);
    assert_eq!(fs::read(w.sysroot().join(key)).unwrap(), b"KEY");
    let d = f.record.decisions.unwrap();
    assert!(
        d.packages.contains(&"openssl".to_string()),
        "{:?}",
        d.packages
    );
}

/// Case 6 (the handoff part): the last `console=` is the console of the new init.
#[test]
fn tmpfs_root_console_serial_handoff() {
    let w = World::new("console=tty0 console=ttyS0");
    w.media(&[]);
    w.init(false);
    fs::create_dir_all(w.root().join("dev")).unwrap();
    fs::write(w.root().join("dev/ttyS0"), b"").unwrap();
    let f = w.run();
    handed_off(&f, &w);
    assert!(w.has("console /dev/ttyS0"), "{:#?}", w.trace());
    assert!(inittab(&w).contains("ttyS0::respawn:/sbin/getty -L 0 ttyS0 vt100\n"));
}

/// Case 7 (the wiring): with no apkovl, detected serial ports get gettys.
#[test]
fn tmpfs_root_autodetect_serial_wiring() {
    let w = World::new("");
    w.media(&[]);
    w.init(false);
    serial_ports(&w);
    handed_off(&w.run(), &w);
    let tab = inittab(&w);
    assert!(tab.contains("ttyS0::respawn:"), "{tab}");
    assert!(tab.contains("ttyAMA0::respawn:"), "{tab}");
}

/// Case 8: `autodetect_serial=no`: no getty for detected ports.
#[test]
fn tmpfs_root_disable_autodetect_serial() {
    let w = World::new("autodetect_serial=no");
    w.media(&[]);
    w.init(false);
    serial_ports(&w);
    handed_off(&w.run(), &w);
    let tab = inittab(&w);
    assert!(!tab.contains("ttyS0") && !tab.contains("ttyAMA0"), "{tab}");
}

/// Case 9: An apkovl was loaded: serial auto-detection is skipped (the apkovl owns inittab).
#[test]
fn tmpfs_root_apkovl_autodetect_serial() {
    let w = World::new("apkovl=/media/vda1/foo.apkovl.tar.gz");
    let ovl = apkovl(&[("etc/hostname", "foo\n")]);
    w.media(&[("foo.apkovl.tar.gz", &ovl)]);
    w.init(false);
    serial_ports(&w);
    let f = w.run();
    handed_off(&f, &w);
    assert_eq!(
        fs::read_to_string(w.sysroot().join("etc/hostname")).unwrap(),
        "foo\n"
    );
    let tab = inittab(&w);
    assert!(!tab.contains("ttyS0") && !tab.contains("ttyAMA0"), "{tab}");
}

/// Case 10 (from the apkovl): the apkovl's fstab names the boot medium: it is moved to its mount
/// point and remounted with its options.
#[test]
fn tmpfs_root_remount_opts_from_apkovl_fstab() {
    let w = World::new("");
    let ovl = apkovl(&[(
        "etc/fstab",
        "/dev/vda1 /media/cdrom iso9660 noauto,ro,customopts 0 0\n",
    )]);
    w.media(&[("host.apkovl.tar.gz", &ovl)]);
    w.init(false);
    let f = w.run();
    handed_off(&f, &w);
    let t = w.trace();
    let mv = t
        .iter()
        .position(|l| l == "mount -o move /media/vda1 /media/cdrom")
        .unwrap_or_else(|| panic!("{t:#?}"));
    assert_eq!(t[mv + 1], "mount -o remount,ro,customopts /media/cdrom");
    // Repositories use the relocated path.
    assert_eq!(
        fs::read_to_string(w.sysroot().join("etc/apk/repositories")).unwrap(),
        "/media/cdrom/apks\n"
    );
}

/// Case 17: `apkovl=/dev/sda1:foofs:bar.apkovl.tar.gz`: mount the device with that type, take the
/// apkovl from it, unmount it after the packages.
#[test]
fn tmpfs_root_apkovl_mount() {
    let w = World::new("apkovl=/dev/sda1:foofs:bar.apkovl.tar.gz");
    w.media(&[]);
    w.init(false);
    fs::create_dir_all(w.root().join("media/sda1")).unwrap();
    fs::write(
        w.root().join("media/sda1/bar.apkovl.tar.gz"),
        apkovl(&[("etc/hostname", "bar\n")]),
    )
    .unwrap();
    let f = w.run();
    handed_off(&f, &w);
    let t = w.trace();
    let mount = t
        .iter()
        // Upstream mounts it read-write; ramboot only reads the apkovl there, so read-only.
        .position(|l| l == "mount -t foofs -o ro /dev/sda1 /media/sda1")
        .unwrap_or_else(|| panic!("{t:#?}"));
    let umount = t.iter().position(|l| l == "umount /media/sda1").unwrap();
    assert!(mount < umount);
    assert_eq!(
        fs::read_to_string(w.sysroot().join("etc/hostname")).unwrap(),
        "bar\n"
    );
}

/// Case 25: `alpine_repo=a,b` becomes the new root's repositories, one per line.
#[test]
fn tmpfs_root_alpine_repo() {
    let w = World::new("alpine_repo=https://a.example/main,https://b.example/community");
    w.media(&[]);
    w.init(false);
    let f = w.run();
    handed_off(&f, &w);
    assert_eq!(
        fs::read_to_string(w.sysroot().join("etc/apk/repositories")).unwrap(),
        "https://a.example/main\nhttps://b.example/community\n"
    );
}

/// Case 29: `root=` with a `/usr` line in the new root's fstab: "Mounting /usr" with `usrflags`
/// (default `ro`), and /sysroot/usr is not moved again at switch_root.
#[test]
fn mount_usr() {
    let w = World::new("root=/dev/vda1");
    sys_block(w.root(), "vda", 254, 0, None, 16384, false);
    sys_block(w.root(), "vda1", 254, 1, Some((1, "vda")), 2048, false);
    sys_block(w.root(), "vda2", 254, 2, Some((2, "vda")), 2048, false);
    dev_file(w.root(), "vda1", &ext_image(0, 0x40, 0, [7; 16], "root"));
    dev_file(w.root(), "vda2", &ext_image(0, 0x40, 0, [8; 16], "usr"));
    w.init(false);
    fs::create_dir_all(w.sysroot().join("etc")).unwrap();
    fs::write(
        w.sysroot().join("etc/fstab"),
        "/dev/vda1 / ext4 defaults 0 1\nLABEL=usr /usr ext4 defaults 0 2\n",
    )
    .unwrap();
    let f = w.run();
    handed_off(&f, &w);
    let t = w.trace();
    let root = t
        .iter()
        .position(|l| l == "mount -t ext4 -o ro /dev/vda1 /sysroot")
        .unwrap();
    let usr = t
        .iter()
        .position(|l| l == "mount -t ext4 -o ro /dev/vda2 /sysroot/usr")
        .unwrap_or_else(|| panic!("{t:#?}"));
    assert!(root < usr);
    assert!(!t.iter().any(|l| l.contains("move /sysroot/usr")));

    // Type `auto` in the fstab: the probed type, never the literal `auto` (issue 8, point 11).
    let w = World::new("root=/dev/vda1");
    sys_block(w.root(), "vda1", 254, 1, None, 2048, false);
    sys_block(w.root(), "vda2", 254, 2, None, 2048, false);
    dev_file(w.root(), "vda1", &ext_image(0, 0x40, 0, [7; 16], "root"));
    dev_file(w.root(), "vda2", &ext_image(0, 0x40, 0, [8; 16], "usr"));
    w.init(false);
    fs::create_dir_all(w.sysroot().join("etc")).unwrap();
    fs::write(
        w.sysroot().join("etc/fstab"),
        "LABEL=usr /usr auto defaults 0 2\n",
    )
    .unwrap();
    handed_off(&w.run(), &w);
    assert!(
        w.has("mount -t ext4 -o ro /dev/vda2 /sysroot/usr"),
        "{:#?}",
        w.trace()
    );

    // usrflags=disable: no /usr mount.
    let w = World::new("root=/dev/vda1 usrflags=disable");
    sys_block(w.root(), "vda1", 254, 1, None, 2048, false);
    dev_file(w.root(), "vda1", &ext_image(0, 0x40, 0, [7; 16], "root"));
    w.init(false);
    fs::create_dir_all(w.sysroot().join("etc")).unwrap();
    fs::write(
        w.sysroot().join("etc/fstab"),
        "/dev/vda1 /usr ext4 defaults 0 2\n",
    )
    .unwrap();
    handed_off(&w.run(), &w);
    assert!(!w.trace().iter().any(|l| l.contains("/sysroot/usr")));
}

/// A NIC in the fake sysfs: `physical` gives it the `device` link real hardware has.
fn nic(w: &World, name: &str, index: u32, mac: &str, operstate: &str, physical: bool) {
    let d = w.root().join("sys/class/net").join(name);
    fs::create_dir_all(&d).unwrap();
    fs::write(d.join("ifindex"), format!("{index}\n")).unwrap();
    fs::write(d.join("address"), format!("{mac}\n")).unwrap();
    fs::write(d.join("operstate"), format!("{operstate}\n")).unwrap();
    if physical {
        fs::create_dir_all(d.join("device")).unwrap();
    }
}

/// The network stage's timeline note (its failure), and the boot went on to the handoff.
fn network_failed(f: &Finished, w: &World) -> String {
    handed_off(f, w);
    let st = f.timeline.stages.iter().find(|s| s.name == "network");
    match st.map(|s| &s.outcome) {
        Some(boot::timeline::Outcome::Degraded(why)) => why.clone(),
        other => panic!("network stage: {other:?}"),
    }
}

fn three_nics(w: &World, up: [bool; 3]) {
    for (i, up) in up.into_iter().enumerate() {
        let state = if up { "up" } else { "down" };
        let mac = format!("02:00:00:00:00:0{}", i + 1);
        nic(w, &format!("eth{i}"), i as u32 + 2, &mac, state, true);
    }
}

/// Case 19: `ip=dhcp` without any interface: Alpine's error, and the boot goes on.
#[test]
fn tmpfs_root_ip_dhcp_no_iface() {
    let w = World::new("ip=dhcp");
    w.media(&[]);
    w.init(false);
    fs::create_dir_all(w.root().join("sys/class/net")).unwrap();
    let f = w.run();
    assert_eq!(
        network_failed(&f, &w),
        "IP requested but no network interface was found"
    );
    assert!(!w.trace().iter().any(|l| l.starts_with("udhcpc")));
}

/// Case 20: interfaces without a `device` link (veth, the loopback) are not candidates.
#[test]
fn tmpfs_root_ip_dhcp_no_physical_iface() {
    let w = World::new("ip=dhcp");
    w.media(&[]);
    w.init(false);
    nic(&w, "lo", 1, "00:00:00:00:00:00", "unknown", false);
    nic(&w, "veth0", 2, "02:00:00:00:00:09", "up", false);
    let f = w.run();
    assert_eq!(
        network_failed(&f, &w),
        "IP requested but no network interface was found"
    );
    assert!(!w.has("ip link set veth0 up"));
}

/// Case 21: all links down after the wait: DHCP on the first interface by ifindex.
#[test]
fn tmpfs_root_ip_dhcp_all_down() {
    let w = World::new("ip=dhcp");
    w.media(&[]);
    w.init(false);
    three_nics(&w, [false, false, false]);
    let f = w.run();
    for i in 0..3 {
        assert!(w.has(&format!("ip link set eth{i} up")), "{:#?}", w.trace());
    }
    assert!(w.has("udhcpc -i eth0"), "{:#?}", w.trace());
    // No server on the double: no lease, and the boot goes on.
    assert!(network_failed(&f, &w).starts_with("no DHCP lease on eth0"));
}

/// Case 22: eth1 and eth2 have a link: all three go up, eth0 and eth2 down again, DHCP on eth1.
#[test]
fn tmpfs_root_ip_dhcp_first_up() {
    let w = World::new("ip=dhcp");
    w.media(&[]);
    w.init(false);
    three_nics(&w, [false, true, true]);
    w.run();
    let t = w.trace();
    let at = |l: &str| {
        t.iter()
            .position(|x| x == l)
            .unwrap_or_else(|| panic!("{l}: {t:#?}"))
    };
    for i in 0..3 {
        assert!(at(&format!("ip link set eth{i} up")) < at("ip link set eth0 down"));
    }
    assert!(w.has("ip link set eth2 down"));
    assert!(!w.has("ip link set eth1 down"));
    assert!(at("ip link set eth2 down") < at("udhcpc -i eth1"));
}

/// Case 23: `BOOTIF=` picks eth2 by its address; eth0 and eth1 are never touched.
#[test]
#[allow(non_snake_case)] // upstream's name
fn tmpfs_root_ip_dhcp_BOOTIF() {
    let w = World::new("ip=dhcp BOOTIF=01-02-00-00-00-00-03");
    w.media(&[]);
    w.init(false);
    three_nics(&w, [true, true, true]);
    let f = w.run();
    // The stage borrows the settings from the plan and gives them back (ramboot plan shows them).
    assert_eq!(f.plan.bootif.as_deref(), Some("02:00:00:00:00:03"));
    assert_eq!(
        f.plan.ip,
        Some(ramboot::cmdline::IpConfig::Dhcp { device: None })
    );
    assert!(w.has("ip link set eth2 up"));
    assert!(w.has("udhcpc -i eth2"));
    assert!(
        !w.trace()
            .iter()
            .any(|l| l.contains("eth0") || l.contains("eth1")),
        "{:#?}",
        w.trace()
    );
}

/// The initramfs `/etc/mactab`.
fn mactab(w: &World, text: &str) {
    fs::create_dir_all(w.root().join("etc")).unwrap();
    fs::write(w.root().join("etc/mactab"), text).unwrap();
}

/// Case 24: with an `/etc/mactab`, interfaces are renamed (nameif) before the choice: the
/// renamed interface is the one brought up and given to DHCP, under its new name, and `ip=`
/// can name it.
#[test]
fn tmpfs_root_ip_mactab() {
    let w = World::new("ip=dhcp");
    w.media(&[]);
    w.init(false);
    three_nics(&w, [false, true, false]);
    mactab(&w, "# eth1's address\nlan0 02:00:00:00:00:02\n");
    let f = w.run();
    handed_off(&f, &w);
    let t = w.trace();
    let at = |l: &str| {
        t.iter()
            .position(|x| x == l)
            .unwrap_or_else(|| panic!("{l}: {t:#?}"))
    };
    let renamed = at("ip link set eth1 name lan0");
    assert!(
        !t[..renamed].iter().any(|l| l.ends_with(" up")),
        "renamed before any link is up: {t:#?}"
    );
    for i in ["eth0", "lan0", "eth2"] {
        assert!(at(&format!("ip link set {i} up")) > renamed);
    }
    assert!(at("udhcpc -i lan0") > renamed);
    assert!(
        !t[renamed + 1..].iter().any(|l| l.contains("eth1")),
        "{t:#?}"
    );

    // `ip=` names the interface by its new name.
    let w = World::new("ip=:::::lan0:dhcp");
    w.media(&[]);
    w.init(false);
    three_nics(&w, [true, true, true]);
    mactab(&w, "lan0 02:00:00:00:00:03\n");
    handed_off(&w.run(), &w);
    assert!(w.has("ip link set eth2 name lan0"), "{:#?}", w.trace());
    assert!(w.has("udhcpc -i lan0"), "{:#?}", w.trace());
    assert!(!w.has("ip link set eth0 up"), "{:#?}", w.trace());
}

/// Case 24, a name already taken: the kernel refuses (EEXIST), nameif stops there (the later
/// lines rename nothing), and the boot goes on with the names as they were (the line said is
/// checked in `src/net/mactab.rs`).
#[test]
fn tmpfs_root_ip_mactab_name_taken() {
    let w = World::new("ip=dhcp");
    w.media(&[]);
    w.init(false);
    three_nics(&w, [false, false, true]);
    // Lines are matched from the bottom up, interfaces by ifindex: eth0 first, then eth1.
    mactab(&w, "wan0 02:00:00:00:00:03\neth0 02:00:00:00:00:02\n");
    let f = w.run();
    assert!(w.has("ip link set eth1 name eth0"), "{:#?}", w.trace());
    assert!(
        !w.trace().iter().any(|l| l.contains(" name wan0")),
        "{:#?}",
        w.trace()
    );
    assert!(w.has("udhcpc -i eth2"), "{:#?}", w.trace());
    assert!(network_failed(&f, &w).starts_with("no DHCP lease on eth2"));
}

/// A NIC that appears while the boot waits (the Pi's USB Ethernet) is renamed too.
#[test]
fn tmpfs_root_ip_mactab_late_interface() {
    let w = World::new("ip=:::::lan0:dhcp");
    w.media(&[]);
    w.init(false);
    fs::create_dir_all(w.root().join("sys/class/net")).unwrap();
    mactab(&w, "lan0 b8:27:eb:00:00:01\n");
    w.sys
        .push_link_change_after(std::time::Duration::from_millis(800), |root| {
            let d = root.join("sys/class/net/eth0");
            fs::create_dir_all(d.join("device")).unwrap();
            fs::write(d.join("ifindex"), "2\n").unwrap();
            fs::write(d.join("address"), "b8:27:eb:00:00:01\n").unwrap();
            fs::write(d.join("operstate"), "up\n").unwrap();
        });
    handed_off(&w.run(), &w);
    assert!(w.has("ip link set eth0 name lan0"), "{:#?}", w.trace());
    assert!(w.has("udhcpc -i lan0"), "{:#?}", w.trace());
}

/// Beyond upstream's mocks: a lease from the in-process DHCP server reaches the new root (its
/// DNS servers in `/etc/resolv.conf`), and the timeline marks when the network was needed and
/// when it came up.
#[test]
fn tmpfs_root_ip_dhcp_lease_reaches_the_new_root() {
    let w = World::new("ip=dhcp");
    w.media(&[]);
    w.init(false);
    nic(&w, "eth0", 2, "52:54:00:12:34:56", "up", true);
    w.sys.serve_dhcp(
        std::time::Duration::from_millis(2),
        support::dhcp::slirp_like(0),
    );
    let f = w.run();
    handed_off(&f, &w);
    assert_eq!(
        fs::read_to_string(w.sysroot().join("etc/resolv.conf")).unwrap(),
        "search example.test\nnameserver 10.0.2.3\nnameserver 1.1.1.1\n"
    );
    let mark = |prefix: &str| {
        f.timeline
            .marks
            .iter()
            .find(|(n, _)| n.starts_with(prefix))
            .unwrap_or_else(|| panic!("{prefix}: {:?}", f.timeline.marks))
            .1
    };
    let needed = mark("network needed");
    let up = mark(
        "network up by DHCPv4: eth0 10.0.2.15/24 via 10.0.2.2 (DHCP from 10.0.2.2, lease 86400s)",
    );
    assert_eq!(
        up - needed,
        std::time::Duration::from_millis(4),
        "two answers"
    );
}

/// tiny-cloud's runlevel links, as `rc_add` makes them.
fn tiny_cloud_links(w: &World) -> Vec<bool> {
    [
        "boot/tiny-cloud-boot",
        "default/tiny-cloud-early",
        "default/tiny-cloud-main",
        "default/tiny-cloud-final",
    ]
    .iter()
    .map(|l| {
        let link = w.sysroot().join("etc/runlevels").join(l);
        let name = l.split('/').nth(1).unwrap();
        fs::read_link(link).ok() == Some(Path::new("/etc/init.d").join(name))
    })
    .collect()
}

fn tiny_cloud_added(w: &World, f: &Finished) -> bool {
    handed_off(f, w);
    let links = tiny_cloud_links(w);
    let packages = &f.record.decisions.as_ref().unwrap().packages;
    let pkgs = ["tiny-cloud", "ifupdown-ng", "doas"]
        .iter()
        .all(|p| packages.iter().any(|q| q == p));
    assert!(
        links.iter().all(|l| *l == links[0]) && pkgs == links[0],
        "all or nothing: {links:?}, packages {packages:?}"
    );
    pkgs
}

fn notes(f: &Finished) -> Vec<String> {
    f.record.decisions.as_ref().unwrap().notes.clone()
}

/// A second disk, vdb, whose filesystem is labelled `label` (a NoCloud seed).
fn seed_disk(w: &World, label: &str) {
    sys_block(w.root(), "vdb", 254, 16, None, 2048, false);
    dev_file(w.root(), "vdb", &fat16_image(0x5EED, Some(label)));
}

/// Case 11: a filesystem labelled cidata (`findfs LABEL=cidata`) brings tiny-cloud: its
/// services in their runlevels and its packages. `CIDATA` counts too.
#[test]
fn tmpfs_root_tiny_cloud_cidata() {
    for label in ["cidata", "CIDATA"] {
        let w = World::new("");
        w.media(&[]);
        w.init(false);
        seed_disk(&w, label);
        let f = w.run();
        assert!(tiny_cloud_added(&w, &f), "{label}: {:#?}", w.trace());
        assert!(
            notes(&f).iter().any(|n| n.starts_with(
                "tiny-cloud: added (a filesystem is labelled cidata): packages tiny-cloud ifupdown-ng doas"
            )),
            "{:?}",
            notes(&f)
        );
    }
    // Another label does not.
    let w = World::new("");
    w.media(&[]);
    w.init(false);
    seed_disk(&w, "DATA");
    let f = w.run();
    assert!(!tiny_cloud_added(&w, &f));
}

/// Case 12: `tinycloud=cloud=nocloud` brings tiny-cloud.
#[test]
fn tmpfs_root_tiny_cloud_bootopt() {
    let w = World::new("tinycloud=cloud=nocloud");
    w.media(&[]);
    w.init(false);
    let f = w.run();
    assert!(tiny_cloud_added(&w, &f));
}

/// Case 13: `/etc/tiny-cloud.disabled` in the new root stops it, even with a cidata disk; so
/// does `notinycloud` (ramboot: Alpine reads the word as "on"), and an apkovl that keeps its
/// own runlevels.
#[test]
fn tmpfs_root_tiny_cloud_disabled() {
    let w = World::new("");
    w.media(&[]);
    w.init(false);
    seed_disk(&w, "cidata");
    fs::create_dir_all(w.sysroot().join("etc")).unwrap();
    fs::write(w.sysroot().join("etc/tiny-cloud.disabled"), b"").unwrap();
    let f = w.run();
    assert!(!tiny_cloud_added(&w, &f));
    assert!(notes(&f).contains(
        &"tiny-cloud: not added (a filesystem is labelled cidata, but /etc/tiny-cloud.disabled)"
            .to_string()
    ));

    let w = World::new("notinycloud");
    w.media(&[]);
    w.init(false);
    seed_disk(&w, "cidata");
    let f = w.run();
    assert!(!tiny_cloud_added(&w, &f));
    assert!(notes(&f).contains(
        &"tiny-cloud: not added (a filesystem is labelled cidata, but notinycloud/nods)"
            .to_string()
    ));

    let w = World::new("ds=nocloud");
    let ovl = apkovl(&[("etc/hostname", "cloudy\n")]);
    w.media(&[("host.apkovl.tar.gz", &ovl)]);
    w.init(false);
    let f = w.run();
    assert!(!tiny_cloud_added(&w, &f));
    assert!(notes(&f).contains(
        &"tiny-cloud: not added (tinycloud= or ds= on the command line, but the apkovl keeps its own runlevels)"
            .to_string()
    ));
}

/// Case 14: `ds=nocloud;s=http://…` brings tiny-cloud.
#[test]
fn tmpfs_root_tiny_cloud_net() {
    let w = World::new("ds=nocloud;s=http://169.254.169.254/");
    w.media(&[]);
    w.init(false);
    let f = w.run();
    assert!(tiny_cloud_added(&w, &f));
}

/// Case 15: a DMI `product_serial` that starts with `ds=` brings tiny-cloud.
#[test]
fn tmpfs_root_tiny_cloud_smbios() {
    for (serial, added) in [
        ("ds=nocloud;s=http://10.0.0.1/\n", true),
        ("VMware-42\n", false),
    ] {
        let w = World::new("");
        w.media(&[]);
        w.init(false);
        let dmi = w.root().join("sys/class/dmi/id");
        fs::create_dir_all(&dmi).unwrap();
        fs::write(dmi.join("product_serial"), serial).unwrap();
        let f = w.run();
        assert_eq!(tiny_cloud_added(&w, &f), added, "{serial}");
    }
}

/// The reason the boot gave up with (rescue budget 0: the rescue shell would come next).
fn gave_up(f: &Finished, w: &World) -> String {
    match &f.end {
        BootEnd::GaveUp { reason } => reason.clone(),
        other => panic!("{other:?}\n{:#?}", w.trace()),
    }
}

/// ramboot (issue 10): neither media nor the network gives anything to boot from: one line that
/// says so, what was looked at and why the network gave nothing, then the media stage's
/// fallback (the rescue shell; here the budget is 0, so the boot gives up with that line).
#[test]
fn nothing_to_boot_from_says_what_was_looked_for() {
    let looked = "nothing to boot from: no boot repository and no apkovl on any device (looked \
                  for 5.0s), and";
    // No network asked for.
    let w = World::new("");
    w.init(false);
    assert_eq!(
        gave_up(&w.run(), &w),
        format!("{looked} no network source was asked for (ip=, apkovl=URL or alpine_repo=URL)")
    );
    // ip=dhcp without a NIC.
    let w = World::new("ip=dhcp");
    w.init(false);
    fs::create_dir_all(w.root().join("sys/class/net")).unwrap();
    assert_eq!(
        gave_up(&w.run(), &w),
        format!("{looked} no network (IP requested but no network interface was found)")
    );
    // A lease, but no URL to fetch from.
    let w = World::new("ip=dhcp");
    w.init(false);
    nic(&w, "eth0", 2, "52:54:00:12:34:56", "up", true);
    w.sys
        .serve_dhcp(std::time::Duration::ZERO, support::dhcp::slirp_like(0));
    assert_eq!(
        gave_up(&w.run(), &w),
        format!(
            "{looked} the network (eth0 10.0.2.15/24 via 10.0.2.2 (DHCP from 10.0.2.2, lease \
             86400s)) has nothing to fetch (no apkovl=URL or alpine_repo=URL)"
        )
    );
    // A repository URL, and ip=off.
    let w = World::new("ip=off alpine_repo=https://a.example/main");
    w.init(false);
    assert_eq!(
        gave_up(&w.run(), &w),
        format!("{looked} the network is off (ip=off)")
    );
}

/// A lease and a URL source, or local media and a failed network: something to boot from.
#[test]
fn a_url_source_with_a_network_or_media_without_one_is_enough() {
    let w = World::new("ip=dhcp alpine_repo=https://a.example/main");
    w.init(false);
    nic(&w, "eth0", 2, "52:54:00:12:34:56", "up", true);
    w.sys
        .serve_dhcp(std::time::Duration::ZERO, support::dhcp::slirp_like(0));
    handed_off(&w.run(), &w);
    let w = World::new("alpine_repo=https://a.example/main");
    w.media(&[]);
    w.init(false);
    fs::create_dir_all(w.root().join("sys/class/net")).unwrap();
    handed_off(&w.run(), &w);
}
/// A NIC with a lease from the in-process DHCP server, and the files an HTTP server on the
/// double serves.
fn online(w: &World, files: &[(&str, Vec<u8>)]) -> support::http::Seen {
    nic(w, "eth0", 2, "52:54:00:12:34:56", "up", true);
    w.sys.serve_dhcp(
        std::time::Duration::from_millis(2),
        support::dhcp::slirp_like(0),
    );
    let files = files
        .iter()
        .map(|(p, b)| (p.to_string(), b.clone()))
        .collect();
    support::http::serve_files(&w.sys, files)
}

/// Case 5: `apkovl=https://…/{UUID}/…` is fetched with the DMI product UUID substituted (here
/// over http: the double has no TLS peer), and the apkovl is applied.
#[test]
fn tmpfs_root_net_apkovl() {
    let w = World::new("apkovl=http://example.com/{UUID}/foo.apkovl.tar.gz");
    w.init(false);
    let dmi = w.root().join("sys/class/dmi/id");
    fs::create_dir_all(&dmi).unwrap();
    fs::write(dmi.join("product_uuid"), "4c4c4544-0042\n").unwrap();
    let ovl = apkovl(&[("etc/hostname", "fromnet\n")]);
    let seen = online(&w, &[("/4c4c4544-0042/foo.apkovl.tar.gz", ovl)]);
    let f = w.run();
    handed_off(&f, &w);
    assert_eq!(
        seen.lock().unwrap().as_slice(),
        ["GET /4c4c4544-0042/foo.apkovl.tar.gz HTTP/1.1 example.com:80"]
    );
    assert_eq!(
        fs::read_to_string(w.sysroot().join("etc/hostname")).unwrap(),
        "fromnet\n"
    );
    assert!(f.timeline.marks.iter().any(|(m, _)| m == "first byte"));
}

/// Case 16: a URL with a `?query` is saved as `/tmp/<name>` without it; `{MAC}` is the MAC of
/// the interface the lease came on, replaced before the name is taken.
#[test]
fn tmpfs_root_apkovl_url() {
    let w = World::new("apkovl=http://h/{MAC}/file?x=y");
    w.init(false);
    let ovl = apkovl(&[("etc/motd", "hi\n")]);
    let seen = online(&w, &[("/52:54:00:12:34:56/file?x=y", ovl.clone())]);
    let f = w.run();
    handed_off(&f, &w);
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert_eq!(fs::read(w.root().join("tmp/file")).unwrap(), ovl);
    assert_eq!(
        fs::read_to_string(w.sysroot().join("etc/motd")).unwrap(),
        "hi\n"
    );
}

/// A server that refuses: one line naming the URL and the cause, and the boot goes on.
#[test]
fn an_apkovl_url_that_cannot_be_fetched_is_one_line_and_the_boot_goes_on() {
    let w = World::new("apkovl=http://h/missing.apkovl.tar.gz");
    w.init(false);
    online(&w, &[]);
    let f = w.run();
    handed_off(&f, &w);
    let notes = &f.record.decisions.as_ref().unwrap().notes;
    assert!(
        notes.iter().any(|n| n
            == "apkovl: cannot fetch http://h/missing.apkovl.tar.gz: the server answered 404 Not Found; booting without it"),
        "{notes:?}"
    );
}

/// The local name is taken after substitution: `{MAC}.apkovl.tar.gz` is saved as
/// `/tmp/52:54:00:12:34:56.apkovl.tar.gz`, as Alpine's `${ovl##*/}` does.
#[test]
fn the_apkovl_is_saved_under_its_substituted_name() {
    let w = World::new("apkovl=http://h/{MAC}.apkovl.tar.gz");
    w.init(false);
    let ovl = apkovl(&[("etc/motd", "mac\n")]);
    online(&w, &[("/52:54:00:12:34:56.apkovl.tar.gz", ovl.clone())]);
    let f = w.run();
    handed_off(&f, &w);
    assert_eq!(
        fs::read(w.root().join("tmp/52:54:00:12:34:56.apkovl.tar.gz")).unwrap(),
        ovl
    );
}
