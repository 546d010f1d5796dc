#!/usr/bin/env bash
# Fetches the Debian generic arm64 kernel, its modules and DTBs, plus busybox-static:arm64,
# into $RAMBOOT_CACHE (default: target/qemu-cache). Prints nothing but the path on success.
# Needs qemu/setup-host.sh to have run (arm64 architecture added, apt lists updated).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cache=${RAMBOOT_CACHE:-$here/target/qemu-cache}
mkdir -p "$cache"
cd "$cache"
if [ -f kernel/.done ] && [ -f busybox/.done ]; then echo "$cache"; exit 0; fi

pkg=$(apt-cache depends linux-image-arm64:arm64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
pkg=${pkg%:arm64}
[ -n "$pkg" ] || { echo "fetch-kernel: cannot resolve linux-image-arm64:arm64 (run qemu/setup-host.sh)" >&2; exit 1; }
rm -rf kernel busybox dl && mkdir -p kernel busybox dl
( cd dl && chmod 777 . && apt-get download -qq "$pkg:arm64" busybox-static:arm64 >/dev/null )
dpkg-deb -x dl/"${pkg}"_*.deb kernel
dpkg-deb -x dl/busybox-static_*.deb busybox
kver=$(ls kernel/lib/modules | head -n1)
depmod -b kernel "$kver"
if gzip -t kernel/boot/vmlinuz-"$kver" 2>/dev/null; then
  gzip -dc kernel/boot/vmlinuz-"$kver" > kernel/Image
else
  cp kernel/boot/vmlinuz-"$kver" kernel/Image
fi
echo "$kver" > kernel/kver
rm -rf dl
touch kernel/.done busybox/.done
echo "$cache"
