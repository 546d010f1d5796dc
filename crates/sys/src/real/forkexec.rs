//! Starting programs by hand: everything prepared, then fork, a few setup syscalls, execve.
//!
//! Why not `std::process::Command`: the init uses three of its features (argv\[0\], a cleared
//! environment, a pre-exec closure), but linking it brings all of its machinery (the
//! posix_spawn path, the environment map, stdio pipes, exit statuses): 29.6 KB of the aarch64
//! init's 1.5 MiB budget (tests/static_build.rs; 1,572,648 bytes with Command, 1,543,072
//! without).
//!
//! What is kept from Command, because callers rely on it:
//! - Everything that allocates (argv, envp, the paths to try) is made before the fork; the
//!   child makes only raw, async-signal-safe syscalls, takes no lock and leaves with `_exit`.
//! - A failed setup step or exec reaches the parent as its errno, through a close-on-exec pipe;
//!   the parent reaps that child and returns the same [`io::Error`] (ENOENT is `NotFound`). So
//!   [`start`] returns only once the program runs.
//! - A program named without '/' is looked up in the PATH of the environment given (musl's
//!   default list without one), as `execvp` does on musl: a candidate refused with EACCES is
//!   the error only when none runs, and a file without a `#!` line is not handed to `/bin/sh`.
//! - The environment is exactly the one given, in its order (Command sorted it by name); a
//!   name given twice keeps its last value.
//! - SIGPIPE, which Rust's runtime ignores, is at its default in the program; stdio is
//!   inherited.
//!
//! Beyond Command: a forked child also starts with no signal blocked and SIGCHLD at its
//! default (PID 1 blocks the signals it reads through a signalfd, and a blocked SIGTERM would
//! make a child deaf to shutdown); [`exec`] puts SIGPIPE back when the exec fails (Command
//! left a failed caller with SIGPIPE fatal).
//!
//! Why `fork(2)` through libc: musl's fork keeps its own state (thread id, internal locks)
//! right in the child, as `background` relies on too; `vfork` would lend the parent's stack
//! and memory to Rust code not written for that, and a raw clone bypasses musl's bookkeeping.

use rustix::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use rustix::process::{Pid, WaitOptions, WaitStatus};
use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// musl's search list when the environment has no PATH.
const DEFAULT_PATH: &[u8] = b"/usr/local/bin:/bin:/usr/bin";

/// NAME_MAX: a longer bare name is refused before the search, as `execvp` does.
const NAME_MAX: usize = 255;

/// C strings and the null-terminated array of pointers to them that execve reads.
pub(crate) struct CStrings {
    _owned: Vec<CString>,
    ptrs: Vec<*const libc::c_char>,
}

impl CStrings {
    pub(crate) fn new<'a>(items: impl IntoIterator<Item = &'a [u8]>) -> io::Result<Self> {
        let owned = items
            .into_iter()
            .map(|b| {
                CString::new(b).map_err(|_| {
                    io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in argument")
                })
            })
            .collect::<io::Result<Vec<_>>>()?;
        let mut ptrs: Vec<_> = owned.iter().map(|s| s.as_ptr()).collect();
        ptrs.push(std::ptr::null());
        Ok(Self {
            _owned: owned,
            ptrs,
        })
    }

    /// `NAME=value` for each variable, a name given twice with its last value only.
    pub(crate) fn env(env: &[(OsString, OsString)]) -> io::Result<Self> {
        let pairs: Vec<Vec<u8>> = env
            .iter()
            .enumerate()
            .filter(|(i, (name, _))| !env[i + 1..].iter().any(|(later, _)| later == name))
            .map(|(_, (k, v))| [k.as_bytes(), b"=", v.as_bytes()].concat())
            .collect();
        Self::new(pairs.iter().map(Vec::as_slice))
    }

    pub(crate) fn as_ptr(&self) -> *const *const libc::c_char {
        self.ptrs.as_ptr()
    }
}

/// A program ready to exec: the paths to try, argv and envp.
pub(super) struct Program {
    candidates: Vec<CString>,
    /// The candidates come from a PATH search (see the module docs for its errors).
    searched: bool,
    argv: CStrings,
    envp: CStrings,
}

impl Program {
    /// argv is `argv0` (the program as named when `None`) followed by `args`.
    pub fn new(
        program: &Path,
        argv0: Option<&OsStr>,
        args: &[OsString],
        env: &[(OsString, OsString)],
    ) -> io::Result<Self> {
        let name = program.as_os_str().as_bytes();
        let first = argv0.map_or(name, OsStr::as_bytes);
        let argv = CStrings::new(std::iter::once(first).chain(args.iter().map(|a| a.as_bytes())))?;
        let path = env
            .iter()
            .rev()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.as_bytes());
        let searched = !name.is_empty() && !name.contains(&b'/');
        let candidates = if searched {
            if name.len() > NAME_MAX {
                return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
            }
            search_list(name, path.unwrap_or(DEFAULT_PATH))
        } else {
            vec![name.to_vec()]
        };
        Ok(Self {
            candidates: candidates
                .into_iter()
                .map(CString::new)
                .collect::<Result<_, _>>()
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in path"))?,
            searched,
            argv,
            envp: CStrings::env(env)?,
        })
    }

    /// execve on each candidate; returns the errno to report when none runs. Allocates nothing.
    fn exec(&self) -> i32 {
        let mut refused = false;
        for path in &self.candidates {
            // SAFETY: every pointer is to a NUL-terminated string owned by `self`, and both
            // arrays end with a null pointer; on success nothing here runs again.
            unsafe { libc::execve(path.as_ptr(), self.argv.as_ptr(), self.envp.as_ptr()) };
            let errno = last_errno();
            match errno {
                _ if !self.searched => return errno,
                libc::EACCES => refused = true,
                libc::ENOENT | libc::ENOTDIR => {}
                _ => return errno,
            }
        }
        if refused {
            libc::EACCES
        } else {
            libc::ENOENT
        }
    }
}

/// `dir/name` for each directory of a PATH value; an empty entry is the current directory.
fn search_list(name: &[u8], path: &[u8]) -> Vec<Vec<u8>> {
    path.split(|&b| b == b':')
        .map(|dir| match dir {
            [] => name.to_vec(),
            _ => [dir, b"/", name].concat(),
        })
        .collect()
}

fn last_errno() -> i32 {
    io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EINVAL)
}

/// Replaces this process with `program`; returns only on failure, with SIGPIPE as it was.
pub(super) fn exec(program: &Program) -> io::Error {
    // SAFETY: SIG_DFL installs no handler; the previous disposition is put back below.
    let previous = unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let errno = program.exec();
    if previous != libc::SIG_ERR {
        // SAFETY: `previous` is the disposition signal() just returned.
        unsafe { libc::signal(libc::SIGPIPE, previous) };
    }
    io::Error::from_raw_os_error(errno)
}

/// The setup a child runs between fork and exec: raw syscalls on data prepared before the fork
/// only (no allocation, no lock, no panic).
pub(super) type Setup<'a> = &'a mut dyn FnMut() -> io::Result<()>;

/// Forks a child that resets its signals, runs `setup`, then `last_step` if any, and execs
/// `program`. Returns the child's pid once the program runs, or once `last_step` starts (an
/// exec failing after it ends the child with 127, for the caller's reaping); otherwise the
/// error of the step that failed, the child reaped. `placed` are the descriptor numbers
/// `setup` makes: the error pipe keeps out of their way.
///
/// # Safety
///
/// `setup` and `last_step` run in the forked child of a process that may have other threads:
/// they may only make async-signal-safe calls on data prepared before, never allocate, lock
/// or panic.
pub(super) unsafe fn start(
    program: &Program,
    setup: Setup<'_>,
    last_step: Option<fn()>,
    placed: &[RawFd],
) -> io::Result<Pid> {
    let (report, mut to_parent) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    let lowest = placed.iter().max().map_or(3, |&n| (n + 1).max(3));
    if to_parent.as_raw_fd() < lowest {
        to_parent = rustix::io::fcntl_dupfd_cloexec(&to_parent, lowest)?;
    }
    // SAFETY: fork(2) has no preconditions; the child runs only `child`, which never returns.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => child(program, setup, last_step, &to_parent),
        raw => {
            drop(to_parent);
            let pid = Pid::from_raw(raw).ok_or_else(|| io::Error::other("fork: no pid"))?;
            match read_report(&report) {
                None => Ok(pid),
                Some(errno) => {
                    let _ = wait_for(pid);
                    Err(io::Error::from_raw_os_error(errno))
                }
            }
        }
    }
}

/// The child's side of [`start`]: never returns.
fn child(program: &Program, setup: Setup<'_>, last_step: Option<fn()>, to_parent: &OwnedFd) -> ! {
    let errno = match reset_signals().and_then(|()| setup()) {
        Err(e) => e.raw_os_error().unwrap_or(libc::EINVAL),
        Ok(()) => match last_step {
            None => program.exec(),
            Some(step) => {
                // The parent goes on: what follows is the child's own business.
                // SAFETY: closes this process's copy of the pipe, which nothing uses after.
                unsafe { libc::close(to_parent.as_raw_fd()) };
                step();
                program.exec();
                // SAFETY: _exit ends the child without running the parent's exit handlers.
                unsafe { libc::_exit(127) }
            }
        },
    };
    let _ = rustix::io::write(to_parent, &errno.to_ne_bytes());
    // SAFETY: as above.
    unsafe { libc::_exit(127) }
}

/// The program's signals as from a fresh start: none blocked, SIGPIPE and SIGCHLD at default.
fn reset_signals() -> io::Result<()> {
    // SAFETY: sigemptyset initialises the set; sigprocmask and signal are async-signal-safe,
    // and SIG_DFL installs no handler.
    let failed = unsafe {
        let mut none = std::mem::zeroed::<libc::sigset_t>();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut()) != 0
            || libc::signal(libc::SIGPIPE, libc::SIG_DFL) == libc::SIG_ERR
            || libc::signal(libc::SIGCHLD, libc::SIG_DFL) == libc::SIG_ERR
    };
    if failed {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The errno the child wrote, or `None` when the pipe closed without one (the exec succeeded).
fn read_report(report: &OwnedFd) -> Option<i32> {
    let mut buf = [0u8; 4];
    let mut got = 0;
    while got < buf.len() {
        match rustix::io::read(report.as_fd(), &mut buf[got..]) {
            Ok(0) => return None,
            Ok(n) => got += n,
            Err(rustix::io::Errno::INTR) => {}
            // Unreadable: the child is taken as started; its caller reaps it.
            Err(_) => return None,
        }
    }
    Some(i32::from_ne_bytes(buf))
}

/// Waits for `pid` to end.
pub(super) fn wait_for(pid: Pid) -> io::Result<WaitStatus> {
    loop {
        match rustix::process::waitpid(Some(pid), WaitOptions::empty()) {
            Ok(Some((_, status))) => return Ok(status),
            Ok(None) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_name_is_tried_in_each_path_directory_in_order() {
        let list = search_list(b"sh", b"/usr/bin::/bin");
        assert_eq!(list, [&b"/usr/bin/sh"[..], b"sh", b"/bin/sh"]);
    }

    #[test]
    fn a_name_given_twice_keeps_its_last_value() {
        let env = [
            ("A".into(), "1".into()),
            ("B".into(), "2".into()),
            ("A".into(), "3".into()),
        ];
        let c = CStrings::env(&env).unwrap();
        let got: Vec<&[u8]> = c._owned.iter().map(|s| s.as_bytes()).collect();
        assert_eq!(got, [&b"B=2"[..], b"A=3"]);
    }
}
