//! HTTPS for the boot's downloads (cargo feature `tls`): rustls with the pure-Rust RustCrypto
//! provider, the server's certificate checked against the CA bundle that `ramboot mkinitfs
//! --tls` puts into the initramfs.
//!
//! A feature because it costs about 700 KB of the aarch64 init, more than the default init's
//! budget has; pure Rust so that the static cross build still needs no C compiler.

use super::http::{FetchError, TlsRefusal};
use crate::sys::{Connection, Sys};
use rustls::pki_types::{pem::PemObject, CertificateDer, ServerName};
use rustls::{CertificateError, ClientConfig, ClientConnection, StreamOwned};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::CA_BUNDLE;

/// The client configuration, built once per bundle path (each download opens a connection).
static CONFIG: Mutex<Option<(PathBuf, Arc<ClientConfig>)>> = Mutex::new(None);

fn config(sys: &dyn Sys) -> Result<Arc<ClientConfig>, String> {
    let path = sys.path(Path::new(CA_BUNDLE));
    let mut cached = CONFIG.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((p, c)) = cached.as_ref() {
        if *p == path {
            return Ok(c.clone());
        }
    }
    let no_bundle = |why: String| format!("no usable CA bundle at {CA_BUNDLE}: {why}");
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(&path).map_err(|e| no_bundle(e.to_string()))?;
    for c in certs.flatten() {
        // A certificate the verifier cannot use is skipped, as OpenSSL skips it.
        let _ = roots.add(c);
    }
    if roots.is_empty() {
        return Err(no_bundle("it holds no certificate".into()));
    }
    let provider = Arc::new(rustls_rustcrypto::provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let config = Arc::new(config);
    *cached = Some((path, config.clone()));
    Ok(config)
}

/// TLS over `conn` to `host`; the handshake happens with the first read or write.
pub fn wrap(
    sys: &dyn Sys,
    conn: Box<dyn Connection>,
    host: &str,
) -> Result<Box<dyn Connection>, FetchError> {
    let refused = |reason: String| FetchError::Tls {
        host: host.into(),
        reason,
    };
    let config = config(sys).map_err(refused)?;
    let name = ServerName::try_from(host.to_string())
        .map_err(|_| refused("not a valid server name".into()))?;
    let client = ClientConnection::new(config, name).map_err(|e| refused(e.to_string()))?;
    Ok(Box::new(Tls(StreamOwned::new(client, conn))))
}

struct Tls(StreamOwned<ClientConnection, Box<dyn Connection>>);

/// A TLS error as the line says it: the certificate problems and a close without TLS's own end
/// (close_notify) in words, the rest as rustls words them.
fn refusal(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        return io::Error::new(
            e.kind(),
            "the server closed the connection without ending TLS (the answer may be cut short)",
        );
    }
    let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
        return e;
    };
    let why = match tls {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => {
                "its certificate is not signed by a CA of the initramfs bundle".into()
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                "its certificate is not valid for this host name".into()
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "its certificate has expired".into()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "its certificate is not valid yet (is the clock set?)".into()
            }
            CertificateError::Revoked => "its certificate is revoked".into(),
            CertificateError::BadSignature => "its certificate has a bad signature".into(),
            other => format!("its certificate is refused: {other}"),
        },
        other => other.to_string(),
    };
    io::Error::other(TlsRefusal(why))
}

impl io::Read for Tls {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf).map_err(refusal)
    }
}

impl io::Write for Tls {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf).map_err(refusal)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush().map_err(refusal)
    }
}

impl Connection for Tls {
    fn set_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        self.0.sock.set_timeout(timeout)
    }
}
