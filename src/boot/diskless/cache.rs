//! The cached installed root at boot (issue 11, `ramboot_cache`, default on).
//!
//! A boot whose inputs ([`key`]) match the image on the boot media mounts that image read-only
//! under a tmpfs overlay instead of installing: the apkovl's files, already extracted into the
//! root's tmpfs, become the overlay's upper layer, so they win over the image as they win over
//! package files in a fresh install. A boot without a usable image installs as usual into its
//! tmpfs (no overlay: the first boot pays nothing for a layer it does not need); at handoff the
//! root's tree is read ([`PendingWrite::scan`]) and a process started just before switch_root
//! ([`ScannedWrite::start`]) writes the files' contents beside the new system, refusing any file
//! changed since the scan (the image is then not written; the next boot tries again). The media
//! is read-write only while it writes.
//!
//! Left out of the image: the apkovl's files (the apkovl is applied on top at every boot), except
//! `etc/apk/world`, which the install rewrites from inputs the key holds, and other mounts (the
//! modloop). In it: what the boot adds after the packages (gettys, repositories, resolv.conf, the
//! modloop's links), which a cached boot adds again the same way. An install that changed
//! another apkovl file (a script editing `/etc/group`) is not kept: the result would depend on
//! the apkovl's content, which is not in the key. Nor is an install with package problems.

use super::super::{Boot, BootError, SYSROOT};
use crate::cmdline::Diskless;
use crate::rootcache::{self, squashfs, Key, Unusable};
use crate::sys::{MountFlags, Sys};
use rustix::fd::{AsFd, OwnedFd};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Where the root's layers are mounted while the overlay is made (in the initramfs, detached
/// once the overlay holds them).
const LAYERS: &str = "/.ramboot-layers";
/// The upper layer and the overlay's work directory inside their tmpfs.
const UPPER: &str = ".ramboot-upper";
const WORK: &str = ".ramboot-work";
/// Files of the upper layer that the image holds in their installed state (the empty apk
/// database, the apkovl's world ...), kept beside the upper layer while the image's show through.
const ASIDE: &str = ".ramboot-aside";
/// The installer rewrites it from `pkgs=` and the apkovl's world (both in the key).
const WORLD: &str = "etc/apk/world";

/// What the boot knows about the cache before installing.
pub struct CachePlan {
    pub key: [u8; 32],
    /// The media mount holding the image, as PID 1 sees it.
    pub media: PathBuf,
    pub image: PathBuf,
    /// The apkovl's files (not directories), left out of the image.
    apkovl_files: Vec<String>,
    /// `(path, identity)` of each apkovl file before the install, to see if it changed them.
    stamps: Vec<(String, Option<Stamp>)>,
}

/// The image's inputs: everything the installed root depends on.
pub fn key(
    boot: &Boot<'_>,
    plan: &Diskless,
    wanted: &[String],
    repositories: &[PathBuf],
    overlay_files: &[String],
) -> [u8; 32] {
    let sys = boot.sys;
    let arch = super::packages::apk_arch(&sys.machine()).to_string();
    let mut k = Key::default();
    k.add("version", env!("CARGO_PKG_VERSION").as_bytes());
    k.add_file("ramboot binary", &sys.path(Path::new("/proc/self/exe")));
    k.add("arch", arch.as_bytes());
    k.add("kernel", sys.kernel_release().as_bytes());
    k.add("world", wanted.join("\n").as_bytes());
    for r in repositories {
        k.add("repository", r.as_os_str().as_encoded_bytes());
        k.add_file("index", &sys.path(&r.join(&arch).join("APKINDEX.tar.gz")));
    }
    let keys_dir = sys.path(Path::new("/etc/apk/keys"));
    let mut keys: Vec<Vec<u8>> = std::fs::read_dir(&keys_dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().into_encoded_bytes())
                .collect()
        })
        .unwrap_or_default();
    rootcache::sort_names(&mut keys);
    for name in keys {
        k.add("key", &name);
        k.add_file("key content", &keys_dir.join(OsStr::from_bytes(&name)));
    }
    let mut names: Vec<Vec<u8>> = overlay_files
        .iter()
        .map(|n| n.as_bytes().to_vec())
        .collect();
    rootcache::sort_names(&mut names);
    k.add("apkovl names", &names.join(&b'\n'));
    let flags = format!(
        "keep_apk_new={} bootstrap_usr_merged={}",
        plan.keep_apk_new, plan.bootstrap_usr_merged
    );
    k.add("options", flags.as_bytes());
    k.finish()
}

/// The media that keeps the image: the one holding the first local repository, else the
/// first boot media.
pub fn media_for(media: &[PathBuf], repositories: &[PathBuf]) -> Option<PathBuf> {
    repositories
        .iter()
        .find_map(|r| media.iter().find(|m| r.starts_with(m)))
        .or(media.first())
        .cloned()
}

impl CachePlan {
    pub fn new(boot: &Boot<'_>, media: PathBuf, key: [u8; 32], overlay_files: &[String]) -> Self {
        let apkovl_files: Vec<String> = overlay_files
            .iter()
            .map(|n| n.trim_start_matches("./").to_string())
            .filter(|n| !n.ends_with('/') && n != WORLD)
            .collect();
        let root = boot.sys.path(Path::new(SYSROOT));
        let stamps = apkovl_files
            .iter()
            .map(|n| (n.clone(), stamp(&root.join(n))))
            .collect();
        Self {
            image: media.join(rootcache::IMAGE_NAME),
            key,
            media,
            apkovl_files,
            stamps,
        }
    }

    /// Checks the image: `Ok` when it can be used; the line to log when it cannot.
    pub fn check(&self, sys: &dyn Sys) -> Result<(), (log::Level, String)> {
        let shown = self.image.display();
        match rootcache::check(&sys.path(&self.image), &self.key) {
            Ok(()) => Ok(()),
            Err(Unusable::Missing) => Err((
                log::Level::Info,
                format!("no cached root at {shown} yet: installing"),
            )),
            Err(Unusable::OtherInputs) => Err((
                log::Level::Info,
                format!(
                    "cached root {shown} was made from other packages, indexes or ramboot: installing"
                ),
            )),
            Err(Unusable::Corrupt(why)) => Err((
                log::Level::Warn,
                format!("cached root {shown} is not used: {why}; installing the packages"),
            )),
        }
    }

    /// Why this install must not be kept, if it must not.
    pub fn not_keepable(&self, boot: &Boot<'_>) -> Option<String> {
        if !boot.record.package_problems.is_empty() {
            return Some("the install had package problems".into());
        }
        if !boot.record.scripts_not_run.is_empty() {
            return Some("package scripts did not run".into());
        }
        if !boot.record.unused_repositories.is_empty() {
            return Some("a repository could not be used".into());
        }
        let root = boot.sys.path(Path::new(SYSROOT));
        self.stamps
            .iter()
            .find(|(n, before)| stamp(&root.join(n)) != *before)
            .map(|(n, _)| format!("the install changed /{n} from the apkovl"))
    }
}

/// A file's inode, change time (seconds, nanoseconds) and size: any write or replacement
/// changes it.
type Stamp = (u64, i64, i64, u64);

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::symlink_metadata(path).ok()?;
    Some((m.ino(), m.ctime(), m.ctime_nsec(), m.size()))
}

fn layer_error(what: &str, source: std::io::Error) -> BootError {
    BootError::RootCache {
        what: what.to_string(),
        source,
    }
}

/// Loads what the layers need through the boot's loader (the kernel's own request would start a
/// modprobe process for each).
fn load_modules(boot: &Boot<'_>, names: &[&str]) {
    if let Some(l) = boot.loader() {
        let wanted: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| !l.db().resolve(n, false).modules.is_empty())
            .collect();
        l.load(&crate::hw::modules::Request::names(wanted));
    }
}

/// Moves the root's tmpfs (with what is already in it) aside to `LAYERS/<name>`.
fn move_root_aside(sys: &dyn Sys, name: &str) -> Result<PathBuf, BootError> {
    let dir = Path::new(LAYERS).join(name);
    std::fs::create_dir_all(sys.path(&dir)).map_err(|e| layer_error("a layer directory", e))?;
    sys.move_mount(Path::new(SYSROOT), &dir)
        .map_err(|e| layer_error("moving the root tmpfs", e))?;
    Ok(dir)
}

fn overlay(sys: &dyn Sys, lower: &Path, rw: &Path) -> Result<(), BootError> {
    let (upper, work) = (rw.join(UPPER), rw.join(WORK));
    for d in [&upper, &work] {
        std::fs::create_dir_all(sys.path(d)).map_err(|e| layer_error("a layer directory", e))?;
    }
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        upper.display(),
        work.display()
    );
    sys.mount(
        "overlay",
        Path::new(SYSROOT),
        "overlay",
        MountFlags::empty(),
        &data,
    )
    .map_err(|e| layer_error("the overlay on /sysroot", e))
}

/// The cached root's stage: the image read-only under the root's tmpfs, which becomes the
/// overlay's upper layer. On a failure the root is put back as it was (the install follows).
pub fn mount_cached(boot: &mut Boot<'_>, cp: &CachePlan) -> Result<(), BootError> {
    let sys = boot.sys;
    load_modules(boot, &["loop", "fs-squashfs", "fs-overlay"]);
    boot.timeline.mark("rootcache modules loaded", sys.now());
    let rw = move_root_aside(sys, "rw")?;
    let put_back = |e: BootError| {
        let _ = unstack(sys, &rw);
        e
    };
    stack_upper(sys, &rw, cp).map_err(put_back)?;
    boot.timeline.mark("rootcache upper stacked", sys.now());
    let lower = Path::new(LAYERS).join("image");
    let mut attached = std::time::Duration::ZERO;
    let mounted = std::fs::create_dir_all(sys.path(&lower))
        .map_err(|e| layer_error("a layer directory", e))
        .and_then(|()| {
            let device = sys
                .loop_attach(&cp.image, true)
                .map_err(|e| layer_error("a loop device for the image", e))?;
            attached = sys.now();
            sys.mount(
                &device.to_string_lossy(),
                &lower,
                "squashfs",
                MountFlags::RDONLY,
                "",
            )
            .map_err(|e| layer_error("the image", e))?;
            // The loop device goes with the image's last mount (the overlay's, at shutdown).
            let _ = sys.loop_autoclear(&device);
            Ok(sys.now())
        });
    let at = match mounted.and_then(|at| overlay(sys, &lower, &rw).map(|()| at)) {
        Ok(at) => at,
        Err(e) => {
            let _ = sys.umount(&lower, false);
            return Err(put_back(e));
        }
    };
    boot.timeline.mark("rootcache loop attached", attached);
    boot.timeline.mark("rootcache image mounted", at);
    detach_layers(sys, &[&lower, &rw]);
    Ok(())
}

/// The upper layer is the tmpfs's content moved into `UPPER`. Only the apkovl's files stay in
/// it: everything else there was made before the install (the empty apk database, the keys, the
/// apkovl's world) and the image holds it as the install left it. Those go aside, for [`unstack`].
fn stack_upper(sys: &dyn Sys, rw: &Path, cp: &CachePlan) -> Result<(), BootError> {
    let top = sys.path(rw);
    let upper = top.join(UPPER);
    let err = |e| layer_error("the upper layer", e);
    std::fs::create_dir(&upper).map_err(err)?;
    for entry in std::fs::read_dir(&top).map_err(err)? {
        let name = entry.map_err(err)?.file_name();
        if name != UPPER {
            std::fs::rename(top.join(&name), upper.join(&name)).map_err(err)?;
        }
    }
    let keep = |rel: &str| cp.apkovl_files.iter().any(|f| f == rel);
    move_files(&upper, &top.join(ASIDE), "", &|rel| !keep(rel)).map_err(err)
}

/// Moves the non-directories under `from` for which `pick` is true to the same place under `to`.
fn move_files(
    from: &Path,
    to: &Path,
    rel: &str,
    pick: &dyn Fn(&str) -> bool,
) -> std::io::Result<()> {
    for entry in std::fs::read_dir(from.join(rel))? {
        let entry = entry?;
        let name = entry.file_name();
        let sub = if rel.is_empty() {
            name.to_string_lossy().into_owned()
        } else {
            format!("{rel}/{}", name.to_string_lossy())
        };
        if entry.file_type()?.is_dir() {
            move_files(from, to, &sub, pick)?;
        } else if pick(&sub) {
            std::fs::create_dir_all(to.join(rel))?;
            std::fs::rename(from.join(&sub), to.join(&sub))?;
        }
    }
    Ok(())
}

/// Undoes [`stack_upper`] and [`move_root_aside`].
fn unstack(sys: &dyn Sys, rw: &Path) -> std::io::Result<()> {
    let top = sys.path(rw);
    let upper = top.join(UPPER);
    if let Ok(rd) = std::fs::read_dir(&upper) {
        for entry in rd.flatten() {
            std::fs::rename(entry.path(), top.join(entry.file_name()))?;
        }
        std::fs::remove_dir(&upper)?;
    }
    let _ = std::fs::remove_dir(top.join(WORK));
    let aside = top.join(ASIDE);
    if aside.is_dir() {
        move_files(&aside, &top, "", &|_| true)?;
        std::fs::remove_dir_all(&aside)?;
    }
    sys.move_mount(rw, Path::new(SYSROOT))
}

/// The layers' own mounts go once the overlay holds them (it keeps private copies): the new
/// system sees only the overlay.
fn detach_layers(sys: &dyn Sys, layers: &[&Path]) {
    for l in layers {
        if let Err(e) = sys.umount(l, true) {
            log::warn!("cannot detach {}: {e}", l.display());
        }
    }
}

/// After a fresh install: what to write at handoff. `None` (with the reason logged) when this
/// root is not kept.
pub fn keep_installed(boot: &Boot<'_>, cp: CachePlan) -> Option<PendingWrite> {
    if let Some(why) = cp.not_keepable(boot) {
        log::info!("the installed root is not kept on the boot media: {why}");
        return None;
    }
    match open_dir(&boot.sys.path(Path::new(SYSROOT))) {
        Ok(root) => Some(PendingWrite {
            root,
            media: cp.media,
            key: cp.key,
            skip: cp.apkovl_files,
        }),
        Err(e) => {
            log::warn!("the installed root is not kept on the boot media: {SYSROOT}: {e}");
            None
        }
    }
}

fn open_dir(path: &Path) -> std::io::Result<OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    Ok(rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// The image to write once the boot is handed off.
pub struct PendingWrite {
    /// The new root (the root tmpfs).
    root: OwnedFd,
    media: PathBuf,
    key: [u8; 32],
    skip: Vec<String>,
}

/// A [`PendingWrite`] whose tree has been read.
pub struct ScannedWrite {
    root: OwnedFd,
    media: PathBuf,
    key: [u8; 32],
    tree: squashfs::Tree,
}

impl PendingWrite {
    /// Reads the root's tree (names and metadata) as the boot leaves it, before the new system
    /// runs: part of the boot's time. The contents are read by the writer, which refuses any
    /// file changed since.
    pub fn scan(self) -> Option<ScannedWrite> {
        let skip = &self.skip;
        let leave_out = |p: &[u8]| skip.iter().any(|s| s.as_bytes() == p);
        match squashfs::scan_tree(self.root.as_fd(), &leave_out) {
            Ok(tree) => Some(ScannedWrite {
                root: self.root,
                media: self.media,
                key: self.key,
                tree,
            }),
            Err(e) => {
                log::warn!("cached root not written: reading the new root: {e}");
                None
            }
        }
    }
}

impl ScannedWrite {
    /// Makes the media writable and starts the writer; it puts the media back read-only when
    /// done. Called just before switch_root. The writer holds the medium's lock to its end
    /// ([`crate::boot::lkg::MEDIUM_LOCK`]): a `ramboot commit` meanwhile waits for it instead of
    /// finding the medium made read-only under its write.
    pub fn start(self, sys: &dyn Sys) {
        let lock = crate::boot::lkg::lock_medium(sys);
        let media = &self.media;
        let was = match sys.mount_containing(media) {
            Ok(m) => m.flags,
            Err(e) => {
                log::warn!("cached root not written: {}: {e}", media.display());
                return;
            }
        };
        let read_only = was.contains(MountFlags::RDONLY);
        if read_only {
            if let Err(e) = sys.remount(media, was - MountFlags::RDONLY, "") {
                log::warn!(
                    "cached root not written: cannot make {} writable: {e}",
                    media.display()
                );
                return;
            }
        }
        let media_fd = match open_dir(&sys.path(media)) {
            Ok(fd) => fd,
            Err(e) => {
                log::warn!("cached root not written: {}: {e}", media.display());
                return;
            }
        };
        let shown = media.join(rootcache::IMAGE_NAME).display().to_string();
        let (root, key) = (self.root, self.key);
        let mut tree = Some(self.tree);
        let mut task = || {
            // Held (an open descriptor in this child) until the writer ends.
            let _held = &lock;
            // The new system's first services must not wait for the image: it gets what they
            // leave of the CPU.
            if let Err(e) = sys.background_priority() {
                log::debug!("rootcache writer keeps its priority: {e}");
            }
            let mtime = sys.wall_clock().as_secs() as u32;
            let written = match tree.take() {
                Some(t) => rootcache::write_image(t, root.as_fd(), media_fd.as_fd(), &key, mtime),
                None => return 1,
            };
            let code = match written {
                Ok(w) => {
                    log::info!(
                        "cached root written to {shown}: {} inodes, {} KiB of files in {} KiB",
                        w.inodes,
                        w.content / 1024,
                        w.bytes / 1024
                    );
                    0
                }
                Err(e) => {
                    log::warn!("cached root not written to {shown}: {e}");
                    1
                }
            };
            if read_only {
                if let Err(e) = sys.set_read_only_at(media_fd.as_fd(), true) {
                    log::warn!("cannot make the boot media read-only again: {e}");
                }
            }
            code
        };
        if let Err(e) = sys.background("rootcache", &mut task) {
            log::warn!("cached root not written: cannot start its writer: {e}");
            if read_only {
                let _ = sys.remount(media, was, "");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::runner::tests::boot_with;
    use crate::sys::RecordingSys;
    use std::fs;

    const OVERLAY_LIST: [&str; 4] = ["etc/", "etc/hostname", "etc/apk/", "etc/apk/world"];

    /// A stand-in `/`: the root tmpfs after the apkovl (hostname and world), read-only boot
    /// media at /media/vda1.
    fn stand() -> (tempfile::TempDir, RecordingSys) {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::create_dir_all(d.join("sysroot/etc/apk")).unwrap();
        fs::write(d.join("sysroot/etc/hostname"), "from-apkovl\n").unwrap();
        fs::write(d.join("sysroot/etc/apk/world"), "demo\n").unwrap();
        fs::create_dir_all(d.join("media/vda1")).unwrap();
        fs::create_dir_all(d.join("proc")).unwrap();
        fs::write(
            d.join("proc/mounts"),
            "/dev/vda1 /media/vda1 vfat ro,relatime 0 0\n",
        )
        .unwrap();
        let sys = RecordingSys::new(d).with_background_runs(true);
        (dir, sys)
    }

    fn overlay_list() -> Vec<String> {
        OVERLAY_LIST.iter().map(|s| s.to_string()).collect()
    }

    /// What the packages stage would leave.
    fn install(d: &Path) {
        fs::create_dir_all(d.join("sysroot/bin")).unwrap();
        fs::write(
            d.join("sysroot/bin/busybox"),
            b"\x7fELF busybox".repeat(1000),
        )
        .unwrap();
        fs::write(d.join("sysroot/etc/apk/world"), "busybox\ndemo\n").unwrap();
    }

    /// At handoff the root's tree is read; the writer then makes the media writable, writes the
    /// image in the background and puts the media back read-only. The root stays a tmpfs.
    #[test]
    fn a_kept_install_is_written_from_the_root_at_handoff() {
        let (dir, sys) = stand();
        let boot = boot_with(&sys, "");
        let cp = CachePlan::new(&boot, "/media/vda1".into(), [3; 32], &overlay_list());
        install(dir.path());
        let scanned = keep_installed(&boot, cp)
            .expect("kept")
            .scan()
            .expect("scanned");
        scanned.start(&sys);
        let t = sys.trace();
        let at = |needle: &str| {
            t.iter()
                .position(|l| l.contains(needle))
                .unwrap_or_else(|| panic!("{needle} not in {t:#?}"))
        };
        let order = [
            // read-write again with its other flags kept
            "mount -o remount,relatime /media/vda1",
            "background rootcache",
            "mount -o remount,ro (by descriptor)",
        ];
        let positions: Vec<usize> = order.iter().map(|n| at(n)).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{t:#?}");
        assert!(!t.iter().any(|l| l.contains("overlay")), "{t:#?}");
        let image = dir.path().join("media/vda1").join(rootcache::IMAGE_NAME);
        assert_eq!(rootcache::check(&image, &[3; 32]), Ok(()));
        assert!(!dir
            .path()
            .join("media/vda1")
            .join(rootcache::TEMP_NAME)
            .exists());
    }

    /// A file the new system changes between the scan and the write makes the image unusable
    /// as a copy of the install: it is not written (the media still goes back read-only).
    #[test]
    fn a_file_changed_after_the_scan_is_not_written() {
        let (dir, sys) = stand();
        let boot = boot_with(&sys, "");
        let cp = CachePlan::new(&boot, "/media/vda1".into(), [3; 32], &overlay_list());
        install(dir.path());
        let scanned = keep_installed(&boot, cp).unwrap().scan().unwrap();
        fs::write(dir.path().join("sysroot/bin/busybox"), b"changed").unwrap();
        scanned.start(&sys);
        let media = dir.path().join("media/vda1");
        assert!(!media.join(rootcache::IMAGE_NAME).exists());
        assert!(sys
            .trace()
            .iter()
            .any(|l| l == "mount -o remount,ro (by descriptor)"));
    }

    /// A package script that rewrote a file of the apkovl makes the root depend on the
    /// apkovl's content, which the key does not hold: that install is not kept.
    #[test]
    fn an_install_that_changed_an_apkovl_file_is_not_kept() {
        let (dir, sys) = stand();
        let boot = boot_with(&sys, "");
        let cp = CachePlan::new(&boot, "/media/vda1".into(), [3; 32], &overlay_list());
        install(dir.path());
        let host = dir.path().join("sysroot/etc/hostname");
        fs::remove_file(&host).unwrap();
        fs::write(&host, "changed by a script\n").unwrap();
        assert_eq!(
            cp.not_keepable(&boot).as_deref(),
            Some("the install changed /etc/hostname from the apkovl")
        );
        assert!(keep_installed(&boot, cp).is_none());
    }

    /// The image mounted under the root's tmpfs; when the overlay cannot be mounted the root is
    /// put back as it was (apkovl files and world in place) for the install.
    #[test]
    fn a_cached_root_that_cannot_be_stacked_leaves_the_root_as_it_was() {
        let (dir, sys) = stand();
        fs::write(
            dir.path().join("media/vda1").join(rootcache::IMAGE_NAME),
            b"img",
        )
        .unwrap();
        let mut boot = boot_with(&sys, "");
        let cp = CachePlan::new(&boot, "/media/vda1".into(), [3; 32], &overlay_list());
        sys.fail_on("-t overlay", 19);
        let err = mount_cached(&mut boot, &cp).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cached root: cannot set up the overlay on /sysroot"),
            "{err}"
        );
        let root = dir.path().join("sysroot");
        assert_eq!(
            fs::read_to_string(root.join("etc/hostname")).unwrap(),
            "from-apkovl\n"
        );
        assert_eq!(
            fs::read_to_string(root.join("etc/apk/world")).unwrap(),
            "demo\n"
        );
        let t = sys.trace();
        assert!(
            t.iter()
                .any(|l| l.starts_with("mount -t squashfs -o ro /dev/loop")),
            "{t:#?}"
        );
        assert!(
            t.iter().any(|l| l == "umount /.ramboot-layers/image"),
            "{t:#?}"
        );
        assert_eq!(
            t.last().unwrap(),
            "mount -o move /.ramboot-layers/rw /sysroot"
        );

        // Without the failure: stacked, the layers detached, the image's world showing.
        let (dir, sys) = stand();
        fs::write(
            dir.path().join("media/vda1").join(rootcache::IMAGE_NAME),
            b"img",
        )
        .unwrap();
        let mut boot = boot_with(&sys, "");
        mount_cached(&mut boot, &cp).unwrap();
        let t = sys.trace();
        assert!(
            t.iter().any(|l| l == "umount -l /.ramboot-layers/image"),
            "{t:#?}"
        );
        let layers = dir.path().join(".ramboot-layers/rw");
        assert!(layers.join(UPPER).join("etc/hostname").is_file());
        assert!(
            !layers.join(UPPER).join(WORLD).exists(),
            "the image's world shows through"
        );
        assert!(layers.join(ASIDE).join(WORLD).is_file());
    }
}
