//! [`Sys`] as a recording test double over a directory tree that stands in for `/`.
//!
//! Each call is recorded as a [`Call`] (rendered like the shell command it replaces, so traces read
//! like Alpine's `MOCK=echo` test output) and then given the smallest effect on the tree that keeps
//! later stages honest: a mount point must exist, a moved mount carries its files along, `mknod`
//! leaves a placeholder file, the mount calls keep a mount table (over the stand-in's own
//! `/proc/mounts`) that [`Sys::mount_containing`] answers from. Failures and uevents can be
//! scripted.
//!
//! One opt-in exception ([`ChrootRuns::Execute`], for `ramboot plan`): processes spawned
//! chrooted into the stand-in tree (package scripts) really run there, through
//! [`RealSys`](super::RealSys), natively or under qemu-user (see [`super::foreign`]). Their effects
//! stay inside the tree, as the chroot confines them.
//!
//! Why one long file: it mirrors [`Sys`] method by method (the trait, the real implementation
//! and this double are read side by side), and [`Call`] with its rendering is the trace format
//! every test compares against; splitting either would separate a method from its record.

use super::{
    mount_flags_text, signal_name, ExitStatus, ModuleImage, MountPoint, NodeKind, Reaped,
    RebootKind, Signal, SignalSource, Spawn, Sys, UeventRecv, UeventSource, Watchdog,
};
use rustix::fd::{BorrowedFd, OwnedFd};
use rustix::fs::MemfdFlags;
use rustix::mount::MountFlags;
use std::collections::VecDeque;
use std::ffi::OsString;
use std::fmt;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// One recorded effect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    /// [`Sys::background`].
    Background {
        name: String,
    },
    /// [`Sys::hurry_thread`] raised a thread that was at background priority.
    Hurry,
    /// [`Sys::set_read_only_at`].
    ReadOnlyAt {
        read_only: bool,
    },
    Mount {
        source: String,
        target: PathBuf,
        fstype: String,
        flags: String,
        data: String,
    },
    Remount {
        target: PathBuf,
        flags: String,
        data: String,
    },
    Bind {
        source: PathBuf,
        target: PathBuf,
    },
    Move {
        source: PathBuf,
        target: PathBuf,
    },
    Umount {
        target: PathBuf,
        detach: bool,
    },
    Mknod {
        path: PathBuf,
        kind: NodeKind,
        mode: u32,
        major: u32,
        minor: u32,
    },
    LoadModule {
        image: String,
        params: String,
    },
    LoopAttach {
        file: PathBuf,
        read_only: bool,
        device: PathBuf,
    },
    LoopAutoclear {
        device: PathBuf,
    },
    Uevents {
        buffer_size: usize,
    },
    Chdir {
        path: PathBuf,
    },
    Chroot {
        path: PathBuf,
    },
    FreeInitramfs {
        keep: PathBuf,
    },
    AttachConsole {
        device: PathBuf,
    },
    Exec {
        program: PathBuf,
        argv: Vec<OsString>,
    },
    Run {
        spawn: Spawn,
    },
    Spawn {
        spawn: Spawn,
        pid: u32,
    },
    Kill {
        pid: u32,
        signal: Signal,
    },
    KillAll {
        signal: Signal,
    },
    Subreaper,
    CtrlAltDel {
        hard: bool,
    },
    Signals {
        signals: Vec<Signal>,
    },
    ResetSignals,
    ListenUnix {
        path: PathBuf,
    },
    Swapoff {
        path: PathBuf,
    },
    Reboot {
        kind: RebootKind,
    },
    Sync,
    Idle,
    Sleep {
        duration: Duration,
    },
    /// [`Sys::read_secret`]: the prompt (the answer is not recorded).
    ReadSecret {
        prompt: String,
    },
    Sysctl {
        key: String,
        value: String,
    },
    BlockSignals {
        signals: Vec<Signal>,
    },
    WatchdogOpen {
        device: PathBuf,
        timeout: Duration,
    },
    WatchdogKeepalive {
        device: PathBuf,
    },
    WatchdogMagicClose {
        device: PathBuf,
    },
    SelfImage,
    ExecImage {
        argv: Vec<OsString>,
    },
    Hostname {
        name: String,
    },
    LinkUp {
        interface: String,
    },
    LinkDown {
        interface: String,
    },
    /// `interface` renamed `to` (the stand-in sysfs entry moves with it).
    RenameLink {
        interface: String,
        to: String,
    },
    LinkWatch,
    AddAddress {
        interface: String,
        address: std::net::Ipv4Addr,
        prefix: u8,
    },
    AddDefaultRoute {
        interface: String,
        gateway: std::net::Ipv4Addr,
    },
    /// A TCP connection to `host:port` (the HTTP client's).
    TcpConnect {
        host: String,
        port: u16,
    },
    /// The IPv6 address and router-advertisement option groups subscribed to.
    Ipv6Events,
    /// A DHCP client's socket opened on `interface`.
    DhcpSocket {
        interface: String,
    },
    /// A DHCP packet broadcast on `interface`.
    DhcpSend {
        interface: String,
        packet: Vec<u8>,
    },
    Swapon {
        device: PathBuf,
    },
    AddEntropy {
        bytes: usize,
        credit_bits: u32,
    },
    SetWallClock {
        since_epoch: Duration,
    },
}

// One arm per variant, each the shell command the call replaces: long because `Call` is.
impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn opts(flags: &str, data: &str) -> String {
            match (flags.is_empty(), data.is_empty()) {
                (true, true) => String::new(),
                (false, true) => format!(" -o {flags}"),
                (true, false) => format!(" -o {data}"),
                (false, false) => format!(" -o {flags},{data}"),
            }
        }
        match self {
            Call::Background { name } => write!(f, "background {name}"),
            Call::ReadOnlyAt { read_only } => {
                let o = if *read_only { "ro" } else { "rw" };
                write!(f, "mount -o remount,{o} (by descriptor)")
            }
            Call::Mount {
                source,
                target,
                fstype,
                flags,
                data,
            } => {
                write!(
                    f,
                    "mount -t {fstype}{} {source} {}",
                    opts(flags, data),
                    target.display()
                )
            }
            Call::Remount {
                target,
                flags,
                data,
            } => {
                let o = opts(flags, data);
                let o = if o.is_empty() {
                    " -o remount".to_string()
                } else {
                    o.replacen(" -o ", " -o remount,", 1)
                };
                write!(f, "mount{o} {}", target.display())
            }
            Call::Bind { source, target } => {
                write!(f, "mount --bind {} {}", source.display(), target.display())
            }
            Call::Move { source, target } => {
                write!(f, "mount -o move {} {}", source.display(), target.display())
            }
            Call::Umount { target, detach } => {
                write!(
                    f,
                    "umount{} {}",
                    if *detach { " -l" } else { "" },
                    target.display()
                )
            }
            Call::Mknod {
                path,
                kind,
                mode,
                major,
                minor,
            } => {
                let k = if *kind == NodeKind::Char { 'c' } else { 'b' };
                write!(
                    f,
                    "mknod -m {mode:o} {} {k} {major} {minor}",
                    path.display()
                )
            }
            Call::LoadModule { image, params } => {
                write!(
                    f,
                    "insmod {image}{}{params}",
                    if params.is_empty() { "" } else { " " }
                )
            }
            Call::LoopAutoclear { device } => write!(f, "loop autoclear {}", device.display()),
            Call::LoopAttach {
                file,
                read_only,
                device,
            } => {
                write!(
                    f,
                    "losetup{} {} {}",
                    if *read_only { " -r" } else { "" },
                    device.display(),
                    file.display()
                )
            }
            Call::Uevents { buffer_size } => write!(f, "uevent-listen {buffer_size}"),
            Call::Chdir { path } => write!(f, "cd {}", path.display()),
            Call::Chroot { path } => write!(f, "chroot {}", path.display()),
            Call::FreeInitramfs { keep } => {
                write!(f, "rm -rf --one-file-system / (keep {})", keep.display())
            }
            Call::AttachConsole { device } => write!(f, "console {}", device.display()),
            Call::SelfImage => f.write_str("memfd ramboot < /proc/self/exe (sealed)"),
            Call::ExecImage { argv } => {
                f.write_str("execveat memfd:ramboot")?;
                for a in argv {
                    write!(f, " {}", a.to_string_lossy())?;
                }
                Ok(())
            }
            Call::Hostname { name } => write!(f, "hostname {name}"),
            Call::LinkUp { interface } => write!(f, "ip link set {interface} up"),
            Call::LinkDown { interface } => write!(f, "ip link set {interface} down"),
            Call::RenameLink { interface, to } => write!(f, "ip link set {interface} name {to}"),
            Call::LinkWatch => f.write_str("ip monitor link"),
            Call::AddAddress {
                interface,
                address,
                prefix,
            } => write!(f, "ip addr add {address}/{prefix} dev {interface}"),
            Call::AddDefaultRoute { interface, gateway } => {
                write!(f, "ip route add 0.0.0.0/0 via {gateway} dev {interface}")
            }
            Call::TcpConnect { host, port } => write!(f, "connect {host}:{port}"),
            Call::Ipv6Events => f.write_str("ip -6 monitor address nduseropt"),
            Call::DhcpSocket { interface } => write!(f, "udhcpc -i {interface}"),
            Call::DhcpSend { interface, packet } => {
                write!(f, "dhcp send {} bytes on {interface}", packet.len())
            }
            Call::Swapon { device } => write!(f, "swapon {}", device.display()),
            Call::AddEntropy { bytes, credit_bits } => {
                write!(
                    f,
                    "seed /dev/urandom {bytes} bytes, credit {credit_bits} bits"
                )
            }
            Call::SetWallClock { since_epoch } => write!(f, "date -s @{}", since_epoch.as_secs()),
            Call::Exec { program, argv } => {
                write!(f, "exec {}", program.display())?;
                for a in argv.iter().skip(1) {
                    write!(f, " {}", a.to_string_lossy())?;
                }
                Ok(())
            }
            Call::Run { spawn } => {
                if let Some(root) = &spawn.chroot {
                    write!(f, "chroot {} ", root.display())?;
                }
                write!(f, "{}", spawn.program.display())?;
                for a in &spawn.args {
                    write!(f, " {}", a.to_string_lossy())?;
                }
                Ok(())
            }
            Call::Spawn { spawn, pid } => {
                write!(f, "spawn")?;
                if let Some(tty) = &spawn.console {
                    write!(f, " <>{}", tty.display())?;
                }
                if spawn.press_enter {
                    write!(f, " askfirst")?;
                }
                write!(f, " {}", spawn.program.display())?;
                if let Some(a) = spawn.argv0.as_ref().filter(|a| **a != *spawn.program) {
                    write!(f, " (as {})", a.to_string_lossy())?;
                }
                for a in &spawn.args {
                    write!(f, " {}", a.to_string_lossy())?;
                }
                if let Some(user) = &spawn.user {
                    let groups: Vec<String> = user.groups.iter().map(u32::to_string).collect();
                    write!(
                        f,
                        " [user {}:{} groups {}]",
                        user.uid,
                        user.gid,
                        groups.join(",")
                    )?;
                }
                if !spawn.fds.is_empty() {
                    let targets: Vec<String> =
                        spawn.fds.iter().map(|(_, t)| t.to_string()).collect();
                    write!(f, " [fds {}]", targets.join(","))?;
                }
                write!(f, " (pid {pid})")
            }
            Call::Kill { pid, signal } => write!(f, "kill -{} {pid}", signal_name(*signal)),
            Call::KillAll { signal } => write!(f, "kill -{} -1", signal_name(*signal)),
            Call::Subreaper => write!(f, "prctl PR_SET_CHILD_SUBREAPER"),
            Call::CtrlAltDel { hard } => {
                write!(f, "ctrlaltdel {}", if *hard { "hard" } else { "soft" })
            }
            Call::Signals { signals } => {
                let names: Vec<String> = signals.iter().map(|s| signal_name(*s)).collect();
                write!(f, "signalfd {}", names.join(","))
            }
            Call::ResetSignals => write!(f, "signals: none blocked, all default"),
            Call::ListenUnix { path } => write!(f, "listen unix {}", path.display()),
            Call::Swapoff { path } => write!(f, "swapoff {}", path.display()),
            Call::Reboot { kind } => write!(f, "reboot {kind}"),
            Call::Sync => write!(f, "sync"),
            Call::Hurry => write!(f, "renice a background thread to 0"),
            Call::Idle => write!(f, "idle"),
            Call::Sleep { duration } => write!(f, "sleep {}", duration.as_secs_f64()),
            Call::ReadSecret { prompt } => write!(f, "read secret {prompt:?}"),
            Call::Sysctl { key, value } => {
                write!(f, "sysctl -w {}={value}", key.replace('/', "."))
            }
            Call::BlockSignals { signals } => {
                let names: Vec<String> = signals.iter().map(|s| signal_name(*s)).collect();
                write!(f, "block-signals {}", names.join(","))
            }
            Call::WatchdogOpen { device, timeout } => write!(
                f,
                "watchdog-open {} timeout={}s",
                device.display(),
                timeout.as_secs()
            ),
            Call::WatchdogKeepalive { device } => {
                write!(f, "watchdog-keepalive {}", device.display())
            }
            Call::WatchdogMagicClose { device } => {
                write!(f, "watchdog-magic-close {}", device.display())
            }
        }
    }
}

/// The payload of the error [`RecordingSys::exec`] returns: the exec was recorded, and in a real
/// system it would have replaced the process. Callers treat it as a successful handoff.
#[derive(Debug)]
pub struct ExecRecorded;

impl fmt::Display for ExecRecorded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("exec recorded by the test double")
    }
}

impl std::error::Error for ExecRecorded {}

/// True when `err` is [`RecordingSys::exec`]'s "would have succeeded".
pub fn is_exec_recorded(err: &io::Error) -> bool {
    err.get_ref().is_some_and(|e| e.is::<ExecRecorded>())
}

#[derive(Default)]
struct State {
    calls: Vec<Call>,
    /// Threads that called [`Sys::background_priority`] (their ids), until hurried.
    background_threads: Vec<i32>,
    /// (substring of the rendered call, errno): the first matching call fails.
    failures: Vec<(String, i32)>,
    /// (delay after the previous delivery, what arrives).
    uevents: VecDeque<(Duration, UeventRecv)>,
    /// (exit code, how long the process runs on the fake clock).
    run_results: VecDeque<(i32, Duration)>,
    clock: Duration,
    /// What [`Sys::wall_clock`] answers (see [`RecordingSys::set_wall_clock_to`]).
    wall_clock: Duration,
    next_loop: u32,
    /// Spawned processes that have not exited, and the last pid handed out.
    live: Vec<u32>,
    last_pid: u32,
    /// Exited, not yet reaped.
    zombies: VecDeque<(u32, ExitStatus)>,
    /// (delay after the previous delivery, signal).
    signals: VecDeque<(Duration, Signal)>,
    /// The mount calls that succeeded, in order: the double's mount table over the stand-in's
    /// own `/proc/mounts` (mounts that were there before it started).
    mount_events: Vec<MountEvent>,
    /// (delay after the previous delivery, a change applied to the stand-in tree when the
    /// link watch delivers it).
    link_changes: VecDeque<(Duration, LinkChange)>,
    /// The in-process DHCP server: answers each packet sent, after a delay.
    dhcp_server: Option<(Duration, DhcpServer)>,
    /// Answers not yet received (when they arrive on the fake clock, packet).
    dhcp_inbox: VecDeque<(Duration, Vec<u8>)>,
    /// The in-process TCP servers: what a connection to (host, port) talks to.
    tcp_server: Option<TcpServer>,
    /// rtnetlink datagrams for [`Sys::ipv6_events`], by the time they arrive (a socket queues
    /// them while nobody reads).
    ipv6_inbox: VecDeque<(Duration, Vec<u8>)>,
    /// What spawned processes hold open, as (pid, number in the child, descriptor): closed
    /// when the process exits, as the kernel would.
    child_fds: Vec<(u32, i32, rustix::fd::OwnedFd)>,
    /// What the console answers [`Sys::read_secret`], in order; None and an empty queue: no
    /// answer before the timeout.
    secrets: VecDeque<Option<Vec<u8>>>,
    /// (substring of a module image's path, what its load does to the stand-in tree): a bus
    /// driver registering the devices behind it.
    load_effects: Vec<(String, LoadEffect)>,
}

/// What a module load does to the stand-in tree (see [`RecordingSys::on_module_load`]).
type LoadEffect = Box<dyn Fn(&Path) + Send>;

/// A scripted link change: edits the stand-in tree (its `sys/class/net`).
type LinkChange = Box<dyn FnOnce(&Path) + Send>;
/// In-process TCP servers: a connection to (host, port), or why there is none.
type TcpServer = Box<dyn FnMut(&str, u16) -> io::Result<Box<dyn crate::Connection>> + Send>;
/// A fake DHCP server: the answers to one packet.
type DhcpServer = Box<dyn FnMut(&[u8]) -> Vec<Vec<u8>> + Send>;

/// A change to the mount table.
#[derive(Clone, Debug)]
enum MountEvent {
    Mount(PathBuf, MountFlags),
    Remount(PathBuf, MountFlags),
    Bind(PathBuf, PathBuf),
    Move(PathBuf, PathBuf),
    Umount(PathBuf),
}

/// The mount table: `/proc/mounts` lines, then `events` applied in order.
fn mount_table(proc_mounts: &str, events: &[MountEvent]) -> Vec<(PathBuf, MountFlags)> {
    let mut table: Vec<(PathBuf, MountFlags)> = proc_mounts
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let target = super::unescape_mount_path(w.nth(1)?);
            let (flags, _) = super::parse_mount_options(w.nth(1).unwrap_or(""));
            Some((target, flags))
        })
        .collect();
    let last =
        |t: &Vec<(PathBuf, MountFlags)>, target: &Path| t.iter().rposition(|m| m.0 == target);
    for ev in events {
        match ev {
            MountEvent::Mount(target, flags) => table.push((target.clone(), *flags)),
            MountEvent::Remount(target, flags) => match last(&table, target) {
                Some(i) => table[i].1 = *flags,
                None => table.push((target.clone(), *flags)),
            },
            MountEvent::Bind(source, target) => {
                let flags = super::deepest_mount(source, table.clone())
                    .map_or(MountFlags::empty(), |m| m.flags);
                table.push((target.clone(), flags));
            }
            MountEvent::Move(source, target) => {
                for m in table.iter_mut().filter(|m| m.0.starts_with(source)) {
                    let rest =
                        m.0.strip_prefix(source)
                            .unwrap_or(Path::new(""))
                            .to_path_buf();
                    m.0 = target.join(rest);
                }
            }
            MountEvent::Umount(target) => {
                if let Some(i) = last(&table, target) {
                    table.remove(i);
                }
            }
        }
    }
    table
}

/// Module loads that wait for a later call: `(image pattern, call pattern)`, and the loads whose
/// wait gave up (the call never came).
#[derive(Default)]
struct Holds {
    rules: Vec<(String, String)>,
    gave_up: Vec<String>,
}

/// How long a held module load waits for its call before giving up: only a guard against a
/// test hanging when the code under test never makes that call (then the test fails on
/// [`RecordingSys::held_loads_that_gave_up`]); never a measure of anything.
const HOLD_GUARD: Duration = Duration::from_secs(20);

/// The recording double. Cheap to clone; clones share the record.
#[derive(Clone)]
pub struct RecordingSys {
    root: PathBuf,
    state: Arc<Mutex<State>>,
    /// Module loads held back until a later call (tests of loads running beside other work).
    holds: Arc<(Mutex<Holds>, Condvar)>,
    release: String,
    machine: String,
    privileged: bool,
    chroot_runs: ChrootRuns,
    background_runs: bool,
}

/// What [`RecordingSys`] does with a process spawned with a chroot (a package script).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ChrootRuns {
    /// Only recorded; it "exits" with the next scripted result (tests).
    #[default]
    Record,
    /// Really run, chrooted into the stand-in tree (see the module docs); when this host cannot
    /// run it faithfully, [`Sys::run`] fails with [`NotRun`](super::NotRun).
    Execute,
    /// Not run: [`Sys::run`] fails with [`NotRun`](super::NotRun) and this reason.
    Refuse(String),
}

impl RecordingSys {
    /// A double acting on `root`, which stands in for `/`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            state: Arc::default(),
            holds: Arc::default(),
            release: "6.1.0-ramboot-test".into(),
            machine: std::env::consts::ARCH.into(),
            privileged: rustix::process::geteuid().is_root(),
            chroot_runs: ChrootRuns::Record,
            background_runs: false,
        }
    }

    /// Runs the tasks given to [`Sys::background`] inline (they are only recorded otherwise:
    /// `ramboot plan` must not write to the media it looks at).
    pub fn with_background_runs(mut self, yes: bool) -> Self {
        self.background_runs = yes;
        self
    }

    /// Answers [`Sys::privileged`] with `yes` instead of this process's effective uid.
    pub fn with_privileged(mut self, yes: bool) -> Self {
        self.privileged = yes;
        self
    }

    /// What happens to processes spawned with a chroot; others are always only recorded.
    pub fn with_chroot_runs(mut self, runs: ChrootRuns) -> Self {
        self.chroot_runs = runs;
        self
    }

    pub fn with_kernel_release(mut self, release: &str) -> Self {
        self.release = release.into();
        self
    }

    pub fn with_machine(mut self, machine: &str) -> Self {
        self.machine = machine.into();
        self
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Every call whose rendering contains `pattern` fails with `errno` (first match wins).
    pub fn fail_on(&self, pattern: &str, errno: i32) {
        self.lock().failures.push((pattern.to_string(), errno));
    }

    /// Queues a uevent (or overflow) for the next [`UeventSource::recv`].
    pub fn push_uevent(&self, ev: UeventRecv) {
        self.lock().uevents.push_back((Duration::ZERO, ev));
    }

    /// Queues a uevent that arrives `delay` after the previous one was delivered: the fake clock
    /// advances on the way, and a `recv` whose timeout ends earlier times out (as a real socket would).
    pub fn push_uevent_after(&self, delay: Duration, ev: UeventRecv) {
        self.lock().uevents.push_back((delay, ev));
    }

    /// Queues what the console types at the next [`Sys::read_secret`] (None: nothing, the
    /// timeout passes).
    pub fn push_secret(&self, answer: Option<&[u8]>) {
        self.lock().secrets.push_back(answer.map(<[u8]>::to_vec));
    }

    /// Queues the exit code of the next [`Sys::run`] (default 0, at once).
    pub fn push_run_result(&self, code: i32) {
        self.push_run_lasting(code, Duration::ZERO);
    }

    /// Queues the exit code of the next [`Sys::run`], which takes `took` on the fake clock.
    pub fn push_run_lasting(&self, code: i32, took: Duration) {
        self.lock().run_results.push_back((code, took));
    }

    /// Ends spawned process `pid` with `status`: the next [`Sys::reap`] reports it.
    pub fn exit_child(&self, pid: u32, status: ExitStatus) {
        let mut st = self.lock();
        st.live.retain(|p| *p != pid);
        st.child_fds.retain(|(p, _, _)| *p != pid);
        st.zombies.push_back((pid, status));
    }

    /// What spawned process `pid` writes to its descriptor `fd` (one it got through
    /// [`Spawn::fds`]): a line of output, a readiness notification.
    pub fn child_write(&self, pid: u32, fd: i32, bytes: &[u8]) -> io::Result<()> {
        let st = self.lock();
        let (_, _, held) = st
            .child_fds
            .iter()
            .find(|(p, n, _)| *p == pid && *n == fd)
            .ok_or_else(|| io::Error::other(format!("process {pid} has no descriptor {fd}")))?;
        rustix::io::write(held, bytes)?;
        Ok(())
    }

    /// Spawned processes that have not exited, oldest first.
    pub fn live_children(&self) -> Vec<u32> {
        self.lock().live.clone()
    }

    /// Queues a signal that arrives `delay` after the previous one was delivered (the fake
    /// clock advances on the way). With nothing queued, a wait without timeout fails: the
    /// script is over.
    pub fn push_signal_after(&self, delay: Duration, signal: Signal) {
        self.lock().signals.push_back((delay, signal));
    }

    /// Queues a link change that arrives `delay` after the previous one was delivered: the
    /// link watch then applies `change` to the stand-in root (write `sys/class/net/eth0/...`)
    /// and reports it. The fake clock advances on the way, as for uevents.
    pub fn push_link_change_after(
        &self,
        delay: Duration,
        change: impl FnOnce(&Path) + Send + 'static,
    ) {
        self.lock()
            .link_changes
            .push_back((delay, Box::new(change)));
    }

    /// Installs an in-process DHCP server: every packet a [`Sys::dhcp_socket`] sends is handed
    /// to `answer`, whose packets arrive `delay` later on the fake clock.
    pub fn serve_dhcp(
        &self,
        delay: Duration,
        answer: impl FnMut(&[u8]) -> Vec<Vec<u8>> + Send + 'static,
    ) {
        self.lock().dhcp_server = Some((delay, Box::new(answer)));
    }

    /// Installs in-process TCP servers: each [`Sys::tcp_connect`] gets what `connect` gives for
    /// its host and port (an error: the connection failed).
    pub fn serve_tcp(
        &self,
        connect: impl FnMut(&str, u16) -> io::Result<Box<dyn crate::Connection>> + Send + 'static,
    ) {
        self.lock().tcp_server = Some(Box::new(connect));
    }

    /// Queues an rtnetlink datagram (built by the test) that arrives at `at` on the fake
    /// clock: [`Sys::ipv6_events`] delivers it then, or at once when read later (queued, as
    /// in a socket). Push in time order.
    pub fn push_ipv6_event_at(&self, at: Duration, datagram: Vec<u8>) {
        self.lock().ipv6_inbox.push_back((at, datagram));
    }

    /// Advances the fake `CLOCK_BOOTTIME`.
    /// Sets what [`Sys::wall_clock`] answers (the epoch until then).
    pub fn set_wall_clock_to(&self, since_epoch: Duration) {
        self.lock().wall_clock = since_epoch;
    }

    pub fn advance(&self, by: Duration) {
        self.lock().clock += by;
    }

    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// The calls rendered as shell-like lines.
    pub fn trace(&self) -> Vec<String> {
        self.lock().calls.iter().map(ToString::to_string).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic in another test thread must not hide this record.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record(&self, call: Call) -> io::Result<()> {
        let text = call.to_string();
        let result = {
            let mut st = self.lock();
            st.calls.push(call);
            match st.failures.iter().find(|(p, _)| text.contains(p.as_str())) {
                Some((_, errno)) => Err(io::Error::from_raw_os_error(*errno)),
                None => Ok(()),
            }
        };
        // A held module load may be waiting for this call.
        let (lock, wake) = &*self.holds;
        let _holds = lock.lock().unwrap_or_else(|e| e.into_inner());
        wake.notify_all();
        result
    }

    /// Makes every [`Sys::load_module`] of an image whose path contains `image` wait, once
    /// recorded, until a call whose trace line contains `until` has been recorded. The load
    /// is then still running when that call is made: tests show work done beside a load.
    pub fn hold_module_until(&self, image: &str, until: &str) {
        let (lock, _) = &*self.holds;
        let mut holds = lock.lock().unwrap_or_else(|e| e.into_inner());
        holds.rules.push((image.into(), until.into()));
    }

    /// Runs `effect` on the stand-in tree's root after each load of a module whose image path
    /// contains `image`: a bus driver adding the devices behind it (their sysfs entries), as
    /// the kernel does while the module loads.
    pub fn on_module_load(&self, image: &str, effect: impl Fn(&Path) + Send + 'static) {
        self.lock()
            .load_effects
            .push((image.into(), Box::new(effect)));
    }

    /// Held loads that gave up waiting: their call never came while they ran.
    pub fn held_loads_that_gave_up(&self) -> Vec<String> {
        let (lock, _) = &*self.holds;
        lock.lock()
            .unwrap_or_else(|e| e.into_inner())
            .gave_up
            .clone()
    }

    /// The wait of [`Self::hold_module_until`] for a load of `image`, if a rule holds it.
    fn wait_if_held(&self, image: &str) {
        let (lock, wake) = &*self.holds;
        let mut holds = lock.lock().unwrap_or_else(|e| e.into_inner());
        let Some(until) = holds
            .rules
            .iter()
            .find(|(i, _)| image.contains(i.as_str()))
            .map(|(_, u)| u.clone())
        else {
            return;
        };
        let came = || self.trace().iter().any(|l| l.contains(until.as_str()));
        let deadline = std::time::Instant::now() + HOLD_GUARD;
        while !came() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                holds.gave_up.push(format!("{image} (waiting for {until})"));
                return;
            }
            holds = wake
                .wait_timeout(holds, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// An overlay mount shows its layers' merged tree at the target: the double copies the
    /// lower layers (lowest first), then the upper one, into the target directory.
    fn emulate_overlay(&self, target: &Path, data: &str) -> io::Result<()> {
        let option = |name: &str| {
            data.split(',')
                .find_map(|o| o.strip_prefix(name).map(str::to_string))
        };
        let mut layers: Vec<String> = option("lowerdir=")
            .map(|l| l.split(':').rev().map(str::to_string).collect())
            .unwrap_or_default();
        layers.extend(option("upperdir="));
        let to = self.path(target);
        std::fs::create_dir_all(&to)?;
        for layer in layers {
            copy_tree(&self.path(Path::new(&layer)), &to)?;
        }
        Ok(())
    }

    /// Records a mount table change (for calls that succeeded).
    fn mounted(&self, event: MountEvent) {
        self.lock().mount_events.push(event);
    }

    fn require_dir(&self, guest: &Path) -> io::Result<PathBuf> {
        let host = self.path(guest);
        if host.is_dir() {
            Ok(host)
        } else {
            Err(io::Error::from_raw_os_error(
                rustix::io::Errno::NOENT.raw_os_error(),
            ))
        }
    }
}

impl Sys for RecordingSys {
    fn path(&self, guest: &Path) -> PathBuf {
        // Lexical join: `..` cannot climb above the stand-in root.
        let mut out = self.root.clone();
        let mut depth = 0usize;
        for c in guest.components() {
            match c {
                Component::Normal(n) => {
                    out.push(n);
                    depth += 1;
                }
                Component::ParentDir if depth > 0 => {
                    out.pop();
                    depth -= 1;
                }
                _ => {}
            }
        }
        out
    }

    fn mount(
        &self,
        source: &str,
        target: &Path,
        fstype: &str,
        flags: MountFlags,
        data: &str,
    ) -> io::Result<()> {
        self.record(Call::Mount {
            source: source.into(),
            target: target.into(),
            fstype: fstype.into(),
            flags: mount_flags_text(flags),
            data: data.into(),
        })?;
        if fstype == "overlay" {
            self.emulate_overlay(target, data)?;
        }
        self.require_dir(target)?;
        self.mounted(MountEvent::Mount(target.into(), flags));
        Ok(())
    }

    fn remount(&self, target: &Path, flags: MountFlags, data: &str) -> io::Result<()> {
        self.record(Call::Remount {
            target: target.into(),
            flags: mount_flags_text(flags),
            data: data.into(),
        })?;
        self.require_dir(target)?;
        self.mounted(MountEvent::Remount(target.into(), flags));
        Ok(())
    }

    fn mount_containing(&self, path: &Path) -> io::Result<MountPoint> {
        let proc_mounts =
            std::fs::read_to_string(self.path(Path::new("/proc/mounts"))).unwrap_or_default();
        let table = mount_table(&proc_mounts, &self.lock().mount_events);
        // The stand-in tree itself is the root filesystem, read-write.
        let mut all = vec![(PathBuf::from("/"), MountFlags::empty())];
        all.extend(table);
        super::deepest_mount(path, all).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: not an absolute path", path.display()),
            )
        })
    }

    fn bind_mount(&self, source: &Path, target: &Path) -> io::Result<()> {
        self.record(Call::Bind {
            source: source.into(),
            target: target.into(),
        })?;
        self.require_dir(target)?;
        self.mounted(MountEvent::Bind(source.into(), target.into()));
        Ok(())
    }

    fn move_mount(&self, source: &Path, target: &Path) -> io::Result<()> {
        self.record(Call::Move {
            source: source.into(),
            target: target.into(),
        })?;
        if target == Path::new("/") || source == Path::new(".") {
            // switch_root's final move: the tree is already where the test looks.
            return Ok(());
        }
        let from = self.require_dir(source)?;
        let to = self.require_dir(target)?;
        // The mounted tree now shows up at the target; the source becomes an empty mount point.
        for entry in std::fs::read_dir(&from)? {
            let entry = entry?;
            std::fs::rename(entry.path(), to.join(entry.file_name()))?;
        }
        self.mounted(MountEvent::Move(source.into(), target.into()));
        Ok(())
    }

    fn umount(&self, target: &Path, detach: bool) -> io::Result<()> {
        self.record(Call::Umount {
            target: target.into(),
            detach,
        })?;
        self.mounted(MountEvent::Umount(target.into()));
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
        self.record(Call::Mknod {
            path: path.into(),
            kind,
            mode,
            major,
            minor,
        })?;
        std::fs::File::create(self.path(path)).map(drop)
    }

    fn load_module(&self, image: ModuleImage<'_>, params: &str) -> io::Result<()> {
        let name = match &image {
            ModuleImage::File { path, .. } => path.display().to_string(),
            ModuleImage::Bytes(b) => format!("<{} bytes>", b.len()),
        };
        self.record(Call::LoadModule {
            image: name.clone(),
            params: params.into(),
        })?;
        self.wait_if_held(&name);
        if let ModuleImage::File { path, .. } = image {
            // The path is a guest path, like every other path handed to the trait.
            std::fs::metadata(self.path(path))?;
        }
        let st = self.lock();
        for (_, effect) in st
            .load_effects
            .iter()
            .filter(|(i, _)| name.contains(i.as_str()))
        {
            effect(&self.root);
        }
        Ok(())
    }

    fn background(&self, name: &str, task: &mut (dyn FnMut() -> i32 + Send)) -> io::Result<()> {
        self.record(Call::Background { name: name.into() })?;
        if self.background_runs {
            task();
        }
        Ok(())
    }

    fn set_read_only_at(&self, _dir: BorrowedFd<'_>, read_only: bool) -> io::Result<()> {
        self.record(Call::ReadOnlyAt { read_only })
    }

    fn loop_attach(&self, file: &Path, read_only: bool) -> io::Result<PathBuf> {
        let device = {
            let mut st = self.lock();
            let n = st.next_loop;
            st.next_loop += 1;
            PathBuf::from(format!("/dev/loop{n}"))
        };
        self.record(Call::LoopAttach {
            file: file.into(),
            read_only,
            device: device.clone(),
        })?;
        std::fs::metadata(self.path(file))?;
        Ok(device)
    }

    fn loop_autoclear(&self, device: &Path) -> io::Result<()> {
        self.record(Call::LoopAutoclear {
            device: device.into(),
        })
    }

    fn uevents(&self, buffer_size: usize) -> io::Result<Box<dyn UeventSource>> {
        self.record(Call::Uevents { buffer_size })?;
        Ok(Box::new(ScriptedUevents { sys: self.clone() }))
    }

    fn chdir(&self, path: &Path) -> io::Result<()> {
        self.record(Call::Chdir { path: path.into() })?;
        self.require_dir(path).map(drop)
    }

    fn chroot(&self, path: &Path) -> io::Result<()> {
        self.record(Call::Chroot { path: path.into() })
    }

    fn free_initramfs(&self, keep: &Path) -> io::Result<()> {
        // Recorded only: the stand-in tree may be a user's directory (`ramboot plan`).
        self.record(Call::FreeInitramfs { keep: keep.into() })
    }

    fn attach_console(&self, device: &Path) -> io::Result<()> {
        self.record(Call::AttachConsole {
            device: device.into(),
        })
    }

    fn exec(&self, program: &Path, argv: &[OsString], _env: &[(OsString, OsString)]) -> io::Error {
        match self.record(Call::Exec {
            program: program.into(),
            argv: argv.to_vec(),
        }) {
            Err(e) => e,
            Ok(()) => io::Error::other(ExecRecorded),
        }
    }

    fn run(&self, spawn: &Spawn) -> io::Result<i32> {
        self.record(Call::Run {
            spawn: spawn.clone(),
        })?;
        match (&spawn.chroot, &self.chroot_runs) {
            (Some(chroot), ChrootRuns::Execute) => self.run_chrooted(spawn, chroot),
            (Some(_), ChrootRuns::Refuse(why)) => Err(not_run(why.clone())),
            _ => {
                let mut st = self.lock();
                let (code, took) = st.run_results.pop_front().unwrap_or_default();
                st.clock += took;
                Ok(code)
            }
        }
    }

    fn spawn(&self, spawn: &Spawn) -> io::Result<u32> {
        // Pids as a kernel would hand them out, from 100 on (predictable for tests).
        let pid = {
            let mut st = self.lock();
            st.last_pid = st.last_pid.max(99) + 1;
            st.last_pid
        };
        self.record(Call::Spawn {
            spawn: spawn.clone(),
            pid,
        })?;
        let mut held = Vec::new();
        for &(source, target) in &spawn.fds {
            // SAFETY: the caller keeps `source` open for the duration of the call.
            let fd = unsafe { rustix::fd::BorrowedFd::borrow_raw(source) };
            held.push((pid, target, rustix::io::fcntl_dupfd_cloexec(fd, 0)?));
        }
        let mut st = self.lock();
        st.live.push(pid);
        st.child_fds.extend(held);
        Ok(pid)
    }

    fn reap(&self) -> io::Result<Reaped> {
        let mut st = self.lock();
        Ok(match st.zombies.pop_front() {
            Some((pid, status)) => Reaped::Exited { pid, status },
            None if st.live.is_empty() => Reaped::NoChildren,
            None => Reaped::Running,
        })
    }

    fn kill(&self, pid: u32, signal: Signal) -> io::Result<()> {
        self.record(Call::Kill { pid, signal })
    }

    fn kill_all(&self, signal: Signal) -> io::Result<()> {
        self.record(Call::KillAll { signal })
    }

    fn set_child_subreaper(&self) -> io::Result<()> {
        self.record(Call::Subreaper)
    }

    fn set_ctrl_alt_del(&self, hard: bool) -> io::Result<()> {
        self.record(Call::CtrlAltDel { hard })
    }

    fn signals(&self, signals: &[Signal]) -> io::Result<Box<dyn SignalSource>> {
        self.record(Call::Signals {
            signals: signals.to_vec(),
        })?;
        Ok(Box::new(ScriptedSignals { sys: self.clone() }))
    }

    fn reset_signals(&self) -> io::Result<()> {
        self.record(Call::ResetSignals)
    }

    /// A real socket in the stand-in tree: tests connect to it.
    fn listen_unix(&self, path: &Path) -> io::Result<rustix::fd::OwnedFd> {
        self.record(Call::ListenUnix { path: path.into() })?;
        super::listen_unix_at(&self.path(path))
    }

    fn swapoff(&self, path: &Path) -> io::Result<()> {
        self.record(Call::Swapoff { path: path.into() })
    }

    fn reboot(&self, kind: RebootKind) -> io::Error {
        match self.record(Call::Reboot { kind }) {
            Err(e) => e,
            Ok(()) => io::Error::other("reboot recorded by the test double"),
        }
    }

    fn background_priority(&self) -> io::Result<()> {
        let tid = self.thread_id();
        let mut st = self.lock();
        if !st.background_threads.contains(&tid) {
            st.background_threads.push(tid);
        }
        Ok(())
    }

    fn thread_id(&self) -> i32 {
        rustix::thread::gettid().as_raw_nonzero().get()
    }

    fn hurry_thread(&self, tid: i32) -> io::Result<bool> {
        let was = {
            let mut st = self.lock();
            let was = st.background_threads.contains(&tid);
            st.background_threads.retain(|&t| t != tid);
            was
        };
        if was {
            self.record(Call::Hurry)?;
        }
        Ok(was)
    }

    fn sync(&self) {
        let _ = self.record(Call::Sync);
    }

    fn idle_forever(&self) {
        let _ = self.record(Call::Idle);
    }

    fn sleep(&self, duration: Duration) {
        let _ = self.record(Call::Sleep { duration });
        self.lock().clock += duration;
    }

    fn read_secret(&self, prompt: &str, timeout: Duration) -> io::Result<Option<Vec<u8>>> {
        self.record(Call::ReadSecret {
            prompt: prompt.into(),
        })?;
        let mut st = self.lock();
        let answer = st.secrets.pop_front().flatten();
        if answer.is_none() {
            st.clock += timeout;
        }
        Ok(answer)
    }

    fn write_sysctl(&self, key: &str, value: &str) -> io::Result<()> {
        self.record(Call::Sysctl {
            key: key.into(),
            value: value.into(),
        })?;
        // Like /proc/sys: only existing settings can be written.
        let path = self.path(&Path::new("/proc/sys").join(key));
        std::fs::metadata(&path)?;
        std::fs::write(path, format!("{value}\n"))
    }

    fn self_image(&self) -> io::Result<OwnedFd> {
        self.record(Call::SelfImage)?;
        // A descriptor to hand around; the double execs nothing.
        Ok(rustix::fs::memfd_create(
            "ramboot-recorded",
            MemfdFlags::CLOEXEC,
        )?)
    }

    fn exec_image(
        &self,
        _image: BorrowedFd<'_>,
        argv: &[OsString],
        _env: &[(OsString, OsString)],
    ) -> io::Error {
        match self.record(Call::ExecImage {
            argv: argv.to_vec(),
        }) {
            Err(e) => e,
            Ok(()) => io::Error::other(ExecRecorded),
        }
    }

    fn set_hostname(&self, name: &str) -> io::Result<()> {
        self.record(Call::Hostname { name: name.into() })
    }

    fn link_up(&self, interface: &str) -> io::Result<()> {
        self.record(Call::LinkUp {
            interface: interface.into(),
        })
    }

    fn link_down(&self, interface: &str) -> io::Result<()> {
        self.record(Call::LinkDown {
            interface: interface.into(),
        })
    }

    fn rename_link(&self, interface: &str, _index: u32, new_name: &str) -> io::Result<()> {
        self.record(Call::RenameLink {
            interface: interface.into(),
            to: new_name.into(),
        })?;
        // What the kernel checks, on the stand-in sysfs: the interface exists, the name is free.
        let net = self.root.join("sys/class/net");
        let (from, to) = (net.join(interface), net.join(new_name));
        if !from.is_dir() {
            return Err(io::Error::from_raw_os_error(libc::ENODEV));
        }
        if to.exists() {
            return Err(io::Error::from_raw_os_error(libc::EEXIST));
        }
        std::fs::rename(from, to)
    }

    fn link_watch(&self) -> io::Result<Box<dyn crate::LinkWatch>> {
        self.record(Call::LinkWatch)?;
        Ok(Box::new(ScriptedLinks { sys: self.clone() }))
    }

    fn add_address(
        &self,
        interface: &str,
        _index: u32,
        address: std::net::Ipv4Addr,
        prefix: u8,
    ) -> io::Result<()> {
        self.record(Call::AddAddress {
            interface: interface.into(),
            address,
            prefix,
        })
    }

    fn add_default_route(
        &self,
        interface: &str,
        _index: u32,
        gateway: std::net::Ipv4Addr,
    ) -> io::Result<()> {
        self.record(Call::AddDefaultRoute {
            interface: interface.into(),
            gateway,
        })
    }

    fn dhcp_socket(&self, interface: &str) -> io::Result<Box<dyn crate::DhcpSocket>> {
        self.record(Call::DhcpSocket {
            interface: interface.into(),
        })?;
        Ok(Box::new(ScriptedDhcp {
            sys: self.clone(),
            interface: interface.into(),
        }))
    }

    fn tcp_connect(
        &self,
        host: &str,
        port: u16,
        _timeout: Duration,
    ) -> io::Result<Box<dyn crate::Connection>> {
        self.record(Call::TcpConnect {
            host: host.into(),
            port,
        })?;
        // The server runs without the lock: it may look at the double (its clock).
        let Some(mut server) = self.lock().tcp_server.take() else {
            return Err(io::Error::from(io::ErrorKind::ConnectionRefused));
        };
        let c = server(host, port);
        self.lock().tcp_server.get_or_insert(server);
        c
    }

    fn ipv6_events(&self) -> io::Result<Box<dyn crate::Ipv6Events>> {
        self.record(Call::Ipv6Events)?;
        Ok(Box::new(ScriptedIpv6 { sys: self.clone() }))
    }

    fn swapon(&self, device: &Path) -> io::Result<()> {
        self.record(Call::Swapon {
            device: device.into(),
        })
    }

    fn add_entropy(&self, seed: &[u8], credit_bits: u32) -> io::Result<()> {
        self.record(Call::AddEntropy {
            bytes: seed.len(),
            credit_bits,
        })
    }

    fn wall_clock(&self) -> Duration {
        self.lock().wall_clock
    }

    fn set_wall_clock(&self, since_epoch: Duration) -> io::Result<()> {
        self.record(Call::SetWallClock { since_epoch })?;
        self.lock().wall_clock = since_epoch;
        Ok(())
    }

    fn block_signals(&self, signals: &[Signal]) -> io::Result<()> {
        self.record(Call::BlockSignals {
            signals: signals.to_vec(),
        })
    }

    fn open_watchdog(&self, device: &Path, timeout: Duration) -> io::Result<Box<dyn Watchdog>> {
        self.record(Call::WatchdogOpen {
            device: device.into(),
            timeout,
        })?;
        // Like the device: only there when the stand-in tree has it.
        std::fs::metadata(self.path(device))?;
        Ok(Box::new(RecordedWatchdog {
            sys: self.clone(),
            device: device.into(),
            timeout,
        }))
    }

    fn now(&self) -> Duration {
        self.lock().clock
    }

    fn kernel_release(&self) -> String {
        self.release.clone()
    }

    fn machine(&self) -> String {
        self.machine.clone()
    }

    fn privileged(&self) -> bool {
        self.privileged
    }
}

/// The first bytes of `path` in `root` (resolved as the chroot will): a `#!` line, or an ELF
/// header with its program headers.
fn head(root: &crate::fsutil::Root, path: &Path) -> io::Result<Vec<u8>> {
    let file = std::fs::File::from(root.open_at(path, rustix::fs::OFlags::RDONLY)?);
    let mut buf = Vec::new();
    io::Read::read_to_end(&mut io::Read::take(file, 4096), &mut buf)?;
    Ok(buf)
}

fn not_run(why: String) -> io::Error {
    io::Error::other(super::NotRun(why))
}

impl RecordingSys {
    /// Runs `spawn` chrooted into the stand-in tree's `chroot` ([`ChrootRuns::Execute`]).
    fn run_chrooted(&self, spawn: &Spawn, chroot: &Path) -> io::Result<i32> {
        use super::foreign::{runner_for, shebang, Runner};
        let root = self.path(chroot);
        let cwd = spawn.cwd.clone().unwrap_or_else(|| PathBuf::from("/"));
        let mut real = spawn.clone();
        real.chroot = Some(root.clone());
        // What the kernel would exec: the program or its `#!` interpreter. When that cannot be
        // read, the kernel is left to fail as it would at boot (apk's exit 127).
        let program = cwd.join(&spawn.program);
        let Ok(inside) = crate::fsutil::Root::open(&root, crate::fsutil::Resolve::Kernel) else {
            return super::RealSys.run(&real);
        };
        let Ok(first) = head(&inside, &program) else {
            return super::RealSys.run(&real);
        };
        let interpreter = shebang(&first);
        let exe = match &interpreter {
            Some((interp, _)) => match head(&inside, interp) {
                Ok(h) => h,
                Err(_) => return super::RealSys.run(&real),
            },
            None => first,
        };
        match runner_for(&exe) {
            Runner::Kernel => super::RealSys.run(&real),
            Runner::Qemu(qemu) => {
                // qemu-user does not read `#!` lines: it runs the interpreter with the script.
                let mut args: Vec<std::ffi::OsString> = Vec::new();
                if let Some((interp, arg)) = interpreter {
                    args.push(interp.into());
                    args.extend(arg.map(Into::into));
                }
                args.push(spawn.program.clone().into());
                args.extend(spawn.args.iter().cloned());
                let inside = PathBuf::from(format!("/.ramboot-qemu-user.{}", std::process::id()));
                let host_copy = root.join(inside.strip_prefix("/").expect("absolute"));
                std::fs::copy(&qemu, &host_copy).map_err(|e| {
                    not_run(format!("cannot copy {} into the root: {e}", qemu.display()))
                })?;
                real.program = inside;
                real.args = args;
                let result = super::RealSys.run(&real);
                let _ = std::fs::remove_file(&host_copy);
                match result? {
                    0 => Ok(0),
                    code => {
                        Err(not_run(format!(
                        "exit status {code} under {}, which cannot start the other {} programs \
                         a script runs without binfmt_misc",
                        qemu.display(),
                        crate::elf::parse(&exe).map(|i| i.machine_name()).unwrap_or_default()
                    )))
                    }
                }
            }
            Runner::Unavailable(why) => Err(not_run(why)),
        }
    }
}

struct ScriptedSignals {
    sys: RecordingSys,
}

impl SignalSource for ScriptedSignals {
    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<Vec<Signal>> {
        let mut st = self.sys.lock();
        if !st.zombies.is_empty() {
            return Ok(vec![Signal::CHILD]);
        }
        match (st.signals.front_mut(), timeout) {
            (Some((delay, _)), Some(t)) if *delay > t => {
                *delay -= t;
                st.clock += t;
                Ok(Vec::new())
            }
            (Some(_), _) => {
                let (delay, signal) = st.signals.pop_front().expect("front exists");
                st.clock += delay;
                Ok(vec![signal])
            }
            (None, Some(t)) => {
                st.clock += t;
                Ok(Vec::new())
            }
            (None, None) => Err(io::Error::other(
                "the recording double has no more signals scripted",
            )),
        }
    }
}

/// A watchdog that records what is done to it; it takes the timeout asked for.
struct RecordedWatchdog {
    sys: RecordingSys,
    device: PathBuf,
    timeout: Duration,
}

impl Watchdog for RecordedWatchdog {
    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn keepalive(&mut self) -> io::Result<()> {
        self.sys.record(Call::WatchdogKeepalive {
            device: self.device.clone(),
        })
    }

    fn magic_close(self: Box<Self>) -> io::Result<()> {
        self.sys.record(Call::WatchdogMagicClose {
            device: self.device.clone(),
        })
    }
}

struct ScriptedUevents {
    sys: RecordingSys,
}

impl UeventSource for ScriptedUevents {
    fn recv(&mut self, timeout: Duration) -> io::Result<UeventRecv> {
        let mut st = self.sys.lock();
        match st.uevents.front_mut() {
            Some((delay, _)) if *delay > timeout => {
                *delay -= timeout;
                st.clock += timeout;
                Ok(UeventRecv::Timeout)
            }
            Some(_) => {
                let (delay, ev) = st.uevents.pop_front().expect("front exists");
                st.clock += delay;
                Ok(ev)
            }
            None => {
                st.clock += timeout;
                Ok(UeventRecv::Timeout)
            }
        }
    }
}

/// Copies the tree under `from` into `to` (files, links, directories), overwriting.
fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type()?;
        if kind.is_dir() {
            std::fs::create_dir_all(&dst)?;
            copy_tree(&src, &dst)?;
        } else if kind.is_symlink() {
            let _ = std::fs::remove_file(&dst);
            std::os::unix::fs::symlink(std::fs::read_link(&src)?, &dst)?;
        } else if kind.is_file() {
            let _ = std::fs::remove_file(&dst);
            std::fs::copy(&src, &dst)?;
        }
    }
    Ok(())
}

/// Delivers the scripted link changes on the fake clock.
struct ScriptedLinks {
    sys: RecordingSys,
}

impl crate::LinkWatch for ScriptedLinks {
    /// The scripted uevent or link change due first (a tie goes to the link change).
    fn wait_or_uevent(
        &mut self,
        uevents: &mut dyn UeventSource,
        timeout: Duration,
    ) -> io::Result<Option<UeventRecv>> {
        let mut st = self.sys.lock();
        let link = st.link_changes.front().map(|c| c.0);
        let uevent = st.uevents.front().map(|e| e.0);
        let step = [link, uevent, Some(timeout)].into_iter().flatten().min();
        let step = step.unwrap_or(timeout);
        if link == Some(step) || uevent != Some(step) {
            if let Some(front) = st.uevents.front_mut() {
                front.0 -= step;
            }
            drop(st);
            return Ok((!self.wait(timeout)?).then_some(UeventRecv::Timeout));
        }
        if let Some(front) = st.link_changes.front_mut() {
            front.0 -= step;
        }
        drop(st);
        uevents.recv(timeout).map(Some)
    }

    fn wait(&mut self, timeout: Duration) -> io::Result<bool> {
        let mut st = self.sys.lock();
        match st.link_changes.front_mut() {
            Some((delay, _)) if *delay > timeout => {
                *delay -= timeout;
                st.clock += timeout;
                Ok(false)
            }
            Some(_) => {
                let (delay, change) = st.link_changes.pop_front().expect("front exists");
                st.clock += delay;
                drop(st);
                change(&self.sys.root);
                Ok(true)
            }
            None => {
                st.clock += timeout;
                Ok(false)
            }
        }
    }
}

/// Delivers the queued IPv6 datagrams on the fake clock.
struct ScriptedIpv6 {
    sys: RecordingSys,
}

impl crate::Ipv6Events for ScriptedIpv6 {
    fn recv(&mut self, timeout: Duration) -> io::Result<Option<Vec<u8>>> {
        let mut st = self.sys.lock();
        match st.ipv6_inbox.front() {
            Some((at, _)) if *at <= st.clock + timeout => {
                let (at, datagram) = st.ipv6_inbox.pop_front().expect("front exists");
                st.clock = st.clock.max(at);
                Ok(Some(datagram))
            }
            _ => {
                st.clock += timeout;
                Ok(None)
            }
        }
    }
}

/// A DHCP socket talking to [`RecordingSys::serve_dhcp`]'s server on the fake clock.
struct ScriptedDhcp {
    sys: RecordingSys,
    interface: String,
}

impl crate::DhcpSocket for ScriptedDhcp {
    fn send(&mut self, packet: &[u8]) -> io::Result<()> {
        self.sys.record(Call::DhcpSend {
            interface: self.interface.clone(),
            packet: packet.to_vec(),
        })?;
        // The server runs without the lock: it may look at the double (its clock).
        let Some((delay, mut server)) = self.sys.lock().dhcp_server.take() else {
            return Ok(());
        };
        let answers = server(packet);
        let mut st = self.sys.lock();
        st.dhcp_server.get_or_insert((delay, server));
        let at = st.clock + delay;
        for a in answers {
            st.dhcp_inbox.push_back((at, a));
        }
        Ok(())
    }

    fn recv(&mut self, timeout: Duration) -> io::Result<Option<Vec<u8>>> {
        let mut st = self.sys.lock();
        match st.dhcp_inbox.front() {
            Some((at, _)) if *at <= st.clock + timeout => {
                let (at, packet) = st.dhcp_inbox.pop_front().expect("front exists");
                st.clock = st.clock.max(at);
                Ok(Some(packet))
            }
            _ => {
                st.clock += timeout;
                Ok(None)
            }
        }
    }

    /// The IPv6 events up to the next answer's arrival (a tie goes to IPv6), then the answer.
    fn recv_or_ipv6(
        &mut self,
        ipv6: &mut dyn crate::Ipv6Events,
        timeout: Duration,
    ) -> io::Result<crate::Heard> {
        let due = {
            let st = self.sys.lock();
            st.dhcp_inbox
                .front()
                .map(|(at, _)| at.saturating_sub(st.clock))
        };
        let step = due.map_or(timeout, |d| d.min(timeout));
        if let Some(d) = ipv6.recv(step)? {
            return Ok(crate::Heard::Ipv6(d));
        }
        // The step ended where the answer is due, or at the timeout.
        Ok(self
            .recv(Duration::ZERO)?
            .map_or(crate::Heard::Nothing, crate::Heard::Dhcp))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mount_table_follows_the_recorded_calls() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for d in [
            "proc",
            "media/mmcblk0p1",
            "media/sda1",
            "mnt",
            "sysroot/media",
        ] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::write(
            root.join("proc/mounts"),
            "rootfs / rootfs rw 0 0\n/dev/mmcblk0p1 /media/mmcblk0p1 vfat ro,nodev 0 0\n",
        )
        .unwrap();
        let sys = RecordingSys::new(root);
        let at = |p: &str| {
            let m = sys.mount_containing(Path::new(p)).unwrap();
            (m.target.display().to_string(), mount_flags_text(m.flags))
        };
        let owned = |t: &str, f: &str| (t.to_string(), f.to_string());
        // Mounts that were there before the double started.
        assert_eq!(
            at("/media/mmcblk0p1/cache"),
            owned("/media/mmcblk0p1", "ro,nodev")
        );
        assert_eq!(at("/etc"), owned("/", ""));
        sys.remount(Path::new("/media/mmcblk0p1"), MountFlags::NODEV, "")
            .unwrap();
        assert_eq!(at("/media/mmcblk0p1/x"), owned("/media/mmcblk0p1", "nodev"));
        // Recorded mounts, a move carrying its submounts, a bind, an unmount.
        sys.mount(
            "/dev/sda1",
            Path::new("/media/sda1"),
            "ext4",
            MountFlags::RDONLY,
            "",
        )
        .unwrap();
        sys.bind_mount(Path::new("/media/sda1"), Path::new("/mnt"))
            .unwrap();
        assert_eq!(at("/mnt/y"), owned("/mnt", "ro"));
        sys.move_mount(Path::new("/media"), Path::new("/sysroot/media"))
            .unwrap();
        assert_eq!(at("/media/sda1"), owned("/", ""));
        assert_eq!(
            at("/sysroot/media/sda1/z"),
            owned("/sysroot/media/sda1", "ro")
        );
        sys.umount(Path::new("/sysroot/media/sda1"), false).unwrap();
        assert_eq!(at("/sysroot/media/sda1/z"), owned("/", ""));
        // A call that failed changes nothing.
        sys.fail_on("remount", 1);
        assert!(sys
            .remount(Path::new("/mnt"), MountFlags::empty(), "")
            .is_err());
        assert_eq!(at("/mnt"), owned("/mnt", "ro"));
    }

    #[test]
    fn records_and_fails_as_scripted() {
        let dir = tempfile::tempdir().unwrap();
        let sys = RecordingSys::new(dir.path());
        std::fs::create_dir_all(dir.path().join("sysroot")).unwrap();
        sys.mount(
            "tmpfs",
            Path::new("/sysroot"),
            "tmpfs",
            MountFlags::empty(),
            "mode=0755",
        )
        .unwrap();
        assert_eq!(
            sys.trace(),
            vec!["mount -t tmpfs -o mode=0755 tmpfs /sysroot"]
        );
        // A missing mount point fails like the kernel would.
        assert!(sys
            .mount("x", Path::new("/nope"), "ext4", MountFlags::RDONLY, "")
            .is_err());
        sys.fail_on("/dev/vda", 19);
        let e = sys
            .mount(
                "/dev/vda",
                Path::new("/sysroot"),
                "ext4",
                MountFlags::RDONLY,
                "",
            )
            .unwrap_err();
        assert_eq!(e.raw_os_error(), Some(19));
        assert_eq!(
            sys.path(Path::new("/../../etc/passwd")),
            dir.path().join("etc/passwd")
        );
    }

    #[test]
    fn move_carries_files() {
        let dir = tempfile::tempdir().unwrap();
        let sys = RecordingSys::new(dir.path());
        std::fs::create_dir_all(dir.path().join("media/vda1")).unwrap();
        std::fs::write(dir.path().join("media/vda1/x"), b"1").unwrap();
        std::fs::create_dir_all(dir.path().join("sysroot/media/vda1")).unwrap();
        sys.move_mount(Path::new("/media/vda1"), Path::new("/sysroot/media/vda1"))
            .unwrap();
        assert!(dir.path().join("sysroot/media/vda1/x").exists());
        assert!(!dir.path().join("media/vda1/x").exists());
        let err = sys.exec(Path::new("/sbin/init"), &["/sbin/init".into()], &[]);
        assert!(is_exec_recorded(&err));
    }

    #[test]
    fn timed_uevents_advance_the_clock() {
        let dir = tempfile::tempdir().unwrap();
        let sys = RecordingSys::new(dir.path());
        let ev = || {
            UeventRecv::Event(super::super::Uevent {
                action: "add".into(),
                ..Default::default()
            })
        };
        sys.push_uevent_after(Duration::from_millis(300), ev());
        let mut src = sys.uevents(1).unwrap();
        assert_eq!(
            src.recv(Duration::from_millis(200)).unwrap(),
            UeventRecv::Timeout
        );
        assert_eq!(sys.now(), Duration::from_millis(200));
        assert_eq!(src.recv(Duration::from_millis(200)).unwrap(), ev());
        assert_eq!(sys.now(), Duration::from_millis(300));
    }
}
