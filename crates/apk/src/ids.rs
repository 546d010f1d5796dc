//! Owner names to numeric ids, the way apk-tools maps them (`src/io.c`: `apk_resolve_uid`,
//! `apk_resolve_gid`, `apk_id_cache_reset`).
//!
//! A package's tar headers carry owner names (uname/gname) and numbers. apk uses the number the
//! root's `etc/passwd`/`etc/group` give the name *at the moment it first looks the name up*, and
//! keeps that answer, a miss included, until a package script has run: a script may add users.
//! So the root's account files as they are when a file lands decide its owner, not as they were
//! when the transaction started: the base package that ships `etc/passwd` makes the names of the
//! packages after it resolve, and a name looked up before that file existed keeps its tar number
//! until the next script. `IdCache` reproduces that, answer for answer.
//!
//! The account files are read through the root, confined to it (`RESOLVE_IN_ROOT`): a symlinked
//! `etc/passwd` never reaches the host's. They are parsed as musl's `fgetpwent`/`fgetgrent` do
//! (Alpine's apk is linked with musl): a line without all its fields is skipped, the first line
//! with the name wins.

use ramboot_sys::fsutil::Root;
use rustix::fs::{FileType, OFlags};
use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::Path;

/// Account files larger than this are treated as missing (a real one is a few KiB).
const MAX_ACCOUNT_FILE: u64 = 16 << 20;

/// Owner names seen in tar headers, each looked up once.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OwnerNames {
    /// User names.
    pub users: HashSet<String>,
    /// Group names.
    pub groups: HashSet<String>,
}

impl OwnerNames {
    /// Notes a header's owner and group names.
    pub fn add(&mut self, user: &str, group: &str) {
        if !self.users.contains(user) {
            self.users.insert(user.to_string());
        }
        if !self.groups.contains(group) {
            self.groups.insert(group.to_string());
        }
    }
}

/// One cached answer: the generation it belongs to, and the id (None: the name is not there).
type Cached = (u32, Option<u32>);

/// apk's `apk_id_cache`: names looked up in the root's account files, kept until [`reset`].
///
/// [`reset`]: IdCache::reset
pub(crate) struct IdCache {
    generation: u32,
    users: HashMap<String, Cached>,
    groups: HashMap<String, Cached>,
}

impl Default for IdCache {
    fn default() -> Self {
        IdCache {
            generation: 1,
            users: HashMap::new(),
            groups: HashMap::new(),
        }
    }
}

/// Which account file.
#[derive(Clone, Copy)]
enum Accounts {
    /// `name:passwd:uid:gid:gecos:dir:shell`
    Passwd,
    /// `name:passwd:gid:members`
    Group,
}

impl Accounts {
    fn path(self) -> &'static str {
        match self {
            Accounts::Passwd => "etc/passwd",
            Accounts::Group => "etc/group",
        }
    }
}

impl IdCache {
    /// The uid for `name`, or `default` (the tar header's number) when the root has no such user.
    pub fn uid(&mut self, root: &Root, name: &str, default: u32) -> u32 {
        let generation = self.generation;
        lookup(&mut self.users, generation, root, Accounts::Passwd, name).unwrap_or(default)
    }

    /// The gid for `name`, or `default`.
    pub fn gid(&mut self, root: &Root, name: &str, default: u32) -> u32 {
        let generation = self.generation;
        lookup(&mut self.groups, generation, root, Accounts::Group, name).unwrap_or(default)
    }

    /// Looks every name up now (apk does as it parses each header), so that later answers come
    /// from the account files as they are at this moment.
    pub fn look_up_all(&mut self, root: &Root, names: &OwnerNames) {
        for u in &names.users {
            self.uid(root, u, 0);
        }
        for g in &names.groups {
            self.gid(root, g, 0);
        }
    }

    /// Forgets every answer (after a package script ran: it may have added users).
    pub fn reset(&mut self) {
        self.generation = self.generation.wrapping_add(1).max(1);
    }
}

fn lookup(
    cache: &mut HashMap<String, Cached>,
    generation: u32,
    root: &Root,
    file: Accounts,
    name: &str,
) -> Option<u32> {
    if let Some(&(g, id)) = cache.get(name) {
        if g == generation {
            return id;
        }
    }
    let id = read_account_file(root, file.path()).and_then(|text| find_id(&text, file, name));
    cache.insert(name.to_string(), (generation, id));
    id
}

/// `rel` opened inside the root, read if it is a regular file of sane size.
fn read_account_file(root: &Root, rel: &str) -> Option<Vec<u8>> {
    // Non-blocking: a fifo there must not stall the install.
    let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK;
    let fd = root.open_at(Path::new(rel), flags).ok()?;
    let st = rustix::fs::fstat(&fd).ok()?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile
        || st.st_size as u64 > MAX_ACCOUNT_FILE
    {
        return None;
    }
    let mut data = Vec::new();
    std::fs::File::from(fd)
        .take(MAX_ACCOUNT_FILE)
        .read_to_end(&mut data)
        .ok()?;
    Some(data)
}

/// The id of the first well-formed line for `name`, as musl's `getpwent`/`getgrent` parse them.
fn find_id(text: &[u8], file: Accounts, name: &str) -> Option<u32> {
    text.split_inclusive(|&b| b == b'\n')
        .filter_map(|line| parse_line(line, file))
        .find(|(n, _)| *n == name.as_bytes())
        .map(|(_, id)| id)
}

/// (name, id) of one line, or None when musl would skip it. musl drops the line's last byte
/// (meant to be its newline), reads it as a C string, and looks for the name's `:` from the
/// second byte on.
fn parse_line(line: &[u8], file: Accounts) -> Option<(&[u8], u32)> {
    let line = &line[..line.len().saturating_sub(1)];
    let line = &line[..line.iter().position(|&b| b == 0).unwrap_or(line.len())];
    let name_end = 1 + line.get(1..)?.iter().position(|&b| b == b':')?;
    let (name, rest) = (&line[..name_end], &line[name_end + 1..]);
    let mut fields = rest.splitn(3, |&b| b == b':');
    fields.next()?; // password
    let id = musl_atou(fields.next()?)?;
    let rest = fields.next()?;
    if let Accounts::Passwd = file {
        // A numeric gid, then gecos, dir and shell must follow.
        let mut more = rest.splitn(4, |&b| b == b':');
        musl_atou(more.next()?)?;
        more.next()?;
        more.next()?;
        more.next()?;
    }
    Some((name, id))
}

/// musl's `atou`: the leading digits (none: 0), wrapping. The field must hold nothing else,
/// since musl wants the `:` right after the number.
fn musl_atou(field: &[u8]) -> Option<u32> {
    let mut id: u32 = 0;
    for &b in field {
        if !b.is_ascii_digit() {
            return None;
        }
        id = id.wrapping_mul(10).wrapping_add(u32::from(b - b'0'));
    }
    Some(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn root_with(files: &[(&str, &str)]) -> (tempfile::TempDir, Root) {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("etc")).unwrap();
        for (name, text) in files {
            fs::write(dir.path().join(name), text).unwrap();
        }
        let fd = Root::open(dir.path(), ramboot_sys::fsutil::Resolve::Kernel).unwrap();
        (dir, fd)
    }

    #[test]
    fn names_are_looked_up_once_until_reset() {
        let (dir, root) = root_with(&[]);
        let mut ids = IdCache::default();
        // No passwd yet: the tar number, and the miss is remembered.
        assert_eq!(ids.uid(&root, "foo", 1100), 1100);
        fs::write(
            dir.path().join("etc/passwd"),
            "foo:x:100:101:foo:/home/foo:/bin/sh\n",
        )
        .unwrap();
        assert_eq!(ids.uid(&root, "foo", 1100), 1100);
        // A name not asked before sees the file as it is now.
        fs::write(
            dir.path().join("etc/passwd"),
            "foo:x:100:101::/:/bin/sh\nbar:x:200:201::/:/bin/sh\n",
        )
        .unwrap();
        assert_eq!(ids.uid(&root, "bar", 1200), 200);
        ids.reset();
        assert_eq!(ids.uid(&root, "foo", 1100), 100);
        // A found answer is kept as well.
        fs::write(dir.path().join("etc/passwd"), "").unwrap();
        assert_eq!(ids.uid(&root, "foo", 1100), 100);
    }

    #[test]
    fn musl_parsing_rules() {
        let passwd = "\
short:x:5
bad:x:5x:0::/:/bin/sh
dup:x:7:7::/:/bin/sh
dup:x:8:8::/:/bin/sh
empty:x::0::/:/bin/sh
nogid:x:9:g::/:/bin/sh
last:x:11:11::/:";
        let (_d, root) = root_with(&[
            ("etc/passwd", passwd),
            ("etc/group", "wheel:x:10:root,foo\nshort:x:3\n"),
        ]);
        let mut ids = IdCache::default();
        assert_eq!(ids.uid(&root, "short", 99), 99);
        assert_eq!(ids.uid(&root, "bad", 99), 99);
        assert_eq!(ids.uid(&root, "dup", 99), 7);
        assert_eq!(ids.uid(&root, "empty", 99), 0);
        assert_eq!(ids.uid(&root, "nogid", 99), 99);
        // The last line has no newline: musl cuts its last byte, here the shell's `:`.
        assert_eq!(ids.uid(&root, "last", 99), 99);
        assert_eq!(ids.gid(&root, "wheel", 99), 10);
        assert_eq!(ids.gid(&root, "short", 99), 99);
    }

    #[test]
    fn account_files_are_read_inside_the_root_only() {
        let outside = tempfile::tempdir().unwrap();
        fs::write(
            outside.path().join("passwd"),
            "foo:x:4242:4242::/:/bin/sh\n",
        )
        .unwrap();
        let (dir, root) = root_with(&[]);
        // An absolute link resolves inside the root (no file there), never to the host's.
        std::os::unix::fs::symlink(outside.path().join("passwd"), dir.path().join("etc/passwd"))
            .unwrap();
        let mut ids = IdCache::default();
        assert_eq!(ids.uid(&root, "foo", 1100), 1100);
        // A link to a file inside the root is followed.
        fs::remove_file(dir.path().join("etc/passwd")).unwrap();
        fs::write(dir.path().join("etc/passwd.real"), "foo:x:7:7::/:/bin/sh\n").unwrap();
        std::os::unix::fs::symlink("/etc/passwd.real", dir.path().join("etc/passwd")).unwrap();
        ids.reset();
        assert_eq!(ids.uid(&root, "foo", 1100), 7);
        // A fifo is not opened for reading (no hang) and counts as missing.
        fs::remove_file(dir.path().join("etc/passwd")).unwrap();
        use ramboot_sys::Sys;
        ramboot_sys::RealSys
            .mkfifo_at(root.fd(), "etc/passwd".as_ref(), 0o644)
            .unwrap();
        ids.reset();
        assert_eq!(ids.uid(&root, "foo", 1100), 1100);
    }
}
