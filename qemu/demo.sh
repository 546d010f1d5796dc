#!/usr/bin/env bash
# The README's first command: builds everything and boots the diskless demo in QEMU aarch64
# (offline once qemu/setup-host.sh has fetched its packages). Prints each step with its
# duration, cargo's progress, then the serial console of the boot.
#
#   1. host packages and Rust targets (qemu/setup-host.sh);
#   2. the Debian arm64 kernel, its modules and busybox-static (downloaded once, cached);
#   3. ramboot for this host (mkinitfs, the package tools) and for aarch64 (the static /init);
#   4. an Alpine-layout boot disk (qemu/make-media.sh): FAT partition with a signed boot
#      repository of packages built by ramboot, <hostname>.apkovl.tar.gz, boot/modloop-virt;
#   5. ramboot's initramfs (ramboot as /init, virtio + vfat drivers, the apk key, the modloop
#      signature, busybox for the rescue shell);
#   6. boots it with the command line in kernel-cmdline/qemu-virt-aarch64.txt, no root=.
# The demo system prints what it got (hostname and config from the apkovl, modules from the
# modloop, installed packages, ramboot's timeline) and powers off.
# With --services: the same media's services.img booted with `ramboot_init`: ramboot stays PID 1
# (no OpenRC on the media) and supervises the apkovl's /etc/ramboot/services/hello, which
# prints its greeting and powers off through busybox poweroff (SIGUSR2 to PID 1).
# Measured on a shared 2-core machine: 3 min 48 s from a fresh clone (two release builds, the
# kernel download, the modloop), 6 s when run again; see the README.
set -euo pipefail
image=media.img append_extra=""
case ${1:-} in
  --services) image=services.img append_extra=" ramboot_init" ;;
  "") ;;
  *) echo "usage: demo.sh [--services]" >&2; exit 2 ;;
esac
here=$(cd "$(dirname "$0")" && pwd)
source "$here/common.sh"
started=$(date +%s.%N)
export CARGO_QUIET=""
step "host packages and Rust targets (qemu/setup-host.sh)" bash "$here/setup-host.sh"
step "Debian arm64 kernel and busybox (downloaded once into $CACHE)" kernel_ready
build_host() { RAMBOOT_HOST=$(ramboot_host); export RAMBOOT_HOST; }
build_init() { RAMBOOT_INIT=$(ramboot_aarch64); export RAMBOOT_INIT; }
step "building ramboot for this host (cargo build --release)" build_host
step "building the static aarch64 /init (cargo build --release --target aarch64-unknown-linux-musl)" build_init
step "building the boot media (qemu/make-media.sh)" bash "$here/make-media.sh" "$OUT/demo"
key=$(ls "$OUT"/demo/keys/*.rsa.pub)
sig=$(ls "$OUT"/demo/initramfs-files/)
step "building the initramfs (ramboot mkinitfs)" bash "$here/make-initramfs.sh" "$OUT/demo-initrd" \
  -F base,virtio,vfat --apk-key "$key" --file "$OUT/demo/initramfs-files/$sig:/var/cache/misc/$sig"
step "booting (QEMU aarch64, TCG: no KVM needed)" qemu_virt "$OUT/demo-initrd" \
  "$(cat "$REPO/kernel-cmdline/qemu-virt-aarch64.txt")$append_extra" \
  -drive if=none,id=d0,file="$OUT/demo/$image",format=raw,snapshot=on -device virtio-blk-pci,drive=d0
echo "== demo done in $(since "$started") s:"
printf '%s\n' "${STEPS[@]}"
