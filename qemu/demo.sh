#!/usr/bin/env bash
# The README's first command: builds everything and boots the diskless demo in QEMU aarch64
# (offline once qemu/setup-host.sh has fetched its packages). Prints the serial console.
#
#   1. host packages, Rust targets, the Debian arm64 kernel and busybox-static (cached);
#   2. an Alpine-layout boot disk (qemu/make-media.sh): FAT partition with a signed boot
#      repository of packages built by ramboot, <hostname>.apkovl.tar.gz, boot/modloop-virt;
#   3. ramboot's initramfs (ramboot as /init, virtio + vfat drivers, the apk key, the modloop
#      signature, busybox for the rescue shell);
#   4. boots it with the command line in kernel-cmdline/qemu-virt-aarch64.txt, no root=.
# The demo system prints what it got (hostname and config from the apkovl, modules from the
# modloop, installed packages, ramboot's timeline) and powers off.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bash "$here/setup-host.sh"
source "$here/common.sh"
kernel_ready
echo "== building the boot media"
bash "$here/make-media.sh" "$OUT/demo" >/dev/null
key=$(ls "$OUT"/demo/keys/*.rsa.pub)
sig=$(ls "$OUT"/demo/initramfs-files/)
echo "== building the initramfs"
bash "$here/make-initramfs.sh" "$OUT/demo-initrd" -F base,virtio,vfat --apk-key "$key" \
  --file "$OUT/demo/initramfs-files/$sig:/var/cache/misc/$sig"
echo "== booting (QEMU aarch64, TCG)"
qemu_virt "$OUT/demo-initrd" "$(cat "$REPO/kernel-cmdline/qemu-virt-aarch64.txt")" \
  -drive if=none,id=d0,file="$OUT/demo/media.img",format=raw,snapshot=on -device virtio-blk-pci,drive=d0
