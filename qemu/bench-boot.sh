#!/usr/bin/env bash
# Boot timings on QEMU's instruction clock (-icount shift=0,sleep=on: 1 ns of guest time per
# instruction), which makes them repeatable between runs and commits. Boots every row of the
# README's speed table (building what is missing), prints ramboot's one-line timeline of each
# boot with its per-module load times, then the table: /init to the exec of the new init and,
# for diskless boots, /init to the moment the boot media was ready; the median over the runs.
# Usage: bench-boot.sh [runs]   (default 1)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/common.sh"
kernel_ready
runs=${1:-1}
# The demo media plus 19 filler packages: 23 packages of ~21 MiB, the size of the stock Alpine
# reference in qemu-facts (23 packages, ~23 MiB installed).
[ -f "$OUT/bench-media/media.img" ] || bash "$here/make-media.sh" "$OUT/bench-media" --filler 19 >/dev/null
# The demo exactly as qemu/demo.sh builds and boots it.
[ -f "$OUT/bench-demo/media.img" ] || bash "$here/make-media.sh" "$OUT/bench-demo" >/dev/null
# The realistic card: 30 Alpine-like packages (13 MiB, busybox applet links by its post-install,
# a trigger, openssh-sized binaries), an lbu apkovl, the modloop, the Pi's modules= line.
[ -f "$OUT/bench-card/card.img" ] || bash "$here/make-media.sh" "$OUT/bench-card" --card >/dev/null
card_append="console=ttyAMA0 modules=loop,squashfs,sd-mod,usb-storage quiet"
fillers=$(seq -s, -f 'filler%g' 19)
initrd_with_key() { # OUT MEDIA-DIR [FEATURE]: the diskless initramfs trusting MEDIA-DIR's key and modloop
  local key sig
  key=$(ls "$2"/keys/*.rsa.pub)
  sig=$(ls "$2"/initramfs-files/)
  bash "$here/make-initramfs.sh" "$1" -F "base,virtio,vfat${3:+,$3}" --apk-key "$key" \
    --file "$2/initramfs-files/$sig:/var/cache/misc/$sig" >/dev/null
}
initrd_with_key "$OUT/bench-diskless" "$OUT/bench-media"
initrd_with_key "$OUT/bench-demo-initrd" "$OUT/bench-demo"
# The card's initramfs as for a Pi: USB storage besides the machine's own disk driver.
initrd_with_key "$OUT/bench-card-initrd" "$OUT/bench-card" usb
bash "$here/make-initramfs.sh" "$OUT/bench-root" -F base,virtio,ext4 >/dev/null
[ -f "$OUT/rootfs.img" ] || bash "$here/make-rootfs.sh" "$OUT/rootfs.img" >/dev/null
echo "initramfs sizes: diskless $(stat -c %s "$OUT/bench-diskless") bytes, root= $(stat -c %s "$OUT/bench-root") bytes"

rows=(
  "root= ext4 on virtio (modules: ext4 + deps)"
  "diskless, 23 packages (~21 MiB), apkovl, \`modloop=none\`"
  "the same with the modloop verified and mounted in the initramfs"
  "the demo (4 packages) with the modloop"
  "realistic card (30 packages, 13 MiB, modloop, Pi \`modules=\`), first boot"
  "the same card, second boot (cached installed root when enabled)"
)
# Row 5 boots a writable copy of the card twice and times the second boot: the first one may
# leave the cached installed root on the card (issue 11). CARD_CACHE_APPEND adds command-line
# options to both boots (e.g. to switch the cache on or off).
# boot ROW: one boot of table row ROW on the instruction clock; prints its timeline line and
# appends "ROW MS" to $results.
results=$(mktemp)
card_copy=$(mktemp --suffix=.img)
trap 'rm -f "$results" "$card_copy"' EXIT
console() { # INITRD APPEND IMAGE SNAPSHOT(on|off): one boot on the instruction clock, its console
  QEMU_TIMEOUT=300 qemu_virt "$1" "$2" -icount shift=0,sleep=on \
    -drive if=none,id=d0,file="$3",format=raw,snapshot="$4" -device virtio-blk-pci,drive=d0 \
    | tr -d '\r'
}
boot() {
  local row=$1 initrd append img
  case $row in
    0) initrd=$OUT/bench-root append="console=ttyAMA0 root=/dev/vda rootfstype=ext4" img=$OUT/rootfs.img ;;
    1) initrd=$OUT/bench-diskless append="console=ttyAMA0 pkgs=$fillers modloop=none" img=$OUT/bench-media/media.img ;;
    2) initrd=$OUT/bench-diskless append="console=ttyAMA0 pkgs=$fillers" img=$OUT/bench-media/media.img ;;
    3) initrd=$OUT/bench-demo-initrd append=$(cat "$REPO/kernel-cmdline/qemu-virt-aarch64.txt") img=$OUT/bench-demo/media.img ;;
    4) initrd=$OUT/bench-card-initrd append="$card_append ${CARD_CACHE_APPEND:-}" img=$OUT/bench-card/card.img ;;
    5) initrd=$OUT/bench-card-initrd append="$card_append ${CARD_CACHE_APPEND:-}" img=$card_copy
      cp "$OUT/bench-card/card.img" "$card_copy"
      console "$initrd" "$append" "$img" off > /dev/null ;;
  esac
  local out line
  out=$(console "$initrd" "$append" "$img" "$([ "$row" = 5 ] && echo off || echo on)" || true)
  line=$(printf '%s\n' "$out" | grep -a -m1 -o "ramboot: kernel .*ms in /init)" || true)
  echo "  ${line:-no timeline line: the boot failed (see the console with qemu/demo.sh)}"
  # The booted systems print their whole timeline: each module's load time is in it.
  printf '%s\n' "$out" | grep -a -m1 -o '"modules":\[.*\]' | sed 's/^/  /' || true
  local ms start ready media
  ms=$(printf '%s' "$line" | sed -n 's/.*(\([0-9]*\)ms in \/init)$/\1/p')
  # Diskless: when the boot media was ready (drivers and media search), from /init.
  start=$(printf '%s\n' "$out" | grep -a -m1 -o '"init_start_ms":[0-9.]*' | cut -d: -f2 || true)
  ready=$(printf '%s\n' "$out" | grep -a -m1 -o '"name":"media ready","at_ms":[0-9.]*' | sed 's/.*://' || true)
  media=$(awk -v a="$ready" -v s="$start" 'BEGIN { print (a != "" && s != "") ? sprintf("%.0f", a - s) : "-" }')
  echo "  media ready ${media} ms after /init"
  echo "$row ${ms:-?} $media" >> "$results"
}
for i in $(seq "$runs"); do
  for row in "${!rows[@]}"; do
    echo "== ${rows[$row]}, run $i"
    boot "$row"
  done
done
echo
echo "Instruction clock, median of $runs run(s): /init → exec of the new init, and (diskless)"
echo "/init → boot media ready (drivers and media search):"
echo "| boot | /init → handoff | /init → media ready |"
echo "|---|---|---|"
median() { # ROW COLUMN
  awk -v r="$1" -v c="$2" '$1 == r { print $c }' "$results" | sort -n \
    | awk '{ v[NR] = $1 } END { print (NR ? v[int((NR + 1) / 2)] : "?") }'
}
for row in "${!rows[@]}"; do
  media=$(median "$row" 3)
  echo "| ${rows[$row]} | $(median "$row" 2) ms | $([ "$media" = - ] && echo — || echo "$media ms") |"
done
