//! The install transaction: what `apk add` does, in parallel where it is safe.
//!
//! Worker threads take packages in install order, stream each one through verification into
//! the staging directory (decompression and hashing run on all cores, memory stays bounded by
//! a small look-ahead window). The calling thread commits packages strictly in install order:
//! pre-install script, directories, ownership and protected-path decisions, renames,
//! post-install script — so the root goes through the same states as with apk. Then directory
//! permissions, triggers and the db files. A package that fails (bad checksum, missing file,
//! hostile entry) is dropped and the others still install, as at boot.
//!
//! The phases, one module each: `prepare` opens and locks the root and loads the
//! repositories; `solve` turns world into the changeset; `stage` runs the workers and hands
//! packages over in order; `commit` writes each package into the root; `triggers` runs the
//! trigger scripts; `record` writes the db. [`install`] is that sequence.

mod commit;
#[doc(hidden)]
pub mod fault;
mod prepare;
mod protect;
pub use protect::{parse_rule, Protect, BUILT_IN_RULES};
mod record;
mod scripts;
mod solve;
mod stage;
mod triggers;

use crate::extract::STAGING_DIR;
use crate::repo::RepoSet;
use crate::ApkError;
use ramboot_sys::fsutil::Resolve;
use ramboot_sys::Sys;
use scripts::ScriptRunner;
use stage::Job;
use std::path::{Path, PathBuf};
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
        /// Packages to install.
        packages: usize,
        /// Their declared installed size.
        bytes: u64,
    },
    /// Package `index` (1-based) of `total` is being committed.
    Package {
        /// 1-based position in the transaction.
        index: usize,
        /// Packages in the transaction.
        total: usize,
        /// Package name.
        name: String,
        /// Package version.
        version: String,
        /// Bytes committed before this package.
        bytes_done: u64,
    },
    /// The transaction is over (db written).
    Done,
}

/// The progress callback.
pub type ProgressFn = Box<dyn Fn(&Progress) + Send + Sync>;

/// Downloads a URL to a host path (the boot's HTTP client): how remote repositories' indexes
/// and packages reach the cache. The error is one line naming the cause.
/// It is given the installer's `Sys` (the network goes through it too).
pub type FetchFn = Box<dyn Fn(&dyn Sys, &str, &Path) -> Result<(), String> + Send + Sync>;

/// Everything an install needs. Paths are as the system sees them (mapped by [`Sys::path`]).
pub struct InstallRequest {
    /// The root to install into, as the system sees it.
    pub root: PathBuf,
    /// Local repository directories (`--repository`), in command-line order.
    pub repositories: Vec<PathBuf>,
    /// Package cache; None: `<root>/etc/apk/cache` when that is a directory.
    pub cache_dir: Option<PathBuf>,
    /// Extra trusted key directories (the root's `etc/apk/keys` is always used).
    pub keys_dirs: Vec<PathBuf>,
    /// Atoms added to world (`apk add` arguments).
    pub world_add: Vec<String>,
    /// `apk add -u`: upgrade the named packages and their dependencies instead of keeping
    /// the installed versions.
    pub upgrade: bool,
    /// `apk add -l`: the named packages and their dependencies take the newest versions.
    pub latest: bool,
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
    /// When scripts run.
    pub scripts: ScriptPolicy,
    /// Architecture; None: `etc/apk/arch` or this machine's.
    pub arch: Option<String>,
    /// Also use `<root>/etc/apk/repositories` (apk does unless `--repositories-file`).
    pub use_root_repositories: bool,
    /// Worker threads; 0: one per core.
    pub jobs: usize,
    /// Called as the transaction goes (from the committing thread).
    pub progress: Option<ProgressFn>,
    /// How paths are resolved in the root (tests force the walk older kernels get).
    pub resolve: Resolve,
    /// Remote repositories are fetched with this into the cache (which must then be set):
    /// the index before the solve, the chosen packages before staging. Without it they are
    /// used only through what the cache already holds (an offline install).
    pub fetch: Option<FetchFn>,
}

impl Default for InstallRequest {
    fn default() -> Self {
        InstallRequest {
            root: PathBuf::from("/"),
            repositories: Vec::new(),
            cache_dir: None,
            keys_dirs: Vec::new(),
            world_add: Vec::new(),
            upgrade: false,
            latest: false,
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
            fetch: None,
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
    /// Other problems worth telling (overwritten files, scripts not run ...).
    pub warnings: Vec<String>,
    /// Files written.
    pub files: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Time the transaction took.
    pub elapsed: Duration,
    /// Where that time went, for the boot timeline: each phase's duration in order (prepare,
    /// solve, commit, triggers, db), then parts of them: the committer's CPU and its waits for
    /// staged packages, the workers' CPU, the package cache's index, each script run.
    pub profile: Vec<(String, Duration)>,
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

/// Times the transaction's phases into [`InstallReport::profile`].
struct Phases(Instant);

impl Phases {
    /// The phase that started at the last call ends now.
    fn end(&mut self, name: &'static str, report: &mut InstallReport) {
        let now = Instant::now();
        report.profile.push((name.into(), now - self.0));
        self.0 = now;
    }
}

/// This thread's CPU time so far.
fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// Installs `req.world_add` (plus the existing world) into `req.root`. See the module docs.
/// A panic anywhere in the transaction (a bug) ends it with [`ApkError::Internal`]; the db is
/// then not written.
pub fn install(req: &InstallRequest, sys: &dyn Sys) -> Result<InstallReport, ApkError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| transaction(req, sys))).unwrap_or_else(
        |p| {
            let _ = std::fs::remove_dir_all(sys.path(&req.root).join(STAGING_DIR));
            Err(ApkError::Internal(stage::panic_text(p.as_ref())))
        },
    )
}

/// Downloads the chosen packages that only a remote repository has into the cache, where the
/// jobs expect them; each is then verified against its index record like any other. A package
/// that cannot be fetched is one warning, and its job fails as a missing file would.
fn fetch_packages(
    sys: &dyn Sys,
    fetch: &FetchFn,
    repos: &RepoSet,
    jobs: &[Job],
    report: &mut InstallReport,
) {
    for job in jobs {
        let Some(path) = &job.path else { continue };
        if path.exists() {
            continue;
        }
        let Some(url) = repos.package_url(&job.info) else {
            continue;
        };
        if let Err(e) = fetch(sys, &url, path) {
            let w = format!("{}: cannot fetch {url}: {e}", job.info.nv());
            log::warn!("apk: {w}");
            report.warnings.push(w);
        }
    }
}

/// The transaction, phase by phase.
fn transaction(req: &InstallRequest, sys: &dyn Sys) -> Result<InstallReport, ApkError> {
    let started = Instant::now();
    let mut report = InstallReport::default();
    let mut phase = Phases(Instant::now());
    let (target, mut db) = prepare::prepare(req, sys, &mut report)?;
    phase.end("prepare", &mut report);
    let (jobs, tags) = solve::changeset(req, &target, &mut db, &mut report)?;
    phase.end("solve", &mut report);
    if let Some(fetch) = &req.fetch {
        fetch_packages(sys, fetch, &target.repos, &jobs, &mut report);
        phase.end("fetch", &mut report);
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
    let scripts = ScriptRunner::new(sys, req, &target.root, privileged);
    let cpu_before = thread_cpu();
    let installed_now =
        commit::stage_and_commit(req, &target, &mut db, &jobs, &scripts, &mut report)?;
    let commit_cpu = thread_cpu().saturating_sub(cpu_before);
    phase.end("commit", &mut report);
    report.profile.push(("committer cpu".into(), commit_cpu));
    triggers::run(&target, &mut db, &installed_now, &scripts, &mut report);
    phase.end("triggers", &mut report);
    solve::record_tags(&mut db, &tags);
    report.scripts_not_run = scripts.take_not_run();
    let cache_index = record::write(sys, &target, &db)?;
    drop(target.lock);
    phase.end("db", &mut report);
    if let Some(took) = cache_index {
        report.profile.push(("cache index".into(), took));
    }
    report.profile.extend(scripts.take_times());
    if let Some(p) = &req.progress {
        p(&Progress::Done);
    }
    report.elapsed = started.elapsed();
    Ok(report)
}
