#!/usr/bin/env bash
# usage: timed.sh NAME COMMAND...  runs COMMAND, then prints "NAME took N s"
# (the time per step of .ci/run and per part of make test), and exits with
# COMMAND's status.
name=$1
shift
t0=$(date +%s)
"$@"
rc=$?
echo "$name took $(( $(date +%s) - t0 )) s"
exit $rc
