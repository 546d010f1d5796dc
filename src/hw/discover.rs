//! Waiting for the devices a boot needs: nlplug-findfs's job, without fixed sleeps.
//!
//! The uevent socket is opened first, then sysfs is walked (coldplug: modules for present devices,
//! then every block device present), so nothing that appears in between is lost. After that the
//! driver waits on uevents: modaliases load modules, block devices are identified and — when
//! looking for boot media — mounted at `/media/<dev>` and scanned. It stops the moment the goal is
//! met; otherwise when no event arrived for the idle timeout (nlplug's 5 s, plus `usbdelay`, plus
//! 1 s once `usb_storage` loaded, here or by the boot drivers loading beside the search). Once a
//! boot repository is found but an apkovl is still wanted, the idle timeout drops to the quiet
//! period (nlplug's 250 ms, or `usbdelay`). A netlink overflow triggers a sysfs re-scan.
//!
//! Devices present at coldplug are handled in natural name order, so which apkovl and which
//! repositories are found does not depend on event timing; later ones in arrival order. Every
//! device's appearance time and the moment the goal was met are recorded for the boot timeline.

use super::block::{self, natural_cmp, BlockDevice, DeviceInfo};
use super::coldplug::{scan_modaliases, Hotplug};
use super::modules::{LoadReport, ModuleLoader};
use super::mount::{self, load_fs_modules, mount_media, Mounted};
use super::spec::DeviceSpec;
use crate::media::{self, ApkovlCandidate, ApkovlChoice, Offer, ScanOptions, Verdict};
use crate::sys::{Sys, Uevent, UeventRecv, UeventSource};
use std::path::PathBuf;
use std::time::Duration;

/// What the boot needs from the devices.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Goal {
    /// `root=`: find this device (identified, not mounted).
    Root(DeviceSpec),
    /// Diskless: mount and scan every filesystem until what is wanted was found.
    /// With neither wanted, every device present at coldplug is scanned and the wait ends there.
    Media {
        want_repository: bool,
        want_apkovl: bool,
    },
    /// Coldplug only: load drivers, list devices, do not wait.
    Drivers,
}

/// Tuning of [`discover`].
#[derive(Clone, Debug)]
pub struct DiscoverConfig {
    pub goal: Goal,
    /// Give up after this long without a uevent (nlplug: 5 s).
    pub idle_timeout: Duration,
    /// After a boot repository is found while an apkovl is still wanted (nlplug: 250 ms / usbdelay).
    pub quiet_period: Duration,
    /// Added to the idle timeout once `usb_storage` is loaded (nlplug: 1 s).
    pub usb_storage_grace: Duration,
    /// Netlink receive buffer (nlplug: 4 MiB, `uevent_buf_size=`).
    pub uevent_buffer: usize,
    /// `modloop=` and the kernel release, for the media scan.
    pub scan: ScanOptions,
    /// Preferred apkovl name stem, see [`media::choose_apkovl`].
    pub hostname: Option<String>,
    /// Leave the CPU-feature modules (`cpu:` modaliases: crypto and checksum accelerations)
    /// out of coldplug and hand their modaliases back in [`Discovery::deferred_modaliases`]:
    /// none helps to find a disk, and each costs a module load before the search can go on.
    pub defer_cpu_features: bool,
}

impl DiscoverConfig {
    pub fn new(goal: Goal) -> Self {
        DiscoverConfig {
            goal,
            idle_timeout: Duration::from_secs(5),
            quiet_period: Duration::from_millis(250),
            usb_storage_grace: Duration::from_secs(1),
            uevent_buffer: 4 << 20,
            scan: ScanOptions::default(),
            hostname: None,
            defer_cpu_features: false,
        }
    }

    /// `usbdelay=N`: the quiet period becomes N seconds and the idle timeout grows by as much.
    pub fn with_usbdelay(mut self, delay: Duration) -> Self {
        self.quiet_period = delay;
        self.idle_timeout += delay;
        self
    }
}

/// One block device seen during discovery.
#[derive(Clone, Debug)]
pub struct SeenDevice {
    pub info: DeviceInfo,
    /// `CLOCK_BOOTTIME` when it was first seen.
    pub appeared: Duration,
    /// Where it is mounted, when it was mounted and kept.
    pub mounted: Option<Mounted>,
    /// What it offered (media goal only).
    pub offer: Option<Offer>,
    /// Why it could not be mounted or scanned.
    pub error: Option<String>,
}

/// How the wait ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// Everything the goal asked for was found.
    Found,
    /// A boot repository was found and the quiet period passed without an apkovl (nlplug's
    /// success case for media without an overlay).
    Settled,
    /// The idle timeout ran out first.
    TimedOut,
    /// No uevent source: one sysfs pass only.
    NoUevents,
}

impl std::fmt::Display for Ending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Found => "everything found",
            Self::Settled => "settled",
            Self::TimedOut => "timed out",
            Self::NoUevents => "no uevents, one pass over sysfs",
        })
    }
}

/// Everything discovery found, for the boot and its timeline.
#[derive(Clone, Debug)]
pub struct Discovery {
    pub started: Duration,
    pub coldplug_done: Duration,
    /// When the goal was met.
    pub ready_at: Option<Duration>,
    pub finished: Duration,
    pub ending: Ending,
    /// In the order they were handled.
    pub devices: Vec<SeenDevice>,
    /// `Goal::Root`: the device.
    pub root: Option<DeviceInfo>,
    /// Boot repositories (guest paths) on kept media, up to two levels deep (Alpine's
    /// `find /media/* -maxdepth 3 -name .boot_repository`), media in natural device order.
    pub boot_repositories: Vec<PathBuf>,
    /// Every apkovl found, and the one chosen.
    pub apkovls: Vec<ApkovlCandidate>,
    pub apkovl: Option<ApkovlChoice>,
    /// Modloop candidates (guest paths), best first.
    pub modloops: Vec<PathBuf>,
    /// Package cache directories (guest paths).
    pub caches: Vec<PathBuf>,
    /// Modules loaded by coldplug and hotplug.
    pub modules: LoadReport,
    /// Modaliases of devices no module matched (retried once the modloop adds modules).
    pub unmatched_modaliases: Vec<String>,
    /// Present devices' modaliases left for later ([`DiscoverConfig::defer_cpu_features`]).
    pub deferred_modaliases: Vec<String>,
    pub overflows: u32,
    pub warnings: Vec<String>,
}

impl Discovery {
    /// The media still mounted (kept), in natural device order.
    pub fn kept_media(&self) -> Vec<&Mounted> {
        let mut v: Vec<&Mounted> = self
            .devices
            .iter()
            .filter_map(|d| d.mounted.as_ref())
            .collect();
        crate::sys::sort::sort_by(&mut v, |a, b| natural_cmp(&a.device, &b.device));
        v
    }
}

struct Driver<'a, 'l> {
    sys: &'a dyn Sys,
    loader: Option<&'a ModuleLoader<'l>>,
    cfg: &'a DiscoverConfig,
    hotplug: Hotplug,
    out: Discovery,
    grace: Duration,
}

impl Driver<'_, '_> {
    fn found_repository(&self) -> bool {
        self.out.devices.iter().any(|d| {
            d.offer
                .as_ref()
                .is_some_and(|o| !o.boot_repositories.is_empty())
        })
    }

    fn found_apkovl(&self) -> bool {
        self.out
            .devices
            .iter()
            .any(|d| d.offer.as_ref().is_some_and(|o| !o.apkovls.is_empty()))
    }

    fn goal_met(&self) -> bool {
        match &self.cfg.goal {
            Goal::Root(_) => self.out.root.is_some(),
            Goal::Media {
                want_repository,
                want_apkovl,
            } => {
                (*want_repository || *want_apkovl)
                    && (!want_repository || self.found_repository())
                    && (!want_apkovl || self.found_apkovl())
            }
            Goal::Drivers => true,
        }
    }

    /// Only the coldplug pass counts for goals that want nothing in particular.
    fn wait_wanted(&self) -> bool {
        match &self.cfg.goal {
            Goal::Root(_) => true,
            Goal::Media {
                want_repository,
                want_apkovl,
            } => *want_repository || *want_apkovl,
            Goal::Drivers => false,
        }
    }

    fn load_modaliases(&mut self, aliases: Vec<String>) {
        let Some(loader) = self.loader else { return };
        let r = self.hotplug.load(loader, aliases);
        if r.loaded.iter().any(|m| m == "usb_storage") {
            self.grace = self.cfg.usb_storage_grace;
        }
        self.out.modules.merge(r);
    }

    /// Drivers for the devices present, then again for the devices those drivers made (a bus
    /// driver such as virtio_pci registers its children while it loads: their uevents can come
    /// before the socket is read, and a goal that waits for nothing never reads them), until a
    /// pass loads nothing. The NIC behind virtio-pci is found this way when only the network
    /// is needed.
    fn coldplug(&mut self) {
        while let Some(loader) = self.loader {
            let mut aliases = scan_modaliases(self.sys);
            if self.cfg.defer_cpu_features {
                aliases.retain(|a| {
                    let cpu = a.starts_with("cpu:");
                    if cpu && !self.out.deferred_modaliases.contains(a) {
                        self.out.deferred_modaliases.push(a.clone());
                    }
                    !cpu
                });
            }
            let r = self.hotplug.load(loader, aliases);
            if r.loaded.iter().any(|m| m == "usb_storage") {
                self.grace = self.cfg.usb_storage_grace;
            }
            let more = !r.loaded.is_empty();
            self.out.modules.merge(r);
            if !more {
                break;
            }
        }
        for dev in block::list(self.sys) {
            self.consider(dev);
        }
    }

    /// Identifies a block device and acts on it per the goal.
    fn consider(&mut self, dev: BlockDevice) {
        let now = self.sys.now();
        let existing = self
            .out
            .devices
            .iter()
            .position(|d| d.info.dev.name == dev.name);
        if let Some(i) = existing {
            // A `change` (card inserted) re-probes devices not yet mounted; the rest is done.
            if self.out.devices[i].mounted.is_some() || self.out.devices[i].info.probe.is_some() {
                return;
            }
        }
        let info = block::identify(self.sys, &dev);
        let mut seen = SeenDevice {
            info,
            appeared: now,
            mounted: None,
            offer: None,
            error: None,
        };
        if let Some(i) = existing {
            seen.appeared = self.out.devices[i].appeared;
        }
        match &self.cfg.goal {
            Goal::Root(spec) if self.out.root.is_none() && spec.matches(&seen.info) => {
                log::info!("root device {spec} is /dev/{}", seen.info.dev.name);
                self.out.root = Some(seen.info.clone());
            }
            Goal::Media { .. }
                if seen.info.probe.is_some()
                    || mount::mounted_at(self.sys, &seen.info.dev.name).is_some() =>
            {
                self.scan_media(&mut seen)
            }
            _ => {}
        }
        match existing {
            Some(i) => self.out.devices[i] = seen,
            None => self.out.devices.push(seen),
        }
    }

    fn scan_media(&mut self, seen: &mut SeenDevice) {
        // Load the filesystem's modules here so they show in the report (mount_media then finds
        // them present).
        if let (Some(l), Some(p)) = (self.loader, &seen.info.probe) {
            self.out.modules.merge(load_fs_modules(l, p.fstype, &[]));
        }
        let m = match mount_media(self.sys, self.loader, &seen.info) {
            Ok(m) => m,
            Err(e) => {
                // As in nlplug, a filesystem that does not mount is skipped, not fatal.
                log::debug!("{e}");
                seen.error = Some(e.to_string());
                return;
            }
        };
        let offer = match media::scan(&self.sys.path(&m.mountpoint), &self.cfg.scan) {
            Ok(o) => o,
            Err(e) => {
                seen.error = Some(e.to_string());
                Offer::default()
            }
        };
        if offer.verdict() == Verdict::Unmount && !m.already {
            if let Err(e) = self.sys.umount(&m.mountpoint, false) {
                self.out
                    .warnings
                    .push(format!("cannot unmount {}: {e}", m.mountpoint.display()));
            }
        } else {
            seen.mounted = Some(m);
        }
        seen.offer = Some(offer);
    }

    fn handle_batch(&mut self, events: Vec<Uevent>) {
        let aliases: Vec<String> = events
            .iter()
            .filter(|e| e.action == "add")
            .filter_map(|e| e.get("MODALIAS").map(str::to_string))
            .collect();
        if !aliases.is_empty() {
            self.load_modaliases(aliases);
        }
        for ev in &events {
            if ev.get("SUBSYSTEM") == Some("block") && (ev.action == "add" || ev.action == "change")
            {
                if let Some(dev) = BlockDevice::from_uevent(self.sys, ev) {
                    self.consider(dev);
                }
            }
        }
    }

    fn rescan(&mut self) {
        self.out.overflows += 1;
        log::warn!("uevent buffer overflow: re-scanning sysfs (raise uevent_buf_size=)");
        self.coldplug();
    }

    fn mark_ready(&mut self) {
        if self.out.ready_at.is_none() && self.goal_met() {
            self.out.ready_at = Some(self.sys.now());
        }
    }

    fn wait(&mut self, src: &mut dyn UeventSource) -> Ending {
        let mut last_activity = self.sys.now();
        loop {
            if self.goal_met() {
                return Ending::Found;
            }
            // `usb_storage` from `modules=` loads beside the search: its grace counts too.
            if self.loader.is_some_and(|l| l.has_loaded("usb_storage")) {
                self.grace = self.cfg.usb_storage_grace;
            }
            let quiet = matches!(
                self.cfg.goal,
                Goal::Media {
                    want_repository: true,
                    want_apkovl: true
                }
            ) && self.found_repository();
            let idle = if quiet {
                self.cfg.quiet_period
            } else {
                self.cfg.idle_timeout + self.grace
            };
            let now = self.sys.now();
            let deadline = last_activity + idle;
            if now >= deadline {
                return if quiet {
                    Ending::Settled
                } else {
                    Ending::TimedOut
                };
            }
            match src.recv(deadline - now) {
                Ok(UeventRecv::Event(ev)) => {
                    // Drain what is queued so modules for a burst of devices load in parallel.
                    let mut batch = vec![ev];
                    let mut overflow = false;
                    while batch.len() < 256 {
                        match src.recv(Duration::ZERO) {
                            Ok(UeventRecv::Event(ev)) => batch.push(ev),
                            Ok(UeventRecv::Overflow) => {
                                overflow = true;
                                break;
                            }
                            _ => break,
                        }
                    }
                    self.handle_batch(batch);
                    if overflow {
                        self.rescan();
                    }
                    last_activity = self.sys.now();
                }
                Ok(UeventRecv::Overflow) => {
                    self.rescan();
                    last_activity = self.sys.now();
                }
                Ok(UeventRecv::Timeout) => {}
                Err(e) => {
                    self.out
                        .warnings
                        .push(format!("uevent receive failed: {e}"));
                    return Ending::NoUevents;
                }
            }
            self.mark_ready();
        }
    }
}

/// Runs discovery for `cfg.goal`. Never fails: problems end up in [`Discovery::warnings`] and an
/// unmet goal shows as `ready_at == None`. `loader` is `None` when the kernel has no modules.
pub fn discover(
    sys: &dyn Sys,
    loader: Option<&ModuleLoader<'_>>,
    cfg: &DiscoverConfig,
) -> Discovery {
    // Listen before looking, so a device appearing during the walk is not missed.
    match sys.uevents(cfg.uevent_buffer) {
        Ok(src) => discover_with(sys, loader, cfg, Some(src)),
        Err(e) => {
            let mut d = discover_with(sys, loader, cfg, None);
            d.warnings
                .insert(0, format!("cannot listen for uevents: {e}"));
            d
        }
    }
}

/// [`discover`] with a uevent source the caller opened (for example before loading the boot
/// drivers, so that nothing they make appear is missed), or none (one sysfs pass).
pub fn discover_with(
    sys: &dyn Sys,
    loader: Option<&ModuleLoader<'_>>,
    cfg: &DiscoverConfig,
    src: Option<Box<dyn UeventSource>>,
) -> Discovery {
    let started = sys.now();
    let mut d = Driver {
        sys,
        loader,
        cfg,
        hotplug: Hotplug::new(),
        grace: Duration::ZERO,
        out: Discovery {
            started,
            coldplug_done: started,
            ready_at: None,
            finished: started,
            ending: Ending::Found,
            devices: Vec::new(),
            root: None,
            boot_repositories: Vec::new(),
            apkovls: Vec::new(),
            apkovl: None,
            modloops: Vec::new(),
            caches: Vec::new(),
            modules: LoadReport::default(),
            unmatched_modaliases: Vec::new(),
            deferred_modaliases: Vec::new(),
            overflows: 0,
            warnings: Vec::new(),
        },
    };
    d.coldplug();
    d.out.coldplug_done = sys.now();
    d.mark_ready();
    d.out.ending = if !d.wait_wanted() {
        d.out.ready_at.get_or_insert(d.out.coldplug_done);
        Ending::Found
    } else {
        match src {
            Some(mut s) => d.wait(s.as_mut()),
            None if d.goal_met() => Ending::Found,
            None => Ending::NoUevents,
        }
    };
    d.mark_ready();
    d.out.finished = sys.now();
    d.out.unmatched_modaliases = d.hotplug.unmatched();
    collect(sys, &mut d.out, cfg);
    d.out
}

/// Gathers what the kept media offer, in natural device order.
fn collect(sys: &dyn Sys, out: &mut Discovery, cfg: &DiscoverConfig) {
    let mut kept: Vec<(&SeenDevice, &Mounted, &Offer)> = out
        .devices
        .iter()
        .filter_map(|d| Some((d, d.mounted.as_ref()?, d.offer.as_ref()?)))
        .collect();
    crate::sys::sort::sort_by(&mut kept, |a, b| natural_cmp(&a.1.device, &b.1.device));
    let (mut repos, mut ovls, mut loops, mut caches) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (_, m, offer) in kept {
        for r in media::deep_boot_repositories(&sys.path(&m.mountpoint)) {
            repos.push(m.mountpoint.join(r));
        }
        ovls.extend(offer.apkovls.iter().map(|a| ApkovlCandidate {
            device: m.device.clone(),
            path: m.mountpoint.join(a),
        }));
        loops.extend(offer.modloops.iter().map(|p| m.mountpoint.join(p)));
        caches.extend(offer.cache.iter().map(|p| m.mountpoint.join(p)));
    }
    out.apkovl = media::choose_apkovl(&ovls, cfg.hostname.as_deref());
    if let Some(c) = &out.apkovl {
        if !c.others.is_empty() {
            let names: Vec<String> = c
                .others
                .iter()
                .map(|o| o.path.display().to_string())
                .collect();
            out.warnings.push(format!(
                "several apkovls found: using {} ({}); ignoring {}",
                c.chosen.path.display(),
                c.reason,
                names.join(", ")
            ));
        }
    }
    out.boot_repositories = repos;
    out.apkovls = ovls;
    out.modloops = loops;
    out.caches = caches;
}
