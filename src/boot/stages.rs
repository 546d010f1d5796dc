//! Every stage of the boot in one table: its name in the timeline, its console line and what a
//! failure does. The runner ([`super::runner`]) is the only place that acts on a policy, so this
//! table is the whole answer to "what happens when X fails".
//!
//! Order of a diskless boot: early, drivers (loading on another thread from here until before the
//! modloop's step, recorded when joined), media, sysroot, apkovl, packages, modloop (mounted on
//! another thread while sysroot … packages run, recorded when it is joined), handoff. Order of a
//! `root=` boot: early, drivers (joined before the root's mount), root, usr, handoff.

use super::runner::{Policy, Stage};

/// Directories, pseudo filesystems, the console and the kernel command line. A mount that fails
/// is a warning: later stages report what breaks.
pub const EARLY: Stage = Stage {
    name: "early",
    title: None,
    policy: Policy::Degrade { fallback: None },
    timed: true,
};

/// `modules=`, the fixed modules and `/etc/modules`, loaded on a thread of their own beside the
/// device search ([`super::drivers`]) and recorded when joined. A module that does not load is
/// a warning.
pub const DRIVERS: Stage = Stage {
    name: "drivers",
    title: Some("Loading boot drivers"),
    policy: Policy::Degrade { fallback: None },
    timed: true,
};

/// `root=`: the device search and the mount on `/sysroot`.
pub const ROOT: Stage = Stage {
    name: "root",
    title: Some("Mounting root"),
    policy: Policy::RescueAndRetry,
    timed: true,
};

/// `/usr` from the new root's fstab (one run per `/usr` line). Not in the timeline, as in
/// earlier releases: it is part of the root's mount.
pub const USR: Stage = Stage {
    name: "usr",
    title: Some("Mounting /usr"),
    policy: Policy::Degrade { fallback: None },
    timed: false,
};

/// Diskless: the boot media (a boot repository or an apkovl) by uevents, with a deadline.
pub const MEDIA: Stage = Stage {
    name: "media",
    title: Some("Looking for boot media"),
    policy: Policy::RescueAndRetry,
    timed: true,
};

/// The modloop, verified and mounted on another thread; then the drivers it brings. A refused or
/// missing modloop is a warning: the boot goes on without it.
pub const MODLOOP: Stage = Stage {
    name: "modloop",
    title: None,
    policy: Policy::Degrade { fallback: None },
    timed: true,
};

/// The tmpfs on `/sysroot`.
pub const SYSROOT: Stage = Stage {
    name: "sysroot",
    title: Some("Mounting the root tmpfs"),
    policy: Policy::RescueAndRetry,
    timed: true,
};

/// The apkovl extracted into the new root. A corrupt, hostile or unreadable apkovl is a warning
/// and the boot builds a clean default system. No console line when there is no apkovl.
pub const APKOVL: Stage = Stage {
    name: "apkovl",
    title: Some("Loading user settings from {}"),
    policy: Policy::Degrade {
        fallback: Some("booting a clean default system instead"),
    },
    timed: true,
};

/// The packages. Refused and missing packages finish the stage degraded (reported, the rest
/// installed); only an internal error of the installer (a bug) fails it.
pub const PACKAGES: Stage = Stage {
    name: "packages",
    title: Some("Installing packages ({})"),
    policy: Policy::RescueAndRetry,
    timed: true,
};

/// The cached root (`ramboot_cache`): the image on the boot media mounted under the root's tmpfs
/// instead of installing. A failure puts the root back and the packages are installed.
pub const ROOTCACHE: Stage = Stage {
    name: "rootcache",
    title: Some("Mounting the cached root {}"),
    policy: Policy::Degrade {
        fallback: Some("installing the packages instead"),
    },
    timed: true,
};

/// The `init=` check before switch_root (a failed switch_root takes the same policy).
pub const HANDOFF: Stage = Stage {
    name: "handoff",
    title: Some("Checking the new init"),
    policy: Policy::RescueAndRetry,
    timed: true,
};

/// Every stage, in boot order.
pub const ALL: [&Stage; 11] = [
    &EARLY, &DRIVERS, &ROOT, &USR, &MEDIA, &SYSROOT, &APKOVL, &ROOTCACHE, &PACKAGES, &MODLOOP,
    &HANDOFF,
];

#[cfg(test)]
mod tests {
    use super::*;

    /// DESIGN.md's stage table is this table: a row per stage, with its policy.
    #[test]
    fn the_design_document_lists_every_stage_with_its_policy() {
        let design = include_str!("../../DESIGN.md");
        for stage in ALL {
            let row = design
                .lines()
                .find(|l| l.starts_with(&format!("| {} ", stage.name)))
                .unwrap_or_else(|| panic!("DESIGN.md has no row for stage {}", stage.name));
            let policy = match stage.policy {
                Policy::RescueAndRetry => "rescue and retry",
                Policy::Degrade { .. } => "degrade",
                Policy::Fatal => "fatal",
            };
            assert!(
                row.contains(&format!("| {policy}")),
                "DESIGN.md's row for {} does not say {policy}: {row}",
                stage.name
            );
        }
    }

    #[test]
    fn names_are_unique_and_only_rescue_or_degrade_are_declared() {
        for (i, a) in ALL.iter().enumerate() {
            assert!(ALL[i + 1..].iter().all(|b| b.name != a.name), "{}", a.name);
            // PID 1 never exits on its own: only `panic=` makes a failure fatal.
            assert!(a.policy != Policy::Fatal, "{}", a.name);
        }
    }
}
