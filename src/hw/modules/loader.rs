//! Loading: a request becomes a plan where each module waits only for its own dependencies,
//! and independent modules load in parallel. Requests may run at the same time on several
//! threads (the boot's drivers beside the media search): a module one of them is loading is not
//! loaded again by another, which waits for it instead (the kernel would verify the second copy's
//! signature before refusing it).

use super::db::read_opt;
use super::{decompress, normalize, Compression, ModuleDb, ModuleError};
use crate::sys::{ModuleImage, Sys};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io;
use std::path::Path;
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// A load request.
#[derive(Clone, Debug, Default)]
pub struct Request {
    /// Names, aliases or modaliases.
    pub names: Vec<String>,
    /// Apply the blacklist to names too (`modprobe -b`); aliases always honour it.
    pub blacklist_all: bool,
    /// Extra parameters per module name (`modprobe name a=b`).
    pub params: HashMap<String, Vec<String>>,
}

impl Request {
    pub fn names<I: IntoIterator<Item = S>, S: Into<String>>(names: I) -> Request {
        Request {
            names: names.into_iter().map(Into::into).collect(),
            ..Request::default()
        }
    }
}

/// Why a module did not load.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FailReason {
    /// The kernel refused it: errno and its text.
    Kernel { errno: i32, message: String },
    /// Reading or decompressing the file failed.
    Read(String),
    /// A module it depends on failed.
    Dependency(String),
    /// Listed as a dependency but missing from `modules.dep`.
    Missing,
}

impl fmt::Display for FailReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailReason::Kernel { message, .. } => write!(f, "{message}"),
            FailReason::Read(m) => write!(f, "{m}"),
            FailReason::Dependency(d) => write!(f, "dependency {d} failed"),
            FailReason::Missing => write!(f, "not in modules.dep"),
        }
    }
}

/// What a [`ModuleLoader::load`] call did. Names are sorted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Loaded by this call.
    pub loaded: Vec<String>,
    /// Built in, loaded before, or `EEXIST`.
    pub already: Vec<String>,
    pub failed: Vec<(String, FailReason)>,
    /// Requests that matched no module at all.
    pub not_found: Vec<String>,
    /// Modules a lookup skipped because of the blacklist.
    pub blacklisted: Vec<String>,
}

impl LoadReport {
    pub fn ok(&self) -> bool {
        self.failed.is_empty() && self.not_found.is_empty()
    }

    pub fn merge(&mut self, other: LoadReport) {
        self.loaded.extend(other.loaded);
        self.already.extend(other.already);
        self.failed.extend(other.failed);
        self.not_found.extend(other.not_found);
        self.blacklisted.extend(other.blacklisted);
        self.sort();
    }

    fn sort(&mut self) {
        for v in [
            &mut self.loaded,
            &mut self.already,
            &mut self.not_found,
            &mut self.blacklisted,
        ] {
            crate::sys::sort::sort(v);
            v.dedup();
        }
        crate::sys::sort::sort_by(&mut self.failed, |a, b| a.0.cmp(&b.0));
    }

    /// Did this module end up in the kernel (now or before)?
    pub fn present(&self, module: &str) -> bool {
        self.loaded.iter().chain(&self.already).any(|m| m == module)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    Loaded,
    Already,
    Failed(FailReason),
}

/// One module of a plan, after its dependencies.
#[derive(Debug)]
struct Step {
    name: String,
    /// Indices of earlier steps that must finish first and must succeed.
    hard: Vec<usize>,
    /// Indices of earlier steps that must finish first (softdep `pre:`).
    soft: Vec<usize>,
}

/// One module's load, timed for the boot timeline (a slow driver shows by name).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModuleTime {
    pub name: String,
    pub start: Duration,
    pub end: Duration,
    /// Of that, the time the loading thread was ready but waited for the CPU (another thread
    /// ran: the boot drivers load at the lowest priority beside the rest of the boot).
    pub cpu_wait: Duration,
}

impl ModuleTime {
    /// The load's own time: start to end without the waits for the CPU.
    pub fn own(&self) -> Duration {
        self.end
            .saturating_sub(self.start)
            .saturating_sub(self.cpu_wait)
    }
}

/// The calling thread's total time spent runnable but not running (the second field of
/// `/proc/thread-self/schedstat`, in ns); zero where the kernel does not say.
fn cpu_wait_so_far(sys: &dyn Sys) -> Duration {
    std::fs::read_to_string(sys.path(Path::new("/proc/thread-self/schedstat")))
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse().ok())
        .map_or(Duration::ZERO, Duration::from_nanos)
}

/// Loads modules from a [`ModuleDb`] through [`Sys::load_module`]. Shareable between threads;
/// remembers what it has loaded so repeated requests (coldplug, hotplug, fs modules) are cheap.
pub struct ModuleLoader<'s> {
    sys: &'s dyn Sys,
    db: ModuleDb,
    /// Modules known to be in the kernel.
    present: Mutex<HashSet<String>>,
    /// Modules being loaded right now, by any thread (its id); `loading_done` wakes waiters.
    loading: Mutex<HashMap<String, i32>>,
    /// Threads raised from background priority for a waiter, until their load ends.
    hurried: Mutex<Vec<i32>>,
    loading_done: Condvar,
    /// Every load this loader made, in the order they finished (when [`Self::timed`]).
    times: Mutex<Vec<ModuleTime>>,
    timed: bool,
    /// `/sys/module/compression`, read once: the format the kernel decompresses itself.
    kernel_compression: Option<String>,
    max_threads: usize,
}

impl<'s> ModuleLoader<'s> {
    pub fn new(sys: &'s dyn Sys, db: ModuleDb) -> Self {
        let kernel_compression =
            std::fs::read_to_string(sys.path(Path::new("/sys/module/compression")))
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty());
        let max_threads = ramboot_sys::cpus().clamp(1, 8);
        ModuleLoader {
            sys,
            db,
            present: Mutex::new(HashSet::new()),
            loading: Mutex::new(HashMap::new()),
            hurried: Mutex::new(Vec::new()),
            loading_done: Condvar::new(),
            times: Mutex::new(Vec::new()),
            timed: false,
            kernel_compression,
            max_threads,
        }
    }

    /// Opens the database for the running kernel (`uname -r`).
    pub fn open(sys: &'s dyn Sys) -> Result<Self, ModuleError> {
        Ok(Self::new(sys, ModuleDb::open(sys, &sys.kernel_release())?))
    }

    pub fn db(&self) -> &ModuleDb {
        &self.db
    }

    /// Re-reads the indexes (after the modloop replaced `/lib/modules/<release>`), keeping what is
    /// known to be loaded.
    pub fn reload(&mut self) -> Result<(), ModuleError> {
        let release = self
            .db
            .dir
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.db = ModuleDb::open(self.sys, &release)?;
        Ok(())
    }

    /// Caps the worker threads (1 = sequential, deterministic traces).
    pub fn with_max_threads(mut self, n: usize) -> Self {
        self.max_threads = n.max(1);
        self
    }

    /// Keeps each load's start and end for [`Self::take_times`] (the boot's loader; a long-lived
    /// one, as in system mode's hotplug, does not keep them).
    pub fn timed(mut self) -> Self {
        self.timed = true;
        self
    }

    /// The loads made so far (taken: the next call returns only later ones).
    pub fn take_times(&self) -> Vec<ModuleTime> {
        std::mem::take(&mut *self.times.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// True once the module is known to be in the kernel (loaded here, or seen loaded).
    pub fn has_loaded(&self, name: &str) -> bool {
        self.lock_present().contains(name)
    }

    fn lock_present(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.present.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Refreshes the set of loaded modules from `/proc/modules`: those whose init is over (a
    /// module still initialising says `Loading` there; its users must wait for it).
    fn refresh_present(&self) {
        let text = read_opt(&self.sys.path(Path::new("/proc/modules")));
        let mut present = self.lock_present();
        present.extend(
            text.lines()
                .filter(|l| l.split_whitespace().nth(4) != Some("Loading"))
                .filter_map(|l| l.split_whitespace().next())
                .map(normalize),
        );
    }

    fn is_present(&self, name: &str) -> bool {
        // Being loaded by another of this loader's requests: /proc/modules and /sys/module show
        // it while its init still runs. The step waits for that load (see `load_one`).
        if self.lock_loading().contains_key(name) {
            return false;
        }
        if self.db.builtin.contains(name) || self.lock_present().contains(name) {
            return true;
        }
        // Built-in modules with parameters and modules loaded by others show up here too.
        let dir = self.sys.path(&Path::new("/sys/module").join(name));
        if dir.is_dir() {
            self.lock_present().insert(name.to_string());
            return true;
        }
        false
    }

    /// Resolves and loads what `req` names, dependencies first, independent modules in parallel.
    pub fn load(&self, req: &Request) -> LoadReport {
        let mut report = LoadReport::default();
        self.refresh_present();
        let mut targets: Vec<String> = Vec::new();
        for name in &req.names {
            let r = self.db.resolve(name, req.blacklist_all);
            if r.modules.is_empty() && r.blacklisted.is_empty() {
                log::debug!("module {name} not found in {}", self.db.dir.display());
                report.not_found.push(name.clone());
            }
            report.blacklisted.extend(r.blacklisted);
            for m in r.modules {
                if !targets.contains(&m) {
                    targets.push(m);
                }
            }
        }
        let (steps, pre_outcomes) = self.plan(&targets);
        for (name, outcome) in pre_outcomes {
            match outcome {
                Outcome::Already => report.already.push(name),
                Outcome::Failed(r) => {
                    log::warn!("module {name}: {r}");
                    report.failed.push((name, r));
                }
                Outcome::Loaded => report.loaded.push(name),
            }
        }
        let outcomes = self.execute(&steps, &req.params);
        for (step, outcome) in steps.iter().zip(outcomes) {
            match outcome {
                Outcome::Loaded => report.loaded.push(step.name.clone()),
                Outcome::Already => report.already.push(step.name.clone()),
                Outcome::Failed(reason) => {
                    log::warn!("module {}: {reason}", step.name);
                    report.failed.push((step.name.clone(), reason));
                }
            }
        }
        report.sort();
        report
    }

    /// Orders the closure of `targets`: softdep `pre:` and dependencies before each module,
    /// `post:` after. Modules already present are settled without a step.
    fn plan(&self, targets: &[String]) -> (Vec<Step>, Vec<(String, Outcome)>) {
        struct Walk<'a, 'b> {
            loader: &'a ModuleLoader<'b>,
            steps: Vec<Step>,
            index: HashMap<String, Option<usize>>,
            settled: Vec<(String, Outcome)>,
            /// On the DFS stack: edges back to these are cycle edges and are dropped.
            visiting: HashSet<String>,
        }
        impl Walk<'_, '_> {
            /// Returns the step index of `name`, if it needs one.
            fn visit(&mut self, name: &str) -> Option<usize> {
                if let Some(i) = self.index.get(name) {
                    return *i;
                }
                if self.visiting.contains(name) {
                    return None;
                }
                let loader = self.loader;
                if loader.is_present(name) {
                    self.index.insert(name.to_string(), None);
                    self.settled.push((name.to_string(), Outcome::Already));
                    return None;
                }
                let Some(entry) = loader.db.modules.get(name) else {
                    self.index.insert(name.to_string(), None);
                    self.settled
                        .push((name.to_string(), Outcome::Failed(FailReason::Missing)));
                    return None;
                };
                self.visiting.insert(name.to_string());
                let softdep = loader.db.softdep(name).cloned().unwrap_or_default();
                let mut soft = Vec::new();
                for s in &softdep.pre {
                    for m in loader.db.resolve(s, false).modules {
                        soft.extend(self.visit(&m));
                    }
                }
                // depmod lists deps so that the last one loads first.
                let mut hard = Vec::new();
                let mut missing = None;
                for d in entry.deps.iter().rev() {
                    hard.extend(self.visit(d));
                    if self
                        .settled
                        .iter()
                        .any(|(n, o)| n == d && matches!(o, Outcome::Failed(_)))
                    {
                        missing = Some(d.clone());
                    }
                }
                self.visiting.remove(name);
                if let Some(d) = missing {
                    self.index.insert(name.to_string(), None);
                    self.settled
                        .push((name.to_string(), Outcome::Failed(FailReason::Dependency(d))));
                    return None;
                }
                let i = self.steps.len();
                self.steps.push(Step {
                    name: name.to_string(),
                    hard,
                    soft,
                });
                self.index.insert(name.to_string(), Some(i));
                for s in &softdep.post {
                    for m in loader.db.resolve(s, false).modules {
                        self.visit(&m);
                    }
                }
                Some(i)
            }
        }
        let mut w = Walk {
            loader: self,
            steps: Vec::new(),
            index: HashMap::new(),
            settled: Vec::new(),
            visiting: HashSet::new(),
        };
        for t in targets {
            w.visit(t);
        }
        (w.steps, w.settled)
    }

    /// Runs the steps on up to `max_threads` workers; a step starts once its own waits are done.
    fn execute(&self, steps: &[Step], extra: &HashMap<String, Vec<String>>) -> Vec<Outcome> {
        #[derive(Clone)]
        enum State {
            Pending,
            Running,
            Done(Outcome),
        }
        let state = Mutex::new(vec![State::Pending; steps.len()]);
        let cv = Condvar::new();
        let lock = || state.lock().unwrap_or_else(|e| e.into_inner());
        let worker = || loop {
            // Take the first pending step whose waits are all done.
            let job = {
                let mut st = lock();
                loop {
                    let done = |i: usize| matches!(st[i], State::Done(_));
                    let ready = (0..steps.len()).find(|&i| {
                        matches!(st[i], State::Pending)
                            && steps[i].hard.iter().chain(&steps[i].soft).all(|&d| done(d))
                    });
                    if let Some(i) = ready {
                        let failed_dep = steps[i]
                            .hard
                            .iter()
                            .find(|&&d| matches!(st[d], State::Done(Outcome::Failed(_))))
                            .map(|&d| steps[d].name.clone());
                        st[i] = State::Running;
                        break Some((i, failed_dep));
                    }
                    if st.iter().all(|s| !matches!(s, State::Pending)) {
                        break None;
                    }
                    st = cv.wait(st).unwrap_or_else(|e| e.into_inner());
                }
            };
            let Some((i, failed_dep)) = job else { break };
            let outcome = match failed_dep {
                Some(d) => Outcome::Failed(FailReason::Dependency(d)),
                // A panic here must not leave the step Running (the other workers would wait
                // forever, and this is PID 1): it becomes a failure of this module.
                None => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    self.load_one(&steps[i].name, extra.get(&steps[i].name))
                }))
                .unwrap_or_else(|_| {
                    Outcome::Failed(FailReason::Read("internal error while loading".into()))
                }),
            };
            lock()[i] = State::Done(outcome);
            cv.notify_all();
        };
        let threads = self.max_threads.min(steps.len());
        if threads <= 1 {
            worker();
        } else {
            std::thread::scope(|s| {
                for _ in 0..threads {
                    s.spawn(worker);
                }
            });
        }
        let st = state.into_inner().unwrap_or_else(|e| e.into_inner());
        st.into_iter()
            .map(|s| match s {
                State::Done(o) => o,
                _ => Outcome::Failed(FailReason::Read("not run".into())),
            })
            .collect()
    }

    /// Loads one module whose dependencies are in, and times it. When another thread is loading
    /// it, waits for that load instead and takes its result.
    fn load_one(&self, name: &str, extra: Option<&Vec<String>>) -> Outcome {
        {
            let mut loading = self.lock_loading();
            let mut hurried = false;
            while let Some(&tid) = loading.get(name) {
                if !hurried {
                    hurried = true;
                    self.hurry(tid);
                }
                loading = self
                    .loading_done
                    .wait(loading)
                    .unwrap_or_else(|e| e.into_inner());
            }
            // Loaded by another request since this one was planned.
            if self.lock_present().contains(name) {
                return Outcome::Already;
            }
            // Not loaded, or the other load failed: this request tries (and says why) itself.
            loading.insert(name.to_string(), self.sys.thread_id());
        }
        let outcome = self.load_one_timed(name, extra);
        self.lock_loading().remove(name);
        self.loading_done.notify_all();
        self.unhurry();
        outcome
    }

    fn lock_loading(&self) -> std::sync::MutexGuard<'_, HashMap<String, i32>> {
        self.loading.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A load someone now waits for runs at normal priority: on one core, a background thread
    /// (the boot drivers at nice 19) would otherwise get the CPU only when every other thread
    /// is idle, and the waiter (the cached root's loop device, the modloop) with it.
    fn hurry(&self, tid: i32) {
        match self.sys.hurry_thread(tid) {
            Ok(true) => self
                .hurried
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(tid),
            Ok(false) => {}
            Err(e) => log::debug!("a module load keeps its background priority: {e}"),
        }
    }

    /// Back to background priority after a load that was hurried.
    fn unhurry(&self) {
        let me = self.sys.thread_id();
        let was = {
            let mut h = self.hurried.lock().unwrap_or_else(|e| e.into_inner());
            let was = h.contains(&me);
            h.retain(|&t| t != me);
            was
        };
        if was {
            let _ = self.sys.background_priority();
        }
    }

    fn load_one_timed(&self, name: &str, extra: Option<&Vec<String>>) -> Outcome {
        if !self.timed {
            return self.load_one_untimed(name, extra);
        }
        let start = self.sys.now();
        let waited_before = cpu_wait_so_far(self.sys);
        let outcome = self.load_one_untimed(name, extra);
        let time = ModuleTime {
            name: name.to_string(),
            start,
            end: self.sys.now(),
            cpu_wait: cpu_wait_so_far(self.sys).saturating_sub(waited_before),
        };
        self.times
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(time);
        outcome
    }

    fn load_one_untimed(&self, name: &str, extra: Option<&Vec<String>>) -> Outcome {
        let Some(entry) = self.db.modules.get(name) else {
            return Outcome::Failed(FailReason::Missing);
        };
        let mut params = self.db.params(name);
        params.extend(extra.into_iter().flatten().cloned());
        let params = params.join(" ");
        let guest = self.db.dir.join(&entry.path);
        let compression = Compression::of(&entry.path);
        let kernel_does_it = compression != Compression::None
            && self
                .kernel_compression
                .as_deref()
                .is_some_and(|k| k.split_whitespace().any(|w| w == compression.kernel_name()));
        let mut result = if compression == Compression::None || kernel_does_it {
            self.sys.load_module(
                ModuleImage::File {
                    path: &guest,
                    compressed: kernel_does_it,
                },
                &params,
            )
        } else {
            Err(io::Error::from(io::ErrorKind::Unsupported))
        };
        if compression != Compression::None
            && matches!(&result, Err(e) if e.kind() == io::ErrorKind::Unsupported || e.raw_os_error() == Some(95))
        {
            // Decompress here: the kernel cannot (EOPNOTSUPP) or does not claim to.
            let bytes =
                std::fs::File::open(self.sys.path(&guest)).and_then(|f| decompress(compression, f));
            result = match bytes {
                Ok(b) => self.sys.load_module(ModuleImage::Bytes(&b), &params),
                Err(e) => {
                    let err = ModuleError::ReadModule {
                        module: name.into(),
                        path: guest.clone(),
                        source: e,
                    };
                    return Outcome::Failed(FailReason::Read(err.to_string()));
                }
            };
        }
        match result {
            Ok(()) => {
                log::debug!("loaded module {name}");
                self.lock_present().insert(name.to_string());
                Outcome::Loaded
            }
            Err(e) if e.raw_os_error() == Some(17) => {
                self.lock_present().insert(name.to_string());
                Outcome::Already
            }
            Err(e) => match e.raw_os_error() {
                Some(errno) => Outcome::Failed(FailReason::Kernel {
                    errno,
                    message: e.to_string(),
                }),
                None => Outcome::Failed(FailReason::Read(e.to_string())),
            },
        }
    }
}
