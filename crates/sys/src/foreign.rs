//! Running a stand-in root's programs on this host, for `ramboot plan` (a package script of an
//! aarch64 SD card on an x86_64 laptop). The kernel runs a program itself when it is for this
//! machine, or when binfmt_misc has a handler for it registered with the `F` flag (the handler
//! is then usable inside a chroot, as Debian's qemu-user-static registers it). Without that,
//! qemu-user (`qemu-<arch>-static`) can still run the script's interpreter, but programs the
//! script starts by path fail, so a failure there only means "not verified".

use crate::elf;
use std::path::{Path, PathBuf};

/// Who can run a program on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Runner {
    /// The kernel: a program for this machine, or one binfmt_misc handles.
    Kernel,
    /// qemu-user, at this host path.
    Qemu(PathBuf),
    /// Nothing here can: why.
    Unavailable(String),
}

/// The ELF machine of this host.
fn host_machine() -> Option<u16> {
    elf::machine_of_apk_arch(match std::env::consts::ARCH {
        "x86" => "x86",
        "arm" => "armv7",
        "powerpc64" => "ppc64le",
        "loongarch64" => "loongarch64",
        other => other,
    })
}

/// Who can run the program whose first bytes are `header`. What is not ELF is left to the
/// kernel, which refuses it here as it would on the card's machine.
pub fn runner_for(header: &[u8]) -> Runner {
    let Ok(info) = elf::header(header) else {
        return Runner::Kernel;
    };
    if host_machine() == Some(info.machine) && (info.is_64 == cfg!(target_pointer_width = "64")) {
        return Runner::Kernel;
    }
    if binfmt_runs(Path::new("/proc/sys/fs/binfmt_misc"), header) {
        return Runner::Kernel;
    }
    let name = info.machine_name();
    match qemu_name(&info).and_then(find_qemu) {
        Some(q) => Runner::Qemu(q),
        None => Runner::Unavailable(format!(
            "{name} programs cannot run on this {} host (install qemu-user-static, with binfmt_misc \
             for programs the scripts start)",
            std::env::consts::ARCH
        )),
    }
}

/// qemu-user's name for the machine of `info`.
fn qemu_name(info: &elf::ElfInfo) -> Option<&'static str> {
    Some(match (info.machine, info.is_64) {
        (elf::EM_AARCH64, _) => "aarch64",
        (elf::EM_ARM, _) => "arm",
        (elf::EM_X86_64, _) => "x86_64",
        (elf::EM_386, _) => "i386",
        (elf::EM_PPC64, _) if info.little_endian => "ppc64le",
        (elf::EM_S390, _) => "s390x",
        (elf::EM_RISCV, true) => "riscv64",
        (elf::EM_LOONGARCH, _) => "loongarch64",
        _ => return None,
    })
}

/// `qemu-<name>-static` (preferred: it needs nothing inside the chroot), else `qemu-<name>`
/// when it is static too, on PATH.
fn find_qemu(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    let dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    for file in [format!("qemu-{name}-static"), format!("qemu-{name}")] {
        for d in &dirs {
            let p = d.join(&file);
            let mut bytes = Vec::new();
            let read = std::fs::File::open(&p).and_then(|f| {
                std::io::Read::read_to_end(&mut std::io::Read::take(f, 4096), &mut bytes)
            });
            if read.is_err() {
                continue;
            }
            // It runs inside the chroot, where the host's shared libraries are not.
            if elf::parse(&bytes).is_ok_and(|i| i.interpreter.is_none()) {
                return Some(p);
            }
        }
    }
    None
}

/// True when an enabled binfmt_misc entry under `dir` with the `F` flag (interpreter opened at
/// registration, so it works in a chroot) matches `header` by magic and mask.
pub fn binfmt_runs(dir: &Path, header: &[u8]) -> bool {
    let enabled =
        |p: &Path| std::fs::read_to_string(p).is_ok_and(|t| t.lines().next() == Some("enabled"));
    if !enabled(&dir.join("status")) {
        return false;
    }
    let Ok(rd) = std::fs::read_dir(dir) else {
        return false;
    };
    rd.flatten().any(|e| {
        let name = e.file_name();
        if name == "status" || name == "register" {
            return false;
        }
        std::fs::read_to_string(e.path()).is_ok_and(|t| entry_matches(&t, header))
    })
}

/// One binfmt_misc entry (`/proc/sys/fs/binfmt_misc/<name>` text) against a file header.
fn entry_matches(text: &str, header: &[u8]) -> bool {
    let mut lines = text.lines();
    if lines.next() != Some("enabled") {
        return false;
    }
    let (mut flags, mut offset, mut magic, mut mask) = ("", 0usize, None, None);
    for l in lines {
        if let Some(v) = l.strip_prefix("flags: ") {
            flags = v;
        } else if let Some(v) = l.strip_prefix("offset ") {
            offset = v.trim().parse().unwrap_or(usize::MAX);
        } else if let Some(v) = l.strip_prefix("magic ") {
            magic = hex(v.trim());
        } else if let Some(v) = l.strip_prefix("mask ") {
            mask = hex(v.trim());
        }
    }
    let Some(magic) = magic else {
        return false; // an extension entry
    };
    if !flags.contains('F') {
        return false;
    }
    let mask = mask.unwrap_or_else(|| vec![0xff; magic.len()]);
    let Some(window) = offset
        .checked_add(magic.len())
        .and_then(|end| header.get(offset..end))
    else {
        return false;
    };
    window
        .iter()
        .zip(&magic)
        .zip(mask.iter().chain(std::iter::repeat(&0xff)))
        .all(|((b, m), k)| b & k == m & k)
}

fn hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Splits a `#!` line into the interpreter and its one optional argument, as Linux does.
pub fn shebang(head: &[u8]) -> Option<(PathBuf, Option<String>)> {
    let line = head.strip_prefix(b"#!")?;
    let line = line.split(|&b| b == b'\n').next()?;
    let line = String::from_utf8_lossy(line);
    let line = line.trim();
    let (interp, arg) = match line.split_once([' ', '\t']) {
        Some((i, a)) => (i, Some(a.trim().to_string()).filter(|a| !a.is_empty())),
        None => (line, None),
    };
    (!interp.is_empty()).then(|| (PathBuf::from(interp), arg))
}

#[cfg(test)]
mod tests {
    use super::*;

    const QEMU_AARCH64: &str = "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: POCF\noffset 0\nmagic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n";

    #[test]
    fn binfmt_entries_match_by_magic_and_mask_and_need_the_f_flag() {
        let aarch64 = elf::minimal(elf::EM_AARCH64, true, 2, None);
        let dyn_aarch64 = elf::minimal(elf::EM_AARCH64, true, 3, None);
        let arm = elf::minimal(elf::EM_ARM, false, 2, None);
        assert!(entry_matches(QEMU_AARCH64, &aarch64));
        assert!(
            entry_matches(QEMU_AARCH64, &dyn_aarch64),
            "mask covers e_type 2/3"
        );
        assert!(!entry_matches(QEMU_AARCH64, &arm));
        assert!(!entry_matches(
            &QEMU_AARCH64.replace("POCF", "POC"),
            &aarch64
        ));
        assert!(!entry_matches(
            &QEMU_AARCH64.replace("enabled", "disabled"),
            &aarch64
        ));
        assert!(!entry_matches(QEMU_AARCH64, b"\x7fELF"));

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("qemu-aarch64"), QEMU_AARCH64).unwrap();
        assert!(!binfmt_runs(dir.path(), &aarch64), "no status: not mounted");
        std::fs::write(dir.path().join("status"), "enabled\n").unwrap();
        assert!(binfmt_runs(dir.path(), &aarch64));
        std::fs::write(dir.path().join("status"), "disabled\n").unwrap();
        assert!(!binfmt_runs(dir.path(), &aarch64));
    }

    #[test]
    fn this_machine_runs_itself() {
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert_eq!(runner_for(&me[..64]), Runner::Kernel);
        assert_eq!(runner_for(b"#!/bin/sh\n"), Runner::Kernel);
    }

    #[test]
    fn shebang_lines_split_like_linux() {
        assert_eq!(
            shebang(b"#!/bin/busybox sh\nexit 0\n"),
            Some((PathBuf::from("/bin/busybox"), Some("sh".into())))
        );
        assert_eq!(
            shebang(b"#! /bin/sh\n"),
            Some((PathBuf::from("/bin/sh"), None))
        );
        assert_eq!(shebang(b"\x7fELF"), None);
        assert_eq!(shebang(b"#!\n"), None);
    }
}
