//! Device specifications as `root=`, `apkovl=DEVICE:...` and fstab write them.
//!
//! Matching follows nlplug-findfs `searchdev`: a device name or node, a major:minor, or a blkid
//! tag. UUIDs compare case-insensitively (FAT serials are upper case in blkid, people type lower).

use super::block::DeviceInfo;
use std::fmt;

/// One way to name a block device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceSpec {
    /// `/dev/vda1` or `vda1`: the kernel name.
    Name(String),
    /// `8:1`.
    MajMin(u32, u32),
    Uuid(String),
    Label(String),
    PartUuid(String),
    PartLabel(String),
}

impl DeviceSpec {
    /// Parses a spec. Returns `None` for an empty string.
    pub fn parse(s: &str) -> Option<DeviceSpec> {
        let s = s.trim();
        let unquote = |v: &str| v.trim_matches('"').to_string();
        if let Some(v) = s.strip_prefix("UUID=") {
            return Some(DeviceSpec::Uuid(unquote(v)));
        }
        if let Some(v) = s.strip_prefix("LABEL=") {
            return Some(DeviceSpec::Label(unquote(v)));
        }
        if let Some(v) = s.strip_prefix("PARTUUID=") {
            return Some(DeviceSpec::PartUuid(unquote(v)));
        }
        if let Some(v) = s.strip_prefix("PARTLABEL=") {
            return Some(DeviceSpec::PartLabel(unquote(v)));
        }
        if let Some((a, b)) = s.split_once(':') {
            if let (Ok(maj), Ok(min)) = (a.parse(), b.parse()) {
                return Some(DeviceSpec::MajMin(maj, min));
            }
        }
        let name = s.strip_prefix("/dev/").unwrap_or(s);
        (!name.is_empty()).then(|| DeviceSpec::Name(name.to_string()))
    }

    /// True when `info` is the device this spec names.
    pub fn matches(&self, info: &DeviceInfo) -> bool {
        let eq_ci =
            |a: &Option<String>, b: &str| a.as_deref().is_some_and(|a| a.eq_ignore_ascii_case(b));
        let probe = info.probe.as_ref();
        match self {
            DeviceSpec::Name(n) => info.dev.name == *n,
            DeviceSpec::MajMin(a, b) => info.dev.major == *a && info.dev.minor == *b,
            DeviceSpec::Uuid(u) => probe.is_some_and(|p| eq_ci(&p.uuid, u)),
            DeviceSpec::Label(l) => probe.is_some_and(|p| p.label.as_deref() == Some(l.as_str())),
            DeviceSpec::PartUuid(u) => eq_ci(&info.part.partuuid, u),
            DeviceSpec::PartLabel(l) => info.part.partlabel.as_deref() == Some(l.as_str()),
        }
    }

    /// True when matching needs the superblock or partition table (not just the name).
    pub fn needs_probe(&self) -> bool {
        !matches!(self, DeviceSpec::Name(_) | DeviceSpec::MajMin(..))
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Name(n) => write!(f, "/dev/{n}"),
            DeviceSpec::MajMin(a, b) => write!(f, "{a}:{b}"),
            DeviceSpec::Uuid(u) => write!(f, "UUID={u}"),
            DeviceSpec::Label(l) => write!(f, "LABEL={l}"),
            DeviceSpec::PartUuid(u) => write!(f, "PARTUUID={u}"),
            DeviceSpec::PartLabel(l) => write!(f, "PARTLABEL={l}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses() {
        assert_eq!(
            DeviceSpec::parse("/dev/vda1"),
            Some(DeviceSpec::Name("vda1".into()))
        );
        assert_eq!(
            DeviceSpec::parse("UUID=\"AB-CD\""),
            Some(DeviceSpec::Uuid("AB-CD".into()))
        );
        assert_eq!(DeviceSpec::parse("8:1"), Some(DeviceSpec::MajMin(8, 1)));
        assert_eq!(
            DeviceSpec::parse("PARTUUID=5e29a4d6-02"),
            Some(DeviceSpec::PartUuid("5e29a4d6-02".into()))
        );
        assert_eq!(DeviceSpec::parse(""), None);
    }
}
