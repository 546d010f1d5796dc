#!/usr/bin/env bash
# Boot timings on QEMU's instruction clock (-icount shift=0,sleep=on: 1 ns of guest time per
# instruction), which makes them repeatable between runs and commits. Boots the root= demo and the
# diskless demo (building what is missing) and prints ramboot's one-line timeline of each.
# Usage: bench-boot.sh [runs]   (default 1)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/common.sh"
kernel_ready
runs=${1:-1}
# The demo media plus 19 filler packages: 23 packages of ~21 MiB, the size of the stock Alpine
# reference in qemu-facts (23 packages, ~23 MiB installed).
[ -f "$OUT/bench-media/media.img" ] || bash "$here/make-media.sh" "$OUT/bench-media" --filler 19 >/dev/null
fillers=$(seq -s, -f 'filler%g' 19)
key=$(ls "$OUT"/bench-media/keys/*.rsa.pub)
sig=$(ls "$OUT"/bench-media/initramfs-files/)
bash "$here/make-initramfs.sh" "$OUT/bench-diskless" -F base,virtio,vfat --apk-key "$key" \
  --file "$OUT/bench-media/initramfs-files/$sig:/var/cache/misc/$sig" >/dev/null
bash "$here/make-initramfs.sh" "$OUT/bench-root" -F base,virtio,ext4 >/dev/null
[ -f "$OUT/rootfs.img" ] || bash "$here/make-rootfs.sh" "$OUT/rootfs.img" >/dev/null
echo "initramfs sizes: diskless $(stat -c %s "$OUT/bench-diskless") bytes, root= $(stat -c %s "$OUT/bench-root") bytes"
for i in $(seq "$runs"); do
  echo "== root= (ext4 on virtio), run $i"
  QEMU_TIMEOUT=300 qemu_virt "$OUT/bench-root" "console=ttyAMA0 root=/dev/vda rootfstype=ext4" -icount shift=0,sleep=on \
    -drive if=none,id=d0,file="$OUT/rootfs.img",format=raw,snapshot=on -device virtio-blk-pci,drive=d0 \
    | grep -a -E "Run /init|ramboot: kernel" | grep -v "^\[.*ramboot: ramboot" || true
  echo "== diskless (FAT on virtio, repository + apkovl + modloop, 23 packages), run $i"
  QEMU_TIMEOUT=300 qemu_virt "$OUT/bench-diskless" "console=ttyAMA0 pkgs=$fillers" -icount shift=0,sleep=on \
    -drive if=none,id=d0,file="$OUT/bench-media/media.img",format=raw,snapshot=on -device virtio-blk-pci,drive=d0 \
    | grep -a -E "Run /init|ramboot: kernel" | grep -v "^\[.*ramboot: ramboot" || true
done
