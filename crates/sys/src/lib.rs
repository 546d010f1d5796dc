//! The system boundary.
//!
//! Every effect that needs privileges or a real kernel — mounts, module loading, device nodes, loop
//! devices, chroot and exec, reboot, uevent sockets, spawning processes — goes through the [`Sys`]
//! trait. [`RealSys`] performs them with rustix; [`RecordingSys`] records them and acts on a
//! directory tree that stands in for `/`. That is what lets the whole boot run unprivileged in tests
//! and in `ramboot plan`.
//!
//! Plain reads and writes of files are not privileged and do not go through the trait, but they
//! must use [`Sys::path`] to turn a path as seen by PID 1 (`/proc/cmdline`) into a host path.

pub mod elf;

pub mod fsutil;

pub mod sort;

pub mod foreign;
pub mod net;
pub mod net6;
mod real;
mod recording;
mod system;
mod watchdog;

pub use net::{Connection, DhcpSocket, Heard, LinkWatch};
pub use net6::Ipv6Events;
pub use real::RealSys;
pub use recording::{is_exec_recorded, Call, ChrootRuns, ExecRecorded, RecordingSys};

use rustix::fd::{BorrowedFd, OwnedFd, RawFd};
use std::ffi::{OsStr, OsString};
use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use rustix::mount::MountFlags;

/// Kind of device node for [`Sys::mknod`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeKind {
    Char,
    Block,
}

/// What [`Sys::reboot`] asks of the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RebootKind {
    PowerOff,
    Restart,
    Halt,
}

impl std::fmt::Display for RebootKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::PowerOff => "poweroff",
            Self::Restart => "restart",
            Self::Halt => "halt",
        })
    }
}

/// A kernel module image handed to [`Sys::load_module`].
pub enum ModuleImage<'a> {
    /// A file the kernel reads itself (`finit_module`); `compressed` sets
    /// `MODULE_INIT_COMPRESSED_FILE` so the kernel decompresses it.
    File { path: &'a Path, compressed: bool },
    /// An uncompressed image already in memory (`init_module`).
    Bytes(&'a [u8]),
}

/// A process to start, described as data so the double can record it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Spawn {
    pub program: PathBuf,
    /// argv\[0\] when it is not the program path (a login shell's `-/bin/sh`).
    pub argv0: Option<OsString>,
    /// argv\[1..\]
    pub args: Vec<OsString>,
    /// The complete environment (nothing is inherited).
    pub env: Vec<(OsString, OsString)>,
    /// chroot into this directory before exec (scripts run inside the new root).
    pub chroot: Option<PathBuf>,
    /// Working directory (inside the chroot, when there is one).
    pub cwd: Option<PathBuf>,
    pub umask: Option<u32>,
    /// Make this a session leader with the console as controlling terminal (rescue shell).
    pub controlling_tty: bool,
    /// For [`Sys::spawn`]: open this terminal as stdin, stdout and stderr (it becomes the
    /// controlling terminal of the new session when no other session holds it).
    pub console: Option<PathBuf>,
    /// For [`Sys::spawn`]: before exec, print "Please press Enter to activate this console." on
    /// the terminal and wait for a line (busybox init's `askfirst`). The caller does not wait:
    /// `spawn` returns once the child is set up; an exec failing after the line ends the child
    /// with code 127.
    pub press_enter: bool,
    /// For [`Sys::spawn`]: run as this user (supplementary groups, group, then user, before
    /// exec).
    pub user: Option<Credentials>,
    /// Descriptors the child gets, as (source, number in the child): a service's
    /// stdin/stdout/stderr pipe, its readiness fd, a hook's stdout sent to stderr. Applied in
    /// order (by [`Sys::spawn`] after [`Spawn::console`], by [`Sys::run`] first); the caller
    /// keeps every source open until the call returns.
    pub fds: Vec<(RawFd, RawFd)>,
}

/// Who a process runs as (resolved from the root's `/etc/passwd` and `/etc/group`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Credentials {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
}

pub use rustix::process::Signal;

/// The name of a signal without its `SIG` prefix (`TERM`), or its number.
pub fn signal_name(signal: Signal) -> String {
    const NAMES: [(Signal, &str); 13] = [
        (Signal::HUP, "HUP"),
        (Signal::INT, "INT"),
        (Signal::QUIT, "QUIT"),
        (Signal::KILL, "KILL"),
        (Signal::USR1, "USR1"),
        (Signal::USR2, "USR2"),
        (Signal::SEGV, "SEGV"),
        (Signal::PIPE, "PIPE"),
        (Signal::TERM, "TERM"),
        (Signal::CHILD, "CHLD"),
        (Signal::CONT, "CONT"),
        (Signal::ABORT, "ABRT"),
        (Signal::POWER, "PWR"),
    ];
    NAMES
        .iter()
        .find(|(s, _)| *s == signal)
        .map_or_else(|| signal.as_raw().to_string(), |(_, n)| (*n).to_string())
}

/// How a child process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// It called `exit` with this code.
    Code(i32),
    /// A signal (this number) killed it.
    Signal(i32),
}

impl ExitStatus {
    pub fn success(self) -> bool {
        self == Self::Code(0)
    }
}

impl std::fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Self::Code(c) => write!(f, "exit status {c}"),
            Self::Signal(n) => match Signal::from_named_raw(n) {
                Some(s) => write!(f, "killed by SIG{}", signal_name(s)),
                None => write!(f, "killed by signal {n}"),
            },
        }
    }
}

/// What [`Sys::reap`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reaped {
    /// A child (or an orphan re-parented to us) ended and is gone now.
    Exited { pid: u32, status: ExitStatus },
    /// Children exist, none has ended.
    Running,
    /// No children at all (`ECHILD`).
    NoChildren,
}

/// Signals delivered synchronously (a `signalfd` over blocked signals).
pub trait SignalSource: Send {
    /// Waits until a signal arrives (returns all pending ones) or `timeout` passes (returns
    /// none); `None` waits without a deadline.
    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<Vec<Signal>>;

    /// Like [`SignalSource::wait`], also waking when one of `readable` can be read (a
    /// service's output or readiness pipe); says whether one could. The default, for sources
    /// without descriptors of their own, waits for signals only.
    fn wait_with(
        &mut self,
        timeout: Option<Duration>,
        readable: &[BorrowedFd<'_>],
    ) -> io::Result<(Vec<Signal>, bool)> {
        let _ = readable;
        Ok((self.wait(timeout)?, false))
    }
}

/// One kernel uevent: `ACTION@DEVPATH` plus its `KEY=VALUE` pairs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Uevent {
    pub action: String,
    pub devpath: String,
    pub vars: Vec<(String, String)>,
}

impl Uevent {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Parses a netlink uevent message: NUL-separated, the first string `action@devpath`.
    /// Returns `None` for messages that are not kernel uevents (e.g. udev's `libudev` ones).
    pub fn parse(msg: &[u8]) -> Option<Uevent> {
        let mut parts = msg.split(|&b| b == 0).filter(|p| !p.is_empty());
        let head = std::str::from_utf8(parts.next()?).ok()?;
        let (action, devpath) = head.split_once('@')?;
        let mut ev = Uevent {
            action: action.to_string(),
            devpath: devpath.to_string(),
            vars: Vec::new(),
        };
        for p in parts {
            let Ok(s) = std::str::from_utf8(p) else {
                continue;
            };
            if let Some((k, v)) = s.split_once('=') {
                ev.vars.push((k.to_string(), v.to_string()));
            }
        }
        Some(ev)
    }
}

/// What [`UeventSource::recv`] got.
#[derive(Debug, PartialEq, Eq)]
pub enum UeventRecv {
    Event(Uevent),
    /// Nothing arrived before the timeout.
    Timeout,
    /// The kernel dropped events (`ENOBUFS`): the caller must re-scan sysfs.
    Overflow,
}

/// A subscription to kernel uevents (`NETLINK_KOBJECT_UEVENT`).
pub trait UeventSource: Send {
    /// Waits at most `timeout` for the next event.
    fn recv(&mut self, timeout: Duration) -> io::Result<UeventRecv>;
    /// The socket, for a wait on it and another (see [`LinkWatch::wait_or_uevent`]).
    fn fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }
}

/// An open hardware watchdog (see [`Sys::open_watchdog`]). Dropped without
/// [`Watchdog::magic_close`], its countdown keeps running: the machine resets unless someone
/// else feeds it. That is the point of a watchdog, and why only an orderly end closes it.
pub trait Watchdog: Send {
    /// The timeout the driver took (it may round what was asked).
    fn timeout(&self) -> Duration;
    /// Restarts the countdown (`WDIOC_KEEPALIVE`).
    fn keepalive(&mut self) -> io::Result<()>;
    /// Writes the magic `V` and closes the device: the driver stops the countdown (unless it
    /// was built with `nowayout`).
    fn magic_close(self: Box<Self>) -> io::Result<()>;
}

/// A mount as the mount table shows it (see [`Sys::mount_containing`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountPoint {
    /// Where it is mounted, as PID 1 sees it.
    pub target: PathBuf,
    /// Its flags (`ro`, `nosuid`, `noatime`, ...): a remount that must keep them repeats them.
    pub flags: MountFlags,
}

/// The one door to privileged effects. See the module docs.
pub trait Sys: Send + Sync {
    /// Maps a path as PID 1 sees it (absolute) to the host path to open. Identity for [`RealSys`].
    fn path(&self, guest: &Path) -> PathBuf;

    /// `mount(2)`. `data` is the comma-separated option string the filesystem parses.
    fn mount(
        &self,
        source: &str,
        target: &Path,
        fstype: &str,
        flags: MountFlags,
        data: &str,
    ) -> io::Result<()>;
    /// `mount(2)` with `MS_REMOUNT`.
    fn remount(&self, target: &Path, flags: MountFlags, data: &str) -> io::Result<()>;
    /// The mount that holds `path` (the deepest mount point at or above it) and its flags.
    fn mount_containing(&self, path: &Path) -> io::Result<MountPoint>;
    /// `mount(2)` with `MS_BIND`.
    fn bind_mount(&self, source: &Path, target: &Path) -> io::Result<()>;
    /// `mount(2)` with `MS_MOVE`.
    fn move_mount(&self, source: &Path, target: &Path) -> io::Result<()>;
    /// `umount2(2)`; `detach` is `MNT_DETACH`.
    fn umount(&self, target: &Path, detach: bool) -> io::Result<()>;
    /// `mknod(2)`.
    fn mknod(
        &self,
        path: &Path,
        kind: NodeKind,
        mode: u32,
        major: u32,
        minor: u32,
    ) -> io::Result<()>;

    /// `finit_module(2)` or `init_module(2)` with the given parameter string.
    fn load_module(&self, image: ModuleImage<'_>, params: &str) -> io::Result<()>;

    /// Runs `task` in a child process that outlives this one's exec (the cached root's writer
    /// goes on while the new system starts), named `name` for `ps` (15 bytes at most); its
    /// return value is the child's exit code. The double records `background NAME` and runs the
    /// task inline only when asked to.
    fn background(&self, name: &str, task: &mut (dyn FnMut() -> i32 + Send)) -> io::Result<()>;

    /// Makes the file system holding the directory `dir` read-only (or read-write) by its
    /// descriptor (fspick + reconfigure), for a process that no longer sees its mount point.
    fn set_read_only_at(&self, dir: BorrowedFd<'_>, read_only: bool) -> io::Result<()>;

    /// Attaches `file` to a free loop device (`LOOP_CONFIGURE`) and returns the device path.
    fn loop_attach(&self, file: &Path, read_only: bool) -> io::Result<PathBuf>;

    /// Sets `LO_FLAGS_AUTOCLEAR` on an attached loop device that something (a mount) holds
    /// open: the kernel detaches it, releasing its backing file, when that last user goes away.
    fn loop_autoclear(&self, device: &Path) -> io::Result<()>;

    /// Subscribes to kernel uevents with a receive buffer of `buffer_size` bytes.
    fn uevents(&self, buffer_size: usize) -> io::Result<Box<dyn UeventSource>>;

    /// `chdir(2)`.
    fn chdir(&self, path: &Path) -> io::Result<()>;
    /// `chroot(2)` + `chdir("/")`.
    fn chroot(&self, path: &Path) -> io::Result<()>;
    /// Deletes the initramfs contents before switch_root, without crossing into other filesystems
    /// and keeping `keep` (the new root). Refuses unless `/` is a ramfs/tmpfs.
    fn free_initramfs(&self, keep: &Path) -> io::Result<()>;
    /// Opens `device` and makes it stdin, stdout and stderr.
    fn attach_console(&self, device: &Path) -> io::Result<()>;
    /// `execve(2)` (a name without '/' looked up in the PATH of `env`, as `execvp`): only
    /// returns on failure.
    fn exec(&self, program: &Path, argv: &[OsString], env: &[(OsString, OsString)]) -> io::Error;
    /// Starts a process and waits for it; returns its exit code (128+signal when killed). A
    /// program that cannot start is the kernel's error (ENOENT: `NotFound`), its child reaped;
    /// a name without '/' is looked up in the PATH of [`Spawn::env`].
    fn run(&self, spawn: &Spawn) -> io::Result<i32>;

    /// Starts a process in a new session (`setsid`) and returns its pid without waiting: the
    /// caller reaps it with [`Sys::reap`]. Honours [`Spawn::console`] and [`Spawn::press_enter`].
    fn spawn(&self, spawn: &Spawn) -> io::Result<u32>;
    /// `waitpid(-1, WNOHANG)`: one ended child, if any.
    fn reap(&self) -> io::Result<Reaped>;
    /// `kill(2)` to one process.
    fn kill(&self, pid: u32, signal: Signal) -> io::Result<()>;
    /// Signals every process but ourselves: `kill(-1)` when we are PID 1; otherwise (a
    /// subreaper under test) only our descendants, never the rest of the host.
    fn kill_all(&self, signal: Signal) -> io::Result<()>;
    /// `prctl(PR_SET_CHILD_SUBREAPER)`: orphans below us are re-parented to us (what PID 1 gets
    /// for free; lets the supervisor run and be tested as an ordinary process).
    fn set_child_subreaper(&self) -> io::Result<()>;
    /// `reboot(LINUX_REBOOT_CMD_CAD_ON/OFF)`: with `hard` false, Ctrl-Alt-Del sends SIGINT to
    /// PID 1 instead of rebooting at once.
    fn set_ctrl_alt_del(&self, hard: bool) -> io::Result<()>;
    /// Blocks `signals` for this thread (and threads it starts later) and delivers them through
    /// the returned source. Processes spawned afterwards start with an empty mask.
    fn signals(&self, signals: &[Signal]) -> io::Result<Box<dyn SignalSource>>;

    /// Before a program replaces PID 1 (`exec`): nothing blocked, every signal's disposition
    /// the default, so the program starts as it would from the kernel. When the exec fails
    /// the caller blocks its signals again ([`Sys::signals`]).
    fn reset_signals(&self) -> io::Result<()>;
    /// A listening Unix stream socket at `path`, non-blocking and close-on-exec: its directory
    /// made (mode 0700), a socket left there by an earlier run replaced, the socket mode 0600.
    fn listen_unix(&self, path: &Path) -> io::Result<rustix::fd::OwnedFd>;
    /// `swapoff(2)`.
    fn swapoff(&self, path: &Path) -> io::Result<()>;

    /// `reboot(2)`: only returns on failure.
    fn reboot(&self, kind: RebootKind) -> io::Error;
    /// `sync(2)`.
    fn sync(&self);
    /// Blocks forever without using the CPU (PID 1's last resort). The double returns at once.
    fn idle_forever(&self);
    /// Waits (the rescue loop's backoff). The double records it and advances its clock.
    fn sleep(&self, duration: Duration);
    /// Asks for a secret on the console: writes `prompt`, reads one line with echo off (a
    /// terminal's settings are restored after), waits at most `timeout`. `Ok(None)`: no answer
    /// (end of input, or the time ran out). The line comes without its newline.
    fn read_secret(&self, prompt: &str, timeout: Duration) -> io::Result<Option<Vec<u8>>>;
    /// Lowers the calling thread's CPU priority to the lowest (nice 19): background work (the
    /// boot drivers beside the media search) then takes a single core only when the boot's
    /// critical path leaves it idle. Scheduling only, nothing to record: doubles need not act.
    fn background_priority(&self) -> io::Result<()> {
        Ok(())
    }
    /// The calling thread's id, for [`Sys::hurry_thread`].
    fn thread_id(&self) -> i32 {
        0
    }
    /// Raises thread `tid` back to normal priority when it runs at background priority; true
    /// when it did. For a thread whose work another one now waits for (a module load the boot
    /// needs): at nice 19 it would run only once every other runnable thread is idle. The
    /// thread lowers itself again with [`Sys::background_priority`] when that work is done.
    fn hurry_thread(&self, tid: i32) -> io::Result<bool> {
        let _ = tid;
        Ok(false)
    }
    /// Writes a kernel setting under `/proc/sys` (`key` like `kernel/printk_devkmsg`), with a
    /// trailing newline as `echo` would: some handlers (`printk_devkmsg`) refuse a value without.
    fn write_sysctl(&self, key: &str, value: &str) -> io::Result<()>;

    /// Blocks `signals` in the calling thread only (and the threads it starts later): a helper
    /// thread of PID 1 must not take the signals its `signalfd` reads, since PID 1 drops a
    /// signal delivered to a thread without a handler.
    fn block_signals(&self, signals: &[Signal]) -> io::Result<()>;
    /// Opens a watchdog device (its countdown starts) and sets its timeout
    /// (`WDIOC_SETTIMEOUT`). A driver that cannot change it keeps its own, which
    /// [`Watchdog::timeout`] reports.
    fn open_watchdog(&self, device: &Path, timeout: Duration) -> io::Result<Box<dyn Watchdog>>;

    /// A copy of the running binary in a sealed memfd (`memfd_create`, `/proc/self/exe`
    /// copied in, `F_SEAL_SEAL|SHRINK|GROW|WRITE`): what service mode re-executes after
    /// switch_root, once the initramfs holding the binary is gone.
    fn self_image(&self) -> io::Result<OwnedFd>;
    /// `execveat(image, "", argv, env, AT_EMPTY_PATH)`: only returns on failure.
    fn exec_image(
        &self,
        image: BorrowedFd<'_>,
        argv: &[OsString],
        env: &[(OsString, OsString)],
    ) -> io::Error;
    /// `sethostname(2)`.
    fn set_hostname(&self, name: &str) -> io::Result<()>;
    /// Brings a network interface up (`SIOCSIFFLAGS` with `IFF_UP`): the loopback.
    fn link_up(&self, interface: &str) -> io::Result<()>;
    /// Takes a network interface down (`SIOCSIFFLAGS` without `IFF_UP`): the ones not chosen
    /// for the boot, as Alpine leaves them.
    fn link_down(&self, interface: &str) -> io::Result<()>;
    /// `RTM_SETLINK` with `IFLA_IFNAME`: renames `interface` (ifindex `index`) to `new_name`,
    /// as busybox `nameif` does for `/etc/mactab`. The kernel refuses when the name is taken
    /// (EEXIST), and kernels before 6.2 while the link is up (EBUSY).
    fn rename_link(&self, interface: &str, index: u32, new_name: &str) -> io::Result<()>;
    /// Subscribes to link changes (the rtnetlink link group). Subscribe before reading sysfs,
    /// so that no change between the read and the wait is missed.
    fn link_watch(&self) -> io::Result<Box<dyn LinkWatch>>;
    /// `RTM_NEWADDR`: `address/prefix` on `interface` (replacing the same address). `index` is
    /// its ifindex (the caller read it from sysfs with the name; rtnetlink wants the number).
    fn add_address(
        &self,
        interface: &str,
        index: u32,
        address: Ipv4Addr,
        prefix: u8,
    ) -> io::Result<()>;
    /// `RTM_NEWROUTE`: the default route through `gateway` on `interface` (ifindex `index`).
    fn add_default_route(&self, interface: &str, index: u32, gateway: Ipv4Addr) -> io::Result<()>;
    /// A DHCP client's socket on `interface` (see [`DhcpSocket`]).
    fn dhcp_socket(&self, interface: &str) -> io::Result<Box<dyn DhcpSocket>>;
    /// A TCP connection to `host:port` (a name is resolved through `/etc/resolv.conf`), given
    /// up after `timeout` per address.
    fn tcp_connect(
        &self,
        host: &str,
        port: u16,
        timeout: Duration,
    ) -> io::Result<Box<dyn Connection>>;
    /// Subscribes to IPv6 address changes and router advertisement options (see
    /// [`Ipv6Events`]). Subscribe before bringing the interface up, so nothing is missed.
    fn ipv6_events(&self) -> io::Result<Box<dyn Ipv6Events>>;
    /// `swapon(2)`.
    fn swapon(&self, device: &Path) -> io::Result<()>;
    /// Mixes `seed` into the kernel's random pool (`RNDADDENTROPY`), crediting `credit_bits`.
    fn add_entropy(&self, seed: &[u8], credit_bits: u32) -> io::Result<()>;
    /// `CLOCK_REALTIME`, since the epoch.
    fn wall_clock(&self) -> Duration;
    /// `clock_settime(CLOCK_REALTIME)`.
    fn set_wall_clock(&self, since_epoch: Duration) -> io::Result<()>;

    /// `CLOCK_BOOTTIME`.
    fn now(&self) -> Duration;
    /// `uname -r`.
    fn kernel_release(&self) -> String;
    /// `uname -m`.
    fn machine(&self) -> String;
    /// Whether this process may chroot, chown and create device nodes (effective uid 0).
    fn privileged(&self) -> bool;

    /// Sets the owner of entry `name` of directory `dir` (inside a root the caller opened with
    /// [`fsutil::Root`]), never through a symlink at `name`. The double acts on its stand-in
    /// tree without recording, as it does for file writes: this changes an entry the caller
    /// made, not the system.
    fn chown_at(&self, dir: BorrowedFd<'_>, name: &OsStr, uid: u32, gid: u32) -> io::Result<()> {
        rustix::fs::chownat(
            dir,
            name,
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(gid)),
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(io::Error::from)
    }

    /// Makes a fifo `name` in directory `dir` with `mode` (as [`Sys::chown_at`]: an entry of a
    /// root the caller opened; acts on the double's tree without recording).
    fn mkfifo_at(&self, dir: BorrowedFd<'_>, name: &OsStr, mode: u32) -> io::Result<()> {
        rustix::fs::mknodat(
            dir,
            name,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(mode),
            0,
        )
        .map_err(io::Error::from)
    }
}

/// The payload of the error [`Sys::run`] returns when it did not run a process faithfully (a
/// double that cannot run the stand-in root's programs on this host). Callers report what the
/// process would have done as not verified, never as a failure of the thing being run.
#[derive(Debug)]
pub struct NotRun(pub String);

impl std::fmt::Display for NotRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotRun {}

/// Why `err` is a [`NotRun`], if it is one.
pub fn not_run_reason(err: &io::Error) -> Option<&str> {
    err.get_ref()
        .and_then(|e| e.downcast_ref::<NotRun>())
        .map(|n| n.0.as_str())
}

/// Of `mounts` (mount point, flags) in mount order, the one holding `path`: the deepest mount
/// point at or above it, the latest one when several share it (it hides the others).
fn deepest_mount(
    path: &Path,
    mounts: impl IntoIterator<Item = (PathBuf, MountFlags)>,
) -> Option<MountPoint> {
    let mut best: Option<MountPoint> = None;
    for (target, flags) in mounts {
        let depth = target.components().count();
        let deeper = best
            .as_ref()
            .map_or(true, |b| depth >= b.target.components().count());
        if path.starts_with(&target) && deeper {
            best = Some(MountPoint { target, flags });
        }
    }
    best
}

/// [`Sys::listen_unix`] on a host path: both implementations make the same socket.
fn listen_unix_at(path: &Path) -> io::Result<rustix::fd::OwnedFd> {
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path)?,
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "something other than a socket is in the way",
            ))
        }
        Err(_) => {}
    }
    let fd = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )?;
    rustix::net::bind(&fd, &SocketAddrUnix::new(path)?)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    rustix::net::listen(&fd, 16)?;
    Ok(fd)
}

/// A mount point as `/proc/mounts` and `/proc/self/mountinfo` write it (`\040` for a space,
/// and so on: octal escapes).
pub fn unescape_mount_path(field: &str) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) if b[i] == b'\\' => {
                let v = d.iter().fold(0u32, |v, c| v * 8 + u32::from(c - b'0'));
                out.push(v as u8);
                i += 4;
            }
            _ => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    PathBuf::from(OsString::from_vec(out))
}

/// Renders mount flags the way `mount -o` would show them, for traces and messages.
pub fn mount_flags_text(flags: MountFlags) -> String {
    let names = [
        (MountFlags::RDONLY, "ro"),
        (MountFlags::NOSUID, "nosuid"),
        (MountFlags::NODEV, "nodev"),
        (MountFlags::NOEXEC, "noexec"),
        (MountFlags::SYNCHRONOUS, "sync"),
        (MountFlags::NOATIME, "noatime"),
        (MountFlags::NODIRATIME, "nodiratime"),
        (MountFlags::RELATIME, "relatime"),
        (MountFlags::STRICTATIME, "strictatime"),
        (MountFlags::DIRSYNC, "dirsync"),
        (MountFlags::LAZYTIME, "lazytime"),
        (MountFlags::SILENT, "silent"),
    ];
    let mut out: Vec<&str> = Vec::new();
    for (flag, name) in names {
        if flags.contains(flag) {
            out.push(name);
        }
    }
    out.join(",")
}

/// Splits a `mount -o` option string into kernel flags and the filesystem's own data string,
/// the way util-linux and busybox do (`ro,nosuid,size=10M` → `RDONLY|NOSUID`, `size=10M`).
pub fn parse_mount_options(options: &str) -> (MountFlags, String) {
    let mut flags = MountFlags::empty();
    let mut data: Vec<&str> = Vec::new();
    for opt in options.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        match opt {
            "ro" => flags |= MountFlags::RDONLY,
            "rw" => flags -= MountFlags::RDONLY,
            "nosuid" => flags |= MountFlags::NOSUID,
            "suid" => flags -= MountFlags::NOSUID,
            "nodev" => flags |= MountFlags::NODEV,
            "dev" => flags -= MountFlags::NODEV,
            "noexec" => flags |= MountFlags::NOEXEC,
            "exec" => flags -= MountFlags::NOEXEC,
            "sync" => flags |= MountFlags::SYNCHRONOUS,
            "async" => flags -= MountFlags::SYNCHRONOUS,
            "noatime" => flags |= MountFlags::NOATIME,
            "atime" => flags -= MountFlags::NOATIME,
            "nodiratime" => flags |= MountFlags::NODIRATIME,
            "diratime" => flags -= MountFlags::NODIRATIME,
            "relatime" => flags |= MountFlags::RELATIME,
            "norelatime" => flags -= MountFlags::RELATIME,
            "strictatime" => flags |= MountFlags::STRICTATIME,
            "dirsync" => flags |= MountFlags::DIRSYNC,
            "lazytime" => flags |= MountFlags::LAZYTIME,
            "nolazytime" => flags -= MountFlags::LAZYTIME,
            "silent" => flags |= MountFlags::SILENT,
            "loud" => flags -= MountFlags::SILENT,
            // Userspace-only options that must not reach the kernel.
            "defaults" | "auto" | "noauto" | "user" | "nouser" | "users" | "nofail" | "_netdev" => {
            }
            o if o.starts_with("x-") || o.starts_with("comment=") => {}
            other => data.push(other),
        }
    }
    (flags, data.join(","))
}

/// The CPUs this process may run on (its affinity mask), at least 1. What
/// `std::thread::available_parallelism` answers on a machine without cgroup CPU quotas,
/// without the ~5 KB of cgroup parsing it carries into the init build.
pub fn cpus() -> usize {
    rustix::thread::sched_getaffinity(None)
        .map(|set| set.count() as usize)
        .unwrap_or(1)
        .max(1)
}

/// The process's file-creation mask, read from `/proc/self/status` so nothing is changed (the
/// mask is process-wide: setting it to read it back would race with other threads); the
/// set-and-restore read only when `/proc` is not mounted.
pub fn current_umask() -> u32 {
    let from_proc = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("Umask:"))
                .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
        });
    from_proc.unwrap_or_else(|| {
        let old = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
        rustix::process::umask(old);
        old.bits()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_options_split_into_flags_and_data() {
        let (f, d) = parse_mount_options("ro,nosuid,size=10M,mode=0755,noauto");
        assert_eq!(f, MountFlags::RDONLY | MountFlags::NOSUID);
        assert_eq!(d, "size=10M,mode=0755");
        let (f, d) = parse_mount_options("exec,nosuid,mode=0755,size=2M");
        assert_eq!(f, MountFlags::NOSUID);
        assert_eq!(d, "mode=0755,size=2M");
        let (f, _) = parse_mount_options("ro,rw");
        assert!(f.is_empty());
        assert_eq!(
            mount_flags_text(MountFlags::RDONLY | MountFlags::NOEXEC),
            "ro,noexec"
        );
    }

    #[test]
    fn the_deepest_latest_mount_holds_a_path() {
        let ro = MountFlags::RDONLY;
        let mounts = [
            (PathBuf::from("/"), MountFlags::empty()),
            (PathBuf::from("/media/sda1"), ro),
            (PathBuf::from("/media/sda10"), MountFlags::empty()),
            (PathBuf::from("/media/sda1"), MountFlags::NOEXEC),
            (PathBuf::from("/media"), ro),
        ];
        let m = deepest_mount(Path::new("/media/sda1/cache"), mounts.clone()).unwrap();
        assert_eq!(m.target, Path::new("/media/sda1"));
        assert_eq!(m.flags, MountFlags::NOEXEC);
        let m = deepest_mount(Path::new("/media/sdb"), mounts.clone()).unwrap();
        assert_eq!((m.target.as_path(), m.flags), (Path::new("/media"), ro));
        assert_eq!(
            deepest_mount(Path::new("/etc"), mounts).unwrap().target,
            Path::new("/")
        );
        assert_eq!(deepest_mount(Path::new("/etc"), []), None);
        assert_eq!(
            unescape_mount_path(r"/media/my\040card\134x\09"),
            Path::new("/media/my card\\x\\09")
        );
    }

    #[test]
    fn uevent_parse() {
        let msg = b"add@/devices/virtual/block/loop0\0ACTION=add\0DEVPATH=/devices/virtual/block/loop0\0SUBSYSTEM=block\0DEVNAME=loop0\0";
        let ev = Uevent::parse(msg).unwrap();
        assert_eq!(ev.action, "add");
        assert_eq!(ev.get("DEVNAME"), Some("loop0"));
        assert_eq!(ev.get("SUBSYSTEM"), Some("block"));
        assert!(Uevent::parse(b"libudev\0\xfe\xed").is_none());
        assert!(Uevent::parse(b"").is_none());
    }
}
