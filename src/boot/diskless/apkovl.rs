//! The apkovl stage of the diskless branch: where the apkovl comes from (the media's choice, a
//! path, or a device to mount), its extraction over the new root's fresh apk database, and what
//! depends on it: the default services and `ssh_key=`.

use super::{note, Decisions, Media};
use crate::boot::runner::Done;
use crate::boot::{apkovl, stages, sysroot, Boot, BootEnd, BootError, SYSROOT};
use crate::cmdline::{ApkovlSource, Diskless};
use rustix::fs::{Mode, OFlags};
use std::fs;
use std::path::{Path, PathBuf};

/// The largest apkovl downloaded (a few KB is usual; lbu keeps whole `/etc` trees).
const MAX_APKOVL: u64 = 256 << 20;

/// Resolves `apkovl=` (or the media's choice) to a file, mounting a device when asked to.
pub(super) fn locate_apkovl(
    boot: &mut Boot<'_>,
    plan: &Diskless,
    media: &Media,
    decisions: &mut Decisions,
) -> Option<PathBuf> {
    match &plan.apkovl {
        ApkovlSource::None => None,
        ApkovlSource::Auto => media.apkovl.clone(),
        // Alpine: `wget -O /tmp/<name without ?query>`; the file then goes through the same
        // checks as one from the media.
        ApkovlSource::Url(u) => {
            // The name comes from the URL after substitution, as Alpine's `${ovl##*/}`.
            let dest = |url: &str| Path::new("/tmp").join(crate::net::http::local_name(url));
            super::fetch_source(boot, decisions, "apkovl", u, &dest, MAX_APKOVL)
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

/// The apk database, then the apkovl stage; returns the world the apkovl brings.
pub(super) fn load_apkovl(
    boot: &mut Boot<'_>,
    plan: &Diskless,
    media: &Media,
    decisions: &mut Decisions,
) -> Result<Vec<String>, BootEnd> {
    let apkovl = locate_apkovl(boot, plan, media, decisions).filter(|p| {
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
                .map_err(BootError::from)
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
pub(super) fn default_services(
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

/// `ssh_key=`: a literal key goes to `/root/.ssh/authorized_keys` (0700/0600) unless one exists.
pub(super) fn install_ssh_key(root: &Path, key: &str) -> std::io::Result<bool> {
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
