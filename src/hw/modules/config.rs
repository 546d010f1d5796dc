//! The `modprobe.d` configuration and what the kernel command line adds to it.

use super::alias::AliasTable;
use super::{normalize, normalize_alias, SoftDep};
use std::collections::{HashMap, HashSet};

/// The `modprobe.d` configuration plus what the kernel command line adds.
#[derive(Default, Debug)]
pub struct ModprobeConfig {
    pub blacklist: HashSet<String>,
    /// Parameters per module, in file order.
    pub options: HashMap<String, Vec<String>>,
    pub(super) aliases: AliasTable,
    pub softdeps: HashMap<String, SoftDep>,
}

impl ModprobeConfig {
    /// Parses one `modprobe.d` file. `install`/`remove` commands are ignored (no shell here).
    pub fn parse(&mut self, text: &str) {
        let mut logical = String::new();
        for raw in text.lines() {
            // Backslash continues a line.
            if let Some(stripped) = raw.strip_suffix('\\') {
                logical.push_str(stripped);
                logical.push(' ');
                continue;
            }
            logical.push_str(raw);
            let line = std::mem::take(&mut logical);
            let line = line.split('#').next().unwrap_or("");
            let mut words = line.split_whitespace();
            match (words.next(), words.next()) {
                (Some("blacklist"), Some(m)) => {
                    self.blacklist.insert(normalize(m));
                }
                (Some("options"), Some(m)) => {
                    self.options
                        .entry(normalize(m))
                        .or_default()
                        .extend(words.map(str::to_string));
                }
                (Some("alias"), Some(a)) => {
                    if let Some(m) = words.next() {
                        self.aliases.insert(normalize_alias(a), normalize(m));
                    }
                }
                (Some("softdep"), Some(m)) => {
                    let sd = self.softdeps.entry(normalize(m)).or_default();
                    let mut post = false;
                    for w in words {
                        match w {
                            "pre:" => post = false,
                            "post:" => post = true,
                            w if post => sd.post.push(w.to_string()),
                            w => sd.pre.push(w.to_string()),
                        }
                    }
                }
                (Some(cmd @ ("install" | "remove")), Some(m)) => {
                    log::debug!("modprobe.d: `{cmd} {m}` ignored (no shell commands in ramboot)");
                }
                _ => {}
            }
        }
    }

    /// Applies the kernel command line: `modprobe.blacklist=a,b`, Alpine's `blacklist=a,b` (which
    /// Alpine's init turns into a modprobe.d file) and `module.param=value`.
    pub fn parse_cmdline(&mut self, cmdline: &str) {
        for word in cmdline.split_whitespace() {
            let Some((key, value)) = word.split_once('=') else {
                continue;
            };
            if key == "modprobe.blacklist" || key == "blacklist" {
                self.blacklist
                    .extend(value.split(',').filter(|s| !s.is_empty()).map(normalize));
            } else if let Some((module, param)) = key.split_once('.') {
                if !module.is_empty() && !param.is_empty() && !module.contains('/') {
                    let value = value.trim_matches('"');
                    self.options
                        .entry(normalize(module))
                        .or_default()
                        .push(format!("{param}={value}"));
                }
            }
        }
    }
}
