//! The new root's packages at boot: what to install (`pkgs=`, the apkovl's world, what the boot
//! adds on its own) and installing it with ramboot's own apk-compatible installer, the way
//! Alpine's init calls `apk add --root /sysroot --initramfs-diskless-boot ...`.

use super::runner::Done;
use super::{sysroot, Boot, BootError, SYSROOT};
use crate::apk::{self, ApkError, InstallRequest, Progress, ScriptPolicy};
use crate::cmdline::Diskless;
use std::fs;
use std::path::{Path, PathBuf};

/// `/sys`, `/proc` and `/dev` inside the new root while package scripts run.
const BINDS: [&str; 3] = ["/sys", "/proc", "/dev"];

/// The repositories the installer can use: local paths, and URLs when the network is up
/// (`online`); without it, each URL is one line and skipped.
pub fn usable_repositories(repositories: &[String], online: bool) -> Vec<PathBuf> {
    let mut usable = Vec::new();
    for r in repositories {
        if crate::cmdline::is_url(r) && !online {
            log::warn!("repository {r} cannot be fetched (the network is not up): skipped");
        } else {
            usable.push(PathBuf::from(r));
        }
    }
    usable
}

/// The local repositories among `repositories` (the root cache's key covers only these).
pub fn local_repositories(repositories: &[PathBuf]) -> Vec<PathBuf> {
    repositories
        .iter()
        .filter(|r| !r.to_str().is_some_and(crate::cmdline::is_url))
        .cloned()
        .collect()
}

/// Where packages and indexes of URL repositories go: the root's cache when it has one that
/// can be written (as apk does), else memory.
const NET_CACHE: &str = "/tmp/ramboot-apk-cache";

/// The installer's fetcher, over the boot's HTTP client.
fn fetcher() -> apk::FetchFn {
    Box::new(|sys, url, dest| {
        let limits = crate::net::http::Limits {
            max_bytes: 512 << 20,
            ..Default::default()
        };
        crate::net::http::fetch_to_host_path(sys, url, dest, &limits)
            .map(drop)
            .map_err(|e| e.to_string())
    })
}

/// The packages stage's step: installs the wanted packages from `repositories` with the
/// apkovl's files winning. Failures are reported per package and finish the stage degraded; the
/// boot goes on. Only an internal error of the installer (a bug: a panic) is an error here: the
/// boot then takes the stage's failure policy. Gives the summary to log once the stage's line is
/// closed, when nothing went wrong.
/// Packages the boot adds on its own (`alpine-base`, `openssl` for modloop keys, `openssh` for
/// `ssh_key=`): when one cannot be installed (usually: no repository has it), it is skipped with a
/// notice saying why it was wanted and kept out of the world file, so `apk` after boot does not
/// complain about it.
pub fn install(
    boot: &mut Boot<'_>,
    repositories: &[PathBuf],
    wanted: &Wanted,
    overlay_files: &[String],
    plan: &Diskless,
) -> Result<Done<Option<String>>, BootError> {
    let bound = bind_for_scripts(boot);
    let remote = repositories
        .iter()
        .any(|r| r.to_str().is_some_and(crate::cmdline::is_url));
    let root_cache = boot.sys.path(&Path::new(SYSROOT).join("etc/apk/cache"));
    // A cache on read-only media (the usual boot medium) cannot take downloads: memory then.
    let writable = rustix::fs::access(&root_cache, rustix::fs::Access::WRITE_OK).is_ok();
    let cache_dir = (remote && !(root_cache.is_dir() && writable)).then(|| {
        let _ = std::fs::create_dir_all(boot.sys.path(Path::new(NET_CACHE)));
        PathBuf::from(NET_CACHE)
    });
    let req = InstallRequest {
        root: PathBuf::from(SYSROOT),
        repositories: repositories.to_vec(),
        world_add: wanted.packages.clone(),
        overlay_list: (!plan.keep_apk_new && !overlay_files.is_empty())
            .then(|| overlay_files.to_vec()),
        diskless_boot: true,
        fetch: remote.then(fetcher),
        cache_dir,
        clean_protected: !plan.keep_apk_new,
        scripts: ScriptPolicy::Auto,
        progress: Some(Box::new(move |p: &Progress| {
            if let Progress::Package {
                index,
                total,
                name,
                version,
                ..
            } = p
            {
                // Under `quiet` the logger keeps this off the console; the kernel log gets it.
                log::info!("({index}/{total}) Installing {name} ({version})");
            }
        })),
        ..Default::default()
    };
    let outcome = match apk::install(&req, boot.sys) {
        Ok(report) => {
            mark_phases(boot, &report);
            Ok(record_report(boot, report, &wanted.implicit))
        }
        Err(e @ ApkError::Internal(_)) => Err(BootError::Install { source: e }),
        Err(e) => {
            if let ApkError::Unsatisfiable {
                unused_repositories,
                ..
            } = &e
            {
                boot.record.unused_repositories = unused_repositories.clone();
            }
            // Alpine: a warning only, the boot goes on (mkinitfs 6702e30).
            let why = e.to_string();
            Ok(Done::degraded(None, why.clone()).shown(why))
        }
    };
    for target in bound.iter().rev() {
        if let Err(e) = boot.sys.umount(target, false) {
            log::warn!("cannot unmount {}: {e}", target.display());
        }
    }
    outcome
}

/// The installer's phases as timeline marks at their ends, each named with its duration, then
/// the totals spread over the commit (scripts, waiting for staged packages) at the end: where
/// the stage's time went.
fn mark_phases(boot: &mut Boot<'_>, report: &apk::InstallReport) {
    let end = boot.sys.now();
    let mut at = end.saturating_sub(report.elapsed);
    let phases = ["prepare", "solve", "fetch", "commit", "triggers", "db"];
    for (name, took) in &report.profile {
        let ms = crate::decimal::Decimal::millis(*took);
        if phases.contains(&name.as_str()) {
            at += *took;
            boot.timeline
                .mark(&format!("packages: {name} {ms:.1}ms"), at.min(end));
        } else {
            boot.timeline
                .mark(&format!("packages: {name} {ms:.1}ms"), end);
        }
    }
}

/// Binds `/sys`, `/proc` and `/dev` into the new root; returns what was bound.
fn bind_for_scripts(boot: &Boot<'_>) -> Vec<PathBuf> {
    let mut bound = Vec::new();
    for b in BINDS {
        let target = Path::new(SYSROOT).join(&b[1..]);
        let _ = std::fs::create_dir_all(boot.sys.path(&target));
        match boot.sys.bind_mount(Path::new(b), &target) {
            Ok(()) => bound.push(target),
            Err(e) => log::warn!("cannot bind {b} into {SYSROOT} for package scripts: {e}"),
        }
    }
    bound
}

/// Logs and records what the installer did; the stage is degraded by any package problem.
fn record_report(
    boot: &mut Boot<'_>,
    mut report: apk::InstallReport,
    implicit: &[(String, String)],
) -> Done<Option<String>> {
    boot.record.unused_repositories = report.repo_warnings.clone();
    let (notices, skipped): (Vec<_>, Vec<_>) = report
        .skipped_world
        .drain(..)
        .partition(|(atom, _)| implicit.iter().any(|(name, _)| name == atom));
    report.skipped_world = skipped;
    for (atom, why) in &notices {
        let wanted = implicit
            .iter()
            .find(|(name, _)| name == atom)
            .map_or("", |(_, wanted)| wanted.as_str());
        if why.contains("(no such package)") {
            log::info!("{atom} ({wanted}) is not in any repository: skipped");
        } else {
            log::info!("{atom} ({wanted}) cannot be installed: skipped: {why}");
        }
    }
    drop_from_world(boot, notices.iter().map(|(a, _)| a.as_str()));
    boot.record
        .installed
        .extend(report.installed.iter().cloned());
    boot.record
        .scripts_not_run
        .append(&mut report.scripts_not_run);
    let problems = &mut boot.record.package_problems;
    problems.extend(
        report
            .skipped_world
            .iter()
            .map(|(a, w)| (a.clone(), format!("skipped: {w}"))),
    );
    problems.extend(
        report
            .failed
            .iter()
            .map(|(n, e)| (n.clone(), format!("refused: {e}"))),
    );
    problems.extend(
        report
            .broken
            .iter()
            .map(|(n, w)| (n.clone(), format!("installed with errors: {w}"))),
    );
    for (atom, why) in &report.skipped_world {
        log::warn!("package {atom} skipped: {why}");
    }
    for (name, err) in &report.failed {
        log::error!("package {name} refused: {err}");
    }
    for (name, why) in &report.broken {
        log::warn!("package {name} installed with errors: {why}");
    }
    let summary = format!(
        "{} packages, {} files, {:.1} MiB in {:.0} ms",
        report.installed.len(),
        report.files,
        crate::decimal::Decimal::mib(report.bytes),
        crate::decimal::Decimal::millis(report.elapsed)
    );
    match report.failed.len() + report.skipped_world.len() + report.broken.len() {
        0 => Done::ok(Some(summary)),
        n => Done::degraded(None, format!("{n} package problem(s)"))
            .shown(format!("{n} problem(s); {summary}")),
    }
}

/// Removes `names` from the new root's `etc/apk/world`.
fn drop_from_world<'n>(boot: &Boot<'_>, names: impl Iterator<Item = &'n str>) {
    let names: Vec<&str> = names.collect();
    if names.is_empty() {
        return;
    }
    let world = Path::new("etc/apk/world");
    let Ok(root) = super::sysroot::open_root(&boot.sys.path(Path::new(SYSROOT))) else {
        return;
    };
    let Ok(text) = root.read_to_string(world) else {
        return;
    };
    let kept: String = text
        .lines()
        .filter(|l| !names.contains(&l.trim()))
        .map(|l| format!("{l}\n"))
        .collect();
    if let Err(e) = root.write(world, kept.as_bytes(), 0o644) {
        log::warn!("cannot update {SYSROOT}/{}: {e}", world.display());
    }
}

/// What tiny-cloud needs installed (Alpine's list).
pub const TINY_CLOUD: [&str; 3] = ["tiny-cloud", "ifupdown-ng", "doas"];

/// What the package stage installs.
pub struct Wanted {
    /// Every package, the user's first, without duplicates.
    pub packages: Vec<String>,
    /// Packages the boot adds on its own, with why; one the user asked for is not implicit.
    pub implicit: Vec<(String, String)>,
}

/// `pkgs=`, the apkovl's world, then what the boot adds on its own.
pub(super) fn packages_to_install(
    boot: &Boot<'_>,
    plan: &Diskless,
    root: &Path,
    apkovl_world: Vec<String>,
    ssh_key: bool,
    tiny_cloud: bool,
) -> Wanted {
    let mut pkgs: Vec<String> = plan.pkgs.clone();
    pkgs.extend(apkovl_world);
    let mut implicit: Vec<(String, String)> = Vec::new();
    if ssh_key {
        implicit.push(("openssh".into(), "wanted for ssh_key=".into()));
    }
    if tiny_cloud {
        for p in TINY_CLOUD {
            implicit.push((p.into(), "wanted for tiny-cloud".into()));
        }
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
pub(super) fn prepare_package_root(boot: &Boot<'_>, root: &Path) {
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

/// The package name of a world atom (`openssl>3`, `foo@edge`: `openssl`, `foo`).
fn atom_name(atom: &str) -> String {
    crate::apk::dep::Dep::parse(atom)
        .map(|d| d.name)
        .unwrap_or_else(|_| atom.to_string())
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
