//! Writes an apkovl (`<hostname>.apkovl.tar.gz`, as lbu names it) from a directory tree, a
//! world list and a hostname: the files lbu would have committed, owned by root, every
//! timestamp the build's epoch, entries sorted, so the same inputs give the same bytes.

use super::SdError;
use crate::apk::tar::{Header, Kind, TarWriter};
use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// What goes into the apkovl; each part optional.
#[derive(Clone, Debug, Default)]
pub struct OverlaySpec {
    /// A tree copied as is (`etc/...`, and anything else lbu may carry).
    pub tree: Option<PathBuf>,
    /// `etc/apk/world`, one package per line (replaces the tree's).
    pub world: Vec<String>,
    /// `etc/hostname` (replaces the tree's); also names the file.
    pub hostname: Option<String>,
    /// More files: path in the apkovl, content, mode (profiles add these).
    pub files: Vec<(String, Vec<u8>, u32)>,
}

enum Entry {
    Dir(u32),
    File(Vec<u8>, u32),
    Symlink(String),
}

fn collect(dir: &Path, rel: &str, out: &mut BTreeMap<String, Entry>) -> Result<(), SdError> {
    let rd = std::fs::read_dir(dir).map_err(|e| SdError::read(dir, e))?;
    for e in rd {
        let e = e.map_err(|e| SdError::read(dir, e))?;
        let path = e.path();
        let name = format!("{rel}{}", e.file_name().to_string_lossy());
        let meta = std::fs::symlink_metadata(&path).map_err(|e| SdError::read(&path, e))?;
        let mode = meta.permissions().mode() & 0o7777;
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&path).map_err(|e| SdError::read(&path, e))?;
            out.insert(name, Entry::Symlink(target.to_string_lossy().into_owned()));
        } else if meta.is_dir() {
            out.insert(name.clone(), Entry::Dir(mode));
            collect(&path, &format!("{name}/"), out)?;
        } else if meta.is_file() {
            let data = std::fs::read(&path).map_err(|e| SdError::read(&path, e))?;
            out.insert(name, Entry::File(data, mode));
        }
        // Devices, fifos and sockets have no place in an apkovl: left out.
    }
    Ok(())
}

/// Adds `path`'s missing parent directories (mode 0755).
fn parents(out: &mut BTreeMap<String, Entry>, path: &str) {
    let mut at = 0;
    while let Some(i) = path[at..].find('/') {
        out.entry(path[..at + i].to_string())
            .or_insert(Entry::Dir(0o755));
        at += i + 1;
    }
}

/// The apkovl's file name and bytes.
pub fn write(spec: &OverlaySpec, epoch: u64) -> Result<(String, Vec<u8>), SdError> {
    let mut entries = BTreeMap::new();
    if let Some(t) = &spec.tree {
        collect(t, "", &mut entries)?;
    }
    let mut put = |path: &str, data: Vec<u8>, mode: u32| {
        parents(&mut entries, path);
        entries.insert(path.to_string(), Entry::File(data, mode));
    };
    if !spec.world.is_empty() {
        put(
            "etc/apk/world",
            format!("{}\n", spec.world.join("\n")).into(),
            0o644,
        );
    }
    if let Some(h) = &spec.hostname {
        put("etc/hostname", format!("{h}\n").into(), 0o644);
    }
    for (path, data, mode) in &spec.files {
        put(path.trim_start_matches('/'), data.clone(), *mode);
    }
    let name = format!(
        "{}.apkovl.tar.gz",
        spec.hostname.as_deref().unwrap_or("localhost")
    );
    let path = PathBuf::from(&name);
    let werr = |e| SdError::Write {
        path: path.clone(),
        source: e,
    };
    let gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::best());
    let mut tar = TarWriter::new(gz);
    for (path, entry) in &entries {
        let dir_name;
        let (kind, mode, link, data): (Kind, u32, &str, &[u8]) = match entry {
            Entry::Dir(m) => (Kind::Dir, *m, "", &[]),
            Entry::File(d, m) => (Kind::File, *m, "", d),
            Entry::Symlink(t) => (Kind::Symlink, 0o777, t.as_str(), &[]),
        };
        let name = if matches!(entry, Entry::Dir(_)) {
            dir_name = format!("{path}/");
            dir_name.as_str()
        } else {
            path.as_str()
        };
        let h = Header {
            name,
            kind,
            mode,
            link,
            size: data.len() as u64,
            ..Header::file(name, 0, mode, epoch)
        };
        tar.file(&h, data).map_err(werr)?;
    }
    tar.finish().map_err(werr)?;
    let mut gz = tar.into_inner();
    gz.flush().map_err(werr)?;
    Ok((name, gz.finish().map_err(werr)?))
}
