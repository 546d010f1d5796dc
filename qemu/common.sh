# Shared settings for the QEMU scripts: source it, don't run it.
# RAMBOOT_HOST: a host build of ramboot (for mkinitfs); built with cargo when unset.
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

# The static aarch64 /init.
ramboot_aarch64() {
  (cd "$REPO" && cargo build --quiet --release --target aarch64-unknown-linux-musl)
  echo "$REPO/target/aarch64-unknown-linux-musl/release/ramboot"
}

# The host tool.
ramboot_host() {
  if [ -n "${RAMBOOT_HOST:-}" ]; then echo "$RAMBOOT_HOST"; return; fi
  (cd "$REPO" && cargo build --quiet --release)
  echo "$REPO/target/release/ramboot"
}

# qemu_virt INITRD APPEND [extra qemu args...]: boots -M virt, console on stdout.
qemu_virt() {
  local initrd=$1 append=$2; shift 2
  timeout --foreground "${QEMU_TIMEOUT:-120}" qemu-system-aarch64 -M virt -cpu cortex-a57 -m 512 -smp 1 \
    -nographic -no-reboot -kernel "$KIMAGE" -initrd "$initrd" -append "$append" -nic none "$@"
}
