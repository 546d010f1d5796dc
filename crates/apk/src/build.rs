//! Building signed packages and indexes: the test fixtures and the boot media's repositories.
//!
//! Produces what abuild + abuild-sign + `apk index` produce: a `.SIGN.RSA*` member, a control
//! member (`.PKGINFO` with `datahash`, scripts), a data member whose files carry
//! `APK-TOOLS.checksum.SHA1` PAX records; and an index signed over its only member. Entries are
//! taken as given (a test may add `../x` or a device node on purpose); only missing parent
//! directory entries are added, since apk requires one before any file.

use super::checksum::{hex, Checksum};
use super::dep::Dep;
use super::pkg::PkgInfo;
use super::sign::{SigAlgo, SigningKey};
use super::stream::ScriptKind;
use super::tar::{Header, Kind, TarWriter};
use super::ApkError;
use flate2::write::GzEncoder;
use flate2::Compression;
use sha1::Sha1;
// sha2's SHA-512, not crate::sha512: what is signed here checks the reader's own one.
use sha2::{Digest, Sha256, Sha512};
use std::collections::{HashMap, HashSet};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// Where a file entry's content comes from.
#[derive(Clone, Debug)]
pub enum Content {
    /// The bytes themselves.
    Bytes(Vec<u8>),
    /// Read from a host file when the package is built.
    Path(PathBuf),
    /// `n` zero bytes, streamed (for decompression-bomb tests).
    Zeros(u64),
}

impl Content {
    fn len(&self) -> io::Result<u64> {
        Ok(match self {
            Content::Bytes(b) => b.len() as u64,
            Content::Path(p) => std::fs::metadata(p)?.len(),
            Content::Zeros(n) => *n,
        })
    }

    fn reader(&self) -> io::Result<Box<dyn Read + '_>> {
        Ok(match self {
            Content::Bytes(b) => Box::new(&b[..]),
            Content::Path(p) => Box::new(std::fs::File::open(p)?),
            Content::Zeros(n) => Box::new(io::repeat(0).take(*n)),
        })
    }
}

/// How a file's `APK-TOOLS.checksum.SHA1` record is written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ChecksumRecord {
    #[default]
    /// Computed from the content, as abuild writes it.
    Computed,
    /// None written (a package as old abuild made them).
    Omitted,
    /// A given hex value (tests of a lying checksum).
    Given(String),
}

/// One data entry.
#[derive(Clone, Debug)]
pub struct BuildEntry {
    /// Name in the archive, without a leading `/`.
    pub path: String,
    /// File, directory, symlink, hard link, fifo or device node.
    pub kind: Kind,
    /// Permission bits (with setuid/setgid/sticky).
    pub mode: u32,
    /// Owner id in the header.
    pub uid: u32,
    /// Group id in the header.
    pub gid: u32,
    /// Owner name in the header.
    pub uname: String,
    /// Group name in the header.
    pub gname: String,
    /// None: the package build time.
    pub mtime: Option<u64>,
    /// Symlink or hard link target.
    pub link: String,
    /// A regular file's content; None: empty.
    pub content: Option<Content>,
    /// Extended attributes, as `SCHILY.xattr.*` PAX records.
    pub xattrs: Vec<(String, Vec<u8>)>,
    /// Device numbers (major, minor) of a device node.
    pub dev: (u32, u32),
    /// How the content's checksum record is written.
    pub checksum: ChecksumRecord,
}

impl BuildEntry {
    fn new(path: &str, kind: Kind, mode: u32) -> Self {
        BuildEntry {
            path: path.trim_end_matches('/').into(),
            kind,
            mode,
            uid: 0,
            gid: 0,
            uname: "root".into(),
            gname: "root".into(),
            mtime: None,
            link: String::new(),
            content: None,
            xattrs: Vec::new(),
            dev: (0, 0),
            checksum: ChecksumRecord::Computed,
        }
    }

    /// Sets owner names and numbers.
    pub fn owner(mut self, uname: &str, uid: u32, gname: &str, gid: u32) -> Self {
        (self.uname, self.uid, self.gname, self.gid) = (uname.into(), uid, gname.into(), gid);
        self
    }

    /// Adds an extended attribute.
    pub fn xattr(mut self, name: &str, value: &[u8]) -> Self {
        self.xattrs.push((name.into(), value.into()));
        self
    }
}

/// A package under construction. Fill `info` (name, version, depends, ...) and the entries.
#[derive(Clone, Debug)]
pub struct PackageBuilder {
    /// The `.PKGINFO` fields (name, version, dependencies ...).
    pub info: PkgInfo,
    /// Control scripts, by kind.
    pub scripts: Vec<(ScriptKind, Vec<u8>)>,
    /// The data entries, in archive order.
    pub entries: Vec<BuildEntry>,
    /// None: estimated like abuild's `du` (0 only for a package without entries).
    pub installed_size: Option<u64>,
    /// gzip level 0-9 (abuild uses 9).
    pub level: u32,
    /// The signature scheme when the package is signed.
    pub sign_algo: SigAlgo,
    /// Use `datahash` (modern layout); false signs control+data together (old layout).
    pub datahash: bool,
    /// Written instead of the real datahash (tests).
    pub datahash_override: Option<[u8; 32]>,
    /// Raw text appended to `.PKGINFO` (tests).
    pub pkginfo_extra: String,
    /// Add missing parent directory entries before files.
    pub auto_dirs: bool,
}

/// A built package: the file bytes and the index record for it.
pub struct BuiltPackage {
    /// The `.apk` file.
    pub bytes: Vec<u8>,
    /// Its index record (with `C:`, `S:` and `I:` filled in).
    pub info: PkgInfo,
}

impl BuiltPackage {
    /// apk's file name in a repository: `name-version.apk`.
    pub fn file_name(&self) -> String {
        format!("{}.apk", self.info.nv())
    }
}

fn gzip(data: &[u8], level: u32) -> io::Result<Vec<u8>> {
    let mut e = GzEncoder::new(Vec::new(), Compression::new(level));
    e.write_all(data)?;
    e.finish()
}

/// Builds the `.SIGN.*` member over a digest source.
fn signature_member(
    key: &SigningKey,
    algo: SigAlgo,
    signed: &[&[u8]],
) -> Result<Vec<u8>, ApkError> {
    let digest: Vec<u8> = match algo {
        SigAlgo::Sha1 => {
            let mut h = Sha1::new();
            signed.iter().for_each(|s| h.update(s));
            h.finalize().to_vec()
        }
        SigAlgo::Sha256 => {
            let mut h = Sha256::new();
            signed.iter().for_each(|s| h.update(s));
            h.finalize().to_vec()
        }
        SigAlgo::Sha512 => {
            let mut h = Sha512::new();
            signed.iter().for_each(|s| h.update(s));
            h.finalize().to_vec()
        }
    };
    let sig = key.sign(algo, &digest)?;
    let name = format!("{}{}", algo.entry_prefix(), key.key_name);
    let mut t = TarWriter::new(Vec::new());
    t.file(&Header::file(&name, 0, 0o644, 0), &sig)
        .map_err(|e| ApkError::io("signature", e))?;
    gzip(&t.into_inner(), 9).map_err(|e| ApkError::io("signature", e))
}

impl PackageBuilder {
    /// A package `name`-`version` without entries (add them with [`Self::dir`], [`Self::file`] ...).
    pub fn new(name: &str, version: &str) -> Self {
        let info = PkgInfo {
            name: name.into(),
            version: version.into(),
            arch: default_arch().into(),
            description: format!("{name} package"),
            license: "MIT".into(),
            origin: name.into(),
            build_time: 1_700_000_000,
            ..PkgInfo::default()
        };
        PackageBuilder {
            info,
            scripts: Vec::new(),
            entries: Vec::new(),
            installed_size: None,
            level: 6,
            sign_algo: SigAlgo::Sha1,
            datahash: true,
            datahash_override: None,
            pkginfo_extra: String::new(),
            auto_dirs: true,
        }
    }

    /// Adds `depend` atoms (space-separated).
    pub fn depends(mut self, atoms: &str) -> Self {
        self.info
            .depends
            .extend(Dep::parse_list(atoms).expect("valid atoms"));
        self
    }

    /// Adds `provides` atoms (space separated).
    pub fn provides(mut self, atoms: &str) -> Self {
        self.info
            .provides
            .extend(Dep::parse_list(atoms).expect("valid atoms"));
        self
    }

    /// Adds `install_if` atoms (space separated).
    pub fn install_if(mut self, atoms: &str) -> Self {
        self.info
            .install_if
            .extend(Dep::parse_list(atoms).expect("valid atoms"));
        self
    }

    /// Adds `replaces` atoms (space separated).
    pub fn replaces(mut self, atoms: &str) -> Self {
        self.info
            .replaces
            .extend(Dep::parse_list(atoms).expect("valid atoms"));
        self
    }

    /// Sets `provider_priority`.
    pub fn priority(mut self, k: u32) -> Self {
        self.info.provider_priority = k;
        self
    }

    /// Sets the trigger globs (space separated).
    pub fn triggers(mut self, globs: &str) -> Self {
        self.info.triggers = globs
            .split(' ')
            .filter(|g| !g.is_empty())
            .map(String::from)
            .collect();
        self
    }

    /// Adds a control script.
    pub fn script(mut self, kind: ScriptKind, text: &str) -> Self {
        self.scripts.push((kind, text.as_bytes().to_vec()));
        self
    }

    /// Adds a directory entry.
    pub fn dir(mut self, path: &str, mode: u32) -> Self {
        self.entries.push(BuildEntry::new(path, Kind::Dir, mode));
        self
    }

    /// Adds a regular file with its content.
    pub fn file(mut self, path: &str, data: &[u8], mode: u32) -> Self {
        let mut e = BuildEntry::new(path, Kind::File, mode);
        e.content = Some(Content::Bytes(data.to_vec()));
        self.entries.push(e);
        self
    }

    /// Adds a symlink to `target`.
    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        let mut e = BuildEntry::new(path, Kind::Symlink, 0o777);
        e.link = target.into();
        self.entries.push(e);
        self
    }

    /// Adds a hard link to the earlier entry `target`.
    pub fn hardlink(mut self, path: &str, target: &str) -> Self {
        let mut e = BuildEntry::new(path, Kind::HardLink, 0o644);
        e.link = target.into();
        self.entries.push(e);
        self
    }

    /// Adds any entry (owners, xattrs, devices, hostile names).
    pub fn entry(mut self, e: BuildEntry) -> Self {
        self.entries.push(e);
        self
    }

    /// A file entry to customise before [`Self::entry`].
    pub fn file_entry(path: &str, content: Content, mode: u32) -> BuildEntry {
        let mut e = BuildEntry::new(path, Kind::File, mode);
        e.content = Some(content);
        e
    }

    /// A bare entry of any kind to customise before [`Self::entry`].
    pub fn raw_entry(path: &str, kind: Kind, mode: u32) -> BuildEntry {
        BuildEntry::new(path, kind, mode)
    }

    /// Adds a host directory tree (sorted, owners root:root, hard links kept).
    pub fn add_tree(&mut self, dir: &Path) -> io::Result<()> {
        use std::os::unix::fs::MetadataExt;
        let mut seen: HashMap<(u64, u64), String> = HashMap::new();
        let mut stack = vec![(dir.to_path_buf(), String::new())];
        while let Some((host, rel)) = stack.pop() {
            let mut names: Vec<_> = std::fs::read_dir(&host)?.collect::<Result<_, _>>()?;
            ramboot_sys::sort::sort_by_key(&mut names, |e| e.file_name());
            let mut subdirs = Vec::new();
            for ent in names {
                let name = ent
                    .file_name()
                    .into_string()
                    .map_err(|_| io::Error::other("non-UTF-8 file name"))?;
                let path = if rel.is_empty() {
                    name
                } else {
                    format!("{rel}/{name}")
                };
                let md = std::fs::symlink_metadata(ent.path())?;
                let mode = md.mode() & 0o7777;
                let ft = md.file_type();
                if ft.is_dir() {
                    self.entries.push(BuildEntry::new(&path, Kind::Dir, mode));
                    subdirs.push((ent.path(), path));
                } else if ft.is_symlink() {
                    let target = std::fs::read_link(ent.path())?;
                    let mut e = BuildEntry::new(&path, Kind::Symlink, 0o777);
                    e.link = target
                        .to_str()
                        .ok_or_else(|| io::Error::other("non-UTF-8 link"))?
                        .into();
                    self.entries.push(e);
                } else if ft.is_file() {
                    if md.nlink() > 1 {
                        if let Some(first) = seen.get(&(md.dev(), md.ino())) {
                            let mut e = BuildEntry::new(&path, Kind::HardLink, mode);
                            e.link = first.clone();
                            self.entries.push(e);
                            continue;
                        }
                        seen.insert((md.dev(), md.ino()), path.clone());
                    }
                    let mut e = BuildEntry::new(&path, Kind::File, mode);
                    e.content = Some(Content::Path(ent.path()));
                    self.entries.push(e);
                }
            }
            // Depth-first, in name order: push in reverse.
            stack.extend(subdirs.into_iter().rev());
        }
        Ok(())
    }

    fn entries_with_dirs(&self) -> Vec<BuildEntry> {
        if !self.auto_dirs {
            return self.entries.clone();
        }
        let mut have: HashSet<String> = HashSet::new();
        let mut out = Vec::new();
        for e in &self.entries {
            let hostile =
                e.path.starts_with('/') || e.path.split('/').any(|c| c == ".." || c == ".");
            if !hostile {
                let mut prefix = String::new();
                let parts: Vec<&str> = e.path.split('/').collect();
                for comp in &parts[..parts.len() - 1] {
                    if !prefix.is_empty() {
                        prefix.push('/');
                    }
                    prefix.push_str(comp);
                    if have.insert(prefix.clone()) {
                        out.push(BuildEntry::new(&prefix, Kind::Dir, 0o755));
                    }
                }
            }
            if e.kind == Kind::Dir && !have.insert(e.path.clone()) {
                // Replace an auto-added entry by the explicit one, in place.
                let pos = out
                    .iter()
                    .position(|o: &BuildEntry| o.path == e.path && o.kind == Kind::Dir);
                if let Some(pos) = pos {
                    out[pos] = e.clone();
                    continue;
                }
            }
            out.push(e.clone());
        }
        out
    }

    fn data_tar(&self, entries: &[BuildEntry]) -> Result<Vec<u8>, ApkError> {
        let err = |e| ApkError::io(format!("building {}", self.info.nv()), e);
        let mut gz = GzEncoder::new(Vec::new(), Compression::new(self.level));
        {
            let mut t = TarWriter::new(&mut gz);
            for e in entries {
                let size = match (&e.kind, &e.content) {
                    (Kind::File, Some(c)) => c.len().map_err(err)?,
                    _ => 0,
                };
                let h = Header {
                    name: &e.path,
                    kind: e.kind,
                    mode: e.mode,
                    uid: e.uid,
                    gid: e.gid,
                    uname: &e.uname,
                    gname: &e.gname,
                    mtime: e.mtime.unwrap_or(self.info.build_time),
                    link: &e.link,
                    size,
                    dev: e.dev,
                };
                let sum = match (&e.checksum, e.kind) {
                    (ChecksumRecord::Omitted, _) => None,
                    (ChecksumRecord::Given(s), _) => Some(s.clone()),
                    (ChecksumRecord::Computed, Kind::File) => {
                        let mut h = Sha1::new();
                        if let Some(c) = &e.content {
                            io::copy(&mut c.reader().map_err(err)?, &mut HashWriter(&mut h))
                                .map_err(err)?;
                        }
                        Some(hex(&h.finalize()))
                    }
                    (ChecksumRecord::Computed, Kind::Symlink) => {
                        Some(hex(&Sha1::digest(e.link.as_bytes())))
                    }
                    _ => None,
                };
                let mut pax: Vec<(String, Vec<u8>)> = Vec::new();
                if let Some(s) = &sum {
                    pax.push(("APK-TOOLS.checksum.SHA1".into(), s.as_bytes().to_vec()));
                }
                for (k, v) in &e.xattrs {
                    pax.push((format!("SCHILY.xattr.{k}"), v.clone()));
                }
                let pax_refs: Vec<(&str, &[u8])> = pax
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_slice()))
                    .collect();
                t.header(&h, &pax_refs).map_err(err)?;
                if size > 0 {
                    let c = e.content.as_ref().expect("size > 0 only with content");
                    t.content_from(&mut c.reader().map_err(err)?, size)
                        .map_err(err)?;
                }
            }
            t.finish().map_err(err)?;
        }
        gz.finish().map_err(err)
    }

    fn estimated_size(&self, entries: &[BuildEntry]) -> io::Result<u64> {
        if let Some(s) = self.installed_size {
            return Ok(s);
        }
        if entries.is_empty() {
            return Ok(0);
        }
        let mut total = 0;
        for e in entries {
            total += match (&e.kind, &e.content) {
                (Kind::File, Some(c)) => c.len()?.div_ceil(4096).max(1) * 4096,
                (Kind::Dir, _) => 4096,
                _ => 0,
            };
        }
        // Like `du` of a package directory: never 0 once there is an entry.
        Ok(total.max(4096))
    }

    /// Builds the package; signs it when a key is given.
    pub fn build(&self, key: Option<&SigningKey>) -> Result<BuiltPackage, ApkError> {
        let entries = self.entries_with_dirs();
        let data = self.data_tar(&entries)?;
        let mut info = self.info.clone();
        info.installed_size = self
            .estimated_size(&entries)
            .map_err(|e| ApkError::io("sizing", e))?;
        info.datahash = if self.datahash {
            Some(
                self.datahash_override
                    .unwrap_or_else(|| Sha256::digest(&data).into()),
            )
        } else {
            None
        };
        let mut pkginfo = info.write_pkginfo();
        pkginfo.push_str(&self.pkginfo_extra);
        let err = |e| ApkError::io(format!("building {}", info.nv()), e);
        let mut t = TarWriter::new(Vec::new());
        t.file(
            &Header::file(".PKGINFO", 0, 0o644, info.build_time),
            pkginfo.as_bytes(),
        )
        .map_err(err)?;
        for kind in ScriptKind::ALL {
            if let Some((_, s)) = self.scripts.iter().find(|(k, _)| *k == kind) {
                t.file(
                    &Header::file(&format!(".{}", kind.name()), 0, 0o755, info.build_time),
                    s,
                )
                .map_err(err)?;
            }
        }
        let control = gzip(&t.into_inner(), self.level).map_err(err)?;
        let signed: Vec<&[u8]> = if self.datahash {
            vec![&control]
        } else {
            vec![&control, &data]
        };
        let mut id = Sha1::new();
        signed.iter().for_each(|s| id.update(s));
        info.identity = Some(Checksum::Sha1(id.finalize().into()));
        let mut bytes = match key {
            Some(k) => signature_member(k, self.sign_algo, &signed)?,
            None => Vec::new(),
        };
        bytes.extend_from_slice(&control);
        bytes.extend_from_slice(&data);
        info.file_size = bytes.len() as u64;
        // Install-time-only fields are not part of the index record.
        info.datahash = None;
        info.triggers.clear();
        info.replaces.clear();
        info.replaces_priority = 0;
        Ok(BuiltPackage { bytes, info })
    }
}

struct HashWriter<'a, D: Digest>(&'a mut D);

impl<D: Digest> Write for HashWriter<'_, D> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// An APKINDEX.tar.gz under construction.
#[derive(Clone, Debug, Default)]
pub struct IndexBuilder {
    /// The index's `DESCRIPTION` entry.
    pub description: String,
    /// The records, in the order added.
    pub packages: Vec<PkgInfo>,
    /// Raw text appended to the APKINDEX (tests of malformed indexes).
    pub raw_append: String,
    /// Entry mtime (apk uses SOURCE_DATE_EPOCH or now).
    pub mtime: u64,
}

impl IndexBuilder {
    /// Adds a package's record.
    pub fn add(&mut self, info: &PkgInfo) {
        self.packages.push(info.clone());
    }

    /// The APKINDEX text: records sorted by name, then version.
    pub fn text(&self) -> String {
        let mut pkgs: Vec<&PkgInfo> = self.packages.iter().collect();
        ramboot_sys::sort::sort_by(&mut pkgs, |a, b| {
            super::dep::name_cmp(&a.name, &b.name)
                .then_with(|| super::version::compare(&a.version, &b.version))
        });
        let mut s = String::new();
        for p in pkgs {
            p.write_index_header(&mut s);
            s.push('\n');
        }
        s.push_str(&self.raw_append);
        s
    }

    /// Builds the archive; signs it when a key is given.
    pub fn build(&self, key: Option<&SigningKey>, algo: SigAlgo) -> Result<Vec<u8>, ApkError> {
        let err = |e| ApkError::io("building index", e);
        let mut t = TarWriter::new(Vec::new());
        if !self.description.is_empty() {
            t.file(
                &Header::file("DESCRIPTION", 0, 0o644, self.mtime),
                self.description.as_bytes(),
            )
            .map_err(err)?;
        }
        t.file(
            &Header::file("APKINDEX", 0, 0o644, self.mtime),
            self.text().as_bytes(),
        )
        .map_err(err)?;
        t.finish().map_err(err)?;
        let body = gzip(&t.into_inner(), 9).map_err(err)?;
        let mut out = match key {
            Some(k) => signature_member(k, algo, &[&body])?,
            None => Vec::new(),
        };
        out.extend_from_slice(&body);
        Ok(out)
    }
}

/// Reads a package file's control part (unverified) and returns its index record:
/// what `apk index` does with each file.
pub fn index_record(path: &Path) -> Result<PkgInfo, ApkError> {
    let f = std::fs::File::open(path)
        .map_err(|e| ApkError::io(format!("opening {}", path.display()), e))?;
    let size = f.metadata().map_err(|e| ApkError::io("stat", e))?.len();
    let keys = super::sign::Keyring::default();
    let mut sink = super::stream::ControlOnly;
    let what = path.display().to_string();
    let verify = super::stream::Verify::Signature {
        keys: &keys,
        allow_untrusted: true,
    };
    let control = super::stream::read_package(io::BufReader::new(f), &what, verify, &mut sink)?;
    let mut info = control.info;
    info.identity = control.identity;
    if info.identity.is_none() {
        return Err(ApkError::Format {
            what,
            reason: "cannot compute the identity (no datahash and stopped early)".into(),
        });
    }
    info.file_size = size;
    info.datahash = None;
    info.triggers.clear();
    info.replaces.clear();
    info.replaces_priority = 0;
    Ok(info)
}

/// apk's name for this machine's architecture.
pub fn default_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "x86_64",
        "x86" => "x86",
        "aarch64" => "aarch64",
        "arm" => "armv7",
        "riscv64" => "riscv64",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "loongarch64" => "loongarch64",
        other => other,
    }
}
