#!/usr/bin/env bash
# Run every fuzz target in the module for a short time (default 5s each).
set -euo pipefail
t=${1:-5s}
n=0
for pkg in $(go list ./...); do
	for f in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
		echo "== fuzz $pkg $f ($t)"
		go test -run '^$' -fuzz "^${f}\$" -fuzztime "$t" "$pkg"
		n=$((n+1))
	done
done
echo "fuzz: $n targets ran"
