//! `ramboot sdimage`: an Alpine-layout boot card in one command (see [`crate::sdimage`]).

use super::args::{number, unexpected, ArgError, Args, Long, Short, Usage, Value};
use crate::sdimage::{
    self, apkovl::OverlaySpec, Apkovl, Initramfs, Modloop, Repository, Spec, Target,
};
use std::ffi::OsString;
use std::path::PathBuf;

pub const HELP: &str = "\
usage: ramboot sdimage -o FILE --target rpi|virt|none [options]

Writes a bootable Alpine-layout card image: an MBR (or GPT) and a FAT32 boot partition, in
user space (no root, loop devices or mtools). The same inputs give the same bytes; every
timestamp is SOURCE_DATE_EPOCH (else 1980-01-01).

  -o, --output FILE       the image to write
  --target T              rpi: config.txt, cmdline.txt, firmware, device trees and overlays at
                          the root, as Alpine's Pi image; virt: boot/ and extlinux/extlinux.conf;
                          none: no boot files (a repository/apkovl/modloop medium)
  --arch ARCH             the packages' architecture (default aarch64)
  --flavor NAME           boot/vmlinuz-NAME, initramfs-NAME, modloop-NAME (default: the target)
packages
  --repo DIR              an Alpine apks/ directory (or a media root holding apks/) with its
                          signed <arch>/APKINDEX.tar.gz
  --apk FILE              a package for the card (repeatable): indexed and signed with --key
  --key FILE              private key: signs that index and the modloop; its public half goes
                          into the initramfs as a trusted apk key
  --cache DIR             an lbu package cache, copied to cache/
configuration
  --apkovl FILE           an apkovl as is (repeatable; NAME.apkovl.tar.gz)
  --overlay DIR           a tree for an apkovl written here as HOSTNAME.apkovl.tar.gz
  --world PKGS            its etc/apk/world (comma or space separated; repeatable)
  --hostname NAME         its etc/hostname (default name: localhost)
  --profile FILE          a provisioning profile (TOML, see `ramboot profile`): its apkovl, and
                          its kernel command-line words added to cmdline.txt/extlinux.conf
boot (rpi, virt)
  --kernel FILE           the kernel image (required)
  --initramfs FILE        an initramfs as is; without it one is built as `ramboot mkinitfs` does,
                          from --init FILE, --kernel-modules DIR, --busybox FILE, -F FEATURES
                          (default rpi: base,mmc,rpi,usb,vfat; virt: base,virtio,vfat), -m MODULES
  --initramfs-out FILE    also write the card's initramfs to FILE (QEMU -initrd, netboot)
  --dtbs DIR              device trees: every *.dtb under DIR
  --overlays DIR          rpi: device-tree overlays, copied to overlays/
  --firmware DIR          rpi: firmware files (bootcode.bin, start*.elf, fixup*.dat) for the root
  --cmdline TEXT          the kernel command line (cmdline.txt or extlinux.conf)
  --modloop FILE          a modloop squashfs, copied to boot/modloop-FLAVOR
  --modloop-dir DIR       a lib/modules tree, squashed by ramboot's own squashfs writer
layout
  --size SIZE             the image's size (K, M, G); default: the content plus headroom
  --headroom PERCENT      free space on top of the content (default 25)
  --gpt                   a GPT instead of an MBR
  --data-size SIZE        a second partition, ext4 (mkfs.ext4 -d), for persistent data
  --data-dir DIR          its initial content
  --label NAME            the FAT volume label (default RAMBOOT)
  --file SRC:DEST         an extra file on the boot partition (repeatable)
";

const USAGE: Usage = Usage {
    prog: "ramboot sdimage",
    text: HELP,
    status: 2,
};

/// Flags as given.
#[derive(Default)]
struct Raw {
    output: Option<PathBuf>,
    target: Option<String>,
    arch: Option<String>,
    flavor: Option<String>,
    repo: Option<PathBuf>,
    apks: Vec<PathBuf>,
    key: Option<PathBuf>,
    cache: Option<PathBuf>,
    apkovls: Vec<PathBuf>,
    overlay: Option<PathBuf>,
    world: Vec<String>,
    hostname: Option<String>,
    profile: Option<PathBuf>,
    kernel: Option<PathBuf>,
    initramfs: Option<PathBuf>,
    initramfs_out: Option<PathBuf>,
    init: Option<PathBuf>,
    kernel_modules: Option<PathBuf>,
    busybox: Option<PathBuf>,
    features: Vec<String>,
    modules: Vec<String>,
    dtbs: Option<PathBuf>,
    overlays: Option<PathBuf>,
    firmware: Option<PathBuf>,
    cmdline: Option<String>,
    modloop: Option<PathBuf>,
    modloop_dir: Option<PathBuf>,
    size: Option<String>,
    headroom: Option<String>,
    gpt: bool,
    data_size: Option<String>,
    data_dir: Option<PathBuf>,
    label: Option<String>,
    files: Vec<String>,
    help: bool,
}

fn split_list(v: &str) -> impl Iterator<Item = String> + '_ {
    v.split([',', ' ', '\n'])
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn parse_raw(mut p: Args) -> Result<Raw, ArgError> {
    let mut r = Raw::default();
    while let Some(arg) = p.next_arg()? {
        match arg {
            Short('o') | Long("output") => r.output = Some(p.path()?),
            Long("target") => r.target = Some(p.string()?),
            Long("arch") => r.arch = Some(p.string()?),
            Long("flavor") | Long("flavour") => r.flavor = Some(p.string()?),
            Long("repo") => r.repo = Some(p.path()?),
            Long("apk") => r.apks.push(p.path()?),
            Long("key") => r.key = Some(p.path()?),
            Long("cache") => r.cache = Some(p.path()?),
            Long("apkovl") => r.apkovls.push(p.path()?),
            Long("overlay") => r.overlay = Some(p.path()?),
            Long("world") => r.world.extend(split_list(&p.string()?)),
            Long("hostname") => r.hostname = Some(p.string()?),
            Long("profile") => r.profile = Some(p.path()?),
            Long("kernel") => r.kernel = Some(p.path()?),
            Long("initramfs") => r.initramfs = Some(p.path()?),
            Long("initramfs-out") => r.initramfs_out = Some(p.path()?),
            Long("init") => r.init = Some(p.path()?),
            Long("kernel-modules") => r.kernel_modules = Some(p.path()?),
            Long("busybox") => r.busybox = Some(p.path()?),
            Short('F') | Long("features") => r.features.extend(split_list(&p.string()?)),
            Short('m') | Long("modules") => r.modules.extend(split_list(&p.string()?)),
            Long("dtbs") => r.dtbs = Some(p.path()?),
            Long("overlays") => r.overlays = Some(p.path()?),
            Long("firmware") => r.firmware = Some(p.path()?),
            Long("cmdline") => r.cmdline = Some(p.string()?),
            Long("modloop") => r.modloop = Some(p.path()?),
            Long("modloop-dir") => r.modloop_dir = Some(p.path()?),
            Long("size") => r.size = Some(p.string()?),
            Long("headroom") => r.headroom = Some(p.string()?),
            Long("gpt") => r.gpt = true,
            Long("data-size") => r.data_size = Some(p.string()?),
            Long("data-dir") => r.data_dir = Some(p.path()?),
            Long("label") => r.label = Some(p.string()?),
            Long("file") => r.files.push(p.string()?),
            Short('h') | Long("help") => r.help = true,
            Value(_) | Short(_) | Long(_) => return Err(unexpected(arg)),
        }
    }
    Ok(r)
}

/// `256M`, `2G`, `512K` or bytes.
pub fn size(flag: &str, v: &str) -> Result<u64, ArgError> {
    let (digits, unit) = match v.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => v.split_at(i),
        None => (v, ""),
    };
    let shift = match unit {
        "" => 0,
        "K" | "k" | "KiB" => 10,
        "M" | "m" | "MiB" => 20,
        "G" | "g" | "GiB" => 30,
        _ => {
            return Err(ArgError::invalid(
                flag,
                v,
                "expected a size: bytes or K, M, G",
            ))
        }
    };
    let n: u64 = number(flag, digits)?;
    n.checked_mul(1 << shift)
        .ok_or_else(|| ArgError::invalid(flag, v, "too large"))
}

fn conflict(a: &str, b: &str) -> ArgError {
    ArgError::Conflict(format!("{a} and {b} exclude each other"))
}

fn validate(r: Raw) -> Result<Spec, ArgError> {
    let output = r
        .output
        .ok_or_else(|| ArgError::Missing("-o FILE".into()))?;
    let target = match r.target.as_deref() {
        Some("rpi") => Target::Rpi,
        Some("virt") => Target::Virt,
        Some("none") => Target::None,
        Some(t) => {
            return Err(ArgError::invalid(
                "--target",
                t,
                "expected rpi, virt or none",
            ))
        }
        None => return Err(ArgError::Missing("--target rpi|virt|none".into())),
    };
    let repository = match (r.repo, r.apks.is_empty()) {
        (Some(_), false) => return Err(conflict("--repo", "--apk")),
        (Some(d), true) => Some(Repository::Dir(d)),
        (None, false) => Some(Repository::Packages(r.apks)),
        (None, true) => None,
    };
    let writes_ovl = r.overlay.is_some() || !r.world.is_empty() || r.hostname.is_some();
    let apkovl = match (r.apkovls.is_empty(), writes_ovl) {
        _ if r.profile.is_some() && (writes_ovl || !r.apkovls.is_empty()) => {
            return Err(conflict(
                "--profile",
                "--apkovl/--overlay/--world/--hostname",
            ))
        }
        _ if r.profile.is_some() => r.profile.map(Apkovl::Profile),
        (false, true) => return Err(conflict("--apkovl", "--overlay/--world/--hostname")),
        (false, false) => Some(Apkovl::Files(r.apkovls)),
        (true, true) => Some(Apkovl::Write(OverlaySpec {
            tree: r.overlay,
            world: r.world,
            hostname: r.hostname,
            files: Vec::new(),
        })),
        (true, false) => None,
    };
    let builds = r.init.is_some()
        || r.kernel_modules.is_some()
        || r.busybox.is_some()
        || !r.features.is_empty()
        || !r.modules.is_empty();
    let initramfs = match r.initramfs {
        Some(_) if builds => {
            return Err(conflict(
                "--initramfs",
                "--init/--kernel-modules/--busybox/-F/-m",
            ))
        }
        Some(f) => Some(Initramfs::File(f)),
        None if builds || target != Target::None => Some(Initramfs::Build {
            init: r.init,
            kernel_modules: r.kernel_modules,
            busybox: r.busybox,
            features: r.features,
            modules: r.modules,
        }),
        None => None,
    };
    let modloop = match (r.modloop, r.modloop_dir) {
        (Some(_), Some(_)) => return Err(conflict("--modloop", "--modloop-dir")),
        (Some(f), None) => Some(Modloop::File(f)),
        (None, Some(d)) => Some(Modloop::Dir(d)),
        (None, None) => None,
    };
    let mut files = Vec::new();
    for f in &r.files {
        let (src, dest) = f
            .split_once(':')
            .ok_or_else(|| ArgError::invalid("--file", f, "expected SRC:DEST"))?;
        files.push((PathBuf::from(src), dest.to_string()));
    }
    let data = match (r.data_size, r.data_dir) {
        (Some(s), dir) => Some((size("--data-size", &s)?, dir)),
        (None, Some(_)) => {
            return Err(ArgError::Missing(
                "--data-size SIZE (for --data-dir)".into(),
            ))
        }
        (None, None) => None,
    };
    let epoch = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Ok(Spec {
        output,
        target,
        arch: r.arch.unwrap_or_else(|| "aarch64".into()),
        flavor: r.flavor,
        repository,
        key: r.key,
        apkovl,
        kernel: r.kernel,
        dtbs: r.dtbs,
        overlays: r.overlays,
        firmware: r.firmware,
        initramfs,
        initramfs_out: r.initramfs_out,
        modloop,
        cache: r.cache,
        files,
        cmdline: r.cmdline,
        size: r.size.map(|s| size("--size", &s)).transpose()?,
        headroom: r
            .headroom
            .map(|h| number("--headroom", &h))
            .transpose()?
            .unwrap_or(25),
        gpt: r.gpt,
        data,
        label: r.label.unwrap_or_else(|| "RAMBOOT".into()),
        epoch,
    })
}

pub fn main(args: &[OsString]) -> i32 {
    let spec = match USAGE.two_stage(args, parse_raw, |r| r.help, validate) {
        Ok(s) => s,
        Err(code) => return code,
    };
    match sdimage::build(&crate::sys::RealSys, &spec) {
        Ok(r) => {
            for w in &r.warnings {
                eprintln!("ramboot sdimage: warning: {w}");
            }
            let modloop = r
                .modloop
                .map(|m| format!("; modloop: {m}"))
                .unwrap_or_default();
            println!(
                "{}: {} bytes, boot partition {} bytes, {} files ({} bytes){modloop}",
                spec.output.display(),
                r.size,
                r.boot_partition,
                r.files,
                r.content
            );
            0
        }
        Err(e) => {
            eprintln!("ramboot sdimage: {e}");
            1
        }
    }
}
