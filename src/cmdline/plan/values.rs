//! Parsers of single option values (`ip=`, `BOOTIF=`, `cryptkey=`, devices, yes/no), shared by
//! the planner and the boot.

use super::types::*;
use std::net::Ipv4Addr;
use std::path::PathBuf;

pub fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "yes" | "y" | "1" | "true" | "on" => Some(true),
        "no" | "n" | "0" | "false" | "off" => Some(false),
        _ => None,
    }
}

/// `root=`-style device names. The bool says the text was not a recognised form and was taken
/// as a name under `/dev`.
pub fn parse_device(text: &str) -> (DeviceSpec, bool) {
    type Make = fn(String) -> DeviceSpec;
    let prefixed: [(&str, Make); 5] = [
        ("UUID=", DeviceSpec::Uuid),
        ("LABEL=", DeviceSpec::Label),
        ("PARTUUID=", DeviceSpec::PartUuid),
        ("PARTLABEL=", DeviceSpec::PartLabel),
        ("ZFS=", DeviceSpec::Zfs),
    ];
    for (prefix, make) in prefixed {
        if let Some(rest) = text.strip_prefix(prefix) {
            return (make(rest.to_string()), false);
        }
    }
    if text.starts_with('/') {
        (DeviceSpec::Path(PathBuf::from(text)), false)
    } else {
        (
            DeviceSpec::Path(PathBuf::from(format!("/dev/{text}"))),
            true,
        )
    }
}

/// As written on the command line: `/dev/sda1`, `UUID=...`.
impl std::fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceSpec::Path(p) => write!(f, "{}", p.display()),
            DeviceSpec::Uuid(s) => write!(f, "UUID={s}"),
            DeviceSpec::Label(s) => write!(f, "LABEL={s}"),
            DeviceSpec::PartUuid(s) => write!(f, "PARTUUID={s}"),
            DeviceSpec::PartLabel(s) => write!(f, "PARTLABEL={s}"),
            DeviceSpec::Zfs(s) => write!(f, "ZFS={s}"),
        }
    }
}

/// `ip=` (Alpine `configure_ip`): returns the config and what was wrong with the text.
pub fn parse_ip(text: &str) -> (IpConfig, Vec<String>) {
    let mut problems = Vec::new();
    let fields: Vec<&str> = text.split(':').collect();
    let field = |i: usize| fields.get(i).copied().filter(|f| !f.is_empty());
    if fields.len() > 10 {
        problems.push(format!(
            "`ip={text}` has more than 10 fields; the rest is ignored"
        ));
    }
    let client = field(0);
    let device = field(5).map(str::to_string);
    let autoconf = field(6);
    match client {
        Some("off" | "none") => return (IpConfig::Off, problems),
        Some("dhcp") => return (IpConfig::Dhcp { device }, problems),
        Some(c @ ("on" | "any" | "both" | "bootp" | "rarp")) => {
            problems.push(format!("`ip={c}` is kernel autoconfiguration; using dhcp"));
            return (IpConfig::Dhcp { device }, problems);
        }
        _ => {}
    }
    if autoconf == Some("dhcp") {
        return (IpConfig::Dhcp { device }, problems);
    }
    let addr = |i: usize, what: &str, problems: &mut Vec<String>| -> Option<Ipv4Addr> {
        let f = field(i)?;
        match f.parse() {
            Ok(a) => Some(a),
            Err(_) => {
                problems.push(format!("{what} `{f}` is not an IPv4 address; ignored"));
                None
            }
        }
    };
    let client_ip = addr(0, "client address", &mut problems);
    let gateway = addr(2, "gateway", &mut problems);
    let netmask = match field(3) {
        Some(m) if !m.contains('.') => match m.parse::<u8>() {
            Ok(bits) if bits <= 32 => Some(Ipv4Addr::from(
                (u32::MAX).checked_shl(32 - bits as u32).unwrap_or(0),
            )),
            _ => {
                problems.push(format!(
                    "netmask `{m}` is neither dotted nor a prefix length; ignored"
                ));
                None
            }
        },
        _ => addr(3, "netmask", &mut problems),
    };
    let dns = [7, 8]
        .into_iter()
        .filter_map(|i| addr(i, "DNS server", &mut problems))
        .collect();
    match client_ip {
        Some(client) => (
            IpConfig::Static(StaticIp {
                client,
                server: field(1).map(str::to_string),
                gateway,
                netmask,
                hostname: field(4).map(str::to_string),
                device,
                dns,
                ntp: field(9).map(str::to_string),
            }),
            problems,
        ),
        None => {
            if client.is_some() {
                problems.push("no usable client address; using dhcp".to_string());
                (IpConfig::Dhcp { device }, problems)
            } else {
                problems.push(
                    "no client address and no dhcp: the network is not configured".to_string(),
                );
                (IpConfig::Off, problems)
            }
        }
    }
}

/// `BOOTIF=01-aa-bb-cc-dd-ee-ff` (PXELINUX; `01` is the ARP type) → `aa:bb:cc:dd:ee:ff`.
pub fn parse_bootif(v: &str) -> Option<String> {
    let mac = v
        .strip_prefix("01-")
        .unwrap_or(v)
        .replace('-', ":")
        .to_ascii_lowercase();
    let ok = mac.split(':').count() == 6
        && mac
            .split(':')
            .all(|o| o.len() == 2 && o.bytes().all(|b| b.is_ascii_hexdigit()));
    ok.then_some(mac)
}

/// `cryptkey=PATH[:offset:size]` or `EXEC=command`.
pub fn parse_cryptkey(v: &str) -> CryptKey {
    if let Some(cmd) = v.strip_prefix("EXEC=") {
        return CryptKey::Exec(cmd.to_string());
    }
    let mut parts = v.splitn(3, ':');
    let path = parts.next().unwrap_or_default().to_string();
    let offset = parts.next().and_then(|o| o.parse().ok());
    let size = parts.next().and_then(|s| s.parse().ok());
    CryptKey::File { path, offset, size }
}
