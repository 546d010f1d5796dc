#!/usr/bin/env bash
# Builds Alpine-layout boot media for the diskless scenarios: an MBR disk image with one FAT32
# partition holding a signed boot repository (apks/<arch>, .boot_repository), an apkovl,
# boot/modloop-<flavor> (squashfs of the Debian kernel's storage/fs modules) and cache/.
# Every package is built here by ramboot itself from Debian's busybox-static:arm64.
#
# Usage: make-media.sh OUTDIR [--size MB] [--hostname NAME] [--all] [--filler N]
# --filler N adds packages filler1..fillerN of about 1 MiB installed each (half random, half text:
# like binaries and their data), for boot benchmarks with a realistic package volume.
# Writes, sharing one signed repository, modloop and key:
#   OUTDIR/media.img            the demo: one apkovl <hostname>.apkovl.tar.gz (media seen as vda1)
#   OUTDIR/services.img         service mode (boot with ramboot_init): an apkovl with its own
#                               /etc/inittab (no OpenRC) and /etc/ramboot/services/ (make_services)
#   OUTDIR/openrc.img           service mode with Alpine's inittab and a stand-in /sbin/openrc
#                               (make_openrc)
#   OUTDIR/crashy.img           service mode with a service that crashes at once (make_crashy)
# and with --all also the variants the tests use:
#   OUTDIR/sd.img               the same for a Raspberry Pi SD card (mmcblk0p1)
#   OUTDIR/usb.img              the same for a USB stick (moved to /media/usb, as in Alpine)
#   OUTDIR/two-apkovls.img      plus an older zz-old.apkovl.tar.gz
#   OUTDIR/corrupt-apkovl.img   the apkovl cut in half
#   OUTDIR/no-apkovl.img        a repository and modloop, no apkovl
# plus OUTDIR/keys/<name>.rsa.pub (the trusted apk key, for the initramfs) and
# OUTDIR/initramfs-files/modloop-virt.SIGN.RSA.<key>.pub (the modloop signature, for the
# initramfs's /var/cache/misc). --size must be a power of two for -M raspi3b (default 256).
set -euo pipefail
source "$(dirname "$0")/common.sh"
kernel_ready
out=$1; shift
size=256 hostname=ramboot-demo all=0 filler=0
while [ $# -gt 0 ]; do
  case $1 in
    --size) size=$2; shift ;;
    --hostname) hostname=$2; shift ;;
    --all) all=1 ;;
    --filler) filler=$2; shift ;;
    *) echo "make-media.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
host=$(ramboot_host)
arch=aarch64
flavor=virt
rm -rf "$out" && mkdir -p "$out"/{keys,initramfs-files} "$out/stage/apks/$arch" "$out/stage/boot" "$out/stage/cache"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Keys: the trusted one (shipped in the initramfs) and an untrusted one for the negative cases.
"$host" apk genkey --out "$out/keys" --name ramboot-demo >/dev/null
"$host" apk genkey --out "$work/untrusted" --name untrusted >/dev/null
key=$(ls "$out"/keys/*.rsa | head -n1)
keyname=$(basename "$key").pub
badkey=$(ls "$work"/untrusted/*.rsa | head -n1)

# --- packages -----------------------------------------------------------------------------------
pkg() { # pkg NAME VERSION ROOTDIR [extra mkpkg args...]
  local name=$1 version=$2 root=$3; shift 3
  "$host" apk mkpkg --root "$root" --name "$name" --version "$version" --arch "$arch" \
    --key "${PKG_KEY:-$key}" --out "$out/stage/apks/$arch/$name-$version.apk" "$@" >/dev/null
}

mkdir -p "$work/busybox/bin"
cp "$BUSYBOX" "$work/busybox/bin/busybox"
cat > "$work/busybox.post-install" <<'EOF'
#!/bin/busybox sh
# Applet links, as Alpine's busybox package makes them.
/bin/busybox mkdir -p /bin /sbin /usr/bin /usr/sbin
exec /bin/busybox --install -s
EOF
pkg busybox 1.36.1-r0 "$work/busybox" --description "Size optimized toolbox (static)" \
  --provides "cmd:sh cmd:busybox" --script "post-install=$work/busybox.post-install"

base=$work/baselayout
mkdir -p "$base"/{etc,proc,sys,dev,run,tmp,root,var/log,var/cache/misc,media,mnt,lib,usr/bin,usr/sbin}
cat > "$base/etc/inittab" <<'EOF'
# ramboot demo: busybox init runs the report service, then powers off.
::sysinit:/usr/sbin/demo-report
EOF
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/sbin/nologin\ndemo:x:1000:1000:Demo user:/home/demo:/bin/sh\n' > "$base/etc/passwd"
printf 'root:x:0:root\nnogroup:x:65534:\ndemo:x:1000:demo\n' > "$base/etc/group"
echo localhost > "$base/etc/hostname"
echo "setting=from-package" > "$base/etc/demo.conf"
printf 'tmpfs / tmpfs rw 0 0\n' > "$base/etc/fstab.example"
pkg alpine-baselayout 3.6.8-r1 "$base" --description "Alpine base dir structure and init scripts (demo)"

svc=$work/service
mkdir -p "$svc/usr/sbin"
cat > "$svc/usr/sbin/demo-report" <<'EOF'
#!/bin/sh
# The demo's small service: shows what the diskless boot built, then powers the machine off.
echo "RAMBOOT-DEMO: init is running; hostname=$(cat /etc/hostname)"
echo "RAMBOOT-DEMO: demo.conf $(cat /etc/demo.conf)"
echo "RAMBOOT-DEMO: modules $(ls /lib/modules/ 2>&1 | tr '\n' ' ')"
echo "RAMBOOT-DEMO: installed $(grep '^P:' /lib/apk/db/installed | sed 's/^P://' | tr '\n' ' ')"
echo "RAMBOOT-DEMO: world $(cat /etc/apk/world | tr '\n' ' ')"
echo "RAMBOOT-DEMO: media $(grep ' /media/' /proc/mounts | cut -d' ' -f2 | tr '\n' ' ')"
[ -f /usr/share/extra/marker ] && echo "RAMBOOT-DEMO: extra package present"
echo "RAMBOOT-DEMO: timeline $(cat /run/ramboot/timeline.json)"
# What the initramfs left of the network (issue 10): addresses, routes, resolv.conf.
echo "RAMBOOT-DEMO: net addr $(ip -4 -o addr show 2>&1 | tr -s ' ' | tr '\n' ' ')"
echo "RAMBOOT-DEMO: net route $(ip -4 route show 2>&1 | tr '\n' ' ')"
echo "RAMBOOT-DEMO: resolv.conf $(cat /etc/resolv.conf 2>&1 | tr '\n' ' ')"
# The tests' view of the kernel log (ramboot's lines and any rate-limit notice), on request.
if grep -qw ramboot_demo=dmesg /proc/cmdline; then
  dmesg | grep -e 'ramboot: ' -e 'suppressed' | sed 's/^/RAMBOOT-DMESG: /'
fi
echo "RAMBOOT-DEMO: done, powering off"
poweroff -f
EOF
chmod 755 "$svc/usr/sbin/demo-report"
pkg demo-service 1.0-r0 "$svc" --description "The ramboot demo's report service" --depends "busybox alpine-baselayout"

meta=$work/empty
mkdir -p "$meta"
pkg alpine-base 3.22.0-r0 "$meta" --description "Meta package for minimal alpine base (demo)" \
  --depends "alpine-baselayout busybox demo-service"

extra=$work/extra
mkdir -p "$extra/usr/share/extra"
echo "extra package" > "$extra/usr/share/extra/marker"
pkg extra 1.0-r0 "$extra" --description "An extra package for pkgs="

broken=$work/broken
mkdir -p "$broken/usr/share/broken"
echo "must never be installed" > "$broken/usr/share/broken/marker"
pkg broken 1.0-r0 "$broken" --description "Replaced after indexing: its signature no longer matches the index"

for i in $(seq "$filler"); do
  f=$work/filler$i
  mkdir -p "$f/usr/lib/filler$i" "$f/usr/share/filler$i"
  head -c 524288 /dev/urandom > "$f/usr/lib/filler$i/lib.so"
  for j in $(seq 32); do seq $((i * 1000 + j)) $((i * 1000 + j + 2400)) > "$f/usr/share/filler$i/data$j.txt"; done
  pkg "filler$i" 1.0-r0 "$f" --description "Benchmark filler $i" --depends busybox
done

"$host" apk index --key "$key" --description "ramboot demo repository" \
  --out "$out/stage/apks/$arch/APKINDEX.tar.gz" "$out"/stage/apks/$arch/*.apk >/dev/null
touch "$out/stage/apks/.boot_repository"
# A tampered package: rebuilt with other content and signed by an untrusted key after the index
# recorded the original's checksum. The installer must refuse it and install the rest.
echo "tampered" > "$broken/usr/share/broken/marker"
PKG_KEY=$badkey pkg broken 1.0-r0 "$broken" --description "tampered"

# --- modloop ------------------------------------------------------------------------------------
ml=$work/modloop/modules/$KVER
mkdir -p "$ml"
(cd "$KMODS" && cp --parents -a modules.builtin modules.builtin.modinfo modules.order \
  kernel/block kernel/drivers/block kernel/drivers/mmc kernel/drivers/usb kernel/drivers/scsi kernel/drivers/virtio \
  kernel/drivers/watchdog kernel/drivers/net/virtio_net.ko kernel/drivers/net/net_failover.ko \
  kernel/net/core/failover.ko kernel/fs/fat kernel/fs/nls kernel/fs/ext4 kernel/fs/jbd2 kernel/fs/squashfs \
  kernel/fs/isofs kernel/fs/mbcache.ko kernel/lib kernel/crypto "$ml/" 2>/dev/null || true)
mkdir -p "$work/depmod/lib/modules"
ln -s "$ml" "$work/depmod/lib/modules/$KVER"
depmod -b "$work/depmod" "$KVER"
# mksquashfs takes ~20 s on two cores: the image is cached per kernel and set of files.
squash_args=(-comp gzip -noappend -quiet -all-root)
sum=$( (cd "$work/modloop" && find . -printf '%p %s %l\n' | LC_ALL=C sort; echo "${squash_args[*]}") | sha1sum | cut -c1-16)
cached=$CACHE/modloop-$flavor-$KVER-$sum.squashfs
if [ ! -f "$cached" ]; then
  rm -f "$CACHE"/modloop-"$flavor"-*.squashfs
  mksquashfs "$work/modloop" "$cached.tmp.$$" "${squash_args[@]}" >/dev/null
  mv "$cached.tmp.$$" "$cached"
fi
cp "$cached" "$out/stage/boot/modloop-$flavor"
openssl dgst -sha1 -sign "$key" -out "$out/initramfs-files/modloop-$flavor.SIGN.RSA.$keyname" \
  "$out/stage/boot/modloop-$flavor"

echo "ramboot-demo $(date -u +%Y%m%d)" > "$out/stage/.alpine-release"

# --- apkovls and disk images ------------------------------------------------------------------
make_apkovl() { # make_apkovl FILE HOSTNAME CONF MEDIA
  local d=$work/ovl-$2-$4
  rm -rf "$d" && mkdir -p "$d/etc/apk"
  echo "$2" > "$d/etc/hostname"
  echo "$3" > "$d/etc/demo.conf"
  printf 'alpine-base\ndemo-service\n' > "$d/etc/apk/world"
  ln -sfn "/media/$4/cache" "$d/etc/apk/cache"
  if [ -n "${MAKE_APKOVL_EXTRA:-}" ]; then "$MAKE_APKOVL_EXTRA" "$d"; fi
  # Every top-level directory, as lbu's apkovls may hold more than etc/.
  tar -C "$d" --owner=0 --group=0 --numeric-owner --mtime=@0 -czf "$1" $(cd "$d" && ls)
}

# The service-mode apkovl's own files, added to a make_apkovl tree: no OpenRC, services supervised
# by ramboot as PID 1. Markers go to /dev/console (a service's output is captured in its log) and to
# /dev/kmsg (printk timestamps for the benchmark). `ramboot_demo=stay` keeps the system running.
make_services() { # make_services DIR
  local d=$1 s=$1/etc/ramboot/services
  cat > "$d/etc/inittab" <<'EOF'
# ramboot service mode: no OpenRC. ramboot, PID 1, supervises /etc/ramboot/services/*.
::ctrlaltdel:/bin/echo RAMBOOT-SERVICES: ctrlaltdel action
::shutdown:/bin/echo RAMBOOT-SERVICES: shutdown action
EOF
  mkdir -p "$s/hello"
  cat > "$s/hello/run" <<'EOF'
#!/bin/sh
# The demo's supervised service: says hello, then (unless ramboot_demo=stay) powers off the way
# busybox's poweroff does, with SIGUSR2 to PID 1.
echo "RAMBOOT-SERVICES-KMSG: hello service started" > /dev/kmsg
{
  echo "RAMBOOT-SERVICES: hello from a supervised service; PID 1 runs $(readlink /proc/1/exe), hostname=$(hostname)"
  echo "RAMBOOT-SERVICES: started $(dmesg | grep 'RAMBOOT-SERVICES-KMSG: hello' | tail -n1)"
  echo "RAMBOOT-SERVICES: timeline $(cat /run/ramboot/timeline.json)"
} > /dev/console
# ramboot_demo=bench: PID 1 idle for 10 s (only this service, sleeping): its resident memory and
# context switches of all its threads (each one a wake-up).
if grep -qw ramboot_demo=bench /proc/cmdline; then
  switches() { cat /proc/1/task/*/status | awk '/ctxt_switches/ { s += $2 } END { print s }'; }
  threads() { for t in /proc/1/task/*; do echo "$(cat "$t/comm"):$(awk '/ctxt_switches/ { s += $2 } END { print s }' "$t/status")"; done | tr '\n' ' '; }
  # Idle means after the hotplug thread's pass over the present devices (its line in the kernel log).
  grep -m1 -q 'hotplug: listening' /dev/kmsg
  before=$(switches); t0=$(threads); sleep 10; after=$(switches)
  echo "RAMBOOT-SERVICES: idle PID 1: $(grep VmRSS /proc/1/status | tr -s ' \t' ' '); $((after - before)) wake-ups in 10 s ($(ls /proc/1/task | wc -l) threads; before $t0; after $(threads))" > /dev/console
fi
if ! grep -qw ramboot_demo=stay /proc/cmdline; then
  echo "RAMBOOT-SERVICES: done, powering off" > /dev/console
  poweroff
fi
exec sleep 2147483647
EOF
  chmod 755 "$s/hello/run"
}

# Service mode under Alpine's own inittab: ramboot, PID 1, runs the entries Alpine's busybox init
# would, with a stand-in /sbin/openrc (no OpenRC on the media) printing one marker per runlevel; a
# getty stand-in respawned on the serial console; Ctrl-Alt-Del's action powers off the way busybox's
# `poweroff` does (SIGUSR2 to PID 1). Two services beside it: `db` says ready on its
# notification-fd only after a marker, `web` depends on it. Every marker goes to /dev/console.
make_openrc() { # make_openrc DIR
  local d=$1 s=$1/etc/ramboot/services
  cat > "$d/etc/inittab" <<'EOF'
# /etc/inittab (Alpine's, with stand-ins for openrc and getty)
::sysinit:/sbin/openrc sysinit
::sysinit:/sbin/openrc boot
::wait:/sbin/openrc default

# Set up a getty on the serial port
ttyAMA0::respawn:/sbin/getty-standin

# Stuff to do for the 3-finger salute
::ctrlaltdel:/sbin/ctrlaltdel-standin

# Stuff to do before rebooting
::shutdown:/sbin/openrc shutdown
EOF
  mkdir -p "$d/sbin"
  cat > "$d/sbin/openrc" <<'EOF'
#!/bin/sh
# Stand-in for OpenRC: one marker per runlevel; at shutdown, the boot media still mounted.
echo "RAMBOOT-OPENRC: openrc $1 (PID 1 runs $(readlink /proc/1/exe))" > /dev/console
if [ "$1" = shutdown ]; then
  echo "RAMBOOT-OPENRC: mounted at shutdown: $(grep ' /media/' /proc/mounts | cut -d' ' -f2 | tr '\n' ' ')" > /dev/console
fi
EOF
  cat > "$d/sbin/getty-standin" <<'EOF'
#!/bin/sh
# Stand-in for getty: the first run exits (respawned by PID 1); the second waits for a keyboard
# the kernel's Ctrl-Alt-Del handler listens to, says so, and stays.
if [ ! -e /run/getty-standin.ran ]; then
  : > /run/getty-standin.ran
  echo "RAMBOOT-OPENRC: getty first run on $(tty)"
  exit 0
fi
echo "RAMBOOT-OPENRC: getty respawned on $(tty)"
while ! grep -q 'Handlers=.*kbd' /proc/bus/input/devices 2>/dev/null; do sleep 0.1; done
echo "RAMBOOT-OPENRC: keyboard ready: $(grep '^N: ' /proc/bus/input/devices | tr '\n' ' ')"
exec sleep 2147483647
EOF
  cat > "$d/sbin/ctrlaltdel-standin" <<'EOF'
#!/bin/sh
echo "RAMBOOT-OPENRC: ctrlaltdel action" > /dev/console
kill -USR2 1
EOF
  chmod 755 "$d/sbin/openrc" "$d/sbin/getty-standin" "$d/sbin/ctrlaltdel-standin"
  mkdir -p "$s/db" "$s/web"
  echo 3 > "$s/db/notification-fd"
  cat > "$s/db/run" <<'EOF'
#!/bin/sh
echo "RAMBOOT-OPENRC: db starting" > /dev/console
sleep 1
echo "RAMBOOT-OPENRC: db ready" > /dev/console
echo >&3
exec 3>&-
exec sleep 2147483647
EOF
  echo db > "$s/web/depends"
  cat > "$s/web/run" <<'EOF'
#!/bin/sh
echo "RAMBOOT-OPENRC: web started" > /dev/console
exec sleep 2147483647
EOF
  chmod 755 "$s/db/run" "$s/web/run"
}

# Service mode's crash loop: `crashy` prints its start time (guest uptime) and exits 1 at once, so
# ramboot restarts it with growing delays until the crash-loop limit marks it failed; `watcher`
# waits for that line in the kernel log, then a while longer than the longest restart delay (no
# start may follow), and powers off. Every marker goes to /dev/console.
make_crashy() { # make_crashy DIR
  local d=$1 s=$1/etc/ramboot/services
  cat > "$d/etc/inittab" <<'EOF'
# ramboot service mode: no OpenRC. ramboot, PID 1, supervises /etc/ramboot/services/*.
::shutdown:/bin/echo RAMBOOT-CRASHY: shutdown action
EOF
  mkdir -p "$s/crashy" "$s/watcher"
  cat > "$s/crashy/run" <<'EOF'
#!/bin/sh
echo "RAMBOOT-CRASHY: start at $(cut -d' ' -f1 /proc/uptime)" > /dev/console
exit 1
EOF
  cat > "$s/watcher/run" <<'EOF'
#!/bin/sh
until dmesg | grep -q 'service crashy failed'; do sleep 1; done
echo "RAMBOOT-CRASHY: given up at $(cut -d' ' -f1 /proc/uptime)" > /dev/console
# Longer than the longest restart delay (60 s): a restart after giving up would show by now.
sleep 75
echo "RAMBOOT-CRASHY: quiet until $(cut -d' ' -f1 /proc/uptime), powering off" > /dev/console
poweroff
exec sleep 2147483647
EOF
  chmod 755 "$s/crashy/run" "$s/watcher/run"
}

make_image() { # make_image NAME MEDIA-DEVICE APKOVL-KIND(one|two|corrupt|none|services|openrc|crashy)
  local name=$1 dev=$2 kind=$3 st=$work/img-$1
  rm -rf "$st" && cp -a "$out/stage" "$st"
  case $kind in
    one|two|corrupt) make_apkovl "$st/$hostname.apkovl.tar.gz" "$hostname" "setting=from-apkovl" "$dev" ;;
    services) MAKE_APKOVL_EXTRA=make_services make_apkovl "$st/$hostname.apkovl.tar.gz" ramboot-services "setting=services" "$dev" ;;
    openrc) MAKE_APKOVL_EXTRA=make_openrc make_apkovl "$st/$hostname.apkovl.tar.gz" ramboot-openrc "setting=openrc" "$dev" ;;
    crashy) MAKE_APKOVL_EXTRA=make_crashy make_apkovl "$st/$hostname.apkovl.tar.gz" ramboot-crashy "setting=crashy" "$dev" ;;
  esac
  if [ "$kind" = two ]; then
    make_apkovl "$st/zz-old.apkovl.tar.gz" old-host "setting=from-old-apkovl" "$dev"
  fi
  if [ "$kind" = corrupt ]; then
    local f=$st/$hostname.apkovl.tar.gz
    head -c $(( $(stat -c %s "$f") / 2 )) "$f" > "$f.cut" && mv "$f.cut" "$f"
  fi
  local img=$out/$name.img
  rm -f "$img"
  truncate -s "${size}M" "$img"
  echo 'start=2048, type=c, bootable' | sfdisk -q "$img"
  mkfs.vfat -F 32 -n RAMBOOT --offset 2048 "$img" $(( (size * 1024) - 1024 )) >/dev/null
  mcopy -s -i "$img@@1M" "$st"/* "$st"/.alpine-release ::/
  echo "$img"
}

make_image media vda1 one
make_image services vda1 services
make_image openrc vda1 openrc
make_image crashy vda1 crashy
if [ "$all" = 1 ]; then
  make_image sd mmcblk0p1 one
  make_image usb usb one
  make_image two-apkovls vda1 two
  make_image corrupt-apkovl vda1 corrupt
  make_image no-apkovl vda1 none
fi
