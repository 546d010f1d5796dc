//! All version comparisons recorded from the real apk-tools.

use ramboot::apk::version::{compare, validate};
use std::cmp::Ordering;

/// Checks every `A OP B VALIDITY` line of `file` (under tests/data); returns how many lines and
/// what failed. `reversed` also checks B against A (only meaningful for valid versions).
fn check_vectors(file: &str, split: fn(&str) -> Vec<&str>, reversed: bool) -> (usize, Vec<String>) {
    let path = format!("{}/tests/data/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).unwrap();
    let mut n = 0;
    let mut failures = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        let f = split(line);
        assert_eq!(f.len(), 4, "line {line:?}");
        let (a, op, b, valid) = (f[0], f[1], f[2], f[3].as_bytes());
        let want = match op {
            "<" => Ordering::Less,
            "=" => Ordering::Equal,
            ">" => Ordering::Greater,
            _ => panic!("op {op}"),
        };
        if compare(a, b) != want {
            failures.push(format!("{a} {op} {b}: got {:?}", compare(a, b)));
        }
        if reversed && compare(b, a) != want.reverse() {
            failures.push(format!("{b} vs {a} (reversed): got {:?}", compare(b, a)));
        }
        if validate(a) != (valid[0] == b'y') || validate(b) != (valid[1] == b'y') {
            failures.push(format!("validity of {a} / {b}"));
        }
        n += 1;
    }
    (n, failures)
}

#[test]
fn apk_tools_version_vectors() {
    let (n, failures) = check_vectors(
        "apk-version-vectors.txt",
        |l| l.split_whitespace().collect(),
        true,
    );
    assert_eq!(n, 204);
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn apk_tools_2_14_random_vectors() {
    // Random pairs recorded from apk-tools 2.14.10 (see the file's header); single spaces, since
    // odd versions are kept verbatim.
    let (n, failures) = check_vectors(
        "apk-version-vectors-2.14-random.txt",
        |l| l.split(' ').collect(),
        false,
    );
    assert!(n > 400, "{n}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
