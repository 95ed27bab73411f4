#!/usr/bin/env bash
# Offline vulnerability check (docs/vulncheck.md).
#
#   scripts/vulncheck.sh [--selftest] [DIR]
#
# Runs govulncheck on the module in DIR (default: this checkout) against a
# local copy of the Go vulnerability database, built from the pinned
# golang.org/x/vulndb module with its cmd/indexdb. The only network used is
# the Go module proxy, and only the first time: the tool and the database
# are kept in $MTC_VULN_CACHE (default ~/.cache/mtcagent-vulncheck), one
# folder per pinned version.
#
# Exit status: 0 when the code reaches no known vulnerability, 3 when it
# does (govulncheck's own code), 1 on any other failure. Vulnerabilities only
# in imported packages or required modules are printed as information.
#
# --selftest first scans scripts/vulncheck-canary, a module that calls the
# DTLS client of pion/dtls v3.1.2, and fails unless the database and the
# tool find GO-2026-6165 there: a check that cannot fail is no check.
set -euo pipefail

# Pinned versions. To bump them, see docs/vulncheck.md.
VULN_VERSION=${VULN_VERSION:-v1.9.0}
VULNDB_VERSION=${VULNDB_VERSION:-v0.0.0-20261105234957-e22db6528018}

here=$(cd "$(dirname "$0")/.." && pwd)
selftest=0
if [ "${1:-}" = "--selftest" ]; then
	selftest=1
	shift
fi
dir=${1:-$here}

# The go.mod toolchain line decides which Go (and so which standard
# library) is scanned; a machine whose go.env says GOTOOLCHAIN=local would
# scan its own, older one.
export GOTOOLCHAIN=${MTC_GOTOOLCHAIN:-auto}
export GOFLAGS=${GOFLAGS:-}

cache=${MTC_VULN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mtcagent-vulncheck}
bin=$cache/govulncheck-$VULN_VERSION
db=$cache/vulndb-$VULNDB_VERSION
mkdir -p "$cache"

if [ ! -x "$bin/govulncheck" ]; then
	echo "vulncheck: building govulncheck $VULN_VERSION (once)"
	tmp=$(mktemp -d "$cache/bin.XXXXXX")
	(cd "$cache" && GOBIN=$tmp go install "golang.org/x/vuln/cmd/govulncheck@$VULN_VERSION")
	rm -rf "$bin" && mv "$tmp" "$bin"
fi

if [ ! -f "$db/index/db.json" ]; then
	echo "vulncheck: building the vulnerability database from golang.org/x/vulndb@$VULNDB_VERSION (once)"
	src=$(cd "$cache" && go mod download -json "golang.org/x/vulndb@$VULNDB_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	if [ -z "$src" ] || [ ! -d "$src/data/osv" ]; then
		echo "vulncheck: golang.org/x/vulndb@$VULNDB_VERSION has no data/osv (the module proxy refused it?)" >&2
		exit 1
	fi
	tmp=$(mktemp -d "$cache/db.XXXXXX")
	# indexdb writes into a folder of its own: build beside, then rename,
	# so an interrupted build is never taken for a database.
	(cd "$cache" && go run "golang.org/x/vulndb/cmd/indexdb@$VULNDB_VERSION" -vulns "$src/data/osv" -out "$tmp/db")
	rm -rf "$db" && mv "$tmp/db" "$db" && rmdir "$tmp"
fi

scan() {
	(cd "$1" && "$bin/govulncheck" -db "file://$db" -show verbose ./...)
}

if [ $selftest = 1 ]; then
	out=$(scan "$here/scripts/vulncheck-canary" 2>&1) && rc=0 || rc=$?
	if [ $rc -ne 3 ] || ! grep -q 'GO-2026-6165' <<<"$out"; then
		echo "$out"
		echo "vulncheck: self-test FAILED: the scan of pion/dtls v3.1.2 (exit $rc) did not report GO-2026-6165;" >&2
		echo "vulncheck: the database or the tool cannot be trusted (docs/vulncheck.md)" >&2
		exit 1
	fi
	echo "vulncheck: self-test ok (pion/dtls v3.1.2 is reported: GO-2026-6165)"
fi

echo "vulncheck: govulncheck $VULN_VERSION, database $VULNDB_VERSION, $(cd "$dir" && go version)"
if scan "$dir"; then
	echo "vulncheck: ok: the code reaches no known vulnerability"
else
	rc=$?
	if [ $rc -eq 3 ]; then
		echo "vulncheck: FAILED: the code reaches the vulnerabilities above; see docs/vulncheck.md" >&2
	else
		echo "vulncheck: govulncheck failed (exit $rc)" >&2
	fi
	exit $rc
fi
