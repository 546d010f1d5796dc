//! The apkovl format lbu writes: `tar -c --no-recursion -T - -z` of the selected paths, run in
//! the root. Members are root-relative names in the order given, each directory an entry of
//! its own (no recursion), symlinks as symlinks, a file linked to one already archived as a
//! hard link, owner ids with their names from the root's own `etc/passwd` and `etc/group`, and
//! the files' modes and modification times. Compressed with gzip.
//!
//! [`write_apkovl`] writes to any stream, so a caller can wrap it (an encryptor).

use super::select::Selected;
use crate::apk::tar::{Header, Kind, TarWriter};
use crate::fsutil::Root;
use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// Owner and group names by id, from a root's `etc/passwd` and `etc/group`.
pub struct Names {
    users: HashMap<u32, String>,
    groups: HashMap<u32, String>,
}

impl Names {
    pub fn load(root: &Root) -> Names {
        let table = |rel: &str| -> HashMap<u32, String> {
            let text = root.read_to_string(Path::new(rel)).unwrap_or_default();
            let mut map = HashMap::new();
            for line in text.lines() {
                let mut f = line.split(':');
                let (Some(name), Some(_), Some(id)) = (f.next(), f.next(), f.next()) else {
                    continue;
                };
                if let Ok(id) = id.parse() {
                    map.entry(id).or_insert_with(|| name.to_string());
                }
            }
            map
        };
        Names {
            users: table("etc/passwd"),
            groups: table("etc/group"),
        }
    }

    fn user(&self, id: u32) -> &str {
        self.users.get(&id).map_or("", String::as_str)
    }

    fn group(&self, id: u32) -> &str {
        self.groups.get(&id).map_or("", String::as_str)
    }
}

/// What [`write_apkovl`] wrote.
#[derive(Debug, Default)]
pub struct Written {
    pub entries: usize,
    /// Content bytes before compression.
    pub content: u64,
    /// Paths that vanished or cannot be archived (sockets), left out with why.
    pub skipped: Vec<String>,
}

/// Writes the gzip'd tar of `files` (relative to `root`) to `out`.
pub fn write_apkovl(root: &Root, files: &[Selected], out: &mut dyn Write) -> io::Result<Written> {
    let names = Names::load(root);
    let mut gz = flate2::write::GzEncoder::new(out, flate2::Compression::default());
    let mut tar = TarWriter::new(&mut gz);
    let mut written = Written::default();
    let mut linked: HashMap<(u64, u64), String> = HashMap::new();
    for sel in files {
        let host = root.path().join(sel.path.trim_end_matches('/'));
        let meta = match fs::symlink_metadata(&host) {
            Ok(m) => m,
            Err(e) => {
                written.skipped.push(format!("{}: {e}", sel.path));
                continue;
            }
        };
        let ft = meta.file_type();
        let mut name = sel.path.trim_end_matches('/').to_string();
        let link_text;
        let (kind, link) = if ft.is_dir() {
            name.push('/');
            (Kind::Dir, "")
        } else if ft.is_symlink() {
            link_text = fs::read_link(&host)?
                .into_os_string()
                .into_string()
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "link target not UTF-8"))?;
            (Kind::Symlink, link_text.as_str())
        } else if ft.is_file() {
            let key = (meta.dev(), meta.ino());
            match linked.get(&key) {
                Some(first) if meta.nlink() > 1 => {
                    link_text = first.clone();
                    (Kind::HardLink, link_text.as_str())
                }
                _ => {
                    if meta.nlink() > 1 {
                        linked.insert(key, name.clone());
                    }
                    (Kind::File, "")
                }
            }
        } else if ft.is_char_device() {
            (Kind::CharDevice, "")
        } else if ft.is_block_device() {
            (Kind::BlockDevice, "")
        } else if ft.is_fifo() {
            (Kind::Fifo, "")
        } else {
            written
                .skipped
                .push(format!("{}: a socket cannot be archived", sel.path));
            continue;
        };
        let size = if kind == Kind::File { meta.len() } else { 0 };
        let rdev = meta.rdev();
        let h = Header {
            name: &name,
            kind,
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            uname: names.user(meta.uid()),
            gname: names.group(meta.gid()),
            mtime: meta.mtime().max(0) as u64,
            link,
            size,
            dev: (
                rustix::fs::major(rdev as _) as u32,
                rustix::fs::minor(rdev as _) as u32,
            ),
        };
        tar.header(&h, &[])?;
        if kind == Kind::File {
            let mut f = fs::File::open(&host)?;
            tar.content_from(&mut f, size)?;
            written.content += size;
        }
        written.entries += 1;
    }
    tar.finish()?;
    gz.try_finish()?;
    Ok(written)
}
