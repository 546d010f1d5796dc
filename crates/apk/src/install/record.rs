//! Phase 6: the db files, then `<cache>/installed` when a package cache is in use.

use super::prepare::{CacheDir, Target};
use crate::db::{self, InstalledPkg};
use crate::repo::RepoSet;
use crate::ApkError;
use ramboot_sys::{MountFlags, Sys};
use rustix::io::Errno;
use std::path::{Path, PathBuf};

/// Writes `lib/apk/db/*` and, with a cache, `<cache>/installed`.
pub(super) fn write(sys: &dyn Sys, target: &Target, installed: &db::Db) -> Result<(), ApkError> {
    db::write(&target.root, installed)?;
    if let Some(c) = &target.cache {
        write_cache_installed(sys, c, installed, &target.repos);
    }
    Ok(())
}

/// `<cache>/installed`, written after the db as apk does when the cache is active.
///
/// An lbu-style card keeps the cache on the boot medium, mounted read-only: like apk
/// (`apk_db_open`), the medium is remounted read-write for the write and then back. A medium
/// that cannot be made writable (a locked card) only gets a notice.
fn write_cache_installed(sys: &dyn Sys, cache: &CacheDir, dbs: &db::Db, repos: &RepoSet) {
    let mut pkgs: Vec<&InstalledPkg> = dbs.packages.iter().collect();
    ramboot_sys::sort::sort_by(&mut pkgs, |a, b| {
        crate::dep::name_cmp(&a.info.name, &b.info.name)
            .then_with(|| crate::version::compare(&a.info.version, &b.info.version))
    });
    let text = crate::repo::cache_installed_text(pkgs.into_iter().map(|p| {
        let bits = repos
            .packages
            .iter()
            .find(|a| a.info.identity.is_some() && a.info.identity == p.info.identity)
            .map_or(0, |a| a.repos);
        (&p.info, bits)
    }));
    let shown = cache.guest.join(crate::repo::CACHE_INSTALLED);
    let written = with_writable_mount(sys, &cache.guest, || {
        use std::os::unix::fs::PermissionsExt;
        let tmp = cache.host.join("installed.new");
        std::fs::write(&tmp, text)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))?;
        std::fs::rename(&tmp, cache.host.join(crate::repo::CACHE_INSTALLED))
    });
    match written {
        Ok(()) => {}
        Err(CacheWrite::StaysReadOnly(target, e)) => log::info!(
            "apk: {} not updated: {} is read-only and cannot be remounted read-write ({e})",
            shown.display(),
            target.display()
        ),
        Err(CacheWrite::Failed(e)) if e.raw_os_error() == Some(Errno::ROFS.raw_os_error()) => {
            log::info!("apk: {} not updated: read-only", shown.display())
        }
        Err(CacheWrite::Failed(e)) => log::warn!("apk: writing {}: {e}", shown.display()),
    }
}

/// Why a write into the cache did not happen.
enum CacheWrite {
    /// The cache's mount is read-only and refused to become writable.
    StaysReadOnly(PathBuf, std::io::Error),
    Failed(std::io::Error),
}

/// Runs `write` with the mount that holds `guest` writable: a read-only mount is remounted
/// read-write, keeping its other flags, and read-only again afterwards (apk's
/// `cache_remount_dir`), through [`Sys::remount`].
fn with_writable_mount(
    sys: &dyn Sys,
    guest: &Path,
    write: impl FnOnce() -> std::io::Result<()>,
) -> Result<(), CacheWrite> {
    let read_only = sys
        .mount_containing(guest)
        .ok()
        .filter(|m| m.flags.contains(MountFlags::RDONLY));
    if let Some(m) = &read_only {
        sys.remount(&m.target, m.flags - MountFlags::RDONLY, "")
            .map_err(|e| CacheWrite::StaysReadOnly(m.target.clone(), e))?;
    }
    let written = write();
    if let Some(m) = &read_only {
        if let Err(e) = sys.remount(&m.target, m.flags, "") {
            log::warn!(
                "apk: cannot remount {} read-only again: {e}",
                m.target.display()
            );
        }
    }
    written.map_err(CacheWrite::Failed)
}
