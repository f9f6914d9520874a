#!/bin/sh
# Installs LayerMesh from this tarball with no network: its tree goes into / (or $DPKG_ROOT), an existing
# /etc/layermesh/meshd.yaml is kept (as dpkg keeps a changed conffile), then the package's own postinst runs.
set -e
cd "$(dirname "$0")"
root="${DPKG_ROOT:-}"
if [ "$(id -u)" != 0 ]; then
  echo "install.sh: run as root" >&2
  exit 1
fi
upgrade=
[ -e "$root/usr/lib/layermesh" ] && upgrade=yes
# Whole, so that files of the previous version do not linger among the new.
rm -rf "$root/usr/lib/layermesh"
mkdir -p "$root/usr/lib" "$root/usr/bin" "$root/lib/systemd/system"
cp -a usr/lib/layermesh "$root/usr/lib/"
cp -a usr/bin/meshd usr/bin/meshctl usr/bin/pussh "$root/usr/bin/"
cp -a lib/systemd/system/meshd.service "$root/lib/systemd/system/"
[ -e "$root/etc/layermesh/meshd.yaml" ] || install -D -m 0644 etc/layermesh/meshd.yaml "$root/etc/layermesh/meshd.yaml"
DPKG_ROOT="$root" sh ./postinst configure ${upgrade:+installed}
echo "installed: $root/usr/bin/meshd ($(cat usr/lib/layermesh/VERSION))"
