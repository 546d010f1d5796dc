//! The stage runner: the one place where a stage's failure policy acts.
//!
//! A stage ([`Stage`], all of them in [`super::stages`]) is run by [`Boot::stage`]: its console
//! line opens, the step runs (a Rust panic in it is caught and becomes an error), the line closes,
//! the timeline gets the stage with its outcome, and on an error the declared [`Policy`] decides:
//! the rescue shell and the stage again, a warning and the stage's fallback, or — only with
//! `panic=` — the end of PID 1 so the kernel panics.

use super::console;
use super::timeline::Outcome;
use super::{Boot, BootEnd, BootError};
use crate::cmdline::FailPolicy;
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
    until: Option<Duration>,
}

impl<'a> Boot<'a> {
    /// Sets up a run of `stage`; [`StageRun::run`] runs it.
    pub fn stage<'b>(&'b mut self, stage: &'b Stage) -> StageRun<'b, 'a> {
        StageRun {
            boot: self,
            title: stage.title.map(str::to_string),
            stage,
            since: None,
            until: None,
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

    /// The stage's work ended at `end` (on another thread, joined later): the first run is timed
    /// up to there, not to when its result was taken.
    pub fn until(mut self, end: Duration) -> Self {
        self.until = Some(end);
        self
    }

    /// Runs `step` under the stage's policy. `Err` only when the boot ends here (`panic=`, or the
    /// rescue budget of a test ran out); a degraded stage that failed gives `T::default()`.
    pub fn run<T: Default>(
        self,
        mut step: impl FnMut(&mut Boot<'a>) -> Result<Done<T>, BootError>,
    ) -> Result<T, BootEnd> {
        // The runner itself is not generic (one copy in the init build, not one per stage): the
        // step's value goes around it.
        let mut value = None;
        self.run_step(&mut |b| {
            step(b).map(|done| {
                value = Some(done.value);
                Done {
                    value: (),
                    degraded: done.degraded,
                    failed_line: done.failed_line,
                }
            })
        })?;
        Ok(value.unwrap_or_default())
    }

    /// [`StageRun::run`] for a step whose value went elsewhere.
    fn run_step(
        self,
        step: &mut dyn FnMut(&mut Boot<'a>) -> Result<Done<()>, BootError>,
    ) -> Result<(), BootEnd> {
        let StageRun {
            boot,
            stage,
            title,
            mut since,
            mut until,
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
            let end = until.take().unwrap_or_else(|| boot.sys.now());
            let e = match result {
                Ok(done) => {
                    if title.is_some() {
                        console::eend(done.failed_line.as_deref().map_or(Ok(()), Err));
                    }
                    let outcome = done.degraded.map_or(Outcome::Ok, Outcome::Degraded);
                    boot.record_stage(stage, start, end, outcome);
                    return Ok(());
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
                Next::GoOn => return Ok(()),
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
pub(crate) mod tests {
    use super::*;
    use crate::boot::RESCUE_SHELL;
    use crate::cmdline;
    use crate::sys::{Call, RecordingSys, Sys};
    use std::path::Path;

    const RESCUED: Stage = Stage {
        name: "x",
        title: Some("Doing x"),
        policy: Policy::RescueAndRetry,
        timed: true,
    };

    pub(in crate::boot) fn boot_with<'a>(sys: &'a RecordingSys, cmdline: &str) -> Boot<'a> {
        let mut b = Boot::new(sys, cmdline::plan(&cmdline::parse(cmdline)), Duration::ZERO);
        b.rescue_budget = Some(1);
        b
    }

    pub(in crate::boot) fn shell(dir: &Path) {
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        std::fs::write(dir.join("bin/sh"), b"").unwrap();
    }

    fn captured() -> console::tests::Captured {
        let out = console::tests::Captured::default();
        console::init(Box::new(out.clone()), false, false);
        out
    }

    /// A stage's error with `what` as its text.
    fn unsupported(what: &str) -> BootError {
        BootError::Panic {
            message: what.into(),
        }
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

    pub(in crate::boot) fn always_failing(b: &mut Boot<'_>) -> Result<(), BootEnd> {
        b.stage(&RESCUED).run(|_| Err(unsupported("always fails")))
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
            Outcome::Degraded("internal error: d broke".into())
        );
        let text = out.text();
        assert!(
            text.contains(
                " * Degrading a thing ... failed: internal error: d broke\n * WARNING: going on without d\n"
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
