//! `ramboot install`: apk's installer on a host. With `--apkovl FILE` it first does the boot's
//! apkovl step on the target root ([`crate::boot::apkovl`], the same code the boot runs), so an
//! image can be built or checked exactly as the boot would assemble it.
//!
//! The words go through the crate's one parser ([`super::args`]) in two stages: a raw record of
//! the flags as typed, then a validated request; the overlay list is read by the run, whose
//! failures are not usage errors.

use super::args::{number, unexpected, utf8, ArgError, Args, Long, Short, Usage, Value};
use crate::apk::dep::Dep;
use crate::apk::install::{install, InstallRequest, Progress, ScriptPolicy};
use crate::apk::ApkError;
use crate::boot::apkovl;
use crate::overlay::crypt::{self, Unlocked};
use crate::sys::RealSys;
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

const INSTALL_HELP: &str = "\
usage: ramboot install --root DIR [options] PKG...

Installs packages and their dependencies into DIR, like `apk add --root DIR`.

  --root DIR               target root (required)
  -X, --repository PATH    local repository (repeatable; holds <arch>/APKINDEX.tar.gz)
  --keys-dir DIR           extra trusted public keys (DIR/etc/apk/keys is always used)
  --cache-dir DIR          package cache (default: DIR/etc/apk/cache if it is a directory)
  -u, --upgrade            upgrade the named packages and their dependencies (without it,
                           installed versions that still fit are kept, as `apk add`)
  -l, --latest             the newest versions of the named packages and their
                           dependencies, even where that breaks another choice
  --initdb                 create the apk database in DIR
  --initramfs-diskless-boot  boot mode: initdb, overwrite files, skip unsatisfiable world
  --apkovl FILE            apply this apkovl first, as the boot does: the same checked
                           extraction into DIR (after --initdb), its etc/apk/world added,
                           its files kept over the packages' (the overlay list)
  --apkovl-key FILE        an encrypted apkovl's passphrase: FILE's first line
  --overlay-list FILE      apkovl file list (`-`: stdin); listed files keep the user's copy
  --overlay-from-stdin     same as --overlay-list -
  --clean-protected        keep existing protected files, write no .apk-new
  --allow-untrusted        accept unsigned indexes (tests only: says so loudly)
  --no-scripts             do not run package scripts
  --scripts-must-run       count a script that cannot run (not root) as an error
  --arch ARCH              architecture (default: DIR/etc/apk/arch or this machine's)
  -j, --jobs N             worker threads (default: one per core)
  -q, --quiet              no progress, no summary
  --no-progress            no progress bar

Exit status: the number of failed packages (at most 99).
";

const INSTALL_USAGE: Usage = Usage {
    prog: "ramboot install",
    text: INSTALL_HELP,
    status: 99,
};

/// `ramboot install` flags as typed.
#[derive(Default)]
struct InstallRaw {
    root: Option<PathBuf>,
    repositories: Vec<PathBuf>,
    keys_dirs: Vec<PathBuf>,
    cache_dir: Option<PathBuf>,
    overlay_list: Option<String>,
    overlay_from_stdin: bool,
    apkovl: Option<PathBuf>,
    apkovl_key: Option<PathBuf>,
    arch: Option<String>,
    jobs: Option<String>,
    initdb: bool,
    upgrade: bool,
    latest: bool,
    diskless_boot: bool,
    clean_protected: bool,
    allow_untrusted: bool,
    no_scripts: bool,
    scripts_must_run: bool,
    quiet: bool,
    no_progress: bool,
    packages: Vec<String>,
    help: bool,
}

fn install_raw(mut p: Args) -> Result<InstallRaw, ArgError> {
    let mut raw = InstallRaw::default();
    while let Some(arg) = p.next_arg()? {
        match arg {
            Long("root") => raw.root = Some(p.path()?),
            Short('X') | Long("repository") => raw.repositories.push(p.path()?),
            Long("keys-dir") => raw.keys_dirs.push(p.path()?),
            Long("cache-dir") => raw.cache_dir = Some(p.path()?),
            Long("overlay-list") => raw.overlay_list = Some(p.string()?),
            Long("overlay-from-stdin") => raw.overlay_from_stdin = true,
            Long("apkovl") => raw.apkovl = Some(p.path()?),
            Long("apkovl-key") => raw.apkovl_key = Some(p.path()?),
            Long("arch") => raw.arch = Some(p.string()?),
            Short('j') | Long("jobs") => raw.jobs = Some(p.string()?),
            Long("initdb") => raw.initdb = true,
            Short('u') | Long("upgrade") => raw.upgrade = true,
            Short('l') | Long("latest") => raw.latest = true,
            Long("initramfs-diskless-boot") => raw.diskless_boot = true,
            Long("clean-protected") => raw.clean_protected = true,
            Long("allow-untrusted") => raw.allow_untrusted = true,
            Long("no-scripts") => raw.no_scripts = true,
            Long("scripts-must-run") => raw.scripts_must_run = true,
            Short('q') | Long("quiet") => raw.quiet = true,
            Long("no-progress") => raw.no_progress = true,
            // apk's own flags with nothing to change here: progress is on for a terminal and
            // there is no network anyway.
            Long("progress") | Long("no-network") => {}
            Short('h') | Long("help") => raw.help = true,
            Value(v) => raw.packages.push(utf8(v)?),
            _ => return Err(unexpected(arg)),
        }
    }
    Ok(raw)
}

/// The validated `install` command line.
pub struct InstallArgs {
    pub req: InstallRequest,
    /// `--apkovl`: applied by the caller before [`run_install`] (see `cli::install`).
    pub apkovl: Option<PathBuf>,
    /// `--apkovl-key`: the file holding an encrypted apkovl's passphrase.
    pub apkovl_key: Option<PathBuf>,
    /// `--overlay-list` (`-`: stdin), read by [`run_install`].
    overlay_list: Option<String>,
    quiet: bool,
    progress: bool,
}

fn install_validate(raw: InstallRaw) -> Result<InstallArgs, ArgError> {
    let root = raw
        .root
        .ok_or_else(|| ArgError::Missing("--root DIR".into()))?;
    let overlay_list = match raw.overlay_from_stdin {
        true => Some("-".to_string()),
        false => raw.overlay_list,
    };
    if raw.apkovl.is_some() && overlay_list.is_some() {
        return Err(ArgError::Conflict(
            "--apkovl makes the overlay list itself: it cannot be combined with --overlay-list"
                .into(),
        ));
    }
    for p in &raw.packages {
        Dep::parse(p).map_err(|e| ArgError::invalid("package", p, e.to_string()))?;
    }
    let jobs = match &raw.jobs {
        Some(j) => number("--jobs", j)?,
        None => 0,
    };
    let scripts = if raw.no_scripts {
        ScriptPolicy::Never
    } else if raw.scripts_must_run {
        ScriptPolicy::FailUnprivileged
    } else {
        ScriptPolicy::Auto
    };
    let req = InstallRequest {
        root,
        repositories: raw.repositories,
        cache_dir: raw.cache_dir,
        keys_dirs: raw.keys_dirs,
        world_add: raw.packages,
        upgrade: raw.upgrade,
        latest: raw.latest,
        overlay_list: None,
        initdb: raw.initdb,
        diskless_boot: raw.diskless_boot,
        clean_protected: raw.clean_protected,
        allow_untrusted: raw.allow_untrusted,
        scripts,
        arch: raw.arch,
        use_root_repositories: true,
        jobs,
        progress: None,
        resolve: Default::default(),
        // `ramboot install` stays offline: remote repositories through the cache only.
        fetch: None,
    };
    let progress =
        !raw.quiet && !raw.no_progress && rustix::termios::isatty(rustix::stdio::stderr());
    Ok(InstallArgs {
        req,
        apkovl: raw.apkovl,
        apkovl_key: raw.apkovl_key,
        overlay_list,
        quiet: raw.quiet,
        progress,
    })
}

/// Parses `ramboot install` arguments: the request, or `Err(exit status)` once `--help` or the
/// refusal is printed.
pub fn parse_install(args: &[OsString]) -> Result<InstallArgs, i32> {
    INSTALL_USAGE.two_stage(args, install_raw, |r| r.help, install_validate)
}

/// The apkovl file list of `--overlay-list` (`-`: stdin).
fn read_overlay_list(src: &str) -> Result<Vec<String>, ApkError> {
    let text = if src == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
            .map_err(|e| ApkError::io("reading the overlay list from stdin", e))?;
        s
    } else {
        std::fs::read_to_string(src).map_err(|e| ApkError::io(format!("reading {src}"), e))?
    };
    Ok(text.lines().map(String::from).collect())
}

fn progress_bar() -> Box<dyn Fn(&Progress) + Send + Sync> {
    use std::sync::atomic::{AtomicU64, Ordering};
    let total = AtomicU64::new(1);
    Box::new(move |p| {
        let mut err = std::io::stderr().lock();
        match p {
            Progress::Start { bytes, .. } => total.store((*bytes).max(1), Ordering::Relaxed),
            Progress::Package {
                index,
                total: n,
                name,
                version,
                bytes_done,
            } => {
                let frac = (*bytes_done as f64 / total.load(Ordering::Relaxed) as f64).min(1.0);
                let filled = (frac * 30.0) as usize;
                let _ = write!(
                    err,
                    "\r\x1b[K[{}{}] {index}/{n} {name}-{version}",
                    "#".repeat(filled),
                    " ".repeat(30 - filled)
                );
            }
            Progress::Done => {
                let _ = write!(err, "\r\x1b[K");
            }
        }
        let _ = err.flush();
    })
}

/// Runs a parsed install and prints its report; returns the exit status.
pub fn run_install(mut parsed: InstallArgs) -> i32 {
    if let Some(src) = &parsed.overlay_list {
        match read_overlay_list(src) {
            Ok(list) => parsed.req.overlay_list = Some(list),
            Err(e) => {
                eprintln!("ERROR: {e}");
                return 99;
            }
        }
    }
    if parsed.progress {
        parsed.req.progress = Some(progress_bar());
    }
    let sys = RealSys;
    match install(&parsed.req, &sys) {
        Ok(r) => {
            for w in &r.repo_warnings {
                eprintln!("WARNING: {w}");
            }
            for (d, why) in &r.skipped_world {
                eprintln!("WARNING: world entry {d} skipped: {why}");
            }
            for (p, e) in &r.failed {
                eprintln!("ERROR: {p}: {e}");
            }
            for (p, why) in &r.broken {
                eprintln!("ERROR: {p}: {why}");
            }
            if !parsed.quiet {
                for w in &r.warnings {
                    eprintln!("WARNING: {w}");
                }
                let secs = r.elapsed.as_secs_f64();
                let status = if r.errors() == 0 {
                    "OK".to_string()
                } else {
                    format!("{} errors", r.errors())
                };
                println!(
                    "{status}: {} packages, {} files, {:.1} MiB in {:.2} s",
                    r.installed.len(),
                    r.files,
                    r.bytes as f64 / 1048576.0,
                    secs
                );
            }
            r.exit_code()
        }
        Err(e) => {
            // A refused repository is often why a package is "no such package": say so first.
            if let ApkError::Unsatisfiable {
                unused_repositories,
                ..
            } = &e
            {
                for w in unused_repositories {
                    eprintln!("WARNING: {w}");
                }
            }
            eprintln!("ERROR: {e}");
            match e {
                ApkError::Unsatisfiable { problems, .. } => problems.len().clamp(1, 99) as i32,
                _ => 99,
            }
        }
    }
}

/// The key of an encrypted apkovl (None for a plain one), from `--apkovl-key`.
fn unlock(file: &Path, key: Option<&Path>) -> Result<Option<Unlocked>, String> {
    if crypt::suffix_of(file).is_none() {
        return Ok(None);
    }
    let key = key.ok_or("encrypted: give its passphrase with --apkovl-key FILE")?;
    let bytes = std::fs::read(key).map_err(|e| format!("{}: {e}", key.display()))?;
    Unlocked::new(file, crypt::passphrase_from_file(&bytes))
        .map(Some)
        .map_err(|e| e.to_string())
}

/// Runs `ramboot install ...`; returns the exit status (99: nothing was installed).
pub fn main(args: &[OsString]) -> i32 {
    let mut parsed = match parse_install(args) {
        Ok(p) => p,
        Err(code) => return code,
    };
    if let Some(file) = parsed.apkovl.take() {
        let unlocked = match unlock(&file, parsed.apkovl_key.as_deref()) {
            Ok(u) => u,
            Err(e) => {
                eprintln!("ERROR: {}: {e}; nothing installed", file.display());
                return 99;
            }
        };
        match apkovl::prepare_install(&RealSys, &mut parsed.req, &file, unlocked.as_ref()) {
            Ok(applied) => {
                for w in &applied.warnings {
                    eprintln!("WARNING: apkovl: {w}");
                }
            }
            Err(e) => {
                // The boot would go on with a clean default system; an image built from a
                // refused apkovl would not be what the user asked for.
                eprintln!("ERROR: {e} ({}); nothing installed", file.display());
                return 99;
            }
        }
    }
    run_install(parsed)
}
