#!/usr/bin/env bash
# Install QEMU's whole-system emulators (and mkfs.ext4, for the power-cut
# test's SD card image) for `make test-system` when missing.
set -euo pipefail
need=()
command -v qemu-system-arm >/dev/null 2>&1 || need+=(qemu-system-arm)
command -v qemu-system-mipsel >/dev/null 2>&1 || need+=(qemu-system-mips)
command -v dpkg-deb >/dev/null 2>&1 || need+=(dpkg)
command -v mkfs.ext4 >/dev/null 2>&1 || PATH=$PATH:/sbin:/usr/sbin command -v mkfs.ext4 >/dev/null 2>&1 || need+=(e2fsprogs)
[ ${#need[@]} -eq 0 ] && exit 0
sudo=""
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
		echo "test-system: need ${need[*]} but am not root and have no sudo" >&2; exit 1
	fi
fi
echo "test-system: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq || true
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
