//! `/sbin/modprobe`: the personality the kernel's `request_module` runs (`modprobe -q --
//! fs-vfat`), with the busybox/kmod flags scripts use. Its words go through the crate's one
//! parser ([`super::args`]); a refused command line exits 1, as kmod's and busybox's do.

use super::args::{unexpected, utf8, ArgError, Args, Long, Short, Usage, Value};
use crate::hw::modules::{self, ModuleDb, ModuleLoader};
use crate::sys::Sys;
use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::Path;

const HELP: &str = "\
usage: modprobe [-qbvn] [-S RELEASE] [--] MODULE [PARAM=VALUE...]
       modprobe -a [-qbvn] [-S RELEASE] [--] MODULE...

Loads MODULE (a name, alias or modalias) with its dependencies, as the kernel asks.

  -q, --quiet                 no message for a module that is not there
  -a, --all                   load every MODULE named (no parameters)
  -b, --use-blacklist         apply the blacklist to the names too, not only to aliases
  -v, --verbose               name every module loaded
  -n, --dry-run, --show       print what would be loaded, load nothing
  -S, --set-version RELEASE   use /lib/modules/RELEASE (default: the running kernel)
  -s, -i, -f, --syslog, --first-time, --ignore-install
                              accepted, without effect
  -r, --remove                not supported: fails
";

const USAGE: Usage = Usage {
    prog: "modprobe",
    text: HELP,
    status: 1,
};

/// The flags as typed.
#[derive(Default)]
struct Raw {
    quiet: bool,
    all: bool,
    blacklist_all: bool,
    verbose: bool,
    dry_run: bool,
    remove: bool,
    release: Option<String>,
    words: Vec<String>,
    help: bool,
}

fn parse_raw(mut p: Args) -> Result<Raw, ArgError> {
    let mut raw = Raw::default();
    while let Some(arg) = p.next_arg()? {
        match arg {
            Short('q') | Long("quiet") => raw.quiet = true,
            Short('a') | Long("all") => raw.all = true,
            Short('b') | Long("use-blacklist") => raw.blacklist_all = true,
            Short('v') | Long("verbose") => raw.verbose = true,
            Short('n') | Long("dry-run") | Long("show") => raw.dry_run = true,
            Short('r') | Long("remove") => raw.remove = true,
            Short('S') | Long("set-version") => raw.release = Some(p.string()?),
            Short('s' | 'i' | 'f') | Long("syslog" | "first-time" | "ignore-install") => {}
            Short('h') | Long("help") => raw.help = true,
            Value(v) => raw.words.push(utf8(v)?),
            _ => return Err(unexpected(arg)),
        }
    }
    Ok(raw)
}

/// A validated request.
struct Request {
    load: modules::Request,
    quiet: bool,
    verbose: bool,
    dry_run: bool,
    remove: bool,
    release: Option<String>,
}

fn validate(raw: Raw) -> Result<Request, ArgError> {
    let mut words = raw.words;
    if words.is_empty() {
        return Err(ArgError::Missing("MODULE".into()));
    }
    let mut load = modules::Request {
        blacklist_all: raw.blacklist_all,
        ..Default::default()
    };
    if raw.all {
        load.names = words;
    } else {
        let name = words.remove(0);
        if !words.is_empty() {
            load.params.insert(modules::normalize(&name), words);
        }
        load.names = vec![name];
    }
    Ok(Request {
        load,
        quiet: raw.quiet,
        verbose: raw.verbose,
        dry_run: raw.dry_run,
        remove: raw.remove,
        release: raw.release,
    })
}

/// `modprobe ARGS...` with `args[0]` the program name. Returns the exit status: 0 when every
/// request ended up in the kernel.
pub fn main<S: AsRef<OsStr>>(args: &[S], sys: &dyn Sys) -> i32 {
    let words: Vec<_> = args.iter().skip(1).map(|a| a.as_ref().to_owned()).collect();
    match USAGE.two_stage(&words, parse_raw, |r| r.help, validate) {
        Ok(req) => run(req, sys),
        Err(code) => code,
    }
}

/// Runs `modprobe` when the program was started under that name (a link to the binary, as
/// busybox does): `Some(exit status)`, or `None` for any other name. Both binaries use it.
pub fn run_if_modprobe(args: &[OsString]) -> Option<i32> {
    let argv0 = args.first().map(Path::new)?.file_name()?;
    if argv0 != "modprobe" {
        return None;
    }
    Some(main(args, &crate::sys::RealSys))
}

fn run(req: Request, sys: &dyn Sys) -> i32 {
    let mut stderr = std::io::stderr();
    if req.remove {
        let _ = writeln!(stderr, "modprobe: removing modules is not supported");
        return 1;
    }
    let release = req.release.unwrap_or_else(|| sys.kernel_release());
    let db = match ModuleDb::open(sys, &release) {
        Ok(db) => db,
        Err(e) => {
            if !req.quiet {
                let _ = writeln!(stderr, "modprobe: FATAL: {e}");
            }
            return 1;
        }
    };
    if req.dry_run {
        for n in &req.load.names {
            let r = db.resolve(n, req.load.blacklist_all);
            let _ = writeln!(std::io::stdout(), "{n}: {}", r.modules.join(" "));
        }
        return 0;
    }
    let report = ModuleLoader::new(sys, db).load(&req.load);
    if req.verbose {
        for m in &report.loaded {
            let _ = writeln!(stderr, "modprobe: loaded {m}");
        }
    }
    if !req.quiet {
        for n in &report.not_found {
            let _ = writeln!(
                stderr,
                "modprobe: FATAL: Module {n} not found in directory /lib/modules/{release}"
            );
        }
    }
    for (m, why) in &report.failed {
        let _ = writeln!(stderr, "modprobe: ERROR: could not insert '{m}': {why}");
    }
    // A request fully hidden by the blacklist is not an error (kmod says nothing either).
    i32::from(!report.ok())
}
