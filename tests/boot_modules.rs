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
    let notes = f.record.decisions.unwrap().notes;
    assert!(
        notes
            .iter()
            .any(|n| n == "drivers from the modloop: only_in_modloop"),
        "{notes:?}"
    );
}
