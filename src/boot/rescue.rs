//! The rescue shell: where a failed stage with the rescue-and-retry policy waits for someone,
//! paced so that a shell that cannot start or exits at once never makes PID 1 spin.

use super::{console, Boot, BootEnd, RESCUE_SHELL};
use crate::sys::{Spawn, Sys};
use std::io;
use std::path::Path;
use std::time::Duration;

impl Boot<'_> {
    /// The rescue shell, then `Ok` to retry; without a shell PID 1 waits idle.
    pub(super) fn rescue(&mut self, reason: &str) -> Result<(), BootEnd> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::runner::tests::{always_failing, boot_with, shell};
    use crate::sys::RecordingSys;

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
}
