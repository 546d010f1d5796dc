//! Building the initramfs: the cpio writer and `mkinitfs`.
//!
//! The image holds ramboot as `/init` (and as `/sbin/modprobe`, so the kernel's own module requests
//! reach ramboot's loader), the kernel modules needed to reach the boot media with their index
//! files cut down to match, apk keys, optional extra files and an optional busybox for the rescue
//! shell. Everything is written reproducibly (see [`cpio`]).
//!
//! The kernel execs `/init` itself, with nothing else to help: a dynamically linked program or
//! one built for another CPU fails only at boot, with a bare "Failed to execute /init". So the
//! programs (`/init`, the rescue busybox) are checked first: ELF, no program interpreter, and
//! the machine of the kernel modules when modules are included.

pub mod cpio;
pub mod features;

use cpio::{Archive, EntryKind};
use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// How the archive is compressed; the kernel must have the matching decompressor (gzip always is).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
}

/// Everything `mkinitfs` puts into an image.
#[derive(Clone, Debug)]
pub struct Spec {
    /// The static ramboot binary that becomes `/init`.
    pub init: PathBuf,
    /// A `lib/modules/<kver>` directory and the modules to take from it (paths relative to it, as
    /// in `modules.dep`); the caller computes the dependency closure.
    pub modules: Option<ModuleSet>,
    /// A static busybox: installed as `/bin/busybox` with a `/bin/sh` link for the rescue shell.
    pub busybox: Option<PathBuf>,
    /// apk public keys, copied to `/etc/apk/keys/` (the boot copies them into the new root).
    pub apk_keys: Vec<PathBuf>,
    /// Extra files: (host source, absolute destination in the image).
    pub files: Vec<(PathBuf, String)>,
    pub compression: Compression,
    /// The mtime of every entry (`SOURCE_DATE_EPOCH`, else 0).
    pub mtime: u32,
}

#[derive(Clone, Debug)]
pub struct ModuleSet {
    pub dir: PathBuf,
    pub kernel_release: String,
    pub files: Vec<PathBuf>,
}

/// What was written.
#[derive(Debug)]
pub struct Report {
    pub entries: usize,
    pub modules: usize,
    pub uncompressed: u64,
    pub compressed: u64,
}

/// Errors of `mkinitfs`.
#[derive(Debug, thiserror::Error)]
pub enum MkinitfsError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("bad destination path in the image: {}", crate::quote::quoted(dest))]
    BadDestination { dest: String },
    /// A program the kernel could not run from the image; `what` is the option (`--init`).
    #[error("{what} {}: {why}", path.display())]
    Unrunnable {
        what: &'static str,
        path: PathBuf,
        why: String,
    },
    /// `-F NAME` names no built-in feature list (and no `--features-dir` was given).
    #[error(
        "unknown feature {name} (built in: {}; or give --features-dir DIR)",
        features::built_in_names()
    )]
    UnknownFeature { name: String },
    /// `-F NAME` with `--features-dir`: `NAME.modules` could not be read.
    #[error("feature {name}: cannot read {}: {source}", path.display())]
    ReadFeature {
        name: String,
        path: PathBuf,
        source: io::Error,
    },
}

fn read(path: &Path) -> Result<Vec<u8>, MkinitfsError> {
    fs::read(path).map_err(|source| MkinitfsError::Read {
        path: path.into(),
        source,
    })
}

/// The machine of the kernel modules: the ELF header of the first module that has one
/// (decompressed when needed), with its path for messages. `None` when no module says.
fn modules_machine(set: &ModuleSet) -> Option<(crate::elf::ElfInfo, PathBuf)> {
    use crate::hw::modules::{decompress, Compression as ModCompression};
    set.files.iter().find_map(|rel| {
        let path = set.dir.join(rel);
        let file = fs::File::open(&path).ok()?;
        let bytes = match ModCompression::of(&rel.to_string_lossy()) {
            ModCompression::None => {
                let mut head = Vec::new();
                io::Read::read_to_end(&mut io::Read::take(file, 64 * 1024), &mut head).ok()?;
                head
            }
            c => decompress(c, file).ok()?,
        };
        Some((crate::elf::parse(&bytes).ok()?, path))
    })
}

/// Refuses a program the kernel could not start from the image: not ELF, not an executable,
/// dynamically linked, or built for another machine than the kernel modules.
fn check_program(
    what: &'static str,
    path: &Path,
    bytes: &[u8],
    modules: Option<&(crate::elf::ElfInfo, PathBuf)>,
) -> Result<(), MkinitfsError> {
    let refuse = |why: String| MkinitfsError::Unrunnable {
        what,
        path: path.into(),
        why,
    };
    let info = crate::elf::parse(bytes).map_err(|e| {
        refuse(format!(
            "{e}; the kernel runs it directly, so it must be a static ELF program"
        ))
    })?;
    if info.kind != 2 && info.kind != 3 {
        return Err(refuse(format!(
            "an ELF file of type {} (not an executable program)",
            info.kind
        )));
    }
    if let Some(interp) = &info.interpreter {
        return Err(refuse(format!(
            "dynamically linked (it needs the loader {interp}, which is not in the initramfs); \
             use a static build, e.g. `cargo build --release --target {}-unknown-linux-musl`",
            info.machine_name()
        )));
    }
    if let Some((m, module)) = modules {
        if !info.same_machine(m) {
            return Err(refuse(format!(
                "built for {}{} but the kernel modules are for {}{} ({}): this kernel cannot run it",
                info.machine_name(),
                if info.is_64 { "" } else { " (32-bit)" },
                m.machine_name(),
                if m.is_64 { "" } else { " (32-bit)" },
                module.display()
            )));
        }
    }
    Ok(())
}

/// The directories every image has: what PID 1 mounts on or creates files in.
const SKELETON: &[&str] = &[
    "dev", "proc", "sys", "run", "tmp", "sysroot", "media", "etc", "bin", "sbin", "root",
];

const ALPINE_FSTAB: &str = "/dev/cdrom\t/media/cdrom\tiso9660\tnoauto,ro 0 0\n/dev/fd0\t/media/floppy\tvfat\tnoauto\t0 0\n/dev/usbdisk\t/media/usb\tvfat\tnoauto\t0 0\n";

/// Index files the loader reads; `modules.dep` and `modules.alias` are cut to the included modules.
const MODULE_INDEXES: &[&str] = &[
    "modules.softdep",
    "modules.builtin",
    "modules.builtin.modinfo",
    "modules.devname",
];

/// Builds the archive described by `spec`.
pub fn build(spec: &Spec) -> Result<(Archive, usize), MkinitfsError> {
    let mut a = Archive::new();
    let bad = |dest: &str| MkinitfsError::BadDestination { dest: dest.into() };
    for d in SKELETON {
        a.dir(d).map_err(|_| bad(d))?;
    }
    // Alpine's initramfs fstab (mkinitfs `fstab`): where boot media are relocated to when the
    // apkovl brings no fstab of its own.
    a.file("etc/fstab", 0o644, ALPINE_FSTAB.as_bytes().to_vec())
        .map_err(|_| bad("etc/fstab"))?;
    let machine = spec.modules.as_ref().and_then(modules_machine);
    let init = read(&spec.init)?;
    check_program("--init", &spec.init, &init, machine.as_ref())?;
    a.file("init", 0o755, init).map_err(|_| bad("init"))?;
    a.symlink("sbin/modprobe", "/init")
        .map_err(|_| bad("sbin/modprobe"))?;
    if let Some(bb) = &spec.busybox {
        let busybox = read(bb)?;
        check_program("--busybox", bb, &busybox, machine.as_ref())?;
        a.file("bin/busybox", 0o755, busybox)
            .map_err(|_| bad("bin/busybox"))?;
        a.symlink("bin/sh", "busybox").map_err(|_| bad("bin/sh"))?;
    }
    for key in &spec.apk_keys {
        let name = key
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dest = format!("etc/apk/keys/{name}");
        a.file(&dest, 0o644, read(key)?).map_err(|_| bad(&dest))?;
    }
    let mut module_count = 0;
    if let Some(set) = &spec.modules {
        module_count = add_modules(&mut a, set)?;
    }
    for (src, dest) in &spec.files {
        let meta = fs::metadata(src).map_err(|source| MkinitfsError::Read {
            path: src.clone(),
            source,
        })?;
        let mode = std::os::unix::fs::PermissionsExt::mode(&meta.permissions());
        if meta.is_dir() {
            a.add(dest, mode, EntryKind::Dir).map_err(|_| bad(dest))?;
        } else {
            a.file(dest, mode, read(src)?).map_err(|_| bad(dest))?;
        }
    }
    Ok((a, module_count))
}

fn add_modules(a: &mut Archive, set: &ModuleSet) -> Result<usize, MkinitfsError> {
    let base = format!("lib/modules/{}", set.kernel_release);
    let included: BTreeSet<String> = set
        .files
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    for rel in &included {
        let dest = format!("{base}/{rel}");
        a.file(&dest, 0o644, read(&set.dir.join(rel))?)
            .map_err(|_| MkinitfsError::BadDestination { dest: dest.clone() })?;
    }
    // Names as the loader sees them: file stem before `.ko`, with `-` folded to `_`.
    let names: BTreeSet<String> = included.iter().map(|p| module_name(p)).collect();
    let text = |name: &str| -> Result<Option<String>, MkinitfsError> {
        let path = set.dir.join(name);
        match fs::read(&path) {
            Ok(b) => Ok(Some(String::from_utf8_lossy(&b).into_owned())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(MkinitfsError::Read { path, source }),
        }
    };
    if let Some(dep) = text("modules.dep")? {
        let kept: String = dep
            .lines()
            .filter(|l| l.split_once(':').is_some_and(|(m, _)| included.contains(m)))
            .map(|l| format!("{l}\n"))
            .collect();
        a.file(&format!("{base}/modules.dep"), 0o644, kept.into_bytes())
            .expect("valid path");
    }
    if let Some(alias) = text("modules.alias")? {
        let kept: String = alias
            .lines()
            .filter(|l| {
                l.split_whitespace()
                    .nth(2)
                    .is_some_and(|m| names.contains(&m.replace('-', "_")))
            })
            .map(|l| format!("{l}\n"))
            .collect();
        a.file(&format!("{base}/modules.alias"), 0o644, kept.into_bytes())
            .expect("valid path");
    }
    for idx in MODULE_INDEXES {
        if let Some(t) = text(idx)? {
            a.file(&format!("{base}/{idx}"), 0o644, t.into_bytes())
                .expect("valid path");
        }
    }
    Ok(included.len())
}

/// `kernel/fs/fat/vfat.ko.xz` → `vfat`.
pub fn module_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = file.split(".ko").next().unwrap_or(file);
    stem.replace('-', "_")
}

/// The archive as an image: its bytes and its uncompressed size.
pub fn encode(
    archive: &Archive,
    compression: Compression,
    mtime: u32,
) -> io::Result<(Vec<u8>, u64)> {
    let mut raw = Vec::new();
    let uncompressed = archive.write_to(&mut raw, mtime)?;
    let bytes = match compression {
        Compression::None => raw,
        Compression::Gzip => {
            // mtime 0 and no file name in the gzip header keep the output reproducible.
            let mut gz = flate2::GzBuilder::new()
                .mtime(0)
                .write(Vec::new(), flate2::Compression::best());
            gz.write_all(&raw)?;
            gz.finish()?
        }
    };
    Ok((bytes, uncompressed))
}

/// Builds and writes the image; returns what was written.
pub fn write(spec: &Spec, output: &Path) -> Result<Report, MkinitfsError> {
    let (archive, modules) = build(spec)?;
    let werr = |source| MkinitfsError::Write {
        path: output.into(),
        source,
    };
    let (bytes, uncompressed) = encode(&archive, spec.compression, spec.mtime).map_err(werr)?;
    let tmp = output.with_extension("tmp");
    fs::write(&tmp, &bytes)
        .and_then(|_| fs::rename(&tmp, output))
        .map_err(werr)?;
    Ok(Report {
        entries: archive.len(),
        modules,
        uncompressed,
        compressed: bytes.len() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A read or write failure keeps its I/O error as the source.
    #[test]
    fn io_failures_are_their_sources() {
        use std::error::Error as _;
        let e = MkinitfsError::Read {
            path: "/nope".into(),
            source: io::Error::from_raw_os_error(2),
        };
        assert!(e.source().unwrap().downcast_ref::<io::Error>().is_some());
        let e = MkinitfsError::ReadFeature {
            name: "x".into(),
            path: "/d/x.modules".into(),
            source: io::Error::from_raw_os_error(2),
        };
        assert!(e.source().is_some());
    }

    #[test]
    fn module_names_fold_dashes_and_extensions() {
        assert_eq!(module_name("kernel/fs/fat/vfat.ko.xz"), "vfat");
        assert_eq!(
            module_name("kernel/drivers/usb/storage/usb-storage.ko"),
            "usb_storage"
        );
    }

    #[test]
    fn image_has_init_modprobe_link_modules_and_cut_indexes() {
        let dir = tempfile::tempdir().unwrap();
        let init = dir.path().join("ramboot");
        fs::write(
            &init,
            crate::elf::minimal(crate::elf::EM_AARCH64, true, 2, None),
        )
        .unwrap();
        let mods = dir.path().join("6.1.0");
        fs::create_dir_all(mods.join("kernel/fs")).unwrap();
        fs::write(mods.join("kernel/fs/a.ko"), b"A").unwrap();
        fs::write(mods.join("kernel/fs/b.ko"), b"B").unwrap();
        fs::write(
            mods.join("modules.dep"),
            "kernel/fs/a.ko: kernel/fs/b.ko\nkernel/fs/b.ko:\nkernel/fs/c.ko:\n",
        )
        .unwrap();
        fs::write(mods.join("modules.alias"), "alias fs-a a\nalias fs-c c\n").unwrap();
        let spec = Spec {
            init,
            modules: Some(ModuleSet {
                dir: mods,
                kernel_release: "6.1.0".into(),
                files: vec!["kernel/fs/a.ko".into(), "kernel/fs/b.ko".into()],
            }),
            busybox: None,
            apk_keys: vec![],
            files: vec![],
            compression: Compression::Gzip,
            mtime: 0,
        };
        let (a, n) = build(&spec).unwrap();
        assert_eq!(n, 2);
        for p in [
            "init",
            "sbin/modprobe",
            "dev",
            "sysroot",
            "lib/modules/6.1.0/kernel/fs/a.ko",
        ] {
            assert!(a.contains(p), "{p}");
        }
        let out = dir.path().join("initrd");
        let r1 = write(&spec, &out).unwrap();
        let first = fs::read(&out).unwrap();
        let r2 = write(&spec, &out).unwrap();
        assert_eq!(first, fs::read(&out).unwrap(), "reproducible");
        assert_eq!(r1.compressed, r2.compressed);
        let mut raw = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&first[..]), &mut raw)
            .unwrap();
        let text = String::from_utf8_lossy(&raw);
        assert!(text.contains("kernel/fs/a.ko: kernel/fs/b.ko\nkernel/fs/b.ko:\n"));
        assert!(!text.contains("kernel/fs/c.ko"));
        assert!(text.contains("alias fs-a a\n") && !text.contains("fs-c"));
    }

    fn spec_with(dir: &Path, init: &[u8], modules: &[(&str, Vec<u8>)]) -> Spec {
        let init_path = dir.join("init-under-test");
        fs::write(&init_path, init).unwrap();
        let mods = dir.join("6.1.0");
        let mut files = Vec::new();
        for (rel, bytes) in modules {
            let p = mods.join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, bytes).unwrap();
            files.push(PathBuf::from(rel));
        }
        Spec {
            init: init_path,
            modules: (!modules.is_empty()).then(|| ModuleSet {
                dir: mods,
                kernel_release: "6.1.0".into(),
                files,
            }),
            busybox: None,
            apk_keys: vec![],
            files: vec![],
            compression: Compression::None,
            mtime: 0,
        }
    }

    fn refusal(spec: &Spec) -> String {
        match build(spec) {
            Err(e @ MkinitfsError::Unrunnable { .. }) => e.to_string(),
            Err(e) => panic!("another error: {e}"),
            Ok(_) => panic!("accepted"),
        }
    }

    #[test]
    fn refuses_an_init_the_kernel_cannot_run_and_says_why() {
        use crate::elf::{minimal, EM_AARCH64, EM_ARM, EM_X86_64};
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let module = minimal(EM_AARCH64, true, 1, None);
        let mods = [("kernel/fs/ext4.ko", module.clone())];
        // Dynamically linked.
        let dynamic = minimal(EM_AARCH64, true, 3, Some("/lib/ld-musl-aarch64.so.1"));
        let e = refusal(&spec_with(d, &dynamic, &mods));
        assert!(
            e.contains("init-under-test: dynamically linked (it needs the loader /lib/ld-musl-aarch64.so.1"),
            "{e}"
        );
        // Another machine than the modules, also without modules being asked for by name.
        let x86 = minimal(EM_X86_64, true, 3, None);
        let e = refusal(&spec_with(d, &x86, &mods));
        assert!(
            e.contains("built for x86_64 but the kernel modules are for aarch64")
                && e.contains("ext4.ko"),
            "{e}"
        );
        let arm32 = minimal(EM_ARM, false, 2, None);
        let e = refusal(&spec_with(d, &arm32, &mods));
        assert!(e.contains("built for arm (32-bit) but"), "{e}");
        // Not a program at all.
        let e = refusal(&spec_with(d, b"#!/bin/sh\nexec /sbin/init\n", &mods));
        assert!(e.contains("not an ELF file"), "{e}");
        let e = refusal(&spec_with(d, &module, &mods));
        assert!(e.contains("not an executable program"), "{e}");
        // A compressed module is read through its decompressor.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&module).unwrap();
        let gz_mods = [("kernel/fs/ext4.ko.gz", gz.finish().unwrap())];
        let e = refusal(&spec_with(d, &x86, &gz_mods));
        assert!(e.contains("kernel modules are for aarch64"), "{e}");
        // A static program for the modules' machine is fine, and so is any static one alone.
        let good = minimal(EM_AARCH64, true, 3, None);
        assert!(build(&spec_with(d, &good, &mods)).is_ok());
        assert!(build(&spec_with(d, &x86, &[])).is_ok());
        // The rescue busybox is held to the same rule.
        let mut spec = spec_with(d, &good, &mods);
        let bb = d.join("busybox");
        fs::write(&bb, &dynamic).unwrap();
        spec.busybox = Some(bb);
        assert!(refusal(&spec).starts_with("--busybox "));
    }
}
