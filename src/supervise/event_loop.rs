//! The loop that feeds the [`Supervisor`]: one `signalfd` for every signal PID 1 listens to
//! (SIGCHLD included), `waitpid(WNOHANG)` until nothing is left to reap (orphans too), and the
//! supervisor's next deadline as the only timeout. With nothing due it sleeps in `poll` with
//! no timeout: no wake-ups when idle.

use super::machine::{Config, Event, Outcome, Request, Supervisor};
use ramboot_sys::{Reaped, Signal, Sys};
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// What PID 1 listens to: SIGCHLD and busybox init's protocol.
pub const SIGNALS: [Signal; 7] = [
    Signal::CHILD,
    Signal::USR1,
    Signal::USR2,
    Signal::TERM,
    Signal::INT,
    Signal::HUP,
    Signal::QUIT,
];

/// Runs `sup` until it reaches an [`Outcome`]. Fails only when the signals cannot be set up
/// or waited for.
pub fn supervise(sys: &dyn Sys, sup: &mut Supervisor) -> io::Result<Outcome> {
    // Blocked before the first child exists, so no SIGCHLD or request is missed.
    let mut signals = sys.signals(&SIGNALS)?;
    sup.open_control(sys);
    guarded(|| sup.start(sys));
    loop {
        reap_all(sys, sup);
        guarded(|| sup.handle(sys, Event::Tick));
        if let Some(outcome) = sup.outcome() {
            return Ok(outcome.clone());
        }
        let timeout = sup.next_deadline().map(|t| t.saturating_sub(sys.now()));
        let (got, io) = signals.wait_with(timeout, &sup.readable())?;
        if io {
            guarded(|| sup.handle(sys, Event::Io));
        }
        for signal in got {
            if let Some(request) = Request::from_signal(signal) {
                guarded(|| sup.handle(sys, Event::Request(request)));
            }
        }
    }
}

/// Reaps until no ended child is left, feeding each to the supervisor.
fn reap_all(sys: &dyn Sys, sup: &mut Supervisor) {
    loop {
        match sys.reap() {
            Ok(Reaped::Exited { pid, status }) => {
                guarded(|| sup.handle(sys, Event::Exited { pid, status }))
            }
            Ok(Reaped::Running) => return,
            Ok(Reaped::NoChildren) => return guarded(|| sup.handle(sys, Event::NoChildren)),
            Err(e) => return log::error!("waitpid: {e}"),
        }
    }
}

/// A panic in the supervisor is logged and the loop goes on: PID 1 must not die of it.
fn guarded(step: impl FnOnce()) {
    if catch_unwind(AssertUnwindSafe(step)).is_err() {
        log::error!("supervisor step panicked; going on");
    }
}

/// PID 1's entry: Ctrl-Alt-Del turned into SIGINT, then [`supervise`] for ever. When the end
/// could not be carried out (`reboot(2)` failed) or the signals cannot be set up, it says so
/// and idles.
pub fn run(sys: &dyn Sys, config: Config) -> ! {
    let config = Config {
        pid1: true,
        ..config
    };
    if let Err(e) = sys.set_ctrl_alt_del(false) {
        log::warn!("cannot turn Ctrl-Alt-Del into SIGINT: {e}");
    }
    let mut sup = Supervisor::new(config);
    match supervise(sys, &mut sup) {
        Ok(_) => log::error!("the system could not be taken down; idling"),
        Err(e) => log::error!("cannot supervise: {e}; idling"),
    }
    loop {
        sys.idle_forever();
    }
}

/// A supervisor that is not PID 1 (tests, containers): it becomes a child subreaper, so
/// orphans below it are re-parented to it and reaped, and at the end it reports the outcome
/// instead of unmounting and rebooting.
pub fn run_as_subreaper(sys: &dyn Sys, config: Config) -> io::Result<Outcome> {
    sys.set_child_subreaper()?;
    let mut sup = Supervisor::new(Config {
        pid1: false,
        ..config
    });
    supervise(sys, &mut sup)
}
