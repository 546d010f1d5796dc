//! Hotplug after boot, in system mode: what busybox `mdev` and OpenRC's `hwdrivers` do for
//! devices that appear while the system runs (a USB stick, a Wi-Fi dongle), without them.
//!
//! One mechanism with the boot's: the same uevent socket ([`Sys::uevents`]), the same
//! modalias → module resolution and loader ([`super::coldplug::Hotplug`], [`ModuleLoader`],
//! so `blacklist=`, `modprobe.d` and module options apply as at boot), reading
//! `/lib/modules/$(uname -r)` of the running root (a diskless root links it to the modloop
//! at `/.modloop`). Device nodes come from devtmpfs; this adds the links mdev's stock
//! configuration makes: `/dev/usbdisk` for the first USB-attached disk (`sd*` whose sysfs path
//! goes through a USB bus, `usbN`) and `/dev/usbdisk<N>` for its partitions, `/dev/cdrom` for
//! the first `sr*`; a link whose device goes away is removed.
//!
//! When listening starts, devices already present are handled once (drivers for their
//! modaliases, links for their disks), as `mdev -s` and `hwdrivers` would; a netlink overflow
//! repeats that pass. One log line per device handled, one warning line per failure.
//!
//! [`spawn`] runs it on its own thread, which blocks PID 1's signals first: the supervisor
//! reads them through a `signalfd`, and a signal the kernel handed to this thread would be
//! dropped (PID 1 has no handlers).

use super::block::{self, BlockDevice};
use super::coldplug::{self, Hotplug};
use super::modules::ModuleLoader;
use crate::sys::{LinkWatch, Sys, Uevent, UeventRecv, UeventSource};
use std::io;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

/// How long one wait on the socket lasts: long, so an idle system does not wake up for it.
const WAIT: Duration = Duration::from_secs(24 * 3600);

/// A log line: its level and text.
pub type Line = (log::Level, String);

/// Handles device events for the running system.
pub struct Listener<'a, 'l> {
    sys: &'a dyn Sys,
    loader: Option<&'a ModuleLoader<'l>>,
    modules: Hotplug,
}

impl<'a, 'l> Listener<'a, 'l> {
    /// `loader` is `None` when the root has no module index: links are still made.
    pub fn new(sys: &'a dyn Sys, loader: Option<&'a ModuleLoader<'l>>) -> Self {
        Listener {
            sys,
            loader,
            modules: Hotplug::new(),
        }
    }

    /// The devices present now: drivers for their modaliases, links for their disks.
    pub fn coldplug(&mut self) -> Vec<Line> {
        let mut lines = self.load("devices present", coldplug::scan_modaliases(self.sys));
        for dev in block::list(self.sys) {
            let devpath = sysfs_devpath(self.sys, &dev.name);
            lines.extend(self.link(&dev, devpath.as_deref()));
        }
        lines
    }

    /// One uevent.
    pub fn handle(&mut self, ev: &Uevent) -> Vec<Line> {
        let mut lines = Vec::new();
        if ev.action == "add" {
            if let Some(alias) = ev.get("MODALIAS") {
                lines = self.load(&ev.devpath, [alias.to_string()]);
            }
        }
        if ev.get("SUBSYSTEM") == Some("block") {
            match ev.action.as_str() {
                "add" | "change" => {
                    if let Some(dev) = BlockDevice::from_uevent(self.sys, ev) {
                        lines.extend(self.link(&dev, Some(&ev.devpath)));
                    }
                }
                "remove" => {
                    if let Some(name) = ev.get("DEVNAME") {
                        lines.extend(self.unlink(name.rsplit('/').next().unwrap_or(name)));
                    }
                }
                _ => {}
            }
        }
        lines
    }

    /// Waits at most `wait` for the next event and handles it (an overflow: the sysfs pass).
    pub fn next(&mut self, src: &mut dyn UeventSource, wait: Duration) -> io::Result<Vec<Line>> {
        Ok(self.on(src.recv(wait)?))
    }

    /// Handles what the socket gave.
    pub fn on(&mut self, recv: UeventRecv) -> Vec<Line> {
        match recv {
            UeventRecv::Event(ev) => self.handle(&ev),
            UeventRecv::Overflow => {
                let mut lines = vec![(
                    log::Level::Warn,
                    "hotplug: uevent buffer overflow; re-scanning sysfs".to_string(),
                )];
                lines.extend(self.coldplug());
                lines
            }
            UeventRecv::Timeout => Vec::new(),
        }
    }

    fn load(&mut self, what: &str, aliases: impl IntoIterator<Item = String>) -> Vec<Line> {
        let Some(loader) = self.loader else {
            return Vec::new();
        };
        let report = self.modules.load(loader, aliases);
        let mut lines = Vec::new();
        if !report.loaded.is_empty() {
            lines.push((
                log::Level::Info,
                format!("hotplug: loaded {} for {what}", report.loaded.join(", ")),
            ));
        }
        for (module, why) in &report.failed {
            lines.push((
                log::Level::Warn,
                format!("hotplug: cannot load {module} for {what}: {why}"),
            ));
        }
        lines
    }

    /// The link mdev would make for `dev`, if any. `devpath` is its sysfs path (`/devices/…`).
    fn link(&self, dev: &BlockDevice, devpath: Option<&str>) -> Vec<Line> {
        let name = if dev.name.starts_with("sr") {
            "cdrom".to_string()
        } else if dev.name.starts_with("sd") && devpath.is_some_and(through_usb) {
            match (dev.partition, &dev.parent) {
                (None, _) => "usbdisk".to_string(),
                // Partitions follow their disk: only the disk /dev/usbdisk names gets them.
                (Some(n), Some(disk)) if self.points_to("usbdisk", disk) => format!("usbdisk{n}"),
                _ => return Vec::new(),
            }
        } else {
            return Vec::new();
        };
        // The first device keeps the name while it is there (mdev's links do the same).
        if self.points_to(&name, &dev.name) || self.taken(&name) {
            return Vec::new();
        }
        let host = self.sys.path(&Path::new("/dev").join(&name));
        let made = remove_link(&host).and_then(|()| std::os::unix::fs::symlink(&dev.name, &host));
        vec![match made {
            Ok(()) => (
                log::Level::Info,
                format!("hotplug: /dev/{name} -> {}", dev.name),
            ),
            Err(e) => (
                log::Level::Warn,
                format!("hotplug: cannot link /dev/{name} to {}: {e}", dev.name),
            ),
        }]
    }

    /// Removes the links to `device`, which went away.
    fn unlink(&self, device: &str) -> Vec<Line> {
        let Ok(entries) = std::fs::read_dir(self.sys.path(Path::new("/dev"))) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n == "cdrom" || n.starts_with("usbdisk"))
            .filter(|n| self.points_to(n, device))
            .collect();
        crate::sys::sort::sort(&mut names);
        names
            .into_iter()
            .map(|name| {
                let host = self.sys.path(&Path::new("/dev").join(&name));
                match std::fs::remove_file(host) {
                    Ok(()) => (
                        log::Level::Info,
                        format!("hotplug: /dev/{name} removed ({device} is gone)"),
                    ),
                    Err(e) => (
                        log::Level::Warn,
                        format!("hotplug: cannot remove /dev/{name}: {e}"),
                    ),
                }
            })
            .collect()
    }

    fn points_to(&self, link: &str, device: &str) -> bool {
        std::fs::read_link(self.sys.path(&Path::new("/dev").join(link)))
            .is_ok_and(|t| t == Path::new(device))
    }

    /// A link of that name whose device is still there.
    fn taken(&self, link: &str) -> bool {
        let host = self.sys.path(&Path::new("/dev").join(link));
        host.symlink_metadata().is_ok() && host.exists()
    }
}

/// A stale link (or nothing) out of the way.
fn remove_link(host: &Path) -> io::Result<()> {
    match std::fs::remove_file(host) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Whether a sysfs device path goes through a USB bus (`…/usb1/1-1/…`).
pub fn through_usb(devpath: &str) -> bool {
    Path::new(devpath).components().any(|c| match c {
        Component::Normal(n) => n
            .to_str()
            .and_then(|n| n.strip_prefix("usb"))
            .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit())),
        _ => false,
    })
}

/// `/sys/class/block/<name>` resolved to its `/devices/…` path.
fn sysfs_devpath(sys: &dyn Sys, name: &str) -> Option<String> {
    let sys_root = std::fs::canonicalize(sys.path(Path::new("/sys"))).ok()?;
    let real =
        std::fs::canonicalize(sys.path(&PathBuf::from("/sys/class/block").join(name))).ok()?;
    let rel = real.strip_prefix(sys_root).ok()?;
    Some(format!("/{}", rel.display()))
}

/// Logs what [`Listener`] said.
pub fn say(lines: Vec<Line>) {
    for (level, line) in lines {
        log::log!(level, "{line}");
    }
}

/// Listens for device events on a thread of its own, for the life of the system. The socket is
/// opened here, so an error says why there will be no hotplug; the module index is read on
/// the thread (a root without one gets links, no drivers, and one warning).
pub fn spawn(sys: &'static dyn Sys, uevent_buffer: usize) -> io::Result<()> {
    let mut src = sys.uevents(uevent_buffer)?;
    std::thread::Builder::new()
        .name("hotplug".into())
        .spawn(move || serve(sys, src.as_mut()))?;
    Ok(())
}

/// The thread's life: signals blocked, the index read, the present devices, then events.
fn serve(sys: &dyn Sys, src: &mut dyn UeventSource) {
    if let Err(e) = sys.block_signals(&crate::supervise::event_loop::SIGNALS) {
        log::warn!("hotplug: cannot block signals on its thread: {e}");
    }
    let loader = ModuleLoader::open(sys);
    if let Err(e) = &loader {
        log::warn!("hotplug: {e}; new devices get their /dev links but no drivers");
    }
    let mut listener = Listener::new(sys, loader.as_ref().ok());
    say(listener.coldplug());
    // Said after the pass over the present devices: from here the thread sleeps until an event.
    match &loader {
        Ok(l) => log::info!(
            "hotplug: listening for devices (modules from {})",
            l.db().dir.display()
        ),
        Err(_) => log::info!("hotplug: listening for devices"),
    }
    loop {
        match listener.next(src, WAIT) {
            Ok(lines) => say(lines),
            Err(e) => return log::warn!("hotplug: cannot read uevents: {e}; hotplug stops"),
        }
    }
}

/// The network stage's link watch: a NIC can appear after the device search ended (the Pi's
/// smsc95xx/lan78xx behind a USB hub that enumerates late), so while the stage waits, devices
/// present and arriving get their drivers as here. `loaded_at`: when the last driver loaded,
/// for the timeline.
pub struct NicWatch<'a, 'l> {
    links: Box<dyn LinkWatch>,
    src: Option<Box<dyn UeventSource>>,
    listener: Listener<'a, 'l>,
    pub loaded_at: Option<Duration>,
}

impl<'a, 'l> NicWatch<'a, 'l> {
    /// Listens, then loads drivers for the devices present (without a loader or a uevent socket
    /// it is `links` alone).
    pub fn open(
        sys: &'a dyn Sys,
        loader: Option<&'a ModuleLoader<'l>>,
        links: Box<dyn LinkWatch>,
    ) -> Self {
        let src = loader.and_then(|_| sys.uevents(1 << 20).ok());
        let mut w = NicWatch {
            links,
            listener: Listener::new(sys, loader),
            loaded_at: None,
            src: None,
        };
        if src.is_some() {
            let lines = w.listener.coldplug();
            w.note(lines);
        }
        w.src = src;
        w
    }

    fn note(&mut self, lines: Vec<Line>) {
        if lines.iter().any(|(level, _)| *level == log::Level::Info) {
            self.loaded_at = Some(self.listener.sys.now());
        }
        say(lines);
    }
}

impl LinkWatch for NicWatch<'_, '_> {
    fn wait(&mut self, timeout: Duration) -> io::Result<bool> {
        let Some(src) = self.src.as_mut() else {
            return self.links.wait(timeout);
        };
        match self.links.wait_or_uevent(&mut **src, timeout)? {
            None => Ok(true),
            Some(UeventRecv::Timeout) => Ok(false),
            Some(recv) => {
                let lines = self.listener.on(recv);
                self.note(lines);
                Ok(true)
            }
        }
    }
}
