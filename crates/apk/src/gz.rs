//! A reader over concatenated gzip members that stops at each member boundary.
//!
//! apk's trust model hashes the *compressed* bytes of whole gzip members (signature, control,
//! data), so the reader hashes exactly the bytes each member consumes, and pauses at the end of
//! each member until the caller has looked at the hashes and called [`GzMembers::next_member`].

use crate::sha512::Sha512;
use flate2::{Decompress, FlushDecompress, Status};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use std::io::{self, Read};

/// The digests fed with compressed bytes. The caller switches them between members.
#[derive(Default, Clone)]
pub(crate) struct Hashers {
    pub sha1: Option<Sha1>,
    pub sha256: Option<Sha256>,
    pub sha512: Option<Sha512>,
}

impl Hashers {
    pub fn all() -> Self {
        Hashers {
            sha1: Some(Sha1::new()),
            sha256: Some(Sha256::new()),
            sha512: Some(Sha512::new()),
        }
    }

    fn update(&mut self, data: &[u8]) {
        if let Some(h) = &mut self.sha1 {
            h.update(data);
        }
        if let Some(h) = &mut self.sha256 {
            h.update(data);
        }
        if let Some(h) = &mut self.sha512 {
            h.update(data);
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    InMember,
    MemberEnd,
    Eof,
}

const INPUT_BUFFER: usize = 64 * 1024;
/// Inflating into a buffer this size, rather than into each small read (a 512-byte tar header,
/// a 2 KB file), keeps zlib-rs on its fast path and calls it a few times per member instead of
/// several times per entry.
const OUTPUT_BUFFER: usize = 64 * 1024;

/// See the module docs.
pub struct GzMembers<R> {
    inner: R,
    buf: Box<[u8]>,
    pos: usize,
    end: usize,
    /// Inflated bytes of the current member not yet read: `out[out_pos..out_end]`.
    out: Box<[u8]>,
    out_pos: usize,
    out_end: usize,
    inner_eof: bool,
    inflate: Decompress,
    /// Each member's gzip header and trailer are read here, the deflate data inflated raw: no
    /// CRC-32 (see [`Self::trust_digests`]) and one inflater reused for every member.
    raw: bool,
    /// In raw mode: the current member's header has been read.
    header_read: bool,
    state: State,
    pub(crate) hash: Hashers,
    /// Compressed bytes consumed so far.
    pub compressed: u64,
    /// Members started so far.
    pub members: u32,
}

impl<R: Read> GzMembers<R> {
    /// Starts reading `inner`; an empty stream has no members.
    pub fn new(inner: R) -> io::Result<Self> {
        let mut g = GzMembers {
            inner,
            buf: vec![0u8; INPUT_BUFFER].into_boxed_slice(),
            pos: 0,
            end: 0,
            out: vec![0u8; OUTPUT_BUFFER].into_boxed_slice(),
            out_pos: 0,
            out_end: 0,
            inner_eof: false,
            inflate: Decompress::new_gzip(15),
            raw: false,
            header_read: false,
            state: State::InMember,
            hash: Hashers::default(),
            compressed: 0,
            members: 1,
        };
        if !g.fill()? {
            g.state = State::Eof;
            g.members = 0;
        } else if g.buf[g.pos..g.end].starts_with(ADB_MAGIC) {
            return Err(corrupt(
                "an apk v3 file (ADB format, apk-tools 3/OpenWrt): only Alpine's v2 gzip format \
                 is read"
                    .into(),
            ));
        }
        Ok(g)
    }

    /// Makes input available; false at the end of the underlying stream.
    fn fill(&mut self) -> io::Result<bool> {
        if self.pos < self.end {
            return Ok(true);
        }
        if self.inner_eof {
            return Ok(false);
        }
        self.pos = 0;
        self.end = 0;
        loop {
            match self.inner.read(&mut self.buf) {
                Ok(0) => {
                    self.inner_eof = true;
                    return Ok(false);
                }
                Ok(n) => {
                    self.end = n;
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The caller verifies every compressed byte against a digest it trusts (a package from a
    /// repository: its control member against the index's `C:`, its data against the datahash),
    /// so gzip's CRC-32 of the inflated bytes adds nothing: it is not computed (4 % of a
    /// package's inflate time on ARMv8 even with its CRC instructions). Call before reading.
    pub fn trust_digests(&mut self) {
        if self.members == 1 && self.compressed == 0 && self.out_end == 0 {
            self.raw = true;
            self.inflate = Decompress::new(false);
        }
    }

    /// True when the current member has ended, all of it was read, and [`Self::next_member`]
    /// has not been called.
    pub fn at_member_end(&self) -> bool {
        self.state != State::InMember && self.out_pos == self.out_end
    }

    /// Moves past a member boundary. Returns false at the end of the stream.
    pub fn next_member(&mut self) -> io::Result<bool> {
        match self.state {
            State::Eof => return Ok(false),
            State::MemberEnd if self.out_pos == self.out_end => {}
            _ => return Err(io::Error::other("next_member called inside a gzip member")),
        }
        if !self.fill()? {
            self.state = State::Eof;
            return Ok(false);
        }
        if self.raw {
            self.inflate.reset(false);
            self.header_read = false;
        } else {
            self.inflate = Decompress::new_gzip(15);
        }
        self.state = State::InMember;
        self.members += 1;
        Ok(true)
    }

    /// The underlying reader.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

/// The start of apk-tools 3's ADB files (v3 packages and `packages.adb` indexes).
const ADB_MAGIC: &[u8] = b"ADB";

fn corrupt(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// The inflater refused the data; inside an [`io::Error`] so the decoder's own error stays
/// reachable through `source()`.
#[derive(Debug, thiserror::Error)]
#[error("corrupt gzip data: {0}")]
struct CorruptGzip(#[source] flate2::DecompressError);

impl<R: Read> GzMembers<R> {
    /// Up to `max` inflated bytes of the current member, taken as read: the caller uses them
    /// in place (no copy). Empty at the member's end.
    pub fn chunk(&mut self, max: usize) -> io::Result<&[u8]> {
        if self.out_pos == self.out_end && max > 0 {
            self.inflate_more()?;
        }
        let n = max.min(self.out_end - self.out_pos);
        let start = self.out_pos;
        self.out_pos += n;
        Ok(&self.out[start..start + n])
    }

    /// Refills the empty output buffer from the current member (nothing at its end).
    fn inflate_more(&mut self) -> io::Result<()> {
        self.out_pos = 0;
        self.out_end = 0;
        if self.raw && !self.header_read && self.state == State::InMember {
            self.read_header()?;
            self.header_read = true;
        }
        while self.state == State::InMember && self.out_end == 0 {
            if !self.fill()? {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "truncated gzip stream",
                ));
            }
            let before_in = self.inflate.total_in();
            let before_out = self.inflate.total_out();
            let status = self
                .inflate
                .decompress(
                    &self.buf[self.pos..self.end],
                    &mut self.out,
                    FlushDecompress::None,
                )
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, CorruptGzip(e)))?;
            let used = (self.inflate.total_in() - before_in) as usize;
            self.out_end = (self.inflate.total_out() - before_out) as usize;
            self.hash.update(&self.buf[self.pos..self.pos + used]);
            self.pos += used;
            self.compressed += used as u64;
            if status == Status::StreamEnd {
                if self.raw {
                    // CRC-32 and size: hashed as part of the member, not checked.
                    for _ in 0..8 {
                        self.take_byte()?;
                    }
                }
                self.state = State::MemberEnd;
            } else if used == 0 && self.out_end == 0 && self.pos < self.end {
                return Err(corrupt("gzip decoder made no progress".into()));
            }
        }
        Ok(())
    }
}

impl<R: Read> GzMembers<R> {
    /// One compressed byte of the member, hashed and counted.
    fn take_byte(&mut self) -> io::Result<u8> {
        if !self.fill()? {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "truncated gzip stream",
            ));
        }
        let b = self.buf[self.pos];
        self.hash.update(&self.buf[self.pos..self.pos + 1]);
        self.pos += 1;
        self.compressed += 1;
        Ok(b)
    }

    /// A member's gzip header (RFC 1952 2.3), hashed with the member: magic, deflate, flags,
    /// then the optional extra field, name, comment and header CRC (skipped).
    fn read_header(&mut self) -> io::Result<()> {
        const FHCRC: u8 = 2;
        const FEXTRA: u8 = 4;
        const FNAME: u8 = 8;
        const FCOMMENT: u8 = 16;
        let mut fixed = [0u8; 10];
        for b in &mut fixed {
            *b = self.take_byte()?;
        }
        let flags = fixed[3];
        if fixed[..3] != [0x1f, 0x8b, 8] {
            return Err(corrupt("not a gzip member (bad magic or method)".into()));
        }
        if flags & 0xe0 != 0 {
            return Err(corrupt("gzip header with reserved flags".into()));
        }
        if flags & FEXTRA != 0 {
            let len = u16::from_le_bytes([self.take_byte()?, self.take_byte()?]);
            for _ in 0..len {
                self.take_byte()?;
            }
        }
        for field in [FNAME, FCOMMENT] {
            if flags & field != 0 {
                while self.take_byte()? != 0 {}
            }
        }
        if flags & FHCRC != 0 {
            self.take_byte()?;
            self.take_byte()?;
        }
        Ok(())
    }
}

impl<R: Read> Read for GzMembers<R> {
    /// Reads decompressed bytes of the current member; 0 at its end.
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let chunk = self.chunk(out.len())?;
        out[..chunk.len()].copy_from_slice(chunk);
        Ok(chunk.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use flate2::Compression;
    use std::io::Write;

    fn member(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn members_pause_and_hash_exact_bytes() {
        let (a, b) = (member(b"hello "), member(&vec![7u8; 100_000]));
        let mut all = a.clone();
        all.extend_from_slice(&b);
        let mut g = GzMembers::new(&all[..]).unwrap();
        g.hash.sha1 = Some(Sha1::new());
        let mut s = Vec::new();
        g.read_to_end(&mut s).unwrap();
        assert_eq!(s, b"hello ");
        assert!(g.at_member_end());
        assert_eq!(
            g.hash.sha1.take().unwrap().finalize()[..],
            Sha1::digest(&a)[..]
        );
        g.hash.sha256 = Some(Sha256::new());
        assert!(g.next_member().unwrap());
        let mut s = Vec::new();
        g.read_to_end(&mut s).unwrap();
        assert_eq!(s.len(), 100_000);
        assert_eq!(
            g.hash.sha256.take().unwrap().finalize()[..],
            Sha256::digest(&b)[..]
        );
        assert!(!g.next_member().unwrap());
    }

    #[test]
    fn chunks_stop_at_the_member_end_and_resume_after_it() {
        let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut all = member(&big);
        all.extend_from_slice(&member(b"tail"));
        let mut g = GzMembers::new(&all[..]).unwrap();
        let mut got = Vec::new();
        loop {
            assert_eq!(g.at_member_end(), got.len() == big.len());
            let c = g.chunk(70_000).unwrap();
            if c.is_empty() {
                break;
            }
            assert!(c.len() <= 70_000);
            got.extend_from_slice(c);
        }
        assert_eq!(got, big);
        assert!(g.at_member_end());
        assert!(g.next_member().unwrap());
        assert_eq!(g.chunk(2).unwrap(), b"ta");
        assert!(!g.at_member_end());
        assert!(
            g.next_member().is_err(),
            "the member is not read to its end"
        );
        assert_eq!(g.chunk(10).unwrap(), b"il");
        assert!(g.chunk(10).unwrap().is_empty());
        assert!(!g.next_member().unwrap());
    }

    /// A member with every optional header field (extra, name, comment, header CRC).
    fn member_with_all_fields(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::GzBuilder::new()
            .extra(vec![1, 2, 3])
            .filename("f.tar")
            .comment("c")
            .write(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        let mut m = e.finish().unwrap();
        // flate2 never sets FHCRC: add the header CRC by hand (zlib checks it).
        let header_end = m.windows(2).position(|w| w == b"c\0").unwrap() + 2;
        m[3] |= 2;
        let crc = crc32(&m[..header_end]).to_le_bytes();
        m.splice(header_end..header_end, [crc[0], crc[1]]);
        m
    }

    /// CRC-32 (IEEE), bit by bit.
    fn crc32(data: &[u8]) -> u32 {
        let mut c = !0u32;
        for &b in data {
            c ^= u32::from(b);
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    (c >> 1) ^ 0xedb8_8320
                } else {
                    c >> 1
                };
            }
        }
        !c
    }

    /// Reads all members with `trust_digests` or not: the inflated bytes of each member and
    /// the SHA-1 of each member's compressed bytes.
    fn read_members(all: &[u8], trusted: bool) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut g = GzMembers::new(all)?;
        if trusted {
            g.trust_digests();
        }
        let mut got = Vec::new();
        loop {
            g.hash.sha1 = Some(Sha1::new());
            let mut s = Vec::new();
            g.read_to_end(&mut s)?;
            got.push((s, g.hash.sha1.take().unwrap().finalize().to_vec()));
            if !g.next_member()? {
                return Ok(got);
            }
        }
    }

    #[test]
    fn trusted_members_read_the_same_bytes_and_hash_the_same() {
        let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let members = [member(b"hello "), member_with_all_fields(&big), member(b"")];
        let all = members.concat();
        let plain = read_members(&all, false).unwrap();
        assert_eq!(plain, read_members(&all, true).unwrap());
        assert_eq!(plain[1].0, big);
        for (m, (_, sum)) in members.iter().zip(&plain) {
            assert_eq!(sum[..], Sha1::digest(m)[..]);
        }
    }

    #[test]
    fn trusted_members_skip_only_the_crc() {
        let mut m = member(&vec![5u8; 10_000]);
        let n = m.len();
        m[n - 8] ^= 1;
        assert!(
            read_members(&m, false).is_err(),
            "the CRC is checked by default"
        );
        assert_eq!(read_members(&m, true).unwrap()[0].0, vec![5u8; 10_000]);
        // Still refused: a cut trailer, a bad magic, reserved flags, corrupt deflate data.
        assert!(read_members(&m[..n - 3], true).is_err());
        let mut bad = m.clone();
        bad[0] = 0x1e;
        assert!(read_members(&bad, true).is_err());
        let mut bad = m.clone();
        bad[3] = 0x80;
        assert!(read_members(&bad, true).is_err());
        let mut bad = m.clone();
        bad[10] = 0xff;
        bad[11] = 0xff;
        assert!(read_members(&bad, true).is_err());
    }

    #[test]
    fn truncated_is_an_error() {
        let a = member(&vec![1u8; 50_000]);
        let mut g = GzMembers::new(&a[..a.len() - 5]).unwrap();
        let mut s = Vec::new();
        assert!(g.read_to_end(&mut s).is_err());
    }
}
