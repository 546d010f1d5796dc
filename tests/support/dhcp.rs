//! An in-process DHCP server for the recording double ([`RecordingSys::serve_dhcp`]), written
//! from RFC 2131's layout rather than from the client's code, so the two do not share a
//! mistake.
//!
//! [`RecordingSys::serve_dhcp`]: ramboot::sys::RecordingSys::serve_dhcp

/// The value of option `code` in a client packet (after the 240-byte header and cookie).
pub fn option(packet: &[u8], code: u8) -> Option<Vec<u8>> {
    let mut i = 240;
    while i + 1 < packet.len() {
        match packet[i] {
            0 => i += 1,
            255 => return None,
            c => {
                let len = packet[i + 1] as usize;
                if c == code {
                    return Some(packet[i + 2..i + 2 + len].to_vec());
                }
                i += 2 + len;
            }
        }
    }
    None
}

/// A server's BOOTREPLY of `kind` to `request`, offering `yiaddr` with `options`.
pub fn reply(request: &[u8], kind: u8, yiaddr: [u8; 4], options: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let mut p = vec![0u8; 236];
    p[0] = 2;
    p[1..3].copy_from_slice(&[1, 6]);
    p[4..8].copy_from_slice(&request[4..8]);
    p[16..20].copy_from_slice(&yiaddr);
    p[28..44].copy_from_slice(&request[28..44]);
    p.extend([99, 130, 83, 99, 53, 1, kind]);
    for (c, v) in options {
        p.push(*c);
        p.push(v.len() as u8);
        p.extend(v);
    }
    p.push(255);
    p
}

/// QEMU user networking's answers: 10.0.2.15/24, router and DNS at .2/.3, a day's lease.
pub fn slirp_like(naks: usize) -> impl FnMut(&[u8]) -> Vec<Vec<u8>> + Send + 'static {
    let mut naks_left = naks;
    move |req| {
        let kind = option(req, 53).unwrap()[0];
        let common = vec![
            (54, vec![10, 0, 2, 2]),
            (1, vec![255, 255, 255, 0]),
            (3, vec![10, 0, 2, 2]),
            (6, vec![10, 0, 2, 3, 1, 1, 1, 1]),
            (51, 86400u32.to_be_bytes().to_vec()),
            (12, b"node7".to_vec()),
            (15, b"example.test".to_vec()),
        ];
        match kind {
            1 => vec![reply(req, 2, [10, 0, 2, 15], &common)],
            3 if naks_left > 0 => {
                naks_left -= 1;
                vec![reply(req, 6, [0; 4], &[(54, vec![10, 0, 2, 2])])]
            }
            3 => {
                assert_eq!(
                    option(req, 50),
                    Some(vec![10, 0, 2, 15]),
                    "requested address"
                );
                assert_eq!(option(req, 54), Some(vec![10, 0, 2, 2]), "server id");
                vec![reply(req, 5, [10, 0, 2, 15], &common)]
            }
            _ => vec![],
        }
    }
}

/// `sys/class/net/<name>` under a stand-in root as the kernel shows a NIC (`physical`: a
/// `device` link).
pub fn nic(
    root: &std::path::Path,
    name: &str,
    index: u32,
    mac: &str,
    operstate: &str,
    physical: bool,
) {
    let d = root.join("sys/class/net").join(name);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("ifindex"), format!("{index}\n")).unwrap();
    std::fs::write(d.join("address"), format!("{mac}\n")).unwrap();
    std::fs::write(d.join("operstate"), format!("{operstate}\n")).unwrap();
    if physical {
        std::fs::create_dir_all(d.join("device")).unwrap();
    }
}
