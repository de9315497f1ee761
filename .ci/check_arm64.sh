#!/bin/sh
# make check-arm64: a Debian 12 arm64 root file system (debootstrap, run under qemu-user-static),
# the arm64 bundle installed in it with no network at all (a network namespace with no
# interfaces), then the installed agent's self-test and a simulated charge to its receipt.
# Needs root, debootstrap, qemu-user-static and binfmt_misc; the root file system is kept in
# $ROOTFS (default build/arm64-rootfs) so a second run skips debootstrap.
# Writes what happened to build/check-arm64.txt; the logs of each step are beside it in build/.
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
    debootstrap --arch=arm64 --variant=minbase --include=python3,python3-venv,tzdata,passwd,iproute2 bookworm "$rootfs" "$mirror" \
        > build/debootstrap-arm64.log 2>&1 || { say "debootstrap failed (build/debootstrap-arm64.log)"; exit 1; }
    say "debootstrap bookworm arm64: $(( $(date +%s) - start )) s"
fi
# A root file system from before passwd was included (minbase leaves useradd out; boards have it).
[ -x "$rootfs/usr/sbin/useradd" ] || chroot "$rootfs" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    apt-get install -y -qq passwd > build/apt-arm64.log 2>&1
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
run() { unshare --net /bin/sh -c 'ip link set lo up && exec chroot "$0" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
    LANG=C.UTF-8 /bin/sh -c "$1"' "$rootfs" "$1"; }
# The unit as a maker provisions it (on the factory machine: provisioning needs segno, the board not).
rm -rf build/arm64-unit "$rootfs/etc/urja"
$py -m tools.cli provision --out build/arm64-unit --site-id in.test.arm64-1 --name "arm64 check" --lat 12.93 \
    --lon 77.62 --city Bengaluru --board sim --auth free_vend --agency-dir build/arm64-agency > build/provision-arm64.log
mkdir -p "$rootfs/etc/urja"
cp -r build/arm64-unit/in.test.arm64-1/. "$rootfs/etc/urja/"
# The maker's free-vend demo unit stops a session at 500 Wh (the template leaves it unlimited).
sed -i 's/^default_limit_wh = 0$/default_limit_wh = 500/' "$rootfs/etc/urja/urja.toml"
start=$(date +%s)
# The whole install.sh as on a board: user, udev rules, unit, then the health-checked switch
# (READY as the urja user, one meter read, the self-test); no systemd runs in a chroot.
run "cd /root/$name && ./install.sh" > build/install-arm64.log 2>&1 || { say "offline install: FAILED (build/install-arm64.log)"; exit 1; }
grep -q "is running: READY, meter read, self-test passed" build/install-arm64.log \
    || { say "offline install: no passing health check (build/install-arm64.log)"; exit 1; }
say "offline install (network namespace with loopback only, --no-index), user, unit, switch: passed in $(( $(date +%s) - start )) s"
say "health check as the urja user: READY, one meter read, self-test passed"
owner=$(stat -c %u "$rootfs/var/lib/urja/journal.sqlite")
[ "$owner" = "$(chroot "$rootfs" id -u urja)" ] && say "journal created by the health check belongs to urja" \
    || { say "journal owned by $owner, not urja: FAILED"; exit 1; }
version=$(cat "$rootfs/root/$name/VERSION")
urja=/opt/urja/current/bin/urja
start=$(date +%s)
# As the service runs it: the urja user, the provisioned configuration, its journal.
run "cd /tmp && setpriv --reuid urja --regid urja --init-groups $urja run --config /etc/urja/urja.toml --sim-car --speed 10" \
    > build/charge-arm64.log 2>&1 || true
if grep -q '"receipt_id"' build/charge-arm64.log; then
    say "simulated charge to its signed receipt: passed in $(( $(date +%s) - start )) s ($(grep -m1 '"energy_wh"' build/charge-arm64.log | tr -d ' ,'))"
else
    say "simulated charge: FAILED (build/charge-arm64.log)"; exit 1
fi
# Start-up under emulation: exec to READY and RSS at READY, as bench/bench_startup.py measures.
cat > "$rootfs/root/ready.py" <<'PY'
import os, socket, statistics, subprocess, sys, time
path = "/tmp/urja-ready.sock"
if os.path.exists(path):
    os.unlink(path)
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(path)
os.chmod(path, 0o777)
sock.settimeout(120)
times, rss = [], []
for _ in range(3):
    t0 = time.perf_counter()
    proc = subprocess.Popen(["setpriv", "--reuid", "urja", "--regid", "urja", "--init-groups", sys.argv[1], "run",
                             "--config", "/etc/urja/urja.toml"], env=dict(os.environ, NOTIFY_SOCKET=path),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not sock.recv(100).startswith(b"READY=1"):
        pass
    times.append(time.perf_counter() - t0)
    with open(f"/proc/{proc.pid}/status") as fh:  # setpriv executes the agent in its own process
        rss += [int(line.split()[1]) for line in fh if line.startswith("VmRSS")]
    proc.terminate()
    proc.wait()
print(f"{statistics.median(times):.2f} s to READY, {statistics.median(rss) / 1024:.1f} MiB RSS (median of 3)")
PY
ready=$(run "chmod 1777 /tmp && python3 /root/ready.py $urja" 2>&1 | tail -1)
say "agent under emulation (simulated board, no bindings): $ready"
say "result: passed"
