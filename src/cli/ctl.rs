//! `ramboot ctl`: the client of PID 1's control socket ([`crate::supervise::control`]), and
//! `ramboot poweroff|reboot|halt`, which signal PID 1 with busybox init's protocol (so they
//! work under busybox init too). `ctl log` reads a service's rotating log itself, following
//! it across rotation with inotify: nothing of it goes through PID 1.

use super::args::{unexpected, utf8, ArgError, Args, Long, Short, Usage, Value};
use crate::supervise::control::{self, Request, Verdict};
use ramboot_sys::{RebootKind, Signal, Sys};
use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

/// The request was carried out.
pub const EXIT_OK: i32 = 0;
/// PID 1 answered that it could not be done (unknown service, …), or the log is missing.
pub const EXIT_FAILED: i32 = 1;
/// The command line was refused.
pub const EXIT_USAGE: i32 = 2;
/// PID 1 could not be reached: no socket, no answer, or it refused us (not root).
pub const EXIT_UNREACHABLE: i32 = 3;

pub const HELP: &str = "\
usage: ramboot ctl status [--json] [NAME]
       ramboot ctl start|stop|restart NAME
       ramboot ctl log [-f] [-n LINES] NAME

Controls the services of ramboot running as PID 1, through its socket (root only).
  status      one line per service and inittab respawn entry: name, state (up, down,
              starting, ready, stopping, failed, backing off), pid, uptime, restarts,
              last exit; --json for the same as a JSON document
  start       start a service (also one given up after its crash-loop limit)
  stop        stop a service (SIGTERM, SIGKILL after the grace period); it stays down
              until started again, like runit's `sv down`
  restart     stop it, then start it at once
  log         the last LINES (default 10) lines of the service's log, current and rotated
              files; -f keeps printing what it writes, across rotation

  --socket PATH     the control socket (default /run/ramboot/control)
  --log-dir DIR     where service logs are (default /var/log/ramboot)

Exit status: 0 done; 1 the request failed (unknown service, no log, ...); 2 usage;
3 PID 1 cannot be reached (no socket, no answer, or the caller is not root).
";

const USAGE: Usage = Usage {
    prog: "ramboot ctl",
    text: HELP,
    status: EXIT_USAGE,
};

/// What was typed.
#[derive(Debug, Default)]
struct Raw {
    help: bool,
    json: bool,
    follow: bool,
    lines: Option<String>,
    socket: Option<PathBuf>,
    log_dir: Option<PathBuf>,
    words: Vec<String>,
}

/// What to do.
#[derive(Debug, PartialEq, Eq)]
enum Action {
    Ask(Request),
    Log {
        name: String,
        follow: bool,
        lines: usize,
    },
}

#[derive(Debug, PartialEq, Eq)]
struct Ctl {
    action: Action,
    socket: PathBuf,
    log_dir: PathBuf,
}

fn parse_raw(mut p: Args) -> Result<Raw, ArgError> {
    let mut raw = Raw::default();
    while let Some(arg) = p.next_arg()? {
        match arg {
            Short('h') | Long("help") => raw.help = true,
            Long("json") => raw.json = true,
            Short('f') | Long("follow") => raw.follow = true,
            Short('n') | Long("lines") => raw.lines = Some(p.string()?),
            Long("socket") => raw.socket = Some(p.path()?),
            Long("log-dir") => raw.log_dir = Some(p.path()?),
            Value(v) => raw.words.push(utf8(v)?),
            other => return Err(unexpected(other)),
        }
    }
    Ok(raw)
}

/// A service name as a directory of the services (a logger is `NAME/log`).
fn service_name(name: &str) -> Result<String, ArgError> {
    let plain = Path::new(name)
        .components()
        .all(|c| matches!(c, Component::Normal(_)));
    if name.is_empty() || !plain || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ArgError::invalid("NAME", name, "not a service name"));
    }
    Ok(name.to_string())
}

fn validate(raw: Raw) -> Result<Ctl, ArgError> {
    let mut words = raw.words.into_iter();
    let verb = words.next().ok_or_else(|| {
        ArgError::Missing("a command: status, start, stop, restart or log".into())
    })?;
    let name = words.next().map(|n| service_name(&n)).transpose()?;
    if let Some(extra) = words.next() {
        return Err(ArgError::Unexpected(extra));
    }
    let needed = |name: Option<String>| name.ok_or_else(|| ArgError::Missing("NAME".into()));
    if raw.json && verb != "status" {
        return Err(ArgError::Conflict("--json goes with status only".into()));
    }
    if (raw.follow || raw.lines.is_some()) && verb != "log" {
        return Err(ArgError::Conflict("-f and -n go with log only".into()));
    }
    let action = match verb.as_str() {
        "status" => Action::Ask(Request::Status {
            json: raw.json,
            name,
        }),
        "start" => Action::Ask(Request::Start(needed(name)?)),
        "stop" => Action::Ask(Request::Stop(needed(name)?)),
        "restart" => Action::Ask(Request::Restart(needed(name)?)),
        "log" => Action::Log {
            name: needed(name)?,
            follow: raw.follow,
            lines: match raw.lines {
                Some(n) => super::args::number("-n", &n)?,
                None => 10,
            },
        },
        other => return Err(ArgError::Unexpected(other.to_string())),
    };
    Ok(Ctl {
        action,
        socket: raw
            .socket
            .unwrap_or_else(|| PathBuf::from(control::DEFAULT_PATH)),
        log_dir: raw
            .log_dir
            .unwrap_or_else(|| PathBuf::from("/var/log/ramboot")),
    })
}

/// `ramboot ctl ...`; returns the exit status.
pub fn main(args: &[OsString]) -> i32 {
    let ctl = match USAGE.two_stage(args, parse_raw, |r| r.help, validate) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match ctl.action {
        Action::Ask(request) => ask_and_print(&ctl.socket, &request),
        Action::Log {
            name,
            follow,
            lines,
        } => log(&ctl.log_dir.join(&name), &name, lines, follow),
    }
}

fn ask_and_print(socket: &Path, request: &Request) -> i32 {
    match ask(socket, request) {
        Ok((Verdict::Ok, text)) => {
            print!("{text}");
            EXIT_OK
        }
        Ok((Verdict::Fail, text)) => {
            eprint!("ramboot ctl: {text}");
            EXIT_FAILED
        }
        Ok((Verdict::Refused, text)) => {
            eprint!("ramboot ctl: refused by PID 1: {text}");
            EXIT_UNREACHABLE
        }
        Err(e) => {
            eprintln!("ramboot ctl: {e}");
            EXIT_UNREACHABLE
        }
    }
}

/// A PID 1 busy for this long is not answering.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
/// No answer is anywhere near this long.
const MAX_ANSWER: u64 = 4 << 20;

/// Sends one request; the verdict and text, or why PID 1 could not be reached.
fn ask(socket: &Path, request: &Request) -> Result<(Verdict, String), String> {
    let cannot = |e: io::Error| format!("cannot reach PID 1 at {}: {e}", socket.display());
    let mut stream = UnixStream::connect(socket).map_err(cannot)?;
    stream
        .set_read_timeout(Some(ANSWER_TIMEOUT))
        .map_err(cannot)?;
    stream
        .set_write_timeout(Some(ANSWER_TIMEOUT))
        .map_err(cannot)?;
    stream
        .write_all(request.line().as_bytes())
        .map_err(cannot)?;
    let mut answer = Vec::new();
    (&mut stream)
        .take(MAX_ANSWER)
        .read_to_end(&mut answer)
        .map_err(cannot)?;
    let answer = String::from_utf8_lossy(&answer);
    let (word, text) = answer.split_once('\n').unwrap_or((&answer, ""));
    let verdict = Verdict::from_word(word)
        .ok_or_else(|| format!("PID 1 at {} gave no answer", socket.display()))?;
    Ok((verdict, text.to_string()))
}

/// `ctl log`: the last lines, then (with `follow`) what comes.
fn log(dir: &Path, name: &str, lines: usize, follow: bool) -> i32 {
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let result = if follow {
        follow_log(dir, lines, &mut out)
    } else {
        print_tail(dir, lines, &mut out)
    };
    match result {
        Ok(()) => EXIT_OK,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => EXIT_OK,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            eprintln!("ramboot ctl: no log of {name} in {}", dir.display());
            EXIT_FAILED
        }
        Err(e) => {
            eprintln!("ramboot ctl: cannot read the log of {name}: {e}");
            EXIT_FAILED
        }
    }
}

/// The last `lines` lines of `current`, older ones taken from `current.1`, `current.2`, …
/// when `current` has fewer.
fn print_tail(dir: &Path, lines: usize, out: &mut dyn Write) -> io::Result<()> {
    let current = std::fs::read(dir.join("current"))?;
    out.write_all(&tail_before(dir, current, lines))?;
    out.flush()
}

/// `newest` (the content of `current`) preceded by rotated files until `lines` lines are
/// there; its last `lines` lines.
fn tail_before(dir: &Path, newest: Vec<u8>, lines: usize) -> Vec<u8> {
    let count = |b: &[u8]| b.iter().filter(|&&c| c == b'\n').count();
    let mut text = newest;
    let mut n = 1;
    while count(&text) < lines {
        let Ok(mut older) = std::fs::read(dir.join(format!("current.{n}"))) else {
            break;
        };
        older.extend_from_slice(&text);
        text = older;
        n += 1;
    }
    // Skip to after the newline that leaves `lines` complete lines (and any partial one).
    let ends: Vec<usize> = text
        .iter()
        .enumerate()
        .filter(|(_, &c)| c == b'\n')
        .map(|(i, _)| i)
        .collect();
    let complete = ends.len();
    let unfinished = ends
        .last()
        .map_or(!text.is_empty(), |&e| e + 1 < text.len());
    let keep = lines.saturating_sub(usize::from(unfinished));
    let start = match complete.checked_sub(keep + 1) {
        Some(i) if lines > 0 => ends[i] + 1,
        _ if lines == 0 => text.len(),
        _ => 0,
    };
    text.split_off(start)
}

/// The tail, then everything written to `current` as it comes, reopening it when it is
/// rotated (the old file is read to its end first, so nothing is lost). Returns when `out`
/// fails (a closed pipe).
pub fn follow_log(dir: &Path, lines: usize, out: &mut dyn Write) -> io::Result<()> {
    use rustix::fs::inotify::{self, CreateFlags, WatchFlags};
    let watch = inotify::init(CreateFlags::CLOEXEC)?;
    inotify::add_watch(
        &watch,
        dir,
        WatchFlags::MODIFY | WatchFlags::CREATE | WatchFlags::MOVED_TO | WatchFlags::MOVED_FROM,
    )?;
    let path = dir.join("current");
    let mut file = std::fs::File::open(&path)?;
    let mut first = Vec::new();
    file.read_to_end(&mut first)?;
    out.write_all(&tail_before(dir, first, lines))?;
    out.flush()?;
    let mut buf = vec![std::mem::MaybeUninit::<u8>::uninit(); 4096];
    loop {
        // Blocks until the directory changes: no polling.
        let mut events = inotify::Reader::new(&watch, &mut buf);
        events.next()?;
        copy_rest(&mut file, out)?;
        let moved = match (file.metadata(), std::fs::metadata(&path)) {
            (Ok(a), Ok(b)) => file_id(&a) != file_id(&b),
            // Rotated away and not made again yet (or unreadable): wait for the next event.
            _ => false,
        };
        if moved {
            file = catch_up(dir, file, out)?;
        }
    }
}

fn file_id(m: &std::fs::Metadata) -> (u64, u64) {
    (m.dev(), m.ino())
}

/// `old` was rotated: its last bytes, then each newer file in turn (found by what it is,
/// not by its name, since names shift when the writer rotates again meanwhile) up to the
/// new `current`, which is returned. As with `tail -F`, a reader can miss lines when the
/// writer rotates faster than it reads (more than the kept files, or continuously while it
/// catches up); a service's log rotates at a megabyte, far slower than this reads.
fn catch_up(dir: &Path, mut old: std::fs::File, out: &mut dyn Write) -> io::Result<std::fs::File> {
    loop {
        // Written before the rename, after the last read.
        copy_rest(&mut old, out)?;
        let old_id = file_id(&old.metadata()?);
        // Opened before looking at the rotated files: when `old` is still the newest of
        // them then, this is the file that came after it.
        let Ok(current) = std::fs::File::open(dir.join("current")) else {
            return Ok(old); // being rotated: the next event brings it
        };
        // A rotation under way shifts the names while they are read: only two equal
        // looks in a row are a true picture.
        let ids =
            |r: &[((u64, u64), std::fs::File)]| r.iter().map(|(id, _)| *id).collect::<Vec<_>>();
        let mut rotated = rotated_files(dir)?;
        for _ in 0..20 {
            let again = rotated_files(dir)?;
            let stable = ids(&again) == ids(&rotated);
            rotated = again;
            if stable {
                break;
            }
        }
        old = match rotated.iter().position(|(id, _)| *id == old_id) {
            Some(0) => {
                let mut current = current;
                copy_rest(&mut current, out)?;
                return Ok(current);
            }
            Some(k) => rotated.swap_remove(k - 1).1,
            // `old` was deleted (the oldest kept are newer): the oldest left.
            None => match rotated.pop() {
                Some((_, f)) => f,
                None => current,
            },
        };
    }
}

/// `current.1`, `current.2`, … (newest first) as they are now, open.
fn rotated_files(dir: &Path) -> io::Result<Vec<((u64, u64), std::fs::File)>> {
    let mut files = Vec::new();
    for n in 1.. {
        let Ok(f) = std::fs::File::open(dir.join(format!("current.{n}"))) else {
            break;
        };
        files.push((file_id(&f.metadata()?), f));
    }
    Ok(files)
}

fn copy_rest(file: &mut std::fs::File, out: &mut dyn Write) -> io::Result<()> {
    io::copy(file, out)?;
    out.flush()
}

/// `ramboot poweroff|reboot|halt`: the signal busybox init (and ramboot as PID 1) takes for
/// it, sent to PID 1; `None` when `args[0]` names none of them.
pub fn run_if_power(sys: &dyn Sys, args: &[OsString]) -> Option<i32> {
    let kind = match args.first()?.to_str()? {
        "poweroff" => RebootKind::PowerOff,
        "reboot" => RebootKind::Restart,
        "halt" => RebootKind::Halt,
        _ => return None,
    };
    let name = args[0].to_string_lossy();
    if args.len() > 1 {
        let help = args[1..].iter().any(|a| a == "-h" || a == "--help");
        let text = format!("usage: ramboot {name}\n\nAsks PID 1 to {kind} the system (busybox init's signals: SIGUSR2 poweroff, SIGTERM reboot, SIGUSR1 halt).\nExit status: 0 asked; 2 usage; 3 PID 1 cannot be signalled.\n");
        if help {
            print!("{text}");
            return Some(EXIT_OK);
        }
        eprint!("ramboot {name}: takes no arguments\n\n{text}");
        return Some(EXIT_USAGE);
    }
    Some(match sys.kill(1, power_signal(kind)) {
        Ok(()) => EXIT_OK,
        Err(e) => {
            eprintln!("ramboot {name}: cannot signal PID 1: {e}");
            EXIT_UNREACHABLE
        }
    })
}

/// busybox init's protocol.
pub fn power_signal(kind: RebootKind) -> Signal {
    match kind {
        RebootKind::PowerOff => Signal::USR2,
        RebootKind::Restart => Signal::TERM,
        RebootKind::Halt => Signal::USR1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::supervise::rotating_log::RotatingLog;
    use ramboot_sys::RecordingSys;

    fn parse(a: &[&str]) -> Result<Ctl, String> {
        let words: Vec<OsString> = a.iter().map(OsString::from).collect();
        parse_raw(Args::new(words))
            .and_then(validate)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn command_lines() {
        let c = parse(&["status", "--json", "web", "--socket", "/tmp/s"]).unwrap();
        assert_eq!(
            c.action,
            Action::Ask(Request::Status {
                json: true,
                name: Some("web".into())
            })
        );
        assert_eq!(c.socket, Path::new("/tmp/s"));
        assert_eq!(
            parse(&["log", "-fn", "3", "web/log"]).unwrap().action,
            Action::Log {
                name: "web/log".into(),
                follow: true,
                lines: 3
            }
        );
        assert_eq!(parse(&["stop"]).unwrap_err(), "missing NAME");
        assert_eq!(
            parse(&["start", "../etc"]).unwrap_err(),
            "NAME \"../etc\": not a service name"
        );
        assert_eq!(
            parse(&["stop", "--json", "x"]).unwrap_err(),
            "--json goes with status only"
        );
        assert_eq!(
            parse(&["status", "-f"]).unwrap_err(),
            "-f and -n go with log only"
        );
        assert_eq!(
            parse(&["frob"]).unwrap_err(),
            "unexpected argument \"frob\""
        );
        assert_eq!(
            parse(&["log", "-n", "x", "a"]).unwrap_err(),
            "-n \"x\": not a number"
        );
        assert!(parse(&[]).unwrap_err().starts_with("missing a command"));
    }

    #[test]
    fn the_tail_reaches_into_rotated_files() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("current.2"), "a\nb\n").unwrap();
        std::fs::write(d.join("current.1"), "c\nd\n").unwrap();
        std::fs::write(d.join("current"), "e\nf").unwrap();
        let tail = |n| String::from_utf8(tail_before(d, b"e\nf".to_vec(), n)).unwrap();
        assert_eq!(tail(0), "");
        assert_eq!(tail(1), "f");
        assert_eq!(tail(2), "e\nf");
        assert_eq!(tail(4), "c\nd\ne\nf");
        assert_eq!(tail(10), "a\nb\nc\nd\ne\nf");
    }

    /// A writer that fails once it has seen `end`: stops the follower.
    struct Until {
        seen: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
        end: &'static [u8],
    }

    impl Write for Until {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            let mut seen = self.seen.lock().unwrap();
            seen.extend_from_slice(b);
            if seen.windows(self.end.len()).any(|w| w == self.end) {
                return Err(io::ErrorKind::BrokenPipe.into());
            }
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// `log -f` sees every line written, across several rotations, and nothing twice: after
    /// a burst of two rotations it catches up from the rotated files.
    #[test]
    fn following_crosses_rotation() {
        follow_while_writing(50);
    }

    /// With one rotated file kept, the writer waits for the follower after each line, so
    /// it never falls more than one rotation behind.
    #[test]
    fn following_crosses_rotation_step_by_step() {
        follow_while_writing(1);
    }

    fn follow_while_writing(keep: u32) {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("svc");
        let (mut log, err) = RotatingLog::open(d.clone(), 64, keep);
        assert!(err.is_none());
        log.write(b"old 1\nold 2\n").unwrap();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut out = Until {
            seen: seen.clone(),
            end: b"END\n",
        };
        let follower = {
            let d = d.clone();
            std::thread::spawn(move || follow_log(&d, 1, &mut out))
        };
        // Written only once the follower printed the tail: then it watches.
        while !seen.lock().unwrap().ends_with(b"old 2\n") {
            std::thread::yield_now();
        }
        let mut expected = String::from("old 2\n");
        for i in 0..40 {
            let line = format!("line {i} of a service that talks\n");
            log.write(line.as_bytes()).unwrap();
            expected.push_str(&line);
            // Bursts of five lines (two rotations) for the catch-up; one line at a time
            // with one file kept.
            let pause = keep == 1 || i % 5 == 4;
            while pause && !seen.lock().unwrap().ends_with(line.as_bytes()) {
                std::thread::yield_now();
            }
        }
        log.write(b"END\n").unwrap();
        expected.push_str("END\n");
        let err = follower.join().unwrap().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::BrokenPipe);
        assert!(d.join("current.1").exists(), "it did rotate");
        assert_eq!(
            String::from_utf8(seen.lock().unwrap().clone()).unwrap(),
            expected
        );
    }

    #[test]
    fn power_commands_signal_pid1() {
        let dir = tempfile::tempdir().unwrap();
        let sys = RecordingSys::new(dir.path());
        let run = |a: &[&str]| {
            let args: Vec<OsString> = a.iter().map(OsString::from).collect();
            run_if_power(&sys, &args)
        };
        assert_eq!(run(&["poweroff"]), Some(0));
        assert_eq!(run(&["reboot"]), Some(0));
        assert_eq!(run(&["halt"]), Some(0));
        assert_eq!(run(&["halt", "now"]), Some(2));
        assert_eq!(run(&["status"]), None);
        assert_eq!(
            sys.trace(),
            ["kill -USR2 1", "kill -TERM 1", "kill -USR1 1"]
        );
    }
}
