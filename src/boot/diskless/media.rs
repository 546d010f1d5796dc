//! The media stage of the diskless branch: the device search for boot repositories and apkovls,
//! the mdev-style links Alpine's fstab expects, and the later relocation of media to the mount
//! points the new root's fstab gives them.

use super::{Decisions, Media};
use crate::boot::sysroot::{self, MediaMount};
use crate::boot::{Boot, BootError};
use crate::cmdline::{ApkovlSource, Diskless, ModloopSpec, RepoSource};
use crate::hw::discover::{discover, DiscoverConfig, Discovery, Goal};
use crate::hw::modules::Request;
use crate::media::ScanOptions;
use std::fs;
use std::path::{Path, PathBuf};

/// Finds and mounts the boot media; fails only when there is nothing to boot from.
pub(super) fn find_media(
    boot: &mut Boot<'_>,
    plan: &Diskless,
    decisions: &mut Decisions,
) -> Result<Media, BootError> {
    let want_repository = plan.repos == RepoSource::Auto;
    let want_apkovl = plan.apkovl == ApkovlSource::Auto;
    let mut cfg = DiscoverConfig::new(Goal::Media {
        want_repository,
        want_apkovl,
    });
    if let Some(delay) = plan.usbdelay {
        cfg = cfg.with_usbdelay(delay);
    }
    cfg.uevent_buffer = boot.plan.uevent_buf_size;
    cfg.defer_cpu_features = true;
    cfg.scan = ScanOptions {
        modloop: match &boot.plan.modloop {
            ModloopSpec::Path(p) => Some(p.clone()),
            _ => None,
        },
        kernel_release: Some(boot.sys.kernel_release()),
    };
    let d: Discovery = discover(boot.sys, boot.loader(), &cfg);
    boot.load_with_drivers(Request::names(d.deferred_modaliases.clone()));
    boot.record.discovery = Some(d.clone());
    for dev in &d.devices {
        if !dev.info.dev.name.starts_with("loop") && !dev.info.dev.name.starts_with("ram") {
            boot.timeline.mark(
                &format!("device {} appeared", dev.info.dev.name),
                dev.appeared,
            );
        }
    }
    // Coldplug (sysfs walk, the present devices' drivers, the devices present) ends here.
    boot.timeline.mark("coldplug done", d.coldplug_done);
    if let Some(at) = d.ready_at {
        boot.timeline.mark("media ready", at);
    }
    for w in &d.warnings {
        log::warn!("{w}");
    }
    let mut media = Media {
        discovery_warnings: d.warnings.clone(),
        ..Default::default()
    };
    for m in d.kept_media() {
        let info = d
            .devices
            .iter()
            .find(|s| s.info.dev.name == m.device)
            .and_then(|s| s.info.probe.clone());
        media.mounts.push(MediaMount {
            device: PathBuf::from(format!("/dev/{}", m.device)),
            mountpoint: m.mountpoint.clone(),
            uuid: info.as_ref().and_then(|p| p.uuid.clone()),
            label: info.as_ref().and_then(|p| p.label.clone()),
        });
        if !m.already && !boot.mounts.contains(&m.mountpoint) {
            boot.mounts.push(m.mountpoint.clone());
        }
        mdev_media_link(boot, &m.device);
    }
    media.repositories = d.boot_repositories.clone();
    media.modloops = d.modloops.clone();
    media.unmatched_modaliases = d.unmatched_modaliases.clone();
    if let Some(choice) = &d.apkovl {
        media.apkovl = Some(choice.chosen.path.clone());
        // Several candidates: discovery's warning (logged above) names the ignored ones.
        decisions.apkovl_reason = choice.reason.clone();
    }
    let nothing = media.repositories.is_empty() && media.apkovl.is_none();
    let explicit =
        !matches!(plan.repos, RepoSource::Auto) || !matches!(plan.apkovl, ApkovlSource::Auto);
    if nothing && !explicit && !boot.plan.needs_network {
        return Err(nothing_to_boot_from(
            &d,
            "no network source was asked for (ip=, apkovl=URL or alpine_repo=URL)".into(),
        ));
    }
    Ok(media)
}

/// The error for a boot with no source at all: the devices looked at and for how long, and
/// why the network gave nothing.
pub(super) fn nothing_to_boot_from(d: &Discovery, network: String) -> BootError {
    BootError::NoBootMedia {
        devices: d
            .devices
            .iter()
            .map(|s| s.info.dev.name.clone())
            .filter(|n| !n.starts_with("loop"))
            .collect(),
        waited: d.finished.saturating_sub(d.started),
        network,
    }
}

/// The `/dev/cdrom` and `/dev/usbdisk` links Alpine's mdev rules make for boot media (`sr*`, and
/// `sd*` behind USB). The initramfs fstab names media by them, so the relocation to
/// `/media/cdrom` and `/media/usb` works as in Alpine without running mdev.
pub fn mdev_media_link(boot: &Boot<'_>, device: &str) {
    let link = if device.starts_with("sr") {
        "cdrom"
    } else if device.starts_with("sd") && on_usb(boot, device) {
        "usbdisk"
    } else {
        return;
    };
    let path = boot.sys.path(&Path::new("/dev").join(link));
    if fs::symlink_metadata(&path).is_err() {
        if let Err(e) = std::os::unix::fs::symlink(device, &path) {
            log::debug!("cannot link /dev/{link} to {device}: {e}");
        }
    }
}

/// True when the block device's sysfs path runs through a USB bus.
pub(super) fn on_usb(boot: &Boot<'_>, device: &str) -> bool {
    let sysfs = boot.sys.path(&Path::new("/sys/class/block").join(device));
    fs::canonicalize(sysfs).is_ok_and(|p| {
        p.components()
            .any(|c| c.as_os_str().to_string_lossy().starts_with("usb"))
    })
}

/// Moves media to their fstab mount points and keeps `boot.mounts` in step.
pub(super) fn relocate(
    boot: &mut Boot<'_>,
    fstab: &[sysroot::FstabEntry],
    mounts: &mut [MediaMount],
) {
    let before: Vec<PathBuf> = mounts.iter().map(|m| m.mountpoint.clone()).collect();
    for w in sysroot::remount_fstab_entries(boot.sys, fstab, mounts) {
        log::warn!("{w}");
    }
    for (old, m) in before.iter().zip(mounts.iter()) {
        if *old != m.mountpoint {
            if let Some(slot) = boot.mounts.iter_mut().find(|x| *x == old) {
                *slot = m.mountpoint.clone();
            }
        }
    }
}

/// Alpine's `find_boot_repositories`: `.boot_repository` up to three levels under each media
/// mount, after relocation.
pub(super) fn boot_repositories(boot: &Boot<'_>, mounts: &[MediaMount]) -> Vec<String> {
    let mut out = Vec::new();
    for m in mounts {
        for r in crate::media::deep_boot_repositories(&boot.sys.path(&m.mountpoint)) {
            let host_base = boot.sys.path(&m.mountpoint);
            let rel = r.strip_prefix(&host_base).unwrap_or(&r);
            let guest = m.mountpoint.join(rel);
            let text = guest.display().to_string();
            if !out.contains(&text) {
                out.push(text);
            }
        }
    }
    out
}
