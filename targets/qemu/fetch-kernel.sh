#!/usr/bin/env bash
# Fetch a Debian kernel for a foreign CPU for the whole-system QEMU test and
# print where its files are, one KEY=PATH per line (KERNEL, DTB on ARM, and on
# ARM MODULES: the .ko files the power-cut test loads to mount an ext4 SD
# card, colon-separated in load order; Debian builds them as modules).
#
#   fetch-kernel.sh armhf|mipsel CACHE_DIR
#
# Uses apt-get with a separate lists directory per architecture (the host's
# apt state is not touched) and keeps everything under CACHE_DIR, so a second
# run downloads nothing. Kernel flavours: armhf = armmp (booted on QEMU's
# vexpress-a9 with vexpress-v2p-ca9.dtb), mipsel = 4kc-malta.
set -euo pipefail

if [ $# -ne 2 ]; then
	echo "usage: $0 armhf|mipsel CACHE_DIR" >&2
	exit 2
fi
arch=$1 cache=$2
case "$arch" in
armhf) meta=linux-image-armmp dtb=vexpress-v2p-ca9.dtb
	mods="lib/crc16.ko fs/mbcache.ko fs/jbd2/jbd2.ko crypto/crc32c_generic.ko fs/ext4/ext4.ko drivers/mmc/host/armmmci.ko" ;;
mipsel) meta=linux-image-4kc-malta dtb= mods= ;;
*) echo "fetch-kernel: unsupported architecture $arch" >&2; exit 2 ;;
esac

mkdir -p "$cache"
cache=$(cd "$cache" && pwd)
state="$cache/apt-$arch"
out="$cache/kernel-$arch"
# A cache from before MODULES existed is fetched again.
if [ -f "$out/ok" ] && { [ -z "$mods" ] || grep -q '^MODULES=' "$out/ok"; }; then
	cat "$out/ok"
	exit 0
fi

mkdir -p "$state/lists/partial" "$state/cache/archives/partial" "$cache/dl-$arch"
apt=(-o "APT::Architecture=$arch" -o "APT::Architectures=$arch"
	-o "Dir::State::Lists=$state/lists" -o "Dir::Cache=$state/cache"
	-o "Dir::State::Status=/dev/null" -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root")
# A mirror mid-sync fails one index now and then: retry, and go on with the
# lists from an earlier run if there are any.
for try in 1 2 3; do
	echo "fetch-kernel: apt-get update for $arch (try $try)" >&2
	if apt-get "${apt[@]}" update -qq >&2; then break; fi
	[ "$try" = 3 ] && echo "fetch-kernel: apt-get update failed; using the lists there are" >&2
	sleep 2
done
# The metapackage names the current ABI's image package.
pkg=$(apt-cache "${apt[@]}" depends "$meta" | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
[ -n "$pkg" ] || { echo "fetch-kernel: cannot resolve $meta for $arch" >&2; exit 1; }
echo "fetch-kernel: downloading $pkg" >&2
rm -f "$cache/dl-$arch"/*.deb
(cd "$cache/dl-$arch" && apt-get "${apt[@]}" download -qq "$pkg" >&2)
deb=$(ls "$cache/dl-$arch"/*.deb)

rm -rf "$out" && mkdir -p "$out"
pat=(--wildcards './boot/vmlinu*')
[ -n "$dtb" ] && pat+=("*/$dtb")
for m in $mods; do pat+=("./lib/modules/*/kernel/$m"); done
dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$out" "${pat[@]}"
kernel=$(ls "$out"/boot/vmlinu* | head -1)
{
	echo "KERNEL=$kernel"
	[ -n "$dtb" ] && echo "DTB=$(find "$out" -name "$dtb" | head -1)"
	if [ -n "$mods" ]; then
		paths=()
		for m in $mods; do paths+=("$(ls "$out"/lib/modules/*/kernel/"$m")"); done
		(IFS=:; echo "MODULES=${paths[*]}")
	fi
	echo "PACKAGE=$pkg"
} >"$out/ok.tmp"
mv "$out/ok.tmp" "$out/ok"
rm -f "$deb"
cat "$out/ok"
