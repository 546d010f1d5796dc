//! `ramboot mkinitfs`: build an initramfs around the ramboot binary.

use super::args::{unexpected, ArgError, Args, Long, Short, Usage};
use crate::initramfs::{self, features, Compression, ModuleSet, Spec};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

pub const HELP: &str = "\
usage: ramboot mkinitfs -o FILE [options]

  -o, --output FILE        where to write the image
  --init FILE              the static ramboot binary to use as /init (default: the init build
                           `ramboot-init` beside this program, else this program)
  --kernel-modules DIR     a lib/modules/<release> directory (with modules.dep)
  -m, --modules a,b        modules to include, with their dependencies
  -F, --features a,b       feature lists (built in: base, virtio, mmc, usb, rpi, vfat, ext4, ...)
  --features-dir DIR       read feature lists from DIR/<name>.modules instead of the built-in ones
  --cmdline TEXT           also include the modules named by modules= / rootfstype= in TEXT
  --busybox FILE           add a static busybox as /bin/busybox and /bin/sh (rescue shell)
  --apk-key FILE           add an apk public key to /etc/apk/keys (repeatable)
  --file SRC:DEST          add a file at DEST (repeatable)
  --mactab FILE            interface names by MAC address (busybox nameif's format, checked
                           here) as /etc/mactab: the boot renames interfaces before choosing one
  --compress gzip|none     compression (default: gzip)
  --tls                    HTTPS at boot: the TLS init `ramboot-init-tls` beside this program
                           (unless --init names one) and a CA bundle at
                           /etc/ssl/certs/ca-certificates.crt
  --ca-bundle FILE         the CA bundle (PEM) HTTPS servers are checked against (implies the
                           bundle goes in; default with --tls: /etc/ssl/certs/ca-certificates.crt,
                           Debian's ca-certificates)
";

const USAGE: Usage = Usage {
    prog: "ramboot mkinitfs",
    text: HELP,
    status: 2,
};

/// Flags as given.
#[derive(Default)]
struct Raw {
    output: Option<PathBuf>,
    init: Option<PathBuf>,
    kernel_modules: Option<PathBuf>,
    modules: Vec<String>,
    features: Vec<String>,
    features_dir: Option<PathBuf>,
    cmdline: Option<String>,
    busybox: Option<PathBuf>,
    apk_keys: Vec<PathBuf>,
    files: Vec<String>,
    mactab: Option<PathBuf>,
    compress: Option<String>,
    tls: bool,
    ca_bundle: Option<PathBuf>,
    help: bool,
}

fn split_list(v: &str) -> impl Iterator<Item = String> + '_ {
    v.split([',', ' '])
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn parse_raw(mut p: Args) -> Result<Raw, ArgError> {
    let mut raw = Raw::default();
    while let Some(arg) = p.next_arg()? {
        match arg {
            Short('o') | Long("output") => raw.output = Some(p.path()?),
            Long("init") => raw.init = Some(p.path()?),
            Long("kernel-modules") => raw.kernel_modules = Some(p.path()?),
            Short('m') | Long("modules") => raw.modules.extend(split_list(&p.string()?)),
            Short('F') | Long("features") => raw.features.extend(split_list(&p.string()?)),
            Long("features-dir") => raw.features_dir = Some(p.path()?),
            Long("cmdline") => raw.cmdline = Some(p.string()?),
            Long("busybox") => raw.busybox = Some(p.path()?),
            Long("apk-key") => raw.apk_keys.push(p.path()?),
            Long("file") => raw.files.push(p.string()?),
            Long("mactab") => raw.mactab = Some(p.path()?),
            Long("compress") => raw.compress = Some(p.string()?),
            Long("tls") => raw.tls = true,
            Long("ca-bundle") => raw.ca_bundle = Some(p.path()?),
            Short('h') | Long("help") => raw.help = true,
            _ => return Err(unexpected(arg)),
        }
    }
    Ok(raw)
}

/// Validated request.
struct Request {
    spec: Spec,
    output: PathBuf,
    /// Said on stderr before the image is written (lines of `--mactab` that will be skipped).
    warnings: Vec<String>,
}

/// The init build (`ramboot-init`, without the host tools) when it sits beside this program, as
/// cargo builds it; otherwise this program, which boots as well.
fn default_init(tls: bool) -> Result<PathBuf, ArgError> {
    let me = std::env::current_exe()
        .map_err(|e| ArgError::Missing(format!("--init FILE (cannot find this program: {e})")))?;
    if tls {
        let init = me.with_file_name("ramboot-init-tls");
        if !init.is_file() {
            return Err(ArgError::Missing(format!(
                "--init FILE: --tls needs {} (cargo build --release --features tls --bin ramboot-init-tls)",
                display(&init)
            )));
        }
        return Ok(init);
    }
    let init = me.with_file_name("ramboot-init");
    Ok(if init.is_file() { init } else { me })
}

/// Debian's bundle of the CAs it trusts (package ca-certificates).
const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

fn validate(raw: Raw) -> Result<Request, ArgError> {
    let output = raw
        .output
        .ok_or_else(|| ArgError::Missing("-o FILE".into()))?;
    let init = match raw.init {
        Some(p) => p,
        None => default_init(raw.tls)?,
    };
    let ca_bundle = match (raw.ca_bundle, raw.tls) {
        (Some(b), _) => Some(b),
        (None, true) => Some(PathBuf::from(SYSTEM_CA_BUNDLE)),
        (None, false) => None,
    };
    if let Some(b) = &ca_bundle {
        if !b.is_file() {
            return Err(ArgError::invalid(
                "--ca-bundle",
                &display(b),
                "not a file (install ca-certificates, or name a PEM bundle)",
            ));
        }
    }
    let compression = match raw.compress.as_deref() {
        None | Some("gzip") => Compression::Gzip,
        Some("none") => Compression::None,
        Some(other) => return Err(ArgError::invalid("--compress", other, "gzip or none")),
    };
    let mut wanted: Vec<String> = raw.modules;
    if let Some(text) = &raw.cmdline {
        let plan = crate::cmdline::plan(&crate::cmdline::parse(text));
        wanted.extend(plan.modules.iter().cloned());
    }
    let source = match &raw.features_dir {
        Some(dir) => features::Source::Dir(dir),
        None => features::Source::BuiltIn,
    };
    for f in &raw.features {
        wanted.extend(
            features::entries(f, &source).map_err(|e| ArgError::invalid("-F", f, e.to_string()))?,
        );
    }
    let modules = match raw.kernel_modules {
        None if wanted.is_empty() => None,
        None => {
            return Err(ArgError::Missing(
                "--kernel-modules DIR (modules were asked for)".into(),
            ))
        }
        Some(dir) => {
            let bad_dir = |why: String| ArgError::invalid("--kernel-modules", &display(&dir), why);
            let release = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .ok_or_else(|| bad_dir("not a lib/modules/<release> directory".into()))?;
            let files = crate::hw::modules::closure(
                &dir,
                &wanted.iter().map(String::as_str).collect::<Vec<_>>(),
            )
            .map_err(|e| bad_dir(e.to_string()))?;
            Some(ModuleSet {
                dir,
                kernel_release: release,
                files,
            })
        }
    };
    let mut files = Vec::new();
    for f in raw.files {
        let (src, dest) = f
            .split_once(':')
            .ok_or_else(|| ArgError::invalid("--file", &f, "expected SRC:DEST"))?;
        files.push((PathBuf::from(src), dest.to_string()));
    }
    if let Some(b) = ca_bundle {
        files.push((b, crate::net::CA_BUNDLE.to_string()));
    }
    let mut warnings = Vec::new();
    if let Some(m) = raw.mactab {
        warnings = check_mactab(&m)?;
        files.push((m, crate::net::mactab::PATH.to_string()));
    }
    let mtime = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Ok(Request {
        spec: Spec {
            init,
            modules,
            busybox: raw.busybox,
            apk_keys: raw.apk_keys,
            files,
            compression,
            mtime,
        },
        output,
        warnings,
    })
}

/// Reads `--mactab FILE` as the boot will: a file the boot would refuse is refused here; the
/// lines it would skip are returned.
fn check_mactab(path: &Path) -> Result<Vec<String>, ArgError> {
    let bad = |why: String| ArgError::invalid("--mactab", &display(path), why);
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    crate::net::mactab::parse(&text)
        .map(|m| m.skipped.iter().map(ToString::to_string).collect())
        .map_err(|e| bad(format!("line {}: `{}` {}", e.line, e.word, e.reason)))
}

pub fn main(args: &[OsString]) -> i32 {
    let req = match USAGE.two_stage(args, parse_raw, |r| r.help, validate) {
        Ok(r) => r,
        Err(code) => return code,
    };
    for w in &req.warnings {
        eprintln!("ramboot mkinitfs: warning: {w}");
    }
    match initramfs::write(&req.spec, &req.output) {
        Ok(r) => {
            println!(
                "{}: {} entries, {} modules, {} bytes ({} uncompressed)",
                display(&req.output),
                r.entries,
                r.modules,
                r.compressed,
                r.uncompressed
            );
            0
        }
        Err(e) => {
            eprintln!("ramboot mkinitfs: {e}");
            1
        }
    }
}

fn display(p: &Path) -> String {
    p.display().to_string()
}
