#!/usr/bin/env bash
# Run livekit-server in the foreground for tests and benchmarks: listening on 127.0.0.1 and
# $DTBRIDGE_TEST_IP (the veth address inside scripts/netns-run.sh), data blobs enabled,
# server defaults otherwise. Usage: run-livekit-server.sh BINARY PORT
set -euo pipefail
BIN="$1" PORT="$2"
IP="${DTBRIDGE_TEST_IP:-127.0.0.1}"
DIR="$(mktemp -d "${TMPDIR:-/tmp}/dtbridge-lk.XXXXXX")"
trap 'rm -rf "$DIR"' EXIT
cat >"$DIR/livekit.yaml" <<YAML
port: $PORT
bind_addresses: ["127.0.0.1", "$IP"]
rtc:
  tcp_port: $((PORT + 1))
  port_range_start: $((PORT + 100))
  port_range_end: $((PORT + 300))
  use_external_ip: false
  node_ip: $IP
  enable_loopback_candidate: true
keys:
  ${LIVEKIT_API_KEY:-devkey}: ${LIVEKIT_API_SECRET:-dtbridge-bench-secret-0123456789abcdef}
enable_participant_data_blob: true
logging:
  level: warn
YAML
"$BIN" --config "$DIR/livekit.yaml" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$DIR"' EXIT INT TERM
wait $pid
