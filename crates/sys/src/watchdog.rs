//! `/dev/watchdog` through the kernel's watchdog API (`linux/watchdog.h`): open (the countdown
//! starts), `WDIOC_SETTIMEOUT`, `WDIOC_KEEPALIVE`, and the magic close (`V`, then close).

use super::Watchdog;
use rustix::fd::OwnedFd;
use rustix::fs::{Mode, OFlags};
use rustix::ioctl::{ioctl, opcode, Opcode, Updater};
use std::ffi::c_int;
use std::io;
use std::path::Path;
use std::time::Duration;

const WDIOC_KEEPALIVE: Opcode = opcode::read::<c_int>(b'W', 5);
const WDIOC_SETTIMEOUT: Opcode = opcode::read_write::<c_int>(b'W', 6);
const WDIOC_GETTIMEOUT: Opcode = opcode::read::<c_int>(b'W', 7);

/// An open watchdog device.
pub struct DevWatchdog {
    fd: OwnedFd,
    timeout: Duration,
}

/// An ioctl on the watchdog that reads or writes one `int` (seconds, or unused).
fn int_ioctl<const OP: Opcode>(fd: &OwnedFd, value: c_int) -> io::Result<c_int> {
    let mut value = value;
    // SAFETY: the three watchdog opcodes used with this take a pointer to one `int`, which
    // lives for the call; the kernel does not keep the pointer.
    unsafe { ioctl(fd, Updater::<OP, c_int>::new(&mut value)) }?;
    Ok(value)
}

impl DevWatchdog {
    pub fn open(device: &Path, timeout: Duration) -> io::Result<Self> {
        let fd = rustix::fs::open(device, OFlags::WRONLY | OFlags::CLOEXEC, Mode::empty())?;
        let asked = timeout.as_secs().clamp(1, c_int::MAX as u64) as c_int;
        let took = int_ioctl::<WDIOC_SETTIMEOUT>(&fd, asked)
            .or_else(|_| int_ioctl::<WDIOC_GETTIMEOUT>(&fd, 0));
        match took {
            Ok(secs) if secs > 0 => Ok(Self {
                fd,
                timeout: Duration::from_secs(secs as u64),
            }),
            // Without a known timeout it cannot be fed safely: stop it rather than let it fire.
            other => {
                let why = match other {
                    Err(e) => e,
                    Ok(secs) => io::Error::other(format!("the driver reports a {secs} s timeout")),
                };
                let _ = Box::new(Self { fd, timeout }).magic_close();
                Err(io::Error::new(
                    why.kind(),
                    format!("cannot set its timeout ({why}); stopped it"),
                ))
            }
        }
    }
}

impl Watchdog for DevWatchdog {
    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn keepalive(&mut self) -> io::Result<()> {
        int_ioctl::<WDIOC_KEEPALIVE>(&self.fd, 0).map(drop)
    }

    fn magic_close(self: Box<Self>) -> io::Result<()> {
        rustix::io::write(&self.fd, b"V")?;
        drop(self.fd);
        Ok(())
    }
}
