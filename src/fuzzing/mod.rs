//! Fuzz target bodies for every parser of untrusted input.
//!
//! Why here and not in `fuzz/`: the bodies are ordinary library code, so a stable-Rust test
//! (`tests/fuzz_targets.rs`) runs each over its seeds and a few thousand pseudo-random inputs on
//! every `cargo test`, and the cargo-fuzz crate in `fuzz/` (nightly, libFuzzer) only wraps them.
//! A body never returns an error: it panics when an invariant breaks (a parser panicked, a round
//! trip changed something, an apkovl wrote outside its root), which is what both drivers report.
//!
//! Inputs that need structure the fuzzer would rarely guess (gzip CRCs, several files at once)
//! are built by the body from the raw bytes: see each target's documentation for the layout.
//! `examples/fuzz_seeds.rs` writes seed inputs in these layouts from the test fixtures.
//!
//! Not part of the public API.

mod json_check;
mod streams;
mod system;
mod text;

pub use streams::{
    apk_stream, apk_stream_bytes, apkovl, fuzz_key, fuzz_keyring, FUZZ_KEY_NAME, GZ_MEMBER_SPLIT,
};
pub use system::{modules, superblock, SPARSE_MAGIC};
pub use text::{apkindex, cmdline, dep_atoms, fstab, installed_db};

/// A fuzz target body.
pub type Body = fn(&[u8]);

/// Every target by name, in the order `fuzz/run.sh` runs them.
pub const TARGETS: &[(&str, Body)] = &[
    ("cmdline", cmdline),
    ("apkindex", apkindex),
    ("installed_db", installed_db),
    ("dep_atoms", dep_atoms),
    ("apk_stream", apk_stream),
    ("apkovl", apkovl),
    ("modules", modules),
    ("superblock", superblock),
    ("fstab", fstab),
];

/// The body of the target called `name`.
pub fn target(name: &str) -> Option<Body> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}

/// Separates the parts of a multi-part input (files of one directory, text and arguments).
pub const PART_SPLIT: u8 = 0x01;

/// The `n` parts of `data` split at [`PART_SPLIT`]; missing parts are empty, the last one takes
/// the rest (separators included).
fn parts(data: &[u8], n: usize) -> Vec<&[u8]> {
    let mut out: Vec<&[u8]> = data.splitn(n, |&b| b == PART_SPLIT).collect();
    out.resize(n, &[]);
    out
}

/// Lossy text: parsers of files take `&str`, and the callers read files with lossy or strict
/// UTF-8 decoding (strict ones fail before parsing, so lossy covers both).
fn text(data: &[u8]) -> String {
    String::from_utf8_lossy(data).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_pad_and_keep_the_rest() {
        assert_eq!(
            parts(b"a\x01b\x01c\x01d", 3),
            vec![&b"a"[..], b"b", b"c\x01d"]
        );
        assert_eq!(parts(b"a", 3), vec![&b"a"[..], b"", b""]);
    }

    #[test]
    fn every_target_runs_on_empty_input() {
        for (_, body) in TARGETS {
            body(&[]);
        }
    }
}
