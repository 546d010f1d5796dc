//! IPv6 stateless autoconfiguration (RFC 4862) and router-advertised DNS servers (RFC 8106).
//!
//! The kernel does SLAAC by itself once `accept_ra` and `autoconf` are on for the interface
//! (set here before it is brought up): link-local address, router solicitation, an address per
//! advertised prefix, and the default route through the advertising router. The boot only
//! listens on rtnetlink: `RTM_NEWADDR` says when an address is usable (duplicate detection
//! done), `RTM_NEWROUTE` when the default route is there, `RTM_NEWNDUSEROPT` carries the
//! advertisement's RDNSS option, which the kernel leaves to user space.
//!
//! How long the boot waits for it, beside DHCPv4, is [`super::dual`]'s business.

use crate::sys::{Ipv6Events, Sys};
use std::fmt;
use std::net::Ipv6Addr;
use std::time::Duration;

/// How long after the link comes up an IPv6 address may take: the kernel's solicitation delay
/// (up to 1 s), duplicate detection of the link-local and then of the global address (1 s
/// each), and one more solicitation (4 s apart) if the first advertisement was lost.
pub const WAIT: Duration = Duration::from_secs(10);

const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;
const RTM_NEWNDUSEROPT: u16 = 68;
const RTA_OIF: u16 = 4;
const RTN_UNICAST: u8 = 1;
const AF_INET6: u8 = 10;
const IFA_ADDRESS: u16 = 1;
const IFA_FLAGS: u16 = 8;
const IFA_F_DADFAILED: u32 = 0x08;
const IFA_F_TENTATIVE: u32 = 0x40;
/// `RT_SCOPE_LINK`: link-local (and host) addresses reach no repository.
const SCOPE_LINK: u8 = 253;
const ND_ROUTER_ADVERT: u8 = 134;
const ND_OPT_RDNSS: u8 = 25;

/// What the events said so far about one interface.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Seen {
    /// The first routable address that passed duplicate detection, with its prefix length.
    pub address: Option<(Ipv6Addr, u8)>,
    /// DNS servers from router advertisements (lifetime not zero), in order, once each.
    pub dns: Vec<Ipv6Addr>,
    /// The kernel installed a default route through the interface.
    pub router: bool,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn v6(b: &[u8]) -> Option<Ipv6Addr> {
    let a: [u8; 16] = b.get(..16)?.try_into().ok()?;
    Some(Ipv6Addr::from(a))
}

impl Seen {
    /// Takes in what one datagram (several messages may share it) says about interface
    /// `index`; anything else is skipped.
    pub fn read(&mut self, datagram: &[u8], index: u32) {
        let mut rest = datagram;
        while let (Some(len), Some(kind)) = (u32_at(rest, 0), u16_at(rest, 4)) {
            let len = len as usize;
            let Some(msg) = rest.get(16..len) else { return };
            let _ = match kind {
                RTM_NEWADDR => self.address(msg, index),
                RTM_NEWROUTE => self.route(msg, index),
                RTM_NEWNDUSEROPT => self.rdnss(msg, index),
                _ => None,
            };
            rest = rest.get(len.next_multiple_of(4)..).unwrap_or_default();
        }
    }

    /// `struct ifaddrmsg` and its attributes: a usable routable IPv6 address, if it is one.
    fn address(&mut self, msg: &[u8], index: u32) -> Option<()> {
        let [family, prefix, flags, scope] = *msg.first_chunk::<4>()?;
        if family != AF_INET6 || scope >= SCOPE_LINK || u32_at(msg, 4)? != index {
            return None;
        }
        let (mut flags, mut address) = (u32::from(flags), None);
        let mut attrs = msg.get(8..)?;
        while let (Some(len), Some(kind)) = (u16_at(attrs, 0), u16_at(attrs, 2)) {
            let data = attrs.get(4..usize::from(len))?;
            match kind {
                IFA_ADDRESS => address = v6(data),
                // The full flags when the byte in the header is too small for them.
                IFA_FLAGS => flags = u32_at(data, 0)?,
                _ => {}
            }
            attrs = attrs
                .get(usize::from(len).next_multiple_of(4)..)
                .unwrap_or_default();
        }
        if flags & (IFA_F_TENTATIVE | IFA_F_DADFAILED) == 0 && self.address.is_none() {
            self.address = Some((address?, prefix));
        }
        Some(())
    }

    /// `struct rtmsg` and its attributes: an IPv6 default route out of the interface.
    fn route(&mut self, msg: &[u8], index: u32) -> Option<()> {
        let [family, dst_len, .., kind] = *msg.first_chunk::<8>()?;
        if family != AF_INET6 || dst_len != 0 || kind != RTN_UNICAST {
            return None;
        }
        let mut attrs = msg.get(12..)?;
        while let (Some(len), Some(attr)) = (u16_at(attrs, 0), u16_at(attrs, 2)) {
            if attr == RTA_OIF && u32_at(attrs, 4)? == index {
                self.router = true;
            }
            attrs = attrs
                .get(usize::from(len.max(4)).next_multiple_of(4)..)
                .unwrap_or_default();
        }
        Some(())
    }

    /// `struct nduseroptmsg` and the advertisement options after it: the RDNSS servers.
    fn rdnss(&mut self, msg: &[u8], index: u32) -> Option<()> {
        let (opts_len, icmp_type) = (u16_at(msg, 2)?, *msg.get(8)?);
        if msg[0] != AF_INET6 || icmp_type != ND_ROUTER_ADVERT || u32_at(msg, 4)? != index {
            return None;
        }
        let mut opts = msg.get(16..16 + usize::from(opts_len))?;
        while let [kind, units, ..] = *opts {
            let len = usize::from(units) * 8;
            let opt = opts.get(..len).filter(|_| len > 0)?;
            // Type, length, reserved (2), lifetime (4), then the servers; lifetime 0 withdraws.
            if kind == ND_OPT_RDNSS && u32_at(opt, 4) != Some(0) {
                for s in opt[8..].chunks_exact(16).filter_map(v6) {
                    if !self.dns.contains(&s) {
                        self.dns.push(s);
                    }
                }
            }
            opts = &opts[len..];
        }
        Some(())
    }
}

/// What SLAAC gave on one interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slaac {
    pub address: Ipv6Addr,
    pub prefix: u8,
    pub dns: Vec<Ipv6Addr>,
}

/// Turns SLAAC on for `interface` before it comes up; false when the kernel has no IPv6 (no
/// such setting), which the caller takes as "nothing to wait for".
pub fn enable(sys: &dyn Sys, interface: &str) -> bool {
    let set = |key: &str| sys.write_sysctl(&format!("net/ipv6/conf/{interface}/{key}"), "1");
    set("accept_ra").is_ok() && set("autoconf").is_ok()
}

impl Seen {
    /// Enough to reach a repository: a routable address with a default route, and a DNS
    /// server when `dns` (a host is a name).
    pub fn usable(&self, dns: bool) -> bool {
        self.address.is_some() && self.router && (!dns || !self.dns.is_empty())
    }

    /// Takes in what is already queued on `events`, without waiting.
    pub fn drain(&mut self, events: &mut dyn Ipv6Events, index: u32) {
        loop {
            match events.recv(Duration::ZERO) {
                Ok(Some(datagram)) => self.read(&datagram, index),
                Ok(None) => return,
                Err(e) => {
                    log::warn!("IPv6 events: {e}");
                    return;
                }
            }
        }
    }

    /// The address and DNS servers, when there is an address.
    pub fn slaac(&self) -> Option<Slaac> {
        let (address, prefix) = self.address?;
        Some(Slaac {
            address,
            prefix,
            dns: self.dns.clone(),
        })
    }
}

/// An IPv6 address in RFC 5952's short form, without `Ipv6Addr`'s own formatter (a size
/// budget): lower-case hex groups, the longest run of two or more zero groups as `::`.
pub struct Hex6(pub Ipv6Addr);

impl fmt::Display for Hex6 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = self.0.segments();
        // The longest run of zero groups (the first of equal ones), if two or more.
        let (mut best, mut run) = ((0, 0), (0, 0));
        for (i, &x) in g.iter().enumerate() {
            run = if x == 0 {
                (run.0, run.1 + 1)
            } else {
                (i + 1, 0)
            };
            if run.1 > best.1 {
                best = run;
            }
        }
        let (start, len) = if best.1 >= 2 { best } else { (8, 0) };
        for (i, x) in g.iter().enumerate() {
            if i == start {
                f.write_str("::")?;
            }
            if (start..start + len).contains(&i) {
                continue;
            }
            if i > 0 && i != start + len {
                f.write_str(":")?;
            }
            write!(f, "{x:x}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An rtnetlink message: header (length, type, no flags, sequence 0, port 0) and body.
    pub(crate) fn message(kind: u16, body: &[u8]) -> Vec<u8> {
        let mut m = ((16 + body.len()) as u32).to_ne_bytes().to_vec();
        m.extend(kind.to_ne_bytes());
        m.extend([0u8; 10]);
        m.extend(body);
        m.resize(m.len().next_multiple_of(4), 0);
        m
    }

    fn newaddr(index: u32, address: &str, scope: u8, flags: u8) -> Vec<u8> {
        let mut body = vec![AF_INET6, 64, flags, scope];
        body.extend(index.to_ne_bytes());
        body.extend(20u16.to_ne_bytes());
        body.extend(IFA_ADDRESS.to_ne_bytes());
        body.extend(address.parse::<Ipv6Addr>().unwrap().octets());
        message(RTM_NEWADDR, &body)
    }

    #[test]
    fn only_routable_addresses_past_duplicate_detection_count() {
        let mut seen = Seen::default();
        seen.read(&newaddr(2, "fe80::1", SCOPE_LINK, 0), 2);
        seen.read(&newaddr(2, "fec0::1", 200, IFA_F_TENTATIVE as u8), 2);
        seen.read(&newaddr(3, "2001:db8::7", 0, 0), 2);
        assert_eq!(
            seen,
            Seen::default(),
            "link-local, tentative, another interface"
        );
        // Two messages in one datagram: both are read; the first address stays.
        let mut two = newaddr(2, "fec0::1", 200, 0);
        two.extend(newaddr(2, "2001:db8::7", 0, 0));
        seen.read(&two, 2);
        assert_eq!(seen.address, Some(("fec0::1".parse().unwrap(), 64)));
    }

    fn route(index: u32, dst_len: u8, kind: u8) -> Vec<u8> {
        let mut body = vec![AF_INET6, dst_len, 0, 0, 254, 9, 0, kind, 0, 0, 0, 0];
        body.extend(8u16.to_ne_bytes());
        body.extend(RTA_OIF.to_ne_bytes());
        body.extend(index.to_ne_bytes());
        message(RTM_NEWROUTE, &body)
    }

    #[test]
    fn only_a_default_route_out_of_the_interface_counts() {
        let mut seen = Seen::default();
        seen.read(&route(3, 0, RTN_UNICAST), 2);
        seen.read(&route(2, 64, RTN_UNICAST), 2);
        seen.read(&route(2, 0, 7), 2); // unreachable
        assert!(
            !seen.router,
            "another interface, a prefix route, not unicast"
        );
        let m = route(2, 0, RTN_UNICAST);
        for cut in 0..m.len() - 4 {
            seen.read(&m[..cut], 2);
        }
        assert!(!seen.router, "truncated");
        seen.read(&m, 2);
        assert!(seen.router);
        seen.address = Some(("fec0::1".parse().unwrap(), 64));
        assert!(seen.usable(false));
        assert!(!seen.usable(true), "no DNS server advertised");
    }

    #[test]
    fn truncated_messages_are_skipped() {
        let m = newaddr(2, "fec0::1", 200, 0);
        for cut in 0..m.len() - 4 {
            let mut seen = Seen::default();
            seen.read(&m[..cut], 2);
            assert_eq!(seen, Seen::default(), "cut at {cut}");
        }
    }

    #[test]
    fn addresses_print_in_the_short_form() {
        for text in [
            "fec0::3",
            "::",
            "::1",
            "fe80::5054:ff:fe12:3456",
            "2001:db8:0:1:1:1:1:1",
            "2001:db8::1:0:0:1",
            "1::",
        ] {
            let a: Ipv6Addr = text.parse().unwrap();
            assert_eq!(Hex6(a).to_string(), text);
            assert_eq!(Hex6(a).to_string(), a.to_string(), "as std prints it");
        }
    }
}
