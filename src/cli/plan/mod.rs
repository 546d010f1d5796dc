//! `ramboot plan`: the whole boot, run unprivileged against a directory standing in for `/`,
//! with every decision printed. It answers "why did my apkovl not load?" before a card is
//! flashed, from a copy of that card's files.
//!
//! The boot writes (it assembles `/sysroot`, moves mounts, creates device placeholders), so it
//! never runs on the user's directory: DIR is copied to a fresh scratch directory first and the
//! boot runs there through [`RecordingSys`], which records every privileged call instead of making
//! it and never deletes anything (`free_initramfs` is only recorded). In the copy, absolute
//! symlinks are made relative to the copy (a stand-in root resolves `/x` inside itself, as a
//! chroot would), and device nodes, fifos and sockets become empty files: nothing the boot does
//! can reach outside the scratch directory. The copy is removed at the end unless `--keep`.
//! The scratch directory lives in the temp dir, which may be inside a tree being copied
//! (`--media /tmp`): the copy never descends into it.
//!
//! Package scripts matter to the outcome (busybox's post-install creates `/sbin/init`), so they
//! run, chrooted into the scratch copy, when the plan runs as root: natively, through the
//! kernel's binfmt_misc, or under `qemu-<arch>-static` (see [`crate::sys::foreign`]). When they
//! cannot run (not root, `--no-scripts`, no way to run the card's machine), what they would
//! create is reported as "created by a package script, not verified", never as a failure.
//!
//! A copy of an SD card is not a fake kernel: a non-empty `media/<name>/` with no
//! `sys/class/block/<name>` becomes an already-mounted vfat device (a `proc/mounts` line and a
//! minimal sysfs entry), which discovery scans where it is, as it would a mounted card.

//!
//! Map: this file parses the command line and runs the plan; `scratch` makes the scratch copy;
//! `report` turns the finished run into the report, as text or JSON.

mod report;
mod scratch;

pub use report::{report, MediaEntry, Report};
pub use scratch::{copy_tree, prepare, PlanError, Prepared};

use super::args::{unexpected, ArgError, Args, Long, Short, Usage};
use crate::boot;
use crate::sys::{ChrootRuns, RecordingSys};
use scratch::scratch_dir;
use std::ffi::OsString;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub const HELP: &str = "\
usage: ramboot plan --root DIR | --media SRC[:NAME]... [options]

Runs the whole boot unprivileged against DIR standing in for / (proc/cmdline, sys/, dev/,
media/<dev>/, lib/modules, etc/apk/keys ...) and prints every decision and the recorded calls.
DIR is never written: the boot runs on a scratch copy (removed afterwards unless --keep).
A non-empty media/<name>/ without sys/class/block/<name> (e.g. a copy of an SD card's files)
is treated as an already-mounted vfat boot medium. As root, package scripts run chrooted in the
scratch copy (for another machine through binfmt_misc or qemu-<arch>-static); otherwise what
they create is reported as not verified.

  --root DIR               the stand-in for / (default: an empty one, with --media)
  --media SRC[:NAME]       also copy SRC to media/NAME (default NAME: mmcblk0p1; repeatable)
  --cmdline TEXT           the kernel command line (default: DIR/proc/cmdline)
  --kernel-release REL     uname -r (default: the one directory in DIR/lib/modules)
  --arch ARCH              apk architecture (default: the one found in the boot repositories)
  --keys-dir DIR           trust the apk keys in DIR, as the initramfs' /etc/apk/keys (repeatable)
  --no-scripts             never run package scripts (what they create is not verified)
  --keep                   keep the scratch copy and print where it is
  --json                   the same report as JSON
";

const USAGE: Usage = Usage {
    prog: "ramboot plan",
    text: HELP,
    status: 2,
};
/// Flags as given.
#[derive(Default)]
struct Raw {
    root: Option<PathBuf>,
    media: Vec<String>,
    cmdline: Option<String>,
    kernel_release: Option<String>,
    arch: Option<String>,
    keys_dirs: Vec<PathBuf>,
    no_scripts: bool,
    keep: bool,
    json: bool,
    help: bool,
}

fn parse_raw(mut p: Args) -> Result<Raw, ArgError> {
    let mut raw = Raw::default();
    while let Some(arg) = p.next_arg()? {
        match arg {
            Long("root") => raw.root = Some(p.path()?),
            Long("media") => raw.media.push(p.string()?),
            Long("cmdline") => raw.cmdline = Some(p.string()?),
            Long("kernel-release") => raw.kernel_release = Some(p.string()?),
            Long("arch") => raw.arch = Some(p.string()?),
            Long("keys-dir") => raw.keys_dirs.push(p.path()?),
            Long("no-scripts") => raw.no_scripts = true,
            Long("keep") => raw.keep = true,
            Long("json") => raw.json = true,
            Short('h') | Long("help") => raw.help = true,
            _ => return Err(unexpected(arg)),
        }
    }
    Ok(raw)
}

/// A validated request.
#[derive(Debug)]
pub struct Request {
    pub root: Option<PathBuf>,
    /// (source directory, name under `media/`).
    pub media: Vec<(PathBuf, String)>,
    pub cmdline: Option<String>,
    pub kernel_release: Option<String>,
    pub arch: Option<String>,
    /// Directories of trusted apk keys, copied to the scratch root's `etc/apk/keys`.
    pub keys_dirs: Vec<PathBuf>,
    pub no_scripts: bool,
    pub keep: bool,
    pub json: bool,
}

fn validate(raw: Raw) -> Result<Request, ArgError> {
    let not_a_dir =
        |flag: &str, p: &Path| ArgError::invalid(flag, &p.display().to_string(), "not a directory");
    if raw.root.is_none() && raw.media.is_empty() {
        return Err(ArgError::Missing("--root DIR (or --media SRC)".into()));
    }
    if let Some(root) = raw.root.as_deref().filter(|r| !r.is_dir()) {
        return Err(not_a_dir("--root", root));
    }
    let mut media = Vec::new();
    for m in raw.media {
        let (src, name) = match m.rsplit_once(':') {
            Some((s, n)) if !n.is_empty() && !n.contains('/') => (s.to_string(), n.to_string()),
            _ => (m.clone(), "mmcblk0p1".to_string()),
        };
        if !Path::new(&src).is_dir() {
            return Err(not_a_dir("--media", Path::new(&src)));
        }
        media.push((PathBuf::from(src), name));
    }
    if let Some(k) = raw.keys_dirs.iter().find(|k| !k.is_dir()) {
        return Err(not_a_dir("--keys-dir", k));
    }
    Ok(Request {
        root: raw.root,
        media,
        cmdline: raw.cmdline,
        kernel_release: raw.kernel_release,
        arch: raw.arch,
        keys_dirs: raw.keys_dirs,
        no_scripts: raw.no_scripts,
        keep: raw.keep,
        json: raw.json,
    })
}
/// The console of the plan: every line kept for the report, echoed live when asked.
#[derive(Clone)]
struct Tee {
    buf: Arc<Mutex<Vec<u8>>>,
    echo: bool,
}

impl Write for Tee {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.buf
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(b);
        if self.echo {
            io::stdout().write_all(b)?;
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        if self.echo {
            io::stdout().flush()?;
        }
        Ok(())
    }
}
/// Runs the boot on a prepared scratch root with a rescue budget of zero; package scripts run
/// as `scripts` says.
pub fn run(prep: &Prepared, echo: bool, scripts: ChrootRuns) -> Report {
    let tee = Tee {
        buf: Arc::default(),
        echo,
    };
    boot::console::init(Box::new(tee.clone()), false, false);
    let sys = RecordingSys::new(&prep.dir)
        .with_kernel_release(&prep.kernel_release)
        .with_machine(&prep.machine)
        .with_chroot_runs(scripts);
    let cmdline = fs::read_to_string(prep.dir.join("proc/cmdline"))
        .unwrap_or_default()
        .trim()
        .to_string();
    let finished = boot::run_recorded(&sys, Some(0));
    let mut r = report(&finished, &sys, cmdline);
    r.setup = prep.notes.clone();
    r.setup.push(format!(
        "kernel release {}, machine {}",
        prep.kernel_release, prep.machine
    ));
    let log = tee.buf.lock().unwrap_or_else(|e| e.into_inner()).clone();
    r.log = String::from_utf8_lossy(&log)
        .lines()
        .map(str::to_string)
        .collect();
    r
}

pub fn main(args: &[OsString]) -> i32 {
    let req = match USAGE.two_stage(args, parse_raw, |r| r.help, validate) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let dir = scratch_dir();
    let prep = match prepare(&req, &dir) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("ramboot plan: {e}");
            let _ = fs::remove_dir_all(&dir);
            return 1;
        }
    };
    if !req.json {
        println!(
            "ramboot plan: booting a copy of {} in {}\n\n== boot log ==",
            req.root
                .as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "an empty root".into()),
            dir.display()
        );
    }
    let scripts = if req.no_scripts {
        ChrootRuns::Refuse("--no-scripts".into())
    } else {
        ChrootRuns::Execute
    };
    let mut report = run(&prep, !req.json, scripts);
    if req.keep {
        report
            .setup
            .push(format!("scratch copy kept in {}", dir.display()));
    } else if let Err(e) = fs::remove_dir_all(&dir) {
        eprintln!("ramboot plan: cannot remove {}: {e}", dir.display());
    }
    if req.json {
        println!("{}", report.json());
    } else {
        print!("{}", report.text());
        if req.keep {
            println!("(scratch copy kept in {})", dir.display());
        }
    }
    i32::from(!report.handed_off)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<OsString> {
        a.iter().map(OsString::from).collect()
    }

    #[test]
    fn parses_and_validates() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        let raw = parse_raw(Args::new(args(&[
            "--root",
            d,
            "--cmdline=quiet",
            "--json",
            "--media",
            &format!("{d}:sda1"),
        ])))
        .unwrap();
        let req = validate(raw).unwrap();
        assert_eq!(req.cmdline.as_deref(), Some("quiet"));
        assert!(req.json);
        assert_eq!(req.media, [(dir.path().to_path_buf(), "sda1".to_string())]);
        assert!(validate(parse_raw(Args::new(args(&["--json"]))).unwrap()).is_err());
        assert!(parse_raw(Args::new(args(&["stray"]))).is_err());
    }
}
