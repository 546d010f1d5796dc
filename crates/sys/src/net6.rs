//! IPv6 autoconfiguration as the kernel reports it: address changes (the rtnetlink IPv6
//! address group), route changes (the default route a router advertisement installs) and the
//! advertisement options the kernel leaves to user space (the ND user-option group, where
//! RFC 8106's RDNSS arrives). The kernel does SLAAC itself; the boot only listens.
//!
//! The datagrams are handed over whole and parsed by the boot (`ramboot::net::slaac`), so its
//! tests feed it netlink messages built in-process.

use crate::net::{readable, rtnetlink};
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use std::io;
use std::time::Duration;

/// rtnetlink datagrams of the IPv6 address and ND user-option groups.
pub trait Ipv6Events: Send {
    /// The next datagram; `None` when `timeout` passed first, and possibly earlier (an
    /// interrupted wait, lost messages): callers keep their own deadline.
    fn recv(&mut self, timeout: Duration) -> io::Result<Option<Vec<u8>>>;
    /// The socket, for a wait on it and another (see [`crate::DhcpSocket::recv_or_ipv6`]).
    fn fd(&self) -> Option<BorrowedFd<'_>> {
        None
    }
}

const RTMGRP_IPV6_IFADDR: u32 = 0x100;
/// The IPv6 routes: the default route a router advertisement installs.
const RTMGRP_IPV6_ROUTE: u32 = 0x400;
/// `RTNLGRP_ND_USEROPT` (20), as a bind mask.
const RTMGRP_ND_USEROPT: u32 = 1 << (20 - 1);

pub(crate) struct RtnlIpv6(OwnedFd);

impl RtnlIpv6 {
    pub(crate) fn open() -> io::Result<Self> {
        rtnetlink(
            RTMGRP_IPV6_IFADDR | RTMGRP_IPV6_ROUTE | RTMGRP_ND_USEROPT,
            true,
        )
        .map(Self)
    }
}

impl Ipv6Events for RtnlIpv6 {
    fn fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.0.as_fd())
    }

    fn recv(&mut self, timeout: Duration) -> io::Result<Option<Vec<u8>>> {
        if !readable(&self.0, timeout)? {
            return Ok(None);
        }
        let mut buf = vec![0u8; 8192];
        match rustix::net::recv(&self.0, &mut buf[..], rustix::net::RecvFlags::empty()) {
            Ok((n, _)) => {
                buf.truncate(n);
                Ok(Some(buf))
            }
            // NOBUFS: messages were lost; the caller's deadline still holds.
            Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR | rustix::io::Errno::NOBUFS) => {
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }
}
