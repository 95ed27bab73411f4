#!/usr/bin/env bash
# usage: timed.sh NAME COMMAND...  runs COMMAND, then says how long NAME took
# (CI's time per part of make test), and exits with COMMAND's status.
name=$1
shift
t0=$(date +%s)
"$@"
rc=$?
echo "make: $name took $(( $(date +%s) - t0 )) s"
exit $rc
