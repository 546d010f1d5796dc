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
//! * Encryption (`--encrypt`, lbu.conf `ENCRYPTION`): the archive is sealed in memory by
//!   [`crypt::seal`] before the same atomic write, named `<host>.apkovl.tar.gz.<suffix>`
//!   (ramboot's authenticated format, or lbu's `openssl enc` with that cipher); backups keep
//!   the suffix as lbu's do, and `diff` decrypts the last one.
//!
//! * lbu's hooks ([`hooks`]): `/etc/lbu/pre-package.d` runs before the selection (a failure
//!   stops the commit, as lbu's), `post-package.d` after the write, on the writable medium and
//!   before the rotation, whatever became of the write; `--dry-run` and `diff` run them too.
//!
//! Only the `ramboot` host binary reaches this module; the init build does not link it.

pub mod archive;
pub mod hooks;
pub mod select;

use crate::boot::lkg;
use crate::fsutil::{Resolve, Root};
use crate::overlay::crypt::{self, CryptError};
use crate::quote::quoted;
use crate::sys::Sys;
use hooks::{HookRun, POST_PACKAGE, PRE_PACKAGE};
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
    #[error("cannot encrypt as {suffix}: {source}; nothing was written")]
    Cipher { suffix: String, source: CryptError },
    #[error("{}: {source}", path.display())]
    Crypt { path: PathBuf, source: CryptError },
    #[error("no passphrase: {0}")]
    Passphrase(String),
    #[error("building the apkovl: {0}")]
    Archive(io::Error),
    #[error("writing {}: {source}; the old apkovl is unchanged", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("the apkovl written to {} does not read back: {reason}; the old apkovl is unchanged", path.display())]
    ReadBack { path: PathBuf, reason: String },
    #[error("{} of the pre-package hooks failed; as lbu, nothing was committed and the medium is unchanged", failed.len())]
    PreHook { failed: Vec<HookRun> },
    #[error("the hooks of {} cannot run: it is not inside this system's / ({})", root.display(), top.display())]
    HookRoot { root: PathBuf, top: PathBuf },
}

/// `etc/lbu/lbu.conf` (sourced by lbu as shell): the settings `ramboot commit` uses.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LbuConf {
    pub media: Option<String>,
    pub backup_dir: Option<String>,
    pub backup_limit: Option<u32>,
    pub encryption: Option<String>,
    /// The cipher of lbu's `-e` when `ENCRYPTION` is unset.
    pub default_cipher: Option<String>,
    pub password: Option<Password>,
}

/// A passphrase from lbu.conf: never shown by `{:?}`.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(pub Vec<u8>);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(..)")
    }
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
                "DEFAULT_CIPHER" => c.default_cipher = v,
                "PASSWORD" => c.password = v.map(|v| Password(v.into_bytes())),
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
        c.default_cipher = c.default_cipher.or_else(|| env("DEFAULT_CIPHER"));
        c.password = c
            .password
            .or_else(|| env("PASSWORD").map(|v| Password(v.into_bytes())));
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
    /// Encryption asked for on the command line (None: lbu.conf's `ENCRYPTION`).
    pub encrypt: Option<Encrypt>,
    /// `--key-file`: the passphrase is its first line.
    pub key_file: Option<PathBuf>,
}

/// How `--encrypt` seals the apkovl.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Encrypt {
    /// ramboot's authenticated format (`.ramboot`).
    Ramboot,
    /// lbu's `openssl enc` format (`--openssl`, lbu's `-e`): the cipher given, else lbu.conf's
    /// `ENCRYPTION`, else its `DEFAULT_CIPHER`, else [`crypt::DEFAULT_CIPHER`].
    Openssl { cipher: Option<String> },
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
    /// The encryption suffix the name ends with: [`crypt::RAMBOOT_SUFFIX`] or an openssl
    /// cipher (`--encrypt`, lbu.conf's `ENCRYPTION`).
    pub cipher: Option<String>,
    /// lbu.conf's `PASSWORD`.
    password: Option<Password>,
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
    /// The lbu hooks that ran, pre-package then post-package.
    pub hooks: Vec<HookRun>,
}

/// Opens the system's root.
pub fn open_root(root: &Path) -> Result<Root, CommitError> {
    Root::open(root, Resolve::Kernel).map_err(|source| CommitError::Root {
        root: root.to_path_buf(),
        source,
    })
}

/// Opens the root and selects its files.
pub fn selection(root: &Path) -> Result<(Root, Selection), CommitError> {
    let r = open_root(root)?;
    let s = select(&r)?;
    Ok((r, s))
}

/// The system whose hooks run: `root` (opened from `req.root`) and where [`Sys`] sees it.
pub fn system<'a>(
    sys: &dyn Sys,
    req: &Request,
    root: &'a Root,
) -> Result<hooks::System<'a>, CommitError> {
    let canonical = |p: &Path| fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let host = canonical(&req.root);
    let top = canonical(&sys.path(Path::new("/")));
    let inside = host.strip_prefix(&top).map_err(|_| CommitError::HookRoot {
        root: req.root.clone(),
        top: top.clone(),
    })?;
    Ok(hooks::System {
        root,
        sys_root: Path::new("/").join(inside),
    })
}

/// Runs `pre-package.d`: the runs, or [`CommitError::PreHook`] when one failed (lbu's
/// `run-parts … || return 1`).
pub fn pre_hooks(
    sys: &dyn Sys,
    system: &hooks::System,
    seen: &mut dyn FnMut(&HookRun),
) -> Result<Vec<HookRun>, CommitError> {
    let runs = hooks::run(sys, system, PRE_PACKAGE, seen);
    let failed: Vec<HookRun> = runs.iter().filter(|r| r.failed()).cloned().collect();
    if failed.is_empty() {
        Ok(runs)
    } else {
        Err(CommitError::PreHook { failed })
    }
}

/// Runs `post-package.d`; failures are only reported (lbu ignores their status).
pub fn post_hooks(
    sys: &dyn Sys,
    system: &hooks::System,
    seen: &mut dyn FnMut(&HookRun),
) -> Vec<HookRun> {
    hooks::run(sys, system, POST_PACKAGE, seen)
}

/// The target of a commit of `req`.
pub fn target(sys: &dyn Sys, req: &Request, root: &Root) -> Result<Target, CommitError> {
    let conf = LbuConf::load(root, &|k| std::env::var(k).ok());
    let host = hostname(&req.root, req.hostname.as_deref());
    let dir = media_dir(sys, req, &conf, &host)?;
    let cipher = match &req.encrypt {
        None => conf.encryption.clone(),
        Some(Encrypt::Ramboot) => Some(crypt::RAMBOOT_SUFFIX.to_string()),
        Some(Encrypt::Openssl { cipher }) => Some(
            cipher
                .clone()
                .or_else(|| conf.encryption.clone())
                .or_else(|| conf.default_cipher.clone())
                .unwrap_or_else(|| crypt::DEFAULT_CIPHER.to_string()),
        ),
    };
    let mut name = format!("{host}.apkovl.tar.gz");
    if let Some(c) = &cipher {
        if c != crypt::RAMBOOT_SUFFIX {
            crypt::Cipher::by_name(c).map_err(|source| CommitError::Cipher {
                suffix: c.clone(),
                source,
            })?;
        }
        name.push('.');
        name.push_str(c);
    }
    Ok(Target {
        dir,
        name,
        // At least one: the previous apkovl is the last-known-good fallback.
        backup_limit: conf.backup_limit.unwrap_or(0).max(1),
        cipher,
        password: conf.password,
    })
}

/// How long the terminal waits for a passphrase.
const TYPING_TIME: std::time::Duration = std::time::Duration::from_secs(600);

/// The passphrase of an encrypted commit or diff: `--key-file`'s first line, else lbu.conf's
/// `PASSWORD` (as lbu), else typed on the terminal with echo off, twice when it seals
/// (`confirm`). `file`: the apkovl the prompt names.
pub fn passphrase(
    sys: &dyn Sys,
    req: &Request,
    target: &Target,
    file: &Path,
    confirm: bool,
) -> Result<Vec<u8>, CommitError> {
    let pass = if let Some(f) = &req.key_file {
        let bytes =
            fs::read(f).map_err(|e| CommitError::Passphrase(format!("{}: {e}", f.display())))?;
        crypt::passphrase_from_file(&bytes).to_vec()
    } else if let Some(p) = &target.password {
        p.0.clone()
    } else {
        let ask = |prompt: &str| match sys.read_secret(prompt, TYPING_TIME) {
            Ok(Some(p)) => Ok(p),
            Ok(None) => Err(CommitError::Passphrase("none typed".into())),
            Err(e) => Err(CommitError::Passphrase(format!(
                "cannot read one from the terminal: {e} (give --key-file)"
            ))),
        };
        let pass = ask(&format!("Passphrase for {}: ", file.display()))?;
        if confirm && ask("Passphrase again: ")? != pass {
            return Err(CommitError::Passphrase(
                "the two passphrases typed differ".into(),
            ));
        }
        pass
    };
    if pass.is_empty() {
        return Err(CommitError::Passphrase("the passphrase is empty".into()));
    }
    Ok(pass)
}

/// `ramboot commit`.
pub fn commit(sys: &dyn Sys, req: &Request) -> Result<Report, CommitError> {
    commit_with(sys, req, &mut |_| {})
}

/// `ramboot commit`, telling `seen` of each lbu hook as it ends.
pub fn commit_with(
    sys: &dyn Sys,
    req: &Request,
    seen: &mut dyn FnMut(&HookRun),
) -> Result<Report, CommitError> {
    let root = open_root(&req.root)?;
    let target = target(sys, req, &root)?;
    let mut report = Report {
        target: Some(target.path()),
        ..Default::default()
    };
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
    let system = system(sys, req, &root)?;
    report.hooks = pre_hooks(sys, &system, seen)?;
    // Post hooks run once, on the writable medium after the write or after whatever stopped
    // the package step (lbu runs them whatever `cmd_package`'s archive became).
    let mut post_ran = false;
    let mut post = |report: &mut Report| {
        if !std::mem::replace(&mut post_ran, true) {
            report.hooks.extend(post_hooks(sys, &system, seen));
        }
    };
    let stored = package(
        sys,
        req,
        &root,
        &target,
        Stage {
            host_dir: &host_dir,
            others,
            failing,
        },
        &mut report,
        &mut post,
    );
    post(&mut report);
    stored.map(|()| report)
}

/// What [`package`] writes over.
struct Stage<'a> {
    /// The medium's directory as a host path.
    host_dir: &'a Path,
    /// Other apkovls to remove (`-d`).
    others: Vec<String>,
    /// The current apkovl failed to boot.
    failing: bool,
}

/// lbu's `cmd_package` and what `cmd_commit` does after it: select, archive, seal, write;
/// `post` in the write's window, before the rotation.
fn package(
    sys: &dyn Sys,
    req: &Request,
    root: &Root,
    target: &Target,
    stage: Stage,
    report: &mut Report,
    post: &mut dyn FnMut(&mut Report),
) -> Result<(), CommitError> {
    let selection = select(root)?;
    let mut data = Vec::new();
    let written = write_apkovl(root, &selection.files, &mut data).map_err(CommitError::Archive)?;
    report.notes.extend(written.skipped);
    report.selection = selection;
    if req.dry_run {
        report.bytes = data.len() as u64;
        if target.cipher.is_some() {
            report
                .notes
                .push("the size is before encryption; no passphrase was asked".into());
        }
        return Ok(());
    }
    let key = match &target.cipher {
        Some(suffix) => {
            let pass = passphrase(sys, req, target, &target.path(), true)?;
            data = crypt::seal(&data, suffix, &pass).map_err(|source| CommitError::Cipher {
                suffix: suffix.clone(),
                source,
            })?;
            Some((suffix.as_str(), pass))
        }
        None => None,
    };
    report.bytes = data.len() as u64;
    let key = key.as_ref().map(|(s, p)| (*s, p.as_slice()));
    let dir = stage.host_dir;
    lkg::with_writable(sys, &target.dir, || {
        let stored = store(dir, target, &data, key, stage.others, stage.failing, report);
        post(report);
        Ok(stored.and_then(|()| rotate(dir, target, report)))
    })
    .map_err(|source| CommitError::Write {
        path: target.path(),
        source,
    })?
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

/// The write itself, on the writable medium (`dir` a host path). `key`: the suffix and
/// passphrase `data` is sealed with, to read it back.
fn store(
    dir: &Path,
    target: &Target,
    data: &[u8],
    key: Option<(&str, &[u8])>,
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
    if let Err(reason) = read_back(&tmp, key) {
        let _ = fs::remove_file(&tmp);
        return Err(CommitError::ReadBack {
            path: target.path(),
            reason,
        });
    }
    // The old apkovl: copied to its backup name (a rename would leave a moment without any
    // apkovl), or, when a fall-back boot showed it fails, kept aside outside the rotation.
    if let Some(m) = &old {
        let keep = if failing {
            let suffix = target.cipher.as_ref().map(|c| format!(".{c}"));
            format!(
                "{}.failed.tar.gz{}",
                lkg::host_of(&target.name).unwrap_or("apkovl"),
                suffix.unwrap_or_default()
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
    Ok(())
}

/// After the post hooks, as lbu's `cmd_commit`: older copies beyond `BACKUP_LIMIT` and the
/// legacy `packages.list` removed, the directory synced.
fn rotate(dir: &Path, target: &Target, report: &mut Report) -> Result<(), CommitError> {
    let werr = |source| CommitError::Write {
        path: dir.to_path_buf(),
        source,
    };
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
    sync_dir(dir).map_err(werr)
}

/// Reads the written file whole as the boot will: decrypted with `key` when sealed.
fn read_back(path: &Path, key: Option<(&str, &[u8])>) -> Result<(), String> {
    let unlocked = match key {
        Some((suffix, pass)) => {
            let mut f = fs::File::open(path).map_err(|e| e.to_string())?;
            Some(crypt::Unlocked::from_reader(&mut f, suffix, pass).map_err(|e| e.to_string())?)
        }
        None => None,
    };
    crate::overlay::check_unlocked(path, unlocked.as_ref())
        .map(drop)
        .map_err(|e| e.to_string())
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

/// The host's last apkovl in the medium's directory `dir` (a host path): the target's name,
/// else, when no encryption was asked for, the host's one apkovl under another suffix (a
/// commit with `--encrypt` before).
pub fn last_apkovl(dir: &Path, req: &Request, target: &Target) -> Option<PathBuf> {
    let named = dir.join(&target.name);
    if named.is_file() || target.cipher.is_some() || req.encrypt.is_some() {
        return named.is_file().then_some(named);
    }
    let host = lkg::host_of(&target.name)?;
    let mine: Vec<String> = other_apkovls(dir, &target.name)
        .into_iter()
        .filter(|n| lkg::host_of(n) == Some(host) && crypt::suffix_of(Path::new(n)).is_some())
        .collect();
    match mine.as_slice() {
        [one] => Some(dir.join(one)),
        _ => None,
    }
}

/// What changed between the last apkovl at `last` (host path; decrypted with `pass` when its
/// name says it is encrypted) and what a commit would write now: content, link target, mode
/// or owner.
pub fn diff(
    root: &Root,
    selection: &[Selected],
    last: &Path,
    pass: Option<&[u8]>,
) -> Result<Vec<Change>, CommitError> {
    let mut data = Vec::new();
    write_apkovl(root, selection, &mut data).map_err(CommitError::Archive)?;
    let read = |bytes: &[u8]| read_entries(bytes).map_err(CommitError::Archive);
    let crypt_err = |source| CommitError::Crypt {
        path: last.to_path_buf(),
        source,
    };
    let last_bytes = match crypt::suffix_of(last) {
        Some(_) => {
            let pass = pass.ok_or(crypt_err(CryptError::NoPassphrase))?;
            crypt::open_to_vec(last, pass).map_err(crypt_err)?
        }
        None => fs::read(last).map_err(|source| CommitError::Write {
            path: last.to_path_buf(),
            source,
        })?,
    };
    let old = read(&last_bytes)?;
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

/// What `ramboot commit diff` found.
#[derive(Debug, Default)]
pub struct DiffReport {
    /// Where a commit would write.
    pub target: PathBuf,
    /// The last apkovl (the medium's path); None: there is none yet, all is added.
    pub last: Option<PathBuf>,
    pub changes: Vec<Change>,
    /// The lbu hooks that ran.
    pub hooks: Vec<HookRun>,
}

/// `ramboot commit diff`, as lbu's `status`: the last apkovl opened (its passphrase asked),
/// then the hooks run around the selection as for a commit (lbu's `cmd_package -`).
pub fn diff_since_last(
    sys: &dyn Sys,
    req: &Request,
    seen: &mut dyn FnMut(&HookRun),
) -> Result<DiffReport, CommitError> {
    let root = open_root(&req.root)?;
    let target = target(sys, req, &root)?;
    let last = last_apkovl(&sys.path(&target.dir), req, &target);
    let pass = match &last {
        Some(l) if crypt::suffix_of(l).is_some() => {
            let shown = target.dir.join(l.file_name().unwrap_or_default());
            Some(passphrase(sys, req, &target, &shown, false)?)
        }
        _ => None,
    };
    let system = system(sys, req, &root)?;
    let mut report = DiffReport {
        target: target.path(),
        last: last
            .as_ref()
            .map(|l| target.dir.join(l.file_name().unwrap_or_default())),
        hooks: pre_hooks(sys, &system, seen)?,
        ..Default::default()
    };
    let changes = select(&root)
        .map_err(CommitError::from)
        .and_then(|sel| match &last {
            Some(l) => diff(&root, &sel.files, l, pass.as_deref()),
            None => Ok(sel
                .files
                .iter()
                .map(|f| Change {
                    letter: 'A',
                    path: f.path.trim_end_matches('/').to_string(),
                })
                .collect()),
        });
    report.hooks.extend(post_hooks(sys, &system, seen));
    report.changes = changes?;
    Ok(report)
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
