//! Paths inside a root directory, resolved as `chroot` would see them, through file descriptors.
//!
//! Everything that puts names into a root whose links it does not control (the apk and apkovl
//! extractors, apk's own db files, the boot's edits of the new root) or looks one up there
//! (`init=`) opens its paths here, so there is one confinement rule: symlinks are followed, and
//! absolute ones and `..` at the top resolve against the root. A stock `var/run -> /run` then
//! works as it does for apk in the booted system, and no name or link can reach outside.
//!
//! The kernel does this itself with `openat2(RESOLVE_IN_ROOT)` (Linux 5.6). Older kernels, or a
//! seccomp filter that refuses openat2, get a component walk with the same semantics. Callers
//! create, replace and chmod the last component relative to its parent's descriptor, never by a
//! path string, so nothing is followed that was not resolved here.

use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// Symlinks followed while resolving one path, as the kernel's limit (`MAXSYMLINKS`).
const MAX_SYMLINKS: usize = 40;

/// How paths are resolved: the same semantics either way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Resolve {
    /// `openat2(RESOLVE_IN_ROOT)`; the walk when the kernel does not have it.
    #[default]
    Kernel,
    /// Always the component walk (what kernels before 5.6 get; tests force it).
    Walk,
}

/// Whether symlinks may be followed at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Symlinks {
    /// Followed inside the root.
    InRoot,
    /// Any symlink on the way is an error (`ELOOP`): the path names itself physically.
    Refused,
}

/// Set once openat2 turned out to be missing, so the walk is used without asking again.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

fn errno_io(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e.raw_os_error())
}

/// A root directory, held open: every path is resolved inside it.
pub struct Root {
    fd: OwnedFd,
    path: PathBuf,
    resolve: Resolve,
}

impl Root {
    /// Opens `path` as a root.
    pub fn open(path: &Path, resolve: Resolve) -> io::Result<Root> {
        let fd = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(errno_io)?;
        Ok(Root {
            fd,
            path: path.to_path_buf(),
            resolve,
        })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Where the root was opened (for messages: what is opened inside is not resolved by it).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens `path` with `flags` (as `openat`; `NOFOLLOW` leaves a last symlink unfollowed).
    pub fn open_at(&self, path: &Path, flags: OFlags) -> io::Result<OwnedFd> {
        self.open_with(path, flags, Symlinks::InRoot)
    }

    /// [`Root::open_at`], choosing whether symlinks may be followed.
    pub fn open_with(&self, path: &Path, flags: OFlags, symlinks: Symlinks) -> io::Result<OwnedFd> {
        self.resolve_open(path, flags, Mode::empty(), symlinks)
    }

    /// The primitive: `openat` inside the root, `O_CREAT` (with `mode`) included; a file created
    /// through a symlink is created where the link leads inside the root.
    fn resolve_open(
        &self,
        path: &Path,
        flags: OFlags,
        mode: Mode,
        symlinks: Symlinks,
    ) -> io::Result<OwnedFd> {
        let flags = flags | OFlags::CLOEXEC;
        if self.resolve == Resolve::Kernel && !NO_OPENAT2.load(Ordering::Relaxed) {
            match open_kernel(self.fd(), path, flags, mode, symlinks) {
                Err(Errno::NOSYS) | Err(Errno::PERM) => NO_OPENAT2.store(true, Ordering::Relaxed),
                // A rename raced with `..`: the kernel asks for a retry; the walk is one.
                Err(Errno::AGAIN) => {}
                other => return other.map_err(errno_io),
            }
        }
        open_walk(self.fd(), path, flags, mode, symlinks)
    }

    /// A directory, for `*at` calls (`O_PATH`).
    pub fn dir(&self, path: &Path) -> io::Result<OwnedFd> {
        self.open_at(path, OFlags::PATH | OFlags::DIRECTORY)
    }

    /// The parent directory of `path` and its last component, which the caller creates, replaces
    /// or inspects relative to the parent, without following it. `path` must name something
    /// below the root (not the root itself, no `..` at the end).
    pub fn parent<'p>(&self, path: &'p Path) -> io::Result<(OwnedFd, &'p OsStr)> {
        let name = match path.components().next_back() {
            Some(Component::Normal(n)) => n,
            _ => return Err(io::Error::from(io::ErrorKind::InvalidInput)),
        };
        let parent = path.parent().unwrap_or(Path::new(""));
        Ok((self.dir(parent)?, name))
    }

    /// Creates directory `path` with exactly `mode` (the umask does not apply). Ok(false): it
    /// existed and is left as it is.
    pub fn mkdir(&self, path: &Path, mode: u32) -> io::Result<bool> {
        let (parent, name) = self.parent(path)?;
        match rustix::fs::mkdirat(&parent, name, Mode::from_raw_mode(mode)) {
            Ok(()) => {}
            Err(Errno::EXIST) => return Ok(false),
            Err(e) => return Err(errno_io(e)),
        }
        let fd = rustix::fs::openat(
            &parent,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(errno_io)?;
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode)).map_err(errno_io)?;
        Ok(true)
    }

    /// Opens file `path` for writing, creating it with `mode` if missing; a symlink in its place
    /// is an error, not followed. `flags` adds to `O_WRONLY | O_CREAT` (`EXCL`, `TRUNC`).
    pub fn create(&self, path: &Path, flags: OFlags, mode: u32) -> io::Result<std::fs::File> {
        let (parent, name) = self.parent(path)?;
        let flags = flags | OFlags::WRONLY | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&parent, name, flags, Mode::from_raw_mode(mode))
            .map_err(errno_io)?;
        Ok(std::fs::File::from(fd))
    }

    /// Replaces file `path` with `data` through `<name>.new` and a rename in the same directory,
    /// so a reader sees the old or the new file, never a part.
    pub fn replace_file(&self, path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
        let (parent, name) = self.parent(path)?;
        let mut tmp = name.to_owned();
        tmp.push(".new");
        let _ = rustix::fs::unlinkat(&parent, tmp.as_os_str(), rustix::fs::AtFlags::empty());
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW;
        let fd = rustix::fs::openat(
            &parent,
            tmp.as_os_str(),
            flags | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode),
        )
        .map_err(errno_io)?;
        std::io::Write::write_all(&mut std::fs::File::from(fd), data)?;
        rustix::fs::renameat(&parent, tmp.as_os_str(), &parent, name).map_err(errno_io)
    }

    /// Whether `path` exists; `follow` decides for a symlink as the last component.
    pub fn exists(&self, path: &Path, follow: bool) -> bool {
        let flags = if follow {
            OFlags::PATH
        } else {
            OFlags::PATH | OFlags::NOFOLLOW
        };
        self.open_at(path, flags).is_ok()
    }

    /// Reads file `path`.
    pub fn read_to_string(&self, path: &Path) -> io::Result<String> {
        let fd = self.open_at(path, OFlags::RDONLY)?;
        io::read_to_string(std::fs::File::from(fd))
    }

    /// Opens file `path` for writing as `fs::write` would under chroot: an existing file (or a
    /// link to one inside the root) is truncated, a missing one is created with `mode`.
    pub fn open_write(&self, path: &Path, mode: u32) -> io::Result<std::fs::File> {
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC;
        self.resolve_open(path, flags, Mode::from_raw_mode(mode), Symlinks::InRoot)
            .map(std::fs::File::from)
    }

    /// [`Root::open_write`], then writes `data`.
    pub fn write(&self, path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
        std::io::Write::write_all(&mut self.open_write(path, mode)?, data)
    }

    /// Copies host file `src` to `path` with its mode, as `fs::copy` under chroot.
    pub fn copy_in(&self, src: &Path, path: &Path) -> io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let data = std::fs::read(src)?;
        let mode = std::fs::metadata(src)?.permissions().mode() & 0o7777;
        let mut f = self.open_write(path, mode)?;
        std::io::Write::write_all(&mut f, &data)?;
        rustix::fs::fchmod(&f, Mode::from_raw_mode(mode)).map_err(errno_io)
    }

    /// Puts a symlink to `target` at `path`, replacing a file or link there.
    pub fn symlink(&self, target: &Path, path: &Path) -> io::Result<()> {
        let (parent, name) = self.parent(path)?;
        let _ = rustix::fs::unlinkat(&parent, name, rustix::fs::AtFlags::empty());
        rustix::fs::symlinkat(target, &parent, name).map_err(errno_io)
    }

    /// Removes file `path` (the last component itself, not what it points to).
    pub fn remove_file(&self, path: &Path) -> io::Result<()> {
        let (parent, name) = self.parent(path)?;
        rustix::fs::unlinkat(&parent, name, rustix::fs::AtFlags::empty()).map_err(errno_io)
    }

    /// Opens directory `path`, creating what is missing with `mode` (as `mkdir -p`, existing
    /// symlinks followed inside the root). Each created name is pushed on `created`.
    pub fn create_dirs(
        &self,
        path: &Path,
        mode: u32,
        created: &mut Vec<OsString>,
    ) -> io::Result<OwnedFd> {
        match self.dir(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            other => return other,
        }
        let (parent, name) = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => {
                (self.create_dirs(p, mode, created)?, path.file_name())
            }
            _ => (self.dir(Path::new(""))?, path.file_name()),
        };
        let name = name.ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        match rustix::fs::mkdirat(&parent, name, Mode::from_raw_mode(mode)) {
            Ok(()) => created.push(path.as_os_str().to_owned()),
            Err(Errno::EXIST) => {}
            Err(e) => return Err(errno_io(e)),
        }
        self.dir(path)
    }
}

fn open_kernel(
    root: BorrowedFd<'_>,
    path: &Path,
    flags: OFlags,
    mode: Mode,
    symlinks: Symlinks,
) -> Result<OwnedFd, Errno> {
    let mut how = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
    if symlinks == Symlinks::Refused {
        how |= ResolveFlags::NO_SYMLINKS;
    }
    let path = if path.as_os_str().is_empty() {
        Path::new(".")
    } else {
        path
    };
    rustix::fs::openat2(root, path, flags, mode, how)
}

fn push_components(pending: &mut Vec<OsString>, path: &Path) {
    let parts: Vec<OsString> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    pending.extend(parts.into_iter().rev());
}

/// `RESOLVE_IN_ROOT` by hand: one component at a time, each opened without following and
/// inspected on its descriptor; a symlink's target is spliced into the remaining path (from the
/// root when absolute); `..` pops a level and stops at the root.
fn open_walk(
    root: BorrowedFd<'_>,
    path: &Path,
    flags: OFlags,
    mode: Mode,
    symlinks: Symlinks,
) -> io::Result<OwnedFd> {
    let follow_last = !flags.contains(OFlags::NOFOLLOW);
    let mut pending = Vec::new();
    push_components(&mut pending, path);
    let mut stack: Vec<OwnedFd> = Vec::new();
    let mut followed = 0;
    while let Some(name) = pending.pop() {
        if name == ".." {
            stack.pop();
            continue;
        }
        let cur = stack.last().map_or(root, |fd| fd.as_fd());
        let last = pending.is_empty();
        let found = rustix::fs::openat(
            cur,
            name.as_os_str(),
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        );
        let fd = match found {
            Err(Errno::NOENT) if last && flags.contains(OFlags::CREATE) => {
                let name = name.as_os_str();
                return rustix::fs::openat(cur, name, flags | OFlags::NOFOLLOW, mode)
                    .map_err(errno_io);
            }
            other => other.map_err(errno_io)?,
        };
        let kind = FileType::from_raw_mode(rustix::fs::fstat(&fd).map_err(errno_io)?.st_mode);
        if kind == FileType::Symlink && (!last || follow_last) {
            followed += 1;
            if symlinks == Symlinks::Refused || followed > MAX_SYMLINKS {
                return Err(errno_io(Errno::LOOP));
            }
            let target = rustix::fs::readlinkat(&fd, "", Vec::new()).map_err(errno_io)?;
            let target = Path::new(OsStr::from_bytes(target.as_bytes()));
            if target.is_absolute() {
                stack.clear();
            }
            push_components(&mut pending, target);
            continue;
        }
        if last {
            // Reopen with the caller's flags; NOFOLLOW keeps a swapped-in symlink from counting.
            return rustix::fs::openat(cur, name.as_os_str(), flags | OFlags::NOFOLLOW, mode)
                .map_err(errno_io);
        }
        if kind != FileType::Directory {
            return Err(errno_io(Errno::NOTDIR));
        }
        stack.push(fd);
    }
    // Nothing left to open by name (empty path, a final `..`, a link to `/`): the current level.
    let cur = stack.last().map_or(root, |fd| fd.as_fd());
    rustix::fs::openat(cur, ".", flags, Mode::empty()).map_err(errno_io)
}

#[cfg(test)]
mod tests;
