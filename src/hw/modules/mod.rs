//! Kernel module loading with modprobe semantics, natively.
//!
//! Why native: busybox modprobe loads one module at a time and forks per request, and libkmod is a
//! C dependency we cannot link into a static Rust PID 1 cheaply. Here the indexes that depmod wrote
//! (`modules.dep`, `modules.alias`, `modules.softdep`, `modules.builtin`, `modules.builtin.modinfo`)
//! and the `modprobe.d` configuration are read once into a [`ModuleDb`], and a [`ModuleLoader`]
//! turns requests (names, aliases, modaliases) into a plan where each module waits only for its own
//! dependencies, so independent modules load in parallel.
//!
//! Rules, as in kmod's modprobe:
//! * names normalise `-` to `_`; aliases too, outside `[...]`;
//! * lookup order: `modprobe.d` `alias`, then a module of that name, then `modules.alias` patterns,
//!   then built-in modules and their aliases;
//! * `blacklist` hides a module from alias lookups; with [`Request::blacklist_all`] (`modprobe -b`)
//!   also from lookups by name. Dependencies are never blacklisted;
//! * built-in and already loaded modules (`/proc/modules`, `/sys/module/<name>`) are no-ops and
//!   `EEXIST` counts as success;
//! * a failure is a warning naming the module and errno, never fatal: the report says what happened.
//!
//! Compressed modules (`.ko.gz`, `.ko.xz`, `.ko.zst`) go to the kernel as files when
//! `/sys/module/compression` names their format, and are decompressed here otherwise — gzip
//! and xz only: a `.ko.zst` the kernel cannot take is refused with that reason (zstd module
//! compression came in Linux 5.13, in-kernel decompression in 5.17; the decoder would cost
//! ~68 KB of the init's size budget for those four releases).
//!
//! Map: `db` reads the indexes into a [`ModuleDb`] and resolves names; `config` parses
//! `modprobe.d`; `alias` indexes glob aliases; `loader` loads in dependency order, in parallel;
//! `compression` names `.ko.gz/.xz/.zst` and decompresses gzip and xz; `closure` computes what `mkinitfs` must ship.

mod alias;
mod closure;
mod compression;
mod config;
mod db;
mod loader;

pub use closure::{closure, closure_detailed, Closure};
pub use compression::{decompress, Compression};
pub use config::ModprobeConfig;
pub use db::{ModuleDb, ModuleEntry, Resolved, SoftDep};
pub use loader::{FailReason, LoadReport, ModuleLoader, ModuleTime, Request};

use std::io;
use std::path::PathBuf;

/// Errors of the module component.
#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    /// `modules.dep` could not be read: without it nothing can be loaded.
    #[error("cannot read module index {}: {source}", path.display())]
    ReadIndex { path: PathBuf, source: io::Error },
    /// A module file could not be read or decompressed.
    #[error("cannot read module {module} ({}): {source}", path.display())]
    ReadModule {
        module: String,
        path: PathBuf,
        source: io::Error,
    },
}

/// `-` → `_`, the kernel's canonical module name.
pub fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

/// Like [`normalize`], but leaves `[...]` classes alone (kmod's `alias_normalize`).
pub fn normalize_alias(alias: &str) -> String {
    let mut out = String::with_capacity(alias.len());
    let mut in_class = false;
    for c in alias.chars() {
        match c {
            '[' => in_class = true,
            ']' => in_class = false,
            '-' if !in_class => {
                out.push('_');
                continue;
            }
            _ => {}
        }
        out.push(c);
    }
    out
}

/// The module name a `modules.dep` path stands for: `kernel/fs/fat/vfat.ko.xz` → `vfat`.
pub fn name_from_path(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or(path);
    let stem = match base.find(".ko") {
        Some(i) => &base[..i],
        None => base,
    };
    normalize(stem)
}

#[cfg(test)]
mod tests {
    use super::alias::longest_literal;
    use super::*;

    proptest::proptest! {
        /// The needle never rejects a text the glob matches.
        #[test]
        fn needle_is_necessary(p in "[ab*?\\[\\]!\\\\]{0,10}", t in "[ab\\[\\]!*?\\\\]{0,12}") {
            if crate::fnmatch::fnmatch(&p, &t) {
                proptest::prop_assert!(t.contains(longest_literal(&p).as_str()), "{p:?} {t:?}");
            }
        }
    }

    #[test]
    fn literal_runs() {
        assert_eq!(
            longest_literal("of:N*T*Cbrcm,bcm2835-sdhostC*"),
            "Cbrcm,bcm2835-sdhostC"
        );
        assert_eq!(longest_literal("pci:v00001AF4d*sv*"), "pci:v00001AF4d");
        assert_eq!(longest_literal("a[xyz]bcd?e"), "bcd");
        assert_eq!(longest_literal("*"), "");
        assert_eq!(longest_literal("ab[cd"), "ab");
        assert_eq!(longest_literal("x\\*yz"), "yz");
        assert_eq!(longest_literal("[]ab]cd"), "cd");
        assert_eq!(longest_literal("é\\éxy"), "é");
    }

    #[test]
    fn names_normalise() {
        assert_eq!(
            name_from_path("kernel/drivers/block/virtio_blk.ko"),
            "virtio_blk"
        );
        assert_eq!(
            name_from_path("kernel/fs/nls/nls_iso8859-1.ko.xz"),
            "nls_iso8859_1"
        );
        assert_eq!(normalize_alias("fs-vfat"), "fs_vfat");
        assert_eq!(normalize_alias("pci:v[0-9]-x"), "pci:v[0-9]_x");
    }

    #[test]
    fn config_parses() {
        let mut c = ModprobeConfig::default();
        c.parse("# c\nblacklist evbug\noptions snd-hda index=1 \\\n  model=x\nalias fs-foo vfat\nsoftdep a pre: b c post: d\ninstall x /bin/true\n");
        assert!(c.blacklist.contains("evbug"));
        assert_eq!(c.options["snd_hda"], vec!["index=1", "model=x"]);
        assert_eq!(c.softdeps["a"].pre, vec!["b", "c"]);
        assert_eq!(c.softdeps["a"].post, vec!["d"]);
        c.parse_cmdline("quiet blacklist=dummy,evbug-x modprobe.blacklist=y usb-storage.delay_use=0 modules=loop");
        assert!(
            c.blacklist.contains("evbug_x")
                && c.blacklist.contains("y")
                && c.blacklist.contains("dummy")
        );
        assert_eq!(c.options["usb_storage"], vec!["delay_use=0"]);
    }
}
