//! The one error type of the apk component.

use crate::quote::quoted;
use std::fmt;
use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while reading, verifying, solving or installing packages.
#[derive(Debug)]
pub enum ApkError {
    /// An I/O error, with what was being done.
    Io {
        context: String,
        source: io::Error,
    },
    /// The target filesystem ran out of space.
    NoSpace {
        package: String,
        path: String,
    },
    BadDependency {
        atom: String,
        reason: &'static str,
    },
    /// A line of an APKINDEX (or installed db) is malformed.
    IndexParse {
        source: String,
        line: usize,
        reason: String,
    },
    /// A stream is not a well-formed apk v2 package or index.
    Format {
        what: String,
        reason: String,
    },
    /// No usable signature by a trusted key (apk: "UNTRUSTED signature").
    UntrustedSignature {
        what: String,
        reason: String,
    },
    /// A signature by a trusted key that does not verify (apk: "BAD signature").
    BadSignature {
        what: String,
        reason: String,
    },
    /// The package's control checksum differs from its index `C:`.
    ChecksumMismatch {
        package: String,
        expected: String,
        actual: String,
    },
    /// The data members do not hash to `.PKGINFO`'s `datahash`.
    DataHashMismatch {
        package: String,
        expected: String,
        actual: String,
    },
    /// An archive entry would land outside the root, or is a kind we refuse.
    UnsafeEntry {
        package: String,
        path: String,
        reason: String,
    },
    /// The data is much larger than the package declares (a decompression bomb).
    TooLarge {
        package: String,
        declared: u64,
        limit: u64,
    },
    /// The index names a package whose file is missing.
    PackageFileMissing {
        package: String,
        path: PathBuf,
    },
    /// The solver could not satisfy world; one line per problem.
    Unsatisfiable {
        problems: Vec<String>,
        /// Why repositories were not used (refused index, missing index ...): often the real
        /// cause of a "no such package". Not part of the message: callers print these first.
        unused_repositories: Vec<String>,
    },
    /// A key file could not be read or used.
    Key {
        path: PathBuf,
        reason: String,
    },
    /// Bad command-line use.
    Usage(String),
    /// A bug: a thread of the installer panicked. The install stops; nothing more is committed.
    Internal(String),
    /// Internal: a sink asked to stop reading early (not an error for the caller).
    Cancelled,
}

impl ApkError {
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        ApkError::Io {
            context: context.into(),
            source,
        }
    }
}

impl fmt::Display for ApkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApkError::Io { context, source } => write!(f, "{context}: {source}"),
            ApkError::NoSpace { package, path } => {
                write!(f, "{package}: no space left on the target filesystem while writing {path}")
            }
            ApkError::BadDependency { atom, reason } => write!(f, "bad dependency {}: {reason}", quoted(atom)),
            ApkError::IndexParse { source, line, reason } => write!(f, "{source}: line {line}: {reason}"),
            ApkError::Format { what, reason } => write!(f, "{what}: malformed: {reason}"),
            ApkError::UntrustedSignature { what, reason } => write!(f, "{what}: UNTRUSTED signature ({reason})"),
            ApkError::BadSignature { what, reason } => write!(f, "{what}: BAD signature ({reason})"),
            ApkError::ChecksumMismatch { package, expected, actual } => write!(
                f,
                "{package}: BAD signature: package checksum {actual} does not match the index C:{expected}"
            ),
            ApkError::DataHashMismatch { package, expected, actual } => {
                write!(f, "{package}: BAD signature: data hash {actual} does not match datahash {expected}")
            }
            ApkError::UnsafeEntry { package, path, reason } => write!(f, "{package}: refused entry {}: {reason}", quoted(path)),
            ApkError::TooLarge { package, declared, limit } => write!(
                f,
                "{package}: data exceeds {limit} bytes although the package declares {declared} bytes installed (decompression bomb?)"
            ),
            ApkError::PackageFileMissing { package, path } => {
                write!(f, "{package}: package mentioned in index not found: {}", path.display())
            }
            ApkError::Unsatisfiable { problems, .. } => {
                write!(f, "unable to select packages:")?;
                for p in problems {
                    write!(f, "\n  {p}")?;
                }
                Ok(())
            }
            ApkError::Key { path, reason } => write!(f, "key {}: {reason}", path.display()),
            ApkError::Usage(msg) => f.write_str(msg),
            ApkError::Internal(msg) => write!(f, "internal error in the installer: {msg}"),
            ApkError::Cancelled => f.write_str("cancelled"),
        }
    }
}

impl std::error::Error for ApkError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ApkError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
