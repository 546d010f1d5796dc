//! Just enough of an ELF header reader to answer two questions before a binary is put where only
//! the kernel will run it: which machine is it for, and does it need a program interpreter
//! (dynamically linked)? `mkinitfs` refuses an `/init` the kernel cannot run, and `plan` decides
//! whether a package's scripts can run on this host. Reads the file header and the program
//! headers only; every offset is bounds-checked, since the bytes are whatever the user gave.

use std::fmt;

/// `e_machine` values this project meets (from the ELF gABI and Linux `include/uapi/linux/elf-em.h`).
pub const EM_386: u16 = 3;
pub const EM_MIPS: u16 = 8;
pub const EM_PPC: u16 = 20;
pub const EM_PPC64: u16 = 21;
pub const EM_S390: u16 = 22;
pub const EM_ARM: u16 = 40;
pub const EM_X86_64: u16 = 62;
pub const EM_AARCH64: u16 = 183;
pub const EM_RISCV: u16 = 243;
pub const EM_LOONGARCH: u16 = 258;

const PT_INTERP: u32 = 3;

/// What the headers say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ElfInfo {
    pub is_64: bool,
    pub little_endian: bool,
    /// `e_type`: 1 relocatable (kernel modules), 2 executable, 3 shared object or PIE.
    pub kind: u16,
    pub machine: u16,
    /// The `PT_INTERP` path: set when the program needs a dynamic loader.
    pub interpreter: Option<String>,
}

impl ElfInfo {
    /// A readable machine name (`aarch64`, `x86_64`, ...), with the word size where it matters.
    pub fn machine_name(&self) -> String {
        match (self.machine, self.is_64) {
            (EM_PPC64, _) if self.little_endian => "ppc64le".into(),
            (EM_MIPS, true) => "mips64".into(),
            (EM_RISCV, false) => "riscv32".into(),
            (m, _) => machine_name(m).into(),
        }
    }

    /// True when the two are for the same CPU and word size (what the kernel checks).
    pub fn same_machine(&self, other: &ElfInfo) -> bool {
        self.machine == other.machine
            && self.is_64 == other.is_64
            && self.little_endian == other.little_endian
    }
}

/// The name of an `e_machine` value.
pub fn machine_name(machine: u16) -> &'static str {
    match machine {
        EM_386 => "i386",
        EM_MIPS => "mips",
        EM_PPC => "ppc",
        EM_PPC64 => "ppc64",
        EM_S390 => "s390x",
        EM_ARM => "arm",
        EM_X86_64 => "x86_64",
        EM_AARCH64 => "aarch64",
        EM_RISCV => "riscv64",
        EM_LOONGARCH => "loongarch64",
        _ => "an unknown machine",
    }
}

/// The ELF machine of an apk architecture name (`aarch64`, `armv7`, `x86`...).
pub fn machine_of_apk_arch(arch: &str) -> Option<u16> {
    Some(match arch {
        "x86_64" => EM_X86_64,
        "x86" => EM_386,
        "aarch64" => EM_AARCH64,
        "armhf" | "armv7" => EM_ARM,
        "ppc64le" => EM_PPC64,
        "s390x" => EM_S390,
        "riscv64" => EM_RISCV,
        "loongarch64" => EM_LOONGARCH,
        "mips64" | "mips64el" => EM_MIPS,
        _ => return None,
    })
}

/// Why bytes are not a usable ELF header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ElfError {
    NotElf,
    Truncated,
    BadClass(u8),
    BadEncoding(u8),
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotElf => write!(f, "not an ELF file (no \\x7fELF magic)"),
            Self::Truncated => write!(f, "a truncated ELF file"),
            Self::BadClass(c) => write!(f, "an ELF file of unknown class {c}"),
            Self::BadEncoding(e) => write!(f, "an ELF file of unknown byte order {e}"),
        }
    }
}

impl std::error::Error for ElfError {}

/// Bounds-checked little/big-endian reads.
struct Reader<'a> {
    b: &'a [u8],
    le: bool,
}

impl Reader<'_> {
    fn bytes<const N: usize>(&self, at: usize) -> Result<[u8; N], ElfError> {
        let end = at.checked_add(N).ok_or(ElfError::Truncated)?;
        let s = self.b.get(at..end).ok_or(ElfError::Truncated)?;
        Ok(s.try_into().expect("length checked"))
    }
    fn u16(&self, at: usize) -> Result<u16, ElfError> {
        let b = self.bytes::<2>(at)?;
        Ok(if self.le {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        })
    }
    fn u32(&self, at: usize) -> Result<u32, ElfError> {
        let b = self.bytes::<4>(at)?;
        Ok(if self.le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    }
    fn u64(&self, at: usize) -> Result<u64, ElfError> {
        let b = self.bytes::<8>(at)?;
        Ok(if self.le {
            u64::from_le_bytes(b)
        } else {
            u64::from_be_bytes(b)
        })
    }
    /// A 32- or 64-bit address/offset field, as usize.
    fn word(&self, at: usize, is_64: bool) -> Result<usize, ElfError> {
        let v = if is_64 {
            self.u64(at)?
        } else {
            u64::from(self.u32(at)?)
        };
        usize::try_from(v).map_err(|_| ElfError::Truncated)
    }
}

/// Reads only the file header (class, byte order, type, machine); `interpreter` stays `None`.
pub fn header(bytes: &[u8]) -> Result<ElfInfo, ElfError> {
    if bytes.len() < 4 || &bytes[..4] != b"\x7fELF" {
        return Err(ElfError::NotElf);
    }
    let class = *bytes.get(4).ok_or(ElfError::Truncated)?;
    let is_64 = match class {
        1 => false,
        2 => true,
        c => return Err(ElfError::BadClass(c)),
    };
    let le = match *bytes.get(5).ok_or(ElfError::Truncated)? {
        1 => true,
        2 => false,
        e => return Err(ElfError::BadEncoding(e)),
    };
    let r = Reader { b: bytes, le };
    Ok(ElfInfo {
        is_64,
        little_endian: le,
        kind: r.u16(16)?,
        machine: r.u16(18)?,
        interpreter: None,
    })
}

/// Reads the file header and the program headers of `bytes` (the whole file, or at least up to
/// the end of the program headers and the interpreter string).
pub fn parse(bytes: &[u8]) -> Result<ElfInfo, ElfError> {
    let mut info = header(bytes)?;
    let is_64 = info.is_64;
    let r = Reader {
        b: bytes,
        le: info.little_endian,
    };
    // e_phoff, e_phentsize, e_phnum sit at different offsets in the two classes.
    let (phoff, phentsize, phnum) = if is_64 {
        (r.word(32, true)?, r.u16(54)?, r.u16(56)?)
    } else {
        (r.word(28, false)?, r.u16(42)?, r.u16(44)?)
    };
    let mut interpreter = None;
    for i in 0..usize::from(phnum) {
        let ph = usize::from(phentsize)
            .checked_mul(i)
            .and_then(|o| o.checked_add(phoff))
            .ok_or(ElfError::Truncated)?;
        if r.u32(ph)? != PT_INTERP {
            continue;
        }
        let (offset, size) = if is_64 {
            (r.word(ph + 8, true)?, r.word(ph + 32, true)?)
        } else {
            (r.word(ph + 4, false)?, r.word(ph + 16, false)?)
        };
        let end = offset.checked_add(size).ok_or(ElfError::Truncated)?;
        let raw = bytes.get(offset..end).ok_or(ElfError::Truncated)?;
        let path = raw.split(|&c| c == 0).next().unwrap_or_default();
        interpreter = Some(String::from_utf8_lossy(path).into_owned());
    }
    info.interpreter = interpreter;
    Ok(info)
}

/// Test and fixture helper: a minimal ELF header for `machine`, 64- or 32-bit little-endian,
/// with a `PT_INTERP` program header when `interpreter` is given.
pub fn minimal(machine: u16, is_64: bool, kind: u16, interpreter: Option<&str>) -> Vec<u8> {
    let (ehsize, phentsize) = if is_64 { (64usize, 56usize) } else { (52, 32) };
    let mut b = vec![0u8; ehsize];
    b[..4].copy_from_slice(b"\x7fELF");
    b[4] = if is_64 { 2 } else { 1 };
    b[5] = 1;
    b[6] = 1;
    b[16..18].copy_from_slice(&kind.to_le_bytes());
    b[18..20].copy_from_slice(&machine.to_le_bytes());
    b[20..24].copy_from_slice(&1u32.to_le_bytes());
    let phnum = u16::from(interpreter.is_some());
    if is_64 {
        b[32..40].copy_from_slice(&(ehsize as u64).to_le_bytes());
        b[52..54].copy_from_slice(&(ehsize as u16).to_le_bytes());
        b[54..56].copy_from_slice(&(phentsize as u16).to_le_bytes());
        b[56..58].copy_from_slice(&phnum.to_le_bytes());
    } else {
        b[28..32].copy_from_slice(&(ehsize as u32).to_le_bytes());
        b[40..42].copy_from_slice(&(ehsize as u16).to_le_bytes());
        b[42..44].copy_from_slice(&(phentsize as u16).to_le_bytes());
        b[44..46].copy_from_slice(&phnum.to_le_bytes());
    }
    if let Some(interp) = interpreter {
        let mut ph = vec![0u8; phentsize];
        let offset = ehsize + phentsize;
        let size = interp.len() + 1;
        ph[..4].copy_from_slice(&PT_INTERP.to_le_bytes());
        if is_64 {
            ph[8..16].copy_from_slice(&(offset as u64).to_le_bytes());
            ph[32..40].copy_from_slice(&(size as u64).to_le_bytes());
        } else {
            ph[4..8].copy_from_slice(&(offset as u32).to_le_bytes());
            ph[16..20].copy_from_slice(&(size as u32).to_le_bytes());
        }
        b.extend_from_slice(&ph);
        b.extend_from_slice(interp.as_bytes());
        b.push(0);
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_machine_and_interpreter_of_both_classes() {
        let dynamic = minimal(EM_AARCH64, true, 3, Some("/lib/ld-musl-aarch64.so.1"));
        let info = parse(&dynamic).unwrap();
        assert_eq!(info.machine_name(), "aarch64");
        assert_eq!(
            info.interpreter.as_deref(),
            Some("/lib/ld-musl-aarch64.so.1")
        );
        let arm = parse(&minimal(EM_ARM, false, 2, None)).unwrap();
        assert!(!arm.is_64 && arm.interpreter.is_none());
        assert_eq!(arm.machine_name(), "arm");
        assert!(!arm.same_machine(&info));
        assert_eq!(
            parse(&minimal(EM_ARM, false, 2, Some("/lib/ld-linux-armhf.so.3")))
                .unwrap()
                .interpreter
                .as_deref(),
            Some("/lib/ld-linux-armhf.so.3")
        );
    }

    #[test]
    fn refuses_what_is_not_elf_and_survives_truncation() {
        assert_eq!(parse(b"#!/bin/sh\n"), Err(ElfError::NotElf));
        let full = minimal(EM_X86_64, true, 2, Some("/lib64/ld-linux-x86-64.so.2"));
        for n in 0..full.len() {
            // Never a panic; either an error or (past the headers) a result.
            let _ = parse(&full[..n]);
        }
        let mut bad = full.clone();
        bad[4] = 9;
        assert_eq!(parse(&bad), Err(ElfError::BadClass(9)));
        // A program header table pointing far outside the file.
        let mut far = full;
        far[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(parse(&far), Err(ElfError::Truncated));
    }

    #[test]
    fn reads_the_real_test_binary() {
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let info = parse(&me).unwrap();
        let want = match std::env::consts::ARCH {
            "x86_64" => EM_X86_64,
            "aarch64" => EM_AARCH64,
            _ => info.machine,
        };
        assert_eq!(info.machine, want);
    }
}
