//! switch_root done right: check the new init before burning bridges, carry the pseudo
//! filesystems and boot media along, free the initramfs without crossing mount points, then
//! make the new root `/` and exec init.

use super::BootError;
use crate::fsutil::{Resolve, Root};
use crate::sys::Sys;
use rustix::fd::AsFd;
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

/// Checks that `init` exists in `newroot` and is an executable file.
pub fn check_init(sys: &dyn Sys, newroot: &Path, init: &Path) -> Result<(), BootError> {
    let root = sys.path(newroot);
    let missing = || BootError::InitMissing {
        init: init.to_path_buf(),
        root: newroot.to_path_buf(),
    };
    let root = Root::open(&root, Resolve::Kernel).map_err(|_| missing())?;
    let fd = root
        .open_at(init, rustix::fs::OFlags::PATH)
        .map_err(|_| missing())?;
    let st = rustix::fs::fstat(&fd).map_err(|_| missing())?;
    let kind = rustix::fs::FileType::from_raw_mode(st.st_mode);
    if kind != rustix::fs::FileType::RegularFile || st.st_mode & 0o111 == 0 {
        return Err(BootError::InitNotExecutable {
            init: init.to_path_buf(),
        });
    }
    Ok(())
}

/// What the handoff needs.
pub struct Handoff<'a> {
    pub newroot: &'a Path,
    /// Top-level mount points of the initramfs to carry into the new root (`/dev`, `/media/vda1`…).
    pub mounts: &'a [PathBuf],
    pub init: &'a Path,
    pub init_args: &'a [String],
    /// `console=` device for the new init's stdio (`ttyAMA0` → `/dev/ttyAMA0`).
    pub console: Option<&'a str>,
    pub env: Vec<(OsString, OsString)>,
    /// Check `init` again at the point of no return; false only when a dry run already
    /// reported it as not verified (see `Boot::check_init`).
    pub check_init: bool,
    /// `ramboot_init`: exec ramboot itself, from a sealed memfd copy made before anything
    /// moves, instead of `init` (see DESIGN.md, "Service mode: the memfd handoff").
    pub service_mode: bool,
}

/// argv\[0\] of ramboot re-executed as the new root's PID 1 (the mode is decided from the
/// root, not from this name).
pub const SERVICE_MODE_ARGV0: &str = "ramboot";

/// Moves the mounts into the new root. A mount whose target cannot be created (a read-only root
/// without that directory) is detached instead and reported; it would be unreachable anyway.
pub fn move_mounts(sys: &dyn Sys, newroot: &Path, mounts: &[PathBuf]) -> Vec<String> {
    let mut warnings = Vec::new();
    for m in mounts {
        if m == newroot || m.starts_with(newroot) || m == Path::new("/") {
            continue;
        }
        let rel = m.strip_prefix("/").unwrap_or(m);
        let target = newroot.join(rel);
        let host = sys.path(&target);
        if !host.is_dir() && std::fs::create_dir_all(&host).is_err() {
            warnings.push(format!(
                "{} is missing in the new root and cannot be created; detaching {}",
                target.display(),
                m.display()
            ));
            let _ = sys.umount(m, true);
            continue;
        }
        if let Err(e) = sys.move_mount(m, &target) {
            warnings.push(format!(
                "cannot move {} to {}: {e}",
                m.display(),
                target.display()
            ));
        }
    }
    warnings
}

/// Does the switch. Returns only on failure (or, with the recording double, after the recorded exec).
pub fn switch_root(sys: &dyn Sys, h: &Handoff<'_>) -> BootError {
    // Copied while the initramfs still holds the binary; a failure here changes nothing.
    let image = match h.service_mode.then(|| sys.self_image()).transpose() {
        Ok(image) => image,
        Err(source) => {
            return BootError::SwitchRoot {
                step: "copy ramboot into a memfd",
                source,
            }
        }
    };
    if h.check_init && image.is_none() {
        if let Err(e) = check_init(sys, h.newroot, h.init) {
            return e;
        }
    }
    for w in move_mounts(sys, h.newroot, h.mounts) {
        log::warn!("{w}");
    }
    sys.sync();
    let step = |step: &'static str| move |source: io::Error| BootError::SwitchRoot { step, source };
    if let Err(e) = sys.chdir(h.newroot).map_err(step("chdir to the new root")) {
        return e;
    }
    if let Err(e) = sys.free_initramfs(h.newroot) {
        // Not fatal: the initramfs stays in RAM.
        log::warn!("could not free the initramfs: {e}");
    }
    if let Err(e) = sys
        .move_mount(Path::new("."), Path::new("/"))
        .map_err(step("move the new root to /"))
    {
        return e;
    }
    if let Err(e) = sys.chroot(Path::new(".")).map_err(step("chroot")) {
        return e;
    }
    if let Some(c) = h.console {
        let dev = Path::new("/dev").join(c);
        if let Err(e) = sys.attach_console(&dev) {
            log::warn!("cannot open console {}: {e}", dev.display());
        }
    }
    if let Some(image) = image {
        let argv = [OsString::from(SERVICE_MODE_ARGV0)];
        return BootError::Exec {
            init: PathBuf::from("memfd:ramboot"),
            source: sys.exec_image(image.as_fd(), &argv, &h.env),
        };
    }
    let mut argv: Vec<OsString> = vec![h.init.as_os_str().to_os_string()];
    argv.extend(h.init_args.iter().map(OsString::from));
    let source = sys.exec(h.init, &argv, &h.env);
    BootError::Exec {
        init: h.init.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::{is_exec_recorded, RecordingSys};
    use std::os::unix::fs::symlink;
    use std::os::unix::fs::PermissionsExt;

    fn exe(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"#!").unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn switch_root_checks_init_moves_mounts_and_execs() {
        let dir = tempfile::tempdir().unwrap();
        let sys = RecordingSys::new(dir.path());
        exe(&dir.path().join("sysroot/bin/busybox"));
        symlink("/bin/busybox", dir.path().join("sysroot/sbin-init")).unwrap();
        for d in ["dev", "proc", "media/vda1", "sysroot/dev"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        let mounts = ["/dev", "/proc", "/media/vda1", "/sysroot"].map(PathBuf::from);
        let h = Handoff {
            newroot: Path::new("/sysroot"),
            mounts: &mounts,
            init: Path::new("/sbin-init"),
            init_args: &["single".into()],
            console: Some("ttyAMA0"),
            env: vec![],
            check_init: true,
            service_mode: false,
        };
        let err = switch_root(&sys, &h);
        let BootError::Exec { source, .. } = err else {
            panic!("{err}")
        };
        assert!(is_exec_recorded(&source));
        assert_eq!(
            sys.trace(),
            [
                "mount -o move /dev /sysroot/dev",
                "mount -o move /proc /sysroot/proc",
                "mount -o move /media/vda1 /sysroot/media/vda1",
                "sync",
                "cd /sysroot",
                "rm -rf --one-file-system / (keep /sysroot)",
                "mount -o move . /",
                "chroot .",
                "console /dev/ttyAMA0",
                "exec /sbin-init single",
            ]
        );
    }

    /// Service mode: the binary is copied into a memfd before anything moves, `init=` is
    /// neither checked nor run, and the memfd is exec'd in the new root.
    #[test]
    fn service_mode_copies_ramboot_first_and_execs_the_memfd() {
        let dir = tempfile::tempdir().unwrap();
        let sys = RecordingSys::new(dir.path());
        for d in ["dev", "sysroot"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        let mounts = [PathBuf::from("/dev")];
        let h = Handoff {
            newroot: Path::new("/sysroot"),
            mounts: &mounts,
            init: Path::new("/sbin/init"),
            init_args: &[],
            console: None,
            env: vec![],
            check_init: true,
            service_mode: true,
        };
        let err = switch_root(&sys, &h);
        let BootError::Exec { source, .. } = err else {
            panic!("{err}")
        };
        assert!(is_exec_recorded(&source));
        assert_eq!(
            sys.trace(),
            [
                "memfd ramboot < /proc/self/exe (sealed)",
                "mount -o move /dev /sysroot/dev",
                "sync",
                "cd /sysroot",
                "rm -rf --one-file-system / (keep /sysroot)",
                "mount -o move . /",
                "chroot .",
                "execveat memfd:ramboot ramboot",
            ]
        );
        // A failed copy stops the handoff before the point of no return.
        let sys = RecordingSys::new(dir.path());
        sys.fail_on("memfd", 38); // ENOSYS
        let err = switch_root(&sys, &h);
        assert!(
            err.to_string().contains("copy ramboot into a memfd"),
            "{err}"
        );
        assert_eq!(sys.trace(), ["memfd ramboot < /proc/self/exe (sealed)"]);
    }

    #[test]
    fn missing_or_non_executable_init_is_refused_before_anything_moves() {
        let dir = tempfile::tempdir().unwrap();
        let sys = RecordingSys::new(dir.path());
        std::fs::create_dir_all(dir.path().join("sysroot/sbin")).unwrap();
        let h = Handoff {
            newroot: Path::new("/sysroot"),
            mounts: &[PathBuf::from("/dev")],
            init: Path::new("/sbin/init"),
            init_args: &[],
            console: None,
            env: vec![],
            check_init: true,
            service_mode: false,
        };
        assert!(matches!(
            switch_root(&sys, &h),
            BootError::InitMissing { .. }
        ));
        std::fs::write(dir.path().join("sysroot/sbin/init"), b"x").unwrap();
        assert!(matches!(
            switch_root(&sys, &h),
            BootError::InitNotExecutable { .. }
        ));
        assert!(sys.trace().is_empty());
    }
}
