//! Host commands: `ramboot install ...` and `ramboot apk genkey|mkpkg|index ...`.
//!
//! Hand-written two-stage parsing (raw flags, then a validated struct) keeps the binary small;
//! `main.rs` only forwards the arguments after the subcommand name.

use super::build::{index_record, IndexBuilder, PackageBuilder};
use super::dep::Dep;
use super::install::{install, InstallRequest, Progress, ScriptPolicy};
use super::sign::{SigAlgo, SigningKey};
use super::stream::ScriptKind;
use super::ApkError;
use crate::sys::RealSys;
use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

/// Raw arguments: flags with their values, in order, and positionals.
struct Raw {
    flags: Vec<(String, Option<String>)>,
    positional: Vec<String>,
}

/// Splits `args` using `takes_value` to know which flags consume the next argument.
fn split_args(args: &[OsString], takes_value: &[&str], switches: &[&str]) -> Result<Raw, ApkError> {
    let mut raw = Raw {
        flags: Vec::new(),
        positional: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let a = a
            .to_str()
            .ok_or_else(|| {
                ApkError::Usage(format!(
                    "argument is not UTF-8: {}",
                    crate::quote::quoted(&a.to_string_lossy())
                ))
            })?
            .to_string();
        if a == "--" {
            for rest in it.by_ref() {
                raw.positional.push(rest.to_string_lossy().into_owned());
            }
            break;
        }
        if !a.starts_with('-') || a == "-" {
            raw.positional.push(a);
            continue;
        }
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        if takes_value.contains(&name.as_str()) {
            let v = match inline {
                Some(v) => v,
                None => it
                    .next()
                    .ok_or_else(|| ApkError::Usage(format!("{name} needs a value")))?
                    .to_string_lossy()
                    .into_owned(),
            };
            raw.flags.push((name, Some(v)));
        } else if switches.contains(&name.as_str()) {
            if inline.is_some() {
                return Err(ApkError::Usage(format!("{name} takes no value")));
            }
            raw.flags.push((name, None));
        } else {
            return Err(ApkError::Usage(format!(
                "unknown option {name} (see --help)"
            )));
        }
    }
    Ok(raw)
}

impl Raw {
    fn has(&self, n: &str) -> bool {
        self.flags.iter().any(|(f, _)| f == n)
    }
    fn all(&self, names: &[&str]) -> Vec<String> {
        self.flags
            .iter()
            .filter(|(f, _)| names.contains(&f.as_str()))
            .filter_map(|(_, v)| v.clone())
            .collect()
    }
    fn one(&self, names: &[&str]) -> Option<String> {
        self.all(names).pop()
    }
    fn required(&self, name: &str) -> Result<String, ApkError> {
        self.one(&[name])
            .ok_or_else(|| ApkError::Usage(format!("{name} is required (see --help)")))
    }
}

const INSTALL_HELP: &str = "\
usage: ramboot install --root DIR [options] PKG...

Installs packages and their dependencies into DIR, like `apk add --root DIR`.

  --root DIR               target root (required)
  -X, --repository PATH    local repository (repeatable; holds <arch>/APKINDEX.tar.gz)
  --keys-dir DIR           extra trusted public keys (DIR/etc/apk/keys is always used)
  --cache-dir DIR          package cache (default: DIR/etc/apk/cache if it is a directory)
  --initdb                 create the apk database in DIR
  --initramfs-diskless-boot  boot mode: initdb, overwrite files, skip unsatisfiable world
  --apkovl FILE            apply this apkovl first, as the boot does: the same checked
                           extraction into DIR (after --initdb), its etc/apk/world added,
                           its files kept over the packages' (the overlay list)
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

/// The validated `install` command line.
pub struct InstallArgs {
    pub req: InstallRequest,
    /// `--apkovl`: applied by the caller before [`run_install`] (see `cli::install`).
    pub apkovl: Option<PathBuf>,
    quiet: bool,
    progress: bool,
}

/// Parses `ramboot install` arguments; `Ok(None)` after printing `--help`.
pub fn parse_install(args: &[OsString]) -> Result<Option<InstallArgs>, ApkError> {
    let raw = split_args(
        args,
        &[
            "--root",
            "-X",
            "--repository",
            "--keys-dir",
            "--cache-dir",
            "--overlay-list",
            "--apkovl",
            "--arch",
            "-j",
            "--jobs",
        ],
        &[
            "--initdb",
            "--initramfs-diskless-boot",
            "--overlay-from-stdin",
            "--clean-protected",
            "--allow-untrusted",
            "--no-scripts",
            "--scripts-must-run",
            "-q",
            "--quiet",
            "--no-progress",
            "--progress",
            "--no-network",
            "-h",
            "--help",
        ],
    )?;
    if raw.has("-h") || raw.has("--help") {
        print!("{INSTALL_HELP}");
        return Ok(None);
    }
    let root = PathBuf::from(raw.required("--root")?);
    let overlay_src = if raw.has("--overlay-from-stdin") {
        Some("-".to_string())
    } else {
        raw.one(&["--overlay-list"])
    };
    let apkovl = raw.one(&["--apkovl"]).map(PathBuf::from);
    if apkovl.is_some() && overlay_src.is_some() {
        return Err(ApkError::Usage(
            "--apkovl makes the overlay list itself: it cannot be combined with --overlay-list"
                .into(),
        ));
    }
    let overlay_list = match overlay_src {
        None => None,
        Some(src) => {
            let text = if src == "-" {
                let mut s = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
                    .map_err(|e| ApkError::io("reading the overlay list from stdin", e))?;
                s
            } else {
                std::fs::read_to_string(&src)
                    .map_err(|e| ApkError::io(format!("reading {src}"), e))?
            };
            Some(text.lines().map(String::from).collect())
        }
    };
    for p in &raw.positional {
        Dep::parse(p)?;
    }
    let jobs = match raw.one(&["-j", "--jobs"]) {
        Some(j) => j
            .parse()
            .map_err(|_| ApkError::Usage(format!("--jobs: not a number: {j}")))?,
        None => 0,
    };
    let scripts = if raw.has("--no-scripts") {
        ScriptPolicy::Never
    } else if raw.has("--scripts-must-run") {
        ScriptPolicy::FailUnprivileged
    } else {
        ScriptPolicy::Auto
    };
    let quiet = raw.has("-q") || raw.has("--quiet");
    let req = InstallRequest {
        root,
        repositories: raw
            .all(&["-X", "--repository"])
            .into_iter()
            .map(PathBuf::from)
            .collect(),
        cache_dir: raw.one(&["--cache-dir"]).map(PathBuf::from),
        keys_dirs: raw
            .all(&["--keys-dir"])
            .into_iter()
            .map(PathBuf::from)
            .collect(),
        world_add: raw.positional.clone(),
        overlay_list,
        initdb: raw.has("--initdb"),
        diskless_boot: raw.has("--initramfs-diskless-boot"),
        clean_protected: raw.has("--clean-protected"),
        allow_untrusted: raw.has("--allow-untrusted"),
        scripts,
        arch: raw.one(&["--arch"]),
        use_root_repositories: true,
        jobs,
        progress: None,
        resolve: Default::default(),
    };
    let progress =
        !quiet && !raw.has("--no-progress") && rustix::termios::isatty(rustix::stdio::stderr());
    Ok(Some(InstallArgs {
        req,
        apkovl,
        quiet,
        progress,
    }))
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

/// `ramboot install ...` without `--apkovl`; returns the exit status.
pub fn main_install(args: &[OsString]) -> i32 {
    match parse_install(args) {
        Ok(Some(p)) if p.apkovl.is_none() => run_install(p),
        Ok(Some(_)) => {
            eprintln!(
                "ramboot install: --apkovl needs the boot's apkovl step (crate::cli::install)"
            );
            99
        }
        Ok(None) => 0,
        Err(e) => {
            eprintln!("ramboot install: {e}");
            99
        }
    }
}

/// Runs a parsed install and prints its report; returns the exit status.
pub fn run_install(mut parsed: InstallArgs) -> i32 {
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

const APK_HELP: &str = "\
usage: ramboot apk COMMAND ...

  genkey --out DIR [--name NAME] [--bits N]
      New RSA key pair: DIR/NAME-XXXXXXXX.rsa (private) and .rsa.pub (for etc/apk/keys).
  mkpkg --root DIR --name N --version V --key KEY --out FILE.apk
        [--arch A] [--description T] [--url U] [--license L] [--origin O] [--builddate T]
        [--depends ATOMS]... [--provides ATOMS]... [--install-if ATOMS]... [--replaces ATOMS]...
        [--priority K] [--triggers GLOBS] [--script KIND=FILE]... [--key-name NAME] [--sha256]
      Builds a signed package from the tree DIR (owners root:root, modes kept).
      KIND: pre-install post-install pre-upgrade post-upgrade pre-deinstall post-deinstall trigger.
  index --key KEY --out APKINDEX.tar.gz [--description T] [--key-name NAME] FILE.apk...
      Builds a signed index of the given packages.
  KEY is a PEM private key; its public key must be installed as KEY-NAME (default: KEY's
  file name + .pub) in the target's etc/apk/keys.
";

fn load_key(raw: &Raw) -> Result<SigningKey, ApkError> {
    let path = PathBuf::from(raw.required("--key")?);
    SigningKey::load(&path, raw.one(&["--key-name"]).as_deref())
}

fn cmd_genkey(raw: &Raw) -> Result<(), ApkError> {
    let out = PathBuf::from(raw.required("--out")?);
    let name = raw.one(&["--name"]).unwrap_or_else(|| "ramboot".into());
    let bits: usize = raw
        .one(&["--bits"])
        .map(|b| {
            b.parse()
                .map_err(|_| ApkError::Usage("--bits: not a number".into()))
        })
        .transpose()?
        .unwrap_or(2048);
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let base = format!("{name}-{stamp:08x}.rsa");
    let key = SigningKey::generate(&format!("{base}.pub"), bits)?;
    std::fs::create_dir_all(&out)
        .map_err(|e| ApkError::io(format!("creating {}", out.display()), e))?;
    let private = out.join(&base);
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&private)
            .map_err(|e| ApkError::io(format!("writing {}", private.display()), e))?;
        f.write_all(key.private_pem().as_bytes())
            .map_err(|e| ApkError::io("writing key", e))?;
    }
    let public = out.join(format!("{base}.pub"));
    std::fs::write(&public, key.public_pem())
        .map_err(|e| ApkError::io(format!("writing {}", public.display()), e))?;
    println!("{}\n{}", private.display(), public.display());
    Ok(())
}

fn cmd_mkpkg(raw: &Raw) -> Result<(), ApkError> {
    let key = load_key(raw)?;
    let tree = PathBuf::from(raw.required("--root")?);
    let mut b = PackageBuilder::new(&raw.required("--name")?, &raw.required("--version")?);
    if !super::version::validate(&b.info.version) {
        return Err(ApkError::Usage(format!(
            "invalid version {}",
            crate::quote::quoted(&b.info.version)
        )));
    }
    b.level = 9;
    if let Some(a) = raw.one(&["--arch"]) {
        b.info.arch = a;
    }
    if let Some(t) = raw.one(&["--description"]) {
        b.info.description = t;
    }
    if let Some(u) = raw.one(&["--url"]) {
        b.info.url = u;
    }
    if let Some(l) = raw.one(&["--license"]) {
        b.info.license = l;
    }
    if let Some(o) = raw.one(&["--origin"]) {
        b.info.origin = o;
    }
    b.info.build_time = match raw.one(&["--builddate"]) {
        Some(t) => t
            .parse()
            .map_err(|_| ApkError::Usage("--builddate: not a number".into()))?,
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    };
    for v in raw.all(&["--depends"]) {
        b.info.depends.extend(Dep::parse_list(&v)?);
    }
    for v in raw.all(&["--provides"]) {
        b.info.provides.extend(Dep::parse_list(&v)?);
    }
    for v in raw.all(&["--install-if"]) {
        b.info.install_if.extend(Dep::parse_list(&v)?);
    }
    for v in raw.all(&["--replaces"]) {
        b.info.replaces.extend(Dep::parse_list(&v)?);
    }
    if let Some(k) = raw.one(&["--priority"]) {
        b.info.provider_priority = k
            .parse()
            .map_err(|_| ApkError::Usage("--priority: not a number".into()))?;
    }
    if let Some(t) = raw.one(&["--triggers"]) {
        b.info.triggers = t.split_whitespace().map(String::from).collect();
    }
    for s in raw.all(&["--script"]) {
        let (kind, file) = s
            .split_once('=')
            .ok_or_else(|| ApkError::Usage(format!("--script {s}: expected KIND=FILE")))?;
        let kind = ScriptKind::from_name(kind)
            .ok_or_else(|| ApkError::Usage(format!("--script: unknown kind {kind}")))?;
        let body = std::fs::read(file).map_err(|e| ApkError::io(format!("reading {file}"), e))?;
        b.scripts.push((kind, body));
    }
    if raw.has("--sha256") {
        b.sign_algo = SigAlgo::Sha256;
    }
    b.add_tree(&tree)
        .map_err(|e| ApkError::io(format!("reading {}", tree.display()), e))?;
    let built = b.build(Some(&key))?;
    let out = PathBuf::from(raw.required("--out")?);
    std::fs::write(&out, &built.bytes)
        .map_err(|e| ApkError::io(format!("writing {}", out.display()), e))?;
    println!(
        "{} {}",
        out.display(),
        built
            .info
            .identity
            .map(|c| c.to_string())
            .unwrap_or_default()
    );
    Ok(())
}

fn cmd_index(raw: &Raw) -> Result<(), ApkError> {
    let key = load_key(raw)?;
    let mut idx = IndexBuilder {
        description: raw.one(&["--description"]).unwrap_or_default(),
        ..Default::default()
    };
    idx.mtime = super::db::now();
    if raw.positional.is_empty() {
        return Err(ApkError::Usage("index: no package files given".into()));
    }
    for p in &raw.positional {
        idx.add(&index_record(std::path::Path::new(p))?);
    }
    let algo = if raw.has("--sha256") {
        SigAlgo::Sha256
    } else {
        SigAlgo::Sha1
    };
    let out = PathBuf::from(raw.required("--out")?);
    let bytes = idx.build(Some(&key), algo)?;
    std::fs::write(&out, bytes)
        .map_err(|e| ApkError::io(format!("writing {}", out.display()), e))?;
    println!("{} ({} packages)", out.display(), idx.packages.len());
    Ok(())
}

/// `ramboot apk COMMAND ...`; returns the exit status.
pub fn main_apk(args: &[OsString]) -> i32 {
    let Some(cmd) = args.first().and_then(|a| a.to_str()) else {
        eprint!("{APK_HELP}");
        return 2;
    };
    let rest = &args[1..];
    let values = [
        "--out",
        "--name",
        "--bits",
        "--root",
        "--version",
        "--arch",
        "--description",
        "--url",
        "--license",
        "--origin",
        "--builddate",
        "--depends",
        "--provides",
        "--install-if",
        "--replaces",
        "--priority",
        "--triggers",
        "--script",
        "--key",
        "--key-name",
    ];
    let result = match cmd {
        "-h" | "--help" | "help" => {
            print!("{APK_HELP}");
            return 0;
        }
        "genkey" | "mkpkg" | "index" => split_args(rest, &values, &["--sha256", "-h", "--help"])
            .and_then(|raw| {
                if raw.has("-h") || raw.has("--help") {
                    print!("{APK_HELP}");
                    return Ok(());
                }
                match cmd {
                    "genkey" => cmd_genkey(&raw),
                    "mkpkg" => cmd_mkpkg(&raw),
                    _ => cmd_index(&raw),
                }
            }),
        other => Err(ApkError::Usage(format!(
            "unknown apk command {} (genkey, mkpkg, index)",
            crate::quote::quoted(other)
        ))),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("ramboot apk {cmd}: {e}");
            if matches!(e, ApkError::Usage(_)) {
                2
            } else {
                1
            }
        }
    }
}
