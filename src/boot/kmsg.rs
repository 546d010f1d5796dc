//! The kernel log around the boot: its rate limit on writers, and the console log level the
//! boot's own kernel-log records stay below.

use super::console;
use crate::sys::Sys;
use std::path::Path;

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

/// The kernel's `console_loglevel` (first field of `/proc/sys/kernel/printk`).
pub(super) fn console_loglevel(sys: &dyn Sys) -> u8 {
    std::fs::read_to_string(sys.path(Path::new("/proc/sys/kernel/printk")))
        .ok()
        .and_then(|t| console::parse_console_loglevel(&t))
        .unwrap_or(console::DEFAULT_CONSOLE_LOGLEVEL)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::sys::RecordingSys;

    pub(in crate::boot) fn proc_sys(dir: &Path, devkmsg: &str) {
        std::fs::create_dir_all(dir.join("proc/sys/kernel")).unwrap();
        std::fs::write(dir.join("proc/sys/kernel/printk_devkmsg"), devkmsg).unwrap();
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
