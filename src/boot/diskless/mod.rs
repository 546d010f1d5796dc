//! The diskless branch (no `root=`): find the boot media, build the whole system in a tmpfs from
//! the media's repositories and the apkovl, and leave it ready for switch_root.
//!
//! Order and rules follow Alpine's `initramfs-init` (diskless part); the differences are where
//! Alpine is weak: the apkovl is chosen by a documented rule and extracted safely, the modloop
//! is verified and mounted here (so the initramfs can load every driver), packages are installed
//! by ramboot's own apk-compatible installer, and every decision is logged.
//!
//! Map: `media` finds and relocates the boot media; `modloop` runs the modloop beside the
//! root's build; `apkovl` applies the user's settings; the packages come from
//! [`super::packages`]; this module orders them and finishes the new root.

mod apkovl;
mod cache;
mod media;
mod modloop;
mod tinycloud;

pub use cache::PendingWrite;
pub use media::mdev_media_link;

use super::packages;
use super::runner::Done;
use super::sysroot::{self, MediaMount};
use super::timeline::{Outcome, Stage};
use super::{stages, Boot, BootEnd, BootError, SYSROOT};
use crate::cmdline::{ApkovlSource, AutodetectSerial, Diskless, IpConfig, RepoSource};
use crate::hw::hotplug::NicWatch;
use crate::hw::modloop as hw_modloop;
use crate::net::NetError;
use crate::sys::parse_mount_options;
use apkovl::{default_services, load_apkovl};
use media::{boot_repositories, find_media, nothing_to_boot_from, relocate};
use modloop::{modloop_plan, modloop_step, ModloopPlan};
use std::fs;
use std::path::{Path, PathBuf};

/// What the media stage found and the later stages use.
#[derive(Debug, Default)]
pub struct Media {
    pub mounts: Vec<MediaMount>,
    /// Devices the initramfs had no driver for (their modaliases).
    pub unmatched_modaliases: Vec<String>,
    pub repositories: Vec<PathBuf>,
    pub apkovl: Option<PathBuf>,
    pub modloops: Vec<PathBuf>,
    pub discovery_warnings: Vec<String>,
}

/// Everything decided while preparing the new root, for `ramboot plan` and the logs.
#[derive(Debug, Default)]
pub struct Decisions {
    pub apkovl: Option<PathBuf>,
    pub apkovl_reason: String,
    pub overlay_files: Vec<String>,
    pub default_services: bool,
    pub packages: Vec<String>,
    pub repositories: Vec<String>,
    pub modloop: Option<String>,
    /// The network stage's outcome, when the boot needed the network.
    pub network: Option<NetworkOutcome>,
    pub notes: Vec<String>,
}

/// What the network stage did (for `ramboot plan` and the logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkOutcome {
    /// `ip=off` (or `none`): the URLs that needed it stay unreachable.
    Off,
    Up(crate::net::Configured),
    /// Why it failed; the boot went on with the local sources.
    Failed(String),
}

/// Alpine's `configure_ip` after the media search: `ip=` as given, DHCP when only a URL asked
/// for the network. The timeline marks when the network was needed and when it came up.
fn bring_up_network(boot: &mut Boot<'_>) -> Result<NetworkOutcome, BootEnd> {
    // Taken out of the plan while the stage borrows the boot (cheaper than a clone), then back.
    let (taken, bootif) = (boot.plan.ip.take(), boot.plan.bootif.take());
    let dhcp = IpConfig::Dhcp { device: None };
    let ip = taken.as_ref().unwrap_or(&dhcp);
    if matches!(ip, IpConfig::Off) {
        (boot.plan.ip, boot.plan.bootif) = (taken, bootif);
        return Ok(NetworkOutcome::Off);
    }
    let needed = boot.sys.now();
    boot.timeline.mark("network needed", needed);
    // Alpine's kernels build IPv6 as a module: loaded (when the initramfs has it) so the
    // kernel can do SLAAC; quietly absent otherwise.
    if !boot.sys.path(Path::new("/proc/sys/net/ipv6")).exists() {
        if let Some(loader) = boot.loader() {
            loader.load(&crate::hw::modules::Request::names(["ipv6"]));
        }
    }
    let up = boot.stage(&stages::NETWORK).run(|b| {
        let links = b.sys.link_watch().map_err(NetError::LinkWatch);
        let loader = b.share_loader();
        let mut watch =
            NicWatch::open(b.sys, loader.as_deref(), links.map_err(BootError::Network)?);
        let configured = crate::net::configure(b.sys, &mut watch, ip, bootif.as_deref());
        if let Some(at) = watch.loaded_at {
            b.timeline
                .mark("drivers loaded while the network waited", at);
        }
        configured
            .map(|c| Done::ok(Some(c)))
            .map_err(BootError::Network)
    });
    (boot.plan.ip, boot.plan.bootif) = (taken, bootif);
    Ok(match up? {
        Some(c) => {
            let line = format!("network up: {}", c.summary());
            log::info!("{line}; interface: {}", c.why);
            let at = boot.sys.now();
            boot.timeline.mark(&line, at);
            NetworkOutcome::Up(c)
        }
        // The reason is the stage's timeline note (one text, not kept twice).
        None => NetworkOutcome::Failed(match boot.timeline.stages.last() {
            Some(Stage {
                outcome: Outcome::Degraded(why),
                ..
            }) => why.clone(),
            _ => String::new(),
        }),
    })
}

/// Why the network gives nothing to boot from, when the media gave nothing either (no
/// repository, no apkovl, none named on the command line); `None` when there is a source.
fn no_source(plan: &Diskless, media: &Media, network: Option<&NetworkOutcome>) -> Option<String> {
    let url = crate::cmdline::is_url;
    let urls = matches!(&plan.apkovl, ApkovlSource::Url(_))
        || matches!(&plan.repos, RepoSource::List(l) if l.iter().any(|r| url(r)));
    let named_local = matches!(
        &plan.apkovl,
        ApkovlSource::Device { .. } | ApkovlSource::Path(_)
    ) || matches!(&plan.repos, RepoSource::List(l) if l.iter().any(|r| !url(r)));
    if !media.repositories.is_empty() || media.apkovl.is_some() || named_local {
        return None;
    }
    Some(match network {
        Some(NetworkOutcome::Up(_)) if urls => return None,
        Some(NetworkOutcome::Up(c)) => format!(
            "the network ({}) has nothing to fetch (no apkovl=URL or alpine_repo=URL)",
            c.summary()
        ),
        Some(NetworkOutcome::Failed(why)) => format!("no network ({why})"),
        Some(NetworkOutcome::Off) | None if urls => "the network is off (ip=off)".into(),
        // apkovl=none or noalpine_repo without media: nothing was meant to be found.
        Some(NetworkOutcome::Off) | None => return None,
    })
}

/// The network, when the stage brought it up.
fn network_up(decisions: &Decisions) -> Option<&crate::net::Configured> {
    match &decisions.network {
        Some(NetworkOutcome::Up(c)) => Some(c),
        _ => None,
    }
}

/// `url` with its placeholders replaced from this machine (the MAC of the interface the
/// network came up on); a placeholder with no value is named in one line.
pub(super) fn boot_url(boot: &Boot<'_>, decisions: &Decisions, what: &str, url: &str) -> String {
    let mac = network_up(decisions).map(|c| c.mac.as_str());
    let values = crate::net::template::Values::of_machine(boot.sys, mac);
    let s = crate::net::template::substitute(url, &values);
    if !s.missing.is_empty() {
        log::warn!(
            "{what}: no value for {} on this machine: replaced by nothing in {}",
            s.missing.join(" "),
            s.url
        );
    }
    s.url
}

/// Why a URL source cannot be fetched now, when it cannot (the network is off or failed).
pub(super) fn offline_reason(decisions: &Decisions) -> Option<&'static str> {
    match &decisions.network {
        Some(NetworkOutcome::Up(_)) => None,
        Some(NetworkOutcome::Off) => Some("ip=off"),
        _ => Some("the network is not up"),
    }
}

/// Downloads a boot source named by URL (after substitution) to `dest(the URL substituted)`:
/// one line on failure, the time of the first byte in the timeline, `None` when there is
/// nothing to use.
pub(super) fn fetch_source(
    boot: &mut Boot<'_>,
    decisions: &mut Decisions,
    what: &str,
    url: &str,
    dest: &dyn Fn(&str) -> PathBuf,
    max_bytes: u64,
) -> Option<PathBuf> {
    let url = boot_url(boot, decisions, what, url);
    let dest = &dest(&url);
    if let Some(why) = offline_reason(decisions) {
        let line = format!("{what}: {url} cannot be fetched ({why}): booting without it");
        log::warn!("{line}");
        decisions.notes.push(line);
        return None;
    }
    let limits = crate::net::http::Limits {
        max_bytes,
        ..Default::default()
    };
    match crate::net::http::fetch_to_file(boot.sys, &url, dest, &limits) {
        Ok(f) => {
            if let Some(at) = f.first_byte {
                if !boot.timeline.marks.iter().any(|(m, _)| m == "first byte") {
                    boot.timeline.mark("first byte", at);
                }
            }
            note(
                decisions,
                format!(
                    "{what}: fetched {url} ({} bytes) to {}",
                    f.bytes,
                    dest.display()
                ),
            );
            Some(dest.to_path_buf())
        }
        Err(e) => {
            let line = format!("{what}: cannot fetch {url}: {e}; booting without it");
            log::warn!("{line}");
            decisions.notes.push(line);
            None
        }
    }
}

/// The modloop images to try: the media's, or the one downloaded now (on the modloop's
/// thread, beside the root's build).
fn fetched_modloop(
    sys: &dyn crate::sys::Sys,
    plan: &ModloopPlan,
) -> Result<Vec<PathBuf>, hw_modloop::ModloopError> {
    match plan {
        ModloopPlan::Fetch { url, dest } => {
            let limits = crate::net::http::Limits {
                max_bytes: modloop::MAX_MODLOOP,
                ..Default::default()
            };
            crate::net::http::fetch_to_file(sys, url, dest, &limits)
                .map_err(hw_modloop::ModloopError::Fetch)?;
            log::info!("modloop: fetched {url} to {}", dest.display());
            Ok(vec![dest.clone()])
        }
        ModloopPlan::Try(images) => Ok(images.clone()),
        _ => Ok(Vec::new()),
    }
}

/// `ssh_key=URL`: Alpine's firstboot fetches the keys after boot; here, when the boot brought
/// the network up anyway, they are fetched now and written as a literal key would be (only
/// when the root has no authorized_keys). Without the network it is left to the system.
fn ssh_key_from_url(boot: &mut Boot<'_>, root: &Path, url: &str, decisions: &mut Decisions) {
    if offline_reason(decisions).is_some() {
        note(
            decisions,
            format!(
                "ssh_key={url}: not fetched at boot (no network): left to the system's firstboot"
            ),
        );
        return;
    }
    let dest = |_: &str| PathBuf::from("/tmp/ramboot-ssh_key");
    let Some(file) = fetch_source(boot, decisions, "ssh_key", url, &dest, 64 << 10) else {
        return;
    };
    let keys = fs::read_to_string(boot.sys.path(&file)).unwrap_or_default();
    let _ = fs::remove_file(boot.sys.path(&file));
    if keys.trim().is_empty() || keys.trim_start().starts_with('<') {
        log::warn!("ssh_key: {url} gave no keys: nothing written");
        return;
    }
    match apkovl::install_ssh_key(root, &keys) {
        Ok(true) => note(
            decisions,
            "ssh_key: written to /root/.ssh/authorized_keys".into(),
        ),
        Ok(false) => {}
        Err(e) => log::warn!("ssh_key: {e}"),
    }
}

fn note(d: &mut Decisions, text: String) {
    log::info!("{text}");
    d.notes.push(text);
}

/// The diskless branch, from device discovery to a populated `/sysroot`.
pub fn run(boot: &mut Boot<'_>, plan: &Diskless) -> Result<Decisions, BootEnd> {
    let mut decisions = Decisions::default();
    // Media, then the network; when neither gave anything to boot from, the media stage's
    // fallback (the rescue shell, then both again).
    let media = loop {
        let media = boot
            .stage(&stages::MEDIA)
            .run(|b| find_media(b, plan, &mut decisions).map(Done::ok))?;
        if boot.plan.needs_network {
            decisions.network = Some(bring_up_network(boot)?);
        }
        let Some(why) = no_source(plan, &media, decisions.network.as_ref()) else {
            break media;
        };
        let Some(d) = &boot.record.discovery else {
            break media;
        };
        let reason = nothing_to_boot_from(d, why).to_string();
        log::error!("{reason}");
        boot.after_failure(&stages::MEDIA, &reason)?;
    };

    // The modloop is verified (a SHA-1 over the whole image) and mounted on another core while
    // the root is built: nothing before the driver reload needs it.
    let modloop_start = boot.sys.now();
    let modloop_plan = modloop_plan(boot, &media, &decisions);
    let sys = boot.sys;
    let verify = boot.plan.modloop_verify;
    let release = sys.kernel_release();
    let (built, job) = std::thread::scope(|s| {
        let mut job = match &modloop_plan {
            ModloopPlan::Try(_) | ModloopPlan::Fetch { .. } => {
                let loader = boot.share_loader();
                let release = &release;
                let plan = &modloop_plan;
                Some(s.spawn(move || {
                    let r = fetched_modloop(sys, plan).and_then(|images| {
                        hw_modloop::mount_first(sys, loader.as_deref(), &images, release, verify)
                    });
                    // The handle goes with the thread, before it is joined.
                    drop(loader);
                    (r, sys.now())
                }))
            }
            _ => None,
        };
        let mut joined = None;
        let mut wait = || {
            if let Some(j) = job.take() {
                joined = Some(j.join());
            }
        };
        let built = build_root(boot, plan, &media, &mut wait, &mut decisions);
        wait();
        (built, joined)
    });
    // The modloop's module index replaces the loader's: the boot drivers must be done with it.
    boot.finish_drivers()?;
    if !matches!(modloop_plan, ModloopPlan::Off) {
        let mut job = job;
        boot.stage(&stages::MODLOOP)
            .since(modloop_start)
            .run(|b| modloop_step(b, &modloop_plan, job.take(), &media, &mut decisions))?;
    }
    let built = built?;
    finish_root(boot, plan, built, &mut decisions);
    Ok(decisions)
}

/// After the packages and the modloop: the apkovl's device unmounted, media relocated by the
/// packages' fstab, repositories, consoles, resolv.conf and the modloop in the new root.
fn finish_root(boot: &mut Boot<'_>, plan: &Diskless, built: Built, decisions: &mut Decisions) {
    let Built {
        root,
        applied,
        mut media_mounts,
        has_fstab,
    } = built;
    if let Some(dir) = boot.apkovl_mount.take() {
        let _ = boot.sys.umount(&dir, false);
    }
    if !has_fstab {
        // The packages may have brought one.
        let fstab_now =
            sysroot::open_root(&root).and_then(|r| r.read_to_string(Path::new("etc/fstab")));
        if let Ok(text) = fstab_now {
            relocate(boot, &sysroot::parse_fstab(&text), &mut media_mounts);
        }
    }
    let repos_now: Vec<String> = match &plan.repos {
        RepoSource::List(l) => l.clone(),
        _ => boot_repositories(boot, &media_mounts),
    };
    if let Err(e) = sysroot::write_repositories_if_missing(&root, &repos_now) {
        log::warn!("cannot write /etc/apk/repositories: {e}");
    }

    // Consoles and resolv.conf.
    let mut candidates = vec!["console".to_string()];
    candidates.extend(boot.plan.consoles.iter().cloned());
    if !applied && boot.plan.autodetect_serial != AutodetectSerial::No {
        candidates.extend(sysroot::detect_serial_consoles(boot.sys));
    }
    let consoles = sysroot::expand_consoles(boot.sys, &candidates);
    match sysroot::setup_inittab_consoles(boot.sys, &root, &consoles) {
        Ok(added) if !added.is_empty() => {
            note(decisions, format!("getty added for {}", added.join(" ")))
        }
        Ok(_) => {}
        Err(e) => log::warn!("cannot update /etc/inittab: {e}"),
    }
    let _ = sysroot::copy_if_missing(
        &boot.sys.path(Path::new("/etc/resolv.conf")),
        &root,
        "etc/resolv.conf",
    );

    if decisions.modloop.is_some() {
        if let Err(e) = hw_modloop::arrange_new_root(boot.sys, Path::new(SYSROOT)) {
            log::warn!("modloop in the new root: {e}");
        }
    }
}

/// What [`build_root`] leaves for the rest of the diskless branch.
#[derive(Default)]
struct Built {
    root: PathBuf,
    /// An apkovl was applied.
    applied: bool,
    media_mounts: Vec<MediaMount>,
    /// The apkovl brought an fstab.
    has_fstab: bool,
}

/// The root tmpfs, the apkovl, default services, fstab handling and the packages.
/// `wait_modloop` joins the modloop job: media must not move while it reads the image by path.
fn build_root(
    boot: &mut Boot<'_>,
    plan: &Diskless,
    media: &Media,
    wait_modloop: &mut dyn FnMut(),
    decisions: &mut Decisions,
) -> Result<Built, BootEnd> {
    if boot.plan.single {
        boot.rescue_shell("Single-user mode: exit the shell to continue the boot.");
    }
    boot.stage(&stages::SYSROOT)
        .run(|b| mount_sysroot(b, plan).map(Done::ok))?;
    let root = boot.sys.path(Path::new(SYSROOT));

    let apkovl_world = load_apkovl(boot, plan, media, decisions)?;
    let applied = decisions.apkovl.is_some();
    let ssh_key = default_services(plan, &root, applied, decisions);
    let tiny_cloud = tinycloud::add(boot, &root, decisions);
    if let Some(url) = ssh_key.as_deref().filter(|k| crate::cmdline::is_url(k)) {
        ssh_key_from_url(boot, &root, url, decisions);
    }

    // fstab: root tmpfs options and media relocation.
    let mut media_mounts = media.mounts.clone();
    let root_fstab = sysroot::open_root(&root)
        .ok()
        .and_then(|r| r.read_to_string(Path::new("etc/fstab")).ok());
    let has_fstab = root_fstab.is_some();
    let fstab_text = root_fstab.unwrap_or_else(|| {
        fs::read_to_string(boot.sys.path(Path::new("/etc/fstab"))).unwrap_or_default()
    });
    let fstab = sysroot::parse_fstab(&fstab_text);
    if has_fstab {
        if let Some(opts) = sysroot::root_tmpfs_options(&fstab) {
            let (flags, data) = parse_mount_options(&opts);
            if let Err(e) = boot.sys.remount(Path::new(SYSROOT), flags, &data) {
                log::warn!("cannot remount {SYSROOT} with {opts}: {e}");
            }
        }
    }
    if sysroot::moves_pending(boot.sys, &fstab, &media_mounts) {
        wait_modloop();
    }
    relocate(boot, &fstab, &mut media_mounts);

    let wanted = packages::packages_to_install(
        boot,
        plan,
        &root,
        apkovl_world,
        ssh_key.is_some(),
        tiny_cloud,
    );
    let repositories: Vec<String> = match &plan.repos {
        RepoSource::List(l) => l.clone(),
        RepoSource::None => Vec::new(),
        RepoSource::Auto => boot_repositories(boot, &media_mounts),
    };
    packages::prepare_package_root(boot, &root);
    decisions.packages = wanted.packages.clone();
    decisions.repositories = repositories.clone();
    let usable = packages::usable_repositories(&repositories, offline_reason(decisions).is_none());
    let local = packages::local_repositories(&usable);
    // The cached root's key covers local repositories only: none with a remote one.
    let cache = (usable.len() == local.len())
        .then(|| cache_plan(boot, plan, &media_mounts, &local, &wanted, decisions))
        .flatten();
    if cache.is_some() {
        boot.timeline.mark("rootcache key", boot.sys.now());
    }
    let mut from_cache = false;
    if let Some(cp) = &cache {
        let checked = cp.check(boot.sys);
        boot.timeline.mark("rootcache checked", boot.sys.now());
        match checked {
            Ok(()) => {
                boot.stage(&stages::ROOTCACHE)
                    .detail(cp.image.display())
                    .run(|b| {
                        cache::mount_cached(b, cp)?;
                        from_cache = true;
                        Ok(Done::ok(()))
                    })?;
            }
            Err((level, line)) => {
                log::log!(level, "{line}");
                decisions.notes.push(format!("root cache: {line}"));
            }
        }
    } else if !plan.root_cache {
        decisions
            .notes
            .push("root cache: off (ramboot_cache=no)".into());
    }
    if from_cache {
        note(
            decisions,
            "root cache: the cached root is mounted, nothing installed".into(),
        );
    } else {
        let installed = boot
            .stage(&stages::PACKAGES)
            .detail(wanted.packages.join(" "))
            .run(|b| packages::install(b, &usable, &wanted, &decisions.overlay_files, plan))?;
        if let Some(summary) = installed {
            log::info!("installed {summary}");
        }
        if let Some(cp) = cache {
            let image = cp.image.display().to_string();
            boot.root_cache_write = cache::keep_installed(boot, cp);
            if boot.root_cache_write.is_some() {
                decisions.notes.push(format!(
                    "root cache: the installed root is written to {image} after handoff"
                ));
            }
        }
    }

    Ok(Built {
        root,
        applied,
        media_mounts,
        has_fstab,
    })
}

/// The cached root's plan, when `ramboot_cache` is on and there is boot media to keep it on.
fn cache_plan(
    boot: &Boot<'_>,
    plan: &Diskless,
    media_mounts: &[MediaMount],
    local: &[PathBuf],
    wanted: &packages::Wanted,
    decisions: &Decisions,
) -> Option<cache::CachePlan> {
    if !plan.root_cache {
        return None;
    }
    let mounts: Vec<PathBuf> = media_mounts.iter().map(|m| m.mountpoint.clone()).collect();
    let media = cache::media_for(&mounts, local)?;
    let key = cache::key(
        boot,
        plan,
        &wanted.packages,
        local,
        &decisions.overlay_files,
    );
    Some(cache::CachePlan::new(
        boot,
        media,
        key,
        &decisions.overlay_files,
    ))
}

/// The sysroot stage's step: the tmpfs, and the usr-merged skeleton when asked for.
fn mount_sysroot(boot: &mut Boot<'_>, plan: &Diskless) -> Result<(), BootError> {
    let target = Path::new(SYSROOT);
    let _ = fs::create_dir_all(boot.sys.path(target));
    let (flags, data) = parse_mount_options(&plan.tmpfs_flags);
    boot.sys
        .mount("tmpfs", target, "tmpfs", flags, &data)
        .map_err(|source| BootError::RootMount {
            device: "tmpfs".into(),
            target: target.into(),
            source,
        })?;
    if plan.bootstrap_usr_merged {
        let root = boot.sys.path(target);
        for d in ["usr/lib", "usr/bin", "usr/sbin"] {
            let _ = fs::create_dir_all(root.join(d));
        }
        for l in ["bin", "sbin", "lib"] {
            let _ = std::os::unix::fs::symlink(format!("usr/{l}"), root.join(l));
        }
    }
    Ok(())
}
