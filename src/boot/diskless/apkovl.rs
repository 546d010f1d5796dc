//! The apkovl stage of the diskless branch: where the apkovl comes from (the media's choice, a
//! path, or a device to mount), its extraction over the new root's fresh apk database, and what
//! depends on it: the default services and `ssh_key=`.
//!
//! An encrypted apkovl (`*.apkovl.tar.gz.<cipher>`, [`crate::overlay::crypt`]) is unlocked first:
//! with the passphrase in the `apkovl_key=` file, else (or when that one is wrong) typed on the
//! console, up to [`PASSPHRASE_TRIES`] times as Alpine's init allows. When it stays locked the boot
//! goes on without it, as with a corrupt apkovl: a default system the user can log into.

use super::{note, Decisions, Media};
use crate::boot::runner::Done;
use crate::boot::{apkovl, lkg, stages, sysroot, Boot, BootEnd, BootError, SYSROOT};
use crate::cmdline::{ApkovlSource, Diskless};
use crate::overlay::crypt::{self, CryptError, Unlocked};
use rustix::fs::{Mode, OFlags};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Passphrases typed before the boot goes on without the apkovl (Alpine's init: 3).
pub(super) const PASSPHRASE_TRIES: u32 = 3;
/// How long one prompt waits for a line: an unattended machine boots on without its apkovl.
pub(super) const PASSPHRASE_WAIT: Duration = Duration::from_secs(120);

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
    let apkovl = apkovl.map(|found| last_known_good(boot, plan, found, decisions));
    if let Err(e) = apkovl::init_db(boot.sys, Path::new(SYSROOT)) {
        log::warn!("cannot create the apk database: {e}");
    }
    let mut unlocked = None;
    let apkovl = apkovl.filter(|p| {
        if crypt::suffix_of(p).is_none() {
            return true;
        }
        unlocked = unlock(boot, plan, p);
        unlocked.is_some()
    });
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
            apkovl::apply(b.sys, Path::new(SYSROOT), &path, unlocked.as_ref())
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

/// `ramboot_lkg`: the apkovl to apply, the one found or, when it kept failing, the previous one
/// of the rotation (said on the console, in the kernel log and in the timeline); this boot's
/// attempt is recorded on the medium before anything else happens.
fn last_known_good(
    boot: &mut Boot<'_>,
    plan: &Diskless,
    found: PathBuf,
    decisions: &mut Decisions,
) -> PathBuf {
    if plan.lkg_tries == 0 {
        return found;
    }
    let Some(choice) = lkg::choose(boot.sys, &found, plan.lkg_tries) else {
        return found;
    };
    if let Some(why) = &choice.fell_back {
        let line = format!("last-known-good: {why}");
        log::warn!("{line}");
        boot.timeline.mark(&line, boot.sys.now());
        decisions.notes.push(line);
    }
    lkg::record(boot.sys, &found, &choice.record);
    choice.apply
}

/// The key of the encrypted apkovl at `path`: from the `apkovl_key=` file, else typed on the
/// console. None (said on the console and in the kernel log): the boot goes on without it.
fn unlock(boot: &Boot<'_>, plan: &Diskless, path: &Path) -> Option<Unlocked> {
    let shown = path.display();
    let suffix = crypt::suffix_of(path).unwrap_or_default();
    if suffix != crypt::RAMBOOT_SUFFIX {
        if let Err(e) = crypt::Cipher::by_name(suffix) {
            log::warn!("apkovl {shown}: {e}: booting without it");
            return None;
        }
    }
    let file = boot.sys.path(path);
    if let Some(key) = &plan.apkovl_key {
        match fs::read(boot.sys.path(key)) {
            Ok(bytes) => match Unlocked::new(&file, crypt::passphrase_from_file(&bytes)) {
                Ok(u) => {
                    log::info!("apkovl {shown} unlocked with the key in {}", key.display());
                    return Some(u);
                }
                Err(e) => log::warn!("apkovl {shown}: the key in {}: {e}", key.display()),
            },
            Err(e) => log::warn!("apkovl_key: cannot read {}: {e}", key.display()),
        }
    }
    log::info!("apkovl {shown} is encrypted ({suffix}): asking for its passphrase on the console");
    for attempt in 1..=PASSPHRASE_TRIES {
        let prompt = format!("Passphrase for {shown} ({attempt}/{PASSPHRASE_TRIES}): ");
        let typed = match boot.sys.read_secret(&prompt, PASSPHRASE_WAIT) {
            Ok(Some(pass)) => pass,
            Ok(None) => {
                log::warn!(
                    "apkovl {shown}: no passphrase typed within {} s",
                    PASSPHRASE_WAIT.as_secs()
                );
                break;
            }
            Err(e) => {
                log::warn!("apkovl {shown}: cannot read a passphrase from the console: {e}");
                break;
            }
        };
        match Unlocked::new(&file, &typed) {
            Ok(u) => return Some(u),
            Err(CryptError::WrongKey) => log::warn!("apkovl {shown}: wrong passphrase"),
            Err(e) => {
                log::warn!("apkovl {shown}: {e}");
                break;
            }
        }
    }
    log::warn!("apkovl {shown} stays locked: booting without it");
    None
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
