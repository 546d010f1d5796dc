//! The supervisor's life on the recording double, with its fake clock: no real sleeps.

use super::*;
use ramboot_sys::RecordingSys;

const SECOND: Duration = Duration::from_secs(1);

struct Rig {
    _dir: tempfile::TempDir,
    sys: RecordingSys,
    sup: Supervisor,
    /// How much of the trace the test has looked at.
    seen: usize,
}

impl Rig {
    fn new(inittab: Option<&str>) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::create_dir_all(dir.path().join("proc")).unwrap();
        std::fs::create_dir_all(dir.path().join("media/sda1")).unwrap();
        if let Some(text) = inittab {
            std::fs::write(dir.path().join("etc/inittab"), text).unwrap();
        }
        std::fs::write(
            dir.path().join("proc/mounts"),
            "/dev/root / ext4 rw 0 0\nproc /proc proc rw 0 0\n\
             /dev/sda1 /media/sda1 vfat rw 0 0\ntmpfs /media/my\\040card tmpfs rw 0 0\n",
        )
        .unwrap();
        let sys = RecordingSys::new(dir.path());
        let sup = Supervisor::new(Config {
            env: vec![("PATH".into(), "/bin".into())],
            ..Config::default()
        });
        Rig {
            _dir: dir,
            sys,
            sup,
            seen: 0,
        }
    }

    fn start(&mut self) {
        self.sup.start(&self.sys);
    }

    /// The calls since the last look.
    fn new_calls(&mut self) -> Vec<String> {
        let trace = self.sys.trace();
        let new = trace[self.seen..].to_vec();
        self.seen = trace.len();
        new
    }

    fn exit(&mut self, pid: u32, status: ExitStatus) {
        self.sys.exit_child(pid, status);
        self.drain();
    }

    /// What the event loop does after a wake-up: reap everything, then fire timers.
    fn drain(&mut self) {
        loop {
            match self.sys.reap().unwrap() {
                ramboot_sys::Reaped::Exited { pid, status } => {
                    self.sup.handle(&self.sys, Event::Exited { pid, status })
                }
                ramboot_sys::Reaped::Running => break,
                ramboot_sys::Reaped::NoChildren => {
                    self.sup.handle(&self.sys, Event::NoChildren);
                    break;
                }
            }
        }
        self.sup.handle(&self.sys, Event::Tick);
    }

    fn request(&mut self, r: Request) {
        self.sup.handle(&self.sys, Event::Request(r));
        self.drain();
    }

    /// Advances the clock to the next deadline and fires it.
    fn sleep_until_deadline(&mut self) -> Duration {
        let at = self.sup.next_deadline().expect("a timer is set");
        let now = self.sys.now();
        self.sys.advance(at.saturating_sub(now));
        self.drain();
        at
    }
}

const TABLE: &str = "\
::sysinit:/sbin/openrc sysinit
::sysinit:/sbin/openrc boot
::wait:/sbin/openrc default
::once:/usr/bin/logger booted
tty1::respawn:/sbin/getty 38400 tty1
ttyS0::askfirst:-/bin/sh
::ctrlaltdel:/sbin/reboot
::shutdown:/sbin/openrc shutdown
::restart:/sbin/init
";

/// The rig after boot: sysinit, sysinit, wait done; the once entry (103) ended; getty (104)
/// and the askfirst shell (105) running.
fn booted() -> Rig {
    let mut r = Rig::new(Some(TABLE));
    r.start();
    for pid in 100..=103 {
        r.exit(pid, ExitStatus::Code(0));
    }
    r.new_calls();
    r
}

#[test]
fn boot_runs_sysinit_then_wait_each_waited_then_once_and_respawners() {
    let mut r = Rig::new(Some(TABLE));
    r.start();
    assert_eq!(r.new_calls(), ["spawn /sbin/openrc sysinit (pid 100)"]);
    // An orphan reaped meanwhile changes nothing.
    r.sup.handle(
        &r.sys,
        Event::Exited {
            pid: 4242,
            status: ExitStatus::Code(0),
        },
    );
    assert!(r.new_calls().is_empty());
    r.exit(100, ExitStatus::Code(1));
    assert_eq!(r.new_calls(), ["spawn /sbin/openrc boot (pid 101)"]);
    assert!(r
        .sup
        .journal()
        .any(|l| l == "sysinit '/sbin/openrc sysinit' ended: exit status 1"));
    r.exit(101, ExitStatus::Code(0));
    assert_eq!(r.new_calls(), ["spawn /sbin/openrc default (pid 102)"]);
    r.exit(102, ExitStatus::Code(0));
    assert_eq!(
        r.new_calls(),
        [
            "spawn /usr/bin/logger booted (pid 103)",
            "spawn <>/dev/tty1 /sbin/getty 38400 tty1 (pid 104)",
            "spawn <>/dev/ttyS0 askfirst /bin/sh (as -/bin/sh) (pid 105)",
        ]
    );
    // The once entry is not restarted.
    r.exit(103, ExitStatus::Code(0));
    assert!(r.new_calls().is_empty());
    assert_eq!(r.sup.next_deadline(), None, "idle: no timer at all");
}

#[test]
fn a_failing_respawner_backs_off_exponentially_up_to_the_cap() {
    let mut r = booted();
    let mut pid = 104;
    let mut delays = Vec::new();
    for _ in 0..10 {
        let before = r.sys.now();
        r.exit(pid, ExitStatus::Code(1));
        if r.new_calls().is_empty() {
            r.sleep_until_deadline();
            let calls = r.new_calls();
            assert_eq!(calls.len(), 1, "{}", calls.join("; "));
            assert!(calls[0].contains("getty"));
        }
        delays.push((r.sys.now() - before).as_secs());
        pid = *r.sys.live_children().last().unwrap();
    }
    assert_eq!(delays, [0, 1, 2, 4, 8, 16, 32, 60, 60, 60]);
    assert!(r.sup.journal().any(|l| l
        == "respawn '/sbin/getty 38400 tty1' on /dev/tty1 ended: exit status 1; \
            3 quick exits in a row, restarting in 2s (the delay doubles up to 60s)"));
    // Once it stays up for a while, the next exit restarts it at once again.
    r.sys.advance(Duration::from_secs(11));
    r.exit(pid, ExitStatus::Signal(9));
    assert_eq!(r.new_calls().len(), 1);
}

#[test]
fn a_respawner_that_cannot_start_backs_off_too() {
    let mut r = Rig::new(Some("tty9::respawn:/sbin/getty tty9\n"));
    r.sys.fail_on("getty", 2);
    r.start();
    r.drain();
    assert_eq!(r.new_calls().len(), 1, "one attempt, then a timer");
    assert_eq!(r.sleep_until_deadline(), SECOND);
    assert_eq!(r.sleep_until_deadline(), 3 * SECOND);
    assert!(r
        .sup
        .journal()
        .any(|l| l.starts_with("cannot start respawn '/sbin/getty tty9'")));
}

#[test]
fn poweroff_runs_shutdown_actions_then_term_grace_kill_unmount_reboot() {
    let mut r = booted();
    std::fs::write(
        r.sys.path(Path::new("/proc/swaps")),
        "Filename\tType\tSize\tUsed\tPriority\n/dev/sda2 partition 1048572 0 -2\n\
         /media/sda1/swap\\040file file 65532 0 -3\n",
    )
    .unwrap();
    r.request(Request::PowerOff);
    assert_eq!(r.new_calls(), ["spawn /sbin/openrc shutdown (pid 106)"]);
    // A getty dying now is not restarted.
    r.exit(104, ExitStatus::Code(0));
    assert!(r.new_calls().is_empty());
    // A second request is ignored.
    r.request(Request::Reboot);
    r.exit(106, ExitStatus::Code(0));
    assert_eq!(r.new_calls(), ["sync", "kill -TERM -1", "kill -CONT -1"]);
    let term_at = r.sys.now();
    assert_eq!(r.sleep_until_deadline(), term_at + 5 * SECOND);
    assert_eq!(r.new_calls(), ["kill -KILL -1"]);
    r.exit(105, ExitStatus::Signal(9));
    assert_eq!(
        r.new_calls(),
        [
            "sync",
            "swapoff /dev/sda2",
            "swapoff /media/sda1/swap file",
            "umount /media/my card",
            "umount /media/sda1",
            "umount /proc",
            "mount -o remount,ro /",
            "sync",
            "reboot poweroff",
        ]
    );
    assert_eq!(
        r.sup.outcome(),
        Some(&Outcome::Failed),
        "the double returns"
    );
    assert!(r
        .sup
        .journal()
        .any(|l| l == "The system is going down for poweroff"));
}

#[test]
fn the_grace_period_ends_when_no_child_is_left_and_busy_mounts_go_read_only() {
    let mut r = booted();
    r.sys.fail_on("umount /media/sda1", 16);
    r.request(Request::Halt);
    r.exit(106, ExitStatus::Code(0));
    r.new_calls();
    r.exit(104, ExitStatus::Signal(15));
    assert!(r.new_calls().is_empty(), "one child left");
    r.exit(105, ExitStatus::Signal(15));
    let calls = r.new_calls();
    assert!(
        !calls.iter().any(|c| c.contains("KILL")),
        "{}",
        calls.join("; ")
    );
    assert!(calls.contains(&"mount -o remount,ro /media/sda1".to_string()));
    assert_eq!(calls.last().unwrap(), "reboot halt");
    assert!(r
        .sup
        .journal()
        .any(|l| l.starts_with("cannot unmount /media/sda1: ")
            && l.ends_with("(os error 16); remounted read-only")));
}

#[test]
fn busy_memory_filesystems_and_a_tmpfs_root_are_left_quietly_at_power_down() {
    let mut r = booted();
    std::fs::write(
        r.sys.path(Path::new("/proc/mounts")),
        "rootfs / rootfs rw 0 0\ndevtmpfs /dev devtmpfs rw 0 0\nproc /proc proc rw 0 0\n\
         /dev/sda1 /media/sda1 vfat rw 0 0\n",
    )
    .unwrap();
    r.sys.fail_on("umount /dev", 16);
    r.sys.fail_on("umount /proc", 16);
    r.request(Request::PowerOff);
    for pid in 104..=106 {
        r.exit(pid, ExitStatus::Code(0));
    }
    let calls = r.new_calls();
    let unmounts: Vec<&String> = calls.iter().filter(|c| c.contains("mount")).collect();
    assert_eq!(
        unmounts,
        ["umount /media/sda1", "umount /proc", "umount /dev"],
        "no remount of /dev, /proc or the rootfs root"
    );
    assert_eq!(calls.last().unwrap(), "reboot poweroff");
    let warnings: Vec<&str> = r.sup.journal().filter(|l| l.contains("mount")).collect();
    assert!(warnings.is_empty(), "{}", warnings.join("; "));
}

fn save_for_test(sys: &dyn Sys) -> Vec<String> {
    std::fs::write(sys.path(Path::new("/saved")), "").unwrap();
    vec!["state saved".into()]
}

#[test]
fn state_is_saved_once_every_process_is_gone_and_before_the_unmounts() {
    let mut r = booted();
    r.sup.config.save_state = Some(save_for_test);
    r.sys.fail_on("umount /media/sda1", 16);
    r.request(Request::Reboot);
    r.exit(106, ExitStatus::Code(0));
    r.exit(104, ExitStatus::Code(0));
    assert!(!r.sys.path(Path::new("/saved")).exists(), "a child is left");
    r.exit(105, ExitStatus::Code(0));
    assert!(r.sys.path(Path::new("/saved")).exists());
    let journal: Vec<&str> = r.sup.journal().collect();
    let saved = journal.iter().position(|l| *l == "state saved").unwrap();
    let unmount = journal
        .iter()
        .position(|l| l.starts_with("cannot unmount /media/sda1"))
        .unwrap();
    assert!(saved < unmount, "{}", journal.join("; "));
}

#[test]
fn a_supervisor_that_is_not_pid1_reports_the_end_instead_of_rebooting() {
    let mut r = booted();
    r.sup.config.pid1 = false;
    r.request(Request::Reboot);
    r.exit(106, ExitStatus::Code(0));
    r.exit(104, ExitStatus::Code(0));
    r.exit(105, ExitStatus::Code(0));
    let calls = r.new_calls();
    assert!(!calls
        .iter()
        .any(|c| c.contains("umount") || c.contains("reboot")));
    assert_eq!(r.sup.outcome(), Some(&Outcome::Reboot(RebootKind::Restart)));
}

#[test]
fn a_shutdown_during_sysinit_does_not_wait_for_it() {
    let mut r = Rig::new(Some(TABLE));
    r.start();
    r.new_calls();
    r.request(Request::Reboot);
    assert_eq!(r.new_calls(), ["spawn /sbin/openrc shutdown (pid 101)"]);
    r.exit(101, ExitStatus::Code(0));
    assert_eq!(r.new_calls()[1], "kill -TERM -1");
    // The killed sysinit does not let the boot go on.
    r.exit(100, ExitStatus::Signal(15));
    let calls = r.new_calls();
    assert!(!calls.iter().any(|c| c.contains("openrc default")));
    assert_eq!(calls.last().unwrap(), "reboot restart");
}

#[test]
fn ctrl_alt_del_runs_the_ctrlaltdel_entries_waited() {
    let mut r = booted();
    r.request(Request::CtrlAltDel);
    assert_eq!(r.new_calls(), ["spawn /sbin/reboot (pid 106)"]);
    // What /sbin/reboot does: SIGTERM to PID 1.
    r.request(Request::Reboot);
    assert_eq!(r.new_calls(), ["spawn /sbin/openrc shutdown (pid 107)"]);
}

#[test]
fn sigquit_execs_the_restart_entry_after_killing_everything() {
    let mut r = booted();
    r.request(Request::Restart);
    r.exit(106, ExitStatus::Code(0));
    r.exit(104, ExitStatus::Code(0));
    r.exit(105, ExitStatus::Code(0));
    let calls = r.new_calls();
    // The restart entry starts with no signal blocked and default dispositions.
    assert_eq!(
        calls[calls.len() - 2..],
        ["signals: none blocked, all default", "exec /sbin/init"]
    );
    assert!(!calls.iter().any(|c| c.contains("umount")));
    assert_eq!(r.sup.outcome(), Some(&Outcome::Exec("/sbin/init".into())));

    let mut r = Rig::new(Some("::sysinit:/bin/true\n"));
    r.start();
    r.request(Request::Restart);
    assert!(r.sup.journal().any(|l| l.contains("no restart entry")));
    assert_eq!(r.sup.outcome(), None);
}

/// When the restart entry cannot be exec'd, PID 1 blocks its signals again and runs the
/// table again.
#[test]
fn a_failed_restart_exec_blocks_the_signals_again() {
    let mut r = booted();
    r.sys.fail_on("exec /sbin/init", 2);
    r.request(Request::Restart);
    r.exit(106, ExitStatus::Code(0));
    r.exit(104, ExitStatus::Code(0));
    r.exit(105, ExitStatus::Code(0));
    let calls = r.new_calls();
    let reset = calls
        .iter()
        .position(|c| c.starts_with("signals:"))
        .unwrap();
    assert_eq!(calls[reset + 1], "exec /sbin/init");
    assert!(calls[reset + 2].starts_with("signalfd CHLD,USR1,USR2,TERM,INT,HUP,QUIT"));
    assert!(
        calls[reset + 3].contains("openrc sysinit"),
        "{}",
        calls.join("; ")
    );
}

#[test]
fn sighup_reloads_keeping_running_processes_and_starting_new_entries() {
    let mut r = booted();
    std::fs::write(
        r.sys.path(Path::new("/etc/inittab")),
        "tty1::respawn:/sbin/getty 38400 tty1\ntty2::respawn:/sbin/getty 38400 tty2\nbad\n",
    )
    .unwrap();
    r.request(Request::Reload);
    assert_eq!(
        r.new_calls(),
        ["spawn <>/dev/tty2 /sbin/getty 38400 tty2 (pid 106)"]
    );
    assert!(r
        .sup
        .journal()
        .any(|l| l == "/etc/inittab: line 3 skipped: expected id:runlevels:action:process"));
    // The removed askfirst shell is left alone and not restarted; the kept getty is.
    r.exit(105, ExitStatus::Code(0));
    assert!(r.new_calls().is_empty());
    r.exit(104, ExitStatus::Code(0));
    assert_eq!(
        r.new_calls(),
        ["spawn <>/dev/tty1 /sbin/getty 38400 tty1 (pid 107)"]
    );
}

#[test]
fn without_an_inittab_busybox_table_runs() {
    let mut r = Rig::new(None);
    r.start();
    assert_eq!(r.new_calls(), ["spawn /etc/init.d/rcS (pid 100)"]);
    r.exit(100, ExitStatus::Code(0));
    let calls = r.new_calls();
    assert_eq!(calls.len(), 4);
    assert_eq!(calls[0], "spawn askfirst /bin/sh (as -/bin/sh) (pid 101)");
    assert!(r
        .sup
        .journal()
        .any(|l| l == "/etc/inittab: not found; using busybox's built-in table"));
}

#[test]
fn backoff_delays() {
    let b = Backoff::default();
    let d: Vec<u64> = (1..=9).map(|n| b.delay(n).as_secs()).collect();
    assert_eq!(d, [0, 1, 2, 4, 8, 16, 32, 60, 60]);
    assert_eq!(b.delay(u32::MAX), b.max);
}

fn ready_for_test(sys: &dyn Sys) -> Vec<String> {
    let marker = sys.path(Path::new("/ready"));
    let n = std::fs::read_to_string(&marker).map_or(0, |t| t.len());
    std::fs::write(&marker, "x".repeat(n + 1)).unwrap();
    vec!["boot confirmed".into()]
}

/// Issue 13 (3): in service mode the boot confirms itself (last-known-good) once, when the
/// boot entries are done and every service is ready; not while `openrc default` still runs.
#[test]
fn the_boot_is_confirmed_once_when_the_boot_entries_are_done() {
    let mut r = Rig::new(Some(TABLE));
    r.sup.config.on_ready = Some(ready_for_test);
    r.start();
    let marker = r.sys.path(Path::new("/ready"));
    for pid in 100..=101 {
        r.exit(pid, ExitStatus::Code(0));
        assert!(!marker.exists(), "confirmed during the boot entries");
    }
    r.exit(102, ExitStatus::Code(0));
    r.exit(103, ExitStatus::Code(0));
    r.request(Request::Reload);
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "x", "once");
    assert!(r.sup.journal().any(|l| l == "boot confirmed"));
}
