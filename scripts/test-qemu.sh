#!/usr/bin/env bash
# The whole test suite under qemu-user, one run per target CPU, QEMU_JOBS
# (default 2) targets at a time, each with -parallel 4 (QEMU_TEST_FLAGS).
# Emulated tests spend most of their time waiting on real-time timelines,
# not on the CPU, so two targets side by side take little longer than one. Each target's output is kept apart and
# printed whole when it ends; the script fails if any target failed.
#
# usage: test-qemu.sh ARCH:ENV:EMULATOR ...   (ENV is VAR=value or VAR=)
set -uo pipefail
jobs=${QEMU_JOBS:-2}
go=${GO:-go}
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

run() { # arch env emulator log
	local arch=$1 envv=$2 emu=$3 log=$4
	{
		echo "== go test under $emu (GOARCH=$arch $envv)"
		env CGO_ENABLED=0 GOARCH="$arch" $envv MTC_TEST_EXEC="$emu" \
			"$go" test -short -count=1 ${QEMU_TEST_FLAGS--parallel 4} -exec "$emu" ${PKGS:-./...} 2>&1
	} >"$log"
}

declare -A pid
failed=()
n=0
finish() { # wait for one running target and print its log
	local p
	wait -n -p p "${!pid[@]}" 2>/dev/null
	local rc=$?
	local t=${pid[$p]}
	cat "$logs/$t.log"
	if [ $rc -ne 0 ]; then failed+=("$t"); echo "== $t: FAILED"; fi
	unset "pid[$p]"
	n=$((n - 1))
}

for spec in "$@"; do
	arch=${spec%%:*}; rest=${spec#*:}; envv=${rest%%:*}; emu=${rest#*:}
	while [ $n -ge "$jobs" ]; do finish; done
	run "$arch" "$envv" "$emu" "$logs/$arch.log" &
	pid[$!]=$arch
	n=$((n + 1))
done
while [ $n -gt 0 ]; do finish; done

if [ ${#failed[@]} -gt 0 ]; then
	echo "test-qemu: failed under: ${failed[*]}"
	exit 1
fi
echo "test-qemu: all targets passed"
