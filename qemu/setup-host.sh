#!/usr/bin/env bash
# Installs everything the build and the tests need on a fresh Debian/Ubuntu machine: QEMU, the
# tools the image tests check cards with (fsck.fat; e2fsprogs, whose mkfs.ext4 -d and debugfs
# also write `ramboot sdimage`'s ext4 data partition), the mkfs tools the probe tests compare
# against, a static busybox for the package script tests. Tests fail under CI (env CI set) when
# one is missing, so nothing is skipped there. No mtools: cards are written by `ramboot sdimage`.
# Idempotent: re-running it only checks. Needs root (or sudo) for apt-get.
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

rustup target add aarch64-unknown-linux-musl x86_64-unknown-linux-musl >/dev/null
# clippy runs the system-boundary lint (clippy.toml) in the test command.
rustup component add clippy >/dev/null 2>&1

need=()
for pair in qemu-system-aarch64:qemu-system-arm qemu-aarch64-static:qemu-user-static \
    mkfs.vfat:dosfstools fsck.fat:dosfstools depmod:kmod mksquashfs:squashfs-tools \
    mkfs.ext4:e2fsprogs debugfs:e2fsprogs e2fsck:e2fsprogs cpio:cpio openssl:openssl sfdisk:fdisk \
    zstd:zstd xz:xz-utils \
    blkid:util-linux mkfs.btrfs:btrfs-progs mkfs.xfs:xfsprogs mkfs.f2fs:f2fs-tools \
    mkfs.exfat:exfatprogs genisoimage:genisoimage unshare:util-linux socat:socat; do
  cmd=${pair%%:*}; pkg=${pair#*:}
  command -v "$cmd" >/dev/null 2>&1 || [ -x "/sbin/$cmd" ] || [ -x "/usr/sbin/$cmd" ] || need+=("$pkg")
done
# A static busybox for this machine (package scripts run chrooted in the tests).
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' || need+=(busybox-static)
# The CA bundle `ramboot mkinitfs --tls` puts into the initramfs by default.
[ -f /etc/ssl/certs/ca-certificates.crt ] || need+=(ca-certificates)
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  $SUDO dpkg --add-architecture arm64
  updated=0
else
  updated=1
fi
if [ ${#need[@]} -gt 0 ] || [ "$updated" = 0 ] || [ ! -f /var/lib/apt/lists/.ramboot-updated ]; then
  $SUDO apt-get update -qq
  $SUDO touch /var/lib/apt/lists/.ramboot-updated
fi
if [ ${#need[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
echo "host ready"
