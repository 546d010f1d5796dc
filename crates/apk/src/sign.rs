//! RSA signatures over gzip members: `.SIGN.RSA.` (SHA1), `.SIGN.RSA256.`, `.SIGN.RSA512.`.
//!
//! Keys are PEM public keys in a keys directory; the signature entry names the key file.
//! Verifying is [`PublicKey`]'s (small, for the init build); signing, for the package and
//! index builder, is the `rsa` crate's.

use super::ApkError;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::traits::PublicKeyParts;
use rsa::{Pkcs1v15Sign, RsaPrivateKey};
use std::path::Path;

mod pubkey;
pub use pubkey::PublicKey;

/// The digest behind a signature entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SigAlgo {
    /// RSA with SHA-1 (`.SIGN.RSA.`).
    Sha1,
    /// RSA with SHA-256 (`.SIGN.RSA256.`).
    Sha256,
    /// RSA with SHA-512 (`.SIGN.RSA512.`).
    Sha512,
}

impl SigAlgo {
    /// Splits `.SIGN.<TYPE>.<keyname>`; None for DSA and unknown types (not usable).
    pub fn from_entry_name(name: &str) -> Option<(SigAlgo, &str)> {
        let rest = name.strip_prefix(".SIGN.")?;
        let (ty, key) = rest.split_once('.')?;
        let algo = match ty {
            "RSA" => SigAlgo::Sha1,
            "RSA256" => SigAlgo::Sha256,
            "RSA512" => SigAlgo::Sha512,
            _ => return None,
        };
        Some((algo, key))
    }

    /// The signature entry name's prefix (`.SIGN.RSA.`), before the key name.
    pub fn entry_prefix(self) -> &'static str {
        match self {
            SigAlgo::Sha1 => ".SIGN.RSA.",
            SigAlgo::Sha256 => ".SIGN.RSA256.",
            SigAlgo::Sha512 => ".SIGN.RSA512.",
        }
    }

    /// The digest's length in bytes.
    pub fn hash_len(self) -> usize {
        match self {
            SigAlgo::Sha1 => 20,
            SigAlgo::Sha256 => 32,
            SigAlgo::Sha512 => 64,
        }
    }

    /// The digest's DER `DigestInfo` prefix (RFC 8017 §9.2 note 1).
    pub fn digest_info_prefix(self) -> &'static [u8] {
        match self {
            SigAlgo::Sha1 => &[
                0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04,
                0x14,
            ],
            SigAlgo::Sha256 => &[
                0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x01, 0x05, 0x00, 0x04, 0x20,
            ],
            SigAlgo::Sha512 => &[
                0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x03, 0x05, 0x00, 0x04, 0x40,
            ],
        }
    }

    /// PKCS#1 v1.5 with this digest, for the `rsa` crate (signing).
    pub fn scheme(self) -> Pkcs1v15Sign {
        Pkcs1v15Sign {
            hash_len: Some(self.hash_len()),
            prefix: self.digest_info_prefix().into(),
        }
    }
}

/// Trusted public keys by file name.
#[derive(Clone, Default)]
pub struct Keyring {
    keys: Vec<(String, PublicKey)>,
}

/// A PEM SubjectPublicKeyInfo (or PKCS#1) RSA key, as in `etc/apk/keys`.
pub fn parse_public_key(pem: &str) -> Option<PublicKey> {
    PublicKey::from_pem(pem)
}

impl Keyring {
    /// Adds every parseable key file in `dir`; a missing directory adds nothing.
    pub fn add_dir(&mut self, dir: &Path) -> Result<(), ApkError> {
        let rd = match std::fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => {
                return Err(ApkError::io(
                    format!("reading keys dir {}", dir.display()),
                    e,
                ))
            }
        };
        for ent in rd.flatten() {
            let Some(name) = ent.file_name().to_str().map(String::from) else {
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(ent.path()) else {
                continue;
            };
            match parse_public_key(&text) {
                Some(k) => self.add(&name, k),
                None => log::debug!(
                    "apk: {} is not a PEM public key, ignored",
                    ent.path().display()
                ),
            }
        }
        Ok(())
    }

    /// Trusts `key` under its file name `name`.
    pub fn add(&mut self, name: &str, key: PublicKey) {
        self.keys.retain(|(n, _)| n != name);
        self.keys.push((name.into(), key));
    }

    /// The key named `name`.
    pub fn get(&self, name: &str) -> Option<&PublicKey> {
        self.keys.iter().find(|(n, _)| n == name).map(|(_, k)| k)
    }

    /// No key is trusted.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The trusted key names, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.keys.iter().map(|(n, _)| n.as_str()).collect()
    }
}

/// Verifies `sig` over the pre-computed `digest`.
pub fn verify(key: &PublicKey, algo: SigAlgo, digest: &[u8], sig: &[u8]) -> bool {
    digest.len() == algo.hash_len() && key.verify_pkcs1v15(algo.digest_info_prefix(), digest, sig)
}

/// A private key plus the public key file name it is known by (`name-5f3a2b1c.rsa.pub`).
#[derive(Clone)]
pub struct SigningKey {
    /// The public key's file name (`name-5f3a2b1c.rsa.pub`), named in signatures.
    pub key_name: String,
    /// The RSA private key.
    pub private: RsaPrivateKey,
}

impl SigningKey {
    /// Loads a PEM private key (PKCS#8 or PKCS#1). The key name defaults to the file name +
    /// `.pub`, as abuild does.
    pub fn load(path: &Path, key_name: Option<&str>) -> Result<SigningKey, ApkError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ApkError::io(format!("reading key {}", path.display()), e))?;
        let private = RsaPrivateKey::from_pkcs8_pem(&text)
            .or_else(|_| RsaPrivateKey::from_pkcs1_pem(&text))
            .map_err(|e| ApkError::Key {
                path: path.into(),
                reason: "not an RSA private key",
                source: Box::new(e),
            })?;
        let default_name = format!(
            "{}.pub",
            path.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("key.rsa")
        );
        Ok(SigningKey {
            key_name: key_name.map(String::from).unwrap_or(default_name),
            private,
        })
    }

    /// Generates a fresh key (`bits` = 2048 or more for real use).
    pub fn generate(key_name: &str, bits: usize) -> Result<SigningKey, ApkError> {
        let mut rng = rsa::rand_core::OsRng;
        let private = RsaPrivateKey::new(&mut rng, bits).map_err(|e| ApkError::Signing {
            operation: "generating an RSA key",
            source: Box::new(e),
        })?;
        Ok(SigningKey {
            key_name: key_name.into(),
            private,
        })
    }

    /// The public key.
    pub fn public(&self) -> PublicKey {
        let p = self.private.to_public_key();
        PublicKey::from_components(&p.n().to_bytes_be(), &p.e().to_bytes_be())
            .expect("a generated key is a valid public key")
    }

    /// The public key as PEM, for `etc/apk/keys`.
    pub fn public_pem(&self) -> String {
        self.private
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("encoding a public key")
    }

    /// The private key as PKCS#8 PEM.
    pub fn private_pem(&self) -> String {
        self.private
            .to_pkcs8_pem(LineEnding::LF)
            .expect("encoding a private key")
            .to_string()
    }

    /// Signs a pre-computed digest.
    pub fn sign(&self, algo: SigAlgo, digest: &[u8]) -> Result<Vec<u8>, ApkError> {
        self.private
            .sign(algo.scheme(), digest)
            .map_err(|e| ApkError::Signing {
                operation: "signing",
                source: Box::new(e),
            })
    }
}
