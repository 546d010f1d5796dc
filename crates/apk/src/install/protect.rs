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

/// The rules apk applies before the lists.
pub const BUILT_IN_RULES: [&str; 3] = ["+etc", "@etc/init.d", "!etc/apk"];

/// One line of a protected paths list: its mode and its pattern without surrounding `/`. None
/// for comments, empty lines and empty patterns.
pub fn parse_rule(line: &str) -> Option<(Protect, &str)> {
    let (mode, pattern) = match line.as_bytes().first()? {
        b'#' => return None,
        b'-' => (Protect::Ignore, &line[1..]),
        b'+' => (Protect::Changed, &line[1..]),
        b'@' => (Protect::SymlinksOnly, &line[1..]),
        b'!' => (Protect::All, &line[1..]),
        _ => (Protect::Changed, line),
    };
    let pattern = pattern.trim_matches('/');
    (!pattern.is_empty()).then_some((mode, pattern))
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
        for l in BUILT_IN_RULES {
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
        !self.mode(dir).none()
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
