//! `ramboot commit`: save the running diskless system's configuration as an apkovl, as
//! `lbu commit` does, without losing the old one to a power cut, a full card or a
//! configuration that no longer boots.
//!
//! * [`select`] picks the files lbu would (apk's protected paths against the apk database,
//!   lbu's include list); [`archive`] writes them in lbu's format.
//! * This module finds the medium (`--media`, `LBU_BACKUPDIR`, `LBU_MEDIA` from
//!   `etc/lbu/lbu.conf`, or the one the boot read its apkovl from), names the output
//!   `<host>.apkovl.tar.gz`, keeps `BACKUP_LIMIT` older copies as lbu names them, and refuses,
//!   as lbu does, to leave two apkovls a boot could both pick.
//! * The write is atomic: the archive is built in memory, checked for room, written to a
//!   temporary name the boot's apkovl search never matches, fsync'd, read back whole, renamed
//!   over the old one, and the directory fsync'd. A power cut at any point leaves the old
//!   apkovl or the new one, never neither. The medium is read-write only meanwhile (through
//!   [`Sys::remount`]).
//! * Last-known-good ([`crate::boot::lkg`]): a commit from a system whose boot is not
//!   confirmed good is refused unless forced, and a commit after a fall-back keeps the
//!   failing apkovl out of the rotation.
//!
//! Only the `ramboot` host binary reaches this module; the init build does not link it.

pub mod archive;
pub mod select;

use crate::boot::lkg;
use crate::fsutil::{Resolve, Root};
use crate::quote::quoted;
use crate::sys::Sys;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub use archive::write_apkovl;
pub use select::{select, Selected, Selection};

/// Why a commit did not happen. Every one leaves the medium as it was.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error("cannot open the root {}: {source}", root.display())]
    Root { root: PathBuf, source: io::Error },
    #[error("reading the apk database: {0}")]
    Db(#[from] crate::apk::ApkError),
    #[error("no medium to write to: give --media, set LBU_MEDIA or LBU_BACKUPDIR in /etc/lbu/lbu.conf, or boot from a medium with an apkovl")]
    NoMedia,
    #[error("{}: not a directory (is the medium mounted?)", dir.display())]
    NotADirectory { dir: PathBuf },
    #[error("other apkovls are on {}: {}; a boot could pick any of them. Use -d to replace them", dir.display(), names.join(", "))]
    OtherApkovls { dir: PathBuf, names: Vec<String> },
    #[error("the running system booted from {} {attempts} time(s) without being confirmed good; committing now could push the last good copy out of the rotation. Run `ramboot ok` once the system works, or commit with --force", apkovl.display())]
    Unconfirmed { apkovl: PathBuf, attempts: u32 },
    #[error("{} has no room for the apkovl: {needed} bytes needed, {free} free; the old apkovl is unchanged", dir.display())]
    NoSpace {
        dir: PathBuf,
        needed: u64,
        free: u64,
    },
    #[error("lbu.conf asks for an encrypted apkovl (ENCRYPTION={cipher}), which this build of ramboot commit cannot write; nothing was written")]
    Encrypted { cipher: String },
    #[error("building the apkovl: {0}")]
    Archive(io::Error),
    #[error("writing {}: {source}; the old apkovl is unchanged", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("the apkovl written to {} does not read back: {reason}; the old apkovl is unchanged", path.display())]
    ReadBack { path: PathBuf, reason: String },
}

/// `etc/lbu/lbu.conf` (sourced by lbu as shell): the settings `ramboot commit` uses.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LbuConf {
    pub media: Option<String>,
    pub backup_dir: Option<String>,
    pub backup_limit: Option<u32>,
    pub encryption: Option<String>,
}

impl LbuConf {
    /// Parses the plain `NAME=value` assignments (quotes removed, `export` allowed); lines
    /// that are not such assignments are shell lbu would run, and are ignored.
    pub fn parse(text: &str) -> LbuConf {
        let mut c = LbuConf::default();
        for line in text.lines() {
            let line = line.trim();
            let line = line.strip_prefix("export ").unwrap_or(line);
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            let v = v.trim().trim_matches(|c| c == '"' || c == '\'').to_string();
            let v = (!v.is_empty()).then_some(v);
            match k.trim() {
                "LBU_MEDIA" => c.media = v,
                "LBU_BACKUPDIR" => c.backup_dir = v,
                "BACKUP_LIMIT" => c.backup_limit = v.and_then(|v| v.parse().ok()),
                "ENCRYPTION" => c.encryption = v,
                _ => {}
            }
        }
        c
    }

    /// The root's `etc/lbu/lbu.conf`; unset values from the environment (lbu sources the file
    /// over its environment).
    pub fn load(root: &Root, env: &dyn Fn(&str) -> Option<String>) -> LbuConf {
        let mut c = LbuConf::parse(
            &root
                .read_to_string(Path::new("etc/lbu/lbu.conf"))
                .unwrap_or_default(),
        );
        c.media = c.media.or_else(|| env("LBU_MEDIA"));
        c.backup_dir = c.backup_dir.or_else(|| env("LBU_BACKUPDIR"));
        c.backup_limit = c
            .backup_limit
            .or_else(|| env("BACKUP_LIMIT").and_then(|v| v.parse().ok()));
        c.encryption = c.encryption.or_else(|| env("ENCRYPTION"));
        c
    }
}

/// What to commit and where.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// The system's root (`/` on the machine itself).
    pub root: PathBuf,
    /// `--media NAME` (`/media/NAME`) or a directory.
    pub media: Option<String>,
    /// The name's host part (default: the running hostname for `/`, else the root's
    /// `etc/hostname`).
    pub hostname: Option<String>,
    pub dry_run: bool,
    /// `-d`: remove other apkovls first.
    pub delete_others: bool,
    /// Commit over an unconfirmed boot.
    pub force: bool,
}

/// Where the apkovl goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The medium's directory as the system sees it.
    pub dir: PathBuf,
    /// `<host>.apkovl.tar.gz[.<cipher>]`.
    pub name: String,
    /// How many older copies to keep.
    pub backup_limit: u32,
    /// `ENCRYPTION` of lbu.conf: the cipher the name ends with.
    pub cipher: Option<String>,
}

impl Target {
    pub fn path(&self) -> PathBuf {
        self.dir.join(&self.name)
    }
}

/// The hostname the apkovl is named after.
pub fn hostname(root: &Path, given: Option<&str>) -> String {
    if let Some(h) = given {
        return h.to_string();
    }
    if root == Path::new("/") {
        return rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned();
    }
    fs::read_to_string(root.join("etc/hostname"))
        .ok()
        .and_then(|t| t.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "localhost".into())
}

/// The directory the apkovl goes to: `--media`, then `LBU_BACKUPDIR`, then `LBU_MEDIA`, then the
/// medium the boot applied its apkovl from (the boot's attempt record, or the one medium under
/// `/media` that holds an apkovl).
pub fn media_dir(
    sys: &dyn Sys,
    req: &Request,
    conf: &LbuConf,
    host: &str,
) -> Result<PathBuf, CommitError> {
    let named = |m: &str| {
        if m.contains('/') {
            PathBuf::from(m)
        } else {
            Path::new("/media").join(m)
        }
    };
    let dir = match (&req.media, &conf.backup_dir, &conf.media) {
        (Some(m), _, _) => named(m),
        (None, Some(d), _) => PathBuf::from(d),
        (None, None, Some(m)) => named(m),
        (None, None, None) => booted_media(sys, host).ok_or(CommitError::NoMedia)?,
    };
    if !sys.path(&dir).is_dir() {
        return Err(CommitError::NotADirectory { dir });
    }
    Ok(dir)
}

/// The medium the boot used: the one under `/media` holding this boot's attempt record or
/// an apkovl (the host's first).
fn booted_media(sys: &dyn Sys, host: &str) -> Option<PathBuf> {
    let media = Path::new("/media");
    let mut dirs: Vec<PathBuf> = fs::read_dir(sys.path(media))
        .ok()?
        .flatten()
        .map(|e| media.join(e.file_name()))
        .collect();
    crate::sys::sort::sort(&mut dirs);
    let has = |d: &Path, pred: &dyn Fn(&str) -> bool| {
        fs::read_dir(sys.path(d)).is_ok_and(|rd| {
            rd.flatten()
                .any(|e| e.file_name().to_str().is_some_and(pred))
        })
    };
    let mine = |n: &str| lkg::host_of(n) == Some(host);
    dirs.iter()
        .find(|d| has(d, &|n| n == lkg::STATE_NAME))
        .or_else(|| dirs.iter().find(|d| has(d, &mine)))
        .or_else(|| dirs.iter().find(|d| has(d, &|n| lkg::host_of(n).is_some())))
        .cloned()
}

/// What a commit did (or, dry, would do).
#[derive(Debug, Default)]
pub struct Report {
    pub target: Option<PathBuf>,
    pub selection: Selection,
    /// Size of the apkovl written.
    pub bytes: u64,
    pub backup: Option<String>,
    pub removed: Vec<String>,
    pub notes: Vec<String>,
}

/// Opens the root and selects its files.
pub fn selection(root: &Path) -> Result<(Root, Selection), CommitError> {
    let r = Root::open(root, Resolve::Kernel).map_err(|source| CommitError::Root {
        root: root.to_path_buf(),
        source,
    })?;
    let s = select(&r)?;
    Ok((r, s))
}

/// The target of a commit of `req`.
pub fn target(sys: &dyn Sys, req: &Request, root: &Root) -> Result<Target, CommitError> {
    let conf = LbuConf::load(root, &|k| std::env::var(k).ok());
    let host = hostname(&req.root, req.hostname.as_deref());
    let dir = media_dir(sys, req, &conf, &host)?;
    let mut name = format!("{host}.apkovl.tar.gz");
    if let Some(c) = &conf.encryption {
        name.push('.');
        name.push_str(c);
    }
    Ok(Target {
        dir,
        name,
        // At least one: the previous apkovl is the last-known-good fallback.
        backup_limit: conf.backup_limit.unwrap_or(0).max(1),
        cipher: conf.encryption,
    })
}

/// `ramboot commit`.
pub fn commit(sys: &dyn Sys, req: &Request) -> Result<Report, CommitError> {
    let (root, selection) = selection(&req.root)?;
    let target = target(sys, req, &root)?;
    let mut report = Report {
        target: Some(target.path()),
        ..Default::default()
    };
    if let Some(cipher) = &target.cipher {
        return Err(CommitError::Encrypted {
            cipher: cipher.clone(),
        });
    }
    let host_dir = sys.path(&target.dir);
    let others = other_apkovls(&host_dir, &target.name);
    if !others.is_empty() && !req.delete_others {
        return Err(CommitError::OtherApkovls {
            dir: target.dir.clone(),
            names: others,
        });
    }
    let state = lkg::State::read(&host_dir);
    let failing = check_lkg(&host_dir, &target, state.as_ref(), req.force)?;
    let mut data = Vec::new();
    let written = write_apkovl(&root, &selection.files, &mut data).map_err(CommitError::Archive)?;
    report.notes.extend(written.skipped);
    report.bytes = data.len() as u64;
    report.selection = selection;
    if req.dry_run {
        return Ok(report);
    }
    lkg::with_writable(sys, &target.dir, || {
        Ok(store(
            &host_dir,
            &target,
            &data,
            others,
            failing,
            &mut report,
        ))
    })
    .map_err(|source| CommitError::Write {
        path: target.path(),
        source,
    })??;
    Ok(report)
}

/// The other apkovls in the medium's top directory (names a boot could pick), not `name`.
fn other_apkovls(dir: &Path, name: &str) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| !t.is_dir()))
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| crate::fnmatch::fnmatch(crate::media::APKOVL_PATTERN, n) && n != name)
                .collect()
        })
        .unwrap_or_default();
    crate::sys::sort::sort(&mut v);
    v
}

/// The last-known-good rules. Returns true when the current apkovl is the failing one of a
/// fall-back boot (it must not become a backup a later fall-back would pick).
fn check_lkg(
    dir: &Path,
    target: &Target,
    state: Option<&lkg::State>,
    force: bool,
) -> Result<bool, CommitError> {
    let Some(s) = state.filter(|s| s.apkovl == target.name) else {
        return Ok(false);
    };
    let current = lkg::file_sha1(&dir.join(&target.name)).ok();
    if current.as_deref() != Some(s.sha1.as_str()) {
        return Ok(false);
    }
    if s.fell_back() {
        return Ok(true);
    }
    if s.attempts > 0 && !force {
        return Err(CommitError::Unconfirmed {
            apkovl: target.path(),
            attempts: s.attempts,
        });
    }
    Ok(false)
}

/// Name of the temporary file: hidden and without `.apkovl.tar.gz`, so no boot ever takes it
/// for an apkovl.
pub const TEMP_NAME: &str = ".ramboot-commit.tmp";

/// The write itself, on the writable medium (`dir` a host path).
fn store(
    dir: &Path,
    target: &Target,
    data: &[u8],
    others: Vec<String>,
    failing: bool,
    report: &mut Report,
) -> Result<(), CommitError> {
    let out = dir.join(&target.name);
    let tmp = dir.join(TEMP_NAME);
    let werr = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CommitError::Write { path, source }
    };
    // A temporary file left by an interrupted commit.
    let _ = fs::remove_file(&tmp);
    let old = fs::metadata(&out).ok();
    let backup_size = match (&old, failing) {
        (Some(m), false) => m.len(),
        _ => 0,
    };
    let needed = data.len() as u64 + backup_size;
    let free = free_bytes(dir).unwrap_or(u64::MAX);
    if free < needed {
        return Err(CommitError::NoSpace {
            dir: target.dir.clone(),
            needed,
            free,
        });
    }
    write_synced(&tmp, data)
        .map_err(|e| space_or(e, dir, target, needed, werr(&tmp)))
        .inspect_err(|_| {
            let _ = fs::remove_file(&tmp);
        })?;
    if let Err(reason) = crate::overlay::check(&tmp).map(drop) {
        let _ = fs::remove_file(&tmp);
        return Err(CommitError::ReadBack {
            path: target.path(),
            reason: reason.to_string(),
        });
    }
    // The old apkovl: copied to its backup name (a rename would leave a moment without any
    // apkovl), or, when a fall-back boot showed it fails, kept aside outside the rotation.
    if let Some(m) = &old {
        let keep = if failing {
            format!(
                "{}.failed.tar.gz",
                lkg::host_of(&target.name).unwrap_or("apkovl")
            )
        } else {
            backup_name(dir, &target.name, m)
        };
        let copied = copy_synced(&out, &dir.join(&keep));
        if let Err(e) = copied {
            let _ = fs::remove_file(&tmp);
            let _ = fs::remove_file(dir.join(&keep));
            return Err(space_or(e, dir, target, needed, werr(&dir.join(&keep))));
        }
        if failing {
            report.notes.push(format!(
                "the apkovl that failed to boot is kept as {keep}, outside the rotation"
            ));
        } else {
            report.backup = Some(keep);
        }
    }
    fs::rename(&tmp, &out).map_err(werr(&out))?;
    sync_dir(dir).map_err(werr(dir))?;
    for o in others {
        if fs::remove_file(dir.join(&o)).is_ok() {
            report.removed.push(o);
        }
    }
    let backups = lkg::backups(dir, &target.name);
    let excess = backups.len().saturating_sub(target.backup_limit as usize);
    for b in &backups[..excess] {
        if fs::remove_file(dir.join(b)).is_ok() {
            report.removed.push(b.clone());
        }
    }
    // The legacy file lbu removes too.
    if fs::remove_file(dir.join("packages.list")).is_ok() {
        report.removed.push("packages.list".into());
    }
    sync_dir(dir).map_err(werr(dir))?;
    Ok(())
}

fn space_or(
    e: io::Error,
    dir: &Path,
    target: &Target,
    needed: u64,
    other: impl FnOnce(io::Error) -> CommitError,
) -> CommitError {
    if e.raw_os_error() == Some(rustix::io::Errno::NOSPC.raw_os_error()) {
        CommitError::NoSpace {
            dir: target.dir.clone(),
            needed,
            free: free_bytes(dir).unwrap_or(0),
        }
    } else {
        other(e)
    }
}

fn free_bytes(dir: &Path) -> Option<u64> {
    let st = rustix::fs::statvfs(dir).ok()?;
    Some(st.f_bavail.saturating_mul(st.f_frsize))
}

fn write_synced(path: &Path, data: &[u8]) -> io::Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    f.write_all(data)?;
    f.sync_all()
}

/// Copies `from` to `to` through a temporary name, synced, so `to` is whole or absent.
fn copy_synced(from: &Path, to: &Path) -> io::Result<()> {
    let tmp = to.with_file_name(".ramboot-backup.tmp");
    let _ = fs::remove_file(&tmp);
    let data = fs::read(from)?;
    write_synced(&tmp, &data)?;
    fs::rename(&tmp, to)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// `<host>.<YYYYmmddHHMMSS>.tar.gz[.<cipher>]` from the old file's modification time in UTC, as
/// lbu's `backup_apkovl`; a second later while that name is taken.
fn backup_name(dir: &Path, name: &str, old: &fs::Metadata) -> String {
    use std::os::unix::fs::MetadataExt;
    let mut t = old.mtime();
    loop {
        let candidate = name.replacen(".apkovl.tar.gz", &format!(".{}.tar.gz", utc_stamp(t)), 1);
        if fs::symlink_metadata(dir.join(&candidate)).is_err() {
            return candidate;
        }
        t += 1;
    }
}

/// `YYYYmmddHHMMSS` of a Unix time, UTC.
pub fn utc_stamp(secs: i64) -> String {
    let c = crate::civil::Civil::from_unix(secs);
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// One line of `ramboot commit diff`: `A`dded, `D`eleted or `U`pdated since the last commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub letter: char,
    pub path: String,
}

/// What changed between the last apkovl at `last` (host path) and what a commit would write
/// now: content, link target, mode or owner.
pub fn diff(root: &Root, selection: &[Selected], last: &Path) -> Result<Vec<Change>, CommitError> {
    let mut data = Vec::new();
    write_apkovl(root, selection, &mut data).map_err(CommitError::Archive)?;
    let read = |bytes: &[u8]| read_entries(bytes).map_err(CommitError::Archive);
    let old = read(&fs::read(last).map_err(|source| CommitError::Write {
        path: last.to_path_buf(),
        source,
    })?)?;
    let new = read(&data)?;
    let mut out = Vec::new();
    for (path, e) in &new {
        match old.iter().find(|(p, _)| p == path) {
            None => out.push(Change {
                letter: 'A',
                path: path.clone(),
            }),
            Some((_, o)) if o != e => out.push(Change {
                letter: 'U',
                path: path.clone(),
            }),
            _ => {}
        }
    }
    for (path, _) in &old {
        if !new.iter().any(|(p, _)| p == path) {
            out.push(Change {
                letter: 'D',
                path: path.clone(),
            });
        }
    }
    Ok(out)
}

/// What an entry holds, for comparing two apkovls: kind, mode, owner, link, content.
type EntryKey = (u32, u32, u32, u32, String, Vec<u8>);

/// Every entry of a gzip'd tar in memory: name (without a trailing `/`) and what it holds.
pub fn read_entries(data: &[u8]) -> io::Result<Vec<(String, EntryKey)>> {
    use crate::apk::gz::GzMembers;
    use crate::apk::tar::{Event, TarReader};
    let mut tar = TarReader::new(GzMembers::new(data)?).tar_compatible();
    let mut out = Vec::new();
    loop {
        match tar.next_event()? {
            Event::Entry(e) => {
                let content = tar.content_to_vec(64 << 20, &e.name)?;
                let key = (
                    e.kind as u32,
                    e.mode & 0o7777,
                    e.uid,
                    e.gid,
                    e.link.clone(),
                    content,
                );
                out.push((e.name.trim_end_matches('/').to_string(), key));
            }
            Event::MemberEnd => {
                if tar.archive_ended() || !tar.next_member()? {
                    return Ok(out);
                }
            }
        }
    }
}

/// `quoted` for report lines.
pub fn shown(p: &Path) -> String {
    quoted(&p.display().to_string()).to_string()
}
