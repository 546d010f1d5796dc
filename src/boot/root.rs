//! The `root=` branch: find the root device by uevents with a deadline while the boot drivers
//! load, mount it (optionally under a tmpfs overlay) on `/sysroot` once they are in.

use super::runner::Done;
use super::{stages, Boot, BootEnd, BootError, SYSROOT};
use crate::cmdline::RootSpec;
use crate::hw::discover::{discover, DiscoverConfig, Goal};
use crate::hw::modules::Request;
use crate::hw::DeviceSpec;
use crate::sys::parse_mount_options;
use std::path::{Path, PathBuf};

/// Finds the root device: its `/dev` node and probed filesystem type.
fn find_root(boot: &mut Boot<'_>, spec: &RootSpec) -> Result<(String, Option<String>), BootError> {
    let text = spec.device.to_string();
    let device = match &spec.device {
        crate::cmdline::DeviceSpec::Zfs(_) => return Err(BootError::ZfsRoot { spec: text }),
        _ => DeviceSpec::parse(&text).ok_or_else(|| BootError::RootNotFound {
            spec: text.clone(),
            waited: Default::default(),
        })?,
    };
    let d = find_device(boot, device);
    boot.record.discovery = Some(d.clone());
    for dev in &d.devices {
        boot.timeline.mark(
            &format!("device {} appeared", dev.info.dev.name),
            dev.appeared,
        );
    }
    for w in &d.warnings {
        log::warn!("{w}");
    }
    match (d.root, d.ready_at) {
        (Some(info), Some(at)) => {
            boot.timeline.mark("root device ready", at);
            let fstype = info.probe.as_ref().map(|p| p.fstype.as_str().to_string());
            Ok((format!("/dev/{}", info.dev.name), fstype))
        }
        _ => Err(BootError::RootNotFound {
            spec: text,
            waited: d.finished.saturating_sub(d.started),
        }),
    }
}

/// Waits for one device, as nlplug-findfs does for `root=` and the fstab's `/usr`.
fn find_device(boot: &mut Boot<'_>, device: DeviceSpec) -> crate::hw::Discovery {
    let mut cfg = DiscoverConfig::new(Goal::Root(device));
    cfg.uevent_buffer = boot.plan.uevent_buf_size;
    cfg.defer_cpu_features = true;
    let d = discover(boot.sys, boot.loader(), &cfg);
    boot.load_with_drivers(Request::names(d.deferred_modaliases.clone()));
    d
}

/// Loads `fs-<type>` (and vfat's character sets) when the kernel has modules for them.
fn load_fs(boot: &Boot<'_>, fstype: &str) {
    if let Some(loader) = boot.loader() {
        let mut names = vec![format!("fs-{fstype}")];
        if fstype == "vfat" {
            names.extend(["nls_cp437".to_string(), "nls_ascii".to_string()]);
        }
        names.retain(|n| !loader.db().resolve(n, false).modules.is_empty());
        loader.load(&Request::names(names));
    }
}

/// Alpine's "Mounting /usr": each `/usr` line of the new root's fstab is mounted on
/// `/sysroot/usr` with `usrflags` (default `ro`), unless `usrflags=disable`. A failure is a
/// warning: the new root's own services may still cope.
pub fn mount_usr(boot: &mut Boot<'_>, spec: &RootSpec) -> Result<(), BootEnd> {
    let crate::cmdline::UsrMount::Flags(flags) = &spec.usr else {
        return Ok(());
    };
    let fstab = boot.sys.path(&Path::new(SYSROOT).join("etc/fstab"));
    let Ok(text) = std::fs::read_to_string(fstab) else {
        return Ok(());
    };
    for e in super::sysroot::parse_fstab(&text)
        .into_iter()
        .filter(|e| e.file == "/usr")
    {
        boot.stage(&stages::USR).run(|b| {
            let mounted = mount_usr_entry(b, &e, flags);
            b.record.usr = Some(match &mounted {
                Ok(text) => text.clone(),
                Err(err) => err.to_string(),
            });
            mounted.map(|_| Done::ok(()))
        })?;
    }
    Ok(())
}

/// One `/usr` line: finds its device and mounts it; says what was mounted.
fn mount_usr_entry(
    boot: &mut Boot<'_>,
    e: &super::sysroot::FstabEntry,
    flags: &str,
) -> Result<String, BootError> {
    let found = DeviceSpec::parse(&e.spec)
        .map(|d| find_device(boot, d))
        .and_then(|d| d.root);
    let Some(info) = found else {
        return Err(BootError::DeviceNotFound {
            spec: e.spec.clone(),
        });
    };
    let device = format!("/dev/{}", info.dev.name);
    let fstype = info.probe.as_ref().map(|p| p.fstype.as_str().to_string());
    let fstype = Some(e.vfstype.as_str())
        .filter(|t| *t != "auto")
        .or(fstype.as_deref());
    mount_any(boot, &device, "/sysroot/usr", fstype, flags)?;
    Ok(format!("{device} ({}) mounted with {flags}", e.vfstype))
}

/// The block-device filesystems the kernel knows now (`/proc/filesystems` without its `nodev`
/// lines), in the kernel's order: what busybox `mount` tries when no type is given.
pub fn kernel_filesystems(boot: &Boot<'_>) -> Vec<String> {
    std::fs::read_to_string(boot.sys.path(Path::new("/proc/filesystems")))
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with("nodev"))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

/// Mounts `source` with `fstype`, or, when the type is unknown (not given, not recognised, or
/// `auto`), with each filesystem the kernel knows until one accepts it, as busybox `mount`
/// does. The kernel has no type called `auto`.
fn mount_any(
    boot: &Boot<'_>,
    source: &str,
    target: &str,
    fstype: Option<&str>,
    options: &str,
) -> Result<(), BootError> {
    if let Some(t) = fstype.filter(|t| *t != "auto") {
        load_fs(boot, t);
        return mount(boot, source, target, t, options);
    }
    let tried = kernel_filesystems(boot);
    let mut last = None;
    for t in &tried {
        match mount(boot, source, target, t, options) {
            Ok(()) => {
                log::info!("{source}: mounted as {t}");
                return Ok(());
            }
            Err(BootError::RootMount { source, .. }) => last = Some(source),
            Err(e) => return Err(e),
        }
    }
    Err(BootError::RootFsUnknown {
        device: source.to_string(),
        target: PathBuf::from(target),
        tried,
        last,
    })
}

fn mount(
    boot: &Boot<'_>,
    source: &str,
    target: &str,
    fstype: &str,
    options: &str,
) -> Result<(), BootError> {
    let target = PathBuf::from(target);
    let _ = std::fs::create_dir_all(boot.sys.path(&target));
    let (flags, data) = parse_mount_options(options);
    boot.sys
        .mount(source, &target, fstype, flags, &data)
        .map_err(|source_err| BootError::RootMount {
            device: source.to_string(),
            target,
            source: source_err,
        })
}

/// The `root=` branch up to a mounted `/sysroot`, run under the failure policy.
pub fn mount_root(boot: &mut Boot<'_>, spec: &RootSpec) -> Result<(), BootEnd> {
    let mut single = boot.plan.single;
    boot.stage(&stages::ROOT).run(|b| {
        let (device, probed) = find_root(b, spec)?;
        // The mount may need a filesystem module from `modules=` (or the kernel's list of
        // filesystems, when the type is unknown): the boot drivers must be in.
        b.join_drivers();
        if std::mem::take(&mut single) {
            // Alpine: after the device search, before the mount.
            b.rescue_shell("Single-user mode: exit the shell to continue the boot.");
        }
        let fstype = spec.fstype.clone().or(probed);
        let fstype = fstype.as_deref();
        match &spec.overlay_tmpfs {
            Some(tmpfs_flags) => {
                let ro = format!("{},ro", spec.flags);
                mount_any(b, &device, "/media/root-ro", fstype, ro.trim_start_matches(','))?;
                let rw = format!("mode=0755,{tmpfs_flags},rw");
                mount(b, "root-tmpfs", "/media/root-rw", "tmpfs", rw.replace(",,", ",").as_str())?;
                for d in ["/media/root-rw/work", "/media/root-rw/root"] {
                    let _ = std::fs::create_dir_all(b.sys.path(Path::new(d)));
                }
                mount(
                    b,
                    "overlayfs",
                    SYSROOT,
                    "overlay",
                    "lowerdir=/media/root-ro,upperdir=/media/root-rw/root,workdir=/media/root-rw/work",
                )?;
                for d in ["/sysroot/media/root-ro", "/sysroot/media/root-rw"] {
                    let _ = std::fs::create_dir_all(b.sys.path(Path::new(d)));
                }
                for m in ["/media/root-ro", "/media/root-rw"] {
                    if !b.mounts.iter().any(|x| x == Path::new(m)) {
                        b.mounts.push(PathBuf::from(m));
                    }
                }
            }
            None => mount_any(b, &device, SYSROOT, fstype, &spec.flags)?,
        }
        Ok(Done::ok(()))
    })?;
    boot.finish_drivers()?;
    mount_usr(boot, spec)
}
