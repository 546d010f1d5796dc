//! System mode: ramboot as PID 1 of a real root (after the memfd handoff of `ramboot_init`, or
//! installed as the root's init), running it without OpenRC or under it.
//!
//! The order: the console and kernel-log logger and the panic hook as at boot; the system
//! set-up OpenRC would otherwise do ([`setup`], skipped when the inittab runs `openrc`); PID 1's
//! signals blocked, so every thread started after inherits the mask and none of them can take
//! a signal the supervisor's `signalfd` must read; the companions ([`start_companions`]: the
//! threads and sockets that serve beside the supervisor); then `supervise::run`, which never
//! returns.

pub mod setup;

use crate::boot::{self, console};
use crate::cmdline::BootPlan;
use crate::supervise::{self, event_loop::SIGNALS, Config, WatchdogConfig};
use crate::sys::Sys;

/// PID 1 in system mode. Never returns.
pub fn main(sys: &'static dyn Sys, mode_line: &str) -> ! {
    let handed_off = sys.now();
    boot::attach_kernel_log(sys);
    own_console(sys);
    log::info!("{mode_line}");
    let plan = boot::read_plan(sys);
    console::configure(plan.quiet, plan.debug);
    let mut config = config_for(&plan);
    if !setup::inittab_runs_openrc(sys, &config.inittab) {
        config.save_state = Some(setup::save_state);
    }
    config.on_ready = Some(boot::lkg::confirm);
    setup::run(sys, &config.inittab);
    if let Err(e) = sys.block_signals(&SIGNALS) {
        log::warn!("cannot block PID 1's signals before starting threads: {e}");
    }
    let config = start_companions(sys, &plan, config);
    log::debug!(
        "system mode ready to supervise after {:.1} ms",
        crate::decimal::Decimal::millis(sys.now().saturating_sub(handed_off))
    );
    supervise::run(sys, config)
}

/// PID 1 writes to its own `/dev/console`, not to the terminal it inherited (`console=`'s
/// device): when a getty on that terminal ends, the kernel hangs the terminal up and every
/// descriptor on it fails, which cut the last shutdown lines. An open of `/dev/console` itself
/// survives hangups.
fn own_console(sys: &dyn Sys) {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(rustix::fs::OFlags::NOCTTY.bits() as i32)
        .open(sys.path(std::path::Path::new("/dev/console")))
    {
        Ok(file) => console::set_console(Box::new(std::io::LineWriter::new(file))),
        Err(e) => log::warn!("cannot open /dev/console: {e}; writing to the inherited terminal"),
    }
}

/// The supervisor's configuration from the command line.
pub fn config_for(plan: &BootPlan) -> Config {
    Config {
        watchdog: plan.watchdog.map(WatchdogConfig::new),
        ..Config::default()
    }
}

/// What runs beside the supervisor, started once PID 1's signals are blocked: the hotplug
/// listener (drivers and `/dev` links for devices that appear later). The control socket joins
/// here too. Each one that cannot start says why in one line; none is fatal.
pub fn start_companions(sys: &'static dyn Sys, plan: &BootPlan, config: Config) -> Config {
    if let Err(e) = crate::hw::hotplug::spawn(sys, plan.uevent_buf_size) {
        log::warn!("no hotplug after boot: cannot listen for uevents: {e}");
    }
    config
}
