//! Checksum text encodings used in APKINDEX, the installed db and file names.
//!
//! apk writes SHA1 identities as `Q1` + base64 and reads `X1` + hex too; legacy MD5 sums are bare
//! hex. Caches and scripts use the first four bytes in hex.

use std::fmt;

/// A package or file checksum as apk stores it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Checksum {
    /// SHA-1 (apk's `Q1` identities and file checksums).
    Sha1([u8; 20]),
    /// MD5 (old packages' file checksums).
    Md5([u8; 16]),
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// The value of a standard base64 digit (the place of `c` in [`B64`]); the one table of the
/// crate's two decoders (this module's, and PEM's in `sign::pubkey`).
pub(crate) fn base64_digit(c: u8) -> Option<u8> {
    B64.iter().position(|&d| d == c).map(|i| i as u8)
}

/// Standard base64 with `=` padding.
pub fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard base64 (padding required when the length is not a multiple of 4).
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if bytes.len() % 4 != 0 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for (ci, chunk) in bytes.chunks(4).enumerate() {
        let last = ci == bytes.len() / 4 - 1;
        let mut n = 0u32;
        let mut pad = 0;
        for (i, &c) in chunk.iter().enumerate() {
            let v = match c {
                b'=' if last && i >= 2 => {
                    pad += 1;
                    0
                }
                _ => base64_digit(c)?,
            };
            if pad > 0 && c != b'=' {
                return None;
            }
            n = (n << 6) | u32::from(v);
        }
        let decoded = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&decoded[..3 - pad]);
    }
    Some(out)
}

/// Lowercase hex.
pub fn hex(data: &[u8]) -> String {
    let mut s = String::with_capacity(data.len() * 2);
    for b in data {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Parses hex (either case) into bytes.
pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

impl Checksum {
    /// Parses `Q1<base64>`, `X1<hex>` or a bare 32-digit MD5.
    pub fn parse(text: &str) -> Option<Checksum> {
        if let Some(b64) = text.strip_prefix("Q1") {
            return base64_decode(b64)?.try_into().ok().map(Checksum::Sha1);
        }
        if let Some(h) = text.strip_prefix("X1") {
            return unhex(h)?.try_into().ok().map(Checksum::Sha1);
        }
        if text.len() == 32 && text.as_bytes()[0].is_ascii_hexdigit() {
            return unhex(text)?.try_into().ok().map(Checksum::Md5);
        }
        None
    }

    /// Parses a PAX `APK-TOOLS.checksum.SHA1` value (40 hex digits).
    pub fn from_sha1_hex(text: &str) -> Option<Checksum> {
        unhex(text)?.try_into().ok().map(Checksum::Sha1)
    }

    /// The raw digest.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Checksum::Sha1(b) => b,
            Checksum::Md5(b) => b,
        }
    }

    /// The first four bytes in lowercase hex: cache file names and scripts.
    pub fn short_hex(&self) -> String {
        hex(&self.bytes()[..4])
    }
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Checksum::Sha1(b) => write!(f, "Q1{}", base64_encode(b)),
            Checksum::Md5(b) => f.write_str(&hex(b)),
        }
    }
}

impl fmt::Debug for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q1_round_trip() {
        let c = Checksum::parse("Q1sKBraP0l14fbx+ZBoqeB0pFzpH4=").unwrap();
        assert_eq!(c.to_string(), "Q1sKBraP0l14fbx+ZBoqeB0pFzpH4=");
        assert_eq!(c.short_hex(), "b0a06b68");
        let x = Checksum::parse(&format!("X1{}", hex(c.bytes()))).unwrap();
        assert_eq!(x, c);
        assert!(Checksum::parse("Q1short").is_none());
        assert_eq!(base64_encode(b"ab"), "YWI=");
        assert_eq!(base64_decode("YWI=").unwrap(), b"ab");
    }
}
