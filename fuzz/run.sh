#!/usr/bin/env bash
# Runs the libFuzzer targets (bodies in ramboot::fuzzing) one at a time and prints executions and
# crashes per target:
#
#   fuzz/run.sh [SECONDS] [TARGETS...]     # default: 1800 seconds, every target
#
# Installs nightly (rustup) and cargo-fuzz (cargo install) when missing; nightly is only for this,
# never for the build. Seeds come from the test fixtures (examples/fuzz_seeds.rs); the corpus
# grows in a work directory ($FUZZ_WORK, or a new temp dir) that can be passed again to resume.
# Crash inputs are copied to fuzz/artifacts/<target>/; replay one with
#   RAMBOOT_FUZZ_INPUT=<target>:<file> cargo test --test fuzz_targets replay
# and commit it under tests/data/fuzz-regressions/<target>/ with the fix.
#
# As root the targets run as nobody (setpriv): a bug that follows a symlink out of a scratch root
# then meets permission errors instead of changing the host, and the sentinel beside the scratch
# root still reports it. Everything runs under `nice -n 19`.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
secs=${1:-1800}
[ $# -gt 0 ] && shift
all=$(sed -n 's/^name = "\(.*\)"$/\1/p' "$here/Cargo.toml" | grep -vx 'ramboot-fuzz')
targets=${*:-$all}

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

work=${FUZZ_WORK:-$(mktemp -d /tmp/ramboot-fuzz.XXXXXX)}
mkdir -p "$work/logs"
echo "work directory: $work"
# Scratch roots of the file-based targets: on tmpfs when there is one (fewer disk writes).
scratch=$(mktemp -d "$( [ -d /dev/shm ] && echo /dev/shm || echo "$work" )/ramboot-fuzz-tmp.XXXXXX")
trap 'rm -rf "$scratch"' EXIT

cd "$repo"
nice -n 19 cargo run --quiet --example fuzz_seeds -- "$work/seeds"
nice -n 19 cargo +nightly fuzz build
bin_dir="$here/target/x86_64-unknown-linux-gnu/release"

as_user=()
if [ "$(id -u)" = 0 ]; then
    chown -R 65534:65534 "$work" "$scratch"
    as_user=(setpriv --reuid=65534 --regid=65534 --clear-groups --)
fi

summary=()
for t in $targets; do
    corpus="$work/corpus/$t" artifacts="$work/artifacts/$t" log="$work/logs/$t.log"
    # Crashes of an earlier run were copied to fuzz/artifacts already: count this run's only.
    rm -rf "$artifacts"
    mkdir -p "$corpus" "$artifacts" "$work/seeds/$t"
    [ "$(id -u)" = 0 ] && chown 65534:65534 "$corpus" "$artifacts" "$work/corpus"
    echo "== $t: $secs s"
    # libFuzzer stops at the first crash; its exit status is the crash, reported below.
    TMPDIR="$scratch" nice -n 19 "${as_user[@]}" "$bin_dir/$t" "$corpus" "$work/seeds/$t" \
        -max_total_time="$secs" -timeout=30 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$artifacts/" >"$log" 2>&1 || true
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    [ -n "$execs" ] || execs=$(grep -o '^#[0-9]*' "$log" | tail -1 | tr -d '#')
    crashes=$(find "$artifacts" -type f | wc -l)
    if [ "$crashes" -gt 0 ]; then
        mkdir -p "$here/artifacts/$t"
        cp "$artifacts"/* "$here/artifacts/$t/"
        grep -m1 -E 'panicked at|ERROR: (AddressSanitizer|libFuzzer)' "$log" || true
    fi
    summary+=("$(printf '%-14s %12s %8s' "$t" "${execs:-?}" "$crashes")")
done

printf '\n%-14s %12s %8s\n' target executions crashes
printf '%s\n' "${summary[@]}"
echo "logs and corpus: $work"
