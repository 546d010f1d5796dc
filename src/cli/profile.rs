//! `ramboot profile`: a provisioning profile ([`crate::profile`]) checked, summarised, or
//! written as the apkovl the boot applies — usable on its own before `ramboot sdimage
//! --profile` puts it on a card.

use super::args::{unexpected, utf8, ArgError, Args, Long, Short, Usage, Value};
use crate::profile::{source_date_epoch, Profile};
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

const HELP: &str = "\
usage: ramboot profile check PROFILE
       ramboot profile apkovl PROFILE [-o FILE]

A profile is a TOML file describing a machine: world packages, OpenRC runlevels and ramboot
services, hostname, users and SSH keys, network, repositories, timezone and files (see
examples/profiles/). `check` loads it and prints what it sets: the world, the services, the
kernel command-line words it needs and the files of its apkovl. `apkovl` writes the apkovl
(default name: <hostname>.apkovl.tar.gz, in the current directory); put it on the boot
medium, and the words `check` prints on the kernel command line. The archive is reproducible:
every mtime is SOURCE_DATE_EPOCH (or 0).

  -o, --output FILE        where to write the apkovl (`-`: standard output)
";

const USAGE: Usage = Usage {
    prog: "ramboot profile",
    text: HELP,
    status: 2,
};

#[derive(Default)]
struct Raw {
    words: Vec<String>,
    output: Option<PathBuf>,
    help: bool,
}

fn parse_raw(mut p: Args) -> Result<Raw, ArgError> {
    let mut raw = Raw::default();
    while let Some(arg) = p.next_arg()? {
        match arg {
            Short('o') | Long("output") => raw.output = Some(p.path()?),
            Short('h') | Long("help") => raw.help = true,
            Value(v) => raw.words.push(utf8(v)?),
            _ => return Err(unexpected(arg)),
        }
    }
    Ok(raw)
}

enum Request {
    Check(PathBuf),
    Apkovl {
        profile: PathBuf,
        output: Option<PathBuf>,
    },
}

fn validate(raw: Raw) -> Result<Request, ArgError> {
    let mut words = raw.words.into_iter();
    let action = words
        .next()
        .ok_or_else(|| ArgError::Missing("check or apkovl".into()))?;
    let profile = words
        .next()
        .map(PathBuf::from)
        .ok_or_else(|| ArgError::Missing("PROFILE".into()))?;
    if let Some(extra) = words.next() {
        return Err(ArgError::Unexpected(extra));
    }
    match action.as_str() {
        "check" if raw.output.is_some() => Err(ArgError::Conflict(
            "-o is for `ramboot profile apkovl`".into(),
        )),
        "check" => Ok(Request::Check(profile)),
        "apkovl" => Ok(Request::Apkovl {
            profile,
            output: raw.output,
        }),
        other => Err(ArgError::invalid("action", other, "check or apkovl")),
    }
}

pub fn main(args: &[OsString]) -> i32 {
    let req = match USAGE.two_stage(args, parse_raw, |r| r.help, validate) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let path = match &req {
        Request::Check(p) | Request::Apkovl { profile: p, .. } => p,
    };
    let profile = match Profile::load(path) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("ramboot profile: {e}");
            return 1;
        }
    };
    for w in profile.warnings() {
        eprintln!("ramboot profile: warning: {w}");
    }
    let result = match &req {
        Request::Check(_) => summary(&profile, &mut std::io::stdout()),
        Request::Apkovl { output, .. } => write(&profile, output.as_deref()),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("ramboot profile: {e}");
            1
        }
    }
}

fn write(profile: &Profile, output: Option<&Path>) -> std::io::Result<()> {
    let name = profile.apkovl_name();
    let output = output.unwrap_or(Path::new(&name));
    let bytes = profile.apkovl(source_date_epoch());
    if output == Path::new("-") {
        return std::io::stdout().write_all(&bytes);
    }
    let tmp = output.with_extension("tmp");
    std::fs::write(&tmp, &bytes)
        .and_then(|_| std::fs::rename(&tmp, output))
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", output.display())))?;
    let words = profile.cmdline_additions().join(" ");
    eprintln!(
        "{}: {} entries, {} bytes{}",
        output.display(),
        profile.entries().count(),
        bytes.len(),
        if words.is_empty() {
            String::new()
        } else {
            format!("; kernel command line: add `{words}`")
        }
    );
    Ok(())
}

/// What the profile sets, one fact a line.
pub fn summary(profile: &Profile, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "hostname: {}",
        profile.hostname().unwrap_or("(not set)")
    )?;
    writeln!(out, "world: {}", profile.world().join(" "))?;
    for r in profile.repositories() {
        writeln!(out, "repository: {r}")?;
    }
    for (level, svc) in &profile.services().openrc {
        writeln!(out, "openrc: {svc} in {level}")?;
    }
    for svc in &profile.services().ramboot {
        writeln!(out, "ramboot service: {svc}")?;
    }
    for u in profile.users() {
        let keys = u.ssh_keys.len();
        writeln!(out, "user: {} (uid {}, {keys} ssh keys)", u.name, u.uid)?;
    }
    writeln!(
        out,
        "kernel command line: {}",
        profile.cmdline_additions().join(" ")
    )?;
    for (path, node) in profile.entries() {
        let kind = match &node.body {
            crate::profile::Body::Dir => "dir ",
            crate::profile::Body::File(_) => "file",
            crate::profile::Body::Link(_) => "link",
        };
        let (mode, uid, gid) = (node.mode, node.uid, node.gid);
        writeln!(out, "apkovl: {kind} {mode:04o} {uid}:{gid} /{path}")?;
    }
    Ok(())
}
