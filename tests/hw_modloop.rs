//! Modloop: signature verification (own keys, and openssl's format when openssl is installed),
//! mounting through the double, linking into the initramfs and into the new root.
// Tests drive real tools and processes (QEMU, mkfs, the built binary): the system boundary
// lint is for the library.
#![allow(clippy::disallowed_methods)]

mod support;

use ramboot::hw::modloop::{self, ModloopError, Verification};
use ramboot::hw::modules::{ModuleLoader, Request};
use ramboot::sys::RecordingSys;
use rsa::pkcs8::{EncodePublicKey, LineEnding};
use rsa::{Pkcs1v15Sign, RsaPrivateKey};
use sha1::{Digest, Sha1};
use std::fs;
use std::path::{Path, PathBuf};
use support::{hw::*, tools::*};

const SHA1_PREFIX: [u8; 15] = [
    0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14,
];

fn key() -> RsaPrivateKey {
    RsaPrivateKey::new(&mut rand::thread_rng(), 1024).unwrap()
}

fn sign(key: &RsaPrivateKey, data: &[u8]) -> Vec<u8> {
    let digest = Sha1::digest(data);
    key.sign(
        Pkcs1v15Sign {
            hash_len: Some(20),
            prefix: SHA1_PREFIX.to_vec().into(),
        },
        &digest,
    )
    .unwrap()
}

struct Setup {
    dir: tempfile::TempDir,
    sys: RecordingSys,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let sys = RecordingSys::new(dir.path()).with_kernel_release(RELEASE);
        Setup { dir, sys }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    /// A modloop image on the media: a squashfs header plus 300 KiB of content (hashed in chunks).
    fn image(&self, name: &str) -> (PathBuf, Vec<u8>) {
        let mut bytes = squashfs_image();
        bytes.extend((0..300 * 1024).map(|i| (i % 251) as u8));
        let guest = PathBuf::from("/media/vda1/boot").join(name);
        let host = self.root().join(guest.strip_prefix("/").unwrap());
        fs::create_dir_all(host.parent().unwrap()).unwrap();
        fs::write(host, &bytes).unwrap();
        (guest, bytes)
    }

    fn trust(&self, key: &RsaPrivateKey, name: &str) {
        let pem = key
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        let d = self.root().join("etc/apk/keys");
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join(name), pem).unwrap();
    }

    fn signature(&self, image: &str, keyname: &str, sig: &[u8]) {
        let d = self.root().join("var/cache/misc");
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join(format!("{image}.SIGN.RSA.{keyname}")), sig).unwrap();
    }

    /// What `/.modloop` shows once mounted: `modules/<release>` with an index, and firmware.
    fn modloop_tree(&self, release: &str) {
        let m = self.root().join(".modloop/modules").join(release);
        fs::create_dir_all(m.join("kernel/extra")).unwrap();
        fs::write(
            m.join("kernel/extra/only_in_modloop.ko"),
            module_bytes("only_in_modloop"),
        )
        .unwrap();
        fs::write(m.join("modules.dep"), "kernel/extra/only_in_modloop.ko:\n").unwrap();
        fs::create_dir_all(self.root().join(".modloop/modules/firmware/brcm")).unwrap();
        fs::write(
            self.root().join(".modloop/modules/firmware/brcm/fw.bin"),
            b"fw",
        )
        .unwrap();
    }
}

#[test]
fn signatures_verify_or_refuse() {
    let s = Setup::new();
    let (img, bytes) = s.image("modloop-virt");
    // No keys at all: accepted, with a warning.
    assert_eq!(
        modloop::verify(&s.sys, &img, true).unwrap(),
        Verification::NoKeys
    );

    let good = key();
    let other = key();
    s.trust(&good, "alpine-devel@lists.alpinelinux.org-1.rsa.pub");
    s.trust(&other, "other.rsa.pub");
    // Keys but no signature: refused, unless modloop_verify=no.
    let e = modloop::verify(&s.sys, &img, true).unwrap_err();
    assert!(
        matches!(&e, ModloopError::Unsigned { keys, .. } if keys.len() == 2),
        "{e}"
    );
    assert!(e.to_string().contains("modloop_verify=no"));
    assert_eq!(
        modloop::verify(&s.sys, &img, false).unwrap(),
        Verification::Skipped
    );

    // A signature by another key than the one its name claims: refused.
    s.signature("modloop-virt", "other.rsa.pub", &sign(&good, &bytes));
    assert!(matches!(
        modloop::verify(&s.sys, &img, true),
        Err(ModloopError::BadSignature { .. })
    ));
    // A good one next to it: verified.
    s.signature(
        "modloop-virt",
        "alpine-devel@lists.alpinelinux.org-1.rsa.pub",
        &sign(&good, &bytes),
    );
    assert_eq!(
        modloop::verify(&s.sys, &img, true).unwrap(),
        Verification::Verified {
            key: "alpine-devel@lists.alpinelinux.org-1.rsa.pub".into()
        }
    );
    // One flipped byte in the image: refused.
    let host = s.root().join("media/vda1/boot/modloop-virt");
    let mut tampered = bytes.clone();
    tampered[200_000] ^= 1;
    fs::write(&host, &tampered).unwrap();
    assert!(matches!(
        modloop::verify(&s.sys, &img, true),
        Err(ModloopError::BadSignature { .. })
    ));
}

#[test]
fn openssl_signatures_and_keys_interoperate() {
    if !have("openssl") {
        return;
    }
    let s = Setup::new();
    let (img, _) = s.image("modloop-lts");
    let work = s.root().join("work");
    fs::create_dir_all(&work).unwrap();
    let priv_pem = work.join("k.pem");
    run(
        "openssl",
        &["genrsa", "-out", priv_pem.to_str().unwrap(), "2048"],
    );
    let keys = s.root().join("etc/apk/keys");
    fs::create_dir_all(&keys).unwrap();
    run(
        "openssl",
        &[
            "rsa",
            "-in",
            priv_pem.to_str().unwrap(),
            "-pubout",
            "-out",
            keys.join("k.rsa.pub").to_str().unwrap(),
        ],
    );
    let sigs = s.root().join("var/cache/misc");
    fs::create_dir_all(&sigs).unwrap();
    let host_img = s.root().join("media/vda1/boot/modloop-lts");
    run(
        "openssl",
        &[
            "dgst",
            "-sha1",
            "-sign",
            priv_pem.to_str().unwrap(),
            "-out",
            sigs.join("modloop-lts.SIGN.RSA.k.rsa.pub")
                .to_str()
                .unwrap(),
            host_img.to_str().unwrap(),
        ],
    );
    assert_eq!(
        modloop::verify(&s.sys, &img, true).unwrap(),
        Verification::Verified {
            key: "k.rsa.pub".into()
        }
    );
    // PKCS#1 "RSA PUBLIC KEY" PEM works too.
    run(
        "openssl",
        &[
            "rsa",
            "-in",
            priv_pem.to_str().unwrap(),
            "-RSAPublicKey_out",
            "-out",
            keys.join("k.rsa.pub").to_str().unwrap(),
        ],
    );
    assert_eq!(
        modloop::verify(&s.sys, &img, true).unwrap(),
        Verification::Verified {
            key: "k.rsa.pub".into()
        }
    );
}

#[test]
fn mount_link_reload_and_arrange_the_new_root() {
    let s = Setup::new();
    standard_modules(s.root());
    let (img, bytes) = s.image("modloop-virt");
    let k = key();
    s.trust(&k, "k.rsa.pub");
    s.signature("modloop-virt", "k.rsa.pub", &sign(&k, &bytes));
    s.modloop_tree(RELEASE);
    let mut loader = ModuleLoader::open(&s.sys).unwrap();

    let m = modloop::mount(&s.sys, Some(&loader), &img, RELEASE, true).unwrap();
    assert_eq!(m.device, PathBuf::from("/dev/loop0"));
    assert_eq!(
        m.verification,
        Verification::Verified {
            key: "k.rsa.pub".into()
        }
    );
    let t = s.sys.trace();
    let attach = t
        .iter()
        .position(|l| l == "losetup -r /dev/loop0 /media/vda1/boot/modloop-virt")
        .unwrap();
    let mount = t
        .iter()
        .position(|l| l == "mount -t squashfs -o ro /dev/loop0 /.modloop")
        .unwrap();
    let squashfs = t.iter().position(|l| l.contains("squashfs.ko")).unwrap();
    assert!(squashfs < attach && attach < mount, "{t:#?}");
    // Autoclear once mounted (not at attach: the attaching fd closes before the mount), so
    // unmounting /.modloop at shutdown frees the boot media holding the image.
    let autoclear = t
        .iter()
        .position(|l| l == "loop autoclear /dev/loop0")
        .unwrap_or_else(|| panic!("{t:#?}"));
    assert!(mount < autoclear, "{t:#?}");

    // The initramfs now uses the modloop's modules.
    modloop::link_into_initramfs(&s.sys, RELEASE).unwrap();
    let lm = s.root().join("lib/modules").join(RELEASE);
    assert_eq!(
        fs::read_link(&lm).unwrap(),
        Path::new("../../.modloop/modules").join(RELEASE)
    );
    assert!(s
        .root()
        .join("lib/modules")
        .join(format!("{RELEASE}.initramfs/modules.dep"))
        .is_file());
    assert_eq!(
        fs::read_link(s.root().join("lib/firmware")).unwrap(),
        Path::new("../.modloop/modules/firmware")
    );
    assert!(s.root().join("lib/firmware/brcm/fw.bin").is_file());
    loader.reload().unwrap();
    assert_eq!(
        loader.load(&Request::names(["only_in_modloop"])).loaded,
        ["only_in_modloop"]
    );
    // Doing it twice is harmless.
    modloop::link_into_initramfs(&s.sys, RELEASE).unwrap();

    // The new root, as Alpine's modloop service leaves it.
    fs::create_dir_all(s.root().join("sysroot/lib/modules/stale")).unwrap();
    fs::create_dir_all(s.root().join("sysroot/lib/firmware")).unwrap();
    modloop::arrange_new_root(&s.sys, Path::new("/sysroot")).unwrap();
    assert!(s
        .sys
        .trace()
        .contains(&"mount -o move /.modloop /sysroot/.modloop".to_string()));
    let sr = s.root().join("sysroot");
    assert_eq!(
        fs::read_link(sr.join("lib/modules")).unwrap(),
        Path::new("/.modloop/modules")
    );
    assert_eq!(
        fs::read_link(sr.join("lib/firmware")).unwrap(),
        Path::new("/lib/modules/firmware")
    );
    assert!(sr
        .join(".modloop/modules")
        .join(RELEASE)
        .join("modules.dep")
        .is_file());
}

#[test]
fn wrong_kernel_or_bad_signature_tries_the_next_candidate() {
    let s = Setup::new();
    let (bad, _) = s.image("modloop-lts");
    let (good, bytes) = s.image("modloop-virt");
    let k = key();
    s.trust(&k, "k.rsa.pub");
    s.signature("modloop-lts", "k.rsa.pub", b"garbage signature");
    s.signature("modloop-virt", "k.rsa.pub", &sign(&k, &bytes));
    s.modloop_tree(RELEASE);
    let m =
        modloop::mount_first(&s.sys, None, &[bad.clone(), good.clone()], RELEASE, true).unwrap();
    assert_eq!(m.image, good);
    assert_eq!(
        s.sys
            .trace()
            .iter()
            .filter(|l| l.starts_with("losetup"))
            .count(),
        1,
        "the bad one is never attached"
    );

    // The modloop of another kernel: unmounted again, and an error naming the release.
    let e = modloop::mount_first(&s.sys, None, &[good], "9.9.9-other", true).unwrap_err();
    assert!(e.to_string().contains("no modules/9.9.9-other"), "{e}");
    assert_eq!(s.sys.trace().last().unwrap(), "umount /.modloop");
}

/// Issue 8, point 15: the boot log says how the modloop was verified in words; it showed the
/// enum's Debug form (`mounted (Verified { key: "…" })`).
#[test]
fn verification_reads_as_words() {
    let v = Verification::Verified {
        key: "modloop-5f000002.rsa.pub".into(),
    };
    assert_eq!(
        v.to_string(),
        "signature verified with modloop-5f000002.rsa.pub"
    );
    assert_eq!(
        Verification::NoKeys.to_string(),
        "not verified: no keys to verify it with"
    );
    assert_eq!(
        Verification::Skipped.to_string(),
        "not verified: modloop_verify=no"
    );
}
