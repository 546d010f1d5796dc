//! `ramboot ctl` (the built binary) against a supervisor on the real kernel, as a child
//! subreaper with its control socket in a temp dir: status (text and JSON), stop (it stays
//! down), start, restart, log and log -f across restarts, an unknown service (exit 1), a usage
//! error (exit 2), no socket (exit 3), and a service run as `nobody` (its `user` file: uid
//! 65534) whose own `ramboot ctl` is refused by the peer-credential check (exit 3).
//!
//! The client commands run in a service ("driver"), not in a thread of this process: the
//! supervisor reaps every child of the process, and would take a thread's children too.
//! Its own `main` (harness = false): the signals must be blocked in every thread.
// The shared test support spawns tools and checks for root directly.
#![allow(clippy::disallowed_methods)]

#[path = "support/mod.rs"]
mod support;

use ramboot::supervise::{self, Config, Outcome, ServiceConfig, Supervisor};
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

fn main() {
    if !support::tools::root("running a service as nobody") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Only this temp dir is opened up, so that `nobody` can reach the socket in it.
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    let services = d.join("services");
    let logs = d.join("log");
    let sock = d.join("run/ramboot/control");
    let out = d.join("out");
    std::fs::create_dir(&out).unwrap();
    let ramboot = env!("CARGO_BIN_EXE_ramboot");
    let me = std::process::id();
    std::fs::write(d.join("inittab"), "").unwrap();

    service(&services, "web", "echo hello from web\nexec sleep 300", &[]);
    service(
        &services,
        "nobody",
        &format!(
            "echo uid=$(id -u)\nwhile [ ! -e {d}/open ]; do sleep 0.05; done\n\
             {ramboot} ctl --socket {sock} status\necho rc=$?\nexec sleep 300",
            d = d.display(),
            sock = sock.display()
        ),
        &[("user", "65534")],
    );
    let driver = format!(
        r#"
R={ramboot}
O={out}
ctl() {{ name=$1; shift; "$R" ctl --socket {sock} --log-dir {logs} "$@" > $O/$name.out 2> $O/$name.err; echo $? > $O/$name.rc; }}
until grep -q hello {logs}/web/current 2>/dev/null; do sleep 0.05; done
"$R" ctl --log-dir {logs} log -f -n 5 web > $O/follow.out &
follower=$!
ctl status status
ctl json status --json web
ctl stop stop web
until "$R" ctl --socket {sock} status web | grep -q ' down '; do sleep 0.05; done
ctl down status web
ctl start start web
until "$R" ctl --socket {sock} status web | grep -q ' up '; do sleep 0.05; done
ctl restart restart web
until "$R" ctl --socket {sock} status web | grep -q 'restarts 2 '; do sleep 0.05; done
until [ $(grep -c hello $O/follow.out) -ge 3 ]; do sleep 0.05; done
kill $follower
ctl log log -n 2 web
ctl unknown stop nosuch
ctl usage stop
"$R" ctl --socket {d}/nothing-here status > $O/unreachable.out 2> $O/unreachable.err; echo $? > $O/unreachable.rc
chmod 755 {d}/run/ramboot
chmod 666 {sock}
touch {d}/open
until grep -q rc= {logs}/nobody/current 2>/dev/null; do sleep 0.05; done
kill -USR2 {me}
exec sleep 300
"#,
        out = out.display(),
        sock = sock.display(),
        logs = logs.display(),
        d = d.display(),
    );
    service(&services, "driver", &driver, &[]);

    let sys = RealSys;
    sys.set_child_subreaper().unwrap();
    let mut sup = Supervisor::new(Config {
        inittab: d.join("inittab"),
        grace: Duration::from_secs(30),
        pid1: false,
        control: Some(sock.clone()),
        services: ServiceConfig {
            dir: services.clone(),
            log_dir: logs.clone(),
            ..ServiceConfig::default()
        },
        ..Config::default()
    });
    let outcome = supervise::supervise(&sys, &mut sup).unwrap();
    let all = sup.journal().collect::<Vec<_>>().join("\n");
    assert_eq!(outcome, Outcome::Reboot(RebootKind::PowerOff), "{all}");

    let read = |name: &str| std::fs::read_to_string(out.join(name)).unwrap_or_default();
    let rc = |name: &str| read(&format!("{name}.rc")).trim().to_string();
    let check = |name: &str, code: &str| {
        assert_eq!(
            rc(name),
            code,
            "{name}: {}{}\n{all}",
            read(&format!("{name}.out")),
            read(&format!("{name}.err"))
        )
    };

    check("status", "0");
    let status = read("status.out");
    let line = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in {status}"))
            .to_string()
    };
    assert!(line("web").contains(" up "), "{status}");
    assert!(line("driver").contains(" up "), "{status}");
    assert!(line("web").contains("restarts 0"), "{status}");

    check("json", "0");
    let json = read("json.out");
    assert!(json.contains("\"name\": \"web\""), "{json}");
    assert!(json.contains("\"state\": \"up\""), "{json}");
    assert!(json.contains("\"inittab\": []"), "{json}");

    check("stop", "0");
    assert!(
        read("stop.out").starts_with("stopping web (pid "),
        "{}",
        read("stop.out")
    );
    check("down", "0");
    assert!(
        read("down.out").contains("last exit: killed by SIGTERM"),
        "{}",
        read("down.out")
    );
    check("start", "0");
    assert_eq!(read("start.out"), "starting web\n");
    check("restart", "0");
    assert!(read("restart.out").starts_with("restarting web (pid "));

    // The log: the last lines, and -f saw every start's line as it came.
    check("log", "0");
    assert_eq!(read("log.out"), "hello from web\nhello from web\n");
    assert_eq!(read("follow.out").matches("hello from web").count(), 3);

    check("unknown", "1");
    assert_eq!(read("unknown.err"), "ramboot ctl: no service nosuch\n");
    check("usage", "2");
    assert!(read("usage.err").starts_with("ramboot ctl: missing NAME\n\nusage:"));
    check("unreachable", "3");
    assert!(
        read("unreachable.err").starts_with("ramboot ctl: cannot reach PID 1 at "),
        "{}",
        read("unreachable.err")
    );

    // `user` on a real process, and the peer check on a real connection.
    let nobody = std::fs::read_to_string(logs.join("nobody/current")).unwrap();
    assert!(nobody.starts_with("uid=65534\n"), "{nobody}");
    assert!(
        nobody.contains(
            "ramboot ctl: refused by PID 1: only root may control PID 1 \
             (the client runs as uid 65534)\nrc=3\n"
        ),
        "{nobody}"
    );
    println!("supervise_ctl: ok");
}
