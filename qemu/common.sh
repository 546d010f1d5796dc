# Shared settings for the QEMU scripts: source it, don't run it.
# RAMBOOT_HOST: a host build of ramboot (for mkinitfs); built with cargo when unset.
# RAMBOOT_INIT: the static aarch64 init build (ramboot-init) for /init; built with cargo when unset.
# CARGO_QUIET: cargo's verbosity flag for those builds (default --quiet; empty shows progress).
# RAMBOOT_CACHE: where the Debian kernel and busybox live (qemu/fetch-kernel.sh).
# RAMBOOT_OUT: where images go.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${RAMBOOT_CACHE:-$REPO/target/qemu-cache}
OUT=${RAMBOOT_OUT:-$REPO/target/qemu}
mkdir -p "$OUT"

kernel_ready() {
  RAMBOOT_CACHE=$CACHE bash "$REPO/qemu/fetch-kernel.sh" >/dev/null
  KVER=$(cat "$CACHE/kernel/kver")
  KMODS=$CACHE/kernel/lib/modules/$KVER
  KIMAGE=$CACHE/kernel/Image
  BUSYBOX=$CACHE/busybox/bin/busybox
  DTB_RPI3=$(ls "$CACHE"/kernel/usr/lib/linux-image-*/broadcom/bcm2837-rpi-3-b.dtb)
}

CARGO_QUIET=${CARGO_QUIET---quiet}

# The static aarch64 /init.
ramboot_aarch64() {
  if [ -n "${RAMBOOT_INIT:-}" ]; then echo "$RAMBOOT_INIT"; return; fi
  (cd "$REPO" && cargo build $CARGO_QUIET --release --target aarch64-unknown-linux-musl >&2)
  echo "$REPO/target/aarch64-unknown-linux-musl/release/ramboot-init"
}

# The static aarch64 TLS init (ramboot-init-tls: HTTPS at boot), for `make-initramfs.sh --tls`.
ramboot_aarch64_tls() {
  (cd "$REPO" && cargo build $CARGO_QUIET --release --target aarch64-unknown-linux-musl \
    --features tls --bin ramboot-init-tls >&2)
  echo "$REPO/target/aarch64-unknown-linux-musl/release/ramboot-init-tls"
}

# The host tool.
ramboot_host() {
  if [ -n "${RAMBOOT_HOST:-}" ]; then echo "$RAMBOOT_HOST"; return; fi
  (cd "$REPO" && cargo build $CARGO_QUIET --release >&2)
  echo "$REPO/target/release/ramboot"
}

# step TITLE COMMAND...: runs COMMAND in this shell after a header, then prints its duration
# (also kept in STEPS for a summary).
STEPS=()
step() {
  local title=$1 t0 took
  shift
  t0=$(date +%s.%N)
  echo "== $title"
  "$@"
  took=$(since "$t0")
  echo "   done in $took s"
  STEPS+=("$(printf '%7s s  %s' "$took" "$title")")
}

# since T0: seconds since T0 (from date +%s.%N), one decimal.
since() {
  awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'
}

# qemu_virt INITRD APPEND [extra qemu args...]: boots -M virt, console on stdout.
qemu_virt() {
  local initrd=$1 append=$2; shift 2
  timeout --foreground "${QEMU_TIMEOUT:-120}" qemu-system-aarch64 -M virt -cpu cortex-a57 -m 512 -smp 1 \
    -nographic -no-reboot -kernel "$KIMAGE" -initrd "$initrd" -append "$append" -nic none "$@"
}
