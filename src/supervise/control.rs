//! The control socket of `ramboot ctl`: a listening Unix socket (`/run/ramboot/control`,
//! directory 0700, socket 0600, made through [`Sys::listen_unix`]) watched by the event loop
//! like the services' pipes.
//!
//! One request per connection: a line (`status [NAME]`, `json [NAME]`, `start NAME`,
//! `stop NAME`, `restart NAME`), then the answer, then the server closes. The answer's first
//! line is `ok`, `fail` (the request could not be carried out: unknown service, …) or
//! `refused` (not allowed: the peer is not root, the request is too long, too many clients);
//! the rest is text for the user, or the JSON document.
//!
//! PID 1 must never wait for a client: every descriptor is non-blocking, a request is at
//! most [`MAX_REQUEST`] bytes, at most [`MAX_CLIENTS`] connections are kept, each for at most
//! [`CLIENT_TIMEOUT`] on [`Sys::now`]'s clock, and the answer is written once without waiting
//! (a client that does not read gets what fits in the socket buffer, which is far more than a
//! status needs).

use crate::json::Json;
use ramboot_sys::{ExitStatus, Sys};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::net::{RecvFlags, SendFlags, SocketFlags};
use std::time::Duration;

/// Where PID 1 listens.
pub const DEFAULT_PATH: &str = "/run/ramboot/control";
/// A request line longer than this is refused.
pub const MAX_REQUEST: usize = 512;
/// Connections served at once; more are refused.
pub const MAX_CLIENTS: usize = 8;
/// A client that has not sent its line by then is dropped.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

/// What a service or inittab entry is doing, for `ramboot ctl status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub name: String,
    /// A service directory (false: an inittab respawn or askfirst entry).
    pub service: bool,
    /// up, down, starting, ready, stopping, failed, backing off.
    pub state: &'static str,
    pub pid: Option<u32>,
    pub uptime: Option<Duration>,
    /// Starts after the first.
    pub restarts: u32,
    pub last_exit: Option<ExitStatus>,
}

/// A parsed request line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    Status { json: bool, name: Option<String> },
    Start(String),
    Stop(String),
    Restart(String),
}

impl Request {
    pub fn parse(line: &str) -> Result<Request, String> {
        let mut words = line.split_whitespace();
        let verb = words.next().unwrap_or("");
        let name = words.next().map(str::to_string);
        if words.next().is_some() {
            return Err("too many words in the request".into());
        }
        let named = |name: Option<String>| name.ok_or_else(|| format!("{verb} needs a name"));
        Ok(match verb {
            "status" => Request::Status { json: false, name },
            "json" => Request::Status { json: true, name },
            "start" => Request::Start(named(name)?),
            "stop" => Request::Stop(named(name)?),
            "restart" => Request::Restart(named(name)?),
            "" => return Err("empty request".into()),
            other => return Err(format!("unknown request {}", crate::quote::quoted(other))),
        })
    }

    /// The line the client sends.
    pub fn line(&self) -> String {
        match self {
            Request::Status { json, name } => {
                let verb = if *json { "json" } else { "status" };
                match name {
                    Some(n) => format!("{verb} {n}\n"),
                    None => format!("{verb}\n"),
                }
            }
            Request::Start(n) => format!("start {n}\n"),
            Request::Stop(n) => format!("stop {n}\n"),
            Request::Restart(n) => format!("restart {n}\n"),
        }
    }
}

/// How a request ended: the first word of the answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    Fail,
    Refused,
}

impl Verdict {
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Fail => "fail",
            Verdict::Refused => "refused",
        }
    }

    pub fn from_word(word: &str) -> Option<Verdict> {
        [Verdict::Ok, Verdict::Fail, Verdict::Refused]
            .into_iter()
            .find(|v| v.word() == word)
    }
}

/// Only root may control PID 1; the refusal names the peer.
pub fn peer_allowed(uid: u32) -> Result<(), String> {
    match uid {
        0 => Ok(()),
        uid => Err(format!(
            "only root may control PID 1 (the client runs as uid {uid})"
        )),
    }
}

struct Client {
    fd: OwnedFd,
    line: Vec<u8>,
    until: Duration,
    /// Why it is refused: said once its line is read (a socket closed with unread data
    /// resets the connection, and the client would never see why).
    refused: Option<String>,
}

/// A client whose request line is complete, waiting for its answer.
pub struct Pending {
    fd: OwnedFd,
    pub line: String,
}

/// The listening socket and the clients being read.
pub struct Server {
    listener: OwnedFd,
    clients: Vec<Client>,
}

impl Server {
    pub fn new(listener: OwnedFd) -> Server {
        Server {
            listener,
            clients: Vec::new(),
        }
    }

    /// The listener and every client, for the event loop's `poll`.
    pub fn readable(&self) -> impl Iterator<Item = BorrowedFd<'_>> {
        std::iter::once(self.listener.as_fd()).chain(self.clients.iter().map(|c| c.fd.as_fd()))
    }

    /// When the oldest client times out.
    pub fn next_deadline(&self) -> Option<Duration> {
        self.clients.iter().map(|c| c.until).min()
    }

    /// Accepts who is waiting (refusing non-root peers and clients beyond the limit), reads
    /// what clients sent, drops the timed out; returns the complete requests.
    pub fn poll(&mut self, sys: &dyn Sys) -> Vec<Pending> {
        let now = sys.now();
        self.accept(now);
        let mut done = Vec::new();
        let mut kept = Vec::new();
        for mut c in self.clients.drain(..) {
            match read_line(&mut c) {
                Read::More if now < c.until => kept.push(c),
                Read::More => answer(&c.fd, Verdict::Refused, "no request line in time\n"),
                Read::Line(_) if c.refused.is_some() => {
                    answer(&c.fd, Verdict::Refused, &c.refused.unwrap_or_default())
                }
                Read::Line(line) => done.push(Pending { fd: c.fd, line }),
                Read::TooLong => {
                    answer(
                        &c.fd,
                        Verdict::Refused,
                        &format!("the request is longer than {MAX_REQUEST} bytes\n"),
                    );
                    discard_unread(&c.fd);
                }
                Read::Gone => {}
            }
        }
        self.clients = kept;
        done
    }

    fn accept(&mut self, now: Duration) {
        // Bounded: a flood of connections cannot keep PID 1 here.
        for _ in 0..64 {
            let fd = match rustix::net::accept_with(
                &self.listener,
                SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
            ) {
                Ok(fd) => fd,
                Err(rustix::io::Errno::INTR) => continue,
                Err(_) => return,
            };
            if self.clients.len() >= MAX_CLIENTS {
                let why = format!("busy: {MAX_CLIENTS} clients are being served\n");
                answer(&fd, Verdict::Refused, &why);
                discard_unread(&fd);
                continue;
            }
            let uid = rustix::net::sockopt::socket_peercred(&fd).map(|c| c.uid.as_raw());
            let refused = match uid {
                Err(e) => Some(format!("cannot tell who the client is: {e}\n")),
                Ok(uid) => peer_allowed(uid).err().map(|why| {
                    log::warn!("control: refused a client: {why}");
                    format!("{why}\n")
                }),
            };
            self.clients.push(Client {
                fd,
                line: Vec::new(),
                until: now + CLIENT_TIMEOUT,
                refused,
            });
        }
    }
}

impl Pending {
    /// Writes the answer and closes the connection.
    pub fn answer(self, verdict: Verdict, text: &str) {
        answer(&self.fd, verdict, text);
    }
}

enum Read {
    More,
    Line(String),
    TooLong,
    Gone,
}

fn read_line(c: &mut Client) -> Read {
    let mut buf = [0u8; MAX_REQUEST + 1];
    loop {
        let room = MAX_REQUEST + 1 - c.line.len();
        match rustix::net::recv(&c.fd, &mut buf[..room], RecvFlags::DONTWAIT) {
            Ok((0, _)) => return Read::Gone,
            Ok((n, _)) => {
                c.line.extend_from_slice(&buf[..n]);
                if let Some(end) = c.line.iter().position(|&b| b == b'\n') {
                    return Read::Line(String::from_utf8_lossy(&c.line[..end]).into_owned());
                }
                if c.line.len() > MAX_REQUEST {
                    return Read::TooLong;
                }
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(rustix::io::Errno::AGAIN) => return Read::More,
            Err(_) => return Read::Gone,
        }
    }
}

/// One write, never waiting, never raising SIGPIPE; the descriptor is closed by the caller's
/// drop.
fn answer(fd: &OwnedFd, verdict: Verdict, text: &str) {
    let reply = format!("{}\n{text}", verdict.word());
    let _ = rustix::net::send(
        fd,
        reply.as_bytes(),
        SendFlags::DONTWAIT | SendFlags::NOSIGNAL,
    );
}

/// Reads (a bounded amount of) what the client sent beyond the limit: a socket closed with
/// unread data resets the connection, and the client would not see the refusal.
fn discard_unread(fd: &OwnedFd) {
    let mut buf = [0u8; 4096];
    for _ in 0..16 {
        if !matches!(
            rustix::net::recv(fd, &mut buf, RecvFlags::DONTWAIT),
            Ok((1.., _))
        ) {
            return;
        }
    }
}

/// Seconds as `3d4h`, `2h5m`, `5m3s`, `42s`.
pub fn duration_text(d: Duration) -> String {
    let s = d.as_secs();
    let (days, hours, mins, secs) = (s / 86400, s / 3600 % 24, s / 60 % 60, s % 60);
    match () {
        _ if days > 0 => format!("{days}d{hours}h"),
        _ if hours > 0 => format!("{hours}h{mins}m"),
        _ if mins > 0 => format!("{mins}m{secs}s"),
        _ => format!("{secs}s"),
    }
}

/// The text of `ramboot ctl status`: one aligned line per service and inittab entry.
pub fn status_text(list: &[Status]) -> String {
    let width = list.iter().map(|s| s.name.len()).max().unwrap_or(0).max(4);
    let mut out = String::new();
    for s in list {
        let pid = s.pid.map_or("-".into(), |p| p.to_string());
        let up = s.uptime.map_or("-".into(), duration_text);
        let exit = s.last_exit.map_or("-".into(), |e| e.to_string());
        out.push_str(&format!(
            "{:<width$}  {:<11}  pid {pid:<7}  up {up:<6}  restarts {:<3}  last exit: {exit}\n",
            s.name, s.state, s.restarts
        ));
    }
    out
}

/// `ramboot ctl status --json`: `{"services": [...], "inittab": [...]}`.
pub fn status_json(list: &[Status]) -> String {
    let item = |s: &Status| {
        let num = |n: Option<f64>| n.map_or(Json::Null, Json::Num);
        Json::obj([
            ("name", Json::str(&s.name)),
            ("state", Json::str(s.state)),
            ("pid", num(s.pid.map(f64::from))),
            ("uptime_seconds", num(s.uptime.map(|u| u.as_secs() as f64))),
            ("restarts", Json::Num(f64::from(s.restarts))),
            (
                "last_exit",
                Json::opt_str(s.last_exit.map(|e| e.to_string())),
            ),
        ])
    };
    let of = |service: bool| {
        Json::Arr(
            list.iter()
                .filter(|s| s.service == service)
                .map(item)
                .collect(),
        )
    };
    let doc = Json::obj([("services", of(true)), ("inittab", of(false))]);
    doc.render(true) + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_and_round_trip() {
        for r in [
            Request::Status {
                json: false,
                name: None,
            },
            Request::Status {
                json: true,
                name: Some("web".into()),
            },
            Request::Start("a/log".into()),
            Request::Stop("x".into()),
            Request::Restart("y".into()),
        ] {
            assert_eq!(Request::parse(r.line().trim_end()), Ok(r));
        }
        assert_eq!(Request::parse("stop"), Err("stop needs a name".into()));
        assert_eq!(
            Request::parse("frob x"),
            Err("unknown request \"frob\"".into())
        );
        assert!(Request::parse("stop a b").is_err());
        assert!(Request::parse("").is_err());
    }

    #[test]
    fn only_root_is_allowed() {
        assert_eq!(peer_allowed(0), Ok(()));
        assert_eq!(
            peer_allowed(65534),
            Err("only root may control PID 1 (the client runs as uid 65534)".into())
        );
    }

    #[test]
    fn durations_read_short() {
        let t = |s| duration_text(Duration::from_secs(s));
        assert_eq!(
            [t(0), t(42), t(303), t(7500), t(90000)],
            ["0s", "42s", "5m3s", "2h5m", "1d1h"]
        );
    }
}
