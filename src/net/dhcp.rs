//! A DHCPv4 client (RFC 2131): DISCOVER, OFFER, REQUEST, ACK, with exponential backoff.
//!
//! The wire format is written here, not taken from a crate: a client needs one request shape
//! and seven options of the answer, a few hundred bytes of code in an init with a size budget.
//! The socket comes through the `Sys` boundary, so the exchange runs against an in-process
//! server in tests.

use super::NetError;
use crate::sys::{DhcpSocket, Sys};
use std::net::Ipv4Addr;
use std::time::Duration;

/// What the server gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    pub address: Ipv4Addr,
    pub prefix: u8,
    pub router: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub hostname: Option<String>,
    pub domain: Option<String>,
    /// Seconds; `None` when the server did not say (infinite for our purpose).
    pub lease_secs: Option<u32>,
    pub server: Ipv4Addr,
}

/// How long each attempt waits for an answer: doubling from 1 s, 15 s in all.
pub const ATTEMPTS: [Duration; 4] = [
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
    Duration::from_secs(8),
];
/// [`ATTEMPTS`] in all, for messages (a unit test keeps the two equal).
pub const ATTEMPTS_SECS: u64 = 15;

const MAGIC: [u8; 4] = [99, 130, 83, 99];
pub const DISCOVER: u8 = 1;
pub const OFFER: u8 = 2;
pub const REQUEST: u8 = 3;
pub const ACK: u8 = 5;
pub const NAK: u8 = 6;

const OPT_MASK: u8 = 1;
const OPT_ROUTER: u8 = 3;
const OPT_DNS: u8 = 6;
const OPT_HOSTNAME: u8 = 12;
const OPT_DOMAIN: u8 = 15;
const OPT_REQUESTED: u8 = 50;
const OPT_LEASE: u8 = 51;
const OPT_TYPE: u8 = 53;
const OPT_SERVER: u8 = 54;
const OPT_PARAMS: u8 = 55;
const OPT_CLIENT_ID: u8 = 61;
const OPT_END: u8 = 255;

/// A client request: BOOTREQUEST over Ethernet, the broadcast flag set (the client has no
/// address to receive unicast on), padded to the 300 bytes BOOTP servers expect.
pub fn request(kind: u8, xid: u32, mac: [u8; 6], extra: &[(u8, &[u8])]) -> Vec<u8> {
    let mut p = vec![0u8; 236];
    p[..3].copy_from_slice(&[1, 1, 6]);
    p[4..8].copy_from_slice(&xid.to_be_bytes());
    p[10] = 0x80;
    p[28..34].copy_from_slice(&mac);
    p.extend(MAGIC);
    p.extend([OPT_TYPE, 1, kind, OPT_CLIENT_ID, 7, 1]);
    p.extend(mac);
    p.extend([OPT_PARAMS, 6, OPT_MASK, OPT_ROUTER, OPT_DNS, OPT_HOSTNAME]);
    p.extend([OPT_DOMAIN, OPT_LEASE]);
    for (code, data) in extra {
        p.extend([*code, data.len() as u8]);
        p.extend(*data);
    }
    p.push(OPT_END);
    p.resize(p.len().max(300), 0);
    p
}

/// A server's answer to us: its message type and the lease it offers or acknowledges.
#[derive(Debug, PartialEq, Eq)]
pub struct Reply {
    pub kind: u8,
    pub lease: Lease,
}

fn ipv4(d: &[u8]) -> Option<Ipv4Addr> {
    let a: [u8; 4] = d.get(..4)?.try_into().ok()?;
    Some(Ipv4Addr::from(a))
}

fn text(d: &[u8]) -> Option<String> {
    let t = String::from_utf8_lossy(d);
    let t = t.trim_end_matches('\0');
    (!t.is_empty()).then(|| t.to_string())
}

impl Reply {
    /// Parses `packet` when it is a BOOTREPLY for transaction `xid` and hardware address `mac`
    /// with a message type; the options are read in one pass (the first of each counts).
    pub fn parse(packet: &[u8], xid: u32, mac: [u8; 6]) -> Option<Reply> {
        let ours = packet.len() >= 240
            && packet[0] == 2
            && packet[4..8] == xid.to_be_bytes()
            && packet[28..34] == mac
            && packet[236..240] == MAGIC;
        if !ours {
            return None;
        }
        let address = ipv4(&packet[16..20])?;
        let mut lease = Lease {
            address,
            prefix: class_prefix(address),
            router: None,
            dns: Vec::new(),
            hostname: None,
            domain: None,
            lease_secs: None,
            server: Ipv4Addr::UNSPECIFIED,
        };
        let (mut kind, mut mask, mut server) = (None, None, None);
        let mut rest = &packet[240..];
        while let [code, tail @ ..] = rest {
            match *code {
                0 => rest = tail,
                OPT_END => break,
                code => {
                    let (&len, tail) = tail.split_first()?;
                    let d = tail.get(..usize::from(len))?;
                    rest = &tail[usize::from(len)..];
                    match code {
                        OPT_TYPE => kind = kind.or(d.first().copied()),
                        OPT_MASK => mask = mask.or(ipv4(d)),
                        OPT_ROUTER => lease.router = lease.router.or(ipv4(d)),
                        OPT_DNS if lease.dns.is_empty() => {
                            lease.dns = d.chunks_exact(4).filter_map(ipv4).collect()
                        }
                        OPT_HOSTNAME => lease.hostname = lease.hostname.take().or_else(|| text(d)),
                        OPT_DOMAIN => lease.domain = lease.domain.take().or_else(|| text(d)),
                        OPT_LEASE => {
                            let secs = d.try_into().ok().map(u32::from_be_bytes);
                            lease.lease_secs = lease.lease_secs.or(secs);
                        }
                        OPT_SERVER => server = server.or(ipv4(d)),
                        _ => {}
                    }
                }
            }
        }
        if let Some(m) = mask {
            lease.prefix = u32::from(m).count_ones() as u8;
        }
        lease.server = server.unwrap_or(Ipv4Addr::UNSPECIFIED);
        Some(Reply { kind: kind?, lease })
    }
}

/// The classful prefix of `a` (the kernel's default when no netmask is given).
pub fn class_prefix(a: Ipv4Addr) -> u8 {
    match a.octets()[0] {
        0..=127 => 8,
        128..=191 => 16,
        _ => 24,
    }
}

/// One DHCPv4 exchange as a state machine, so that its waits can be shared with SLAAC's
/// ([`super::dual`]): each attempt sends a DISCOVER and waits [`ATTEMPTS`]`[i]` for an OFFER,
/// then sends the REQUEST and waits as long again for the ACK; silence or a NAK starts the next
/// attempt.
pub struct Exchange {
    xid: u32,
    mac: [u8; 6],
    /// The attempt under way (an index into [`ATTEMPTS`]).
    attempt: usize,
    /// The REQUEST is out: an ACK or a NAK is awaited (else an OFFER).
    requesting: bool,
    /// When the awaited answer is given up (boot clock).
    deadline: Duration,
}

fn send(socket: &mut dyn DhcpSocket, packet: Vec<u8>) -> Result<(), NetError> {
    socket.send(&packet).map_err(NetError::Dhcp)
}

impl Exchange {
    /// Sends the first DISCOVER.
    pub fn start(
        sys: &dyn Sys,
        socket: &mut dyn DhcpSocket,
        mac: [u8; 6],
        xid: u32,
    ) -> Result<Exchange, NetError> {
        let mut ex = Exchange {
            xid,
            mac,
            attempt: 0,
            requesting: false,
            deadline: Duration::ZERO,
        };
        ex.discover(sys, socket)?;
        Ok(ex)
    }

    fn discover(&mut self, sys: &dyn Sys, socket: &mut dyn DhcpSocket) -> Result<(), NetError> {
        self.requesting = false;
        self.deadline = sys.now() + ATTEMPTS[self.attempt];
        send(socket, request(DISCOVER, self.xid, self.mac, &[]))
    }

    /// When the awaited answer is given up: then [`Exchange::next_attempt`].
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// A server offered an address and the REQUEST for it is out.
    pub fn requesting(&self) -> bool {
        self.requesting
    }

    /// Takes in a datagram from the socket: an OFFER sends the REQUEST, a NAK starts the next
    /// attempt (false: none left), an ACK is the lease; anything else is ignored.
    pub fn take(
        &mut self,
        sys: &dyn Sys,
        socket: &mut dyn DhcpSocket,
        packet: &[u8],
    ) -> Result<Step, NetError> {
        let Some(reply) = Reply::parse(packet, self.xid, self.mac) else {
            return Ok(Step::Waiting);
        };
        match (self.requesting, reply.kind) {
            (false, OFFER) => {
                let asked = reply.lease.address.octets();
                let server = reply.lease.server.octets();
                let extra: [(u8, &[u8]); 2] = [(OPT_REQUESTED, &asked), (OPT_SERVER, &server)];
                send(socket, request(REQUEST, self.xid, self.mac, &extra))?;
                self.requesting = true;
                self.deadline = sys.now() + ATTEMPTS[self.attempt];
                Ok(Step::Waiting)
            }
            (true, ACK) => Ok(Step::Lease(reply.lease)),
            (true, NAK) => self.next_attempt(sys, socket),
            _ => Ok(Step::Waiting),
        }
    }

    /// The deadline passed (or a NAK came): the next attempt's DISCOVER, or `Spent`.
    pub fn next_attempt(
        &mut self,
        sys: &dyn Sys,
        socket: &mut dyn DhcpSocket,
    ) -> Result<Step, NetError> {
        if self.attempt + 1 == ATTEMPTS.len() {
            return Ok(Step::Spent);
        }
        self.attempt += 1;
        self.discover(sys, socket)?;
        Ok(Step::Waiting)
    }
}

/// Where an [`Exchange`] stands after a datagram or a deadline.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    Waiting,
    Lease(Lease),
    /// Every attempt went unanswered.
    Spent,
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];

    #[test]
    fn the_attempts_add_up_to_what_messages_say() {
        let total: Duration = ATTEMPTS.iter().sum();
        assert_eq!(total.as_secs(), ATTEMPTS_SECS);
    }

    #[test]
    fn a_request_is_a_broadcast_bootrequest_with_our_options() {
        let p = request(DISCOVER, 0xdead_beef, MAC, &[]);
        assert_eq!(p.len(), 300);
        assert_eq!(&p[..3], &[1, 1, 6]);
        assert_eq!(&p[4..8], &[0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(p[10], 0x80, "broadcast flag");
        assert_eq!(&p[28..34], &MAC);
        assert_eq!(&p[236..243], &[99, 130, 83, 99, 53, 1, DISCOVER]);
    }

    #[test]
    fn replies_for_others_are_ignored() {
        let mut p = request(DISCOVER, 7, MAC, &[]);
        p[0] = 2;
        assert!(Reply::parse(&p, 7, MAC).is_some());
        assert!(Reply::parse(&p, 8, MAC).is_none(), "another transaction");
        assert!(Reply::parse(&p, 7, [0; 6]).is_none(), "another client");
        assert!(Reply::parse(&p[..239], 7, MAC).is_none(), "truncated");
        let mut bad = p.clone();
        bad[244] = 200; // an option longer than the packet
        assert!(Reply::parse(&bad, 7, MAC).is_none());
    }
}
