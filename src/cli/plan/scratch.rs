//! The scratch copy `ramboot plan` boots on: DIR and the `--media` trees copied so that nothing
//! the boot does reaches outside it, plus the sysfs and `/proc/mounts` entries of copied media.

use super::Request;
use crate::sys::{RecordingSys, Sys};
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Errors of `ramboot plan` while it prepares the scratch copy.
#[derive(Debug)]
pub enum PlanError {
    Copy { path: PathBuf, source: io::Error },
    Setup { what: String, source: io::Error },
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Copy { path, source } => write!(f, "cannot copy {}: {source}", path.display()),
            Self::Setup { what, source } => write!(f, "cannot {what}: {source}"),
        }
    }
}

impl std::error::Error for PlanError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Copy { source, .. } | Self::Setup { source, .. } => Some(source),
        }
    }
}
/// Copies `src` into `dst` without following symlinks; see the module docs for what changes.
/// `top` is the scratch root (for absolute symlinks); nothing at or under `skip` (the scratch
/// directory itself, by device and inode) is copied.
pub fn copy_tree(src: &Path, dst: &Path, top: &Path, skip: (u64, u64)) -> Result<(), PlanError> {
    use std::os::unix::fs::MetadataExt;
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| PlanError::Copy { path, source }
    };
    fs::create_dir_all(dst).map_err(err(dst))?;
    for e in fs::read_dir(src).map_err(err(src))? {
        let e = e.map_err(err(src))?;
        let from = e.path();
        let to = dst.join(e.file_name());
        let ft = e.file_type().map_err(err(&from))?;
        if ft.is_dir() {
            let meta = fs::symlink_metadata(&from).map_err(err(&from))?;
            if (meta.dev(), meta.ino()) == skip {
                continue;
            }
            copy_tree(&from, &to, top, skip)?;
            let mode = fs::metadata(&from).map_err(err(&from))?.permissions();
            fs::set_permissions(&to, mode).map_err(err(&to))?;
        } else if ft.is_symlink() {
            let target = fs::read_link(&from).map_err(err(&from))?;
            let target = if target.is_absolute() {
                // `/x` seen from DIR/a/b/link is ../../x.
                let depth = dst
                    .strip_prefix(top)
                    .map(|p| p.components().count())
                    .unwrap_or(0);
                let mut rel: PathBuf = std::iter::repeat("..").take(depth).collect();
                rel.push(target.strip_prefix("/").unwrap_or(&target));
                rel
            } else {
                target
            };
            std::os::unix::fs::symlink(target, &to).map_err(err(&to))?;
        } else if ft.is_file() {
            fs::copy(&from, &to).map_err(err(&from))?;
        } else {
            fs::File::create(&to).map_err(err(&to))?;
        }
    }
    Ok(())
}

/// The scratch root, ready for the boot.
pub struct Prepared {
    pub dir: PathBuf,
    pub kernel_release: String,
    pub machine: String,
    /// What was assumed or synthesised, for the report.
    pub notes: Vec<String>,
}

pub(super) fn scratch_dir() -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    std::env::temp_dir().join(format!("ramboot-plan.{}.{nanos}", std::process::id()))
}

fn setup_err(what: &str) -> impl FnOnce(io::Error) -> PlanError + '_ {
    move |source| PlanError::Setup {
        what: what.to_string(),
        source,
    }
}

/// `uname -m` for an apk architecture (the inverse of the boot's `apk_arch`).
fn machine_for(arch: &str) -> &str {
    match arch {
        "armv7" => "armv7l",
        "armhf" => "armv6l",
        "x86" => "i686",
        other => other,
    }
}

/// Architectures of the boot repositories under `media/*` (`<repo>/<arch>/APKINDEX.tar.gz`).
fn media_arches(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir(root.join("media")) else {
        return out;
    };
    for m in rd.flatten() {
        for repo in crate::media::deep_boot_repositories(&m.path()) {
            let Ok(sub) = fs::read_dir(m.path().join(repo)) else {
                continue;
            };
            for a in sub.flatten() {
                let name = a.file_name().to_string_lossy().into_owned();
                if a.path().join("APKINDEX.tar.gz").is_file() && !out.contains(&name) {
                    out.push(name);
                }
            }
        }
    }
    crate::sys::sort::sort(&mut out);
    out
}

/// Top-level directories of a medium that hold `<arch>/APKINDEX.tar.gz` but no
/// `.boot_repository`: a card copied without the marker (seen on a real Orange Pi card). The boot,
/// as Alpine's `find_boot_repositories`, does not take them as repositories; the plan says why.
fn unmarked_repositories(medium: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for d in fs::read_dir(medium).into_iter().flatten().flatten() {
        let dir = d.path();
        if !d.file_type().is_ok_and(|t| t.is_dir())
            || fs::symlink_metadata(dir.join(crate::media::BOOT_REPOSITORY_MARKER)).is_ok()
        {
            continue;
        }
        for a in fs::read_dir(&dir).into_iter().flatten().flatten() {
            if a.path().join("APKINDEX.tar.gz").is_file() {
                out.push(format!(
                    "{}/{}/APKINDEX.tar.gz",
                    d.file_name().to_string_lossy(),
                    a.file_name().to_string_lossy()
                ));
            }
        }
    }
    crate::sys::sort::sort(&mut out);
    out
}

/// Copies DIR and the `--media` trees into `dir`, writes `--cmdline` and synthesises the sysfs
/// and `/proc/mounts` entries of copied media.
pub fn prepare(req: &Request, dir: &Path) -> Result<Prepared, PlanError> {
    use std::os::unix::fs::MetadataExt;
    let mut notes = Vec::new();
    fs::create_dir_all(dir).map_err(setup_err("create the scratch directory"))?;
    let scratch = fs::metadata(dir).map_err(setup_err("create the scratch directory"))?;
    let skip = (scratch.dev(), scratch.ino());
    if let Some(root) = &req.root {
        copy_tree(root, dir, dir, skip)?;
    }
    for (src, name) in &req.media {
        let to = dir.join("media").join(name);
        copy_tree(src, &to, dir, skip)?;
        notes.push(format!("{} copied to media/{name}", src.display()));
    }
    for keys in &req.keys_dirs {
        let to = dir.join("etc/apk/keys");
        copy_tree(keys, &to, dir, skip)?;
        notes.push(format!("keys in {} trusted (etc/apk/keys)", keys.display()));
    }
    if let Some(text) = &req.cmdline {
        fs::create_dir_all(dir.join("proc")).map_err(setup_err("create proc/"))?;
        fs::write(dir.join("proc/cmdline"), format!("{text}\n"))
            .map_err(setup_err("write proc/cmdline"))?;
    }
    // Copied media: already mounted, no superblock needed.
    let mut names: Vec<String> = fs::read_dir(dir.join("media"))
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .filter(|e| fs::read_dir(e.path()).is_ok_and(|mut r| r.next().is_some()))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    crate::sys::sort::sort_by(&mut names, |a, b| crate::hw::block::natural_cmp(a, b));
    let mut minor = 0;
    for name in names {
        let sysfs = dir.join("sys/class/block").join(&name);
        if fs::symlink_metadata(&sysfs).is_ok() {
            continue;
        }
        fs::create_dir_all(&sysfs).map_err(setup_err("create a sysfs entry"))?;
        fs::write(sysfs.join("dev"), format!("259:{minor}\n"))
            .map_err(setup_err("create a sysfs entry"))?;
        minor += 1;
        let mounts = dir.join("proc/mounts");
        fs::create_dir_all(dir.join("proc")).map_err(setup_err("create proc/"))?;
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&mounts)
            .map_err(setup_err("write proc/mounts"))?;
        writeln!(f, "/dev/{name} /media/{name} vfat ro 0 0")
            .map_err(setup_err("write proc/mounts"))?;
        notes.push(format!(
            "media/{name}: no sys/class/block/{name}, so treated as /dev/{name} already mounted (vfat)"
        ));
        for index in unmarked_repositories(&dir.join("media").join(&name)) {
            let repo = index.split('/').next().unwrap_or_default();
            notes.push(format!(
                "media/{name}/{index} is not used: {repo}/ has no {} file, which marks a boot \
                 repository (as for Alpine's init)",
                crate::media::BOOT_REPOSITORY_MARKER
            ));
        }
    }
    let kernel_release =
        match &req.kernel_release {
            Some(r) => r.clone(),
            None => {
                let mut rels: Vec<String> = fs::read_dir(dir.join("lib/modules"))
                    .map(|rd| {
                        rd.flatten()
                            .map(|e| e.file_name().to_string_lossy().into_owned())
                            .collect()
                    })
                    .unwrap_or_default();
                crate::sys::sort::sort(&mut rels);
                match rels.as_slice() {
                    [one] => one.clone(),
                    _ => {
                        let r = RecordingSys::new(dir).kernel_release();
                        notes.push(format!(
                        "kernel release {r} assumed (give --kernel-release; lib/modules has {})",
                        if rels.is_empty() { "none".to_string() } else { rels.join(", ") }
                    ));
                        r
                    }
                }
            }
        };
    let arch = match &req.arch {
        Some(a) => a.clone(),
        None => {
            let found = media_arches(dir);
            match found.as_slice() {
                [one] => one.clone(),
                _ => {
                    let a = crate::apk::build::default_arch().to_string();
                    if found.len() > 1 {
                        notes.push(format!(
                            "architecture {a} assumed; the boot repositories have {} (give --arch)",
                            found.join(", ")
                        ));
                    }
                    a
                }
            }
        }
    };
    Ok(Prepared {
        dir: dir.to_path_buf(),
        kernel_release,
        machine: machine_for(&arch).to_string(),
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_keeps_the_user_tree_and_stays_inside() {
        let src = tempfile::tempdir().unwrap();
        let s = src.path();
        fs::create_dir_all(s.join("media/mmcblk0p1/apks/aarch64")).unwrap();
        fs::write(s.join("media/mmcblk0p1/apks/.boot_repository"), b"").unwrap();
        fs::write(s.join("media/mmcblk0p1/apks/aarch64/APKINDEX.tar.gz"), b"x").unwrap();
        fs::create_dir_all(s.join("etc")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", s.join("etc/link")).unwrap();
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path().join("copy");
        let req = Request {
            root: Some(s.to_path_buf()),
            media: vec![],
            cmdline: Some("quiet".into()),
            kernel_release: None,
            arch: None,
            keys_dirs: vec![],
            no_scripts: false,
            keep: false,
            json: false,
        };
        let p = prepare(&req, &dir).unwrap();
        assert_eq!(p.machine, "aarch64");
        assert_eq!(
            fs::read_link(dir.join("etc/link")).unwrap(),
            Path::new("../etc/passwd")
        );
        assert_eq!(
            fs::read_to_string(dir.join("proc/mounts")).unwrap(),
            "/dev/mmcblk0p1 /media/mmcblk0p1 vfat ro 0 0\n"
        );
        assert!(dir.join("sys/class/block/mmcblk0p1/dev").is_file());
        // The user's tree is untouched.
        assert!(!s.join("proc").exists() && !s.join("sys").exists());
    }
}
