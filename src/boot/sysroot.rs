//! Preparing the new root of a diskless boot: OpenRC services, fstab-driven remounts, consoles,
//! repositories — the parts of Alpine's `initramfs-init` between "tmpfs mounted" and
//! "switch_root", each a small function over the root directory so it can be tested on a host.

use crate::fsutil::{Resolve, Root};
use crate::sys::{parse_mount_options, Sys};
use rustix::fs::OFlags;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// `rc_add SERVICE LEVEL`: a runlevel link, as OpenRC's `rc-update add` makes it.
pub fn rc_add(root: &Path, service: &str, level: &str) -> io::Result<()> {
    let root = open_root(root)?;
    let dir = Path::new("etc/runlevels").join(level);
    root.create_dirs(&dir, 0o755, &mut Vec::new())?;
    let target = format!("/etc/init.d/{service}");
    root.symlink(Path::new(&target), &dir.join(service))
}

/// The new root: what the apkovl put there is followed as chroot would, never out of it.
pub fn open_root(root: &Path) -> io::Result<Root> {
    Root::open(root, Resolve::Kernel)
}

/// Alpine's default services (`/etc/.default_boot_services` or no apkovl).
pub const DEFAULT_SERVICES: &[(&str, &str)] = &[
    ("devfs", "sysinit"),
    ("dmesg", "sysinit"),
    ("mdev", "sysinit"),
    ("hwdrivers", "sysinit"),
    ("modloop", "sysinit"),
    ("modules", "boot"),
    ("sysctl", "boot"),
    ("hostname", "boot"),
    ("bootmisc", "boot"),
    ("syslog", "boot"),
    ("mount-ro", "shutdown"),
    ("killprocs", "shutdown"),
    ("savecache", "shutdown"),
    ("firstboot", "default"),
];

pub fn add_default_services(root: &Path, with_sshd: bool) -> io::Result<()> {
    for (svc, level) in DEFAULT_SERVICES {
        rc_add(root, svc, level)?;
    }
    if with_sshd {
        rc_add(root, "sshd", "default")?;
    }
    Ok(())
}

/// `hwclock` when the machine has an RTC (`/dev/rtc`, `/dev/rtcN`) or is s390x, else `swclock`.
pub fn clock_service(sys: &dyn Sys) -> &'static str {
    let dev = sys.path(Path::new("/dev"));
    let has_rtc = fs::read_dir(dev)
        .map(|rd| {
            rd.filter_map(|e| e.ok()).any(|e| {
                let n = e.file_name();
                let n = n.to_string_lossy();
                n == "rtc"
                    || (n.starts_with("rtc")
                        && n[3..].chars().all(|c| c.is_ascii_digit())
                        && n.len() > 3)
            })
        })
        .unwrap_or(false);
    if has_rtc || sys.machine() == "s390x" {
        "hwclock"
    } else {
        "swclock"
    }
}

/// One fstab line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FstabEntry {
    pub spec: String,
    pub file: String,
    pub vfstype: String,
    pub options: String,
}

pub fn parse_fstab(text: &str) -> Vec<FstabEntry> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 3).then(|| FstabEntry {
                spec: f[0].into(),
                file: f[1].into(),
                vfstype: f[2].into(),
                options: f.get(3).copied().unwrap_or("defaults").into(),
            })
        })
        .collect()
}

/// The options of an fstab `/` entry of type tmpfs: Alpine remounts the root tmpfs with them.
pub fn root_tmpfs_options(fstab: &[FstabEntry]) -> Option<String> {
    fstab
        .iter()
        .find(|e| e.file == "/" && e.vfstype == "tmpfs")
        .map(|e| e.options.clone())
}

/// A boot-media mount as discovery made it, with what identifies its device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaMount {
    pub device: PathBuf,
    pub mountpoint: PathBuf,
    pub uuid: Option<String>,
    pub label: Option<String>,
}

fn rdev(sys: &dyn Sys, dev: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(sys.path(dev))
        .ok()
        .map(|m| m.rdev())
        .filter(|r| *r != 0)
}

fn fstab_matches(sys: &dyn Sys, e: &FstabEntry, m: &MediaMount) -> bool {
    if let Some(u) = e.spec.strip_prefix("UUID=") {
        return m.uuid.as_deref().is_some_and(|x| x.eq_ignore_ascii_case(u));
    }
    if let Some(l) = e.spec.strip_prefix("LABEL=") {
        return m.label.as_deref() == Some(l);
    }
    if e.spec == m.device.to_string_lossy() {
        return true;
    }
    // `/dev/usbdisk` or `/dev/cdrom` links: the link's target names the device…
    if let Ok(target) = fs::read_link(sys.path(Path::new(&e.spec))) {
        if target
            .file_name()
            .is_some_and(|n| Some(n) == m.device.file_name())
        {
            return true;
        }
    }
    // …or compare the device numbers, as Alpine's `stat -L` does.
    e.spec.starts_with("/dev/")
        && matches!((rdev(sys, Path::new(&e.spec)), rdev(sys, &m.device)), (Some(a), Some(b)) if a == b)
}

/// True when [`remount_fstab_entries`] would move one of `mounts`.
pub fn moves_pending(sys: &dyn Sys, fstab: &[FstabEntry], mounts: &[MediaMount]) -> bool {
    mounts.iter().any(|m| {
        fstab.iter().any(|e| {
            e.file.starts_with('/')
                && Path::new(&e.file) != m.mountpoint
                && fstab_matches(sys, e, m)
        })
    })
}

/// Alpine's `remount_fstab_entry`: media mounted at `/media/<dev>` move to the mount point their
/// fstab entry names (so the apkovl's `/etc/apk/cache` link and repository paths resolve), then
/// get that entry's options. Returns the updated mounts.
pub fn remount_fstab_entries(
    sys: &dyn Sys,
    fstab: &[FstabEntry],
    mounts: &mut [MediaMount],
) -> Vec<String> {
    let mut warnings = Vec::new();
    for m in mounts.iter_mut() {
        let Some(e) = fstab
            .iter()
            .find(|e| e.file.starts_with('/') && fstab_matches(sys, e, m))
        else {
            continue;
        };
        let target = PathBuf::from(&e.file);
        if target != m.mountpoint {
            let _ = fs::create_dir_all(sys.path(&target));
            match sys.move_mount(&m.mountpoint, &target) {
                Ok(()) => m.mountpoint = target.clone(),
                Err(err) => {
                    warnings.push(format!(
                        "cannot move {} to {}: {err}",
                        m.mountpoint.display(),
                        target.display()
                    ));
                    continue;
                }
            }
        }
        let opts: Vec<&str> = e
            .options
            .split(',')
            .filter(|o| !matches!(*o, "defaults" | "noauto" | "auto" | "nofail" | ""))
            .collect();
        if !opts.is_empty() {
            let (flags, data) = parse_mount_options(&opts.join(","));
            if let Err(err) = sys.remount(&m.mountpoint, flags, &data) {
                warnings.push(format!(
                    "cannot remount {} with {}: {err}",
                    m.mountpoint.display(),
                    opts.join(",")
                ));
            }
        }
    }
    warnings
}

/// Expands `console` and friends through `/sys/class/tty/<x>/active` (`console` → `tty0 ttyS0`
/// → `tty1 ttyS0`), keeping order and dropping duplicates.
pub fn expand_consoles(sys: &dyn Sys, names: &[String]) -> Vec<String> {
    fn go(sys: &dyn Sys, name: &str, depth: usize, out: &mut Vec<String>) {
        let active = sys.path(&Path::new("/sys/class/tty").join(name).join("active"));
        match fs::read_to_string(active) {
            Ok(text) if depth < 8 && !text.trim().is_empty() => {
                for n in text.split_whitespace() {
                    if n != name {
                        go(sys, n, depth + 1, out);
                    } else if !out.iter().any(|o| o == n) {
                        out.push(n.to_string());
                    }
                }
            }
            _ => {
                if name != "console" && !out.iter().any(|o| o == name) {
                    out.push(name.to_string());
                }
            }
        }
    }
    let mut out = Vec::new();
    for n in names {
        go(sys, n, 0, &mut out);
    }
    out
}

/// Serial ports worth a getty: 8250 ports with CTS or DSR up, and other serial drivers' ports
/// (`ttyAMA0`, `ttyS1` on a Pi's mini UART is 8250 too) that have a device behind them.
pub fn detect_serial_consoles(sys: &dyn Sys) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(text) = fs::read_to_string(sys.path(Path::new("/proc/tty/driver/serial"))) {
        for line in text.lines() {
            let Some((num, rest)) = line.split_once(':') else {
                continue;
            };
            let Ok(n) = num.trim().parse::<u32>() else {
                continue;
            };
            if rest
                .split_whitespace()
                .any(|f| f.split('|').any(|s| s == "CTS" || s == "DSR"))
            {
                out.push(format!("ttyS{n}"));
            }
        }
    }
    if let Ok(rd) = fs::read_dir(sys.path(Path::new("/sys/class/tty"))) {
        let mut names: Vec<String> = rd
            .filter_map(|e| e.ok())
            .filter(|e| {
                e.path().join("device").exists()
                    || fs::symlink_metadata(e.path().join("device")).is_ok()
            })
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with("ttyS") && !is_virtual_terminal(n))
            .collect();
        crate::sys::sort::sort(&mut names);
        out.extend(names);
    }
    out
}

/// `tty0`, `tty1`…: virtual terminals, not serial ports.
fn is_virtual_terminal(name: &str) -> bool {
    name.strip_prefix("tty")
        .is_some_and(|n| n.chars().all(|c| c.is_ascii_digit()))
}

/// `setup_inittab_console`: a getty line in the new root's `/etc/inittab` for each console that
/// has a device node and no line yet; also `/etc/securetty` when it exists.
pub fn setup_inittab_consoles(
    sys: &dyn Sys,
    root: &Path,
    consoles: &[String],
) -> io::Result<Vec<String>> {
    let root = open_root(root)?;
    let inittab = Path::new("etc/inittab");
    let securetty = Path::new("etc/securetty");
    // Bytes, not text: a line in another encoding must survive the edit. A missing inittab is
    // started afresh; one that cannot be read is left alone (the edit would replace it).
    let mut text: Vec<u8> = match root.open_at(inittab, OFlags::RDONLY) {
        Ok(fd) => {
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut fs::File::from(fd), &mut data)?;
            data
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    let mut added = Vec::new();
    for tty in consoles {
        if tty == "console" || !sys.path(&Path::new("/dev").join(tty)).exists() {
            continue;
        }
        let prefix = format!("{tty}:");
        if text
            .split(|&b| b == b'\n')
            .any(|l| l.starts_with(prefix.as_bytes()))
        {
            continue;
        }
        if !text.is_empty() && !text.ends_with(b"\n") {
            text.push(b'\n');
        }
        text.extend_from_slice(
            format!(
                "# enable login on alternative console\n{tty}::respawn:/sbin/getty -L 0 {tty} vt100\n"
            )
            .as_bytes(),
        );
        added.push(tty.clone());
        if let Ok(cur) = root.read_to_string(securetty) {
            if !cur.lines().any(|l| l.trim() == tty) {
                let f = root.open_at(securetty, OFlags::WRONLY | OFlags::APPEND)?;
                writeln!(fs::File::from(f), "{tty}")?;
            }
        }
    }
    if !added.is_empty() {
        root.create_dirs(Path::new("etc"), 0o755, &mut Vec::new())?;
        root.write(inittab, &text, 0o644)?;
    }
    Ok(added)
}

/// `etc/apk/repositories` from the boot repositories, when the apkovl brought none.
pub fn write_repositories_if_missing(root: &Path, repos: &[String]) -> io::Result<bool> {
    let root = open_root(root)?;
    let path = Path::new("etc/apk/repositories");
    if root.exists(path, true) || repos.is_empty() {
        return Ok(false);
    }
    root.create_dirs(Path::new("etc/apk"), 0o755, &mut Vec::new())?;
    let text: String = repos.iter().map(|r| format!("{r}\n")).collect();
    root.write(path, text.as_bytes(), 0o644)?;
    Ok(true)
}

/// Copies host file `src` to `rel` in the root unless `rel` exists; returns whether it copied.
pub fn copy_if_missing(src: &Path, root: &Path, rel: &str) -> io::Result<bool> {
    let root = open_root(root)?;
    let rel = Path::new(rel);
    if root.exists(rel, false) || !src.is_file() {
        return Ok(false);
    }
    if let Some(d) = rel.parent() {
        root.create_dirs(d, 0o755, &mut Vec::new())?;
    }
    root.copy_in(src, rel)?;
    Ok(true)
}

/// Copies every regular file of host directory `src` into directory `rel` of the root
/// (overwriting), e.g. `/etc/apk/keys`.
pub fn copy_dir_files(src: &Path, root: &Path, rel: &str) -> io::Result<usize> {
    let Ok(rd) = fs::read_dir(src) else {
        return Ok(0);
    };
    let root = open_root(root)?;
    root.create_dirs(Path::new(rel), 0o755, &mut Vec::new())?;
    let mut n = 0;
    for e in rd.filter_map(|e| e.ok()) {
        if e.path().is_file() {
            root.copy_in(&e.path(), &Path::new(rel).join(e.file_name()))?;
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::RecordingSys;

    fn sys() -> (tempfile::TempDir, RecordingSys) {
        let d = tempfile::tempdir().unwrap();
        let s = RecordingSys::new(d.path());
        (d, s)
    }

    #[test]
    fn default_services_and_clock() {
        let (d, s) = sys();
        let root = d.path().join("sysroot");
        fs::create_dir(&root).unwrap();
        add_default_services(&root, true).unwrap();
        assert_eq!(
            fs::read_link(root.join("etc/runlevels/sysinit/modloop")).unwrap(),
            Path::new("/etc/init.d/modloop")
        );
        assert!(fs::symlink_metadata(root.join("etc/runlevels/default/sshd")).is_ok());
        assert_eq!(clock_service(&s), "swclock");
        fs::create_dir_all(d.path().join("dev")).unwrap();
        fs::write(d.path().join("dev/rtc0"), b"").unwrap();
        assert_eq!(clock_service(&s), "hwclock");
    }

    #[test]
    fn fstab_root_tmpfs_options() {
        let f = parse_fstab("# c\ntmpfs / tmpfs rw,size=300M 0 0\n/dev/cdrom /media/cdrom iso9660 noauto,ro 0 0\n\n");
        assert_eq!(f.len(), 2);
        assert_eq!(root_tmpfs_options(&f).as_deref(), Some("rw,size=300M"));
    }

    /// mkinitfs test `tmpfs_root_remount_opts`.
    #[test]
    fn tmpfs_root_remount_opts() {
        let (d, s) = sys();
        fs::create_dir_all(d.path().join("media/sr0")).unwrap();
        fs::write(d.path().join("media/sr0/x"), b"").unwrap();
        let fstab = parse_fstab("/dev/sr0 /media/cdrom iso9660 noauto,ro,customopts 0 0\n");
        let mut mounts = vec![MediaMount {
            device: "/dev/sr0".into(),
            mountpoint: "/media/sr0".into(),
            uuid: None,
            label: None,
        }];
        assert!(remount_fstab_entries(&s, &fstab, &mut mounts).is_empty());
        assert_eq!(
            s.trace(),
            [
                "mount -o move /media/sr0 /media/cdrom",
                "mount -o remount,ro,customopts /media/cdrom"
            ]
        );
        assert_eq!(mounts[0].mountpoint, Path::new("/media/cdrom"));
        assert!(d.path().join("media/cdrom/x").exists());
    }

    /// An ISO's `/media/sr0` moves to `/media/cdrom` through the initramfs fstab and the
    /// `/dev/cdrom` link (made for media as mdev would).
    #[test]
    fn cdrom_link_relocates_iso_media() {
        let (d, s) = sys();
        fs::create_dir_all(d.path().join("media/sr0")).unwrap();
        fs::create_dir_all(d.path().join("dev")).unwrap();
        std::os::unix::fs::symlink("sr0", d.path().join("dev/cdrom")).unwrap();
        let fstab = parse_fstab("/dev/cdrom\t/media/cdrom\tiso9660\tnoauto,ro 0 0\n/dev/usbdisk\t/media/usb\tvfat\tnoauto\t0 0\n");
        let mut mounts = vec![MediaMount {
            device: "/dev/sr0".into(),
            mountpoint: "/media/sr0".into(),
            uuid: None,
            label: None,
        }];
        assert!(moves_pending(&s, &fstab, &mounts));
        remount_fstab_entries(&s, &fstab, &mut mounts);
        assert_eq!(mounts[0].mountpoint, Path::new("/media/cdrom"));
        assert!(!moves_pending(&s, &fstab, &mounts));
    }

    #[test]
    fn fstab_by_uuid_and_label() {
        let (d, s) = sys();
        fs::create_dir_all(d.path().join("media/mmcblk0p1")).unwrap();
        let fstab = parse_fstab("UUID=ABCD-1234 /media/sdcard vfat noauto,ro 0 0\n");
        let mut mounts = vec![MediaMount {
            device: "/dev/mmcblk0p1".into(),
            mountpoint: "/media/mmcblk0p1".into(),
            uuid: Some("abcd-1234".into()),
            label: None,
        }];
        remount_fstab_entries(&s, &fstab, &mut mounts);
        assert_eq!(mounts[0].mountpoint, Path::new("/media/sdcard"));
    }

    /// An inittab with a line in another encoding keeps every line; a getty is only added.
    #[test]
    fn a_non_utf8_inittab_is_kept_whole() {
        let (d, s) = sys();
        let root = d.path().join("sysroot");
        fs::create_dir_all(d.path().join("dev")).unwrap();
        fs::write(d.path().join("dev/ttyS0"), b"").unwrap();
        fs::create_dir_all(root.join("etc")).unwrap();
        let original = b"::sysinit:/sbin/openrc sysinit\n# caf\xe9 (latin-1)\n".to_vec();
        fs::write(root.join("etc/inittab"), &original).unwrap();
        let added = setup_inittab_consoles(&s, &root, &["ttyS0".into()]).unwrap();
        assert_eq!(added, ["ttyS0"]);
        let tab = fs::read(root.join("etc/inittab")).unwrap();
        assert!(
            tab.starts_with(&original),
            "{}",
            String::from_utf8_lossy(&tab)
        );
        assert!(String::from_utf8_lossy(&tab).contains("ttyS0::respawn:/sbin/getty -L 0 ttyS0"));
    }

    /// mkinitfs test `tmpfs_root_console_serial`.
    #[test]
    fn tmpfs_root_console_serial() {
        let (d, s) = sys();
        let root = d.path().join("sysroot");
        fs::create_dir_all(d.path().join("sys/class/tty/console")).unwrap();
        fs::write(d.path().join("sys/class/tty/console/active"), "tty0\n").unwrap();
        fs::create_dir_all(d.path().join("dev")).unwrap();
        for t in ["tty0", "ttyS0"] {
            fs::write(d.path().join("dev").join(t), b"").unwrap();
        }
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::write(
            root.join("etc/inittab"),
            "tty1::respawn:/sbin/getty 38400 tty1\n",
        )
        .unwrap();
        let names = expand_consoles(&s, &["console".into(), "ttyS0".into()]);
        assert_eq!(names, ["tty0", "ttyS0"]);
        let added = setup_inittab_consoles(&s, &root, &names).unwrap();
        assert_eq!(added, ["tty0", "ttyS0"]);
        let tab = fs::read_to_string(root.join("etc/inittab")).unwrap();
        assert!(tab.contains("tty0::respawn:/sbin/getty -L 0 tty0 vt100\n"));
        assert!(tab.contains("ttyS0::respawn:/sbin/getty -L 0 ttyS0 vt100\n"));
        // Idempotent.
        assert!(setup_inittab_consoles(&s, &root, &names)
            .unwrap()
            .is_empty());
    }

    /// mkinitfs test `tmpfs_root_autodetect_serial`.
    #[test]
    fn tmpfs_root_autodetect_serial() {
        let (d, s) = sys();
        fs::create_dir_all(d.path().join("proc/tty/driver")).unwrap();
        fs::write(
            d.path().join("proc/tty/driver/serial"),
            "serinfo:1.0 driver revision:\n0: uart:16550A port:000003F8 irq:4 tx:0 rx:0 RTS|CTS|DTR|DSR|CD\n1: uart:16550A port:000002F8 irq:3 tx:0 rx:0\n",
        )
        .unwrap();
        fs::create_dir_all(d.path().join("sys/class/tty/ttyAMA0/device")).unwrap();
        fs::create_dir_all(d.path().join("sys/class/tty/ttyS1/device")).unwrap();
        fs::create_dir_all(d.path().join("sys/class/tty/tty1")).unwrap();
        assert_eq!(detect_serial_consoles(&s), ["ttyS0", "ttyAMA0"]);
    }

    #[test]
    fn repositories_written_only_when_missing() {
        let d = tempfile::tempdir().unwrap();
        assert!(write_repositories_if_missing(d.path(), &["/media/vda1/apks".into()]).unwrap());
        assert!(!write_repositories_if_missing(d.path(), &["/other".into()]).unwrap());
        assert_eq!(
            fs::read_to_string(d.path().join("etc/apk/repositories")).unwrap(),
            "/media/vda1/apks\n"
        );
    }

    /// The edits after the apkovl follow what it put in the new root as chroot would: absolute
    /// links to a host directory lead inside the root, nothing lands outside.
    #[test]
    fn edits_follow_apkovl_links_inside_the_new_root() {
        use std::os::unix::fs::symlink;
        let (d, s) = sys();
        let root = d.path().join("sysroot");
        let outside = d.path().join("outside");
        let mirror = root.join(outside.strip_prefix("/").unwrap());
        fs::create_dir_all(&outside).unwrap();
        fs::create_dir_all(&mirror).unwrap();
        fs::create_dir_all(root.join("etc/apk")).unwrap();
        symlink(&outside, root.join("etc/runlevels")).unwrap();
        symlink(outside.join("inittab"), root.join("etc/inittab")).unwrap();
        symlink(outside.join("repos"), root.join("etc/apk/repositories")).unwrap();
        symlink(&outside, root.join("etc/apk/keys")).unwrap();
        fs::create_dir_all(d.path().join("dev")).unwrap();
        fs::write(d.path().join("dev/ttyS0"), b"").unwrap();
        let keys = d.path().join("host-keys");
        fs::create_dir_all(&keys).unwrap();
        fs::write(keys.join("a.rsa.pub"), b"key").unwrap();
        let resolv = d.path().join("resolv.conf");
        fs::write(&resolv, b"nameserver 10.0.2.3\n").unwrap();
        symlink(outside.join("resolv.conf"), root.join("etc/resolv.conf")).unwrap();

        rc_add(&root, "sshd", "default").unwrap();
        assert!(write_repositories_if_missing(&root, &["/media/vda1/apks".into()]).unwrap());
        assert_eq!(
            setup_inittab_consoles(&s, &root, &["ttyS0".into()]).unwrap(),
            ["ttyS0"]
        );
        assert_eq!(copy_dir_files(&keys, &root, "etc/apk/keys").unwrap(), 1);
        assert!(!copy_if_missing(&resolv, &root, "etc/resolv.conf").unwrap());

        assert_eq!(
            fs::read_dir(&outside).unwrap().count(),
            0,
            "written outside"
        );
        assert_eq!(
            fs::read_link(mirror.join("default/sshd")).unwrap(),
            Path::new("/etc/init.d/sshd")
        );
        assert!(fs::read_to_string(mirror.join("inittab"))
            .unwrap()
            .contains("ttyS0::respawn"));
        assert_eq!(
            fs::read_to_string(mirror.join("repos")).unwrap(),
            "/media/vda1/apks\n"
        );
        assert_eq!(fs::read(mirror.join("a.rsa.pub")).unwrap(), b"key");
    }
}
