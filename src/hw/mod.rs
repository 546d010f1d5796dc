//! Hardware: kernel modules, uevents and coldplug, block devices, filesystem probing.
//!
//! This replaces busybox `modprobe`, `nlplug-findfs` and the libblkid probing it does. Everything
//! privileged goes through [`crate::sys::Sys`]; everything read (sysfs, module indexes, superblocks)
//! is read through [`crate::sys::Sys::path`], so the whole component runs on a host against a fake
//! `/sys`, `/lib/modules` and `/dev` made of plain files.
//!
//! Map:
//! * [`modules`]: modprobe semantics ([`modules::ModuleLoader`]), mkinitfs closures;
//! * [`coldplug`]: modaliases from sysfs and uevents → modules;
//! * [`hotplug`]: after boot, in system mode: drivers and mdev's `/dev` links for new devices;
//! * [`block`]: disks and partitions from `/sys/class/block`, partition tables (PARTUUID);
//! * [`probe`]: filesystem type, label and UUID from superblocks;
//! * [`spec`]: `root=`-style device specifications;
//! * [`mount`]: mounting a filesystem at `/media/<dev>` with its module loaded first;
//! * [`mod@discover`]: the wait for the devices a boot needs, driven by uevents, no fixed sleeps;
//! * [`modloop`]: verifying, mounting and linking the modloop;
//! * [`modprobe_main`]: the `/sbin/modprobe` personality for the kernel's `request_module`
//!   (parsed and run in [`crate::cli::modprobe`] with the other commands).

pub mod block;
pub mod coldplug;
pub mod discover;
pub mod hotplug;
pub mod modloop;
pub mod modules;
pub mod mount;
pub mod probe;
pub mod spec;

pub use block::BlockDevice;
pub use discover::{discover, DiscoverConfig, Discovery, Goal};
pub use modules::{closure, LoadReport, ModuleDb, ModuleLoader, Request};
pub use probe::{FsType, Probe};
pub use spec::DeviceSpec;

/// The `/sbin/modprobe` personality; it lives with the other commands in [`crate::cli`].
pub use crate::cli::modprobe::{main as modprobe_main, run_if_modprobe};
