//! Reading and verifying apk v2 streams (`.apk` packages and `APKINDEX.tar.gz`).
//!
//! The state machine follows apk-tools' `apk_sign_ctx_*`: signature members, then a control
//! member starting with `.PKGINFO`, then data members. What is hashed is the compressed bytes
//! of whole members. Data entries are handed to a sink while streaming,
//! so nothing is buffered whole; the caller must treat extracted data as provisional until
//! this returns `Ok` (the final hash is only known at EOF).

use super::checksum::{hex, Checksum};
use super::gz::{GzMembers, Hashers};
use super::ids::OwnerNames;
use super::pkg::PkgInfo;
use super::sign::{self, Keyring, SigAlgo};
use super::tar::{Entry, Event, Kind, TarReader};
use super::ApkError;
use crate::sha512::Sha512;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use std::io::{self, Read};

/// Largest `.PKGINFO` accepted.
pub const MAX_PKGINFO: u64 = 1 << 20;
/// Largest script accepted.
pub const MAX_SCRIPT: u64 = 4 << 20;
/// Largest APKINDEX (uncompressed) accepted.
pub const MAX_INDEX: u64 = 256 << 20;

/// What trust check a stream must pass.
#[derive(Clone, Copy)]
pub enum Verify<'a> {
    /// From a repository: the control member's SHA1 must equal the index `C:`; the package's
    /// own signatures are ignored (trust comes from the index signature).
    Identity(&'a Checksum),
    /// A package file or an index: a `.SIGN.*` entry must verify with a trusted key.
    /// `allow_untrusted` lets a missing or unknown key through (never a failing signature).
    Signature {
        /// The trusted keys.
        keys: &'a Keyring,
        /// Accept a missing or unknown-key signature (never a bad one).
        allow_untrusted: bool,
    },
}

/// Package scripts, by their control entry name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ScriptKind {
    /// `.pre-install`
    PreInstall,
    /// `.post-install`
    PostInstall,
    /// `.pre-deinstall`
    PreDeinstall,
    /// `.post-deinstall`
    PostDeinstall,
    /// `.pre-upgrade`
    PreUpgrade,
    /// `.post-upgrade`
    PostUpgrade,
    /// `.trigger`
    Trigger,
}

impl ScriptKind {
    /// In the order apk stores them in scripts.tar.
    pub const ALL: [ScriptKind; 7] = [
        ScriptKind::PreInstall,
        ScriptKind::PostInstall,
        ScriptKind::PreDeinstall,
        ScriptKind::PostDeinstall,
        ScriptKind::PreUpgrade,
        ScriptKind::PostUpgrade,
        ScriptKind::Trigger,
    ];

    /// The name without the dot (`post-install`), as in the db and scripts.tar.
    pub fn name(self) -> &'static str {
        match self {
            ScriptKind::PreInstall => "pre-install",
            ScriptKind::PostInstall => "post-install",
            ScriptKind::PreDeinstall => "pre-deinstall",
            ScriptKind::PostDeinstall => "post-deinstall",
            ScriptKind::PreUpgrade => "pre-upgrade",
            ScriptKind::PostUpgrade => "post-upgrade",
            ScriptKind::Trigger => "trigger",
        }
    }

    /// The kind named `n` (without the dot).
    pub fn from_name(n: &str) -> Option<ScriptKind> {
        ScriptKind::ALL.into_iter().find(|k| k.name() == n)
    }
}

/// The control part of a package.
#[derive(Clone, Debug, Default)]
pub struct Control {
    /// `.PKGINFO`.
    pub info: PkgInfo,
    /// The control scripts, by kind.
    pub scripts: Vec<(ScriptKind, Vec<u8>)>,
    /// SHA1 of the control member (or control+data without datahash): the identity.
    pub identity: Option<Checksum>,
}

impl Control {
    /// The script of `kind`, if the package has one.
    pub fn script(&self, kind: ScriptKind) -> Option<&[u8]> {
        self.scripts
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, s)| s.as_slice())
    }
}

/// Reads entry content for a [`DataSink`].
pub trait ContentRead {
    /// Reads content into `buf`; 0 at the end of the entry.
    fn read_content(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    /// The next piece of content, in the reader's own buffer (no copy); empty at the end.
    fn content_chunk(&mut self) -> io::Result<&[u8]>;
}

impl<R: Read> ContentRead for TarReader<R> {
    fn read_content(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        TarReader::read_content(self, buf)
    }
    fn content_chunk(&mut self) -> io::Result<&[u8]> {
        TarReader::content_chunk(self, usize::MAX)
    }
}

/// Receives the data part while it streams.
pub trait DataSink {
    /// Called once the control part is known (and, with a datahash, verified), before the first
    /// data entry. `pre-install` runs here.
    fn control_ready(&mut self, _control: &Control) -> Result<(), ApkError> {
        Ok(())
    }
    /// One data entry; regular file content is read through `content`.
    fn entry(&mut self, entry: Entry, content: &mut dyn ContentRead) -> Result<(), ApkError>;
    /// The owner names of the headers read so far: once with [`Lookup::BeforeScript`] just
    /// before the first data entry (or at the end when there is none), once with
    /// [`Lookup::AfterScript`] for the rest. See [`Lookup`].
    fn owner_names(&mut self, _when: Lookup, _names: OwnerNames) {}
}

/// A [`DataSink`] that reads every entry to its end and keeps nothing: a whole package is
/// read and verified without extracting it.
pub struct Discard;

impl DataSink for Discard {
    fn entry(&mut self, _entry: Entry, content: &mut dyn ContentRead) -> Result<(), ApkError> {
        while !content
            .content_chunk()
            .map_err(|e| ApkError::io("reading package content", e))?
            .is_empty()
        {}
        Ok(())
    }
}

/// When apk-tools looks a header's owner names up, relative to the package's pre-install (or
/// pre-upgrade) script: apk resolves names as it parses each header, and runs the script only
/// when it meets the first data entry, after that entry's header was parsed
/// (`apk_db_install_archive_entry`). Data files land only after the whole archive was read
/// (`apk_db_migrate_files`), so a package's own `etc/passwd` never affects its own names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// Signature and control headers, and the first data header.
    BeforeScript,
    /// Every later header.
    AfterScript,
}

/// A sink that stops after the control part (reading metadata only).
pub struct ControlOnly;

impl DataSink for ControlOnly {
    fn entry(&mut self, _: Entry, _: &mut dyn ContentRead) -> Result<(), ApkError> {
        Err(ApkError::Cancelled)
    }
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum Part {
    Signature,
    Control,
    Data,
}

struct SigChoice {
    algo: SigAlgo,
    key_name: String,
    sig: Vec<u8>,
}

/// Verifier state shared by package and index reading.
struct Checker<'a> {
    what: String,
    verify: Verify<'a>,
    chosen: Option<SigChoice>,
    /// An unknown-key signature was seen (for the error message).
    unknown_keys: Vec<String>,
}

impl Checker<'_> {
    fn hashers_for_control(&self) -> Hashers {
        let mut h = Hashers {
            sha1: Some(Sha1::new()),
            ..Default::default()
        };
        if let Some(c) = &self.chosen {
            match c.algo {
                SigAlgo::Sha1 => {}
                SigAlgo::Sha256 => h.sha256 = Some(Sha256::new()),
                SigAlgo::Sha512 => h.sha512 = Some(Sha512::new()),
            }
        }
        h
    }

    fn on_sign_entry<R: Read>(
        &mut self,
        e: &Entry,
        tar: &mut TarReader<R>,
    ) -> Result<(), ApkError> {
        let sig = tar
            .content_to_vec(64 << 10, "signature")
            .map_err(|err| self.format(err))?;
        if self.chosen.is_some() {
            return Ok(());
        }
        if let Verify::Signature { keys, .. } = self.verify {
            if let Some((algo, key_name)) = SigAlgo::from_entry_name(&e.name) {
                if keys.get(key_name).is_some() {
                    self.chosen = Some(SigChoice {
                        algo,
                        key_name: key_name.into(),
                        sig,
                    });
                } else {
                    self.unknown_keys.push(key_name.into());
                }
            }
        }
        Ok(())
    }

    /// The signature names a digest that does not cover the signed part.
    fn unhashed(&self, digest: &str) -> ApkError {
        ApkError::Format {
            what: self.what.clone(),
            reason: format!(
                "the signature entry is not in the archive's first gzip member, so its {digest} digest does not cover the signed part"
            ),
        }
    }

    fn format(&self, err: io::Error) -> ApkError {
        ApkError::Corrupt {
            what: self.what.clone(),
            source: err,
        }
    }

    /// Checks the identity or signature over the finished digests.
    fn check(&self, h: Hashers) -> Result<Checksum, ApkError> {
        let sha1 = h
            .sha1
            .ok_or_else(|| self.format(io::Error::other("the control part was not hashed")))?
            .finalize();
        let identity = Checksum::Sha1(sha1.into());
        match self.verify {
            Verify::Identity(expected) => {
                if *expected != identity {
                    return Err(ApkError::ChecksumMismatch {
                        package: self.what.clone(),
                        expected: expected.to_string(),
                        actual: identity.to_string(),
                    });
                }
            }
            Verify::Signature {
                keys,
                allow_untrusted,
            } => match &self.chosen {
                Some(c) => {
                    // A signature entry met after the signed part began (in the same gzip
                    // member as the index) asks for a digest that was never started.
                    let digest: Vec<u8> = match c.algo {
                        SigAlgo::Sha1 => sha1.to_vec(),
                        SigAlgo::Sha256 => h
                            .sha256
                            .ok_or_else(|| self.unhashed("SHA-256"))?
                            .finalize()
                            .to_vec(),
                        SigAlgo::Sha512 => h
                            .sha512
                            .ok_or_else(|| self.unhashed("SHA-512"))?
                            .finalize()
                            .to_vec(),
                    };
                    let key =
                        keys.get(&c.key_name)
                            .ok_or_else(|| ApkError::UntrustedSignature {
                                what: self.what.clone(),
                                reason: format!("signed by unknown key {}", c.key_name),
                            })?;
                    if !sign::verify(key, c.algo, &digest, &c.sig) {
                        return Err(ApkError::BadSignature {
                            what: self.what.clone(),
                            reason: format!("signature by key {} does not verify", c.key_name),
                        });
                    }
                }
                None if allow_untrusted => {
                    log::warn!(
                        "apk: {}: no trusted signature, accepted because of --allow-untrusted",
                        self.what
                    );
                }
                None => {
                    let reason = if self.unknown_keys.is_empty() {
                        "not signed".to_string()
                    } else {
                        format!("signed by unknown key(s) {}", self.unknown_keys.join(", "))
                    };
                    return Err(ApkError::UntrustedSignature {
                        what: self.what.clone(),
                        reason,
                    });
                }
            },
        }
        Ok(identity)
    }
}

/// Reads a package stream: verifies it as `verify` says and hands data entries to `sink`.
/// Returns the control part (with the computed identity).
pub fn read_package<R: Read>(
    src: R,
    what: &str,
    verify: Verify<'_>,
    sink: &mut dyn DataSink,
) -> Result<Control, ApkError> {
    let ck = Checker {
        what: what.into(),
        verify,
        chosen: None,
        unknown_keys: Vec::new(),
    };
    let mut gz = GzMembers::new(src).map_err(|e| ck.format(e))?;
    if gz.members == 0 {
        return Err(ApkError::Format {
            what: what.into(),
            reason: "empty file".into(),
        });
    }
    if let Verify::Identity(_) = verify {
        // Every byte after the signature member is checked against the index's checksum or
        // the datahash it vouches for; the signature member is not used.
        gz.trust_digests();
    }
    let mut tar = TarReader::new(gz);
    tar.gz().hash = Hashers {
        sha1: Some(Sha1::new()),
        ..Default::default()
    };
    let mut pkg = PackageRead {
        ck,
        part: Part::Signature,
        control: Control::default(),
        identity: None,
        ready_sent: false,
        saw_pkginfo: false,
    };
    loop {
        match tar.next_event().map_err(|e| pkg.ck.format(e))? {
            Event::MemberEnd => {
                pkg.member_end(&mut tar)?;
                if !tar.next_member().map_err(|e| pkg.ck.format(e))? {
                    break;
                }
            }
            Event::Entry(e) => {
                if pkg.entry(e, &mut tar, sink)? == Flow::Stop {
                    return Ok(pkg.control);
                }
            }
        }
    }
    pkg.finish(&mut tar, sink)
}

/// Whether reading goes on after an entry.
#[derive(PartialEq, Eq)]
enum Flow {
    Continue,
    /// The sink cancelled: the control part is the result.
    Stop,
}

/// [`read_package`]'s state.
struct PackageRead<'a> {
    ck: Checker<'a>,
    part: Part,
    control: Control,
    /// Computed at the end of the control member when the package has a datahash.
    identity: Option<Checksum>,
    /// [`DataSink::control_ready`] was called.
    ready_sent: bool,
    saw_pkginfo: bool,
}

impl PackageRead<'_> {
    fn format(&self, reason: &str) -> ApkError {
        ApkError::Format {
            what: self.ck.what.clone(),
            reason: reason.into(),
        }
    }

    /// A gzip member ended: the digests move on to the next part.
    fn member_end<R: Read>(&mut self, tar: &mut TarReader<R>) -> Result<(), ApkError> {
        match self.part {
            Part::Signature => {
                // Still in the signature part: the control digest starts afresh.
                tar.gz().hash = self.ck.hashers_for_control();
            }
            Part::Control => {
                self.part = Part::Data;
                if self.control.info.datahash.is_some() {
                    let h = std::mem::take(&mut tar.gz().hash);
                    self.identity = Some(self.ck.check(h)?);
                    tar.gz().hash = Hashers {
                        sha256: Some(Sha256::new()),
                        ..Default::default()
                    };
                }
            }
            Part::Data => {}
        }
        Ok(())
    }

    /// One entry: a signature, a control entry, or data for the sink.
    fn entry<R: Read>(
        &mut self,
        e: Entry,
        tar: &mut TarReader<R>,
        sink: &mut dyn DataSink,
    ) -> Result<Flow, ApkError> {
        if self.part == Part::Signature && e.name.starts_with(".SIGN.") {
            self.ck.on_sign_entry(&e, tar)?;
            return Ok(Flow::Continue);
        }
        if self.part == Part::Signature {
            self.part = Part::Control;
        }
        let is_control_name = e.name.starts_with('.') && !e.name.contains('/');
        if self.part == Part::Control && !is_control_name {
            // APKv1 layout: data in the same member as control.
            if self.control.info.datahash.is_some() {
                return Err(self.format("data entries inside the control member"));
            }
            self.part = Part::Data;
        }
        if self.part == Part::Control {
            self.control_entry(&e, tar)?;
            return Ok(Flow::Continue);
        }
        if !self.ready_sent {
            if !self.saw_pkginfo {
                return Err(self.format("no .PKGINFO before the data"));
            }
            self.control.identity = self.identity;
            self.ready_sent = true;
            match sink.control_ready(&self.control) {
                Err(ApkError::Cancelled) => return Ok(Flow::Stop),
                r => r?,
            }
            sink.owner_names(Lookup::BeforeScript, tar.take_owner_names());
        }
        match sink.entry(e, tar) {
            Err(ApkError::Cancelled) => Ok(Flow::Stop),
            r => r.map(|()| Flow::Continue),
        }
    }

    /// `.PKGINFO` or a script.
    fn control_entry<R: Read>(
        &mut self,
        e: &Entry,
        tar: &mut TarReader<R>,
    ) -> Result<(), ApkError> {
        if e.name == ".PKGINFO" {
            let data = tar
                .content_to_vec(MAX_PKGINFO, ".PKGINFO")
                .map_err(|err| self.ck.format(err))?;
            let text = String::from_utf8(data).map_err(|_| self.format(".PKGINFO is not UTF-8"))?;
            self.control.info =
                PkgInfo::parse_pkginfo(&text).map_err(|err| ApkError::BadPkginfo {
                    what: self.ck.what.clone(),
                    source: Box::new(err),
                })?;
            self.saw_pkginfo = true;
        } else if let Some(kind) = e.name.strip_prefix('.').and_then(ScriptKind::from_name) {
            if e.kind == Kind::File {
                let data = tar
                    .content_to_vec(MAX_SCRIPT, &e.name)
                    .map_err(|err| self.ck.format(err))?;
                self.control.scripts.retain(|(k, _)| *k != kind);
                self.control.scripts.push((kind, data));
            }
        }
        Ok(())
    }

    /// The end of the stream: the data hash (or the whole-package identity) is checked.
    fn finish<R: Read>(
        mut self,
        tar: &mut TarReader<R>,
        sink: &mut dyn DataSink,
    ) -> Result<Control, ApkError> {
        if !self.saw_pkginfo {
            return Err(self.format("no .PKGINFO in the package"));
        }
        let h = std::mem::take(&mut tar.gz().hash);
        match self.control.info.datahash {
            Some(expected) if self.identity.is_some() => {
                let actual: [u8; 32] = h
                    .sha256
                    .ok_or_else(|| self.format("the data part was not hashed"))?
                    .finalize()
                    .into();
                if actual != expected {
                    return Err(ApkError::DataHashMismatch {
                        package: self.ck.what.clone(),
                        expected: hex(&expected),
                        actual: hex(&actual),
                    });
                }
            }
            // The stream ended inside the control member.
            Some(_) => return Err(self.format("stream ended before the data part")),
            None => self.identity = Some(self.ck.check(h)?),
        }
        self.control.identity = self.identity;
        let when = if self.ready_sent {
            Lookup::AfterScript
        } else {
            Lookup::BeforeScript
        };
        if !self.ready_sent {
            match sink.control_ready(&self.control) {
                Err(ApkError::Cancelled) => return Ok(self.control),
                r => r?,
            }
        }
        sink.owner_names(when, tar.take_owner_names());
        Ok(self.control)
    }
}

/// A verified APKINDEX.tar.gz: its text and description.
pub struct IndexFile {
    /// Its `DESCRIPTION` entry.
    pub description: String,
    /// Its `APKINDEX` entry.
    pub text: String,
}

/// Reads and verifies an APKINDEX.tar.gz (signature over everything after the signature member).
pub fn read_index<R: Read>(
    src: R,
    what: &str,
    keys: &Keyring,
    allow_untrusted: bool,
) -> Result<IndexFile, ApkError> {
    let mut ck = Checker {
        what: what.into(),
        verify: Verify::Signature {
            keys,
            allow_untrusted,
        },
        chosen: None,
        unknown_keys: Vec::new(),
    };
    let gz = GzMembers::new(src).map_err(|e| ck.format(e))?;
    let mut tar = TarReader::new(gz);
    tar.gz().hash = Hashers::all();
    let mut in_sig = true;
    let mut description = String::new();
    let mut text: Option<String> = None;
    loop {
        match tar.next_event().map_err(|e| ck.format(e))? {
            Event::MemberEnd => {
                if in_sig {
                    tar.gz().hash = ck.hashers_for_control();
                }
                if !tar.next_member().map_err(|e| ck.format(e))? {
                    break;
                }
            }
            Event::Entry(e) => {
                if in_sig && e.name.starts_with(".SIGN.") {
                    ck.on_sign_entry(&e, &mut tar)?;
                    continue;
                }
                if in_sig {
                    in_sig = false;
                }
                let fmt = |err: io::Error| ApkError::Corrupt {
                    what: what.into(),
                    source: err,
                };
                match e.name.as_str() {
                    "DESCRIPTION" => {
                        description = String::from_utf8_lossy(
                            &tar.content_to_vec(1 << 16, "DESCRIPTION").map_err(fmt)?,
                        )
                        .trim_end()
                        .into()
                    }
                    "APKINDEX" => {
                        let data = tar.content_to_vec(MAX_INDEX, "APKINDEX").map_err(fmt)?;
                        text = Some(String::from_utf8(data).map_err(|_| ApkError::Format {
                            what: what.into(),
                            reason: "APKINDEX is not UTF-8".into(),
                        })?);
                    }
                    _ => {}
                }
            }
        }
    }
    let h = std::mem::take(&mut tar.gz().hash);
    ck.check(h)?;
    let text = text.ok_or_else(|| ApkError::Format {
        what: what.into(),
        reason: "no APKINDEX entry in the archive".into(),
    })?;
    Ok(IndexFile { description, text })
}
