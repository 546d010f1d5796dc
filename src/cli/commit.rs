//! `ramboot commit` (save the configuration as an apkovl, lbu-compatible) and `ramboot ok`
//! (this boot went well: clear the last-known-good attempt count). See [`crate::commit`] and
//! [`crate::boot::lkg`].

use super::args::{unexpected, utf8, ArgError, Args, Long, Short, Usage, Value};
use crate::commit::hooks::HookRun;
use crate::commit::{self, CommitError, Encrypt, Request};
use crate::sys::{RealSys, Sys};
use std::ffi::OsString;
use std::path::PathBuf;

const COMMIT_HELP: &str = "\
usage: ramboot commit [options]
       ramboot commit diff [options]

Saves the system's configuration as <hostname>.apkovl.tar.gz on the boot medium, with the
files `lbu commit` takes: under apk's protected paths (/etc), the ones no package owns or that
differ from the apk database (content, mode, owner), all of /etc/apk, and the include/exclude
lists (/etc/apk/protected_paths.d/*.list, lbu's). The write is atomic: a power cut leaves the
old apkovl or the new one. The previous apkovl is kept as <hostname>.<UTC time>.tar.gz
(BACKUP_LIMIT of /etc/lbu/lbu.conf copies, at least one: the last-known-good fallback).

`diff` lists what changed since the last commit: A added, D deleted, U updated.

Hooks, as lbu's: the executables in /etc/lbu/pre-package.d run (in name order) before the files
are chosen, and a failing one stops the commit; those in /etc/lbu/post-package.d run once the
apkovl is written (or the write failed), their failures only reported. --dry-run and diff run
them too, as `lbu commit -n` and `lbu diff` do. With --root they run chrooted into the root.

Encrypted: --encrypt writes <hostname>.apkovl.tar.gz.ramboot (ramboot's authenticated format);
--encrypt --openssl (or -e, or ENCRYPTION=<cipher> in lbu.conf) writes what `lbu commit -e`
does, <hostname>.apkovl.tar.gz.<cipher>, which Alpine's own initramfs reads too. The
passphrase: --key-file, else PASSWORD of lbu.conf, else typed twice on the terminal. Backups
keep the suffix; `diff` decrypts the last apkovl with the same passphrase.

  --root DIR        the system's root (default /)
  --media M         medium: a name under /media, or a directory (default: LBU_BACKUPDIR,
                    LBU_MEDIA of lbu.conf, or the medium the boot read its apkovl from)
  --hostname NAME   name the apkovl after NAME (default: the hostname)
  -n, --dry-run     list the files and the hooks run, write nothing
  -d                remove other apkovls on the medium (else their presence is refused)
  -f, --force       commit although this boot is not confirmed good (`ramboot ok`)
  -v, --verbose     list the files too
  --encrypt         encrypt (ramboot's format; with --openssl: lbu's)
  --openssl         with --encrypt: `openssl enc -<cipher> -salt` as lbu writes it
  --cipher NAME     with --openssl: aes-128-cbc, aes-192-cbc, aes-256-cbc (default), -ecb
  -e                lbu's -e: --encrypt --openssl with lbu.conf's ENCRYPTION or DEFAULT_CIPHER
  --key-file FILE   the passphrase is FILE's first line
";

const COMMIT_USAGE: Usage = Usage {
    prog: "ramboot commit",
    text: COMMIT_HELP,
    status: 2,
};

#[derive(Default)]
struct CommitRaw {
    diff: bool,
    root: Option<PathBuf>,
    media: Option<String>,
    hostname: Option<String>,
    dry_run: bool,
    delete_others: bool,
    force: bool,
    verbose: bool,
    help: bool,
    encrypt: bool,
    openssl: bool,
    lbu_e: bool,
    cipher: Option<String>,
    key_file: Option<PathBuf>,
}

fn commit_raw(mut p: Args) -> Result<CommitRaw, ArgError> {
    let mut raw = CommitRaw::default();
    let mut first = true;
    while let Some(arg) = p.next_arg()? {
        match arg {
            Value(v) if first && v == "diff" => raw.diff = true,
            Long("root") => raw.root = Some(p.path()?),
            Long("media") => raw.media = Some(p.string()?),
            Long("hostname") => raw.hostname = Some(p.string()?),
            Short('n') | Long("dry-run") => raw.dry_run = true,
            Short('d') => raw.delete_others = true,
            Short('f') | Long("force") => raw.force = true,
            Short('v') | Long("verbose") => raw.verbose = true,
            Short('h') | Long("help") => raw.help = true,
            Long("encrypt") => raw.encrypt = true,
            Long("openssl") => raw.openssl = true,
            Short('e') => raw.lbu_e = true,
            Long("cipher") => raw.cipher = Some(p.string()?),
            Long("key-file") => raw.key_file = Some(p.path()?),
            Value(v) => return Err(ArgError::Unexpected(utf8(v)?)),
            _ => return Err(unexpected(arg)),
        }
        first = false;
    }
    Ok(raw)
}

struct CommitArgs {
    req: Request,
    diff: bool,
    verbose: bool,
}

fn commit_validate(raw: CommitRaw) -> Result<CommitArgs, ArgError> {
    if raw.diff && (raw.dry_run || raw.delete_others || raw.force) {
        return Err(ArgError::Conflict(
            "diff writes nothing: -n, -d and --force do not apply".into(),
        ));
    }
    if raw.openssl && !raw.encrypt {
        return Err(ArgError::Conflict("--openssl goes with --encrypt".into()));
    }
    if raw.cipher.is_some() && !raw.openssl && !raw.lbu_e {
        return Err(ArgError::Conflict(
            "--cipher names an openssl cipher: add --encrypt --openssl".into(),
        ));
    }
    if let Some(c) = &raw.cipher {
        crate::overlay::crypt::Cipher::by_name(c)
            .map_err(|e| ArgError::invalid("--cipher", c, e.to_string()))?;
    }
    let encrypt = if raw.openssl || raw.lbu_e {
        Some(Encrypt::Openssl { cipher: raw.cipher })
    } else {
        raw.encrypt.then_some(Encrypt::Ramboot)
    };
    Ok(CommitArgs {
        req: Request {
            root: raw.root.unwrap_or_else(|| PathBuf::from("/")),
            media: raw.media,
            hostname: raw.hostname,
            dry_run: raw.dry_run,
            delete_others: raw.delete_others,
            force: raw.force,
            encrypt,
            key_file: raw.key_file,
        },
        diff: raw.diff,
        verbose: raw.verbose || raw.dry_run,
    })
}

/// `ramboot commit ...`: the exit status.
pub fn main(args: &[OsString]) -> i32 {
    let a = match COMMIT_USAGE.two_stage(args, commit_raw, |r| r.help, commit_validate) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let result = if a.diff {
        run_diff(&RealSys, &a.req, a.verbose)
    } else {
        run_commit(&RealSys, &a.req, a.verbose, &mut std::io::stdout())
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("ramboot commit: {e}");
            1
        }
    }
}

/// Prints a hook that ended: failures on stderr, as busybox run-parts does; the others only
/// when verbose.
fn hook_line(verbose: bool) -> impl FnMut(&HookRun) {
    move |run| {
        if run.failed() {
            eprintln!("ramboot commit: {run}");
        } else if verbose {
            println!("{run}");
        }
    }
}

/// Commits and prints what was done to `out`.
pub fn run_commit(
    sys: &dyn Sys,
    req: &Request,
    verbose: bool,
    out: &mut dyn std::io::Write,
) -> Result<(), CommitError> {
    let r = commit::commit_with(sys, req, &mut hook_line(verbose))?;
    if verbose {
        for f in &r.selection.files {
            let _ = writeln!(out, "{}", f.path);
        }
    }
    for s in r.selection.skipped.iter().chain(&r.notes) {
        let _ = writeln!(out, "note: {s}");
    }
    let target = r.target.as_deref().map(commit::shown).unwrap_or_default();
    if req.dry_run {
        let _ = writeln!(
            out,
            "dry run: {} paths, {} bytes would be written to {target}",
            r.selection.files.len(),
            r.bytes
        );
        return Ok(());
    }
    if let Some(b) = &r.backup {
        let _ = writeln!(out, "previous apkovl kept as {b}");
    }
    for x in &r.removed {
        let _ = writeln!(out, "removed {x}");
    }
    let _ = writeln!(
        out,
        "committed {} paths ({} bytes) to {target}",
        r.selection.files.len(),
        r.bytes
    );
    Ok(())
}

fn run_diff(sys: &dyn Sys, req: &Request, verbose: bool) -> Result<(), CommitError> {
    let r = commit::diff_since_last(sys, req, &mut hook_line(verbose))?;
    if r.last.is_none() {
        println!(
            "no apkovl at {} yet: everything would be added",
            commit::shown(&r.target)
        );
    }
    for c in &r.changes {
        println!("{} {}", c.letter, c.path);
    }
    Ok(())
}

/// `ramboot ok`: this boot reached its goal (also in the init build).
pub fn ok_main(sys: &dyn Sys, args: &[OsString]) -> i32 {
    if let Some(a) = args.first() {
        if a == "-h" || a == "--help" {
            println!(
                "usage: ramboot ok\n\nTells the last-known-good record on the boot medium that this boot \
                 went well:\nthe apkovl's count of unconfirmed boots is cleared."
            );
            return 0;
        }
        eprintln!(
            "ramboot ok: unexpected argument {}",
            crate::quote::quoted(&a.to_string_lossy())
        );
        return 2;
    }
    let lines = crate::boot::lkg::confirm(sys);
    if lines.is_empty() {
        println!("no boot attempt recorded on any mounted medium: nothing to confirm");
    }
    for line in lines {
        println!("{line}");
    }
    0
}
