//! How [`RealSys`] starts programs (`run`, `spawn`, `exec`, its own fork/exec since the init
//! dropped `std::process::Command`): the kernel's error for a program that cannot run, with no
//! child left behind; exit codes and signals; argv\[0\] and exactly the environment given; the
//! PATH search over that environment; chroot, working directory and umask; the signals a
//! child starts with; an askfirst prompt that does not hold the caller.
//!
//! The tests take one lock: "no child left" waits for any child of this process.
// Tests drive real processes and inspect them beside the Sys boundary.
#![allow(clippy::disallowed_methods)]

mod support;

use ramboot::sys::{RealSys, Spawn, Sys};
use rustix::process::{Pid, WaitOptions};
use std::ffi::OsString;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn lock() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

fn os(items: &[&str]) -> Vec<OsString> {
    items.iter().map(OsString::from).collect()
}

fn env(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
    pairs.iter().map(|(k, v)| (k.into(), v.into())).collect()
}

fn sh(script: &str) -> Spawn {
    Spawn {
        program: "/bin/sh".into(),
        args: os(&["-c", script]),
        env: env(&[("PATH", "/usr/bin:/bin")]),
        ..Default::default()
    }
}

/// Neither a running child nor a zombie: wait4(-1) finds none.
fn assert_no_child_left() {
    assert_eq!(
        rustix::process::wait(WaitOptions::NOHANG).map(|_| ()),
        Err(rustix::io::Errno::CHILD),
        "a child of this process is left"
    );
}

fn pid_of(raw: u32) -> Pid {
    Pid::from_raw(raw as i32).unwrap()
}

fn kill_and_reap(raw: u32) {
    let pid = pid_of(raw);
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
    rustix::process::waitpid(Some(pid), WaitOptions::empty()).unwrap();
}

/// `/proc/PID/<file>` split at NUL bytes.
fn proc_strings(pid: u32, file: &str) -> Vec<String> {
    let raw = std::fs::read(format!("/proc/{pid}/{file}")).unwrap();
    raw.split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

/// A `Sig...:` mask line of `/proc/PID/status`.
fn signal_mask(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    u64::from_str_radix(line.trim(), 16).unwrap()
}

fn bit(signal: i32) -> u64 {
    1 << (signal - 1)
}

fn write_file(path: &Path, body: &str, mode: u32) {
    std::fs::write(path, body).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn a_program_that_cannot_run_is_the_kernels_error_with_no_child_left() {
    let _one = lock();
    let dir = tempfile::tempdir().unwrap();
    let missing = Spawn {
        program: "/nonexistent/ramboot-probe".into(),
        ..Default::default()
    };
    let e = RealSys.spawn(&missing).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert_eq!(e.raw_os_error(), Some(libc::ENOENT));
    assert_no_child_left();
    let e = RealSys.run(&missing).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert_no_child_left();

    let not_executable = dir.path().join("data");
    write_file(&not_executable, "#!/bin/sh\n", 0o644);
    let e = RealSys
        .spawn(&Spawn {
            program: not_executable,
            ..Default::default()
        })
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    // musl's execvp does not hand a file without `#!` to /bin/sh: the kernel's ENOEXEC stands.
    let no_format = dir.path().join("garbage");
    write_file(&no_format, "not a program\n", 0o755);
    let e = RealSys
        .run(&Spawn {
            program: no_format,
            ..Default::default()
        })
        .unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENOEXEC), "{e}");
    // A setup step failing in the child: the working directory.
    let e = RealSys
        .spawn(&Spawn {
            cwd: Some(dir.path().join("no-such-dir")),
            ..sh("exit 0")
        })
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert_no_child_left();
}

#[test]
fn run_returns_the_exit_code_or_128_plus_the_signal() {
    let _one = lock();
    assert_eq!(RealSys.run(&sh("exit 7")).unwrap(), 7);
    assert_eq!(
        RealSys.run(&sh("kill -TERM $$")).unwrap(),
        128 + libc::SIGTERM
    );
    assert_no_child_left();
}

#[test]
fn a_failed_exec_returns_the_error_and_this_process_keeps_sigpipe_ignored() {
    let _one = lock();
    let e = RealSys.exec(
        Path::new("/nonexistent/ramboot-probe"),
        &os(&["probe"]),
        &[],
    );
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    // Rust's runtime ignores SIGPIPE; the exec's reset to the default is undone on failure.
    // SAFETY: swaps the disposition for the same one and reads the previous.
    let previous = unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    assert_eq!(previous, libc::SIG_IGN, "SIGPIPE is no longer ignored");
}

fn cloexec_pipe() -> (OwnedFd, OwnedFd) {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap()
}

/// Forks; the child runs `then` (an exec), the parent gets the pid once the exec happened.
fn fork_exec(then: impl FnOnce() -> std::io::Error) -> u32 {
    let (read, write) = cloexec_pipe();
    let mut read = std::fs::File::from(read);
    // SAFETY: the child only execs (what `then` does) or leaves with _exit.
    match unsafe { libc::fork() } {
        0 => {
            let e = then();
            let _ = rustix::io::write(&write, &[1]);
            eprintln!("exec failed: {e}");
            // SAFETY: ends the child without the test harness's exit handlers.
            unsafe { libc::_exit(127) }
        }
        pid => {
            drop(write);
            let mut failed = Vec::new();
            read.read_to_end(&mut failed).unwrap();
            assert!(failed.is_empty(), "the exec failed");
            pid as u32
        }
    }
}

#[test]
fn exec_gives_the_new_program_its_argv0_and_exactly_the_environment() {
    let _one = lock();
    let pid = fork_exec(|| {
        RealSys.exec(
            Path::new("/bin/sleep"),
            &os(&["-handed-off", "1000"]),
            &env(&[("HOME", "/"), ("TERM", "linux")]),
        )
    });
    assert_eq!(proc_strings(pid, "cmdline"), ["-handed-off", "1000"]);
    assert_eq!(proc_strings(pid, "environ"), ["HOME=/", "TERM=linux"]);
    assert_eq!(signal_mask(pid, "SigIgn:") & bit(libc::SIGPIPE), 0);
    kill_and_reap(pid);
    // A bare name: the PATH of the environment given.
    let pid = fork_exec(|| {
        RealSys.exec(
            Path::new("sleep"),
            &os(&["sleep", "1000"]),
            &env(&[("PATH", "/nonexistent:/bin")]),
        )
    });
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/exe")).unwrap(),
        std::fs::canonicalize("/bin/sleep").unwrap()
    );
    kill_and_reap(pid);
    assert_no_child_left();
}

#[test]
fn spawn_gives_argv0_exactly_the_environment_and_signals_as_new() {
    let _one = lock();
    // This thread's blocked signals are the parent's, not the child's.
    let mut usr1 = std::mem::MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initialises the set before sigaddset and pthread_sigmask read it.
    unsafe {
        libc::sigemptyset(usr1.as_mut_ptr());
        libc::sigaddset(usr1.as_mut_ptr(), libc::SIGUSR1);
        libc::pthread_sigmask(libc::SIG_BLOCK, usr1.as_ptr(), std::ptr::null_mut());
    }
    let started = RealSys.spawn(&Spawn {
        program: "/bin/sleep".into(),
        argv0: Some("-sleepy".into()),
        args: os(&["1000"]),
        env: env(&[("A", "1"), ("PATH", "/usr/bin"), ("A", "2")]),
        ..Default::default()
    });
    // SAFETY: as above; the set was initialised.
    unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, usr1.as_ptr(), std::ptr::null_mut()) };
    let pid = started.unwrap();
    assert_eq!(proc_strings(pid, "cmdline"), ["-sleepy", "1000"]);
    // A name given twice: its last value, as Command gave (in the order given; Command sorted).
    assert_eq!(proc_strings(pid, "environ"), ["PATH=/usr/bin", "A=2"]);
    assert_eq!(signal_mask(pid, "SigBlk:"), 0, "blocked signals inherited");
    assert_eq!(signal_mask(pid, "SigIgn:") & bit(libc::SIGPIPE), 0);
    kill_and_reap(pid);
    assert_no_child_left();
}

#[test]
fn a_bare_name_is_searched_in_the_path_given_or_musls_default() {
    let _one = lock();
    let dir = tempfile::tempdir().unwrap();
    let (refusing, running) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir(&refusing).unwrap();
    std::fs::create_dir(&running).unwrap();
    write_file(
        &refusing.join("ramboot-probe"),
        "#!/bin/sh\nexit 1\n",
        0o644,
    );
    write_file(
        &running.join("ramboot-probe"),
        "#!/bin/sh\nexit 42\n",
        0o755,
    );
    let probe = |path: String| Spawn {
        program: "ramboot-probe".into(),
        env: vec![("PATH".into(), path.into())],
        ..Default::default()
    };
    let path = format!("/nonexistent:{}:{}", refusing.display(), running.display());
    assert_eq!(RealSys.run(&probe(path)).unwrap(), 42);
    // Only refused: EACCES, not "not found".
    let e = RealSys
        .run(&probe(refusing.display().to_string()))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    let e = RealSys.run(&probe("/nonexistent".into())).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    // No PATH at all: /usr/local/bin:/bin:/usr/bin.
    let bare = Spawn {
        program: "sh".into(),
        args: os(&["-c", "exit 3"]),
        ..Default::default()
    };
    assert_eq!(RealSys.run(&bare).unwrap(), 3);
    assert_no_child_left();
}

/// The static busybox the chroot runs (the host's, as tests/apk_features.rs uses).
fn static_busybox() -> Option<Vec<u8>> {
    ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .find_map(|p| std::fs::read(p).ok())
        .filter(|b| ramboot::elf::parse(b).is_ok_and(|i| i.interpreter.is_none()))
}

#[test]
fn run_applies_chroot_working_directory_and_umask() {
    let _one = lock();
    if !support::tools::root("chroot") {
        return;
    }
    let Some(busybox) = static_busybox() else {
        support::tools::missing("no static busybox (package busybox-static)");
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    std::fs::create_dir_all(r.join("bin")).unwrap();
    std::fs::create_dir_all(r.join("work")).unwrap();
    std::fs::write(r.join("bin/busybox"), busybox).unwrap();
    std::fs::set_permissions(
        r.join("bin/busybox"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    let inside = |cwd: &str| Spawn {
        program: "/bin/busybox".into(),
        args: os(&["sh", "-c", "{ pwd; umask; echo \"$PATH\"; } > /out"]),
        env: env(&[("PATH", "/bin")]),
        chroot: Some(r.to_path_buf()),
        cwd: Some(PathBuf::from(cwd)),
        umask: Some(0o027),
        ..Default::default()
    };
    assert_eq!(RealSys.run(&inside("/work")).unwrap(), 0);
    assert_eq!(
        std::fs::read_to_string(r.join("out")).unwrap(),
        "/work\n0027\n/bin\n"
    );
    // The working directory is looked up inside the new root.
    let e = RealSys
        .run(&Spawn {
            cwd: Some(r.join("work")),
            ..inside("/")
        })
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    let e = RealSys
        .run(&Spawn {
            chroot: Some(r.join("no-such-root")),
            ..inside("/")
        })
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert_no_child_left();
}

#[test]
fn a_descriptor_placed_on_the_error_pipes_number_does_not_hide_a_failure() {
    let _one = lock();
    let (read, write) = cloexec_pipe();
    // The lowest free number: a new pipe's ends land there and on the next.
    let probe = std::fs::File::open("/dev/null").unwrap();
    let free = probe.as_raw_fd();
    drop(probe);
    let spawn = |program: &str| Spawn {
        program: program.into(),
        args: os(&["-c", &format!("echo placed >&{free}")]),
        env: env(&[("PATH", "/usr/bin:/bin")]),
        fds: vec![(write.as_raw_fd(), free), (write.as_raw_fd(), free + 1)],
        ..Default::default()
    };
    let e = RealSys.spawn(&spawn("/nonexistent/sh")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    let pid = RealSys.spawn(&spawn("/bin/sh")).unwrap();
    drop(write);
    let mut got = String::new();
    let mut read = std::fs::File::from(read);
    read.read_to_string(&mut got).unwrap();
    assert_eq!(got, "placed\n");
    rustix::process::waitpid(Some(pid_of(pid)), WaitOptions::empty()).unwrap();
    assert_no_child_left();
}

/// A new pseudo-terminal: (master, the slave's path).
fn pty() -> (std::fs::File, PathBuf) {
    // SAFETY: posix_openpt returns a new descriptor or -1; grantpt/unlockpt/ptsname_r act on
    // it, ptsname_r writing at most the buffer's length.
    unsafe {
        let fd = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
        assert!(fd >= 0, "posix_openpt: {}", std::io::Error::last_os_error());
        let master = std::fs::File::from(OwnedFd::from_raw_fd(fd));
        assert_eq!(libc::grantpt(fd), 0);
        assert_eq!(libc::unlockpt(fd), 0);
        let mut name = [0 as libc::c_char; 128];
        assert_eq!(libc::ptsname_r(fd, name.as_mut_ptr(), name.len()), 0);
        let path = std::ffi::CStr::from_ptr(name.as_ptr()).to_str().unwrap();
        (master, PathBuf::from(path))
    }
}

#[test]
fn an_askfirst_spawn_returns_while_its_console_waits_for_enter() {
    let _one = lock();
    let (mut master, slave) = pty();
    let spawn = Spawn {
        console: Some(slave),
        press_enter: true,
        ..sh("exit 5")
    };
    let (done, spawned) = std::sync::mpsc::channel();
    std::thread::spawn(move || done.send(RealSys.spawn(&spawn)));
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    while !String::from_utf8_lossy(&seen).contains("activate this console") {
        master.read_exact(&mut byte).unwrap();
        seen.push(byte[0]);
    }
    // The prompt is up and nobody pressed Enter: the caller has its pid already. (The bound
    // only turns a hang of the old behaviour into a failure; it times nothing.)
    let pid = spawned
        .recv_timeout(std::time::Duration::from_secs(120))
        .map_err(|_| master.write_all(b"\n"))
        .expect("spawn waited for Enter")
        .unwrap();
    master.write_all(b"\n").unwrap();
    let (_, status) = rustix::process::waitpid(Some(pid_of(pid)), WaitOptions::empty())
        .unwrap()
        .unwrap();
    assert_eq!(status.exit_status(), Some(5));
    assert_no_child_left();
}

/// `run` gives the child the descriptors it is told to (a hook's stdout pointed at stderr
/// is one), as `spawn` does.
#[test]
fn run_places_the_descriptors_it_is_given() {
    let _one = lock();
    let (read, write) = cloexec_pipe();
    let spawn = Spawn {
        program: "/bin/sh".into(),
        args: os(&["-c", "echo to-stdout"]),
        env: env(&[("PATH", "/usr/bin:/bin")]),
        fds: vec![(write.as_raw_fd(), 1)],
        ..Default::default()
    };
    assert_eq!(RealSys.run(&spawn).unwrap(), 0);
    drop(write);
    let mut got = String::new();
    std::fs::File::from(read).read_to_string(&mut got).unwrap();
    assert_eq!(got, "to-stdout\n");
    assert_no_child_left();
}
