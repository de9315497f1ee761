#!/bin/sh
# Install urja from this bundle with no network: a venv per version under $URJA_PREFIX
# (default /opt/urja), wheels from ./wheels only, then the health-checked switch (activate.py).
#   ./install.sh                 install, set up user, udev rules and the service, switch
#   ./install.sh --no-system     only the versioned venv (a chroot or a test); no user, unit or switch
# Environment: URJA_PREFIX, URJA_CONFIG (default /etc/urja/urja.toml), URJA_USER (default urja),
# PYTHON (default python3).
set -eu
# Only this bundle: no index, and no pip configuration of the machine pointing elsewhere.
export PIP_CONFIG_FILE=/dev/null PIP_NO_INDEX=1
here=$(cd "$(dirname "$0")" && pwd)
prefix=${URJA_PREFIX:-/opt/urja}
config=${URJA_CONFIG:-/etc/urja/urja.toml}
user=${URJA_USER:-urja}
python=${PYTHON:-python3}
version=$(cat "$here/VERSION")
system=1
[ "${1:-}" = "--no-system" ] && system=0

need=$(cat "$here/PYTHON")
have=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if [ "$have" != "$need" ]; then
    echo "install.sh: this bundle's wheels are for Python $need; $python is $have" >&2
    exit 1
fi
"$python" -c 'import zoneinfo; zoneinfo.ZoneInfo("Asia/Kolkata")' 2>/dev/null || {
    echo "install.sh: the time zone database is missing (Debian: apt-get install tzdata)" >&2; exit 1; }

dest="$prefix/versions/$version"
if [ -L "$prefix/current" ] && [ "$(basename "$(readlink "$prefix/current")")" = "$version" ]; then
    echo "install.sh: version $version is already the running one" >&2
    exit 1
fi
rm -rf "$dest"
mkdir -p "$prefix/versions"
"$python" -m venv "$dest"
"$dest/bin/python" -m pip install --quiet --no-index --no-cache-dir --disable-pip-version-check \
    --find-links "$here/wheels" "urja==$version" $(cat "$here/EXTRAS")
echo "installed urja $version in $dest"
[ "$system" = 1 ] || exit 0

command -v useradd >/dev/null || { echo "install.sh: useradd is missing (Debian: apt-get install passwd)" >&2; exit 1; }
if ! id "$user" >/dev/null 2>&1; then
    useradd --system --user-group --home-dir /var/lib/urja --no-create-home --shell /usr/sbin/nologin "$user"
fi
usermod -a -G dialout "$user"
mkdir -p /etc/urja /var/lib/urja /etc/udev/rules.d /etc/systemd/system
chown "root:$user" /etc/urja && chmod 0750 /etc/urja
chown "$user:$user" /var/lib/urja && chmod 0750 /var/lib/urja
sed "s#@USER@#$user#g" "$here/60-urja.rules" > /etc/udev/rules.d/60-urja.rules
sed "s#@PREFIX@#$prefix#g; s#@CONFIG@#$config#g; s#@USER@#$user#g" "$here/urja.service.in" \
    > /etc/systemd/system/urja.service
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    udevadm control --reload 2>/dev/null || true
    systemctl daemon-reload
    systemctl enable urja.service
    service=""
else
    service="--no-service"
fi
if [ ! -f "$config" ]; then
    echo "install.sh: no $config yet: provision the unit (urja provision), then run" >&2
    echo "  $python $here/activate.py activate $version --prefix $prefix --config $config" >&2
    exit 0
fi
# The provisioned keys and the owner's access file belong to the service's user (the agent refuses
# private keys that others can read, so they are not made group-readable instead).
confdir=$(dirname "$config")
[ -d "$confdir/keys" ] && chown -R "$user:$user" "$confdir/keys"
[ -f "$confdir/owner-access.json" ] && chown "$user:$user" "$confdir/owner-access.json"
exec "$python" "$here/activate.py" activate "$version" --prefix "$prefix" --config "$config" --user "$user" $service
