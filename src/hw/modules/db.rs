//! The indexes depmod wrote for one kernel release, read once, and name/alias resolution.

use super::alias::{longest_literal, AliasTable};
use super::{name_from_path, normalize, normalize_alias, ModprobeConfig, ModuleError};
use crate::fnmatch::fnmatch;
use crate::sys::Sys;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// One line of `modules.dep`.
#[derive(Clone, Debug)]
pub struct ModuleEntry {
    /// Relative to the modules directory.
    pub path: String,
    /// Every module this one needs (depmod lists the full closure).
    pub deps: Vec<String>,
}

/// `softdep` pre/post lists (module names or aliases).
#[derive(Clone, Debug, Default)]
pub struct SoftDep {
    pub pre: Vec<String>,
    pub post: Vec<String>,
}

/// Everything needed to resolve and order module requests for one kernel release.
#[derive(Debug)]
pub struct ModuleDb {
    /// `/lib/modules/<release>` as PID 1 sees it.
    pub dir: PathBuf,
    pub modules: HashMap<String, ModuleEntry>,
    pub builtin: HashSet<String>,
    aliases: AliasTable,
    builtin_aliases: AliasTable,
    pub softdeps: HashMap<String, SoftDep>,
    pub config: ModprobeConfig,
}

pub(super) fn read_opt(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

impl ModuleDb {
    /// Reads the indexes under `/lib/modules/<release>` and the configuration in
    /// `/lib/modprobe.d`, `/etc/modprobe.d` and `/proc/cmdline`, all through `sys.path`.
    pub fn open(sys: &dyn Sys, release: &str) -> Result<ModuleDb, ModuleError> {
        let dir = PathBuf::from("/lib/modules").join(release);
        let mut db = ModuleDb::from_dir_host(&sys.path(&dir), dir)?;
        for conf_dir in ["/lib/modprobe.d", "/etc/modprobe.d"] {
            let host = sys.path(Path::new(conf_dir));
            let mut files: Vec<PathBuf> = std::fs::read_dir(&host)
                .map(|rd| {
                    rd.flatten()
                        .map(|e| e.path())
                        .filter(|p| p.extension().is_some_and(|x| x == "conf"))
                        .collect()
                })
                .unwrap_or_default();
            crate::sys::sort::sort(&mut files);
            for f in files {
                db.config.parse(&read_opt(&f));
            }
        }
        db.config
            .parse_cmdline(&read_opt(&sys.path(Path::new("/proc/cmdline"))));
        Ok(db)
    }

    /// Reads the depmod indexes from a host directory (no configuration). `dir` is how the files
    /// are named in load requests (the guest path).
    pub fn from_dir_host(host: &Path, dir: PathBuf) -> Result<ModuleDb, ModuleError> {
        let dep_path = host.join("modules.dep");
        let dep = std::fs::read_to_string(&dep_path).map_err(|source| ModuleError::ReadIndex {
            path: dep_path,
            source,
        })?;
        let mut db = ModuleDb {
            dir,
            modules: HashMap::new(),
            builtin: HashSet::new(),
            aliases: AliasTable::default(),
            builtin_aliases: AliasTable::default(),
            softdeps: HashMap::new(),
            config: ModprobeConfig::default(),
        };
        for line in dep.lines() {
            let Some((path, deps)) = line.split_once(':') else {
                continue;
            };
            let path = path.trim();
            if path.is_empty() {
                continue;
            }
            let deps = deps.split_whitespace().map(name_from_path).collect();
            db.modules.insert(
                name_from_path(path),
                ModuleEntry {
                    path: path.to_string(),
                    deps,
                },
            );
        }
        for line in read_opt(&host.join("modules.alias")).lines() {
            let mut w = line.split_whitespace();
            if let (Some("alias"), Some(pat), Some(m)) = (w.next(), w.next(), w.next()) {
                db.aliases.insert(normalize_alias(pat), normalize(m));
            }
        }
        for line in read_opt(&host.join("modules.softdep")).lines() {
            let mut cfg = ModprobeConfig::default();
            cfg.parse(line);
            for (m, sd) in cfg.softdeps {
                let e = db.softdeps.entry(m).or_default();
                e.pre.extend(sd.pre);
                e.post.extend(sd.post);
            }
        }
        for line in read_opt(&host.join("modules.builtin"))
            .lines()
            .filter(|l| !l.trim().is_empty())
        {
            db.builtin.insert(name_from_path(line.trim()));
        }
        // `name.alias=pattern` records, NUL-separated.
        if let Ok(bytes) = std::fs::read(host.join("modules.builtin.modinfo")) {
            for rec in bytes.split(|&b| b == 0) {
                let Ok(rec) = std::str::from_utf8(rec) else {
                    continue;
                };
                if let Some((name, rest)) = rec.split_once('.') {
                    if let Some(pat) = rest.strip_prefix("alias=") {
                        db.builtin_aliases
                            .insert(normalize_alias(pat), normalize(name));
                    }
                }
            }
        }
        Ok(db)
    }

    /// True when the `modules.alias` under `host` has a pattern for one of `modaliases`. A
    /// streaming scan that builds no table: whether a whole index (the modloop's 1.3 MB of
    /// aliases) is worth reading for a few devices. Most lines are rejected without allocating:
    /// by their bus (the text before `:`), then by the last three bytes of their longest literal
    /// run, which a matching modalias must contain (as in the alias table's lookups).
    pub fn has_alias_for(host: &Path, modaliases: &[String]) -> bool {
        let wanted: Vec<String> = modaliases.iter().map(|m| normalize_alias(m)).collect();
        let bus = |s: &str| s.split_once(':').map(|(b, _)| b.to_string());
        let buses: HashSet<String> = wanted.iter().filter_map(|m| bus(m)).collect();
        let trigrams: HashSet<[u8; 3]> = wanted
            .iter()
            .flat_map(|m| m.as_bytes().windows(3).map(|w| [w[0], w[1], w[2]]))
            .collect();
        read_opt(&host.join("modules.alias")).lines().any(|line| {
            let mut w = line.split_whitespace();
            let (Some("alias"), Some(raw)) = (w.next(), w.next()) else {
                return false;
            };
            // A bus with a glob in it (or none) goes on to the full check.
            if let Some((b, _)) = raw.split_once(':') {
                let literal = !b.bytes().any(|c| matches!(c, b'*' | b'?' | b'[' | b'\\'));
                let known = if b.contains('-') {
                    buses.contains(&b.replace('-', "_"))
                } else {
                    buses.contains(b)
                };
                if literal && !known {
                    return false;
                }
            }
            let pattern = normalize_alias(raw);
            let needle = longest_literal(&pattern);
            if let [.., x, y, z] = needle.as_bytes() {
                if !trigrams.contains(&[*x, *y, *z]) {
                    return false;
                }
            }
            wanted
                .iter()
                .any(|m| m.contains(needle.as_str()) && fnmatch(&pattern, m))
        })
    }

    /// Softdeps from the config override those depmod extracted, as in kmod.
    pub fn softdep(&self, module: &str) -> Option<&SoftDep> {
        self.config
            .softdeps
            .get(module)
            .or_else(|| self.softdeps.get(module))
    }

    /// Resolves a name, alias or modalias to module names (loadable or built-in).
    /// `blacklist_names` also applies the blacklist to a direct name match (`modprobe -b`).
    pub fn resolve(&self, query: &str, blacklist_names: bool) -> Resolved {
        let q = normalize_alias(query);
        let mut via_alias = Vec::new();
        self.config.aliases.lookup(&q, &mut via_alias);
        if via_alias.is_empty() {
            let name = normalize(query);
            if self.modules.contains_key(&name) || self.builtin.contains(&name) {
                if blacklist_names && self.config.blacklist.contains(&name) {
                    return Resolved {
                        modules: vec![],
                        blacklisted: vec![name],
                    };
                }
                return Resolved {
                    modules: vec![name],
                    blacklisted: vec![],
                };
            }
            self.aliases.lookup(&q, &mut via_alias);
            self.builtin_aliases.lookup(&q, &mut via_alias);
        }
        let (blacklisted, modules) = via_alias
            .into_iter()
            .partition(|m| self.config.blacklist.contains(m));
        Resolved {
            modules,
            blacklisted,
        }
    }

    /// Parameters for a module from `options` lines and the kernel command line.
    pub fn params(&self, module: &str) -> Vec<String> {
        self.config.options.get(module).cloned().unwrap_or_default()
    }
}

/// What a lookup found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resolved {
    pub modules: Vec<String>,
    /// Matches hidden by the blacklist.
    pub blacklisted: Vec<String>,
}
