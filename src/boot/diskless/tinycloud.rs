//! tiny-cloud, Alpine's small cloud-init: when the machine looks like a cloud instance, the
//! diskless boot adds its packages and services, as Alpine's initramfs does (spec §2.4, §4.4).
//!
//! Triggers: `tinycloud=` or `ds=` on the command line, a DMI `product_serial` that starts with
//! `ds=` (how some platforms pass the NoCloud data source), or a filesystem labelled `cidata` or
//! `CIDATA` (a NoCloud seed disk). It is added with the default services only (an lbu apkovl
//! keeps its own runlevels), and never when the new root has `/etc/tiny-cloud.disabled` or the
//! command line says `notinycloud`/`nods` (where Alpine, by accident, turns it on).

use super::{note, Decisions};
use crate::boot::{sysroot, Boot};
use std::path::Path;

/// Its OpenRC services and their runlevels.
pub const SERVICES: [(&str, &str); 4] = [
    ("tiny-cloud-boot", "boot"),
    ("tiny-cloud-early", "default"),
    ("tiny-cloud-main", "default"),
    ("tiny-cloud-final", "default"),
];

/// Why the machine asks for tiny-cloud, if it does.
fn trigger(boot: &Boot<'_>) -> Option<&'static str> {
    if boot.plan.tiny_cloud {
        return Some("tinycloud= or ds= on the command line");
    }
    let serial = boot.sys.path(Path::new("/sys/class/dmi/id/product_serial"));
    if std::fs::read(serial).is_ok_and(|s| s.starts_with(b"ds=")) {
        return Some("the DMI product_serial starts with ds=");
    }
    let devices = boot.record.discovery.as_ref().map(|d| d.devices.as_slice());
    let cidata = devices.unwrap_or_default().iter().any(|d| {
        let label = d.info.probe.as_ref().and_then(|p| p.label.as_deref());
        matches!(label, Some("cidata" | "CIDATA"))
    });
    cidata.then_some("a filesystem is labelled cidata")
}

/// Adds tiny-cloud's services to the new root at `root` when the machine asks for it, the
/// default services apply (`decisions` says) and nothing forbids it; true when its packages
/// are to be installed. Once asked for, the decision goes to the notes either way.
pub(super) fn add(boot: &Boot<'_>, root: &Path, decisions: &mut Decisions) -> bool {
    let Some(why) = trigger(boot) else {
        return false;
    };
    let disabled = || {
        sysroot::open_root(root)
            .is_ok_and(|r| r.exists(Path::new("etc/tiny-cloud.disabled"), false))
    };
    let refused = if boot.plan.tiny_cloud_off {
        Some("notinycloud/nods")
    } else if !decisions.default_services {
        Some("the apkovl keeps its own runlevels")
    } else if disabled() {
        Some("/etc/tiny-cloud.disabled")
    } else {
        None
    };
    if let Some(by) = refused {
        note(
            decisions,
            format!("tiny-cloud: not added ({why}, but {by})"),
        );
        return false;
    }
    for (service, level) in SERVICES {
        if let Err(e) = sysroot::rc_add(root, service, level) {
            log::warn!("tiny-cloud: cannot add {service} to {level}: {e}");
        }
    }
    note(
        decisions,
        format!(
            "tiny-cloud: added ({why}): packages {}, services tiny-cloud-boot (boot), \
             tiny-cloud-early, -main, -final (default)",
            crate::boot::packages::TINY_CLOUD.join(" ")
        ),
    );
    true
}
