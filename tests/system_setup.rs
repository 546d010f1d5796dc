//! Issue 9: the system set-up of service mode (src/system/setup.rs) on the recording double
//! over a stand-in root: what each step does, that each failure is one warning and the others
//! still run, and that an inittab running openrc skips it all.
// The shared test support spawns tools; the system boundary lint is for the library.
#![allow(clippy::disallowed_methods)]

mod support;

use ramboot::sys::RecordingSys;
use ramboot::system::setup;
use std::path::Path;
use std::time::{Duration, SystemTime};
use support::hw::{dev_file, ext_image, standard_modules, sys_block, RELEASE};

fn write(root: &Path, path: &str, text: &str) {
    let p = root.join(path.trim_start_matches('/'));
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// A root with something for every step.
fn full_root(root: &Path) {
    write(root, "/etc/hostname", "kiosk\n# comment\n");
    // sysctl.d: /etc's 10-net.conf hides /usr/lib's; 20 overrides 10; sysctl.conf last.
    write(root, "/usr/lib/sysctl.d/10-net.conf", "vm.hidden = 1\n");
    write(
        root,
        "/usr/lib/sysctl.d/05-vendor.conf",
        "vm.swappiness = 10\n",
    );
    write(
        root,
        "/etc/sysctl.d/10-net.conf",
        "# forward\nnet.ipv4.ip_forward = 0\n; also a comment\n",
    );
    write(
        root,
        "/etc/sysctl.d/20-late.conf",
        "net.ipv4.ip_forward=1\n-kernel.not_here = 3\n",
    );
    write(root, "/etc/sysctl.d/README", "not a .conf file = 1\n");
    write(root, "/etc/sysctl.conf", "kernel/printk = 4 4 1 7\n");
    for key in [
        "vm/swappiness",
        "vm/hidden",
        "net/ipv4/ip_forward",
        "kernel/printk",
    ] {
        write(root, &format!("/proc/sys/{key}"), "0\n");
    }
    standard_modules(root);
    write(
        root,
        "/etc/modules",
        "loop\nvfat codepage=437\n# squashfs\n\n",
    );
    // fstab: a tmpfs, a noauto disk, a disk by UUID, swap, and /proc already mounted.
    let uuid = [0x11u8; 16];
    sys_block(root, "vdb", 254, 16, None, 128, false);
    dev_file(root, "vdb", &ext_image(0, 0, 0, uuid, "data"));
    write(
        root,
        "/etc/fstab",
        "# <fs> <mountpoint> <type> <opts> <dump/pass>\n\
         /dev/root / ext4 rw 0 1\n\
         tmpfs /tmp tmpfs nosuid,nodev,size=10M 0 0\n\
         /dev/vdc1 /backup ext4 noauto 0 0\n\
         UUID=11111111-1111-1111-1111-111111111111 /srv ext4 ro,noatime 0 2\n\
         /dev/vdd none swap sw 0 0\n\
         proc /proc proc defaults 0 0\n",
    );
    write(root, "/proc/mounts", "proc /proc proc rw 0 0\n");
    for d in ["tmp", "srv", "sys/fs/cgroup"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    write(root, "/var/lib/seedrng/seed.credit", &"c".repeat(32));
    write(root, "/var/lib/seedrng/seed.no-credit", &"n".repeat(16));
    write(root, "/etc/apk/world", "alpine-base\n");
}

fn set_mtime(path: &Path, secs: u64) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
        .unwrap();
}

#[test]
fn every_step_acts_on_the_stand_in_root() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    full_root(root);
    set_mtime(&root.join("etc/apk/world"), 1_750_000_000);
    let sys = RecordingSys::new(root).with_kernel_release(RELEASE);
    let warnings = setup::run(&sys, Path::new("/etc/inittab"));
    assert!(warnings.is_empty(), "{warnings:#?}");
    let trace = sys.trace();
    let expected = [
        "hostname kiosk",
        "ip link set lo up",
        "sysctl -w vm.swappiness=10",
        "sysctl -w net.ipv4.ip_forward=0",
        "sysctl -w net.ipv4.ip_forward=1",
        "sysctl -w kernel.not_here=3",
        "sysctl -w kernel.printk=4 4 1 7",
        "mount -t tmpfs -o nosuid,nodev,size=10M tmpfs /tmp",
        "mount -t ext4 -o ro,noatime /dev/vdb /srv",
        "swapon /dev/vdd",
        "mount -t cgroup2 -o nosuid,nodev,noexec,nsdelegate cgroup2 /sys/fs/cgroup",
        "seed /dev/urandom 32 bytes, credit 256 bits",
        "seed /dev/urandom 16 bytes, credit 0 bits",
        "date -s @1750000000",
    ];
    let mut at = 0;
    for line in expected {
        let found = trace[at..]
            .iter()
            .position(|l| l == line)
            .unwrap_or_else(|| panic!("{line:?} not in order in {trace:#?}"));
        at += found + 1;
    }
    // The hidden vendor file, the noauto entry, the root and the mounted /proc: untouched.
    for absent in ["vm.hidden", "/backup", "/dev/root", "proc /proc"] {
        assert!(
            !trace.iter().any(|l| l.contains(absent)),
            "{absent} in {trace:#?}"
        );
    }
    // /etc/modules through the native loader, parameters kept.
    let loads: Vec<&String> = trace.iter().filter(|l| l.starts_with("insmod")).collect();
    assert!(loads.iter().any(|l| l.contains("loop.ko")), "{loads:#?}");
    assert!(
        loads
            .iter()
            .any(|l| l.contains("vfat.ko") && l.ends_with("codepage=437")),
        "{loads:#?}"
    );
    assert!(!loads.iter().any(|l| l.contains("squashfs")), "{loads:#?}");
    assert_eq!(
        std::fs::read_to_string(root.join("proc/sys/net/ipv4/ip_forward")).unwrap(),
        "1\n",
        "the later file wins"
    );
    // Seeds are used once.
    assert!(!root.join("var/lib/seedrng/seed.credit").exists());
}

#[test]
fn the_clock_only_moves_forward_and_not_with_an_rtc() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "/etc/apk/world", "alpine-base\n");
    set_mtime(&root.join("etc/apk/world"), 1_750_000_000);
    let sys = RecordingSys::new(root);
    sys.set_wall_clock_to(Duration::from_secs(1_800_000_000));
    setup::run(&sys, Path::new("/etc/inittab"));
    assert!(!sys.trace().iter().any(|l| l.starts_with("date")));
    dev_file(root, "rtc0", b"");
    let sys = RecordingSys::new(root);
    setup::run(&sys, Path::new("/etc/inittab"));
    assert!(!sys.trace().iter().any(|l| l.starts_with("date")));
}

#[test]
fn each_failure_is_one_warning_and_the_other_steps_still_run() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    full_root(root);
    write(
        root,
        "/etc/sysctl.conf",
        "kernel.missing = 1\nnot a setting\n",
    );
    write(root, "/etc/modules", "no_such_module\n");
    write(
        root,
        "/etc/fstab",
        "tmpfs /tmp tmpfs defaults 0 0\nLABEL=nowhere /mnt ext4 defaults 0 0\n",
    );
    std::fs::remove_dir(root.join("sys/fs/cgroup")).unwrap();
    let sys = RecordingSys::new(root).with_kernel_release(RELEASE);
    sys.fail_on("hostname", 1);
    sys.fail_on("ip link", 19);
    sys.fail_on("mount -t tmpfs", 16);
    sys.fail_on("seed /dev/urandom 16", 22);
    let warnings = setup::run(&sys, Path::new("/etc/inittab"));
    let starts: Vec<&str> = warnings
        .iter()
        .map(|w| w.split(':').next().unwrap())
        .collect();
    assert_eq!(
        starts,
        [
            "system set-up, hostname",
            "system set-up, loopback",
            "system set-up, sysctl",
            "system set-up, modules",
            "system set-up, fstab",
            "system set-up, cgroup2",
            "system set-up, random seed",
        ],
        "{warnings:#?}"
    );
    let all = warnings.join("\n");
    for cause in [
        "cannot set the hostname to kiosk",
        "cannot bring lo up",
        "kernel.missing",
        "/etc/sysctl.conf: not key = value: not a setting",
        "no_such_module: not found",
        "mount tmpfs on /tmp",
        "LABEL=nowhere: no such device",
        "/sys/fs/cgroup is missing",
        "/var/lib/seedrng/seed.no-credit",
    ] {
        assert!(all.contains(cause), "{cause:?} in {all}");
    }
    // One line each.
    assert!(warnings.iter().all(|w| !w.contains('\n')), "{warnings:#?}");
    // The credited seed still went in, and the clock step still ran.
    let trace = sys.trace();
    assert!(trace.contains(&"seed /dev/urandom 32 bytes, credit 256 bits".to_string()));
}

#[test]
fn an_inittab_running_openrc_skips_the_set_up() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    full_root(root);
    write(
        root,
        "/etc/inittab",
        "::sysinit:/sbin/openrc sysinit\n::wait:/sbin/openrc default\n\
         ttyAMA0::respawn:/sbin/getty -L 0 ttyAMA0 vt100\n",
    );
    let sys = RecordingSys::new(root).with_kernel_release(RELEASE);
    let lines = setup::run(&sys, Path::new("/etc/inittab"));
    assert_eq!(
        lines,
        ["system set-up skipped: /etc/inittab runs openrc, which does it"]
    );
    assert!(sys.trace().is_empty(), "{:#?}", sys.trace());
    // A table without openrc (the busybox default when there is none) gets the set-up.
    write(root, "/etc/inittab", "::respawn:/sbin/openrc-like-name\n");
    assert!(!setup::inittab_runs_openrc(&sys, Path::new("/etc/inittab")));
}

#[test]
fn the_shutdown_saves_a_seed_and_the_time_that_the_next_set_up_uses() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "/proc/sys/kernel/random/poolsize", "256\n");
    write(root, "/dev/urandom", &"u".repeat(64));
    let sys = RecordingSys::new(root);
    assert_eq!(setup::save_state(&sys), Vec::<String>::new());
    let seeds: Vec<_> = std::fs::read_dir(root.join("var/lib/seedrng"))
        .unwrap()
        .map(|e| e.unwrap())
        .collect();
    assert_eq!(seeds.len(), 1, "one seed, no temporary file left");
    let seed = &seeds[0];
    let name = seed.file_name().into_string().unwrap();
    assert!(name == "seed.credit" || name == "seed.no-credit", "{name}");
    let meta = seed.metadata().unwrap();
    assert_eq!(meta.len(), 32, "256 bits of pool: 32 bytes");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let dir_mode = std::fs::metadata(root.join("var/lib/seedrng")).unwrap();
    assert_eq!(dir_mode.permissions().mode() & 0o777, 0o700);
    assert!(root.join("var/lib/ramboot/shutdowntime").exists());

    // The next boot: the seed goes into the pool once, the clock starts at the shutdown time.
    let sys = RecordingSys::new(root);
    sys.set_wall_clock_to(Duration::from_secs(1_000_000_000));
    setup::run(&sys, Path::new("/etc/inittab"));
    let trace = sys.trace();
    assert!(
        trace
            .iter()
            .any(|l| l.starts_with("seed /dev/urandom 32 bytes")),
        "{trace:?}"
    );
    assert!(trace.iter().any(|l| l.starts_with("date")), "{trace:?}");
    assert!(!seed.path().exists(), "a seed is used once");
}

#[test]
fn a_seed_that_cannot_be_saved_is_one_line_naming_why() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(
        root,
        "/var/lib/seedrng",
        "a file where the directory should be",
    );
    write(root, "/dev/urandom", &"u".repeat(600));
    let sys = RecordingSys::new(root);
    let lines = setup::save_state(&sys);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with("cannot save the random seed for the next boot: "),
        "{lines:?}"
    );
}
