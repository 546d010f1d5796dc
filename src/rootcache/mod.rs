//! The cached installed root (issue 11): the root as the packages stage left it, kept as a
//! squashfs image on the boot media so that the next boot with the same inputs mounts it instead
//! of installing again.
//!
//! The image is trusted only through its trailer: a magic, the key of the inputs it was made
//! from ([`Key`]) and the SHA-256 of every byte before the trailer. A missing trailer, another
//! key or a wrong digest and the boot installs as usual. The file is written under a temporary
//! name, synced and renamed, so a boot that dies while writing leaves nothing a later boot trusts.
//! Everything here works on paths and descriptors given by the caller: the mounts, the remounts
//! and the process that writes in the background are the boot's (through `Sys`).

pub mod deflate;
pub mod squashfs;

use rustix::fd::{AsFd, BorrowedFd};
use rustix::fs::{Mode, OFlags};
use sha2::{Digest, Sha256};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

/// The image's name on the boot media; written as [`TEMP_NAME`] first.
pub const IMAGE_NAME: &str = "ramboot-root.sqfs";
pub const TEMP_NAME: &str = ".ramboot-root.sqfs.tmp";
const MAGIC: &[u8; 16] = b"ramboot-rootc-1\n";
const TRAILER_LEN: u64 = 16 + 32 + 32;

/// Errors of the cached root.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cannot read {what}: {source}")]
    Read { what: String, source: io::Error },
    #[error("cannot write the cached root: {0}")]
    Write(#[source] io::Error),
}

/// Why an image on the media is not used.
#[derive(Debug, PartialEq, Eq)]
pub enum Unusable {
    /// No image yet (not worth a warning).
    Missing,
    /// Made from other inputs: packages, indexes, version ... (the normal invalidation).
    OtherInputs,
    /// Not one of ours or damaged: the reason, for the one line the boot prints.
    Corrupt(String),
}

/// Everything that decides the installed root, hashed in a fixed order: each part is labelled
/// and length-prefixed so that no two different inputs give the same bytes.
pub struct Key(Sha256);

impl Default for Key {
    fn default() -> Self {
        let mut h = Sha256::new();
        h.update(MAGIC);
        Self(h)
    }
}

impl Key {
    pub fn add(&mut self, label: &str, value: &[u8]) {
        for part in [label.as_bytes(), value] {
            self.0.update((part.len() as u64).to_le_bytes());
            self.0.update(part);
        }
    }

    /// A file's content (its SHA-256, read in chunks), or that it is missing.
    pub fn add_file(&mut self, label: &str, path: &Path) {
        let digest = std::fs::File::open(path).and_then(|mut f| {
            let len = f.metadata()?.len();
            hash_prefix(&mut f, len)
        });
        match digest {
            Ok(d) => self.add(label, &d),
            Err(_) => self.add(label, b"(missing)"),
        }
    }

    pub fn finish(self) -> [u8; 32] {
        self.0.finalize().into()
    }
}

/// Sorts names bytewise (squashfs's directory order, the key's order). An insertion sort: a
/// directory has at most a few hundred names, and the library sorts cost KBs in the init.
pub fn sort_names(names: &mut [Vec<u8>]) {
    for i in 1..names.len() {
        let mut j = i;
        while j > 0 && names[j - 1] > names[j] {
            names.swap(j - 1, j);
            j -= 1;
        }
    }
}

/// Checks the image at `path` against `key`: its trailer, then the digest of every byte.
pub fn check(path: &Path, key: &[u8; 32]) -> Result<(), Unusable> {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(Unusable::Missing),
        Err(e) => return Err(Unusable::Corrupt(format!("cannot read it: {e}"))),
    };
    let corrupt = |e: io::Error| Unusable::Corrupt(format!("cannot read it: {e}"));
    let len = file.metadata().map_err(corrupt)?.len();
    if len < TRAILER_LEN + 4096 {
        return Err(Unusable::Corrupt(format!("too short ({len} bytes)")));
    }
    let mut trailer = [0u8; TRAILER_LEN as usize];
    file.seek(SeekFrom::Start(len - TRAILER_LEN))
        .and_then(|_| file.read_exact(&mut trailer))
        .map_err(corrupt)?;
    if &trailer[..16] != MAGIC {
        return Err(Unusable::Corrupt("not a ramboot cached root".into()));
    }
    if &trailer[16..48] != key {
        return Err(Unusable::OtherInputs);
    }
    file.seek(SeekFrom::Start(0)).map_err(corrupt)?;
    let digest = hash_prefix(&mut file, len - TRAILER_LEN).map_err(corrupt)?;
    if digest[..] != trailer[48..] {
        return Err(Unusable::Corrupt(
            "its content does not match its digest".into(),
        ));
    }
    Ok(())
}

fn hash_prefix(file: &mut std::fs::File, len: u64) -> io::Result<[u8; 32]> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        file.read_exact(&mut buf[..n])?;
        h.update(&buf[..n]);
        left -= n as u64;
    }
    Ok(h.finalize().into())
}

/// Writes `tree` (scanned from `root` by [`squashfs::scan_tree`]) as [`IMAGE_NAME`] in `media`:
/// under [`TEMP_NAME`] first, then the trailer, a sync and the rename.
pub fn write_image(
    tree: squashfs::Tree,
    root: BorrowedFd<'_>,
    media: BorrowedFd<'_>,
    key: &[u8; 32],
    mtime: u32,
) -> Result<squashfs::Written, CacheError> {
    let w = CacheError::Write;
    let fd = rustix::fs::openat(
        media,
        TEMP_NAME,
        OFlags::RDWR | OFlags::CREATE | OFlags::TRUNC | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    )
    .map_err(|e| w(e.into()))?;
    let mut file = std::fs::File::from(fd);
    // Unbuffered: the writer hands over whole compressed blocks and tables.
    let written = squashfs::write(tree, root, &mut file, mtime).map_err(|e| CacheError::Read {
        what: "the installed root".into(),
        source: e,
    })?;
    file.seek(SeekFrom::Start(0)).map_err(w)?;
    let digest = hash_prefix(&mut file, written.bytes).map_err(w)?;
    file.seek(SeekFrom::Start(written.bytes)).map_err(w)?;
    let mut trailer = MAGIC.to_vec();
    trailer.extend_from_slice(key);
    trailer.extend_from_slice(&digest);
    file.write_all(&trailer).map_err(w)?;
    file.set_len(written.bytes + TRAILER_LEN).map_err(w)?;
    rustix::fs::fsync(&file).map_err(|e| w(e.into()))?;
    rustix::fs::renameat(media, TEMP_NAME, media, IMAGE_NAME).map_err(|e| w(e.into()))?;
    rustix::fs::fsync(media.as_fd()).map_err(|e| w(e.into()))?;
    Ok(written)
}
