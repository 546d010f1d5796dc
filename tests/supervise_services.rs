//! Service directories supervised on the real kernel, as a child subreaper in a temp dir:
//! a service that signals readiness on its notification fd and a dependent that starts only
//! after it; a crashing service given up after the crash-loop limit, its last lines logged;
//! output captured into a log rotated at its size bound; at the end (a service sends SIGUSR2,
//! as busybox `poweroff` would) services stopped dependents first. Nothing outside the temp
//! dir is touched: not PID 1, no unmounting, no reboot.
//!
//! Its own `main` (harness = false): the signals must be blocked in every thread.

use ramboot::supervise::{self, Backoff, Config, Outcome, ServiceConfig, Supervisor};
use ramboot::sys::{RealSys, RebootKind, Sys};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

fn service(services: &Path, name: &str, run: &str, extra: &[(&str, &str)]) {
    let dir = services.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("run"), format!("#!/bin/sh\n{run}\n")).unwrap();
    std::fs::set_permissions(dir.join("run"), std::fs::Permissions::from_mode(0o755)).unwrap();
    for (file, content) in extra {
        std::fs::write(dir.join(file), content).unwrap();
    }
}

const LOG_SIZE: u64 = 1000;

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let services = d.join("services");
    let logs = d.join("log");
    let marks = d.join("marks");
    let me = std::process::id();
    std::fs::write(d.join("inittab"), "").unwrap();
    // Ready only after a while: without the readiness gate, web would start first.
    service(
        &services,
        "db",
        &format!(
            "sleep 0.2\necho db-ready >> {}\necho >&3\nexec sleep 300",
            marks.display()
        ),
        &[("notification-fd", "3")],
    );
    service(
        &services,
        "web",
        &format!("echo web-start >> {}\nexec sleep 300", marks.display()),
        &[("depends", "db")],
    );
    service(
        &services,
        "crash",
        &format!("echo crash >> {}\necho \"attempt $(grep -c crash {})\"\necho 'cannot open config' >&2\nexit 3", marks.display(), marks.display()),
        &[],
    );
    service(
        &services,
        "chatty",
        &format!(
            "i=0\nwhile [ $i -lt 100 ]; do echo \"line $i of the chatty service\"; i=$((i+1)); done\n\
             touch {d}/chatty.done\nexec sleep 300",
            d = d.display()
        ),
        &[],
    );
    // Ends the test once everything has happened, as `poweroff` would.
    service(
        &services,
        "end",
        &format!(
            "while [ $(grep -c crash {m}) -lt 3 ] || [ ! -e {d}/chatty.done ]; do sleep 0.05; done\n\
             kill -USR2 {me}\nexec sleep 300",
            m = marks.display(),
            d = d.display()
        ),
        &[("depends", "web")],
    );
    let sys = RealSys;
    sys.set_child_subreaper().unwrap();
    let mut sup = Supervisor::new(Config {
        inittab: d.join("inittab"),
        backoff: Backoff {
            first: Duration::from_millis(50),
            max: Duration::from_millis(200),
            stable: Duration::from_secs(60),
        },
        grace: Duration::from_secs(30),
        pid1: false,
        control: Some(d.join("run/ramboot/control")),
        services: ServiceConfig {
            dir: services.clone(),
            log_dir: logs.clone(),
            log_size: LOG_SIZE,
            log_keep: 2,
            crash_limit: 3,
            crash_window: Duration::from_secs(600),
            ..ServiceConfig::default()
        },
        ..Config::default()
    });
    let outcome = supervise::supervise(&sys, &mut sup).unwrap();
    let journal: Vec<&str> = sup.journal().collect();
    let all = journal.join("\n");
    assert_eq!(outcome, Outcome::Reboot(RebootKind::PowerOff), "{all}");

    // Readiness gates the dependent.
    let text = std::fs::read_to_string(&marks).unwrap();
    let db = text.find("db-ready").expect("db ran");
    let web = text.find("web-start").expect("web ran");
    assert!(db < web, "web started before db was ready: {text}");
    assert!(journal.contains(&"service db is ready"), "{all}");

    // The crash loop is given up after three exits, its last lines in the log.
    assert_eq!(text.matches("crash").count(), 3, "{text}");
    assert!(
        journal.contains(&"service crash failed: 3 exits within 600s; not restarted"),
        "{all}"
    );
    assert!(journal.contains(&"crash: cannot open config"), "{all}");
    assert!(journal.contains(&"crash: attempt 3"), "{all}");

    // Output rotated at the bound, two rotated files kept, the newest lines in current.
    let chatty = logs.join("chatty");
    for name in ["current", "current.1", "current.2"] {
        let size = std::fs::metadata(chatty.join(name)).unwrap().len();
        assert!(size > 0 && size <= LOG_SIZE, "{name}: {size} bytes");
    }
    assert!(!chatty.join("current.3").exists());
    let current = std::fs::read_to_string(chatty.join("current")).unwrap();
    assert!(
        current.ends_with("line 99 of the chatty service\n"),
        "{current}"
    );
    let kept = std::fs::read_to_string(chatty.join("current.2")).unwrap()
        + &std::fs::read_to_string(chatty.join("current.1")).unwrap()
        + &current;
    assert!(
        kept.lines().all(|l| l.ends_with(" of the chatty service")),
        "{kept}"
    );

    // Dependents stopped first, then everything else; no SIGKILL needed.
    let pos = |line: &str| journal.iter().position(|l| *l == line);
    let stop_end = pos("stopping service end").expect("end stopped");
    let stop_web = pos("stopping service web").expect("web stopped");
    let stop_db = pos("stopping service db").expect("db stopped");
    assert!(stop_end < stop_web && stop_web < stop_db, "{all}");
    assert!(!all.contains("SIGKILL"), "{all}");
    assert!(matches!(
        sys.reap().unwrap(),
        ramboot::sys::Reaped::NoChildren
    ));
    println!("supervise_services: ok");
}
