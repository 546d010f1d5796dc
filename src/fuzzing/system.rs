//! Targets for what the hardware side reads: the depmod indexes and modprobe configuration, and
//! superblocks and partition tables of block devices.

use super::{parts, streams::Scratch};
use crate::hw::block::partition_info;
use crate::hw::modules::{closure_detailed, ModuleDb, ModuleLoader, Request};
use crate::hw::probe::{probe, probe_bytes, ReadAt};
use crate::sys::RecordingSys;
use std::collections::HashSet;
use std::fs;

const RELEASE: &str = "6.1.0-fuzz";

/// The files of a module tree, in input order (after them: modprobe.d, cmdline, requests).
const MODULE_FILES: [&str; 5] = [
    "modules.dep",
    "modules.alias",
    "modules.softdep",
    "modules.builtin",
    "modules.builtin.modinfo",
];

/// Input: parts separated by [`super::PART_SPLIT`]: `modules.dep`, `modules.alias`,
/// `modules.softdep`, `modules.builtin`, `modules.builtin.modinfo`, a `modprobe.d` file,
/// `/proc/cmdline`, then load requests (names, aliases, modaliases or closure globs), one per line;
/// a request line starting with `-b ` asks for `modprobe -b`.
///
/// The indexes are read, each request resolved, the whole set loaded through the recording
/// double (one worker: deterministic) and closed over for mkinitfs. Nothing panics, a module
/// never lands in two outcomes of one load, and the blacklist never lets a module through.
pub fn modules(data: &[u8]) {
    let p = parts(data, 8);
    let scratch = Scratch::new("modules");
    let root = scratch.path();
    let dir = root.join("lib/modules").join(RELEASE);
    fs::create_dir_all(&dir).expect("scratch modules dir");
    for (name, bytes) in MODULE_FILES.iter().zip(&p) {
        fs::write(dir.join(name), bytes).expect("scratch index");
    }
    fs::create_dir_all(root.join("etc/modprobe.d")).expect("scratch modprobe.d");
    fs::write(root.join("etc/modprobe.d/fuzz.conf"), p[5]).expect("scratch conf");
    fs::create_dir_all(root.join("proc")).expect("scratch proc");
    fs::write(root.join("proc/cmdline"), p[6]).expect("scratch cmdline");

    let requests_text = String::from_utf8_lossy(p[7]);
    let mut blacklist_all = false;
    let requests: Vec<String> = requests_text
        .lines()
        .map(|l| match l.strip_prefix("-b ") {
            Some(rest) => {
                blacklist_all = true;
                rest.to_string()
            }
            None => l.to_string(),
        })
        .take(16)
        .collect();

    let sys = RecordingSys::new(root).with_kernel_release(RELEASE);
    // A modules.dep that is not UTF-8 is refused whole (an error, no panic).
    let Ok(db) = ModuleDb::open(&sys, RELEASE) else {
        return;
    };
    for r in &requests {
        let found = db.resolve(r, blacklist_all);
        for m in &found.modules {
            assert!(
                !found.blacklisted.contains(m),
                "{m} both found and blacklisted"
            );
        }
    }
    let loader = ModuleLoader::new(&sys, db).with_max_threads(1);
    let report = loader.load(&Request {
        names: requests.clone(),
        blacklist_all,
        ..Request::default()
    });
    let mut seen = HashSet::new();
    let names = report
        .loaded
        .iter()
        .chain(&report.already)
        .chain(report.failed.iter().map(|(n, _)| n));
    for n in names {
        assert!(seen.insert(n), "module {n} has two outcomes: {report:?}");
    }
    let refs: Vec<&str> = requests.iter().map(String::as_str).collect();
    closure_detailed(&dir, &refs).expect("modules.dep was written");
}

/// Starts a sparse [`superblock`] input.
pub const SPARSE_MAGIC: &[u8] = b"SPRS";

/// A device image given as pieces at offsets, zeros elsewhere.
struct Sparse {
    size: u64,
    pieces: Vec<(u64, Vec<u8>)>,
}

impl Sparse {
    /// Records of `offset: u32 LE, length: u16 LE, bytes`; a short last record takes what is
    /// left. The image ends with the last byte of any piece.
    fn parse(mut data: &[u8]) -> Sparse {
        let mut pieces = Vec::new();
        while data.len() >= 6 {
            let offset = u64::from(u32::from_le_bytes([data[0], data[1], data[2], data[3]]));
            let len = usize::from(u16::from_le_bytes([data[4], data[5]]));
            let bytes = &data[6..(6 + len).min(data.len())];
            pieces.push((offset, bytes.to_vec()));
            data = &data[6 + bytes.len()..];
        }
        let size = pieces
            .iter()
            .map(|(o, b)| o + b.len() as u64)
            .max()
            .unwrap_or(0);
        Sparse { size, pieces }
    }

    fn to_vec(&self) -> Vec<u8> {
        self.read_at(0, self.size as usize)
    }
}

impl ReadAt for Sparse {
    fn read_at(&self, offset: u64, len: usize) -> Vec<u8> {
        let end = offset.saturating_add(len as u64).min(self.size);
        if offset >= end {
            return Vec::new();
        }
        let mut out = vec![0u8; (end - offset) as usize];
        for (at, bytes) in &self.pieces {
            let (lo, hi) = (offset.max(*at), end.min(at + bytes.len() as u64));
            if lo < hi {
                out[(lo - offset) as usize..(hi - offset) as usize]
                    .copy_from_slice(&bytes[(lo - at) as usize..(hi - at) as usize]);
            }
        }
        out
    }
}

/// Input: a device image, or [`SPARSE_MAGIC`] and a sparse image (see `Sparse::parse`) so
/// superblocks far into a device (iso9660 at 32 KiB, btrfs at 64 KiB, FAT and exFAT
/// directories) are reachable from small inputs.
///
/// Probing and partition lookups never panic; a sparse image of up to 2 MiB probes the same as
/// its bytes in one piece.
pub fn superblock(data: &[u8]) {
    match data.strip_prefix(SPARSE_MAGIC) {
        Some(rest) => {
            let img = Sparse::parse(rest);
            let found = probe(&img);
            for n in [0, 1, 2, 4, 128, u32::MAX] {
                let _ = partition_info(&img, n);
            }
            if img.size <= 2 << 20 {
                assert_eq!(
                    probe_bytes(&img.to_vec()),
                    found,
                    "sparse and flat images differ"
                );
            }
        }
        None => {
            let _ = probe_bytes(data);
            for n in [0, 1, 2, 4, 128, u32::MAX] {
                let _ = partition_info(data, n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_images_read_like_flat_ones() {
        let mut input = Vec::new();
        input.extend_from_slice(&10u32.to_le_bytes());
        input.extend_from_slice(&3u16.to_le_bytes());
        input.extend_from_slice(b"abc");
        input.extend_from_slice(&11u32.to_le_bytes());
        input.extend_from_slice(&9u16.to_le_bytes());
        input.extend_from_slice(b"X");
        let img = Sparse::parse(&input);
        assert_eq!(img.size, 13);
        assert_eq!(img.read_at(9, 10), b"\0aXc");
        assert_eq!(img.read_at(13, 1), b"");
        assert_eq!(img.to_vec().len(), 13);
    }
}
