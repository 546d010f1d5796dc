//! Which files go into the apkovl: what `lbu commit` takes, i.e. `apk audit --backup --recursive
//! --check-permissions` over the root, then the `+` entries of lbu's list that exist as files.
//!
//! The protected-path rules are apk's (`add_protected_path`, `apk_db_dir_get`): the built-in
//! `+etc`, `@etc/init.d`, `!etc/apk`, then every `etc/apk/protected_paths.d/*.list` (by name),
//! then lbu's old `/etc/lbu/include` and `/etc/lbu/exclude` as lbu would migrate them. Each
//! directory takes its mode from its parent and the last rule matching its name; a rule with a
//! `/` hands its rest down to the matching child. Within a protected directory a file is taken
//! when no package owns it, when its checksum, mode or owner differs from the apk database, or
//! always (`!`); `@` takes symlinks only; a directory is taken when no package owns it or its
//! mode or owner differs.

use crate::apk::checksum::Checksum;
use crate::apk::db;
use crate::apk::install::{parse_rule, Protect, BUILT_IN_RULES};
use crate::fnmatch::fnmatch_pathname as fnmatch;
use crate::fsutil::Root;
use crate::sys::sort::sort;
use sha1::Digest;
use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// One rule: a pattern (components still to match) and its mode.
#[derive(Clone, Debug)]
struct Rule {
    pattern: String,
    mode: Protect,
}

fn rule((mode, pattern): (Protect, &str)) -> Rule {
    Rule {
        pattern: pattern.to_string(),
        mode,
    }
}

/// The rules in apk's order, and the `+` entries of lbu's lists (the lbu step after the audit).
pub struct Rules {
    top: Vec<Rule>,
    includes: Vec<String>,
}

/// lbu's list of includes and excludes.
pub const LBU_LIST: &str = "etc/apk/protected_paths.d/lbu.list";

impl Rules {
    /// Reads the rules of the root at `root`.
    pub fn load(root: &Root) -> Rules {
        let mut lines: Vec<String> = BUILT_IN_RULES.lines().map(String::from).collect();
        let mut lists: Vec<String> = fs::read_dir(root.path().join("etc/apk/protected_paths.d"))
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|n| n.ends_with(".list"))
                    .collect()
            })
            .unwrap_or_default();
        sort(&mut lists);
        let text = |rel: &str| root.read_to_string(Path::new(rel)).unwrap_or_default();
        let mut includes = Vec::new();
        for name in &lists {
            let body = text(&format!("etc/apk/protected_paths.d/{name}"));
            lines.extend(body.lines().map(String::from));
            if format!("etc/apk/protected_paths.d/{name}") == LBU_LIST {
                includes.extend(body.lines().filter_map(|l| l.strip_prefix('+')).map(clean));
            }
        }
        // lbu's include and exclude files of old: `lbu` migrates them into lbu.list.
        for (file, prefix) in [("etc/lbu/include", '+'), ("etc/lbu/exclude", '-')] {
            for l in text(file).lines().map(str::trim) {
                if l.is_empty() || l.starts_with('#') {
                    continue;
                }
                lines.push(format!("{prefix}{l}"));
                if prefix == '+' {
                    includes.push(clean(l));
                }
            }
        }
        Rules {
            top: lines
                .iter()
                .filter_map(|l| parse_rule(l))
                .map(rule)
                .collect(),
            includes,
        }
    }
}

fn clean(p: &str) -> String {
    p.trim().trim_start_matches('/').to_string()
}

/// A directory's protection: its own mode, the rules handed to its children, and whether
/// anything below it can be protected (else the walk does not go in).
struct DirProtect {
    mode: Protect,
    rules: Vec<Rule>,
    has_protected_children: bool,
}

/// `apk_db_dir_get` for the child `name` of a directory with `parent` protection (`None` for
/// the root: its children read the top rules and inherit nothing).
fn child_protect(parent: Option<&DirProtect>, top: &[Rule], name: &str) -> DirProtect {
    let (mut mode, rules): (Protect, &[Rule]) = match parent {
        Some(p) => (p.mode, &p.rules),
        None => (Protect::None, top),
    };
    let mut has = !mode.none();
    let mut handed = Vec::new();
    for r in rules {
        match r.pattern.split_once('/') {
            Some((first, rest)) => {
                if !fnmatch(first, name) {
                    continue;
                }
                handed.push(Rule {
                    pattern: rest.to_string(),
                    mode: r.mode,
                });
            }
            None => {
                if !fnmatch(&r.pattern, name) {
                    continue;
                }
                mode = r.mode;
            }
        }
        has |= !r.mode.none();
    }
    DirProtect {
        mode,
        rules: handed,
        has_protected_children: has,
    }
}

/// `determine_file_protect_mode`: the directory's mode, then its handed rules without `/`.
fn file_protect(dir: &DirProtect, name: &str) -> Protect {
    let mut mode = dir.mode;
    for r in &dir.rules {
        if !r.pattern.contains('/') && fnmatch(&r.pattern, name) {
            mode = r.mode;
        }
    }
    mode
}

/// What the apk database says of paths: files with their records, directories with the
/// owner and mode apk expects of them.
pub struct Owned {
    files: HashMap<String, (db::FileRec, bool)>,
    /// Directories packages own: expected (uid, gid, mode).
    dirs: HashMap<String, (u32, u32, u32)>,
    /// Parents of owned directories that no package owns (apk expects an impossible owner of
    /// them, so `--check-permissions` always reports them).
    ancestors: HashSet<String>,
}

impl Owned {
    /// Reads `lib/apk/db/installed` of the root.
    pub fn load(root: &Root) -> Result<Owned, crate::apk::ApkError> {
        let db = db::read(root)?;
        let mut owned = Owned {
            files: HashMap::new(),
            dirs: HashMap::new(),
            ancestors: HashSet::new(),
        };
        for p in &db.packages {
            for d in &p.dirs {
                owned.add_dir(d);
                for f in &d.files {
                    let path = match d.path.as_str() {
                        "" => f.name.clone(),
                        dir => format!("{dir}/{}", f.name),
                    };
                    owned.files.insert(path, (f.clone(), p.sha256_160));
                }
            }
        }
        for d in owned.dirs.keys() {
            owned.ancestors.remove(d);
        }
        Ok(owned)
    }

    /// `apk_db_dir_apply_diri_permissions`: the lowest owner wins; equal owners AND their modes.
    fn add_dir(&mut self, d: &db::DirRec) {
        if d.path.is_empty() {
            return;
        }
        let e = self
            .dirs
            .entry(d.path.clone())
            .or_insert((u32::MAX, u32::MAX, 0));
        if (d.uid, d.gid) < (e.0, e.1) {
            *e = (d.uid, d.gid, d.mode);
        } else if (d.uid, d.gid) == (e.0, e.1) {
            e.2 &= d.mode;
        }
        let mut p = d.path.as_str();
        while let Some((parent, _)) = p.rsplit_once('/') {
            if !self.dirs.contains_key(parent) {
                self.ancestors.insert(parent.to_string());
            }
            p = parent;
        }
    }
}

/// Why a path was selected (apk audit's letters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// `A`: no package owns it, or `!` takes everything.
    Added,
    /// `U`: content differs from the package's.
    Updated,
    /// `M`/`m`: mode or owner differs.
    Permissions,
    /// `d`: a directory no package owns.
    NewDir,
    /// lbu.list names it.
    Included,
}

impl Reason {
    pub fn letter(self) -> char {
        match self {
            Self::Added => 'A',
            Self::Updated => 'U',
            Self::Permissions => 'M',
            Self::NewDir => 'd',
            Self::Included => '+',
        }
    }
}

/// A selected path, relative to the root; directories end in `/` (as lbu feeds them to tar).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selected {
    pub path: String,
    pub reason: Reason,
}

/// What the selection found besides the paths.
#[derive(Debug, Default)]
pub struct Selection {
    pub files: Vec<Selected>,
    /// Paths left out, with why (a name the apkovl reader cannot take, an unreadable file).
    pub skipped: Vec<String>,
}

/// Selects the files of the root `root` the way `lbu commit` does.
pub fn select(root: &Root) -> Result<Selection, crate::apk::ApkError> {
    let rules = Rules::load(root);
    let owned = Owned::load(root)?;
    let mut w = Walk {
        root,
        owned: &owned,
        top: &rules.top,
        out: Selection::default(),
        seen: HashSet::new(),
    };
    w.dir("", None);
    for inc in &rules.includes {
        let Ok(m) = fs::symlink_metadata(root.path().join(inc)) else {
            continue;
        };
        if (m.file_type().is_symlink() || !m.is_dir()) && w.seen.insert(inc.clone()) {
            w.out.files.push(Selected {
                path: inc.clone(),
                reason: Reason::Included,
            });
        }
    }
    Ok(w.out)
}

struct Walk<'a> {
    root: &'a Root,
    owned: &'a Owned,
    top: &'a [Rule],
    out: Selection,
    seen: HashSet<String>,
}

impl Walk<'_> {
    fn push(&mut self, path: String, reason: Reason) {
        if self.seen.insert(path.clone()) {
            self.out.files.push(Selected { path, reason });
        }
    }

    /// Audits the entries of directory `rel` (`""`: the root), protected as `prot`.
    fn dir(&mut self, rel: &str, prot: Option<&DirProtect>) {
        let host = self.root.path().join(rel);
        let mut names: Vec<std::ffi::OsString> = match fs::read_dir(&host) {
            Ok(rd) => rd.flatten().map(|e| e.file_name()).collect(),
            Err(e) => {
                self.out.skipped.push(format!("{rel}/: {e}"));
                return;
            }
        };
        sort(&mut names);
        for os in names {
            let Some(name) = os.to_str() else {
                let shown = host.join(&os).display().to_string();
                self.out
                    .skipped
                    .push(format!("{shown}: the name is not UTF-8"));
                continue;
            };
            let path = if rel.is_empty() {
                name.to_string()
            } else {
                format!("{rel}/{name}")
            };
            let Ok(meta) = fs::symlink_metadata(host.join(name)) else {
                continue;
            };
            if meta.is_dir() {
                self.subdir(&path, name, prot, &meta);
            } else if let Some(p) = prot {
                self.file(&path, name, p, &meta);
            }
        }
    }

    fn subdir(&mut self, path: &str, name: &str, prot: Option<&DirProtect>, meta: &fs::Metadata) {
        let child = child_protect(prot, self.top, name);
        if !child.mode.none() {
            let reason = match self.owned.dirs.get(path) {
                Some(&(uid, gid, mode)) => {
                    let differs = (meta.mode() & 0o7777) != (mode & 0o7777)
                        || meta.uid() != uid
                        || meta.gid() != gid;
                    differs.then_some(Reason::Permissions)
                }
                None if self.owned.ancestors.contains(path) => Some(Reason::Permissions),
                None => Some(Reason::NewDir),
            };
            if let Some(r) = reason {
                self.push(format!("{path}/"), r);
            }
        }
        if child.has_protected_children {
            self.dir(path, Some(&child));
        }
    }

    fn file(&mut self, path: &str, name: &str, dir: &DirProtect, meta: &fs::Metadata) {
        let link = meta.file_type().is_symlink();
        let forced = match file_protect(dir, name) {
            Protect::None | Protect::Ignore => return,
            Protect::SymlinksOnly if !link => return,
            Protect::All => true,
            Protect::Changed | Protect::SymlinksOnly => false,
        };
        let rec = self.owned.files.get(path);
        if (rec.is_none() || forced) && name.ends_with(".apk-new") {
            return;
        }
        let reason = match rec {
            _ if forced => Some(Reason::Added),
            None => Some(Reason::Added),
            Some((rec, sha256)) => match self.differs(path, rec, *sha256, meta) {
                Ok(r) => r,
                Err(e) => {
                    self.out.skipped.push(format!("{path}: {e}"));
                    return;
                }
            },
        };
        if let Some(r) = reason {
            self.push(path.to_string(), r);
        }
    }

    /// `audit_file`: content first, then mode and owner.
    fn differs(
        &self,
        path: &str,
        rec: &db::FileRec,
        sha256_160: bool,
        meta: &fs::Metadata,
    ) -> io::Result<Option<Reason>> {
        let link = meta.file_type().is_symlink();
        let changed = match &rec.csum {
            Some(want) => {
                file_checksum(&self.root.path().join(path), link, want, sha256_160)? != *want
            }
            None => link,
        };
        if changed {
            return Ok(Some(Reason::Updated));
        }
        let differs = (meta.mode() & 0o7777) != (rec.mode & 0o7777)
            || meta.uid() != rec.uid
            || meta.gid() != rec.gid;
        Ok(differs.then_some(Reason::Permissions))
    }
}

/// The checksum apk records for a file: of its content, or of a symlink's target; SHA-1, or
/// SHA-256 cut to 20 bytes for packages marked so; MD5 for old packages is not computed (any
/// file with one counts as changed only by mode or owner).
fn file_checksum(
    host: &Path,
    link: bool,
    like: &Checksum,
    sha256_160: bool,
) -> io::Result<Checksum> {
    if matches!(like, Checksum::Md5(_)) {
        return Ok(*like);
    }
    let data_link;
    let mut reader: Box<dyn Read> = if link {
        use std::os::unix::ffi::OsStrExt;
        data_link = fs::read_link(host)?;
        Box::new(io::Cursor::new(data_link.as_os_str().as_bytes().to_vec()))
    } else {
        Box::new(fs::File::open(host)?)
    };
    let mut buf = vec![0u8; 64 * 1024];
    if sha256_160 {
        let mut h = sha2::Sha256::new();
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        let mut out = [0u8; 20];
        out.copy_from_slice(&h.finalize()[..20]);
        Ok(Checksum::Sha1(out))
    } else {
        let mut h = sha1::Sha1::new();
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        Ok(Checksum::Sha1(h.finalize().into()))
    }
}
