#!/usr/bin/env bash
# The README's first command: build everything and boot the demo in QEMU aarch64 (offline once
# setup-host.sh has run). Prints the serial console.
set -euo pipefail
here=$(dirname "$0")
bash "$here/setup-host.sh"
source "$here/common.sh"
kernel_ready
bash "$here/make-initramfs.sh" "$OUT/demo-initrd" -F base,virtio,ext4
bash "$here/make-rootfs.sh" "$OUT/rootfs.img" >/dev/null
qemu_virt "$OUT/demo-initrd" "console=ttyAMA0 root=LABEL=rootfs rootfstype=ext4" \
  -drive if=none,id=d0,file="$OUT/rootfs.img",format=raw -device virtio-blk-pci,drive=d0
