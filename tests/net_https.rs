//! HTTPS downloads (cargo feature `tls`, issue 10 point 4) against an HTTPS server this test
//! starts on 127.0.0.1: rustls on both sides, certificates from `tests/data/tls` (made once by
//! its `make-certs.sh`). The client runs on the recording double, whose TCP connections this
//! test routes to the local server, so URLs can carry the host names the certificates name. The
//! CA bundle sits where `ramboot mkinitfs --tls` puts it and the init reads it.
//!
//! Built only with `--features tls` (`required-features` in Cargo.toml); the README's test
//! command runs it with `cargo test --features tls --test net_https`.
// Tests read certificates and write the bundle with plain file calls and use real sockets.
#![allow(clippy::disallowed_methods)]

use ramboot::net::http::{fetch_to_file, get, FetchError, Limits};
use ramboot::net::CA_BUNDLE;
use ramboot::sys::{RealSys, RecordingSys, Sys};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/tls")
        .join(name)
}

/// What the server sends for a request.
#[derive(Clone)]
enum Reply {
    /// 200 with this body and its length.
    Ok(Vec<u8>),
    /// 200 with this body and no length: the body runs to the (clean) close.
    UntilClose(Vec<u8>),
    /// 302 to this location.
    Redirect(String),
    /// 200 announcing `announced` bytes (or no length), then only `body`; then the TCP
    /// connection closes, with the TLS close_notify before it when `clean`.
    Cut {
        announced: Option<usize>,
        body: Vec<u8>,
        clean: bool,
    },
}

type Route = Arc<dyn Fn(&str) -> Reply + Send + Sync>;

/// `host path` of each request the server read.
type Seen = Arc<Mutex<Vec<String>>>;

/// An HTTPS server on 127.0.0.1 with the certificate `cert` (and its key): each connection is
/// one request, answered by `route(path)`. It serves at most `connections` connections and
/// then stops.
fn https_server(
    cert: &str,
    connections: usize,
    route: impl Fn(&str) -> Reply + Send + Sync + 'static,
) -> (u16, Seen) {
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(data(&format!("{cert}.pem")))
            .unwrap()
            .map(Result::unwrap)
            .collect();
    let key = PrivateKeyDer::from_pem_file(data(&format!("{cert}.key"))).unwrap();
    let config = ServerConfig::builder_with_provider(Arc::new(rustls_rustcrypto::provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let route: Route = Arc::new(route);
    std::thread::spawn(move || {
        for tcp in listener.incoming().take(connections) {
            let Ok(tcp) = tcp else { continue };
            // A client that refuses the certificate ends the handshake: nothing to answer.
            let _ = answer(config.clone(), tcp, &route, &s);
        }
    });
    (port, seen)
}

/// Reads one request on `tcp` and answers it.
fn answer(config: Arc<ServerConfig>, tcp: TcpStream, route: &Route, seen: &Seen) -> io::Result<()> {
    tcp.set_read_timeout(Some(Duration::from_secs(30)))?;
    let conn = ServerConnection::new(config).map_err(io::Error::other)?;
    let mut tls = StreamOwned::new(conn, tcp);
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tls.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        request.extend(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&request).into_owned();
    let path = text.split(' ').nth(1).unwrap_or("/").to_string();
    let host = text
        .lines()
        .find_map(|l| l.strip_prefix("Host: "))
        .unwrap_or_default()
        .to_string();
    seen.lock().unwrap().push(format!("{host} {path}"));
    let (head, body, clean) = match route(&path) {
        Reply::Ok(b) => (
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", b.len()),
            b,
            true,
        ),
        Reply::UntilClose(b) => (
            "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".into(),
            b,
            true,
        ),
        Reply::Redirect(to) => (
            format!("HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\n\r\n"),
            Vec::new(),
            true,
        ),
        Reply::Cut {
            announced,
            body,
            clean,
        } => (
            match announced {
                Some(n) => format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n"),
                None => "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".into(),
            },
            body,
            clean,
        ),
    };
    tls.write_all(head.as_bytes())?;
    tls.write_all(&body)?;
    if clean {
        tls.conn.send_close_notify();
    }
    tls.flush()?;
    tls.sock.shutdown(std::net::Shutdown::Write)?;
    // Until the client has read it all and closed: closing first could reset the connection.
    while tls.sock.read(&mut buf).is_ok_and(|n| n > 0) {}
    Ok(())
}

/// The double with `bundle` (a file of tests/data/tls, or none) at the initramfs' CA bundle
/// path, its connections to port 443 of `hosts` going to the local servers' ports.
fn client(bundle: Option<&str>, hosts: &[(&str, u16)]) -> (tempfile::TempDir, RecordingSys) {
    let dir = tempfile::tempdir().unwrap();
    if let Some(b) = bundle {
        let at = dir.path().join(CA_BUNDLE.trim_start_matches('/'));
        std::fs::create_dir_all(at.parent().unwrap()).unwrap();
        std::fs::copy(data(b), at).unwrap();
    }
    let sys = RecordingSys::new(dir.path());
    let hosts: Vec<(String, u16)> = hosts.iter().map(|(h, p)| (h.to_string(), *p)).collect();
    sys.serve_tcp(move |host, port| {
        let local = hosts
            .iter()
            .find(|(h, _)| h == host && port == 443)
            .map(|(_, p)| *p)
            .ok_or(io::ErrorKind::ConnectionRefused)?;
        // The real system's own TCP connection, to the local server.
        RealSys.tcp_connect("127.0.0.1", local, Duration::from_secs(5))
    });
    (dir, sys)
}

fn limits() -> Limits {
    Limits {
        attempts: 1,
        ..Limits::default()
    }
}

fn fetch(sys: &RecordingSys, url: &str, limits: &Limits) -> Result<Vec<u8>, FetchError> {
    let mut out = Vec::new();
    get(
        sys,
        url,
        &mut |c: &[u8]| {
            out.extend(c);
            Ok(())
        },
        limits,
    )?;
    Ok(out)
}

fn body() -> Vec<u8> {
    (0..200_000u32).map(|i| (i * 7) as u8).collect()
}

#[test]
fn a_file_arrives_whole_from_a_server_the_bundle_vouches_for() {
    let b = body();
    let (port, seen) = https_server("server", 1, move |p| match p {
        "/alpine/x86_64/APKINDEX.tar.gz" => Reply::Ok(b.clone()),
        _ => Reply::Ok(Vec::new()),
    });
    let (dir, sys) = client(Some("ca.pem"), &[("repo.test", port)]);
    let got = fetch_to_file(
        &sys,
        "https://repo.test/alpine/x86_64/APKINDEX.tar.gz",
        Path::new("/tmp/APKINDEX.tar.gz"),
        &limits(),
    )
    .unwrap();
    assert_eq!(got.bytes, body().len() as u64);
    assert_eq!(
        std::fs::read(dir.path().join("tmp/APKINDEX.tar.gz")).unwrap(),
        body()
    );
    assert_eq!(
        *seen.lock().unwrap(),
        ["repo.test /alpine/x86_64/APKINDEX.tar.gz"]
    );
}

#[test]
fn a_server_signed_by_a_ca_outside_the_bundle_is_refused_naming_the_issuer() {
    let (port, seen) = https_server("server", 1, |_| Reply::Ok(b"secret".to_vec()));
    let (_d, sys) = client(Some("other-ca.pem"), &[("repo.test", port)]);
    let e = fetch(&sys, "https://repo.test/x", &limits()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "TLS with repo.test refused: its certificate is not signed by a CA of the initramfs bundle"
    );
    assert!(seen.lock().unwrap().is_empty(), "no request sent");
}

#[test]
fn a_certificate_for_other_names_is_refused() {
    let (port, _) = https_server("server", 1, |_| Reply::Ok(b"x".to_vec()));
    let (_d, sys) = client(Some("ca.pem"), &[("elsewhere.test", port)]);
    let e = fetch(&sys, "https://elsewhere.test/x", &limits()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "TLS with elsewhere.test refused: its certificate is not valid for this host name"
    );
}

#[test]
fn an_expired_certificate_is_refused() {
    let (port, _) = https_server("expired", 1, |_| Reply::Ok(b"x".to_vec()));
    let (_d, sys) = client(Some("ca.pem"), &[("repo.test", port)]);
    let e = fetch(&sys, "https://repo.test/x", &limits()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "TLS with repo.test refused: its certificate has expired"
    );
}

#[test]
fn without_a_bundle_nothing_is_trusted_and_the_line_says_where_it_was_looked_for() {
    let (port, _) = https_server("server", 1, |_| Reply::Ok(b"x".to_vec()));
    let (_d, sys) = client(None, &[("repo.test", port)]);
    let e = fetch(&sys, "https://repo.test/x", &limits()).unwrap_err();
    let text = e.to_string();
    assert!(
        text.starts_with(&format!(
            "TLS with repo.test refused: no usable CA bundle at {CA_BUNDLE}: "
        )),
        "{text}"
    );
}

#[test]
fn a_redirect_to_another_https_server_is_followed_and_checked_there() {
    let (mirror, mirror_seen) = https_server("server", 1, |p| match p {
        "/v3.20/main/pkg.apk" => Reply::Ok(b"package".to_vec()),
        _ => Reply::Ok(Vec::new()),
    });
    let (repo, repo_seen) = https_server("server", 1, |_| {
        Reply::Redirect("https://mirror.test/v3.20/main/pkg.apk".into())
    });
    let (_d, sys) = client(
        Some("ca.pem"),
        &[("repo.test", repo), ("mirror.test", mirror)],
    );
    let got = fetch(&sys, "https://repo.test/latest/pkg.apk", &limits()).unwrap();
    assert_eq!(got, b"package");
    assert_eq!(*repo_seen.lock().unwrap(), ["repo.test /latest/pkg.apk"]);
    assert_eq!(
        *mirror_seen.lock().unwrap(),
        ["mirror.test /v3.20/main/pkg.apk"]
    );
}

#[test]
fn a_redirect_to_a_host_the_certificate_does_not_name_is_refused_there() {
    let (repo, _) = https_server("server", 1, |_| {
        Reply::Redirect("https://elsewhere.test/pkg.apk".into())
    });
    let (other, _) = https_server("server", 1, |_| Reply::Ok(b"x".to_vec()));
    let (_d, sys) = client(
        Some("ca.pem"),
        &[("repo.test", repo), ("elsewhere.test", other)],
    );
    let e = fetch(&sys, "https://repo.test/pkg.apk", &limits()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "TLS with elsewhere.test refused: its certificate is not valid for this host name"
    );
}

#[test]
fn a_server_that_closes_mid_body_is_a_truncated_download_and_leaves_no_file() {
    let cut = Reply::Cut {
        announced: Some(10_000),
        body: vec![b'a'; 4_000],
        clean: true,
    };
    // Tried twice: a cut body is worth another attempt.
    let (port, seen) = https_server("server", 2, move |_| cut.clone());
    let (dir, sys) = client(Some("ca.pem"), &[("repo.test", port)]);
    let limits = Limits {
        attempts: 2,
        ..Limits::default()
    };
    let e = fetch_to_file(
        &sys,
        "https://repo.test/m.apk",
        Path::new("/tmp/m.apk"),
        &limits,
    )
    .unwrap_err();
    assert_eq!(e.to_string(), "the body ended after 4000 of 10000 bytes");
    assert_eq!(seen.lock().unwrap().len(), 2);
    assert!(!dir.path().join("tmp/m.apk").exists());
}

/// A server that drops the TCP connection without TLS's close_notify, inside a body of known
/// length or one that runs to the close (where it could be an attacker's cut): the missing TLS
/// end in words, not as rustls' message with its link.
#[test]
fn a_server_that_drops_the_connection_mid_body_is_named_as_a_cut() {
    let (port, _) = https_server("server", 2, |p| Reply::Cut {
        announced: (p == "/known").then_some(10_000),
        body: vec![b'a'; 4_000],
        clean: false,
    });
    let (_d, sys) = client(Some("ca.pem"), &[("repo.test", port)]);
    for path in ["/known", "/unknown"] {
        let e = fetch(&sys, &format!("https://repo.test{path}"), &limits()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "repo.test: connection failed: the server closed the connection without ending TLS \
             (the answer may be cut short)",
            "{path}"
        );
    }
}

#[test]
fn bodies_larger_than_the_limit_are_refused_announced_or_not() {
    let (port, _) = https_server("server", 2, |p| match p {
        "/announced" => Reply::Ok(vec![0; 5000]),
        _ => Reply::UntilClose(vec![0; 5000]),
    });
    let (_d, sys) = client(Some("ca.pem"), &[("repo.test", port)]);
    let small = Limits {
        max_bytes: 4096,
        ..limits()
    };
    for path in ["/announced", "/unannounced"] {
        let e = fetch(&sys, &format!("https://repo.test{path}"), &small).unwrap_err();
        assert_eq!(
            e.to_string(),
            "larger than the 4096 bytes allowed",
            "{path}"
        );
    }
}
