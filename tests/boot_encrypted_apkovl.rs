//! The diskless boot with an encrypted apkovl (issue 13 point 4), on the recording double: the
//! key file named by `apkovl_key=`, passphrases typed on the console (a wrong one, then the
//! right one), and three wrong ones or none after which the boot goes on without the apkovl.
// Tests build fixtures with real files: the system boundary lint is for the library.
#![allow(clippy::disallowed_methods)]

mod support;

use ramboot::boot::{self, BootEnd, Finished};
use ramboot::overlay::crypt::{self, Cipher, RambootParams};
use ramboot::sys::RecordingSys;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use support::hw::*;

const NAME: &str = "host.apkovl.tar.gz.aes-256-cbc";
const PROMPT: &str = "read secret \"Passphrase for /media/vda1/host.apkovl.tar.gz.aes-256-cbc";

struct World {
    dir: tempfile::TempDir,
    sys: RecordingSys,
}

impl World {
    /// Media vda1 with `file` (named `name`), an executable init in the new root.
    fn new(cmdline: &str, name: &str, file: &[u8]) -> World {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("proc")).unwrap();
        fs::write(root.join("proc/cmdline"), format!("{cmdline}\n")).unwrap();
        sys_block(root, "vda", 254, 0, None, 16384, false);
        sys_block(root, "vda1", 254, 1, Some((1, "vda")), 2048, false);
        dev_file(root, "vda1", &fat16_image(0x1234ABCD, Some("ALPINE")));
        let m = root.join("media/vda1");
        fs::create_dir_all(m.join("apks")).unwrap();
        fs::write(m.join("apks/.boot_repository"), b"").unwrap();
        fs::write(m.join(name), file).unwrap();
        let init = root.join("sysroot/sbin/init");
        fs::create_dir_all(init.parent().unwrap()).unwrap();
        fs::write(&init, b"#!/bin/sh\n").unwrap();
        fs::set_permissions(&init, fs::Permissions::from_mode(0o755)).unwrap();
        let sys = RecordingSys::new(root).with_kernel_release(RELEASE);
        World { dir, sys }
    }

    fn run(&self) -> Finished {
        let f = boot::run_recorded(&self.sys, Some(0));
        assert!(matches!(f.end, BootEnd::HandedOff), "{:?}", f.end);
        f
    }

    fn hostname(&self) -> Option<String> {
        fs::read_to_string(self.dir.path().join("sysroot/etc/hostname")).ok()
    }

    fn prompts(&self) -> usize {
        self.sys
            .trace()
            .iter()
            .filter(|l| l.starts_with(PROMPT))
            .count()
    }
}

fn apkovl() -> Vec<u8> {
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    let mut h = tar::Header::new_gnu();
    h.set_size(9);
    h.set_mode(0o644);
    b.append_data(&mut h, "etc/hostname", &b"unlocked\n"[..])
        .unwrap();
    b.into_inner().unwrap().finish().unwrap()
}

fn encrypted(pass: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let cipher = Cipher::by_name("aes-256-cbc").unwrap();
    crypt::write_openssl(&mut &apkovl()[..], &mut out, cipher, pass, None).unwrap();
    out
}

fn applied(f: &Finished) -> Option<PathBuf> {
    f.record.decisions.as_ref().unwrap().apkovl.clone()
}

#[test]
fn the_key_file_unlocks_without_asking() {
    let w = World::new("apkovl_key=/etc/ovl.key", NAME, &encrypted(b"s3cret"));
    let key = w.dir.path().join("etc/ovl.key");
    fs::create_dir_all(key.parent().unwrap()).unwrap();
    fs::write(&key, b"s3cret\n").unwrap();
    let f = w.run();
    assert_eq!(w.hostname().as_deref(), Some("unlocked\n"));
    assert_eq!(applied(&f), Some(Path::new("/media/vda1").join(NAME)));
    assert_eq!(w.prompts(), 0, "{:#?}", w.sys.trace());
}

#[test]
fn a_wrong_key_file_falls_back_to_the_console() {
    let w = World::new("apkovl_key=/etc/ovl.key", NAME, &encrypted(b"s3cret"));
    let key = w.dir.path().join("etc/ovl.key");
    fs::create_dir_all(key.parent().unwrap()).unwrap();
    fs::write(&key, b"stale\n").unwrap();
    w.sys.push_secret(Some(b"s3cret"));
    w.run();
    assert_eq!(w.hostname().as_deref(), Some("unlocked\n"));
    assert_eq!(w.prompts(), 1);
}

#[test]
fn a_wrong_passphrase_then_the_right_one() {
    let w = World::new("", NAME, &encrypted(b"s3cret"));
    w.sys.push_secret(Some(b"guess"));
    w.sys.push_secret(Some(b"s3cret"));
    let f = w.run();
    assert_eq!(w.hostname().as_deref(), Some("unlocked\n"));
    assert!(applied(&f).is_some());
    let trace = w.sys.trace();
    assert!(
        trace
            .iter()
            .any(|l| l.starts_with(&format!("{PROMPT} (2/3): "))),
        "{trace:#?}"
    );
    assert_eq!(w.prompts(), 2);
}

#[test]
fn three_wrong_passphrases_boot_without_the_apkovl() {
    let w = World::new("", NAME, &encrypted(b"s3cret"));
    for _ in 0..3 {
        w.sys.push_secret(Some(b"guess"));
    }
    w.sys.push_secret(Some(b"s3cret"));
    let f = w.run();
    assert_eq!(w.prompts(), 3, "no fourth try");
    assert_eq!(w.hostname(), None);
    assert_eq!(applied(&f), None);
    let d = f.record.decisions.unwrap();
    assert!(
        d.default_services,
        "the default system, as without an apkovl"
    );
}

#[test]
fn nobody_at_the_console_boots_without_the_apkovl_after_one_wait() {
    let w = World::new("", NAME, &encrypted(b"s3cret"));
    let f = w.run();
    assert_eq!(w.prompts(), 1, "no answer: no further tries");
    assert_eq!(applied(&f), None);
}

#[test]
fn ramboot_format_is_unlocked_the_same_way() {
    let mut file = Vec::new();
    let params = RambootParams {
        rounds: 1000,
        chunk: 4096,
    };
    crypt::write_ramboot(&mut &apkovl()[..], &mut file, b"pw", params).unwrap();
    let w = World::new("", "host.apkovl.tar.gz.ramboot", &file);
    w.sys.push_secret(Some(b"pw"));
    w.run();
    assert_eq!(w.hostname().as_deref(), Some("unlocked\n"));
}

#[test]
fn an_unsupported_cipher_is_refused_by_name_without_asking() {
    let w = World::new(
        "",
        "host.apkovl.tar.gz.camellia-256-cbc",
        b"Salted__12345678",
    );
    let f = w.run();
    assert_eq!(w.prompts(), 0);
    assert_eq!(applied(&f), None);
}
