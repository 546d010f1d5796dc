//! The network at boot on the recording double (issue 10, points 1-3 and 6): interface choice
//! with link waits driven by (scripted) link events, static `ip=`, the DHCPv4 exchange against
//! the in-process server of `support::dhcp`, and SLAAC's rtnetlink events running at the same
//! time (IPv6-only, dual-stack and IPv4-only networks, timed on the fake clock).
// Tests build fake sysfs trees with plain file writes.
#![allow(clippy::disallowed_methods)]

use ramboot::cmdline::{parse_ip, IpConfig};
use ramboot::net::{configure, Needs, NetError};
use ramboot::sys::{Call, RecordingSys, Sys};
mod support;

use std::fs;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::dhcp::{option, reply, slirp_like};

/// `sys/class/net/<name>` as the kernel shows a NIC (`physical`: a `device` link).
fn nic(root: &Path, name: &str, index: u32, mac: &str, operstate: &str, physical: bool) {
    let d = root.join("sys/class/net").join(name);
    fs::create_dir_all(&d).unwrap();
    fs::write(d.join("ifindex"), format!("{index}\n")).unwrap();
    fs::write(d.join("address"), format!("{mac}\n")).unwrap();
    fs::write(d.join("operstate"), format!("{operstate}\n")).unwrap();
    if physical {
        fs::create_dir_all(d.join("device")).unwrap();
    }
}

fn world() -> (tempfile::TempDir, RecordingSys) {
    let dir = tempfile::tempdir().unwrap();
    let sys = RecordingSys::new(dir.path());
    (dir, sys)
}

fn dhcp() -> IpConfig {
    IpConfig::Dhcp { device: None }
}

fn sent_kinds(sys: &RecordingSys) -> Vec<u8> {
    sys.calls()
        .iter()
        .filter_map(|c| match c {
            Call::DhcpSend { packet, .. } => option(packet, 53).map(|k| k[0]),
            _ => None,
        })
        .collect()
}

fn has(sys: &RecordingSys, line: &str) -> bool {
    sys.trace().iter().any(|l| l == line)
}

#[test]
fn a_dhcp_lease_is_applied_with_its_route_dns_and_hostname() {
    let (dir, sys) = world();
    nic(dir.path(), "eth0", 2, "52:54:00:12:34:56", "up", true);
    sys.serve_dhcp(Duration::from_millis(3), slirp_like(0));
    let c = configure(
        &sys,
        &mut *sys.link_watch().unwrap(),
        &dhcp(),
        None,
        Needs::default(),
    )
    .unwrap();
    assert_eq!(
        c.summary(),
        "eth0 10.0.2.15/24 via 10.0.2.2 (DHCP from 10.0.2.2, lease 86400s)"
    );
    assert_eq!(sent_kinds(&sys), vec![1, 3], "DISCOVER then REQUEST");
    for line in [
        "ip link set eth0 up",
        "udhcpc -i eth0",
        "ip addr add 10.0.2.15/24 dev eth0",
        "ip route add 0.0.0.0/0 via 10.0.2.2 dev eth0",
        "hostname node7",
    ] {
        assert!(has(&sys, line), "{line} in {:#?}", sys.trace());
    }
    let first = sys
        .calls()
        .into_iter()
        .find_map(|c| match c {
            Call::DhcpSend { packet, .. } => Some(packet),
            _ => None,
        })
        .unwrap();
    assert_eq!(&first[28..34], &[0x52, 0x54, 0, 0x12, 0x34, 0x56], "chaddr");
    assert_eq!(
        option(&first, 61).unwrap(),
        vec![1, 0x52, 0x54, 0, 0x12, 0x34, 0x56]
    );
    assert_eq!(
        fs::read_to_string(dir.path().join("etc/resolv.conf")).unwrap(),
        "search example.test\nnameserver 10.0.2.3\nnameserver 1.1.1.1\n"
    );
    // Two answers 3 ms each on the fake clock: no fixed wait anywhere.
    assert_eq!(sys.now(), Duration::from_millis(6));
}

#[test]
fn a_nak_starts_over_with_a_discover() {
    let (dir, sys) = world();
    nic(dir.path(), "eth0", 2, "52:54:00:12:34:56", "up", true);
    sys.serve_dhcp(Duration::ZERO, slirp_like(1));
    let c = configure(
        &sys,
        &mut *sys.link_watch().unwrap(),
        &dhcp(),
        None,
        Needs::default(),
    )
    .unwrap();
    assert_eq!(
        c.lease.as_ref().unwrap().address,
        Ipv4Addr::new(10, 0, 2, 15)
    );
    assert_eq!(sent_kinds(&sys), vec![1, 3, 1, 3]);
}

#[test]
fn answers_to_other_transactions_are_ignored() {
    let (dir, sys) = world();
    nic(dir.path(), "eth0", 2, "52:54:00:12:34:56", "up", true);
    let mut real = slirp_like(0);
    sys.serve_dhcp(Duration::ZERO, move |req| {
        let mut other = reply(req, 2, [10, 9, 9, 9], &[(54, vec![10, 9, 9, 1])]);
        other[7] ^= 1;
        let mut out = vec![other];
        out.extend(real(req));
        out
    });
    let c = configure(
        &sys,
        &mut *sys.link_watch().unwrap(),
        &dhcp(),
        None,
        Needs::default(),
    )
    .unwrap();
    assert_eq!(
        c.lease.as_ref().unwrap().address,
        Ipv4Addr::new(10, 0, 2, 15)
    );
}

/// No server: four DISCOVERs waiting 1, 2, 4 and 8 s, then a clear error.
#[test]
fn no_server_means_backoff_then_no_lease() {
    let (dir, sys) = world();
    nic(dir.path(), "eth0", 2, "52:54:00:12:34:56", "up", true);
    let e = configure(
        &sys,
        &mut *sys.link_watch().unwrap(),
        &dhcp(),
        None,
        Needs::default(),
    )
    .unwrap_err();
    assert!(matches!(e, NetError::NoLease { .. }), "{e}");
    assert_eq!(
        e.to_string(),
        "no DHCP lease on eth0: no server answered (4 tries in 15s)"
    );
    assert_eq!(sent_kinds(&sys), vec![1, 1, 1, 1]);
    assert_eq!(sys.now(), Duration::from_secs(15));
}

#[test]
fn static_ip_sets_address_route_and_appends_dns() {
    let (dir, sys) = world();
    nic(dir.path(), "eth0", 2, "52:54:00:12:34:56", "up", true);
    nic(dir.path(), "eth1", 3, "52:54:00:12:34:57", "up", true);
    fs::create_dir_all(dir.path().join("etc")).unwrap();
    fs::write(dir.path().join("etc/resolv.conf"), "nameserver 8.8.8.8\n").unwrap();
    let (ip, problems) = parse_ip("192.168.7.10::192.168.7.1:255.255.255.0:host:eth1:none:9.9.9.9");
    assert!(problems.is_empty(), "{problems:?}");
    let c = configure(
        &sys,
        &mut *sys.link_watch().unwrap(),
        &ip,
        None,
        Needs::default(),
    )
    .unwrap();
    assert_eq!(
        c.summary(),
        "eth1 192.168.7.10/24 via 192.168.7.1 (static, ip=)"
    );
    assert!(has(&sys, "ip addr add 192.168.7.10/24 dev eth1"));
    assert!(has(&sys, "ip route add 0.0.0.0/0 via 192.168.7.1 dev eth1"));
    assert!(
        !has(&sys, "ip link set eth0 up"),
        "the named interface only"
    );
    assert!(!sys.trace().iter().any(|l| l.starts_with("udhcpc")));
    assert_eq!(
        fs::read_to_string(dir.path().join("etc/resolv.conf")).unwrap(),
        "nameserver 8.8.8.8\nnameserver 9.9.9.9\n"
    );
}

/// The wait for a carrier ends when the link event comes (300 ms), not at the deadline.
#[test]
fn the_link_wait_ends_on_the_link_event() {
    let (dir, sys) = world();
    nic(dir.path(), "eth0", 2, "52:54:00:12:34:56", "down", true);
    sys.push_link_change_after(Duration::from_millis(300), |root| {
        fs::write(root.join("sys/class/net/eth0/operstate"), "up\n").unwrap();
    });
    let chosen = Arc::new(Mutex::new(None));
    let at = chosen.clone();
    let s2 = sys.clone();
    sys.serve_dhcp(Duration::ZERO, move |req| {
        at.lock().unwrap().get_or_insert(s2.now());
        slirp_like(0)(req)
    });
    configure(
        &sys,
        &mut *sys.link_watch().unwrap(),
        &dhcp(),
        None,
        Needs::default(),
    )
    .unwrap();
    assert!(has(&sys, "ip monitor link"));
    assert_eq!(*chosen.lock().unwrap(), Some(Duration::from_millis(300)));
}

/// A USB NIC registers after the media search: the interface appears 1.5 s later.
#[test]
fn an_interface_that_appears_late_is_waited_for() {
    let (dir, sys) = world();
    fs::create_dir_all(dir.path().join("sys/class/net")).unwrap();
    nic(dir.path(), "lo", 1, "00:00:00:00:00:00", "unknown", false);
    sys.push_link_change_after(Duration::from_millis(1500), |root| {
        nic(root, "eth0", 4, "b8:27:eb:00:00:01", "up", true);
    });
    sys.serve_dhcp(Duration::ZERO, slirp_like(0));
    let c = configure(
        &sys,
        &mut *sys.link_watch().unwrap(),
        &dhcp(),
        None,
        Needs::default(),
    )
    .unwrap();
    assert_eq!(c.interface, "eth0");
    assert_eq!(c.mac, "b8:27:eb:00:00:01");
}

#[test]
fn a_named_interface_that_never_appears_is_a_clear_error() {
    let (dir, sys) = world();
    nic(dir.path(), "eth0", 2, "52:54:00:12:34:56", "up", true);
    let e = configure(
        &sys,
        &mut *sys.link_watch().unwrap(),
        &IpConfig::Dhcp {
            device: Some("eth5".into()),
        },
        None,
        Needs::default(),
    )
    .unwrap_err();
    assert_eq!(e.to_string(), "interface eth5 (named by ip=) was not found");
    assert_eq!(sys.now(), Duration::from_secs(4), "after the link wait");
}

/// The driver's `carrier` counts at once; operstate follows through the kernel's link watch,
/// up to a second later (QEMU: 973 ms of the boot spent waiting for it).
#[test]
fn a_carrier_counts_before_operstate_follows() {
    let (dir, sys) = world();
    nic(dir.path(), "eth0", 2, "52:54:00:12:34:56", "down", true);
    fs::write(dir.path().join("sys/class/net/eth0/carrier"), "1\n").unwrap();
    sys.serve_dhcp(Duration::ZERO, slirp_like(0));
    configure(
        &sys,
        &mut *sys.link_watch().unwrap(),
        &dhcp(),
        None,
        Needs::default(),
    )
    .unwrap();
    assert_eq!(sys.now(), Duration::ZERO, "no wait for operstate");
}

/// An rtnetlink message: header (length, type, no flags, sequence and port 0), then `body`.
fn netlink(kind: u16, body: &[u8]) -> Vec<u8> {
    let mut m = ((16 + body.len()) as u32).to_ne_bytes().to_vec();
    m.extend(kind.to_ne_bytes());
    m.extend([0u8; 10]);
    m.extend(body);
    m.resize(m.len().next_multiple_of(4), 0);
    m
}

/// `RTM_NEWADDR` for an IPv6 address (scope 200 is "site", what the kernel gives fec0::/10).
fn newaddr(index: u32, address: &str, scope: u8, tentative: bool) -> Vec<u8> {
    let mut body = vec![10, 64, if tentative { 0x40 } else { 0 }, scope];
    body.extend(index.to_ne_bytes());
    body.extend(20u16.to_ne_bytes());
    body.extend(1u16.to_ne_bytes()); // IFA_ADDRESS
    body.extend(address.parse::<Ipv6Addr>().unwrap().octets());
    netlink(20, &body)
}

/// `RTM_NEWNDUSEROPT` as the kernel passes a router advertisement's RDNSS option (RFC 8106).
fn rdnss(index: u32, lifetime: u32, servers: &[&str]) -> Vec<u8> {
    let mut opt = vec![25, (1 + 2 * servers.len()) as u8, 0, 0];
    opt.extend(lifetime.to_be_bytes());
    for s in servers {
        opt.extend(s.parse::<Ipv6Addr>().unwrap().octets());
    }
    let mut body = vec![10, 0];
    body.extend((opt.len() as u16).to_ne_bytes());
    body.extend(index.to_ne_bytes());
    body.extend([134, 0, 0, 0, 0, 0, 0, 0]);
    body.extend(opt);
    netlink(68, &body)
}

/// `RTM_NEWROUTE` for the default route a router advertisement installs (`::/0` via the
/// router's link-local address, protocol "ra", table main).
fn default_route(index: u32) -> Vec<u8> {
    let mut body = vec![10, 0, 0, 0, 254, 9, 0, 1];
    body.extend(0u32.to_ne_bytes());
    body.extend(20u16.to_ne_bytes());
    body.extend(5u16.to_ne_bytes()); // RTA_GATEWAY
    body.extend("fe80::2".parse::<Ipv6Addr>().unwrap().octets());
    body.extend(8u16.to_ne_bytes());
    body.extend(4u16.to_ne_bytes()); // RTA_OIF
    body.extend(index.to_ne_bytes());
    netlink(24, &body)
}

/// The kernel's IPv6 settings for `name`, off, as the double's /proc/sys holds them.
fn ipv6_sysctls(root: &Path, name: &str) {
    let d = root.join("proc/sys/net/ipv6/conf").join(name);
    fs::create_dir_all(&d).unwrap();
    for key in ["accept_ra", "autoconf"] {
        fs::write(d.join(key), "0\n").unwrap();
    }
}

const SLAAC_ADDR: &str = "fec0::5054:ff:fe12:3456";

/// QEMU's user networking with `ipv6=on`: the default route and RDNSS fec0::3 with the
/// advertisement, the address tentative then usable a second later (2.8 s after the link);
/// events on other interfaces and the link-local address do not count.
fn slirp_router_advertisement(sys: &RecordingSys) {
    let s = Duration::from_millis;
    sys.push_ipv6_event_at(s(900), newaddr(2, "fe80::5054:ff:fe12:3456", 253, false));
    sys.push_ipv6_event_at(s(1000), rdnss(3, 600, &["2001:db8::53"]));
    sys.push_ipv6_event_at(s(1800), default_route(3));
    sys.push_ipv6_event_at(s(1800), default_route(2));
    sys.push_ipv6_event_at(s(1800), rdnss(2, 3600, &["fec0::3"]));
    sys.push_ipv6_event_at(s(1800), newaddr(2, SLAAC_ADDR, 200, true));
    sys.push_ipv6_event_at(s(2800), newaddr(2, SLAAC_ADDR, 200, false));
}

fn marks(c: &ramboot::net::Configured) -> Vec<(&str, u128)> {
    c.marks
        .iter()
        .map(|(name, at)| (*name, at.as_millis()))
        .collect()
}

/// Issue 10 (3): on an IPv6-only network (no DHCP answer), the kernel's SLAAC address and the
/// advertised DNS server make the network; SLAAC was switched on before the link came up.
/// DHCPv4 runs at the same time and gets 1 s after SLAAC was usable (2.8 s), not its 15 s of
/// retries: three DISCOVERs (at 0, 1 and 3 s), the network up at 3.8 s on the fake clock.
#[test]
fn an_ipv6_only_network_comes_up_by_slaac_without_spending_the_dhcp_retries() {
    let (dir, sys) = world();
    nic(dir.path(), "eth0", 2, "52:54:00:12:34:56", "up", true);
    ipv6_sysctls(dir.path(), "eth0");
    slirp_router_advertisement(&sys);
    let c = configure(
        &sys,
        &mut *sys.link_watch().unwrap(),
        &dhcp(),
        None,
        Needs::default(),
    )
    .unwrap();
    assert_eq!(
        c.summary(),
        format!("eth0 {SLAAC_ADDR}/64 (SLAAC, DNS fec0::3; no DHCPv4 lease)")
    );
    assert_eq!(c.by(), "SLAAC");
    assert_eq!(
        fs::read_to_string(dir.path().join("etc/resolv.conf")).unwrap(),
        "nameserver fec0::3\n"
    );
    let trace = sys.trace();
    let at = |line: &str| trace.iter().position(|l| l == line).expect(line);
    assert!(at("ip -6 monitor address nduseropt") < at("ip link set eth0 up"));
    assert!(at("sysctl -w net.ipv6.conf.eth0.accept_ra=1") < at("ip link set eth0 up"));
    assert!(at("sysctl -w net.ipv6.conf.eth0.autoconf=1") < at("ip link set eth0 up"));
    assert_eq!(
        marks(&c),
        [
            ("SLAAC address", 2800),
            ("DHCPv4 stopped: no lease 1s after SLAAC", 3800)
        ]
    );
    assert_eq!(sent_kinds(&sys), vec![1, 1, 1], "DISCOVERs at 0, 1 and 3 s");
    assert_eq!(sys.now(), Duration::from_millis(3800));
}

/// A dual-stack network where SLAAC is usable first (its events at once) and the DHCP server
/// is slow (700 ms an answer): the REQUEST is out when the grace ends (1 s), so its ACK is
/// awaited and the IPv4 lease is the result, with the IPv6 address beside it.
#[test]
fn dual_stack_keeps_the_dhcpv4_lease_when_slaac_is_first() {
    let (dir, sys) = world();
    nic(dir.path(), "eth0", 2, "52:54:00:12:34:56", "up", true);
    ipv6_sysctls(dir.path(), "eth0");
    sys.serve_dhcp(Duration::from_millis(700), slirp_like(0));
    sys.push_ipv6_event_at(Duration::ZERO, default_route(2));
    sys.push_ipv6_event_at(Duration::ZERO, rdnss(2, 3600, &["fec0::3"]));
    sys.push_ipv6_event_at(Duration::ZERO, newaddr(2, SLAAC_ADDR, 200, false));
    let c = configure(
        &sys,
        &mut *sys.link_watch().unwrap(),
        &dhcp(),
        None,
        Needs::default(),
    )
    .unwrap();
    assert_eq!(c.by(), "DHCPv4");
    assert_eq!(
        c.summary(),
        format!(
            "eth0 10.0.2.15/24 via 10.0.2.2 (DHCP from 10.0.2.2, lease 86400s) + \
             {SLAAC_ADDR}/64 (SLAAC, DNS fec0::3)"
        )
    );
    assert!(has(&sys, "ip addr add 10.0.2.15/24 dev eth0"));
    assert_eq!(marks(&c), [("SLAAC address", 0), ("DHCPv4 lease", 1400)]);
    assert_eq!(sent_kinds(&sys), vec![1, 3]);
}

/// Dual stack, SLAAC first, the DHCP server quick once it answers but its first answer lost:
/// the retry within the grace brings the lease.
#[test]
fn dual_stack_gets_the_lease_of_a_retry_within_the_grace() {
    let (dir, sys) = world();
    nic(dir.path(), "eth0", 2, "52:54:00:12:34:56", "up", true);
    ipv6_sysctls(dir.path(), "eth0");
    let mut real = slirp_like(0);
    let mut first = true;
    sys.serve_dhcp(Duration::from_millis(5), move |req| {
        let out = real(req);
        if std::mem::take(&mut first) {
            return Vec::new();
        }
        out
    });
    let s = Duration::from_millis;
    sys.push_ipv6_event_at(s(500), default_route(2));
    sys.push_ipv6_event_at(s(500), newaddr(2, SLAAC_ADDR, 200, false));
    let c = configure(
        &sys,
        &mut *sys.link_watch().unwrap(),
        &dhcp(),
        None,
        Needs::default(),
    )
    .unwrap();
    assert_eq!(c.by(), "DHCPv4");
    assert_eq!(marks(&c), [("SLAAC address", 500), ("DHCPv4 lease", 1010)]);
}

/// An IPv4-only network with IPv6 watched (the kernel has it, no router advertises): the lease
/// ends the stage as soon as it is acknowledged, nothing waits for an advertisement.
#[test]
fn an_ipv4_only_network_does_not_wait_for_ipv6() {
    let (dir, sys) = world();
    nic(dir.path(), "eth0", 2, "52:54:00:12:34:56", "up", true);
    ipv6_sysctls(dir.path(), "eth0");
    sys.serve_dhcp(Duration::from_millis(3), slirp_like(0));
    let c = configure(
        &sys,
        &mut *sys.link_watch().unwrap(),
        &dhcp(),
        None,
        Needs::default(),
    )
    .unwrap();
    assert_eq!(c.by(), "DHCPv4");
    assert_eq!(c.ipv6, None);
    assert_eq!(marks(&c), [("DHCPv4 lease", 6)]);
    assert_eq!(sys.now(), Duration::from_millis(6));
}

/// SLAAC counts only with what the boot's URLs need: an advertisement without a DNS server
/// when a URL names its host, or any IPv6 when a URL is an IPv4 address, leaves DHCPv4 its
/// whole budget (15 s); the address is still taken at the end.
#[test]
fn slaac_counts_only_with_what_the_urls_need() {
    let run = |needs: Needs| {
        let (dir, sys) = world();
        nic(dir.path(), "eth0", 2, "52:54:00:12:34:56", "up", true);
        ipv6_sysctls(dir.path(), "eth0");
        sys.push_ipv6_event_at(Duration::from_millis(500), default_route(2));
        sys.push_ipv6_event_at(
            Duration::from_millis(500),
            newaddr(2, SLAAC_ADDR, 200, false),
        );
        let c = configure(&sys, &mut *sys.link_watch().unwrap(), &dhcp(), None, needs).unwrap();
        assert_eq!(c.by(), "SLAAC");
        sys.now().as_millis()
    };
    let names = Needs::of_urls(["http://repo.example.org/alpine/v3.20/main"]);
    assert_eq!(
        names,
        Needs {
            dns: true,
            ipv4: false
        }
    );
    assert_eq!(run(names), 15_000, "no RDNSS for a named host");
    let v4 = Needs::of_urls(["http://10.0.2.100/apks", "/media/vda1/apks"]);
    assert_eq!(
        v4,
        Needs {
            dns: false,
            ipv4: true
        }
    );
    assert_eq!(run(v4), 15_000, "an IPv4 address");
    let v6 = Needs::of_urls(["http://[fec0::2]:8080/apks", "https://[2001:db8::1]/x"]);
    assert_eq!(v6, Needs::default());
    assert_eq!(run(v6), 1500, "an IPv6 address: no DNS needed");
}

/// DHCPv4 gave up and SLAAC is not usable: the wait for IPv6 ends at its deadline (10 s after
/// the link, so at DHCPv4's end only queued events count), and an address without a default
/// route is still taken then (an on-link repository may be reachable).
#[test]
fn without_a_lease_an_address_without_a_route_is_taken_at_the_end() {
    let (dir, sys) = world();
    nic(dir.path(), "eth0", 2, "52:54:00:12:34:56", "up", true);
    ipv6_sysctls(dir.path(), "eth0");
    // An advertisement that comes late (a lost first solicitation): 16 s after the link.
    sys.push_ipv6_event_at(Duration::from_secs(16), newaddr(2, SLAAC_ADDR, 0, false));
    let e = configure(
        &sys,
        &mut *sys.link_watch().unwrap(),
        &dhcp(),
        None,
        Needs::default(),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "no address on eth0: no DHCP server answered (4 tries in 15s) and no IPv6 router \
         advertised a prefix within 10s"
    );
    let (dir, sys) = world();
    nic(dir.path(), "eth0", 2, "52:54:00:12:34:56", "up", true);
    ipv6_sysctls(dir.path(), "eth0");
    sys.push_ipv6_event_at(
        Duration::from_millis(9500),
        newaddr(2, SLAAC_ADDR, 0, false),
    );
    let c = configure(
        &sys,
        &mut *sys.link_watch().unwrap(),
        &dhcp(),
        None,
        Needs::default(),
    )
    .unwrap();
    assert_eq!(c.ipv6.as_ref().unwrap().address.to_string(), SLAAC_ADDR);
    assert_eq!(
        marks(&c),
        [
            ("SLAAC address", 9500),
            ("DHCPv4: no answer (4 tries)", 15000)
        ]
    );
    assert_eq!(sys.now(), Duration::from_secs(15));
}

/// With a DHCPv4 lease the boot does not wait for IPv6; what already came is taken, and its DNS
/// servers follow the lease's.
#[test]
fn a_dhcp_lease_takes_ipv6_only_when_it_is_already_there() {
    let (dir, sys) = world();
    nic(dir.path(), "eth0", 2, "52:54:00:12:34:56", "up", true);
    ipv6_sysctls(dir.path(), "eth0");
    sys.serve_dhcp(Duration::from_millis(3), slirp_like(0));
    slirp_router_advertisement(&sys);
    let c = configure(
        &sys,
        &mut *sys.link_watch().unwrap(),
        &dhcp(),
        None,
        Needs::default(),
    )
    .unwrap();
    assert_eq!(c.ipv6, None);
    assert_eq!(sys.now(), Duration::from_millis(6), "no wait for IPv6");

    let (dir, sys) = world();
    nic(dir.path(), "eth0", 2, "52:54:00:12:34:56", "up", true);
    ipv6_sysctls(dir.path(), "eth0");
    sys.serve_dhcp(Duration::from_millis(3), slirp_like(0));
    sys.push_ipv6_event_at(Duration::ZERO, rdnss(2, 3600, &["fec0::3"]));
    sys.push_ipv6_event_at(Duration::ZERO, newaddr(2, SLAAC_ADDR, 200, false));
    let c = configure(
        &sys,
        &mut *sys.link_watch().unwrap(),
        &dhcp(),
        None,
        Needs::default(),
    )
    .unwrap();
    assert_eq!(
        c.summary(),
        format!(
            "eth0 10.0.2.15/24 via 10.0.2.2 (DHCP from 10.0.2.2, lease 86400s) + \
             {SLAAC_ADDR}/64 (SLAAC, DNS fec0::3)"
        )
    );
    assert_eq!(
        fs::read_to_string(dir.path().join("etc/resolv.conf")).unwrap(),
        "search example.test\nnameserver 10.0.2.3\nnameserver 1.1.1.1\nnameserver fec0::3\n"
    );
}

/// A withdrawn DNS server (lifetime 0) is not written.
#[test]
fn a_withdrawn_rdnss_server_is_not_used() {
    let (dir, sys) = world();
    nic(dir.path(), "eth0", 2, "52:54:00:12:34:56", "up", true);
    ipv6_sysctls(dir.path(), "eth0");
    sys.push_ipv6_event_at(Duration::ZERO, rdnss(2, 0, &["fec0::3"]));
    sys.push_ipv6_event_at(Duration::ZERO, newaddr(2, SLAAC_ADDR, 0, false));
    let c = configure(
        &sys,
        &mut *sys.link_watch().unwrap(),
        &dhcp(),
        None,
        Needs::default(),
    )
    .unwrap();
    assert!(c.ipv6.unwrap().dns.is_empty());
    assert!(!dir.path().join("etc/resolv.conf").exists());
}

/// Issue 10 point 1: the Pi 3's smsc95xx sits behind a USB hub that enumerates after the SD
/// card was found, so its uevent comes while the network stage waits, not during the device
/// search. The stage's watch loads its driver (before: "no network interface was found").
#[test]
fn a_usb_nic_appearing_after_the_media_search_gets_its_driver_and_a_lease() {
    use ramboot::hw::hotplug::NicWatch;
    use ramboot::hw::modules::ModuleLoader;
    let (dir, sys) = world();
    let mut modules = support::hw::FakeModules::new(dir.path());
    support::hw::late_usb_nic(&mut modules, &sys, Duration::from_millis(700));
    sys.serve_dhcp(Duration::from_millis(3), slirp_like(0));
    let loader = ModuleLoader::open(&sys).unwrap();
    let mut watch = NicWatch::open(&sys, Some(&loader), sys.link_watch().unwrap());
    let c = configure(&sys, &mut watch, &dhcp(), None, Needs::default()).unwrap();
    assert!(
        c.summary().starts_with("eth0 10.0.2.15/24"),
        "{}",
        c.summary()
    );
    assert!(loader.has_loaded("smsc95xx"));
    assert_eq!(watch.loaded_at, Some(Duration::from_millis(700)));
}

/// `RealSys::rename_link` through rtnetlink (`RTM_SETLINK` with `IFLA_IFNAME`), on the
/// loopback of a network namespace private to one test thread: the host's links are never
/// touched.
#[test]
fn real_rename_link_in_a_private_network_namespace() {
    if !rustix::process::geteuid().is_root() {
        support::tools::missing("renaming a link needs root (a private network namespace)");
        return;
    }
    std::thread::spawn(|| {
        // SAFETY: CLONE_NEWNET only moves this thread to a new network namespace; it holds no
        // socket or fd table state that the move could invalidate.
        unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNET) }
            .expect("unshare(CLONE_NEWNET)");
        let sys = ramboot::sys::RealSys;
        let name_of = |index: u32| {
            let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
            // SAFETY: `buf` has the IF_NAMESIZE bytes if_indextoname writes at most.
            let p = unsafe { libc::if_indextoname(index, buf.as_mut_ptr()) };
            assert!(!p.is_null(), "no interface {index}");
            // SAFETY: on success `buf` holds a NUL-terminated name.
            unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }
                .to_string_lossy()
                .into_owned()
        };
        assert_eq!(name_of(1), "lo");
        sys.rename_link("lo", 1, "lan9").unwrap();
        assert_eq!(name_of(1), "lan9");
        let gone = sys.rename_link("x", 99, "lan8").unwrap_err();
        assert_eq!(gone.raw_os_error(), Some(libc::ENODEV), "{gone}");
        let long = sys.rename_link("lan9", 1, "sixteen-bytes-xx").unwrap_err();
        assert_eq!(long.kind(), std::io::ErrorKind::InvalidInput);
        assert_eq!(name_of(1), "lan9");
    })
    .join()
    .unwrap();
}
