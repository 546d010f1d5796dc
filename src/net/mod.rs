//! The network at boot, as Alpine's `configure_ip` sets it up: an interface chosen
//! ([`iface`]), then a static address from `ip=` or a DHCPv4 lease ([`dhcp`]), applied through
//! rtnetlink, and the DNS servers in the initramfs `/etc/resolv.conf` (copied into the new root
//! when it has none). Everything goes through the `Sys` boundary, so the whole of it runs on the
//! recording double against an in-process DHCP server.
//!
//! Addresses and routes set here survive switch_root; the new root's own networking takes over
//! from there.

pub mod dhcp;
pub mod iface;

use crate::cmdline::{IpConfig, StaticIp};
use crate::sys::Sys;
use iface::{Choice, Wanted};
use std::fmt::{self, Write as _};
use std::io;
use std::net::Ipv4Addr;
use std::path::Path;

/// Why the network could not be configured.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// Alpine's words, so that scripts and people who know them recognise the case.
    #[error("ip=off: the network is not to be configured")]
    Off,
    #[error("IP requested but no network interface was found")]
    NoInterface,
    #[error("interface {name} (named by ip=) was not found")]
    NamedInterfaceMissing { name: String },
    #[error("cannot watch the network links: {0}")]
    LinkWatch(#[source] io::Error),
    #[error("DHCP on its socket: {0}")]
    Dhcp(#[source] io::Error),
    #[error("no DHCP lease on {interface}: no server answered ({tries} tries in {}s)", dhcp::ATTEMPTS.iter().map(|d| d.as_secs()).sum::<u64>())]
    NoLease { interface: String, tries: usize },
    #[error("cannot set {what} on {interface}: {source}")]
    Apply {
        what: String,
        interface: String,
        source: io::Error,
    },
}

/// An IPv4 address in dotted decimal, without `Ipv4Addr`'s own formatter (~0.5 KB of the init
/// build).
pub struct Dotted(pub Ipv4Addr);

impl fmt::Display for Dotted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d] = self.0.octets();
        write!(f, "{a}.{b}.{c}.{d}")
    }
}

/// What the network stage set up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Configured {
    pub interface: String,
    pub mac: String,
    /// Why that interface.
    pub why: String,
    /// The lease, when DHCP gave the address.
    pub lease: Option<dhcp::Lease>,
    pub address: Ipv4Addr,
    pub prefix: u8,
    pub router: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
}

impl Configured {
    /// `eth0 10.0.2.15/24 via 10.0.2.2 (DHCP from 10.0.2.2, lease 86400s)`.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} {}/{}",
            self.interface,
            Dotted(self.address),
            self.prefix
        );
        if let Some(r) = self.router {
            let _ = write!(s, " via {}", Dotted(r));
        }
        match &self.lease {
            Some(l) => {
                let _ = write!(s, " (DHCP from {}", Dotted(l.server));
                match l.lease_secs {
                    Some(t) => {
                        let _ = write!(s, ", lease {t}s)");
                    }
                    None => s.push(')'),
                }
            }
            None => s.push_str(" (static, ip=)"),
        }
        s
    }
}

/// Configures the network as `ip` says (`Off` is the caller's business: nothing to do).
/// `bootif` is `BOOTIF=` as a MAC address.
pub fn configure(
    sys: &dyn Sys,
    ip: &IpConfig,
    bootif: Option<&str>,
) -> Result<Configured, NetError> {
    let device = match ip {
        IpConfig::Dhcp { device } => device.as_deref(),
        IpConfig::Static(s) => s.device.as_deref(),
        IpConfig::Off => return Err(NetError::Off),
    };
    let mut watch = sys.link_watch().map_err(NetError::LinkWatch)?;
    let Choice { interface, why } = iface::choose(sys, &mut *watch, Wanted { device, bootif })?;
    log::info!("network interface {} ({why})", interface.name);
    let mut done = Configured {
        interface: interface.name.clone(),
        mac: interface.mac.clone(),
        why,
        lease: None,
        address: Ipv4Addr::UNSPECIFIED,
        prefix: 0,
        router: None,
        dns: Vec::new(),
    };
    let append_dns = match ip {
        IpConfig::Static(s) => {
            apply_static(sys, s, &mut done)?;
            true
        }
        _ => {
            let mac = interface.mac_bytes();
            let lease = dhcp::obtain(sys, &interface.name, mac, transaction_id(sys, mac))?;
            apply_lease(sys, &lease, &mut done)?;
            false
        }
    };
    let domain = done.lease.as_ref().and_then(|l| l.domain.clone());
    if !done.dns.is_empty() || domain.is_some() {
        if let Err(e) = write_resolv_conf(sys, &done.dns, domain.as_deref(), append_dns) {
            log::warn!("cannot write /etc/resolv.conf: {e}");
        }
    }
    Ok(done)
}

/// A transaction id that differs between machines (the MAC) and boots (the clock): it only has
/// to tell our exchange from others on the same link.
fn transaction_id(sys: &dyn Sys, mac: [u8; 6]) -> u32 {
    let m = mac
        .iter()
        .fold(0u32, |h, b| h.rotate_left(5) ^ u32::from(*b));
    m ^ sys.now().subsec_nanos()
}

fn applied(what: &str, interface: &str, r: io::Result<()>) -> Result<(), NetError> {
    r.map_err(|source| NetError::Apply {
        what: what.to_string(),
        interface: interface.to_string(),
        source,
    })
}

fn apply_address(
    sys: &dyn Sys,
    address: Ipv4Addr,
    prefix: u8,
    router: Option<Ipv4Addr>,
    done: &mut Configured,
) -> Result<(), NetError> {
    let name = done.interface.clone();
    let r = sys.add_address(&name, address, prefix);
    applied(&format!("address {}/{prefix}", Dotted(address)), &name, r)?;
    if let Some(gw) = router {
        let r = sys.add_default_route(&name, gw);
        applied(&format!("default route via {}", Dotted(gw)), &name, r)?;
    }
    done.address = address;
    done.prefix = prefix;
    done.router = router;
    Ok(())
}

/// `ip=client::gw:netmask:...`: the address, the default route when a gateway is given, and
/// the DNS servers.
fn apply_static(sys: &dyn Sys, s: &StaticIp, done: &mut Configured) -> Result<(), NetError> {
    let prefix = s.netmask.map_or_else(
        || dhcp::class_prefix(s.client),
        |m| u32::from(m).count_ones() as u8,
    );
    apply_address(sys, s.client, prefix, s.gateway, done)?;
    done.dns = s.dns.clone();
    Ok(())
}

fn apply_lease(sys: &dyn Sys, lease: &dhcp::Lease, done: &mut Configured) -> Result<(), NetError> {
    apply_address(sys, lease.address, lease.prefix, lease.router, done)?;
    if let Some(h) = &lease.hostname {
        if let Err(e) = sys.set_hostname(h) {
            log::warn!("cannot set the hostname {h} from DHCP: {e}");
        }
    }
    done.dns = lease.dns.clone();
    done.lease = Some(lease.clone());
    Ok(())
}

/// The initramfs `/etc/resolv.conf` (the diskless branch copies it into the new root when the
/// root has none). A lease replaces it, as udhcpc's script does; `ip=` servers are appended.
fn write_resolv_conf(
    sys: &dyn Sys,
    dns: &[Ipv4Addr],
    domain: Option<&str>,
    append: bool,
) -> io::Result<()> {
    let path = sys.path(Path::new("/etc/resolv.conf"));
    let mut text = if append {
        std::fs::read_to_string(&path).unwrap_or_default()
    } else {
        String::new()
    };
    if let Some(d) = domain {
        let _ = writeln!(text, "search {d}");
    }
    for s in dns {
        let _ = writeln!(text, "nameserver {}", Dotted(*s));
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&path, text)
}
