//! A native, apk-compatible package installer.
//!
//! Alpine's diskless boot runs `apk add --initramfs-diskless-boot` to fill a tmpfs root from
//! signed repositories on the boot medium. This module does that job inside ramboot, so the
//! initramfs needs no `apk.static`, and does it faster: packages are decompressed, hashed and
//! extracted on all cores, while files are committed into the root strictly in install order.
//! The result (files and `lib/apk/db/*`) is what apk-tools builds from the same inputs, so the
//! booted system's own `apk` takes over seamlessly. See `spec/apk.md` for the behaviour
//! reproduced, with its citations of apk-tools.
//!
//! Layers, bottom up: [`version`], [`dep`], [`checksum`] (text formats); [`gz`], [`tar`],
//! [`stream`], [`sign`] (verified streams); [`pkg`], [`repo`] (indexes, repositories, cache);
//! [`solver`]; [`db`] (installed state); [`ids`] (owner names to ids, as apk caches them);
//! [`extract`] (safe writes into the root); [`install`] (the transaction); [`build`] (a package
//! and index builder for tests and media); [`cli`].
//!
//! Stricter than apk, on purpose: nothing is written outside the root. Names with `..`, absolute
//! names and device nodes are refused with an error. Every path is resolved as chroot would see
//! it ([`ramboot_sys::fsutil`]): apk run with `--root` follows an absolute symlink such as
//! alpine-baselayout's `var/run -> /run` to the host's `/run`; ramboot follows it inside the
//! root, where apk running in the booted system lands too. The db records the path as written
//! in the package (`F:var/run/ppp`), as apk does.
//!
//! Checked against the real apk-tools 2.14.10 (packages, indexes, installed trees, db files,
//! scripts, upgrades, cache, version comparisons). Other deliberate differences:
//! * a file that cannot be moved into place leaves no `.apk.<hash>` temporary behind (apk
//!   leaves it next to the target);
//! * `etc/apk/repositories.d/*.list` are read in name order (apk: directory order);
//! * the exit status of an unsatisfiable solve is the number of problems reported (apk: its
//!   solver's internal error count, often larger);
//! * tar headers carry the same fields as apk's, but the gzip streams are not byte-identical;
//! * in `lib/apk/db/installed`, a record's `r:`, `q:`, `s:` and `f:` lines are always in that
//!   record. apk 2.14 (`apk_db_write_fdb`) buffers them until the record's first `F:` line, so
//!   the lines of a package without directories (a meta package such as `alpine-base`, which
//!   replaces `alpine-baselayout`) are written into the next record that has a directory, and
//!   lost when no later record has one. Read back, apk would credit that other package with
//!   the replaces (and broken flags) and forget them for the one that declared them: a bug we
//!   do not copy. Both layouts read back without error;
//! * owner names in index and `scripts.tar` headers are not looked up ([`ids`]): apk looks
//!   them up when it opens the db, which can only change the id of a file whose owner is
//!   named like those headers' owner (`root`) but numbered otherwise in its tar header.

pub mod quote;

pub mod fnmatch;

pub mod build;
pub mod checksum;
pub mod db;
pub mod dep;
mod error;
pub mod extract;
pub mod gz;
pub mod ids;
pub mod install;
pub mod pkg;
pub mod repo;
pub mod sign;
pub mod solver;
pub mod stream;
pub mod tar;
pub mod version;

pub use error::{ApkError, BoxedError, RecordError};
pub use install::{install, InstallReport, InstallRequest, Progress, ScriptPolicy};
