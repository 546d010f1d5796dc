//! All version comparisons recorded from the real apk-tools.

use ramboot::apk::version::{compare, validate};
use std::cmp::Ordering;

#[test]
fn apk_tools_version_vectors() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/apk-version-vectors.txt"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let mut n = 0;
    let mut failures = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        let f: Vec<&str> = line.split_whitespace().collect();
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
        if compare(b, a) != want.reverse() {
            failures.push(format!("{b} vs {a} (reversed): got {:?}", compare(b, a)));
        }
        if validate(a) != (valid[0] == b'y') || validate(b) != (valid[1] == b'y') {
            failures.push(format!("validity of {a} / {b}"));
        }
        n += 1;
    }
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
    // Random pairs recorded from apk-tools 2.14.10 (see the file's header).
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/apk-version-vectors-2.14-random.txt"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let mut n = 0;
    let mut failures = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let f: Vec<&str> = line.split(' ').collect();
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
        if validate(a) != (valid[0] == b'y') || validate(b) != (valid[1] == b'y') {
            failures.push(format!("validity of {a} / {b}"));
        }
        n += 1;
    }
    assert!(n > 400, "{n}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
