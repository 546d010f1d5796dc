//! QEMU aarch64 scenarios for boot sources fetched over HTTP(S) (issue 10, points 4-7): the
//! guest is on QEMU's user-mode network with `restrict=on` (nothing leaves the QEMU process);
//! `guestfwd` hands each connection to 10.0.2.100:80 to `socat`, which relays it to a server
//! this test starts on 127.0.0.1 only (a thread here for HTTP, `openssl s_server` for HTTPS).
//!
//! Scenarios: `ip=dhcp apkovl=http://…/{MAC}.apkovl.tar.gz modloop=http://…`;
//! `alpine_repo=https://…` checked against a CA made here and put into the initramfs (the TLS
//! init); a repository server that is down (the boot goes on from the
//! media); a server whose certificate is from another CA (refused, with the host and why); an
//! `/etc/mactab` that renames the NIC before DHCP (mkinitfs case 24 on the real kernel).
// Tests drive real tools and processes (QEMU, openssl, socat): the system boundary lint is for
// the library.
#![allow(clippy::disallowed_methods)]

mod support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use support::qemu::{number_after, out_dir, read_fat_file, script, virtio_snapshot, Qemu};

const BOOT: Duration = Duration::from_secs(240);
/// The address the guest fetches from (QEMU's guestfwd; no such host exists outside QEMU).
const SERVER: &str = "10.0.2.100";
/// The MAC QEMU gives the first virtio NIC.
const MAC: &str = "52:54:00:12:34:56";

/// A tool this test cannot run without: qemu/setup-host.sh installs it. Never skipped.
fn require(tool: &str) {
    assert!(
        support::tools::have(tool),
        "{tool} is missing: run qemu/setup-host.sh"
    );
}

struct Artifacts {
    media: PathBuf,
    /// The demo's apkovl, as on media.img.
    apkovl: Vec<u8>,
    /// The default init, with the trusted key and the modloop signature.
    initrd: PathBuf,
    /// The TLS init with the test CA as its bundle.
    initrd_tls: PathBuf,
    /// The default init with an `/etc/mactab` naming QEMU's NIC `lan0`.
    initrd_mactab: PathBuf,
    certs: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Two CAs (`ca`, `other-ca`) and a server certificate for 10.0.2.100 from each.
fn make_certs(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let ext = dir.join("server.ext");
    std::fs::write(
        &ext,
        format!(
            "subjectAltName=IP:{SERVER}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
        ),
    )
    .unwrap();
    for ca in ["ca", "other-ca"] {
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.pem"),
                "-days",
                "30",
                "-subj",
                &format!("/CN=ramboot test {ca}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        let srv = format!("server-{ca}");
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &format!("{srv}.key"),
                "-out",
                &format!("{srv}.csr"),
                "-subj",
                &format!("/CN={SERVER}"),
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{srv}.csr"),
                "-CA",
                &format!("{ca}.pem"),
                "-CAkey",
                &format!("{ca}.key"),
                "-CAcreateserial",
                "-out",
                &format!("{srv}.pem"),
                "-days",
                "30",
                "-extfile",
                "server.ext",
            ],
        );
    }
}

fn artifacts() -> &'static Artifacts {
    static A: OnceLock<Artifacts> = OnceLock::new();
    A.get_or_init(|| {
        for t in ["socat", "openssl"] {
            require(t);
        }
        let media = out_dir().join("media");
        script("make-media.sh", &[media.to_str().unwrap(), "--all"]);
        let apkovl = read_fat_file(&media.join("media.img"), "ramboot-demo.apkovl.tar.gz")
            .expect("the demo card has ramboot-demo.apkovl.tar.gz");
        let key = std::fs::read_dir(media.join("keys"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "pub"))
            .unwrap();
        let sig = std::fs::read_dir(media.join("initramfs-files"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let sig_file = format!(
            "{}:/var/cache/misc/{}",
            sig.display(),
            sig.file_name().unwrap().to_str().unwrap()
        );
        let certs = out_dir().join("net-certs");
        make_certs(&certs);
        let build = |name: &str, tls: &[&str]| {
            let out = out_dir().join(name);
            let mut args = vec![
                out.to_str().unwrap(),
                "-F",
                "base,virtio,vfat",
                "--apk-key",
                key.to_str().unwrap(),
                "--file",
                &sig_file,
            ];
            args.extend(tls);
            eprintln!("{}", script("make-initramfs.sh", &args));
            out
        };
        let initrd = build("net-initrd", &[]);
        let mactab = out_dir().join("net-mactab");
        std::fs::write(&mactab, format!("# QEMU's first NIC\nlan0 {MAC}\n")).unwrap();
        let initrd_mactab = build("net-initrd-mactab", &["--mactab", mactab.to_str().unwrap()]);
        let bundle = certs.join("ca.pem");
        let initrd_tls = build(
            "net-initrd-tls",
            &["--tls", "--ca-bundle", bundle.to_str().unwrap()],
        );
        Artifacts {
            media,
            apkovl,
            initrd,
            initrd_tls,
            initrd_mactab,
            certs,
        }
    })
}

/// The request lines a server saw.
type Seen = Arc<Mutex<Vec<String>>>;

/// An HTTP server on 127.0.0.1 (a thread per connection; it ends with the test process):
/// `files` by path, 404 otherwise. Gives its port and the request lines it saw.
fn http_server(files: HashMap<String, Vec<u8>>) -> (u16, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Seen = Arc::default();
    let files = Arc::new(files);
    let s = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let (files, seen) = (files.clone(), s.clone());
            std::thread::spawn(move || answer(conn, &files, &seen));
        }
    });
    (port, seen)
}

fn answer(conn: TcpStream, files: &HashMap<String, Vec<u8>>, seen: &Seen) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
    }
    let line = line.trim_end().to_string();
    seen.lock().unwrap().push(line.clone());
    let path = line.split(' ').nth(1).unwrap_or("/");
    let mut conn = conn;
    let _ = match files.get(path) {
        // Chunked, to run that path of the client against a real peer too.
        Some(body) => {
            let mut out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            for c in body.chunks(64 * 1024) {
                out.extend(format!("{:x}\r\n", c.len()).as_bytes());
                out.extend(c);
                out.extend(b"\r\n");
            }
            out.extend(b"0\r\n\r\n");
            conn.write_all(&out)
        }
        None => conn.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"),
    };
}

/// `openssl s_server -WWW` serving `dir` on 127.0.0.1 with a certificate; killed on drop.
struct HttpsServer {
    child: Child,
    port: u16,
}

impl HttpsServer {
    fn start(dir: &Path, cert: &Path, key: &Path) -> HttpsServer {
        let port = free_port();
        let mut child = Command::new("openssl")
            .args(["s_server", "-WWW", "-ign_eof", "-naccept", "100"])
            .args(["-accept", &format!("127.0.0.1:{port}")])
            .arg("-cert")
            .arg(cert)
            .arg("-key")
            .arg(key)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl s_server starts");
        // It prints ACCEPT once listening.
        let mut out = child.stdout.take().unwrap();
        let mut buf = Vec::new();
        let mut byte = [0u8; 1];
        while !String::from_utf8_lossy(&buf).contains("ACCEPT") {
            assert_eq!(out.read(&mut byte).unwrap(), 1, "s_server ended");
            buf.push(byte[0]);
        }
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        HttpsServer { child, port }
    }
}

impl Drop for HttpsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// QEMU's user network, isolated (`restrict=on`), with 10.0.2.100:`guest_port` relayed to
/// 127.0.0.1:`port` by socat, one process per connection.
fn user_net(guest_port: u16, port: u16) -> Vec<String> {
    [
        "-netdev".to_string(),
        format!(
            "user,id=n0,restrict=on,guestfwd=tcp:{SERVER}:{guest_port}-cmd:socat - TCP:127.0.0.1:{port}"
        ),
        "-device".to_string(),
        "virtio-net-pci,netdev=n0,romfile=".to_string(),
    ]
    .to_vec()
}

fn demo_line<'a>(text: &'a str, what: &str) -> &'a str {
    let key = format!("RAMBOOT-DEMO: {what}");
    text.lines()
        .find(|l| l.contains(&key))
        .unwrap_or_else(|| panic!("no {key} in {text}"))
}

fn mark_at(timeline: &str, name: &str) -> f64 {
    let at = timeline
        .find(&format!("{{\"name\":\"{name}"))
        .unwrap_or_else(|| panic!("no mark {name} in {timeline}"));
    number_after(&timeline[at..], "\"at_ms\":")
}

/// `ip=dhcp apkovl=http://…/{MAC}.apkovl.tar.gz modloop=http://…/modloop-virt`: the apkovl
/// named by the NIC's MAC and the modloop come from the server (the modloop's signature checked
/// as for one on the media); the packages from the media. The timeline gives "network needed"
/// → lease → first byte on the instruction clock.
#[test]
fn apkovl_by_mac_and_modloop_come_over_http() {
    let a = artifacts();
    let modloop = std::fs::read(a.media.join("stage/boot/modloop-virt")).unwrap();
    let files = HashMap::from([
        (format!("/{MAC}.apkovl.tar.gz"), a.apkovl.clone()),
        ("/boot/modloop-virt".to_string(), modloop),
    ]);
    let (port, seen) = http_server(files);
    let mut extra = virtio_snapshot(&a.media.join("no-apkovl.img"));
    extra.extend(user_net(80, port));
    extra.extend(["-icount".into(), "shift=0,sleep=on".into()]);
    let append = format!(
        "console=ttyAMA0 ip=dhcp apkovl=http://{SERVER}/{{MAC}}.apkovl.tar.gz \
         modloop=http://{SERVER}/boot/modloop-virt"
    );
    let mut q = Qemu::virt("net-1-http", &a.initrd, &append, &extra);
    q.expect("RAMBOOT-DEMO: done, powering off", BOOT);
    let text = q.wait_exit(BOOT);
    assert!(
        text.contains("RAMBOOT-DEMO: init is running; hostname=ramboot-demo"),
        "the apkovl from the server: {text}"
    );
    assert!(
        text.contains("modloop /tmp/modloop-virt mounted (signature verified with"),
        "{text}"
    );
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.contains(&format!("GET /{MAC}.apkovl.tar.gz HTTP/1.1")),
        "{seen:?}"
    );
    assert!(
        seen.contains(&"GET /boot/modloop-virt HTTP/1.1".to_string()),
        "{seen:?}"
    );
    let timeline = demo_line(&text, "timeline");
    let needed = mark_at(timeline, "network needed");
    let up = mark_at(timeline, "network up by DHCPv4: eth0 10.0.2.15/24");
    let first = mark_at(timeline, "first byte");
    eprintln!(
        "BENCH network needed → lease: {:.1} ms, → first byte: {:.1} ms (instruction clock)",
        up - needed,
        first - needed
    );
    assert!(needed <= up && up <= first, "{timeline}");
}

/// `alpine_repo=https://… apkovl=https://…` with a static `ip=` and no disk: the TLS init
/// checks the server against the CA this test made (the initramfs's bundle), fetches the
/// apkovl, the index and the packages into memory and verifies them as local ones.
#[test]
fn https_repository_with_the_initramfs_ca() {
    let a = artifacts();
    // What the server serves: the media's repository.
    let www = out_dir().join("net-www");
    let _ = std::fs::remove_dir_all(&www);
    std::fs::create_dir_all(&www).unwrap();
    let copied = Command::new("cp")
        .arg("-a")
        .arg(a.media.join("stage/apks"))
        .arg(&www)
        .status()
        .unwrap();
    assert!(copied.success());
    let server = HttpsServer::start(
        &www,
        &a.certs.join("server-ca.pem"),
        &a.certs.join("server-ca.key"),
    );
    // No disk: everything comes over HTTPS, with a static ip= (the NIC's driver is found by
    // coldplug's second pass, after virtio_pci registered the virtio device behind it).
    std::fs::write(www.join("demo.apkovl.tar.gz"), &a.apkovl).unwrap();
    let extra = user_net(443, server.port);
    let append = format!(
        "console=ttyAMA0 ip=10.0.2.15::10.0.2.2:255.255.255.0::eth0:none \
         alpine_repo=https://{SERVER}/apks apkovl=https://{SERVER}/demo.apkovl.tar.gz modloop=none"
    );
    let mut q = Qemu::virt("net-2-https", &a.initrd_tls, &append, &extra);
    q.expect("RAMBOOT-DEMO: done, powering off", BOOT);
    let text = q.wait_exit(BOOT);
    assert!(
        text.contains("network up by ip=: eth0 10.0.2.15/24 via 10.0.2.2 (static, ip=)"),
        "{text}"
    );
    assert!(!text.contains("cannot fetch"), "{text}");
    assert!(
        text.contains("RAMBOOT-DEMO: init is running; hostname=ramboot-demo"),
        "{text}"
    );
    let installed = demo_line(&text, "installed");
    for p in ["alpine-base", "busybox", "demo-service"] {
        assert!(installed.contains(p), "{p} in {installed}");
    }
}

/// The repository server is down: one line naming it and why, and the packages come from the
/// media's repository (the failure policy: local sources when there are any).
#[test]
fn a_repository_server_that_is_down_leaves_the_boot_on_the_media() {
    let a = artifacts();
    // Nothing listens there: socat cannot connect and the guest's connection ends at once.
    let extra = {
        let mut e = virtio_snapshot(&a.media.join("media.img"));
        e.extend(user_net(80, free_port()));
        e
    };
    let append =
        format!("console=ttyAMA0 ip=dhcp alpine_repo=http://{SERVER}/apks,/media/vda1/apks");
    let mut q = Qemu::virt("net-3-down", &a.initrd, &append, &extra);
    q.expect("RAMBOOT-DEMO: done, powering off", BOOT);
    let text = q.wait_exit(BOOT);
    let line = text
        .lines()
        .find(|l| l.contains(&format!("http://{SERVER}/apks: cannot fetch the index")))
        .unwrap_or_else(|| panic!("no line about the server: {text}"));
    assert!(line.contains(SERVER), "{line}");
    assert!(
        text.contains("RAMBOOT-DEMO: init is running; hostname=ramboot-demo"),
        "{text}"
    );
    assert!(
        demo_line(&text, "installed").contains("demo-service"),
        "{text}"
    );
}

/// A server whose certificate comes from a CA the initramfs does not trust: refused, the line
/// names the host and the reason, and the boot goes on from the media.
#[test]
fn a_certificate_from_another_ca_is_refused_with_the_host_and_reason() {
    let a = artifacts();
    let www = out_dir().join("net-www-wrong");
    std::fs::create_dir_all(&www).unwrap();
    let server = HttpsServer::start(
        &www,
        &a.certs.join("server-other-ca.pem"),
        &a.certs.join("server-other-ca.key"),
    );
    let mut extra = virtio_snapshot(&a.media.join("media.img"));
    extra.extend(user_net(443, server.port));
    let append =
        format!("console=ttyAMA0 ip=dhcp alpine_repo=https://{SERVER}/apks,/media/vda1/apks");
    let mut q = Qemu::virt("net-4-wrong-ca", &a.initrd_tls, &append, &extra);
    q.expect("RAMBOOT-DEMO: done, powering off", BOOT);
    let text = q.wait_exit(BOOT);
    let refusal = format!(
        "TLS with {SERVER} refused: its certificate is not signed by a CA of the initramfs bundle"
    );
    assert!(text.contains(&refusal), "{text}");
    assert!(
        demo_line(&text, "installed").contains("demo-service"),
        "{text}"
    );
}

/// Alpine's `nameif` before the interface choice (mkinitfs case 24) on the real kernel: the
/// `/etc/mactab` that `mkinitfs --mactab` put in renames the virtio NIC `lan0` while it is
/// down (RTM_SETLINK), and DHCP runs on `lan0`.
#[test]
fn mactab_renames_the_nic_before_dhcp() {
    let a = artifacts();
    let mut extra = virtio_snapshot(&a.media.join("media.img"));
    extra.extend(user_net(80, free_port()));
    extra.extend(["-icount".into(), "shift=0,sleep=on".into()]);
    let mut q = Qemu::virt(
        "net-5-mactab",
        &a.initrd_mactab,
        "console=ttyAMA0 ip=dhcp",
        &extra,
    );
    q.expect("RAMBOOT-DEMO: done, powering off", BOOT);
    let text = q.wait_exit(BOOT);
    assert!(text.contains("eth0 renamed lan0 (/etc/mactab:2)"), "{text}");
    assert!(
        text.contains("lan0: renamed from eth0"),
        "the kernel's own line: {text}"
    );
    assert!(
        text.contains("network up by DHCPv4: lan0 10.0.2.15/24 (DHCP from 10.0.2.2"),
        "{text}"
    );
}
