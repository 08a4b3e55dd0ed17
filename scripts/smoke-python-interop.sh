#!/usr/bin/env bash
# Smoke test: livekit-server + two Python SDK peers (tests/peers/lk_peer.py) in a private
# network namespace (scripts/netns-run.sh). Publishes COUNT frames (deterministic payloads),
# checks that all COUNT arrive intact. Starts and stops the server itself; exit 0 = pass.
# Env knobs (defaults): SMOKE_COUNT (200), SMOKE_SIZES (1,2,...,60000), SMOKE_SEED (7),
#   SMOKE_RATE (frames/s, 50), SMOKE_BYTE_RATE (payload bytes/s pacing, 500000),
#   SMOKE_SETTLE (s between "subscribed" and start, 0.5), SMOKE_LATE_SUB=1 (start the subscriber
#   only after the track is published), SMOKE_BUFFER (subscriber buffer, 256),
#   SMOKE_MIN_RECV (COUNT), SMOKE_DT_TARGET_LATENCY (server rtc.datachannel_data_track_target_latency,
#   100ms = server default), SMOKE_KEEP=1 keeps the temp dir.
# Faster pacing loses frames: the SDK publisher keeps only the newest queued frame while its
# SCTP buffer drains (livekit rtc_engine dc_sender), so bursts of large frames get evicted.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
log() { echo "[smoke] $*" >&2; }

if [[ "${DTBRIDGE_IN_NETNS:-}" != 1 ]]; then
  # Outside the namespace: build/fetch what we need (network access to registries), then re-exec.
  LK_SERVER_BIN="$("$HERE/setup-livekit-server.sh" | tail -n1)"
  LK_PYTHON="$("$HERE/setup-python.sh" | tail -n1)"
  export LK_SERVER_BIN LK_PYTHON DTBRIDGE_IN_NETNS=1
  exec "$HERE/netns-run.sh" bash "${BASH_SOURCE[0]}" "$@"
fi

: "${DTBRIDGE_TEST_IP:?must run inside scripts/netns-run.sh}"
COUNT="${SMOKE_COUNT:-200}"
SIZES="${SMOKE_SIZES:-1,2,100,1000,4096,15000,16000,16001,65511,65512}"
SEED="${SMOKE_SEED:-7}"
BUFFER="${SMOKE_BUFFER:-256}"
MIN_RECV="${SMOKE_MIN_RECV:-$COUNT}"
PORT=7880 TCP_PORT=7881 UDP_START=50000 UDP_END=50200
API_KEY=devkey
API_SECRET=dtbridge-test-secret-0123456789abcdef   # >= 32 chars
PEER="$ROOT/tests/peers/lk_peer.py"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/dtbridge-smoke.XXXXXX")"
PIDS=()
cleanup() {
  local rc=$?
  { exec 3>&-; } 2>/dev/null || true
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [[ $rc -ne 0 ]]; then
    for f in "$WORK"/*.log "$WORK"/*.out; do [[ -f $f ]] && { echo "--- $f (tail)" >&2; tail -n 15 "$f" >&2; }; done
  fi
  [[ "${SMOKE_KEEP:-}" == 1 ]] && log "kept $WORK" || rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT

cat >"$WORK/livekit.yaml" <<YAML
port: $PORT
bind_addresses: ["127.0.0.1", "$DTBRIDGE_TEST_IP"]
rtc:
  tcp_port: $TCP_PORT
  port_range_start: $UDP_START
  port_range_end: $UDP_END
  use_external_ip: false
  node_ip: $DTBRIDGE_TEST_IP
  # Server-side drop policy for the per-subscriber _data_track channel: a write is dropped when
  # buffered > max(8 KiB, bitrate * target_latency). Default 100ms drops bursts of large frames.
  datachannel_data_track_target_latency: ${SMOKE_DT_TARGET_LATENCY:-100ms}
keys:
  $API_KEY: $API_SECRET
enable_participant_data_blob: true
logging:
  level: warn
YAML

wait_for() { # file pattern timeout_s
  local deadline=$((SECONDS + $3))
  until grep -q "$2" "$1" 2>/dev/null; do
    (( SECONDS < deadline )) || { log "timeout waiting for '$2' in $1"; return 1; }
    sleep 0.05
  done
}

t0=$(date +%s.%N)
"$LK_SERVER_BIN" --config "$WORK/livekit.yaml" >"$WORK/server.log" 2>&1 &
PIDS+=($!)
deadline=$((SECONDS + 20))
until "$LK_PYTHON" - "$PORT" <<'PY' 2>/dev/null
import sys, urllib.request
urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/", timeout=1).read()
PY
do
  kill -0 "${PIDS[0]}" 2>/dev/null || { log "server exited"; exit 1; }
  (( SECONDS < deadline )) || { log "server not ready"; exit 1; }
  sleep 0.1
done
log "server up ($(awk "BEGIN{printf \"%.2f\", $(date +%s.%N)-$t0}")s)"

URL="ws://$DTBRIDGE_TEST_IP:$PORT"
common=(--url "$URL" --api-key "$API_KEY" --api-secret "$API_SECRET" --room smoke)

start_sub() {
  "$LK_PYTHON" -u "$PEER" "${common[@]}" --identity sub subscribe --track smoke \
    --count "$COUNT" --timeout 60 --idle-timeout 5 --buffer-size "$BUFFER" \
    --verify-seed "$SEED" --sizes "$SIZES" >"$WORK/sub.out" 2>"$WORK/sub.log" &
  PIDS+=($!); SUB=$!
}
[[ "${SMOKE_LATE_SUB:-}" == 1 ]] || start_sub

mkfifo "$WORK/pub.in"
exec 3<>"$WORK/pub.in"
"$LK_PYTHON" -u "$PEER" "${common[@]}" --identity pub publish --track smoke \
  --count "$COUNT" --seed "$SEED" --sizes "$SIZES" --rate "${SMOKE_RATE:-50}" --byte-rate "${SMOKE_BYTE_RATE:-500000}" \
  <"$WORK/pub.in" >"$WORK/pub.out" 2>"$WORK/pub.log" &
PIDS+=($!); PUB=$!

wait_for "$WORK/pub.out" '"event":"published"' 30
[[ "${SMOKE_LATE_SUB:-}" != 1 ]] || start_sub   # subscriber joins after the track exists
wait_for "$WORK/sub.out" '"event":"subscribed"' 30
sleep "${SMOKE_SETTLE:-0.5}"   # let the SFU subscription settle before pushing
t1=$(date +%s.%N)
echo start >&3
wait_for "$WORK/pub.out" '"event":"done"' 60
wait_for "$WORK/sub.out" '"event":"done"' 90
t2=$(date +%s.%N)
echo quit >&3
wait "$SUB" || { log "subscriber failed"; exit 1; }
wait "$PUB" || { log "publisher failed"; exit 1; }

grep '"event":"done"' "$WORK/pub.out" | sed 's/^/[smoke] pub: /' >&2
grep '"event":"done"' "$WORK/sub.out" | sed 's/^/[smoke] sub: /' >&2
"$LK_PYTHON" - "$WORK/sub.out" "$COUNT" "$MIN_RECV" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
count, min_recv = int(sys.argv[2]), int(sys.argv[3])
frames = [l for l in lines if l["event"] == "frame"]
bad = [f for f in frames if not f.get("valid")]
idx = [f["index"] for f in frames]
missing = sorted(set(range(count)) - set(idx))
print(f"[smoke] received={len(frames)}/{count} invalid={len(bad)} "
      f"in_order={idx == sorted(idx)} dup={len(idx) - len(set(idx))} "
      f"missing={missing[:20]}{'...' if len(missing) > 20 else ''} "
      f"max_len={max((f['len'] for f in frames), default=0)}", file=sys.stderr)
sys.exit(0 if len(frames) >= min_recv and not bad else 1)
PY
log "PASS: transfer took $(awk "BEGIN{printf \"%.2f\", $t2-$t1}")s"
