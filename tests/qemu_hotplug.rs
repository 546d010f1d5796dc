//! QEMU aarch64, service mode (`ramboot_init`): a USB stick attached after boot through the
//! QEMU monitor (`drive_add`, `device_add usb-storage` on a qemu-xhci bus) gets its drivers
//! from the modloop (the initramfs has neither usb-storage nor sd_mod) and mdev's
//! `/dev/usbdisk` links, which go away with it (`device_del`). And the hardware watchdog
//! (`ramboot_watchdog`, QEMU's stand-in: the `softdog` module): fed, so the machine outlives
//! several timeouts, and magic-closed at power-off (the kernel says nothing of it).
// Tests drive real tools and processes (QEMU, the built binary): the system boundary
// lint is for the library.
#![allow(clippy::disallowed_methods)]

mod support;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;
use support::qemu::{monitor, monitor_socket, out_dir, script, stage_card, Qemu};

const BOOT: Duration = Duration::from_secs(240);

struct Artifacts {
    /// The demo media with an apkovl whose inittab gives a shell on the console.
    media: PathBuf,
    /// The demo media with an apkovl whose inittab waits past the watchdog's timeouts.
    media_watchdog: PathBuf,
    /// virtio, vfat and softdog only: the USB and SCSI disk drivers must come from the modloop.
    initrd: PathBuf,
    /// A 4 MiB stick with an MBR and one partition.
    stick: PathBuf,
}

/// The service-mode system's table: a marker, then a shell on the console.
const INITTAB: &str = "\
::sysinit:/bin/busybox echo HOTPLUG-TEST: sysinit done
ttyAMA0::respawn:/bin/sh
";

/// The watchdog scenario's table and its one program (a shell command in the table would be
/// `exec`'d whole, so the steps live in a script).
const WATCHDOG_INITTAB: &str = "::once:/etc/ramboot/wait-past-watchdog\n";
const WATCHDOG_SCRIPT: &str = "#!/bin/sh
echo \"WATCHDOG-TEST: waiting 20 s, over three timeouts\"
sleep 20
echo \"WATCHDOG-TEST: still running\"
poweroff
";

/// A card of the demo's stage (`make-media.sh`'s OUTDIR) whose apkovl is like the demo's
/// (hostname, world) with this inittab and these executable files (paths under `etc/`).
fn media_with(stage: &Path, name: &str, inittab: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = out_dir().join(format!("{name}-work"));
    let tree = dir.join("ovl");
    let _ = std::fs::remove_dir_all(&tree);
    std::fs::create_dir_all(tree.join("etc/apk")).unwrap();
    std::fs::write(tree.join("etc/hostname"), "ramboot-demo\n").unwrap();
    std::fs::write(tree.join("etc/apk/world"), "alpine-base\ndemo-service\n").unwrap();
    std::fs::write(tree.join("etc/inittab"), inittab).unwrap();
    for (path, text) in files {
        use std::os::unix::fs::PermissionsExt;
        let file = tree.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, text).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::os::unix::fs::symlink("/media/vda1/cache", tree.join("etc/apk/cache")).unwrap();
    // The card from the demo's stage, its apkovl written by `ramboot sdimage` from the tree.
    let media = out_dir().join(format!("{name}.img"));
    stage_card(
        &stage.join("stage"),
        &media,
        &[
            "--overlay",
            tree.to_str().unwrap(),
            "--hostname",
            "ramboot-demo",
        ],
    );
    media
}

/// A raw disk with an MBR holding one Linux partition from sector 2048 to the end.
fn stick(path: &Path) {
    let sectors: u32 = 8192;
    let mut img = vec![0u8; sectors as usize * 512];
    let entry = &mut img[446..462];
    entry[4] = 0x83;
    entry[8..12].copy_from_slice(&2048u32.to_le_bytes());
    entry[12..16].copy_from_slice(&(sectors - 2048).to_le_bytes());
    img[510] = 0x55;
    img[511] = 0xAA;
    std::fs::write(path, img).unwrap();
}

fn artifacts() -> &'static Artifacts {
    static A: OnceLock<Artifacts> = OnceLock::new();
    A.get_or_init(|| {
        let dir = out_dir().join("hotplug");
        script("make-media.sh", &[dir.to_str().unwrap()]);
        // Cards of the demo's stage with apkovls of the service-mode inittabs.
        let media = media_with(&dir, "hotplug-media", INITTAB, &[]);
        let media_watchdog = media_with(
            &dir,
            "watchdog-media",
            WATCHDOG_INITTAB,
            &[("etc/ramboot/wait-past-watchdog", WATCHDOG_SCRIPT)],
        );
        let key = std::fs::read_dir(dir.join("keys"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "pub"))
            .unwrap();
        let sig = std::fs::read_dir(dir.join("initramfs-files"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let sig_file = format!(
            "{}:/var/cache/misc/{}",
            sig.display(),
            sig.file_name().unwrap().to_str().unwrap()
        );
        let initrd = out_dir().join("hotplug-initrd");
        script(
            "make-initramfs.sh",
            &[
                initrd.to_str().unwrap(),
                "-F",
                "base,virtio,vfat",
                "-m",
                "softdog",
                "--apk-key",
                key.to_str().unwrap(),
                "--file",
                &sig_file,
            ],
        );
        let stick_img = out_dir().join("hotplug-stick.img");
        stick(&stick_img);
        Artifacts {
            media,
            media_watchdog,
            initrd,
            stick: stick_img,
        }
    })
}

/// Issue 9: a USB stick attached after boot gets its drivers and `/dev/usbdisk`.
#[test]
fn a_usb_stick_attached_after_boot_gets_its_driver_and_dev_usbdisk() {
    let a = artifacts();
    let mon = out_dir().join("hotplug.monitor");
    let mut extra = virtio_media(&a.media);
    extra.extend(["-device".into(), "qemu-xhci,id=xhci".into()]);
    extra.extend(monitor_socket(&mon));
    let mut q = Qemu::virt(
        "hotplug-usb",
        &a.initrd,
        "console=ttyAMA0 ramboot_init",
        &extra,
    );
    // The listener's thread and the inittab start side by side: either line may come first.
    q.expect_after(0, "hotplug: listening for devices", BOOT);
    q.expect_after(0, "HOTPLUG-TEST: sysinit done", BOOT);
    // The console shell reads: its answer, computed so the echo of the typing cannot match.
    q.send("echo SHELL-$((6*7))\n");
    let ready = q.expect_after(0, "SHELL-42", BOOT);

    let added = monitor(
        &mon,
        &format!(
            "drive_add 0 if=none,id=stick,file={},format=raw,snapshot=on",
            a.stick.display()
        ),
    );
    assert!(added.contains("OK"), "drive_add: {added}");
    let answer = monitor(
        &mon,
        "device_add usb-storage,bus=xhci.0,drive=stick,id=stick0",
    );
    assert!(!answer.contains("Error"), "device_add: {answer}");

    let linked = q.expect_after(ready, "hotplug: /dev/usbdisk -> sda", BOOT);
    q.expect_after(linked, "hotplug: /dev/usbdisk1 -> sda1", BOOT);
    q.send(
        "ls -l /dev/usbdisk* | sed 's/^/LS: /'; \
         cut -d' ' -f1 /proc/modules | grep -e '^usb_storage$' -e '^sd_mod$' -e '^uas$' \
         | sed 's/^/MOD: /'; echo LISTED-$((2*3))\n",
    );
    let listed = q.expect_after(linked, "LISTED-6", BOOT);
    let text = q.text();
    let after = &text[ready..listed];
    for needle in [
        "usbdisk -> sda",
        "usbdisk1 -> sda1",
        "MOD: usb_storage",
        "MOD: sd_mod",
    ] {
        assert!(after.contains(needle), "{needle:?} missing in:\n{after}");
    }
    // One line per device: the interface's drivers, then the SCSI disk's (with their
    // dependencies, e.g. "loaded scsi_common, scsi_mod, uas, usb_storage for …/2-1:1.0").
    let loaded = |module: &str| {
        after
            .lines()
            .any(|l| l.contains("hotplug: loaded ") && l.split([' ', ',']).any(|w| w == module))
    };
    assert!(loaded("usb_storage") && loaded("sd_mod"), "{after}");

    // Pulled out: the links go with it.
    let answer = monitor(&mon, "device_del stick0");
    assert!(!answer.contains("Error"), "device_del: {answer}");
    let gone = q.expect_after(listed, "hotplug: /dev/usbdisk removed (sda is gone)", BOOT);
    q.send("ls /dev/usbdisk* 2>&1 | sed 's/^/AFTER: /'; echo CHECKED-$((2*3)); poweroff\n");
    let checked = q.expect_after(gone, "CHECKED-6", BOOT);
    let text = q.wait_exit(BOOT);
    assert!(
        text[gone..checked].contains("AFTER: ls: /dev/usbdisk*: No such file or directory"),
        "{}",
        &text[gone..checked]
    );
    assert!(
        !text.contains("hotplug: cannot"),
        "a hotplug warning:\n{text}"
    );
}

fn virtio_media(image: &Path) -> Vec<String> {
    vec![
        "-drive".into(),
        format!(
            "if=none,id=d0,file={},format=raw,snapshot=on",
            image.display()
        ),
        "-device".into(),
        "virtio-blk-pci,drive=d0".into(),
    ]
}

/// Issue 9: `ramboot_watchdog=6` with softdog: PID 1 feeds it (the machine outlives three
/// timeouts) and magic-closes it at power-off, after everything else and before `reboot(2)`.
#[test]
fn the_watchdog_is_fed_while_the_system_runs_and_magic_closed_at_poweroff() {
    let a = artifacts();
    let mut q = Qemu::virt(
        "watchdog-softdog",
        &a.initrd,
        "console=ttyAMA0 ramboot_init ramboot_watchdog=6 modules=softdog",
        &virtio_media(&a.media_watchdog),
    );
    let armed = q.expect_after(
        0,
        "watchdog: /dev/watchdog armed with a 6 s timeout, fed every 2 s",
        BOOT,
    );
    let waited = q.expect_after(armed, "WATCHDOG-TEST: still running", BOOT);
    let down = q.expect_after(waited, "Requesting system poweroff", BOOT);
    let stopped = q.expect_after(down, "watchdog: /dev/watchdog stopped", BOOT);
    q.expect_after(stopped, "reboot: Power down", BOOT);
    let text = q.wait_exit(BOOT);
    // softdog prints nothing on a magic close; an unfed or unclosed one would say so (or
    // reset the machine, which -no-reboot turns into an early exit before the markers).
    for bad in [
        "watchdog did not stop",
        "Initiating system reboot",
        "Unexpected close",
    ] {
        assert!(!text.contains(bad), "{bad:?} in:\n{text}");
    }
}
