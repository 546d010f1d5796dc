//! What a mounted filesystem offers a diskless boot: boot repositories, apkovls, a modloop and a
//! package cache, following Alpine's media layout.
//!
//! Pure logic over a directory tree: it does not know how the tree got mounted (the `hw` component
//! does that), so it runs on any directory on a host. Paths in results are relative to the scanned
//! directory; the caller joins them to the guest mount point (`/media/vda1`).
//!
//! Where Alpine leaves things to chance we decide deterministically: with several apkovls,
//! [`choose_apkovl`] applies a documented order and names the ones it passed over, instead of
//! "the first uevent wins".

use crate::fnmatch::fnmatch;
use crate::hw::block::natural_cmp;
use crate::hw::probe::is_squashfs;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Errors of the media component.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The directory to scan could not be listed.
    #[error("cannot list {}: {source}", path.display())]
    ReadDir {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The name nlplug-findfs matches at the top level of each filesystem.
pub const APKOVL_PATTERN: &str = "*.apkovl.tar.gz*";
/// The marker file of a boot repository directory.
pub const BOOT_REPOSITORY_MARKER: &str = ".boot_repository";

/// What one filesystem offers (paths relative to its top).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Offer {
    /// Top-level directories holding a `.boot_repository` entry, sorted.
    pub boot_repositories: Vec<PathBuf>,
    /// Top-level non-directories matching `*.apkovl.tar.gz*`, sorted.
    pub apkovls: Vec<PathBuf>,
    /// Modloop candidates in the order to try them (see [`find_modloop`]).
    pub modloops: Vec<PathBuf>,
    /// The package cache directory (`cache/`), when present.
    pub cache: Option<PathBuf>,
}

/// Whether to keep a scanned filesystem mounted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Keep,
    /// Nothing useful: unmount it (the empty mount point may stay, as in Alpine).
    Unmount,
}

impl Offer {
    /// Keep when it offers anything the boot can use. Alpine keeps only media with a repository or
    /// an apkovl; we also keep a modloop or a cache, because the later stages read them from it.
    pub fn verdict(&self) -> Verdict {
        if self.boot_repositories.is_empty()
            && self.apkovls.is_empty()
            && self.modloops.is_empty()
            && self.cache.is_none()
        {
            Verdict::Unmount
        } else {
            Verdict::Keep
        }
    }
}

/// Options for [`scan`].
#[derive(Clone, Debug, Default)]
pub struct ScanOptions {
    /// `modloop=` when it is a path on the media (not `none`, not a URL).
    pub modloop: Option<String>,
    /// `uname -r`, to prefer the modloop whose flavour matches.
    pub kernel_release: Option<String>,
}

/// Scans the top level of a mounted filesystem (nlplug's depth 1) plus the modloop and cache.
pub fn scan(dir: &Path, opts: &ScanOptions) -> Result<Offer, MediaError> {
    let rd = std::fs::read_dir(dir).map_err(|source| MediaError::ReadDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut offer = Offer::default();
    for e in rd.flatten() {
        let Ok(ft) = e.file_type() else { continue };
        let name = e.file_name();
        let name_s = name.to_string_lossy();
        if ft.is_dir() {
            if std::fs::symlink_metadata(e.path().join(BOOT_REPOSITORY_MARKER)).is_ok() {
                offer.boot_repositories.push(PathBuf::from(&name));
            }
            if name_s == "cache" {
                offer.cache = Some(PathBuf::from("cache"));
            }
        } else if fnmatch(APKOVL_PATTERN, &name_s) {
            offer.apkovls.push(PathBuf::from(&name));
        }
    }
    crate::sys::sort::sort(&mut offer.boot_repositories);
    crate::sys::sort::sort(&mut offer.apkovls);
    offer.modloops = find_modloop(dir, opts.modloop.as_deref(), opts.kernel_release.as_deref());
    Ok(offer)
}

/// Directories up to two levels below `dir` (and `dir` itself, as the empty path) that hold a
/// `.boot_repository` file: Alpine's later `find /media/* -maxdepth 3 -name .boot_repository`.
pub fn deep_boot_repositories(dir: &Path) -> Vec<PathBuf> {
    fn walk(base: &Path, rel: &Path, depth: usize, out: &mut Vec<PathBuf>) {
        let here = base.join(rel);
        if std::fs::symlink_metadata(here.join(BOOT_REPOSITORY_MARKER)).is_ok_and(|m| m.is_file()) {
            out.push(rel.to_path_buf());
        }
        if depth == 2 {
            return;
        }
        let Ok(rd) = std::fs::read_dir(&here) else {
            return;
        };
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                walk(base, &rel.join(e.file_name()), depth + 1, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, Path::new(""), 0, &mut out);
    crate::sys::sort::sort(&mut out);
    out
}

/// True when the file starts with a squashfs superblock.
fn file_is_squashfs(path: &Path) -> bool {
    let mut head = [0u8; 96];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && is_squashfs(&head)
}

/// Modloop candidates on a filesystem, best first.
///
/// With `modloop=<relpath>` only that file counts (if it exists). Otherwise, like Alpine's
/// `find_modloop`, files in `boot/` and then top-level files that are squashfs images; among
/// them a `modloop-<flavour>` whose flavour ends the kernel release (`6.6.7-0-rpi` → `rpi`) comes
/// first, then other `modloop-*`, then the rest, each group sorted. The caller mounts them in order
/// and keeps the first with `modules/<release>`.
pub fn find_modloop(
    dir: &Path,
    modloop: Option<&str>,
    kernel_release: Option<&str>,
) -> Vec<PathBuf> {
    if let Some(rel) = modloop {
        let rel = rel.trim_start_matches('/');
        let p = PathBuf::from(rel);
        return if !rel.is_empty() && dir.join(&p).is_file() {
            vec![p]
        } else {
            vec![]
        };
    }
    let mut found: Vec<PathBuf> = Vec::new();
    for sub in ["boot", ""] {
        let Ok(rd) = std::fs::read_dir(dir.join(sub)) else {
            continue;
        };
        let mut names: Vec<PathBuf> = rd
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| Path::new(sub).join(e.file_name()))
            .filter(|rel| file_is_squashfs(&dir.join(rel)))
            .collect();
        crate::sys::sort::sort(&mut names);
        found.extend(names);
    }
    let flavour = kernel_release
        .and_then(|r| r.rsplit('-').next())
        .filter(|f| !f.is_empty());
    let rank = |p: &PathBuf| {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match name.strip_prefix("modloop-") {
            Some(f) if Some(f) == flavour => 0,
            Some(_) => 1,
            None => 2,
        }
    };
    crate::sys::sort::sort_by_key(&mut found, rank); // stable: keeps boot/ before top level within a group
    found
}

/// An apkovl found on some device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApkovlCandidate {
    /// Kernel name of the device it is on (`mmcblk0p1`).
    pub device: String,
    /// Full guest path (`/media/mmcblk0p1/host.apkovl.tar.gz`).
    pub path: PathBuf,
}

/// The apkovl picked and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApkovlChoice {
    pub chosen: ApkovlCandidate,
    /// The ones passed over, in preference order (to be named in a warning).
    pub others: Vec<ApkovlCandidate>,
    /// Which rule decided, for the boot log.
    pub reason: String,
}

/// Suffixes after `.apkovl.tar.gz` that mark leftovers, not overlays (`fnmatch` lets them in).
fn is_leftover(name: &str) -> bool {
    let Some(i) = name.find(".apkovl.tar.gz") else {
        return false;
    };
    let suffix = &name[i + ".apkovl.tar.gz".len()..];
    suffix.ends_with('~')
        || [".new", ".bak", ".old", ".orig", ".tmp", ".save"]
            .iter()
            .any(|s| suffix.ends_with(s))
}

fn matches_host(name: &str, hostname: &str) -> bool {
    name.strip_prefix(hostname)
        .and_then(|r| r.strip_prefix(".apkovl.tar.gz"))
        .is_some_and(|r| r.is_empty() || r.starts_with('.'))
        && !is_leftover(name)
}

/// Picks one apkovl among several, deterministically:
/// 1. one named `<hostname>.apkovl.tar.gz[.<cipher>]` when a hostname hint is given;
/// 2. real overlays before leftovers (`.new`, `.bak`, `.old`, `.orig`, `.tmp`, `.save`, `~`);
/// 3. by device name in natural order (`mmcblk0p1` < `sda1` < `sdb1` < `vda1`);
/// 4. by file name.
///
/// Returns `None` for no candidates.
pub fn choose_apkovl(
    candidates: &[ApkovlCandidate],
    hostname: Option<&str>,
) -> Option<ApkovlChoice> {
    let file = |c: &ApkovlCandidate| {
        c.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let host_hit =
        |c: &ApkovlCandidate| hostname.is_some_and(|h| !h.is_empty() && matches_host(&file(c), h));
    let mut sorted: Vec<ApkovlCandidate> = candidates.to_vec();
    crate::sys::sort::sort_by(&mut sorted, |a, b| {
        host_hit(b)
            .cmp(&host_hit(a))
            .then_with(|| is_leftover(&file(a)).cmp(&is_leftover(&file(b))))
            .then_with(|| natural_cmp(&a.device, &b.device))
            .then_with(|| file(a).cmp(&file(b)))
            .then_with(|| a.path.cmp(&b.path))
    });
    let mut it = sorted.into_iter();
    let chosen = it.next()?;
    let others: Vec<ApkovlCandidate> = it.collect();
    let reason = if others.is_empty() {
        "the only apkovl found".to_string()
    } else if host_hit(&chosen) && !others.iter().all(host_hit) {
        format!("named after the hostname {}", hostname.unwrap_or_default())
    } else if !is_leftover(&file(&chosen))
        && others.iter().any(|o| is_leftover(&file(o)))
        && others.iter().all(|o| is_leftover(&file(o)))
    {
        "the others are leftovers (.new/.bak/...)".to_string()
    } else if others.iter().all(|o| o.device != chosen.device) {
        format!("first device in name order ({})", chosen.device)
    } else {
        "first file name in order".to_string()
    };
    Some(ApkovlChoice {
        chosen,
        others,
        reason,
    })
}
