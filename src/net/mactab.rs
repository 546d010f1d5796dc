//! `/etc/mactab` in the initramfs: interfaces renamed by their address before one is chosen,
//! as Alpine's `configure_ip` runs busybox `nameif -s` when the file is there. A machine then
//! boots on `lan0` whatever order its NICs appeared in, and `ip=:::::lan0:dhcp` can name it.
//!
//! The file is busybox's: one `NAME MAC` a line (`MAC` is `XX:XX:XX:XX:XX:XX` or
//! `mac=XX:...`, 1 or 2 hex digits a byte, any case), fields split by white space, `#` starts a
//! comment anywhere on a line. busybox's other selectors (`driver=`, `bus=`, `phyaddr=`, read
//! through ethtool) are not: a line that uses one is skipped with a warning rather than matched
//! on its address alone (the init's size budget; the address is what names a NIC on a Pi).
//!
//! As in nameif, a line with a name alone is skipped, and an address that does not parse or a
//! name the kernel would refuse (16 bytes or more, `/`, `:`, `.`, `..`) refuses the whole
//! file: no interface is renamed. Interfaces are taken in ifindex order (nameif:
//! `/proc/net/dev`); each gets the first match among the lines read from the bottom up (nameif
//! prepends each line to its list), and a line renames one interface at most. Links are
//! renamed while still down. A rename the kernel refuses (the name is taken: EEXIST) stops the
//! renaming there, as nameif exits on it; the boot goes on with the names as they are.
//!
//! Unlike nameif's single pass, the renames are applied again while the boot waits for
//! interfaces, so a NIC that appears late (USB on the Raspberry Pi) is renamed too.

use super::iface::Interface;
use crate::sys::Sys;
use std::path::Path;

/// Where the file is, in the initramfs (`ramboot mkinitfs --mactab` puts it there).
pub const PATH: &str = "/etc/mactab";

/// The kernel's IFNAMSIZ, with its NUL: a name has 15 bytes at most.
const IFNAMSIZ: usize = 16;

/// One line that renames an interface.
#[derive(Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub mac: [u8; 6],
    /// 1-based, for the log.
    pub line: usize,
}

/// A line the boot skips, or the one that makes it refuse the file: `/etc/mactab:LINE: `WORD`
/// REASON`.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{PATH}:{line}: `{word}` {reason}")]
pub struct Problem {
    pub line: usize,
    pub word: String,
    pub reason: &'static str,
}

/// The file read: the lines that rename, and the lines skipped.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Mactab {
    pub entries: Vec<Entry>,
    pub skipped: Vec<Problem>,
}

const NOT_A_MAC: &str = "is not a MAC address (XX:XX:XX:XX:XX:XX)";
const TOO_LONG: &str = "is too long for an interface name (at most 15 bytes)";
const BAD_NAME: &str = "is not a valid interface name (no `/` or `:`, not `.` or `..`)";
const NO_ADDRESS: &str = "has no MAC address; skipped";
const UNSUPPORTED: &str = "is not supported (only MAC addresses); skipped";

/// Reads `text` as nameif does (see the module docs); `Err` is the problem that refuses the
/// whole file.
pub fn parse(text: &str) -> Result<Mactab, Problem> {
    let mut out = Mactab::default();
    for (at, raw) in text.lines().enumerate() {
        let line = at + 1;
        let content = raw.split('#').next().unwrap_or("");
        let mut fields = content.split_whitespace();
        let Some(name) = fields.next() else { continue };
        let problem = |word: &str, reason| Problem {
            line,
            word: word.to_string(),
            reason,
        };
        if name.len() >= IFNAMSIZ {
            return Err(problem(name, TOO_LONG));
        }
        if name == "." || name == ".." || name.bytes().any(|b| b == b'/' || b == b':') {
            return Err(problem(name, BAD_NAME));
        }
        let (mut mac, mut unsupported) = (None, None);
        for f in fields {
            if f.contains('=') && !f.starts_with("mac=") {
                unsupported = Some(f);
            } else {
                let text = f.strip_prefix("mac=").unwrap_or(f);
                mac = Some(parse_mac(text).ok_or_else(|| problem(f, NOT_A_MAC))?);
            }
        }
        // A name alone is skipped, as nameif's "bad line".
        match (unsupported, mac) {
            (Some(word), _) => out.skipped.push(problem(word, UNSUPPORTED)),
            (None, None) => out.skipped.push(problem(name, NO_ADDRESS)),
            (None, Some(mac)) => out.entries.push(Entry {
                name: name.to_string(),
                mac,
                line,
            }),
        }
    }
    Ok(out)
}

/// `aa:bb:cc:dd:ee:ff`, 1 or 2 hex digits a byte.
fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = text.split(':');
    for o in out.iter_mut() {
        let p = parts.next()?.as_bytes();
        if p.is_empty() || p.len() > 2 {
            return None;
        }
        for &c in p {
            *o = *o * 16 + (c as char).to_digit(16)? as u8;
        }
    }
    parts.next().is_none().then_some(out)
}

/// The renames still to make while the boot waits for interfaces.
#[derive(Debug, Default)]
pub struct Renamer {
    entries: Vec<Entry>,
    /// Interfaces (ifindex) already looked at: each once, as nameif does.
    seen: Vec<u32>,
    /// A rename failed (nameif stops there), or the links are up.
    stopped: bool,
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

    /// No more renames (the links are coming up).
    pub fn stop(&mut self) {
        self.stopped = true;
    }

    /// Renames the `interfaces` (by ifindex) not looked at before that a line matches, in the
    /// kernel and in `interfaces`.
    pub fn apply(&mut self, sys: &dyn Sys, interfaces: &mut [Interface]) {
        for i in interfaces {
            if self.stopped || self.entries.is_empty() {
                return;
            }
            if self.seen.contains(&i.index) {
                continue;
            }
            self.seen.push(i.index);
            let mac = i.mac_bytes();
            let Some(at) = self.entries.iter().rposition(|e| e.mac == mac) else {
                continue;
            };
            let e = self.entries.remove(at);
            if e.name == i.name {
                continue;
            }
            match sys.rename_link(&i.name, i.index, &e.name) {
                Ok(()) => {
                    log::info!("{} renamed {} ({PATH}:{})", i.name, e.name, e.line);
                    i.name = e.name;
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::console;
    use crate::sys::RecordingSys;
    use std::fs;

    fn nic(root: &Path, name: &str, index: u32, mac: &str) {
        let d = root.join("sys/class/net").join(name);
        fs::create_dir_all(d.join("device")).unwrap();
        fs::write(d.join("ifindex"), format!("{index}\n")).unwrap();
        fs::write(d.join("address"), format!("{mac}\n")).unwrap();
    }

    fn renamer(sys: &RecordingSys, text: &str) -> Renamer {
        fs::create_dir_all(sys.root().join("etc")).unwrap();
        fs::write(sys.root().join("etc/mactab"), text).unwrap();
        Renamer::load(sys)
    }

    /// One pass as the boot's wait makes it: the interfaces as sysfs shows them, renamed.
    fn pass(r: &mut Renamer, sys: &RecordingSys) -> Vec<String> {
        let mut found = super::super::iface::scan(sys);
        r.apply(sys, &mut found);
        found.into_iter().map(|i| i.name).collect()
    }

    fn renames(sys: &RecordingSys) -> Vec<String> {
        sys.trace()
            .into_iter()
            .filter(|l| l.contains(" name "))
            .collect()
    }

    /// Bottom-up lines, interfaces by ifindex, each once; a name already right is left alone.
    #[test]
    fn renames_as_nameif_matches() {
        let dir = tempfile::tempdir().unwrap();
        let sys = RecordingSys::new(dir.path());
        nic(dir.path(), "eth0", 2, "02:00:00:00:00:01");
        nic(dir.path(), "eth1", 3, "02:00:00:00:00:02");
        nic(dir.path(), "keep0", 4, "02:00:00:00:00:03");
        nic(dir.path(), "eth3", 5, "02:00:00:00:00:04");
        let mut r = renamer(
            &sys,
            "first 02:00:00:00:00:01\nlast 02:00:00:00:00:01\nusb0 2:0:0:0:0:2\n\
             keep0 02:00:00:00:00:03\n",
        );
        assert_eq!(pass(&mut r, &sys), ["last", "usb0", "keep0", "eth3"]);
        assert_eq!(
            renames(&sys),
            ["ip link set eth0 name last", "ip link set eth1 name usb0"]
        );
        // Seen once: a second pass renames nothing, though `first` matches `last` now.
        assert_eq!(pass(&mut r, &sys), ["last", "usb0", "keep0", "eth3"]);
        assert_eq!(renames(&sys).len(), 2);
    }

    /// A refused rename is said once, with the line, and ends the renaming.
    #[test]
    fn a_refused_rename_stops_the_renaming() {
        let dir = tempfile::tempdir().unwrap();
        let sys = RecordingSys::new(dir.path());
        let out = console::tests::Captured::default();
        console::init(Box::new(out.clone()), false, false);
        nic(dir.path(), "eth0", 2, "02:00:00:00:00:01");
        nic(dir.path(), "eth1", 3, "02:00:00:00:00:02");
        let mut r = renamer(&sys, "eth1 02:00:00:00:00:01\nlan1 02:00:00:00:00:02\n");
        assert_eq!(pass(&mut r, &sys), ["eth0", "eth1"]);
        assert_eq!(renames(&sys), ["ip link set eth0 name eth1"]);
        let text = out.text();
        assert!(
            text.contains(
                "/etc/mactab:1: cannot rename eth0 to eth1: File exists (os error 17); the \
                 other renames are not made (as nameif stops)"
            ),
            "{text}"
        );

        // A file that does not parse renames nothing, and says why.
        let mut r = renamer(&sys, "lan0 02:00:00:00:00:zz\n");
        assert_eq!(pass(&mut r, &sys), ["eth0", "eth1"]);
        assert!(
            out.text().contains(
                "/etc/mactab:1: `02:00:00:00:00:zz` is not a MAC address (XX:XX:XX:XX:XX:XX); \
                 no interface is renamed"
            ),
            "{}",
            out.text()
        );
        assert_eq!(renames(&sys).len(), 1);
    }

    fn entry(name: &str, mac: [u8; 6], line: usize) -> Entry {
        Entry {
            name: name.into(),
            mac,
            line,
        }
    }

    fn texts(skipped: &[Problem]) -> Vec<String> {
        skipped.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn names_addresses_and_comments() {
        let m = parse(
            "# the machine's NICs\n\
             lan0  B8:27:EB:0:0:1   # onboard\n\
             \n\
             \twan0\tmac=02:00:00:00:00:03\n\
             eth#0 02:00:00:00:00:09\n\
             two 02:00:00:00:00:01 02:00:00:00:00:02\n",
        )
        .unwrap();
        assert_eq!(
            m.entries,
            [
                entry("lan0", [0xb8, 0x27, 0xeb, 0, 0, 1], 2),
                entry("wan0", [2, 0, 0, 0, 0, 3], 4),
                // As nameif: the last address of a line counts.
                entry("two", [2, 0, 0, 0, 0, 2], 6),
            ]
        );
        // `#` inside a word starts the comment: `eth` alone, skipped as nameif's "bad line".
        assert_eq!(
            texts(&m.skipped),
            ["/etc/mactab:5: `eth` has no MAC address; skipped"]
        );
    }

    #[test]
    fn other_selectors_skip_their_line() {
        let m = parse(
            "a bus=usb-0000:00:08.2-3\nb phyaddr=2 02:00:00:00:00:01\n\
             c driver=smsc95xx\nd 1:2:3:4:5:6\n",
        )
        .unwrap();
        assert_eq!(m.entries, [entry("d", [1, 2, 3, 4, 5, 6], 4)]);
        assert_eq!(
            texts(&m.skipped),
            [
                "/etc/mactab:1: `bus=usb-0000:00:08.2-3` is not supported (only MAC addresses); \
                 skipped",
                "/etc/mactab:2: `phyaddr=2` is not supported (only MAC addresses); skipped",
                "/etc/mactab:3: `driver=smsc95xx` is not supported (only MAC addresses); skipped",
            ]
        );
    }

    #[test]
    fn a_bad_address_or_name_refuses_the_file() {
        for (text, line, word, reason) in [
            (
                "ok 02:00:00:00:00:01\nlan0 02:00:00:00:00\n",
                2,
                "02:00:00:00:00",
                NOT_A_MAC,
            ),
            (
                "lan0 mac=02:00:00:00:00:001\n",
                1,
                "mac=02:00:00:00:00:001",
                NOT_A_MAC,
            ),
            (
                "lan0 02:00:00:00:00:0g\n",
                1,
                "02:00:00:00:00:0g",
                NOT_A_MAC,
            ),
            ("lan0 0x2:0:0:0:0:1\n", 1, "0x2:0:0:0:0:1", NOT_A_MAC),
            (
                "lan0 02:00:00:00:00:01:\n",
                1,
                "02:00:00:00:00:01:",
                NOT_A_MAC,
            ),
            (
                "averyveryverylong 02:00:00:00:00:01\n",
                1,
                "averyveryverylong",
                TOO_LONG,
            ),
            ("a/b 02:00:00:00:00:01\n", 1, "a/b", BAD_NAME),
            ("a:1 02:00:00:00:00:01\n", 1, "a:1", BAD_NAME),
            (".. 02:00:00:00:00:01\n", 1, "..", BAD_NAME),
        ] {
            let e = parse(text).unwrap_err();
            assert_eq!(
                (e.line, e.word.as_str(), e.reason),
                (line, word, reason),
                "{text:?}"
            );
        }
        assert_eq!(
            parse("x 1:2\n").unwrap_err().to_string(),
            "/etc/mactab:1: `1:2` is not a MAC address (XX:XX:XX:XX:XX:XX)"
        );
        // 15 bytes is the longest name.
        assert!(parse("fifteen-bytes-x 1:2:3:4:5:6\n").is_ok());
    }
}
