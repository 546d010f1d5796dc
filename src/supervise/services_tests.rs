//! Services on the recording double with its fake clock and a scripted jitter: no real
//! sleeps, no real processes (their pipes are real: the double writes what a child would).

use super::*;
use ramboot_sys::{Call, RecordingSys};
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex};

const SERVICES: &str = "etc/ramboot/services";

struct Rig {
    dir: tempfile::TempDir,
    sys: RecordingSys,
    sup: Supervisor,
    seen: usize,
}

/// A service directory: `files` as (name, content); `run` and `finish` made executable.
fn service(root: &Path, name: &str, files: &[(&str, &str)]) {
    let dir = root.join(SERVICES).join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let mut all = vec![("run", "#!/bin/sh\n")];
    all.extend_from_slice(files);
    for (file, content) in all {
        let path = dir.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        if file.ends_with("run") || file == "finish" {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
}

impl Rig {
    /// An empty inittab, `services` made by the caller through `setup`, jitter from `jitter`.
    fn new(setup: impl FnOnce(&Path), jitter: Vec<f64>, services: ServiceConfig) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(dir.path().join("etc/inittab"), "").unwrap();
        setup(dir.path());
        let sys = RecordingSys::new(dir.path());
        let jitter = Arc::new(Mutex::new(jitter.into_iter().cycle()));
        let sup = Supervisor::with_jitter(
            Config {
                env: vec![("PATH".into(), "/bin".into())],
                services,
                pid1: false,
                ..Config::default()
            },
            Box::new(move || jitter.lock().unwrap().next().unwrap_or(0.0)),
        );
        Rig {
            dir,
            sys,
            sup,
            seen: 0,
        }
    }

    fn start(&mut self) {
        self.sup.start(&self.sys);
        self.drain();
    }

    fn new_calls(&mut self) -> Vec<String> {
        let trace = self.sys.trace();
        let new = trace[self.seen..].to_vec();
        self.seen = trace.len();
        new
    }

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

    fn exit(&mut self, pid: u32, status: ExitStatus) {
        self.sys.exit_child(pid, status);
        self.drain();
    }

    /// What the child `pid` writes on descriptor `fd`, then the loop's wake-up.
    fn write(&mut self, pid: u32, fd: i32, bytes: &str) {
        self.sys.child_write(pid, fd, bytes.as_bytes()).unwrap();
        self.sup.handle(&self.sys, Event::Io);
    }

    fn sleep_until_deadline(&mut self) -> Duration {
        let at = self.sup.next_deadline().expect("a timer is set");
        self.sys.advance(at.saturating_sub(self.sys.now()));
        self.drain();
        at
    }

    fn said(&self, line: &str) -> bool {
        self.sup.journal().any(|l| l == line)
    }

    fn journal(&self) -> String {
        self.sup.journal().collect::<Vec<_>>().join("\n")
    }

    /// The spawn calls recorded, as data.
    fn spawns(&self) -> Vec<ramboot_sys::Spawn> {
        self.sys
            .calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::Spawn { spawn, .. } => Some(spawn),
                _ => None,
            })
            .collect()
    }
}

fn run_of(name: &str) -> String {
    format!("/{SERVICES}/{name}/run")
}

#[test]
fn dependents_start_only_once_their_dependency_is_ready() {
    let mut r = Rig::new(
        |root| {
            service(root, "db", &[("notification-fd", "3\n")]);
            service(root, "web", &[("depends", "db\n")]);
            service(root, "proxy", &[("depends", "web\n")]);
        },
        vec![0.0],
        ServiceConfig::default(),
    );
    r.start();
    assert_eq!(
        r.new_calls(),
        [format!("spawn {} [fds 1,2,3] (pid 100)", run_of("db"))]
    );
    assert!(
        r.said("service web waits for db to be ready"),
        "{}",
        r.journal()
    );
    assert_eq!(
        r.sup.next_deadline(),
        None,
        "nothing to do until db is ready"
    );
    // Output before the newline is not readiness.
    r.write(100, 3, "almost");
    assert!(r.new_calls().is_empty());
    r.write(100, 3, " ready\n");
    // web has no notification-fd: started counts as ready, so proxy follows at once.
    assert_eq!(
        r.new_calls(),
        [
            format!("spawn {} [fds 1,2] (pid 101)", run_of("web")),
            format!("spawn {} [fds 1,2] (pid 102)", run_of("proxy")),
        ]
    );
    assert!(r.said("service db is ready"));
    // Working directory is the service directory.
    assert_eq!(
        r.spawns()[0].cwd.as_deref(),
        Some(Path::new("/etc/ramboot/services/db"))
    );
}

#[test]
fn restarts_back_off_with_jitter_within_bounds() {
    // 20 % jitter; the source gives 0.5 then 1.0 then 0.0: cuts of 10 %, 20 %, 0 %.
    let mut r = Rig::new(
        |root| service(root, "flaky", &[]),
        vec![0.5, 1.0, 0.0],
        ServiceConfig {
            crash_limit: 100,
            ..ServiceConfig::default()
        },
    );
    r.start();
    let mut delays = Vec::new();
    for _ in 0..7 {
        let pid = *r.sys.live_children().last().unwrap();
        let before = r.sys.now();
        r.exit(pid, ExitStatus::Code(1));
        if r.sys.live_children().is_empty() {
            r.sleep_until_deadline();
        }
        assert_eq!(r.sys.live_children().len(), 1, "{}", r.journal());
        delays.push((r.sys.now() - before).as_millis());
    }
    // Base delays 0, 1, 2, 4, 8, 16, 32 s, each cut by the jitter in turn.
    assert_eq!(delays, [0, 800, 2000, 3600, 6400, 16000, 28800]);
    let b = Backoff::default();
    for (n, d) in delays.iter().enumerate() {
        let base = b.delay(n as u32 + 1).as_millis();
        assert!(
            *d <= base && *d * 10 >= base * 8,
            "restart {n}: {d} ms of {base}"
        );
    }
    assert!(
        r.said("service flaky: restarting in 3.600s"),
        "{}",
        r.journal()
    );
}

#[test]
fn a_crash_loop_is_given_up_and_logged_with_the_last_lines() {
    let mut r = Rig::new(
        |root| service(root, "crash", &[]),
        vec![0.0],
        ServiceConfig {
            crash_limit: 3,
            crash_window: Duration::from_secs(60),
            ..ServiceConfig::default()
        },
    );
    r.start();
    for n in 0..3 {
        let pid = *r.sys.live_children().last().unwrap();
        r.write(pid, 1, &format!("attempt {n}\nno config"));
        r.exit(pid, ExitStatus::Code(78));
        if n == 1 {
            r.sleep_until_deadline();
        }
    }
    assert!(r.sys.live_children().is_empty());
    assert_eq!(r.sup.next_deadline(), None, "given up: no timer");
    assert!(
        r.said("service crash failed: 3 exits within 60s; not restarted"),
        "{}",
        r.journal()
    );
    assert!(r.said("service crash died: exit status 78; its last lines:"));
    assert!(r.said("crash: attempt 2"));
    assert!(r.said("crash: no config"));
    let log = std::fs::read_to_string(r.dir.path().join("var/log/ramboot/crash/current")).unwrap();
    assert!(log.starts_with("attempt 0\nno configattempt 1\n"), "{log}");
    // Exits far apart never add up to a crash loop.
    let mut r = Rig::new(
        |root| service(root, "slow", &[]),
        vec![0.0],
        ServiceConfig {
            crash_limit: 2,
            crash_window: Duration::from_secs(60),
            ..ServiceConfig::default()
        },
    );
    r.start();
    for _ in 0..4 {
        r.sys.advance(Duration::from_secs(61));
        let pid = *r.sys.live_children().last().unwrap();
        r.exit(pid, ExitStatus::Signal(9));
        assert_eq!(r.sys.live_children().len(), 1, "{}", r.journal());
    }
}

#[test]
fn finish_gets_runits_arguments_and_the_restart_waits_for_it() {
    let mut r = Rig::new(
        |root| service(root, "s", &[("finish", "#!/bin/sh\n")]),
        vec![0.0],
        ServiceConfig::default(),
    );
    r.start();
    r.new_calls();
    r.exit(100, ExitStatus::Code(3));
    assert_eq!(
        r.new_calls(),
        [format!(
            "spawn /{SERVICES}/s/finish 3 0 [fds 1,2] (pid 101)"
        )]
    );
    r.exit(101, ExitStatus::Code(0));
    assert_eq!(
        r.new_calls(),
        [format!("spawn {} [fds 1,2] (pid 102)", run_of("s"))]
    );
    r.exit(102, ExitStatus::Signal(15));
    assert_eq!(
        r.new_calls(),
        [format!(
            "spawn /{SERVICES}/s/finish -1 15 [fds 1,2] (pid 103)"
        )]
    );
    // A finish that hangs is killed after the timeout; then the (backed-off) restart.
    assert_eq!(r.sleep_until_deadline(), r.sys.now());
    assert_eq!(r.new_calls(), ["kill -KILL 103"]);
    // Its restart was due 1 s after run ended: at once now.
    r.exit(103, ExitStatus::Signal(9));
    assert_eq!(
        r.new_calls(),
        [format!("spawn {} [fds 1,2] (pid 104)", run_of("s"))]
    );
}

#[test]
fn env_dir_user_and_down_file() {
    let mut r = Rig::new(
        |root| {
            std::fs::write(
                root.join("etc/passwd"),
                "root:x:0:0:root:/root:/bin/sh\nnode:x:1000:1000::/home/node:/bin/sh\n",
            )
            .unwrap();
            std::fs::write(root.join("etc/group"), "node:x:1000:\ndialout:x:20:node\n").unwrap();
            service(
                root,
                "app",
                &[
                    ("env/PATH", ""),
                    ("env/MODE", "production\n"),
                    ("user", "node"),
                ],
            );
            service(root, "spare", &[("down", "")]);
            service(root, "needs-spare", &[("depends", "spare")]);
        },
        vec![0.0],
        ServiceConfig::default(),
    );
    r.start();
    assert_eq!(
        r.new_calls(),
        [format!(
            "spawn {} [user 1000:1000 groups 1000,20] [fds 1,2] (pid 100)",
            run_of("app")
        )]
    );
    let env = &r.spawns()[0].env;
    let get = |k: &str| {
        env.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.to_str().unwrap())
    };
    assert_eq!(get("PATH"), None, "an empty env file unsets");
    assert_eq!(get("MODE"), Some("production"));
    assert_eq!(get("USER"), Some("node"));
    assert_eq!(get("HOME"), Some("/home/node"));
    assert!(r.said("service spare: down file, not started"));
    assert!(r.said("service needs-spare waits for spare to be ready"));
}

#[test]
fn unknown_dependencies_and_cycles_fail_with_their_cause() {
    let mut r = Rig::new(
        |root| {
            service(root, "a", &[("depends", "b")]);
            service(root, "b", &[("depends", "a")]);
            service(root, "c", &[("depends", "nope")]);
            service(root, "d", &[]);
        },
        vec![0.0],
        ServiceConfig::default(),
    );
    r.start();
    assert_eq!(
        r.new_calls(),
        [format!("spawn {} [fds 1,2] (pid 100)", run_of("d"))]
    );
    assert!(
        r.said("service a failed: dependency cycle a -> b -> a"),
        "{}",
        r.journal()
    );
    assert!(r.said("service c failed: it depends on nope, which is no service"));
}

#[test]
fn shutdown_stops_services_in_reverse_dependency_order_before_killing_everything() {
    let mut r = Rig::new(
        |root| {
            std::fs::write(root.join("etc/inittab"), "::shutdown:/bin/umount -a\n").unwrap();
            service(root, "db", &[]);
            service(
                root,
                "web",
                &[("depends", "db"), ("log/run", "#!/bin/sh\n")],
            );
        },
        vec![0.0],
        ServiceConfig::default(),
    );
    r.start();
    // The logger before its service; the logger reads the service's output on stdin.
    assert_eq!(
        r.new_calls(),
        [
            format!("spawn {} [fds 1,2] (pid 100)", run_of("db")),
            format!("spawn {} [fds 0,1,2] (pid 101)", run_of("web/log")),
            format!("spawn {} [fds 1,2] (pid 102)", run_of("web")),
        ]
    );
    r.sup.handle(&r.sys, Event::Request(Request::PowerOff));
    assert_eq!(r.new_calls(), ["spawn /bin/umount -a (pid 103)"]);
    r.exit(103, ExitStatus::Code(0));
    assert_eq!(r.new_calls(), ["kill -TERM 102", "kill -CONT 102"]);
    r.exit(102, ExitStatus::Signal(15));
    assert_eq!(
        r.new_calls(),
        [
            "kill -TERM 100",
            "kill -CONT 100",
            "kill -TERM 101",
            "kill -CONT 101"
        ]
    );
    r.exit(101, ExitStatus::Code(0));
    // db ignores SIGTERM: SIGKILL after the grace period, then everything else.
    let at = r.sleep_until_deadline();
    assert_eq!(at, r.sys.now());
    assert_eq!(r.new_calls(), ["kill -KILL 100"]);
    r.exit(100, ExitStatus::Signal(9));
    let calls = r.new_calls();
    assert_eq!(
        calls[..2],
        ["sync", "kill -TERM -1"],
        "{}",
        calls.join("; ")
    );
    assert_eq!(
        r.sup.outcome(),
        Some(&Outcome::Reboot(RebootKind::PowerOff))
    );
    assert!(r.said("service db did not stop within 5s; sending SIGKILL"));
}

/// `ramboot ctl`'s requests on the recording double: stop keeps a service down (its exit is
/// not a crash and it is not restarted), start brings it back, restart stops and starts it at
/// once, a service given up after its crash loop can be started again; status says it all.
#[test]
fn control_requests_stop_start_restart_and_report() {
    use super::control::Verdict;
    let mut r = Rig::new(
        |root| {
            service(root, "db", &[("notification-fd", "3\n")]);
            service(root, "web", &[]);
        },
        vec![0.0],
        ServiceConfig {
            crash_limit: 2,
            ..ServiceConfig::default()
        },
    );
    let ask = |r: &mut Rig, line: &str| r.sup.control_request(&r.sys, line);
    let booting = ask(&mut r, "stop web");
    assert_eq!(
        booting.0,
        Verdict::Fail,
        "services are not loaded before the boot"
    );
    r.start();
    r.new_calls();
    r.sys.advance(Duration::from_secs(75));
    let (v, text) = ask(&mut r, "status");
    assert_eq!(v, Verdict::Ok);
    assert_eq!(
        text,
        "db    starting     pid 100      up 1m15s   restarts 0    last exit: -\n\
         web   up           pid 101      up 1m15s   restarts 0    last exit: -\n"
    );
    r.write(100, 3, "\n");
    assert!(ask(&mut r, "status db").1.starts_with("db    ready "));

    // stop: SIGTERM, and down it stays.
    assert_eq!(
        ask(&mut r, "stop web"),
        (
            Verdict::Ok,
            "stopping web (pid 101); it stays down\n".into()
        )
    );
    assert_eq!(r.new_calls(), ["kill -TERM 101", "kill -CONT 101"]);
    assert!(ask(&mut r, "status web").1.starts_with("web   stopping "));
    r.exit(101, ExitStatus::Signal(15));
    assert_eq!(r.sup.next_deadline(), None, "no restart is planned");
    assert!(r.new_calls().is_empty());
    assert_eq!(
        ask(&mut r, "status web").1,
        "web   down         pid -        up -       restarts 0    last exit: killed by SIGTERM\n"
    );
    assert_eq!(
        ask(&mut r, "stop web"),
        (Verdict::Ok, "web is down and stays down\n".into())
    );

    // start: at once.
    assert_eq!(
        ask(&mut r, "start web"),
        (Verdict::Ok, "starting web\n".into())
    );
    assert_eq!(
        r.new_calls(),
        [format!("spawn {} [fds 1,2] (pid 102)", run_of("web"))]
    );
    assert_eq!(
        ask(&mut r, "start web"),
        (Verdict::Ok, "web is already up (pid 102)\n".into())
    );

    // restart: stopped, then started again as soon as it is gone, without backoff.
    assert_eq!(ask(&mut r, "restart web").1, "restarting web (pid 102)\n");
    assert_eq!(r.new_calls(), ["kill -TERM 102", "kill -CONT 102"]);
    r.exit(102, ExitStatus::Code(0));
    assert_eq!(
        r.new_calls(),
        [format!("spawn {} [fds 1,2] (pid 103)", run_of("web"))]
    );
    assert!(ask(&mut r, "status web").1.contains("restarts 2 "));

    // A crash loop given up; start clears it.
    r.exit(103, ExitStatus::Code(1));
    r.exit(104, ExitStatus::Code(1));
    assert!(ask(&mut r, "status web").1.starts_with("web   failed "));
    r.new_calls();
    assert_eq!(ask(&mut r, "start web").0, Verdict::Ok);
    assert_eq!(
        r.new_calls(),
        [format!("spawn {} [fds 1,2] (pid 105)", run_of("web"))]
    );

    // Unknown names and bad requests fail; JSON through the one writer.
    assert_eq!(
        ask(&mut r, "stop nosuch"),
        (Verdict::Fail, "no service nosuch\n".into())
    );
    assert_eq!(ask(&mut r, "status nosuch").0, Verdict::Fail);
    assert_eq!(ask(&mut r, "frob").0, Verdict::Fail);
    let (v, json) = ask(&mut r, "json web");
    assert_eq!(v, Verdict::Ok);
    assert!(
        json.contains("\"name\": \"web\",\n      \"state\": \"up\",\n      \"pid\": 105,"),
        "{json}"
    );
    assert!(json.contains("\"last_exit\": \"exit status 1\""), "{json}");
    assert!(r.said("ramboot ctl: stop web"), "{}", r.journal());

    // Going down: no more changes.
    r.sup.handle(&r.sys, Event::Request(Request::PowerOff));
    assert_eq!(
        ask(&mut r, "start web"),
        (Verdict::Fail, "the system is going down\n".into())
    );
}

/// The socket itself, on the double's tree: a root client gets its answer; one that sends
/// nothing is dropped at its timeout; a request too long is refused; the listener is in the
/// loop's descriptors.
#[test]
fn control_socket_answers_and_never_waits_for_a_client() {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    let mut r = Rig::new(
        |root| service(root, "web", &[]),
        vec![0.0],
        ServiceConfig::default(),
    );
    r.sup.open_control(&r.sys);
    assert_eq!(r.new_calls(), ["listen unix /run/ramboot/control"]);
    let path = r.dir.path().join("run/ramboot/control");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700);
    r.start();
    assert_eq!(r.sup.readable().len(), 2, "web's output and the listener");

    let mut silent = UnixStream::connect(&path).unwrap();
    let mut client = UnixStream::connect(&path).unwrap();
    let mut long = UnixStream::connect(&path).unwrap();
    client.write_all(b"status web\n").unwrap();
    long.write_all(&[b'x'; 600]).unwrap();
    r.sup.handle(&r.sys, Event::Io);
    let mut answer = String::new();
    client.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("ok\nweb   up "), "{answer}");
    let mut answer = String::new();
    long.read_to_string(&mut answer).unwrap();
    assert_eq!(answer, "refused\nthe request is longer than 512 bytes\n");

    // The silent one is kept, then dropped at its deadline.
    let deadline = r.sup.next_deadline().unwrap();
    assert_eq!(deadline, r.sys.now() + super::control::CLIENT_TIMEOUT);
    r.sleep_until_deadline();
    let mut answer = String::new();
    silent.read_to_string(&mut answer).unwrap();
    assert_eq!(answer, "refused\nno request line in time\n");
    assert_eq!(r.sup.next_deadline(), None);
}

/// The control socket is closed and its name removed before the end: bound, it kept `/run`
/// busy and the shutdown's unmount failed.
#[test]
fn the_control_socket_is_closed_before_the_unmount() {
    let mut r = Rig::new(
        |root| service(root, "web", &[]),
        vec![0.0],
        ServiceConfig::default(),
    );
    r.sup.open_control(&r.sys);
    let path = r.dir.path().join("run/ramboot/control");
    r.start();
    assert!(path.exists());
    r.new_calls();
    r.sup.handle(&r.sys, Event::Request(Request::PowerOff));
    for _ in 0..10 {
        if r.sup.outcome().is_some() {
            break;
        }
        for pid in r.sys.live_children() {
            r.exit(pid, ExitStatus::Signal(15));
        }
        if r.sup.outcome().is_none() {
            r.sleep_until_deadline();
        }
    }
    assert!(r.sup.outcome().is_some());
    assert!(!path.exists(), "the socket's name is gone");
    assert!(std::os::unix::net::UnixStream::connect(&path).is_err());
}
