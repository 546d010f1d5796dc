#!/usr/bin/env bash
# Builds ramboot's initramfs for the Debian arm64 kernel. Usage: make-initramfs.sh OUT [mkinitfs args...]
# Default contents: features base,virtio,ext4 and a busybox rescue shell.
# With --tls among the args: the TLS init build (ramboot-init-tls) and a CA bundle (--ca-bundle).
set -euo pipefail
source "$(dirname "$0")/common.sh"
kernel_ready
out=$1; shift
case " $* " in
  *" --tls "*) init=$(ramboot_aarch64_tls) ;;
  *) init=$(ramboot_aarch64) ;;
esac
host=$(ramboot_host)
"$host" mkinitfs -o "$out" --init "$init" --kernel-modules "$KMODS" \
  --busybox "$BUSYBOX" "$@"
