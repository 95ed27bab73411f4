#!/usr/bin/env bash
# Install the Debian packages the tests use, only when missing.
set -euo pipefail
need=()
command -v qemu-arm-static >/dev/null 2>&1 || need+=(qemu-user-static)
command -v coap-client-openssl >/dev/null 2>&1 || need+=(libcoap3-bin)
command -v xz >/dev/null 2>&1 || need+=(xz-utils)
# PostgreSQL for the collector store tests (internal/pgtest runs initdb/pg_ctl itself).
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
[ ${#need[@]} -eq 0 ] && exit 0
sudo=""
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
		echo "deps: need ${need[*]} but am not root and have no sudo" >&2; exit 1
	fi
fi
echo "deps: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq "${need[@]}" >/dev/null
