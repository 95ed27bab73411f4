#!/usr/bin/env bash
# make demo: the agent on the built-in simulated modem, no hardware.
set -euo pipefail
bin=${1:-dist/mtcagent}
here=$(cd "$(dirname "$0")/.." && pwd)
echo "== mtcagent status --modem sim:examples/quectel.json"
echo "   (a simulated Quectel EC25 on a real pseudo-terminal; test identities only)"
"$bin" status --modem "sim:$here/examples/quectel.json"
echo
echo "== mtcagent watch --modem sim:examples/demo-swap.json --for 15s"
echo "   timeline: cell change at 2s, SIM removed at 4s, a different SIM at 6s,"
echo "   modem reboot at 8s, USB unplug for 2s at 11s"
"$bin" watch --modem "sim:$here/examples/demo-swap.json" --for 15s --poll 1s
