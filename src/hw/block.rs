//! Disks and partitions as sysfs shows them, and the partition-table identities (PARTUUID,
//! PARTLABEL) that `root=` may name.
//!
//! Why sysfs and not `/proc/partitions`: sysfs also says which device is removable, which disk a
//! partition belongs to and its partition number, and a uevent's `DEVPATH` points straight into it.
//! Device nodes come from devtmpfs: `/dev/<name>`.

use super::probe::{guid_string, le64, probe, utf16_label, Probe, ReadAt};
use crate::sys::{Sys, Uevent};
use std::cmp::Ordering;
use std::path::{Path, PathBuf};

/// A disk or partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockDevice {
    /// Kernel name: `vda1`, `mmcblk0p1`, `sda`.
    pub name: String,
    pub major: u32,
    pub minor: u32,
    /// Partition number, for partitions.
    pub partition: Option<u32>,
    /// The disk a partition belongs to.
    pub parent: Option<String>,
    pub size_bytes: u64,
    pub removable: bool,
    pub read_only: bool,
}

impl BlockDevice {
    /// `/dev/<name>`, as PID 1 sees it.
    pub fn devnode(&self) -> PathBuf {
        PathBuf::from("/dev").join(&self.name)
    }

    /// Reads `/sys/class/block/<name>`. `None` when the device is not there.
    pub fn from_sysfs(sys: &dyn Sys, name: &str) -> Option<BlockDevice> {
        let guest = PathBuf::from("/sys/class/block").join(name);
        let dir = sys.path(&guest);
        let dev = std::fs::read_to_string(dir.join("dev")).ok()?;
        let (major, minor) = parse_majmin(dev.trim())?;
        let read_num = |f: &str| {
            std::fs::read_to_string(dir.join(f))
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
        };
        let partition = read_num("partition").and_then(|n| u32::try_from(n).ok());
        let parent = partition.map(|_| parent_of(&dir, name));
        // `removable` lives on the disk.
        let removable_dir = match &parent {
            Some(p) => sys.path(&PathBuf::from("/sys/class/block").join(p)),
            None => dir.clone(),
        };
        let removable =
            std::fs::read_to_string(removable_dir.join("removable")).is_ok_and(|s| s.trim() == "1");
        Some(BlockDevice {
            name: name.to_string(),
            major,
            minor,
            partition,
            parent,
            size_bytes: read_num("size").unwrap_or(0).saturating_mul(512),
            removable,
            read_only: read_num("ro") == Some(1),
        })
    }

    /// A block uevent, enriched from sysfs when sysfs has the device.
    pub fn from_uevent(sys: &dyn Sys, ev: &Uevent) -> Option<BlockDevice> {
        let name = ev
            .get("DEVNAME")
            .map(|n| n.rsplit('/').next().unwrap_or(n).to_string())
            .or_else(|| {
                let base = ev.devpath.rsplit('/').next()?;
                (!base.is_empty()).then(|| base.to_string())
            })?;
        if let Some(d) = BlockDevice::from_sysfs(sys, &name) {
            return Some(d);
        }
        let num = |k: &str| ev.get(k).and_then(|v| v.parse::<u32>().ok());
        let partition = if ev.get("DEVTYPE") == Some("partition") {
            Some(num("PARTN").unwrap_or(0))
        } else {
            None
        };
        let parent = partition.map(|_| {
            // DEVPATH of a partition is .../block/<disk>/<part>.
            let mut it = ev.devpath.rsplit('/');
            it.next();
            it.next()
                .map(str::to_string)
                .unwrap_or_else(|| guess_parent(&name))
        });
        Some(BlockDevice {
            name,
            major: num("MAJOR")?,
            minor: num("MINOR")?,
            partition,
            parent,
            size_bytes: 0,
            removable: false,
            read_only: false,
        })
    }
}

fn parse_majmin(s: &str) -> Option<(u32, u32)> {
    let (a, b) = s.split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// The disk of a partition: the directory above it in the real sysfs layout
/// (`.../block/mmcblk0/mmcblk0p1`), else a guess from the name.
fn parent_of(dir: &Path, name: &str) -> String {
    if let Ok(real) = std::fs::canonicalize(dir) {
        if let Some(up) = real.parent() {
            if up.join("dev").is_file() {
                if let Some(n) = up.file_name() {
                    return n.to_string_lossy().into_owned();
                }
            }
        }
    }
    guess_parent(name)
}

/// `vda1` → `vda`, `mmcblk0p1` → `mmcblk0`, `nvme0n1p2` → `nvme0n1`.
pub fn guess_parent(name: &str) -> String {
    let base = name.trim_end_matches(|c: char| c.is_ascii_digit());
    match base.strip_suffix('p') {
        Some(b) if b.ends_with(|c: char| c.is_ascii_digit()) => b.to_string(),
        _ => base.to_string(),
    }
}

/// Orders names the way people number devices: `sda2` < `sda10`, `mmcblk0p1` < `sda1` < `vda1`.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, _) => return Ordering::Less,
            (_, None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let na = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let nb = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let (da, db) = (trim_zeros(&a[..na]), trim_zeros(&b[..nb]));
                let ord = da.len().cmp(&db.len()).then_with(|| da.cmp(db));
                if ord != Ordering::Equal {
                    return ord;
                }
                a = &a[na..];
                b = &b[nb..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                a = &a[1..];
                b = &b[1..];
            }
        }
    }
}

fn trim_zeros(d: &[u8]) -> &[u8] {
    let i = d.iter().position(|&c| c != b'0').unwrap_or(d.len());
    &d[i..]
}

/// Every block device in `/sys/class/block`, in natural name order.
pub fn list(sys: &dyn Sys) -> Vec<BlockDevice> {
    let dir = sys.path(Path::new("/sys/class/block"));
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    crate::sys::sort::sort_by(&mut names, |a, b| natural_cmp(a, b));
    names
        .iter()
        .filter_map(|n| BlockDevice::from_sysfs(sys, n))
        .collect()
}

/// Identity a partition gets from its partition table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PartInfo {
    /// GPT partition GUID, or `<MBR disk signature>-<NN>` (blkid's format).
    pub partuuid: Option<String>,
    /// GPT partition name.
    pub partlabel: Option<String>,
}

/// Reads the entry for partition `partnum` (1-based) from a disk's GPT or MBR.
pub fn partition_info<R: ReadAt + ?Sized>(disk: &R, partnum: u32) -> PartInfo {
    let mbr = disk.read_at(0, 512);
    if mbr.len() < 512 || mbr[510..512] != [0x55, 0xAA] || partnum == 0 {
        return PartInfo::default();
    }
    let protective = (0..4).any(|i| mbr[446 + i * 16 + 4] == 0xEE);
    if protective {
        for sector in [512u64, 4096] {
            if let Some(info) = gpt_entry(disk, sector, partnum) {
                return info;
            }
        }
        return PartInfo::default();
    }
    let sig = u32::from_le_bytes([mbr[440], mbr[441], mbr[442], mbr[443]]);
    if sig == 0 {
        return PartInfo::default();
    }
    PartInfo {
        partuuid: Some(format!("{sig:08x}-{partnum:02x}")),
        partlabel: None,
    }
}

fn gpt_entry<R: ReadAt + ?Sized>(disk: &R, sector: u64, partnum: u32) -> Option<PartInfo> {
    let hdr = disk.read_at(sector, 92);
    if hdr.get(..8)? != b"EFI PART" {
        return None;
    }
    let entries_lba = le64(&hdr, 72)?;
    let count = u32::from_le_bytes(hdr.get(80..84)?.try_into().ok()?);
    let size = u32::from_le_bytes(hdr.get(84..88)?.try_into().ok()?);
    if partnum > count || !(128..=4096).contains(&size) {
        return None;
    }
    let off = entries_lba
        .checked_mul(sector)?
        .checked_add(u64::from(partnum - 1) * u64::from(size))?;
    let e = disk.read_at(off, 128);
    let type_guid = e.get(..16)?;
    if type_guid.iter().all(|&b| b == 0) {
        return Some(PartInfo::default()); // unused entry
    }
    Some(PartInfo {
        partuuid: guid_string(e.get(16..32)?),
        partlabel: utf16_label(e.get(56..128)?),
    })
}

/// A block device with everything a `root=` or media search may match on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceInfo {
    pub dev: BlockDevice,
    /// `None`: no filesystem we recognise.
    pub probe: Option<Probe>,
    pub part: PartInfo,
}

/// Probes `/dev/<name>` and, for a partition, its disk's table. Unreadable devices come back with
/// no filesystem (a card reader without a card is normal).
pub fn identify(sys: &dyn Sys, dev: &BlockDevice) -> DeviceInfo {
    let probed = std::fs::File::open(sys.path(&dev.devnode()))
        .ok()
        .and_then(|f| probe(&f));
    let part = match (&dev.partition, &dev.parent) {
        (Some(n), Some(disk)) => std::fs::File::open(sys.path(&PathBuf::from("/dev").join(disk)))
            .map(|f| partition_info(&f, *n))
            .unwrap_or_default(),
        _ => PartInfo::default(),
    };
    DeviceInfo {
        dev: dev.clone(),
        probe: probed,
        part,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order() {
        let mut v = vec!["sda10", "vda1", "sda2", "mmcblk0p1", "sda1", "mmcblk0"];
        crate::sys::sort::sort_by(&mut v, |a, b| natural_cmp(a, b));
        assert_eq!(v, ["mmcblk0", "mmcblk0p1", "sda1", "sda2", "sda10", "vda1"]);
        assert_eq!(guess_parent("mmcblk0p1"), "mmcblk0");
        assert_eq!(guess_parent("vda1"), "vda");
        assert_eq!(guess_parent("nvme0n1p2"), "nvme0n1");
        assert_eq!(guess_parent("sr0"), "sr");
    }

    #[test]
    fn mbr_partuuid() {
        let mut d = vec![0u8; 512];
        d[440..444].copy_from_slice(&0x5e29a4d6u32.to_le_bytes());
        d[510] = 0x55;
        d[511] = 0xAA;
        d[446 + 4] = 0x0c;
        assert_eq!(
            partition_info(&d[..], 2).partuuid.as_deref(),
            Some("5e29a4d6-02")
        );
    }
}
