//! HTTP/1.1 GET for the boot: the apkovl, the repositories' indexes and packages and the modloop
//! from a server, as Alpine's initramfs does with busybox `wget`.
//!
//! Own request and redirect logic over `httparse` (the kept response-head parser hyper uses): a
//! client crate would bring pools, async runtimes and encodings the boot never needs, in an init
//! with a size budget. One connection per request (`Connection: close`), bodies by
//! `Content-Length`, chunked or until the server closes. Every wait is bounded by a timeout on
//! the socket (no sleeps but the backoff between attempts); bodies are bounded in size and the
//! length the server announced is checked. HTTPS goes through `net::tls` when the init was built
//! with it (cargo feature `tls`).

use crate::sys::{Connection, Sys};
use std::fs;
use std::io::{self, Write};
use std::path::Path;
use std::time::Duration;

/// Bounds of one download.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest body accepted.
    pub max_bytes: u64,
    /// For each connection attempt.
    pub connect: Duration,
    /// Longest silence from the server once connected.
    pub idle: Duration,
    /// Tries in all (the first and the retries).
    pub attempts: u32,
    /// Before the first retry; doubled for each next one.
    pub backoff: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 1 << 30,
            connect: Duration::from_secs(5),
            idle: Duration::from_secs(10),
            attempts: 3,
            backoff: Duration::from_millis(500),
        }
    }
}

/// Redirects followed before giving up (wget and curl stop at 20 and 50; a boot has less time).
pub const MAX_REDIRECTS: usize = 5;
/// Response heads larger than this are refused.
const MAX_HEAD: usize = 16 * 1024;
/// Bodies at least this large get progress lines.
const PROGRESS_FROM: u64 = 1 << 20;

/// Why a download failed. Callers say which URL; a variant names a host or URL only when it
/// may differ from that one (after a redirect).
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{url}: {why}")]
    BadUrl { url: String, why: &'static str },
    #[error("{host} unreachable: {source}")]
    Unreachable {
        host: String,
        #[source]
        source: io::Error,
    },
    #[error("{host} did not answer within {secs}s")]
    TimedOut { host: String, secs: u64 },
    #[error("{host}: connection failed: {source}")]
    Io {
        host: String,
        #[source]
        source: io::Error,
    },
    #[error("TLS with {host} refused: {reason}")]
    Tls { host: String, reason: String },
    #[error("HTTPS needs the TLS-enabled init (ramboot mkinitfs --tls)")]
    NoTls { url: String },
    #[error("the server answered {code} {reason}")]
    Status {
        url: String,
        code: u16,
        reason: String,
    },
    #[error("more than {MAX_REDIRECTS} redirects")]
    TooManyRedirects { url: String },
    #[error("{from}: redirect to {to} refused (HTTPS to plain HTTP)")]
    Downgrade { from: String, to: String },
    #[error("larger than the {limit} bytes allowed")]
    TooLarge { url: String, limit: u64 },
    #[error("the body ended after {got} of {expected} bytes")]
    Truncated {
        url: String,
        got: u64,
        expected: u64,
    },
    #[error("{host}: not a valid HTTP answer: {why}")]
    Protocol { host: String, why: &'static str },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: io::Error,
    },
}

impl FetchError {
    /// Worth another attempt: the network or the server may be better in a moment. A refusal
    /// (a 4xx, a certificate, a size) stays a refusal.
    fn transient(&self) -> bool {
        match self {
            FetchError::Unreachable { .. }
            | FetchError::TimedOut { .. }
            | FetchError::Io { .. }
            | FetchError::Truncated { .. }
            | FetchError::Protocol { .. } => true,
            FetchError::Status { code, .. } => *code >= 500 || *code == 408 || *code == 429,
            _ => false,
        }
    }
}

/// A parsed `http://` or `https://` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    pub https: bool,
    /// Without brackets for an IPv6 literal.
    pub host: String,
    pub port: u16,
    /// From the first `/` on, query included, fragment dropped; `/` when empty.
    pub path: String,
}

impl Url {
    pub fn parse(text: &str) -> Result<Url, FetchError> {
        let bad = |why| FetchError::BadUrl {
            url: text.into(),
            why,
        };
        let (https, rest) = if let Some(r) = text.strip_prefix("http://") {
            (false, r)
        } else if let Some(r) = text.strip_prefix("https://") {
            (true, r)
        } else {
            return Err(bad("only http:// and https:// URLs can be fetched"));
        };
        let rest = rest.split('#').next().unwrap_or_default();
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let path = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_string()
        };
        if authority.contains('@') {
            return Err(bad("user names in URLs are not supported"));
        }
        let (host, port) = if let Some(r) = authority.strip_prefix('[') {
            let (h, after) = r
                .split_once(']')
                .ok_or_else(|| bad("unclosed [ in the host"))?;
            (h, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        let port = match port {
            None | Some("") => {
                if https {
                    443
                } else {
                    80
                }
            }
            Some(p) => p.parse().map_err(|_| bad("the port is not a number"))?,
        };
        if host.is_empty() || host.contains(|c: char| c.is_ascii_whitespace() || c.is_control()) {
            return Err(bad("no valid host"));
        }
        if path.contains(|c: char| c.is_ascii_whitespace() || c.is_control()) {
            return Err(bad("spaces or control characters in the path"));
        }
        Ok(Url {
            https,
            host: host.into(),
            port,
            path,
        })
    }

    /// `host` or `host:port`, as the `Host` header and messages want it.
    pub fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let default = if self.https { 443 } else { 80 };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// The URL a `Location` leads to from here (absolute, host-relative or path-relative).
    fn follow(&self, location: &str) -> Result<Url, FetchError> {
        if location.starts_with("http://") || location.starts_with("https://") {
            return Url::parse(location);
        }
        let scheme = if self.https { "https" } else { "http" };
        if let Some(rest) = location.strip_prefix("//") {
            return Url::parse(&format!("{scheme}://{rest}"));
        }
        let path = if location.starts_with('/') {
            location.to_string()
        } else {
            let here = self.path.split('?').next().unwrap_or("/");
            let dir = &here[..here.rfind('/').map_or(0, |i| i + 1)];
            format!("{dir}{location}")
        };
        Url::parse(&format!("{scheme}://{}{path}", self.authority()))
    }
}

impl std::fmt::Display for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        write!(f, "{scheme}://{}{}", self.authority(), self.path)
    }
}

/// The local file name Alpine gives a download: the URL's last path component without its
/// `?query` (`wget -O /tmp/${ovl##*/}` after `${ovl%%\?*}`); `index.html` for a bare host, as
/// wget names it.
pub fn local_name(url: &str) -> String {
    let no_query = url.split(['?', '#']).next().unwrap_or_default();
    let after_scheme = no_query.split_once("://").map_or(no_query, |(_, r)| r);
    match after_scheme.split_once('/') {
        Some((_, path)) => match path.rsplit('/').next() {
            Some(n) if !n.is_empty() && n != "." && n != ".." => n.to_string(),
            _ => "index.html".into(),
        },
        None => "index.html".into(),
    }
}

/// A finished download.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fetched {
    pub bytes: u64,
    /// When its first body byte arrived (`Sys::now`), if it had any.
    pub first_byte: Option<Duration>,
}

/// Downloads `url` into `dest` (on the host path of the double or the real root), retrying
/// transient failures with a doubling backoff. Each attempt starts the file anew; a failed
/// download leaves no file.
pub fn fetch_to_file(
    sys: &dyn Sys,
    url: &str,
    dest: &Path,
    limits: &Limits,
) -> Result<Fetched, FetchError> {
    fetch_to_host_path(sys, url, &sys.path(dest), limits)
}

/// [`fetch_to_file`] to a path already on the host side of [`Sys::path`] (the installer's
/// cache).
pub fn fetch_to_host_path(
    sys: &dyn Sys,
    url: &str,
    path: &Path,
    limits: &Limits,
) -> Result<Fetched, FetchError> {
    let dest = path;
    let write_err = |source| FetchError::Write {
        path: dest.display().to_string(),
        source,
    };
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(write_err)?;
    }
    let mut backoff = limits.backoff;
    let mut attempt = 1;
    loop {
        let mut file = fs::File::create(path).map_err(write_err)?;
        let mut first_byte = None;
        let mut sink = |chunk: &[u8]| {
            first_byte.get_or_insert_with(|| sys.now());
            file.write_all(chunk).map_err(write_err)
        };
        match get(sys, url, &mut sink, limits) {
            Ok(bytes) => return Ok(Fetched { bytes, first_byte }),
            Err(e) => {
                drop(file);
                let _ = fs::remove_file(path);
                if !e.transient() || attempt >= limits.attempts {
                    return Err(e);
                }
                log::info!(
                    "{e}; trying again in {}s",
                    crate::decimal::Decimal::secs(backoff)
                );
                sys.sleep(backoff);
                backoff *= 2;
                attempt += 1;
            }
        }
    }
}

/// One GET of `url`, redirects followed, the body handed to `sink` as it comes.
pub fn get(
    sys: &dyn Sys,
    url: &str,
    sink: &mut dyn FnMut(&[u8]) -> Result<(), FetchError>,
    limits: &Limits,
) -> Result<u64, FetchError> {
    let mut at = Url::parse(url)?;
    for _ in 0..=MAX_REDIRECTS {
        let mut conn = open(sys, &at, limits)?;
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: ramboot/{}\r\nAccept: */*\r\n\
             Accept-Encoding: identity\r\nConnection: close\r\n\r\n",
            at.path,
            at.authority(),
            env!("CARGO_PKG_VERSION")
        );
        let host = at.authority();
        let mut wire = Wire::new(&mut *conn, &host, limits.idle);
        wire.send(request.as_bytes())?;
        let head = wire.head()?;
        match head.code {
            200 => return body(&mut wire, &head, &at, sink, limits),
            301 | 302 | 303 | 307 | 308 => {
                let Some(location) = head.location.as_deref() else {
                    return Err(FetchError::Protocol {
                        host,
                        why: "a redirect without a Location",
                    });
                };
                let next = at.follow(location)?;
                if at.https && !next.https {
                    return Err(FetchError::Downgrade {
                        from: at.to_string(),
                        to: next.to_string(),
                    });
                }
                log::debug!("{at} redirects to {next}");
                at = next;
            }
            code => {
                return Err(FetchError::Status {
                    url: at.to_string(),
                    code,
                    reason: head.reason,
                })
            }
        }
    }
    Err(FetchError::TooManyRedirects { url: url.into() })
}

/// A connection to `url`'s server, TLS on top for `https`.
fn open(sys: &dyn Sys, url: &Url, limits: &Limits) -> Result<Box<dyn Connection>, FetchError> {
    let host = url.authority();
    let conn = sys
        .tcp_connect(&url.host, url.port, limits.connect)
        .map_err(|source| match source.kind() {
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => FetchError::TimedOut {
                host: host.clone(),
                secs: limits.connect.as_secs(),
            },
            _ => FetchError::Unreachable {
                host: host.clone(),
                source,
            },
        })?;
    if !url.https {
        return Ok(conn);
    }
    #[cfg(feature = "tls")]
    {
        super::tls::wrap(sys, conn, &url.host)
    }
    #[cfg(not(feature = "tls"))]
    {
        drop(conn);
        Err(FetchError::NoTls {
            url: url.to_string(),
        })
    }
}

/// What the response head says.
struct Head {
    code: u16,
    reason: String,
    length: Option<u64>,
    chunked: bool,
    location: Option<String>,
}

/// The connection with a read buffer and the idle timeout applied to every wait.
struct Wire<'a> {
    conn: &'a mut dyn Connection,
    host: &'a str,
    idle: Duration,
    /// Bytes read and not yet used are `buf[start..end]`.
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl<'a> Wire<'a> {
    fn new(conn: &'a mut dyn Connection, host: &'a str, idle: Duration) -> Self {
        Wire {
            conn,
            host,
            idle,
            buf: vec![0; 2 * MAX_HEAD],
            start: 0,
            end: 0,
        }
    }

    fn failed(&self, e: io::Error) -> FetchError {
        match e.kind() {
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => FetchError::TimedOut {
                host: self.host.into(),
                secs: self.idle.as_secs(),
            },
            // The TLS layer says why it refused (certificate, handshake) in its own error.
            _ if e.get_ref().is_some_and(|i| i.is::<TlsRefusal>()) => FetchError::Tls {
                host: self.host.into(),
                reason: e.into_inner().map(|i| i.to_string()).unwrap_or_default(),
            },
            _ => FetchError::Io {
                host: self.host.into(),
                source: e,
            },
        }
    }

    fn send(&mut self, bytes: &[u8]) -> Result<(), FetchError> {
        let r = self.conn.set_timeout(self.idle).and_then(|()| {
            self.conn.write_all(bytes)?;
            self.conn.flush()
        });
        r.map_err(|e| self.failed(e))
    }

    /// What was read and not yet used.
    fn pending(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Reads more from the server after what is pending; false at its end of stream. The
    /// pending bytes must be less than the buffer (callers bound heads and lines).
    fn fill(&mut self) -> Result<bool, FetchError> {
        if self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            (self.start, self.end) = (0, self.end - self.start);
        }
        let r = self.conn.set_timeout(self.idle).and_then(|()| loop {
            match self.conn.read(&mut self.buf[self.end..]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => break r,
            }
        });
        match r {
            Ok(n) => {
                self.end += n;
                Ok(n > 0)
            }
            Err(e) => Err(self.failed(e)),
        }
    }

    fn protocol(&self, why: &'static str) -> FetchError {
        FetchError::Protocol {
            host: self.host.into(),
            why,
        }
    }

    /// The status line and headers.
    fn head(&mut self) -> Result<Head, FetchError> {
        loop {
            let pending = self.pending();
            if let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = parse_head(&pending[..end + 4]).map_err(|why| self.protocol(why))?;
                self.start += end + 4;
                // 1xx answers are followed by the real one.
                if (100..200).contains(&head.code) {
                    continue;
                }
                return Ok(head);
            }
            if pending.len() > MAX_HEAD {
                return Err(self.protocol("the response head is too large"));
            }
            if !self.fill()? {
                return Err(self.protocol("the connection closed before an answer"));
            }
        }
    }

    /// Up to `max` body bytes as they come; empty at the end of the stream.
    fn take(&mut self, max: usize) -> Result<&[u8], FetchError> {
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
            if !self.fill()? {
                return Ok(&[]);
            }
        }
        let n = max.min(self.end - self.start);
        let s = self.start;
        self.start += n;
        Ok(&self.buf[s..s + n])
    }

    /// One `\r\n`-terminated line (chunk sizes, trailers), without the terminator.
    fn line(&mut self) -> Result<String, FetchError> {
        loop {
            let pending = self.pending();
            if let Some(end) = pending.windows(2).position(|w| w == b"\r\n") {
                let text = String::from_utf8_lossy(&pending[..end]).into_owned();
                self.start += end + 2;
                return Ok(text);
            }
            if pending.len() > 4096 {
                return Err(self.protocol("a chunk line is too long"));
            }
            if !self.fill()? {
                return Err(self.protocol("the body ended inside a chunk line"));
            }
        }
    }
}

fn parse_head(bytes: &[u8]) -> Result<Head, &'static str> {
    let mut headers = [httparse::EMPTY_HEADER; 48];
    let mut r = httparse::Response::new(&mut headers);
    match r.parse(bytes) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err("an incomplete response head"),
        Err(_) => return Err("a malformed response head"),
    }
    let mut head = Head {
        code: r.code.unwrap_or(0),
        reason: r.reason.unwrap_or("").into(),
        length: None,
        chunked: false,
        location: None,
    };
    for h in r.headers.iter() {
        let value = std::str::from_utf8(h.value).map_err(|_| "a header that is not text")?;
        let value = value.trim();
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = value
                .parse()
                .map_err(|_| "a Content-Length that is not a number")?;
            if head.length.is_some_and(|old| old != n) {
                return Err("two different Content-Length headers");
            }
            head.length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = value
                .rsplit(',')
                .next()
                .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
            if !head.chunked {
                return Err("a transfer encoding other than chunked");
            }
        } else if h.name.eq_ignore_ascii_case("location") {
            head.location = Some(value.into());
        }
    }
    Ok(head)
}

/// Reports progress of a large body in quarters (or every 4 MiB when the size is unknown).
struct Progress<'a> {
    url: &'a Url,
    total: Option<u64>,
    next: u64,
}

impl<'a> Progress<'a> {
    fn new(url: &'a Url, total: Option<u64>) -> Self {
        let next = match total {
            Some(t) if t >= PROGRESS_FROM => t / 4,
            Some(_) => u64::MAX,
            None => 4 * PROGRESS_FROM,
        };
        Progress { url, total, next }
    }

    fn at(&mut self, got: u64) {
        if got < self.next {
            return;
        }
        let kib = got >> 10;
        match self.total {
            Some(t) => {
                log::info!("fetching {}: {kib} of {} KiB", self.url, t >> 10);
                self.next = self.next.saturating_add(t / 4);
            }
            None => {
                log::info!("fetching {}: {kib} KiB", self.url);
                self.next += 4 * PROGRESS_FROM;
            }
        }
    }
}

/// The body of a 200 answer into `sink`, by its length, in chunks, or up to the close.
fn body(
    wire: &mut Wire<'_>,
    head: &Head,
    url: &Url,
    sink: &mut dyn FnMut(&[u8]) -> Result<(), FetchError>,
    limits: &Limits,
) -> Result<u64, FetchError> {
    let too_large = || FetchError::TooLarge {
        url: url.to_string(),
        limit: limits.max_bytes,
    };
    let length = if head.chunked { None } else { head.length };
    if length.is_some_and(|n| n > limits.max_bytes) {
        return Err(too_large());
    }
    let mut progress = Progress::new(url, length);
    let mut got = 0u64;
    let mut copy = |wire: &mut Wire<'_>, want: u64, got: &mut u64| -> Result<bool, FetchError> {
        let mut left = want;
        while left > 0 {
            let piece = wire.take(left.min(1 << 16) as usize)?;
            if piece.is_empty() {
                return Ok(false);
            }
            *got += piece.len() as u64;
            if *got > limits.max_bytes {
                return Err(too_large());
            }
            left -= piece.len() as u64;
            sink(piece)?;
            progress.at(*got);
        }
        Ok(true)
    };
    if head.chunked {
        loop {
            let line = wire.line()?;
            let size = line.split(';').next().unwrap_or_default().trim();
            let size =
                u64::from_str_radix(size, 16).map_err(|_| wire.protocol("a bad chunk size"))?;
            if size == 0 {
                // Trailers up to the empty line; a server that closes here is done too.
                while !wire.line().unwrap_or_default().is_empty() {}
                return Ok(got);
            }
            if !copy(wire, size, &mut got)? {
                return Err(wire.protocol("the body ended inside a chunk"));
            }
            if !wire.line()?.is_empty() {
                return Err(wire.protocol("a chunk longer than its size"));
            }
        }
    }
    match length {
        Some(n) => {
            if !copy(wire, n, &mut got)? {
                return Err(FetchError::Truncated {
                    url: url.to_string(),
                    got,
                    expected: n,
                });
            }
        }
        None => {
            copy(wire, u64::MAX, &mut got)?;
        }
    }
    Ok(got)
}

/// The error the TLS layer puts inside an `io::Error` when it refuses the server (certificate,
/// handshake): the reader of the answer turns it into [`FetchError::Tls`] naming the host.
#[derive(Debug)]
pub struct TlsRefusal(pub String);

impl std::fmt::Display for TlsRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsRefusal {}
