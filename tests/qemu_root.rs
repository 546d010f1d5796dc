//! QEMU aarch64 scenarios for `root=` boots on the Debian arm64 kernel (storage drivers and ext4
//! are modules, loaded by ramboot from the initramfs).
// Tests drive real tools and processes (QEMU, mkfs, the built binary): the system boundary
// lint is for the library.
#![allow(clippy::disallowed_methods)]

mod support;

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;
use support::qemu::{out_dir, script, virtio_disk, Qemu};

struct Images {
    initrd: PathBuf,
    rootfs: PathBuf,
}

fn images() -> &'static Images {
    static I: OnceLock<Images> = OnceLock::new();
    I.get_or_init(|| {
        let initrd = out_dir().join("root-initrd");
        let built = script(
            "make-initramfs.sh",
            &[initrd.to_str().unwrap(), "-F", "base,virtio,ext4"],
        );
        eprintln!("{built}");
        let rootfs = out_dir().join("rootfs.img");
        script("make-rootfs.sh", &[rootfs.to_str().unwrap()]);
        Images { initrd, rootfs }
    })
}

fn disk() -> Vec<String> {
    let mut d = virtio_disk(&images().rootfs, "d0");
    d[1].push_str(",snapshot=on");
    d
}

const BOOT: Duration = Duration::from_secs(120);

#[test]
fn a_root_dev_vda_boots_busybox_init_with_timeline() {
    let i = images();
    let mut q = Qemu::virt(
        "a-root-vda",
        &i.initrd,
        "console=ttyAMA0 root=/dev/vda rootfstype=ext4",
        &disk(),
    );
    q.expect("RAMBOOT-DEMO: init is running", BOOT);
    let text = q.wait_exit(BOOT);
    assert!(
        text.contains("RAMBOOT-DEMO: timeline {\"init_start_ms\""),
        "{text}"
    );
    assert!(text.contains("\"name\":\"root\""), "{text}");
    assert!(
        text.contains("RAMBOOT-DEMO: initramfs freed: yes"),
        "{text}"
    );
    assert!(
        text.contains("ramboot: kernel "),
        "the one-line summary: {text}"
    );
    let mounts = text
        .lines()
        .find(|l| l.contains("RAMBOOT-DEMO: mounts:"))
        .unwrap();
    for m in [" /dev ", " /proc ", " /sys ", " /run ", " /dev/pts "] {
        assert!(mounts.contains(m), "{m} moved into the new root: {mounts}");
    }
}

#[test]
fn b_root_by_label() {
    let i = images();
    let mut q = Qemu::virt(
        "b-root-label",
        &i.initrd,
        "console=ttyAMA0 root=LABEL=rootfs",
        &disk(),
    );
    q.expect("RAMBOOT-DEMO: init is running", BOOT);
    q.wait_exit(BOOT);
}

#[test]
fn c_missing_root_device_gives_rescue_shell() {
    let i = images();
    let mut q = Qemu::virt(
        "c-root-missing",
        &i.initrd,
        "console=ttyAMA0 root=/dev/vdb rootfstype=ext4",
        &disk(),
    );
    q.expect("root device /dev/vdb not found after", BOOT);
    q.use_rescue_shell_and_power_off(BOOT);
}

#[test]
fn d_missing_init_gives_rescue_shell() {
    let i = images();
    let mut q = Qemu::virt(
        "d-init-missing",
        &i.initrd,
        "console=ttyAMA0 root=/dev/vda init=/nonexistent",
        &disk(),
    );
    q.expect("/nonexistent does not exist in the new root /sysroot", BOOT);
    q.use_rescue_shell_and_power_off(BOOT);
}

#[test]
fn e_panic_option_ends_in_kernel_panic() {
    let i = images();
    let mut q = Qemu::virt(
        "e-panic",
        &i.initrd,
        "console=ttyAMA0 root=/dev/vdb panic=-1",
        &disk(),
    );
    q.expect("panic= is set: exiting so the kernel panics", BOOT);
    q.expect("Attempted to kill init", BOOT);
    let text = q.wait_exit(BOOT);
    assert!(
        !text.contains("Launching initramfs emergency recovery shell"),
        "{text}"
    );
}
