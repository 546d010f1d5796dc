//! The installed database under the root: `lib/apk/db/{installed,scripts.tar,triggers}`,
//! `etc/apk/world`, `etc/apk/arch`, and `--initdb`.
//!
//! Written in apk-tools' exact format and order (`apk_db_write_fdb` and friends) so that the booted
//! system's own apk reads it as its own.

use super::checksum::Checksum;
use super::dep::{name_cmp, Dep};
use super::pkg::PkgInfo;
use super::stream::ScriptKind;
use super::tar::{Header, TarWriter};
use super::version;
use super::{ApkError, RecordError};
use ramboot_sys::fsutil::Root;
use std::fmt::Write as _;
use std::io::Read;
use std::path::Path;

/// A file the db records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileRec {
    /// File name inside its directory.
    pub name: String,
    /// Owner id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Permission bits.
    pub mode: u32,
    /// Checksum of its extended attributes (`a:` field).
    pub xattr_csum: Option<Checksum>,
    /// Content checksum (`Z:`); None when the file could not be written.
    pub csum: Option<Checksum>,
}

/// A directory a package owns, with its files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirRec {
    /// Path relative to the root (`F:`), `""` for the root itself.
    pub path: String,
    /// Owner id (`M:`).
    pub uid: u32,
    /// Group id (`M:`).
    pub gid: u32,
    /// Permission bits (`M:`).
    pub mode: u32,
    /// Checksum of its extended attributes (`M:`).
    pub xattr_csum: Option<Checksum>,
    /// Its files (`R:` records), in install order.
    pub files: Vec<FileRec>,
}

/// One installed package.
#[derive(Clone, Debug, Default)]
pub struct InstalledPkg {
    /// The package's index fields.
    pub info: PkgInfo,
    /// Its directories and files.
    pub dirs: Vec<DirRec>,
    /// db flag `f`: a file could not be written.
    pub broken_files: bool,
    /// db flag `s`: a script failed.
    pub broken_script: bool,
    /// db flag `x`: extended attributes could not be set.
    pub broken_xattr: bool,
    /// db flag `S` (files hashed with SHA-256-160): only ever read back, never set by an
    /// install (apk-tools 2.14 sets it only when reading the db).
    pub sha256_160: bool,
    /// Repository tag the package is pinned to (`s:`).
    pub tag: Option<String>,
    /// Its scripts, as kept in `scripts.tar`.
    pub scripts: Vec<(ScriptKind, Vec<u8>)>,
}

impl InstalledPkg {
    /// Full paths of every file it owns.
    pub fn file_paths(&self) -> impl Iterator<Item = String> + '_ {
        self.dirs.iter().flat_map(|d| {
            d.files.iter().map(move |f| {
                if d.path.is_empty() {
                    f.name.clone()
                } else {
                    format!("{}/{}", d.path, f.name)
                }
            })
        })
    }

    /// Drops a file from the record (another package took it over).
    pub(crate) fn forget_file(&mut self, path: &str) {
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        if let Some(d) = self.dirs.iter_mut().find(|d| d.path == dir) {
            d.files.retain(|f| f.name != name);
        }
    }
}

/// The whole installed state.
#[derive(Clone, Debug, Default)]
pub struct Db {
    /// In install order (scripts.tar order).
    pub packages: Vec<InstalledPkg>,
    /// `etc/apk/world`: what was asked for.
    pub world: Vec<Dep>,
}

/// The installed packages, relative to the root.
pub const INSTALLED: &str = "lib/apk/db/installed";
/// The scripts of installed packages, relative to the root.
pub const SCRIPTS: &str = "lib/apk/db/scripts.tar";
/// Trigger globs of installed packages, relative to the root.
pub const TRIGGERS: &str = "lib/apk/db/triggers";
/// The world file, relative to the root.
pub const WORLD: &str = "etc/apk/world";
/// The architecture file, relative to the root.
pub const ARCH: &str = "etc/apk/arch";

fn ugm(uid: u32, gid: u32, mode: u32, x: &Option<Checksum>) -> String {
    match x {
        Some(c) => format!("{uid}:{gid}:{mode:o}:{c}"),
        None => format!("{uid}:{gid}:{mode:o}"),
    }
}

/// `lib/apk/db/installed` text.
pub fn installed_text(db: &Db) -> String {
    let mut pkgs: Vec<&InstalledPkg> = db.packages.iter().collect();
    ramboot_sys::sort::sort_by(&mut pkgs, |a, b| {
        name_cmp(&a.info.name, &b.info.name)
            .then_with(|| version::compare(&a.info.version, &b.info.version))
    });
    let mut s = String::new();
    for p in pkgs {
        p.info.write_index_header(&mut s);
        if !p.info.replaces.is_empty() {
            let _ = writeln!(s, "r:{}", super::dep::list_text(&p.info.replaces));
        }
        if p.info.replaces_priority != 0 {
            let _ = writeln!(s, "q:{}", p.info.replaces_priority);
        }
        if let Some(t) = &p.tag {
            let _ = writeln!(s, "s:{t}");
        }
        if p.broken_files || p.broken_script || p.broken_xattr {
            let mut f = String::new();
            if p.broken_files {
                f.push('f');
            }
            if p.broken_script {
                f.push('s');
            }
            if p.broken_xattr {
                f.push('x');
            }
            if p.sha256_160 {
                f.push('S');
            }
            let _ = writeln!(s, "f:{f}");
        }
        for d in &p.dirs {
            let _ = writeln!(s, "F:{}", d.path);
            if (d.uid, d.gid, d.mode) != (0, 0, 0o755) || d.xattr_csum.is_some() {
                let _ = writeln!(s, "M:{}", ugm(d.uid, d.gid, d.mode, &d.xattr_csum));
            }
            for f in &d.files {
                let _ = writeln!(s, "R:{}", f.name);
                if (f.uid, f.gid, f.mode) != (0, 0, 0o644) || f.xattr_csum.is_some() {
                    let _ = writeln!(s, "a:{}", ugm(f.uid, f.gid, f.mode, &f.xattr_csum));
                }
                if let Some(c) = &f.csum {
                    let _ = writeln!(s, "Z:{c}");
                }
            }
        }
        s.push('\n');
    }
    s
}

fn parse_ugm(v: &str) -> Option<(u32, u32, u32, Option<Checksum>)> {
    let mut it = v.splitn(4, ':');
    let uid = it.next()?.parse().ok()?;
    let gid = it.next()?.parse().ok()?;
    let mode = u32::from_str_radix(it.next()?, 8).ok()?;
    let x = match it.next() {
        Some(c) => Some(Checksum::parse(c)?),
        None => None,
    };
    Some((uid, gid, mode, x))
}

/// Parses `lib/apk/db/installed`.
pub fn parse_installed(text: &str) -> Result<Vec<InstalledPkg>, ApkError> {
    let err = |line: usize, problem: RecordError| ApkError::IndexParse {
        file: INSTALLED.into(),
        line,
        problem,
    };
    let mut out = Vec::new();
    let mut cur = InstalledPkg::default();
    let mut started = false;
    for (n, line) in text.split_terminator('\n').enumerate() {
        if line.len() < 2 {
            if started {
                out.push(std::mem::take(&mut cur));
                started = false;
            }
            continue;
        }
        let b = line.as_bytes();
        if b[1] != b':' {
            return Err(err(
                n + 1,
                RecordError::NotAField(
                    crate::quote::quoted(&super::pkg::truncate(line, 60)).to_string(),
                ),
            ));
        }
        started = true;
        let v = &line[2..];
        match b[0] {
            b'F' => cur.dirs.push(DirRec {
                path: v.into(),
                uid: 0,
                gid: 0,
                mode: 0o755,
                xattr_csum: None,
                files: Vec::new(),
            }),
            b'M' => {
                let (u, g, m, x) =
                    parse_ugm(v).ok_or_else(|| err(n + 1, RecordError::BadValue('M')))?;
                let d = cur
                    .dirs
                    .last_mut()
                    .ok_or_else(|| err(n + 1, RecordError::OutOfOrder('M', 'F')))?;
                (d.uid, d.gid, d.mode, d.xattr_csum) = (u, g, m, x);
            }
            b'R' => {
                let d = cur
                    .dirs
                    .last_mut()
                    .ok_or_else(|| err(n + 1, RecordError::OutOfOrder('R', 'F')))?;
                d.files.push(FileRec {
                    name: v.into(),
                    uid: 0,
                    gid: 0,
                    mode: 0o644,
                    xattr_csum: None,
                    csum: None,
                });
            }
            b'a' => {
                let (u, g, m, x) =
                    parse_ugm(v).ok_or_else(|| err(n + 1, RecordError::BadValue('a')))?;
                let f = cur
                    .dirs
                    .last_mut()
                    .and_then(|d| d.files.last_mut())
                    .ok_or_else(|| err(n + 1, RecordError::OutOfOrder('a', 'R')))?;
                (f.uid, f.gid, f.mode, f.xattr_csum) = (u, g, m, x);
            }
            b'Z' => {
                let f = cur
                    .dirs
                    .last_mut()
                    .and_then(|d| d.files.last_mut())
                    .ok_or_else(|| err(n + 1, RecordError::OutOfOrder('Z', 'R')))?;
                f.csum =
                    Some(Checksum::parse(v).ok_or_else(|| err(n + 1, RecordError::BadValue('Z')))?);
            }
            b'f' => {
                cur.broken_files = v.contains('f');
                cur.broken_script = v.contains('s');
                cur.broken_xattr = v.contains('x');
                cur.sha256_160 = v.contains('S');
            }
            b's' => cur.tag = Some(v.into()),
            letter => {
                cur.info
                    .apply_index_field(letter, v)
                    .map_err(|r| err(n + 1, r))?;
            }
        }
    }
    if started {
        out.push(cur);
    }
    Ok(out)
}

/// `lib/apk/db/scripts.tar`: packages in install order, scripts in apk's order.
pub fn scripts_tar(db: &Db) -> Vec<u8> {
    let mut t = TarWriter::new(Vec::new());
    for p in &db.packages {
        let Some(id) = &p.info.identity else { continue };
        for kind in ScriptKind::ALL {
            if let Some((_, body)) = p.scripts.iter().find(|(k, _)| *k == kind) {
                let mut name = format!("{}-{}.{}.{}", p.info.name, p.info.version, id, kind.name());
                // apk's strlcpy cuts at 99 bytes; a cut inside a UTF-8 character moves back to
                // its start (a name cut there would not be a `str`).
                let mut cut = name.len().min(99);
                while !name.is_char_boundary(cut) {
                    cut -= 1;
                }
                name.truncate(cut);
                let mtime = if p.info.build_time != 0 {
                    p.info.build_time
                } else {
                    now()
                };
                let h = Header::file(&name, body.len() as u64, 0o755, mtime);
                // Names are cut at 99 bytes like apk's strlcpy, never continued in PAX.
                t.file(&h, body).expect("writing to memory");
            }
        }
    }
    t.finish().expect("writing to memory");
    t.into_inner()
}

/// Reads scripts back from scripts.tar into the packages they belong to.
pub fn read_scripts(data: &[u8], packages: &mut [InstalledPkg]) {
    let mut pos = 0;
    while pos + 512 <= data.len() {
        let h = &data[pos..pos + 512];
        if h.iter().all(|&b| b == 0) {
            break;
        }
        let name_end = h[..100].iter().position(|&b| b == 0).unwrap_or(100);
        let name = String::from_utf8_lossy(&h[..name_end]).into_owned();
        let size_txt = String::from_utf8_lossy(&h[124..136]);
        let size = usize::from_str_radix(size_txt.trim_matches(|c: char| c == '\0' || c == ' '), 8)
            .unwrap_or(0);
        let body_start = pos + 512;
        let Some(body) = data.get(body_start..body_start + size) else {
            break;
        };
        if let Some((rest, kind)) = name.rsplit_once('.') {
            if let (Some(kind), Some((_, id))) =
                (ScriptKind::from_name(kind), rest.rsplit_once('.'))
            {
                if let Some(p) = packages
                    .iter_mut()
                    .find(|p| p.info.identity.map(|c| c.to_string()).as_deref() == Some(id))
                {
                    p.scripts.push((kind, body.to_vec()));
                }
            }
        }
        pos = body_start + size.div_ceil(512) * 512;
    }
}

/// `lib/apk/db/triggers`.
pub fn triggers_text(db: &Db) -> String {
    let mut s = String::new();
    for p in &db.packages {
        if let (Some(id), false) = (&p.info.identity, p.info.triggers.is_empty()) {
            let _ = write!(s, "{id}");
            for g in &p.info.triggers {
                let _ = write!(s, " {g}");
            }
            s.push('\n');
        }
    }
    s
}

/// `etc/apk/world`.
pub fn world_text(world: &[Dep]) -> String {
    if world.is_empty() {
        return "\n".into();
    }
    world.iter().map(|d| format!("{d}\n")).collect()
}

/// `SOURCE_DATE_EPOCH` when set (reproducible builds), else the current time.
pub fn now() -> u64 {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        })
}

/// Writes `data` to `rel` in the root through `rel.new` + rename, mode 0644.
pub(crate) fn write_file(root: &Root, rel: &str, data: &[u8]) -> Result<(), ApkError> {
    root.replace_file(Path::new(rel), data, 0o644)
        .map_err(|e| ApkError::io(format!("writing {}", root.path().join(rel).display()), e))
}

/// Reads the db from a root (missing files: empty).
pub fn read(root: &Root) -> Result<Db, ApkError> {
    let text = |rel: &str| root.read_to_string(Path::new(rel)).unwrap_or_default();
    let mut packages = parse_installed(&text(INSTALLED))?;
    let scripts = root.open_at(Path::new(SCRIPTS), rustix::fs::OFlags::RDONLY);
    if let Ok(mut f) = scripts.map(std::fs::File::from) {
        let mut data = Vec::new();
        if f.read_to_end(&mut data).is_ok() {
            read_scripts(&data, &mut packages);
        }
    }
    for line in text(TRIGGERS).lines() {
        let mut it = line.split(' ');
        let Some(id) = it.next().and_then(Checksum::parse) else {
            continue;
        };
        if let Some(p) = packages.iter_mut().find(|p| p.info.identity == Some(id)) {
            p.info.triggers = it.filter(|g| !g.is_empty()).map(String::from).collect();
        }
    }
    let world = Dep::parse_list(text(WORLD).trim()).unwrap_or_default();
    Ok(Db { packages, world })
}

/// Writes world, installed, scripts.tar and triggers, in apk's order.
pub fn write(root: &Root, db: &Db) -> Result<(), ApkError> {
    write_file(root, WORLD, world_text(&db.world).as_bytes())?;
    write_file(root, INSTALLED, installed_text(db).as_bytes())?;
    write_file(root, SCRIPTS, &scripts_tar(db))?;
    write_file(root, TRIGGERS, triggers_text(db).as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the installed_db fuzz target: the 99-byte cut of a script name landed inside a
    /// UTF-8 character and `String::truncate` panicked (in the installer, in PID 1).
    #[test]
    fn script_names_cut_before_a_split_character() {
        let mut p = InstalledPkg::default();
        p.info.name = format!("{}é", "n".repeat(98));
        p.info.version = "1-r0".into();
        p.info.identity = Some(Checksum::Sha1([1; 20]));
        p.info.build_time = 1;
        p.scripts = vec![(ScriptKind::PostInstall, b"#!/bin/sh\n".to_vec())];
        let tar = scripts_tar(&Db {
            packages: vec![p],
            world: Vec::new(),
        });
        // 98 bytes of name, then `é` would straddle byte 99: the name stops before it.
        assert_eq!(&tar[..100], [&b"n".repeat(98)[..], &[0, 0]].concat());
    }

    #[test]
    fn flags_line_has_s_only_when_read_back() {
        // apk-tools 2.14 writes `f:` only for f/s/x and adds `S` only if the db had it.
        let mut db = Db::default();
        let mut p = InstalledPkg {
            broken_script: true,
            ..Default::default()
        };
        p.info.name = "a".into();
        p.info.version = "1".into();
        db.packages.push(p);
        let text = installed_text(&db);
        assert!(text.contains("\nf:s\n"), "{text}");
        let back = parse_installed(&text.replace("f:s\n", "f:sS\n")).unwrap();
        assert!(back[0].sha256_160 && back[0].broken_script);
        db.packages = back;
        assert!(installed_text(&db).contains("\nf:sS\n"));
        db.packages[0].broken_script = false;
        assert!(!installed_text(&db).contains("f:"));
    }
}
