//! QEMU aarch64 boots of cards written by `ramboot sdimage` (issue 14, point 4): a
//! `--target virt` card and a `--target rpi` card (`-M raspi3b`), each booted the way its
//! firmware would: the kernel, initramfs, device tree and command line are read back from the
//! card's FAT partition (extlinux.conf for virt, config.txt and cmdline.txt for the Pi) and
//! handed to QEMU. The virt card's initramfs is built by sdimage (mkinitfs's code) and its
//! modloop squashed by ramboot's own writer; the Pi card's initramfs is given and sdimage
//! appends the key and the modloop signature. Both boot the demo's packages diskless.
// Tests drive real tools and processes (QEMU, the built binary): the system boundary lint is for
// the library.
#![allow(clippy::disallowed_methods)]

mod support;

use std::collections::BTreeMap;
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;
use support::qemu::{kernel, out_dir, repo, script, sdimage, virtio_snapshot, Qemu};

const BOOT: Duration = Duration::from_secs(240);

/// The demo's stage (`make-media.sh`), its signing key and the static aarch64 init.
struct Stage {
    dir: PathBuf,
    key: PathBuf,
}

/// Built once for both tests.
fn stage() -> &'static Stage {
    static S: OnceLock<Stage> = OnceLock::new();
    S.get_or_init(|| {
        let dir = out_dir().join("sdimage-media");
        script("make-media.sh", &[dir.to_str().unwrap()]);
        let key = std::fs::read_dir(dir.join("keys"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "rsa"))
            .unwrap();
        Stage { dir, key }
    })
}

/// The demo's apkovl as a tree: `ramboot sdimage` writes the apkovl from it.
fn overlay(name: &str, media: &str) -> PathBuf {
    let tree = out_dir().join(format!("{name}-overlay"));
    let _ = std::fs::remove_dir_all(&tree);
    std::fs::create_dir_all(tree.join("etc/apk")).unwrap();
    std::fs::write(tree.join("etc/demo.conf"), "setting=from-sdimage\n").unwrap();
    std::os::unix::fs::symlink(format!("/media/{media}/cache"), tree.join("etc/apk/cache"))
        .unwrap();
    tree
}

/// Every file of the card's first partition (a FAT, per its MBR).
fn card_files(img: &Path) -> BTreeMap<String, Vec<u8>> {
    let bytes = std::fs::read(img).unwrap();
    let e = &bytes[446..462];
    let start = u32::from_le_bytes(e[8..12].try_into().unwrap()) as usize * 512;
    let len = u32::from_le_bytes(e[12..16].try_into().unwrap()) as usize * 512;
    let fs = fatfs::FileSystem::new(
        Cursor::new(bytes[start..start + len].to_vec()),
        fatfs::FsOptions::new(),
    )
    .unwrap();
    let mut out = BTreeMap::new();
    let mut todo = vec![(fs.root_dir(), String::new())];
    while let Some((dir, prefix)) = todo.pop() {
        for e in dir.iter() {
            let e = e.unwrap();
            let name = e.file_name();
            if name == "." || name == ".." {
                continue;
            }
            if e.is_dir() {
                todo.push((e.to_dir(), format!("{prefix}{name}/")));
            } else {
                let mut data = Vec::new();
                e.to_file().read_to_end(&mut data).unwrap();
                out.insert(format!("{prefix}{name}"), data);
            }
        }
    }
    out
}

/// Writes a file read from the card where QEMU can take it.
fn extract(files: &BTreeMap<String, Vec<u8>>, path: &str, to: &str) -> String {
    let data = files
        .get(path)
        .unwrap_or_else(|| panic!("{path} not on the card: {:?}", files.keys()));
    let out = out_dir().join(to);
    std::fs::write(&out, data).unwrap();
    out.display().to_string()
}

/// The value of `key` in a config file's lines (`kernel=...`, `  LINUX ...`).
fn setting<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key} in:\n{text}"))
        .trim()
}

/// The static aarch64 init the QEMU scripts build (make-initramfs.sh builds it first).
fn init_binary() -> PathBuf {
    match std::env::var_os("RAMBOOT_INIT") {
        Some(p) => p.into(),
        None => repo().join("target/aarch64-unknown-linux-musl/release/ramboot-init"),
    }
}

/// Writes a `--target virt` card of the stage with `apkovl` arguments (its initramfs built by
/// sdimage with the key and the signature of the modloop it squashed with ramboot's writer),
/// boots it as U-Boot's extlinux would start it, and returns the console once the demo's
/// report has powered the machine off.
fn boot_virt_card(name: &str, apkovl: &[String]) -> String {
    let st = stage();
    let k = kernel();
    // make-initramfs.sh builds the aarch64 init (and checks the toolchain); its image is unused.
    script(
        "make-initramfs.sh",
        &[out_dir()
            .join(format!("{name}-unused-initrd"))
            .to_str()
            .unwrap()],
    );
    let card = out_dir().join(format!("{name}.img"));
    let s = |p: &Path| p.display().to_string();
    let mut args: Vec<String> = [
        "-o".into(),
        s(&card),
        "--target".into(),
        "virt".into(),
        "--repo".into(),
        s(&st.dir.join("stage/apks")),
        "--key".into(),
        s(&st.key),
        "--cache".into(),
        s(&st.dir.join("stage/cache")),
        "--kernel".into(),
        s(&k.image),
        "--init".into(),
        s(&init_binary()),
        "--kernel-modules".into(),
        s(&k.modules),
        "--busybox".into(),
        s(&k.busybox),
        "--modloop-dir".into(),
        s(&st.dir.join("modloop-tree")),
        "--cmdline".into(),
        "console=ttyAMA0".into(),
    ]
    .to_vec();
    args.extend(apkovl.iter().cloned());
    sdimage(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let files = card_files(&card);
    let conf = String::from_utf8_lossy(&files["extlinux/extlinux.conf"]).into_owned();
    let kernel = extract(
        &files,
        setting(&conf, "LINUX").trim_start_matches('/'),
        &format!("{name}-kernel"),
    );
    let initrd = extract(
        &files,
        setting(&conf, "INITRD").trim_start_matches('/'),
        &format!("{name}-initrd"),
    );
    let mut qemu: Vec<String> = [
        "-M",
        "virt",
        "-cpu",
        "cortex-a57",
        "-m",
        "512",
        "-smp",
        "1",
        "-nographic",
        "-no-reboot",
        "-nic",
        "none",
        "-kernel",
        &kernel,
        "-initrd",
        &initrd,
        "-append",
        setting(&conf, "APPEND"),
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    qemu.extend(virtio_snapshot(&card));
    let mut q = Qemu::spawn(name, &qemu);
    q.expect("RAMBOOT-DEMO: done, powering off", BOOT);
    q.wait_exit(BOOT)
}

/// Issue 14 (4): a `--target virt` card boots from what it holds: its own initramfs installs
/// the demo from the card's repository, with the modloop verified and the apkovl sdimage wrote.
#[test]
fn a_virt_card_boots_from_what_it_holds() {
    let ovl = overlay("sdimage-virt", "vda1");
    let text = boot_virt_card(
        "sdimage-virt",
        &[
            "--overlay".into(),
            ovl.display().to_string(),
            "--world".into(),
            "alpine-base demo-service".into(),
            "--hostname".into(),
            "sdimage-virt".into(),
        ],
    );
    assert!(
        text.contains("modloop /media/vda1/boot/modloop-virt mounted (signature verified with"),
        "{text}"
    );
    assert!(text.contains("hostname=sdimage-virt"), "{text}");
    assert!(text.contains("demo.conf setting=from-sdimage"), "{text}");
    assert!(
        text.contains(&format!("RAMBOOT-DEMO: modules {} ", kernel().release)),
        "{text}"
    );
}

/// Issue 14 (3, 4): a card made with `--profile` boots with what the profile says: its
/// hostname, world and files come from the profile's apkovl.
#[test]
fn a_profile_card_boots_with_the_profiles_settings() {
    let profile = out_dir().join("sdimage-profile.toml");
    std::fs::write(
        &profile,
        "hostname = \"profiled\"\n\
         packages = [\"alpine-base\", \"demo-service\"]\n\
         [[file]]\n\
         path = \"/etc/demo.conf\"\n\
         content = \"setting=from-profile\\n\"\n",
    )
    .unwrap();
    let text = boot_virt_card(
        "sdimage-profile",
        &["--profile".into(), profile.display().to_string()],
    );
    assert!(
        text.contains("RAMBOOT-DEMO: init is running; hostname=profiled"),
        "{text}"
    );
    assert!(text.contains("demo.conf setting=from-profile"), "{text}");
    let world = text
        .lines()
        .find(|l| l.contains("RAMBOOT-DEMO: world"))
        .unwrap();
    assert!(world.contains("alpine-base demo-service"), "{world}");
}

/// Issue 14 (4): a `--target rpi` card boots on `-M raspi3b` as the Pi firmware would start it
/// (config.txt's kernel and initramfs, the board's device tree from the root, cmdline.txt). The
/// initramfs is given without any key: sdimage appends the key and the modloop signature.
#[test]
fn an_rpi_card_boots_on_raspi3b_from_what_it_holds() {
    let st = stage();
    let k = kernel();
    let initrd = out_dir().join("sdimage-rpi-given-initrd");
    script(
        "make-initramfs.sh",
        &[initrd.to_str().unwrap(), "-F", "base,mmc,rpi,vfat"],
    );
    let card = out_dir().join("sdimage-rpi.img");
    let ovl = overlay("sdimage-rpi", "mmcblk0p1");
    let s = |p: &Path| p.display().to_string();
    sdimage(&[
        "-o",
        &s(&card),
        "--target",
        "rpi",
        // QEMU's SD card must be a power of two.
        "--size",
        "256M",
        "--repo",
        &s(&st.dir.join("stage/apks")),
        "--key",
        &s(&st.key),
        "--cache",
        &s(&st.dir.join("stage/cache")),
        "--overlay",
        &s(&ovl),
        "--world",
        "alpine-base,demo-service",
        "--hostname",
        "sdimage-rpi",
        "--kernel",
        &s(&k.image),
        "--initramfs",
        &s(&initrd),
        "--dtbs",
        &s(k.dtb_rpi3.parent().unwrap()),
        "--modloop",
        &s(&st.dir.join("stage/boot/modloop-virt")),
        "--cmdline",
        "console=ttyAMA0 modules=loop,squashfs,sd-mod,usb-storage",
    ]);
    let files = card_files(&card);
    let config = String::from_utf8_lossy(&files["config.txt"]).into_owned();
    let kernel = extract(&files, setting(&config, "kernel="), "sdimage-rpi-kernel");
    let initrd = extract(&files, setting(&config, "initramfs "), "sdimage-rpi-initrd");
    let dtb = extract(&files, "bcm2837-rpi-3-b.dtb", "sdimage-rpi-dtb");
    let cmdline = String::from_utf8_lossy(&files["cmdline.txt"])
        .trim()
        .to_string();
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
        &dtb,
        "-kernel",
        &kernel,
        "-initrd",
        &initrd,
        "-append",
        &cmdline,
        "-drive",
        &format!("if=sd,format=raw,snapshot=on,file={}", card.display()),
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    let mut q = Qemu::spawn("sdimage-rpi", &args);
    q.expect("RAMBOOT-DEMO: done, powering off", BOOT);
    let text = q.wait_exit(BOOT);
    assert!(
        text.contains("modloop /media/mmcblk0p1/boot/modloop-rpi mounted (signature verified with"),
        "{text}"
    );
    assert!(text.contains("hostname=sdimage-rpi"), "{text}");
    assert!(text.contains("demo.conf setting=from-sdimage"), "{text}");
}
