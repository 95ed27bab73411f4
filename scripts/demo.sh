#!/usr/bin/env bash
# make demo: the whole system on the built-in simulated modem, on loopback,
# in about 30 s. Test identities only (network 001-01).
set -euo pipefail
agent=${1:-dist/mtcagent}
collector=${2:-dist/mtccollector}
here=$(cd "$(dirname "$0")/.." && pwd)
agent=$(cd "$(dirname "$agent")" && pwd)/$(basename "$agent")
collector=$(cd "$(dirname "$collector")" && pwd)/$(basename "$collector")
work=$(mktemp -d /tmp/mtcdemo.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
cd "$work"
start=$(date +%s.%N)
say() { printf '\n\033[1m%6.1fs  %s\033[0m\n' "$(echo "$(date +%s.%N) - $start" | bc)" "$*"; }
port() { python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo $((20000 + RANDOM % 20000)); }
dport=$(port); sport=$(port)
hexkey() { printf "$(echo "$1" | sed 's/../\\x&/g')"; }

say "setup: device key, collector registry (one device, two application servers), agent config"
mkdir -p dev col
"$agent" key public --state-dir dev > dev.pub 2>/dev/null
cat > col.conf <<EOC
[collector]
heartbeat_timeout = 4s
[device "meter-1"]
psk_identity = meter-1
psk = 000102030405060708090a0b0c0d0e0f
public_key = dev.pub
heartbeat_timeout = 4s
[scs "home-security"]     # the camera's own service: granted this device
psk_identity = scs-home
psk = 101112131415161718191a1b1c1d1e1f
devices = meter-1
classes = status events trigger
[scs "ad-network"]        # a compromised or curious SCS: granted another device only
psk_identity = scs-ads
psk = 202122232425262728292a2b2c2d2e2f
devices = meter-9
classes = status
EOC
cat > agent.conf <<EOC
[agent]
heartbeat = 2s
poll = 2s
[uplink]
addr = 127.0.0.1:$dport
name = operator
psk_identity = meter-1
psk = 000102030405060708090a0b0c0d0e0f
[recipient "operator"]
identity = psk:meter-1
status = reachable
cell = tracking_area
identity_disclosure = pseudonym
[mdt]
interval = 1.28s
EOC
echo "  device public key: $(sed -n 2p dev.pub | cut -c1-24)..."

say "collector starts (devices on udp:$dport, application servers on udp:$sport)"
"$collector" serve --listen "udp:127.0.0.1:$dport" --scs-listen "udp:127.0.0.1:$sport" --state col --config col.conf 2>&1 | sed -u 's/^/    collector | /' &
pids+=($!)
sleep 0.5
say "agent starts on a simulated Quectel EC25 (pty); it registers and attests the SIM–device binding"
"$agent" run --config agent.conf --modem "sim:$here/examples/demo.json" --state-dir dev 2>&1 \
	| sed -u -n 's/^time=[^ ]* level=\([A-Z]*\) msg=/\1 /p' | grep --line-buffered -v 'modem event' | sed -u 's/^/    agent     | /' &
pids+=($!)
sleep 3.5
scs() { # name identity keyhex path
	local out
	out=$(coap-client-openssl -B 3 -u "$2" -k "$(hexkey "$3")" -A 50 -m get "coaps://127.0.0.1:$sport$4" 2>&1 | tr -d '\0' | head -c 400) || true
	echo "    $1 GET $4 -> ${out:-<no answer>}"
}
say "authorized SCS reads the device's status: masked to 'reachable' and a pseudonym"
scs home-security scs-home 101112131415161718191a1b1c1d1e1f /devices/meter-1/status
say "unauthorized SCS asks for the same device, and for one that does not exist: the same answer"
scs ad-network scs-ads 202122232425262728292a2b2c2d2e2f /devices/meter-1/status
scs ad-network scs-ads 202122232425262728292a2b2c2d2e2f /devices/no-such-device/status
sleep 1
say "the SIM is swapped (removed at 6s, another SIM at 7s): signed events, collector alarm"
sleep 3
say "the serving cell changes (9s)"
sleep 1.5
say "connectivity is lost (11s-19s): the agent queues; the collector flags the overdue heartbeat"
sleep 8.5
say "connectivity returns: queued events arrive in order, with the outage's duration"
sleep 2
say "MDT: the user consents (the notice is shown), the daemon logs, the user clears the log"
"$agent" mdt consent --yes --config agent.conf --state-dir dev | sed -n '1,6p' | sed 's/^/    /'
sleep 3
"$agent" mdt status --config agent.conf --state-dir dev | sed 's/^/    /'
"$agent" mdt clear --yes --config agent.conf --state-dir dev | sed 's/^/    /'
say "done: alarms raised by the collector"
sed 's/^/    /' col/alarms.log 2>/dev/null | cut -c1-160 || true
