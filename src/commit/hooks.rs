//! lbu's package hooks: the executables in `/etc/lbu/pre-package.d` run before the apkovl is
//! made, those in `/etc/lbu/post-package.d` after, so a commit from `ramboot` does what the
//! same system's `lbu commit` would (a database dumped into /etc first, a service restarted
//! after, a copy sent elsewhere).
//!
//! What lbu does (alpine-conf `lbu.in`), and so what this does:
//!
//! * **When.** `cmd_package` runs `run-parts` over `pre-package.d` (when it is a directory)
//!   before anything is selected or archived, and over `post-package.d` once the archive is
//!   made, encrypted and moved onto the medium. `cmd_commit` calls it after the medium is
//!   mounted read-write and the old apkovl is backed up, and rotates the backups
//!   (`BACKUP_LIMIT`), syncs and remounts read-only only after it returns: post hooks see the
//!   new apkovl on a writable medium, before the rotation. `lbu commit -n` runs both (only
//!   the copy to the medium is skipped), and so do `lbu status` and `lbu diff` (through
//!   `cmd_package -`); `lbu list` runs none. So `ramboot commit`, `--dry-run` and `diff` run
//!   them too.
//! * **Failure.** busybox `run-parts` runs every hook even after one fails, says
//!   `NAME: exit status N` for each that fails, and exits 1 if any did. A failing pre hook
//!   makes `cmd_package` return before the archive (`run-parts … || return 1`), and
//!   `cmd_commit` restores the old apkovl and dies: nothing is committed, and the post hooks do
//!   not run. Post hooks run whatever became of the archive (a failed write included: a hook
//!   that restarts what a pre hook stopped must run), and their status is ignored: the commit
//!   stands. [`run`] runs every hook and reports each failure with its status; the callers
//!   apply lbu's policy.
//! * **Which files.** busybox `run-parts`: the directory's entries whose name does not start
//!   with `.` and is made only of ASCII letters, digits, `_`, `-` and `.` (busybox allows
//!   dots, so `10-db.sh` runs, unlike Debian's run-parts), that are regular files (symlinks
//!   followed) with an execute bit; in byte order of their names; no subdirectories.
//! * **How.** No arguments; the command's own environment, as lbu passes its own (it exports
//!   nothing for them: only what lbu.conf itself `export`s would reach them, and ramboot reads
//!   lbu.conf without running it); umask 022 (busybox `run-parts` sets it); their stdout on
//!   stderr, as lbu's `run-parts … >&2`, so a hook's output never mixes with `commit diff`'s
//!   or `--dry-run`'s lists on stdout.
//!
//! With `--root DIR` the hooks are `DIR`'s, run chrooted into `DIR` (lbu runs `$ROOT`'s hooks
//! unconfined): what they write stays in the root whose files the commit takes, as a hook
//! of the running system writes into `/`.

use crate::fsutil::Root;
use crate::sys::{Spawn, Sys};
use rustix::fs::{Dir, FileType, OFlags};
use std::ffi::OsString;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// The hooks run before the apkovl is made (`LBU_PREPACKAGE`).
pub const PRE_PACKAGE: &str = "etc/lbu/pre-package.d";
/// The hooks run after it is written (`LBU_POSTPACKAGE`).
pub const POST_PACKAGE: &str = "etc/lbu/post-package.d";

/// How one hook ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Exit status 0.
    Done,
    /// Another exit status (128 + N when signal N killed it).
    Failed(i32),
    /// It could not be started.
    NotRun(String),
}

/// One hook that ran: its path inside the system and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookRun {
    pub hook: PathBuf,
    pub outcome: Outcome,
}

impl HookRun {
    pub fn failed(&self) -> bool {
        self.outcome != Outcome::Done
    }
}

/// `hook PATH: exit status N` (busybox run-parts' words), `hook PATH: cannot run: …`, or
/// `hook PATH: done`.
impl fmt::Display for HookRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hook = crate::quote::quoted(&self.hook.display().to_string()).to_string();
        match &self.outcome {
            Outcome::Done => write!(f, "hook {hook}: done"),
            Outcome::Failed(code) => write!(f, "hook {hook}: exit status {code}"),
            Outcome::NotRun(why) => write!(f, "hook {hook}: cannot run: {why}"),
        }
    }
}

/// The system whose hooks run: its root as the host sees it (to list the hooks) and as
/// [`Sys`] sees it (to run them in it).
pub struct System<'a> {
    pub root: &'a Root,
    /// The root's path for [`Spawn::chroot`]; `/` runs the hooks unconfined.
    pub sys_root: PathBuf,
}

/// The hooks of `dir` (relative to the root) that busybox run-parts would run, in its order,
/// as paths inside the system. A missing directory has none.
pub fn list(root: &Root, dir: &str) -> Vec<PathBuf> {
    let Ok(fd) = root.open_at(Path::new(dir), OFlags::RDONLY | OFlags::DIRECTORY) else {
        return Vec::new();
    };
    let Ok(entries) = Dir::read_from(&fd) else {
        return Vec::new();
    };
    let mut names: Vec<OsString> = entries
        .flatten()
        .map(|e| OsString::from(std::ffi::OsStr::from_bytes(e.file_name().to_bytes())))
        .filter(|n| run_parts_name(n.as_bytes()))
        .filter(|n| executable_file(root, &Path::new(dir).join(n)))
        .collect();
    crate::sys::sort::sort(&mut names);
    names
        .into_iter()
        .map(|n| Path::new("/").join(dir).join(n))
        .collect()
}

/// busybox run-parts' `invalid_name`, negated: no leading dot, only `[A-Za-z0-9_.-]`.
fn run_parts_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name[0] != b'.'
        && name
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'))
}

/// A regular file (after symlinks, inside the root) with an execute bit.
fn executable_file(root: &Root, path: &Path) -> bool {
    root.open_at(path, OFlags::PATH)
        .and_then(|fd| Ok(rustix::fs::fstat(&fd)?))
        .is_ok_and(|st| {
            FileType::from_raw_mode(st.st_mode) == FileType::RegularFile && st.st_mode & 0o111 != 0
        })
}

/// Runs the hooks of `dir` one after the other, all of them whatever each returns, telling
/// `seen` of each as it ends. Returns what each did.
pub fn run(
    sys: &dyn Sys,
    system: &System,
    dir: &str,
    seen: &mut dyn FnMut(&HookRun),
) -> Vec<HookRun> {
    let chroot = (system.sys_root != Path::new("/")).then(|| system.sys_root.clone());
    let env: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    let mut runs = Vec::new();
    for hook in list(system.root, dir) {
        let spawn = Spawn {
            program: hook.clone(),
            env: env.clone(),
            chroot: chroot.clone(),
            umask: Some(0o022),
            // lbu runs them with `>&2`: what a hook prints never mixes with a command's output.
            fds: vec![(2, 1)],
            ..Default::default()
        };
        let outcome = match sys.run(&spawn) {
            Ok(0) => Outcome::Done,
            Ok(code) => Outcome::Failed(code),
            Err(e) => Outcome::NotRun(e.to_string()),
        };
        let ran = HookRun { hook, outcome };
        seen(&ran);
        runs.push(ran);
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_as_busybox_run_parts_takes_them() {
        for ok in ["10-db", "a_b", "10-db.sh", "X9"] {
            assert!(run_parts_name(ok.as_bytes()), "{ok}");
        }
        for bad in [".hidden", "", "a b", "x~", "a+b", "caf\u{e9}", ".", "#x#"] {
            assert!(!run_parts_name(bad.as_bytes()), "{bad}");
        }
    }
}
