//! The placeholders of a boot URL: Alpine's `{MAC}` and `{UUID}` (initramfs-init replaces the
//! first of each), and ramboot's `{SERIAL}` (a Raspberry Pi's serial number, from the device
//! tree) and `{HOSTNAME}`, so one server can hand each machine its own apkovl.
//!
//! A value that cannot be found becomes empty, as in Alpine, and is named in the result so the
//! boot and `ramboot plan` can say so.

use crate::sys::Sys;
use std::path::Path;

/// The placeholders, in the order they are replaced.
pub const PLACEHOLDERS: [&str; 4] = ["{MAC}", "{UUID}", "{SERIAL}", "{HOSTNAME}"];

/// The values known for the placeholders (`None`: not known).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Values {
    pub mac: Option<String>,
    pub uuid: Option<String>,
    pub serial: Option<String>,
    pub hostname: Option<String>,
}

/// A URL with its placeholders replaced, and those that had no value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Substituted {
    pub url: String,
    pub missing: Vec<&'static str>,
}

/// First line of a sysfs or device-tree file, without the device tree's NUL terminator.
fn read_value(sys: &dyn Sys, path: &str) -> Option<String> {
    let bytes = std::fs::read(sys.path(Path::new(path))).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    let v = text.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    (!v.is_empty()).then(|| v.to_string())
}

impl Values {
    /// What this machine says: DMI's product UUID, the device tree's serial number, the
    /// kernel's host name; `mac` is the interface the network came up on.
    pub fn of_machine(sys: &dyn Sys, mac: Option<&str>) -> Values {
        let serial = [
            "/proc/device-tree/serial-number",
            "/sys/firmware/devicetree/base/serial-number",
        ]
        .iter()
        .find_map(|p| read_value(sys, p));
        let hostname = read_value(sys, "/proc/sys/kernel/hostname").filter(|h| h != "(none)");
        Values {
            mac: mac.map(str::to_string),
            uuid: read_value(sys, "/sys/class/dmi/id/product_uuid"),
            serial,
            hostname,
        }
    }
}

/// Replaces the first occurrence of each placeholder in `url` (Alpine's `${ovl/\{MAC\}/…}`).
pub fn substitute(url: &str, v: &Values) -> Substituted {
    let mut out = url.to_string();
    let mut missing = Vec::new();
    let values = [&v.mac, &v.uuid, &v.serial, &v.hostname];
    for (name, value) in PLACEHOLDERS.into_iter().zip(values) {
        if !out.contains(name) {
            continue;
        }
        if value.is_none() {
            missing.push(name);
        }
        out = out.replacen(name, value.as_deref().unwrap_or(""), 1);
    }
    Substituted { url: out, missing }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_of_each_placeholder_is_replaced_and_unknown_ones_are_named() {
        let v = Values {
            mac: Some("52:54:00:12:34:56".into()),
            uuid: None,
            serial: Some("10000000abcdef".into()),
            hostname: Some("pi".into()),
        };
        let s = substitute("http://h/{MAC}/{UUID}/{SERIAL}-{HOSTNAME}/{MAC}.tar.gz", &v);
        assert_eq!(
            s.url,
            "http://h/52:54:00:12:34:56//10000000abcdef-pi/{MAC}.tar.gz"
        );
        assert_eq!(s.missing, ["{UUID}"]);
        assert!(substitute("http://h/x", &Values::default())
            .missing
            .is_empty());
    }
}
