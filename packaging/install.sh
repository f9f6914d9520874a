#!/bin/sh
# Installs LayerMesh from this tarball with no network: its tree goes into / (or $DPKG_ROOT), an existing
# /etc/layermesh/meshd.yaml is kept (as dpkg keeps a changed conffile), then the package's own postinst runs.
# groupadd is in sbin, which `su` without `-` leaves off PATH.
export PATH="/usr/sbin:/usr/bin:/sbin:/bin:$PATH"
set -e
cd "$(dirname "$0")"
root="${DPKG_ROOT:-}"
if [ "$(id -u)" != 0 ]; then
  echo "install.sh: run as root" >&2
  exit 1
fi
upgrade=
[ -e "$root/usr/lib/layermesh" ] && upgrade=yes
mkdir -p "$root/usr/lib" "$root/usr/bin" "$root/lib/systemd/system"
# The new tree is copied beside the old one and swapped in, so that a copy that fails (a full disk) leaves the old
# install whole, and no file of the old version lingers among the new. Copied, not preserved: whoever unpacked the
# tarball owns its files, and code systemd runs as root must be root's, writable by nobody else.
new="$root/usr/lib/.layermesh.new.$$"
old="$root/usr/lib/.layermesh.old.$$"
trap 'rm -rf "$new"' EXIT
cp -R usr/lib/layermesh "$new"
chmod -R go-w "$new"
[ -e "$root/usr/lib/layermesh" ] && mv "$root/usr/lib/layermesh" "$old"
mv "$new" "$root/usr/lib/layermesh"
rm -rf "$old"
# Each file replaced whole by a rename: a running meshd, or a failed copy, never meets half a file.
place() {
  install -o root -g root -m "$3" "$1" "$2.new.$$"
  mv -f "$2.new.$$" "$2"
}
for command in meshd meshctl pussh; do place "usr/bin/$command" "$root/usr/bin/$command" 0755; done
mkdir -p "$root/usr/libexec/docker/cli-plugins"
ln -sfn ../../../bin/pussh "$root/usr/libexec/docker/cli-plugins/docker-pussh"
place lib/systemd/system/meshd.service "$root/lib/systemd/system/meshd.service" 0644
[ -e "$root/etc/layermesh/meshd.yaml" ] || install -D -m 0644 etc/layermesh/meshd.yaml "$root/etc/layermesh/meshd.yaml"
DPKG_ROOT="$root" sh ./postinst configure ${upgrade:+installed}
echo "installed: $root/usr/bin/meshd ($(cat usr/lib/layermesh/VERSION))"
