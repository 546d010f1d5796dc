//! Installing the new root's packages at boot with ramboot's own apk-compatible installer, the
//! way Alpine's init calls `apk add --root /sysroot --initramfs-diskless-boot ...`.

use super::timeline::Outcome;
use super::{console, Boot, SYSROOT};
use crate::apk::{self, InstallRequest, Progress, ScriptPolicy};
use crate::cmdline::Diskless;
use std::path::{Path, PathBuf};

/// Creates the apk database in the new root (`apk add --initdb`), before the apkovl is applied.
pub fn init_db(boot: &Boot<'_>) {
    let req = InstallRequest {
        root: PathBuf::from(SYSROOT),
        initdb: true,
        scripts: ScriptPolicy::Never,
        use_root_repositories: false,
        ..Default::default()
    };
    if let Err(e) = apk::install(&req, boot.sys) {
        log::warn!("cannot create the apk database: {e}");
    }
}

/// `/sys`, `/proc` and `/dev` inside the new root while package scripts run.
const BINDS: [&str; 3] = ["/sys", "/proc", "/dev"];

/// Installs `pkgs` from `repositories` (local paths; URLs need networking and are skipped) with
/// the apkovl's files winning. Failures are reported per package; the boot goes on.
/// `implicit` are packages the boot adds on its own (`alpine-base`, `openssl` for modloop keys,
/// `openssh` for `ssh_key=`): when no repository provides one, it is skipped with a notice and
/// kept out of the world file, so `apk` after boot does not complain about it.
pub fn install(
    boot: &mut Boot<'_>,
    repositories: &[String],
    pkgs: &[String],
    implicit: &[String],
    overlay_files: &[String],
    plan: &Diskless,
) -> Outcome {
    let mut local = Vec::new();
    for r in repositories {
        if crate::cmdline::is_url(r) {
            log::warn!("repository {r} needs networking, which ramboot does not do yet: skipped");
        } else {
            local.push(PathBuf::from(r));
        }
    }
    let mut bound = Vec::new();
    for b in BINDS {
        let target = Path::new(SYSROOT).join(&b[1..]);
        let _ = std::fs::create_dir_all(boot.sys.path(&target));
        match boot.sys.bind_mount(Path::new(b), &target) {
            Ok(()) => bound.push(target),
            Err(e) => log::warn!("cannot bind {b} into {SYSROOT} for package scripts: {e}"),
        }
    }
    console::ebegin(&format!("Installing packages ({})", pkgs.join(" ")));
    let req = InstallRequest {
        root: PathBuf::from(SYSROOT),
        repositories: local,
        world_add: pkgs.to_vec(),
        overlay_list: (!plan.keep_apk_new && !overlay_files.is_empty())
            .then(|| overlay_files.to_vec()),
        diskless_boot: true,
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
        Ok(mut report) => {
            let (notices, skipped): (Vec<_>, Vec<_>) = report
                .skipped_world
                .drain(..)
                .partition(|(atom, _)| implicit.contains(atom));
            report.skipped_world = skipped;
            for (atom, _) in &notices {
                log::info!("{atom} is not in any repository: skipped");
            }
            drop_from_world(boot, notices.iter().map(|(a, _)| a.as_str()));
            boot.record
                .installed
                .extend(report.installed.iter().cloned());
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
                report.bytes as f64 / (1024.0 * 1024.0),
                report.elapsed.as_secs_f64() * 1000.0
            );
            let problems = report.failed.len() + report.skipped_world.len() + report.broken.len();
            if problems == 0 {
                console::eend(Ok(()));
                log::info!("installed {summary}");
                Outcome::Ok
            } else {
                console::eend(Err(&format!("{problems} problem(s); {summary}")));
                Outcome::Degraded(format!("{problems} package problem(s)"))
            }
        }
        Err(e) => {
            // Alpine: a warning only, the boot goes on (mkinitfs 6702e30).
            let why = e.to_string();
            console::eend(Err(&why));
            Outcome::Degraded(why)
        }
    };
    for target in bound.iter().rev() {
        if let Err(e) = boot.sys.umount(target, false) {
            log::warn!("cannot unmount {}: {e}", target.display());
        }
    }
    outcome
}

/// Removes `names` from the new root's `etc/apk/world`.
fn drop_from_world<'n>(boot: &Boot<'_>, names: impl Iterator<Item = &'n str>) {
    let names: Vec<&str> = names.collect();
    if names.is_empty() {
        return;
    }
    let path = boot.sys.path(&Path::new(SYSROOT).join("etc/apk/world"));
    let Ok(text) = std::fs::read_to_string(&path) else {
        return;
    };
    let kept: String = text
        .lines()
        .filter(|l| !names.contains(&l.trim()))
        .map(|l| format!("{l}\n"))
        .collect();
    if let Err(e) = std::fs::write(&path, kept) {
        log::warn!("cannot update {}: {e}", path.display());
    }
}
