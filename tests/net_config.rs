//! The network at boot on the recording double (issue 10, points 1-3 and 6): interface choice
//! with link waits driven by (scripted) link events, static `ip=`, and the DHCPv4 exchange
//! against the in-process server of `support::dhcp`.
// Tests build fake sysfs trees with plain file writes.
#![allow(clippy::disallowed_methods)]

use ramboot::cmdline::{parse_ip, IpConfig};
use ramboot::net::{configure, NetError};
use ramboot::sys::{Call, RecordingSys, Sys};
mod support;

use std::fs;
use std::net::Ipv4Addr;
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
    let c = configure(&sys, &dhcp(), None).unwrap();
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
    let c = configure(&sys, &dhcp(), None).unwrap();
    assert_eq!(c.lease.address, Ipv4Addr::new(10, 0, 2, 15));
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
    let c = configure(&sys, &dhcp(), None).unwrap();
    assert_eq!(c.lease.address, Ipv4Addr::new(10, 0, 2, 15));
}

/// No server: four DISCOVERs waiting 1, 2, 4 and 8 s, then a clear error.
#[test]
fn no_server_means_backoff_then_no_lease() {
    let (dir, sys) = world();
    nic(dir.path(), "eth0", 2, "52:54:00:12:34:56", "up", true);
    let e = configure(&sys, &dhcp(), None).unwrap_err();
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
    let c = configure(&sys, &ip, None).unwrap();
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
    configure(&sys, &dhcp(), None).unwrap();
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
    let c = configure(&sys, &dhcp(), None).unwrap();
    assert_eq!(c.interface, "eth0");
    assert_eq!(c.mac, "b8:27:eb:00:00:01");
}

#[test]
fn a_named_interface_that_never_appears_is_a_clear_error() {
    let (dir, sys) = world();
    nic(dir.path(), "eth0", 2, "52:54:00:12:34:56", "up", true);
    let e = configure(
        &sys,
        &IpConfig::Dhcp {
            device: Some("eth5".into()),
        },
        None,
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
    configure(&sys, &dhcp(), None).unwrap();
    assert_eq!(sys.now(), Duration::ZERO, "no wait for operstate");
}
