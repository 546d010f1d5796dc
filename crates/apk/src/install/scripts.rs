//! Package scripts: written to `lib/apk/exec`, run chrooted into the root through
//! [`Sys::run`], removed again; or skipped, and said so, when they cannot run.

use super::prepare::mkdir_mode;
use super::{InstallRequest, ScriptPolicy};
use crate::pkg::PkgInfo;
use crate::stream::ScriptKind;
use ramboot_sys::fsutil::Root;
use ramboot_sys::{Spawn, Sys};
use rustix::fs::{AtFlags, OFlags};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Runs the scripts of one transaction.
pub(super) struct ScriptRunner<'a> {
    sys: &'a dyn Sys,
    req_root: &'a Path,
    root: &'a Root,
    policy: ScriptPolicy,
    privileged: bool,
    /// Scripts skipped or not run faithfully, for [`super::InstallReport::scripts_not_run`].
    not_run: Mutex<Vec<String>>,
    /// Each script's run time (the report's profile).
    times: Mutex<Vec<(String, Duration)>>,
}

impl<'a> ScriptRunner<'a> {
    pub(super) fn new(
        sys: &'a dyn Sys,
        req: &'a InstallRequest,
        root: &'a Root,
        privileged: bool,
    ) -> Self {
        ScriptRunner {
            sys,
            req_root: &req.root,
            root,
            policy: req.scripts,
            privileged,
            not_run: Mutex::default(),
            times: Mutex::default(),
        }
    }

    /// Whether the process may chown and chroot (root).
    /// The system boundary the installer's privileged effects go through.
    pub(super) fn sys(&self) -> &'a dyn Sys {
        self.sys
    }

    pub(super) fn privileged(&self) -> bool {
        self.privileged
    }

    /// Each script run so far (`busybox post-install`) with the time it took to write, run
    /// and remove it.
    pub(super) fn take_times(&self) -> Vec<(String, Duration)> {
        std::mem::take(&mut *self.times.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The scripts that did not run, for the report.
    pub(super) fn take_not_run(&self) -> Vec<String> {
        std::mem::take(&mut *self.not_run.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// A script that did not run: a warning (or, when it must run, the package's error).
    fn skipped(
        &self,
        info: &PkgInfo,
        kind: ScriptKind,
        why: &str,
        warnings: &mut Vec<String>,
    ) -> Result<bool, String> {
        let msg = format!("{}: {} script not run ({why})", info.nv(), kind.name());
        if self.policy == ScriptPolicy::FailUnprivileged {
            return Err(format!("{} script not run ({why})", kind.name()));
        }
        self.not_run
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(msg.clone());
        warnings.push(msg);
        Ok(false)
    }

    /// Runs one script; Ok(true) when it ran (owner names may have changed), Err(reason) marks
    /// the package's script as broken (the reason without the package name: the caller adds it).
    pub(super) fn run(
        &self,
        info: &PkgInfo,
        kind: ScriptKind,
        body: &[u8],
        args: &[String],
        warnings: &mut Vec<String>,
    ) -> Result<bool, String> {
        let run = match self.policy {
            ScriptPolicy::Never => false,
            ScriptPolicy::Always => true,
            ScriptPolicy::Auto | ScriptPolicy::FailUnprivileged => self.privileged,
        };
        if !run {
            if self.policy == ScriptPolicy::Never {
                return Ok(false);
            }
            return self.skipped(info, kind, "needs root to chroot", warnings);
        }
        let started = Instant::now();
        let result = self.run_chrooted(info, kind, body, args, warnings);
        self.times
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((format!("{} {}", info.name, kind.name()), started.elapsed()));
        result
    }

    /// Writes the script into the root, runs it chrooted, removes it.
    fn run_chrooted(
        &self,
        info: &PkgInfo,
        kind: ScriptKind,
        body: &[u8],
        args: &[String],
        warnings: &mut Vec<String>,
    ) -> Result<bool, String> {
        let file = format!("{}-{}.{}", info.name, info.version, kind.name());
        let script = PathBuf::from(format!("lib/apk/exec/{file}"));
        let remove = || {
            if let Ok((dir, name)) = self.root.parent(&script) {
                let _ = rustix::fs::unlinkat(&dir, name, AtFlags::empty());
            }
        };
        let write = || -> std::io::Result<()> {
            remove();
            let mut f = self.root.create(&script, OFlags::EXCL, 0o755)?;
            std::io::Write::write_all(&mut f, body)
        };
        if write().is_err() {
            let _ = self
                .root
                .create_dirs(Path::new("lib/apk"), 0o755, &mut Vec::new());
            mkdir_mode(self.root, "lib/apk/exec", 0o700);
            write().map_err(|e| format!("cannot write {} script: {e}", kind.name()))?;
        }
        let spawn = Spawn {
            program: script.clone(),
            args: args.iter().map(OsString::from).collect(),
            env: vec![("PATH".into(), "/usr/sbin:/usr/bin:/sbin:/bin".into())],
            chroot: Some(self.req_root.to_path_buf()),
            cwd: Some(PathBuf::from("/")),
            umask: Some(0o022),
            ..Default::default()
        };
        let result = self.sys.run(&spawn);
        remove();
        match result {
            Err(e) if ramboot_sys::not_run_reason(&e).is_some() => {
                let why = ramboot_sys::not_run_reason(&e)
                    .unwrap_or_default()
                    .to_string();
                self.skipped(info, kind, &why, warnings)
            }
            Ok(0) => Ok(true),
            Ok(code) => Err(format!("{} script exited with error {code}", kind.name())),
            Err(e) => Err(format!(
                "{} script could not run: {e} (exit 127)",
                kind.name()
            )),
        }
    }
}
