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

use super::args::{unexpected, ArgError, Args, Long, Short, Usage};
use crate::boot::{self, timeline::Outcome, BootEnd, Finished};
use crate::cmdline::{ApkovlSource, Mode, RepoSource};
use crate::json::Json;
use crate::sys::{ChrootRuns, RecordingSys, Sys};
use std::ffi::OsString;
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub const HELP: &str = "\
usage: ramboot plan --root DIR [options]

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

/// Errors of `ramboot plan` while it prepares the scratch copy.
#[derive(Debug)]
pub enum PlanError {
    Copy { path: PathBuf, source: io::Error },
    Setup { what: String, source: io::Error },
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Copy { path, source } => write!(f, "cannot copy {}: {source}", path.display()),
            Self::Setup { what, source } => write!(f, "cannot {what}: {source}"),
        }
    }
}

impl std::error::Error for PlanError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Copy { source, .. } | Self::Setup { source, .. } => Some(source),
        }
    }
}

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

/// Copies `src` into `dst` without following symlinks; see the module docs for what changes.
/// `top` is the scratch root (for absolute symlinks); nothing at or under `skip` (the scratch
/// directory itself, by device and inode) is copied.
pub fn copy_tree(src: &Path, dst: &Path, top: &Path, skip: (u64, u64)) -> Result<(), PlanError> {
    use std::os::unix::fs::MetadataExt;
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| PlanError::Copy { path, source }
    };
    fs::create_dir_all(dst).map_err(err(dst))?;
    for e in fs::read_dir(src).map_err(err(src))? {
        let e = e.map_err(err(src))?;
        let from = e.path();
        let to = dst.join(e.file_name());
        let ft = e.file_type().map_err(err(&from))?;
        if ft.is_dir() {
            let meta = fs::symlink_metadata(&from).map_err(err(&from))?;
            if (meta.dev(), meta.ino()) == skip {
                continue;
            }
            copy_tree(&from, &to, top, skip)?;
            let mode = fs::metadata(&from).map_err(err(&from))?.permissions();
            fs::set_permissions(&to, mode).map_err(err(&to))?;
        } else if ft.is_symlink() {
            let target = fs::read_link(&from).map_err(err(&from))?;
            let target = if target.is_absolute() {
                // `/x` seen from DIR/a/b/link is ../../x.
                let depth = dst
                    .strip_prefix(top)
                    .map(|p| p.components().count())
                    .unwrap_or(0);
                let mut rel: PathBuf = std::iter::repeat("..").take(depth).collect();
                rel.push(target.strip_prefix("/").unwrap_or(&target));
                rel
            } else {
                target
            };
            std::os::unix::fs::symlink(target, &to).map_err(err(&to))?;
        } else if ft.is_file() {
            fs::copy(&from, &to).map_err(err(&from))?;
        } else {
            fs::File::create(&to).map_err(err(&to))?;
        }
    }
    Ok(())
}

/// The scratch root, ready for the boot.
pub struct Prepared {
    pub dir: PathBuf,
    pub kernel_release: String,
    pub machine: String,
    /// What was assumed or synthesised, for the report.
    pub notes: Vec<String>,
}

fn scratch_dir() -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    std::env::temp_dir().join(format!("ramboot-plan.{}.{nanos}", std::process::id()))
}

fn setup_err(what: &str) -> impl FnOnce(io::Error) -> PlanError + '_ {
    move |source| PlanError::Setup {
        what: what.to_string(),
        source,
    }
}

/// `uname -m` for an apk architecture (the inverse of the boot's `apk_arch`).
fn machine_for(arch: &str) -> &str {
    match arch {
        "armv7" => "armv7l",
        "armhf" => "armv6l",
        "x86" => "i686",
        other => other,
    }
}

/// Architectures of the boot repositories under `media/*` (`<repo>/<arch>/APKINDEX.tar.gz`).
fn media_arches(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir(root.join("media")) else {
        return out;
    };
    for m in rd.flatten() {
        for repo in crate::media::deep_boot_repositories(&m.path()) {
            let Ok(sub) = fs::read_dir(m.path().join(repo)) else {
                continue;
            };
            for a in sub.flatten() {
                let name = a.file_name().to_string_lossy().into_owned();
                if a.path().join("APKINDEX.tar.gz").is_file() && !out.contains(&name) {
                    out.push(name);
                }
            }
        }
    }
    out.sort();
    out
}

/// Copies DIR and the `--media` trees into `dir`, writes `--cmdline` and synthesises the sysfs
/// and `/proc/mounts` entries of copied media.
pub fn prepare(req: &Request, dir: &Path) -> Result<Prepared, PlanError> {
    use std::os::unix::fs::MetadataExt;
    let mut notes = Vec::new();
    fs::create_dir_all(dir).map_err(setup_err("create the scratch directory"))?;
    let scratch = fs::metadata(dir).map_err(setup_err("create the scratch directory"))?;
    let skip = (scratch.dev(), scratch.ino());
    if let Some(root) = &req.root {
        copy_tree(root, dir, dir, skip)?;
    }
    for (src, name) in &req.media {
        let to = dir.join("media").join(name);
        copy_tree(src, &to, dir, skip)?;
        notes.push(format!("{} copied to media/{name}", src.display()));
    }
    for keys in &req.keys_dirs {
        let to = dir.join("etc/apk/keys");
        copy_tree(keys, &to, dir, skip)?;
        notes.push(format!("keys in {} trusted (etc/apk/keys)", keys.display()));
    }
    if let Some(text) = &req.cmdline {
        fs::create_dir_all(dir.join("proc")).map_err(setup_err("create proc/"))?;
        fs::write(dir.join("proc/cmdline"), format!("{text}\n"))
            .map_err(setup_err("write proc/cmdline"))?;
    }
    // Copied media: already mounted, no superblock needed.
    let mut names: Vec<String> = fs::read_dir(dir.join("media"))
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .filter(|e| fs::read_dir(e.path()).is_ok_and(|mut r| r.next().is_some()))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort_by(|a, b| crate::hw::block::natural_cmp(a, b));
    let mut minor = 0;
    for name in names {
        let sysfs = dir.join("sys/class/block").join(&name);
        if fs::symlink_metadata(&sysfs).is_ok() {
            continue;
        }
        fs::create_dir_all(&sysfs).map_err(setup_err("create a sysfs entry"))?;
        fs::write(sysfs.join("dev"), format!("259:{minor}\n"))
            .map_err(setup_err("create a sysfs entry"))?;
        minor += 1;
        let mounts = dir.join("proc/mounts");
        fs::create_dir_all(dir.join("proc")).map_err(setup_err("create proc/"))?;
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&mounts)
            .map_err(setup_err("write proc/mounts"))?;
        writeln!(f, "/dev/{name} /media/{name} vfat ro 0 0")
            .map_err(setup_err("write proc/mounts"))?;
        notes.push(format!(
            "media/{name}: no sys/class/block/{name}, so treated as /dev/{name} already mounted (vfat)"
        ));
    }
    let kernel_release =
        match &req.kernel_release {
            Some(r) => r.clone(),
            None => {
                let mut rels: Vec<String> = fs::read_dir(dir.join("lib/modules"))
                    .map(|rd| {
                        rd.flatten()
                            .map(|e| e.file_name().to_string_lossy().into_owned())
                            .collect()
                    })
                    .unwrap_or_default();
                rels.sort();
                match rels.as_slice() {
                    [one] => one.clone(),
                    _ => {
                        let r = RecordingSys::new(dir).kernel_release();
                        notes.push(format!(
                        "kernel release {r} assumed (give --kernel-release; lib/modules has {})",
                        if rels.is_empty() { "none".to_string() } else { rels.join(", ") }
                    ));
                        r
                    }
                }
            }
        };
    let arch = match &req.arch {
        Some(a) => a.clone(),
        None => {
            let found = media_arches(dir);
            match found.as_slice() {
                [one] => one.clone(),
                _ => {
                    let a = crate::apk::build::default_arch().to_string();
                    if found.len() > 1 {
                        notes.push(format!(
                            "architecture {a} assumed; the boot repositories have {} (give --arch)",
                            found.join(", ")
                        ));
                    }
                    a
                }
            }
        }
    };
    Ok(Prepared {
        dir: dir.to_path_buf(),
        kernel_release,
        machine: machine_for(&arch).to_string(),
        notes,
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

/// One boot medium as discovery saw it.
#[derive(Debug, Default)]
pub struct MediaEntry {
    pub device: String,
    pub fstype: Option<String>,
    pub label: Option<String>,
    pub uuid: Option<String>,
    pub mountpoint: Option<String>,
    pub repositories: Vec<String>,
    pub apkovls: Vec<String>,
    pub modloops: Vec<String>,
    /// Why it was not used, or what it was used for.
    pub verdict: String,
}

/// Every decision of one run, rendered as text or JSON.
#[derive(Debug, Default)]
pub struct Report {
    pub cmdline: String,
    pub setup: Vec<String>,
    pub mode: String,
    pub modules: Vec<String>,
    pub fixed_modules: Vec<String>,
    pub blacklist: Vec<String>,
    pub cmdline_warnings: Vec<String>,
    pub media: Vec<MediaEntry>,
    pub discovery: String,
    pub apkovl: Option<String>,
    pub apkovl_why: String,
    pub apkovl_ignored: Vec<String>,
    pub overlay_files: usize,
    pub default_services: Option<bool>,
    pub modloop: Option<String>,
    pub repositories: Vec<String>,
    pub world: Vec<String>,
    pub installed: Vec<String>,
    pub skipped: Vec<String>,
    pub notes: Vec<String>,
    pub stages: Vec<(String, String)>,
    pub handoff: String,
    pub calls: Vec<String>,
    pub end: String,
    pub handed_off: bool,
    /// What the dry run could not check (made by package scripts that did not run).
    pub unverified: Vec<String>,
    pub log: Vec<String>,
}

fn outcome_text(o: &Outcome) -> String {
    match o {
        Outcome::Ok => "ok".into(),
        Outcome::Degraded(w) => format!("degraded: {w}"),
        Outcome::Failed(w) => format!("failed: {w}"),
    }
}

/// Builds the report from a finished run and its trace.
pub fn report(f: &Finished, sys: &RecordingSys, cmdline: String) -> Report {
    let plan = &f.plan;
    let mut r = Report {
        cmdline,
        modules: plan.modules.clone(),
        fixed_modules: plan.fixed_modules.clone(),
        blacklist: plan.blacklist.clone(),
        cmdline_warnings: plan.warnings.iter().map(|w| w.to_string()).collect(),
        calls: sys.trace(),
        ..Default::default()
    };
    r.mode = match &plan.mode {
        Mode::Diskless(_) => "diskless (no root=): tmpfs root from boot media".into(),
        Mode::Root(s) => format!(
            "root={} ({}, options {}{})",
            s.device,
            s.fstype.as_deref().unwrap_or("type probed"),
            s.flags,
            if s.overlay_tmpfs.is_some() {
                ", tmpfs overlay"
            } else {
                ""
            }
        ),
    };
    if let Some(d) = &f.record.discovery {
        r.discovery = format!(
            "{} after {:.2}s{}",
            d.ending,
            d.finished.saturating_sub(d.started).as_secs_f64(),
            match d.ready_at {
                Some(at) => format!(" (goal met at {:.2}s)", at.as_secs_f64()),
                None => " (goal not met)".into(),
            }
        );
        for s in &d.devices {
            let probe = s.info.probe.as_ref();
            let mut e = MediaEntry {
                device: s.info.dev.name.clone(),
                fstype: probe
                    .map(|p| p.fstype.to_string())
                    .or_else(|| s.mounted.as_ref().map(|m| m.fstype.to_string())),
                label: probe.and_then(|p| p.label.clone()),
                uuid: probe.and_then(|p| p.uuid.clone()),
                mountpoint: s
                    .mounted
                    .as_ref()
                    .map(|m| m.mountpoint.display().to_string()),
                ..Default::default()
            };
            if let (Some(o), Some(m)) = (&s.offer, &s.mounted) {
                let full = |p: &PathBuf| m.mountpoint.join(p).display().to_string();
                e.repositories = o.boot_repositories.iter().map(full).collect();
                e.apkovls = o.apkovls.iter().map(full).collect();
                e.modloops = o.modloops.iter().map(full).collect();
            }
            e.verdict = match (&s.error, &s.offer, &s.mounted) {
                (Some(err), _, _) => format!("skipped: {err}"),
                (None, Some(_), Some(m)) if m.already => "kept (was already mounted)".into(),
                (None, Some(_), Some(_)) => "kept".into(),
                (None, Some(_), None) => {
                    "unmounted: no boot repository, apkovl, modloop or cache at its top level"
                        .into()
                }
                (None, None, _) if probe.is_none() => "no filesystem recognised".into(),
                (None, None, _) => match &plan.mode {
                    Mode::Root(_)
                        if f.record
                            .discovery
                            .as_ref()
                            .and_then(|d| d.root.as_ref())
                            .is_some_and(|x| x.dev.name == s.info.dev.name) =>
                    {
                        "the root device".into()
                    }
                    _ => "not needed".into(),
                },
            };
            r.media.push(e);
        }
        if let Some(c) = &d.apkovl {
            r.apkovl_ignored = c
                .others
                .iter()
                .map(|o| o.path.display().to_string())
                .collect();
        }
    }
    let stage = |name: &str| f.timeline.stages.iter().rev().find(|s| s.name == name);
    if let Mode::Diskless(dl) = &plan.mode {
        let chosen = f.record.discovery.as_ref().and_then(|d| d.apkovl.as_ref());
        match &f.record.decisions {
            Some(dec) => {
                r.apkovl = dec.apkovl.as_ref().map(|p| p.display().to_string());
                r.overlay_files = dec.overlay_files.len();
                r.default_services = Some(dec.default_services);
                r.modloop = dec.modloop.clone();
                r.repositories = dec.repositories.clone();
                r.world = dec.packages.clone();
                r.notes = dec.notes.clone();
            }
            None => r
                .notes
                .push("the diskless branch did not finish (see the end)".into()),
        }
        r.apkovl_why = match (&dl.apkovl, &r.apkovl) {
            (ApkovlSource::Auto, Some(_)) => chosen
                .map(|c| format!("found on the boot media: {}", c.reason))
                .unwrap_or_default(),
            (ApkovlSource::Auto, None) => match chosen {
                Some(c) => format!(
                    "{} was found but not applied: {}",
                    c.chosen.path.display(),
                    stage("apkovl")
                        .map(|s| outcome_text(&s.outcome))
                        .unwrap_or_default()
                ),
                None => format!(
                    "no file matching {} at the top level of any mounted boot medium",
                    crate::media::APKOVL_PATTERN
                ),
            },
            (ApkovlSource::None, _) => {
                "disabled by the command line (noapkovl / apkovl=none)".into()
            }
            (ApkovlSource::Url(u), _) => {
                format!("apkovl={u} needs networking, which ramboot does not do yet")
            }
            (ApkovlSource::Path(p), None) => {
                format!("apkovl={}: not a file (or not a valid apkovl)", p.display())
            }
            (ApkovlSource::Device { device, .. }, None) => {
                format!("apkovl={device}:...: not mounted or not a file")
            }
            (_, Some(_)) => "named by apkovl= on the command line".into(),
        };
        if dl.repos == RepoSource::None {
            r.notes
                .push("noalpine_repo: only the apkovl's repositories are used".into());
        }
    }
    r.installed = f
        .record
        .installed
        .iter()
        .map(|(n, v)| format!("{n}-{v}"))
        .collect();
    // A repository that was not used comes first: it often explains a skipped package.
    r.skipped = f
        .record
        .unused_repositories
        .iter()
        .map(|w| format!("repository not used: {w}"))
        .chain(
            f.record
                .package_problems
                .iter()
                .map(|(n, w)| format!("{n}: {w}")),
        )
        .collect();
    for s in &f.timeline.stages {
        r.stages.push((s.name.clone(), outcome_text(&s.outcome)));
        if s.outcome != Outcome::Ok {
            r.skipped
                .push(format!("stage {}: {}", s.name, outcome_text(&s.outcome)));
        }
    }
    if let Some(usr) = &f.record.usr {
        r.notes.push(format!("/usr: {usr}"));
    }
    r.notes.extend(f.record.scripts_not_run.iter().cloned());
    r.unverified = f.record.unverified.clone();
    let mut handoff = String::from("switch_root");
    if let Some(c) = &plan.switch_root_console {
        handoff.push_str(&format!(" -c /dev/{c}"));
    }
    handoff.push_str(&format!(" {} {}", boot::SYSROOT, plan.init.display()));
    for a in &plan.init_args {
        handoff.push(' ');
        handoff.push_str(a);
    }
    r.handoff = handoff;
    r.handed_off = matches!(f.end, BootEnd::HandedOff);
    r.end = match &f.end {
        BootEnd::HandedOff if r.unverified.is_empty() => {
            format!("handed off: exec {} in the new root", plan.init.display())
        }
        BootEnd::HandedOff => format!(
            "handed off: exec {} in the new root (not verified: {})",
            plan.init.display(),
            r.unverified.join("; ")
        ),
        BootEnd::GaveUp { reason } => {
            format!("stopped: {reason} (the real boot would open the rescue shell here)")
        }
        BootEnd::KernelPanic { reason } => format!("kernel panic (panic= is set): {reason}"),
        BootEnd::Idle { reason } => format!("idle (no rescue shell): {reason}"),
    };
    r
}

fn list(out: &mut String, title: &str, items: &[String]) {
    if items.is_empty() {
        out.push_str(&format!("{title}: none\n"));
    } else {
        out.push_str(&format!("{title}:\n"));
        for i in items {
            out.push_str(&format!("  {i}\n"));
        }
    }
}

impl Report {
    /// The decisions, the recorded calls and the end, for people.
    pub fn text(&self) -> String {
        let mut o = String::new();
        o.push_str("\n== decisions ==\n");
        o.push_str(&format!("command line: {}\n", self.cmdline));
        for s in &self.setup {
            o.push_str(&format!("setup: {s}\n"));
        }
        o.push_str(&format!("mode: {}\n", self.mode));
        o.push_str(&format!(
            "modules: {} (then, quietly: {})\n",
            if self.modules.is_empty() {
                "-".into()
            } else {
                self.modules.join(" ")
            },
            self.fixed_modules.join(" ")
        ));
        if !self.blacklist.is_empty() {
            o.push_str(&format!("blacklist: {}\n", self.blacklist.join(" ")));
        }
        for w in &self.cmdline_warnings {
            o.push_str(&format!("command line warning: {w}\n"));
        }
        o.push_str(&format!("devices ({}):\n", self.discovery));
        for m in &self.media {
            o.push_str(&format!(
                "  {} [{}{}{}]{}: {}\n",
                m.device,
                m.fstype.as_deref().unwrap_or("?"),
                m.label
                    .as_ref()
                    .map(|l| format!(" LABEL={l}"))
                    .unwrap_or_default(),
                m.uuid
                    .as_ref()
                    .map(|u| format!(" UUID={u}"))
                    .unwrap_or_default(),
                m.mountpoint
                    .as_ref()
                    .map(|p| format!(" at {p}"))
                    .unwrap_or_default(),
                m.verdict
            ));
            for (what, v) in [
                ("repository", &m.repositories),
                ("apkovl", &m.apkovls),
                ("modloop", &m.modloops),
            ] {
                for x in v {
                    o.push_str(&format!("    {what} {x}\n"));
                }
            }
        }
        o.push_str(&format!(
            "apkovl: {} ({})\n",
            self.apkovl.as_deref().unwrap_or("none"),
            self.apkovl_why
        ));
        if self.apkovl.is_some() {
            o.push_str(&format!(
                "  {} entries unpacked into /sysroot\n",
                self.overlay_files
            ));
        }
        for i in &self.apkovl_ignored {
            o.push_str(&format!("  ignored: {i}\n"));
        }
        if let Some(d) = self.default_services {
            o.push_str(&format!(
                "default services: {}\n",
                if d {
                    "added (no apkovl, or it has etc/.default_boot_services)"
                } else {
                    "not added (the apkovl decides)"
                }
            ));
        }
        if let Some(m) = &self.modloop {
            o.push_str(&format!("modloop: {m}\n"));
        }
        list(&mut o, "repositories", &self.repositories);
        o.push_str(&format!("packages asked for: {}\n", self.world.join(" ")));
        list(&mut o, "installed, in order", &self.installed);
        list(&mut o, "skipped or degraded", &self.skipped);
        list(&mut o, "notes", &self.notes);
        if !self.unverified.is_empty() {
            list(&mut o, "not verified", &self.unverified);
        }
        o.push_str(&format!("handoff: {}\n", self.handoff));
        o.push_str("\n== recorded calls ==\n");
        for c in &self.calls {
            o.push_str(&format!("{c}\n"));
        }
        o.push_str(&format!("\n== end ==\n{}\n", self.end));
        o
    }

    pub fn json(&self) -> String {
        let media = self.media.iter().map(|m| {
            Json::obj([
                ("device", Json::str(&m.device)),
                ("fstype", Json::opt_str(m.fstype.as_deref())),
                ("label", Json::opt_str(m.label.as_deref())),
                ("uuid", Json::opt_str(m.uuid.as_deref())),
                ("mountpoint", Json::opt_str(m.mountpoint.as_deref())),
                ("repositories", Json::strs(&m.repositories)),
                ("apkovls", Json::strs(&m.apkovls)),
                ("modloops", Json::strs(&m.modloops)),
                ("verdict", Json::str(&m.verdict)),
            ])
        });
        let stages = self
            .stages
            .iter()
            .map(|(n, o)| Json::obj([("name", Json::str(n)), ("outcome", Json::str(o))]));
        Json::obj([
            ("cmdline", Json::str(&self.cmdline)),
            ("setup", Json::strs(&self.setup)),
            ("mode", Json::str(&self.mode)),
            ("modules", Json::strs(&self.modules)),
            ("fixed_modules", Json::strs(&self.fixed_modules)),
            ("blacklist", Json::strs(&self.blacklist)),
            ("cmdline_warnings", Json::strs(&self.cmdline_warnings)),
            ("discovery", Json::str(&self.discovery)),
            ("devices", Json::Arr(media.collect())),
            ("apkovl", Json::opt_str(self.apkovl.as_deref())),
            ("apkovl_why", Json::str(&self.apkovl_why)),
            ("apkovl_ignored", Json::strs(&self.apkovl_ignored)),
            ("overlay_files", Json::Num(self.overlay_files as f64)),
            (
                "default_services",
                self.default_services.map_or(Json::Null, Json::Bool),
            ),
            ("modloop", Json::opt_str(self.modloop.as_deref())),
            ("repositories", Json::strs(&self.repositories)),
            ("packages", Json::strs(&self.world)),
            ("installed", Json::strs(&self.installed)),
            ("skipped", Json::strs(&self.skipped)),
            ("notes", Json::strs(&self.notes)),
            ("stages", Json::Arr(stages.collect())),
            ("handoff", Json::str(&self.handoff)),
            ("calls", Json::strs(&self.calls)),
            ("log", Json::strs(&self.log)),
            ("handed_off", Json::Bool(self.handed_off)),
            ("unverified", Json::strs(&self.unverified)),
            ("end", Json::str(&self.end)),
        ])
        .render(false)
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

    #[test]
    fn copy_keeps_the_user_tree_and_stays_inside() {
        let src = tempfile::tempdir().unwrap();
        let s = src.path();
        fs::create_dir_all(s.join("media/mmcblk0p1/apks/aarch64")).unwrap();
        fs::write(s.join("media/mmcblk0p1/apks/.boot_repository"), b"").unwrap();
        fs::write(s.join("media/mmcblk0p1/apks/aarch64/APKINDEX.tar.gz"), b"x").unwrap();
        fs::create_dir_all(s.join("etc")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", s.join("etc/link")).unwrap();
        let scratch = tempfile::tempdir().unwrap();
        let dir = scratch.path().join("copy");
        let req = Request {
            root: Some(s.to_path_buf()),
            media: vec![],
            cmdline: Some("quiet".into()),
            kernel_release: None,
            arch: None,
            keys_dirs: vec![],
            no_scripts: false,
            keep: false,
            json: false,
        };
        let p = prepare(&req, &dir).unwrap();
        assert_eq!(p.machine, "aarch64");
        assert_eq!(
            fs::read_link(dir.join("etc/link")).unwrap(),
            Path::new("../etc/passwd")
        );
        assert_eq!(
            fs::read_to_string(dir.join("proc/mounts")).unwrap(),
            "/dev/mmcblk0p1 /media/mmcblk0p1 vfat ro 0 0\n"
        );
        assert!(dir.join("sys/class/block/mmcblk0p1/dev").is_file());
        // The user's tree is untouched.
        assert!(!s.join("proc").exists() && !s.join("sys").exists());
    }
}
