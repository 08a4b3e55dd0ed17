#!/usr/bin/env bash
# Build docker/compose.yaml's images from source, with the Dockerfiles users build
# (docker/Dockerfile, docker/livekit-server.Dockerfile): on the official bases when a registry
# answers, else on local stand-ins made from this machine's own ROS 2 wheels, Rust and Go
# (docker/local-bases/), as the CI does.
#
#   bash scripts/docker-images.sh TAG
#
# Tags dtbridge:TAG and dtbridge/livekit-server:TAG; prints the two names, one a line.
# Reads DTBRIDGE_DOCKER_BASE (scripts/setup-docker.sh: the debootstrap'd Debian 12 when no
# registry answers, empty when one does) and DTBRIDGE_ROS2_PYTHON (scripts/setup-ros2.sh:
# the wheels' prefix, for the local ROS base). The local bases are made once per recipe,
# wheel set, toolchain and CA set; unchanged inputs hit the build cache, and a change of dtbridge's own
# sources rebuilds only dtbridge (docker/Dockerfile keeps its dependencies in a layer).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tag="${1:?usage: docker-images.sh TAG}"
log() { echo "[docker-images] $*" >&2; }

# ---- local bases (no registry)
dtbridge_args=()
server_args=()
if [[ -n "${DTBRIDGE_DOCKER_BASE:-}" ]]; then
  ros2_python="${DTBRIDGE_ROS2_PYTHON:?set DTBRIDGE_ROS2_PYTHON (scripts/setup-ros2.sh)}"
  ros2_prefix="$(cd "$(dirname "$ros2_python")/.." && pwd)"
  sysroot="$(rustc --print sysroot)"
  command -v go >/dev/null || PATH="/usr/local/go/bin:$PATH"
  goroot="$(go env GOROOT)"
  # Extra CAs this machine trusts (an egress proxy's): the containers' downloads need them.
  cas=(/usr/local/share/ca-certificates/*.crt)
  [[ -e "${cas[0]}" ]] || cas=()
  key() { sha256sum | cut -c1-12; }
  # A base's tag: what it stands in for, then a hash of its recipe (docker/local-bases/NAME:
  # the Dockerfile), of its parent's tag and of what it is made from (stdin), so that a change
  # of any of them makes a new base.
  recipe() { { cat "$ROOT/docker/local-bases/$1.Dockerfile"; echo "$2"; cat; } | key; }
  debian="dtbridge-local/debian:bookworm-$(cat "${cas[@]}" /dev/null \
    | recipe debian "$DTBRIDGE_DOCKER_BASE")"
  ros="dtbridge-local/ros:kilted-$(ls "$ros2_prefix"/lib/python3*/site-packages | grep dist-info \
    | cat - "$ROOT/docker/local-bases/setup.sh" "$ROOT/docker/local-bases/ros_entrypoint.sh" \
    | recipe ros "$debian")"
  rust="dtbridge-local/rust:$(rustc --version | cut -d' ' -f2)-$(recipe rust "$debian" </dev/null)"
  golang="dtbridge-local/golang:$(go env GOVERSION)-$(recipe golang "$debian" </dev/null)"

  # Makes IMAGE from docker/local-bases/NAME.Dockerfile on PARENT unless it exists; ADD_PARTS
  # fills the build context.
  local_base() {
    local name="$1" image="$2" parent="$3" add_parts="$4"
    docker image inspect "$image" >/dev/null 2>&1 && return
    local context
    context="$(mktemp -d "${TMPDIR:-/tmp}/dtbridge-base-context.XXXXXX")"
    "$add_parts" "$context"
    log "making $image (docker/local-bases/$name.Dockerfile)"
    docker build -f "$ROOT/docker/local-bases/$name.Dockerfile" --build-arg "BASE=$parent" \
      -t "$image" "$context" >&2 \
      || { rm -rf "$context"; log "making $image failed"; exit 1; }
    rm -rf "$context"
  }
  # Hard links where the files share a file system: these trees are hundreds of MB.
  link() { cp -al "$1" "$2" 2>/dev/null || cp -a "$1" "$2"; }
  ca_parts() {
    mkdir "$1/ca"
    ((${#cas[@]} == 0)) || cp "${cas[@]}" "$1/ca/"
  }
  ros_parts() {
    link "$ros2_prefix" "$1/ros2-prefix"
    # The host's RMW shim (remade in the image) and setup tools: not part of ROS 2.
    rm -rf "$1/ros2-prefix/rmw-shim" "$1/ros2-prefix/tools"
    cp "$ROOT/docker/local-bases/setup.sh" "$ROOT/docker/local-bases/ros_entrypoint.sh" "$1/"
  }
  # The toolchain without its documentation (800 MB of it).
  rust_parts() {
    mkdir "$1/rust"
    for dir in bin lib libexec etc; do
      if [[ -d "$sysroot/$dir" ]]; then link "$sysroot/$dir" "$1/rust/$dir"; fi
    done
  }
  go_parts() { link "$goroot" "$1/go"; }
  local_base debian "$debian" "$DTBRIDGE_DOCKER_BASE" ca_parts
  local_base ros "$ros" "$debian" ros_parts
  local_base rust "$rust" "$debian" rust_parts
  local_base golang "$golang" "$debian" go_parts
  dtbridge_args=(--build-arg "ROS_IMAGE=$ros" --build-arg "RUST_IMAGE=$rust")
  server_args=(--build-arg "GO_IMAGE=$golang" --build-arg "BASE=$debian")
fi

# ---- the images
server_image="dtbridge/livekit-server:$tag"
log "building $server_image (docker/livekit-server.Dockerfile)"
docker build -f "$ROOT/docker/livekit-server.Dockerfile" "${server_args[@]}" \
  -t "$server_image" "$ROOT/docker" >&2
dtbridge_image="dtbridge:$tag"
log "building $dtbridge_image (docker/Dockerfile)"
docker build -f "$ROOT/docker/Dockerfile" "${dtbridge_args[@]}" -t "$dtbridge_image" "$ROOT" >&2
echo "$server_image"
echo "$dtbridge_image"
# The images these tags named before: no use once replaced, and each is hundreds of MB.
docker image prune -f --filter "label=org.opencontainers.image.title=dtbridge" >/dev/null
docker image prune -f --filter "label=org.opencontainers.image.title=livekit-server" >/dev/null
