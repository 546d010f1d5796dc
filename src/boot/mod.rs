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
pub mod early;
pub mod packages;
pub mod root;
pub mod runner;
pub mod stages;
pub mod switch_root;
pub mod sysroot;
pub mod timeline;

use crate::cmdline::{self, BootPlan, Mode};
use crate::hw::ModuleLoader;
use crate::sys::{is_exec_recorded, Sys};
use runner::Done;
pub use runner::{panic_text, RescueBackoff, ShellRun};
use std::ffi::OsString;
use std::fmt;
use std::io;
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

/// Why a stage could not finish. Each variant names what was being done.
#[derive(Debug)]
pub enum BootError {
    RootNotFound {
        spec: String,
        waited: Duration,
    },
    RootMount {
        device: String,
        target: PathBuf,
        source: io::Error,
    },
    /// No type was given or recognised and none the kernel knows accepted the device.
    RootFsUnknown {
        device: String,
        target: PathBuf,
        tried: Vec<String>,
        last: Option<io::Error>,
    },
    InitMissing {
        init: PathBuf,
        root: PathBuf,
    },
    InitNotExecutable {
        init: PathBuf,
    },
    SwitchRoot {
        step: &'static str,
        source: io::Error,
    },
    Exec {
        init: PathBuf,
        source: io::Error,
    },
    NoBootMedia {
        devices: Vec<String>,
        waited: Duration,
    },
    Unsupported {
        what: String,
    },
    Panic {
        message: String,
    },
    /// The package installer stopped on an internal error.
    Install {
        source: crate::apk::ApkError,
    },
    /// The apkovl could not be applied.
    Apkovl(crate::overlay::OverlayError),
    /// The modloop was refused or could not be mounted.
    Modloop(crate::hw::modloop::ModloopError),
    /// A device named in the new root's fstab did not show up.
    DeviceNotFound {
        spec: String,
    },
}

impl fmt::Display for BootError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RootNotFound { spec, waited } => {
                write!(
                    f,
                    "root device {spec} not found after {:.1}s",
                    waited.as_secs_f64()
                )
            }
            Self::RootMount {
                device,
                target,
                source,
            } => {
                write!(f, "cannot mount {device} on {}: {source}", target.display())
            }
            Self::RootFsUnknown {
                device,
                target,
                tried,
                last,
            } => {
                write!(
                    f,
                    "cannot mount {device} on {}: its filesystem type is not given (rootfstype=) nor recognised, and ",
                    target.display()
                )?;
                match last {
                    None => write!(f, "/proc/filesystems lists no block filesystem to try"),
                    Some(e) => write!(
                        f,
                        "none of the kernel's filesystems accepted it (tried {}; last error: {e})",
                        tried.join(", ")
                    ),
                }
            }
            Self::InitMissing { init, root } => {
                write!(
                    f,
                    "{} does not exist in the new root {}",
                    init.display(),
                    root.display()
                )
            }
            Self::InitNotExecutable { init } => {
                write!(f, "{} is not an executable file", init.display())
            }
            Self::SwitchRoot { step, source } => {
                write!(f, "switch_root failed to {step}: {source}")
            }
            Self::Exec { init, source } => write!(f, "cannot execute {}: {source}", init.display()),
            Self::NoBootMedia { devices, waited } => write!(
                f,
                "no boot media found after {:.1}s (no boot repository and no apkovl on {})",
                waited.as_secs_f64(),
                if devices.is_empty() {
                    "any device".to_string()
                } else {
                    devices.join(", ")
                }
            ),
            Self::Unsupported { what } => write!(f, "{what}"),
            Self::Panic { message } => write!(f, "internal error: {message}"),
            Self::Install { source } => write!(f, "installing packages failed: {source}"),
            Self::Apkovl(e) => write!(f, "{e}"),
            Self::Modloop(e) => write!(f, "modloop refused: {e}"),
            Self::DeviceNotFound { spec } => write!(f, "device {spec} not found"),
        }
    }
}

impl std::error::Error for BootError {}

impl BootError {
    /// The end of the stage's console line (` failed: …`): the title already says what was
    /// being done.
    pub fn console_text(&self) -> String {
        match self {
            Self::Install { source } => source.to_string(),
            other => other.to_string(),
        }
    }
}

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
    /// `apkovl=DEVICE:…` mounted this; unmounted after the packages are installed.
    pub apkovl_mount: Option<PathBuf>,
    /// What the stages found, for reports.
    pub record: Record,
    /// The kernel log's rate limit, lifted for the boot.
    pub kmsg_limit: KmsgLimit,
    /// Paces the rescue loop.
    pub backoff: RescueBackoff,
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
            apkovl_mount: None,
            record: Record::default(),
            kmsg_limit: KmsgLimit::default(),
            backoff: RescueBackoff::default(),
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

    /// Writes the timeline where the new root will see it and prints the summary.
    pub fn finish_timeline(&mut self) {
        self.timeline.handoff = Some(self.sys.now());
        let path = self.sys.path(Path::new(TIMELINE_PATH));
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Err(e) = std::fs::write(&path, self.timeline.to_json()) {
            log::warn!("cannot write {TIMELINE_PATH}: {e}");
        }
        // The kernel log always has it; the console only without `quiet`.
        log::info!("{}", self.timeline.summary());
    }

    /// The last stage: switch_root into `/sysroot` and exec init. Failures before the point of no
    /// return go through the failure policy and are retried.
    pub fn handoff(&mut self) -> BootEnd {
        let mut checked = self
            .stage(&stages::HANDOFF)
            .run(|b| b.check_init().map(Done::ok));
        loop {
            if let Err(end) = checked {
                return end;
            }
            self.finish_timeline();
            // Back to the kernel's default for the new system's own writers.
            self.kmsg_limit.restore(self.sys);
            let init = self.plan.init.clone();
            let args = self.plan.init_args.clone();
            let console_dev = self.plan.switch_root_console.clone();
            let h = switch_root::Handoff {
                newroot: Path::new(SYSROOT),
                mounts: &self.mounts,
                init: &init,
                init_args: &args,
                console: console_dev.as_deref(),
                env: self.env.clone(),
                check_init: self.record.unverified.is_empty(),
            };
            let err = switch_root::switch_root(self.sys, &h);
            if let BootError::Exec { source, .. } = &err {
                if is_exec_recorded(source) {
                    return BootEnd::HandedOff;
                }
            }
            self.kmsg_limit.lift_again(self.sys);
            let reason = err.to_string();
            log::error!("{reason}");
            checked = self.after_failure(&stages::HANDOFF, &reason);
        }
    }
}

/// `printk_devkmsg` under `/proc/sys`.
const PRINTK_DEVKMSG: &str = "kernel/printk_devkmsg";

/// The kernel's rate limit on `/dev/kmsg` writers (`printk.devkmsg=ratelimit`, the default, lets
/// 10 lines through per 5 s and drops the rest): lifted for the boot so the kernel log keeps
/// every line, put back before the handoff so the new system gets the kernel's default.
#[derive(Debug, Default)]
pub struct KmsgLimit {
    /// The value to restore; `None` when nothing was changed.
    original: Option<String>,
}

impl KmsgLimit {
    /// Lifts the limit when it is `ratelimit`. `on` needs nothing; `off` and a value locked by
    /// `printk.devkmsg=` on the command line (the write fails) are the user's choice.
    pub fn lift(sys: &dyn Sys) -> Self {
        let path = sys.path(&Path::new("/proc/sys").join(PRINTK_DEVKMSG));
        let Ok(text) = std::fs::read_to_string(path) else {
            return Self::default();
        };
        let value = text.trim();
        if value != "ratelimit" {
            return Self::default();
        }
        match sys.write_sysctl(PRINTK_DEVKMSG, "on") {
            Ok(()) => Self {
                original: Some(value.to_string()),
            },
            Err(e) => {
                log::debug!("kernel log rate limit kept ({e})");
                Self::default()
            }
        }
    }

    /// Puts the original value back.
    pub fn restore(&self, sys: &dyn Sys) {
        if let Some(v) = &self.original {
            let _ = sys.write_sysctl(PRINTK_DEVKMSG, v);
        }
    }

    /// Lifts it again after a handoff that failed (the boot goes on logging).
    pub fn lift_again(&self, sys: &dyn Sys) {
        if self.original.is_some() {
            let _ = sys.write_sysctl(PRINTK_DEVKMSG, "on");
        }
    }
}

impl Boot<'_> {
    /// The handoff's check of `init=`. A missing init is not held against a dry run whose
    /// package scripts did not run: busybox's post-install creates `/sbin/init`.
    fn check_init(&mut self) -> Result<(), BootError> {
        match switch_root::check_init(self.sys, Path::new(SYSROOT), &self.plan.init) {
            Err(BootError::InitMissing { init, .. }) if !self.record.scripts_not_run.is_empty() => {
                let note = format!(
                    "{}: created by a package script, not verified ({} script(s) did not run, e.g. {})",
                    init.display(),
                    self.record.scripts_not_run.len(),
                    self.record.scripts_not_run[0]
                );
                log::warn!("{note}");
                self.record.unverified.push(note);
                Ok(())
            }
            other => other,
        }
    }
}

/// The kernel's `console_loglevel` (first field of `/proc/sys/kernel/printk`).
fn console_loglevel(sys: &dyn Sys) -> u8 {
    std::fs::read_to_string(sys.path(Path::new("/proc/sys/kernel/printk")))
        .ok()
        .and_then(|t| console::parse_console_loglevel(&t))
        .unwrap_or(console::DEFAULT_CONSOLE_LOGLEVEL)
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
    let end = match stages_until_handoff(&mut boot, init_start) {
        Err(end) => end,
        Ok(()) => boot.handoff(),
    };
    Finished {
        end,
        plan: boot.plan,
        timeline: boot.timeline,
        record: boot.record,
    }
}

/// Every stage before the handoff, in order.
fn stages_until_handoff(boot: &mut Boot<'_>, init_start: Duration) -> Result<(), BootEnd> {
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
    let loader = boot.stage(&stages::DRIVERS).run(root::load_boot_drivers)?;
    boot.loader = loader.map(Arc::new);
    match boot.plan.mode.clone() {
        Mode::Root(spec) => root::mount_root(boot, &spec),
        Mode::Diskless(d) => {
            boot.record.decisions = Some(diskless::run(boot, &d)?);
            Ok(())
        }
    }
}

/// The early stage: the mounts every later stage relies on, the kernel log, the command line.
fn early_stage(boot: &mut Boot<'_>) -> Result<Done<early::Early>, BootError> {
    let sys = boot.sys;
    let early = early::setup(sys);
    boot.kmsg_limit = KmsgLimit::lift(sys);
    if let Ok(kmsg) = std::fs::OpenOptions::new()
        .write(true)
        .open(sys.path(Path::new("/dev/kmsg")))
    {
        console::attach_kmsg(kmsg, console_loglevel(sys));
    }
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

/// Reports Rust panics on the console and in the kernel log without ever waiting for the
/// logger (a panic inside the logger holds its lock).
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("panic");
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        // One line: the kernel log keeps a record per write.
        let message = message.replace('\n', " ");
        console::report_panic(&format!("ramboot panicked: {message}{at}"));
    }));
}

/// The entry point when running as PID 1. Never returns; exits only when `panic=` asks.
pub fn pid1_main() -> ! {
    console::init(Box::new(std::io::stdout()), false, false);
    install_panic_hook();
    let sys = crate::sys::RealSys;
    let mut backoff = RescueBackoff::default();
    loop {
        let end = std::panic::catch_unwind(|| run(&sys, None)).unwrap_or_else(|p| BootEnd::Idle {
            reason: format!("internal error: {}", panic_text(&p)),
        });
        match end {
            BootEnd::KernelPanic { .. } => std::process::exit(1),
            BootEnd::HandedOff => unreachable_handoff(),
            BootEnd::Idle { reason } | BootEnd::GaveUp { reason } => {
                console::announce(&format!("ramboot: boot stopped: {reason}"));
                if std::path::Path::new(RESCUE_SHELL).exists() {
                    let boot = Boot::new(&sys, cmdline::plan(&cmdline::parse("")), sys.now());
                    let run = boot.rescue_shell("Launching initramfs emergency recovery shell.");
                    backoff.pace(&sys, &run);
                } else {
                    sys.idle_forever();
                }
            }
        }
    }
}

fn unreachable_handoff() -> ! {
    // RealSys::exec only returns on failure, which the boot reports as an error instead.
    loop {
        rustix::event::pause();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::RecordingSys;

    fn boot_with<'a>(sys: &'a RecordingSys, cmdline: &str) -> Boot<'a> {
        let mut b = Boot::new(sys, cmdline::plan(&cmdline::parse(cmdline)), Duration::ZERO);
        b.rescue_budget = Some(1);
        b
    }

    fn proc_sys(dir: &Path, devkmsg: &str) {
        std::fs::create_dir_all(dir.join("proc/sys/kernel")).unwrap();
        std::fs::write(dir.join("proc/sys/kernel/printk_devkmsg"), devkmsg).unwrap();
    }

    fn executable_init(dir: &Path) {
        use std::os::unix::fs::PermissionsExt;
        let init = dir.join("sysroot/sbin/init");
        std::fs::create_dir_all(init.parent().unwrap()).unwrap();
        std::fs::write(&init, b"#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&init, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// Issue 8 (9): the kernel's rate limit on /dev/kmsg writers is lifted for the boot and put
    /// back before switch_root hands over to the new system.
    #[test]
    fn the_kmsg_rate_limit_is_lifted_for_the_boot_and_restored_at_handoff() {
        let dir = tempfile::tempdir().unwrap();
        proc_sys(dir.path(), "ratelimit\n");
        executable_init(dir.path());
        let sys = RecordingSys::new(dir.path());
        let limit = KmsgLimit::lift(&sys);
        let devkmsg = || std::fs::read_to_string(dir.path().join("proc/sys/kernel/printk_devkmsg"));
        assert_eq!(devkmsg().unwrap(), "on\n");
        let mut b = boot_with(&sys, "");
        b.kmsg_limit = limit;
        b.mounts = vec![PathBuf::from("/proc")];
        assert!(matches!(b.handoff(), BootEnd::HandedOff));
        let t = sys.trace();
        assert_eq!(t[0], "sysctl -w kernel.printk_devkmsg=on");
        let restored = t
            .iter()
            .position(|l| l == "sysctl -w kernel.printk_devkmsg=ratelimit")
            .unwrap_or_else(|| panic!("{t:#?}"));
        let moved = t
            .iter()
            .position(|l| l.starts_with("mount -o move"))
            .unwrap();
        assert!(restored < moved, "{t:#?}");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("sysroot/proc/sys/kernel/printk_devkmsg"))
                .unwrap(),
            "ratelimit\n",
            "/proc moved into the new root with the kernel's default back"
        );
    }

    /// `on` needs nothing; `off` is the user's choice; a value locked by `printk.devkmsg=`
    /// (the write fails) stays as it is.
    #[test]
    fn the_kmsg_rate_limit_is_left_alone_unless_it_is_the_default() {
        for value in ["on\n", "off\n"] {
            let dir = tempfile::tempdir().unwrap();
            proc_sys(dir.path(), value);
            let sys = RecordingSys::new(dir.path());
            KmsgLimit::lift(&sys).restore(&sys);
            assert!(sys.trace().is_empty(), "{value}: {:?}", sys.trace());
        }
        let dir = tempfile::tempdir().unwrap();
        proc_sys(dir.path(), "ratelimit\n");
        let sys = RecordingSys::new(dir.path());
        sys.fail_on("printk_devkmsg", 22);
        KmsgLimit::lift(&sys).restore(&sys);
        assert_eq!(sys.trace(), ["sysctl -w kernel.printk_devkmsg=on"]);
    }
}
