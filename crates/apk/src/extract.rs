//! Writing package contents into the root, safely.
//!
//! Two halves, so that packages can be decompressed in parallel but land in install order:
//! - `Stager` (worker threads) streams a package's data entries into a private staging
//!   directory inside the root, under sequence-number names, with mode, mtime and xattrs set.
//!   Nothing outside the staging directory changes, so an unverified package leaves no trace.
//! - `Committer` (one thread, install order) creates directories, chowns, and renames staged
//!   files to their final names, exactly when apk would write them.
//!
//! Every path is resolved as chroot would see it ([`ramboot_sys::fsutil::Root`]): symlinks, absolute
//! ones too, are followed inside the root and `..` stops at it. So `var/run -> /run` from
//! alpine-baselayout works as in the booted system and nothing can land outside the root. The
//! last component is created, renamed, chmodded and chowned relative to its parent's descriptor.

use super::checksum::Checksum;
use super::ids::OwnerNames;
use super::stream::{ContentRead, Control, DataSink, Lookup};
use super::tar::{Entry, Kind};
use super::ApkError;
use ramboot_sys::fsutil::Root;
use ramboot_sys::Sys;
use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{AtFlags, Mode, OFlags, Timespec, Timestamps};
use rustix::io::Errno;
use sha1::{Digest, Sha1};
use std::collections::{HashMap, HashSet};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Name of the staging directory inside the root (removed at the end of the transaction).
pub const STAGING_DIR: &str = ".ramboot-apk-staging";

fn errno_io(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e.raw_os_error())
}

/// The staging directory: flat, sequence-numbered files.
pub(crate) struct Staging {
    pub fd: OwnedFd,
    host: PathBuf,
    counter: AtomicU64,
    /// The (uid, gid) a file created here gets: a file that must have them needs no chown.
    pub new_file_owner: (u32, u32),
}

impl Staging {
    /// Creates `<root>/.ramboot-apk-staging` (mode 0700), emptying a leftover one.
    pub fn create(root: &Root) -> io::Result<Staging> {
        let host = root.path().join(STAGING_DIR);
        if std::fs::symlink_metadata(&host).is_ok() {
            std::fs::remove_dir_all(&host)?;
        }
        rustix::fs::mkdirat(root.fd(), STAGING_DIR, Mode::from_raw_mode(0o700))
            .map_err(errno_io)?;
        let fd = rustix::fs::openat(
            root.fd(),
            STAGING_DIR,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(errno_io)?;
        // Who owns a file created here (the creator, or the directory's group when it is
        // setgid): asked of a probe file rather than worked out.
        let probe = rustix::fs::openat(
            &fd,
            "owner-probe",
            OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(errno_io)?;
        let st = rustix::fs::fstat(&probe).map_err(errno_io)?;
        rustix::fs::unlinkat(&fd, "owner-probe", AtFlags::empty()).map_err(errno_io)?;
        Ok(Staging {
            fd,
            host,
            counter: AtomicU64::new(0),
            new_file_owner: (st.st_uid, st.st_gid),
        })
    }

    fn next_name(&self) -> String {
        format!("{:x}", self.counter.fetch_add(1, Ordering::Relaxed))
    }

    /// Deletes a staged file (best effort).
    pub fn discard(&self, name: &str) {
        let _ = rustix::fs::unlinkat(&self.fd, name, AtFlags::empty());
    }

    /// Free bytes on the target filesystem.
    pub fn free_bytes(&self) -> Option<u64> {
        rustix::fs::fstatvfs(&self.fd)
            .ok()
            .map(|s| s.f_bavail.saturating_mul(s.f_frsize))
    }

    /// Removes the staging directory and anything left in it.
    pub fn remove(self) {
        drop(self.fd);
        let _ = std::fs::remove_dir_all(&self.host);
    }
}

/// One data entry as staged by a worker, to be committed in order.
#[derive(Clone, Debug)]
pub(crate) struct StagedEntry {
    pub path: String,
    pub kind: Kind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub uname: String,
    pub gname: String,
    pub link: String,
    /// Name in the staging directory (regular files and hard links).
    pub staged: Option<String>,
    pub checksum: Option<Checksum>,
    pub xattr_csum: Option<Checksum>,
    pub size: u64,
}

/// A package's data, staged.
#[derive(Debug, Default)]
pub(crate) struct StagedPackage {
    pub entries: Vec<StagedEntry>,
    pub broken_files: bool,
    pub broken_xattr: bool,
    pub warnings: Vec<String>,
    pub bytes: u64,
    /// Owner names apk looks up before the pre-install script, and after it ([`Lookup`]).
    pub owners_before_script: OwnerNames,
    pub owners_after_script: OwnerNames,
    /// `entries[0]` comes from the first data header, whose owner apk resolves before the
    /// pre-install script runs.
    pub first_entry_before_script: bool,
}

impl StagedPackage {
    /// Deletes every staged file of this package.
    pub fn discard(&self, staging: &Staging) {
        for e in &self.entries {
            if let Some(s) = &e.staged {
                staging.discard(s);
            }
        }
    }
}

/// apk's xattr checksum: SHA1 over name-sorted `be32 len, name, be32 len, value`.
pub(crate) fn xattr_checksum(xattrs: &[(String, Vec<u8>)]) -> Option<Checksum> {
    if xattrs.is_empty() {
        return None;
    }
    let mut sorted: Vec<&(String, Vec<u8>)> = xattrs.iter().collect();
    ramboot_sys::sort::sort_by(&mut sorted, |a, b| a.0.cmp(&b.0));
    let mut h = Sha1::new();
    for (k, v) in sorted {
        h.update((k.len() as u32).to_be_bytes());
        h.update(k.as_bytes());
        h.update((v.len() as u32).to_be_bytes());
        h.update(v);
    }
    Some(Checksum::Sha1(h.finalize().into()))
}

/// Checks an archive name. Ok(None): silently skipped, as apk skips dot-names.
pub(crate) fn check_name(package: &str, name: &str) -> Result<Option<String>, ApkError> {
    let refuse = |reason: &str| ApkError::UnsafeEntry {
        package: package.into(),
        path: name.into(),
        reason: reason.into(),
    };
    if name.starts_with('/') {
        return Err(refuse("absolute name"));
    }
    if name.split('/').any(|c| c == "..") {
        return Err(refuse("path traversal (`..`)"));
    }
    if name.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err(refuse("control character in name"));
    }
    let trimmed = name.trim_end_matches('/');
    if trimmed.is_empty() || trimmed.starts_with('.') {
        return Ok(None);
    }
    if trimmed.split('/').any(|c| c == "." || c.is_empty()) {
        return Err(refuse("malformed name (`.` or empty component)"));
    }
    Ok(Some(trimmed.into()))
}

fn parent_of(path: &str) -> (&str, &str) {
    match path.rsplit_once('/') {
        Some((d, f)) => (d, f),
        None => ("", path),
    }
}

/// Streams a package's data into the staging directory (a [`DataSink`]).
pub(crate) struct Stager<'a> {
    staging: &'a Staging,
    package: String,
    pub out: StagedPackage,
    dirs: HashSet<String>,
    staged_by_path: HashMap<String, String>,
    limit: u64,
    declared: u64,
    privileged: bool,
    umask: u32,
    warned_checksum: bool,
    saw_data_header: bool,
}

impl<'a> Stager<'a> {
    pub fn new(
        staging: &'a Staging,
        package: &str,
        declared_size: u64,
        privileged: bool,
        umask: u32,
    ) -> Self {
        Stager {
            staging,
            package: package.into(),
            out: StagedPackage::default(),
            dirs: HashSet::new(),
            staged_by_path: HashMap::new(),
            limit: declared_size.saturating_mul(2).saturating_add(4 << 20),
            declared: declared_size,
            privileged,
            umask,
            warned_checksum: false,
            saw_data_header: false,
        }
    }

    fn refuse(&self, path: &str, reason: String) -> ApkError {
        ApkError::UnsafeEntry {
            package: self.package.clone(),
            path: path.into(),
            reason,
        }
    }

    fn io_err(&self, path: &str, e: io::Error) -> ApkError {
        if e.raw_os_error() == Some(Errno::NOSPC.raw_os_error()) {
            return ApkError::NoSpace {
                package: self.package.clone(),
                path: path.into(),
            };
        }
        ApkError::io(format!("{}: writing {path}", self.package), e)
    }

    fn write_file(
        &mut self,
        e: &Entry,
        path: &str,
        content: &mut dyn ContentRead,
    ) -> Result<String, ApkError> {
        if self.out.bytes.saturating_add(e.size) > self.limit {
            return Err(ApkError::TooLarge {
                package: self.package.clone(),
                declared: self.declared,
                limit: self.limit,
            });
        }
        let name = self.staging.next_name();
        let fd = rustix::fs::openat(
            &self.staging.fd,
            name.as_str(),
            OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC,
            Mode::from_raw_mode(e.mode & 0o7777),
        )
        .map_err(|er| self.io_err(path, errno_io(er)))?;
        // Registered before writing, so a failure below still deletes it.
        self.out.entries.push(StagedEntry {
            path: path.into(),
            kind: Kind::File,
            mode: e.mode,
            uid: e.uid,
            gid: e.gid,
            uname: e.uname.clone(),
            gname: e.gname.clone(),
            link: String::new(),
            staged: Some(name.clone()),
            checksum: e.checksum,
            xattr_csum: xattr_checksum(&e.xattrs),
            size: e.size,
        });
        let mut file = std::fs::File::from(fd);
        loop {
            let chunk = content.content_chunk().map_err(|er| ApkError::Corrupt {
                what: self.package.clone(),
                source: er,
            })?;
            if chunk.is_empty() {
                break;
            }
            if let Err(er) = file.write_all(chunk) {
                return Err(self.io_err(path, er));
            }
        }
        self.out.bytes += e.size;
        // Writing clears setuid/setgid, and the umask applied at create: set the mode last.
        if e.mode & 0o7000 != 0 || e.mode & 0o777 & self.umask != 0 {
            rustix::fs::fchmod(&file, Mode::from_raw_mode(e.mode & 0o7777))
                .map_err(|er| self.io_err(path, errno_io(er)))?;
        }
        for (k, v) in &e.xattrs {
            if !self.privileged && !k.starts_with("user.") {
                continue;
            }
            match rustix::fs::fsetxattr(&file, k.as_str(), v, rustix::fs::XattrFlags::empty()) {
                Ok(()) => {}
                Err(Errno::NOTSUP) => self.out.broken_xattr = true,
                Err(er) => {
                    self.out.broken_files = true;
                    self.out
                        .warnings
                        .push(format!("{path}: setting xattr {k}: {er}"));
                }
            }
        }
        let t = Timespec {
            tv_sec: e.mtime as i64,
            tv_nsec: 0,
        };
        let _ = rustix::fs::futimens(
            &file,
            &Timestamps {
                last_access: t,
                last_modification: t,
            },
        );
        Ok(name)
    }
}

impl DataSink for Stager<'_> {
    fn control_ready(&mut self, control: &Control) -> Result<(), ApkError> {
        if let Some(free) = self.staging.free_bytes() {
            if control.info.installed_size > free && self.declared > free {
                return Err(ApkError::NoSpace {
                    package: self.package.clone(),
                    path: format!("(needs {} bytes, {free} free)", self.declared),
                });
            }
        }
        Ok(())
    }

    fn entry(&mut self, e: Entry, content: &mut dyn ContentRead) -> Result<(), ApkError> {
        let first = !std::mem::replace(&mut self.saw_data_header, true);
        let result = self.stage_entry(e, content);
        if first && !self.out.entries.is_empty() {
            self.out.first_entry_before_script = true;
        }
        result
    }

    fn owner_names(&mut self, when: Lookup, names: OwnerNames) {
        match when {
            Lookup::BeforeScript => self.out.owners_before_script = names,
            Lookup::AfterScript => self.out.owners_after_script = names,
        }
    }
}

impl Stager<'_> {
    fn stage_entry(&mut self, e: Entry, content: &mut dyn ContentRead) -> Result<(), ApkError> {
        let Some(path) = check_name(&self.package, &e.name)? else {
            return Ok(());
        };
        let (dir, base) = parent_of(&path);
        if base.starts_with(".keep_") {
            return Ok(());
        }
        let needs_dirent = e.kind != Kind::Dir && !dir.is_empty() && !self.dirs.contains(dir);
        if needs_dirent {
            self.out.broken_files = true;
            self.out.warnings.push(format!(
                "{path}: no directory entry for {dir} in archive; skipped"
            ));
            return Ok(());
        }
        let mut staged = None;
        match e.kind {
            Kind::CharDevice | Kind::BlockDevice => {
                return Err(self.refuse(
                    &path,
                    "device node in a package (refused: devices come from devtmpfs)".into(),
                ));
            }
            Kind::Dir => {
                self.dirs.insert(path.clone());
            }
            Kind::File => {
                if e.checksum.is_none() && !self.warned_checksum {
                    self.warned_checksum = true;
                    self.out.broken_files = true;
                    self.out.warnings.push(
                        "support for packages without embedded checksums will be dropped".into(),
                    );
                }
                self.write_file(&e, &path, content)?;
                let name = self
                    .out
                    .entries
                    .last()
                    .and_then(|s| s.staged.clone())
                    .expect("just staged");
                self.staged_by_path.insert(path, name);
                return Ok(());
            }
            Kind::HardLink => {
                let target = e.link.trim_start_matches("./").trim_end_matches('/');
                let Some(tname) = self.staged_by_path.get(target).cloned() else {
                    return Err(self.refuse(
                        &path,
                        format!("hard link target {target} is not an earlier file of this package"),
                    ));
                };
                let name = self.staging.next_name();
                rustix::fs::linkat(
                    &self.staging.fd,
                    tname.as_str(),
                    &self.staging.fd,
                    name.as_str(),
                    AtFlags::empty(),
                )
                .map_err(|er| self.io_err(&path, errno_io(er)))?;
                staged = Some(name);
            }
            Kind::Symlink => {
                if e.checksum.is_none() && !self.warned_checksum {
                    self.warned_checksum = true;
                    self.out.broken_files = true;
                    self.out.warnings.push(
                        "support for packages without embedded checksums will be dropped".into(),
                    );
                }
            }
            Kind::Fifo => {}
        }
        // A hard link shares its target's checksum and attributes.
        let (checksum, xattr_csum) = if e.kind == Kind::HardLink {
            let target = e.link.trim_start_matches("./").trim_end_matches('/');
            self.out
                .entries
                .iter()
                .find(|s| s.path == target)
                .map(|s| (s.checksum, s.xattr_csum))
                .unwrap_or((None, None))
        } else {
            (e.checksum, xattr_checksum(&e.xattrs))
        };
        self.out.entries.push(StagedEntry {
            path,
            kind: e.kind,
            mode: e.mode,
            uid: e.uid,
            gid: e.gid,
            uname: e.uname,
            gname: e.gname,
            link: e.link,
            staged,
            checksum,
            xattr_csum,
            size: 0,
        });
        Ok(())
    }
}

/// Applies staged entries to the root in install order.
pub(crate) struct Committer<'a> {
    pub root: &'a Root,
    pub staging: &'a Staging,
    pub privileged: bool,
    /// Ownership and fifos go through the system boundary.
    sys: &'a dyn Sys,
    dir_cache: HashMap<String, OwnedFd>,
}

impl<'a> Committer<'a> {
    pub fn new(root: &'a Root, staging: &'a Staging, privileged: bool, sys: &'a dyn Sys) -> Self {
        Committer {
            root,
            staging,
            privileged,
            sys,
            dir_cache: HashMap::new(),
        }
    }

    /// Forgets cached directory handles (between packages).
    pub fn reset_cache(&mut self) {
        self.dir_cache.clear();
    }

    /// Directory `rel`, resolved inside the root (cached until [`Self::reset_cache`]).
    pub fn dir(&mut self, rel: &str) -> io::Result<&OwnedFd> {
        if !self.dir_cache.contains_key(rel) {
            let fd = self.root.dir(Path::new(rel))?;
            self.dir_cache.insert(rel.to_string(), fd);
        }
        Ok(&self.dir_cache[rel])
    }

    /// Creates directory `rel` (and missing parents, 0755). Returns true if it was created.
    pub fn mkdir(&mut self, rel: &str, mode: u32) -> io::Result<bool> {
        let (parent, base) = parent_of(rel);
        let pfd = match self.dir(parent) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound && !parent.is_empty() => {
                self.mkdir(parent, 0o755)?;
                self.dir(parent)?
            }
            Err(e) => return Err(e),
        };
        match rustix::fs::mkdirat(pfd, base, Mode::from_raw_mode(mode & 0o7777)) {
            Ok(()) => {
                // mkdir is subject to the umask; apk runs with umask 0.
                if let Ok(fd) = open_dir_nofollow(pfd, base) {
                    let _ = rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode & 0o7777));
                }
                Ok(true)
            }
            Err(Errno::EXIST) => {
                // Existing directory (or symlink to one inside the root) is used as is.
                self.dir(rel)?;
                Ok(false)
            }
            Err(e) => Err(errno_io(e)),
        }
    }

    /// Does `rel` exist (lstat)? Returns its content checksum when it is a regular file or
    /// symlink and `want_sum`.
    pub fn existing(&mut self, rel: &str, want_sum: bool) -> io::Result<Option<Option<Checksum>>> {
        let (parent, base) = parent_of(rel);
        let pfd = match self.dir(parent) {
            Ok(fd) => fd,
            Err(_) => return Ok(None),
        };
        let st = match rustix::fs::statat(pfd, base, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(_) => return Ok(None),
        };
        if !want_sum {
            return Ok(Some(None));
        }
        let ft = rustix::fs::FileType::from_raw_mode(st.st_mode);
        let sum = match ft {
            rustix::fs::FileType::Symlink => rustix::fs::readlinkat(pfd, base, Vec::new())
                .ok()
                .map(|t| Checksum::Sha1(Sha1::digest(t.as_bytes()).into())),
            rustix::fs::FileType::RegularFile => rustix::fs::openat(
                pfd,
                base,
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .ok()
            .and_then(|fd| {
                let mut f = std::fs::File::from(fd);
                let mut h = Sha1::new();
                io::copy(&mut f, &mut HashW(&mut h)).ok()?;
                Some(Checksum::Sha1(h.finalize().into()))
            }),
            _ => None,
        };
        Ok(Some(sum))
    }

    /// Puts one non-directory entry at `rel` (or `rel.apk-new`).
    pub fn place(
        &mut self,
        e: &StagedEntry,
        rel: &str,
        uid: u32,
        gid: u32,
        apk_new: bool,
    ) -> io::Result<()> {
        let (parent, base) = parent_of(rel);
        let target_name: std::borrow::Cow<'_, str> = if apk_new {
            format!("{base}.apk-new").into()
        } else {
            base.into()
        };
        let privileged = self.privileged;
        let staging_fd = self.staging.fd.as_fd();
        let new_file_owner = self.staging.new_file_owner;
        // Symlinks and fifos are made under a temporary name next to their final one.
        let staging = self.staging;
        let tmp_name = || format!(".apk.{}", staging.next_name());
        let sys = self.sys;
        let pfd = self.dir(parent)?;
        let io = errno_io;
        match e.kind {
            Kind::File | Kind::HardLink => {
                let staged = e.staged.as_deref().expect("files are staged");
                // A hard link shares its target's inode, already owned and moded; a file
                // created with the right owner keeps its mode and needs no chown.
                let owned = new_file_owner == (uid, gid);
                if privileged && e.kind == Kind::File && !owned {
                    sys.chown_at(staging_fd, staged.as_ref(), uid, gid)?;
                    if e.mode & 0o7000 != 0 {
                        // chown cleared setuid/setgid: apply the mode again.
                        rustix::fs::chmodat(
                            staging_fd,
                            staged,
                            Mode::from_raw_mode(e.mode & 0o7777),
                            AtFlags::empty(),
                        )
                        .map_err(io)?;
                    }
                }
                rustix::fs::renameat(staging_fd, staged, pfd, &*target_name).map_err(io)?;
            }
            Kind::Symlink => {
                let tmp_name = tmp_name();
                rustix::fs::symlinkat(e.link.as_str(), pfd, tmp_name.as_str()).map_err(io)?;
                if privileged {
                    let _ = sys.chown_at(pfd.as_fd(), tmp_name.as_ref(), uid, gid);
                }
                if let Err(er) = rustix::fs::renameat(pfd, tmp_name.as_str(), pfd, &*target_name) {
                    let _ = rustix::fs::unlinkat(pfd, tmp_name.as_str(), AtFlags::empty());
                    return Err(io(er));
                }
            }
            Kind::Fifo => {
                let tmp_name = tmp_name();
                sys.mkfifo_at(pfd.as_fd(), tmp_name.as_ref(), e.mode & 0o7777)?;
                let _ = rustix::fs::chmodat(
                    pfd,
                    tmp_name.as_str(),
                    Mode::from_raw_mode(e.mode & 0o7777),
                    AtFlags::empty(),
                );
                if privileged {
                    let _ = sys.chown_at(pfd.as_fd(), tmp_name.as_ref(), uid, gid);
                }
                rustix::fs::renameat(pfd, tmp_name.as_str(), pfd, &*target_name).map_err(io)?;
            }
            Kind::Dir | Kind::CharDevice | Kind::BlockDevice => unreachable!("not placed as files"),
        }
        Ok(())
    }

    /// Sets a directory's final owner and mode (end of the transaction), on the directory itself:
    /// a symlink now standing at `rel` is left alone.
    pub fn fix_dir(&mut self, rel: &str, uid: u32, gid: u32, mode: u32) {
        let (parent, base) = parent_of(rel);
        let privileged = self.privileged;
        let Ok(fd) = self
            .dir(parent)
            .and_then(|pfd| open_dir_nofollow(pfd, base))
        else {
            return;
        };
        if privileged {
            let _ = rustix::fs::fchown(
                &fd,
                Some(rustix::fs::Uid::from_raw(uid)),
                Some(rustix::fs::Gid::from_raw(gid)),
            );
        }
        let _ = rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode & 0o7777));
    }

    /// Removes a file (upgrades; best effort).
    pub fn remove(&mut self, rel: &str) {
        let (parent, base) = parent_of(rel);
        if let Ok(pfd) = self.dir(parent) {
            let _ = rustix::fs::unlinkat(pfd, base, AtFlags::empty());
        }
    }

    /// Removes directory `rel` if it is empty (errors ignored, as apk's `apk_db_dir_unref`).
    pub fn rmdir(&mut self, rel: &str) {
        if rel.is_empty() {
            return;
        }
        let (parent, base) = parent_of(rel);
        if let Ok(pfd) = self.dir(parent) {
            if rustix::fs::unlinkat(pfd, base, AtFlags::REMOVEDIR).is_ok() {
                self.dir_cache
                    .retain(|k, _| k != rel && !k.starts_with(&format!("{rel}/")));
            }
        }
    }
}

/// Directory `name` in `parent` itself, not what a symlink there points to, open for fchmod.
fn open_dir_nofollow(parent: &OwnedFd, name: &str) -> io::Result<OwnedFd> {
    rustix::fs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(errno_io)
}

struct HashW<'a>(&'a mut Sha1);

impl Write for HashW<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
