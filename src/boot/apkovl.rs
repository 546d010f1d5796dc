//! The apkovl step: the new root's apk database, then the apkovl extracted over it. One copy,
//! used by the boot and by `ramboot install --apkovl` (the host view of this step, for building
//! and checking images), so both give the same root.
//!
//! Order as in Alpine's init: `apk add --initdb` first, then `tar -x` of the apkovl, so the
//! apkovl's `etc/apk/world`, repositories and keys replace the empty ones. The extraction is
//! [`crate::overlay::extract`] (checked whole before anything is written, nothing outside the
//! root); its names become apk's overlay list (the user's files win over packages), and the
//! world it brings is what the install adds.

use super::BootError;
use crate::apk::{self, InstallRequest, ScriptPolicy};
use crate::overlay::crypt::Unlocked;
use crate::overlay::{self, OverlayError};
use crate::sys::Sys;
use std::path::{Path, PathBuf};

/// What applying an apkovl gives the package step.
#[derive(Debug, Default)]
pub struct Applied {
    /// Names as `tar -v` prints them: apk's overlay list.
    pub overlay_files: Vec<String>,
    /// The atoms of the root's `etc/apk/world` after extraction.
    pub world: Vec<String>,
    /// Entries skipped with a reason (the apkovl is still applied).
    pub warnings: Vec<String>,
}

/// Creates the apk database in `root` (as the system sees it), like `apk add --initdb`.
pub fn init_db(sys: &dyn Sys, root: &Path) -> Result<(), apk::ApkError> {
    let req = InstallRequest {
        root: root.to_path_buf(),
        initdb: true,
        scripts: ScriptPolicy::Never,
        use_root_repositories: false,
        ..Default::default()
    };
    apk::install(&req, sys).map(drop)
}

/// Extracts `apkovl` into `root` (both as the system sees them), decrypted with `unlocked` when
/// it is encrypted. Owners from the archive are applied when running as root; device nodes
/// (under `dev/` only) go through [`Sys::mknod`].
pub fn apply(
    sys: &dyn Sys,
    root: &Path,
    apkovl: &Path,
    unlocked: Option<&Unlocked>,
) -> Result<Applied, OverlayError> {
    let chown = sys.privileged();
    let make_node =
        |rel: &Path, kind, mode, major, minor| sys.mknod(&root.join(rel), kind, mode, major, minor);
    let opts = overlay::Options {
        chown,
        make_node: Some(&make_node),
        sys: Some(sys),
        unlocked,
        ..Default::default()
    };
    let host_root = sys.path(root);
    let x = overlay::extract(&sys.path(apkovl), &host_root, opts)?;
    Ok(Applied {
        overlay_files: x.names,
        world: read_world(&host_root),
        warnings: x.warnings,
    })
}

/// The atoms of `<root>/etc/apk/world` (none when it is missing), read inside the root: the
/// apkovl may have made it a symlink, which is followed as chroot would, never out of the root.
pub fn read_world(root: &Path) -> Vec<String> {
    super::sysroot::open_root(root)
        .and_then(|r| r.read_to_string(Path::new("etc/apk/world")))
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// `ramboot install --apkovl FILE [--apkovl-key KEY]`: the db (when the request creates one), the apkovl, then
/// the request gets the apkovl's world and overlay list, as the boot's package step does.
pub fn prepare_install(
    sys: &dyn Sys,
    req: &mut InstallRequest,
    apkovl: &Path,
    unlocked: Option<&Unlocked>,
) -> Result<Applied, BootError> {
    let root: PathBuf = req.root.clone();
    if req.initdb || req.diskless_boot {
        init_db(sys, &root).map_err(|source| BootError::InitDb { source })?;
    }
    let applied = apply(sys, &root, apkovl, unlocked)?;
    for atom in &applied.world {
        if !req.world_add.contains(atom) {
            req.world_add.push(atom.clone());
        }
    }
    req.overlay_list = Some(applied.overlay_files.clone());
    Ok(applied)
}
