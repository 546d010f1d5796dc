//! A reproducible cpio "newc" writer, the format the kernel unpacks into its rootfs.
//!
//! Reproducible means: the same inputs give the same bytes. Entries are sorted by path (a parent
//! sorts before its children), owners are 0, mtimes are one fixed value and inode numbers are
//! assigned in order. That lets CI compare initramfs images and caches stay valid.

use std::collections::BTreeMap;
use std::io::{self, Write};

/// What an entry is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    Dir,
    File(Vec<u8>),
    Symlink(String),
    CharDev { major: u32, minor: u32 },
}

/// One archive member. `path` is relative (`init`, `lib/modules/x`), without a leading `/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub mode: u32,
    pub kind: EntryKind,
}

/// An in-memory archive: add entries in any order, write them sorted.
#[derive(Default, Debug)]
pub struct Archive {
    entries: BTreeMap<String, Entry>,
}

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;

fn normalise(path: &str) -> Option<String> {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.is_empty() || parts.contains(&"..") {
        return None;
    }
    Some(parts.join("/"))
}

impl Archive {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) an entry, creating missing parent directories with mode 0755.
    /// Paths with `..` are refused: the archive must not describe anything outside its root.
    pub fn add(&mut self, path: &str, mode: u32, kind: EntryKind) -> io::Result<()> {
        let path = normalise(path).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bad archive path {}", crate::quote::quoted(path)),
            )
        })?;
        let mut parent = String::new();
        for part in path
            .split('/')
            .collect::<Vec<_>>()
            .split_last()
            .map(|(_, p)| p.to_vec())
            .unwrap_or_default()
        {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(part);
            self.entries.entry(parent.clone()).or_insert(Entry {
                mode: 0o755,
                kind: EntryKind::Dir,
            });
        }
        self.entries.insert(
            path,
            Entry {
                mode: mode & 0o7777,
                kind,
            },
        );
        Ok(())
    }

    pub fn dir(&mut self, path: &str) -> io::Result<()> {
        self.add(path, 0o755, EntryKind::Dir)
    }

    pub fn file(&mut self, path: &str, mode: u32, data: Vec<u8>) -> io::Result<()> {
        self.add(path, mode, EntryKind::File(data))
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> io::Result<()> {
        self.add(path, 0o777, EntryKind::Symlink(target.to_string()))
    }

    pub fn contains(&self, path: &str) -> bool {
        normalise(path).is_some_and(|p| self.entries.contains_key(&p))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// Writes the archive in newc format with the trailer; every mtime is `mtime`.
    pub fn write_to(&self, out: &mut dyn Write, mtime: u32) -> io::Result<u64> {
        let mut w = Counting {
            inner: out,
            written: 0,
        };
        for (ino, (path, entry)) in self.entries.iter().enumerate() {
            let (mode, data, rdev): (u32, &[u8], (u32, u32)) = match &entry.kind {
                EntryKind::Dir => (S_IFDIR | entry.mode, &[], (0, 0)),
                EntryKind::File(d) => (S_IFREG | entry.mode, d, (0, 0)),
                EntryKind::Symlink(t) => (S_IFLNK | 0o777, t.as_bytes(), (0, 0)),
                EntryKind::CharDev { major, minor } => {
                    (S_IFCHR | entry.mode, &[], (*major, *minor))
                }
            };
            let nlink = if matches!(entry.kind, EntryKind::Dir) {
                2
            } else {
                1
            };
            write_header(
                &mut w,
                ino as u32 + 1,
                mode,
                nlink,
                mtime,
                data.len() as u32,
                rdev,
                path,
            )?;
            w.write_all(data)?;
            pad(&mut w)?;
        }
        write_header(&mut w, 0, 0, 1, 0, 0, (0, 0), "TRAILER!!!")?;
        Ok(w.written)
    }
}

#[allow(clippy::too_many_arguments)]
fn write_header(
    w: &mut Counting<'_>,
    ino: u32,
    mode: u32,
    nlink: u32,
    mtime: u32,
    size: u32,
    rdev: (u32, u32),
    name: &str,
) -> io::Result<()> {
    let namesize = name.len() as u32 + 1;
    let fields = [
        ino, mode, 0, 0, nlink, mtime, size, 0, 0, rdev.0, rdev.1, namesize, 0,
    ];
    let mut header = String::with_capacity(110);
    header.push_str("070701");
    for f in fields {
        header.push_str(&format!("{f:08x}"));
    }
    w.write_all(header.as_bytes())?;
    w.write_all(name.as_bytes())?;
    w.write_all(&[0])?;
    pad(w)
}

fn pad(w: &mut Counting<'_>) -> io::Result<()> {
    let rem = (4 - (w.written % 4) as usize) % 4;
    w.write_all(&[0u8; 3][..rem])
}

struct Counting<'a> {
    inner: &'a mut dyn Write,
    written: u64,
}

impl Write for Counting<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal newc reader, enough to check what the writer produced.
    fn read(bytes: &[u8]) -> Vec<(String, u32, Vec<u8>)> {
        let mut out = Vec::new();
        let mut pos = 0;
        loop {
            let h = std::str::from_utf8(&bytes[pos..pos + 110]).unwrap();
            assert_eq!(&h[..6], "070701");
            let field = |i: usize| u32::from_str_radix(&h[6 + i * 8..14 + i * 8], 16).unwrap();
            let (mode, size, namesize) = (field(1), field(6) as usize, field(11) as usize);
            let name = std::str::from_utf8(&bytes[pos + 110..pos + 110 + namesize - 1])
                .unwrap()
                .to_string();
            pos = (pos + 110 + namesize + 3) & !3;
            let data = bytes[pos..pos + size].to_vec();
            pos = (pos + size + 3) & !3;
            if name == "TRAILER!!!" {
                assert_eq!(pos, bytes.len());
                return out;
            }
            out.push((name, mode, data));
        }
    }

    #[test]
    fn writes_sorted_entries_with_parents_and_trailer() {
        let mut a = Archive::new();
        a.file("sbin/x", 0o755, b"hello".to_vec()).unwrap();
        a.symlink("bin/sh", "busybox").unwrap();
        a.file("/init", 0o755, vec![1, 2, 3]).unwrap();
        let mut buf = Vec::new();
        let n = a.write_to(&mut buf, 0).unwrap();
        assert_eq!(n as usize, buf.len());
        let entries = read(&buf);
        let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(names, ["bin", "bin/sh", "init", "sbin", "sbin/x"]);
        assert_eq!(entries[1].1, S_IFLNK | 0o777);
        assert_eq!(entries[1].2, b"busybox");
        assert_eq!(entries[4].1, S_IFREG | 0o755);
        assert_eq!(entries[4].2, b"hello");
        assert_eq!(entries[0].1, S_IFDIR | 0o755);
    }

    #[test]
    fn same_input_same_bytes_and_no_escape() {
        let build = |order: &[&str]| {
            let mut a = Archive::new();
            for p in order {
                a.file(p, 0o644, p.as_bytes().to_vec()).unwrap();
            }
            let mut buf = Vec::new();
            a.write_to(&mut buf, 0).unwrap();
            buf
        };
        assert_eq!(build(&["a/b", "c", "a/a"]), build(&["c", "a/a", "a/b"]));
        let mut a = Archive::new();
        assert!(a.file("../etc/passwd", 0o644, vec![]).is_err());
        assert!(a.file("a/../../x", 0o644, vec![]).is_err());
        assert!(a.file("/", 0o644, vec![]).is_err());
    }
}
