//! `ramboot apk genkey|mkpkg|index ...`: build signed apk packages and indexes on a host.
//!
//! The words go through the crate's one parser ([`super::args`]) in two stages: a raw record of
//! the flags as typed (each subcommand takes only its own), then a validated request; reading
//! keys, scripts and trees is left to the run, whose failures are not usage errors.

use super::args::{number, unexpected, ArgError, Args, Long, Short, Usage, Value};
use crate::apk::build::{index_record, IndexBuilder, PackageBuilder};
use crate::apk::dep::Dep;
use crate::apk::sign::{SigAlgo, SigningKey};
use crate::apk::stream::ScriptKind;
use crate::apk::ApkError;
use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

/// `ramboot install ...`, kept here for callers of the former `apk::cli`.
pub use super::install::main as main_install;

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
  index --key KEY --out APKINDEX.tar.gz [--description T] [--key-name NAME] [--sha256] FILE.apk...
      Builds a signed index of the given packages.
  KEY is a PEM private key; its public key must be installed as KEY-NAME (default: KEY's
  file name + .pub) in the target's etc/apk/keys.
";

/// The flags of the three subcommands as typed; each takes only its own (see [`apk_raw`]).
#[derive(Default)]
struct ApkRaw {
    out: Option<PathBuf>,
    key: Option<PathBuf>,
    key_name: Option<String>,
    sha256: bool,
    description: Option<String>,
    // genkey
    name: Option<String>,
    bits: Option<String>,
    // mkpkg
    root: Option<PathBuf>,
    version: Option<String>,
    arch: Option<String>,
    url: Option<String>,
    license: Option<String>,
    origin: Option<String>,
    builddate: Option<String>,
    depends: Vec<String>,
    provides: Vec<String>,
    install_if: Vec<String>,
    replaces: Vec<String>,
    priority: Option<String>,
    triggers: Option<String>,
    scripts: Vec<String>,
    // index
    files: Vec<PathBuf>,
    help: bool,
}

fn apk_raw(cmd: &str, mut p: Args) -> Result<ApkRaw, ArgError> {
    let (genkey, mkpkg, index) = (cmd == "genkey", cmd == "mkpkg", cmd == "index");
    let mut r = ApkRaw::default();
    while let Some(arg) = p.next_arg()? {
        match arg {
            Long("out") => r.out = Some(p.path()?),
            Long("key") if !genkey => r.key = Some(p.path()?),
            Long("key-name") if !genkey => r.key_name = Some(p.string()?),
            Long("sha256") if !genkey => r.sha256 = true,
            Long("description") if !genkey => r.description = Some(p.string()?),
            Long("name") if !index => r.name = Some(p.string()?),
            Long("bits") if genkey => r.bits = Some(p.string()?),
            Long("root") if mkpkg => r.root = Some(p.path()?),
            Long("version") if mkpkg => r.version = Some(p.string()?),
            Long("arch") if mkpkg => r.arch = Some(p.string()?),
            Long("url") if mkpkg => r.url = Some(p.string()?),
            Long("license") if mkpkg => r.license = Some(p.string()?),
            Long("origin") if mkpkg => r.origin = Some(p.string()?),
            Long("builddate") if mkpkg => r.builddate = Some(p.string()?),
            Long("depends") if mkpkg => r.depends.push(p.string()?),
            Long("provides") if mkpkg => r.provides.push(p.string()?),
            Long("install-if") if mkpkg => r.install_if.push(p.string()?),
            Long("replaces") if mkpkg => r.replaces.push(p.string()?),
            Long("priority") if mkpkg => r.priority = Some(p.string()?),
            Long("triggers") if mkpkg => r.triggers = Some(p.string()?),
            Long("script") if mkpkg => r.scripts.push(p.string()?),
            Value(v) if index => r.files.push(v.into()),
            Short('h') | Long("help") => r.help = true,
            _ => return Err(unexpected(arg)),
        }
    }
    Ok(r)
}

/// A signing key to load: `--key` and `--key-name`.
struct KeyArg {
    path: PathBuf,
    name: Option<String>,
}

impl KeyArg {
    fn load(&self) -> Result<SigningKey, ApkError> {
        SigningKey::load(&self.path, self.name.as_deref())
    }
}

/// A validated `ramboot apk` request.
enum ApkRequest {
    Genkey {
        out: PathBuf,
        name: String,
        bits: usize,
    },
    Mkpkg {
        key: KeyArg,
        tree: PathBuf,
        out: PathBuf,
        /// Everything but the scripts and the tree, which the run reads.
        builder: Box<PackageBuilder>,
        scripts: Vec<(ScriptKind, PathBuf)>,
    },
    Index {
        key: KeyArg,
        out: PathBuf,
        description: String,
        algo: SigAlgo,
        files: Vec<PathBuf>,
    },
}

fn required<T>(v: Option<T>, what: &str) -> Result<T, ArgError> {
    v.ok_or_else(|| ArgError::Missing(what.into()))
}

fn deps(flag: &str, values: &[String]) -> Result<Vec<Dep>, ArgError> {
    let mut out = Vec::new();
    for v in values {
        out.extend(Dep::parse_list(v).map_err(|e| ArgError::invalid(flag, v, e.to_string()))?);
    }
    Ok(out)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn apk_validate(cmd: &str, r: ApkRaw) -> Result<ApkRequest, ArgError> {
    let algo = if r.sha256 {
        SigAlgo::Sha256
    } else {
        SigAlgo::Sha1
    };
    let out = required(r.out, "--out")?;
    if cmd == "genkey" {
        let bits = match &r.bits {
            Some(b) => number("--bits", b)?,
            None => 2048,
        };
        let name = r.name.unwrap_or_else(|| "ramboot".into());
        return Ok(ApkRequest::Genkey { out, name, bits });
    }
    let key = KeyArg {
        path: required(r.key, "--key KEY")?,
        name: r.key_name,
    };
    if cmd == "index" {
        if r.files.is_empty() {
            return Err(ArgError::Missing("package files to index".into()));
        }
        return Ok(ApkRequest::Index {
            key,
            out,
            description: r.description.unwrap_or_default(),
            algo,
            files: r.files,
        });
    }
    let name = required(r.name, "--name")?;
    let version = required(r.version, "--version")?;
    if !crate::apk::version::validate(&version) {
        return Err(ArgError::invalid(
            "--version",
            &version,
            "not an apk version",
        ));
    }
    let mut b = PackageBuilder::new(&name, &version);
    b.level = 9;
    b.sign_algo = algo;
    let info = &mut b.info;
    for (given, field) in [
        (r.arch, &mut info.arch),
        (r.description, &mut info.description),
        (r.url, &mut info.url),
        (r.license, &mut info.license),
        (r.origin, &mut info.origin),
    ] {
        if let Some(v) = given {
            *field = v;
        }
    }
    info.build_time = match &r.builddate {
        Some(t) => number("--builddate", t)?,
        None => unix_now(),
    };
    info.depends.extend(deps("--depends", &r.depends)?);
    info.provides.extend(deps("--provides", &r.provides)?);
    info.install_if.extend(deps("--install-if", &r.install_if)?);
    info.replaces.extend(deps("--replaces", &r.replaces)?);
    if let Some(k) = &r.priority {
        info.provider_priority = number("--priority", k)?;
    }
    if let Some(t) = &r.triggers {
        info.triggers = t.split_whitespace().map(String::from).collect();
    }
    let mut scripts = Vec::new();
    for s in &r.scripts {
        let (kind, file) = s
            .split_once('=')
            .ok_or_else(|| ArgError::invalid("--script", s, "expected KIND=FILE"))?;
        let kind = ScriptKind::from_name(kind)
            .ok_or_else(|| ArgError::invalid("--script", s, format!("unknown kind {kind}")))?;
        scripts.push((kind, PathBuf::from(file)));
    }
    Ok(ApkRequest::Mkpkg {
        key,
        tree: required(r.root, "--root DIR")?,
        out,
        builder: Box::new(b),
        scripts,
    })
}

fn genkey(out: &std::path::Path, name: &str, bits: usize) -> Result<(), ApkError> {
    let base = format!("{name}-{:08x}.rsa", unix_now());
    let key = SigningKey::generate(&format!("{base}.pub"), bits)?;
    std::fs::create_dir_all(out)
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

fn mkpkg(
    key: &KeyArg,
    tree: &std::path::Path,
    out: &std::path::Path,
    mut b: PackageBuilder,
    scripts: Vec<(ScriptKind, PathBuf)>,
) -> Result<(), ApkError> {
    let key = key.load()?;
    for (kind, file) in scripts {
        let body = std::fs::read(&file)
            .map_err(|e| ApkError::io(format!("reading {}", file.display()), e))?;
        b.scripts.push((kind, body));
    }
    b.add_tree(tree)
        .map_err(|e| ApkError::io(format!("reading {}", tree.display()), e))?;
    let built = b.build(Some(&key))?;
    std::fs::write(out, &built.bytes)
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

fn index(
    key: &KeyArg,
    out: &std::path::Path,
    description: String,
    algo: SigAlgo,
    files: &[PathBuf],
) -> Result<(), ApkError> {
    let key = key.load()?;
    let mut idx = IndexBuilder {
        description,
        ..Default::default()
    };
    idx.mtime = crate::apk::db::now();
    for p in files {
        idx.add(&index_record(p)?);
    }
    let bytes = idx.build(Some(&key), algo)?;
    std::fs::write(out, bytes)
        .map_err(|e| ApkError::io(format!("writing {}", out.display()), e))?;
    println!("{} ({} packages)", out.display(), idx.packages.len());
    Ok(())
}

fn run(request: ApkRequest) -> Result<(), ApkError> {
    match request {
        ApkRequest::Genkey { out, name, bits } => genkey(&out, &name, bits),
        ApkRequest::Mkpkg {
            key,
            tree,
            out,
            builder,
            scripts,
        } => mkpkg(&key, &tree, &out, *builder, scripts),
        ApkRequest::Index {
            key,
            out,
            description,
            algo,
            files,
        } => index(&key, &out, description, algo, &files),
    }
}

/// `ramboot apk COMMAND ...`; returns the exit status: 0 done, 1 failed, 2 usage error.
pub fn main_apk(args: &[OsString]) -> i32 {
    let usage = |prog| Usage {
        prog,
        text: APK_HELP,
        status: 2,
    };
    let Some(cmd) = args.first() else {
        return usage("ramboot apk")
            .refuse(&ArgError::Missing("COMMAND".into()), &mut std::io::stderr());
    };
    let prog = match cmd.to_str() {
        Some("genkey") => "ramboot apk genkey",
        Some("mkpkg") => "ramboot apk mkpkg",
        Some("index") => "ramboot apk index",
        Some("-h" | "--help" | "help") => {
            print!("{APK_HELP}");
            return 0;
        }
        _ => {
            let e = ArgError::invalid(
                "command",
                &cmd.to_string_lossy(),
                "not genkey, mkpkg or index",
            );
            return usage("ramboot apk").refuse(&e, &mut std::io::stderr());
        }
    };
    let cmd = &prog["ramboot apk ".len()..];
    let request = usage(prog).two_stage(
        &args[1..],
        |p| apk_raw(cmd, p),
        |r| r.help,
        |r| apk_validate(cmd, r),
    );
    match request.map(run) {
        Ok(Ok(())) => 0,
        Ok(Err(e)) => {
            eprintln!("{prog}: {e}");
            1
        }
        Err(code) => code,
    }
}
