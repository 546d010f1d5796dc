//! Targets for the archive formats: `.apk` packages and APKINDEX.tar.gz (gzip members + tar,
//! signatures), and apkovls extracted into a scratch root. Also the scratch directories the
//! file-based targets share.

use crate::apk::checksum::Checksum;
use crate::apk::pkg::parse_index;
use crate::apk::sign::{Keyring, SigningKey};
use crate::apk::stream::{read_index, read_package, ControlOnly, DataSink, Verify};
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// Separates the uncompressed gzip members of an [`apk_stream`] input.
pub const GZ_MEMBER_SPLIT: &[u8] = b"\x01GZ\x01";

/// The name the seeds are signed under and the fuzz keyring trusts.
pub const FUZZ_KEY_NAME: &str = "fuzz-00000000.rsa.pub";

/// SplitMix64: a fixed-seed generator so every run (and the seed generator) gets the same key.
struct FixedRng(u64);

impl rsa::rand_core::RngCore for FixedRng {
    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for chunk in dest.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rsa::rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

// Deterministic on purpose: a test key, never a secret.
impl rsa::rand_core::CryptoRng for FixedRng {}

/// A fixed 1024-bit test key: seeds are signed with it and the fuzz keyring trusts it, so
/// signature checks pass on unmutated seeds and fail on mutated ones, both paths reached.
pub fn fuzz_key() -> &'static SigningKey {
    static KEY: OnceLock<SigningKey> = OnceLock::new();
    KEY.get_or_init(|| SigningKey {
        key_name: FUZZ_KEY_NAME.into(),
        private: rsa::RsaPrivateKey::new(&mut FixedRng(0x5eed), 1024).expect("test key"),
    })
}

/// The keyring the stream target verifies with: [`fuzz_key`] only.
pub fn fuzz_keyring() -> &'static Keyring {
    static KEYS: OnceLock<Keyring> = OnceLock::new();
    KEYS.get_or_init(|| {
        let mut k = Keyring::default();
        k.add(FUZZ_KEY_NAME, fuzz_key().public());
        k
    })
}

/// Level 9 like abuild and the package builder: members of unmutated seeds come out byte for
/// byte as built, so their signatures and data hashes verify.
fn gzip(data: &[u8], out: &mut Vec<u8>) {
    let mut gz = flate2::write::GzEncoder::new(out, flate2::Compression::best());
    gz.write_all(data).expect("gzip to memory");
    gz.finish().expect("gzip to memory");
}

fn split_on<'a>(data: &'a [u8], sep: &[u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while let Some(i) = rest.windows(sep.len()).position(|w| w == sep) {
        out.push(&rest[..i]);
        rest = &rest[i + sep.len()..];
    }
    out.push(rest);
    out
}

/// The flags byte and the stream bytes of an [`apk_stream`] input.
pub fn apk_stream_bytes(data: &[u8]) -> Option<(u8, Vec<u8>)> {
    let (&flags, rest) = data.split_first()?;
    let stream = if flags & 1 != 0 {
        rest.to_vec()
    } else {
        let mut out = Vec::new();
        for member in split_on(rest, GZ_MEMBER_SPLIT) {
            gzip(member, &mut out);
        }
        out
    };
    Some((flags, stream))
}

/// Input: a flags byte, then the stream. Flags bit 0 set: the rest is the file as it would be
/// read. Clear: the rest is uncompressed gzip members separated by [`GZ_MEMBER_SPLIT`], each
/// gzipped here, so checksums are right and mutations reach the tar reader and the verifier.
/// Bit 1: `--allow-untrusted`. Bit 2: stop after the control part.
///
/// The stream is read as a repository package (identity check), as a signed package file and as
/// an APKINDEX.tar.gz; nothing panics, and an index that verifies is parsed.
pub fn apk_stream(data: &[u8]) {
    let Some((flags, stream)) = apk_stream_bytes(data) else {
        return;
    };
    let allow_untrusted = flags & 2 != 0;
    let keys = fuzz_keyring();
    let identity = Checksum::Sha1([0; 20]);
    let mut control_only = ControlOnly;
    let mut drain = crate::apk::stream::Discard;
    let sink: &mut dyn DataSink = if flags & 4 != 0 {
        &mut control_only
    } else {
        &mut drain
    };
    let _ = read_package(&stream[..], "fuzz.apk", Verify::Identity(&identity), sink);
    let signed = Verify::Signature {
        keys,
        allow_untrusted,
    };
    if let Ok(control) = read_package(&stream[..], "fuzz.apk", signed, sink) {
        assert!(control.identity.is_some(), "accepted without an identity");
    }
    if let Ok(index) = read_index(&stream[..], "fuzz/APKINDEX.tar.gz", keys, allow_untrusted) {
        let _ = parse_index(&index.text, "fuzz");
    }
}

/// A scratch directory under the system temp dir, removed on drop even after a failed
/// assertion, whatever modes an archive left on the directories inside it.
pub(super) struct Scratch(PathBuf);

impl Scratch {
    pub(super) fn new(what: &str) -> Scratch {
        static N: AtomicU64 = AtomicU64::new(0);
        loop {
            let n = N.fetch_add(1, Ordering::Relaxed);
            let p = std::env::temp_dir()
                .join(format!("ramboot-fuzz-{what}-{}-{n}", std::process::id()));
            match fs::create_dir(&p) {
                Ok(()) => return Scratch(p),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => panic!("cannot create a scratch directory {}: {e}", p.display()),
            }
        }
    }

    pub(super) fn path(&self) -> &Path {
        &self.0
    }
}

/// Makes every real directory under `dir` (symlinks are not followed) owner-accessible again.
fn unlock(dir: &Path) {
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            unlock(&e.path());
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        unlock(&self.0);
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// What can be observed of a tree without following symlinks: per path, type, mode, links,
/// size and content.
fn snapshot(dir: &Path) -> BTreeMap<String, String> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let mut entries: Vec<_> = fs::read_dir(dir).into_iter().flatten().flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            let Ok(m) = fs::symlink_metadata(&p) else {
                continue;
            };
            let rel = p.strip_prefix(base).unwrap_or(&p).display().to_string();
            let content = if m.is_file() {
                fs::read(&p)
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default()
            } else {
                fs::read_link(&p)
                    .map(|t| t.display().to_string())
                    .unwrap_or_default()
            };
            let kind = if m.is_dir() {
                "dir"
            } else if m.is_file() {
                "file"
            } else if m.file_type().is_symlink() {
                "symlink"
            } else {
                "other"
            };
            out.insert(
                rel,
                format!(
                    "{kind} {:o} n{} {}b {content}",
                    m.mode(),
                    m.nlink(),
                    m.len()
                ),
            );
            if m.is_dir() {
                walk(base, &p, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    if let Ok(m) = fs::symlink_metadata(dir) {
        out.insert(".".into(), format!("{:o}", m.mode()));
    }
    walk(dir, dir, &mut out);
    out
}

/// True when a directory under `dir` is not fully accessible to its owner: an unprivileged
/// rollback cannot empty it, so an incomplete rollback is not the extractor's fault.
fn has_locked_dir(dir: &Path) -> bool {
    fs::read_dir(dir).into_iter().flatten().flatten().any(|e| {
        let p = e.path();
        fs::symlink_metadata(&p)
            .is_ok_and(|m| m.is_dir() && (m.mode() & 0o700 != 0o700 || has_locked_dir(&p)))
    })
}

/// Input: a flags byte, then the apkovl. Flags bit 0 set: the rest is the `.apkovl.tar.gz` as
/// is. Clear: the rest is a tar stream, gzipped here.
///
/// The apkovl is checked and extracted into an empty root in a scratch directory that also holds
/// a sentinel directory beside the root: nothing outside the root changes (no new names, no mode,
/// link count or content change in the sentinel), and a failed extraction leaves the root empty.
pub fn apkovl(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let archive = if flags & 1 != 0 {
        rest.to_vec()
    } else {
        let mut out = Vec::new();
        gzip(rest, &mut out);
        out
    };
    let scratch = Scratch::new("apkovl");
    let dir = scratch.path();
    let root = dir.join("root");
    let sentinel = dir.join("sentinel");
    let input = dir.join("host.apkovl.tar.gz");
    fs::create_dir(&root).expect("scratch root");
    fs::create_dir(&sentinel).expect("scratch sentinel");
    fs::write(sentinel.join("keep"), b"sentinel\n").expect("scratch sentinel file");
    fs::write(&input, &archive).expect("scratch apkovl");
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).expect("scratch mode");
    let outside_before = snapshot_outside(dir);

    let checked = crate::overlay::check(&input);
    let extracted = crate::overlay::extract(&input, &root, crate::overlay::Options::default());

    assert_eq!(
        snapshot_outside(dir),
        outside_before,
        "the apkovl changed something outside the root"
    );
    if checked.is_err() {
        assert!(
            extracted.is_err(),
            "extracted an archive that failed the check"
        );
    }
    if extracted.is_err() && !has_locked_dir(&root) {
        let left: Vec<String> = snapshot(&root).into_keys().filter(|k| k != ".").collect();
        assert!(left.is_empty(), "a failed extraction left {left:?}");
    }
}

/// The scratch directory without the root's content.
fn snapshot_outside(dir: &Path) -> BTreeMap<String, String> {
    let mut s = snapshot(dir);
    s.retain(|k, _| !k.starts_with("root/"));
    if let Some(root) = s.get_mut("root") {
        // The root's own mode and links may change (`./` entries, new subdirectories).
        *root = root.split(' ').next().unwrap_or_default().to_string();
    }
    s
}
