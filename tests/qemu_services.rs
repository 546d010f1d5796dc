//! QEMU aarch64 scenarios for service mode (issue 9): the diskless demo media booted with
//! `ramboot_init`, so ramboot stays PID 1 of the new root (re-executed from a sealed memfd) and
//! supervises the apkovl's `/etc/ramboot/services` with no OpenRC. Media from
//! `qemu/make-media.sh` (`services.img`: see `make_services` there).
// Tests drive real tools and processes (QEMU, mkfs, the built binary): the system boundary
// lint is for the library.
#![allow(clippy::disallowed_methods)]

mod support;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;
use support::qemu::{out_dir, script, Qemu};

struct Artifacts {
    media: PathBuf,
    /// virtio + vfat drivers, the trusted key and the modloop signature.
    initrd: PathBuf,
}

fn artifacts() -> &'static Artifacts {
    static A: OnceLock<Artifacts> = OnceLock::new();
    A.get_or_init(|| {
        let media = out_dir().join("services-media");
        script("make-media.sh", &[media.to_str().unwrap()]);
        let key = only_file(&media.join("keys"), ".pub");
        let sig = only_file(&media.join("initramfs-files"), "");
        let sig_name = sig.file_name().unwrap().to_str().unwrap().to_string();
        let initrd = out_dir().join("svc-initrd");
        let file = format!("{}:/var/cache/misc/{sig_name}", sig.display());
        let text = script(
            "make-initramfs.sh",
            &[
                initrd.to_str().unwrap(),
                "-F",
                "base,virtio,vfat",
                "--apk-key",
                key.to_str().unwrap(),
                "--file",
                &file,
            ],
        );
        eprintln!("{text}");
        Artifacts { media, initrd }
    })
}

fn only_file(dir: &Path, suffix: &str) -> PathBuf {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(suffix))
        .unwrap()
}

fn disk(image: &str) -> Vec<String> {
    let img = artifacts().media.join(image);
    vec![
        "-drive".into(),
        format!(
            "if=none,id=d0,file={},format=raw,snapshot=on",
            img.display()
        ),
        "-device".into(),
        "virtio-blk-pci,drive=d0".into(),
    ]
}

const BOOT: Duration = Duration::from_secs(180);

/// Milliseconds in a printk timestamp `[    2.345678]` at the start of `line`'s kernel part.
fn printk_ms(line: &str) -> f64 {
    let open = line
        .find('[')
        .unwrap_or_else(|| panic!("no timestamp in {line}"));
    let close = open + line[open..].find(']').unwrap();
    line[open + 1..close].trim().parse::<f64>().unwrap() * 1000.0
}

/// A number after `key` in `text` (`"at_ms":123.4`).
fn number_after(text: &str, key: &str) -> f64 {
    let at = text
        .find(key)
        .unwrap_or_else(|| panic!("{key} not in {text}"))
        + key.len();
    let digits: String = text[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    digits.parse().unwrap()
}

/// Issue 9: `ramboot_init` on the diskless demo media. The boot hands off to ramboot itself
/// through a memfd, PID 1 says it is in system mode, the apkovl's service runs supervised (no
/// OpenRC anywhere on the media), and busybox `poweroff` from the service (SIGUSR2 to PID 1)
/// runs the inittab's shutdown action and powers the machine off. On the instruction clock,
/// so the handoff → first service exec time printed is guest time.
#[test]
fn ramboot_init_supervises_the_apkovls_service_without_openrc() {
    let a = artifacts();
    let mut extra = disk("services.img");
    extra.extend(["-icount".into(), "shift=0,sleep=on".into()]);
    let mut q = Qemu::virt(
        "svc-a-hello",
        &a.initrd,
        "console=ttyAMA0 ramboot_init init=/bin/false ramboot_demo=bench",
        &extra,
    );
    q.expect("RAMBOOT-SERVICES: done, powering off", BOOT);
    let text = q.wait_exit(BOOT);
    assert!(
        text.contains("ramboot_init: ramboot stays PID 1 of the new root (service mode); init=/bin/false is ignored"),
        "{text}"
    );
    assert!(
        text.contains("ramboot: system mode: / is tmpfs, not the initramfs"),
        "{text}"
    );
    assert!(
        text.contains("RAMBOOT-SERVICES: hello from a supervised service; PID 1 runs /memfd:ramboot (deleted), hostname=ramboot-services"),
        "{text}"
    );
    let shutdown = text
        .find("RAMBOOT-SERVICES: shutdown action")
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        shutdown > text.find("RAMBOOT-SERVICES: done, powering off").unwrap(),
        "{text}"
    );
    assert!(text.contains("reboot: Power down"), "{text}");
    // Handoff → first service exec on the instruction clock.
    let started = text
        .lines()
        .find(|l| l.contains("RAMBOOT-SERVICES: started"))
        .unwrap();
    let timeline = text
        .lines()
        .find(|l| l.contains("RAMBOOT-SERVICES: timeline"))
        .unwrap();
    let handoff = number_after(timeline, "\"handoff_ms\":");
    let first_service = printk_ms(started.split_once("started").unwrap().1);
    eprintln!(
        "BENCH handoff → first service: {:.1} ms (instruction clock; handoff at {handoff:.1} ms)",
        first_service - handoff
    );
    assert!(first_service > handoff, "{started} / {timeline}");
    // Idle: the supervisor's thread does not wake while nothing happens (the count of every
    // thread, the hotplug listener's included, is printed for the benchmark).
    let idle = text
        .lines()
        .find(|l| l.contains("RAMBOOT-SERVICES: idle PID 1"))
        .unwrap_or_else(|| panic!("{text}"));
    eprintln!("BENCH {}", &idle[idle.find("RAMBOOT-SERVICES").unwrap()..]);
    let before = number_after(idle, "before memfd:ramboot:");
    let after = number_after(idle, "after memfd:ramboot:");
    assert_eq!(before, after, "PID 1's main thread woke while idle: {idle}");
}
