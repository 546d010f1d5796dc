#!/usr/bin/env bash
# Builds Alpine-layout boot media for the diskless scenarios: an MBR disk image with one FAT32
# partition holding a signed boot repository (apks/<arch>, .boot_repository), an apkovl,
# boot/modloop-<flavor> (squashfs of the Debian kernel's storage/fs modules) and cache/, each
# written by `ramboot sdimage --target none` from OUTDIR/stage (kept: the tests build their
# bootable --target virt/rpi cards from it too).
# Every package is built here by ramboot itself from Debian's busybox-static:arm64.
#
# Usage: make-media.sh OUTDIR [--size MB] [--hostname NAME] [--all] [--filler N] [--card]
# --filler N adds packages filler1..fillerN of about 1 MiB installed each (half random, half text:
# like binaries and their data), for boot benchmarks with a realistic package volume.
# --card writes only OUTDIR/card.img: the realistic benchmark card (see make_card below), its
# own repository of 29 Alpine-like packages, the modloop and an lbu-style apkovl.
# Writes, sharing one signed repository, modloop and key:
#   OUTDIR/media.img            the demo: one apkovl <hostname>.apkovl.tar.gz (media seen as vda1)
#   OUTDIR/services.img         service mode (boot with ramboot_init): an apkovl with its own
#                               /etc/inittab (no OpenRC) and /etc/ramboot/services/ (make_services)
#   OUTDIR/openrc.img           service mode with Alpine's inittab and a stand-in /sbin/openrc
#                               (make_openrc)
#   OUTDIR/crashy.img           service mode with a service that crashes at once (make_crashy)
#   OUTDIR/commit.img           service mode committing in a loop with `ramboot commit` (the aarch64
#                               host tool at /ramboot), for the power-cut cycles (make_commit)
# and with --all also the variants the tests use:
#   OUTDIR/sd.img               the same for a Raspberry Pi SD card (mmcblk0p1)
#   OUTDIR/usb.img              the same for a USB stick (moved to /media/usb, as in Alpine)
#   OUTDIR/two-apkovls.img      plus an older zz-old.apkovl.tar.gz
#   OUTDIR/corrupt-apkovl.img   the apkovl cut in half
#   OUTDIR/no-apkovl.img        a repository and modloop, no apkovl
#   OUTDIR/encrypted-apkovl.img the demo apkovl encrypted by `openssl enc -aes-256-cbc -salt` as
#                               `lbu commit -e` writes it (<hostname>.apkovl.tar.gz.aes-256-cbc),
#                               passphrase in OUTDIR/apkovl.key (its first line)
# plus OUTDIR/keys/<name>.rsa.pub (the trusted apk key, for the initramfs), OUTDIR/stage and
# OUTDIR/modloop-tree and OUTDIR/apkovls/<image name>/ (what the cards are made of) and
# OUTDIR/initramfs-files/modloop-virt.SIGN.RSA.<key>.pub (the modloop signature, for the
# initramfs's /var/cache/misc). --size must be a power of two for -M raspi3b (default 256).
set -euo pipefail
source "$(dirname "$0")/common.sh"
kernel_ready
out=$1; shift
size=256 hostname=ramboot-demo all=0 filler=0 card=0
while [ $# -gt 0 ]; do
  case $1 in
    --size) size=$2; shift ;;
    --hostname) hostname=$2; shift ;;
    --all) all=1 ;;
    --filler) filler=$2; shift ;;
    --card) card=1 ;;
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
pkg() { # pkg NAME VERSION ROOTDIR [extra mkpkg args...]; into $PKG_REPO (default the demo's)
  local name=$1 version=$2 root=$3; shift 3
  "$host" apk mkpkg --root "$root" --name "$name" --version "$version" --arch "$arch" \
    --key "${PKG_KEY:-$key}" --out "${PKG_REPO:-$out/stage/apks/$arch}/$name-$version.apk" "$@" >/dev/null
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
echo "RAMBOOT-DEMO: net6 addr $(ip -6 -o addr show 2>&1 | tr -s ' ' | tr '\n' ' ')"
echo "RAMBOOT-DEMO: net route $(ip -4 route show 2>&1 | tr '\n' ' ')"
if [ -e /etc/resolv.conf ]; then
    echo "RAMBOOT-DEMO: resolv.conf $(tr '\n' ' ' < /etc/resolv.conf)"
else
    echo "RAMBOOT-DEMO: resolv.conf none (the boot configured no network)"
fi
# The tests' view of the kernel log (ramboot's lines and any rate-limit notice), on request.
if grep -qw ramboot_demo=dmesg /proc/cmdline; then
  dmesg | grep -e 'ramboot: ' -e 'suppressed' | sed 's/^/RAMBOOT-DMESG: /'
fi
# The cached root (issue 11), on request: wait until ramboot's background writer has put the
# media back read-only, show the image and the root ("/" type), then every entry of the root
# (type and mode, owner, link target; a checksum per file, the apk database among them).
if grep -qw ramboot_demo=tree /proc/cmdline; then
  n=0
  while grep -q ' /media/vda1 [^ ]* rw' /proc/mounts && [ $n -lt 3000 ]; do sleep 0.1; n=$((n+1)); done
  echo "RAMBOOT-DEMO: root fs $(grep ' / ' /proc/mounts | tail -1 | cut -d' ' -f3)"
  echo "RAMBOOT-DEMO: media now $(grep ' /media/vda1 ' /proc/mounts | cut -d' ' -f4 | cut -d, -f1)"
  echo "RAMBOOT-DEMO: cache $(ls -ln /media/vda1/ | grep ramboot-root | tr -s ' ' | cut -d' ' -f5,9)"
  find / -xdev -exec stat -c 'RAMBOOT-TREE: %n %f %u %g %N' {} + | sort
  find / -xdev -type f -exec md5sum {} + | sort -k2 | sed 's/^/RAMBOOT-TREE: /'
fi
# Mounting the cached root against copying it into a tmpfs (issue 11), on the instruction
# clock (/proc/uptime, 10 ms steps): loop + squashfs mount, then a full copy.
if grep -qw ramboot_demo=copy /proc/cmdline && [ -f /media/vda1/ramboot-root.sqfs ]; then
  mkdir -p /tmp/rc-image /tmp/rc-copy
  t0=$(cut -d' ' -f1 /proc/uptime)
  mount -o ro,loop -t squashfs /media/vda1/ramboot-root.sqfs /tmp/rc-image
  t1=$(cut -d' ' -f1 /proc/uptime)
  mount -t tmpfs tmpfs /tmp/rc-copy && cp -a /tmp/rc-image/. /tmp/rc-copy/
  t2=$(cut -d' ' -f1 /proc/uptime)
  echo "RAMBOOT-DEMO: mount-vs-copy uptime $t0 mounted $t1 copied $t2"
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
# The tree stays in OUTDIR/modloop-tree: tests squash it with `ramboot sdimage --modloop-dir`.
ml=$out/modloop-tree/modules/$KVER
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
sum=$( (cd "$out/modloop-tree" && find . -printf '%p %s %l\n' | LC_ALL=C sort; echo "${squash_args[*]}") | sha1sum | cut -c1-16)
cached=$CACHE/modloop-$flavor-$KVER-$sum.squashfs
if [ ! -f "$cached" ]; then
  rm -f "$CACHE"/modloop-"$flavor"-*.squashfs
  mksquashfs "$out/modloop-tree" "$cached.tmp.$$" "${squash_args[@]}" >/dev/null
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
  # Idle means after the hotplug thread's pass over the present devices (its line in the kernel log)
  # and once the cached root's writer of a first boot has ended and PID 1 has reaped it.
  grep -m1 -q 'hotplug: listening' /dev/kmsg
  while grep -qsx rootcache /proc/[0-9]*/comm; do sleep 0.1; done
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

# The power-cut cycles of issue 13: `committer` changes /etc (a generation number and 256 KiB of
# random bytes, so each commit takes a while) and runs `ramboot commit` in a loop, one console
# marker before and after each; `ticker` prints a line every 20 ms of guest time, the progress the
# host counts to pick a random point at which it kills QEMU. At boot, `committer` says which
# generation the apkovl brought. Every marker goes to /dev/console.
make_commit() { # make_commit DIR
  local d=$1 s=$1/etc/ramboot/services
  cat > "$d/etc/inittab" <<'EOF'
# ramboot service mode: no OpenRC. ramboot, PID 1, supervises /etc/ramboot/services/*.
EOF
  mkdir -p "$s/committer" "$s/ticker"
  cat > "$s/committer/run" <<'EOF'
#!/bin/sh
exec > /dev/console 2>&1
cp /media/vda1/ramboot /tmp/ramboot && chmod 755 /tmp/ramboot
n=$(cat /etc/generation 2>/dev/null || echo 0)
echo "RAMBOOT-COMMIT: booted with generation $n"
echo "RAMBOOT-COMMIT: medium has $(ls /media/vda1 | tr '\n' ' ')"
while :; do
  n=$((n + 1))
  echo "$n" > /etc/generation
  dd if=/dev/urandom of=/etc/blob bs=1024 count=256 2>/dev/null
  echo "RAMBOOT-COMMIT: start $n"
  if /tmp/ramboot commit --force >/dev/null; then
    echo "RAMBOOT-COMMIT: done $n"
  else
    echo "RAMBOOT-COMMIT: failed $n"
  fi
done
EOF
  cat > "$s/ticker/run" <<'EOF'
#!/bin/sh
exec > /dev/console 2>&1
i=0
while :; do
  i=$((i + 1))
  echo "RAMBOOT-TICK $i"
  usleep 20000
done
EOF
  chmod 755 "$s/committer/run" "$s/ticker/run"
}

# card IMAGE STAGE [sdimage args...]: the stage's repository, modloop, cache and release file on
# a --size MiB card written by `ramboot sdimage` (MBR + FAT32 in user space, no mtools).
card() {
  local img=$1 st=$2; shift 2
  "$host" sdimage -o "$img" --target none --flavor "$flavor" --size "${size}M" \
    --repo "$st/apks" --modloop "$st/boot/modloop-$flavor" --cache "$st/cache" \
    --file "$st/.alpine-release:.alpine-release" "$@" >/dev/null
}

make_image() { # make_image NAME MEDIA-DEVICE APKOVL-KIND(one|two|corrupt|none|services|openrc|crashy|commit|encrypted)
  local name=$1 dev=$2 kind=$3 ovl=$out/apkovls/$1
  rm -rf "$ovl" && mkdir -p "$ovl"
  case $kind in
    one|two|corrupt|encrypted) make_apkovl "$ovl/$hostname.apkovl.tar.gz" "$hostname" "setting=from-apkovl" "$dev" ;;
    services) MAKE_APKOVL_EXTRA=make_services make_apkovl "$ovl/$hostname.apkovl.tar.gz" ramboot-services "setting=services" "$dev" ;;
    openrc) MAKE_APKOVL_EXTRA=make_openrc make_apkovl "$ovl/$hostname.apkovl.tar.gz" ramboot-openrc "setting=openrc" "$dev" ;;
    crashy) MAKE_APKOVL_EXTRA=make_crashy make_apkovl "$ovl/$hostname.apkovl.tar.gz" ramboot-crashy "setting=crashy" "$dev" ;;
    commit) MAKE_APKOVL_EXTRA=make_commit make_apkovl "$ovl/ramboot-commit.apkovl.tar.gz" ramboot-commit "setting=commit" "$dev" ;;
  esac
  if [ "$kind" = two ]; then
    make_apkovl "$ovl/zz-old.apkovl.tar.gz" old-host "setting=from-old-apkovl" "$dev"
  fi
  if [ "$kind" = corrupt ]; then
    local f=$ovl/$hostname.apkovl.tar.gz
    head -c $(( $(stat -c %s "$f") / 2 )) "$f" > "$f.cut" && mv "$f.cut" "$f"
  fi
  if [ "$kind" = encrypted ]; then
    # lbu's command: OpenSSL's default key derivation (EVP_BytesToKey, SHA-256), no -pbkdf2.
    local f=$ovl/$hostname.apkovl.tar.gz
    printf 'ramboot demo passphrase\n' > "$out/apkovl.key"
    openssl enc -aes-256-cbc -salt -pass "file:$out/apkovl.key" -in "$f" -out "$f.aes-256-cbc" 2>/dev/null
    rm "$f"
  fi
  local args=() f
  for f in "$ovl"/*.apkovl.tar.gz*; do
    [ -e "$f" ] && args+=(--apkovl "$f")
  done
  if [ "$kind" = commit ]; then
    args+=(--file "$(dirname "$(ramboot_aarch64)")/ramboot:ramboot")
  fi
  card "$out/$name.img" "$out/stage" "${args[@]}"
  echo "$out/$name.img"
}

# --- the realistic benchmark card (--card) -----------------------------------------------------
# 29 packages shaped like Alpine 3.22's aarch64 base with openssh and chrony: names, dependencies,
# file counts and installed sizes close to the real ones (13 MiB, ~370 files and ~270 applet links), a busybox whose
# post-install makes the applet links and whose trigger redoes them, a pre-install adding a user.
# The bytes are Debian's: binaries are cut from the arm64 kernel's modules (ELF code compresses
# like real binaries), text from the kernel's changelog, busybox is busybox-static:arm64.
card_pools() {
  find "$KMODS/kernel/drivers/net" -name '*.ko' | LC_ALL=C sort | xargs cat > "$work/pool.bin"
  zcat "$CACHE"/kernel/usr/share/doc/linux-image-*/changelog.gz > "$work/pool.txt"
  bin_off=0 txt_off=0
}
cut_pool() { # cut_pool bin|txt KIB FILE: the next KIB KiB of a pool (wrapping around)
  local pool=$work/pool.$1 bytes=$(($2 * 1024)) var=${1}_off total
  total=$(stat -c %s "$pool")
  if [ $((${!var} + bytes)) -gt "$total" ]; then printf -v "$var" 0; fi
  dd if="$pool" of="$3" bs=64K iflag=skip_bytes,count_bytes skip="${!var}" count="$bytes" status=none
  printf -v "$var" $((${!var} + bytes))
}
card_pkg() { # card_pkg NAME VERSION DEPENDS ITEM... [-- mkpkg args]
  # ITEM: b:PATH:KIB binary, t:PATH:KIB text, s:PATH:KIB script, l:PATH:TARGET symlink,
  #       B|T|S:DIR:N:KIB N binaries, texts or scripts DIR/NAME-1..N.
  local name=$1 version=$2 deps=$3 root=$work/card/$1 item kind path rest n i; shift 3
  mkdir -p "$root"
  while [ $# -gt 0 ] && [ "$1" != -- ]; do
    IFS=: read -r kind path rest <<< "$1"; shift
    mkdir -p "$root/$(dirname "$path")"
    case $kind in
      b|t|s) card_item "$kind:$path:$rest" "$root" ;;
      l) ln -sfn "$rest" "$root/$path" ;;
      B|T|S) n=${rest%%:*}; mkdir -p "$root/$path"
        for i in $(seq "$n"); do
          card_item "${kind,,}:$path/$name-$i:${rest#*:}" "$root"
        done ;;
    esac
  done
  [ "${1:-}" = -- ] && shift
  local dep_args=()
  [ -n "$deps" ] && dep_args=(--depends "$deps")
  PKG_REPO=$work/card-stage/apks/$arch pkg "$name" "$version" "$root" \
    --description "Benchmark card: $name" "${dep_args[@]}" "$@"
}
card_item() { # card_item ITEM ROOT: one item of card_pkg into ROOT
  local kind path rest
  IFS=: read -r kind path rest <<< "$1"
  case $kind in
    b) cut_pool bin "$rest" "$2/$path"; chmod 755 "$2/$path" ;;
    t) cut_pool txt "$rest" "$2/$path" ;;
    s) cut_pool txt "$rest" "$work/script.txt"
       { echo '#!/bin/sh'; sed 's/^/# /' "$work/script.txt"; } > "$2/$path"; chmod 755 "$2/$path" ;;
  esac
}

make_card() {
  local st=$work/card-stage c=$work/card
  mkdir -p "$st/apks/$arch" "$c"
  card_pools
  card_pkg musl 1.2.5-r10 "" b:lib/ld-musl-aarch64.so.1:660 l:lib/libc.musl-aarch64.so.1:ld-musl-aarch64.so.1
  # busybox: the real one; the applet links come from its post-install, as in Alpine.
  mkdir -p "$c/busybox/bin"
  cp "$BUSYBOX" "$c/busybox/bin/busybox"
  cat > "$work/card-busybox.trigger" <<'EOT'
#!/bin/busybox sh
# As Alpine's busybox trigger: drop links to a busybox that lost an applet, make the missing ones.
for dir in "$@"; do
  for link in "$dir"/*; do
    [ -L "$link" ] && [ ! -e "$link" ] && /bin/busybox rm -f "$link"
  done
done
exec /bin/busybox --install -s
EOT
  card_pkg busybox 1.37.0-r19 musl t:etc/securetty:1 t:etc/udhcpd.conf:6 t:etc/logrotate.d/acpid:1 \
    t:etc/network/if-up.d/dad:1 t:usr/share/udhcpc/default.script:3 -- \
    --provides "cmd:sh cmd:busybox" --script "post-install=$work/busybox.post-install" \
    --script "trigger=$work/card-busybox.trigger" --triggers "/bin /usr/bin /sbin /usr/sbin"
  # alpine-baselayout's inittab: report and power off (the benchmark's end). The report waits
  # while the boot media is mounted read-write: ramboot may be writing its cached installed root
  # there after the handoff (issue 11), which the next boot of the same card uses.
  mkdir -p "$c/alpine-baselayout/etc" "$c/alpine-baselayout/usr/sbin" "$c/alpine-baselayout"/{proc,sys,dev,run,tmp,root,media,mnt,var/log,var/cache/misc}
  echo "::sysinit:/usr/sbin/card-report" > "$c/alpine-baselayout/etc/inittab"
  cat > "$c/alpine-baselayout/usr/sbin/card-report" <<'EOT'
#!/bin/sh
echo "RAMBOOT-CARD: $(ls /bin /sbin /usr/bin /usr/sbin | wc -l) commands, $(grep -c ^P: /lib/apk/db/installed) packages"
dmesg | grep -o "ramboot: kernel.*in /init)"
echo "RAMBOOT-CARD: timeline $(cat /run/ramboot/timeline.json)"
n=0
while grep -q ' /media/[^ ]* [^ ]* rw' /proc/mounts && [ $n -lt 600 ]; do sleep 0.1; n=$((n + 1)); done
echo "RAMBOOT-CARD: media $(grep ' /media/' /proc/mounts | cut -d' ' -f2,4 | tr '\n' ' ')"
poweroff -f
EOT
  chmod 755 "$c/alpine-baselayout/usr/sbin/card-report"
  card_pkg alpine-baselayout 3.7.0-r0 "alpine-baselayout-data busybox musl" T:etc/profile.d:6:1 \
    T:etc/modprobe.d:5:1 T:etc/sysctl.d:2:2 t:etc/crontabs/root:1 t:etc/profile:2 t:etc/shells:1 \
    t:etc/motd:1 T:etc/periodic:5:1 T:lib/sysctl.d:1:2
  mkdir -p "$c/alpine-baselayout-data/etc"
  cp "$base/etc/passwd" "$base/etc/group" "$c/alpine-baselayout-data/etc/"
  echo localhost > "$c/alpine-baselayout-data/etc/hostname"
  card_pkg alpine-baselayout-data 3.7.0-r0 "" t:etc/services:14 t:etc/protocols:4 t:etc/hosts:1 \
    t:etc/fstab:1 t:etc/shadow:1 t:etc/nsswitch.conf:1 t:etc/modules:1 t:etc/mtab:1
  card_pkg alpine-keys 2.5-r0 "" T:usr/share/apk/keys/aarch64:7:1 T:usr/share/apk/keys/x86_64:7:1 \
    T:usr/share/apk/keys/armv7:7:1 T:etc/apk/keys:7:1
  card_pkg alpine-release 3.22.0-r0 alpine-keys t:etc/alpine-release:1 t:etc/os-release:1 \
    t:etc/issue:1 t:etc/secfixes.d/alpine:1
  card_pkg zlib 1.3.1-r2 "" b:usr/lib/libz.so.1.3.1:98 l:usr/lib/libz.so.1:libz.so.1.3.1
  card_pkg libcrypto3 3.5.0-r0 "musl" b:usr/lib/libcrypto.so.3:3300 B:usr/lib/engines-3:3:18 \
    b:usr/lib/ossl-modules/legacy.so:150
  card_pkg libssl3 3.5.0-r0 "libcrypto3" b:usr/lib/libssl.so.3:600
  card_pkg ca-certificates-bundle 20250419-r0 "" t:etc/ssl/certs/ca-certificates.crt:220 t:etc/ssl/cert.pem:1
  card_pkg apk-tools 2.14.10-r0 "musl libcrypto3 zlib ca-certificates-bundle" b:sbin/apk:70 \
    b:lib/libapk.so.2.14.0:250 T:etc/apk/protected_paths.d:1:1 T:var/cache/apk:1:1
  card_pkg scanelf 1.3.8-r1 musl b:usr/bin/scanelf:80
  card_pkg ssl_client 1.37.0-r19 "libssl3 busybox" b:usr/bin/ssl_client:14
  card_pkg busybox-suid 1.37.0-r19 busybox b:bin/bbsuid:14
  card_pkg libcap2 2.76-r0 musl b:usr/lib/libcap.so.2.76:50 l:usr/lib/libcap.so.2:libcap.so.2.76
  card_pkg openrc 0.62.6-r0 "musl libcap2 busybox" b:sbin/openrc:60 b:lib/librc.so.1:90 \
    b:lib/libeinfo.so.1:22 B:usr/libexec/rc/bin:30:20 B:sbin:10:30 S:etc/init.d:60:2 \
    T:etc/conf.d:35:1 S:usr/libexec/rc/sh:14:6 t:etc/rc.conf:12 T:usr/share/openrc/support:4:3
  card_pkg busybox-openrc 1.37.0-r19 "openrc busybox" S:etc/init.d:9:1 T:etc/conf.d:4:1
  card_pkg busybox-mdev-openrc 1.37.0-r19 "openrc busybox" s:etc/init.d/mdev:2 t:etc/mdev.conf:3
  card_pkg alpine-conf 3.20.0-r0 "openrc busybox" S:sbin:45:6 s:lib/libalpine.sh:8 \
    t:etc/lbu/lbu.conf:1 T:usr/share/alpine-conf:4:3
  card_pkg ifupdown-ng 0.12.1-r7 musl b:sbin/ifupdown:90 l:sbin/ifup:ifupdown l:sbin/ifdown:ifupdown \
    l:sbin/ifquery:ifupdown S:usr/libexec/ifupdown-ng:15:2 t:etc/network/ifupdown-ng.conf:1
  card_pkg openssh-keygen 10.0_p1-r7 "libcrypto3 musl" b:usr/bin/ssh-keygen:450
  card_pkg openssh-client-common 10.0_p1-r7 "libcrypto3 musl zlib" b:usr/bin/ssh-add:250 \
    b:usr/bin/ssh-agent:150 b:usr/bin/ssh-keyscan:200 b:usr/lib/ssh/ssh-pkcs11-helper:150 \
    s:usr/bin/findssl.sh:3 s:usr/bin/ssh-copy-id:12 t:etc/ssh/ssh_config:2
  card_pkg openssh-client-default 10.0_p1-r7 "openssh-client-common" b:usr/bin/ssh:600 \
    b:usr/bin/scp:200 b:usr/bin/sftp:150
  card_pkg openssh-server-common 10.0_p1-r7 "openrc" t:etc/ssh/sshd_config:4 t:etc/ssh/moduli:560 \
    s:etc/init.d/sshd:4 t:etc/conf.d/sshd:1 T:etc/ssh/sshd_config.d:1:1
  card_pkg openssh-sftp-server 10.0_p1-r7 musl b:usr/lib/ssh/sftp-server:100
  cat > "$work/card-chrony.pre-install" <<'EOT'
#!/bin/sh
/bin/busybox addgroup -S chrony 2>/dev/null
/bin/busybox adduser -S -D -H -h /var/lib/chrony -s /sbin/nologin -G chrony chrony 2>/dev/null
exit 0
EOT
  card_pkg openssh-server 10.0_p1-r7 "openssh-server-common openssh-keygen libcrypto3 zlib" \
    b:usr/sbin/sshd:900
  card_pkg openssh 10.0_p1-r7 "openssh-client-default openssh-sftp-server openssh-server"
  card_pkg chrony 4.6.1-r2 "libcap2 musl" b:usr/sbin/chronyd:350 b:usr/bin/chronyc:120 \
    t:etc/chrony/chrony.conf:1 s:etc/init.d/chronyd:2 t:etc/conf.d/chronyd:1 T:etc/logrotate.d:1:1 \
    -- --script "pre-install=$work/card-chrony.pre-install"
  card_pkg alpine-base 3.22.0-r0 "alpine-baselayout alpine-conf alpine-release apk-tools busybox busybox-mdev-openrc busybox-openrc busybox-suid ifupdown-ng musl-utils openrc scanelf ssl_client"
  card_pkg musl-utils 1.2.5-r10 "musl scanelf" b:usr/bin/getent:50 b:usr/bin/iconv:30 \
    b:usr/bin/ldd:1 b:sbin/ldconfig:1 b:usr/bin/getconf:30
  "$host" apk index --key "$key" --description "ramboot benchmark card" \
    --out "$st/apks/$arch/APKINDEX.tar.gz" "$st"/apks/$arch/*.apk >/dev/null
  touch "$st/apks/.boot_repository"
  mkdir -p "$st/boot" "$st/cache"
  cp "$out/stage/boot/modloop-$flavor" "$st/boot/"
  cp "$out/stage/.alpine-release" "$st/"
  # An lbu apkovl as `setup-alpine` leaves one: world, hostname, network, host keys, runlevels.
  local d=$work/card-ovl
  mkdir -p "$d/etc/apk" "$d/etc/network" "$d/etc/ssh" "$d/etc/runlevels/default" "$d/etc/runlevels/boot"
  printf '%s\n' alpine-base chrony openssh > "$d/etc/apk/world"
  echo ramboot-card > "$d/etc/hostname"
  printf 'auto lo\niface lo inet loopback\n' > "$d/etc/network/interfaces"
  for k in ecdsa ed25519 rsa; do
    cut_pool txt 1 "$d/etc/ssh/ssh_host_${k}_key"; cut_pool txt 1 "$d/etc/ssh/ssh_host_${k}_key.pub"
  done
  for s in sshd chronyd crond; do ln -s "/etc/init.d/$s" "$d/etc/runlevels/default/$s"; done
  for s in hostname modules sysctl bootmisc syslog; do ln -s "/etc/init.d/$s" "$d/etc/runlevels/boot/$s"; done
  ln -sfn /media/vda1/cache "$d/etc/apk/cache"
  tar -C "$d" --owner=0 --group=0 --numeric-owner --mtime=@0 -czf "$st/ramboot-card.apkovl.tar.gz" etc
  local img=$out/card.img
  card "$img" "$st" --apkovl "$st/ramboot-card.apkovl.tar.gz"
  echo "card: $(ls "$st/apks/$arch"/*.apk | wc -l) packages, $(find "$c" -type f -o -type l | wc -l) files, $(du -sk --apparent-size "$c" | cut -f1) KiB" >&2
  echo "$img"
}

if [ "$card" = 1 ]; then
  make_card
  exit 0
fi

make_image media vda1 one
make_image services vda1 services
make_image openrc vda1 openrc
make_image crashy vda1 crashy
make_image commit vda1 commit
if [ "$all" = 1 ]; then
  make_image sd mmcblk0p1 one
  make_image usb usb one
  make_image two-apkovls vda1 two
  make_image corrupt-apkovl vda1 corrupt
  make_image no-apkovl vda1 none
  make_image encrypted-apkovl vda1 encrypted
fi
