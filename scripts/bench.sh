#!/usr/bin/env bash
# The benchmarks of BENCHMARKS.md: `bash scripts/bench.sh KIND [ARGS...]` builds the release
# binary and runs `dtbridge bench KIND ARGS...`.
#   codec, recorder   in-process, no network
#   transport, run    against a local livekit-server (server defaults) in a private network
#                     namespace (scripts/netns-run.sh); transport also runs the official
#                     Python SDK as the second publisher
#   run-realsense     `run` of config/bench-realsense.toml (the synthetic camera, the anchor)
#                     and of the same camera played from a RealSense recording through
#                     librealsense (config/bench/realsense-recording.toml), alternately: give
#                     --runs N for medians; builds with --features realsense
#   ros2              rclpy publishers -> dtbridge run (--features ros2) -> livekit-server ->
#                     dtbridge record, next to an rclpy subscriber (tests/peers/bench_ros2.py)
#   one-bridge        a robot's RealSense (the recording of run-realsense, through librealsense)
#                     and its ROS 2 topics (tests/peers/ros2_bench_peer.py pub robot: imu 200 Hz,
#                     tf 100 Hz, a 640x480 image 15 Hz, a 30k-point cloud 10 Hz) bridged by one
#                     `dtbridge run` (config/bench/one-bridge.toml) and by two (one per source:
#                     realsense-recording.toml + ros2-robot.toml), alternately; builds with
#                     --features ros2,realsense; give --runs N for medians
#   link [PROFILE]    the RealSense-like synthetic robot through dtbridge-linkemu's emulated
#                     link (lan, wifi, lte, satellite, congested, or all; default lte), next to
#                     the official Python SDK publishing the same streams
#                     (tests/peers/bench_link.py); needs root for the network namespaces
#   view              the live view: the RealSense-like synthetic robot -> livekit-server ->
#                     `dtbridge record --view` with 0 (the anchor), 1 and 4 Foxglove clients
#                     (tests/peers/node/foxglove_client.mjs --no-decode), alternately: operator
#                     CPU, frames delivered to the clients, their latency
#                     (tests/peers/bench_view.py: [--runs N] [--seconds S] [--json FILE]);
#                     livekit-server on 127.0.0.1, no network namespace
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${DTBRIDGE_CACHE:-$HOME/.cache/dtbridge}/target}"
KIND="${1:?usage: bench.sh codec|recorder|transport|run|run-realsense|ros2|one-bridge|link|view [ARGS...]}"
shift
BIN="$CARGO_TARGET_DIR/release/dtbridge"

if [[ "$KIND" == link ]]; then
  if [[ $EUID -ne 0 ]]; then
    echo "bench.sh link: the link emulator creates network namespaces and needs root:" >&2
    echo "  sudo -E bash scripts/bench.sh link $*" >&2
    exit 1
  fi
  # `bench.sh link lte` is `bench.sh link --profile lte`.
  if [[ $# -gt 0 && "$1" != -* ]]; then
    set -- --profile "$@"
  fi
  (cd "$ROOT" && cargo build --release --bin dtbridge --bin dtbridge-linkemu)
  LK_SERVER_BIN="$("$HERE/setup-livekit-server.sh" | tail -n1)"
  DTBRIDGE_PYTHON="$("$HERE/setup-python.sh" | tail -n1)"
  exec "$DTBRIDGE_PYTHON" "$ROOT/tests/peers/bench_link.py" --dtbridge "$BIN" \
    --linkemu "$CARGO_TARGET_DIR/release/dtbridge-linkemu" --server "$LK_SERVER_BIN" "$@"
fi

if [[ "$KIND" == view ]]; then
  (cd "$ROOT" && cargo build --release --bin dtbridge)
  LK_SERVER_BIN="$("$HERE/setup-livekit-server.sh" | tail -n1)"
  FOXGLOVE_CLIENT="$("$HERE/setup-node.sh" | tail -n1)"
  DTBRIDGE_PYTHON="$("$HERE/setup-python.sh" | tail -n1)"
  exec "$DTBRIDGE_PYTHON" "$ROOT/tests/peers/bench_view.py" --dtbridge "$BIN" --server "$LK_SERVER_BIN" \
    --client "$FOXGLOVE_CLIENT" "$@"
fi

if [[ "${DTBRIDGE_IN_NETNS:-}" != 1 ]]; then
  features=()
  extra=()
  if [[ "$KIND" == run-realsense || "$KIND" == one-bridge ]]; then
    prefix="$("$HERE/setup-realsense.sh" | tail -n1)"
    export PKG_CONFIG_PATH="$prefix/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
    export LD_LIBRARY_PATH="$prefix/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    bench_dir="${DTBRIDGE_CACHE:-$HOME/.cache/dtbridge}/realsense-bench"
    recording="$bench_dir/d435-848x480-1280x720-30fps.db3"
    if [[ ! -f "$recording" ]]; then
      echo "bench.sh: writing $recording (about a minute)" >&2
      mkdir -p "$bench_dir"
      partial="$bench_dir/partial-$$.db3"
      "$prefix/venv/bin/python" "$ROOT/tests/peers/make_realsense_recording.py" "$partial" \
        --depth 848x480 --color 1280x720 --fps 30 --frames 60 >/dev/null
      mv "$partial" "$recording"
    fi
    cp "$ROOT/config/bench/realsense-recording.toml" "$bench_dir/"
    features=(--features realsense)
    extra=(--config config/bench-realsense.toml --config "$bench_dir/realsense-recording.toml")
    if [[ "$KIND" == one-bridge ]]; then
      cp "$ROOT/config/bench/one-bridge.toml" "$ROOT/config/bench/ros2-robot.toml" "$bench_dir/"
      # shellcheck source=ros2-env.sh
      source "$HERE/ros2-env.sh"
      # The realsense libraries after ROS 2's: ros2-env.sh set LD_LIBRARY_PATH afresh.
      export LD_LIBRARY_PATH="$prefix/lib:$LD_LIBRARY_PATH"
      features=(--features ros2,realsense)
      extra=(--config "$bench_dir/one-bridge.toml"
        --config "$bench_dir/realsense-recording.toml+$bench_dir/ros2-robot.toml"
        --discovered-track /imu --discovered-track /tf --discovered-track /camera/image
        --discovered-track /points)
    else
      KIND=run
    fi
  fi
  if [[ "$KIND" == ros2 ]]; then
    # shellcheck source=ros2-env.sh
    source "$HERE/ros2-env.sh"
    features=(--features ros2)
  fi
  # --bins: with realsense, the camera driver dtbridge runs (dtbridge-realsense) too.
  (cd "$ROOT" && cargo build --release --bins "${features[@]}")
  case "$KIND" in
    codec|recorder) cd "$ROOT" && exec "$BIN" bench "$KIND" "$@" ;;
    transport|run|ros2|one-bridge) ;;
    *) echo "bench.sh: unknown benchmark '$KIND'" >&2; exit 2 ;;
  esac
  LK_SERVER_BIN="$("$HERE/setup-livekit-server.sh" | tail -n1)"
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
# `|| true`: the killed server's status is not the benchmark's.
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
for _ in $(seq 200); do
  (exec 3<>"/dev/tcp/$DTBRIDGE_TEST_IP/7880") 2>/dev/null && break
  sleep 0.05
done
cd "$ROOT"
if [[ "$KIND" == ros2 ]]; then
  exec "$DTBRIDGE_PYTHON" tests/peers/bench_ros2.py --dtbridge "$BIN" \
    --ros-python "$DTBRIDGE_ROS2_PYTHON" "$@"
fi
if [[ "$KIND" == one-bridge ]]; then
  # The robot's ROS 2 topics, for as long as the bench runs, one process per sensor as on a
  # robot: an rclpy process publishing a large reliable message blocks in it now and then
  # (up to seconds with Fast DDS), and topics of the same process would wait with it.
  publishers=()
  for topics in /imu,/tf /camera/image /points; do
    "$DTBRIDGE_ROS2_PYTHON" tests/peers/ros2_bench_peer.py pub robot --only "$topics" \
      --seconds 86400 >/dev/null &
    publishers+=($!)
  done
  trap 'kill "${publishers[@]}" $server 2>/dev/null; wait "${publishers[@]}" $server 2>/dev/null || true' EXIT
  KIND=run
fi
"$BIN" bench "$KIND" "$@"
