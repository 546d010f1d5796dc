//! DHCPv4 and IPv6 SLAAC at the same time on the chosen interface, in one loop over one wait
//! (the DHCP socket and the IPv6 events, [`crate::sys::DhcpSocket::recv_or_ipv6`]): the network
//! is up as soon as it has what the boot needs.
//!
//! The policy, and why:
//! - **A DHCPv4 lease ends the wait at once.** `ip=dhcp` is IPv4 in Alpine (udhcpc), so an
//!   IPv4 network must not get slower: IPv6 that already arrived is taken along, nothing more
//!   is awaited.
//! - **SLAAC counts once it is usable**: a routable address past duplicate detection and the
//!   default route of the advertising router, plus an advertised DNS server when a boot URL
//!   names its host (an IPv4 address in a URL: SLAAC never counts, only DHCPv4 reaches it).
//! - **Then DHCPv4 gets a grace of [`GRACE`] (1 s)** to bring the lease that a dual-stack user
//!   expects: the first attempt's whole wait, in which a server that answers at all answers
//!   (SLAAC itself takes about 2 s of duplicate detection, so DHCPv4 has had at least 3 s by
//!   then). A REQUEST already out at the end of the grace gets its answer's full wait: that
//!   server is there. On an IPv6-only network the boot so pays SLAAC's time plus 1 s, not
//!   DHCPv4's 15 s of retries.
//! - **Nothing continues in the background.** When the stage ends, the DHCP socket is closed
//!   and no exchange is left half done: PID 1 never applies a late lease in the middle of
//!   another stage, and the new system's own networking starts from a known state (the
//!   addresses set here, as it would after udhcpc).
//! - When DHCPv4 gave up and SLAAC is not usable, the wait goes on until [`slaac::WAIT`] after
//!   the link came up; an address without a route or DNS server is still taken then (an
//!   on-link repository may be reachable).

use super::dhcp::{self, Exchange, Step};
use super::iface::Interface;
use super::slaac::{self, Seen};
use super::{Needs, NetError};
use crate::sys::{Heard, Ipv6Events, Sys};
use std::time::Duration;

/// How long DHCPv4 may still bring a lease once SLAAC is usable: the first attempt's wait
/// ([`STOPPED`] says it; a unit test keeps the two equal).
pub const GRACE: Duration = dhcp::ATTEMPTS[0];

/// What the two families gave, and when each got there (timeline marks on the boot clock).
pub struct Outcome {
    pub lease: Option<dhcp::Lease>,
    pub ipv6: Option<slaac::Slaac>,
    pub marks: Marks,
}

/// Timeline marks: what happened, when (boot clock).
pub type Marks = Vec<(&'static str, Duration)>;

/// The marks' words (tests and the QEMU scenarios look for them).
pub const LEASE: &str = "DHCPv4 lease";
pub const NO_ANSWER: &str = "DHCPv4: no answer (4 tries)";
pub const STOPPED: &str = "DHCPv4 stopped: no lease 1s after SLAAC";
pub const ADDRESS: &str = "SLAAC address";

/// The IPv6 side: the events, what they said, and the marks for the timeline.
struct Six<'a> {
    events: Option<&'a mut dyn Ipv6Events>,
    seen: Seen,
    index: u32,
}

impl Six<'_> {
    /// Takes in one datagram (`None`: what is queued); marks the moment an address is first
    /// usable.
    fn read(&mut self, datagram: Option<&[u8]>, now: Duration, marks: &mut Marks) {
        let before = self.seen.address.is_some();
        match (datagram, self.events.as_deref_mut()) {
            (Some(d), _) => self.seen.read(d, self.index),
            (None, Some(e)) => self.seen.drain(e, self.index),
            (None, None) => {}
        }
        if !before && self.seen.address.is_some() {
            marks.push((ADDRESS, now));
        }
    }

    /// What is already queued, then the result.
    fn finish(&mut self, now: Duration, marks: &mut Marks) -> Option<slaac::Slaac> {
        self.read(None, now, marks);
        self.seen.slaac()
    }
}

/// Runs DHCPv4 and listens to SLAAC on `interface` (brought up at `up_at`) until the network
/// has what `needs` asks for, as the module doc says.
pub fn run(
    sys: &dyn Sys,
    interface: &Interface,
    up_at: Duration,
    events: Option<&mut dyn Ipv6Events>,
    needs: Needs,
) -> Result<Outcome, NetError> {
    let mut socket = sys.dhcp_socket(&interface.name).map_err(NetError::Dhcp)?;
    let socket = &mut *socket;
    let mac = interface.mac_bytes();
    let xid = super::transaction_id(sys, mac);
    let mut dhcp = Some(Exchange::start(sys, socket, mac, xid)?);
    let mut six = Six {
        events,
        seen: Seen::default(),
        index: interface.index,
    };
    let mut marks = Vec::new();
    // When SLAAC became usable.
    let mut usable_at: Option<Duration> = None;
    loop {
        let now = sys.now();
        if let Some(ex) = dhcp.as_mut().filter(|ex| now >= ex.deadline()) {
            if ex.next_attempt(sys, socket)? == Step::Spent {
                dhcp = None;
                marks.push((NO_ANSWER, now));
            }
        }
        if usable_at.is_none() && !needs.ipv4 && six.seen.usable(needs.dns) {
            usable_at = Some(now);
        }
        let grace_end = usable_at.map(|at| at + GRACE);
        let wake = match (&dhcp, grace_end) {
            // SLAAC is usable and DHCPv4 gave up, or had its grace.
            (None, Some(_)) => None,
            (Some(ex), Some(end)) if now >= end && !ex.requesting() => {
                marks.push((STOPPED, now));
                None
            }
            (Some(ex), Some(end)) if !ex.requesting() => Some(ex.deadline().min(end)),
            (Some(ex), _) => Some(ex.deadline()),
            (None, None) => {
                let deadline = up_at + slaac::WAIT;
                if six.events.is_none() || now >= deadline {
                    return last_chance(&mut six, now, interface, marks);
                }
                Some(deadline)
            }
        };
        let Some(wake) = wake else {
            let ipv6 = six.finish(now, &mut marks);
            return Ok(Outcome {
                lease: None,
                ipv6,
                marks,
            });
        };
        let left = wake.saturating_sub(now);
        let heard = match six.events.as_deref_mut() {
            Some(e) => socket.recv_or_ipv6(e, left),
            None => socket
                .recv(left)
                .map(|p| p.map_or(Heard::Nothing, Heard::Dhcp)),
        }
        .map_err(NetError::Dhcp)?;
        let now = sys.now();
        match heard {
            Heard::Ipv6(d) => six.read(Some(&d), now, &mut marks),
            Heard::Dhcp(p) => {
                let Some(ex) = dhcp.as_mut() else { continue };
                match ex.take(sys, socket, &p)? {
                    Step::Waiting => {}
                    Step::Lease(lease) => {
                        marks.push((LEASE, now));
                        let ipv6 = six.finish(now, &mut marks);
                        return Ok(Outcome {
                            lease: Some(lease),
                            ipv6,
                            marks,
                        });
                    }
                    Step::Spent => {
                        dhcp = None;
                        marks.push((NO_ANSWER, now));
                    }
                }
            }
            Heard::Nothing => {}
        }
    }
}

/// DHCPv4 gave up and SLAAC's wait is over (or there is no IPv6): whatever address came, or
/// the error naming both families.
fn last_chance(
    six: &mut Six<'_>,
    now: Duration,
    interface: &Interface,
    mut marks: Marks,
) -> Result<Outcome, NetError> {
    let (interface, tries) = (interface.name.clone(), dhcp::ATTEMPTS.len());
    if six.events.is_none() {
        return Err(NetError::NoLease { interface, tries });
    }
    match six.finish(now, &mut marks) {
        Some(v6) => Ok(Outcome {
            lease: None,
            ipv6: Some(v6),
            marks,
        }),
        None => Err(NetError::NoAddress { interface, tries }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_marks_say_the_grace_and_the_tries() {
        assert!(STOPPED.contains(&format!(" {}s ", GRACE.as_secs())));
        assert!(NO_ANSWER.contains(&format!("({} tries)", dhcp::ATTEMPTS.len())));
    }
}
