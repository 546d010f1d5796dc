//! The boot's HTTP client (issue 10, point 4) against in-process servers on the recording
//! double: bodies by length and in chunks, redirects and their bounds, a truncated body, the
//! size limit, a silent server, retries, and the local name without the `?query`.
// Tests read the downloaded files with plain reads.
#![allow(clippy::disallowed_methods)]

use ramboot::net::http::{fetch_to_file, get, local_name, FetchError, Limits, Url};
use ramboot::sys::{Call, Connection, RecordingSys, Sys};
use std::collections::VecDeque;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One scripted connection: what the server sends (in these pieces), then either its close or
/// silence (reads time out, on the double's clock).
struct Scripted {
    sys: RecordingSys,
    pieces: VecDeque<Vec<u8>>,
    silent_at_end: bool,
    timeout: Duration,
}

impl io::Read for Scripted {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(mut piece) = self.pieces.pop_front() else {
            if self.silent_at_end {
                self.sys.advance(self.timeout);
                return Err(io::ErrorKind::WouldBlock.into());
            }
            return Ok(0);
        };
        let n = piece.len().min(buf.len());
        buf[..n].copy_from_slice(&piece[..n]);
        if n < piece.len() {
            self.pieces.push_front(piece.split_off(n));
        }
        Ok(n)
    }
}

/// An answer of a fake server: the pieces sent, and whether the server then goes silent.
#[derive(Clone)]
struct Answer {
    pieces: Vec<Vec<u8>>,
    silent: bool,
}

fn answer(text: &[u8]) -> Answer {
    Answer {
        pieces: vec![text.to_vec()],
        silent: false,
    }
}

type Route = Arc<dyn Fn(&str, u16, &str) -> Option<Answer> + Send + Sync>;

/// A server on the double: `route(host, port, path)` answers each request (`None`: the
/// connection closes without an answer). Gives the requests seen.
fn serve(
    sys: &RecordingSys,
    route: impl Fn(&str, u16, &str) -> Option<Answer> + Send + Sync + 'static,
) -> Arc<Mutex<Vec<String>>> {
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seen = requests.clone();
    let s = sys.clone();
    let route: Route = Arc::new(route);
    sys.serve_tcp(move |host, port| {
        Ok(Box::new(Lazy {
            inner: None,
            sys: s.clone(),
            host: host.into(),
            port,
            requests: seen.clone(),
            route: route.clone(),
        }))
    });
    requests
}

/// A connection that picks its answer once the request is written.
struct Lazy {
    inner: Option<Scripted>,
    sys: RecordingSys,
    host: String,
    port: u16,
    requests: Arc<Mutex<Vec<String>>>,
    route: Route,
}

impl io::Write for Lazy {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let text = String::from_utf8_lossy(buf).into_owned();
        self.requests.lock().unwrap().push(text.clone());
        let path = text.split(' ').nth(1).unwrap_or("/").to_string();
        let a = (self.route)(&self.host, self.port, &path).unwrap_or(Answer {
            pieces: vec![],
            silent: false,
        });
        self.inner = Some(Scripted {
            sys: self.sys.clone(),
            pieces: a.pieces.into(),
            silent_at_end: a.silent,
            timeout: Duration::from_secs(1),
        });
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl io::Read for Lazy {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.inner {
            Some(s) => s.read(buf),
            None => Ok(0),
        }
    }
}

impl Connection for Lazy {
    fn set_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        if let Some(s) = &mut self.inner {
            s.timeout = timeout;
        }
        Ok(())
    }
}

fn world() -> (tempfile::TempDir, RecordingSys) {
    let dir = tempfile::tempdir().unwrap();
    let sys = RecordingSys::new(dir.path());
    (dir, sys)
}

fn ok_with(body: &[u8]) -> Answer {
    let mut t = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    t.extend(body);
    answer(&t)
}

fn fetch(sys: &RecordingSys, url: &str) -> Result<Vec<u8>, FetchError> {
    let mut out = Vec::new();
    get(
        sys,
        url,
        &mut |c: &[u8]| {
            out.extend(c);
            Ok(())
        },
        &Limits::default(),
    )?;
    Ok(out)
}

#[test]
fn a_body_by_content_length_arrives_whole_even_in_small_pieces() {
    let (_d, sys) = world();
    let body: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
    let mut a = ok_with(&body);
    let all = a.pieces.concat();
    a.pieces = all.chunks(7).map(<[u8]>::to_vec).collect();
    let reqs = serve(&sys, move |_, _, p| (p == "/x.bin").then(|| a.clone()));
    assert_eq!(fetch(&sys, "http://10.0.2.100/x.bin").unwrap(), body);
    let r = reqs.lock().unwrap().concat();
    assert!(
        r.starts_with("GET /x.bin HTTP/1.1\r\nHost: 10.0.2.100\r\n"),
        "{r}"
    );
    assert!(r.contains("Connection: close\r\n"), "{r}");
}

#[test]
fn a_chunked_body_is_decoded_with_extensions_and_trailers() {
    let (_d, sys) = world();
    let a = answer(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n\
          7\r\n, world\r\n0\r\nX-Trailer: 1\r\n\r\n",
    );
    serve(&sys, move |_, _, _| Some(a.clone()));
    assert_eq!(fetch(&sys, "http://h/c").unwrap(), b"hello, world");
}

#[test]
fn a_body_without_length_runs_to_the_close() {
    let (_d, sys) = world();
    let a = answer(b"HTTP/1.0 200 OK\r\n\r\nall of it");
    serve(&sys, move |_, _, _| Some(a.clone()));
    assert_eq!(fetch(&sys, "http://h/c").unwrap(), b"all of it");
}

#[test]
fn redirects_are_followed_relative_and_absolute_and_bounded() {
    let (_d, sys) = world();
    serve(&sys, |host, port, path| {
        Some(match (host, port, path) {
            ("a", 80, "/start") => answer(b"HTTP/1.1 302 Found\r\nLocation: next\r\n\r\n"),
            ("a", 80, "/next") => {
                answer(b"HTTP/1.1 301 Moved\r\nLocation: http://b:8080/final?x=1\r\n\r\n")
            }
            ("b", 8080, "/final?x=1") => ok_with(b"done"),
            (_, _, "/loop") => answer(b"HTTP/1.1 307 Again\r\nLocation: /loop\r\n\r\n"),
            _ => answer(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
        })
    });
    assert_eq!(fetch(&sys, "http://a/start").unwrap(), b"done");
    let e = fetch(&sys, "http://a/loop").unwrap_err();
    assert!(matches!(e, FetchError::TooManyRedirects { .. }), "{e}");
    let e = fetch(&sys, "http://a/missing").unwrap_err();
    assert_eq!(e.to_string(), "the server answered 404 Not Found");
}

#[test]
fn a_redirect_from_https_to_http_is_refused() {
    let (_d, sys) = world();
    // Without the TLS build the HTTPS request itself is refused first; the rule is checked on
    // the URLs the redirect joins either way.
    let from = Url::parse("https://secure/a").unwrap();
    assert!(from.https);
    serve(&sys, |_, _, _| {
        Some(answer(
            b"HTTP/1.1 302 Found\r\nLocation: http://plain/a\r\n\r\n",
        ))
    });
    let e = fetch(&sys, "https://secure/a").unwrap_err();
    assert!(
        matches!(e, FetchError::Downgrade { .. } | FetchError::NoTls { .. }),
        "{e}"
    );
}

#[test]
fn a_truncated_body_is_an_error_and_leaves_no_file() {
    let (d, sys) = world();
    let a = answer(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
    serve(&sys, move |_, _, _| Some(a.clone()));
    let limits = Limits {
        attempts: 2,
        ..Limits::default()
    };
    let e = fetch_to_file(&sys, "http://h/f", Path::new("/tmp/f"), &limits).unwrap_err();
    assert_eq!(e.to_string(), "the body ended after 3 of 10 bytes");
    assert!(!d.path().join("tmp/f").exists());
    // Truncation is transient: tried again once after the backoff.
    let connects = sys
        .calls()
        .iter()
        .filter(|c| matches!(c, Call::TcpConnect { .. }))
        .count();
    assert_eq!(connects, 2);
    assert!(sys
        .calls()
        .iter()
        .any(|c| matches!(c, Call::Sleep { duration } if *duration == limits.backoff)));
}

#[test]
fn the_size_limit_refuses_announced_and_streamed_bodies() {
    let (_d, sys) = world();
    serve(&sys, |_, _, p| {
        Some(match p {
            "/announced" => answer(b"HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n"),
            _ => answer(b"HTTP/1.1 200 OK\r\n\r\n0123456789abcdef"),
        })
    });
    let limits = Limits {
        max_bytes: 10,
        ..Limits::default()
    };
    let mut sink = |_: &[u8]| Ok(());
    for p in ["announced", "streamed"] {
        let e = get(&sys, &format!("http://h/{p}"), &mut sink, &limits).unwrap_err();
        assert!(matches!(e, FetchError::TooLarge { limit: 10, .. }), "{e}");
    }
}

#[test]
fn a_silent_server_times_out_on_the_idle_deadline_and_is_retried() {
    let (_d, sys) = world();
    serve(&sys, |_, _, _| {
        Some(Answer {
            pieces: vec![b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nsome".to_vec()],
            silent: true,
        })
    });
    let limits = Limits::default();
    let start = sys.now();
    let e = fetch_to_file(&sys, "http://h/f", Path::new("/tmp/f"), &limits).unwrap_err();
    assert_eq!(e.to_string(), "h did not answer within 10s");
    // Three attempts, each waiting out the idle timeout once, and the backoffs between them.
    let waited = sys.now() - start;
    assert_eq!(waited, limits.idle * 3 + limits.backoff * 3);
}

#[test]
fn a_refused_connection_is_retried_then_named() {
    let (_d, sys) = world();
    sys.serve_tcp(|_, _| Err(io::ErrorKind::ConnectionRefused.into()));
    let e = fetch_to_file(
        &sys,
        "http://10.0.2.100:81/x",
        Path::new("/tmp/x"),
        &Limits::default(),
    )
    .unwrap_err();
    assert!(
        e.to_string().starts_with("10.0.2.100:81 unreachable: "),
        "{e}"
    );
    let connects = sys
        .calls()
        .iter()
        .filter(|c| matches!(c, Call::TcpConnect { .. }))
        .count();
    assert_eq!(connects, 3);
}

#[test]
fn a_client_error_is_not_retried() {
    let (_d, sys) = world();
    serve(&sys, |_, _, _| {
        Some(answer(
            b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n",
        ))
    });
    let e = fetch_to_file(&sys, "http://h/x", Path::new("/tmp/x"), &Limits::default());
    assert!(matches!(e, Err(FetchError::Status { code: 403, .. })));
    assert_eq!(
        sys.calls()
            .iter()
            .filter(|c| matches!(c, Call::TcpConnect { .. }))
            .count(),
        1
    );
}

#[test]
fn the_query_is_sent_but_stripped_from_the_local_name() {
    // mkinitfs's tmpfs_root_apkovl_url: wget saves `…/file?x=y` as /tmp/file.
    assert_eq!(local_name("http://h/dir/file?x=y"), "file");
    assert_eq!(
        local_name("https://h/a/b.apkovl.tar.gz?token=1#frag"),
        "b.apkovl.tar.gz"
    );
    assert_eq!(local_name("http://h/"), "index.html");
    assert_eq!(local_name("http://h"), "index.html");
    let (d, sys) = world();
    let reqs = serve(&sys, |_, _, p| {
        (p == "/dir/file?x=y").then(|| ok_with(b"ovl"))
    });
    let url = "http://h/dir/file?x=y";
    let dest = Path::new("/tmp").join(local_name(url));
    fetch_to_file(&sys, url, &dest, &Limits::default()).unwrap();
    assert_eq!(std::fs::read(d.path().join("tmp/file")).unwrap(), b"ovl");
    assert!(reqs.lock().unwrap()[0].starts_with("GET /dir/file?x=y HTTP/1.1\r\n"));
}

#[test]
fn urls_parse_with_ports_ipv6_and_defaults() {
    let u = Url::parse("http://[fd00::1]:8080/x?y").unwrap();
    assert_eq!(
        (u.host.as_str(), u.port, u.path.as_str()),
        ("fd00::1", 8080, "/x?y")
    );
    assert_eq!(u.authority(), "[fd00::1]:8080");
    let u = Url::parse("https://example.org?q").unwrap();
    assert_eq!((u.port, u.path.as_str()), (443, "/?q"));
    assert!(Url::parse("ftp://h/x").is_err());
    assert!(Url::parse("http://user@h/x").is_err());
    assert!(Url::parse("http://h:port/x").is_err());
}
