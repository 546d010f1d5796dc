#!/usr/bin/env bash
# The README's first command: builds everything and boots the diskless demo in QEMU aarch64
# (offline once qemu/setup-host.sh has fetched its packages). Prints each step with its
# duration, cargo's progress, then the serial console of the boot.
#
#   1. host packages and Rust targets (qemu/setup-host.sh);
#   2. the Debian arm64 kernel, its modules and busybox-static (downloaded once, cached);
#   3. ramboot for this host (mkinitfs, the package tools) and for aarch64 (the static /init);
#   4. the demo's packages, signed repository, apkovls and modloop (qemu/make-media.sh);
#   5. the card (`ramboot sdimage --target virt`): MBR + FAT32 written in user space, with the
#      repository, <hostname>.apkovl.tar.gz, boot/modloop-virt, the kernel, extlinux.conf and
#      ramboot's initramfs, which sdimage builds (ramboot as /init, virtio + vfat drivers, the
#      apk key, the modloop signature, busybox for the rescue shell);
#   6. boots the card's kernel and initramfs (as U-Boot's extlinux would) with the command line
#      in kernel-cmdline/qemu-virt-aarch64.txt, no root=.
# The demo system prints what it got (hostname and config from the apkovl, modules from the
# modloop, installed packages, ramboot's timeline) and powers off.
# With --services: the card carries the services apkovl and boots with `ramboot_init`: ramboot stays PID 1
# (no OpenRC on the media) and supervises the apkovl's /etc/ramboot/services/hello, which
# prints its greeting and powers off through busybox poweroff (SIGUSR2 to PID 1).
# Measured on a shared 2-core machine: 3 min 48 s from a fresh clone (two release builds, the
# kernel download, the modloop), 6 s when run again; see the README.
set -euo pipefail
apkovls=media append_extra=""
case ${1:-} in
  --services) apkovls=services append_extra=" ramboot_init" ;;
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
step "the demo's packages, repository and modloop (qemu/make-media.sh)" bash "$here/make-media.sh" "$OUT/demo"
key=$(ls "$OUT"/demo/keys/*.rsa)
cmdline="$(cat "$REPO/kernel-cmdline/qemu-virt-aarch64.txt")$append_extra"
make_card() {
  "$RAMBOOT_HOST" sdimage -o "$OUT/demo-card.img" --target virt \
    --repo "$OUT/demo/stage/apks" --key "$key" --cache "$OUT/demo/stage/cache" \
    --apkovl "$(ls "$OUT"/demo/apkovls/$apkovls/*.apkovl.tar.gz)" \
    --modloop "$OUT/demo/stage/boot/modloop-virt" \
    --file "$OUT/demo/stage/.alpine-release:.alpine-release" \
    --kernel "$KIMAGE" --init "$RAMBOOT_INIT" --kernel-modules "$KMODS" --busybox "$BUSYBOX" \
    -F base,virtio,vfat --cmdline "$cmdline" --initramfs-out "$OUT/demo-initrd"
}
step "writing the card (ramboot sdimage --target virt)" make_card
step "booting (QEMU aarch64, TCG: no KVM needed)" qemu_virt "$OUT/demo-initrd" "$cmdline" \
  -drive if=none,id=d0,file="$OUT/demo-card.img",format=raw,snapshot=on -device virtio-blk-pci,drive=d0
echo "== demo done in $(since "$started") s:"
printf '%s\n' "${STEPS[@]}"
