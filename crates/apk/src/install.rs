//! The install transaction: what `apk add` does, in parallel where it is safe.
//!
//! Worker threads take packages in install order, stream each one through verification into
//! the staging directory (decompression and hashing run on all cores, memory stays bounded by
//! a small look-ahead window). The calling thread commits packages strictly in install order:
//! pre-install script, directories, ownership and protected-path decisions, renames,
//! post-install script — so the root goes through the same states as with apk. Then directory
//! permissions, triggers and the db files. A package that fails (bad checksum, missing file,
//! hostile entry) is dropped and the others still install, as at boot.

use super::checksum::Checksum;
use super::db::{self, DirRec, FileRec, InstalledPkg};
use super::dep::Dep;
use super::extract::{Committer, StagedEntry, StagedPackage, Stager, Staging, STAGING_DIR};
use super::ids::IdCache;
use super::pkg::PkgInfo;
use super::repo::{root_repositories, RepoSet};
use super::sign::Keyring;
use super::solver::{self, Candidate};
use super::stream::{read_package, Control, ScriptKind, Verify};
use super::tar::Kind;
use super::ApkError;
use crate::fnmatch::fnmatch_pathname as fnmatch;
use ramboot_sys::fsutil::{Resolve, Root, Symlinks};
use ramboot_sys::{MountFlags, NodeKind, Spawn, Sys};
use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;
use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// When package scripts run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ScriptPolicy {
    /// Run when privileged (root); otherwise skip with a warning (host use).
    #[default]
    Auto,
    /// Always try (through [`Sys::run`]); a script that cannot run marks its package.
    Always,
    /// Never (`--no-scripts`); scripts are still recorded in scripts.tar.
    Never,
    /// Like `Auto`, but a skipped script marks its package as failed.
    FailUnprivileged,
}

/// What the progress callback is told.
#[derive(Clone, Debug)]
pub enum Progress {
    /// The transaction starts: packages to install and their total installed size.
    Start {
        packages: usize,
        bytes: u64,
    },
    /// Package `index` (1-based) of `total` is being committed.
    Package {
        index: usize,
        total: usize,
        name: String,
        version: String,
        bytes_done: u64,
    },
    Done,
}

/// The progress callback.
pub type ProgressFn = Box<dyn Fn(&Progress) + Send + Sync>;

/// Merged directory permissions: (uid, gid, mode, created by this transaction).
type DirPerm = (u32, u32, u32, bool);

/// Everything an install needs. Paths are as the system sees them (mapped by [`Sys::path`]).
pub struct InstallRequest {
    pub root: PathBuf,
    /// Local repository directories (`--repository`), in command-line order.
    pub repositories: Vec<PathBuf>,
    /// Package cache; None: `<root>/etc/apk/cache` when that is a directory.
    pub cache_dir: Option<PathBuf>,
    /// Extra trusted key directories (the root's `etc/apk/keys` is always used).
    pub keys_dirs: Vec<PathBuf>,
    /// Atoms added to world (`apk add` arguments).
    pub world_add: Vec<String>,
    /// The overlay file list (`tar -v` listing of the apkovl): these files win.
    pub overlay_list: Option<Vec<String>>,
    /// Create the db (`--initdb`).
    pub initdb: bool,
    /// `--initramfs-diskless-boot`: initdb, force overwrite and broken world.
    pub diskless_boot: bool,
    /// `--clean-protected`: keep existing protected files, no `.apk-new`.
    pub clean_protected: bool,
    /// Accept unsigned or unknown-key indexes (loudly).
    pub allow_untrusted: bool,
    pub scripts: ScriptPolicy,
    /// Architecture; None: `etc/apk/arch` or this machine's.
    pub arch: Option<String>,
    /// Also use `<root>/etc/apk/repositories` (apk does unless `--repositories-file`).
    pub use_root_repositories: bool,
    /// Worker threads; 0: one per core.
    pub jobs: usize,
    pub progress: Option<ProgressFn>,
    /// How paths are resolved in the root (tests force the walk older kernels get).
    pub resolve: Resolve,
}

impl Default for InstallRequest {
    fn default() -> Self {
        InstallRequest {
            root: PathBuf::from("/"),
            repositories: Vec::new(),
            cache_dir: None,
            keys_dirs: Vec::new(),
            world_add: Vec::new(),
            overlay_list: None,
            initdb: false,
            diskless_boot: false,
            clean_protected: false,
            allow_untrusted: false,
            scripts: ScriptPolicy::Auto,
            arch: None,
            use_root_repositories: true,
            jobs: 0,
            progress: None,
            resolve: Resolve::Kernel,
        }
    }
}

/// What happened.
#[derive(Debug, Default)]
pub struct InstallReport {
    /// (name, version) in install order, including packages installed with problems.
    pub installed: Vec<(String, String)>,
    /// World atoms that could not be satisfied and were skipped (diskless boot), with why.
    pub skipped_world: Vec<(String, String)>,
    /// Packages refused (not installed), with the error.
    pub failed: Vec<(String, ApkError)>,
    /// Packages installed with broken files or scripts (db `f:` flags), with details.
    pub broken: Vec<(String, String)>,
    /// Repositories that could not be used.
    pub repo_warnings: Vec<String>,
    /// Scripts that did not run (not privileged, or a system that cannot run them faithfully),
    /// with why: what they would have done is not verified.
    pub scripts_not_run: Vec<String>,
    pub warnings: Vec<String>,
    pub files: u64,
    pub bytes: u64,
    pub elapsed: Duration,
}

impl InstallReport {
    /// apk's error count: failed plus broken packages.
    pub fn errors(&self) -> usize {
        self.failed.len() + self.broken.len()
    }

    /// apk's exit status: the error count, capped at 99.
    pub fn exit_code(&self) -> i32 {
        self.errors().min(99) as i32
    }
}

/// Protection modes of directories (`etc/apk/protected_paths.d`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Protect {
    None,
    Ignore,
    Changed,
    SymlinksOnly,
    All,
}

struct Protection {
    rules: Vec<(Protect, Vec<String>)>,
}

impl Protection {
    fn load(root: &Path) -> Protection {
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

    fn protects(&self, dir: &str) -> bool {
        !matches!(self.mode(dir), Protect::None | Protect::Ignore)
    }
}

/// Parses the overlay list: files (full paths) and directories. Stops at a line without `/`.
fn parse_overlay(lines: &[String]) -> (HashSet<String>, HashSet<String>) {
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

fn mkdir_mode(root: &Root, rel: &str, mode: u32) {
    let _ = root.mkdir(Path::new(rel), mode);
}

/// `apk_db_create`: the skeleton of an empty root.
fn create_db(req_root: &Path, root: &Root, sys: &dyn Sys) -> Result<(), ApkError> {
    mkdir_mode(root, "tmp", 0o1777);
    mkdir_mode(root, "dev", 0o755);
    // The nodes are made by path: only where no symlink leads elsewhere.
    let dev = Path::new("dev");
    if let Ok(dev_fd) = root.open_with(dev, OFlags::PATH | OFlags::DIRECTORY, Symlinks::Refused) {
        for (name, minor, mode) in [
            ("null", 3, 0o666),
            ("zero", 5, 0o666),
            ("random", 8, 0o666),
            ("urandom", 9, 0o666),
        ] {
            let made = sys.mknod(
                &req_root.join(dev).join(name),
                NodeKind::Char,
                mode,
                1,
                minor,
            );
            if made.is_ok() {
                // apk runs with umask 0: the nodes get exactly this mode.
                let mode = Mode::from_raw_mode(mode);
                let _ = rustix::fs::chmodat(&dev_fd, name, mode, AtFlags::empty());
            }
        }
        let _ = sys.mknod(&req_root.join("dev/console"), NodeKind::Char, 0o600, 5, 1);
    }
    for d in [
        "etc",
        "etc/apk",
        "lib",
        "lib/apk",
        "lib/apk/db",
        "var",
        "var/cache",
        "var/cache/apk",
        "var/cache/misc",
    ] {
        mkdir_mode(root, d, 0o755);
    }
    db::write_file(root, db::WORLD, b"")?;
    db::write_file(root, db::INSTALLED, b"")?;
    Ok(())
}

/// The package cache: as the system sees it (for its mount) and where to open it.
struct CacheDir {
    guest: PathBuf,
    host: PathBuf,
}

/// `<cache>/installed`, written after the db as apk does when the cache is active.
///
/// An lbu-style card keeps the cache on the boot medium, mounted read-only: like apk
/// (`apk_db_open`), the medium is remounted read-write for the write and then back. A medium
/// that cannot be made writable (a locked card) only gets a notice.
fn write_cache_installed(sys: &dyn Sys, cache: &CacheDir, dbs: &db::Db, repos: &RepoSet) {
    let mut pkgs: Vec<&InstalledPkg> = dbs.packages.iter().collect();
    pkgs.sort_by(|a, b| {
        super::dep::name_cmp(&a.info.name, &b.info.name)
            .then_with(|| super::version::compare(&a.info.version, &b.info.version))
    });
    let text = super::repo::cache_installed_text(pkgs.into_iter().map(|p| {
        let bits = repos
            .packages
            .iter()
            .find(|a| a.info.identity.is_some() && a.info.identity == p.info.identity)
            .map_or(0, |a| a.repos);
        (&p.info, bits)
    }));
    let shown = cache.guest.join(super::repo::CACHE_INSTALLED);
    let written = with_writable_mount(sys, &cache.guest, || {
        use std::os::unix::fs::PermissionsExt;
        let tmp = cache.host.join("installed.new");
        std::fs::write(&tmp, text)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))?;
        std::fs::rename(&tmp, cache.host.join(super::repo::CACHE_INSTALLED))
    });
    match written {
        Ok(()) => {}
        Err(CacheWrite::StaysReadOnly(target, e)) => log::info!(
            "apk: {} not updated: {} is read-only and cannot be remounted read-write ({e})",
            shown.display(),
            target.display()
        ),
        Err(CacheWrite::Failed(e)) if e.raw_os_error() == Some(Errno::ROFS.raw_os_error()) => {
            log::info!("apk: {} not updated: read-only", shown.display())
        }
        Err(CacheWrite::Failed(e)) => log::warn!("apk: writing {}: {e}", shown.display()),
    }
}

/// Why a write into the cache did not happen.
enum CacheWrite {
    /// The cache's mount is read-only and refused to become writable.
    StaysReadOnly(PathBuf, std::io::Error),
    Failed(std::io::Error),
}

/// Runs `write` with the mount that holds `guest` writable: a read-only mount is remounted
/// read-write, keeping its other flags, and read-only again afterwards (apk's
/// `cache_remount_dir`), through [`Sys::remount`].
fn with_writable_mount(
    sys: &dyn Sys,
    guest: &Path,
    write: impl FnOnce() -> std::io::Result<()>,
) -> Result<(), CacheWrite> {
    let read_only = sys
        .mount_containing(guest)
        .ok()
        .filter(|m| m.flags.contains(MountFlags::RDONLY));
    if let Some(m) = &read_only {
        sys.remount(&m.target, m.flags - MountFlags::RDONLY, "")
            .map_err(|e| CacheWrite::StaysReadOnly(m.target.clone(), e))?;
    }
    let written = write();
    if let Some(m) = &read_only {
        if let Err(e) = sys.remount(&m.target, m.flags, "") {
            log::warn!(
                "apk: cannot remount {} read-only again: {e}",
                m.target.display()
            );
        }
    }
    written.map_err(CacheWrite::Failed)
}

/// The cache directory: explicit, or `<root>/etc/apk/cache` if it leads to a directory.
fn find_cache(req: &InstallRequest, root: &Path, sys: &dyn Sys) -> Option<CacheDir> {
    if let Some(c) = &req.cache_dir {
        return Some(CacheDir {
            guest: c.clone(),
            host: sys.path(c),
        });
    }
    let link = root.join("etc/apk/cache");
    let guest_link = req.root.join("etc/apk/cache");
    let cache = match std::fs::read_link(&link) {
        // An absolute target is resolved from the system's `/` (the boot medium), as apk does.
        Ok(t) if t.is_absolute() => CacheDir {
            host: sys.path(&t),
            guest: t,
        },
        Ok(t) => CacheDir {
            guest: guest_link.parent()?.join(&t),
            host: link.parent()?.join(t),
        },
        Err(_) => CacheDir {
            guest: guest_link,
            host: link,
        },
    };
    cache.host.is_dir().then_some(cache)
}

/// Fault injection for tests: makes the installer panic where a bug would, to prove that a
/// panic ends the install with an error instead of a hang. Armed per package name, so tests that
/// run in parallel do not disturb each other; unarmed it costs one atomic load per package.
#[doc(hidden)]
pub mod fault {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;

    /// Where the injected panic happens.
    #[derive(Clone, Copy, PartialEq, Eq)]
    pub enum Site {
        /// A worker thread, while it stages the package.
        Worker,
        /// The committing thread, as the package's commit starts.
        Committer,
    }

    static ARMED: AtomicBool = AtomicBool::new(false);
    static TARGETS: Mutex<Vec<(Site, String)>> = Mutex::new(Vec::new());

    /// From now on, `site` panics whenever it handles the package named `package`.
    pub fn panic_at(site: Site, package: &str) {
        TARGETS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((site, package.to_string()));
        ARMED.store(true, Ordering::Release);
    }

    pub(super) fn check(site: Site, package: &str) {
        if !ARMED.load(Ordering::Acquire) {
            return;
        }
        let hit = TARGETS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|(s, p)| *s == site && p == package);
        if hit {
            panic!("injected fault while handling {package}");
        }
    }
}

struct Job {
    index: usize,
    info: PkgInfo,
    path: Option<PathBuf>,
}

type WorkResult = Result<(Option<Control>, StagedPackage), (ApkError, StagedPackage)>;

/// What the workers and the committer share.
struct Shared {
    state: Mutex<State>,
    cond: Condvar,
}

struct State {
    /// One slot per job, filled by a worker, taken by the committer.
    results: Vec<Option<WorkResult>>,
    /// Jobs below this index are committed (the look-ahead window starts here).
    committed: usize,
    /// Set when a thread panicked: everyone stops waiting and the install fails with it.
    failure: Option<String>,
}

impl Shared {
    /// The state, also after a panicking thread poisoned the lock: every writer leaves it
    /// consistent, and the failure it records is what the others must see.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wait<'a>(&self, g: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.cond.wait(g).unwrap_or_else(PoisonError::into_inner)
    }

    /// Records the first failure and wakes every waiting thread.
    fn fail(&self, why: String) {
        let mut g = self.lock();
        g.failure.get_or_insert(why);
        self.cond.notify_all();
    }

    /// The committer's wait for job `index`; Err when a worker died.
    fn take(&self, index: usize) -> Result<WorkResult, ApkError> {
        let mut g = self.lock();
        loop {
            if let Some(r) = g.results[index].take() {
                return Ok(r);
            }
            if let Some(why) = &g.failure {
                return Err(ApkError::Internal(why.clone()));
            }
            g = self.wait(g);
        }
    }

    /// Job `index` is committed: the window moves on.
    fn release(&self, index: usize) {
        let mut g = self.lock();
        g.committed = index + 1;
        self.cond.notify_all();
    }
}

/// The text of a caught panic.
fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}

/// Stops the workers when the committer leaves early (an error, or a panic, which is a bug):
/// they wait on the look-ahead window only the committer moves, and the scope that joins them
/// would wait forever.
struct CommitGuard<'a> {
    shared: &'a Shared,
    /// The package being committed.
    current: String,
    done: bool,
}

impl Drop for CommitGuard<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if std::thread::panicking() {
            let why = format!(
                "the committing thread panicked while committing {}",
                self.current
            );
            log::error!("apk: {why}");
            self.shared.fail(why);
        } else {
            // An early return: the failure that caused it is already recorded.
            self.shared.fail("the committer stopped".into());
        }
    }
}

/// The settings every worker uses.
struct WorkerEnv<'a> {
    jobs: &'a [Job],
    next: &'a Mutex<usize>,
    shared: &'a Shared,
    staging: &'a Staging,
    window: usize,
    privileged: bool,
    umask: u32,
}

/// A worker thread: stages jobs until none is left. A panic (a bug) is caught and recorded, so
/// the committer stops instead of waiting forever for the job this worker held.
fn run_worker(env: &WorkerEnv<'_>) {
    let mut current = String::new();
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(env, &mut current)));
    if let Err(p) = run {
        env.shared.fail(format!(
            "a worker thread panicked while staging {current}: {}",
            panic_text(p.as_ref())
        ));
    }
}

fn work(env: &WorkerEnv<'_>, current: &mut String) {
    let shared = env.shared;
    loop {
        let job = {
            let mut n = env.next.lock().unwrap_or_else(PoisonError::into_inner);
            if *n >= env.jobs.len() {
                return;
            }
            let i = *n;
            *n += 1;
            &env.jobs[i]
        };
        *current = job.info.nv();
        // Bounded look-ahead: do not run too far ahead of the committer.
        {
            let mut g = shared.lock();
            while job.index >= g.committed + env.window && g.failure.is_none() {
                g = shared.wait(g);
            }
            if g.failure.is_some() {
                return;
            }
        }
        fault::check(fault::Site::Worker, &job.info.name);
        let result = stage_job(job, env);
        let result = match result {
            Err((e, staged)) => {
                staged.discard(env.staging);
                Err((e, StagedPackage::default()))
            }
            ok => ok,
        };
        let mut g = shared.lock();
        g.results[job.index] = Some(result);
        shared.cond.notify_all();
    }
}

/// Reads one package through verification into the staging directory.
// The result goes straight into its slot in `State::results`: boxing it would buy nothing.
#[allow(clippy::result_large_err)]
fn stage_job(job: &Job, env: &WorkerEnv<'_>) -> WorkResult {
    let nv = job.info.nv();
    if job.info.installed_size == 0 {
        return Ok((None, StagedPackage::default()));
    }
    let Some(path) = &job.path else {
        return Err((
            ApkError::PackageFileMissing {
                package: nv,
                path: PathBuf::from("(no repository has it)"),
            },
            StagedPackage::default(),
        ));
    };
    // The index's `C:` is what the package is verified against: without it there is nothing
    // to trust the file by.
    let Some(id) = job.info.identity else {
        return Err((
            ApkError::Format {
                what: nv,
                reason: "its index record has no checksum (C:), so the package cannot be verified"
                    .into(),
            },
            StagedPackage::default(),
        ));
    };
    let f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) => {
            // Not found is what apk says; any other reason is named.
            let err = if e.kind() == std::io::ErrorKind::NotFound {
                ApkError::PackageFileMissing {
                    package: nv,
                    path: path.clone(),
                }
            } else {
                ApkError::io(format!("{nv}: opening {}", path.display()), e)
            };
            return Err((err, StagedPackage::default()));
        }
    };
    let mut stager = Stager::new(
        env.staging,
        &nv,
        job.info.installed_size,
        env.privileged,
        env.umask,
    );
    match read_package(f, &nv, Verify::Identity(&id), &mut stager) {
        Ok(c) => Ok((Some(c), stager.out)),
        Err(e) => Err((e, stager.out)),
    }
}

struct ScriptRunner<'a> {
    sys: &'a dyn Sys,
    req_root: &'a Path,
    root: &'a Root,
    policy: ScriptPolicy,
    privileged: bool,
    /// Scripts skipped or not run faithfully, for [`InstallReport::scripts_not_run`].
    not_run: Mutex<Vec<String>>,
}

impl ScriptRunner<'_> {
    /// A script that did not run: a warning (or, when it must run, the package's error).
    fn skipped(
        &self,
        info: &PkgInfo,
        kind: ScriptKind,
        why: &str,
        warnings: &mut Vec<String>,
    ) -> Result<bool, String> {
        let msg = format!("{}: {} script not run ({why})", info.nv(), kind.name());
        if self.policy == ScriptPolicy::FailUnprivileged {
            return Err(msg);
        }
        self.not_run
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(msg.clone());
        warnings.push(msg);
        Ok(false)
    }

    /// Runs one script; Err(reason) marks the package's script as broken.
    fn run(
        &self,
        info: &PkgInfo,
        kind: ScriptKind,
        body: &[u8],
        args: &[String],
        warnings: &mut Vec<String>,
    ) -> Result<bool, String> {
        let run = match self.policy {
            ScriptPolicy::Never => false,
            ScriptPolicy::Always => true,
            ScriptPolicy::Auto | ScriptPolicy::FailUnprivileged => self.privileged,
        };
        if !run {
            if self.policy == ScriptPolicy::Never {
                return Ok(false);
            }
            return self.skipped(info, kind, "needs root to chroot", warnings);
        }
        let file = format!("{}-{}.{}", info.name, info.version, kind.name());
        let script = PathBuf::from(format!("lib/apk/exec/{file}"));
        let remove = || {
            if let Ok((dir, name)) = self.root.parent(&script) {
                let _ = rustix::fs::unlinkat(&dir, name, AtFlags::empty());
            }
        };
        let write = || -> std::io::Result<()> {
            remove();
            let mut f = self.root.create(&script, OFlags::EXCL, 0o755)?;
            std::io::Write::write_all(&mut f, body)
        };
        if write().is_err() {
            let _ = self
                .root
                .create_dirs(Path::new("lib/apk"), 0o755, &mut Vec::new());
            mkdir_mode(self.root, "lib/apk/exec", 0o700);
            write()
                .map_err(|e| format!("{}: cannot write {} script: {e}", info.nv(), kind.name()))?;
        }
        let spawn = Spawn {
            program: script.clone(),
            args: args.iter().map(OsString::from).collect(),
            env: vec![("PATH".into(), "/usr/sbin:/usr/bin:/sbin:/bin".into())],
            chroot: Some(self.req_root.to_path_buf()),
            cwd: Some(PathBuf::from("/")),
            umask: Some(0o022),
            controlling_tty: false,
        };
        let result = self.sys.run(&spawn);
        remove();
        match result {
            Err(e) if ramboot_sys::not_run_reason(&e).is_some() => {
                let why = ramboot_sys::not_run_reason(&e)
                    .unwrap_or_default()
                    .to_string();
                self.skipped(info, kind, &why, warnings)
            }
            Ok(0) => Ok(true),
            Ok(code) => Err(format!(
                "{}: {} script exited with error {code}",
                info.nv(),
                kind.name()
            )),
            Err(e) => Err(format!(
                "{}: {} script could not run: {e} (exit 127)",
                info.nv(),
                kind.name()
            )),
        }
    }
}

/// Installs `req.world_add` (plus the existing world) into `req.root`. See the module docs.
/// A panic anywhere in the transaction (a bug) ends it with [`ApkError::Internal`]; the db is
/// then not written.
pub fn install(req: &InstallRequest, sys: &dyn Sys) -> Result<InstallReport, ApkError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| transaction(req, sys))).unwrap_or_else(
        |p| {
            let _ = std::fs::remove_dir_all(sys.path(&req.root).join(STAGING_DIR));
            Err(ApkError::Internal(panic_text(p.as_ref())))
        },
    )
}

fn transaction(req: &InstallRequest, sys: &dyn Sys) -> Result<InstallReport, ApkError> {
    let started = Instant::now();
    let mut report = InstallReport::default();
    let root = sys.path(&req.root);
    let create = req.initdb || req.diskless_boot;
    if !root.is_dir() {
        if !create {
            return Err(ApkError::io(
                format!("root {}", root.display()),
                std::io::Error::from(std::io::ErrorKind::NotFound),
            ));
        }
        std::fs::create_dir_all(&root)
            .map_err(|e| ApkError::io(format!("creating root {}", root.display()), e))?;
    }
    let root_dir = Root::open(&root, req.resolve)
        .map_err(|e| ApkError::io(format!("opening root {}", root.display()), e))?;
    let db_missing = !root_dir.exists(Path::new(db::WORLD), true)
        || root_dir.dir(Path::new("lib/apk/db")).is_err();
    if db_missing {
        if !create {
            return Err(ApkError::Usage(format!(
                "{}: no apk database (use --initdb)",
                root.display()
            )));
        }
        create_db(&req.root, &root_dir, sys)?;
    }
    mkdir_mode(&root_dir, "proc", 0o555);
    // Architecture.
    let arch = match &req.arch {
        Some(a) => {
            db::write_file(&root_dir, db::ARCH, format!("{a}\n").as_bytes())?;
            a.clone()
        }
        None => match root_dir.read_to_string(Path::new(db::ARCH)) {
            Ok(t) if !t.trim().is_empty() => t.trim().to_string(),
            _ => {
                let a = super::build::default_arch().to_string();
                db::write_file(&root_dir, db::ARCH, format!("{a}\n").as_bytes())?;
                a
            }
        },
    };
    // Lock.
    let lock_path = root.join("lib/apk/db/lock");
    let lock = root_dir
        .create(Path::new("lib/apk/db/lock"), OFlags::empty(), 0o600)
        .map_err(|e| ApkError::io(format!("opening {}", lock_path.display()), e))?;
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(
        |e| {
            ApkError::io(
                format!("locking {} (another apk running?)", lock_path.display()),
                std::io::Error::from_raw_os_error(e.raw_os_error()),
            )
        },
    )?;

    let mut keys = Keyring::default();
    keys.add_dir(&root.join("etc/apk/keys"))?;
    for k in &req.keys_dirs {
        keys.add_dir(&sys.path(k))?;
    }
    if req.allow_untrusted {
        let w = "--allow-untrusted: unsigned indexes and indexes signed by unknown keys are ACCEPTED; package checksums are still checked against the index".to_string();
        log::warn!("apk: {w}");
        report.warnings.push(w);
    }
    let protection = Protection::load(&root);
    let (overlay_files, overlay_dirs) = parse_overlay(req.overlay_list.as_deref().unwrap_or(&[]));
    let mut dbs = db::read(&root_dir)?;
    let cache = find_cache(req, &root, sys);
    let cache_host = cache.as_ref().map(|c| c.host.as_path());
    let extra: Vec<(Option<String>, String)> = if req.use_root_repositories {
        root_repositories(&root)
            .into_iter()
            .map(|(t, u)| {
                if u.contains("://") {
                    (t, u)
                } else {
                    (t, sys.path(Path::new(&u)).to_string_lossy().into_owned())
                }
            })
            .collect()
    } else {
        Vec::new()
    };
    let repo_paths: Vec<PathBuf> = req.repositories.iter().map(|p| sys.path(p)).collect();
    let repos = RepoSet::load(
        &repo_paths,
        &extra,
        &arch,
        cache_host,
        &keys,
        req.allow_untrusted,
    );
    for w in &repos.warnings {
        log::warn!("apk: {w}");
    }
    report.repo_warnings = repos.warnings.clone();

    // World.
    let mut world = dbs.world.clone();
    for a in &req.world_add {
        let d = Dep::parse(a)?;
        world.retain(|w| w.name != d.name);
        world.push(d);
    }
    // Candidates: repository packages and what is installed.
    let mut cands: Vec<Candidate> = repos
        .packages
        .iter()
        .map(|a| Candidate {
            info: a.info.clone(),
            repos: a.repos,
            available: repos.available(a),
            installed: false,
        })
        .collect();
    let mut repo_of: Vec<Option<usize>> = (0..cands.len()).map(Some).collect();
    for ip in &dbs.packages {
        match cands
            .iter()
            .position(|c| c.info.identity.is_some() && c.info.identity == ip.info.identity)
        {
            Some(i) => cands[i].installed = true,
            None => {
                cands.push(Candidate {
                    info: ip.info.clone(),
                    repos: 0,
                    available: true,
                    installed: true,
                });
                repo_of.push(None);
            }
        }
    }
    let solution = solver::solve(&cands, &world, req.diskless_boot).map_err(|e| match e {
        ApkError::Unsatisfiable { problems, .. } => ApkError::Unsatisfiable {
            problems,
            unused_repositories: repos.warnings.clone(),
        },
        other => other,
    })?;
    for (d, why) in &solution.broken_world {
        log::debug!("apk: world entry {d} skipped: {why}");
        report.skipped_world.push((d.to_string(), why.clone()));
    }
    dbs.world = solution.world.clone();

    // The changeset: chosen packages not installed yet.
    let mut jobs: Vec<Job> = Vec::new();
    for &c in &solution.order {
        if cands[c].installed {
            continue;
        }
        let path = repo_of[c].and_then(|r| repos.package_path(&repos.packages[r]));
        jobs.push(Job {
            index: jobs.len(),
            info: cands[c].info.clone(),
            path,
        });
    }
    // Declared sizes come from the index: untrusted numbers that may add up past u64.
    let total_bytes: u64 = jobs
        .iter()
        .fold(0, |sum, j| sum.saturating_add(j.info.installed_size));
    if let Some(p) = &req.progress {
        p(&Progress::Start {
            packages: jobs.len(),
            bytes: total_bytes,
        });
    }

    let privileged = sys.privileged();
    let umask = {
        let old = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
        rustix::process::umask(old);
        old.bits()
    };
    let staging = Staging::create(&root_dir)
        .map_err(|e| ApkError::io("creating the staging directory", e))?;
    let shared = Shared {
        state: Mutex::new(State {
            results: (0..jobs.len()).map(|_| None).collect(),
            committed: 0,
            failure: None,
        }),
        cond: Condvar::new(),
    };
    let next = Mutex::new(0usize);
    let threads = if req.jobs > 0 {
        req.jobs
    } else {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    };
    let window = threads * 2 + 2;
    let scripts = ScriptRunner {
        sys,
        req_root: &req.root,
        root: &root_dir,
        policy: req.scripts,
        privileged,
        not_run: Mutex::default(),
    };

    // File ownership: path -> index into dbs.packages; overlay files are None.
    let mut owner: HashMap<String, Option<usize>> = HashMap::new();
    for (i, p) in dbs.packages.iter().enumerate() {
        for f in p.file_paths() {
            owner.insert(f, Some(i));
        }
    }
    for f in &overlay_files {
        owner.insert(f.clone(), None);
    }
    // Directory permissions merged over the transaction: path -> (uid, gid, mode, created).
    let mut dir_perms: HashMap<String, DirPerm> = HashMap::new();
    let mut installed_now: Vec<usize> = Vec::new();
    let mut bytes_done = 0u64;

    let env = WorkerEnv {
        jobs: &jobs,
        next: &next,
        shared: &shared,
        staging: &staging,
        window,
        privileged,
        umask,
    };
    let committed = std::thread::scope(|s| {
        for _ in 0..threads.min(jobs.len().max(1)) {
            s.spawn(|| run_worker(&env));
        }
        let mut guard = CommitGuard {
            shared: &shared,
            current: String::new(),
            done: false,
        };
        let mut committer = Committer::new(&root_dir, &staging, privileged);
        let mut ids = IdCache::default();
        for job in &jobs {
            let result = shared.take(job.index)?;
            let nv = job.info.nv();
            guard.current.clone_from(&nv);
            fault::check(fault::Site::Committer, &job.info.name);
            if let Some(p) = &req.progress {
                p(&Progress::Package {
                    index: job.index + 1,
                    total: jobs.len(),
                    name: job.info.name.clone(),
                    version: job.info.version.clone(),
                    bytes_done,
                });
            }
            let (control, staged) = match result {
                Ok(ok) => ok,
                Err((e, _)) => {
                    log::error!("apk: {e}");
                    report.failed.push((nv, e));
                    shared.release(job.index);
                    continue;
                }
            };
            committer.reset_cache();
            let mut problems: Vec<String> = staged.warnings.clone();
            let mut broken_files = staged.broken_files;
            let mut broken_script = false;
            let mut info = job.info.clone();
            let mut pkg_scripts = Vec::new();
            if let Some(c) = &control {
                info.replaces = c.info.replaces.clone();
                info.replaces_priority = c.info.replaces_priority;
                info.triggers = c.info.triggers.clone();
                pkg_scripts = c.scripts.clone();
            }
            let old = dbs.packages.iter().position(|p| p.info.name == info.name);
            let old_version = old.map(|o| dbs.packages[o].info.version.clone());
            let pre = if old.is_some() {
                ScriptKind::PreUpgrade
            } else {
                ScriptKind::PreInstall
            };
            let mut script_args = vec![info.version.clone()];
            script_args.extend(old_version.clone());
            // Owners, looked up when apk looks them up (see `ids` and `stream::Lookup`).
            ids.look_up_all(&root_dir, &staged.owners_before_script);
            let first_owner = staged
                .entries
                .first()
                .filter(|_| staged.first_entry_before_script)
                .map(|e| resolve_owner(&mut ids, &root_dir, e));
            if let Some(body) = control.as_ref().and_then(|c| c.script(pre)) {
                match scripts.run(&info, pre, body, &script_args, &mut report.warnings) {
                    Ok(ran) => {
                        if ran {
                            ids.reset();
                        }
                    }
                    Err(m) => {
                        broken_script = true;
                        problems.push(m);
                    }
                }
            }
            ids.look_up_all(&root_dir, &staged.owners_after_script);
            // Commit the entries in archive order.
            let mut dirs: Vec<DirRec> = Vec::new();
            let mut dir_index: HashMap<String, usize> = HashMap::new();
            let new_index = dbs.packages.len();
            for (n, e) in staged.entries.iter().enumerate() {
                let (uid, gid) = match first_owner {
                    Some(owner) if n == 0 => owner,
                    _ => resolve_owner(&mut ids, &root_dir, e),
                };
                if e.kind == Kind::Dir {
                    match committer.mkdir(&e.path, e.mode) {
                        Ok(created) => {
                            let entry = dir_perms.entry(e.path.clone()).or_insert((
                                uid,
                                gid,
                                e.mode & 0o7777,
                                created,
                            ));
                            if (uid, gid) < (entry.0, entry.1) {
                                (entry.0, entry.1, entry.2) = (uid, gid, e.mode & 0o7777);
                            } else if (uid, gid) == (entry.0, entry.1) {
                                entry.2 &= e.mode & 0o7777;
                            }
                        }
                        Err(err) => {
                            // apk records the directory even when creating it failed.
                            broken_files = true;
                            problems.push(format!("{}: {err}", e.path));
                        }
                    }
                    if !dir_index.contains_key(&e.path) {
                        dir_index.insert(e.path.clone(), dirs.len());
                        dirs.push(DirRec {
                            path: e.path.clone(),
                            uid,
                            gid,
                            mode: e.mode & 0o7777,
                            xattr_csum: e.xattr_csum,
                            files: Vec::new(),
                        });
                    }
                    continue;
                }
                let (dir, _) = e.path.rsplit_once('/').unwrap_or(("", &e.path));
                // The checksum the db has for the file now, taken before a takeover below
                // forgets it (apk compares with it in `apk_db_migrate_files`).
                let recorded_sum = owner.get(&e.path).copied().flatten().and_then(|o| {
                    let (d, f) = e.path.rsplit_once('/').unwrap_or(("", &e.path));
                    dbs.packages
                        .get(o)?
                        .dirs
                        .iter()
                        .find(|x| x.path == d)
                        .and_then(|x| x.files.iter().find(|y| y.name == f))
                        .and_then(|y| y.csum)
                });
                // Who owns the path now?
                let mut discard = false;
                let mut record = true;
                match owner.get(&e.path).copied() {
                    Some(None) => discard = true, // overlay: the user's copy stays
                    Some(Some(o)) if Some(o) != old && o != new_index => {
                        let other = &dbs.packages[o].info;
                        let same = other.name == info.name
                            || (!other.origin.is_empty() && other.origin == info.origin);
                        let replaces = |a: &PkgInfo, b: &PkgInfo| {
                            a.replaces.iter().any(|d| {
                                d.name == b.name
                                    && d.matches_provider(Some(&b.version), b.identity.as_ref())
                            })
                        };
                        if same || replaces(&info, other) {
                            dbs.packages[o].forget_file(&e.path);
                        } else if replaces(other, &info) {
                            discard = true;
                            record = false;
                        } else if req.diskless_boot {
                            report.warnings.push(format!(
                                "{nv}: overwriting {} owned by {}",
                                e.path,
                                other.nv()
                            ));
                            dbs.packages[o].forget_file(&e.path);
                        } else {
                            problems.push(format!(
                                "trying to overwrite {} owned by {}",
                                e.path,
                                other.nv()
                            ));
                            broken_files = true;
                            discard = true;
                            record = false;
                        }
                    }
                    _ => {}
                }
                let mut apk_new = false;
                // The checksum recorded: none when the file could not be written (apk).
                let mut csum = e.checksum;
                let mut written = true;
                if !discard && protection.protects(dir) {
                    match committer.existing(&e.path, true) {
                        Ok(Some(disk_sum)) => {
                            let differs = recorded_sum.is_none() || recorded_sum != disk_sum;
                            if differs {
                                if req.clean_protected
                                    || (e.checksum.is_some() && e.checksum == disk_sum)
                                {
                                    discard = true;
                                } else {
                                    apk_new = true;
                                }
                            }
                        }
                        Ok(None) => {}
                        Err(err) => {
                            broken_files = true;
                            problems.push(format!("{}: {err}", e.path));
                            discard = true;
                            record = false;
                        }
                    }
                }
                if discard {
                    if let Some(s) = &e.staged {
                        staging.discard(s);
                    }
                } else if let Err(err) = committer.place(e, &e.path, uid, gid, apk_new) {
                    broken_files = true;
                    problems.push(format!("{}: {err}", e.path));
                    if let Some(s) = &e.staged {
                        staging.discard(s);
                    }
                    // apk keeps a file it failed to write in the db: without checksum when
                    // its temporary file could not be created (no parent directory), with it
                    // when only the final rename failed.
                    if committer.dir(dir).is_err() {
                        csum = None;
                    }
                    written = false;
                }
                if !record {
                    continue;
                }
                if written {
                    report.files += 1;
                    report.bytes += e.size;
                }
                bytes_done += e.size;
                let di = *dir_index.entry(dir.to_string()).or_insert_with(|| {
                    dirs.push(DirRec {
                        path: dir.to_string(),
                        uid: 0,
                        gid: 0,
                        mode: 0o755,
                        xattr_csum: None,
                        files: Vec::new(),
                    });
                    dirs.len() - 1
                });
                let mode = if e.kind == Kind::Symlink {
                    0o777
                } else {
                    e.mode & 0o7777
                };
                let fname = e
                    .path
                    .rsplit_once('/')
                    .map(|(_, f)| f)
                    .unwrap_or(&e.path)
                    .to_string();
                dirs[di].files.retain(|f| f.name != fname);
                dirs[di].files.push(FileRec {
                    name: fname,
                    uid,
                    gid,
                    mode,
                    xattr_csum: e.xattr_csum,
                    csum,
                });
                owner.insert(e.path.clone(), Some(new_index));
            }
            // Upgrade: drop the old version's files that the new one does not ship.
            if let Some(o) = old {
                let keep: HashSet<String> = dirs
                    .iter()
                    .flat_map(|d| {
                        d.files.iter().map(move |f| {
                            if d.path.is_empty() {
                                f.name.clone()
                            } else {
                                format!("{}/{}", d.path, f.name)
                            }
                        })
                    })
                    .collect();
                let old_files: Vec<(String, Option<Checksum>)> = dbs.packages[o]
                    .dirs
                    .iter()
                    .flat_map(|d| {
                        d.files.iter().map(move |f| {
                            let p = if d.path.is_empty() {
                                f.name.clone()
                            } else {
                                format!("{}/{}", d.path, f.name)
                            };
                            (p, f.csum)
                        })
                    })
                    .collect();
                for (f, sum) in old_files {
                    if !keep.contains(&f) && owner.get(&f) == Some(&Some(o)) {
                        // apk (`apk_db_purge_pkg`) leaves a protected file the user changed.
                        let (d, _) = f.rsplit_once('/').unwrap_or(("", &f));
                        let unlink = !protection.protects(d)
                            || matches!(
                                (sum, committer.existing(&f, true)),
                                (Some(s), Ok(Some(Some(disk)))) if s == disk
                            );
                        if unlink {
                            committer.remove(&f);
                        }
                        owner.remove(&f);
                    }
                }
                // Directories no package uses any more go too, deepest first, if empty.
                let mut used: HashSet<&str> = dirs.iter().map(|d| d.path.as_str()).collect();
                for (i, p) in dbs.packages.iter().enumerate() {
                    if i != o {
                        used.extend(p.dirs.iter().map(|d| d.path.as_str()));
                    }
                }
                let in_use = |d: &str| {
                    used.contains(d) || used.iter().any(|u| u.starts_with(&format!("{d}/")))
                };
                let mut gone: Vec<String> = Vec::new();
                for d in &dbs.packages[o].dirs {
                    let mut cur = d.path.as_str();
                    while !cur.is_empty() && !in_use(cur) {
                        if !gone.iter().any(|g| g == cur) {
                            gone.push(cur.to_string());
                        }
                        cur = cur.rsplit_once('/').map_or("", |(p, _)| p);
                    }
                }
                gone.sort_by_key(|d| std::cmp::Reverse(d.matches('/').count()));
                for d in &gone {
                    committer.rmdir(d);
                    dir_perms.remove(d);
                }
            }
            let post = if old.is_some() {
                ScriptKind::PostUpgrade
            } else {
                ScriptKind::PostInstall
            };
            if let Some(body) = control.as_ref().and_then(|c| c.script(post)) {
                match scripts.run(&info, post, body, &script_args, &mut report.warnings) {
                    Ok(true) => ids.reset(),
                    Ok(false) => {}
                    Err(m) => {
                        broken_script = true;
                        problems.push(m);
                    }
                }
            }
            dbs.packages.push(InstalledPkg {
                info: info.clone(),
                dirs,
                broken_files,
                broken_script,
                broken_xattr: staged.broken_xattr,
                sha256_160: false,
                tag: None,
                scripts: pkg_scripts,
            });
            if let Some(o) = old {
                // Re-point ownership of files that moved index when the old record goes away.
                dbs.packages.remove(o);
                for i in owner.values_mut().flatten() {
                    if *i > o {
                        *i -= 1;
                    }
                }
                installed_now.iter_mut().for_each(|i| {
                    if *i > o {
                        *i -= 1
                    }
                });
            }
            installed_now.push(dbs.packages.len() - 1);
            report
                .installed
                .push((info.name.clone(), info.version.clone()));
            for p in &problems {
                log::warn!("apk: {nv}: {p}");
            }
            if broken_files || broken_script {
                report.broken.push((nv, problems.join("; ")));
            } else if !problems.is_empty() {
                report
                    .warnings
                    .extend(problems.into_iter().map(|p| format!("{nv}: {p}")));
            }
            shared.release(job.index);
        }
        // Directory permissions, merged over all packages (apk_db_update_directory_permissions).
        let mut dirs: Vec<(&String, &DirPerm)> = dir_perms.iter().filter(|(_, v)| v.3).collect();
        dirs.sort();
        committer.reset_cache();
        for (path, &(uid, gid, mode, _)) in dirs {
            committer.fix_dir(path, uid, gid, mode);
        }
        guard.done = true;
        Ok::<(), ApkError>(())
    });
    staging.remove();
    committed?;

    // Triggers: each newly installed package's globs against every known directory.
    let mut all_dirs: Vec<String> = dbs
        .packages
        .iter()
        .flat_map(|p| p.dirs.iter().map(|d| d.path.clone()))
        .collect();
    all_dirs.extend(overlay_dirs);
    all_dirs.sort();
    all_dirs.dedup();
    for &i in &installed_now {
        let p = &dbs.packages[i];
        let Some((_, body)) = p.scripts.iter().find(|(k, _)| *k == ScriptKind::Trigger) else {
            continue;
        };
        let matched: Vec<String> = all_dirs
            .iter()
            .map(|d| format!("/{d}"))
            .filter(|d| {
                p.info
                    .triggers
                    .iter()
                    .any(|g| g.starts_with('/') && fnmatch(g, d))
            })
            .collect();
        if matched.is_empty() {
            continue;
        }
        let info = p.info.clone();
        let body = body.clone();
        if let Err(m) = scripts.run(
            &info,
            ScriptKind::Trigger,
            &body,
            &matched,
            &mut report.warnings,
        ) {
            // A failing trigger marks the package but does not count as an error.
            log::warn!("apk: {m}");
            report.warnings.push(m);
            dbs.packages[i].broken_script = true;
        }
    }
    report.scripts_not_run =
        std::mem::take(&mut *scripts.not_run.lock().unwrap_or_else(|e| e.into_inner()));
    db::write(&root_dir, &dbs)?;
    if let Some(c) = &cache {
        write_cache_installed(sys, c, &dbs, &repos);
    }
    drop(lock);
    if let Some(p) = &req.progress {
        p(&Progress::Done);
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

/// An entry's (uid, gid): its owner names through the id cache, its numbers as the fallback.
fn resolve_owner(ids: &mut IdCache, root_dir: &Root, e: &StagedEntry) -> (u32, u32) {
    (
        ids.uid(root_dir, &e.uname, e.uid),
        ids.gid(root_dir, &e.gname, e.gid),
    )
}
