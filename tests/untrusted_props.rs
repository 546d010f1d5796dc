//! Every parser of untrusted input returns an error, never panics, on arbitrary bytes: APKINDEX
//! text, dependency atoms and versions, `.apk` and APKINDEX.tar.gz streams (raw and inside a
//! valid gzip wrapper), the installed database, apkovls, DHCP answers; superblocks are covered
//! in hw_probe.

use proptest::prelude::*;
use ramboot::apk::checksum::Checksum;
use ramboot::apk::sign::Keyring;
use ramboot::apk::stream::{read_index, read_package, Discard, Verify};
use std::io::Write;

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// A tar header block with the given name and size field, then `data`: enough structure for the
/// tar reader to get past the first checks.
fn tarish(name: &str, size_field: &str, data: &[u8]) -> Vec<u8> {
    let mut h = [0u8; 512];
    h[..name.len().min(100)].copy_from_slice(&name.as_bytes()[..name.len().min(100)]);
    h[124..124 + size_field.len().min(12)]
        .copy_from_slice(&size_field.as_bytes()[..size_field.len().min(12)]);
    h[257..262].copy_from_slice(b"ustar");
    let mut out = h.to_vec();
    out.extend_from_slice(data);
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// A DHCP answer comes from anyone on the link: a header that passes the checks (ours, a
    /// BOOTREPLY with the magic cookie) followed by arbitrary options is parsed or refused.
    #[test]
    fn dhcp_answers_never_panic(options in proptest::collection::vec(any::<u8>(), 0..400), raw in proptest::collection::vec(any::<u8>(), 0..300)) {
        use ramboot::net::dhcp::Reply;
        let mac = [2, 0, 0, 0, 0, 1];
        let mut p = vec![0u8; 236];
        p[0] = 2;
        p[4..8].copy_from_slice(&7u32.to_be_bytes());
        p[28..34].copy_from_slice(&mac);
        p.extend([99, 130, 83, 99]);
        p.extend(&options);
        let _ = Reply::parse(&p, 7, mac);
        let _ = Reply::parse(&raw, 7, mac);
    }

    #[test]
    fn text_parsers_never_panic(text in "\\PC{0,400}") {
        let _ = ramboot::apk::pkg::parse_index(&text, "fuzz");
        let _ = ramboot::apk::db::parse_installed(&text);
        for word in text.split_whitespace() {
            let _ = ramboot::apk::dep::Dep::parse(word);
            let _ = ramboot::apk::version::validate(word);
            let _ = ramboot::apk::version::compare(word, "1.0-r0");
            let _ = Checksum::parse(word);
        }
    }

    #[test]
    fn index_lines_never_panic(lines in prop::collection::vec("[A-Za-z]:[ -~]{0,40}", 0..30)) {
        let _ = ramboot::apk::pkg::parse_index(&lines.join("\n"), "fuzz");
    }

    #[test]
    fn package_and_index_streams_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048), name in "[.A-Za-z0-9_/-]{0,40}", size in "[0-7 ]{0,12}") {
        let keys = Keyring::default();
        let identity = Checksum::Sha1([0; 20]);
        for input in [bytes.clone(), gzip(&bytes), gzip(&tarish(&name, &size, &bytes))] {
            let _ = read_package(&input[..], "fuzz.apk", Verify::Identity(&identity), &mut Discard);
            let _ = read_package(&input[..], "fuzz.apk", Verify::Signature { keys: &keys, allow_untrusted: true }, &mut Discard);
            let _ = read_index(&input[..], "fuzz/APKINDEX.tar.gz", &keys, true);
        }
    }

    #[test]
    fn apkovl_check_never_panics_and_never_writes(bytes in prop::collection::vec(any::<u8>(), 0..2048), name in "[.A-Za-z0-9_/-]{0,40}", size in "[0-7 ]{0,12}") {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        for (i, input) in [bytes.clone(), gzip(&bytes), gzip(&tarish(&name, &size, &bytes))].into_iter().enumerate() {
            let ovl = dir.path().join(format!("{i}.apkovl.tar.gz"));
            std::fs::write(&ovl, &input).unwrap();
            let _ = ramboot::overlay::check(&ovl);
            let _ = ramboot::overlay::extract(&ovl, &root, ramboot::overlay::Options::default());
        }
        // Whatever was extracted stayed inside the root.
        let outside: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n != "root" && !n.ends_with(".apkovl.tar.gz"))
            .collect();
        prop_assert!(outside.is_empty(), "{:?}", outside);
    }
}
