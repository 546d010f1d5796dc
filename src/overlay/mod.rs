//! apkovl: the `lbu` backup (`<host>.apkovl.tar.gz`) that turns a stock diskless system into
//! this machine. Reading it safely is the point of this module.
//!
//! Alpine unpacks it with `tar -C /sysroot -zxvf`. ramboot keeps the useful parts of that — owners
//! and modes from the archive, symlinks in the root followed (so `bin/foo` lands in `usr/bin/foo`
//! on a usr-merged root), the list of extracted names becomes apk's overlay list — and adds:
//! - nothing lands outside the root: every name is resolved as chroot would ([`crate::fsutil`]),
//!   so symlinks, absolute ones too, are followed inside the root and `..` cannot climb;
//! - modes and owners are set on descriptors opened without following the last component: a
//!   directory entry whose name is a symlink in the root keeps the link and leaves its target
//!   alone (so does Alpine's `chmod 700 root`);
//! - the whole archive is checked before anything is written (gzip CRC, tar structure, every
//!   name), so a truncated or corrupt apkovl changes nothing and the boot goes on with a clean
//!   default system instead of a half-applied one; an I/O error during extraction rolls back;
//! - device nodes only under `dev/`, and an archive with hostile names is refused whole.
//!
//! An encrypted apkovl (`.apkovl.tar.gz.<cipher>`, [`crypt`]) is read the same way through a
//! decrypting reader, once its key is [`crypt::Unlocked`]: the check and the extraction each
//! decrypt the file as they read it.
//!
//! The archive is read with the apk component's tar reader ([`crate::apk::tar`]), the one
//! that reads packages, in its tar-compatible mode (GNU long link names, old-style regular
//! files: tar reads them, apk skips them). A name that is not UTF-8 makes the archive
//! unreadable (that reader is stricter than tar there).

pub mod crypt;

use crate::apk::gz::GzMembers;
use crate::apk::tar::{Entry, Event, Kind, TarReader};
use crate::fsutil::{Resolve, Root, Symlinks};
use crate::quote::quoted;
use crate::sys::NodeKind;
use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, Timespec, Timestamps, Uid};
use rustix::io::Errno;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

/// Errors of the apkovl extraction.
#[derive(Debug, thiserror::Error)]
pub enum OverlayError {
    #[error("cannot open apkovl {}: {source}", path.display())]
    Open { path: PathBuf, source: io::Error },
    /// Gzip or tar damage: truncated, bad CRC, bad header.
    #[error("apkovl {} is corrupt: {source}", path.display())]
    Corrupt { path: PathBuf, source: io::Error },
    /// An entry that would escape the root or is not allowed.
    #[error("apkovl entry {} refused: {reason}", quoted(entry))]
    Hostile { entry: String, reason: &'static str },
    /// An `.apkovl.tar.gz.<cipher>` file read without its key.
    #[error("apkovl {} is encrypted ({cipher}) and no key was given", path.display())]
    Encrypted { path: PathBuf, cipher: String },
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
}

/// What extraction did.
#[derive(Debug, Default)]
pub struct Extracted {
    /// Names as `tar -v` prints them (`etc/`, `etc/hostname`): apk's overlay list.
    pub names: Vec<String>,
    pub warnings: Vec<String>,
}

/// Creates a device node at a path relative to the root: the boot passes one that goes through
/// the system boundary ([`crate::sys::Sys::mknod`]).
pub type MakeNode<'a> = &'a dyn Fn(&Path, NodeKind, u32, u32, u32) -> io::Result<()>;

#[derive(Clone, Copy, Default)]
pub struct Options<'a> {
    /// Apply the archive's numeric owners (only possible as root).
    pub chown: bool,
    /// How to create device nodes (under `dev/` only); `None` skips them with a warning.
    pub make_node: Option<MakeNode<'a>>,
    /// How names are resolved in the root (tests force the walk).
    pub resolve: Resolve,
    /// The system boundary for ownership and fifos (`None`: the real system).
    pub sys: Option<&'a dyn crate::sys::Sys>,
    /// The key of an encrypted apkovl.
    pub unlocked: Option<&'a crypt::Unlocked>,
}

/// A checked entry name: relative, no `..`, leading `/` and `./` removed as tar does.
fn clean_name(raw: &str) -> Result<String, OverlayError> {
    let hostile = |reason| OverlayError::Hostile {
        entry: raw.to_string(),
        reason,
    };
    let mut parts = Vec::new();
    for c in Path::new(raw).components() {
        match c {
            Component::Normal(n) => {
                parts.push(n.to_str().ok_or_else(|| hostile("name is not UTF-8"))?)
            }
            Component::ParentDir => return Err(hostile("`..` in the path")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    Ok(parts.join("/"))
}

/// The apkovl file, decrypted when it is encrypted. Boxed: the gzip and tar readers are the
/// very instances the package installer uses (see `install::stage`), not a second copy of them
/// in the init.
type Source = Box<dyn io::Read>;

/// The apkovl's entries, in order. The archive ends at its end-of-archive records or at the
/// end of the stream; concatenated gzip members are read in sequence.
struct Archive {
    tar: TarReader<Source>,
    path: PathBuf,
}

impl Archive {
    fn open(path: &Path, unlocked: Option<&crypt::Unlocked>) -> Result<Archive, OverlayError> {
        let open_error = |source| OverlayError::Open {
            path: path.into(),
            source,
        };
        let source = match (crypt::suffix_of(path), unlocked) {
            (_, Some(key)) => Box::new(key.reader(path).map_err(open_error)?) as Source,
            (Some(cipher), None) => {
                return Err(OverlayError::Encrypted {
                    path: path.into(),
                    cipher: cipher.to_string(),
                })
            }
            _ => Box::new(fs::File::open(path).map_err(open_error)?),
        };
        let gz = GzMembers::new(source).map_err(|source| OverlayError::Corrupt {
            path: path.into(),
            source,
        })?;
        Ok(Archive {
            tar: TarReader::new(gz).tar_compatible(),
            path: path.into(),
        })
    }

    fn corrupt(&self, source: io::Error) -> OverlayError {
        OverlayError::Corrupt {
            path: self.path.clone(),
            source,
        }
    }

    /// The next entry (the rest of the previous one is read through and checked); None at the
    /// end. The gzip member that holds the end of the archive is read to its end, so its CRC
    /// is checked.
    fn next(&mut self) -> Result<Option<Entry>, OverlayError> {
        loop {
            match self.tar.next_event().map_err(|e| self.corrupt(e))? {
                Event::Entry(e) => return Ok(Some(e)),
                Event::MemberEnd => {
                    if self.tar.archive_ended() {
                        return Ok(None);
                    }
                    if !self.tar.next_member().map_err(|e| self.corrupt(e))? {
                        return Ok(None);
                    }
                }
            }
        }
    }
}

/// Reads the whole archive without writing anything: every header, every byte, the gzip trailer.
pub fn check(path: &Path) -> Result<usize, OverlayError> {
    check_unlocked(path, None)
}

/// [`check`] of an apkovl that may be encrypted, with its key.
pub fn check_unlocked(
    path: &Path,
    unlocked: Option<&crypt::Unlocked>,
) -> Result<usize, OverlayError> {
    let mut archive = Archive::open(path, unlocked)?;
    let mut count = 0;
    while let Some(entry) = archive.next()? {
        let clean = clean_name(&entry.name)?;
        let device = matches!(entry.kind, Kind::CharDevice | Kind::BlockDevice);
        if device && !clean.starts_with("dev/") {
            return Err(OverlayError::Hostile {
                entry: entry.name,
                reason: "device node outside /dev",
            });
        }
        if entry.kind == Kind::HardLink {
            clean_name(&entry.link)?;
        }
        count += 1;
    }
    if count == 0 {
        return Err(archive.corrupt(io::Error::new(io::ErrorKind::InvalidData, "no entries")));
    }
    Ok(count)
}

/// Checks, then extracts `path` into `root`. On an error nothing of the archive stays in `root`.
pub fn extract(path: &Path, root: &Path, opts: Options<'_>) -> Result<Extracted, OverlayError> {
    check_unlocked(path, opts.unlocked)?;
    let dir = Root::open(root, opts.resolve).map_err(|source| OverlayError::Write {
        path: root.into(),
        source,
    })?;
    let mut created: Vec<OsString> = Vec::new();
    let result = Extractor {
        root: &dir,
        root_path: root,
        opts,
        created: &mut created,
    }
    .run(path);
    if result.is_err() {
        for name in created.iter().rev() {
            if let Ok((parent, base)) = dir.parent(Path::new(name)) {
                let _ = rustix::fs::unlinkat(&parent, base, AtFlags::empty())
                    .or_else(|_| rustix::fs::unlinkat(&parent, base, AtFlags::REMOVEDIR));
            }
        }
    }
    result
}

/// One extraction: every name goes through [`Root`]; the last component is created, replaced,
/// chmodded and chowned relative to its parent's descriptor, never through a symlink.
struct Extractor<'a, 'o> {
    root: &'a Root,
    root_path: &'a Path,
    opts: Options<'o>,
    /// Names created (for the rollback), in order.
    created: &'a mut Vec<OsString>,
}

impl Extractor<'_, '_> {
    fn sys(&self) -> &dyn crate::sys::Sys {
        self.opts.sys.unwrap_or(&crate::sys::RealSys)
    }
}

fn errno_io(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e.raw_os_error())
}

fn lstat_kind(dir: &OwnedFd, base: &OsStr) -> Option<FileType> {
    rustix::fs::statat(dir, base, AtFlags::SYMLINK_NOFOLLOW)
        .ok()
        .map(|st| FileType::from_raw_mode(st.st_mode))
}

fn timestamps(mtime: u64) -> Timestamps {
    let t = Timespec {
        tv_sec: mtime as i64,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

impl Extractor<'_, '_> {
    fn run(&mut self, path: &Path) -> Result<Extracted, OverlayError> {
        let mut out = Extracted::default();
        let mut archive = Archive::open(path, self.opts.unlocked)?;
        let mut dir_times: Vec<(String, u64)> = Vec::new();
        while let Some(entry) = archive.next()? {
            let name = clean_name(&entry.name)?;
            if name.is_empty() {
                continue;
            }
            let werr = |source: io::Error| OverlayError::Write {
                path: self.root_path.join(&name),
                source,
            };
            let rel = Path::new(&name);
            let parent = rel.parent().unwrap_or(Path::new(""));
            let dir = self
                .root
                .create_dirs(parent, 0o755, self.created)
                .map_err(werr)?;
            if entry.kind == Kind::Dir {
                if self.directory(&dir, rel, &entry).map_err(werr)? {
                    dir_times.push((name.clone(), entry.mtime));
                }
                out.names.push(format!("{name}/"));
                continue;
            }
            match self.non_directory(&dir, rel, &entry, &mut archive)? {
                Ok(()) => out.names.push(name),
                Err(skipped) => out.warnings.push(format!("{name}: {skipped}")),
            }
        }
        for (name, mtime) in dir_times.iter().rev() {
            if let Ok((dir, base)) = self.root.parent(Path::new(name)) {
                let t = timestamps(*mtime);
                let _ = rustix::fs::utimensat(&dir, base, &t, AtFlags::SYMLINK_NOFOLLOW);
            }
        }
        // Alpine: `chmod 700 /sysroot/root`; a symlink there is left alone.
        if let Ok(home) = rustix::fs::openat(
            self.root.fd(),
            "root",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            let _ = rustix::fs::fchmod(&home, Mode::from_raw_mode(0o700));
        }
        Ok(out)
    }

    /// Any entry but a directory, at `rel` in `dir`. Ok(Err(why)): skipped with a warning.
    fn non_directory(
        &mut self,
        dir: &OwnedFd,
        rel: &Path,
        entry: &Entry,
        archive: &mut Archive,
    ) -> Result<Result<(), String>, OverlayError> {
        let werr = |source: io::Error| OverlayError::Write {
            path: self.root_path.join(rel),
            source,
        };
        let errno = |e: Errno| werr(errno_io(e));
        let base = rel.file_name().expect("a cleaned, non-empty name");
        let existing = lstat_kind(dir, base);
        if existing == Some(FileType::Directory) {
            return Ok(Err("a directory is in the way; entry skipped".into()));
        }
        if existing.is_some() {
            rustix::fs::unlinkat(dir, base, AtFlags::empty()).map_err(errno)?;
        }
        let link = entry.link.as_str();
        let kind = entry.kind;
        let mode = entry.mode & 0o7777;
        let is_file = kind == Kind::File;
        if kind == Kind::Symlink {
            rustix::fs::symlinkat(link, dir, base).map_err(errno)?;
        } else if kind == Kind::HardLink {
            let target = clean_name(link)?;
            let (tdir, tbase) = self.root.parent(Path::new(&target)).map_err(werr)?;
            rustix::fs::linkat(&tdir, tbase, dir, base, AtFlags::empty()).map_err(errno)?;
        } else if is_file {
            let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW;
            let fd = rustix::fs::openat(
                dir,
                base,
                flags | OFlags::CLOEXEC,
                Mode::from_raw_mode(mode),
            )
            .map_err(errno)?;
            if existing.is_none() {
                self.created.push(rel.as_os_str().to_owned());
            }
            let mut file = fs::File::from(fd);
            io::copy(&mut archive.tar.content(), &mut file).map_err(|e| {
                if e.kind() == io::ErrorKind::InvalidData {
                    archive.corrupt(e)
                } else {
                    werr(e)
                }
            })?;
            self.owner_and_mode(&file, mode, entry).map_err(werr)?;
        } else if kind == Kind::Fifo {
            let made = self.sys().mkfifo_at(dir.as_fd(), base, mode);
            if let Err(e) = made {
                return Ok(Err(format!("cannot create the fifo: {e}")));
            }
        } else if matches!(kind, Kind::CharDevice | Kind::BlockDevice) {
            if let Err(e) = self.device(rel, entry) {
                return Ok(Err(format!("cannot create the device node: {e}")));
            }
        }
        if existing.is_none() && !is_file {
            self.created.push(rel.as_os_str().to_owned());
        }
        if self.opts.chown && !is_file {
            // The entry itself, never what a symlink points to.
            let _ = self.sys().chown_at(dir.as_fd(), base, entry.uid, entry.gid);
        }
        if kind != Kind::Symlink {
            let t = timestamps(entry.mtime);
            let _ = rustix::fs::utimensat(dir, base, &t, AtFlags::SYMLINK_NOFOLLOW);
        }
        Ok(Ok(()))
    }

    /// A directory entry. A symlink to a directory (inside the root) stays, and neither mode nor
    /// owner go through it: returns false then. Anything else in the way is replaced.
    fn directory(&mut self, dir: &OwnedFd, rel: &Path, entry: &Entry) -> io::Result<bool> {
        let base = rel.file_name().expect("a cleaned, non-empty name");
        let mode = entry.mode & 0o7777;
        match lstat_kind(dir, base) {
            Some(FileType::Directory) => {}
            Some(FileType::Symlink) if self.root.dir(rel).is_ok() => return Ok(false),
            existing => {
                if existing.is_some() {
                    rustix::fs::unlinkat(dir, base, AtFlags::empty()).map_err(errno_io)?;
                }
                rustix::fs::mkdirat(dir, base, Mode::from_raw_mode(mode)).map_err(errno_io)?;
                self.created.push(rel.as_os_str().to_owned());
            }
        }
        let fd = rustix::fs::openat(
            dir,
            base,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(errno_io)?;
        self.owner_and_mode(&fd, mode, entry)?;
        Ok(true)
    }

    /// `mode`, and the archive's owner when asked, on an open file or directory.
    fn owner_and_mode(&self, fd: &impl AsFd, mode: u32, entry: &Entry) -> io::Result<()> {
        let mode = Mode::from_raw_mode(mode);
        rustix::fs::fchmod(fd, mode).map_err(errno_io)?;
        if self.opts.chown {
            let uid = Uid::from_raw(entry.uid);
            let gid = Gid::from_raw(entry.gid);
            if rustix::fs::fchown(fd, Some(uid), Some(gid)).is_ok() && mode.bits() & 0o6000 != 0 {
                // chown clears setuid/setgid: put them back.
                rustix::fs::fchmod(fd, mode).map_err(errno_io)?;
            }
        }
        Ok(())
    }

    /// A device node, made by the caller's boundary from a path: only when no symlink is on the
    /// way, so the path it is given is the one inside the root.
    fn device(&self, rel: &Path, entry: &Entry) -> io::Result<()> {
        let Some(make) = self.opts.make_node else {
            return Err(io::Error::other("device nodes are not created here"));
        };
        let parent = rel.parent().unwrap_or(Path::new(""));
        self.root
            .open_with(parent, OFlags::PATH | OFlags::DIRECTORY, Symlinks::Refused)
            .map_err(|_| io::Error::other("a symlink is on its path"))?;
        let node = if entry.kind == Kind::CharDevice {
            NodeKind::Char
        } else {
            NodeKind::Block
        };
        make(
            rel,
            node,
            entry.mode & 0o7777,
            entry.dev_major,
            entry.dev_minor,
        )
    }
}

#[cfg(test)]
mod tests;
