#!/usr/bin/env bash
# The benchmarks of BENCHMARKS.md: `bash scripts/bench.sh KIND [ARGS...]` builds the release
# binary and runs `dtbridge bench KIND ARGS...`.
#   codec, recorder   in-process, no network
#   transport, run    against a local livekit-server (server defaults) in a private network
#                     namespace (scripts/netns-run.sh); transport also runs the official
#                     Python SDK as the second publisher
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${DTBRIDGE_CACHE:-$HOME/.cache/dtbridge}/target}"
KIND="${1:?usage: bench.sh codec|recorder|transport|run [ARGS...]}"
shift
BIN="$CARGO_TARGET_DIR/release/dtbridge"

if [[ "${DTBRIDGE_IN_NETNS:-}" != 1 ]]; then
  (cd "$ROOT" && cargo build --release --bin dtbridge)
  case "$KIND" in
    codec|recorder) cd "$ROOT" && exec "$BIN" bench "$KIND" "$@" ;;
    transport|run) ;;
    *) echo "bench.sh: unknown benchmark '$KIND'" >&2; exit 2 ;;
  esac
  LK_SERVER_BIN="$("$HERE/setup-livekit-server.sh" | tail -n1)"
  extra=()
  if [[ "$KIND" == transport ]]; then
    extra=(--python "$("$HERE/setup-python.sh" | tail -n1)")
  fi
  export LK_SERVER_BIN DTBRIDGE_IN_NETNS=1
  exec "$HERE/netns-run.sh" bash "${BASH_SOURCE[0]}" "$KIND" "${extra[@]}" "$@"
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
"$BIN" bench "$KIND" "$@"
