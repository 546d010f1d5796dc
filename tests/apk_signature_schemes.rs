//! The PKCS#1 v1.5 DigestInfo prefixes ramboot writes out itself (apk::sign) agree with OpenSSL:
//! signatures made by `openssl dgst -<digest> -sign` verify, and ramboot's own signatures verify
//! with `openssl dgst -verify`.
// Tests drive real tools and processes (QEMU, mkfs, the built binary): the system boundary
// lint is for the library.
#![allow(clippy::disallowed_methods)]

use ramboot::apk::sign::{SigAlgo, SigningKey};
use std::process::Command;

fn openssl(args: &[&str]) -> std::process::Output {
    Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl runs (qemu/setup-host.sh installs it)")
}

#[test]
fn digest_info_prefixes_match_openssl() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate("test.rsa", 1024).unwrap();
    let priv_pem = dir.path().join("key.pem");
    let pub_pem = dir.path().join("key.pub");
    std::fs::write(&priv_pem, key.private_pem()).unwrap();
    std::fs::write(&pub_pem, key.public_pem()).unwrap();
    let data = dir.path().join("data");
    std::fs::write(&data, b"ramboot signs what apk-tools verifies").unwrap();
    let bytes = std::fs::read(&data).unwrap();
    for (algo, name, digest) in [
        (SigAlgo::Sha1, "-sha1", {
            use sha1::Digest;
            sha1::Sha1::digest(&bytes).to_vec()
        }),
        (SigAlgo::Sha256, "-sha256", {
            use sha2::Digest;
            sha2::Sha256::digest(&bytes).to_vec()
        }),
        (SigAlgo::Sha512, "-sha512", {
            use sha2::Digest;
            sha2::Sha512::digest(&bytes).to_vec()
        }),
    ] {
        let sig = dir.path().join(format!("sig{name}"));
        let out = openssl(&[
            "dgst",
            name,
            "-sign",
            priv_pem.to_str().unwrap(),
            "-out",
            sig.to_str().unwrap(),
            data.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let theirs = std::fs::read(&sig).unwrap();
        assert!(
            ramboot::apk::sign::verify(&key.public(), algo, &digest, &theirs),
            "{name}: openssl's signature"
        );
        let ours = key.sign(algo, &digest).unwrap();
        assert_eq!(ours, theirs, "{name}: PKCS#1 v1.5 is deterministic");
        std::fs::write(&sig, &ours).unwrap();
        let out = openssl(&[
            "dgst",
            name,
            "-verify",
            pub_pem.to_str().unwrap(),
            "-signature",
            sig.to_str().unwrap(),
            data.to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{name}: openssl rejects ramboot's signature: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

/// Indexes signed with each digest (the builder hashes with the `sha2` crate) verify through
/// the reader (which hashes SHA-512 with its own small implementation); a changed byte in the
/// signed part does not.
#[test]
fn indexes_signed_with_each_digest_verify() {
    use ramboot::apk::build::{IndexBuilder, PackageBuilder};
    use ramboot::apk::sign::Keyring;
    use ramboot::apk::stream::read_index;
    let key = SigningKey::generate("test-00000000.rsa.pub", 1024).unwrap();
    let mut keys = Keyring::default();
    keys.add(&key.key_name, key.public());
    let mut idx = IndexBuilder::default();
    idx.add(&PackageBuilder::new("a", "1.0-r0").build(None).unwrap().info);
    for algo in [SigAlgo::Sha1, SigAlgo::Sha256, SigAlgo::Sha512] {
        let index = idx.build(Some(&key), algo).unwrap();
        let read = read_index(&index[..], "index", &keys, false)
            .unwrap_or_else(|e| panic!("{algo:?}: {e}"));
        assert!(read.text.contains("P:a\n"), "{algo:?}");
        // The control member's gzip header MTIME: signed, read by nobody.
        let control = (1..index.len())
            .find(|&i| index[i..].starts_with(&[0x1f, 0x8b, 0x08]))
            .unwrap();
        let mut tampered = index.clone();
        tampered[control + 4] ^= 1;
        let refused = read_index(&tampered[..], "index", &keys, false).err();
        let refused = refused.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            refused.contains("BAD signature"),
            "{algo:?}: a changed signed byte: {refused}"
        );
    }
}
