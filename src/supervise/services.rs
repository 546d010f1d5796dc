//! Supervised services (see [`super::service_dir`] for the directory format), driven by the
//! [`Supervisor`](super::Supervisor) on the same events and clock as the inittab.
//!
//! - Start: once the boot entries are done, every service not marked `down` whose
//!   dependencies are *ready* (a newline on its notification fd, or merely started when it has
//!   none). A logger starts before its service. Unknown dependencies and cycles are reported
//!   and those services marked failed.
//! - Exit: the last output lines go to the log (the kernel log, on PID 1), `finish` runs with
//!   runit's arguments (killed after a timeout), then the service restarts with exponential
//!   backoff minus up to `jitter_percent` % (from an injected source), so services that failed
//!   together do not restart in lock-step. After `crash_limit` exits within `crash_window` it
//!   is marked failed and not restarted.
//! - Output: stdout and stderr go to one pipe per service that outlives its restarts, read by
//!   the supervisor into `/var/log/ramboot/<name>/current` ([`RotatingLog`]), or to the logger's
//!   stdin when the service has a `log/`.
//! - Stop (shutdown): a service gets SIGTERM (and SIGCONT) once no running service depends on
//!   it (its logger counts as a dependency), SIGKILL after the grace period; `finish` is not
//!   run then.

use super::rotating_log::RotatingLog;
use super::service_dir::{self, ServiceDef};
use ramboot_sys::{ExitStatus, Signal, Spawn, Sys};
use rustix::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::collections::VecDeque;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use super::machine::{Backoff, Journal};
use crate::decimal::Decimal;

/// Services' settings.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    /// Where the service directories are, as PID 1 sees it.
    pub dir: PathBuf,
    /// Captured output goes to `<log_dir>/<name>/current`.
    pub log_dir: PathBuf,
    /// `current` is rotated when it reaches this size...
    pub log_size: u64,
    /// ... keeping this many rotated files.
    pub log_keep: u32,
    /// This many exits within `crash_window` and a service is given up.
    pub crash_limit: u32,
    pub crash_window: Duration,
    /// A `finish` still running after this is killed.
    pub finish_timeout: Duration,
    /// A restart delay is shortened by up to this share (0..=100) at random.
    pub jitter_percent: u32,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            dir: PathBuf::from("/etc/ramboot/services"),
            log_dir: PathBuf::from("/var/log/ramboot"),
            log_size: 1 << 20,
            log_keep: 3,
            crash_limit: 10,
            crash_window: Duration::from_secs(300),
            finish_timeout: Duration::from_secs(5),
            jitter_percent: 20,
        }
    }
}

/// Random numbers in `[0, 1)` for the restart jitter; injected so tests are deterministic.
pub type Jitter = Box<dyn FnMut() -> f64 + Send>;

/// A small xorshift generator, seeded from the time: jitter needs no more.
pub fn default_jitter() -> Jitter {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        ^ u64::from(std::process::id());
    let mut x = seed | 1;
    Box::new(move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 11) as f64 / (1u64 << 53) as f64
    })
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Not running: waiting for its time (`next_start`), its dependencies, or `wanted`.
    Down,
    Running {
        pid: u32,
        ready: bool,
    },
    /// `finish` runs; then the service restarts at `restart` (or is given up when `None`).
    Finishing {
        pid: u32,
        until: Duration,
        restart: Option<Duration>,
    },
    /// Given up (crash loop) or unusable (dependencies).
    Failed,
    /// Shutdown: signalled; SIGKILL at `until` (or, once killed, given up on at `until`).
    Stopping {
        pid: u32,
        until: Duration,
        killed: bool,
    },
}

struct Service {
    def: ServiceDef,
    state: State,
    wanted: bool,
    next_start: Option<Duration>,
    started: Duration,
    /// Quick exits in a row (the backoff's count).
    failures: u32,
    /// When it exited, within the crash window.
    exits: VecDeque<Duration>,
    /// Output pipe (read end, write end): the write end is the service's stdout and stderr;
    /// the read end is read into `log`, or is the logger's stdin.
    output: Option<(OwnedFd, OwnedFd)>,
    log: Option<RotatingLog>,
    /// The read end of the readiness pipe while the service has not said it is ready.
    notify: Option<OwnedFd>,
    /// Said once that it waits for a dependency.
    told_waiting: bool,
    /// Starts after the first, and how the last run ended (for `ramboot ctl status`).
    restarts: u32,
    last_exit: Option<ExitStatus>,
}

impl Service {
    fn pid(&self) -> Option<u32> {
        match self.state {
            State::Running { pid, .. }
            | State::Finishing { pid, .. }
            | State::Stopping { pid, .. } => Some(pid),
            State::Down | State::Failed => None,
        }
    }

    fn ready(&self) -> bool {
        matches!(self.state, State::Running { ready: true, .. })
    }
}

/// Every service and where it stands.
pub struct Services {
    config: ServiceConfig,
    backoff: Backoff,
    /// From SIGTERM to SIGKILL at shutdown, and after SIGKILL until a service is given up on.
    grace: Duration,
    kill_wait: Duration,
    jitter: Jitter,
    list: Vec<Service>,
}

impl Services {
    pub fn new(
        config: ServiceConfig,
        backoff: Backoff,
        (grace, kill_wait): (Duration, Duration),
        jitter: Jitter,
    ) -> Services {
        Services {
            config,
            backoff,
            grace,
            kill_wait,
            jitter,
            list: Vec::new(),
        }
    }

    /// Reads the service directories and starts what can start.
    pub fn start(&mut self, sys: &dyn Sys, env: &[(OsString, OsString)], journal: &mut Journal) {
        let (defs, skipped) = service_dir::load_all(sys, &self.config.dir);
        for s in skipped {
            journal.warn(format!("service {} skipped: {}", s.name, s.reason));
        }
        let now = sys.now();
        self.list = defs
            .into_iter()
            .map(|def| Service {
                wanted: !def.down,
                def,
                state: State::Down,
                next_start: Some(now),
                started: now,
                failures: 0,
                exits: VecDeque::new(),
                output: None,
                log: None,
                notify: None,
                told_waiting: false,
                restarts: 0,
                last_exit: None,
            })
            .collect();
        for s in self.list.iter().filter(|s| !s.wanted) {
            journal.info(format!("service {}: down file, not started", s.def.name));
        }
        self.check_dependencies(journal);
        self.open_outputs(sys, journal);
        self.tick(sys, env, journal);
    }

    /// Marks failed the services whose dependencies are unknown or form a cycle.
    fn check_dependencies(&mut self, journal: &mut Journal) {
        for i in 0..self.list.len() {
            let unknown: Vec<String> = self.list[i]
                .def
                .depends
                .iter()
                .filter(|d| self.index(d).is_none())
                .cloned()
                .collect();
            if !unknown.is_empty() {
                self.list[i].state = State::Failed;
                journal.error(format!(
                    "service {} failed: it depends on {}, which {} no service",
                    self.list[i].def.name,
                    unknown.join(", "),
                    if unknown.len() == 1 { "is" } else { "are" }
                ));
            } else if let Some(cycle) = self.cycle_from(i) {
                self.list[i].state = State::Failed;
                journal.error(format!(
                    "service {} failed: dependency cycle {}",
                    self.list[i].def.name,
                    cycle.join(" -> ")
                ));
            }
        }
    }

    /// A path of dependencies from service `start` back to itself.
    fn cycle_from(&self, start: usize) -> Option<Vec<String>> {
        let mut stack = vec![(start, vec![self.list[start].def.name.clone()])];
        let mut seen = vec![false; self.list.len()];
        while let Some((i, path)) = stack.pop() {
            for d in self.dependencies(i) {
                let mut next = path.clone();
                next.push(self.list[d].def.name.clone());
                if d == start {
                    return Some(next);
                }
                if !seen[d] {
                    seen[d] = true;
                    stack.push((d, next));
                }
            }
        }
        None
    }

    fn index(&self, name: &str) -> Option<usize> {
        self.list.iter().position(|s| s.def.name == name)
    }

    /// What service `i` waits for: its `depends`, and its logger.
    fn dependencies(&self, i: usize) -> Vec<usize> {
        let def = &self.list[i].def;
        let logger = (def.logged && !def.is_logger)
            .then(|| self.index(&format!("{}/log", def.name)))
            .flatten();
        def.depends
            .iter()
            .filter_map(|d| self.index(d))
            .chain(logger)
            .collect()
    }

    /// One output pipe per service (shared with its logger), and its log file.
    fn open_outputs(&mut self, sys: &dyn Sys, journal: &mut Journal) {
        for i in 0..self.list.len() {
            if self.list[i].def.is_logger {
                continue;
            }
            match output_pipe() {
                Ok(p) => self.list[i].output = Some(p),
                Err(e) => journal.error(format!(
                    "service {}: cannot make its output pipe: {e}; output goes to the console",
                    self.list[i].def.name
                )),
            }
        }
        for i in 0..self.list.len() {
            let def = &self.list[i].def;
            if def.logged && !def.is_logger {
                continue; // its logger reads the pipe
            }
            if def.is_logger {
                // The logger's own output: a pipe of its own, logged like any service's.
                match output_pipe() {
                    Ok(p) => self.list[i].output = Some(p),
                    Err(e) => journal.error(format!("service {}: {e}", def.name)),
                }
            }
            let dir = sys.path(&self.config.log_dir.join(&self.list[i].def.name));
            let (log, err) = RotatingLog::open(dir, self.config.log_size, self.config.log_keep);
            if let Some(e) = err {
                journal.error(format!(
                    "service {}: cannot write its log under {}: {e}; keeping only its last lines",
                    self.list[i].def.name,
                    self.config.log_dir.display()
                ));
            }
            self.list[i].log = Some(log);
        }
    }

    /// The descriptors the event loop must watch.
    pub fn readable(&self) -> Vec<BorrowedFd<'_>> {
        self.list
            .iter()
            .flat_map(|s| {
                let output = s
                    .log
                    .as_ref()
                    .and(s.output.as_ref())
                    .map(|(read, _)| read.as_fd());
                output
                    .into_iter()
                    .chain(s.notify.as_ref().map(|n| n.as_fd()))
            })
            .collect()
    }

    /// Reads what is there: output into the logs, readiness notifications.
    pub fn read_io(&mut self, sys: &dyn Sys, env: &[(OsString, OsString)], journal: &mut Journal) {
        for i in 0..self.list.len() {
            self.drain_output(i, journal);
            self.read_notification(i, journal);
        }
        self.tick(sys, env, journal);
    }

    fn drain_output(&mut self, i: usize, journal: &mut Journal) {
        let s = &mut self.list[i];
        let (Some((read, _)), Some(log)) = (&s.output, &mut s.log) else {
            return;
        };
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = rustix::io::read(read, &mut buf) {
            if let Err(e) = log.write(&buf[..n]) {
                journal.error(format!("service {}: cannot write its log: {e}", s.def.name));
            }
        }
    }

    fn read_notification(&mut self, i: usize, journal: &mut Journal) {
        let s = &mut self.list[i];
        let Some(fd) = &s.notify else { return };
        let mut buf = [0u8; 64];
        loop {
            match rustix::io::read(fd, &mut buf) {
                Ok(0) => {
                    // Closed without a newline: it never says it is ready (s6 alike).
                    s.notify = None;
                    return;
                }
                Ok(n) if buf[..n].contains(&b'\n') => {
                    s.notify = None;
                    if let State::Running { pid, .. } = s.state {
                        s.state = State::Running { pid, ready: true };
                        journal.info(format!("service {} is ready", s.def.name));
                    }
                    return;
                }
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(_) => return,
            }
        }
    }

    /// When the next service timer is due (only services that could start then).
    pub fn next_deadline(&self) -> Option<Duration> {
        let starts = self
            .list
            .iter()
            .enumerate()
            .filter(|(i, s)| s.state == State::Down && s.wanted && self.deps_ready(*i))
            .filter_map(|(_, s)| s.next_start);
        let others = self.list.iter().filter_map(|s| match s.state {
            State::Finishing { until, .. } | State::Stopping { until, .. } => Some(until),
            _ => None,
        });
        starts.chain(others).min()
    }

    fn deps_ready(&self, i: usize) -> bool {
        self.dependencies(i).iter().all(|&d| self.list[d].ready())
    }

    /// Starts what is due and ready to start, kills what overran.
    pub fn tick(&mut self, sys: &dyn Sys, env: &[(OsString, OsString)], journal: &mut Journal) {
        let now = sys.now();
        for i in 0..self.list.len() {
            if let State::Finishing { pid, until, .. } = self.list[i].state {
                if now >= until {
                    journal.warn(format!(
                        "service {}: finish still running after {}s; killing it",
                        self.list[i].def.name,
                        Decimal::secs(self.config.finish_timeout)
                    ));
                    let _ = sys.kill(pid, Signal::KILL);
                    if let State::Finishing { until, .. } = &mut self.list[i].state {
                        *until = now + self.kill_wait;
                    }
                }
            }
        }
        self.progress_stop(sys, journal);
        // Starting one may let its dependents start.
        let mut started = true;
        while started {
            started = false;
            for i in 0..self.list.len() {
                let s = &self.list[i];
                let due =
                    s.state == State::Down && s.wanted && s.next_start.is_some_and(|t| t <= now);
                if !due {
                    continue;
                }
                if !self.deps_ready(i) {
                    self.tell_waiting(i, journal);
                    continue;
                }
                started |= self.spawn_run(sys, i, env, journal);
            }
        }
    }

    fn tell_waiting(&mut self, i: usize, journal: &mut Journal) {
        if self.list[i].told_waiting {
            return;
        }
        self.list[i].told_waiting = true;
        let waiting: Vec<String> = self
            .dependencies(i)
            .into_iter()
            .filter(|&d| !self.list[d].ready())
            .map(|d| self.list[d].def.name.clone())
            .collect();
        journal.info(format!(
            "service {} waits for {} to be ready",
            self.list[i].def.name,
            waiting.join(", ")
        ));
    }

    /// Starts service `i`'s run; true when it started.
    fn spawn_run(
        &mut self,
        sys: &dyn Sys,
        i: usize,
        env: &[(OsString, OsString)],
        journal: &mut Journal,
    ) -> bool {
        let now = sys.now();
        let mut spawn = self.spawn_of(i, "run", Vec::new(), env);
        let notify = match self.list[i].def.notification_fd {
            Some(n) => match rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC) {
                Ok((read, write)) => {
                    let _ = set_nonblocking(&read);
                    spawn.fds.push((write.as_raw_fd(), n));
                    Some((read, write))
                }
                Err(e) => {
                    journal.error(format!(
                        "service {}: cannot make its readiness pipe: {e}",
                        self.list[i].def.name
                    ));
                    None
                }
            },
            None => None,
        };
        let s = &mut self.list[i];
        s.next_start = None;
        s.told_waiting = false;
        if s.last_exit.is_some() {
            s.restarts += 1;
        }
        s.started = now;
        match sys.spawn(&spawn) {
            Ok(pid) => {
                // The write end now lives in the child only.
                s.notify = notify.map(|(read, _write)| read);
                let ready = s.def.notification_fd.is_none();
                s.state = State::Running { pid, ready };
                journal.info(format!("service {} started (pid {pid})", s.def.name));
                true
            }
            Err(e) => {
                journal.error(format!("service {}: cannot start run: {e}", s.def.name));
                self.after_exit(sys, i, ExitStatus::Code(127), env, journal);
                false
            }
        }
    }

    fn spawn_of(
        &self,
        i: usize,
        program: &str,
        args: Vec<OsString>,
        base_env: &[(OsString, OsString)],
    ) -> Spawn {
        let s = &self.list[i];
        let def = &s.def;
        let mut env: Vec<(OsString, OsString)> = base_env.to_vec();
        let mut set = |k: OsString, v: Option<OsString>| {
            env.retain(|(name, _)| *name != k);
            if let Some(v) = v {
                env.push((k, v));
            }
        };
        if let Some((_, name, home)) = &def.user {
            set("USER".into(), Some(name.into()));
            set("LOGNAME".into(), Some(name.into()));
            set("HOME".into(), Some(home.clone()));
        }
        for (k, v) in &def.env {
            set(k.clone(), v.clone());
        }
        let mut fds = Vec::new();
        if def.is_logger {
            let main = def.name.trim_end_matches("/log");
            if let Some((read, _)) = self.index(main).and_then(|m| self.list[m].output.as_ref()) {
                fds.push((read.as_raw_fd(), 0));
            }
        }
        if let Some((_, write)) = &s.output {
            fds.push((write.as_raw_fd(), 1));
            fds.push((write.as_raw_fd(), 2));
        }
        Spawn {
            program: def.dir.join(program),
            args,
            env,
            cwd: Some(def.dir.clone()),
            user: def.user.as_ref().map(|(c, _, _)| c.clone()),
            fds,
            ..Default::default()
        }
    }

    /// Handles a reaped process; false when it was none of the services'.
    pub fn exited(
        &mut self,
        sys: &dyn Sys,
        pid: u32,
        status: ExitStatus,
        env: &[(OsString, OsString)],
        journal: &mut Journal,
    ) -> bool {
        let Some(i) = self.list.iter().position(|s| s.pid() == Some(pid)) else {
            return false;
        };
        self.drain_output(i, journal);
        if matches!(
            self.list[i].state,
            State::Running { .. } | State::Stopping { .. }
        ) {
            self.list[i].last_exit = Some(status);
        }
        match self.list[i].state {
            State::Running { .. } => {
                self.list[i].notify = None;
                self.report_death(i, status, journal);
                self.after_exit(sys, i, status, env, journal);
            }
            State::Finishing { restart, .. } => {
                let s = &mut self.list[i];
                s.state = State::Down;
                match restart {
                    Some(at) => s.next_start = Some(at),
                    None => s.state = State::Failed,
                }
            }
            State::Stopping { .. } => {
                let s = &mut self.list[i];
                s.notify = None;
                s.state = State::Down;
                journal.info(format!("service {} stopped: {status}", s.def.name));
                // Still wanted: it was restarted (`ramboot ctl restart`), not stopped.
                if s.wanted {
                    s.next_start = Some(sys.now());
                }
            }
            State::Down | State::Failed => {}
        }
        self.tick(sys, env, journal);
        true
    }

    /// The death and the last lines of output, for the kernel log.
    fn report_death(&mut self, i: usize, status: ExitStatus, journal: &mut Journal) {
        let s = &mut self.list[i];
        let tail = s
            .log
            .as_mut()
            .map(RotatingLog::take_tail)
            .unwrap_or_default();
        let name = s.def.name.clone();
        if tail.is_empty() {
            journal.warn(format!("service {name} died: {status}"));
        } else {
            journal.warn(format!("service {name} died: {status}; its last lines:"));
            for line in tail {
                journal.warn(format!("{name}: {line}"));
            }
        }
    }

    /// After run ended (or could not start): finish, then a restart or giving up.
    fn after_exit(
        &mut self,
        sys: &dyn Sys,
        i: usize,
        status: ExitStatus,
        env: &[(OsString, OsString)],
        journal: &mut Journal,
    ) {
        let now = sys.now();
        let restart = self.plan_restart(i, now, journal);
        let s = &mut self.list[i];
        s.state = State::Down;
        if !s.def.finish {
            match restart {
                Some(at) => s.next_start = Some(at),
                None => s.state = State::Failed,
            }
            return;
        }
        let (code, signal) = match status {
            ExitStatus::Code(c) => (c, 0),
            ExitStatus::Signal(n) => (-1, n),
        };
        let args = vec![code.to_string().into(), signal.to_string().into()];
        let spawn = self.spawn_of(i, "finish", args, env);
        let s = &mut self.list[i];
        match sys.spawn(&spawn) {
            Ok(pid) => {
                s.state = State::Finishing {
                    pid,
                    until: now + self.config.finish_timeout,
                    restart,
                }
            }
            Err(e) => {
                journal.error(format!("service {}: cannot run finish: {e}", s.def.name));
                match restart {
                    Some(at) => s.next_start = Some(at),
                    None => s.state = State::Failed,
                }
            }
        }
    }

    /// When to restart service `i` that just ended, or `None` when it is given up.
    fn plan_restart(&mut self, i: usize, now: Duration, journal: &mut Journal) -> Option<Duration> {
        let window = self.config.crash_window;
        let limit = self.config.crash_limit;
        let s = &mut self.list[i];
        s.exits.push_back(now);
        while s
            .exits
            .front()
            .is_some_and(|&t| now.saturating_sub(t) > window)
        {
            s.exits.pop_front();
        }
        if s.exits.len() >= limit as usize {
            journal.error(format!(
                "service {} failed: {} exits within {}s; not restarted",
                s.def.name,
                s.exits.len(),
                Decimal::secs(window)
            ));
            return None;
        }
        if !s.wanted {
            return None;
        }
        if now.saturating_sub(s.started) >= self.backoff.stable {
            s.failures = 0;
        }
        s.failures += 1;
        let base = self.backoff.delay(s.failures);
        let share = f64::from(self.config.jitter_percent.min(100)) / 100.0;
        let cut = share * (self.jitter)().clamp(0.0, 1.0);
        let delay = base.mul_f64(1.0 - cut);
        if !delay.is_zero() {
            journal.info(format!(
                "service {}: restarting in {:.3}s",
                s.def.name,
                Decimal::secs(delay)
            ));
        }
        Some(now + delay)
    }

    /// Shutdown: stop everything in reverse dependency order.
    pub fn begin_stop(&mut self, sys: &dyn Sys, journal: &mut Journal) {
        for s in &mut self.list {
            s.wanted = false;
            s.next_start = None;
        }
        self.progress_stop(sys, journal);
    }

    /// Whether no service process is left.
    /// Every wanted service runs and has said it is ready (or has no way to say it).
    pub fn all_ready(&self) -> bool {
        self.list.iter().filter(|s| s.wanted).all(|s| s.ready())
    }

    pub fn all_stopped(&self) -> bool {
        self.list.iter().all(|s| s.pid().is_none())
    }

    /// Grace period and SIGKILL for the signalled; SIGTERM for those no running service
    /// depends on any more.
    fn progress_stop(&mut self, sys: &dyn Sys, journal: &mut Journal) {
        self.expire_stopping(sys, journal);
        if self.list.iter().any(|s| s.wanted) || self.list.is_empty() {
            return;
        }
        let now = sys.now();
        for i in 0..self.list.len() {
            let pid = match self.list[i].state {
                State::Running { pid, .. } | State::Finishing { pid, .. } => pid,
                _ => continue,
            };
            let needed = (0..self.list.len())
                .any(|d| self.list[d].pid().is_some() && self.dependencies(d).contains(&i));
            if needed {
                continue;
            }
            self.signal_stop(sys, i, pid, now, journal);
        }
    }

    /// SIGTERM (and SIGCONT) to service `i`; SIGKILL when the grace period ends.
    fn signal_stop(
        &mut self,
        sys: &dyn Sys,
        i: usize,
        pid: u32,
        now: Duration,
        journal: &mut Journal,
    ) {
        journal.info(format!("stopping service {}", self.list[i].def.name));
        let _ = sys.kill(pid, Signal::TERM);
        let _ = sys.kill(pid, Signal::CONT);
        self.list[i].state = State::Stopping {
            pid,
            until: now + self.grace,
            killed: false,
        };
    }

    /// SIGKILL for the signalled whose grace period ended; given up on after that.
    fn expire_stopping(&mut self, sys: &dyn Sys, journal: &mut Journal) {
        let now = sys.now();
        for i in 0..self.list.len() {
            let s = &mut self.list[i];
            if let State::Stopping { pid, until, killed } = s.state {
                if now < until {
                    continue;
                }
                if killed {
                    journal.error(format!(
                        "service {} (pid {pid}) did not die of SIGKILL; going on",
                        s.def.name
                    ));
                    s.state = State::Down;
                } else {
                    journal.warn(format!(
                        "service {} did not stop within {}s; sending SIGKILL",
                        s.def.name,
                        Decimal::secs(self.grace)
                    ));
                    let _ = sys.kill(pid, Signal::KILL);
                    self.list[i].state = State::Stopping {
                        pid,
                        until: now + self.kill_wait,
                        killed: true,
                    };
                }
            }
        }
    }
}

/// What `ramboot ctl` asks of one service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    Start,
    /// Stop and keep it down until started again (runit's `sv down`).
    Stop,
    Restart,
}

impl Services {
    /// `ramboot ctl start|stop|restart NAME`: what was done, or why nothing could be.
    pub fn control(
        &mut self,
        sys: &dyn Sys,
        name: &str,
        what: Control,
        env: &[(OsString, OsString)],
        journal: &mut Journal,
    ) -> Result<String, String> {
        let i = self
            .index(name)
            .ok_or_else(|| format!("no service {name}"))?;
        let now = sys.now();
        let state = self.list[i].state;
        let reply = match (what, state) {
            (Control::Stop, _) => {
                let s = &mut self.list[i];
                s.wanted = false;
                s.next_start = None;
                match state {
                    State::Running { pid, .. } => {
                        self.signal_stop(sys, i, pid, now, journal);
                        format!("stopping {name} (pid {pid}); it stays down")
                    }
                    State::Stopping { .. } => format!("{name} is stopping; it stays down"),
                    _ => format!("{name} is down and stays down"),
                }
            }
            (Control::Restart, State::Running { pid, .. }) => {
                self.list[i].wanted = true;
                self.signal_stop(sys, i, pid, now, journal);
                format!("restarting {name} (pid {pid})")
            }
            (_, State::Running { pid, .. }) => format!("{name} is already up (pid {pid})"),
            (_, _) => {
                if state == State::Failed {
                    let def = &self.list[i].def;
                    if def.depends.iter().any(|d| self.index(d).is_none())
                        || self.cycle_from(i).is_some()
                    {
                        return Err(format!("{name} cannot start: its dependencies are broken"));
                    }
                }
                let s = &mut self.list[i];
                s.wanted = true;
                s.failures = 0;
                s.exits.clear();
                s.told_waiting = false;
                match &mut s.state {
                    State::Finishing { restart, .. } => *restart = Some(now),
                    State::Stopping { .. } => {}
                    st => {
                        *st = State::Down;
                        s.next_start = Some(now);
                    }
                }
                journal.info(format!("service {name}: started by request"));
                self.tick(sys, env, journal);
                format!("starting {name}")
            }
        };
        Ok(reply)
    }

    /// One line of `ramboot ctl status` per service.
    pub fn status(&self, now: Duration) -> Vec<super::control::Status> {
        self.list
            .iter()
            .map(|s| {
                let state = match s.state {
                    State::Running { ready: false, .. } => "starting",
                    State::Running { .. } if s.def.notification_fd.is_some() => "ready",
                    State::Running { .. } => "up",
                    State::Stopping { .. } => "stopping",
                    State::Failed | State::Finishing { restart: None, .. } => "failed",
                    _ if !s.wanted => "down",
                    State::Down if s.next_start.is_some_and(|t| t <= now) => "starting",
                    _ => "backing off",
                };
                let running = matches!(s.state, State::Running { .. } | State::Stopping { .. });
                super::control::Status {
                    name: s.def.name.clone(),
                    service: true,
                    state,
                    pid: s.pid().filter(|_| running),
                    uptime: running.then(|| now.saturating_sub(s.started)),
                    restarts: s.restarts,
                    last_exit: s.last_exit,
                }
            })
            .collect()
    }
}

/// A pipe whose read end does not block (the supervisor reads what is there) and whose write
/// end does (a service writing faster than it is logged waits, it does not lose lines).
fn output_pipe() -> rustix::io::Result<(OwnedFd, OwnedFd)> {
    let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    set_nonblocking(&read)?;
    Ok((read, write))
}

fn set_nonblocking(fd: &OwnedFd) -> rustix::io::Result<()> {
    let flags = rustix::fs::fcntl_getfl(fd)?;
    rustix::fs::fcntl_setfl(fd, flags | rustix::fs::OFlags::NONBLOCK)
}
