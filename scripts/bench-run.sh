#!/usr/bin/env bash
# The end-to-end benchmark of BENCHMARKS.md: a local livekit-server (server defaults) in a
# private network namespace, then `dtbridge bench run`, which starts `dtbridge run -c
# config/bench-realsense.toml` and subscribes to its tracks. Extra arguments go to
# `dtbridge bench run` (e.g. --seconds 60, --config FILE).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${DTBRIDGE_CACHE:-$HOME/.cache/dtbridge}/target}"

if [[ "${DTBRIDGE_IN_NETNS:-}" != 1 ]]; then
  LK_SERVER_BIN="$("$HERE/setup-livekit-server.sh" | tail -n1)"
  (cd "$ROOT" && cargo build --release --bin dtbridge)
  export LK_SERVER_BIN DTBRIDGE_IN_NETNS=1
  exec "$HERE/netns-run.sh" bash "${BASH_SOURCE[0]}" "$@"
fi

export LIVEKIT_API_KEY=devkey LIVEKIT_API_SECRET=dtbridge-bench-secret-0123456789abcdef
export LIVEKIT_URL="ws://$DTBRIDGE_TEST_IP:7880"
"$HERE/run-livekit-server.sh" "$LK_SERVER_BIN" 7880 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null' EXIT
for _ in $(seq 200); do
  (exec 3<>"/dev/tcp/$DTBRIDGE_TEST_IP/7880") 2>/dev/null && break
  sleep 0.05
done
cd "$ROOT"
"$CARGO_TARGET_DIR/release/dtbridge" bench run "$@"
