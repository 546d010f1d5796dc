//! QEMU aarch64 scenarios for diskless boots (no `root=`) from Alpine-layout media built by
//! `qemu/make-media.sh`: a signed boot repository of packages built by ramboot, an apkovl, a
//! signed modloop. Covers the media scenarios (virtio disk, late USB stick, two apkovls, a bad
//! modloop signature, no media, Raspberry Pi SD card) and the diskless system they boot into
//! (hostname and config from the apkovl, modules from the modloop, the apk database, `pkgs=`,
//! a corrupt apkovl, a tampered package), and the network at boot (`ip=`) on QEMU's user-mode
//! networking.
// Tests drive real tools and processes (QEMU, mkfs, the built binary): the system boundary
// lint is for the library.
#![allow(clippy::disallowed_methods)]

mod support;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;
use support::qemu::{kernel, number_after, out_dir, script, virtio_snapshot, Qemu};

struct Artifacts {
    media: PathBuf,
    /// virtio + USB + SCSI drivers, the trusted key and the modloop signature.
    initrd_virt: PathBuf,
    /// The same with a corrupted modloop signature.
    initrd_badsig: PathBuf,
    /// SD host drivers for -M raspi3b.
    initrd_rpi: PathBuf,
    /// The virtio one with the encrypted apkovl's key file at /etc/apkovl.key.
    initrd_key: PathBuf,
}

fn artifacts() -> &'static Artifacts {
    static A: OnceLock<Artifacts> = OnceLock::new();
    A.get_or_init(|| {
        let media = out_dir().join("media");
        script("make-media.sh", &[media.to_str().unwrap(), "--all"]);
        let key = std::fs::read_dir(media.join("keys"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "pub"))
            .unwrap();
        let sig = std::fs::read_dir(media.join("initramfs-files"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let sig_name = sig.file_name().unwrap().to_str().unwrap().to_string();
        let apkovl_key = format!("{}:/etc/apkovl.key", media.join("apkovl.key").display());
        let build_with = |name: &str, features: &str, sig: &Path, extra: &[&str]| {
            let out = out_dir().join(name);
            let file = format!("{}:/var/cache/misc/{sig_name}", sig.display());
            let mut args = vec![
                out.to_str().unwrap(),
                "-F",
                features,
                "--apk-key",
                key.to_str().unwrap(),
                "--file",
                &file,
            ];
            args.extend_from_slice(extra);
            let text = script("make-initramfs.sh", &args);
            eprintln!("{text}");
            out
        };
        let build = |name: &str, features: &str, sig: &Path| build_with(name, features, sig, &[]);
        let initrd_virt = build("dl-initrd-virt", "base,virtio,vfat,usb,scsi", &sig);
        let bad = out_dir().join("bad.sig");
        let mut bytes = std::fs::read(&sig).unwrap();
        bytes[10] ^= 0x55;
        std::fs::write(&bad, bytes).unwrap();
        let initrd_badsig = build("dl-initrd-badsig", "base,virtio,vfat", &bad);
        let initrd_rpi = build("dl-initrd-rpi", "base,mmc,rpi,vfat", &sig);
        let initrd_key = build_with(
            "dl-initrd-key",
            "base,virtio,vfat",
            &sig,
            &["--file", &apkovl_key],
        );
        Artifacts {
            media,
            initrd_virt,
            initrd_badsig,
            initrd_rpi,
            initrd_key,
        }
    })
}

fn virtio(image: &str) -> Vec<String> {
    virtio_snapshot(&artifacts().media.join(image))
}

const BOOT: Duration = Duration::from_secs(180);

/// Issue 4 (a) and issue 5 (a): the demo boots from a virtio disk.
#[test]
fn virtio_media_demo_boots_diskless() {
    let a = artifacts();
    // On QEMU's instruction clock (1 ns of guest time per instruction) the stage timings below
    // do not depend on how busy the host is.
    let mut extra = virtio("media.img");
    extra.extend(["-icount".into(), "shift=0,sleep=on".into()]);
    let mut q = Qemu::virt("dl-a-virtio", &a.initrd_virt, "console=ttyAMA0", &extra);
    q.expect("RAMBOOT-DEMO: done, powering off", BOOT);
    let text = q.wait_exit(BOOT);
    assert!(
        text.contains("modloop /media/vda1/boot/modloop-virt mounted (signature verified with"),
        "{text}"
    );
    assert!(
        text.contains("RAMBOOT-DEMO: init is running; hostname=ramboot-demo"),
        "{text}"
    );
    assert!(
        text.contains("RAMBOOT-DEMO: demo.conf setting=from-apkovl"),
        "the apkovl's file wins: {text}"
    );
    assert!(
        text.contains(&format!("RAMBOOT-DEMO: modules {} ", kernel().release)),
        "{text}"
    );
    let installed = text
        .lines()
        .find(|l| l.contains("RAMBOOT-DEMO: installed"))
        .unwrap();
    for p in [
        "alpine-base",
        "alpine-baselayout",
        "busybox",
        "demo-service",
    ] {
        assert!(installed.contains(p), "{p} in {installed}");
    }
    assert!(
        !installed.contains("broken") && !installed.contains("extra"),
        "{installed}"
    );
    // No idle wait once the media was ready: the media stage ends right after. Guest time on
    // the instruction clock (0.44 ms measured), so the bound holds however busy the host is.
    let timeline = text
        .lines()
        .find(|l| l.contains("RAMBOOT-DEMO: timeline"))
        .unwrap();
    let ready = number_after(timeline, "\"name\":\"media ready\",\"at_ms\":");
    let media_end = number_after(
        &timeline[timeline.find("\"name\":\"media\"").unwrap()..],
        "\"end_ms\":",
    );
    assert!(
        media_end - ready < 10.0,
        "media stage ended {}ms (instruction clock) after the media was ready",
        media_end - ready
    );
    assert!(
        timeline.contains("\"name\":\"modloop mounted\""),
        "{timeline}"
    );
}

/// Issue 4 (b): the same media on a USB stick, which appears late (USB enumeration).
#[test]
fn usb_stick_that_appears_late() {
    let a = artifacts();
    let img = a.media.join("usb.img");
    let extra = vec![
        "-drive".into(),
        format!(
            "if=none,id=u0,file={},format=raw,snapshot=on",
            img.display()
        ),
        "-device".into(),
        "qemu-xhci,id=xhci".into(),
        "-device".into(),
        "usb-storage,bus=xhci.0,drive=u0".into(),
    ];
    let mut q = Qemu::virt("dl-b-usb", &a.initrd_virt, "console=ttyAMA0", &extra);
    q.expect("RAMBOOT-DEMO: done, powering off", BOOT);
    let text = q.wait_exit(BOOT);
    assert!(
        text.contains("modloop /media/sda1/boot/modloop-virt mounted"),
        "{text}"
    );
    assert!(text.contains("hostname=ramboot-demo"), "{text}");
    assert!(text.contains("\"name\":\"device sda1 appeared\""), "{text}");
    // Alpine's initramfs fstab and mdev's /dev/usbdisk link move a USB stick to /media/usb.
    let media = text
        .lines()
        .find(|l| l.contains("RAMBOOT-DEMO: media"))
        .unwrap();
    assert!(media.contains("/media/usb"), "{media}");
}

/// Issue 4 (c): two apkovls: the documented choice and a warning naming the other.
#[test]
fn two_apkovls_documented_choice_and_warning() {
    let a = artifacts();
    let mut q = Qemu::virt(
        "dl-c-two-apkovls",
        &a.initrd_virt,
        "console=ttyAMA0",
        &virtio("two-apkovls.img"),
    );
    q.expect("RAMBOOT-DEMO: done, powering off", BOOT);
    let text = q.wait_exit(BOOT);
    assert!(
        text.contains("several apkovls found: using /media/vda1/ramboot-demo.apkovl.tar.gz")
            && text.contains("ignoring /media/vda1/zz-old.apkovl.tar.gz"),
        "{text}"
    );
    assert!(text.contains("hostname=ramboot-demo"), "{text}");
}

/// Issue 4 (d): a modloop whose signature does not verify is refused with a clear message; the
/// boot goes on without it.
#[test]
fn bad_modloop_signature_is_refused() {
    let a = artifacts();
    let mut q = Qemu::virt(
        "dl-d-badsig",
        &a.initrd_badsig,
        "console=ttyAMA0",
        &virtio("media.img"),
    );
    q.expect("modloop refused", BOOT);
    q.expect("RAMBOOT-DEMO: done, powering off", BOOT);
    let text = q.wait_exit(BOOT);
    assert!(text.contains("signature"), "{text}");
    assert!(
        !text.contains("modloop /media/vda1/boot/modloop-virt mounted"),
        "{text}"
    );
}

/// Issue 4 (e): no media at all: a clear message after the deadline, then the rescue shell.
#[test]
fn no_media_gives_clear_message_and_rescue() {
    let a = artifacts();
    let mut q = Qemu::virt("dl-e-no-media", &a.initrd_virt, "console=ttyAMA0", &[]);
    q.expect(
        "nothing to boot from: no boot repository and no apkovl on any device (looked for ",
        BOOT,
    );
    q.expect(
        "and no network source was asked for (ip=, apkovl=URL or alpine_repo=URL)",
        BOOT,
    );
    q.use_rescue_shell_and_power_off(BOOT);
}

/// Issue 10: no media and `ip=dhcp` on a machine without a NIC: one line says there is nothing
/// to boot from, what was looked at and why the network gave nothing; then the rescue shell.
#[test]
fn no_media_and_no_network_says_nothing_to_boot_from() {
    let a = artifacts();
    let mut q = Qemu::virt(
        "dl-e2-nothing",
        &a.initrd_virt,
        "console=ttyAMA0 ip=dhcp",
        &[],
    );
    q.expect("IP requested but no network interface was found", BOOT);
    q.expect(
        "nothing to boot from: no boot repository and no apkovl on any device (looked for ",
        BOOT,
    );
    q.expect(
        "and no network (IP requested but no network interface was found)",
        BOOT,
    );
    q.use_rescue_shell_and_power_off(BOOT);
}

/// Issue 4 (f) and issue 5 (b): Raspberry Pi 3B with the SD card, found through the SD host
/// driver modules — the real Pi boot path.
#[test]
fn raspberry_pi_sd_card() {
    let a = artifacts();
    let k = kernel();
    let args: Vec<String> = [
        "-M",
        "raspi3b",
        "-m",
        "1G",
        "-smp",
        "4",
        "-accel",
        "tcg,thread=single",
        "-nographic",
        "-no-reboot",
        "-dtb",
        k.dtb_rpi3.to_str().unwrap(),
        "-kernel",
        k.image.to_str().unwrap(),
        "-initrd",
        a.initrd_rpi.to_str().unwrap(),
        "-append",
        "console=ttyAMA0 modules=loop,squashfs,sd-mod,usb-storage",
        "-drive",
        &format!(
            "if=sd,format=raw,snapshot=on,file={}",
            a.media.join("sd.img").display()
        ),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut q = Qemu::spawn("dl-f-raspi3b", &args);
    q.expect("RAMBOOT-DEMO: done, powering off", BOOT);
    let text = q.wait_exit(BOOT);
    assert!(
        text.contains("modloop /media/mmcblk0p1/boot/modloop-virt mounted"),
        "{text}"
    );
    assert!(text.contains("hostname=ramboot-demo"), "{text}");
    assert!(text.contains("demo.conf setting=from-apkovl"), "{text}");
}

/// Issue 5 (c): `pkgs=extra` adds a package that is not in world.
#[test]
fn pkgs_option_adds_a_package() {
    let a = artifacts();
    let mut q = Qemu::virt(
        "dl-5c-pkgs",
        &a.initrd_virt,
        "console=ttyAMA0 pkgs=extra",
        &virtio("media.img"),
    );
    q.expect("RAMBOOT-DEMO: done, powering off", BOOT);
    let text = q.wait_exit(BOOT);
    assert!(
        text.contains("RAMBOOT-DEMO: extra package present"),
        "{text}"
    );
    let world = text
        .lines()
        .find(|l| l.contains("RAMBOOT-DEMO: world"))
        .unwrap();
    assert!(world.contains("extra"), "{world}");
}

/// Issue 5 (d): a corrupt apkovl: a warning and a clean default system, not a half-applied one.
#[test]
fn corrupt_apkovl_boots_clean_default() {
    let a = artifacts();
    let mut q = Qemu::virt(
        "dl-5d-corrupt",
        &a.initrd_virt,
        "console=ttyAMA0",
        &virtio("corrupt-apkovl.img"),
    );
    q.expect("RAMBOOT-DEMO: done, powering off", BOOT);
    let text = q.wait_exit(BOOT);
    assert!(text.contains("is corrupt"), "{text}");
    assert!(
        text.contains("booting a clean default system instead"),
        "{text}"
    );
    assert!(
        text.contains("hostname=localhost"),
        "the package's default: {text}"
    );
    assert!(text.contains("demo.conf setting=from-package"), "{text}");
}

/// Issue 13 (4): the apkovl `lbu commit -e` writes (real `openssl enc -aes-256-cbc -salt`),
/// unlocked with the key file packed into the initramfs and named by `apkovl_key=`.
#[test]
fn encrypted_apkovl_with_a_key_file() {
    let a = artifacts();
    let mut q = Qemu::virt(
        "dl-13-encrypted-key",
        &a.initrd_key,
        "console=ttyAMA0 apkovl_key=/etc/apkovl.key",
        &virtio("encrypted-apkovl.img"),
    );
    q.expect("RAMBOOT-DEMO: done, powering off", BOOT);
    let text = q.wait_exit(BOOT);
    assert!(
        text.contains(
            "ramboot-demo.apkovl.tar.gz.aes-256-cbc unlocked with the key in /etc/apkovl.key"
        ),
        "{text}"
    );
    assert!(!text.contains("Passphrase for"), "{text}");
    assert!(text.contains("hostname=ramboot-demo"), "{text}");
    assert!(text.contains("demo.conf setting=from-apkovl"), "{text}");
}

/// Issue 13 (4): the passphrase typed on the serial console, a wrong one first; nothing typed
/// is echoed.
#[test]
fn encrypted_apkovl_with_a_passphrase_typed_on_the_console() {
    let a = artifacts();
    let mut q = Qemu::virt(
        "dl-13-encrypted-typed",
        &a.initrd_virt,
        "console=ttyAMA0",
        &virtio("encrypted-apkovl.img"),
    );
    let prompt = "Passphrase for /media/vda1/ramboot-demo.apkovl.tar.gz.aes-256-cbc";
    q.expect(&format!("{prompt} (1/3): "), BOOT);
    q.send("not-the-passphrase\n");
    q.expect("wrong passphrase", BOOT);
    q.expect(&format!("{prompt} (2/3): "), BOOT);
    q.send("ramboot demo passphrase\n");
    q.expect("RAMBOOT-DEMO: done, powering off", BOOT);
    let text = q.wait_exit(BOOT);
    assert!(text.contains("hostname=ramboot-demo"), "{text}");
    assert!(text.contains("demo.conf setting=from-apkovl"), "{text}");
    assert!(
        !text.contains("not-the-passphrase") && !text.contains("ramboot demo passphrase"),
        "echo is off: {text}"
    );
}

/// Issue 5 (e): a tampered package in the repository is refused, the others install, the boot
/// goes on.
#[test]
fn tampered_package_is_refused_others_install() {
    let a = artifacts();
    let mut q = Qemu::virt(
        "dl-5e-tampered",
        &a.initrd_virt,
        "console=ttyAMA0 pkgs=broken",
        &virtio("media.img"),
    );
    q.expect("RAMBOOT-DEMO: done, powering off", BOOT);
    let text = q.wait_exit(BOOT);
    assert!(text.contains("package broken-1.0-r0 refused"), "{text}");
    let installed = text
        .lines()
        .find(|l| l.contains("RAMBOOT-DEMO: installed"))
        .unwrap();
    assert!(
        !installed.contains("broken") && installed.contains("demo-service"),
        "{installed}"
    );
}

/// The kernel log as the demo's report printed it: ramboot's records (`ramboot: …`, timestamp
/// and marker removed) and any rate-limit notice.
fn dmesg_lines(console: &str) -> Vec<String> {
    console
        .lines()
        .filter_map(|l| l.split_once("RAMBOOT-DMESG: ").map(|(_, d)| d))
        .map(|d| match d.split_once("] ") {
            Some((stamp, rest)) if stamp.starts_with('[') => rest.trim_end().to_string(),
            _ => d.trim_end().to_string(),
        })
        .collect()
}

/// Numbers vary between runs (timings), and so does which module loads were the slowest (the
/// timeline summary names them); the rest of each line does not. Sorted.
fn without_numbers(lines: &[String]) -> Vec<String> {
    let mut v: Vec<String> = lines
        .iter()
        .map(|l| {
            let l = match (l.find("; slowest modules "), l.find("; handoff at ")) {
                (Some(from), Some(to)) if from < to => format!("{}{}", &l[..from], &l[to..]),
                _ => l.clone(),
            };
            let mut out = String::new();
            for c in l.chars() {
                if !c.is_ascii_digit() {
                    out.push(c);
                } else if !out.ends_with('#') {
                    out.push('#');
                }
            }
            out
        })
        .collect();
    v.sort();
    v
}

/// ramboot's own console lines (OpenRC style, before the handoff) as the kernel log has them:
/// ` * Loading boot drivers ... ok` → `ramboot: Loading boot drivers ...`.
fn console_lines_as_kmsg(console: &str) -> Vec<String> {
    console
        .lines()
        .filter_map(|l| l.trim_end_matches('\r').strip_prefix(" * "))
        .map(|l| {
            // A kernel message may land on an open ` * … ...` line: `…[    1.234567] virtio…`.
            let l = match l.find("[ ") {
                Some(at) => &l[..at],
                None => l,
            };
            let l = l
                .strip_prefix("ERROR: ")
                .or_else(|| l.strip_prefix("WARNING: "))
                .unwrap_or(l)
                .trim_end();
            let l = l.strip_suffix(" ok").unwrap_or(l);
            if l.starts_with("ramboot: ") {
                l.to_string()
            } else {
                format!("ramboot: {l}")
            }
        })
        .collect()
}

/// Issue 8 (9): the kernel log keeps every ramboot line, the timeline summary included, with
/// and without `quiet` (the kernel's rate limit on /dev/kmsg writers is lifted for the boot),
/// and the console shows each line once (the kernel does not echo the kernel-log copy).
#[test]
fn kernel_log_keeps_every_line_and_console_shows_each_once() {
    let a = artifacts();
    let boot = |name: &str, extra: &str| {
        let append = format!("console=ttyAMA0 ramboot_demo=dmesg{extra}");
        let mut q = Qemu::virt(name, &a.initrd_virt, &append, &virtio("media.img"));
        q.expect("RAMBOOT-DEMO: done, powering off", BOOT);
        q.wait_exit(BOOT)
    };
    let loud = boot("dl-9-kmsg", "");
    let quiet = boot("dl-9-kmsg-quiet", " quiet");
    let mut kept = Vec::new();
    for (console, label) in [(&loud, "default loglevel"), (&quiet, "quiet")] {
        let dmesg = dmesg_lines(console);
        assert!(
            dmesg.iter().any(|l| l.starts_with("ramboot: kernel ")
                && l.contains(" → /init;")
                && l.contains("handoff at ")),
            "{label}: the timeline summary is in the kernel log: {dmesg:#?}"
        );
        assert!(
            !dmesg.iter().any(|l| l.contains("suppressed")),
            "{label}: nothing was rate-limited: {dmesg:#?}"
        );
        // The kernel echoes a record as `[   1.234567] ramboot: …`; the logger's own line has
        // no timestamp. Only the report's dump of dmesg may show such lines.
        let echoed: Vec<&str> = console
            .lines()
            .filter(|l| !l.contains("RAMBOOT-DMESG: ") && l.contains("] ramboot: "))
            .collect();
        assert!(
            echoed.is_empty(),
            "{label}: lines shown twice on the console: {echoed:#?}"
        );
        kept.push(dmesg);
    }
    // Every line the console showed (without quiet) is in the kernel log.
    for line in console_lines_as_kmsg(&loud) {
        assert!(
            kept[0].contains(&line),
            "{line:?} missing from the kernel log: {:#?}",
            kept[0]
        );
    }
    // `quiet` changes the console only: the kernel log has the same lines.
    assert_eq!(without_numbers(&kept[0]), without_numbers(&kept[1]));
}

/// A virtio NIC on QEMU's user-mode network, isolated from the host (`restrict=on`: its
/// built-in DHCP server answers inside the QEMU process and no packet leaves it).
fn user_net() -> Vec<String> {
    // romfile= empty: no PXE boot ROM (QEMU's efi-virtio.rom is not installed, nor needed).
    [
        "-netdev",
        "user,id=n0,restrict=on",
        "-device",
        "virtio-net-pci,netdev=n0,romfile=",
    ]
    .map(String::from)
    .to_vec()
}

/// The `at_ms` of the first timeline mark whose name starts with `name`.
fn mark_at(timeline: &str, name: &str) -> f64 {
    let at = timeline
        .find(&format!("{{\"name\":\"{name}"))
        .unwrap_or_else(|| panic!("no mark {name} in {timeline}"));
    number_after(&timeline[at..], "\"at_ms\":")
}

fn demo_line<'a>(text: &'a str, what: &str) -> &'a str {
    let key = format!("RAMBOOT-DEMO: {what}");
    text.lines()
        .find(|l| l.contains(&key))
        .unwrap_or_else(|| panic!("no {key} in {text}"))
}

/// Issue 10: `ip=dhcp` gets a lease from QEMU's DHCP server, its address is still there in the
/// new system, and the timeline records when the network was needed and when the lease came
/// (on the instruction clock).
#[test]
fn ip_dhcp_gets_a_lease_from_user_networking() {
    let a = artifacts();
    let mut extra = virtio("media.img");
    extra.extend(user_net());
    extra.extend(["-icount".into(), "shift=0,sleep=on".into()]);
    let mut q = Qemu::virt(
        "net-a-dhcp",
        &a.initrd_virt,
        "console=ttyAMA0 ip=dhcp",
        &extra,
    );
    q.expect("RAMBOOT-DEMO: done, powering off", BOOT);
    let text = q.wait_exit(BOOT);
    // restrict=on: QEMU's server offers no router and no DNS server (the static case and
    // tests/net_config.rs cover those).
    let lease = "network up by DHCPv4: eth0 10.0.2.15/24 (DHCP from 10.0.2.2, lease 86400s)";
    assert!(text.contains(lease), "{text}");
    assert!(
        demo_line(&text, "net addr").contains("inet 10.0.2.15/24"),
        "{text}"
    );
    let timeline = demo_line(&text, "timeline");
    let needed = mark_at(timeline, "network needed");
    let up = mark_at(timeline, "network up by DHCPv4: eth0 10.0.2.15/24");
    eprintln!(
        "network needed → lease: {:.1} ms (instruction clock)",
        up - needed
    );
    assert!(up >= needed, "{timeline}");
}

/// Issue 10 (3): an IPv6-only network (QEMU's user networking with `ipv4=off,ipv6=on`: its
/// router advertises fec0::/64 with the DNS server fec0::3). DHCPv4 gets no answer; the kernel's
/// SLAAC address and the advertised DNS server make the network, in the timeline and in the new
/// root's resolv.conf, without the boot waiting out DHCPv4's retries (DHCPv4 runs at the same
/// time and stops 1 s after SLAAC, on the instruction clock). `restrict=on`: nothing leaves
/// the QEMU process. (No repository is served over IPv6 here: QEMU 7.2's `guestfwd` takes IPv4
/// addresses only, and the boot's fetches over the network are the IPv4 scenarios' business.)
#[test]
fn ipv6_only_network_comes_up_by_slaac_with_rdnss() {
    let a = artifacts();
    let mut extra = virtio("media.img");
    extra.extend(
        [
            "-netdev",
            "user,id=n0,ipv4=off,ipv6=on,restrict=on",
            "-device",
            "virtio-net-pci,netdev=n0,romfile=,mac=52:54:00:12:34:56",
            "-icount",
            "shift=0,sleep=on",
        ]
        .map(String::from),
    );
    // libslirp puts RDNSS in its advertisements only when the host's /etc/resolv.conf lists an
    // IPv6 server: QEMU runs in its own mount namespace where it lists ::1 (never asked: the
    // guest resolves nothing, and restrict=on keeps everything inside QEMU).
    let resolv = out_dir().join("resolv-ipv6.conf");
    std::fs::write(&resolv, "nameserver ::1\n").unwrap();
    let wrapper = [
        "unshare",
        "--mount",
        "--map-root-user",
        "--",
        "sh",
        "-c",
        "mount --bind \"$0\" /etc/resolv.conf && exec \"$@\"",
    ]
    .map(String::from);
    let mut wrapper = wrapper.to_vec();
    wrapper.push(resolv.display().to_string());
    let cmdline = "console=ttyAMA0 ip=dhcp";
    let mut q = Qemu::virt_in(&wrapper, "net-d-slaac", &a.initrd_virt, cmdline, &extra);
    q.expect("RAMBOOT-DEMO: done, powering off", BOOT);
    let text = q.wait_exit(BOOT);
    let address = "fec0::5054:ff:fe12:3456/64";
    let up = format!("network up by SLAAC: eth0 {address} (SLAAC, DNS fec0::3; no DHCPv4 lease)");
    assert!(text.contains(&up), "{text}");
    assert!(demo_line(&text, "net6 addr").contains(address), "{text}");
    let resolv = demo_line(&text, "resolv.conf");
    assert!(resolv.contains("nameserver fec0::3"), "{text}");
    // Each family's timing: SLAAC usable, DHCPv4 stopped a second later (not after its 15 s
    // of retries), the network up.
    let timeline = demo_line(&text, "timeline");
    let needed = mark_at(timeline, "network needed");
    let slaac = mark_at(timeline, "SLAAC address");
    let stopped = mark_at(timeline, "DHCPv4 stopped: no lease 1s after SLAAC");
    let got = mark_at(timeline, &format!("network up by SLAAC: eth0 {address}"));
    eprintln!(
        "BENCH network needed → SLAAC address: {:.1} ms, → DHCPv4 stopped: {:.1} ms, → up: \
         {:.1} ms (instruction clock)",
        slaac - needed,
        stopped - needed,
        got - needed
    );
    assert!(
        needed <= slaac && slaac <= stopped && stopped <= got,
        "{timeline}"
    );
    assert!(
        got - needed < 15_000.0,
        "up before DHCPv4's 15 s of retries: {timeline}"
    );
    assert!(!timeline.contains("DHCPv4: no answer"), "{timeline}");
}

/// Issue 10: a static `ip=` is applied as given, without a DHCP exchange.
#[test]
fn static_ip_is_applied() {
    let a = artifacts();
    let mut extra = virtio("media.img");
    extra.extend(user_net());
    let cmdline = "console=ttyAMA0 ip=10.0.2.20::10.0.2.2:255.255.255.0::eth0:none:10.0.2.3";
    let mut q = Qemu::virt("net-b-static", &a.initrd_virt, cmdline, &extra);
    q.expect("RAMBOOT-DEMO: done, powering off", BOOT);
    let text = q.wait_exit(BOOT);
    let up = "network up by ip=: eth0 10.0.2.20/24 via 10.0.2.2 (static, ip=)";
    assert!(text.contains(up), "{text}");
    assert!(
        demo_line(&text, "net addr").contains("inet 10.0.2.20/24"),
        "{text}"
    );
    let route = demo_line(&text, "net route");
    assert!(route.contains("default via 10.0.2.2 dev eth0"), "{text}");
    let resolv = demo_line(&text, "resolv.conf");
    assert!(resolv.contains("nameserver 10.0.2.3"), "{text}");
}

/// Issue 10: `ip=dhcp` on a machine without a NIC: Alpine's message, and the boot goes on from
/// the local media.
#[test]
fn ip_dhcp_without_a_nic_says_so_and_boots_on() {
    let a = artifacts();
    let mut q = Qemu::virt(
        "net-c-no-nic",
        &a.initrd_virt,
        "console=ttyAMA0 ip=dhcp",
        &virtio("media.img"),
    );
    q.expect("IP requested but no network interface was found", BOOT);
    q.expect("RAMBOOT-DEMO: done, powering off", BOOT);
    let text = q.wait_exit(BOOT);
    assert!(text.contains("hostname=ramboot-demo"), "{text}");
}
