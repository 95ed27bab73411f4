#!/usr/bin/env bash
# Build the mtcagent Debian package for one architecture with dpkg-deb.
#
#   build-deb.sh DEBARCH BINARY VERSION OUTDIR
#
# DEBARCH is a Debian architecture (amd64, arm64, armhf), BINARY the
# statically linked mtcagent built for it (`make cross`: armhf uses the
# GOARM=6 build so the package runs on every Raspberry Pi). VERSION is turned
# into a valid Debian version (a tag v1.2.3 plus 4 commits becomes
# 1.2.3+4+gabc; a bare commit hash becomes 0~git<hash>). Prints the path of the .deb.
set -euo pipefail

if [ $# -ne 4 ]; then
	echo "usage: $0 DEBARCH BINARY VERSION OUTDIR" >&2
	exit 2
fi
arch=$1 bin=$2 version=$3 out=$4
here=$(cd "$(dirname "$0")" && pwd)

case "$arch" in
amd64 | arm64 | armhf | i386 | mips | mipsel | mips64el | ppc64el | riscv64 | s390x) ;;
*) echo "build-deb: unknown Debian architecture '$arch'" >&2; exit 2 ;;
esac
[ -f "$bin" ] || { echo "build-deb: no binary at $bin (run make cross)" >&2; exit 1; }

# Debian version: digits first; '-' would mean a Debian revision.
v=${version#v}
v=${v//-/+}
case "$v" in
[0-9]*.*) ;; # a release: 1.2.3, 1.2.3+4+gabc
*) v="0~git$v" ;;
esac
v=$(printf '%s' "$v" | tr -c 'A-Za-z0-9.+~\n' '+')

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
chmod 0755 "$root"
umask 022
install -d "$root/DEBIAN" "$root/usr/bin" "$root/etc/mtcagent" \
	"$root/usr/lib/systemd/system" "$root/usr/share/mtcagent/udev" \
	"$root/usr/share/doc/mtcagent"
install -d -m 0700 "$root/var/lib/mtcagent"
install -m 0755 "$bin" "$root/usr/bin/mtcagent"
install -m 0644 "$here/mtcagent.conf" "$root/etc/mtcagent/mtcagent.conf"
install -m 0644 "$here/mtcagent.service" "$root/usr/lib/systemd/system/mtcagent.service"
install -m 0644 "$here/udev/77-mtcagent-modemmanager.rules" "$here/udev/README" "$root/usr/share/mtcagent/udev/"
install -m 0644 "$here/README.Debian" "$root/usr/share/doc/mtcagent/README.Debian"
install -m 0644 "$here/conffiles" "$root/DEBIAN/conffiles"
install -m 0755 "$here/postinst" "$here/prerm" "$here/postrm" "$root/DEBIAN/"

size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat >"$root/DEBIAN/control" <<CONTROL
Package: mtcagent
Version: $v
Architecture: $arch
Maintainer: mtcagent developers <mtcagent@users.noreply.invalid>
Installed-Size: $size
Depends: adduser
Suggests: modemmanager
Section: net
Priority: optional
Description: cellular device agent with a signed SIM binding and privacy controls
 mtcagent drives a cellular modem over AT commands, attests the SIM-device
 binding with a device key, masks what it reports per recipient, keeps an
 opt-in encrypted measurement log and reports to its collector over
 CoAP/DTLS. This package runs it as a hardened systemd service.
CONTROL
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -print | sed 's|^\./||' | sort | xargs md5sum) >"$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/md5sums"

mkdir -p "$out"
deb="$out/mtcagent_${v}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
