//! The files a profile puts in the apkovl, by path, and their archive. A sorted map gives the
//! archive its order (a parent sorts before everything under it), so the same profile always
//! gives the same bytes; every entry carries the fixed mtime it is given.

use crate::apk::tar::{Header, Kind, TarWriter};
use std::collections::BTreeMap;
use std::io::{self, Write};

/// What an entry is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    Dir,
    File(Vec<u8>),
    /// A symbolic link to this target.
    Link(String),
}

/// One entry: body, permission bits and numeric owner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub body: Body,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

impl Node {
    pub fn file(data: impl Into<Vec<u8>>, mode: u32) -> Node {
        Node {
            body: Body::File(data.into()),
            mode,
            uid: 0,
            gid: 0,
        }
    }

    pub fn dir(mode: u32) -> Node {
        Node {
            body: Body::Dir,
            mode,
            uid: 0,
            gid: 0,
        }
    }

    pub fn link(target: impl Into<String>) -> Node {
        Node {
            body: Body::Link(target.into()),
            mode: 0o777,
            uid: 0,
            gid: 0,
        }
    }

    pub fn owned(mut self, uid: u32, gid: u32) -> Node {
        (self.uid, self.gid) = (uid, gid);
        self
    }
}

#[derive(Debug)]
struct Slot {
    node: Node,
    /// The profile field that put it there (for conflicts); None: a parent made implicitly.
    by: Option<String>,
}

/// The apkovl's entries by path (relative, `/`-separated, no trailing slash).
#[derive(Debug, Default)]
pub struct Tree {
    slots: BTreeMap<String, Slot>,
}

impl Tree {
    /// Adds `node` at `path` for the profile field `by`, with its missing parents (0755, root).
    /// Two fields that want the same path differently conflict: the error names the other one.
    pub fn add(&mut self, path: &str, node: Node, by: &str) -> Result<(), String> {
        self.parents(path)?;
        match self.slots.get_mut(path) {
            None => {}
            Some(slot) if slot.by.is_none() && node.body == Body::Dir => {}
            Some(slot) if slot.node == node => return Ok(()),
            Some(slot) => {
                let other = slot.by.as_deref().unwrap_or("a parent directory");
                return Err(format!("/{path} is also written by {other}"));
            }
        }
        let slot = Slot {
            node,
            by: Some(by.to_string()),
        };
        self.slots.insert(path.to_string(), slot);
        Ok(())
    }

    /// Missing parents of `path` become directories (0755) owned as the directory they are
    /// made in: what is made under a user's home belongs to that user.
    fn parents(&mut self, path: &str) -> Result<(), String> {
        let mut at = 0;
        let mut owner = (0, 0);
        while let Some(i) = path[at..].find('/') {
            let parent = &path[..at + i];
            match self.slots.get(parent) {
                Some(s) if s.node.body != Body::Dir => {
                    let by = s.by.as_deref().unwrap_or("?");
                    return Err(format!("/{parent} is not a directory (written by {by})"));
                }
                Some(s) => owner = (s.node.uid, s.node.gid),
                None => {
                    let slot = Slot {
                        node: Node::dir(0o755).owned(owner.0, owner.1),
                        by: None,
                    };
                    self.slots.insert(parent.to_string(), slot);
                }
            }
            at += i + 1;
        }
        Ok(())
    }

    #[cfg(test)]
    pub fn get(&self, path: &str) -> Option<&Node> {
        self.slots.get(path).map(|s| &s.node)
    }

    /// Every entry in archive order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Node)> {
        self.slots.iter().map(|(p, s)| (p.as_str(), &s.node))
    }

    /// The tar archive (not compressed), every entry with `mtime`; `names` gives the owner
    /// and group names stored beside the numbers.
    pub fn write_tar(
        &self,
        out: &mut dyn Write,
        mtime: u64,
        names: &dyn Fn(u32, u32) -> (String, String),
    ) -> io::Result<()> {
        let mut tar = TarWriter::new(out);
        for (path, node) in self.iter() {
            let (uname, gname) = names(node.uid, node.gid);
            let dir_name = format!("{path}/");
            let (kind, name, link, data): (Kind, &str, &str, &[u8]) = match &node.body {
                Body::Dir => (Kind::Dir, &dir_name, "", &[]),
                Body::File(d) => (Kind::File, path, "", d),
                Body::Link(t) => (Kind::Symlink, path, t, &[]),
            };
            let h = Header {
                name,
                kind,
                mode: node.mode,
                uid: node.uid,
                gid: node.gid,
                uname: &uname,
                gname: &gname,
                mtime,
                link,
                size: data.len() as u64,
                dev: (0, 0),
            };
            tar.header(&h, &[])?;
            if kind == Kind::File {
                tar.content(data)?;
            }
        }
        tar.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_come_first_and_conflicts_name_the_other_field() {
        let mut t = Tree::default();
        t.add("etc/ssh/sshd_config", Node::file("x", 0o644), "file[0]")
            .unwrap();
        t.add("etc-x", Node::file("y", 0o644), "file[1]").unwrap();
        t.add("etc", Node::dir(0o750), "file[2]").unwrap();
        let order: Vec<&str> = t.iter().map(|(p, _)| p).collect();
        assert_eq!(order, ["etc", "etc-x", "etc/ssh", "etc/ssh/sshd_config"]);
        assert_eq!(t.get("etc").unwrap().mode, 0o750);
        let e = t
            .add("etc/ssh/sshd_config", Node::file("z", 0o644), "file[3]")
            .unwrap_err();
        assert_eq!(e, "/etc/ssh/sshd_config is also written by file[0]");
        let e = t
            .add("etc-x/a", Node::file("z", 0o644), "file[4]")
            .unwrap_err();
        assert_eq!(e, "/etc-x is not a directory (written by file[1])");
        t.add("home/u", Node::dir(0o700).owned(1000, 1000), "user[0]")
            .unwrap();
        t.add("home/u/a/b", Node::file("", 0o644), "file[5]")
            .unwrap();
        assert_eq!(t.get("home").unwrap().uid, 0);
        assert_eq!(
            t.get("home/u/a").unwrap().uid,
            1000,
            "made in the user's home"
        );
    }
}
