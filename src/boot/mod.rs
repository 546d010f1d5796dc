//! PID 1: the boot as a sequence of timed stages, each with one failure policy.
//!
//! The stages run against a [`Sys`]: the real kernel at boot, the recording double in tests and
//! in `ramboot plan`. Each is declared in [`stages`] (name, console line, policy) and run by
//! [`runner`]. PID 1 never exits on its own: a failed stage prints one line saying why, then
//! opens the rescue shell and retries the stage when the shell exits, or warns and goes on with
//! the stage's fallback; without a shell it waits idle. Only `panic=` makes PID 1 exit so the
//! kernel panics, as Alpine does. A Rust panic takes the same road.

pub mod apkovl;
pub mod console;
pub mod diskless;
pub mod drivers;
pub mod early;
mod error;
mod handoff;
mod kmsg;
pub mod lkg;
pub mod mode;
pub mod packages;
mod pid1;
mod rescue;
pub mod root;
pub mod runner;
pub mod stages;
pub mod switch_root;
pub mod sysroot;
pub mod timeline;

pub use error::BootError;
pub use kmsg::KmsgLimit;
pub use pid1::{install_panic_hook, pid1_main};

use crate::cmdline::{self, BootPlan, Mode};
use crate::hw::ModuleLoader;
use crate::sys::Sys;
pub use rescue::{RescueBackoff, ShellRun};
pub use runner::panic_text;
use runner::Done;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use timeline::Timeline;

/// Where the new root is assembled.
pub const SYSROOT: &str = "/sysroot";
/// The rescue shell inside the initramfs (`mkinitfs --busybox` puts one there).
pub const RESCUE_SHELL: &str = "/bin/sh";
/// Where the timeline goes; `/run` is moved into the new root, so it shows up there too.
pub const TIMELINE_PATH: &str = "/run/ramboot/timeline.json";

/// How a boot run ended, for the callers that can see an end (tests, `ramboot plan`).
#[derive(Debug)]
pub enum BootEnd {
    /// init was exec'd (recorded by the double).
    HandedOff,
    /// PID 1 exited so that the kernel panics (`panic=`).
    KernelPanic { reason: String },
    /// No rescue shell: PID 1 waits idle.
    Idle { reason: String },
    /// The rescue budget ran out (tests and dry runs only).
    GaveUp { reason: String },
}

/// What a boot run found and decided beyond its trace, kept for `ramboot plan` and tests.
#[derive(Debug, Default)]
pub struct Record {
    /// The device search of the media stage (diskless) or of the root search (`root=`).
    pub discovery: Option<crate::hw::Discovery>,
    /// The diskless branch's decisions (set when that branch finished).
    pub decisions: Option<diskless::Decisions>,
    /// Packages installed, `(name, version)` in install order.
    pub installed: Vec<(String, String)>,
    /// Packages skipped, refused or installed with errors: `(name, why)`.
    pub package_problems: Vec<(String, String)>,
    /// Why repositories were not used (a refused index, a missing one ...): often the cause of
    /// a skipped package.
    pub unused_repositories: Vec<String>,
    /// `/usr` mounted from the new root's fstab (`root=` branch).
    pub usr: Option<String>,
    /// Package scripts that did not run (a dry run: unprivileged, or a foreign machine).
    pub scripts_not_run: Vec<String>,
    /// Checks passed over because what they check would have been made by a script that did
    /// not run: each says what and why.
    pub unverified: Vec<String>,
}

/// One boot: the plan, the system, what has been mounted and the timeline.
pub struct Boot<'a> {
    pub sys: &'a dyn Sys,
    pub plan: BootPlan,
    pub timeline: Timeline,
    /// Top-level mount points to carry into the new root.
    pub mounts: Vec<PathBuf>,
    /// How many times the rescue shell may run; `None` at boot (forever), a number in tests.
    pub rescue_budget: Option<usize>,
    /// Environment for the new init.
    pub env: Vec<(OsString, OsString)>,
    /// The module loader, made by the drivers stage (absent on kernels without modules). Owned
    /// by the boot and lent to every stage through [`Boot::loader`]; shared with the modloop's
    /// thread while the root is built, and reloaded once that thread is joined.
    loader: Option<Arc<ModuleLoader<'a>>>,
    /// The boot drivers loading beside the device search, until the drivers stage is joined.
    drivers: Option<Arc<drivers::DriversJob>>,
    /// `apkovl=DEVICE:…` mounted this; unmounted after the packages are installed.
    pub apkovl_mount: Option<PathBuf>,
    /// What the stages found, for reports.
    pub record: Record,
    /// The kernel log's rate limit, lifted for the boot.
    pub kmsg_limit: KmsgLimit,
    /// Paces the rescue loop.
    pub backoff: RescueBackoff,
    /// The cached root to write once the boot is handed off (a fresh install that is kept).
    pub root_cache_write: Option<diskless::PendingWrite>,
}

impl<'a> Boot<'a> {
    pub fn new(sys: &'a dyn Sys, plan: BootPlan, init_start: Duration) -> Self {
        Self {
            sys,
            plan,
            timeline: Timeline::new(init_start),
            mounts: Vec::new(),
            rescue_budget: None,
            env: vec![("HOME".into(), "/".into()), ("TERM".into(), "linux".into())],
            loader: None,
            drivers: None,
            apkovl_mount: None,
            record: Record::default(),
            kmsg_limit: KmsgLimit::default(),
            backoff: RescueBackoff::default(),
            root_cache_write: None,
        }
    }

    /// The module loader, lent to a stage.
    pub fn loader(&self) -> Option<&ModuleLoader<'a>> {
        self.loader.as_deref()
    }

    /// A handle on the loader for work on another thread (the modloop's).
    pub fn share_loader(&self) -> Option<Arc<ModuleLoader<'a>>> {
        self.loader.clone()
    }

    /// The loader to change (re-read its indexes), when no other thread holds it.
    pub fn loader_mut(&mut self) -> Option<&mut ModuleLoader<'a>> {
        self.loader.as_mut().and_then(Arc::get_mut)
    }
}

/// Mirrors the log to `/dev/kmsg` when it can be opened.
pub fn attach_kernel_log(sys: &dyn Sys) {
    if let Ok(kmsg) = std::fs::OpenOptions::new()
        .write(true)
        .open(sys.path(Path::new("/dev/kmsg")))
    {
        console::attach_kmsg(kmsg, kmsg::console_loglevel(sys));
    }
}

/// Reads and plans the kernel command line.
pub fn read_plan(sys: &dyn Sys) -> BootPlan {
    let bytes = std::fs::read(sys.path(Path::new("/proc/cmdline"))).unwrap_or_default();
    cmdline::plan(&cmdline::parse_bytes(&bytes))
}

/// A finished boot run with what it decided, for callers that can see an end.
pub struct Finished {
    pub end: BootEnd,
    pub plan: BootPlan,
    pub timeline: Timeline,
    pub record: Record,
}

/// The whole boot, from the first instruction of PID 1 to the exec of the new init.
pub fn run(sys: &dyn Sys, rescue_budget: Option<usize>) -> BootEnd {
    run_recorded(sys, rescue_budget).end
}

/// [`run`], keeping the plan, the timeline and the [`Record`] (`ramboot plan`, tests).
pub fn run_recorded(sys: &dyn Sys, rescue_budget: Option<usize>) -> Finished {
    let init_start = sys.now();
    // The command line is read by the early stage, once /proc is there.
    let mut boot = Boot::new(sys, cmdline::plan(&cmdline::parse("")), init_start);
    boot.rescue_budget = rescue_budget;
    // The boot drivers' thread lives in this scope; every way out of the boot joins it.
    let end =
        std::thread::scope(
            |scope| match stages_until_handoff(&mut boot, init_start, scope) {
                Err(end) => end,
                Ok(()) => boot.handoff(),
            },
        );
    Finished {
        end,
        plan: boot.plan,
        timeline: boot.timeline,
        record: boot.record,
    }
}

/// Every stage before the handoff, in order. The drivers stage runs on a thread of `scope`
/// beside the device search and is joined before what needs its modules.
fn stages_until_handoff<'a, 's>(
    boot: &mut Boot<'a>,
    init_start: Duration,
    scope: &'s std::thread::Scope<'s, '_>,
) -> Result<(), BootEnd>
where
    'a: 's,
{
    let early = boot
        .stage(&stages::EARLY)
        .since(init_start)
        .run(early_stage)?;
    // Like Alpine's "Alpine Init <ver>": always in the kernel log, on the console unless quiet.
    log::info!(
        "ramboot {} (Alpine-compatible init)",
        env!("CARGO_PKG_VERSION")
    );
    for (target, e) in &early.failures {
        log::warn!("cannot mount {target}: {e}");
    }
    for w in boot.plan.warnings.clone() {
        log::warn!("{w}");
    }
    boot.start_drivers(scope)?;
    match boot.plan.mode.clone() {
        Mode::Root(spec) => root::mount_root(boot, &spec)?,
        Mode::Diskless(d) => boot.record.decisions = Some(diskless::run(boot, &d)?),
    }
    boot.finish_drivers()
}

/// The early stage: the mounts every later stage relies on, the kernel log, the command line.
fn early_stage(boot: &mut Boot<'_>) -> Result<Done<early::Early>, BootError> {
    let sys = boot.sys;
    let early = early::setup(sys);
    boot.kmsg_limit = KmsgLimit::lift(sys);
    attach_kernel_log(sys);
    boot.plan = read_plan(sys);
    console::configure(boot.plan.quiet, boot.plan.debug);
    boot.mounts = early.mounts.clone();
    if early.failures.is_empty() {
        return Ok(Done::ok(early));
    }
    let note = early
        .failures
        .iter()
        .map(|(t, e)| format!("{t}: {e}"))
        .collect::<Vec<_>>()
        .join("; ");
    Ok(Done::degraded(early, note))
}
