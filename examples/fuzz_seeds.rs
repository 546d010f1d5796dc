//! Writes the fuzz seed corpora: `cargo run --example fuzz_seeds -- DIR` (default `fuzz/seeds`)
//! creates `DIR/<target>/<seed>` for every target of `ramboot::fuzzing`, from the test fixtures
//! (see `tests/fuzz_support`). `fuzz/run.sh` calls it before fuzzing.

#[path = "../tests/fuzz_support/mod.rs"]
mod fuzz_support;

fn main() {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "fuzz/seeds".into());
    let dir = std::path::Path::new(&dir);
    let count = fuzz_support::write_all(dir);
    println!("{count} seeds written under {}", dir.display());
}
