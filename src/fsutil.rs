//! Path handling confined to a root directory: what `chroot` would see, computed without chroot.
//!
//! Used wherever a path from an untrusted source (an apkovl, an `init=` value) is resolved inside
//! a root that is not ours to escape: symlinks, absolute ones included, are followed relative to
//! the root and `..` never climbs above it.

use std::ffi::OsString;
use std::io;
use std::path::{Component, Path, PathBuf};

fn parts(path: &Path) -> Vec<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect()
}

/// Resolves every component of `path` inside `root` (the last one too when `follow_last`).
/// Missing components are kept as they are, so the result can name a file about to be created.
/// Returns the host path, always under `root`.
pub fn resolve_beneath(root: &Path, path: &Path, follow_last: bool) -> io::Result<PathBuf> {
    let mut pending: Vec<OsString> = parts(path);
    pending.reverse();
    let mut resolved: Vec<OsString> = Vec::new();
    let mut hops = 0;
    while let Some(part) = pending.pop() {
        if part == ".." {
            resolved.pop();
            continue;
        }
        let mut host = root.to_path_buf();
        host.extend(&resolved);
        host.push(&part);
        let is_last = pending.is_empty();
        match std::fs::symlink_metadata(&host) {
            Ok(m) if m.file_type().is_symlink() && (!is_last || follow_last) => {
                hops += 1;
                if hops > 40 {
                    return Err(io::Error::from_raw_os_error(rustix::io::Errno::LOOP.raw_os_error()));
                }
                let target = std::fs::read_link(&host)?;
                if target.is_absolute() {
                    resolved.clear();
                }
                let mut t = parts(&target);
                t.reverse();
                pending.extend(t);
            }
            _ => resolved.push(part),
        }
    }
    let mut host = root.to_path_buf();
    host.extend(&resolved);
    Ok(host)
}

/// Like [`resolve_beneath`] with the last component followed, but fails if anything is missing.
pub fn resolve_existing(root: &Path, path: &Path) -> io::Result<PathBuf> {
    let host = resolve_beneath(root, path, true)?;
    std::fs::symlink_metadata(&host)?;
    Ok(host)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn symlinks_stay_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("usr/bin")).unwrap();
        symlink("usr/bin", root.join("bin")).unwrap();
        symlink("/", root.join("up")).unwrap();
        symlink("../../../../etc", root.join("esc")).unwrap();
        assert_eq!(resolve_beneath(root, Path::new("bin/foo"), false).unwrap(), root.join("usr/bin/foo"));
        assert_eq!(resolve_beneath(root, Path::new("/up/up/up/x"), false).unwrap(), root.join("x"));
        assert_eq!(resolve_beneath(root, Path::new("esc/passwd"), false).unwrap(), root.join("etc/passwd"));
        assert_eq!(resolve_beneath(root, Path::new("../../x"), false).unwrap(), root.join("x"));
        assert_eq!(resolve_beneath(root, Path::new("bin"), false).unwrap(), root.join("bin"));
        assert!(resolve_existing(root, Path::new("bin/nothing")).is_err());
        symlink("loop", root.join("loop")).unwrap();
        assert!(resolve_beneath(root, Path::new("loop/x"), false).is_err());
    }
}
