//! The diskless branch (no `root=`): find the boot media, build the whole system in a tmpfs from
//! the media's repositories and the apkovl, and leave it ready for switch_root.
//!
//! Order and rules follow Alpine's `initramfs-init` (diskless part); the differences are where
//! Alpine is weak: the apkovl is chosen by a documented rule and extracted safely, the modloop
//! is verified and mounted here (so the initramfs can load every driver), packages are installed
//! by ramboot's own apk-compatible installer, and every decision is logged.

use super::apkovl;
use super::packages;
use super::runner::Done;
use super::sysroot::{self, MediaMount};
use super::{stages, Boot, BootEnd, BootError, SYSROOT};
use crate::cmdline::{ApkovlSource, AutodetectSerial, Diskless, ModloopSpec, RepoSource};
use crate::hw::discover::{discover, DiscoverConfig, Discovery, Goal};
use crate::hw::modloop;
use crate::media::ScanOptions;
use crate::sys::parse_mount_options;
use rustix::fs::{Mode, OFlags};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
    pub notes: Vec<String>,
}

fn note(d: &mut Decisions, text: String) {
    log::info!("{text}");
    d.notes.push(text);
}

/// Finds and mounts the boot media; fails only when there is nothing to boot from.
fn find_media(
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
    cfg.scan = ScanOptions {
        modloop: match &boot.plan.modloop {
            ModloopSpec::Path(p) => Some(p.clone()),
            _ => None,
        },
        kernel_release: Some(boot.sys.kernel_release()),
    };
    let d: Discovery = discover(boot.sys, boot.loader(), &cfg);
    boot.record.discovery = Some(d.clone());
    for dev in &d.devices {
        if !dev.info.dev.name.starts_with("loop") && !dev.info.dev.name.starts_with("ram") {
            boot.timeline.mark(
                &format!("device {} appeared", dev.info.dev.name),
                dev.appeared,
            );
        }
    }
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
        return Err(BootError::NoBootMedia {
            devices: d
                .devices
                .iter()
                .map(|s| s.info.dev.name.clone())
                .filter(|n| !n.starts_with("loop"))
                .collect(),
            waited: d.finished.saturating_sub(d.started),
        });
    }
    Ok(media)
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
fn on_usb(boot: &Boot<'_>, device: &str) -> bool {
    let sysfs = boot.sys.path(&Path::new("/sys/class/block").join(device));
    fs::canonicalize(sysfs).is_ok_and(|p| {
        p.components()
            .any(|c| c.as_os_str().to_string_lossy().starts_with("usb"))
    })
}

/// What the modloop stage has to do.
enum ModloopPlan {
    /// `modloop=none`: no modloop, no stage.
    Off,
    /// None can be tried; why.
    Without(String),
    /// The images to try, in order.
    Try(Vec<PathBuf>),
}

fn modloop_plan(boot: &Boot<'_>, media: &Media) -> ModloopPlan {
    match &boot.plan.modloop {
        ModloopSpec::None => ModloopPlan::Off,
        ModloopSpec::Url(u) => {
            let w =
                format!("modloop={u} needs networking, which ramboot does not do yet; no modloop");
            log::warn!("{w}");
            ModloopPlan::Without(w)
        }
        _ if media.modloops.is_empty() => {
            ModloopPlan::Without("no modloop on the boot media".into())
        }
        _ => ModloopPlan::Try(media.modloops.clone()),
    }
}

/// What the modloop job on its thread gives back: the mount, and when it finished.
type ModloopJob = std::thread::Result<(
    Result<modloop::ModloopMount, modloop::ModloopError>,
    Duration,
)>;

/// The modloop stage's step, once its job was joined: a refused modloop fails the stage (a
/// warning: the boot goes on without it).
fn modloop_step(
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
/// initramfs's module tree at it and loads drivers for devices the initramfs had no module for.
fn finish_modloop(
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
    // The modloop's thread was joined: the boot holds the only handle again.
    let has_loader = boot.loader().is_some();
    match boot.loader_mut() {
        Some(loader) => {
            if let Err(e) = loader.reload() {
                log::warn!("cannot read the modloop's module index: {e}");
            }
        }
        None if has_loader => log::warn!("the module index was not re-read: the loader is in use"),
        None => {}
    }
    // Drivers for the devices the initramfs had no module for: only those modaliases are looked
    // up again, no second walk over sysfs.
    if let Some(loader) = boot.loader() {
        let report = crate::hw::coldplug::Hotplug::new()
            .load(loader, media.unmatched_modaliases.iter().cloned());
        for (m, why) in &report.failed {
            log::warn!("module {m}: {why}");
        }
        if !report.loaded.is_empty() {
            note(
                decisions,
                format!("drivers from the modloop: {}", report.loaded.join(" ")),
            );
        }
    }
    boot.timeline.mark("modloop drivers loaded", boot.sys.now());
}

/// Resolves `apkovl=` (or the media's choice) to a file, mounting a device when asked to.
fn locate_apkovl(boot: &mut Boot<'_>, plan: &Diskless, media: &Media) -> Option<PathBuf> {
    match &plan.apkovl {
        ApkovlSource::None => None,
        ApkovlSource::Auto => media.apkovl.clone(),
        ApkovlSource::Url(u) => {
            log::warn!("apkovl={u} needs networking, which ramboot does not do yet: booting without an apkovl");
            None
        }
        ApkovlSource::Path(p) => Some(p.clone()),
        ApkovlSource::Device {
            device,
            fstype,
            path,
        } => {
            let text = device.to_string();
            let spec = crate::hw::DeviceSpec::parse(&text)?;
            let found = crate::hw::block::list(boot.sys)
                .iter()
                .map(|d| crate::hw::block::identify(boot.sys, d))
                .find(|info| spec.matches(info));
            let name = match &found {
                Some(info) => info.dev.name.clone(),
                None => text.rsplit('/').next().unwrap_or(&text).to_string(),
            };
            let dir = PathBuf::from("/media").join(&name);
            let _ = fs::create_dir_all(boot.sys.path(&dir));
            let result = match (fstype, &found) {
                // `DEVICE:FSTYPE:PATH`: mount as told, like Alpine's `mount -t FSTYPE`.
                (Some(t), _) => boot
                    .sys
                    .mount(
                        &format!("/dev/{name}"),
                        &dir,
                        t,
                        crate::sys::MountFlags::RDONLY,
                        "",
                    )
                    .map_err(|e| e.to_string()),
                (None, Some(info)) => {
                    crate::hw::mount::mount_ro(boot.sys, boot.loader(), info, &dir)
                        .map(drop)
                        .map_err(|e| e.to_string())
                }
                (None, None) => Err(format!("device {text} not found")),
            };
            match result {
                Ok(()) => {
                    boot.apkovl_mount = Some(dir.clone());
                    Some(dir.join(path.trim_start_matches('/')))
                }
                Err(e) => {
                    log::warn!("apkovl: cannot mount {text} on {}: {e}", dir.display());
                    None
                }
            }
        }
    }
}

/// The package name of a world atom (`openssl>3`, `foo@edge`: `openssl`, `foo`).
fn atom_name(atom: &str) -> String {
    crate::apk::dep::Dep::parse(atom)
        .map(|d| d.name)
        .unwrap_or_else(|_| atom.to_string())
}

/// `ssh_key=`: a literal key goes to `/root/.ssh/authorized_keys` (0700/0600) unless one exists.
fn install_ssh_key(root: &Path, key: &str) -> std::io::Result<bool> {
    if crate::cmdline::is_url(key) {
        return Ok(false);
    }
    let root = sysroot::open_root(root)?;
    let file = Path::new("root/.ssh/authorized_keys");
    if root.exists(file, true) {
        return Ok(false);
    }
    root.create_dirs(Path::new("root/.ssh"), 0o700, &mut Vec::new())?;
    // sshd checks the directories the key is in, wherever links inside the root lead.
    for dir in ["root", "root/.ssh"] {
        let fd = root.open_at(Path::new(dir), OFlags::RDONLY | OFlags::DIRECTORY)?;
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o700))?;
    }
    let mut f = root.open_write(file, 0o600)?;
    std::io::Write::write_all(&mut f, format!("{}\n", key.trim()).as_bytes())?;
    rustix::fs::fchmod(&f, Mode::from_raw_mode(0o600))?;
    Ok(true)
}

/// apk's architecture name for this machine.
pub fn apk_arch(machine: &str) -> &str {
    match machine {
        "armv7l" | "armv8l" => "armv7",
        "armv6l" => "armhf",
        "i686" | "i586" | "i486" | "i386" => "x86",
        other => other,
    }
}

/// The diskless branch, from device discovery to a populated `/sysroot`.
pub fn run(boot: &mut Boot<'_>, plan: &Diskless) -> Result<Decisions, BootEnd> {
    let mut decisions = Decisions::default();
    let media = boot
        .stage(&stages::MEDIA)
        .run(|b| find_media(b, plan, &mut decisions).map(Done::ok))?;
    if boot.plan.needs_network {
        log::warn!("networking (ip=, URLs) is not supported by ramboot yet: continuing offline");
    }

    // The modloop is verified (a SHA-1 over the whole image) and mounted on another core while
    // the root is built: nothing before the driver reload needs it.
    let modloop_start = boot.sys.now();
    let modloop_plan = modloop_plan(boot, &media);
    let sys = boot.sys;
    let verify = boot.plan.modloop_verify;
    let release = sys.kernel_release();
    let (built, job) = std::thread::scope(|s| {
        let mut job = match &modloop_plan {
            ModloopPlan::Try(images) => {
                let loader = boot.share_loader();
                let release = &release;
                Some(s.spawn(move || {
                    let r = modloop::mount_first(sys, loader.as_deref(), images, release, verify);
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
        if let Err(e) = modloop::arrange_new_root(boot.sys, Path::new(SYSROOT)) {
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

    let wanted = packages_to_install(boot, plan, &root, apkovl_world, ssh_key.is_some());
    let repositories: Vec<String> = match &plan.repos {
        RepoSource::List(l) => l.clone(),
        RepoSource::None => Vec::new(),
        RepoSource::Auto => boot_repositories(boot, &media_mounts),
    };
    prepare_package_root(boot, &root);
    decisions.packages = wanted.packages.clone();
    decisions.repositories = repositories.clone();
    let local = packages::local_repositories(&repositories);
    let installed = boot
        .stage(&stages::PACKAGES)
        .detail(wanted.packages.join(" "))
        .run(|b| packages::install(b, &local, &wanted, &decisions.overlay_files, plan))?;
    if let Some(summary) = installed {
        log::info!("installed {summary}");
    }

    Ok(Built {
        root,
        applied,
        media_mounts,
        has_fstab,
    })
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

/// The apk database, then the apkovl stage; returns the world the apkovl brings.
fn load_apkovl(
    boot: &mut Boot<'_>,
    plan: &Diskless,
    media: &Media,
    decisions: &mut Decisions,
) -> Result<Vec<String>, BootEnd> {
    let apkovl = locate_apkovl(boot, plan, media).filter(|p| {
        let ok = boot.sys.path(p).is_file();
        if !ok {
            log::warn!("apkovl {} is not a file: booting without one", p.display());
        }
        ok
    });
    if let Err(e) = apkovl::init_db(boot.sys, Path::new(SYSROOT)) {
        log::warn!("cannot create the apk database: {e}");
    }
    let Some(path) = apkovl else {
        boot.stage(&stages::APKOVL)
            .untitled()
            .run(|_| Ok(Done::ok(())))?;
        return Ok(Vec::new());
    };
    let applied = boot
        .stage(&stages::APKOVL)
        .detail(path.display())
        .run(|b| {
            apkovl::apply(b.sys, Path::new(SYSROOT), &path)
                .map(|x| Done::ok(Some(x)))
                .map_err(BootError::Apkovl)
        })?;
    let Some(x) = applied else {
        return Ok(Vec::new());
    };
    for w in &x.warnings {
        log::warn!("apkovl: {w}");
    }
    decisions.overlay_files = x.overlay_files;
    decisions.apkovl = Some(path);
    Ok(x.world)
}

/// Default services (without an apkovl, or when it asks for them) and `ssh_key=`; returns the
/// key when one is to be installed.
fn default_services(
    plan: &Diskless,
    root: &Path,
    applied: bool,
    decisions: &mut Decisions,
) -> Option<String> {
    let new_root = sysroot::open_root(root);
    let marker = Path::new("etc/.default_boot_services");
    decisions.default_services =
        !applied || new_root.as_ref().is_ok_and(|r| r.exists(marker, true));
    let ssh_key = plan.ssh_key.clone().filter(|_| decisions.default_services);
    if decisions.default_services {
        if let Err(e) = sysroot::add_default_services(root, ssh_key.is_some()) {
            log::warn!("cannot add the default services: {e}");
        }
        if let Ok(r) = &new_root {
            let _ = r.remove_file(marker);
        }
    }
    if let Some(key) = &ssh_key {
        match install_ssh_key(root, key) {
            Ok(true) => note(
                decisions,
                "ssh_key: written to /root/.ssh/authorized_keys".into(),
            ),
            Ok(false) => {}
            Err(e) => log::warn!("ssh_key: {e}"),
        }
    }
    ssh_key
}

/// What the package stage installs.
pub struct Wanted {
    /// Every package, the user's first, without duplicates.
    pub packages: Vec<String>,
    /// Packages the boot adds on its own, with why; one the user asked for is not implicit.
    pub implicit: Vec<(String, String)>,
}

/// `pkgs=`, the apkovl's world, then what the boot adds on its own.
fn packages_to_install(
    boot: &Boot<'_>,
    plan: &Diskless,
    root: &Path,
    apkovl_world: Vec<String>,
    ssh_key: bool,
) -> Wanted {
    let mut pkgs: Vec<String> = plan.pkgs.clone();
    pkgs.extend(apkovl_world);
    let mut implicit: Vec<(String, String)> = Vec::new();
    if ssh_key {
        implicit.push(("openssh".into(), "wanted for ssh_key=".into()));
    }
    implicit.push((
        "alpine-base".into(),
        "the base system every diskless boot installs".into(),
    ));
    if copy_modloop_keys(boot, root) > 0 {
        implicit.push((
            "openssl".into(),
            "wanted to verify the modloop signature".into(),
        ));
    }
    let asked: Vec<String> = pkgs.iter().map(|p| atom_name(p)).collect();
    implicit.retain(|(name, _)| !asked.contains(name));
    pkgs.extend(implicit.iter().map(|(name, _)| name.clone()));
    let mut seen = std::collections::HashSet::new();
    pkgs.retain(|p| seen.insert(p.clone()));
    Wanted {
        packages: pkgs,
        implicit,
    }
}

/// The initramfs's keys, the architecture and the clock service in the new root.
fn prepare_package_root(boot: &Boot<'_>, root: &Path) {
    let _ = sysroot::copy_dir_files(
        &boot.sys.path(Path::new("/etc/apk/keys")),
        root,
        "etc/apk/keys",
    );
    if let Ok(r) = sysroot::open_root(root) {
        let arch_file = Path::new("etc/apk/arch");
        if r.exists(arch_file, true) {
            let arch = format!("{}\n", apk_arch(&boot.sys.machine()));
            let _ = r.write(arch_file, arch.as_bytes(), 0o644);
        }
    }
    let clock = sysroot::clock_service(boot.sys);
    let _ = sysroot::rc_add(root, clock, "boot");
}

/// Moves media to their fstab mount points and keeps `boot.mounts` in step.
fn relocate(boot: &mut Boot<'_>, fstab: &[sysroot::FstabEntry], mounts: &mut [MediaMount]) {
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
fn boot_repositories(boot: &Boot<'_>, mounts: &[MediaMount]) -> Vec<String> {
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

/// `/var/cache/misc/*modloop*.SIGN.RSA.*.pub` go into the new root (the modloop service there
/// verifies with them); returns how many.
fn copy_modloop_keys(boot: &Boot<'_>, root: &Path) -> usize {
    let dir = boot.sys.path(Path::new("/var/cache/misc"));
    let Ok(rd) = fs::read_dir(&dir) else { return 0 };
    let mut n = 0;
    for e in rd.filter_map(|e| e.ok()) {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.contains("modloop") && name.contains(".SIGN.RSA.") && name.ends_with(".pub") {
            let misc = Path::new("var/cache/misc");
            let copied = sysroot::open_root(root).and_then(|r| {
                r.create_dirs(misc, 0o755, &mut Vec::new())?;
                r.copy_in(&e.path(), &misc.join(&name))
            });
            if copied.is_ok() {
                n += 1;
            }
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, MetadataExt};

    /// `ssh_key=` after an apkovl whose `root` is an absolute link: the key lands where the link
    /// leads inside the new root; the host directory it names keeps its mode and gets nothing.
    #[test]
    fn ssh_key_follows_links_inside_the_new_root() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("sysroot");
        let outside = d.path().join("outside");
        let mirror = root.join(outside.strip_prefix("/").unwrap());
        fs::create_dir_all(&outside).unwrap();
        fs::create_dir_all(&mirror).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().mode() & 0o7777;
        let before = mode(&outside);
        symlink(&outside, root.join("root")).unwrap();
        assert!(install_ssh_key(&root, "ssh-ed25519 AAAA test").unwrap());
        assert_eq!(
            fs::read_dir(&outside).unwrap().count(),
            0,
            "written outside"
        );
        assert_eq!(mode(&outside), before);
        let key = mirror.join(".ssh/authorized_keys");
        assert_eq!(fs::read_to_string(&key).unwrap(), "ssh-ed25519 AAAA test\n");
        assert_eq!(mode(&key), 0o600);
        assert_eq!(mode(&mirror.join(".ssh")), 0o700);
        assert_eq!(mode(&mirror), 0o700);
        assert!(!install_ssh_key(&root, "another").unwrap());
    }
}
