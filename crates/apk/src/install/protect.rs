//! Protected paths (`etc/apk/protected_paths.d`) and the overlay list: which existing files a
//! package must not simply overwrite.

use crate::fnmatch::fnmatch_pathname as fnmatch;
use std::collections::HashSet;
use std::path::Path;

/// Protection modes of directories (`etc/apk/protected_paths.d`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Protect {
    None,
    Ignore,
    Changed,
    SymlinksOnly,
    All,
}

pub(super) struct Protection {
    rules: Vec<(Protect, Vec<String>)>,
}

impl Protection {
    pub(super) fn load(root: &Path) -> Protection {
        let mut rules = Vec::new();
        let mut add = |line: &str| {
            let (mode, pat) = match line.as_bytes().first() {
                Some(b'-') => (Protect::Ignore, &line[1..]),
                Some(b'+') => (Protect::Changed, &line[1..]),
                Some(b'@') => (Protect::SymlinksOnly, &line[1..]),
                Some(b'!') => (Protect::All, &line[1..]),
                Some(b'#') | None => return,
                _ => (Protect::Changed, line),
            };
            let pat = pat.trim_matches('/');
            if !pat.is_empty() {
                rules.push((mode, pat.split('/').map(String::from).collect()));
            }
        };
        for l in ["+etc", "@etc/init.d", "!etc/apk"] {
            add(l);
        }
        if let Ok(rd) = std::fs::read_dir(root.join("etc/apk/protected_paths.d")) {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().ends_with(".list") {
                    for l in std::fs::read_to_string(e.path())
                        .unwrap_or_default()
                        .lines()
                    {
                        add(l);
                    }
                }
            }
        }
        Protection { rules }
    }

    /// A directory's mode: the most specific matching rule; children inherit.
    fn mode(&self, dir: &str) -> Protect {
        let comps: Vec<&str> = if dir.is_empty() {
            Vec::new()
        } else {
            dir.split('/').collect()
        };
        let mut best = (0usize, Protect::None);
        for (mode, pat) in &self.rules {
            if pat.len() <= comps.len()
                && pat.len() >= best.0
                && pat.iter().zip(&comps).all(|(p, c)| fnmatch(p, c))
            {
                best = (pat.len(), *mode);
            }
        }
        best.1
    }

    pub(super) fn protects(&self, dir: &str) -> bool {
        !matches!(self.mode(dir), Protect::None | Protect::Ignore)
    }
}

/// Parses the overlay list: files (full paths) and directories. Stops at a line without `/`.
pub(super) fn parse_overlay(lines: &[String]) -> (HashSet<String>, HashSet<String>) {
    let (mut files, mut dirs) = (HashSet::new(), HashSet::new());
    for l in lines {
        let Some((dir, file)) = l.rsplit_once('/') else {
            break;
        };
        if !dir.is_empty() {
            dirs.insert(dir.to_string());
        }
        if !file.is_empty() {
            files.insert(l.clone());
        }
    }
    (files, dirs)
}
