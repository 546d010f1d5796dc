//! The tar dialect apk reads and writes (`src/io_archive.c` in apk-tools).
//!
//! Own reader rather than the `tar` crate: entries must be read from a stream that pauses at gzip
//! member boundaries, PAX checksum and xattr records must be kept, and every size and name is
//! untrusted. The writer produces what abuild and `apk index` produce (GNU magic, PAX records,
//! optionally "cut" without end-of-archive blocks).

use super::checksum::Checksum;
use super::gz::GzMembers;
use super::ids::OwnerNames;
use std::io::{self, Read, Write};

/// Longest name or link target accepted (apk: PATH_MAX - 10).
pub const MAX_NAME: usize = 4086;
/// Largest PAX or GNU long-name record accepted.
const MAX_META: u64 = 1 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
/// The kind of an archive entry.
pub enum Kind {
    /// A regular file (type `0`, `7`).
    File,
    /// A hard link to an earlier entry (`1`).
    HardLink,
    /// A symbolic link (`2`).
    Symlink,
    /// A character device (`3`).
    CharDevice,
    /// A block device (`4`).
    BlockDevice,
    /// A directory (`5`).
    Dir,
    /// A fifo (`6`).
    Fifo,
}

/// One archive member, with the PAX data that applies to it.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The name (from PAX `path` or a GNU long name when there is one).
    pub name: String,
    /// What the entry is.
    pub kind: Kind,
    /// Permission bits.
    pub mode: u32,
    /// Owner id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Owner name.
    pub uname: String,
    /// Group name.
    pub gname: String,
    /// Content size.
    pub size: u64,
    /// Modification time, seconds since the epoch.
    pub mtime: u64,
    /// Link target (PAX `linkpath` when there is one).
    pub link: String,
    /// Device major number.
    pub dev_major: u32,
    /// Device minor number.
    pub dev_minor: u32,
    /// `SCHILY.xattr.*` records, in archive order.
    pub xattrs: Vec<(String, Vec<u8>)>,
    /// `APK-TOOLS.checksum.SHA1` (or `.MD5`).
    pub checksum: Option<Checksum>,
}

/// What [`TarReader::next_event`] found.
#[derive(Debug)]
pub enum Event {
    /// An entry; its content is read with [`TarReader::read_content`].
    Entry(Entry),
    /// The gzip member ended on a record boundary; call [`TarReader::next_member`].
    MemberEnd,
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

fn octal(field: &[u8], what: &str) -> io::Result<u64> {
    if field.first().is_some_and(|b| b & 0x80 != 0) {
        return Err(bad(format!("tar header: base-256 {what} is not supported")));
    }
    let mut v: u64 = 0;
    for &c in field {
        match c {
            b'0'..=b'7' => {
                v = v
                    .checked_mul(8)
                    .and_then(|v| v.checked_add(u64::from(c - b'0')))
                    .ok_or_else(|| bad("tar number overflow"))?
            }
            b' ' if v == 0 => {}
            0 | b' ' => break,
            _ => return Err(bad(format!("tar header: bad octal {what}"))),
        }
    }
    Ok(v)
}

/// A byte count as a buffer length (saturating on 32-bit targets).
fn clamp(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

/// A NUL-terminated header field's bytes.
fn c_field(field: &[u8]) -> &[u8] {
    &field[..field.iter().position(|&b| b == 0).unwrap_or(field.len())]
}

fn cstr(field: &[u8]) -> io::Result<String> {
    String::from_utf8(c_field(field).to_vec()).map_err(|_| bad("tar header: name is not UTF-8"))
}

/// Reads entries from a (possibly multi-member) gzip stream.
pub struct TarReader<R> {
    src: GzMembers<R>,
    /// Content bytes of the current entry not yet read, then its padding.
    remaining: u64,
    padding: u64,
    zero_blocks: u32,
    /// Two zero blocks were seen: the rest is discarded.
    ended: bool,
    /// Owner names of every header read, extension headers included (apk looks each up).
    owners: OwnerNames,
    /// Read as tar does ([`Self::tar_compatible`]), not as apk does.
    tar_compatible: bool,
}

impl<R: Read> TarReader<R> {
    /// Reads the archive in `src`.
    pub fn new(src: GzMembers<R>) -> Self {
        TarReader {
            src,
            remaining: 0,
            padding: 0,
            zero_blocks: 0,
            ended: false,
            owners: OwnerNames::default(),
            tar_compatible: false,
        }
    }

    /// Reads as tar does, for archives made by tar (apkovls): GNU long link names (`K`
    /// records) are used and an old-style type flag (NUL) is a regular file. apk skips both,
    /// so packages are read without.
    pub fn tar_compatible(mut self) -> Self {
        self.tar_compatible = true;
        self
    }

    /// The end-of-archive marker (two zero records) was read: what follows in the stream is
    /// not part of the archive.
    pub fn archive_ended(&self) -> bool {
        self.ended
    }

    /// The gzip reader (its digests, between members).
    pub fn gz(&mut self) -> &mut GzMembers<R> {
        &mut self.src
    }

    /// The gzip reader, once the archive is read.
    pub fn into_gz(self) -> GzMembers<R> {
        self.src
    }

    /// The owner names of the headers read since the last call.
    pub fn take_owner_names(&mut self) -> OwnerNames {
        std::mem::take(&mut self.owners)
    }

    /// Continues after [`Event::MemberEnd`]; false at the end of the stream.
    pub fn next_member(&mut self) -> io::Result<bool> {
        self.src.next_member()
    }

    /// Reads exactly `buf.len()` bytes of the current member. Ok(false) if the member ended
    /// before the first byte; an error if it ended in the middle.
    fn read_block(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        let mut got = 0;
        while got < buf.len() {
            let n = self.src.read(&mut buf[got..])?;
            if n == 0 {
                if got == 0 && self.src.at_member_end() {
                    return Ok(false);
                }
                return Err(bad(
                    "tar record cut by the end of a gzip member (truncated or malformed)",
                ));
            }
            got += n;
        }
        Ok(true)
    }

    fn skip(&mut self, mut n: u64) -> io::Result<()> {
        while n > 0 {
            let got = self.src.chunk(clamp(n))?.len();
            if got == 0 {
                return Err(bad("tar entry cut by the end of a gzip member"));
            }
            n -= got as u64;
        }
        Ok(())
    }

    /// Reads content of the current entry; 0 once it is all read.
    pub fn read_content(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = clamp(self.remaining).min(buf.len());
        let chunk = self.content_chunk(want)?;
        buf[..chunk.len()].copy_from_slice(chunk);
        Ok(chunk.len())
    }

    /// Up to `max` bytes of the current entry's content, in place (no copy); empty once it
    /// is all read.
    pub fn content_chunk(&mut self, max: usize) -> io::Result<&[u8]> {
        if self.remaining == 0 || max == 0 {
            return Ok(&[]);
        }
        let chunk = self.src.chunk(clamp(self.remaining).min(max))?;
        if chunk.is_empty() {
            return Err(bad("tar entry content cut short (truncated archive)"));
        }
        self.remaining -= chunk.len() as u64;
        Ok(chunk)
    }

    /// The content of the current entry as a [`Read`].
    pub fn content(&mut self) -> Content<'_, R> {
        Content(self)
    }

    /// Reads the whole content of the current entry, refusing more than `limit` bytes.
    pub fn content_to_vec(&mut self, limit: u64, what: &str) -> io::Result<Vec<u8>> {
        if self.remaining > limit {
            return Err(bad(format!(
                "{what} is {} bytes, more than the {limit} allowed",
                self.remaining
            )));
        }
        let mut v = vec![0u8; self.remaining as usize];
        let mut got = 0;
        while got < v.len() {
            let n = self.read_content(&mut v[got..])?;
            got += n;
        }
        Ok(v)
    }

    /// The next entry or member boundary.
    pub fn next_event(&mut self) -> io::Result<Event> {
        let rest = self.remaining + self.padding;
        self.remaining = 0;
        self.padding = 0;
        self.skip(rest)?;
        let mut ext = Extensions::default();
        let mut block = [0u8; 512];
        loop {
            if self.ended {
                // Discard trailing records up to the end of the member.
                while !self.src.chunk(usize::MAX)?.is_empty() {}
                return Ok(Event::MemberEnd);
            }
            if !self.read_block(&mut block)? {
                if ext.pending() {
                    return Err(bad(
                        "tar: extended header without an entry before the member end",
                    ));
                }
                return Ok(Event::MemberEnd);
            }
            if block.iter().all(|&b| b == 0) {
                self.zero_blocks += 1;
                if self.zero_blocks >= 2 {
                    self.ended = true;
                }
                continue;
            }
            let size = self.start_record(&block)?;
            let typeflag = block[156];
            if self.extension(typeflag, &mut ext)? {
                continue;
            }
            let Some(kind) = kind_of(typeflag, self.tar_compatible) else {
                // 'g', 'K', old-style NUL and unknown types are skipped, as apk does.
                ext = Extensions::default();
                let rest = self.remaining + self.padding;
                self.remaining = 0;
                self.padding = 0;
                self.skip(rest)?;
                continue;
            };
            return Ok(Event::Entry(entry_of(&block, kind, size, ext)?));
        }
    }

    /// Checks a header block (magic, checksum, size), notes its owner names, and sets up the
    /// reading of its content. Returns the content size.
    fn start_record(&mut self, block: &[u8; 512]) -> io::Result<u64> {
        if &block[257..262] != b"ustar" {
            return Err(bad("tar header without ustar magic"));
        }
        let stored = octal(&block[148..156], "checksum")?;
        // The checksum field counts as eight spaces.
        let sum: u64 = block[..148]
            .iter()
            .chain(&block[156..])
            .map(|&b| u64::from(b))
            .sum::<u64>()
            + 8 * 32;
        if stored != sum {
            return Err(bad("tar header checksum mismatch"));
        }
        self.owners.add(
            &String::from_utf8_lossy(c_field(&block[265..297])),
            &String::from_utf8_lossy(c_field(&block[297..329])),
        );
        let size = octal(&block[124..136], "size")?;
        if size > u64::from(u32::MAX) {
            return Err(bad("tar entry larger than 4 GiB"));
        }
        self.remaining = size;
        self.padding = (512 - size % 512) % 512;
        Ok(size)
    }

    /// Reads an extension record (PAX `x`, GNU long name `L`, and GNU long link `K` when
    /// [`Self::tar_compatible`]) into `ext`. False when the record is not one.
    fn extension(&mut self, typeflag: u8, ext: &mut Extensions) -> io::Result<bool> {
        match typeflag {
            b'x' => {
                let data = self.content_to_vec(MAX_META, "PAX header")?;
                ext.pax.extend(parse_pax(&data)?);
            }
            b'L' => ext.long_name = Some(self.long_name("GNU long name")?),
            b'K' if self.tar_compatible => ext.long_link = Some(self.long_name("GNU long link")?),
            _ => return Ok(false),
        }
        let p = self.padding;
        self.padding = 0;
        self.skip(p)?;
        Ok(true)
    }

    /// The content of a GNU long name record: a NUL-terminated name.
    fn long_name(&mut self, what: &str) -> io::Result<String> {
        let data = self.content_to_vec(MAX_NAME as u64 + 1, what)?;
        let end = data.iter().position(|&b| b == 0).unwrap_or(data.len());
        String::from_utf8(data[..end].to_vec()).map_err(|_| bad(format!("{what} is not UTF-8")))
    }
}

/// The content of the current entry of a [`TarReader`] ([`TarReader::content`]).
pub struct Content<'a, R>(&'a mut TarReader<R>);

impl<R: Read> Read for Content<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read_content(buf)
    }
}

/// Extension records read before the entry they apply to.
#[derive(Default)]
struct Extensions {
    long_name: Option<String>,
    long_link: Option<String>,
    pax: Vec<(String, Vec<u8>)>,
}

impl Extensions {
    fn pending(&self) -> bool {
        self.long_name.is_some() || self.long_link.is_some() || !self.pax.is_empty()
    }
}

/// The entry kind of a tar type flag; None for the types that are skipped.
fn kind_of(typeflag: u8, tar_compatible: bool) -> Option<Kind> {
    Some(match typeflag {
        b'0' | b'7' => Kind::File,
        0 if tar_compatible => Kind::File,
        b'1' => Kind::HardLink,
        b'2' => Kind::Symlink,
        b'3' => Kind::CharDevice,
        b'4' => Kind::BlockDevice,
        b'5' => Kind::Dir,
        b'6' => Kind::Fifo,
        _ => return None,
    })
}

/// The entry a header block describes, with the extension records that precede it.
fn entry_of(block: &[u8; 512], kind: Kind, size: u64, ext: Extensions) -> io::Result<Entry> {
    let mut name = cstr(&block[0..100])?;
    if &block[257..263] == b"ustar\0" && block[345] != 0 {
        name = format!("{}/{}", cstr(&block[345..500])?, name);
    }
    let mut entry = Entry {
        name: ext.long_name.unwrap_or(name),
        kind,
        mode: (octal(&block[100..108], "mode")? & 0o7777) as u32,
        uid: octal(&block[108..116], "uid")? as u32,
        gid: octal(&block[116..124], "gid")? as u32,
        uname: cstr(&block[265..297])?,
        gname: cstr(&block[297..329])?,
        size,
        mtime: octal(&block[136..148], "mtime")?,
        link: match ext.long_link {
            Some(link) => link,
            None => cstr(&block[157..257])?,
        },
        dev_major: octal(&block[329..337], "devmajor")? as u32,
        dev_minor: octal(&block[337..345], "devminor")? as u32,
        xattrs: Vec::new(),
        checksum: None,
    };
    for (k, v) in ext.pax {
        apply_pax(&mut entry, &k, v)?;
    }
    if entry.name.len() >= MAX_NAME || entry.link.len() >= MAX_NAME {
        return Err(bad("tar name or link target too long"));
    }
    Ok(entry)
}

/// One PAX record: names, apk's checksums, xattrs; other keys are ignored.
fn apply_pax(entry: &mut Entry, k: &str, v: Vec<u8>) -> io::Result<()> {
    let text = || String::from_utf8(v.clone()).map_err(|_| bad(format!("PAX {k} is not UTF-8")));
    match k {
        "path" => entry.name = text()?,
        "linkpath" => entry.link = text()?,
        "APK-TOOLS.checksum.SHA1" => {
            entry.checksum = Some(
                Checksum::from_sha1_hex(&text()?)
                    .ok_or_else(|| bad("bad APK-TOOLS.checksum.SHA1"))?,
            )
        }
        "APK-TOOLS.checksum.MD5" => {
            entry.checksum =
                Some(Checksum::parse(&text()?).ok_or_else(|| bad("bad APK-TOOLS.checksum.MD5"))?)
        }
        _ => {
            if let Some(x) = k.strip_prefix("SCHILY.xattr.") {
                entry.xattrs.push((x.to_string(), v));
            }
        }
    }
    Ok(())
}

/// Parses PAX records `"<len> <key>=<value>\n"`.
fn parse_pax(mut data: &[u8]) -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let sp = data
            .iter()
            .position(|&b| b == b' ')
            .ok_or_else(|| bad("malformed PAX record"))?;
        let len: usize = std::str::from_utf8(&data[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("malformed PAX record length"))?;
        if len <= sp + 1 || len > data.len() || data[len - 1] != b'\n' {
            return Err(bad("malformed PAX record"));
        }
        let rec = &data[sp + 1..len - 1];
        let eq = rec
            .iter()
            .position(|&b| b == b'=')
            .ok_or_else(|| bad("PAX record without `=`"))?;
        let key = String::from_utf8(rec[..eq].to_vec()).map_err(|_| bad("PAX key is not UTF-8"))?;
        out.push((key, rec[eq + 1..].to_vec()));
        data = &data[len..];
    }
    Ok(out)
}

/// Header fields for [`TarWriter`].
#[derive(Clone, Debug)]
pub struct Header<'a> {
    /// Name in the archive.
    pub name: &'a str,
    /// What the entry is.
    pub kind: Kind,
    /// Permission bits.
    pub mode: u32,
    /// Owner id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// Owner name.
    pub uname: &'a str,
    /// Group name.
    pub gname: &'a str,
    /// Modification time.
    pub mtime: u64,
    /// Link target.
    pub link: &'a str,
    /// Content size.
    pub size: u64,
    /// Device numbers (major, minor).
    pub dev: (u32, u32),
}

impl<'a> Header<'a> {
    /// A regular file owned by root.
    pub fn file(name: &'a str, size: u64, mode: u32, mtime: u64) -> Self {
        Header {
            name,
            kind: Kind::File,
            mode,
            uid: 0,
            gid: 0,
            uname: "root",
            gname: "root",
            mtime,
            link: "",
            size,
            dev: (0, 0),
        }
    }
}

/// Writes tar records with GNU magic (as `apk index` and abuild's tar produce).
pub struct TarWriter<W> {
    out: W,
}

/// Zero-padded octal, NUL-terminated or filling the whole field, like apk's `put_octal`.
fn put_octal_as(field: &mut [u8], v: u64, nul: bool) {
    let digits = field.len() - usize::from(nul);
    let s = format!("{v:0digits$o}");
    let s = s.as_bytes();
    let start = s.len().saturating_sub(digits);
    field[..digits].copy_from_slice(&s[start..]);
    if nul {
        field[digits] = 0;
    }
}

fn put_octal(field: &mut [u8], v: u64) {
    put_octal_as(field, v, true);
}

fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let body = key.len() + value.len() + 3; // ' ' '=' '\n'
    let mut len = body + body.to_string().len();
    if len.to_string().len() + body != len {
        len = body + len.to_string().len();
    }
    let mut r = format!("{len} {key}=").into_bytes();
    r.extend_from_slice(value);
    r.push(b'\n');
    r
}

impl<W: Write> TarWriter<W> {
    /// Writes to `out`.
    pub fn new(out: W) -> Self {
        TarWriter { out }
    }

    /// The output.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }

    /// The output, once written.
    pub fn into_inner(self) -> W {
        self.out
    }

    fn raw_header(
        &mut self,
        h: &Header<'_>,
        name: &str,
        link: &str,
        typeflag: u8,
    ) -> io::Result<()> {
        let mut b = [0u8; 512];
        let n = name.as_bytes();
        b[..n.len().min(100)].copy_from_slice(&n[..n.len().min(100)]);
        put_octal(&mut b[100..108], u64::from(h.mode));
        put_octal(&mut b[108..116], u64::from(h.uid));
        put_octal(&mut b[116..124], u64::from(h.gid));
        // apk-tools writes size and mtime over all 12 bytes (`apk_tar_write_entry`).
        put_octal_as(&mut b[124..136], h.size, false);
        put_octal_as(&mut b[136..148], h.mtime, false);
        b[156] = typeflag;
        let l = link.as_bytes();
        b[157..157 + l.len().min(100)].copy_from_slice(&l[..l.len().min(100)]);
        b[257..265].copy_from_slice(b"ustar  \0");
        let (u, g) = (h.uname.as_bytes(), h.gname.as_bytes());
        b[265..265 + u.len().min(31)].copy_from_slice(&u[..u.len().min(31)]);
        b[297..297 + g.len().min(31)].copy_from_slice(&g[..g.len().min(31)]);
        if matches!(h.kind, Kind::CharDevice | Kind::BlockDevice) {
            put_octal(&mut b[329..337], u64::from(h.dev.0));
            put_octal(&mut b[337..345], u64::from(h.dev.1));
        }
        b[148..156].fill(b' ');
        let sum: u64 = b.iter().map(|&x| u64::from(x)).sum();
        let s = format!("{sum:06o}\0 ");
        b[148..156].copy_from_slice(s.as_bytes());
        self.out.write_all(&b)
    }

    fn pad(&mut self, size: u64) -> io::Result<()> {
        let p = ((512 - size % 512) % 512) as usize;
        self.out.write_all(&[0u8; 512][..p])
    }

    /// Writes one entry, with PAX records first when `pax` is not empty or names are long.
    /// The content (for files) must then be written with [`Self::content`].
    pub fn header(&mut self, h: &Header<'_>, pax: &[(&str, &[u8])]) -> io::Result<()> {
        let mut records = Vec::new();
        for (k, v) in pax {
            records.extend(pax_record(k, v));
        }
        if h.name.len() > 100 {
            records.extend(pax_record("path", h.name.as_bytes()));
        }
        if h.link.len() > 100 {
            records.extend(pax_record("linkpath", h.link.as_bytes()));
        }
        if !records.is_empty() {
            let ph = Header {
                size: records.len() as u64,
                kind: Kind::File,
                ..h.clone()
            };
            self.raw_header(&ph, "PaxHeader", "", b'x')?;
            self.out.write_all(&records)?;
            self.pad(records.len() as u64)?;
        }
        let t = match h.kind {
            Kind::File => b'0',
            Kind::HardLink => b'1',
            Kind::Symlink => b'2',
            Kind::CharDevice => b'3',
            Kind::BlockDevice => b'4',
            Kind::Dir => b'5',
            Kind::Fifo => b'6',
        };
        self.raw_header(h, h.name, h.link, t)
    }

    /// Writes a whole content (exactly the header's size) and its padding.
    pub fn content(&mut self, data: &[u8]) -> io::Result<()> {
        self.out.write_all(data)?;
        self.pad(data.len() as u64)
    }

    /// Streams content of `size` bytes from `src`.
    pub fn content_from(&mut self, src: &mut dyn Read, size: u64) -> io::Result<()> {
        let n = io::copy(&mut src.take(size), &mut self.out)?;
        if n != size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shrank while archiving",
            ));
        }
        self.pad(size)
    }

    /// A whole file entry.
    pub fn file(&mut self, h: &Header<'_>, data: &[u8]) -> io::Result<()> {
        let h = Header {
            size: data.len() as u64,
            ..h.clone()
        };
        self.header(&h, &[])?;
        self.content(data)
    }

    /// The two zero blocks that end an archive.
    pub fn finish(&mut self) -> io::Result<()> {
        self.out.write_all(&[0u8; 1024])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_numbers_are_laid_out_like_apk_tools() {
        // apk-tools 2.14 `apk_tar_write_entry`: mode/uid/gid 7 digits + NUL, size and mtime 12
        // digits without NUL, checksum 6 digits + NUL + space.
        let mut t = TarWriter::new(Vec::new());
        t.file(&Header::file("a", 0, 0o755, 1_700_000_000), b"hello")
            .unwrap();
        let b = t.into_inner();
        assert_eq!(&b[100..108], b"0000755\0");
        assert_eq!(&b[108..124], b"0000000\x000000000\x00");
        assert_eq!(&b[124..136], b"000000000005");
        assert_eq!(&b[136..148], b"014524770400");
        assert_eq!(&b[154..156], b"\0 ");
        let e = read_first(&b);
        assert_eq!((e.0, e.1, e.2), (5, 1_700_000_000, 0o755));
    }

    fn read_first(b: &[u8]) -> (u64, u64, u32) {
        let size = octal(&b[124..136], "size").unwrap();
        let mtime = octal(&b[136..148], "mtime").unwrap();
        let mode = octal(&b[100..108], "mode").unwrap() as u32;
        (size, mtime, mode)
    }

    #[test]
    fn pax_lengths_are_self_consistent() {
        for n in [0usize, 1, 5, 90, 94, 95, 96, 990, 995] {
            let v = vec![b'a'; n];
            let r = pax_record("k", &v);
            let parsed = parse_pax(&r).unwrap();
            assert_eq!(parsed[0].1, v);
        }
    }

    /// A `K` record (GNU long link target), then a symlink whose header holds a short target.
    fn long_link_archive(target: &str) -> Vec<u8> {
        let mut t = TarWriter::new(Vec::new());
        let mut data = target.as_bytes().to_vec();
        data.push(0);
        let k = Header::file("././@LongLink", data.len() as u64, 0, 0);
        t.raw_header(&k, k.name, "", b'K').unwrap();
        t.content(&data).unwrap();
        let link = Header {
            kind: Kind::Symlink,
            link: "short",
            ..Header::file("etc/link", 0, 0o777, 0)
        };
        t.raw_header(&link, link.name, link.link, b'2').unwrap();
        t.finish().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&t.into_inner()).unwrap();
        gz.finish().unwrap()
    }

    fn first_entry(reader: &mut TarReader<&[u8]>) -> Entry {
        match reader.next_event().unwrap() {
            Event::Entry(e) => e,
            Event::MemberEnd => panic!("no entry"),
        }
    }

    #[test]
    fn long_link_records_are_read_only_when_tar_compatible_as_apk_ignores_them() {
        let target = "t".repeat(150);
        let bytes = long_link_archive(&target);
        let mut apk = TarReader::new(GzMembers::new(&bytes[..]).unwrap());
        assert_eq!(first_entry(&mut apk).link, "short");
        let mut tar = TarReader::new(GzMembers::new(&bytes[..]).unwrap()).tar_compatible();
        let e = first_entry(&mut tar);
        assert_eq!((e.name.as_str(), e.kind), ("etc/link", Kind::Symlink));
        assert_eq!(e.link, target);
        assert!(!tar.archive_ended());
        assert!(matches!(tar.next_event().unwrap(), Event::MemberEnd));
        assert!(tar.archive_ended());
    }

    /// A one-file archive, gzipped, after `edit` changed its header block.
    fn gzipped_with_edited_header(edit: impl Fn(&mut [u8])) -> Vec<u8> {
        let mut t = TarWriter::new(Vec::new());
        t.file(&Header::file("etc/motd", 5, 0o644, 0), b"hello")
            .unwrap();
        t.finish().unwrap();
        let mut tar = t.into_inner();
        edit(&mut tar[..512]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        gz.finish().unwrap()
    }

    #[test]
    fn a_header_is_checked_against_its_checksum_field() {
        let intact = gzipped_with_edited_header(|_| {});
        let mut r = TarReader::new(GzMembers::new(&intact[..]).unwrap());
        assert_eq!(first_entry(&mut r).name, "etc/motd");
        // One byte of the name changed, before and after the checksum field (148..156).
        for at in [3, 300] {
            let bytes = gzipped_with_edited_header(|h| h[at] ^= 1);
            let mut r = TarReader::new(GzMembers::new(&bytes[..]).unwrap());
            let err = r.next_event().unwrap_err();
            assert_eq!(err.to_string(), "tar header checksum mismatch", "byte {at}");
        }
        // The stored sum itself is not counted: a field of other spaces still matches.
        let bytes = gzipped_with_edited_header(|h| {
            let stored = octal(&h[148..156], "checksum").unwrap();
            let text = format!("{stored:o}");
            h[148..156].fill(b' ');
            h[148..148 + text.len()].copy_from_slice(text.as_bytes());
            h[148 + text.len()] = 0;
        });
        let mut r = TarReader::new(GzMembers::new(&bytes[..]).unwrap());
        assert_eq!(first_entry(&mut r).name, "etc/motd");
    }
}
