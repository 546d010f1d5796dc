//! The supervisor on the real kernel as an ordinary process made child subreaper: real short
//! processes from an inittab in a temp dir, orphans reaped, a failing respawn entry restarted
//! with growing delays, and a poweroff request (SIGUSR2) that runs the shutdown entry and
//! TERMs what is left. Nothing outside the temp dir is touched: not PID 1, the supervisor only
//! signals its own descendants and neither unmounts nor reboots.
//!
//! Its own `main` (harness = false): the signals must be blocked in every thread, and libtest
//! runs tests on threads of its own.

use ramboot::supervise::{self, Backoff, Config, Outcome, Supervisor};
use ramboot::sys::{RealSys, RebootKind, Sys};
use std::path::Path;
use std::time::Duration;

fn write_script(path: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn uptime_of(line: &str) -> f64 {
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let log = d.join("log");
    let me = std::process::id();
    // sysinit leaves an orphan behind: a background job that outlives its shell.
    write_script(
        &d.join("sysinit"),
        &format!(
            "echo sysinit >> {log}\n( echo $(sh -c 'echo $PPID') > {d}/orphan.pid; sleep 0.2 ) &\nexit 0",
            log = log.display(),
            d = d.display()
        ),
    );
    // Fails at once; after its fifth start it asks for a poweroff, as busybox `poweroff` would.
    write_script(
        &d.join("flaky"),
        &format!(
            "read up _ < /proc/uptime\necho \"flaky $up\" >> {log}\n\
             [ $(grep -c flaky {log}) -ge 5 ] && kill -USR2 {me}\nexit 1",
            log = log.display()
        ),
    );
    write_script(
        &d.join("down"),
        &format!("echo shutdown >> {}", log.display()),
    );
    std::fs::write(
        d.join("inittab"),
        format!(
            "::sysinit:{d}/sysinit\n::once:/bin/sleep 300\n::respawn:{d}/flaky\n\
             ::shutdown:{d}/down\n",
            d = d.display()
        ),
    )
    .unwrap();
    let sys = RealSys;
    sys.set_child_subreaper().unwrap();
    let mut sup = Supervisor::new(Config {
        inittab: d.join("inittab"),
        backoff: Backoff {
            first: Duration::from_millis(100),
            max: Duration::from_millis(400),
            stable: Duration::from_secs(60),
        },
        grace: Duration::from_secs(30),
        pid1: false,
        control: Some(d.join("run/control")),
        ..Config::default()
    });
    let outcome = supervise::supervise(&sys, &mut sup).unwrap();
    let journal: Vec<&str> = sup.journal().collect();
    assert_eq!(
        outcome,
        Outcome::Reboot(RebootKind::PowerOff),
        "{}",
        journal.join("\n")
    );

    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.first(), Some(&"sysinit"), "{text}");
    assert_eq!(lines.last(), Some(&"shutdown"), "{text}");
    let starts: Vec<f64> = lines
        .iter()
        .filter(|l| l.starts_with("flaky"))
        .map(|l| uptime_of(l))
        .collect();
    assert_eq!(starts.len(), 5, "{text}");
    // Lower bounds only (a slow machine only makes gaps longer): 0, 0.1, 0.2, 0.4 s, with
    // /proc/uptime's 10 ms resolution.
    let expected = [0.0, 0.1, 0.2, 0.4];
    for (i, want) in expected.iter().enumerate() {
        let gap = starts[i + 1] - starts[i];
        assert!(
            gap >= want - 0.011,
            "restart {} after {gap}s: {text}",
            i + 1
        );
    }
    assert!(
        journal.iter().any(|l| l.contains("restarting in 0.4s")),
        "{}",
        journal.join("\n")
    );
    // The orphan was re-parented to us and reaped: no such process, not even a zombie. The
    // long-running once entry got SIGTERM and was reaped (the loop ended on "no child left",
    // long before the 30 s grace period).
    let orphan = std::fs::read_to_string(d.join("orphan.pid")).unwrap();
    let orphan = orphan.trim();
    assert!(!orphan.is_empty());
    assert!(
        !Path::new("/proc").join(orphan).exists(),
        "orphan {orphan} not reaped"
    );
    assert!(matches!(
        sys.reap().unwrap(),
        ramboot::sys::Reaped::NoChildren
    ));
    assert!(journal.contains(&"Sending SIGTERM to all processes"));
    assert!(
        !journal.iter().any(|l| l.contains("SIGKILL")),
        "{}",
        journal.join("\n")
    );
    println!("supervise_subreaper: ok");
}
