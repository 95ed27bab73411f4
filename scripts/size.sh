#!/usr/bin/env bash
# Print the stripped and xz -9 sizes of every dist/mtcagent-* binary and fail
# when a budgeted target is missing or over either of its budgets (bytes).
#
#   scripts/size.sh DIST TARGET:STRIPPED:XZ...
#
# The binaries come from `make cross`, which links with -s -w (no symbol
# table, no DWARF): the file size is the stripped size. A binary that still
# has a symbol table (built some other way) is flagged.
set -euo pipefail

if [ $# -lt 2 ]; then
	echo "usage: $0 DIST TARGET:STRIPPED_BUDGET:XZ_BUDGET..." >&2
	exit 2
fi
dist=$1
shift
command -v xz >/dev/null || { echo "size: xz not installed (apt-get install xz-utils)" >&2; exit 1; }

mib() { awk -v b="$1" 'BEGIN { printf "%.2f", b / 1048576 }'; }

declare -A stripped xzed
printf '%-20s %10s %8s %10s %8s\n' target stripped MiB "xz -9" MiB
for f in "$dist"/mtcagent-*; do
	[ -f "$f" ] || continue
	case "$f" in *.deb | *.ipk | *.xz | *.txt) continue ;; esac
	name=${f##*/mtcagent-}
	size=$(stat -c %s "$f")
	xzs=$(xz -9 -T1 -c "$f" | wc -c)
	stripped[$name]=$size xzed[$name]=$xzs
	note=""
	# go tool nm fails on a binary linked with -s (no symbol table).
	if command -v go >/dev/null && go tool nm "$f" >/dev/null 2>&1; then
		note="(has a symbol table: not built with -s; strip it for the real figure)"
	fi
	printf '%-20s %10d %8s %10d %8s %s\n' "$name" "$size" "$(mib "$size")" "$xzs" "$(mib "$xzs")" "$note"
done

status=0
for b in "$@"; do
	IFS=: read -r name budget xzbudget <<<"$b"
	if [ -z "${stripped[$name]:-}" ]; then
		echo "size: no $dist/mtcagent-$name (run make cross)" >&2
		status=1
		continue
	fi
	over=""
	if [ "${stripped[$name]}" -gt "$budget" ]; then
		over="$over ${stripped[$name]} bytes stripped, over $budget ($(mib "$budget") MiB);"
	fi
	if [ "${xzed[$name]}" -gt "$xzbudget" ]; then
		over="$over ${xzed[$name]} bytes after xz -9, over $xzbudget ($(mib "$xzbudget") MiB);"
	fi
	if [ -n "$over" ]; then
		echo "size: $name:$over" >&2
		status=1
	else
		echo "size: $name within budget ($(mib "$budget") MiB stripped, $(mib "$xzbudget") MiB xz)"
	fi
done
exit $status
