//! A pure-Rust, apk-compatible package library: versions and dependencies, APKINDEX and
//! `.apk` streams with their signatures, a solver, an installer into a root directory, the
//! installed database, and a builder for packages and indexes.
//!
//! It was written for ramboot, whose diskless boot runs what Alpine's initramfs runs with
//! `apk add --initramfs-diskless-boot`: filling a tmpfs root from the signed repositories on
//! the boot medium, without `apk.static`. It is faster than apk there: packages are
//! decompressed, hashed and extracted on all cores, while files are committed into the root
//! strictly in install order. The result (files and `lib/apk/db/*`) is what apk-tools builds
//! from the same inputs, so the installed system's own `apk` takes over seamlessly. Comments
//! cite the apk-tools functions whose behaviour they reproduce.
//!
//! Privileged effects (device nodes, running package scripts chrooted, remounting the cache)
//! go through [`ramboot_sys::Sys`]: [`ramboot_sys::RealSys`] makes them, and
//! [`ramboot_sys::RecordingSys`] records them and acts inside a directory, for tests and host
//! use. Network repositories are not fetched: only local repositories and a package cache.
//!
//! # Example
//!
//! Build a signed repository with one package, then `apk add --initdb hello` into a new root:
//!
//! ```
//! use ramboot_apk::build::{default_arch, IndexBuilder, PackageBuilder};
//! use ramboot_apk::sign::{SigAlgo, SigningKey};
//! use ramboot_apk::{install, InstallRequest, ScriptPolicy};
//! use ramboot_sys::RecordingSys;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let host = tempfile::tempdir()?;
//! // The repository, laid out as apk expects: <repository>/<arch>/APKINDEX.tar.gz.
//! let key = SigningKey::generate("example-5f000000.rsa.pub", 1024)?;
//! let repo = host.path().join("repo").join(default_arch());
//! std::fs::create_dir_all(&repo)?;
//! let hello = PackageBuilder::new("hello", "1.0-r0")
//!     .dir("etc", 0o755)
//!     .file("etc/hello.conf", b"greeting=hi\n", 0o644)
//!     .build(Some(&key))?;
//! std::fs::write(repo.join(hello.file_name()), &hello.bytes)?;
//! let mut index = IndexBuilder::default();
//! index.add(&hello.info);
//! std::fs::write(repo.join("APKINDEX.tar.gz"), index.build(Some(&key), SigAlgo::Sha256)?)?;
//! // The trusted public key, as in etc/apk/keys.
//! std::fs::create_dir_all(host.path().join("keys"))?;
//! std::fs::write(host.path().join("keys").join(&key.key_name), key.public_pem())?;
//!
//! // Paths are as the system sees them; RecordingSys maps `/` to `host`.
//! let sys = RecordingSys::new(host.path());
//! let request = InstallRequest {
//!     root: "/target".into(),
//!     repositories: vec!["/repo".into()],
//!     keys_dirs: vec!["/keys".into()],
//!     world_add: vec!["hello".into()],
//!     initdb: true,
//!     scripts: ScriptPolicy::Never,
//!     ..Default::default()
//! };
//! let report = install(&request, &sys)?;
//! assert_eq!(report.installed, [("hello".to_string(), "1.0-r0".to_string())]);
//! let target = host.path().join("target");
//! assert_eq!(std::fs::read(target.join("etc/hello.conf"))?, b"greeting=hi\n");
//! let installed = std::fs::read_to_string(target.join("lib/apk/db/installed"))?;
//! assert!(installed.contains("P:hello\nV:1.0-r0\n"));
//! # Ok(())
//! # }
//! ```
//!
//! Layers, bottom up: [`version`], [`dep`], [`checksum`] (text formats); [`gz`], [`tar`],
//! [`stream`], [`sign`] (verified streams); [`pkg`], [`repo`] (indexes, repositories, cache);
//! [`solver`]; [`db`] (installed state); [`ids`] (owner names to ids, as apk caches them);
//! [`extract`] (safe writes into the root; only its name is public); [`mod@install`] (the
//! transaction); [`build`] (a package and index builder for tests and media). [`fnmatch`]
//! and [`quote`] are small helpers the others share. Errors: [`ApkError`].
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
//! * the solver's error report has apk's words, with lists on one line (apk wraps them at the
//!   terminal width);
//! * an install whose solution drops an installed package (apk would purge it) is refused:
//!   ramboot does not remove packages;
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

#![warn(missing_docs)]

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
mod sha512;
pub mod sign;
pub mod solver;
pub mod stream;
pub mod tar;
pub mod version;

pub use error::{ApkError, BoxedError, RecordError};
pub use install::{install, FetchFn, InstallReport, InstallRequest, Progress, ScriptPolicy};
