//! Provisioning profiles (issue 14, point 3): a small TOML file that describes a machine once —
//! world packages, OpenRC runlevels and ramboot services, hostname, users and their SSH keys,
//! network, repositories, timezone, files to drop in — and becomes the apkovl the boot applies
//! (plus the kernel command-line words it needs). `ramboot profile apkovl` and
//! `ramboot sdimage --profile` use it.
//!
//! Why an apkovl: it is what Alpine's diskless boot already restores (`lbu`'s format), what
//! ramboot's boot applies with its checked extraction ([`crate::overlay`]), and what the
//! user keeps committing to afterwards; a profile is only a reproducible way to write the
//! first one. Everything is checked when the file is loaded (every error names the field and
//! its line), source files are read then too, so writing the archive cannot fail but on I/O.
//! The archive is reproducible: entries sorted by path, every mtime the one given
//! (`SOURCE_DATE_EPOCH` or 0), numeric owners from the profile, gzip without name or time.
//!
//! Host tool only: nothing of the init (src/bin/ramboot-init.rs) reaches this module.
//!
//! The file (every field optional; unknown fields are errors; complete examples in
//! `examples/profiles/`):
//! ```toml
//! hostname = "kiosk"                        # etc/hostname, etc/hosts
//! packages = ["alpine-base", "openssh"]     # etc/apk/world
//! repositories = ["/media/mmcblk0p1/apks"]  # etc/apk/repositories
//! timezone = "Europe/Berlin"                # etc/localtime link (and tzdata in the world)
//! cmdline = ["quiet"]                       # extra kernel command-line words
//! default_boot_services = true              # Alpine's default runlevels too (the default)
//! service_mode = true                       # ramboot_init (default: when there are services)
//!
//! [openrc]                                  # runlevel = services: etc/runlevels/<lvl>/<svc>
//! default = ["sshd", "chronyd"]             #   -> /etc/init.d/<svc>
//!
//! [[service]]                               # etc/ramboot/services/<name>/
//! name = "web"
//! run = "exec httpd -f -p 8080"             # `#!/bin/sh` added unless it has a `#!` line
//! user = "www"                              # optional: finish, log, depends, down, env,
//! env = { PORT = "8080" }                   #   notification_fd
//!
//! [[group]]                                 # a group users join (gid optional)
//! name = "seat"
//!
//! [[user]]                                  # root: keys (and shell/password_hash) only
//! name = "kiosk"                            # uid (default from 1000), groups, shell, home
//! groups = ["audio", "video", "seat"]       # password_hash (default "*": keys only)
//! ssh_keys = ["ssh-ed25519 AAAA... me@laptop"]
//!
//! [[network.interface]]                     # etc/network/interfaces (+ networking in boot)
//! name = "eth0"
//! address = "192.168.1.10/24"               # or dhcp = true
//! gateway = "192.168.1.1"
//! at_boot = true                            # kernel ip= too
//!
//! [network]
//! dns = ["1.1.1.1"]                         # etc/resolv.conf
//!
//! [[file]]                                  # content, source (relative to the profile),
//! path = "/etc/motd"                        #   link or directory = true
//! content = "hello\n"
//! mode = "0644"                             # or 0o644
//! owner = "kiosk:kiosk"                     # names or numbers
//! ```

mod accounts;
mod build;
mod schema;
mod tree;

pub use accounts::{Group, User};
pub use tree::{Body, Node};

use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Errors of loading a profile. Each names the profile, the line and the field.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("cannot read profile {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    /// Not TOML, or a field the profile format does not have, or a value of the wrong type.
    #[error("{}:{line}: {message}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// A value that is TOML but not a valid setting.
    #[error("{}:{line}: {field}: {reason}", path.display())]
    Invalid {
        path: PathBuf,
        line: usize,
        field: String,
        reason: String,
    },
    /// A `source` file that cannot be read.
    #[error("{}:{line}: {field}: cannot read {}: {source}", path.display(), file.display())]
    Source {
        path: PathBuf,
        line: usize,
        field: String,
        file: PathBuf,
        source: io::Error,
    },
}

/// Services the profile enables.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Services {
    /// (runlevel, service): `etc/runlevels/<runlevel>/<service>` links.
    pub openrc: Vec<(String, String)>,
    /// ramboot service directories (`etc/ramboot/services/<name>`), run in service mode.
    pub ramboot: Vec<String>,
}

/// A loaded, checked profile.
#[derive(Debug)]
pub struct Profile {
    hostname: Option<String>,
    world: Vec<String>,
    repositories: Vec<String>,
    cmdline: Vec<String>,
    services: Services,
    users: Vec<User>,
    groups: Vec<Group>,
    tree: tree::Tree,
    warnings: Vec<String>,
}

impl Profile {
    /// Reads and checks the profile at `path`; `source` files are read relative to its
    /// directory.
    pub fn load(path: &Path) -> Result<Profile, ProfileError> {
        let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Read {
            path: path.into(),
            source,
        })?;
        Profile::parse(&text, path)
    }

    /// Checks profile `text`, as if read from `path`.
    pub fn parse(text: &str, path: &Path) -> Result<Profile, ProfileError> {
        build::build(text, path)
    }

    pub fn hostname(&self) -> Option<&str> {
        self.hostname.as_deref()
    }

    /// The world packages (`etc/apk/world`), sorted, without duplicates.
    pub fn world(&self) -> &[String] {
        &self.world
    }

    /// `etc/apk/repositories` lines (empty: the profile does not write the file).
    pub fn repositories(&self) -> &[String] {
        &self.repositories
    }

    /// Words to add to the kernel command line: `ip=` for an interface configured at boot,
    /// `ramboot_init` in service mode, then the profile's own `cmdline`.
    pub fn cmdline_additions(&self) -> &[String] {
        &self.cmdline
    }

    pub fn services(&self) -> &Services {
        &self.services
    }

    /// Users the profile declares (root too when it names it).
    pub fn users(&self) -> &[User] {
        &self.users
    }

    /// What loads but needs something the profile does not give (a service's user no
    /// package is known to create, keys without an SSH server), one line each with the
    /// profile's path (and line).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Groups the profile adds, with their gids.
    pub fn groups(&self) -> &[Group] {
        &self.groups
    }

    /// The apkovl's entries in archive order (paths relative, no trailing slash).
    pub fn entries(&self) -> impl Iterator<Item = (&str, &Node)> {
        self.tree.iter()
    }

    /// The file name Alpine's boot looks for on the media: `<hostname>.apkovl.tar.gz`.
    pub fn apkovl_name(&self) -> String {
        format!("{}.apkovl.tar.gz", self.hostname().unwrap_or("localhost"))
    }

    /// Writes the apkovl (gzip'd tar) to `out`, every entry with `mtime`.
    pub fn write_apkovl(&self, out: &mut dyn Write, mtime: u64) -> io::Result<()> {
        // No name and mtime 0 in the gzip header: the same profile gives the same bytes.
        let mut gz = flate2::GzBuilder::new()
            .mtime(0)
            .write(out, flate2::Compression::best());
        let names = |uid, gid| accounts::names(&self.users, &self.groups, uid, gid);
        self.tree.write_tar(&mut gz, mtime, &names)?;
        gz.finish()?.flush()
    }

    /// The apkovl as bytes.
    pub fn apkovl(&self, mtime: u64) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_apkovl(&mut out, mtime)
            .expect("writing to memory does not fail");
        out
    }
}

/// The mtime of reproducible output: `SOURCE_DATE_EPOCH` when set and a number, else 0.
pub fn source_date_epoch() -> u64 {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}
