//! The supervisor as a state machine: events in, effects through [`Sys`] out.
//!
//! Nothing here waits or sleeps. The event loop ([`super::event_loop`]) turns signals, reaped
//! children and timeouts into [`Event`]s and asks [`Supervisor::next_deadline`] how long it may
//! sleep; the time is always [`Sys::now`], so tests drive the whole life of a system on the
//! recording double with a fake clock.
//!
//! The order is busybox init's: sysinit entries one after another, each waited for; then wait
//! entries the same way; then once entries (not waited for); then respawn and askfirst entries
//! kept running. Where busybox restarts a dying process after a fixed second, this restarts it
//! at once when it ran for a while and with an exponential backoff when it keeps failing
//! ([`Backoff`]), so a broken getty costs nothing.
//!
//! Shutdown (SIGUSR1 halt, SIGUSR2 poweroff, SIGTERM reboot; SIGQUIT restart): the shutdown
//! entries one after another, each waited for; `sync`; SIGTERM (and SIGCONT, so stopped
//! processes see it) to every process; a grace period that ends early when no child is left;
//! SIGKILL; then, as PID 1, `sync`, every filesystem unmounted in reverse mount order (remounted
//! read-only when busy), `/` read-only, `sync`, `reboot(2)`. A restart execs the restart entry
//! instead of rebooting.

use super::control::{self, Server, Status, Verdict};
use super::inittab::{Action, BadLine, Entry, Inittab};
use super::services::{default_jitter, Control, Jitter, ServiceConfig, Services};
use super::watchdog::{Feeder, WatchdogConfig};
use crate::decimal::Decimal;
use ramboot_sys::{is_exec_recorded, ExitStatus, MountFlags, RebootKind, Signal, Sys};
use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Restart delays for respawn entries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The delay after the second failure in a row (the first restart is immediate).
    pub first: Duration,
    /// The delay stops doubling here.
    pub max: Duration,
    /// A process that ran at least this long counts as healthy: its failure count restarts.
    pub stable: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            first: Duration::from_secs(1),
            max: Duration::from_secs(60),
            stable: Duration::from_secs(10),
        }
    }
}

impl Backoff {
    /// The delay before restart number `failures` (1 = the first exit).
    pub fn delay(&self, failures: u32) -> Duration {
        if failures <= 1 {
            return Duration::ZERO;
        }
        let doublings = (failures - 2).min(31);
        self.first.saturating_mul(1 << doublings).min(self.max)
    }
}

/// What the supervisor is set up with.
#[derive(Clone, Debug)]
pub struct Config {
    /// The table, as PID 1 sees it.
    pub inittab: PathBuf,
    /// The whole environment of every process started.
    pub env: Vec<(OsString, OsString)>,
    pub backoff: Backoff,
    /// From SIGTERM to SIGKILL at shutdown.
    pub grace: Duration,
    /// After SIGKILL, how long to wait for the last children to be reaped.
    pub kill_wait: Duration,
    /// We own the machine: at the end unmount everything and `reboot(2)` (or exec the restart
    /// entry). False for a supervisor under test or in a container: it only reports the end.
    pub pid1: bool,
    /// Supervised service directories.
    pub services: ServiceConfig,
    /// `ramboot_watchdog`: the hardware watchdog to feed until the end.
    pub watchdog: Option<WatchdogConfig>,
    /// The control socket of `ramboot ctl` ([`super::control`]), as PID 1 sees it; `None`:
    /// no control socket.
    pub control: Option<PathBuf>,
    /// Run at power-down once every process is gone, before the unmounts: what must be kept
    /// for the next boot (system mode's random seed and clock). Returns one line per failure.
    pub save_state: Option<fn(&dyn Sys) -> Vec<String>>,
    /// Run once, when the boot entries are done and every wanted service is ready: the boot
    /// reached its goal (the last-known-good record is cleared). Returns lines to log.
    pub on_ready: Option<fn(&dyn Sys) -> Vec<String>>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            inittab: PathBuf::from("/etc/inittab"),
            env: default_env(),
            backoff: Backoff::default(),
            grace: Duration::from_secs(5),
            kill_wait: Duration::from_secs(2),
            pid1: true,
            services: ServiceConfig::default(),
            watchdog: None,
            control: Some(PathBuf::from(control::DEFAULT_PATH)),
            save_state: None,
            on_ready: None,
        }
    }
}

/// The environment busybox init gives its children.
pub fn default_env() -> Vec<(OsString, OsString)> {
    [
        ("HOME", "/"),
        ("PATH", "/sbin:/usr/sbin:/bin:/usr/bin"),
        ("SHELL", "/bin/sh"),
        ("USER", "root"),
        ("TERM", "linux"),
    ]
    .into_iter()
    .map(|(k, v)| (k.into(), v.into()))
    .collect()
}

/// What a signal to PID 1 asks for (busybox init's protocol).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    Halt,
    PowerOff,
    Reboot,
    CtrlAltDel,
    Reload,
    Restart,
}

impl Request {
    pub fn name(self) -> &'static str {
        match self {
            Request::Halt => "halt",
            Request::PowerOff => "poweroff",
            Request::Reboot => "reboot",
            Request::CtrlAltDel => "ctrlaltdel",
            Request::Reload => "reload",
            Request::Restart => "restart",
        }
    }

    pub fn from_signal(signal: Signal) -> Option<Request> {
        Some(match signal {
            Signal::USR1 => Request::Halt,
            Signal::USR2 => Request::PowerOff,
            Signal::TERM => Request::Reboot,
            Signal::INT => Request::CtrlAltDel,
            Signal::HUP => Request::Reload,
            Signal::QUIT => Request::Restart,
            _ => return None,
        })
    }
}

/// What drives the supervisor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A child (or an adopted orphan) ended and was reaped.
    Exited {
        pid: u32,
        status: ExitStatus,
    },
    /// No child is left at all.
    NoChildren,
    Request(Request),
    /// Time passed: due timers fire.
    Tick,
    /// A service's output or readiness pipe can be read.
    Io,
}

/// How the supervision ended (what a non-PID-1 supervisor reports; PID 1 acts on it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Reboot(RebootKind),
    /// The restart entry was (or, under test, would be) exec'd.
    Exec(String),
    /// `reboot(2)` or exec failed: PID 1 idles.
    Failed,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Target {
    Reboot(RebootKind),
    Restart(Entry),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    Actions,
    /// Services stopping in reverse dependency order.
    Services,
    Term {
        until: Duration,
    },
    Kill {
        until: Duration,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Phase {
    Boot,
    Running,
    Stopping(Target, Stop),
    Done(Outcome),
}

/// A respawn or askfirst entry and its process.
#[derive(Clone, Debug)]
struct Keeper {
    entry: Entry,
    pid: Option<u32>,
    started: Duration,
    failures: u32,
    next_start: Option<Duration>,
    restarts: u32,
    last_exit: Option<ExitStatus>,
}

/// Lines kept for `ramboot ctl` and tests; older ones are dropped (they went to the log too).
const JOURNAL_LINES: usize = 128;

/// What the supervisor said: logged (console and kernel log on PID 1), the last lines kept.
#[derive(Default)]
pub struct Journal {
    lines: VecDeque<String>,
}

impl Journal {
    pub fn say(&mut self, level: log::Level, line: String) {
        log::log!(level, "{line}");
        if self.lines.len() == JOURNAL_LINES {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
    }

    pub fn info(&mut self, line: String) {
        self.say(log::Level::Info, line);
    }

    pub fn warn(&mut self, line: String) {
        self.say(log::Level::Warn, line);
    }

    pub fn error(&mut self, line: String) {
        self.say(log::Level::Error, line);
    }
}

pub struct Supervisor {
    config: Config,
    table: Inittab,
    phase: Phase,
    /// Entries to run one after another, each waited for, and the one running.
    queue: VecDeque<Entry>,
    foreground: Option<(u32, Entry)>,
    keepers: Vec<Keeper>,
    /// Started and not waited for (once entries, dropped respawners).
    others: Vec<(u32, Entry)>,
    services: Services,
    journal: Journal,
    watchdog: Option<Feeder>,
    control: Option<Server>,
    /// [`Config::on_ready`] has run.
    ready_reported: bool,
}

impl Supervisor {
    pub fn new(config: Config) -> Supervisor {
        Supervisor::with_jitter(config, default_jitter())
    }

    /// A supervisor whose restart jitter comes from `jitter` (tests make it deterministic).
    pub fn with_jitter(config: Config, jitter: Jitter) -> Supervisor {
        let services = Services::new(
            config.services.clone(),
            config.backoff.clone(),
            (config.grace, config.kill_wait),
            jitter,
        );
        Supervisor {
            config,
            services,
            table: Inittab::default(),
            phase: Phase::Boot,
            queue: VecDeque::new(),
            foreground: None,
            keepers: Vec::new(),
            others: Vec::new(),
            journal: Journal::default(),
            watchdog: None,
            control: None,
            ready_reported: false,
        }
    }

    /// Closes the control socket and removes its name: a bound socket holds its filesystem
    /// (`/run`) busy, and the unmount at the end must not find it so.
    fn close_control(&mut self, sys: &dyn Sys) {
        if self.control.take().is_some() {
            if let Some(path) = &self.config.control {
                let _ = std::fs::remove_file(sys.path(path));
            }
        }
    }

    /// Opens the control socket of [`Config::control`]; without it PID 1 runs on, saying why.
    pub fn open_control(&mut self, sys: &dyn Sys) {
        let Some(path) = self.config.control.clone() else {
            return;
        };
        match sys.listen_unix(&path) {
            Ok(fd) => self.control = Some(Server::new(fd)),
            Err(e) => self.say(
                log::Level::Error,
                format!(
                    "cannot listen on {}: {e}; `ramboot ctl` will not reach PID 1",
                    path.display()
                ),
            ),
        }
    }

    /// Reads the table and starts the boot sequence.
    pub fn start(&mut self, sys: &dyn Sys) {
        if let (None, Some(config)) = (&self.watchdog, &self.config.watchdog) {
            self.watchdog = Feeder::open(sys, config, &mut self.journal);
        }
        self.table = self.load(sys);
        self.phase = Phase::Boot;
        self.queue = self
            .table
            .with(Action::Sysinit)
            .chain(self.table.with(Action::Wait))
            .cloned()
            .collect();
        self.run_queue(sys);
    }

    pub fn handle(&mut self, sys: &dyn Sys, event: Event) {
        match event {
            Event::Exited { pid, status } => self.exited(sys, pid, status),
            Event::NoChildren => self.no_children(sys),
            Event::Request(r) => self.request(sys, r),
            Event::Tick => {
                self.tick(sys);
                self.serve(sys);
            }
            Event::Io => {
                self.services
                    .read_io(sys, &self.config.env, &mut self.journal);
                self.serve(sys);
            }
        }
        if matches!(self.phase, Phase::Stopping(_, Stop::Services)) && self.services.all_stopped() {
            self.send_term(sys);
        }
        self.report_ready(sys);
    }

    /// [`Config::on_ready`], the first time everything wanted is up and ready.
    fn report_ready(&mut self, sys: &dyn Sys) {
        if self.ready_reported || self.phase != Phase::Running || !self.services.all_ready() {
            return;
        }
        self.ready_reported = true;
        if let Some(on_ready) = self.config.on_ready {
            for line in on_ready(sys) {
                self.say(log::Level::Info, line);
            }
        }
    }

    /// The descriptors the event loop watches for [`Event::Io`].
    pub fn readable(&self) -> Vec<rustix::fd::BorrowedFd<'_>> {
        let mut fds = self.services.readable();
        fds.extend(self.control.iter().flat_map(Server::readable));
        fds
    }

    /// When the next timer is due, on [`Sys::now`]'s clock.
    pub fn next_deadline(&self) -> Option<Duration> {
        let stop = match &self.phase {
            Phase::Stopping(_, Stop::Term { until } | Stop::Kill { until }) => Some(*until),
            _ => None,
        };
        self.keepers
            .iter()
            .filter_map(|k| k.next_start)
            .chain(stop)
            .chain(self.services.next_deadline())
            .chain(self.watchdog.as_ref().map(Feeder::deadline))
            .chain(self.control.as_ref().and_then(Server::next_deadline))
            .min()
    }

    /// How it ended, once it has.
    pub fn outcome(&self) -> Option<&Outcome> {
        match &self.phase {
            Phase::Done(o) => Some(o),
            _ => None,
        }
    }

    /// The last lines the supervisor logged, oldest first.
    pub fn journal(&self) -> impl Iterator<Item = &str> {
        self.journal.lines.iter().map(String::as_str)
    }

    fn say(&mut self, level: log::Level, line: String) {
        self.journal.say(level, line);
    }

    fn load(&mut self, sys: &dyn Sys) -> Inittab {
        let path = self.config.inittab.clone();
        match std::fs::read_to_string(sys.path(&path)) {
            Ok(text) => {
                let (table, bad) = Inittab::parse(&text);
                for BadLine { line, reason } in bad {
                    self.say(
                        log::Level::Warn,
                        format!("{}: line {line} skipped: {reason}", path.display()),
                    );
                }
                table
            }
            Err(e) => {
                let why = if e.kind() == std::io::ErrorKind::NotFound {
                    "not found".to_string()
                } else {
                    e.to_string()
                };
                self.say(
                    log::Level::Info,
                    format!("{}: {why}; using busybox's built-in table", path.display()),
                );
                Inittab::busybox_default()
            }
        }
    }

    fn spawn(&mut self, sys: &dyn Sys, entry: &Entry) -> Option<u32> {
        match sys.spawn(&entry.spawn(&self.config.env)) {
            Ok(pid) => Some(pid),
            Err(e) => {
                self.say(log::Level::Error, format!("cannot start {entry}: {e}"));
                None
            }
        }
    }

    /// Starts the next waited-for entry unless one runs; when none is left, moves on.
    fn run_queue(&mut self, sys: &dyn Sys) {
        while self.foreground.is_none() {
            let Some(entry) = self.queue.pop_front() else {
                self.queue_done(sys);
                return;
            };
            if let Some(pid) = self.spawn(sys, &entry) {
                self.foreground = Some((pid, entry));
            }
        }
    }

    fn queue_done(&mut self, sys: &dyn Sys) {
        match self.phase {
            Phase::Boot => {
                let once: Vec<Entry> = self.table.with(Action::Once).cloned().collect();
                for entry in once {
                    if let Some(pid) = self.spawn(sys, &entry) {
                        self.others.push((pid, entry));
                    }
                }
                self.phase = Phase::Running;
                self.adopt_respawners(sys);
                self.services
                    .start(sys, &self.config.env, &mut self.journal);
            }
            Phase::Stopping(_, Stop::Actions) => {
                self.set_stop(Stop::Services);
                self.services.begin_stop(sys, &mut self.journal);
            }
            _ => {}
        }
    }

    /// Makes a keeper for every respawn/askfirst entry that has none and starts it.
    fn adopt_respawners(&mut self, sys: &dyn Sys) {
        let now = sys.now();
        let entries: Vec<Entry> = self
            .table
            .entries
            .iter()
            .filter(|e| e.action.respawns())
            .cloned()
            .collect();
        for entry in entries {
            let same = |k: &Keeper| k.entry.process == entry.process && k.entry.tty == entry.tty;
            match self.keepers.iter_mut().find(|k| same(k)) {
                Some(k) => k.entry = entry,
                None => self.keepers.push(Keeper {
                    entry,
                    pid: None,
                    started: now,
                    failures: 0,
                    next_start: Some(now),
                    restarts: 0,
                    last_exit: None,
                }),
            }
        }
        self.tick(sys);
    }

    fn exited(&mut self, sys: &dyn Sys, pid: u32, status: ExitStatus) {
        if let Some((_, entry)) = self.foreground.take_if(|(p, _)| *p == pid) {
            if !status.success() {
                self.say(log::Level::Warn, format!("{entry} ended: {status}"));
            }
            self.run_queue(sys);
        } else if let Some(i) = self.keepers.iter().position(|k| k.pid == Some(pid)) {
            self.keepers[i].pid = None;
            self.keepers[i].last_exit = Some(status);
            self.schedule_respawn(sys, i, status);
            self.tick(sys);
        } else if self
            .services
            .exited(sys, pid, status, &self.config.env, &mut self.journal)
        {
        } else if let Some(i) = self.others.iter().position(|(p, _)| *p == pid) {
            let (_, entry) = self.others.remove(i);
            self.say(log::Level::Info, format!("{entry} ended: {status}"));
        } else {
            log::debug!("reaped orphan {pid}: {status}");
        }
    }

    fn schedule_respawn(&mut self, sys: &dyn Sys, i: usize, status: ExitStatus) {
        if self.phase != Phase::Running {
            return;
        }
        let now = sys.now();
        let backoff = self.config.backoff.clone();
        let k = &mut self.keepers[i];
        if now.saturating_sub(k.started) >= backoff.stable {
            k.failures = 0;
        }
        k.failures += 1;
        let delay = backoff.delay(k.failures);
        k.next_start = Some(now + delay);
        let (entry, failures) = (k.entry.clone(), k.failures);
        let line = if delay.is_zero() {
            format!("{entry} ended: {status}; restarting it")
        } else {
            format!(
                "{entry} ended: {status}; {failures} quick exits in a row, restarting in {}s \
                 (the delay doubles up to {}s)",
                Decimal::secs(delay),
                Decimal::secs(backoff.max)
            )
        };
        self.say(log::Level::Warn, line);
    }

    fn tick(&mut self, sys: &dyn Sys) {
        if let Some(dog) = &mut self.watchdog {
            dog.tick(sys, &mut self.journal);
        }
        let now = sys.now();
        if self.phase == Phase::Running {
            for i in 0..self.keepers.len() {
                if self.keepers[i].next_start.is_some_and(|t| t <= now) {
                    self.keepers[i].next_start = None;
                    self.keepers[i].started = now;
                    if self.keepers[i].last_exit.is_some() {
                        self.keepers[i].restarts += 1;
                    }
                    let entry = self.keepers[i].entry.clone();
                    match self.spawn(sys, &entry) {
                        Some(pid) => self.keepers[i].pid = Some(pid),
                        // Could not even start: a quick failure, never retried at once.
                        None => {
                            self.keepers[i].failures = self.keepers[i].failures.max(1);
                            self.schedule_respawn(sys, i, ExitStatus::Code(127));
                        }
                    }
                }
            }
        }
        if matches!(
            self.phase,
            Phase::Running | Phase::Stopping(_, Stop::Services)
        ) {
            self.services.tick(sys, &self.config.env, &mut self.journal);
        }
        match self.phase {
            Phase::Stopping(_, Stop::Term { until }) if now >= until => self.send_kill(sys),
            Phase::Stopping(_, Stop::Kill { until }) if now >= until => self.finish(sys),
            _ => {}
        }
    }

    fn no_children(&mut self, sys: &dyn Sys) {
        if let Phase::Stopping(_, Stop::Term { .. } | Stop::Kill { .. }) = self.phase {
            self.finish(sys);
        }
    }

    fn request(&mut self, sys: &dyn Sys, request: Request) {
        if matches!(self.phase, Phase::Stopping(..) | Phase::Done(_)) {
            self.say(
                log::Level::Info,
                format!("already going down: {} ignored", request.name()),
            );
            return;
        }
        match request {
            Request::Halt => self.stop(sys, Target::Reboot(RebootKind::Halt)),
            Request::PowerOff => self.stop(sys, Target::Reboot(RebootKind::PowerOff)),
            Request::Reboot => self.stop(sys, Target::Reboot(RebootKind::Restart)),
            Request::Restart => match self.restart_entry() {
                Some(entry) => self.stop(sys, Target::Restart(entry)),
                None => self.say(
                    log::Level::Info,
                    "SIGQUIT ignored: the inittab has no restart entry".into(),
                ),
            },
            Request::CtrlAltDel => {
                self.say(log::Level::Info, "Ctrl-Alt-Del".into());
                let entries: Vec<Entry> = self.table.with(Action::Ctrlaltdel).cloned().collect();
                self.queue.extend(entries);
                self.run_queue(sys);
            }
            Request::Reload => self.reload(sys),
        }
    }

    /// SIGHUP: the new table; running processes of entries still there are kept, those of
    /// entries gone are left running but no longer restarted (busybox without
    /// FEATURE_KILL_REMOVED).
    fn reload(&mut self, sys: &dyn Sys) {
        self.table = self.load(sys);
        let table = &self.table;
        let kept = |k: &Keeper| {
            table.entries.iter().any(|e| {
                e.action.respawns() && e.process == k.entry.process && e.tty == k.entry.tty
            })
        };
        let (stay, gone): (Vec<Keeper>, Vec<Keeper>) = self.keepers.drain(..).partition(kept);
        self.keepers = stay;
        for k in gone {
            self.say(
                log::Level::Info,
                format!("{} removed from the inittab", k.entry),
            );
            if let Some(pid) = k.pid {
                self.others.push((pid, k.entry));
            }
        }
        self.say(log::Level::Info, "inittab reloaded".into());
        if self.phase == Phase::Running {
            self.adopt_respawners(sys);
        }
    }

    /// Accepts and answers `ramboot ctl` clients.
    fn serve(&mut self, sys: &dyn Sys) {
        let Some(server) = &mut self.control else {
            return;
        };
        for client in server.poll(sys) {
            let (verdict, text) = self.control_request(sys, &client.line);
            client.answer(verdict, &text);
        }
    }

    /// Carries out one request line of [`super::control`]; the verdict and the text for the
    /// user.
    pub fn control_request(&mut self, sys: &dyn Sys, line: &str) -> (Verdict, String) {
        let request = match control::Request::parse(line) {
            Ok(r) => r,
            Err(e) => return (Verdict::Fail, format!("{e}\n")),
        };
        let (name, what) = match request {
            control::Request::Status { json, name } => return self.status(sys, json, name),
            control::Request::Start(n) => (n, Control::Start),
            control::Request::Stop(n) => (n, Control::Stop),
            control::Request::Restart(n) => (n, Control::Restart),
        };
        match self.phase {
            Phase::Running => {}
            Phase::Boot => {
                let why = "services start once the inittab's boot entries are done";
                return (Verdict::Fail, format!("{why}\n"));
            }
            _ => return (Verdict::Fail, "the system is going down\n".into()),
        }
        self.say(log::Level::Info, format!("ramboot ctl: {}", line.trim()));
        let env = self.config.env.clone();
        match self
            .services
            .control(sys, &name, what, &env, &mut self.journal)
        {
            Ok(text) => (Verdict::Ok, text + "\n"),
            Err(text) => (Verdict::Fail, text + "\n"),
        }
    }

    fn status(&self, sys: &dyn Sys, json: bool, name: Option<String>) -> (Verdict, String) {
        let now = sys.now();
        let mut list = self.services.status(now);
        list.extend(self.keepers.iter().map(|k| Status {
            name: k.entry.to_string(),
            service: false,
            state: match (k.pid, k.next_start) {
                (Some(_), _) => "up",
                (None, Some(t)) if t > now => "backing off",
                (None, Some(_)) => "starting",
                (None, None) => "down",
            },
            pid: k.pid,
            uptime: k.pid.map(|_| now.saturating_sub(k.started)),
            restarts: k.restarts,
            last_exit: k.last_exit,
        }));
        if let Some(name) = name {
            list.retain(|s| s.name == name);
            if list.is_empty() {
                return (Verdict::Fail, format!("no service {name}\n"));
            }
        }
        let text = if json {
            control::status_json(&list)
        } else {
            control::status_text(&list)
        };
        (Verdict::Ok, text)
    }

    fn restart_entry(&self) -> Option<Entry> {
        self.table.with(Action::Restart).next().cloned()
    }

    fn stop(&mut self, sys: &dyn Sys, target: Target) {
        let what = match &target {
            Target::Reboot(kind) => kind.to_string(),
            Target::Restart(entry) => format!("restart ({})", entry.process),
        };
        self.say(
            log::Level::Warn,
            format!("The system is going down for {what}"),
        );
        // A waited-for entry still running is killed with everything else.
        if let Some(fg) = self.foreground.take() {
            self.others.push(fg);
        }
        for k in &mut self.keepers {
            k.next_start = None;
        }
        self.phase = Phase::Stopping(target, Stop::Actions);
        self.queue = self.table.with(Action::Shutdown).cloned().collect();
        self.run_queue(sys);
    }

    fn set_stop(&mut self, stop: Stop) {
        if let Phase::Stopping(_, s) = &mut self.phase {
            *s = stop;
        }
    }

    fn send_term(&mut self, sys: &dyn Sys) {
        sys.sync();
        self.say(log::Level::Warn, "Sending SIGTERM to all processes".into());
        self.kill_all(sys, Signal::TERM);
        self.kill_all(sys, Signal::CONT);
        self.set_stop(Stop::Term {
            until: sys.now() + self.config.grace,
        });
    }

    fn send_kill(&mut self, sys: &dyn Sys) {
        self.say(log::Level::Warn, "Sending SIGKILL to all processes".into());
        self.kill_all(sys, Signal::KILL);
        self.set_stop(Stop::Kill {
            until: sys.now() + self.config.kill_wait,
        });
    }

    fn kill_all(&mut self, sys: &dyn Sys, signal: Signal) {
        if let Err(e) = sys.kill_all(signal) {
            self.say(log::Level::Error, format!("cannot signal processes: {e}"));
        }
    }

    fn finish(&mut self, sys: &dyn Sys) {
        let Phase::Stopping(target, _) = self.phase.clone() else {
            return;
        };
        self.close_control(sys);
        let outcome = match target {
            Target::Reboot(kind) if self.config.pid1 => self.power_down(sys, kind),
            Target::Reboot(kind) => {
                self.close_watchdog();
                Outcome::Reboot(kind)
            }
            Target::Restart(entry) if self.config.pid1 => return self.exec_restart(sys, entry),
            Target::Restart(entry) => {
                self.close_watchdog();
                Outcome::Exec(entry.process)
            }
        };
        self.phase = Phase::Done(outcome);
    }

    fn power_down(&mut self, sys: &dyn Sys, kind: RebootKind) -> Outcome {
        if let Some(save) = self.config.save_state {
            for line in save(sys) {
                self.say(log::Level::Warn, line);
            }
        }
        sys.sync();
        self.swap_off(sys);
        self.unmount_all(sys);
        sys.sync();
        self.say(log::Level::Warn, format!("Requesting system {kind}"));
        // Protected until the last moment: a hang while unmounting still resets the machine.
        self.close_watchdog();
        let err = sys.reboot(kind);
        self.say(log::Level::Error, format!("reboot(2) failed: {err}"));
        Outcome::Failed
    }

    /// Every active swap area of `/proc/swaps` turned off: a swap file keeps its filesystem
    /// busy, and a swap partition must not be written to after the reboot.
    fn swap_off(&mut self, sys: &dyn Sys) {
        let Ok(table) = std::fs::read_to_string(sys.path(Path::new("/proc/swaps"))) else {
            return; // no swap support, or /proc gone: nothing to turn off
        };
        for field in table
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().next())
        {
            let path = ramboot_sys::unescape_mount_path(field);
            if let Err(e) = sys.swapoff(&path) {
                self.say(
                    log::Level::Warn,
                    format!("cannot turn off swap {}: {e}", path.display()),
                );
            }
        }
    }

    /// Every mount but `/` in reverse mount order (busy ones remounted read-only), then `/`
    /// read-only: nothing written is lost on the boot media. A busy filesystem that lives in
    /// memory (`/dev`, `/proc`, a tmpfs root) has nothing to lose: it is left as it is, quietly.
    fn unmount_all(&mut self, sys: &dyn Sys) {
        let table =
            std::fs::read_to_string(sys.path(Path::new("/proc/mounts"))).unwrap_or_else(|e| {
                self.say(log::Level::Error, format!("cannot read /proc/mounts: {e}"));
                String::new()
            });
        let mounts: Vec<(PathBuf, bool)> = table
            .lines()
            .filter_map(|l| {
                let mut fields = l.split_whitespace().skip(1);
                let target = ramboot_sys::unescape_mount_path(fields.next()?);
                Some((target, in_memory(fields.next().unwrap_or(""))))
            })
            .collect();
        for (target, in_memory) in mounts.iter().rev() {
            if target.as_os_str() == "/" {
                continue;
            }
            match sys.umount(target, false) {
                Ok(()) => {}
                Err(e) if *in_memory => {
                    log::debug!("{} stays mounted: {e}", target.display());
                }
                Err(e) => {
                    let what = match sys.remount(target, MountFlags::RDONLY, "") {
                        Ok(()) => "remounted read-only".to_string(),
                        Err(ro) => format!("and cannot remount it read-only: {ro}"),
                    };
                    self.say(
                        log::Level::Warn,
                        format!("cannot unmount {}: {e}; {what}", target.display()),
                    );
                }
            }
        }
        let root_in_memory = mounts
            .iter()
            .rev()
            .find(|(t, _)| t.as_os_str() == "/")
            .is_some_and(|(_, m)| *m);
        if root_in_memory {
            return;
        }
        if let Err(e) = sys.remount(Path::new("/"), MountFlags::RDONLY, "") {
            self.say(log::Level::Warn, format!("cannot remount / read-only: {e}"));
        }
    }

    fn close_watchdog(&mut self) {
        if let Some(dog) = self.watchdog.take() {
            dog.close(&mut self.journal);
        }
    }

    fn exec_restart(&mut self, sys: &dyn Sys, entry: Entry) {
        sys.sync();
        let spawn = entry.spawn(&self.config.env);
        if let Some(tty) = &entry.tty {
            if let Err(e) = sys.attach_console(tty) {
                self.say(
                    log::Level::Warn,
                    format!("cannot open {}: {e}", tty.display()),
                );
            }
        }
        let mut argv = vec![spawn.argv0.clone().unwrap_or(spawn.program.clone().into())];
        argv.extend(spawn.args.iter().cloned());
        // The program starts as from the kernel: our blocked signals are not its.
        if let Err(e) = sys.reset_signals() {
            self.say(log::Level::Warn, format!("cannot reset the signals: {e}"));
        }
        // The next init knows nothing of this descriptor; [`Supervisor::start`] reopens it
        // when the exec fails.
        self.close_watchdog();
        let err = sys.exec(&spawn.program, &argv, &spawn.env);
        if is_exec_recorded(&err) {
            self.phase = Phase::Done(Outcome::Exec(entry.process));
            return;
        }
        // Our signals again (the loop's signalfd reads them once blocked), and, as every
        // process is gone, the best left is to run the table again.
        if let Err(e) = sys.signals(&super::event_loop::SIGNALS) {
            self.say(
                log::Level::Error,
                format!("cannot block the signals again: {e}"),
            );
        }
        self.say(
            log::Level::Error,
            format!("cannot exec {entry}: {err}; running the inittab again"),
        );
        self.keepers.clear();
        self.others.clear();
        self.start(sys);
    }
}

/// Filesystems whose contents live in memory or are made up by the kernel: nothing of them
/// reaches a disk, so one left mounted at power-down loses nothing.
fn in_memory(fstype: &str) -> bool {
    matches!(
        fstype,
        "rootfs"
            | "tmpfs"
            | "ramfs"
            | "devtmpfs"
            | "devpts"
            | "proc"
            | "sysfs"
            | "cgroup"
            | "cgroup2"
            | "mqueue"
            | "securityfs"
            | "debugfs"
            | "tracefs"
            | "pstore"
            | "bpf"
            | "configfs"
            | "fusectl"
            | "hugetlbfs"
            | "binfmt_misc"
            | "autofs"
    )
}

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "services_tests.rs"]
mod services_tests;

#[cfg(test)]
#[path = "watchdog_tests.rs"]
mod watchdog_tests;
