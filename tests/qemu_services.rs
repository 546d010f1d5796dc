//! QEMU aarch64 scenarios for service mode (issue 9): the diskless demo media booted with
//! `ramboot_init`, so ramboot stays PID 1 of the new root (re-executed from a sealed memfd) and
//! supervises the apkovl's `/etc/ramboot/services` with no OpenRC. Media from
//! `qemu/make-media.sh` (`services.img`: see `make_services` there; `openrc.img`: Alpine's
//! inittab with stand-ins for openrc and getty, see `make_openrc`; `crashy.img`: a service that
//! crashes at once, see `make_crashy`).
// Tests drive real tools and processes (QEMU, mkfs, the built binary): the system boundary
// lint is for the library.
#![allow(clippy::disallowed_methods)]

mod support;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;
use support::qemu::{
    monitor, monitor_socket, number_after, out_dir, script, virtio_snapshot, Qemu,
};

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
    virtio_snapshot(&artifacts().media.join(image))
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
    // A tmpfs root, /dev and /proc have nothing to lose: no noise about them at power-down.
    assert!(
        !text.contains("cannot unmount") && !text.contains("cannot remount"),
        "{text}"
    );
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
    // Idle: no thread of PID 1 wakes while nothing happens (the supervisor's, and the hotplug
    // listener's once its pass over the present devices is done).
    let idle = text
        .lines()
        .find(|l| l.contains("RAMBOOT-SERVICES: idle PID 1"))
        .unwrap_or_else(|| panic!("{text}"));
    eprintln!("BENCH {}", &idle[idle.find("RAMBOOT-SERVICES").unwrap()..]);
    let before = number_after(idle, "before memfd:ramboot:");
    let after = number_after(idle, "after memfd:ramboot:");
    assert_eq!(before, after, "PID 1's main thread woke while idle: {idle}");
    assert!(
        idle.contains(" 0 wake-ups in 10 s"),
        "PID 1 woke while idle: {idle}"
    );
}

/// Where `marker` starts in `text`; panics with the console when it is missing.
fn at(text: &str, marker: &str) -> usize {
    text.find(marker)
        .unwrap_or_else(|| panic!("{marker:?} not on the console:\n{text}"))
}

/// Issue 9: `ramboot_init` under Alpine's own inittab (stand-ins for openrc and getty), one boot:
/// - the entries run in busybox's order: `openrc sysinit`, `openrc boot` (sysinit), `openrc
///   default` (wait), then the respawn getty on ttyAMA0, respawned after it exits; the system
///   set-up is skipped because the inittab runs openrc;
/// - a service with `depends` starts only after its dependency said ready on its notification-fd;
/// - Ctrl-Alt-Del pressed on a virtio keyboard (QEMU monitor `sendkey`) reaches PID 1 as SIGINT
///   (ramboot turned the kernel's Ctrl-Alt-Del into a signal) and runs the `ctrlaltdel` action;
/// - that action's SIGUSR2 to PID 1 powers off cleanly: `openrc shutdown` with the boot media
///   still mounted, SIGTERM to all, the boot media and the modloop unmounted, "Requesting
///   system poweroff", the kernel's power-down, QEMU exits.
#[test]
fn alpine_inittab_runlevels_ctrl_alt_del_and_poweroff_under_ramboot_init() {
    let a = artifacts();
    let mon = out_dir().join("svc-openrc.monitor");
    let mut extra = disk("openrc.img");
    extra.extend(monitor_socket(&mon));
    // A keyboard the kernel's keyboard handler listens to (virtio_input from the modloop).
    extra.extend(["-device".into(), "virtio-keyboard-pci".into()]);
    let mut q = Qemu::virt(
        "svc-openrc",
        &a.initrd,
        "console=ttyAMA0 ramboot_init",
        &extra,
    );
    q.expect("RAMBOOT-OPENRC: keyboard ready", BOOT);
    q.expect("RAMBOOT-OPENRC: web started", BOOT);
    let answer = monitor(&mon, "sendkey ctrl-alt-delete");
    assert!(
        answer.trim().is_empty() || answer.contains("sendkey"),
        "{answer}"
    );
    q.expect("reboot: Power down", BOOT);
    let text = q.wait_exit(BOOT);

    assert!(
        text.contains("ramboot: system mode: / is tmpfs, not the initramfs"),
        "{text}"
    );
    assert!(
        text.contains("system set-up skipped: /etc/inittab runs openrc, which does it"),
        "{text}"
    );
    // Runlevels in busybox's order, each from the stand-in run by ramboot (PID 1 from the memfd).
    let sysinit = at(
        &text,
        "RAMBOOT-OPENRC: openrc sysinit (PID 1 runs /memfd:ramboot (deleted))",
    );
    let boot = at(&text, "RAMBOOT-OPENRC: openrc boot");
    let default = at(&text, "RAMBOOT-OPENRC: openrc default");
    let first_getty = at(&text, "RAMBOOT-OPENRC: getty first run on /dev/ttyAMA0");
    let respawned = at(&text, "RAMBOOT-OPENRC: getty respawned on /dev/ttyAMA0");
    assert!(
        sysinit < boot && boot < default && default < first_getty && first_getty < respawned,
        "{text}"
    );
    // The dependent service starts after its dependency's readiness, not its start.
    let db_ready = at(&text, "RAMBOOT-OPENRC: db ready");
    assert!(
        at(&text, "RAMBOOT-OPENRC: db starting") < db_ready,
        "{text}"
    );
    assert!(
        db_ready < at(&text, "RAMBOOT-OPENRC: web started"),
        "{text}"
    );
    // Ctrl-Alt-Del from the keyboard, then the orderly power-off its action asked for.
    let keyboard = at(&text, "RAMBOOT-OPENRC: keyboard ready");
    let sigint = at(&text, "* Ctrl-Alt-Del");
    let cad = at(&text, "RAMBOOT-OPENRC: ctrlaltdel action");
    let shutdown = at(&text, "RAMBOOT-OPENRC: openrc shutdown");
    assert!(
        keyboard < sigint && sigint < cad && cad < shutdown,
        "{text}"
    );
    assert!(
        text.contains("RAMBOOT-OPENRC: mounted at shutdown: /media/vda1"),
        "{text}"
    );
    let term = at(&text, "Sending SIGTERM to all processes");
    let request = at(&text, "Requesting system poweroff");
    let down = at(&text, "reboot: Power down");
    assert!(
        shutdown < term && term < request && request < down,
        "{text}"
    );
    // The boot media unmounted: the modloop's loop device, set to autoclear, let it go
    // (ramboot names each mount it cannot unmount; a success is silent).
    assert!(!text.contains("cannot unmount /media/vda1"), "{text}");
    assert!(!text.contains("cannot unmount /.modloop"), "{text}");
}

/// The supervisor's defaults (src/supervise: `Backoff` and `ServiceConfig`): the first restart
/// is immediate, then 1 s doubling up to 60 s, each shortened by up to 20 % (jitter); the tenth
/// exit within 300 s marks the service failed.
const FIRST_DELAY: f64 = 1.0;
const MAX_DELAY: f64 = 60.0;
const JITTER: f64 = 0.20;
const CRASH_LIMIT: usize = 10;

/// The documented restart delay after exit number `exit` (1 = the first), before the jitter.
fn restart_delay(exit: usize) -> f64 {
    if exit <= 1 {
        return 0.0;
    }
    (FIRST_DELAY * f64::from(1u32 << (exit - 2).min(30))).min(MAX_DELAY)
}

/// Issue 9: a service that crashes is restarted with growing delays and given up after the
/// crash-loop limit. `crashy` prints its start time (guest `/proc/uptime`) and exits 1; the
/// gap between two starts is the restart delay (within the jitter, plus the run's own short
/// life) and grows until the cap; after exit number [`CRASH_LIMIT`] the supervisor logs the
/// service failed and starts it no more, though the guest runs on for longer than the longest
/// delay. `-icount shift=0,sleep=off`: the guest's clock is its instruction count and its idle
/// time is skipped, so the ~3 minutes of guest backoff cost little host time and the
/// timestamps do not depend on the host's load.
#[test]
fn crashing_service_is_restarted_with_growing_delays_then_given_up() {
    let a = artifacts();
    let mut extra = disk("crashy.img");
    extra.extend(["-icount".into(), "shift=0,sleep=off".into()]);
    let mut q = Qemu::virt(
        "svc-crashy",
        &a.initrd,
        "console=ttyAMA0 ramboot_init",
        &extra,
    );
    q.expect("reboot: Power down", BOOT);
    let text = q.wait_exit(BOOT);

    let marker = "RAMBOOT-CRASHY: start at ";
    let starts: Vec<(usize, f64)> = text
        .match_indices(marker)
        .map(|(at, _)| (at, number_after(&text[at..], marker)))
        .collect();
    let failed = at(
        &text,
        "service crashy failed: 10 exits within 300s; not restarted",
    );
    let given_up = at(&text, "RAMBOOT-CRASHY: given up at");
    let quiet = at(&text, "RAMBOOT-CRASHY: quiet until");
    assert!(failed < given_up && given_up < quiet, "{text}");
    // Exactly the limit's number of starts, all before the failure line: none after it,
    // though the guest ran on for longer than the longest delay.
    assert_eq!(starts.len(), CRASH_LIMIT, "{text}");
    assert!(starts.iter().all(|&(at, _)| at < failed), "{text}");
    let last = starts.last().unwrap().1;
    let quiet_until = number_after(&text[quiet..], "quiet until ");
    assert!(quiet_until - last > MAX_DELAY, "{text}");

    let gaps: Vec<f64> = starts.windows(2).map(|w| w[1].1 - w[0].1).collect();
    eprintln!("MEASURED gaps between starts (guest s): {gaps:.2?}");
    for (i, &gap) in gaps.iter().enumerate() {
        let delay = restart_delay(i + 1);
        // /proc/uptime has 10 ms steps; the run itself lives well under a second.
        let low = delay * (1.0 - JITTER) - 0.02;
        let high = delay + 1.0;
        assert!(
            (low..=high).contains(&gap),
            "gap {} is {gap:.2} s, outside {low:.2}..={high:.2}: {gaps:.2?}\n{text}",
            i + 1
        );
        // Growing while the delay doubles: even at most jitter the next delay is longer than
        // the whole previous one.
        if i >= 1 && restart_delay(i) < MAX_DELAY {
            assert!(gap > gaps[i - 1], "gaps do not grow: {gaps:.2?}\n{text}");
        }
    }
}
