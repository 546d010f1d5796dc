//! [`Sys`] on the real kernel, through rustix.
//!
//! Why one long file: each method is a thin, `SAFETY`-commented wrapper of one kernel interface,
//! in the trait's order, so the whole privileged surface of ramboot can be audited in one read.

use super::{
    ModuleImage, MountPoint, NodeKind, Reaped, RebootKind, Signal, SignalSource, Spawn, Sys,
    Uevent, UeventRecv, UeventSource,
};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{FileType, Mode, OFlags};
use rustix::mount::{MountFlags, UnmountFlags};
use std::ffi::{CString, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub(crate) mod forkexec;

/// The real system: every call is the syscall it names.
#[derive(Debug, Default)]
pub struct RealSys;

fn cstr(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in string"))
}

fn cpath(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in path"))
}

/// `statvfs` flags as the mount flags a remount repeats to keep them (apk-tools'
/// `map_statfs_flags`).
fn flags_of_statvfs(st: rustix::fs::StatVfsMountFlags) -> MountFlags {
    use rustix::fs::StatVfsMountFlags as St;
    [
        (St::RDONLY, MountFlags::RDONLY),
        (St::NOSUID, MountFlags::NOSUID),
        (St::NODEV, MountFlags::NODEV),
        (St::NOEXEC, MountFlags::NOEXEC),
        (St::NOATIME, MountFlags::NOATIME),
        (St::NODIRATIME, MountFlags::NODIRATIME),
        (St::RELATIME, MountFlags::RELATIME),
        (St::SYNCHRONOUS, MountFlags::SYNCHRONOUS),
    ]
    .into_iter()
    .filter(|(s, _)| st.contains(*s))
    .fold(MountFlags::empty(), |f, (_, m)| f | m)
}

/// `MODULE_INIT_COMPRESSED_FILE` from `<linux/module.h>`.
const MODULE_INIT_COMPRESSED_FILE: i32 = 4;

impl Sys for RealSys {
    fn path(&self, guest: &Path) -> PathBuf {
        guest.to_path_buf()
    }

    fn mount(
        &self,
        source: &str,
        target: &Path,
        fstype: &str,
        flags: MountFlags,
        data: &str,
    ) -> io::Result<()> {
        let data = cstr(data)?;
        rustix::mount::mount(source, target, fstype, flags, Some(data.as_c_str()))?;
        Ok(())
    }

    fn remount(&self, target: &Path, flags: MountFlags, data: &str) -> io::Result<()> {
        rustix::mount::mount_remount(target, flags, data)?;
        Ok(())
    }

    fn mount_containing(&self, path: &Path) -> io::Result<MountPoint> {
        let path = std::fs::canonicalize(path)?;
        let flags = flags_of_statvfs(rustix::fs::statvfs(&path)?.f_flag);
        let table = std::fs::read_to_string("/proc/self/mountinfo")?;
        // Field 5 of each mountinfo line is the mount point, in mount order.
        let points = table.lines().filter_map(|l| {
            let target = l.split(' ').nth(4)?;
            Some((super::unescape_mount_path(target), flags))
        });
        super::deepest_mount(&path, points).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("no mount holds {}", path.display()),
            )
        })
    }

    fn bind_mount(&self, source: &Path, target: &Path) -> io::Result<()> {
        rustix::mount::mount_bind(source, target)?;
        Ok(())
    }

    fn move_mount(&self, source: &Path, target: &Path) -> io::Result<()> {
        rustix::mount::mount_move(source, target)?;
        Ok(())
    }

    fn umount(&self, target: &Path, detach: bool) -> io::Result<()> {
        let flags = if detach {
            UnmountFlags::DETACH
        } else {
            UnmountFlags::empty()
        };
        rustix::mount::unmount(target, flags)?;
        Ok(())
    }

    fn mknod(
        &self,
        path: &Path,
        kind: NodeKind,
        mode: u32,
        major: u32,
        minor: u32,
    ) -> io::Result<()> {
        let ft = match kind {
            NodeKind::Char => FileType::CharacterDevice,
            NodeKind::Block => FileType::BlockDevice,
        };
        rustix::fs::mknodat(
            rustix::fs::CWD,
            path,
            ft,
            Mode::from_raw_mode(mode),
            rustix::fs::makedev(major, minor),
        )?;
        Ok(())
    }

    fn load_module(&self, image: ModuleImage<'_>, params: &str) -> io::Result<()> {
        let params = cstr(params)?;
        match image {
            ModuleImage::File { path, compressed } => {
                let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())?;
                let flags = if compressed {
                    MODULE_INIT_COMPRESSED_FILE
                } else {
                    0
                };
                rustix::system::finit_module(&fd, &params, flags)?;
            }
            ModuleImage::Bytes(bytes) => rustix::system::init_module(bytes, &params)?,
        }
        Ok(())
    }

    fn background(&self, name: &str, task: &mut (dyn FnMut() -> i32 + Send)) -> io::Result<()> {
        // SAFETY: fork(2) has no preconditions; the child only runs `task` (which the caller
        // made for a process with one thread) and leaves with _exit, never returning here.
        match unsafe { libc::fork() } {
            -1 => Err(io::Error::last_os_error()),
            0 => {
                // Named for `ps`: the process would otherwise carry the initramfs's /init name.
                if let Ok(name) = std::ffi::CString::new(name) {
                    let _ = rustix::thread::set_name(&name);
                }
                let code = task();
                // SAFETY: _exit ends the child without running the parent's exit handlers.
                unsafe { libc::_exit(code) }
            }
            pid => {
                log::debug!("{name}: process {pid}");
                Ok(())
            }
        }
    }

    fn set_read_only_at(&self, dir: BorrowedFd<'_>, read_only: bool) -> io::Result<()> {
        use rustix::mount::{fsconfig_reconfigure, fsconfig_set_flag, fspick, FsPickFlags};
        let fs = fspick(
            dir,
            "",
            FsPickFlags::FSPICK_EMPTY_PATH | FsPickFlags::FSPICK_CLOEXEC,
        )?;
        fsconfig_set_flag(&fs, if read_only { "ro" } else { "rw" })?;
        fsconfig_reconfigure(&fs)?;
        Ok(())
    }

    fn loop_attach(&self, file: &Path, read_only: bool) -> io::Result<PathBuf> {
        loopdev::attach(file, read_only)
    }

    fn loop_autoclear(&self, device: &Path) -> io::Result<()> {
        loopdev::autoclear(device)
    }

    fn uevents(&self, buffer_size: usize) -> io::Result<Box<dyn UeventSource>> {
        Ok(Box::new(NetlinkUevents::open(buffer_size)?))
    }

    fn chdir(&self, path: &Path) -> io::Result<()> {
        rustix::process::chdir(path)?;
        Ok(())
    }

    fn free_initramfs(&self, keep: &Path) -> io::Result<()> {
        initramfs_cleanup::free(keep)
    }

    fn attach_console(&self, device: &Path) -> io::Result<()> {
        let fd = rustix::fs::open(
            device,
            OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        rustix::stdio::dup2_stdin(&fd)?;
        rustix::stdio::dup2_stdout(&fd)?;
        rustix::stdio::dup2_stderr(&fd)?;
        Ok(())
    }

    fn chroot(&self, path: &Path) -> io::Result<()> {
        rustix::process::chroot(path)?;
        rustix::process::chdir("/")?;
        Ok(())
    }

    fn exec(&self, program: &Path, argv: &[OsString], env: &[(OsString, OsString)]) -> io::Error {
        let (argv0, args) = match argv.split_first() {
            Some((first, rest)) => (Some(first.as_os_str()), rest),
            None => (None, argv),
        };
        match forkexec::Program::new(program, argv0, args, env) {
            Ok(program) => forkexec::exec(&program),
            Err(e) => e,
        }
    }

    fn run(&self, spawn: &Spawn) -> io::Result<i32> {
        let program = forkexec::Program::new(&spawn.program, None, &spawn.args, &spawn.env)?;
        let chroot = spawn.chroot.as_deref().map(cpath).transpose()?;
        let cwd = spawn.cwd.as_deref().map(cpath).transpose()?;
        let umask = spawn.umask;
        let tty = spawn.controlling_tty;
        let fds = &spawn.fds;
        // Runs between fork and exec (see forkexec::start).
        let mut setup = || -> io::Result<()> {
            for &(source, target) in fds {
                processes::place_fd(source, target)?;
            }
            if let Some(root) = &chroot {
                rustix::process::chroot(root.as_c_str())?;
                rustix::process::chdir(c"/")?;
            }
            if let Some(dir) = &cwd {
                rustix::process::chdir(dir.as_c_str())?;
            }
            if let Some(mask) = umask {
                rustix::process::umask(Mode::from_raw_mode(mask));
            }
            if tty {
                rustix::process::setsid()?;
                // Best effort: the console may not be a tty (e.g. /dev/null in tests).
                let _ = rustix::process::ioctl_tiocsctty(rustix::stdio::stdin());
            }
            Ok(())
        };
        let placed: Vec<i32> = fds.iter().map(|&(_, target)| target).collect();
        // SAFETY: `setup` makes raw syscalls on the C strings made above and the caller's
        // descriptor numbers, allocates nothing.
        let pid = unsafe { forkexec::start(&program, &mut setup, None, &placed) }?;
        let status = forkexec::wait_for(pid)?;
        Ok(status
            .exit_status()
            .unwrap_or_else(|| 128 + status.terminating_signal().unwrap_or(0)))
    }

    fn spawn(&self, spawn: &Spawn) -> io::Result<u32> {
        processes::spawn(spawn)
    }

    fn reap(&self) -> io::Result<Reaped> {
        processes::reap()
    }

    fn kill(&self, pid: u32, signal: Signal) -> io::Result<()> {
        let pid = rustix::process::Pid::from_raw(pid as i32)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "pid 0"))?;
        rustix::process::kill_process(pid, signal)?;
        Ok(())
    }

    fn kill_all(&self, signal: Signal) -> io::Result<()> {
        processes::kill_all(signal)
    }

    fn set_child_subreaper(&self) -> io::Result<()> {
        rustix::process::set_child_subreaper(Some(rustix::process::getpid()))?;
        Ok(())
    }

    fn set_ctrl_alt_del(&self, hard: bool) -> io::Result<()> {
        use rustix::system::RebootCommand;
        let cmd = if hard {
            RebootCommand::CadOn
        } else {
            RebootCommand::CadOff
        };
        rustix::system::reboot(cmd)?;
        Ok(())
    }

    fn signals(&self, signals: &[Signal]) -> io::Result<Box<dyn SignalSource>> {
        Ok(Box::new(processes::SignalFd::open(signals)?))
    }

    fn block_signals(&self, signals: &[Signal]) -> io::Result<()> {
        processes::block(signals)
    }

    fn open_watchdog(
        &self,
        device: &Path,
        timeout: Duration,
    ) -> io::Result<Box<dyn crate::Watchdog>> {
        Ok(Box::new(crate::watchdog::DevWatchdog::open(
            device, timeout,
        )?))
    }

    fn reset_signals(&self) -> io::Result<()> {
        processes::reset_signals()
    }

    fn listen_unix(&self, path: &Path) -> io::Result<OwnedFd> {
        crate::listen_unix_at(path)
    }

    fn swapoff(&self, path: &Path) -> io::Result<()> {
        let path = cpath(path)?;
        // SAFETY: a plain syscall reading a NUL-terminated path that lives across the call.
        if unsafe { libc::swapoff(path.as_ptr()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn reboot(&self, kind: RebootKind) -> io::Error {
        let cmd = match kind {
            RebootKind::PowerOff => rustix::system::RebootCommand::PowerOff,
            RebootKind::Restart => rustix::system::RebootCommand::Restart,
            RebootKind::Halt => rustix::system::RebootCommand::Halt,
        };
        drain_console(Duration::from_secs(1));
        match rustix::system::reboot(cmd) {
            Ok(()) => io::Error::other("reboot(2) returned"),
            Err(e) => e.into(),
        }
    }

    fn sync(&self) {
        rustix::fs::sync();
    }

    fn idle_forever(&self) {
        loop {
            rustix::event::pause();
        }
    }

    fn sleep(&self, duration: Duration) {
        std::thread::sleep(duration);
    }

    fn read_secret(&self, prompt: &str, timeout: Duration) -> io::Result<Option<Vec<u8>>> {
        console_secret::read(prompt, timeout)
    }

    fn background_priority(&self) -> io::Result<()> {
        // `None`: PRIO_PROCESS with who 0, which Linux applies to the calling thread only.
        rustix::process::setpriority_process(None, 19).map_err(io::Error::from)
    }

    fn thread_id(&self) -> i32 {
        rustix::thread::gettid().as_raw_nonzero().get()
    }

    fn hurry_thread(&self, tid: i32) -> io::Result<bool> {
        // PRIO_PROCESS with a thread id acts on that thread only (Linux).
        let Some(pid) = rustix::process::Pid::from_raw(tid) else {
            return Ok(false);
        };
        if rustix::process::getpriority_process(Some(pid))? <= 0 {
            return Ok(false);
        }
        rustix::process::setpriority_process(Some(pid), 0)?;
        Ok(true)
    }

    fn write_sysctl(&self, key: &str, value: &str) -> io::Result<()> {
        std::fs::write(Path::new("/proc/sys").join(key), format!("{value}\n"))
    }

    fn self_image(&self) -> io::Result<OwnedFd> {
        crate::system::self_image()
    }

    fn exec_image(
        &self,
        image: BorrowedFd<'_>,
        argv: &[OsString],
        env: &[(OsString, OsString)],
    ) -> io::Error {
        crate::system::exec_image(image, argv, env)
    }

    fn set_hostname(&self, name: &str) -> io::Result<()> {
        crate::system::set_hostname(name)
    }

    fn link_up(&self, interface: &str) -> io::Result<()> {
        crate::system::link_set(interface, true)
    }

    fn link_down(&self, interface: &str) -> io::Result<()> {
        crate::system::link_set(interface, false)
    }

    fn rename_link(&self, _interface: &str, index: u32, new_name: &str) -> io::Result<()> {
        crate::net::rename_link(index, new_name)
    }

    fn link_watch(&self) -> io::Result<Box<dyn crate::LinkWatch>> {
        Ok(Box::new(crate::net::RtnlWatch::open()?))
    }

    fn add_address(
        &self,
        _interface: &str,
        index: u32,
        address: std::net::Ipv4Addr,
        prefix: u8,
    ) -> io::Result<()> {
        crate::net::add_address(index, address, prefix)
    }

    fn add_default_route(
        &self,
        _interface: &str,
        index: u32,
        gateway: std::net::Ipv4Addr,
    ) -> io::Result<()> {
        crate::net::add_default_route(index, gateway)
    }

    fn dhcp_socket(&self, interface: &str) -> io::Result<Box<dyn crate::DhcpSocket>> {
        Ok(Box::new(crate::net::UdpDhcp::open(interface)?))
    }

    fn tcp_connect(
        &self,
        host: &str,
        port: u16,
        timeout: Duration,
    ) -> io::Result<Box<dyn crate::Connection>> {
        Ok(Box::new(crate::net::Tcp::connect(host, port, timeout)?))
    }

    fn ipv6_events(&self) -> io::Result<Box<dyn crate::Ipv6Events>> {
        Ok(Box::new(crate::net6::RtnlIpv6::open()?))
    }

    fn swapon(&self, device: &Path) -> io::Result<()> {
        crate::system::swapon(device)
    }

    fn add_entropy(&self, seed: &[u8], credit_bits: u32) -> io::Result<()> {
        crate::system::add_entropy(seed, credit_bits)
    }

    fn wall_clock(&self) -> Duration {
        let ts = rustix::time::clock_gettime(rustix::time::ClockId::Realtime);
        Duration::new(ts.tv_sec.max(0) as u64, ts.tv_nsec as u32)
    }

    fn set_wall_clock(&self, since_epoch: Duration) -> io::Result<()> {
        crate::system::set_clock(since_epoch)
    }

    fn now(&self) -> Duration {
        let ts = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
        Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    }

    fn kernel_release(&self) -> String {
        rustix::system::uname()
            .release()
            .to_string_lossy()
            .into_owned()
    }

    fn machine(&self) -> String {
        rustix::system::uname()
            .machine()
            .to_string_lossy()
            .into_owned()
    }

    fn privileged(&self) -> bool {
        rustix::process::geteuid().is_root()
    }
}

/// Detached children, reaping, signals: what a supervisor needs.
mod processes {
    use super::*;
    use crate::ExitStatus;
    use std::os::fd::FromRawFd;

    pub fn spawn(spawn: &Spawn) -> io::Result<u32> {
        let program = forkexec::Program::new(
            &spawn.program,
            spawn.argv0.as_deref(),
            &spawn.args,
            &spawn.env,
        )?;
        let console = spawn.console.as_deref().map(cpath).transpose()?;
        let cwd = spawn.cwd.as_deref().map(cpath).transpose()?;
        let tty = spawn.controlling_tty;
        let fds = &spawn.fds;
        let user = spawn.user.as_ref();
        // Runs between fork and exec (see forkexec::start, which also resets the signals).
        let mut setup = || -> io::Result<()> {
            rustix::process::setsid()?;
            if let Some(dev) = &console {
                let fd = rustix::fs::open(dev.as_c_str(), OFlags::RDWR, Mode::empty())?;
                rustix::stdio::dup2_stdin(&fd)?;
                rustix::stdio::dup2_stdout(&fd)?;
                rustix::stdio::dup2_stderr(&fd)?;
            }
            for &(source, target) in fds {
                place_fd(source, target)?;
            }
            if let Some(user) = user {
                become_user(user)?;
            }
            if tty {
                // Only try: never steal a terminal another session holds.
                let _ = rustix::process::ioctl_tiocsctty(rustix::stdio::stdin());
            }
            if let Some(dir) = &cwd {
                rustix::process::chdir(dir.as_c_str())?;
            }
            Ok(())
        };
        // askfirst: the prompt waits in the child, the caller goes on (busybox init's way).
        let last_step = spawn.press_enter.then_some(wait_for_enter as fn());
        let placed: Vec<i32> = fds.iter().map(|&(_, target)| target).collect();
        // SAFETY: `setup` and `wait_for_enter` make raw syscalls through rustix and libc on
        // data prepared above (the C strings, the caller's `fds` and `user`), allocate nothing.
        let pid = unsafe { forkexec::start(&program, &mut setup, last_step, &placed) }?;
        // The supervisor reaps it with waitpid(-1).
        Ok(pid.as_raw_nonzero().get() as u32)
    }

    /// Makes `source` descriptor number `target` in the child, open across exec.
    pub(super) fn place_fd(source: i32, target: i32) -> io::Result<()> {
        // SAFETY: plain syscalls on descriptor numbers; dup2 clears FD_CLOEXEC on the copy,
        // and when both are the same descriptor the flag is cleared by hand.
        let r = unsafe {
            if source == target {
                libc::fcntl(target, libc::F_SETFD, 0)
            } else {
                libc::dup2(source, target)
            }
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Drops to `user`: supplementary groups, then the group, then the user (after which none
    /// of the others could be changed).
    fn become_user(user: &crate::Credentials) -> io::Result<()> {
        // SAFETY: setgroups reads `groups.len()` ids from the vector's buffer, allocated before
        // the fork; setgid and setuid take integers. The child has one thread.
        let failed = unsafe {
            libc::setgroups(user.groups.len() as _, user.groups.as_ptr()) != 0
                || libc::setgid(user.gid) != 0
                || libc::setuid(user.uid) != 0
        };
        if failed {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// The supervisor blocks the signals it reads through a `signalfd`; a child must not
    /// inherit that mask (a blocked SIGTERM would make it deaf to shutdown).
    fn unblock_all_signals() -> io::Result<()> {
        // SAFETY: sigemptyset initialises the set; sigprocmask is async-signal-safe and only
        // reads it.
        let r = unsafe {
            let mut none = std::mem::zeroed::<libc::sigset_t>();
            libc::sigemptyset(&mut none);
            libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut())
        };
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Every catchable signal back to its default disposition, then nothing blocked.
    pub fn reset_signals() -> io::Result<()> {
        for n in 1..libc::SIGRTMAX() {
            if n == libc::SIGKILL || n == libc::SIGSTOP {
                continue;
            }
            // SAFETY: SIG_DFL installs no handler; signals the C library reserves for itself
            // refuse with EINVAL, which is ignored.
            unsafe { libc::signal(n, libc::SIG_DFL) };
        }
        unblock_all_signals()
    }

    /// askfirst: the prompt, then one line from the terminal (or its end).
    fn wait_for_enter() {
        let prompt = b"\nPlease press Enter to activate this console. ";
        let _ = rustix::io::write(rustix::stdio::stdout(), prompt);
        let mut c = [0u8; 1];
        loop {
            match rustix::io::read(rustix::stdio::stdin(), &mut c) {
                Ok(1) if c[0] != b'\n' => {}
                Err(rustix::io::Errno::INTR) => {}
                _ => return,
            }
        }
    }

    pub fn reap() -> io::Result<Reaped> {
        use rustix::process::{wait, WaitOptions};
        loop {
            // wait4(-1): any child (rustix's waitpid(None) is wait4(0), our process group only).
            return match wait(WaitOptions::NOHANG) {
                Ok(None) => Ok(Reaped::Running),
                Ok(Some((pid, st))) => {
                    let status = match (st.exit_status(), st.terminating_signal()) {
                        (Some(code), _) => ExitStatus::Code(code),
                        (None, Some(sig)) => ExitStatus::Signal(sig),
                        // Stopped or continued: not reported without WUNTRACED; look again.
                        (None, None) => continue,
                    };
                    Ok(Reaped::Exited {
                        pid: pid.as_raw_nonzero().get() as u32,
                        status,
                    })
                }
                Err(rustix::io::Errno::CHILD) => Ok(Reaped::NoChildren),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => Err(e.into()),
            };
        }
    }

    pub fn kill_all(signal: Signal) -> io::Result<()> {
        let me = rustix::process::getpid();
        if me.is_init() {
            // kill(-1): every process but PID 1 itself (and kernel threads, which ignore it).
            // SAFETY: a plain syscall with integer arguments.
            let r = unsafe { libc::kill(-1, signal.as_raw()) };
            // ESRCH: nothing left to signal.
            return match r {
                0 => Ok(()),
                _ if io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH) => Ok(()),
                _ => Err(io::Error::last_os_error()),
            };
        }
        for pid in descendants(me.as_raw_nonzero().get() as u32)? {
            if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
                let _ = rustix::process::kill_process(p, signal);
            }
        }
        Ok(())
    }

    /// Every process whose parent chain leads to `root`, from `/proc/<pid>/stat`.
    fn descendants(root: u32) -> io::Result<Vec<u32>> {
        let mut parent_of: Vec<(u32, u32)> = Vec::new();
        for entry in std::fs::read_dir("/proc")? {
            let Some(pid) = entry?
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue; // gone meanwhile
            };
            // The command name may hold spaces and parentheses: fields follow the last ')'.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if let Some(ppid) = ppid {
                parent_of.push((pid, ppid));
            }
        }
        let mut found = vec![root];
        let mut i = 0;
        while i < found.len() {
            let parent = found[i];
            found.extend(
                parent_of
                    .iter()
                    .filter(|(_, pp)| *pp == parent)
                    .map(|(p, _)| *p),
            );
            i += 1;
        }
        found.remove(0);
        Ok(found)
    }

    /// A `signalfd` over signals blocked in this thread.
    pub struct SignalFd {
        fd: OwnedFd,
    }

    fn sigset(signals: &[Signal]) -> libc::sigset_t {
        // SAFETY: sigemptyset initialises the set it is given; sigaddset only reads the number.
        unsafe {
            let mut set = std::mem::zeroed::<libc::sigset_t>();
            libc::sigemptyset(&mut set);
            for s in signals {
                libc::sigaddset(&mut set, s.as_raw());
            }
            set
        }
    }

    /// Blocks `signals` in the calling thread.
    pub fn block(signals: &[Signal]) -> io::Result<()> {
        let set = sigset(signals);
        // SAFETY: `set` is an initialised sigset_t; the old mask is not wanted.
        let r = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
        if r != 0 {
            return Err(io::Error::from_raw_os_error(r));
        }
        Ok(())
    }

    impl SignalFd {
        pub fn open(signals: &[Signal]) -> io::Result<Self> {
            block(signals)?;
            let set = sigset(signals);
            // SAFETY: -1 asks for a new descriptor; `set` is initialised.
            let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: signalfd returned a new descriptor that nothing else owns.
            Ok(Self {
                fd: unsafe { OwnedFd::from_raw_fd(fd) },
            })
        }
    }

    impl SignalSource for SignalFd {
        fn wait(&mut self, timeout: Option<Duration>) -> io::Result<Vec<Signal>> {
            Ok(self.wait_with(timeout, &[])?.0)
        }

        fn wait_with(
            &mut self,
            timeout: Option<Duration>,
            readable: &[BorrowedFd<'_>],
        ) -> io::Result<(Vec<Signal>, bool)> {
            use rustix::event::{poll, PollFd, PollFlags, Timespec};
            let ts = timeout.map(|t| Timespec {
                tv_sec: t.as_secs().min(i64::MAX as u64) as _,
                tv_nsec: t.subsec_nanos() as _,
            });
            let mut fds = vec![PollFd::new(&self.fd, PollFlags::IN)];
            fds.extend(readable.iter().map(|fd| PollFd::new(fd, PollFlags::IN)));
            match poll(&mut fds, ts.as_ref()) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
            let io = fds[1..].iter().any(|f| !f.revents().is_empty());
            Ok((self.read_pending()?, io))
        }
    }

    impl SignalFd {
        /// Every signal pending on the descriptor (none when it would block).
        fn read_pending(&mut self) -> io::Result<Vec<Signal>> {
            let mut got = Vec::new();
            let size = std::mem::size_of::<libc::signalfd_siginfo>();
            let mut buf = vec![0u8; size * 16];
            loop {
                match rustix::io::read(&self.fd, &mut buf[..]) {
                    Ok(n) => {
                        for rec in buf[..n].chunks_exact(size) {
                            // ssi_signo is the record's first field, a u32.
                            let signo = u32::from_ne_bytes([rec[0], rec[1], rec[2], rec[3]]);
                            got.extend(Signal::from_named_raw(signo as i32));
                        }
                        if n < buf.len() {
                            return Ok(got);
                        }
                    }
                    Err(rustix::io::Errno::AGAIN) => return Ok(got),
                    Err(rustix::io::Errno::INTR) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
}

/// The kernel's uevent multicast group, read like nlplug-findfs reads it.
struct NetlinkUevents {
    fd: OwnedFd,
    buf: Vec<u8>,
}

impl NetlinkUevents {
    fn open(buffer_size: usize) -> io::Result<Self> {
        use rustix::net::{netlink, socket_with, AddressFamily, SocketFlags, SocketType};
        let fd = socket_with(
            AddressFamily::NETLINK,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
            Some(netlink::KOBJECT_UEVENT),
        )?;
        // FORCE needs CAP_NET_ADMIN; fall back to the capped size when unprivileged.
        if rustix::net::sockopt::set_socket_recv_buffer_size_force(&fd, buffer_size).is_err() {
            let _ = rustix::net::sockopt::set_socket_recv_buffer_size(&fd, buffer_size);
        }
        rustix::net::bind(&fd, &netlink::SocketAddrNetlink::new(0, 1))?;
        Ok(Self {
            fd,
            buf: vec![0; 16 * 1024],
        })
    }
}

impl UeventSource for NetlinkUevents {
    fn fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.fd.as_fd())
    }

    fn recv(&mut self, timeout: Duration) -> io::Result<UeventRecv> {
        use rustix::event::{poll, PollFd, PollFlags, Timespec};
        let deadline = std::time::Instant::now() + timeout;
        loop {
            match rustix::net::recvfrom(
                &self.fd,
                &mut self.buf[..],
                rustix::net::RecvFlags::empty(),
            ) {
                Ok((n, full, addr)) => {
                    // Only the kernel (port id 0) speaks for devices; drop truncated messages.
                    let from_kernel = addr
                        .and_then(|a| rustix::net::netlink::SocketAddrNetlink::try_from(a).ok())
                        .is_some_and(|a| a.pid() == 0);
                    if !from_kernel || full > n {
                        continue;
                    }
                    if let Some(ev) = Uevent::parse(&self.buf[..n]) {
                        return Ok(UeventRecv::Event(ev));
                    }
                }
                Err(rustix::io::Errno::AGAIN) => {
                    let left = deadline.saturating_duration_since(std::time::Instant::now());
                    if left.is_zero() {
                        return Ok(UeventRecv::Timeout);
                    }
                    let ts = Timespec {
                        tv_sec: left.as_secs() as _,
                        tv_nsec: left.subsec_nanos() as _,
                    };
                    let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
                    match poll(&mut fds, Some(&ts)) {
                        Ok(_) | Err(rustix::io::Errno::INTR) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                Err(rustix::io::Errno::NOBUFS) => return Ok(UeventRecv::Overflow),
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Loop devices through `/dev/loop-control` and `LOOP_CONFIGURE` (Linux 5.8+), with the older
/// `LOOP_SET_FD` + `LOOP_SET_STATUS64` pair as a fallback.
mod loopdev {
    use super::*;
    use rustix::ioctl::{ioctl, Ioctl, IoctlOutput, Opcode};
    use std::ffi::c_void;

    const LOOP_SET_FD: Opcode = 0x4C00;
    const LOOP_SET_STATUS64: Opcode = 0x4C04;
    const LOOP_CONFIGURE: Opcode = 0x4C0A;
    const LOOP_CTL_GET_FREE: Opcode = 0x4C82;
    const LO_FLAGS_READ_ONLY: u32 = 1;
    const LO_FLAGS_AUTOCLEAR: u32 = 4;

    #[repr(C)]
    #[derive(Clone, Copy)]
    struct LoopInfo64 {
        lo_device: u64,
        lo_inode: u64,
        lo_rdevice: u64,
        lo_offset: u64,
        lo_sizelimit: u64,
        lo_number: u32,
        lo_encrypt_type: u32,
        lo_encrypt_key_size: u32,
        lo_flags: u32,
        lo_file_name: [u8; 64],
        lo_crypt_name: [u8; 64],
        lo_encrypt_key: [u8; 32],
        lo_init: [u64; 2],
    }

    impl LoopInfo64 {
        /// Everything zero (no offset, no size limit, no name) but `flags`.
        fn with_flags(lo_flags: u32) -> LoopInfo64 {
            LoopInfo64 {
                lo_device: 0,
                lo_inode: 0,
                lo_rdevice: 0,
                lo_offset: 0,
                lo_sizelimit: 0,
                lo_number: 0,
                lo_encrypt_type: 0,
                lo_encrypt_key_size: 0,
                lo_flags,
                lo_file_name: [0; 64],
                lo_crypt_name: [0; 64],
                lo_encrypt_key: [0; 32],
                lo_init: [0; 2],
            }
        }
    }

    #[repr(C)]
    struct LoopConfig {
        fd: u32,
        block_size: u32,
        info: LoopInfo64,
        reserved: [u64; 8],
    }

    /// An ioctl whose int return value is the result (`LOOP_CTL_GET_FREE`).
    struct GetFree;
    // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns the free index as the ioctl result.
    unsafe impl Ioctl for GetFree {
        type Output = u32;
        const IS_MUTATING: bool = false;
        fn opcode(&self) -> Opcode {
            LOOP_CTL_GET_FREE
        }
        fn as_ptr(&mut self) -> *mut c_void {
            std::ptr::null_mut()
        }
        unsafe fn output_from_ptr(out: IoctlOutput, _: *mut c_void) -> rustix::io::Result<u32> {
            Ok(out as u32)
        }
    }

    /// An ioctl that passes a pointer to `T` (or an integer argument) and returns nothing.
    struct PtrArg<T> {
        op: Opcode,
        arg: T,
    }
    // SAFETY: the opcodes used with this type take a pointer to the `#[repr(C)]` struct given
    // (or, for LOOP_SET_FD, an fd number passed by value: see `FdArg`), and do not retain it.
    unsafe impl<T> Ioctl for PtrArg<T> {
        type Output = ();
        const IS_MUTATING: bool = false;
        fn opcode(&self) -> Opcode {
            self.op
        }
        fn as_ptr(&mut self) -> *mut c_void {
            (&mut self.arg as *mut T).cast()
        }
        unsafe fn output_from_ptr(_: IoctlOutput, _: *mut c_void) -> rustix::io::Result<()> {
            Ok(())
        }
    }

    /// `LOOP_SET_FD` takes the fd number itself as the argument.
    struct FdArg(usize);
    // SAFETY: LOOP_SET_FD reads its argument as an integer file descriptor.
    unsafe impl Ioctl for FdArg {
        type Output = ();
        const IS_MUTATING: bool = false;
        fn opcode(&self) -> Opcode {
            LOOP_SET_FD
        }
        fn as_ptr(&mut self) -> *mut c_void {
            self.0 as *mut c_void
        }
        unsafe fn output_from_ptr(_: IoctlOutput, _: *mut c_void) -> rustix::io::Result<()> {
            Ok(())
        }
    }

    /// `LOOP_SET_STATUS64` with only the settable AUTOCLEAR flag: offset and size limit stay 0,
    /// as `attach` set them, so the kernel keeps the device's size and contents.
    pub fn autoclear(device: &Path) -> io::Result<()> {
        let loopfd = rustix::fs::open(device, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())?;
        let info = LoopInfo64::with_flags(LO_FLAGS_AUTOCLEAR);
        // SAFETY: LOOP_SET_STATUS64 takes a pointer to struct loop_info64, which LoopInfo64 mirrors.
        unsafe {
            ioctl(
                &loopfd,
                PtrArg {
                    op: LOOP_SET_STATUS64,
                    arg: info,
                },
            )?
        };
        Ok(())
    }

    pub fn attach(file: &Path, read_only: bool) -> io::Result<PathBuf> {
        use std::os::fd::AsRawFd;
        let access = if read_only {
            OFlags::RDONLY
        } else {
            OFlags::RDWR
        };
        let backing = rustix::fs::open(file, access | OFlags::CLOEXEC, Mode::empty())?;
        let ctl = rustix::fs::open(
            "/dev/loop-control",
            OFlags::RDWR | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        // Another process may grab the same free device: retry a few times on EBUSY.
        for _ in 0..8 {
            // SAFETY: GetFree matches LOOP_CTL_GET_FREE's contract.
            let n = unsafe { ioctl(&ctl, GetFree)? };
            let dev = PathBuf::from(format!("/dev/loop{n}"));
            let loopfd = rustix::fs::open(&dev, access | OFlags::CLOEXEC, Mode::empty())?;
            // No AUTOCLEAR: the fd closes before the caller mounts the device.
            let mut info = LoopInfo64::with_flags(if read_only { LO_FLAGS_READ_ONLY } else { 0 });
            let name = file.as_os_str().as_bytes();
            let len = name.len().min(63);
            info.lo_file_name[..len].copy_from_slice(&name[..len]);
            let config = LoopConfig {
                fd: backing.as_fd().as_raw_fd() as u32,
                block_size: 0,
                info,
                reserved: [0; 8],
            };
            // SAFETY: LOOP_CONFIGURE takes a pointer to a struct loop_config, which LoopConfig mirrors.
            match unsafe {
                ioctl(
                    &loopfd,
                    PtrArg {
                        op: LOOP_CONFIGURE,
                        arg: config,
                    },
                )
            } {
                Ok(()) => return Ok(dev),
                Err(rustix::io::Errno::BUSY) => continue,
                Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOTTY) => {
                    // Kernel older than 5.8: the two-step way.
                    // SAFETY: LOOP_SET_FD takes the backing fd by value.
                    match unsafe { ioctl(&loopfd, FdArg(backing.as_fd().as_raw_fd() as usize)) } {
                        Ok(()) => {}
                        Err(rustix::io::Errno::BUSY) => continue,
                        Err(e) => return Err(e.into()),
                    }
                    // SAFETY: LOOP_SET_STATUS64 takes a pointer to struct loop_info64.
                    unsafe {
                        ioctl(
                            &loopfd,
                            PtrArg {
                                op: LOOP_SET_STATUS64,
                                arg: info,
                            },
                        )?
                    };
                    return Ok(dev);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(io::Error::other("no free loop device (all busy)"))
    }
}

/// Freeing the initramfs before switch_root: its files would otherwise stay in RAM forever.
mod initramfs_cleanup {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    const RAMFS_MAGIC: i64 = 0x8584_58f6;
    const TMPFS_MAGIC: i64 = 0x0102_1994;

    pub fn free(keep: &Path) -> io::Result<()> {
        let fs = rustix::fs::statfs("/")?;
        #[allow(clippy::unnecessary_cast)]
        let magic = fs.f_type as i64;
        if magic != RAMFS_MAGIC && magic != TMPFS_MAGIC {
            return Err(io::Error::other(
                "/ is not an initramfs (ramfs/tmpfs): refusing to delete it",
            ));
        }
        let root_dev = std::fs::symlink_metadata("/")?.dev();
        remove_children(Path::new("/"), root_dev, keep)
    }

    fn remove_children(dir: &Path, dev: u64, keep: &Path) -> io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path == keep {
                continue;
            }
            let meta = match std::fs::symlink_metadata(&path) {
                Ok(m) => m,
                Err(_) => continue,
            };
            if meta.dev() != dev {
                continue; // a mount point: not ours to delete
            }
            if meta.is_dir() {
                remove_children(&path, dev, keep)?;
                let _ = std::fs::remove_dir(&path); // stays if it holds a mount point
            } else {
                let _ = std::fs::remove_file(&path);
            }
        }
        Ok(())
    }
}

/// Waits until the console has sent what was written to it, at most `limit`: a serial driver
/// buffers output, and `reboot(2)` would cut the last lines of the shutdown. `tcdrain` can block
/// for ever on a stopped terminal, hence a thread and a bound instead of a plain call.
fn drain_console(limit: Duration) {
    let (done, drained) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("drain-console".into())
        .spawn(move || {
            for fd in [rustix::stdio::stdout(), rustix::stdio::stderr()] {
                let _ = rustix::termios::tcdrain(fd);
            }
            let _ = done.send(());
        });
    if spawned.is_ok() {
        let _ = drained.recv_timeout(limit);
    }
}

/// A passphrase from the console (PID 1's standard input and output, `/dev/console`).
mod console_secret {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    use rustix::termios::{tcgetattr, tcsetattr, LocalModes, OptionalActions};
    use std::io;
    use std::time::{Duration, Instant};

    /// A longer line is cut: a passphrase, not a file.
    const MAX_LINE: usize = 1024;

    pub(super) fn read(prompt: &str, timeout: Duration) -> io::Result<Option<Vec<u8>>> {
        let stdin = rustix::stdio::stdin();
        let stdout = rustix::stdio::stdout();
        // A terminal stops echoing for the line and gets its settings back after; input that is
        // not a terminal (a pipe) is read as it is.
        let saved = tcgetattr(stdin).ok();
        if let Some(t) = &saved {
            let mut quiet = t.clone();
            quiet.local_modes.remove(LocalModes::ECHO);
            tcsetattr(stdin, OptionalActions::Now, &quiet)?;
        }
        let _ = rustix::io::write(stdout, prompt.as_bytes());
        let line = read_line(timeout);
        if let Some(t) = &saved {
            let _ = tcsetattr(stdin, OptionalActions::Now, t);
            // The Enter key was not echoed.
            let _ = rustix::io::write(stdout, b"\n");
        }
        line
    }

    fn read_line(timeout: Duration) -> io::Result<Option<Vec<u8>>> {
        let stdin = rustix::stdio::stdin();
        let deadline = Instant::now() + timeout;
        let mut line = Vec::new();
        let mut buf = [0u8; 256];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            let ts = Timespec::try_from(left).unwrap_or(Timespec {
                tv_sec: 3600,
                tv_nsec: 0,
            });
            let mut fds = [PollFd::new(&stdin, PollFlags::IN)];
            match poll(&mut fds, Some(&ts)) {
                Ok(0) => return Ok(None),
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
            let n = match rustix::io::read(stdin, &mut buf) {
                Ok(n) => n,
                Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => continue,
                Err(e) => return Err(e.into()),
            };
            if n == 0 {
                return Ok((!line.is_empty()).then_some(line));
            }
            for &b in &buf[..n] {
                if b == b'\n' || b == b'\r' {
                    return Ok(Some(line));
                }
                if line.len() < MAX_LINE {
                    line.push(b);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mount_holding_a_path_comes_from_the_kernel() {
        let m = RealSys
            .mount_containing(Path::new("/proc/self/status"))
            .unwrap();
        assert_eq!(m.target, Path::new("/proc"));
        assert_eq!(
            RealSys.mount_containing(Path::new("/")).unwrap().target,
            Path::new("/")
        );
        let st = rustix::fs::statvfs("/proc").unwrap();
        assert_eq!(
            m.flags.contains(MountFlags::NOEXEC),
            st.f_flag.contains(rustix::fs::StatVfsMountFlags::NOEXEC)
        );
    }
}
