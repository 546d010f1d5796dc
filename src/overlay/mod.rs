//! apkovl: the `lbu` backup (`<host>.apkovl.tar.gz`) that turns a stock diskless system into
//! this machine. Reading it safely is the point of this module.
//!
//! Alpine unpacks it with `tar -C /sysroot -zxvf`. ramboot keeps the useful parts of that — owners
//! and modes from the archive, symlinks in the root followed (so `bin/foo` lands in `usr/bin/foo`
//! on a usr-merged root), the list of extracted names becomes apk's overlay list — and adds:
//! - nothing lands outside the root: symlinks are resolved inside the root, `..` cannot climb;
//! - the whole archive is checked before anything is written (gzip CRC, tar structure, every
//!   name), so a truncated or corrupt apkovl changes nothing and the boot goes on with a clean
//!   default system instead of a half-applied one; an I/O error during extraction rolls back;
//! - device nodes only under `dev/`, and an archive with hostile names is refused whole.

use crate::fsutil::resolve_beneath;
use crate::quote::quoted;
use crate::sys::NodeKind;
use std::fmt;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Component, Path, PathBuf};

#[derive(Debug)]
pub enum OverlayError {
    Open {
        path: PathBuf,
        source: io::Error,
    },
    /// Gzip or tar damage: truncated, bad CRC, bad header.
    Corrupt {
        path: PathBuf,
        reason: String,
    },
    /// An entry that would escape the root or is not allowed.
    Hostile {
        entry: String,
        reason: &'static str,
    },
    /// An `.apkovl.tar.gz.<cipher>` file: needs a password and openssl-compatible decryption.
    Encrypted {
        cipher: String,
    },
    Write {
        path: PathBuf,
        source: io::Error,
    },
}

impl fmt::Display for OverlayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Open { path, source } => {
                write!(f, "cannot open apkovl {}: {source}", path.display())
            }
            Self::Corrupt { path, reason } => {
                write!(f, "apkovl {} is corrupt: {reason}", path.display())
            }
            Self::Hostile { entry, reason } => {
                write!(f, "apkovl entry {} refused: {reason}", quoted(entry))
            }
            Self::Encrypted { cipher } => {
                write!(f, "encrypted apkovl ({cipher}) is not supported by ramboot; use an unencrypted apkovl")
            }
            Self::Write { path, source } => write!(f, "cannot write {}: {source}", path.display()),
        }
    }
}

impl std::error::Error for OverlayError {}

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

fn cipher_of(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let suffix = name.rsplit('.').next()?;
    (suffix != "gz" && name.contains(".apkovl.tar.gz.")).then(|| suffix.to_string())
}

fn open(path: &Path) -> Result<tar::Archive<flate2::read::GzDecoder<fs::File>>, OverlayError> {
    if let Some(cipher) = cipher_of(path) {
        return Err(OverlayError::Encrypted { cipher });
    }
    let f = fs::File::open(path).map_err(|source| OverlayError::Open {
        path: path.into(),
        source,
    })?;
    Ok(tar::Archive::new(flate2::read::GzDecoder::new(f)))
}

/// Reads the whole archive without writing anything: every header, every byte, the gzip trailer.
pub fn check(path: &Path) -> Result<usize, OverlayError> {
    let corrupt = |e: io::Error| OverlayError::Corrupt {
        path: path.into(),
        reason: e.to_string(),
    };
    let mut archive = open(path)?;
    let mut count = 0;
    let mut sink = vec![0u8; 64 * 1024];
    for entry in archive.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let clean = clean_name(&name)?;
        let kind = entry.header().entry_type();
        if (kind.is_character_special() || kind.is_block_special()) && !clean.starts_with("dev/") {
            return Err(OverlayError::Hostile {
                entry: name,
                reason: "device node outside /dev",
            });
        }
        if kind.is_hard_link() {
            let target = entry
                .link_name_bytes()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            clean_name(&target)?;
        }
        while entry.read(&mut sink).map_err(corrupt)? > 0 {}
        count += 1;
    }
    // The tar end marker may come before the end of the gzip stream: drain it so the CRC is checked.
    let mut inner = archive.into_inner();
    while inner.read(&mut sink).map_err(corrupt)? > 0 {}
    if count == 0 {
        return Err(OverlayError::Corrupt {
            path: path.into(),
            reason: "no entries".into(),
        });
    }
    Ok(count)
}

/// Checks, then extracts `path` into `root`. On an error nothing of the archive stays in `root`.
pub fn extract(path: &Path, root: &Path, opts: Options<'_>) -> Result<Extracted, OverlayError> {
    check(path)?;
    let mut created: Vec<PathBuf> = Vec::new();
    let result = extract_checked(path, root, opts, &mut created);
    if result.is_err() {
        for p in created.iter().rev() {
            let _ = fs::remove_file(p).or_else(|_| fs::remove_dir(p));
        }
    }
    result
}

fn extract_checked(
    path: &Path,
    root: &Path,
    opts: Options<'_>,
    created: &mut Vec<PathBuf>,
) -> Result<Extracted, OverlayError> {
    let corrupt = |e: io::Error| OverlayError::Corrupt {
        path: path.into(),
        reason: e.to_string(),
    };
    let mut out = Extracted::default();
    let mut archive = open(path)?;
    let mut dir_times: Vec<(PathBuf, u64)> = Vec::new();
    for entry in archive.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let name = clean_name(&raw)?;
        if name.is_empty() {
            continue;
        }
        let header = entry.header().clone();
        let kind = header.entry_type();
        let mode = header.mode().unwrap_or(0o644) & 0o7777;
        let mtime = header.mtime().unwrap_or(0);
        let werr = |p: &Path| {
            let p = p.to_path_buf();
            move |source: io::Error| OverlayError::Write { path: p, source }
        };
        let dest =
            resolve_beneath(root, Path::new(&name), false).map_err(werr(&root.join(&name)))?;
        if let Some(parent) = dest.parent() {
            create_dirs(parent, root, created).map_err(werr(parent))?;
        }
        let existed = fs::symlink_metadata(&dest).is_ok();
        if kind.is_dir() {
            if !dest.is_dir() {
                if existed {
                    fs::remove_file(&dest).map_err(werr(&dest))?;
                }
                fs::create_dir(&dest).map_err(werr(&dest))?;
                created.push(dest.clone());
            }
            fs::set_permissions(&dest, fs::Permissions::from_mode(mode)).map_err(werr(&dest))?;
            dir_times.push((dest.clone(), mtime));
            out.names.push(format!("{name}/"));
        } else {
            if existed {
                if dest.is_dir()
                    && !fs::symlink_metadata(&dest)
                        .map(|m| m.file_type().is_symlink())
                        .unwrap_or(false)
                {
                    out.warnings
                        .push(format!("{name}: a directory is in the way; entry skipped"));
                    continue;
                }
                fs::remove_file(&dest).map_err(werr(&dest))?;
            }
            if kind.is_symlink() {
                let target = entry
                    .link_name()
                    .map_err(corrupt)?
                    .unwrap_or_default()
                    .into_owned();
                symlink(&target, &dest).map_err(werr(&dest))?;
            } else if kind.is_hard_link() {
                let target = entry
                    .link_name()
                    .map_err(corrupt)?
                    .unwrap_or_default()
                    .into_owned();
                let src = resolve_beneath(root, &target, true).map_err(werr(&dest))?;
                fs::hard_link(&src, &dest).map_err(werr(&dest))?;
            } else if kind.is_file() || kind.is_contiguous() {
                let mut f = fs::File::create(&dest).map_err(werr(&dest))?;
                io::copy(&mut entry, &mut f).map_err(werr(&dest))?;
                fs::set_permissions(&dest, fs::Permissions::from_mode(mode))
                    .map_err(werr(&dest))?;
            } else if kind.is_fifo() {
                let made = rustix::fs::mknodat(
                    rustix::fs::CWD,
                    &dest,
                    rustix::fs::FileType::Fifo,
                    rustix::fs::Mode::from_raw_mode(mode),
                    0,
                );
                if let Err(e) = made {
                    out.warnings
                        .push(format!("{name}: cannot create the fifo: {e}"));
                    continue;
                }
            } else if kind.is_character_special() || kind.is_block_special() {
                let node = if kind.is_character_special() {
                    NodeKind::Char
                } else {
                    NodeKind::Block
                };
                let major = header.device_major().ok().flatten().unwrap_or(0);
                let minor = header.device_minor().ok().flatten().unwrap_or(0);
                let rel = dest.strip_prefix(root).unwrap_or(&dest);
                let made = match opts.make_node {
                    Some(make) => make(rel, node, mode, major, minor),
                    None => Err(io::Error::other("device nodes are not created here")),
                };
                if let Err(e) = made {
                    out.warnings
                        .push(format!("{name}: cannot create the device node: {e}"));
                    continue;
                }
            } else {
                out.warnings
                    .push(format!("{name}: unsupported entry type, skipped"));
                continue;
            }
            if !existed {
                created.push(dest.clone());
            }
            out.names.push(name.clone());
        }
        if opts.chown {
            let uid = header.uid().unwrap_or(0) as u32;
            let gid = header.gid().unwrap_or(0) as u32;
            let _ = rustix::fs::chownat(
                rustix::fs::CWD,
                &dest,
                Some(rustix::fs::Uid::from_raw(uid)),
                Some(rustix::fs::Gid::from_raw(gid)),
                rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
            );
            if !kind.is_symlink() && mode & 0o6000 != 0 {
                // chown clears setuid/setgid: put them back.
                let _ = fs::set_permissions(&dest, fs::Permissions::from_mode(mode));
            }
        }
        if !kind.is_dir() && !kind.is_symlink() {
            set_mtime(&dest, mtime);
        }
    }
    for (dir, mtime) in dir_times.iter().rev() {
        set_mtime(dir, *mtime);
    }
    // Alpine: `chmod 700 /sysroot/root`.
    let root_home = root.join("root");
    if root_home.is_dir() {
        let _ = fs::set_permissions(&root_home, fs::Permissions::from_mode(0o700));
    }
    Ok(out)
}

fn create_dirs(dir: &Path, root: &Path, created: &mut Vec<PathBuf>) -> io::Result<()> {
    if dir.is_dir() || dir == root {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dirs(parent, root, created)?;
    }
    fs::create_dir(dir)?;
    created.push(dir.to_path_buf());
    Ok(())
}

fn set_mtime(path: &Path, mtime: u64) {
    let t = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: mtime as i64,
            tv_nsec: 0,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: mtime as i64,
            tv_nsec: 0,
        },
    };
    let _ = rustix::fs::utimensat(
        rustix::fs::CWD,
        path,
        &t,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    );
}

#[cfg(test)]
mod tests;
