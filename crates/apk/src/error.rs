//! The one error type of the apk component, and the reasons a record line is refused.
//!
//! Messages are one line, name the file or package concerned, and include the text of the
//! error they wrap (so printing `{e}` alone names the real cause); the wrapped error is also
//! reachable through [`std::error::Error::source`].

use crate::quote::quoted;
use std::io;
use std::path::PathBuf;

/// A boxed error from a library the crate uses (the RSA and PEM code): reachable through
/// `source()` without tying the public API to those crates' versions.
pub type BoxedError = Box<dyn std::error::Error + Send + Sync>;

/// Everything that can go wrong while reading, verifying, solving or installing packages.
#[derive(Debug, thiserror::Error)]
pub enum ApkError {
    /// An I/O error, with what was being done.
    #[error("{context}: {source}")]
    Io {
        /// What was being done (`writing lib/apk/db/installed`).
        context: String,
        /// The error of the system call.
        source: io::Error,
    },
    /// The target filesystem ran out of space.
    #[error("{package}: no space left on the target filesystem while writing {path}")]
    NoSpace {
        /// The package being written (`name-version`).
        package: String,
        /// The file being written, or how much space was needed.
        path: String,
    },
    /// A dependency atom (`name>=1.0`) that does not parse.
    #[error("bad dependency {}: {reason}", quoted(.atom))]
    BadDependency {
        /// The atom as written.
        atom: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A line of an APKINDEX (or of the installed db) is malformed.
    #[error("{file}: line {line}: {problem}")]
    IndexParse {
        /// The index or db file, as named to the reader.
        file: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong with the line.
        #[source]
        problem: RecordError,
    },
    /// A stream is not a well-formed apk v2 package or index.
    #[error("{what}: malformed: {reason}")]
    Format {
        /// The package or index.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The gzip or tar layer of a package or index is damaged (truncated, bad CRC, bad header).
    #[error("{what}: malformed: {source}")]
    Corrupt {
        /// The package or index.
        what: String,
        /// The error of the gzip or tar reader.
        source: io::Error,
    },
    /// A package's `.PKGINFO` does not parse.
    #[error("{what}: malformed: {source}")]
    BadPkginfo {
        /// The package.
        what: String,
        /// Why `.PKGINFO` was refused.
        source: Box<ApkError>,
    },
    /// No usable signature by a trusted key (apk: "UNTRUSTED signature").
    #[error("{what}: UNTRUSTED signature ({reason})")]
    UntrustedSignature {
        /// The package or index.
        what: String,
        /// Not signed, or signed by which unknown key.
        reason: String,
    },
    /// A signature by a trusted key that does not verify (apk: "BAD signature").
    #[error("{what}: BAD signature ({reason})")]
    BadSignature {
        /// The package or index.
        what: String,
        /// Which key's signature failed.
        reason: String,
    },
    /// The package's control checksum differs from its index `C:`.
    #[error(
        "{package}: BAD signature: package checksum {actual} does not match the index C:{expected}"
    )]
    ChecksumMismatch {
        /// The package (`name-version`).
        package: String,
        /// The index's `C:`.
        expected: String,
        /// What the package file hashes to.
        actual: String,
    },
    /// The data members do not hash to `.PKGINFO`'s `datahash`.
    #[error("{package}: BAD signature: data hash {actual} does not match datahash {expected}")]
    DataHashMismatch {
        /// The package (`name-version`).
        package: String,
        /// `.PKGINFO`'s datahash.
        expected: String,
        /// What the data members hash to.
        actual: String,
    },
    /// An archive entry would land outside the root, or is a kind we refuse.
    #[error("{package}: refused entry {}: {reason}", quoted(.path))]
    UnsafeEntry {
        /// The package (`name-version`).
        package: String,
        /// The entry's name as in the archive.
        path: String,
        /// Why it is refused.
        reason: String,
    },
    /// The data is much larger than the package declares (a decompression bomb).
    #[error("{package}: data exceeds {limit} bytes although the package declares {declared} bytes installed (decompression bomb?)")]
    TooLarge {
        /// The package (`name-version`).
        package: String,
        /// The installed size it declares.
        declared: u64,
        /// The most that was accepted.
        limit: u64,
    },
    /// The index names a package whose file is missing.
    #[error("{package}: package mentioned in index not found: {}", .path.display())]
    PackageFileMissing {
        /// The package (`name-version`).
        package: String,
        /// Where it was looked for.
        path: PathBuf,
    },
    /// The solver could not satisfy world; one line per problem.
    #[error("unable to select packages:{}", lines(.problems))]
    Unsatisfiable {
        /// One line per problem, as apk prints them.
        problems: Vec<String>,
        /// Why repositories were not used (refused index, missing index ...): often the real
        /// cause of a "no such package". Not part of the message: callers print these first.
        unused_repositories: Vec<String>,
    },
    /// The solution drops installed packages: apk would purge them, ramboot does not remove
    /// packages. Nothing was changed.
    #[error("the solution removes installed packages ({}), which ramboot does not do; nothing was changed", .packages.join(" "))]
    NeedsRemoval {
        /// The installed packages (`name-version`) the solution drops.
        packages: Vec<String>,
    },
    /// A key file could not be used.
    #[error("key {}: {reason}: {source}", .path.display())]
    Key {
        /// The key file.
        path: PathBuf,
        /// What it was expected to be.
        reason: &'static str,
        /// The PEM or RSA decoder's error.
        source: BoxedError,
    },
    /// Generating a key or signing failed.
    #[error("{operation}: {source}")]
    Signing {
        /// What was being done.
        operation: &'static str,
        /// The RSA implementation's error.
        source: BoxedError,
    },
    /// Bad command-line use.
    #[error("{0}")]
    Usage(String),
    /// A bug: a thread of the installer panicked. The install stops; nothing more is committed.
    #[error("internal error in the installer: {0}")]
    Internal(String),
    /// A [`crate::stream::DataSink`] asks to stop reading early: the reader then returns the
    /// control part as a success (not an error for the caller).
    #[error("cancelled")]
    Cancelled,
}

/// One indented line per problem.
fn lines(problems: &[String]) -> String {
    problems.iter().map(|p| format!("\n  {p}")).collect()
}

impl ApkError {
    /// An [`ApkError::Io`]: `context` says what was being done.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        ApkError::Io {
            context: context.into(),
            source,
        }
    }
}

/// Why a line of an APKINDEX or of the installed db was refused ([`ApkError::IndexParse`]).
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Not an `X:value` line; the line's start, quoted.
    #[error("expected `X:value`, got {0}")]
    NotAField(String),
    /// A record ended without its name or version.
    #[error("record without P: or V:")]
    NoNameOrVersion,
    /// A numeric field (`S:`, `I:` ...) that is not a number.
    #[error("`{0}:` is not a number")]
    NotANumber(char),
    /// A `C:` that is not a checksum.
    #[error("bad checksum in `C:`")]
    BadChecksum,
    /// A db field (`M:`, `a:`, `Z:`) whose value does not parse.
    #[error("bad {0}:")]
    BadValue(char),
    /// A db field before the one it belongs to (`R:` before any `F:`).
    #[error("{0}: before {1}:")]
    OutOfOrder(char, char),
    /// A dependency list (`D:`, `p:`, `i:`, `r:`) with a bad atom.
    #[error("{0}")]
    Dependency(#[source] Box<ApkError>),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error;

    #[test]
    fn a_bad_atom_in_an_index_is_reachable_through_source() {
        let err = crate::pkg::parse_index("P:a\nV:1\nD:b>=\n\n", "APKINDEX").unwrap_err();
        assert_eq!(
            err.to_string(),
            "APKINDEX: line 3: bad dependency \"b>=\": operator without a version"
        );
        let problem = err.source().expect("the line's problem");
        assert!(problem.is::<RecordError>());
        // Boxed: the enum is recursive through RecordError.
        let atom = problem.source().expect("the dependency error");
        assert!(matches!(
            atom.downcast_ref::<Box<ApkError>>().map(|b| &**b),
            Some(ApkError::BadDependency { .. })
        ));
    }

    #[test]
    fn a_damaged_gzip_stream_keeps_the_decoder_error() {
        let keys = crate::sign::Keyring::default();
        let mut bytes = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
        bytes.extend_from_slice(&[0xff; 64]);
        let err = crate::stream::read_index(&bytes[..], "APKINDEX.tar.gz", &keys, false)
            .err()
            .expect("refused");
        assert!(matches!(err, ApkError::Corrupt { .. }), "{err}");
        let io = err.source().expect("the reader's error");
        assert!(io.is::<io::Error>());
        assert!(io.to_string().contains("corrupt gzip data"), "{io}");
    }
}
