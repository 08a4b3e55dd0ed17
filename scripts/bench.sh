#!/usr/bin/env bash
# The benchmarks of BENCHMARKS.md: `bash scripts/bench.sh KIND [ARGS...]` builds the release
# binary and runs `dtbridge bench KIND ARGS...`.
#   codec, recorder   in-process, no network
#   transport, run    against a local livekit-server (server defaults) in a private network
#                     namespace (scripts/netns-run.sh); transport also runs the official
#                     Python SDK as the second publisher
#   ros2              rclpy publishers -> dtbridge run (--features ros2) -> livekit-server ->
#                     dtbridge record, next to an rclpy subscriber (tests/peers/bench_ros2.py)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${DTBRIDGE_CACHE:-$HOME/.cache/dtbridge}/target}"
KIND="${1:?usage: bench.sh codec|recorder|transport|run|ros2 [ARGS...]}"
shift
BIN="$CARGO_TARGET_DIR/release/dtbridge"

if [[ "${DTBRIDGE_IN_NETNS:-}" != 1 ]]; then
  features=()
  if [[ "$KIND" == ros2 ]]; then
    # shellcheck source=ros2-env.sh
    source "$HERE/ros2-env.sh"
    features=(--features ros2)
  fi
  (cd "$ROOT" && cargo build --release --bin dtbridge "${features[@]}")
  case "$KIND" in
    codec|recorder) cd "$ROOT" && exec "$BIN" bench "$KIND" "$@" ;;
    transport|run|ros2) ;;
    *) echo "bench.sh: unknown benchmark '$KIND'" >&2; exit 2 ;;
  esac
  LK_SERVER_BIN="$("$HERE/setup-livekit-server.sh" | tail -n1)"
  extra=()
  if [[ "$KIND" == transport || "$KIND" == ros2 ]]; then
    DTBRIDGE_PYTHON="$("$HERE/setup-python.sh" | tail -n1)"
    export DTBRIDGE_PYTHON
  fi
  if [[ "$KIND" == transport ]]; then
    extra=(--python "$DTBRIDGE_PYTHON")
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
if [[ "$KIND" == ros2 ]]; then
  exec "$DTBRIDGE_PYTHON" tests/peers/bench_ros2.py --dtbridge "$BIN" \
    --ros-python "$DTBRIDGE_ROS2_PYTHON" "$@"
fi
"$BIN" bench "$KIND" "$@"
