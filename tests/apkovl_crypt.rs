//! Encrypted apkovls against the real `openssl enc` (issue 13 point 4): files openssl writes,
//! with each key derivation and several ciphers, are extracted by ramboot; files ramboot writes
//! are read back by `openssl enc -d`; a wrong passphrase and a cut file change nothing.
// The tests run openssl: the system boundary lint is for the library.
#![allow(clippy::disallowed_methods)]

mod support;

use ramboot::overlay::crypt::{self, Cipher, CryptError, RambootParams, Unlocked};
use ramboot::overlay::{self, OverlayError};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use support::tools;

/// A small lbu-style apkovl: `etc/`, `etc/hostname`, `etc/motd` (gzip'd tar).
fn apkovl_bytes() -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    let mut dir = tar::Header::new_ustar();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    tar.append_data(&mut dir, "etc/", std::io::empty()).unwrap();
    for (name, text) in [
        ("etc/hostname", "secret-host\n"),
        ("etc/motd", "from the encrypted apkovl\n"),
    ] {
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o644);
        h.set_size(text.len() as u64);
        tar.append_data(&mut h, name, text.as_bytes()).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

/// Runs openssl with `input` on stdin; its stdout.
fn openssl(args: &[&str], input: &[u8]) -> Result<Vec<u8>, String> {
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, bytes).unwrap();
    p
}

/// Unlocks and extracts into a fresh root; the root's etc/hostname.
fn extract(path: &Path, pass: &[u8], root: &Path) -> Result<String, OverlayError> {
    let key = Unlocked::new(path, pass).map_err(|e| OverlayError::Corrupt {
        path: path.into(),
        source: e.into(),
    })?;
    let opts = overlay::Options {
        unlocked: Some(&key),
        ..Default::default()
    };
    overlay::extract(path, root, opts)?;
    Ok(fs::read_to_string(root.join("etc/hostname")).unwrap())
}

#[test]
fn files_openssl_writes_are_extracted_with_each_key_derivation_and_cipher() {
    if !tools::have("openssl") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let plain = apkovl_bytes();
    let cases: &[(&str, &[&str], crypt::OpensslKdf)] = &[
        // What lbu runs today: OpenSSL 3's default digest.
        ("aes-256-cbc", &[], crypt::OpensslKdf::Sha256),
        ("aes-128-cbc", &[], crypt::OpensslKdf::Sha256),
        ("aes-192-cbc", &["-md", "md5"], crypt::OpensslKdf::Md5),
        ("aes-256-cbc", &["-md", "md5"], crypt::OpensslKdf::Md5),
        ("aes-256-cbc", &["-pbkdf2"], crypt::OpensslKdf::Pbkdf2),
        ("aes-128-cbc", &["-pbkdf2"], crypt::OpensslKdf::Pbkdf2),
        ("aes-256-ecb", &[], crypt::OpensslKdf::Sha256),
        ("aes-128-ecb", &["-pbkdf2"], crypt::OpensslKdf::Pbkdf2),
    ];
    for (i, (cipher, extra, kdf)) in cases.iter().enumerate() {
        let mut args = vec!["enc", "-salt", "-pass", "pass:correct horse"];
        let flag = format!("-{cipher}");
        args.push(&flag);
        args.extend_from_slice(extra);
        let enc = openssl(&args, &plain).unwrap();
        assert!(enc.starts_with(b"Salted__"));
        let path = write_file(d.path(), &format!("h{i}.apkovl.tar.gz.{cipher}"), &enc);
        let key = Unlocked::new(&path, b"correct horse").unwrap();
        assert_eq!(key.openssl_kdf(), Some(*kdf), "{cipher} {extra:?}");
        let root = d.path().join(format!("root{i}"));
        fs::create_dir(&root).unwrap();
        assert_eq!(
            extract(&path, b"correct horse", &root).unwrap(),
            "secret-host\n",
            "{cipher} {extra:?}"
        );
        assert_eq!(
            fs::read_to_string(root.join("etc/motd")).unwrap(),
            "from the encrypted apkovl\n"
        );
    }
}

#[test]
fn wrong_passphrase_and_truncated_files_change_nothing() {
    if !tools::have("openssl") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let plain = apkovl_bytes();
    let enc = openssl(
        &["enc", "-aes-256-cbc", "-salt", "-pass", "pass:right"],
        &plain,
    )
    .unwrap();
    let path = write_file(d.path(), "h.apkovl.tar.gz.aes-256-cbc", &enc);
    let e = Unlocked::new(&path, b"wrong").err().unwrap();
    assert!(matches!(e, CryptError::WrongKey), "{e}");
    assert_eq!(
        e.to_string(),
        "wrong passphrase (or not an encrypted tar.gz)"
    );
    let root = d.path().join("root");
    fs::create_dir(&root).unwrap();
    // Cut inside a block, at a block boundary, and into the gzip stream.
    for cut in [enc.len() - 3, enc.len() - 16, enc.len() / 2] {
        let p = write_file(d.path(), "cut.apkovl.tar.gz.aes-256-cbc", &enc[..cut]);
        let e = extract(&p, b"right", &root).unwrap_err();
        assert!(
            matches!(e, OverlayError::Corrupt { .. }),
            "cut at {cut}: {e}"
        );
        assert_eq!(
            fs::read_dir(&root).unwrap().count(),
            0,
            "cut at {cut}: nothing written"
        );
    }
    // Without a key the archive is not read as gzip.
    let e = overlay::extract(&path, &root, overlay::Options::default()).unwrap_err();
    assert!(
        e.to_string()
            .contains("is encrypted (aes-256-cbc) and no key was given"),
        "{e}"
    );
}

#[test]
fn files_ramboot_writes_in_openssl_format_are_read_by_openssl() {
    if !tools::have("openssl") {
        return;
    }
    let plain = apkovl_bytes();
    for name in ["aes-256-cbc", "aes-128-cbc", "aes-192-ecb"] {
        let mut enc = Vec::new();
        let cipher = Cipher::by_name(name).unwrap();
        crypt::write_openssl(&mut &plain[..], &mut enc, cipher, b"p4ss", None).unwrap();
        // Alpine's init: `openssl enc -d -<cipher>` with no -md and no -pbkdf2.
        let back = openssl(
            &["enc", "-d", &format!("-{name}"), "-pass", "pass:p4ss"],
            &enc,
        )
        .unwrap();
        assert_eq!(back, plain, "{name}");
        let wrong = openssl(
            &["enc", "-d", &format!("-{name}"), "-pass", "pass:nope"],
            &enc,
        );
        assert!(
            wrong.map_or(true, |b| b != plain),
            "{name}: a wrong passphrase gives nothing"
        );
    }
}

#[test]
fn ramboot_format_extracts_and_refuses_a_cut_file() {
    let d = tempfile::tempdir().unwrap();
    let plain = apkovl_bytes();
    let mut enc = Vec::new();
    let params = RambootParams {
        rounds: 1000,
        chunk: 64,
    };
    crypt::write_ramboot(&mut &plain[..], &mut enc, b"pw", params).unwrap();
    let path = write_file(d.path(), "h.apkovl.tar.gz.ramboot", &enc);
    let root = d.path().join("root");
    fs::create_dir(&root).unwrap();
    assert!(matches!(
        Unlocked::new(&path, b"bad"),
        Err(CryptError::WrongKey)
    ));
    let cut = write_file(d.path(), "c.apkovl.tar.gz.ramboot", &enc[..enc.len() - 20]);
    assert!(extract(&cut, b"pw", &root).is_err());
    assert_eq!(fs::read_dir(&root).unwrap().count(), 0);
    assert_eq!(extract(&path, b"pw", &root).unwrap(), "secret-host\n");
}

fn ramboot(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ramboot"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// `ramboot apkovl encrypt --openssl`: real openssl reads it with lbu's and Alpine's init's
/// command line; the ramboot format goes back through `ramboot apkovl decrypt`.
#[test]
fn apkovl_command_writes_both_formats() {
    if !tools::have("openssl") {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let plain = write_file(d.path(), "h.apkovl.tar.gz", &apkovl_bytes());
    let key = write_file(d.path(), "key", b"from a file\n");
    let enc = d.path().join("h.apkovl.tar.gz.aes-256-cbc");
    let out = ramboot(&[
        "apkovl",
        "encrypt",
        "--openssl",
        "--key-file",
        &s(&key),
        &s(&plain),
        &s(&enc),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let back = openssl(
        &[
            "enc",
            "-d",
            "-aes-256-cbc",
            "-in",
            &s(&enc),
            "-pass",
            &format!("file:{}", s(&key)),
        ],
        b"",
    )
    .unwrap();
    assert_eq!(back, fs::read(&plain).unwrap());

    let sealed = d.path().join("h.apkovl.tar.gz.ramboot");
    let args = [
        "apkovl",
        "encrypt",
        "--rounds",
        "1000",
        "--key-file",
        &s(&key),
        &s(&plain),
        &s(&sealed),
    ];
    assert!(ramboot(&args).status.success());
    assert!(fs::read(&sealed).unwrap().starts_with(b"RBAPKOVL"));
    let opened = d.path().join("opened.tar.gz");
    let out = ramboot(&[
        "apkovl",
        "decrypt",
        "--key-file",
        &s(&key),
        &s(&sealed),
        &s(&opened),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(fs::read(&opened).unwrap(), fs::read(&plain).unwrap());

    let wrong = write_file(d.path(), "wrong", b"nope\n");
    let out = ramboot(&[
        "apkovl",
        "decrypt",
        "--key-file",
        &s(&wrong),
        &s(&sealed),
        &s(&opened),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("wrong passphrase"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = ramboot(&[
        "apkovl",
        "encrypt",
        "--cipher",
        "aria-128-cbc",
        "--openssl",
        &s(&plain),
        &s(&enc),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cipher aria-128-cbc is not supported"));
}
