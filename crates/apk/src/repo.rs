//! Repositories, their signed indexes, and the package cache.
//!
//! Repository 0 is the cache, as in apk; command-line repositories come next in reverse order,
//! then `etc/apk/repositories`. Local paths are read directly; remote URLs (`http:` ...) are
//! only usable through the cache (`APKINDEX.<8 hex>.tar.gz`, `<name>-<ver>.<8 hex>.apk`),
//! since boot installs offline from the medium.

use super::checksum::{hex, Checksum};
use super::pkg::{parse_index, PkgInfo};
use super::sign::Keyring;
use super::stream::read_index;
use sha1::{Digest, Sha1};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One configured repository.
#[derive(Clone, Debug)]
pub struct Repository {
    /// apk's repository index (1..; 0 is the cache).
    pub index: usize,
    /// As configured (a directory or a URL).
    pub url: String,
    /// Tag (`@tag` in `etc/apk/repositories`): only tagged world atoms use it.
    pub tag: Option<String>,
    /// Network repository (not fetched: only its cached index and packages are used).
    pub remote: bool,
    /// Host directory holding the index and packages (local repositories).
    pub dir: Option<PathBuf>,
    /// The index's `DESCRIPTION`.
    pub description: String,
}

/// A package known from some index.
#[derive(Clone, Debug)]
pub struct Available {
    /// Its index record.
    pub info: PkgInfo,
    /// Bitmask of repository indexes that list it.
    pub repos: u64,
    /// Listed in `<cache>/installed` (apk's `cached_non_repository`): selectable without
    /// any repository.
    pub cached_non_repository: bool,
}

/// All indexes, merged by identity.
#[derive(Default)]
pub struct RepoSet {
    /// The repositories, in apk's order.
    pub repos: Vec<Repository>,
    /// Every package of every index, merged by identity.
    pub packages: Vec<Available>,
    /// Problems with individual repositories (the repository is then skipped).
    pub warnings: Vec<String>,
    /// Package cache directory, when there is one.
    pub cache_dir: Option<PathBuf>,
    /// Architecture of the indexes read.
    pub arch: String,
    /// Remote repositories' packages can be downloaded into the cache (an install with a
    /// fetcher): they count as available, and their path is the cache's.
    pub fetch_remote: bool,
}

pub(crate) fn is_remote(url: &str) -> bool {
    ["http:", "https:", "ftp:"]
        .iter()
        .any(|p| url.starts_with(p))
}

fn join_url(url: &str, rest: &str) -> String {
    if url.ends_with('/') {
        format!("{url}{rest}")
    } else {
        format!("{url}/{rest}")
    }
}

/// The cache's list of installed packages that no repository has (index format).
pub const CACHE_INSTALLED: &str = "installed";

/// `<cache>/installed` text (`apk_db_index_write_nr_cache`): the index records of the
/// installed packages, in the db's order, whose only source is the cache, or that have no
/// source and no content (virtual).
pub fn cache_installed_text<'a>(installed: impl IntoIterator<Item = (&'a PkgInfo, u64)>) -> String {
    let mut s = String::new();
    for (info, repos) in installed {
        if repos == 1 || (repos == 0 && info.installed_size == 0) {
            info.write_index_header(&mut s);
            s.push('\n');
        }
    }
    s
}

/// The cache file name of a repository's index: `APKINDEX.<8 hex>.tar.gz`.
pub fn cache_index_name(url: &str, arch: &str) -> String {
    let full = join_url(url, &format!("{arch}/APKINDEX.tar.gz"));
    format!(
        "APKINDEX.{}.tar.gz",
        hex(&Sha1::digest(full.as_bytes())[..4])
    )
}

/// The cache file name of a package: `<name>-<version>.<8 hex>.apk`.
pub fn cache_package_name(info: &PkgInfo) -> Option<String> {
    Some(format!("{}.{}.apk", info.nv(), info.identity?.short_hex()))
}

/// Parses `etc/apk/repositories` lines: `#` comments, optional `@tag url`.
pub fn parse_repositories_file(text: &str) -> Vec<(Option<String>, String)> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(
            |l| match l.strip_prefix('@').and_then(|r| r.split_once([' ', '\t'])) {
                Some((tag, url)) => (Some(tag.to_string()), url.trim().to_string()),
                None => (None, l.trim().to_string()),
            },
        )
        .collect()
}

/// The repository lines a root configures, as apk reads them: `etc/apk/repositories`, then
/// every `etc/apk/repositories.d/*.list` (apk-tools 2.14 takes these in directory order; here
/// in name order, to be deterministic). Missing files are no repositories.
pub fn root_repositories(root: &Path) -> Vec<(Option<String>, String)> {
    let mut lines = parse_repositories_file(
        &std::fs::read_to_string(root.join("etc/apk/repositories")).unwrap_or_default(),
    );
    let mut lists: Vec<PathBuf> = std::fs::read_dir(root.join("etc/apk/repositories.d"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "list"))
                .collect()
        })
        .unwrap_or_default();
    ramboot_sys::sort::sort(&mut lists);
    for l in lists {
        lines.extend(parse_repositories_file(
            &std::fs::read_to_string(l).unwrap_or_default(),
        ));
    }
    lines
}

impl RepoSet {
    /// Loads every repository: `cmdline` (host paths, in command-line order), then the `extra`
    /// lines (from the root's repositories file; local paths there are host paths too).
    pub fn load(
        cmdline: &[PathBuf],
        extra: &[(Option<String>, String)],
        arch: &str,
        cache_dir: Option<&Path>,
        keys: &Keyring,
        allow_untrusted: bool,
    ) -> RepoSet {
        let mut set = RepoSet {
            cache_dir: cache_dir.map(Path::to_path_buf),
            arch: arch.into(),
            ..Default::default()
        };
        let mut urls: Vec<(Option<String>, String)> = cmdline
            .iter()
            .rev()
            .map(|p| (None, p.to_string_lossy().into_owned()))
            .collect();
        urls.extend(extra.iter().cloned());
        let mut by_identity: HashMap<Checksum, usize> = HashMap::new();
        // `<cache>/installed`: packages installed from files (apk's "cached non-repository"
        // packages); installable when their file is in the cache.
        if let Some(c) = cache_dir {
            let path = c.join(CACHE_INSTALLED);
            if let Ok(text) = std::fs::read_to_string(&path) {
                match parse_index(&text, &path.display().to_string()) {
                    Ok(recs) => {
                        for info in recs {
                            if let Some(k) = info.identity {
                                if by_identity.contains_key(&k) {
                                    continue;
                                }
                                by_identity.insert(k, set.packages.len());
                            }
                            set.packages.push(Available {
                                info,
                                repos: 0,
                                cached_non_repository: true,
                            });
                        }
                    }
                    Err(e) => set.warnings.push(format!("{}: {e}", path.display())),
                }
            }
        }
        for (tag, url) in urls {
            if set.repos.iter().any(|r| r.url == url) {
                continue;
            }
            let index = set.repos.len() + 1;
            if index >= 64 {
                set.warnings
                    .push(format!("{url}: too many repositories, ignored"));
                continue;
            }
            let remote = is_remote(&url);
            let local = url.strip_prefix("file:").unwrap_or(&url);
            let (index_path, dir) = if remote {
                match cache_dir {
                    Some(c) => (c.join(cache_index_name(&url, arch)), None),
                    None => {
                        set.warnings.push(format!(
                            "{url}: remote repository and no cache; skipped (offline install)"
                        ));
                        continue;
                    }
                }
            } else {
                let d = Path::new(local).join(arch);
                let p = d.join("APKINDEX.tar.gz");
                if p.exists() || !Path::new(local).join("APKINDEX.tar.gz").exists() {
                    (p, Some(d))
                } else {
                    // Tolerate a flat repository (index next to the packages).
                    (
                        Path::new(local).join("APKINDEX.tar.gz"),
                        Some(PathBuf::from(local)),
                    )
                }
            };
            let what = index_path.display().to_string();
            let file = match std::fs::File::open(&index_path) {
                Ok(f) => f,
                Err(e) => {
                    set.warnings
                        .push(format!("{url}: cannot open index {what}: {e}"));
                    continue;
                }
            };
            let idx = match read_index(std::io::BufReader::new(file), &what, keys, allow_untrusted)
            {
                Ok(i) => i,
                Err(e) => {
                    set.warnings.push(format!("{url}: index refused: {e}"));
                    continue;
                }
            };
            let recs = match parse_index(&idx.text, &what) {
                Ok(r) => r,
                Err(e) => {
                    set.warnings.push(format!("{url}: index refused: {e}"));
                    continue;
                }
            };
            for info in recs {
                let key = info.identity;
                match key.and_then(|k| by_identity.get(&k).copied()) {
                    Some(i) => set.packages[i].repos |= 1 << index,
                    None => {
                        if let Some(k) = key {
                            by_identity.insert(k, set.packages.len());
                        }
                        set.packages.push(Available {
                            info,
                            repos: 1 << index,
                            cached_non_repository: false,
                        });
                    }
                }
            }
            set.repos.push(Repository {
                index,
                url: url.clone(),
                tag,
                remote,
                dir,
                description: idx.description,
            });
        }
        // Packages present in the cache get bit 0.
        if let Some(c) = cache_dir {
            for p in &mut set.packages {
                if cache_package_name(&p.info).is_some_and(|n| c.join(n).is_file()) {
                    p.repos |= 1;
                }
            }
        }
        set
    }

    /// Is a package installable (some local repository or the cache has it)? As apk's
    /// `pkg_selectable`, also a package listed in `<cache>/installed` and one without content
    /// (installed size 0: nothing to read).
    pub fn available(&self, a: &Available) -> bool {
        a.repos & 1 != 0
            || a.cached_non_repository
            || a.info.installed_size == 0
            || self
                .repos
                .iter()
                .any(|r| a.repos & (1 << r.index) != 0 && (!r.remote || self.fetch_remote))
    }

    /// The remote repository's URL of a package (the first remote repository that lists it).
    pub fn package_url(&self, info: &PkgInfo) -> Option<String> {
        let a = self.packages.iter().find(|a| {
            a.info.identity == info.identity
                && a.info.name == info.name
                && a.info.version == info.version
        })?;
        let r = self
            .repos
            .iter()
            .find(|r| a.repos & (1 << r.index) != 0 && r.remote)?;
        Some(join_url(
            &r.url,
            &format!("{}/{}.apk", self.arch, info.nv()),
        ))
    }

    /// Where to read a package from: local repositories first (lowest index), then the cache.
    pub fn package_path(&self, a: &Available) -> Option<PathBuf> {
        let file = format!("{}.apk", a.info.nv());
        let mut local: Vec<&Repository> = self
            .repos
            .iter()
            .filter(|r| a.repos & (1 << r.index) != 0 && !r.remote)
            .collect();
        ramboot_sys::sort::sort_by_key(&mut local, |r| r.index);
        if let Some(r) = local.first() {
            return r.dir.as_ref().map(|d| d.join(&file));
        }
        let remote = self.fetch_remote
            && self
                .repos
                .iter()
                .any(|r| a.repos & (1 << r.index) != 0 && r.remote);
        if a.repos & 1 != 0 || remote {
            return Some(self.cache_dir.as_ref()?.join(cache_package_name(&a.info)?));
        }
        None
    }
}
