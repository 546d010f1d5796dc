//! The network at boot, as Alpine's `configure_ip` sets it up: interfaces renamed by
//! `/etc/mactab` ([`mactab`]), an interface chosen ([`iface`]), then a static address from `ip=` or a DHCPv4 lease ([`dhcp`]), applied through
//! rtnetlink, and the DNS servers in the initramfs `/etc/resolv.conf` (copied into the new root
//! when it has none). Everything goes through the `Sys` boundary, so the whole of it runs on the
//! recording double against an in-process DHCP server.
//!
//! IPv6 comes from the kernel's own SLAAC, turned on before the link comes up ([`slaac`]), and
//! is listened to at the same time as DHCPv4 runs ([`dual`]): whichever family first gives
//! what the boot needs brings the network up, a DHCPv4 lease winning when both come (within a
//! short grace after SLAAC).
//!
//! Addresses and routes set here survive switch_root; the new root's own networking takes over
//! from there.

pub mod dhcp;
pub mod dual;
pub mod http;
pub mod iface;
pub mod mactab;
pub mod slaac;
pub mod template;
#[cfg(feature = "tls")]
pub mod tls;

use crate::cmdline::{IpConfig, StaticIp};
use crate::sys::Sys;
use iface::{Choice, Wanted};
use std::fmt::{self, Write as _};
use std::io;
use std::net::Ipv4Addr;
use std::path::Path;

/// Where the initramfs has the CA bundle HTTPS servers are checked against (Debian's and
/// Alpine's path; `ramboot mkinitfs --tls` puts it there).
pub const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Why the network could not be configured.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// Alpine's words, so that scripts and people who know them recognise the case.
    #[error("IP requested but no network interface was found")]
    NoInterface,
    #[error("interface {name} (named by ip=) was not found")]
    NamedInterfaceMissing { name: String },
    #[error("cannot watch the network links: {0}")]
    LinkWatch(#[source] io::Error),
    #[error("DHCP on its socket: {0}")]
    Dhcp(#[source] io::Error),
    #[error(
        "no DHCP lease on {interface}: no server answered ({tries} tries in {}s)",
        dhcp::ATTEMPTS_SECS
    )]
    NoLease { interface: String, tries: usize },
    #[error(
        "no address on {interface}: no DHCP server answered ({tries} tries in {}s) and no IPv6 \
         router advertised a prefix within {}s",
        dhcp::ATTEMPTS_SECS,
        slaac::WAIT.as_secs()
    )]
    NoAddress { interface: String, tries: usize },
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
    pub why: &'static str,
    /// The address came from DHCP (else from `ip=`).
    pub dhcp: bool,
    /// What was applied: the DHCP lease, or `ip=`'s fields in the same shape; `None` when only
    /// IPv6 came.
    pub lease: Option<dhcp::Lease>,
    /// The kernel's SLAAC address and the advertised DNS servers, when there by then.
    pub ipv6: Option<slaac::Slaac>,
    /// When each family got somewhere (or gave up), on the boot clock, for the timeline.
    pub marks: dual::Marks,
}

/// What the boot's URLs need of the network, which says when it is up (see [`dual`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Needs {
    /// A host is a name: IPv6 alone counts only with an advertised DNS server.
    pub dns: bool,
    /// A host is an IPv4 address: IPv6 alone never counts.
    pub ipv4: bool,
}

impl Needs {
    /// What fetching `urls` needs (what cannot be parsed needs nothing: its fetch will say why).
    pub fn of_urls<'a>(urls: impl IntoIterator<Item = &'a str>) -> Needs {
        let mut needs = Needs::default();
        for url in urls {
            let Ok(u) = http::Url::parse(url) else {
                continue;
            };
            if u.host.parse::<Ipv4Addr>().is_ok() {
                needs.ipv4 = true;
            } else if !u.host.contains(':') {
                needs.dns = true;
            }
        }
        needs
    }
}

impl Configured {
    /// Which family configured the network: `DHCPv4`, `ip=` or `SLAAC`.
    pub fn by(&self) -> &'static str {
        match (&self.lease, self.dhcp) {
            (Some(_), true) => "DHCPv4",
            (Some(_), false) => "ip=",
            (None, _) => "SLAAC",
        }
    }

    /// `eth0 10.0.2.15/24 via 10.0.2.2 (DHCP from 10.0.2.2, lease 86400s)`, then
    /// ` + fec0::1/64 (SLAAC, DNS fec0::3)` when IPv6 came too.
    pub fn summary(&self) -> String {
        let mut s = self.interface.clone();
        if let Some(l) = &self.lease {
            let _ = write!(s, " {}/{}", Dotted(l.address), l.prefix);
            if let Some(r) = l.router {
                let _ = write!(s, " via {}", Dotted(r));
            }
            if !self.dhcp {
                s.push_str(" (static, ip=)");
            } else {
                let _ = write!(s, " (DHCP from {}", Dotted(l.server));
                if let Some(t) = l.lease_secs {
                    let _ = write!(s, ", lease {t}s");
                }
                s.push(')');
            }
        }
        if let Some(v6) = &self.ipv6 {
            let joint = if self.lease.is_some() { " +" } else { "" };
            let _ = write!(
                s,
                "{joint} {}/{} (SLAAC",
                slaac::Hex6(v6.address),
                v6.prefix
            );
            for (i, d) in v6.dns.iter().enumerate() {
                let _ = write!(
                    s,
                    "{}{}",
                    if i == 0 { ", DNS " } else { " " },
                    slaac::Hex6(*d)
                );
            }
            if self.lease.is_none() {
                s.push_str("; no DHCPv4 lease");
            }
            s.push(')');
        }
        s
    }
}

/// Configures the network as `ip` says (`Off` is the caller's business: nothing to do).
/// `bootif` is `BOOTIF=` as a MAC address. `watch` wakes the interface and link waits (the
/// boot's [`crate::hw::hotplug::NicWatch`] also loads the drivers of devices appearing meanwhile).
/// `needs` says what counts as up when only IPv6 comes.
pub fn configure(
    sys: &dyn Sys,
    watch: &mut dyn crate::sys::LinkWatch,
    ip: &IpConfig,
    bootif: Option<&str>,
    needs: Needs,
) -> Result<Configured, NetError> {
    let device = match ip {
        IpConfig::Dhcp { device } => device.as_deref(),
        IpConfig::Static(s) => s.device.as_deref(),
        // The plan never asks for the network with ip=off; nothing is configured.
        IpConfig::Off => return Err(NetError::NoInterface),
    };
    // Before any link comes up, so that no IPv6 event is missed; IPv6 is a bonus, never fatal.
    let v6_events = sys
        .ipv6_events()
        .map_err(|e| log::warn!("IPv6 autoconfiguration is not watched: {e}"))
        .ok();
    let mut names = mactab::Renamer::load(sys);
    let Choice {
        interface,
        why,
        slaac: slaac_on,
        up_at,
    } = iface::choose(sys, watch, &mut names, Wanted { device, bootif })?;
    let mut v6_events = v6_events.filter(|_| slaac_on);
    let events = v6_events
        .as_mut()
        .map(|e| &mut **e as &mut dyn crate::sys::Ipv6Events);
    let dhcp = !matches!(ip, IpConfig::Static(_));
    let got = match ip {
        IpConfig::Static(s) => {
            // Only what already arrived: a static address does not wait for IPv6.
            let mut seen = slaac::Seen::default();
            if let Some(e) = events {
                seen.drain(e, interface.index);
            }
            dual::Outcome {
                lease: Some(static_lease(s)),
                ipv6: seen.slaac(),
                marks: Vec::new(),
            }
        }
        _ => dual::run(sys, &interface, up_at, events, needs)?,
    };
    if let Some(lease) = &got.lease {
        apply(sys, &interface, lease, dhcp)?;
    }
    if let Some(v6) = &got.ipv6 {
        if let Err(e) = append_resolv_conf(sys, &v6.dns) {
            log::warn!("cannot write /etc/resolv.conf: {e}");
        }
    }
    Ok(Configured {
        interface: interface.name,
        mac: interface.mac,
        why,
        dhcp,
        lease: got.lease,
        ipv6: got.ipv6,
        marks: got.marks,
    })
}

/// The router-advertised DNS servers after whatever IPv4 put there.
fn append_resolv_conf(sys: &dyn Sys, dns: &[std::net::Ipv6Addr]) -> io::Result<()> {
    if dns.is_empty() {
        return Ok(());
    }
    let path = sys.path(Path::new("/etc/resolv.conf"));
    let mut text = std::fs::read_to_string(&path).unwrap_or_default();
    for s in dns {
        let _ = writeln!(text, "nameserver {}", slaac::Hex6(*s));
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&path, text)
}

/// A transaction id that differs between machines (the MAC) and boots (the clock): it only has
/// to tell our exchange from others on the same link.
fn transaction_id(sys: &dyn Sys, mac: [u8; 6]) -> u32 {
    u32::from_be_bytes([mac[2], mac[3], mac[4], mac[5]]) ^ sys.now().subsec_nanos()
}

/// `ip=client::gw:netmask:...` in a lease's shape (the class prefix without a netmask, as the
/// kernel does).
fn static_lease(s: &StaticIp) -> dhcp::Lease {
    let prefix = s.netmask.map_or_else(
        || dhcp::class_prefix(s.client),
        |m| u32::from(m).count_ones() as u8,
    );
    dhcp::Lease {
        address: s.client,
        prefix,
        router: s.gateway,
        dns: s.dns.clone(),
        hostname: None,
        domain: None,
        lease_secs: None,
        server: Ipv4Addr::UNSPECIFIED,
    }
}

/// The address, the default route when there is a router, the DHCP hostname, and the DNS
/// servers in resolv.conf (a lease replaces the file, as udhcpc's script does; `ip=` servers are
/// appended, as Alpine does).
fn apply(sys: &dyn Sys, i: &iface::Interface, l: &dhcp::Lease, dhcp: bool) -> Result<(), NetError> {
    let name = i.name.as_str();
    let failed = |what: String| {
        move |source| NetError::Apply {
            what,
            interface: name.to_string(),
            source,
        }
    };
    sys.add_address(name, i.index, l.address, l.prefix)
        .map_err(failed(format!(
            "address {}/{}",
            Dotted(l.address),
            l.prefix
        )))?;
    if let Some(gw) = l.router {
        sys.add_default_route(name, i.index, gw)
            .map_err(failed(format!("default route via {}", Dotted(gw))))?;
    }
    if let Some(h) = &l.hostname {
        if let Err(e) = sys.set_hostname(h) {
            log::warn!("cannot set the hostname from DHCP: {e}");
        }
    }
    if !l.dns.is_empty() || l.domain.is_some() {
        if let Err(e) = write_resolv_conf(sys, &l.dns, l.domain.as_deref(), !dhcp) {
            log::warn!("cannot write /etc/resolv.conf: {e}");
        }
    }
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
