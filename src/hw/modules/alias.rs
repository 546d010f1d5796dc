//! Glob aliases (`modules.alias`, `modprobe.d` `alias`) indexed for fast modalias lookups.

use crate::fnmatch::fnmatch;
use std::collections::{HashMap, HashSet};

/// Glob aliases, bucketed by the literal text before the first `:` so a modalias is only matched
/// against patterns of its own bus (plus the few that start with a wildcard).
/// Glob aliases indexed for fast modalias lookups (thousands of `of:`/`pci:`/`usb:` patterns,
/// one lookup per device, and under emulation every microsecond counts). Each pattern keeps its
/// longest literal run (the needle): a text the pattern matches contains the needle, so it also
/// contains the needle's last three bytes. Patterns are bucketed by those three bytes and a lookup
/// only visits the buckets of the trigrams that occur in the text, then checks the needle with a
/// substring search before the glob match.
#[derive(Default, Debug)]
pub(super) struct AliasTable {
    by_trigram: HashMap<[u8; 3], Vec<AliasEntry>>,
    /// Needles shorter than three bytes.
    short: Vec<AliasEntry>,
}

#[derive(Debug)]
struct AliasEntry {
    pattern: String,
    module: String,
    needle: String,
}

/// The longest run of literal characters in a glob (outside `[...]`, escapes cut runs short):
/// every text the glob matches contains it.
pub(super) fn longest_literal(pattern: &str) -> String {
    let b = pattern.as_bytes();
    let mut best = "";
    let (mut i, mut start) = (0usize, 0usize);
    loop {
        let end = i >= b.len();
        if end || matches!(b[i], b'*' | b'?' | b'[' | b'\\') {
            if let Some(run) = pattern.get(start..i.min(b.len())) {
                if run.len() > best.len() {
                    best = run;
                }
            }
            if end {
                break;
            }
            i = match b[i] {
                b'[' => {
                    // Same rules as the matcher: `!`/`^` negates, a leading `]` is literal.
                    let mut j = i + 1;
                    if matches!(b.get(j), Some(b'!' | b'^')) {
                        j += 1;
                    }
                    if b.get(j) == Some(&b']') {
                        j += 1;
                    }
                    match b[j.min(b.len())..].iter().position(|&c| c == b']') {
                        Some(k) => j + k + 1,
                        None => break, // unterminated: stop, the run so far is still required
                    }
                }
                b'\\' => i + 2,
                _ => i + 1,
            };
            start = i;
        } else {
            i += 1;
        }
    }
    best.to_string()
}

impl AliasTable {
    pub(super) fn insert(&mut self, pattern: String, module: String) {
        let needle = longest_literal(&pattern);
        let entry = AliasEntry {
            pattern,
            module,
            needle,
        };
        match entry.needle.as_bytes() {
            [.., a, b, c] => {
                let key = [*a, *b, *c];
                self.by_trigram.entry(key).or_default().push(entry);
            }
            _ => self.short.push(entry),
        }
    }

    pub(super) fn lookup(&self, alias: &str, out: &mut Vec<String>) {
        let mut seen: HashSet<[u8; 3]> = HashSet::new();
        let buckets = alias
            .as_bytes()
            .windows(3)
            .map(|w| [w[0], w[1], w[2]])
            .filter(|k| seen.insert(*k))
            .filter_map(|k| self.by_trigram.get(&k))
            .flatten();
        for e in buckets.chain(&self.short) {
            if alias.contains(e.needle.as_str())
                && fnmatch(&e.pattern, alias)
                && !out.contains(&e.module)
            {
                out.push(e.module.clone());
            }
        }
    }
}
