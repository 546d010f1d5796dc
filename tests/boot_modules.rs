//! The module loader across the boot's stages, on the recording double: made by the drivers
//! stage, owned by the boot and lent to every later stage, including while the modloop is
//! verified and mounted on another thread.
// Tests drive real tools and processes (QEMU, mkfs, the built binary): the system boundary
// lint is for the library.
#![allow(clippy::disallowed_methods)]

mod support;

use ramboot::boot;
use ramboot::sys::RecordingSys;
use std::fs;
use support::hw::*;

/// The apkovl's device is mounted while the modloop job runs: that mount must have the loader.
/// Here its first vfat mount fails with EINVAL (a missing character set), which the loader
/// answers by loading the other character sets and mounting again. Before, the root was built
/// with the loader lent to the modloop's thread only, so the retry never happened.
#[test]
fn the_root_is_built_with_the_loader_while_the_modloop_mounts() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::create_dir_all(root.join("proc")).unwrap();
    fs::write(
        root.join("proc/cmdline"),
        "apkovl=/dev/vdb:host.apkovl.tar.gz\n",
    )
    .unwrap();
    let mut modules = standard_modules(root);
    modules
        .module("kernel/fs/nls/nls_utf8.ko", &[])
        .module("kernel/fs/nls/nls_iso8859-1.ko", &[]);
    modules.write();
    // The boot medium, with a modloop so its job runs beside the root's build.
    sys_block(root, "vda", 254, 0, None, 16384, false);
    sys_block(root, "vda1", 254, 1, Some((1, "vda")), 2048, false);
    dev_file(root, "vda1", &fat16_image(0x1234ABCD, Some("ALPINE")));
    let media = root.join("media/vda1");
    fs::create_dir_all(media.join("apks")).unwrap();
    fs::write(media.join("apks/.boot_repository"), b"").unwrap();
    fs::create_dir_all(media.join("boot")).unwrap();
    fs::write(media.join("boot/modloop-test"), squashfs_image()).unwrap();
    // The apkovl's card, mounted elsewhere already (so discovery does not mount it).
    sys_block(root, "vdb", 254, 16, None, 2048, true);
    dev_file(root, "vdb", &fat16_image(0x5678, Some("CONFIG")));
    fs::write(root.join("proc/mounts"), "/dev/vdb /mnt/card vfat ro 0 0\n").unwrap();
    fs::create_dir_all(root.join("mnt/card")).unwrap();

    let sys = RecordingSys::new(root).with_kernel_release(RELEASE);
    sys.fail_on("/dev/vdb /media/vdb", 22);
    let _ = boot::run_recorded(&sys, Some(0));
    let trace = sys.trace();
    let mounts = trace
        .iter()
        .filter(|l| l.ends_with("/dev/vdb /media/vdb"))
        .count();
    assert_eq!(
        mounts, 2,
        "mounted, then again after the character sets: {trace:#?}"
    );
    assert!(
        trace
            .iter()
            .any(|l| l.starts_with("insmod") && l.contains("nls_utf8")),
        "{trace:#?}"
    );
}

/// Once the modloop's thread is joined the boot holds the loader alone again: it re-reads the
/// modloop's module index and loads drivers for the devices the initramfs had none for.
#[test]
fn the_loader_is_reloaded_from_the_modloop_and_loads_its_drivers() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::create_dir_all(root.join("proc")).unwrap();
    fs::write(root.join("proc/cmdline"), "\n").unwrap();
    standard_modules(root);
    sys_block(root, "vda", 254, 0, None, 16384, false);
    sys_block(root, "vda1", 254, 1, Some((1, "vda")), 2048, false);
    dev_file(root, "vda1", &fat16_image(0x1234ABCD, Some("ALPINE")));
    let media = root.join("media/vda1");
    fs::create_dir_all(media.join("apks")).unwrap();
    fs::write(media.join("apks/.boot_repository"), b"").unwrap();
    fs::create_dir_all(media.join("boot")).unwrap();
    fs::write(media.join("boot/modloop-test"), squashfs_image()).unwrap();
    // A device only the modloop has a driver for.
    sys_modalias(root, "platform/fake/gadget", "virtio:d00000005v00001AF4");
    // What the modloop's mount shows.
    let tree = root.join(".modloop/modules").join(RELEASE);
    fs::create_dir_all(tree.join("kernel/extra")).unwrap();
    fs::write(
        tree.join("kernel/extra/only_in_modloop.ko"),
        module_bytes("only_in_modloop"),
    )
    .unwrap();
    fs::write(
        tree.join("modules.dep"),
        "kernel/extra/only_in_modloop.ko:\n",
    )
    .unwrap();
    fs::write(
        tree.join("modules.alias"),
        "alias virtio:d00000005v* only_in_modloop\n",
    )
    .unwrap();

    let sys = RecordingSys::new(root).with_kernel_release(RELEASE);
    let f = boot::run_recorded(&sys, Some(0));
    let trace = sys.trace();
    let mounted = trace
        .iter()
        .position(|l| l == "mount -t squashfs -o ro /dev/loop0 /.modloop")
        .unwrap_or_else(|| panic!("{trace:#?}"));
    let driver = trace
        .iter()
        .position(|l| l.starts_with("insmod") && l.contains("only_in_modloop.ko"))
        .unwrap_or_else(|| panic!("{trace:#?}"));
    assert!(mounted < driver, "{trace:#?}");
    let marks: Vec<&str> = f.timeline.marks.iter().map(|(m, _)| m.as_str()).collect();
    assert!(marks.contains(&"modloop index read"), "{marks:?}");
    let notes = f.record.decisions.unwrap().notes;
    assert!(
        notes
            .iter()
            .any(|n| n == "drivers from the modloop: only_in_modloop"),
        "{notes:?}"
    );
}

/// When the modloop has no driver either for the devices the initramfs had none for, nothing
/// loads from it before the handoff: its module index (1.3 MB of aliases on a Debian kernel,
/// ≈80 ms of parsing on the benchmark card's core) is not read. The mount is made all the same.
#[test]
fn the_modloop_index_is_not_read_when_no_device_needs_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::create_dir_all(root.join("proc")).unwrap();
    fs::write(root.join("proc/cmdline"), "\n").unwrap();
    standard_modules(root);
    sys_block(root, "vda", 254, 0, None, 16384, false);
    sys_block(root, "vda1", 254, 1, Some((1, "vda")), 2048, false);
    dev_file(root, "vda1", &fat16_image(0x1234ABCD, Some("ALPINE")));
    let media = root.join("media/vda1");
    fs::create_dir_all(media.join("apks")).unwrap();
    fs::write(media.join("apks/.boot_repository"), b"").unwrap();
    fs::create_dir_all(media.join("boot")).unwrap();
    fs::write(media.join("boot/modloop-test"), squashfs_image()).unwrap();
    // A device no module is for (QEMU's virt machine has a few).
    sys_modalias(root, "platform/fake/gadget", "virtio:d00000005v00001AF4");
    let tree = root.join(".modloop/modules").join(RELEASE);
    fs::create_dir_all(&tree).unwrap();
    fs::write(tree.join("modules.dep"), "kernel/extra/other.ko:\n").unwrap();
    fs::write(
        tree.join("modules.alias"),
        "alias virtio:d00000009v* other\n",
    )
    .unwrap();

    let sys = RecordingSys::new(root).with_kernel_release(RELEASE);
    let f = boot::run_recorded(&sys, Some(0));
    let trace = sys.trace();
    assert!(
        trace
            .iter()
            .any(|l| l == "mount -t squashfs -o ro /dev/loop0 /.modloop"),
        "{trace:#?}"
    );
    let marks: Vec<&str> = f.timeline.marks.iter().map(|(m, _)| m.as_str()).collect();
    assert!(marks.contains(&"modloop mounted"), "{marks:?}");
    assert!(!marks.contains(&"modloop index read"), "{marks:?}");
}

/// A diskless boot's media, present at coldplug: vda1, FAT, with a boot repository. `modules=`
/// names the USB storage stack, which has nothing to do with it.
fn media_and_usb_storage_stack(root: &std::path::Path, cmdline: &str) {
    fs::create_dir_all(root.join("proc")).unwrap();
    fs::write(root.join("proc/cmdline"), format!("{cmdline}\n")).unwrap();
    let mut modules = standard_modules(root);
    modules
        .module("kernel/drivers/scsi/scsi_mod.ko", &[])
        .module(
            "kernel/drivers/scsi/sd_mod.ko",
            &["kernel/drivers/scsi/scsi_mod.ko"],
        )
        .module("kernel/drivers/usb/core/usbcore.ko", &[])
        .module(
            "kernel/drivers/usb/storage/usb-storage.ko",
            &[
                "kernel/drivers/usb/core/usbcore.ko",
                "kernel/drivers/scsi/scsi_mod.ko",
            ],
        );
    modules.write();
    sys_block(root, "vda", 254, 0, None, 16384, false);
    sys_block(root, "vda1", 254, 1, Some((1, "vda")), 2048, false);
    dev_file(root, "vda1", &fat16_image(0x1234ABCD, Some("ALPINE")));
    sys_modalias(
        root,
        "pci0000:00/0000:00:01.0/virtio0",
        "virtio:d00000002v00001AF4",
    );
    fs::create_dir_all(root.join("media/vda1/apks")).unwrap();
    fs::write(root.join("media/vda1/apks/.boot_repository"), b"").unwrap();
}

/// The position of the first trace line containing both parts, or a failure showing the trace.
fn line_of(trace: &[String], a: &str, b: &str) -> usize {
    trace
        .iter()
        .position(|l| l.contains(a) && l.contains(b))
        .unwrap_or_else(|| panic!("no line with {a} and {b}: {trace:#?}"))
}

/// `modules=` loads beside the media search: the boot media is mounted while `usb_storage`
/// is still loading. The double holds the search's disk driver until `usb_storage` has started
/// and `usb_storage` until the media is mounted, so the two must overlap. Before, the drivers
/// stage loaded every module of `modules=` before the search began, and that load waited in
/// vain.
#[test]
fn the_media_search_runs_while_unrelated_boot_drivers_load() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    media_and_usb_storage_stack(
        root,
        "modules=loop,squashfs,sd-mod,usb-storage modloop=none",
    );
    let sys = RecordingSys::new(root).with_kernel_release(RELEASE);
    sys.hold_module_until("virtio_blk.ko", "usb-storage.ko");
    sys.hold_module_until("usb-storage.ko", "/dev/vda1 /media/vda1");
    let f = boot::run_recorded(&sys, Some(0));
    let trace = sys.trace();
    // Neither hold waited in vain: the disk's driver was loading when usb_storage began, and
    // usb_storage was loading when the media was mounted.
    assert_eq!(
        sys.held_loads_that_gave_up(),
        Vec::<String>::new(),
        "{trace:#?}"
    );
    let usb_storage = line_of(&trace, "insmod", "usb-storage.ko");
    assert!(
        line_of(&trace, "mount", "/dev/vda1 /media/vda1") > usb_storage,
        "{trace:#?}"
    );
    // Each module loaded once, after its own dependencies, though two threads wanted them.
    for m in [
        "scsi_mod.ko",
        "sd_mod.ko",
        "usbcore.ko",
        "usb-storage.ko",
        "virtio_blk.ko",
    ] {
        let n = trace
            .iter()
            .filter(|l| l.starts_with("insmod") && l.contains(m))
            .count();
        assert_eq!(n, 1, "{m}: {trace:#?}");
    }
    assert!(line_of(&trace, "insmod", "scsi_mod.ko") < line_of(&trace, "insmod", "sd_mod.ko"));
    assert!(line_of(&trace, "insmod", "usbcore.ko") < usb_storage);
    assert!(line_of(&trace, "insmod", "scsi_mod.ko") < usb_storage);
    // The drivers stage is in the timeline, each load with its own time.
    assert!(f.timeline.stages.iter().any(|s| s.name == "drivers"));
    let timed: Vec<&str> = f.timeline.modules.iter().map(|m| m.name.as_str()).collect();
    for m in ["usb_storage", "sd_mod", "scsi_mod", "virtio_blk", "loop"] {
        assert!(timed.contains(&m), "{m} not timed: {timed:?} {:?}", f.end);
    }
}

/// `root=`: the device search runs beside the boot drivers, but the root is mounted only once
/// they are all in (its filesystem module may be one of them).
#[test]
fn the_root_is_mounted_after_the_boot_drivers() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    media_and_usb_storage_stack(
        root,
        "root=/dev/vda1 rootfstype=vfat modules=sd-mod,usb-storage",
    );
    let sys = RecordingSys::new(root).with_kernel_release(RELEASE);
    let _ = boot::run_recorded(&sys, Some(0));
    let trace = sys.trace();
    let mount = line_of(&trace, "mount", "/dev/vda1 /sysroot");
    for m in ["sd_mod.ko", "usb-storage.ko", "scsi_mod.ko", "usbcore.ko"] {
        assert!(line_of(&trace, "insmod", m) < mount, "{m}: {trace:#?}");
    }
}

/// The CPU-feature modules of coldplug (crypto and checksum accelerations) wait for the boot
/// drivers' job instead of delaying the media search: loaded, but after the media's mount.
#[test]
fn cpu_feature_modules_load_after_the_media_search() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    media_and_usb_storage_stack(root, "modules=sd-mod modloop=none");
    let mut modules = standard_modules(root);
    modules
        .module("kernel/drivers/scsi/scsi_mod.ko", &[])
        .module(
            "kernel/drivers/scsi/sd_mod.ko",
            &["kernel/drivers/scsi/scsi_mod.ko"],
        )
        .module("kernel/arch/arm64/crypto/crct10dif-ce.ko", &[])
        .alias("cpu:type:*:feature:*0011*", "crct10dif_ce");
    modules.write();
    sys_modalias(
        root,
        "system/cpu/cpu0",
        "cpu:type:aarch64:feature:,0000,0001,0011",
    );
    let sys = RecordingSys::new(root).with_kernel_release(RELEASE);
    let _ = boot::run_recorded(&sys, Some(0));
    let trace = sys.trace();
    let media = line_of(&trace, "mount", "/dev/vda1 /media/vda1");
    assert!(
        line_of(&trace, "insmod", "crct10dif-ce.ko") > media,
        "{trace:#?}"
    );
    assert!(
        line_of(&trace, "insmod", "virtio_blk.ko") < media,
        "{trace:#?}"
    );
}

/// Issue 10 (3): when the kernel has no IPv6 yet (Alpine builds it as a module), the network
/// stage loads `ipv6` so the kernel can do SLAAC.
#[test]
fn the_network_stage_loads_ipv6_when_the_kernel_lacks_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::create_dir_all(root.join("proc")).unwrap();
    fs::write(root.join("proc/cmdline"), "ip=dhcp\n").unwrap();
    let mut modules = standard_modules(root);
    modules.module("kernel/net/ipv6/ipv6.ko", &[]);
    modules.write();
    fs::create_dir_all(root.join("sys/class/net")).unwrap();
    let sys = RecordingSys::new(root).with_kernel_release(RELEASE);
    let _ = boot::run_recorded(&sys, Some(0));
    let trace = sys.trace();
    let ipv6 = |t: &[String]| {
        t.iter()
            .any(|l| l.starts_with("insmod") && l.contains("ipv6.ko"))
    };
    assert!(ipv6(&trace), "{trace:#?}");

    // With IPv6 there already, nothing is loaded.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::create_dir_all(root.join("proc/sys/net/ipv6")).unwrap();
    fs::write(root.join("proc/cmdline"), "ip=dhcp\n").unwrap();
    let mut modules = standard_modules(root);
    modules.module("kernel/net/ipv6/ipv6.ko", &[]);
    modules.write();
    let sys = RecordingSys::new(root).with_kernel_release(RELEASE);
    let _ = boot::run_recorded(&sys, Some(0));
    assert!(!ipv6(&sys.trace()), "{:#?}", sys.trace());
}

/// Issue 10 (1): the Pi 3's smsc95xx is behind a USB hub that enumerates after the SD card was
/// found: its uevent comes once the device search is over. The network stage loads its driver
/// (a timeline mark says when) and gets a lease; before, "no network interface was found".
#[test]
fn a_usb_nic_appearing_after_the_media_search_is_driven_by_the_network_stage() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    media_and_usb_storage_stack(root, "ip=dhcp");
    fs::create_dir_all(root.join("sys/class/net")).unwrap();
    let sys = RecordingSys::new(root).with_kernel_release(RELEASE);
    let delay = std::time::Duration::from_secs(3);
    late_usb_nic(&mut standard_modules(root), &sys, delay);
    sys.serve_dhcp(delay / 1000, support::dhcp::slirp_like(0)); // 3 ms per answer
    let f = boot::run_recorded(&sys, Some(0));
    let marks: Vec<&str> = f.timeline.marks.iter().map(|(m, _)| m.as_str()).collect();
    assert!(
        marks.contains(&"drivers loaded while the network waited"),
        "{marks:?} {:#?}",
        sys.trace()
    );
    assert!(
        marks
            .iter()
            .any(|m| m.starts_with("network up by DHCPv4: eth0")),
        "{marks:?}"
    );
}
