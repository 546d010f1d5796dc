//! The watchdog on the recording double's fake clock: fed on time, protected through the
//! shutdown, magic-closed just before `reboot(2)`.

use super::*;
use ramboot_sys::RecordingSys;

const SECOND: Duration = Duration::from_secs(1);

struct Rig {
    _dir: tempfile::TempDir,
    sys: RecordingSys,
    sup: Supervisor,
}

impl Rig {
    fn new(device: bool, timeout: u64, pid1: bool) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        for d in ["etc", "proc", "dev"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        std::fs::write(
            dir.path().join("etc/inittab"),
            "tty1::respawn:/sbin/getty 38400 tty1\n::restart:/sbin/init\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("proc/mounts"), "/dev/root / ext4 rw 0 0\n").unwrap();
        if device {
            std::fs::write(dir.path().join("dev/watchdog"), b"").unwrap();
        }
        let sys = RecordingSys::new(dir.path());
        let mut sup = Supervisor::new(Config {
            env: vec![("PATH".into(), "/bin".into())],
            watchdog: Some(WatchdogConfig::new(SECOND * timeout as u32)),
            pid1,
            ..Config::default()
        });
        sup.start(&sys);
        Rig {
            _dir: dir,
            sys,
            sup,
        }
    }

    /// Advances the clock to the next deadline and lets the loop run, as the event loop does.
    fn sleep_until_deadline(&mut self) -> Duration {
        let at = self.sup.next_deadline().expect("a timer is set");
        self.sys.advance(at.saturating_sub(self.sys.now()));
        self.sup.handle(&self.sys, Event::Tick);
        at
    }

    /// How many keepalives so far.
    fn feeds(&self) -> usize {
        self.sys
            .trace()
            .iter()
            .filter(|l| l.starts_with("watchdog-keepalive"))
            .count()
    }

    fn watchdog_lines(&self) -> Vec<String> {
        self.sup
            .journal()
            .filter(|l| l.starts_with("watchdog:"))
            .map(str::to_string)
            .collect()
    }
}

#[test]
fn the_watchdog_is_fed_every_third_of_its_timeout_by_the_supervisor_timer() {
    let mut r = Rig::new(true, 30, true);
    assert!(r
        .sys
        .trace()
        .contains(&"watchdog-open /dev/watchdog timeout=30s".to_string()));
    assert_eq!(
        r.watchdog_lines(),
        ["watchdog: /dev/watchdog armed with a 30 s timeout, fed every 10 s"]
    );
    // Nothing else is due: the feed is what wakes the loop, every 10 s, never later.
    let mut at = Vec::new();
    for _ in 0..4 {
        at.push(r.sleep_until_deadline());
        assert_eq!(r.feeds(), at.len());
    }
    assert_eq!(at, [10, 20, 30, 40].map(|s| s * SECOND));
    // Woken early by something else: not fed before it is due.
    r.sys.advance(SECOND);
    r.sup.handle(&r.sys, Event::Tick);
    assert_eq!(r.feeds(), 4);
}

#[test]
fn poweroff_feeds_through_the_shutdown_and_magic_closes_just_before_reboot() {
    let mut r = Rig::new(true, 3, true);
    r.sup.handle(&r.sys, Event::Request(Request::PowerOff));
    let fed_before = r.feeds();
    // The getty ignores SIGTERM: the 5 s grace and the 2 s kill wait run to their end.
    while r.sup.outcome().is_none() {
        r.sleep_until_deadline();
    }
    assert!(r.feeds() >= fed_before + 6, "fed {} times", r.feeds());
    let trace = r.sys.trace();
    let close = trace
        .iter()
        .position(|l| l == "watchdog-magic-close /dev/watchdog")
        .expect("magic close");
    assert_eq!(trace[close + 1], "reboot poweroff", "{}", trace.join("\n"));
    assert_eq!(
        trace
            .iter()
            .filter(|l| l.starts_with("watchdog-magic-close"))
            .count(),
        1
    );
    // Everything else of the shutdown happened while it was still watched.
    let unmount = trace.iter().position(|l| l.contains("remount")).unwrap();
    let kill = trace.iter().position(|l| l == "kill -KILL -1").unwrap();
    assert!(kill < unmount && unmount < close, "{}", trace.join("\n"));
    assert!(!trace[close + 1..]
        .iter()
        .any(|l| l.starts_with("watchdog-keepalive")));
    assert_eq!(
        r.watchdog_lines().last().map(String::as_str),
        Some("watchdog: /dev/watchdog stopped")
    );
}

#[test]
fn a_restart_closes_it_before_exec() {
    let mut r = Rig::new(true, 60, true);
    r.sup.handle(&r.sys, Event::Request(Request::Restart));
    while r.sup.outcome().is_none() {
        r.sleep_until_deadline();
    }
    let trace = r.sys.trace();
    let close = trace
        .iter()
        .position(|l| l.starts_with("watchdog-magic-close"))
        .expect("magic close");
    assert!(
        trace[close + 1].starts_with("exec /sbin/init"),
        "{}",
        trace.join("\n")
    );
}

#[test]
fn a_supervisor_that_is_not_pid1_closes_it_at_its_end() {
    let mut r = Rig::new(true, 60, false);
    r.sup.handle(&r.sys, Event::Request(Request::Reboot));
    while r.sup.outcome().is_none() {
        r.sleep_until_deadline();
    }
    assert_eq!(
        r.sup.outcome(),
        Some(&Outcome::Reboot(ramboot_sys::RebootKind::Restart))
    );
    assert!(r
        .sys
        .trace()
        .contains(&"watchdog-magic-close /dev/watchdog".to_string()));
}

#[test]
fn a_missing_device_is_one_warning_and_no_timer() {
    let r = Rig::new(false, 60, true);
    assert_eq!(
        r.watchdog_lines(),
        [
            "watchdog: ramboot_watchdog is set but /dev/watchdog does not exist (no driver \
          loaded?); nothing is watched"
        ]
    );
    assert_eq!(r.sup.next_deadline(), None);
}
