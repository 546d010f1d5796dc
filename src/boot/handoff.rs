//! The last stage: the `init=` check, the timeline written where the new root sees it, the
//! kernel log's rate limit put back, then switch_root and the exec of the new init.

use super::runner::Done;
use super::{stages, switch_root, Boot, BootEnd, BootError, SYSROOT, TIMELINE_PATH};
use crate::sys::is_exec_recorded;
use std::path::Path;

impl Boot<'_> {
    /// Writes the timeline where the new root will see it and prints the summary.
    pub fn finish_timeline(&mut self) {
        self.timeline.handoff = Some(self.sys.now());
        if let Some(loader) = self.loader() {
            self.timeline.modules.extend(loader.take_times());
        }
        let path = self.sys.path(Path::new(TIMELINE_PATH));
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Err(e) = std::fs::write(&path, self.timeline.to_json()) {
            log::warn!("cannot write {TIMELINE_PATH}: {e}");
        }
        // The kernel log always has it; the console only without `quiet`.
        log::info!("{}", self.timeline.summary());
    }

    /// The last stage: switch_root into `/sysroot` and exec init. Failures before the point of no
    /// return go through the failure policy and are retried.
    pub fn handoff(&mut self) -> BootEnd {
        let mut checked = self
            .stage(&stages::HANDOFF)
            .run(|b| b.check_init().map(Done::ok));
        loop {
            if let Err(end) = checked {
                return end;
            }
            // The cached root's tree is read now (part of the boot's time); its writer starts
            // after the timeline and runs beside the new system.
            let cache_write = self.root_cache_write.take().and_then(|w| w.scan());
            self.finish_timeline();
            if let Some(write) = cache_write {
                write.start(self.sys);
            }
            // Back to the kernel's default for the new system's own writers.
            self.kmsg_limit.restore(self.sys);
            let init = self.plan.init.clone();
            let args = self.plan.init_args.clone();
            let console_dev = self.plan.switch_root_console.clone();
            let h = switch_root::Handoff {
                newroot: Path::new(SYSROOT),
                mounts: &self.mounts,
                init: &init,
                init_args: &args,
                console: console_dev.as_deref(),
                env: self.env.clone(),
                check_init: self.record.unverified.is_empty(),
                service_mode: self.plan.ramboot_init,
            };
            let err = switch_root::switch_root(self.sys, &h);
            if let BootError::Exec { source, .. } = &err {
                if is_exec_recorded(source) {
                    return BootEnd::HandedOff;
                }
            }
            self.kmsg_limit.lift_again(self.sys);
            let reason = err.to_string();
            log::error!("{reason}");
            checked = self.after_failure(&stages::HANDOFF, &reason);
        }
    }
}

impl Boot<'_> {
    /// The handoff's check of `init=`. A missing init is not held against a dry run whose
    /// package scripts did not run: busybox's post-install creates `/sbin/init`.
    fn check_init(&mut self) -> Result<(), BootError> {
        if self.plan.ramboot_init {
            let ignored = match self.plan.init.as_path() {
                p if p == Path::new(crate::cmdline::DEFAULT_INIT) => String::new(),
                p => format!("; init={} is ignored", p.display()),
            };
            log::info!("ramboot_init: ramboot stays PID 1 of the new root (service mode){ignored}");
            return Ok(());
        }
        match switch_root::check_init(self.sys, Path::new(SYSROOT), &self.plan.init) {
            Err(BootError::InitMissing { init, .. }) if !self.record.scripts_not_run.is_empty() => {
                let note = format!(
                    "{}: created by a package script, not verified ({} script(s) did not run, e.g. {})",
                    init.display(),
                    self.record.scripts_not_run.len(),
                    self.record.scripts_not_run[0]
                );
                log::warn!("{note}");
                self.record.unverified.push(note);
                Ok(())
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::kmsg::tests::proc_sys;
    use crate::boot::runner::tests::boot_with;
    use crate::boot::KmsgLimit;
    use crate::sys::RecordingSys;
    use std::path::PathBuf;

    fn executable_init(dir: &Path) {
        use std::os::unix::fs::PermissionsExt;
        let init = dir.join("sysroot/sbin/init");
        std::fs::create_dir_all(init.parent().unwrap()).unwrap();
        std::fs::write(&init, b"#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&init, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// Issue 8 (9): the kernel's rate limit on /dev/kmsg writers is lifted for the boot and put
    /// back before switch_root hands over to the new system.
    #[test]
    fn the_kmsg_rate_limit_is_lifted_for_the_boot_and_restored_at_handoff() {
        let dir = tempfile::tempdir().unwrap();
        proc_sys(dir.path(), "ratelimit\n");
        executable_init(dir.path());
        let sys = RecordingSys::new(dir.path());
        let limit = KmsgLimit::lift(&sys);
        let devkmsg = || std::fs::read_to_string(dir.path().join("proc/sys/kernel/printk_devkmsg"));
        assert_eq!(devkmsg().unwrap(), "on\n");
        let mut b = boot_with(&sys, "");
        b.kmsg_limit = limit;
        b.mounts = vec![PathBuf::from("/proc")];
        assert!(matches!(b.handoff(), BootEnd::HandedOff));
        let t = sys.trace();
        assert_eq!(t[0], "sysctl -w kernel.printk_devkmsg=on");
        let restored = t
            .iter()
            .position(|l| l == "sysctl -w kernel.printk_devkmsg=ratelimit")
            .unwrap_or_else(|| panic!("{t:#?}"));
        let moved = t
            .iter()
            .position(|l| l.starts_with("mount -o move"))
            .unwrap();
        assert!(restored < moved, "{t:#?}");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("sysroot/proc/sys/kernel/printk_devkmsg"))
                .unwrap(),
            "ratelimit\n",
            "/proc moved into the new root with the kernel's default back"
        );
    }
}
