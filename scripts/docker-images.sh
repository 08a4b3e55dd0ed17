#!/usr/bin/env bash
# Build docker/compose.yaml's images from binaries built on this machine
# (docker/prebuilt.Dockerfile), the way CI does: no Rust or Go build inside a container.
#
#   bash scripts/docker-images.sh DTBRIDGE_BINARY TAG
#
# DTBRIDGE_BINARY: dtbridge built with `--features ros2` against scripts/ros2-env.sh's prefix.
# Tags dtbridge:TAG and dtbridge/livekit-server:TAG; prints the two names, one a line.
# Also reads DTBRIDGE_LIVEKIT_SERVER and DTBRIDGE_ROS2_PYTHON (scripts/test.sh exports them)
# and DTBRIDGE_DOCKER_BASE (scripts/setup-docker.sh: the local Debian 12 base, when no
# registry answers). Unchanged inputs hit the build cache.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
binary="${1:?usage: docker-images.sh DTBRIDGE_BINARY TAG}"
tag="${2:?usage: docker-images.sh DTBRIDGE_BINARY TAG}"
server="${DTBRIDGE_LIVEKIT_SERVER:?set DTBRIDGE_LIVEKIT_SERVER (scripts/setup-livekit-server.sh)}"
ros2_python="${DTBRIDGE_ROS2_PYTHON:?set DTBRIDGE_ROS2_PYTHON (scripts/setup-ros2.sh)}"
ros2_prefix="$(cd "$(dirname "$ros2_python")/.." && pwd)"
log() { echo "[docker-images] $*" >&2; }

context="$(mktemp -d "${TMPDIR:-/tmp}/dtbridge-docker-context.XXXXXX")"
trap 'rm -rf "$context"' EXIT
# Hard links where the files share a file system: the context is ~400 MB.
link() { cp -al "$1" "$2" 2>/dev/null || cp -a "$1" "$2"; }
# Without its debug info: a test build's is most of its size.
objcopy --strip-debug "$binary" "$context/dtbridge"
link "$server" "$context/livekit-server"
link "$ros2_prefix" "$context/ros2-prefix"
rm -rf "$context/ros2-prefix/tools" "$context/ros2-prefix/rmw-shim"
cp "$ROOT/docker/talker.py" "$ROOT/docker/livekit.yaml" "$context/"

base=()
[[ -n "${DTBRIDGE_DOCKER_BASE:-}" ]] && base=(--build-arg "BASE=$DTBRIDGE_DOCKER_BASE")
for target in livekit-server dtbridge; do
  image="dtbridge:$tag"
  [[ "$target" == livekit-server ]] && image="dtbridge/livekit-server:$tag"
  log "building $image (target $target)"
  docker build -q -f "$ROOT/docker/prebuilt.Dockerfile" --target "$target" "${base[@]}" \
    -t "$image" "$context" >&2
  echo "$image"
done
# The images these tags named before: no use once replaced, and each is hundreds of MB.
docker image prune -f --filter "label=org.opencontainers.image.title=dtbridge" >/dev/null
docker image prune -f --filter "label=org.opencontainers.image.title=livekit-server" >/dev/null
