//! Protected paths (`etc/apk/protected_paths.d`) and the overlay list: which existing files a
//! package must not simply overwrite.

use crate::fnmatch::fnmatch_pathname as fnmatch;
use std::collections::HashSet;
use std::path::Path;

/// How a directory or file is protected (apk's `APK_PROTECT_*`), as a rule of
/// `etc/apk/protected_paths.d/*.list` says: the installer keeps such files, `ramboot commit`
/// saves them.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Protect {
    /// No rule says anything.
    None,
    /// `-`: never protected.
    Ignore,
    /// `+` (or no mark): protected when changed or new.
    Changed,
    /// `@`: symlinks only.
    SymlinksOnly,
    /// `!`: always.
    All,
}

impl Protect {
    /// Not protected at all: no rule, or `-`.
    pub fn none(self) -> bool {
        matches!(self, Protect::None | Protect::Ignore)
    }
}

/// The rules apk applies before the lists, a line each (one string, not an array of them: an
/// array of `&str` is relocated data in the static init).
pub const BUILT_IN_RULES: &str = "+etc\n@etc/init.d\n!etc/apk";

/// One line of a protected paths list: its mode and its pattern without surrounding `/`. None
/// for comments, empty lines and empty patterns.
pub fn parse_rule(line: &str) -> Option<(Protect, &str)> {
    let (mode, pattern) = match line.as_bytes().first() {
        Some(b'-') => (Protect::Ignore, &line[1..]),
        Some(b'+') => (Protect::Changed, &line[1..]),
        Some(b'@') => (Protect::SymlinksOnly, &line[1..]),
        Some(b'!') => (Protect::All, &line[1..]),
        Some(b'#') | None => return None,
        _ => (Protect::Changed, line),
    };
    let pattern = pattern.trim_matches('/');
    if pattern.is_empty() {
        return None;
    }
    Some((mode, pattern))
}

pub(super) struct Protection {
    rules: Vec<(Protect, Vec<String>)>,
}

impl Protection {
    pub(super) fn load(root: &Path) -> Protection {
        let mut rules = Vec::new();
        let mut add = |line: &str| {
            if let Some((mode, pat)) = parse_rule(line) {
                rules.push((mode, pat.split('/').map(String::from).collect()));
            }
        };
        for l in BUILT_IN_RULES.lines() {
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
