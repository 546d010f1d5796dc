//! Mounting a probed filesystem read-only, the way nlplug-findfs does (`/media/<dev>`, `MS_RDONLY`,
//! no options), but with the filesystem's module loaded first instead of relying on the kernel's
//! `request_module` round trip through `/sbin/modprobe`.

use super::block::DeviceInfo;
use super::modules::{LoadReport, ModuleLoader, Request};
use super::probe::FsType;
use crate::sys::{MountFlags, Sys};
use std::io;
use std::path::{Path, PathBuf};

/// Errors of the mount step.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// Probing found no filesystem on the device.
    #[error("no known filesystem on /dev/{device}")]
    NoFilesystem { device: String },
    /// The mount point could not be created.
    #[error("cannot create mount point {}: {source}", path.display())]
    Mkdir { path: PathBuf, source: io::Error },
    /// `mount(2)` failed.
    #[error("cannot mount /dev/{device} ({fstype}) on {}: {source}", target.display())]
    Mount {
        device: String,
        fstype: FsType,
        target: PathBuf,
        source: io::Error,
    },
}

/// A filesystem mounted by [`mount_media`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mounted {
    pub device: String,
    /// Guest path, e.g. `/media/vda1`.
    pub mountpoint: PathBuf,
    pub fstype: FsType,
    /// It was mounted already (by someone else, or an earlier pass); we did not mount it.
    pub already: bool,
}

/// Character sets vfat needs with the kernel's default mount options (codepage 437 and the
/// configured iocharset: `ascii` on Debian, `iso8859-1` upstream, `utf8` elsewhere). The first
/// two are tried up front, the others only when a mount fails with `EINVAL`.
const VFAT_NLS: [&str; 2] = ["nls_cp437", "nls_ascii"];
const VFAT_NLS_FALLBACK: [&str; 2] = ["nls_utf8", "nls_iso8859_1"];

/// Loads the module behind `fs-<type>` (and vfat's character sets). Names that resolve to nothing
/// are skipped silently: the filesystem may be built in without a `modules.builtin.modinfo`.
pub fn load_fs_modules(loader: &ModuleLoader<'_>, fstype: FsType, extra: &[&str]) -> LoadReport {
    let alias = format!("fs-{fstype}");
    let mut names: Vec<String> = vec![alias];
    if fstype == FsType::Vfat {
        names.extend(VFAT_NLS.iter().map(|s| s.to_string()));
    }
    names.extend(extra.iter().map(|s| s.to_string()));
    names.retain(|n| !loader.db().resolve(n, false).modules.is_empty());
    if names.is_empty() {
        return LoadReport::default();
    }
    loader.load(&Request::names(names))
}

/// `(source, mount point)` pairs from `/proc/mounts`.
pub fn mounts(sys: &dyn Sys) -> Vec<(String, PathBuf)> {
    let text = std::fs::read_to_string(sys.path(Path::new("/proc/mounts"))).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((
                w.next()?.to_string(),
                PathBuf::from(w.next()?.replace("\\040", " ")),
            ))
        })
        .collect()
}

/// Where `/proc/mounts` says `/dev/<name>` is mounted already, and its filesystem type there.
pub fn mounted_at(sys: &dyn Sys, name: &str) -> Option<(PathBuf, String)> {
    let devnode = PathBuf::from("/dev").join(name);
    let text = std::fs::read_to_string(sys.path(Path::new("/proc/mounts"))).ok()?;
    text.lines().find_map(|l| {
        let mut w = l.split_whitespace();
        if Path::new(w.next()?) != devnode {
            return None;
        }
        Some((
            PathBuf::from(w.next()?.replace("\\040", " ")),
            w.next()?.to_string(),
        ))
    })
}

/// Mounts `info` read-only at `target` (created with mode 0755), loading its module first.
pub fn mount_ro(
    sys: &dyn Sys,
    loader: Option<&ModuleLoader<'_>>,
    info: &DeviceInfo,
    target: &Path,
) -> Result<Mounted, MountError> {
    let name = info.dev.name.clone();
    let fstype = info
        .probe
        .as_ref()
        .map(|p| p.fstype)
        .ok_or_else(|| MountError::NoFilesystem {
            device: name.clone(),
        })?;
    let host = sys.path(target);
    std::fs::create_dir_all(&host).map_err(|source| MountError::Mkdir {
        path: target.to_path_buf(),
        source,
    })?;
    if let Some(l) = loader {
        let _ = load_fs_modules(l, fstype, &[]);
    }
    let source = format!("/dev/{name}");
    let mut result = sys.mount(&source, target, fstype.as_str(), MountFlags::RDONLY, "");
    if fstype == FsType::Vfat && matches!(&result, Err(e) if e.raw_os_error() == Some(22)) {
        if let Some(l) = loader {
            // EINVAL from vfat is usually a missing character set: load the others and retry once.
            let _ = load_fs_modules(l, fstype, &VFAT_NLS_FALLBACK);
            result = sys.mount(&source, target, fstype.as_str(), MountFlags::RDONLY, "");
        }
    }
    result.map_err(|source| MountError::Mount {
        device: name.clone(),
        fstype,
        target: target.to_path_buf(),
        source,
    })?;
    Ok(Mounted {
        device: name,
        mountpoint: target.to_path_buf(),
        fstype,
        already: false,
    })
}

/// Mounts `info` at `/media/<name>` like nlplug-findfs, unless `/proc/mounts` already lists the
/// device (then its existing mount point is returned with `already`). An already-mounted device
/// needs no superblock: its type comes from `/proc/mounts` when probing found none (a device node
/// that cannot be read, or `ramboot plan` over a copy of a card's files).
pub fn mount_media(
    sys: &dyn Sys,
    loader: Option<&ModuleLoader<'_>>,
    info: &DeviceInfo,
) -> Result<Mounted, MountError> {
    if let Some((at, fs_name)) = mounted_at(sys, &info.dev.name) {
        let fstype = info
            .probe
            .as_ref()
            .map(|p| p.fstype)
            .or_else(|| FsType::from_name(&fs_name))
            .ok_or_else(|| MountError::NoFilesystem {
                device: info.dev.name.clone(),
            })?;
        return Ok(Mounted {
            device: info.dev.name.clone(),
            mountpoint: at,
            fstype,
            already: true,
        });
    }
    mount_ro(
        sys,
        loader,
        info,
        &PathBuf::from("/media").join(&info.dev.name),
    )
}
