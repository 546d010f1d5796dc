//! Phase 1: the target root opened, its db created or read and locked, keys, repositories and
//! cache found: everything the later phases need, in a [`Target`].

use super::protect::{parse_overlay, Protection};
use super::{InstallReport, InstallRequest};
use crate::db;
use crate::repo::{cache_index_name, is_remote, root_repositories, RepoSet};
use crate::sign::Keyring;
use crate::ApkError;
use ramboot_sys::fsutil::{Root, Symlinks};
use ramboot_sys::{NodeKind, Sys};
use rustix::fs::{AtFlags, Mode, OFlags};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// The opened target and what the transaction reads from it.
pub(super) struct Target {
    pub root: Root,
    /// `lib/apk/db/lock`, held (flock) until the db is written.
    pub lock: std::fs::File,
    pub protection: Protection,
    /// The overlay's files (they win over packages) and directories (trigger matches).
    pub overlay_files: HashSet<String>,
    pub overlay_dirs: HashSet<String>,
    pub cache: Option<CacheDir>,
    pub repos: RepoSet,
}

/// The package cache: as the system sees it (for its mount) and where to open it.
pub(super) struct CacheDir {
    pub guest: PathBuf,
    pub host: PathBuf,
}

/// Opens (or, with `--initdb`, creates) the root and its db, locks it, loads repositories.
/// Returns the target and its installed db (which the transaction updates, then writes).
pub(super) fn prepare(
    req: &InstallRequest,
    sys: &dyn Sys,
    report: &mut InstallReport,
) -> Result<(Target, db::Db), ApkError> {
    let (host, root) = open_root(req, sys)?;
    let arch = arch(req, &root)?;
    let lock = lock(&host, &root)?;
    let mut keys = Keyring::default();
    keys.add_dir(&host.join("etc/apk/keys"))?;
    for k in &req.keys_dirs {
        keys.add_dir(&sys.path(k))?;
    }
    if req.allow_untrusted {
        let w = "--allow-untrusted: unsigned indexes and indexes signed by unknown keys are ACCEPTED; package checksums are still checked against the index".to_string();
        log::warn!("apk: {w}");
        report.warnings.push(w);
    }
    let protection = Protection::load(&host);
    let (overlay_files, overlay_dirs) = parse_overlay(req.overlay_list.as_deref().unwrap_or(&[]));
    let db = db::read(&root)?;
    let cache = find_cache(req, &host, sys);
    let repos = load_repositories(req, sys, &host, &arch, cache.as_ref(), &keys);
    for w in &repos.warnings {
        log::warn!("apk: {w}");
    }
    report.repo_warnings = repos.warnings.clone();
    let target = Target {
        root,
        lock,
        protection,
        overlay_files,
        overlay_dirs,
        cache,
        repos,
    };
    Ok((target, db))
}

/// The root directory and its db skeleton (created when asked to), plus `proc`.
fn open_root(req: &InstallRequest, sys: &dyn Sys) -> Result<(PathBuf, Root), ApkError> {
    let root = sys.path(&req.root);
    let create = req.initdb || req.diskless_boot;
    if !root.is_dir() {
        if !create {
            return Err(ApkError::io(
                format!("root {}", root.display()),
                std::io::Error::from(std::io::ErrorKind::NotFound),
            ));
        }
        std::fs::create_dir_all(&root)
            .map_err(|e| ApkError::io(format!("creating root {}", root.display()), e))?;
    }
    let root_dir = Root::open(&root, req.resolve)
        .map_err(|e| ApkError::io(format!("opening root {}", root.display()), e))?;
    let db_missing = !root_dir.exists(Path::new(db::WORLD), true)
        || root_dir.dir(Path::new("lib/apk/db")).is_err();
    if db_missing {
        if !create {
            return Err(ApkError::Usage(format!(
                "{}: no apk database (use --initdb)",
                root.display()
            )));
        }
        create_db(&req.root, &root_dir, sys)?;
    }
    mkdir_mode(&root_dir, "proc", 0o555);
    Ok((root, root_dir))
}

/// The architecture: asked for, or `etc/apk/arch`, or this machine's; written when new.
fn arch(req: &InstallRequest, root: &Root) -> Result<String, ApkError> {
    Ok(match &req.arch {
        Some(a) => {
            db::write_file(root, db::ARCH, format!("{a}\n").as_bytes())?;
            a.clone()
        }
        None => match root.read_to_string(Path::new(db::ARCH)) {
            Ok(t) if !t.trim().is_empty() => t.trim().to_string(),
            _ => {
                let a = crate::build::default_arch().to_string();
                db::write_file(root, db::ARCH, format!("{a}\n").as_bytes())?;
                a
            }
        },
    })
}

/// How long [`lock`] waits for a lock held by someone else before it gives up.
const LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_secs(5);

/// Takes `lib/apk/db/lock` (an exclusive flock, as apk takes it). A held lock is waited for, up
/// to [`LOCK_PATIENCE`]: besides another apk, the holder can be a child that another thread of
/// this process forked before its exec closed the inherited descriptor, which lets go within
/// milliseconds. Then the error names the lock.
fn lock(host: &Path, root: &Root) -> Result<std::fs::File, ApkError> {
    lock_within(host, root, LOCK_PATIENCE)
}

fn lock_within(
    host: &Path,
    root: &Root,
    patience: std::time::Duration,
) -> Result<std::fs::File, ApkError> {
    use rustix::fs::{flock, FlockOperation};
    let lock_path = host.join("lib/apk/db/lock");
    let lock = root
        .create(Path::new("lib/apk/db/lock"), OFlags::empty(), 0o600)
        .map_err(|e| ApkError::io(format!("opening {}", lock_path.display()), e))?;
    let started = std::time::Instant::now();
    let mut pause = std::time::Duration::from_millis(1);
    loop {
        match flock(&lock, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(lock),
            Err(rustix::io::Errno::WOULDBLOCK) if started.elapsed() < patience => {
                if pause.as_millis() == 1 {
                    log::info!("apk: waiting for {}", lock_path.display());
                }
                // A real wait on another process, bounded, doubling up to 100 ms.
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_millis(100));
            }
            Err(e) => {
                return Err(ApkError::io(
                    format!("locking {} (another apk running?)", lock_path.display()),
                    std::io::Error::from_raw_os_error(e.raw_os_error()),
                ))
            }
        }
    }
}

/// The command line's repositories, then the root's `etc/apk/repositories` when asked.
fn load_repositories(
    req: &InstallRequest,
    sys: &dyn Sys,
    host: &Path,
    arch: &str,
    cache: Option<&CacheDir>,
    keys: &Keyring,
) -> RepoSet {
    let extra: Vec<(Option<String>, String)> = if req.use_root_repositories {
        root_repositories(host)
            .into_iter()
            .map(|(t, u)| {
                if u.contains("://") {
                    (t, u)
                } else {
                    (t, sys.path(Path::new(&u)).to_string_lossy().into_owned())
                }
            })
            .collect()
    } else {
        Vec::new()
    };
    // URLs stay as they are; paths are mapped to the host.
    let repo_paths: Vec<PathBuf> = req
        .repositories
        .iter()
        .map(|p| match p.to_str() {
            Some(u) if u.contains("://") => p.clone(),
            _ => sys.path(p),
        })
        .collect();
    if let (Some(fetch), Some(c)) = (&req.fetch, cache) {
        let urls = repo_paths
            .iter()
            .filter_map(|p| p.to_str())
            .chain(extra.iter().map(|(_, u)| u.as_str()));
        fetch_indexes(sys, fetch, urls, arch, &c.host);
    }
    let mut set = RepoSet::load(
        &repo_paths,
        &extra,
        arch,
        cache.map(|c| c.host.as_path()),
        keys,
        req.allow_untrusted,
    );
    set.fetch_remote = req.fetch.is_some() && cache.is_some();
    set
}

/// `apk update` for the remote repositories: each index into the cache under apk's name for
/// it, through a temporary name (a failed download keeps the index cached before, if any). The
/// index is verified when it is loaded, as a cached one is.
fn fetch_indexes<'a>(
    sys: &dyn Sys,
    fetch: &super::FetchFn,
    urls: impl Iterator<Item = &'a str>,
    arch: &str,
    cache: &Path,
) {
    for url in urls.filter(|u| is_remote(u)) {
        let index = format!("{}/{arch}/APKINDEX.tar.gz", url.trim_end_matches('/'));
        let dest = cache.join(cache_index_name(url, arch));
        let part = dest.with_extension("part");
        match fetch(sys, &index, &part) {
            Ok(()) => {
                if let Err(e) = std::fs::rename(&part, &dest) {
                    log::warn!("apk: {url}: cannot keep the index: {e}");
                }
            }
            Err(e) => {
                let _ = std::fs::remove_file(&part);
                log::warn!("apk: {url}: cannot fetch the index: {e}");
            }
        }
    }
}

/// Creates a directory in the root; an existing one (or a failure) is left to later steps.
pub(super) fn mkdir_mode(root: &Root, rel: &str, mode: u32) {
    let _ = root.mkdir(Path::new(rel), mode);
}

/// `apk_db_create`: the skeleton of an empty root.
fn create_db(req_root: &Path, root: &Root, sys: &dyn Sys) -> Result<(), ApkError> {
    mkdir_mode(root, "tmp", 0o1777);
    mkdir_mode(root, "dev", 0o755);
    // The nodes are made by path: only where no symlink leads elsewhere.
    let dev = Path::new("dev");
    if let Ok(dev_fd) = root.open_with(dev, OFlags::PATH | OFlags::DIRECTORY, Symlinks::Refused) {
        for (name, minor, mode) in [
            ("null", 3, 0o666),
            ("zero", 5, 0o666),
            ("random", 8, 0o666),
            ("urandom", 9, 0o666),
        ] {
            let made = sys.mknod(
                &req_root.join(dev).join(name),
                NodeKind::Char,
                mode,
                1,
                minor,
            );
            if made.is_ok() {
                // apk runs with umask 0: the nodes get exactly this mode.
                let mode = Mode::from_raw_mode(mode);
                let _ = rustix::fs::chmodat(&dev_fd, name, mode, AtFlags::empty());
            }
        }
        let _ = sys.mknod(&req_root.join("dev/console"), NodeKind::Char, 0o600, 5, 1);
    }
    for d in [
        "etc",
        "etc/apk",
        "lib",
        "lib/apk",
        "lib/apk/db",
        "var",
        "var/cache",
        "var/cache/apk",
        "var/cache/misc",
    ] {
        mkdir_mode(root, d, 0o755);
    }
    db::write_file(root, db::WORLD, b"")?;
    db::write_file(root, db::INSTALLED, b"")?;
    Ok(())
}

/// The cache directory: explicit, or `<root>/etc/apk/cache` if it leads to a directory.
fn find_cache(req: &InstallRequest, root: &Path, sys: &dyn Sys) -> Option<CacheDir> {
    if let Some(c) = &req.cache_dir {
        return Some(CacheDir {
            guest: c.clone(),
            host: sys.path(c),
        });
    }
    let link = root.join("etc/apk/cache");
    let guest_link = req.root.join("etc/apk/cache");
    let cache = match std::fs::read_link(&link) {
        // An absolute target is resolved from the system's `/` (the boot medium), as apk does.
        Ok(t) if t.is_absolute() => CacheDir {
            host: sys.path(&t),
            guest: t,
        },
        Ok(t) => CacheDir {
            guest: guest_link.parent()?.join(&t),
            host: link.parent()?.join(t),
        },
        Err(_) => CacheDir {
            guest: guest_link,
            host: link,
        },
    };
    cache.host.is_dir().then_some(cache)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ramboot_sys::fsutil::Resolve;
    use rustix::fs::{flock, FlockOperation};
    use std::time::Duration;

    fn held_lock(dir: &Path) -> std::fs::File {
        std::fs::create_dir_all(dir.join("lib/apk/db")).unwrap();
        let f = std::fs::File::create(dir.join("lib/apk/db/lock")).unwrap();
        flock(&f, FlockOperation::NonBlockingLockExclusive).unwrap();
        f
    }

    #[test]
    fn a_lock_let_go_soon_is_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let holder = held_lock(dir.path());
        let root = Root::open(dir.path(), Resolve::Kernel).unwrap();
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            drop(holder);
        });
        assert!(lock_within(dir.path(), &root, Duration::from_secs(5)).is_ok());
        release.join().unwrap();
    }

    #[test]
    fn a_lock_held_on_names_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let _holder = held_lock(dir.path());
        let root = Root::open(dir.path(), Resolve::Kernel).unwrap();
        let e = lock_within(dir.path(), &root, Duration::from_millis(20)).unwrap_err();
        assert!(
            e.to_string()
                .contains("lib/apk/db/lock (another apk running?)"),
            "{e}"
        );
    }
}
