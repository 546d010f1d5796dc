//! The modloop stage of the diskless branch: which images to try, the job that verifies and
//! mounts one on another thread while the root is built, and what follows once it is joined
//! (the initramfs's module tree pointed at it, the index re-read, the missing drivers loaded).

use super::{note, Decisions, Media};
use crate::boot::runner::Done;
use crate::boot::{Boot, BootError};
use crate::cmdline::ModloopSpec;
use crate::hw::modloop;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What the modloop stage has to do.
pub(super) enum ModloopPlan {
    /// `modloop=none`: no modloop, no stage.
    Off,
    /// None can be tried; why.
    Without(String),
    /// The images to try, in order.
    Try(Vec<PathBuf>),
    /// `modloop=URL` (placeholders replaced): downloaded to `dest` in memory, then verified
    /// and mounted as one from the media.
    Fetch { url: String, dest: PathBuf },
}

/// The largest modloop downloaded (Alpine's are 20-100 MB).
pub(super) const MAX_MODLOOP: u64 = 1 << 30;

pub(super) fn modloop_plan(boot: &Boot<'_>, media: &Media, decisions: &Decisions) -> ModloopPlan {
    match &boot.plan.modloop {
        ModloopSpec::None => ModloopPlan::Off,
        ModloopSpec::Url(u) => match super::offline_reason(decisions) {
            Some(why) => {
                let w = format!("modloop={u} cannot be fetched ({why}); no modloop");
                log::warn!("{w}");
                ModloopPlan::Without(w)
            }
            None => {
                // Alpine's modloop service keeps the URL's file name (`wget -P /lib`): the
                // signature in /var/cache/misc is found by it.
                let url = super::boot_url(boot, decisions, "modloop", u);
                let dest = PathBuf::from("/tmp").join(crate::net::http::local_name(&url));
                ModloopPlan::Fetch { url, dest }
            }
        },
        _ if media.modloops.is_empty() => {
            ModloopPlan::Without("no modloop on the boot media".into())
        }
        _ => ModloopPlan::Try(media.modloops.clone()),
    }
}

/// What the modloop job on its thread gives back: the mount, and when it finished.
pub(super) type ModloopJob = std::thread::Result<(
    Result<modloop::ModloopMount, modloop::ModloopError>,
    Duration,
)>;

/// The modloop stage's step, once its job was joined: a refused modloop fails the stage (a
/// warning: the boot goes on without it).
pub(super) fn modloop_step(
    boot: &mut Boot<'_>,
    plan: &ModloopPlan,
    job: Option<ModloopJob>,
    media: &Media,
    decisions: &mut Decisions,
) -> Result<Done<()>, BootError> {
    match (plan, job) {
        (ModloopPlan::Without(why), _) => Ok(Done::degraded((), why.clone())),
        (_, None) => Ok(Done::ok(())),
        // A panic on the modloop's thread takes the runner's road for panics.
        (_, Some(Err(panic))) => std::panic::resume_unwind(panic),
        (_, Some(Ok((Err(e), _)))) => Err(BootError::Modloop(e)),
        (_, Some(Ok((Ok(mounted), at)))) => {
            finish_modloop(boot, media, decisions, mounted, at);
            Ok(Done::ok(()))
        }
    }
}

/// After the modloop was verified and mounted (in parallel with building the root): points the
/// initramfs's module tree at it and, when the modloop has a module for a device the initramfs
/// had none for, re-reads the module index from it and loads those drivers.
pub(super) fn finish_modloop(
    boot: &mut Boot<'_>,
    media: &Media,
    decisions: &mut Decisions,
    mounted: modloop::ModloopMount,
    mounted_at: Duration,
) {
    let release = boot.sys.kernel_release();
    boot.timeline.mark("modloop mounted", mounted_at);
    note(
        decisions,
        format!(
            "modloop {} mounted ({})",
            mounted.image.display(),
            mounted.verification
        ),
    );
    decisions.modloop = Some(mounted.image.display().to_string());
    if let Err(e) = modloop::link_into_initramfs(boot.sys, &release) {
        log::warn!("{e}");
    }
    // Drivers for the devices the initramfs had no module for: only those modaliases are looked
    // up again, no second walk over sysfs. When the modloop has no alias for any of them either
    // (a quick scan), its whole index (≈80 ms of parsing on the benchmark card's core) is not
    // read: nothing before the handoff would load from it.
    let unmatched = &media.unmatched_modaliases;
    let index = boot.sys.path(&Path::new("/lib/modules").join(&release));
    if unmatched.is_empty() || !crate::hw::modules::ModuleDb::has_alias_for(&index, unmatched) {
        return;
    }
    // The modloop's thread was joined: the boot holds the only handle again.
    let has_loader = boot.loader().is_some();
    match boot.loader_mut() {
        Some(loader) => match loader.reload() {
            Ok(()) => {
                let at = boot.sys.now();
                boot.timeline.mark("modloop index read", at);
            }
            Err(e) => log::warn!("cannot read the modloop's module index: {e}"),
        },
        None if has_loader => log::warn!("the module index was not re-read: the loader is in use"),
        None => {}
    }
    if let Some(loader) = boot.loader() {
        let report = crate::hw::coldplug::Hotplug::new().load(loader, unmatched.iter().cloned());
        if !report.loaded.is_empty() {
            note(
                decisions,
                format!("drivers from the modloop: {}", report.loaded.join(" ")),
            );
        }
    }
    boot.timeline.mark("modloop drivers loaded", boot.sys.now());
}
