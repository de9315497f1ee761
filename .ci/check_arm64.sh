#!/bin/sh
# make check-arm64: a Debian 12 arm64 root file system (debootstrap, run under qemu-user-static),
# the arm64 bundle installed in it with no network at all (a network namespace with no
# interfaces), then the installed agent's self-test and a simulated charge to its receipt.
# Needs root, debootstrap, qemu-user-static and binfmt_misc; the root file system is kept in
# $ROOTFS (default build/arm64-rootfs) so a second run skips debootstrap.
# Writes what happened to build/check-arm64.txt.
set -eu
py=${PY:-python3}
rootfs=${ROOTFS:-build/arm64-rootfs}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
report=build/check-arm64.txt
mkdir -p build
say() { echo "check-arm64: $*"; echo "$*" >> "$report"; }
: > "$report"
[ "$(id -u)" = 0 ] || { echo "check-arm64: needs root (debootstrap, chroot, unshare)" >&2; exit 1; }
for tool in debootstrap qemu-aarch64-static unshare ip; do
    command -v $tool >/dev/null || { echo "check-arm64: $tool missing: apt-get install debootstrap qemu-user-static" >&2; exit 1; }
done
binfmt=/proc/sys/fs/binfmt_misc
[ -e $binfmt/register ] || mount -t binfmt_misc binfmt_misc $binfmt
if [ ! -e $binfmt/qemu-aarch64 ]; then
    # What systemd-binfmt does at boot with Debian's qemu-user-static rule; containers lack it.
    sed 's#/usr/libexec/qemu-binfmt/aarch64-binfmt-P#/usr/bin/qemu-aarch64-static#; s#:OPF$#:F#' \
        /usr/lib/binfmt.d/qemu-aarch64.conf > $binfmt/register
fi
say "host: $(uname -m), $(qemu-aarch64-static --version | head -1)"
if [ ! -x "$rootfs/usr/bin/python3" ]; then
    start=$(date +%s)
    rm -rf "$rootfs"
    debootstrap --arch=arm64 --variant=minbase --include=python3,python3-venv,tzdata bookworm "$rootfs" "$mirror" \
        > build/debootstrap-arm64.log 2>&1 || { say "debootstrap failed (build/debootstrap-arm64.log)"; exit 1; }
    say "debootstrap bookworm arm64: $(( $(date +%s) - start )) s"
fi
say "board: Debian $(cat "$rootfs/etc/debian_version"), $(chroot "$rootfs" python3 --version), glibc $(chroot "$rootfs" ldd --version | head -1 | awk '{print $NF}'), tzdata $(chroot "$rootfs" dpkg-query -W -f='${Version}' tzdata)"
$py -m tools.cli bundle --arch arm64 --out build > build/bundle-arm64.log
bundle=$(ls -t build/urja-*-arm64.tar.gz | head -1)
name=$(basename "$bundle" .tar.gz)
rm -rf "$rootfs/root/$name" "$rootfs/opt/urja"
tar -xzf "$bundle" -C "$rootfs/root"
mount -t proc proc "$rootfs/proc"
trap 'umount "$rootfs/proc" 2>/dev/null || true' EXIT
# A network namespace with only loopback (up): the board has no way out, the simulated meter
# still answers on 127.0.0.1.
run() { unshare --net /bin/sh -c 'ip link set lo up && exec chroot "$0" /usr/bin/env -i PATH=/usr/bin:/bin HOME=/root \
    LANG=C.UTF-8 /bin/sh -c "$1"' "$rootfs" "$1"; }
start=$(date +%s)
run "cd /root/$name && URJA_PREFIX=/opt/urja ./install.sh --no-system" || { say "offline install: FAILED"; exit 1; }
say "offline install (no network namespace, --no-index): passed in $(( $(date +%s) - start )) s"
version=$(cat "$rootfs/root/$name/VERSION")
urja=/opt/urja/versions/$version/bin/urja
run "cd /tmp && $urja selftest --board sim" > build/selftest-arm64.log 2>&1 \
    && say "self-test on the simulated board: passed" || { say "self-test: FAILED (build/selftest-arm64.log)"; exit 1; }
start=$(date +%s)
run "cd /tmp && $urja run --board sim --sim-car --speed 10" > build/charge-arm64.log 2>&1 || true
if grep -q '"receipt_id"' build/charge-arm64.log; then
    say "simulated charge to its signed receipt: passed in $(( $(date +%s) - start )) s ($(grep -m1 '"energy_wh"' build/charge-arm64.log | tr -d ' ,'))"
else
    say "simulated charge: FAILED (build/charge-arm64.log)"; exit 1
fi
say "result: passed"
