//! The FAT32 boot partition, written in memory by `fatfs`, and the disk image around it:
//! an MBR (`mbrman`) or a GPT (`gpt`) partition table, then the partitions at their offsets.
//!
//! In memory first because fatfs updates its tables a few bytes at a time: against a file that
//! is one system call each, against a buffer a memory write. The buffer then goes to the image
//! in 64 KiB chunks, all-zero chunks skipped, so the image is sparse where the FAT is empty.

use super::{Content, SdError, Src};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Cursor, Read, Seek, SeekFrom, Write};
use std::path::Path;

pub const SECTOR: u64 = 512;
pub const MIB: u64 = 1 << 20;
/// Partitions start on MiB boundaries (as sfdisk and Alpine's images place them).
pub const ALIGN: u64 = MIB;
/// FAT32 needs at least 65525 clusters: with 512-byte clusters, about 33 MiB.
pub const MIN_FAT: u64 = 40 * MIB;

/// The cluster size mkfs.vfat would pick for FAT32 (512 bytes up to 260 MiB, then 4 KiB up to
/// 8 GiB): it keeps the cluster count in FAT32's range.
pub fn cluster_size(partition: u64) -> u64 {
    match partition {
        p if p <= 260 * MIB => 512,
        p if p <= 8 << 30 => 4096,
        p if p <= 16 << 30 => 8192,
        p if p <= 32 << 30 => 16384,
        _ => 32768,
    }
}

/// Bytes the content takes on a FAT with `cluster`-byte clusters: every file and directory
/// rounded up to whole clusters, and each directory entry's 32 bytes (long names take a few).
pub fn allocated(content: &Content, cluster: u64) -> u64 {
    let round = |n: u64| n.div_ceil(cluster).max(1) * cluster;
    let mut total = 0;
    let mut dir_entries: BTreeMap<&str, u64> = BTreeMap::new();
    for (path, src) in content {
        let parent = path.rsplit_once('/').map_or("", |(p, _)| p);
        *dir_entries.entry(parent).or_default() += 3 * 32;
        if let Src::Dir = src {
            dir_entries.entry(path.as_str()).or_default();
        } else {
            total += round(src.len());
        }
    }
    total + dir_entries.values().map(|&n| round(n + 64)).sum::<u64>()
}

/// FAT's 8.3 timestamps as the time provider fatfs asks on every create and write.
#[derive(Debug)]
struct FixedTime(fatfs::DateTime);

impl fatfs::TimeProvider for FixedTime {
    fn get_current_date(&self) -> fatfs::Date {
        self.0.date
    }
    fn get_current_date_time(&self) -> fatfs::DateTime {
        self.0
    }
}

/// `epoch` (seconds since 1970, UTC) as a FAT date and time, within FAT's 1980–2107.
fn fat_time(epoch: u64) -> fatfs::DateTime {
    const FAT_START: u64 = 315_532_800; // 1980-01-01
    const FAT_END: u64 = 4_354_819_199; // 2107-12-31 23:59:59
    let t = epoch.clamp(FAT_START, FAT_END);
    let c = crate::civil::Civil::from_unix(t as i64);
    fatfs::DateTime {
        date: fatfs::Date {
            year: c.year as u16,
            month: c.month as u16,
            day: c.day as u16,
        },
        time: fatfs::Time {
            hour: c.hour as u16,
            min: c.minute as u16,
            sec: c.second as u16,
            millis: 0,
        },
    }
}

/// A FAT32 filesystem of `size` bytes holding `content`, as bytes.
pub fn build(
    content: &Content,
    size: u64,
    label: &str,
    volume_id: u32,
    epoch: u64,
) -> Result<Vec<u8>, SdError> {
    let mut disk = Cursor::new(vec![0u8; size as usize]);
    let mut name = [b' '; 11];
    for (i, b) in label.bytes().take(11).enumerate() {
        name[i] = b.to_ascii_uppercase();
    }
    let options = fatfs::FormatVolumeOptions::new()
        .fat_type(fatfs::FatType::Fat32)
        .bytes_per_cluster(cluster_size(size) as u32)
        .volume_id(volume_id)
        .volume_label(name);
    fatfs::format_volume(&mut disk, options).map_err(|e| SdError::Fat(e.to_string()))?;
    disk.seek(SeekFrom::Start(0)).map_err(SdError::fat)?;
    // fatfs keeps a `&'static` provider; one small leak per image built.
    let time: &'static FixedTime = Box::leak(Box::new(FixedTime(fat_time(epoch))));
    let fs = fatfs::FileSystem::new(
        &mut disk,
        fatfs::FsOptions::new()
            .time_provider(time)
            .update_accessed_date(false),
    )
    .map_err(SdError::fat)?;
    // Counting the free clusters once makes fatfs keep FSInfo's count up to date (fsck checks
    // it); without it the count stays "unknown".
    fs.stats().map_err(SdError::fat)?;
    {
        let root = fs.root_dir();
        for (path, src) in content {
            let full = |e: io::Error| SdError::from_write(e, path, size);
            match src {
                Src::Dir => {
                    root.create_dir(path).map_err(full)?;
                }
                Src::Bytes(b) => {
                    let mut f = root.create_file(path).map_err(full)?;
                    f.write_all(b).map_err(full)?;
                }
                Src::File(p, _) => {
                    let mut f = root.create_file(path).map_err(full)?;
                    let mut from = File::open(p).map_err(|e| SdError::read(p, e))?;
                    copy(&mut from, &mut f).map_err(|e| match e {
                        CopyError::Read(e) => SdError::read(p, e),
                        CopyError::Write(e) => full(e),
                    })?;
                }
            }
        }
    }
    fs.unmount().map_err(SdError::fat)?;
    let mut bytes = disk.into_inner();
    fix_dot_entries(&mut bytes).map_err(SdError::Fat)?;
    Ok(bytes)
}

/// fatfs 0.3 writes a long-name entry before each directory's `.` and `..`, which must be the
/// directory's first two slots (fsck.fat moves and renames them). This walks the directory tree
/// from the root and puts `.` and `..` first, freeing the two slots their long names took.
fn fix_dot_entries(fs: &mut [u8]) -> Result<(), String> {
    let u16_at = |b: &[u8], i: usize| u16::from_le_bytes([b[i], b[i + 1]]) as usize;
    let u32_at =
        |b: &[u8], i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]) as usize;
    let bps = u16_at(fs, 11);
    let cluster = bps * fs[13] as usize;
    let fat_start = u16_at(fs, 14) * bps;
    let data_start = fat_start + fs[16] as usize * u32_at(fs, 36) * bps;
    let root = u32_at(fs, 44);
    let at = |c: usize| data_start + (c - 2) * cluster;
    let mut todo = vec![(root, 0)];
    let mut seen = 0usize;
    while let Some((first, parent)) = todo.pop() {
        seen += 1;
        if seen > fs.len() / cluster {
            return Err("directory tree loops".into());
        }
        let is_root = first == root;
        let mut c = first;
        let mut head = true;
        loop {
            let off = at(c);
            if head && !is_root {
                let slot = |i: usize| &fs[off + 32 * i..off + 32 * (i + 1)];
                let lfn = |i: usize| slot(i)[11] == 0x0F;
                if lfn(0)
                    && &slot(1)[..11] == b".          "
                    && lfn(2)
                    && &slot(3)[..11] == b"..         "
                {
                    let (dot, dotdot) = (slot(1).to_vec(), slot(3).to_vec());
                    fs[off..off + 32].copy_from_slice(&dot);
                    fs[off + 32..off + 64].copy_from_slice(&dotdot);
                    for i in 2..4 {
                        fs[off + 32 * i..off + 32 * (i + 1)].fill(0);
                        fs[off + 32 * i] = 0xE5;
                    }
                }
                if parent == root && &fs[off + 32..off + 43] == b"..         " {
                    for i in [20, 21, 26, 27] {
                        fs[off + 32 + i] = 0;
                    }
                }
            }
            head = false;
            for e in fs[off..off + cluster].chunks(32) {
                if e[0] == 0 {
                    break;
                }
                let attr = e[11];
                let is_dot = e[0] == b'.';
                if e[0] != 0xE5 && attr != 0x0F && attr & 0x10 != 0 && !is_dot {
                    let sub = (u16_at(e, 20) << 16) | u16_at(e, 26);
                    todo.push((sub, first));
                }
            }
            let next = u32_at(fs, fat_start + 4 * c) & 0x0FFF_FFFF;
            if !(2..0x0FFF_FFF8).contains(&next) {
                break;
            }
            c = next;
        }
    }
    Ok(())
}

enum CopyError {
    Read(io::Error),
    Write(io::Error),
}

fn copy(from: &mut File, to: &mut impl Write) -> Result<(), CopyError> {
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = from.read(&mut buf).map_err(CopyError::Read)?;
        if n == 0 {
            return Ok(());
        }
        to.write_all(&buf[..n]).map_err(CopyError::Write)?;
    }
}

/// Writes `bytes` at `offset` of `out`, leaving all-zero 64 KiB chunks as holes.
pub fn write_sparse(out: &mut File, offset: u64, bytes: &[u8]) -> io::Result<()> {
    const CHUNK: usize = 64 * 1024;
    for (i, chunk) in bytes.chunks(CHUNK).enumerate() {
        if chunk.iter().all(|&b| b == 0) {
            continue;
        }
        out.seek(SeekFrom::Start(offset + (i * CHUNK) as u64))?;
        out.write_all(chunk)?;
    }
    Ok(())
}

/// One partition of the table: start and length in bytes, and what it holds.
pub struct Part {
    pub start: u64,
    pub len: u64,
    pub kind: PartKind,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum PartKind {
    Fat32,
    Linux,
}

/// Writes an MBR with `parts` (the first one bootable) into `out`, whose length is the disk's.
pub fn write_mbr(out: &mut File, parts: &[Part], signature: [u8; 4]) -> Result<(), SdError> {
    let err = |e: mbrman::Error| SdError::Table(e.to_string());
    let mut mbr = mbrman::MBR::new_from(out, SECTOR as u32, signature).map_err(err)?;
    for (i, p) in parts.iter().enumerate() {
        mbr[i + 1] = mbrman::MBRPartitionEntry {
            boot: if i == 0 {
                mbrman::BOOT_ACTIVE
            } else {
                mbrman::BOOT_INACTIVE
            },
            first_chs: mbrman::CHS::empty(),
            // 0x0c: FAT32 with LBA addressing, what the Pi's firmware and Alpine's images use.
            sys: match p.kind {
                PartKind::Fat32 => 0x0c,
                PartKind::Linux => 0x83,
            },
            last_chs: mbrman::CHS::empty(),
            starting_lba: (p.start / SECTOR) as u32,
            sectors: (p.len / SECTOR) as u32,
        };
    }
    mbr.write_into(out).map_err(err)
}

/// Writes a protective MBR and a GPT with `parts` into `out` (length = the disk's). The disk and
/// partition GUIDs come from `seed`, not from a random source, so the image is reproducible.
pub fn write_gpt(out: &mut File, parts: &[Part], seed: [u8; 32]) -> Result<(), SdError> {
    let err = |e: gpt::GptError| SdError::Table(e.to_string());
    let disk_len = out.metadata().map_err(SdError::table_io)?.len();
    let guid = |n: u8| {
        let mut b = [0u8; 16];
        b.copy_from_slice(&seed[..16]);
        b[15] ^= n;
        uuid::Builder::from_random_bytes(b).into_uuid()
    };
    let mbr =
        gpt::mbr::ProtectiveMBR::with_lb_size((disk_len / SECTOR - 1).min(0xFFFF_FFFF) as u32);
    mbr.overwrite_lba0(out)
        .map_err(|e| SdError::Table(e.to_string()))?;
    let mut disk = gpt::GptConfig::new()
        .writable(true)
        .logical_block_size(gpt::disk::LogicalBlockSize::Lb512)
        .create_from_device(&mut *out, Some(guid(0)))
        .map_err(err)?;
    let mut table = BTreeMap::new();
    for (i, p) in parts.iter().enumerate() {
        let (part_type_guid, name) = match p.kind {
            PartKind::Fat32 => (gpt::partition_types::BASIC, "boot"),
            PartKind::Linux => (gpt::partition_types::LINUX_FS, "data"),
        };
        table.insert(
            i as u32 + 1,
            gpt::partition::Partition {
                part_type_guid,
                part_guid: guid(i as u8 + 1),
                first_lba: p.start / SECTOR,
                last_lba: (p.start + p.len) / SECTOR - 1,
                flags: 0,
                name: name.into(),
            },
        );
    }
    disk.update_partitions(table).map_err(err)?;
    disk.write().map_err(err)?;
    Ok(())
}

/// Whether `path` holds a FAT filesystem's boot sector signature (for tests and messages).
pub fn looks_like_fat(path: &Path, offset: u64) -> bool {
    let mut b = [0u8; 512];
    File::open(path)
        .and_then(|mut f| {
            f.seek(SeekFrom::Start(offset))?;
            f.read_exact(&mut b)
        })
        .is_ok()
        && b[510..] == [0x55, 0xAA]
        && &b[82..87] == b"FAT32"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fat_time_is_the_utc_calendar_date_clamped_to_fat_range() {
        let t = fat_time(1_700_000_000); // 2023-11-14 22:13:20 UTC
        assert_eq!((t.date.year, t.date.month, t.date.day), (2023, 11, 14));
        assert_eq!((t.time.hour, t.time.min, t.time.sec), (22, 13, 20));
        let t = fat_time(0);
        assert_eq!((t.date.year, t.date.month, t.date.day), (1980, 1, 1));
        let t = fat_time(951_782_400); // 2000-02-29
        assert_eq!((t.date.year, t.date.month, t.date.day), (2000, 2, 29));
    }

    /// The short-name entry `name` (11 bytes) in the directory at `cluster`: its first cluster.
    fn entry_cluster(fs: &[u8], cluster: usize, name: &[u8; 11]) -> Option<usize> {
        let u16_at = |i: usize| u16::from_le_bytes([fs[i], fs[i + 1]]) as usize;
        let bps = u16_at(11);
        let spc = fs[13] as usize;
        let fat_len = u16::from_le_bytes([fs[36], fs[37]]) as usize;
        let data = (u16_at(14) + fs[16] as usize * fat_len) * bps;
        let at = data + (cluster - 2) * spc * bps;
        fs[at..at + spc * bps]
            .chunks(32)
            .find(|e| &e[..11] == name && e[11] != 0x0F)
            .map(|e| {
                (u16::from_le_bytes([e[20], e[21]]) as usize) << 16
                    | u16::from_le_bytes([e[26], e[27]]) as usize
            })
    }

    /// fatfs 0.3 puts long-name entries before `.` and `..` and gives the root's subdirectories
    /// the root's cluster in `..`; fsck.fat rejects both. The written filesystem has `.` and `..`
    /// in the first two slots and 0 for the root.
    #[test]
    fn directories_start_with_dot_and_dotdot() {
        let mut c = Content::new();
        c.insert("a".into(), Src::Dir);
        c.insert("a/b".into(), Src::Dir);
        c.insert("a/b/f".into(), Src::Bytes(b"x".to_vec()));
        let fs = build(&c, MIN_FAT, "T", 1, 0).unwrap();
        let root = u32::from_le_bytes([fs[44], fs[45], fs[46], fs[47]]) as usize;
        let a = entry_cluster(&fs, root, b"A          ").expect("a in the root");
        let b = entry_cluster(&fs, a, b"B          ").expect("b in a");
        let first_two = |cluster: usize| {
            let u16_at = |i: usize| u16::from_le_bytes([fs[i], fs[i + 1]]) as usize;
            let fat_len = u16::from_le_bytes([fs[36], fs[37]]) as usize;
            let at = (u16_at(14) + fs[16] as usize * fat_len) * u16_at(11)
                + (cluster - 2) * fs[13] as usize * u16_at(11);
            (fs[at..at + 11].to_vec(), fs[at + 32..at + 43].to_vec())
        };
        for dir in [a, b] {
            let (dot, dotdot) = first_two(dir);
            assert_eq!(dot, b".          ");
            assert_eq!(dotdot, b"..         ");
        }
        assert_eq!(
            entry_cluster(&fs, a, b"..         "),
            Some(0),
            "the root is 0"
        );
        assert_eq!(entry_cluster(&fs, b, b"..         "), Some(a));
        assert_eq!(entry_cluster(&fs, b, b".          "), Some(b));
    }

    #[test]
    fn clusters_keep_fat32_in_range() {
        for size in [MIN_FAT, 100 * MIB, 260 * MIB, 261 * MIB, 4 << 30, 20 << 30] {
            let clusters = size / cluster_size(size);
            assert!((65_525..268_435_445).contains(&clusters), "{size}");
        }
    }
}
