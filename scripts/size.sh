#!/usr/bin/env bash
# Print the stripped and xz -9 sizes of every dist/mtcagent-* binary and fail
# when linux-mipsle exceeds either budget (bytes).
#
#   scripts/size.sh DIST STRIPPED_BUDGET XZ_BUDGET
#
# The binaries come from `make cross`, which links with -s -w (no symbol
# table, no DWARF): the file size is the stripped size. A binary that still
# has a symbol table (built some other way) is flagged.
set -euo pipefail

if [ $# -ne 3 ]; then
	echo "usage: $0 DIST STRIPPED_BUDGET XZ_BUDGET" >&2
	exit 2
fi
dist=$1 budget=$2 xzbudget=$3
command -v xz >/dev/null || { echo "size: xz not installed (apt-get install xz-utils)" >&2; exit 1; }

mib() { awk -v b="$1" 'BEGIN { printf "%.2f MiB", b / 1048576 }'; }

printf '%-14s %10s %10s %10s %10s\n' target stripped MiB "xz -9" MiB
status=0 seen=0
for f in "$dist"/mtcagent-*; do
	[ -f "$f" ] || continue
	case "$f" in *.deb | *.ipk | *.xz | *.txt) continue ;; esac
	name=${f##*/mtcagent-}
	size=$(stat -c %s "$f")
	xzs=$(xz -9 -T1 -c "$f" | wc -c)
	note=""
	# go tool nm fails on a binary linked with -s (no symbol table).
	if command -v go >/dev/null && go tool nm "$f" >/dev/null 2>&1; then
		note="(has a symbol table: not built with -s; strip it for the real figure)"
	fi
	printf '%-14s %10d %10s %10d %10s %s\n' "$name" "$size" "$(mib "$size" | cut -d' ' -f1)" "$xzs" "$(mib "$xzs" | cut -d' ' -f1)" "$note"
	if [ "$name" = linux-mipsle ]; then
		seen=1
		if [ "$size" -gt "$budget" ]; then
			echo "size: linux-mipsle is $size bytes stripped, over the budget of $budget ($(mib "$budget"))" >&2
			status=1
		fi
		if [ "$xzs" -gt "$xzbudget" ]; then
			echo "size: linux-mipsle is $xzs bytes after xz -9, over the budget of $xzbudget ($(mib "$xzbudget"))" >&2
			status=1
		fi
	fi
done
if [ "$seen" = 0 ]; then
	echo "size: no $dist/mtcagent-linux-mipsle (run make cross)" >&2
	exit 1
fi
[ "$status" = 0 ] && echo "size: linux-mipsle within budget ($(mib "$budget") stripped, $(mib "$xzbudget") xz)"
exit $status
