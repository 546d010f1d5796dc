//! The drivers stage: `modules=`, `rootfstype=`, Alpine's fixed `loop squashfs simpledrm` and
//! `/etc/modules`, loaded on a thread of their own while the boot goes on to look for its media
//! or root device.
//!
//! Why beside the device search: most of these modules are unrelated to the disk the boot is
//! waiting for (Alpine's Raspberry Pi line loads the whole USB and SCSI storage stack, ~200 ms
//! of module loading on one core), and a device they make appear arrives as a uevent the search
//! listens for anyway. The thread runs at the lowest CPU priority, so on a single core the
//! search (coldplug, the disk's own drivers, the mount) goes first and these modules fill the
//! idle time. The loader shares a module between concurrent requests (each module still waits
//! for its own dependencies), and times every load for the timeline.
//!
//! The device search leaves the CPU-feature modules of coldplug (crypto and checksum
//! accelerations) to this job as well: none helps to find a disk.
//!
//! The stage is recorded when the job is joined: before anything that needs the modules in
//! (the root's mount, the modloop's new module index, the handoff), timed from its start to the
//! moment its last module finished.

use super::runner::Done;
use super::{stages, Boot, BootEnd};
use crate::hw::modules::{normalize, FailReason, LoadReport, ModuleLoader, Request};
use crate::sys::Sys;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::Scope;
use std::time::Duration;

/// Where the blacklist from `blacklist=` goes, as in Alpine.
pub const BLACKLIST_CONF: &str = "/etc/modprobe.d/boot-opt-blacklist.conf";

/// The boot drivers' job: started by the drivers stage, finished on its own thread.
#[derive(Default)]
pub struct DriversJob {
    /// When the stage began (the loader's index was read then).
    start: Duration,
    state: Mutex<JobState>,
    done: Condvar,
    /// The stage was recorded (the job is joined once).
    recorded: Mutex<bool>,
}

#[derive(Default)]
struct JobState {
    /// Requests handed over while the job runs (the device search's deferred coldplug).
    later: Vec<Request>,
    /// What the loads did and when the last one ended, once the job is over.
    result: Option<(LoadReport, Duration)>,
}

impl DriversJob {
    fn lock(&self) -> std::sync::MutexGuard<'_, JobState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `req` for the job; gives it back when the job is already over.
    fn hand_over(&self, req: Request) -> Result<(), Request> {
        let mut st = self.lock();
        if st.result.is_some() {
            return Err(req);
        }
        st.later.push(req);
        Ok(())
    }

    /// Waits for the job's end (at once when it is over).
    fn wait(&self) -> (LoadReport, Duration) {
        let mut st = self.lock();
        loop {
            if let Some(r) = st.result.as_ref() {
                return r.clone();
            }
            st = self.done.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// The job's thread: `first`, then whatever was handed over meanwhile, until nothing is left.
    /// The loader's handle is dropped before the end is told: whoever waits may then re-read
    /// the index.
    fn run(&self, sys: &dyn Sys, loader: Arc<ModuleLoader<'_>>, first: Vec<Request>) {
        let mut loader = Some(loader);
        let mut report = LoadReport::default();
        let mut batch = first;
        loop {
            if let Some(l) = loader.as_deref() {
                report.merge(load_all(l, &batch));
            }
            let mut st = self.lock();
            if st.later.is_empty() {
                drop(loader.take());
                st.result = Some((report, sys.now()));
                self.done.notify_all();
                return;
            }
            batch = std::mem::take(&mut st.later);
        }
    }
}

/// Loads each request in turn. A panic still gives a report (a failure): the boot waits for
/// this job, and this is PID 1.
fn load_all(loader: &ModuleLoader<'_>, requests: &[Request]) -> LoadReport {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut report = LoadReport::default();
        for r in requests {
            report.merge(loader.load(r));
        }
        report
    }))
    .unwrap_or_else(|p| LoadReport {
        failed: vec![(
            "(boot drivers)".into(),
            FailReason::Read(format!("internal error: {}", super::panic_text(&p))),
        )],
        ..LoadReport::default()
    })
}

/// Writes `blacklist=` into modprobe.d (Alpine: only in the initramfs).
pub fn write_blacklist(boot: &Boot<'_>) {
    if boot.plan.blacklist.is_empty() {
        return;
    }
    let text: String = boot
        .plan
        .blacklist
        .iter()
        .map(|m| format!("blacklist {m}\n"))
        .collect();
    let path = boot.sys.path(Path::new(BLACKLIST_CONF));
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Err(e) = std::fs::write(&path, text) {
        log::warn!("cannot write {BLACKLIST_CONF}: {e}");
    }
}

/// `/etc/modules` in the initramfs: one module (with parameters) per line, `#` comments.
fn etc_modules(boot: &Boot<'_>) -> Vec<Vec<String>> {
    let text =
        std::fs::read_to_string(boot.sys.path(Path::new("/etc/modules"))).unwrap_or_default();
    text.lines()
        .map(|l| {
            l.split('#')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// The requests, in Alpine's order: `modules=` (with `rootfstype=`), the fixed modules (their
/// absence is normal: a kernel may have them built in), then `/etc/modules` line by line.
fn requests(boot: &Boot<'_>) -> Vec<Request> {
    let mut out = vec![
        Request::names(boot.plan.modules.clone()),
        Request::names(boot.plan.fixed_modules.clone()),
    ];
    for line in etc_modules(boot) {
        let mut req = Request::names([line[0].clone()]);
        if line.len() > 1 {
            req.params.insert(normalize(&line[0]), line[1..].to_vec());
        }
        out.push(req);
    }
    out
}

/// The module loader for the running kernel, or none (everything built in). Its index is read
/// here, before the job starts; the blacklist is written first.
pub fn open_loader<'a>(boot: &Boot<'a>) -> Option<ModuleLoader<'a>> {
    write_blacklist(boot);
    match ModuleLoader::open(boot.sys) {
        Ok(l) => Some(l.timed()),
        Err(e) => {
            log::debug!("no module loader: {e}");
            None
        }
    }
}

impl<'a> Boot<'a> {
    /// Starts the drivers stage: the loader is made and the boot drivers load on a thread of
    /// `scope`, at background priority. Without modules, the stage is recorded at once.
    pub fn start_drivers<'s>(&mut self, scope: &'s Scope<'s, '_>) -> Result<(), BootEnd>
    where
        'a: 's,
    {
        let start = self.sys.now();
        self.loader = open_loader(self).map(Arc::new);
        let Some(loader) = self.share_loader() else {
            return self
                .stage(&stages::DRIVERS)
                .since(start)
                .run(|_| Ok(Done::ok(())));
        };
        let job = Arc::new(DriversJob {
            start,
            ..DriversJob::default()
        });
        let requests = requests(self);
        let sys = self.sys;
        let running = Arc::clone(&job);
        // No thread (out of memory or tasks): the job runs here, before the search, as it once did.
        let inline = Arc::clone(&job);
        let spawned = std::thread::Builder::new()
            .name("boot-drivers".into())
            .spawn_scoped(scope, {
                let (loader, requests) = (Arc::clone(&loader), requests.clone());
                move || {
                    if let Err(e) = sys.background_priority() {
                        log::debug!("boot drivers at normal priority: {e}");
                    }
                    running.run(sys, loader, requests)
                }
            });
        if let Err(e) = spawned {
            log::warn!("boot drivers load before the device search: no thread for them ({e})");
            inline.run(sys, loader, requests);
        }
        self.drivers = Some(job);
        Ok(())
    }

    /// Loads `req` with the boot drivers, after them, when they are still loading; else now.
    pub fn load_with_drivers(&self, req: Request) {
        if req.names.is_empty() {
            return;
        }
        let req = match &self.drivers {
            Some(job) => match job.hand_over(req) {
                Ok(()) => return,
                Err(req) => req,
            },
            None => req,
        };
        if let Some(loader) = self.loader() {
            loader.load(&req);
        }
    }

    /// Waits until the boot drivers are loaded (at once when they are, or none were started).
    pub fn join_drivers(&self) {
        if let Some(job) = &self.drivers {
            job.wait();
        }
    }

    /// Joins the boot drivers and records the drivers stage, once: its warnings, and its time
    /// from the start to the end of the last load. A module that does not load is a warning.
    pub fn finish_drivers(&mut self) -> Result<(), BootEnd> {
        let Some(job) = self.drivers.clone() else {
            return Ok(());
        };
        if std::mem::replace(
            &mut *job.recorded.lock().unwrap_or_else(|e| e.into_inner()),
            true,
        ) {
            return Ok(());
        }
        let (report, end) = job.wait();
        // The loads so far (the handoff adds later ones, such as the modloop's drivers).
        if let Some(loader) = self.loader() {
            self.timeline.modules.extend(loader.take_times());
        }
        self.stage(&stages::DRIVERS)
            .since(job.start)
            .until(end)
            .run(|b| Ok(report_drivers(b, &report)))
    }
}

/// The drivers stage's outcome from the job's report: each missing module of `modules=` said
/// once (the loader said each failure as it happened).
fn report_drivers(boot: &Boot<'_>, report: &LoadReport) -> Done<()> {
    for m in &report.not_found {
        if boot.plan.modules.contains(m) {
            log::warn!("module {m} not found");
        }
    }
    match report.failed.len() {
        0 => Done::ok(()),
        n => Done::degraded((), format!("{n} module(s) failed")),
    }
}
