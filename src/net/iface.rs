//! Which interface the boot configures: the one `ip=` names, else the one whose MAC `BOOTIF=`
//! gives, else the first (by ifindex) with a carrier once all are up. Interfaces are read from
//! sysfs; waits end on rtnetlink link events or a deadline, never on a fixed poll. While it
//! waits, `/etc/mactab` renames the interfaces it names ([`super::mactab`]), before any is up.

use super::mactab::Renamer;
use super::NetError;
use crate::sys::{LinkWatch, Sys};
use std::fs;
use std::path::Path;
use std::time::Duration;

/// How long an interface may take to appear, and then to get a carrier once it is up (Alpine
/// polls for 4 s in 0.1 s steps; the events make the wait end as soon as the link is there).
pub const LINK_WAIT: Duration = Duration::from_secs(4);

/// One network interface as sysfs shows it.
#[derive(Debug, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub index: u32,
    /// `aa:bb:cc:dd:ee:ff`, lower case.
    pub mac: String,
    /// It has a `device` link: hardware, not a veth, bridge or the loopback.
    pub physical: bool,
    pub carrier: bool,
}

impl Interface {
    /// The MAC as bytes (zeros when sysfs gave something else).
    pub fn mac_bytes(&self) -> [u8; 6] {
        let mut out = [0u8; 6];
        let hex = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
        for (o, part) in out.iter_mut().zip(self.mac.split(':')) {
            *o = part.bytes().fold(0u8, |v, c| v.wrapping_mul(16) | hex(c));
        }
        out
    }
}

fn read(dir: &Path, name: &str) -> String {
    fs::read_to_string(dir.join(name))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Every interface under `/sys/class/net`, by ifindex.
pub fn scan(sys: &dyn Sys) -> Vec<Interface> {
    let base = sys.path(Path::new("/sys/class/net"));
    let mut found: Vec<Interface> = Vec::new();
    let Ok(entries) = fs::read_dir(&base) else {
        return found;
    };
    for e in entries.flatten() {
        let dir = e.path();
        let operstate = read(&dir, "operstate");
        let i = Interface {
            name: e.file_name().to_string_lossy().into_owned(),
            index: read(&dir, "ifindex").parse().unwrap_or(u32::MAX),
            // The kernel writes it in lower case, as BOOTIF is normalised.
            mac: read(&dir, "address"),
            physical: dir.join("device").exists(),
            // `carrier` is the driver's own word, readable once the interface is up;
            // operstate follows it through the kernel's link watch, which may hold the
            // change back for up to a second.
            carrier: read(&dir, "carrier") == "1" || operstate == "up",
        };
        // Kept in ifindex order by insertion: a sort would cost the init build ~3 KB.
        let at = found.partition_point(|f| f.index < i.index);
        found.insert(at, i);
    }
    found
}

/// What the boot asked for.
#[derive(Clone, Copy, Debug)]
pub struct Wanted<'a> {
    /// `ip=`'s device field.
    pub device: Option<&'a str>,
    /// `BOOTIF=`, as `aa:bb:cc:dd:ee:ff`.
    pub bootif: Option<&'a str>,
}

/// The chosen interface and how it was chosen (for the log and `ramboot plan`).
#[derive(Debug, PartialEq, Eq)]
pub struct Choice {
    pub interface: Interface,
    pub why: &'static str,
    /// The kernel does IPv6 SLAAC on it (see [`super::slaac::enable`]).
    pub slaac: bool,
    /// When it was brought up (boot clock): SLAAC's deadline counts from there.
    pub up_at: Duration,
}

/// Waits on `watch` until an interface is `wanted` (the first by ifindex is returned) or
/// [`LINK_WAIT`] passes; `names` renames each interface as it appears. Not generic: one copy
/// in the init build.
fn wait_for(
    sys: &dyn Sys,
    watch: &mut dyn LinkWatch,
    names: &mut Renamer,
    wanted: &dyn Fn(&Interface) -> bool,
) -> Result<Option<Interface>, NetError> {
    let deadline = sys.now() + LINK_WAIT;
    loop {
        let mut found = scan(sys);
        names.apply(sys, &mut found);
        if let Some(i) = found.into_iter().find(|i| wanted(i)) {
            return Ok(Some(i));
        }
        let left = deadline.saturating_sub(sys.now());
        if left.is_zero() {
            return Ok(None);
        }
        watch.wait(left).map_err(NetError::LinkWatch)?;
    }
}

/// Picks the interface (Alpine's `ip_choose_if` with its link wait) and leaves it up; `names`
/// renames interfaces first (Alpine's `nameif` before the choice).
pub fn choose(
    sys: &dyn Sys,
    watch: &mut dyn LinkWatch,
    names: &mut Renamer,
    wanted: Wanted<'_>,
) -> Result<Choice, NetError> {
    if let Some(name) = wanted.device {
        let iface = wait_for(sys, watch, names, &|i| i.name == name)?.ok_or_else(|| {
            NetError::NamedInterfaceMissing {
                name: name.to_string(),
            }
        })?;
        return up_and_wait(sys, watch, names, vec![iface], "named by ip=");
    }
    if let Some(mac) = wanted.bootif {
        match wait_for(sys, watch, names, &|i| i.physical && i.mac == mac)? {
            Some(i) => return up_and_wait(sys, watch, names, vec![i], "its address is BOOTIF="),
            None => log::warn!("BOOTIF={mac} matches no interface"),
        }
    }
    wait_for(sys, watch, names, &|i| i.physical)?.ok_or(NetError::NoInterface)?;
    let all = scan(sys).into_iter().filter(|i| i.physical).collect();
    up_and_wait(sys, watch, names, all, "")
}

/// Brings `candidates` up, waits for a carrier on one, keeps the first with a carrier (or the
/// first of all when none got one) and takes the others down again.
fn up_and_wait(
    sys: &dyn Sys,
    watch: &mut dyn LinkWatch,
    names: &mut Renamer,
    mut candidates: Vec<Interface>,
    why: &'static str,
) -> Result<Choice, NetError> {
    // Links about to be up are renamed no more.
    names.stop();
    let mut slaac = Vec::with_capacity(candidates.len());
    for c in &candidates {
        slaac.push(super::slaac::enable(sys, &c.name));
        if let Err(e) = sys.link_up(&c.name) {
            log::warn!("cannot bring {} up: {e}", c.name);
        }
    }
    let up_at = sys.now();
    let with_carrier = |i: &Interface| i.carrier && candidates.iter().any(|c| c.name == i.name);
    let found = wait_for(sys, watch, names, &with_carrier)?;
    let linked = found.is_some();
    let at = found
        .as_ref()
        .and_then(|f| candidates.iter().position(|c| c.name == f.name))
        .unwrap_or(0);
    let interface = match found {
        Some(i) => i,
        None => candidates.remove(0),
    };
    if !linked {
        log::warn!(
            "no link on {} after {}s (cable unplugged?)",
            interface.name,
            LINK_WAIT.as_secs()
        );
    }
    let why = match (why.is_empty(), linked) {
        (false, _) => why,
        (true, true) => "the first with a link, by ifindex",
        (true, false) => "none has a link: the first, by ifindex",
    };
    for c in candidates.iter().filter(|c| c.name != interface.name) {
        let _ = sys.link_down(&c.name);
    }
    Ok(Choice {
        interface,
        why,
        slaac: slaac[at],
        up_at,
    })
}
