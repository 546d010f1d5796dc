//! The fuzz target bodies (`ramboot::fuzzing`) on stable Rust: each runs over its seeds (the
//! committed regression inputs among them) and a few thousand inputs mutated from them with a
//! fixed-seed generator, so every `cargo test` repeats the same search. A failing input is saved
//! and its path printed, ready for `tests/data/fuzz-regressions/<target>/`.
//!
//! The long runs are libFuzzer's: `fuzz/run.sh`.

mod fuzz_support;

use ramboot::fuzzing::{target, TARGETS};
use ramboot::xorshift::Xorshift;
use std::path::PathBuf;
use std::sync::OnceLock;

/// Mutated inputs per target.
const MUTATIONS: usize = 3000;

fn seeds(name: &str) -> Vec<Vec<u8>> {
    static ALL: OnceLock<Vec<fuzz_support::Seed>> = OnceLock::new();
    ALL.get_or_init(fuzz_support::all)
        .iter()
        .filter(|(t, _, _)| *t == name)
        .map(|(_, _, b)| b.clone())
        .collect()
}

/// Interesting bytes: separators the targets use, tar and text structure, boundaries.
const DICT: &[&[u8]] = &[
    b"\x01",
    b"\x01GZ\x01",
    b"\0",
    b"\n",
    b"=",
    b"\"",
    b":",
    b"/",
    b"../",
    b"\xff\xff\xff\xff",
    b"0000777\0",
    b"ustar\0",
    b"-r0",
    b"_rc",
];

fn mutate(rng: &mut Xorshift, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut v = seeds[rng.below(seeds.len())].clone();
    if rng.below(16) == 0 {
        return (0..rng.below(512)).map(|_| rng.next_u64() as u8).collect();
    }
    for _ in 0..=rng.below(8) {
        let len = v.len();
        let at = rng.below(len + 1);
        match rng.below(7) {
            0 if len > 0 => v[at.min(len - 1)] ^= 1 << rng.below(8),
            1 if len > 0 => v[at.min(len - 1)] = rng.next_u64() as u8,
            2 => {
                let d = DICT[rng.below(DICT.len())];
                v.splice(at..at, d.iter().copied());
            }
            3 => {
                let end = (at + rng.below(64)).min(len);
                v.drain(at..end);
            }
            4 => v.truncate(at),
            5 if len > 0 => {
                let from = rng.below(len);
                let end = (from + rng.below(128)).min(len);
                let copy = v[from..end].to_vec();
                v.splice(at..at, copy);
            }
            _ => {
                let other = &seeds[rng.below(seeds.len())];
                let from = rng.below(other.len() + 1);
                v.truncate(at);
                v.extend_from_slice(&other[from..]);
            }
        }
    }
    v
}

fn failure_path(name: &str, n: usize) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let _ = std::fs::create_dir_all(&dir);
    dir.join(format!("fuzz-failure-{name}-{n}"))
}

fn run_one(name: &str, body: fn(&[u8]), input: &[u8], n: usize) {
    if std::panic::catch_unwind(|| body(input)).is_err() {
        let mut path = failure_path(name, n);
        if std::fs::write(&path, input).is_err() {
            path = std::env::temp_dir().join(format!("fuzz-failure-{name}-{n}"));
            let _ = std::fs::write(&path, input);
        }
        panic!(
            "fuzz target {name} failed on input {n}, saved as {}",
            path.display()
        );
    }
}

fn run(name: &str) {
    let body = target(name).expect("known target");
    let seeds = seeds(name);
    assert!(!seeds.is_empty(), "no seeds for {name}");
    for (n, s) in seeds.iter().enumerate() {
        run_one(name, body, s, n);
    }
    let mut rng = Xorshift(0x9e37_79b9_7f4a_7c15 ^ name.len() as u64);
    for n in 0..MUTATIONS {
        let input = mutate(&mut rng, &seeds);
        run_one(name, body, &input, seeds.len() + n);
    }
}

#[test]
fn cmdline() {
    run("cmdline");
}

#[test]
fn apkindex() {
    run("apkindex");
}

#[test]
fn installed_db() {
    run("installed_db");
}

#[test]
fn dep_atoms() {
    run("dep_atoms");
}

#[test]
fn apk_stream() {
    run("apk_stream");
}

#[test]
fn modules() {
    run("modules");
}

#[test]
fn superblock() {
    run("superblock");
}

#[test]
fn fstab() {
    run("fstab");
}

/// As root, runs itself again as `nobody`: a bug that follows a symlink out of the scratch root
/// then meets permission errors on the host instead of changing it (the sentinel beside the root
/// still catches it), and modes in the archive matter as they do for an unprivileged extractor.
#[test]
fn apkovl() {
    const CHILD: &str = "RAMBOOT_FUZZ_UNPRIVILEGED";
    #[allow(clippy::disallowed_methods)]
    let root = rustix::process::geteuid().is_root();
    if root && std::env::var_os(CHILD).is_none() {
        use std::os::unix::process::CommandExt;
        #[allow(clippy::disallowed_methods)]
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "apkovl", "--nocapture", "--test-threads=1"])
            .env(CHILD, "1")
            .env("TMPDIR", std::env::temp_dir())
            .uid(65534)
            .gid(65534)
            .status()
            .expect("rerun as nobody");
        assert!(status.success(), "apkovl fuzz target failed as nobody");
    } else {
        run("apkovl");
    }
}

/// Unmutated package and index seeds verify (the member layout gzips back to the built bytes),
/// so the fuzzer starts from the accepting path, not only from refusals.
#[test]
fn stream_seeds_verify() {
    use ramboot::apk::stream::{read_index, read_package, ControlOnly, Verify};
    use ramboot::fuzzing::{apk_stream_bytes, fuzz_keyring};
    let seeds: Vec<_> = fuzz_support::all()
        .into_iter()
        .filter(|(t, n, _)| {
            *t == "apk_stream" && !n.starts_with("regression") && !n.contains("unsigned")
        })
        .collect();
    assert!(seeds.len() >= 10);
    for (_, name, bytes) in seeds {
        let (_, stream) = apk_stream_bytes(&bytes).unwrap();
        let ok = if name.starts_with("index") {
            read_index(&stream[..], &name, fuzz_keyring(), false).is_ok()
        } else {
            let keys = Verify::Signature {
                keys: fuzz_keyring(),
                allow_untrusted: false,
            };
            read_package(&stream[..], &name, keys, &mut ControlOnly).is_ok()
        };
        assert!(ok, "seed {name} does not verify");
    }
}

/// `RAMBOOT_FUZZ_INPUT=<target>:<file>` runs one input (a saved failure, a libFuzzer artifact)
/// through its target, panicking the way the fuzzer saw; without it, nothing to do.
#[test]
fn replay() {
    let Ok(spec) = std::env::var("RAMBOOT_FUZZ_INPUT") else {
        return;
    };
    let (name, file) = spec
        .split_once(':')
        .expect("RAMBOOT_FUZZ_INPUT=<target>:<file>");
    let body = target(name).expect("known target");
    body(&std::fs::read(file).expect("input file"));
}

/// Every target has a cargo-fuzz binary that calls its body, and nothing else does.
#[test]
fn cargo_fuzz_crate_lists_every_target() {
    let fuzz = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let manifest = std::fs::read_to_string(fuzz.join("Cargo.toml")).unwrap();
    let mut files: Vec<String> = std::fs::read_dir(fuzz.join("fuzz_targets"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut want: Vec<String> = TARGETS.iter().map(|(n, _)| format!("{n}.rs")).collect();
    want.sort();
    assert_eq!(files, want);
    for (n, _) in TARGETS {
        let src =
            std::fs::read_to_string(fuzz.join("fuzz_targets").join(format!("{n}.rs"))).unwrap();
        assert!(src.contains(&format!("ramboot::fuzzing::{n}(")), "{n}.rs");
        assert!(
            manifest.contains(&format!("name = \"{n}\"")),
            "{n} in fuzz/Cargo.toml"
        );
    }
}
