//! Network configuration at boot: link changes from rtnetlink, addresses and routes set with
//! rtnetlink requests, and the one UDP socket a DHCP client needs.
//!
//! Written by hand rather than with a netlink crate: the boot needs five message shapes
//! (a link-group subscription, `RTM_SETLINK`, `RTM_NEWADDR`, `RTM_NEWROUTE` and the kernel's
//! ack), a few hundred bytes of code in an init that has a size budget.

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::fd::{AsFd, OwnedFd};
use rustix::net::{netlink, AddressFamily, SocketFlags, SocketType};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::time::Duration;

/// Link changes (an interface appeared, went up or down, got or lost its carrier), from the
/// rtnetlink link group: what the boot waits on instead of polling sysfs.
pub trait LinkWatch: Send {
    /// Waits at most `timeout` for a change; true when one came. The caller re-reads the
    /// interfaces' state from sysfs: the event only says "look again".
    fn wait(&mut self, timeout: Duration) -> io::Result<bool>;
    /// Waits at most `timeout` for a link change or a uevent, whichever comes first: `None`
    /// for a link change, else what `uevents` gave (`Timeout` when neither came). This default
    /// waits on the links only.
    fn wait_or_uevent(
        &mut self,
        _uevents: &mut dyn crate::UeventSource,
        timeout: Duration,
    ) -> io::Result<Option<crate::UeventRecv>> {
        Ok((!self.wait(timeout)?).then_some(crate::UeventRecv::Timeout))
    }
}

/// A DHCP client's socket: UDP port 68 on one interface, broadcasting to port 67.
pub trait DhcpSocket: Send {
    /// Broadcasts `packet` to `255.255.255.255:67` on the interface.
    fn send(&mut self, packet: &[u8]) -> io::Result<()>;
    /// The next datagram from a server (port 67); `None` when `timeout` passed first, and
    /// possibly earlier (an interrupted wait, a datagram from elsewhere): callers keep their
    /// own deadline.
    fn recv(&mut self, timeout: Duration) -> io::Result<Option<Vec<u8>>>;
    /// Waits at most `timeout` for a datagram on this socket or on `ipv6`, whichever comes
    /// first: what DHCPv4 and SLAAC running side by side wait on. `Nothing` when the time
    /// passed, and possibly earlier: callers keep their own deadline.
    fn recv_or_ipv6(
        &mut self,
        ipv6: &mut dyn crate::Ipv6Events,
        timeout: Duration,
    ) -> io::Result<Heard>;
}

/// What [`DhcpSocket::recv_or_ipv6`] got.
#[derive(Debug, PartialEq, Eq)]
pub enum Heard {
    /// A datagram from a DHCP server.
    Dhcp(Vec<u8>),
    /// An rtnetlink datagram of the IPv6 events.
    Ipv6(Vec<u8>),
    Nothing,
}

/// A TCP connection for the HTTP client: bytes both ways, every read and write bounded by the
/// timeout last set (the caller keeps its own deadline and sets what is left of it).
pub trait Connection: io::Read + io::Write + Send {
    /// The longest one read or write may wait from now on (a zero timeout is taken as 1 ms:
    /// the kernel reads zero as "forever").
    fn set_timeout(&mut self, timeout: Duration) -> io::Result<()>;
}

/// A connected TCP socket with the kernel's timeouts.
pub(crate) struct Tcp(std::net::TcpStream);

impl Tcp {
    /// Resolves `host` (an address, or a name through `/etc/resolv.conf`) and connects to the
    /// first address that answers within `timeout`.
    pub(crate) fn connect(host: &str, port: u16, timeout: Duration) -> io::Result<Self> {
        let mut last = io::Error::new(io::ErrorKind::NotFound, "the name has no address");
        for ip in resolve(host, timeout)? {
            let addr = std::net::SocketAddr::new(ip, port);
            match std::net::TcpStream::connect_timeout(&addr, timeout) {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    return Ok(Self(s));
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}

impl io::Read for Tcp {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl io::Write for Tcp {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl Connection for Tcp {
    fn set_timeout(&mut self, timeout: Duration) -> io::Result<()> {
        let t = Some(timeout.max(Duration::from_millis(1)));
        self.0.set_read_timeout(t)?;
        self.0.set_write_timeout(t)
    }
}

/// The addresses of `host`: an IP literal as it is, a name by one DNS query (A, then AAAA) to
/// each `nameserver` of `/etc/resolv.conf` in turn. Not std's lookup: that links musl's
/// resolver (getaddrinfo with its hosts file, services and search logic, ~15 KB of the init
/// build) for what a boot URL needs, a fully qualified name.
fn resolve(host: &str, timeout: Duration) -> io::Result<Vec<IpAddr>> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![ip]);
    }
    let conf = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let servers = conf
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|s| s.trim().parse::<IpAddr>().ok());
    let mut last = io::Error::new(
        io::ErrorKind::NotFound,
        "no DNS server (no nameserver in /etc/resolv.conf)",
    );
    for server in servers {
        for qtype in [DNS_A, DNS_AAAA] {
            match dns_lookup(server, host, qtype, timeout) {
                Ok(found) if !found.is_empty() => return Ok(found),
                Ok(_) => {
                    last = io::Error::new(io::ErrorKind::NotFound, "DNS has no address for it")
                }
                Err(e) => last = e,
            }
        }
    }
    Err(last)
}

const DNS_A: u16 = 1;
const DNS_AAAA: u16 = 28;

/// One query over UDP, its answer awaited up to `timeout`.
fn dns_lookup(
    server: IpAddr,
    name: &str,
    qtype: u16,
    timeout: Duration,
) -> io::Result<Vec<IpAddr>> {
    let any: IpAddr = match server {
        IpAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        IpAddr::V6(_) => std::net::Ipv6Addr::UNSPECIFIED.into(),
    };
    let sock = std::net::UdpSocket::bind((any, 0))?;
    sock.connect((server, 53))?;
    sock.set_read_timeout(Some(timeout.max(Duration::from_millis(1))))?;
    let id = (rustix::time::clock_gettime(rustix::time::ClockId::Monotonic).tv_nsec as u16) | 1;
    sock.send(&dns_query(name, qtype, id)?)?;
    let mut buf = [0u8; 1500];
    loop {
        let n = sock.recv(&mut buf)?;
        if let Some(found) = dns_answers(&buf[..n], id, qtype) {
            return Ok(found);
        }
    }
}

/// A standard query for `name` (recursion desired).
pub fn dns_query(name: &str, qtype: u16, id: u16) -> io::Result<Vec<u8>> {
    let bad = || io::Error::new(io::ErrorKind::InvalidInput, "not a valid DNS name");
    let mut p = Vec::with_capacity(18 + name.len());
    p.extend(id.to_be_bytes());
    p.extend([1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(bad());
        }
        p.push(label.len() as u8);
        p.extend(label.as_bytes());
    }
    if p.len() > 12 + 254 {
        return Err(bad());
    }
    p.push(0);
    p.extend(qtype.to_be_bytes());
    p.extend(1u16.to_be_bytes());
    Ok(p)
}

/// Past a name (labels, ending in a zero length or a compression pointer) at `at`.
fn skip_name(p: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *p.get(at)? as usize;
        if len == 0 {
            return Some(at + 1);
        }
        if len & 0xc0 == 0xc0 {
            return Some(at + 2);
        }
        at += 1 + len;
    }
}

/// The addresses of type `qtype` in the answer to query `id`; `None` when `p` is not that
/// answer (another id, not a response), an empty list when the server has none (or refuses).
pub fn dns_answers(p: &[u8], id: u16, qtype: u16) -> Option<Vec<IpAddr>> {
    let be = |at: usize| Some(u16::from_be_bytes([*p.get(at)?, *p.get(at + 1)?]));
    if be(0)? != id || be(2)? & 0x8000 == 0 {
        return None;
    }
    let mut found = Vec::new();
    if be(2)? & 0x000f != 0 {
        return Some(found);
    }
    let mut at = 12;
    for _ in 0..be(4)? {
        at = skip_name(p, at)? + 4;
    }
    for _ in 0..be(6)? {
        at = skip_name(p, at)?;
        let (kind, class, len) = (be(at)?, be(at + 2)?, be(at + 8)? as usize);
        let data = p.get(at + 10..at + 10 + len)?;
        at += 10 + len;
        if class != 1 || kind != qtype {
            continue;
        }
        if let Ok(a) = <[u8; 4]>::try_from(data) {
            found.push(IpAddr::from(a));
        } else if let Ok(a) = <[u8; 16]>::try_from(data) {
            found.push(IpAddr::from(a));
        }
    }
    Some(found)
}

const RTMGRP_LINK: u32 = 1;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLM_F_REPLACE: u16 = 0x100;
const NLM_F_CREATE: u16 = 0x400;
const RTM_SETLINK: u16 = 19;
const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;
const AF_INET: u8 = 2;

/// Waits until `fd` is readable or `timeout` passes; true when readable. An interrupted wait
/// is `false` too: callers loop on their own deadline.
pub(crate) fn readable(fd: impl AsFd, timeout: Duration) -> io::Result<bool> {
    let ts = Timespec {
        tv_sec: timeout.as_secs() as _,
        tv_nsec: timeout.subsec_nanos() as _,
    };
    let mut fds = [PollFd::new(&fd, PollFlags::IN)];
    match poll(&mut fds, Some(&ts)) {
        Ok(n) => Ok(n > 0),
        Err(rustix::io::Errno::INTR) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

pub(crate) fn rtnetlink(groups: u32, nonblocking: bool) -> io::Result<OwnedFd> {
    let mut flags = SocketFlags::CLOEXEC;
    if nonblocking {
        flags |= SocketFlags::NONBLOCK;
    }
    let fd = rustix::net::socket_with(AddressFamily::NETLINK, SocketType::RAW, flags, None)?;
    rustix::net::bind(&fd, &netlink::SocketAddrNetlink::new(0, groups))?;
    Ok(fd)
}

/// The rtnetlink link group.
pub(crate) struct RtnlWatch(OwnedFd);

impl RtnlWatch {
    pub(crate) fn open() -> io::Result<Self> {
        rtnetlink(RTMGRP_LINK, true).map(Self)
    }
}

impl LinkWatch for RtnlWatch {
    fn wait_or_uevent(
        &mut self,
        uevents: &mut dyn crate::UeventSource,
        mut timeout: Duration,
    ) -> io::Result<Option<crate::UeventRecv>> {
        if let Some(ufd) = uevents.fd() {
            let ts = Timespec {
                tv_sec: timeout.as_secs() as _,
                tv_nsec: timeout.subsec_nanos() as _,
            };
            let mut fds = [
                PollFd::new(&ufd, PollFlags::IN),
                PollFd::new(&self.0, PollFlags::IN),
            ];
            // A failed or interrupted wait is an empty one: the reads below say what came.
            let _ = poll(&mut fds, Some(&ts));
            timeout = Duration::ZERO;
        }
        if self.wait(timeout)? {
            return Ok(None);
        }
        uevents.recv(Duration::ZERO).map(Some)
    }

    fn wait(&mut self, timeout: Duration) -> io::Result<bool> {
        if !readable(&self.0, timeout)? {
            return Ok(false);
        }
        // Drain: one look at sysfs covers every change queued so far.
        let mut buf = [0u8; 4096];
        loop {
            match rustix::net::recv(&self.0, &mut buf[..], rustix::net::RecvFlags::empty()) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                // Lost messages (NOBUFS) are a change too: the caller re-reads everything.
                Err(rustix::io::Errno::AGAIN) | Err(rustix::io::Errno::NOBUFS) => return Ok(true),
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// An rtnetlink attribute: length, type, payload padded to 4 bytes.
fn attr(out: &mut Vec<u8>, kind: u16, data: &[u8]) {
    out.extend(((4 + data.len()) as u16).to_ne_bytes());
    out.extend(kind.to_ne_bytes());
    out.extend(data);
    out.resize(out.len().next_multiple_of(4), 0);
}

/// Sends one request with `body` (the family header and attributes) and waits for the ack.
fn request(kind: u16, body: &[u8]) -> io::Result<()> {
    let fd = rtnetlink(0, false)?;
    let mut msg = Vec::with_capacity(16 + body.len());
    msg.extend(((16 + body.len()) as u32).to_ne_bytes());
    msg.extend(kind.to_ne_bytes());
    msg.extend((NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE).to_ne_bytes());
    msg.extend(1u32.to_ne_bytes()); // sequence number
    msg.extend(0u32.to_ne_bytes()); // port id: the kernel assigns ours
    msg.extend(body);
    let kernel = netlink::SocketAddrNetlink::new(0, 0);
    rustix::net::sendto(&fd, &msg, rustix::net::SendFlags::empty(), &kernel)?;
    let mut buf = [0u8; 1024];
    loop {
        let n = rustix::net::recv(&fd, &mut buf[..], rustix::net::RecvFlags::empty())?.0;
        let mut at = 0;
        while at + 20 <= n {
            let len = u32::from_ne_bytes(buf[at..at + 4].try_into().expect("4 bytes")) as usize;
            let kind = u16::from_ne_bytes([buf[at + 4], buf[at + 5]]);
            if kind == NLMSG_ERROR {
                let errno = i32::from_ne_bytes(buf[at + 16..at + 20].try_into().expect("4 bytes"));
                return match errno {
                    0 => Ok(()),
                    e => Err(io::Error::from_raw_os_error(-e)),
                };
            }
            if len < 16 {
                break;
            }
            at += len.next_multiple_of(4);
        }
    }
}

/// `RTM_SETLINK`: interface `index` renamed `new_name` (`IFLA_IFNAME`, NUL-terminated).
pub(crate) fn rename_link(index: u32, new_name: &str) -> io::Result<()> {
    if new_name.is_empty() || new_name.len() >= 16 || new_name.contains('\0') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "bad interface name",
        ));
    }
    // struct ifinfomsg: family unspecified, pad, type, index, flags, change mask.
    let mut body = vec![0u8, 0, 0, 0];
    body.extend(index.to_ne_bytes());
    body.extend([0u8; 8]);
    let mut name = new_name.as_bytes().to_vec();
    name.push(0);
    attr(&mut body, 3, &name); // IFLA_IFNAME
    request(RTM_SETLINK, &body)
}

/// `RTM_NEWADDR`: `address/prefix` (with its broadcast address) on interface `index`.
pub(crate) fn add_address(index: u32, address: Ipv4Addr, prefix: u8) -> io::Result<()> {
    let mask = u32::MAX
        .checked_shl(32 - u32::from(prefix.min(32)))
        .unwrap_or(0);
    let broadcast = Ipv4Addr::from(u32::from(address) | !mask);
    // struct ifaddrmsg: family, prefix length, flags, scope (universe), index.
    let mut body = vec![AF_INET, prefix, 0, 0];
    body.extend(index.to_ne_bytes());
    attr(&mut body, 2, &address.octets()); // IFA_LOCAL
    attr(&mut body, 1, &address.octets()); // IFA_ADDRESS
    attr(&mut body, 4, &broadcast.octets()); // IFA_BROADCAST
    request(RTM_NEWADDR, &body)
}

/// `RTM_NEWROUTE`: the default route through `gateway` on interface `index`.
pub(crate) fn add_default_route(index: u32, gateway: Ipv4Addr) -> io::Result<()> {
    // struct rtmsg: family, dst/src length, tos, table main, protocol boot, scope universe,
    // type unicast, flags.
    let mut body = vec![AF_INET, 0, 0, 0, 254, 3, 0, 1, 0, 0, 0, 0];
    attr(&mut body, 5, &gateway.octets()); // RTA_GATEWAY
    attr(&mut body, 4, &index.to_ne_bytes()); // RTA_OIF
    request(RTM_NEWROUTE, &body)
}

/// UDP port 68 bound to one interface, allowed to broadcast: before the interface has an
/// address, the kernel still delivers and sends limited broadcasts on it.
pub(crate) struct UdpDhcp(OwnedFd);

impl UdpDhcp {
    pub(crate) fn open(interface: &str) -> io::Result<Self> {
        use rustix::fd::AsRawFd;
        let fd = rustix::net::socket_with(
            AddressFamily::INET,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
            None,
        )?;
        rustix::net::sockopt::set_socket_reuseaddr(&fd, true)?;
        rustix::net::sockopt::set_socket_broadcast(&fd, true)?;
        let name = interface.as_bytes();
        // SAFETY: the option value is `name`, valid for its length during the call; the socket
        // is open.
        let r = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_BINDTODEVICE,
                name.as_ptr().cast(),
                name.len() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        rustix::net::bind(&fd, &SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 68))?;
        Ok(Self(fd))
    }
}

impl DhcpSocket for UdpDhcp {
    fn send(&mut self, packet: &[u8]) -> io::Result<()> {
        let to = SocketAddrV4::new(Ipv4Addr::BROADCAST, 67);
        rustix::net::sendto(&self.0, packet, rustix::net::SendFlags::empty(), &to)?;
        Ok(())
    }

    fn recv(&mut self, timeout: Duration) -> io::Result<Option<Vec<u8>>> {
        if !readable(&self.0, timeout)? {
            return Ok(None);
        }
        let mut buf = vec![0u8; 1500];
        match rustix::net::recvfrom(&self.0, &mut buf[..], rustix::net::RecvFlags::empty()) {
            Ok((n, _, from)) => {
                let server = from
                    .and_then(|a| SocketAddrV4::try_from(a).ok())
                    .is_some_and(|a| a.port() == 67);
                buf.truncate(n);
                Ok(server.then_some(buf))
            }
            Err(rustix::io::Errno::AGAIN) | Err(rustix::io::Errno::INTR) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn recv_or_ipv6(
        &mut self,
        ipv6: &mut dyn crate::Ipv6Events,
        timeout: Duration,
    ) -> io::Result<Heard> {
        let Some(v6) = ipv6.fd() else {
            return Ok(self.recv(timeout)?.map_or(Heard::Nothing, Heard::Dhcp));
        };
        let ts = Timespec {
            tv_sec: timeout.as_secs() as _,
            tv_nsec: timeout.subsec_nanos() as _,
        };
        let mut fds = [
            PollFd::new(&self.0, PollFlags::IN),
            PollFd::new(&v6, PollFlags::IN),
        ];
        // A failed or interrupted wait is an empty one: the reads below say what came.
        let _ = poll(&mut fds, Some(&ts));
        if let Some(p) = self.recv(Duration::ZERO)? {
            return Ok(Heard::Dhcp(p));
        }
        Ok(ipv6
            .recv(Duration::ZERO)?
            .map_or(Heard::Nothing, Heard::Ipv6))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A query as a server sees it, and an answer with a CNAME before two A records (the name
    /// compressed), read back.
    #[test]
    fn a_dns_query_and_its_answer() {
        let q = dns_query("repo.example.org", DNS_A, 0x1234).unwrap();
        assert_eq!(&q[..12], &[0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&q[12..30], b"\x04repo\x07example\x03org\x00");
        assert_eq!(&q[30..], &[0, 1, 0, 1]);
        let mut a = q.clone();
        a[2] = 0x81;
        a[3] = 0x80;
        a[7] = 3; // three answers
        a.extend([0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 2, 0xc0, 12]); // CNAME
        a.extend([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 0, 2, 100]);
        a.extend([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 0, 2, 101]);
        let found = dns_answers(&a, 0x1234, DNS_A).unwrap();
        assert_eq!(
            found,
            [IpAddr::from([10, 0, 2, 100]), IpAddr::from([10, 0, 2, 101])]
        );
        assert_eq!(
            dns_answers(&a, 0x4321, DNS_A),
            None,
            "another query's answer"
        );
        assert_eq!(dns_answers(&q, 0x1234, DNS_A), None, "not a response");
        a[3] = 0x83; // NXDOMAIN
        assert_eq!(dns_answers(&a, 0x1234, DNS_A), Some(vec![]));
        assert!(dns_query("a..b", DNS_A, 1).is_err());
        assert!(
            resolve("10.0.2.100", Duration::from_secs(1)).unwrap()
                == [IpAddr::from([10, 0, 2, 100])]
        );
    }
}
