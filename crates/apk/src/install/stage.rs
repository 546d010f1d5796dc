//! Phase 3: staging in parallel, committing in order.
//!
//! Worker threads take packages in install order and stream each one through verification
//! into the staging directory (decompression and hashing on all cores; memory bounded by a
//! look-ahead window of a few packages past the one being committed). The calling thread hands
//! each package's result to the committer strictly in install order. A panic on any thread (a
//! bug) stops everyone and ends the install with [`ApkError::Internal`] instead of a hang.

use super::fault;
use crate::extract::{StagedPackage, Stager, Staging};
use crate::pkg::PkgInfo;
use crate::stream::{read_package, Control, Verify};
use crate::ApkError;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// One package of the changeset, in install order.
pub(super) struct Job {
    pub index: usize,
    pub info: PkgInfo,
    /// The package file; None when no repository has it.
    pub path: Option<PathBuf>,
}

/// A staged package with its control part, or why it was refused.
pub(super) type WorkResult = Result<(Option<Control>, StagedPackage), (ApkError, StagedPackage)>;

/// How the workers run.
pub(super) struct Settings {
    /// Worker threads.
    pub threads: usize,
    /// Root: owners and every xattr are applied.
    pub privileged: bool,
    /// The process umask (staged files get their exact mode).
    pub umask: u32,
}

/// Stages every job on worker threads and calls `commit` for each in install order. Returns how
/// long the committer waited for staged packages. Fails only when a thread panicked (a bug):
/// then the workers stop too.
pub(super) fn stage_and_commit(
    jobs: &[Job],
    staging: &Staging,
    settings: &Settings,
    mut commit: impl FnMut(&Job, WorkResult),
) -> Result<StageTimes, ApkError> {
    let shared = Shared {
        state: Mutex::new(State {
            results: (0..jobs.len()).map(|_| None).collect(),
            committed: 0,
            failure: None,
        }),
        cond: Condvar::new(),
    };
    let next = Mutex::new(0usize);
    let workers_cpu = AtomicU64::new(0);
    let env = WorkerEnv {
        jobs,
        next: &next,
        shared: &shared,
        staging,
        window: settings.threads * 2 + 2,
        privileged: settings.privileged,
        umask: settings.umask,
        cpu: &workers_cpu,
    };
    std::thread::scope(|s| {
        for _ in 0..settings.threads.min(jobs.len().max(1)) {
            s.spawn(|| run_worker(&env));
        }
        let mut guard = CommitGuard {
            shared: &shared,
            current: String::new(),
            done: false,
        };
        let mut waited = Duration::ZERO;
        for job in jobs {
            let asked = Instant::now();
            let result = shared.take(job.index)?;
            waited += asked.elapsed();
            guard.current = job.info.nv();
            fault::check(fault::Site::Committer, &job.info.name);
            commit(job, result);
            shared.release(job.index);
        }
        guard.done = true;
        Ok(waited)
    })
    .map(|waited| StageTimes {
        waited,
        workers_cpu: Duration::from_nanos(workers_cpu.load(Ordering::Relaxed)),
    })
}

/// Where staging's time went (the report's profile).
pub(super) struct StageTimes {
    /// The committer's waits for staged packages.
    pub waited: Duration,
    /// The worker threads' CPU time.
    pub workers_cpu: Duration,
}

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
pub(super) fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
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
    /// The workers' CPU time, in nanoseconds.
    cpu: &'a AtomicU64,
}

/// A worker thread: stages jobs until none is left. A panic (a bug) is caught and recorded, so
/// the committer stops instead of waiting forever for the job this worker held.
fn run_worker(env: &WorkerEnv<'_>) {
    let mut current = String::new();
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(env, &mut current)));
    let cpu = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    let nanos = (cpu.tv_sec as u64).saturating_mul(1_000_000_000) + cpu.tv_nsec as u64;
    env.cpu.fetch_add(nanos, Ordering::Relaxed);
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
    // Boxed: the apkovl reader (ramboot's overlay) shares this instance of the gzip and tar
    // readers; a package is read in large blocks, so the indirect call costs nothing.
    let f: Box<dyn std::io::Read> = Box::new(f);
    match read_package(f, &nv, Verify::Identity(&id), &mut stager) {
        Ok(c) => Ok((Some(c), stager.out)),
        Err(e) => Err((e, stager.out)),
    }
}
