//! The entry point as PID 1: the panic hook, then the boot in a loop that never returns unless
//! `panic=` asks PID 1 to exit.

use super::{console, mode, run, runner::panic_text, Boot, BootEnd, RescueBackoff, RESCUE_SHELL};
use crate::cmdline;
use crate::sys::Sys;

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

/// The entry point when running as PID 1, for both binaries: the mode from what `/` is (said in
/// one line), then the boot or the system. Never returns; exits only when `panic=` asks.
pub fn pid1_main() -> ! {
    console::init(Box::new(std::io::stdout()), false, false);
    install_panic_hook();
    static SYS: crate::sys::RealSys = crate::sys::RealSys;
    let decision = mode::detect(&SYS);
    if decision.mode == mode::Pid1Mode::System {
        crate::system::main(&SYS, &decision.line());
    }
    log::info!("{}", decision.line());
    boot_main()
}

/// The initramfs boot, in a loop that never returns unless `panic=` asks PID 1 to exit.
fn boot_main() -> ! {
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
