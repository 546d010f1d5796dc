//! Which job a PID 1 has: boot from the initramfs, or run the system it is the init of.
//!
//! Decided from what `/` is, never from argv\[0\]: the root mount's filesystem type in
//! `/proc/self/mountinfo` is `rootfs` only in the kernel's initramfs. Anything else — the
//! diskless tmpfs after the memfd handoff, an installed root reached with
//! `init=/usr/sbin/ramboot` or `/sbin/init -> ramboot` after any initramfs, a root the kernel
//! mounted itself — is system mode.

use crate::sys::{MountFlags, Sys};
use std::path::Path;

/// What PID 1 does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pid1Mode {
    /// `/` is the initramfs: boot Alpine (and hand off, or stay with `ramboot_init`).
    Initramfs,
    /// `/` is a real root: run it (inittab, services).
    System,
}

/// The decision and the one line saying why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModeDecision {
    pub mode: Pid1Mode,
    pub why: String,
}

impl ModeDecision {
    /// The console line: `ramboot: system mode: / is ext4, not the initramfs`.
    pub fn line(&self) -> String {
        let mode = match self.mode {
            Pid1Mode::Initramfs => "initramfs boot",
            Pid1Mode::System => "system mode",
        };
        format!("ramboot: {mode}: {}", self.why)
    }
}

/// The filesystem type of the mount on `/` as the reader sees it: the last `/` line of a
/// mountinfo text (the top of a stack of mounts on `/`).
pub fn root_fstype(mountinfo: &str) -> Option<&str> {
    mountinfo.lines().rev().find_map(|line| {
        let (mount, fs) = line.split_once(" - ")?;
        let mount_point = mount.split(' ').nth(4)?;
        (mount_point == "/").then(|| fs.split(' ').next())?
    })
}

/// Decides from a mountinfo text (`None`: it could not be read even after mounting `/proc`).
pub fn decide(mountinfo: Option<&str>) -> ModeDecision {
    let Some(text) = mountinfo else {
        return ModeDecision {
            mode: Pid1Mode::System,
            why: "/proc/self/mountinfo cannot be read, so / cannot be the initramfs ramboot builds"
                .into(),
        };
    };
    match root_fstype(text) {
        Some("rootfs") => ModeDecision {
            mode: Pid1Mode::Initramfs,
            why: "/ is the kernel's rootfs".into(),
        },
        Some(fs) => ModeDecision {
            mode: Pid1Mode::System,
            why: format!("/ is {fs}, not the initramfs"),
        },
        None => ModeDecision {
            mode: Pid1Mode::System,
            why: "no mount on / in /proc/self/mountinfo".into(),
        },
    }
}

/// Reads `/proc/self/mountinfo`, mounting `/proc` first when it is not there, and decides.
pub fn detect(sys: &dyn Sys) -> ModeDecision {
    let mountinfo = sys.path(Path::new("/proc/self/mountinfo"));
    let read = || std::fs::read_to_string(&mountinfo).ok();
    let text = read().or_else(|| {
        let proc_dir = Path::new("/proc");
        let _ = std::fs::create_dir_all(sys.path(proc_dir));
        let flags = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
        sys.mount("proc", proc_dir, "proc", flags, "").ok()?;
        read()
    });
    decide(text.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::RecordingSys;

    const INITRAMFS: &str = "1 1 0:2 / / rw - rootfs rootfs rw,size=1004032k,nr_inodes=251008\n\
        15 1 0:5 / /dev rw,relatime - devtmpfs devtmpfs rw,size=4k,mode=755\n\
        16 1 0:21 / /proc rw,relatime - proc proc rw\n";

    /// After the diskless switch_root: the sysroot tmpfs moved onto `/` (the rootfs under it
    /// is outside the chroot and not listed).
    const DISKLESS: &str = "22 1 0:20 / / rw,relatime - tmpfs tmpfs rw,mode=755\n\
        23 22 0:5 / /dev rw,relatime - devtmpfs devtmpfs rw\n\
        24 22 0:21 / /proc rw,relatime - proc proc rw\n\
        25 22 254:1 / /media/vda1 ro,relatime shared:1 - vfat /dev/vda1 ro\n";

    /// An installed root reached with `init=/usr/sbin/ramboot` (or `/sbin/init -> ramboot`):
    /// the same decision whatever the init's name.
    const INSTALLED: &str = "1 0 0:2 / / rw - rootfs rootfs rw\n\
        20 1 254:2 / / rw,relatime shared:1 - ext4 /dev/vda2 rw\n\
        21 20 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:2 - proc proc rw\n";

    #[test]
    fn rootfs_is_the_initramfs_anything_else_the_system() {
        let d = decide(Some(INITRAMFS));
        assert_eq!(d.mode, Pid1Mode::Initramfs);
        assert_eq!(
            d.line(),
            "ramboot: initramfs boot: / is the kernel's rootfs"
        );
        let d = decide(Some(DISKLESS));
        assert_eq!(d.mode, Pid1Mode::System);
        assert_eq!(
            d.line(),
            "ramboot: system mode: / is tmpfs, not the initramfs"
        );
        let d = decide(Some(INSTALLED));
        assert_eq!(
            (d.mode, d.why.as_str()),
            (Pid1Mode::System, "/ is ext4, not the initramfs")
        );
    }

    #[test]
    fn optional_fields_and_odd_texts_do_not_confuse_the_parser() {
        // Several optional fields before the separator; a mount point with an escaped space.
        let text = "30 1 8:1 / /my\\040root rw shared:1 master:2 - xfs /dev/sda1 rw\n\
            31 1 8:2 / / rw shared:1 master:2 propagate_from:1 - btrfs /dev/sda2 rw\n";
        assert_eq!(root_fstype(text), Some("btrfs"));
        assert_eq!(root_fstype("garbage\n\n"), None);
        assert_eq!(decide(Some("")).mode, Pid1Mode::System);
        assert_eq!(decide(None).mode, Pid1Mode::System);
    }

    #[test]
    fn proc_is_mounted_when_mountinfo_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let sys = RecordingSys::new(dir.path());
        let d = detect(&sys);
        assert_eq!(
            sys.trace(),
            ["mount -t proc -o nosuid,nodev,noexec proc /proc"]
        );
        // The double's /proc stays empty: undecidable, so not the initramfs.
        assert_eq!(d.mode, Pid1Mode::System);

        std::fs::create_dir_all(dir.path().join("proc/self")).unwrap();
        std::fs::write(dir.path().join("proc/self/mountinfo"), INITRAMFS).unwrap();
        let sys = RecordingSys::new(dir.path());
        assert_eq!(detect(&sys).mode, Pid1Mode::Initramfs);
        assert!(sys.trace().is_empty());
    }
}
