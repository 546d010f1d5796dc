//! A minimal squashfs 4.0 writer for the cached root: zlib blocks, no fragments, no xattrs, no
//! export table.
//!
//! Why squashfs: every kernel ramboot boots has it for the modloop (the Debian arm64 6.1 kernel
//! builds squashfs with zlib, lz4, lzo, xz and zstd; its erofs has lz4 only, and Alpine's Pi
//! kernels build squashfs with zlib), so the module is already in the initramfs. Why its own
//! writer: `mksquashfs` is not in the initramfs and squashfs-tools' code is far bigger than this.
//! What is left out costs some bytes only: without fragments a small file's tail is its own
//! compressed block, which squashfs does not pad.
//!
//! Layout written: superblock, data blocks in tree order, inode table, directory table, id
//! table, its index. Inodes are written children first (a directory's listing needs its
//! children's inode references); numbers are assigned in the same order beforehand so that a
//! directory knows its parent's number. The root is the last inode.

use super::deflate;
use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use std::ffi::CString;
use std::io::{self, Seek, SeekFrom, Write};

const MAGIC: u32 = 0x7371_7368;
const BLOCK_LOG: u16 = 17;
const BLOCK_SIZE: usize = 1 << BLOCK_LOG;
const METADATA_SIZE: usize = 8192;
const ZLIB: u16 = 1;
/// Superblock flags: no fragments, no xattrs.
const FLAGS: u16 = 1 << 4 | 1 << 9;
const NONE: u64 = u64::MAX;
const SUPERBLOCK_LEN: u64 = 96;
/// Data blocks stored as is carry this bit in their size.
const RAW_DATA: u32 = 1 << 24;
/// Metadata blocks stored as is carry this bit in their header.
const RAW_META: u16 = 1 << 15;

/// Basic inode types (an extended one adds 7).
const DIR: u16 = 1;
const REG: u16 = 2;
const SYMLINK: u16 = 3;
const BLKDEV: u16 = 4;
const CHRDEV: u16 = 5;
const FIFO: u16 = 6;
const SOCKET: u16 = 7;

/// What the writer produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// Bytes of the image (padded to 4 KiB).
    pub bytes: u64,
    /// Inodes written.
    pub inodes: u32,
    /// Bytes of file content read.
    pub content: u64,
}

enum Kind {
    Dir(Vec<usize>),
    /// `stamp`: inode, change time and size when scanned; the content must still match it.
    File {
        size: u64,
        path: CString,
        stamp: Stamp,
    },
    Symlink(Vec<u8>),
    Device {
        char: bool,
        rdev: u64,
    },
    Fifo,
    Socket,
    /// Another name of an earlier regular file.
    Link(usize),
}

/// A file's inode, change time (seconds, nanoseconds) and size.
type Stamp = (u64, i64, i64, u64);

fn stamp(st: &rustix::fs::Stat) -> Stamp {
    (
        st.st_ino,
        st.st_ctime,
        st.st_ctime_nsec as i64,
        st.st_size as u64,
    )
}

struct Node {
    name: Vec<u8>,
    kind: Kind,
    mode: u16,
    uid: u32,
    gid: u32,
    mtime: u32,
    nlink: u32,
    ino: u32,
    /// The inode reference once written.
    written: Option<u64>,
}

impl Node {
    fn basic_type(&self, nodes: &[Node]) -> u16 {
        match &self.kind {
            Kind::Dir(_) => DIR,
            Kind::File { .. } => REG,
            Kind::Symlink(_) => SYMLINK,
            Kind::Device { char: true, .. } => CHRDEV,
            Kind::Device { char: false, .. } => BLKDEV,
            Kind::Fifo => FIFO,
            Kind::Socket => SOCKET,
            Kind::Link(first) => nodes[*first].basic_type(nodes),
        }
    }
}

/// A table of metadata blocks (8 KiB each, compressed when that helps) being filled.
#[derive(Default)]
struct Meta {
    done: Vec<u8>,
    current: Vec<u8>,
}

impl Meta {
    /// Where the next byte goes: (the block's offset in the table, offset inside the block).
    fn position(&self) -> (u32, u16) {
        (self.done.len() as u32, self.current.len() as u16)
    }

    fn put(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let n = bytes.len().min(METADATA_SIZE - self.current.len());
            self.current.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if self.current.len() == METADATA_SIZE {
                self.flush();
            }
        }
    }

    fn flush(&mut self) {
        if self.current.is_empty() {
            return;
        }
        let z = deflate::zlib(&self.current);
        let (header, body) = if z.len() < self.current.len() {
            (z.len() as u16, &z[..])
        } else {
            (self.current.len() as u16 | RAW_META, &self.current[..])
        };
        self.done.extend_from_slice(&header.to_le_bytes());
        self.done.extend_from_slice(body);
        self.current.clear();
    }

    fn finish(mut self) -> Vec<u8> {
        self.flush();
        self.done
    }
}

struct Writer<'o, O: Write> {
    out: &'o mut O,
    /// Where the next data block goes (absolute).
    at: u64,
    inodes: Meta,
    dirs: Meta,
    ids: Vec<u32>,
    content: u64,
}

/// The entries of a tree as scanned, numbered for writing.
pub struct Tree {
    nodes: Vec<Node>,
    count: u32,
}

/// Reads the tree under `root` (names, metadata, link targets; not file contents), leaving out
/// the paths (relative, `etc/passwd`) for which `skip` is true and not crossing into other
/// mounts. Files are read later by [`write()`], which refuses any that changed in between.
pub fn scan_tree(root: BorrowedFd<'_>, skip: &dyn Fn(&[u8]) -> bool) -> io::Result<Tree> {
    let mut nodes = Vec::new();
    let st = rustix::fs::fstat(root)?;
    nodes.push(node_from_stat(Vec::new(), &st, Kind::Dir(Vec::new())));
    let mut links = Vec::new();
    scan(root, b"", 0, st.st_dev, &mut nodes, &mut links, skip)?;
    let mut next = 1;
    number(&mut nodes, 0, &mut next);
    Ok(Tree {
        nodes,
        count: next - 1,
    })
}

/// Writes `tree` (scanned from `root`) as a squashfs image to `out` (from its start). `mtime` is
/// the image's own time. A file that changed since the scan fails the write.
pub fn write<O: Write + Seek>(
    tree: Tree,
    root: BorrowedFd<'_>,
    out: &mut O,
    mtime: u32,
) -> io::Result<Written> {
    let Tree { mut nodes, count } = tree;
    out.seek(SeekFrom::Start(SUPERBLOCK_LEN))?;
    let mut w = Writer {
        out,
        at: SUPERBLOCK_LEN,
        inodes: Meta::default(),
        dirs: Meta::default(),
        ids: Vec::new(),
        content: 0,
    };
    let root_ref = w.emit(root, &mut nodes, 0, count + 1)?;
    let inode_table = w.at;
    let inodes = std::mem::take(&mut w.inodes).finish();
    w.out.write_all(&inodes)?;
    let dir_table = inode_table + inodes.len() as u64;
    let dirs = std::mem::take(&mut w.dirs).finish();
    w.out.write_all(&dirs)?;
    // The id table: metadata blocks of u32 ids, then the index of their positions.
    let mut id_meta = Meta::default();
    let mut index = Vec::new();
    for chunk in w.ids.chunks(METADATA_SIZE / 4) {
        let bytes: Vec<u8> = chunk.iter().flat_map(|id| id.to_le_bytes()).collect();
        index.push(dir_table + dirs.len() as u64 + id_meta.done.len() as u64);
        id_meta.put(&bytes);
        id_meta.flush();
    }
    let id_blocks = id_meta.finish();
    w.out.write_all(&id_blocks)?;
    let id_table = dir_table + dirs.len() as u64 + id_blocks.len() as u64;
    for p in &index {
        w.out.write_all(&p.to_le_bytes())?;
    }
    let used = id_table + 8 * index.len() as u64;
    let padded = used.div_ceil(4096) * 4096;
    w.out.write_all(&vec![0; (padded - used) as usize])?;

    let mut sb = Vec::with_capacity(SUPERBLOCK_LEN as usize);
    for v in [MAGIC, count, mtime, BLOCK_SIZE as u32, 0] {
        sb.extend_from_slice(&v.to_le_bytes());
    }
    for v in [ZLIB, BLOCK_LOG, FLAGS, w.ids.len() as u16, 4, 0] {
        sb.extend_from_slice(&v.to_le_bytes());
    }
    for v in [
        root_ref,
        used,
        id_table,
        NONE,
        inode_table,
        dir_table,
        NONE,
        NONE,
    ] {
        sb.extend_from_slice(&v.to_le_bytes());
    }
    let content = w.content;
    out.seek(SeekFrom::Start(0))?;
    out.write_all(&sb)?;
    out.seek(SeekFrom::Start(padded))?;
    Ok(Written {
        bytes: padded,
        inodes: count,
        content,
    })
}

fn node_from_stat(name: Vec<u8>, st: &rustix::fs::Stat, kind: Kind) -> Node {
    Node {
        name,
        kind,
        mode: (st.st_mode & 0o7777) as u16,
        uid: st.st_uid,
        gid: st.st_gid,
        mtime: st.st_mtime as u32,
        nlink: 1,
        ino: 0,
        written: None,
    }
}

/// Reads the directory `dir` (at `path`, node `at`) into `nodes`, children sorted by name as
/// squashfs's lookup expects.
fn scan(
    dir: BorrowedFd<'_>,
    path: &[u8],
    at: usize,
    dev: u64,
    nodes: &mut Vec<Node>,
    links: &mut Vec<((u64, u64), usize)>,
    skip: &dyn Fn(&[u8]) -> bool,
) -> io::Result<()> {
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(dir)? {
        let name = entry?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            names.push(name);
        }
    }
    super::sort_names(&mut names);
    let mut children = Vec::new();
    for name in names {
        let rel = if path.is_empty() {
            name.clone()
        } else {
            [path, b"/", &name].concat()
        };
        if skip(&rel) {
            continue;
        }
        let st = rustix::fs::statat(dir, &name[..], AtFlags::SYMLINK_NOFOLLOW)?;
        let index = nodes.len();
        let kind = match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => Kind::Dir(Vec::new()),
            FileType::RegularFile => {
                let key = (st.st_dev, st.st_ino);
                // Hard links are rare in a root: a list is enough (and small in the init).
                match links.iter().find(|(k, _)| *k == key).map(|&(_, i)| i) {
                    Some(first) if st.st_nlink > 1 => {
                        nodes[first].nlink += 1;
                        Kind::Link(first)
                    }
                    _ => {
                        if st.st_nlink > 1 {
                            links.push((key, index));
                        }
                        Kind::File {
                            size: st.st_size as u64,
                            path: CString::new(rel.clone())?,
                            stamp: stamp(&st),
                        }
                    }
                }
            }
            FileType::Symlink => {
                Kind::Symlink(rustix::fs::readlinkat(dir, &name[..], Vec::new())?.into_bytes())
            }
            FileType::CharacterDevice | FileType::BlockDevice => Kind::Device {
                char: FileType::from_raw_mode(st.st_mode) == FileType::CharacterDevice,
                rdev: st.st_rdev,
            },
            FileType::Fifo => Kind::Fifo,
            _ => Kind::Socket,
        };
        // A mount point is kept as an empty directory: its mount is not the root's.
        let is_dir = matches!(kind, Kind::Dir(_)) && st.st_dev == dev;
        nodes.push(node_from_stat(name.clone(), &st, kind));
        children.push(index);
        if is_dir {
            let sub = rustix::fs::openat(
                dir,
                &name[..],
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )?;
            no_xattrs(sub.as_fd(), &CString::new(rel.clone())?)?;
            scan(sub.as_fd(), &rel, index, dev, nodes, links, skip)?;
        }
    }
    if let Kind::Dir(c) = &mut nodes[at].kind {
        *c = children;
    }
    Ok(())
}

/// The image has no xattr table: a root whose files carry extended attributes (a package's
/// `security.capability`) is refused rather than kept without them.
fn no_xattrs(fd: BorrowedFd<'_>, path: &CString) -> io::Result<()> {
    match rustix::fs::flistxattr_query(fd) {
        Ok(0) | Err(rustix::io::Errno::OPNOTSUPP) => Ok(()),
        Ok(_) => Err(io::Error::other(format!(
            "/{} has extended attributes, which the cached root does not keep",
            path.to_string_lossy()
        ))),
        Err(e) => Err(e.into()),
    }
}

/// Inode numbers in write order: children before their directory.
fn number(nodes: &mut [Node], at: usize, next: &mut u32) {
    if let Kind::Dir(children) = &nodes[at].kind {
        for c in children.clone() {
            number(nodes, c, next);
        }
    }
    if !matches!(nodes[at].kind, Kind::Link(_)) {
        nodes[at].ino = *next;
        *next += 1;
    }
}

/// The Linux device number encoding squashfs stores (`new_encode_dev`).
fn encode_dev(rdev: u64) -> u32 {
    let (major, minor) = (rustix::fs::major(rdev), rustix::fs::minor(rdev));
    (minor & 0xff) | (major << 8) | ((minor & !0xff) << 12)
}

impl<O: Write> Writer<'_, O> {
    fn id(&mut self, id: u32) -> u16 {
        match self.ids.iter().position(|&i| i == id) {
            Some(i) => i as u16,
            None => {
                self.ids.push(id);
                (self.ids.len() - 1) as u16
            }
        }
    }

    /// Writes node `at` (and below) and gives its inode reference.
    fn emit(
        &mut self,
        root: BorrowedFd<'_>,
        nodes: &mut [Node],
        at: usize,
        parent: u32,
    ) -> io::Result<u64> {
        if let Kind::Link(first) = nodes[at].kind {
            return Ok(nodes[first].written.expect("a link follows its first name"));
        }
        let mut body = Vec::new();
        let put32 = |b: &mut Vec<u8>, v: u32| b.extend_from_slice(&v.to_le_bytes());
        let mut kind = nodes[at].basic_type(nodes);
        let children = match &nodes[at].kind {
            Kind::Dir(c) => Some(c.clone()),
            _ => None,
        };
        if let Some(children) = children {
            {
                let me = nodes[at].ino;
                let mut refs = Vec::new();
                for &c in &children {
                    refs.push(self.emit(root, nodes, c, me)?);
                }
                let (start, offset) = self.dirs.position();
                let listing = listing(nodes, &children, &refs);
                self.dirs.put(&listing);
                let subdirs = children
                    .iter()
                    .filter(|&&c| matches!(nodes[c].kind, Kind::Dir(_)))
                    .count() as u32;
                let size = listing.len() as u32 + 3;
                if size <= 0xffff {
                    for v in [start, 2 + subdirs] {
                        put32(&mut body, v);
                    }
                    body.extend_from_slice(&(size as u16).to_le_bytes());
                    body.extend_from_slice(&offset.to_le_bytes());
                    put32(&mut body, parent);
                } else {
                    kind += 7;
                    for v in [2 + subdirs, size, start, parent] {
                        put32(&mut body, v);
                    }
                    body.extend_from_slice(&0u16.to_le_bytes());
                    body.extend_from_slice(&offset.to_le_bytes());
                    put32(&mut body, u32::MAX);
                }
            }
        } else {
            match &nodes[at].kind {
                Kind::File { size, path, stamp } => {
                    let (size, start) = (*size, self.at);
                    let blocks = self.data(root, path, *stamp)?;
                    let nlink = nodes[at].nlink;
                    if nlink == 1 && size <= u64::from(u32::MAX) && start <= u64::from(u32::MAX) {
                        for v in [start as u32, u32::MAX, 0, size as u32] {
                            put32(&mut body, v);
                        }
                    } else {
                        kind += 7;
                        for v in [start, size, 0] {
                            body.extend_from_slice(&v.to_le_bytes());
                        }
                        for v in [nlink, u32::MAX, 0, u32::MAX] {
                            put32(&mut body, v);
                        }
                    }
                    for b in blocks {
                        put32(&mut body, b);
                    }
                }
                Kind::Symlink(target) => {
                    put32(&mut body, 1);
                    put32(&mut body, target.len() as u32);
                    body.extend_from_slice(target);
                }
                Kind::Device { rdev, .. } => {
                    put32(&mut body, 1);
                    put32(&mut body, encode_dev(*rdev));
                }
                Kind::Fifo | Kind::Socket => put32(&mut body, 1),
                Kind::Dir(_) | Kind::Link(_) => unreachable!("handled above"),
            }
        }
        let (block, offset) = self.inodes.position();
        let n = &nodes[at];
        let (uid, gid) = (self.id(n.uid), self.id(n.gid));
        let mut header = Vec::with_capacity(16 + body.len());
        for v in [kind, n.mode, uid, gid] {
            header.extend_from_slice(&v.to_le_bytes());
        }
        put32(&mut header, n.mtime);
        put32(&mut header, n.ino);
        header.extend_from_slice(&body);
        self.inodes.put(&header);
        let reference = u64::from(block) << 16 | u64::from(offset);
        nodes[at].written = Some(reference);
        Ok(reference)
    }

    /// Writes a file's content as blocks; gives their sizes as squashfs lists them.
    fn data(
        &mut self,
        root: BorrowedFd<'_>,
        path: &CString,
        scanned: Stamp,
    ) -> io::Result<Vec<u32>> {
        let size = scanned.3;
        let fd: OwnedFd = rustix::fs::openat(
            root,
            path.as_c_str(),
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let changed = |fd: BorrowedFd<'_>| -> io::Result<()> {
            if stamp(&rustix::fs::fstat(fd)?) == scanned {
                return Ok(());
            }
            let shown = path.to_string_lossy();
            Err(io::Error::other(format!(
                "/{shown} changed while the image was written"
            )))
        };
        changed(fd.as_fd())?;
        no_xattrs(fd.as_fd(), path)?;
        let mut file = std::fs::File::from(fd);
        let mut sizes = Vec::new();
        let mut left = size;
        let mut buf = vec![0u8; BLOCK_SIZE];
        while left > 0 {
            let n = left.min(BLOCK_SIZE as u64) as usize;
            io::Read::read_exact(&mut file, &mut buf[..n])?;
            let z = deflate::zlib(&buf[..n]);
            let (entry, bytes) = if z.len() < n {
                (z.len() as u32, &z[..])
            } else {
                (n as u32 | RAW_DATA, &buf[..n])
            };
            self.out.write_all(bytes)?;
            self.at += bytes.len() as u64;
            sizes.push(entry);
            left -= n as u64;
        }
        changed(file.as_fd())?;
        self.content += size;
        Ok(sizes)
    }
}

/// A directory's listing: runs of entries under a header naming their inode block and a base
/// inode number (a new run at 256 entries, at another inode block, or past an i16 distance).
fn listing(nodes: &[Node], children: &[usize], refs: &[u64]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < children.len() {
        let block = (refs[i] >> 16) as u32;
        let base = ino_of(nodes, children[i]);
        let mut j = i;
        while j < children.len()
            && j - i < 256
            && (refs[j] >> 16) as u32 == block
            && i16::try_from(i64::from(ino_of(nodes, children[j])) - i64::from(base)).is_ok()
        {
            j += 1;
        }
        for v in [(j - i - 1) as u32, block, base] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for k in i..j {
            let n = &nodes[children[k]];
            let diff = (i64::from(ino_of(nodes, children[k])) - i64::from(base)) as i16;
            out.extend_from_slice(&((refs[k] & 0xffff) as u16).to_le_bytes());
            out.extend_from_slice(&diff.to_le_bytes());
            out.extend_from_slice(&n.basic_type(nodes).to_le_bytes());
            out.extend_from_slice(&((n.name.len() - 1) as u16).to_le_bytes());
            out.extend_from_slice(&n.name);
        }
        i = j;
    }
    out
}

fn ino_of(nodes: &[Node], at: usize) -> u32 {
    match nodes[at].kind {
        Kind::Link(first) => nodes[first].ino,
        _ => nodes[at].ino,
    }
}
