//! Coldplug: the drivers for devices that were there before anyone listened.
//!
//! nlplug-findfs writes `add` into every `uevent` file so the kernel replays the events; we read the
//! `modalias` files under `/sys/devices` directly instead, which needs no writes and no round trip
//! through netlink. Devices that show up later (after a bus driver loads, a slow SD controller, USB
//! storage) arrive as uevents with `MODALIAS`; [`Hotplug`] keeps the set of modaliases already
//! handled so a replay or an overflow re-scan loads nothing twice.

use super::modules::{LoadReport, ModuleLoader, Request};
use crate::sys::Sys;
use std::collections::BTreeSet;
use std::path::Path;

/// Every distinct `modalias` under `/sys/devices`, sorted. Symlinks are not followed.
pub fn scan_modaliases(sys: &dyn Sys) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![sys.path(Path::new("/sys/devices"))];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() && e.file_name() == "modalias" {
                if let Ok(s) = std::fs::read_to_string(e.path()) {
                    let s = s.trim();
                    if !s.is_empty() {
                        out.insert(s.to_string());
                    }
                }
            }
        }
    }
    out
}

/// Remembers which modaliases were handled, and loads modules for new ones.
#[derive(Default)]
pub struct Hotplug {
    seen: BTreeSet<String>,
    /// Modaliases no module matched: a larger module set (the modloop) may have one.
    unmatched: BTreeSet<String>,
}

impl Hotplug {
    pub fn new() -> Self {
        Self::default()
    }

    /// Loads modules for the modaliases not handled before. Blacklisted modules are skipped and
    /// aliases matching nothing are normal (most devices need no module): neither is reported as
    /// not found.
    pub fn load<I: IntoIterator<Item = String>>(
        &mut self,
        loader: &ModuleLoader<'_>,
        modaliases: I,
    ) -> LoadReport {
        let fresh: Vec<String> = modaliases
            .into_iter()
            .filter(|m| self.seen.insert(m.clone()))
            .collect();
        if fresh.is_empty() {
            return LoadReport::default();
        }
        let mut names: Vec<String> = Vec::new();
        let mut report = LoadReport::default();
        for alias in &fresh {
            let r = loader.db().resolve(alias, true);
            if r.modules.is_empty() && r.blacklisted.is_empty() {
                self.unmatched.insert(alias.clone());
            }
            report.blacklisted.extend(r.blacklisted);
            for m in r.modules {
                if !names.contains(&m) {
                    names.push(m);
                }
            }
        }
        report.merge(loader.load(&Request::names(names)));
        report
    }

    /// Walks sysfs and loads what the modaliases there need.
    pub fn coldplug(&mut self, sys: &dyn Sys, loader: &ModuleLoader<'_>) -> LoadReport {
        self.load(loader, scan_modaliases(sys))
    }

    /// Modaliases seen so far that no module matched.
    pub fn unmatched(&self) -> Vec<String> {
        self.unmatched.iter().cloned().collect()
    }

    /// Number of modaliases handled so far.
    pub fn seen(&self) -> usize {
        self.seen.len()
    }
}
