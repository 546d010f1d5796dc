//! `/etc/mactab` in the initramfs: interfaces renamed by their address before one is chosen,
//! as Alpine's `configure_ip` runs busybox `nameif -s` when the file is there. A machine then
//! boots on `lan0` whatever order its NICs appeared in, and `ip=:::::lan0:dhcp` can name it.
//!
//! The file is busybox's: one `NAME SELECTOR...` a line, fields split by spaces or tabs, `#`
//! starts a comment anywhere on a line. Selectors (all given must match):
//! * `XX:XX:XX:XX:XX:XX` or `mac=XX:...`: the address (1 or 2 hex digits a byte, any case);
//! * `driver=NAME`: the driver bound to the interface's device (sysfs `device/driver`, the name
//!   busybox gets from ethtool for the drivers that matter here).
//!
//! busybox's other selectors, `bus=` (ethtool's bus info) and `phyaddr=`, are not read: a line
//! that uses them is skipped with a warning rather than matched on its other selectors. As in
//! nameif, a line with a name alone is skipped, and an address that does not parse or a name
//! the kernel would refuse (16 bytes or more, `/`, `:`, `.`, `..`) refuses the whole file: no
//! interface is renamed. Interfaces are taken in ifindex order (nameif: `/proc/net/dev`); each
//! gets the first match among the lines read from the bottom up (nameif prepends each line to
//! its list), and a line renames one interface at most. Links are renamed while still down. A
//! rename the kernel refuses (the name is taken: EEXIST) stops the renaming there, as nameif
//! exits on it; the boot goes on with the names as they are.
//!
//! Unlike nameif's single pass, the renames are applied again while the boot waits for
//! interfaces, so a NIC that appears late (USB on the Raspberry Pi) is renamed too.

use super::iface::Interface;
use crate::sys::Sys;
use std::path::Path;

/// Where the file is, in the initramfs (`ramboot mkinitfs --mactab` puts it there).
pub const PATH: &str = "/etc/mactab";

/// The kernel's IFNAMSIZ, with its NUL.
const IFNAMSIZ: usize = 16;

/// One line that can rename an interface.
#[derive(Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub mac: Option<[u8; 6]>,
    pub driver: Option<String>,
    /// 1-based, for the log.
    pub line: usize,
}

/// Why the file renames nothing.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}: {reason}", PATH)]
pub struct MactabError {
    pub line: usize,
    pub reason: String,
}

/// The file read: the lines that rename, and one warning per line skipped.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Mactab {
    pub entries: Vec<Entry>,
    pub skipped: Vec<String>,
}

/// Reads `text` as nameif does (see the module docs).
pub fn parse(text: &str) -> Result<Mactab, MactabError> {
    let mut out = Mactab::default();
    for (at, raw) in text.lines().enumerate() {
        let line = at + 1;
        let content = raw.split('#').next().unwrap_or("");
        let mut fields = content.split([' ', '\t', '\r']).filter(|f| !f.is_empty());
        let Some(name) = fields.next() else { continue };
        let bad = |reason: String| MactabError { line, reason };
        if let Some(why) = bad_name(name) {
            return Err(bad(format!("interface name `{name}` {why}")));
        }
        let mut entry = Entry {
            name: name.to_string(),
            mac: None,
            driver: None,
            line,
        };
        let mut unsupported = None;
        let mut any = false;
        for f in fields {
            any = true;
            if let Some(d) = f.strip_prefix("driver=") {
                entry.driver = Some(d.to_string());
            } else if ["bus=", "phyaddr=", "phy_address="]
                .iter()
                .any(|p| f.starts_with(p))
            {
                unsupported = Some(f);
            } else {
                let text = f.strip_prefix("mac=").unwrap_or(f);
                entry.mac = Some(parse_mac(text).ok_or_else(|| {
                    bad(format!("`{f}` is not a MAC address (XX:XX:XX:XX:XX:XX)"))
                })?);
            }
        }
        match (any, unsupported) {
            (false, _) => out
                .skipped
                .push(format!("{PATH}:{line}: `{name}` has no selector; skipped")),
            (true, Some(sel)) => out.skipped.push(format!(
                "{PATH}:{line}: selector `{sel}` is not supported (only MAC addresses and \
                 driver=); skipped"
            )),
            (true, None) => out.entries.push(entry),
        }
    }
    Ok(out)
}

/// Why the kernel would refuse `name` as an interface name (its `dev_valid_name`).
fn bad_name(name: &str) -> Option<&'static str> {
    if name.len() >= IFNAMSIZ {
        Some("is too long (at most 15 bytes)")
    } else if name == "." || name == ".." || name.contains(['/', ':']) {
        Some("is not valid (no `/` or `:`, not `.` or `..`)")
    } else {
        None
    }
}

/// `aa:bb:cc:dd:ee:ff`, 1 or 2 hex digits a byte.
fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = text.split(':');
    for o in out.iter_mut() {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 2 {
            return None;
        }
        *o = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// The renames still to make while the boot waits for interfaces.
#[derive(Debug, Default)]
pub struct Renamer {
    entries: Vec<Entry>,
    /// Interfaces (ifindex) already looked at: each once, as nameif does.
    seen: Vec<u32>,
    /// A rename failed: nameif stops there.
    stopped: bool,
    /// `(old, new)` of every rename made.
    pub renamed: Vec<(String, String)>,
}

impl Renamer {
    /// The initramfs `/etc/mactab`; nothing to do when it is absent or refused (logged).
    pub fn load(sys: &dyn Sys) -> Renamer {
        let text = match std::fs::read_to_string(sys.path(Path::new(PATH))) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Renamer::default(),
            Err(e) => {
                log::warn!("cannot read {PATH}: {e}; no interface is renamed");
                return Renamer::default();
            }
        };
        match parse(&text) {
            Ok(m) => {
                for s in &m.skipped {
                    log::warn!("{s}");
                }
                Renamer {
                    entries: m.entries,
                    ..Renamer::default()
                }
            }
            Err(e) => {
                log::warn!("{e}; no interface is renamed");
                Renamer::default()
            }
        }
    }

    /// Renames the `interfaces` (by ifindex) not looked at before that a line matches; true
    /// when one was renamed (the caller reads sysfs again).
    pub fn apply(&mut self, sys: &dyn Sys, interfaces: &[Interface]) -> bool {
        let mut changed = false;
        for i in interfaces {
            if self.stopped || self.entries.is_empty() {
                break;
            }
            if self.seen.contains(&i.index) {
                continue;
            }
            self.seen.push(i.index);
            let mac = i.mac_bytes();
            let driver = self
                .entries
                .iter()
                .any(|e| e.driver.is_some())
                .then(|| driver_of(sys, &i.name));
            let Some(at) = self.entries.iter().rposition(|e| {
                e.mac.map_or(true, |m| m == mac)
                    && e.driver
                        .as_ref()
                        .map_or(true, |d| driver.as_ref() == Some(d))
            }) else {
                continue;
            };
            let e = self.entries.remove(at);
            if e.name == i.name {
                continue;
            }
            match sys.rename_link(&i.name, i.index, &e.name) {
                Ok(()) => {
                    log::info!("{} renamed {} ({PATH}:{})", i.name, e.name, e.line);
                    self.renamed.push((i.name.clone(), e.name));
                    changed = true;
                }
                Err(err) => {
                    log::warn!(
                        "{PATH}:{}: cannot rename {} to {}: {err}; the other renames are not \
                         made (as nameif stops)",
                        e.line,
                        i.name,
                        e.name
                    );
                    self.stopped = true;
                }
            }
        }
        changed
    }

    /// The name `name` had before a rename here, if it was renamed.
    pub fn old_name(&self, name: &str) -> Option<&str> {
        self.renamed
            .iter()
            .find(|(_, new)| new == name)
            .map(|(old, _)| old.as_str())
    }
}

/// The driver bound to the interface's device, as sysfs names it.
fn driver_of(sys: &dyn Sys, name: &str) -> String {
    let link = sys.path(
        Path::new("/sys/class/net")
            .join(name)
            .join("device/driver")
            .as_path(),
    );
    std::fs::read_link(link)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::console;
    use crate::sys::RecordingSys;
    use std::fs;

    fn nic(root: &Path, name: &str, index: u32, mac: &str, driver: Option<&str>) {
        let d = root.join("sys/class/net").join(name);
        fs::create_dir_all(d.join("device")).unwrap();
        fs::write(d.join("ifindex"), format!("{index}\n")).unwrap();
        fs::write(d.join("address"), format!("{mac}\n")).unwrap();
        if let Some(drv) = driver {
            let target = root.join("sys/bus/drivers").join(drv);
            fs::create_dir_all(&target).unwrap();
            std::os::unix::fs::symlink(target, d.join("device/driver")).unwrap();
        }
    }

    fn renamer(sys: &RecordingSys, text: &str) -> Renamer {
        fs::create_dir_all(sys.root().join("etc")).unwrap();
        fs::write(sys.root().join("etc/mactab"), text).unwrap();
        Renamer::load(sys)
    }

    fn renames(sys: &RecordingSys) -> Vec<String> {
        sys.trace()
            .into_iter()
            .filter(|l| l.contains(" name "))
            .collect()
    }

    /// Bottom-up lines, interfaces by ifindex, each once; the driver from sysfs; a name already
    /// right is left alone.
    #[test]
    fn renames_as_nameif_matches() {
        let dir = tempfile::tempdir().unwrap();
        let sys = RecordingSys::new(dir.path());
        nic(
            dir.path(),
            "eth0",
            2,
            "02:00:00:00:00:01",
            Some("virtio_net"),
        );
        nic(dir.path(), "eth1", 3, "02:00:00:00:00:02", Some("smsc95xx"));
        nic(dir.path(), "keep0", 4, "02:00:00:00:00:03", None);
        let mut r = renamer(
            &sys,
            "first 02:00:00:00:00:01\nlast 02:00:00:00:00:01\nusb0 driver=smsc95xx\n\
             keep0 02:00:00:00:00:03\nnever driver=smsc95xx 02:00:00:00:00:09\n",
        );
        assert!(r.apply(&sys, &super::super::iface::scan(&sys)));
        assert_eq!(
            renames(&sys),
            ["ip link set eth0 name last", "ip link set eth1 name usb0"]
        );
        assert_eq!(r.old_name("usb0"), Some("eth1"));
        assert_eq!(r.old_name("keep0"), None);
        // Seen once: a second pass renames nothing, though `first` matches `last` now.
        assert!(!r.apply(&sys, &super::super::iface::scan(&sys)));
        assert_eq!(renames(&sys).len(), 2);
    }

    /// A refused rename is said once, with the line, and ends the renaming.
    #[test]
    fn a_refused_rename_stops_the_renaming() {
        let dir = tempfile::tempdir().unwrap();
        let sys = RecordingSys::new(dir.path());
        let out = console::tests::Captured::default();
        console::init(Box::new(out.clone()), false, false);
        nic(dir.path(), "eth0", 2, "02:00:00:00:00:01", None);
        nic(dir.path(), "eth1", 3, "02:00:00:00:00:02", None);
        let mut r = renamer(&sys, "eth1 02:00:00:00:00:01\nlan1 02:00:00:00:00:02\n");
        assert!(!r.apply(&sys, &super::super::iface::scan(&sys)));
        assert_eq!(renames(&sys), ["ip link set eth0 name eth1"]);
        let text = out.text();
        assert!(
            text.contains(
                "/etc/mactab:1: cannot rename eth0 to eth1: File exists (os error 17); the \
                 other renames are not made (as nameif stops)"
            ),
            "{text}"
        );
        assert!(dir.path().join("sys/class/net/eth1").is_dir());

        // A file that does not parse renames nothing, and says why.
        let mut r = renamer(&sys, "lan0 02:00:00:00:00:zz\n");
        assert!(!r.apply(&sys, &super::super::iface::scan(&sys)));
        assert!(
            out.text().contains(
                "/etc/mactab:1: `02:00:00:00:00:zz` is not a MAC address (XX:XX:XX:XX:XX:XX); \
                 no interface is renamed"
            ),
            "{}",
            out.text()
        );
    }

    fn entry(name: &str, mac: Option<[u8; 6]>, driver: Option<&str>, line: usize) -> Entry {
        Entry {
            name: name.into(),
            mac,
            driver: driver.map(str::to_string),
            line,
        }
    }

    #[test]
    fn names_addresses_drivers_and_comments() {
        let m = parse(
            "# the machine's NICs\n\
             lan0  B8:27:EB:0:0:1   # onboard\n\
             \n\
             \twan0\tmac=02:00:00:00:00:03\n\
             usb0 driver=smsc95xx\n\
             both driver=virtio_net 52:54:00:12:34:56\n\
             eth#0 02:00:00:00:00:09\n",
        )
        .unwrap();
        assert_eq!(
            m.entries,
            [
                entry("lan0", Some([0xb8, 0x27, 0xeb, 0, 0, 1]), None, 2),
                entry("wan0", Some([2, 0, 0, 0, 0, 3]), None, 4),
                entry("usb0", None, Some("smsc95xx"), 5),
                entry(
                    "both",
                    Some([0x52, 0x54, 0, 0x12, 0x34, 0x56]),
                    Some("virtio_net"),
                    6
                ),
            ]
        );
        // `#` inside a word starts the comment: `eth` alone, skipped as nameif's "bad line".
        assert_eq!(m.skipped, ["/etc/mactab:7: `eth` has no selector; skipped"]);
    }

    #[test]
    fn unsupported_selectors_skip_their_line() {
        let m = parse("a bus=usb-0000:00:08.2-3\nb phyaddr=2 02:00:00:00:00:01\nc 1:2:3:4:5:6\n")
            .unwrap();
        assert_eq!(m.entries, [entry("c", Some([1, 2, 3, 4, 5, 6]), None, 3)]);
        assert_eq!(
            m.skipped,
            [
                "/etc/mactab:1: selector `bus=usb-0000:00:08.2-3` is not supported (only MAC \
                 addresses and driver=); skipped",
                "/etc/mactab:2: selector `phyaddr=2` is not supported (only MAC addresses and \
                 driver=); skipped",
            ]
        );
    }

    #[test]
    fn a_bad_address_or_name_refuses_the_file() {
        for (text, line, reason) in [
            (
                "ok 02:00:00:00:00:01\nlan0 02:00:00:00:00\n",
                2,
                "`02:00:00:00:00` is not a MAC address (XX:XX:XX:XX:XX:XX)",
            ),
            (
                "lan0 mac=02:00:00:00:00:001\n",
                1,
                "`mac=02:00:00:00:00:001` is not a MAC address (XX:XX:XX:XX:XX:XX)",
            ),
            (
                "lan0 02:00:00:00:00:0g\n",
                1,
                "`02:00:00:00:00:0g` is not a MAC address (XX:XX:XX:XX:XX:XX)",
            ),
            (
                "averyveryverylong 02:00:00:00:00:01\n",
                1,
                "interface name `averyveryverylong` is too long (at most 15 bytes)",
            ),
            (
                "a/b 02:00:00:00:00:01\n",
                1,
                "interface name `a/b` is not valid (no `/` or `:`, not `.` or `..`)",
            ),
        ] {
            let e = parse(text).unwrap_err();
            assert_eq!((e.line, e.reason.as_str()), (line, reason), "{text:?}");
        }
        assert_eq!(
            parse("x 1:2\n").unwrap_err().to_string(),
            "/etc/mactab:1: `1:2` is not a MAC address (XX:XX:XX:XX:XX:XX)"
        );
        // 15 bytes is the longest name.
        assert!(parse("fifteen-bytes-x 1:2:3:4:5:6\n").is_ok());
    }
}
