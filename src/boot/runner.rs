//! The stage runner: the one place where a stage's failure policy acts.
//!
//! A stage ([`Stage`], all of them in [`super::stages`]) is run by [`Boot::stage`]: its console
//! line opens, the step runs (a Rust panic in it is caught and becomes an error), the line closes,
//! the timeline gets the stage with its outcome, and on an error the declared [`Policy`] decides:
//! the rescue shell and the stage again, a warning and the stage's fallback, or — only with
//! `panic=` — the end of PID 1 so the kernel panics.

use super::console;
use super::timeline::Outcome;
use super::{Boot, BootEnd, BootError, RESCUE_SHELL};
use crate::cmdline::FailPolicy;
use crate::sys::{Spawn, Sys};
use std::io;
use std::path::Path;
use std::time::Duration;

/// What a stage's failure does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// The reason on the console and in the kernel log, the rescue shell, then the stage again
    /// when the shell exits. With `panic=` it is [`Policy::Fatal`] instead.
    RescueAndRetry,
    /// The reason as a warning, then the boot goes on with the stage's fallback (its value's
    /// `Default`); `fallback` says what that means on the console.
    Degrade { fallback: Option<&'static str> },
    /// PID 1 exits so that the kernel panics. Never declared for a stage: `panic=` turns
    /// [`Policy::RescueAndRetry`] into it.
    Fatal,
}

impl Policy {
    /// The policy in force under the command line's failure policy.
    pub fn under(self, fail: FailPolicy) -> Policy {
        match (self, fail) {
            (Policy::RescueAndRetry, FailPolicy::KernelPanic) => Policy::Fatal,
            (p, _) => p,
        }
    }
}

/// A stage as declared in [`super::stages`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stage {
    /// Its name in the timeline.
    pub name: &'static str,
    /// The console line (` * {title} ...`); a `{}` in it is filled in when the stage runs.
    pub title: Option<&'static str>,
    pub policy: Policy,
    /// It has a timeline entry.
    pub timed: bool,
}

/// What a step gives back when it finished: its value, and what did not go well.
#[derive(Debug)]
pub struct Done<T> {
    value: T,
    /// The timeline's note: the stage finished without all it wanted.
    degraded: Option<String>,
    /// The end of the console line when it is not ` ok`.
    failed_line: Option<String>,
}

impl<T> Done<T> {
    pub fn ok(value: T) -> Self {
        Self {
            value,
            degraded: None,
            failed_line: None,
        }
    }

    /// Finished without all it wanted; the console line still ends ` ok` (the problems were
    /// logged one by one) unless [`Done::shown`] says otherwise.
    pub fn degraded(value: T, note: impl Into<String>) -> Self {
        Self {
            value,
            degraded: Some(note.into()),
            failed_line: None,
        }
    }

    /// Why the stage is degraded, when it is.
    pub fn degradation(&self) -> Option<&str> {
        self.degraded.as_deref()
    }

    /// The console line ends ` failed: {text}`.
    pub fn shown(mut self, text: impl Into<String>) -> Self {
        self.failed_line = Some(text.into());
        self
    }
}

/// One run of a stage, set up by [`Boot::stage`].
#[must_use = "a stage does nothing until it is run"]
pub struct StageRun<'b, 'a> {
    boot: &'b mut Boot<'a>,
    stage: &'b Stage,
    title: Option<String>,
    since: Option<Duration>,
}

impl<'a> Boot<'a> {
    /// Sets up a run of `stage`; [`StageRun::run`] runs it.
    pub fn stage<'b>(&'b mut self, stage: &'b Stage) -> StageRun<'b, 'a> {
        StageRun {
            boot: self,
            title: stage.title.map(str::to_string),
            stage,
            since: None,
        }
    }
}

/// After a failure: what the policy decided.
enum Next {
    Retry,
    GoOn,
}

impl<'a> StageRun<'_, 'a> {
    /// Fills the title's `{}`.
    pub fn detail(mut self, detail: impl std::fmt::Display) -> Self {
        self.title = self.title.map(|t| t.replace("{}", &detail.to_string()));
        self
    }

    /// No console line this time (there is nothing to show, e.g. no apkovl).
    pub fn untitled(mut self) -> Self {
        self.title = None;
        self
    }

    /// The stage's work began earlier, at `start` (on another thread): the first run is timed
    /// from there.
    pub fn since(mut self, start: Duration) -> Self {
        self.since = Some(start);
        self
    }

    /// Runs `step` under the stage's policy. `Err` only when the boot ends here (`panic=`, or the
    /// rescue budget of a test ran out); a degraded stage that failed gives `T::default()`.
    pub fn run<T: Default>(
        self,
        mut step: impl FnMut(&mut Boot<'a>) -> Result<Done<T>, BootError>,
    ) -> Result<T, BootEnd> {
        let StageRun {
            boot,
            stage,
            title,
            mut since,
        } = self;
        loop {
            let start = since.take().unwrap_or_else(|| boot.sys.now());
            if let Some(t) = &title {
                console::ebegin(t);
            }
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| step(boot)))
                .unwrap_or_else(|p| {
                    Err(BootError::Panic {
                        message: panic_text(&p),
                    })
                });
            let end = boot.sys.now();
            let e = match result {
                Ok(done) => {
                    if title.is_some() {
                        console::eend(done.failed_line.as_deref().map_or(Ok(()), Err));
                    }
                    let outcome = done.degraded.map_or(Outcome::Ok, Outcome::Degraded);
                    boot.record_stage(stage, start, end, outcome);
                    return Ok(done.value);
                }
                Err(e) => e,
            };
            let reason = e.to_string();
            match title {
                Some(_) => console::eend(Err(&e.console_text())),
                None => log::error!("{reason}"),
            }
            let outcome = match stage.policy {
                Policy::Degrade { .. } => Outcome::Degraded(reason.clone()),
                _ => Outcome::Failed(reason.clone()),
            };
            boot.record_stage(stage, start, end, outcome);
            match boot.on_failure(stage, &reason)? {
                Next::Retry => continue,
                Next::GoOn => return Ok(T::default()),
            }
        }
    }
}

impl Boot<'_> {
    fn record_stage(&mut self, stage: &Stage, start: Duration, end: Duration, outcome: Outcome) {
        if stage.timed {
            self.timeline.stage(stage.name, start, end, outcome);
        }
    }

    /// The stage's policy after a failure whose reason is already on the console.
    fn on_failure(&mut self, stage: &Stage, reason: &str) -> Result<Next, BootEnd> {
        match stage.policy.under(self.plan.fail_policy) {
            Policy::Degrade { fallback } => {
                if let Some(f) = fallback {
                    log::warn!("{f}");
                }
                Ok(Next::GoOn)
            }
            Policy::Fatal => {
                console::announce(&format!(
                    "ramboot: {reason}; panic= is set: exiting so the kernel panics"
                ));
                self.sys.sync();
                Err(BootEnd::KernelPanic {
                    reason: reason.into(),
                })
            }
            Policy::RescueAndRetry => self.rescue(reason).map(|()| Next::Retry),
        }
    }

    /// A failure of `stage` outside its run (the handoff's switch_root): the same policy, without
    /// a second timeline entry. `Ok` means "try again".
    pub fn after_failure(&mut self, stage: &Stage, reason: &str) -> Result<(), BootEnd> {
        self.on_failure(stage, reason).map(drop)
    }

    /// The rescue shell, then `Ok` to retry; without a shell PID 1 waits idle.
    fn rescue(&mut self, reason: &str) -> Result<(), BootEnd> {
        if let Some(0) = self.rescue_budget {
            return Err(BootEnd::GaveUp {
                reason: reason.into(),
            });
        }
        if !self.sys.path(Path::new(RESCUE_SHELL)).exists() {
            console::announce(&format!(
                "ramboot: {reason}; no rescue shell in the initramfs (build it with `mkinitfs --busybox`): waiting"
            ));
            self.sys.idle_forever();
            return Err(BootEnd::Idle {
                reason: reason.into(),
            });
        }
        let run = self.rescue_shell(
            "Launching initramfs emergency recovery shell. Exit the shell to retry the boot.",
        );
        self.backoff.pace(self.sys, &run);
        if let Some(n) = self.rescue_budget.as_mut() {
            *n -= 1;
        }
        Ok(())
    }

    /// Runs the initramfs shell on the console and waits for it.
    pub fn rescue_shell(&self, banner: &str) -> ShellRun {
        console::announce(banner);
        let spawn = Spawn {
            program: RESCUE_SHELL.into(),
            args: vec![],
            env: vec![
                ("PATH".into(), "/usr/bin:/bin:/usr/sbin:/sbin".into()),
                ("HOME".into(), "/".into()),
                ("TERM".into(), "linux".into()),
                ("PS1".into(), "ramboot# ".into()),
            ],
            controlling_tty: true,
            ..Default::default()
        };
        let start = self.sys.now();
        let result = self.sys.run(&spawn);
        if let Err(e) = &result {
            log::error!("cannot start {RESCUE_SHELL}: {e}");
        }
        ShellRun {
            result,
            ran: self.sys.now().saturating_sub(start),
        }
    }
}

/// How a rescue shell run ended.
#[derive(Debug)]
pub struct ShellRun {
    /// The exit code, or why the shell could not start.
    pub result: io::Result<i32>,
    /// How long it ran (`CLOCK_BOOTTIME`).
    pub ran: Duration,
}

/// Paces the rescue loop, so a shell that cannot start or exits at once (no console input, a
/// broken `/bin/sh`) does not turn PID 1 into a hot loop: 1 s, then doubling up to 30 s. A shell
/// that was used for a while resets the pace.
#[derive(Debug, Clone)]
pub struct RescueBackoff {
    next: Duration,
}

impl RescueBackoff {
    pub const FIRST: Duration = Duration::from_secs(1);
    pub const MAX: Duration = Duration::from_secs(30);
    /// A shell that ran shorter than this exited "at once".
    pub const AT_ONCE: Duration = Duration::from_secs(1);

    /// Called after each rescue shell: waits (through [`Sys::sleep`]) when the shell did not run.
    pub fn pace(&mut self, sys: &dyn Sys, run: &ShellRun) {
        let why = match &run.result {
            Err(_) => "the rescue shell could not be started",
            Ok(_) if run.ran < Self::AT_ONCE => "the rescue shell exited at once",
            Ok(_) => {
                self.next = Self::FIRST;
                return;
            }
        };
        let wait = self.next;
        log::warn!("{why}: retrying in {}s", wait.as_secs());
        sys.sleep(wait);
        self.next = (wait * 2).min(Self::MAX);
    }
}

impl Default for RescueBackoff {
    fn default() -> Self {
        Self { next: Self::FIRST }
    }
}

/// The text of a caught panic.
pub fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmdline;
    use crate::sys::{Call, RecordingSys};

    const RESCUED: Stage = Stage {
        name: "x",
        title: Some("Doing x"),
        policy: Policy::RescueAndRetry,
        timed: true,
    };

    fn boot_with<'a>(sys: &'a RecordingSys, cmdline: &str) -> Boot<'a> {
        let mut b = Boot::new(sys, cmdline::plan(&cmdline::parse(cmdline)), Duration::ZERO);
        b.rescue_budget = Some(1);
        b
    }

    fn shell(dir: &Path) {
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        std::fs::write(dir.join("bin/sh"), b"").unwrap();
    }

    fn captured() -> console::tests::Captured {
        let out = console::tests::Captured::default();
        console::init(Box::new(out.clone()), false, false);
        out
    }

    fn unsupported(what: &str) -> BootError {
        BootError::Unsupported { what: what.into() }
    }

    #[test]
    fn a_failing_stage_opens_the_rescue_shell_then_retries() {
        let dir = tempfile::tempdir().unwrap();
        shell(dir.path());
        let sys = RecordingSys::new(dir.path());
        // Someone used the shell for a minute: no backoff.
        sys.push_run_lasting(0, Duration::from_secs(60));
        let mut b = boot_with(&sys, "");
        let mut tries = 0;
        let r = b.stage(&RESCUED).run(|_| {
            tries += 1;
            if tries == 1 {
                Err(unsupported("first try fails"))
            } else {
                Ok(Done::ok(tries))
            }
        });
        assert_eq!(r.unwrap(), 2);
        assert!(
            matches!(&sys.calls()[..], [Call::Run { spawn }] if spawn.program == Path::new(RESCUE_SHELL))
        );
        assert_eq!(b.timeline.stages.len(), 2);
        assert!(matches!(b.timeline.stages[0].outcome, Outcome::Failed(_)));
        assert_eq!(b.timeline.stages[1].outcome, Outcome::Ok);
    }

    #[test]
    fn a_rust_panic_in_a_stage_takes_the_same_road() {
        let dir = tempfile::tempdir().unwrap();
        shell(dir.path());
        let sys = RecordingSys::new(dir.path());
        let mut b = boot_with(&sys, "");
        let r: Result<(), BootEnd> = b.stage(&RESCUED).run(|_| panic!("boom"));
        assert!(
            matches!(r, Err(BootEnd::GaveUp { reason }) if reason.contains("internal error: boom"))
        );
        assert_eq!(
            sys.trace(),
            ["/bin/sh", "sleep 1"],
            "the rescue shell ran once (and exited at once) before the budget ran out"
        );
    }

    fn always_failing(b: &mut Boot<'_>) -> Result<(), BootEnd> {
        b.stage(&RESCUED).run(|_| Err(unsupported("always fails")))
    }

    fn sleeps(sys: &RecordingSys) -> Vec<String> {
        sys.trace()
            .into_iter()
            .filter(|l| l.starts_with("sleep"))
            .collect()
    }

    /// Issue 8 (8): a rescue shell that exits at once backs off 1 s, doubling to 30 s, and
    /// says so; a shell that was used resets the pace.
    #[test]
    fn a_shell_that_exits_at_once_backs_off_up_to_30s() {
        let dir = tempfile::tempdir().unwrap();
        shell(dir.path());
        let sys = RecordingSys::new(dir.path());
        let out = console::tests::Captured::default();
        console::init(Box::new(out.clone()), true, false);
        for _ in 0..7 {
            sys.push_run_result(0);
        }
        sys.push_run_lasting(0, Duration::from_secs(120));
        sys.push_run_result(0);
        let mut b = boot_with(&sys, "");
        b.rescue_budget = Some(9);
        assert!(matches!(
            always_failing(&mut b),
            Err(BootEnd::GaveUp { .. })
        ));
        assert_eq!(
            sleeps(&sys),
            [
                "sleep 1", "sleep 2", "sleep 4", "sleep 8", "sleep 16", "sleep 30", "sleep 30",
                // the eighth shell ran two minutes; the ninth exited at once again
                "sleep 1",
            ]
        );
        let text = out.text();
        assert!(
            text.contains(" * WARNING: the rescue shell exited at once: retrying in 30s\n"),
            "{text}"
        );
    }

    /// Issue 8 (8): a shell that cannot be executed takes the same backoff.
    #[test]
    fn a_shell_that_cannot_start_backs_off() {
        let dir = tempfile::tempdir().unwrap();
        shell(dir.path());
        let sys = RecordingSys::new(dir.path());
        sys.fail_on("/bin/sh", 8); // ENOEXEC
        let out = console::tests::Captured::default();
        console::init(Box::new(out.clone()), true, false);
        let mut b = boot_with(&sys, "");
        b.rescue_budget = Some(3);
        assert!(matches!(
            always_failing(&mut b),
            Err(BootEnd::GaveUp { .. })
        ));
        assert_eq!(sleeps(&sys), ["sleep 1", "sleep 2", "sleep 4"]);
        let text = out.text();
        assert!(
            text.contains(" * ERROR: cannot start /bin/sh: Exec format error (os error 8)\n")
                && text.contains(
                    " * WARNING: the rescue shell could not be started: retrying in 1s\n"
                ),
            "{text}"
        );
    }

    #[test]
    fn panic_option_ends_in_kernel_panic_and_no_shell_means_idle() {
        let dir = tempfile::tempdir().unwrap();
        let sys = RecordingSys::new(dir.path());
        let mut b = boot_with(&sys, "panic=10");
        let r: Result<(), BootEnd> = b.stage(&RESCUED).run(|_| Err(unsupported("no")));
        assert!(matches!(r, Err(BootEnd::KernelPanic { .. })));
        let mut b = boot_with(&sys, "");
        let r: Result<(), BootEnd> = b.stage(&RESCUED).run(|_| Err(unsupported("no")));
        assert!(matches!(r, Err(BootEnd::Idle { .. })));
        assert!(sys.trace().contains(&"idle".to_string()));
    }

    const DEGRADING: Stage = Stage {
        name: "d",
        title: Some("Degrading {}"),
        policy: Policy::Degrade {
            fallback: Some("going on without d"),
        },
        timed: true,
    };

    /// A degrading stage that fails: its line says why, the fallback is announced, the boot goes
    /// on with the default value: no rescue shell, not even with `panic=`.
    #[test]
    fn a_degrading_stage_that_fails_warns_and_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        shell(dir.path());
        let sys = RecordingSys::new(dir.path());
        let out = captured();
        let mut b = boot_with(&sys, "panic=10");
        let r: Result<Option<u8>, BootEnd> = b
            .stage(&DEGRADING)
            .detail("a thing")
            .run(|_| Err(unsupported("d broke")));
        assert_eq!(r.unwrap(), None);
        assert!(sys.trace().is_empty(), "{:?}", sys.trace());
        assert_eq!(
            b.timeline.stages[0].outcome,
            Outcome::Degraded("d broke".into())
        );
        let text = out.text();
        assert!(
            text.contains(
                " * Degrading a thing ... failed: d broke\n * WARNING: going on without d\n"
            ),
            "{text}"
        );
    }

    /// A stage that finished degraded keeps its value; its line ends ` ok` unless the step says
    /// otherwise; an untitled stage prints nothing; an untimed one has no timeline entry.
    #[test]
    fn a_degraded_finish_keeps_the_value_and_says_it_in_the_timeline() {
        let dir = tempfile::tempdir().unwrap();
        let sys = RecordingSys::new(dir.path());
        let out = captured();
        let mut b = boot_with(&sys, "");
        let v = b
            .stage(&DEGRADING)
            .detail("quietly")
            .run(|_| Ok(Done::degraded(7, "2 things skipped")));
        assert_eq!(v.unwrap(), 7);
        let v = b
            .stage(&DEGRADING)
            .detail("loudly")
            .run(|_| Ok(Done::degraded(8, "3 things skipped").shown("3 problems")));
        assert_eq!(v.unwrap(), 8);
        let untimed = Stage {
            timed: false,
            ..DEGRADING
        };
        let v = b.stage(&untimed).untitled().run(|_| Ok(Done::ok(9)));
        assert_eq!(v.unwrap(), 9);
        let outcomes: Vec<&Outcome> = b.timeline.stages.iter().map(|s| &s.outcome).collect();
        assert_eq!(
            outcomes,
            [
                &Outcome::Degraded("2 things skipped".into()),
                &Outcome::Degraded("3 things skipped".into())
            ]
        );
        let text = out.text();
        assert!(text.contains(" * Degrading quietly ... ok\n"), "{text}");
        assert!(
            text.contains(" * Degrading loudly ... failed: 3 problems\n"),
            "{text}"
        );
    }

    /// A stage whose work began on another thread is timed from there.
    #[test]
    fn a_stage_can_be_timed_from_an_earlier_start() {
        let dir = tempfile::tempdir().unwrap();
        let sys = RecordingSys::new(dir.path());
        let mut b = boot_with(&sys, "");
        sys.sleep(Duration::from_secs(3));
        b.stage(&DEGRADING)
            .untitled()
            .since(Duration::from_secs(1))
            .run(|_| Ok(Done::ok(())))
            .unwrap();
        let st = &b.timeline.stages[0];
        assert_eq!(
            (st.start, st.end),
            (Duration::from_secs(1), Duration::from_secs(3))
        );
    }
}
