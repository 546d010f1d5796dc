//! Fault injection for tests: makes the installer panic where a bug would, to prove that a
//! panic ends the install with an error instead of a hang. Armed per package name, so tests that
//! run in parallel do not disturb each other; unarmed it costs one atomic load per package.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Where the injected panic happens.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Site {
    /// A worker thread, while it stages the package.
    Worker,
    /// The committing thread, as the package's commit starts.
    Committer,
}

static ARMED: AtomicBool = AtomicBool::new(false);
static TARGETS: Mutex<Vec<(Site, String)>> = Mutex::new(Vec::new());

/// From now on, `site` panics whenever it handles the package named `package`.
pub fn panic_at(site: Site, package: &str) {
    TARGETS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((site, package.to_string()));
    ARMED.store(true, Ordering::Release);
}

pub(super) fn check(site: Site, package: &str) {
    if !ARMED.load(Ordering::Acquire) {
        return;
    }
    let hit = TARGETS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .any(|(s, p)| *s == site && p == package);
    if hit {
        panic!("injected fault while handling {package}");
    }
}
