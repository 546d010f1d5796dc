//! What `mkinitfs` must ship: the closure of a set of names, aliases or path globs.

use super::{ModuleDb, ModuleError};
use crate::fnmatch::fnmatch;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The modules a set of names, aliases or `modules.dep` path globs needs: the closure over
/// dependencies and softdeps, as paths relative to the modules directory (sorted).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Closure {
    pub paths: Vec<PathBuf>,
    /// Entries that matched nothing (neither loadable nor built in).
    pub missing: Vec<String>,
}

/// [`closure_detailed`] without the list of misses (they are logged).
pub fn closure(modules_dir: &Path, names_or_globs: &[&str]) -> Result<Vec<PathBuf>, ModuleError> {
    let c = closure_detailed(modules_dir, names_or_globs)?;
    for m in &c.missing {
        log::warn!(
            "feature entry {m} matches no module in {}",
            modules_dir.display()
        );
    }
    Ok(c.paths)
}

/// Computes the module closure for mkinitfs. Entries with a `/` are globs over `modules.dep`
/// paths (`*` crosses `/`, like `find -path`; a trailing `/` means the whole directory; a
/// trailing `.ko*` is optional); others are module names or aliases. Blank lines and `#` comments
/// are skipped so feature files can be passed line by line.
pub fn closure_detailed(
    modules_dir: &Path,
    names_or_globs: &[&str],
) -> Result<Closure, ModuleError> {
    let db = ModuleDb::from_dir_host(modules_dir, modules_dir.to_path_buf())?;
    let mut want: BTreeSet<String> = BTreeSet::new();
    let mut missing = Vec::new();
    for raw in names_or_globs {
        let entry = raw.split('#').next().unwrap_or("").trim();
        if entry.is_empty() {
            continue;
        }
        let before = want.len();
        let mut hit = false;
        if entry.contains('/') {
            let pat = if entry.ends_with('/') {
                format!("{entry}*")
            } else {
                entry.to_string()
            };
            for (name, m) in &db.modules {
                let stem = m
                    .path
                    .find(".ko")
                    .map(|i| &m.path[..i + 3])
                    .unwrap_or(&m.path);
                if fnmatch(&pat, &m.path) || fnmatch(&pat, stem) {
                    want.insert(name.clone());
                }
            }
        } else {
            let r = db.resolve(entry, false);
            hit = r.modules.iter().any(|m| db.builtin.contains(m));
            want.extend(r.modules.into_iter().filter(|m| db.modules.contains_key(m)));
        }
        if want.len() == before && !hit {
            missing.push(entry.to_string());
        }
    }
    // Close over hard and soft dependencies.
    let mut stack: Vec<String> = want.iter().cloned().collect();
    while let Some(m) = stack.pop() {
        let mut next: Vec<String> = db
            .modules
            .get(&m)
            .map(|e| e.deps.clone())
            .unwrap_or_default();
        if let Some(sd) = db.softdep(&m) {
            for s in sd.pre.iter().chain(&sd.post) {
                next.extend(db.resolve(s, false).modules);
            }
        }
        for n in next {
            if db.modules.contains_key(&n) && want.insert(n.clone()) {
                stack.push(n);
            }
        }
    }
    let mut paths: Vec<PathBuf> = want
        .iter()
        .filter_map(|m| db.modules.get(m))
        .map(|e| PathBuf::from(&e.path))
        .collect();
    crate::sys::sort::sort(&mut paths);
    Ok(Closure { paths, missing })
}
