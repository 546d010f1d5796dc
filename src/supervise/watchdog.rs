//! The hardware watchdog (`ramboot_watchdog[=SECONDS]`): PID 1 opens `/dev/watchdog`, sets its
//! timeout, and feeds it from the supervisor's own timer, every third of the timeout (no
//! thread: the feed is one more deadline in [`super::Supervisor::next_deadline`], so a hung
//! supervisor loop is exactly what resets the machine). Only the very end of an orderly
//! shutdown stops it — the magic `V` and close just before `reboot(2)` — so the machine stays
//! protected while services stop and filesystems unmount.

use super::machine::Journal;
use crate::decimal::Decimal;
use ramboot_sys::{Sys, Watchdog};
use std::path::PathBuf;
use std::time::Duration;

/// The device PID 1 feeds.
pub const DEVICE: &str = "/dev/watchdog";
/// `ramboot_watchdog` without a value.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// What the command line asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchdogConfig {
    pub device: PathBuf,
    /// Asked of the driver, which may round it.
    pub timeout: Duration,
}

impl WatchdogConfig {
    /// `/dev/watchdog` with this timeout.
    pub fn new(timeout: Duration) -> Self {
        WatchdogConfig {
            device: PathBuf::from(DEVICE),
            timeout,
        }
    }
}

/// An open watchdog and when it is next fed.
pub struct Feeder {
    dog: Box<dyn Watchdog>,
    device: PathBuf,
    period: Duration,
    next: Duration,
}

impl Feeder {
    /// Opens the device; `None` (after one warning line) when it cannot be.
    pub fn open(sys: &dyn Sys, config: &WatchdogConfig, journal: &mut Journal) -> Option<Feeder> {
        let device = config.device.clone();
        match sys.open_watchdog(&device, config.timeout) {
            Ok(dog) => {
                let timeout = dog.timeout();
                let period = timeout / 3;
                journal.info(format!(
                    "watchdog: {} armed with a {} s timeout, fed every {} s",
                    device.display(),
                    Decimal::secs(timeout),
                    Decimal::secs(period)
                ));
                Some(Feeder {
                    dog,
                    device,
                    period,
                    next: sys.now() + period,
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                journal.warn(format!(
                    "watchdog: ramboot_watchdog is set but {} does not exist (no driver loaded?); \
                     nothing is watched",
                    device.display()
                ));
                None
            }
            Err(e) => {
                journal.warn(format!(
                    "watchdog: cannot open {}: {e}; nothing is watched",
                    device.display()
                ));
                None
            }
        }
    }

    /// When it must next be fed.
    pub fn deadline(&self) -> Duration {
        self.next
    }

    /// Feeds it when due.
    pub fn tick(&mut self, sys: &dyn Sys, journal: &mut Journal) {
        let now = sys.now();
        if now < self.next {
            return;
        }
        if let Err(e) = self.dog.keepalive() {
            journal.warn(format!(
                "watchdog: cannot feed {}: {e}",
                self.device.display()
            ));
        }
        self.next = now + self.period;
    }

    /// The magic close: the driver stops counting.
    pub fn close(self, journal: &mut Journal) {
        let device = self.device.display().to_string();
        match self.dog.magic_close() {
            Ok(()) => journal.info(format!("watchdog: {device} stopped")),
            Err(e) => journal.warn(format!(
                "watchdog: cannot stop {device}: {e}; it may reset the machine"
            )),
        }
    }
}
