//! Package metadata: `.PKGINFO` lines and APKINDEX records.
//!
//! One struct serves both, because the installed db is an APKINDEX with extra letters, and the
//! index itself is built from `.PKGINFO`.

use super::checksum::{hex, unhex, Checksum};
use super::dep::{list_text, Dep};
use super::{ApkError, RecordError};
use crate::quote::quoted;
use std::fmt::Write as _;

/// Everything apk knows about one package, from the index or from its `.PKGINFO`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PkgInfo {
    /// `P:` / `pkgname`.
    pub name: String,
    /// `V:` / `pkgver`.
    pub version: String,
    /// `A:` / `arch`.
    pub arch: String,
    /// `T:` / `pkgdesc`.
    pub description: String,
    /// `U:` / `url`.
    pub url: String,
    /// `L:` / `license`.
    pub license: String,
    /// `o:` / `origin`: the source package.
    pub origin: String,
    /// `m:` / `maintainer`.
    pub maintainer: String,
    /// `t:` / `builddate`, seconds since the epoch.
    pub build_time: u64,
    /// `c:` / `commit` of the package's source. Present but empty (abuild outside a git
    /// checkout writes `commit = `) is kept apart from absent: apk writes `c:` for it.
    pub commit: Option<String>,
    /// `k:` / `provider_priority`.
    pub provider_priority: u32,
    /// `D:` / `depend`.
    pub depends: Vec<Dep>,
    /// `p:` / `provides`.
    pub provides: Vec<Dep>,
    /// `i:` / `install_if`.
    pub install_if: Vec<Dep>,
    /// `S:`: size of the `.apk` file.
    pub file_size: u64,
    /// `I:`: installed size; 0 means the file is never opened.
    pub installed_size: u64,
    /// `C:`: SHA1 of the control member (the identity).
    pub identity: Option<Checksum>,
    /// Install-time only (`.PKGINFO`, db `r:`/`q:`).
    pub replaces: Vec<Dep>,
    /// `q:` / `replaces_priority`.
    pub replaces_priority: u32,
    /// `.PKGINFO triggers`: globs, the last `triggers =` line wins.
    pub triggers: Vec<String>,
    /// `.PKGINFO datahash`: SHA256 of the compressed data members.
    pub datahash: Option<[u8; 32]>,
    /// An index record had an unknown upper-case field: a newer format apk refuses to install.
    pub uninstallable: bool,
}

impl PkgInfo {
    /// `name-version`, as apk prints packages.
    pub fn nv(&self) -> String {
        format!("{}-{}", self.name, self.version)
    }

    /// Applies one `key = value` line of `.PKGINFO`. Unknown keys are ignored.
    pub(crate) fn apply_pkginfo_line(&mut self, key: &str, value: &str) -> Result<(), ApkError> {
        let num = |v: &str| {
            v.trim().parse::<u64>().map_err(|_| ApkError::Format {
                what: ".PKGINFO".into(),
                reason: format!("`{key}` is not a number: {}", quoted(v)),
            })
        };
        match key {
            "pkgname" => self.name = value.into(),
            "pkgver" => self.version = value.into(),
            "pkgdesc" => self.description = value.into(),
            "url" => self.url = value.into(),
            "size" => self.installed_size = num(value)?,
            "license" => self.license = value.into(),
            "arch" => self.arch = value.into(),
            "depend" => self.depends.extend(Dep::parse_list(value)?),
            "provides" => self.provides.extend(Dep::parse_list(value)?),
            "install_if" => self.install_if.extend(Dep::parse_list(value)?),
            "origin" => self.origin = value.into(),
            "maintainer" => self.maintainer = value.into(),
            "builddate" => self.build_time = num(value)?,
            "commit" => self.commit = Some(value.into()),
            "provider_priority" => self.provider_priority = num(value)? as u32,
            "replaces" => self.replaces.extend(Dep::parse_list(value)?),
            "replaces_priority" => self.replaces_priority = num(value)? as u32,
            "triggers" => {
                self.triggers = value
                    .split(' ')
                    .filter(|t| !t.is_empty())
                    .map(String::from)
                    .collect()
            }
            "datahash" => {
                let bytes = unhex(value.trim())
                    .filter(|b| b.len() == 32)
                    .ok_or_else(|| ApkError::Format {
                        what: ".PKGINFO".into(),
                        reason: format!("datahash is not 64 hex digits: {}", quoted(value)),
                    })?;
                self.datahash = Some(bytes.try_into().expect("length checked"));
            }
            _ => {}
        }
        Ok(())
    }

    /// Parses a whole `.PKGINFO`.
    pub fn parse_pkginfo(text: &str) -> Result<PkgInfo, ApkError> {
        let mut p = PkgInfo::default();
        // Lines end at `\n` only, as apk reads them: a `\r` belongs to the value.
        for line in text.split('\n') {
            if line.starts_with('#') {
                continue;
            }
            if let Some((k, v)) = line.split_once(" = ") {
                p.apply_pkginfo_line(k, v)?;
            }
        }
        Ok(p)
    }

    /// Writes a `.PKGINFO` (the builder's side).
    pub fn write_pkginfo(&self) -> String {
        let mut s = String::from("# Generated by ramboot apk build\n");
        let mut kv = |k: &str, v: &str| {
            let _ = writeln!(s, "{k} = {v}");
        };
        kv("pkgname", &self.name);
        kv("pkgver", &self.version);
        kv("pkgdesc", &self.description);
        kv("url", &self.url);
        kv("builddate", &self.build_time.to_string());
        kv("size", &self.installed_size.to_string());
        kv("arch", &self.arch);
        if !self.origin.is_empty() {
            kv("origin", &self.origin);
        }
        if !self.maintainer.is_empty() {
            kv("maintainer", &self.maintainer);
        }
        kv("license", &self.license);
        if let Some(c) = &self.commit {
            kv("commit", c);
        }
        if self.provider_priority != 0 {
            kv("provider_priority", &self.provider_priority.to_string());
        }
        for d in &self.depends {
            kv("depend", &d.to_string());
        }
        for d in &self.provides {
            kv("provides", &d.to_string());
        }
        for d in &self.install_if {
            kv("install_if", &d.to_string());
        }
        for d in &self.replaces {
            kv("replaces", &d.to_string());
        }
        if self.replaces_priority != 0 {
            kv("replaces_priority", &self.replaces_priority.to_string());
        }
        if !self.triggers.is_empty() {
            kv("triggers", &self.triggers.join(" "));
        }
        if let Some(h) = &self.datahash {
            kv("datahash", &hex(h));
        }
        s
    }

    /// Applies one `X:value` index/db field. Returns false for letters it does not know
    /// (the caller decides what that means).
    pub(crate) fn apply_index_field(
        &mut self,
        letter: u8,
        value: &str,
    ) -> Result<bool, RecordError> {
        let num = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| RecordError::NotANumber(letter as char))
        };
        let deps = |v: &str| Dep::parse_list(v).map_err(|e| RecordError::Dependency(Box::new(e)));
        match letter {
            b'C' => {
                self.identity = Some(Checksum::parse(value).ok_or(RecordError::BadChecksum)?);
            }
            b'P' => self.name = value.into(),
            b'V' => self.version = value.into(),
            b'A' => self.arch = value.into(),
            b'S' => self.file_size = num(value)?,
            b'I' => self.installed_size = num(value)?,
            b'T' => self.description = value.into(),
            b'U' => self.url = value.into(),
            b'L' => self.license = value.into(),
            b'o' => self.origin = value.into(),
            b'm' => self.maintainer = value.into(),
            b't' => self.build_time = num(value)?,
            b'c' => self.commit = Some(value.into()),
            b'k' => self.provider_priority = num(value)? as u32,
            b'D' => self.depends.extend(deps(value)?),
            b'p' => self.provides.extend(deps(value)?),
            b'i' => self.install_if.extend(deps(value)?),
            b'r' => self.replaces.extend(deps(value)?),
            b'q' => self.replaces_priority = num(value)? as u32,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The index header in apk's field order `C P V A S I T U L o m t c k D p i`.
    pub fn write_index_header(&self, out: &mut String) {
        let mut f = |letter: char, v: &str| {
            let _ = writeln!(out, "{letter}:{v}");
        };
        if let Some(c) = &self.identity {
            f('C', &c.to_string());
        }
        f('P', &self.name);
        f('V', &self.version);
        if !self.arch.is_empty() {
            f('A', &self.arch);
        }
        f('S', &self.file_size.to_string());
        f('I', &self.installed_size.to_string());
        f('T', &self.description);
        f('U', &self.url);
        f('L', &self.license);
        if !self.origin.is_empty() {
            f('o', &self.origin);
        }
        if !self.maintainer.is_empty() {
            f('m', &self.maintainer);
        }
        if self.build_time != 0 {
            f('t', &self.build_time.to_string());
        }
        if let Some(c) = &self.commit {
            f('c', c);
        }
        if self.provider_priority != 0 {
            f('k', &self.provider_priority.to_string());
        }
        if !self.depends.is_empty() {
            f('D', &list_text(&self.depends));
        }
        if !self.provides.is_empty() {
            f('p', &list_text(&self.provides));
        }
        if !self.install_if.is_empty() {
            f('i', &list_text(&self.install_if));
        }
    }

    /// Does this package provide `name`, and with which version (None: virtual)?
    /// The outer Option is "provides at all".
    pub fn provides_name(&self, name: &str) -> Option<Option<&str>> {
        if self.name == name {
            return Some(Some(&self.version));
        }
        self.provides
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.provided_version())
    }
}

/// Parses APKINDEX text into records. A record ends at an empty line; a trailing record with
/// no empty line after it is dropped, as apk does. `source` names the index in errors.
pub fn parse_index(text: &str, source: &str) -> Result<Vec<PkgInfo>, ApkError> {
    let mut out = Vec::new();
    let mut cur = PkgInfo::default();
    let mut started = false;
    for (n, line) in text.split_terminator('\n').enumerate() {
        if line.len() < 2 {
            if started {
                if cur.name.is_empty() || cur.version.is_empty() {
                    return Err(ApkError::IndexParse {
                        file: source.into(),
                        line: n + 1,
                        problem: RecordError::NoNameOrVersion,
                    });
                }
                out.push(std::mem::take(&mut cur));
                started = false;
            }
            continue;
        }
        let b = line.as_bytes();
        if b[1] != b':' || !b[0].is_ascii_alphabetic() {
            return Err(ApkError::IndexParse {
                file: source.into(),
                line: n + 1,
                problem: RecordError::NotAField(quoted(&truncate(line, 60)).to_string()),
            });
        }
        started = true;
        let known =
            cur.apply_index_field(b[0], &line[2..])
                .map_err(|problem| ApkError::IndexParse {
                    file: source.into(),
                    line: n + 1,
                    problem,
                })?;
        if !known && b[0].is_ascii_uppercase() && !b"FMRZ".contains(&b[0]) {
            cur.uninstallable = true;
        }
    }
    Ok(out)
}

pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.into();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_round_trip() {
        let text = "C:Q1sKBraP0l14fbx+ZBoqeB0pFzpH4=\nP:foo\nV:1.0-r0\nA:x86_64\nS:100\nI:200\nT:d\nU:\nL:MIT\nk:3\nD:bar so:x\np:cmd:foo=1.0\n\nP:dropped\nV:1\n";
        let pkgs = parse_index(text, "t").unwrap();
        assert_eq!(pkgs.len(), 1);
        let mut s = String::new();
        pkgs[0].write_index_header(&mut s);
        s.push('\n');
        assert_eq!(s, text.split("P:dropped").next().unwrap());
        assert!(parse_index("P:x\nbad line\n\n", "t").is_err());
    }
}
