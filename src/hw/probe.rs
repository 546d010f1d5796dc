//! Filesystem type, label and UUID from superblocks, the part of libblkid a boot needs.
//!
//! Why native: nlplug-findfs links libblkid; we only need the handful of filesystems boot media and
//! root devices use, and must never trust the bytes (a garbage or truncated device is "unknown",
//! never a panic). Values are formatted the way `blkid` prints them so `root=UUID=...` copied from
//! `blkid` output matches.
//!
//! Reads go through [`ReadAt`] so the same code runs on a device file and on a byte slice.

use std::fmt;
use std::os::unix::fs::FileExt;

/// Positional reads that may come back short (end of device, I/O error: empty).
pub trait ReadAt {
    fn read_at(&self, offset: u64, len: usize) -> Vec<u8>;
}

impl ReadAt for [u8] {
    fn read_at(&self, offset: u64, len: usize) -> Vec<u8> {
        let Ok(start) = usize::try_from(offset) else {
            return Vec::new();
        };
        if start >= self.len() {
            return Vec::new();
        }
        self[start..start.saturating_add(len).min(self.len())].to_vec()
    }
}

impl ReadAt for std::fs::File {
    fn read_at(&self, offset: u64, len: usize) -> Vec<u8> {
        let mut buf = vec![0u8; len];
        let mut got = 0;
        while got < len {
            match FileExt::read_at(self, &mut buf[got..], offset + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        buf.truncate(got);
        buf
    }
}

/// Filesystems we recognise; the names are the kernel's (and blkid's) type names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FsType {
    Vfat,
    Ext2,
    Ext3,
    Ext4,
    Iso9660,
    Squashfs,
    Btrfs,
    Xfs,
    F2fs,
    Exfat,
}

impl FsType {
    pub fn as_str(self) -> &'static str {
        match self {
            FsType::Vfat => "vfat",
            FsType::Ext2 => "ext2",
            FsType::Ext3 => "ext3",
            FsType::Ext4 => "ext4",
            FsType::Iso9660 => "iso9660",
            FsType::Squashfs => "squashfs",
            FsType::Btrfs => "btrfs",
            FsType::Xfs => "xfs",
            FsType::F2fs => "f2fs",
            FsType::Exfat => "exfat",
        }
    }

    /// The type `mount -t` and `/proc/mounts` call by this name.
    pub fn from_name(name: &str) -> Option<FsType> {
        const ALL: [FsType; 10] = [
            FsType::Vfat,
            FsType::Ext2,
            FsType::Ext3,
            FsType::Ext4,
            FsType::Iso9660,
            FsType::Squashfs,
            FsType::Btrfs,
            FsType::Xfs,
            FsType::F2fs,
            FsType::Exfat,
        ];
        ALL.into_iter().find(|t| t.as_str() == name)
    }
}

impl fmt::Display for FsType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a superblock says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    pub fstype: FsType,
    pub label: Option<String>,
    pub uuid: Option<String>,
}

// Little helpers that return None instead of panicking on short buffers.
fn le16(b: &[u8], o: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?))
}
fn le32(b: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?))
}
pub(crate) fn le64(b: &[u8], o: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?))
}
fn be32(b: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(o..o + 4)?.try_into().ok()?))
}

/// 16 bytes as `8-4-4-4-12` lowercase hex, byte order as stored (ext, btrfs, xfs, f2fs).
pub fn uuid_string(b: &[u8]) -> Option<String> {
    let b = b.get(..16)?;
    if b.iter().all(|&x| x == 0) {
        return None;
    }
    let h: Vec<String> = b.iter().map(|x| format!("{x:02x}")).collect();
    Some(format!(
        "{}-{}-{}-{}-{}",
        h[..4].concat(),
        h[4..6].concat(),
        h[6..8].concat(),
        h[8..10].concat(),
        h[10..].concat()
    ))
}

/// A GUID as stored on disk (first three fields little-endian), formatted like blkid.
pub fn guid_string(b: &[u8]) -> Option<String> {
    let b = b.get(..16)?;
    let mut le = [0u8; 16];
    le.copy_from_slice(b);
    le[..4].reverse();
    le[4..6].reverse();
    le[6..8].reverse();
    uuid_string(&le)
}

/// A fixed-size, space or NUL padded label.
fn label_string(b: &[u8]) -> Option<String> {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    let s: String = String::from_utf8_lossy(&b[..end])
        .trim_end_matches(' ')
        .to_string();
    (!s.is_empty()).then_some(s)
}

/// A NUL-terminated UTF-16LE label.
pub(crate) fn utf16_label(b: &[u8]) -> Option<String> {
    let units: Vec<u16> = b
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|&u| u != 0)
        .collect();
    let s = String::from_utf16_lossy(&units).trim_end().to_string();
    (!s.is_empty()).then_some(s)
}

/// Serial numbers of FAT and exFAT: `XXXX-XXXX`, upper case.
fn fat_serial(id: u32) -> String {
    format!("{:04X}-{:04X}", id >> 16, id & 0xffff)
}

/// Probes a device (or image). `None` means no filesystem we know.
pub fn probe<R: ReadAt + ?Sized>(dev: &R) -> Option<Probe> {
    let head = dev.read_at(0, 4096);
    let sb1k = dev.read_at(1024, 1024);
    probe_squashfs(&head)
        .or_else(|| probe_xfs(&head))
        .or_else(|| probe_ext(&sb1k))
        .or_else(|| probe_f2fs(&sb1k))
        .or_else(|| probe_btrfs(dev))
        .or_else(|| probe_iso9660(dev))
        .or_else(|| probe_exfat(dev, &head))
        .or_else(|| probe_vfat(dev, &head))
}

/// [`probe`] over bytes in memory.
pub fn probe_bytes(bytes: &[u8]) -> Option<Probe> {
    probe(bytes)
}

/// True when the bytes start a squashfs image (the modloop check before mounting).
pub fn is_squashfs(head: &[u8]) -> bool {
    probe_squashfs(head).is_some()
}

fn probe_squashfs(b: &[u8]) -> Option<Probe> {
    // "hsqs", version 4.x.
    (b.get(..4)? == b"hsqs" && le16(b, 28)? == 4).then_some(Probe {
        fstype: FsType::Squashfs,
        label: None,
        uuid: None,
    })
}

fn probe_xfs(b: &[u8]) -> Option<Probe> {
    if b.get(..4)? != b"XFSB" {
        return None;
    }
    let bs = be32(b, 4)?;
    if !(512..=65536).contains(&bs) || !bs.is_power_of_two() {
        return None;
    }
    Some(Probe {
        fstype: FsType::Xfs,
        label: label_string(b.get(108..120)?),
        uuid: uuid_string(b.get(32..48)?),
    })
}

fn probe_ext(sb: &[u8]) -> Option<Probe> {
    if le16(sb, 56)? != 0xEF53 {
        return None;
    }
    const COMPAT_HAS_JOURNAL: u32 = 0x4;
    const INCOMPAT_FILETYPE: u32 = 0x2;
    const INCOMPAT_RECOVER: u32 = 0x4;
    const INCOMPAT_JOURNAL_DEV: u32 = 0x8;
    const INCOMPAT_META_BG: u32 = 0x10;
    const RO_COMPAT_SUPP: u32 = 0x1 | 0x2 | 0x4; // sparse_super, large_file, btree_dir
    let compat = le32(sb, 92)?;
    let incompat = le32(sb, 96)?;
    let ro_compat = le32(sb, 100)?;
    if incompat & INCOMPAT_JOURNAL_DEV != 0 {
        return None; // an external journal, not mountable
    }
    let journal = compat & COMPAT_HAS_JOURNAL != 0;
    let old_ro = ro_compat & !RO_COMPAT_SUPP == 0;
    // The oldest driver that understands every feature flag names the type, as in blkid.
    let fstype = if !journal && old_ro && incompat & !(INCOMPAT_FILETYPE | INCOMPAT_META_BG) == 0 {
        FsType::Ext2
    } else if journal
        && old_ro
        && incompat & !(INCOMPAT_FILETYPE | INCOMPAT_RECOVER | INCOMPAT_META_BG) == 0
    {
        FsType::Ext3
    } else {
        FsType::Ext4
    };
    Some(Probe {
        fstype,
        label: label_string(sb.get(120..136)?),
        uuid: uuid_string(sb.get(104..120)?),
    })
}

fn probe_f2fs(sb: &[u8]) -> Option<Probe> {
    if le32(sb, 0)? != 0xF2F5_2010 {
        return None;
    }
    Some(Probe {
        fstype: FsType::F2fs,
        label: utf16_label(sb.get(124..124 + 1024).or(sb.get(124..))?),
        uuid: uuid_string(sb.get(108..124)?),
    })
}

fn probe_btrfs<R: ReadAt + ?Sized>(dev: &R) -> Option<Probe> {
    let sb = dev.read_at(65536, 4096);
    if sb.get(64..72)? != b"_BHRfS_M" {
        return None;
    }
    Some(Probe {
        fstype: FsType::Btrfs,
        label: label_string(sb.get(299..555)?),
        uuid: uuid_string(sb.get(32..48)?),
    })
}

fn probe_iso9660<R: ReadAt + ?Sized>(dev: &R) -> Option<Probe> {
    let pvd = dev.read_at(32768, 2048);
    if pvd.first() != Some(&1) || pvd.get(1..6)? != b"CD001" {
        return None;
    }
    // blkid makes a UUID of the modification date, else the creation date: YYYY-MM-DD-hh-mm-ss-cc.
    let date = |o: usize| -> Option<String> {
        let d = pvd.get(o..o + 16)?;
        if !d.iter().all(u8::is_ascii_digit) || d.iter().all(|&c| c == b'0') {
            return None;
        }
        let s = std::str::from_utf8(d).ok()?;
        Some(format!(
            "{}-{}-{}-{}-{}-{}-{}",
            &s[0..4],
            &s[4..6],
            &s[6..8],
            &s[8..10],
            &s[10..12],
            &s[12..14],
            &s[14..16]
        ))
    };
    Some(Probe {
        fstype: FsType::Iso9660,
        label: label_string(pvd.get(40..72)?),
        uuid: date(830).or_else(|| date(813)),
    })
}

fn probe_exfat<R: ReadAt + ?Sized>(dev: &R, b: &[u8]) -> Option<Probe> {
    if b.get(3..11)? != b"EXFAT   " {
        return None;
    }
    let uuid = Some(fat_serial(le32(b, 100)?));
    // The label is a directory entry (type 0x83) in the root directory's first cluster.
    let label = (|| {
        let heap = u64::from(le32(b, 88)?);
        let root_cluster = u64::from(le32(b, 96)?).checked_sub(2)?;
        let (bps_shift, spc_shift) = (u32::from(*b.get(108)?), u32::from(*b.get(109)?));
        if !(9..=12).contains(&bps_shift) || spc_shift > 25 - bps_shift {
            return None;
        }
        let sector = heap.checked_add(root_cluster.checked_shl(spc_shift)?)?;
        let offset = sector.checked_shl(bps_shift)?;
        let dir = dev.read_at(offset, (1usize << (bps_shift + spc_shift)).min(65536));
        for e in dir.chunks_exact(32) {
            match e[0] {
                0x00 => break,
                0x83 => {
                    let n = usize::from(e[1]).min(11);
                    return utf16_label(&e[2..2 + 2 * n]);
                }
                _ => {}
            }
        }
        None
    })();
    Some(Probe {
        fstype: FsType::Exfat,
        label,
        uuid,
    })
}

fn probe_vfat<R: ReadAt + ?Sized>(dev: &R, b: &[u8]) -> Option<Probe> {
    if b.len() < 512 || matches!(b.get(3..11), Some(b"NTFS    " | b"EXFAT   ")) {
        return None;
    }
    let bps = le16(b, 11)?;
    let spc = b[13];
    let reserved = le16(b, 14)?;
    let nfats = b[16];
    let root_entries = le16(b, 17)?;
    let media = b[21];
    let fatsz16 = le16(b, 22)?;
    let valid_bpb = matches!(b[0], 0xEB | 0xE9)
        && matches!(bps, 512 | 1024 | 2048 | 4096)
        && spc != 0
        && spc.is_power_of_two()
        && reserved != 0
        && (1..=4).contains(&nfats)
        && (media == 0xF0 || media >= 0xF8);
    if !valid_bpb {
        return None;
    }
    let fat32 = fatsz16 == 0;
    let (ext_sig, id_off, label_off, fatsz) = if fat32 {
        (66, 67, 71, le32(b, 36)?)
    } else {
        (38, 39, 43, u32::from(fatsz16))
    };
    if fatsz == 0 || (fat32 && root_entries != 0) {
        return None;
    }
    let has_ext = matches!(b[ext_sig], 0x28 | 0x29);
    let uuid = if has_ext {
        Some(fat_serial(le32(b, id_off)?))
    } else {
        None
    };
    let boot_label = if b[ext_sig] == 0x29 {
        label_string(&b[label_off..label_off + 11])
    } else {
        None
    };
    // The root directory's volume-label entry wins over the boot sector (as in blkid).
    let dir_label = (|| {
        let bps = u64::from(bps);
        let fats_end = (u64::from(reserved) + u64::from(nfats) * u64::from(fatsz)) * bps;
        let (offset, len) = if fat32 {
            let cluster = u64::from(le32(b, 44)?).checked_sub(2)?;
            (
                fats_end.checked_add(cluster.checked_mul(u64::from(spc) * bps)?)?,
                u64::from(spc) * bps,
            )
        } else {
            (fats_end, u64::from(root_entries) * 32)
        };
        let dir = dev.read_at(offset, len.min(65536) as usize);
        for e in dir.chunks_exact(32) {
            match e[0] {
                0x00 => break,
                0xE5 => continue,
                _ => {}
            }
            let attr = e[11];
            if attr & 0x0F == 0x0F || attr & 0x18 != 0x08 {
                continue; // long-name entry, or not a plain volume label
            }
            let mut name = e[..11].to_vec();
            if name[0] == 0x05 {
                name[0] = 0xE5;
            }
            return label_string(&name);
        }
        None
    })();
    let label = dir_label.or(boot_label).filter(|l| l != "NO NAME");
    Some(Probe {
        fstype: FsType::Vfat,
        label,
        uuid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_formats_like_blkid() {
        let b = [
            0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11, 0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e,
            0xc9, 0x3b,
        ];
        assert_eq!(
            guid_string(&b).unwrap(),
            "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"
        );
        assert_eq!(fat_serial(0x1234ABCD), "1234-ABCD");
        assert_eq!(uuid_string(&[0; 16]), None);
    }

    #[test]
    fn empty_and_short_are_unknown() {
        assert_eq!(probe_bytes(&[]), None);
        assert_eq!(probe_bytes(&[0u8; 100]), None);
        assert_eq!(probe_bytes(b"hsqs"), None);
    }
}
