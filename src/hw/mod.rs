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
//! * [`block`]: disks and partitions from `/sys/class/block`, partition tables (PARTUUID);
//! * [`probe`]: filesystem type, label and UUID from superblocks;
//! * [`spec`]: `root=`-style device specifications;
//! * [`mount`]: mounting a filesystem at `/media/<dev>` with its module loaded first;
//! * [`discover`]: the wait for the devices a boot needs, driven by uevents, no fixed sleeps;
//! * [`modloop`]: verifying, mounting and linking the modloop;
//! * [`modprobe_main`]: the `/sbin/modprobe` personality for the kernel's `request_module`.

pub mod block;
pub mod coldplug;
pub mod discover;
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

use crate::sys::Sys;
use std::io::Write;

/// `modprobe [-q] [-b] [-a] [-v] [-n] [-S release] [--] name [param=value...]` and
/// `modprobe -a name...`, as the kernel's `request_module` (`modprobe -q -- fs-vfat`) and scripts
/// call it. Returns the exit status: 0 when every request ended up in the kernel.
pub fn modprobe_main(args: &[String], sys: &dyn Sys) -> i32 {
    let mut quiet = false;
    let mut all = false;
    let mut dry_run = false;
    let mut verbose = false;
    let mut release = None;
    let mut req = modules::Request::default();
    let mut rest: Vec<String> = Vec::new();
    let mut it = args.iter().skip(1);
    let mut opts_done = false;
    let mut stderr = std::io::stderr();
    while let Some(a) = it.next() {
        if opts_done || !a.starts_with('-') || a == "-" {
            rest.push(a.clone());
            continue;
        }
        match a.as_str() {
            "--" => opts_done = true,
            "--quiet" => quiet = true,
            "--all" => all = true,
            "--use-blacklist" => req.blacklist_all = true,
            "--verbose" => verbose = true,
            "--dry-run" | "--show" => dry_run = true,
            "--syslog" | "--first-time" | "--ignore-install" => {}
            "--remove" => {
                let _ = writeln!(stderr, "modprobe: removing modules is not supported");
                return 1;
            }
            "-S" | "--set-version" => release = it.next().cloned(),
            s if s.starts_with("--set-version=") => {
                release = Some(s["--set-version=".len()..].to_string())
            }
            s if s.starts_with("--") => {
                let _ = writeln!(stderr, "modprobe: option {s} ignored");
            }
            s => {
                for c in s[1..].chars() {
                    match c {
                        'q' => quiet = true,
                        'a' => all = true,
                        'b' => req.blacklist_all = true,
                        'v' => verbose = true,
                        'n' => dry_run = true,
                        's' | 'i' | 'f' => {}
                        'r' => {
                            let _ = writeln!(stderr, "modprobe: removing modules is not supported");
                            return 1;
                        }
                        'S' => release = it.next().cloned(),
                        other => {
                            let _ = writeln!(stderr, "modprobe: option -{other} ignored");
                        }
                    }
                }
            }
        }
    }
    if rest.is_empty() {
        if !quiet {
            let _ = writeln!(stderr, "modprobe: no module name given");
        }
        return 1;
    }
    if all {
        req.names = rest;
    } else {
        let name = rest.remove(0);
        if !rest.is_empty() {
            req.params.insert(modules::normalize(&name), rest);
        }
        req.names = vec![name];
    }
    let release = release.unwrap_or_else(|| sys.kernel_release());
    let db = match ModuleDb::open(sys, &release) {
        Ok(db) => db,
        Err(e) => {
            if !quiet {
                let _ = writeln!(stderr, "modprobe: FATAL: {e}");
            }
            return 1;
        }
    };
    if dry_run {
        for n in &req.names {
            let r = db.resolve(n, req.blacklist_all);
            let _ = writeln!(std::io::stdout(), "{n}: {}", r.modules.join(" "));
        }
        return 0;
    }
    let loader = ModuleLoader::new(sys, db);
    let report = loader.load(&req);
    if verbose {
        for m in &report.loaded {
            let _ = writeln!(stderr, "modprobe: loaded {m}");
        }
    }
    if !quiet {
        for n in &report.not_found {
            let _ = writeln!(
                stderr,
                "modprobe: FATAL: Module {n} not found in directory /lib/modules/{release}"
            );
        }
    }
    for (m, why) in &report.failed {
        let _ = writeln!(stderr, "modprobe: ERROR: could not insert '{m}': {why}");
    }
    // A request fully hidden by the blacklist is not an error (kmod says nothing either).
    i32::from(!report.ok())
}

/// Runs `modprobe` when the program was started under that name (a link to the binary, as
/// busybox does): `Some(exit status)`, or `None` for any other name. Both binaries use it.
pub fn run_if_modprobe(args: &[std::ffi::OsString]) -> Option<i32> {
    let argv0 = args.first().map(std::path::Path::new)?.file_name()?;
    if argv0 != "modprobe" {
        return None;
    }
    let args: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    Some(modprobe_main(&args, &crate::sys::RealSys))
}
