#!/usr/bin/env bash
# Builds the root= demo disk: an ext4 image (label "rootfs") with a static busybox whose init
# prints markers, shows ramboot's timeline and powers off. Usage: make-rootfs.sh OUT.img
set -euo pipefail
source "$(dirname "$0")/common.sh"
kernel_ready
img=${1:-$OUT/rootfs.img}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir"/{bin,sbin,etc,proc,sys,dev,run,tmp,root,media}
cp "$BUSYBOX" "$dir/bin/busybox"
ln -s /bin/busybox "$dir/sbin/init"
ln -s busybox "$dir/bin/sh"
cat > "$dir/etc/inittab" <<'TAB'
::sysinit:/etc/rc.boot
TAB
cat > "$dir/etc/rc.boot" <<'RC'
#!/bin/sh
bb=/bin/busybox
echo "RAMBOOT-DEMO: init is running as pid $$ on $($bb cat /proc/cmdline)"
if [ -f /run/ramboot/timeline.json ]; then
  echo "RAMBOOT-DEMO: timeline $($bb cat /run/ramboot/timeline.json)"
else
  echo "RAMBOOT-DEMO: timeline missing"
fi
echo "RAMBOOT-DEMO: mounts: $($bb cut -d' ' -f2 /proc/mounts | $bb tr '\n' ' ')"
echo "RAMBOOT-DEMO: initramfs freed: $([ -e /init ] && echo no || echo yes)"
echo "RAMBOOT-DEMO: done, powering off"
$bb poweroff -f
RC
chmod 755 "$dir/etc/rc.boot"
rm -f "$img"
mkfs.ext4 -q -F -L rootfs -U 2b1f7e2a-6a0c-4bd5-9f0e-3d3c1c5d7e11 -d "$dir" "$img" 32M
echo "$img"
