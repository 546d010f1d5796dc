//! PID 1's first steps: the directories and mounts every later stage relies on, in Alpine's
//! order and with Alpine's options (`initramfs-init` common prefix), plus `/run`, the console on
//! stdio and the kernel log.

use crate::sys::{parse_mount_options, NodeKind, Sys};
use std::path::{Path, PathBuf};

/// Directories Alpine's init creates before anything else.
const DIRS: &[&str] = &[
    "/bin", "/sbin", "/usr/bin", "/usr/sbin", "/proc", "/sys", "/dev", "/sysroot", "/media/cdrom", "/media/usb", "/tmp",
    "/etc", "/run",
];

/// One early mount: (fstype, source, target, options). Order matters: /dev before /dev/pts.
const MOUNTS: &[(&str, &str, &str, &str)] = &[
    ("sysfs", "sysfs", "/sys", "noexec,nosuid,nodev"),
    ("devtmpfs", "devtmpfs", "/dev", "exec,nosuid,mode=0755,size=2M"),
    ("proc", "proc", "/proc", "noexec,nosuid,nodev"),
    ("devpts", "devpts", "/dev/pts", "gid=5,mode=0620,noexec,nosuid"),
    ("tmpfs", "shm", "/dev/shm", "nodev,nosuid,noexec"),
    ("tmpfs", "tmpfs", "/run", "nosuid,nodev,mode=0755"),
];

/// What the early stage left behind.
#[derive(Debug, Default)]
pub struct Early {
    /// Top-level mount points made, in order (moved into the new root at handoff).
    pub mounts: Vec<PathBuf>,
    /// Mounts that failed: (target, reason). Boot goes on; later stages report what breaks.
    pub failures: Vec<(String, String)>,
}

fn mknod_if_missing(sys: &dyn Sys, path: &str, mode: u32, major: u32, minor: u32) {
    let host = sys.path(Path::new(path));
    if std::fs::symlink_metadata(&host).is_err() {
        let _ = sys.mknod(Path::new(path), NodeKind::Char, mode, major, minor);
    }
}

/// Creates the directories, mounts the pseudo filesystems and attaches the console.
pub fn setup(sys: &dyn Sys) -> Early {
    let mut early = Early::default();
    for d in DIRS {
        let _ = std::fs::create_dir_all(sys.path(Path::new(d)));
    }
    for &(fstype, source, target, options) in MOUNTS {
        let target_path = Path::new(target);
        let _ = std::fs::create_dir_all(sys.path(target_path));
        let (flags, data) = parse_mount_options(options);
        let mut result = sys.mount(source, target_path, fstype, flags, &data);
        if result.is_err() && fstype == "devtmpfs" {
            // Kernels without devtmpfs: a tmpfs /dev with the same options (Alpine does the same).
            result = sys.mount("tmpfs", target_path, "tmpfs", flags, &data);
        }
        match result {
            Ok(()) => {
                if target.matches('/').count() == 1 {
                    early.mounts.push(target_path.to_path_buf());
                }
            }
            Err(e) => early.failures.push((target.to_string(), e.to_string())),
        }
        if target == "/dev" {
            mknod_if_missing(sys, "/dev/console", 0o600, 5, 1);
            mknod_if_missing(sys, "/dev/null", 0o666, 1, 3);
            mknod_if_missing(sys, "/dev/kmsg", 0o660, 1, 11);
            mknod_if_missing(sys, "/dev/ptmx", 0o666, 5, 2);
            // The kernel found no /dev/console in the initramfs, so stdio may be closed: fix that.
            let _ = sys.attach_console(Path::new("/dev/console"));
        }
    }
    // No usermode helper per uevent: ramboot listens on netlink itself.
    let hotplug = sys.path(Path::new("/proc/sys/kernel/hotplug"));
    if hotplug.exists() {
        let _ = std::fs::write(hotplug, b"\n");
    }
    let mtab = sys.path(Path::new("/etc/mtab"));
    if std::fs::symlink_metadata(&mtab).is_err() {
        let _ = std::os::unix::fs::symlink("/proc/mounts", mtab);
    }
    early
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::RecordingSys;

    #[test]
    fn alpine_mounts_in_order_with_options() {
        let dir = tempfile::tempdir().unwrap();
        let sys = RecordingSys::new(dir.path());
        let early = setup(&sys);
        let trace = sys.trace();
        let mounts: Vec<&String> = trace.iter().filter(|l| l.starts_with("mount")).collect();
        assert_eq!(
            mounts,
            [
                "mount -t sysfs -o nosuid,nodev,noexec sysfs /sys",
                "mount -t devtmpfs -o nosuid,mode=0755,size=2M devtmpfs /dev",
                "mount -t proc -o nosuid,nodev,noexec proc /proc",
                "mount -t devpts -o nosuid,noexec,gid=5,mode=0620 devpts /dev/pts",
                "mount -t tmpfs -o nosuid,nodev,noexec shm /dev/shm",
                "mount -t tmpfs -o nosuid,nodev,mode=0755 tmpfs /run",
            ]
        );
        assert!(trace.contains(&"mknod -m 660 /dev/kmsg c 1 11".to_string()));
        assert!(trace.contains(&"console /dev/console".to_string()));
        assert_eq!(early.mounts, ["/sys", "/dev", "/proc", "/run"].map(PathBuf::from));
        assert!(early.failures.is_empty());
        assert!(dir.path().join("media/usb").is_dir());
    }

    #[test]
    fn devtmpfs_falls_back_to_tmpfs() {
        let dir = tempfile::tempdir().unwrap();
        let sys = RecordingSys::new(dir.path());
        sys.fail_on("-t devtmpfs", 19);
        let early = setup(&sys);
        assert!(sys.trace().contains(&"mount -t tmpfs -o nosuid,mode=0755,size=2M tmpfs /dev".to_string()));
        assert!(early.mounts.contains(&PathBuf::from("/dev")));
    }
}
